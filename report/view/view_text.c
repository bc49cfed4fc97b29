/* report/view/view_text — the terminal report: fits VIEW_TEXT_WIDTH columns, ASCII layout,
 * colour only when opts->color. Routes worst first, then top findings with their SQL and
 * the batched form; or one drill-down (route, request timeline, fingerprint). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report/suggest.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

#define ROUTE_W 34
#define SQL_INDENT 6
#define MAX_SQL_LINES 4
#define MAX_LISTED_REQUESTS 200
/* Buffers for short values from the file (fingerprints, command words, end reasons): up to
 * 63 characters, each up to 4 bytes once made safe. */
#define SAFE_SHORT 256

typedef struct Text {
    FILE *out;
    bool color;
} Text;

static const char *paint(const Text *t, const char *code)
{
    return t->color ? code : "";
}
#define BOLD "\033[1m"
#define DIM "\033[2m"
#define RED "\033[1;31m"
#define YELLOW "\033[33m"
#define CYAN "\033[36m"
#define GREEN "\033[32m"
#define RESET "\033[0m"

static void heading(const Text *t, const char *title)
{
    fprintf(t->out, "\n%s%s%s\n", paint(t, BOLD), title, paint(t, RESET));
}

typedef struct WrapCtx {
    const Text *t;
    size_t indent;
    const char *prefix; /* printed before the first line only, within the indent */
    bool first;
    bool plain; /* not SQL: no colour */
} WrapCtx;

static void emit_line(const char *line, size_t len, void *ctx)
{
    WrapCtx *w = ctx;
    const char *p = w->first && w->prefix ? w->prefix : "";
    fprintf(w->t->out, "%*s%s%s%.*s%s\n", (int)(w->indent - strlen(p)), "", p,
            w->plain ? "" : paint(w->t, CYAN), (int)len, line, w->plain ? "" : paint(w->t, RESET));
    w->first = false;
}

/* SQL wrapped under an indent, at most MAX_SQL_LINES lines. */
static void print_sql(const Text *t, const char *sql, size_t indent, const char *prefix)
{
    if (!sql || !*sql) {
        fprintf(t->out, "%*s(text not recorded)\n", (int)indent, "");
        return;
    }
    WrapCtx w = {t, indent, prefix, true, false};
    viewfmt_wrap(sql, VIEW_TEXT_WIDTH - indent, MAX_SQL_LINES, emit_line, &w);
}

static void print_suggestion(const Text *t, const char *kind, const char *sql, size_t indent)
{
    char batched[2048];
    if (strcmp(kind, "n_plus_one") != 0 ||
        !suggest_batched(sql, SUGGEST_ANY, batched, sizeof batched))
        return;
    fprintf(t->out, "%*s%sbatch it:%s\n", (int)indent, "", paint(t, GREEN), paint(t, RESET));
    print_sql(t, batched, indent + 2, NULL);
}

static const char *kind_label(const char *kind)
{
    if (strcmp(kind, "n_plus_one") == 0)
        return "N+1";
    if (strcmp(kind, "duplicate") == 0)
        return "duplicate";
    if (strcmp(kind, "overfetch") == 0)
        return "overfetch";
    return "finding"; /* a kind this version does not know; never printed raw */
}

static const char *route_name(const char *route)
{
    return viewfmt_route(route);
}

/* Runs listed in the header at most; `--runs` lists them all. */
#define HEADER_RUNS 10

static void print_run_line(const Text *t, const ReaderRun *r)
{
    char started[40], instance[64], why[200], reason[VIEW_TEXT_WIDTH * 4];
    viewfmt_time(started, sizeof started, r->started_us);
    viewfmt_one_line(instance, sizeof instance, *r->instance ? r->instance : "(unnamed)", 20);
    bool ok = reader_run_is_complete(r, why, sizeof why);
    viewfmt_one_line(reason, sizeof reason, why, 40);
    fprintf(t->out, "  run %-5lld %-20s started %s, %6" PRIu64 " requests  %s%s%s\n",
            (long long)r->id, instance, started, r->stored_requests, paint(t, ok ? GREEN : RED),
            ok ? "complete" : reason, paint(t, RESET));
}

