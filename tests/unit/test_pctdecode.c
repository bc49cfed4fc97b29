/* tests/unit/test_pctdecode.c — the one percent decoder (protocol/pctdecode): escapes of either
 * case, escapes kept as written when they are not two hex digits, `%%` with PCT_DOUBLED, the
 * capacity (exactly full, one short), decoding in place, and every short string over the bytes
 * that matter checked against an independent reading. */
#include "protocol/pctdecode.h"
#include "tests/unit/testlib.h"

#include <stdlib.h>

static char g_out[256];

static size_t decode(const char *s, unsigned flags)
{
    return pct_decode(g_out, sizeof g_out, s, strlen(s), flags);
}

#define CHECK_DECODES(in_, flags_, want_)                                                          \
    do {                                                                                           \
        size_t n_ = decode((in_), (flags_));                                                       \
        CHECK(n_ != PCT_TOO_LONG);                                                                 \
        if (n_ != PCT_TOO_LONG)                                                                    \
            CHECK_EQ_MEM(g_out, n_, (want_));                                                      \
    } while (0)

TEST(hex_digits_of_either_case)
{
    CHECK_DECODES("a%2Fb%2fc", 0, "a/b/c");
    CHECK_DECODES("%41%62%7A", 0, "Abz");
    CHECK_DECODES("", 0, "");
    CHECK_DECODES("plain", 0, "plain");
    CHECK_EQ_INT(pct_hex_value('0'), 0);
    CHECK_EQ_INT(pct_hex_value('f'), 15);
    CHECK_EQ_INT(pct_hex_value('F'), 15);
    CHECK_EQ_INT(pct_hex_value('g'), -1);
    CHECK_EQ_INT(pct_hex_value('/'), -1);
    CHECK_EQ_INT(pct_hex_value(':'), -1);
}

TEST(malformed_escapes_kept_as_written)
{
    CHECK_DECODES("50%", 0, "50%");
    CHECK_DECODES("%4", 0, "%4");
    CHECK_DECODES("%zz", 0, "%zz");
    CHECK_DECODES("%4g", 0, "%4g");
    CHECK_DECODES("%%41", 0, "%A"); /* without PCT_DOUBLED the second % starts the escape */
}

TEST(nul_and_high_bytes_decode)
{
    size_t n = decode("a%00b%FF", 0);
    CHECK_EQ_INT(n, 4);
    CHECK(memcmp(g_out, "a\0b\xff", 4) == 0);
}

TEST(doubled_percent)
{
    CHECK_DECODES("100%%", PCT_DOUBLED, "100%");
    CHECK_DECODES("a%%2Fb", PCT_DOUBLED, "a/b");
    CHECK_DECODES("%%%%", PCT_DOUBLED, "%%");
    CHECK_DECODES("%%", 0, "%%");
}

TEST(capacity)
{
    char out[3];
    CHECK_EQ_INT(pct_decode(out, 3, "a%41c", 5, 0), 3);
    CHECK(memcmp(out, "aAc", 3) == 0);
    CHECK_EQ_INT(pct_decode(out, 2, "a%41c", 5, 0), PCT_TOO_LONG);
    CHECK_EQ_INT(pct_decode(out, 0, "", 0, 0), 0);
    CHECK_EQ_INT(pct_decode(out, 0, "x", 1, 0), PCT_TOO_LONG);
    char str[4];
    CHECK(pct_decode_str(str, 4, "a%41c", 5, 0));
    CHECK_EQ_STR(str, "aAc");
    CHECK(!pct_decode_str(str, 3, "a%41c", 5, 0)); /* the NUL does not fit */
    CHECK(!pct_decode_str(str, 0, "", 0, 0));
}

TEST(in_place)
{
    char buf[] = "%2Fusr%2Flocal%%20x";
    size_t n = pct_decode(buf, sizeof buf, buf, strlen(buf), PCT_DOUBLED);
    CHECK_EQ_MEM(buf, n, "/usr/local x");
}

/* An independent reading: at each '%', look for "%%" (doubled) then two hex digits with
 * strtol, else take the byte as it is. */
static size_t reference(const char *s, size_t len, unsigned flags, char *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        if (s[i] == '%') {
            size_t j = (flags & PCT_DOUBLED) && i + 1 < len && s[i + 1] == '%' ? i + 1 : i;
            if (j + 2 < len && strchr("0123456789abcdefABCDEF", s[j + 1]) &&
                strchr("0123456789abcdefABCDEF", s[j + 2])) {
                char hex[3] = {s[j + 1], s[j + 2], 0};
                out[o++] = (char)strtol(hex, NULL, 16);
                i = j + 3;
                continue;
            }
            out[o++] = '%';
            i = j + 1;
            continue;
        }
        out[o++] = s[i++];
    }
    return o;
}

TEST(every_short_string_matches_the_reference)
{
    static const char alphabet[] = "%4aG/";
    const size_t k = sizeof alphabet - 1;
    for (unsigned flags = 0; flags <= PCT_DOUBLED; flags++)
        for (size_t len = 0; len <= 6; len++) {
            size_t total = 1;
            for (size_t i = 0; i < len; i++)
                total *= k;
            for (size_t code = 0; code < total; code++) {
                char in[8], want[8], got[8];
                size_t c = code;
                for (size_t i = 0; i < len; i++, c /= k)
                    in[i] = alphabet[c % k];
                size_t wn = reference(in, len, flags, want);
                size_t gn = pct_decode(got, sizeof got, in, len, flags);
                if (gn != wn || memcmp(got, want, wn) != 0) {
                    CHECK_EQ_MEM(got, gn == PCT_TOO_LONG ? 0 : gn, "(reference)");
                    printf("  input \"%.*s\" flags %u\n", (int)len, in, flags);
                    return;
                }
            }
        }
}

int main(void)
{
    RUN(hex_digits_of_either_case);
    RUN(malformed_escapes_kept_as_written);
    RUN(nul_and_high_bytes_decode);
    RUN(doubled_percent);
    RUN(capacity);
    RUN(in_place);
    RUN(every_short_string_matches_the_reference);
    return TESTLIB_FINISH();
}
