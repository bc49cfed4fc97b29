/* report/store/sqlite — what the modules that open a report file share with its writer.
 *
 * Owns: the mark of a pgtally report file (its application_id) and the one check that a file
 * is a report this pgtally can read, merge or prune; report/store/sqlite.c also holds the
 * store's SQLite backend (report/store/backend.h). */
#ifndef PGTALLY_REPORT_STORE_SQLITE_H
#define PGTALLY_REPORT_STORE_SQLITE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "pgtl": marks the file as a pgtally report, so another tool's database is never migrated. */
#define STORE_APPLICATION_ID 0x7067746c

/* The first column of the first row of `sql` (no parameters). False when it fails or has no
 * row; sqlite3_errmsg(db) then says why. */
bool store_sqlite_int(sqlite3 *db, const char *sql, int64_t *out);

/* Checks that the database `schema` ("main", or an attached one) of `db`, opened from `path`,
 * is a pgtally report of a schema version this pgtally knows, and reads that version. False
 * with "path: reason" in err when it is not a report ("not a pgtally report ...") or is newer
 * ("... newer than this pgtally <doing> ..."; `doing`: "reads", "merges", ...). */
bool store_sqlite_check_report(sqlite3 *db, const char *schema, const char *path, const char *doing,
                               int64_t *version, char *err, size_t err_len);

#endif
