#!/usr/bin/env python3
"""protocol/gen_keywords.py — writes protocol/sqlkeywords.h, the normalizer's keyword table.

Owns: turning PostgreSQL's keyword list (src/include/parser/kwlist.h, shipped by Debian in
postgresql-server-dev-NN) plus pgtally's own word sets (the rules of
docs/normalization-spec.md, below) into one C header: the keyword ids, their PostgreSQL
category and bare-label status, the rule flags, and a lookup function.

Only the rule word sets and the few PL/pgSQL words are pgtally's; every other fact comes from
kwlist.h. The output is checked in; the `sqlkeywords_drift` test regenerates it into the build
directory and fails when the two differ, so neither can be edited alone.

Usage:
  gen_keywords.py [--kwlist PATH] [--pg-version NN] [-o OUT]
  gen_keywords.py --check CHECKED_IN [--kwlist PATH] -o OUT
      regenerate into OUT with the PostgreSQL version CHECKED_IN was made from, and fail
      (exit 1, with a diff) when OUT differs from CHECKED_IN; exit 77 (skipped) when that
      version's kwlist.h is not installed.
Standard library only.
"""

import argparse
import difflib
import os
import re
import sys

# ---- pgtally's data: the word sets of the normalization rules ---------------------------
#
# Each flag is the set of words a rule names. Words must be PostgreSQL keywords (kwlist.h),
# or listed in PLPGSQL_WORDS. Changing a set changes N and F for some statements: it is a
# change of the spec (docs/normalization-spec.md), not of this table.

RULE_FLAGS = [
    # (flag, rule, meaning, words)
    ("KWF_OPERAND", "R21", "the set U: an operand may follow",
     """select where and or not when then else case between like ilike similar by limit
        offset having on returning distinct all any some is in values set from using with as
        return to do default escape fetch first next exists array row over filter within if
        elsif while until perform"""),
    ("KWF_TSTOP", "R27", "ends a type context",
     """all and any array as asc at between by case collate cross default desc distinct do
        else elsif end escape except exists fetch filter first for from full group groups
        having if ilike in inner intersect into is isnull join lateral left like limit natural
        next not notnull nulls offset on or order outer over partition perform range return
        returning right row rows select set similar some then union until using values when
        where while window within"""),
    ("KWF_OBEND", "R26", "ends an ORDER BY / GROUP BY clause",
     """limit offset fetch for having window union intersect except returning on"""),
    ("KWF_OBFOLLOW", "R26", "may follow a positional item",
     """asc desc nulls order limit offset fetch for having window union intersect except
        using"""),
    ("KWF_SPACED", "R35", "never a function name, so `(` after it is always spaced",
     """and as between by case default distinct do else elsif escape fetch first from having
        in is like ilike limit next not offset on or perform return returning select set
        similar then to until using values when where while with"""),
]

# Words the rules name that are not SQL keywords: PL/pgSQL statements, met in function bodies
# sent as SQL text (DO blocks). They get ids like keywords, with the category KWCAT_PLPGSQL.
PLPGSQL_WORDS = ["elsif", "perform", "while"]

# ---- PostgreSQL's data ------------------------------------------------------------------

DEFAULT_KWLIST = "/usr/include/postgresql/{v}/server/parser/kwlist.h"
DEFAULT_PG_VERSION = "15"

CATEGORIES = [
    # (C name, kwlist.h name, comment)
    ("KWCAT_PLPGSQL", None, "not a PostgreSQL keyword: a PL/pgSQL word the rules name"),
    ("KWCAT_UNRESERVED", "UNRESERVED_KEYWORD", "usable as any name"),
    ("KWCAT_COL_NAME", "COL_NAME_KEYWORD", "a column name, not a function or type name"),
    ("KWCAT_TYPE_FUNC_NAME", "TYPE_FUNC_NAME_KEYWORD",
     "a function or type name, not a column name"),
    ("KWCAT_RESERVED", "RESERVED_KEYWORD", "never a name unless quoted (AS labels aside)"),
]

KW_RE = re.compile(r'^PG_KEYWORD\("([a-z_]+)",\s*(\w+),\s*(\w+),\s*(BARE_LABEL|AS_LABEL)\)'
                   r'\s*(/\*.*\*/)?\s*$')


class GenError(Exception):
    pass


