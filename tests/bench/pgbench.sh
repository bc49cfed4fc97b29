#!/usr/bin/env bash
# tests/bench/pgbench.sh BUILD_DIR — proxy throughput: pgbench -S through pgtally, pgbouncer
# (session mode) and haproxy (TCP mode) against one throwaway PostgreSQL, compared with direct
# connections; prints median TPS, ratios and per-transaction proxy CPU. Asserts nothing.
# Results are recorded in docs/benchmarks.md ("Proxy throughput").
# ROUNDS (5) and SECONDS (10) shorten or lengthen it: ROUNDS=3 SECONDS=5 for a quick run;
# the other knobs are listed in pgbench_compare.py. The Python script owns cleanup (Ctrl-C,
# SIGTERM, SIGHUP and exit all stop the proxies and the cluster), hence exec rather than trap.
set -euo pipefail

build="${1:-build}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in pgbench pgbouncer haproxy; do
  command -v "$tool" >/dev/null || { echo "pgbench.sh: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
exec /usr/bin/python3 "$here/pgbench_compare.py" "$build/proxy/pgtally"
