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
        if not ("a" <= w[0] <= "z"):  # the lookup's first switch relies on it
            raise GenError(f"keyword '{w}' does not start with a letter")
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


# Candidates one chain of compares may hold before the bucket is split again on the last byte.
CHAIN_MAX = 4


def loads(n):
    """The loads that cover a word of length n: [(C type bits, offset)]. Two overlapping
    loads cover 2..16 bytes, three cover 17..24; each reads only inside the word."""
    if n == 2:
        return [(16, 0)]
    if n <= 4:
        return [(16, 0), (16, n - 2)] if n == 3 else [(32, 0)]
    if n <= 8:
        return [(32, 0), (32, n - 4)] if n < 8 else [(64, 0)]
    if n <= 16:
        return [(64, 0), (64, n - 8)]
    if n <= 24:
        return [(64, 0), (64, 8), (64, n - 8)]
    raise GenError(f"no keyword is {n} bytes long; the lookup covers at most 24")


def c_const(word, bits, off):
    """The little-endian integer of word[off:off + bits/8], in the host's byte order."""
    v = int.from_bytes(word[off:off + bits // 8].encode("ascii"), "little")
    return f"SQLKW_LE{bits}(0x{v:0{bits // 4}x})"


def c_chain(words, n, indent):
    out = []
    ld = loads(n)
    for w in words:
        parts = [f"x{i} == {c_const(w, bits, off)}" for i, (bits, off) in enumerate(ld)]
        line = f"{indent}if ("
        for i, part in enumerate(parts):  # wrapped as clang-format would, at 100 columns
            tail = ")" if i == len(parts) - 1 else " &&"
            if len(line) + len(part) + len(tail) > 100:
                out.append(line.rstrip())
                line = indent + "    "
            line += part + tail + " "
        out.append(line.rstrip())
        out.append(f"{indent}    return {ident(w)};")
    out.append(f"{indent}return KW_NOT_KEYWORD;")
    return out


def c_lookup(table):
    """One switch on the length and the first byte (then one on the last byte, for the few
    crowded buckets), then integer compares: the word is read as two or three overlapping
    integers, and each candidate costs one compare per integer, with constants."""
    by_len = {}
    for w, *_ in table:
        by_len.setdefault(len(w), {}).setdefault(w[0], []).append(w)
    out = []
    out.append("/* Little-endian constants in the host's byte order (folded at compile time). */")
    out.append("#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__")
    for bits in (16, 32, 64):
        out.append(f"#define SQLKW_LE{bits}(v) ((uint{bits}_t)(v))")
    out.append("#else")
    for bits in (16, 32, 64):
        out.append(f"#define SQLKW_LE{bits}(v) __builtin_bswap{bits}((uint{bits}_t)(v))")
    out.append("#endif")
    out.append("")
    for bits in (16, 32, 64):
        out.append(f"static inline uint{bits}_t kw_load{bits}(const char *p)")
        out.append("{")
        out.append(f"    uint{bits}_t v;")
        out.append("    memcpy(&v, p, sizeof(v));")
        out.append("    return v;")
        out.append("}")
        out.append("")
    out.append("/* One switch on the length and the first byte together: keywords start with a "
               "letter, and")
    out.append(" * the low 5 bits tell letters apart (any other byte that aliases one fails the "
               "compares). */")
    out.append("#define SQLKW_KEY(len, c) ((len) << 5 | ((c)&0x1f))")
    out.append("")
    out.append("/* `w` holds `len` bytes, already lowercased (ASCII); KW_NOT_KEYWORD when it is "
               "no keyword.")
    out.append(" * Reads only w[0 .. len). */")
    out.append("static inline SqlKeyword kw_lookup(const char *w, size_t len)")
    out.append("{")
    out.append("    if (len < KW_MIN_LEN || len > KW_MAX_LEN)")
    out.append("        return KW_NOT_KEYWORD;")
    out.append("    switch (SQLKW_KEY(len, (unsigned char)w[0])) {")
    for n in sorted(by_len):
        for c in sorted(by_len[n]):
            out.append(f"    case SQLKW_KEY({n}, '{c}'): {{")
            for i, (bits, off) in enumerate(loads(n)):
                at = f"w + {off}" if off else "w"
                out.append(f"        const uint{bits}_t x{i} = kw_load{bits}({at});")
            words = by_len[n][c]
            if len(words) <= CHAIN_MAX:
                out.extend(c_chain(words, n, " " * 8))
                out.append("    }")
                continue
            by_last = {}
            for w in words:
                by_last.setdefault(w[-1], []).append(w)
            out.append(f"        switch (w[{n - 1}]) {{")
            for z in sorted(by_last):
                out.append(f"        case '{z}':")
                out.extend(c_chain(by_last[z], n, " " * 12))
            out.append("        default:")
            out.append("            return KW_NOT_KEYWORD;")
            out.append("        }")
            out.append("    }")
    out.append("    default:")
    out.append("        return KW_NOT_KEYWORD;")
    out.append("    }")
    out.append("}")
    return out


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
