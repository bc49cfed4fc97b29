#!/bin/sh
# tests/fuzz/run_fuzzer.sh FUZZER SECONDS SEED_DIR WORK_DIR — one libFuzzer run.
# New inputs go to WORK_DIR/corpus (the seed directory is only read); a crash is written to
# WORK_DIR/crash-* and makes the exit status non-zero. The last lines are libFuzzer's final
# stats (execs, time, coverage).
set -eu
fuzzer=$1 seconds=$2 seeds=$3 work=$4
mkdir -p "$work/corpus"
exec "$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" "$work/corpus" "$seeds"
