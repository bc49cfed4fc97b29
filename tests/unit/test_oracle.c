/* tests/unit/test_oracle.c — libpg_query (the PostgreSQL 15 parser) as an oracle for sqlnorm.
 *
 * Owns: comparing two partitions of the ORM corpus (tests/corpus/orm_statements.sql): the
 * grouping by our fingerprint F (protocol/sqlnorm) and the grouping by pg_query_fingerprint.
 * For every pair of statements, "same F" must equal "same pg_query fingerprint" unless the
 * pair is explained by one of the intended differences listed below (each one caused by a
 * rule of docs/normalization-spec.md). Any unexplained pair fails the test. The method, the agreement
 * definition and the list are also in docs/normalization-oracle.md.
 *
 * How a disagreeing pair is explained, mechanically: both statements are parsed with
 * pg_query_parse; the JSON trees are compared with `location` fields, constant values and
 * `$n` numbers ignored (constants in typmods and positional ORDER BY / GROUP BY items are
 * kept, because the spec keeps them). Every place where the trees differ must belong to a
 * category the spec intends, in the right direction (F splitting what pg_query merges, or
 * the reverse). When the trees are identical yet F differs, the pair must differ in the
 * spelling of its words (LIMIT vs FETCH FIRST, "id" vs id); a pair that differs only in
 * whitespace, comments, keyword case or literals is never excused.
 *
 * Client-side markers (`?`, `%s`, `%(name)s`) are not SQL: PostgreSQL cannot parse them. The
 * driver replaces them before the server sees the statement, so the oracle does the same:
 * pg_query gets a copy with each marker in operand position replaced by `$k`; F is always
 * computed on the original text. */
#include <pg_query.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "protocol/sqlnorm.h"
#include "tests/corpus/corpus.h"
#include "testlib.h"

/* ---------------------------------------------------------------------------------------
 * Intended differences. F_FINER: F splits statements pg_query groups together;
 * F_COARSER: F groups statements pg_query keeps apart.
 * ------------------------------------------------------------------------------------- */
typedef enum Reason {
    REASON_NONE = 0,
    REASON_ALIAS,       /* F finer: R29 keeps table and column aliases; pg_query drops them */
    REASON_TYPMOD,      /* F finer: R27 keeps typmod numbers; pg_query ignores typmods */
    REASON_POSITIONAL,  /* F finer: R26 keeps ORDER BY 1 / GROUP BY 1; pg_query drops consts */
    REASON_IN_ANY,      /* F finer: R29 no semantic rewrites, IN (...) is not = ANY(...) */
    REASON_LIST_SET,    /* F finer: R29 keeps list order; pg_query hashes some lists as sets */
    REASON_SPELLING,    /* F finer: R9/R10/R29 lexer keeps the words written (LIMIT vs FETCH
                           FIRST, "id" vs id, AS, INNER); pg_query sees the same tree */
    REASON_FETCH_COUNT, /* F coarser: R17/R28 the FETCH count is a number -> placeholder;
                           pg_query keeps it (FetchStmt.howMany is not a Const node) */
    REASON_COUNT
} Reason;

static const char *const reason_text[REASON_COUNT] = {
    [REASON_NONE] = "unexplained",
    [REASON_ALIAS] = "aliases kept (R29); pg_query ignores alias names",
    [REASON_TYPMOD] = "typmods kept verbatim (R27); pg_query ignores typmods",
    [REASON_POSITIONAL] = "positional ORDER BY/GROUP BY kept (R26); pg_query ignores consts",
    [REASON_IN_ANY] = "IN (...) not rewritten to = ANY(...) (R29); pg_query merges them",
    [REASON_LIST_SET] = "list order kept (R29); pg_query fingerprints some lists as sets",
    [REASON_SPELLING] = "same parse tree, different words (R9/R10/R29: lexer, not parser)",
    [REASON_FETCH_COUNT] = "FETCH count is a placeholder (R17/R28); pg_query keeps howMany",
};

static bool reason_is_f_finer(Reason r)
{
    return r == REASON_ALIAS || r == REASON_TYPMOD || r == REASON_POSITIONAL ||
           r == REASON_IN_ANY || r == REASON_LIST_SET || r == REASON_SPELLING;
}

