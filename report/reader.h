/* report/reader — the one module that reads a pgtally report file (the SQLite store).
 *
 * Owns: opening a report read-only (and refusing files that are missing, not pgtally
 * reports, or of a newer schema), and every query the report viewer (`pgtally report`) and
 * the budget check (`pgtally check`) need: runs, per-request rows with their findings,
 * per-route aggregates, top findings with their normalized SQL, fingerprint statistics, one
 * request's timeline and one fingerprint's details. Both commands take their figures from
 * here so they always agree.
 *
 * Conventions: every figure is scoped to the set of runs last chosen with reader_select (at
 * open: the latest run): one run, or every run with one label across instances, read as one
 * picture. Fingerprints are 16 lowercase hex digits. Percentiles use the nearest-rank method
 * on the per-request values of every request in scope (p-th percentile = the
 * ceil(p/100 * n)-th smallest), so they are always an observed value, never a mean of runs.
 * Every list is returned in a struct that owns all of its memory (strings included) and is
 * released with its free function; a failed call leaves the list empty and safe to free.
 * Functions that can fail return false with "path: reason" in err. Not thread-safe: one
 * ReportFile per thread. */
#ifndef PGTALLY_REPORT_READER_H
#define PGTALLY_REPORT_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report/reader_scope.h"

typedef struct ReportFile ReportFile;
typedef struct ReaderArena ReaderArena; /* private: the memory a list owns */

/* ---- the file and its runs ------------------------------------------------------------- */

/* Opens `path` read-only and scopes it to its latest run (none when it holds no runs). Fails (NULL,
 * err names the file) when the file is missing or unreadable, is not an SQLite database, is an
 * SQLite file of another application, or has a schema newer than this pgtally reads. Never creates
 * or modifies the file. */
ReportFile *reader_open(const char *path, char *err, size_t err_len);

/* Opens the report store `db`: an SQLite path (as reader_open), or a PostgreSQL target
 * (postgres://, postgresql:// or a libpq keyword/value string) whose runs of `scope` are
 * first copied into a private temporary SQLite file (report/reader_pg), removed on close;
 * `schema` is the PostgreSQL schema (NULL: "pgtally"). `count_runs`: a runs listing will be
 * read (PostgreSQL: every run's counts are copied too). The scope still has to be chosen
 * with reader_select. reader_path then names the store, without its password. */
ReportFile *reader_open_store(const char *db, const char *schema, const ReaderScope *scope,
                              bool count_runs, char *err, size_t err_len);

/* Closes the file; NULL is fine. */
void reader_close(ReportFile *file);

/* The path given to reader_open. */
const char *reader_path(const ReportFile *file);

/* One proxy run (one `pgtally proxy` process writing to the file). */
typedef struct ReaderRun {
    int64_t id;
    char uuid[33];       /* the run's identity across stores (32 hex); "" in old files */
    char label[128];     /* --run-label; "" when none (longer labels are cut here only) */
    char instance[128];  /* the host or dyno that wrote it; "" in old files */
    int64_t started_us;  /* µs since the epoch */
    int64_t ended_us;    /* 0: the run has not ended (still running, or killed) */
    char version[32];    /* the pgtally version that wrote it */
    char *settings_json; /* the proxy's settings, a JSON object */
    uint64_t statements; /* statements the proxy saw (written at the run's end) */
    uint64_t requests;   /* requests the tally finished (written at the end) */
    uint64_t dropped_requests;
    uint64_t dropped_statements;
    uint64_t dropped_fingerprints;
    uint64_t untracked_statements;
    bool complete; /* runs.complete: clean shutdown and nothing dropped */
    /* What the file actually holds for this run (counted from the requests table). */
    uint64_t stored_requests;
    uint64_t stored_statements; /* sum of requests.statements */
    int64_t flushed_us; /* a running proxy's last SIGUSR1 snapshot (totals as of then); 0: none */
    /* Liveness of the writing proxy (schema v3; 0 / -1 in older files). */
    int64_t heartbeat_us;         /* its latest heartbeat */
    int64_t heartbeat_statements; /* statements it had seen then; -1: unknown */
    int64_t pid;                  /* its process id on `writer_host` */
    char writer_host[128];        /* runs.instance */
} ReaderRun;

