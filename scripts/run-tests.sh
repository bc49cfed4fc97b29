#!/usr/bin/env bash
# Runs the meson test suite in each build dir given and prints one closing line
# "N passed, N failed" (skipped tests are reported separately). Exit status: 0 iff none failed.
set -uo pipefail

total_pass=0
total_fail=0
total_skip=0
for build in "$@"; do
  echo "== meson test in $build"
  # a log left by an earlier run must not be counted as this one's
  rm -f "$build/meson-logs/testlog.json"
  meson test -C "$build" --print-errorlogs --num-processes 2 ${MESON_TEST_ARGS:-}
  log="$build/meson-logs/testlog.json"
  if [ ! -s "$log" ]; then
    echo "no test log in $build: counting the build as one failure"
    total_fail=$((total_fail + 1))
    continue
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
done
if [ "$total_pass" -eq 0 ] && [ "$total_fail" -eq 0 ]; then total_fail=1; fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
