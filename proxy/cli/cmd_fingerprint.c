/* proxy/cli/cmd_fingerprint — `pgtally fingerprint`: SQL in, one JSON object per statement out.
 *
 * Owns: reading records (lines, or NUL-separated with -0) from files or stdin, normalizing
 * every statement of each record with protocol/sqlnorm, and printing
 *   {"fingerprint":"<16 hex>","normalized":"...","values":"<16 hex>","tags":{...},
 *    "incomplete":false}
 * one per line. Tags found anywhere in a record apply to each of its statements (R37).
 * Strings go through protocol/jsonout, so invalid UTF-8 still yields valid JSON (\u00XX).
 * Built for throughput on large logs: input is read in big blocks and records are processed
 * in place, objects are built in one buffer written 64 KiB at a time, each record is lexed
 * once, and buffers are reused, so the steady state makes no allocation and no stdio call. */
#include "proxy/cli/cmd_fingerprint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/jsonout.h"
#include "protocol/sqlnorm.h"
#include "protocol/sqltags.h"

static const char fingerprint_usage[] =
    "usage: pgtally fingerprint [-0] [FILE...]\n"
    "\n"
    "Normalizes SQL and prints one JSON object per statement, one per line:\n"
    "  fingerprint  16 hex digits, equal for statements that differ only in literal values,\n"
    "               list lengths, parameter numbers, whitespace, comments or keyword case\n"
    "  normalized   the normalized text the fingerprint is computed from\n"
    "  values       16 hex digits hashing the literal values (equal F and values = duplicate)\n"
    "  tags         request tags from sqlcommenter / marginalia comments, decoded\n"
    "  incomplete   true when the text was cut inside a literal, comment or quoted name\n"
    "\n"
    "Input is read from each FILE in turn (`-` or no FILE: standard input), one statement per\n"
    "line; a line holding several statements (`BEGIN; ...; COMMIT`) prints one object each.\n"
    "Output is written in large blocks, and whenever the input pauses, so a growing log can\n"
    "be followed (`tail -f FILE | pgtally fingerprint`).\n"
    "\n"
    "  -0, --null   records are separated by NUL bytes instead of newlines, for statements\n"
    "               that span several lines\n"
    "  -h, --help   print this help\n"
    "\n"
    "Exit status: 0 on success, 2 on a usage error, when a file cannot be read or when the\n"
    "output cannot be written.\n"
    "See docs/normalization.md.\n";

/* Reads are this large, and output is written in one write(2) once this much is pending. */
#define FINGERPRINT_READ_SIZE (256u * 1024)
#define FINGERPRINT_WRITE_SIZE (64u * 1024)
/* Bytes of an output object besides N and the tags: the keys, two hashes, `"incomplete":false`. */
#define FINGERPRINT_OBJECT_FIXED 128

/* A growable byte buffer. */
typedef struct FingerprintBuf {
    char *data;
    size_t len;
    size_t cap;
} FingerprintBuf;

/* Everything reused across records and files: grown to the largest record, never shrunk, so
 * the steady state allocates nothing. */
typedef struct Fingerprinter {
    FingerprintBuf in;      /* records read but not yet processed */
    FingerprintBuf norm;    /* sqlnorm's output buffer */
    FingerprintBuf out;     /* JSON lines not yet written to stdout */
    FingerprintBuf tags;    /* the record's tags as a JSON object */
    FingerprintBuf scratch; /* the tags' decoded bytes escaped at once, to see if any change */
    FingerprintBuf pending; /* multi-statement records: each statement's object up to `"tags":` */
    size_t *pending_end;    /* ... where each one ends in `pending` */
    bool *pending_incomplete;
    size_t pending_count;
    size_t pending_cap;
    bool write_failed;
    int write_errno;
    bool stdin_done; /* standard input reached its end: a second `-` reads nothing */
} Fingerprinter;

static bool buf_reserve(FingerprintBuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return true;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    char *grown = realloc(b->data, cap);
    if (grown == NULL)
        return false;
    b->data = grown;
    b->cap = cap;
    return true;
}

/* Writes every pending output byte to stdout. A failure is remembered (and reported once, at
 * the end, by the caller); output after it is discarded. */
