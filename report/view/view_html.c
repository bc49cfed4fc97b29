/* report/view/view_html — see view_html.h. The static report is the index page with, below it, the
 * timelines of the busiest requests and of every finding's worst request, and where each top
 * statement runs: the anchors its links point to. */
#include "report/view/view_html.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report/suggest.h"
#include "report/view/viewfmt.h"

#define CHART_W 960
#define LABEL_W 300
#define BAR_H 18
#define BAR_GAP 6
#define MAX_CHART_ROUTES 15
#define TIMELINE_REQUESTS 5
#define SQL_WIDTH 110

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;"
    "max-width:1040px;color:#1d2327;background:#fff;padding:0 16px}"
    "h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:17px;margin:28px 0 8px;"
    "border-bottom:1px solid #dde1e5;padding-bottom:4px}h3{overflow-wrap:anywhere}"
    "a{color:#0a58ca;text-decoration:none}a:hover{text-decoration:underline}"
    "nav{display:flex;gap:16px;align-items:baseline;border-bottom:1px solid #dde1e5;"
    "padding:0 0 8px;margin:0 0 16px}nav b{margin-right:8px}#live-state{margin-left:auto;"
    "color:#5b6570;font-size:12px}"
    ".meta{color:#5b6570}.ok{background:#e7f6ec;border:1px solid #9ad3ab;padding:8px 12px;"
    "border-radius:6px}.bad{background:#fdecea;border:1px solid #e8a09a;padding:8px 12px;"
    "border-radius:6px;font-weight:600;color:#8a1c12}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;"
    "border-bottom:1px solid #eceff1;text-align:right}th{background:#f6f8fa}"
    "td.l,th.l{text-align:left}td:not(.l){white-space:nowrap}td.sql{font:12px "
    "ui-monospace,Menlo,Consolas,monospace;"
    "overflow-wrap:anywhere}pre{background:#f6f8fa;padding:8px 10px;border-radius:6px;"
    "white-space:pre-wrap;word-break:break-word;font:12.5px/1.4 ui-monospace,Menlo,Consolas,"
    "monospace;margin:4px 0}.kind{display:inline-block;padding:1px 7px;border-radius:10px;"
    "background:#fff3cd;color:#7a5a00;font-weight:600;font-size:12px}"
    ".n1{background:#fde2e1;color:#9b1c1c}.fp{font-family:ui-monospace,monospace;"
    "font-size:12px}svg{max-width:100%;height:auto}svg text{font:12px system-ui,sans-serif;"
    "fill:#1d2327}svg .v{fill:#5b6570}svg .n1t{fill:#b42318;font-weight:600}"
    ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;"
    "vertical-align:-2px}tr.found td{background:#fff5f5}tr.finding td{border-bottom:0}"
    ".why{margin:0 0 4px}tr.detail pre{max-width:860px}"
    "@media (max-width:640px){body{margin:8px auto;padding:0 8px}h1{font-size:18px}}";

static void h(FILE *out, const char *s)
{
    viewfmt_xml(out, s);
}

