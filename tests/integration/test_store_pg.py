"""The PostgreSQL report store, written by the real proxy (`--db postgres://...`).

Two clusters: the app's (the module cluster, which the proxy fronts) and the store's (a second
pgharness cluster with TLS on), so the store can be stopped and restarted under traffic
without touching the relay. Counts in the store are checked against --log-queries, which the
proxy writes whatever happens to the store. Faults: the store down at start, restarted mid-run,
a wrong password, a role without CREATE, verify-full TLS, a store behind the proxy's own
--listen, the store on the very server the proxy fronts, and 20 sidecars creating the schema
at once.
"""

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pgharness as h

STORE = None  # Cluster: the report store (ssl=on, certificate for 127.0.0.1)
PKI = None
# a role that may log in (pg_hba) but owns nothing: no CREATE on the store's databases
NOCREATE_USER, NOCREATE_PASSWORD = h.MD5_USER, h.MD5_PASSWORD


def openssl(wd, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=wd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))


def make_pki():
    """A CA and a server certificate for 127.0.0.1 / localhost (verify-full)."""
    wd = tempfile.mkdtemp(prefix="pgtally-store-tls-")
    h._cleanups.append(lambda: shutil.rmtree(wd, ignore_errors=True))
    openssl(wd, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=pgtally store test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(wd, "server.ext"), "w") as f:
        f.write("basicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    openssl(wd, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl(wd, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    if os.geteuid() == 0:
        shutil.chown(wd, "postgres", "postgres")
        for f in os.listdir(wd):
            shutil.chown(os.path.join(wd, f), "postgres", "postgres")
    for f in os.listdir(wd):
        if f.endswith(".key"):
            os.chmod(os.path.join(wd, f), 0o600)
    return {n: os.path.join(wd, n) for n in ("ca.crt", "server.crt", "server.key")}


def setUpModule():
    global STORE, PKI
    PKI = make_pki()
    STORE = h.Cluster(settings={"ssl": "on", "ssl_cert_file": PKI["server.crt"],
                                "ssl_key_file": PKI["server.key"]})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(STORE.start), pool.submit(h.module_cluster)]:
            f.result()


def tearDownModule():
    if STORE is not None:
        STORE.destroy()
    h.stop_module_cluster()


def new_store_db(owner=h.TRUST_USER):
    """A fresh database on the store cluster; returns its name."""
    name = "store_%d" % time.monotonic_ns()
    STORE.admin_sql("CREATE DATABASE %s OWNER %s" % (name, owner))
    return name


def store_url(db, user=h.TRUST_USER, password=None, **params):
    auth = user + (":" + password if password else "")
    q = "&".join("%s=%s" % kv for kv in params.items())
    return "postgres://%s@127.0.0.1:%d/%s%s" % (auth, STORE.port, db, ("?" + q) if q else "")


def store_sql(db, sql):
    return STORE.admin_sql(sql, dbname=db)


def pg_ctl(cluster, *args):
    subprocess.run(h._as_postgres([h.pgbin("pg_ctl"), "-D", cluster.datadir, "-l",
                                   cluster.logfile, "-w", "-t", "60"] + list(args)),
                   check=True, capture_output=True)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out, text


