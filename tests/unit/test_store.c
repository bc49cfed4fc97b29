/* tests/unit/test_store — the report store: SQLite on real files in a temporary directory, and
 * the PostgreSQL backend's parts that need no server (targets, redaction, an unreachable store):
 * schema and versioning, file modes, every column round-tripped, run totals, drops when the
 * queue is full or SQLite fails (a second connection holding the write lock stalls or fails
 * the writer), recovery, appending runs, and refusing files it must not touch. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report/store.h"
#include "report/store/sqlite.h"
#include "report/store/pg_schema.h"
#include "report/store/pq.h"
#include "testlib.h"

static char tmpdir[64];

/* ---- helpers ---------------------------------------------------------------------------- */

static void db_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpdir, name);
}

static void remove_db(const char *path)
{
    char p[256];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    memcpy(d, s, n);
    return d;
}

/* Request `i`: 2 fingerprints, 3 timeline entries (one failed, one setup), 2 findings (an
 * N+1 on a fingerprint and a request-level overfetch in bytes). Every field derives from i. */
static RequestRecord *make_request(int i)
{
    RequestRecord *r = calloc(1, sizeof *r);
    char buf[128];
    snprintf(buf, sizeof buf, "request_id:r%d", i);
    r->key = dup_str(buf);
    snprintf(buf, sizeof buf, "/users/%d", i % 3);
    r->route = dup_str(buf);
    snprintf(buf, sizeof buf, "{\"request_id\":\"r%d\",\"route\":\"/users/%d\"}", i, i % 3);
    r->tags_json = dup_str(buf);
    r->conn_id = 100 + (uint64_t)i;
    r->start_us = 1700000000000000LL + i * 1000;
    r->end_us = r->start_us + 900;
    r->end_reason = i % 2 ? "idle" : "conn_close";
    r->statements = 2;
    r->setup_statements = 1;
    r->distinct_fingerprints = 2;
    r->duplicates = (uint32_t)i % 4;
    r->errors = 1;
    r->transactions = 3;
    r->db_time_us = 500 + (uint64_t)i;
    r->rows = 10 + (uint64_t)i;
    r->bytes = 2000 + (uint64_t)i;
    r->truncated = i % 5 == 0;
    r->timeline_dropped = (uint64_t)i % 7;

    r->n_fingerprints = 2;
    r->fingerprints = calloc(2, sizeof *r->fingerprints);
    for (int k = 0; k < 2; k++) {
        RecordFingerprint *f = &r->fingerprints[k];
        f->fingerprint = 0xabcdef0000000000ULL + (uint64_t)k;
        f->calls = (uint32_t)(k + 1);
        f->distinct_values = (uint32_t)k + 1;
        f->total_time_us = 100 + (uint64_t)k;
        f->rows = 5 + (uint64_t)k;
        f->bytes = 1000 + (uint64_t)k;
        f->errors = (uint32_t)k;
        f->is_write = k == 1;
    }

    r->n_timeline = 3;
    r->timeline = calloc(3, sizeof *r->timeline);
    for (int k = 0; k < 3; k++) {
        RecordStatement *t = &r->timeline[k];
        t->fingerprint = k == 0 ? 0x0123456789abcdefULL : 0xabcdef0000000000ULL + (uint64_t)k;
        t->values_hash = 0xfeedface00000000ULL + (uint64_t)(i * 10 + k);
        t->start_us = r->start_us + k * 100;
        t->duration_us = 50 + k;
        t->rows = (uint64_t)k * 2;
        t->bytes = (uint64_t)k * 300;
        t->conn_id = r->conn_id;
        if (k == 2)
            memcpy(t->sqlstate, "23505", 6);
        t->setup = k == 0;
    }

    r->n_findings = 2;
    r->findings = calloc(2, sizeof *r->findings);
    r->findings[0] = (RecordFinding){.kind = FINDING_N_PLUS_ONE,
                                     .fingerprint = 0xabcdef0000000001ULL,
                                     .count = 7,
                                     .distinct_values = 6,
                                     .is_write = true};
    r->findings[1] = (RecordFinding){
        .kind = FINDING_OVERFETCH, .fingerprint = 0, .count = 123456, .by_bytes = true};
    return r;
}

static FingerprintRecord *make_fp(uint64_t fp, const char *normalized, const char *sample)
{
    FingerprintRecord *r = calloc(1, sizeof *r);
    r->fingerprint = fp;
    r->normalized = dup_str(normalized);
    r->command = dup_str("select");
    r->sample = sample ? dup_str(sample) : NULL;
    r->first_seen_us = 1700000000000123LL;
    return r;
}

