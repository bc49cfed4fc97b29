/* protocol/sqlnorm — the SQL normalizer (spec v1: docs/normalization-spec.md, rules cited R<n>).
 *
 * Owns: lexing SQL text (one forward pass, table-driven character classes, no allocation)
 * and emitting per statement the normalized text N, its fingerprint F, the literal-values
 * hash V and the `incomplete` flag; tag comments are handed to sqltags as they are met.
 *
 * How it works. A lexer (lex_*) turns bytes into tokens, skipping whitespace and comments.
 * The emitter (norm_*) writes each token at once, with placeholders as a bare `$`, and keeps
 * a small amount of context: the previous token (spacing, operand position R21, IS/NOT for
 * R24-25), a bounded stack of open brackets (IN/ARRAY lists R30-31, VALUES rows R32, CAST and
 * typmods R27, ORDER BY items R26), and a few statement-level states (R28 names, UESCAPE).
 * Lists are collapsed on the fly (R33): each element is compared with the first when it
 * ends and, if equal, cut off at once; the rare list that later differs is re-expanded by
 * copying. Only when the statement is complete are the `$` numbered (R34), in one pass that
 * copies the text to the front of the caller's buffer, and the hashes computed.
 *
 * Output buffer layout: [0, reserve) receives the numbered text; the unnumbered text is
 * written from `reserve` on. Numbering only ever grows the text by at most `reserve` bytes
 * in total, so the numbered copy never overtakes the unnumbered text it is reading. */
#include "protocol/sqlnorm.h"

#include <string.h>

#include "protocol/sqlkeywords.h" /* generated: protocol/gen_keywords.py */

#define XXH_INLINE_ALL /* F and V are hashed per statement: let the compiler inline XXH3 */
#include <xxhash.h>

/* Deepest bracket nesting that keeps its own context. Deeper brackets still nest correctly
 * for statement splitting, but lists inside them are not collapsed (deterministic, so still
 * idempotent). */
#define NORM_MAX_DEPTH 64

/* Placeholder positions remembered per statement for numbering (beyond: a rescan). */
#define NORM_PH_TRACKED 256

/* Literal text for V is batched here and hashed in one call when it fits (the usual case). */
#define NORM_VBUF 512

static const char norm_list_marker[] = " /*, ... */"; /* R36 */
#define NORM_LIST_MARKER_LEN (sizeof(norm_list_marker) - 1)

/* ---- character classes (R5, R9, R16, R17, R19) ---- */

enum {
    C_SPACE = 1 << 0,  /* R5: whitespace and every other control byte */
    C_WSTART = 1 << 1, /* R9: first byte of a word */
    C_WCONT = 1 << 2,  /* R9: later bytes of a word (digits and `$` too) */
    C_DIGIT = 1 << 3,
    C_OP = 1 << 4,     /* R19: operator bytes */
    C_OPSPEC = 1 << 5, /* R19: operator bytes that keep a trailing +/- attached */
    C_NUM = 1 << 6,    /* R17: bytes a number extends over, besides `.` and an exponent sign */
    C_TAG = 1 << 7,    /* R16: later bytes of a dollar-quote tag (a word byte, but not `$`) */
};

#define C_LETTER (C_WSTART | C_WCONT | C_TAG | C_NUM)

static const uint8_t norm_cls[256] = {
    [0 ... 32] = C_SPACE,
    [127] = C_SPACE,
    ['A' ... 'Z'] = C_LETTER,
    ['a' ... 'z'] = C_LETTER,
    ['_'] = C_LETTER,
    [0x80 ... 0xFF] = C_WSTART | C_WCONT | C_TAG,
    ['0' ... '9'] = C_WCONT | C_TAG | C_DIGIT | C_NUM,
    ['$'] = C_WCONT,
    ['+'] = C_OP,
    ['-'] = C_OP,
    ['*'] = C_OP,
    ['/'] = C_OP,
    ['<'] = C_OP,
    ['>'] = C_OP,
    ['='] = C_OP,
    ['~'] = C_OP | C_OPSPEC,
    ['!'] = C_OP | C_OPSPEC,
    ['@'] = C_OP | C_OPSPEC,
    ['#'] = C_OP | C_OPSPEC,
    ['%'] = C_OP | C_OPSPEC,
    ['^'] = C_OP | C_OPSPEC,
    ['&'] = C_OP | C_OPSPEC,
    ['|'] = C_OP | C_OPSPEC,
    ['`'] = C_OP | C_OPSPEC,
    ['?'] = C_OP | C_OPSPEC,
};

/* What a byte starts, for the lexer's one switch per token. */
enum {
    S_OTHER = 0, /* a byte SQL gives no meaning outside literals (`\`, `{`, `}`) */
    S_SPACE,
    S_WORD,
    S_PREFIX,  /* e b x n: E'', B'', X'', N'' when a quote touches it (R12, R14) */
    S_UPREFIX, /* u: U&'' and U&"" (R10, R13) */
    S_DIGIT,
    S_DOT,
    S_QUOTE,
    S_DQUOTE,
    S_DOLLAR,
    S_OP,
    S_DASH,  /* - : an operator, or a line comment (R6) */
    S_SLASH, /* / : an operator, or a block comment (R7) */
    S_PERCENT,
    S_COLON,
    S_LPAREN,
    S_RPAREN,
    S_LBRACK,
    S_RBRACK,
    S_COMMA,
    S_SEMI,
};

static const uint8_t norm_start[256] = {
    [0 ... 32] = S_SPACE,
    [127] = S_SPACE,
    ['A'] = S_WORD,
    ['B'] = S_PREFIX,
    ['C' ... 'D'] = S_WORD,
    ['E'] = S_PREFIX,
    ['F' ... 'M'] = S_WORD,
    ['N'] = S_PREFIX,
    ['O' ... 'T'] = S_WORD,
    ['U'] = S_UPREFIX,
    ['V' ... 'W'] = S_WORD,
    ['X'] = S_PREFIX,
    ['Y' ... 'Z'] = S_WORD,
    ['a'] = S_WORD,
    ['b'] = S_PREFIX,
    ['c' ... 'd'] = S_WORD,
    ['e'] = S_PREFIX,
    ['f' ... 'm'] = S_WORD,
    ['n'] = S_PREFIX,
    ['o' ... 't'] = S_WORD,
    ['u'] = S_UPREFIX,
    ['v' ... 'w'] = S_WORD,
    ['x'] = S_PREFIX,
    ['y' ... 'z'] = S_WORD,
    ['_'] = S_WORD,
    [0x80 ... 0xFF] = S_WORD,
    ['0' ... '9'] = S_DIGIT,
    ['.'] = S_DOT,
    ['\''] = S_QUOTE,
    ['"'] = S_DQUOTE,
    ['$'] = S_DOLLAR,
    ['+'] = S_OP,
    ['-'] = S_DASH,
    ['*'] = S_OP,
    ['/'] = S_SLASH,
    ['<'] = S_OP,
    ['>'] = S_OP,
    ['='] = S_OP,
    ['~'] = S_OP,
    ['!'] = S_OP,
    ['@'] = S_OP,
    ['#'] = S_OP,
    ['%'] = S_PERCENT,
    ['^'] = S_OP,
    ['&'] = S_OP,
    ['|'] = S_OP,
    ['`'] = S_OP,
    ['?'] = S_OP,
    [':'] = S_COLON,
    ['('] = S_LPAREN,
    [')'] = S_RPAREN,
    ['['] = S_LBRACK,
    [']'] = S_RBRACK,
    [','] = S_COMMA,
    [';'] = S_SEMI,
};

/* R9: words are lowercased for ASCII only. A table, as every byte of every word goes
 * through it: the identity, except 'A'..'Z' (0x41..0x5A) map to 'a'..'z'. */
#define NL_ID4(c) (c), (c) + 1, (c) + 2, (c) + 3
#define NL_ID16(c) NL_ID4(c), NL_ID4((c) + 4), NL_ID4((c) + 8), NL_ID4((c) + 12)
static const unsigned char norm_lower_tab[256] = {
    NL_ID16(0x00), NL_ID16(0x10), NL_ID16(0x20), NL_ID16(0x30), 0x40,
    NL_ID16('a'),  NL_ID4('q'),   NL_ID4('u'),   'y',           'z',
    0x5B,          0x5C,          0x5D,          0x5E,          0x5F,
    NL_ID16(0x60), NL_ID16(0x70), NL_ID16(0x80), NL_ID16(0x90), NL_ID16(0xA0),
    NL_ID16(0xB0), NL_ID16(0xC0), NL_ID16(0xD0), NL_ID16(0xE0), NL_ID16(0xF0),
};
#undef NL_ID16
#undef NL_ID4

