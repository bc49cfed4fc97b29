/* report/prune — see prune.h. The chosen runs go into a TEMP table (`doomed`) first, so the
 * counts of a dry run and the deletions of a real one select exactly the same rows. */
#include "report/prune.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/errfmt.h"
#include "report/pgtool.h"
#include "report/store.h"
#include "report/store/sqlite.h"

bool prune_parse_age(const char *s, int64_t *out_us)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || !end[0] || end[1])
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (*end != units[i].unit)
            continue;
        if (v > INT64_MAX / 1000000 / units[i].seconds)
            return false;
        *out_us = (int64_t)v * units[i].seconds * 1000000;
        return true;
    }
    return false;
}

static bool exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* ?1 cutoff, ?2 labels kept. %s: the run's latest activity; %s: its label. */
static const char sql_choose_fmt[] =
    "INSERT INTO temp.doomed SELECT id FROM runs WHERE %s < ?1 AND (%s = '' OR %s NOT IN"
    " (SELECT label FROM runs WHERE label <> '' GROUP BY label ORDER BY max(started_us) DESC"
    " LIMIT ?2))";

/* What references a fingerprint, among the rows of runs that stay. */
#define KEPT_FINGERPRINTS                                                                          \
    "SELECT rf.fingerprint FROM request_fingerprints rf JOIN requests q ON q.id = rf.request_id"   \
    " WHERE q.run_id NOT IN (SELECT id FROM temp.doomed)"                                          \
    " UNION SELECT s.fingerprint FROM statements s JOIN requests q ON q.id = s.request_id"         \
    " WHERE q.run_id NOT IN (SELECT id FROM temp.doomed)"                                          \
    " UNION SELECT f.fingerprint FROM findings f JOIN requests q ON q.id = f.request_id"           \
    " WHERE q.run_id NOT IN (SELECT id FROM temp.doomed) AND f.fingerprint IS NOT NULL"

static bool count_doomed(sqlite3 *db, int64_t cutoff, PruneStats *s)
{
    int64_t runs = 0, requests = 0, statements = 0, fingerprints = 0;
    bool ok =
        store_sqlite_run(db, "SELECT count(*) FROM temp.doomed", NULL, 0, &runs, NULL) &&
        store_sqlite_run(
            db, "SELECT count(*) FROM requests WHERE run_id IN (SELECT id FROM temp.doomed)", NULL,
            0, &requests, NULL) &&
        store_sqlite_run(
            db,
            "SELECT count(*) FROM statements WHERE request_id IN (SELECT id FROM requests"
            " WHERE run_id IN (SELECT id FROM temp.doomed))",
            NULL, 0, &statements, NULL) &&
        STORE_SQLITE_RUN(
            db,
            "SELECT count(*) FROM fingerprints WHERE first_seen_us < ?1 AND fingerprint NOT IN"
            " (" KEPT_FINGERPRINTS ")",
            &fingerprints, NULL, SQLV_INT(cutoff));
    s->runs = (uint64_t)runs;
    s->requests = (uint64_t)requests;
    s->statements = (uint64_t)statements;
    s->fingerprints = (uint64_t)fingerprints;
    return ok;
}

/* Deletes the doomed runs' rows `batch` requests per transaction; the runs themselves go in
 * the transaction that finds no request left, so a request written meanwhile is not orphaned. */
