#!/usr/bin/env bash
# Durable FHIR ingest over HTTP: kadgate (release, SQLite synchronous=FULL, group commit, full R4
# validation and the KAD rules) on loopback, loaded by wrk for DURATION seconds with the ~10 KB FHIR
# referral message, a fresh MessageHeader.id and Bundle.id per request (scripts/load-fhir.lua).
# Prints msgs/s, latency percentiles, kadgate's peak resident memory (VmHWM) and the load average.
# Fails unless every answer was 200 with a response message of code `ok`.
#   usage: scripts/bench-load-fhir.sh [DURATION_SECONDS=60] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-60}"
CONNS="${2:-64}"
MESSAGE="${KADGATE_LOAD_FILE:-fixtures/load/fhir-referral-10k.json}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
scripts/system-packages.sh
cargo build --release -q
DATA="$(mktemp -d)"
OUT="$(mktemp)"
PORT="${PORT:-18081}"
STANDARDS="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
KADGATE_LOG=warn ./target/release/kadgate serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --standards "$STANDARDS" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "kadgate pid $PID, data dir $DATA, message $MESSAGE ($(wc -c < "$MESSAGE") bytes)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
KADGATE_LOAD_FILE="$MESSAGE" wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s scripts/load-fhir.lua \
  "http://127.0.0.1:$PORT" | tee "$OUT"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peak RSS: $(grep VmHWM /proc/$PID/status)"
echo "newest stored: $(curl -s "http://127.0.0.1:$PORT/api/messages?limit=1" | head -c 300)"
kill -TERM $PID
wait $PID || true
if ! grep -Eq '^answers: [1-9][0-9]* ok, 0 not ok, 0 duplicates$' "$OUT"; then
  echo "FAIL: not every answer was 200 with response code ok (or some were duplicates)" >&2
  exit 1
fi
