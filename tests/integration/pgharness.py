"""Integration-test harness: a throwaway PostgreSQL cluster and the pgtally proxy under test.

Owns: finding the Debian PostgreSQL binaries, the cached template cluster (initdb'ed once, then
copied), start/stop of a private cluster (its own temp dir, free TCP port on 127.0.0.1, unix
socket in the temp dir, roles for trust / md5 / SCRAM-SHA-256 auth and replication), starting
and stopping `pgtally proxy` on a free port with --log-queries, parsing that query log, and a
TestCase base class that gives each test a fresh proxy (so each test reads only its own log).
Stdlib only: the tests run with Debian's /usr/bin/python3.

Nothing is left running: the cluster is stopped by atexit, by SIGTERM (meson's timeout sends it
to the test's process group) and, if this process is SIGKILLed, by a watchdog process in its own
session that waits for EOF on a pipe only we hold.

Environment:
  PGTALLY_BIN     the pgtally binary (set by meson from pgtally_exe)
  LIBPQ_CLIENT    tests/integration/libpq_client (set by meson)
  PGTALLY_DIRECT  if "1", no proxy is started: clients talk to Postgres directly. Used to check
                  the tests' own logic; assertions about the query log are then skipped.
  PGTALLY_IO      the proxies' --io (auto, uring, epoll): run the suite on one I/O path.
  PGHARNESS_KEEP  if "1", the temp dir is kept at exit (for post-mortems).
  PGHARNESS_CACHE where the template cluster is cached (meson: in the build dir; default: a
                  directory under the system temp dir).
"""

import atexit
import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

DIRECT = os.environ.get("PGTALLY_DIRECT") == "1"
IO = os.environ.get("PGTALLY_IO")  # the proxy's --io (auto, uring, epoll); its default if unset

# Roles created in every cluster; pg_hba.conf maps each to its auth method.
TRUST_USER = "trust_user"
MD5_USER, MD5_PASSWORD = "md5_user", "md5-secret"
SCRAM_USER, SCRAM_PASSWORD = "scram_user", "scram-secret"
DBNAME = "pgtally"

# Fields of one --log-queries line and the JSON types each may take.
EVENT_FIELDS = {
    "conn": (int,),
    "seq": (int,),
    "protocol": (str,),
    "statement": (str, type(None)),
    "index": (int,),
    "sql": (str, type(None)),
    "sql_truncated": (bool,),
    "start_us": (int,),
    "end_us": (int,),
    "rows": (int,),
    "bytes": (int,),
    "command": (str, type(None)),
    "sqlstate": (str, type(None)),
    "executes": (int,),
}


def pg_bindir():
    """Directory of Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres, psql...)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    # pg_config from libpq-dev may be absent; fall back to the newest installed server.
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not cands:
        raise RuntimeError("no PostgreSQL server binaries found (install postgresql)")
    return os.path.dirname(cands[-1])


BINDIR = pg_bindir()


def pgbin(name):
    return os.path.join(BINDIR, name)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port nothing listens on: bound but never listened, then released."""
    return free_port()


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listens(pid, port):
    """True iff process `pid` itself holds a TCP socket listening on `port`. A connect cannot
    tell: another test that took the same free port meanwhile answers it just as well."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)  # the header
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # LISTEN
                        inodes.add("socket:[%s]" % inode)
        except FileNotFoundError:
            continue
    if not inodes:
        return False
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # the process is gone
        return False
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                return True
        except OSError:
            continue
    return False


def client_env(**extra):
    """Environment for client programs: no inherited PG* settings, so only our DSN counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def dsn(port, user=TRUST_USER, dbname=DBNAME, host="127.0.0.1", **kw):
    """A libpq keyword/value connection string. sslmode=disable unless the caller says."""
    kw.setdefault("sslmode", "disable")
    parts = {"host": host, "port": port, "user": user, "dbname": dbname}
    parts.update(kw)
    return " ".join("%s=%s" % (k, v) for k, v in parts.items())


