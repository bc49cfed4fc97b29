"""Adversarial tests (issue 9): one section per defect an audit reproduced against the proxy.

Each test drives the real binary against a real PostgreSQL, as the attacker did, and fails on
the code before its fix. Each section names the defect it guards against.
"""

import os
import signal
import socket
import struct
import subprocess
import time

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()



# ----------------------------------------------------------------------------------------------
# Defect 1: Quadratic normalizer on the loop, and nothing normalized before authentication
# ----------------------------------------------------------------------------------------------

# (tests for defect 1 go here)

# proxy side

def scrape_metrics(port):
    """The proxy's /metrics as {name: value} for the unlabelled samples."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def operator_run_sql(size):
    """`SELECT 1+-+-...`: the shape that made the normalizer quadratic, `size` bytes."""
    return "SELECT 1" + "+-" * ((size - 8) // 2)


class BeforeAuthenticationTest(h.ProxyTestCase):
    """Nothing a client sends before it is authenticated is normalized or reported, and a
    statement is normalized on a bounded prefix whatever --max-sql-bytes keeps."""

    proxy_kwargs = {"extra_args": ["--max-sql-bytes", "1048576"]}

    def test_query_sent_before_a_refused_login_is_never_normalized(self):
        c = self.track(pgraw.RawConn(self.proxy.port, timeout=30))
        # The Query rides right behind the startup packet, before the server refuses the
        # role (no pg_hba.conf entry): it must not even be looked at.
        c.send(pgraw.startup_packet({"user": "no_such_role", "database": h.DBNAME})
               + pgraw.query(operator_run_sql(65536)))
        msgs = c.read_all_until_close(timeout=30)
        self.assertEqual(pgraw.first_error(msgs)["C"], "28000", msgs)
        events = self.stop_proxy()
        self.assertEqual(self.events_with_sql(events, "SELECT 1+-"), [])
        self.assertEqual([e for e in events if e["normalized"]], [], events)

    def test_long_statement_is_normalized_on_a_bounded_prefix(self):
        c = self.raw_client(timeout=30)
        # about 200 kB, kept whole (--max-sql-bytes allows 1 MiB)
        sql = "SELECT 1 /* marker-prefix */ WHERE 1 IN (%s)" % ",".join(
            str(i) for i in range(1, 36000))
        msgs = c.simple(sql)
        self.assertEqual(pgraw.types_of(msgs), b"TDCZ")
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "marker-prefix")
        self.assertEqual(len(mine), 1, events)
        self.assertEqual(len(mine[0]["sql"]), len(sql))
        self.assertFalse(mine[0]["sql_truncated"])
        self.assertTrue(mine[0]["incomplete"], "normalized beyond the prefix bound")



# ----------------------------------------------------------------------------------------------
# Defect 2: Memory held per connection by messages the server skips until Sync; byte bounds
# ----------------------------------------------------------------------------------------------

# Defect 2's attack: an extended-protocol error with no Sync, then messages the server skips.
SKIPPED_SQL_BYTES = 65536
RSS_GROWTH_LIMIT_KB = 16 * 1024


def start_skipping(c):
    """Parse fails; no Sync yet: from here the server skips everything until Sync."""
    c.send(pgraw.parse("", "SELEC this is a syntax error") + pgraw.flush())
    msgs = c.read_until((b"E",))
    assert pgraw.first_error(msgs)["C"] == "42601", msgs


def end_skipping(c):
    """Sync: the server answers it (after skipping everything before it) and resumes."""
    c.send(pgraw.sync())
    return c.read_until((b"Z",))


def send_batched(c, messages, batch=64):
    for i in range(0, len(messages), batch):
        c.send(b"".join(messages[i:i + batch]))


class SkippedUntilSyncTest(h.ProxyTestCase):
    """What the server skips after an extended-protocol error costs the proxy no memory; all
    the tracker keeps is bounded by bytes per connection and over all connections."""

    def setUp(self):
        self.metrics_port = h.free_port()
        # In a sanitizer build freed blocks wait in ASan's quarantine and would look like
        # growth; without it RSS means what it means in a release build (ignored there).
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "") +
                   "quarantine_size_mb=0:thread_local_quarantine_size_kb=0")
        self.proxy_kwargs = {"extra_args": ["--metrics", "127.0.0.1:%d" % self.metrics_port],
                             "env": env}
        super().setUp()

    def rss_growth_kb(self, attack):
        c = self.raw_client(timeout=60)
        c.simple("select 'warm up'")
        st0 = h.proc_status(self.proxy.pid)
        start_skipping(c)
        attack(c)
        end_skipping(c)  # every attack byte has gone through the proxy's tracker by now
        st = h.proc_status(self.proxy.pid)
        top = max(st["VmHWM"], st["VmRSS"])
        growth = top - st0["VmRSS"]
        print("\nskip-until-Sync: proxy RSS before %d kB, HWM after %d kB, growth %d kB"
              % (st0["VmRSS"], st["VmHWM"], growth))
        return c, growth

    def test_skipped_queries_hold_no_memory(self):
        n = 2000
        body = "x" * (SKIPPED_SQL_BYTES - 32)

        def attack(c):
            send_batched(c, [pgraw.query("SELECT %06d, '%s'" % (i, body)) for i in range(n)])

        c, growth = self.rss_growth_kb(attack)
        self.assertLess(growth, RSS_GROWTH_LIMIT_KB)
        self.assertEqual(scrape_metrics(self.metrics_port)["pgtally_skipped_messages_total"], n)
        msgs = c.simple("select 'tracked after the skip'")
        self.assertEqual(pgraw.types_of(msgs), b"TDCZ")
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "tracked after the skip")
        self.assertEqual([(e["rows"], e["sqlstate"]) for e in mine], [(1, None)], events)
        self.assertEqual(self.events_with_sql(events, body[:100]), [])

    def test_skipped_named_parses_keep_no_statement_names(self):
        n = 1000

        def attack(c):
            send_batched(c, [pgraw.parse(("s%06d" % i) + "n" * (SKIPPED_SQL_BYTES - 64),
                                         "SELECT 1") for i in range(n)])

        c, growth = self.rss_growth_kb(attack)
        self.assertLess(growth, RSS_GROWTH_LIMIT_KB)
        self.assertEqual(scrape_metrics(self.metrics_port)["pgtally_skipped_messages_total"], n)
        self.stop_proxy()


class TrackerMemoryLimitTest(h.ProxyTestCase):
    """--max-tracked-bytes bounds what all trackers keep; hitting it is logged and counted,
    and the relay goes on."""

    def setUp(self):
        self.metrics_port = h.free_port()
        self.proxy_kwargs = {"extra_args": ["--metrics", "127.0.0.1:%d" % self.metrics_port,
                                            "--max-tracked-bytes", "1048576"]}
        super().setUp()

    def test_global_byte_limit_is_logged_counted_and_relay_goes_on(self):
        c = self.raw_client(timeout=30)
        pad = "p" * 60000
        for i in range(40):  # 2.4 MB of named statements the server really keeps
            c.send(pgraw.parse("big%d" % i, "SELECT %d /* %s */" % (i, pad)) + pgraw.sync())
            self.assertEqual(pgraw.types_of(c.read_until()), b"1Z")
        for i in (0, 39):
            c.send(pgraw.bind("", "big%d" % i) + pgraw.execute("") + pgraw.sync())
            msgs = c.read_until()
            self.assertEqual(pgraw.types_of(msgs), b"2DCZ")
            self.assertEqual(pgraw.datarow_values(msgs[1][1]), [str(i)])
        m = scrape_metrics(self.metrics_port)
        self.assertGreater(m["pgtally_tracker_limit_hits_total"], 0)
        self.assertLessEqual(m["pgtally_tracker_bytes"], 1048576)
        events = self.stop_proxy()
        self.assertIn("tracker memory limit of 1048576 bytes reached", self.proxy.stderr_text())
        self.assertEqual(len([e for e in events if e["protocol"] == "extended"]), 2, events)



# ----------------------------------------------------------------------------------------------
# Defect 3: Tracking resumes after a desync found at ReadyForQuery
# ----------------------------------------------------------------------------------------------

class DesyncAtReadyForQueryTest(h.ProxyTestCase):
    """After the server answered a Sync the tracker had not matched, tracking resumes and the
    connection can look idle again."""

    proxy_kwargs = {"extra_args": ["--idle-timeout", "1"]}

    def test_tracking_resumes_and_idle_timeout_reaps(self):
        c = self.raw_client(timeout=30)
        start_skipping(c)
        # Bind and Execute are skipped by the server: the Sync's ReadyForQuery is the only
        # answer to all three.
        c.send(pgraw.bind("", "") + pgraw.execute(""))
        self.assertEqual(pgraw.types_of(end_skipping(c)), b"Z")
        msgs = c.simple("select 'tracked again after the sync'")
        self.assertEqual(pgraw.types_of(msgs), b"TDCZ")
        # Idle now: the proxy must close the connection after --idle-timeout.
        try:
            rest = c.read_all_until_close(timeout=15)
        except socket.timeout:
            self.fail("the idle connection was not closed by --idle-timeout")
        err = pgraw.first_error(rest)
        self.assertIsNotNone(err, rest)
        self.assertEqual(err["C"], "57P05")
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "tracked again after the sync")
        self.assertEqual([(e["rows"], e["command"]) for e in mine], [(1, "SELECT")], events)



# ----------------------------------------------------------------------------------------------
# Defect 4: Skipped messages are never matched to later replies (forged records)
# ----------------------------------------------------------------------------------------------

class ForgedRecordsTest(h.ProxyTestCase):
    """Decoy Queries the server skips never lend their text to the replies of later ones."""

    def test_skipped_decoys_never_match_later_replies(self):
        c = self.track(pgraw.RawConn(self.proxy.port, timeout=30))
        c.startup("postgres", h.DBNAME)
        start_skipping(c)
        c.send(pgraw.query("SELECT 'decoy 1'") + pgraw.query("SELECT 'decoy 2'"))
        self.assertEqual(pgraw.types_of(end_skipping(c)), b"Z")
        msgs = c.simple("SELECT rolname, rolpassword FROM pg_authid")
        self.assertEqual(pgraw.types_of(msgs)[:1], b"T")
        rows = sum(1 for t, _ in msgs if t == b"D")
        events = self.stop_proxy()
        self.assertEqual(self.events_with_sql(events, "decoy"), [], events)
        real = self.events_with_sql(events, "pg_authid")
        self.assertEqual([(e["rows"], e["command"]) for e in real], [(rows, "SELECT")], events)
        self.assertIn("pg_authid", real[0]["normalized"])
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % self.proxy.db_path, uri=True)
        try:
            stored = [r[0] for r in db.execute("select normalized from fingerprints")]
        finally:
            db.close()
        self.assertEqual([n for n in stored if "decoy" in n], [], stored)
        self.assertEqual(len([n for n in stored if "pg_authid" in n]), 1, stored)



# ----------------------------------------------------------------------------------------------
# Defect 5: SASL mechanism-list rewrite bounded (TLS on one leg)
# ----------------------------------------------------------------------------------------------

import shutil  # noqa: E402  (this section's own imports: sections merge independently)
import ssl  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402

_PROXY_CERT = None


def proxy_certificate():
    """A self-signed certificate and key for --tls-cert/--tls-key (the client leg only)."""
    global _PROXY_CERT
    if _PROXY_CERT is None:
        wd = tempfile.mkdtemp(prefix="pgtally-adv-tls-")
        h._cleanups.append(lambda: shutil.rmtree(wd, ignore_errors=True))
        crt, key = os.path.join(wd, "proxy.crt"), os.path.join(wd, "proxy.key")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            crt, "-days", "2", "-subj", "/CN=localhost"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl req failed:\n" + r.stderr)
        _PROXY_CERT = (crt, key)
    return _PROXY_CERT


def tls_client(port, timeout=10):
    """A client socket to the proxy after SSLRequest, 'S' and a TLS handshake (no checks of
    the certificate: the tests look at the protocol, not at the PKI)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(pgraw.ssl_request())
    answer = s.recv(1)
    if answer != b"S":
        s.close()
        raise AssertionError("SSLRequest answered %r, expected b'S'" % answer)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s, server_hostname="localhost")


