"""Idle-connection memory: VmRSS of pgtally and of pgbouncer (session mode) with no clients,
then holding CONNS (500) idle clients, then after those clients have gone.

Owns: opening the idle clients (raw sockets through tests/integration/pgraw.py: startup with
trust auth, one `SELECT 1`, then nothing) and printing the figures. The `SELECT 1` is there
because pgbouncer answers a client's startup from its cached server parameters and takes a
server connection only at the first query; after one query both proxies hold one server
connection per client, so both hold the same work. Asserts nothing.

Usage: idle_rss.py PGTALLY_BINARY     Environment: CONNS [500]
"""

import os
import sys
import time

import proxies
from proxies import h
import pgraw

SETTLE_S = 1.0  # let allocator and kernel settle before reading VmRSS


def server_connections(cluster):
    return int(cluster.admin_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'"
                                 % h.TRUST_USER).strip())


def measure(cluster, daemon, conns):
    daemon.start()
    try:
        time.sleep(SETTLE_S)
        idle = h.proc_status(daemon.pid)["VmRSS"]
        clients = []
        try:
            for _ in range(conns):
                c = pgraw.RawConn(daemon.port, timeout=30)
                clients.append(c)
                c.startup(h.TRUST_USER, h.DBNAME)
                c.simple("SELECT 1")
            time.sleep(SETTLE_S)
            held = h.proc_status(daemon.pid)
            parts = proxies.rss_breakdown(daemon.pid)
            files = proxies.rss_by_file(daemon.pid)
            dirty_clean = proxies.rss_dirty_clean(daemon.pid)
            servers = server_connections(cluster)
        finally:
            for c in clients:
                c.send(pgraw.terminate())
                c.close()
        time.sleep(SETTLE_S * 2)
        after = h.proc_status(daemon.pid)["VmRSS"]
        return {"idle": idle, "held": held["VmRSS"], "hwm": held["VmHWM"], "after": after,
                "servers": servers, "parts": parts, "files": files,
                "dirty_clean": dirty_clean}
    finally:
        daemon.stop()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: idle_rss.py PGTALLY_BINARY")
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        sys.exit("idle_rss: %s is not executable (build first)" % binary)
    conns = int(os.environ.get("CONNS") or 500)

    print("# Idle connections: proxy VmRSS with %d idle clients\n" % conns)
    for fact in proxies.machine_facts(binary):
        print("- " + fact)
    sys.stdout.flush()

    # every client holds a backend through either proxy; leave room for admin connections
    cluster = h.Cluster(settings={"max_connections": conns + 40}).start()
    wd = proxies.workdir()
    results = {}
    for d in (proxies.Pgtally(cluster, wd, binary),
              proxies.Pgbouncer(cluster, wd, max_clients=conns + 20)):
        results[d.name] = measure(cluster, d, conns)

    print("\n| proxy | VmRSS idle | VmRSS with %d clients | per client | VmHWM "
          "| VmRSS after they left | backends while held |" % conns)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print("| %s | %d kB | %d kB | %.1f kB | %d kB | %d kB | %d |"
              % (name, r["idle"], r["held"], (r["held"] - r["idle"]) / conns, r["hwm"],
                 r["after"], r["servers"]))
    for name, r in results.items():
        print("\n%s with %d clients, RSS by kind (kB): %s" % (
            name, conns, ", ".join("%s %d" % kv for kv in r["parts"].items())))
        print("  files: " + ", ".join("%s %d" % (os.path.basename(f), kb)
                                      for f, kb in r["files"][:8]))
        print("  by mapping, kB resident = written (private or shared dirty) + clean (read "
              "from the file, shared by the page cache):")
        for name_, rss, dirty, clean in r["dirty_clean"][:12]:
            print("    %-28s %6d = %6d + %6d" % (name_, rss, dirty, clean))
    cluster.destroy()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("idle_rss: interrupted", file=sys.stderr)
        sys.exit(130)