static inline unsigned char norm_lower(unsigned char c)
{
    return norm_lower_tab[c];
}

/* ---- lexer ---- */

enum {
    TK_EOF,
    TK_WORD,
    TK_QIDENT, /* "..." or U&"..." (sub = 1 for U&) */
    TK_STRING, /* any '...' flavour, sub = STR_* */
    TK_NUMBER,
    TK_PARAM,  /* $n, or a stray `$` */
    TK_DOLLAR, /* $tag$...$tag$ */
    TK_MARKER, /* R23 client-side placeholder lexed in operand position: %s %(name)s :name */
    TK_OP,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACK,
    TK_RBRACK,
    TK_COMMA,
    TK_SEMI,
    TK_DOT,
    TK_COLON,
    TK_DCOLON,
    TK_OTHER,
};

enum { STR_PLAIN, STR_E, STR_U, STR_BXN };

typedef struct NormToken {
    uint8_t kind;
    uint8_t sub;
    bool gap; /* whitespace or a comment came before it */
    size_t start, len;
} NormToken;

typedef struct NormLexer {
    const unsigned char *src;
    size_t pos, end;
    bool scs_off;
    bool incomplete; /* R40: the input ended inside a literal, comment or quoted name */
    SqlTags *tags;
    /* Bytes looked at beyond the token being lexed, or again: look-ahead that did not become
     * part of the token, re-reads, tag parsing. The bytes consumed (pos moves over each once)
     * are added by the caller, so the common tokens cost nothing here. */
    size_t work;
    size_t op_tail_end; /* see lex_operator */
} NormLexer;

static void lex_init(NormLexer *lx, const char *sql, size_t pos, size_t end, bool scs_off,
                     SqlTags *tags)
{
    lx->src = (const unsigned char *)sql;
    lx->pos = pos;
    lx->end = end;
    lx->scs_off = scs_off;
    lx->incomplete = false;
    lx->tags = tags;
    lx->work = 0;
    lx->op_tail_end = 0;
}

/* R7: nested block comment starting at p (`/` `*`); returns the offset after it.
 * Both delimiters contain a `*`, so the scan jumps from star to star with memchr (comments
 * are long: sqlcommenter tags are ~250 bytes) and looks at the bytes around each star: a `/`
 * before it that is not already part of a delimiter opens a nested comment, a `/` after it
 * closes one. The opener is checked first, as a left-to-right byte scan would see it first
 * (`/` `*` `/` opens). */
static size_t lex_block_comment(NormLexer *lx, size_t p)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end, q = p + 2;
    unsigned long depth = 1;
    while (q < end) {
        const unsigned char *star = memchr(s + q, '*', end - q);
        if (star == NULL)
            break;
        size_t k = (size_t)(star - s);
        if (k > q && s[k - 1] == '/') {
            depth++;
            q = k + 1;
        } else if (k + 1 < end && s[k + 1] == '/') {
            q = k + 2;
            if (--depth == 0) {
                if (lx->tags != NULL) { /* R39 */
                    size_t before = lx->tags->work;
                    sqltags_parse_comment((const char *)s + p + 2, q - 2 - (p + 2), lx->tags);
                    lx->work += lx->tags->work - before;
                }
                return q;
            }
        } else {
            q = k + 1;
        }
    }
    lx->incomplete = true;
    return end;
}

/* R6: a line comment runs to \n, \r or EOF; returns the offset of that line end. */
static size_t lex_line_comment(const NormLexer *lx, size_t p)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    p += 2;
    while (p < end && s[p] != '\n' && s[p] != '\r')
        p++;
    return p;
}

/* R11-R15: the body of a quoted string, p just after the opening quote. `backslash` is the
 * escape-string mode (E'', or any plain string when standard_conforming_strings is off).
 * Follows R15 continuations. Returns the offset after the literal. */
static size_t lex_string_body(NormLexer *lx, size_t p, bool backslash)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    for (;;) {
        if (!backslash) {
            const unsigned char *q = p < end ? memchr(s + p, '\'', end - p) : NULL;
            if (q == NULL)
                goto unterminated;
            p = (size_t)(q - s) + 1;
        } else {
            while (p < end && s[p] != '\'')
                p += s[p] == '\\' ? 2 : 1;
            if (p >= end)
                goto unterminated;
            p++;
        }
        if (p < end && s[p] == '\'') { /* '' is a quote inside the literal */
            p++;
            continue;
        }
        /* R15: whitespace holding a newline (and -- comment lines), then a quote. */
        size_t q = p;
        bool newline = false;
        while (q < end) {
            unsigned char c = s[q];
            if (norm_cls[c] & C_SPACE) {
                newline |= c == '\n' || c == '\r';
                q++;
            } else if (c == '-' && q + 1 < end && s[q + 1] == '-') {
                q = lex_line_comment(lx, q);
            } else {
                break;
            }
        }
        if (newline && q < end && s[q] == '\'') {
            p = q + 1;
            continue;
        }
        lx->work += q - p; /* looked at again as the next token's gap */
        return p;
    }
unterminated:
    lx->incomplete = true;
    return end;
}

/* R10: a quoted identifier body, p just after the opening `"`. */
static size_t lex_qident_body(NormLexer *lx, size_t p)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    for (;;) {
        const unsigned char *q = p < end ? memchr(s + p, '"', end - p) : NULL;
        if (q == NULL) {
            lx->incomplete = true;
            return end;
        }
        p = (size_t)(q - s) + 1;
        if (p < end && s[p] == '"') {
            p++;
            continue;
        }
        return p;
    }
}

/* R17: a number starting at p (a digit, or `.` before a digit). */
static size_t lex_number(const NormLexer *lx, size_t p)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    bool dot = s[p] == '.';
    bool hex = s[p] == '0' && p + 1 < end && (s[p + 1] == 'x' || s[p + 1] == 'X');
    p++;
    while (p < end) {
        unsigned char c = s[p];
        if (norm_cls[c] & C_NUM) {
            if ((c == 'e' || c == 'E') && !hex && p + 2 < end &&
                (s[p + 1] == '+' || s[p + 1] == '-') && (norm_cls[s[p + 2]] & C_DIGIT)) {
                p += 3;
                continue;
            }
            p++;
        } else if (c == '.' && !dot && !(p + 1 < end && s[p + 1] == '.')) {
            dot = true;
            p++;
        } else {
            break;
        }
    }
    return p;
}

/* R16: finds the delimiter s[p, p + delim) (`$tag$`) at or after q; returns the offset just
 * after it, or `end` when it is not there. The candidates are the `$` bytes, and a tag holds
 * no `$`: a comparison stops at the next `$` at the latest, so each byte is compared at most
 * once besides memchr's look, whatever the tag: a bound the work counter can count, which
 * memmem does not promise. */
static size_t lex_dollar_close(NormLexer *lx, size_t p, size_t delim, size_t q, bool *found)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    while (q < end) {
        const unsigned char *d = memchr(s + q, '$', end - q);
        if (d == NULL)
            break;
        size_t k = (size_t)(d - s), j = 1;
        while (j < delim && k + j < end && s[k + j] == s[p + j])
            j++;
        lx->work += j;
        if (j == delim) {
            *found = true;
            return k + delim;
        }
        q = k + 1;
    }
    *found = false;
    return end;
}

/* R16/R18: `$` at a token start: a parameter, a dollar quote, or a stray `$` (lexed as a
 * parameter so that it numbers like one and the output stays idempotent). */
static void lex_dollar(NormLexer *lx, size_t p, NormToken *t)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end, q = p + 1;
    if (q < end && (norm_cls[s[q]] & C_DIGIT)) {
        while (q < end && (norm_cls[s[q]] & C_DIGIT))
            q++;
        t->kind = TK_PARAM;
        t->len = q - p;
        return;
    }
    if (q < end && (norm_cls[s[q]] & C_WSTART))
        for (q++; q < end && (norm_cls[s[q]] & C_TAG); q++)
            ;
    if (q < end && s[q] == '$') {
        bool found;
        q = lex_dollar_close(lx, p, q + 1 - p, q + 1, &found);
        if (!found)
            lx->incomplete = true;
        t->kind = TK_DOLLAR;
        t->len = q - p;
        return;
    }
    lx->work += q - p - 1; /* a tag not closed by `$`: its bytes are lexed again as a word */
    t->kind = TK_PARAM;
    t->len = 1;
}

