"""Faults of real deployments (test_faults.py covers malformed messages, an unreachable
upstream, killed clients, terminated backends and SIGTERM with an idle client):

- the server restarted (pg_ctl restart -m fast) under load from raw-protocol, psycopg and
  pgbench clients: every client sees an ErrorResponse or a clean close, never a hang; the proxy
  keeps accepting, serves again once the server is back, and holds no server socket afterwards;
- the server down when the proxy starts: clients get 08006 until it is up, then are served;
- a client killed mid-COPY FROM STDIN and one killed mid-result: logged once, as aborted;
- 2000 client connections held open at once through the proxy;
- a client that never sends its startup packet is closed after --startup-timeout;
- SIGTERM with 100 busy clients: every statement a client saw finish is in the query log and
  the SQLite report, and the proxy exits 0 within the grace period.

2000 connections: this machine's Postgres is not asked for 2000 backends (2000 forks take
longer than this whole module may, and both suites run at once on 2 cores). The proxy's
upstream is a pgbouncer in transaction mode in front of the cluster instead: every one of the
2000 clients completes a real startup (AuthenticationOk .. ReadyForQuery) through the proxy, so
the proxy holds 2000 client sockets and 2000 upstream sockets, and any of them can still run a
query. Skipped when pgbouncer is not installed.
"""

import os
import pwd
import resource
import selectors
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

import pgharness as h
import pgraw

N_HELD = 2000
N_BUSY = 100

# raw-protocol outcomes that are not a hang
OK_ENDINGS = ("error", "closed")


def setUpModule():
    # 100 busy clients + pgbench + admin connections
    h.module_cluster(settings={"max_connections": "150"})


def tearDownModule():
    h.stop_module_cluster()


# --- helpers ------------------------------------------------------------------------------------

