#!/usr/bin/env python3
"""tests/fuzz/wire_corpus.py — seed inputs for fuzz_wire (input format: see fuzz_wire.c).

  wire_corpus.py generate OUTDIR
      writes hand-built client/server conversations: simple and multi-statement queries,
      errors, the extended protocol (unnamed, named, pipelined, row limits), COPY in and out,
      function calls, asynchronous messages, SSLRequest, CancelRequest, DEALLOCATE/DISCARD.
  wire_corpus.py capture OUTDIR
      starts a private cluster (tests/integration/pgharness.py) and records psql and pgbench
      (simple, extended, prepared, pipeline) through `record` into OUTDIR/rec_*.
  wire_corpus.py record LISTEN_PORT UPSTREAM_HOST:PORT OUTFILE
      a TCP relay that writes what passes through each connection (OUTFILE, OUTFILE-2, ...),
      one segment per recv(), so real clients (psql, pgbench) can be captured against a real
      server (use sslmode=disable gssencmode=disable: the fuzzer input has no TLS).
"""
import os
import socket
import select
import struct
import sys
import threading

CLIENT, SERVER = 0, 1


def seg(direction, data, advance_us=20):
    """One segment: hdr (direction | clock advance), 16-bit length, bytes; long data is cut."""
    out = b""
    advance_us = min(advance_us, 127)
    while True:
        part, data = data[:65535], data[65535:]
        out += bytes([direction | advance_us << 1]) + struct.pack("<H", len(part)) + part
        if not data:
            return out


def msg(type_, body=b""):
    return type_.encode() + struct.pack(">I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(**params):
    body = struct.pack(">I", 196608)
    for k, v in params.items():
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack(">I", len(body) + 4) + body


def ssl_request():
    return struct.pack(">II", 8, 80877103)


def cancel_request():
    return struct.pack(">IIII", 16, 80877102, 1234, 5678)


# ---- frontend ----
def Q(sql):
    return msg("Q", cstr(sql))


def P(sql, name="", ntypes=0):
    return msg("P", cstr(name) + cstr(sql) + struct.pack(">H", ntypes) + b"\0\0\0\x17" * ntypes)


def B(params=(), portal="", stmt=""):
    body = cstr(portal) + cstr(stmt) + struct.pack(">H", 0) + struct.pack(">H", len(params))
    for p in params:
        if p is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">I", len(p)) + p.encode()
    return msg("B", body + struct.pack(">H", 0))


def D(kind="S", name=""):
    return msg("D", kind.encode() + cstr(name))


def E(portal="", max_rows=0):
    return msg("E", cstr(portal) + struct.pack(">I", max_rows))


def C(kind="S", name=""):
    return msg("C", kind.encode() + cstr(name))


def S():
    return msg("S")


def H():
    return msg("H")


def X():
    return msg("X")


def F(oid=1598):
    # oid, no argument formats, no arguments, text result
    return msg("F", struct.pack(">IHHH", oid, 0, 0, 0))


# ---- backend ----
def auth_ok():
    return msg("R", struct.pack(">I", 0))


def param(name, value):
    return msg("S", cstr(name) + cstr(value))


def key_data():
    return msg("K", struct.pack(">II", 1234, 5678))


def Z(status="I"):
    return msg("Z", status.encode())


def T(*cols):
    body = struct.pack(">H", len(cols))
    for c in cols:
        body += cstr(c) + struct.pack(">IHIhih", 0, 0, 23, 4, -1, 0)
    return msg("T", body)


def DR(*vals):
    body = struct.pack(">H", len(vals))
    for v in vals:
        body += struct.pack(">i", -1) if v is None else struct.pack(">I", len(v)) + v.encode()
    return msg("D", body)


def CC(tag):
    return msg("C", cstr(tag))


def ERR(code, text="boom"):
    return msg("E", b"SERROR\0VERROR\0C" + cstr(code) + b"M" + cstr(text) + b"\0")


def NOTICE(text="note"):
    return msg("N", b"SNOTICE\0C00000\0M" + cstr(text) + b"\0")


def NOTIFY(channel="ch", payload="x"):
    return msg("A", struct.pack(">I", 42) + cstr(channel) + cstr(payload))


def one(s):
    return msg(s)


HELLO = auth_ok() + param("server_version", "16.0") + param("client_encoding", "UTF8") + \
    param("standard_conforming_strings", "on") + param("application_name", "psql") + \
    key_data() + Z()


