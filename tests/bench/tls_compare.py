"""TLS cost benchmark: pgbench -S -M prepared straight to a TLS PostgreSQL and through pgtally
with each TLS arrangement of its two legs, against one throwaway cluster with ssl=on.

Owns: the TLS targets and their table. Everything else is reused: the cluster comes from
tests/integration/pgharness.py, the certificates from tests/integration/test_tls.py (make_pki:
a throwaway CA and a localhost certificate each for the server and the proxy), the proxy
daemon from proxies.py, and the pgbench command line, its parsing and the per-process CPU
counters from pgbench_compare.py. Prints numbers; asserts nothing. docs/benchmarks.md ("TLS")
holds one run.

Targets (the client is pgbench; "TLS" means sslmode=require on that leg):
  direct          client -> PostgreSQL, plaintext (the ceiling)
  direct-tls      client -> PostgreSQL, TLS (what an app with sslmode=require has today)
  plain           client -> pgtally -> PostgreSQL, plaintext both legs
  up-tls          client -> pgtally plaintext, pgtally -> PostgreSQL TLS (managed databases)
  term            client -> pgtally TLS (--tls-cert), pgtally -> PostgreSQL plaintext
  both-tls        TLS on both legs

Usage: tls_compare.py PGTALLY_BINARY
Environment (defaults in brackets): ROUNDS [3], SECONDS [5], CLIENTS [1,8], SCALE [10],
MODE [prepared].
"""

import os
import statistics
import subprocess
import sys
import time

import pgbench_compare as pc
import proxies
from proxies import h

import test_tls  # noqa: E402  (tests/integration is on sys.path via proxies)

TARGETS = ["direct", "direct-tls", "plain", "up-tls", "term", "both-tls"]
PGTALLY_TARGETS = TARGETS[2:]
LABELS = {
    "direct": "direct",
    "direct-tls": "direct TLS",
    "plain": "pgtally, plaintext",
    "up-tls": "pgtally, TLS upstream",
    "term": "pgtally, TLS client leg",
    "both-tls": "pgtally, TLS both legs",
}
CLIENT_TLS = {"direct-tls", "term", "both-tls"}


