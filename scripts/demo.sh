#!/usr/bin/env bash
# `make demo`: runs `pgtally demo`: the proxy in front of PostgreSQL with a short API-like
# workload, then the report and the budget check. Usage: scripts/demo.sh BUILD_DIR
# With DATABASE_URL set (a postgres:// URL), that server is the upstream; otherwise a
# throwaway cluster is started and removed afterwards.
set -euo pipefail
build=${1:?usage: scripts/demo.sh BUILD_DIR}
bin="$build/proxy/pgtally"
[ -x "$bin" ] || bin="$build/pgtally"
if [ ! -x "$bin" ]; then
  echo "demo: no pgtally binary in $build (run 'make build' first)" >&2
  exit 2
fi
# `pgtally demo` (proxy/demo/cmd_demo.c): throwaway PostgreSQL (or DATABASE_URL), the proxy, an
# ORM-like workload with an N+1 endpoint and its fixed twin, then `pgtally report` and
# `pgtally check`.
exec "$bin" demo ${DATABASE_URL:+--upstream "$DATABASE_URL"}