/* R19/R23: an operator run starting at p.
 *
 * A run with no special byte loses its trailing `+`/`-` (R19), and they are lexed again as
 * tokens of their own: `1+-+-` is `1` `+` `-` `+` `-`. Each of those would scan the rest of the
 * run again to learn the same thing, O(run^2) in all. Instead the lexer remembers where the
 * trimmed bytes end (op_tail_end): a token starting among them is one byte, since the rest of
 * the run from there holds only `+`/`-` (no comment start: the scan would have stopped at
 * it), ends at the same place, and so is trimmed down to its first byte again. */
static size_t lex_operator(NormLexer *lx, size_t p)
{
    if (p < lx->op_tail_end)
        return 1;
    const unsigned char *s = lx->src;
    size_t end = lx->end, q = p;
    bool special = false;
    while (q < end && (norm_cls[s[q]] & C_OP)) {
        if (q > p && q + 1 < end &&
            ((s[q] == '-' && s[q + 1] == '-') || (s[q] == '/' && s[q + 1] == '*')))
            break; /* R6/R7: a comment ends the operator */
        special |= (norm_cls[s[q]] & C_OPSPEC) != 0;
        q++;
    }
    size_t len = q - p;
    if (len >= 2 && s[q - 1] == '?') {
        /* R23: =? <? >? <=? >=? <>? != ? split into the operator and a marker */
        const unsigned char *o = s + p;
        size_t ol = len - 1;
        if ((ol == 1 && (o[0] == '=' || o[0] == '<' || o[0] == '>')) ||
            (ol == 2 && ((o[1] == '=' && (o[0] == '<' || o[0] == '>' || o[0] == '!')) ||
                         (o[0] == '<' && o[1] == '>'))))
            return ol;
    }
    if (len > 1 && !special) {
        while (len > 1 && (s[p + len - 1] == '+' || s[p + len - 1] == '-'))
            len--;
        lx->op_tail_end = q;
        lx->work += 2 * (q - p - len); /* the trimmed bytes: looked at twice more */
    }
    return len;
}

/* R23: %s or %(name)s at p, in operand position. Returns its length, 0 when not one. */
static size_t lex_percent_marker(NormLexer *lx, size_t p)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end;
    if (p + 1 >= end)
        return 0;
    size_t q;
    if (s[p + 1] == 's') {
        q = p + 2;
    } else if (s[p + 1] == '(') {
        for (q = p + 2; q < end && (norm_cls[s[q]] & C_TAG); q++)
            ;
        if (q == p + 2 || q + 1 >= end || s[q] != ')' || s[q + 1] != 's') {
            lx->work += q - p; /* not a marker: lexed again as `%` `(` name */
            return 0;
        }
        q += 2;
    } else {
        return 0;
    }
    if (q < end && (norm_cls[s[q]] & C_WCONT))
        return 0;
    return q - p;
}

/* The tokens that are rare in real traffic (literals, operators, markers, `$`), lexed out of
 * line so that the inlined lexer stays small for the common ones: words, quoted names and
 * punctuation. `st` is norm_start of the first byte; sets the kind, returns the end. */
static __attribute__((noinline)) size_t lex_rare(NormLexer *lx, NormToken *t, size_t p, unsigned st,
                                                 bool operand)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end, q;
    unsigned char c = s[p];
    switch (st) {
    case S_PREFIX:
        if (p + 1 < end && s[p + 1] == '\'') {
            unsigned char l = norm_lower(c);
            t->kind = TK_STRING;
            t->sub = l == 'e' ? STR_E : STR_BXN;
            bool backslash = l == 'e' || (l == 'n' && lx->scs_off);
            return lex_string_body(lx, p + 2, backslash);
        }
        goto word;
    case S_UPREFIX:
        if (p + 2 < end && s[p + 1] == '&' && (s[p + 2] == '\'' || s[p + 2] == '"')) {
            if (s[p + 2] == '\'') {
                t->kind = TK_STRING;
                t->sub = STR_U;
                return lex_string_body(lx, p + 3, false);
            }
            t->kind = TK_QIDENT;
            t->sub = 1;
            return lex_qident_body(lx, p + 3);
        }
    word:
        for (q = p + 1; q < end && (norm_cls[s[q]] & C_WCONT); q++)
            ;
        t->kind = TK_WORD;
        return q;
    case S_DOT: /* only `.` before a digit comes here */
    case S_DIGIT:
        t->kind = TK_NUMBER;
        return lex_number(lx, p);
    case S_QUOTE:
        t->kind = TK_STRING;
        t->sub = STR_PLAIN;
        return lex_string_body(lx, p + 1, lx->scs_off);
    case S_DOLLAR:
        lex_dollar(lx, p, t);
        return p + t->len;
    case S_PERCENT:
        if (operand && (q = lex_percent_marker(lx, p)) != 0) {
            t->kind = TK_MARKER;
            return p + q;
        }
        __attribute__((fallthrough));
    case S_OP:
    case S_DASH:
    case S_SLASH:
        t->kind = TK_OP;
        return p + lex_operator(lx, p);
    case S_COLON:
        q = p + 1;
        if (q < end && s[q] == ':') {
            t->kind = TK_DCOLON;
            q++;
        } else if (operand && q < end && (norm_cls[s[q]] & C_WSTART)) {
            for (q++; q < end && (norm_cls[s[q]] & C_WCONT); q++)
                ;
            t->kind = TK_MARKER;
        } else {
            t->kind = TK_COLON;
        }
        return q;
    default:
        t->kind = TK_OTHER;
        return p + 1;
    }
}

/* Lexes the next token. `operand` (R21) decides whether %s, %(name)s and :name are markers.
 * Inlined into the emitter's loop: a statement is ~80 tokens, so the call itself counted. */
static inline __attribute__((always_inline)) void lex_next(NormLexer *lx, NormToken *t,
                                                           bool operand)
{
    const unsigned char *s = lx->src;
    size_t end = lx->end, p = lx->pos;
    size_t before = p;
    unsigned st;
    for (;;) { /* R5-R8: whitespace and comments only separate tokens */
        while (p < end && (norm_cls[s[p]] & C_SPACE))
            p++;
        if (p >= end) {
            t->kind = TK_EOF;
            t->sub = 0;
            t->gap = p > before;
            t->start = end;
            t->len = 0;
            lx->pos = end;
            return;
        }
        st = norm_start[s[p]];
        if (st == S_DASH && p + 1 < end && s[p + 1] == '-')
            p = lex_line_comment(lx, p);
        else if (st == S_SLASH && p + 1 < end && s[p + 1] == '*')
            p = lex_block_comment(lx, p);
        else
            break;
    }

    t->gap = p > before;
    t->start = p;
    t->sub = 0;
    size_t q = p + 1;
    switch (st) {
    case S_PREFIX: /* e b x n u: a word unless a quote (or &) follows */
    case S_UPREFIX:
        if (q < end && (s[q] == '\'' || s[q] == '&')) {
            q = lex_rare(lx, t, p, st, operand);
            break;
        }
        __attribute__((fallthrough));
    case S_WORD:
        while (q < end && (norm_cls[s[q]] & C_WCONT))
            q++;
        t->kind = TK_WORD;
        break;
    case S_DQUOTE:
        t->kind = TK_QIDENT;
        q = lex_qident_body(lx, q);
        break;
    case S_DOT:
        if (q < end && (norm_cls[s[q]] & C_DIGIT)) /* `.5` is a number */
            q = lex_rare(lx, t, p, st, operand);
        else
            t->kind = TK_DOT;
        break;
    case S_LPAREN:
        t->kind = TK_LPAREN;
        break;
    case S_RPAREN:
        t->kind = TK_RPAREN;
        break;
    case S_LBRACK:
        t->kind = TK_LBRACK;
        break;
    case S_RBRACK:
        t->kind = TK_RBRACK;
        break;
    case S_COMMA:
        t->kind = TK_COMMA;
        break;
    case S_SEMI:
        t->kind = TK_SEMI;
        break;
    default:
        q = lex_rare(lx, t, p, st, operand);
        break;
    }
    t->len = q - p;
    lx->pos = q;
}

/* lex_next for the callers outside the emitter's loop, which need not inline it. */
static __attribute__((noinline)) void lex_token(NormLexer *lx, NormToken *t, bool operand)
{
    lex_next(lx, t, operand);
}

/* ---- emitter state ---- */

