/* report/check/check_output — text, JUnit XML and Markdown for `pgtally check`.
 *
 * Route names and SQL come from the application (tags, statements): everything printed is
 * made safe for its medium here — control characters shown as \xNN (viewfmt.h), XML-escaped and
 * valid UTF-8 in JUnit (CI servers reject the whole file otherwise), Markdown table and code
 * delimiters neutralised. */
#include "report/check/check_output.h"
#include "report/view/viewfmt.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Markdown is posted as a PR comment (GitHub caps comments at 65536 characters): at most
 * this many (route, limit) groups. */
#define MARKDOWN_MAX_VIOLATIONS 30
/* A terminal line per statement; the JUnit file keeps the full text. */
#define TEXT_SQL_MAX 400

/* The name `pgtally report` shows, and accepts back with --route. */
static const char *route_label(const char *route)
{
    return viewfmt_route(route);
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

/* ---- grouping ----------------------------------------------------------------------------- */

/* The violations of one limit on one route, shown once: "5 of 5 requests of /api/orders",
 * then the worst request. Requests of a route tend to break the same limit the same way, so
 * one line per request buries the few distinct problems. */
typedef struct CheckGroup {
    size_t route_index;
    CheckViolationKind kind;
    BudgetKey key;
    size_t first;    /* its first violation */
    size_t requests; /* violations (requests over the limit) */
    size_t worst;    /* the violation with the highest figure (the first of equals) */
    uint64_t min_figure;
} CheckGroup;

/* One offending statement of a group, over its requests. */
typedef struct GroupSql {
    const CheckSql *sql; /* the first seen */
    size_t requests;
    uint64_t min_count, max_count;
} GroupSql;

static bool same_group(const CheckGroup *g, const CheckViolation *v)
{
    return g->route_index == v->route_index && g->kind == v->kind &&
           (v->kind == CHECK_GROWTH || g->key == v->key);
}

/* Groups r->violations (ordered by route, then request) by route and limit, in order of
 * first appearance. NULL (with *n = 0) when there are none or memory ran out. */
static CheckGroup *group_violations(const CheckResult *r, size_t *n)
{
    *n = 0;
    CheckGroup *groups = r->n_violations ? malloc(r->n_violations * sizeof *groups) : NULL;
    if (!groups)
        return NULL;
    size_t route_start = 0; /* first group of the current route */
    for (size_t i = 0; i < r->n_violations; i++) {
        const CheckViolation *v = &r->violations[i];
        if (*n && groups[*n - 1].route_index != v->route_index)
            route_start = *n;
        CheckGroup *g = NULL;
        for (size_t j = route_start; j < *n && !g; j++)
            if (same_group(&groups[j], v))
                g = &groups[j];
        if (!g) {
            g = &groups[(*n)++];
            *g = (CheckGroup){v->route_index, v->kind, v->key, i, 0, i, v->figure};
        }
        g->requests++;
        if (v->figure > r->violations[g->worst].figure)
            g->worst = i;
        if (v->figure < g->min_figure)
            g->min_figure = v->figure;
    }
    return groups;
}

/* The distinct offending statements of a group, in order of first appearance: a malloc'd
 * array (*n entries), NULL when none or out of memory. */
static GroupSql *group_sql(const CheckResult *r, const CheckGroup *g, size_t *n)
{
    *n = 0;
    size_t cap = 0;
    GroupSql *out = NULL;
    for (size_t i = g->first; i < r->n_violations; i++) {
        const CheckViolation *v = &r->violations[i];
        if (v->route_index != g->route_index)
            break;
        if (!same_group(g, v))
            continue;
        for (size_t k = 0; k < v->n_sql; k++) {
            const CheckSql *s = &v->sql[k];
            GroupSql *e = NULL;
            for (size_t j = 0; j < *n && !e; j++)
                if (strcmp(out[j].sql->fingerprint, s->fingerprint) == 0 &&
                    strcmp(out[j].sql->kind, s->kind) == 0)
                    e = &out[j];
            if (!e) {
                if (*n == cap) {
                    size_t ncap = cap ? cap * 2 : 4;
                    GroupSql *grown = realloc(out, ncap * sizeof *out);
                    if (!grown)
                        return out; /* what fitted */
                    out = grown;
                    cap = ncap;
                }
                e = &out[(*n)++];
                *e = (GroupSql){s, 0, s->count, s->count};
            }
            e->requests++;
            e->min_count = s->count < e->min_count ? s->count : e->min_count;
            e->max_count = s->count > e->max_count ? s->count : e->max_count;
        }
    }
    return out;
}

/* The table a statement reads or writes, for a short name ("customers"); "" when not found. */
static void sql_table(const char *sql, char *out, size_t cap)
{
    static const char *const words[] = {" from ", "update ", "insert into ", "delete from "};
    out[0] = '\0';
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        const char *p = strcasestr(sql, words[w]);
        if (p && (!best || p < best)) {
            best = p;
            best_len = strlen(words[w]);
        }
    }
    if (!best)
        return;
    const char *t = best + best_len;
    size_t n = 0;
    while (t[n] && (isalnum((unsigned char)t[n]) || t[n] == '_' || t[n] == '.' || t[n] == '"') &&
           n + 1 < cap)
        n++;
    memcpy(out, t, n);
    out[n] = '\0';
}

