"""Benchmark support: the three proxies compared in tests/bench (pgtally, pgbouncer, haproxy),
each started on a free port of 127.0.0.1 in front of one pgharness cluster, plus per-process
CPU and context-switch counters and the machine facts printed with every result.

Owns: writing the pgbouncer and haproxy configs into a private temp dir, starting each daemon
in its own session (so the terminal's Ctrl-C reaches only the benchmark script, which then
stops them in order) with a parent-death signal (so a SIGKILLed script leaves nothing behind),
and stopping them. The PostgreSQL cluster itself comes from tests/integration/pgharness.py.

Stdlib only: run with Debian's /usr/bin/python3.
"""

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import pgharness as h  # noqa: E402  (path set just above)

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1

# Daemons still running, stopped newest first at exit. Registered after pgharness's own atexit
# hook, so it runs before that one: proxies go down before the cluster they point at.
_running = []


def _stop_all():
    while _running:
        d = _running.pop()
        try:
            d.stop()
        except Exception as e:  # the rest must still be stopped
            print("proxies: stopping %s failed: %r" % (d.name, e), file=sys.stderr)


atexit.register(_stop_all)


def _exit_on_signal(signum, frame):
    # SIGHUP (terminal closed) and SIGTERM become a normal exit so atexit cleans up; SIGINT
    # already raises KeyboardInterrupt, which does the same.
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)
# A shell without job control starts background commands with SIGINT ignored, and Python keeps
# an inherited SIG_IGN; restore KeyboardInterrupt so Ctrl-C / kill -INT always cleans up.
signal.signal(signal.SIGINT, signal.default_int_handler)


