#!/usr/bin/env bash
# `make demo`: runs `pgtally demo`: the proxy in front of PostgreSQL with a short API-like
# workload, then the report and the budget check. Usage: scripts/demo.sh BUILD_DIR
# With DATABASE_URL set (a postgres:// URL), that server is the upstream; otherwise a
# throwaway cluster is started and removed afterwards.
set -euo pipefail
build=${1:?usage: scripts/demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/proxy/pgtally"
[ -x "$bin" ] || bin="$build/pgtally"
if [ ! -x "$bin" ]; then
  echo "demo: no pgtally binary in $build (run 'make build' first)" >&2
  exit 2
fi
# `pgtally demo` (proxy/cmd_demo.c): throwaway PostgreSQL (or DATABASE_URL), the proxy, an
# ORM-like workload with an N+1 endpoint and its fixed twin, then `pgtally report` and
# `pgtally check`. DEMO=querylog runs the earlier query-log demo (tests/integration/demo.py).
if [ "${DEMO:-}" = querylog ]; then
  # Debian's python3: the one with python3-psycopg; the harness itself needs only the stdlib.
  exec /usr/bin/python3 "$root/tests/integration/demo.py" --pgtally "$bin" \
    --out "$build/demo-queries.jsonl"
fi
exec "$bin" demo ${DATABASE_URL:+--upstream "$DATABASE_URL"}
