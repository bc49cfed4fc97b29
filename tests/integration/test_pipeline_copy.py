"""libpq pipeline mode (with an error in the middle) and COPY in both directions through the
proxy: libpq's PQputCopyData/PQgetCopyData (tests/integration/libpq_client.c), psql's \\copy,
and a COPY FROM STDIN that the server fails half-way while the client is still sending.
"""

import os
import re

import pgharness as h


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


def kv(line):
    """'result X rows=3 value=1' -> {'rows': '3', 'value': '1'}"""
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


class PipelineTest(h.ProxyTestCase):

    def test_pipeline_with_error_in_the_middle(self):
        r = self.libpq_client("pipeline", self.proxy.dsn())
        self.assertEqual(r.stdout.splitlines(), [
            "result PGRES_TUPLES_OK rows=1 value=42",
            "result PGRES_TUPLES_OK rows=3 value=1",
            "result PGRES_COMMAND_OK",  # PQsendPrepare
            "result PGRES_TUPLES_OK rows=1 value=abc",
            "sync",
            "result PGRES_FATAL_ERROR sqlstate=22012",
            "result PGRES_PIPELINE_ABORTED",
            "sync",
            "result PGRES_TUPLES_OK rows=1 value=6",
            "sync",
        ])
        events = self.stop_proxy()
        got = [(e["sql"], e["statement"], e["rows"], e["sqlstate"]) for e in events]
        self.assertEqual(got, [
            ("select $1::int * 2 as pipeline_a", "", 1, None),
            ("select generate_series(1, 3) as pipeline_b", "", 3, None),
            ("select $1::text as pipeline_c", "pipeline_stmt", 1, None),
            ("select 1/0 as pipeline_err", "", 0, "22012"),
            ("select 6 as pipeline_after", "", 1, None),
        ])
        self.assertEqual({e["protocol"] for e in events}, {"extended"})
        self.assert_one_conn(events)


class CopyTest(h.ProxyTestCase):

    def make_table(self, name):
        self.psql("-c", "create table %s (id int primary key, val text)" % name)

    def test_copy_from_stdin_counts_rows(self):
        self.make_table("copy_in_t")
        r = self.libpq_client("copy-in", self.proxy.dsn(), "copy_in_t", "500")
        self.assertEqual(r.stdout.splitlines(), ["copy-in ok tuples=500", "count 500"])
        events = self.stop_proxy()
        copies = [e for e in events if e["command"] == "COPY"]
        self.assertEqual(len(copies), 1, events)
        self.assertEqual((copies[0]["sql"], copies[0]["rows"], copies[0]["bytes"]),
                         ("copy copy_in_t (id, val) from stdin", 500, 0))

    def test_copy_to_stdout_counts_rows_and_bytes(self):
        sql = "copy (select g, md5(g::text) from generate_series(1, 300) g) to stdout"
        r = self.libpq_client("copy-out", self.proxy.dsn(), sql)
        out = kv(r.stdout)
        self.assertTrue(r.stdout.startswith("copy-out PGRES_COMMAND_OK"), r.stdout)
        self.assertEqual((out["rows"], out["tuples"]), ("300", "300"))
        # The server sends one CopyData message per row: 5 header bytes each.
        wire_bytes = int(out["data_bytes"]) + 5 * int(out["rows"])
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["command"], events[0]["rows"], events[0]["bytes"],
                          events[0]["sql"]), ("COPY", 300, wire_bytes, sql))

    def test_copy_failing_half_way_gives_one_error_event(self):
        self.make_table("copy_fail_t")
        r = self.libpq_client("copy-in-fail", self.proxy.dsn(), "copy_fail_t", "2000")
        lines = r.stdout.splitlines()
        self.assertEqual(lines, ["copy-in PGRES_FATAL_ERROR sqlstate=22P02", "count 0"])
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "copy copy_fail_t")
        self.assertEqual(len(mine), 1, events)
        self.assertEqual((mine[0]["sqlstate"], mine[0]["command"]), ("22P02", None))
        # The connection carried on: the count after the failed COPY was logged too.
        counts = self.events_with_sql(events, "select count(*) from copy_fail_t")
        self.assertEqual([e["rows"] for e in counts], [1])
        self.assertEqual(counts[0]["conn"], mine[0]["conn"])

    def test_psql_backslash_copy_round_trip(self):
        self.make_table("copy_psql_t")
        src = os.path.join(self.cluster.tmpdir, "copy_src.tsv")
        dst = os.path.join(self.cluster.tmpdir, "copy_dst.tsv")
        with open(src, "w") as f:
            for i in range(1, 251):
                f.write("%d\tline %d\n" % (i, i))
        self.psql("-c", "\\copy copy_psql_t from '%s'" % src)
        self.psql("-c", "\\copy (select * from copy_psql_t order by id) to '%s'" % dst)
        with open(src) as a, open(dst) as b:
            self.assertEqual(a.read(), b.read())
        events = self.stop_proxy()
        copies = [e for e in events if e["command"] == "COPY"]
        self.assertEqual(len(copies), 2, events)
        self.assertEqual([e["rows"] for e in copies], [250, 250])
        self.assertEqual(copies[0]["bytes"], 0)
        self.assertEqual(copies[1]["bytes"], os.path.getsize(dst) + 5 * 250)
        self.assertRegex(copies[0]["sql"], re.compile(r"copy\s+copy_psql_t", re.I))

    def test_copy_error_in_multi_statement_query(self):
        # COPY FROM STDIN in a simple Query with statements before it: the COPY fails
        # (client sends CopyFail), the statements after it never run.
        self.make_table("copy_multi_t")
        r = self.psql("-c", "select 'copy_before'; copy copy_multi_t from stdin; "
                            "select 'copy_never'", input="1\tok\nx\tbad\n", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("invalid input syntax for type integer", r.stderr)
        events = self.events_with_sql(self.stop_proxy(), "copy_before")
        self.assertEqual([(e["index"], e["command"], e["sqlstate"]) for e in events],
                         [(0, "SELECT", None), (1, None, "22P02")])


if __name__ == "__main__":
    h.main()