static bool delete_doomed(sqlite3 *db, int64_t cutoff, size_t batch, PruneStats *s)
{
    if (!exec(db, "CREATE TEMP TABLE IF NOT EXISTS batch (id INTEGER PRIMARY KEY)"))
        return false;
    for (;;) {
        uint64_t picked = 0, n = 0;
        if (!exec(db, "BEGIN IMMEDIATE"))
            return false;
        if (!exec(db, "DELETE FROM temp.batch") ||
            !STORE_SQLITE_RUN(db,
                              "INSERT INTO temp.batch SELECT id FROM requests WHERE run_id IN"
                              " (SELECT id FROM temp.doomed) ORDER BY id LIMIT ?1",
                              NULL, &picked, SQLV_INT((int64_t)batch)))
            goto fail;
        if (picked == 0) {
            if (!store_sqlite_run(db, "DELETE FROM runs WHERE id IN (SELECT id FROM temp.doomed)",
                                  NULL, 0, NULL, &n) ||
                !exec(db, "COMMIT"))
                goto fail;
            s->runs += n;
            break;
        }
        uint64_t statements = 0, requests = 0;
        if (!store_sqlite_run(
                db, "DELETE FROM statements WHERE request_id IN (SELECT id FROM temp.batch)", NULL,
                0, NULL, &statements) ||
            !exec(db, "DELETE FROM request_fingerprints WHERE request_id IN"
                      " (SELECT id FROM temp.batch)") ||
            !exec(db, "DELETE FROM findings WHERE request_id IN (SELECT id FROM temp.batch)") ||
            !store_sqlite_run(db, "DELETE FROM requests WHERE id IN (SELECT id FROM temp.batch)",
                              NULL, 0, NULL, &requests) ||
            !exec(db, "COMMIT"))
            goto fail;
        s->statements += statements;
        s->requests += requests;
    }
    /* Texts nothing references any more, judged now, inside the writer lock. */
    uint64_t n = 0;
    if (!exec(db, "BEGIN IMMEDIATE"))
        return false;
    if (!STORE_SQLITE_RUN(db,
                          "DELETE FROM fingerprints WHERE first_seen_us < ?1"
                          " AND fingerprint NOT IN (SELECT fingerprint FROM request_fingerprints)"
                          " AND fingerprint NOT IN (SELECT fingerprint FROM statements)"
                          " AND fingerprint NOT IN (SELECT fingerprint FROM findings"
                          "  WHERE fingerprint IS NOT NULL)",
                          NULL, &n, SQLV_INT(cutoff)) ||
        !exec(db, "COMMIT"))
        goto fail;
    s->fingerprints += n;
    return true;
fail:
    exec(db, "ROLLBACK");
    return false;
}

bool prune_sqlite(const char *path, const PruneOptions *o, PruneStats *stats, char *err,
                  size_t err_len)
{
    memset(stats, 0, sizeof *stats);
    sqlite3 *db = NULL;
    bool ok = false;
    int flags = o->dry_run ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot open: %s", path, sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_busy_timeout(db, 5000);
    int64_t version = 0;
    if (!store_sqlite_check_report(db, "main", path, "prunes", &version, err, err_len))
        goto done;
    /* Older files lack the columns that tell a run's later activity and its label. */
    const char *activity =
        version >= 3   ? "max(started_us, coalesce(ended_us, 0), coalesce(flushed_us, 0),"
                         " coalesce(heartbeat_us, 0))"
        : version == 2 ? "max(started_us, coalesce(ended_us, 0), coalesce(flushed_us, 0))"
                       : "max(started_us, coalesce(ended_us, 0))";
    const char *label = version >= 3 ? "label" : "''";
    char choose[1024];
    snprintf(choose, sizeof choose, sql_choose_fmt, activity, label, label);
    if (version < 3) /* no labels: nothing to keep by label */
        snprintf(choose, sizeof choose, "INSERT INTO temp.doomed SELECT id FROM runs WHERE %s < ?1",
                 activity);
    if (!exec(db, "CREATE TEMP TABLE doomed (id INTEGER PRIMARY KEY)") ||
        !STORE_SQLITE_RUN(db, choose, NULL, NULL, SQLV_INT(o->cutoff_us),
                          SQLV_INT((int64_t)o->keep_labels))) {
        report_err(err, err_len, "%s: cannot choose the runs to prune: %s", path,
                   sqlite3_errmsg(db));
        goto done;
    }
    if (o->dry_run) {
        ok = count_doomed(db, o->cutoff_us, stats);
    } else {
        ok = delete_doomed(db, o->cutoff_us, o->batch ? o->batch : PRUNE_DEFAULT_BATCH, stats);
    }
    if (!ok)
        report_err(err, err_len, "%s: cannot prune: %s", path, sqlite3_errmsg(db));
done:
    sqlite3_close(db);
    return ok;
}

