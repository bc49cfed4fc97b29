"""Operating the proxy: the Prometheus endpoint, the config file and environment, SIGHUP
reloads, SIGUSR1 flushes, the idle timeout, and the report store a running proxy writes.
"""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

import psycopg

import pgharness as h


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("metric %s not in:\n%s" % (name, text))


def pgtally(*args, env=None):
    return subprocess.run([os.environ["PGTALLY_BIN"], *args], capture_output=True, text=True,
                          timeout=30, env=env)


class MetricsTest(h.ProxyTestCase):
    def setUp(self):
        self.metrics_port = h.free_port()
        self.proxy_kwargs = {"extra_args": ["--metrics", "127.0.0.1:%d" % self.metrics_port]}
        super().setUp()

    def test_metrics_count_statements_requests_and_findings(self):
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            for i in range(6):
                conn.execute("/*request_id='m1'*/ select %d" % i)
        self.proxy.send_signal(signal.SIGUSR1)  # finishes open requests
        deadline = time.monotonic() + 10
        while True:
            status, ctype, text = scrape(self.metrics_port)
            if metric(text, "pgtally_requests_total") >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        self.assertEqual(metric(text, "pgtally_statements_total"), 6)
        self.assertEqual(metric(text, "pgtally_requests_total"), 1)
        self.assertEqual(metric(text, 'pgtally_findings_total{kind="n_plus_one"}'), 1)
        self.assertEqual(metric(text, "pgtally_statement_duration_seconds_count"), 6)
        self.assertGreaterEqual(metric(text, "pgtally_client_connections_accepted_total"), 1)
        self.assertEqual(metric(text, 'pgtally_dropped_records_total{what="request"}'), 0)
        self.stop_proxy()


