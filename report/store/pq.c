/* report/store/pq — see pq.h. */
#include "report/store/pq.h"

#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
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
static void put(char *out, size_t out_len, size_t *pos, const char *s, size_t n)
{
    while (n-- && *pos + 1 < out_len)
        out[(*pos)++] = *s++;
    out[*pos] = 0;
}

static void redact_url(const char *t, char *out, size_t out_len)
{
    size_t pos = 0;
    out[0] = 0;
    const char *scheme_end = strstr(t, "://");
    const char *auth = scheme_end + 3;
    /* userinfo ends at the last '@' before the path or query */
    size_t host_part = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < auth + host_part; p++)
        if (*p == '@')
            at = p;
    put(out, out_len, &pos, t, (size_t)(auth - t));
    const char *rest = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) {
            put(out, out_len, &pos, auth, (size_t)(colon - auth));
            put(out, out_len, &pos, ":***", 4);
            rest = at;
        }
    }
    /* the query string may carry password=...: drop that parameter */
    const char *q = strchr(rest, '?');
    if (!q) {
        put(out, out_len, &pos, rest, strlen(rest));
        return;
    }
    put(out, out_len, &pos, rest, (size_t)(q - rest) + 1);
    const char *p = q + 1;
    bool first = true;
    while (*p) {
        size_t n = strcspn(p, "&");
        if (!(n >= 9 && strncasecmp(p, "password=", 9) == 0)) {
            if (!first)
                put(out, out_len, &pos, "&", 1);
            put(out, out_len, &pos, p, n);
            first = false;
        }
        p += n;
        if (*p == '&')
            p++;
    }
}

/* keyword = value pairs, values bare or single-quoted with backslash escapes (libpq's
 * grammar). Pairs are copied as written except password ones. */
static void redact_kv(const char *t, char *out, size_t out_len)
{
    size_t pos = 0;
    out[0] = 0;
    const char *p = t;
    while (*p) {
        const char *start = p;
        while (isspace((unsigned char)*p))
            p++;
        const char *kw = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kw_len = (size_t)(p - kw);
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '=') {
            p++;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'') {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
                if (*p == '\'')
                    p++;
            } else {
                while (*p && !isspace((unsigned char)*p)) {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
            }
        }
        bool secret = kw_len == 8 && strncasecmp(kw, "password", 8) == 0;
        if (secret) {
            put(out, out_len, &pos, start, (size_t)(kw - start)); /* the separating spaces */
            put(out, out_len, &pos, "password=***", 12);
        } else
            put(out, out_len, &pos, start, (size_t)(p - start));
        if (p == start)
            break; /* cannot happen; guards the loop */
    }
}

void pq_redact(const char *target, char *out, size_t out_len)
{
    if (!out || !out_len)
        return;
    out[0] = 0;
    if (!target)
        return;
    if (strncasecmp(target, "postgres://", 11) == 0 ||
        strncasecmp(target, "postgresql://", 13) == 0)
        redact_url(target, out, out_len);
    else if (strchr(target, '='))
        redact_kv(target, out, out_len);
    else
        snprintf(out, out_len, "%s", target);
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
        snprintf(err, err_len, "%s: cannot connect: %s", name, msg);
    }
    if (conn)
        pq->finish(conn);
    return NULL;
}
