/* protocol/pgstartup — see pgstartup.h. */
#include "protocol/pgstartup.h"

#include <string.h>

#define AUTH_SASL 10 /* AuthenticationSASL's authentication code */

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* True when value[0..len) is word[0..min_len..] ignoring ASCII case: the server's
 * pg_strncasecmp(value, word, max(len, min_len)) == 0 on a value of exactly len bytes. */
static bool prefix_of(const char *value, size_t len, const char *word, size_t min_len)
{
    size_t word_len = strlen(word);
    if (len < min_len || len > word_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (ascii_lower(value[i]) != word[i])
            return false;
    }
    return true;
}

bool pgstartup_parse_bool(const char *value, size_t len, bool *out)
{
    if (len == 0)
        return false;
    /* The first letter picks the word, so a prefix is never ambiguous except 'o'. */
    switch (ascii_lower(value[0])) {
    case 't':
        *out = true;
        return prefix_of(value, len, "true", 1);
    case 'f':
        *out = false;
        return prefix_of(value, len, "false", 1);
    case 'y':
        *out = true;
        return prefix_of(value, len, "yes", 1);
    case 'n':
        *out = false;
        return prefix_of(value, len, "no", 1);
    case 'o':
        if (prefix_of(value, len, "on", 2)) {
            *out = true;
            return true;
        }
        *out = false;
        return prefix_of(value, len, "off", 2);
    case '1':
    case '0':
        *out = value[0] == '1';
        return len == 1;
    default:
        return false;
    }
}

PgstartupReplication pgstartup_replication(const uint8_t *packet, size_t len, PgwStr *bad_value)
{
    PgstartupReplication result = PGSTARTUP_REPLICATION_OFF;
    size_t pos = 0;
    PgwStr key, value;
    while (pgw_startup_next_param(packet, len, &pos, &key, &value)) {
        if (!(key.len == 11 && memcmp(key.ptr, "replication", 11) == 0))
            continue;
        bool on;
        /* "database" is compared exactly (case matters), before the boolean spellings. */
        if (value.len == 8 && memcmp(value.ptr, "database", 8) == 0) {
            result = PGSTARTUP_REPLICATION_DATABASE;
        } else if (pgstartup_parse_bool(value.ptr, value.len, &on)) {
            result = on ? PGSTARTUP_REPLICATION_PHYSICAL : PGSTARTUP_REPLICATION_OFF;
        } else {
            /* The server stops at the first bad value with a FATAL error. */
            if (bad_value)
                *bad_value = value;
            return PGSTARTUP_REPLICATION_INVALID;
        }
    }
    return result;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

PgstartupSasl pgstartup_sasl_remove(const uint8_t *msg, size_t len, const char *mechanism,
                                    uint8_t *out, size_t *out_len)
{
    if (len < 9 || msg[0] != 'R' || be32(msg + 5) != AUTH_SASL)
        return PGSTARTUP_SASL_NOT_SASL;
    size_t mech_len = strlen(mechanism);
    /* Check the whole list before writing anything: out may be msg itself. */
    size_t pos = 9;
    for (;;) {
        const uint8_t *nul = pos < len ? memchr(msg + pos, 0, len - pos) : NULL;
        if (!nul)
            return PGSTARTUP_SASL_MALFORMED; /* no terminating empty name */
        size_t name_len = (size_t)(nul - (msg + pos));
        pos += name_len + 1;
        if (name_len == 0)
            break;
    }
    if (pos != len)
        return PGSTARTUP_SASL_MALFORMED; /* bytes after the list */

    /* Names only move towards the start, so memmove left to right is safe in place. */
    memmove(out, msg, 9);
    size_t n = 9;
    for (pos = 9; msg[pos] != 0;) {
        size_t name_len = strlen((const char *)msg + pos);
        if (!(name_len == mech_len && memcmp(msg + pos, mechanism, mech_len) == 0)) {
            memmove(out + n, msg + pos, name_len + 1);
            n += name_len + 1;
        }
        pos += name_len + 1;
    }
    out[n++] = 0;
    uint32_t field = (uint32_t)(n - 1); /* the length field counts itself, not the type */
    out[1] = (uint8_t)(field >> 24);
    out[2] = (uint8_t)(field >> 16);
    out[3] = (uint8_t)(field >> 8);
    out[4] = (uint8_t)field;
    *out_len = n;
    return PGSTARTUP_SASL_REWRITTEN;
}
