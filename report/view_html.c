/* report/view_html — one self-contained HTML file: inline CSS, charts drawn here as inline
 * SVG, no scripts, fonts or network. Charts: queries per request by route, top statements by
 * calls and by DB time, and the statement timeline of the busiest requests. Every value from
 * the report file goes through viewfmt_xml. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report/suggest.h"
#include "report/viewdata.h"
#include "report/viewfmt.h"

#define CHART_W 960
#define LABEL_W 300
#define BAR_H 18
#define BAR_GAP 6
#define MAX_CHART_ROUTES 15
#define TIMELINE_REQUESTS 5

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;"
    "max-width:1040px;color:#1d2327;background:#fff;padding:0 16px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;"
    "border-bottom:1px solid #dde1e5;padding-bottom:4px}"
    ".meta{color:#5b6570}.ok{background:#e7f6ec;border:1px solid #9ad3ab;padding:8px 12px;"
    "border-radius:6px}.bad{background:#fdecea;border:1px solid #e8a09a;padding:8px 12px;"
    "border-radius:6px;font-weight:600;color:#8a1c12}"
    "table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;"
    "border-bottom:1px solid #eceff1;text-align:right}th{background:#f6f8fa}"
    "td.l,th.l{text-align:left}pre{background:#f6f8fa;padding:8px 10px;border-radius:6px;"
    "white-space:pre-wrap;word-break:break-word;font:12.5px/1.4 ui-monospace,Menlo,Consolas,"
    "monospace;margin:4px 0}.kind{display:inline-block;padding:1px 7px;border-radius:10px;"
    "background:#fff3cd;color:#7a5a00;font-weight:600;font-size:12px}"
    ".n1{background:#fde2e1;color:#9b1c1c}.fp{font-family:ui-monospace,monospace;"
    "color:#5b6570;font-size:12px}svg text{font:12px system-ui,sans-serif;fill:#1d2327}"
    "svg .v{fill:#5b6570}.legend span{display:inline-block;width:12px;height:12px;"
    "margin:0 4px 0 12px;vertical-align:-2px}";

static void h(FILE *out, const char *s)
{
    viewfmt_xml(out, s);
}

/* A stable colour per fingerprint, so one statement looks the same in every chart. */
static unsigned hue_of(const char *fingerprint)
{
    unsigned v = (unsigned)strtoul(
        (char[5]){fingerprint[0], fingerprint[1], fingerprint[2], fingerprint[3], 0}, NULL, 16);
    return v % 360;
}

static void one_line(FILE *out, const char *s, size_t width)
{
    char buf[1024];
    viewfmt_one_line(buf, sizeof buf, s, width);
    h(out, buf);
}

static void header(FILE *out, const ViewData *d, const ViewOptions *o)
{
    char started[40], db[16];
    viewfmt_time(started, sizeof started, d->run.started_us);
    uint64_t queries = 0, db_us = 0;
    for (size_t i = 0; i < d->requests.n; i++) {
        queries += d->requests.items[i].queries;
        db_us += d->requests.items[i].db_time_us;
    }
    viewfmt_duration(db, sizeof db, db_us);
    fprintf(out, "<h1>pgtally report");
    if (o->route) {
        fputs(": ", out);
        h(out, o->route);
    }
    fprintf(out, "</h1>\n<p class=\"meta\">");
    h(out, reader_path(d->file));
    char scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    fputs(" &middot; ", out);
    h(out, scope);
    fprintf(out, " &middot; started %s &middot; pgtally ", started);
    h(out, d->run.version);
    fprintf(out, "<br>%zu requests, %" PRIu64 " queries, DB time %s</p>\n", d->requests.n, queries,
            db);
    if (d->complete) {
        fprintf(out, "<p class=\"ok\">Data complete: nothing was dropped.</p>\n");
    } else {
        fprintf(out, "<p class=\"bad\">Data incomplete: ");
        h(out, d->completeness);
        fprintf(out, ". Figures below are lower bounds.</p>\n");
    }
    if (d->runs.n > 1) {
        fprintf(out, "<table class=\"runs\"><tr><th>run</th><th>instance</th><th>started</th>"
                     "<th>requests</th><th>data</th></tr>\n");
        for (size_t i = 0; i < d->runs.n; i++) {
            const ReaderRun *r = &d->runs.items[i];
            char when[40], why[200];
            viewfmt_time(when, sizeof when, r->started_us);
            bool ok = reader_run_is_complete(r, why, sizeof why);
            fprintf(out, "<tr><td>%lld</td><td>", (long long)r->id);
            h(out, r->instance);
            fprintf(out, "</td><td>%s</td><td>%" PRIu64 "</td><td class=\"%s\">", when,
                    r->stored_requests, ok ? "ok" : "bad");
            h(out, ok ? "complete" : why);
            fputs("</td></tr>\n", out);
        }
        fputs("</table>\n", out);
    }
}

