"""Many proxies, one picture: runs labelled with --run-label and --instance, read together
with `pgtally report/check --label`, report files of CI shards combined with `pgtally merge`,
the runs a report lists with `pgtally report --runs`, and a PostgreSQL report store that
several proxies write at once and `report`/`check` read like a file.
"""

import json
import os
import shutil
import signal
import sqlite3
import re
import subprocess
import threading
import time
import urllib.parse

import psycopg

import pgharness as h


STORE_DB = "fleetstore"


def setUpModule():
    c = h.module_cluster()
    c.admin_sql("CREATE DATABASE %s OWNER %s" % (STORE_DB, h.TRUST_USER))


def store_target(cluster):
    """The PostgreSQL report store: a database of the module's cluster, reached directly."""
    return h.dsn(cluster.port, dbname=STORE_DB)


def tearDownModule():
    h.stop_module_cluster()


def pgtally(*args):
    return subprocess.run([os.environ["PGTALLY_BIN"]] + list(args), capture_output=True,
                          text=True, timeout=120)


# The traffic: tagged requests on three routes, one with an N+1 and a duplicate. Every
# statement is deterministic, so two recordings of it have the same counts, rows and bytes.
def request_sql(i):
    route = ("/orders", "/users", "/health")[i % 3]
    tag = "/*request_id='r%d',route='%s'*/ " % (i, route.replace("/", "%2F"))
    if route == "/orders":
        return [tag + "select %d as o" % i] + [tag + "select %d as item" % (100 + k)
                                               for k in range(6)]
    if route == "/users":
        return [tag + "select 'u' as n", tag + "select 'u' as n"]
    return [tag + "select 1"]


def send(proxy, requests):
    with psycopg.connect(proxy.dsn(), autocommit=True) as conn:
        for i in requests:
            for q in request_sql(i):
                conn.execute(q)


def comparable(report):
    """The figures that must match between two recordings of the same traffic (times and ids
    differ by nature)."""
    routes = {r["route"]: {k: r[k] for k in ("requests", "queries", "queries_per_request",
                                             "duplicates", "n_plus_one",
                                             "requests_with_n_plus_one", "errors", "rows",
                                             "bytes")}
              for r in report["routes"]}
    s = report["summary"]
    summary = {k: s[k] for k in ("requests", "queries", "duplicates", "routes", "findings",
                                 "dropped", "complete")}
    findings = sorted((f["kind"], f["fingerprint"], f["requests"], f["count"], f["max_count"])
                      for f in report["top_findings"])
    return routes, summary, findings


