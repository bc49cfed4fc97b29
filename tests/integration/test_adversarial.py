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

# The normalizer's side: a run of +/- operators costs linear work (tests/unit/test_sqlnorm.c
# bounds it per byte; here the real binary and proxy). Before the fix, the cost grew with the
# square of the run: 64 KiB took 6 s in `pgtally fingerprint`, 1 MiB would take half an hour,
# and the proxy's loop, every other client with it, stalled for a quarter of an hour.

class NormalizerOperatorRunTest(h.ProxyTestCase):
    """Defect 1: a 1 MiB `SELECT 1+-+-...` is normalized (CLI and proxy) while the proxy
    keeps serving another client."""

    # 1 MiB: far beyond what the quadratic code got through within the timeouts below on any
    # machine (with 256 KiB, an idle machine slipped under them), and milliseconds now.
    PAIRS = 512 * 1024
    RUN = "SELECT 1" + "+-" * PAIRS  # 1 MiB of operators
    RUN_NORMALIZED = "select $1 " + " ".join("+-" * PAIRS)
    # The same run where PostgreSQL's parser stops at once (`1 1` is a syntax error, and its
    # lexer is never asked for the run): the server answers in milliseconds, the proxy still
    # records and normalizes all of it. (PostgreSQL's own lexer is slow on RUN: at 256 KiB it
    # took 27 s to refuse it.)
    EARLY_ERROR = "SELECT 1 1" + "+-" * PAIRS
    EARLY_ERROR_NORMALIZED = "select $1 $2 " + " ".join("+-" * PAIRS)

    # the whole statement is kept and normalized, not the default 64 KiB prefix
    proxy_kwargs = {"extra_args": ["--max-sql-bytes", str(4 * 1024 * 1024)]}

    @staticmethod
    def fingerprint_cli(sql):
        """The one JSON object `pgtally fingerprint` prints for sql (one statement)."""
        import json
        # timeout: a hang guard only; linear work takes a fraction of a second
        r = subprocess.run([os.environ["PGTALLY_BIN"], "fingerprint"],
                           input=(sql + "\n").encode(), capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("pgtally fingerprint failed (%d): %r" % (r.returncode, r.stderr))
        lines = r.stdout.decode().splitlines()
        if len(lines) != 1:
            raise AssertionError("expected one statement, got %d lines" % len(lines))
        return json.loads(lines[0])

    def test_fingerprint_cli_normalizes_a_1m_operator_run(self):
        obj = self.fingerprint_cli(self.RUN)
        self.assertEqual(obj["normalized"], self.RUN_NORMALIZED)
        self.assertFalse(obj["incomplete"])

    def test_operator_run_relayed_and_recorded_while_a_bystander_is_served(self):
        # A generous socket timeout, only so that a stalled proxy ends the test: before the
        # fix the loop was busy for many minutes and these reads gave up; now, milliseconds.
        bystander = self.raw_client(timeout=60)
        culprit = self.raw_client(timeout=60)
        culprit.send(pgraw.query(self.EARLY_ERROR))
        before = bystander.simple("SELECT 'bystander during'")
        answer = culprit.read_until()
        after = bystander.simple("SELECT 'bystander after'")
        for msgs, text in ((before, "bystander during"), (after, "bystander after")):
            rows = [pgraw.datarow_values(body) for t, body in msgs if t == b"D"]
            self.assertEqual(rows, [[text]], "the bystander was answered")
        # PostgreSQL's syntax error, relayed as is.
        self.assertEqual([t for t, _ in answer], [b"E", b"Z"])
        self.assertEqual(pgraw.error_fields(answer[0][1])["C"], "42601")

        events = self.stop_proxy()
        cli = self.fingerprint_cli(self.EARLY_ERROR)
        self.assertEqual(cli["normalized"], self.EARLY_ERROR_NORMALIZED)
        runs = self.events_with_sql(events, "SELECT 1 1+-+-")
        self.assertEqual(len(runs), 1, "the culprit's statement is recorded once")
        ev = runs[0]
        self.assertEqual(ev["sql"], self.EARLY_ERROR)
        self.assertFalse(ev["sql_truncated"])
        self.assertEqual(ev["sqlstate"], "42601")
        self.assertEqual(ev["normalized"], self.EARLY_ERROR_NORMALIZED)
        self.assertEqual(ev["fingerprint"], cli["fingerprint"])
        self.assertEqual(len(self.events_with_sql(events, "bystander")), 2)



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

# (tests for defect 9 go here)



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
