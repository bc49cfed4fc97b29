/* report/view/serve — see serve.h. */
#include "report/view/serve.h"

#include <errno.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "report/pgtool.h"
#include "report/reader.h"
#include "report/view/mhd_dl.h"
#include "report/view/view_html.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

#define VERSION_LEN 96

struct Serve {
    struct MHD_Daemon *daemon;
    char *db, *schema, *label, *token;
    bool pg;
    /* Only the server's thread touches what follows. */
    sqlite3 *version_db; /* SQLite: the cheap "what changed" query */
    PgTool tool;         /* PostgreSQL: the same query on the store */
    bool tool_open;
    ReportFile *file;               /* the store as the pages read it */
    char file_version[VERSION_LEN]; /* PostgreSQL: the version its snapshot was taken at */
    int64_t file_run;               /* ... and the scope of that snapshot */
    char *file_label;
};

bool serve_token_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= ' ' || c >= 127 || c == '"' || c == ';' || c == ',' || c == '\\')
            return false;
    }
    return true;
}

/* Compares in time that depends only on the given length, so the token cannot be guessed a
 * character at a time from response times. */
static bool token_equal(const char *want, const char *given)
{
    size_t wn = strlen(want), gn = strlen(given);
    unsigned char diff = wn != gn;
    for (size_t i = 0; i < gn; i++)
        diff |= (unsigned char)(given[i] ^ want[i % wn]);
    return diff == 0;
}

/* ---- the store's version: what the live poll compares ------------------------------------ */

static const char sqlite_version_sql[] =
    "SELECT (SELECT coalesce(max(id), 0) FROM requests) || '.' || count(*) || '.' ||"
    " coalesce(sum(ended_us), 0) || '.' || coalesce(sum(flushed_us), 0) || '.' ||"
    " coalesce(sum(complete), 0) FROM runs";

static const char pg_version_sql[] =
    "SELECT (SELECT coalesce(max(id), 0) FROM \"%1$s\".requests)::text || '.' || count(*) || '.'"
    " || coalesce(sum(ended_us), 0) || '.' || coalesce(sum(flushed_us), 0) || '.' ||"
    " coalesce(sum(complete), 0) FROM \"%1$s\".runs";

/* The store's version: the latest request id and the runs' counts, ends and completeness. It
 * changes when a request is stored or a run starts, flushes or ends, and only then. */