class PortZeroTest(h.ProxyTestCase):
    """Port 0 on --listen, --metrics and --serve takes a free port and the start-up log tells
    which: many sidecars (or test runs) on one host then need no port bookkeeping, and no port
    picked beforehand can be taken by someone else before the proxy binds it."""

    def test_port_0_binds_free_ports_and_the_log_names_them(self):
        if h.DIRECT:
            self.skipTest("PGTALLY_DIRECT=1: no proxy")
        stderr_path = os.path.join(self.cluster.tmpdir, "port0.stderr")
        db_path = os.path.join(self.cluster.tmpdir, "port0.db")
        cmd = [os.environ["PGTALLY_BIN"], "proxy", "--listen", "127.0.0.1:0",
               "--metrics", "127.0.0.1:0", "--serve", "127.0.0.1:0",
               "--upstream", "127.0.0.1:%d" % self.cluster.port, "--db", db_path]
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            ports = {}
            patterns = {"listen": r"listening on 127\.0\.0\.1:0 \(port (\d+)\)",
                        "metrics": r"metrics at http://127\.0\.0\.1:0/metrics \(port (\d+)\)",
                        "serve": r"serving the report at http://127\.0\.0\.1:0/ \(port (\d+)\)"}
            deadline = time.monotonic() + 15
            while len(ports) < 3 and time.monotonic() < deadline and proc.poll() is None:
                with open(stderr_path, errors="replace") as f:
                    text = f.read()
                for name, pattern in patterns.items():
                    m = re.search(pattern, text)
                    if m:
                        ports[name] = int(m.group(1))
                time.sleep(0.01)
            with open(stderr_path, errors="replace") as f:
                text = f.read()
            self.assertEqual(sorted(ports), ["listen", "metrics", "serve"], text)
            self.assertEqual(len(set(ports.values())), 3, ports)
            for name, port in ports.items():
                self.assertNotEqual(port, 0, name)
                self.assertTrue(h.listens(proc.pid, port), (name, port, text))
            out = self.psql("-At", "-c", "/*request_id='p0'*/ select 40 + 2",
                            dsn=h.dsn(ports["listen"]))
            self.assertEqual(out.stdout.strip(), "42")
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while True:
                _, _, metrics_text = scrape(ports["metrics"])
                if (metric(metrics_text, "pgtally_statements_total") >= 1
                        or time.monotonic() > deadline):
                    break
                time.sleep(0.1)
            self.assertEqual(metric(metrics_text, "pgtally_statements_total"), 1)
            with urllib.request.urlopen("http://127.0.0.1:%d/" % ports["serve"],
                                        timeout=5) as r:
                self.assertEqual(r.status, 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class ConfigurationTest(h.ProxyTestCase):
    def test_config_file_error_names_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("[proxy]\nlisten = 127.0.0.1:1\ngrace = soon\n")
        r = pgtally("proxy", "--config", f.name, "--upstream", "127.0.0.1:1")
        os.unlink(f.name)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("%s:3: grace" % f.name, r.stderr)

    def test_unknown_setting_is_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("[proxy]\nupstream = 127.0.0.1:1\nlisten_port = 5\n")
        r = pgtally("proxy", "--config", f.name)
        os.unlink(f.name)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3: unknown setting \"listen_port\"", r.stderr)

    def test_environment_value_is_checked(self):
        env = dict(os.environ, PGTALLY_MAX_CLIENT_CONN="lots")
        r = pgtally("proxy", "--upstream", "127.0.0.1:1", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("PGTALLY_MAX_CLIENT_CONN", r.stderr)

    def test_help_lists_every_option_within_100_columns(self):
        r = pgtally("proxy", "--help")
        self.assertEqual(r.returncode, 0)
        for option in ("--config", "--listen", "--upstream", "--db", "--metrics", "--tls-cert",
                       "--idle-timeout", "--request-gap", "--log-level"):
            self.assertIn(option, r.stdout)
        self.assertTrue(all(len(line) <= 100 for line in r.stdout.splitlines()))

    def test_io_value_is_checked(self):
        r = pgtally("proxy", "--upstream", "127.0.0.1:1", "--io", "fast")
        self.assertEqual(r.returncode, 2)
        self.assertIn("io: expected auto, uring or epoll", r.stderr)

    def test_each_io_path_relays_the_same_bytes_and_says_which_it_is(self):
        if h.DIRECT:
            self.skipTest("PGTALLY_DIRECT=1: no proxy")
        # Both --io paths must be equally transparent: the same answers (a big one too, many
        # ring buffers long) and the same statements tracked, and the start line names the
        # path. The whole suite runs on each path in CI (PGTALLY_IO); this pins the option.
        sql = ("SELECT repeat('x', 100000) || g FROM generate_series(1, 40) g; "
               "SELECT 1/0;")
        want = self.psql("-c", sql, dsn=self.cluster.dsn(), check=False)
        disabled = "0"
        if os.path.exists("/proc/sys/kernel/io_uring_disabled"):
            with open("/proc/sys/kernel/io_uring_disabled") as f:
                disabled = f.read().strip()
        tracked = {}
        for io in ("epoll", "uring"):
            if io == "uring" and disabled != "0":
                continue
            with self.subTest(io=io):
                proxy = h.Proxy(self.cluster, extra_args=["--io", io]).start()
                got = self.psql("-c", sql, dsn=proxy.dsn(), check=False)
                result = proxy.stop()
                self.assertEqual((got.returncode, got.stdout, got.stderr),
                                 (want.returncode, want.stdout, want.stderr))
                self.assertIn("io=%s" % io, result.stderr)
                tracked[io] = sorted((e["sql"] or "", e.get("rows"), e.get("bytes"),
                                      e.get("sqlstate")) for e in result.events)
                self.assertTrue(self.events_with_sql(result.events, "1/0"))
        if len(tracked) == 2:
            self.assertEqual(tracked["uring"], tracked["epoll"])

    def test_config_file_settings_are_used_and_sighup_reloads_them(self):
        conf = os.path.join(self.cluster.tmpdir, "reload.conf")
        with open(conf, "w") as f:
            f.write("[proxy]\nlog-level = info\n")
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--config", conf]).start()
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("select 1")
        with open(conf, "w") as f:
            f.write("[proxy]\nlog-level = debug\n")
        self.proxy.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("select 2")
        self.close_clients()
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration reloaded", result.stderr)
        self.assertIn("level=debug", result.stderr)  # only after the reload


    def test_run_settings_hold_thresholds_and_each_sighup_change(self):
        conf = os.path.join(self.cluster.tmpdir, "thresholds.conf")
        with open(conf, "w") as f:
            f.write("[proxy]\nn-plus-one-calls = 7\noverfetch-rows = 1000\n")
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--config", conf]).start()
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("select 1")
        with open(conf, "w") as f:
            f.write("[proxy]\nn-plus-one-calls = 3\noverfetch-rows = 1000\nduplicate-min = 4\n")
        self.proxy.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.close_clients()
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        con = sqlite3.connect(self.proxy.db_path)
        settings = json.loads(con.execute("select settings from runs").fetchone()[0])
        con.close()
        # every threshold in force at the end ...
        self.assertEqual(settings["n_plus_one_calls"], 3)
        self.assertEqual(settings["duplicate_min"], 4)
        self.assertEqual(settings["overfetch_rows"], 1000)
        for key in ("n_plus_one_distinct", "overfetch_bytes", "request_overfetch_rows",
                    "request_overfetch_bytes", "request_gap_s"):
            self.assertIn(key, settings)
        # ... and the change, with its time
        changes = settings["settings_changes"]
        self.assertEqual(len(changes), 1, changes)
        self.assertGreater(changes[0]["at_us"], 1_600_000_000_000_000)
        self.assertEqual(changes[0]["changed"]["n-plus-one-calls"], {"from": 7, "to": 3})
        self.assertEqual(changes[0]["changed"]["duplicate-min"]["to"], 4)
        self.assertNotIn("overfetch-rows", changes[0]["changed"])


class RowsReturnedTest(h.ProxyTestCase):
    def test_rows_written_are_not_overfetch(self):
        """An INSERT ... SELECT of 2,500 rows returns none: no overfetch, and no rows for
        max_rows; a SELECT of 2,500 rows is an overfetch."""
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("create temp table archive (n int)")
            conn.execute("/*request_id='w1',route='%2Fexport'*/ insert into archive "
                         "select generate_series(1, 2500)")
            conn.execute("/*request_id='r1',route='%2Fexport'*/ select n from archive")
        self.close_clients()
        result = self.proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        con = sqlite3.connect(self.proxy.db_path)
        rows = dict(con.execute("select key, rows from requests where route = '/export'"))
        kinds = dict(con.execute("select q.key, group_concat(f.kind) from requests q"
                                 " left join findings f on f.request_id = q.id"
                                 " where q.route = '/export' group by q.key"))
        con.close()
        self.assertEqual(rows, {"request_id:w1": 0, "request_id:r1": 2500})
        self.assertIsNone(kinds["request_id:w1"])
        self.assertEqual(kinds["request_id:r1"], "overfetch")


class CheckWhileRunningTest(h.ProxyTestCase):
    def test_check_judges_a_running_proxy_after_sigusr1(self):
        budget = os.path.join(self.cluster.tmpdir, "budget.ini")
        with open(budget, "w") as f:
            f.write("[defaults]\nmax_queries = 50\nmax_n_plus_one = 0\n")

        def check():
            return pgtally("check", "--db", self.proxy.db_path, "--budget", budget)

        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("/*request_id='c1',route='%2Fa'*/ select 1")
            self.assertEqual(check().returncode, 1)  # nothing flushed yet: incomplete
            self.proxy.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            r = check()
            while r.returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.2)
                r = check()
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # a request finished after the snapshot makes it stale until the next SIGUSR1
            conn.execute("/*request_id='c2',route='%2Fa'*/ select 2")
            self.proxy.send_signal(signal.SIGUSR1)
            time.sleep(1)
            conn.execute("/*request_id='c3',route='%2Fa'*/ select 3")
            # past --request-gap (1 s) the idle sweep finishes c3 and the writer stores it
            deadline = time.monotonic() + 15
            r = check()
            while r.returncode != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
                r = check()
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("SIGUSR1", r.stdout + r.stderr)
        self.stop_proxy()


