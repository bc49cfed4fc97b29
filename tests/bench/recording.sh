#!/usr/bin/env bash
# tests/bench/recording.sh BUILD_DIR — what recording into the report store costs: a 1M-statement
# soak through the proxy (RSS must stay flat) and pgbench -S with recording vs --no-db.
# REQUESTS, STATEMENTS, CLIENTS, ROUNDS, SECONDS, SKIP_SOAK, SKIP_COST: see recording.py.
set -euo pipefail
build="${1:-build}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec /usr/bin/python3 "$here/recording.py" "$build/proxy/pgtally"
