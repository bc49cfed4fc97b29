/* report/store/pq — see pq.h. */
#include "report/store/pq.h"

#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
/* Written once under pthread_once, read-only afterwards: process-wide by nature (one
 * libpq per process), like the library mapping itself. */
static PqApi api;
static bool api_ok;
static char api_err[256];

static void load(void)
{
    void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(api_err, sizeof api_err,
                 "cannot load libpq (needed for a PostgreSQL report store): %s; install the "
                 "libpq5 package",
                 dlerror());
        return;
    }
#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)&api.field = dlsym(h, name);                                                     \
        if (!api.field) {                                                                          \
            snprintf(api_err, sizeof api_err, "libpq.so.5 lacks %s: a libpq too old", name);       \
            return;                                                                                \
        }                                                                                          \
    } while (0)
    SYM(connectdb, "PQconnectdb");
    SYM(connectdbParams, "PQconnectdbParams");
    SYM(conninfoParse, "PQconninfoParse");
    SYM(conninfoFree, "PQconninfoFree");
    SYM(finish, "PQfinish");
    SYM(status, "PQstatus");
    SYM(errorMessage, "PQerrorMessage");
    SYM(exec, "PQexec");
    SYM(execParams, "PQexecParams");
    SYM(resultStatus, "PQresultStatus");
    SYM(resultErrorMessage, "PQresultErrorMessage");
    SYM(resultErrorField, "PQresultErrorField");
    SYM(clear, "PQclear");
    SYM(ntuples, "PQntuples");
    SYM(nfields, "PQnfields");
    SYM(getvalue, "PQgetvalue");
    SYM(getisnull, "PQgetisnull");
    SYM(getlength, "PQgetlength");
    SYM(cmdTuples, "PQcmdTuples");
    SYM(putCopyData, "PQputCopyData");
    SYM(putCopyEnd, "PQputCopyEnd");
    SYM(getResult, "PQgetResult");
    SYM(escapeIdentifier, "PQescapeIdentifier");
    SYM(freemem, "PQfreemem");
    SYM(db, "PQdb");
    SYM(host, "PQhost");
    SYM(port, "PQport");
    SYM(user, "PQuser");
    SYM(serverVersion, "PQserverVersion");
    SYM(setNoticeProcessor, "PQsetNoticeProcessor");
    SYM(sslInUse, "PQsslInUse");
#undef SYM
    api_ok = true; /* the handle stays open for the life of the process */
}

const PqApi *pq_load(char *err, size_t err_len)
{
    pthread_once(&load_once, load);
    if (api_ok)
        return &api;
    if (err && err_len)
        snprintf(err, err_len, "%s", api_err);
    return NULL;
}

bool pq_is_target(const char *db)
{
    if (!db)
        return false;
    return strncasecmp(db, "postgres://", 11) == 0 || strncasecmp(db, "postgresql://", 13) == 0 ||
           strchr(db, '=') != NULL;
}

/* Appends [s, s+n) to out at *pos, keeping room for the NUL. */
/* A bounded writer that still counts what did not fit, like snprintf. */
typedef struct RedactOut {
    char *buf;
    size_t cap, len;
} RedactOut;

static void put(RedactOut *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, o->len++)
        if (o->len + 1 < o->cap)
            o->buf[o->len] = s[i];
}

static bool is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* The end of a value starting at v: libpq's single quotes with backslash escapes (a doubled
 * quote is taken as one too, so a value libpq would refuse is still hidden whole), or a bare
 * word. In a URL's query string '&' and '#' end a bare value as well. */
static size_t value_end(const char *t, size_t v, bool in_url)
{
    if (t[v] == '\'') {
        for (v++; t[v]; v++) {
            if ((t[v] == '\\' && t[v + 1]) || (t[v] == '\'' && t[v + 1] == '\''))
                v++;
            else if (t[v] == '\'')
                return v + 1;
        }
        return v;
    }
    while (t[v] && !isspace((unsigned char)t[v]) && !(in_url && (t[v] == '&' || t[v] == '#'))) {
        if (t[v] == '\\' && t[v + 1])
            v++;
        v++;
    }
    return v;
}