def _pdeathsig():
    # Runs in the child after Popen has switched uid: a uid change clears the parent-death
    # signal, so it must be set here, not before.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Daemon:
    """One proxy process. Subclasses write their config and build the command for a port."""

    name = "daemon"
    run_as = None  # a user name when the daemon refuses to run as root

    def __init__(self, cluster, workdir):
        self.cluster = cluster
        self.workdir = workdir
        self.port = None
        self.proc = None
        self.log_path = os.path.join(workdir, "%s.log" % self.name)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self, port):
        raise NotImplementedError

    def start(self, timeout=15):
        last = ""
        for _ in range(3):  # retry only when the free port was taken before we bound it
            self.port = h.free_port()
            cmd = self.command(self.port)
            kw = {}
            if self.run_as and os.geteuid() == 0:
                pw = pwd.getpwnam(self.run_as)
                kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=self.workdir,
                                         start_new_session=True, preexec_fn=_pdeathsig,
                                         **kw)
            log.close()
            _running.append(self)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if h.port_accepts(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
            last = self.log_tail()
        raise RuntimeError("%s did not start:\n%s" % (self.name, last))

    def stop(self, timeout=15):
        if self in _running:
            _running.remove(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Pgtally(Daemon):
    name = "pgtally"

    def __init__(self, cluster, workdir, binary, extra_args=(), name=None):
        if name:
            self.name = name  # two pgtally daemons (one per --io path) need their own files
        super().__init__(cluster, workdir)
        self.binary = binary
        self.extra_args = list(extra_args)

    def command(self, port):
        return [self.binary, "proxy", "--listen", "127.0.0.1:%d" % port,
                "--upstream", "127.0.0.1:%d" % self.cluster.port,
                "--db", "%s.db" % self.name] + self.extra_args


class Pgbouncer(Daemon):
    """pgbouncer in session mode: one server connection per client, like pgtally."""

    name = "pgbouncer"
    run_as = "postgres"  # pgbouncer refuses to run as root

    def __init__(self, cluster, workdir, max_clients=1000):
        super().__init__(cluster, workdir)
        self.max_clients = max_clients
        self.ini = os.path.join(workdir, "pgbouncer.ini")

    def command(self, port):
        users = os.path.join(self.workdir, "userlist.txt")
        with open(users, "w") as f:
            # auth_type=trust still needs the user listed; the password is not checked.
            f.write('"%s" ""\n' % h.TRUST_USER)
        with open(self.ini, "w") as f:
            f.write(
                "; written by tests/bench/proxies.py\n"
                "[databases]\n"
                "%s = host=127.0.0.1 port=%d dbname=%s\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                "listen_port = %d\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                "auth_file = %s\n"
                "pool_mode = session\n"
                "max_client_conn = %d\n"
                # session mode holds a server connection per client: the pool must fit them all
                "default_pool_size = %d\n"
                "log_connections = 0\n"
                "log_disconnections = 0\n"
                "stats_period = 3600\n"
                "ignore_startup_parameters = extra_float_digits\n"
                % (h.DBNAME, self.cluster.port, h.DBNAME, port, users, self.max_clients,
                   self.max_clients))
        if os.geteuid() == 0:
            for p in (users, self.ini):
                shutil.chown(p, self.run_as)
        return ["pgbouncer", self.ini]


class Haproxy(Daemon):
    """haproxy as a plain TCP relay: the floor any extra hop costs."""

    name = "haproxy"

    def __init__(self, cluster, workdir, threads=1, max_clients=1000):
        super().__init__(cluster, workdir)
        self.threads = threads
        self.max_clients = max_clients
        self.cfg = os.path.join(workdir, "haproxy.cfg")

    def command(self, port):
        with open(self.cfg, "w") as f:
            f.write(
                "# written by tests/bench/proxies.py\n"
                "global\n"
                "    maxconn %d\n"
                # one thread like pgtally and pgbouncer: the comparison is the cost of a hop,
                # not how many cores a relay can use (HAPROXY_THREADS overrides)
                "    nbthread %d\n"
                "defaults\n"
                "    mode tcp\n"
                "    timeout connect 10s\n"
                "    timeout client 1h\n"
                "    timeout server 1h\n"
                "frontend pg\n"
                "    bind 127.0.0.1:%d\n"
                "    default_backend pg\n"
                "backend pg\n"
                "    server pg 127.0.0.1:%d\n"
                % (self.max_clients * 2, self.threads, port, self.cluster.port))
        return ["haproxy", "-f", self.cfg, "-db"]


def workdir():
    """A private temp dir for configs and logs, readable by the postgres user, removed at exit."""
    d = tempfile.mkdtemp(prefix="pgtally-bench-")
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    atexit.register(shutil.rmtree, d, True)
    return d


# --- per-process counters ---------------------------------------------------------------------

def cpu_ns(pid):
    """CPU time of all threads of pid, in ns (from schedstat: finer than clock ticks)."""
    total = 0
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just exited
    return total


def ctx_switches(pid):
    """(voluntary, involuntary) context switches summed over all threads of pid."""
    vol = invol = 0
    for path in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


# --- machine facts ----------------------------------------------------------------------------

def _first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine_facts(pgtally_bin=None):
    """Lines describing where the numbers came from."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    rev = _first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    facts = [
        "nproc: %d (%s)" % (len(os.sched_getaffinity(0)), cpu),
        "kernel: %s" % os.uname().release,
        "postgres: %s" % _first_line([h.pgbin("postgres"), "--version"]),
        "pgbench: %s" % _first_line([h.pgbin("pgbench"), "--version"]),
        "pgbouncer: %s" % _first_line(["pgbouncer", "--version"]),
        "haproxy: %s" % _first_line(["haproxy", "-v"]),
        # the tree's HEAD and the binary's build time: a binary older than HEAD is stale
        "pgtally: tree at git %s (HEAD committed %s); binary %s built %s"
        % (rev, _first_line(["git", "-C", ROOT, "log", "-1", "--format=%cd",
                             "--date=format:%Y-%m-%d %H:%M:%S"]),
           pgtally_bin, time.strftime("%Y-%m-%d %H:%M:%S",
                                      time.localtime(os.path.getmtime(pgtally_bin))))
        if pgtally_bin else "pgtally: tree at git %s" % rev,
        "load average at start: %s" % load,
    ]
    return facts


def interleaved_tps(targets, rounds, seconds, clients):
    """pgbench -S -M prepared -c CLIENTS against each started target ({name: Daemon}), ROUNDS
    rounds of SECONDS each, alternating the order every round; prints each sample and returns
    {name: [tps, ...]}."""

    tps = {k: [] for k in targets}
    for rnd in range(rounds):
        order = list(targets) if rnd % 2 == 0 else list(reversed(list(targets)))
        for name in order:
            cmd = ["pgbench", "-n", "-S", "-M", "prepared", "-c", str(clients),
                   "-j", str(min(clients, 2)), "-T", str(seconds), "-h", "127.0.0.1",
                   "-p", str(targets[name].port), "-U", h.TRUST_USER, h.DBNAME]
            r = subprocess.run(cmd, capture_output=True, text=True, env=h.client_env())
            value = None
            for line in r.stdout.splitlines():
                if line.startswith("tps = "):
                    value = float(line.split()[2])
            if value is None:
                raise SystemExit("pgbench failed:\n%s%s" % (r.stdout, r.stderr))
            tps[name].append(value)
            print("  round %d %-10s %9.0f tps" % (rnd + 1, name, value))
    return tps


def rss_by_file(pid):
    """Resident kB per mapped file (libraries, the binary), largest first."""
    files = {}
    with open("/proc/%d/smaps" % pid) as f:
        name = None
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = fields[5] if len(fields) > 5 and fields[5].startswith("/") else None
            elif name and fields and fields[0] == "Rss:":
                files[name] = files.get(name, 0) + int(fields[1])
    return sorted(files.items(), key=lambda kv: -kv[1])


def rss_dirty_clean(pid):
    """Resident kB per mapping name from /proc/PID/smaps, split into the pages the process
    wrote (Private_Dirty + Shared_Dirty: its own memory, relocated data and GOTs of
    libraries included) and clean pages (code and read-only data read from a file, which the
    page cache shares with every process mapping the same file). Anonymous mappings other
    than the heap and the stack are summed as "anon". Returns [(name, rss, dirty, clean)],
    largest first. Linux only."""
    acc = {}
    with open("/proc/%d/smaps" % pid) as f:
        cur = None
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = fields[5] if len(fields) > 5 else ""
                name = os.path.basename(name) if name.startswith("/") else (name or "anon")
                cur = acc.setdefault(name, {"rss": 0, "dirty": 0, "clean": 0})
            elif cur is not None and fields and fields[0] in (
                    "Rss:", "Private_Dirty:", "Shared_Dirty:", "Private_Clean:",
                    "Shared_Clean:"):
                kb = int(fields[1])
                if fields[0] == "Rss:":
                    cur["rss"] += kb
                elif fields[0].endswith("Dirty:"):
                    cur["dirty"] += kb
                else:
                    cur["clean"] += kb
    rows = [(n, v["rss"], v["dirty"], v["clean"]) for n, v in acc.items() if v["rss"]]
    return sorted(rows, key=lambda r: -r[1])


def rss_breakdown(pid):
    """Where a process's resident memory is, from /proc/PID/smaps, in kB: the main heap, the
    other threads' malloc arenas, large anonymous mmaps (big mallocs, SQLite, stacks),
    file-backed code and data, and the total (Rss of smaps_rollup). Linux only."""
    parts = {"heap": 0, "arenas": 0, "anon": 0, "stack": 0, "files": 0}
    maps = []
    with open("/proc/%d/smaps" % pid) as f:
        cur = None
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                cur = {"lo": lo, "hi": hi, "perms": fields[1],
                       "name": fields[5] if len(fields) > 5 else "", "rss": 0}
                maps.append(cur)
            elif fields and fields[0] == "Rss:" and cur is not None:
                cur["rss"] = int(fields[1])
    arena_size = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's reservation
    for i, m in enumerate(maps):
        if m["name"] == "[heap]":
            parts["heap"] += m["rss"]
        elif m["name"] == "[stack]":
            parts["stack"] += m["rss"]
        elif m["name"].startswith("/"):
            parts["files"] += m["rss"]
        elif not m["name"]:
            # A thread arena: a read-write start on a 64 MiB boundary, the rest of its
            # reservation PROT_NONE right after it.
            nxt = maps[i + 1] if i + 1 < len(maps) else None
            if (m["lo"] % arena_size == 0 and nxt and nxt["perms"].startswith("---")
                    and nxt["lo"] == m["hi"] and nxt["hi"] - m["lo"] == arena_size):
                parts["arenas"] += m["rss"]
            else:
                parts["anon"] += m["rss"]
        else:
            parts["anon"] += m["rss"]
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                parts["total"] = int(line.split()[1])
    return parts
