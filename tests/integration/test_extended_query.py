"""Extended query protocol through the proxy: psycopg 3 (server-side binding, named prepared
statements, executemany, server-side cursors), psycopg2, and hand-made message sequences over a
raw socket (Execute with a row limit -> PortalSuspended, Parse/Bind/Describe without Execute,
an error in a pipeline skipping the rest until Sync).
"""

import psycopg
import psycopg2

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster().admin_sql(
        "create table ext_items (id int primary key, name text);"
        "insert into ext_items select g, 'item ' || g from generate_series(1, 25) g;"
        "alter table ext_items owner to %s" % h.TRUST_USER, dbname=h.DBNAME)


def tearDownModule():
    h.stop_module_cluster()


class PsycopgTest(h.ProxyTestCase):

    def connect(self, **kw):
        conn = psycopg.connect(self.proxy.dsn(), autocommit=True, **kw)
        self.addCleanup(conn.close)
        return conn

    def test_server_side_binding_uses_unnamed_statement(self):
        conn = self.connect()
        row = conn.execute("select %s::int + 1 as ext_param", (41,)).fetchone()
        self.assertEqual(row, (42,))
        conn.close()
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, events)
        ev = events[0]
        self.assertEqual((ev["protocol"], ev["statement"], ev["sql"]),
                         ("extended", "", "select $1::int + 1 as ext_param"))
        self.assertEqual((ev["rows"], ev["command"], ev["executes"], ev["sqlstate"]),
                         (1, "SELECT", 1, None))
        self.assertGreater(ev["bytes"], 0)

    def test_prepared_statement_is_named_in_every_execution(self):
        conn = self.connect()
        got = [conn.execute("select id from ext_items where id <= %s order by id",
                            (n,), prepare=True).fetchall() for n in (1, 2, 3)]
        self.assertEqual(got, [[(1,)], [(1,), (2,)], [(1,), (2,), (3,)]])
        conn.close()
        events = self.stop_proxy()
        self.assertEqual(len(events), 3, events)
        names = {e["statement"] for e in events}
        self.assertEqual(len(names), 1)
        self.assertNotEqual(names.pop(), "", "prepare=True makes a named statement")
        self.assertEqual({e["sql"] for e in events},
                         {"select id from ext_items where id <= $1 order by id"})
        self.assertEqual([e["rows"] for e in events], [1, 2, 3])

    def test_automatic_preparation_keeps_sql_known(self):
        # psycopg prepares a statement on its own after prepare_threshold executions: the
        # later Bind/Execute carry only the name, and the log must still know the SQL.
        conn = self.connect(prepare_threshold=2)
        for n in range(6):
            self.assertEqual(conn.execute("select %s::int as auto_prep", (n,)).fetchone(),
                             (n,))
        conn.close()
        events = self.stop_proxy()
        self.assertEqual(len(events), 6, events)
        self.assertEqual({e["sql"] for e in events}, {"select $1::int as auto_prep"})
        self.assertTrue(any(e["statement"] not in ("", None) for e in events), events)

    def test_executemany_gives_one_event_per_row(self):
        conn = self.connect()
        conn.execute("create table ext_many (id int, v text)")
        with conn.cursor() as cur:
            cur.executemany("insert into ext_many values (%s, %s)",
                            [(i, "v%d" % i) for i in range(20)])
        self.assertEqual(conn.execute("select count(*) from ext_many").fetchone(), (20,))
        conn.close()
        events = self.stop_proxy()
        inserts = self.events_with_sql(events, "insert into ext_many")
        self.assertEqual(len(inserts), 20, events)
        self.assertEqual({(e["command"], e["rows"], e["sqlstate"]) for e in inserts},
                         {("INSERT", 1, None)})

    def test_failing_statement_gives_one_event_with_sqlstate(self):
        conn = self.connect()
        with self.assertRaises(psycopg.errors.UndefinedTable):
            conn.execute("select * from ext_no_such_table where id = %s", (1,))
        self.assertEqual(conn.execute("select 'ext_after_error'").fetchone(),
                         ("ext_after_error",))
        conn.close()
        events = self.stop_proxy()
        self.assertEqual([(e["sqlstate"], e["command"]) for e in events],
                         [("42P01", None), (None, "SELECT")])
        self.assertEqual(events[0]["sql"], "select * from ext_no_such_table where id = $1")

    def test_server_side_cursor_fetches_sum_to_all_rows(self):
        conn = psycopg.connect(self.proxy.dsn())
        self.addCleanup(conn.close)
        with conn.cursor(name="ext_named_cursor") as cur:
            cur.itersize = 10
            cur.execute("select id from ext_items order by id")
            ids = [r[0] for r in cur]
        conn.commit()
        conn.close()
        self.assertEqual(ids, list(range(1, 26)))
        events = self.stop_proxy()
        fetches = [e for e in events if e["command"] == "FETCH"]
        self.assertGreaterEqual(len(fetches), 3, events)
        self.assertEqual(sum(e["rows"] for e in fetches), 25)



    # psycopg 3 sends a parameterless COPY as a simple Query; the raw tests below do COPY
    # in the extended protocol.
    def test_psycopg_copy_from_stdin(self):
        conn = self.connect()
        conn.execute("create table ext_copy_in (id int, v text)")
        with conn.cursor() as cur:
            with cur.copy("copy ext_copy_in (id, v) from stdin") as cp:
                for i in range(120):
                    cp.write_row((i, "row %d" % i))
        self.assertEqual(conn.execute("select count(*) from ext_copy_in").fetchone(), (120,))
        conn.close()
        events = self.stop_proxy()
        copies = [e for e in events if e["command"] == "COPY"]
        self.assertEqual([(e["rows"], e["sqlstate"]) for e in copies], [(120, None)])
        self.assertEqual([e["rows"] for e in self.events_with_sql(events, "count(*)")], [1])

    def test_psycopg_copy_to_stdout(self):
        conn = self.connect()
        with conn.cursor() as cur:
            with cur.copy("copy (select id, name from ext_items order by id) to stdout") as cp:
                rows = list(cp.rows())
        self.assertEqual(len(rows), 25)
        conn.close()
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["rows"]) for e in events], [("COPY", 25)])
        self.assertGreater(events[0]["bytes"], 0)

    def test_psycopg_copy_from_stdin_failing_half_way(self):
        conn = self.connect()
        conn.execute("create table ext_copy_fail (id int)")
        with self.assertRaises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor() as cur:
                with cur.copy("copy ext_copy_fail from stdin") as cp:
                    for i in range(50):
                        cp.write("%d\n" % i)
                    cp.write("oops\n")
                    for i in range(500):
                        cp.write("%d\n" % i)
        self.assertEqual(conn.execute("select count(*) from ext_copy_fail").fetchone(), (0,))
        conn.close()
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "copy ext_copy_fail")
        self.assertEqual([(e["sqlstate"], e["command"]) for e in mine], [("22P02", None)])
        self.assertEqual([e["rows"] for e in self.events_with_sql(events, "count(*)")], [1])


