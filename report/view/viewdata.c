/* report/view/viewdata — see viewdata.h. */
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

#include <stdio.h>
#include <string.h>

bool view_load(ReportFile *file, const ViewOptions *o, ViewData *d, char *err, size_t err_len)
{
    memset(d, 0, sizeof *d);
    d->file = file;
    size_t top = o->top ? o->top : VIEW_TOP_DEFAULT;
    ReaderScope scope = {.run_id = o->run_id, .label = o->label};
    if (!reader_select(file, &scope, err, err_len) ||
        !reader_scope_runs(file, &d->runs, err, err_len))
        goto fail;
    if (!reader_runs_combine(&d->runs, &d->run)) {
        snprintf(err, err_len, "%s: out of memory", reader_path(file));
        goto fail;
    }
    d->complete = reader_runs_complete(&d->runs, d->completeness, sizeof d->completeness);
    d->instances = reader_runs_count_instances(&d->runs);
    d->complete_runs = reader_runs_count_complete(&d->runs);
    if (!reader_routes(file, &d->routes, err, err_len))
        goto fail;
    if (o->route) {
        /* Keep the one route, so every format shows the same filtered table. */
        size_t k = 0;
        for (size_t i = 0; i < d->routes.n; i++)
            if (strcmp(d->routes.items[i].route, o->route) == 0)
                d->routes.items[k++] = d->routes.items[i];
        d->routes.n = k;
        if (k == 0) {
            snprintf(err, err_len, "%s: no requests on route \"%s\" in %s", reader_path(file),
                     viewfmt_route(o->route), reader_scope_name(file));
            goto fail;
        }
    }
    if (o->request) {
        if (!reader_find_request(file, o->request, &d->requests, err, err_len) ||
            !reader_timeline(file, d->requests.items[0].row, &d->timeline, err, err_len))
            goto fail;
    } else if (o->latest) {
        if (!reader_latest_requests(file, o->route, o->latest, &d->requests, err, err_len))
            goto fail;
    } else if (!reader_requests(file, o->route, &d->requests, err, err_len)) {
        goto fail;
    }
    const char *finding_route = o->request ? d->requests.items[0].route : o->route;
    if (!reader_top_findings(file, finding_route, top, &d->findings, err, err_len) ||
        !reader_top_fingerprints(file, READER_BY_CALLS, top, &d->by_calls, err, err_len) ||
        !reader_top_fingerprints(file, READER_BY_TIME, top, &d->by_time, err, err_len))
        goto fail;
    if (o->fingerprint && !reader_fingerprint(file, o->fingerprint, &d->fingerprint, err, err_len))
        goto fail;
    return true;
fail:
    view_data_free(d);
    return false;
}

void view_data_free(ViewData *d)
{
    reader_run_list_free(&d->runs);
    reader_run_free(&d->run);
    reader_route_list_free(&d->routes);
    reader_request_list_free(&d->requests);
    reader_top_finding_list_free(&d->findings);
    reader_fingerprint_list_free(&d->by_calls);
    reader_fingerprint_list_free(&d->by_time);
    reader_fingerprint_list_free(&d->fingerprint);
    reader_timeline_free(&d->timeline);
}

void view_scope_text(const ViewData *d, const ViewOptions *o, char *out, size_t cap)
{
    if (!o->label) {
        snprintf(out, cap, "run %lld", (long long)d->run.id);
        return;
    }
    snprintf(out, cap, "label \"%.200s\": %zu run%s on %zu instance%s, %zu complete", o->label,
             d->runs.n, d->runs.n == 1 ? "" : "s", d->instances, d->instances == 1 ? "" : "s",
             d->complete_runs);
}

void view_totals(const ViewData *d, ViewTotals *t)
{
    *t = (ViewTotals){0};
    for (size_t i = 0; i < d->routes.n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        t->requests += r->requests;
        t->queries += r->queries;
        t->db_time_us += r->db_time_us;
        t->n_plus_one += r->n_plus_one;
        t->rows += r->rows;
        t->bytes += r->bytes;
    }
}
