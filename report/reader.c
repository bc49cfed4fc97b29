/* report/reader — see reader.h. Every query reads only, and is scoped to the runs listed in
 * the connection's own TEMP table `scope` (a read-only connection may still write its temp
 * schema), so one run and a whole label go through the same SQL. */
#include "report/reader.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report/errfmt.h"
#include "report/reader_pg.h"
#include "report/store.h"
#include "report/store/pq.h"
#include "report/store/sqlite.h"

struct ReportFile {
    char *path;
    sqlite3 *db;
    int64_t schema_version;
    char scope_name[200]; /* "run 3", "label \"x\"": how messages name the scope */
    char *snapshot;       /* a PostgreSQL store's local copy: removed on close */
    bool run_counts;      /* the copy holds every run's counts (READER_PG_RUN_COUNTS) */
};

/* The condition every scoped query puts on a run id. */
#define IN_SCOPE " IN (SELECT id FROM temp.scope)"

/* A list's memory: every string and side array it hands out, freed together. */
struct ReaderArena {
    void **blocks;
    size_t n, cap;
};

/* ---- small helpers ------------------------------------------------------------------------ */

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

static bool out_of_memory(ReportFile *f, char *err, size_t err_len)
{
    report_err(err, err_len, "%s: out of memory while reading the report", f->path);
    return false;
}

/* A LIMIT: 0 means none, which SQLite spells -1. */
#define SQLV_LIMIT(n) SQLV_INT((n) ? (int64_t)(n) : -1)
#define N_PARAMS(params) (sizeof(params) / sizeof *(params))

/* Called for each row of a query; false stops it: out of memory. */
typedef bool (*RowFn)(sqlite3_stmt *st, void *ctx);

/* The one query loop: prepares `sql`, binds `params` (those past the statement's last
 * parameter are ignored), steps it to its end handing each row to `fn` (NULL: none expected,
 * e.g. an INSERT), and finalizes it. False with "path: reason" in err. */
static bool each_row(ReportFile *f, const char *sql, const SqliteValue *params, size_t n_params,
                     RowFn fn, void *ctx, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot read the report: %s", f->path, sqlite3_errmsg(f->db));
        sqlite3_finalize(st);
        return false;
    }
    store_sqlite_bind(st, params, n_params);
    int rc;
    bool ok = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (fn && !fn(st, ctx)) {
            ok = out_of_memory(f, err, err_len);
            break;
        }
    if (ok && rc != SQLITE_DONE) {
        report_err(err, err_len, "%s: cannot read the report: %s", f->path, sqlite3_errmsg(f->db));
        ok = false;
    }
    sqlite3_finalize(st);
    return ok;
}

/* A query's first column of its first row, as an integer. */
typedef struct IntRow {
    int64_t value; /* 0 without a row */
    bool found;
} IntRow;

static bool first_int(sqlite3_stmt *st, void *ctx)
{
    IntRow *row = ctx;
    if (!row->found)
        *row = (IntRow){sqlite3_column_int64(st, 0), true};
    return true;
}

static bool query_int(ReportFile *f, const char *sql, const SqliteValue *params, size_t n_params,
                      IntRow *out, char *err, size_t err_len)
{
    *out = (IntRow){0};
    return each_row(f, sql, params, n_params, first_int, out, err, err_len);
}

/* What a row reader did with the row it was given. */
typedef enum RowResult {
    ROW_KEPT,
    ROW_SKIPPED, /* not wanted: the slot is reused */
    ROW_NO_MEMORY,
} RowResult;

/* Fills `item` (zeroed, `size` bytes) from the current row of `st`. */
typedef RowResult (*RowReader)(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx);

/* An array being filled from a query's rows, an item per row. */
typedef struct RowCollector {
    void **items;
    size_t *n, cap, size;
    ReaderArena **arena;
    RowReader fill;
    void *ctx;
} RowCollector;

static bool collect_row(sqlite3_stmt *st, void *ctx)
{
    RowCollector *c = ctx;
    void *grown = grow(*c->items, *c->n, &c->cap, c->size);
    if (!grown)
        return false;
    *c->items = grown;
    void *item = (char *)grown + *c->n * c->size;
    RowResult r = c->fill(st, item, c->arena, c->ctx);
    if (r == ROW_KEPT)
        (*c->n)++;
    else
        memset(item, 0, c->size);
    return r != ROW_NO_MEMORY;
}

/* Appends an item per row of `sql` to `*items` (`*n` of `size` bytes) through `fill`. On
 * failure sets err; the items read so far stay for the caller to free. */
static bool read_rows(ReportFile *f, const char *sql, const SqliteValue *params, size_t n_params,
                      void **items, size_t *n, size_t size, ReaderArena **arena, RowReader fill,
                      void *ctx, char *err, size_t err_len)
{
    RowCollector c = {items, n, *n, size, arena, fill, ctx};
    return each_row(f, sql, params, n_params, collect_row, &c, err, err_len);
}

/* Every list (ReaderRunList, ReaderRequestList, ...) is its items, their count and the arena
 * of their strings; this releases one and leaves it empty. */
static void list_release(void **items, size_t *n, ReaderArena **arena)
{
    free(*items);
    *items = NULL;
    *n = 0;
    arena_free(*arena);
    *arena = NULL;
}

#define LIST_RELEASE(list) list_release((void **)&(list)->items, &(list)->n, &(list)->arena)

/* Fills the list `out` (any of them) from the rows of `sql`: empty first, and empty again
 * when it fails. */
#define READ_LIST(f, out, sql, params, fill, ctx, err, err_len)                                    \
    read_list((f), (sql), (params), N_PARAMS(params), (void **)&(out)->items, &(out)->n,           \
              sizeof *(out)->items, &(out)->arena, (fill), (ctx), (err), (err_len))

