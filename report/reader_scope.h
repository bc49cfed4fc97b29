/* report/reader_scope — which runs a report's figures cover.
 *
 * Owns: the ReaderScope type alone, so report/reader (which scopes every query by it) and
 * report/reader_pg (which copies only the runs it names out of a PostgreSQL store, and which
 * report/reader calls) share it without including each other. */
#ifndef PGTALLY_REPORT_READER_SCOPE_H
#define PGTALLY_REPORT_READER_SCOPE_H

#include <stdint.h>

/* Which runs the figures cover. */
typedef struct ReaderScope {
    int64_t run_id;    /* > 0: this one run */
    const char *label; /* else, when non-NULL: every run with this label (any instance) */
} ReaderScope;         /* neither: the latest run (by start time) */

#endif
