/* report/store/pq — libpq, loaded only when a PostgreSQL report store is used.
 *
 * Owns: dlopen("libpq.so.5") on first use and the table of the libpq functions pgtally calls
 * (typed from <libpq-fe.h>, so a mismatch is a compile error); telling a PostgreSQL target
 * (`postgres://`, `postgresql://`, a libpq keyword/value string) from an SQLite path; and the
 * redacted form of a target (its password removed) for every message, log line and setting.
 *
 * Why dlopen: libpq pulls in LDAP, GSSAPI, GnuTLS and more. The proxy linked against it would
 * map all of them even with an SQLite store, which costs megabytes of idle RSS per sidecar.
 *
 * Thread use: pq_load may be called from any thread (it runs once); the table it returns is
 * immutable afterwards. */
#ifndef PGTALLY_REPORT_STORE_PQ_H
#define PGTALLY_REPORT_STORE_PQ_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct PqApi {
    __typeof__(PQconnectdb) *connectdb;
    __typeof__(PQconnectdbParams) *connectdbParams;
    __typeof__(PQconninfoParse) *conninfoParse;
    __typeof__(PQconninfoFree) *conninfoFree;
    __typeof__(PQfinish) *finish;
    __typeof__(PQstatus) *status;
    __typeof__(PQerrorMessage) *errorMessage;
    __typeof__(PQexec) *exec;
    __typeof__(PQexecParams) *execParams;
    __typeof__(PQresultStatus) *resultStatus;
    __typeof__(PQresultErrorMessage) *resultErrorMessage;
    __typeof__(PQresultErrorField) *resultErrorField;
    __typeof__(PQclear) *clear;
    __typeof__(PQntuples) *ntuples;
    __typeof__(PQnfields) *nfields;
    __typeof__(PQgetvalue) *getvalue;
    __typeof__(PQgetisnull) *getisnull;
    __typeof__(PQgetlength) *getlength;
    __typeof__(PQcmdTuples) *cmdTuples;
    __typeof__(PQputCopyData) *putCopyData;
    __typeof__(PQputCopyEnd) *putCopyEnd;
    __typeof__(PQgetResult) *getResult;
    __typeof__(PQescapeIdentifier) *escapeIdentifier;
    __typeof__(PQfreemem) *freemem;
    __typeof__(PQdb) *db;
    __typeof__(PQhost) *host;
    __typeof__(PQport) *port;
    __typeof__(PQuser) *user;
    __typeof__(PQserverVersion) *serverVersion;
    __typeof__(PQsetNoticeProcessor) *setNoticeProcessor;
    __typeof__(PQsslInUse) *sslInUse;
} PqApi;

/* libpq's function table, loading the library on the first call. NULL when libpq.so.5 is
 * missing or lacks a function, with a message naming the package to install in err. */
const PqApi *pq_load(char *err, size_t err_len);

/* True for `postgres://`, `postgresql://` URLs and libpq keyword/value strings (anything that
 * contains '='); everything else is an SQLite path. */
bool pq_is_target(const char *db);

/* The marker that stands for a removed password, everywhere pgtally shows a target. */
#define PQ_REDACTED "REDACTED"

/* `text` with every password replaced by PQ_REDACTED, for messages, log lines, metrics and
 * the run's settings: a URL's userinfo password (scheme://user:PW@host), and the value of any
 * key ending in "password" (password, sslpassword) in a URL's query string or a keyword/value
 * string, quoted or bare, with or without spaces around '='. Any text is accepted (an SQLite
 * path comes back unchanged). Writes at most out_len bytes, always NUL-terminated when
 * out_len > 0; returns the full length, like snprintf, so a short buffer can be detected. */
size_t pq_redact(const char *text, char *out, size_t out_len);

/* pq_redact into a new string (free it); NULL when out of memory. */
char *pq_redact_dup(const char *text);

/* Connects to `target` with pgtally's defaults (connect_timeout 5 s, application name
 * "pgtally store"; anything the target sets wins). NULL on failure with "<target redacted>:
 * cannot connect: <libpq's reason on one line>" in err. The caller PQfinish-es the result. */
PGconn *pq_connect(const PqApi *pq, const char *target, char *err, size_t err_len);

/* "host:port/dbname" of a connection, for messages that must name the store. */
void pq_describe(const PqApi *pq, const PGconn *conn, char *out, size_t out_len);

#endif
