/* report/viewdata — what one `pgtally report` shows, loaded once, and the formatters.
 *
 * Owns: the ViewData bundle (run, routes, requests, top findings, top fingerprints and the
 * drill-down's details) that every format renders, so that text, JSON, Markdown and HTML
 * show the same figures. Each formatter lives in its own file (view_text.c, view_json.c,
 * view_markdown.c, view_html.c), writes to `out` and leaves error checks on `out` to the
 * caller. */
#ifndef PGTALLY_REPORT_VIEWDATA_H
#define PGTALLY_REPORT_VIEWDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "report/reader.h"

/* Width the text report fits in. */
#define VIEW_TEXT_WIDTH 100
/* Findings and fingerprints shown by default. */
#define VIEW_TOP_DEFAULT 10

typedef struct ViewOptions {
    const char *route;       /* --route: only this route's requests and findings */
    const char *request;     /* --request: one request (id, key or row) */
    const char *fingerprint; /* --fingerprint: one fingerprint (16 hex or a prefix) */
    int64_t run_id;          /* --run; <= 0: the latest */
    size_t top;              /* findings / fingerprints listed; 0: VIEW_TOP_DEFAULT */
    bool color;              /* ANSI colours (text only) */
} ViewOptions;

typedef struct ViewData {
    ReportFile *file; /* borrowed */
    ReaderRun run;
    ReaderRouteList routes;            /* all routes of the run, or only --route's */
    ReaderRequestList requests;        /* the selection: --request's, --route's, or all */
    ReaderTopFindingList findings;     /* top findings over the selection's route(s) */
    ReaderFingerprintList by_calls;    /* top fingerprints of the run by calls */
    ReaderFingerprintList by_time;     /* ... and by DB time */
    ReaderFingerprintList fingerprint; /* --fingerprint's details (one item), else empty */
    ReaderTimeline timeline;           /* --request's statements, else empty */
} ViewData;

/* Loads everything the options ask for. False with a message naming the file when the run,
 * route, request or fingerprint does not exist. */
bool view_load(ReportFile *file, const ViewOptions *opts, ViewData *out, char *err, size_t err_len);
void view_data_free(ViewData *data);

/* The formats. Each writes one complete document to `out`. */
void view_text(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_json(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_markdown(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_html(FILE *out, const ViewData *data, const ViewOptions *opts);

#endif
