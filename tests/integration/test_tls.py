"""TLS on both legs (docs/tls.md) against a real PostgreSQL with ssl=on.

The module makes its own PKI with the openssl CLI in a temp dir: a CA, a server certificate for
localhost (SAN DNS:localhost, IP:127.0.0.1), a certificate from the same CA whose names do not
match (wrong.example), and a second, unrelated CA. Three clusters: ssl=on with the good
certificate, ssl=off, and ssl=on with the wrong-name certificate. Every upstream sslmode is
checked through pg_stat_ssl as seen through the proxy; the failures must reach the client as
08006 with the reason; SCRAM and md5 run over a TLS upstream; the proxy terminates client TLS
(--tls-cert/--tls-key) with SCRAM-SHA-256-PLUS removed when the legs differ; and statements
over TLS are still logged and stored.
"""

import concurrent.futures
import gc
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile

import psycopg

import pgharness as h
import pgraw

SSL_QUERY = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"

PKI = None          # {name: path}
SSL_ON = None       # Cluster, ssl=on, certificate for localhost / 127.0.0.1
SSL_OFF = None      # Cluster, ssl=off
WRONG_NAME = None   # Cluster, ssl=on, certificate for wrong.example (same CA)


def openssl(wd, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=wd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))


def make_ca(wd, name, cn):
    openssl(wd, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
            "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(wd, name, ca, cn, san):
    with open(os.path.join(wd, name + ".ext"), "w") as f:
        f.write("basicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = %s\n" % san)
    openssl(wd, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    openssl(wd, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")


def make_pki():
    wd = tempfile.mkdtemp(prefix="pgtally-tls-")
    h._cleanups.append(lambda: shutil.rmtree(wd, ignore_errors=True))
    make_ca(wd, "ca", "pgtally test CA")
    make_ca(wd, "other_ca", "unrelated test CA")
    make_leaf(wd, "server", "ca", "localhost", "DNS:localhost, IP:127.0.0.1")
    make_leaf(wd, "wrong", "ca", "wrong.example", "DNS:wrong.example")
    # the proxy's own certificate: same names and CA, but not the server's (SCRAM channel
    # binding hashes the certificate the client sees; sharing the server's would hide that)
    make_leaf(wd, "proxy", "ca", "localhost", "DNS:localhost, IP:127.0.0.1")
    if os.geteuid() == 0:
        # Postgres runs as postgres and insists on owning its key (mode 0600).
        shutil.chown(wd, "postgres", "postgres")
        for f in os.listdir(wd):
            shutil.chown(os.path.join(wd, f), "postgres", "postgres")
    for f in os.listdir(wd):
        if f.endswith(".key"):
            os.chmod(os.path.join(wd, f), 0o600)
    return {n: os.path.join(wd, n) for n in ("ca.crt", "other_ca.crt", "server.crt",
                                             "server.key", "wrong.crt", "wrong.key",
                                             "proxy.crt", "proxy.key")}


def ssl_settings(cert, key):
    return {"ssl": "on", "ssl_cert_file": PKI[cert], "ssl_key_file": PKI[key]}


def setUpModule():
    global PKI, SSL_ON, SSL_OFF, WRONG_NAME
    PKI = make_pki()
    clusters = [h.Cluster(settings=ssl_settings("server.crt", "server.key")), h.Cluster(),
                h.Cluster(settings=ssl_settings("wrong.crt", "wrong.key"))]
    # initdb and start in parallel: about half the module's time otherwise
    with concurrent.futures.ThreadPoolExecutor(len(clusters)) as pool:
        for f in [pool.submit(c.start) for c in clusters]:
            f.result()
    SSL_ON, SSL_OFF, WRONG_NAME = clusters


def tearDownModule():
    for c in (SSL_ON, SSL_OFF, WRONG_NAME):
        if c is not None:
            c.destroy()


def upstream_url(cluster, host="127.0.0.1", **params):
    """postgres://HOST:PORT/?k=v&... (libpq URL conventions)."""
    q = "&".join("%s=%s" % kv for kv in params.items())
    return "postgres://%s:%d/%s" % (host, cluster.port, ("?" + q) if q else "")


class TlsTestCase(h.ProxyTestCase):
    """No proxy by default: each test starts the one it needs with start_proxy()."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("TLS between the legs is the proxy's behaviour")
        self.cluster = SSL_ON
        self.proxy = None
        self._clients = []
        self._t0 = __import__("time").monotonic()

    def tearDown(self):
        if self.proxy is not None:
            super().tearDown()

    def start_proxy(self, cluster=None, upstream=None, env=None, client_tls=False, **params):
        """A proxy in front of cluster; params go into the upstream URL's query string."""
        cluster = cluster or SSL_ON
        if upstream is None:
            upstream = upstream_url(cluster, **params)
        args = ["--connect-timeout", "5"]
        if client_tls:
            args += ["--tls-cert", PKI["proxy.crt"], "--tls-key", PKI["proxy.key"]]
        # The environment must hold no PGSSL* the test did not ask for.
        penv = dict(h.client_env(), **(env or {}))
        penv.pop("PGCONNECT_TIMEOUT", None)
        self.proxy = h.Proxy(cluster, upstream=upstream, extra_args=args, env=penv).start()
        return self.proxy

    def ssl_via_proxy(self, **dsn_kw):
        """pg_stat_ssl.ssl of the backend serving a psql session through the proxy."""
        return self.psql("-c", SSL_QUERY, dsn=self.proxy.dsn(**dsn_kw)).stdout.strip()

    def assert_upstream_error(self, *needles):
        """A raw startup through the proxy gets ErrorResponse 08006 naming the failure, then
        the close; psql shows the same message to its user."""
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.startup_packet({"user": h.TRUST_USER, "database": h.DBNAME}))
            msgs = c.read_all_until_close(timeout=15)
        err = pgraw.first_error(msgs)
        self.assertIsNotNone(err, "no ErrorResponse: %r" % msgs)
        self.assertEqual(err["C"], "08006", err)
        for n in needles:
            self.assertIn(n, err["M"], err)
        r = self.psql("-c", "select 1", check=False)
        self.assertNotEqual(r.returncode, 0)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertTrue(self.proxy.alive(), self.proxy.stderr_text()[-3000:])
        self.assertEqual(self.stop_proxy(), [])
        return err


class UpstreamSslModeTest(TlsTestCase):
    """Each sslmode against the ssl=on server, seen through pg_stat_ssl."""

    def check_mode(self, mode, expected, **extra):
        self.start_proxy(sslmode=mode, **extra)
        self.assertEqual(self.ssl_via_proxy(), expected)
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], [SSL_QUERY])
        self.assertEqual(events[0]["rows"], 1)

    def test_disable_is_plaintext(self):
        self.check_mode("disable", "f")

    def test_allow_is_plaintext(self):
        # docs/tls.md: allow connects in plaintext (no TLS retry) when the server takes it
        self.check_mode("allow", "f")

    def test_prefer_uses_tls(self):
        self.check_mode("prefer", "t")

    def test_default_is_prefer(self):
        self.start_proxy()
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_require_uses_tls(self):
        self.check_mode("require", "t")

    def test_require_does_not_check_the_certificate(self):
        # the wrong CA would fail verify-ca; require does not look
        self.check_mode("require", "t", sslrootcert=PKI["other_ca.crt"])

    def test_verify_ca_uses_tls(self):
        self.check_mode("verify-ca", "t", sslrootcert=PKI["ca.crt"])

    def test_verify_full_with_matching_ip_san(self):
        self.check_mode("verify-full", "t", sslrootcert=PKI["ca.crt"])

    def test_verify_full_with_matching_dns_san(self):
        self.start_proxy(upstream=upstream_url(SSL_ON, host="localhost", sslmode="verify-full",
                                               sslrootcert=PKI["ca.crt"]))
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_pgsslmode_environment(self):
        self.start_proxy(upstream="127.0.0.1:%d" % SSL_ON.port,
                         env={"PGSSLMODE": "verify-full", "PGSSLROOTCERT": PKI["ca.crt"]})
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_url_wins_over_environment(self):
        self.start_proxy(sslmode="disable", env={"PGSSLMODE": "require"})
        self.assertEqual(self.ssl_via_proxy(), "f")
        self.assertEqual(len(self.stop_proxy()), 1)


