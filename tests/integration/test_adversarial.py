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

# (tests for defect 5 go here)



# ----------------------------------------------------------------------------------------------
# Defect 6: replication= follows PostgreSQL's parse_bool exactly
# ----------------------------------------------------------------------------------------------

# (tests for defect 6 go here)



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

# (tests for defect 9 go here)



# ----------------------------------------------------------------------------------------------
# Defect 10: Request table hash seeded at start (no offline hash flooding)
# ----------------------------------------------------------------------------------------------

# (tests for defect 10 go here)



# ----------------------------------------------------------------------------------------------
# Defect 11: Settings JSON escaped; over-long config lines refused clearly
# ----------------------------------------------------------------------------------------------

# (tests for defect 11 go here)



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

# (tests for defect 14 go here)



# ----------------------------------------------------------------------------------------------
# Defect 15: Signals before handlers are installed
# ----------------------------------------------------------------------------------------------

# (tests for defect 15 go here)



if __name__ == "__main__":
    h.main()