static sqlite3 *open_reader(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        printf("  query failed: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

/* A fresh store file `name` in the test directory (its path into `path`), or NULL with the
 * reason printed and the test failed. */
static Store *open_fresh(const char *name, const StoreOptions *o, char *path, size_t path_len)
{
    char err[512] = "";
    db_path(path, path_len, name);
    remove_db(path);
    Store *s = store_open(path, o, err, sizeof err);
    if (!s)
        printf("  %s: %s\n", name, err);
    CHECK(s != NULL);
    return s;
}

/* What each of a list of one-figure queries should give. */
typedef struct Expect {
    const char *sql;
    int64_t value;
} Expect;

#define CHECK_QUERIES(db, ...)                                                                     \
    check_queries((db), (const Expect[]){__VA_ARGS__},                                             \
                  sizeof((const Expect[]){__VA_ARGS__}) / sizeof(Expect))

static void check_queries(sqlite3 *db, const Expect *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t got = q_int(db, e[i].sql);
        if (got != e[i].value)
            printf("  %s: got %lld, want %lld\n", e[i].sql, (long long)got, (long long)e[i].value);
        CHECK(got == e[i].value);
    }
}

/* The expected value of one column: text (NULL pointer = SQL NULL) or integer. */
typedef struct Want {
    const char *text;
    int64_t num;
    bool is_text;
} Want;
#define W_TEXT(s) ((Want){.text = (s), .is_text = true})
#define W_NULL ((Want){.text = NULL, .is_text = true})
#define W_INT(n) ((Want){.num = (int64_t)(n)})

/* Checks the row at the statement's cursor against `want`, column by column. */
static void check_row(sqlite3_stmt *st, const Want *want, int n, const char *what, int i)
{
    for (int c = 0; c < n; c++) {
        const char *col = sqlite3_column_name(st, c);
        int type = sqlite3_column_type(st, c);
        if (want[c].is_text) {
            const char *got = (const char *)sqlite3_column_text(st, c);
            bool same = want[c].text ? (type == SQLITE_TEXT && strcmp(got, want[c].text) == 0)
                                     : type == SQLITE_NULL;
            if (!same)
                printf("  %s %d column %s: got %s, want %s\n", what, i, col, got ? got : "NULL",
                       want[c].text ? want[c].text : "NULL");
            CHECK(same);
        } else {
            int64_t got = sqlite3_column_int64(st, c);
            bool same = type == SQLITE_INTEGER && got == want[c].num;
            if (!same)
                printf("  %s %d column %s: got %lld (type %d), want %lld\n", what, i, col,
                       (long long)got, type, (long long)want[c].num);
            CHECK(same);
        }
    }
}

static StoreOptions quick_options(void)
{
    return (StoreOptions){.settings_json = "{\"idle_gap_ms\":500}",
                          .version = "test-1.2.3",
                          .started_us = 1700000000000000LL,
                          .batch_linger_ms = 1};
}

/* Waits until the writer has taken everything from the queue (it is then inside SQLite). */
static bool wait_queue_empty(Store *s, double timeout_s)
{
    double end = mono_s() + timeout_s;
    while (mono_s() < end) {
        if (store_stats(s).queued_records == 0)
            return true;
        usleep(1000);
    }
    return false;
}

/* ---- tests -------------------------------------------------------------------------------- */

TEST(schema_created_and_versioned)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    Store *s = open_fresh("schema.db", &o, path, sizeof path);
    if (!s)
        return;
    CHECK(store_close(s, NULL, err, sizeof err));

    sqlite3 *db = open_reader(path);
    CHECK_QUERIES(db, {"PRAGMA user_version", STORE_SCHEMA_VERSION},
                  {"PRAGMA application_id", STORE_APPLICATION_ID});
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);

    /* The documented column lists, in order (docs/report-format.md). */
    static const struct {
        const char *table;
        const char *columns;
    } tables[] = {
        {"runs", "id,started_us,ended_us,version,settings,statements,requests,dropped_requests,"
                 "dropped_statements,dropped_fingerprints,untracked_statements,complete,flushed_us,"
                 "uuid,label,instance,pid,heartbeat_us,heartbeat_statements"},
        {"fingerprints", "fingerprint,normalized,command,sample,first_seen_us"},
        {"requests", "id,run_id,key,route,tags,conn_id,start_us,end_us,end_reason,statements,"
                     "setup_statements,distinct_fingerprints,duplicates,errors,transactions,"
                     "db_time_us,rows,bytes,truncated,timeline_dropped"},
        {"request_fingerprints", "request_id,fingerprint,calls,distinct_values,total_time_us,"
                                 "rows,bytes,errors,is_write"},
        {"findings", "request_id,kind,fingerprint,count,distinct_values,is_write,by_bytes"},
        {"statements", "request_id,seq,fingerprint,values_hash,start_us,duration_us,rows,bytes,"
                       "conn_id,sqlstate,setup"},
    };
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        char sql[128], cols[512] = "";
        snprintf(sql, sizeof sql, "SELECT group_concat(name, ',') FROM pragma_table_info('%s')",
                 tables[t].table);
        sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(cols, sizeof cols, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (strcmp(cols, tables[t].columns) != 0)
            printf("  table %s\n", tables[t].table);
        CHECK_EQ_STR(cols, tables[t].columns);
    }
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN"
                           " ('requests_run_id', 'requests_route')"),
                 2);
    sqlite3_close(db);
}