static void route_chart(FILE *out, const ViewData *d)
{
    size_t n = d->routes.n < MAX_CHART_ROUTES ? d->routes.n : MAX_CHART_ROUTES;
    fprintf(out, "<h2>Queries per request, by route</h2>\n");
    if (n == 0) {
        fprintf(out, "<p>No requests recorded.</p>\n");
        return;
    }
    uint32_t max = 1;
    for (size_t i = 0; i < n; i++)
        if (d->routes.items[i].queries_max > max)
            max = d->routes.items[i].queries_max;
    int height = (int)(n * (BAR_H + BAR_GAP)) + 24;
    double scale = (double)(CHART_W - LABEL_W - 110) / max;
    fprintf(out,
            "<p class=\"legend\"><span style=\"background:#1f6feb\"></span>p50"
            "<span style=\"background:#79a8f0\"></span>p95"
            "<span style=\"background:#c8dbf8\"></span>max</p>\n"
            "<svg id=\"chart-routes\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"queries per request "
            "by route\">\n",
            CHART_W, height, CHART_W, height);
    for (size_t i = 0; i < n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        int y = (int)(i * (BAR_H + BAR_GAP));
        fprintf(out, "<g><title>");
        h(out, *r->route ? r->route : "(no route)");
        fprintf(out,
                ": p50 %u, p95 %u, max %u queries per request over %" PRIu64 " requests</title>",
                r->queries_p50, r->queries_p95, r->queries_max, r->requests);
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_W - 8, y + 13);
        one_line(out, *r->route ? r->route : "(no route)", 40);
        fprintf(out, "</text>");
        const struct {
            uint32_t v;
            const char *fill;
        } bars[] = {
            {r->queries_max, "#c8dbf8"}, {r->queries_p95, "#79a8f0"}, {r->queries_p50, "#1f6feb"}};
        for (size_t b = 0; b < 3; b++)
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
                    LABEL_W, y, bars[b].v * scale + (bars[b].v ? 0 : 1), BAR_H, bars[b].fill);
        fprintf(out, "<text class=\"v\" x=\"%.1f\" y=\"%d\">%u / %u / %u</text></g>\n",
                LABEL_W + r->queries_max * scale + 6, y + 13, r->queries_p50, r->queries_p95,
                r->queries_max);
    }
    fprintf(out, "</svg>\n");
}

static void route_table(FILE *out, const ViewData *d)
{
    fprintf(out, "<table><tr><th class=\"l\">Route</th><th>Requests</th><th>p50</th>"
                 "<th>p95</th><th>max</th><th>Duplicates</th><th>N+1</th><th>DB time</th>"
                 "<th>DB p95</th></tr>\n");
    for (size_t i = 0; i < d->routes.n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        char db[16], p95[16];
        viewfmt_duration(db, sizeof db, r->db_time_us);
        viewfmt_duration(p95, sizeof p95, r->db_time_p95_us);
        fprintf(out, "<tr><td class=\"l\">");
        h(out, *r->route ? r->route : "(no route)");
        fprintf(out,
                "</td><td>%" PRIu64 "</td><td>%u</td><td>%u</td><td>%u</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td></tr>\n",
                r->requests, r->queries_p50, r->queries_p95, r->queries_max, r->duplicates,
                r->n_plus_one, db, p95);
    }
    fprintf(out, "</table>\n");
}

