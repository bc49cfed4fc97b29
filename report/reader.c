/* report/reader — see reader.h. Every query is scoped to one run and reads only. */
#include "report/reader.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report/store.h"

/* The store's application_id ("pgtl"); see store.c. */
#define READER_APPLICATION_ID 0x7067746c

struct ReportFile {
    char *path;
    sqlite3 *db;
    int64_t schema_version;
};

/* A list's memory: every string and side array it hands out, freed together. */
struct ReaderArena {
    void **blocks;
    size_t n, cap;
};

/* ---- small helpers ------------------------------------------------------------------------ */

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

static void *arena_alloc(ReaderArena **arena, size_t size)
{
    if (!*arena) {
        *arena = calloc(1, sizeof **arena);
        if (!*arena)
            return NULL;
    }
    ReaderArena *a = *arena;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void **blocks = realloc(a->blocks, cap * sizeof *blocks);
        if (!blocks)
            return NULL;
        a->blocks = blocks;
        a->cap = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (p)
        a->blocks[a->n++] = p;
    return p;
}

static const char *arena_strdup(ReaderArena **arena, const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    char *p = arena_alloc(arena, len + 1);
    if (p)
        memcpy(p, s, len + 1);
    return p;
}

static void arena_free(ReaderArena *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    free(a);
}

/* A growable array of fixed-size items, the `items` of every list. */
static void *grow(void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return items;
    size_t new_cap = *cap ? *cap * 2 : 16;
    void *p = realloc(items, new_cap * size);
    if (!p)
        return NULL;
    memset((char *)p + *cap * size, 0, (new_cap - *cap) * size);
    *cap = new_cap;
    return p;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

static void copy_hex16(char out[17], const char *s)
{
    snprintf(out, 17, "%s", s ? s : "");
}

static bool prepare(ReportFile *f, sqlite3_stmt **st, const char *sql, char *err, size_t err_len)
{
    if (sqlite3_prepare_v2(f->db, sql, -1, st, NULL) == SQLITE_OK)
        return true;
    set_err(err, err_len, "%s: cannot read the report: %s", f->path, sqlite3_errmsg(f->db));
    return false;
}

static bool step_failed(ReportFile *f, int rc, char *err, size_t err_len)
{
    if (rc == SQLITE_DONE)
        return false;
    set_err(err, err_len, "%s: cannot read the report: %s", f->path, sqlite3_errmsg(f->db));
    return true;
}

static bool out_of_memory(ReportFile *f, char *err, size_t err_len)
{
    set_err(err, err_len, "%s: out of memory while reading the report", f->path);
    return false;
}

/* Kind strings are interned so a finding's `kind` outlives the statement that read it. */
static const char *kind_name(const char *kind)
{
    static const char *const names[] = {"n_plus_one", "duplicate", "overfetch"};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(kind, names[i]) == 0)
            return names[i];
    return "other";
}

/* The name users know a request by: the value after the tag kind in its key. */
static const char *request_display_id(const char *key)
{
    static const char *const prefixes[] = {"request_id:", "correlation_id:", "trace:"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(key, prefixes[i], n) == 0)
            return key + n;
    }
    return key;
}

/* ---- open ---------------------------------------------------------------------------------- */

static bool pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return false;
    }
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return ok;
}