/* One line per combined run, the incomplete ones first (they are what needs attention). */
static void print_runs(const Text *t, const ViewData *d)
{
    size_t shown = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < d->runs.n && shown < HEADER_RUNS; i++) {
            const ReaderRun *r = &d->runs.items[i];
            if (reader_run_is_complete(r, NULL, 0) != (pass == 1))
                continue;
            print_run_line(t, r);
            shown++;
        }
    }
    if (d->runs.n > shown)
        fprintf(t->out, "  ... and %zu more runs (pgtally report --runs --label ...)\n",
                d->runs.n - shown);
}

static void print_header(const Text *t, const ViewData *d, const ViewOptions *o)
{
    char started[40], took[16], db[16];
    viewfmt_time(started, sizeof started, d->run.started_us);
    char path[VIEW_TEXT_WIDTH * 4], version[SAFE_SHORT];
    viewfmt_one_line(path, sizeof path, reader_path(d->file), VIEW_TEXT_WIDTH - 6);
    char scope[300], scope_line[VIEW_TEXT_WIDTH * 4];
    view_scope_text(d, o, scope, sizeof scope);
    viewfmt_one_line(scope_line, sizeof scope_line, scope, VIEW_TEXT_WIDTH - 40);
    viewfmt_one_line(version, sizeof version, d->run.version, SAFE_SHORT / 4 - 1);
    fprintf(t->out, "%spgtally report%s: %s, started %s, pgtally %s\nfile: %s\n", paint(t, BOLD),
            paint(t, RESET), scope_line, started, version, path);
    uint64_t queries = 0, db_us = 0;
    for (size_t i = 0; i < d->requests.n; i++) {
        queries += d->requests.items[i].queries;
        db_us += d->requests.items[i].db_time_us;
    }
    viewfmt_duration(db, sizeof db, db_us);
    char why[sizeof d->completeness * 4];
    viewfmt_one_line(why, sizeof why, d->completeness, sizeof d->completeness - 1);
    bool complete = d->complete;
    if (complete) {
        fprintf(t->out, "%sdata complete%s; shown: %zu requests, %" PRIu64 " queries, DB time %s\n",
                paint(t, GREEN), paint(t, RESET), d->requests.n, queries, db);
    } else {
        fprintf(t->out, "%s!! DATA INCOMPLETE: %s.%s\n", paint(t, RED), why, paint(t, RESET));
        fprintf(t->out,
                "%s!! Figures below are lower bounds.%s %zu requests, %" PRIu64
                " queries, DB time %s shown\n",
                paint(t, RED), paint(t, RESET), d->requests.n, queries, db);
    }
    if (d->runs.n > 1)
        print_runs(t, d);
    if (d->run.ended_us > d->run.started_us) {
        viewfmt_duration(took, sizeof took, (uint64_t)(d->run.ended_us - d->run.started_us));
        fprintf(t->out, "run lasted %s; the proxy saw %" PRIu64 " statements", took,
                d->run.statements);
        if (d->run.untracked_statements)
            fprintf(t->out, " (%" PRIu64 " not attributed to a request)",
                    d->run.untracked_statements);
        fputc('\n', t->out);
    }
}

/* The routes table's name column: narrower than ROUTE_W so rows and bytes fit the width. */
#define ROUTES_NAME_W 24

