/* report/reader_pg — reading a PostgreSQL report store through the SQLite reader.
 *
 * Owns: copying what a report needs out of a PostgreSQL store into a private SQLite file with
 * the store's own SQLite schema, so report/reader serves both backends with the same SQL and
 * the same numbers. Copied: every runs row (small), and for the runs in scope only, their
 * requests, per-request fingerprints, findings, statements and the fingerprint texts those
 * use; with `count_runs`, each run's request and statement counts (for a runs listing). All
 * of it read in one REPEATABLE READ, READ ONLY transaction (a consistent picture that never
 * blocks a writer), through a cursor in slices, so memory stays bounded; the file's size is
 * bounded by the runs in scope. The file is created 0600 in $TMPDIR (else /tmp); the caller
 * removes it (report/reader does on close). */
#ifndef PGTALLY_REPORT_READER_PG_H
#define PGTALLY_REPORT_READER_PG_H

#include <stdbool.h>
#include <stddef.h>

#include "report/reader_scope.h"

/* The table a snapshot holds the run counts in (read by report/reader when present). */
#define READER_PG_RUN_COUNTS "pgtally_run_counts"

/* Copies the runs `scope` names from the store at `target` (schema NULL: the default) into a
 * new temporary file; its path goes to path_out, the store's redacted name to name_out.
 * False with a message naming the store in err (the file is removed then). */
bool reader_pg_snapshot(const char *target, const char *schema, const ReaderScope *scope,
                        bool count_runs, char *path_out, size_t path_len, char *name_out,
                        size_t name_len, char *err, size_t err_len);

#endif
