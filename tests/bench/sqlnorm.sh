#!/usr/bin/env bash
# tests/bench/sqlnorm.sh BUILD_DIR [bench_sqlnorm options] — normalizer throughput on the
# ORM corpus: sqlnorm (N + F + V + tags) vs libpg_query's pg_query_fingerprint, interleaved
# rounds, medians. Results are recorded in docs/benchmarks.md ("Normalizer").
set -euo pipefail

build="${1:-build}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$build/tests/bench/bench_sqlnorm" "$root/tests/corpus/orm_statements.sql" "$@"
