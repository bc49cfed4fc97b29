#!/usr/bin/python3
"""tests/unit/test_fingerprint_cli.py — `pgtally fingerprint` end to end.

The binary comes from the PGTALLY_BIN environment variable (meson sets it from pgtally_exe).
Covers stdin, files, -0, several statements per line, tags, JSON validity for hostile bytes,
records across read boundaries, output while input is still open, and errors (missing or
unreadable file, unknown option, closed standard output). Prints "N passed, N failed"; exit 77 (skip) when
the binary does not dispatch the subcommand yet.
"""
import codecs
import json
import os
import select
import subprocess
import sys
import tempfile

BIN = os.environ.get("PGTALLY_BIN", "")
KEYS = ["fingerprint", "normalized", "values", "tags", "incomplete"]
passed = failed = 0


def run(args, stdin=b""):
    p = subprocess.run([BIN, "fingerprint"] + args, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def objects(stdout):
    """Every output line must be one JSON object with exactly the documented keys."""
    out = []
    for line in stdout.decode("utf-8").splitlines():
        obj = json.loads(line)
        assert list(obj.keys()) == KEYS, obj.keys()
        assert len(obj["fingerprint"]) == 16 and int(obj["fingerprint"], 16) >= 0
        assert len(obj["values"]) == 16 and int(obj["values"], 16) >= 0
        assert isinstance(obj["tags"], dict) and isinstance(obj["incomplete"], bool)
        out.append(obj)
    return out


def case(fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print("ok   " + fn.__name__)
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print("FAIL %s: %r" % (fn.__name__, e))
    return fn


def test_help_exits_zero():
    rc, out, _ = run(["--help"])
    assert rc == 0 and b"usage: pgtally fingerprint" in out


def test_stdin_one_per_line():
    rc, out, err = run([], b"SELECT * FROM t WHERE id = 1\nselect *   from t where ID = 42\n")
    assert rc == 0, err
    a, b = objects(out)
    assert a["normalized"] == "select * from t where id = $1"
    assert a["fingerprint"] == b["fingerprint"]
    assert a["values"] != b["values"]
    assert a["incomplete"] is False and a["tags"] == {}


def test_empty_lines_print_nothing():
    rc, out, _ = run([], b"\n\n  \n-- only a comment\n")
    assert rc == 0 and out == b""


def test_several_statements_per_line():
    rc, out, _ = run([], b"BEGIN; SELECT 1; COMMIT /* request_id:r-1 */\n")
    objs = objects(out)
    assert rc == 0
    assert [o["normalized"] for o in objs] == ["begin", "select $1", "commit"]
    assert all(o["tags"] == {"request_id": "r-1"} for o in objs)


def test_files_in_order_and_dash_for_stdin():
    with tempfile.TemporaryDirectory() as d:
        f1, f2 = os.path.join(d, "a.sql"), os.path.join(d, "b.sql")
        with open(f1, "wb") as f:
            f.write(b"SELECT 1\n")
        with open(f2, "wb") as f:
            f.write(b"SELECT 2 FROM u\nSELECT 3 FROM v")  # last line without newline
        rc, out, err = run([f1, "-", f2], b"SELECT 'stdin'\n")
        assert rc == 0, err
        assert [o["normalized"] for o in objects(out)] == [
            "select $1", "select $1", "select $1 from u", "select $1 from v"]


def test_nul_separated_records():
    rc, out, _ = run(["-0"], b"SELECT 'a'\n  'b'\0SELECT 1;\nSELECT 2\0")
    objs = objects(out)
    assert rc == 0
    assert [o["normalized"] for o in objs] == ["select $1", "select $1", "select $1"]


def test_tags_decoded():
    q = (b"SELECT * FROM t WHERE id = 7 /*controller='users',route='users%2F%3Cint%3Apk%3E',"
         b"traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/\n"
         b"/*application:Shop,action:index*/ SELECT 1\n")
    rc, out, _ = run([], q)
    a, b = objects(out)
    assert rc == 0
    assert a["tags"] == {"controller": "users", "route": "users/<int:pk>",
                         "traceparent": "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01"}
    assert list(a["tags"].keys()) == ["controller", "route", "traceparent"]
    assert b["tags"] == {"application": "Shop", "action": "index"}


def test_json_valid_for_hostile_bytes():
    # control bytes, quotes, backslashes, valid UTF-8 and invalid UTF-8 in names and tags
    q = (b'SELECT "a\x01\x1f\\\\b""c", "\xc3\xa9t\xc3\xa9", "\xff\xfe\xc3" FROM t '
         b"/*k='\x7f\"\\\\',bad:\xff*/\n")
    rc, out, _ = run([], q)
    (o,) = objects(out)
    assert rc == 0
    assert o["normalized"] == 'select "a\x01\x1f\\\\b""c", "\u00e9t\u00e9", "\u00ff\u00fe\u00c3" from t'
    assert o["tags"] == {"k": "\x7f\"\\", "bad": "\u00ff"}  # `\\` is an escaped backslash


def test_incomplete_flag():
    rc, out, _ = run([], b"SELECT * FROM t WHERE name = 'abc\n")
    (o,) = objects(out)
    assert rc == 0 and o["incomplete"] is True
    assert o["normalized"] == "select * from t where name = $1"


def test_missing_file_names_it():
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "ok.sql")
        with open(good, "wb") as f:
            f.write(b"SELECT 1\n")
        missing = os.path.join(d, "nope.sql")
        rc, out, err = run([missing, good])
        assert rc == 2
        assert missing.encode() in err
        assert len(objects(out)) == 1  # the readable file is still processed


def test_unknown_option_is_usage_error():
    rc, out, err = run(["--frobnicate"])
    assert rc == 2 and out == b"" and b"usage" in err


def test_nul_mode_several_files_and_no_trailing_nul():
    with tempfile.TemporaryDirectory() as d:
        f1, f2 = os.path.join(d, "a.sql"), os.path.join(d, "b.sql")
        with open(f1, "wb") as f:
            f.write(b"SELECT 1\nFROM a\0\0BEGIN; SELECT 2 /* k:v */\0")
        with open(f2, "wb") as f:
            f.write(b"SELECT\n3 FROM b")  # last record without its NUL
        rc, out, err = run(["-0", f1, f2])
        assert rc == 0, err
        objs = objects(out)
        assert [o["normalized"] for o in objs] == [
            "select $1 from a", "begin", "select $1", "select $1 from b"]
        assert [o["tags"] for o in objs] == [{}, {"k": "v"}, {"k": "v"}, {}]


def test_tags_after_the_last_statement_apply_to_all():
    # the tag comment comes after every statement of the record, and records do not share tags
    rc, out, _ = run([], b"SELECT 1; SELECT 2; /* a='1' */ /* b:2 */\nSELECT 3\n")
    objs = objects(out)
    assert rc == 0
    assert [o["tags"] for o in objs] == [{"a": "1", "b": "2"}, {"a": "1", "b": "2"}, {}]
    assert [o["normalized"] for o in objs] == ["select $1", "select $1", "select $1"]


def test_incomplete_flag_per_statement():
    rc, out, _ = run([], b"SELECT 1; SELECT 'abc\n")
    a, b = objects(out)
    assert rc == 0 and a["incomplete"] is False and b["incomplete"] is True


def test_unreadable_file_exit_2():
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "ok.sql")
        with open(good, "wb") as f:
            f.write(b"SELECT 1\n")
        # a directory opens but cannot be read: the error names it, the other file still runs
        rc, out, err = run([d, good])
        assert rc == 2
        assert d.encode() in err and b"read error" in err
        assert len(objects(out)) == 1