class UpstreamFailureTest(TlsTestCase):

    def test_require_against_ssl_off_server_gets_08006(self):
        self.start_proxy(cluster=SSL_OFF, sslmode="require")
        self.assert_upstream_error("server does not support SSL, but sslmode=require requires it")

    def test_verify_full_against_ssl_off_server_gets_08006(self):
        self.start_proxy(cluster=SSL_OFF, sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        self.assert_upstream_error(
            "server does not support SSL, but sslmode=verify-full requires it")

    def test_prefer_against_ssl_off_server_is_plaintext(self):
        self.start_proxy(cluster=SSL_OFF, sslmode="prefer")
        self.assertEqual(self.ssl_via_proxy(), "f")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_verify_ca_with_wrong_ca_gets_08006(self):
        self.start_proxy(sslmode="verify-ca", sslrootcert=PKI["other_ca.crt"])
        self.assert_upstream_error("SSL error", "certificate verify failed")

    def test_verify_full_with_wrong_ca_gets_08006(self):
        self.start_proxy(sslmode="verify-full", sslrootcert=PKI["other_ca.crt"])
        self.assert_upstream_error("SSL error", "certificate verify failed")

    def test_verify_full_with_name_mismatch_gets_08006(self):
        self.start_proxy(cluster=WRONG_NAME, sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        err = self.assert_upstream_error("SSL error")
        # say which check failed, as libpq does ("does not match host name")
        self.assertRegex(err["M"], r"(?i)host ?name|mismatch|does not match", err)

    def test_verify_ca_accepts_name_mismatch(self):
        # verify-ca checks the chain only: the wrong.example certificate is from our CA
        self.start_proxy(cluster=WRONG_NAME, sslmode="verify-ca", sslrootcert=PKI["ca.crt"])
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_proxy_serves_after_tls_failures(self):
        self.start_proxy(sslmode="verify-ca", sslrootcert=PKI["other_ca.crt"])
        for _ in range(3):
            r = self.psql("-c", "select 1", check=False)
            self.assertIn("certificate verify failed", r.stderr)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])


