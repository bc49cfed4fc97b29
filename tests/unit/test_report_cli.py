#!/usr/bin/python3
"""`pgtally report` end to end: every format and drill-down on a report file written through
report/store (make_report_fixture, see report_fixture.h for its figures), exit codes and error
messages. Needs PGTALLY_BIN and MAKE_REPORT_FIXTURE (set by meson)."""
import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

PGTALLY = os.environ.get("PGTALLY_BIN", "pgtally")
FIXTURE = os.environ.get("MAKE_REPORT_FIXTURE", "make_report_fixture")
ANSI = re.compile(r"\x1b\[")


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run([PGTALLY, "report"] + list(args), capture_output=True, text=True,
                          env=e, timeout=60)


class ReportCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pgtally-report-cli-")
        cls.db = os.path.join(cls.tmp, "report.db")
        subprocess.run([FIXTURE, cls.db], check=True)
        cls.incomplete = os.path.join(cls.tmp, "incomplete.db")
        subprocess.run([FIXTURE, cls.incomplete, "3"], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ok(self, *args, **kw):
        r = run(*args, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    # json: the contract document (docs/report-format.md)

    def test_json_contract_fields_and_values(self):
        doc = json.loads(self.ok("--db", self.db, "--format", "json"))
        s = doc["summary"]
        self.assertEqual((s["requests"], s["queries"], s["dropped"]), (5, 24, 0))
        self.assertTrue(s["complete"])
        self.assertEqual(s["findings"], {"n_plus_one": 2, "duplicate": 1, "overfetch": 0})
        reqs = {r["id"]: r for r in doc["requests"]}
        self.assertEqual(set(reqs), {"a1", "a2", "a3", "h1", "conn:7#1"})
        a1 = reqs["a1"]
        for field in ("id", "route", "tags", "queries", "distinct_fingerprints", "duplicates",
                      "db_time_us", "rows", "bytes", "findings"):
            self.assertIn(field, a1)
        self.assertEqual(a1["route"], "/orders")
        self.assertEqual(a1["tags"], {"route": "/orders", "request_id": "a1"})
        self.assertEqual((a1["queries"], a1["distinct_fingerprints"], a1["duplicates"]),
                         (13, 3, 1))
        self.assertEqual((a1["db_time_us"], a1["rows"], a1["bytes"]), (1300, 13, 520))
        n1 = [f for f in a1["findings"] if f["kind"] == "n_plus_one"]
        self.assertEqual(len(n1), 1)
        self.assertEqual(n1[0]["fingerprint"], "2222000000000002")
        self.assertRegex(n1[0]["fingerprint"], r"^[0-9a-f]{16}$")
        self.assertEqual(n1[0]["count"], 10)
        self.assertEqual(n1[0]["normalized"], "select * from items where order_id = $1")
        self.assertEqual(n1[0]["suggestion"]["any"],
                         "select * from items where order_id = any($1)")
        self.assertEqual(reqs["conn:7#1"]["route"], '<b>&"x|y`</b>')
        routes = {r["route"]: r for r in doc["routes"]}
        o = routes["/orders"]
        self.assertEqual(o["requests"], 3)
        self.assertEqual(o["queries_per_request"], {"p50": 7, "p95": 13, "max": 13})
        self.assertEqual((o["duplicates"], o["n_plus_one"], o["db_time_us"]), (1, 2, 2200))
        self.assertEqual(doc["routes"][0]["route"], "/orders")  # worst first
        self.assertEqual(doc["top_findings"][0]["count"], 16)
        self.assertEqual(doc["run"]["version"], "9.9.9-test")

    def test_json_incomplete_run(self):
        doc = json.loads(self.ok("--db", self.incomplete, "--format", "json"))
        self.assertEqual(doc["summary"]["dropped"], 6)
        self.assertEqual(doc["summary"]["dropped_requests"], 3)
        self.assertFalse(doc["summary"]["complete"])
        self.assertFalse(doc["run"]["complete"])

    def test_json_request_has_timeline(self):
        doc = json.loads(self.ok("--db", self.db, "--format", "json", "--request", "a1"))
        self.assertEqual(len(doc["requests"]), 1)
        tl = doc["requests"][0]["timeline"]
        self.assertEqual(len(tl), 13)
        self.assertEqual([s["seq"] for s in tl], sorted(s["seq"] for s in tl))
        self.assertEqual(tl[1]["offset_us"], 150)

    def test_json_route_filter(self):
        doc = json.loads(self.ok("--db", self.db, "--format", "json", "--route", "/orders"))
        self.assertEqual({r["id"] for r in doc["requests"]}, {"a1", "a2", "a3"})
        self.assertEqual([r["route"] for r in doc["routes"]], ["/orders"])
        self.assertEqual(doc["summary"]["queries"], 22)

    def test_json_fingerprint_details(self):
        doc = json.loads(self.ok("--db", self.db, "--format", "json", "--fingerprint",
                                 "2222000000000002"))
        d = doc["fingerprint_details"][0]
        self.assertEqual((d["calls"], d["requests"]), (16, 2))
        self.assertEqual(d["routes"][0]["route"], "/orders")
        # Its one route's rows and bytes: every call returned 1 row of 40 bytes.
        self.assertEqual((d["routes"][0]["rows"], d["routes"][0]["bytes"]), (16, 640))
        self.assertEqual((d["rows"], d["bytes"]), (16, 640))

    def test_text_fingerprint_routes_have_rows_and_bytes(self):
        out = self.ok("--db", self.db, "--fingerprint", "2222000000000002")
        self.check_text(out)
        table = out.split("WHERE IT RUNS")[1].strip().splitlines()
        self.assertEqual(table[0].split()[-2:], ["rows", "bytes"])
        # route, requests, calls, db time, rows, bytes: 16 calls of 1 row and 40 bytes each.
        self.assertRegex(table[1], r"^/orders +2 +16 +\S+ +\S+ +16 +640 B$")

    # text

    def check_text(self, out):
        for line in out.splitlines():
            self.assertLessEqual(len(line), 100, line)
        self.assertIsNone(ANSI.search(out))

    def test_text_default(self):
        out = self.ok("--db", self.db)
        self.check_text(out)
        self.assertIn("data complete", out)
        self.assertIn("run 1", out)
        self.assertIn("pgtally 9.9.9-test", out)
        routes = out.split("ROUTES")[1].split("TOP FINDINGS")[0]
        self.assertLess(routes.index("/orders"), routes.index("/health"))
        self.assertIn("select * from items where order_id = $1", out)
        self.assertIn("select * from items where order_id = any($1)", out)

    def test_text_incomplete_is_loud(self):
        out = self.ok("--db", self.incomplete)
        self.check_text(out)
        self.assertIn("DATA INCOMPLETE", out)
        self.assertIn("3 requests", out)

    def test_text_colour_only_on_a_terminal_without_no_color(self):
        def on_tty(env):
            pid, fd = pty.fork()
            if pid == 0:
                os.environ.pop("NO_COLOR", None)
                os.environ.update(env)
                os.execv(PGTALLY, [PGTALLY, "report", "--db", self.db])
            chunks = []
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            os.waitpid(pid, 0)
            return b"".join(chunks).decode()
        self.assertIsNotNone(ANSI.search(on_tty({})))
        self.assertIsNone(ANSI.search(on_tty({"NO_COLOR": "1"})))
        self.check_text(self.ok("--db", self.db, env={"NO_COLOR": "1"}))

    def test_text_request_timeline(self):
        out = self.ok("--db", self.db, "--request", "a1")
        self.check_text(out)
        self.assertIn("TIMELINE", out)
        self.assertRegex(out, r"x10\s+select \* from items where order_id = \$1")
        self.assertIn("x2", out)
        self.assertIn("N+1", out)

    def test_text_route_drilldown(self):
        out = self.ok("--db", self.db, "--route", "/orders")
        self.check_text(out)
        self.assertIn("REQUESTS", out)
        # one numbered row per request, the whole id last on the line
        for rid in ("a1", "a2", "a3"):
            self.assertRegex(out, r"(?m)^\s+\d+ .*  %s$" % rid)
        self.assertNotIn("/health", out)

    # one cost ranks every finding; drill-downs copy back; one name for unlabelled requests

    EXPORT_ID = "export-7f3a9c2e-41d8-4b1e-9a5c-0d2e6f8b1a77"

    @classmethod
    def export_db(cls):
        """The fixture plus an unlabelled export request: one statement returning 2,500 rows
        (300 kB) in 41 ms, an overfetch costlier than every N+1 of the fixture."""
        path = os.path.join(cls.tmp, "export.db")
        if os.path.exists(path):
            return path
        shutil.copy(cls.db, path)
        c = sqlite3.connect(path)
        cur = c.execute(
            "INSERT INTO requests (run_id, key, route, tags, conn_id, start_us, end_us,"
            " end_reason, statements, setup_statements, distinct_fingerprints, duplicates,"
            " errors, transactions, db_time_us, rows, bytes, truncated, timeline_dropped)"
            " VALUES (1, ?, '', '{}', 9, 1700000000500000, 1700000000541000, 'idle', 1, 0, 1,"
            " 0, 0, 0, 41000, 2500, 300000, 0, 0)", ("request_id:" + cls.EXPORT_ID,))
        rid = cur.lastrowid
        c.execute("INSERT INTO fingerprints VALUES ('abcd000000000009',"
                  " 'select * from orders where created_at > $1', 'select', NULL, 0)")
        c.execute("INSERT INTO request_fingerprints VALUES (?, 'abcd000000000009', 1, 1, 41000,"
                  " 2500, 300000, 0, 0)", (rid,))
        c.execute("INSERT INTO findings VALUES (?, 'overfetch', 'abcd000000000009', 2500, 1, 0,"
                  " 0)", (rid,))
        c.commit()
        c.close()
        return path

    def test_findings_ranked_by_one_cost_and_say_why(self):
        db = self.export_db()
        out = self.ok("--db", db)
        self.check_text(out)
        findings = out.split("TOP FINDINGS")[1].split("STATEMENTS BY DB TIME")[0]
        self.assertRegex(findings, r"\n 1\. overfetch")  # 41 ms beats every N+1 of the run
        self.assertIn("why: 41.0 ms DB time; up to 2,500 rows returned by one execution", findings)
        doc = json.loads(self.ok("--db", db, "--format", "json"))
        top = doc["top_findings"]
        self.assertEqual(top[0]["kind"], "overfetch")
        self.assertEqual((top[0]["rank"], top[0]["cost_us"], top[0]["rows"], top[0]["bytes"]),
                         (1, 41000, 2500, 300000))
        self.assertIn("2,500 rows", top[0]["why"])
        costs = [f["cost_us"] for f in top]
        self.assertEqual(costs, sorted(costs, reverse=True))
        self.assertEqual([f["rank"] for f in top], list(range(1, len(top) + 1)))
        self.assertTrue(all(f["why"] for f in top))
        md = self.ok("--db", db, "--format", "markdown")
        self.assertRegex(md, r"1\. \*\*Over-?fetch.*\n|1\. \*\*[^*]*\*\*: 2500")
        self.assertIn("*Why here:* 41.0 ms DB time", md)

    def test_rows_and_bytes_in_every_table(self):
        out = self.ok("--db", self.db)
        self.assertRegex(out, r"route\s+reqs.*\brows\s+bytes\n")
        self.assertRegex(out, r"(?m)^/orders\s+3 .*\s22\s+880 B$")
        self.assertRegex(out, r"(?m)^ +[\d.]+ ms +16 calls +16 rows +640 B  2222000000000002")
        md = self.ok("--db", self.db, "--format", "markdown")
        self.assertIn("| DB time | Rows | Bytes |", md)
        self.assertRegex(md, r"\| `/orders` \|.*\| 22 \| 880 B \|")
        self.assertIn("| Statement | Calls | DB time | Rows | Bytes |", md)
        self.assertIn("| `select * from items where order_id = $1` | 16 | 1.60 ms | 16 | 640 B |", md)

    def test_request_by_unique_prefix_and_row_number(self):
        db = self.export_db()
        out = self.ok("--db", db, "--route", "(no route)")
        self.check_text(out)
        self.assertIn(self.EXPORT_ID, out)  # the whole id, not cut
        # too long for the line: alone on the next one, whole
        row = re.search(r"(?m)^\s+(\d+) .*\n {8}%s$" % re.escape(self.EXPORT_ID), out).group(1)
        for ref in ("export-7f3a", self.EXPORT_ID, row):
            r = self.ok("--db", db, "--request", ref)
            self.assertIn(self.EXPORT_ID + "  (row %s)" % row, r)
        r = run("--db", db, "--request", "a")  # a1, a2, a3
        self.assertEqual(r.returncode, 2)
        self.assertIn("matches 3 requests", r.stderr)

    def test_no_route_is_one_name_and_an_argument(self):
        db = self.export_db()
        out = self.ok("--db", db)
        self.assertRegex(out, r"(?m)^\(no route\)\s+1 ")
        by_name = json.loads(self.ok("--db", db, "--format", "json", "--route", "(no route)"))
        by_empty = json.loads(self.ok("--db", db, "--format", "json", "--route", ""))
        self.assertEqual([r["id"] for r in by_name["requests"]], [self.EXPORT_ID])
        self.assertEqual(by_name["requests"], by_empty["requests"])

    def test_text_fingerprint_drilldown(self):
        out = self.ok("--db", self.db, "--fingerprint", "2222")
        self.check_text(out)
        self.assertIn("2222000000000002", out)
        self.assertIn("16 calls in 2 requests", out)
        self.assertIn("/orders", out)

    def test_run_option(self):
        self.ok("--db", self.db, "--run", "1")
        r = run("--db", self.db, "--run", "5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no run 5", r.stderr)

    # markdown

    def test_markdown(self):
        out = self.ok("--db", self.db, "--format", "markdown")
        self.assertIn("| Route | Requests |", out)
        self.assertIn("| `/orders` | 3 | 7 | 13 | 13 | 1 | **2** |", out)
        self.assertIn("```sql\nselect * from items where order_id = $1\n```", out)
        self.assertIn("Data complete", out)
        self.assertIn("\\|", out)  # the pipe in the odd route is escaped
        out = self.ok("--db", self.incomplete, "--format", "markdown")
        self.assertIn("Data incomplete", out)

    # output file, usage and unusable files

    def test_output_file(self):
        path = os.path.join(self.tmp, "out.json")
        self.assertEqual(self.ok("--db", self.db, "--format", "json", "-o", path), "")
        with open(path) as f:
            self.assertEqual(json.load(f)["summary"]["requests"], 5)

    def test_bad_files_exit_2_naming_the_file(self):
        missing = os.path.join(self.tmp, "missing.db")
        text = os.path.join(self.tmp, "text.db")
        with open(text, "w") as f:
            f.write("not a database at all, only text " * 10)
        other = os.path.join(self.tmp, "other.db")
        c = sqlite3.connect(other)
        c.execute("create table t (x)")
        c.commit()
        c.close()
        newer = os.path.join(self.tmp, "newer.db")
        shutil.copy(self.db, newer)
        c = sqlite3.connect(newer)
        c.execute("pragma user_version = 42")
        c.commit()
        c.close()
        for path, what in ((missing, "No such file"), (text, "not a pgtally report"),
                           (other, "not a pgtally report"), (newer, "newer")):
            r = run("--db", path)
            self.assertEqual(r.returncode, 2, path)
            self.assertIn(path, r.stderr)
            self.assertIn(what, r.stderr)
            self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(missing))

    def test_bad_usage_exit_2(self):
        for args in ([], ["--db", self.db, "--format", "xml"], ["--db", self.db, "--run", "x"],
                     ["--db", self.db, "--route", "/orders", "--request", "a1"],
                     ["--db", self.db, "--format", "html", "--request", "a1"],
                     ["--db", self.db, "extra"], ["--db", self.db, "--request", "nope"],
                     ["--db", self.db, "--route", "/nope"]):
            r = run(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertNotEqual(r.stderr, "")
        self.assertEqual(run("--help").returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
