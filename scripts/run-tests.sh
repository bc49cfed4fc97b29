#!/usr/bin/env bash
# Runs the meson test suite in each build dir given and prints one closing line
# "N passed, N failed" (skipped tests are reported separately). Exit status: 0 iff none failed.
set -uo pipefail

total_pass=0
total_fail=0
total_skip=0

# run_suite BUILD [MESON TEST ARGS...]: runs meson test and adds its results to the totals.
run_suite() {
  local build="$1"
  shift
  # a log left by an earlier run must not be counted as this one's
  rm -f "$build/meson-logs/testlog.json"
  meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
  log="$build/meson-logs/testlog.json"
  if [ ! -s "$log" ]; then
    echo "no test log in $build: counting the build as one failure"
    total_fail=$((total_fail + 1))
    return
  fi
  read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
}

for build in "$@"; do
  echo "== meson test in $build"
  # shellcheck disable=SC2086
  run_suite "$build" ${MESON_TEST_ARGS:-}
done

# The proxy has two I/O paths (--io): the runs above use the default (io_uring where the
# kernel allows it); the integration suite runs once more on the other one, in the first
# build only (the release build: the ASan run above already covers the default path).
# IO_SECOND_PASS=uring|epoll picks it, "none" skips it.
second="${IO_SECOND_PASS:-epoll}"
if [ "$second" != none ] && [ $# -gt 0 ] && [ -z "${MESON_TEST_ARGS:-}" ]; then
  echo "== integration suite in $1 with PGTALLY_IO=$second"
  PGTALLY_IO="$second" run_suite "$1" --suite integration
fi
if [ "$total_pass" -eq 0 ] && [ "$total_fail" -eq 0 ]; then total_fail=1; fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