static bool read_list(ReportFile *f, const char *sql, const SqliteValue *params, size_t n_params,
                      void **items, size_t *n, size_t size, ReaderArena **arena, RowReader fill,
                      void *ctx, char *err, size_t err_len)
{
    *items = NULL;
    *n = 0;
    *arena = NULL;
    if (read_rows(f, sql, params, n_params, items, n, size, arena, fill, ctx, err, err_len))
        return true;
    list_release(items, n, arena);
    return false;
}

/* Moves `n` items of `size` bytes from the heap array `items` (freed) into the arena, where
 * they live as long as the list. NULL when out of memory (items freed all the same). */
static void *arena_keep(ReaderArena **arena, void *items, size_t n, size_t size)
{
    void *kept = n ? arena_alloc(arena, n * size) : NULL;
    if (kept)
        memcpy(kept, items, n * size);
    free(items);
    return kept;
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

static bool fill_scope(ReportFile *f, const ReaderScope *scope, int64_t *selected, char *err,
                       size_t err_len);
static void name_latest(ReportFile *f);

/* ---- open ---------------------------------------------------------------------------------- */

ReportFile *reader_open(const char *path, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        report_err(err, err_len, "%s: cannot open the report: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        report_err(err, err_len, "%s: cannot open the report: not a regular file", path);
        return NULL;
    }
    ReportFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        report_err(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot open the report: %s", path, sqlite3_errmsg(f->db));
        goto fail;
    }
    /* The proxy may be writing right now (WAL): wait out a checkpoint rather than fail. */
    sqlite3_busy_timeout(f->db, 2000);
    if (!store_sqlite_check_report(f->db, "main", path, "reads", &f->schema_version, err, err_len))
        goto fail;
    /* Scoped to the latest run until the caller selects; a file with no runs yet is fine. */
    int64_t selected = 0;
    if (!fill_scope(f, &(ReaderScope){0}, &selected, err, err_len))
        goto fail;
    name_latest(f);
    return f;
fail:
    reader_close(f);
    return NULL;
}

ReportFile *reader_open_store(const char *db, const char *schema, const ReaderScope *scope,
                              bool count_runs, char *err, size_t err_len)
{
    if (!pq_is_target(db))
        return reader_open(db, err, err_len);
    char path[4096], name[256];
    if (!reader_pg_snapshot(db, schema, scope, count_runs, path, sizeof path, name, sizeof name,
                            err, err_len))
        return NULL;
    ReportFile *f = reader_open(path, err, err_len);
    char *shown = strdup(name), *snapshot = strdup(path);
    if (!f || !shown || !snapshot) {
        if (f)
            report_err(err, err_len, "%s: out of memory", name);
        reader_close(f);
        free(shown);
        free(snapshot);
        unlink(path);
        return NULL;
    }
    free(f->path);
    f->path = shown;
    f->snapshot = snapshot;
    int64_t has_counts = 0;
    f->run_counts =
        store_sqlite_int(
            f->db, "SELECT count(*) FROM sqlite_schema WHERE name = '" READER_PG_RUN_COUNTS "'",
            &has_counts) &&
        has_counts > 0;
    return f;
}

void reader_close(ReportFile *f)
{
    if (!f)
        return;
    sqlite3_close(f->db);
    if (f->snapshot) {
        unlink(f->snapshot);
        size_t n = strlen(f->snapshot) + 16;
        char *side = malloc(n);
        if (side) {
            snprintf(side, n, "%s-journal", f->snapshot);
            unlink(side);
            free(side);
        }
        free(f->snapshot);
    }
    free(f->path);
    free(f);
}

const char *reader_path(const ReportFile *f)
{
    return f->path;
}

/* ---- runs ---------------------------------------------------------------------------------- */

/* %1: the flush time, a column since schema version 2 (0 in older files); %2: uuid, label,
 * instance and the writing proxy's liveness (heartbeat, statements then, pid), since version
 * 3; %3: the requests and statements counted for the run. ?1 NULL: every run; 0: the runs in
 * scope; else that run. */
#define SQL_RUNS(flushed, identity, counts)                                                        \
    "SELECT r.id, r.started_us, coalesce(r.ended_us, 0), r.version,"                               \
    " CASE WHEN json_valid(r.settings) THEN r.settings ELSE '{}' END, r.statements,"               \
    " r.requests, r.dropped_requests, r.dropped_statements, r.dropped_fingerprints,"               \
    " r.untracked_statements, r.complete, " counts ", " flushed ", " identity                      \
    " FROM runs r WHERE ?1 IS NULL OR (?1 = 0 AND r.id" IN_SCOPE ") OR r.id = ?1"                  \
    " ORDER BY r.started_us, r.id"
#define COUNTED                                                                                    \
    "(SELECT count(*) FROM requests q WHERE q.run_id = r.id),"                                     \
    " (SELECT coalesce(sum(q.statements), 0) FROM requests q WHERE q.run_id = r.id)"
/* A PostgreSQL copy holds the requests of the runs in scope only: the others' counts were
 * copied beside them. */
#define COPIED_COUNTS                                                                              \
    "coalesce((SELECT c.requests FROM " READER_PG_RUN_COUNTS " c WHERE c.run_id = r.id), 0),"      \
    " coalesce((SELECT c.statements FROM " READER_PG_RUN_COUNTS " c WHERE c.run_id = r.id), 0)"
#define V3_IDENTITY                                                                                \
    "coalesce(r.uuid, ''), r.label, r.instance, coalesce(r.heartbeat_us, 0),"                      \
    " coalesce(r.heartbeat_statements, -1), coalesce(r.pid, 0)"
#define OLD_IDENTITY "'', '', '', 0, -1, 0"
static const char sql_runs_copied[] =
    SQL_RUNS("coalesce(r.flushed_us, 0)", V3_IDENTITY, COPIED_COUNTS);
static const char sql_runs_v3[] = SQL_RUNS("coalesce(r.flushed_us, 0)", V3_IDENTITY, COUNTED);
static const char sql_runs_v2[] = SQL_RUNS("coalesce(r.flushed_us, 0)", OLD_IDENTITY, COUNTED);
static const char sql_runs_v1[] = SQL_RUNS("0", OLD_IDENTITY, COUNTED);

static const char *sql_runs(const ReportFile *f)
{
    if (f->run_counts)
        return sql_runs_copied;
    return f->schema_version >= 3   ? sql_runs_v3
           : f->schema_version == 2 ? sql_runs_v2
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
    snprintf(r->uuid, sizeof r->uuid, "%s", col_text(st, 15));
    snprintf(r->label, sizeof r->label, "%s", col_text(st, 16));
    snprintf(r->instance, sizeof r->instance, "%s", col_text(st, 17));
    r->heartbeat_us = sqlite3_column_int64(st, 18);
    r->heartbeat_statements = sqlite3_column_int64(st, 19);
    r->pid = sqlite3_column_int64(st, 20);
    snprintf(r->writer_host, sizeof r->writer_host, "%s", r->instance);
}

static RowResult run_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderRun *r = item;
    run_from_row(st, r);
    r->settings_json = (char *)arena_strdup(arena, col_text(st, 4));
    return r->settings_json ? ROW_KEPT : ROW_NO_MEMORY;
}

