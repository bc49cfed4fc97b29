/* report/merge — see merge.h. The input is ATTACHed read-only to the output's connection, so
 * each run is copied by a handful of INSERT ... SELECT statements inside one transaction. */
#include "report/merge.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report/errfmt.h"
#include "report/pgtool.h"
#include "report/store.h"
#include "report/store/pg_schema.h"
#include "report/store/sqlite.h"

/* ---- the input -------------------------------------------------------------------------- */

bool merge_check_input(const char *in_path, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(in_path, &sb) != 0) {
        report_err(err, err_len, "%s: cannot read: %s", in_path, strerror(errno));
        return false;
    }
    if (!S_ISREG(sb.st_mode)) {
        report_err(err, err_len, "%s: cannot read: not a regular file", in_path);
        return false;
    }
    sqlite3 *db = NULL;
    int64_t version = 0;
    bool ok = sqlite3_open_v2(in_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK;
    if (!ok)
        report_err(err, err_len, "%s: cannot open: %s", in_path, sqlite3_errmsg(db));
    else
        ok = store_sqlite_check_report(db, "main", in_path, "merges", &version, err, err_len);
    sqlite3_close(db);
    return ok;
}

/* ---- copying one run ---------------------------------------------------------------------- */

typedef struct SourceRun {
    int64_t id;
    int64_t ended_us; /* 0: not ended */
    char uuid[33];
} SourceRun;

static bool exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* The rows of run ?1 (a run of the output), children first. */
static const char *const sql_delete_run[] = {
    "DELETE FROM main.statements WHERE request_id IN (SELECT id FROM main.requests WHERE run_id = "
    "?1)",
    "DELETE FROM main.request_fingerprints WHERE request_id IN"
    " (SELECT id FROM main.requests WHERE run_id = ?1)",
    "DELETE FROM main.findings WHERE request_id IN (SELECT id FROM main.requests WHERE run_id = "
    "?1)",
    "DELETE FROM main.requests WHERE run_id = ?1",
    "DELETE FROM main.runs WHERE id = ?1",
};

/* The fingerprints run ?1 of the input uses. */
#define SRC_RUN_FINGERPRINTS                                                                       \
    "SELECT rf.fingerprint FROM src.request_fingerprints rf JOIN src.requests q"                   \
    " ON q.id = rf.request_id WHERE q.run_id = ?1"                                                 \
    " UNION SELECT s.fingerprint FROM src.statements s JOIN src.requests q"                        \
    " ON q.id = s.request_id WHERE q.run_id = ?1"                                                  \
    " UNION SELECT f.fingerprint FROM src.findings f JOIN src.requests q"                          \
    " ON q.id = f.request_id WHERE q.run_id = ?1 AND f.fingerprint IS NOT NULL"

/* ?1 input run, ?2 request id offset. */
static const char sql_copy_requests[] =
    "INSERT INTO main.requests (id, run_id, key, route, tags, conn_id, start_us, end_us,"
    " end_reason, statements, setup_statements, distinct_fingerprints, duplicates, errors,"
    " transactions, db_time_us, rows, bytes, truncated, timeline_dropped)"
    " SELECT id + ?2, ?3, key, route, tags, conn_id, start_us, end_us, end_reason, statements,"
    " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
    " rows, bytes, truncated, timeline_dropped FROM src.requests WHERE run_id = ?1";
static const char sql_copy_request_fingerprints[] =
    "INSERT INTO main.request_fingerprints (request_id, fingerprint, calls, distinct_values,"
    " total_time_us, rows, bytes, errors, is_write)"
    " SELECT rf.request_id + ?2, rf.fingerprint, rf.calls, rf.distinct_values,"
    " rf.total_time_us, rf.rows, rf.bytes, rf.errors, rf.is_write"
    " FROM src.request_fingerprints rf JOIN src.requests q ON q.id = rf.request_id"
    " WHERE q.run_id = ?1";
