/* report/check/budget — `pgtally check`: a run of a report file against a budget.
 *
 * Every figure comes from report/reader, so `pgtally report` and `pgtally check` agree. The
 * baseline figure is a route's MEAN queries per request (total queries / requests): unlike
 * a median it moves when any request gets worse, which is what a ratchet must notice. */
#include "report/check/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/reader.h"

/* Means are ratios of integers; this keeps "10 -> 11 with 10%" from failing on rounding. */
#define GROWTH_EPSILON 1e-9

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

static bool push_violation(CheckResult *r, const CheckViolation *v)
{
    CheckViolation *grown = realloc(r->violations, (r->n_violations + 1) * sizeof *grown);
    if (!grown)
        return false;
    r->violations = grown;
    r->violations[r->n_violations++] = *v;
    r->routes[v->route_index].violations++;
    return true;
}

static void free_violation(CheckViolation *v)
{
    free(v->request_id);
    free(v->request_key);
    for (size_t i = 0; i < v->n_sql; i++) {
        free(v->sql[i].kind);
        free(v->sql[i].normalized);
    }
    free(v->sql);
}

void check_result_free(CheckResult *result)
{
    if (!result)
        return;
    free(result->db_path);
    free(result->budget_path);
    free(result->baseline_path);
    for (size_t i = 0; i < result->n_routes; i++)
        free(result->routes[i].route);
    free(result->routes);
    for (size_t i = 0; i < result->n_violations; i++)
        free_violation(&result->violations[i]);
    free(result->violations);
    memset(result, 0, sizeof *result);
}

bool check_result_passed(const CheckResult *result)
{
    return result->complete && !result->no_requests && result->n_violations == 0;
}

static size_t route_index(const CheckResult *r, const char *route)
{
    for (size_t i = 0; i < r->n_routes; i++)
        if (strcmp(r->routes[i].route, route) == 0)
            return i;
    return SIZE_MAX;
}

/* Copies the request's findings of `kind` that are not ignored into v->sql. */
static bool attach_sql(CheckViolation *v, const ReaderRequest *req, const char *kind,
                       const Budget *budget)
{
    for (size_t i = 0; i < req->n_findings; i++) {
        const ReaderFinding *f = &req->findings[i];
        if (strcmp(f->kind, kind) != 0 || budget_ignores_fingerprint(budget, f->fingerprint))
            continue;
        CheckSql *grown = realloc(v->sql, (v->n_sql + 1) * sizeof *grown);
        if (!grown)
            return false;
        v->sql = grown;
        CheckSql *s = &v->sql[v->n_sql++];
        *s = (CheckSql){.count = f->count, .distinct_values = f->distinct_values};
        memcpy(s->fingerprint, f->fingerprint, sizeof s->fingerprint);
        s->kind = dup_str(f->kind);
        s->normalized = dup_str(f->normalized);
        if (!s->kind || !s->normalized)
            return false;
    }
    return true;
}

/* The request's figure for `key`, after the [ignore] list. */
static uint64_t request_figure(const ReaderRequest *req, BudgetKey key, const Budget *budget,
                               uint64_t *ignored)
{
    switch (key) {
    case BUDGET_MAX_QUERIES:
        return req->queries;
    case BUDGET_MAX_DUPLICATES: {
        /* duplicate findings carry every repeat (the tally reports from one repeat on),
         * so an ignored fingerprint's repeats can be taken out of the request's figure. */
        uint64_t dup = req->duplicates;
        for (size_t i = 0; i < req->n_findings; i++) {
            const ReaderFinding *f = &req->findings[i];
            if (strcmp(f->kind, "duplicate") == 0 &&
                budget_ignores_fingerprint(budget, f->fingerprint)) {
                dup = dup > f->count ? dup - f->count : 0;
                ++*ignored;
            }
        }
        return dup;
    }
    case BUDGET_MAX_N_PLUS_ONE: {
        uint64_t n = 0;
        for (size_t i = 0; i < req->n_findings; i++) {
            const ReaderFinding *f = &req->findings[i];
            if (strcmp(f->kind, "n_plus_one") != 0)
                continue;
            if (budget_ignores_fingerprint(budget, f->fingerprint))
                ++*ignored;
            else
                n++;
        }
        return n;
    }
    case BUDGET_MAX_DB_TIME_MS:
        return req->db_time_us;
    case BUDGET_MAX_ROWS:
        return req->rows;
    case BUDGET_N_KEYS:
        break;
    }
    return 0;
}