class PasswordAuthOverTlsUpstreamTest(TlsTestCase):
    """md5 and SCRAM pass through untouched with TLS upstream and plaintext clients: the legs
    differ, so SCRAM-SHA-256-PLUS is removed and libpq's default channel_binding=prefer works."""

    def login(self, user, password, marker):
        self.start_proxy(sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        r = self.psql("-c", "select current_user, ssl, '%s' from pg_stat_ssl "
                      "where pid = pg_backend_pid()" % marker,
                      dsn=self.proxy.dsn(user=user), env=h.client_env(PGPASSWORD=password))
        self.assertEqual(r.stdout.strip(), "%s|t|%s" % (user, marker))
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, marker)), 1, events)

    def test_scram_over_tls_upstream(self):
        self.login(h.SCRAM_USER, h.SCRAM_PASSWORD, "scram_tls_up")

    def test_md5_over_tls_upstream(self):
        self.login(h.MD5_USER, h.MD5_PASSWORD, "md5_tls_up")

    def test_scram_wrong_password_over_tls_upstream(self):
        self.start_proxy(sslmode="require")
        r = self.psql("-c", "select 1", dsn=self.proxy.dsn(user=h.SCRAM_USER), check=False,
                      env=h.client_env(PGPASSWORD="wrong"))
        self.assertIn('password authentication failed for user "%s"' % h.SCRAM_USER, r.stderr)
        self.assertEqual(self.stop_proxy(), [])