/* ---- a PostgreSQL store -----------------------------------------------------------------------
 */

/* The doomed runs' ids as an array literal ("{3,4}"), from the same rule as the SQLite one. */
static char *pg_doomed(PgTool *t, const PruneOptions *o, size_t *n, char *err, size_t err_len)
{
    char sql[700], cutoff[24], keep[24];
    snprintf(sql, sizeof sql,
             "SELECT id FROM \"%1$s\".runs WHERE greatest(started_us, coalesce(ended_us, 0),"
             " coalesce(flushed_us, 0), coalesce(heartbeat_us, 0)) < $1 AND (label = '' OR"
             " label NOT IN (SELECT label FROM \"%1$s\".runs WHERE label <> '' GROUP BY label"
             " ORDER BY max(started_us) DESC LIMIT $2)) ORDER BY id",
             t->schema);
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)o->cutoff_us);
    snprintf(keep, sizeof keep, "%zu", o->keep_labels);
    const char *params[2] = {cutoff, keep};
    PGresult *res = pgtool_exec(t, sql, 2, params, "cannot choose the runs to prune", err, err_len);
    if (!res)
        return NULL;
    *n = (size_t)t->pq->ntuples(res);
    char *ids = malloc(*n * 21 + 3);
    if (ids) {
        size_t used = 0;
        ids[used++] = '{';
        for (size_t i = 0; i < *n; i++)
            used +=
                (size_t)sprintf(ids + used, "%s%s", i ? "," : "", t->pq->getvalue(res, (int)i, 0));
        ids[used++] = '}';
        ids[used] = 0;
    } else {
        report_err(err, err_len, "%s: out of memory", t->name);
    }
    t->pq->clear(res);
    return ids;
}

static bool pg_count(PgTool *t, const char *fmt, const char *const *params, int n, uint64_t *out,
                     char *err, size_t err_len)
{
    char sql[1200];
    snprintf(sql, sizeof sql, fmt, t->schema);
    PGresult *res = pgtool_exec(t, sql, n, params, "cannot count", err, err_len);
    if (!res)
        return false;
    *out = strtoull(t->pq->getvalue(res, 0, 0), NULL, 10);
    t->pq->clear(res);
    return true;
}

/* References to a fingerprint from the rows of runs that stay ($1: the doomed runs). */
#define PG_KEPT_REFS(table)                                                                        \
    " AND NOT EXISTS (SELECT 1 FROM \"%1$s\"." table " x JOIN \"%1$s\".requests q"                 \
    " ON q.id = x.request_id WHERE x.fingerprint = f.fingerprint AND NOT q.run_id = ANY($1))"
/* References from any row, judged at the moment of deleting ($1: the cutoff). */
#define PG_ANY_REFS(table)                                                                         \
    " AND NOT EXISTS (SELECT 1 FROM \"%1$s\"." table " x WHERE x.fingerprint = f.fingerprint)"

