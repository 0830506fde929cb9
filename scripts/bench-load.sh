#!/usr/bin/env bash
# Durable ingest over HTTP: kadgate (release, SQLite synchronous=FULL, group commit, full XSD
# validation) on loopback, loaded by wrk with fresh 10 KB MsgHead messages for DURATION seconds.
# Prints wrk's throughput and latency percentiles, then kadgate's peak resident memory (VmHWM).
#   usage: scripts/bench-load.sh [DURATION_SECONDS=60] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-60}"
CONNS="${2:-64}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
scripts/system-packages.sh
cargo build --release -q
DATA="$(mktemp -d)"
PORT="${PORT:-18080}"
STANDARDS="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
KADGATE_LOG=warn ./target/release/kadgate serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --standards "$STANDARDS" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "kadgate pid $PID, data dir $DATA, message $(wc -c < fixtures/load/dialog-10k.xml) bytes"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s scripts/load.lua "http://127.0.0.1:$PORT"
echo "peak RSS: $(grep VmHWM /proc/$PID/status)"
echo "stored: $(curl -s "http://127.0.0.1:$PORT/api/messages?limit=1" | head -c 200)"
kill -TERM $PID; wait $PID || true