class StoreTestCase(h.ProxyTestCase):
    """Each test starts its own proxy with start_proxy(): the store URL differs per test."""

    def setUp(self):
        self.cluster = h.module_cluster()
        self.proxy = None
        self._clients = []
        self._t0 = time.monotonic()

    def tearDown(self):
        if self.proxy is not None:
            super().tearDown()

    def start_proxy(self, db_url, env=None, metrics=True, extra=()):
        self.metrics_port = h.free_port() if metrics else None
        args = ["--db", db_url] + list(extra)
        if metrics:
            args += ["--metrics", "127.0.0.1:%d" % self.metrics_port]
        self.proxy = h.Proxy(self.cluster, extra_args=args, env=env).start()
        return self.proxy

    def finish(self):
        """Stops the proxy (SIGTERM) and returns its ProxyResult (exit code, events, stderr)."""
        self.close_clients()
        return self.proxy.stop()

    def traffic(self, tag, requests=5, per_request=4):
        for i in range(requests):
            sql = "".join("/*request_id='%s-%d',route='%%2F%s'*/ select %d;\n" % (tag, i, tag, k)
                          for k in range(per_request))
            self.psql("-q", "-c", sql)

    def wait_stderr(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.proxy.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.1)

    def wait_metric(self, name, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            m, _ = scrape(self.metrics_port)
            if pred(m.get(name)) or time.monotonic() > deadline:
                return m.get(name)
            time.sleep(0.1)

    def stored(self, db):
        """(runs, statements incl. setup, requests, complete of the latest run)."""
        out = store_sql(db, "SELECT count(*) FROM pgtally.runs;"
                            "SELECT coalesce(sum(statements + setup_statements), 0), count(*)"
                            " FROM pgtally.requests;"
                            "SELECT complete FROM pgtally.runs ORDER BY id DESC LIMIT 1").split()
        return int(out[0]), int(out[1].split("|")[0]), int(out[1].split("|")[1]), int(out[2])


class WritesTest(StoreTestCase):
    def test_counts_in_the_store_equal_the_query_log(self):
        db = new_store_db()
        self.start_proxy(store_url(db), extra=["--run-label", "ci-42"])
        self.traffic("w", requests=6, per_request=5)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        runs, statements, requests, complete = self.stored(db)
        self.assertEqual(runs, 1)
        self.assertEqual(statements, len(result.events))
        self.assertEqual(requests, 6)
        self.assertEqual(complete, 1)
        row = store_sql(db, "SELECT label, length(uuid), ended_us IS NOT NULL, statements"
                            " FROM pgtally.runs").strip()
        self.assertEqual(row, "ci-42|32|t|%d" % len(result.events))
        # children carry request ids that exist, fingerprints have their text
        orphans = store_sql(db, "SELECT count(*) FROM pgtally.statements s WHERE NOT EXISTS"
                                " (SELECT 1 FROM pgtally.requests r WHERE r.id = s.request_id)")
        self.assertEqual(orphans.strip(), "0")
        fp = store_sql(db, "SELECT normalized FROM pgtally.fingerprints").split()
        self.assertIn("select", " ".join(fp))
        self.assertEqual(store_sql(db, "SELECT version FROM pgtally.schema_migrations").strip(),
                         "1")

    def test_db_schema_option_keeps_tables_in_that_schema(self):
        db = new_store_db()
        self.start_proxy(store_url(db), extra=["--db-schema", "Tally_2"])
        self.traffic("s", requests=2)
        self.assertEqual(self.finish().returncode, 0)
        self.assertEqual(store_sql(db, 'SELECT count(*) FROM "Tally_2".requests').strip(), "2")
        self.assertEqual(store_sql(db, "SELECT count(*) FROM pg_namespace"
                                       " WHERE nspname = 'pgtally'").strip(), "0")


    def test_sighup_changes_reach_the_runs_settings(self):
        db = new_store_db()
        conf = os.path.join(self.cluster.tmpdir, "store-thresholds-%d.conf" % time.monotonic_ns())
        with open(conf, "w") as f:
            f.write("[proxy]\nn-plus-one-calls = 7\n")
        self.start_proxy(store_url(db), extra=["--config", conf])
        self.traffic("s", requests=1)
        with open(conf, "w") as f:
            f.write("[proxy]\nn-plus-one-calls = 3\n")
        self.proxy.send_signal(signal.SIGHUP)
        # written by the running proxy's store writer (with its next heartbeat)
        deadline = time.monotonic() + 20
        settings = {}
        while time.monotonic() < deadline:
            try:  # the writer creates the schema when it first connects,
                # and the run's row after that: both can still be missing here
                text = store_sql(db, "SELECT settings FROM pgtally.runs").strip()
                settings = json.loads(text) if text else {}
            except RuntimeError:
                settings = {}
            if settings.get("settings_changes"):
                break
            time.sleep(0.2)
        self.assertEqual(settings["n_plus_one_calls"], 3, settings)
        change = settings["settings_changes"][0]
        self.assertEqual(change["changed"], {"n-plus-one-calls": {"from": 7, "to": 3}})
        self.assertEqual(self.finish().returncode, 0)


class FaultsTest(StoreTestCase):
    def test_store_down_at_start_relays_logs_once_then_catches_up(self):
        db = new_store_db()
        pg_ctl(STORE, "stop", "-m", "fast")
        try:
            self.start_proxy(store_url(db))
            self.traffic("d", requests=4)  # the relay works without its store
            self.assertEqual(self.wait_metric("pgtally_store_up", lambda v: v == 0), 0)
            time.sleep(1.5)  # several retries: still one line
            lines = [l for l in self.proxy.stderr_text().splitlines() if "unavailable" in l]
            self.assertEqual(len(lines), 1, self.proxy.stderr_text())
            self.assertIn("127.0.0.1:%d" % STORE.port, lines[0])
        finally:
            pg_ctl(STORE, "start")
        self.assertEqual(self.wait_metric("pgtally_store_up", lambda v: v == 1), 1)
        self.wait_stderr("connected again")  # logged by the loop's next health check
        self.traffic("e", requests=3)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("connected again", result.stderr)
        runs, statements, requests, complete = self.stored(db)
        self.assertEqual((runs, statements, requests, complete), (1, len(result.events), 7, 1))

    def test_store_restart_during_traffic_loses_nothing(self):
        db = new_store_db()
        self.start_proxy(store_url(db))
        stop = threading.Event()
        errors = []

        def load():
            n = 0
            while not stop.is_set():
                try:
                    self.traffic("r%d" % n, requests=1, per_request=6)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
                    return
                n += 1

        t = threading.Thread(target=load)
        t.start()
        try:
            time.sleep(1.5)
            pg_ctl(STORE, "restart", "-m", "fast")
            time.sleep(1.5)
        finally:
            stop.set()
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(self.wait_metric("pgtally_store_reconnects_total", lambda v: v and v >= 1),
                         1)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        runs, statements, requests, complete = self.stored(db)
        self.assertEqual(statements, len(result.events), result.stderr)
        self.assertEqual(complete, 1, result.stderr)
        self.assertGreater(requests, 3)

    def test_wrong_password_names_the_store_never_the_password(self):
        db = new_store_db(owner=h.MD5_USER)
        secret = "Sup3r-S3cret-pw"
        self.start_proxy(store_url(db, user=h.MD5_USER, password=secret, sslmode="disable"))
        self.traffic("p", requests=1)
        self.assertEqual(self.wait_metric("pgtally_store_up", lambda v: v == 0), 0)
        _, metrics_text = scrape(self.metrics_port)
        result = self.finish()
        self.assertIn("password authentication failed", result.stderr)
        self.assertIn("127.0.0.1:%d/%s" % (STORE.port, db), result.stderr)
        self.assertNotIn(secret, result.stderr)
        self.assertNotIn(secret, metrics_text)
        with open(self.proxy.log_path) as f:
            self.assertNotIn(secret, f.read())

    def test_pgpassword_is_used_and_settings_hold_no_password(self):
        db = new_store_db(owner=h.MD5_USER)
        env = dict(os.environ, PGPASSWORD=h.MD5_PASSWORD)
        self.start_proxy(store_url(db, user=h.MD5_USER, sslmode="disable"), env=env)
        self.traffic("g", requests=2)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.stored(db)[2], 2)
        settings = store_sql(db, "SELECT settings FROM pgtally.runs")
        self.assertNotIn(h.MD5_PASSWORD, settings)

    def test_role_without_create_gets_a_clear_error(self):
        db = new_store_db()
        self.start_proxy(store_url(db, user=NOCREATE_USER, password=NOCREATE_PASSWORD))
        self.traffic("n", requests=1)
        self.wait_stderr("unavailable")
        result = self.finish()
        self.assertIn("permission denied", result.stderr)
        self.assertIn("CREATE privilege", result.stderr)
        self.assertNotIn(NOCREATE_PASSWORD, result.stderr)
        # an owner creates the schema and grants it: the same role then writes
        self.start_proxy(store_url(db))
        self.assertEqual(self.finish().returncode, 0)
        store_sql(db, "GRANT USAGE ON SCHEMA pgtally TO %s;"
                      "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA pgtally TO %s;"
                      "GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgtally TO %s"
                      % ((NOCREATE_USER,) * 3))
        self.start_proxy(store_url(db, user=NOCREATE_USER, password=NOCREATE_PASSWORD))
        self.traffic("m", requests=2)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(store_sql(db, "SELECT count(*) FROM pgtally.requests").strip(), "2")

    def test_tls_verify_full(self):
        db = new_store_db()
        self.start_proxy(store_url(db, sslmode="verify-full", sslrootcert=PKI["ca.crt"]))
        self.traffic("t", requests=2)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.stored(db)[2], 2)
        used = store_sql(db, "SELECT count(*) FROM pg_stat_ssl")  # the server saw TLS
        self.assertTrue(used)
        # and a wrong name is refused: localhost.invalid is not in the certificate
        self.start_proxy(store_url(db, sslmode="verify-full", sslrootcert=PKI["ca.crt"],
                                   hostaddr="127.0.0.1").replace("127.0.0.1:", "wrong.invalid:", 1))
        self.wait_stderr("unavailable")
        result = self.finish()
        self.assertIn("certificate", result.stderr)