static void fingerprint_chart(FILE *out, const char *id, const char *title,
                              const ReaderFingerprintList *l, bool by_time)
{
    fprintf(out, "<h2>%s</h2>\n", title);
    if (l->n == 0) {
        fprintf(out, "<p>No statements recorded.</p>\n");
        return;
    }
    uint64_t max = 1;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t v = by_time ? l->items[i].total_time_us : l->items[i].calls;
        if (v > max)
            max = v;
    }
    int height = (int)(l->n * (BAR_H + BAR_GAP)) + 8;
    double scale = (double)(CHART_W - LABEL_W - 90) / (double)max;
    fprintf(out,
            "<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
            id, CHART_W, height, CHART_W, height, title);
    for (size_t i = 0; i < l->n; i++) {
        const ReaderFingerprint *f = &l->items[i];
        uint64_t v = by_time ? f->total_time_us : f->calls;
        int y = (int)(i * (BAR_H + BAR_GAP));
        char value[32];
        if (by_time)
            viewfmt_duration(value, sizeof value, v);
        else
            snprintf(value, sizeof value, "%" PRIu64 " calls", v);
        fputs("<g><title>", out);
        h(out, f->fingerprint);
        fputs(": ", out);
        h(out, *f->normalized ? f->normalized : "(text not recorded)");
        fprintf(out, "</title><text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_W - 8, y + 13);
        one_line(out, *f->normalized ? f->normalized : f->fingerprint, 44);
        fprintf(out,
                "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                "fill=\"hsl(%u,55%%,55%%)\"/><text class=\"v\" x=\"%.1f\" y=\"%d\">%s</text>"
                "</g>\n",
                LABEL_W, y, (double)v * scale + 1, BAR_H, hue_of(f->fingerprint),
                LABEL_W + (double)v * scale + 7, y + 13, value);
    }
    fprintf(out, "</svg>\n");
}

static void findings(FILE *out, const ViewData *d)
{
    fprintf(out, "<h2>Top findings</h2>\n");
    if (d->findings.n == 0)
        fprintf(out, "<p>No N+1 queries, duplicates or over-fetching found.</p>\n");
    for (size_t i = 0; i < d->findings.n; i++) {
        const ReaderTopFinding *f = &d->findings.items[i];
        bool n1 = strcmp(f->kind, "n_plus_one") == 0;
        char db[16];
        viewfmt_duration(db, sizeof db, f->total_time_us);
        fprintf(out,
                "<div class=\"finding\"><p><span class=\"kind%s\">%s</span> %" PRIu64
                " %s in %" PRIu64 " request%s, DB time %s; worst: ",
                n1 ? " n1" : "", n1 ? (f->is_write ? "N+1 writes" : "N+1") : f->kind,
                f->total_count,
                n1                                  ? "calls"
                : strcmp(f->kind, "duplicate") == 0 ? "repeats"
                                                    : "rows/bytes",
                f->requests, f->requests == 1 ? "" : "s", db);
        h(out, *f->worst_route ? f->worst_route : "(no route)");
        fputs(", request ", out);
        h(out, f->worst_request);
        fprintf(out, " (%" PRIu64 ") <span class=\"fp\">", f->max_count);
        h(out, f->fingerprint);
        fputs("</span></p>\n", out);
        if (*f->normalized) {
            fputs("<pre>", out);
            h(out, f->normalized);
            fputs("</pre>\n", out);
        }
        char batched[4096];
        if (n1 && suggest_batched(f->normalized, SUGGEST_ANY, batched, sizeof batched)) {
            fputs("<p>Batched, one query for all values:</p><pre>", out);
            h(out, batched);
            fputs("</pre>\n", out);
        }
        fputs("</div>\n", out);
    }
}