class FleetBase(h.ProxyTestCase):
    """Each test starts its own proxies (the base class's one is stopped at once)."""

    def setUp(self):
        super().setUp()
        self.proxy.stop()
        self.dir = self.cluster.tmpdir

    def start(self, label, instance, db=None):
        args = ["--run-label", label, "--instance", instance]
        p = h.Proxy(self.cluster, extra_args=args)
        if db:
            p.db_path = db
        return p.start()

    def record(self, label, instance, requests, db=None):
        p = self.start(label, instance, db)
        send(p, requests)
        res = p.stop()
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        return p.db_path

    def report_json(self, *args):
        r = pgtally("report", "--format", "json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)



class FleetTest(FleetBase):
    def test_merge_of_shards_equals_one_run_over_all_traffic(self):
        whole = self.record("whole", "one", range(30))
        shard1 = self.record("ci-7", "shard1", range(0, 30, 2))
        shard2 = self.record("ci-7", "shard2", range(1, 30, 2))
        out = os.path.join(self.dir, "merged-%s.db" % self._testMethodName)
        r = pgtally("merge", "-o", out, shard1, shard2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("merged into %s: 2 runs added" % out, r.stdout)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
        merged = self.report_json("--db", out, "--label", "ci-7")
        one = self.report_json("--db", whole)
        self.assertEqual(comparable(merged), comparable(one))
        self.assertEqual(merged["summary"]["runs"], 2)
        self.assertEqual(merged["summary"]["instances"], 2)
        self.assertEqual(sorted(x["instance"] for x in merged["runs"]), ["shard1", "shard2"])
        self.assertEqual(merged["filter"]["label"], "ci-7")

        # Merging the same files again adds nothing and changes no figure.
        r = pgtally("merge", "-o", out, shard1, shard2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 runs added, 0 replaced, 2 already there", r.stdout)
        again = self.report_json("--db", out, "--label", "ci-7")
        self.assertEqual(comparable(again), comparable(merged))
        db = sqlite3.connect("file:%s?mode=ro" % out, uri=True)
        try:
            self.assertEqual(db.execute("select count(*) from runs").fetchone()[0], 2)
            uuids = {u for (u,) in db.execute("select uuid from runs")}
        finally:
            db.close()
        # Runs keep their identity from the shard files.
        for path in (shard1, shard2):
            src = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                self.assertIn(src.execute("select uuid from runs").fetchone()[0], uuids)
            finally:
                src.close()

    def test_merge_refuses_a_newer_schema_and_writes_nothing(self):
        shard = self.record("ci-8", "shard1", range(3))
        newer = os.path.join(self.dir, "newer.db")
        shutil.copy(shard, newer)
        db = sqlite3.connect(newer)
        db.execute("pragma user_version = 99")
        db.commit()
        db.close()
        out = os.path.join(self.dir, "out-newer.db")
        r = pgtally("merge", "-o", out, shard, newer)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(newer, r.stderr)
        self.assertIn("newer", r.stderr)
        self.assertFalse(os.path.exists(out))

    def test_report_label_combines_proxies_sharing_a_file(self):
        shared = os.path.join(self.dir, "shared.db")
        a = self.start("staging", "web.1", shared)
        b = self.start("staging", "web.2", shared)
        send(a, range(0, 12, 2))
        send(b, range(1, 12, 2))
        for p in (a, b):
            self.assertEqual(p.stop().returncode, 0)
        self.record("other", "web.1", range(5), shared)  # the latest run, another label
        rep = self.report_json("--db", shared, "--label", "staging")
        self.assertEqual(rep["summary"]["requests"], 12)
        self.assertEqual(rep["summary"]["runs"], 2)
        self.assertEqual(rep["summary"]["instances"], 2)
        self.assertTrue(rep["summary"]["complete"])
        self.assertEqual(self.report_json("--db", shared)["summary"]["requests"], 5)
        text = pgtally("report", "--db", shared, "--label", "staging")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn('label "staging": 2 runs on 2 instances, 2 complete', text.stdout)
        runs = pgtally("report", "--db", shared, "--runs", "--format", "json")
        self.assertEqual(runs.returncode, 0, runs.stderr)
        listed = json.loads(runs.stdout)["runs"]
        self.assertEqual([(x["label"], x["instance"], x["requests"]) for x in listed],
                         [("staging", "web.1", 6), ("staging", "web.2", 6), ("other", "web.1", 5)])
        self.assertTrue(all(x["complete"] and x["ended_us"] for x in listed))
        self.assertEqual(len({x["uuid"] for x in listed}), 3)
        r = pgtally("report", "--db", shared, "--label", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn('no runs labelled "nope"', r.stderr)

    def test_check_label_exits_1_when_any_run_is_incomplete(self):
        shared = os.path.join(self.dir, "check.db")
        budget = os.path.join(self.dir, "budget.ini")
        with open(budget, "w") as f:
            f.write("[defaults]\nmax_queries = 50\n")
        self.record("pr-1", "ci.1", range(6), shared)
        ok = pgtally("check", "--db", shared, "--label", "pr-1", "--budget", budget)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn('label "pr-1" (1 run on 1 instance)', ok.stdout)
        # A second shard whose proxy is killed: its run never ends.
        killed = self.start("pr-1", "ci.2", shared)
        send(killed, range(6, 9))
        killed.kill()
        junit = os.path.join(self.dir, "check.xml")
        r = pgtally("check", "--db", shared, "--label", "pr-1", "--budget", budget,
                    "--junit", junit)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("INCOMPLETE DATA", r.stdout)
        with open(junit) as f:
            xml = f.read()
        self.assertIn('label &quot;pr-1&quot; (2 runs on 2 instances)', xml)
        self.assertIn('<failure type="incomplete"', xml)
        self.assertIn("ci.2", r.stdout)
        self.assertIn("1 of 2 runs incomplete", r.stdout)
        # The complete run alone still passes.
        r = pgtally("check", "--db", shared, "--run", "1", "--budget", budget)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def strip_volatile(value, key=""):
    """A report without what two recordings of the same traffic cannot share: ids, row
    numbers, times and durations (and the file it came from)."""
    volatile = ("id", "uuid", "row", "file", "settings", "version", "instance", "completeness",
                "rank", "why")  # findings are ranked by DB time; "why" prints it
    if isinstance(value, dict):
        return {k: strip_volatile(v, k) for k, v in value.items()
                if k not in volatile and not k.endswith("_us") and "db_time" not in k
                and not (key == "requests" and k == "conn_id")}
    if isinstance(value, list):
        items = [strip_volatile(v, key) for v in value]
        # Orders that depend on timing (worst first, by time) are compared as sets.
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    return value


def per_route_from_log(events):
    """Statements and requests per route that a proxy's --log-queries file shows."""
    out = {}
    for e in events:
        m = re.search(r"request_id='([^']*)',route='([^']*)'", e["sql"] or "")
        if not m:
            continue
        route = urllib.parse.unquote(m.group(2))
        r = out.setdefault(route, {"queries": 0, "requests": set()})
        r["queries"] += 1
        r["requests"].add(m.group(1))
    return {k: {"queries": v["queries"], "requests": len(v["requests"])} for k, v in out.items()}


class PostgresStoreTest(FleetBase):
    def pg_proxy(self, label, instance, schema):
        args = ["--run-label", label, "--instance", instance, "--db", store_target(self.cluster),
                "--db-schema", schema]
        return h.Proxy(self.cluster, extra_args=args).start()

    def test_three_proxies_one_store_totals_equal_their_logs(self):
        schema = "three"
        proxies = [self.pg_proxy("staging-3", "web.%d" % i, schema) for i in range(3)]
        errors = []

        def traffic(k):
            try:
                # Interleaved: every proxy serves every route, with its own request ids.
                with psycopg.connect(proxies[k].dsn(), autocommit=True) as conn:
                    for i in range(40):
                        for q in request_sql(i):
                            conn.execute(q.replace("request_id='r", "request_id='p%d-" % k))
            except Exception as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=traffic, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        expected = {}
        for p in proxies:
            res = p.stop()
            self.assertEqual(res.returncode, 0, res.stderr[-2000:])
            for route, fig in per_route_from_log(res.events).items():
                e = expected.setdefault(route, {"queries": 0, "requests": 0})
                e["queries"] += fig["queries"]
                e["requests"] += fig["requests"]
        rep = self.report_json("--db", store_target(self.cluster), "--db-schema", schema,
                               "--label", "staging-3")
        got = {r["route"]: {"queries": r["queries"], "requests": r["requests"]}
               for r in rep["routes"]}
        self.assertEqual(got, expected)
        self.assertEqual(sum(v["requests"] for v in got.values()), 120)
        self.assertEqual(rep["summary"]["runs"], 3)
        self.assertEqual(rep["summary"]["instances"], 3)
        self.assertTrue(rep["summary"]["complete"], rep["runs"])
        # Nothing of the store's password or the file path: the store is named, redacted.
        self.assertIn(STORE_DB, rep["file"])
        check_budget = os.path.join(self.dir, "three.ini")
        with open(check_budget, "w") as f:
            f.write("[defaults]\nmax_queries = 50\n")
        r = pgtally("check", "--db", store_target(self.cluster), "--db-schema", schema,
                    "--label", "staging-3", "--budget", check_budget)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("3 runs on 3 instances", r.stdout)

    def test_same_traffic_sqlite_and_postgres_give_the_same_report(self):
        schema = "same"
        lite = self.record("same", "lite", range(24))
        pg = self.pg_proxy("same", "pg", schema)
        send(pg, range(24))
        self.assertEqual(pg.stop().returncode, 0)
        a = self.report_json("--db", lite, "--label", "same")
        # The local copy of the store's rows lives in $TMPDIR only while the report runs.
        tmp = os.path.join(self.dir, "report-tmp")
        os.mkdir(tmp)
        r = subprocess.run([os.environ["PGTALLY_BIN"], "report", "--format", "json", "--db",
                            store_target(self.cluster), "--db-schema", schema, "--label", "same"],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, TMPDIR=tmp))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(tmp), [])
        b = json.loads(r.stdout)
        self.assertEqual(strip_volatile(a), strip_volatile(b))
        self.assertEqual(a["summary"]["requests"], 24)
        # The drill-downs read the same rows.
        for args in (["--request", "r3"], ["--route", "/orders"]):
            x = self.report_json("--db", lite, "--label", "same", *args)
            y = self.report_json("--db", store_target(self.cluster), "--db-schema", schema,
                                 "--label", "same", *args)
            self.assertEqual(strip_volatile(x), strip_volatile(y))

    def test_merge_to_postgres_then_report_from_it(self):
        schema = "shipped"
        shard1 = self.record("dyno-release", "web.1", range(0, 20, 2))
        shard2 = self.record("dyno-release", "web.2", range(1, 20, 2))
        target = store_target(self.cluster)
        r = pgtally("merge", "--to", target, "--db-schema", schema, shard1, shard2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 runs added", r.stdout)
        local = os.path.join(self.dir, "shipped-local.db")
        self.assertEqual(pgtally("merge", "-o", local, shard1, shard2).returncode, 0)
        a = self.report_json("--db", local, "--label", "dyno-release")
        b = self.report_json("--db", target, "--db-schema", schema, "--label", "dyno-release")

        # The same rows: every figure equal, durations included; only ids and the file differ.
        def ids_out(v):
            if isinstance(v, dict):
                return {k: ids_out(x) for k, x in v.items()
                        if k not in ("id", "row", "file") or not isinstance(x, (int, str))}
            if isinstance(v, list):
                return [ids_out(x) for x in v]
            return v
        self.assertEqual(ids_out(a), ids_out(b))
        self.assertEqual(b["summary"]["requests"], 20)
        # Again: nothing added.
        r = pgtally("merge", "--to", target, "--db-schema", schema, shard1, shard2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 runs added, 0 replaced, 2 already there", r.stdout)
        b2 = self.report_json("--db", target, "--db-schema", schema, "--label", "dyno-release")
        self.assertEqual(ids_out(b2), ids_out(b))
        # A password in the target never shows up in what pgtally prints.
        url = "postgresql://%s:s3cret-pw@127.0.0.1:%d/%s?sslmode=disable" % (
            h.TRUST_USER, self.cluster.port, STORE_DB)
        r = pgtally("report", "--db", url, "--db-schema", schema, "--label", "dyno-release",
                    "--format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("s3cret-pw", r.stdout + r.stderr)

    def aged_copy(self, path, name, days):
        """A copy of a report file whose run started and ended `days` ago."""
        out = os.path.join(self.dir, name)
        shutil.copy(path, out)
        db = sqlite3.connect(out)
        shift = days * 86400 * 1000000
        db.execute("update runs set started_us = started_us - ?, ended_us = ended_us - ?,"
                   " flushed_us = flushed_us - ?, heartbeat_us = heartbeat_us - ?",
                   (shift, shift, shift, shift))
        db.execute("update fingerprints set first_seen_us = first_seen_us - ?", (shift,))
        db.commit()
        db.close()
        return out

    def test_prune_both_backends(self):
        schema = "aged"
        target = store_target(self.cluster)
        base = self.record("base", "x", range(9))
        old_a = self.aged_copy(base, "old-a.db", 60)
        old_b = self.aged_copy(base, "old-b.db", 50)
        for i, path in enumerate((old_a, old_b)):
            db = sqlite3.connect(path)
            db.execute("update runs set label = ?, uuid = ?", ("rel-%d" % i, "%032x" % (i + 1)))
            db.commit()
            db.close()
        fresh = self.record("rel-new", "x", range(3))
        r = pgtally("merge", "--to", target, "--db-schema", schema, old_a, old_b, fresh)
        self.assertEqual(r.returncode, 0, r.stderr)
        local = os.path.join(self.dir, "aged-local.db")
        self.assertEqual(pgtally("merge", "-o", local, old_a, old_b, fresh).returncode, 0)
        for db in ([local], [target, "--db-schema", schema]):
            dry = pgtally("prune", "--db", *db, "--older-than", "30d", "--dry-run")
            self.assertEqual(dry.returncode, 0, dry.stderr)
            self.assertIn("would prune", dry.stdout)
            self.assertIn(": 2 runs, 18 requests, 60 statements, 0 fingerprints", dry.stdout)
            # The two most recently started labels are kept: rel-new and rel-1.
            r = pgtally("prune", "--db", *db, "--older-than", "30d", "--keep-labels", "2",
                        "--batch", "4")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(": 1 runs, 9 requests, 30 statements", r.stdout)
            r = pgtally("prune", "--db", *db, "--older-than", "30d", "--batch", "4")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(": 1 runs, 9 requests, 30 statements", r.stdout)
            runs = pgtally("report", "--db", *db, "--runs", "--format", "json")
            self.assertEqual([x["label"] for x in json.loads(runs.stdout)["runs"]], ["rel-new"])
            again = pgtally("prune", "--db", *db, "--older-than", "30d")
            self.assertIn(": 0 runs, 0 requests, 0 statements, 0 fingerprints", again.stdout)
        rows = subprocess.run([h.pgbin("psql"), "-X", "-At", "-d", target, "-c",
                               "select count(*) from aged.requests r where not exists (select 1"
                               " from aged.runs u where u.id = r.run_id)"],
                              capture_output=True, text=True, env=h.client_env())
        self.assertEqual(rows.stdout.strip(), "0", rows.stderr)

    def test_check_label_on_postgres_exits_1_for_an_unfinished_run(self):
        schema = "unfinished"
        budget = os.path.join(self.dir, "unfinished.ini")
        with open(budget, "w") as f:
            f.write("[defaults]\nmax_queries = 50\n")
        done = self.pg_proxy("pr-9", "ci.1", schema)
        send(done, range(4))
        self.assertEqual(done.stop().returncode, 0)
        killed = self.pg_proxy("pr-9", "ci.2", schema)
        send(killed, range(4, 6))
        # The store connects in the background: kill the proxy once its run is in the store.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = pgtally("report", "--db", store_target(self.cluster), "--db-schema", schema,
                           "--runs", "--format", "json")
            if runs.returncode == 0 and len(json.loads(runs.stdout)["runs"]) == 2:
                break
            time.sleep(0.1)
        killed.kill()
        r = pgtally("check", "--db", store_target(self.cluster), "--db-schema", schema,
                    "--label", "pr-9", "--budget", budget)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ci.2", r.stdout)
        runs = pgtally("report", "--db", store_target(self.cluster), "--db-schema", schema,
                       "--runs", "--format", "json")
        self.assertEqual(runs.returncode, 0, runs.stderr)
        listed = json.loads(runs.stdout)["runs"]
        self.assertEqual([(x["instance"], x["complete"]) for x in listed],
                         [("ci.1", True), ("ci.2", False)])
        self.assertEqual(listed[0]["requests"], 4)
        r = pgtally("report", "--db", store_target(self.cluster), "--db-schema", "nosuch")
        self.assertEqual(r.returncode, 2)
        self.assertIn('no pgtally store in schema "nosuch"', r.stderr)


if __name__ == "__main__":
    h.main()
