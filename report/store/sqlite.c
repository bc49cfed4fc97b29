/* report/store/sqlite — the store's SQLite backend: the report file.
 *
 * Owns: the file's schema (versioned with PRAGMA user_version, forward migrations below; the
 * tables are documented in docs/report-format.md), creating the file 0600, WAL mode, the run
 * row, and one transaction per batch with prepared statements. Used by report/store's writer
 * thread through report/store/backend.h. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/store.h"
#include "report/store/backend.h"

#ifndef PGTALLY_VERSION
#define PGTALLY_VERSION "unknown"
#endif

/* "pgtl": marks the file as a pgtally report, so another tool's database is never migrated. */
#define STORE_APPLICATION_ID 0x7067746c

/* ---- schema ---------------------------------------------------------------------------- */

/* migrations[v] takes a file from version v to v + 1 and runs inside the transaction that
 * also sets user_version. Version 2 is one more string appended here, never an edit of v1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "PRAGMA application_id = 1885828204;" /* STORE_APPLICATION_ID */
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY,"
    "  started_us INTEGER NOT NULL,"
    "  ended_us INTEGER,"
    "  version TEXT NOT NULL,"
    "  settings TEXT NOT NULL,"
    "  statements INTEGER NOT NULL DEFAULT 0,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  dropped_requests INTEGER NOT NULL DEFAULT 0,"
    "  dropped_statements INTEGER NOT NULL DEFAULT 0,"
    "  dropped_fingerprints INTEGER NOT NULL DEFAULT 0,"
    "  untracked_statements INTEGER NOT NULL DEFAULT 0,"
    "  complete INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE fingerprints ("
    "  fingerprint TEXT PRIMARY KEY,"
    "  normalized TEXT NOT NULL,"
    "  command TEXT NOT NULL,"
    "  sample TEXT,"
    "  first_seen_us INTEGER NOT NULL);"
    "CREATE TABLE requests ("
    "  id INTEGER PRIMARY KEY,"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),"
    "  key TEXT NOT NULL,"
    "  route TEXT NOT NULL,"
    "  tags TEXT NOT NULL,"
    "  conn_id INTEGER NOT NULL,"
    "  start_us INTEGER NOT NULL,"
    "  end_us INTEGER NOT NULL,"
    "  end_reason TEXT NOT NULL,"
    "  statements INTEGER NOT NULL,"
    "  setup_statements INTEGER NOT NULL,"
    "  distinct_fingerprints INTEGER NOT NULL,"
    "  duplicates INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  transactions INTEGER NOT NULL,"
    "  db_time_us INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  truncated INTEGER NOT NULL,"
    "  timeline_dropped INTEGER NOT NULL);"
    "CREATE INDEX requests_run_id ON requests(run_id);"
    "CREATE INDEX requests_route ON requests(route);"
    "CREATE TABLE request_fingerprints ("
    "  request_id INTEGER NOT NULL REFERENCES requests(id),"
    "  fingerprint TEXT NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  distinct_values INTEGER NOT NULL,"
    "  total_time_us INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL,"
    "  is_write INTEGER NOT NULL);"
    "CREATE INDEX request_fingerprints_request_id ON request_fingerprints(request_id);"
    "CREATE TABLE findings ("
    "  request_id INTEGER NOT NULL REFERENCES requests(id),"
    "  kind TEXT NOT NULL,"
    "  fingerprint TEXT,"
    "  count INTEGER NOT NULL,"
    "  distinct_values INTEGER NOT NULL,"
    "  is_write INTEGER NOT NULL,"
    "  by_bytes INTEGER NOT NULL);"
    "CREATE INDEX findings_request_id ON findings(request_id);"
    /* The timeline is read per request in order: cluster it on (request_id, seq). */
    "CREATE TABLE statements ("
    "  request_id INTEGER NOT NULL REFERENCES requests(id),"
    "  seq INTEGER NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  values_hash TEXT NOT NULL,"
    "  start_us INTEGER NOT NULL,"
    "  duration_us INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  conn_id INTEGER NOT NULL,"
    "  sqlstate TEXT,"
    "  setup INTEGER NOT NULL,"
    "  PRIMARY KEY (request_id, seq)) WITHOUT ROWID;",
    /* 1 -> 2: a snapshot a running proxy wrote on SIGUSR1 (totals and completeness as of
     * then), so `pgtally check` can judge a run that has not ended. */
    "ALTER TABLE runs ADD COLUMN flushed_us INTEGER;",
    /* 2 -> 3: runs that many sidecars and CI shards combine. `uuid` identifies a run across
     * stores (merge and the PostgreSQL store never copy rowids); `label` groups runs into one
     * picture (--run-label); `instance` names the host or dyno that wrote it; `pid`,
     * `heartbeat_us` and `heartbeat_statements` let a reader tell a live proxy from one that died
     * without ending its run. Runs of older files get a fresh uuid. */
    "ALTER TABLE runs ADD COLUMN uuid TEXT;"
    "ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN instance TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN pid INTEGER;"
    "ALTER TABLE runs ADD COLUMN heartbeat_us INTEGER;"
    "ALTER TABLE runs ADD COLUMN heartbeat_statements INTEGER;"
    "UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;"
    "CREATE UNIQUE INDEX runs_uuid ON runs(uuid);"
    "CREATE INDEX runs_label ON runs(label);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration step per schema version");
