/* report/check_output — text, JUnit XML and Markdown for `pgtally check`.
 *
 * Route names and SQL come from the application (tags, statements): everything printed is
 * made safe for its medium here — control characters shown as \xNN (viewfmt.h), XML-escaped and
 * valid UTF-8 in JUnit (CI servers reject the whole file otherwise), Markdown table and code
 * delimiters neutralised. */
#include "report/check_output.h"
#include "report/viewfmt.h"

#include <inttypes.h>
#include <string.h>

/* Markdown is posted as a PR comment (GitHub caps comments at 65536 characters). */
#define MARKDOWN_MAX_VIOLATIONS 50
/* A terminal line per statement; the JUnit file keeps the full text. */
#define TEXT_SQL_MAX 400

static const char *route_label(const char *route)
{
    return *route ? route : "(unlabelled)";
}

/* Prints `s` on one terminal line, made safe as viewfmt.h says (control characters as \xNN,
 * bytes that are not UTF-8 as U+FFFD), at most `max` columns ("..." when cut). */
static void put_line_safe(FILE *out, const char *s, size_t max)
{
    char line[1024 * 4 + 1];
    viewfmt_one_line(line, sizeof line, s, max < 1024 ? max : 1024);
    fputs(line, out);
}

/* A Markdown code span (a table cell, a list item) of at most `max` characters: made safe,
 * fenced by more backticks than any run inside, `|` escaped so a table row stays whole. */
static void put_md_code(FILE *out, const char *s, size_t max)
{
    char line[1024 * 4 + 1];
    viewfmt_one_line(line, sizeof line, s, max < 1024 ? max : 1024);
    viewfmt_md_cell(out, line, true);
}

/* Plain Markdown text (not code): made safe, Markdown's own characters escaped. */
static void put_md_text(FILE *out, const char *s)
{
    viewfmt_md_cell(out, s, false);
}

/* ---- describing a violation ------------------------------------------------------------- */

static const char *figure_name(BudgetKey key)
{
    switch (key) {
    case BUDGET_MAX_QUERIES:
        return "queries";
    case BUDGET_MAX_DUPLICATES:
        return "duplicates";
    case BUDGET_MAX_N_PLUS_ONE:
        return "n_plus_one findings";
    case BUDGET_MAX_DB_TIME_MS:
        return "db_time_ms";
    case BUDGET_MAX_ROWS:
        return "rows";
    case BUDGET_N_KEYS:
        break;
    }
    return "?";
}

/* "queries 13 > max_queries 8" / "queries/request 13.00 > 11.00 allowed ..." */
static void describe(char *buf, size_t len, const CheckViolation *v, const CheckRoute *route)
{
    if (v->kind == CHECK_GROWTH) {
        char growth[64];
        if (v->growth.percent)
            snprintf(growth, sizeof growth, "%g%%", v->growth.value);
        else
            snprintf(growth, sizeof growth, "%g", v->growth.value);
        snprintf(buf, len,
                 "queries/request grew: %.2f (mean of %" PRIu64 " requests) > %.2f allowed "
                 "(baseline %.2f + max_growth %s)",
                 v->mean, route->requests, v->allowed, v->baseline_mean, growth);
        return;
    }
    if (v->key == BUDGET_MAX_DB_TIME_MS)
        snprintf(buf, len, "db_time_ms %.1f > max_db_time_ms %" PRIu64, (double)v->figure / 1000.0,
                 v->limit);
    else
        snprintf(buf, len, "%s %" PRIu64 " > %s %" PRIu64, figure_name(v->key), v->figure,
                 budget_key_name(v->key), v->limit);
}

/* "request abc" or "request abc (key conn:3#1)" when the key says more than the id. */
static void describe_request(char *buf, size_t len, const CheckViolation *v)
{
    if (strstr(v->request_key, v->request_id))
        snprintf(buf, len, "request %s", v->request_id);
    else
        snprintf(buf, len, "request %s (key %s)", v->request_id, v->request_key);
}

static void describe_sql(char *buf, size_t len, const CheckSql *s)
{
    if (strcmp(s->kind, "n_plus_one") == 0)
        snprintf(buf, len, "n_plus_one: %" PRIu64 " calls, %" PRIu32 " distinct values [%s]",
                 s->count, s->distinct_values, s->fingerprint);
    else
        snprintf(buf, len, "duplicate: %" PRIu64 " repeated executions [%s]", s->count,
                 s->fingerprint);
}

