#!/usr/bin/env bash
# tests/bench/fingerprint_cli.sh BUILD_DIR [--rounds N] [--cpu N|any] [OTHER_PGTALLY...] — `pgtally
# fingerprint FILE > /dev/null` (whole process, CPU time user + sys) vs pg_query_fingerprint
# over the same file in one process, on a ~28 MB ORM mix, one statement per line, built from
# tests/corpus/orm_statements.sql. Interleaved rounds, medians. Extra pgtally binaries (an
# older build, say) are timed in the same rounds. Every side runs on one CPU (--cpu: by default
# the one the benchmark starts on): the two vCPUs of the machine the figures come from differ
# about 1.8x in speed. Results are recorded in docs/benchmarks.md
# ("Fingerprint CLI"). Asserts nothing.
set -euo pipefail

build="${1:-build}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rounds=7
cpu=()
others=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --cpu) cpu=(--cpu "$2"); shift 2 ;;
    *) others+=("$1"); shift ;;
  esac
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
input="$tmp/orm_mix_28mb.sql"
"$build/tests/bench/bench_fingerprint_cli" make-input "$root/tests/corpus/orm_statements.sql" \
  "$input" 28
"$build/tests/bench/bench_fingerprint_cli" run "$input" "$build/proxy/pgtally" \
  ${others[@]+"${others[@]}"} --rounds "$rounds" ${cpu[@]+"${cpu[@]}"}
