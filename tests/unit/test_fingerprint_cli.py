#!/usr/bin/python3
"""tests/unit/test_fingerprint_cli.py — `pgtally fingerprint` end to end.

The binary comes from the PGTALLY_BIN environment variable (meson sets it from pgtally_exe).
Covers stdin, files, -0, several statements per line, tags, JSON validity for hostile bytes,
and errors (missing file, unknown option). Prints "N passed, N failed"; exit 77 (skip) when
the binary does not dispatch the subcommand yet.
"""
import json
import os
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
               test_unknown_option_is_usage_error]:
        case(fn)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
