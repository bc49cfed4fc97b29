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

# The normalizer's side: a run of +/- operators costs linear work (tests/unit/test_sqlnorm.c
# bounds it per byte; here the real binary and proxy). Before the fix, the cost grew with the
# square of the run: 64 KiB took 6 s in `pgtally fingerprint`, 1 MiB would take half an hour,
# and the proxy's loop, every other client with it, stalled for a quarter of an hour.

class NormalizerOperatorRunTest(h.ProxyTestCase):
    """Defect 1: a 1 MiB `SELECT 1+-+-...` is normalized in linear time by the CLI, and
    relayed and recorded (normalized on its first 64 KiB) while the proxy keeps serving
    another client."""

    # 1 MiB: far beyond what the quadratic code got through within the timeouts below on any
    # machine (with 256 KiB, an idle machine slipped under them), and milliseconds now.
    PAIRS = 512 * 1024
    RUN = "SELECT 1" + "+-" * PAIRS  # 1 MiB of operators
    RUN_NORMALIZED = "select $1 " + " ".join("+-" * PAIRS)
    # The same run where PostgreSQL's parser stops at once (`1 1` is a syntax error, and its
    # lexer is never asked for the run): the server answers in milliseconds, the proxy still
    # records all of it. (PostgreSQL's own lexer is slow on RUN: at 256 KiB it
    # took 27 s to refuse it.)
    EARLY_ERROR = "SELECT 1 1" + "+-" * PAIRS
    EARLY_ERROR_NORMALIZED = "select $1 $2 " + " ".join("+-" * PAIRS)

    # the whole statement is kept (the query log shows it), not the default 64 KiB
    proxy_kwargs = {"extra_args": ["--max-sql-bytes", str(4 * 1024 * 1024)]}

    @staticmethod
    def fingerprint_cli(sql):
        """The one JSON object `pgtally fingerprint` prints for sql (one statement)."""
        import json
        # timeout: a hang guard only; linear work takes a fraction of a second
        r = subprocess.run([os.environ["PGTALLY_BIN"], "fingerprint"],
                           input=(sql + "\n").encode(), capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("pgtally fingerprint failed (%d): %r" % (r.returncode, r.stderr))
        lines = r.stdout.decode().splitlines()
        if len(lines) != 1:
            raise AssertionError("expected one statement, got %d lines" % len(lines))
        return json.loads(lines[0])

    def test_fingerprint_cli_normalizes_a_1m_operator_run(self):
        obj = self.fingerprint_cli(self.RUN)
        self.assertEqual(obj["normalized"], self.RUN_NORMALIZED)
        self.assertFalse(obj["incomplete"])

    def test_operator_run_relayed_and_recorded_while_a_bystander_is_served(self):
        # A generous socket timeout, only so that a stalled proxy ends the test: before the
        # fix the loop was busy for many minutes and these reads gave up; now, milliseconds.
        bystander = self.raw_client(timeout=60)
        culprit = self.raw_client(timeout=60)
        culprit.send(pgraw.query(self.EARLY_ERROR))
        before = bystander.simple("SELECT 'bystander during'")
        answer = culprit.read_until()
        after = bystander.simple("SELECT 'bystander after'")
        for msgs, text in ((before, "bystander during"), (after, "bystander after")):
            rows = [pgraw.datarow_values(body) for t, body in msgs if t == b"D"]
            self.assertEqual(rows, [[text]], "the bystander was answered")
        # PostgreSQL's syntax error, relayed as is.
        self.assertEqual([t for t, _ in answer], [b"E", b"Z"])
        self.assertEqual(pgraw.error_fields(answer[0][1])["C"], "42601")

        events = self.stop_proxy()
        cli = self.fingerprint_cli(self.EARLY_ERROR)
        self.assertEqual(cli["normalized"], self.EARLY_ERROR_NORMALIZED)
        runs = self.events_with_sql(events, "SELECT 1 1+-+-")
        self.assertEqual(len(runs), 1, "the culprit's statement is recorded once")
        ev = runs[0]
        self.assertEqual(ev["sql"], self.EARLY_ERROR)
        self.assertFalse(ev["sql_truncated"])
        self.assertEqual(ev["sqlstate"], "42601")
        # The proxy normalizes a bounded prefix (64 KiB: no message holds the loop much
        # beyond a millisecond) and says so; the CLI normalizes all of it, and agrees on
        # that prefix.
        prefix = self.fingerprint_cli(self.EARLY_ERROR[:64 * 1024])
        self.assertEqual(ev["normalized"], prefix["normalized"])
        self.assertEqual(ev["fingerprint"], prefix["fingerprint"])
        self.assertTrue(ev["incomplete"])
        self.assertEqual(len(self.events_with_sql(events, "bystander")), 2)

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

import stat  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class OutputFilesOwnerOnly(h.ProxyTestCase):
    """The query log holds raw SQL with its literals (`CREATE ROLE ... PASSWORD '...'`), and
    `report -o` / `check --junit` / `check --markdown` outputs hold SQL: each is created 0600
    even with umask 0, and an existing file of ours that others could read is tightened."""

    def setUp(self):
        self.old_umask = os.umask(0)  # the proxy and the CLI inherit it
        self.addCleanup(os.umask, self.old_umask)
        self.tmp = tempfile.mkdtemp(prefix="pgtally-modes-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.tmp])
        super().setUp()

    def cli(self, *args):
        return subprocess.run([os.environ["PGTALLY_BIN"], *args], capture_output=True,
                              text=True, timeout=60)

    def test_query_log_created_0600_with_umask_0(self):
        self.psql("-c", "SELECT 'secret literal'")
        self.assertTrue(os.path.exists(self.proxy.log_path))
        self.assertEqual(oct(file_mode(self.proxy.log_path)), oct(0o600))

    def test_existing_query_log_of_ours_is_tightened_to_0600(self):
        path = os.path.join(self.tmp, "queries.jsonl")
        with open(path, "w") as f:
            f.write("")
        os.chmod(path, 0o644)
        proxy = h.Proxy(self.cluster, extra_args=["--log-queries", path]).start()
        try:
            self.assertEqual(oct(file_mode(path)), oct(0o600))
        finally:
            proxy.stop()

    def report_db(self):
        self.psql("-c", "SELECT 1 /*request_id='modes-1',route='/modes'*/")
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        return self.proxy.db_path

    def test_report_and_check_outputs_created_0600_with_umask_0(self):
        db = self.report_db()
        out = os.path.join(self.tmp, "report.md")
        r = self.cli("report", "--db", db, "--format", "markdown", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(oct(file_mode(out)), oct(0o600))
        budget = os.path.join(self.tmp, "budget.ini")
        with open(budget, "w") as f:
            f.write("[defaults]\nmax_queries = 10\n")
        junit = os.path.join(self.tmp, "junit.xml")
        md = os.path.join(self.tmp, "check.md")
        r = self.cli("check", "--db", db, "--budget", budget, "--junit", junit, "--markdown", md)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(oct(file_mode(junit)), oct(0o600))
        self.assertEqual(oct(file_mode(md)), oct(0o600))
        # Written again over files of ours that others could read: tightened.
        for path in (out, junit):
            os.chmod(path, 0o666)
        self.cli("report", "--db", db, "-o", out)
        self.cli("check", "--db", db, "--budget", budget, "--junit", junit)
        self.assertEqual(oct(file_mode(out)), oct(0o600))
        self.assertEqual(oct(file_mode(junit)), oct(0o600))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give a file to another user")
    def test_someone_elses_readable_output_file_is_left_alone_with_a_warning(self):
        db = self.report_db()
        out = os.path.join(self.tmp, "theirs.txt")
        with open(out, "w") as f:
            f.write("")
        os.chmod(out, 0o644)
        os.chown(out, 65534, 65534)
        r = self.cli("report", "--db", db, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("others can read it", r.stderr)
        self.assertEqual(oct(file_mode(out)), oct(0o644))



# ----------------------------------------------------------------------------------------------
# Defect 8: Control bytes and fences in text and Markdown output
# ----------------------------------------------------------------------------------------------

import re  # noqa: E402
import sqlite3  # noqa: E402

import psycopg2  # noqa: E402

# Bytes no terminal, CI log or Markdown renderer may be handed raw: C0 controls but newline and
# tab, DEL, C1 controls (as UTF-8, and as the raw 8-bit CSI byte, which is not UTF-8).
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\x9b]|\xc2[\x80-\x9f]")
TICKS = "`" * 20


class ControlBytesAndFences(h.ProxyTestCase):
    """Statements, route names, request ids and tags written by an attacker reach every text
    and Markdown view, and `pgtally check`'s outputs, without a control byte and without
    ending a Markdown code fence."""

    proxy_kwargs = {"extra_args": ["--samples"]}  # the SQL with its values is shown too

    def cli(self, *args):
        return subprocess.run([os.environ["PGTALLY_BIN"], *args], capture_output=True,
                              timeout=60)

    def assert_no_raw_control(self, what, data):
        m = RAW_CONTROL.search(data)
        if m:
            self.fail("%s passes a raw control byte %r at %d: %r"
                      % (what, m.group(), m.start(), data[max(0, m.start() - 60):][:120]))

    def test_no_view_passes_control_bytes_or_ends_a_fence_early(self):
        # Tag values are URL-decoded, so any byte can be put in one.
        tags = ("/*request_id='r%1B%5D0%3Bpwned%07%1B%5B2J%0D%C2%9B%9B',"
                "route='%2Fapi%1B%5B31m%0Dx%07%C2%9B31m%9B'*/")
        conn = psycopg2.connect(self.proxy.dsn())
        conn.autocommit = True
        cur = conn.cursor()
        # An N+1 whose SQL quotes an identifier of 20 backticks: it is shown in a code block.
        for i in range(6):
            cur.execute('SELECT %s::int AS "' + TICKS + '" ' + tags.replace("%", "%%"), (i,))
        # A statement whose first token, a quoted identifier, holds escape sequences (the
        # server rejects it; it is still recorded, and that token is the fingerprint's
        # command).
        try:
            cur.execute('"\x1b]0;pwned\x07\x1b[2J\r\xc2\x9b" SELECT 1 ' + tags)
        except psycopg2.Error:
            pass
        conn.close()
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        db = self.proxy.db_path
        esc_fp = [ev["fingerprint"] for ev in result.events
                  if (ev.get("sql") or "").startswith('"\x1b')]
        self.assertTrue(esc_fp and esc_fp[0], "the escape statement was not recorded")
        n1_fp = [ev["fingerprint"] for ev in result.events if TICKS in (ev.get("sql") or "")][0]

        outputs = {}
        for fmt in ("text", "markdown"):
            r = self.cli("report", "--db", db, "--format", fmt)
            self.assertEqual(r.returncode, 0, r.stderr)
            outputs["report " + fmt] = r.stdout
        # the request by its row: its id is not valid UTF-8, which argv cannot carry as is
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as con:
            row = con.execute("SELECT id FROM requests WHERE key LIKE 'request_id:r%'"
                              ).fetchone()[0]
        for args in (["--request", str(row)], ["--fingerprint", esc_fp[0]],
                     ["--fingerprint", n1_fp]):
            r = self.cli("report", "--db", db, *args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            outputs["report " + " ".join(args)] = r.stdout + r.stderr
        budget = os.path.join(os.path.dirname(db), "defect8-budget.ini")
        with open(budget, "w") as f:
            f.write("[defaults]\nmax_queries = 1\nmax_n_plus_one = 0\n")
        junit, md = db + ".junit.xml", db + ".check.md"
        r = self.cli("check", "--db", db, "--budget", budget, "--junit", junit, "--markdown", md)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        outputs["check text"] = r.stdout + r.stderr
        for name, path in (("check junit", junit), ("check markdown", md)):
            with open(path, "rb") as f:
                outputs[name] = f.read()
        for name, data in outputs.items():
            self.assert_no_raw_control(name, data)
        # the escape sequence is visible, escaped, where it was
        self.assertIn(rb"\x1b]0;pwned\x07\x1b[2J", outputs["report --fingerprint " + esc_fp[0]])
        self.assertIn(rb"/api\x1b[31m", outputs["report text"])

        # Markdown: the fence around the N+1's SQL is longer than the identifier's backticks,
        # so the whole statement stays inside the code block.
        text = outputs["report markdown"].decode("utf-8")
        m = re.search(r"^(`{3,})sql\n(.*?)\n\1$", text, re.S | re.M)
        self.assertIsNotNone(m, text)
        self.assertGreater(len(m.group(1)), len(TICKS), m.group(0))
        self.assertIn('"%s"' % TICKS, m.group(2))



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

import json  # noqa: E402 (each section keeps its own imports: sections merge separately)
import sys  # noqa: E402
import unittest  # noqa: E402


class RequestTableHashSeed(unittest.TestCase):
    """Request ids chosen offline to share one bucket of the tally's request table (the shape
    of the flood that cost 7-15x CPU per statement) must not share one under the proxy's
    random seed. tally_flood drives the shipped tally with such ids; CPU figures are printed
    for the record, never asserted."""

    def flood(self, *args):
        out = subprocess.run([os.environ["TALLY_FLOOD"], "--keys", "3000", "--rounds", "3"]
                             + list(args), capture_output=True, text=True, timeout=120,
                             check=True).stdout
        return json.loads(out)

    def test_ids_colliding_for_an_unseeded_hash_spread_under_the_random_seed(self):
        unseeded = self.flood("--seed0")
        # The ids do collide when the seed is 0, as it was before...
        self.assertEqual(unseeded["max_chain"], 3000, unseeded)
        seeded = self.flood()
        # ...and spread over the buckets like any ids once the seed is random
        # (3000 keys in 16384 buckets: a longest chain of 3 to 5).
        self.assertLessEqual(seeded["max_chain"], 12, seeded)
        print("\ndefect 10: %s ns/statement unseeded, %s seeded"
              % (unseeded["ns_per_statement"], seeded["ns_per_statement"]), file=sys.stderr)



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

import sqlite3  # noqa: E402

import psycopg2  # noqa: E402

# How each style tags a request's statements (None: untagged), and the label the report shows.
# {n} is the pair, {p} the request in it (1, 2): ids are unique across the whole test.
TAG_STYLES = {
    "request_id": ("/*request_id='req{n}-{p}'*/", None),
    "correlation_id": ("/*correlation_id='corr{n}-{p}'*/", None),
    "traceparent": ("/*traceparent='00-{n:030x}{p:02x}-00f067aa0ba902b7-01'*/", None),
    "route": ("/*route='%2Fapi%2Fr{p}'*/", "/api/r{p}"),
    "marginalia": ("/*controller:c{p},action:show*/", "c{p}#show"),
    "application_name": (None, "app{p}"),  # SET application_name first, then no comments
    "untagged": (None, None),
}


class TagStylesInSequence(h.ProxyTestCase):
    """Every pair of tagging styles, one request after the other on one psycopg2 connection
    (so each request is a transaction whose BEGIN and COMMIT the driver sends untagged). The
    second request starts a new request unless it is untagged: only then does it join the
    one before, as a driver's COMMIT does. 3 statements, then 2, so a merge shows."""

    def run_request(self, conn, style, pair, phase, n):
        comment, _ = TAG_STYLES[style]
        cur = conn.cursor()
        if style == "application_name":
            cur.execute("SET application_name = 'app%d'" % phase)
        for i in range(n):
            sql = "SELECT 'pair %d phase %d', %d" % (pair, phase, i)
            if comment:
                sql += " " + comment.format(n=pair, p=phase)
            cur.execute(sql)
            cur.fetchall()
        conn.commit()

    def test_a_request_tagged_another_way_is_never_counted_in_the_one_before(self):
        pairs = [(a, b) for a in TAG_STYLES for b in TAG_STYLES]
        for n, (first, second) in enumerate(pairs):
            conn = psycopg2.connect(self.proxy.dsn())
            try:
                self.run_request(conn, first, n, 1, 3)
                self.run_request(conn, second, n, 2, 2)
            finally:
                conn.close()
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        conn_of = {}
        for ev in result.events:
            sql = ev.get("sql") or ""
            if sql.startswith("SELECT 'pair "):
                conn_of[int(sql.split()[2])] = ev["conn"]
        db = sqlite3.connect("file:%s?mode=ro" % self.proxy.db_path, uri=True)
        try:
            rows = db.execute("SELECT conn_id, key, route, statements FROM requests "
                              "ORDER BY start_us").fetchall()
        finally:
            db.close()
        wrong = []
        for n, (first, second) in enumerate(pairs):
            got = [(key, route, count) for c, key, route, count in rows if c == conn_of[n]]
            # each request is BEGIN + its statements + COMMIT
            if second == "untagged":
                want_counts = [5 + 4]
            else:
                want_counts = [3 + 2, 2 + 2]
            counts = [count for _, _, count in got]
            labels_ok = True
            if len(got) == 2:
                for phase, style in ((1, first), (2, second)):
                    label = TAG_STYLES[style][1]
                    if label and got[phase - 1][1] != label.format(p=phase):
                        labels_ok = False
            if counts != want_counts or not labels_ok:
                wrong.append("%s then %s: %r, want counts %r" % (first, second, got, want_counts))
        self.assertEqual(wrong, [], "\n".join(wrong))



# ----------------------------------------------------------------------------------------------
# Defect 13: Verdicts: killed proxies, failed starts and completeness
# ----------------------------------------------------------------------------------------------

class KilledProxyVerdictTest(h.ProxyTestCase):
    """A SIGUSR1 snapshot no longer vouches for a run whose proxy died or saw more since."""

    # requests stay open until their connection closes: nothing reaches the file after the
    # snapshot, so only the heartbeat (and the proxy's death) can tell
    proxy_kwargs = {"extra_args": ["--request-gap", "600"]}

    def _open_session(self, sql):
        """psql on a connection kept open after `sql` ran (its request never ends)."""
        p = subprocess.Popen([h.pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                              self.proxy.dsn()], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        p.stdin.write(sql + "\\echo d13-done\n")
        p.stdin.flush()
        line = ""
        while "d13-done" not in line:
            line = p.stdout.readline()
            self.assertTrue(line, "psql ended early")
        self.track(p.stdin)
        self.addCleanup(p.kill)
        return p

    def _budget(self):
        path = os.path.join(self.cluster.tmpdir, "d13-budget-%d.ini" % os.getpid())
        with open(path, "w") as f:
            f.write("[defaults]\nmax_queries = 50\nmax_n_plus_one = 0\n")
        return path

    def _check(self, budget):
        return subprocess.run([os.environ["PGTALLY_BIN"], "check", "--db", self.proxy.db_path,
                               "--budget", budget], capture_output=True, text=True, timeout=60)

    def _snapshot(self, budget):
        self.proxy.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        r = self._check(budget)
        while r.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = self._check(budget)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_snapshot_then_sigkill_with_unrecorded_n_plus_one_is_incomplete(self):
        budget = self._budget()
        self.psql("-c", "/*request_id='d13a',route='%2Fok'*/ select 1")
        self._snapshot(budget)
        # a 12-call N+1 in a request still open when the proxy is killed: never recorded
        sql = "".join("/*request_id='d13b',route='%%2Fnplus'*/ select %d;\n" % i
                      for i in range(12))
        self._open_session(sql)
        self.proxy.stop(sig=signal.SIGKILL)  # before any heartbeat can show the N+1
        r = self._check(budget)
        self.assertEqual(r.returncode, 1, "check trusted a dead proxy's snapshot:\n" +
                         r.stdout + r.stderr)
        self.assertIn("incomplete", (r.stdout + r.stderr).lower())

    def test_statements_seen_after_the_snapshot_make_it_stale(self):
        budget = self._budget()
        self.psql("-c", "/*request_id='d13c',route='%2Fok'*/ select 1")
        self._snapshot(budget)
        # a request still open: only the heartbeat shows it
        self._open_session("/*request_id='d13d',route='%2Fok'*/ select 2;\n")
        deadline = time.monotonic() + 15
        r = self._check(budget)
        while r.returncode != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = self._check(budget)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.stop_proxy()


class FailedStartAddsNoRunTest(h.unittest.TestCase):
    """A proxy that cannot bind its ports exits without touching the report store."""

    def _runs(self, db):
        import sqlite3
        if not os.path.exists(db):
            return 0
        con = sqlite3.connect(db)
        try:
            return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # no tables yet
        finally:
            con.close()

    def _start_fails(self, extra):
        cluster = h.module_cluster()
        db = os.path.join(cluster.tmpdir, "d13-failed-start-%d.db" % time.monotonic_ns())
        r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--upstream",
                            "127.0.0.1:%d" % cluster.port, "--db", db] + extra,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self._runs(db), 0, "a proxy that never started added a run")

    def test_listen_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            self._start_fails(["--listen", "127.0.0.1:%d" % busy.getsockname()[1]])

    def test_metrics_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            self._start_fails(["--listen", "127.0.0.1:%d" % h.free_port(),
                               "--metrics", "127.0.0.1:%d" % busy.getsockname()[1]])



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

    @staticmethod
    def lost_its_port(rc, stderr):
        """The free port was taken by another process before the proxy bound it."""
        return rc == 1 and "cannot listen on" in stderr

    def signal_at_start(self, sig, delay, run):
        """Spawns a proxy, sends `sig` `delay` seconds after it reaches main, and returns
        run(proc, port) and its stderr. A proxy that lost its free port to another process
        tells nothing about signals: that attempt is made again on another port."""
        for _ in range(5):
            proc, port, stderr_path, log_path = self.spawn()
            self.wait_in_main(proc, log_path)
            self.pause(delay)
            proc.send_signal(sig)
            result = run(proc, port)
            stderr = self.stderr_of(stderr_path)
            if not self.lost_its_port(proc.returncode, stderr):
                return result, stderr, log_path
        raise AssertionError("five free ports in a row were taken by others")

    @staticmethod
    def wait_exit(proc):
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return "still running 30 s after SIGTERM"

    def test_sigterm_at_start_exits_cleanly(self):
        failures = []
        for i in range(30):
            rc, stderr, log_path = self.signal_at_start(signal.SIGTERM, i * 0.0005,
                                                        lambda proc, port: self.wait_exit(proc))
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
        def listens_then_stop(proc, port):
            """(alive once it listened, exit status after SIGTERM)."""
            deadline = time.monotonic() + 20
            while proc.poll() is None and not h.listens(proc.pid, port):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            alive = proc.poll() is None
            if alive:
                proc.send_signal(signal.SIGTERM)
            return alive, self.wait_exit(proc)

        failures = []
        for sig, logged in ((signal.SIGHUP, "SIGHUP: configuration reloaded"),
                            (signal.SIGUSR1, "SIGUSR1: ")):
            for i in range(10):
                (alive, rc), stderr, _ = self.signal_at_start(sig, i * 0.001, listens_then_stop)
                if not alive or rc != 0 or logged not in stderr:
                    failures.append("%s attempt %d (+%d ms): %s, exit %s, stderr %r"
                                    % (sig.name, i, i, "alive" if alive else "died", rc,
                                       stderr[-400:]))
        self.assertEqual(failures, [], "\n".join(failures))



# ----------------------------------------------------------------------------------------------
# Review after the defects: log escaping, suspended tracking (later gaps)
# ----------------------------------------------------------------------------------------------

# Log lines: DEL and the C1 controls (U+0080-U+009F as UTF-8, and the raw 8-bit CSI byte)
# are escaped like the C0 controls, so a client's startup bytes cannot act on a terminal that
# shows the log.
LOG_RAW_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f\x9b]|\xc2[\x80-\x9f]")


class LogLineEscapingTest(h.ProxyTestCase):
    """A startup parameter the proxy refuses is quoted in its log line: the client's bytes
    arrive there escaped."""

    def test_del_and_c1_controls_in_a_startup_value_are_escaped_in_the_log(self):
        value = b"\x1b[2J\x7f\xc2\x9b31m\x9b\xc2\x85x\xc3\xa9"
        body = struct.pack("!I", pgraw.PROTOCOL_3_0)
        for k, v in ((b"user", h.TRUST_USER.encode()), (b"database", h.DBNAME.encode()),
                     (b"replication", value)):
            body += k + b"\0" + v + b"\0"
        body += b"\0"
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(struct.pack("!I", len(body) + 4) + body)
            msgs = c.read_all_until_close()
        self.assertEqual([t for t, _ in msgs], [b"E"], msgs)
        self.proxy.stop()
        with open(self.proxy.stderr_path, "rb") as f:
            lines = [ln for ln in f.read().split(b"\n") if b"replication" in ln]
        self.assertEqual(len(lines), 1, lines)
        m = LOG_RAW_CONTROL.search(lines[0])
        self.assertIsNone(m, "raw control byte in the log line: %r" % lines[0])
        # each is visible, escaped, where it was; the valid UTF-8 letter stays as it is
        self.assertIn(rb'\x1b[2J\x7f\x9b31m\x9b\x85x' + "\u00e9".encode(), lines[0])



# Suspended tracking: requests a client pipelines behind its startup packet are waited out
# like a suspension (they are answered after authentication, and nothing of them is kept).
# Among them a failing Parse, a Query and a Sync: the server skips the Query, so only the
# Sync is answered. Tracking must resume at that ReadyForQuery (and the connection look
# idle), not wait for the Query's answer that never comes.

class SuspendedTrackingFollowsSkipTest(h.ProxyTestCase):
    proxy_kwargs = {"extra_args": ["--idle-timeout", "1"]}

    def test_tracking_resumes_after_a_skip_until_sync_sent_before_authentication(self):
        c = self.track(pgraw.RawConn(self.proxy.port, timeout=30))
        c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME})
               + pgraw.parse("", "SELEC this is a syntax error")
               + pgraw.query("select 'skipped by the server'") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until())[:1], b"R")  # startup, to its Z
        self.assertEqual(pgraw.types_of(c.read_until()), b"EZ")
        msgs = c.simple("select 'tracked again after the skip'")
        self.assertEqual(pgraw.types_of(msgs), b"TDCZ")
        try:
            rest = c.read_all_until_close(timeout=15)
        except socket.timeout:
            self.fail("the idle connection was not closed by --idle-timeout")
        err = pgraw.first_error(rest)
        self.assertIsNotNone(err, rest)
        self.assertEqual(err["C"], "57P05")
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "tracked again after the skip")
        self.assertEqual([(e["rows"], e["command"]) for e in mine], [(1, "SELECT")], events)
        self.assertEqual(self.events_with_sql(events, "skipped by the server"), [])


if __name__ == "__main__":
    h.main()