static void print_routes(const Text *t, const ViewData *d)
{
    heading(t, "ROUTES, worst first (queries per request: p50 / p95 / max)");
    fprintf(t->out, "%-*s %6s %5s %5s %5s %5s %5s %9s %9s %7s %9s\n", ROUTES_NAME_W, "route",
            "reqs", "p50", "p95", "max", "dups", "N+1", "db time", "db p95", "rows", "bytes");
    for (size_t i = 0; i < d->routes.n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        char name[ROUTES_NAME_W * 4 + 1], db[16], p95[16], bytes[16];
        viewfmt_one_line(name, sizeof name, route_name(r->route), ROUTES_NAME_W);
        viewfmt_duration(db, sizeof db, r->db_time_us);
        viewfmt_duration(p95, sizeof p95, r->db_time_p95_us);
        viewfmt_bytes(bytes, sizeof bytes, r->bytes);
        /* Pad by characters, not bytes, so UTF-8 route names keep the columns aligned. */
        size_t chars = 0;
        for (const char *p = name; *p; p++)
            chars += ((unsigned char)*p & 0xc0) != 0x80;
        fprintf(t->out,
                "%s%*s %6" PRIu64 " %5u %5u %5u %5" PRIu64 " %s%5" PRIu64 "%s %9s %9s %7" PRIu64
                " %9s\n",
                name, (int)(ROUTES_NAME_W - chars), "", r->requests, r->queries_p50, r->queries_p95,
                r->queries_max, r->duplicates, r->n_plus_one ? paint(t, YELLOW) : "", r->n_plus_one,
                r->n_plus_one ? paint(t, RESET) : "", db, p95, r->rows, bytes);
    }
    if (d->routes.n == 0)
        fprintf(t->out, "(no requests recorded in this run)\n");
}

static void print_findings(const Text *t, const ViewData *d)
{
    heading(t, "TOP FINDINGS, every kind ranked by the DB time it stands for");
    if (d->findings.n == 0) {
        fprintf(t->out, "none: no N+1 queries, duplicates or over-fetching found\n");
        return;
    }
    for (size_t i = 0; i < d->findings.n; i++) {
        const ReaderTopFinding *f = &d->findings.items[i];
        char time[16], route[50 * 4 + 1], req[200 * 4 + 1], fp[SAFE_SHORT], why[512];
        viewfmt_duration(time, sizeof time, f->total_time_us);
        viewfmt_one_line(fp, sizeof fp, f->fingerprint, SAFE_SHORT / 4 - 1);
        viewfmt_one_line(route, sizeof route, route_name(f->worst_route), 50);
        viewfmt_one_line(req, sizeof req, f->worst_request, 200);
        viewfmt_finding_why(why, sizeof why, f);
        const char *unit = strcmp(f->kind, "n_plus_one") == 0  ? "calls"
                           : strcmp(f->kind, "duplicate") == 0 ? "repeats"
                                                               : "rows/bytes";
        fprintf(t->out,
                "%2zu. %s%-9s%s %" PRIu64 " %s in %" PRIu64 " request%s on %" PRIu64
                " route%s, DB time %s\n",
                i + 1, paint(t, YELLOW),
                f->is_write && strcmp(f->kind, "n_plus_one") == 0 ? "N+1 write"
                                                                  : kind_label(f->kind),
                paint(t, RESET), f->total_count, unit, f->requests, f->requests == 1 ? "" : "s",
                f->routes, f->routes == 1 ? "" : "s", time);
        WrapCtx w = {t, SQL_INDENT + 5, "why: ", true, true};
        viewfmt_wrap(why, VIEW_TEXT_WIDTH - SQL_INDENT - 5, 3, emit_line, &w);
        fprintf(t->out, "%*sworst: %s, request %s (%" PRIu64 ")\n", SQL_INDENT, "", route, req,
                f->max_count);
        print_sql(t, f->normalized, SQL_INDENT, NULL);
        print_suggestion(t, f->kind, f->normalized, SQL_INDENT);
        if (f->fingerprint[0])
            fprintf(t->out, "%*s%sfingerprint %s%s\n", SQL_INDENT, "", paint(t, DIM), fp,
                    paint(t, RESET));
    }
}

