"""Adversarial tests (issue 9): one section per defect an audit reproduced against the proxy.

Each test drives the real binary against a real PostgreSQL, as the attacker did, and fails on
the code before its fix. Each section names the defect it guards against.
"""

import os
import signal
import socket
import struct
import subprocess
import time

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()



# ----------------------------------------------------------------------------------------------
# Defect 1: Quadratic normalizer on the loop, and nothing normalized before authentication
# ----------------------------------------------------------------------------------------------

# (tests for defect 1 go here)



# ----------------------------------------------------------------------------------------------
# Defect 2: Memory held per connection by messages the server skips until Sync; byte bounds
# ----------------------------------------------------------------------------------------------

# (tests for defect 2 go here)



# ----------------------------------------------------------------------------------------------
# Defect 3: Tracking resumes after a desync found at ReadyForQuery
# ----------------------------------------------------------------------------------------------

# (tests for defect 3 go here)



# ----------------------------------------------------------------------------------------------
# Defect 4: Skipped messages are never matched to later replies (forged records)
# ----------------------------------------------------------------------------------------------

# (tests for defect 4 go here)



# ----------------------------------------------------------------------------------------------
# Defect 5: SASL mechanism-list rewrite bounded (TLS on one leg)
# ----------------------------------------------------------------------------------------------

# (tests for defect 5 go here)



# ----------------------------------------------------------------------------------------------
# Defect 6: replication= follows PostgreSQL's parse_bool exactly
# ----------------------------------------------------------------------------------------------

# (tests for defect 6 go here)



# ----------------------------------------------------------------------------------------------
# Defect 7: Query log, report -o and check --junit files are created 0600
# ----------------------------------------------------------------------------------------------

# (tests for defect 7 go here)



# ----------------------------------------------------------------------------------------------
# Defect 8: Control bytes and fences in text and Markdown output
# ----------------------------------------------------------------------------------------------

# (tests for defect 8 go here)



# ----------------------------------------------------------------------------------------------
# Defect 9: Metrics scrape served within 1 s while idle sockets hold connections
# ----------------------------------------------------------------------------------------------

import urllib.request  # noqa: E402  (kept in this section: the sections merge independently)