/* Kinds of emitted tokens, for spacing (R35) and operand position (R21). */
enum {
    O_NONE, /* nothing emitted yet in this statement */
    O_WORD,
    O_QIDENT,
    O_PH,  /* placeholder */
    O_NUM, /* number kept verbatim (R26, R27) */
    O_STR, /* string kept verbatim (the UESCAPE of a U&"" name) */
    O_OP,
    O_LPAREN,
    O_RPAREN,
    O_LBRACK,
    O_RBRACK,
    O_COMMA,
    O_SEMI,
    O_DOT,
    O_COLON,
    O_DCOLON,
    O_MARK, /* the R36 list marker */
    O_KINDS
};

#define O_BIT(k) (1u << (k))
/* R35: no space before these, none after those. */
#define NORM_NO_SPACE_BEFORE                                                                       \
    (O_BIT(O_COMMA) | O_BIT(O_RPAREN) | O_BIT(O_RBRACK) | O_BIT(O_SEMI) | O_BIT(O_DOT) |           \
     O_BIT(O_DCOLON) | O_BIT(O_LBRACK) | O_BIT(O_COLON))
#define NORM_NO_SPACE_AFTER                                                                        \
    (O_BIT(O_LPAREN) | O_BIT(O_LBRACK) | O_BIT(O_DOT) | O_BIT(O_DCOLON) | O_BIT(O_COLON))
#define NORM_COLONS (O_BIT(O_COLON) | O_BIT(O_DCOLON))

enum { FR_PLAIN, FR_IN, FR_ARRAY, FR_ROW, FR_CAST, FR_TYPMOD };
enum { LIST_COLLAPSING, LIST_EXPANDED };
enum { OB_NONE, OB_ITEM, OB_MID };                     /* R26 */
enum { V_NONE, V_IN_ROW, V_AFTER_ROW, V_AFTER_COMMA }; /* R32 */
enum { TC_NONE, TC_EXPECT, TC_TYPE };                  /* R27 */
enum { UESC_NONE, UESC_AFTER_UIDENT, UESC_UIDENT_ESC, UESC_AFTER_USTR, UESC_USTR_ESC };
enum { /* R28 */
       SESS_START,
       SESS_DONE,
       SESS_NAME,
       SESS_RELEASE,
       SESS_ROLLBACK,
       SESS_ROLLBACK_TO,
       SESS_CLOSE,
       SESS_FETCH,
};

/* One collapsible list (R30-R33): offsets into the unnumbered output. */
typedef struct NormList {
    size_t first_start, first_end; /* text of the first element */
    size_t elem_start;             /* just after the comma before the current element */
    size_t collapsed;              /* elements cut off because equal to the first */
    uint8_t mode;
    bool first_done;
    bool elem_const; /* R30: current element is constant-like so far */
    bool elem_ph;    /* ... and holds a placeholder */
    bool sep_space;  /* the separator of a cut element was ", " rather than "," */
} NormList;

typedef struct NormFrame {
    uint8_t kind;
    uint8_t ob;      /* ORDER BY / GROUP BY state at this depth */
    uint8_t vstate;  /* VALUES rows at this depth */
    int saved_list;  /* innermost list outside this frame */
    size_t vcomma;   /* where the comma after a VALUES row was written */
    NormList list;   /* for FR_IN and FR_ARRAY: the list these brackets hold */
    NormList values; /* the VALUES rows that are children of this frame */
} NormFrame;

typedef struct Norm {
    NormLexer lx;
    NormToken peek;
    bool has_peek;
    size_t last_end; /* end of the last token emitted, for the statement's span */

    char *out; /* unnumbered text */
    size_t len;

    uint8_t prev;       /* O_* of the last emitted token */
    bool prev_touch;    /* R35: it is a word or name a touching `(` sticks to */
    bool colon_operand; /* the last `:` stood in operand position (see norm_space) */
    bool operand;       /* R21 */
    SqlKeyword prev_kw, prev2_kw;
    uint8_t sess, uesc, tc;

    unsigned depth;
    NormFrame *top; /* &frames[depth], or NULL beyond NORM_MAX_DEPTH: looked at per token */
    int cur_list;   /* frame index of the innermost open IN/ARRAY list, or -1 */

    /* Where the placeholders are in the unnumbered text, so numbering need not rescan it.
     * Cut elements drop their entries; re-expanded lists and very many placeholders fall back
     * to the rescan (ph_exact false). */
    size_t ph_count;
    bool ph_exact;
    size_t ph_pos[NORM_PH_TRACKED];

    size_t vbuf_len;
    bool vstream;
    unsigned char vbuf[NORM_VBUF];
    XXH3_state_t vstate;

    NormFrame frames[NORM_MAX_DEPTH];
} Norm;

/* ---- values hash V (R4a) ---- */

static void norm_vflush(Norm *nm)
{
    if (!nm->vstream) {
        XXH3_64bits_reset(&nm->vstate);
        nm->vstream = true;
    }
    XXH3_64bits_update(&nm->vstate, nm->vbuf, nm->vbuf_len);
    nm->vbuf_len = 0;
}

/* Adds one literal: a 4-byte little-endian length, then its text (a folded sign first). */
static void norm_vadd(Norm *nm, const unsigned char *sign, size_t sign_len,
                      const unsigned char *text, size_t len)
{
    size_t total = sign_len + len;
    unsigned char prefix[4] = {(unsigned char)total, (unsigned char)(total >> 8),
                               (unsigned char)(total >> 16), (unsigned char)(total >> 24)};
    if (__builtin_expect(nm->vbuf_len + 4 + total > NORM_VBUF, 0)) {
        norm_vflush(nm);
        if (4 + total > NORM_VBUF) {
            XXH3_64bits_update(&nm->vstate, prefix, 4);
            XXH3_64bits_update(&nm->vstate, sign, sign_len);
            XXH3_64bits_update(&nm->vstate, text, len);
            return;
        }
    }
    unsigned char *d = nm->vbuf + nm->vbuf_len;
    memcpy(d, prefix, 4);
    if (sign_len) /* a folded sign: at most one byte */
        d[4] = sign[0];
    memcpy(d + 4 + sign_len, text, len);
    nm->vbuf_len += 4 + total;
}

static uint64_t norm_vdigest(Norm *nm)
{
    if (!nm->vstream)
        return XXH3_64bits(nm->vbuf, nm->vbuf_len);
    norm_vflush(nm);
    return XXH3_64bits_digest(&nm->vstate);
}

/* ---- emitting ---- */

/* R35: whether a space goes between the previous token (kind p) and the next (kind k). A few
 * cases go beyond R35 because glued tokens must read back as the same tokens (R3): after a
 * `:` in operand position a word is spaced (`select: b` would come back as the marker `:b`);
 * two colon tokens are spaced (`:` `::` is not `::` `:`); and a kept number is spaced from a
 * `.` (`1` `.` `x` is not the number `1.`, `.` `5` not `.5`). The rules are evaluated at
 * compile time into a table, so spacing costs one lookup per token; three answers depend on
 * more than the two kinds and are settled by norm_space. */
enum {
    SP_NO,
    SP_YES,
    SP_IF_WORD_AFTER_OPERAND_COLON, /* p is `:`: spaced if the colon stood in operand position
                                       and the token starts like a word */
    SP_IF_DIGIT,                    /* p is `.`: spaced if the token starts with a digit */
    SP_IF_APART,                    /* `(` after a word or name: spaced unless it touched it */
};
#define NORM_SP_RULE(k, p)                                                                         \
    ((p) == O_NONE                                          ? SP_NO                                \
     : (O_BIT(k) & NORM_COLONS) && (O_BIT(p) & NORM_COLONS) ? SP_YES                               \
     : (p) == O_NUM && (k) == O_DOT                         ? SP_YES                               \
     : (p) == O_DOT                                         ? SP_IF_DIGIT                          \
     : NORM_NO_SPACE_BEFORE & O_BIT(k)                      ? SP_NO                                \
     : (p) == O_COLON                                       ? SP_IF_WORD_AFTER_OPERAND_COLON       \
     : NORM_NO_SPACE_AFTER & O_BIT(p)                       ? SP_NO                                \
     : (k) == O_LPAREN                                      ? SP_IF_APART                          \
                                                            : SP_YES)
#define NORM_SP_ROW(k)                                                                             \
    {                                                                                              \
        NORM_SP_RULE(k, 0), NORM_SP_RULE(k, 1), NORM_SP_RULE(k, 2), NORM_SP_RULE(k, 3),            \
            NORM_SP_RULE(k, 4), NORM_SP_RULE(k, 5), NORM_SP_RULE(k, 6), NORM_SP_RULE(k, 7),        \
            NORM_SP_RULE(k, 8), NORM_SP_RULE(k, 9), NORM_SP_RULE(k, 10), NORM_SP_RULE(k, 11),      \
            NORM_SP_RULE(k, 12), NORM_SP_RULE(k, 13), NORM_SP_RULE(k, 14), NORM_SP_RULE(k, 15),    \
            NORM_SP_RULE(k, 16)                                                                    \
    }