def conversation(flags, turns, with_startup=True, split=None):
    """turns: list of (direction, bytes). Startup packet and server hello are prepended."""
    out = bytes([flags])
    if with_startup:
        out += seg(CLIENT, startup(user="app", database="app", application_name="psql"))
        out += seg(SERVER, HELLO)
    for direction, data in turns:
        if split:  # cut every turn into pieces of `split` bytes: messages cross segments
            for i in range(0, len(data), split):
                out += seg(direction, data[i:i + split], 1)
        else:
            out += seg(direction, data)
    return out


def cases():
    c = {}
    c["simple"] = conversation(0, [
        (CLIENT, Q("select id, name from users where id = 1")),
        (SERVER, T("id", "name") + DR("1", "ann") + CC("SELECT 1") + Z()),
        (CLIENT, X())])
    c["multi_statement"] = conversation(0, [
        (CLIENT, Q("begin; update t set a = 1 where id = 2; select 1; commit")),
        (SERVER, CC("BEGIN") + CC("UPDATE 1") + T("?column?") + DR("1") + CC("SELECT 1") +
         CC("COMMIT") + Z())])
    c["error_simple"] = conversation(0, [
        (CLIENT, Q("select 1/0; select 2")),
        (SERVER, ERR("22012", "division by zero") + Z()),
        (CLIENT, Q("select * from nope")),
        (SERVER, ERR("42P01") + Z())])
    c["extended_unnamed"] = conversation(0, [
        (CLIENT, P("select * from users where id = $1", ntypes=1) + B(["7"]) + D("P") + E() + S()),
        (SERVER, one("1") + one("2") + T("id") + DR("7") + CC("SELECT 1") + Z())])
    c["pgbench_prepared"] = conversation(0, [
        (CLIENT, P("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", "P0_1", 2) +
         B(["-4", "55"], stmt="P0_1") + E() + S()),
        (SERVER, one("1") + one("2") + CC("UPDATE 1") + Z("T")),
        (CLIENT, B(["3", "56"], stmt="P0_1") + E() + S()),
        (SERVER, one("2") + CC("UPDATE 1") + Z("T")),
        (CLIENT, Q("DEALLOCATE P0_1")),
        (SERVER, CC("DEALLOCATE") + Z())])
    c["pipeline"] = conversation(0, [
        (CLIENT, b"".join(P("select $1::int", ntypes=1) + B([str(i)]) + E() for i in range(5)) + S()),
        (SERVER, b"".join(one("1") + one("2") + DR(str(i)) + CC("SELECT 1") for i in range(5)) + Z())])
    c["pipeline_error_skips_to_sync"] = conversation(0, [
        (CLIENT, P("select 1/$1", ntypes=1) + B(["0"]) + E() + P("select 2") + B() + E() + S() +
         P("select 3") + B() + E() + S()),
        (SERVER, one("1") + one("2") + ERR("22012") + Z("I") + one("1") + one("2") + DR("3") +
         CC("SELECT 1") + Z())])
    c["row_limit_portal"] = conversation(0, [
        (CLIENT, Q("begin")), (SERVER, CC("BEGIN") + Z("T")),
        (CLIENT, P("select g from generate_series(1,5) g", "s1") + B(portal="c1", stmt="s1") +
         E("c1", 2) + H()),
        (SERVER, one("1") + one("2") + DR("1") + DR("2") + one("s")),
        (CLIENT, E("c1", 2) + S()),
        (SERVER, DR("3") + DR("4") + one("s") + Z("T")),
        (CLIENT, E("c1", 0) + C("P", "c1") + C("S", "s1") + S()),
        (SERVER, DR("5") + CC("SELECT 1") + one("3") + one("3") + Z("T"))])
    c["copy_in"] = conversation(0, [
        (CLIENT, Q("copy t from stdin")),
        (SERVER, msg("G", b"\0\0\x01\0\0")),
        (CLIENT, msg("d", b"1\tx\n") + msg("d", b"2\ty\n") + msg("c")),
        (SERVER, CC("COPY 2") + Z())])
    c["copy_in_fail"] = conversation(0, [
        (CLIENT, Q("copy t from stdin")),
        (SERVER, msg("G", b"\0\0\x01\0\0")),
        (CLIENT, msg("d", b"1\tx\n") + msg("f", cstr("client gave up"))),
        (SERVER, ERR("57014") + Z())])
    c["copy_out"] = conversation(0, [
        (CLIENT, Q("copy t to stdout")),
        (SERVER, msg("H", b"\0\0\x01\0\0") + msg("d", b"1\tx\n") * 3 + msg("c") + CC("COPY 3") + Z())])
    c["extended_copy"] = conversation(0, [
        (CLIENT, P("copy t from stdin") + B() + E() + S()),
        (SERVER, one("1") + one("2") + msg("G", b"\0\0\x01\0\0")),
        (CLIENT, msg("d", b"1\n") + S() + H() + msg("c") + S()),
        (SERVER, CC("COPY 1") + Z() + Z())])
    c["function_call"] = conversation(0, [
        (CLIENT, F()), (SERVER, msg("V", struct.pack(">i", 4) + b"abcd") + Z())])
    c["async_messages"] = conversation(0, [
        (CLIENT, Q("listen ch")), (SERVER, CC("LISTEN") + Z()),
        (SERVER, NOTIFY() + NOTICE() + param("application_name", "web#orders") +
         param("standard_conforming_strings", "off")),
        (CLIENT, Q("select 'a\\'b' /* request_id='r1' */")),
        (SERVER, NOTICE("mid") + T("x") + DR("a'b") + CC("SELECT 1") + NOTIFY() + Z())])
    c["tags_and_set"] = conversation(0, [
        (CLIENT, Q("SET application_name = 'orders#index'")), (SERVER, CC("SET") + Z()),
        (CLIENT, P("SELECT * FROM orders WHERE user_id = $1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',route='%2Forders'*/", ntypes=1) +
         B(["1"]) + E() + S()),
        (SERVER, one("1") + one("2") + DR("1") + CC("SELECT 1") + Z()),
        (CLIENT, Q("DISCARD ALL")), (SERVER, CC("DISCARD ALL") + Z())])
    c["ssl_then_startup"] = bytes([0]) + seg(CLIENT, ssl_request()) + \
        seg(CLIENT, startup(user="u", database="d", replication="false")) + seg(SERVER, HELLO) + \
        seg(CLIENT, Q("select 1")) + seg(SERVER, T("a") + DR("1") + CC("SELECT 1") + Z())
    c["cancel"] = bytes([0]) + seg(CLIENT, cancel_request())
    c["split_everywhere"] = conversation(0, [
        (CLIENT, P("select $1", "n", 1) + B(["x"], stmt="n") + D("S", "n") + E() + S()),
        (SERVER, one("1") + one("2") + msg("t", b"\0\x01\0\0\0\x19") + T("a") + DR("x") +
         CC("SELECT 1") + Z())], split=3)
    c["small_limits"] = conversation(1 | 4 | 8, [
        (CLIENT, Q("select '" + "x" * 200 + "'")),
        (SERVER, T("a") + DR("x") + CC("SELECT 1") + Z()),
        (CLIENT, b"".join(P("select %d" % i, "s%d" % i) for i in range(4)) + S()),
        (SERVER, one("1") * 4 + Z()),
        (CLIENT, b"".join(B(stmt="s%d" % i) + E() for i in range(4)) + S()),
        (SERVER, (one("2") + CC("SELECT 1")) * 4 + Z())])
    c["vanished_mid_query"] = conversation(0, [
        (CLIENT, Q("select pg_sleep(10)")), (SERVER, T("pg_sleep"))])
    c["typed_start"] = bytes([16]) + seg(CLIENT, Q("select 1")) + \
        seg(SERVER, T("a") + DR("1") + CC("SELECT 1") + Z())
    # After an extended error with no Sync the server skips everything until Sync: decoys,
    # named Parses and Binds, then the Sync's ReadyForQuery and a real Query.
    c["skip_until_sync"] = conversation(0, [
        (CLIENT, P("selec 1") + H()),
        (SERVER, ERR("42601")),
        (CLIENT, Q("select 'decoy 1'") + Q("select 'decoy 2'") + P("select 1", "s1") +
         B(portal="p1", stmt="s1") + E("p1") + C("S", "s1") + S()),
        (SERVER, Z()),
        (CLIENT, Q("select rolname from pg_authid")),
        (SERVER, T("rolname") + DR("postgres") + CC("SELECT 1") + Z())])
    # A Query before authentication completed: answered after the server's first ReadyForQuery.
    c["before_auth"] = bytes([0]) + \
        seg(CLIENT, startup(user="app", database="app") + Q("SELECT 1+-+-+-+-1")) + \
        seg(SERVER, HELLO) + seg(SERVER, T("a") + DR("1") + CC("SELECT 1") + Z()) + \
        seg(CLIENT, Q("select 2")) + seg(SERVER, T("a") + DR("2") + CC("SELECT 1") + Z())
    # Tiny byte bounds (flag 32): texts left out of the FIFO, names and portals dropped.
    c["byte_bounds"] = conversation(32, [
        (CLIENT, b"".join(P("select %d, '%s'" % (i, "y" * 100), "s%d" % i) +
                          B(portal="p%d" % i, stmt="s%d" % i) for i in range(4)) + S()),
        (SERVER, (one("1") + one("2")) * 4 + Z()),
        (CLIENT, b"".join(Q("select '%s'" % ("z" * 150)) for _ in range(3))),
        (SERVER, (T("a") + DR("z") + CC("SELECT 1") + Z()) * 3),
        (CLIENT, E("p0") + S()),
        (SERVER, DR("0") + CC("SELECT 1") + Z())])
    c["bad_frontend"] = conversation(0, [
        (CLIENT, Q("select 1") + b"Q\0\0\0\x02")])
    return c


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, data in cases().items():
        with open(os.path.join(outdir, "gen_" + name), "wb") as f:
            f.write(data)