/* ---------------------------------------------------------------------------------------
 * A minimal JSON tree for pg_query's parse output (always well-formed, compact, no
 * escapes that matter for comparison: strings are compared as raw bytes).
 * ------------------------------------------------------------------------------------- */
typedef enum JsonType { JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_SCALAR } JsonType;

typedef struct Json {
    JsonType type;
    const char *key; /* member name when inside an object */
    size_t key_len;
    const char *text; /* strings: content; scalars: the literal text */
    size_t text_len;
    struct Json *child; /* first member / element */
    struct Json *next;
} Json;

static const char *json_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string_end(const char *p)
{
    /* p points after the opening quote; returns the closing quote */
    while (*p && *p != '"') {
        if (*p == '\\' && p[1])
            p++;
        p++;
    }
    return p;
}

static Json *json_parse_value(const char **pp)
{
    const char *p = json_skip_ws(*pp);
    Json *node = calloc(1, sizeof(*node));
    if (!node)
        abort();
    if (*p == '{' || *p == '[') {
        bool object = *p == '{';
        char close = object ? '}' : ']';
        node->type = object ? JSON_OBJECT : JSON_ARRAY;
        p = json_skip_ws(p + 1);
        Json **tail = &node->child;
        while (*p && *p != close) {
            const char *key = NULL;
            size_t key_len = 0;
            if (object) {
                const char *end = json_string_end(p + 1);
                key = p + 1;
                key_len = (size_t)(end - key);
                p = json_skip_ws(end + 1);
                if (*p == ':')
                    p++;
            }
            Json *child = json_parse_value(&p);
            child->key = key;
            child->key_len = key_len;
            *tail = child;
            tail = &child->next;
            p = json_skip_ws(p);
            if (*p == ',')
                p = json_skip_ws(p + 1);
        }
        if (*p)
            p++;
    } else if (*p == '"') {
        const char *end = json_string_end(p + 1);
        node->type = JSON_STRING;
        node->text = p + 1;
        node->text_len = (size_t)(end - (p + 1));
        p = *end ? end + 1 : end;
    } else {
        const char *start = p;
        while (*p && *p != ',' && *p != '}' && *p != ']')
            p++;
        node->type = JSON_SCALAR;
        node->text = start;
        node->text_len = (size_t)(p - start);
    }
    *pp = p;
    return node;
}

static void json_free(Json *node)
{
    while (node) {
        Json *next = node->next;
        json_free(node->child);
        free(node);
        node = next;
    }
}

static bool json_key_is(const Json *node, const char *key)
{
    return node->key && node->key_len == strlen(key) && memcmp(node->key, key, node->key_len) == 0;
}

static bool json_text_is(const Json *node, const char *text)
{
    return node->text_len == strlen(text) && memcmp(node->text, text, node->text_len) == 0;
}