static size_t routes_failing(const CheckResult *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_routes; i++)
        n += r->routes[i].violations > 0;
    return n;
}

/* ---- text --------------------------------------------------------------------------------- */

static void text_incomplete(FILE *out, const CheckResult *r)
{
    if (!r->complete) {
        fputs("!!! INCOMPLETE DATA: ", out);
        put_line_safe(out, r->scope, 300);
        fputs(" of ", out);
        put_line_safe(out, r->db_path, 1024);
        fputs(": ", out);
        put_line_safe(out, r->incomplete_why, 1024);
        fputs(".\n!!! pgtally check refuses to pass on incomplete data (stop the proxy with "
              "SIGTERM and let it exit).\n",
              out);
    }
    if (r->no_requests) {
        fputs("!!! NO DATA: ", out);
        put_line_safe(out, r->scope, 300);
        fputs(" of ", out);
        put_line_safe(out, r->db_path, 1024);
        fputs(" recorded no requests: are the app's connections going through the proxy?\n", out);
    }
}

bool check_output_text(FILE *out, const CheckResult *r)
{
    fputs("pgtally check: ", out);
    put_line_safe(out, r->scope, 300);
    fputs(" of ", out);
    put_line_safe(out, r->db_path, 1024);
    fprintf(out, " (%" PRIu64 " requests, %" PRIu64 " queries) against ", r->requests, r->queries);
    put_line_safe(out, r->budget_path, 1024);
    fputc('\n', out);
    if (r->baseline) {
        fprintf(out, "baseline: run %" PRId64 " of ", r->baseline_run_id);
        put_line_safe(out, r->baseline_path, 1024);
        fputs(" (routes compared by mean queries per request)", out);
        if (!r->baseline_complete) {
            fputs("; warning: baseline data incomplete: ", out);
            put_line_safe(out, r->baseline_why, 1024);
        }
        fputc('\n', out);
    }
    text_incomplete(out, r);
    char what[512], req[512];
    for (size_t i = 0; i < r->n_violations; i++) {
        const CheckViolation *v = &r->violations[i];
        const CheckRoute *route = &r->routes[v->route_index];
        describe(what, sizeof what, v, route);
        fputs("FAIL ", out);
        put_line_safe(out, route_label(route->route), 200);
        if (v->kind == CHECK_LIMIT) {
            describe_request(req, sizeof req, v);
            fputs("  ", out);
            put_line_safe(out, req, 300);
        }
        fputs(": ", out);
        put_line_safe(out, what, sizeof what);
        if (v->limit_line) {
            fputs(" (", out);
            put_line_safe(out, r->budget_path, 1024);
            fprintf(out, ":%d)", v->limit_line);
        }
        fputc('\n', out);
        for (size_t j = 0; j < v->n_sql; j++) {
            describe_sql(what, sizeof what, &v->sql[j]);
            fputs("       ", out);
            put_line_safe(out, what, sizeof what);
            fputs("\n         ", out);
            put_line_safe(
                out, *v->sql[j].normalized ? v->sql[j].normalized : "(SQL text not in the report)",
                TEXT_SQL_MAX);
            fputc('\n', out);
        }
    }
    fprintf(out, "routes:\n");
    int width = 0;
    for (size_t i = 0; i < r->n_routes; i++) {
        int w = (int)strlen(route_label(r->routes[i].route));
        width = w > width ? w : width;
    }
    width = width > 40 ? 40 : width;
    for (size_t i = 0; i < r->n_routes; i++) {
        const CheckRoute *route = &r->routes[i];
        fprintf(out, "  %-4s  ", route->ignored ? "skip" : route->violations ? "FAIL" : "ok");
        put_line_safe(out, route_label(route->route), 200);
        int pad = width - (int)strlen(route_label(route->route));
        fprintf(out, "%*s", pad > 0 ? pad : 0, "");
        if (route->ignored) {
            fputs("  (ignored by the budget)\n", out);
            continue;
        }
        fprintf(out,
                "  %" PRIu64 " requests, %.1f queries/request (p50 %" PRIu32 ", max %" PRIu32 ")",
                route->requests,
                route->requests ? (double)route->queries / (double)route->requests : 0.0,
                route->queries_p50, route->queries_max);
        if (r->baseline) {
            if (route->in_baseline)
                fprintf(out, ", baseline %.1f", route->baseline_mean);
            else
                fputs(", new (no baseline)", out);
        }
        if (route->violations)
            fprintf(out, ", %zu violation%s", route->violations, route->violations == 1 ? "" : "s");
        fputc('\n', out);
    }
    if (r->ignored_findings)
        fprintf(out, "ignored: %" PRIu64 " findings on fingerprints in [ignore]\n",
                r->ignored_findings);
    text_incomplete(out, r);
    if (check_result_passed(r))
        fprintf(out, "result: PASS: %zu routes within budget\n", r->n_routes);
    else if (r->n_violations)
        fprintf(out, "result: FAIL: %zu violation%s in %zu of %zu routes%s\n", r->n_violations,
                r->n_violations == 1 ? "" : "s", routes_failing(r), r->n_routes,
                r->complete && !r->no_requests ? "" : "; and the data is incomplete");
    else
        fprintf(out, "result: FAIL: incomplete data (no budget violations in what was "
                     "recorded)\n");
    return !ferror(out);
}