static int cmp_busiest(const void *a, const void *b)
{
    const ReaderRequest *x = *(const ReaderRequest *const *)a;
    const ReaderRequest *y = *(const ReaderRequest *const *)b;
    if (x->n_plus_one != y->n_plus_one)
        return x->n_plus_one > y->n_plus_one ? -1 : 1;
    if (x->queries != y->queries)
        return x->queries > y->queries ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static void timeline_chart(FILE *out, const ReaderRequest *r, const ReaderTimeline *t, size_t index)
{
    int64_t span = r->end_us - r->start_us;
    for (size_t i = 0; i < t->n; i++) {
        int64_t end = t->items[i].start_us + t->items[i].duration_us - r->start_us;
        if (end > span)
            span = end;
    }
    if (span < 1)
        span = 1;
    char took[16], db[16];
    viewfmt_duration(took, sizeof took, (uint64_t)span);
    viewfmt_duration(db, sizeof db, r->db_time_us);
    fprintf(out, "<h3>");
    h(out, r->id);
    fputs(" <span class=\"meta\">", out);
    h(out, *r->route ? r->route : "(no route)");
    fprintf(out, " &middot; %u queries &middot; %u N+1 &middot; DB time %s of %s</span></h3>\n",
            r->queries, r->n_plus_one, db, took);
    const int lane_h = 16, width = CHART_W - 20;
    int height = lane_h + 30;
    double scale = (double)width / (double)span;
    fprintf(out,
            "<svg class=\"timeline\" id=\"timeline-%zu\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-label=\"statement timeline\">\n"
            "<rect x=\"10\" y=\"4\" width=\"%d\" height=\"%d\" fill=\"#f6f8fa\"/>\n",
            index, CHART_W, height, CHART_W, height, width, lane_h);
    for (size_t i = 0; i < t->n; i++) {
        const ReaderStatement *s = &t->items[i];
        double x = 10 + (double)(s->start_us - r->start_us) * scale;
        double w = (double)s->duration_us * scale;
        if (w < 1.5)
            w = 1.5; /* a statement of a few µs must still show */
        fprintf(out,
                "<rect x=\"%.1f\" y=\"4\" width=\"%.1f\" height=\"%d\" "
                "fill=\"hsl(%u,60%%,%s)\"><title>#%u +%" PRId64 " µs, %" PRId64 " µs, %" PRIu64
                " rows: ",
                x, w, lane_h, hue_of(s->fingerprint), s->sqlstate[0] ? "35%" : "50%", s->seq,
                s->start_us - r->start_us, s->duration_us, s->rows);
        h(out, *s->normalized ? s->normalized : s->fingerprint);
        fputs("</title></rect>\n", out);
    }
    fprintf(out,
            "<text x=\"10\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\" "
            "text-anchor=\"end\">%s</text></svg>\n",
            lane_h + 22, width + 10, lane_h + 22, took);

    size_t n_folds;
    ViewFold *folds = viewfmt_fold(t, &n_folds);
    fprintf(out, "<table><tr><th>#</th><th>at</th><th>time</th><th>rows</th><th></th>"
                 "<th class=\"l\">statement</th></tr>\n");
    for (size_t i = 0; i < n_folds; i++) {
        const ReaderStatement *s = &t->items[folds[i].first];
        char at[16], dur[16];
        viewfmt_duration(at, sizeof at,
                         s->start_us > r->start_us ? (uint64_t)(s->start_us - r->start_us) : 0);
        viewfmt_duration(dur, sizeof dur, folds[i].duration_us);
        fprintf(out, "<tr><td>%u</td><td>+%s</td><td>%s</td><td>%" PRIu64 "</td><td>", s->seq, at,
                dur, folds[i].rows);
        if (folds[i].count > 1)
            fprintf(out, "<span class=\"kind n1\">x%zu</span>", folds[i].count);
        fprintf(out,
                "</td><td class=\"l\"><span style=\"color:hsl(%u,60%%,40%%)\">&#9632;"
                "</span> ",
                hue_of(s->fingerprint));
        one_line(out, *s->normalized ? s->normalized : s->fingerprint, 110);
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
    free(folds);
}

static void timelines(FILE *out, const ViewData *d)
{
    fprintf(out, "<h2>Statement timelines of the busiest requests</h2>\n");
    if (d->requests.n == 0) {
        fprintf(out, "<p>No requests recorded.</p>\n");
        return;
    }
    const ReaderRequest **order = malloc(d->requests.n * sizeof *order);
    if (!order)
        return;
    for (size_t i = 0; i < d->requests.n; i++)
        order[i] = &d->requests.items[i];
    qsort(order, d->requests.n, sizeof *order, cmp_busiest);
    size_t n = d->requests.n < TIMELINE_REQUESTS ? d->requests.n : TIMELINE_REQUESTS;
    for (size_t i = 0; i < n; i++) {
        ReaderTimeline t;
        char err[256];
        if (!reader_timeline(d->file, order[i]->row, &t, err, sizeof err)) {
            fputs("<p>", out);
            h(out, err);
            fputs("</p>\n", out);
            continue;
        }
        timeline_chart(out, order[i], &t, i);
        reader_timeline_free(&t);
    }
    free(order);
}

void view_html(FILE *out, const ViewData *d, const ViewOptions *o)
{
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>pgtally report, ");
    char scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    h(out, scope);
    fprintf(out, "</title>\n<style>%s</style></head>\n<body>\n", css);
    header(out, d, o);
    route_chart(out, d);
    route_table(out, d);
    findings(out, d);
    fingerprint_chart(out, "chart-calls", "Top statements by calls", &d->by_calls, false);
    fingerprint_chart(out, "chart-time", "Top statements by DB time", &d->by_time, true);
    timelines(out, d);
    fprintf(out, "<p class=\"meta\">Generated by pgtally %s from ", PGTALLY_VERSION);
    h(out, reader_path(d->file));
    fprintf(out, ".</p>\n</body></html>\n");
}