class UsageErrorTest(StoreTestCase):
    """A store that can never work is a usage error (exit 2) before anything starts, with a
    message naming the option and never the password."""

    def proxy_exit(self, *extra):
        return subprocess.run([os.environ["PGTALLY_BIN"], "proxy",
                               "--listen", "127.0.0.1:%d" % h.free_port(),
                               "--upstream", "127.0.0.1:%d" % self.cluster.port] + list(extra),
                              capture_output=True, text=True, timeout=30)

    def test_invalid_db_schema_exits_2(self):
        r = self.proxy_exit("--db", "postgres://u:pw@127.0.0.1:%d/app" % self.cluster.port,
                            "--db-schema", "2bad;drop")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--db-schema", r.stderr)
        self.assertNotIn("pw@", r.stderr)

    def test_malformed_connection_string_exits_2(self):
        r = self.proxy_exit("--db", "host=127.0.0.1 password=s3cret nosuchoption=1")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a valid PostgreSQL connection string", r.stderr)
        self.assertNotIn("s3cret", r.stderr)


class LoopbackTest(StoreTestCase):
    def test_store_at_the_proxys_own_listen_address_is_refused(self):
        port = h.free_port()
        r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--listen", "127.0.0.1:%d" % port,
                            "--upstream", "127.0.0.1:%d" % self.cluster.port,
                            "--db", "postgres://u:pw@localhost:%d/app" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("directly", r.stderr)
        self.assertNotIn(":pw@", r.stderr)

    def test_store_on_the_server_the_proxy_fronts_is_not_tallied(self):
        # the Heroku case: the app's own database holds the store, in its own schema
        url = "postgres://%s@127.0.0.1:%d/%s" % (h.TRUST_USER, self.cluster.port, h.DBNAME)
        self.start_proxy(url, extra=["--db-schema", "tally_self"])
        self.traffic("h", requests=3)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        for ev in result.events:
            self.assertNotIn("tally_self", ev.get("sql") or "")
        out = self.cluster.admin_sql(
            "SELECT count(*), coalesce(sum(r.statements + r.setup_statements), 0)"
            " FROM tally_self.requests r JOIN tally_self.runs u ON u.id = r.run_id"
            " WHERE u.id = (SELECT max(id) FROM tally_self.runs)", dbname=h.DBNAME).strip()
        self.assertEqual(out, "3|%d" % len(result.events))