static void fingerprint_flush(Fingerprinter *f)
{
    size_t done = 0;
    while (done < f->out.len && !f->write_failed) {
        ssize_t n = write(STDOUT_FILENO, f->out.data + done, f->out.len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            f->write_failed = true;
            f->write_errno = errno;
        } else {
            done += (size_t)n;
        }
    }
    f->out.len = 0;
}

/* Appends `"<escaped>"` at p (room: JSON_ESCAPED_MAX(len) + 1). Returns the end. */
static char *put_string(char *p, const char *s, size_t len)
{
    *p++ = '"';
    p += json_escape(p, JSON_ESCAPED_MAX(len), s, len);
    *p++ = '"';
    return p;
}

static char *put_literal(char *p, const char *lit, size_t len)
{
    memcpy(p, lit, len);
    return p + len;
}
#define PUT(p, lit) put_literal((p), (lit), sizeof(lit) - 1)

/* True when the first and last bytes of s are ASCII (or s is empty). */
static bool ascii_ends(const char *s, size_t len)
{
    return len == 0 || ((unsigned char)s[0] < 0x80 && (unsigned char)s[len - 1] < 0x80);
}

/* Renders the tags as a JSON object into f->tags. */
static bool fingerprint_render_tags(Fingerprinter *f, const SqlTags *tags)
{
    if (tags->count == 0 && f->tags.cap >= 2) { /* most statements carry no tags */
        memcpy(f->tags.data, "{}", 2);
        f->tags.len = 2;
        return true;
    }
    size_t need = 2;
    bool ascii_edges = true; /* no UTF-8 sequence can run from one key or value into the next */
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        need += JSON_ESCAPED_MAX(t->key_len) + JSON_ESCAPED_MAX(t->value_len) + 6;
        ascii_edges =
            ascii_edges && ascii_ends(t->key, t->key_len) && ascii_ends(t->value, t->value_len);
    }
    f->tags.len = 0;
    f->scratch.len = 0;
    if (!buf_reserve(&f->tags, need) ||
        !buf_reserve(&f->scratch, JSON_ESCAPED_MAX(tags->storage_used) + 1))
        return false;
    /* Keys and values are decoded into one storage area. Escaping it whole is one pass; when
     * that changes nothing (the usual case: escapes only ever lengthen, and valid UTF-8 is
     * kept as it is) every key and value is copied as it is, rather than escaped one by one:
     * a dozen short calls per tagged statement were a third of the JSON work. */
    bool plain = ascii_edges && json_escape(f->scratch.data, f->scratch.cap, tags->storage,
                                            tags->storage_used) == tags->storage_used;
    char *p = f->tags.data;
    *p++ = '{';
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        if (i > 0)
            *p++ = ',';
        if (plain) {
            *p++ = '"';
            p = put_literal(p, t->key, t->key_len);
            p = PUT(p, "\":\"");
            p = put_literal(p, t->value, t->value_len);
            *p++ = '"';
            continue;
        }
        p = put_string(p, t->key, t->key_len);
        *p++ = ':';
        p = put_string(p, t->value, t->value_len);
    }
    *p++ = '}';
    f->tags.len = (size_t)(p - f->tags.data);
    return true;
}

/* Writes the 16 lowercase hex digits of v at p (the format of sqlnorm_hex64, without its NUL).
 * Printed twice per statement: a digit-at-a-time loop showed up in profiles, and with SSE2
 * (every x86-64) all 16 digits are made at once: the 8 bytes, most significant first, split
 * into 16 nibbles, each nibble + '0', plus 39 more for a-f. */
#if defined(__SSE2__)
#include <emmintrin.h>

static char *put_hex64(char *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v); /* the most significant byte first in memory */
#endif
    __m128i bytes = _mm_cvtsi64_si128((long long)v);
    __m128i low4 = _mm_set1_epi8(0x0F);
    __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
    __m128i nibbles = _mm_unpacklo_epi8(high, _mm_and_si128(bytes, low4));
    __m128i letters = _mm_and_si128(_mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9)), _mm_set1_epi8(39));
    __m128i digits = _mm_add_epi8(_mm_add_epi8(nibbles, _mm_set1_epi8('0')), letters);
    _mm_storeu_si128((__m128i *)(void *)p, digits);
    return p + 16;
}
#else
static char *put_hex64(char *p, uint64_t v)
{
    char hex[17];
    sqlnorm_hex64(v, hex);
    memcpy(p, hex, 16);
    return p + 16;
}
#endif