static bool check_request(CheckResult *r, const Budget *budget, const ReaderRequest *req)
{
    size_t ri = route_index(r, req->route);
    if (ri == SIZE_MAX || r->routes[ri].ignored)
        return true;
    BudgetLimits limits = budget_limits_for(budget, req->route);
    for (int k = 0; k < BUDGET_N_KEYS; k++) {
        uint64_t ignored = 0;
        uint64_t figure = request_figure(req, (BudgetKey)k, budget, &ignored);
        if (k == BUDGET_MAX_N_PLUS_ONE || k == BUDGET_MAX_DUPLICATES)
            r->ignored_findings += ignored;
        const BudgetLimit *l = &limits.limit[k];
        if (l->state != BUDGET_SET)
            continue;
        /* max_db_time_ms compares in µs so 500.4 ms is over a 500 ms budget. */
        uint64_t limit_cmp = k == BUDGET_MAX_DB_TIME_MS ? l->value * 1000 : l->value;
        if (figure <= limit_cmp)
            continue;
        CheckViolation v = {
            .kind = CHECK_LIMIT,
            .route_index = ri,
            .key = (BudgetKey)k,
            .request_id = dup_str(req->id),
            .request_key = dup_str(req->key),
            .request_row = req->row,
            .figure = figure,
            .limit = l->value,
            .limit_line = l->line,
        };
        bool ok = v.request_id && v.request_key;
        if (ok && k == BUDGET_MAX_N_PLUS_ONE)
            ok = attach_sql(&v, req, "n_plus_one", budget);
        if (ok && k == BUDGET_MAX_DUPLICATES)
            ok = attach_sql(&v, req, "duplicate", budget);
        if (!ok || !push_violation(r, &v)) {
            free_violation(&v);
            return false;
        }
    }
    return true;
}

static bool load_routes(CheckResult *r, const Budget *budget, ReportFile *file, char *err,
                        size_t err_len)
{
    ReaderRouteList routes = {0};
    if (!reader_routes(file, &routes, err, err_len)) {
        reader_route_list_free(&routes);
        return false;
    }
    r->routes = calloc(routes.n ? routes.n : 1, sizeof *r->routes);
    if (!r->routes) {
        reader_route_list_free(&routes);
        snprintf(err, err_len, "%s: out of memory", r->db_path);
        return false;
    }
    for (size_t i = 0; i < routes.n; i++) {
        const ReaderRoute *src = &routes.items[i];
        CheckRoute *dst = &r->routes[r->n_routes];
        *dst = (CheckRoute){
            .route = dup_str(src->route),
            .ignored = budget_ignores_route(budget, src->route),
            .has_section = budget_has_route(budget, src->route),
            .requests = src->requests,
            .queries = src->queries,
            .queries_p50 = src->queries_p50,
            .queries_p95 = src->queries_p95,
            .queries_max = src->queries_max,
            .n_plus_one = src->n_plus_one,
            .duplicates = src->duplicates,
            .db_time_us = src->db_time_us,
        };
        if (!dst->route) {
            reader_route_list_free(&routes);
            snprintf(err, err_len, "%s: out of memory", r->db_path);
            return false;
        }
        r->n_routes++;
    }
    reader_route_list_free(&routes);
    return true;
}

static double route_mean(uint64_t queries, uint64_t requests)
{
    return requests ? (double)queries / (double)requests : 0.0;
}