/* mode: -1 every run, 0 the runs in scope, > 0 that run. */
static bool load_runs(ReportFile *f, int64_t mode, ReaderRunList *out, char *err, size_t err_len)
{
    const SqliteValue params[] = {mode >= 0 ? SQLV_INT(mode) : SQLV_NULL};
    return READ_LIST(f, out, sql_runs(f), params, run_row, NULL, err, err_len);
}

bool reader_list_runs(ReportFile *f, ReaderRunList *out, char *err, size_t err_len)
{
    return load_runs(f, -1, out, err, err_len);
}

bool reader_scope_runs(ReportFile *f, ReaderRunList *out, char *err, size_t err_len)
{
    return load_runs(f, 0, out, err, err_len);
}

void reader_run_list_free(ReaderRunList *list)
{
    LIST_RELEASE(list);
}

/* Refills temp.scope: one statement per kind of scope, one transaction for the whole swap. */
static bool fill_scope(ReportFile *f, const ReaderScope *scope, int64_t *selected, char *err,
                       size_t err_len)
{
    const char *sql;
    if (scope->run_id > 0)
        sql = "INSERT INTO temp.scope SELECT id FROM runs WHERE id = ?1";
    else if (scope->label && f->schema_version >= 3)
        sql = "INSERT INTO temp.scope SELECT id FROM runs WHERE label = ?1";
    else if (scope->label) /* an older file has no labels: nothing matches */
        sql = "INSERT INTO temp.scope SELECT id FROM runs WHERE 0";
    else
        sql = "INSERT INTO temp.scope SELECT id FROM runs ORDER BY started_us DESC, id DESC"
              " LIMIT 1";
    char *msg = NULL;
    if (sqlite3_exec(f->db,
                     "CREATE TEMP TABLE IF NOT EXISTS scope (id INTEGER PRIMARY KEY);"
                     "DELETE FROM temp.scope",
                     NULL, NULL, &msg) != SQLITE_OK) {
        report_err(err, err_len, "%s: cannot read the report: %s", f->path,
                   msg ? msg : sqlite3_errmsg(f->db));
        sqlite3_free(msg);
        return false;
    }
    const SqliteValue params[] = {scope->run_id > 0 ? SQLV_INT(scope->run_id)
                                                    : SQLV_TEXT_OR_NULL(scope->label)};
    if (!each_row(f, sql, params, N_PARAMS(params), NULL, NULL, err, err_len))
        return false;
    *selected = sqlite3_changes(f->db);
    return true;
}

/* Names a latest-run scope after the run it holds, as messages always did ("run 3"). */
static void name_latest(ReportFile *f)
{
    IntRow id;
    if (query_int(f, "SELECT id FROM temp.scope", NULL, 0, &id, NULL, 0) && id.value > 0)
        snprintf(f->scope_name, sizeof f->scope_name, "run %lld", (long long)id.value);
    else
        snprintf(f->scope_name, sizeof f->scope_name, "the latest run");
}

bool reader_select(ReportFile *f, const ReaderScope *scope, char *err, size_t err_len)
{
    int64_t n = 0;
    if (!fill_scope(f, scope, &n, err, err_len))
        return false;
    if (scope->run_id > 0)
        snprintf(f->scope_name, sizeof f->scope_name, "run %lld", (long long)scope->run_id);
    else if (scope->label)
        snprintf(f->scope_name, sizeof f->scope_name, "label \"%.150s\"", scope->label);
    else
        name_latest(f);
    if (n > 0)
        return true;
    if (scope->run_id > 0)
        report_err(err, err_len, "%s: no run %lld in the report", f->path,
                   (long long)scope->run_id);
    else if (scope->label)
        report_err(err, err_len, "%s: no runs labelled \"%s\" in the report", f->path,
                   scope->label);
    else
        report_err(err, err_len, "%s: the report holds no runs yet", f->path);
    return false;
}

const char *reader_scope_name(const ReportFile *f)
{
    return f->scope_name;
}

