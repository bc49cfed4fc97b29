#!/usr/bin/env bash
# scripts/fuzz.sh BUILD_DIR [SECONDS] — long runs of every libFuzzer target in BUILD_DIR
# (a -Dfuzzing=true clang build: `make fuzz`), one after another, SECONDS each (600).
# Corpora grow in BUILD_DIR/fuzz/NAME/corpus; crashes land in BUILD_DIR/fuzz/NAME/crash-*.
# Ends with one line per target and exits non-zero when any target failed.
set -uo pipefail
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
seconds=${2:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
summary=()
failed=0
for fuzzer in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] && [ -f "$fuzzer" ] || continue
  name=$(basename "$fuzzer")
  seeds="$root/tests/fuzz/corpus/${name#fuzz_}"
  work="$build/fuzz/$name"
  mkdir -p "$work"
  echo "== $name: ${seconds}s, seeds $seeds, work $work"
  if "$root/tests/fuzz/run_fuzzer.sh" "$fuzzer" "$seconds" "$seeds" "$work" 2>"$work.log"; then
    status=ok
  else
    status="FAILED (see $work.log and $work/crash-*)"
    failed=1
  fi
  tail -n 12 "$work.log" | grep -E '^stat::|^Done|^#[0-9]+' || true
  summary+=("$name: $status")
done
printf '%s\n' "${summary[@]}"
exit $failed