_Static_assert(STORE_APPLICATION_ID == 1885828204, "application_id literal in migrations[0]");

static const char sql_insert_run[] =
    "INSERT INTO runs (started_us, version, settings, uuid, label, instance, pid, heartbeat_us,"
    " heartbeat_statements) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?1, 0)";
static const char sql_update_run[] =
    "UPDATE runs SET ended_us = ?1, statements = ?2, requests = ?3, dropped_requests = ?4,"
    " dropped_statements = ?5, dropped_fingerprints = ?6, untracked_statements = ?7,"
    " complete = ?8, flushed_us = ?10, heartbeat_us = ?11, heartbeat_statements = ?12"
    " WHERE id = ?9";
static const char sql_heartbeat[] =
    "UPDATE runs SET heartbeat_us = ?1, heartbeat_statements = ?2 WHERE id = ?3";
/* First record wins; a later one only fills in a sample the first lacked. */
static const char sql_insert_fingerprint[] =
    "INSERT INTO fingerprints (fingerprint, normalized, command, sample, first_seen_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (fingerprint) DO UPDATE SET sample ="
    " excluded.sample WHERE fingerprints.sample IS NULL AND excluded.sample IS NOT NULL";
static const char sql_insert_request[] =
    "INSERT INTO requests (run_id, key, route, tags, conn_id, start_us, end_us, end_reason,"
    " statements, setup_statements, distinct_fingerprints, duplicates, errors, transactions,"
    " db_time_us, rows, bytes, truncated, timeline_dropped)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
    " ?18, ?19)";
static const char sql_insert_request_fingerprint[] =
    "INSERT INTO request_fingerprints (request_id, fingerprint, calls, distinct_values,"
    " total_time_us, rows, bytes, errors, is_write) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_insert_finding[] =
    "INSERT INTO findings (request_id, kind, fingerprint, count, distinct_values, is_write,"
    " by_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_insert_statement[] =
    "INSERT INTO statements (request_id, seq, fingerprint, values_hash, start_us, duration_us,"
    " rows, bytes, conn_id, sqlstate, setup) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " ?11)";

/* Prepared statements, used by the writer thread only (and by open/close around it). */
typedef struct Statements {
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *fingerprint;
    sqlite3_stmt *request;
    sqlite3_stmt *request_fingerprint;
    sqlite3_stmt *finding;
    sqlite3_stmt *statement;
    sqlite3_stmt *update_run;
    sqlite3_stmt *heartbeat;
} Statements;

typedef struct SqliteBackend {
    StoreBackend base;
    char *path;
    sqlite3 *db;
    int64_t run_id;
    Statements st;
} SqliteBackend;

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* 16 lowercase hex digits: the form every interface shows fingerprints and hashes in. */
static void hex16(uint64_t v, char out[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 0xf];
        v >>= 4;
    }
    out[16] = '\0';
}

/* ---- open: file, pragmas, migrations, run row --------------------------------------------- */

