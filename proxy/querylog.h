/* proxy/querylog — `--log-queries FILE`: every completed statement as one JSON line.
 *
 * Owns: the JSON-lines format of completed-statement events (documented in
 * docs/query-log.md) and the buffered file it goes to. Writes are buffered; the owner calls
 * querylog_flush periodically and at exit. */
#ifndef PGTALLY_PROXY_QUERYLOG_H
#define PGTALLY_PROXY_QUERYLOG_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol/tracker.h"

typedef struct QueryLog QueryLog;

/* Opens (appends to) path, created 0600 (see report/outfile.h). On failure returns NULL and
 * writes a message into err; on success err holds a warning to log, or is empty. */
QueryLog *querylog_open(const char *path, char *err, size_t err_len);
void querylog_write(QueryLog *log, const TrackerEvent *event);
/* Returns false when writing failed (disk full...); the error is counted, lines dropped. */
bool querylog_flush(QueryLog *log);
unsigned long long querylog_dropped(const QueryLog *log);
void querylog_close(QueryLog *log);

#endif
