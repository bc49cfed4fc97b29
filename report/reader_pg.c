/* report/reader_pg — see reader_pg.h. */
#include "report/reader_pg.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/errfmt.h"
#include "report/pgtool.h"
#include "report/store.h"

/* Rows fetched from the cursor at a time: the bound on what one slice holds in memory. */
#define FETCH_ROWS 2000
#define FETCH_SQL "FETCH 2000 FROM pgtally_copy"

/* One table's copy: the PostgreSQL query (%1$s: the schema; $1: the scope's run ids, when
 * used), the SQLite insert, and per column 'i' (integer) or 't' (text). */
typedef struct TableCopy {
    const char *what;
    const char *select_fmt;
    const char *insert;
    const char *types;
} TableCopy;

#define IN_SCOPE_PG "= ANY($1::bigint[])"

static const TableCopy copy_runs = {
    "runs",
    "SELECT id, started_us, ended_us, version, settings, statements, requests,"
    " dropped_requests, dropped_statements, dropped_fingerprints, untracked_statements,"
    " complete, flushed_us, uuid, label, instance, pid, heartbeat_us, heartbeat_statements"
    " FROM \"%1$s\".runs",
    "INSERT INTO runs (id, started_us, ended_us, version, settings, statements, requests,"
    " dropped_requests, dropped_statements, dropped_fingerprints, untracked_statements,"
    " complete, flushed_us, uuid, label, instance, pid, heartbeat_us, heartbeat_statements)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19)",
    "iiittiiiiiiiitttiii",
};

static const TableCopy copy_tables[] = {
    {"fingerprints",
     "SELECT fingerprint, normalized, command, sample, first_seen_us FROM \"%1$s\".fingerprints"
     " WHERE fingerprint IN (SELECT rf.fingerprint FROM \"%1$s\".request_fingerprints rf"
     " JOIN \"%1$s\".requests q ON q.id = rf.request_id WHERE q.run_id " IN_SCOPE_PG
     " UNION SELECT s.fingerprint FROM \"%1$s\".statements s JOIN \"%1$s\".requests q"
     " ON q.id = s.request_id WHERE q.run_id " IN_SCOPE_PG
     " UNION SELECT f.fingerprint FROM \"%1$s\".findings f JOIN \"%1$s\".requests q"
     " ON q.id = f.request_id WHERE q.run_id " IN_SCOPE_PG ")",
     "INSERT INTO fingerprints (fingerprint, normalized, command, sample, first_seen_us)"
     " VALUES (?1, ?2, ?3, ?4, ?5)",
     "tttti"},
    {"requests",
     "SELECT id, run_id, key, route, tags, conn_id, start_us, end_us, end_reason, statements,"
     " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
     " rows, bytes, truncated, timeline_dropped FROM \"%1$s\".requests"
     " WHERE run_id " IN_SCOPE_PG,
     "INSERT INTO requests (id, run_id, key, route, tags, conn_id, start_us, end_us, end_reason,"
     " statements, setup_statements, distinct_fingerprints, duplicates, errors, transactions,"
     " db_time_us, rows, bytes, truncated, timeline_dropped) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
     " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
     "iitttiiitiiiiiiiiiii"},
    {"request_fingerprints",
     "SELECT rf.request_id, rf.fingerprint, rf.calls, rf.distinct_values, rf.total_time_us,"
     " rf.rows, rf.bytes, rf.errors, rf.is_write FROM \"%1$s\".request_fingerprints rf"
     " JOIN \"%1$s\".requests q ON q.id = rf.request_id WHERE q.run_id " IN_SCOPE_PG,
     "INSERT INTO request_fingerprints (request_id, fingerprint, calls, distinct_values,"
     " total_time_us, rows, bytes, errors, is_write) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
     "itiiiiiii"},
    {"findings",
     "SELECT f.request_id, f.kind, f.fingerprint, f.count, f.distinct_values, f.is_write,"
     " f.by_bytes FROM \"%1$s\".findings f JOIN \"%1$s\".requests q ON q.id = f.request_id"
     " WHERE q.run_id " IN_SCOPE_PG,
     "INSERT INTO findings (request_id, kind, fingerprint, count, distinct_values, is_write,"
     " by_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
     "ittiiii"},
    {"statements",
     "SELECT s.request_id, s.seq, s.fingerprint, s.values_hash, s.start_us, s.duration_us,"
     " s.rows, s.bytes, s.conn_id, s.sqlstate, s.setup FROM \"%1$s\".statements s"
     " JOIN \"%1$s\".requests q ON q.id = s.request_id WHERE q.run_id " IN_SCOPE_PG,
     "INSERT INTO statements (request_id, seq, fingerprint, values_hash, start_us, duration_us,"
     " rows, bytes, conn_id, sqlstate, setup) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
     " ?11)",
     "iittiiiiiti"},
};