def read_messages_until_close(sock, timeout=10):
    """Every backend message (type, body) until the peer closes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, socket.timeout):
            break  # a peer that neither closes nor answers: judge what came
        if not chunk:
            break
        data += chunk
    out = []
    while len(data) >= 5:
        ln = struct.unpack_from("!I", data, 1)[0]
        out.append((data[:1], data[5:1 + ln]))
        data = data[1 + ln:]
    return out


class HostileUpstream:
    """A fake server for one connection: it answers an SSLRequest with 'N', reads the
    StartupMessage, sends `reply` (bytes chosen by the test, deliberately malformed), then
    waits for the proxy to hang up. Only for hostile-server tests; never a stand-in for
    PostgreSQL's normal behaviour."""

    def __init__(self, reply):
        self.reply = reply
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.startup = None
        self.hung_up = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _read_packet(conn):
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                raise ConnectionError("proxy closed during startup")
            head += chunk
        ln = struct.unpack("!I", head)[0]
        body = b""
        while len(body) < ln - 4:
            chunk = conn.recv(ln - 4 - len(body))
            if not chunk:
                raise ConnectionError("proxy closed during startup")
            body += chunk
        return head + body

    def _serve(self):
        self.listener.settimeout(30)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            try:
                packet = self._read_packet(conn)
                if packet == pgraw.ssl_request():
                    conn.sendall(b"N")
                    packet = self._read_packet(conn)
                self.startup = packet
                conn.sendall(self.reply)
                while conn.recv(4096):
                    pass
                self.hung_up.set()
            except OSError:
                self.hung_up.set()

    def close(self):
        self.listener.close()
        self.thread.join(timeout=5)


