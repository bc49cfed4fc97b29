/* report/store/sqlite — the store's SQLite backend: the report file.
 *
 * Owns: the file's schema (versioned with PRAGMA user_version, forward migrations below; the
 * tables are documented in docs/report-format.md), creating the file 0600, WAL mode, the run
 * row, and one transaction per batch with prepared statements. Used by report/store's writer
 * thread through report/store/backend.h. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "report/errfmt.h"
#include "report/store.h"
#include "report/store/backend.h"
#include "report/store/sqlite.h"

#ifndef PGTALLY_VERSION
#define PGTALLY_VERSION "unknown"
#endif

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
     * without ending its run. Runs of older files get the uuid `pgtally merge` gives them when
     * it reads such a file (a hash of the run's row), so a run merged before and after the
     * file was migrated is recognised as the same run. */
    "ALTER TABLE runs ADD COLUMN uuid TEXT;"
    "ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN instance TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN pid INTEGER;"
    "ALTER TABLE runs ADD COLUMN heartbeat_us INTEGER;"
    "ALTER TABLE runs ADD COLUMN heartbeat_statements INTEGER;"
    "UPDATE runs SET uuid = pgtally_legacy_uuid(id, started_us, version, settings)"
    "  WHERE uuid IS NULL;"
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
    report_err(err, err_len, "%s: %s: %s", path, what, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return false;
}

void store_sqlite_bind(sqlite3_stmt *st, const SqliteValue *values, size_t n)
{
    int count = sqlite3_bind_parameter_count(st);
    for (int i = 0; i < count && (size_t)i < n; i++) {
        const SqliteValue *v = &values[i];
        if (v->type == SQLITE_VALUE_INT)
            sqlite3_bind_int64(st, i + 1, v->i);
        else if (v->type == SQLITE_VALUE_TEXT)
            sqlite3_bind_text(st, i + 1, v->s, v->len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, i + 1);
    }
}

bool store_sqlite_run(sqlite3 *db, const char *sql, const SqliteValue *values, size_t n,
                      int64_t *value, uint64_t *changed)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    store_sqlite_bind(st, values, n);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && value)
        *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return false;
    if (changed)
        *changed = (uint64_t)sqlite3_changes(db);
    return true;
}

bool store_sqlite_int(sqlite3 *db, const char *sql, int64_t *out)
{
    return store_sqlite_run(db, sql, NULL, 0, out, NULL);
}

bool store_sqlite_check_report(sqlite3 *db, const char *schema, const char *path, const char *doing,
                               int64_t *version, char *err, size_t err_len)
{
    char app_sql[96], version_sql[96];
    int64_t app_id = 0;
    snprintf(app_sql, sizeof app_sql, "PRAGMA %s.application_id", schema);
    snprintf(version_sql, sizeof version_sql, "PRAGMA %s.user_version", schema);
    if (!store_sqlite_int(db, app_sql, &app_id) || !store_sqlite_int(db, version_sql, version)) {
        report_err(err, err_len, "%s: not a pgtally report (%s)", path, sqlite3_errmsg(db));
        return false;
    }
    if (app_id != STORE_APPLICATION_ID || *version <= 0) {
        report_err(err, err_len, "%s: not a pgtally report (an SQLite file of another kind)", path);
        return false;
    }
    if (*version > STORE_SCHEMA_VERSION) {
        report_err(err, err_len,
                   "%s: report schema version %lld is newer than this pgtally %s (%d); "
                   "use a newer pgtally",
                   path, (long long)*version, doing, STORE_SCHEMA_VERSION);
        return false;
    }
    return true;
}

void store_sqlite_legacy_uuid(int64_t id, int64_t started_us, const char *version,
                              const char *settings, char out[33])
{
    /* Unit separators keep ("1", "23") and ("12", "3") apart. */
    XXH3_state_t *state = XXH3_createState();
    char head[64];
    int n = snprintf(head, sizeof head, "%lld\x1f%lld\x1f", (long long)id, (long long)started_us);
    XXH128_hash_t h = {0, 0};
    if (state && XXH3_128bits_reset(state) == XXH_OK) {
        XXH3_128bits_update(state, head, (size_t)n);
        XXH3_128bits_update(state, version, strlen(version));
        XXH3_128bits_update(state, "\x1f", 1);
        XXH3_128bits_update(state, settings, strlen(settings));
        h = XXH3_128bits_digest(state);
    }
    XXH3_freeState(state);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

/* pgtally_legacy_uuid(id, started_us, version, settings): store_sqlite_legacy_uuid for the
 * migrations, with NULLs read as merge reads them (0 and ""). */
static void sql_legacy_uuid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *version = (const char *)sqlite3_value_text(argv[2]);
    const char *settings = (const char *)sqlite3_value_text(argv[3]);
    char uuid[33];
    store_sqlite_legacy_uuid(sqlite3_value_int64(argv[0]), sqlite3_value_int64(argv[1]),
                             version ? version : "", settings ? settings : "", uuid);
    sqlite3_result_text(ctx, uuid, 32, SQLITE_TRANSIENT);
}

