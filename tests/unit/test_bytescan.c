/* tests/unit/test_bytescan.c — the normalizer's block scans (protocol/bytescan.h) against byte
 * loops written out here: every byte value at every offset of buffers around the 16-byte block
 * size, inputs that are exactly as long as their bounds (heap-allocated, so ASan sees a read or
 * write one byte out), and the copies' scratch area staying inside the write bound. */
#include "protocol/bytescan.h"
#include "tests/unit/testlib.h"

#include <stdlib.h>

/* R9 as the spec words it, independent of the block code. */
static int reference_is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}

static unsigned char reference_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

TEST(byte_classes_match_the_spec)
{
    for (unsigned c = 0; c < 256; c++) {
        CHECK_EQ_INT(bytescan_is_word((unsigned char)c) != 0, reference_is_word((unsigned char)c));
        CHECK_EQ_INT(bytescan_lower((unsigned char)c), reference_lower((unsigned char)c));
    }
}

/* A word of `len` bytes of `fill`, then `stop`, in a buffer exactly len + 1 long (+ tail). */
TEST(word_end_stops_at_every_byte_at_every_offset)
{
    for (size_t len = 0; len <= 40; len++)
        for (unsigned stop = 0; stop < 256; stop++) {
            size_t total = len + 1;
            unsigned char *buf = malloc(total);
            memset(buf, len % 2 ? 'Q' : 0xC3, len);
            buf[len] = (unsigned char)stop;
            size_t want = reference_is_word((unsigned char)stop) ? total : len;
            size_t got = bytescan_word_end(buf, 0, total);
            if (got != want) {
                CHECK_EQ_INT(got, want);
                printf("  len %zu stop 0x%02x\n", len, stop);
                free(buf);
                return;
            }
            CHECK_EQ_INT(bytescan_word_end(buf, len, len), len); /* empty range */
            free(buf);
        }
}

TEST(find_returns_the_first_match_or_the_end)
{
    for (size_t len = 1; len <= 40; len++)
        for (size_t at = 0; at <= len; at++) {
            unsigned char *buf = malloc(len);
            memset(buf, 'x', len);
            if (at < len)
                buf[at] = '"';
            if (at + 3 < len)
                buf[at + 3] = '"'; /* a later match must not win */
            for (size_t from = 0; from <= len; from++) {
                size_t want = from <= at ? at : len;
                if (from > at && at + 3 < len && from <= at + 3)
                    want = at + 3;
                size_t got = bytescan_find(buf, from, len, '"');
                if (got != want) {
                    CHECK_EQ_INT(got, want);
                    printf("  len %zu at %zu from %zu\n", len, at, from);
                    free(buf);
                    return;
                }
            }
            free(buf);
        }
}

/* Either needle, whichever comes first, at every offset of buffers exactly as long as their
 * bound; bytes next to the needles in value must not match. */
TEST(find2_returns_the_first_of_either_byte)
{
    for (size_t len = 1; len <= 40; len++)
        for (size_t at = 0; at <= len; at++)
            for (int which = 0; which < 2; which++) {
                unsigned char *buf = malloc(len);
                for (size_t i = 0; i < len; i++)
                    buf[i] = (unsigned char)(i % 2 ? '\n' + 1 : '\r' - 1);
                if (at < len)
                    buf[at] = which ? '\r' : '\n';
                if (at + 2 < len)
                    buf[at + 2] = which ? '\n' : '\r'; /* the other one, later */
                for (size_t from = 0; from <= len; from++) {
                    size_t want = from <= at ? at : len;
                    if (from > at && at + 2 < len && from <= at + 2)
                        want = at + 2;
                    size_t got = bytescan_find2(buf, from, len, '\n', '\r');
                    if (got != want) {
                        CHECK_EQ_INT(got, want);
                        printf("  len %zu at %zu which %d from %zu\n", len, at, which, from);
                        free(buf);
                        return;
                    }
                }
                free(buf);
            }
}

/* Copies of every length with exact read and write bounds (room == len up to len + 20), every
 * byte value in the source; the bytes past `len` within the write bound may be scratch, the
 * first `len` must be the (lowercased) source. */
TEST(copies_respect_both_bounds)
{
    for (size_t len = 0; len <= 40; len++)
        for (size_t extra = 0; extra <= 20; extra += 5)
            for (int lower = 0; lower < 2; lower++) {
                unsigned char *src = malloc(len + extra + 1);
                char *dst = malloc(len + extra + 1);
                for (size_t i = 0; i < len + extra + 1; i++)
                    src[i] = (unsigned char)(i * 37 + len * 11 + 0x3F);
                if (lower)
                    bytescan_copy_lower(dst, len + extra + 1, src, len + extra + 1, len);
                else
                    bytescan_copy(dst, len + extra + 1, src, len + extra + 1, len);
                for (size_t i = 0; i < len; i++) {
                    unsigned char want = lower ? reference_lower(src[i]) : src[i];
                    if ((unsigned char)dst[i] != want) {
                        CHECK_EQ_INT((unsigned char)dst[i], want);
                        printf("  len %zu extra %zu lower %d at %zu\n", len, extra, lower, i);
                        i = len;
                    }
                }
                free(src);
                free(dst);
            }
}

#ifdef BYTESCAN_LOWER16
/* The 16 lowercased bytes, stored and handed back as integers, little-endian. */
TEST(lower16_stores_and_returns_the_block)
{
    unsigned char *src = malloc(16);
    char *dst = malloc(16);
    for (unsigned base = 0; base < 256; base += 16) {
        for (unsigned i = 0; i < 16; i++)
            src[i] = (unsigned char)(base + i);
        unsigned long long lo, hi;
        bytescan_lower16(dst, src, &lo, &hi);
        for (unsigned i = 0; i < 16; i++) {
            unsigned char want = reference_lower(src[i]);
            CHECK_EQ_INT((unsigned char)dst[i], want);
            unsigned long long half = i < 8 ? lo : hi;
            CHECK_EQ_INT((unsigned char)(half >> (8 * (i % 8))), want);
        }
    }
    free(src);
    free(dst);
}
#endif

int main(void)
{
    RUN(byte_classes_match_the_spec);
    RUN(word_end_stops_at_every_byte_at_every_offset);
    RUN(find_returns_the_first_match_or_the_end);
    RUN(find2_returns_the_first_of_either_byte);
    RUN(copies_respect_both_bounds);
#ifdef BYTESCAN_LOWER16
    RUN(lower16_stores_and_returns_the_block);
#endif
    return TESTLIB_FINISH();
}
