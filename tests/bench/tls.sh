#!/usr/bin/env bash
# tests/bench/tls.sh BUILD_DIR — what TLS costs through pgtally: pgbench -S -M prepared at -c 1
# and -c 8, direct (plaintext and TLS) vs through pgtally with plaintext legs, a TLS upstream
# (sslmode=require), TLS terminated for the client (--tls-cert) and TLS on both legs, against
# one throwaway PostgreSQL with ssl=on. Prints median TPS and ratios; asserts nothing.
# Results are recorded in docs/benchmarks.md ("TLS"). ROUNDS (3), SECONDS (5), CLIENTS (1,8)
# and SCALE (10) change it. The Python script owns cleanup, hence exec rather than trap.
set -euo pipefail

build="${1:-build}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in pgbench openssl; do
  command -v "$tool" >/dev/null || { echo "tls.sh: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
exec /usr/bin/python3 "$here/tls_compare.py" "$build/proxy/pgtally"
