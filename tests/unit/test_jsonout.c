/* tests/unit/test_jsonout.c — protocol/jsonout: the JSON string escaper every JSON writer uses.
 *
 * json_escape copies plain runs a block at a time and stores whole blocks ahead of what it
 * has checked, so besides fixed cases it is compared with a byte-at-a-time reference on
 * random inputs made of the bytes that matter (quotes, backslashes, controls, DEL, valid and
 * broken UTF-8) at every offset. Inputs and outputs are heap buffers of the exact size, so
 * the sanitizer build catches any read past the input or write past `cap`. */
#include <stdint.h>
#include <stdlib.h>

#include "protocol/jsonout.h"
#include "tests/unit/testlib.h"

/* The contract of jsonout.h, one byte at a time. */
static size_t reference_escape(char *out, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t seq = c >= 0x80 ? utf8_char_len(u + i, len - i) : 0;
        if (c == '"' || c == '\\' || c == '\n' || c == '\t') {
            out[n++] = '\\';
            out[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && seq == 0)) {
            n += (size_t)sprintf(out + n, "\\u%04x", c);
            i++;
        } else if (seq == 2 && c == 0xC2 && u[i + 1] < 0xA0) { /* C1 controls */
            n += (size_t)sprintf(out + n, "\\u%04x", u[i + 1]);
            i += 2;
        } else {
            size_t k = c >= 0x80 ? seq : 1;
            memcpy(out + n, u + i, k);
            n += k;
            i += k;
        }
    }
    out[n] = 0;
    return n;
}

static int check_one(const char *s, size_t len, size_t cap)
{
    char *in = malloc(len ? len : 1), *out = malloc(cap ? cap : 1);
    char *want = malloc(JSON_ESCAPED_MAX(len));
    memcpy(in, s, len);
    size_t want_len = reference_escape(want, in, len);
    size_t got = json_escape(out, cap, in, len);
    int ok;
    if (cap >= JSON_ESCAPED_MAX(len))
        ok = got == want_len && memcmp(out, want, want_len + 1) == 0;
    else /* may fail (0) for lack of room, but never writes something else */
        ok = (got == 0 && want_len > 0) || (got == want_len && memcmp(out, want, got + 1) == 0);
    free(in);
    free(out);
    free(want);
    return ok;
}

static int check_str(const char *s, const char *want)
{
    size_t len = strlen(s);
    char *out = malloc(JSON_ESCAPED_MAX(len));
    size_t n = json_escape(out, JSON_ESCAPED_MAX(len), s, len);
    int ok = n == strlen(want) && strcmp(out, want) == 0;
    if (!ok)
        printf("  escape(\"%s\") = \"%s\", expected \"%s\"\n", s, out, want);
    free(out);
    return ok;
}

TEST(fixed_cases)
{
    CHECK(check_str("", ""));
    CHECK(
        check_str("select \"t\".\"id\" from \"t\"", "select \\\"t\\\".\\\"id\\\" from \\\"t\\\""));
    CHECK(check_str("a\\b\n\t\x01\x1f\x7f", "a\\\\b\\n\\t\\u0001\\u001f\\u007f"));
    CHECK(check_str("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    /* not UTF-8: lone continuation, truncated, overlong, surrogate, above U+10FFFF */
    CHECK(check_str("\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80",
                    "\\u0080|\\u00e2\\u0082|\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|"
                    "\\u00f4\\u0090\\u0080\\u0080"));
    /* C1 controls (U+0080-U+009F) are escaped: a terminal showing the file never sees a CSI;
     * U+00A0 is text */
    CHECK(check_str("a\xc2\x9b[2Jb\xc2\x80\xc2\xa0", "a\\u009b[2Jb\\u0080\xc2\xa0"));
    CHECK(check_str("0123456789abcdef\xc2\x9b"
                    "0123456789abcdef",
                    "0123456789abcdef\\u009b0123456789abcdef"));
    /* quotes at every offset of a long run (the block paths) */
    CHECK(check_str("0123456789abcdef0123456789abcde\"0123456789abcdef\"\"\"",
                    "0123456789abcdef0123456789abcde\\\"0123456789abcdef\\\"\\\"\\\""));
}

TEST(random_inputs_match_the_reference)
{
    static const char pieces[][5] = {"a",           "Z",
                                     " ",           "_",
                                     "\"",          "\\",
                                     "\n",          "\t",
                                     "\x01",        "\x1f",
                                     "\x7f",        "\x80",
                                     "\xff",        "\xc3\xa9",
                                     "\xc3",        "\xe2\x82\xac",
                                     "\xe2\x82",    "\xf0\x9f\x98\x80",
                                     "\xed\xa0\x80"};
    const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
    char s[300];
    uint32_t seed = 12345;
    int bad = 0;
    for (int it = 0; it < 200000 && bad < 5; it++) {
        size_t target = (seed = seed * 1103515245u + 12345u) >> 16 & (it & 1 ? 63 : 255), len = 0;
        while (len < target) {
            seed = seed * 1103515245u + 12345u;
            /* mostly plain letters, so blocks are a mix of plain runs and specials */
            const char *p = (seed >> 16) % 3 ? "x" : pieces[(seed >> 8) % npieces];
            size_t k = strlen(p);
            if (len + k > target)
                break;
            memcpy(s + len, p, k);
            len += k;
        }
        seed = seed * 1103515245u + 12345u;
        size_t cap = (seed >> 16) % 4 ? JSON_ESCAPED_MAX(len) + (seed >> 8) % 3
                                      : (seed >> 8) % (JSON_ESCAPED_MAX(len) + 1);
        if (!check_one(s, len, cap)) {
            printf("  mismatch: case %d, len %zu, cap %zu\n", it, len, cap);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(fixed_cases);
    RUN(random_inputs_match_the_reference);
    printf("%d passed, %d failed\n", testlib_cases_passed, testlib_cases_failed);
    return testlib_cases_failed ? 1 : 0;
}
