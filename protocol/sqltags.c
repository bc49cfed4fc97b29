/* protocol/sqltags — request tags carried in SQL comments (docs/normalization-spec.md, R39).
 *
 * Owns: deciding whether a block comment's content is a tag list, decoding its pairs into a
 * caller-owned SqlTags, and reading a `traceparent` value. A comment is all-or-nothing: either
 * every comma-separated segment is a pair, or the comment is an ordinary one and nothing is
 * appended (so prose such as `note, really` never leaks half a tag). */
#include "protocol/sqltags.h"

#include <string.h>

#include "protocol/bytescan.h"
#include "protocol/pctdecode.h"

/* Pair separators: `=` marks sqlcommenter style (values URL-decoded), `:` marks Rails
 * marginalia / QueryLogs style (values taken as written). */
enum { SEP_EQUALS = '=', SEP_COLON = ':' };

/* Byte classes, as tables: a third of real statements carry a ~250-byte tag comment, and
 * every byte of it is classified. */
enum { TC_SPACE = 1, TC_KEY = 2, TC_PERCENT = 4 };
static const unsigned char tags_class[256] = {
    [' '] = TC_SPACE,
    ['\t'] = TC_SPACE,
    ['\n'] = TC_SPACE,
    ['\r'] = TC_SPACE,
    ['\f'] = TC_SPACE,
    ['\v'] = TC_SPACE,
    /* Key bytes: what sqlcommenter and Rails emit, plus `%` so URL-encoded keys decode. */
    ['a' ... 'z'] = TC_KEY,
    ['A' ... 'Z'] = TC_KEY,
    ['0' ... '9'] = TC_KEY,
    ['_'] = TC_KEY,
    ['.'] = TC_KEY,
    ['-'] = TC_KEY,
    ['~'] = TC_KEY,
    ['%'] = TC_KEY | TC_PERCENT,
};

static inline bool tags_is_space(unsigned char c)
{
    return tags_class[c] & TC_SPACE;
}

static inline bool tags_is_key_byte(unsigned char c)
{
    return tags_class[c] & TC_KEY;
}

/* Copies src into dst, optionally unescaping `\'` and `\\` and URL-decoding (with `%%` read as `%`
 * first, as Python sqlcommenter doubles `%` for drivers that interpolate). dst has room for
 * len bytes: decoding only shrinks. Returns the decoded length. The two steps run one after
 * the other: an unescape yields only `'` or `\`, never a byte an escape is made of, so this
 * reads a value exactly as one pass over both would. */
static size_t tags_decode(char *dst, const char *src, size_t len, bool unescape_quote,
                          bool url_decode)
{
    const unsigned char *u = (const unsigned char *)src;
    bool percent = url_decode && bytescan_find(u, 0, len, '%') < len;
    if (!unescape_quote || bytescan_find(u, 0, len, '\\') == len) {
        if (!percent) {
            memcpy(dst, src, len); /* the usual case: nothing to decode */
            return len;
        }
        return pct_decode(dst, len, src, len, PCT_DOUBLED);
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\\' && i + 1 < len && (src[i + 1] == '\'' || src[i + 1] == '\\'))
            i++;
        dst[o++] = src[i];
    }
    return percent ? pct_decode(dst, o, dst, o, PCT_DOUBLED) : o;
}

/* `work` (may be NULL) counts the key bytes compared. */
static const SqlTag *tags_find_mem(const SqlTags *tags, const char *key, size_t key_len,
                                   size_t *work)
{
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        if (t->key_len != key_len)
            continue;
        if (work != NULL)
            *work += key_len;
        if (memcmp(t->key, key, key_len) == 0)
            return t;
    }
    return NULL;
}

/* One pair as the parser found it: raw bytes, and what decoding they need. */
typedef struct TagPair {
    const char *key;
    size_t key_len;
    bool key_percent; /* the key holds a `%` */
    const char *value;
    size_t value_len;
    bool value_plain; /* decoding would not change the value: copied as it is */
    bool quoted;
    char sep;
    const char *end; /* the end of the comment body: bytes up to it may be read */
} TagPair;

/* Copies len bytes of a pair (at most up to `end`) into the storage at dst. */
static void tags_copy(SqlTags *tags, char *dst, const char *src, size_t len, const char *end)
{
    size_t dst_room = SQLTAGS_STORAGE - (size_t)(dst - tags->storage);
    bytescan_copy(dst, dst_room, (const unsigned char *)src, (size_t)(end - src), len);
}

/* Decodes one pair into the storage and appends it unless its key is already present (the
 * first occurrence wins). A pair that does not fit is dropped and `overflow` set. A key that
 * decoding leaves as it is (no `%`, or marginalia style) is looked up before it is copied:
 * a record often repeats its tag comment, and the repeat then costs no copy at all. */
