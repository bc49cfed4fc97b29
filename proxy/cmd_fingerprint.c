/* proxy/cmd_fingerprint — `pgtally fingerprint`: SQL in, one JSON object per statement out.
 *
 * Owns: reading records (lines, or NUL-separated with -0) from files or stdin, normalizing
 * every statement of each record with protocol/sqlnorm, and printing
 *   {"fingerprint":"<16 hex>","normalized":"...","values":"<16 hex>","tags":{...},
 *    "incomplete":false}
 * one per line. Tags found anywhere in a record apply to each of its statements (R37).
 * Strings go through protocol/jsonout, so invalid UTF-8 still yields valid JSON (\u00XX). */
#include "proxy/cmd_fingerprint.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "\n"
    "  -0, --null   records are separated by NUL bytes instead of newlines, for statements\n"
    "               that span several lines\n"
    "  -h, --help   print this help\n"
    "\n"
    "Exit status: 0 on success, 2 on a usage error or when a file cannot be read.\n"
    "See docs/normalization.md.\n";

/* Buffers reused across records: grown, never shrunk. */
typedef struct FingerprintBuffers {
    char *norm;
    size_t norm_cap;
    char *esc;
    size_t esc_cap;
} FingerprintBuffers;

static bool fingerprint_reserve(char **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return true;
    char *grown = realloc(*buf, need);
    if (grown == NULL)
        return false;
    *buf = grown;
    *cap = need;
    return true;
}

/* Writes `"<escaped>"`. */
static bool fingerprint_put_string(FingerprintBuffers *b, const char *s, size_t len, FILE *out)
{
    if (!fingerprint_reserve(&b->esc, &b->esc_cap, JSON_ESCAPED_MAX(len)))
        return false;
    size_t n = json_escape(b->esc, b->esc_cap, s, len);
    putc('"', out);
    fwrite(b->esc, 1, n, out);
    putc('"', out);
    return true;
}

static bool fingerprint_put_tags(FingerprintBuffers *b, const SqlTags *tags, FILE *out)
{
    putc('{', out);
    for (size_t i = 0; i < tags->count; i++) {
        const SqlTag *t = &tags->tags[i];
        if (i > 0)
            putc(',', out);
        if (!fingerprint_put_string(b, t->key, t->key_len, out))
            return false;
        putc(':', out);
        if (!fingerprint_put_string(b, t->value, t->value_len, out))
            return false;
    }
    putc('}', out);
    return true;
}

/* Normalizes one record and prints its statements. Returns false when out of memory. */
static bool fingerprint_record(FingerprintBuffers *b, const char *sql, size_t len, FILE *out)
{
    SqlTags tags;
    sqltags_init(&tags);
    sqlnorm_scan_tags(sql, len, NULL, &tags); /* every statement gets every tag */
    size_t bound = sqlnorm_output_bound(len);
    if (!fingerprint_reserve(&b->norm, &b->norm_cap, bound))
        return false;

    SqlnormCursor cur;
    SqlnormStatement st;
    sqlnorm_cursor_init(&cur, sql, len, NULL);
    while (sqlnorm_next(&cur, b->norm, b->norm_cap, &st, NULL)) {
        char fp[17], values[17];
        sqlnorm_hex64(st.fingerprint, fp);
        sqlnorm_hex64(st.values_hash, values);
        fprintf(out, "{\"fingerprint\":\"%s\",\"normalized\":", fp);
        if (!fingerprint_put_string(b, st.normalized, st.normalized_len, out))
            return false;
        fprintf(out, ",\"values\":\"%s\",\"tags\":", values);
        if (!fingerprint_put_tags(b, &tags, out))
            return false;
        fprintf(out, ",\"incomplete\":%s}\n", st.incomplete ? "true" : "false");
    }
    return true;
}

/* Reads every record of `in`. Returns 0, or 2 after printing why (`name` in the message). */
static int fingerprint_stream(FingerprintBuffers *b, FILE *in, const char *name, int delim,
                              FILE *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getdelim(&line, &cap, delim, in)) >= 0) {
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == (char)delim)
            len--;
        if (!fingerprint_record(b, line, len, out)) {
            fprintf(stderr, "pgtally fingerprint: %s: out of memory\n", name);
            rc = 2;
            break;
        }
    }
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "pgtally fingerprint: %s: read error: %s\n", name, strerror(errno));
        rc = 2;
    }
    free(line);
    return rc;
}

int cmd_fingerprint_main(int argc, char **argv)
{
    int delim = '\n';
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

    FingerprintBuffers b = {0};
    int rc = 0;
    if (nfiles == 0) {
        rc = fingerprint_stream(&b, stdin, "standard input", delim, stdout);
    } else {
        for (int i = 1; i <= nfiles; i++) {
            const char *path = argv[i];
            if (strcmp(path, "-") == 0) {
                if (fingerprint_stream(&b, stdin, "standard input", delim, stdout) != 0)
                    rc = 2;
                continue;
            }
            FILE *in = fopen(path, "rb");
            if (in == NULL) {
                fprintf(stderr, "pgtally fingerprint: cannot open %s: %s\n", path, strerror(errno));
                rc = 2;
                continue;
            }
            if (fingerprint_stream(&b, in, path, delim, stdout) != 0)
                rc = 2;
            fclose(in);
        }
    }
    free(b.norm);
    free(b.esc);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "pgtally fingerprint: write error: %s\n", strerror(errno));
        rc = 2;
    }
    return rc;
}