/* SQL as a block: `text` escaped in a <pre> (of class `cls` when given). */
static void pre(FILE *out, const char *cls, const char *text)
{
    fprintf(out, "<pre%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    h(out, text);
    fputs("</pre>\n", out);
}

/* A page's heading: `text` escaped between markup before and after it. */
static void h1(FILE *out, const char *before, const char *text, const char *after)
{
    fprintf(out, "<h1>%s", before);
    h(out, text);
    fprintf(out, "%s</h1>\n", after);
}

/* ---- colours and links -------------------------------------------------------------------- */

/* A colour per statement: the first statements on a page get hues a golden angle apart, so
 * neighbours never look alike; past VIEW_HTML_COLOURS a hash of the fingerprint picks one. */
static void colour(HtmlPage *p, const char *fingerprint, int lightness, char *out, size_t cap)
{
    size_t i = 0;
    while (i < p->n_colours && strcmp(p->colours[i], fingerprint) != 0)
        i++;
    if (i == p->n_colours && p->n_colours < VIEW_HTML_COLOURS)
        snprintf(p->colours[p->n_colours++], sizeof p->colours[0], "%s", fingerprint);
    unsigned hue, sat = 62;
    if (i < VIEW_HTML_COLOURS) {
        hue = (unsigned)(215 + i * 137.508) % 360; /* blue first: red means a finding */
        sat = i % 2 ? 48 : 68; /* a second cue beside hue, for eyes that tell hues apart poorly */
    } else {
        hue = (unsigned)strtoul(
                  (char[5]){fingerprint[0], fingerprint[1], fingerprint[2], fingerprint[3], 0},
                  NULL, 16) %
              360;
    }
    snprintf(out, cap, "hsl(%u,%u%%,%d%%)", hue, sat, lightness);
}

static void scope_suffix(HtmlPage *p, char sep)
{
    if (p->served && p->scope_q && *p->scope_q)
        fprintf(p->out, "%c%s", sep, p->scope_q);
}

static void a_route(HtmlPage *p, const char *route)
{
    if (!p->served) {
        h(p->out, viewfmt_route(route));
        return;
    }
    /* The unlabelled requests' link names them as every output does; serve reads it back. */
    fputs("<a href=\"/route?name=", p->out);
    viewfmt_url(p->out, viewfmt_route(route));
    scope_suffix(p, '&');
    fputs("\">", p->out);
    h(p->out, viewfmt_route(route));
    fputs("</a>", p->out);
}

static void href_request(HtmlPage *p, const char *id)
{
    if (p->served) {
        fputs("<a href=\"/request/", p->out);
        viewfmt_url(p->out, id);
        scope_suffix(p, '?');
    } else {
        fputs("<a href=\"#request-", p->out);
        viewfmt_url(p->out, id);
    }
    fputs("\">", p->out);
}

static void a_request(HtmlPage *p, const char *id)
{
    href_request(p, id);
    h(p->out, id);
    fputs("</a>", p->out);
}

/* Whether a static report will hold fp's anchor: records fp among the statements it lists at
 * its end (statement_routes), while there is room. */
static bool static_anchor(HtmlPage *p, const char *fp)
{
    for (size_t i = 0; i < p->n_linked; i++)
        if (strcmp(p->linked[i], fp) == 0)
            return true;
    if (!*fp || p->n_linked == VIEW_HTML_LINKED)
        return false;
    snprintf(p->linked[p->n_linked++], sizeof p->linked[0], "%s", fp);
    return true;
}

static void href_fp(HtmlPage *p, const char *fp)
{
    if (!p->served && !static_anchor(p, fp)) {
        fputs("<a>", p->out); /* no target in this file: text, not a dangling link */
        return;
    }
    fprintf(p->out, "<a href=\"%s", p->served ? "/fingerprint/" : "#fp-");
    viewfmt_url(p->out, fp);
    scope_suffix(p, '?');
    fputs("\">", p->out);
}

static void a_fp(HtmlPage *p, const char *fp)
{
    href_fp(p, fp);
    fputs("<span class=\"fp\">", p->out);
    h(p->out, fp);
    fputs("</span></a>", p->out);
}

/* A DB time and a size as people read them ("1.60 ms", "640 B"), one table cell each. */
typedef struct Amounts {
    char db[16], bytes[16];
} Amounts;

static Amounts amounts(uint64_t db_us, uint64_t bytes)
{
    Amounts a;
    viewfmt_duration(a.db, sizeof a.db, db_us);
    viewfmt_bytes(a.bytes, sizeof a.bytes, bytes);
    return a;
}

static void sql_line(FILE *out, const char *sql, size_t width)
{
    char buf[2048];
    viewfmt_sql_abbrev(buf, sizeof buf, sql, width);
    h(out, buf);
}

/* ---- page frame --------------------------------------------------------------------------- */

void view_html_begin(HtmlPage *p, const char *title)
{
    FILE *out = p->out;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          out);
    h(out, title);
    fprintf(out, "</title>\n<style>%s</style></head>\n<body", css);
    if (p->served) {
        fputs(" data-version=\"", out);
        h(out, p->version ? p->version : "");
        fputs("\">\n<nav><b>pgtally</b><a href=\"/", out);
        scope_suffix(p, '?');
        fputs("\">Routes</a><a href=\"/runs\">Runs</a><span id=\"live-state\">live</span></nav>\n",
              out);
    } else {
        fputs(">\n", out);
    }
    fputs("<main id=\"live\">\n", out);
}

/* Polls the store's version every second; on a change fetches this same URL and swaps the
 * live region, so new requests appear without a reload and without losing the scroll. */
static const char live_script[] =
    "(function(){var b=document.body,s=document.getElementById('live-state');"
    "setInterval(function(){fetch('/api/version',{cache:'no-store',credentials:'same-origin'})"
    ".then(function(r){return r.ok?r.json():null}).then(function(j){"
    "if(!j||j.version===b.dataset.version)return null;"
    "return fetch(location.href,{cache:'no-store',credentials:'same-origin'})"
    ".then(function(r){return r.text()}).then(function(t){"
    "var d=new DOMParser().parseFromString(t,'text/html'),m=d.getElementById('live');"
    "if(!m)return;document.getElementById('live').replaceWith(m);"
    "b.dataset.version=d.body.dataset.version||j.version;"
    "s.textContent='live, updated '+new Date().toLocaleTimeString();})})"
    ".catch(function(){s.textContent='live (store unreachable, retrying)'})},1000)})();";

void view_html_end(HtmlPage *p)
{
    fprintf(p->out, "<p class=\"meta\">Generated by pgtally %s.</p>\n</main>\n", PGTALLY_VERSION);
    if (p->served) {
        fputs("<script nonce=\"", p->out);
        h(p->out, p->nonce ? p->nonce : "");
        fprintf(p->out, "\">%s</script>\n", live_script);
    }
    fputs("</body></html>\n", p->out);
}

void view_html_message(HtmlPage *p, const char *heading, const char *text)
{
    h1(p->out, "", heading, "");
    fputs("<p>", p->out);
    h(p->out, text);
    fputs("</p>\n", p->out);
}

/* ---- the report's parts ------------------------------------------------------------------- */

/* A section's heading; with nothing to show (n == 0), says `empty` and returns false. */
static bool section(FILE *out, const char *title, size_t n, const char *empty)
{
    fputs("<h2>", out);
    h(out, title);
    fputs("</h2>\n", out);
    if (n == 0)
        fprintf(out, "<p>%s</p>\n", empty);
    return n > 0;
}

static void completeness(HtmlPage *p, const ViewData *d)
{
    if (d->complete) {
        fprintf(p->out, "<p class=\"ok\">Data complete: nothing was dropped.</p>\n");
    } else {
        fprintf(p->out, "<p class=\"bad\">Data incomplete: ");
        h(p->out, d->completeness);
        fprintf(p->out, ". Figures below are lower bounds.</p>\n");
    }
}