static void print_top_time(const Text *t, const ViewData *d)
{
    heading(t, "STATEMENTS BY DB TIME");
    size_t shown = d->by_time.n < 5 ? d->by_time.n : 5;
    for (size_t i = 0; i < shown; i++) {
        const ReaderFingerprint *f = &d->by_time.items[i];
        char time[16], sql[VIEW_TEXT_WIDTH * 4], fp[SAFE_SHORT], bytes[16];
        viewfmt_duration(time, sizeof time, f->total_time_us);
        viewfmt_bytes(bytes, sizeof bytes, f->bytes);
        viewfmt_one_line(sql, sizeof sql, *f->normalized ? f->normalized : "(text not recorded)",
                         VIEW_TEXT_WIDTH - 68);
        viewfmt_one_line(fp, sizeof fp, f->fingerprint, SAFE_SHORT / 4 - 1);
        fprintf(t->out, "%10s %7" PRIu64 " calls %8" PRIu64 " rows %9s  %s  %s%s%s\n", time,
                f->calls, f->rows, bytes, fp, paint(t, CYAN), sql, paint(t, RESET));
    }
    if (shown == 0)
        fprintf(t->out, "(no statements)\n");
}

/* Columns before the request id in the requests table. */
#define REQUEST_ROW_W 73

static void print_request_rows(const Text *t, const ViewData *d)
{
    heading(t, "REQUESTS, in start order (pgtally report --request # shows one)");
    fprintf(t->out, "%6s %-8s %7s %6s %5s %5s %9s %7s %9s  %s\n", "#", "start", "queries", "shapes",
            "dups", "N+1", "db time", "rows", "bytes", "request");
    size_t shown = d->requests.n < MAX_LISTED_REQUESTS ? d->requests.n : MAX_LISTED_REQUESTS;
    for (size_t i = 0; i < shown; i++) {
        const ReaderRequest *r = &d->requests.items[i];
        /* The whole id, last on the line (or alone on the next one when it does not fit),
         * so it can be copied back into --request; the # works too. */
        char id[200 * 4 + 1], start[40], db[16], bytes[16];
        viewfmt_one_line(id, sizeof id, r->id, 200);
        viewfmt_time(start, sizeof start, r->start_us);
        viewfmt_duration(db, sizeof db, r->db_time_us);
        viewfmt_bytes(bytes, sizeof bytes, r->bytes);
        size_t chars = 0;
        for (const char *p = id; *p; p++)
            chars += ((unsigned char)*p & 0xc0) != 0x80;
        const char *trunc = r->truncated ? " (trunc)" : "";
        bool fits = REQUEST_ROW_W + chars + strlen(trunc) <= VIEW_TEXT_WIDTH;
        /* HH:MM:SS of the UTC time: the date is in the header. */
        fprintf(t->out, "%6lld %-8.8s %7u %6u %5u %s%5u%s %9s %7" PRIu64 " %9s  %s%s\n",
                (long long)r->row, start + 11, r->queries, r->distinct_fingerprints, r->duplicates,
                r->n_plus_one ? paint(t, YELLOW) : "", r->n_plus_one,
                r->n_plus_one ? paint(t, RESET) : "", db, r->rows, bytes, fits ? id : "", trunc);
        if (!fits)
            fprintf(t->out, "%8s%s\n", "", id);
    }
    if (shown < d->requests.n)
        fprintf(t->out, "... and %zu more (use --format json for all)\n", d->requests.n - shown);
}

