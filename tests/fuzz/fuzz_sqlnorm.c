/* tests/fuzz/fuzz_sqlnorm.c — libFuzzer target for protocol/sqlnorm and protocol/sqltags.
 *
 * Invariants checked on every input (a violation aborts, so the fuzzer keeps the input):
 *   - no crash, no read past the input (sanitizers: the input is an exact-size buffer);
 *   - every statement: N fits in sqlnorm_output_bound and nothing is written past out_cap
 *     (the buffer is exact-size too), its span lies inside the input;
 *   - idempotence (R3): N(N) is exactly one statement equal to N, with the same F;
 *   - a too-small buffer (bounded-prefix mode) is respected;
 *   - both string modes (standard_conforming_strings on and off);
 *   - the fast paths change nothing: with `no_shortcuts` every statement is the same (N, F, V,
 *     span, incomplete flag), and the cursor does the same steps (first pass only: it doubles
 *     that pass's cost, and the fast path does not depend on the string mode or the buffer);
 *   - sqltags: the input taken as a comment body keeps the SqlTags bounds;
 *   - slow inputs: every call's work counter stays within SQLNORM_WORK_MAX (SQLTAGS_WORK_MAX
 *     for the tag parser) of the input's length, so a superlinear path is caught on the
 *     first input that exercises it, without a clock (libFuzzer's -timeout is the backstop). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/sqlnorm.h"
#include "protocol/sqltags.h"

#define FUZZ_REQUIRE(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sqlnorm: invariant failed: %s (%s:%d)\n", what, __FILE__,        \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_check_tags(const SqlTags *tags)
{
    FUZZ_REQUIRE(tags->count <= SQLTAGS_MAX, "tag count bound");
    FUZZ_REQUIRE(tags->storage_used <= SQLTAGS_STORAGE, "tag storage bound");
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        FUZZ_REQUIRE(t->key >= tags->storage &&
                         t->key + t->key_len <= tags->storage + tags->storage_used,
                     "tag key inside storage");
        FUZZ_REQUIRE(t->value >= tags->storage &&
                         t->value + t->value_len <= tags->storage + tags->storage_used,
                     "tag value inside storage");
        FUZZ_REQUIRE(t->key_len > 0, "tag key not empty");
    }
}

/* N(N) == N: the normalized text, normalized again, is one statement and unchanged. */
static void fuzz_check_idempotent(const SqlnormStatement *st)
{
    size_t n = st->normalized_len;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, st->normalized, n);
    size_t cap = sqlnorm_output_bound(n);
    char *out = malloc(cap);
    SqlnormCursor cur;
    SqlnormStatement again;
    sqlnorm_cursor_init(&cur, copy, n, NULL);
    bool got = sqlnorm_next(&cur, out, cap, &again, NULL);
    FUZZ_REQUIRE(cur.work <= SQLNORM_WORK_MAX(n), "slow input: N(N) work per byte");
    FUZZ_REQUIRE(got || n == 0, "N(N) has a statement");
    if (got) {
        if (again.normalized_len != n || memcmp(again.normalized, copy, n) != 0) {
            fprintf(stderr, "N   : %.*s\nN(N): %.*s\n", (int)n, copy, (int)again.normalized_len,
                    again.normalized);
            FUZZ_REQUIRE(false, "idempotence N(N) == N");
        }
        FUZZ_REQUIRE(again.fingerprint == st->fingerprint, "same F");
        FUZZ_REQUIRE(!sqlnorm_next(&cur, out, cap, &again, NULL), "N(N) is one statement");
    }
    free(out);
    free(copy);
}