ReportFile *reader_open(const char *path, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        set_err(err, err_len, "%s: cannot open the report: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, err_len, "%s: cannot open the report: not a regular file", path);
        return NULL;
    }
    ReportFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        set_err(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        set_err(err, err_len, "%s: cannot open the report: %s", path,
                f->db ? sqlite3_errmsg(f->db) : "out of memory");
        goto fail;
    }
    /* The proxy may be writing right now (WAL): wait out a checkpoint rather than fail. */
    sqlite3_busy_timeout(f->db, 2000);
    int64_t app_id = 0, version = 0;
    if (!pragma_int(f->db, "PRAGMA application_id", &app_id) ||
        !pragma_int(f->db, "PRAGMA user_version", &version)) {
        set_err(err, err_len, "%s: not a pgtally report (%s)", path, sqlite3_errmsg(f->db));
        goto fail;
    }
    if (app_id != READER_APPLICATION_ID || version <= 0) {
        set_err(err, err_len, "%s: not a pgtally report (an SQLite file of another kind)", path);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        set_err(err, err_len,
                "%s: report schema version %lld is newer than this pgtally reads (%d); "
                "use a newer pgtally",
                path, (long long)version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    f->schema_version = version;
    return f;
fail:
    reader_close(f);
    return NULL;
}

void reader_close(ReportFile *f)
{
    if (!f)
        return;
    sqlite3_close(f->db);
    free(f->path);
    free(f);
}

const char *reader_path(const ReportFile *f)
{
    return f->path;
}

/* ---- runs ---------------------------------------------------------------------------------- */

/* %s: the flush time, a column since schema version 2 (0 in older files), then the
 * liveness columns of version 3. */
#define SQL_RUNS(flushed, live)                                                                    \
    "SELECT r.id, r.started_us, coalesce(r.ended_us, 0), r.version,"                               \
    " CASE WHEN json_valid(r.settings) THEN r.settings ELSE '{}' END, r.statements,"               \
    " r.requests, r.dropped_requests, r.dropped_statements, r.dropped_fingerprints,"               \
    " r.untracked_statements, r.complete,"                                                         \
    " (SELECT count(*) FROM requests q WHERE q.run_id = r.id),"                                    \
    " (SELECT coalesce(sum(q.statements), 0) FROM requests q WHERE q.run_id = r.id), " flushed     \
    ", " live " FROM runs r WHERE ?1 IS NULL OR r.id = ?1 ORDER BY r.id"
#define SQL_LIVE_V3                                                                                \
    "coalesce(r.heartbeat_us, 0), coalesce(r.heartbeat_statements, -1), coalesce(r.pid, 0),"       \
    " r.instance"
static const char sql_runs_v3[] = SQL_RUNS("coalesce(r.flushed_us, 0)", SQL_LIVE_V3);
static const char sql_runs_v2[] = SQL_RUNS("coalesce(r.flushed_us, 0)", "0, -1, 0, ''");
static const char sql_runs_v1[] = SQL_RUNS("0", "0, -1, 0, ''");

static const char *sql_runs(const ReportFile *f)
{
    return f->schema_version >= 3   ? sql_runs_v3
           : f->schema_version >= 2 ? sql_runs_v2
                                    : sql_runs_v1;
}

static void run_from_row(sqlite3_stmt *st, ReaderRun *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->started_us = sqlite3_column_int64(st, 1);
    r->ended_us = sqlite3_column_int64(st, 2);
    snprintf(r->version, sizeof r->version, "%s", col_text(st, 3));
    r->statements = col_u64(st, 5);
    r->requests = col_u64(st, 6);
    r->dropped_requests = col_u64(st, 7);
    r->dropped_statements = col_u64(st, 8);
    r->dropped_fingerprints = col_u64(st, 9);
    r->untracked_statements = col_u64(st, 10);
    r->complete = sqlite3_column_int64(st, 11) != 0;
    r->stored_requests = col_u64(st, 12);
    r->stored_statements = col_u64(st, 13);
    r->flushed_us = sqlite3_column_int64(st, 14);
    r->heartbeat_us = sqlite3_column_int64(st, 15);
    r->heartbeat_statements = sqlite3_column_int64(st, 16);
    r->pid = sqlite3_column_int64(st, 17);
    snprintf(r->writer_host, sizeof r->writer_host, "%s", col_text(st, 18));
}

bool reader_list_runs(ReportFile *f, ReaderRunList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_runs(f), err, err_len))
        return false;
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderRun *items = grow(out->items, out->n, &cap, sizeof *items);
        if (!items) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->items = items;
        ReaderRun *r = &items[out->n];
        run_from_row(st, r);
        r->settings_json = (char *)arena_strdup(&out->arena, col_text(st, 4));
        if (!r->settings_json) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (!ok)
        reader_run_list_free(out);
    return ok;
}

void reader_run_list_free(ReaderRunList *list)
{
    free(list->items);
    arena_free(list->arena);
    memset(list, 0, sizeof *list);
}