static void tags_append(SqlTags *tags, const TagPair *pr)
{
    bool url = pr->sep == SEP_EQUALS;
    size_t room = SQLTAGS_STORAGE - tags->storage_used;
    if (tags->count >= SQLTAGS_MAX || pr->key_len + pr->value_len > room) {
        tags->overflow = true;
        return;
    }
    char *k = tags->storage + tags->storage_used;
    size_t kl;
    tags->work += 3 * pr->key_len; /* two look-ups and a copy */
    if (url && pr->key_percent) {
        kl = tags_decode(k, pr->key, pr->key_len, false, true);
        if (kl == 0 || tags_find_mem(tags, k, kl, &tags->work) != NULL)
            return; /* storage not committed: the bytes are simply reused */
    } else {
        kl = pr->key_len;
        if (tags_find_mem(tags, pr->key, kl, &tags->work) != NULL)
            return;
        tags_copy(tags, k, pr->key, kl, pr->end);
    }
    char *v = k + kl;
    size_t vl = pr->value_len;
    if (pr->value_plain)
        tags_copy(tags, v, pr->value, vl, pr->end);
    else
        vl = tags_decode(v, pr->value, pr->value_len, pr->quoted, url);
    tags->work += 3 * pr->value_len;
    SqlTag *t = &tags->tags[tags->count++];
    t->key = k;
    t->key_len = kl;
    t->value = v;
    t->value_len = vl;
    tags->storage_used += kl + vl;
}

void sqltags_init(SqlTags *tags)
{
    tags->count = 0;
    tags->storage_used = 0;
    tags->overflow = false;
    tags->work = 0;
}

bool sqltags_parse_comment(const char *body, size_t len, SqlTags *tags)
{
    const char *p = body, *end = body + len;
    tags->work += len; /* the scan: every byte once (the trims and the pair loop share them) */
    while (p < end && tags_is_space((unsigned char)*p))
        p++;
    while (end > p && tags_is_space((unsigned char)end[-1]))
        end--;
    if (p == end)
        return false;

    /* Parse and append in one go, rolling back on the first segment that is not a pair. */
    size_t saved_count = tags->count, saved_used = tags->storage_used;
    bool saved_overflow = tags->overflow;
    for (;;) {
        while (p < end && tags_is_space((unsigned char)*p))
            p++;
        TagPair pr = {.key = p, .end = end};
        unsigned key_class = 0;
        while (p < end && tags_is_key_byte((unsigned char)*p))
            key_class |= tags_class[(unsigned char)*p++];
        pr.key_len = (size_t)(p - pr.key);
        pr.key_percent = (key_class & TC_PERCENT) != 0;
        while (p < end && tags_is_space((unsigned char)*p))
            p++;
        if (pr.key_len == 0 || p == end || (*p != SEP_EQUALS && *p != SEP_COLON))
            goto not_tags;
        pr.sep = *p++;
        bool url = pr.sep == SEP_EQUALS;
        while (p < end && tags_is_space((unsigned char)*p))
            p++;

        pr.quoted = p < end && *p == '\'';
        if (pr.quoted) {
            pr.value = ++p;
            /* The closing quote; the byte loop only when a backslash may escape one. */
            const unsigned char *u = (const unsigned char *)p;
            size_t n = (size_t)(end - p);
            size_t q = bytescan_find(u, 0, n, '\'');
            size_t stop = url ? bytescan_find2(u, 0, q, '\\', '%') : bytescan_find(u, 0, q, '\\');
            pr.value_plain = stop == q;
            if (stop == q || bytescan_find(u, stop, q, '\\') == q)
                p += q; /* at the quote, or at the end */
            else
                while (p < end && *p != '\'')
                    p += *p == '\\' && p + 1 < end ? 2 : 1;
            tags->work += 2 * (size_t)(p - pr.value); /* the backslash look-up, the escape loop */
            if (p == end)
                goto not_tags;
            pr.value_len = (size_t)(p - pr.value);
            p++;
            while (p < end && tags_is_space((unsigned char)*p))
                p++;
            if (p < end && *p != ',')
                goto not_tags;
        } else {
            pr.value = p;
            while (p < end && *p != ',')
                p++;
            const char *vend = p;
            while (vend > pr.value && tags_is_space((unsigned char)vend[-1]))
                vend--;
            pr.value_len = (size_t)(vend - pr.value);
            pr.value_plain = !url || bytescan_find((const unsigned char *)pr.value, 0, pr.value_len,
                                                   '%') == pr.value_len;
            tags->work += (size_t)(p - vend); /* trailing spaces, looked at twice */
        }
        tags_append(tags, &pr);
        if (p == end)
            return true;
        p++; /* the comma: another pair must follow */
    }

not_tags:
    tags->count = saved_count;
    tags->storage_used = saved_used;
    tags->overflow = saved_overflow;
    return false;
}

const SqlTag *sqltags_find(const SqlTags *tags, const char *key)
{
    return tags_find_mem(tags, key, strlen(key), NULL);
}

static bool tags_all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pct_hex_value((unsigned char)s[i]) < 0)
            return false;
    return true;
}

static bool tags_all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool sqltags_traceparent_trace_id(const SqlTags *tags, const char **trace_id, const char **span_id)
{
    /* W3C trace context: 2 hex version, 32 hex trace id, 16 hex parent id, 2 hex flags. */
    const SqlTag *t = sqltags_find(tags, "traceparent");
    if (t == NULL || t->value_len < 55)
        return false;
    const char *v = t->value;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-' || !tags_all_hex(v, 2) ||
        !tags_all_hex(v + 3, 32) || !tags_all_hex(v + 36, 16) || !tags_all_hex(v + 53, 2))
        return false;
    if (t->value_len > 55 && v[55] != '-') /* later versions may append fields after a '-' */
        return false;
    if (tags_all_zero(v + 3, 32) || tags_all_zero(v + 36, 16))
        return false; /* all-zero ids are invalid per the W3C spec */
    if (trace_id)
        *trace_id = v + 3;
    if (span_id)
        *span_id = v + 36;
    return true;
}
