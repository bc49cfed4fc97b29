/* proxy/querylog — see querylog.h. */
#include "proxy/querylog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/jsonout.h"
#include "protocol/sqlnorm.h"
#include "report/outfile.h"

struct QueryLog {
    FILE *file;
    char *line; /* one formatted line; sized for the largest SQL the tracker keeps */
    size_t line_cap;
    unsigned long long dropped;
    bool failed;
};

QueryLog *querylog_open(const char *path, char *err, size_t err_len)
{
    QueryLog *log = calloc(1, sizeof *log);
    if (!log) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    /* Raw SQL with its literals: owner-only, like the report store. */
    char why[512];
    log->file = outfile_open(path, true, why, sizeof why);
    if (!log->file) {
        snprintf(err, err_len, "cannot open query log %s", why);
        free(log);
        return NULL;
    }
    snprintf(err, err_len, "%s", why); /* a warning, or empty */
    setvbuf(log->file, NULL, _IOFBF, 1 << 16);
    return log;
}

static bool ensure_line(QueryLog *log, size_t need)
{
    if (need <= log->line_cap)
        return true;
    char *line = realloc(log->line, need);
    if (!line)
        return false;
    log->line = line;
    log->line_cap = need;
    return true;
}

static const char *protocol_name(TrackerProtocol p)
{
    switch (p) {
    case TRACKER_SIMPLE:
        return "simple";
    case TRACKER_EXTENDED:
        return "extended";
    default:
        return "function";
    }
}

/* Appends `"key":"escaped"` (with a leading comma). */
static char *put_string_field(char *p, char *end, const char *key, const char *s, size_t len)
{
    p += snprintf(p, (size_t)(end - p), ",\"%s\":\"", key);
    p += json_escape(p, (size_t)(end - p), s, len);
    *p++ = '"';
    return p;
}

/* fingerprint, values, normalized, incomplete, tags, application_name. */
static char *write_normalizer_fields(char *p, char *end, const TrackerEvent *ev)
{
    if (ev->normalized_known) {
        char hex[17];
        sqlnorm_hex64(ev->fingerprint, hex);
        p += snprintf(p, (size_t)(end - p), ",\"fingerprint\":\"%s\"", hex);
        sqlnorm_hex64(ev->values_hash, hex);
        p += snprintf(p, (size_t)(end - p), ",\"values\":\"%s\"", hex);
        p = put_string_field(p, end, "normalized", ev->normalized, ev->normalized_len);
        p +=
            snprintf(p, (size_t)(end - p), ",\"incomplete\":%s", ev->incomplete ? "true" : "false");
    } else {
        p += snprintf(p, (size_t)(end - p),
                      ",\"fingerprint\":null,\"values\":null,\"normalized\":null,"
                      "\"incomplete\":false");
    }
    p += snprintf(p, (size_t)(end - p), ",\"tags\":{");
    for (size_t i = 0; i < ev->n_tags; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        p += json_escape(p, (size_t)(end - p), ev->tags[i].key, ev->tags[i].key_len);
        *p++ = '"';
        *p++ = ':';
        *p++ = '"';
        p += json_escape(p, (size_t)(end - p), ev->tags[i].value, ev->tags[i].value_len);
        *p++ = '"';
    }
    *p++ = '}';
    return put_string_field(p, end, "application_name",
                            ev->application_name ? ev->application_name : "",
                            ev->application_name_len);
}

void querylog_write(QueryLog *log, const TrackerEvent *ev)
{
    size_t tag_bytes = 0;
    for (size_t i = 0; i < ev->n_tags; i++)
        tag_bytes += ev->tags[i].key_len + ev->tags[i].value_len + 8;
    size_t need = 6 * (ev->sql_len + ev->statement_len + ev->normalized_len + tag_bytes +
                       ev->application_name_len + 64) +
                  1024;
    if (!ensure_line(log, need)) {
        log->dropped++;
        return;
    }
    char *p = log->line;
    char *end = log->line + log->line_cap;
    p += snprintf(p, (size_t)(end - p),
                  "{\"conn\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"protocol\":\"%s\",\"statement\":",
                  ev->conn_id, ev->seq, protocol_name(ev->protocol));
    if (ev->statement) {
        *p++ = '"';
        p += json_escape(p, (size_t)(end - p), ev->statement, ev->statement_len);
        *p++ = '"';
    } else {
        p += snprintf(p, (size_t)(end - p), "null");
    }
    p += snprintf(p, (size_t)(end - p), ",\"index\":%u,\"sql\":", ev->index);
    if (ev->sql) {
        *p++ = '"';
        p += json_escape(p, (size_t)(end - p), ev->sql, ev->sql_len);
        *p++ = '"';
    } else {
        p += snprintf(p, (size_t)(end - p), "null");
    }
    p += snprintf(p, (size_t)(end - p),
                  ",\"sql_truncated\":%s,\"start_us\":%" PRId64 ",\"end_us\":%" PRId64
                  ",\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"executes\":%u",
                  ev->sql_truncated ? "true" : "false", ev->start_us, ev->end_us, ev->rows,
                  ev->bytes, ev->executes);
    if (ev->command[0]) {
        p += snprintf(p, (size_t)(end - p), ",\"command\":\"");
        p += json_escape(p, (size_t)(end - p), ev->command, strlen(ev->command));
        *p++ = '"';
    } else
        p += snprintf(p, (size_t)(end - p), ",\"command\":null");
    if (ev->sqlstate[0]) {
        p += snprintf(p, (size_t)(end - p), ",\"sqlstate\":\"");
        p += json_escape(p, (size_t)(end - p), ev->sqlstate, strlen(ev->sqlstate));
        *p++ = '"';
    } else
        p += snprintf(p, (size_t)(end - p), ",\"sqlstate\":null");
    p += snprintf(p, (size_t)(end - p), ",\"aborted\":%s", ev->aborted ? "true" : "false");
    p = write_normalizer_fields(p, end, ev);
    *p++ = '}';
    *p++ = '\n';
    if (fwrite(log->line, 1, (size_t)(p - log->line), log->file) != (size_t)(p - log->line))
        log->dropped++;
}

bool querylog_flush(QueryLog *log)
{
    if (fflush(log->file) != 0) {
        log->failed = true;
        clearerr(log->file);
        return false;
    }
    return true;
}

unsigned long long querylog_dropped(const QueryLog *log)
{
    return log->dropped;
}

void querylog_close(QueryLog *log)
{
    if (!log)
        return;
    fclose(log->file);
    free(log->line);
    free(log);
}