bool reader_load_run(ReportFile *f, int64_t run_id, ReaderRun *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int64_t id = run_id;
    if (run_id <= 0) {
        if (!prepare(f, &st, "SELECT max(id) FROM runs", err, err_len))
            return false;
        int rc = sqlite3_step(st);
        bool none = rc != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL;
        id = none ? 0 : sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW) {
            set_err(err, err_len, "%s: cannot read the report: %s", f->path, sqlite3_errmsg(f->db));
            return false;
        }
        if (none) {
            set_err(err, err_len, "%s: the report holds no runs yet", f->path);
            return false;
        }
    }
    if (!prepare(f, &st, sql_runs(f), err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    bool ok = false;
    if (rc == SQLITE_ROW) {
        run_from_row(st, out);
        out->settings_json = strdup(col_text(st, 4));
        ok = out->settings_json != NULL;
        if (!ok)
            out_of_memory(f, err, err_len);
    } else if (rc == SQLITE_DONE) {
        set_err(err, err_len, "%s: no run %lld in the report", f->path, (long long)id);
    } else {
        step_failed(f, rc, err, err_len);
    }
    sqlite3_finalize(st);
    return ok;
}

void reader_run_free(ReaderRun *run)
{
    free(run->settings_json);
    run->settings_json = NULL;
}

uint64_t reader_run_dropped(const ReaderRun *run)
{
    return run->dropped_requests + run->dropped_statements + run->dropped_fingerprints;
}

/* Whether the proxy that writes `run` is still running, as far as this host can tell: its
 * heartbeat is recent and, when it runs on this host, its pid is alive. */
static bool run_writer_alive(const ReaderRun *run, char *why, size_t why_len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    int64_t stale_us = (int64_t)3 * STORE_HEARTBEAT_INTERVAL_S * 1000000;
    if (run->heartbeat_us <= 0 || now - run->heartbeat_us > stale_us) {
        set_err(why, why_len,
                "the proxy stopped without ending the run (no heartbeat for %.0f s): what it "
                "saw after its last SIGUSR1 snapshot is lost",
                run->heartbeat_us > 0 ? (double)(now - run->heartbeat_us) / 1e6 : 0.0);
        return false;
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *dyno = getenv("DYNO");
    bool here = run->writer_host[0] && (strcmp(run->writer_host, host) == 0 ||
                                        (dyno && strcmp(run->writer_host, dyno) == 0));
    if (here && run->pid > 0 && kill((pid_t)run->pid, 0) != 0 && errno == ESRCH) {
        set_err(why, why_len,
                "the proxy (pid %lld on %s) is gone without ending the run (killed?): what it "
                "saw after its last SIGUSR1 snapshot is lost",
                (long long)run->pid, run->writer_host);
        return false;
    }
    return true;
}

bool reader_run_is_complete(const ReaderRun *run, char *why, size_t why_len)
{
    if (run->ended_us == 0 && run->flushed_us == 0) {
        set_err(why, why_len,
                "the run has not ended (proxy still running, or killed); "
                "send the proxy SIGUSR1 to flush a complete snapshot");
        return false;
    }
    /* A running proxy's SIGUSR1 snapshot is complete only while nothing has happened after
     * it: the totals it recorded must still match what the file holds and what the proxy
     * has seen since, and the proxy must still be there to finish the run. */
    if (run->ended_us == 0 && run->stored_requests != run->requests) {
        set_err(why, why_len,
                "the run is still going: %llu requests were written after its last SIGUSR1 "
                "snapshot (send SIGUSR1 again, or stop the proxy)",
                (unsigned long long)(run->stored_requests - run->requests));
        return false;
    }
    if (run->ended_us == 0 && run->heartbeat_statements >= 0 &&
        (uint64_t)run->heartbeat_statements != run->statements) {
        set_err(why, why_len,
                "the run is still going: the proxy saw %lld statements after its last SIGUSR1 "
                "snapshot (send SIGUSR1 again, or stop the proxy)",
                (long long)run->heartbeat_statements - (long long)run->statements);
        return false;
    }
    if (run->ended_us == 0 && run->heartbeat_statements >= 0 &&
        !run_writer_alive(run, why, why_len))
        return false;
    if (reader_run_dropped(run)) {
        set_err(
            why, why_len, "records dropped: %llu requests, %llu statements, %llu fingerprint texts",
            (unsigned long long)run->dropped_requests, (unsigned long long)run->dropped_statements,
            (unsigned long long)run->dropped_fingerprints);
        return false;
    }
    if (!run->complete) {
        set_err(why, why_len, "the run did not finish cleanly");
        return false;
    }
    set_err(why, why_len, "complete");
    return true;
}

/* ---- requests ------------------------------------------------------------------------------ */

static const char sql_requests[] =
    "SELECT id, key, route, CASE WHEN json_valid(tags) THEN tags ELSE '{}' END, end_reason, "
    "conn_id, start_us, end_us, statements,"
    " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
    " rows, bytes, truncated, timeline_dropped FROM requests"
    " WHERE run_id = ?1 AND (?2 IS NULL OR route = ?2)"
    " AND (?3 IS NULL OR key = ?3 OR key = 'request_id:' || ?3"
    "  OR key = 'correlation_id:' || ?3 OR key = 'trace:' || ?3)"
    " ORDER BY id";

static const char sql_request_by_row[] =
    "SELECT id, key, route, CASE WHEN json_valid(tags) THEN tags ELSE '{}' END, end_reason, "
    "conn_id, start_us, end_us, statements,"
    " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"
    " rows, bytes, truncated, timeline_dropped FROM requests WHERE run_id = ?1 AND id = ?2";

static const char sql_findings[] =
    "SELECT f.request_id, f.kind, coalesce(f.fingerprint, ''), f.count, f.distinct_values,"
    " f.is_write, f.by_bytes, coalesce(p.normalized, '')"
    " FROM findings f JOIN requests q ON q.id = f.request_id"
    " LEFT JOIN fingerprints p ON p.fingerprint = f.fingerprint"
    " WHERE q.run_id = ?1 AND (?2 IS NULL OR q.route = ?2)"
    " ORDER BY f.request_id, CASE f.kind WHEN 'n_plus_one' THEN 0 WHEN 'duplicate' THEN 1"
    " ELSE 2 END, f.count DESC, f.fingerprint";

static bool request_from_row(sqlite3_stmt *st, ReaderRequest *r, ReaderArena **arena)
{
    r->row = sqlite3_column_int64(st, 0);
    r->key = arena_strdup(arena, col_text(st, 1));
    r->route = arena_strdup(arena, col_text(st, 2));
    r->tags_json = arena_strdup(arena, col_text(st, 3));
    r->end_reason = arena_strdup(arena, col_text(st, 4));
    if (!r->key || !r->route || !r->tags_json || !r->end_reason)
        return false;
    r->id = request_display_id(r->key);
    r->conn_id = col_u64(st, 5);
    r->start_us = sqlite3_column_int64(st, 6);
    r->end_us = sqlite3_column_int64(st, 7);
    r->queries = (uint32_t)col_u64(st, 8);
    r->setup_statements = (uint32_t)col_u64(st, 9);
    r->distinct_fingerprints = (uint32_t)col_u64(st, 10);
    r->duplicates = (uint32_t)col_u64(st, 11);
    r->errors = (uint32_t)col_u64(st, 12);
    r->transactions = (uint32_t)col_u64(st, 13);
    r->db_time_us = col_u64(st, 14);
    r->rows = col_u64(st, 15);
    r->bytes = col_u64(st, 16);
    r->truncated = sqlite3_column_int64(st, 17) != 0;
    r->timeline_dropped = col_u64(st, 18);
    return true;
}

static int cmp_request_row(const void *a, const void *b)
{
    int64_t x = ((const ReaderRequest *)a)->row, y = ((const ReaderRequest *)b)->row;
    return (x > y) - (x < y);
}

static int cmp_request_start(const void *a, const void *b)
{
    const ReaderRequest *x = a, *y = b;
    if (x->start_us != y->start_us)
        return (x->start_us > y->start_us) - (x->start_us < y->start_us);
    return (x->row > y->row) - (x->row < y->row);
}

/* Reads every finding of the run (route-filtered like the requests) and hands each request
 * its own slice. The requests must be sorted by row. */
static bool attach_findings(ReportFile *f, int64_t run_id, const char *route,
                            ReaderRequestList *out, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_findings, err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, run_id);
    if (route)
        sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
    ReaderFinding *all = NULL;
    size_t n = 0, cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(st, 0);
        ReaderRequest key = {.row = row};
        if (!bsearch(&key, out->items, out->n, sizeof *out->items, cmp_request_row))
            continue; /* a request outside the selection */
        ReaderFinding *grown = grow(all, n, &cap, sizeof *all);
        if (!grown) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        all = grown;
        ReaderFinding *x = &all[n];
        x->request_row = row;
        x->kind = kind_name(col_text(st, 1));
        copy_hex16(x->fingerprint, col_text(st, 2));
        x->count = col_u64(st, 3);
        x->distinct_values = (uint32_t)col_u64(st, 4);
        x->is_write = sqlite3_column_int64(st, 5) != 0;
        x->by_bytes = sqlite3_column_int64(st, 6) != 0;
        x->normalized = arena_strdup(&out->arena, col_text(st, 7));
        if (!x->normalized) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (!ok) {
        free(all);
        return false;
    }
    if (n) {
        /* Hand the array to the arena so the requests' slices live as long as the list. */
        ReaderFinding *kept = arena_alloc(&out->arena, n * sizeof *kept);
        if (!kept) {
            free(all);
            return out_of_memory(f, err, err_len);
        }
        memcpy(kept, all, n * sizeof *kept);
        free(all);
        size_t i = 0;
        for (size_t r = 0; r < out->n && i < n; r++) {
            ReaderRequest *q = &out->items[r];
            while (i < n && kept[i].request_row < q->row)
                i++;
            size_t start = i;
            while (i < n && kept[i].request_row == q->row) {
                if (kept[i].kind[0] == 'n')
                    q->n_plus_one++;
                i++;
            }
            if (i > start) {
                q->findings = &kept[start];
                q->n_findings = i - start;
            }
        }
    }
    return true;
}

/* Loads requests of the run: by route (NULL = all), by id/key (NULL = any), or by row
 * (row > 0, then route and id are ignored). */
static bool load_requests(ReportFile *f, int64_t run_id, const char *route, const char *id,
                          int64_t row, ReaderRequestList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, row > 0 ? sql_request_by_row : sql_requests, err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, run_id);
    if (row > 0) {
        sqlite3_bind_int64(st, 2, row);
    } else {
        if (route)
            sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
        if (id)
            sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    }
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderRequest *items = grow(out->items, out->n, &cap, sizeof *items);
        if (!items) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->items = items;
        if (!request_from_row(st, &items[out->n], &out->arena)) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (ok && out->n)
        ok = attach_findings(f, run_id, row > 0 ? NULL : route, out, err, err_len);
    if (!ok) {
        reader_request_list_free(out);
        return false;
    }
    qsort(out->items, out->n, sizeof *out->items, cmp_request_start);
    return true;
}