typedef struct ReaderRunList {
    ReaderRun *items;
    size_t n;
    ReaderArena *arena;
} ReaderRunList;

/* All runs, oldest first (by start time). */
bool reader_list_runs(ReportFile *file, ReaderRunList *out, char *err, size_t err_len);
void reader_run_list_free(ReaderRunList *list);

/* Scopes every later query of `file` to the runs `scope` names. Fails, leaving an empty
 * scope, when no run matches ("no run 7", "no runs labelled ..."). */
bool reader_select(ReportFile *file, const ReaderScope *scope, char *err, size_t err_len);

/* The runs in scope, oldest first. */
bool reader_scope_runs(ReportFile *file, ReaderRunList *out, char *err, size_t err_len);

/* How the scope is named in messages: "run 3" or "label \"ci-42\"". */
const char *reader_scope_name(const ReportFile *file);

/* The runs of `runs` as one: counts and drops summed, started at the earliest start, ended at
 * the latest end (0 when any has not ended), id, uuid, version and settings of the latest.
 * Release with reader_run_free. False when out of memory or `runs` is empty. */
bool reader_runs_combine(const ReaderRunList *runs, ReaderRun *out);

/* True when every run of `runs` is complete (reader_run_is_complete). When false and `why`
 * is given, names the first incomplete run, its instance and its reason, and how many more
 * are incomplete. An empty list is incomplete. */
bool reader_runs_complete(const ReaderRunList *runs, char *why, size_t why_len);

/* How many runs of `runs` are complete, and how many distinct instance names they carry. */
size_t reader_runs_count_complete(const ReaderRunList *runs);
size_t reader_runs_count_instances(const ReaderRunList *runs);

/* Loads run `run_id`, or the latest run when run_id <= 0. Fails with a clear message when
 * the file has no runs or no such run. `out->settings_json` is heap memory: release it with
 * reader_run_free (never on the items of a ReaderRunList: the list owns those). */
bool reader_load_run(ReportFile *file, int64_t run_id, ReaderRun *out, char *err, size_t err_len);
void reader_run_free(ReaderRun *run);

/* Records lost anywhere (requests + statements + fingerprints dropped); 0 = nothing lost. */
uint64_t reader_run_dropped(const ReaderRun *run);

/* True when the run's data can be trusted as a whole: runs.complete is set, nothing was
 * dropped, and either the run ended cleanly or its latest SIGUSR1 snapshot still covers
 * everything: no request written and no statement seen after it (heartbeat_statements), and
 * the proxy still alive (its pid, when runs.instance names this host, and a heartbeat fresher
 * than 3 STORE_HEARTBEAT_INTERVAL_S). `pgtally check` treats false as "incomplete" (exit 1). When
 * false and `why` is given, writes a short human reason ("3 requests dropped", "run not ended"). */
bool reader_run_is_complete(const ReaderRun *run, char *why, size_t why_len);

/* ---- findings --------------------------------------------------------------------------- */

/* One finding of one request (the findings table joined with the fingerprint's text). */
typedef struct ReaderFinding {
    int64_t request_row;  /* requests.id of the request it belongs to */
    const char *kind;     /* "n_plus_one", "duplicate", "overfetch" */
    char fingerprint[17]; /* "" for a request-level overfetch */
    uint64_t count;       /* n_plus_one: calls; duplicate: repeated executions;
                             overfetch: rows (bytes when by_bytes) */
    uint32_t distinct_values;
    bool is_write;
    bool by_bytes;
    const char *normalized; /* the fingerprint's normalized SQL; "" when unknown */
} ReaderFinding;

/* ---- requests --------------------------------------------------------------------------- */

typedef struct ReaderRequest {
    int64_t row;           /* requests.id: unique in the file */
    const char *id;        /* what users call the request: the request_id /
                              correlation_id value, the trace id, or else the key */
    const char *key;       /* the grouping key, e.g. "request_id:abc", "conn:12#3" */
    const char *route;     /* "" when the request had no label */
    const char *tags_json; /* the request's tags: valid JSON ("{}" if the stored text is not) */
    const char *end_reason;
    uint64_t conn_id;
    int64_t start_us, end_us;
    uint32_t queries; /* requests.statements: the app's statements */
    uint32_t setup_statements;
    uint32_t distinct_fingerprints;
    uint32_t duplicates;
    uint32_t errors;
    uint32_t transactions;
    uint64_t db_time_us, rows, bytes;
    bool truncated; /* a per-request bound was hit: figures are lower bounds */
    uint64_t timeline_dropped;
    uint32_t n_plus_one;     /* number of n_plus_one findings */
    ReaderFinding *findings; /* this request's findings, worst first */
    size_t n_findings;
} ReaderRequest;

