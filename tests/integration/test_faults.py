"""Bad input and faults: malformed client messages, an unreachable upstream, clients and
backends that vanish mid-query, upstream address forms, and shutdown by SIGTERM/SIGINT with
connections open. The proxy must answer or close the one connection at fault and keep serving
everyone else.
"""

import os
import signal
import socket
import struct
import subprocess
import time

import psycopg

import pgharness as h
import pgraw

BIG_RESULT = "select repeat('x', 1000) as big from generate_series(1, 100000)"  # ~100 MB


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


class MalformedMessageTest(h.ProxyTestCase):

    def assert_refused_and_others_unharmed(self, bad_bytes):
        bystander = self.raw_client()
        self.assertEqual(pgraw.types_of(bystander.simple("select 'bystander_before'")),
                         b"TDCZ")
        culprit = self.raw_client()
        culprit.send(bad_bytes)
        if h.DIRECT:
            self.assert_postgres_rejects(culprit)
        msgs = culprit.read_all_until_close(timeout=10)
        err = pgraw.first_error(msgs)
        self.assertIsNotNone(err, "no ErrorResponse before close: %r" % msgs)
        self.assertEqual(err["C"], "08P01", err)
        self.assertEqual(pgraw.types_of(msgs)[-1:], b"E", "nothing may follow the error")
        msgs = bystander.simple("select 'bystander_after'")
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["bystander_after"])
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "bystander_after")), 1, events)

    def assert_postgres_rejects(self, culprit):
        """Direct mode: checks the bytes are malformed by Postgres' own standard (it answers
        08P01 or hangs up), then skips: closing after the error is the proxy's contract."""
        try:
            msgs = culprit.read_until((b"Z", b"E"))
            self.assertEqual(pgraw.first_error(msgs)["C"], "08P01", msgs)
        except (pgraw.ConnectionClosed, ConnectionResetError):
            pass
        self.skipTest("PGTALLY_DIRECT=1: Postgres rejects it; the close is proxy contract")

    def test_length_below_4_is_refused(self):
        self.assert_refused_and_others_unharmed(b"Q" + struct.pack("!I", 3))

    def test_huge_length_is_refused(self):
        # Only the header is sent: the proxy must decide from the length, not wait for 2 GB.
        self.assert_refused_and_others_unharmed(b"Q" + struct.pack("!I", 0x7FFFFFF0))

    def test_unknown_message_type_is_refused(self):
        self.assert_refused_and_others_unharmed(pgraw.msg(b"z", b"\0\0"))

    def test_query_without_nul_terminator_is_refused(self):
        self.assert_refused_and_others_unharmed(pgraw.msg(b"Q", b"select 1"))

    def test_truncated_parse_fields_are_refused(self):
        # Name and SQL, then the message ends where the int16 parameter count should be.
        self.assert_refused_and_others_unharmed(pgraw.msg(b"P", b"\0select 1\0"))

    def test_truncated_bind_fields_are_refused(self):
        # Bind claiming one parameter value whose bytes are not there.
        # A valid Parse first, so that Postgres itself gets as far as reading the values.
        body = b"\0\0" + struct.pack("!HH", 0, 1) + struct.pack("!i", 100) + b"abc"
        self.assert_refused_and_others_unharmed(pgraw.parse("", "select $1::text")
                                                + pgraw.msg(b"B", body))


