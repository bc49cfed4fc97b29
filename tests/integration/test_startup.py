"""Connection startup: SSLRequest/GSSENCRequest answered 'N', injection after SSLRequest refused,
startup packet size limit (10000 bytes) enforced with an ErrorResponse.
"""

import socket
import struct

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


def padded_startup(total_len):
    """A startup packet of exactly total_len bytes, padded through application_name (a
    parameter the server accepts at any length: it truncates it to 63 bytes)."""
    base = pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME,
                                 "application_name": ""})
    pad = total_len - len(base)
    assert pad >= 0
    return pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME,
                                 "application_name": "a" * pad})


class StartupTest(h.ProxyTestCase):

    def test_sslmode_prefer_falls_back_to_plaintext(self):
        r = self.psql("-c", "select 'ssl_prefer_ok'", dsn=self.proxy.dsn(sslmode="prefer"))
        self.assertEqual(r.stdout.strip(), "ssl_prefer_ok")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "ssl_prefer_ok")), 1, events)

    def test_sslmode_require_is_refused_by_the_n_answer(self):
        r = self.psql("-c", "select 1", dsn=self.proxy.dsn(sslmode="require"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("server does not support SSL", r.stderr)
        self.assertTrue(self.proxy.alive())

    def test_sslrequest_answered_n_then_startup_works(self):
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.ssl_request())
            self.assertEqual(c.read_byte(), b"N")
            msgs = c.startup(h.TRUST_USER, h.DBNAME)
            self.assertEqual(msgs[-1][0], b"Z")
            msgs = c.simple("select 'after_ssl_n'")
            self.assertEqual(pgraw.types_of(msgs), b"TDCZ")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "after_ssl_n")), 1, events)

    def test_gssencrequest_answered_n_then_startup_works(self):
        if h.DIRECT:
            self.skipTest("Postgres built with GSSAPI answers 'G'")
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.gssenc_request())
            self.assertEqual(c.read_byte(), b"N")
            c.startup(h.TRUST_USER, h.DBNAME)
            self.assertEqual(pgraw.types_of(c.simple("select 'after_gss_n'")), b"TDCZ")

    def test_gssencrequest_then_sslrequest_both_answered_n(self):
        if h.DIRECT:
            self.skipTest("Postgres built with GSSAPI answers 'G'")
        # libpq with gssencmode=prefer and sslmode=prefer sends both on one socket.
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.gssenc_request())
            self.assertEqual(c.read_byte(), b"N")
            c.send(pgraw.ssl_request())
            self.assertEqual(c.read_byte(), b"N")
            c.startup(h.TRUST_USER, h.DBNAME)
            self.assertEqual(pgraw.types_of(c.simple("select 1")), b"TDCZ")

    def test_sslrequest_with_trailing_bytes_is_refused(self):
        if h.DIRECT:
            self.skipTest("proxy contract: Postgres without TLS accepts this")
        with pgraw.RawConn(self.proxy.port) as c:
            # Bytes sent before the answer to SSLRequest arrived would, with TLS, be
            # plaintext injected ahead of the handshake: the proxy must not forward them.
            c.send(pgraw.ssl_request() + pgraw.startup_packet(
                {"user": h.TRUST_USER, "database": h.DBNAME}))
            try:
                first = c.read_byte()
            except pgraw.ConnectionClosed:
                first = b""
            msgs = []
            if first == b"N":
                msgs = c.read_all_until_close()
            elif first == b"E":
                c.buf = first + c.buf
                msgs = c.read_all_until_close()
            else:
                self.assertEqual(first, b"", "unexpected first byte")
        types = pgraw.types_of(msgs)
        for t in (b"R", b"S", b"K", b"Z"):
            self.assertNotIn(t, types, "the injected startup packet reached the server: %r"
                             % msgs)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_startup_packet_of_10000_bytes_is_accepted(self):
        pkt = padded_startup(10000)
        self.assertEqual(struct.unpack("!I", pkt[:4])[0], 10000)
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pkt)
            c.finish_startup()
            self.assertEqual(pgraw.types_of(c.simple("select 'big_startup_ok'")), b"TDCZ")
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "big_startup_ok")), 1, events)

    def test_startup_packet_over_10000_bytes_gets_error_response(self):
        if h.DIRECT:
            self.skipTest("Postgres closes silently on an oversized startup packet")
        pkt = padded_startup(10001)
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pkt)
            msgs = c.read_all_until_close()
        self.assertTrue(msgs, "connection closed without an ErrorResponse")
        self.assertEqual(msgs[0][0], b"E", msgs)
        self.assertEqual(pgraw.types_of(msgs), b"E")
        self.assertTrue(self.proxy.alive())

    def test_startup_packet_with_huge_length_gets_error_response(self):
        if h.DIRECT:
            self.skipTest("Postgres closes silently on an oversized startup packet")
        with pgraw.RawConn(self.proxy.port) as c:
            # Only the header arrives: the refusal must come from the length alone.
            c.send(struct.pack("!II", 0x7FFFFFF0, pgraw.PROTOCOL_3_0))
            msgs = c.read_all_until_close()
        self.assertEqual(pgraw.types_of(msgs), b"E", msgs)
        self.assertTrue(self.proxy.alive())

    def test_startup_params_reach_the_server(self):
        with pgraw.RawConn(self.proxy.port) as c:
            c.startup(h.TRUST_USER, h.DBNAME, application_name="startup_app",
                      options="-c search_path=startup_schema")
            self.assertEqual(c.params.get("application_name"), "startup_app")
            msgs = c.simple("select current_setting('search_path')")
            vals = [pgraw.datarow_values(b) for t, b in msgs if t == b"D"]
            self.assertEqual(vals, [["startup_schema"]])

    def test_client_closing_before_startup_leaves_proxy_running(self):
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.proxy.port))
            s.send(b"\x00\x00")  # half a length word, then gone
            s.close()
        with pgraw.RawConn(self.proxy.port) as c:
            c.startup(h.TRUST_USER, h.DBNAME)
            self.assertEqual(pgraw.types_of(c.simple("select 1")), b"TDCZ")
        self.assertTrue(self.proxy.alive())


    def test_protocol_3_2_startup_gets_negotiation_and_works(self):
        # A PG18-era client asks for 3.2 and an unknown _pq_ option; PG15 answers with
        # NegotiateProtocolVersion and carries on in 3.0. The proxy must pass it all through.
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME,
                                         "_pq_.it_option": "1"}, version=196610))
            msgs = c.finish_startup()
            self.assertEqual(msgs[0][0], b"v", msgs)
            self.assertEqual(struct.unpack_from("!I", msgs[0][1])[0], 196608)
            self.assertEqual(msgs[-1][0], b"Z")
            self.assertEqual(pgraw.types_of(c.simple("select 'proto_32'")), b"TDCZ")
            c.send(pgraw.terminate())
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "proto_32")), 1, events)

if __name__ == "__main__":
    h.main()