bool reader_requests(ReportFile *f, int64_t run_id, const char *route, ReaderRequestList *out,
                     char *err, size_t err_len)
{
    return load_requests(f, run_id, route, NULL, 0, out, err, err_len);
}

bool reader_find_request(ReportFile *f, int64_t run_id, const char *id, ReaderRequestList *out,
                         char *err, size_t err_len)
{
    if (!load_requests(f, run_id, NULL, id, 0, out, err, err_len))
        return false;
    if (out->n == 0) {
        char *end;
        errno = 0;
        long long row = strtoll(id, &end, 10);
        if (!errno && end != id && !*end && row > 0 &&
            !load_requests(f, run_id, NULL, NULL, row, out, err, err_len))
            return false;
    }
    if (out->n == 1)
        return true;
    if (out->n == 0) {
        set_err(err, err_len, "%s: no request \"%s\" in run %lld", f->path, id, (long long)run_id);
    } else {
        char rows[160] = "";
        size_t used = 0;
        for (size_t i = 0; i < out->n && used + 24 < sizeof rows; i++)
            used += (size_t)snprintf(rows + used, sizeof rows - used, "%s%lld", i ? ", " : "",
                                     (long long)out->items[i].row);
        set_err(err, err_len,
                "%s: request \"%s\" matches %zu requests of run %lld (rows %s); "
                "give a row number",
                f->path, id, out->n, (long long)run_id, rows);
    }
    reader_request_list_free(out);
    return false;
}

