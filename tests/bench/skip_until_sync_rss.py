"""Memory held by messages the server never answers: VmRSS of pgtally before and after one
client's skip-until-Sync attack.

Owns: the attack, over a raw socket (tests/integration/pgraw.py), and printing the figures.
After an extended-protocol error with no Sync sent, the server skips every message until the
client's Sync. MODE says what the client sends meanwhile, N times:
  query       distinct 64 KiB Queries, sent after the error came back
  pipelined   the same, sent right behind the failing Parse (before the error comes back)
  parse       named Parses with 64 KiB statement names
  named-real  (no error) named Parses with 60 kB names, each with its Sync: statements the
              server really keeps, so only the tracker's byte bounds limit what pgtally keeps
Asserts nothing.

Usage: skip_until_sync_rss.py PGTALLY_BINARY MODE N
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pgharness as h  # noqa: E402
import pgraw  # noqa: E402

SETTLE_S = 2.0  # let the proxy read and track everything sent before reading VmRSS


def attack_messages(mode, n):
    sql = "'" + "x" * (65536 - 16) + "'"
    for i in range(n):
        if mode in ("query", "pipelined"):
            yield pgraw.query("SELECT %06d, %s" % (i, sql))
        elif mode == "named-real":
            yield pgraw.parse(("s%06d" % i) + "n" * 60000, "SELECT 1") + pgraw.sync()
        else:
            yield pgraw.parse(("s%06d" % i) + "n" * (65536 - 64), "SELECT 1")


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("query", "pipelined", "parse", "named-real"):
        sys.exit(__doc__)
    os.environ["PGTALLY_BIN"] = sys.argv[1]
    mode, n = sys.argv[2], int(sys.argv[3])
    cluster = h.module_cluster()
    try:
        proxy = h.Proxy(cluster).start()
        c = pgraw.RawConn(proxy.port, timeout=120)
        c.startup(h.TRUST_USER, h.DBNAME)
        c.simple("SELECT 1")
        time.sleep(0.3)
        before = h.proc_status(proxy.pid)["VmRSS"]
        if mode != "named-real":
            c.send(pgraw.parse("", "SELEC syntax error") + pgraw.flush())
            if mode != "pipelined":
                c.read_until((b"E",))
        batch = []
        for m in attack_messages(mode, n):
            batch.append(m)
            if len(batch) == 256:
                c.send(b"".join(batch))
                batch = []
        c.send(b"".join(batch))
        time.sleep(SETTLE_S)
        after = h.proc_status(proxy.pid)
        c.send(pgraw.sync())
        for _ in range(n + 1 if mode == "named-real" else 1):
            c.read_until((b"Z",))
        c.simple("SELECT 'after the Sync'")
        print("%s N=%d: pgtally VmRSS before %d kB, after %d kB (VmHWM %d kB)"
              % (mode, n, before, after["VmRSS"], after["VmHWM"]))
        c.send(pgraw.terminate())
        c.close()
        proxy.stop()
    finally:
        h.stop_module_cluster()


if __name__ == "__main__":
    main()