static bool exec_sql(sqlite3 *db, const char *sql, const char *what, const char *path, char *err,
                     size_t err_len)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return true;
    set_err(err, err_len, "%s: %s: %s", path, what, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return false;
}

static bool query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return ok;
}

/* Brings the schema to STORE_SCHEMA_VERSION in one transaction, or refuses the file. */
static bool migrate(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    if (!exec_sql(db, "BEGIN IMMEDIATE", "cannot lock the file to check its schema", path, err,
                  err_len))
        return false;
    int64_t version = 0, app_id = 0, objects = 0;
    if (!query_int(db, "PRAGMA user_version", &version) ||
        !query_int(db, "PRAGMA application_id", &app_id) ||
        !query_int(db, "SELECT count(*) FROM sqlite_schema", &objects)) {
        set_err(err, err_len, "%s: cannot read the schema version: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if ((app_id != 0 && app_id != STORE_APPLICATION_ID) || (version == 0 && objects > 0) ||
        (version > 0 && app_id != STORE_APPLICATION_ID)) {
        set_err(err, err_len,
                "%s: not a pgtally report (an SQLite file of another application); "
                "refusing to modify it",
                path);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        set_err(err, err_len,
                "%s: report schema version %lld is newer than this pgtally (%s) supports (%d); "
                "use a newer pgtally or another file",
                path, (long long)version, PGTALLY_VERSION, STORE_SCHEMA_VERSION);
        goto fail;
    }
    for (int64_t v = version; v < STORE_SCHEMA_VERSION; v++) {
        char what[64], bump[48];
        snprintf(what, sizeof what, "cannot migrate the schema to version %lld", (long long)v + 1);
        snprintf(bump, sizeof bump, "PRAGMA user_version = %lld", (long long)v + 1);
        if (!exec_sql(db, migrations[v], what, path, err, err_len) ||
            !exec_sql(db, bump, what, path, err, err_len))
            goto fail;
    }
    return exec_sql(db, "COMMIT", "cannot commit the schema", path, err, err_len);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return false;
}

static bool configure(sqlite3 *db, unsigned busy_ms, const char *path, char *err, size_t err_len)
{
    sqlite3_busy_timeout(db, (int)busy_ms);
    int64_t ignored;
    if (!query_int(db, "PRAGMA schema_version", &ignored)) {
        set_err(err, err_len, "%s: cannot read it as an SQLite database: %s", path,
                sqlite3_errmsg(db));
        return false;
    }
    sqlite3_stmt *st = NULL;
    /* journal_mode answers with the mode it got: a filesystem without shared memory
     * support silently stays in "delete", which would block readers during writes. */
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        set_err(err, err_len, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return false;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool wal = mode && strcmp(mode, "wal") == 0;
    if (!wal)
        set_err(err, err_len, "%s: cannot switch to WAL mode (got \"%s\")", path,
                mode ? mode : "?");
    sqlite3_finalize(st);
    if (!wal)
        return false;
    /* NORMAL in WAL mode: a commit survives a process crash and costs no fsync; only a power
     * loss can take the last commits back. Right for a report, wrong for a bank. The WAL is
     * truncated back to 64 MiB after checkpoints so a long burst leaves no huge file. */
    return exec_sql(db,
                    "PRAGMA synchronous = NORMAL;"
                    "PRAGMA journal_size_limit = 67108864;"
                    "PRAGMA cache_size = -2048;",
                    "cannot set pragmas", path, err, err_len);
}

static bool insert_run(SqliteBackend *s, const StoreRunInfo *run, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    int64_t valid = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT json_valid(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, run->settings_json, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            valid = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (!valid) {
        set_err(err, err_len, "%s: the run's settings are not valid JSON", s->path);
        return false;
    }
    st = NULL;
    bool ok = sqlite3_prepare_v2(s->db, sql_insert_run, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, run->started_us);
        sqlite3_bind_text(st, 2, run->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, run->settings_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, run->uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, run->label, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, run->instance, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, run->pid);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    if (!ok)
        set_err(err, err_len, "%s: cannot record the run: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    s->run_id = sqlite3_last_insert_rowid(s->db);
    return ok;
}

static bool prepare_all(SqliteBackend *s, char *err, size_t err_len)
{
    struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } list[] = {
        /* IMMEDIATE takes the write lock up front, so a busy file shows up (and waits out
         * the busy timeout) at BEGIN rather than halfway through a batch. */
        {&s->st.begin, "BEGIN IMMEDIATE"},
        {&s->st.commit, "COMMIT"},
        {&s->st.rollback, "ROLLBACK"},
        {&s->st.fingerprint, sql_insert_fingerprint},
        {&s->st.request, sql_insert_request},
        {&s->st.request_fingerprint, sql_insert_request_fingerprint},
        {&s->st.finding, sql_insert_finding},
        {&s->st.statement, sql_insert_statement},
        {&s->st.update_run, sql_update_run},
        {&s->st.heartbeat, sql_heartbeat},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].stmt,
                               NULL) != SQLITE_OK) {
            set_err(err, err_len, "%s: cannot prepare \"%.40s\": %s", s->path, list[i].sql,
                    sqlite3_errmsg(s->db));
            return false;
        }
    }
    return true;
}