void reader_request_list_free(ReaderRequestList *list)
{
    free(list->items);
    arena_free(list->arena);
    memset(list, 0, sizeof *list);
}

/* ---- routes -------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank on sorted values: the ceil(p/100 * n)-th smallest. */
static uint64_t nearest_rank(const uint64_t *sorted, size_t n, unsigned p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)((p * (uint64_t)n + 99) / 100);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static int cmp_by_route(const void *a, const void *b)
{
    const ReaderRequest *x = *(const ReaderRequest *const *)a;
    const ReaderRequest *y = *(const ReaderRequest *const *)b;
    return strcmp(x->route, y->route);
}

static int cmp_route_worst(const void *a, const void *b)
{
    const ReaderRoute *x = a, *y = b;
#define WORSE(field)                                                                               \
    if (x->field != y->field)                                                                      \
        return x->field > y->field ? -1 : 1;
    WORSE(n_plus_one)
    WORSE(queries_p95)
    WORSE(duplicates)
    WORSE(db_time_us)
#undef WORSE
    return strcmp(x->route, y->route);
}

bool reader_routes(ReportFile *f, int64_t run_id, ReaderRouteList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    ReaderRequestList reqs;
    if (!reader_requests(f, run_id, NULL, &reqs, err, err_len))
        return false;
    bool ok = true;
    const ReaderRequest **by_route = NULL;
    uint64_t *queries = NULL, *times = NULL;
    if (reqs.n) {
        by_route = malloc(reqs.n * sizeof *by_route);
        queries = malloc(reqs.n * sizeof *queries);
        times = malloc(reqs.n * sizeof *times);
        out->items = calloc(reqs.n, sizeof *out->items);
        if (!by_route || !queries || !times || !out->items) {
            ok = out_of_memory(f, err, err_len);
            goto done;
        }
    }
    for (size_t i = 0; i < reqs.n; i++)
        by_route[i] = &reqs.items[i];
    qsort(by_route, reqs.n, sizeof *by_route, cmp_by_route);
    for (size_t i = 0; i < reqs.n;) {
        size_t j = i;
        ReaderRoute *r = &out->items[out->n];
        r->route = arena_strdup(&out->arena, by_route[i]->route);
        if (!r->route) {
            ok = out_of_memory(f, err, err_len);
            goto done;
        }
        while (j < reqs.n && strcmp(by_route[j]->route, by_route[i]->route) == 0) {
            const ReaderRequest *q = by_route[j];
            queries[j - i] = q->queries;
            times[j - i] = q->db_time_us;
            r->queries += q->queries;
            r->duplicates += q->duplicates;
            r->n_plus_one += q->n_plus_one;
            r->requests_with_n_plus_one += q->n_plus_one > 0;
            for (size_t k = 0; k < q->n_findings; k++)
                r->overfetch += q->findings[k].kind[0] == 'o';
            r->errors += q->errors;
            r->db_time_us += q->db_time_us;
            r->rows += q->rows;
            r->bytes += q->bytes;
            j++;
        }
        size_t n = j - i;
        r->requests = n;
        qsort(queries, n, sizeof *queries, cmp_u64);
        qsort(times, n, sizeof *times, cmp_u64);
        r->queries_p50 = (uint32_t)nearest_rank(queries, n, 50);
        r->queries_p95 = (uint32_t)nearest_rank(queries, n, 95);
        r->queries_max = (uint32_t)nearest_rank(queries, n, 100);
        r->db_time_p50_us = nearest_rank(times, n, 50);
        r->db_time_p95_us = nearest_rank(times, n, 95);
        r->db_time_max_us = nearest_rank(times, n, 100);
        out->n++;
        i = j;
    }
    qsort(out->items, out->n, sizeof *out->items, cmp_route_worst);
done:
    free(by_route);
    free(queries);
    free(times);
    reader_request_list_free(&reqs);
    if (!ok)
        reader_route_list_free(out);
    return ok;
}