def pg_ctl(cluster, *args):
    r = subprocess.run(h._as_postgres([h.pgbin("pg_ctl"), "-D", cluster.datadir, "-l",
                                       cluster.logfile, "-w", "-t", "60"] + list(args)),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("pg_ctl %s failed:\n%s%s%s" % (args, r.stdout, r.stderr,
                                                          cluster.server_log_tail()))
    cluster.running = args[-1] != "stop"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def tcp_sockets(pid, reads=3):
    """[(state, local port, remote port)] of the TCP sockets process pid holds open, one per
    socket.

    The kernel hands /proc/net/tcp out a page at a time and resumes each page by position in
    a hash bucket, so while other processes (the rest of the suite) open and close sockets, one
    read could list a socket twice or miss it. That was one suspect when a run under load
    counted 2002 of 2000 held connections (not confirmed: 60 runs under churn showed no
    duplicate). Entries are keyed by socket inode and merged over a few reads so that it
    cannot matter; the last read's state wins."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    by_inode = {}
    for _ in range(reads):
        for table in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
            try:
                with open(table) as f:
                    next(f)
                    for line in f:
                        tok = line.split()
                        if tok[9] in inodes:
                            by_inode[tok[9]] = (TCP_STATES.get(tok[3], tok[3]),
                                                int(tok[1].split(":")[1], 16),
                                                int(tok[2].split(":")[1], 16))
            except OSError:
                pass
    return list(by_inode.values())


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE soft limit (and the hard one when root) to want;
    children inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard < want and os.geteuid() == 0:
        hard = want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return 0


def read_one_request(c):
    """After a Query: ("ok", msgs) at ReadyForQuery; ("error", code) after an ErrorResponse
    followed by the close; ("closed", None) on a close without one. A hang raises
    socket.timeout."""
    try:
        msgs = c.read_until((b"Z", b"E"))
    except (pgraw.ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return "closed", None
    if msgs[-1][0] == b"E":
        code = pgraw.error_fields(msgs[-1][1]).get("C")
        # a FATAL is the last thing on the connection; an ERROR is followed by Z
        try:
            more = c.read_until((b"Z",))
            return "ok-after-error", (code, more)
        except (pgraw.ConnectionClosed, ConnectionResetError):
            return "error", code
    return "ok", msgs


class Pgbouncer:
    """pgbouncer in transaction mode in front of the cluster: many clients, few backends."""

    def __init__(self, cluster, max_clients):
        self.cluster = cluster
        self.max_clients = max_clients
        self.dir = tempfile.mkdtemp(prefix="pgtally-bouncer-")
        h._cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.proc = None
        self.port = None

    def start(self):
        users = os.path.join(self.dir, "userlist.txt")
        ini = os.path.join(self.dir, "pgbouncer.ini")
        self.log = os.path.join(self.dir, "pgbouncer.log")
        with open(users, "w") as f:
            f.write('"%s" ""\n' % h.TRUST_USER)
        for _ in range(3):  # again only if another process took the free port meanwhile
            self.port = h.free_port()
            if self._start_on_port(users, ini):
                return self
        raise RuntimeError("pgbouncer did not start:\n" + self.log_tail())

    def _start_on_port(self, users, ini):
        """Starts pgbouncer on self.port: True once it listens there, False if it exited."""
        with open(ini, "w") as f:
            f.write("[databases]\n%s = host=127.0.0.1 port=%d dbname=%s\n"
                    "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\n"
                    "listen_backlog = 4096\nunix_socket_dir =\nauth_type = trust\n"
                    "auth_file = %s\npool_mode = transaction\ndefault_pool_size = 4\n"
                    "max_client_conn = %d\nlogfile = %s\nlog_connections = 0\n"
                    "log_disconnections = 0\nignore_startup_parameters = extra_float_digits\n"
                    % (h.DBNAME, self.cluster.port, h.DBNAME, self.port, users,
                       self.max_clients, self.log))
        kw = {}
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            pw = pwd.getpwnam("postgres")
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            for p in (self.dir, users, ini):
                shutil.chown(p, "postgres", "postgres")
        self.proc = subprocess.Popen(["pgbouncer", ini], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=h._die_with_parent, **kw)
        h._cleanups.append(self.stop)
        if not wait_for(lambda: self.proc.poll() is not None
                        or h.listens(self.proc.pid, self.port), 15):
            raise RuntimeError("pgbouncer did not listen within 15 s:\n" + self.log_tail())
        return self.proc.poll() is None

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def open_db(path):
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    return db


# --- the tests ----------------------------------------------------------------------------------

class FaultTestCase(h.ProxyTestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("faults of the proxy")
        super().setUp()

    def assert_serves(self, proxy, marker):
        self.assertTrue(proxy.alive(), "proxy died:\n" + proxy.stderr_text()[-3000:])
        r = self.psql("-c", "select '%s'" % marker, dsn=proxy.dsn())
        self.assertEqual(r.stdout.strip(), marker)

    def assert_no_server_sockets(self, proxy, baseline_fds):
        """Back to the fd count of an idle proxy; no TCP socket but the listener."""
        ok = wait_for(lambda: fd_count(proxy.pid) <= baseline_fds, 10)
        socks = tcp_sockets(proxy.pid)
        self.assertTrue(ok, "proxy holds %d fds, %d when idle; TCP sockets: %r"
                        % (fd_count(proxy.pid), baseline_fds, socks))
        self.assertEqual([s for s in socks if s[0] != "LISTEN"], [],
                         "half-open sockets left in the proxy")

    def idle_baseline(self, proxy):
        """fds of the proxy once one connection has come and gone (lazy opens done)."""
        self.psql("-c", "select 'warm_up'", dsn=proxy.dsn())
        wait_for(lambda: [s for s in tcp_sockets(proxy.pid) if s[0] != "LISTEN"] == [], 5)
        return fd_count(proxy.pid)


class ServerRestartTest(FaultTestCase):

    proxy_kwargs = {"extra_args": ["--connect-timeout", "3"]}

    def test_server_restart_under_load(self):
        proxy = self.proxy
        baseline = self.idle_baseline(proxy)
        stop = threading.Event()
        restarted = threading.Event()
        results = {}  # worker name -> list of (phase, outcome)
        lock = threading.Lock()

        def note(name, outcome):
            with lock:
                results.setdefault(name, []).append(
                    ("after" if restarted.is_set() else "before", outcome))

        def raw_worker(name):
            while not stop.is_set():
                try:
                    c = pgraw.RawConn(proxy.port, timeout=15)
                except OSError as e:
                    note(name, "connect-refused %r" % e)  # the proxy must keep accepting
                    time.sleep(0.05)
                    continue
                try:
                    c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
                    msgs = c.read_until((b"Z", b"E"))
                    if msgs[-1][0] == b"E":
                        c.read_all_until_close(timeout=15)
                        note(name, "error")
                        time.sleep(0.05)
                        continue
                    while not stop.is_set():
                        c.send(pgraw.query("select pg_sleep(0.01), 'restart_load'"))
                        kind, _ = read_one_request(c)
                        note(name, kind)
                        if kind != "ok":
                            break
                except socket.timeout:
                    note(name, "hang")
                except (pgraw.ConnectionClosed, ConnectionResetError, BrokenPipeError):
                    note(name, "closed")
                finally:
                    c.close()
                time.sleep(0.02)

        def psycopg_worker(name):
            while not stop.is_set():
                try:
                    with psycopg.connect(proxy.dsn(), autocommit=True,
                                         connect_timeout=10) as conn:
                        while not stop.is_set():
                            conn.execute("select pg_sleep(0.01), 'restart_psycopg'")
                            note(name, "ok")
                except psycopg.OperationalError:
                    note(name, "error")
                    time.sleep(0.05)

        workers = [threading.Thread(target=raw_worker, args=("raw%d" % i,), name="raw%d" % i,
                                daemon=True)
                   for i in range(3)]
        workers += [threading.Thread(target=psycopg_worker, args=("psycopg%d" % i,),
                                     name="psycopg%d" % i, daemon=True) for i in range(2)]
        script = os.path.join(self.cluster.tmpdir, "restart.sql")
        with open(script, "w") as f:
            f.write("select pg_sleep(0.005);\n")
        pgbench = subprocess.Popen(
            [h.pgbin("pgbench"), "-n", "-f", script, "-c", "2", "-j", "1", "-T", "4",
             "-h", "127.0.0.1", "-p", str(proxy.port), "-U", h.TRUST_USER, h.DBNAME],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.client_env())
        for w in workers:
            w.start()
        time.sleep(1.0)
        pg_ctl(self.cluster, "-m", "fast", "restart")
        restarted.set()
        # keep loading until every worker has been served again
        w_names = [w.name for w in workers]
        wait_for(lambda: all(("after", "ok") in results.get(n, []) for n in w_names), 15)
        stop.set()
        for w in workers:
            w.join(20)
        hung = [w.name for w in workers if w.is_alive()]
        self.assertEqual(hung, [], "clients still blocked 20 s after the load stopped")
        try:
            out, err = pgbench.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pgbench.kill()
            self.fail("pgbench hung through the restart")
        # pgbench aborts the clients whose server went away (exit 2), or finishes cleanly
        self.assertIn(pgbench.returncode, (0, 2), out + err)

        self.assertEqual(sorted(results), sorted(w_names), "a worker never reported")
        for name, seen in sorted(results.items()):
            outcomes = {o for _, o in seen}
            self.assertNotIn("hang", outcomes, name)
            self.assertFalse([o for o in outcomes if o.startswith("connect-refused")],
                             "%s: the proxy stopped accepting: %r" % (name, outcomes))
            self.assertTrue(outcomes <= {"ok", "error", "closed", "ok-after-error"},
                            (name, outcomes))
            self.assertIn(("after", "ok"), seen, "%s never served after the restart" % name)
            self.assertTrue({"error", "closed"} & outcomes,
                            "%s did not notice the restart: %r" % (name, outcomes))
        self.assert_serves(proxy, "after_restart")
        self.assert_no_server_sockets(proxy, baseline)
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "after_restart")), 1)


class ServerDownAtStartTest(FaultTestCase):

    proxy_kwargs = {"extra_args": ["--connect-timeout", "2"]}

    def test_proxy_starts_with_server_down_then_serves(self):
        proxy = self.proxy
        pg_ctl(self.cluster, "-m", "fast", "stop")
        try:
            late = h.Proxy(self.cluster, extra_args=["--connect-timeout", "2"]).start()
            self.addCleanup(late.kill)
            with pgraw.RawConn(late.port) as c:
                c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
                msgs = c.read_all_until_close(timeout=15)
            err = pgraw.first_error(msgs)
            self.assertIsNotNone(err, msgs)
            self.assertEqual(err["C"], "08006", err)
            self.assertIn("127.0.0.1:%d" % self.cluster.port, err["M"])
            msg = None
            try:
                psycopg.connect(late.dsn(), connect_timeout=10).close()
            except psycopg.OperationalError as e:
                msg = str(e)
            self.assertIn("127.0.0.1:%d" % self.cluster.port, msg or "connected")
            self.assertTrue(late.alive())
        finally:
            pg_ctl(self.cluster, "start")
        self.assert_serves(late, "after_server_start")
        with psycopg.connect(late.dsn(), autocommit=True) as conn:
            self.assertEqual(conn.execute("select 'psycopg_after_start'").fetchone(),
                             ("psycopg_after_start",))
        res = late.stop()
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        self.assertEqual(sorted(e["sql"] for e in res.events),
                         ["select 'after_server_start'", "select 'psycopg_after_start'"])
        self.assert_serves(proxy, "default_proxy_too")


class KilledClientTest(FaultTestCase):

    def backend_running(self, needle):
        return self.cluster.admin_sql(
            "select count(*) from pg_stat_activity where state = 'active' "
            "and query like '%%%s%%' and pid <> pg_backend_pid()" % needle).strip() != "0"

    def assert_logged_once_aborted(self, events, needle):
        mine = self.events_with_sql(events, needle)
        self.assertEqual(len(mine), 1, mine)
        ev = mine[0]
        self.assertTrue(ev.get("aborted"), ev)
        self.assertIsNone(ev["command"], ev)
        self.assertEqual(ev["sqlstate"], "08006", ev)
        return ev

    def test_client_killed_mid_copy_from_stdin(self):
        self.cluster.admin_sql("drop table if exists copy_killed; create table copy_killed "
                               "(a int, b text); grant all on copy_killed to %s"
                               % h.TRUST_USER, dbname=h.DBNAME)
        p = subprocess.Popen([h.pgbin("psql"), "-X", "-v", "ON_ERROR_STOP=1",
                              "-d", self.proxy.dsn(),
                              "-c", "copy copy_killed from stdin -- copy_killed_marker"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=h.client_env())
        for i in range(1000):
            p.stdin.write(b"%d\trow %d\n" % (i, i))
        p.stdin.flush()
        self.assertTrue(wait_for(lambda: self.backend_running("copy_killed_marker"), 10),
                        "the COPY did not start")
        time.sleep(0.2)
        p.kill()
        p.wait()
        p.stdin.close()
        # the server learns the client is gone: the COPY fails, nothing is committed
        self.assertTrue(wait_for(lambda: not self.backend_running("copy_killed_marker"), 10),
                        "the backend is still copying after its client died")
        self.assertEqual(self.cluster.admin_sql("select count(*) from copy_killed",
                                                dbname=h.DBNAME).strip(), "0")
        self.assert_serves(self.proxy, "after_copy_killed")
        events = self.stop_proxy()
        ev = self.assert_logged_once_aborted(events, "copy_killed_marker")
        self.assertEqual(ev["rows"], 0, ev)
        self.assertEqual(len(self.events_with_sql(events, "after_copy_killed")), 1)

    def test_client_killed_mid_result(self):
        # wide rows, each produced after a short sleep: the result streams for ~10 s
        sql = ("select repeat('r', 8192), pg_sleep(0.005) from generate_series(1, 2000) "
               "-- killed_mid_result")
        p = subprocess.Popen([h.pgbin("psql"), "-X", "-d", self.proxy.dsn(), "-c", sql],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=h.client_env())
        self.assertTrue(wait_for(lambda: self.backend_running("killed_mid_result"), 10))
        time.sleep(1.0)
        p.kill()
        p.wait()
        self.assertTrue(wait_for(lambda: not self.backend_running("killed_mid_result"), 10),
                        "the backend still runs the query of a dead client")
        self.assert_serves(self.proxy, "after_result_killed")
        events = self.stop_proxy()
        ev = self.assert_logged_once_aborted(events, "killed_mid_result")
        self.assertGreater(ev["bytes"], 8192, "no rows had streamed before the kill: %r" % ev)
        db = open_db(self.proxy.db_path)
        try:
            states = [r[0] for r in db.execute("select sqlstate from statements")]
        finally:
            db.close()
        self.assertEqual(sorted(states, key=str), sorted([None, "08006"], key=str))


class StartupTimeoutTest(FaultTestCase):

    proxy_kwargs = {"extra_args": ["--startup-timeout", "1"]}

    def read_error_and_close(self, c):
        t0 = time.monotonic()
        msgs = c.read_all_until_close(timeout=10)
        return msgs, time.monotonic() - t0

    def test_silent_client_closed_after_startup_timeout(self):
        idle = self.raw_client()  # logged in: the timeout is for startup only
        with pgraw.RawConn(self.proxy.port) as silent:
            msgs, took = self.read_error_and_close(silent)
        err = pgraw.first_error(msgs)
        self.assertIsNotNone(err, "closed without an ErrorResponse: %r" % msgs)
        self.assertEqual(pgraw.types_of(msgs), b"E")
        self.assertIn(err["C"], ("08006", "08P01"), err)
        self.assertIn("startup", err["M"])
        self.assertGreater(took, 0.7)
        self.assertLess(took, 5)
        time.sleep(0.5)  # past the timeout: the logged-in client is still served
        msgs = idle.simple("select 'idle_survives_timeout'")
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["idle_survives_timeout"])
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], ["select 'idle_survives_timeout'"])

    def test_partial_startup_packet_closed_after_timeout(self):
        with pgraw.RawConn(self.proxy.port) as c:
            pkt = pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME})
            c.send(pkt[:6])
            msgs, took = self.read_error_and_close(c)
        self.assertEqual(pgraw.types_of(msgs), b"E", msgs)
        self.assertLess(took, 5)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_sslrequest_then_silence_closed_after_timeout(self):
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.ssl_request())
            self.assertEqual(c.read_byte(), b"N")
            msgs, took = self.read_error_and_close(c)
        self.assertEqual(pgraw.types_of(msgs), b"E", msgs)
        self.assertLess(took, 5)
        self.assertEqual(self.stop_proxy(), [])


class ManyConnectionsTest(FaultTestCase):

    def test_2000_client_connections_held_open(self):
        if shutil.which("pgbouncer") is None:
            self.skipTest("pgbouncer not installed (the upstream for 2000 connections)")
        need = 2 * N_HELD + 500
        if raise_nofile(need) < need:
            self.skipTest("RLIMIT_NOFILE cannot be raised to %d" % need)
        bouncer = Pgbouncer(self.cluster, N_HELD + 100).start()
        self.addCleanup(bouncer.stop)
        # started after raise_nofile: inherits the raised limit
        proxy = h.Proxy(self.cluster, upstream="127.0.0.1:%d" % bouncer.port).start()
        self.addCleanup(proxy.kill)
        self.assertGreaterEqual(nofile_limit(proxy.pid), need)
        baseline = self.idle_baseline(proxy)

        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        pkt = pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME})
        for _ in range(N_HELD):
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
            s.sendall(pkt)
            s.setblocking(False)
            socks.append(s)
        # every client reads through ReadyForQuery
        sel = selectors.DefaultSelector()
        bufs = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        ready, errors = set(), []
        deadline = time.monotonic() + 60
        while len(ready) + len(errors) < N_HELD and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:  # a reset: counted as a close
                    data = b""
                if not data:
                    errors.append(("closed", bufs[s][:200]))
                    sel.unregister(s)
                    continue
                bufs[s] += data
                i, b = 0, bufs[s]
                while len(b) - i >= 5:
                    t, ln = b[i:i + 1], struct.unpack_from("!I", b, i + 1)[0]
                    if len(b) - i < 1 + ln:
                        break
                    if t == b"E":
                        errors.append(pgraw.error_fields(b[i + 5:i + 1 + ln]))
                        sel.unregister(s)
                        break
                    if t == b"Z":
                        ready.add(s)
                        sel.unregister(s)
                        break
                    i += 1 + ln
        sel.close()
        self.assertEqual(errors[:5], [], "%d of %d clients failed" % (len(errors), N_HELD))
        self.assertEqual(len(ready), N_HELD)
        # the proxy holds a client and an upstream socket for each
        held = fd_count(proxy.pid)
        self.assertGreaterEqual(held, baseline + 2 * N_HELD)
        # Counted by the ports of this test's own clients: the rest of the suite runs beside
        # it, and a client of another module whose proxy's port was free again and then taken
        # by this proxy (a stale port, a cancel request) is relayed too, with an upstream
        # socket of its own. Under load a full suite once saw 2002 sockets to pgbouncer here.
        established = [x for x in tcp_sockets(proxy.pid) if x[0] == "ESTABLISHED"]
        own_ports = {s.getsockname()[1] for s in socks}
        own_clients = [x for x in established if x[1] == proxy.port and x[2] in own_ports]
        upstream = [x for x in established if x[2] == bouncer.port]
        self.assertEqual(len(own_clients), N_HELD)
        self.assertGreaterEqual(len(upstream), N_HELD,
                                "proxy %d, pgbouncer %d: %d sockets to pgbouncer"
                                % (proxy.port, bouncer.port, len(upstream)))
        if len(upstream) > N_HELD:
            # allowed (see above), but shown: the suite's log then says where they came from
            foreign = [x for x in established if x[1] == proxy.port and x[2] not in own_ports]
            print("ManyConnectionsTest: %d sockets to pgbouncer for %d own clients; other "
                  "clients of this proxy: %r" % (len(upstream), N_HELD, foreign[:20]),
                  file=sys.stderr)
        # and still serves: some of the held clients, and a newcomer
        for s in socks[::200]:
            s.setblocking(True)
            s.sendall(pgraw.query("select 'held_%d'" % s.fileno()))
            got = b""
            while not got.endswith(pgraw.msg(b"Z", b"I")):
                chunk = s.recv(65536)
                self.assertTrue(chunk, "held client closed")
                got += chunk
            self.assertIn(b"held_%d" % s.fileno(), got)
        self.assert_serves(proxy, "newcomer_among_2000")
        for s in socks:
            s.close()
        socks.clear()
        self.assert_no_server_sockets(proxy, baseline)
        res = proxy.stop()
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        self.assertEqual(len([e for e in res.events if "held_" in (e["sql"] or "")]),
                         N_HELD // 200)


class SigtermBusyClientsTest(FaultTestCase):
    """100 clients mid-work when SIGTERM arrives."""

    def start_clients(self, proxy, per_client, stop):
        done = {}    # client -> markers whose CommandComplete + ReadyForQuery it read
        ending = {}  # client -> "finished" | "error" | "closed" | "hang" | "startup-failed"
        lock = threading.Lock()
        logged_in = threading.Barrier(N_BUSY + 1)

        def worker(i):
            mine = []
            with lock:
                done[i] = mine  # grows as the client works (progress for the test)
            end = "finished"
            try:
                c = pgraw.RawConn(proxy.port, timeout=20)
            except OSError:
                with lock:
                    done[i], ending[i] = mine, "connect-failed"
                logged_in.abort()
                return
            try:
                c.startup(h.TRUST_USER, h.DBNAME)
                logged_in.wait(30)
                k = 0
                while per_client is None or k < per_client:
                    if stop is not None and stop.is_set():
                        break
                    marker = "busy_%d_%d" % (i, k)
                    c.send(pgraw.query("select pg_sleep(0.02), '%s'" % marker))
                    kind, _ = read_one_request(c)
                    if kind != "ok":
                        end = kind
                        break
                    mine.append(marker)
                    k += 1
                if end == "finished":
                    c.send(pgraw.terminate())
            except socket.timeout:
                end = "hang"
            except (pgraw.ConnectionClosed, ConnectionResetError, BrokenPipeError):
                end = "closed"
            except threading.BrokenBarrierError:
                end = "startup-failed"
            finally:
                c.close()
                with lock:
                    done[i], ending[i] = mine, end

        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(N_BUSY)]
        for t in threads:
            t.start()
        logged_in.wait(60)
        return threads, done, ending

    def assert_report_matches(self, proxy, res, done):
        self.assertEqual(res.bad_lines, [])
        logged = [e for e in res.events if "busy_" in (e["sql"] or "")]
        finished = {e["sql"].split("'")[1] for e in logged if e["command"] == "SELECT"}
        seen = {m for ms in done.values() for m in ms}
        self.assertEqual(seen - finished, set(), "finished for the client, not in the log")
        self.assertEqual(len(logged), len({e["sql"] for e in logged}),
                         "a statement logged twice")
        db = open_db(proxy.db_path)
        try:
            run = db.execute("select * from runs").fetchall()
            self.assertEqual(len(run), 1)
            run = run[0]
            n_stmts = db.execute("select count(*) from statements").fetchone()[0]
            n_req = db.execute("select sum(statements + setup_statements), count(*), "
                               "sum(timeline_dropped) from requests").fetchone()
            conns = {r[0] for r in db.execute("select distinct conn_id from statements")}
        finally:
            db.close()
        self.assertEqual(run["complete"], 1, dict(run))
        self.assertEqual(run["statements"], len(res.events), dict(run))
        self.assertEqual(n_req[0], len(res.events))
        self.assertEqual(n_req[2], 0)
        self.assertEqual(n_stmts, len(res.events))
        self.assertEqual(conns, {e["conn"] for e in res.events})
        return logged

    def test_sigterm_with_100_busy_clients_lets_them_finish(self):
        proxy = h.Proxy(self.cluster, grace=30).start()
        self.addCleanup(proxy.kill)
        per_client = 15
        threads, done, ending = self.start_clients(proxy, per_client, None)
        # SIGTERM when about a third of the work is done
        wait_for(lambda: sum(len(v) for v in list(done.values())) >= N_BUSY * per_client // 3,
                 30, step=0.01)
        t0 = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        self.assertFalse([t for t in threads if t.is_alive()], "clients hung")
        rc = proxy.wait(30)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, proxy.stderr_text()[-3000:])
        self.assertLess(took, 30, "exit should follow the last client, not the grace")
        self.assertEqual(set(ending.values()), {"finished"}, ending)
        res = proxy.stop()
        logged = self.assert_report_matches(proxy, res, done)
        self.assertEqual(len(logged), N_BUSY * per_client)

    def test_sigterm_grace_expires_with_100_busy_clients(self):
        grace = 1.5
        proxy = h.Proxy(self.cluster, grace=grace).start()
        self.addCleanup(proxy.kill)
        threads, done, ending = self.start_clients(proxy, None, threading.Event())
        wait_for(lambda: sum(len(v) for v in list(done.values())) >= N_BUSY, 30, step=0.01)
        t0 = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        rc = proxy.wait(grace + 10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, proxy.stderr_text()[-3000:])
        self.assertLess(took, grace + 3, "did not exit at the end of the grace period")
        for t in threads:
            t.join(30)
        self.assertFalse([t for t in threads if t.is_alive()], "clients hung")
        # each client was cut off at the end of the grace: an error or a close, no hang
        self.assertTrue(set(ending.values()) <= {"error", "closed"}, ending)
        self.assertGreater(min(len(v) for v in done.values()), 0, "a client never ran")
        res = proxy.stop()
        logged = self.assert_report_matches(proxy, res, done)
        # statements cut off at the close are logged once, as aborted
        for e in logged:
            if e["command"] is None:
                self.assertTrue(e.get("aborted") or e["sqlstate"], e)


if __name__ == "__main__":
    h.main()
