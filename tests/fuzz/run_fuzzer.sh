#!/bin/sh
# tests/fuzz/run_fuzzer.sh FUZZER SECONDS SEED_DIR WORK_DIR — one libFuzzer run.
# New inputs go to WORK_DIR/corpus (the seed directory is only read); a crash is written to
# WORK_DIR/crash-* and makes the exit status non-zero. The last lines are libFuzzer's final
# stats (execs, time, coverage).
#
# Slow inputs fail the run too. The targets assert work counters where the code has them
# (deterministic); besides, one input running longer than FUZZ_TIMEOUT seconds is a timeout-*
# failure, and one longer than FUZZ_SLOW_SECONDS is saved as slow-unit-* and fails the run at
# its end if it is slow again when run alone. An input takes microseconds (milliseconds under
# -O0 sanitizers): the defaults, 10 and 5 s, leave room for the short runs of `make test` on a loaded machine; scripts/fuzz.sh (the
# long runs) asks for 2 and 1.
set -eu
fuzzer=$1 seconds=$2 seeds=$3 work=$4
timeout=${FUZZ_TIMEOUT:-10}
slow=${FUZZ_SLOW_SECONDS:-5}
mkdir -p "$work/corpus"
rm -f "$work"/slow-unit-*
status=0
# FUZZ_RUNS, when set, also ends the run after that many executions (whichever comes first).
runs=${FUZZ_RUNS:--1}
# libFuzzer's -timeout is wall-clock and ends its run. When the input that timed out is fast
# alone (a stall: the machine, not the input), the run goes on with the time and executions
# left, at most 20 times; the input is kept as stall-timeout-*. Executions add up over the
# pieces: the last line is stat::total_executed_units.
total=0 resumed=0 started=$(date +%s)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while :; do
  left_time=$((seconds - ($(date +%s) - started)))
  [ "$left_time" -gt 0 ] || break
  left_runs=-1
  if [ "$runs" -ge 0 ]; then
    left_runs=$((runs - total))
    [ "$left_runs" -gt 0 ] || break
  fi
  piece=0
  "$fuzzer" -max_total_time="$left_time" -runs="$left_runs" -print_final_stats=1 \
    -timeout="$timeout" -report_slow_units="$slow" -rss_limit_mb=2048 \
    -artifact_prefix="$work/" "$work/corpus" "$seeds" 2>"$out" || piece=$?
  cat "$out" >&2
  n=$(grep -E '^stat::number_of_executed_units' "$out" | awk '{print $2}' | tail -n 1)
  total=$((total + ${n:-0}))
  [ "$piece" -ne 0 ] || break
  hung=$(grep -o 'Test unit written to .*/timeout-[0-9a-f]*' "$out" | sed 's/^Test unit written to //' | tail -n 1)
  if [ -n "$hung" ] && [ -e "$hung" ] && [ "$resumed" -lt 20 ] &&
    "$fuzzer" -timeout="$slow" -rss_limit_mb=2048 "$hung" >/dev/null 2>&1; then
    echo "run_fuzzer.sh: timed out once, within ${slow}s on a re-run (a stall, not the input): $hung; going on" >&2
    mv "$hung" "$work/stall-$(basename "$hung")"
    resumed=$((resumed + 1))
    continue
  fi
  status=$piece
  break
done
echo "stat::total_executed_units: $total" >&2
# A slow input is run again alone with -timeout at the slow threshold: slow again, it fails
# the run; fast this time, the first reading was the machine stalling (a VM pause, a loaded
# CI host), not the input, and it is only reported.
for f in "$work"/slow-unit-*; do
  [ -e "$f" ] || continue
  if "$fuzzer" -timeout="$slow" -rss_limit_mb=2048 "$f" >/dev/null 2>&1; then
    echo "run_fuzzer.sh: over ${slow}s once, within it on a re-run (a stall, not the input): $f" >&2
    continue
  fi
  echo "run_fuzzer.sh: slow input (over ${slow}s, twice): $f" >&2
  [ "$status" -ne 0 ] || status=3
done
exit "$status"