class ClientTlsTerminationTest(TlsTestCase):
    """The proxy terminates client TLS with its own certificate for localhost / 127.0.0.1."""

    def client_dsn(self, **kw):
        kw.setdefault("sslmode", "verify-full")
        kw.setdefault("sslrootcert", PKI["ca.crt"])
        return self.proxy.dsn(**kw)

    def test_psql_verify_full_to_tls_server_scram_channel_binding_disable(self):
        self.start_proxy(client_tls=True, sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        r = self.psql("-c", "select current_user, ssl, 'psql_tls_both' from pg_stat_ssl "
                      "where pid = pg_backend_pid()",
                      dsn=self.client_dsn(user=h.SCRAM_USER, channel_binding="disable"),
                      env=h.client_env(PGPASSWORD=h.SCRAM_PASSWORD))
        self.assertEqual(r.stdout.strip(), "%s|t|psql_tls_both" % h.SCRAM_USER)
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "psql_tls_both")), 1, events)

    def test_psycopg_verify_full_to_tls_server(self):
        self.start_proxy(client_tls=True, sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        with psycopg.connect(self.client_dsn(user=h.SCRAM_USER, password=h.SCRAM_PASSWORD,
                                             channel_binding="disable"),
                             autocommit=True) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            row = conn.execute(SSL_QUERY.replace("select ssl", "select ssl, 'psycopg_tls'")
                               ).fetchone()
        self.assertEqual(row, (True, "psycopg_tls"))
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "psycopg_tls")), 1, events)

    def test_md5_tls_both_legs(self):
        self.start_proxy(client_tls=True, sslmode="require")
        r = self.psql("-c", "select current_user, 'md5_tls_both'",
                      dsn=self.client_dsn(user=h.MD5_USER),
                      env=h.client_env(PGPASSWORD=h.MD5_PASSWORD))
        self.assertEqual(r.stdout.strip(), "%s|md5_tls_both" % h.MD5_USER)
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_both_legs_tls_default_channel_binding_fails_as_documented(self):
        # docs/tls.md: the server offers SCRAM-SHA-256-PLUS, libpq binds to the proxy's
        # certificate, the server refuses. Pinned so a change of behaviour gets noticed.
        self.start_proxy(client_tls=True, sslmode="require")
        r = self.psql("-c", "select 1", dsn=self.client_dsn(user=h.SCRAM_USER), check=False,
                      env=h.client_env(PGPASSWORD=h.SCRAM_PASSWORD))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("channel binding", r.stderr)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_scram_to_plaintext_server_plus_removed(self):
        # TLS to the proxy, plaintext upstream: PLUS is removed, so the default
        # channel_binding=prefer falls back to plain SCRAM-SHA-256 and works.
        self.start_proxy(cluster=SSL_OFF, client_tls=True, sslmode="disable")
        with psycopg.connect(self.client_dsn(user=h.SCRAM_USER, password=h.SCRAM_PASSWORD),
                             autocommit=True) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            row = conn.execute("select current_user, ssl, 'scram_plus_removed' "
                               "from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        self.assertEqual(row, (h.SCRAM_USER, False, "scram_plus_removed"))
        r = self.psql("-c", "select 'scram_plus_removed_psql'",
                      dsn=self.client_dsn(user=h.SCRAM_USER),
                      env=h.client_env(PGPASSWORD=h.SCRAM_PASSWORD))
        self.assertEqual(r.stdout.strip(), "scram_plus_removed_psql")
        self.assertEqual(len(self.stop_proxy()), 2)

    def test_scram_plaintext_client_to_tls_server_plus_removed(self):
        # the reverse difference: plaintext to the proxy, TLS upstream; libpq with
        # channel_binding=prefer over plaintext never picks PLUS anyway, so look at the
        # AuthenticationSASL message itself.
        self.start_proxy(sslmode="require")
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.startup_packet({"user": h.SCRAM_USER, "database": h.DBNAME}))
            t, body = c.read_msg()
        self.assertEqual(t, b"R")
        self.assertEqual(body[:4], b"\0\0\0\x0a", "expected AuthenticationSASL: %r" % body)
        mechs = [m for m in body[4:].split(b"\0") if m]
        self.assertEqual(mechs, [b"SCRAM-SHA-256"])
        self.assertEqual(self.stop_proxy(), [])

    def test_plus_offered_when_both_legs_tls(self):
        # Same TLS on both legs: the list is passed through unchanged.
        self.start_proxy(client_tls=True, sslmode="require")
        ctx = ssl.create_default_context(cafile=PKI["ca.crt"])
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(pgraw.ssl_request())
            self.assertEqual(s.recv(1), b"S")
            with ctx.wrap_socket(s, server_hostname="localhost") as ts:
                ts.sendall(pgraw.startup_packet({"user": h.SCRAM_USER, "database": h.DBNAME}))
                data = b""
                while len(data) < 5 or len(data) < 1 + int.from_bytes(data[1:5], "big"):
                    chunk = ts.recv(4096)
                    self.assertTrue(chunk, "closed before AuthenticationSASL")
                    data += chunk
        self.assertEqual(data[:1], b"R")
        mechs = set(m for m in data[9:1 + int.from_bytes(data[1:5], "big")].split(b"\0") if m)
        self.assertEqual(mechs, {b"SCRAM-SHA-256", b"SCRAM-SHA-256-PLUS"})
        self.assertEqual(self.stop_proxy(), [])

    def test_channel_binding_require_fails_with_clear_error(self):
        self.start_proxy(cluster=SSL_OFF, client_tls=True, sslmode="disable")
        r = self.psql("-c", "select 1",
                      dsn=self.client_dsn(user=h.SCRAM_USER, channel_binding="require"),
                      check=False, env=h.client_env(PGPASSWORD=h.SCRAM_PASSWORD))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("channel binding is required, but server did not offer an "
                      "authentication method that supports channel binding", r.stderr)
        # (not assertRaises: the exception it keeps holds libpq's failed PGconn, whose
        # socket stays open until it is freed, and the proxy would wait for it at SIGTERM)
        msg = None
        try:
            psycopg.connect(self.client_dsn(user=h.SCRAM_USER, password=h.SCRAM_PASSWORD,
                                            channel_binding="require")).close()
        except psycopg.OperationalError as e:
            msg = str(e)
        gc.collect()
        self.assertIn("channel binding is required", msg or "connected")
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_client_verify_full_rejects_wrong_ca(self):
        # the proxy's certificate is checked by the client like a server's
        self.start_proxy(client_tls=True, sslmode="require")
        r = self.psql("-c", "select 1", dsn=self.client_dsn(sslrootcert=PKI["other_ca.crt"]),
                      check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("certificate verify failed", r.stderr)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_plaintext_client_still_served(self):
        # --tls-cert offers TLS; a client that does not ask is served in plaintext
        self.start_proxy(client_tls=True, sslmode="require")
        self.assertEqual(self.ssl_via_proxy(sslmode="disable"), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_plaintext_after_sslrequest_is_refused(self):
        # CVE-2021-23214: a startup packet sent in plaintext right behind the SSLRequest,
        # before the 'S', must never reach the server (nor be taken as the TLS handshake).
        # Refused as PostgreSQL itself does: no 'S', FATAL 08P01, close.
        self.start_proxy(client_tls=True, sslmode="require")
        with pgraw.RawConn(self.proxy.port) as c:
            c.send(pgraw.ssl_request() + pgraw.startup_packet(
                {"user": h.TRUST_USER, "database": h.DBNAME}))
            msgs = c.read_all_until_close(timeout=10)
        self.assertEqual(pgraw.types_of(msgs), b"E", "expected one ErrorResponse: %r" % msgs)
        err = pgraw.first_error(msgs)
        self.assertEqual(err["C"], "08P01", err)
        self.assertIn("unencrypted data after SSL request", err["M"])
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])


