"""The report as live web pages: `pgtally proxy --serve` and `pgtally serve`, in headless
Chromium and over plain HTTP.

One proxy with --serve records hostile and ordinary traffic; the tests crawl every link from
the index, open a page in Chromium through its DevTools protocol (a websocket, stdlib only)
and see a request sent afterwards appear without a reload, check escaping against hostile
route names and SQL identifiers, decode screenshots, and check the server's guards: the
token, GET only, unknown paths, and idle connections. `pgtally serve` is also run on a
PostgreSQL store (the SQLite store pushed there with `pgtally merge --to`).
Skips (exit 77) only when chromium is not installed.
"""

import base64
import html
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import psycopg

import pgharness as h
from pngcheck import png_colours

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PGTALLY = os.environ.get("PGTALLY_BIN", "pgtally")

# Route names and SQL a hostile app could send: markup, quotes, control bytes.
HOSTILE_ROUTE = "<script>alert(1)</script>\"'\x01\x1b[31m"
HOSTILE_IDENT = "</pre><script>alert(2)</script>"

PROXY = None
SERVE_PORT = None


def sqlc(value):
    """A sqlcommenter value: percent-encoded."""
    return urllib.parse.quote(value, safe="")


def send_request(request_id, route, statements):
    """Sends one request's statements; route None: a request without a route label."""
    tag = "request_id='%s'" % sqlc(request_id)
    if route is not None:
        tag += ",route='%s'" % sqlc(route)
    # One pipeline: the statements reach the server together, so even a loaded machine never
    # leaves a request-gap pause between them (that would split the request in two, both
    # with this id).
    with psycopg.connect(PROXY.dsn(), autocommit=True) as conn, conn.pipeline():
        for sql in statements:
            conn.execute("/*%s*/ %s" % (tag, sql))


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        c.close()


def setUpModule():
    global PROXY, SERVE_PORT
    cluster = h.module_cluster()
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:  # directly, not recorded
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int, order_id int)")
        conn.execute("CREATE TABLE IF NOT EXISTS users (id int, name text)")
        if conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0:  # rows to return
            conn.execute("INSERT INTO items SELECT i, i % 6 FROM generate_series(1, 12) i")
        conn.execute('CREATE TABLE IF NOT EXISTS "%s" (a int, b int, c int, d int)'
                     % HOSTILE_IDENT)
    SERVE_PORT = h.free_port()
    PROXY = h.Proxy(cluster, extra_args=["--serve", "127.0.0.1:%d" % SERVE_PORT,
                                         "--request-gap", "0.3"]).start()
    wait_for(lambda: h.listens(PROXY.proc.pid, SERVE_PORT), 15, "the --serve port")
    # An alternating N+1 (items, users, items, users ...), a plain one, and hostile names.
    alternating = []
    for i in range(6):
        alternating += ["select * from items where order_id = %d" % i,
                        "select name from users where id = %d" % i]
    send_request("alt-1", "/orders", ["select 1"] + alternating)
    send_request("plain-1", "/health", ["select 1"])
    send_request("evil-1", HOSTILE_ROUTE,
                 ['select a, b, c, d from "%s" where a = %d' % (HOSTILE_IDENT, i)
                  for i in range(6)])
    send_request("noroute-1", None, ["select 1", "select 2"])
    wait_for(lambda: "noroute-1" in get(SERVE_PORT, "/")[2], 30, "the first requests stored")


def tearDownModule():
    if PROXY:
        PROXY.stop()
    h.stop_module_cluster()


def links(page):
    return [html.unescape(m) for m in re.findall(r'href="([^"]*)"', page)]


def crawl(port, headers=None, limit=400):
    seen, todo, statuses = set(), ["/"], {}
    while todo and len(seen) < limit:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        status, _, page = get(port, path, headers)
        statuses[path] = status
        for href in links(page):
            if href.startswith("/") and href not in seen:
                todo.append(href)
    return statuses


# ---- DevTools protocol over a websocket (stdlib only) -------------------------------------

