#!/usr/bin/env bash
# tests/bench/idle_rss.sh BUILD_DIR — memory per idle client: VmRSS of pgtally and of pgbouncer
# (session mode) with no clients, with CONNS (500) idle clients, and after they leave.
# Results are recorded in docs/benchmarks.md ("Proxy throughput"). Asserts nothing; the Python
# script owns cleanup (exit, Ctrl-C, SIGTERM), hence exec rather than trap.
set -euo pipefail

build="${1:-build}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v pgbouncer >/dev/null || { echo "idle_rss.sh: pgbouncer missing (scripts/install-deps.sh)" >&2; exit 1; }
exec /usr/bin/python3 "$here/idle_rss.py" "$build/proxy/pgtally"