void reader_route_list_free(ReaderRouteList *list)
{
    free(list->items);
    arena_free(list->arena);
    memset(list, 0, sizeof *list);
}

/* ---- top findings -------------------------------------------------------------------------- */

/* One max() aggregate only: SQLite then takes the bare q.route and q.key from the row that
 * holds the maximum, which names the worst request. */
static const char sql_top_findings[] =
    "SELECT f.kind, coalesce(f.fingerprint, ''), coalesce(p.normalized, ''), count(*),"
    " sum(f.count), max(f.count), count(DISTINCT q.route), q.route, q.key,"
    " coalesce(sum((SELECT sum(rf.total_time_us) FROM request_fingerprints rf"
    "   WHERE rf.request_id = f.request_id AND rf.fingerprint = f.fingerprint)), 0),"
    " max(f.is_write)"
    " FROM findings f JOIN requests q ON q.id = f.request_id"
    " LEFT JOIN fingerprints p ON p.fingerprint = f.fingerprint"
    " WHERE q.run_id = ?1 AND (?2 IS NULL OR q.route = ?2)"
    " GROUP BY f.kind, f.fingerprint"
    " ORDER BY CASE f.kind WHEN 'n_plus_one' THEN 0 WHEN 'duplicate' THEN 1 ELSE 2 END,"
    " sum(f.count) DESC, count(*) DESC, f.fingerprint LIMIT ?3";

bool reader_top_findings(ReportFile *f, int64_t run_id, const char *route, size_t limit,
                         ReaderTopFindingList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_top_findings, err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, run_id);
    if (route)
        sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderTopFinding *items = grow(out->items, out->n, &cap, sizeof *items);
        if (!items) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->items = items;
        ReaderTopFinding *t = &items[out->n];
        t->kind = kind_name(col_text(st, 0));
        copy_hex16(t->fingerprint, col_text(st, 1));
        t->normalized = arena_strdup(&out->arena, col_text(st, 2));
        t->requests = col_u64(st, 3);
        t->total_count = col_u64(st, 4);
        t->max_count = col_u64(st, 5);
        t->routes = col_u64(st, 6);
        t->worst_route = arena_strdup(&out->arena, col_text(st, 7));
        const char *key = arena_strdup(&out->arena, col_text(st, 8));
        t->total_time_us = col_u64(st, 9);
        t->is_write = sqlite3_column_int64(st, 10) != 0;
        if (!t->normalized || !t->worst_route || !key) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        t->worst_request = request_display_id(key);
        out->n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (!ok)
        reader_top_finding_list_free(out);
    return ok;
}

void reader_top_finding_list_free(ReaderTopFindingList *list)
{
    free(list->items);
    arena_free(list->arena);
    memset(list, 0, sizeof *list);
}

/* ---- fingerprints -------------------------------------------------------------------------- */

static const char sql_fingerprints[] =
    "SELECT rf.fingerprint, coalesce(p.normalized, ''), coalesce(p.command, ''), p.sample,"
    " coalesce(p.first_seen_us, 0), count(DISTINCT rf.request_id), sum(rf.calls),"
    " sum(rf.total_time_us), sum(rf.rows), sum(rf.bytes), sum(rf.errors), max(rf.calls),"
    " max(rf.is_write)"
    " FROM request_fingerprints rf JOIN requests q ON q.id = rf.request_id"
    " LEFT JOIN fingerprints p ON p.fingerprint = rf.fingerprint"
    " WHERE q.run_id = ?1 AND (?2 IS NULL OR rf.fingerprint = ?2)"
    " GROUP BY rf.fingerprint"
    " ORDER BY CASE WHEN ?3 THEN sum(rf.total_time_us) ELSE sum(rf.calls) END DESC,"
    " rf.fingerprint LIMIT ?4";