/* Brings the schema to STORE_SCHEMA_VERSION in one transaction, or refuses the file. */
static bool migrate(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    if (sqlite3_create_function(db, "pgtally_legacy_uuid", 4,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                sql_legacy_uuid, NULL, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot prepare the schema migration: %s", path,
                   sqlite3_errmsg(db));
        return false;
    }
    if (!exec_sql(db, "BEGIN IMMEDIATE", "cannot lock the file to check its schema", path, err,
                  err_len))
        return false;
    int64_t version = 0, app_id = 0, objects = 0;
    if (!store_sqlite_int(db, "PRAGMA user_version", &version) ||
        !store_sqlite_int(db, "PRAGMA application_id", &app_id) ||
        !store_sqlite_int(db, "SELECT count(*) FROM sqlite_schema", &objects)) {
        report_err(err, err_len, "%s: cannot read the schema version: %s", path,
                   sqlite3_errmsg(db));
        goto fail;
    }
    if ((app_id != 0 && app_id != STORE_APPLICATION_ID) || (version == 0 && objects > 0) ||
        (version > 0 && app_id != STORE_APPLICATION_ID)) {
        report_err(err, err_len,
                   "%s: not a pgtally report (an SQLite file of another application); "
                   "refusing to modify it",
                   path);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        report_err(err, err_len,
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
    if (!store_sqlite_int(db, "PRAGMA schema_version", &ignored)) {
        report_err(err, err_len, "%s: cannot read it as an SQLite database: %s", path,
                   sqlite3_errmsg(db));
        return false;
    }
    sqlite3_stmt *st = NULL;
    /* journal_mode answers with the mode it got: a filesystem without shared memory
     * support silently stays in "delete", which would block readers during writes. */
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        report_err(err, err_len, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return false;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool wal = mode && strcmp(mode, "wal") == 0;
    if (!wal)
        report_err(err, err_len, "%s: cannot switch to WAL mode (got \"%s\")", path,
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

static bool step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

/* Runs the prepared `st` once with these values (ROW is a list of SQLV_*). */
#define RUN_ROW(st, ...)                                                                           \
    run_row((st), (const SqliteValue[]){__VA_ARGS__},                                              \
            sizeof((const SqliteValue[]){__VA_ARGS__}) / sizeof(SqliteValue))

static bool run_row(sqlite3_stmt *st, const SqliteValue *values, size_t n)
{
    store_sqlite_bind(st, values, n);
    return step_done(st);
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
        report_err(err, err_len, "%s: the run's settings are not valid JSON", s->path);
        return false;
    }
    st = NULL;
    bool ok = sqlite3_prepare_v2(s->db, sql_insert_run, -1, &st, NULL) == SQLITE_OK &&
              RUN_ROW(st, SQLV_INT(run->started_us), SQLV_TEXT(run->version),
                      SQLV_TEXT(run->settings_json), SQLV_TEXT(run->uuid), SQLV_TEXT(run->label),
                      SQLV_TEXT(run->instance), SQLV_INT(run->pid));
    if (!ok)
        report_err(err, err_len, "%s: cannot record the run: %s", s->path, sqlite3_errmsg(s->db));
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
            report_err(err, err_len, "%s: cannot prepare \"%.40s\": %s", s->path, list[i].sql,
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

static bool write_fingerprint(SqliteBackend *s, const FingerprintRecord *r)
{
    char fp[17];
    hex16(r->fingerprint, fp);
    return RUN_ROW(s->st.fingerprint, SQLV_HEX16(fp), SQLV_TEXT(r->normalized ? r->normalized : ""),
                   SQLV_TEXT(r->command ? r->command : ""), SQLV_TEXT_OR_NULL(r->sample),
                   SQLV_INT(r->first_seen_us));
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
    if (!RUN_ROW(s->st.request, SQLV_INT(s->run_id), SQLV_TEXT(r->key ? r->key : ""),
                 SQLV_TEXT(r->route ? r->route : ""), SQLV_TEXT(r->tags_json ? r->tags_json : "{}"),
                 SQLV_INT(r->conn_id), SQLV_INT(r->start_us), SQLV_INT(r->end_us),
                 SQLV_TEXT(r->end_reason ? r->end_reason : ""), SQLV_INT(r->statements),
                 SQLV_INT(r->setup_statements), SQLV_INT(r->distinct_fingerprints),
                 SQLV_INT(r->duplicates), SQLV_INT(r->errors), SQLV_INT(r->transactions),
                 SQLV_INT(r->db_time_us), SQLV_INT(r->rows), SQLV_INT(r->bytes),
                 SQLV_INT(r->truncated), SQLV_INT(r->timeline_dropped)))
        return false;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    char fp[17], vh[17];
    for (size_t i = 0; i < r->n_fingerprints; i++) {
        const RecordFingerprint *f = &r->fingerprints[i];
        hex16(f->fingerprint, fp);
        if (!RUN_ROW(s->st.request_fingerprint, SQLV_INT(id), SQLV_HEX16(fp), SQLV_INT(f->calls),
                     SQLV_INT(f->distinct_values), SQLV_INT(f->total_time_us), SQLV_INT(f->rows),
                     SQLV_INT(f->bytes), SQLV_INT(f->errors), SQLV_INT(f->is_write)))
            return false;
    }
    for (size_t i = 0; i < r->n_findings; i++) {
        const RecordFinding *f = &r->findings[i];
        hex16(f->fingerprint, fp);
        /* No fingerprint (NULL): a request-level overfetch. */
        if (!RUN_ROW(s->st.finding, SQLV_INT(id), SQLV_TEXT(finding_kind_name(f->kind)),
                     f->fingerprint ? SQLV_HEX16(fp) : SQLV_NULL, SQLV_INT(f->count),
                     SQLV_INT(f->distinct_values), SQLV_INT(f->is_write), SQLV_INT(f->by_bytes)))
            return false;
    }
    for (size_t i = 0; i < r->n_timeline; i++) {
        const RecordStatement *t = &r->timeline[i];
        hex16(t->fingerprint, fp);
        hex16(t->values_hash, vh);
        SqliteValue sqlstate = {.type = SQLITE_VALUE_TEXT,
                                .s = t->sqlstate,
                                .len = (int)strnlen(t->sqlstate, sizeof t->sqlstate)};
        if (!RUN_ROW(s->st.statement, SQLV_INT(id), SQLV_INT(i + 1), SQLV_HEX16(fp), SQLV_HEX16(vh),
                     SQLV_INT(t->start_us), SQLV_INT(t->duration_us), SQLV_INT(t->rows),
                     SQLV_INT(t->bytes), SQLV_INT(t->conn_id), sqlstate.len ? sqlstate : SQLV_NULL,
                     SQLV_INT(t->setup)))
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
    report_err(err, err_len, "%s: cannot begin a transaction: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_write_request(StoreBackend *b, const RequestRecord *r, char *err, size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (write_request(s, r))
        return true;
    report_err(err, err_len, "%s: cannot write a request: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_write_fingerprint(StoreBackend *b, const FingerprintRecord *r, char *err,
                                 size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (write_fingerprint(s, r))
        return true;
    report_err(err, err_len, "%s: cannot write a fingerprint: %s", s->path, sqlite3_errmsg(s->db));
    return false;
}

static bool op_commit(StoreBackend *b, char *err, size_t err_len)
{
    SqliteBackend *s = sq(b);
    if (step_done(s->st.commit))
        return true;
    report_err(err, err_len, "%s: cannot commit: %s", s->path, sqlite3_errmsg(s->db));
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
    bool ok = u->totals ? RUN_ROW(s->st.update_run, SQLV_INT_OR_NULL(u->ended_us),
                                  SQLV_INT(u->statements), SQLV_INT(u->requests),
                                  SQLV_INT(u->dropped_requests), SQLV_INT(u->dropped_statements),
                                  SQLV_INT(u->dropped_fingerprints),
                                  SQLV_INT(u->untracked_statements), SQLV_INT(u->complete),
                                  SQLV_INT(s->run_id), SQLV_INT_OR_NULL(u->flushed_us),
                                  SQLV_INT(u->heartbeat_us), SQLV_INT(u->heartbeat_statements))
                        : RUN_ROW(s->st.heartbeat, SQLV_INT(u->heartbeat_us),
                                  SQLV_INT(u->heartbeat_statements), SQLV_INT(s->run_id));
    if (!ok) {
        report_err(err, err_len, "%s: cannot record the run's totals: %s", s->path,
                   sqlite3_errmsg(s->db));
        return false;
    }
    if (!u->settings_json)
        return true;
    /* Settings change only on SIGHUP: no statement kept prepared for them. */
    sqlite3_stmt *set = NULL;
    ok = sqlite3_prepare_v2(s->db, "UPDATE runs SET settings = ?1 WHERE id = ?2", -1, &set, NULL) ==
             SQLITE_OK &&
         RUN_ROW(set, SQLV_TEXT(u->settings_json), SQLV_INT(s->run_id));
    if (!ok)
        report_err(err, err_len, "%s: cannot record the run's settings: %s", s->path,
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
        report_err(err, err_len, "%s: out of memory", path);
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    snprintf(s->base.name, sizeof s->base.name, "%s", path);
    /* Create the file ourselves so it is 0600 whatever the umask; SQLite gives the -wal and
     * -shm files the main file's mode. An existing file keeps the mode its owner chose. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        report_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        report_err(err, err_len, "%s: cannot open: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
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
        report_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    close(fd);
    sqlite3 *db = NULL;
    bool ok = false;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        report_err(err, err_len, "%s: cannot open: %s", path,
                   db ? sqlite3_errmsg(db) : "out of memory");
    else
        ok = configure(db, 1000, path, err, err_len) && migrate(db, path, err, err_len);
    sqlite3_close(db);
    return ok;
}