def test_invalid_utf8_everywhere():
    # invalid bytes in a quoted name, a string literal (hashed into values, not printed) and a
    # tag; a truncated sequence at the very end of the record
    q = b'SELECT "\x80x", \'\xff\' FROM t /*k=\'\xc3\'*/ WHERE a = "\xe2\x82"\n'
    rc, out, _ = run([], q)
    (o,) = objects(out)
    assert rc == 0
    assert o["normalized"] == 'select "\u0080x", $1 from t where a = "\u00e2\u0082"'
    assert o["tags"] == {"k": "\u00c3"}
    assert b"\\u0080x" in out  # escaped as \u0080 in the bytes, not passed through


def test_tag_bytes_never_join_across_keys_and_values():
    # A key ending in a lead byte and a value starting with a continuation byte are each
    # invalid UTF-8 alone, though the two side by side would read as "\u00e9": each is
    # escaped on its own. Plain tags are copied as they are, escaped ones not.
    q = (b"SELECT 1 /* x%C3='%A9',plain='caf%C3%A9',q='a%22b' */\n"
         b"SELECT 2 /* k='v%C3',%A9k='w' */\n")
    rc, out, _ = run([], q)
    a, b = objects(out)
    assert rc == 0
    assert a["tags"] == {"x\u00c3": "\u00a9", "plain": "caf\u00e9", "q": 'a"b'}, a["tags"]
    assert b"\\u00c3" in out and b"\\u00a9" in out and b"caf\xc3\xa9" in out
    assert b["tags"] == {"k": "v\u00c3", "\u00a9k": "w"}, b["tags"]