static void header(HtmlPage *p, const ViewData *d, const ViewOptions *o, const char *what)
{
    FILE *out = p->out;
    char started[40];
    viewfmt_time(started, sizeof started, d->run.started_us);
    ViewTotals all;
    view_totals(d, &all);
    Amounts a = amounts(all.db_time_us, all.bytes);
    h1(out, "", what, "");
    fputs("<p class=\"meta\">", out);
    h(out, reader_path(d->file));
    char scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    fputs(" &middot; ", out);
    h(out, scope);
    fprintf(out, " &middot; started %s &middot; pgtally ", started);
    h(out, d->run.version);
    fprintf(out,
            "<br>%" PRIu64 " requests, %" PRIu64 " queries, DB time %s, %" PRIu64
            " rows, %s returned</p>\n",
            all.requests, all.queries, a.db, all.rows, a.bytes);
    completeness(p, d);
    if (d->runs.n > 1) {
        fprintf(out, "<div class=\"scroll\"><table class=\"runs\"><tr><th>run</th>"
                     "<th class=\"l\">instance</th><th>started</th><th>requests</th>"
                     "<th class=\"l\">data</th></tr>\n");
        for (size_t i = 0; i < d->runs.n; i++) {
            const ReaderRun *r = &d->runs.items[i];
            char when[40], why[200];
            viewfmt_time(when, sizeof when, r->started_us);
            bool ok = reader_run_is_complete(r, why, sizeof why);
            fprintf(out, "<tr><td>%lld</td><td class=\"l\">", (long long)r->id);
            h(out, r->instance);
            fprintf(out, "</td><td>%s</td><td>%" PRIu64 "</td><td class=\"l %s\">", when,
                    r->stored_requests, ok ? "ok" : "bad");
            h(out, ok ? "complete" : why);
            fputs("</td></tr>\n", out);
        }
        fputs("</table></div>\n", out);
    }
}

/* The first chart: queries per request by route, and which routes have N+1s (red, with how
 * many of their requests). */
static void route_chart(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    size_t n = d->routes.n < MAX_CHART_ROUTES ? d->routes.n : MAX_CHART_ROUTES;
    if (!section(out, "Queries per request, by route", n, "No requests recorded."))
        return;
    uint32_t max = 1;
    for (size_t i = 0; i < n; i++)
        if (d->routes.items[i].queries_max > max)
            max = d->routes.items[i].queries_max;
    int height = (int)(n * (BAR_H + BAR_GAP)) + 24;
    double scale = (double)(CHART_W - LABEL_W - 250) / max;
    fprintf(out,
            "<p class=\"legend\"><span style=\"background:#1f6feb\"></span>p50"
            "<span style=\"background:#79a8f0\"></span>p95"
            "<span style=\"background:#c8dbf8\"></span>max"
            "<span style=\"background:#d92d20\"></span>route with N+1 queries</p>\n"
            "<svg id=\"chart-routes\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"queries per request "
            "by route\">\n",
            CHART_W, height, CHART_W, height);
    for (size_t i = 0; i < n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        bool n1 = r->n_plus_one > 0;
        int y = (int)(i * (BAR_H + BAR_GAP));
        fprintf(out, "<g class=\"%s\"><title>", n1 ? "route n1" : "route");
        h(out, viewfmt_route(r->route));
        fprintf(out,
                ": p50 %u, p95 %u, max %u queries per request over %" PRIu64
                " requests; N+1 in %" PRIu64 "</title>",
                r->queries_p50, r->queries_p95, r->queries_max, r->requests,
                r->requests_with_n_plus_one);
        if (p->served) {
            fputs("<a href=\"/route?name=", out);
            viewfmt_url(out, viewfmt_route(r->route));
            scope_suffix(p, '&');
            fputs("\">", out);
        }
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\"%s>", LABEL_W - 8, y + 13,
                n1 ? " class=\"n1t\"" : "");
        char label[256];
        viewfmt_one_line(label, sizeof label, viewfmt_route(r->route), 40);
        h(out, label);
        fputs("</text>", out);
        if (p->served)
            fputs("</a>", out);
        const struct {
            uint32_t v;
            const char *fill;
        } bars[] = {{r->queries_max, n1 ? "#f6c6c2" : "#c8dbf8"},
                    {r->queries_p95, n1 ? "#ee8a82" : "#79a8f0"},
                    {r->queries_p50, n1 ? "#d92d20" : "#1f6feb"}};
        for (size_t b = 0; b < 3; b++)
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
                    LABEL_W, y, bars[b].v * scale + (bars[b].v ? 0 : 1), BAR_H, bars[b].fill);
        fprintf(out, "<text class=\"v\" x=\"%.1f\" y=\"%d\">%u / %u / %u</text>",
                LABEL_W + r->queries_max * scale + 6, y + 13, r->queries_p50, r->queries_p95,
                r->queries_max);
        if (n1)
            fprintf(out,
                    "<text class=\"n1t\" x=\"%.1f\" y=\"%d\">N+1 in %" PRIu64 " of %" PRIu64
                    "</text>",
                    LABEL_W + r->queries_max * scale + 96, y + 13, r->requests_with_n_plus_one,
                    r->requests);
        fputs("</g>\n", out);
    }
    fprintf(out, "</svg>\n");
}

