#!/usr/bin/env bash
# tests/bench/run-all.sh BUILD_DIR — runs every benchmark script tests/bench/*.sh in turn
# (`make bench` calls it). Each script takes the build directory as $1, prints its own
# table and asserts nothing. A failing script is reported and the others still run; the
# exit status is 1 when any failed.
set -uo pipefail

build="${1:-build}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "$build" in /*) ;; *) build="$(pwd)/$build" ;; esac

failed=()
for script in "$here"/*.sh; do
  name="$(basename "$script")"
  [ "$name" = "run-all.sh" ] && continue
  echo "=== $name"
  if ! bash "$script" "$build"; then
    failed+=("$name")
    echo "=== $name FAILED" >&2
  fi
  echo
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmarks failed: ${failed[*]}" >&2
  exit 1
fi