class ConcurrentStartTest(h.unittest.TestCase):
    def test_twenty_sidecars_create_the_schema_at_once(self):
        cluster = h.module_cluster()
        db = new_store_db()
        url = store_url(db)
        procs = []
        tmp = tempfile.mkdtemp(prefix="pgtally-20-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ports = set()
        while len(ports) < 20:  # distinct: two proxies must not race for one port
            ports.add(h.free_port())
        for i, port in enumerate(sorted(ports)):
            err = open(os.path.join(tmp, "%d.err" % i), "wb")
            self.addCleanup(err.close)
            procs.append(subprocess.Popen(
                [os.environ["PGTALLY_BIN"], "proxy", "--listen", "127.0.0.1:%d" % port,
                 "--upstream", "127.0.0.1:%d" % cluster.port, "--db", url,
                 "--instance", "dyno.%d" % i], stdout=err, stderr=err))
        for p in procs:
            self.addCleanup(p.kill)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if store_sql(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgtally'"
                         ).strip() == "1" and store_sql(
                             db, "SELECT count(*) FROM pgtally.runs").strip() == "20":
                break
            time.sleep(0.2)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(60) for p in procs]
        logs = ""
        for i in range(20):
            with open(os.path.join(tmp, "%d.err" % i), errors="replace") as f:
                logs += f.read()
        self.assertEqual(codes, [0] * 20, logs)
        self.assertNotIn("unavailable", logs)
        self.assertEqual(store_sql(db, "SELECT count(*), count(DISTINCT uuid), sum(complete)"
                                       " FROM pgtally.runs").strip(), "20|20|20")
        self.assertEqual(store_sql(db, "SELECT count(*) FROM pgtally.schema_migrations").strip(),
                         "1")