class LoggingOverTlsTest(TlsTestCase):

    def test_statements_over_tls_are_logged_and_stored(self):
        self.start_proxy(client_tls=True, sslmode="verify-full", sslrootcert=PKI["ca.crt"])
        n = 7
        with psycopg.connect(self.client_dsn(), autocommit=True) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            for i in range(n):
                conn.execute("select %s::int as tls_ext_marker", (i,))
        r = self.psql("-c", "select 'tls_logged_simple'; select 2 as tls_logged_simple",
                      dsn=self.client_dsn())
        self.assertEqual(r.stdout.split(), ["tls_logged_simple", "2"])
        events = self.stop_proxy()
        ext = self.events_with_sql(events, "tls_ext_marker")
        self.assertEqual(len(ext), n, events)
        self.assertEqual({(e["protocol"], e["rows"], e["command"]) for e in ext},
                         {("extended", 1, "SELECT")})
        simple = self.events_with_sql(events, "tls_logged_simple")
        self.assertEqual([e["index"] for e in simple], [0, 1])
        db = sqlite3.connect(self.proxy.db_path)
        try:
            stored = db.execute("select count(*) from statements").fetchone()[0]
            reqs = db.execute("select sum(statements + setup_statements) from requests"
                              ).fetchone()[0]
            complete = db.execute("select complete from runs").fetchall()
        finally:
            db.close()
        self.assertEqual(stored, len(events))
        self.assertEqual(reqs, len(events))
        self.assertEqual(complete, [(1,)])

    def client_dsn(self, **kw):
        return self.proxy.dsn(sslmode="verify-full", sslrootcert=PKI["ca.crt"], **kw)


