#!/usr/bin/env bash
# `make demo`: runs pgtally proxy in front of PostgreSQL with a short workload (pgbench and an
# N+1-looking psql loop) and prints what the proxy captured. Usage: scripts/demo.sh BUILD_DIR
# With DATABASE_URL set, that server is the upstream; otherwise a throwaway cluster is started
# (tests/integration/pgharness.py) and removed afterwards.
set -euo pipefail
build=${1:?usage: scripts/demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/proxy/pgtally"
[ -x "$bin" ] || bin="$build/pgtally"
if [ ! -x "$bin" ]; then
  echo "demo: no pgtally binary in $build (run 'make build' first)" >&2
  exit 2
fi
# Debian's python3: the one with python3-psycopg; the harness itself needs only the stdlib.
exec /usr/bin/python3 "$root/tests/integration/demo.py" --pgtally "$bin" \
  --out "$build/demo-queries.jsonl"