bool reader_load_run(ReportFile *f, int64_t run_id, ReaderRun *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    int64_t id = run_id;
    if (run_id <= 0) {
        IntRow latest;
        if (!query_int(f, "SELECT id FROM runs ORDER BY started_us DESC, id DESC LIMIT 1", NULL, 0,
                       &latest, err, err_len))
            return false;
        if (!latest.found) {
            report_err(err, err_len, "%s: the report holds no runs yet", f->path);
            return false;
        }
        id = latest.value;
    }
    ReaderRunList list;
    if (!load_runs(f, id, &list, err, err_len))
        return false;
    bool ok = list.n == 1;
    if (ok) {
        *out = list.items[0];
        out->settings_json = strdup(list.items[0].settings_json);
        if (!out->settings_json)
            ok = out_of_memory(f, err, err_len);
    } else {
        report_err(err, err_len, "%s: no run %lld in the report", f->path, (long long)id);
    }
    reader_run_list_free(&list);
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

bool reader_runs_combine(const ReaderRunList *runs, ReaderRun *out)
{
    memset(out, 0, sizeof *out);
    if (runs->n == 0)
        return false;
    const ReaderRun *latest = &runs->items[runs->n - 1];
    *out = *latest;
    out->settings_json = strdup(latest->settings_json ? latest->settings_json : "{}");
    if (!out->settings_json)
        return false;
    if (runs->n == 1)
        return true;
    out->statements = out->requests = out->dropped_requests = out->dropped_statements = 0;
    out->dropped_fingerprints = out->untracked_statements = 0;
    out->stored_requests = out->stored_statements = 0;
    out->complete = true;
    bool all_ended = true;
    int64_t last_end = 0;
    for (size_t i = 0; i < runs->n; i++) {
        const ReaderRun *r = &runs->items[i];
        if (r->started_us < out->started_us)
            out->started_us = r->started_us;
        if (!r->ended_us)
            all_ended = false;
        else if (r->ended_us > last_end)
            last_end = r->ended_us;
        out->statements += r->statements;
        out->requests += r->requests;
        out->dropped_requests += r->dropped_requests;
        out->dropped_statements += r->dropped_statements;
        out->dropped_fingerprints += r->dropped_fingerprints;
        out->untracked_statements += r->untracked_statements;
        out->stored_requests += r->stored_requests;
        out->stored_statements += r->stored_statements;
        out->complete = out->complete && reader_run_is_complete(r, NULL, 0);
    }
    out->ended_us = all_ended ? last_end : 0;
    return true;
}

bool reader_runs_complete(const ReaderRunList *runs, char *why, size_t why_len)
{
    if (runs->n == 0) {
        report_err(why, why_len, "no runs");
        return false;
    }
    if (runs->n == 1)
        return reader_run_is_complete(&runs->items[0], why, why_len);
    const ReaderRun *first = NULL;
    char reason[200] = "";
    size_t bad = 0;
    for (size_t i = 0; i < runs->n; i++) {
        if (reader_run_is_complete(&runs->items[i], first ? NULL : reason, sizeof reason))
            continue;
        if (!first)
            first = &runs->items[i];
        bad++;
    }
    if (!first) {
        report_err(why, why_len, "complete (%zu runs)", runs->n);
        return true;
    }
    report_err(why, why_len, "%zu of %zu runs incomplete; run %lld (instance %s): %s", bad, runs->n,
               (long long)first->id, *first->instance ? first->instance : "unnamed", reason);
    return false;
}

size_t reader_runs_count_complete(const ReaderRunList *runs)
{
    size_t n = 0;
    for (size_t i = 0; i < runs->n; i++)
        n += reader_run_is_complete(&runs->items[i], NULL, 0);
    return n;
}

size_t reader_runs_count_instances(const ReaderRunList *runs)
{
    size_t n = 0;
    for (size_t i = 0; i < runs->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(runs->items[i].instance, runs->items[j].instance) == 0;
        n += !seen;
    }
    return n;
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
        report_err(why, why_len,
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
        report_err(why, why_len,
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
        report_err(why, why_len,
                   "the run has not ended (proxy still running, or killed); "
                   "send the proxy SIGUSR1 to flush a complete snapshot");
        return false;
    }
    /* A running proxy's SIGUSR1 snapshot is complete only while nothing has happened after
     * it: the totals it recorded must still match what the file holds and what the proxy
     * has seen since, and the proxy must still be there to finish the run. */
    if (run->ended_us == 0 && run->stored_requests != run->requests) {
        report_err(why, why_len,
                   "the run is still going: %llu requests were written after its last SIGUSR1 "
                   "snapshot (send SIGUSR1 again, or stop the proxy)",
                   (unsigned long long)(run->stored_requests - run->requests));
        return false;
    }
    if (run->ended_us == 0 && run->heartbeat_statements >= 0 &&
        (uint64_t)run->heartbeat_statements != run->statements) {
        report_err(why, why_len,
                   "the run is still going: the proxy saw %lld statements after its last SIGUSR1 "
                   "snapshot (send SIGUSR1 again, or stop the proxy)",
                   (long long)run->heartbeat_statements - (long long)run->statements);
        return false;
    }
    if (run->ended_us == 0 && run->heartbeat_statements >= 0 &&
        !run_writer_alive(run, why, why_len))
        return false;
    if (reader_run_dropped(run)) {
        report_err(
            why, why_len, "records dropped: %llu requests, %llu statements, %llu fingerprint texts",
            (unsigned long long)run->dropped_requests, (unsigned long long)run->dropped_statements,
            (unsigned long long)run->dropped_fingerprints);
        return false;
    }
    if (!run->complete) {
        report_err(why, why_len, "the run did not finish cleanly");
        return false;
    }
    report_err(why, why_len, "complete");
    return true;
}

/* ---- requests ------------------------------------------------------------------------------ */

#define SQL_REQUEST_COLUMNS                                                                        \
    "SELECT id, key, route, CASE WHEN json_valid(tags) THEN tags ELSE '{}' END, end_reason, "      \
    "conn_id, start_us, end_us, statements,"                                                       \
    " setup_statements, distinct_fingerprints, duplicates, errors, transactions, db_time_us,"      \
    " rows, bytes, truncated, timeline_dropped FROM requests WHERE run_id" IN_SCOPE

static const char sql_requests[] =
    SQL_REQUEST_COLUMNS " AND (?1 IS NULL OR route = ?1)"
                        " AND (?2 IS NULL OR key = ?2 OR key = 'request_id:' || ?2"
                        "  OR key = 'correlation_id:' || ?2 OR key = 'trace:' || ?2)"
                        " AND (?4 IS NULL OR substr(key, 1, length(?4)) = ?4"
                        "  OR substr(key, 1, length(?4) + 11) = 'request_id:' || ?4"
                        "  OR substr(key, 1, length(?4) + 15) = 'correlation_id:' || ?4"
                        "  OR substr(key, 1, length(?4) + 6) = 'trace:' || ?4)"
                        " ORDER BY id";

static const char sql_request_by_row[] = SQL_REQUEST_COLUMNS " AND id = ?3";

static const char sql_findings[] =
    "SELECT f.request_id, f.kind, coalesce(f.fingerprint, ''), f.count, f.distinct_values,"
    " f.is_write, f.by_bytes, coalesce(p.normalized, '')"
    " FROM findings f JOIN requests q ON q.id = f.request_id"
    " LEFT JOIN fingerprints p ON p.fingerprint = f.fingerprint"
    " WHERE q.run_id" IN_SCOPE " AND (?1 IS NULL OR q.route = ?1)"
    " ORDER BY f.request_id, CASE f.kind WHEN 'n_plus_one' THEN 0 WHEN 'duplicate' THEN 1"
    " ELSE 2 END, f.count DESC, f.fingerprint";

static RowResult request_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderRequest *r = item;
    r->row = sqlite3_column_int64(st, 0);
    r->key = arena_strdup(arena, col_text(st, 1));
    r->route = arena_strdup(arena, col_text(st, 2));
    r->tags_json = arena_strdup(arena, col_text(st, 3));
    r->end_reason = arena_strdup(arena, col_text(st, 4));
    if (!r->key || !r->route || !r->tags_json || !r->end_reason)
        return ROW_NO_MEMORY;
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
    return ROW_KEPT;
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

/* Keeps the findings of the requests in `ctx` (a ReaderRequestList sorted by row). */
static RowResult finding_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    const ReaderRequestList *requests = ctx;
    ReaderFinding *x = item;
    ReaderRequest key = {.row = sqlite3_column_int64(st, 0)};
    if (!bsearch(&key, requests->items, requests->n, sizeof *requests->items, cmp_request_row))
        return ROW_SKIPPED; /* a request outside the selection */
    x->request_row = key.row;
    x->kind = kind_name(col_text(st, 1));
    copy_hex16(x->fingerprint, col_text(st, 2));
    x->count = col_u64(st, 3);
    x->distinct_values = (uint32_t)col_u64(st, 4);
    x->is_write = sqlite3_column_int64(st, 5) != 0;
    x->by_bytes = sqlite3_column_int64(st, 6) != 0;
    x->normalized = arena_strdup(arena, col_text(st, 7));
    return x->normalized ? ROW_KEPT : ROW_NO_MEMORY;
}

/* Reads every finding of the scope (route-filtered like the requests) and hands each request
 * its own slice. The requests must be sorted by row. */
static bool attach_findings(ReportFile *f, const char *route, ReaderRequestList *out, char *err,
                            size_t err_len)
{
    const SqliteValue params[] = {SQLV_TEXT_OR_NULL(route)};
    ReaderFinding *all = NULL;
    size_t n = 0;
    if (!read_rows(f, sql_findings, params, N_PARAMS(params), (void **)&all, &n, sizeof *all,
                   &out->arena, finding_row, out, err, err_len)) {
        free(all);
        return false;
    }
    if (!n) { /* every row skipped leaves `all` allocated */
        free(all);
        return true;
    }
    /* The array goes to the arena so the requests' slices live as long as the list. */
    ReaderFinding *kept = arena_keep(&out->arena, all, n, sizeof *kept);
    if (!kept)
        return out_of_memory(f, err, err_len);
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
    return true;
}

/* Reads the requests `sql` selects, each with its findings (of requests of `route`, NULL:
 * any), into out in start order. */
static bool read_requests(ReportFile *f, const char *sql, const SqliteValue *params,
                          size_t n_params, const char *route, ReaderRequestList *out, char *err,
                          size_t err_len)
{
    bool ok = read_list(f, sql, params, n_params, (void **)&out->items, &out->n, sizeof *out->items,
                        &out->arena, request_row, NULL, err, err_len);
    if (ok && out->n > 1) /* attach_findings wants them by row; qsort's array may not be NULL */
        qsort(out->items, out->n, sizeof *out->items, cmp_request_row);
    if (ok && out->n)
        ok = attach_findings(f, route, out, err, err_len);
    if (!ok) {
        reader_request_list_free(out);
        return false;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, cmp_request_start);
    return true;
}

/* Loads requests of the scope: by route (NULL = all), by id/key (NULL = any), by the start of
 * their id or key (`prefix`, NULL = any), or by row (row > 0, then the others are ignored). */
static bool load_requests_matching(ReportFile *f, const char *route, const char *id,
                                   const char *prefix, int64_t row, ReaderRequestList *out,
                                   char *err, size_t err_len)
{
    if (row > 0) {
        const SqliteValue params[] = {SQLV_NULL, SQLV_NULL, SQLV_INT(row)};
        return read_requests(f, sql_request_by_row, params, N_PARAMS(params), NULL, out, err,
                             err_len);
    }
    const SqliteValue params[] = {SQLV_TEXT_OR_NULL(route), SQLV_TEXT_OR_NULL(id), SQLV_NULL,
                                  SQLV_TEXT_OR_NULL(prefix)};
    return read_requests(f, sql_requests, params, N_PARAMS(params), route, out, err, err_len);
}

static bool load_requests(ReportFile *f, const char *route, const char *id, int64_t row,
                          ReaderRequestList *out, char *err, size_t err_len)
{
    return load_requests_matching(f, route, id, NULL, row, out, err, err_len);
}

bool reader_requests(ReportFile *f, const char *route, ReaderRequestList *out, char *err,
                     size_t err_len)
{
    return load_requests(f, route, NULL, 0, out, err, err_len);
}

bool reader_find_request(ReportFile *f, const char *id, ReaderRequestList *out, char *err,
                         size_t err_len)
{
    if (!load_requests(f, NULL, id, 0, out, err, err_len))
        return false;
    if (out->n == 0) {
        char *end;
        errno = 0;
        long long row = strtoll(id, &end, 10);
        if (!errno && end != id && !*end && row > 0 &&
            !load_requests(f, NULL, NULL, row, out, err, err_len))
            return false;
    }
    /* Last, the start of an id (or key), as for fingerprints: ids are long (trace ids, UUIDs)
     * and a unique prefix is what people type. */
    if (out->n == 0 && *id && !load_requests_matching(f, NULL, NULL, id, 0, out, err, err_len))
        return false;
    if (out->n == 1)
        return true;
    if (out->n == 0) {
        report_err(err, err_len, "%s: no request \"%s\" in %s", f->path, id, f->scope_name);
    } else {
        char rows[160] = "";
        size_t used = 0;
        for (size_t i = 0; i < out->n && used + 24 < sizeof rows; i++)
            used += (size_t)snprintf(rows + used, sizeof rows - used, "%s%lld", i ? ", " : "",
                                     (long long)out->items[i].row);
        report_err(err, err_len,
                   "%s: request \"%s\" matches %zu requests of %s (rows %s); give more of the id "
                   "or a row number",
                   f->path, id, out->n, f->scope_name, rows);
    }
    reader_request_list_free(out);
    return false;
}

void reader_request_list_free(ReaderRequestList *list)
{
    LIST_RELEASE(list);
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

bool reader_routes(ReportFile *f, ReaderRouteList *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    ReaderRequestList reqs;
    if (!reader_requests(f, NULL, &reqs, err, err_len))
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
    if (reqs.n > 1)
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
    if (out->n > 1)
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
    LIST_RELEASE(list);
}

/* ---- top findings -------------------------------------------------------------------------- */

/* One max() aggregate only: SQLite then takes the bare q.route and q.key from the row that
 * holds the maximum, which names the worst request. Findings of every kind are ranked by one
 * cost, the DB time they stand for: an N+1's or an overfetch's statement time in the requests
 * that have it (a whole request's time for a request-level overfetch), and for a duplicate
 * the share of its statement's time spent on the repeats, which is what removing them saves.
 * Ties go to the one returning more bytes, then more rows, then to more requests. */
/* The sum over a group's findings of a figure of their fingerprint in their request (of the
 * whole request, column `qcol`, for a request-level overfetch). */
#define TOP_FINDING_SUM(rfcol, qcol)                                                               \
    " coalesce(sum(CASE WHEN f.fingerprint IS NULL OR f.fingerprint = '' THEN q." qcol             \
    " ELSE (SELECT sum(" rfcol ") FROM request_fingerprints rf"                                    \
    "   WHERE rf.request_id = f.request_id AND rf.fingerprint = f.fingerprint) END), 0)"
/* A duplicate's cost: the repeats' share of its statement time in the request. */
#define TOP_FINDING_COST                                                                           \
    "CASE WHEN f.kind = 'duplicate' AND rf.calls > 0"                                              \
    " THEN rf.total_time_us * min(f.count, rf.calls) / rf.calls ELSE rf.total_time_us END"
/* clang-format off */
static const char sql_top_findings[] =
    "SELECT f.kind, coalesce(f.fingerprint, ''), coalesce(p.normalized, ''), count(*),"
    " sum(f.count), max(f.count), count(DISTINCT q.route), q.route, q.key,"
    TOP_FINDING_SUM(TOP_FINDING_COST, "db_time_us") " AS cost,"
    " sum(f.is_write) > 0,"
    TOP_FINDING_SUM("rf.rows", "rows") " AS r,"
    TOP_FINDING_SUM("rf.bytes", "bytes") " AS b,"
    " sum(f.by_bytes) > 0,"
    TOP_FINDING_SUM("rf.total_time_us", "db_time_us")
    " FROM findings f JOIN requests q ON q.id = f.request_id"
    " LEFT JOIN fingerprints p ON p.fingerprint = f.fingerprint"
    " WHERE q.run_id" IN_SCOPE " AND (?1 IS NULL OR q.route = ?1)"
    " GROUP BY f.kind, f.fingerprint"
    " ORDER BY cost DESC, b DESC, r DESC, count(*) DESC,"
    " CASE f.kind WHEN 'n_plus_one' THEN 0 WHEN 'duplicate' THEN 1 ELSE 2 END,"
    " sum(f.count) DESC, f.fingerprint LIMIT ?2";
/* clang-format on */

static RowResult top_finding_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderTopFinding *t = item;
    t->kind = kind_name(col_text(st, 0));
    copy_hex16(t->fingerprint, col_text(st, 1));
    t->normalized = arena_strdup(arena, col_text(st, 2));
    t->requests = col_u64(st, 3);
    t->total_count = col_u64(st, 4);
    t->max_count = col_u64(st, 5);
    t->routes = col_u64(st, 6);
    t->worst_route = arena_strdup(arena, col_text(st, 7));
    const char *key = arena_strdup(arena, col_text(st, 8));
    t->cost_us = col_u64(st, 9);
    t->total_time_us = col_u64(st, 14);
    t->is_write = sqlite3_column_int64(st, 10) != 0;
    t->rows = col_u64(st, 11);
    t->bytes = col_u64(st, 12);
    t->by_bytes = sqlite3_column_int64(st, 13) != 0;
    if (!t->normalized || !t->worst_route || !key)
        return ROW_NO_MEMORY;
    t->worst_request = request_display_id(key);
    return ROW_KEPT;
}

bool reader_top_findings(ReportFile *f, const char *route, size_t limit, ReaderTopFindingList *out,
                         char *err, size_t err_len)
{
    const SqliteValue params[] = {SQLV_TEXT_OR_NULL(route), SQLV_LIMIT(limit)};
    return READ_LIST(f, out, sql_top_findings, params, top_finding_row, NULL, err, err_len);
}

void reader_top_finding_list_free(ReaderTopFindingList *list)
{
    LIST_RELEASE(list);
}

/* ---- fingerprints -------------------------------------------------------------------------- */

/* The scope's fingerprints that `where` keeps (with ?1), by calls or, ?2 true, by time;
 * LIMIT ?3. */
#define SQL_FINGERPRINTS(where)                                                                    \
    "SELECT rf.fingerprint, coalesce(p.normalized, ''), coalesce(p.command, ''), p.sample,"        \
    " coalesce(p.first_seen_us, 0), count(DISTINCT rf.request_id), sum(rf.calls),"                 \
    " sum(rf.total_time_us), sum(rf.rows), sum(rf.bytes), sum(rf.errors), max(rf.calls),"          \
    " max(rf.is_write)"                                                                            \
    " FROM request_fingerprints rf JOIN requests q ON q.id = rf.request_id"                        \
    " LEFT JOIN fingerprints p ON p.fingerprint = rf.fingerprint"                                  \
    " WHERE q.run_id" IN_SCOPE " AND " where " GROUP BY rf.fingerprint"                            \
    " ORDER BY CASE WHEN ?2 THEN sum(rf.total_time_us) ELSE sum(rf.calls) END DESC,"               \
    " rf.fingerprint LIMIT ?3"

static const char sql_fingerprints[] = SQL_FINGERPRINTS("(?1 IS NULL OR rf.fingerprint = ?1)");
static const char sql_route_fingerprints[] = SQL_FINGERPRINTS("q.route = ?1");

static const char sql_fingerprint_text[] =
    "SELECT fingerprint, normalized, command, sample, first_seen_us FROM fingerprints"
    " WHERE fingerprint = ?1";

static const char sql_fingerprint_routes[] =
    "SELECT q.route, count(DISTINCT rf.request_id), sum(rf.calls), sum(rf.total_time_us),"
    " sum(rf.rows), sum(rf.bytes)"
    " FROM request_fingerprints rf JOIN requests q ON q.id = rf.request_id"
    " WHERE q.run_id" IN_SCOPE " AND rf.fingerprint = ?1"
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

static RowResult fingerprint_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderFingerprint *x = item;
    copy_hex16(x->fingerprint, col_text(st, 0));
    if (!fingerprint_texts(x, st, 1, arena))
        return ROW_NO_MEMORY;
    x->requests = col_u64(st, 5);
    x->calls = col_u64(st, 6);
    x->total_time_us = col_u64(st, 7);
    x->rows = col_u64(st, 8);
    x->bytes = col_u64(st, 9);
    x->errors = col_u64(st, 10);
    x->max_calls = (uint32_t)col_u64(st, 11);
    x->is_write = sqlite3_column_int64(st, 12) != 0;
    return ROW_KEPT;
}