def mapped_libraries(pid):
    """The file names of the shared libraries a process maps."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[-1]) for line in f
                if len(line.split()) >= 6 and ".so" in line.split()[-1]}


class OpenSslOnDemandTest(TlsTestCase):
    """OpenSSL is loaded only when TLS is used: a sidecar whose upstream declines TLS under
    sslmode=prefer (the default) and which terminates no client TLS never maps libssl or
    libcrypto (megabytes of its RSS); the first upstream that accepts TLS loads them."""

    def libssl_mapped(self):
        libs = mapped_libraries(self.proxy.pid)
        return any(n.startswith(("libssl.", "libcrypto.")) for n in libs)

    def test_prefer_against_ssl_off_server_never_loads_openssl(self):
        self.start_proxy(cluster=SSL_OFF, sslmode="prefer")
        self.assertEqual(self.ssl_via_proxy(), "f")
        self.assertFalse(self.libssl_mapped(), sorted(mapped_libraries(self.proxy.pid)))
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_prefer_loads_openssl_when_the_server_accepts_tls(self):
        self.start_proxy(sslmode="prefer")
        self.assertFalse(self.libssl_mapped())
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertTrue(self.libssl_mapped())
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_require_loads_openssl_at_start(self):
        self.start_proxy(sslmode="require")
        self.assertTrue(self.libssl_mapped())
        self.assertEqual(self.ssl_via_proxy(), "t")
        self.assertEqual(len(self.stop_proxy()), 1)

    def test_missing_openssl_is_a_clear_error(self):
        # An empty file found first under the library's name stands for a broken or missing
        # libssl3.
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "libssl.so.3"), "w").close()
            env = dict(h.client_env(), LD_LIBRARY_PATH=d)
            r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--listen", "127.0.0.1:0",
                                "--no-db", "--upstream", upstream_url(SSL_ON, sslmode="require")],
                               env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot load libssl.so.3 (needed for TLS)", r.stderr)
        self.assertIn("install the libssl3 package", r.stderr)


if __name__ == "__main__":
    h.main()