TEST(file_modes_are_0600)
{
    char path[256], p[300], err[512] = "";
    db_path(path, sizeof path, "mode.db");
    remove_db(path);
    mode_t old = umask(0); /* prove the mode does not come from the umask */
    StoreOptions o = quick_options();
    Store *s = store_open(path, &o, err, sizeof err);
    umask(old);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(store_submit_request(s, make_request(1)));
    CHECK(store_wait_flushed(s, 5));
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        CHECK(stat(p, &sb) == 0);
        if ((sb.st_mode & 0777) != 0600)
            printf("  %s has mode %o\n", p, (unsigned)(sb.st_mode & 0777));
        CHECK_EQ_INT(sb.st_mode & 0777, 0600);
    }
    CHECK(store_close(s, NULL, err, sizeof err));
}

TEST(records_round_trip)
{
    enum { N = 40 };
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    Store *s = open_fresh("roundtrip.db", &o, path, sizeof path);
    if (!s)
        return;
    CHECK(store_submit_fingerprint(
        s, make_fp(0x0123456789abcdefULL, "set application_name = $1", NULL)));
    CHECK(store_submit_fingerprint(s, make_fp(0xabcdef0000000001ULL,
                                              "select * from users where id = $1",
                                              "select * from users where id = 42")));
    for (int i = 0; i < N; i++)
        CHECK(store_submit_request(s, make_request(i)));
    StoreRunTotals totals = {.statements = 3 * N, .requests = N, .complete = true};
    CHECK(store_close(s, &totals, err, sizeof err));

    sqlite3 *db = open_reader(path);
    CHECK_QUERIES(db, {"SELECT count(*) FROM requests", N},
                  {"SELECT count(*) FROM request_fingerprints", 2 * N},
                  {"SELECT count(*) FROM findings", 2 * N},
                  {"SELECT count(*) FROM statements", 3 * N});

    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT * FROM fingerprints ORDER BY fingerprint", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    check_row(st,
              (Want[]){W_TEXT("0123456789abcdef"), W_TEXT("set application_name = $1"),
                       W_TEXT("select"), W_NULL, W_INT(1700000000000123LL)},
              5, "fingerprint", 0);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    check_row(st,
              (Want[]){W_TEXT("abcdef0000000001"), W_TEXT("select * from users where id = $1"),
                       W_TEXT("select"), W_TEXT("select * from users where id = 42"),
                       W_INT(1700000000000123LL)},
              5, "fingerprint", 1);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);

    sqlite3_prepare_v2(db, "SELECT * FROM requests ORDER BY id", -1, &st, NULL);
    for (int i = 0; i < N; i++) {
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        RequestRecord *r = make_request(i);
        Want w[] = {W_INT(i + 1),
                    W_INT(1),
                    W_TEXT(r->key),
                    W_TEXT(r->route),
                    W_TEXT(r->tags_json),
                    W_INT(r->conn_id),
                    W_INT(r->start_us),
                    W_INT(r->end_us),
                    W_TEXT(r->end_reason),
                    W_INT(r->statements),
                    W_INT(r->setup_statements),
                    W_INT(r->distinct_fingerprints),
                    W_INT(r->duplicates),
                    W_INT(r->errors),
                    W_INT(r->transactions),
                    W_INT(r->db_time_us),
                    W_INT(r->rows),
                    W_INT(r->bytes),
                    W_INT(r->truncated),
                    W_INT(r->timeline_dropped)};
        check_row(st, w, 20, "request", i);
        request_record_free(r);
    }
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);

    sqlite3_prepare_v2(db, "SELECT * FROM request_fingerprints ORDER BY request_id, fingerprint",
                       -1, &st, NULL);
    for (int i = 0; i < N; i++) {
        RequestRecord *r = make_request(i);
        for (int k = 0; k < 2; k++) {
            const RecordFingerprint *f = &r->fingerprints[k];
            CHECK(sqlite3_step(st) == SQLITE_ROW);
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)f->fingerprint);
            Want w[] = {W_INT(i + 1),
                        W_TEXT(hex),
                        W_INT(f->calls),
                        W_INT(f->distinct_values),
                        W_INT(f->total_time_us),
                        W_INT(f->rows),
                        W_INT(f->bytes),
                        W_INT(f->errors),
                        W_INT(f->is_write)};
            check_row(st, w, 9, "request_fingerprint", i);
        }
        request_record_free(r);
    }
    sqlite3_finalize(st);

    sqlite3_prepare_v2(db, "SELECT * FROM findings ORDER BY request_id, rowid", -1, &st, NULL);
    for (int i = 0; i < N; i++) {
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        check_row(st,
                  (Want[]){W_INT(i + 1), W_TEXT("n_plus_one"), W_TEXT("abcdef0000000001"), W_INT(7),
                           W_INT(6), W_INT(1), W_INT(0)},
                  7, "finding", i);
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        check_row(st,
                  (Want[]){W_INT(i + 1), W_TEXT("overfetch"), W_NULL, W_INT(123456), W_INT(0),
                           W_INT(0), W_INT(1)},
                  7, "finding", i);
    }
    sqlite3_finalize(st);

    sqlite3_prepare_v2(db, "SELECT * FROM statements ORDER BY request_id, seq", -1, &st, NULL);
    for (int i = 0; i < N; i++) {
        RequestRecord *r = make_request(i);
        for (int k = 0; k < 3; k++) {
            const RecordStatement *t = &r->timeline[k];
            CHECK(sqlite3_step(st) == SQLITE_ROW);
            char fp[17], vh[17];
            snprintf(fp, sizeof fp, "%016llx", (unsigned long long)t->fingerprint);
            snprintf(vh, sizeof vh, "%016llx", (unsigned long long)t->values_hash);
            Want w[] = {W_INT(i + 1),       W_INT(k + 1),
                        W_TEXT(fp),         W_TEXT(vh),
                        W_INT(t->start_us), W_INT(t->duration_us),
                        W_INT(t->rows),     W_INT(t->bytes),
                        W_INT(t->conn_id),  k == 2 ? W_TEXT("23505") : W_NULL,
                        W_INT(t->setup)};
            check_row(st, w, 11, "statement", i);
        }
        request_record_free(r);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

TEST(fingerprint_first_wins_and_first_sample_kept)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    Store *s = open_fresh("fps.db", &o, path, sizeof path);
    if (!s)
        return;
    CHECK(store_submit_fingerprint(s, make_fp(1, "select $1", NULL)));
    CHECK(store_submit_fingerprint(s, make_fp(1, "other text", "select 1")));
    CHECK(store_submit_fingerprint(s, make_fp(1, "third", "select 2")));
    CHECK(store_submit_fingerprint(s, make_fp(2, "select $1 from t", "select 5 from t")));
    CHECK(store_submit_fingerprint(s, make_fp(2, "select $1 from t", NULL)));
    CHECK(!store_submit_fingerprint(s, NULL));
    CHECK(!store_submit_request(s, NULL));
    CHECK(store_close(s, NULL, err, sizeof err));

    sqlite3 *db = open_reader(path);
    CHECK_QUERIES(db, {"SELECT count(*) FROM fingerprints", 2},
                  {"SELECT count(*) FROM fingerprints WHERE fingerprint ="
                   " '0000000000000001' AND normalized = 'select $1' AND sample ="
                   " 'select 1'",
                   1},
                  {"SELECT count(*) FROM fingerprints WHERE fingerprint ="
                   " '0000000000000002' AND sample = 'select 5 from t'",
                   1});
    sqlite3_close(db);
}

