#!/usr/bin/env bash
# FHIR validation, kadgate vs the oracle, per bundle: criterion (benches/fhir.rs) for kadgate and
# scripts/oracle-bench.mjs (run from the oracle's directory) for @medplum/core. Prints both and the ratio.
# Usage: scripts/bench-fhir-validate.sh [ORACLE_ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export KADGATE_STANDARDS_DIR="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
oracle="${KADGATE_FHIR_ORACLE:-$(scripts/fhir-oracle.sh)}"
cp scripts/oracle-bench.mjs "$oracle/oracle-bench.mjs"
iterations="${1:-2000}"

cargo bench --bench fhir >/dev/null 2>&1 || cargo bench --bench fhir
declare -A ours
for id in kad-referral-message epikrise-document epikrise-message Bundle-father; do
  est="target/criterion/fhir-validate/$id/new/estimates.json"
  ours[$id]=$(python3 -c "import json,sys; print('%.1f' % (json.load(open(sys.argv[1]))['mean']['point_estimate']/1000))" "$est")
done

printf '%-22s %12s %12s %8s\n' bundle 'kadgate µs' 'oracle µs' ratio
(cd "$oracle" && node oracle-bench.mjs "$KADGATE_STANDARDS_DIR/fhir/examples" "$iterations") |
while read -r id theirs; do
  k="${ours[$id]}"
  ratio=$(python3 -c "print('%.0f×' % ($theirs / $k))")
  printf '%-22s %12s %12s %8s\n' "$id" "$k" "$theirs" "$ratio"
done
