/* protocol/sqlnorm — SQL normalizer (NORMALIZATION.md). Stub: being written. */
#include "protocol/sqlnorm.h"

#include <string.h>
#include <xxhash.h>

size_t sqlnorm_output_bound(size_t input_len)
{
    return input_len * 8 + 64;
}

void sqlnorm_cursor_init(SqlnormCursor *cursor, const char *sql, size_t len,
                         const SqlnormOptions *options)
{
    cursor->sql = sql;
    cursor->len = len;
    cursor->pos = 0;
    if (options)
        cursor->options = *options;
    else
        memset(&cursor->options, 0, sizeof(cursor->options));
}

bool sqlnorm_next(SqlnormCursor *cursor, char *out, size_t out_cap, SqlnormStatement *stmt,
                  SqlTags *tags)
{
    (void)tags;
    if (cursor->pos >= cursor->len)
        return false;
    size_t n = cursor->len - cursor->pos;
    if (n > out_cap)
        n = out_cap;
    memcpy(out, cursor->sql + cursor->pos, n);
    memset(stmt, 0, sizeof(*stmt));
    stmt->normalized = out;
    stmt->normalized_len = n;
    stmt->fingerprint = XXH3_64bits_withSeed(out, n, SQLNORM_SEED);
    stmt->src_offset = cursor->pos;
    stmt->src_len = cursor->len - cursor->pos;
    cursor->pos = cursor->len;
    return true;
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