TEST(run_row_totals_and_complete_flag)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    Store *s = open_fresh("runs.db", &o, path, sizeof path);
    if (!s)
        return;
    sqlite3 *db = open_reader(path);
    /* While the run is open: no end time, not complete. */
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM runs WHERE ended_us IS NULL AND complete = 0"), 1);
    CHECK(store_submit_request(s, make_request(0)));
    StoreRunTotals clean = {
        .statements = 3, .requests = 1, .untracked_statements = 4, .complete = true};
    CHECK(store_close(s, &clean, err, sizeof err));

    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db,
                       "SELECT id, started_us, version, settings, statements, requests,"
                       " dropped_requests, dropped_statements, dropped_fingerprints,"
                       " untracked_statements, complete, ended_us >= started_us FROM runs",
                       -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    check_row(st,
              (Want[]){W_INT(1), W_INT(1700000000000000LL), W_TEXT("test-1.2.3"),
                       W_TEXT("{\"idle_gap_ms\":500}"), W_INT(3), W_INT(1), W_INT(0), W_INT(0),
                       W_INT(0), W_INT(4), W_INT(1), W_INT(1)},
              12, "run", 1);
    sqlite3_finalize(st);

    /* The proxy's own drops are added in and make the run incomplete. */
    s = store_open(path, &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        sqlite3_close(db);
        return;
    }
    StoreRunTotals lossy = {.statements = 10,
                            .requests = 2,
                            .dropped_requests = 3,
                            .dropped_statements = 7,
                            .dropped_fingerprints = 1,
                            .complete = true};
    CHECK(store_close(s, &lossy, err, sizeof err));
    sqlite3_prepare_v2(db,
                       "SELECT statements, requests, dropped_requests, dropped_statements,"
                       " dropped_fingerprints, complete FROM runs WHERE id = 2",
                       -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    check_row(st, (Want[]){W_INT(10), W_INT(2), W_INT(3), W_INT(7), W_INT(1), W_INT(0)}, 6, "run",
              2);
    sqlite3_finalize(st);

    /* No totals at all (e.g. the proxy could not count): never complete. */
    s = store_open(path, &o, err, sizeof err);
    CHECK(s != NULL);
    if (s)
        CHECK(store_close(s, NULL, err, sizeof err));
    CHECK_EQ_INT(q_int(db, "SELECT complete FROM runs WHERE id = 3"), 0);
    sqlite3_close(db);
}

