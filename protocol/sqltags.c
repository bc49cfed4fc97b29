/* protocol/sqltags — tag comments -> key/value list (NORMALIZATION.md R39). Stub: being written. */
#include "protocol/sqltags.h"

#include <string.h>

void sqltags_init(SqlTags *tags)
{
    memset(tags, 0, sizeof(*tags));
}

bool sqltags_parse_comment(const char *body, size_t len, SqlTags *tags)
{
    (void)body;
    (void)len;
    (void)tags;
    return false;
}

const SqlTag *sqltags_find(const SqlTags *tags, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < tags->count; i++)
        if (tags->tags[i].key_len == klen && memcmp(tags->tags[i].key, key, klen) == 0)
            return &tags->tags[i];
    return NULL;
}
