/* protocol/pctdecode — see pctdecode.h. */
#include "protocol/pctdecode.h"

int pct_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t pct_decode(char *dst, size_t cap, const char *src, size_t len, unsigned flags)
{
    /* o <= i throughout (every byte written consumed at least one), so dst may be src. */
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if ((flags & PCT_DOUBLED) && i + 1 < len && src[i + 1] == '%')
                i++;
            if (i + 2 < len) {
                int hi = pct_hex_value((unsigned char)src[i + 1]);
                int lo = pct_hex_value((unsigned char)src[i + 2]);
                if (hi >= 0 && lo >= 0) {
                    c = (char)(hi * 16 + lo);
                    i += 2;
                }
            }
        }
        if (o == cap)
            return PCT_TOO_LONG;
        dst[o++] = c;
    }
    return o;
}

bool pct_decode_str(char *dst, size_t cap, const char *src, size_t len, unsigned flags)
{
    if (cap == 0)
        return false;
    size_t n = pct_decode(dst, cap - 1, src, len, flags);
    if (n == PCT_TOO_LONG)
        return false;
    dst[n] = 0;
    return true;
}