/* `sql`: SQL_FINGERPRINTS, `key` its ?1. */
static bool load_fingerprints(ReportFile *f, const char *sql, const char *key,
                              ReaderFingerprintOrder order, size_t limit,
                              ReaderFingerprintList *out, char *err, size_t err_len)
{
    const SqliteValue params[] = {SQLV_TEXT_OR_NULL(key), SQLV_INT(order == READER_BY_TIME),
                                  SQLV_LIMIT(limit)};
    return READ_LIST(f, out, sql, params, fingerprint_row, NULL, err, err_len);
}

bool reader_top_fingerprints(ReportFile *f, ReaderFingerprintOrder order, size_t limit,
                             ReaderFingerprintList *out, char *err, size_t err_len)
{
    return load_fingerprints(f, sql_fingerprints, NULL, order, limit, out, err, err_len);
}

typedef struct FingerprintMatch {
    char fingerprint[17];
} FingerprintMatch;

static RowResult match_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)arena;
    (void)ctx;
    copy_hex16(((FingerprintMatch *)item)->fingerprint, col_text(st, 0));
    return ROW_KEPT;
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
        report_err(err, err_len, "%s: \"%s\" is not a fingerprint (4 to 16 hex digits)", f->path,
                   given);
        return false;
    }
    lower[len] = '\0';
    const SqliteValue params[] = {SQLV_TEXT(lower)};
    FingerprintMatch *matches = NULL;
    size_t n = 0;
    bool ok = read_rows(f, sql_fingerprint_prefix, params, N_PARAMS(params), (void **)&matches, &n,
                        sizeof *matches, NULL, match_row, NULL, err, err_len);
    if (ok && n == 1)
        copy_hex16(out, matches[0].fingerprint);
    free(matches);
    if (!ok || n == 1)
        return ok;
    if (n == 0)
        report_err(err, err_len, "%s: no fingerprint \"%s\" in the report", f->path, given);
    else
        report_err(err, err_len, "%s: fingerprint prefix \"%s\" is ambiguous; give more digits",
                   f->path, given);
    return false;
}