static void print_request(const Text *t, const ViewData *d)
{
    const ReaderRequest *r = &d->requests.items[0];
    char start[40], took[16], db[16], bytes[16], tags[VIEW_TEXT_WIDTH * 4];
    viewfmt_time(start, sizeof start, r->start_us);
    viewfmt_duration(took, sizeof took,
                     r->end_us > r->start_us ? (uint64_t)(r->end_us - r->start_us) : 0);
    viewfmt_duration(db, sizeof db, r->db_time_us);
    viewfmt_bytes(bytes, sizeof bytes, r->bytes);
    heading(t, "REQUEST");
    char line[VIEW_TEXT_WIDTH * 4];
    viewfmt_one_line(line, sizeof line, r->id, VIEW_TEXT_WIDTH * 2);
    fprintf(t->out, "%s  (row %lld)\n", line, (long long)r->row);
    viewfmt_one_line(line, sizeof line, r->key, VIEW_TEXT_WIDTH - 4);
    fprintf(t->out, "key %s\n", line);
    char reason[SAFE_SHORT];
    viewfmt_one_line(line, sizeof line, route_name(r->route), 50);
    viewfmt_one_line(reason, sizeof reason, r->end_reason, SAFE_SHORT / 4 - 1);
    fprintf(t->out, "route %s, connection %" PRIu64 ", ended by %s\n", line, r->conn_id, reason);
    fprintf(t->out, "started %s, took %s\n", start, took);
    fprintf(t->out, "%u queries, %u shapes, %u duplicates, %u errors, %u transactions\n",
            r->queries, r->distinct_fingerprints, r->duplicates, r->errors, r->transactions);
    fprintf(t->out, "DB time %s, %" PRIu64 " rows, %s\n", db, r->rows, bytes);
    viewfmt_one_line(tags, sizeof tags, r->tags_json, VIEW_TEXT_WIDTH - 5);
    fprintf(t->out, "tags %s\n", tags);
    if (r->truncated)
        fprintf(t->out, "%sa per-request bound was hit: figures are lower bounds%s\n",
                paint(t, RED), paint(t, RESET));

    if (r->n_findings) {
        heading(t, "FINDINGS");
        for (size_t i = 0; i < r->n_findings; i++) {
            const ReaderFinding *f = &r->findings[i];
            char fp[SAFE_SHORT];
            viewfmt_one_line(fp, sizeof fp, f->fingerprint[0] ? f->fingerprint : "(whole request)",
                             SAFE_SHORT / 4 - 1);
            const char *unit = strcmp(f->kind, "n_plus_one") == 0  ? "calls"
                               : strcmp(f->kind, "duplicate") == 0 ? "repeats"
                               : f->by_bytes                       ? "bytes"
                                                                   : "rows";
            fprintf(t->out, "%s%-9s%s %" PRIu64 " %s, %u distinct values%s  %s%s%s\n",
                    paint(t, YELLOW), kind_label(f->kind), paint(t, RESET), f->count, unit,
                    f->distinct_values, f->is_write ? ", writes" : "", paint(t, DIM), fp,
                    paint(t, RESET));
            if (f->fingerprint[0])
                print_sql(t, f->normalized, SQL_INDENT, NULL);
            print_suggestion(t, f->kind, f->normalized, SQL_INDENT);
        }
    }

    heading(t, "TIMELINE (consecutive repeats of one statement folded as xN)");
    size_t n_folds;
    ViewFold *folds = viewfmt_fold(&d->timeline, &n_folds);
    fprintf(t->out, "%5s %10s %10s %7s %5s  %s\n", "#", "at", "time", "rows", "", "statement");
    for (size_t i = 0; i < n_folds; i++) {
        const ReaderStatement *s = &d->timeline.items[folds[i].first];
        char at[16], dur[16], rep[24] = "", sql[VIEW_TEXT_WIDTH * 4];
        viewfmt_duration(at, sizeof at,
                         s->start_us > r->start_us ? (uint64_t)(s->start_us - r->start_us) : 0);
        viewfmt_duration(dur, sizeof dur, folds[i].duration_us);
        if (folds[i].count > 1)
            snprintf(rep, sizeof rep, "x%zu", folds[i].count);
        /* 43 columns of figures, then the SQL in what is left of the line. */
        size_t room = VIEW_TEXT_WIDTH - 43 - (s->setup ? 8 : 0) - (folds[i].errors ? 6 : 0);
        viewfmt_one_line(sql, sizeof sql, *s->normalized ? s->normalized : s->fingerprint, room);
        fprintf(t->out, "%5u %10s %10s %7" PRIu64 " %s%5s%s  %s%s%s%s%s\n", s->seq, at, dur,
                folds[i].rows, folds[i].count > 1 ? paint(t, YELLOW) : "", rep,
                folds[i].count > 1 ? paint(t, RESET) : "", s->setup ? "(setup) " : "",
                paint(t, CYAN), sql, paint(t, RESET), folds[i].errors ? " ERROR" : "");
    }
    if (n_folds == 0)
        fprintf(t->out, "(no statements recorded)\n");
    if (r->timeline_dropped)
        fprintf(t->out, "... %" PRIu64 " more statements not kept (timeline bound)\n",
                r->timeline_dropped);
    free(folds);
}

