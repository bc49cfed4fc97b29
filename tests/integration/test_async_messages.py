"""Messages that do not answer a request, and side channels: NotificationResponse to an idle
client, NoticeResponse, ParameterStatus, CancelRequest on a fresh connection, and replication
connections (forwarded raw).
"""

import os
import select
import subprocess
import time

import psycopg

import pgharness as h
import pgraw


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


class AsyncMessagesTest(h.ProxyTestCase):

    def test_notify_reaches_idle_listener(self):
        binary = os.environ.get("LIBPQ_CLIENT")
        self.assertTrue(binary, "LIBPQ_CLIENT is not set")
        listener = subprocess.Popen([binary, "listen", self.proxy.dsn(), "it_channel", "15"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=h.client_env())
        self.addCleanup(lambda: listener.poll() is None and listener.kill())
        ready, _, _ = select.select([listener.stdout], [], [], 15)
        self.assertTrue(ready, "listener never said it was listening")
        self.assertEqual(listener.stdout.readline().strip(), "listening")
        # The listener now sits in select() on its socket, sending nothing.
        time.sleep(0.2)
        self.psql("-c", "notify it_channel, 'hello through the proxy'")
        out, err = listener.communicate(timeout=20)
        self.assertEqual(listener.returncode, 0, err + out)
        self.assertEqual(out.strip(),
                         "notify channel=it_channel payload=hello through the proxy")
        events = self.stop_proxy()
        self.assertEqual([e["command"] for e in events], ["LISTEN", "NOTIFY"])
        self.assertNotEqual(events[0]["conn"], events[1]["conn"])

    def test_notice_reaches_client(self):
        notices = []
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute("do $$ begin raise notice 'notice % through proxy', 42; end $$")
            row = conn.execute("select 'after_notice'").fetchone()
        self.assertEqual(notices, ["notice 42 through proxy"])
        self.assertEqual(row, ("after_notice",))
        events = self.stop_proxy()
        self.assertEqual([(e["command"], e["sqlstate"]) for e in events],
                         [("DO", None), ("SELECT", None)])

    def test_psql_prints_notice(self):
        r = self.psql("-c", "do $$ begin raise notice 'psql_notice_%', 7; end $$")
        self.assertIn("NOTICE:  psql_notice_7", r.stderr)

    def test_parameter_status_reaches_client(self):
        with psycopg.connect(self.proxy.dsn(), autocommit=True) as conn:
            self.assertNotEqual(conn.info.parameter_status("application_name"), "it_app")
            conn.execute("set application_name = 'it_app'")
            self.assertEqual(conn.info.parameter_status("application_name"), "it_app")
            conn.execute("set timezone = 'Asia/Tokyo'")
            self.assertEqual(conn.info.parameter_status("TimeZone"), "Asia/Tokyo")
        events = self.stop_proxy()
        self.assertEqual([e["command"] for e in events], ["SET", "SET"])

    def test_cancel_request_cancels_running_query(self):
        r = self.libpq_client("cancel", self.proxy.dsn(), "20", timeout=40)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 3, r.stdout)
        self.assertTrue(lines[0].startswith("cancel-sent ok"), lines[0])
        self.assertTrue(lines[1].startswith("result PGRES_FATAL_ERROR sqlstate=57014"),
                        lines[1])
        elapsed_ms = float(lines[1].rsplit("=", 1)[1])
        self.assertLess(elapsed_ms, 10000, "the sleep was not cut short")
        self.assertEqual(lines[2], "after value=7")
        events = self.stop_proxy()
        sleeps = self.events_with_sql(events, "cancel_me")
        self.assertEqual([(e["sqlstate"], e["command"]) for e in sleeps], [("57014", None)])
        self.assertEqual(len(self.events_with_sql(events, "after_cancel")), 1)

    def test_cancel_request_with_wrong_key_cancels_nothing(self):
        # A CancelRequest for a key no backend has must not cancel anyone's query.
        with pgraw.RawConn(self.proxy.port) as c:
            c.startup(h.TRUST_USER, h.DBNAME)
            c.send(pgraw.query("select pg_sleep(0.7), 'not_cancelled'"))
            time.sleep(0.2)
            with pgraw.RawConn(self.proxy.port) as k:
                k.send(pgraw.cancel_request(c.backend_pid, (c.backend_key + 1) & 0xFFFFFFFF))
                k.read_all_until_close()
            msgs = c.read_until()
            self.assertIsNone(pgraw.first_error(msgs))

    def test_replication_connection_identify_system(self):
        direct = subprocess.run(
            [h.pgbin("psql"), "-X", "-At", "-d",
             self.cluster.dsn(user="postgres", replication="database"),
             "-c", "IDENTIFY_SYSTEM"], capture_output=True, text=True, env=h.client_env())
        self.assertEqual(direct.returncode, 0, direct.stderr)
        r = self.psql("-c", "IDENTIFY_SYSTEM",
                      dsn=self.proxy.dsn(user="postgres", replication="database"))
        # systemid|timeline|xlogpos|dbname: the same system, seen through the proxy.
        self.assertEqual(r.stdout.split("|")[0], direct.stdout.split("|")[0])
        self.assertEqual(r.stdout.strip().split("|")[3], h.DBNAME)

    def test_pg_receivewal_streams_through_proxy(self):
        self.cluster.admin_sql("select pg_switch_wal(); create table wal_t as select 1")
        endpos = self.cluster.admin_sql("select pg_current_wal_flush_lsn()").strip()
        waldir = os.path.join(self.cluster.tmpdir, "receivewal")
        os.mkdir(waldir)
        # -s 1: it saw endpos only when its status interval (10 s by default) woke it up
        r = subprocess.run([h.pgbin("pg_receivewal"), "-d",
                            self.proxy.dsn(user="postgres", dbname="replication"),
                            "-D", waldir, "-E", endpos, "-n", "--no-sync", "-s", "1"],
                           capture_output=True, text=True, env=h.client_env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.listdir(waldir), "no WAL received")
        self.assertTrue(self.proxy.alive())


if __name__ == "__main__":
    h.main()