static void finalize_all(SqliteBackend *s)
{
    sqlite3_stmt **all[] = {&s->st.begin,       &s->st.commit,    &s->st.rollback,
                            &s->st.fingerprint, &s->st.request,   &s->st.request_fingerprint,
                            &s->st.finding,     &s->st.statement, &s->st.update_run,
                            &s->st.heartbeat};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

/* ---- the writer's operations ------------------------------------------------------------ */

static bool step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

static bool write_fingerprint(SqliteBackend *s, const FingerprintRecord *r)
{
    sqlite3_stmt *st = s->st.fingerprint;
    char fp[17];
    hex16(r->fingerprint, fp);
    sqlite3_bind_text(st, 1, fp, 16, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->normalized ? r->normalized : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->command ? r->command : "", -1, SQLITE_STATIC);
    if (r->sample)
        sqlite3_bind_text(st, 4, r->sample, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, r->first_seen_us);
    return step_done(st);
}

static const char *finding_kind_name(FindingKind kind)
{
    switch (kind) {
    case FINDING_N_PLUS_ONE:
        return "n_plus_one";
    case FINDING_DUPLICATE:
        return "duplicate";
    case FINDING_OVERFETCH:
        return "overfetch";
    }
    return "unknown";
}

static bool write_request(SqliteBackend *s, const RequestRecord *r)
{
    sqlite3_stmt *st = s->st.request;
    sqlite3_bind_int64(st, 1, s->run_id);
    sqlite3_bind_text(st, 2, r->key ? r->key : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->route ? r->route : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->tags_json ? r->tags_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (int64_t)r->conn_id);
    sqlite3_bind_int64(st, 6, r->start_us);
    sqlite3_bind_int64(st, 7, r->end_us);
    sqlite3_bind_text(st, 8, r->end_reason ? r->end_reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, r->statements);
    sqlite3_bind_int64(st, 10, r->setup_statements);
    sqlite3_bind_int64(st, 11, r->distinct_fingerprints);
    sqlite3_bind_int64(st, 12, r->duplicates);
    sqlite3_bind_int64(st, 13, r->errors);
    sqlite3_bind_int64(st, 14, r->transactions);
    sqlite3_bind_int64(st, 15, (int64_t)r->db_time_us);
    sqlite3_bind_int64(st, 16, (int64_t)r->rows);
    sqlite3_bind_int64(st, 17, (int64_t)r->bytes);
    sqlite3_bind_int(st, 18, r->truncated);
    sqlite3_bind_int64(st, 19, (int64_t)r->timeline_dropped);
    if (!step_done(st))
        return false;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    char fp[17], vh[17];

    st = s->st.request_fingerprint;
    for (size_t i = 0; i < r->n_fingerprints; i++) {
        const RecordFingerprint *f = &r->fingerprints[i];
        hex16(f->fingerprint, fp);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, fp, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, f->calls);
        sqlite3_bind_int64(st, 4, f->distinct_values);
        sqlite3_bind_int64(st, 5, (int64_t)f->total_time_us);
        sqlite3_bind_int64(st, 6, (int64_t)f->rows);
        sqlite3_bind_int64(st, 7, (int64_t)f->bytes);
        sqlite3_bind_int64(st, 8, f->errors);
        sqlite3_bind_int(st, 9, f->is_write);
        if (!step_done(st))
            return false;
    }

    st = s->st.finding;
    for (size_t i = 0; i < r->n_findings; i++) {
        const RecordFinding *f = &r->findings[i];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, finding_kind_name(f->kind), -1, SQLITE_STATIC);
        if (f->fingerprint) {
            hex16(f->fingerprint, fp);
            sqlite3_bind_text(st, 3, fp, 16, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, 3); /* a request-level overfetch */
        }
        sqlite3_bind_int64(st, 4, (int64_t)f->count);
        sqlite3_bind_int64(st, 5, f->distinct_values);
        sqlite3_bind_int(st, 6, f->is_write);
        sqlite3_bind_int(st, 7, f->by_bytes);
        if (!step_done(st))
            return false;
    }

    st = s->st.statement;
    for (size_t i = 0; i < r->n_timeline; i++) {
        const RecordStatement *t = &r->timeline[i];
        hex16(t->fingerprint, fp);
        hex16(t->values_hash, vh);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (int64_t)i + 1);
        sqlite3_bind_text(st, 3, fp, 16, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, vh, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, t->start_us);
        sqlite3_bind_int64(st, 6, t->duration_us);
        sqlite3_bind_int64(st, 7, (int64_t)t->rows);
        sqlite3_bind_int64(st, 8, (int64_t)t->bytes);
        sqlite3_bind_int64(st, 9, (int64_t)t->conn_id);
        size_t sl = strnlen(t->sqlstate, sizeof t->sqlstate);
        if (sl)
            sqlite3_bind_text(st, 10, t->sqlstate, (int)sl, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 10);
        sqlite3_bind_int(st, 11, t->setup);
        if (!step_done(st))
            return false;
    }
    return true;
}

