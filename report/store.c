/* report/store — see store.h. The schema itself is documented in docs/report-format.md. */
#include "report/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef PGTALLY_VERSION
#define PGTALLY_VERSION "unknown"
#endif

/* "pgtl": marks the file as a pgtally report, so another tool's database is never migrated. */
#define STORE_APPLICATION_ID 0x7067746c

#define DEFAULT_QUEUE_RECORDS 8192
#define DEFAULT_QUEUE_BYTES ((size_t)64 << 20)
#define DEFAULT_BATCH_RECORDS 512
#define DEFAULT_LINGER_MS 5
#define DEFAULT_BUSY_MS 1000

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
     * `heartbeat_us` and `heartbeat_statements` let a reader tell a live proxy from one that died without ending its run.
     * Runs of older files get a fresh uuid. */
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
    "INSERT INTO runs (started_us, version, settings, uuid, label, instance, pid, heartbeat_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?1)";
static const char sql_update_run[] =
    "UPDATE runs SET ended_us = ?1, statements = ?2, requests = ?3, dropped_requests = ?4,"
    " dropped_statements = ?5, dropped_fingerprints = ?6, untracked_statements = ?7,"
    " complete = ?8, flushed_us = ?10 WHERE id = ?9";
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

/* ---- the store ------------------------------------------------------------------------- */

typedef enum EntryKind {
    ENTRY_REQUEST,
    ENTRY_FINGERPRINT,
} EntryKind;

typedef struct QueueEntry {
    void *record;
    size_t bytes;
    EntryKind kind;
} QueueEntry;

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
} Statements;

struct Store {
    char *path;
    sqlite3 *db;
    int64_t run_id;
    char run_uuid[33]; /* runs.uuid: 128 random bits in hex, unique across stores */
    Statements st;
    size_t batch_max;
    unsigned linger_ms;
    QueueEntry *batch; /* the writer's batch buffer: room for the whole queue (close) */

    pthread_t writer;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;  /* the writer waits for work here */
    pthread_cond_t flushed;
    QueueEntry *ring;
    size_t cap, head, count, bytes, max_bytes;
    bool writer_sleeping;
    size_t wake_at; /* signal the sleeping writer once count reaches this */
    bool closing;
    uint64_t enqueued;  /* records ever pushed */
    uint64_t processed; /* records ever taken and written or dropped by the writer */
    uint64_t flush_gen, flush_done_gen;
    uint64_t flush_mark; /* `enqueued` when flush_gen was last raised */
    StoreRunTotals flush_totals; /* the proxy's totals as of the latest flush request */
    bool flush_totals_set;
    StoreStats stats;
};

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

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

static size_t fingerprint_record_bytes(const FingerprintRecord *r)
{
    return sizeof *r + (r->normalized ? strlen(r->normalized) + 1 : 0) +
           (r->command ? strlen(r->command) + 1 : 0) + (r->sample ? strlen(r->sample) + 1 : 0);
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
                    "PRAGMA cache_size = -16384;",
                    "cannot set pragmas", path, err, err_len);
}

/* 128 random bits as 32 hex digits: a run's identity in every store it is copied to. */
static bool new_run_uuid(char out[33])
{
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return true;
}