static const char sql_copy_findings[] =
    "INSERT INTO main.findings (request_id, kind, fingerprint, count, distinct_values, is_write,"
    " by_bytes) SELECT f.request_id + ?2, f.kind, f.fingerprint, f.count, f.distinct_values,"
    " f.is_write, f.by_bytes FROM src.findings f JOIN src.requests q ON q.id = f.request_id"
    " WHERE q.run_id = ?1";
static const char sql_copy_statements[] =
    "INSERT INTO main.statements (request_id, seq, fingerprint, values_hash, start_us,"
    " duration_us, rows, bytes, conn_id, sqlstate, setup)"
    " SELECT s.request_id + ?2, s.seq, s.fingerprint, s.values_hash, s.start_us,"
    " s.duration_us, s.rows, s.bytes, s.conn_id, s.sqlstate, s.setup"
    " FROM src.statements s JOIN src.requests q ON q.id = s.request_id WHERE q.run_id = ?1";
/* First text wins; a sample the output lacks is filled in from the input. */
static const char sql_copy_fingerprints[] =
    "INSERT OR IGNORE INTO main.fingerprints (fingerprint, normalized, command, sample,"
    " first_seen_us) SELECT fingerprint, normalized, command, sample, first_seen_us"
    " FROM src.fingerprints WHERE fingerprint IN (" SRC_RUN_FINGERPRINTS ")";
static const char sql_fill_samples[] =
    "UPDATE main.fingerprints SET sample = (SELECT p.sample FROM src.fingerprints p"
    " WHERE p.fingerprint = main.fingerprints.fingerprint)"
    " WHERE sample IS NULL AND fingerprint IN (SELECT fingerprint FROM src.fingerprints"
    " WHERE sample IS NOT NULL AND fingerprint IN (" SRC_RUN_FINGERPRINTS "))";

/* The run row; columns an older input lacks get their defaults. ?1 input run, ?2 uuid. */
static const char *sql_copy_run(int64_t version)
{
#define COPY_RUN(rest)                                                                             \
    "INSERT INTO main.runs (started_us, ended_us, version, settings, statements, requests,"        \
    " dropped_requests, dropped_statements, dropped_fingerprints, untracked_statements,"           \
    " complete, flushed_us, uuid, label, instance, pid, heartbeat_us, heartbeat_statements)"       \
    " SELECT started_us, ended_us, version, settings, statements, requests, dropped_requests,"     \
    " dropped_statements, dropped_fingerprints, untracked_statements, complete, " rest             \
    " FROM src.runs WHERE id = ?1"
    if (version >= 3)
        return COPY_RUN("flushed_us, ?2, label, instance, pid, heartbeat_us, heartbeat_statements");
    if (version == 2)
        return COPY_RUN("flushed_us, ?2, '', '', NULL, NULL, NULL");
    return COPY_RUN("NULL, ?2, '', '', NULL, NULL, NULL");
#undef COPY_RUN
}

