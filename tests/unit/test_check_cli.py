"""CLI tests of `pgtally check` (report/check/budget.c, report/check/check_output.c, report/check/budgetfile.c).

Report files are built with Python's sqlite3 on top of a file the real binary created (`pgtally
proxy --db` with no client: it writes the schema, user_version and application_id, then its run
row is replaced by the test's own), so the schema is always the one the proxy writes. No network:
the proxy listens on an ephemeral loopback port and never reaches its (unreachable) upstream.

Environment: PGTALLY_BIN, the pgtally binary (meson sets it from pgtally_exe).
"""

import atexit
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

PGTALLY = os.environ.get("PGTALLY_BIN", "build/proxy/pgtally")

N1_SQL = "select id, name from customers where id = $1"
N1_FP = "df36a03c534ce8aa"
DUP_FP = "1eb86a0a3b05a463"
DUP_SQL = "select value from settings where key = $1"
PAGE_FP = "f786dde076a51200"
PAGE_SQL = "select id, customer_id from orders order by id desc limit $1"

_template = None


def template_db():
    """A report file written by the real proxy (schema only, its run row removed)."""
    global _template
    if _template:
        return _template
    d = tempfile.mkdtemp(prefix="test_check_cli.")
    atexit.register(shutil.rmtree, d, True)
    path = os.path.join(d, "template.db")
    proc = subprocess.Popen([PGTALLY, "proxy", "--listen", "127.0.0.1:0", "--upstream",
                             "127.0.0.1:1", "--db", path, "--log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    if proc.returncode != 0 or not os.path.exists(path):
        raise RuntimeError("pgtally proxy did not create %s: %s" % (path, err.decode()))
    con = sqlite3.connect(path)
    for table in ("statements", "findings", "request_fingerprints", "requests", "fingerprints",
                  "runs"):
        con.execute("DELETE FROM %s" % table)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    _template = path
    return path


def request(route, rid, queries=3, duplicates=0, db_time_us=1000, rows=10, findings=()):
    """One request row; findings are (kind, fingerprint, count, distinct_values)."""
    return dict(route=route, key="request_id:" + rid, queries=queries, duplicates=duplicates,
                db_time_us=db_time_us, rows=rows, findings=list(findings))


def n_plus_one(calls=10, distinct=10):
    return ("n_plus_one", N1_FP, calls, distinct)


def make_report(path, runs):
    """runs: list of dicts with `requests` and optional complete/ended/dropped_requests."""
    shutil.copy(template_db(), path)
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO fingerprints (fingerprint, normalized, command, sample, "
                    "first_seen_us) VALUES (?, ?, 'select', NULL, 1)",
                    [(N1_FP, N1_SQL), (DUP_FP, DUP_SQL), (PAGE_FP, PAGE_SQL)])
    t = 1_700_000_000_000_000
    for run in runs:
        reqs = run["requests"]
        ended = run.get("ended", True)
        cur = con.execute(
            "INSERT INTO runs (started_us, ended_us, version, settings, statements, requests, "
            "dropped_requests, dropped_statements, complete) VALUES (?, ?, '0.1.0', '{}', ?, ?,"
            " ?, ?, ?)",
            (t, t + 1_000_000 if ended else None, sum(r["queries"] for r in reqs), len(reqs),
             run.get("dropped_requests", 0), run.get("dropped_requests", 0) * 5,
             1 if run.get("complete", True) else 0))
        run_id = cur.lastrowid
        for i, r in enumerate(reqs):
            start = t + i * 1000
            cur = con.execute(
                "INSERT INTO requests (run_id, key, route, tags, conn_id, start_us, end_us, "
                "end_reason, statements, setup_statements, distinct_fingerprints, duplicates, "
                "errors, transactions, db_time_us, rows, bytes, truncated, timeline_dropped) "
                "VALUES (?, ?, ?, '{}', 1, ?, ?, 'idle', ?, 0, 2, ?, 0, 0, ?, ?, ?, 0, 0)",
                (run_id, r["key"], r["route"], start, start + 500, r["queries"],
                 r["duplicates"], r["db_time_us"], r["rows"], r["rows"] * 20))
            req_id = cur.lastrowid
            for kind, fp, count, distinct in r["findings"]:
                con.execute("INSERT INTO findings (request_id, kind, fingerprint, count, "
                            "distinct_values, is_write, by_bytes) VALUES (?, ?, ?, ?, ?, 0, 0)",
                            (req_id, kind, fp, count, distinct))
            con.execute("INSERT INTO request_fingerprints (request_id, fingerprint, calls, "
                        "distinct_values, total_time_us, rows, bytes, errors, is_write) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, 0, 0)",
                        (req_id, PAGE_FP, r["queries"], r["queries"] - r["duplicates"],
                         r["db_time_us"], r["rows"], r["rows"] * 20))
        t += 10_000_000
    con.commit()
    con.close()


BUDGET = """\
[defaults]
max_queries = 10
max_duplicates = 3
max_n_plus_one = 0
max_db_time_ms = 500
max_rows = 1000
max_growth = 10%

[route "/api/report"]
max_queries = off      ; a known heavy page
"""


class CheckCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="test_check_cli.")
        self.db = os.path.join(self.dir, "report.db")
        self.budget = os.path.join(self.dir, "budget.ini")
        self.write_budget(BUDGET)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_budget(self, text, name="budget.ini"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, *args, db=None, budget=None):
        argv = [PGTALLY, "check", "--db", db or self.db, "--budget", budget or self.budget]
        argv += list(args)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def clean_run(self):
        return [request("/api/orders", "o1", queries=4),
                request("/api/orders", "o2", queries=5),
                request("/api/report", "r1", queries=40)]

    # ---- exit 0 / 1 -------------------------------------------------------------------------

    def test_within_budget_exits_0(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        rc, out, err = self.check()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("result: PASS", out)
        self.assertRegex(out, r"ok\s+/api/orders")

    def test_over_budget_exits_1_with_every_violation(self):
        reqs = self.clean_run() + [
            request("/api/orders", "o3", queries=12, duplicates=5, db_time_us=612_345,
                    rows=5000,
                    findings=[n_plus_one(), ("duplicate", DUP_FP, 5, 1)])]
        make_report(self.db, [dict(requests=reqs)])
        rc, out, err = self.check()
        self.assertEqual(rc, 1, out + err)
        lines = [l for l in out.splitlines() if l.startswith("FAIL 1 of 3 requests of /api/orders")]
        self.assertEqual(len(lines), 5, out)  # queries, n+1, duplicates, db time, rows
        self.assertIn("queries 12 > max_queries 10 (%s:2)" % self.budget, out)
        self.assertIn("worst: request o3: queries 12 > max_queries 10", out)
        self.assertIn("n_plus_one findings 1 > max_n_plus_one 0", out)
        self.assertIn("duplicates 5 > max_duplicates 3", out)
        self.assertIn("db_time_ms 612.3 > max_db_time_ms 500", out)
        self.assertIn("rows 5000 > max_rows 1000", out)
        self.assertIn(N1_SQL, out)   # the offending SQL of the N+1 ...
        self.assertIn(DUP_SQL, out)  # ... and of the duplicates
        self.assertIn(N1_FP, out)
        self.assertIn("result: FAIL: 5 violations of 5 limits in 1 of 2 routes", out)

    def test_identical_violations_grouped_per_route(self):
        reqs = [request("/api/orders", "o%d" % i, queries=12 + (i == 3),
                        findings=[n_plus_one(calls=10)]) for i in range(1, 6)]
        reqs.append(request("/api/orders/fixed", "f1", queries=3))
        make_report(self.db, [dict(requests=reqs)])
        rc, out, err = self.check()
        self.assertEqual(rc, 1, out + err)
        fails = [l for l in out.splitlines() if l.startswith("FAIL")]
        self.assertEqual(len(fails), 2, out)  # one per limit, not one per request
        self.assertIn("FAIL 5 of 5 requests of /api/orders: N+1 on customers (10 calls): "
                      "n_plus_one findings 1 > max_n_plus_one 0 (%s:4)" % self.budget, out)
        self.assertIn("FAIL 5 of 5 requests of /api/orders: queries 12-13 > max_queries 10", out)
        self.assertIn("worst: request o3: queries 13 > max_queries 10", out)
        self.assertEqual(out.count(N1_SQL), 1, out)
        self.assertIn("10 violations of 2 limits in 1 of 2 routes", out)
        junit = os.path.join(self.dir, "junit.xml")
        md = os.path.join(self.dir, "summary.md")
        self.check("--junit", junit, "--markdown", md)
        cases = [c for c in ET.parse(junit).getroot().iter("testcase")
                 if c.get("classname") == "pgtally.route"]
        self.assertEqual(sorted(c.get("name") for c in cases),
                         ["/api/orders/fixed", "/api/orders: max_n_plus_one",
                          "/api/orders: max_queries"])
        n1 = [c for c in cases if c.get("name") == "/api/orders: max_n_plus_one"][0]
        self.assertIn("5 of 5 requests of /api/orders", n1.find("failure").get("message"))
        self.assertIn("worst: request o1", n1.find("failure").text)
        with open(md, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count("5 of 5 requests of"), 4, text)  # 2 groups: item + block
        self.assertIn("10 violations of 2 limits", text)

    def test_unlabelled_route_named_as_in_report(self):
        make_report(self.db, [dict(requests=[request("", "u1", queries=11)])])
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL 1 of 1 request of (no route): queries 11 > max_queries 10", out)
        self.assertNotIn("unlabelled", out)

    def test_budget_without_limits_exits_2(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        for text in ("", "; nothing yet\n", "[defaults]\n", "[ignore]\nroute = /health\n",
                     "[route \"/api/report\"]\nmax_queries = off\n"):
            budget = self.write_budget(text, "empty.ini")
            rc, out, err = self.check(budget=budget)
            self.assertEqual(rc, 2, (text, out, err))
            self.assertIn(budget, err)
            self.assertIn("sets no limit", err)
            self.assertEqual(out, "")
        # with --baseline an empty budget still forbids growth: not an error
        base = os.path.join(self.dir, "base.db")
        make_report(base, [dict(requests=self.clean_run())])
        rc, out, err = self.check("--baseline", base, budget=budget)
        self.assertEqual(rc, 0, out + err)

    def test_route_override_lifts_a_default(self):
        make_report(self.db, [dict(requests=[request("/api/report", "r1", queries=400)])])
        rc, out, _ = self.check()
        self.assertEqual(rc, 0, out)
        make_report(self.db, [dict(requests=[request("/api/other", "x1", queries=400)])])
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)

    def test_incomplete_run_exits_1(self):
        make_report(self.db, [dict(requests=self.clean_run(), ended=False, complete=False)])
        rc, out, err = self.check()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("INCOMPLETE DATA", out)
        self.assertIn("INCOMPLETE DATA", err)
        self.assertIn("refuses to pass", out)

    def test_dropped_records_exit_1(self):
        make_report(self.db, [dict(requests=self.clean_run(), complete=False,
                                   dropped_requests=3)])
        rc, out, err = self.check()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("INCOMPLETE DATA", out)
        self.assertIn("dropped", out)

    def test_no_requests_exits_1(self):
        make_report(self.db, [dict(requests=[])])
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("recorded no requests", out)

    # ---- exit 2 -----------------------------------------------------------------------------

    def test_bad_budget_exits_2_with_file_and_line(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        cases = [
            ("[defaults]\nmax_queries = 10\nmax_querys = 3\n", 3, "unknown key"),
            ("[defaults]\nmax_queries = lots\n", 2, "not a whole number"),
            ("[route \"/a\"]\n[route \"/a\"]\n", 2, "given twice"),
            ("[limits]\n", 1, "unknown section"),
            ("[defaults]\nmax_queries\n", 2, "expected \"key = value\""),
        ]
        for text, line, needle in cases:
            path = self.write_budget(text, "bad.ini")
            rc, out, err = self.check(budget=path)
            self.assertEqual(rc, 2, (text, out, err))
            self.assertIn("%s:%d: " % (path, line), err)
            self.assertIn(needle, err)
            self.assertEqual(out, "")

    def test_missing_budget_file_exits_2(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        rc, _, err = self.check(budget=os.path.join(self.dir, "nope.ini"))
        self.assertEqual(rc, 2)
        self.assertIn("nope.ini", err)

    def test_missing_db_exits_2(self):
        missing = os.path.join(self.dir, "missing.db")
        rc, out, err = self.check(db=missing)
        self.assertEqual(rc, 2, out + err)
        self.assertIn(missing, err)
        self.assertFalse(os.path.exists(missing), "check must not create the report file")

    def test_not_a_report_exits_2(self):
        path = os.path.join(self.dir, "junk.db")
        with open(path, "w") as f:
            f.write("not sqlite at all\n" * 100)
        rc, _, err = self.check(db=path)
        self.assertEqual(rc, 2)
        self.assertIn(path, err)

    def test_run_option(self):
        make_report(self.db, [dict(requests=[request("/a", "1", queries=50)]),
                              dict(requests=[request("/a", "2", queries=5)])])
        self.assertEqual(self.check()[0], 0)  # the latest run
        rc, out, _ = self.check("--run", "1")
        self.assertEqual(rc, 1, out)
        self.assertIn("run 1 of", out)
        rc, _, err = self.check("--run", "99")
        self.assertEqual(rc, 2, err)
        rc, _, err = self.check("--run", "x")
        self.assertEqual(rc, 2, err)

    def test_usage_errors_exit_2(self):
        p = subprocess.run([PGTALLY, "check", "--db", self.db], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--budget", p.stderr)
        p = subprocess.run([PGTALLY, "check", "--budget", self.budget, "--bogus"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([PGTALLY, "check", "--budget", self.budget, "extra"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([PGTALLY, "check", "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--baseline", p.stdout)

    def test_unwritable_junit_exits_2(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        rc, _, err = self.check("--junit", os.path.join(self.dir, "no", "such", "dir.xml"))
        self.assertEqual(rc, 2)
        self.assertIn("dir.xml", err)

    # ---- JUnit and Markdown -----------------------------------------------------------------

    def test_junit_is_well_formed_one_testcase_per_route(self):
        nasty = "/api/<items>&\"q\"='x'\x01\xe9"
        reqs = self.clean_run() + [request(nasty, "n&1", queries=20,
                                           findings=[n_plus_one()])]
        make_report(self.db, [dict(requests=reqs)])
        junit = os.path.join(self.dir, "junit.xml")
        rc, out, err = self.check("--junit", junit)
        self.assertEqual(rc, 1, out + err)
        root = ET.parse(junit).getroot()  # raises on malformed XML
        self.assertEqual(root.tag, "testsuites")
        cases = root.findall(".//testcase")
        routes = {c.get("name"): c for c in cases if c.get("classname") == "pgtally.route"}
        # the control character shows as \x01, as in every other output
        # one testcase per route within budget, one per limit a route broke
        bad_name = "/api/<items>&\"q\"='x'\\x01\xe9"
        self.assertEqual(set(routes), {"/api/orders", "/api/report", bad_name + ": max_queries",
                                       bad_name + ": max_n_plus_one"})
        failure = routes[bad_name + ": max_queries"].find("failure")
        self.assertIsNotNone(failure)
        self.assertIn("queries 20 > max_queries 10", failure.text)
        self.assertIn("request n&1", failure.text)
        self.assertIn(N1_SQL, routes[bad_name + ": max_n_plus_one"].find("failure").text)
        self.assertIsNone(routes["/api/orders"].find("failure"))
        self.assertEqual(root.get("failures"), "2")
        run_case = [c for c in cases if c.get("classname") == "pgtally.run"]
        self.assertEqual(len(run_case), 1)
        self.assertIsNone(run_case[0].find("failure"))

    def test_junit_marks_incomplete_data(self):
        make_report(self.db, [dict(requests=self.clean_run(), ended=False, complete=False)])
        junit = os.path.join(self.dir, "junit.xml")
        rc, _, _ = self.check("--junit", junit)
        self.assertEqual(rc, 1)
        root = ET.parse(junit).getroot()
        run_case = [c for c in root.iter("testcase") if c.get("classname") == "pgtally.run"][0]
        self.assertIsNotNone(run_case.find("failure"))

    def test_markdown_summary(self):
        reqs = self.clean_run() + [request("/api/orders", "o9", queries=30,
                                           findings=[n_plus_one()])]
        make_report(self.db, [dict(requests=reqs)])
        md = os.path.join(self.dir, "summary.md")
        rc, _, _ = self.check("--markdown", md)
        self.assertEqual(rc, 1)
        with open(md, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("over budget", text)
        self.assertIn("| Route | Requests |", text)
        self.assertIn("`/api/orders`", text)
        self.assertIn(N1_SQL, text)
        make_report(self.db, [dict(requests=self.clean_run())])
        rc, _, _ = self.check("--markdown", md)
        self.assertEqual(rc, 0)
        with open(md, encoding="utf-8") as f:
            self.assertIn("within budget", f.read())

    # ---- baseline ---------------------------------------------------------------------------

    def test_baseline_growth_fails_and_no_growth_passes(self):
        base = os.path.join(self.dir, "base.db")
        # Baseline: /api/orders 4 queries/request (mean of 4 and 4).
        make_report(base, [dict(requests=[request("/api/orders", "b1", queries=4),
                                          request("/api/orders", "b2", queries=4)])])
        # Same figures: no growth.
        make_report(self.db, [dict(requests=[request("/api/orders", "c1", queries=4),
                                             request("/api/orders", "c2", queries=4)])])
        rc, out, err = self.check("--baseline", base)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("baseline 4.0", out)
        # 4 -> 4.4 is exactly +10%: allowed.
        make_report(self.db, [dict(requests=[request("/api/orders", "c%d" % i,
                                                     queries=q)
                                             for i, q in enumerate([4, 4, 4, 4, 6])])])
        rc, out, err = self.check("--baseline", base)
        self.assertEqual(rc, 0, out + err)
        # 4 -> 5: +25%, over the 10% budget, yet within every absolute limit.
        make_report(self.db, [dict(requests=[request("/api/orders", "c1", queries=5),
                                             request("/api/orders", "c2", queries=5)])])
        rc, out, err = self.check("--baseline", base)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("FAIL /api/orders: queries/request grew: 5.00", out)
        self.assertIn("4.40 allowed (baseline 4.00 + max_growth 10%)", out)

    def test_baseline_absolute_growth_and_new_routes(self):
        base = os.path.join(self.dir, "base.db")
        make_report(base, [dict(requests=[request("/api/orders", "b1", queries=4)])])
        budget = self.write_budget("[defaults]\nmax_queries = 10\nmax_growth = 2\n", "abs.ini")
        make_report(self.db, [dict(requests=[request("/api/orders", "c1", queries=6),
                                             request("/api/new", "n1", queries=9)])])
        rc, out, err = self.check("--baseline", base, budget=budget)
        self.assertEqual(rc, 0, out + err)  # +2 allowed; /api/new has no baseline
        self.assertIn("new (no baseline)", out)
        make_report(self.db, [dict(requests=[request("/api/orders", "c1", queries=7),
                                             request("/api/new", "n1", queries=11)])])
        rc, out, err = self.check("--baseline", base, budget=budget)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("FAIL /api/orders: queries/request grew", out)
        self.assertIn("FAIL 1 of 1 request of /api/new: queries 11 > max_queries 10", out)
        self.assertNotIn("FAIL /api/new: queries/request grew", out)

    def test_baseline_without_max_growth_allows_no_growth(self):
        base = os.path.join(self.dir, "base.db")
        make_report(base, [dict(requests=[request("/a", "b1", queries=4)])])
        budget = self.write_budget("[defaults]\nmax_queries = 100\n", "nogrowth.ini")
        make_report(self.db, [dict(requests=[request("/a", "c1", queries=5)])])
        rc, out, _ = self.check("--baseline", base, budget=budget)
        self.assertEqual(rc, 1, out)
        make_report(self.db, [dict(requests=[request("/a", "c1", queries=3)])])
        rc, out, _ = self.check("--baseline", base, budget=budget)
        self.assertEqual(rc, 0, out)

    def test_missing_baseline_exits_2(self):
        make_report(self.db, [dict(requests=self.clean_run())])
        rc, _, err = self.check("--baseline", os.path.join(self.dir, "old.db"))
        self.assertEqual(rc, 2)
        self.assertIn("old.db", err)

    # ---- ignore list ------------------------------------------------------------------------

    def test_ignored_fingerprint_does_not_count(self):
        reqs = [request("/api/orders", "o1", queries=8, duplicates=5,
                        findings=[n_plus_one(), ("duplicate", N1_FP, 5, 5)])]
        make_report(self.db, [dict(requests=reqs)])
        rc, out, _ = self.check()
        self.assertEqual(rc, 1, out)
        budget = self.write_budget(BUDGET + "[ignore]\nfingerprint = %s   ; accepted\n"
                                   % N1_FP.upper(), "ignore.ini")
        rc, out, err = self.check(budget=budget)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ignored: 2 findings", out)

    def test_ignored_route_is_skipped(self):
        reqs = self.clean_run() + [request("/health", "h1", queries=99)]
        make_report(self.db, [dict(requests=reqs)])
        self.assertEqual(self.check()[0], 1)
        budget = self.write_budget(BUDGET + "[ignore]\nroute = /health\n", "ignore.ini")
        junit = os.path.join(self.dir, "junit.xml")
        rc, out, _ = self.check("--junit", junit, budget=budget)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"skip\s+/health")
        health = [c for c in ET.parse(junit).getroot().iter("testcase")
                  if c.get("name") == "/health"][0]
        self.assertIsNotNone(health.find("skipped"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
