/* bytescan — block-at-a-time byte scans for the normalizer's hottest loops.
 *
 * Owns: finding a byte (or either of two), finding the end of a word (R9: letters, digits,
 * `_`, `$`, bytes >= 0x80), and copying a short run with or without ASCII lowercasing (one
 * 16-byte block also handed back in registers, for the keyword lookup). On x86-64 (SSE2 is
 * part of the base ISA) each works on 16 bytes at a time; elsewhere they are byte loops
 * with the same results.
 *
 * Why not memchr and memcpy: the runs are short (a keyword, a quoted column name, 5 to 20
 * bytes), so the call and its set-up cost more than the scan. Every function is told how
 * many bytes it may read (and write) past its start; a block is loaded or stored only where
 * all 16 bytes lie inside those bounds, so nothing is touched outside the caller's buffers.
 * Bytes stored past `len` (within the write bound) are scratch: the caller owns them and
 * overwrites them later. Pure, no state. */
#ifndef PGTALLY_BYTESCAN_H
#define PGTALLY_BYTESCAN_H

#include <stddef.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define BYTESCAN_BLOCK 16
#endif

/* R9 (ASCII only): 'A'..'Z' become 'a'..'z', every other byte is kept. */
static inline unsigned char bytescan_lower(unsigned char c)
{
    return (unsigned char)(c - 'A') < 26 ? (unsigned char)(c + 32) : c;
}

/* R9: can byte c continue a word? */
static inline int bytescan_is_word(unsigned char c)
{
    return (unsigned char)((c | 0x20) - 'a') < 26 || (unsigned char)(c - '0') < 10 || c == '_' ||
           c == '$' || c >= 0x80;
}

#ifdef BYTESCAN_BLOCK
/* Bit i set where byte i of the block is not a word byte. */
static inline unsigned bytescan_block_nonword(__m128i v)
{
    __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                                   _mm_cmplt_epi8(folded, _mm_set1_epi8('z' + 1)));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    __m128i other =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), _mm_cmpeq_epi8(v, _mm_set1_epi8('$')));
    /* bytes >= 0x80 are negative as signed chars; the letter and digit tests miss them */
    __m128i high = _mm_cmplt_epi8(v, _mm_setzero_si128());
    __m128i word = _mm_or_si128(_mm_or_si128(letter, digit), _mm_or_si128(other, high));
    return ~(unsigned)_mm_movemask_epi8(word) & 0xFFFFu;
}

static inline __m128i bytescan_block_lower(__m128i v)
{
    __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                                  _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1)));
    return _mm_add_epi8(v, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
}
#endif

/* Index of the first byte c in s[p..end), or end. */
static inline size_t bytescan_find(const unsigned char *s, size_t p, size_t end, unsigned char c)
{
#ifdef BYTESCAN_BLOCK
    __m128i needle = _mm_set1_epi8((char)c);
    for (; end - p >= BYTESCAN_BLOCK; p += BYTESCAN_BLOCK) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + p));
        unsigned hit = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle));
        if (hit != 0)
            return p + (size_t)__builtin_ctz(hit);
    }
#endif
    while (p < end && s[p] != c)
        p++;
    return p;
}

/* Index of the first byte c1 or c2 in s[p..end), or end. */
static inline size_t bytescan_find2(const unsigned char *s, size_t p, size_t end, unsigned char c1,
                                    unsigned char c2)
{
#ifdef BYTESCAN_BLOCK
    __m128i n1 = _mm_set1_epi8((char)c1), n2 = _mm_set1_epi8((char)c2);
    for (; end - p >= BYTESCAN_BLOCK; p += BYTESCAN_BLOCK) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + p));
        unsigned hit =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, n1), _mm_cmpeq_epi8(v, n2)));
        if (hit != 0)
            return p + (size_t)__builtin_ctz(hit);
    }
#endif
    while (p < end && s[p] != c1 && s[p] != c2)
        p++;
    return p;
}

/* Index of the first byte in s[p..end) that cannot continue a word (R9), or end. */
static inline size_t bytescan_word_end(const unsigned char *s, size_t p, size_t end)
{
#ifdef BYTESCAN_BLOCK
    for (; end - p >= BYTESCAN_BLOCK; p += BYTESCAN_BLOCK) {
        unsigned stop =
            bytescan_block_nonword(_mm_loadu_si128((const __m128i *)(const void *)(s + p)));
        if (stop != 0)
            return p + (size_t)__builtin_ctz(stop);
    }
#endif
    while (p < end && bytescan_is_word(s[p]))
        p++;
    return p;
}

/* Copies len bytes from src to dst, lowercased (R9). src may be read up to src_room bytes
 * and dst written up to dst_room bytes; both rooms are at least len. */
static inline void bytescan_copy_lower(char *dst, size_t dst_room, const unsigned char *src,
                                       size_t src_room, size_t len)
{
    size_t i = 0;
#ifdef BYTESCAN_BLOCK
    size_t room = dst_room < src_room ? dst_room : src_room;
    for (; i < len && room - i >= BYTESCAN_BLOCK; i += BYTESCAN_BLOCK) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm_storeu_si128((__m128i *)(void *)(dst + i), bytescan_block_lower(v));
    }
#else
    (void)dst_room;
    (void)src_room;
#endif
    for (; i < len; i++)
        dst[i] = (char)bytescan_lower(src[i]);
}

#if defined(BYTESCAN_BLOCK) && defined(__x86_64__)
#define BYTESCAN_LOWER16 1
/* Copies 16 bytes from src to dst lowercased (R9), and returns them as two little-endian
 * integers (bytes 0-7 in *lo, 8-15 in *hi): a caller that looks the word up next need not
 * read back what was just stored. Both sides must have 16 bytes of room. */
static inline void bytescan_lower16(char *dst, const unsigned char *src, unsigned long long *lo,
                                    unsigned long long *hi)
{
    __m128i v = bytescan_block_lower(_mm_loadu_si128((const __m128i *)(const void *)src));
    _mm_storeu_si128((__m128i *)(void *)dst, v);
    *lo = (unsigned long long)_mm_cvtsi128_si64(v);
    *hi = (unsigned long long)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v));
}
#endif

/* Copies len bytes from src to dst, with the same rooms as bytescan_copy_lower. */
static inline void bytescan_copy(char *dst, size_t dst_room, const unsigned char *src,
                                 size_t src_room, size_t len)
{
#ifdef BYTESCAN_BLOCK
    size_t room = dst_room < src_room ? dst_room : src_room;
    if (len <= BYTESCAN_BLOCK && room >= BYTESCAN_BLOCK) {
        _mm_storeu_si128((__m128i *)(void *)dst,
                         _mm_loadu_si128((const __m128i *)(const void *)src));
        return;
    }
#else
    (void)dst_room;
    (void)src_room;
#endif
    memcpy(dst, src, len);
}

#endif