def sasl_without_final_empty_name(total=1024):
    """AuthenticationSASL of exactly `total` bytes whose names are all terminated but whose
    list lacks the terminating empty name (the shape that overflowed a 1024-byte buffer)."""
    names = b"SCRAM-SHA-256\0"
    filler = total - 9 - len(names) - 1
    body = struct.pack("!I", 10) + names + b"A" * filler + b"\0"
    msg = b"R" + struct.pack("!I", len(body) + 4) + body
    assert len(msg) == total
    return msg


class SaslRewriteBoundedTest(h.ProxyTestCase):
    """TLS on the client leg only, so the proxy rewrites the server's mechanism list."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("the mechanism-list rewrite is the proxy's behaviour")
        self.cluster = h.module_cluster()
        self._clients = []
        self._t0 = time.monotonic()
        self.upstream = HostileUpstream(sasl_without_final_empty_name())
        self.addCleanup(self.upstream.close)
        crt, key = proxy_certificate()
        self.proxy = h.Proxy(self.cluster, upstream="127.0.0.1:%d" % self.upstream.port,
                             extra_args=["--tls-cert", crt, "--tls-key", key]).start()

    def test_1024_byte_sasl_list_without_terminator_is_refused_cleanly(self):
        with tls_client(self.proxy.port) as s:
            s.sendall(pgraw.startup_packet({"user": h.SCRAM_USER, "database": h.DBNAME}))
            msgs = read_messages_until_close(s)
        types = [t for t, _ in msgs]
        self.assertNotIn(b"R", types, "the malformed AuthenticationSASL reached the client")
        self.assertEqual(types, [b"E"], "expected one ErrorResponse, got %r" % msgs)
        fields = pgraw.error_fields(msgs[0][1])
        self.assertEqual(fields.get("C"), "08P01", fields)
        self.assertIn("malformed AuthenticationSASL", fields.get("M", ""))
        self.assertTrue(self.upstream.hung_up.wait(10), "the proxy kept the upstream open")
        self.assertIsNotNone(self.upstream.startup)
        self.assertTrue(self.proxy.alive(), self.proxy.stderr_text()[-3000:])
        self.assertEqual(self.stop_proxy(), [])
        self.assertIn("malformed AuthenticationSASL", self.proxy.result.stderr)



# ----------------------------------------------------------------------------------------------
# Defect 6: replication= follows PostgreSQL's parse_bool exactly
# ----------------------------------------------------------------------------------------------

# Every false spelling the server's parse_bool accepts: the connection is a normal one, and
# must be tracked like any other.
REPLICATION_FALSE_SPELLINGS = ("no", "False", "f", "OFF", "of", "0", "N", "nO", "fAlSe", "fal")


class ReplicationParameterTest(h.ProxyTestCase):

    def test_replication_no_and_false_are_tracked_and_recorded(self):
        for value in ("no", "False"):
            r = self.psql("-c", "select 'repl_bool_%s'" % value.lower(),
                          dsn=self.proxy.dsn(replication=value))
            self.assertEqual(r.stdout.strip(), "repl_bool_%s" % value.lower())
        events = self.stop_proxy()
        for value in ("no", "false"):
            self.assertEqual(len(self.events_with_sql(events, "repl_bool_" + value)), 1,
                             "replication=%s was relayed untracked" % value)
        # and recorded in the report store, not only in the query log
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % self.proxy.db_path, uri=True)
        try:
            stored = db.execute("select count(*) from statements").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(stored, len(events))

    def test_every_false_spelling_is_tracked(self):
        for i, value in enumerate(REPLICATION_FALSE_SPELLINGS):
            c = self.raw_client(startup=False)
            c.startup(h.TRUST_USER, h.DBNAME, replication=value)
            msgs = c.simple("select 'repl_spelling_%d'" % i)
            self.assertIsNone(pgraw.first_error(msgs), value)
        events = self.stop_proxy()
        for i, value in enumerate(REPLICATION_FALSE_SPELLINGS):
            self.assertEqual(len(self.events_with_sql(events, "repl_spelling_%d'" % i)), 1,
                             "replication=%s was relayed untracked" % value)

    def test_invalid_value_refused_as_the_server_refuses_it(self):
        for value in ("maybe", "o", "Database", "", "offf"):
            got = []
            for port in (self.cluster.port, self.proxy.port):
                with pgraw.RawConn(port) as c:
                    c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME,
                                                 "replication": value}))
                    msgs = c.read_all_until_close()
                errors = [pgraw.error_fields(b) for t, b in msgs if t == b"E"]
                self.assertEqual(len(errors), 1, "replication=%r: %r" % (value, msgs))
                got.append((errors[0].get("C"), errors[0].get("M")))
            self.assertEqual(got[1], got[0], "replication=%r: proxy vs server" % value)
            self.assertEqual(got[0][0], "22023")
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])



# ----------------------------------------------------------------------------------------------
# Defect 7: Query log, report -o and check --junit files are created 0600
# ----------------------------------------------------------------------------------------------

# (tests for defect 7 go here)



# ----------------------------------------------------------------------------------------------
# Defect 8: Control bytes and fences in text and Markdown output
# ----------------------------------------------------------------------------------------------

# (tests for defect 8 go here)



# ----------------------------------------------------------------------------------------------
# Defect 9: Metrics scrape served within 1 s while idle sockets hold connections
# ----------------------------------------------------------------------------------------------

import urllib.request  # noqa: E402  (kept in this section: the sections merge independently)


class MetricsEndpointUnderIdleSockets(h.ProxyTestCase):
    """Sockets that connect to the metrics port and send nothing, or only part of a request,
    once held every slot of the endpoint for seconds each while scrapes queued behind them."""

    IDLE = 50  # far more than the endpoint ever kept slots for

    def setUp(self):
        self.metrics_port = h.free_port()
        self.proxy_kwargs = {"extra_args": ["--metrics", "127.0.0.1:%d" % self.metrics_port]}
        super().setUp()

    def open_idle(self, first_bytes=b""):
        socks = []
        for _ in range(self.IDLE):
            s = self.track(socket.create_connection(("127.0.0.1", self.metrics_port), timeout=3))
            if first_bytes:
                s.sendall(first_bytes)
            socks.append(s)
        return socks

    def scrape(self):
        # Prometheus gives up after 10 s by default; 3 s still leaves the proxy ample room.
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=3) as r:
            return r.status, r.read().decode()

    def test_scrape_is_served_while_idle_sockets_are_open(self):
        idle = self.open_idle()
        status, text = self.scrape()
        self.assertEqual(status, 200)
        self.assertIn("pgtally_build_info", text)
        self.assertEqual(len(idle), self.IDLE)  # still open on our side while scraping

    def test_scrape_is_served_while_partial_requests_are_open(self):
        self.open_idle(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        status, text = self.scrape()
        self.assertEqual(status, 200)
        self.assertIn("pgtally_client_connections", text)

    def test_idle_sockets_are_closed_without_a_response(self):
        for s in self.open_idle():
            # Within the 3 s socket timeout: the server, not our side, ends every one.
            try:
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
        status, _ = self.scrape()
        self.assertEqual(status, 200)



# ----------------------------------------------------------------------------------------------
# Defect 10: Request table hash seeded at start (no offline hash flooding)
# ----------------------------------------------------------------------------------------------

# (tests for defect 10 go here)



# ----------------------------------------------------------------------------------------------
# Defect 11: Settings JSON escaped; over-long config lines refused clearly
# ----------------------------------------------------------------------------------------------

import json  # noqa: E402  (kept in this section: the sections merge independently)
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

HOSTILE = 'q"uote\\back\\\\slash\x01ctl\nnl'


class SettingsJsonAndConfigLines(unittest.TestCase):
    """The settings stored with each run were built with printf: an upstream socket path or
    host holding '"' or '\\' made invalid JSON, and the proxy refused to start. Config-file
    lines longer than libinih's 199-byte buffer were split, the rest parsed as a line of its
    own."""

    def setUp(self):
        self.cluster = h.module_cluster()
        self.tmp = tempfile.mkdtemp(prefix="pgtally-d11-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_proxy(self, upstream, *extra):
        proxy = h.Proxy(self.cluster, upstream=upstream, extra_args=list(extra)).start()
        self.addCleanup(proxy.kill)
        return proxy

    def stored_run(self, proxy):
        res = proxy.stop()
        self.assertEqual(res.returncode, 0, res.stderr)
        with sqlite3.connect(proxy.db_path) as db:
            settings, label, instance = db.execute(
                "SELECT settings, label, instance FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return json.loads(settings), label, instance

    def test_hostile_socket_dir_label_and_instance_are_stored_exactly(self):
        # A real socket directory with '"', '\' and a control byte in its name, holding a
        # link to the cluster's socket: the proxy must start, relay and record.
        sockdir = os.path.join(self.tmp, 'so"ck\\et\x01dir')
        os.mkdir(sockdir)
        os.symlink(os.path.join(self.cluster.sockdir, ".s.PGSQL.%d" % self.cluster.port),
                   os.path.join(sockdir, ".s.PGSQL.5432"))
        proxy = self.start_proxy(sockdir, "--run-label", HOSTILE, "--instance", HOSTILE + "2")
        r = subprocess.run([h.pgbin("psql"), "-X", "-At", "-d", proxy.dsn(), "-c", "select 41+1"],
                           capture_output=True, text=True, timeout=60, env=h.client_env())
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "42"), r.stderr)
        settings, label, instance = self.stored_run(proxy)
        self.assertEqual(settings["upstream"], sockdir + "/.s.PGSQL.5432")
        self.assertEqual(settings["db"], proxy.db_path)
        self.assertEqual(label, HOSTILE)
        self.assertEqual(instance, HOSTILE + "2")

    def test_hostile_host_and_passwords_never_reach_the_settings(self):
        # The host does not resolve: the proxy starts anyway and retries for each client.
        proxy = self.start_proxy(
            "postgres://u:s3cret@h%22x%5Cy:1/db?sslpassword=s3cret2&application_name=a")
        settings, _, _ = self.stored_run(proxy)
        self.assertEqual(settings["upstream"], 'h"x\\y:1')
        self.assertNotIn("s3cret", json.dumps(settings))

    def config_run(self, lines):
        path = os.path.join(self.tmp, "pgtally.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--config", path,
                            "--upstream", "127.0.0.1:1", "--help"],
                           capture_output=True, text=True, timeout=30)
        return path, r

    def test_config_line_longer_than_the_limit_names_file_and_line(self):
        # The tail of the long value looks like a setting of its own: it must not be taken.
        value = "a" * 250 + " grace = 2"
        path, r = self.config_run(["[proxy]", "; a comment", "run_label = " + value])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: line longer than 199 bytes" % path, r.stderr)

    def test_config_line_at_the_limit_is_read_whole_and_numbered(self):
        line = "run_label = " + "a" * (199 - len("run_label = "))
        path, r = self.config_run(["[proxy]", line, "grace = 2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        path, r = self.config_run(["[proxy]", line, "no_such_setting = 1"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('%s:3: unknown setting "no_such_setting"' % path, r.stderr)



# ----------------------------------------------------------------------------------------------
# Defect 12: A statement whose tags name another request starts a new request
# ----------------------------------------------------------------------------------------------

# (tests for defect 12 go here)



# ----------------------------------------------------------------------------------------------
# Defect 13: Verdicts: killed proxies, failed starts and completeness
# ----------------------------------------------------------------------------------------------

# (tests for defect 13 go here)



# ----------------------------------------------------------------------------------------------
# Defect 14: Refused clients see 53300 after SSLRequest; refusals logged
# ----------------------------------------------------------------------------------------------

import re  # noqa: E402

import psycopg  # noqa: E402


def refusal_counts(stderr):
    """The counts of the proxy's rate-limited refusal log lines."""
    return [int(n) for n in re.findall(r"refused (\d+) client\(s\) over --max-client-conn",
                                       stderr)]