def latin1_for_bad_bytes(err):
    """What the escaper prints for bytes that are not UTF-8: each as its Latin-1 code point."""
    return "".join(chr(b) for b in err.object[err.start:err.end]), err.end


def test_every_byte_value_in_long_names():
    # every byte but NUL and `"`, alone and inside valid and broken UTF-8, in names long enough
    # for the escaper's block-at-a-time paths (runs of quotes, controls, high bytes at every
    # offset of a 16-byte block)
    codecs.register_error("pgtally_latin1", latin1_for_bad_bytes)
    body = bytes(b for b in range(1, 256) if b != ord('"'))
    names = [body, body[::-1], b"\xe2\x82\xac\xf0\x9f\x98\x80x\xc3" * 9, b'a""' * 40,
             b"\\\\" * 33 + b"\x7f", b"abcdefghijklmno\x01" * 5]
    for k in range(17):
        names.append(b"x" * k + b'""\\' + b"y" * (31 - k) + b"\xc3\xa9\xff")
    sql = b"\0".join(b'SELECT "' + n + b'" FROM t' for n in names)
    rc, out, _ = run(["-0"], sql)
    objs = objects(out)
    assert rc == 0 and len(objs) == len(names)
    for n, o in zip(names, objs):
        assert o["normalized"] == 'select "%s" from t' % n.decode("utf-8", "pgtally_latin1")


def test_long_records_and_many_records_across_reads():
    # records longer than one read, and many short ones crossing read boundaries
    cols = ", ".join('"c%d"' % i for i in range(60000))  # about 0.5 MB on one line
    long_sql = ("SELECT %s FROM \"t\" WHERE \"id\" = 7" % cols).encode()
    short = b"".join(b"SELECT %d FROM \"t%d\"\n" % (i, i % 7) for i in range(40000))
    rc, out, err = run([], short + long_sql + b"\n" + short + long_sql)
    assert rc == 0, err
    objs = objects(out)
    assert len(objs) == 80002
    assert objs[40000]["normalized"].startswith('select "c0", "c1", ')
    assert objs[40000]["normalized"].endswith(' from "t" where "id" = $1')
    assert objs[80001]["fingerprint"] == objs[40000]["fingerprint"]
    assert objs[1]["normalized"] == 'select $1 from "t1"'
    assert objs[40001]["fingerprint"] == objs[0]["fingerprint"]


def test_output_not_held_back_while_waiting_for_input():
    # `tail -f log | pgtally fingerprint`: a finished line is printed before the input ends
    p = subprocess.Popen([BIN, "fingerprint"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        p.stdin.write(b"SELECT 1\n")
        p.stdin.flush()
        ready, _, _ = select.select([p.stdout], [], [], 30)
        assert ready, "no output while the input is still open"
        (o,) = objects(p.stdout.readline())
        assert o["normalized"] == "select $1"
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()


def test_write_error_exit_2():
    # standard output closed: the command says so and fails instead of losing output silently
    p = subprocess.run([BIN, "fingerprint"], input=b"SELECT 1\n", stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60,
                       preexec_fn=lambda: os.close(1))
    assert p.returncode == 2 and b"write error" in p.stderr


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("PGTALLY_BIN is not an executable: %r" % BIN)
        return 1
    rc, out, _ = run(["--help"])
    if b"usage: pgtally fingerprint" not in out:
        print("SKIP: %s does not dispatch `fingerprint` yet" % BIN)
        return 77
    for fn in [test_help_exits_zero, test_stdin_one_per_line, test_empty_lines_print_nothing,
               test_several_statements_per_line, test_files_in_order_and_dash_for_stdin,
               test_nul_separated_records, test_tags_decoded, test_json_valid_for_hostile_bytes,
               test_incomplete_flag, test_missing_file_names_it,
               test_unknown_option_is_usage_error, test_nul_mode_several_files_and_no_trailing_nul,
               test_tags_after_the_last_statement_apply_to_all, test_incomplete_flag_per_statement,
               test_unreadable_file_exit_2, test_every_byte_value_in_long_names,
               test_invalid_utf8_everywhere, test_tag_bytes_never_join_across_keys_and_values,
               test_long_records_and_many_records_across_reads,
               test_output_not_held_back_while_waiting_for_input,
               test_write_error_exit_2]:
        case(fn)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