class UpstreamTest(h.ProxyTestCase):

    def test_unreachable_upstream_gets_08006_with_address(self):
        if h.DIRECT:
            self.skipTest("needs the proxy")
        port = h.closed_port()
        dead = h.Proxy(self.cluster, upstream="127.0.0.1:%d" % port).start()
        self.addCleanup(dead.kill)
        with pgraw.RawConn(dead.port) as c:
            c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
            msgs = c.read_all_until_close(timeout=15)
        err = pgraw.first_error(msgs)
        self.assertIsNotNone(err, msgs)
        self.assertEqual(err["C"], "08006")
        self.assertIn("127.0.0.1:%d" % port, err["M"])
        # A driver shows the same message to its user.
        with self.assertRaises(psycopg.OperationalError) as cm:
            psycopg.connect(dead.dsn())
        self.assertIn("127.0.0.1:%d" % port, str(cm.exception))
        self.assertTrue(dead.alive())
        res = dead.stop()
        self.assertEqual((res.returncode, res.events), (0, []))

    def test_upstream_as_postgres_url(self):
        if h.DIRECT:
            self.skipTest("needs the proxy")
        url = "postgres://%s@127.0.0.1:%d/%s" % (h.TRUST_USER, self.cluster.port, h.DBNAME)
        p = h.Proxy(self.cluster, upstream=url).start()
        self.addCleanup(p.kill)
        r = self.psql("-c", "select 'via_url'", dsn=p.dsn())
        self.assertEqual(r.stdout.strip(), "via_url")
        self.assertEqual(p.stop().returncode, 0)

    def test_upstream_defaults_to_database_url(self):
        if h.DIRECT:
            self.skipTest("needs the proxy")
        env = dict(os.environ, DATABASE_URL="postgres://%s@127.0.0.1:%d/%s"
                   % (h.TRUST_USER, self.cluster.port, h.DBNAME))
        p = h.Proxy(self.cluster, omit_upstream=True, env=env).start()
        self.addCleanup(p.kill)
        r = self.psql("-c", "select 'via_database_url'", dsn=p.dsn())
        self.assertEqual(r.stdout.strip(), "via_database_url")
        self.assertEqual(p.stop().returncode, 0)


class BigMessageTest(h.ProxyTestCase):

    def test_big_bind_parameter_passes(self):
        value = "b" * 5000000
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            row = conn.execute("select length(%s), md5(%s) = md5(repeat('b', 5000000))",
                               (value, value)).fetchone()
        self.assertEqual(row, (5000000, True))
        events = self.stop_proxy()
        self.assertEqual([(e["protocol"], e["rows"]) for e in events], [("extended", 1)])

    def test_big_query_text_passes(self):
        sql = "select length('%s') as big_query" % ("q" * 5000000)
        c = self.raw_client(timeout=30)
        msgs = c.simple(sql)
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["5000000"])
        events = self.stop_proxy()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["rows"], 1)
        self.assertTrue(sql.startswith(events[0]["sql"]))

    def test_single_huge_datarow_passes(self):
        c = self.raw_client(timeout=60)
        c.send(pgraw.query("select repeat('h', 64000000) as huge_row"))
        counts, sizes, others = c.read_slowly(chunk=1 << 20, pause=0)
        self.assertEqual(counts.get(b"D"), 1)
        self.assertEqual(sizes[b"D"], 1 + 4 + 2 + 4 + 64000000)
        events = self.stop_proxy()
        self.assertEqual([(e["rows"], e["bytes"]) for e in events], [(1, sizes[b"D"])])


class VanishingPeerTest(h.ProxyTestCase):

    def assert_proxy_serves(self, marker):
        self.assertTrue(self.proxy.alive(), "proxy died:\n" + self.proxy.stderr_text()[-3000:])
        r = self.psql("-c", "select '%s'" % marker)
        self.assertEqual(r.stdout.strip(), marker)

    def test_client_killed_during_query(self):
        p = subprocess.Popen([h.pgbin("psql"), "-X", "-d", self.proxy.dsn(),
                              "-c", "select pg_sleep(5), 'killed_client'"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=h.client_env())
        time.sleep(0.7)
        p.kill()
        p.wait()
        self.assert_proxy_serves("after_killed_client")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "after_killed_client")), 1, events)
        # The statement cut off by the client's death is still logged, once.
        self.assertEqual(len(self.events_with_sql(events, "'killed_client'")), 1, events)

    def test_client_closes_during_big_result(self):
        c = pgraw.RawConn(self.proxy.port)
        c.startup(h.TRUST_USER, h.DBNAME)
        c.send(pgraw.query(BIG_RESULT))
        c.sock.recv(65536)
        # Reset rather than a clean FIN, with data still unread on both sides.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.assert_proxy_serves("after_client_closed")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "after_client_closed")), 1, events)

    def test_backend_terminated_mid_result(self):
        c = pgraw.RawConn(self.proxy.port, timeout=30)
        self.addCleanup(c.close)
        c.startup(h.TRUST_USER, h.DBNAME)
        c.send(pgraw.query(BIG_RESULT))
        got = len(c.sock.recv(65536))
        self.assertGreater(got, 0)
        # backend_pid came through the proxy in BackendKeyData.
        out = self.cluster.admin_sql("select pg_terminate_backend(%d)" % c.backend_pid)
        self.assertEqual(out.strip(), "t")
        # Drain what is left: the buffered rows, maybe a FATAL 57P01, then the close.
        deadline = time.monotonic() + 30
        tail = b""
        while time.monotonic() < deadline:
            try:
                data = c.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            tail = (tail + data)[-4096:]
        else:
            self.fail("connection still open 30 s after its backend was terminated")
        self.assert_proxy_serves("after_backend_died")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "after_backend_died")), 1, events)
        # The interrupted statement is logged once. (A backend killed while blocked in
        # send() drops its FATAL message rather than break the stream mid-message, so
        # there may be no SQLSTATE to report.)
        mine = self.events_with_sql(events, "as big from")
        self.assertEqual(len(mine), 1, mine)
        self.assertIsNone(mine[0]["command"], mine)