static RowResult fingerprint_route_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderFingerprintRoute *r = item;
    r->route = arena_strdup(arena, col_text(st, 0));
    r->requests = col_u64(st, 1);
    r->calls = col_u64(st, 2);
    r->total_time_us = col_u64(st, 3);
    r->rows = col_u64(st, 4);
    r->bytes = col_u64(st, 5);
    return r->route ? ROW_KEPT : ROW_NO_MEMORY;
}

/* A fingerprint's text alone (sql_fingerprint_text): one the scope never executed. */
static RowResult fingerprint_text_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderFingerprint *x = item;
    copy_hex16(x->fingerprint, col_text(st, 0));
    return fingerprint_texts(x, st, 1, arena) ? ROW_KEPT : ROW_NO_MEMORY;
}

bool reader_fingerprint(ReportFile *f, const char *fingerprint, ReaderFingerprintList *out,
                        char *err, size_t err_len)
{
    char fp[17];
    memset(out, 0, sizeof *out);
    if (!resolve_fingerprint(f, fingerprint, fp, err, err_len))
        return false;
    const SqliteValue params[] = {SQLV_TEXT(fp)};
    if (!load_fingerprints(f, sql_fingerprints, fp, READER_BY_CALLS, 0, out, err, err_len))
        return false;
    /* Known text, never executed in this scope: details with zero calls. */
    if (out->n == 0 &&
        !READ_LIST(f, out, sql_fingerprint_text, params, fingerprint_text_row, NULL, err, err_len))
        return false;
    if (out->n == 0) { /* only in request_fingerprints of runs out of scope: no text either */
        ReaderFingerprint *x = calloc(1, sizeof *x);
        if (!x)
            return out_of_memory(f, err, err_len);
        out->items = x;
        out->n = 1;
        copy_hex16(x->fingerprint, fp);
        x->normalized = x->command = "";
    }
    ReaderFingerprint *x = &out->items[0];
    ReaderFingerprintRoute *routes = NULL;
    bool ok = read_rows(f, sql_fingerprint_routes, params, N_PARAMS(params), (void **)&routes,
                        &x->n_routes, sizeof *routes, &out->arena, fingerprint_route_row, NULL, err,
                        err_len);
    if (!ok || !x->n_routes)
        free(routes);
    else if (!(x->routes = arena_keep(&out->arena, routes, x->n_routes, sizeof *routes)))
        ok = out_of_memory(f, err, err_len);
    if (!ok)
        reader_fingerprint_list_free(out);
    return ok;
}