static const TableCopy copy_counts = {
    "run counts",
    "SELECT run_id, count(*), coalesce(sum(statements), 0) FROM \"%1$s\".requests"
    " GROUP BY run_id",
    "INSERT INTO " READER_PG_RUN_COUNTS " (run_id, requests, statements) VALUES (?1, ?2, ?3)",
    "iii",
};

/* Streams one query's rows into SQLite through a cursor, FETCH_ROWS at a time. */
static bool copy_table(PgTool *t, sqlite3 *db, const TableCopy *c, const char *ids, char *err,
                       size_t err_len)
{
    char select[2048], declare[2200];
    snprintf(select, sizeof select, c->select_fmt, t->schema);
    snprintf(declare, sizeof declare, "DECLARE pgtally_copy NO SCROLL CURSOR FOR %s", select);
    bool uses_ids = strstr(select, "$1") != NULL;
    const char *params[1] = {ids};
    char what[64];
    snprintf(what, sizeof what, "cannot read %s", c->what);
    PGresult *res = pgtool_exec(t, declare, uses_ids ? 1 : 0, params, what, err, err_len);
    if (!res)
        return false;
    t->pq->clear(res);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, c->insert, -1, &st, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot copy %s: %s", t->name, c->what, sqlite3_errmsg(db));
        return false;
    }
    size_t ncols = strlen(c->types);
    bool ok = true;
    for (;;) {
        res = pgtool_exec(t, FETCH_SQL, 0, NULL, what, err, err_len);
        if (!res) {
            ok = false;
            break;
        }
        int rows = t->pq->ntuples(res);
        for (int r = 0; ok && r < rows; r++) {
            for (size_t k = 0; k < ncols; k++) {
                int col = (int)k;
                if (t->pq->getisnull(res, r, col))
                    sqlite3_bind_null(st, col + 1);
                else if (c->types[k] == 'i')
                    sqlite3_bind_int64(st, col + 1,
                                       strtoll(t->pq->getvalue(res, r, col), NULL, 10));
                else
                    sqlite3_bind_text(st, col + 1, t->pq->getvalue(res, r, col),
                                      t->pq->getlength(res, r, col), SQLITE_STATIC);
            }
            if (sqlite3_step(st) != SQLITE_DONE) {
                report_err(err, err_len, "%s: cannot copy %s: %s", t->name, c->what,
                           sqlite3_errmsg(db));
                ok = false;
            }
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
        }
        t->pq->clear(res);
        if (!ok || rows < FETCH_ROWS)
            break;
    }
    sqlite3_finalize(st);
    if (ok)
        ok = pgtool_run(t, "CLOSE pgtally_copy", 0, NULL, NULL, what, err, err_len);
    return ok;
}