static bool compare_baseline(CheckResult *r, const Budget *budget, const char *path,
                             const char *schema, char *err, size_t err_len)
{
    ReportFile *file = reader_open_store(path, schema, &(ReaderScope){0}, false, err, err_len);
    if (!file)
        return false;
    ReaderRun run = {0};
    ReaderRouteList routes = {0};
    bool ok = false;
    if (!reader_load_run(file, 0, &run, err, err_len))
        goto done;
    r->baseline_run_id = run.id;
    r->baseline_complete = reader_run_is_complete(&run, r->baseline_why, sizeof r->baseline_why);
    if (!reader_routes(file, &routes, err, err_len)) /* the latest run: the open scope */
        goto done;
    for (size_t i = 0; i < r->n_routes; i++) {
        CheckRoute *route = &r->routes[i];
        const ReaderRoute *base = NULL;
        for (size_t j = 0; j < routes.n && !base; j++)
            if (strcmp(routes.items[j].route, route->route) == 0)
                base = &routes.items[j];
        if (!base || base->requests == 0)
            continue; /* new in this run: the absolute budgets only */
        route->in_baseline = true;
        route->baseline_mean = route_mean(base->queries, base->requests);
        if (route->ignored)
            continue;
        BudgetGrowth g = budget_limits_for(budget, route->route).growth;
        if (g.state == BUDGET_OFF)
            continue;
        if (g.state == BUDGET_UNSET) /* --baseline without max_growth: no growth at all */
            g = (BudgetGrowth){.state = BUDGET_SET, .percent = false, .value = 0};
        double mean = route_mean(route->queries, route->requests);
        double allowed = g.percent ? route->baseline_mean * (1.0 + g.value / 100.0)
                                   : route->baseline_mean + g.value;
        if (mean <= allowed + GROWTH_EPSILON)
            continue;
        CheckViolation v = {
            .kind = CHECK_GROWTH,
            .route_index = i,
            .mean = mean,
            .baseline_mean = route->baseline_mean,
            .allowed = allowed,
            .growth = g,
            .limit_line = g.line,
        };
        if (!push_violation(r, &v)) {
            snprintf(err, err_len, "%s: out of memory", path);
            goto done;
        }
    }
    ok = true;
done:
    reader_route_list_free(&routes);
    reader_run_free(&run);
    reader_close(file);
    return ok;
}

bool budget_check(const Budget *budget, const char *db_path, const char *db_schema,
                  const ReaderScope *scope, const char *baseline_path, CheckResult *out, char *err,
                  size_t err_len)
{
    memset(out, 0, sizeof *out);
    out->db_path = dup_str(db_path);
    out->budget_path = dup_str(budget->path);
    out->baseline = baseline_path != NULL;
    out->baseline_path = baseline_path ? dup_str(baseline_path) : NULL;
    if (!out->db_path || !out->budget_path || (baseline_path && !out->baseline_path)) {
        snprintf(err, err_len, "%s: out of memory", db_path);
        return false;
    }
    ReportFile *file = reader_open_store(db_path, db_schema, scope, false, err, err_len);
    if (!file)
        return false;
    /* A PostgreSQL target is shown without its password from here on. */
    char *shown = dup_str(reader_path(file));
    if (shown) {
        free(out->db_path);
        out->db_path = shown;
    }
    ReaderRunList runs = {0};
    ReaderRun run = {0};
    ReaderRequestList requests = {0};
    bool ok = false;
    if (!reader_select(file, scope, err, err_len) || !reader_scope_runs(file, &runs, err, err_len))
        goto done;
    if (!reader_runs_combine(&runs, &run)) {
        snprintf(err, err_len, "%s: out of memory", db_path);
        goto done;
    }
    out->run_id = run.id;
    out->runs = runs.n;
    if (scope->label)
        snprintf(out->scope, sizeof out->scope, "label \"%.120s\" (%zu run%s on %zu instance%s)",
                 scope->label, runs.n, runs.n == 1 ? "" : "s", reader_runs_count_instances(&runs),
                 reader_runs_count_instances(&runs) == 1 ? "" : "s");
    else
        snprintf(out->scope, sizeof out->scope, "run %lld", (long long)run.id);
    out->complete = reader_runs_complete(&runs, out->incomplete_why, sizeof out->incomplete_why);
    out->requests = run.stored_requests;
    out->queries = run.stored_statements;
    out->no_requests = run.stored_requests == 0;
    if (!load_routes(out, budget, file, err, err_len))
        goto done;
    if (!reader_requests(file, NULL, &requests, err, err_len))
        goto done;
    /* Violations are grouped by route in the routes' order: one pass per route keeps the
     * request order within a route without a sort. */
    for (size_t ri = 0; ri < out->n_routes; ri++) {
        for (size_t i = 0; i < requests.n; i++) {
            if (strcmp(requests.items[i].route, out->routes[ri].route) != 0)
                continue;
            if (!check_request(out, budget, &requests.items[i])) {
                snprintf(err, err_len, "%s: out of memory", db_path);
                goto done;
            }
        }
    }
    if (baseline_path && !compare_baseline(out, budget, baseline_path, db_schema, err, err_len))
        goto done;
    ok = true;
done:
    reader_request_list_free(&requests);
    reader_run_free(&run);
    reader_run_list_free(&runs);
    reader_close(file);
    return ok;
}