class ShutdownTest(h.ProxyTestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the proxy")
        super().setUp()

    def idle_client(self, proxy):
        c = pgraw.RawConn(proxy.port)
        c.startup(h.TRUST_USER, h.DBNAME)
        self.addCleanup(c.close)
        return c

    def assert_stops_accepting(self, proxy, within=3.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not h.port_accepts(proxy.port):
                return
            time.sleep(0.05)
        self.fail("proxy still accepts connections %ss after SIGTERM" % within)

    def test_sigterm_waits_for_open_connection_then_exits_0(self):
        p = h.Proxy(self.cluster, grace=30).start()
        self.addCleanup(p.kill)
        c = self.idle_client(p)
        p.send_signal(signal.SIGTERM)
        self.assert_stops_accepting(p)
        self.assertIsNone(p.wait(0.3), "exited with a connection still open")
        # The open connection is still served while draining.
        msgs = c.simple("select 'while_draining'")
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["while_draining"])
        t0 = time.monotonic()
        c.send(pgraw.terminate())
        c.close()
        rc = p.wait(10)
        self.assertEqual(rc, 0, p.stderr_text()[-3000:])
        self.assertLess(time.monotonic() - t0, 5, "exit should follow the last disconnect")
        res = p.stop()
        self.assertEqual([e["sql"] for e in res.events], ["select 'while_draining'"])

    def test_sigterm_exits_0_after_grace_with_idle_client(self):
        p = h.Proxy(self.cluster, grace=1).start()
        self.addCleanup(p.kill)
        c = self.idle_client(p)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, p.stderr_text()[-3000:])
        self.assertGreaterEqual(elapsed, 0.8, "did not wait for the grace period")
        self.assertLess(elapsed, 8)
        # The client learns its connection is gone (a timeout here raises).
        c.read_all_until_close(timeout=5)

    def test_sigint_with_no_connections_exits_0_promptly(self):
        p = h.Proxy(self.cluster, grace=30).start()
        self.addCleanup(p.kill)
        self.psql("-c", "select 'before_sigint'", dsn=p.dsn())
        t0 = time.monotonic()
        res = p.stop(signal.SIGINT)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual([e["sql"] for e in res.events], ["select 'before_sigint'"])


    def test_sigterm_lets_running_query_finish(self):
        p = h.Proxy(self.cluster, grace=30).start()
        self.addCleanup(p.kill)
        c = self.idle_client(p)
        c.send(pgraw.query("select pg_sleep(1), 'in_flight'"))
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        msgs = c.read_until()
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["", "in_flight"])
        c.send(pgraw.terminate())
        c.close()
        self.assertEqual(p.wait(10), 0, p.stderr_text()[-3000:])
        res = p.stop()
        self.assertEqual([(e["rows"], e["command"]) for e in res.events], [(1, "SELECT")])

if __name__ == "__main__":
    h.main()
