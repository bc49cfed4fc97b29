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
"$fuzzer" -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 -timeout="$timeout" \
  -report_slow_units="$slow" -rss_limit_mb=2048 -artifact_prefix="$work/" \
  "$work/corpus" "$seeds" || status=$?
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
