/* report/store/sqlite — what the modules that open a report file share with its writer.
 *
 * Owns: the mark of a pgtally report file (its application_id), the one check that a file is
 * a report this pgtally can read, merge or prune, and binding values to a statement and
 * running a one-shot statement, for the writer, the reader, merge and prune alike;
 * report/store/sqlite.c also holds the store's SQLite backend (report/store/backend.h). */
#ifndef PGTALLY_REPORT_STORE_SQLITE_H
#define PGTALLY_REPORT_STORE_SQLITE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "pgtl": marks the file as a pgtally report, so another tool's database is never migrated. */
#define STORE_APPLICATION_ID 0x7067746c

/* One value bound to a statement's parameter ?N by its place N in a list: NULL, an integer,
 * or a text of `len` bytes (-1: up to its NUL) that outlives the statement's next step. */
typedef struct SqliteValue {
    enum { SQLITE_VALUE_NULL, SQLITE_VALUE_INT, SQLITE_VALUE_TEXT } type;
    int64_t i;
    const char *s;
    int len;
} SqliteValue;

#define SQLV_NULL ((SqliteValue){.type = SQLITE_VALUE_NULL})
#define SQLV_INT(v) ((SqliteValue){.type = SQLITE_VALUE_INT, .i = (int64_t)(v)})
#define SQLV_TEXT(v) ((SqliteValue){.type = SQLITE_VALUE_TEXT, .s = (v), .len = -1})
#define SQLV_HEX16(v) ((SqliteValue){.type = SQLITE_VALUE_TEXT, .s = (v), .len = 16})
/* NULL for a NULL text, or for a 0 (an unset time) */
#define SQLV_TEXT_OR_NULL(v)                                                                       \
    ((SqliteValue){.type = (v) ? SQLITE_VALUE_TEXT : SQLITE_VALUE_NULL, .s = (v), .len = -1})
#define SQLV_INT_OR_NULL(v)                                                                        \
    ((SqliteValue){.type = (v) ? SQLITE_VALUE_INT : SQLITE_VALUE_NULL, .i = (int64_t)(v)})

/* Binds values[i] to ?i+1 for every parameter `st` has (values past its last are ignored,
 * missing ones stay as they were). */
void store_sqlite_bind(sqlite3_stmt *st, const SqliteValue *values, size_t n);

/* Runs `sql` once with `values` bound (store_sqlite_bind): *value (may be NULL) gets the first
 * column of its first row when it returns one; *changed (may be NULL) the rows it changed.
 * False when it fails; sqlite3_errmsg(db) then says why. */
bool store_sqlite_run(sqlite3 *db, const char *sql, const SqliteValue *values, size_t n,
                      int64_t *value, uint64_t *changed);

/* store_sqlite_run with the values listed: STORE_SQLITE_RUN(db, sql, &v, NULL, SQLV_INT(1)). */
#define STORE_SQLITE_RUN(db, sql, value, changed, ...)                                             \
    store_sqlite_run((db), (sql), (const SqliteValue[]){__VA_ARGS__},                              \
                     sizeof((const SqliteValue[]){__VA_ARGS__}) / sizeof(SqliteValue), (value),    \
                     (changed))

/* The first column of the first row of `sql` (no parameters), e.g. a PRAGMA or a count. */
bool store_sqlite_int(sqlite3 *db, const char *sql, int64_t *out);

/* Checks that the database `schema` ("main", or an attached one) of `db`, opened from `path`,
 * is a pgtally report of a schema version this pgtally knows, and reads that version. False
 * with "path: reason" in err when it is not a report ("not a pgtally report ...") or is newer
 * ("... newer than this pgtally <doing> ..."; `doing`: "reads", "merges", ...). */
bool store_sqlite_check_report(sqlite3 *db, const char *schema, const char *path, const char *doing,
                               int64_t *version, char *err, size_t err_len);

/* The uuid a schema v1/v2 run gets, the same in the v2 -> v3 migration and in `pgtally merge`
 * of an old file: 32 hex digits from a hash of its row (id, start, version, settings). */
void store_sqlite_legacy_uuid(int64_t id, int64_t started_us, const char *version,
                              const char *settings, char out[33]);

#endif
