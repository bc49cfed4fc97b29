/* report/view/viewdata — what one `pgtally report` shows, loaded once, and the formatters.
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
    int64_t run_id;          /* --run; <= 0: the latest (or --label's runs) */
    const char *label;       /* --label: every run with this label, as one picture */
    size_t top;              /* findings / fingerprints listed; 0: VIEW_TOP_DEFAULT */
    bool color;              /* ANSI colours (text only) */
    size_t latest;           /* > 0: only the latest N requests (served pages, bounded) */
} ViewOptions;

typedef struct ViewData {
    ReportFile *file;       /* borrowed */
    ReaderRunList runs;     /* the runs combined, oldest first (one unless --label) */
    ReaderRun run;          /* those runs as one (reader_runs_combine) */
    bool complete;          /* every run's data is complete (reader_runs_complete) */
    char completeness[320]; /* why not, or "complete" */
    size_t instances;       /* distinct instance names among the runs */
    size_t complete_runs;
    ReaderRouteList routes;            /* all routes of the run, or only --route's */
    ReaderRequestList requests;        /* the selection: --request's, --route's, or all */
    ReaderTopFindingList findings;     /* top findings over the selection's route(s) */
    ReaderFingerprintList by_calls;    /* top fingerprints of the scope by calls */
    ReaderFingerprintList by_time;     /* ... and by DB time */
    ReaderFingerprintList fingerprint; /* --fingerprint's details (one item), else empty */
    ReaderTimeline timeline;           /* --request's statements, else empty */
} ViewData;

/* Selects the runs (--run, --label or the latest) and loads everything the options ask for. False
 * with a message naming the file when the run, route, request or fingerprint does not exist. */
bool view_load(ReportFile *file, const ViewOptions *opts, ViewData *out, char *err, size_t err_len);
void view_data_free(ViewData *data);

/* `pgtally report --runs`: every run of the file, or with `label` only that label's runs.
 * False with a message naming the file when the label has no runs. */
bool view_load_runs(ReportFile *file, const char *label, ReaderRunList *out, char *err,
                    size_t err_len);
/* Prints the runs as a table (text) or one JSON document {"file", "runs": [...]}. */
void view_runs(FILE *out, const ReportFile *file, const ReaderRunList *runs, bool json);

/* What the report covers, for a header: "run 3", or for --label
 * `label "L": 3 runs on 2 instances, 2 complete`. Unescaped: each format escapes it. */
void view_scope_text(const ViewData *data, const ViewOptions *opts, char *out, size_t cap);

/* The scope's totals, summed over its routes (not its requests: a served page loads only the
 * latest requests, and its header still counts them all). */
typedef struct ViewTotals {
    uint64_t requests, queries, db_time_us, n_plus_one, rows, bytes;
} ViewTotals;
void view_totals(const ViewData *data, ViewTotals *out);

/* The formats. Each writes one complete document to `out`. */
void view_text(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_json(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_markdown(FILE *out, const ViewData *data, const ViewOptions *opts);
void view_html(FILE *out, const ViewData *data, const ViewOptions *opts);

#endif
