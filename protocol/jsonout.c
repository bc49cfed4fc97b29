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
    if (seq == 2 && c == 0xC2 && u[*i + 1] < 0xA0) {
        /* U+0080-U+009F, C1 controls: the same string to a JSON reader, and never a raw CSI
         * for a terminal that shows the file. */
        memcpy(out + n, "\\u00", 4);
        out[n + 4] = hex[u[*i + 1] >> 4];
        out[n + 5] = hex[u[*i + 1] & 15];
        *i += 2;
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

/* Plain runs are copied a block at a time: 16 bytes with SSE2 (every x86-64), else 8 bytes
 * in a uint64_t on little-endian machines, else byte by byte. json_block_load(p, &v, &quoted)
 * loads the block at p into v and returns a mask of its bytes that are not plain, first byte
 * in the lowest bits (the lowest set bit is exact; later ones may not be). With SSE2 the masks
 * are exact, and `"` and `\\` are reported apart in *quoted: the identifiers of ORM SQL are
 * quoted, so a block often holds one or two quotes and nothing else to escape. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define JSON_BLOCK 16
#define JSON_MASK_STRIDE 1 /* mask bits per byte */
#define JSON_EXACT_MASKS 1
typedef __m128i JsonBlock;

static uint64_t json_block_load(const unsigned char *p, JsonBlock *v, uint64_t *quoted)
{
    *v = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* signed compare: bytes >= 0x80 are negative, so `< 0x20` catches them too */
    __m128i ctl = _mm_cmplt_epi8(*v, _mm_set1_epi8(0x20));
    __m128i del = _mm_cmpeq_epi8(*v, _mm_set1_epi8(0x7F));
    __m128i quote = _mm_cmpeq_epi8(*v, _mm_set1_epi8('"'));
    __m128i bslash = _mm_cmpeq_epi8(*v, _mm_set1_epi8('\\'));
    *quoted = (uint64_t)_mm_movemask_epi8(_mm_or_si128(quote, bslash));
    return (uint64_t)_mm_movemask_epi8(_mm_or_si128(ctl, del));
}

static void json_block_store(char *out, const JsonBlock *v)
{
    _mm_storeu_si128((__m128i *)(void *)out, *v);
}
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSON_BLOCK 8
#define JSON_MASK_STRIDE 8 /* the high bit of each byte */
#define JSON_ONES 0x0101010101010101ULL
typedef uint64_t JsonBlock;

/* High bit set in each byte < 0x20; >= 0x80 or 0x7F (x + 1 sets its high bit); `"` or `\\`
 * (a zero byte after XOR). Borrows and carries only move towards later bytes, so the lowest
 * flagged byte is exact. */
static uint64_t json_block_load(const unsigned char *p, JsonBlock *v, uint64_t *quoted)
{
    uint64_t x;
    *quoted = 0; /* not exact past the first flagged byte: everything goes in the result */
    memcpy(&x, p, 8);
    *v = x;
    uint64_t lt20 = (x - JSON_ONES * 0x20) & ~x;
    uint64_t hi = x | (x + JSON_ONES);
    uint64_t q = x ^ (JSON_ONES * '"'), b = x ^ (JSON_ONES * '\\');
    uint64_t quote = (q - JSON_ONES) & ~q, bslash = (b - JSON_ONES) & ~b;
    return (lt20 | hi | quote | bslash) & (JSON_ONES * 0x80);
}

static void json_block_store(char *out, const JsonBlock *v)
{
    memcpy(out, v, 8);
}
#endif

#ifdef JSON_EXACT_MASKS
/* Escapes the `count` bytes at p (at most a block) whose only bytes needing escaping are
 * those in `quoted` (`"` and `\\`; exact mask). The block at p is already stored at out + n;
 * after each backslash the rest of the block is stored again one byte further on, so the
 * caller guarantees a block readable at every p + k and room for a block after every write.
 * Returns the new n. */
static size_t json_block_quoted(char *out, size_t n, const unsigned char *p, uint64_t quoted,
                                size_t count)
{
    size_t done = 0;
    while (quoted != 0) {
        size_t k = (size_t)__builtin_ctzll(quoted);
        quoted &= quoted - 1;
        n += k - done;
        out[n++] = '\\';
        memcpy(out + n, p + k, JSON_BLOCK);
        done = k;
    }
    return n + count - done;
}
#endif

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
    /* The worst case fits, so no per-character check, and a whole block may be stored before it
     * is known how many of its bytes are plain (output stays within 6 bytes per input byte
     * consumed, and a block of input remains past the store's start). Identifiers and keywords
     * are copied a block at a time up to the next byte that needs escaping. */
    size_t n = 0, i = 0;
#ifdef JSON_BLOCK
    while (len - i >= JSON_BLOCK) {
        JsonBlock v;
        uint64_t quoted;
        uint64_t special = json_block_load(u + i, &v, &quoted);
        json_block_store(out + n, &v);
        if ((special | quoted) == 0) {
            n += JSON_BLOCK;
            i += JSON_BLOCK;
            continue;
        }
#ifdef JSON_EXACT_MASKS
        if (special == 0 && len - i >= 2 * JSON_BLOCK) {
            /* Only `"` and `\\`: a backslash before each without leaving the block. */
            n = json_block_quoted(out, n, u + i, quoted, JSON_BLOCK);
            i += JSON_BLOCK;
            continue;
        }
#endif
        special |= quoted;
        size_t plain = (size_t)__builtin_ctzll(special) / JSON_MASK_STRIDE;
        n += plain;
        i += plain;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') { /* by far the most common: quoted identifiers */
            out[n] = '\\';
            out[n + 1] = (char)c;
            n += 2;
            i++;
            continue;
        }
        n = json_escape_special(out, n, u, &i, len);
    }
#endif
#ifdef JSON_EXACT_MASKS
    /* The last bytes (and short strings: tag keys and values) as one block copied into a
     * padded buffer, when the output has room for the block stores (2 bytes per input byte
     * at most here, plus a block). Anything but quotes and backslashes: byte by byte. */
    size_t rem = len - i;
    if (rem >= 4 && rem < JSON_BLOCK && cap - n >= 2 * rem + JSON_BLOCK + 1) {
        unsigned char pad[2 * JSON_BLOCK] = {0};
        memcpy(pad, u + i, rem);
        JsonBlock v;
        uint64_t quoted, live = ((uint64_t)1 << rem) - 1;
        uint64_t special = json_block_load(pad, &v, &quoted);
        if ((special & live) == 0) {
            json_block_store(out + n, &v);
            n = json_block_quoted(out, n, pad, quoted & live, rem);
            i = len;
        }
    }
#endif
    for (;;) {
        while (i < len && json_plain(u[i]))
            out[n++] = (char)u[i++];
        if (i >= len)
            break;
        n = json_escape_special(out, n, u, &i, len);
    }
    out[n] = 0;
    return n;
}
