"""Proxy throughput benchmark: pgbench -S through pgtally, pgbouncer (session mode) and haproxy
(TCP mode), against the same throwaway PostgreSQL, compared with connecting directly.

Owns: the run plan (query modes x client counts x interleaved rounds), running pgbench, reading
TPS and the proxy process's CPU and context switches per transaction, and printing medians and
ratios as Markdown tables (docs/benchmarks.md, "Proxy throughput", holds one such run). It
prints numbers; it asserts nothing about them.

Why interleaved rounds: on a small shared machine the background load drifts; running every
target once per round, in an order rotated each round, spreads that drift over all targets
instead of charging it to whichever ran last. Medians then drop the odd disturbed run.

pgtally is run twice, as "pgtally" (--io uring) and "pgtally_epoll" (--io epoll).
Besides ratios of median TPS, the medians of per-round ratios (each ratio taken between runs of
the same round, which share that round's background load) are printed: the steadier figure on
a shared machine.

Usage: pgbench_compare.py PGTALLY_BINARY
Environment (defaults in brackets):
  ROUNDS [5]           rounds; each round runs every target once per mode and client count
  SECONDS [10]         pgbench -T per run
  MODES [simple,extended,prepared]   CLIENTS [1,8]   SCALE [10]
  HAPROXY_THREADS [1]  haproxy nbthread
  PGTALLY_ARGS         extra arguments for `pgtally proxy` (e.g. "--log-queries /tmp/q.jsonl")
  PROFILE [0]          if 1, afterwards run each proxy once more per mode at -c 1 and -c 8 under
                       `strace -c -f` and print system calls per transaction (strace slows the
                       proxy down, so these runs are not part of the TPS tables)
  RESULTS_JSON         if set, every sample is also written there as JSON
"""

import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

import proxies
from proxies import h

# pgtally runs twice: on its io_uring data path (--io uring) and on epoll (--io epoll).
TARGETS = ["direct", "pgtally", "pgtally_epoll", "pgbouncer", "haproxy"]
PROXIES = TARGETS[1:]


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_list(name, default):
    v = os.environ.get(name, "")
    return [x.strip() for x in v.split(",") if x.strip()] if v.strip() else default


def pgbench_cmd(port, mode, clients, seconds):
    # -n: the tables are vacuumed once after -i; a per-run VACUUM would only add noise.
    return [h.pgbin("pgbench"), "-n", "-S", "-M", mode, "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", str(seconds),
            "-h", "127.0.0.1", "-p", str(port), "-U", h.TRUST_USER, h.DBNAME]


def parse_pgbench(out):
    tps = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out, re.M) \
        or re.search(r"^tps = ([0-9.]+)", out, re.M)
    txns = re.search(r"number of transactions actually processed: (\d+)", out)
    if not tps or not txns:
        raise RuntimeError("cannot read pgbench output:\n" + out)
    return float(tps.group(1)), int(txns.group(1))


def run_pgbench(port, mode, clients, seconds, pid=None, env=None):
    """One pgbench run; with pid, also the CPU and context switches of that process.
    env: extra client environment (e.g. {"PGSSLMODE": "require"} for tls_compare.py)."""
    cmd = pgbench_cmd(port, mode, clients, seconds)
    cpu0 = proxies.cpu_ns(pid) if pid else 0
    cs0 = proxies.ctx_switches(pid) if pid else (0, 0)
    r = subprocess.run(cmd, capture_output=True, text=True, env=h.client_env(**(env or {})),
                       timeout=seconds * 3 + 60)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s"
                           % (shlex.join(cmd), r.returncode, r.stdout, r.stderr))
    tps, txns = parse_pgbench(r.stdout)
    sample = {"tps": tps, "txns": txns}
    if pid:
        cs1 = proxies.ctx_switches(pid)
        sample["cpu_us_per_txn"] = (proxies.cpu_ns(pid) - cpu0) / 1e3 / max(txns, 1)
        sample["vcs_per_txn"] = (cs1[0] - cs0[0]) / max(txns, 1)
        sample["ivcs_per_txn"] = (cs1[1] - cs0[1]) / max(txns, 1)
    return sample


