/* protocol/sqlnorm — the SQL normalizer (spec v1: docs/normalization-spec.md, rules cited as R<n>).
 *
 * Owns: turning SQL text into per-statement normalized text N, fingerprint F, values hash V,
 * the `incomplete` flag, and (through sqltags) the tags T found in comments. One forward pass,
 * O(n), no allocation: the caller provides the output buffer. Never fails, never reads past
 * the input. */
#ifndef PGTALLY_PROTOCOL_SQLNORM_H
#define PGTALLY_PROTOCOL_SQLNORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sqltags.h"

#define SQLNORM_SEED 1 /* R4: the seed is the spec version */

typedef struct SqlnormOptions {
    bool scs_off; /* R2: standard_conforming_strings=off, backslash escapes in '...' */
    bool no_shortcuts; /* every token through the general rules, none through a fast path:
                          the same output, slower; for tests that compare the two */
} SqlnormOptions;

typedef struct SqlnormStatement {
    const char *normalized; /* N: at the start of the caller's output buffer, followed by a
                               NUL (not counted in normalized_len) */
    size_t normalized_len;
    uint64_t fingerprint; /* F = XXH3_64bits_withSeed(N, len, SQLNORM_SEED) */
    uint64_t values_hash; /* V (R4a): XXH3_64bits (seed 0) over, for each placeholder in
                             input order, a 4-byte little-endian length then its original
                             text (a folded sign first: `- 2` hashes as "-2"). Parameters
                             ($n), client markers and R28 names count as literals here. */
    size_t src_offset;    /* this statement's span in the input (R37): first token start */
    size_t src_len;       /* ... to last token end (comments and `;` around it excluded) */
    bool incomplete;      /* R40; also set when the statement was cut to fit out_cap */
    size_t work;          /* the cost of this call, see "Work" below */
} SqlnormStatement;

/* Iterates over the statements of one SQL string (R37). */
typedef struct SqlnormCursor {
    const char *sql;
    size_t len;
    size_t pos;
    SqlnormOptions options;
    size_t work; /* the sum of the calls' work on this cursor */
} SqlnormCursor;

/* Bytes of output buffer that always suffice for an input of `input_len` bytes (R38):
 * 5 * len + len * decimal_digits(len) + 32 (the text is built unnumbered behind a reserve
 * for the placeholder numbers). */
size_t sqlnorm_output_bound(size_t input_len);

void sqlnorm_cursor_init(SqlnormCursor *cursor, const char *sql, size_t len,
                         const SqlnormOptions *options);

/* Normalizes the next statement into `out` and fills `stmt`. Tag comments met on the way are
 * appended to `tags` (may be NULL; the caller initialises it once per string). Returns false
 * when no statement remains (empty statements between `;` are skipped). Never fails.
 *
 * out_cap: with at least sqlnorm_output_bound(cursor->len - cursor->pos) bytes the whole
 * statement is normalized. With less, only the longest prefix of the remaining input whose
 * bound fits is normalized (bounded-prefix mode for very long statements): the statement
 * is flagged incomplete and the rest of the input is dropped. Nothing is ever written at or
 * beyond out + out_cap.
 *
 * Tags (R37: tags found anywhere apply to every statement of the string). After a call
 * returns, cursor->pos == cursor->len means this was the last statement and `tags` holds
 * every tag of the string (trailing comments and `;` are consumed eagerly). So:
 *   - single statement (the common case): one call, tags complete;
 *   - several statements: either keep each statement's F/V (and N if wanted) and apply
 *     `tags` once the loop has ended, or call sqlnorm_scan_tags() first and then iterate
 *     with tags == NULL. */
bool sqlnorm_next(SqlnormCursor *cursor, char *out, size_t out_cap, SqlnormStatement *stmt,
                  SqlTags *tags);

/* Work. Every call counts what it costs, without a clock: each input byte the lexer moves
 * over once (a token after a `;` is lexed again by the next call and counted again), plus
 * every byte it looks at besides (look-ahead that does not become part of the token, the
 * trimmed tail of an operator run, the comparisons of a dollar-quote closer, the tag parser's
 * SqlTags.work), plus the bytes compared or put back when lists collapse and re-expand, plus
 * the text numbered and hashed. Always on: a few additions per statement and per rare token.
 *
 * It is linear in the input. tests/unit/test_sqlnorm.c measures adversarial shapes (operator
 * runs, nesting, long literals, comments, lists, tags) from 1 KiB to 1 MiB: at most 16 per
 * byte, tag lists 28 on a 1 KiB comment (each key is compared with up to 31 held ones). One
 * term grows with the logarithm of the input, up to a fixed cap: VALUES lists nested in
 * VALUES rows compare their rows at every level (11 per byte at 608 KiB, a balanced tree;
 * the levels are capped by the bracket depth that keeps context).
 *
 * SQLNORM_WORK_MAX is the slow-input line the fuzzers draw for every input they try: far above
 * any of those shapes, far below what a quadratic path costs beyond a few hundred bytes. */
#define SQLNORM_WORK_MAX(len) ((size_t)(len)*128 + 4096)

/* Collects every tag comment of `sql` into `tags` (appending) without normalizing: the
 * lexer alone, so comments inside literals are not mistaken for tags. Returns its work. */
size_t sqlnorm_scan_tags(const char *sql, size_t len, const SqlnormOptions *options, SqlTags *tags);

/* Formats a 64-bit hash as 16 lowercase hex digits plus NUL. */
void sqlnorm_hex64(uint64_t value, char out[17]);

#endif