_Static_assert(O_KINDS == 17, "NORM_SP_ROW lists every token kind");
static const uint8_t norm_space_rule[O_KINDS][O_KINDS] = {
    NORM_SP_ROW(0),  NORM_SP_ROW(1),  NORM_SP_ROW(2),  NORM_SP_ROW(3),  NORM_SP_ROW(4),
    NORM_SP_ROW(5),  NORM_SP_ROW(6),  NORM_SP_ROW(7),  NORM_SP_ROW(8),  NORM_SP_ROW(9),
    NORM_SP_ROW(10), NORM_SP_ROW(11), NORM_SP_ROW(12), NORM_SP_ROW(13), NORM_SP_ROW(14),
    NORM_SP_ROW(15), NORM_SP_ROW(16),
};
#undef NORM_SP_ROW
#undef NORM_SP_RULE

/* Writes the space (if any) that goes before a token of kind `kind`; `first` is the token's
 * first output byte, `gap` whether whitespace or a comment preceded it in the input. */
static inline void norm_space(Norm *nm, unsigned kind, bool gap, unsigned char first)
{
    unsigned rule = norm_space_rule[kind][nm->prev];
    if (rule == SP_NO)
        return;
    if (rule != SP_YES) {
        bool space;
        if (rule == SP_IF_DIGIT)
            space = (norm_cls[first] & C_DIGIT) != 0;
        else if (rule == SP_IF_APART)
            space = gap || !nm->prev_touch;
        else
            space = nm->colon_operand && (norm_cls[first] & C_WSTART);
        if (!space)
            return;
    }
    nm->out[nm->len++] = ' ';
}

static inline void norm_set_prev(Norm *nm, unsigned kind, bool operand)
{
    nm->prev = (uint8_t)kind;
    nm->prev_touch = false;
    nm->operand = operand;
}

/* R30: a token inside a list element that is not constant-like spoils the element. */
static inline void norm_spoil(Norm *nm)
{
    if (nm->cur_list >= 0)
        nm->frames[nm->cur_list].list.elem_const = false;
}

static void norm_placeholder(Norm *nm, const unsigned char *sign, size_t sign_len, size_t start,
                             size_t len, bool gap)
{
    norm_space(nm, O_PH, gap, '$');
    if (nm->ph_count < NORM_PH_TRACKED)
        nm->ph_pos[nm->ph_count++] = nm->len;
    else
        nm->ph_exact = false;
    nm->out[nm->len++] = '$';
    norm_vadd(nm, sign, sign_len, nm->lx.src + start, len);
    if (nm->cur_list >= 0)
        nm->frames[nm->cur_list].list.elem_ph = true;
    nm->tc = TC_NONE;
    norm_set_prev(nm, O_PH, false);
}

static inline void norm_verbatim(Norm *nm, unsigned kind, const NormToken *t)
{
    const unsigned char *s = nm->lx.src + t->start;
    norm_space(nm, kind, t->gap, s[0]);
    memcpy(nm->out + nm->len, s, t->len);
    nm->len += t->len;
}

static inline void norm_punct(Norm *nm, unsigned kind, char c, bool operand)
{
    norm_space(nm, kind, false, 0);
    nm->out[nm->len++] = c;
    norm_set_prev(nm, kind, operand);
}

static void norm_marker(Norm *nm)
{
    memcpy(nm->out + nm->len, norm_list_marker, NORM_LIST_MARKER_LEN);
    nm->len += NORM_LIST_MARKER_LEN;
    norm_set_prev(nm, O_MARK, false);
}

/* ---- lists (R30-R33) ---- */

/* Cuts the unnumbered text back to `at`, forgetting the placeholders beyond it. */
static void norm_truncate(Norm *nm, size_t at)
{
    nm->len = at;
    while (nm->ph_count > 0 && nm->ph_pos[nm->ph_count - 1] >= at)
        nm->ph_count--;
}

static void list_start(NormList *l, size_t at)
{
    l->first_start = at;
    l->elem_start = at;
    l->collapsed = 0;
    l->mode = LIST_COLLAPSING;
    l->first_done = false;
    l->elem_const = true;
    l->elem_ph = false;
    l->sep_space = false;
}

/* The current element ends at the output's end. `ok` says whether it may collapse. Equal
 * elements are cut off at once; an element that differs after some were cut puts the cut
 * copies back (they were all equal to the first, so they are copies of it). */
static void list_elem_end(Norm *nm, NormList *l, bool ok)
{
    char *out = nm->out;
    size_t end = nm->len;
    if (!l->first_done) {
        l->first_done = true;
        l->first_end = end;
        if (!ok)
            l->mode = LIST_EXPANDED;
        return;
    }
    if (l->mode != LIST_COLLAPSING)
        return;
    size_t flen = l->first_end - l->first_start;
    bool space = l->elem_start < end && out[l->elem_start] == ' ';
    size_t text = l->elem_start + space;
    if (ok && end - text == flen) {
        nm->lx.work += flen; /* an element equal to the first is cut: compared once */
        if (memcmp(out + text, out + l->first_start, flen) == 0) {
            if (l->collapsed++ == 0)
                l->sep_space = space;
            norm_truncate(nm, l->first_end);
            return;
        }
    }
    l->mode = LIST_EXPANDED;
    if (l->collapsed == 0)
        return;
    nm->ph_exact = false; /* copies of the first element add placeholders in the middle */
    size_t unit = 1 + l->sep_space + flen;
    size_t shift = l->collapsed * unit;
    nm->lx.work += end - l->first_end + shift; /* once per list: the cut copies put back */
    memmove(out + l->first_end + shift, out + l->first_end, end - l->first_end);
    char *w = out + l->first_end;
    for (size_t i = 0; i < l->collapsed; i++) {
        *w++ = ',';
        if (l->sep_space)
            *w++ = ' ';
        memcpy(w, out + l->first_start, flen);
        w += flen;
    }
    nm->len = end + shift;
}

/* The VALUES rows of frame f end (R32): a collapsed list gets its marker, before the comma
 * when one was already written. */
static void norm_values_finish(Norm *nm, NormFrame *f)
{
    if (f->values.mode == LIST_COLLAPSING) {
        if (f->vstate == V_AFTER_COMMA) {
            norm_truncate(nm, f->vcomma);
            norm_marker(nm);
            nm->out[nm->len++] = ',';
            norm_set_prev(nm, O_COMMA, true);
        } else {
            norm_marker(nm);
        }
    }
    f->vstate = V_NONE;
}

static inline NormFrame *norm_top(Norm *nm)
{
    return nm->top;
}

static void norm_set_depth(Norm *nm, unsigned depth)
{
    nm->depth = depth;
    nm->top = depth < NORM_MAX_DEPTH ? &nm->frames[depth] : NULL;
}

static void norm_push(Norm *nm, uint8_t kind)
{
    norm_set_depth(nm, nm->depth + 1);
    if (nm->top == NULL)
        return;
    NormFrame *c = nm->top;
    c->kind = kind;
    c->ob = OB_NONE;
    c->vstate = V_NONE;
    c->saved_list = nm->cur_list;
    if (kind == FR_IN || kind == FR_ARRAY) {
        list_start(&c->list, nm->len);
        nm->cur_list = (int)nm->depth;
    }
}

/* Closes the innermost bracket; returns its kind. */
static uint8_t norm_pop(Norm *nm)
{
    uint8_t kind = FR_PLAIN;
    if (nm->depth < NORM_MAX_DEPTH) {
        kind = nm->frames[nm->depth].kind;
        nm->cur_list = nm->frames[nm->depth].saved_list;
    }
    norm_set_depth(nm, nm->depth - 1);
    return kind;
}

/* ---- tokens ---- */

static const NormToken *norm_peek(Norm *nm, bool operand)
{
    if (!nm->has_peek) {
        lex_token(&nm->lx, &nm->peek, operand);
        nm->has_peek = true;
    }
    return &nm->peek;
}

static inline __attribute__((always_inline)) void norm_take(Norm *nm, NormToken *t, bool operand)
{
    if (nm->has_peek) {
        *t = nm->peek;
        nm->has_peek = false;
    } else {
        lex_next(&nm->lx, t, operand);
    }
}