static void route_table(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    fprintf(out, "<div class=\"scroll\"><table id=\"routes\"><tr><th class=\"l\">Route</th>"
                 "<th>Requests</th><th>p50</th><th>p95</th><th>max</th><th>Duplicates</th>"
                 "<th>N+1</th><th>DB time</th><th>DB p95</th><th>Rows</th><th>Bytes</th></tr>\n");
    for (size_t i = 0; i < d->routes.n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        char p95[16];
        viewfmt_duration(p95, sizeof p95, r->db_time_p95_us);
        Amounts a = amounts(r->db_time_us, r->bytes);
        fprintf(out, "<tr><td class=\"l\">");
        a_route(p, r->route);
        fprintf(out,
                "</td><td>%" PRIu64 "</td><td>%u</td><td>%u</td><td>%u</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td><td>%" PRIu64
                "</td><td>%s</td></tr>\n",
                r->requests, r->queries_p50, r->queries_p95, r->queries_max, r->duplicates,
                r->n_plus_one, a.db, p95, r->rows, a.bytes);
    }
    fprintf(out, "</table></div>\n");
}

/* A finding's kind as a badge: "N+1" (red), "N+1 writes", "duplicate", "overfetch". */
static void kind_badge(HtmlPage *p, const char *kind, bool is_write)
{
    bool n1 = strcmp(kind, "n_plus_one") == 0;
    fprintf(p->out, "<span class=\"kind%s\">", n1 ? " n1" : "");
    h(p->out, n1 ? (is_write ? "N+1 writes" : "N+1") : kind);
    fputs("</span>", p->out);
}

/* What a finding's count counts. */
static const char *finding_unit(const char *kind, bool by_bytes)
{
    if (strcmp(kind, "n_plus_one") == 0)
        return "calls";
    if (strcmp(kind, "duplicate") == 0)
        return "repeats";
    return by_bytes ? "bytes" : "rows";
}

/* A finding's statement: its link, its SQL and, for an N+1, the batched form. */
static void finding_statement(HtmlPage *p, const char *kind, const char *fingerprint,
                              const char *normalized)
{
    FILE *out = p->out;
    if (*fingerprint) {
        fputs("<p class=\"meta\">statement ", out);
        a_fp(p, fingerprint);
        fputs("</p>\n", out);
    }
    if (*normalized)
        pre(out, NULL, normalized);
    char batched[4096];
    if (strcmp(kind, "n_plus_one") == 0 &&
        suggest_batched(normalized, SUGGEST_ANY, batched, sizeof batched)) {
        fputs("<p>Batched, one query for all values:</p>", out);
        pre(out, "fix", batched);
    }
}

/* The top findings in the reader's order, every kind ranked by the one cost the text report
 * ranks by (the DB time each stands for), each with why it ranks there: a row of figures,
 * then a row with the reason, the SQL and the fix. */
static void findings(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    if (!section(out, "Top findings, ranked by the DB time each stands for", d->findings.n,
                 "No N+1 queries, duplicates or over-fetching found."))
        return;
    fputs("<div class=\"scroll\"><table id=\"findings\"><tr><th>#</th><th class=\"l\">finding"
          "</th><th>DB time</th><th>rows</th><th>bytes</th><th class=\"l\">worst request</th>"
          "</tr>\n",
          out);
    for (size_t i = 0; i < d->findings.n; i++) {
        const ReaderTopFinding *f = &d->findings.items[i];
        char why[512];
        Amounts a = amounts(f->cost_us, f->bytes);
        viewfmt_finding_why(why, sizeof why, f);
        fprintf(out, "<tr class=\"finding\" id=\"finding-%zu\"><td>%zu</td><td class=\"l\">", i + 1,
                i + 1);
        kind_badge(p, f->kind, f->is_write);
        fprintf(out,
                " %" PRIu64 " %s in %" PRIu64 " request%s</td><td>%s</td><td>%" PRIu64
                "</td><td>%s</td><td class=\"l\">",
                f->total_count, finding_unit(f->kind, f->by_bytes), f->requests,
                f->requests == 1 ? "" : "s", a.db, f->rows, a.bytes);
        a_route(p, f->worst_route);
        fputs(", ", out);
        a_request(p, f->worst_request);
        fprintf(out,
                " (%" PRIu64 ")</td></tr>\n<tr class=\"detail\"><td></td>"
                "<td class=\"l\" colspan=\"5\"><p class=\"why\">Why here: ",
                f->max_count);
        h(out, why);
        fputs("</p>\n", out);
        finding_statement(p, f->kind, f->fingerprint, f->normalized);
        fputs("</td></tr>\n", out);
    }
    fputs("</table></div>\n", out);
}

static void fingerprint_chart(HtmlPage *p, const char *id, const char *title,
                              const ReaderFingerprintList *l, bool by_time)
{
    FILE *out = p->out;
    if (!section(out, title, l->n, "No statements recorded."))
        return;
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
        char value[32], fill[40];
        if (by_time)
            viewfmt_duration(value, sizeof value, v);
        else
            snprintf(value, sizeof value, "%" PRIu64 " calls", v);
        colour(p, f->fingerprint, 55, fill, sizeof fill);
        fputs("<g><title>", out);
        h(out, f->fingerprint);
        fputs(": ", out);
        h(out, *f->normalized ? f->normalized : "(text not recorded)");
        fputs("</title>", out);
        href_fp(p, f->fingerprint);
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_W - 8, y + 13);
        sql_line(out, *f->normalized ? f->normalized : f->fingerprint, 44);
        fprintf(out,
                "</text></a><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                "fill=\"%s\"/><text class=\"v\" x=\"%.1f\" y=\"%d\">%s</text></g>\n",
                LABEL_W, y, (double)v * scale + 1, BAR_H, fill, LABEL_W + (double)v * scale + 7,
                y + 13, value);
    }
    fprintf(out, "</svg>\n");
}

