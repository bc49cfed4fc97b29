/* report/view/view_html — the HTML pages: the static report (`pgtally report --format html`) and
 * the pages `pgtally serve` and `pgtally proxy --serve` serve, drawn by the same functions.
 *
 * Owns: the page layout (inline CSS, charts as inline SVG, no fonts or network), the colour of
 * each statement on a page, and how pages link to each other: a served page links to the
 * served URLs (/route?name=R, with R "(no route)" for the unlabelled requests, /request/ID,
 * /fingerprint/F, /runs), a static report to anchors inside the one file. Every value from the
 * store is escaped (viewfmt_xml, viewfmt_url); only normalized SQL is shown, and a statement's
 * example with values only when the run recorded one (--samples). Writers leave error checks on
 * `out` to the caller. */
#ifndef PGTALLY_REPORT_VIEW_HTML_H
#define PGTALLY_REPORT_VIEW_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "report/view/viewdata.h"

/* Requests a served page lists, newest first (ViewOptions.latest). */
#define VIEW_HTML_LATEST 50

/* Statements given their own colour on one page; later ones share a colour by hash. */
#define VIEW_HTML_COLOURS 48

/* Statements a static report links to (and lists with their routes at its end). */
#define VIEW_HTML_LINKED 512

typedef struct HtmlPage {
    FILE *out;
    bool served;         /* links to served pages and the live script; else in-file anchors */
    const char *scope_q; /* served: "run=3" or "label=x" (URL-encoded) kept in links; or "" */
    const char *version; /* served: the store version shown, compared by the live poll */
    const char *nonce;   /* served: the Content-Security-Policy nonce of the live script */
    /* the colours handed out so far, in order */
    char colours[VIEW_HTML_COLOURS][17];
    size_t n_colours;
    /* static report: the statements linked so far, in order, whose anchors the report ends
     * with (a link past VIEW_HTML_LINKED statements is written without a target) */
    char linked[VIEW_HTML_LINKED][17];
    size_t n_linked;
} HtmlPage;

/* The document head, CSS and (served) the navigation; opens the region the live poll
 * replaces. */
void view_html_begin(HtmlPage *page, const char *title);
/* Closes the document; served pages get the few lines of script that poll /api/version every
 * second and, when it changed, reload the live region in place. */
void view_html_end(HtmlPage *page);

/* Routes worst first (which have N+1s charted first), their table, top findings, top statements
 * and the latest requests. */
void view_html_index(HtmlPage *page, const ViewData *d, const ViewOptions *o);
/* One route (d loaded with o->route): its findings, its own statements charted, its requests. */
void view_html_route(HtmlPage *page, const ViewData *d, const ViewOptions *o);
/* One request (d loaded with o->request): findings marked on its timeline, the batched fix. */
void view_html_request(HtmlPage *page, const ViewData *d);
/* One fingerprint (d loaded with o->fingerprint): text, totals, routes, latency histogram. */
void view_html_fingerprint(HtmlPage *page, const ViewData *d);
/* The runs of the store, newest first, each linking to its pages. */
void view_html_runs(HtmlPage *page, const ReportFile *file, const ReaderRunList *runs);
/* A short page body: a heading and a message (not found, store unreadable). */
void view_html_message(HtmlPage *page, const char *heading, const char *text);

#endif