size_t pq_redact(const char *text, char *out, size_t out_len)
{
    RedactOut o = {.buf = out, .cap = out_len};
    if (out && out_len)
        out[0] = 0;
    if (!text)
        return 0;
    bool in_url = false; /* inside a scheme://... word: its query string's separators apply */
    for (size_t i = 0; text[i];) {
        if (strncmp(text + i, "://", 3) == 0) {
            /* scheme://user:password@host...: the last '@' before the path ends the userinfo
             * (a password may hold an unencoded '@'; libpq is lenient too). */
            in_url = true;
            size_t start = i + 3;
            size_t end = start + strcspn(text + start, "/?#");
            const char *at = NULL;
            for (size_t k = start; k < end; k++)
                if (text[k] == '@')
                    at = text + k;
            const char *colon =
                at ? memchr(text + start, ':', (size_t)(at - (text + start))) : NULL;
            if (colon) {
                put(&o, text + i, (size_t)(colon + 1 - (text + i)));
                put(&o, PQ_REDACTED, strlen(PQ_REDACTED));
                i = (size_t)(at - text);
                continue;
            }
            put(&o, text + i, 3);
            i += 3;
            continue;
        }
        if (isspace((unsigned char)text[i]))
            in_url = false;
        if (text[i] == '=') {
            /* key=value (spaces allowed around '=' in a keyword/value string, as libpq
             * does): any key ending in "password" (password, sslpassword) hides its value. */
            size_t k = i;
            while (k > 0 && !in_url && (text[k - 1] == ' ' || text[k - 1] == '\t'))
                k--;
            size_t key_end = k;
            while (k > 0 && is_key_char(text[k - 1]))
                k--;
            if (key_end - k >= 8 && strncasecmp(text + key_end - 8, "password", 8) == 0) {
                size_t v = i + 1;
                while (!in_url && (text[v] == ' ' || text[v] == '\t'))
                    v++;
                put(&o, text + i, v - i);
                put(&o, PQ_REDACTED, strlen(PQ_REDACTED));
                i = value_end(text, v, in_url);
                continue;
            }
        }
        put(&o, text + i, 1);
        i++;
    }
    if (out && out_len)
        out[o.len < out_len ? o.len : out_len - 1] = 0;
    return o.len;
}

char *pq_redact_dup(const char *text)
{
    size_t n = pq_redact(text, NULL, 0);
    char *out = malloc(n + 1);
    if (out)
        pq_redact(text, out, n + 1);
    return out;
}

void pq_describe(const PqApi *pq, const PGconn *conn, char *out, size_t out_len)
{
    PGconn *c = (PGconn *)conn;
    const char *host = pq->host(c);
    const char *port = pq->port(c);
    const char *db = pq->db(c);
    snprintf(out, out_len, "%s:%s/%s", host && *host ? host : "localhost",
             port && *port ? port : "5432", db ? db : "");
}

PGconn *pq_connect(const PqApi *pq, const char *target, char *err, size_t err_len)
{
    /* The user's target comes last, so anything it sets overrides these defaults. */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {"5", "pgtally store", target, NULL};
    PGconn *conn = pq->connectdbParams(keys, vals, 1);
    if (conn && pq->status(conn) == CONNECTION_OK)
        return conn;
    if (err && err_len) {
        char name[256], msg[400];
        const char *m = conn ? pq->errorMessage(conn) : "out of memory";
        /* a string libpq cannot parse is the user's mistake, not a connection failure */
        char *perr = NULL;
        PQconninfoOption *opts = pq->conninfoParse(target, &perr);
        const char *what = opts ? "cannot connect" : "not a valid PostgreSQL connection string";
        if (opts)
            pq->conninfoFree(opts);
        else if (perr)
            m = perr;
        size_t j = 0;
        for (size_t i = 0; m && m[i] && j + 3 < sizeof msg; i++) {
            if (m[i] == '\n') {
                if (!m[i + 1])
                    break;
                msg[j++] = ';';
                msg[j++] = ' ';
            } else {
                msg[j++] = m[i];
            }
        }
        msg[j] = 0;
        pq_redact(target, name, sizeof name);
        snprintf(err, err_len, "%s: %s: %s", name, what, msg);
        if (perr)
            pq->freemem(perr);
    }
    if (conn)
        pq->finish(conn);
    return NULL;
}
