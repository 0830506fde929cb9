#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, then every Rust test.
# The standards folder is ../shared/standards unless KADGATE_STANDARDS_DIR says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
# PostgreSQL for tests/store_postgres.rs: the tests start a throwaway cluster of their own (no
# service is started here), or use the server KADGATE_PG_URL names. They need the server binaries
# (initdb, pg_ctl) of the newest installed major version.
if [ -z "${KADGATE_PG_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql
fi
PG_BIN="$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -n 1)"
if [ -n "$PG_BIN" ]; then
  export KADGATE_PG_BIN="$PG_BIN" PATH="$PG_BIN:$PATH"
fi
export KADGATE_STANDARDS_DIR="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
# The independent FHIR R4 validator the FHIR tests compare against (Node.js, tests only).
KADGATE_FHIR_ORACLE="$(scripts/fhir-oracle.sh)"
export KADGATE_FHIR_ORACLE
cargo test --release --all-targets 2>&1