static bool insert_run(Store *s, const StoreOptions *o, char *err, size_t err_len)
{
    if (!new_run_uuid(s->run_uuid)) {
        set_err(err, err_len, "%s: cannot draw a run id: %s", s->path, strerror(errno));
        return false;
    }
    const char *settings = o->settings_json ? o->settings_json : "{}";
    sqlite3_stmt *st = NULL;
    int64_t valid = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT json_valid(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, settings, -1, SQLITE_STATIC);
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
        sqlite3_bind_int64(st, 1, o->started_us ? o->started_us : now_us());
        sqlite3_bind_text(st, 2, o->version ? o->version : PGTALLY_VERSION, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, settings, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, s->run_uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, o->label ? o->label : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, o->instance ? o->instance : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (int64_t)getpid());
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    if (!ok)
        set_err(err, err_len, "%s: cannot record the run: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    s->run_id = sqlite3_last_insert_rowid(s->db);
    return ok;
}

static bool prepare_all(Store *s, char *err, size_t err_len)
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

static void finalize_all(Store *s)
{
    sqlite3_stmt **all[] = {&s->st.begin,       &s->st.commit,   &s->st.rollback,
                            &s->st.fingerprint, &s->st.request,  &s->st.request_fingerprint,
                            &s->st.finding,     &s->st.statement};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

/* ---- the writer thread ------------------------------------------------------------------ */

/* Steps a statement that returns no rows and resets it for the next use. */
static bool step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

static bool write_fingerprint(Store *s, const FingerprintRecord *r)
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

static bool write_request(Store *s, const RequestRecord *r)
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

typedef struct BatchResult {
    bool ok;
    uint64_t requests, statements, fingerprints; /* in the batch */
    char error[256];
} BatchResult;

/* Writes `n` entries in one transaction and frees them. On any failure the whole
 * transaction is rolled back: every record of the batch is then a drop. */
static void write_batch(Store *s, QueueEntry *batch, size_t n, BatchResult *res)
{
    memset(res, 0, sizeof *res);
    const char *stage = "cannot begin a transaction";
    bool ok = step_done(s->st.begin);
    for (size_t i = 0; ok && i < n; i++) {
        if (batch[i].kind == ENTRY_REQUEST) {
            stage = "cannot write a request";
            ok = write_request(s, batch[i].record);
        } else {
            stage = "cannot write a fingerprint";
            ok = write_fingerprint(s, batch[i].record);
        }
    }
    if (ok) {
        stage = "cannot commit";
        ok = step_done(s->st.commit);
    }
    if (!ok) {
        snprintf(res->error, sizeof res->error, "%s: %s: %s (%d records dropped)", s->path, stage,
                 sqlite3_errmsg(s->db), (int)n);
        /* Some errors (SQLITE_FULL, IOERR) already rolled back; others leave it open. */
        if (!sqlite3_get_autocommit(s->db))
            step_done(s->st.rollback);
    }
    res->ok = ok;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].kind == ENTRY_REQUEST) {
            RequestRecord *r = batch[i].record;
            res->requests++;
            res->statements += r->statements;
            request_record_free(r);
        } else {
            res->fingerprints++;
            fingerprint_record_free(batch[i].record);
        }
    }
}