static bool store_version(Serve *s, char out[VERSION_LEN], char *err, size_t err_len)
{
    if (!s->pg) {
        if (!s->version_db &&
            sqlite3_open_v2(s->db, &s->version_db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            snprintf(err, err_len, "%s: cannot open the report: %s", s->db,
                     sqlite3_errmsg(s->version_db));
            sqlite3_close(s->version_db);
            s->version_db = NULL;
            return false;
        }
        sqlite3_busy_timeout(s->version_db, 2000);
        sqlite3_stmt *st = NULL;
        bool ok =
            sqlite3_prepare_v2(s->version_db, sqlite_version_sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW;
        if (ok)
            snprintf(out, VERSION_LEN, "%s", (const char *)sqlite3_column_text(st, 0));
        else
            snprintf(err, err_len, "%s: cannot read the report: %s", s->db,
                     sqlite3_errmsg(s->version_db));
        sqlite3_finalize(st);
        return ok;
    }
    if (!s->tool_open) {
        if (!pgtool_open(&s->tool, s->db, s->schema, false, err, err_len))
            return false;
        s->tool_open = true;
    }
    char sql[sizeof pg_version_sql + 2 * sizeof s->tool.schema];
    snprintf(sql, sizeof sql, pg_version_sql, s->tool.schema);
    PGresult *r = pgtool_exec(&s->tool, sql, 0, NULL, "version", err, err_len);
    if (!r) {
        /* A lost connection is made again at the next poll. */
        pgtool_close(&s->tool);
        s->tool_open = false;
        return false;
    }
    snprintf(out, VERSION_LEN, "%s", s->tool.pq->getvalue(r, 0, 0));
    s->tool.pq->clear(r);
    return true;
}

/* The store for a page of `scope`: SQLite is read live; a PostgreSQL store is copied again
 * only when its version or the scope changed since the last copy. */
static ReportFile *store_file(Serve *s, const ReaderScope *scope, const char *version, char *err,
                              size_t err_len)
{
    if (!s->pg) {
        if (!s->file)
            s->file = reader_open(s->db, err, err_len);
        return s->file;
    }
    bool same_scope = s->file && s->file_run == scope->run_id &&
                      ((!scope->label && !s->file_label) ||
                       (scope->label && s->file_label && strcmp(scope->label, s->file_label) == 0));
    if (same_scope && strcmp(version, s->file_version) == 0)
        return s->file;
    reader_close(s->file);
    free(s->file_label);
    s->file_label = NULL;
    s->file = reader_open_store(s->db, s->schema, scope, true, err, err_len);
    if (!s->file)
        return NULL;
    snprintf(s->file_version, sizeof s->file_version, "%s", version);
    s->file_run = scope->run_id;
    s->file_label = scope->label ? strdup(scope->label) : NULL;
    return s->file;
}

/* ---- responses ---------------------------------------------------------------------------- */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *type,
                                 char *body, size_t len, const char *nonce, const char *cookie)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    char csp[256];
    snprintf(csp, sizeof csp,
             "default-src 'none'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
             "script-src 'nonce-%s'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             nonce ? nonce : "none");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    if (cookie)
        MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    return body ? send_body(c, status, "text/plain; charset=utf-8", body, strlen(body), NULL, NULL)
                : MHD_NO;
}

/* What one page request asked for. */
typedef struct PageRequest {
    Serve *s;
    struct MHD_Connection *c;
    ReaderScope scope;
    char *scope_q; /* the scope as a query string for links, "" for the default */
    char version[VERSION_LEN];
    char nonce[33];
    const char *cookie;
} PageRequest;

static void new_nonce(char out[33])
{
    unsigned char raw[16] = {0};
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* Never short for 16 bytes once the pool is ready; a fixed nonce is still a valid one. */
        memset(raw, 0x5a, sizeof raw);
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Renders one page: a status, then the page body written by `draw` between the frame. */
static enum MHD_Result send_page(PageRequest *q, unsigned status, const char *title,
                                 void (*draw)(HtmlPage *, void *), void *ctx)
{
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out)
        return MHD_NO;
    HtmlPage page = {.out = out,
                     .served = true,
                     .scope_q = q->scope_q,
                     .version = q->version,
                     .nonce = q->nonce};
    view_html_begin(&page, title);
    draw(&page, ctx);
    view_html_end(&page);
    if (fclose(out) != 0) {
        free(body);
        return MHD_NO;
    }
    return send_body(q->c, status, "text/html; charset=utf-8", body, len, q->nonce, q->cookie);
}

typedef struct Message {
    const char *heading, *text;
} Message;

static void draw_message(HtmlPage *p, void *ctx)
{
    const Message *m = ctx;
    view_html_message(p, m->heading, m->text);
}

static enum MHD_Result send_message(PageRequest *q, unsigned status, const char *heading,
                                    const char *text)
{
    Message m = {heading, text};
    return send_page(q, status, heading, draw_message, &m);
}

typedef struct ViewPage {
    const ViewData *d;
    const ViewOptions *o;
    enum { PAGE_INDEX, PAGE_ROUTE, PAGE_REQUEST, PAGE_FINGERPRINT } kind;
} ViewPage;

static void draw_view(HtmlPage *p, void *ctx)
{
    const ViewPage *v = ctx;
    switch (v->kind) {
    case PAGE_INDEX:
        view_html_index(p, v->d, v->o);
        break;
    case PAGE_ROUTE:
        view_html_route(p, v->d, v->o);
        break;
    case PAGE_REQUEST:
        view_html_request(p, v->d);
        break;
    case PAGE_FINGERPRINT:
        view_html_fingerprint(p, v->d);
        break;
    }
}

typedef struct RunsPage {
    const ReportFile *file;
    const ReaderRunList *runs;
} RunsPage;

static void draw_runs(HtmlPage *p, void *ctx)
{
    const RunsPage *r = ctx;
    view_html_runs(p, r->file, r->runs);
}

/* A page drawn from the report: loads what `vo` asks for, 404 when it is not there. */
static enum MHD_Result view_page(PageRequest *q, ReportFile *file, ViewOptions *vo, int kind,
                                 const char *title)
{
    ViewData d;
    char err[512];
    if (!view_load(file, vo, &d, err, sizeof err))
        return send_message(q, MHD_HTTP_NOT_FOUND, "Not found", err);
    ViewPage v = {.d = &d, .o = vo, .kind = kind};
    enum MHD_Result r = send_page(q, MHD_HTTP_OK, title, draw_view, &v);
    view_data_free(&d);
    return r;
}

static bool parse_run(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1)
        return false;
    *out = v;
    return true;
}