/* One run, in one transaction. */
static bool copy_run(sqlite3 *db, int64_t version, const SourceRun *run, MergeStats *stats,
                     const char *out_path, const char *in_path, char *err, size_t err_len)
{
    if (!exec(db, "BEGIN IMMEDIATE")) {
        report_err(err, err_len, "%s: cannot lock for writing: %s", out_path, sqlite3_errmsg(db));
        return false;
    }
    sqlite3_stmt *st = NULL;
    int64_t existing = 0, existing_ended = 0;
    bool ok =
        sqlite3_prepare_v2(db, "SELECT id, coalesce(ended_us, 0) FROM main.runs WHERE uuid = ?1",
                           -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, run->uuid, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            existing = sqlite3_column_int64(st, 0);
            existing_ended = sqlite3_column_int64(st, 1);
        }
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (!ok)
        goto fail;
    bool replace = existing && !existing_ended && run->ended_us;
    if (existing && !replace) {
        if (!exec(db, "COMMIT"))
            goto fail;
        stats->runs_skipped++;
        return true;
    }
    for (size_t i = 0; replace && i < sizeof sql_delete_run / sizeof sql_delete_run[0]; i++)
        if (!STORE_SQLITE_RUN(db, sql_delete_run[i], NULL, NULL, SQLV_INT(existing)))
            goto fail;
    if (!STORE_SQLITE_RUN(db, sql_copy_run(version), NULL, NULL, SQLV_INT(run->id),
                          SQLV_TEXT(run->uuid)))
        goto fail;
    int64_t new_run = sqlite3_last_insert_rowid(db);
    /* New request ids start past every id the output holds, so none can collide. */
    int64_t max_out = 0, min_in = 1;
    if (!store_sqlite_int(db, "SELECT coalesce(max(id), 0) FROM main.requests", &max_out))
        goto fail;
    if (!STORE_SQLITE_RUN(db, "SELECT coalesce(min(id), 1) FROM src.requests WHERE run_id = ?1",
                          &min_in, NULL, SQLV_INT(run->id)))
        goto fail;
    int64_t offset = max_out - min_in + 1;
    uint64_t requests = 0, statements = 0, fingerprints = 0;
    if (!STORE_SQLITE_RUN(db, sql_copy_fingerprints, NULL, &fingerprints, SQLV_INT(run->id)) ||
        !STORE_SQLITE_RUN(db, sql_fill_samples, NULL, NULL, SQLV_INT(run->id)) ||
        !STORE_SQLITE_RUN(db, sql_copy_requests, NULL, &requests, SQLV_INT(run->id),
                          SQLV_INT(offset), SQLV_INT(new_run)) ||
        !STORE_SQLITE_RUN(db, sql_copy_request_fingerprints, NULL, NULL, SQLV_INT(run->id),
                          SQLV_INT(offset)) ||
        !STORE_SQLITE_RUN(db, sql_copy_findings, NULL, NULL, SQLV_INT(run->id), SQLV_INT(offset)) ||
        !STORE_SQLITE_RUN(db, sql_copy_statements, NULL, &statements, SQLV_INT(run->id),
                          SQLV_INT(offset)))
        goto fail;
    if (!exec(db, "COMMIT"))
        goto fail;
    if (replace)
        stats->runs_replaced++;
    else
        stats->runs_added++;
    stats->requests += requests;
    stats->statements += statements;
    stats->fingerprints += fingerprints;
    return true;
fail:
    report_err(err, err_len, "%s: cannot copy run %lld of %s: %s", out_path, (long long)run->id,
               in_path, sqlite3_errmsg(db));
    exec(db, "ROLLBACK");
    return false;
}

/* ---- the merge ------------------------------------------------------------------------------ */

/* "file:" URI of `path`, read-only, with the characters URIs reserve escaped. */
static char *readonly_uri(const char *path)
{
    size_t n = strlen(path);
    char *uri = malloc(n * 3 + 32);
    if (!uri)
        return NULL;
    char *p = uri + sprintf(uri, "file:");
    for (const char *s = path; *s; s++) {
        if (*s == '%' || *s == '?' || *s == '#')
            p += sprintf(p, "%%%02X", (unsigned char)*s);
        else
            *p++ = *s;
    }
    strcpy(p, "?mode=ro");
    return uri;
}

static bool read_source_runs(sqlite3 *db, const char *sql, SourceRun **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            SourceRun *grown = realloc(*out, cap * sizeof **out);
            if (!grown) {
                ok = false;
                break;
            }
            *out = grown;
        }
        SourceRun *r = &(*out)[(*n)++];
        r->id = sqlite3_column_int64(st, 0);
        r->ended_us = sqlite3_column_int64(st, 1);
        const char *uuid = (const char *)sqlite3_column_text(st, 2);
        if (uuid && strlen(uuid) == 32)
            snprintf(r->uuid, sizeof r->uuid, "%s", uuid);
        else
            store_sqlite_legacy_uuid(r->id, sqlite3_column_int64(st, 3),
                                     (const char *)sqlite3_column_text(st, 4) ?: "",
                                     (const char *)sqlite3_column_text(st, 5) ?: "", r->uuid);
    }
    sqlite3_finalize(st);
    return ok && rc == SQLITE_DONE;
}