def strace_run(wd, port, pid, mode, clients, seconds):
    """System calls per transaction of pid during one pgbench run: {syscall: calls/txn}."""
    out = os.path.join(wd, "strace.txt")
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let strace attach to every thread before the load starts
    try:
        sample = run_pgbench(port, mode, clients, seconds)
    finally:
        st.send_signal(signal.SIGINT)  # detaches and writes the summary
        st.wait(timeout=30)
    calls = {}
    with open(out) as f:
        for line in f:
            tok = line.split()
            # "% time seconds usecs/call calls [errors] syscall"; the errors column may be empty
            if len(tok) in (5, 6) and tok[3].isdigit() and tok[-1] != "total":
                calls[tok[-1]] = int(tok[3]) / max(sample["txns"], 1)
    return sample, calls


def report_dead(target, daemons):
    """After a failed run: says whether the target's process is gone, and its log tail."""
    d = daemons.get(target)
    if d is None:
        print("pgbench_compare: the run against %s (direct) failed" % target, file=sys.stderr)
        return
    rc = d.proc.poll()
    state = "still running" if rc is None else (
        "killed by signal %d" % -rc if rc < 0 else "exited with %d" % rc)
    print("pgbench_compare: %s (pid %d) is %s; its log:\n%s"
          % (target, d.pid, state, d.log_tail()), file=sys.stderr)