static const Json *json_member(const Json *object, const char *key)
{
    for (const Json *c = object->child; c; c = c->next)
        if (json_key_is(c, key))
            return c;
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Tree comparison. The path is a stack of member names ("[]" for array elements); it is
 * what a difference is classified by.
 * ------------------------------------------------------------------------------------- */
#define PATH_MAX_DEPTH 512

typedef struct Compare {
    const char *path[PATH_MAX_DEPTH];
    size_t path_len[PATH_MAX_DEPTH];
    int depth;
    int differences;
    bool unexplained;
    unsigned reasons; /* bit set of Reason */
    char first_unexplained[512];
} Compare;

static bool path_has(const Compare *cmp, const char *key)
{
    size_t len = strlen(key);
    for (int i = 0; i < cmp->depth; i++)
        if (cmp->path_len[i] == len && memcmp(cmp->path[i], key, len) == 0)
            return true;
    return false;
}

static bool path_at(const Compare *cmp, int from_top, const char *key)
{
    int i = cmp->depth - 1 - from_top;
    return i >= 0 && cmp->path_len[i] == strlen(key) &&
           memcmp(cmp->path[i], key, cmp->path_len[i]) == 0;
}

/* Is the A_Const `depth` frames below the top of the path an ORDER BY / GROUP BY item by
 * itself (SortBy.node, or an element of groupClause), i.e. a positional reference (R26)? */
static bool in_positional_const(const Compare *cmp, int depth)
{
    return path_at(cmp, depth, "A_Const") &&
           ((path_at(cmp, depth + 1, "node") && path_at(cmp, depth + 2, "SortBy")) ||
            (path_at(cmp, depth + 1, "[]") && path_at(cmp, depth + 2, "groupClause")));
}

static void path_push(Compare *cmp, const char *key, size_t len)
{
    if (cmp->depth < PATH_MAX_DEPTH) {
        cmp->path[cmp->depth] = key;
        cmp->path_len[cmp->depth] = len;
    }
    cmp->depth++;
}

static void path_pop(Compare *cmp)
{
    cmp->depth--;
}

/* Classifies a difference at the current path. */
static void note_difference(Compare *cmp, const char *what)
{
    Reason reason = REASON_NONE;
    cmp->differences++;
    if (path_has(cmp, "typmods"))
        reason = REASON_TYPMOD;
    else if (path_has(cmp, "alias") ||
             (path_at(cmp, 0, "name") && path_at(cmp, 1, "ResTarget") && path_at(cmp, 2, "[]") &&
              path_at(cmp, 3, "targetList") && path_at(cmp, 4, "SelectStmt")))
        reason = REASON_ALIAS;
    else if (in_positional_const(cmp, 1) || in_positional_const(cmp, 2))
        reason = REASON_POSITIONAL;
    else if (path_at(cmp, 0, "howMany") && path_at(cmp, 1, "FetchStmt"))
        reason = REASON_FETCH_COUNT;
    if (reason == REASON_NONE) {
        if (!cmp->unexplained) {
            size_t used = 0;
            for (int i = 0;
                 i < cmp->depth && i < PATH_MAX_DEPTH && used + 40 < sizeof(cmp->first_unexplained);
                 i++) {
                int n =
                    snprintf(cmp->first_unexplained + used, sizeof(cmp->first_unexplained) - used,
                             "%s%.*s", i ? "." : "", (int)cmp->path_len[i], cmp->path[i]);
                if (n > 0)
                    used += (size_t)n;
            }
            snprintf(cmp->first_unexplained + used, sizeof(cmp->first_unexplained) - used, " (%s)",
                     what);
        }
        cmp->unexplained = true;
        return;
    }
    cmp->reasons |= 1u << reason;
}

/* Members pg_query_fingerprint never looks at and the spec does not keep either. */
static bool member_ignored(const Compare *cmp, const Json *member)
{
    if (json_key_is(member, "location"))
        return true;
    /* Session-scoped names: R28 makes them placeholders, pg_query ignores them too. */
    if ((path_at(cmp, 0, "FetchStmt") || path_at(cmp, 0, "ClosePortalStmt") ||
         path_at(cmp, 0, "DeclareCursorStmt")) &&
        json_key_is(member, "portalname"))
        return true;
    if (path_at(cmp, 0, "TransactionStmt") && json_key_is(member, "savepoint_name"))
        return true;
    /* ParamRef numbers: R34 renumbers, pg_query ignores them. */
    if (path_at(cmp, 0, "ParamRef") && json_key_is(member, "number"))
        return true;
    /* Constant values become placeholders (R11-R18, R24, R25), except typmods (R27) and a
     * positional ORDER BY / GROUP BY integer (R26), which the spec keeps verbatim. */
    if (path_at(cmp, 0, "A_Const")) {
        if (path_has(cmp, "typmods"))
            return false;
        if (in_positional_const(cmp, 0) && json_key_is(member, "ival"))
            return false;
        return true;
    }
    return false;
}

static void compare_json(Compare *cmp, const Json *a, const Json *b);

static void compare_members(Compare *cmp, const Json *a, const Json *b)
{
    for (const Json *ma = a->child; ma; ma = ma->next) {
        if (member_ignored(cmp, ma))
            continue;
        const Json *mb = NULL;
        for (const Json *c = b->child; c; c = c->next)
            if (c->key_len == ma->key_len && memcmp(c->key, ma->key, ma->key_len) == 0)
                mb = c;
        path_push(cmp, ma->key, ma->key_len);
        if (mb)
            compare_json(cmp, ma, mb);
        else
            note_difference(cmp, "member only on one side");
        path_pop(cmp);
    }
    for (const Json *mb = b->child; mb; mb = mb->next) {
        if (member_ignored(cmp, mb))
            continue;
        bool found = false;
        for (const Json *c = a->child; c; c = c->next)
            if (c->key_len == mb->key_len && memcmp(c->key, mb->key, mb->key_len) == 0)
                found = true;
        if (!found) {
            path_push(cmp, mb->key, mb->key_len);
            note_difference(cmp, "member only on one side");
            path_pop(cmp);
        }
    }
}

/* A scratch comparison that reports only whether two subtrees are equal (same rules). */
static bool json_equal(const Compare *outer, const Json *a, const Json *b)
{
    Compare *scratch = malloc(sizeof(*scratch));
    if (!scratch)
        abort();
    memcpy(scratch, outer, sizeof(*scratch));
    scratch->differences = 0;
    scratch->unexplained = false;
    scratch->reasons = 0;
    compare_json(scratch, a, b);
    bool equal = scratch->differences == 0;
    free(scratch);
    return equal;
}

/* True when two arrays hold the same elements as sets (order and repeats ignored). */
static bool json_array_set_equal(const Compare *cmp, const Json *a, const Json *b)
{
    for (int pass = 0; pass < 2; pass++) {
        const Json *x = pass ? b : a, *y = pass ? a : b;
        for (const Json *ex = x->child; ex; ex = ex->next) {
            bool found = false;
            for (const Json *ey = y->child; ey && !found; ey = ey->next)
                found = json_equal(cmp, ex, ey);
            if (!found)
                return false;
        }
    }
    return true;
}

/* An A_Expr of kind AEXPR_IN on one side and AEXPR_OP_ANY on the other. */
static bool in_vs_any(const Json *a, const Json *b)
{
    const Json *ka = json_member(a, "kind"), *kb = json_member(b, "kind");
    if (!ka || !kb)
        return false;
    return (json_text_is(ka, "AEXPR_IN") && json_text_is(kb, "AEXPR_OP_ANY")) ||
           (json_text_is(ka, "AEXPR_OP_ANY") && json_text_is(kb, "AEXPR_IN"));
}

static void compare_json(Compare *cmp, const Json *a, const Json *b)
{
    if (a->type != b->type) {
        note_difference(cmp, "node types differ");
        return;
    }
    switch (a->type) {
    case JSON_OBJECT:
        if (path_at(cmp, 0, "A_Expr") && in_vs_any(a, b)) {
            cmp->differences++;
            cmp->reasons |= 1u << REASON_IN_ANY;
            return;
        }
        /* A node wrapper {"SelectStmt": {...}}: different node types differ as a whole. */
        compare_members(cmp, a, b);
        return;
    case JSON_ARRAY: {
        const Json *ea = a->child, *eb = b->child;
        bool same_shape = true;
        for (; ea && eb; ea = ea->next, eb = eb->next)
            if (!json_equal(cmp, ea, eb))
                same_shape = false;
        if (ea || eb)
            same_shape = false;
        if (same_shape)
            return;
        if (json_array_set_equal(cmp, a, b)) {
            /* pg_query hashes some lists (the SELECT list, IN lists) order-insensitively and
             * without repeats; the spec keeps order (R29). A list of constants that merely
             * changes length is not this case: its elements are all equal and R30-R32
             * collapse it, so F must agree there. */
            bool all_equal = true;
            for (const Json *e = a->child; e && e->next && all_equal; e = e->next)
                all_equal = json_equal(cmp, e, e->next);
            for (const Json *e = b->child; e && all_equal; e = e->next)
                all_equal = json_equal(cmp, a->child, e);
            if (!all_equal) {
                cmp->differences++;
                cmp->reasons |= 1u << REASON_LIST_SET;
                return;
            }
        }
        /* Element-wise when the lengths match, so the difference is classified deep down. */
        if (!ea && !eb) {
            path_push(cmp, "[]", 2);
            for (ea = a->child, eb = b->child; ea && eb; ea = ea->next, eb = eb->next)
                compare_json(cmp, ea, eb);
            path_pop(cmp);
            return;
        }
        note_difference(cmp, "list lengths differ");
        return;
    }
    case JSON_STRING:
    case JSON_SCALAR:
        if (a->text_len != b->text_len || memcmp(a->text, b->text, a->text_len) != 0)
            note_difference(cmp, "values differ");
        return;
    }
}

/* ---------------------------------------------------------------------------------------
 * Client-side markers -> $k (what the driver does before the server sees the statement),
 * and the "spelling signature" used to excuse identical trees: the sequence of words and
 * quoted identifiers outside literals and comments, unquoted words lowercased, literal
 * words (true, false, null) and markers left out.
 * ------------------------------------------------------------------------------------- */
static bool is_word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_word_char(unsigned char c)
{
    return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static uint64_t spelling_signature(const char *s, size_t n)
{
    XXH3_state_t *state = XXH3_createState();
    XXH3_64bits_reset(state);
    size_t i = 0;
    while (i < n) {
        size_t op = corpus_opaque_len(s, n, i);
        if (op) {
            if (s[i] == '"') /* quoted identifiers are words, kept verbatim (R10) */
                XXH3_64bits_update(state, s + i, op);
            i += op;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '$' || (c >= '0' && c <= '9') ||
            (c == '.' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')) {
            /* parameters and numbers (with their exponent) are literals */
            i++;
            while (i < n &&
                   (is_word_char((unsigned char)s[i]) || s[i] == '.' ||
                    ((s[i] == '-' || s[i] == '+') && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
                i++;
            continue;
        }
        if (is_word_start(c)) {
            char word[64];
            size_t len = 0;
            while (i < n && is_word_char((unsigned char)s[i])) {
                if (len < sizeof(word) - 1)
                    word[len++] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]);
                i++;
            }
            word[len] = 0;
            if (strcmp(word, "true") && strcmp(word, "false") && strcmp(word, "null")) {
                word[len] = ' ';
                XXH3_64bits_update(state, word, len + 1);
            }
            continue;
        }
        i++;
    }
    uint64_t h = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return h;
}

/* ---------------------------------------------------------------------------------------
 * The corpus and the per-statement facts.
 * ------------------------------------------------------------------------------------- */
typedef struct Stmt {
    const char *sql;
    size_t len;
    uint64_t f;
    char *normalized;
    int pieces; /* statements sqlnorm found (R37); the corpus has one per entry */
    bool incomplete;
    bool had_markers;
    bool parsed;
    uint64_t p;
    char *p_error;
    char *tree_text;
    Json *tree;
    uint64_t spelling;
} Stmt;

static Corpus corpus;
static Stmt *stmts;
static size_t n_stmts;

static bool load_corpus(const char *path)
{
    if (!corpus_load(&corpus, path))
        return false;
    stmts = calloc(corpus.count + 1, sizeof(*stmts));
    if (!stmts)
        abort();
    for (size_t i = 0; i < corpus.count; i++) {
        stmts[i].sql = corpus.entries[i].sql;
        stmts[i].len = corpus.entries[i].len;
    }
    n_stmts = corpus.count;
    return true;
}

static void compute_f(Stmt *st)
{
    size_t cap = sqlnorm_output_bound(st->len);
    char *out = malloc(cap);
    if (!out)
        abort();
    SqlnormCursor cursor;
    SqlnormStatement piece;
    SqlTags tags;
    sqltags_init(&tags);
    sqlnorm_cursor_init(&cursor, st->sql, st->len, NULL);
    uint64_t fs[16];
    size_t total = 0;
    st->pieces = 0;
    st->normalized = calloc(1, 1);
    while (sqlnorm_next(&cursor, out, cap, &piece, &tags)) {
        if (st->pieces < 16)
            fs[st->pieces] = piece.fingerprint;
        st->pieces++;
        st->incomplete |= piece.incomplete;
        char *joined = realloc(st->normalized, total + piece.normalized_len + 4);
        if (!joined)
            abort();
        st->normalized = joined;
        if (total) {
            memcpy(st->normalized + total, " ; ", 3);
            total += 3;
        }
        memcpy(st->normalized + total, piece.normalized, piece.normalized_len);
        total += piece.normalized_len;
        st->normalized[total] = 0;
    }
    /* One entry, one execution: an entry that splits into several statements is grouped by
     * the sequence of their fingerprints. */
    st->f = st->pieces == 1
                ? fs[0]
                : XXH3_64bits(fs, sizeof(fs[0]) * (size_t)(st->pieces < 16 ? st->pieces : 16));
    free(out);
}

static void compute_pg_query(Stmt *st)
{
    char *server = corpus_server_form(st->sql, st->len, &st->had_markers);
    PgQueryFingerprintResult fp = pg_query_fingerprint(server);
    if (fp.error) {
        st->parsed = false;
        st->p_error = strdup(fp.error->message);
    } else {
        st->parsed = true;
        st->p = fp.fingerprint;
    }
    pg_query_free_fingerprint_result(fp);
    if (st->parsed) {
        PgQueryParseResult pr = pg_query_parse(server);
        if (pr.error) {
            st->parsed = false;
            st->p_error = strdup(pr.error->message);
        } else {
            st->tree_text = strdup(pr.parse_tree);
            const char *p = st->tree_text;
            st->tree = json_parse_value(&p);
        }
        pg_query_free_parse_result(pr);
    }
    st->spelling = spelling_signature(st->sql, st->len);
    free(server);
}

/* Explains one disagreeing pair; returns its reason bit set, or 0 when unexplained. */
static unsigned explain_pair(const Stmt *a, const Stmt *b, bool f_finer, char *why, size_t why_cap)
{
    Compare *cmp = calloc(1, sizeof(*cmp));
    if (!cmp)
        abort();
    compare_json(cmp, a->tree, b->tree);
    unsigned reasons = 0;
    if (cmp->unexplained) {
        snprintf(why, why_cap, "trees differ at %s", cmp->first_unexplained);
    } else if (cmp->differences == 0) {
        if (f_finer && a->spelling != b->spelling)
            reasons = 1u << REASON_SPELLING;
        else
            snprintf(why, why_cap, "%s",
                     f_finer ? "same parse tree and same words, yet F differs "
                               "(whitespace, comments, case or literals changed F)"
                             : "F equal, pg_query differs, trees equal modulo constants");
    } else {
        reasons = cmp->reasons;
        for (int r = 1; r < REASON_COUNT; r++)
            if ((reasons & (1u << r)) && reason_is_f_finer((Reason)r) != f_finer) {
                snprintf(why, why_cap, "difference '%s' in the wrong direction (F %s)",
                         reason_text[r], f_finer ? "splits" : "merges");
                reasons = 0;
                break;
            }
    }
    free(cmp);
    return reasons;
}

static const char *corpus_path = "tests/corpus/orm_statements.sql";

/* Shows a statement on one line, shortened. */
static void print_stmt(const char *label, const char *s, size_t len)
{
    printf("    %s: ", label);
    size_t shown = len > 300 ? 300 : len;
    for (size_t i = 0; i < shown; i++)
        putchar(s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i]);
    printf("%s\n", len > shown ? " ..." : "");
}

TEST(corpus_loads)
{
    CHECK(load_corpus(corpus_path));
    CHECK(n_stmts >= 1000);
}

TEST(pg_query_parses_every_statement)
{
    int errors = 0;
    for (size_t i = 0; i < n_stmts; i++) {
        compute_f(&stmts[i]);
        compute_pg_query(&stmts[i]);
        if (!stmts[i].parsed) {
            if (errors++ < 5) {
                printf("  pg_query cannot parse #%zu: %s\n", i, stmts[i].p_error);
                print_stmt("sql", stmts[i].sql, stmts[i].len);
            }
        }
    }
    /* The corpus is written to be valid PostgreSQL 15 once client markers are replaced:
     * a parse failure means the corpus or the marker substitution is wrong. */
    CHECK_EQ_INT(errors, 0);
}

TEST(every_entry_is_one_complete_statement)
{
    int bad = 0;
    for (size_t i = 0; i < n_stmts; i++)
        if (stmts[i].pieces != 1 || stmts[i].incomplete) {
            if (bad++ < 5)
                printf("  #%zu: %d statement(s), incomplete=%d\n", i, stmts[i].pieces,
                       stmts[i].incomplete);
        }
    CHECK_EQ_INT(bad, 0);
}

TEST(groupings_agree_modulo_intended_differences)
{
    size_t n = n_stmts;
    size_t pair_counts[REASON_COUNT] = {0};
    size_t unexplained_pairs = 0, disagreeing_pairs = 0;
    size_t identical = 0, explained_only = 0, included = 0;
    bool *stmt_unexplained = calloc(n, sizeof(bool));
    bool *stmt_differs = calloc(n, sizeof(bool));
    unsigned *first_example = calloc(REASON_COUNT, sizeof(unsigned) * 2);
    bool example_set[REASON_COUNT] = {false};
    char why[600];
    /* ORACLE_VERBOSE=1 lists explained pairs too, with their reasons. */
    bool verbose = getenv("ORACLE_VERBOSE") != NULL;
    int verbose_shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!stmts[i].parsed)
            continue;
        for (size_t j = i + 1; j < n; j++) {
            if (!stmts[j].parsed)
                continue;
            bool same_f = stmts[i].f == stmts[j].f;
            bool same_p = stmts[i].p == stmts[j].p;
            if (same_f == same_p)
                continue;
            disagreeing_pairs++;
            stmt_differs[i] = stmt_differs[j] = true;
            why[0] = 0;
            unsigned reasons = explain_pair(&stmts[i], &stmts[j], !same_f, why, sizeof(why));
            if (!reasons) {
                stmt_unexplained[i] = stmt_unexplained[j] = true;
                if (unexplained_pairs++ < 8) {
                    printf("  UNEXPLAINED #%zu vs #%zu: F %s, pg_query %s: %s\n", i, j,
                           same_f ? "equal" : "differs", same_p ? "equal" : "differs", why);
                    print_stmt("a  ", stmts[i].sql, stmts[i].len);
                    print_stmt("b  ", stmts[j].sql, stmts[j].len);
                    print_stmt("N(a)", stmts[i].normalized, strlen(stmts[i].normalized));
                    print_stmt("N(b)", stmts[j].normalized, strlen(stmts[j].normalized));
                }
                continue;
            }
            if (verbose && verbose_shown++ < 200) {
                printf("  explained #%zu vs #%zu:", i, j);
                for (int r = 1; r < REASON_COUNT; r++)
                    if (reasons & (1u << r))
                        printf(" [%s]", reason_text[r]);
                printf("\n");
                print_stmt("N(a)", stmts[i].normalized, strlen(stmts[i].normalized));
                print_stmt("N(b)", stmts[j].normalized, strlen(stmts[j].normalized));
            }
            for (int r = 1; r < REASON_COUNT; r++)
                if (reasons & (1u << r)) {
                    pair_counts[r]++;
                    if (!example_set[r]) {
                        example_set[r] = true;
                        first_example[2 * r] = (unsigned)i;
                        first_example[2 * r + 1] = (unsigned)j;
                    }
                }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!stmts[i].parsed)
            continue;
        included++;
        if (!stmt_differs[i])
            identical++;
        else if (!stmt_unexplained[i])
            explained_only++;
    }
    size_t distinct_f = 0, distinct_p = 0;
    for (size_t i = 0; i < n; i++) {
        bool new_f = true, new_p = true;
        for (size_t j = 0; j < i && (new_f || new_p); j++) {
            if (stmts[j].f == stmts[i].f)
                new_f = false;
            if (stmts[j].p == stmts[i].p)
                new_p = false;
        }
        distinct_f += new_f;
        distinct_p += new_p && stmts[i].parsed;
    }
    size_t with_markers = 0;
    for (size_t i = 0; i < n; i++)
        with_markers += stmts[i].had_markers;
    printf("  statements: %zu in corpus, %zu compared (client markers substituted in %zu), "
           "%zu excluded (pg_query parse error)\n",
           n, included, with_markers, n - included);
    printf("  groups: %zu by F, %zu by pg_query; %zu disagreeing pairs\n", distinct_f, distinct_p,
           disagreeing_pairs);
    for (int r = 1; r < REASON_COUNT; r++) {
        printf("  intended difference: %-78s %6zu pairs\n", reason_text[r], pair_counts[r]);
        if (example_set[r]) {
            const Stmt *a = &stmts[first_example[2 * r]], *b = &stmts[first_example[2 * r + 1]];
            print_stmt("e.g. N(a)", a->normalized, strlen(a->normalized));
            print_stmt("     N(b)", b->normalized, strlen(b->normalized));
        }
    }
    double raw = included ? 100.0 * (double)identical / (double)included : 0;
    double modulo = included ? 100.0 * (double)(identical + explained_only) / (double)included : 0;
    printf("agreement: %.1f%% of %zu statements grouped identically (%zu of %zu); %.1f%% modulo "
           "intended differences; %zu unexplained differences (%zu pairs)\n",
           raw, included, identical, included, modulo, included - identical - explained_only,
           unexplained_pairs);
    CHECK_EQ_INT(unexplained_pairs, 0);
    CHECK_EQ_INT(n - included, 0);
    free(stmt_unexplained);
    free(stmt_differs);
    free(first_example);
}

/* Not the oracle itself, but free with this corpus: R3 (idempotence) on realistic input, and
 * R39 (every tag comment the ORMs wrote is found). */
TEST(normalization_is_idempotent_on_corpus)
{
    int bad = 0;
    for (size_t i = 0; i < n_stmts; i++) {
        const char *n1 = stmts[i].normalized;
        size_t len = strlen(n1), cap = sqlnorm_output_bound(len);
        char *out = malloc(cap);
        if (!out)
            abort();
        SqlnormCursor cursor;
        SqlnormStatement st;
        sqlnorm_cursor_init(&cursor, n1, len, NULL);
        bool ok = sqlnorm_next(&cursor, out, cap, &st, NULL) && st.normalized_len == len &&
                  memcmp(st.normalized, n1, len) == 0;
        if (!ok && bad++ < 3) {
            print_stmt("N   ", n1, len);
            print_stmt("N(N)", st.normalized, st.normalized_len);
        }
        free(out);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(tag_comments_in_corpus_are_found)
{
    /* Each key is written by one tagger: sqlcommenter (traceparent), marginalia or
     * QueryLogs (application), Datadog (dddbs). */
    static const char *const keys[] = {"traceparent", "application", "dddbs"};
    static SqlTags tags;
    int mentioned = 0, missing = 0;
    for (size_t i = 0; i < n_stmts; i++) {
        size_t cap = sqlnorm_output_bound(stmts[i].len);
        char *out = malloc(cap);
        if (!out)
            abort();
        SqlnormCursor cursor;
        SqlnormStatement st;
        sqltags_init(&tags);
        sqlnorm_cursor_init(&cursor, stmts[i].sql, stmts[i].len, NULL);
        while (sqlnorm_next(&cursor, out, cap, &st, &tags))
            ;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            if (!strstr(stmts[i].sql, keys[k]))
                continue;
            mentioned++;
            if (!sqltags_find(&tags, keys[k]) && missing++ < 3)
                printf("  tag %s not found in #%zu\n", keys[k], i);
        }
        free(out);
    }
    CHECK(mentioned > 500);
    CHECK_EQ_INT(missing, 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        corpus_path = argv[1];
    RUN(corpus_loads);
    if (n_stmts == 0)
        return TESTLIB_FINISH();
    RUN(pg_query_parses_every_statement);
    RUN(every_entry_is_one_complete_statement);
    RUN(groupings_agree_modulo_intended_differences);
    RUN(normalization_is_idempotent_on_corpus);
    RUN(tag_comments_in_corpus_are_found);
    for (size_t i = 0; i < n_stmts; i++) {
        free(stmts[i].normalized);
        free(stmts[i].p_error);
        free(stmts[i].tree_text);
        json_free(stmts[i].tree);
    }
    free(stmts);
    corpus_free(&corpus);
    pg_query_exit();
    return TESTLIB_FINISH();
}