def read_kwlist(path):
    """[(word, category C name, bare_label)] in kwlist.h's (ASCII) order."""
    cat_of = {k: c for c, k, _ in CATEGORIES if k}
    out = []
    with open(path, encoding="ascii") as f:
        for n, line in enumerate(f, 1):
            if not line.startswith("PG_KEYWORD"):
                continue
            m = KW_RE.match(line)
            if not m or m.group(3) not in cat_of:
                raise GenError(f"{path}:{n}: unexpected PG_KEYWORD line: {line.strip()}")
            out.append((m.group(1), cat_of[m.group(3)], m.group(4) == "BARE_LABEL"))
    if len(out) < 100:
        raise GenError(f"{path}: only {len(out)} keywords; is this kwlist.h?")
    return out


def build(kwlist):
    """The keyword table: [(word, category, bare_label, [flags])], sorted by word."""
    words = {w: (cat, bare) for w, cat, bare in kwlist}
    for w in PLPGSQL_WORDS:
        if w in words:
            raise GenError(f"'{w}' is a PostgreSQL keyword now: drop it from PLPGSQL_WORDS")
        words[w] = ("KWCAT_PLPGSQL", False)
    for w in words:
        if not re.fullmatch(r"[a-z_]+", w):  # the lookup reads them as ASCII bytes
            raise GenError(f"keyword '{w}' is not made of ASCII letters and '_'")
    flags = {w: [] for w in words}
    for flag, rule, _, text in RULE_FLAGS:
        ws = text.split()
        if len(set(ws)) != len(ws):
            raise GenError(f"{flag}: a word is listed twice")
        for w in ws:
            if w not in flags:
                raise GenError(f"{flag} ({rule}): '{w}' is neither in kwlist.h "
                               "nor in PLPGSQL_WORDS")
            flags[w].append(flag)
    return [(w, words[w][0], words[w][1], flags[w]) for w in sorted(words)]


# C names the generator uses besides KW_<WORD>: a keyword spelling one of them is an error.
RESERVED_NAMES = {"KW_NOT_KEYWORD", "KW_COUNT", "KW_MIN_LEN", "KW_MAX_LEN"}


def ident(word):
    name = "KW_" + word.upper()
    if name in RESERVED_NAMES:
        raise GenError(f"keyword '{word}' would be named {name}, which the generator uses")
    return name


# ---- the lookup: a two-level perfect hash over (head, tail, length) ---------------------
#
# A word of n bytes is read as two little-endian integers: `head`, its first 8 bytes (zero
# past the word), and `tail`, its last 8 bytes when n > 8 (else 0). For n <= 16 the pair and
# n fix the word; a longer keyword (17 bytes at most) also compares its middle bytes. The key
# mixes the three; a bucket (256) picks a displacement, and the displaced key a slot (1024),
# which holds the only keyword that can match: then one compare. No switch and no loads from
# the word: the caller may hand over head and tail straight from registers.
M64 = (1 << 64) - 1
KW_TAIL_MUL = 0x9E3779B97F4A7C15
KW_BUCKET_MUL = 0xD6E8FEB86659FD93
KW_SLOT_MUL = 0xFF51AFD7ED558CCD
KW_BUCKET_BITS = 8
KW_SLOT_BITS = 10


def kw_key(word):
    b = word.encode("ascii")
    head = int.from_bytes(b[:8].ljust(8, b"\0"), "little")
    tail = int.from_bytes(b[-8:], "little") if len(b) > 8 else 0
    return head, tail, (head ^ ((tail * KW_TAIL_MUL) & M64) ^ len(b)) & M64


def kw_bucket(key):
    return ((key * KW_BUCKET_MUL) & M64) >> (64 - KW_BUCKET_BITS)


def kw_slot(key, disp):
    return (((key ^ disp) * KW_SLOT_MUL) & M64) >> (64 - KW_SLOT_BITS)