void reader_fingerprint_list_free(ReaderFingerprintList *list)
{
    LIST_RELEASE(list);
}

/* ---- timeline ------------------------------------------------------------------------------ */

static const char sql_timeline[] =
    "SELECT s.seq, s.fingerprint, s.values_hash, s.start_us, s.duration_us, s.rows, s.bytes,"
    " s.conn_id, coalesce(s.sqlstate, ''), s.setup, coalesce(p.normalized, '')"
    " FROM statements s LEFT JOIN fingerprints p ON p.fingerprint = s.fingerprint"
    " WHERE s.request_id = ?1 ORDER BY s.seq";

static RowResult statement_row(sqlite3_stmt *st, void *item, ReaderArena **arena, void *ctx)
{
    (void)ctx;
    ReaderStatement *s = item;
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
    s->normalized = arena_strdup(arena, col_text(st, 10));
    return s->normalized ? ROW_KEPT : ROW_NO_MEMORY;
}

bool reader_timeline(ReportFile *f, int64_t request_row, ReaderTimeline *out, char *err,
                     size_t err_len)
{
    const SqliteValue params[] = {SQLV_INT(request_row)};
    return READ_LIST(f, out, sql_timeline, params, statement_row, NULL, err, err_len);
}

void reader_timeline_free(ReaderTimeline *timeline)
{
    LIST_RELEASE(timeline);
}