/* The statements of a chart with what they returned: calls, DB time, rows and bytes. */
static void statement_table(HtmlPage *p, const ReaderFingerprintList *l)
{
    FILE *out = p->out;
    if (l->n == 0)
        return;
    fputs("<div class=\"scroll\"><table class=\"statements-totals\"><tr><th class=\"l\">"
          "statement</th><th>calls</th><th>requests</th><th>DB time</th><th>rows</th>"
          "<th>bytes</th></tr>\n",
          out);
    for (size_t i = 0; i < l->n; i++) {
        const ReaderFingerprint *f = &l->items[i];
        Amounts a = amounts(f->total_time_us, f->bytes);
        fputs("<tr><td class=\"l sql\">", out);
        href_fp(p, f->fingerprint);
        sql_line(out, *f->normalized ? f->normalized : f->fingerprint, 80);
        fprintf(out,
                "</a></td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%" PRIu64
                "</td><td>%s</td></tr>\n",
                f->calls, f->requests, a.db, f->rows, a.bytes);
    }
    fputs("</table></div>\n", out);
}

/* Requests newest first: where new requests appear on a live page. */
static void latest_requests(HtmlPage *p, const ViewData *d, bool show_route)
{
    FILE *out = p->out;
    size_t n = d->requests.n < VIEW_HTML_LATEST ? d->requests.n : VIEW_HTML_LATEST;
    if (!section(out, "Latest requests", n, "No requests recorded yet."))
        return;
    fprintf(out,
            "<div class=\"scroll\"><table id=\"requests\"><tr><th class=\"l\">Request</th>%s"
            "<th>started</th><th>queries</th><th>N+1</th><th>duplicates</th>"
            "<th>DB time</th><th>rows</th><th>bytes</th></tr>\n",
            show_route ? "<th class=\"l\">Route</th>" : "");
    for (size_t k = 0; k < n; k++) {
        const ReaderRequest *r = &d->requests.items[d->requests.n - 1 - k];
        char when[40];
        viewfmt_time(when, sizeof when, r->start_us);
        Amounts a = amounts(r->db_time_us, r->bytes);
        fprintf(out, "<tr%s><td class=\"l\">", r->n_plus_one ? " class=\"found\"" : "");
        a_request(p, r->id);
        fputs("</td>", out);
        if (show_route) {
            fputs("<td class=\"l\">", out);
            a_route(p, r->route);
            fputs("</td>", out);
        }
        fprintf(out,
                "<td>%s</td><td>%u</td><td>%u</td><td>%u</td><td>%s</td><td>%" PRIu64
                "</td><td>%s</td></tr>\n",
                when, r->queries, r->n_plus_one, r->duplicates, a.db, r->rows, a.bytes);
    }
    fputs("</table></div>\n", out);
    uint64_t all = 0;
    for (size_t i = 0; i < d->routes.n; i++)
        all += d->routes.items[i].requests;
    if (all > n)
        fprintf(out, "<p class=\"meta\">%" PRIu64 " older requests not listed.</p>\n", all - n);
}

/* Statements folded: repeats of one statement ("x20"), then alternating runs ("(A, B) x 11"). */
static void timeline_table(HtmlPage *p, const ReaderRequest *r, const ReaderTimeline *t)
{
    FILE *out = p->out;
    size_t n_folds, n_cycles;
    ViewFold *folds = viewfmt_fold(t, &n_folds);
    ViewCycle *cycles = viewfmt_fold_cycles(t, folds, n_folds, &n_cycles);
    fprintf(out, "<div class=\"scroll\"><table class=\"statements\"><tr><th>#</th><th>at</th>"
                 "<th>time</th><th>rows</th><th>bytes</th><th></th><th class=\"l\">statement</th>"
                 "</tr>\n");
    for (size_t c = 0; c < n_cycles; c++) {
        const ViewCycle *cy = &cycles[c];
        const ReaderStatement *s0 = &t->items[folds[cy->first].first];
        uint64_t dur = 0, rows = 0, bytes = 0;
        bool found = false;
        for (size_t k = cy->first; k < cy->first + cy->period * cy->repeats; k++) {
            dur += folds[k].duration_us;
            rows += folds[k].rows;
            bytes += folds[k].bytes;
        }
        for (size_t k = 0; k < cy->period; k++) {
            const ReaderStatement *s = &t->items[folds[cy->first + k].first];
            for (size_t j = 0; j < r->n_findings; j++)
                found |= strcmp(r->findings[j].fingerprint, s->fingerprint) == 0;
        }
        char at[16];
        Amounts a = amounts(dur, bytes);
        viewfmt_duration(at, sizeof at,
                         s0->start_us > r->start_us ? (uint64_t)(s0->start_us - r->start_us) : 0);
        fprintf(out, "<tr%s><td>%u</td><td>+%s</td><td>%s</td><td>%" PRIu64 "</td><td>%s</td><td>",
                found ? " class=\"found\"" : "", s0->seq, at, a.db, rows, a.bytes);
        if (cy->period > 1)
            fprintf(out, "<span class=\"kind n1\">(%s) &times; %zu</span>",
                    cy->period == 2 ? "A, B" : "A, B, C", cy->repeats);
        else if (folds[cy->first].count > 1)
            fprintf(out, "<span class=\"kind n1\">&times;%zu</span>", folds[cy->first].count);
        fputs("</td><td class=\"l sql\">", out);
        for (size_t k = 0; k < cy->period; k++) {
            const ViewFold *f = &folds[cy->first + k];
            const ReaderStatement *s = &t->items[f->first];
            char fill[40];
            colour(p, s->fingerprint, 45, fill, sizeof fill);
            if (k)
                fputs("<br>", out);
            if (cy->period > 1)
                fprintf(out, "%c%s ", 'A' + (int)k,
                        f->count > 1 ? "" : ":"); /* which member of the pattern */
            if (cy->period > 1 && f->count > 1)
                fprintf(out, "&times;%zu: ", f->count);
            fprintf(out, "<span style=\"color:%s\">&#9632;</span> ", fill);
            href_fp(p, s->fingerprint);
            sql_line(out, *s->normalized ? s->normalized : s->fingerprint, SQL_WIDTH);
            fputs("</a>", out);
        }
        fputs("</td></tr>\n", out);
    }
    fputs("</table></div>\n", out);
    free(cycles);
    free(folds);
}

