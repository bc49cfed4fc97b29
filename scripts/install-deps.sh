#!/usr/bin/env bash
# Installs every Debian package pgtally needs to build, test, fuzz and benchmark.
# Idempotent: only missing packages are installed, so a second run costs a dpkg query.
set -euo pipefail

PACKAGES=(
  # build
  build-essential meson ninja-build pkg-config
  libev-dev libxxhash-dev libsqlite3-dev libpq-dev libinih-dev libssl-dev
  # pgtally loads these at run time (dlopen), so its binary does not name them as needed
  # libraries: libpq (a PostgreSQL store), SQLite (report files), OpenSSL (TLS),
  # libmicrohttpd (served pages). Each is mapped only by the commands and settings that use
  # it: every `pgtally` command starts in a few ms, and a proxy without TLS is megabytes
  # smaller.
  libpq5 libsqlite3-0 libssl3 libmicrohttpd12
  # the served pages (`pgtally serve`, `proxy --serve`): a well-kept HTTP server on its own
  # thread, rather than more hand-written HTTP
  libmicrohttpd-dev
  # the relay's io_uring data path (--io); 2.3 in Debian 12, kernel >= 5.19 at run time
  liburing-dev
  # tests: a real server and real clients
  postgresql postgresql-client python3 python3-psycopg2 python3-psycopg
  python3-django python3-djangorestframework
  # PostgreSQL's keyword list (server/parser/kwlist.h), which protocol/gen_keywords.py turns
  # into the normalizer's keyword table; the sqlkeywords_drift test checks it against this
  postgresql-server-dev-15
  # oracle, fuzzing, sanitizers
  libpg-query-dev clang libclang-rt-14-dev
  # the HTML report rendered headless (tests/unit/test_report_html.py)
  chromium
  # benchmarks
  pgbouncer haproxy
  # misc tools the scripts call
  procps iproute2 openssl
  # background CPU load for `make test-repeat` (scripts/test-repeat.sh)
  stress-ng
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian postgresql package starts a cluster on 5432 through systemd where systemd runs;
# pgtally's tests use their own throwaway clusters, so that one is left alone.