class Psycopg2Test(h.ProxyTestCase):

    def test_transaction_statements_are_simple_queries(self):
        conn = psycopg2.connect(self.proxy.dsn())
        cur = conn.cursor()
        cur.execute("select %s as pg2_marker", ("pg2",))
        self.assertEqual(cur.fetchall(), [("pg2",)])
        conn.commit()
        conn.close()
        events = self.stop_proxy()
        self.assertEqual([(e["protocol"], e["command"]) for e in events],
                         [("simple", "BEGIN"), ("simple", "SELECT"), ("simple", "COMMIT")])
        self.assertEqual(events[1]["sql"], "select 'pg2' as pg2_marker")
        self.assertEqual(len({e["conn"] for e in events}), 1)

    def test_executemany_row_counts(self):
        conn = psycopg2.connect(self.proxy.dsn())
        cur = conn.cursor()
        cur.execute("create table pg2_many (id int)")
        cur.executemany("insert into pg2_many values (%s)", [(i,) for i in range(10)])
        cur.execute("update pg2_many set id = -id where id < 3")
        self.assertEqual(cur.rowcount, 3)
        conn.commit()
        conn.close()
        events = self.stop_proxy()
        inserts = self.events_with_sql(events, "insert into pg2_many")
        self.assertEqual(len(inserts), 10, events)
        self.assertTrue(all(e["rows"] == 1 for e in inserts))
        self.assertEqual([e["rows"] for e in self.events_with_sql(events, "update pg2_many")],
                         [3])


