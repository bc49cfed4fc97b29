#!/usr/bin/env bash
# Runs the test suite (scripts/run-tests.sh on the build dirs given) REPEAT times in a row
# under background CPU load, stopping at the first failing run. Timing-dependent failures
# (a signal in a start-up window, a race with a readiness probe) show up under load long
# before they show up on an idle machine.
#
# Environment:
#   REPEAT           runs (default 20)
#   LOAD_WORKERS     CPU hogs beside the suite (default: one per core; 0 for none)
#   MESON_TEST_ARGS  passed to `meson test` (e.g. a test name: integration_operations)
# Prints "run I/N: ..." per run and a last line "K of N runs passed". Exit 0 iff all passed.
set -uo pipefail

repeat=${REPEAT:-20}
workers=${LOAD_WORKERS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)

load_pids=()
stop_load() {
  for pid in "${load_pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${load_pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  load_pids=()
}
trap stop_load EXIT
trap 'exit 130' INT TERM

if [ "$workers" -gt 0 ]; then
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu "$workers" --quiet &
    load_pids+=($!)
    echo "test-repeat: background load: stress-ng --cpu $workers"
  else
    for _ in $(seq "$workers"); do
      (while :; do :; done) &
      load_pids+=($!)
    done
    echo "test-repeat: background load: $workers shell busy loop(s) (stress-ng not installed)"
  fi
fi

passed=0
for i in $(seq "$repeat"); do
  echo "== test-repeat: run $i/$repeat"
  if "$here/run-tests.sh" "$@"; then
    passed=$((passed + 1))
  else
    echo "test-repeat: run $i/$repeat failed; stopping"
    echo "$passed of $repeat runs passed (stopped at run $i)"
    exit 1
  fi
done
echo "$passed of $repeat runs passed"
