#!/usr/bin/env bash
# Installs the independent FHIR R4 validator (the oracle shipped with the standards folder) into a
# writable copy under target/fhir-oracle, once. Prints the directory that holds validate.mjs.
# The standards folder may be read-only, so package.json and validate.mjs are copied, never edited.
# Tests and benchmarks find the oracle through KADGATE_FHIR_ORACLE (set by scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
standards="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
src="$standards/fhir/oracle"
dst="target/fhir-oracle"
mkdir -p "$dst"
if ! cmp -s "$src/package.json" "$dst/package.json" || [ ! -d "$dst/node_modules/@medplum/core" ]; then
  cp "$src/package.json" "$src/validate.mjs" "$dst/"
  (cd "$dst" && npm install --no-audit --no-fund --loglevel=error >&2)
fi
cp "$src/validate.mjs" "$dst/validate.mjs"
cd "$dst" && pwd