static const char sql_fingerprint_text[] =
    "SELECT fingerprint, normalized, command, sample, first_seen_us FROM fingerprints"
    " WHERE fingerprint = ?1";

static const char sql_fingerprint_routes[] =
    "SELECT q.route, count(DISTINCT rf.request_id), sum(rf.calls), sum(rf.total_time_us)"
    " FROM request_fingerprints rf JOIN requests q ON q.id = rf.request_id"
    " WHERE q.run_id = ?1 AND rf.fingerprint = ?2"
    " GROUP BY q.route ORDER BY 3 DESC, 1";

static const char sql_fingerprint_prefix[] =
    "SELECT fingerprint FROM fingerprints WHERE substr(fingerprint, 1, length(?1)) = ?1"
    " UNION SELECT fingerprint FROM request_fingerprints"
    " WHERE substr(fingerprint, 1, length(?1)) = ?1 LIMIT 3";

static bool fingerprint_texts(ReaderFingerprint *x, sqlite3_stmt *st, int first,
                              ReaderArena **arena)
{
    x->normalized = arena_strdup(arena, col_text(st, first));
    x->command = arena_strdup(arena, col_text(st, first + 1));
    x->sample = sqlite3_column_type(st, first + 2) == SQLITE_NULL
                    ? NULL
                    : arena_strdup(arena, col_text(st, first + 2));
    x->first_seen_us = sqlite3_column_int64(st, first + 3);
    return x->normalized && x->command &&
           (x->sample || sqlite3_column_type(st, first + 2) == SQLITE_NULL);
}

static bool load_fingerprints(ReportFile *f, int64_t run_id, const char *fingerprint,
                              ReaderFingerprintOrder order, size_t limit,
                              ReaderFingerprintList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_fingerprints, err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, run_id);
    if (fingerprint)
        sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, order == READER_BY_TIME);
    sqlite3_bind_int64(st, 4, limit ? (int64_t)limit : -1);
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderFingerprint *items = grow(out->items, out->n, &cap, sizeof *items);
        if (!items) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->items = items;
        ReaderFingerprint *x = &items[out->n];
        copy_hex16(x->fingerprint, col_text(st, 0));
        if (!fingerprint_texts(x, st, 1, &out->arena)) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        x->requests = col_u64(st, 5);
        x->calls = col_u64(st, 6);
        x->total_time_us = col_u64(st, 7);
        x->rows = col_u64(st, 8);
        x->bytes = col_u64(st, 9);
        x->errors = col_u64(st, 10);
        x->max_calls = (uint32_t)col_u64(st, 11);
        x->is_write = sqlite3_column_int64(st, 12) != 0;
        out->n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (!ok)
        reader_fingerprint_list_free(out);
    return ok;
}

bool reader_top_fingerprints(ReportFile *f, int64_t run_id, ReaderFingerprintOrder order,
                             size_t limit, ReaderFingerprintList *out, char *err, size_t err_len)
{
    return load_fingerprints(f, run_id, NULL, order, limit, out, err, err_len);
}

/* The full fingerprint a user's (possibly abbreviated) one names, into out. */
static bool resolve_fingerprint(ReportFile *f, const char *given, char out[17], char *err,
                                size_t err_len)
{
    size_t len = strlen(given);
    char lower[17];
    bool hex = len >= 4 && len <= 16;
    for (size_t i = 0; hex && i < len; i++) {
        char c = given[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        lower[i] = c;
    }
    if (!hex) {
        set_err(err, err_len, "%s: \"%s\" is not a fingerprint (4 to 16 hex digits)", f->path,
                given);
        return false;
    }
    lower[len] = '\0';
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_fingerprint_prefix, err, err_len))
        return false;
    sqlite3_bind_text(st, 1, lower, -1, SQLITE_STATIC);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == 0)
            copy_hex16(out, col_text(st, 0));
        n++;
    }
    bool failed = step_failed(f, rc, err, err_len);
    sqlite3_finalize(st);
    if (failed)
        return false;
    if (n == 1)
        return true;
    if (n == 0)
        set_err(err, err_len, "%s: no fingerprint \"%s\" in the report", f->path, given);
    else
        set_err(err, err_len, "%s: fingerprint prefix \"%s\" is ambiguous; give more digits",
                f->path, given);
    return false;
}