/* The next statement with the fast paths off (general), to compare with `st`. */
static void fuzz_check_general(SqlnormCursor *general, char *out, size_t cap,
                               const SqlnormStatement *st, const SqlnormCursor *cur)
{
    SqlnormStatement g;
    FUZZ_REQUIRE(sqlnorm_next(general, out, cap, &g, NULL), "general rules: a statement too");
    if (g.normalized_len != st->normalized_len ||
        memcmp(g.normalized, st->normalized, g.normalized_len) != 0) {
        fprintf(stderr, "fast path: %.*s\ngeneral:   %.*s\n", (int)st->normalized_len,
                st->normalized, (int)g.normalized_len, g.normalized);
        FUZZ_REQUIRE(false, "fast path gives the general rules' N");
    }
    FUZZ_REQUIRE(g.fingerprint == st->fingerprint && g.values_hash == st->values_hash,
                 "fast path: same F and V");
    FUZZ_REQUIRE(g.src_offset == st->src_offset && g.src_len == st->src_len &&
                     g.incomplete == st->incomplete && general->pos == cur->pos,
                 "fast path: same span, flag and cursor");
}

static void fuzz_normalize(const char *sql, size_t size, bool scs_off, size_t cap, bool full,
                           bool compare)
{
    SqlnormOptions opt = {.scs_off = scs_off};
    SqlnormOptions general_opt = {.scs_off = scs_off, .no_shortcuts = true};
    SqlnormCursor cur, general;
    SqlnormStatement st;
    SqlTags tags;
    char *out = malloc(cap ? cap : 1);
    char *general_out = malloc(cap ? cap : 1);
    sqltags_init(&tags);
    sqlnorm_cursor_init(&cur, sql, size, &opt);
    sqlnorm_cursor_init(&general, sql, size, &general_opt);
    size_t prev_pos = 0;
    while (sqlnorm_next(&cur, out, cap, &st, &tags)) {
        if (compare)
            fuzz_check_general(&general, general_out, cap, &st, &cur);
        FUZZ_REQUIRE(st.normalized >= out && st.normalized_len < cap &&
                         st.normalized + st.normalized_len <= out + cap,
                     "N inside the output buffer");
        FUZZ_REQUIRE(st.src_offset <= size && st.src_len <= size - st.src_offset,
                     "statement span inside the input");
        FUZZ_REQUIRE(st.src_offset >= prev_pos, "statements in input order");
        FUZZ_REQUIRE(cur.pos <= size && cur.pos >= prev_pos, "cursor moves forward");
        prev_pos = cur.pos;
        if (full)
            FUZZ_REQUIRE(st.normalized_len + 1 <= sqlnorm_output_bound(st.src_len + 1),
                         "N within the bound of its own span");
        if (full || !st.incomplete)
            fuzz_check_idempotent(&st);
    }
    FUZZ_REQUIRE(cur.pos == size, "cursor reaches the end");
    SqlnormStatement extra;
    FUZZ_REQUIRE(!compare || !sqlnorm_next(&general, general_out, cap, &extra, NULL),
                 "general rules: no more statements");
    free(general_out);
    if (cur.work > SQLNORM_WORK_MAX(size)) {
        fprintf(stderr, "work %zu for %zu bytes\n", cur.work, size);
        FUZZ_REQUIRE(false, "slow input: work per byte");
    }
    fuzz_check_tags(&tags);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    fuzz_normalize(sql, size, false, sqlnorm_output_bound(size), true, true);
    fuzz_normalize(sql, size, true, sqlnorm_output_bound(size), true, false);
    fuzz_normalize(sql, size, false, sqlnorm_output_bound(size / 3), false, false);

    SqlTags tags;
    sqltags_init(&tags);
    sqltags_parse_comment(sql, size, &tags);
    FUZZ_REQUIRE(tags.work <= SQLTAGS_WORK_MAX(size), "slow input: tag work per byte");
    fuzz_check_tags(&tags);
    sqltags_init(&tags);
    FUZZ_REQUIRE(sqlnorm_scan_tags(sql, size, NULL, &tags) <= SQLNORM_WORK_MAX(size),
                 "slow input: tag scan work per byte");
    fuzz_check_tags(&tags);
    return 0;
}
