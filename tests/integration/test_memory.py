"""Backpressure: a ~200 MB result streamed through the proxy to a deliberately slow client must
not grow the proxy's memory. The proxy may hold a bounded buffer per side; if it read the
server's output as fast as the server writes it, the result would pile up in its heap.
"""

import os
import time

import pgharness as h
import pgraw

ROWS = 200000
WIDTH = 1000
MAX_GROWTH_KB = 16 * 1024


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


class MemoryTest(h.ProxyTestCase):

    def test_slow_client_big_result_keeps_proxy_rss_flat(self):
        c = self.raw_client(timeout=60)
        c.simple("select 'warm up'")  # first-use allocations are not growth
        pid = self.proxy.pid
        st0 = h.proc_status(pid) if pid else {"VmRSS": 0, "VmHWM": 0}
        before, hwm_before = st0["VmRSS"], st0["VmHWM"]
        peak = [before]

        def sample():
            if pid and len(peak) % 64 == 0:
                peak.append(h.proc_status(pid)["VmRSS"])
            else:
                peak.append(peak[-1])

        t0 = time.monotonic()
        c.send(pgraw.query("select repeat('x', %d) as wide from generate_series(1, %d)"
                           % (WIDTH, ROWS)))
        # Stall first: every buffer between server and client fills up and stays full.
        time.sleep(1.0)
        if pid:
            peak.append(h.proc_status(pid)["VmRSS"])
        counts, sizes, others = c.read_slowly(chunk=65536, pause=0.0003, on_chunk=sample)
        elapsed = time.monotonic() - t0
        self.assertEqual(counts.get(b"D"), ROWS)
        self.assertEqual([t for t, _ in others], [b"T", b"C", b"Z"])
        self.assertEqual(pgraw.command_tag(others[1][1]), "SELECT %d" % ROWS)
        total_mb = sizes[b"D"] / 1e6
        if pid:
            st = h.proc_status(pid)
            # A new high-water mark is the truest peak; without one, the sampled maximum.
            top = st["VmHWM"] if st["VmHWM"] > hwm_before else max(peak)
            growth = top - before
            print("\nmemory: %.0f MB in %.1f s; proxy RSS before %d kB, peak %d kB, "
                  "HWM %d kB, growth %d kB" % (total_mb, elapsed, before, max(peak),
                                                st["VmHWM"], growth))
            self.assertLess(growth, MAX_GROWTH_KB,
                            "proxy grew by %d kB streaming %.0f MB" % (growth, total_mb))
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "as wide")
        self.assertEqual(len(mine), 1, events)
        self.assertEqual((mine[0]["rows"], mine[0]["bytes"]), (ROWS, sizes[b"D"]))

    def test_stalled_clients_outnumbering_receive_buffers_all_get_their_results(self):
        # io_uring path: receives take buffers from a shared ring. With only 8 buffers and four
        # clients that stall with results queued (4 buffers each at most), receives find the
        # ring empty and must resume once buffers come back. (On epoll the knob is ignored.)
        proxy = h.Proxy(self.cluster, env=dict(os.environ, PGTALLY_URING_BUFFERS="8")).start()
        rows = 20000
        sql = "select repeat('z', 500) || g as stalled from generate_series(1, %d) g" % rows
        clients = []
        for _ in range(4):
            c = pgraw.RawConn(proxy.port, timeout=60)
            self.addCleanup(c.close)
            c.startup(h.TRUST_USER, h.DBNAME)
            c.send(pgraw.query(sql))
            clients.append(c)
        time.sleep(1.0)  # every buffer on the way fills up
        for c in clients:
            counts, sizes, others = c.read_slowly(chunk=65536, pause=0)
            self.assertEqual(counts.get(b"D"), rows)
            self.assertEqual([t for t, _ in others], [b"T", b"C", b"Z"])
            c.send(pgraw.terminate())
            c.close()
        result = proxy.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(self.events_with_sql(result.events, "as stalled")), 4)

    def test_single_huge_row_to_slow_client_keeps_proxy_rss_flat(self):
        # One 64 MB DataRow: the proxy must stream the message, not assemble it.
        c = self.raw_client(timeout=60)
        c.simple("select 'warm up'")
        pid = self.proxy.pid
        st0 = h.proc_status(pid) if pid else {"VmRSS": 0, "VmHWM": 0}
        c.send(pgraw.query("select repeat('h', 64000000) as huge_row"))
        time.sleep(1.0)
        counts, sizes, others = c.read_slowly(chunk=65536, pause=0.0002)
        self.assertEqual(counts.get(b"D"), 1)
        self.assertEqual(sizes[b"D"], 1 + 4 + 2 + 4 + 64000000)
        if pid:
            st = h.proc_status(pid)
            top = st["VmHWM"] if st["VmHWM"] > st0["VmHWM"] else st["VmRSS"]
            growth = top - st0["VmRSS"]
            print("\nmemory: one 64 MB row; proxy RSS before %d kB, HWM %d kB, growth %d kB"
                  % (st0["VmRSS"], st["VmHWM"], growth))
            self.assertLess(growth, MAX_GROWTH_KB)
        events = self.stop_proxy()
        mine = self.events_with_sql(events, "huge_row")
        self.assertEqual([(e["rows"], e["bytes"]) for e in mine], [(1, sizes[b"D"])])


if __name__ == "__main__":
    h.main()
