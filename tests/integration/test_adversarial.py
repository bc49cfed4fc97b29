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

class KilledProxyVerdictTest(h.ProxyTestCase):
    """A SIGUSR1 snapshot no longer vouches for a run whose proxy died or saw more since."""

    # requests stay open until their connection closes: nothing reaches the file after the
    # snapshot, so only the heartbeat (and the proxy's death) can tell
    proxy_kwargs = {"extra_args": ["--request-gap", "600"]}

    def _open_session(self, sql):
        """psql on a connection kept open after `sql` ran (its request never ends)."""
        p = subprocess.Popen([h.pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                              self.proxy.dsn()], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        p.stdin.write(sql + "\\echo d13-done\n")
        p.stdin.flush()
        line = ""
        while "d13-done" not in line:
            line = p.stdout.readline()
            self.assertTrue(line, "psql ended early")
        self.track(p.stdin)
        self.addCleanup(p.kill)
        return p

    def _budget(self):
        path = os.path.join(self.cluster.tmpdir, "d13-budget-%d.ini" % os.getpid())
        with open(path, "w") as f:
            f.write("[defaults]\nmax_queries = 50\nmax_n_plus_one = 0\n")
        return path

    def _check(self, budget):
        return subprocess.run([os.environ["PGTALLY_BIN"], "check", "--db", self.proxy.db_path,
                               "--budget", budget], capture_output=True, text=True, timeout=60)

    def _snapshot(self, budget):
        self.proxy.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        r = self._check(budget)
        while r.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = self._check(budget)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_snapshot_then_sigkill_with_unrecorded_n_plus_one_is_incomplete(self):
        budget = self._budget()
        self.psql("-c", "/*request_id='d13a',route='%2Fok'*/ select 1")
        self._snapshot(budget)
        # a 12-call N+1 in a request still open when the proxy is killed: never recorded
        sql = "".join("/*request_id='d13b',route='%%2Fnplus'*/ select %d;\n" % i
                      for i in range(12))
        self._open_session(sql)
        self.proxy.stop(sig=signal.SIGKILL)  # before any heartbeat can show the N+1
        r = self._check(budget)
        self.assertEqual(r.returncode, 1, "check trusted a dead proxy's snapshot:\n" +
                         r.stdout + r.stderr)
        self.assertIn("incomplete", (r.stdout + r.stderr).lower())

    def test_statements_seen_after_the_snapshot_make_it_stale(self):
        budget = self._budget()
        self.psql("-c", "/*request_id='d13c',route='%2Fok'*/ select 1")
        self._snapshot(budget)
        # a request still open: only the heartbeat shows it
        self._open_session("/*request_id='d13d',route='%2Fok'*/ select 2;\n")
        deadline = time.monotonic() + 15
        r = self._check(budget)
        while r.returncode != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = self._check(budget)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.stop_proxy()


class FailedStartAddsNoRunTest(h.unittest.TestCase):
    """A proxy that cannot bind its ports exits without touching the report store."""

    def _runs(self, db):
        import sqlite3
        if not os.path.exists(db):
            return 0
        con = sqlite3.connect(db)
        try:
            return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # no tables yet
        finally:
            con.close()

    def _start_fails(self, extra):
        cluster = h.module_cluster()
        db = os.path.join(cluster.tmpdir, "d13-failed-start-%d.db" % time.monotonic_ns())
        r = subprocess.run([os.environ["PGTALLY_BIN"], "proxy", "--upstream",
                            "127.0.0.1:%d" % cluster.port, "--db", db] + extra,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self._runs(db), 0, "a proxy that never started added a run")

    def test_listen_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            self._start_fails(["--listen", "127.0.0.1:%d" % busy.getsockname()[1]])

    def test_metrics_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            self._start_fails(["--listen", "127.0.0.1:%d" % h.free_port(),
                               "--metrics", "127.0.0.1:%d" % busy.getsockname()[1]])



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
