#!/usr/bin/python3
"""`pgtally report --format html` rendered by headless Chromium: the SVG charts are in the DOM
after rendering, the page makes no network requests, and the screenshot is not blank (more
than a handful of colours, decoded with zlib: stdlib only). Skips (exit 77) only when chromium
is not installed. Set KEEP_SCREENSHOT=DIR to keep the PNG for a look."""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

PGTALLY = os.environ.get("PGTALLY_BIN", "pgtally")
FIXTURE = os.environ.get("MAKE_REPORT_FIXTURE", "make_report_fixture")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(args, tmp):
    profile = tempfile.mkdtemp(prefix="profile-", dir=tmp)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--user-data-dir=" + profile] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_pixels(path):
    """(width, height, set of RGB(A) pixel tuples) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    i = 0
    for _ in range(height):
        ftype = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp * 7):  # every 7th pixel is plenty to count colours
            colours.add(bytes(line[x:x + 3]))
        prev = line
    return width, height, colours


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
        r = chromium(["--dump-dom", "file://" + self.html], self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        dom = r.stdout
        for chart in ("chart-routes", "chart-calls", "chart-time", "timeline-0"):
            self.assertIn('id="%s"' % chart, dom)
        self.assertGreaterEqual(dom.count("<rect"), 20)
        self.assertIn("&lt;b&gt;&amp;", dom)  # the odd route stayed text
        self.assertNotIn("<b>&amp;", dom)

    def test_screenshot_is_not_blank(self):
        png = os.path.join(self.tmp, "report.png")
        r = chromium(["--screenshot=" + png, "--window-size=1200,2000", "--hide-scrollbars",
                      "file://" + self.html], self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertTrue(os.path.exists(png), r.stderr[-2000:])
        width, height, colours = png_pixels(png)
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
