#!/usr/bin/python3
"""`pgtally report --format html` rendered by headless Chromium: the SVG charts are in the DOM
after rendering, the page makes no network requests, and the screenshot is not blank (more
than a handful of colours, decoded with zlib: stdlib only). Skips (exit 77) only when chromium
is not installed. Set KEEP_SCREENSHOT=DIR to keep the PNG for a look."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from pngcheck import png_colours

PGTALLY = os.environ.get("PGTALLY_BIN", "pgtally")
FIXTURE = os.environ.get("MAKE_REPORT_FIXTURE", "make_report_fixture")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(args, tmp):
    profile = tempfile.mkdtemp(prefix="profile-", dir=tmp)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--user-data-dir=" + profile] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class Tables(html.parser.HTMLParser):
    """The tables of a rendered DOM: {id or class: [[cell text, ...], ...]}, and the text of
    every <p class="why">, in document order."""

    def __init__(self, dom):
        super().__init__()
        self.tables, self.whys, self.elements = {}, [], {}
        self._table = self._row = self._cell = self._why = None
        self._stack = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._stack.append(tag)
        if self._table is not None:  # markup inside a table: counted, for the escaping checks
            self.elements[tag] = self.elements.get(tag, 0) + 1
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or a.get("class"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "p" and a.get("class") == "why":
            self._why = ""

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = self._row = None
        elif tag == "p" and self._why is not None:
            self.whys.append(self._why)
            self._why = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._why is not None:
            self._why += data


class ReportHtml(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pgtally-report-html-")
        db = os.path.join(cls.tmp, "report.db")
        subprocess.run([FIXTURE, db], check=True)
        cls.html = os.path.join(cls.tmp, "report.html")
        r = subprocess.run([PGTALLY, "report", "--db", db, "--format", "html", "-o", cls.html],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([PGTALLY, "report", "--db", db, "--format", "json"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.json = json.loads(r.stdout)
        r = chromium(["--dump-dom", "file://" + cls.html], cls.tmp)
        assert r.returncode == 0, r.stderr[-2000:]
        cls.dom = r.stdout
        cls.tables = Tables(cls.dom)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_self_contained(self):
        with open(self.html) as f:
            page = f.read()
        self.assertNotIn("<script", page)
        self.assertNotIn("<link", page)
        self.assertNotIn("@import", page)
        self.assertNotIn("url(", page)
        self.assertNotRegex(page, r"src\s*=")
        # Links stay inside the file: every finding and statement links to an anchor here.
        anchors = re.findall(r'href="([^"]*)"', page)
        self.assertGreater(len(anchors), 0)
        for href in anchors:
            self.assertTrue(href.startswith("#"), "external reference %r" % href)
            self.assertIn('id="%s"' % href[1:], page, "anchor %r has no target" % href)
        self.assertEqual(len(re.findall(r"href\s*=", page)), len(anchors))
        self.assertEqual(re.findall(r"https?://[^\"' )]+", page),
                         ["http://www.w3.org/2000/svg"] * page.count("xmlns=\"http://www.w3.org/2000/svg\""))

    def test_rendered_dom_has_the_charts(self):
        dom = self.dom
        for chart in ("chart-routes", "chart-calls", "chart-time", "timeline-0"):
            self.assertIn('id="%s"' % chart, dom)
        self.assertGreaterEqual(dom.count("<rect"), 20)
        self.assertIn("&lt;b&gt;&amp;", dom)  # the odd route stayed text
        self.assertNotIn("<b>&amp;", dom)

    def test_findings_are_ranked_by_cost_and_say_why(self):
        # The same order and the same reason as the other formats (JSON's rank and why).
        want = sorted(self.json["top_findings"], key=lambda f: f["rank"])
        self.assertGreaterEqual(len(want), 2)
        self.assertEqual(self.tables.whys, ["Why here: " + f["why"] for f in want])
        rows = [r for r in self.tables.tables["findings"] if r and r[0].isdigit()]
        self.assertEqual([int(r[0]) for r in rows], [f["rank"] for f in want])
        head = self.tables.tables["findings"][0]
        self.assertEqual(head[2:5], ["DB time", "rows", "bytes"])
        for row, f in zip(rows, want):
            self.assertEqual(int(row[3]), f["rows"])
            self.assertIn(f["worst_request"], row[5])
        self.assertIn('<tr class="finding" id="finding-1">', self.dom)

    def test_rows_and_bytes_per_route_and_per_statement(self):
        routes = self.tables.tables["routes"]
        self.assertEqual(routes[0][-2:], ["Rows", "Bytes"])
        by_name = {r[0]: r for r in routes[1:]}
        for route in self.json["routes"]:
            self.assertEqual(int(by_name[route["route"]][-2]), route["rows"], route["route"])
        stmts = self.tables.tables["statements-totals"]
        self.assertEqual(stmts[0][-2:], ["rows", "bytes"])
        self.assertEqual([int(r[-2]) for r in stmts[1:]],
                         [f["rows"] for f in self.json["top_fingerprints_by_time"]])
        self.assertTrue(all(r[-1].endswith("B") for r in stmts[1:]), stmts)
        # Each request's timeline says what it returned, and its statements table has both.
        req = self.json["requests"][0]
        m = re.search(r'id="request-%s">[^\n]*\u00b7 (\d+) rows, ' % re.escape(req["id"]),
                      self.dom)
        self.assertTrue(m, "no rows in the timeline heading of %s" % req["id"])
        self.assertEqual(int(m.group(1)), req["rows"])
        self.assertEqual(self.tables.tables["statements"][0][3:5], ["rows", "bytes"])

    def test_hostile_route_stays_text_in_the_new_columns(self):
        # The fixture's route `<b>&"x|y`</b>` is a cell of text in the routes table, not markup.
        names = [r[0] for r in self.tables.tables["routes"][1:]]
        self.assertIn('<b>&"x|y`</b>', names)
        self.assertNotIn("b", self.tables.elements)

    def test_screenshot_is_not_blank(self):
        png = os.path.join(self.tmp, "report.png")
        r = chromium(["--screenshot=" + png, "--window-size=1200,2000", "--hide-scrollbars",
                      "file://" + self.html], self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertTrue(os.path.exists(png), r.stderr[-2000:])
        with open(png, "rb") as f:
            width, height, colours = png_colours(f.read())
        self.assertEqual((width, height), (1200, 2000))
        self.assertGreater(len(colours), 8, "the screenshot is (nearly) one colour")
        keep = os.environ.get("KEEP_SCREENSHOT")
        if keep:
            shutil.copy(png, os.path.join(keep, "report.png"))


if __name__ == "__main__":
    if not CHROMIUM:
        print("chromium is not installed (scripts/install-deps.sh installs it): skipped")
        sys.exit(77)
    unittest.main(verbosity=2)