class InvalidUtf8Test(StoreTestCase):
    """A client's bytes that are not UTF-8 (a Latin-1 literal, a route tag URL-decoded to a
    Latin-1 byte) reach the PostgreSQL store as U+FFFD: the batch holding them, and everyone
    else's records in it, is written, never dropped."""

    def test_latin1_bytes_are_replaced_and_nothing_is_dropped(self):
        import pgraw
        db = new_store_db()
        self.start_proxy(store_url(db), extra=["--samples"])
        c = self.raw_client()
        sql = b"/*request_id='latin1',route='%2Fcaf%E9'*/ select 'caf\xe9' as x"
        c.send(pgraw.msg(b"Q", sql + b"\0"))
        msgs = c.read_until()
        # the server (UTF-8) refuses the literal; the statement is recorded all the same
        self.assertIsNotNone(pgraw.first_error(msgs))
        self.traffic("plain", requests=3)
        result = self.finish()
        self.assertEqual(result.returncode, 0, result.stderr)
        runs, statements, requests, complete = self.stored(db)
        self.assertEqual(requests, 4, result.stderr)
        self.assertEqual(statements, len(result.events))
        dropped = store_sql(db, "SELECT dropped_requests + dropped_statements"
                                " + dropped_fingerprints FROM pgtally.runs").strip()
        self.assertEqual(dropped, "0")
        route = store_sql(db, "SELECT route FROM pgtally.requests"
                              " WHERE key = 'request_id:latin1'").strip()
        self.assertEqual(route, "/caf\ufffd")
        sample = store_sql(db, "SELECT sample FROM pgtally.fingerprints"
                               " WHERE sample LIKE '%latin1%'").strip()
        self.assertIn("select 'caf\ufffd' as x", sample)


if __name__ == "__main__":
    h.main()