bool reader_fingerprint(ReportFile *f, int64_t run_id, const char *fingerprint,
                        ReaderFingerprintList *out, char *err, size_t err_len)
{
    char fp[17];
    memset(out, 0, sizeof *out);
    if (!resolve_fingerprint(f, fingerprint, fp, err, err_len))
        return false;
    if (!load_fingerprints(f, run_id, fp, READER_BY_CALLS, 0, out, err, err_len))
        return false;
    sqlite3_stmt *st = NULL;
    bool ok = true;
    int rc;
    if (out->n == 0) {
        /* Known text, never executed in this run: details with zero calls. */
        ReaderFingerprint *x = calloc(1, sizeof *x);
        if (!x)
            return out_of_memory(f, err, err_len);
        out->items = x;
        out->n = 1;
        copy_hex16(x->fingerprint, fp);
        if (!prepare(f, &st, sql_fingerprint_text, err, err_len))
            goto fail;
        sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && !fingerprint_texts(x, st, 1, &out->arena))
            ok = out_of_memory(f, err, err_len);
        else if (rc != SQLITE_ROW && step_failed(f, rc, err, err_len))
            ok = false;
        else if (rc != SQLITE_ROW)
            x->normalized = x->command = "";
        sqlite3_finalize(st);
        st = NULL;
        if (!ok)
            goto fail;
    }
    ReaderFingerprint *x = &out->items[0];
    if (!prepare(f, &st, sql_fingerprint_routes, err, err_len))
        goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, fp, -1, SQLITE_STATIC);
    size_t cap = 0;
    ReaderFingerprintRoute *routes = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderFingerprintRoute *grown = grow(routes, x->n_routes, &cap, sizeof *routes);
        if (!grown) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        routes = grown;
        ReaderFingerprintRoute *r = &routes[x->n_routes];
        r->route = arena_strdup(&out->arena, col_text(st, 0));
        r->requests = col_u64(st, 1);
        r->calls = col_u64(st, 2);
        r->total_time_us = col_u64(st, 3);
        if (!r->route) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        x->n_routes++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (ok && x->n_routes) {
        x->routes = arena_alloc(&out->arena, x->n_routes * sizeof *routes);
        if (x->routes)
            memcpy(x->routes, routes, x->n_routes * sizeof *routes);
        else
            ok = out_of_memory(f, err, err_len);
    }
    free(routes);
    if (ok)
        return true;
fail:
    reader_fingerprint_list_free(out);
    return false;
}

void reader_fingerprint_list_free(ReaderFingerprintList *list)
{
    free(list->items);
    arena_free(list->arena);
    memset(list, 0, sizeof *list);
}

/* ---- timeline ------------------------------------------------------------------------------ */

static const char sql_timeline[] =
    "SELECT s.seq, s.fingerprint, s.values_hash, s.start_us, s.duration_us, s.rows, s.bytes,"
    " s.conn_id, coalesce(s.sqlstate, ''), s.setup, coalesce(p.normalized, '')"
    " FROM statements s LEFT JOIN fingerprints p ON p.fingerprint = s.fingerprint"
    " WHERE s.request_id = ?1 ORDER BY s.seq";

bool reader_timeline(ReportFile *f, int64_t request_row, ReaderTimeline *out, char *err,
                     size_t err_len)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (!prepare(f, &st, sql_timeline, err, err_len))
        return false;
    sqlite3_bind_int64(st, 1, request_row);
    size_t cap = 0;
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ReaderStatement *items = grow(out->items, out->n, &cap, sizeof *items);
        if (!items) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->items = items;
        ReaderStatement *s = &items[out->n];
        s->seq = (uint32_t)col_u64(st, 0);
        copy_hex16(s->fingerprint, col_text(st, 1));
        copy_hex16(s->values_hash, col_text(st, 2));
        s->start_us = sqlite3_column_int64(st, 3);
        s->duration_us = sqlite3_column_int64(st, 4);
        s->rows = col_u64(st, 5);
        s->bytes = col_u64(st, 6);
        s->conn_id = col_u64(st, 7);
        snprintf(s->sqlstate, sizeof s->sqlstate, "%s", col_text(st, 8));
        s->setup = sqlite3_column_int64(st, 9) != 0;
        s->normalized = arena_strdup(&out->arena, col_text(st, 10));
        if (!s->normalized) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
        out->n++;
    }
    if (ok && step_failed(f, rc, err, err_len))
        ok = false;
    sqlite3_finalize(st);
    if (!ok)
        reader_timeline_free(out);
    return ok;
}

void reader_timeline_free(ReaderTimeline *timeline)
{
    free(timeline->items);
    arena_free(timeline->arena);
    memset(timeline, 0, sizeof *timeline);
}
