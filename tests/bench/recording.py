"""Recording benchmarks for the report store, run through the real proxy against a real
PostgreSQL (a script that prints figures, never a test):

1. soak: REQUESTS tagged requests of STATEMENTS statements each (default 100,000 x 10 = 1M
   statements; pgbench -M simple with a sqlcommenter request_id per transaction, N+1-shaped
   lookups inside). The proxy's RSS is sampled every second; the script prints it at the start,
   at each 10% and at the end, where it is (main heap, the writer thread's malloc arena,
   other anonymous memory, stack, mapped files) under load and 3 s after the load, the
   statements and requests recorded in the SQLite file, and the drops. Flat RSS is the point:
   every table on the way is bounded.
2. cost: pgbench -S -M prepared -c CLIENTS through pgtally recording into SQLite vs pgtally
   --no-db, ROUNDS interleaved rounds of SECONDS each, median TPS and the ratio: what recording
   costs the forwarding rate.

Environment: REQUESTS [100000], STATEMENTS [10], CLIENTS [8], ROUNDS [5], SECONDS [10],
SKIP_SOAK=1 / SKIP_COST=1 to run one part. Stdlib only; /usr/bin/python3.
"""

import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

import proxies
from proxies import h


def env_int(name, default):
    return int(os.environ.get(name, default))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def soak_script(path, statements):
    with open(path, "w") as f:
        f.write("\\set rid random(1, 2000000000)\n")
        f.write("\\set aid random(1, 100000)\n")
        tag = "/*request_id='soak-:client_id-:rid',route='%2Fapi%2Forders'*/"
        f.write("%s select abalance from pgbench_accounts where aid = :aid;\n" % tag)
        for i in range(statements - 1):
            f.write("%s select bid, bbalance from pgbench_branches where bid = %d;\n"
                    % (tag, 1 + i % 1))
            # ^ one shape repeated: an N+1 (values differ only by request) and duplicates


def run_soak(cluster, wd, binary):
    requests = env_int("REQUESTS", 100000)
    statements = env_int("STATEMENTS", 10)
    clients = env_int("CLIENTS", 8)
    script = os.path.join(wd, "soak.pgb")
    soak_script(script, statements)
    db = os.path.join(wd, "soak.db")
    proxy = proxies.Pgtally(cluster, wd, binary,
                            extra_args=["--db", db, "--request-gap", "0.5"]).start()
    per_client = (requests + clients - 1) // clients
    cmd = ["pgbench", "-n", "-M", "simple", "-f", script, "-c", str(clients),
           "-j", str(min(clients, 2)), "-t", str(per_client),
           "-h", "127.0.0.1", "-p", str(proxy.port), "-U", h.TRUST_USER, h.DBNAME]
    print("soak: %d requests x %d statements through pgtally (%s)"
          % (per_client * clients, statements, " ".join(cmd)))
    samples = []
    loaded = {}  # the latest breakdown of RSS taken while pgbench was running
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic(), rss_kb(proxy.pid)))
            loaded.update(proxies.rss_breakdown(proxy.pid))
            stop.wait(1.0)

    t0 = time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    r = subprocess.run(cmd, capture_output=True, text=True, env=h.client_env())
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit("soak: pgbench failed")
    end_rss = rss_kb(proxy.pid)
    time.sleep(3)  # the writer trims the heap once it has been idle for a second
    idle = proxies.rss_breakdown(proxy.pid)
    proxy.stop()
    con = sqlite3.connect(db)
    n_req, n_stmt = con.execute("select count(*), coalesce(sum(statements), 0) from requests"
                                ).fetchone()
    run = con.execute("select statements, requests, dropped_requests, dropped_statements, "
                      "complete from runs order by id desc limit 1").fetchone()
    con.close()
    print("soak: %.0f s, %.0f statements/s through the proxy"
          % (elapsed, per_client * clients * statements / elapsed))
    print("soak: proxy RSS (kB) over time:")
    n = len(samples)
    for i in range(0, 11):
        idx = min(n - 1, i * (n - 1) // 10) if n else 0
        if n:
            print("  %3d%%  t=%5.1fs  %7d kB" % (i * 10, samples[idx][0] - t0, samples[idx][1]))
    if samples:
        print("soak: RSS start %d kB, end %d kB, max %d kB"
              % (samples[0][1], end_rss, max(s for _, s in samples)))
    for when, parts in (("under load", loaded), ("3 s after the load", idle)):
        print("soak: RSS %s by kind (kB): %s" % (when, ", ".join("%s %d" % kv
                                                               for kv in parts.items())))
    print("soak: recorded %d requests, %d statements; run row: statements=%d requests=%d "
          "dropped_requests=%d dropped_statements=%d complete=%d"
          % ((n_req, n_stmt) + tuple(run)))


def run_cost(cluster, wd, binary):
    rounds = env_int("ROUNDS", 5)
    seconds = env_int("SECONDS", 10)
    clients = env_int("CLIENTS", 8)
    targets = {
        "recording": proxies.Pgtally(cluster, wd, binary,
                                     extra_args=["--db", os.path.join(wd, "cost.db")]).start(),
        "no-db": proxies.Pgtally(cluster, wd, binary, extra_args=["--no-db"]).start(),
    }
    tps = proxies.interleaved_tps(targets, rounds, seconds, clients)
    med = {k: statistics.median(v) for k, v in tps.items()}
    print("cost: pgbench -S -M prepared -c %d, %d rounds x %d s, medians:" % (clients, rounds,
                                                                           seconds))
    print("  %-10s %9.0f tps (= statements/s recorded)" % ("recording", med["recording"]))
    print("  %-10s %9.0f tps" % ("no-db", med["no-db"]))
    print("  recording / no-db = %.3f" % (med["recording"] / med["no-db"]))
    for t in targets.values():
        t.stop()


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    if not binary or not os.access(binary, os.X_OK):
        raise SystemExit("usage: recording.py PATH/TO/pgtally")
    print("\n".join(proxies.machine_facts(binary)))
    cluster = h.Cluster().start()
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(cluster.port),
                    "-U", h.TRUST_USER, h.DBNAME], check=True, capture_output=True,
                   env=h.client_env())
    wd = proxies.workdir()
    if os.environ.get("SKIP_SOAK") != "1":
        run_soak(cluster, wd, binary)
    if os.environ.get("SKIP_COST") != "1":
        run_cost(cluster, wd, binary)


if __name__ == "__main__":
    main()
