#!/usr/bin/env bash
# Run kadgate on its embedded demo setup: SQLite under ./kadgate-data, HTTP on 127.0.0.1:8080,
# the demo organisations from fixtures/demo, schemas from ../shared/standards/kith.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
exec cargo run --release -- serve "$@"