bool merge_sqlite(const char *out_path, const char *in_path, MergeStats *stats, char *err,
                  size_t err_len)
{
    struct stat in_sb, out_sb;
    if (stat(in_path, &in_sb) == 0 && stat(out_path, &out_sb) == 0 &&
        in_sb.st_dev == out_sb.st_dev && in_sb.st_ino == out_sb.st_ino) {
        report_err(err, err_len, "%s: is the output file itself", in_path);
        return false;
    }
    if (!merge_check_input(in_path, err, err_len) || !store_prepare_file(out_path, err, err_len))
        return false;
    sqlite3 *db = NULL;
    SourceRun *runs = NULL;
    size_t n = 0;
    char *uri = readonly_uri(in_path);
    bool ok = false;
    if (!uri) {
        report_err(err, err_len, "%s: out of memory", in_path);
        goto done;
    }
    if (sqlite3_open_v2(out_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) !=
        SQLITE_OK) {
        report_err(err, err_len, "%s: cannot open: %s", out_path, sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    bool attached = sqlite3_prepare_v2(db, "ATTACH ?1 AS src", -1, &st, NULL) == SQLITE_OK;
    if (attached) {
        sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
        attached = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (!attached) {
        report_err(err, err_len, "%s: cannot open: %s", in_path, sqlite3_errmsg(db));
        goto done;
    }
    int64_t version = 0;
    if (!store_sqlite_check_report(db, "src", in_path, "merges", &version, err, err_len))
        goto done;
    const char *sql = version >= 3 ? "SELECT id, coalesce(ended_us, 0), coalesce(uuid, ''),"
                                     " started_us, version, settings FROM src.runs ORDER BY id"
                                   : "SELECT id, coalesce(ended_us, 0), '', started_us, version,"
                                     " settings FROM src.runs ORDER BY id";
    if (!read_source_runs(db, sql, &runs, &n)) {
        report_err(err, err_len, "%s: cannot read its runs: %s", in_path, sqlite3_errmsg(db));
        goto done;
    }
    ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = copy_run(db, version, &runs[i], stats, out_path, in_path, err, err_len);
done:
    free(runs);
    free(uri);
    sqlite3_close(db);
    return ok;
}

/* ---- into a PostgreSQL store ---------------------------------------------------------------- */

/* COPY text: rows of tab-separated columns, \N for NULL, backslash escapes. */
typedef struct CopyBuf {
    char *data;
    size_t len, cap;
    bool failed;
} CopyBuf;

static void cb_put(CopyBuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void cb_text(CopyBuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\'   ? "\\\\"
                          : *p == '\t' ? "\\t"
                          : *p == '\n' ? "\\n"
                          : *p == '\r' ? "\\r"
                                       : NULL;
        if (esc)
            cb_put(b, esc, 2);
        else
            cb_put(b, p, 1);
    }
}

static void cb_i64(CopyBuf *b, int64_t v)
{
    char n[24];
    cb_put(b, n, (size_t)snprintf(n, sizeof n, "%lld", (long long)v));
}

/* Old request ids of the run, sorted, and the new id of each (same index). */
typedef struct IdMap {
    int64_t *old_ids, *new_ids;
    size_t n;
} IdMap;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool idmap_new(const IdMap *m, int64_t old_id, int64_t *out)
{
    if (!m->n)
        return false;
    int64_t *hit = bsearch(&old_id, m->old_ids, m->n, sizeof *m->old_ids, cmp_i64);
    if (hit)
        *out = m->new_ids[hit - m->old_ids];
    return hit != NULL;
}

/* Streams one SQLite query (?1 = the input run) into COPY rows. Column 0 is a request id,
 * rewritten through `map`; with `run_column` column 1 becomes `run_id`. */
static bool rows_to_copy(sqlite3 *db, const char *sql, int64_t src_run, const IdMap *map,
                         bool run_column, int64_t run_id, CopyBuf *b)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_int64(st, 1, src_run);
    int rc, cols = sqlite3_column_count(st);
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = 0;
        if (!idmap_new(map, sqlite3_column_int64(st, 0), &id))
            continue; /* a child row of no request of the run */
        cb_i64(b, id);
        for (int c = 1; c < cols; c++) {
            cb_put(b, "\t", 1);
            if (c == 1 && run_column)
                cb_i64(b, run_id);
            else if (sqlite3_column_type(st, c) == SQLITE_NULL)
                cb_put(b, "\\N", 2);
            else if (sqlite3_column_type(st, c) == SQLITE_INTEGER)
                cb_i64(b, sqlite3_column_int64(st, c));
            else
                cb_text(b, (const char *)sqlite3_column_text(st, c));
        }
        cb_put(b, "\n", 1);
        ok = !b->failed;
    }
    sqlite3_finalize(st);
    return ok && rc == SQLITE_DONE;
}

static const struct {
    const char *table, *columns, *select;
    bool run_column;
} pg_children[] = {
    {"requests",
     "id, run_id, key, route, tags, conn_id, start_us, end_us, end_reason, statements,"
     " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
     " rows, bytes, truncated, timeline_dropped",
     "SELECT id, run_id, key, route, tags, conn_id, start_us, end_us, end_reason, statements,"
     " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
     " rows, bytes, truncated, timeline_dropped FROM requests WHERE run_id = ?1",
     true},
    {"request_fingerprints",
     "request_id, fingerprint, calls, distinct_values, total_time_us, rows, bytes, errors,"
     " is_write",
     "SELECT rf.request_id, rf.fingerprint, rf.calls, rf.distinct_values, rf.total_time_us,"
     " rf.rows, rf.bytes, rf.errors, rf.is_write FROM request_fingerprints rf"
     " JOIN requests q ON q.id = rf.request_id WHERE q.run_id = ?1",
     false},
    {"findings", "request_id, kind, fingerprint, count, distinct_values, is_write, by_bytes",
     "SELECT f.request_id, f.kind, f.fingerprint, f.count, f.distinct_values, f.is_write,"
     " f.by_bytes FROM findings f JOIN requests q ON q.id = f.request_id WHERE q.run_id = ?1",
     false},
    {"statements",
     "request_id, seq, fingerprint, values_hash, start_us, duration_us, rows, bytes, conn_id,"
     " sqlstate, setup",
     "SELECT s.request_id, s.seq, s.fingerprint, s.values_hash, s.start_us, s.duration_us,"
     " s.rows, s.bytes, s.conn_id, s.sqlstate, s.setup FROM statements s"
     " JOIN requests q ON q.id = s.request_id WHERE q.run_id = ?1",
     false},
};

/* The run's request ids, and as many blocks of new ids from the store's sequence. */
static bool map_request_ids(PgTool *t, sqlite3 *db, int64_t src_run, IdMap *m, char *err,
                            size_t err_len)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    bool ok = sqlite3_prepare_v2(db, "SELECT id FROM requests WHERE run_id = ?1 ORDER BY id", -1,
                                 &st, NULL) == SQLITE_OK;
    if (ok)
        sqlite3_bind_int64(st, 1, src_run);
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        if (m->n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *grown = realloc(m->old_ids, cap * sizeof *grown);
            if (!grown) {
                ok = false;
                break;
            }
            m->old_ids = grown;
        }
        m->old_ids[m->n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (!ok) {
        report_err(err, err_len, "%s: cannot read its requests: %s", t->name, sqlite3_errmsg(db));
        return false;
    }
    if (!m->n)
        return true;
    m->new_ids = malloc(m->n * sizeof *m->new_ids);
    if (!m->new_ids) {
        report_err(err, err_len, "%s: out of memory", t->name);
        return false;
    }
    /* One nextval reserves STORE_PG_ID_BLOCK ids (see report/store/pg_schema.h). */
    size_t blocks = (m->n + STORE_PG_ID_BLOCK - 1) / STORE_PG_ID_BLOCK;
    char sql[200], count[24];
    snprintf(sql, sizeof sql,
             "SELECT nextval('\"%s\".requests_id_seq') FROM generate_series(1, $1::int)",
             t->schema);
    snprintf(count, sizeof count, "%zu", blocks);
    const char *params[1] = {count};
    PGresult *res = pgtool_exec(t, sql, 1, params, "cannot reserve request ids", err, err_len);
    if (!res)
        return false;
    for (size_t i = 0; i < m->n; i++)
        m->new_ids[i] = strtoll(t->pq->getvalue(res, (int)(i / STORE_PG_ID_BLOCK), 0), NULL, 10) +
                        (int64_t)(i % STORE_PG_ID_BLOCK);
    t->pq->clear(res);
    return true;
}

/* Fingerprint texts the run uses: new ones inserted (counted), a missing sample filled in. */
static bool push_fingerprints(PgTool *t, sqlite3 *db, int64_t src_run, uint64_t *added, char *err,
                              size_t err_len)
{
    char insert[400];
    snprintf(insert, sizeof insert,
             "INSERT INTO \"%s\".fingerprints AS p (fingerprint, normalized, command, sample,"
             " first_seen_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fingerprint) DO UPDATE"
             " SET sample = excluded.sample WHERE p.sample IS NULL AND excluded.sample IS NOT"
             " NULL RETURNING (xmax = 0)",
             t->schema);
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT fingerprint, normalized, command, sample, first_seen_us FROM"
                      " fingerprints WHERE fingerprint IN (" SRC_RUN_FINGERPRINTS ")";
    char local[sizeof SRC_RUN_FINGERPRINTS + 200];
    /* The same query as the SQLite merge's, on the input's own schema ("src." dropped). */
    size_t j = 0;
    for (const char *p = sql; *p && j + 1 < sizeof local; p++) {
        if (strncmp(p, "src.", 4) == 0) {
            p += 3;
            continue;
        }
        local[j++] = *p;
    }
    local[j] = 0;
    if (sqlite3_prepare_v2(db, local, -1, &st, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot read fingerprints: %s", t->name, sqlite3_errmsg(db));
        return false;
    }
    sqlite3_bind_int64(st, 1, src_run);
    bool ok = true;
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        char first_seen[24];
        snprintf(first_seen, sizeof first_seen, "%lld", (long long)sqlite3_column_int64(st, 4));
        const char *params[5] = {
            (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2),
            sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL
                                                      : (const char *)sqlite3_column_text(st, 3),
            first_seen};
        PGresult *res =
            pgtool_exec(t, insert, 5, params, "cannot write fingerprints", err, err_len);
        ok = res != NULL;
        if (ok && t->pq->ntuples(res) == 1 && t->pq->getvalue(res, 0, 0)[0] == 't')
            (*added)++;
        if (res)
            t->pq->clear(res);
    }
    sqlite3_finalize(st);
    return ok;
}

/* One run into the store, in one transaction. */
static bool push_run(PgTool *t, sqlite3 *db, int64_t version, const SourceRun *run,
                     MergeStats *stats, char *err, size_t err_len)
{
    IdMap map = {0};
    CopyBuf buf = {0};
    char sql[900], id[24];
    bool ok = pgtool_run(t, "BEGIN", 0, NULL, NULL, "cannot begin", err, err_len);
    if (!ok)
        return false;
    snprintf(sql, sizeof sql,
             "SELECT id, coalesce(ended_us, 0) FROM \"%s\".runs WHERE uuid = $1 FOR UPDATE",
             t->schema);
    const char *uuid_param[1] = {run->uuid};
    PGresult *res = pgtool_exec(t, sql, 1, uuid_param, "cannot read runs", err, err_len);
    if (!res)
        goto fail;
    bool exists = t->pq->ntuples(res) == 1;
    bool replace = exists && strcmp(t->pq->getvalue(res, 0, 1), "0") == 0 && run->ended_us;
    snprintf(id, sizeof id, "%s", exists ? t->pq->getvalue(res, 0, 0) : "0");
    t->pq->clear(res);
    if (exists && !replace) {
        stats->runs_skipped++;
        return pgtool_run(t, "COMMIT", 0, NULL, NULL, "cannot commit", err, err_len);
    }
    if (replace) {
        static const char *const fmt[] = {
            "DELETE FROM \"%1$s\".statements WHERE request_id IN (SELECT id FROM"
            " \"%1$s\".requests WHERE run_id = $1)",
            "DELETE FROM \"%1$s\".request_fingerprints WHERE request_id IN (SELECT id FROM"
            " \"%1$s\".requests WHERE run_id = $1)",
            "DELETE FROM \"%1$s\".findings WHERE request_id IN (SELECT id FROM"
            " \"%1$s\".requests WHERE run_id = $1)",
            "DELETE FROM \"%1$s\".requests WHERE run_id = $1",
            "DELETE FROM \"%1$s\".runs WHERE id = $1",
        };
        const char *params[1] = {id};
        for (size_t i = 0; ok && i < sizeof fmt / sizeof fmt[0]; i++) {
            snprintf(sql, sizeof sql, fmt[i], t->schema);
            ok = pgtool_run(t, sql, 1, params, NULL, "cannot replace the snapshot", err, err_len);
        }
        if (!ok)
            goto fail;
    }
    /* The run row, read from the input with the columns its version has. */
    const char *row_sql =
        version >= 3   ? "SELECT started_us, ended_us, flushed_us, version, settings, label,"
                         " instance, pid, heartbeat_us, heartbeat_statements, statements, requests,"
                         " dropped_requests, dropped_statements, dropped_fingerprints,"
                         " untracked_statements, complete FROM runs WHERE id = ?1"
        : version == 2 ? "SELECT started_us, ended_us, flushed_us, version, settings, '', '',"
                         " NULL, NULL, NULL, statements, requests, dropped_requests,"
                         " dropped_statements, dropped_fingerprints, untracked_statements,"
                         " complete FROM runs WHERE id = ?1"
                       : "SELECT started_us, ended_us, NULL, version, settings, '', '', NULL,"
                         " NULL, NULL, statements, requests, dropped_requests,"
                         " dropped_statements, dropped_fingerprints, untracked_statements,"
                         " complete FROM runs WHERE id = ?1";
    sqlite3_stmt *st = NULL;
    ok = sqlite3_prepare_v2(db, row_sql, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, run->id);
        ok = sqlite3_step(st) == SQLITE_ROW;
    }
    if (ok) {
        const char *params[18];
        char nums[17][24];
        params[0] = run->uuid;
        for (int c = 0; c < 17; c++) {
            if (sqlite3_column_type(st, c) == SQLITE_NULL) {
                params[c + 1] = NULL;
            } else if (sqlite3_column_type(st, c) == SQLITE_INTEGER) {
                snprintf(nums[c], sizeof nums[c], "%lld", (long long)sqlite3_column_int64(st, c));
                params[c + 1] = nums[c];
            } else {
                params[c + 1] = (const char *)sqlite3_column_text(st, c);
            }
        }
        snprintf(sql, sizeof sql,
                 "INSERT INTO \"%s\".runs (uuid, started_us, ended_us, flushed_us, version,"
                 " settings, label, instance, pid, heartbeat_us, heartbeat_statements,"
                 " statements, requests, dropped_requests, dropped_statements,"
                 " dropped_fingerprints, untracked_statements, complete) VALUES ($1, $2, $3,"
                 " $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                 " RETURNING id",
                 t->schema);
        res = pgtool_exec(t, sql, 18, params, "cannot write the run", err, err_len);
        ok = res != NULL;
        if (ok)
            snprintf(id, sizeof id, "%s", t->pq->getvalue(res, 0, 0));
        if (res)
            t->pq->clear(res);
    } else {
        report_err(err, err_len, "%s: cannot read run %lld: %s", t->name, (long long)run->id,
                   sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    if (!ok)
        goto fail;
    int64_t new_run = strtoll(id, NULL, 10);
    uint64_t fingerprints = 0;
    if (!push_fingerprints(t, db, run->id, &fingerprints, err, err_len) ||
        !map_request_ids(t, db, run->id, &map, err, err_len))
        goto fail;
    uint64_t statements = 0;
    for (size_t i = 0; i < sizeof pg_children / sizeof pg_children[0]; i++) {
        buf.len = 0;
        if (!rows_to_copy(db, pg_children[i].select, run->id, &map, pg_children[i].run_column,
                          new_run, &buf)) {
            report_err(err, err_len, "%s: cannot read %s: %s", t->name, pg_children[i].table,
                       buf.failed ? "out of memory" : sqlite3_errmsg(db));
            goto fail;
        }
        for (size_t k = 0; strcmp(pg_children[i].table, "statements") == 0 && k < buf.len; k++)
            statements += buf.data[k] == '\n';
        if (!pgtool_copy(t, pg_children[i].table, pg_children[i].columns, buf.data, buf.len, err,
                         err_len))
            goto fail;
    }
    if (!pgtool_run(t, "COMMIT", 0, NULL, NULL, "cannot commit", err, err_len))
        goto fail;
    if (replace)
        stats->runs_replaced++;
    else
        stats->runs_added++;
    stats->requests += map.n;
    stats->statements += statements;
    stats->fingerprints += fingerprints;
    free(map.old_ids);
    free(map.new_ids);
    free(buf.data);
    return true;
fail:
    pgtool_run(t, "ROLLBACK", 0, NULL, NULL, "rollback", NULL, 0);
    free(map.old_ids);
    free(map.new_ids);
    free(buf.data);
    return false;
}

bool merge_to_pg(PgTool *t, const char *in_path, MergeStats *stats, char *err, size_t err_len)
{
    if (!merge_check_input(in_path, err, err_len))
        return false;
    sqlite3 *db = NULL;
    SourceRun *runs = NULL;
    size_t n = 0;
    int64_t version = 0;
    bool ok = sqlite3_open_v2(in_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
              store_sqlite_check_report(db, "main", in_path, "merges", &version, err, err_len);
    if (db)
        sqlite3_busy_timeout(db, 5000);
    if (!ok && !*err)
        report_err(err, err_len, "%s: cannot open: %s", in_path, sqlite3_errmsg(db));
    if (ok) {
        const char *sql = version >= 3
                              ? "SELECT id, coalesce(ended_us, 0), coalesce(uuid, ''), started_us,"
                                " version, settings FROM runs ORDER BY id"
                              : "SELECT id, coalesce(ended_us, 0), '', started_us, version,"
                                " settings FROM runs ORDER BY id";
        ok = read_source_runs(db, sql, &runs, &n);
        if (!ok)
            report_err(err, err_len, "%s: cannot read its runs: %s", in_path, sqlite3_errmsg(db));
    }
    for (size_t i = 0; ok && i < n; i++)
        ok = push_run(t, db, version, &runs[i], stats, err, err_len);
    free(runs);
    sqlite3_close(db);
    return ok;
}