typedef struct ReaderRequestList {
    ReaderRequest *items;
    size_t n;
    ReaderArena *arena;
} ReaderRequestList;

/* The scope's requests in start order, each with its findings. `route` NULL = all routes,
 * otherwise only that route (exact match; "" selects unlabelled requests). */
bool reader_requests(ReportFile *file, const char *route, ReaderRequestList *out, char *err,
                     size_t err_len);
void reader_request_list_free(ReaderRequestList *list);

/* Finds one request of the scope by `id` (ReaderRequest.id), key, or, failing both, the
 * decimal row number (ReaderRequest.row), or, failing that, a unique prefix of the id or key.
 * Returns false with a message when there is no such request, or when `id` matches several
 * requests (the message lists their row numbers). */
bool reader_find_request(ReportFile *file, const char *id, ReaderRequestList *out, char *err,
                         size_t err_len);

/* ---- routes ----------------------------------------------------------------------------- */

typedef struct ReaderRoute {
    const char *route; /* "" for unlabelled requests */
    uint64_t requests;
    uint64_t queries;                               /* total */
    uint32_t queries_p50, queries_p95, queries_max; /* queries per request */
    uint64_t duplicates;                            /* total */
    uint64_t n_plus_one;                            /* n_plus_one findings, total */
    uint64_t requests_with_n_plus_one;
    uint64_t overfetch; /* overfetch findings, total */
    uint64_t errors;
    uint64_t db_time_us;                                     /* total */
    uint64_t db_time_p50_us, db_time_p95_us, db_time_max_us; /* per request */
    uint64_t rows, bytes;                                    /* totals */
} ReaderRoute;

typedef struct ReaderRouteList {
    ReaderRoute *items;
    size_t n;
    ReaderArena *arena;
} ReaderRouteList;

/* Per-route aggregates of the scope, worst first: by n_plus_one findings, then queries p95,
 * then duplicates, then DB time, then name. */
bool reader_routes(ReportFile *file, ReaderRouteList *out, char *err, size_t err_len);
void reader_route_list_free(ReaderRouteList *list);

/* ---- top findings (aggregated over requests) -------------------------------------------- */

typedef struct ReaderTopFinding {
    const char *kind;
    char fingerprint[17];   /* "" for request-level overfetch */
    const char *normalized; /* "" when unknown */
    uint64_t requests;      /* requests with this finding */
    uint64_t total_count;   /* sum of ReaderFinding.count */
    uint64_t max_count;
    uint64_t total_time_us;    /* DB time of this fingerprint in those requests (of those
                                  whole requests for a request-level overfetch) */
    const char *worst_route;   /* the route of the request with max_count */
    const char *worst_request; /* that request's ReaderRequest.id */
    uint64_t routes;           /* distinct routes it appears in */
    bool is_write; /* an INSERT/UPDATE/DELETE shape: an N+1 of it is "repeated writes" */
    /* Rows and bytes of this fingerprint (the whole request's for a request-level overfetch)
     * in those requests: rows written or returned, bytes returned to the client. */
    uint64_t rows, bytes;
    bool by_bytes; /* overfetch: count is bytes rather than rows returned */
    /* What findings are ranked by: the DB time the finding stands for. total_time_us, except
     * for a duplicate: the repeats' share of it (time * repeats / calls, per request), which
     * is what removing them saves. */
    uint64_t cost_us;
} ReaderTopFinding;

typedef struct ReaderTopFindingList {
    ReaderTopFinding *items;
    size_t n;
    ReaderArena *arena;
} ReaderTopFindingList;

/* Findings grouped by (kind, fingerprint), every kind ranked together by one cost: the DB
 * time they stand for (cost_us), then bytes, then rows, then requests (the kind order
 * n_plus_one, duplicate, overfetch only breaks exact ties). `route` NULL = all routes.
 * limit 0 = no limit. */
