"""pgbench through the proxy: initialization (COPY of pgbench_accounts) and the TPC-B-like
script in each query mode (-M simple | extended | prepared). The query log must hold every
script statement exactly once per transaction pgbench reports, with the right row counts.
"""

import re
import subprocess

import pgharness as h

CLIENTS = 2
TXNS_PER_CLIENT = 50

# The built-in tpcb-like script, statement by statement: (pattern on the SQL, command tag
# word, rows). BEGIN/END carry no rows.
TPCB_STATEMENTS = [
    (r"^\s*BEGIN", "BEGIN", 0),
    (r"^\s*UPDATE pgbench_accounts", "UPDATE", 1),
    (r"^\s*SELECT abalance FROM pgbench_accounts", "SELECT", 1),
    (r"^\s*UPDATE pgbench_tellers", "UPDATE", 1),
    (r"^\s*UPDATE pgbench_branches", "UPDATE", 1),
    (r"^\s*INSERT INTO pgbench_history", "INSERT", 1),
    (r"^\s*END", "COMMIT", 0),
]


def setUpModule():
    c = h.module_cluster()
    r = subprocess.run([h.pgbin("pgbench"), "-i", "-s", "1", "-q", "-h", "127.0.0.1",
                        "-p", str(c.port), "-U", h.TRUST_USER, h.DBNAME],
                       capture_output=True, text=True, env=h.client_env())
    if r.returncode != 0:
        raise RuntimeError("pgbench -i failed: %s" % r.stderr)


def tearDownModule():
    h.stop_module_cluster()


class PgbenchTest(h.ProxyTestCase):

    def pgbench(self, *args, timeout=120):
        r = subprocess.run([h.pgbin("pgbench"), "-h", "127.0.0.1", "-p", str(self.proxy.port),
                            "-U", h.TRUST_USER] + list(args) + [h.DBNAME],
                           capture_output=True, text=True, env=h.client_env(), timeout=timeout)
        self.assertEqual(r.returncode, 0, "pgbench failed:\n%s\n%s" % (r.stdout, r.stderr))
        return r

    def run_mode(self, mode):
        r = self.pgbench("-n", "-M", mode, "-c", str(CLIENTS), "-j", "1",
                         "-t", str(TXNS_PER_CLIENT))
        m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        processed = int(m.group(1))
        self.assertEqual(processed, CLIENTS * TXNS_PER_CLIENT, r.stdout)
        events = self.stop_proxy()
        protocol = "simple" if mode == "simple" else "extended"
        script_events = 0
        for pattern, command, rows in TPCB_STATEMENTS:
            mine = [e for e in events if e["sql"] and re.match(pattern, e["sql"], re.I)]
            self.assertEqual(len(mine), processed, "%s: %d events, %d transactions"
                             % (pattern, len(mine), processed))
            self.assertEqual({(e["command"], e["rows"], e["sqlstate"]) for e in mine},
                             {(command, rows, None)}, pattern)
            self.assertEqual({e["protocol"] for e in mine}, {protocol}, pattern)
            if mode == "prepared":
                self.assertNotIn("", {e["statement"] for e in mine}, pattern)
            elif mode == "extended":
                self.assertEqual({e["statement"] for e in mine}, {""}, pattern)
            script_events += len(mine)
        # The script ran on CLIENTS connections, besides pgbench's own setup connection.
        script_conns = {e["conn"] for e in events
                        if e["sql"] and re.match(TPCB_STATEMENTS[1][0], e["sql"], re.I)}
        self.assertEqual(len(script_conns), CLIENTS)
        return events

    def test_simple_mode_logs_every_statement(self):
        events = self.run_mode("simple")
        # Simple mode sends the values inline: the SQL differs per execution.
        selects = [e["sql"] for e in events if e["sql"].startswith("SELECT abalance")]
        self.assertNotIn("$1", selects[0])

    def test_extended_mode_logs_every_statement(self):
        events = self.run_mode("extended")
        selects = {e["sql"] for e in events if e["sql"].startswith("SELECT abalance")}
        self.assertEqual(len(selects), 1, "one parameterized text: %r" % selects)
        self.assertIn("$1", selects.pop())

    def test_prepared_mode_logs_every_statement(self):
        events = self.run_mode("prepared")
        # Prepared once per connection, executed by name afterwards: the SQL still known.
        names = {e["statement"] for e in events if e["sql"].startswith("SELECT abalance")}
        self.assertGreaterEqual(len(names), 1)

    def test_init_copy_goes_through_proxy(self):
        self.pgbench("-i", "-s", "1", "-q")
        n = self.cluster.admin_sql("select count(*) from pgbench_accounts", dbname=h.DBNAME)
        events = self.stop_proxy()
        copies = [e for e in events if e["command"] == "COPY"]
        self.assertEqual(len(copies), 1, events)
        self.assertRegex(copies[0]["sql"], r"(?i)^copy pgbench_accounts")
        self.assertEqual(copies[0]["rows"], int(n))
        # bytes counts what the server sent; in COPY FROM the data flows the other way.
        self.assertEqual(copies[0]["bytes"], 0)


if __name__ == "__main__":
    h.main()
