#!/usr/bin/env bash
# End to end on loopback: referral → decision → routed → delivered and acknowledged.
# kadgate (release, SQLite synchronous=FULL, demo configuration with admission on) takes FHIR
# referrals (the ~10 KB fixtures/load/fhir-referral-10k.json with fresh ids) at RATE per second for
# DURATION seconds from an open-loop generator (examples/e2e_load.rs), decides each against the
# national default rule set, routes it to the KAD unit serving the patient's municipality and
# delivers it — and the business reply to the referrer — to a loopback unit system
# (examples/loopback_unit.rs), which reads each message and answers with a real FHIR response.
# Prints the offered rate, HTTP answer latency, end-to-end latency percentiles (sent → the unit's
# receipt recorded), overall and by 5-second window, outbox states, kadgate's peak RSS, the
# store's size, the CPU time of all three processes and the load average.
#   usage: scripts/bench-e2e.sh [RATE=1000] [DURATION_SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-1000}"
DURATION="${2:-60}"
MESSAGE="${KADGATE_LOAD_FILE:-fixtures/load/fhir-referral-10k.json}"
scripts/system-packages.sh
cargo build --release -q --bin kadgate --example loopback_unit --example e2e_load
WORK="$(mktemp -d)"
GW_PORT="${GW_PORT:-18082}"
UNIT_PORT="${UNIT_PORT:-18092}"
STANDARDS="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
ROOT="$(pwd)"
UNIT="http://127.0.0.1:$UNIT_PORT/fhir/\$process-message"
cat > "$WORK/registry.toml" <<TOML
[[kad_units]]
her_id = "990002"
name = "Testbyen KAD"
org_enh = "990001006"
municipality = "0301"
municipalities = ["0301"]
beds = 1000000
formats = ["fhir-r4"]
endpoint = { url = "$UNIT", timeout_ms = 5000 }

[[parties]]
her_id = "990001"
kind = "gp-office"
name = "Testbyen legekontor"
org_enh = "990003009"
municipality = "0301"
formats = ["fhir-r4"]
endpoint = { url = "$UNIT", timeout_ms = 5000 }
TOML
sed -e "s#^ruleset = .*#ruleset = \"$ROOT/fixtures/rules/national-default.toml\"#" \
    -e "s#^registry = .*#registry = \"$WORK/registry.toml\"#" \
    -e "s#^listen = .*#listen = \"127.0.0.1:$GW_PORT\"#" \
    -e "s#^data_dir = .*#data_dir = \"$WORK/data\"#" \
    fixtures/demo/kadgate.toml > "$WORK/kadgate.toml"
./target/release/examples/loopback_unit "127.0.0.1:$UNIT_PORT" &
UNIT_PID=$!
KADGATE_LOG=warn ./target/release/kadgate serve --config "$WORK/kadgate.toml" --standards "$STANDARDS" &
PID=$!
trap 'kill $PID $UNIT_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "kadgate pid $PID, unit system pid $UNIT_PID, $RATE referrals/s for ${DURATION}s, message $MESSAGE ($(wc -c < "$MESSAGE") bytes)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
TIMEFORMAT="CPU used: load generator %U s user + %S s system"
time ./target/release/examples/e2e_load "http://127.0.0.1:$GW_PORT" "$RATE" "$DURATION" "$WORK/data/kadgate.sqlite" "$MESSAGE"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kadgate peak RSS: $(grep VmHWM /proc/$PID/status)"
echo "store: $(du -h "$WORK/data/kadgate.sqlite" | cut -f1) database, $(du -h "$WORK/data/kadgate.sqlite-wal" | cut -f1) WAL"
cpu() { awk '{printf "%.1f s", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
echo "CPU used: kadgate $(cpu $PID), loopback unit system $(cpu $UNIT_PID)"
kill -TERM $PID
wait $PID || true
