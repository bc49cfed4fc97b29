#!/usr/bin/env bash
# scripts/fuzz.sh BUILD_DIR [SECONDS] — long runs of every libFuzzer target in BUILD_DIR
# (a -Dfuzzing=true clang build: `make fuzz`), one after another, SECONDS each (600).
# FUZZ_RUNS=N ends each target after N executions if that comes first: `FUZZ_RUNS=10000000
# FUZZ_SECONDS=7200 make fuzz` is the ten-million-executions run.
# Corpora grow in BUILD_DIR/fuzz/NAME/corpus; crashes land in BUILD_DIR/fuzz/NAME/crash-*.
# Slow inputs fail a target like crashes (tests/fuzz/run_fuzzer.sh: the targets' work-counter
# checks, then -timeout=FUZZ_TIMEOUT (2 s here) and -report_slow_units=FUZZ_SLOW_SECONDS (1 s)):
# timeout-* and slow-unit-* files. Ends with one line per target (status, executions, corpus size before ->
# after, artifacts) and exits non-zero when any target failed.
set -uo pipefail
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
seconds=${2:-600}
export FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-2} FUZZ_SLOW_SECONDS=${FUZZ_SLOW_SECONDS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
summary=()
failed=0
for fuzzer in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] && [ -f "$fuzzer" ] || continue
  name=$(basename "$fuzzer")
  seeds="$root/tests/fuzz/corpus/${name#fuzz_}"
  work="$build/fuzz/$name"
  mkdir -p "$work/corpus"
  before=$(find "$work/corpus" -type f | wc -l)
  echo "== $name: ${seconds}s, seeds $seeds ($(find "$seeds" -type f | wc -l)), work $work ($before)"
  if "$root/tests/fuzz/run_fuzzer.sh" "$fuzzer" "$seconds" "$seeds" "$work" 2>"$work.log"; then
    status=ok
  else
    status="FAILED (see $work.log)"
    failed=1
  fi
  tail -n 12 "$work.log" | grep -E '^stat::|^Done|^#[0-9]+' || true
  execs=$(grep -E '^stat::number_of_executed_units' "$work.log" | awk '{print $2}' | tail -n 1)
  after=$(find "$work/corpus" -type f | wc -l)
  artifacts=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' \
    -o -name 'slow-unit-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  summary+=("$name: $status, ${execs:-?} executions, corpus $before -> $after, $artifacts crash/timeout/slow/oom/leak files")
done
printf '%s\n' "${summary[@]}"
exit $failed
