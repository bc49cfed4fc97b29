/* report/view/view_markdown — a summary fit for a pull-request comment (GitHub-flavoured
 * Markdown): data-completeness note first, a table of routes, then the top findings with
 * their SQL and the batched form in code blocks. Every value from the file is escaped. */
#include <inttypes.h>
#include <string.h>

#include "report/suggest.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

#define MD_MAX_ROUTES 20
#define MD_MAX_STATEMENTS 5
/* Characters of SQL in a table cell: the whole statement is in the findings' code blocks. */
#define MD_SQL_CELL 80

static void code_block(FILE *out, const char *sql)
{
    viewfmt_md_code_block(out, "sql", sql);
}

static const char *kind_title(const char *kind)
{
    if (strcmp(kind, "n_plus_one") == 0)
        return "N+1 query";
    if (strcmp(kind, "duplicate") == 0)
        return "Duplicate query";
    return "Over-fetching";
}

void view_markdown(FILE *out, const ViewData *d, const ViewOptions *o)
{
    char started[40], db[16];
    viewfmt_time(started, sizeof started, d->run.started_us);
    ViewTotals all;
    view_totals(d, &all);
    viewfmt_duration(db, sizeof db, all.db_time_us);

    fprintf(out, "### pgtally report");
    if (o->route) {
        fprintf(out, " for ");
        viewfmt_md_cell(out, viewfmt_route(o->route), true);
    }
    char scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    fputs("\n\n", out);
    if (o->label) {
        fputs("Label ", out);
        viewfmt_md_cell(out, o->label, true);
        fprintf(out, ": %zu run%s on %zu instance%s, %zu complete; first", d->runs.n,
                d->runs.n == 1 ? "" : "s", d->instances, d->instances == 1 ? "" : "s",
                d->complete_runs);
    } else {
        fprintf(out, "Run %lld,", (long long)d->run.id);
    }
    fprintf(out, " started %s, pgtally ", started);
    viewfmt_md_cell(out, d->run.version, false);
    fprintf(out,
            ": **%" PRIu64 " requests**, %" PRIu64 " queries, DB time %s, **%" PRIu64
            " N+1 finding%s**.\n\n",
            all.requests, all.queries, db, all.n_plus_one, all.n_plus_one == 1 ? "" : "s");
    if (d->complete)
        fprintf(out, "> Data complete: nothing was dropped.\n\n");
    else {
        fprintf(out, "> [!WARNING]\n> **Data incomplete**: ");
        viewfmt_md_cell(out, d->completeness, false);
        fprintf(out, ". The figures below are lower bounds.\n\n");
    }

    fprintf(out, "| Route | Requests | Queries/request p50 | p95 | max | Duplicates | N+1 | "
                 "DB time | Rows | Bytes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    size_t shown = d->routes.n < MD_MAX_ROUTES ? d->routes.n : MD_MAX_ROUTES;
    for (size_t i = 0; i < shown; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        viewfmt_duration(db, sizeof db, r->db_time_us);
        char bytes[16];
        viewfmt_bytes(bytes, sizeof bytes, r->bytes);
        fputs("| ", out);
        if (*r->route)
            viewfmt_md_cell(out, r->route, true);
        else
            fputs("*" VIEW_NO_ROUTE "*", out);
        fprintf(out,
                " | %" PRIu64 " | %u | %u | %u | %" PRIu64 " | %s%" PRIu64 "%s | %s | %" PRIu64
                " | %s |\n",
                r->requests, r->queries_p50, r->queries_p95, r->queries_max, r->duplicates,
                r->n_plus_one ? "**" : "", r->n_plus_one, r->n_plus_one ? "**" : "", db, r->rows,
                bytes);
    }
    if (shown < d->routes.n)
        fprintf(out, "\n*%zu more routes not shown.*\n", d->routes.n - shown);
    if (d->routes.n == 0)
        fprintf(out, "| *(no requests recorded)* | | | | | | | | | |\n");

    fprintf(out, "\n#### Top findings, ranked by the DB time each stands for\n\n");
    if (d->findings.n == 0)
        fprintf(out, "No N+1 queries, duplicates or over-fetching found.\n");
    for (size_t i = 0; i < d->findings.n; i++) {
        const ReaderTopFinding *f = &d->findings.items[i];
        viewfmt_duration(db, sizeof db, f->total_time_us);
        fprintf(out, "%zu. **%s**: %" PRIu64 " %s in %" PRIu64 " request%s (worst: ", i + 1,
                f->is_write && strcmp(f->kind, "n_plus_one") == 0 ? "N+1 writes"
                                                                  : kind_title(f->kind),
                f->total_count,
                strcmp(f->kind, "n_plus_one") == 0  ? "calls"
                : strcmp(f->kind, "duplicate") == 0 ? "repeated executions"
                                                    : "rows or bytes",
                f->requests, f->requests == 1 ? "" : "s");
        if (*f->worst_route)
            viewfmt_md_cell(out, f->worst_route, true);
        else
            fputs("*" VIEW_NO_ROUTE "*", out);
        fprintf(out, ", %" PRIu64 " in one request), DB time %s", f->max_count, db);
        if (f->fingerprint[0]) {
            fputs(", fingerprint ", out);
            viewfmt_md_cell(out, f->fingerprint, true);
        }
        char why[512];
        viewfmt_finding_why(why, sizeof why, f);
        fputs(".<br>*Why here:* ", out);
        viewfmt_md_cell(out, why, false);
        fprintf(out, "\n\n");
        if (*f->normalized)
            code_block(out, f->normalized);
        char batched[4096];
        if (strcmp(f->kind, "n_plus_one") == 0 &&
            suggest_batched(f->normalized, SUGGEST_ANY, batched, sizeof batched)) {
            fprintf(out, "\nBatched, one query for all values:\n\n");
            code_block(out, batched);
        }
        fputc('\n', out);
    }
    /* The statements that took the most DB time, with what they returned. */
    size_t n_stmts = d->by_time.n < MD_MAX_STATEMENTS ? d->by_time.n : MD_MAX_STATEMENTS;
    if (n_stmts) {
        fprintf(out, "#### Statements by DB time\n\n| Statement | Calls | DB time | Rows | Bytes "
                     "|\n|---|---:|---:|---:|---:|\n");
        for (size_t i = 0; i < n_stmts; i++) {
            const ReaderFingerprint *f = &d->by_time.items[i];
            char sql[MD_SQL_CELL * 4], bytes[16];
            viewfmt_one_line(sql, sizeof sql, *f->normalized ? f->normalized : f->fingerprint,
                             MD_SQL_CELL);
            viewfmt_duration(db, sizeof db, f->total_time_us);
            viewfmt_bytes(bytes, sizeof bytes, f->bytes);
            fputs("| ", out);
            viewfmt_md_cell(out, sql, true);
            fprintf(out, " | %" PRIu64 " | %s | %" PRIu64 " | %s |\n", f->calls, db, f->rows,
                    bytes);
        }
        fputc('\n', out);
    }
    fprintf(out,
            "<sub>`pgtally report --db %s --request ID` shows one request's "
            "statements in order.</sub>\n",
            "FILE");
}