static void timeline_chart(HtmlPage *p, const ReaderRequest *r, const ReaderTimeline *t,
                           size_t index, bool heading)
{
    FILE *out = p->out;
    int64_t span = r->end_us - r->start_us;
    for (size_t i = 0; i < t->n; i++) {
        int64_t end = t->items[i].start_us + t->items[i].duration_us - r->start_us;
        if (end > span)
            span = end;
    }
    if (span < 1)
        span = 1;
    char took[16];
    viewfmt_duration(took, sizeof took, (uint64_t)span);
    Amounts a = amounts(r->db_time_us, r->bytes);
    if (heading) {
        fputs("<h3 id=\"request-", out);
        viewfmt_url(out, r->id);
        fputs("\">", out);
        h(out, r->id);
        fputs(" <span class=\"meta\">", out);
        h(out, viewfmt_route(r->route));
        fprintf(out,
                " &middot; %u queries &middot; %u N+1 &middot; DB time %s of %s &middot; %" PRIu64
                " rows, %s</span></h3>\n",
                r->queries, r->n_plus_one, a.db, took, r->rows, a.bytes);
    }
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
        bool found = false;
        for (size_t j = 0; j < r->n_findings; j++)
            found |= strcmp(r->findings[j].fingerprint, s->fingerprint) == 0;
        char fill[40];
        colour(p, s->fingerprint, s->sqlstate[0] ? 35 : 50, fill, sizeof fill);
        fprintf(out,
                "<rect x=\"%.1f\" y=\"4\" width=\"%.1f\" height=\"%d\" fill=\"%s\"%s><title>#%u "
                "+%" PRId64 " µs, %" PRId64 " µs, %" PRIu64 " rows%s: ",
                x, w, lane_h, fill, found ? " class=\"found\"" : "", s->seq,
                s->start_us - r->start_us, s->duration_us, s->rows, found ? " (finding)" : "");
        h(out, *s->normalized ? s->normalized : s->fingerprint);
        fputs("</title></rect>\n", out);
        if (found) /* a finding's statements are marked under the lane */
            fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"3\" fill=\"#d92d20\"/>",
                    x, lane_h + 5, w);
    }
    fprintf(out,
            "<text x=\"10\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\" "
            "text-anchor=\"end\">%s</text></svg>\n",
            lane_h + 22, width + 10, lane_h + 22, took);
    timeline_table(p, r, t);
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

/* Static report: the busiest requests' timelines, then those of the findings' worst requests
 * not shown yet, so every finding's link lands on its request. */
