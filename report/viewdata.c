/* report/viewdata — see viewdata.h. */
#include "report/viewdata.h"

#include <stdio.h>
#include <string.h>

bool view_load(ReportFile *file, const ViewOptions *o, ViewData *d, char *err, size_t err_len)
{
    memset(d, 0, sizeof *d);
    d->file = file;
    size_t top = o->top ? o->top : VIEW_TOP_DEFAULT;
    if (!reader_load_run(file, o->run_id, &d->run, err, err_len))
        return false;
    int64_t run = d->run.id;
    if (!reader_routes(file, run, &d->routes, err, err_len))
        goto fail;
    if (o->route) {
        /* Keep the one route, so every format shows the same filtered table. */
        size_t k = 0;
        for (size_t i = 0; i < d->routes.n; i++)
            if (strcmp(d->routes.items[i].route, o->route) == 0)
                d->routes.items[k++] = d->routes.items[i];
        d->routes.n = k;
        if (k == 0) {
            snprintf(err, err_len, "%s: no requests on route \"%s\" in run %lld", reader_path(file),
                     o->route, (long long)run);
            goto fail;
        }
    }
    if (o->request) {
        if (!reader_find_request(file, run, o->request, &d->requests, err, err_len) ||
            !reader_timeline(file, d->requests.items[0].row, &d->timeline, err, err_len))
            goto fail;
    } else if (!reader_requests(file, run, o->route, &d->requests, err, err_len)) {
        goto fail;
    }
    const char *finding_route = o->request ? d->requests.items[0].route : o->route;
    if (!reader_top_findings(file, run, finding_route, top, &d->findings, err, err_len) ||
        !reader_top_fingerprints(file, run, READER_BY_CALLS, top, &d->by_calls, err, err_len) ||
        !reader_top_fingerprints(file, run, READER_BY_TIME, top, &d->by_time, err, err_len))
        goto fail;
    if (o->fingerprint &&
        !reader_fingerprint(file, run, o->fingerprint, &d->fingerprint, err, err_len))
        goto fail;
    return true;
fail:
    view_data_free(d);
    return false;
}

void view_data_free(ViewData *d)
{
    reader_run_free(&d->run);
    reader_route_list_free(&d->routes);
    reader_request_list_free(&d->requests);
    reader_top_finding_list_free(&d->findings);
    reader_fingerprint_list_free(&d->by_calls);
    reader_fingerprint_list_free(&d->by_time);
    reader_fingerprint_list_free(&d->fingerprint);
    reader_timeline_free(&d->timeline);
}
