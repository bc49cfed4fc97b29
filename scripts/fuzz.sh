#!/usr/bin/env bash
# scripts/fuzz.sh BUILD_DIR [SECONDS] — long runs of every libFuzzer target in BUILD_DIR
# (a -Dfuzzing=true clang build: `make fuzz`), SECONDS each (600).
# FUZZ_RUNS=N ends each target after N executions if that comes first: `FUZZ_RUNS=10000000
# FUZZ_SECONDS=7200 make fuzz` is the ten-million-executions run.
# FUZZ_JOBS=N runs up to N targets at once (default 1: one after another).
# Corpora grow in BUILD_DIR/fuzz/NAME/corpus; crashes land in BUILD_DIR/fuzz/NAME/crash-*.
# Slow inputs fail a target like crashes (tests/fuzz/run_fuzzer.sh): the targets' work-counter
# checks (deterministic), inputs over FUZZ_SLOW_SECONDS (1 s) that are slow again when run
# alone (slow-unit-* files), and hangs over FUZZ_TIMEOUT (25 s; timeout-* files). The timeout
# is wall-clock and ends libFuzzer's run, so it is set for hangs only: on a loaded machine an
# input taking 0.13 s of CPU once took 5 s of wall time, and a starved one 30 s. A timed-out
# input that is fast alone is a stall: run_fuzzer.sh keeps it as stall-timeout-* and goes on.
# Ends with one line per target (status, executions, seconds,
# corpus size before -> after, artifacts) and exits non-zero when any target failed.
set -uo pipefail
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
seconds=${2:-600}
jobs=${FUZZ_JOBS:-1}
export FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-25} FUZZ_SLOW_SECONDS=${FUZZ_SLOW_SECONDS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)

# One target: its run, then its summary line written to $work.summary.
fuzz_one() {
  local fuzzer=$1 name seeds work before after status execs artifacts started elapsed
  name=$(basename "$fuzzer")
  seeds="$root/tests/fuzz/corpus/${name#fuzz_}"
  work="$build/fuzz/$name"
  mkdir -p "$work/corpus"
  before=$(find "$work/corpus" -type f | wc -l)
  echo "== $name: ${seconds}s${FUZZ_RUNS:+ or $FUZZ_RUNS runs}, seeds $seeds ($(find "$seeds" -type f | wc -l)), work $work ($before)"
  started=$(date +%s)
  if "$root/tests/fuzz/run_fuzzer.sh" "$fuzzer" "$seconds" "$seeds" "$work" 2>"$work.log"; then
    status=ok
  else
    status="FAILED (see $work.log)"
  fi
  elapsed=$(($(date +%s) - started))
  execs=$(grep -E '^stat::total_executed_units' "$work.log" | awk '{print $2}' | tail -n 1)
  after=$(find "$work/corpus" -type f | wc -l)
  artifacts=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' \
    -o -name 'slow-unit-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  echo "$name: $status, ${execs:-?} executions in ${elapsed} s, corpus $before -> $after, $artifacts crash/timeout/slow/oom/leak files" >"$work.summary"
  echo "== $name done: $(cat "$work.summary")"
}

names=()
for fuzzer in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] && [ -f "$fuzzer" ] || continue
  names+=("$(basename "$fuzzer")")
  rm -f "$build/fuzz/$(basename "$fuzzer").summary"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n
  done
  fuzz_one "$fuzzer" &
done
wait

failed=0
for name in "${names[@]}"; do
  line=$(cat "$build/fuzz/$name.summary" 2>/dev/null || echo "$name: FAILED (no summary)")
  echo "$line"
  case $line in *": ok,"*) ;; *) failed=1 ;; esac
done
exit $failed