/* ---- JUnit XML ---------------------------------------------------------------------------- */

static void junit_failure_text(FILE *out, const CheckResult *r, size_t route_index)
{
    char what[512], req[512];
    for (size_t i = 0; i < r->n_violations; i++) {
        const CheckViolation *v = &r->violations[i];
        if (v->route_index != route_index)
            continue;
        describe(what, sizeof what, v, &r->routes[route_index]);
        if (v->kind == CHECK_LIMIT) {
            describe_request(req, sizeof req, v);
            viewfmt_xml(out, req);
            fputs(": ", out);
        }
        viewfmt_xml(out, what);
        if (v->limit_line) {
            fprintf(out, " (");
            viewfmt_xml(out, r->budget_path);
            fprintf(out, ":%d)", v->limit_line);
        }
        fputc('\n', out);
        for (size_t j = 0; j < v->n_sql; j++) {
            describe_sql(what, sizeof what, &v->sql[j]);
            fputs("    ", out);
            viewfmt_xml(out, what);
            fputs("\n      ", out);
            viewfmt_xml(out, v->sql[j].normalized);
            fputc('\n', out);
        }
    }
}

bool check_output_junit(FILE *out, const CheckResult *r)
{
    size_t tests = r->n_routes + 1, failures = routes_failing(r);
    size_t skipped = 0;
    for (size_t i = 0; i < r->n_routes; i++)
        skipped += r->routes[i].ignored;
    bool data_ok = r->complete && !r->no_requests;
    if (!data_ok)
        failures++;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(out,
            "<testsuites name=\"pgtally check\" tests=\"%zu\" failures=\"%zu\" "
            "errors=\"0\">\n",
            tests, failures);
    fprintf(out, "  <testsuite name=\"pgtally check: ");
    viewfmt_xml(out, r->db_path);
    fputc(' ', out);
    viewfmt_xml(out, r->scope); /* "run 3", or the label and its runs */
    fprintf(out, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\">\n", tests,
            failures, skipped);
    fprintf(out, "    <testcase classname=\"pgtally.run\" name=\"data complete\">");
    if (!data_ok) {
        fprintf(out, "\n      <failure type=\"incomplete\" message=\"");
        viewfmt_xml(out, r->no_requests ? "no requests recorded" : r->incomplete_why);
        fprintf(out, "\">pgtally check refuses to pass on incomplete data: ");
        viewfmt_xml(out, r->no_requests ? "no requests recorded" : r->incomplete_why);
        fprintf(out, "</failure>\n    ");
    }
    fprintf(out, "</testcase>\n");
    for (size_t i = 0; i < r->n_routes; i++) {
        const CheckRoute *route = &r->routes[i];
        fprintf(out, "    <testcase classname=\"pgtally.route\" name=\"");
        viewfmt_xml(out, route_label(route->route));
        fprintf(out, "\">");
        if (route->ignored) {
            fprintf(out, "<skipped message=\"ignored by the budget\"/>");
        } else if (route->violations) {
            fprintf(out, "\n      <failure type=\"budget\" message=\"%zu budget violation%s\">",
                    route->violations, route->violations == 1 ? "" : "s");
            junit_failure_text(out, r, i);
            fprintf(out, "</failure>\n    ");
        }
        fprintf(out, "</testcase>\n");
    }
    fprintf(out, "  </testsuite>\n</testsuites>\n");
    return !ferror(out);
}