class RawExtendedTest(h.ProxyTestCase):

    def test_row_limited_executes_give_one_event_with_total_rows(self):
        c = self.raw_client()
        sql = "select g as suspended from generate_series(1, 5) g"
        c.send(pgraw.parse("", sql) + pgraw.bind("", "") + pgraw.execute("", 2)
               + pgraw.execute("", 2) + pgraw.execute("", 2) + pgraw.sync())
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"12DDsDDsDCZ")
        data_bytes = sum(pgraw.wire_size(b) for t, b in msgs if t == b"D")
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, events)
        ev = events[0]
        self.assertEqual((ev["protocol"], ev["statement"], ev["sql"]), ("extended", "", sql))
        self.assertEqual((ev["rows"], ev["executes"], ev["bytes"], ev["command"]),
                         (5, 3, data_bytes, "SELECT"))

    def test_row_limited_named_portal_across_syncs(self):
        # A named portal inside a transaction block survives Sync: one run, three Syncs.
        c = self.raw_client()
        c.simple("begin")
        sql = "select g as suspended_named from generate_series(1, 3) g"
        c.send(pgraw.parse("st_named", sql) + pgraw.bind("p_named", "st_named")
               + pgraw.execute("p_named", 2) + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"12DDsZ")
        c.send(pgraw.execute("p_named", 2) + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"DCZ")
        c.simple("commit")
        events = self.stop_proxy()
        runs = self.events_with_sql(events, "suspended_named")
        self.assertEqual(len(runs), 1, events)
        self.assertEqual((runs[0]["statement"], runs[0]["rows"], runs[0]["executes"]),
                         ("st_named", 3, 2))

    def test_parse_bind_describe_alone_give_no_event(self):
        c = self.raw_client()
        c.send(pgraw.parse("st_only", "select 1 as never_executed")
               + pgraw.describe(b"S", "st_only") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"1tTZ")
        c.send(pgraw.bind("portal_only", "st_only") + pgraw.describe(b"P", "portal_only")
               + pgraw.close(b"P", "portal_only") + pgraw.close(b"S", "st_only")
               + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"2T33Z")
        c.simple("select 'describe_marker'")
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], ["select 'describe_marker'"])

    def test_error_skips_rest_of_pipeline_until_sync(self):
        c = self.raw_client()
        c.send(pgraw.parse("", "select 'pipe_first'") + pgraw.bind("", "")
               + pgraw.execute("")
               # fails at run time, after one row: g = 2 divides by zero
               + pgraw.parse("", "select 1 / (g - 2) as pipe_err from generate_series(1, 3) g")
               + pgraw.bind("", "") + pgraw.execute("")
               + pgraw.parse("", "select 'pipe_skipped'") + pgraw.bind("", "")
               + pgraw.execute("") + pgraw.sync()
               + pgraw.parse("", "select 'pipe_after_sync'") + pgraw.bind("", "")
               + pgraw.execute("") + pgraw.sync())
        first = c.read_until()
        self.assertEqual(pgraw.types_of(first), b"12DC12DEZ")
        self.assertEqual(pgraw.first_error(first)["C"], "22012")
        self.assertEqual(pgraw.types_of(c.read_until()), b"12DCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["sql"], e["sqlstate"]) for e in events],
                         [("select 'pipe_first'", None),
                          ("select 1 / (g - 2) as pipe_err from generate_series(1, 3) g",
                           "22012"),
                          ("select 'pipe_after_sync'", None)])
        self.assertIsNone(events[1]["command"])

    def test_flush_gets_answers_before_sync(self):
        # Flush must be forwarded at once: the client waits for ParseComplete before Sync.
        c = self.raw_client()
        c.send(pgraw.parse("st_flush", "select 'flushed'") + pgraw.flush())
        self.assertEqual(c.read_msg()[0], b"1")
        c.send(pgraw.bind("", "st_flush") + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"2DCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["statement"], e["sql"], e["rows"]) for e in events],
                         [("st_flush", "select 'flushed'", 1)])

    def test_unnamed_statement_replaced_by_next_parse(self):
        c = self.raw_client()
        c.send(pgraw.parse("", "select 'unnamed_one'") + pgraw.bind("", "")
               + pgraw.execute("") + pgraw.parse("", "select 'unnamed_two', 2")
               + pgraw.bind("", "") + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"12DC12DCZ")
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events],
                         ["select 'unnamed_one'", "select 'unnamed_two', 2"])

    def test_statement_name_reused_after_close_logs_new_sql(self):
        c = self.raw_client()
        for sql in ("select 'reused_first'", "select 'reused_second', 2"):
            c.send(pgraw.parse("st_reused", sql) + pgraw.bind("", "st_reused")
                   + pgraw.execute("") + pgraw.close(b"S", "st_reused") + pgraw.sync())
            self.assertEqual(pgraw.types_of(c.read_until()), b"12DC3Z")
        events = self.stop_proxy()
        self.assertEqual([(e["statement"], e["sql"]) for e in events],
                         [("st_reused", "select 'reused_first'"),
                          ("st_reused", "select 'reused_second', 2")])

    def test_statement_name_reused_after_deallocate_logs_new_sql(self):
        c = self.raw_client()
        c.send(pgraw.parse("st_dealloc", "select 'dealloc_first'") + pgraw.sync())
        c.read_until()
        c.simple("deallocate st_dealloc")
        c.send(pgraw.parse("st_dealloc", "select 'dealloc_second'") + pgraw.bind("", "st_dealloc")
               + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"12DCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["statement"], e["sql"]) for e in events],
                         [(None, "deallocate st_dealloc"),
                          ("st_dealloc", "select 'dealloc_second'")])

    def test_named_statement_bound_twice_gives_two_runs(self):
        c = self.raw_client()
        c.send(pgraw.parse("st_twice", "select $1::int * 3 as twice", (23,))
               + pgraw.bind("", "st_twice", ["1"]) + pgraw.execute("")
               + pgraw.bind("", "st_twice", ["2"]) + pgraw.execute("") + pgraw.sync())
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"12DC2DCZ")
        self.assertEqual([pgraw.datarow_values(b) for t, b in msgs if t == b"D"],
                         [["3"], ["6"]])
        events = self.stop_proxy()
        self.assertEqual([(e["statement"], e["rows"], e["executes"]) for e in events],
                         [("st_twice", 1, 1), ("st_twice", 1, 1)])


    def test_empty_query_in_extended_protocol_gives_no_event(self):
        c = self.raw_client()
        c.send(pgraw.parse("", "") + pgraw.bind("", "") + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"12IZ")
        c.simple("select 'after_empty_extended'")
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], ["select 'after_empty_extended'"])

    def test_row_limit_reached_exactly_then_empty_execute(self):
        # 4 rows, limit 2: the server cannot know the second batch was the last, so a third
        # Execute returns no rows and the CommandComplete.
        c = self.raw_client()
        c.send(pgraw.parse("", "select generate_series(1, 4) as exact_limit")
               + pgraw.bind("", "") + pgraw.execute("", 2) + pgraw.execute("", 2)
               + pgraw.execute("", 2) + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"12DDsDDsCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["rows"], e["executes"], e["command"]) for e in events],
                         [(4, 3, "SELECT")])
    def test_copy_from_stdin_in_extended_protocol(self):
        # The Sync after Execute arrives in COPY mode, where the server ignores it; the
        # client sends another after CopyDone (as libpq does), and only that one is answered.
        c = self.raw_client()
        c.simple("create table raw_copy_in (id int)")
        c.send(pgraw.parse("", "copy raw_copy_in from stdin") + pgraw.bind("", "")
               + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until((b"G",))), b"12G")
        c.send(b"".join(pgraw.msg(b"d", b"%d\n" % i) for i in range(77))
               + pgraw.msg(b"c") + pgraw.sync())
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"CZ")
        self.assertEqual(pgraw.command_tag(msgs[0][1]), "COPY 77")
        c.simple("select 'after_raw_copy'")
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "copy raw_copy_in")
        self.assertEqual([(e["protocol"], e["command"], e["rows"], e["bytes"]) for e in mine],
                         [("extended", "COPY", 77, 0)])
        self.assertEqual(len(self.events_with_sql(events, "after_raw_copy")), 1, events)

    def test_copy_failing_in_extended_protocol(self):
        c = self.raw_client()
        c.simple("create table raw_copy_fail (id int)")
        c.send(pgraw.parse("", "copy raw_copy_fail from stdin") + pgraw.bind("", "")
               + pgraw.execute("") + pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until((b"G",))), b"12G")
        rows = [b"%d\n" % i for i in range(50)] + [b"bad\n"] + [b"%d\n" % i for i in range(500)]
        c.send(b"".join(pgraw.msg(b"d", r) for r in rows) + pgraw.msg(b"c") + pgraw.sync())
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"EZ")
        self.assertEqual(pgraw.first_error(msgs)["C"], "22P02")
        msgs = c.simple("select count(*) from raw_copy_fail")
        self.assertEqual(pgraw.datarow_values(msgs[1][1]), ["0"])
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "copy raw_copy_fail")
        self.assertEqual([(e["sqlstate"], e["command"]) for e in mine], [("22P02", None)])
        self.assertEqual([e["rows"] for e in self.events_with_sql(events, "count(*)")], [1])

    def test_copy_to_stdout_in_extended_protocol(self):
        c = self.raw_client()
        c.send(pgraw.parse("", "copy (select g from generate_series(1, 30) g) to stdout")
               + pgraw.bind("", "") + pgraw.execute("") + pgraw.sync())
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"12H" + b"d" * 30 + b"cCZ")
        data_bytes = sum(pgraw.wire_size(b) for t, b in msgs if t == b"d")
        events = self.stop_proxy()
        self.assertEqual([(e["protocol"], e["command"], e["rows"], e["bytes"]) for e in events],
                         [("extended", "COPY", 30, data_bytes)])


if __name__ == "__main__":
    h.main()
