/* tests/fuzz/fuzz_sqltags.c — libFuzzer target for protocol/sqltags, the tag comment parser.
 *
 * The input is one comment body. Invariants (a violation aborts, so the fuzzer keeps it):
 *   - no crash, no read past the body (an exact-size buffer under the sanitizers);
 *   - the SqlTags bounds: count, storage, every key and value inside the storage, keys
 *     non-empty and distinct (the first occurrence wins);
 *   - all or nothing: a body that is not a tag list leaves the list exactly as it was;
 *   - parsing the same body again into the same list adds nothing (every key is held, or
 *     the list is as full as before) and answers the same;
 *   - the traceparent reader points into the storage at hex digits;
 *   - slow inputs: the work counter stays within SQLTAGS_WORK_MAX of the body's length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/sqltags.h"

#define FUZZ_REQUIRE(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sqltags: invariant failed: %s (%s:%d)\n", what, __FILE__,        \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_check_tags(const SqlTags *tags)
{
    FUZZ_REQUIRE(tags->count <= SQLTAGS_MAX, "tag count bound");
    FUZZ_REQUIRE(tags->storage_used <= SQLTAGS_STORAGE, "tag storage bound");
    const char *lo = tags->storage, *hi = tags->storage + tags->storage_used;
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        FUZZ_REQUIRE(t->key >= lo && t->key + t->key_len <= hi, "tag key inside storage");
        FUZZ_REQUIRE(t->value >= lo && t->value + t->value_len <= hi, "tag value inside storage");
        FUZZ_REQUIRE(t->key_len > 0, "tag key not empty");
        for (size_t j = 0; j < i; j++)
            FUZZ_REQUIRE(tags->tags[j].key_len != t->key_len ||
                             memcmp(tags->tags[j].key, t->key, t->key_len) != 0,
                         "keys distinct");
    }
}

static bool fuzz_parse(const char *body, size_t size, SqlTags *tags)
{
    size_t count = tags->count, used = tags->storage_used, work = tags->work;
    bool overflow = tags->overflow;
    bool ok = sqltags_parse_comment(body, size, tags);
    FUZZ_REQUIRE(tags->work - work <= SQLTAGS_WORK_MAX(size), "slow input: work per byte");
    if (!ok)
        FUZZ_REQUIRE(tags->count == count && tags->storage_used == used &&
                         tags->overflow == overflow,
                     "an ordinary comment leaves the list as it was");
    else
        FUZZ_REQUIRE(tags->count >= count && tags->storage_used >= used, "tags only appended");
    fuzz_check_tags(tags);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    SqlTags tags;
    sqltags_init(&tags);
    bool ok = fuzz_parse(body, size, &tags);
    size_t count = tags.count;
    FUZZ_REQUIRE(fuzz_parse(body, size, &tags) == ok, "the same answer twice");
    FUZZ_REQUIRE(tags.count == count, "a body parsed again adds no key");

    const char *trace = NULL, *span = NULL;
    if (sqltags_traceparent_trace_id(&tags, &trace, &span)) {
        FUZZ_REQUIRE(trace >= tags.storage && trace + 32 <= tags.storage + tags.storage_used,
                     "trace id inside storage");
        FUZZ_REQUIRE(span >= tags.storage && span + 16 <= tags.storage + tags.storage_used,
                     "span id inside storage");
        for (int i = 0; i < 32; i++)
            FUZZ_REQUIRE(strchr("0123456789abcdefABCDEF", trace[i]) != NULL && trace[i] != 0,
                         "trace id is hex");
    }
    for (size_t i = 0; i < tags.count; i++) /* every held key is found, as itself */
        if (memchr(tags.tags[i].key, 0, tags.tags[i].key_len) == NULL) {
            char key[SQLTAGS_STORAGE + 1];
            memcpy(key, tags.tags[i].key, tags.tags[i].key_len);
            key[tags.tags[i].key_len] = '\0';
            FUZZ_REQUIRE(sqltags_find(&tags, key) == &tags.tags[i], "held key found");
        }
    return 0;
}