static SqliteBackend *sq(StoreBackend *b)
{
    return (SqliteBackend *)b;
}

static bool op_connect(StoreBackend *b, char *err, size_t err_len)
{
    (void)b;
    (void)err;
    (void)err_len;
    return true; /* opened, migrated and given its run row in store_sqlite_open */
}

static bool op_begin(StoreBackend *b, size_t n_requests, bool retry, char *err, size_t err_len)
{
    (void)n_requests;
    (void)retry;
    SqliteBackend *s = sq(b);
    if (step_done(s->st.begin))
        return true;
    set_err(err, err_len, "%s: cannot begin a transaction: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_write_request(StoreBackend *b, const RequestRecord *r, char *err, size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (write_request(s, r))
        return true;
    set_err(err, err_len, "%s: cannot write a request: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_write_fingerprint(StoreBackend *b, const FingerprintRecord *r, char *err,
                                 size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (write_fingerprint(s, r))
        return true;
    set_err(err, err_len, "%s: cannot write a fingerprint: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_commit(StoreBackend *b, char *err, size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (step_done(s->st.commit))
        return true;
    set_err(err, err_len, "%s: cannot commit: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static void op_rollback(StoreBackend *b)
{
    SqliteBackend *s = sq(b);
    /* Some errors (SQLITE_FULL, IOERR) already rolled back; others leave it open. */
    if (!sqlite3_get_autocommit(s->db))
        step_done(s->st.rollback);
}

static bool op_lost(StoreBackend *b)
{
    (void)b;
    return false; /* a local file: a failed batch is a drop, the next one may succeed */
}

static bool op_update_run(StoreBackend *b, const StoreRunUpdate *u, char *err, size_t err_len)
{
    SqliteBackend *s = sq(b);
    sqlite3_stmt *q;
    if (u->totals) {
        q = s->st.update_run;
        if (u->ended_us)
            sqlite3_bind_int64(q, 1, u->ended_us);
        else
            sqlite3_bind_null(q, 1);
        sqlite3_bind_int64(q, 2, (int64_t)u->statements);
        sqlite3_bind_int64(q, 3, (int64_t)u->requests);
        sqlite3_bind_int64(q, 4, (int64_t)u->dropped_requests);
        sqlite3_bind_int64(q, 5, (int64_t)u->dropped_statements);
        sqlite3_bind_int64(q, 6, (int64_t)u->dropped_fingerprints);
        sqlite3_bind_int64(q, 7, (int64_t)u->untracked_statements);
        sqlite3_bind_int(q, 8, u->complete);
        sqlite3_bind_int64(q, 9, s->run_id);
        if (u->flushed_us)
            sqlite3_bind_int64(q, 10, u->flushed_us);
        else
            sqlite3_bind_null(q, 10);
        sqlite3_bind_int64(q, 11, u->heartbeat_us);
        sqlite3_bind_int64(q, 12, (int64_t)u->heartbeat_statements);
    } else {
        q = s->st.heartbeat;
        sqlite3_bind_int64(q, 1, u->heartbeat_us);
        sqlite3_bind_int64(q, 2, (int64_t)u->heartbeat_statements);
        sqlite3_bind_int64(q, 3, s->run_id);
    }
    if (!step_done(q)) {
        set_err(err, err_len, "%s: cannot record the run's totals: %s", s->path,
                sqlite3_errmsg(s->db));
        return false;
    }
    if (!u->settings_json)
        return true;
    /* Settings change only on SIGHUP: no statement kept prepared for them. */
    sqlite3_stmt *set = NULL;
    bool ok = sqlite3_prepare_v2(s->db, "UPDATE runs SET settings = ?1 WHERE id = ?2", -1, &set,
                                 NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(set, 1, u->settings_json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(set, 2, s->run_id);
        ok = sqlite3_step(set) == SQLITE_DONE;
    }
    if (!ok)
        set_err(err, err_len, "%s: cannot record the run's settings: %s", s->path,
                sqlite3_errmsg(s->db));
    sqlite3_finalize(set);
    return ok;
}

/* After a flush: so a reader that copies the main file alone (without its -wal) most likely
 * sees the data too. Passive: it never waits for readers. */
static void op_idle(StoreBackend *b)
{
    sqlite3_wal_checkpoint_v2(sq(b)->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

/* TRUNCATE leaves a self-contained main file; a reader holding a snapshot makes it busy, which
 * is harmless (the WAL keeps the data), so its result is not an error. */
static void op_finish(StoreBackend *b)
{
    sqlite3_wal_checkpoint_v2(sq(b)->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static void op_free(StoreBackend *b)
{
    SqliteBackend *s = sq(b);
    if (!s)
        return;
    finalize_all(s);
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

static const StoreBackendOps sqlite_ops = {
    .connect = op_connect,
    .begin = op_begin,
    .write_request = op_write_request,
    .write_fingerprint = op_write_fingerprint,
    .commit = op_commit,
    .rollback = op_rollback,
    .lost = op_lost,
    .update_run = op_update_run,
    .idle = op_idle,
    .finish = op_finish,
    .free = op_free,
};

StoreBackend *store_sqlite_open(const char *path, const StoreRunInfo *run, unsigned busy_ms,
                                char *err, size_t err_len)
{
    SqliteBackend *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        set_err(err, err_len, "%s: out of memory", path);
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    snprintf(s->base.name, sizeof s->base.name, "%s", path);
    /* Create the file ourselves so it is 0600 whatever the umask; SQLite gives the -wal and
     * -shm files the main file's mode. An existing file keeps the mode its owner chose. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        set_err(err, err_len, "%s: cannot open: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (!configure(s->db, busy_ms, path, err, err_len) || !migrate(s->db, path, err, err_len) ||
        !insert_run(s, run, err, err_len) || !prepare_all(s, err, err_len))
        goto fail;
    return &s->base;
fail:
    op_free(&s->base);
    return NULL;
}

bool store_prepare_file(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    close(fd);
    sqlite3 *db = NULL;
    bool ok = false;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        set_err(err, err_len, "%s: cannot open: %s", path, sqlite3_errmsg(db));
    else
        ok = configure(db, 1000, path, err, err_len) && migrate(db, path, err, err_len);
    sqlite3_close(db);
    return ok;
}