/* "N+1 on customers (10 calls)", "duplicates on customers (6), settings (1)": what the
 * group's statements did, at most three named. */
static void describe_group_sql(char *buf, size_t len, const GroupSql *sql, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 3 && used < len; i++) {
        char table[64], count[48];
        sql_table(sql[i].sql->normalized, table, sizeof table);
        bool n1 = strcmp(sql[i].sql->kind, "n_plus_one") == 0;
        if (sql[i].min_count == sql[i].max_count)
            snprintf(count, sizeof count, "%" PRIu64, sql[i].max_count);
        else
            snprintf(count, sizeof count, "%" PRIu64 "-%" PRIu64, sql[i].min_count,
                     sql[i].max_count);
        used += (size_t)snprintf(buf + used, len - used, "%s%s%s (%s %s)",
                                 i ? ", " : (n1 ? "N+1" : "duplicates"), i ? "" : " on ",
                                 table[0] ? table : sql[i].sql->fingerprint, count,
                                 n1 ? (sql[i].max_count == 1 ? "call" : "calls")
                                    : (sql[i].max_count == 1 ? "repeat" : "repeats"));
    }
    if (n > 3 && used < len)
        snprintf(buf + used, len - used, " and %zu more", n - 3);
}

/* "5 of 5 requests of": the head of a group's line (the route follows). */
static void describe_group_head(char *buf, size_t len, const CheckResult *r, const CheckGroup *g)
{
    const CheckRoute *route = &r->routes[g->route_index];
    if (g->kind == CHECK_GROWTH)
        snprintf(buf, len, "%s", "");
    else
        snprintf(buf, len, "%zu of %" PRIu64 " request%s of", g->requests, route->requests,
                 route->requests == 1 ? "" : "s");
}

/* The limit broken, with the figures' range: "queries 12-13 > max_queries 10". */
static void describe_group_limit(char *buf, size_t len, const CheckResult *r, const CheckGroup *g)
{
    const CheckViolation *w = &r->violations[g->worst];
    if (g->kind == CHECK_GROWTH || g->min_figure == w->figure) {
        describe(buf, len, w, &r->routes[g->route_index]);
        return;
    }
    if (w->key == BUDGET_MAX_DB_TIME_MS)
        snprintf(buf, len, "db_time_ms %.1f-%.1f > max_db_time_ms %" PRIu64,
                 (double)g->min_figure / 1000.0, (double)w->figure / 1000.0, w->limit);
    else
        snprintf(buf, len, "%s %" PRIu64 "-%" PRIu64 " > %s %" PRIu64, figure_name(w->key),
                 g->min_figure, w->figure, budget_key_name(w->key), w->limit);
}

static const char *group_key_name(const CheckGroup *g)
{
    return g->kind == CHECK_GROWTH ? "max_growth" : budget_key_name(g->key);
}