/* ---- Markdown ----------------------------------------------------------------------------- */

static void md_text(FILE *out, const char *s)
{
    /* Outside code spans only routes appear; keep them literal inside a code span. */
    put_md_code(out, s, 200);
}

bool check_output_markdown(FILE *out, const CheckResult *r)
{
    bool passed = check_result_passed(r);
    fprintf(out, "### pgtally check: %s\n\n",
            passed            ? "✅ within budget"
            : r->n_violations ? "❌ over budget"
                              : "❌ incomplete data");
    if (r->runs > 1) {
        md_text(out, r->scope);
        fputs(" of ", out);
    } else {
        fprintf(out, "Run %" PRId64 " of ", r->run_id);
    }
    md_text(out, r->db_path);
    fprintf(out, ": %" PRIu64 " requests, %" PRIu64 " queries; budget ", r->requests, r->queries);
    md_text(out, r->budget_path);
    if (r->baseline) {
        fprintf(out, "; baseline run %" PRId64 " of ", r->baseline_run_id);
        md_text(out, r->baseline_path);
    }
    fprintf(out, ".\n\n");
    if (!r->complete) {
        fputs("> **Incomplete data:** ", out);
        put_md_text(out, r->incomplete_why);
        fputs(". pgtally check refuses to pass on incomplete data.\n\n", out);
    }
    if (r->no_requests)
        fprintf(out, "> **No requests recorded.** Are the app's connections going through the "
                     "proxy?\n\n");
    fprintf(out,
            "| Route | Requests | Queries/request (mean) | p95 | Max | N+1 | Duplicates |%s "
            "Status |\n",
            r->baseline ? " Baseline |" : "");
    fprintf(out, "|---|---:|---:|---:|---:|---:|---:|%s---|\n", r->baseline ? "---:|" : "");
    for (size_t i = 0; i < r->n_routes; i++) {
        const CheckRoute *c = &r->routes[i];
        fputs("| ", out);
        md_text(out, route_label(c->route));
        fprintf(out,
                " | %" PRIu64 " | %.1f | %" PRIu32 " | %" PRIu32 " | %" PRIu64 " | %" PRIu64 " |",
                c->requests, c->requests ? (double)c->queries / (double)c->requests : 0.0,
                c->queries_p95, c->queries_max, c->n_plus_one, c->duplicates);
        if (r->baseline) {
            if (c->in_baseline)
                fprintf(out, " %.1f |", c->baseline_mean);
            else
                fprintf(out, " new |");
        }
        fprintf(out, " %s |\n", c->ignored ? "ignored" : c->violations ? "❌ over budget" : "✅");
    }
    if (r->n_violations) {
        fprintf(out, "\n<details><summary>%zu violation%s</summary>\n\n", r->n_violations,
                r->n_violations == 1 ? "" : "s");
        char what[512], req[512];
        size_t shown = 0;
        for (size_t i = 0; i < r->n_violations && shown < MARKDOWN_MAX_VIOLATIONS; i++, shown++) {
            const CheckViolation *v = &r->violations[i];
            const CheckRoute *route = &r->routes[v->route_index];
            describe(what, sizeof what, v, route);
            fputs("- ", out);
            md_text(out, route_label(route->route));
            if (v->kind == CHECK_LIMIT) {
                describe_request(req, sizeof req, v);
                fputc(' ', out);
                put_md_code(out, req, 200);
            }
            fputs(": ", out);
            put_md_text(out, what);
            fputc('\n', out);
            for (size_t j = 0; j < v->n_sql; j++) {
                describe_sql(what, sizeof what, &v->sql[j]);
                fputs("  - ", out);
                put_md_text(out, what);
                fputs(": ", out);
                put_md_code(out, v->sql[j].normalized, 300);
                fputc('\n', out);
            }
        }
        if (shown < r->n_violations)
            fprintf(out, "- ... and %zu more (see the job log)\n", r->n_violations - shown);
        fprintf(out, "\n</details>\n");
    }
    return !ferror(out);
}
