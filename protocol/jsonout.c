/* protocol/jsonout — see jsonout.h. */
#include "protocol/jsonout.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

size_t utf8_char_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    uint32_t cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Escapes one byte class at u[i] that is not plain (see json_plain), writing at out + n.
 * Advances *i; returns the new n. The caller guarantees 6 bytes of room. */
static size_t json_escape_special(char *out, size_t n, const unsigned char *u, size_t *i,
                                  size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = u[*i];
    if (c == '"' || c == '\\') {
        out[n++] = '\\';
        out[n++] = (char)c;
        (*i)++;
        return n;
    }
    if (c == '\n' || c == '\t') {
        out[n++] = '\\';
        out[n++] = c == '\n' ? 'n' : 't';
        (*i)++;
        return n;
    }
    size_t seq = c < 0x80 ? 0 : utf8_char_len(u + *i, len - *i);
    if (seq == 0) {
        /* A control byte, or not UTF-8: keep the byte's value visible as its Latin-1 code
         * point. */
        memcpy(out + n, "\\u00", 4);
        out[n + 4] = hex[c >> 4];
        out[n + 5] = hex[c & 15];
        (*i)++;
        return n + 6;
    }
    memcpy(out + n, u + *i, seq);
    *i += seq;
    return n + seq;
}

/* Bytes copied as they are: printable ASCII except `"` and `\`. */
static bool json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

#define JSON_ONES 0x0101010101010101ULL
#define JSON_HIGHS 0x8080808080808080ULL

/* Whether any of the 8 bytes in x is not plain. Each test is exact as a yes/no answer:
 * a byte < 0x20; a byte >= 0x80, or 0x7F (x + 1 sets its high bit; a carry out of 0xFF
 * only happens when a high bit is already set); a `"` or a `\` (a zero byte after XOR). */
static bool json_word_special(uint64_t x)
{
    uint64_t lt20 = (x - JSON_ONES * 0x20) & ~x;
    uint64_t hi = x | (x + JSON_ONES);
    uint64_t q = x ^ (JSON_ONES * '"'), b = x ^ (JSON_ONES * '\\');
    uint64_t quote = (q - JSON_ONES) & ~q, bslash = (b - JSON_ONES) & ~b;
    return ((lt20 | hi | quote | bslash) & JSON_HIGHS) != 0;
}

/* The path for callers that may not have the worst case: a 7-byte margin is checked before
 * every character, so a text that does not fit returns 0 (the contract in jsonout.h). */
static size_t json_escape_checked(char *out, size_t cap, const unsigned char *u, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (cap - n < 7)
            return 0;
        if (json_plain(u[i]))
            out[n++] = (char)u[i++];
        else
            n = json_escape_special(out, n, u, &i, len);
    }
    out[n] = 0;
    return n;
}

size_t json_escape(char *out, size_t cap, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (cap < JSON_ESCAPED_MAX(len))
        return json_escape_checked(out, cap, u, len);
    /* The worst case fits: no per-character check. Runs of 8 plain bytes (identifiers,
     * keywords) are copied a word at a time; output never passes 6 bytes per input byte. */
    size_t n = 0, i = 0;
    for (;;) {
        while (len - i >= 8) {
            uint64_t x;
            memcpy(&x, u + i, 8);
            if (json_word_special(x))
                break;
            memcpy(out + n, &x, 8);
            n += 8;
            i += 8;
        }
        while (i < len && json_plain(u[i]))
            out[n++] = (char)u[i++];
        if (i >= len)
            break;
        n = json_escape_special(out, n, u, &i, len);
    }
    out[n] = 0;
    return n;
}