class RepeatedWritesTest(h.ProxyTestCase):
    def test_n_plus_one_on_updates_is_reported_as_writes(self):
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("create temp table w (id int primary key, n int)")
            conn.execute("insert into w select g, 0 from generate_series(1, 6) g")
            for i in range(1, 7):
                conn.execute("/*request_id='w1',route='%2Fbulk'*/ update w set n = n + 1 "
                             "where id = " + str(i))
        self.stop_proxy()
        text = pgtally("report", "--db", self.proxy.db_path)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("N+1 write", text.stdout)
        report = json.loads(pgtally("report", "--db", self.proxy.db_path, "--format",
                                    "json").stdout)
        writes = [f for f in report["top_findings"] if f["kind"] == "n_plus_one"]
        self.assertEqual(len(writes), 1, report["top_findings"])
        self.assertTrue(writes[0]["is_write"])
        self.assertEqual(writes[0]["count"], 6)


class PrivacyAndThresholdsTest(h.ProxyTestCase):
    """What is stored by default (no literal values), --samples, finding thresholds, limits."""

    def run_n_plus_one(self, dsn, rid):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(5):
                conn.execute("/*request_id='%s'*/ select 'secret-%d' as s" % (rid, i))

    def stored(self, proxy, sql):
        db = sqlite3.connect("file:%s?mode=ro" % proxy.db_path, uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def test_no_literal_values_are_stored_by_default(self):
        self.run_n_plus_one(self.proxy.dsn(), "p1")
        self.stop_proxy()
        rows = self.stored(self.proxy, "select normalized, sample from fingerprints")
        self.assertTrue(rows)
        for normalized, sample in rows:
            self.assertIsNone(sample)
            self.assertNotIn("secret", normalized)
        with open(self.proxy.db_path, "rb") as f:
            self.assertNotIn(b"secret-", f.read())

    def test_samples_option_keeps_one_example_per_fingerprint(self):
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--samples"]).start()
        self.run_n_plus_one(self.proxy.dsn(), "p2")
        self.stop_proxy()
        rows = self.stored(self.proxy, "select sample from fingerprints "
                                       "where normalized = 'select $1 as s'")
        self.assertEqual(len(rows), 1)
        self.assertIn("secret-0", rows[0][0])

    def test_n_plus_one_threshold_is_configurable(self):
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--n-plus-one-calls", "6"]).start()
        self.run_n_plus_one(self.proxy.dsn(), "p3")  # 5 calls: below the threshold now
        self.stop_proxy()
        kinds = self.stored(self.proxy, "select kind from findings")
        self.assertNotIn(("n_plus_one",), kinds)

    def test_default_threshold_finds_the_same_n_plus_one(self):
        self.run_n_plus_one(self.proxy.dsn(), "p4")
        self.stop_proxy()
        self.assertIn(("n_plus_one",), self.stored(self.proxy, "select kind from findings"))

    def test_clients_beyond_max_client_conn_get_53300(self):
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--max-client-conn", "1"]).start()
        # The harness's readiness probe is a connection too, until the proxy has seen it close:
        # take the one slot as soon as it is free.
        first = None
        deadline = time.monotonic() + 10
        while first is None:
            try:
                first = psycopg.connect(self.proxy.dsn(), autocommit=True)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            with self.assertRaises(psycopg.OperationalError) as cm:
                psycopg.connect(self.proxy.dsn(), autocommit=True)
            self.assertIn("too many clients", str(cm.exception))
            self.assertEqual(first.execute("select 7").fetchone()[0], 7)
        finally:
            first.close()
        self.stop_proxy()

    def test_long_sql_is_cut_at_max_sql_bytes_and_flagged(self):
        self.stop_proxy()
        self.proxy = h.Proxy(self.cluster, extra_args=["--max-sql-bytes", "64"]).start()
        long_sql = "select " + ", ".join("%d as c%d" % (i, i) for i in range(40))
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute(long_sql)
        events = [e for e in self.stop_proxy() if (e["sql"] or "").startswith("select 0 as c0")]
        self.assertEqual(len(events), 1, events)
        self.assertTrue(events[0]["sql_truncated"])
        self.assertTrue(events[0]["incomplete"])
        self.assertEqual(len(events[0]["sql"].encode()), 64)


class FlushAndIdleTest(h.ProxyTestCase):
    proxy_kwargs = {"extra_args": ["--idle-timeout", "1"]}

    def test_sigusr1_makes_requests_readable_while_running(self):
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            for i in range(3):
                conn.execute("/*request_id='live'*/ select %d" % i)
            self.proxy.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            rows = []
            while time.monotonic() < deadline and not rows:
                time.sleep(0.2)
                db = sqlite3.connect("file:%s?mode=ro" % self.proxy.db_path, uri=True)
                rows = db.execute("select key, statements from requests").fetchall()
                db.close()
            self.assertEqual(rows, [("request_id:live", 3)])
        self.stop_proxy()

    def test_idle_client_is_closed_with_an_error(self):
        conn = psycopg.connect(self.proxy.dsn(), autocommit=True)
        conn.execute("select 1")
        time.sleep(2.5)
        with self.assertRaises(psycopg.OperationalError) as cm:
            conn.execute("select 2")
        self.assertIn("idle", str(cm.exception))
        conn.close()
        self.stop_proxy()

    def test_long_statement_is_not_idleness(self):
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.execute("select pg_sleep(2)")
            self.assertEqual(conn.execute("select 3").fetchone()[0], 3)
        self.stop_proxy()


if __name__ == "__main__":
    h.main()
