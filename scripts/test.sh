#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, then every Rust test.
# The standards folder is ../shared/standards unless KADGATE_STANDARDS_DIR says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
export KADGATE_STANDARDS_DIR="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
# The independent FHIR R4 validator the FHIR tests compare against (Node.js, tests only).
KADGATE_FHIR_ORACLE="$(scripts/fhir-oracle.sh)"
export KADGATE_FHIR_ORACLE
cargo test --release --all-targets 2>&1