static enum MHD_Result dispatch(PageRequest *q, const char *url)
{
    Serve *s = q->s;
    char err[512];
    if (!store_version(s, q->version, err, sizeof err)) {
        if (strcmp(url, "/api/version") == 0)
            return send_text(q->c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
        return send_message(q, MHD_HTTP_SERVICE_UNAVAILABLE, "Report store unavailable", err);
    }
    if (strcmp(url, "/api/version") == 0) {
        char *body = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&body, &len);
        if (!out)
            return MHD_NO;
        fputs("{\"version\":", out);
        viewfmt_json_str(out, q->version);
        fputs("}\n", out);
        if (fclose(out) != 0) {
            free(body);
            return MHD_NO;
        }
        return send_body(q->c, MHD_HTTP_OK, "application/json", body, len, NULL, NULL);
    }
    bool runs_page = strcmp(url, "/runs") == 0;
    ReaderScope all = {0};
    ReportFile *file = store_file(s, runs_page ? &all : &q->scope, q->version, err, sizeof err);
    if (!file)
        return send_message(q, MHD_HTTP_SERVICE_UNAVAILABLE, "Report store unavailable", err);
    ViewOptions vo = {
        .run_id = q->scope.run_id, .label = q->scope.label, .latest = VIEW_HTML_LATEST};
    if (strcmp(url, "/") == 0)
        return view_page(q, file, &vo, PAGE_INDEX, "pgtally");
    if (strcmp(url, "/route") == 0) {
        /* The pages link the unlabelled requests as VIEW_NO_ROUTE, the name every output uses. */
        vo.route =
            viewfmt_route_arg(MHD_lookup_connection_value(q->c, MHD_GET_ARGUMENT_KIND, "name"));
        if (!vo.route)
            return send_message(q, MHD_HTTP_NOT_FOUND, "Not found", "give the route: ?name=ROUTE");
        return view_page(q, file, &vo, PAGE_ROUTE, "pgtally: route");
    }
    if (strncmp(url, "/request/", 9) == 0 && url[9]) {
        vo.request = url + 9;
        return view_page(q, file, &vo, PAGE_REQUEST, "pgtally: request");
    }
    if (strncmp(url, "/fingerprint/", 13) == 0 && url[13]) {
        vo.fingerprint = url + 13;
        return view_page(q, file, &vo, PAGE_FINGERPRINT, "pgtally: statement");
    }
    if (runs_page) {
        ReaderRunList runs;
        if (!view_load_runs(file, NULL, &runs, err, sizeof err))
            return send_message(q, MHD_HTTP_NOT_FOUND, "Not found", err);
        RunsPage r = {file, &runs};
        enum MHD_Result ret = send_page(q, MHD_HTTP_OK, "pgtally: runs", draw_runs, &r);
        reader_run_list_free(&runs);
        return ret;
    }
    return send_message(q, MHD_HTTP_NOT_FOUND, "Not found", "pgtally serves no such page.");
}

/* The token from ?token=, a "pgtally_token" cookie or "Authorization: Bearer"; sets *from_query
 * when it came in the URL (the answer then sets the cookie, so links need not carry it). */