class MetricsEndpointUnderIdleSockets(h.ProxyTestCase):
    """Sockets that connect to the metrics port and send nothing, or only part of a request,
    once held every slot of the endpoint for seconds each while scrapes queued behind them."""

    IDLE = 50  # far more than the endpoint ever kept slots for

    def setUp(self):
        self.metrics_port = h.free_port()
        self.proxy_kwargs = {"extra_args": ["--metrics", "127.0.0.1:%d" % self.metrics_port]}
        super().setUp()

    def open_idle(self, first_bytes=b""):
        socks = []
        for _ in range(self.IDLE):
            s = self.track(socket.create_connection(("127.0.0.1", self.metrics_port), timeout=3))
            if first_bytes:
                s.sendall(first_bytes)
            socks.append(s)
        return socks

    def scrape(self):
        # Prometheus gives up after 10 s by default; 3 s still leaves the proxy ample room.
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=3) as r:
            return r.status, r.read().decode()

    def test_scrape_is_served_while_idle_sockets_are_open(self):
        idle = self.open_idle()
        status, text = self.scrape()
        self.assertEqual(status, 200)
        self.assertIn("pgtally_build_info", text)
        self.assertEqual(len(idle), self.IDLE)  # still open on our side while scraping

    def test_scrape_is_served_while_partial_requests_are_open(self):
        self.open_idle(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        status, text = self.scrape()
        self.assertEqual(status, 200)
        self.assertIn("pgtally_client_connections", text)

    def test_idle_sockets_are_closed_without_a_response(self):
        for s in self.open_idle():
            # Within the 3 s socket timeout: the server, not our side, ends every one.
            try:
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
        status, _ = self.scrape()
        self.assertEqual(status, 200)



# ----------------------------------------------------------------------------------------------
# Defect 10: Request table hash seeded at start (no offline hash flooding)
# ----------------------------------------------------------------------------------------------

# (tests for defect 10 go here)



# ----------------------------------------------------------------------------------------------
# Defect 11: Settings JSON escaped; over-long config lines refused clearly
# ----------------------------------------------------------------------------------------------

import json  # noqa: E402  (kept in this section: the sections merge independently)
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

HOSTILE = 'q"uote\\back\\\\slash\x01ctl\nnl'


class SettingsJsonAndConfigLines(unittest.TestCase):
    """The settings stored with each run were built with printf: an upstream socket path or
    host holding '"' or '\\' made invalid JSON, and the proxy refused to start. Config-file
    lines longer than libinih's 199-byte buffer were split, the rest parsed as a line of its
    own."""

    def setUp(self):
        self.cluster = h.module_cluster()
        self.tmp = tempfile.mkdtemp(prefix="pgtally-d11-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_proxy(self, upstream, *extra):
        proxy = h.Proxy(self.cluster, upstream=upstream, extra_args=list(extra)).start()
        self.addCleanup(proxy.kill)
        return proxy

    def stored_run(self, proxy):
        res = proxy.stop()
        self.assertEqual(res.returncode, 0, res.stderr)
        with sqlite3.connect(proxy.db_path) as db:
            settings, label, instance = db.execute(
                "SELECT settings, label, instance FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return json.loads(settings), label, instance

    def test_hostile_socket_dir_label_and_instance_are_stored_exactly(self):
        # A real socket directory with '"', '\' and a control byte in its name, holding a
        # link to the cluster's socket: the proxy must start, relay and record.
        sockdir = os.path.join(self.tmp, 'so"ck\\et\x01dir')
        os.mkdir(sockdir)
        os.symlink(os.path.join(self.cluster.sockdir, ".s.PGSQL.%d" % self.cluster.port),
                   os.path.join(sockdir, ".s.PGSQL.5432"))
        proxy = self.start_proxy(sockdir, "--run-label", HOSTILE, "--instance", HOSTILE + "2")
        r = subprocess.run([h.pgbin("psql"), "-X", "-At", "-d", proxy.dsn(), "-c", "select 41+1"],
                           capture_output=True, text=True, timeout=60, env=h.client_env())
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "42"), r.stderr)
        settings, label, instance = self.stored_run(proxy)
        self.assertEqual(settings["upstream"], sockdir + "/.s.PGSQL.5432")
        self.assertEqual(settings["db"], proxy.db_path)
        self.assertEqual(label, HOSTILE)
        self.assertEqual(instance, HOSTILE + "2")

    def test_hostile_host_and_passwords_never_reach_the_settings(self):
        # The host does not resolve: the proxy starts anyway and retries for each client.
        proxy = self.start_proxy(
            "postgres://u:s3cret@h%22x%5Cy:1/db?sslpassword=s3cret2&application_name=a")
        settings, _, _ = self.stored_run(proxy)
        self.assertEqual(settings["upstream"], 'h"x\\y:1')
        self.assertNotIn("s3cret", json.dumps(settings))

    def config_run(self, lines):
        path = os.path.join(self.tmp, "pgtally.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--config", path,
                            "--upstream", "127.0.0.1:1", "--help"],
                           capture_output=True, text=True, timeout=30)
        return path, r

    def test_config_line_longer_than_the_limit_names_file_and_line(self):
        # The tail of the long value looks like a setting of its own: it must not be taken.
        value = "a" * 250 + " grace = 2"
        path, r = self.config_run(["[proxy]", "; a comment", "run_label = " + value])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: line longer than 199 bytes" % path, r.stderr)

    def test_config_line_at_the_limit_is_read_whole_and_numbered(self):
        line = "run_label = " + "a" * (199 - len("run_label = "))
        path, r = self.config_run(["[proxy]", line, "grace = 2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        path, r = self.config_run(["[proxy]", line, "no_such_setting = 1"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('%s:3: unknown setting "no_such_setting"' % path, r.stderr)



# ----------------------------------------------------------------------------------------------
# Defect 12: A statement whose tags name another request starts a new request
# ----------------------------------------------------------------------------------------------

# (tests for defect 12 go here)



# ----------------------------------------------------------------------------------------------
# Defect 13: Verdicts: killed proxies, failed starts and completeness
# ----------------------------------------------------------------------------------------------

# (tests for defect 13 go here)



# ----------------------------------------------------------------------------------------------
# Defect 14: Refused clients see 53300 after SSLRequest; refusals logged
# ----------------------------------------------------------------------------------------------

# (tests for defect 14 go here)



# ----------------------------------------------------------------------------------------------
# Defect 15: Signals before handlers are installed
# ----------------------------------------------------------------------------------------------

# (tests for defect 15 go here)



if __name__ == "__main__":
    h.main()