bool prune_pg(PgTool *t, const PruneOptions *o, PruneStats *s, char *err, size_t err_len)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    char *ids = pg_doomed(t, o, &n, err, err_len);
    if (!ids)
        return false;
    char cutoff[24], batch[24], sql[600];
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)o->cutoff_us);
    snprintf(batch, sizeof batch, "%zu", o->batch ? o->batch : PRUNE_DEFAULT_BATCH);
    const char *doomed[2] = {ids, cutoff};
    bool ok = true;
    if (o->dry_run) {
        s->runs = n;
        ok = pg_count(t, "SELECT count(*) FROM \"%1$s\".requests WHERE run_id = ANY($1)", doomed, 1,
                      &s->requests, err, err_len) &&
             pg_count(t,
                      "SELECT count(*) FROM \"%1$s\".statements s JOIN \"%1$s\".requests q"
                      " ON q.id = s.request_id WHERE q.run_id = ANY($1)",
                      doomed, 1, &s->statements, err, err_len) &&
             pg_count(t,
                      "SELECT count(*) FROM \"%1$s\".fingerprints f WHERE first_seen_us < "
                      "$2" PG_KEPT_REFS("request_fingerprints") PG_KEPT_REFS("statements")
                          PG_KEPT_REFS("findings"),
                      doomed, 2, &s->fingerprints, err, err_len);
        free(ids);
        return ok;
    }
    ok = pgtool_run(t,
                    "CREATE TEMP TABLE IF NOT EXISTS pgtally_prune_batch (id bigint)"
                    " ON COMMIT DELETE ROWS",
                    0, NULL, NULL, "cannot prune", err, err_len);
    static const char *const children[] = {"statements", "request_fingerprints", "findings"};
    while (ok) {
        uint64_t picked = 0, changed = 0;
        ok = pgtool_run(t, "BEGIN", 0, NULL, NULL, "cannot prune", err, err_len);
        snprintf(sql, sizeof sql,
                 "INSERT INTO pgtally_prune_batch SELECT id FROM \"%s\".requests"
                 " WHERE run_id = ANY($1) ORDER BY id LIMIT $2",
                 t->schema);
        const char *params[2] = {ids, batch};
        ok = ok && pgtool_run(t, sql, 2, params, &picked, "cannot prune", err, err_len);
        if (ok && picked == 0) {
            /* The runs go in the transaction that found no request left of them. */
            snprintf(sql, sizeof sql, "DELETE FROM \"%s\".runs WHERE id = ANY($1)", t->schema);
            ok = pgtool_run(t, sql, 1, params, &changed, "cannot prune", err, err_len) &&
                 pgtool_run(t, "COMMIT", 0, NULL, NULL, "cannot prune", err, err_len);
            s->runs += ok ? changed : 0;
            break;
        }
        for (size_t i = 0; ok && i < sizeof children / sizeof children[0]; i++) {
            snprintf(sql, sizeof sql,
                     "DELETE FROM \"%s\".%s WHERE request_id IN (SELECT id FROM"
                     " pgtally_prune_batch)",
                     t->schema, children[i]);
            ok = pgtool_run(t, sql, 0, NULL, &changed, "cannot prune", err, err_len);
            if (ok && i == 0)
                s->statements += changed;
        }
        snprintf(sql, sizeof sql,
                 "DELETE FROM \"%s\".requests WHERE id IN (SELECT id FROM pgtally_prune_batch)",
                 t->schema);
        ok = ok && pgtool_run(t, sql, 0, NULL, &changed, "cannot prune", err, err_len);
        if (ok)
            s->requests += changed;
        ok = ok && pgtool_run(t, "COMMIT", 0, NULL, NULL, "cannot prune", err, err_len);
    }
    if (ok) {
        uint64_t changed = 0;
        char del[900];
        snprintf(del, sizeof del,
                 "DELETE FROM \"%1$s\".fingerprints f WHERE first_seen_us < $1" PG_ANY_REFS(
                     "request_fingerprints") PG_ANY_REFS("statements") PG_ANY_REFS("findings"),
                 t->schema);
        const char *params[1] = {cutoff};
        ok = pgtool_run(t, del, 1, params, &changed, "cannot prune fingerprints", err, err_len);
        s->fingerprints += ok ? changed : 0;
    }
    if (!ok)
        pgtool_run(t, "ROLLBACK", 0, NULL, NULL, "rollback", NULL, 0);
    free(ids);
    return ok;
}