static void timelines(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    if (!section(out, "Statement timelines of the busiest requests", d->requests.n,
                 "No requests recorded."))
        return;
    const ReaderRequest **order = malloc(d->requests.n * sizeof *order);
    if (!order)
        return;
    for (size_t i = 0; i < d->requests.n; i++)
        order[i] = &d->requests.items[i];
    qsort(order, d->requests.n, sizeof *order, cmp_busiest);
    size_t n = d->requests.n < TIMELINE_REQUESTS ? d->requests.n : TIMELINE_REQUESTS;
    /* Move each finding's worst request into the first n, after the busiest. */
    for (size_t f = 0; f < d->findings.n; f++) {
        const char *want = d->findings.items[f].worst_request;
        for (size_t i = 0; i < d->requests.n; i++) {
            if (strcmp(order[i]->id, want) != 0)
                continue;
            if (i >= n) {
                const ReaderRequest *tmp = order[n];
                order[n] = order[i];
                order[i] = tmp;
                n++;
            }
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ReaderTimeline t;
        char err[256];
        if (!reader_timeline(d->file, order[i]->row, &t, err, sizeof err)) {
            fputs("<p>", out);
            h(out, err);
            fputs("</p>\n", out);
            continue;
        }
        timeline_chart(p, order[i], &t, i, true);
        reader_timeline_free(&t);
    }
    free(order);
}

static void fingerprint_routes_table(HtmlPage *p, const ReaderFingerprint *f)
{
    FILE *out = p->out;
    fputs("<div class=\"scroll\"><table class=\"fp-routes\"><tr><th class=\"l\">Route</th>"
          "<th>requests</th><th>calls</th><th>DB time</th><th>rows</th><th>bytes</th></tr>\n",
          out);
    for (size_t i = 0; i < f->n_routes; i++) {
        const ReaderFingerprintRoute *r = &f->routes[i];
        Amounts a = amounts(r->total_time_us, r->bytes);
        fputs("<tr><td class=\"l\">", out);
        a_route(p, r->route);
        fprintf(out,
                "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%" PRIu64
                "</td><td>%s</td></tr>\n",
                r->requests, r->calls, a.db, r->rows, a.bytes);
    }
    fputs("</table></div>\n", out);
}

/* Static report: where each statement it linked to runs (the anchors of those links). */
static void statement_routes(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    fprintf(out, "<h2>Where each statement runs</h2>\n");
    for (size_t i = 0; i < p->n_linked; i++) {
        const char *fp = p->linked[i];
        fputs("<h3 id=\"fp-", out);
        viewfmt_url(out, fp);
        fputs("\"><span class=\"fp\">", out);
        h(out, fp);
        ReaderFingerprintList one;
        char err[256];
        if (!reader_fingerprint(d->file, fp, &one, err, sizeof err)) {
            fputs("</span></h3><p>", out);
            h(out, err);
            fputs("</p>\n", out);
            continue;
        }
        const ReaderFingerprint *f = &one.items[0];
        fprintf(out, "</span> <span class=\"meta\">%" PRIu64 " calls</span></h3>", f->calls);
        pre(out, NULL, *f->normalized ? f->normalized : "(text not recorded)");
        fingerprint_routes_table(p, f);
        reader_fingerprint_list_free(&one);
    }
}

/* ---- pages -------------------------------------------------------------------------------- */

void view_html_index(HtmlPage *p, const ViewData *d, const ViewOptions *o)
{
    header(p, d, o, "pgtally report");
    route_chart(p, d);
    route_table(p, d);
    findings(p, d);
    fingerprint_chart(p, "chart-calls", "Top statements by calls", &d->by_calls, false);
    fingerprint_chart(p, "chart-time", "Top statements by DB time", &d->by_time, true);
    statement_table(p, &d->by_time);
    if (p->served)
        latest_requests(p, d, true);
}

void view_html_route(HtmlPage *p, const ViewData *d, const ViewOptions *o)
{
    char title[600];
    snprintf(title, sizeof title, "pgtally: %s", viewfmt_route(o->route));
    header(p, d, o, title);
    route_table(p, d);
    findings(p, d);
    /* Only this route's statements: another route's N+1 is not this route's problem. */
    size_t top = o->top ? o->top : VIEW_TOP_DEFAULT;
    ReaderFingerprintList by_calls = {0}, by_time = {0};
    char err[256];
    if (!reader_route_fingerprints(d->file, o->route, READER_BY_CALLS, top, &by_calls, err,
                                   sizeof err) ||
        !reader_route_fingerprints(d->file, o->route, READER_BY_TIME, top, &by_time, err,
                                   sizeof err)) {
        fputs("<p class=\"bad\">", p->out);
        h(p->out, err);
        fputs("</p>\n", p->out);
    } else {
        fingerprint_chart(p, "chart-calls", "This route's statements by calls", &by_calls, false);
        fingerprint_chart(p, "chart-time", "This route's statements by DB time", &by_time, true);
        statement_table(p, &by_time);
    }
    reader_fingerprint_list_free(&by_calls);
    reader_fingerprint_list_free(&by_time);
    if (p->served)
        latest_requests(p, d, false);
    else
        timelines(p, d);
}

void view_html_request(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    const ReaderRequest *r = &d->requests.items[0];
    char when[40];
    viewfmt_time(when, sizeof when, r->start_us);
    Amounts a = amounts(r->db_time_us, r->bytes);
    h1(out, "Request ", r->id, "");
    fputs("<p class=\"meta\">route ", out);
    a_route(p, r->route);
    fprintf(out,
            " &middot; started %s &middot; %u queries, %u distinct, %u duplicates &middot; DB "
            "time %s &middot; %" PRIu64 " rows, %s returned &middot; ended: ",
            when, r->queries, r->distinct_fingerprints, r->duplicates, a.db, r->rows, a.bytes);
    h(out, r->end_reason);
    fputs("<br>key ", out);
    h(out, r->key);
    fputs(" &middot; tags ", out);
    h(out, r->tags_json);
    fputs("</p>\n", out);
    if (r->truncated || r->timeline_dropped)
        fprintf(out,
                "<p class=\"bad\">A per-request bound was hit: %" PRIu64
                " statements are not in the timeline; figures are lower bounds.</p>\n",
                r->timeline_dropped);
    section(out, "Findings", r->n_findings,
            "No N+1 queries, duplicates or over-fetching in this request.");
    for (size_t i = 0; i < r->n_findings; i++) {
        const ReaderFinding *f = &r->findings[i];
        fputs("<div class=\"finding\"><p>", out);
        kind_badge(p, f->kind, f->is_write);
        fprintf(out, " %" PRIu64 " %s", f->count, finding_unit(f->kind, f->by_bytes));
        if (strcmp(f->kind, "n_plus_one") == 0)
            fprintf(out, " with %u distinct values", f->distinct_values);
        fputs("</p>\n", out);
        finding_statement(p, f->kind, f->fingerprint, f->normalized);
        fputs("</div>\n", out);
    }
    if (section(out, "Timeline", d->timeline.n, "No statements stored for this request."))
        timeline_chart(p, r, &d->timeline, 0, false);
}

/* Statement latency buckets of the histogram, upper bounds in µs. */
static const uint64_t latency_bounds[] = {100,   250,   500,    1000,   2500,   5000,
                                          10000, 25000, 100000, 250000, 1000000};
#define N_BOUNDS (sizeof latency_bounds / sizeof latency_bounds[0])

static void histogram(HtmlPage *p, const ViewData *d, const ReaderFingerprint *f)
{
    FILE *out = p->out;
    uint64_t counts[N_BOUNDS + 1];
    char err[256];
    fprintf(out, "<h2>Latency</h2>\n");
    if (!reader_fingerprint_latencies(d->file, f->fingerprint, latency_bounds, N_BOUNDS, counts,
                                      err, sizeof err)) {
        fputs("<p class=\"bad\">", out);
        h(out, err);
        fputs("</p>\n", out);
        return;
    }
    uint64_t max = 1;
    for (size_t i = 0; i <= N_BOUNDS; i++)
        if (counts[i] > max)
            max = counts[i];
    const int bar_w = 60, gap = 12, chart_h = 160;
    int width = (int)(N_BOUNDS + 1) * (bar_w + gap) + 20;
    char fill[40];
    colour(p, f->fingerprint, 55, fill, sizeof fill);
    fprintf(out,
            "<svg id=\"chart-latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"latency "
            "histogram\">\n",
            width, chart_h + 44, width, chart_h + 44);
    for (size_t i = 0; i <= N_BOUNDS; i++) {
        char label[24];
        if (i < N_BOUNDS) {
            char d1[16];
            viewfmt_duration(d1, sizeof d1, latency_bounds[i]);
            snprintf(label, sizeof label, "\xe2\x89\xa4 %s", d1);
        } else {
            snprintf(label, sizeof label, "more");
        }
        double bh = (double)counts[i] * chart_h / (double)max;
        int x = 10 + (int)i * (bar_w + gap);
        fprintf(out,
                "<g><title>%s: %" PRIu64 " statements</title><rect x=\"%d\" y=\"%.1f\" "
                "width=\"%d\" height=\"%.1f\" fill=\"%s\"/><text class=\"v\" x=\"%d\" y=\"%.1f\" "
                "text-anchor=\"middle\">%" PRIu64 "</text><text x=\"%d\" y=\"%d\" "
                "text-anchor=\"middle\">%s</text></g>\n",
                label, counts[i], x, chart_h + 16 - bh, bar_w, bh + (counts[i] ? 0 : 1), fill,
                x + bar_w / 2, chart_h + 12 - bh, counts[i], x + bar_w / 2, chart_h + 34, label);
    }
    fputs("</svg>\n", out);
}

void view_html_fingerprint(HtmlPage *p, const ViewData *d)
{
    FILE *out = p->out;
    const ReaderFingerprint *f = &d->fingerprint.items[0];
    h1(out, "Statement <span class=\"fp\">", f->fingerprint, "</span>");
    pre(out, NULL, *f->normalized ? f->normalized : "(text not recorded)");
    if (f->sample) { /* only runs recorded with --samples have one */
        fputs("<p>Example with values (recorded with --samples):</p>", out);
        pre(out, NULL, f->sample);
    }
    char first[40];
    viewfmt_time(first, sizeof first, f->first_seen_us);
    Amounts a = amounts(f->total_time_us, f->bytes);
    fprintf(out,
            "<div class=\"scroll\"><table id=\"fp-totals\"><tr><th>calls</th><th>requests</th>"
            "<th>most in one request</th><th>DB time</th><th>rows</th><th>bytes</th>"
            "<th>errors</th><th class=\"l\">first seen</th></tr><tr><td>%" PRIu64
            "</td><td>%" PRIu64 "</td><td>%u</td><td>%s</td><td>%" PRIu64
            "</td><td>%s</td><td>%" PRIu64 "</td><td class=\"l\">%s</td></tr></table></div>\n",
            f->calls, f->requests, f->max_calls, a.db, f->rows, a.bytes, f->errors, first);
    fprintf(out, "<h2>Routes</h2>\n");
    fingerprint_routes_table(p, f);
    histogram(p, d, f);
}

void view_html_runs(HtmlPage *p, const ReportFile *file, const ReaderRunList *runs)
{
    FILE *out = p->out;
    fputs("<h1>Runs</h1>\n<p class=\"meta\">", out);
    h(out, reader_path(file));
    fprintf(out, " &middot; %zu run%s</p>\n", runs->n, runs->n == 1 ? "" : "s");
    fputs("<div class=\"scroll\"><table id=\"runs\"><tr><th>run</th><th class=\"l\">label</th>"
          "<th class=\"l\">instance</th><th>started</th><th>ended</th><th>requests</th>"
          "<th class=\"l\">data</th></tr>\n",
          out);
    for (size_t k = runs->n; k-- > 0;) {
        const ReaderRun *r = &runs->items[k];
        char started[40], ended[40], why[200];
        viewfmt_time(started, sizeof started, r->started_us);
        viewfmt_time(ended, sizeof ended, r->ended_us);
        bool ok = reader_run_is_complete(r, why, sizeof why);
        fprintf(out, "<tr><td><a href=\"/?run=%lld\">%lld</a></td><td class=\"l\">",
                (long long)r->id, (long long)r->id);
        if (*r->label) {
            fputs("<a href=\"/?label=", out);
            viewfmt_url(out, r->label);
            fputs("\">", out);
            h(out, r->label);
            fputs("</a>", out);
        }
        fputs("</td><td class=\"l\">", out);
        h(out, r->instance);
        fprintf(out, "</td><td>%s</td><td>%s</td><td>%" PRIu64 "</td><td class=\"l %s\">", started,
                r->ended_us ? ended : "running", r->stored_requests, ok ? "ok" : "bad");
        h(out, ok ? "complete" : why);
        fputs("</td></tr>\n", out);
    }
    fputs("</table></div>\n", out);
}

/* ---- the static report -------------------------------------------------------------------- */

void view_html(FILE *out, const ViewData *d, const ViewOptions *o)
{
    HtmlPage page = {.out = out};
    char title[320], scope[300];
    view_scope_text(d, o, scope, sizeof scope);
    snprintf(title, sizeof title, "pgtally report, %s", scope);
    view_html_begin(&page, title);
    if (o->route) {
        view_html_route(&page, d, o);
    } else {
        view_html_index(&page, d, o);
        timelines(&page, d);
    }
    statement_routes(&page, d);
    view_html_end(&page);
}
