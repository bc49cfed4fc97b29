/* protocol/sqlnorm — the SQL normalizer (spec: shared NORMALIZATION.md v1, rules cited as R<n>).
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
} SqlnormOptions;

typedef struct SqlnormStatement {
    const char *normalized; /* N, in the caller's output buffer; not NUL-terminated */
    size_t normalized_len;
    uint64_t fingerprint; /* F = XXH3_64bits_withSeed(N, len, SQLNORM_SEED) */
    uint64_t values_hash; /* V (R4a) */
    size_t src_offset;    /* this statement's span in the input (R37) */
    size_t src_len;
    bool incomplete; /* R40 */
} SqlnormStatement;

/* Iterates over the statements of one SQL string (R37). */
typedef struct SqlnormCursor {
    const char *sql;
    size_t len;
    size_t pos;
    SqlnormOptions options;
} SqlnormCursor;

/* Bytes of output buffer that always suffice for an input of `input_len` bytes (R38). */
size_t sqlnorm_output_bound(size_t input_len);

void sqlnorm_cursor_init(SqlnormCursor *cursor, const char *sql, size_t len,
                         const SqlnormOptions *options);

/* Normalizes the next statement into `out` (at least sqlnorm_output_bound(cursor->len)
 * bytes) and fills `stmt`. Tag comments met on the way are appended to `tags` (may be NULL).
 * Returns false when no statement remains (empty statements between `;` are skipped). */
bool sqlnorm_next(SqlnormCursor *cursor, char *out, size_t out_cap, SqlnormStatement *stmt,
                  SqlTags *tags);

/* Formats a 64-bit hash as 16 lowercase hex digits plus NUL. */
void sqlnorm_hex64(uint64_t value, char out[17]);

#endif