/* Appends a statement's object up to and including `"tags":` to `b`. */
static bool fingerprint_put_head(FingerprintBuf *b, const SqlnormStatement *st)
{
    if (!buf_reserve(b, FINGERPRINT_OBJECT_FIXED + JSON_ESCAPED_MAX(st->normalized_len)))
        return false;
    char *p = b->data + b->len;
    p = PUT(p, "{\"fingerprint\":\"");
    p = put_hex64(p, st->fingerprint);
    p = PUT(p, "\",\"normalized\":");
    p = put_string(p, st->normalized, st->normalized_len);
    p = PUT(p, ",\"values\":\"");
    p = put_hex64(p, st->values_hash);
    p = PUT(p, "\",\"tags\":");
    b->len = (size_t)(p - b->data);
    return true;
}

/* Appends the rendered tags and the rest of the object to f->out. */
static bool fingerprint_put_tail(Fingerprinter *f, bool incomplete)
{
    if (!buf_reserve(&f->out, f->tags.len + 32))
        return false;
    char *p = f->out.data + f->out.len;
    p = put_literal(p, f->tags.data, f->tags.len);
    if (incomplete)
        p = PUT(p, ",\"incomplete\":true}\n");
    else
        p = PUT(p, ",\"incomplete\":false}\n");
    f->out.len = (size_t)(p - f->out.data);
    return true;
}

static bool fingerprint_hold(Fingerprinter *f, const SqlnormStatement *st)
{
    if (f->pending_count == f->pending_cap) {
        size_t cap = f->pending_cap ? f->pending_cap * 2 : 8;
        size_t *ends = realloc(f->pending_end, cap * sizeof(*ends));
        if (ends == NULL)
            return false;
        f->pending_end = ends;
        bool *inc = realloc(f->pending_incomplete, cap * sizeof(*inc));
        if (inc == NULL)
            return false;
        f->pending_incomplete = inc;
        f->pending_cap = cap;
    }
    if (!fingerprint_put_head(&f->pending, st))
        return false;
    f->pending_end[f->pending_count] = f->pending.len;
    f->pending_incomplete[f->pending_count] = st->incomplete;
    f->pending_count++;
    return true;
}

/* Normalizes one record and appends its statements' objects to f->out, in one lexing pass:
 * tags found anywhere in the record apply to each of its statements (R37), and sqlnorm has
 * them all once the cursor reaches the end. A single statement (the common case) is written
 * straight out; when a record holds several, their objects wait in f->pending until the
 * last one has been normalized. Returns false when out of memory. */
static bool fingerprint_record(Fingerprinter *f, const char *sql, size_t len)
{
    SqlTags tags;
    sqltags_init(&tags);
    size_t bound = sqlnorm_output_bound(len);
    if (f->norm.cap < bound) {
        f->norm.len = 0;
        if (!buf_reserve(&f->norm, bound))
            return false;
    }
    f->pending.len = 0;
    f->pending_count = 0;

    SqlnormCursor cur;
    SqlnormStatement st;
    sqlnorm_cursor_init(&cur, sql, len, NULL);
    while (sqlnorm_next(&cur, f->norm.data, f->norm.cap, &st, &tags)) {
        if (cur.pos < cur.len || f->pending_count > 0) {
            if (!fingerprint_hold(f, &st))
                return false;
            continue;
        }
        /* The only statement: its tags are complete. */
        if (!fingerprint_render_tags(f, &tags) || !fingerprint_put_head(&f->out, &st))
            return false;
        return fingerprint_put_tail(f, st.incomplete);
    }
    if (f->pending_count == 0)
        return true;
    if (!fingerprint_render_tags(f, &tags))
        return false;
    size_t start = 0;
    for (size_t i = 0; i < f->pending_count; i++) {
        size_t n = f->pending_end[i] - start;
        if (!buf_reserve(&f->out, n))
            return false;
        memcpy(f->out.data + f->out.len, f->pending.data + start, n);
        f->out.len += n;
        start = f->pending_end[i];
        if (!fingerprint_put_tail(f, f->pending_incomplete[i]))
            return false;
    }
    return true;
}