static void deadline_after_ms(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* A flush is pending while records submitted before the latest request are unprocessed. */
static bool flush_pending(const Store *s)
{
    return s->flush_done_gen != s->flush_gen;
}

/* A completed flush also checkpoints, so a reader that copies the main file alone (without
 * its -wal) most likely sees the data too. Passive: it never waits for readers. */
static void checkpoint_passive(Store *s)
{
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

/* Writes the run's row: totals plus the store's own drops. At close (`ended`) it sets
 * ended_us; after a SIGUSR1 flush it sets flushed_us instead, leaving the run open. */
static bool write_run_row(Store *s, const StoreRunTotals *t, bool ended, char *err,
                          size_t err_len)
{
    pthread_mutex_lock(&s->lock);
    StoreStats st = s->stats;
    pthread_mutex_unlock(&s->lock);
    uint64_t dropped_requests = t->dropped_requests + st.dropped_requests;
    uint64_t dropped_statements = t->dropped_statements + st.dropped_statements;
    uint64_t dropped_fingerprints = t->dropped_fingerprints + st.dropped_fingerprints;
    bool complete =
        t->complete && !dropped_requests && !dropped_statements && !dropped_fingerprints;
    bool ok = false;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql_update_run, -1, &q, NULL) == SQLITE_OK) {
        int64_t now = now_us();
        if (ended)
            sqlite3_bind_int64(q, 1, now);
        else
            sqlite3_bind_null(q, 1);
        sqlite3_bind_int64(q, 2, (int64_t)t->statements);
        sqlite3_bind_int64(q, 3, (int64_t)t->requests);
        sqlite3_bind_int64(q, 4, (int64_t)dropped_requests);
        sqlite3_bind_int64(q, 5, (int64_t)dropped_statements);
        sqlite3_bind_int64(q, 6, (int64_t)dropped_fingerprints);
        sqlite3_bind_int64(q, 7, (int64_t)t->untracked_statements);
        sqlite3_bind_int(q, 8, complete);
        sqlite3_bind_int64(q, 9, s->run_id);
        sqlite3_bind_int64(q, 10, now);
        ok = sqlite3_step(q) == SQLITE_DONE;
    }
    if (!ok)
        set_err(err, err_len, "%s: cannot record the run's totals: %s", s->path,
                sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    return ok;
}

/* A flush reached its mark: record the proxy's totals as of the request, then checkpoint. */
static void finish_flush(Store *s)
{
    pthread_mutex_lock(&s->lock);
    bool have = s->flush_totals_set;
    StoreRunTotals totals = s->flush_totals;
    s->flush_totals_set = false;
    pthread_mutex_unlock(&s->lock);
    if (have) {
        char err[256];
        if (!write_run_row(s, &totals, false, err, sizeof err)) {
            pthread_mutex_lock(&s->lock);
            snprintf(s->stats.last_error, sizeof s->stats.last_error, "%s", err);
            pthread_mutex_unlock(&s->lock);
        }
    }
    checkpoint_passive(s);
}

static void *writer_main(void *arg)
{
    Store *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->count == 0 && !s->closing && !flush_pending(s)) {
            s->writer_sleeping = true;
            s->wake_at = 1;
            pthread_cond_wait(&s->wake, &s->lock);
        }
        s->writer_sleeping = false;
        if (s->count == 0) {
            /* An empty queue means every record ever submitted has been processed. */
            if (flush_pending(s)) {
                uint64_t gen = s->flush_gen;
                pthread_mutex_unlock(&s->lock);
                finish_flush(s);
                pthread_mutex_lock(&s->lock);
                if (s->flush_done_gen < gen)
                    s->flush_done_gen = gen;
                pthread_cond_broadcast(&s->flushed);
                continue;
            }
            break; /* closing, and drained */
        }
        /* Linger briefly so a trickle of records shares one transaction. */
        if (s->count < s->batch_max && !s->closing && !flush_pending(s)) {
            struct timespec deadline;
            deadline_after_ms(&deadline, s->linger_ms);
            while (s->count < s->batch_max && !s->closing && !flush_pending(s)) {
                s->writer_sleeping = true;
                s->wake_at = s->batch_max;
                if (pthread_cond_timedwait(&s->wake, &s->lock, &deadline) == ETIMEDOUT)
                    break;
            }
            s->writer_sleeping = false;
        }
        /* At close everything left goes in one transaction: a file locked by someone else
         * then costs one busy timeout, not one per batch, before the process can exit. */
        size_t limit = s->closing ? s->cap : s->batch_max;
        size_t n = s->count < limit ? s->count : limit;
        for (size_t i = 0; i < n; i++) {
            s->batch[i] = s->ring[s->head];
            s->bytes -= s->batch[i].bytes;
            s->head = (s->head + 1) % s->cap;
        }
        s->count -= n;
        pthread_mutex_unlock(&s->lock);

        BatchResult res;
        write_batch(s, s->batch, n, &res);

        pthread_mutex_lock(&s->lock);
        bool flush_reached = flush_pending(s) && s->processed + n >= s->flush_mark;
        uint64_t gen = s->flush_gen;
        pthread_mutex_unlock(&s->lock);
        if (flush_reached && res.ok)
            finish_flush(s);

        pthread_mutex_lock(&s->lock);
        s->processed += n;
        if (res.ok) {
            s->stats.batches++;
            s->stats.written_requests += res.requests;
            s->stats.written_statements += res.statements;
            s->stats.written_fingerprints += res.fingerprints;
        } else {
            s->stats.failed_batches++;
            s->stats.dropped_requests += res.requests;
            s->stats.dropped_statements += res.statements;
            s->stats.dropped_fingerprints += res.fingerprints;
            s->stats.dropped_sqlite += n;
            memcpy(s->stats.last_error, res.error, sizeof s->stats.last_error);
        }
        if (flush_reached) {
            /* `gen`'s mark is at most the mark just checked: that flush is complete. */
            if (s->flush_done_gen < gen)
                s->flush_done_gen = gen;
            pthread_cond_broadcast(&s->flushed);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

static void store_free(Store *s)
{
    finalize_all(s);
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->ring);
    free(s->batch);
    free(s->path);
    free(s);
}

Store *store_open(const char *path, const StoreOptions *opts, char *err, size_t err_len)
{
    static const StoreOptions defaults;
    const StoreOptions *o = opts ? opts : &defaults;
    bool sync_ready = false;
    Store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        set_err(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    s->cap = o->queue_max_records ? o->queue_max_records : DEFAULT_QUEUE_RECORDS;
    s->max_bytes = o->queue_max_bytes ? o->queue_max_bytes : DEFAULT_QUEUE_BYTES;
    s->batch_max = o->batch_max_records ? o->batch_max_records : DEFAULT_BATCH_RECORDS;
    if (s->batch_max > s->cap)
        s->batch_max = s->cap;
    s->linger_ms = o->batch_linger_ms ? o->batch_linger_ms : DEFAULT_LINGER_MS;
    s->ring = calloc(s->cap, sizeof *s->ring);
    s->batch = calloc(s->cap, sizeof *s->batch);
    if (!s->ring || !s->batch) {
        set_err(err, err_len, "%s: out of memory for the store queue", path);
        goto fail;
    }

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
        set_err(err, err_len, "%s: cannot open: %s", path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    if (!configure(s->db, o->busy_timeout_ms ? o->busy_timeout_ms : DEFAULT_BUSY_MS, path, err,
                   err_len) ||
        !migrate(s->db, path, err, err_len) || !insert_run(s, o, err, err_len) ||
        !prepare_all(s, err, err_len))
        goto fail;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->flushed, &ca);
    pthread_condattr_destroy(&ca);
    sync_ready = true;

    /* The writer starts with every signal blocked so SIGTERM/SIGUSR1/SIGHUP always reach
     * the event loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        set_err(err, err_len, "%s: cannot start the writer thread: %s", path, strerror(rc));
        goto fail;
    }
    pthread_setname_np(s->writer, "pgtally-store");
    return s;

fail:
    if (s) {
        if (sync_ready) {
            pthread_mutex_destroy(&s->lock);
            pthread_cond_destroy(&s->wake);
            pthread_cond_destroy(&s->flushed);
        }
        store_free(s);
    }
    return NULL;
}

/* Pushes one entry, or counts the drop. The lock is held only for the push. */
static bool submit(Store *s, EntryKind kind, void *record, size_t bytes, uint64_t statements)
{
    pthread_mutex_lock(&s->lock);
    if (s->count >= s->cap || bytes > s->max_bytes - s->bytes) {
        s->stats.dropped_queue_full++;
        if (kind == ENTRY_REQUEST) {
            s->stats.dropped_requests++;
            s->stats.dropped_statements += statements;
        } else {
            s->stats.dropped_fingerprints++;
        }
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    s->ring[(s->head + s->count) % s->cap] = (QueueEntry){record, bytes, kind};
    s->count++;
    s->bytes += bytes;
    s->enqueued++;
    if (s->writer_sleeping && s->count >= s->wake_at) {
        s->writer_sleeping = false; /* one signal per sleep */
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return true;
}

bool store_submit_request(Store *s, RequestRecord *r)
{
    if (!r)
        return false;
    if (submit(s, ENTRY_REQUEST, r, request_record_bytes(r), r->statements))
        return true;
    request_record_free(r);
    return false;
}

bool store_submit_fingerprint(Store *s, FingerprintRecord *r)
{
    if (!r)
        return false;
    if (submit(s, ENTRY_FINGERPRINT, r, fingerprint_record_bytes(r), 0))
        return true;
    fingerprint_record_free(r);
    return false;
}

/* Raises the flush generation; returns it. Caller holds the lock. */
static uint64_t request_flush_locked(Store *s)
{
    s->flush_gen++;
    s->flush_mark = s->enqueued;
    s->writer_sleeping = false;
    pthread_cond_signal(&s->wake);
    return s->flush_gen;
}

void store_request_flush(Store *s, const StoreRunTotals *totals)
{
    pthread_mutex_lock(&s->lock);
    if (totals) {
        s->flush_totals = *totals;
        s->flush_totals_set = true;
    }
    request_flush_locked(s);
    pthread_mutex_unlock(&s->lock);
}

bool store_wait_flushed(Store *s, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double whole = (double)(int64_t)timeout_s;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    uint64_t gen = request_flush_locked(s);
    bool done = true;
    while (s->flush_done_gen < gen) {
        if (pthread_cond_timedwait(&s->flushed, &s->lock, &deadline) == ETIMEDOUT) {
            done = s->flush_done_gen >= gen;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return done;
}

StoreStats store_stats(const Store *cs)
{
    /* The lock is part of the store's state, not of its value: reading needs it too. */
    Store *s = (Store *)cs;
    pthread_mutex_lock(&s->lock);
    StoreStats st = s->stats;
    st.queued_records = s->count;
    st.queued_bytes = s->bytes;
    pthread_mutex_unlock(&s->lock);
    return st;
}

bool store_close(Store *s, const StoreRunTotals *totals, char *err, size_t err_len)
{
    if (!s)
        return true;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    s->writer_sleeping = false;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer, NULL); /* the writer leaves only once the queue is empty */

    static const StoreRunTotals none;
    bool ok = write_run_row(s, totals ? totals : &none, true, err, err_len);
    /* TRUNCATE leaves a self-contained main file; a reader holding a snapshot makes it
     * busy, which is harmless (the WAL keeps the data), so its result is not an error. */
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);

    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->flushed);
    store_free(s);
    return ok;
}