def place(table):
    """The displacements and slots: buckets with the most words first, each given the
    smallest displacement that sends all its words to free slots."""
    keys = {w: kw_key(w)[2] for w, *_ in table}
    if len(set(keys.values())) != len(keys):
        raise GenError("two keywords share a hash key: change KW_TAIL_MUL")
    ids = {w: i + 1 for i, (w, *_) in enumerate(table)}
    buckets = {}
    for w in keys:
        buckets.setdefault(kw_bucket(keys[w]), []).append(w)
    disp = [0] * (1 << KW_BUCKET_BITS)
    slots = [0] * (1 << KW_SLOT_BITS)
    for b in sorted(buckets, key=lambda b: (-len(buckets[b]), b)):
        for d in range(1 << 16):
            want = [kw_slot(keys[w], d) for w in buckets[b]]
            if len(set(want)) == len(want) and all(slots[s] == 0 for s in want):
                break
        else:
            raise GenError(f"bucket {b}: no displacement fits: change the multipliers")
        disp[b] = d
        for w, s in zip(buckets[b], want):
            slots[s] = ids[w]
    return disp, slots


def c_table(ctype, name, size, values, per_line):
    out = ["/* clang-format off */", f"static const {ctype} {name}[{size}] = {{"]
    for i in range(0, len(values), per_line):
        out.append("    " + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    out.append("};")
    out.append("/* clang-format on */")
    return out


def c_lookup(table):
    maxw = max(len(w) for w, *_ in table)
    if maxw > 24:
        raise GenError(f"a keyword of {maxw} bytes: the lookup covers 24 at most")
    disp, slots = place(table)
    o = []
    o.append("/* The lookup: a two-level perfect hash (gen_keywords.py says how it is built). "
             "A word is read")
    o.append(" * as its first 8 bytes (`head`, zero past the word) and its last 8 (`tail`, 0 "
             "for 8 bytes or")
    o.append(" * fewer), little-endian; the key mixes them with the length, a bucket gives a "
             "displacement,")
    o.append(" * and the displaced key a slot holding the one keyword that can match. */")
    o.append(f"#define KW_TAIL_MUL 0x{KW_TAIL_MUL:X}ULL")
    o.append(f"#define KW_BUCKET_MUL 0x{KW_BUCKET_MUL:X}ULL")
    o.append(f"#define KW_SLOT_MUL 0x{KW_SLOT_MUL:X}ULL")
    o.append(f"#define KW_BUCKET_BITS {KW_BUCKET_BITS}")
    o.append(f"#define KW_SLOT_BITS {KW_SLOT_BITS}")
    o.append("")
    o.extend(c_table("uint16_t", "kw_disp", "1 << KW_BUCKET_BITS", disp, 16))
    o.append("")
    o.extend(c_table("uint16_t", "kw_slots", "1 << KW_SLOT_BITS", slots, 16))
    o.append("")
    o.append("/* Each keyword's head, tail and length, as the lookup computes them for the "
             "word. */")
    o.append("typedef struct SqlKeywordKey {")
    o.append("    uint64_t head;")
    o.append("    uint64_t tail;")
    o.append("    uint8_t len;")
    o.append("} SqlKeywordKey;")
    o.append("")
    o.append("static const SqlKeywordKey kw_keys[KW_COUNT] = {")
    o.append("    [KW_NOT_KEYWORD] = {0, 0, 0},")
    for w, *_ in table:
        head, tail, _ = kw_key(w)
        line = f"    [{ident(w)}] = {{0x{head:x}ULL, 0x{tail:x}ULL, {len(w)}}},"
        if len(line) > 100:
            o.append(f"    [{ident(w)}] =")
            line = f"        {{0x{head:x}ULL, 0x{tail:x}ULL, {len(w)}}},"
        o.append(line)
    o.append("};")
    o.append("")
    o.append("static inline uint64_t kw_load64(const char *p)")
    o.append("{")
    o.append("    uint64_t v;")
    o.append("    memcpy(&v, p, sizeof(v));")
    o.append("#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__")
    o.append("    v = __builtin_bswap64(v);")
    o.append("#endif")
    o.append("    return v;")
    o.append("}")
    o.append("")
    o.append("/* The keyword whose head, tail and length these are, or KW_NOT_KEYWORD. `w` is "
             "read only")
    o.append(" * for a word longer than 16 bytes (its middle bytes), and may be NULL "
             "otherwise. Any length")
    o.append(" * is safe: one that no keyword has fails the length compare (slot 0 has "
             "length 0). */")
    o.append("static inline SqlKeyword kw_find(uint64_t head, uint64_t tail, size_t len, "
             "const char *w)")
    o.append("{")
    o.append("    uint64_t key = head ^ (tail * KW_TAIL_MUL) ^ len;")
    o.append("    uint64_t disp = kw_disp[(key * KW_BUCKET_MUL) >> (64 - KW_BUCKET_BITS)];")
    o.append("    unsigned kw = kw_slots[((key ^ disp) * KW_SLOT_MUL) >> (64 - KW_SLOT_BITS)];")
    o.append("    const SqlKeywordKey *k = &kw_keys[kw];")
    o.append("    if (k->head != head || k->tail != tail || k->len != len)")
    o.append("        return KW_NOT_KEYWORD;")
    o.append("    if (len > 16 && memcmp(w + 8, kw_info[kw].word + 8, len - 16) != 0)")
    o.append("        return KW_NOT_KEYWORD;")
    o.append("    return (SqlKeyword)kw;")
    o.append("}")
    o.append("")
    o.append("/* The keyword in the first `len` bytes (at most 16) of a 16-byte block held as two "
             "little-endian")
    o.append(" * integers, `lo` (bytes 0-7) and `hi` (8-15), already lowercased; the bytes past "
             "the word are")
    o.append(" * ignored. */")
    o.append("static inline SqlKeyword kw_find_block(uint64_t lo, uint64_t hi, size_t len)")
    o.append("{")
    o.append("    if (len < KW_MIN_LEN || len > 16)")
    o.append("        return KW_NOT_KEYWORD;")
    o.append("    uint64_t head = len >= 8 ? lo : lo & (~0ULL >> (64 - 8 * len));")
    o.append("    size_t shift = len > 8 ? 8 * (len - 8) : 8; /* tail: bytes len-8 .. len */")
    o.append("    uint64_t tail = len > 8 ? ((lo >> (shift - 8)) >> 8) | (hi << (64 - shift)) : 0;")
    o.append("    return kw_find(head, tail, len, NULL);")
    o.append("}")
    o.append("")
    o.append("/* `w` holds `len` bytes, already lowercased (ASCII); KW_NOT_KEYWORD when it is "
             "no keyword.")
    o.append(" * Reads only w[0 .. len). */")
    o.append("static inline SqlKeyword kw_lookup(const char *w, size_t len)")
    o.append("{")
    o.append("    if (len < KW_MIN_LEN || len > KW_MAX_LEN)")
    o.append("        return KW_NOT_KEYWORD;")
    o.append("    uint64_t head = 0, tail = 0;")
    o.append("    if (len >= 8) {")
    o.append("        head = kw_load64(w);")
    o.append("        if (len > 8)")
    o.append("            tail = kw_load64(w + len - 8);")
    o.append("    } else {")
    o.append("        for (size_t i = 0; i < len; i++)")
    o.append("            head |= (uint64_t)(unsigned char)w[i] << (8 * i);")
    o.append("    }")
    o.append("    return kw_find(head, tail, len, w);")
    o.append("}")
    return o


def generate(table, pg_version):
    maxw = max(len(w) for w, *_ in table)
    minw = min(len(w) for w, *_ in table)
    n_pg = sum(1 for _, cat, _, _ in table if cat != "KWCAT_PLPGSQL")
    o = []
    o.append(f"/* protocol/sqlkeywords.h — generated by protocol/gen_keywords.py from PostgreSQL "
             f"{pg_version}")
    o.append(" * kwlist.h; do not edit: change the generator and run it again "
             "(protocol/README.md).")
    o.append(" *")
    o.append(f" * Owns: the normalizer's keyword table: {n_pg} PostgreSQL keywords and "
             f"{len(table) - n_pg} PL/pgSQL words,")
    o.append(" * each with an id, its PostgreSQL category and bare-label status, and the flags of "
             "the")
    o.append(" * normalization rules (docs/normalization-spec.md, R9a) that name it. Included by "
             "sqlnorm.c. */")
    o.append("#ifndef PGTALLY_PROTOCOL_SQLKEYWORDS_H")
    o.append("#define PGTALLY_PROTOCOL_SQLKEYWORDS_H")
    o.append("")
    o.append("#include <stdbool.h>")
    o.append("#include <stddef.h>")
    o.append("#include <stdint.h>")
    o.append("#include <string.h>")
    o.append("")
    o.append(f'#define SQLKW_PG_VERSION "{pg_version}"')
    o.append("/* Lengths of the shortest and the longest keyword. */")
    o.append(f"#define KW_MIN_LEN {minw}")
    o.append(f"#define KW_MAX_LEN {maxw}")
    o.append("")
    o.append("/* What the rules do with a keyword (a bit set, see kw_flags). */")
    o.append("typedef enum SqlKeywordFlag {")
    width = max(len(f) for f, *_ in RULE_FLAGS) + len(" = 1 << 0,")
    for i, (flag, rule, meaning, _) in enumerate(RULE_FLAGS):
        lhs = f"    {flag} = 1 << {i},"
        o.append(f"{lhs:<{width + 4}} /* {rule}: {meaning} */")
    o.append("} SqlKeywordFlag;")
    o.append("")
    o.append("/* PostgreSQL's keyword categories (where a keyword may serve as a name). */")
    o.append("typedef enum SqlKeywordCategory {")
    width = max(len(c) for c, *_ in CATEGORIES) + 1
    for c, _, comment in CATEGORIES:
        lhs = f"    {c},"
        o.append(f"{lhs:<{width + 4}} /* {comment} */")
    o.append("} SqlKeywordCategory;")
    o.append("")
    o.append("/* Keyword ids, in ASCII order of the words; KW_NOT_KEYWORD is any other word. */")
    o.append("typedef enum SqlKeyword {")
    o.append("    KW_NOT_KEYWORD = 0,")
    for w, *_ in table:
        o.append(f"    {ident(w)},")
    o.append("    KW_COUNT")
    o.append("} SqlKeyword;")
    o.append("")
    o.append("/* Read for every word the normalizer emits, so kept apart from the rest. */")
    o.append("static const uint8_t kw_flags[KW_COUNT] = {")
    for w, _, _, flags in table:
        if flags:
            o.append(f"    [{ident(w)}] = {' | '.join(flags)},")
    o.append("};")
    o.append("")
    o.append("typedef struct SqlKeywordInfo {")
    o.append("    const char *word;")
    o.append("    uint8_t category; /* SqlKeywordCategory */")
    o.append("    bool bare_label;  /* may be a column label without AS */")
    o.append("} SqlKeywordInfo;")
    o.append("")
    o.append("static const SqlKeywordInfo kw_info[KW_COUNT] = {")
    o.append('    [KW_NOT_KEYWORD] = {"", KWCAT_PLPGSQL, false},')
    for w, cat, bare, _ in table:
        o.append(f'    [{ident(w)}] = {{"{w}", {cat}, {"true" if bare else "false"}}},')
    o.append("};")
    o.append("")
    o.extend(c_lookup(table))
    o.append("")
    o.append("#endif")
    return "\n".join(o) + "\n"


def version_of(path):
    with open(path, encoding="utf-8") as f:
        m = re.search(r"from PostgreSQL (\d+)", f.readline())
    if not m:
        raise GenError(f"{path}: no 'from PostgreSQL NN' in its first line")
    return m.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kwlist", help="PostgreSQL's kwlist.h (default: " + DEFAULT_KWLIST + ")")
    ap.add_argument("--pg-version", help="the version kwlist.h is from (default: from its path)")
    ap.add_argument("--check", metavar="CHECKED_IN", help="fail when the output differs from this")
    ap.add_argument("-o", "--output", help="file to write (default: stdout)")
    a = ap.parse_args()
    try:
        version = a.pg_version
        if a.check:
            version = version or version_of(a.check)
        kwlist = a.kwlist or DEFAULT_KWLIST.format(v=version or DEFAULT_PG_VERSION)
        if not version:
            m = re.search(r"postgresql/(\d+)/", kwlist)
            version = m.group(1) if m else DEFAULT_PG_VERSION
        if not os.path.exists(kwlist):
            if a.check:
                print(f"SKIP: {kwlist} is absent (install postgresql-server-dev-{version}); "
                      "the keyword table was not checked against it", file=sys.stderr)
                return 77
            raise GenError(f"{kwlist}: not found (install postgresql-server-dev-{version})")
        text = generate(build(read_kwlist(kwlist)), version)
    except (GenError, OSError) as e:
        print(f"gen_keywords: {e}", file=sys.stderr)
        return 2
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if a.check:
        with open(a.check, encoding="utf-8") as f:
            old = f.read()
        if old != text:
            sys.stderr.writelines(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), a.check, a.output or "generated"))
            print(f"{a.check} differs from what protocol/gen_keywords.py makes of {kwlist}: "
                  "change the generator, not its output, and regenerate", file=sys.stderr)
            return 1
        print(f"{a.check}: matches {kwlist}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
