/* report/view/serve — the report as a small web app: `pgtally serve` and `pgtally proxy --serve`.
 *
 * Owns: an HTTP server (libmicrohttpd, on its own polling thread, so it never runs on the
 * proxy's event loop) that answers GET only, within a bound of open connections and a
 * per-connection timeout, optionally behind a token; the URLs (/, /route?name=R,
 * /request/ID, /fingerprint/F, /runs, /api/version, each taking ?run=N or ?label=L), and its
 * own read-only connection to the report store (SQLite, or a PostgreSQL store re-read only
 * when its version changed). The pages are drawn by report/view_html, the same code as the
 * static report. Everything here runs on the server's thread; serve_start and serve_stop
 * are called by the owner's thread. */
#ifndef PGTALLY_REPORT_SERVE_H
#define PGTALLY_REPORT_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Defaults for the bounds. */
#define SERVE_MAX_CONNECTIONS 256 /* open at once; beyond: refused at accept */
#define SERVE_TIMEOUT_S 10        /* a connection idle this long is closed */

typedef struct ServeOptions {
    const struct sockaddr *addr; /* where to listen (port 0: a free one) */
    socklen_t addr_len;
    const char *db;           /* the report store: an SQLite path or a PostgreSQL target */
    const char *db_schema;    /* PostgreSQL store: its schema (NULL: "pgtally") */
    const char *label;        /* pages show this label's runs by default; NULL: the latest run */
    const char *token;        /* when set, every request must carry it (see docs/serve.md) */
    unsigned max_connections; /* 0: SERVE_MAX_CONNECTIONS */
    unsigned timeout_s;       /* 0: SERVE_TIMEOUT_S */
    bool store_may_wait;      /* the store may not exist yet (a proxy starting): pages say so */
} ServeOptions;

typedef struct Serve Serve;

/* Checks the store can be read (unless store_may_wait) and the token is usable, then listens and
 * serves on a thread of its own. NULL with a message in err when the store or the address cannot be
 * used. The options' strings are copied. Signals: the thread is created with the caller's signal
 * mask. */
Serve *serve_start(const ServeOptions *options, char *err, size_t err_len);

/* The port bound (useful with port 0). */
int serve_port(const Serve *serve);

/* Stops serving, closes every connection and the store, frees everything. NULL is fine. */
void serve_stop(Serve *serve);

/* True when `token` may be used (printable ASCII without spaces, quotes, ';' or ',', 1 to 256
 * characters): it travels in a cookie and a header. */
bool serve_token_valid(const char *token);

#endif