class DevTools:
    """A page target of a headless Chromium, driven through its DevTools protocol."""

    def __init__(self, tmp):
        self.profile = tempfile.mkdtemp(prefix="profile-", dir=tmp)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
             "--window-size=1400,1800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")

        def read_port_file():
            try:
                with open(port_file) as f:
                    text = f.read()
            except OSError:
                return None
            return text if text.count("\n") >= 1 else None

        port = int(wait_for(read_port_file, 60, "chromium's DevTools port").split("\n")[0])
        targets = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/json/list" % port, timeout=20).read())
        page = [t for t in targets if t["type"] == "page"][0]
        url = urllib.parse.urlparse(page["webSocketDebuggerUrl"])
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (url.path, url.hostname, url.port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("devtools websocket closed during the handshake")
            head += chunk
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("devtools websocket closed")
            buf += chunk
        return buf

    def _recv_message(self):
        data = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            if b0 & 0x0F in (0x1, 0x0):
                data += payload
                if b0 & 0x80:
                    return json.loads(data)

    def call(self, method, **params):
        self.next_id += 1
        msg = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        n = len(msg)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
        while True:
            reply = self._recv_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply["result"]

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r["result"].get("value")

    def navigate(self, url):
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState") == "complete", 60, "page load")

    def screenshot(self):
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self):
        try:
            self.sock.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Pages(unittest.TestCase):
    def test_every_link_from_the_index_resolves(self):
        statuses = crawl(SERVE_PORT)
        bad = {p: s for p, s in statuses.items() if s != 200}
        self.assertEqual(bad, {})
        # Only normalized SQL: the run was recorded without --samples, so no literal values.
        for path in statuses:
            page = get(SERVE_PORT, path)[2]
            self.assertNotRegex(page, r"order_id = \d|where a = \d|id = \d", path)
        kinds = {p.split("?")[0].split("/")[1] for p in statuses}
        for kind in ("", "route", "request", "fingerprint", "runs"):
            self.assertIn(kind, kinds, "no %r page reached from the index" % kind)

    def test_routeless_requests_are_named_no_route_and_their_link_resolves(self):
        index = get(SERVE_PORT, "/")[2]
        # The name every output uses, in the link too, so it can be typed back (--route).
        self.assertIn("/route?name=%28no%20route%29", links(index))
        self.assertNotIn("/route?name=", [l.split("&")[0] for l in links(index)])
        status, _, page = get(SERVE_PORT, "/route?name=%28no%20route%29")
        self.assertEqual(status, 200)
        self.assertIn("<h1>pgtally: (no route)</h1>", page)
        self.assertIn("noroute-1", page)
        self.assertNotIn("alt-1", page)  # only the unlabelled requests
        request = get(SERVE_PORT, "/request/noroute-1")[2]
        self.assertIn('route <a href="/route?name=%28no%20route%29">(no route)</a>', request)
        # The text report and check name them the same, and take the name back.
        r = subprocess.run([PGTALLY, "report", "--db", PROXY.db_path, "--route", "(no route)",
                            "--format", "json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("noroute-1", [q["id"] for q in json.loads(r.stdout)["requests"]])

    def test_unknown_paths_are_404(self):
        for path in ("/nope", "/request/", "/request/no-such-request", "/fingerprint/zz",
                     "/route", "/api/nope", "/?run=999"):
            status, _, _ = get(SERVE_PORT, path)
            self.assertEqual(status, 404, path)

    def test_only_get_is_served(self):
        for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
            status, headers, _ = get(SERVE_PORT, "/", method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("Allow"), "GET", method)

    def test_hostile_names_and_sql_stay_text(self):
        status, headers, index = get(SERVE_PORT, "/")
        self.assertEqual(status, 200)
        self.assertIn("script-src 'nonce-", headers["Content-Security-Policy"])
        pages = [index]
        for href in links(index):
            if "evil-1" in href or "alert" in href or "route?name=%3Cscript" in href:
                pages.append(get(SERVE_PORT, href)[2])
        fp = [l for l in links(pages[-1]) if l.startswith("/fingerprint/")]
        pages += [get(SERVE_PORT, l)[2] for l in fp]
        self.assertGreaterEqual(len(pages), 3)
        joined = "\n".join(pages)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;", joined)
        self.assertIn("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;", joined)
        for page in pages:
            self.assertEqual(page.count("<script"), 1)  # only the page's own live script
            self.assertNotIn("\x1b", page)
            self.assertNotIn("\x01", page)
            self.assertNotIn("alert(1)</script>", page)
            self.assertNotIn("alert(2)</script>", page)

    def test_many_idle_connections_do_not_stop_a_page(self):
        idle = []
        try:
            for i in range(120):
                s = socket.create_connection(("127.0.0.1", SERVE_PORT), timeout=10)
                if i % 2:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head never finished
                idle.append(s)
            status, _, page = get(SERVE_PORT, "/")
            self.assertEqual(status, 200)
            self.assertIn("Latest requests", page)
        finally:
            for s in idle:
                s.close()
        self.assertTrue(PROXY.alive())


@unittest.skipUnless(CHROMIUM, "chromium is not installed")
class LivePage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pgtally-serve-")
        self.browser = DevTools(self.tmp)

    def tearDown(self):
        self.browser.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_request_sent_after_the_page_opened_appears_without_a_reload(self):
        b = self.browser
        b.navigate("http://127.0.0.1:%d/" % SERVE_PORT)
        self.assertIn("alt-1", b.evaluate("document.getElementById('live').innerText"))
        self.assertEqual(b.evaluate("document.scripts.length"), 1)
        # A reload would drop this marker.
        b.evaluate("window.pgtallyMarker = 'same page'")
        send_request("late-arrival-1", "/checkout", ["select 1", "select 2"])
        text = wait_for(
            lambda: (lambda t: t if "late-arrival-1" in t else None)(
                b.evaluate("document.getElementById('live').innerText")),
            60, "the new request on the open page")
        self.assertEqual(b.evaluate("window.pgtallyMarker"), "same page")
        self.assertIn("/checkout", text)
        self.assertIn("live, updated", b.evaluate("document.getElementById('live-state')"
                                                  ".textContent"))
        keep = os.environ.get("KEEP_SERVE_DOM")
        if keep:
            with open(os.path.join(keep, "live-page.txt"), "w") as f:
                f.write(text)
            with open(os.path.join(keep, "live-page.png"), "wb") as f:
                f.write(b.screenshot())
        width, height, colours = png_colours(b.screenshot())
        self.assertGreater(len(colours), 8, "the screenshot is (nearly) one colour")

    def test_pages_render_at_desktop_and_phone_width(self):
        b = self.browser
        for width, mobile in ((1400, False), (390, True)):
            b.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                   deviceScaleFactor=1, mobile=mobile)
            for path in ("/", "/request/alt-1", "/route?name=%2Forders", "/runs"):
                b.navigate("http://127.0.0.1:%d%s" % (SERVE_PORT, path))
                # Nothing wider than the screen: tables scroll inside their box.
                scroll_w = b.evaluate("document.documentElement.scrollWidth")
                self.assertLessEqual(scroll_w, width + 1, (path, width))
                w, _, colours = png_colours(b.screenshot())
                self.assertEqual(w, width)
                self.assertGreater(len(colours), 8, (path, width))
        b.navigate("http://127.0.0.1:%d/request/alt-1" % SERVE_PORT)
        text = b.evaluate("document.getElementById('live').innerText")
        self.assertIn("(A, B) \u00d7 6", text)  # the alternating N+1, folded
        self.assertIn("any(", text)  # the batched fix


def report_json(*extra):
    r = subprocess.run([PGTALLY, "report", "--db", PROXY.db_path, "--format", "json", "--top",
                        "10"] + list(extra), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# Cell texts of the rows (a selector) of the open page, row by row.
TABLE_JS = ("Array.from(document.querySelectorAll('%s')).map(function(r){"
            "return Array.from(r.cells).map(function(c){return c.innerText.trim()})})")


@unittest.skipUnless(CHROMIUM, "chromium is not installed")
class RenderedFigures(unittest.TestCase):
    """The findings' ranks and reasons, and rows and bytes, as Chromium renders them."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pgtally-serve-dom-")
        cls.browser = DevTools(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def open(self, path):
        self.browser.navigate("http://127.0.0.1:%d%s" % (SERVE_PORT, path))

    def table(self, selector):
        return self.browser.evaluate(TABLE_JS % selector)

    def test_findings_are_ranked_by_cost_with_the_reason_of_the_text_report(self):
        self.open("/")
        want = report_json()["top_findings"]
        rows = self.table("#findings tr.finding")
        whys = self.browser.evaluate("Array.from(document.querySelectorAll('#findings .why'))"
                                     ".map(function(p){return p.innerText})")
        self.assertGreaterEqual(len(want), 2)
        self.assertEqual([int(r[0]) for r in rows], [f["rank"] for f in want])
        self.assertEqual(whys, ["Why here: " + f["why"] for f in want])
        for row, f in zip(rows, want):
            self.assertEqual(int(row[3]), f["rows"])
            self.assertIn(f["worst_request"], row[5])
        # Every finding links to its request's timeline.
        hrefs = self.browser.evaluate(
            "Array.from(document.querySelectorAll('#findings tr.finding a'))"
            ".map(function(a){return a.getAttribute('href')})")
        for f in want:
            self.assertIn("/request/" + urllib.parse.quote(f["worst_request"], safe=""), hrefs)

    def test_hostile_text_stays_text_in_the_new_cells(self):
        self.open("/")
        rows = self.table("#findings tr.finding")
        evil = [r for r in rows if "evil-1" in r[5]]
        self.assertEqual(len(evil), 1, rows)
        self.assertIn("<script>alert(1)</script>\"'", evil[0][5])
        sql = self.table(".statements-totals tr")
        self.assertTrue(any(HOSTILE_IDENT in r[0] for r in sql), sql)
        self.assertEqual(self.browser.evaluate(
            "document.querySelectorAll('#findings script, .statements-totals script,"
            " #requests script, #routes script').length"), 0)
        self.assertEqual(self.browser.evaluate("document.scripts.length"), 1)

    def test_rows_and_bytes_per_route_request_and_statement(self):
        data = report_json()
        self.open("/")
        routes = self.table("#routes tr")
        self.assertEqual(routes[0][-2:], ["Rows", "Bytes"])
        by_route = {r[0]: r for r in routes[1:]}
        for r in data["routes"]:
            # As the pages show it: control bytes as \xNN.
            name = r["route"].replace("\x01", "\\x01").replace("\x1b", "\\x1b") or "(no route)"
            self.assertEqual(int(by_route[name][-2]), r["rows"], name)
        self.open("/route?name=%2Forders")
        requests = self.table("#requests tr")
        self.assertEqual(requests[0][-2:], ["rows", "bytes"])
        alt = [q for q in data["requests"] if q["id"] == "alt-1"][0]
        row = [r for r in requests if r[0] == "alt-1"][0]
        self.assertEqual(int(row[-2]), alt["rows"])
        self.assertTrue(row[-1].endswith("B"), row)
        fps = self.table(".statements-totals tr")
        self.assertEqual(fps[0][-2:], ["rows", "bytes"])
        self.assertTrue(any("items" in r[0] for r in fps[1:]), fps)
        self.assertFalse(any(HOSTILE_IDENT in r[0] for r in fps[1:]), fps)  # this route's only
        fp = [q for q in data["top_fingerprints_by_calls"]
              if "from items" in q["normalized"]][0]
        self.open("/fingerprint/" + fp["fingerprint"])
        totals = self.table("#fp-totals tr")
        self.assertEqual(totals[0][4:6], ["rows", "bytes"])
        self.assertEqual(int(totals[1][4]), fp["rows"])
        # The routes that run it: each route's own rows and bytes, as the JSON report has them.
        routes = self.table(".fp-routes tr")
        self.assertEqual(routes[0][-2:], ["rows", "bytes"])
        details = report_json("--fingerprint", fp["fingerprint"])["fingerprint_details"][0]
        self.assertEqual(len(routes) - 1, len(details["routes"]))
        for shown, r in zip(routes[1:], details["routes"]):
            self.assertEqual(int(shown[-2]), r["rows"], shown)
            self.assertTrue(shown[-1].endswith("B"), shown)
        self.assertEqual(sum(r["rows"] for r in details["routes"]), fp["rows"])

    def test_a_findings_row_as_rendered(self):
        self.open("/")
        dom = self.browser.evaluate("document.querySelector('#findings').outerHTML")
        keep = os.environ.get("KEEP_SERVE_DOM")
        if keep:
            with open(os.path.join(keep, "findings.html"), "w") as f:
                f.write(dom)
        self.assertIn('<p class="why">Why here: ', dom)


class Token(unittest.TestCase):
    def setUp(self):
        self.proc = subprocess.Popen(
            [PGTALLY, "serve", "--db", PROXY.db_path, "--listen", "127.0.0.1:0",
             "--serve-token", "s3cret-token"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)/$", line.strip())
        self.assertTrue(m, line + self.proc.stderr.read() if not m else "")
        self.port = int(m.group(1))

    def tearDown(self):
        self.proc.terminate()
        self.assertEqual(self.proc.wait(20), 0)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def test_token_is_required(self):
        for path in ("/", "/runs", "/api/version", "/request/alt-1"):
            self.assertEqual(get(self.port, path)[0], 401, path)
            self.assertEqual(get(self.port, path + ("&" if "?" in path else "?")
                                 + "token=wrong")[0], 401)
            self.assertEqual(get(self.port, path, {"Authorization": "Bearer s3cret-tokeX"})[0],
                             401)
            self.assertEqual(get(self.port, path, {"Authorization": "Bearer s3cret-token"})[0],
                             200, path)
        status, headers, page = get(self.port, "/?token=s3cret-token")
        self.assertEqual(status, 200)
        cookie = headers["Set-Cookie"].split(";")[0]
        self.assertEqual(cookie, "pgtally_token=s3cret-token")
        self.assertIn("HttpOnly", headers["Set-Cookie"])
        self.assertNotIn("s3cret-token", page)  # links never carry it
        statuses = crawl(self.port, {"Cookie": cookie})
        self.assertEqual({p: s for p, s in statuses.items() if s != 200}, {})
        self.assertGreater(len(statuses), 5)


class PostgresStore(unittest.TestCase):
    def test_serve_reads_a_postgres_store_and_sees_new_runs(self):
        cluster = h.module_cluster()
        name = "serve_store_%d" % time.monotonic_ns()
        cluster.admin_sql("CREATE DATABASE %s OWNER %s" % (name, h.TRUST_USER))
        url = "postgres://%s@127.0.0.1:%d/%s" % (h.TRUST_USER, cluster.port, name)
        PROXY.send_signal(__import__("signal").SIGUSR1)
        time.sleep(0.5)
        snapshot = os.path.join(tempfile.mkdtemp(prefix="pgtally-serve-pg-"), "copy.db")
        r = subprocess.run([PGTALLY, "merge", "-o", snapshot, PROXY.db_path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([PGTALLY, "merge", "--to", url, snapshot], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        proc = subprocess.Popen([PGTALLY, "serve", "--db", url, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = int(re.search(r":(\d+)/$", proc.stdout.readline().strip()).group(1))
            statuses = crawl(port)
            self.assertEqual({p: s for p, s in statuses.items() if s != 200}, {})
            self.assertIn("/request/alt-1", statuses)
            v1 = json.loads(get(port, "/api/version")[2])["version"]
            self.assertEqual(v1, json.loads(get(port, "/api/version")[2])["version"])
            # A second run pushed into the store: a new version, and the runs page shows it.
            other = os.path.join(os.path.dirname(snapshot), "other.db")
            p2 = h.Proxy(h.module_cluster(), extra_args=["--run-label", "pg-second"])
            p2.db_path = other
            p2.start()
            with psycopg.connect(p2.dsn(), autocommit=True) as conn:
                conn.execute("/*request_id='pg-second-1',route='%2Fsecond'*/ select 1")
            p2.stop()
            r = subprocess.run([PGTALLY, "merge", "--to", url, other], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            v2 = json.loads(get(port, "/api/version")[2])["version"]
            self.assertNotEqual(v1, v2)
            self.assertIn("pg-second", get(port, "/runs")[2])
            self.assertIn("pg-second-1", get(port, "/")[2])
        finally:
            proc.terminate()
            proc.wait(20)
            proc.stdout.close()
            proc.stderr.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