/* Reads every record of `fd` in large blocks and processes each whole record in place.
 * Returns 0, or 2 after printing why (`name` in the message). */
static int fingerprint_stream(Fingerprinter *f, int fd, const char *name, char delim)
{
    /* A pipe or a terminal may make read() wait for a producer (`tail -f log | pgtally
     * fingerprint`): what is done so far is written out first rather than held back. */
    struct stat sb;
    bool may_wait = fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode);
    FingerprintBuf *in = &f->in;
    in->len = 0;
    bool oom = false;
    for (;;) {
        if (!buf_reserve(in, FINGERPRINT_READ_SIZE)) {
            oom = true;
            break;
        }
        if (may_wait && f->out.len > 0)
            fingerprint_flush(f);
        ssize_t got = read(fd, in->data + in->len, in->cap - in->len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "pgtally fingerprint: %s: read error: %s\n", name, strerror(errno));
            return 2;
        }
        /* At the end of the input the rest is the last record, delimiter or not. */
        bool eof = got == 0;
        size_t scanned = in->len; /* the bytes before held no delimiter */
        in->len += (size_t)got;
        size_t start = 0;
        while (start < in->len) {
            size_t from = start > scanned ? start : scanned;
            char *d = memchr(in->data + from, delim, in->len - from);
            if (d == NULL && !eof)
                break;
            size_t end = d ? (size_t)(d - in->data) : in->len;
            if (!fingerprint_record(f, in->data + start, end - start)) {
                oom = true;
                break;
            }
            start = d ? end + 1 : end;
            if (f->out.len >= FINGERPRINT_WRITE_SIZE)
                fingerprint_flush(f);
        }
        if (oom || eof)
            break;
        memmove(in->data, in->data + start, in->len - start); /* the incomplete last record */
        in->len -= start;
    }
    if (oom) {
        fprintf(stderr, "pgtally fingerprint: %s: out of memory\n", name);
        return 2;
    }
    return 0;
}

static void fingerprinter_free(Fingerprinter *f)
{
    free(f->in.data);
    free(f->norm.data);
    free(f->out.data);
    free(f->tags.data);
    free(f->scratch.data);
    free(f->pending.data);
    free(f->pending_end);
    free(f->pending_incomplete);
}

static int fingerprint_stdin(Fingerprinter *f, char delim)
{
    if (f->stdin_done)
        return 0;
    f->stdin_done = true;
    return fingerprint_stream(f, STDIN_FILENO, "standard input", delim);
}

int cmd_fingerprint_main(int argc, char **argv)
{
    char delim = '\n';
    int nfiles = 0; /* file operands are compacted to argv[1 .. nfiles] */
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            argv[1 + nfiles++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (strcmp(a, "-0") == 0 || strcmp(a, "--null") == 0) {
            delim = '\0';
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(fingerprint_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "pgtally fingerprint: unknown option '%s'\n%s", a, fingerprint_usage);
            return 2;
        }
    }

    Fingerprinter f = {0};
    int rc = 0;
    if (nfiles == 0) {
        rc = fingerprint_stdin(&f, delim);
    } else {
        for (int i = 1; i <= nfiles; i++) {
            const char *path = argv[i];
            if (strcmp(path, "-") == 0) {
                if (fingerprint_stdin(&f, delim) != 0)
                    rc = 2;
                continue;
            }
            int fd = open(path, O_RDONLY);
            if (fd < 0) {
                fprintf(stderr, "pgtally fingerprint: cannot open %s: %s\n", path, strerror(errno));
                rc = 2;
                continue;
            }
            if (fingerprint_stream(&f, fd, path, delim) != 0)
                rc = 2;
            close(fd);
        }
    }
    fingerprint_flush(&f);
    fingerprinter_free(&f);
    if (f.write_failed) {
        fprintf(stderr, "pgtally fingerprint: write error: %s\n", strerror(f.write_errno));
        rc = 2;
    }
    return rc;
}
