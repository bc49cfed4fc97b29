/* protocol/jsonout — see jsonout.h. */
#include "protocol/jsonout.h"

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

size_t json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (cap - n < 7)
            return 0;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
            i++;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
            i++;
        } else if (c == '\t') {
            out[n++] = '\\';
            out[n++] = 't';
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[c >> 4];
            out[n + 5] = hex[c & 15];
            n += 6;
            i++;
        } else {
            size_t seq = utf8_char_len(u + i, len - i);
            if (seq == 0) {
                /* Not UTF-8: keep the byte's value visible as its Latin-1 code point. */
                memcpy(out + n, "\\u00", 4);
                out[n + 4] = hex[c >> 4];
                out[n + 5] = hex[c & 15];
                n += 6;
                i++;
            } else if (seq == 2 && c == 0xC2 && u[i + 1] < 0xA0) {
                /* U+0080-U+009F, C1 controls: the same string to a JSON reader, and never a
                 * raw CSI for a terminal that shows the file. */
                memcpy(out + n, "\\u00", 4);
                out[n + 4] = hex[u[i + 1] >> 4];
                out[n + 5] = hex[u[i + 1] & 15];
                n += 6;
                i += 2;
            } else {
                memcpy(out + n, u + i, seq);
                n += seq;
                i += seq;
            }
        }
    }
    out[n] = 0;
    return n;
}
