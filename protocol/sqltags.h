/* protocol/sqltags — request tags carried in SQL comments (docs/normalization-spec.md, R39).
 *
 * Owns: recognising a block comment's content as a tag comment (sqlcommenter
 * `key='value'` with URL-decoding and `\'` unescaping, `%%` accepted; Rails marginalia /
 * QueryLogs `key:value`; unquoted `key=value`) and collecting the pairs in order, first
 * occurrence of a key winning. Pure: no allocation, caller-owned storage, never fails. */
#ifndef PGTALLY_PROTOCOL_SQLTAGS_H
#define PGTALLY_PROTOCOL_SQLTAGS_H

#include <stdbool.h>
#include <stddef.h>

#define SQLTAGS_MAX 32
#define SQLTAGS_STORAGE 4096

typedef struct SqlTag {
    const char *key; /* points into SqlTags.storage; not NUL-terminated */
    size_t key_len;
    const char *value; /* decoded value, in SqlTags.storage */
    size_t value_len;
} SqlTag;

/* A bounded tag list. Pairs beyond SQLTAGS_MAX or beyond the storage are dropped and
 * `overflow` is set; earlier pairs are never disturbed. */
typedef struct SqlTags {
    SqlTag tags[SQLTAGS_MAX];
    size_t count;
    char storage[SQLTAGS_STORAGE];
    size_t storage_used;
    bool overflow;
    size_t work; /* bytes examined by sqltags_parse_comment on this list since sqltags_init:
                    each body byte once, plus the bytes each pair decodes and compares
                    against the keys already held. A deterministic cost measure (no clock):
                    at most SQLTAGS_WORK_MAX(len) per comment, so linear in the input. */
} SqlTags;

/* Upper bound of the work one sqltags_parse_comment call adds for a body of `len` bytes, per
 * byte: the scan (1), a quoted value's escape look-ups (2), decoding into storage (3), and a
 * key compared with at most SQLTAGS_MAX - 1 held keys of its length. */
#define SQLTAGS_WORK_MAX(len) ((size_t)(len) * (SQLTAGS_MAX + 5) + 64)

void sqltags_init(SqlTags *tags);

/* Parses the content of one block comment (between the delimiters). Returns true when the
 * whole trimmed content is a tag list, appending its pairs to `tags`; false (tags untouched)
 * for an ordinary comment.
 * Accepted pairs, separated by commas (spaces allowed around them):
 *   key='value'  sqlcommenter: `\'` and `\\` unescaped, then `%%` read as `%`, then URL-decoded
 *   key=value    the same decoding, value runs to the next comma
 *   key:value    marginalia / QueryLogs: value taken as written (quotes optional)
 * Keys are [A-Za-z0-9_.~%-]+ (URL-decoded in the `=` forms). */
bool sqltags_parse_comment(const char *body, size_t len, SqlTags *tags);

/* Looks a key up (exact, case-sensitive). Returns NULL when absent. */
const SqlTag *sqltags_find(const SqlTags *tags, const char *key);

/* Reads the `traceparent` tag (W3C: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`).
 * Returns false when it is absent or malformed; otherwise points *trace_id at the 32 hex
 * digits of the trace id and *span_id at the 16 of the span id (either may be NULL). The
 * pointers are into `tags` storage and not NUL-terminated. */
bool sqltags_traceparent_trace_id(const SqlTags *tags, const char **trace_id, const char **span_id);

#endif