static void print_fingerprint(const Text *t, const ViewData *d, const ViewOptions *o)
{
    char scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    const ReaderFingerprint *f = &d->fingerprint.items[0];
    char time[16], bytes[16], seen[40], fp[SAFE_SHORT], command[SAFE_SHORT];
    viewfmt_duration(time, sizeof time, f->total_time_us);
    viewfmt_bytes(bytes, sizeof bytes, f->bytes);
    viewfmt_time(seen, sizeof seen, f->first_seen_us);
    /* The command is the statement's first token, as the client wrote it. */
    viewfmt_one_line(fp, sizeof fp, f->fingerprint, SAFE_SHORT / 4 - 1);
    viewfmt_one_line(command, sizeof command, *f->command ? f->command : "unknown command",
                     SAFE_SHORT / 4 - 1);
    heading(t, "FINGERPRINT");
    fprintf(t->out, "%s (%s), first seen %s\n", fp, command, seen);
    print_sql(t, f->normalized, 2, NULL);
    if (f->sample) {
        fprintf(t->out, "sample with values:\n");
        print_sql(t, f->sample, 2, NULL);
    }
    fprintf(t->out, "%" PRIu64 " calls in %" PRIu64 " requests of %s (max %u in one)\n", f->calls,
            f->requests, scope, f->max_calls);
    fprintf(t->out, "DB time %s, %" PRIu64 " rows, %s, %" PRIu64 " errors\n", time, f->rows, bytes,
            f->errors);
    print_suggestion(t, f->max_calls >= 2 ? "n_plus_one" : "", f->normalized, 2);
    heading(t, "WHERE IT RUNS");
    /* Each route's own rows and bytes: over-fetching shows where it happens. */
    fprintf(t->out, "%-*s %9s %9s %10s %9s %9s\n", ROUTE_W, "route", "requests", "calls", "db time",
            "rows", "bytes");
    for (size_t i = 0; i < f->n_routes; i++) {
        const ReaderFingerprintRoute *r = &f->routes[i];
        char name[ROUTE_W * 4 + 1];
        viewfmt_one_line(name, sizeof name, route_name(r->route), ROUTE_W);
        viewfmt_duration(time, sizeof time, r->total_time_us);
        viewfmt_bytes(bytes, sizeof bytes, r->bytes);
        size_t chars = 0;
        for (const char *p = name; *p; p++)
            chars += ((unsigned char)*p & 0xc0) != 0x80;
        fprintf(t->out, "%s%*s %9" PRIu64 " %9" PRIu64 " %10s %9" PRIu64 " %9s\n", name,
                (int)(ROUTE_W - chars), "", r->requests, r->calls, time, r->rows, bytes);
    }
    if (f->n_routes == 0)
        fprintf(t->out,
                d->runs.n > 1 ? "(not executed in these runs)\n" : "(not executed in this run)\n");
}

void view_text(FILE *out, const ViewData *d, const ViewOptions *o)
{
    Text t = {out, o->color};
    print_header(&t, d, o);
    if (o->request) {
        print_request(&t, d);
    } else if (o->fingerprint) {
        print_fingerprint(&t, d, o);
    } else if (o->route) {
        print_routes(&t, d);
        print_findings(&t, d);
        print_request_rows(&t, d);
    } else {
        print_routes(&t, d);
        print_findings(&t, d);
        print_top_time(&t, d);
    }
}