def fmt_tps(x):
    return "%.0f" % x


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pgbench_compare.py PGTALLY_BINARY")
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        sys.exit("pgbench_compare: %s is not executable (build first)" % binary)
    rounds = env_int("ROUNDS", 5)
    seconds = env_int("SECONDS", 10)
    scale = env_int("SCALE", 10)
    modes = env_list("MODES", ["simple", "extended", "prepared"])
    clients_list = [int(c) for c in env_list("CLIENTS", ["1", "8"])]
    threads = env_int("HAPROXY_THREADS", 1)
    pgtally_args = shlex.split(os.environ.get("PGTALLY_ARGS", ""))

    print("# Proxy throughput: pgbench -S, direct vs pgtally vs pgbouncer vs haproxy\n")
    print("Parameters: ROUNDS=%d SECONDS=%d SCALE=%d MODES=%s CLIENTS=%s HAPROXY_THREADS=%d%s"
          % (rounds, seconds, scale, ",".join(modes), ",".join(map(str, clients_list)),
             threads, (" PGTALLY_ARGS=%r" % " ".join(pgtally_args)) if pgtally_args else ""))
    for fact in proxies.machine_facts(binary):
        print("- " + fact)
    sys.stdout.flush()

    # shared_buffers holds the whole scale-10 data set, so runs measure the wire, not the disk
    cluster = h.Cluster(settings={"shared_buffers": "256MB"}).start()
    init = [h.pgbin("pgbench"), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1",
            "-p", str(cluster.port), "-U", h.TRUST_USER, h.DBNAME]
    r = subprocess.run(init, capture_output=True, text=True, env=h.client_env())
    if r.returncode != 0:
        sys.exit("pgbench -i failed:\n%s" % r.stderr)

    wd = proxies.workdir()
    daemons = {
        "pgtally": proxies.Pgtally(cluster, wd, binary, ["--io", "uring"] + pgtally_args).start(),
        "pgtally_epoll": proxies.Pgtally(cluster, wd, binary, ["--io", "epoll"] + pgtally_args,
                                         name="pgtally_epoll").start(),
        "pgbouncer": proxies.Pgbouncer(cluster, wd, max_clients=100).start(),
        "haproxy": proxies.Haproxy(cluster, wd, threads=threads, max_clients=100).start(),
    }
    ports = {"direct": cluster.port}
    ports.update({k: d.port for k, d in daemons.items()})
    pids = {k: d.pid for k, d in daemons.items()}

    print("\nCommand per run (PORT = each target's port, -c/-j/-M as in the tables):\n")
    print("    %s -n -S -M MODE -c N -j min(N,2) -T %d -h 127.0.0.1 -p PORT -U %s %s"
          % (h.pgbin("pgbench"), seconds, h.TRUST_USER, h.DBNAME))
    print("\nTargets: direct 127.0.0.1:%d; pgtally, pgbouncer (pool_mode=session), haproxy "
          "(mode tcp, nbthread %d) on 127.0.0.1, all upstream to it over TCP."
          % (cluster.port, threads))
    sys.stdout.flush()

    # Warm-up: the first runs after -i pay for cold caches and first connections.
    for t in TARGETS:
        run_pgbench(ports[t], "simple", 2, 2)

    configs = [(m, c) for m in modes for c in clients_list]
    samples = {cfg: {t: [] for t in TARGETS} for cfg in configs}
    t0 = time.monotonic()
    restarts = []
    for rnd in range(rounds):
        for cfg in configs:
            k = (rnd + configs.index(cfg)) % len(TARGETS)
            for t in TARGETS[k:] + TARGETS[:k]:
                d = daemons.get(t)
                if d is not None and d.proc.poll() is not None:
                    # A proxy that went away between runs is a finding, not a reason to lose
                    # the run: say so loudly (here and in the output), then start it again.
                    report_dead(t, daemons)
                    restarts.append("round %d, before %s -c %d: %s had exited (rc %s); "
                                    "restarted" % (rnd + 1, cfg[0], cfg[1], t, d.proc.returncode))
                    d.start()
                    ports[t], pids[t] = d.port, d.pid
                try:
                    samples[cfg][t].append(
                        run_pgbench(ports[t], cfg[0], cfg[1], seconds, pids.get(t)))
                except RuntimeError:
                    report_dead(t, daemons)
                    raise
        print("round %d/%d done (%.0f s)" % (rnd + 1, rounds, time.monotonic() - t0),
              file=sys.stderr, flush=True)

    with open("/proc/loadavg") as f:
        print("- load average at end: %s" % " ".join(f.read().split()[:3]))

    for note in restarts:
        print("- NOTE: " + note)

    med = {cfg: {t: statistics.median(s["tps"] for s in samples[cfg][t]) for t in TARGETS}
           for cfg in configs}

    print("\n## Median TPS (ratio to direct)\n")
    print("| mode | -c | direct | pgtally uring | pgtally epoll | pgbouncer | haproxy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        m = med[cfg]
        cells = [fmt_tps(m["direct"])] + ["%s (%.2fx)" % (fmt_tps(m[t]), m[t] / m["direct"])
                                          for t in PROXIES]
        print("| %s | %d | %s |" % (cfg[0], cfg[1], " | ".join(cells)))

    print("\n## Medians of per-round ratios\n")
    print("| mode | -c | uring/pgbouncer | epoll/pgbouncer | uring/epoll | uring/haproxy "
          "| uring/direct |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        s = samples[cfg]

        def rr(a, b):
            return statistics.median(x["tps"] / y["tps"] for x, y in zip(s[a], s[b]))
        print("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f |"
              % (cfg[0], cfg[1], rr("pgtally", "pgbouncer"), rr("pgtally_epoll", "pgbouncer"),
                 rr("pgtally", "pgtally_epoll"), rr("pgtally", "haproxy"),
                 rr("pgtally", "direct")))

    print("\n## pgtally against its peers; added latency per query at -c 1\n")
    print("Added latency = 1e6/tps_target - 1e6/tps_direct (µs, from medians; one query per "
          "transaction with -S).\n")
    print("| mode | -c | pgtally/pgbouncer | pgtally/haproxy "
          "| +µs pgtally | +µs pgtally epoll | +µs pgbouncer | +µs haproxy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        m = med[cfg]
        if cfg[1] == 1:
            lat = ["%.1f" % (1e6 / m[t] - 1e6 / m["direct"]) for t in PROXIES]
        else:
            lat = ["–"] * len(PROXIES)
        print("| %s | %d | %.3f | %.3f | %s |" % (cfg[0], cfg[1], m["pgtally"] / m["pgbouncer"],
                                                  m["pgtally"] / m["haproxy"], " | ".join(lat)))

    print("\n## Proxy process cost per transaction (medians)\n")
    print("CPU = all threads of the proxy process (schedstat); cs = voluntary context switches "
          "(involuntary in parentheses).\n")
    print("| mode | -c | CPU µs pgtally | CPU µs pgtally epoll | CPU µs pgbouncer "
          "| CPU µs haproxy | cs pgtally | cs pgtally epoll | cs pgbouncer | cs haproxy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        def m(t, key):
            return statistics.median(s[key] for s in samples[cfg][t])
        cpu = ["%.1f" % m(t, "cpu_us_per_txn") for t in PROXIES]
        cs = ["%.2f (%.2f)" % (m(t, "vcs_per_txn"), m(t, "ivcs_per_txn")) for t in PROXIES]
        print("| %s | %d | %s | %s |" % (cfg[0], cfg[1], " | ".join(cpu), " | ".join(cs)))

    print("\n## Issue targets (informational; nothing is asserted)\n")
    for cfg in configs:
        m = med[cfg]
        if cfg[1] == 8:
            print("- %s -c 8: pgtally/pgbouncer %.3f (target >= 1.05: %s), pgtally/haproxy %.3f "
                  "(target >= 1.00: %s)"
                  % (cfg[0], m["pgtally"] / m["pgbouncer"],
                     "met" if m["pgtally"] >= 1.05 * m["pgbouncer"] else "not met",
                     m["pgtally"] / m["haproxy"],
                     "met" if m["pgtally"] >= m["haproxy"] else "not met"))
        elif cfg[1] == 1:
            # no more added latency than either peer == TPS at least as high as both
            print("- %s -c 1: pgtally adds no more latency per query than pgbouncer and "
                  "haproxy: %s" % (cfg[0], "met" if m["pgtally"] >= max(m["pgbouncer"],
                                                                        m["haproxy"])
                                   else "not met"))

    print("\n## Every sample (TPS, in round order)\n")
    for cfg in configs:
        for t in TARGETS:
            print("- %s -c %d %-13s %s" % (cfg[0], cfg[1], t,
                                         " ".join(fmt_tps(s["tps"]) for s in samples[cfg][t])))

    if os.environ.get("RESULTS_JSON"):
        with open(os.environ["RESULTS_JSON"], "w") as f:
            json.dump([{"mode": cfg[0], "clients": cfg[1], "target": t, "samples": samples[cfg][t]}
                       for cfg in configs for t in TARGETS], f, indent=1)

    if os.environ.get("PROFILE") == "1":
        print("\n## System calls per transaction under strace -c -f (one run each, %d s)\n"
              % seconds)
        print("strace slows the traced proxy severalfold; only the call counts mean anything.\n")
        for cfg in configs:
            for t in PROXIES:
                sample, calls = strace_run(wd, ports[t], pids[t], cfg[0], cfg[1], seconds)
                top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
                print("- %s -c %d %-13s %.2f calls/txn: %s"
                      % (cfg[0], cfg[1], t, sum(calls.values()),
                         ", ".join("%s %.2f" % kv for kv in top)))
                sys.stdout.flush()

    for d in daemons.values():
        d.stop()
    cluster.destroy()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # atexit stops the proxies and the cluster; a traceback would say nothing more
        print("pgbench_compare: interrupted", file=sys.stderr)
        sys.exit(130)