static SqlKeyword norm_keyword_of(const unsigned char *s, size_t len)
{
    char w[KW_MAX_LEN];
    if (len < KW_MIN_LEN || len > sizeof(w))
        return KW_NOT_KEYWORD;
    for (size_t i = 0; i < len; i++)
        w[i] = (char)norm_lower(s[i]);
    return kw_lookup(w, len);
}

static bool norm_all_digits(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(norm_cls[s[i]] & C_DIGIT))
            return false;
    return true;
}

/* A plain '...' with no quote, backslash or continuation inside: its text reads the same
 * whatever standard_conforming_strings says, so it can be kept verbatim (the UESCAPE of a
 * U&"" name) and N stays independent of the string mode. */
static bool norm_simple_string(const Norm *nm, const NormToken *t)
{
    const unsigned char *s = nm->lx.src + t->start;
    if (t->sub != STR_PLAIN || t->len < 2 || s[t->len - 1] != '\'')
        return false;
    for (size_t i = 1; i + 1 < t->len; i++)
        if (s[i] == '\'' || s[i] == '\\' || s[i] == '\n' || s[i] == '\r')
            return false;
    return true;
}

/* R28: the first word of a statement may announce a session-scoped name. */
static uint8_t norm_sess_after_first(SqlKeyword kw)
{
    switch (kw) {
    case KW_SAVEPOINT:
    case KW_DECLARE:
        return SESS_NAME;
    case KW_RELEASE:
        return SESS_RELEASE;
    case KW_ROLLBACK:
        return SESS_ROLLBACK;
    case KW_CLOSE:
        return SESS_CLOSE;
    case KW_FETCH:
    case KW_MOVE:
        return SESS_FETCH;
    default:
        return SESS_DONE;
    }
}

/* R28 for a word: returns true when the word is the session-scoped name. */
static bool norm_sess_word(Norm *nm, SqlKeyword kw)
{
    switch (nm->sess) {
    case SESS_START:
        nm->sess = norm_sess_after_first(kw);
        return false;
    case SESS_NAME:
        nm->sess = SESS_DONE;
        return true;
    case SESS_RELEASE:
    case SESS_ROLLBACK_TO:
        if (kw == KW_SAVEPOINT) {
            nm->sess = SESS_NAME;
            return false;
        }
        nm->sess = SESS_DONE;
        return true;
    case SESS_ROLLBACK:
        if (kw == KW_TO)
            nm->sess = SESS_ROLLBACK_TO;
        else if (kw != KW_WORK && kw != KW_TRANSACTION)
            nm->sess = SESS_DONE;
        return false;
    case SESS_CLOSE:
        nm->sess = SESS_DONE;
        return kw != KW_ALL;
    case SESS_FETCH:
        if (nm->depth == 0 && (kw == KW_FROM || kw == KW_IN))
            nm->sess = SESS_NAME;
        return false;
    default:
        return false;
    }
}

/* Emits a word; `uesc` is the UESCAPE state before it. Returns false when the word was
 * swallowed (the UESCAPE of a U&'' literal, R13). */
static bool norm_word(Norm *nm, const NormToken *t, NormFrame *f, uint8_t uesc, bool *ob_set,
                      SqlKeyword *kw_out)
{
    const unsigned char *s = nm->lx.src + t->start;
    size_t saved = nm->len;
    norm_space(nm, O_WORD, t->gap, s[0]);
    char *d = nm->out + nm->len;
    for (size_t i = 0; i < t->len; i++)
        d[i] = (char)norm_lower(s[i]);
    SqlKeyword kw = kw_lookup(d, t->len);

    if (uesc == UESC_AFTER_USTR && kw == KW_UESCAPE) { /* R13: part of the U&'' literal */
        nm->len = saved;
        nm->uesc = UESC_USTR_ESC;
        return false;
    }
    bool to_ph = nm->sess != SESS_DONE && norm_sess_word(nm, kw); /* R28: usually settled */
    if (!to_ph) {
        if (kw == KW_TRUE || kw == KW_FALSE) /* R24 */
            to_ph = !(nm->prev_kw == KW_IS || (nm->prev_kw == KW_NOT && nm->prev2_kw == KW_IS));
        else if (kw == KW_NULL) /* R25 */
            to_ph = nm->prev_kw != KW_IS && nm->prev_kw != KW_NOT;
    }
    if (to_ph) {
        nm->len = saved;
        norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
        *kw_out = KW_NOT_KEYWORD;
        return true;
    }
    nm->len += t->len;
    if (uesc == UESC_AFTER_UIDENT && kw == KW_UESCAPE)
        nm->uesc = UESC_UIDENT_ESC;

    unsigned flags = kw_flags[kw];
    if (nm->tc != TC_NONE) /* R27 */
        nm->tc = (flags & KWF_TSTOP) ? TC_NONE : TC_TYPE;
    if (kw == KW_AS && f != NULL && f->kind == FR_CAST)
        nm->tc = TC_EXPECT;
    if (nm->tc != TC_TYPE)
        norm_spoil(nm);
    if (f != NULL) { /* R26 */
        if (kw == KW_BY && (nm->prev_kw == KW_ORDER || nm->prev_kw == KW_GROUP)) {
            f->ob = OB_ITEM;
            *ob_set = true;
        } else if (flags & KWF_OBEND) {
            f->ob = OB_NONE;
        }
    }
    norm_set_prev(nm, O_WORD, (flags & KWF_OPERAND) != 0);
    nm->prev_touch = !(flags & KWF_SPACED);
    *kw_out = kw;
    return true;
}

/* R26: is this number a positional ORDER BY / GROUP BY item? */
static bool norm_positional(Norm *nm, const NormToken *t, const NormFrame *f)
{
    if (f == NULL || f->ob != OB_ITEM || !norm_all_digits(nm->lx.src + t->start, t->len))
        return false;
    const NormToken *nx = norm_peek(nm, false);
    switch (nx->kind) {
    case TK_COMMA:
    case TK_RPAREN:
    case TK_SEMI:
    case TK_EOF:
        return true;
    case TK_WORD:
        return (kw_flags[norm_keyword_of(nm->lx.src + nx->start, nx->len)] & KWF_OBFOLLOW) != 0;
    default:
        return false;
    }
}

static void norm_open_paren(Norm *nm, const NormToken *t, NormFrame *f)
{
    norm_space(nm, O_LPAREN, t->gap, '(');
    uint8_t kind = FR_PLAIN;
    if (nm->prev == O_WORD && nm->prev_kw == KW_IN)
        kind = FR_IN;
    else if (nm->prev == O_WORD && nm->prev_kw == KW_VALUES)
        kind = FR_ROW;
    else if (nm->prev == O_WORD && nm->prev_kw == KW_CAST)
        kind = FR_CAST;
    else if (nm->tc == TC_TYPE && (nm->prev == O_WORD || nm->prev == O_QIDENT))
        kind = FR_TYPMOD;
    if (f == NULL || nm->depth + 1 >= NORM_MAX_DEPTH)
        kind = FR_PLAIN;
    if (kind == FR_IN)
        norm_spoil(nm); /* R31: only the innermost list collapses */
    if (kind == FR_ROW) {
        list_start(&f->values, nm->len);
        f->vstate = V_IN_ROW;
    }
    nm->out[nm->len++] = '(';
    norm_push(nm, kind);
    nm->tc = TC_NONE;
    norm_set_prev(nm, O_LPAREN, true);
}

static void norm_open_bracket(Norm *nm, NormFrame *f)
{
    uint8_t kind = FR_PLAIN;
    if (nm->prev == O_WORD && nm->prev_kw == KW_ARRAY)
        kind = FR_ARRAY;
    else if (f != NULL && f->kind == FR_ARRAY && nm->len == f->list.elem_start)
        kind = FR_ARRAY; /* `array[[1,2],[3,4]]`: the inner brackets are lists too */
    else if (nm->tc == TC_TYPE && nm->prev != O_PH)
        kind = FR_TYPMOD; /* `int[]`, `int[3]` */
    if (f == NULL || nm->depth + 1 >= NORM_MAX_DEPTH)
        kind = FR_PLAIN;
    if (kind != FR_TYPMOD)
        norm_spoil(nm);
    nm->out[nm->len++] = '[';
    norm_push(nm, kind);
    nm->tc = TC_NONE;
    norm_set_prev(nm, O_LBRACK, true);
}

