"""A raw-socket PostgreSQL v3 frontend for the integration tests (stdlib only).

Owns: building frontend messages byte by byte (including deliberately malformed ones), reading
and decoding backend messages, and a minimal trust-auth startup. Used where drivers cannot go:
Execute with a row limit (PortalSuspended), SSLRequest/GSSENCRequest answers, oversized startup
packets, malformed messages, and slow readers for the memory test.
"""

import socket
import struct
import time

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


class ConnectionClosed(Exception):
    pass


# --- frontend message builders ---------------------------------------------------------------

def msg(type_byte, body=b""):
    """A typed message: type byte, int32 length (counting itself), body."""
    return type_byte + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup_packet(params, version=PROTOCOL_3_0):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)


def query(sql):
    return msg(b"Q", cstr(sql))


def parse(name, sql, param_types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(param_types))
               + b"".join(struct.pack("!I", t) for t in param_types))


def bind(portal, statement, params=(), result_formats=()):
    body = cstr(portal) + cstr(statement) + struct.pack("!H", 0)  # all params in text
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = p.encode() if isinstance(p, str) else p
            body += struct.pack("!i", len(b)) + b
    body += struct.pack("!H", len(result_formats))
    body += b"".join(struct.pack("!H", f) for f in result_formats)
    return msg(b"B", body)


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def execute(portal, max_rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", max_rows))


def close(kind, name):
    return msg(b"C", kind + cstr(name))


def sync():
    return msg(b"S")


def flush():
    return msg(b"H")


def terminate():
    return msg(b"X")


# --- backend message decoding ----------------------------------------------------------------

def error_fields(body):
    """ErrorResponse/NoticeResponse body -> {field code: value}, e.g. {'C': '08P01', ...}."""
    out = {}
    i = 0
    while i < len(body) and body[i] != 0:
        code = chr(body[i])
        end = body.index(b"\0", i + 1)
        out[code] = body[i + 1:end].decode(errors="replace")
        i = end + 1
    return out


def command_tag(body):
    return body.rstrip(b"\0").decode()


def datarow_values(body):
    n = struct.unpack_from("!H", body, 0)[0]
    i, vals = 2, []
    for _ in range(n):
        ln = struct.unpack_from("!i", body, i)[0]
        i += 4
        if ln < 0:
            vals.append(None)
        else:
            vals.append(body[i:i + ln].decode())
            i += ln
    return vals


def wire_size(body):
    """Bytes a message occupies on the wire: type byte + int32 length + body.

    This is how the harness counts the query log's `bytes` (total size of the DataRow /
    CopyData messages of a statement)."""
    return 1 + 4 + len(body)


class RawConn:
    """One TCP connection speaking the protocol by hand."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.backend_pid = None
        self.backend_key = None
        self.params = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, chunk=65536):
        while len(self.buf) < n:
            data = self.sock.recv(chunk)
            if not data:
                raise ConnectionClosed("server closed the connection (%d bytes pending)"
                                       % len(self.buf))
            self.buf += data

    def read_byte(self):
        """One raw byte (the answer to SSLRequest / GSSENCRequest)."""
        self._fill(1)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self):
        """(type byte, body) of the next backend message."""
        self._fill(5)
        t = self.buf[:1]
        ln = struct.unpack_from("!I", self.buf, 1)[0]
        self._fill(1 + ln)
        body = self.buf[5:1 + ln]
        self.buf = self.buf[1 + ln:]
        return t, body

    def read_until(self, types=(b"Z",)):
        """Messages up to and including the first whose type is in types."""
        out = []
        while True:
            m = self.read_msg()
            out.append(m)
            if m[0] in types:
                return out

    def read_all_until_close(self, timeout=5):
        """Every remaining message until the peer closes; raises socket.timeout if it doesn't."""
        self.sock.settimeout(timeout)
        out = []
        while True:
            try:
                out.append(self.read_msg())
            except ConnectionClosed:
                return out
            except ConnectionResetError:
                return out

    def startup(self, user, database, **params):
        """Sends a startup packet and reads through ReadyForQuery (trust auth only)."""
        p = {"user": user, "database": database}
        p.update(params)
        self.send(startup_packet(p))
        return self.finish_startup()

    def finish_startup(self):
        msgs = self.read_until((b"Z", b"E"))
        for t, body in msgs:
            if t == b"E":
                raise RuntimeError("startup failed: %r" % error_fields(body))
            if t == b"R" and struct.unpack_from("!I", body)[0] != 0:
                raise RuntimeError("startup wants auth method %d; only trust is supported"
                                   % struct.unpack_from("!I", body)[0])
            if t == b"K":
                self.backend_pid, self.backend_key = struct.unpack("!II", body[:8])
            if t == b"S":
                k, _, v = body[:-1].partition(b"\0")
                self.params[k.decode()] = v.decode()
        return msgs

    def simple(self, sql):
        """Runs one simple Query and returns its messages through ReadyForQuery."""
        self.send(query(sql))
        return self.read_until()

    def read_slowly(self, until=b"Z", chunk=65536, pause=0.0005, on_chunk=None):
        """Reads messages in small recv()s with pauses: a deliberately slow client.

        DataRow bodies are counted and dropped as they stream in, never held whole.
        Returns (counts per type, wire bytes per type, list of non-DataRow messages)."""
        counts, sizes, others = {}, {}, []
        buf = bytearray(self.buf)
        self.buf = b""
        skip = 0  # bytes of the current DataRow body still to discard
        while True:
            i = 0
            while True:
                if skip:
                    take = min(skip, len(buf) - i)
                    i += take
                    skip -= take
                    if skip:
                        break
                    continue
                if len(buf) - i < 5:
                    break
                t = bytes(buf[i:i + 1])
                ln = struct.unpack_from("!I", buf, i + 1)[0]
                if t == b"D":
                    counts[t] = counts.get(t, 0) + 1
                    sizes[t] = sizes.get(t, 0) + 1 + ln
                    skip = ln - 4
                    i += 5
                    continue
                if len(buf) - i < 1 + ln:
                    break
                counts[t] = counts.get(t, 0) + 1
                sizes[t] = sizes.get(t, 0) + 1 + ln
                others.append((t, bytes(buf[i + 5:i + 1 + ln])))
                i += 1 + ln
                if t == until:
                    self.buf = bytes(buf[i:])
                    return counts, sizes, others
            del buf[:i]
            data = self.sock.recv(chunk)
            if not data:
                raise ConnectionClosed("closed while reading slowly")
            buf += data
            if on_chunk:
                on_chunk()
            if pause:
                time.sleep(pause)

def types_of(msgs):
    return b"".join(t for t, _ in msgs)


def first_error(msgs):
    for t, body in msgs:
        if t == b"E":
            return error_fields(body)
    return None