/* The ids of the runs in scope as a PostgreSQL array literal ("{1,5}"); NULL with err set. */
static char *scope_ids(PgTool *t, const ReaderScope *scope, char *err, size_t err_len)
{
    char sql[256], id[24];
    const char *params[1] = {NULL};
    int n = 0;
    if (scope->run_id > 0) {
        snprintf(sql, sizeof sql, "SELECT id FROM \"%s\".runs WHERE id = $1", t->schema);
        snprintf(id, sizeof id, "%lld", (long long)scope->run_id);
        params[0] = id;
        n = 1;
    } else if (scope->label) {
        snprintf(sql, sizeof sql, "SELECT id FROM \"%s\".runs WHERE label = $1 ORDER BY id",
                 t->schema);
        params[0] = scope->label;
        n = 1;
    } else {
        snprintf(sql, sizeof sql,
                 "SELECT id FROM \"%s\".runs ORDER BY started_us DESC, id DESC LIMIT 1", t->schema);
    }
    PGresult *res = pgtool_exec(t, sql, n, params, "cannot read runs", err, err_len);
    if (!res)
        return NULL;
    int rows = t->pq->ntuples(res);
    char *out = malloc((size_t)rows * 21 + 3);
    if (out) {
        size_t used = 0;
        out[used++] = '{';
        for (int r = 0; r < rows; r++)
            used += (size_t)sprintf(out + used, "%s%s", r ? "," : "", t->pq->getvalue(res, r, 0));
        out[used++] = '}';
        out[used] = 0;
    } else {
        report_err(err, err_len, "%s: out of memory", t->name);
    }
    t->pq->clear(res);
    return out;
}

static bool sqlite_exec(sqlite3 *db, const char *sql, const char *name, char *err, size_t err_len)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return true;
    report_err(err, err_len, "%s: cannot build the local copy: %s", name,
               msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return false;
}

bool reader_pg_snapshot(const char *target, const char *schema, const ReaderScope *scope,
                        bool count_runs, char *path_out, size_t path_len, char *name_out,
                        size_t name_len, char *err, size_t err_len)
{
    PgTool t;
    if (!pgtool_open(&t, target, schema, false, err, err_len))
        return false;
    snprintf(name_out, name_len, "%s", t.name);
    const char *dir = getenv("TMPDIR");
    snprintf(path_out, path_len, "%s/pgtally-report-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path_out); /* mode 0600 */
    if (fd < 0) {
        report_err(err, err_len, "%s: cannot create a temporary file in %s: %s", t.name,
                   dir && *dir ? dir : "/tmp", strerror(errno));
        pgtool_close(&t);
        return false;
    }
    close(fd);
    sqlite3 *db = NULL;
    char *ids = NULL;
    bool ok = store_prepare_file(path_out, err, err_len) &&
              sqlite3_open_v2(path_out, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK;
    if (!ok && db)
        report_err(err, err_len, "%s: cannot build the local copy: %s", t.name, sqlite3_errmsg(db));
    /* A throwaway copy: no journal to keep, and a plain rollback journal so a read-only
     * reader needs no -shm file. */
    ok = ok && sqlite_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; BEGIN",
                           t.name, err, err_len);
    ok = ok && pgtool_run(&t, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL,
                          "cannot start reading", err, err_len);
    ok = ok && copy_table(&t, db, &copy_runs, NULL, err, err_len);
    ok = ok && (ids = scope_ids(&t, scope, err, err_len)) != NULL;
    for (size_t i = 0; ok && i < sizeof copy_tables / sizeof copy_tables[0]; i++)
        ok = copy_table(&t, db, &copy_tables[i], ids, err, err_len);
    if (ok && count_runs)
        ok = sqlite_exec(db,
                         "CREATE TABLE " READER_PG_RUN_COUNTS
                         " (run_id INTEGER PRIMARY KEY, requests INTEGER, statements INTEGER)",
                         t.name, err, err_len) &&
             copy_table(&t, db, &copy_counts, NULL, err, err_len);
    ok = ok && pgtool_run(&t, "COMMIT", 0, NULL, NULL, "cannot finish reading", err, err_len);
    ok = ok && sqlite_exec(db, "COMMIT", t.name, err, err_len);
    free(ids);
    sqlite3_close(db);
    pgtool_close(&t);
    if (!ok) {
        unlink(path_out);
        char side[4200];
        snprintf(side, sizeof side, "%s-journal", path_out);
        unlink(side);
    }
    return ok;
}