static void norm_close(Norm *nm, const NormToken *t, NormFrame *f)
{
    unsigned kind = t->kind == TK_RPAREN ? O_RPAREN : O_RBRACK;
    char c = t->kind == TK_RPAREN ? ')' : ']';
    if (nm->depth == 0) { /* unbalanced: keep it, nothing to close */
        norm_punct(nm, kind, c, false);
        nm->tc = TC_NONE;
        norm_spoil(nm);
        return;
    }
    if (f != NULL && (f->kind == FR_IN || f->kind == FR_ARRAY)) {
        list_elem_end(nm, &f->list, f->list.elem_const && f->list.elem_ph);
        if (f->list.mode == LIST_COLLAPSING)
            norm_marker(nm);
    }
    norm_punct(nm, kind, c, false);
    uint8_t fk = norm_pop(nm);
    nm->tc = fk == FR_TYPMOD ? TC_TYPE : TC_NONE;
    if (fk == FR_ROW) {
        NormFrame *parent = &nm->frames[nm->depth];
        list_elem_end(nm, &parent->values, true);
        parent->vstate = V_AFTER_ROW;
    }
}

static void norm_comma(Norm *nm, NormFrame *f, bool *ob_set)
{
    if (f != NULL && (f->kind == FR_IN || f->kind == FR_ARRAY)) {
        NormList *l = &f->list;
        list_elem_end(nm, l, l->elem_const && l->elem_ph);
        norm_punct(nm, O_COMMA, ',', true);
        l->elem_start = nm->len;
        l->elem_const = true;
        l->elem_ph = false;
    } else {
        norm_punct(nm, O_COMMA, ',', true);
    }
    if (f != NULL && f->ob != OB_NONE) {
        f->ob = OB_ITEM;
        *ob_set = true;
    }
    nm->tc = TC_NONE;
}

static void norm_operator(Norm *nm, const NormToken *t, NormFrame *f)
{
    const unsigned char *s = nm->lx.src + t->start;
    if (nm->operand) {
        if (t->len == 1 && (s[0] == '-' || s[0] == '+') && !(f != NULL && f->kind == FR_TYPMOD)) {
            const NormToken *nx = norm_peek(nm, true);
            if (nx->kind == TK_NUMBER) { /* R22 */
                NormToken num;
                norm_take(nm, &num, true);
                nm->last_end = num.start + num.len;
                norm_placeholder(nm, s, 1, num.start, num.len, t->gap);
                return;
            }
        }
        if (t->len == 1 && s[0] == '?') { /* R23 */
            norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
            return;
        }
    }
    norm_space(nm, O_OP, t->gap, s[0]);
    if (t->len == 2 && s[0] == '!' && s[1] == '=') { /* R19 */
        nm->out[nm->len++] = '<';
        nm->out[nm->len++] = '>';
    } else {
        memcpy(nm->out + nm->len, s, t->len);
        nm->len += t->len;
    }
    norm_spoil(nm);
    nm->tc = TC_NONE;
    norm_set_prev(nm, O_OP, true);
}

/* R28/R13/R10 states that only a word continues: any other token settles them. Returns true
 * when the token is the session-scoped name. */
static bool norm_sess_other(Norm *nm, const NormToken *t)
{
    uint8_t st = nm->sess;
    if (st == SESS_FETCH || st == SESS_DONE)
        return false;
    nm->sess = SESS_DONE;
    return t->kind == TK_QIDENT &&
           (st == SESS_NAME || st == SESS_RELEASE || st == SESS_ROLLBACK_TO || st == SESS_CLOSE);
}

/* Emits one token of the statement. */
static void norm_token(Norm *nm, const NormToken *t)
{
    NormFrame *f = norm_top(nm);
    if (f != NULL && f->vstate >= V_AFTER_ROW) { /* R32: does the VALUES list go on? */
        if (f->vstate == V_AFTER_ROW && t->kind == TK_COMMA) {
            f->vcomma = nm->len;
            norm_punct(nm, O_COMMA, ',', true);
            f->values.elem_start = nm->len;
            f->vstate = V_AFTER_COMMA;
            nm->prev2_kw = nm->prev_kw;
            nm->prev_kw = KW_NOT_KEYWORD;
            return;
        }
        if (f->vstate == V_AFTER_COMMA && t->kind == TK_LPAREN && nm->depth + 1 < NORM_MAX_DEPTH) {
            norm_space(nm, O_LPAREN, t->gap, '(');
            nm->out[nm->len++] = '(';
            norm_push(nm, FR_ROW);
            f->vstate = V_IN_ROW;
            norm_set_prev(nm, O_LPAREN, true);
            nm->prev2_kw = nm->prev_kw;
            nm->prev_kw = KW_NOT_KEYWORD;
            return;
        }
        norm_values_finish(nm, f);
    }

    bool ob_set = false;
    SqlKeyword kw = KW_NOT_KEYWORD;
    uint8_t uesc = nm->uesc; /* R10/R13: only the very next token may continue it */
    nm->uesc = UESC_NONE;
    if (nm->sess != SESS_DONE && t->kind != TK_WORD && norm_sess_other(nm, t)) {
        norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
        goto done;
    }

    switch (t->kind) {
    case TK_WORD:
        if (!norm_word(nm, t, f, uesc, &ob_set, &kw))
            return; /* swallowed into the U&'' placeholder */
        break;
    case TK_QIDENT:
        norm_verbatim(nm, O_QIDENT, t);
        if (nm->tc != TC_NONE)
            nm->tc = TC_TYPE;
        else
            norm_spoil(nm);
        norm_set_prev(nm, O_QIDENT, false);
        nm->prev_touch = true;
        if (t->sub)
            nm->uesc = UESC_AFTER_UIDENT;
        break;
    case TK_STRING:
        if (uesc == UESC_USTR_ESC) { /* R13: the UESCAPE character joins the U&'' literal */
            norm_vadd(nm, NULL, 0, nm->lx.src + t->start, t->len);
            return;
        }
        if (uesc == UESC_UIDENT_ESC && norm_simple_string(nm, t)) { /* R10: kept as is */
            norm_verbatim(nm, O_STR, t);
            norm_spoil(nm);
            nm->tc = TC_NONE;
            norm_set_prev(nm, O_STR, false);
            break;
        }
        norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
        if (t->sub == STR_U)
            nm->uesc = UESC_AFTER_USTR;
        break;
    case TK_NUMBER:
        if ((f != NULL && f->kind == FR_TYPMOD) || norm_positional(nm, t, f)) { /* R26, R27 */
            norm_verbatim(nm, O_NUM, t);
            norm_set_prev(nm, O_NUM, false);
        } else {
            norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
        }
        break;
    case TK_PARAM:
    case TK_DOLLAR:
    case TK_MARKER:
        norm_placeholder(nm, NULL, 0, t->start, t->len, t->gap);
        break;
    case TK_OP:
        norm_operator(nm, t, f);
        break;
    case TK_LPAREN:
        norm_open_paren(nm, t, f);
        break;
    case TK_LBRACK:
        norm_open_bracket(nm, f);
        break;
    case TK_RPAREN:
    case TK_RBRACK:
        norm_close(nm, t, f);
        break;
    case TK_COMMA:
        norm_comma(nm, f, &ob_set);
        break;
    case TK_SEMI: /* inside brackets: top-level ones end the statement before we get here */
        norm_punct(nm, O_SEMI, ';', true);
        norm_spoil(nm);
        nm->tc = TC_NONE;
        break;
    case TK_DOT:
        norm_punct(nm, O_DOT, '.', false);
        if (nm->tc == TC_TYPE) {
            nm->tc = TC_EXPECT; /* pg_catalog.int4 */
        } else {
            nm->tc = TC_NONE;
            norm_spoil(nm);
        }
        break;
    case TK_DCOLON:
        norm_space(nm, O_DCOLON, t->gap, ':');
        nm->out[nm->len++] = ':';
        nm->out[nm->len++] = ':';
        norm_set_prev(nm, O_DCOLON, false);
        nm->tc = TC_EXPECT;
        break;
    case TK_COLON:
        nm->colon_operand = nm->operand;
        norm_punct(nm, O_COLON, ':', false);
        norm_spoil(nm);
        nm->tc = TC_NONE;
        break;
    default: /* TK_OTHER: spaced like an operator */
        norm_space(nm, O_OP, t->gap, 0);
        nm->out[nm->len++] = (char)nm->lx.src[t->start];
        norm_spoil(nm);
        nm->tc = TC_NONE;
        norm_set_prev(nm, O_OP, true);
        break;
    }
done: /* (a non-word settled SESS_START in norm_sess_other above) */
    if (f != NULL && f->ob == OB_ITEM && !ob_set)
        f->ob = OB_MID;
    nm->prev2_kw = nm->prev_kw;
    nm->prev_kw = kw;
}

