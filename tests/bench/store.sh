#!/usr/bin/env bash
# tests/bench/store.sh BUILD_DIR [bench_store options] — report store throughput: 100k
# synthetic requests x 10 statements into a real SQLite file, sustained (no drops: writer
# throughput) and burst (submit cost, drops counted). Results are recorded in
# docs/benchmarks.md ("Report store").
set -euo pipefail

build="${1:-build}"
shift || true
exec "$build/tests/bench/bench_store" "$@"