class TlsPgtally(proxies.Pgtally):
    """pgtally with an upstream URL carrying sslmode, optionally terminating client TLS."""

    def __init__(self, cluster, workdir, binary, name, sslmode, tls_files=None):
        args = []
        if tls_files:
            args = ["--tls-cert", tls_files[0], "--tls-key", tls_files[1]]
        super().__init__(cluster, workdir, binary, args)
        self.name = name
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.sslmode = sslmode

    def command(self, port):
        cmd = super().command(port)
        cmd[cmd.index("--upstream") + 1] = "postgres://127.0.0.1:%d/?sslmode=%s" % (
            self.cluster.port, self.sslmode)
        return cmd


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tls_compare.py PGTALLY_BINARY")
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        sys.exit("tls_compare: %s is not executable (build first)" % binary)
    rounds = pc.env_int("ROUNDS", 3)
    seconds = pc.env_int("SECONDS", 5)
    scale = pc.env_int("SCALE", 10)
    mode = os.environ.get("MODE", "").strip() or "prepared"
    clients_list = [int(c) for c in pc.env_list("CLIENTS", ["1", "8"])]

    print("# TLS: pgbench -S -M %s, direct vs through pgtally, each leg plaintext or TLS\n"
          % mode)
    print("Parameters: ROUNDS=%d SECONDS=%d SCALE=%d MODE=%s CLIENTS=%s"
          % (rounds, seconds, scale, mode, ",".join(map(str, clients_list))))
    for fact in proxies.machine_facts(binary):
        if not fact.startswith(("pgbouncer", "haproxy")):
            print("- " + fact)
    print("- openssl: %s" % proxies._first_line(["openssl", "version"]))
    sys.stdout.flush()

    pki = test_tls.make_pki()
    cluster = h.Cluster(settings={"shared_buffers": "256MB", "ssl": "on",
                                  "ssl_cert_file": pki["server.crt"],
                                  "ssl_key_file": pki["server.key"]}).start()
    init = [h.pgbin("pgbench"), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1",
            "-p", str(cluster.port), "-U", h.TRUST_USER, h.DBNAME]
    r = subprocess.run(init, capture_output=True, text=True, env=h.client_env())
    if r.returncode != 0:
        sys.exit("pgbench -i failed:\n%s" % r.stderr)

    wd = proxies.workdir()
    tls_files = (pki["proxy.crt"], pki["proxy.key"])
    daemons = {
        "plain": TlsPgtally(cluster, wd, binary, "plain", "disable"),
        "up-tls": TlsPgtally(cluster, wd, binary, "up-tls", "require"),
        "term": TlsPgtally(cluster, wd, binary, "term", "disable", tls_files),
        "both-tls": TlsPgtally(cluster, wd, binary, "both-tls", "require", tls_files),
    }
    for d in daemons.values():
        d.start()
    ports = {"direct": cluster.port, "direct-tls": cluster.port}
    ports.update({k: d.port for k, d in daemons.items()})

    def env(t):
        return {"PGSSLMODE": "require" if t in CLIENT_TLS else "disable"}

    def run(t, clients, secs):
        d = daemons.get(t)
        try:
            return pc.run_pgbench(ports[t], mode, clients, secs, d.pid if d else None,
                                  env=env(t))
        except RuntimeError:
            pc.report_dead(t, daemons)
            raise

    print("\nCommand per run (PORT = each target's port; PGSSLMODE=require on a TLS client "
          "leg, disable otherwise):\n")
    print("    PGSSLMODE=... %s -n -S -M %s -c N -j min(N,2) -T %d -h 127.0.0.1 -p PORT -U %s %s"
          % (h.pgbin("pgbench"), mode, seconds, h.TRUST_USER, h.DBNAME))
    print("\npgtally: `pgtally proxy --listen 127.0.0.1:P --upstream "
          "'postgres://127.0.0.1:PG/?sslmode=disable|require' --log-level warn` "
          "[--tls-cert proxy.crt --tls-key proxy.key]; server ssl=on (ECDSA P-256 "
          "certificates from a throwaway CA). pgbench connects once per client, so the runs "
          "measure encryption per query, not handshakes.")
    sys.stdout.flush()

    for t in TARGETS:  # warm-up: first connections, caches; also checks every target works
        run(t, 2, 2)

    samples = {c: {t: [] for t in TARGETS} for c in clients_list}
    t0 = time.monotonic()
    for rnd in range(rounds):
        for ci, clients in enumerate(clients_list):
            k = (rnd + ci) % len(TARGETS)
            for t in TARGETS[k:] + TARGETS[:k]:
                samples[clients][t].append(run(t, clients, seconds))
        print("round %d/%d done (%.0f s)" % (rnd + 1, rounds, time.monotonic() - t0),
              file=sys.stderr, flush=True)

    with open("/proc/loadavg") as f:
        print("- load average at end: %s" % " ".join(f.read().split()[:3]))

    med = {c: {t: statistics.median(s["tps"] for s in samples[c][t]) for t in TARGETS}
           for c in clients_list}

    print("\n## Median TPS (ratio to direct TLS)\n")
    print("| -c | " + " | ".join(LABELS[t] for t in TARGETS) + " |")
    print("|---:|" + "---:|" * len(TARGETS))
    for c in clients_list:
        m = med[c]
        cells = ["%s (%.2fx)" % (pc.fmt_tps(m[t]), m[t] / m["direct-tls"]) for t in TARGETS]
        print("| %d | %s |" % (c, " | ".join(cells)))

    print("\n## What TLS costs\n")
    print("| -c | direct TLS / direct | pgtally TLS upstream / plaintext "
          "| TLS client leg / plaintext | TLS both legs / plaintext "
          "| pgtally TLS both legs / direct TLS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in clients_list:
        m = med[c]
        print("| %d | %.2f | %.2f | %.2f | %.2f | %.2f |"
              % (c, m["direct-tls"] / m["direct"], m["up-tls"] / m["plain"],
                 m["term"] / m["plain"], m["both-tls"] / m["plain"],
                 m["both-tls"] / m["direct-tls"]))
    if 1 in clients_list:
        m = med[1]
        print("\nAdded latency per query at -c 1 versus direct TLS (µs, from medians): "
              + ", ".join("%s %+.0f" % (LABELS[t], 1e6 / m[t] - 1e6 / m["direct-tls"])
                          for t in PGTALLY_TARGETS))

    print("\n## pgtally CPU per transaction (µs, all threads, medians)\n")
    print("| -c | " + " | ".join(LABELS[t] for t in PGTALLY_TARGETS) + " |")
    print("|---:|" + "---:|" * len(PGTALLY_TARGETS))
    for c in clients_list:
        print("| %d | %s |" % (c, " | ".join(
            "%.1f" % statistics.median(s["cpu_us_per_txn"] for s in samples[c][t])
            for t in PGTALLY_TARGETS)))

    print("\n## Every sample (TPS, in round order)\n")
    for c in clients_list:
        for t in TARGETS:
            print("- -c %d %-10s %s" % (c, t, " ".join(pc.fmt_tps(s["tps"])
                                                      for s in samples[c][t])))

    for d in daemons.values():
        d.stop()
    cluster.destroy()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("tls_compare: interrupted", file=sys.stderr)
        sys.exit(130)