/* How many (route, limit) groups the violations form. */
static size_t limits_broken(const CheckResult *r)
{
    size_t n;
    free(group_violations(r, &n));
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

/* FAIL 5 of 5 requests of /api/orders: N+1 on customers (10 calls): n_plus_one findings 1 >
 * max_n_plus_one 0 (budget.ini:5), then the worst request and each statement. */
static void text_group(FILE *out, const CheckResult *r, const CheckGroup *g)
{
    const CheckViolation *w = &r->violations[g->worst];
    char head[128], what[512], req[512];
    size_t n_sql;
    GroupSql *sql = group_sql(r, g, &n_sql);
    describe_group_head(head, sizeof head, r, g);
    fputs("FAIL ", out);
    if (head[0]) {
        put_line_safe(out, head, sizeof head);
        fputc(' ', out);
    }
    put_line_safe(out, route_label(r->routes[g->route_index].route), 200);
    fputs(": ", out);
    if (n_sql) {
        describe_group_sql(what, sizeof what, sql, n_sql);
        put_line_safe(out, what, sizeof what);
        fputs(": ", out);
    }
    describe_group_limit(what, sizeof what, r, g);
    put_line_safe(out, what, sizeof what);
    if (w->limit_line) {
        fputs(" (", out);
        put_line_safe(out, r->budget_path, 1024);
        fprintf(out, ":%d)", w->limit_line);
    }
    fputc('\n', out);
    if (w->kind == CHECK_LIMIT) {
        describe_request(req, sizeof req, w);
        describe(what, sizeof what, w, &r->routes[g->route_index]);
        fputs("       worst: ", out);
        put_line_safe(out, req, 300);
        fputs(": ", out);
        put_line_safe(out, what, sizeof what);
        fputc('\n', out);
    }
    for (size_t j = 0; j < n_sql; j++) {
        describe_sql(what, sizeof what, sql[j].sql);
        fputs("       ", out);
        put_line_safe(out, what, sizeof what);
        fprintf(out, ", in %zu request%s\n         ", sql[j].requests,
                sql[j].requests == 1 ? "" : "s");
        put_line_safe(
            out, *sql[j].sql->normalized ? sql[j].sql->normalized : "(SQL text not in the report)",
            TEXT_SQL_MAX);
        fputc('\n', out);
    }
    free(sql);
}

/* A group's text (as text_group prints it) in a malloc'd string; NULL when out of memory. */
static char *group_text(const CheckResult *r, const CheckGroup *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NULL;
    text_group(m, r, g);
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
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
    size_t n_groups;
    CheckGroup *groups = group_violations(r, &n_groups);
    if (r->n_violations && !groups)
        return false;
    for (size_t i = 0; i < n_groups; i++)
        text_group(out, r, &groups[i]);
    free(groups);
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
        fprintf(out, "result: FAIL: %zu violation%s of %zu limit%s in %zu of %zu routes%s\n",
                r->n_violations, r->n_violations == 1 ? "" : "s", limits_broken(r),
                limits_broken(r) == 1 ? "" : "s", routes_failing(r), r->n_routes,
                r->complete && !r->no_requests ? "" : "; and the data is incomplete");
    else
        fprintf(out, "result: FAIL: incomplete data (no budget violations in what was "
                     "recorded)\n");
    return !ferror(out);
}

/* ---- JUnit XML ---------------------------------------------------------------------------- */

bool check_output_junit(FILE *out, const CheckResult *r)
{
    size_t n_groups;
    CheckGroup *groups = group_violations(r, &n_groups);
    if (r->n_violations && !groups)
        return false;
    /* One testcase per route within budget (or skipped), one per limit a route broke. */
    size_t tests = 1 + n_groups, failures = n_groups, skipped = 0;
    for (size_t i = 0; i < r->n_routes; i++) {
        skipped += r->routes[i].ignored;
        tests += r->routes[i].violations == 0;
    }
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
    bool ok = true;
    for (size_t i = 0; i < r->n_routes; i++) {
        const CheckRoute *route = &r->routes[i];
        if (!route->violations) {
            fprintf(out, "    <testcase classname=\"pgtally.route\" name=\"");
            viewfmt_xml(out, route_label(route->route));
            fprintf(out, "\">%s</testcase>\n",
                    route->ignored ? "<skipped message=\"ignored by the budget\"/>" : "");
            continue;
        }
        for (size_t k = 0; k < n_groups; k++) {
            const CheckGroup *g = &groups[k];
            if (g->route_index != i)
                continue;
            char head[128], limit[512];
            describe_group_head(head, sizeof head, r, g);
            describe_group_limit(limit, sizeof limit, r, g);
            fprintf(out, "    <testcase classname=\"pgtally.route\" name=\"");
            viewfmt_xml(out, route_label(route->route));
            fputs(": ", out);
            viewfmt_xml(out, group_key_name(g));
            fprintf(out, "\">\n      <failure type=\"budget\" message=\"");
            if (head[0]) {
                viewfmt_xml(out, head);
                fputc(' ', out);
            }
            viewfmt_xml(out, route_label(route->route));
            fputs(": ", out);
            viewfmt_xml(out, limit);
            fputs("\">", out);
            char *text = group_text(r, g);
            if (text)
                viewfmt_xml(out, text);
            else
                ok = false;
            free(text);
            fprintf(out, "</failure>\n    </testcase>\n");
        }
    }
    fprintf(out, "  </testsuite>\n</testsuites>\n");
    free(groups);
    return ok && !ferror(out);
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
        size_t n_groups;
        CheckGroup *groups = group_violations(r, &n_groups);
        if (!groups)
            return false;
        fprintf(out, "\n<details><summary>%zu violation%s of %zu limit%s</summary>\n\n",
                r->n_violations, r->n_violations == 1 ? "" : "s", n_groups,
                n_groups == 1 ? "" : "s");
        bool ok = true;
        size_t shown = n_groups < MARKDOWN_MAX_VIOLATIONS ? n_groups : MARKDOWN_MAX_VIOLATIONS;
        for (size_t i = 0; i < shown; i++) {
            const CheckGroup *g = &groups[i];
            char head[128], limit[512];
            describe_group_head(head, sizeof head, r, g);
            describe_group_limit(limit, sizeof limit, r, g);
            fputs("- ", out);
            if (head[0]) {
                put_md_text(out, head);
                fputc(' ', out);
            }
            md_text(out, route_label(r->routes[g->route_index].route));
            fputs(": ", out);
            put_md_text(out, limit);
            fputs("\n\n", out);
            char *text = group_text(r, g);
            if (text)
                viewfmt_md_code_block(out, "text", text);
            else
                ok = false;
            free(text);
            fputc('\n', out);
        }
        if (shown < n_groups)
            fprintf(out, "- ... and %zu more (see the job log)\n", n_groups - shown);
        fprintf(out, "\n</details>\n");
        free(groups);
        if (!ok)
            return false;
    }
    return !ferror(out);
}