/* ---- served pages: one route's statements, one statement's latencies ------------------------ */

bool reader_route_fingerprints(ReportFile *f, const char *route, ReaderFingerprintOrder order,
                               size_t limit, ReaderFingerprintList *out, char *err, size_t err_len)
{
    return load_fingerprints(f, sql_route_fingerprints, route, order, limit, out, err, err_len);
}

typedef struct Histogram {
    const uint64_t *bounds_us;
    size_t n_bounds;
    uint64_t *counts;
} Histogram;

static bool count_duration(sqlite3_stmt *st, void *ctx)
{
    Histogram *h = ctx;
    int64_t d = sqlite3_column_int64(st, 0);
    uint64_t us = d > 0 ? (uint64_t)d : 0;
    size_t b = 0;
    while (b < h->n_bounds && us > h->bounds_us[b])
        b++;
    h->counts[b]++;
    return true;
}

static const char sql_fingerprint_durations[] =
    "SELECT s.duration_us FROM statements s JOIN requests q ON q.id = s.request_id"
    " WHERE q.run_id" IN_SCOPE " AND s.fingerprint = ?1";

bool reader_fingerprint_latencies(ReportFile *f, const char *fingerprint, const uint64_t *bounds_us,
                                  size_t n_bounds, uint64_t *counts, char *err, size_t err_len)
{
    memset(counts, 0, (n_bounds + 1) * sizeof *counts);
    Histogram h = {bounds_us, n_bounds, counts};
    const SqliteValue params[] = {SQLV_TEXT(fingerprint)};
    return each_row(f, sql_fingerprint_durations, params, N_PARAMS(params), count_duration, &h, err,
                    err_len);
}

static const char sql_latest_requests[] =
    SQL_REQUEST_COLUMNS " AND (?1 IS NULL OR route = ?1) ORDER BY id DESC LIMIT ?2";

bool reader_latest_requests(ReportFile *f, const char *route, size_t limit, ReaderRequestList *out,
                            char *err, size_t err_len)
{
    const SqliteValue params[] = {SQLV_TEXT_OR_NULL(route), SQLV_LIMIT(limit)};
    return read_requests(f, sql_latest_requests, params, N_PARAMS(params), route, out, err,
                         err_len);
}