def default_dsn(port):
    """libpq's defaults, as an app would connect: no sslmode (so prefer), no other options."""
    return "host=127.0.0.1 port=%d user=%s dbname=%s" % (port, h.TRUST_USER, h.DBNAME)


class RefusedClientsTest(h.ProxyTestCase):
    """--max-client-conn 1, its one slot held by a connected client."""

    proxy_kwargs = {"extra_args": ["--max-client-conn", "1"]}

    def hold_the_slot(self):
        """A client in the one slot. The harness's readiness probe holds it until the proxy
        has seen it close, so retry; refusals met on the way are counted."""
        self.slot_refusals = 0
        deadline = time.monotonic() + 10
        while True:
            c = pgraw.RawConn(self.proxy.port)
            try:
                c.startup(h.TRUST_USER, h.DBNAME)
                break
            except RuntimeError as e:
                c.close()
                if "53300" not in str(e) or time.monotonic() > deadline:
                    raise
                self.slot_refusals += 1
                time.sleep(0.02)
        self.track(c)
        c.simple("select 'slot_holder'")
        return c

    def assert_too_many_clients(self, stderr):
        self.assertIn("too many clients", stderr)
        self.assertNotIn("SSL", stderr, "the refusal was read as a failed SSL exchange")

    def test_psql_default_sslmode_sees_53300(self):
        self.hold_the_slot()
        r = self.psql("-c", "select 1", dsn=default_dsn(self.proxy.port), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assert_too_many_clients(r.stderr)
        r = self.psql("-c", "select 1", dsn=self.proxy.dsn(sslmode="prefer"), check=False)
        self.assert_too_many_clients(r.stderr)
        self.assertTrue(self.proxy.alive())
        self.stop_proxy()

    def test_psycopg_default_sslmode_sees_53300(self):
        self.hold_the_slot()
        sqlstate = message = None
        try:
            psycopg.connect(default_dsn(self.proxy.port)).close()
        except psycopg.OperationalError as e:
            sqlstate, message = e.sqlstate, str(e)
        self.assertIsNotNone(message, "connected past --max-client-conn")
        self.assertIn("too many clients", message)
        self.assertNotIn("SSL", message)
        if sqlstate is not None:  # set when libpq kept the server's error fields
            self.assertEqual(sqlstate, "53300")
        self.stop_proxy()

    def test_raw_ssl_request_answered_then_53300(self):
        self.hold_the_slot()
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.ssl_request())
            self.assertEqual(c.read_byte(), b"N")
            c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
            msgs = c.read_all_until_close()
        self.assertEqual([t for t, _ in msgs], [b"E"], msgs)
        fields = pgraw.error_fields(msgs[0][1])
        self.assertEqual((fields.get("S"), fields.get("C")), ("FATAL", "53300"), fields)
        self.stop_proxy()

    def test_every_refusal_is_logged_with_a_count(self):
        self.hold_the_slot()
        n = 5
        for _ in range(n):
            r = self.psql("-c", "select 1", dsn=default_dsn(self.proxy.port), check=False)
            self.assert_too_many_clients(r.stderr)
        self.stop_proxy()
        counts = refusal_counts(self.proxy.result.stderr)
        self.assertTrue(counts, "no refusal log line:\n" + self.proxy.result.stderr[-3000:])
        self.assertEqual(sum(counts), n + self.slot_refusals, self.proxy.result.stderr[-3000:])
        # rate-limited: never more lines than refusals
        self.assertLessEqual(len(counts), n + self.slot_refusals)

    def test_cancel_request_still_forwarded_when_full(self):
        # The server takes a CancelRequest whatever its connection count; so does the proxy.
        holder = self.hold_the_slot()
        holder.send(pgraw.query("select pg_sleep(30) as refused_cancel_marker"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a cancel only reaches a running query
            if self.cluster.admin_sql(
                    "select count(*) from pg_stat_activity where state = 'active' "
                    "and query like '%refused_cancel_marker%' and pid <> pg_backend_pid()"
                    ).strip() == "1":
                break
            time.sleep(0.05)
        with pgraw.RawConn(self.proxy.port) as k:
            k.send(pgraw.cancel_request(holder.backend_pid, holder.backend_key))
            k.read_all_until_close()
        msgs = holder.read_until()
        err = pgraw.first_error(msgs)
        self.assertIsNotNone(err, "the query was not cancelled")
        self.assertEqual(err.get("C"), "57014", err)
        self.stop_proxy()


class RefusedClientsTlsTest(h.ProxyTestCase):
    """The same with TLS served to clients: 'S', the handshake, then 53300 over TLS."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("the proxy's own connection limit")
        crt, key = proxy_certificate()
        self.proxy_kwargs = {"extra_args": ["--max-client-conn", "1", "--tls-cert", crt,
                                            "--tls-key", key]}
        super().setUp()

    def test_tls_client_refused_with_53300(self):
        RefusedClientsTest.hold_the_slot(self)
        for mode in ("prefer", "require"):
            r = self.psql("-c", "select 1", dsn=self.proxy.dsn(sslmode=mode), check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("too many clients", r.stderr, mode)
        with tls_client(self.proxy.port) as s:
            s.sendall(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
            msgs = read_messages_until_close(s)
        self.assertEqual([t for t, _ in msgs], [b"E"], msgs)
        self.assertEqual(pgraw.error_fields(msgs[0][1]).get("C"), "53300")
        self.stop_proxy()
        # libpq retries sslmode=prefer without TLS after an error over TLS: 3 or more
        self.assertGreaterEqual(sum(refusal_counts(self.proxy.result.stderr)),
                                3 + self.slot_refusals)



# ----------------------------------------------------------------------------------------------
# Defect 15: Signals before handlers are installed
# ----------------------------------------------------------------------------------------------

import unittest  # noqa: E402

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def signal_masks(pid):
    """(blocked, caught) signal masks of a process, from /proc/PID/status."""
    blk = cgt = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigBlk:"):
                blk = int(line.split()[1], 16)
            elif line.startswith("SigCgt:"):
                cgt = int(line.split()[1], 16)
    return blk, cgt


class EarlySignalTest(unittest.TestCase):
    """Signals sent as early as a supervisor could: the moment the process is in main (its
    signal mask changed, or a handler exists, or its query log file exists, whichever shows
    first), then at increasing tiny delays after that. A signal during the dynamic loader's
    work before main cannot be handled by any program and is not tested."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("the proxy's own signal handling")
        self.cluster = h.module_cluster()

    def spawn(self):
        """A proxy that may not be listening yet: (process, port, stderr path, log path)."""
        log_path = self.cluster.next_log_path()
        stderr_path = log_path.replace(".jsonl", ".stderr")
        port = h.free_port()
        cmd = [os.environ["PGTALLY_BIN"], "proxy", "--listen", "127.0.0.1:%d" % port,
               "--upstream", "127.0.0.1:%d" % self.cluster.port, "--log-queries", log_path,
               "--db", log_path.replace(".jsonl", ".db")]
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    preexec_fn=h._die_with_parent)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc, port, stderr_path, log_path

    @staticmethod
    def wait_in_main(proc, log_path, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                blk, cgt = signal_masks(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                return  # already gone: the caller sees its exit status
            if (blk | cgt) & SIGTERM_BIT or os.path.exists(log_path):
                return
        raise AssertionError("proxy never reached main")

    @staticmethod
    def pause(seconds):
        # A busy wait: sleep() cannot resolve tenths of a millisecond.
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    @staticmethod
    def stderr_of(path):
        with open(path, errors="replace") as f:
            return f.read()

    def test_sigterm_at_start_exits_cleanly(self):
        failures = []
        for i in range(30):
            proc, _, stderr_path, log_path = self.spawn()
            self.wait_in_main(proc, log_path)
            self.pause(i * 0.0005)
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                rc = "still running 30 s after SIGTERM"
            stderr = self.stderr_of(stderr_path)
            if rc == 1 and "cannot listen on" in stderr:
                continue  # the free port was taken meanwhile: nothing to judge
            if rc != 0 or "signal %d:" % signal.SIGTERM not in stderr or "stopped:" not in stderr:
                failures.append("attempt %d (+%.1f ms): exit %s, stderr %r"
                                % (i, i * 0.5, rc, stderr[-400:]))
                continue
            # the run is in the store and complete: a sidecar stopped early keeps its run
            import sqlite3
            db = sqlite3.connect("file:%s?mode=ro" % log_path.replace(".jsonl", ".db"), uri=True)
            try:
                runs = db.execute("select complete from runs").fetchall()
            finally:
                db.close()
            if runs != [(1,)]:
                failures.append("attempt %d: runs %r" % (i, runs))
        self.assertEqual(failures, [], "\n".join(failures))

    def test_sighup_and_sigusr1_at_start_leave_it_running(self):
        failures = []
        for sig, logged in ((signal.SIGHUP, "SIGHUP: configuration reloaded"),
                            (signal.SIGUSR1, "SIGUSR1: ")):
            for i in range(10):
                proc, port, stderr_path, log_path = self.spawn()
                self.wait_in_main(proc, log_path)
                self.pause(i * 0.001)
                proc.send_signal(sig)
                deadline = time.monotonic() + 20
                while proc.poll() is None and not h.port_accepts(port):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                alive = proc.poll() is None
                if alive:
                    proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    rc = "still running 30 s after SIGTERM"
                stderr = self.stderr_of(stderr_path)
                if not alive or rc != 0 or logged not in stderr:
                    failures.append("%s attempt %d (+%d ms): %s, exit %s, stderr %r"
                                    % (sig.name, i, i, "alive" if alive else "died", rc,
                                       stderr[-400:]))
        self.assertEqual(failures, [], "\n".join(failures))



if __name__ == "__main__":
    h.main()
