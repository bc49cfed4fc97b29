"""PostgreSQL report store benchmarks (a script that prints figures, never a test):

1. recording: tests/bench/bench_store --db URL --mode sustained (synthetic finished requests of
   10 statements straight into the store's writer, no proxy), first one process alone, then
   SIDECARS processes at once writing to the same store (one run each, as sidecars do).
   Prints each process's own rate and the aggregate: all statements recorded / wall time from
   the first start to the last exit (connecting, migrating and closing included).
2. relay: pgbench -S -M prepared -c CLIENTS through pgtally recording into the PostgreSQL store
   vs pgtally --no-db, ROUNDS interleaved rounds of SECONDS each: median TPS and the ratio.

Usage: /usr/bin/python3 tests/bench/store_pg.py BUILD_DIR
Environment: REQUESTS [30000 per process], SIDECARS [4], CLIENTS [8], ROUNDS [5], SECONDS [10],
SKIP_RECORDING=1 / SKIP_RELAY=1 to run one part. Figures in docs/benchmarks.md.
"""

import os
import re
import statistics
import subprocess
import sys
import time

import proxies
from proxies import h


def env_int(name, default):
    return int(os.environ.get(name, default))


def run_bench_store(binary, target, n, requests):
    """n bench_store processes at once; returns (total statements, wall seconds, own rates)."""
    cmd = [binary, "--db", target, "--mode", "sustained", "--requests", str(requests)]
    env = h.client_env()
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.monotonic() - t0
    total, rates = 0, []
    for p, out in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit("bench_store failed:\n%s" % out)
        m = re.search(r"recorded (\d+) statements .*?= (\d+) statements/s", out)
        if not m:
            raise SystemExit("bench_store output not understood:\n%s" % out)
        drops = re.search(r"dropped (\d+) requests", out)
        if drops and int(drops.group(1)):
            print("  warning: a process dropped %s requests" % drops.group(1))
        total += int(m.group(1))
        rates.append(int(m.group(2)))
    return total, wall, rates


def run_recording(cluster, build):
    binary = os.path.join(build, "tests", "bench", "bench_store")
    requests = env_int("REQUESTS", 30000)
    sidecars = env_int("SIDECARS", 4)
    target = h.dsn(cluster.port, dbname="store")
    for n in (1, sidecars):
        total, wall, rates = run_bench_store(binary, target, n, requests)
        print("recording, %d process%s x %d requests x 10 statements: %.0f statements/s "
              "aggregate (%d in %.1f s wall); each process's own rate to its last commit: %s"
              % (n, "" if n == 1 else "es", requests, total / wall, total, wall,
                 ", ".join("%d" % r for r in rates)))


def run_relay(cluster, wd, binary):
    rounds = env_int("ROUNDS", 5)
    seconds = env_int("SECONDS", 10)
    clients = env_int("CLIENTS", 8)
    target = h.dsn(cluster.port, dbname="store")
    targets = {
        "pg-store": proxies.Pgtally(cluster, wd, binary,
                                    extra_args=["--db", target, "--db-schema", "relay"]).start(),
        "no-db": proxies.Pgtally(cluster, wd, binary, extra_args=["--no-db"]).start(),
    }
    tps = proxies.interleaved_tps(targets, rounds, seconds, clients)
    med = {k: statistics.median(v) for k, v in tps.items()}
    print("relay: pgbench -S -M prepared -c %d, %d rounds x %d s, medians:"
          % (clients, rounds, seconds))
    for k in targets:
        print("  %-9s %9.0f tps" % (k, med[k]))
    print("  pg-store / no-db = %.3f" % (med["pg-store"] / med["no-db"]))
    for t in targets.values():
        t.stop()


def main():
    build = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    binary = os.path.join(build or "", "proxy", "pgtally")
    if not build or not os.access(binary, os.X_OK):
        raise SystemExit("usage: store_pg.py BUILD_DIR")
    print("\n".join(proxies.machine_facts(binary)))
    cluster = h.Cluster().start()
    try:
        cluster.admin_sql("CREATE DATABASE store OWNER %s" % h.TRUST_USER)
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p",
                        str(cluster.port), "-U", h.TRUST_USER, h.DBNAME], check=True,
                       capture_output=True, env=h.client_env())
        if os.environ.get("SKIP_RECORDING") != "1":
            run_recording(cluster, build)
        if os.environ.get("SKIP_RELAY") != "1":
            run_relay(cluster, proxies.workdir(), binary)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