TEST(reopen_appends_a_run)
{
    char path[256], err[512] = "";
    db_path(path, sizeof path, "append.db");
    remove_db(path);
    StoreOptions o = quick_options();
    o.label = "build-42";
    for (int run = 0; run < 2; run++) {
        o.instance = run ? "web.2" : "web.1";
        Store *s = store_open(path, &o, err, sizeof err);
        CHECK(s != NULL);
        if (!s)
            return;
        for (int i = 0; i < 3; i++)
            CHECK(store_submit_request(s, make_request(run * 10 + i)));
        StoreRunTotals t = {.statements = 9, .requests = 3, .complete = true};
        CHECK(store_close(s, &t, err, sizeof err));
    }
    sqlite3 *db = open_reader(path);
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM runs WHERE complete = 1"), 2);
    /* Each run has its own 128-bit id, its label and the instance that wrote it. */
    CHECK_QUERIES(db, {"SELECT count(DISTINCT uuid) FROM runs WHERE length(uuid) = 32", 2},
                  {"SELECT count(*) FROM runs WHERE label = 'build-42'", 2},
                  {"SELECT count(*) FROM runs WHERE instance = 'web.2' AND id = 2", 1},
                  {"SELECT count(*) FROM runs WHERE pid > 0", 2},
                  {"SELECT count(*) FROM requests WHERE run_id = 1", 3},
                  {"SELECT count(*) FROM requests WHERE run_id = 2", 3});
    CHECK_EQ_INT(q_int(db, "SELECT min(key) FROM requests WHERE run_id = 2") == -999, 0);
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM requests WHERE run_id = 2 AND key LIKE"
                           " 'request_id:r1_'"),
                 3);
    sqlite3_close(db);
}

TEST(full_queue_drops_and_counts_without_blocking)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.queue_max_records = 4;
    o.busy_timeout_ms = 20000; /* the writer waits for the blocker instead of failing */
    Store *s = open_fresh("full.db", &o, path, sizeof path);
    if (!s)
        return;
    sqlite3 *blocker = open_reader(path);
    CHECK(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);

    /* The first record is taken by the writer, which then waits on the write lock. */
    CHECK(store_submit_request(s, make_request(0)));
    CHECK(wait_queue_empty(s, 5));
    /* Every submit returns while this thread still holds the write lock the writer waits for:
     * a submit that waited on SQLite (directly or for queue space) would never return here,
     * and the test would hang until meson's timeout. No clock is needed to see that. */
    int accepted = 0, refused = 0;
    for (int i = 1; i <= 10; i++)
        store_submit_request(s, make_request(i)) ? accepted++ : refused++;
    CHECK_EQ_INT(accepted, 4);
    CHECK_EQ_INT(refused, 6);
    StoreStats st = store_stats(s);
    CHECK_EQ_INT(st.dropped_queue_full, 6);
    CHECK_EQ_INT(st.dropped_requests, 6);
    CHECK_EQ_INT(st.dropped_statements, 12);
    CHECK_EQ_INT(st.queued_records, 4);
    CHECK_EQ_INT(st.written_requests, 0);

    CHECK(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(store_wait_flushed(s, 10));
    st = store_stats(s);
    CHECK_EQ_INT(st.written_requests, 5);
    CHECK_EQ_INT(st.dropped_sqlite, 0);
    CHECK_EQ_INT(st.queued_records, 0);
    CHECK_EQ_INT(st.queued_bytes, 0);
    StoreRunTotals t = {.statements = 22, .requests = 11, .dropped_requests = 1, .complete = true};
    CHECK(store_close(s, &t, err, sizeof err));
    CHECK_QUERIES(blocker, {"SELECT count(*) FROM requests", 5},
                  {"SELECT dropped_requests FROM runs", 7},
                  {"SELECT dropped_statements FROM runs", 12}, {"SELECT complete FROM runs", 0});
    sqlite3_close(blocker);
}

