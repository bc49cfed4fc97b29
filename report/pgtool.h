/* report/pgtool — a PostgreSQL report store as the tools see it (report, check, merge --to,
 * prune): one libpq connection (libpq loaded at run time through report/store/pq), the
 * store's schema checked or migrated, and helpers that run a statement with text parameters.
 * Every message names the store by its redacted target, never its password. */
#ifndef PGTALLY_REPORT_PGTOOL_H
#define PGTALLY_REPORT_PGTOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report/store/pq.h"

typedef struct PgTool {
    const PqApi *pq;
    PGconn *conn;
    char schema[64]; /* validated: used double-quoted in every statement */
    char name[256];  /* the target without its password, for messages */
} PgTool;

/* Connects to `target` (URL or keyword/value string) and checks the store in `schema` (NULL:
 * the default "pgtally"). `create`: create or migrate the schema (merge --to); otherwise the
 * schema must exist at a version this pgtally reads. False with a message in err. */
bool pgtool_open(PgTool *t, const char *target, const char *schema, bool create, char *err,
                 size_t err_len);
void pgtool_close(PgTool *t);

/* Runs `sql` with `n` text parameters (NULL = SQL NULL). Returns the result when it has the
 * wanted status (PGRES_COMMAND_OK or PGRES_TUPLES_OK), else NULL with "store: what: reason"
 * in err. Release with t->pq->clear. */
PGresult *pgtool_exec(PgTool *t, const char *sql, int n, const char *const *params,
                      const char *what, char *err, size_t err_len);

/* pgtool_exec for statements without rows; *changed (may be NULL) gets the rows affected. */
bool pgtool_run(PgTool *t, const char *sql, int n, const char *const *params, uint64_t *changed,
                const char *what, char *err, size_t err_len);

/* COPY `table` (`columns`) FROM STDIN with `len` bytes of COPY text rows. */
bool pgtool_copy(PgTool *t, const char *table, const char *columns, const char *data, size_t len,
                 char *err, size_t err_len);

#endif