bool reader_top_findings(ReportFile *file, const char *route, size_t limit,
                         ReaderTopFindingList *out, char *err, size_t err_len);
void reader_top_finding_list_free(ReaderTopFindingList *list);

/* ---- fingerprints ----------------------------------------------------------------------- */

typedef struct ReaderFingerprintRoute {
    const char *route;
    uint64_t requests, calls, total_time_us;
    uint64_t rows, bytes; /* of this statement on this route: as ReaderFingerprint's */
} ReaderFingerprintRoute;

typedef struct ReaderFingerprint {
    char fingerprint[17];
    const char *normalized; /* "" when the text never reached the file */
    const char *command;    /* e.g. "select"; "" when unknown */
    const char *sample;     /* an example with values (--samples), or NULL */
    int64_t first_seen_us;  /* 0 when unknown */
    uint64_t requests;      /* requests of the scope that ran it */
    uint64_t calls, total_time_us, rows, bytes, errors;
    uint32_t max_calls; /* most calls in one request */
    bool is_write;
    ReaderFingerprintRoute *routes; /* only from reader_fingerprint; by calls */
    size_t n_routes;
} ReaderFingerprint;

typedef struct ReaderFingerprintList {
    ReaderFingerprint *items;
    size_t n;
    ReaderArena *arena;
} ReaderFingerprintList;

typedef enum ReaderFingerprintOrder {
    READER_BY_CALLS,
    READER_BY_TIME,
} ReaderFingerprintOrder;

/* The scope's fingerprints by total calls or total time (ties by fingerprint). limit 0 = all. */
bool reader_top_fingerprints(ReportFile *file, ReaderFingerprintOrder order, size_t limit,
                             ReaderFingerprintList *out, char *err, size_t err_len);

/* One fingerprint's details (text, totals, per-route use). `fingerprint` is 16 hex digits,
 * or a unique prefix of at least 4. Fails when unknown in the file or ambiguous. A
 * fingerprint whose text is known but which the scope never executed has zero calls. */
bool reader_fingerprint(ReportFile *file, const char *fingerprint, ReaderFingerprintList *out,
                        char *err, size_t err_len);
void reader_fingerprint_list_free(ReaderFingerprintList *list);

/* ---- one request's timeline -------------------------------------------------------------- */

typedef struct ReaderStatement {
    uint32_t seq;
    char fingerprint[17];
    char values_hash[17];
    int64_t start_us, duration_us;
    uint64_t rows, bytes, conn_id;
    char sqlstate[6]; /* "" unless it failed */
    bool setup;
    const char *normalized; /* "" when unknown */
} ReaderStatement;

typedef struct ReaderTimeline {
    ReaderStatement *items;
    size_t n;
    ReaderArena *arena;
} ReaderTimeline;

/* The statements of request `request_row` (ReaderRequest.row) in execution order. The
 * timeline holds at most the store's per-request bound (ReaderRequest.timeline_dropped says
 * how many were left out). */
bool reader_timeline(ReportFile *file, int64_t request_row, ReaderTimeline *out, char *err,
                     size_t err_len);
void reader_timeline_free(ReaderTimeline *timeline);

/* ---- served pages ------------------------------------------------------------------------- */

/* The fingerprints of route `route`'s requests in scope ("" for unlabelled requests), by
 * total calls or total time, as reader_top_fingerprints; `routes` is left empty. */
bool reader_route_fingerprints(ReportFile *file, const char *route, ReaderFingerprintOrder order,
                               size_t limit, ReaderFingerprintList *out, char *err, size_t err_len);

/* As reader_requests, but only the `limit` requests stored last (0: all), in start order: a
 * live page's list stays bounded however long the proxy runs. */
bool reader_latest_requests(ReportFile *file, const char *route, size_t limit,
                            ReaderRequestList *out, char *err, size_t err_len);

/* A latency histogram of `fingerprint` (16 hex) over the scope's stored statements: counts[i]
 * (i < n_bounds) holds statements taking at most bounds_us[i] (ascending) and more than the
 * bound before; counts[n_bounds] the rest. `counts` has n_bounds + 1 entries. */
bool reader_fingerprint_latencies(ReportFile *file, const char *fingerprint,
                                  const uint64_t *bounds_us, size_t n_bounds, uint64_t *counts,
                                  char *err, size_t err_len);

#endif
