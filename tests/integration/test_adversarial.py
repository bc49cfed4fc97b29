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

# (tests for defect 11 go here)



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