TEST(byte_bound_drops)
{
    char path[256], err[512] = "";
    RequestRecord *probe = make_request(1);
    size_t one = request_record_bytes(probe);
    request_record_free(probe);
    StoreOptions o = quick_options();
    o.queue_max_records = 100;
    o.queue_max_bytes = 2 * one + one / 2; /* room for two records, not three */
    o.busy_timeout_ms = 20000;
    Store *s = open_fresh("bytes.db", &o, path, sizeof path);
    if (!s)
        return;
    sqlite3 *blocker = open_reader(path);
    CHECK(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(store_submit_request(s, make_request(0)));
    CHECK(wait_queue_empty(s, 5));
    CHECK(store_submit_request(s, make_request(1)));
    CHECK(store_submit_request(s, make_request(2)));
    CHECK(!store_submit_request(s, make_request(3)));
    StoreStats st = store_stats(s);
    CHECK_EQ_INT(st.dropped_queue_full, 1);
    CHECK(st.queued_bytes <= o.queue_max_bytes);
    CHECK(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(blocker);
    CHECK(store_wait_flushed(s, 10));
    CHECK_EQ_INT(store_stats(s).written_requests, 3);
    CHECK(store_close(s, NULL, err, sizeof err));
}

TEST(sqlite_failure_drops_and_recovers)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.busy_timeout_ms = 30; /* the writer gives up quickly: its batch fails */
    Store *s = open_fresh("locked.db", &o, path, sizeof path);
    if (!s)
        return;
    sqlite3 *blocker = open_reader(path);
    CHECK(sqlite3_exec(blocker, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(store_submit_fingerprint(s, make_fp(9, "select $1", NULL)));
    for (int i = 0; i < 3; i++)
        CHECK(store_submit_request(s, make_request(i)));
    CHECK(store_wait_flushed(s, 10));
    StoreStats st = store_stats(s);
    CHECK_EQ_INT(st.dropped_sqlite, 4);
    CHECK_EQ_INT(st.dropped_requests, 3);
    CHECK_EQ_INT(st.dropped_statements, 6);
    CHECK_EQ_INT(st.dropped_fingerprints, 1);
    CHECK_EQ_INT(st.written_requests, 0);
    CHECK(st.failed_batches >= 1);
    CHECK(strstr(st.last_error, path) != NULL);
    CHECK(strstr(st.last_error, "locked") != NULL);
    if (!strstr(st.last_error, "locked"))
        printf("  last_error: %s\n", st.last_error);

    /* The lock goes away: the next batches are written. */
    CHECK(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(store_submit_fingerprint(s, make_fp(9, "select $1", NULL)));
    CHECK(store_submit_request(s, make_request(10)));
    CHECK(store_submit_request(s, make_request(11)));
    CHECK(store_wait_flushed(s, 10));
    st = store_stats(s);
    CHECK_EQ_INT(st.written_requests, 2);
    CHECK_EQ_INT(st.written_fingerprints, 1);
    CHECK_EQ_INT(st.dropped_sqlite, 4);
    StoreRunTotals t = {.statements = 10, .requests = 5, .complete = true};
    CHECK(store_close(s, &t, err, sizeof err));
    CHECK_QUERIES(blocker, {"SELECT count(*) FROM requests", 2},
                  {"SELECT count(*) FROM statements", 6}, {"SELECT count(*) FROM fingerprints", 1},
                  {"SELECT dropped_requests FROM runs", 3},
                  {"SELECT dropped_statements FROM runs", 6},
                  {"SELECT dropped_fingerprints FROM runs", 1}, {"SELECT complete FROM runs", 0});
    sqlite3_close(blocker);
}

TEST(flush_makes_records_visible_while_running)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.batch_linger_ms = 60000; /* without the flush nothing would be committed for a minute */
    o.batch_max_records = 1000;
    Store *s = open_fresh("flush.db", &o, path, sizeof path);
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        CHECK(store_submit_request(s, make_request(i)));
    store_request_flush(s, NULL);
    sqlite3 *reader = open_reader(path);
    int64_t seen = 0;
    for (double end = mono_s() + 5; mono_s() < end && seen != 3; usleep(2000))
        seen = q_int(reader, "SELECT count(*) FROM requests");
    CHECK_EQ_INT(seen, 3);
    sqlite3_close(reader);
    /* A second flush with nothing new completes at once; flushes also checkpoint, so a copy
     * of the main file alone (a CI step copying the report mid-run) holds the records. */
    CHECK(store_wait_flushed(s, 5));
    char copy[300], cmd[700];
    snprintf(copy, sizeof copy, "%s/flush-copy.db", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, copy);
    CHECK(system(cmd) == 0);
    sqlite3 *db = open_reader(copy);
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM requests"), 3);
    sqlite3_close(db);
    CHECK(store_close(s, NULL, err, sizeof err));
}

TEST(flush_with_totals_records_a_snapshot_of_a_running_run)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    Store *s = open_fresh("snapshot.db", &o, path, sizeof path);
    if (!s)
        return;
    for (int i = 0; i < 2; i++)
        CHECK(store_submit_request(s, make_request(i)));
    StoreRunTotals totals = {.statements = 20, .requests = 2, .complete = true};
    store_request_flush(s, &totals);
    sqlite3 *reader = open_reader(path);
    int64_t snap = 0;
    for (double end = mono_s() + 5; mono_s() < end && !snap; usleep(2000))
        snap = q_int(reader, "SELECT count(*) FROM runs WHERE flushed_us IS NOT NULL");
    CHECK_EQ_INT(snap, 1);
    CHECK_QUERIES(reader,
                  {"SELECT count(*) FROM runs WHERE ended_us IS NULL AND complete = 1"
                   " AND requests = 2 AND statements = 20",
                   1},
                  {"SELECT count(*) FROM requests", 2});
    sqlite3_close(reader);
    totals.requests = 2;
    CHECK(store_close(s, &totals, err, sizeof err));
    reader = open_reader(path);
    CHECK_EQ_INT(q_int(reader, "SELECT count(*) FROM runs WHERE ended_us IS NOT NULL AND "
                               "complete = 1"),
                 1);
    sqlite3_close(reader);
}

TEST(close_drains_everything)
{
    enum { N = 3000 };
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.queue_max_records = N;
    o.batch_max_records = 64;
    Store *s = open_fresh("drain.db", &o, path, sizeof path);
    if (!s)
        return;
    int accepted = 0;
    for (int i = 0; i < N; i++)
        accepted += store_submit_request(s, make_request(i));
    CHECK_EQ_INT(accepted, N);
    CHECK(store_close(s, NULL, err, sizeof err));
    sqlite3 *db = open_reader(path);
    CHECK_QUERIES(db, {"SELECT count(*) FROM requests", N},
                  {"SELECT count(*) FROM statements", 3 * N},
                  {"SELECT dropped_requests FROM runs", 0});
    sqlite3_close(db);
}

/* A file locked by another process at shutdown: close still returns after about one busy
 * timeout per transaction (not one per batch), counts everything as dropped and says why
 * the run row could not be written. */
TEST(close_with_a_locked_file_is_bounded)
{
    enum { N = 2000 };
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.queue_max_records = N;
    o.batch_max_records = 16;
    o.busy_timeout_ms = 200;
    Store *s = open_fresh("closelocked.db", &o, path, sizeof path);
    if (!s)
        return;
    sqlite3 *blocker = open_reader(path);
    CHECK(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    for (int i = 0; i < N; i++)
        CHECK(store_submit_request(s, make_request(i)));
    double t0 = mono_s();
    err[0] = '\0';
    CHECK(!store_close(s, NULL, err, sizeof err));
    double took = mono_s() - t0;
    if (took > 3)
        printf("  close took %.2f s\n", took);
    /* Not a speed check: one transaction at close fails after one 0.2 s busy timeout, one
     * per batch would take 125 x 0.2 = 25 s. The bound sits far from both. */
    CHECK(took < 12);
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, "locked") != NULL);
    CHECK(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_QUERIES(blocker, {"SELECT count(*) FROM requests", 0},
                  {"SELECT count(*) FROM runs WHERE ended_us IS NULL", 1});
    sqlite3_close(blocker);
}

typedef struct Submitter {
    Store *store;
    int base, n, accepted;
} Submitter;

static void *submit_many(void *arg)
{
    Submitter *sub = arg;
    for (int i = 0; i < sub->n; i++) {
        sub->accepted += store_submit_request(sub->store, make_request(sub->base + i));
        if (i % 97 == 0)
            store_submit_fingerprint(sub->store, make_fp((uint64_t)i, "select $1", "select 1"));
    }
    return NULL;
}

/* Two submitting threads, flushes and stats from a third: counts must add up (and TSan must
 * stay quiet). */
TEST(concurrent_submit_flush_and_stats)
{
    char path[256], err[512] = "";
    StoreOptions o = quick_options();
    o.queue_max_records = 256;
    Store *s = open_fresh("concurrent.db", &o, path, sizeof path);
    if (!s)
        return;
    Submitter subs[2] = {{s, 0, 2000, 0}, {s, 100000, 2000, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, submit_many, &subs[i]);
    for (int i = 0; i < 20; i++) {
        store_request_flush(s, NULL);
        (void)store_stats(s);
        usleep(500);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(store_wait_flushed(s, 30));
    StoreStats st = store_stats(s);
    CHECK_EQ_INT(st.written_requests + st.dropped_requests, 4000);
    CHECK_EQ_INT(st.written_requests, subs[0].accepted + subs[1].accepted);
    CHECK(store_close(s, NULL, err, sizeof err));
    sqlite3 *db = open_reader(path);
    CHECK_QUERIES(db, {"SELECT count(*) FROM requests", st.written_requests},
                  {"SELECT dropped_requests FROM runs", st.dropped_requests});
    sqlite3_close(db);
}

TEST(newer_schema_version_refused)
{
    char path[256], err[512] = "";
    db_path(path, sizeof path, "newer.db");
    remove_db(path);
    Store *s = store_open(path, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(store_close(s, NULL, err, sizeof err));
    sqlite3 *db = open_reader(path);
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    err[0] = '\0';
    s = store_open(path, NULL, err, sizeof err);
    CHECK(s == NULL);
    if (s)
        (void)store_close(s, NULL, NULL, 0);
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, "schema version 7 is newer") != NULL);
    printf("  (refused as: %s)\n", err);
    db = open_reader(path);
    CHECK_EQ_INT(q_int(db, "SELECT count(*) FROM runs"), 1); /* untouched */
    sqlite3_close(db);
}

TEST(foreign_files_refused)
{
    char path[256], err[512] = "";
    db_path(path, sizeof path, "foreign.db");
    remove_db(path);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    CHECK(sqlite3_exec(db, "CREATE TABLE accounts (id INTEGER)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    Store *s = store_open(path, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "not a pgtally report") != NULL);

    db_path(path, sizeof path, "text.db");
    remove_db(path);
    FILE *f = fopen(path, "w");
    fputs("this is not a database, just text that is long enough to have a header.....\n"
          "...............................................................................\n",
          f);
    fclose(f);
    err[0] = '\0';
    s = store_open(path, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, path) != NULL);
    printf("  (text file refused as: %s)\n", err);

    err[0] = '\0';
    s = store_open("/nonexistent-dir/x.db", NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x.db: cannot open") != NULL);

    db_path(path, sizeof path, "badjson.db");
    remove_db(path);
    StoreOptions o = {.settings_json = "{not json"};
    err[0] = '\0';
    s = store_open(path, &o, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "not valid JSON") != NULL);
}

/* ---- PostgreSQL targets (no server needed) ------------------------------------------------ */

TEST(postgres_targets_told_from_paths)
{
    CHECK(pq_is_target("postgres://u@h/db"));
    CHECK(pq_is_target("POSTGRESQL://h/db"));
    CHECK(pq_is_target("host=h dbname=d"));
    CHECK(!pq_is_target("pgtally.db"));
    CHECK(!pq_is_target("/var/lib/pgtally/report.db"));
    CHECK(!pq_is_target("postgres.db"));
}

TEST(redaction_removes_every_password_form)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"postgres://u:s3cret@h:5432/db?sslmode=require",
         "postgres://u:REDACTED@h:5432/db?sslmode=require"},
        {"postgresql://u:se@cr:et@h:5432,h2:5433/db?sslmode=require",
         "postgresql://u:REDACTED@h:5432,h2:5433/db?sslmode=require"},
        {"postgres://u@h/db", "postgres://u@h/db"},
        {"postgresql://u@h/db?password=s3cret&sslmode=verify-full",
         "postgresql://u@h/db?password=REDACTED&sslmode=verify-full"},
        {"postgres://h/db?sslpassword=s3cret", "postgres://h/db?sslpassword=REDACTED"},
        {"host=h password=s3cret dbname=d", "host=h password=REDACTED dbname=d"},
        {"host=h password = 'se cr\\'et' dbname=d", "host=h password = REDACTED dbname=d"},
        {"host=h password='it''s secret' dbname=d", "host=h password=REDACTED dbname=d"},
        {"host=h password='it\\'s \\\\ secret' dbname=d", "host=h password=REDACTED dbname=d"},
        {"host=h password=se;cr&et dbname=d", "host=h password=REDACTED dbname=d"},
        {"host=h PASSWORD=s3cret", "host=h PASSWORD=REDACTED"},
        {"host=h sslpassword=s3cret", "host=h sslpassword=REDACTED"},
        {"/var/run/postgresql", "/var/run/postgresql"},
        {"127.0.0.1:5432", "127.0.0.1:5432"},
        {"report.db", "report.db"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = pq_redact(cases[i].in, out, sizeof out);
        CHECK_EQ_STR(out, cases[i].out);
        CHECK(n == strlen(cases[i].out));
        char *dup = pq_redact_dup(cases[i].in);
        CHECK(dup != NULL);
        if (dup)
            CHECK_EQ_STR(dup, cases[i].out);
        free(dup);
    }
    pq_redact("postgres://u:p@ss:w0rd@h/db", out, sizeof out); /* '@' in the password */
    CHECK(strstr(out, "w0rd") == NULL);
    /* a short buffer: truncated, terminated, and the full length returned */
    char small[12];
    size_t full = pq_redact("postgres://u:s3cret@h/db", small, sizeof small);
    CHECK_EQ_STR(small, "postgres://");
    CHECK(full == strlen("postgres://u:REDACTED@h/db"));
    CHECK(store_pg_schema_name_valid("pgtally"));
    CHECK(store_pg_schema_name_valid("Tally_2"));
    CHECK(!store_pg_schema_name_valid("2tally"));
    CHECK(!store_pg_schema_name_valid("a\"b"));
    CHECK(!store_pg_schema_name_valid(""));
}

/* A PostgreSQL store that cannot be reached: open succeeds (the relay must not wait for it),
 * records wait in the queue, the bound drops and counts, close gives up after one more try. */
TEST(unreachable_postgres_store_queues_then_drops_at_the_bound)
{
    char err[512] = "";
    StoreOptions o = {.queue_max_records = 4};
    Store *s = store_open("postgres://tally:s3cret@127.0.0.1:1/store", &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        printf("  %s\n", err);
        return;
    }
    int accepted = 0;
    for (int i = 0; i < 6; i++)
        accepted += store_submit_request(s, make_request(i));
    CHECK_EQ_INT(accepted, 4);
    double deadline = mono_s() + 10;
    StoreStats st = store_stats(s);
    while (!st.error_seq && mono_s() < deadline) {
        usleep(10000);
        st = store_stats(s);
    }
    CHECK(!st.connected);
    CHECK_EQ_INT(st.queued_records, 4);
    CHECK_EQ_INT(st.dropped_queue_full, 2);
    CHECK(strstr(st.last_error, "127.0.0.1:1") != NULL);
    CHECK(strstr(st.last_error, "s3cret") == NULL);
    CHECK(strstr(st.store, "s3cret") == NULL);
    err[0] = 0;
    CHECK(!store_close(s, NULL, err, sizeof err));
    CHECK(strstr(err, "unreachable") != NULL);
    CHECK(strstr(err, "s3cret") == NULL);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/pgtally-test-store-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(schema_created_and_versioned);
    RUN(file_modes_are_0600);
    RUN(records_round_trip);
    RUN(fingerprint_first_wins_and_first_sample_kept);
    RUN(run_row_totals_and_complete_flag);
    RUN(reopen_appends_a_run);
    RUN(full_queue_drops_and_counts_without_blocking);
    RUN(byte_bound_drops);
    RUN(sqlite_failure_drops_and_recovers);
    RUN(flush_makes_records_visible_while_running);
    RUN(flush_with_totals_records_a_snapshot_of_a_running_run);
    RUN(close_drains_everything);
    RUN(close_with_a_locked_file_is_bounded);
    RUN(concurrent_submit_flush_and_stats);
    RUN(newer_schema_version_refused);
    RUN(foreign_files_refused);
    RUN(postgres_targets_told_from_paths);
    RUN(redaction_removes_every_password_form);
    RUN(unreachable_postgres_store_queues_then_drops_at_the_bound);
    int rc = TESTLIB_FINISH();
    if (rc == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("could not remove %s\n", tmpdir);
    } else {
        printf("files kept in %s\n", tmpdir);
    }
    return rc;
}