def relay(client, upstream, outfile):
    host, port = upstream.rsplit(":", 1)
    server = socket.create_connection((host, int(port)))
    out = bytearray([0])
    peers = {client: (server, CLIENT), server: (client, SERVER)}
    open_ = True
    while open_:
        ready, _, _ = select.select(list(peers), [], [])
        for s in ready:
            data = s.recv(65536)
            if not data:
                open_ = False
                break
            dest, direction = peers[s]
            dest.sendall(data)
            out += seg(direction, data)
    client.close()
    server.close()
    with open(outfile, "wb") as f:
        f.write(out)


def record(listen_port, upstream, outfile):
    """Relays every connection (OUTFILE, OUTFILE-2, ...) until none is open and no new one
    arrived for 3 seconds."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(listen_port)))
    srv.listen(8)
    srv.settimeout(3)
    threads = []
    while True:
        try:
            client, _ = srv.accept()
        except socket.timeout:
            if all(not t.is_alive() for t in threads):
                break
            continue
        n = len(threads) + 1
        name = outfile if n == 1 else "%s-%d" % (outfile, n)
        t = threading.Thread(target=relay, args=(client, upstream, name))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


PSQL_SCRIPT = r"""
select 1 as a, 'x' as b;
\d pgbench_accounts
begin; select count(*) from pgbench_branches; select 1/0; rollback;
create temp table t(a int, b text);
\copy t from stdin
1	one
2	two
\.
copy t to stdout;
select * from t where a = 1 /* request_id='r-42' */;
prepare p(int) as select $1 + 1; execute p(1); deallocate p;
listen ch; notify ch, 'hi';
do $$ begin raise notice 'note'; end $$;
select repeat('x', 20000);
"""

PGBENCH_PIPELINE = r"""\set aid random(1, 100000)
\startpipeline
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT 1/0;
\endpipeline
"""


def capture(outdir):
    """Records psql and pgbench (simple, extended, prepared, pipeline) against a private
    cluster started with tests/integration/pgharness.py."""
    import subprocess
    import tempfile
    import time
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "integration"))
    import pgharness as h
    cluster = h.Cluster()
    cluster.start()
    env = h.client_env()
    subprocess.run([h.pgbin("pgbench"), "-i", "-s", "1", cluster.dsn()], env=env, check=True,
                   capture_output=True)
    pipe = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    pipe.write(PGBENCH_PIPELINE)
    pipe.close()
    runs = [("rec_psql", [h.pgbin("psql"), "DSN", "-X", "-f", "-"], PSQL_SCRIPT)]
    for mode in ("simple", "extended", "prepared"):
        runs.append(("rec_pgbench_" + mode, [h.pgbin("pgbench"), "-n", "-t", "3", "-M", mode,
                                             "DSN"], None))
    runs.append(("rec_pgbench_pipeline", [h.pgbin("pgbench"), "-n", "-t", "2", "-M", "extended",
                                          "-f", pipe.name, "DSN"], None))
    for name, cmd, stdin in runs:
        port = h.free_port()
        rec = subprocess.Popen([sys.executable, os.path.abspath(__file__), "record", str(port),
                                "127.0.0.1:%d" % cluster.port, os.path.join(outdir, name)])
        time.sleep(0.5)
        d = h.dsn(port, gssencmode="disable")
        subprocess.run([a.replace("DSN", d) for a in cmd], input=stdin, env=env,
                       capture_output=True, text=True)
        rec.wait(timeout=30)
    os.unlink(pipe.name)
    cluster.destroy()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "capture":
        capture(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