/* ---- numbering (R34) ---- */

static const uint8_t norm_renumber_stop[256] = {['$'] = 1, ['"'] = 1, ['\''] = 1};

/* Copies the unnumbered text src[0, n) to dst (dst <= src, overlapping), numbering every
 * placeholder `$`. A `$` inside a word (`col$1`) follows a word byte; quoted names and the
 * kept UESCAPE strings are skipped whole. Returns the numbered length. */
static size_t norm_renumber(char *dst, const char *src, size_t n)
{
    size_t w = 0, r = 0;
    unsigned long k = 0;
    unsigned char prevb = 0;
    while (r < n) {
        size_t q = r;
        while (q < n && !norm_renumber_stop[(unsigned char)src[q]])
            q++;
        if (q > r) {
            prevb = (unsigned char)src[q - 1];
            memmove(dst + w, src + r, q - r);
            w += q - r;
            r = q;
        }
        if (r == n)
            break;
        unsigned char c = (unsigned char)src[r];
        if (c == '$') {
            r++;
            dst[w++] = '$';
            if (!(norm_cls[prevb] & C_WCONT)) {
                char digits[24];
                int nd = 0;
                k++;
                for (unsigned long v = k; v; v /= 10)
                    digits[nd++] = (char)('0' + v % 10);
                while (nd)
                    dst[w++] = digits[--nd];
            }
            prevb = '$';
        } else {
            const char *close = memchr(src + r + 1, c, n - r - 1);
            size_t e = close ? (size_t)(close - src) + 1 : n;
            prevb = (unsigned char)src[e - 1];
            memmove(dst + w, src + r, e - r);
            w += e - r;
            r = e;
        }
    }
    return w;
}

/* The same, knowing where the placeholders are (pos ascending, all inside src). */
static size_t norm_renumber_at(char *dst, const char *src, size_t n, const size_t *pos,
                               size_t count)
{
    size_t w = 0, r = 0;
    for (size_t k = 1; k <= count; k++) {
        size_t at = pos[k - 1];
        memmove(dst + w, src + r, at + 1 - r); /* up to and including the `$` */
        w += at + 1 - r;
        r = at + 1;
        char digits[24];
        int nd = 0;
        for (size_t v = k; v; v /= 10)
            digits[nd++] = (char)('0' + v % 10);
        while (nd)
            dst[w++] = digits[--nd];
    }
    memmove(dst + w, src + r, n - r);
    return w + n - r;
}

/* ---- public API ---- */

static size_t norm_decimal_digits(size_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* Bytes numbering may add for an input of n bytes: at most n placeholders, each number at
 * most as long as n's. */
static size_t norm_number_reserve(size_t n)
{
    return n * norm_decimal_digits(n);
}

size_t sqlnorm_output_bound(size_t input_len)
{
    /* Unnumbered text: every token at most its input length plus one space, and one 11-byte
     * list marker per collapsed list, which takes at least 5 input bytes (`in(1)`): under 5n.
     * Plus the numbering reserve, plus slack for the NUL and the empty input. */
    if (input_len > SIZE_MAX / 64)
        return SIZE_MAX;
    return 5 * input_len + norm_number_reserve(input_len) + 32;
}

/* The longest input prefix whose bound fits in cap. */
static size_t norm_fit(size_t cap, size_t remaining)
{
    size_t lo = 0, hi = remaining;
    if (sqlnorm_output_bound(0) > cap)
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (sqlnorm_output_bound(mid) <= cap)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void sqlnorm_cursor_init(SqlnormCursor *cursor, const char *sql, size_t len,
                         const SqlnormOptions *options)
{
    cursor->sql = sql;
    cursor->len = sql != NULL ? len : 0;
    cursor->pos = 0;
    cursor->options.scs_off = options != NULL && options->scs_off;
    cursor->work = 0;
}

static void norm_init(Norm *nm, const SqlnormCursor *cursor, size_t end, char *out, SqlTags *tags)
{
    lex_init(&nm->lx, cursor->sql, cursor->pos, end, cursor->options.scs_off, tags);
    nm->has_peek = false;
    nm->last_end = cursor->pos;
    nm->out = out;
    nm->len = 0;
    nm->prev = O_NONE;
    nm->prev_touch = false;
    nm->colon_operand = false;
    nm->operand = true;
    nm->prev_kw = nm->prev2_kw = KW_NOT_KEYWORD;
    nm->sess = SESS_START;
    nm->uesc = UESC_NONE;
    nm->tc = TC_NONE;
    norm_set_depth(nm, 0);
    nm->cur_list = -1;
    nm->vbuf_len = 0;
    nm->vstream = false;
    nm->ph_count = 0;
    nm->ph_exact = true;
    nm->frames[0].kind = FR_PLAIN;
    nm->frames[0].ob = OB_NONE;
    nm->frames[0].vstate = V_NONE;
    nm->frames[0].saved_list = -1;
}

bool sqlnorm_next(SqlnormCursor *cursor, char *out, size_t out_cap, SqlnormStatement *stmt,
                  SqlTags *tags)
{
    if (cursor->pos >= cursor->len)
        return false;
    size_t remaining = cursor->len - cursor->pos;
    size_t limit = remaining;
    if (out_cap < sqlnorm_output_bound(remaining))
        limit = norm_fit(out_cap, remaining); /* normalize a prefix, flagged incomplete */
    size_t reserve = norm_number_reserve(limit);
    bool capped = limit < remaining;

    size_t start = cursor->pos;
    Norm nm;
    norm_init(&nm, cursor, cursor->pos + limit, out + reserve, tags);
    NormToken t;
    do /* R37: leading `;` are dropped */
        norm_take(&nm, &t, true);
    while (t.kind == TK_SEMI);
    if (t.kind == TK_EOF) {
        cursor->work += (nm.lx.pos - start) + nm.lx.work;
        cursor->pos = cursor->len;
        return false;
    }
    size_t first = t.start;
    while (t.kind != TK_EOF && !(t.kind == TK_SEMI && nm.depth == 0)) {
        nm.last_end = t.start + t.len; /* norm_token moves it on if it takes more tokens */
        norm_token(&nm, &t);
        norm_take(&nm, &t, nm.operand);
    }
    size_t last = nm.last_end;
    NormFrame *f = norm_top(&nm);
    if (f != NULL && f->vstate >= V_AFTER_ROW)
        norm_values_finish(&nm, f);

    bool incomplete = nm.lx.incomplete;
    if (t.kind == TK_SEMI) {
        /* Consume what follows up to the next statement (whitespace, comments and their
         * tags, empty statements), so pos == len tells the caller this was the last. */
        size_t after = t.start + 1;
        NormToken s;
        do
            lex_token(&nm.lx, &s, true);
        while (s.kind == TK_SEMI);
        if (s.kind != TK_EOF)
            cursor->pos = s.start;
        else
            cursor->pos = capped ? after : cursor->len;
    } else {
        incomplete |= capped;
        cursor->pos = cursor->len;
    }

    size_t n = nm.ph_exact ? norm_renumber_at(out, out + reserve, nm.len, nm.ph_pos, nm.ph_count)
                           : norm_renumber(out, out + reserve, nm.len);
    out[n] = '\0';
    /* Work: every byte the lexer moved over (the token after a `;` is lexed again by the next
     * call, and counted again), what it looked at besides, and the text numbered and hashed. */
    size_t work = (nm.lx.pos - start) + nm.lx.work + nm.len + n;
    stmt->work = work;
    cursor->work += work;
    stmt->normalized = out;
    stmt->normalized_len = n;
    stmt->fingerprint = XXH3_64bits_withSeed(out, n, SQLNORM_SEED);
    stmt->values_hash = norm_vdigest(&nm);
    stmt->src_offset = first;
    stmt->src_len = last - first;
    stmt->incomplete = incomplete;
    return true;
}

size_t sqlnorm_scan_tags(const char *sql, size_t len, const SqlnormOptions *options, SqlTags *tags)
{
    NormLexer lx;
    NormToken t;
    lex_init(&lx, sql, 0, sql != NULL ? len : 0, options != NULL && options->scs_off, tags);
    do
        lex_token(&lx, &t, true);
    while (t.kind != TK_EOF);
    return lx.pos + lx.work;
}

void sqlnorm_hex64(uint64_t value, char out[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[value & 15];
        value >>= 4;
    }
    out[16] = '\0';
}