static const char *given_token(struct MHD_Connection *c, bool *from_query)
{
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    *from_query = t != NULL;
    if (t)
        return t;
    t = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "pgtally_token");
    if (t)
        return t;
    t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (t && strncmp(t, "Bearer ", 7) == 0)
        return t + 7;
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    Serve *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "pgtally serves GET only.\n");
    char cookie[320];
    PageRequest q = {.s = s, .c = c};
    if (s->token) {
        bool from_query;
        const char *t = given_token(c, &from_query);
        if (!t || !token_equal(s->token, t))
            return send_text(c, MHD_HTTP_UNAUTHORIZED,
                             "pgtally: this server needs its token (?token=, the pgtally_token "
                             "cookie, or Authorization: Bearer).\n");
        if (from_query) {
            snprintf(cookie, sizeof cookie, "pgtally_token=%s; Path=/; HttpOnly; SameSite=Strict",
                     s->token);
            q.cookie = cookie;
        }
    }
    new_nonce(q.nonce);
    const char *run = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "run");
    const char *label = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "label");
    size_t qlen = 0;
    FILE *qs = open_memstream(&q.scope_q, &qlen);
    if (!qs)
        return MHD_NO;
    if (run) {
        if (!parse_run(run, &q.scope.run_id)) {
            fclose(qs);
            free(q.scope_q);
            return send_text(c, MHD_HTTP_NOT_FOUND, "pgtally: ?run= takes a run number.\n");
        }
        fprintf(qs, "run=%lld", (long long)q.scope.run_id);
    } else if (label) {
        q.scope.label = label;
        fputs("label=", qs);
        viewfmt_url(qs, label);
    } else {
        q.scope.label = s->label; /* the default scope: links need not say it */
    }
    if (fclose(qs) != 0) {
        free(q.scope_q);
        return MHD_NO;
    }
    enum MHD_Result r = dispatch(&q, url);
    free(q.scope_q);
    return r;
}

/* ---- start and stop ----------------------------------------------------------------------- */

Serve *serve_start(const ServeOptions *o, char *err, size_t err_len)
{
    if (o->token && !serve_token_valid(o->token)) {
        snprintf(err, err_len,
                 "--serve-token: 1 to 256 printable ASCII characters, without spaces, quotes, "
                 "backslashes, ';' or ','");
        return NULL;
    }
    Serve *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->pg = pq_is_target(o->db);
    if (!(s->db = strdup(o->db)) || (o->db_schema && !(s->schema = strdup(o->db_schema))) ||
        (o->label && !(s->label = strdup(o->label))) ||
        (o->token && !(s->token = strdup(o->token))))
        goto oom;
    /* The store must be readable now: a typo in --db fails at start, not at the first page. */
    char version[VERSION_LEN];
    if (!o->store_may_wait && !store_version(s, version, err, err_len))
        goto fail;
    if (!s->pg && !o->store_may_wait) {
        s->file = reader_open(s->db, err, err_len);
        if (!s->file)
            goto fail;
    }
    if (!mhd_dl_load(err, err_len))
        goto fail;
    unsigned limit = o->max_connections ? o->max_connections : SERVE_MAX_CONNECTIONS;
    unsigned timeout = o->timeout_s ? o->timeout_s : SERVE_TIMEOUT_S;
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request,
                         s, MHD_OPTION_SOCK_ADDR, o->addr, MHD_OPTION_CONNECTION_LIMIT, limit,
                         MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)64 * 1024, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, err_len, "cannot listen there (address in use, or not this host's)");
        goto fail;
    }
    return s;
oom:
    snprintf(err, err_len, "out of memory");
fail:
    serve_stop(s);
    return NULL;
}

int serve_port(const Serve *s)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void serve_stop(Serve *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon); /* joins the thread: nothing below is in use any more */
    sqlite3_close(s->version_db);
    if (s->tool_open)
        pgtool_close(&s->tool);
    reader_close(s->file);
    free(s->file_label);
    free(s->db);
    free(s->schema);
    free(s->label);
    free(s->token);
    free(s);
}