def proc_status(pid):
    """VmRSS and VmHWM of a process, in kB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0])
    return out


# --- process hygiene -------------------------------------------------------------------------

_cleanups = []


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on for the rest
            print("pgharness: cleanup failed: %r" % (e,), file=sys.stderr)


atexit.register(_run_cleanups)


_dying = False


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM and SIGKILL 0.5 s later. Raising SystemExit would be
    # caught by unittest as a test error, so clean up here (immediate shutdown) and leave.
    global _dying
    _dying = True
    _run_cleanups()
    os._exit(128 + signum)


if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
    signal.signal(signal.SIGTERM, _on_sigterm)

# Runs in its own session; blocks until our end of the pipe closes (we exited, however we
# exited), then makes sure the cluster is down and the temp dir gone.
_WATCHDOG = r"""
import os, subprocess, shutil, sys
pg_ctl, datadir, tmpdir, keep = sys.argv[1:5]
sys.stdin.buffer.read()
if os.path.exists(os.path.join(datadir, "postmaster.pid")):
    subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", datadir, "-m", "immediate",
                    "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if keep != "1":
    shutil.rmtree(tmpdir, ignore_errors=True)
"""

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Children we exec directly (the proxy) get SIGKILL if this process dies without cleanup.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


# --- the template cluster -------------------------------------------------------------------

# initdb costs seconds of CPU (it boots the server several times); copying its result costs a
# tenth of that. So one template per PostgreSQL version and harness setup is made once, cached
# on disk, and every Cluster starts from a copy of it: a pristine data dir each time.
_INITDB_ARGS = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
                "--no-instructions"]
# Run in single-user mode (no server, no port): one statement per line.
_TEMPLATE_SQL = (
    "CREATE ROLE %s LOGIN CREATEDB;\n"
    "SET password_encryption = 'md5';\n"
    "CREATE ROLE %s LOGIN PASSWORD '%s';\n"
    "SET password_encryption = 'scram-sha-256';\n"
    "CREATE ROLE %s LOGIN PASSWORD '%s';\n"
    "CREATE DATABASE %s OWNER %s;\n"
    % (TRUST_USER, MD5_USER, MD5_PASSWORD, SCRAM_USER, SCRAM_PASSWORD, DBNAME, TRUST_USER))


def _cache_dir():
    """PGHARNESS_CACHE (meson sets it inside the build dir), else one under the temp dir."""
    d = os.environ.get("PGHARNESS_CACHE") or os.path.join(
        tempfile.gettempdir(), "pgtally-pgharness-%d" % os.geteuid())
    os.makedirs(d, exist_ok=True)
    return d


def template_datadir():
    """The template's data dir, made on first use (under a lock: meson runs modules in
    parallel, and the first one makes it while the others wait)."""
    import fcntl
    import hashlib
    version = subprocess.run([pgbin("postgres"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    key = hashlib.sha256(("\0".join([BINDIR, version] + _INITDB_ARGS + [_TEMPLATE_SQL]))
                         .encode()).hexdigest()[:16]
    cache = _cache_dir()
    done = os.path.join(cache, "template-" + key)
    with open(os.path.join(cache, "template.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(done):
            work = tempfile.mkdtemp(prefix="template-tmp-", dir=cache)
            try:
                if os.geteuid() == 0:
                    shutil.chown(work, "postgres", "postgres")
                data = os.path.join(work, "data")
                cmd = _as_postgres([pgbin("initdb"), "-D", data] + _INITDB_ARGS)
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError("%s failed (%d):\n%s%s"
                                       % (cmd, r.returncode, r.stdout, r.stderr))
                cmd = _as_postgres([pgbin("postgres"), "--single", "-D", data, "-c",
                                    "fsync=off", "postgres"])
                r = subprocess.run(cmd, input=_TEMPLATE_SQL, capture_output=True, text=True)
                if r.returncode != 0 or "ERROR" in r.stdout + r.stderr:
                    raise RuntimeError("template set-up failed (%d):\n%s%s"
                                       % (r.returncode, r.stdout, r.stderr))
                os.rename(work, done)  # whole or not at all: a killed run leaves no template
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return os.path.join(done, "data")


# --- the cluster ----------------------------------------------------------------------------

class Cluster:
    """A private PostgreSQL cluster. start() returns when it accepts connections."""

    def __init__(self, settings=None):
        # settings: extra postgresql.conf lines {name: value}, written after the defaults so
        # they win (the benchmarks need e.g. max_connections above the default 60).
        self.settings = dict(settings or {})
        self.tmpdir = tempfile.mkdtemp(prefix="pgtally-it-")
        self.datadir = os.path.join(self.tmpdir, "data")
        self.sockdir = os.path.join(self.tmpdir, "sock")
        self.logfile = os.path.join(self.tmpdir, "postgres.log")
        self.port = None
        self.running = False
        self._watchdog = None
        self._proxies = 0
        os.mkdir(self.sockdir)
        if os.geteuid() == 0:
            # initdb refuses to run as root; the server needs to own its dirs.
            for d in (self.tmpdir, self.sockdir):
                shutil.chown(d, "postgres", "postgres")
        _cleanups.append(self.destroy)

    # lifecycle

    def start(self):
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, pgbin("pg_ctl"), self.datadir, self.tmpdir,
             os.environ.get("PGHARNESS_KEEP", "0")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        # A copy of the cached template (initdb'ed, roles and database made): a fresh cluster
        # for a fraction of initdb's cost. pg_hba.conf and the settings are written below.
        self._run(["cp", "-a", template_datadir(), self.datadir])
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write(
                "# written by tests/integration/pgharness.py\n"
                "local all all trust\n"
                "host replication postgres 127.0.0.1/32 trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "host all %s 127.0.0.1/32 trust\n"
                "host all %s 127.0.0.1/32 md5\n"
                "host all %s 127.0.0.1/32 scram-sha-256\n" % (TRUST_USER, MD5_USER, SCRAM_USER))
        last_err = None
        for _ in range(5):  # the free port may be taken by a parallel test module meanwhile
            self.port = free_port()
            with open(os.path.join(self.datadir, "postgresql.auto.conf"), "w") as f:
                f.write(
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "wal_level = replica\n"
                    "max_wal_senders = 4\n"
                    "max_connections = 60\n"
                    "shared_buffers = 32MB\n"
                    "log_min_messages = warning\n"
                    "log_connections = off\n" % (self.port, self.sockdir))
                for name, value in self.settings.items():
                    f.write("%s = '%s'\n" % (name, value))
            if os.geteuid() == 0:
                shutil.chown(os.path.join(self.datadir, "postgresql.auto.conf"),
                             "postgres", "postgres")
            r = subprocess.run(_as_postgres([pgbin("pg_ctl"), "-D", self.datadir, "-l",
                                             self.logfile, "-w", "-t", "60", "start"]),
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.running = True
                break
            last_err = r.stdout + r.stderr + self.server_log_tail()
        else:
            raise RuntimeError("postgres did not start:\n" + (last_err or ""))
        return self

    def stop(self):
        if self.running:
            subprocess.run(_as_postgres([pgbin("pg_ctl"), "-D", self.datadir, "-m",
                                         "immediate" if _dying else "fast",
                                         "-w", "-t", "30", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                subprocess.run(_as_postgres([pgbin("pg_ctl"), "-D", self.datadir, "-m",
                                             "immediate", "-w", "stop"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running = False

    def destroy(self):
        self.stop()
        if os.environ.get("PGHARNESS_KEEP") != "1":
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        else:
            print("pgharness: kept %s" % self.tmpdir, file=sys.stderr)
        if self._watchdog is not None:
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self._watchdog = None

    # helpers

    def _run(self, cmd, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (cmd, r.returncode, r.stdout, r.stderr))
        return r

    def server_log_tail(self, n=40):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def dsn(self, user=TRUST_USER, dbname=DBNAME, **kw):
        """Connection string straight to Postgres over TCP (bypassing any proxy)."""
        return dsn(self.port, user=user, dbname=dbname, **kw)

    def admin_sql(self, sql, dbname="postgres"):
        """Runs SQL as superuser over the unix socket, directly; returns psql -At output."""
        r = subprocess.run([pgbin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-h", self.sockdir, "-p", str(self.port), "-U", "postgres",
                            "-d", dbname, "-c", sql],
                           capture_output=True, text=True, env=client_env())
        if r.returncode != 0:
            raise RuntimeError("admin_sql %r failed:\n%s" % (sql, r.stderr))
        return r.stdout

    def next_log_path(self):
        self._proxies += 1
        return os.path.join(self.tmpdir, "queries-%d.jsonl" % self._proxies)


# --- the proxy under test -------------------------------------------------------------------

class ProxyResult:
    """What stop() found: exit code, parsed events, lines that were not valid JSON, stderr."""

    def __init__(self, returncode, events, bad_lines, stderr):
        self.returncode = returncode
        self.events = events
        self.bad_lines = bad_lines
        self.stderr = stderr


class Proxy:
    """`pgtally proxy` listening on a free port of 127.0.0.1 in front of `cluster`.

    upstream: "HOST:PORT" or a postgres:// URL; defaults to the cluster's TCP address.
    """

    def __init__(self, cluster, upstream=None, grace=None, extra_args=(), env=None,
                 omit_upstream=False):
        self.cluster = cluster
        self.upstream = upstream or "127.0.0.1:%d" % cluster.port
        self.omit_upstream = omit_upstream  # test the DATABASE_URL default (pass env)
        self.env = env
        self.grace = grace
        self.extra_args = list(extra_args)
        self.log_path = cluster.next_log_path()
        self.stderr_path = self.log_path.replace(".jsonl", ".stderr")
        # the SQLite report store, next to the query log (never in the build dir)
        self.db_path = self.log_path.replace(".jsonl", ".db")
        self.proc = None
        self.port = None
        self.result = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=15):
        if DIRECT:
            self.port = self.cluster.port
            return self
        binary = os.environ.get("PGTALLY_BIN")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError("PGTALLY_BIN is not set to an executable (got %r)" % binary)
        last = ""
        for _ in range(3):  # retry only if the free port was taken before the proxy bound it
            self.port = free_port()
            cmd = [binary, "proxy", "--listen", "127.0.0.1:%d" % self.port,
                   "--log-queries", self.log_path, "--db", self.db_path]
            if not self.omit_upstream:
                cmd += ["--upstream", self.upstream]
            if self.grace is not None:
                cmd += ["--grace", str(self.grace)]
            if IO:
                cmd += ["--io", IO]
            cmd += self.extra_args
            self._stderr = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=self._stderr, stderr=self._stderr,
                                         env=self.env, preexec_fn=_die_with_parent)
            _cleanups.append(self.kill)
            deadline = time.monotonic() + timeout
            pause = 0.002  # the proxy listens within milliseconds: poll fast, then back off
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if listens(self.proc.pid, self.port):
                    return self
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError("proxy did not accept on port %d within %ss:\n%s"
                                   % (self.port, timeout, self.stderr_text()))
            last = self.stderr_text()
        raise RuntimeError("proxy exited at start (rc %s):\n%s" % (self.proc.returncode, last))

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        if DIRECT:
            return True
        return self.proc is not None and self.proc.poll() is None

    def dsn(self, user=TRUST_USER, dbname=DBNAME, **kw):
        return dsn(self.port, user=user, dbname=dbname, **kw)

    def send_signal(self, sig):
        if not DIRECT:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout seconds."""
        if DIRECT:
            return 0
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the proxy, waits for its exit and reads the query log.

        Returns a ProxyResult; events is None in direct mode (there is no proxy)."""
        if self.result is not None:
            return self.result
        if DIRECT:
            self.result = ProxyResult(0, None, [], "")
            return self.result
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
            rc = "timeout: still running %ss after %s" % (timeout, signal.Signals(sig).name)
        events, bad = [], []
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        bad.append(line)
        except FileNotFoundError:
            bad.append("<no query log file at %s>" % self.log_path)
        self.result = ProxyResult(rc, events, bad, self.stderr_text())
        return self.result

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- test base class -------------------------------------------------------------------------

_module_cluster = None


def module_cluster(settings=None):
    """The cluster shared by the tests of one module (start it in setUpModule, where
    settings, as for Cluster, take effect: they are used when the cluster is first made)."""
    global _module_cluster
    if _module_cluster is None:
        _module_cluster = Cluster(settings=settings).start()
    return _module_cluster


def stop_module_cluster():
    global _module_cluster
    if _module_cluster is not None:
        _module_cluster.destroy()
        _module_cluster = None


class ProxyTestCase(unittest.TestCase):
    """Each test gets a fresh proxy in front of the module's cluster: self.proxy."""

    proxy_kwargs = {}

    def setUp(self):
        self.cluster = module_cluster()
        self.proxy = Proxy(self.cluster, **self.proxy_kwargs).start()
        self._clients = []
        self._t0 = time.monotonic()

    def track(self, client):
        """Registers a client (anything with close()) to be closed before the proxy stops:
        the proxy drains open connections for --grace seconds before it exits."""
        self._clients.append(client)
        self.addCleanup(client.close)
        return client

    def raw_client(self, timeout=10, startup=True):
        """A pgraw.RawConn through the proxy, logged in as trust_user when startup."""
        import pgraw
        c = self.track(pgraw.RawConn(self.proxy.port, timeout=timeout))
        if startup:
            c.startup(TRUST_USER, DBNAME)
        return c

    def close_clients(self):
        for c in self._clients:
            try:
                if hasattr(c, "send") and hasattr(c, "sock"):
                    import pgraw
                    c.send(pgraw.terminate())
            except OSError:
                pass
            c.close()
        self._clients = []

    def tearDown(self):
        took = time.monotonic() - self._t0
        if took > 3:
            # Keeps the suite's time budget visible: which test ate it.
            print("\npgharness: slow test %s: %.1f s" % (self.id(), took), file=sys.stderr)
        if self.proxy.result is None and not DIRECT:
            # The test did not look at the log; still, the proxy must not have crashed.
            alive = self.proxy.alive()
            self.proxy.kill()
            if not alive:
                self.fail("proxy died during the test (rc %s):\n%s"
                          % (self.proxy.proc.returncode, self.proxy.stderr_text()[-3000:]))

    # running clients through the proxy

    def psql(self, *args, dsn=None, check=True, input=None, timeout=60, env=None):
        """Runs psql against the proxy (or dsn); returns the CompletedProcess."""
        r = subprocess.run([pgbin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-d", dsn or self.proxy.dsn()] + list(args),
                           capture_output=True, text=True, input=input, timeout=timeout,
                           env=env or client_env())
        if check and r.returncode != 0:
            self.fail("psql %s failed (%d): %s" % (list(args), r.returncode, r.stderr))
        return r

    def libpq_client(self, *args, check=True, timeout=60):
        binary = os.environ.get("LIBPQ_CLIENT")
        if not binary:
            self.fail("LIBPQ_CLIENT is not set")
        r = subprocess.run([binary] + list(args), capture_output=True, text=True,
                           timeout=timeout, env=client_env())
        if check and r.returncode != 0:
            self.fail("libpq_client %s failed (%d):\nstdout: %s\nstderr: %s"
                      % (list(args), r.returncode, r.stdout, r.stderr))
        return r

    # the query log

    def stop_proxy(self, sig=signal.SIGTERM):
        """Stops the proxy, asserts a clean exit and a well-formed log; returns the events.

        In direct mode (no proxy) the test is skipped here: the client-side checks before
        this call have run, the log checks after it cannot."""
        self.close_clients()
        res = self.proxy.stop(sig)
        if res.events is None:
            self.skipTest("PGTALLY_DIRECT=1: no proxy, no query log to check")
        self.assertEqual(res.returncode, 0,
                         "proxy exit code after %s; stderr:\n%s"
                         % (signal.Signals(sig).name, res.stderr[-3000:]))
        self.assertEqual(res.bad_lines, [], "query log lines that are not JSON")
        for ev in res.events:
            self.assert_event_shape(ev)
        self.assert_seq_per_conn(res.events)
        return res.events

    def assert_event_shape(self, ev):
        self.assertIsInstance(ev, dict)
        for field, types in EVENT_FIELDS.items():
            self.assertIn(field, ev, "event lacks %r: %r" % (field, ev))
            # bool is an int subclass in Python: keep ints and bools apart.
            ok = isinstance(ev[field], types) and not (
                isinstance(ev[field], bool) and bool not in types)
            self.assertTrue(ok, "event field %r has type %s: %r"
                            % (field, type(ev[field]).__name__, ev))
        self.assertIn(ev["protocol"], ("simple", "extended", "function"), ev)
        self.assertGreaterEqual(ev["end_us"], ev["start_us"], ev)
        self.assertGreaterEqual(ev["rows"], 0, ev)
        self.assertGreaterEqual(ev["bytes"], 0, ev)
        if ev["sqlstate"] is not None:
            self.assertRegex(ev["sqlstate"], r"^[0-9A-Z]{5}$", ev)
            self.assertIsNone(ev["command"], "an errored statement has no command: %r" % ev)
        if ev["protocol"] == "simple":
            self.assertIsNone(ev["statement"], ev)
            self.assertEqual(ev["executes"], 1, ev)
        else:
            self.assertEqual(ev["index"], 0, ev)

    def assert_seq_per_conn(self, events):
        """seq strictly increases within each connection, in log order."""
        last = {}
        for ev in events:
            c = ev["conn"]
            if c in last:
                self.assertGreater(ev["seq"], last[c], "seq not increasing on conn %d" % c)
            last[c] = ev["seq"]

    def events_with_sql(self, events, needle):
        """Events whose sql contains needle (tests put a unique marker in their SQL)."""
        return [e for e in events if e["sql"] is not None and needle in e["sql"]]

    def assert_one_conn(self, events):
        conns = {e["conn"] for e in events}
        self.assertEqual(len(conns), 1, "expected one connection in %r" % events)
        return conns.pop()


class _TimedResult(unittest.TextTestResult):
    """Records each test's wall time (set-up and tear-down included) for the summary."""

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.durations = getattr(self, "durations", [])
        self.durations.append((time.monotonic() - self._started, test.id()))


class _TimedRunner(unittest.TextTestRunner):
    resultclass = _TimedResult

    def run(self, test):
        result = super().run(test)
        # Keeps the suite's time budget visible: where this module's time went.
        slow = sorted(getattr(result, "durations", []), reverse=True)[:10]
        if slow:
            print("pgharness: slowest tests (wall s, of %.1f s in %d tests):"
                  % (sum(d for d, _ in result.durations), len(result.durations)),
                  file=sys.stderr)
            for took, name in slow:
                print("  %6.2f %s" % (took, name), file=sys.stderr)
        return result


def main():
    """unittest.main with the module cluster torn down even when setUpModule fails."""
    try:
        unittest.main(verbosity=2, testRunner=_TimedRunner)
    finally:
        stop_module_cluster()
