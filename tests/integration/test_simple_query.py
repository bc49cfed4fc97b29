"""Simple query protocol through the proxy: results reach the client unchanged and the query log
has exactly one event per executed statement (multi-statement Query, empty query, errors,
DML row counts, cursors), plus the FunctionCall (fastpath) protocol.
"""

import struct
import threading
import time

import psycopg

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


def datarows(msgs):
    return [pgraw.datarow_values(b) for t, b in msgs if t == b"D"]


def tags(msgs):
    return [pgraw.command_tag(b) for t, b in msgs if t == b"C"]


class SimpleQueryTest(h.ProxyTestCase):

    def test_select_rows_and_result_bytes(self):
        c = self.raw_client()
        sql = "select g, repeat('y', g) as simple_bytes from generate_series(1, 7) g"
        msgs = c.simple(sql)
        self.assertEqual(datarows(msgs), [[str(g), "y" * g] for g in range(1, 8)])
        data_bytes = sum(pgraw.wire_size(b) for t, b in msgs if t == b"D")
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, events)
        ev = events[0]
        self.assertEqual((ev["protocol"], ev["statement"], ev["index"], ev["sql"]),
                         ("simple", None, 0, sql))
        self.assertEqual((ev["rows"], ev["bytes"], ev["command"], ev["sqlstate"]),
                         (7, data_bytes, "SELECT", None))
        self.assertEqual(ev["executes"], 1)
        self.assertFalse(ev["sql_truncated"])

    def test_two_statements_in_one_query_give_two_events(self):
        sql = "select 'multi_a'; select g from generate_series(1, 2) g"
        r = self.psql("-c", sql)
        self.assertEqual(r.stdout.split(), ["multi_a", "1", "2"])
        events = self.stop_proxy()
        self.assertEqual(len(events), 2, events)
        self.assert_one_conn(events)
        self.assertEqual([e["index"] for e in events], [0, 1])
        self.assertEqual([e["sql"] for e in events], [sql, sql])
        self.assertEqual([e["rows"] for e in events], [1, 2])
        self.assertLess(events[0]["seq"], events[1]["seq"])

    def test_begin_select_commit_gives_three_events(self):
        r = self.psql("-c", "begin; select 'in_txn'; commit")
        self.assertEqual(r.stdout.strip().splitlines(), ["BEGIN", "in_txn", "COMMIT"])
        events = self.stop_proxy()
        self.assertEqual([(e["index"], e["command"], e["rows"]) for e in events],
                         [(0, "BEGIN", 0), (1, "SELECT", 1), (2, "COMMIT", 0)])

    def test_empty_query_gives_no_event(self):
        c = self.raw_client()
        self.assertEqual(pgraw.types_of(c.simple("")), b"IZ")
        self.assertEqual(pgraw.types_of(c.simple(" ; ")), b"IZ")
        self.assertEqual(pgraw.types_of(c.simple("select 'after_empty'")), b"TDCZ")
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], ["select 'after_empty'"])

    def test_failing_statement_gives_one_event_with_sqlstate(self):
        c = self.raw_client()
        msgs = c.simple("select 1/0 as simple_err")
        self.assertEqual(pgraw.first_error(msgs)["C"], "22012")
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["sqlstate"], events[0]["command"], events[0]["rows"]),
                         ("22012", None, 0))
        self.assertEqual(events[0]["sql"], "select 1/0 as simple_err")

    def test_syntax_error_gives_one_event_with_sqlstate(self):
        r = self.psql("-c", "selec 'syntax_err'", check=False)
        self.assertIn("syntax error", r.stderr)
        events = self.stop_proxy()
        self.assertEqual([(e["sql"], e["sqlstate"]) for e in events],
                         [("selec 'syntax_err'", "42601")])

    def test_statements_after_an_error_in_one_query_give_no_event(self):
        c = self.raw_client()
        msgs = c.simple("select 'before_err'; select 1/0; select 'never_runs'")
        self.assertEqual(datarows(msgs), [["before_err"]])
        self.assertEqual(pgraw.first_error(msgs)["C"], "22012")
        self.assertEqual(msgs[-1], (b"Z", b"I"))
        events = self.stop_proxy()
        self.assertEqual([(e["index"], e["rows"], e["sqlstate"]) for e in events],
                         [(0, 1, None), (1, 0, "22012")])

    def test_error_inside_transaction_then_rollback(self):
        c = self.raw_client()
        c.simple("begin")
        self.assertEqual(pgraw.first_error(c.simple("select 1/0"))["C"], "22012")
        # In a failed transaction every statement is refused with 25P02 until ROLLBACK.
        self.assertEqual(pgraw.first_error(c.simple("select 'aborted_txn'"))["C"], "25P02")
        self.assertEqual(tags(c.simple("rollback")), ["ROLLBACK"])
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["sqlstate"]) for e in events],
                         [("BEGIN", None), (None, "22012"), (None, "25P02"),
                          ("ROLLBACK", None)])

    def test_dml_row_counts(self):
        self.psql("-c", "create table dml_t (id int)")
        self.psql("-c", "insert into dml_t select generate_series(1, 10)")
        self.psql("-c", "update dml_t set id = id + 100 where id <= 4")
        self.psql("-c", "delete from dml_t where id > 100")
        r = self.psql("-c", "select count(*) from dml_t")
        self.assertEqual(r.stdout.strip(), "6")
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["rows"]) for e in events],
                         [("CREATE", 0), ("INSERT", 10), ("UPDATE", 4), ("DELETE", 4),
                          ("SELECT", 1)])
        self.assertEqual(len({e["conn"] for e in events}), 5, "one psql = one connection")

    def test_cursor_fetches_are_one_event_each(self):
        r = self.psql("-c", "begin; declare cur_simple cursor for "
                            "select generate_series(1, 5); fetch 2 from cur_simple; "
                            "fetch 2 from cur_simple; fetch 2 from cur_simple; commit")
        self.assertEqual(r.stdout.split(),
                         ["BEGIN", "DECLARE", "CURSOR", "1", "2", "3", "4", "5", "COMMIT"])
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["rows"]) for e in events],
                         [("BEGIN", 0), ("DECLARE", 0), ("FETCH", 2), ("FETCH", 2),
                          ("FETCH", 1), ("COMMIT", 0)])

    def test_seq_and_timestamps_follow_execution(self):
        c = self.raw_client()
        t0 = int(time.time() * 1e6)
        c.simple("select 'seq_1'")
        c.simple("select pg_sleep(0.05), 'seq_2'")
        c.simple("select 'seq_3'")
        t1 = int(time.time() * 1e6)
        events = self.stop_proxy()
        self.assertEqual(len(events), 3, events)
        self.assertEqual([e["seq"] for e in events], sorted(e["seq"] for e in events))
        for e in events:
            self.assertGreaterEqual(e["start_us"], t0 - 1000000, "start_us is wall clock")
            self.assertLessEqual(e["end_us"], t1 + 1000000, "end_us is wall clock")
        self.assertGreaterEqual(events[1]["end_us"] - events[1]["start_us"], 50000)
        self.assertLessEqual(events[0]["end_us"], events[1]["start_us"])

    def test_connections_get_distinct_ids(self):
        for i in range(3):
            self.psql("-c", "select 'conn_%d'" % i)
        events = self.stop_proxy()
        self.assertEqual(len(events), 3, events)
        self.assertEqual(len({e["conn"] for e in events}), 3)

    def test_function_call_gives_one_function_event(self):
        c = self.raw_client()
        oid = int(datarows(c.simple(
            "select 'int4pl(int4,int4)'::regprocedure::oid"))[0][0])
        args = [b"40", b"2"]
        body = struct.pack("!IHH", oid, 1, 0)  # one format code for all args: text
        body += struct.pack("!H", len(args))
        for a in args:
            body += struct.pack("!i", len(a)) + a
        body += struct.pack("!H", 0)  # result in text
        c.send(pgraw.msg(b"F", body))
        msgs = c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"VZ")
        self.assertEqual(msgs[0][1][4:], b"42")
        events = self.stop_proxy()
        self.assertEqual(len(events), 2, events)
        fn = events[1]
        self.assertEqual((fn["protocol"], fn["sqlstate"]), ("function", None))

    def test_long_sql_is_whole_or_a_flagged_prefix(self):
        sql = "select 'long_marker' /* %s */" % ("a" * 200000)
        c = self.raw_client()
        self.assertEqual(pgraw.types_of(c.simple(sql)), b"TDCZ")
        events = self.stop_proxy()
        self.assertEqual(len(events), 1, [e["sql"][:80] for e in events])
        ev = events[0]
        if ev["sql_truncated"]:
            self.assertLess(len(ev["sql"]), len(sql))
            self.assertTrue(sql.startswith(ev["sql"]), "truncated sql is not a prefix")
        else:
            self.assertEqual(ev["sql"], sql)
        self.assertEqual(ev["rows"], 1)

    def test_log_is_written_while_proxy_runs(self):
        c = self.raw_client()
        c.simple("select 'written_soon'")
        # Contract: within ~200 ms of completion; allow a generous margin for slow CI.
        deadline = time.monotonic() + 2.0
        found = False
        while time.monotonic() < deadline and not found:
            try:
                with open(self.proxy.log_path) as f:
                    found = "written_soon" in f.read()
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        if h.DIRECT:
            self.skipTest("PGTALLY_DIRECT=1: no query log")
        self.assertTrue(found, "event not in the log 2 s after the statement completed")

    def test_copy_to_stdout_in_simple_query(self):
        r = self.psql("-c", "copy (select g, 'copy_simple' from generate_series(1, 40) g) "
                            "to stdout")
        self.assertEqual(len(r.stdout.splitlines()), 40)
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["rows"], e["bytes"]) for e in events],
                         [("COPY", 40, len(r.stdout.encode()) + 5 * 40)])

    def test_concurrent_connections_each_logged_in_order(self):
        n_conns, n_queries = 16, 10
        errors = []

        def worker(i):
            try:
                with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
                    for q in range(n_queries):
                        row = conn.execute("select %s::int, %s::int, 'concurrent'",
                                           (i, q)).fetchone()
                        if row != (i, q, "concurrent"):
                            errors.append(row)
            except Exception as e:  # reported below, in the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        events = self.stop_proxy()
        self.assertEqual(len(events), n_conns * n_queries)
        by_conn = {}
        for e in events:
            by_conn.setdefault(e["conn"], []).append(e["seq"])
        self.assertEqual(len(by_conn), n_conns)
        for seqs in by_conn.values():
            self.assertEqual(len(seqs), n_queries)
            self.assertEqual(seqs, sorted(seqs))


    def test_query_written_one_byte_at_a_time(self):
        c = self.raw_client()
        sql = "select 'dribbled', 42"
        for b in pgraw.query(sql):
            c.send(bytes([b]))
            time.sleep(0.002)
        msgs = c.read_until()
        self.assertEqual(datarows(msgs), [["dribbled", "42"]])
        events = self.stop_proxy()
        self.assertEqual([(e["sql"], e["rows"]) for e in events], [(sql, 1)])

    def test_parameter_status_between_statements_of_one_query(self):
        c = self.raw_client()
        msgs = c.simple("set application_name = 'mid_query_app'; select 'after_set'")
        # Postgres 15 reports the change just before ReadyForQuery; others may send it
        # right after the SET. Either way it arrives inside this Query's reply.
        types = pgraw.types_of(msgs)
        self.assertEqual(types.replace(b"S", b""), b"CTDCZ")
        self.assertIn((b"S", b"application_name\0mid_query_app\0"), msgs)
        events = self.stop_proxy()
        self.assertEqual([(e["index"], e["command"], e["rows"]) for e in events],
                         [(0, "SET", 0), (1, "SELECT", 1)])

    def test_notice_between_statements_of_one_query(self):
        c = self.raw_client()
        msgs = c.simple("do $$ begin raise notice 'n1'; end $$; select 'after_notice_q'")
        self.assertEqual(pgraw.types_of(msgs), b"NCTDCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["index"], e["command"], e["rows"]) for e in events],
                         [(0, "DO", 0), (1, "SELECT", 1)])
    def test_queries_pipelined_in_one_write(self):
        c = self.raw_client()
        c.send(pgraw.query("select 'piped_1'") + pgraw.query("select 1/0 as piped_2")
               + pgraw.query("select 'piped_3', 3"))
        msgs = c.read_until() + c.read_until() + c.read_until()
        self.assertEqual(pgraw.types_of(msgs), b"TDCZEZTDCZ")
        events = self.stop_proxy()
        self.assertEqual([(e["sql"], e["sqlstate"]) for e in events],
                         [("select 'piped_1'", None), ("select 1/0 as piped_2", "22012"),
                          ("select 'piped_3', 3", None)])

    def test_lone_sync_gives_no_event(self):
        c = self.raw_client()
        c.send(pgraw.sync())
        self.assertEqual(pgraw.types_of(c.read_until()), b"Z")
        c.simple("select 'after_lone_sync'")
        events = self.stop_proxy()
        self.assertEqual([e["sql"] for e in events], ["select 'after_lone_sync'"])

    def test_error_after_some_rows(self):
        c = self.raw_client()
        msgs = c.simple("select 10 / (3 - g) as err_mid from generate_series(1, 5) g")
        self.assertEqual(pgraw.types_of(msgs), b"TDDEZ")
        events = self.stop_proxy()
        self.assertEqual([(e["sqlstate"], e["command"]) for e in events], [("22012", None)])


if __name__ == "__main__":
    h.main()
