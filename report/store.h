/* report/store — the report store and the one thread that writes it.
 *
 * Owns: the `runs` row of this process, a bounded queue of records (bounded in count and in
 * bytes) and the writer thread that drains it in batched transactions into a backend
 * (report/store/backend.h): an SQLite file (report/store/sqlite) or a PostgreSQL schema
 * (report/store/pg), chosen by the target's form (pq_is_target). The submitter (the event-loop
 * thread) never waits on the database: it holds the queue lock only to push a pointer, and
 * when the queue is full the record is dropped and counted. When the database refuses a batch
 * (disk full, locked, I/O error, a constraint) the writer counts its records as dropped and
 * carries on. When the database goes away (a PostgreSQL store restarting or unreachable), the
 * batch is kept, new records wait in the queue, and the writer reconnects with backoff
 * (0.25 s doubling to 15 s); only a full queue then drops. While it runs, the writer also
 * refreshes runs.heartbeat_us / heartbeat_statements every STORE_HEARTBEAT_INTERVAL_S.
 *
 * Thread use: store_open / store_close from one thread; store_submit_* / store_request_flush /
 * store_wait_flushed / store_stats from any thread while the store is open. */
#ifndef PGTALLY_REPORT_STORE_H
#define PGTALLY_REPORT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report/record.h"

/* The schema version this binary writes; files with a newer one are refused. */
#define STORE_SCHEMA_VERSION 3

/* How often a running proxy's writer refreshes runs.heartbeat_us. A reader treats a run whose
 * heartbeat is older than 3 intervals as no longer running. */
#define STORE_HEARTBEAT_INTERVAL_S 2

typedef struct Store Store;

/* Zero means "default" for every numeric field, NULL for every string. */
typedef struct StoreOptions {
    const char *settings_json; /* runs.settings: the proxy's effective settings, a JSON
                                  object (validated); default "{}" */
    const char *version;       /* runs.version; default PGTALLY_VERSION */
    const char *label;         /* runs.label (--run-label); default "" */
    const char *instance;      /* runs.instance (--instance); default "" */
    int64_t started_us;        /* runs.started_us, µs since the epoch; default now */
    size_t queue_max_records;  /* default 8192 */
    size_t queue_max_bytes;    /* by request_record_bytes; default 16 MiB */
    size_t batch_max_records;  /* records per transaction; default 512 */
    unsigned batch_linger_ms;  /* how long the writer waits to fill a batch; default 5 */
    unsigned busy_timeout_ms;  /* SQLite busy timeout; default 1000 */
    const char *db_schema;     /* PostgreSQL: the schema (--db-schema); default "pgtally" */
    unsigned heartbeat_ms;     /* default STORE_HEARTBEAT_INTERVAL_S */
} StoreOptions;

/* What the proxy counted over the run, written to the `runs` row at close. */
typedef struct StoreRunTotals {
    uint64_t statements;           /* statements seen by the proxy */
    uint64_t requests;             /* requests finalized by the tally */
    uint64_t dropped_requests;     /* dropped before the store (open-request evictions ...) */
    uint64_t dropped_statements;   /* statements lost with them, or never tallied */
    uint64_t dropped_fingerprints; /* fingerprint texts never handed to the store */
    uint64_t untracked_statements; /* statements the tracker could not attribute */
    bool complete;                 /* the proxy flushed every open request (clean shutdown) */
} StoreRunTotals;

/* The store's own counters since store_open. "dropped" = queue full + database failures. */
typedef struct StoreStats {
    uint64_t written_requests;
    uint64_t written_statements;   /* RequestRecord.statements of the written requests */
    uint64_t written_fingerprints; /* fingerprint records committed (repeats included) */
    uint64_t dropped_requests;
    uint64_t dropped_statements; /* RequestRecord.statements of the dropped requests */
    uint64_t dropped_fingerprints;
    uint64_t dropped_queue_full; /* records (either kind) refused by a full queue */
    uint64_t dropped_sqlite;     /* records (either kind) lost with a failed transaction (any
                                    backend), or left when closing with the store unreachable */
    uint64_t failed_batches;     /* transactions that failed */
    uint64_t batches;            /* transactions committed */
    size_t queued_records;       /* waiting, including a batch kept for a retry */
    size_t queued_bytes;
    bool connected;            /* the writer can reach the database */
    uint64_t reconnects;       /* connections made again after a loss */
    uint64_t connect_failures; /* connection attempts that failed */
    uint64_t error_seq;        /* bumped with every new last_error */
    char last_error[512];      /* the latest failure with context, "" if none; never holds a
                                  password */
    char store[256];           /* the store in messages: the path, or the URL redacted */
} StoreStats;

/* Opens the store and starts the writer thread. `path` is an SQLite file, or a PostgreSQL
 * URL / libpq keyword=value string (pq_is_target). An SQLite file is created (mode 0600),
 * migrated to STORE_SCHEMA_VERSION and given this run's `runs` row now; failures return NULL
 * with "path: reason" in err. A PostgreSQL store is only checked now (libpq present, a valid
 * connection string, a valid schema name): the writer connects, migrates and inserts the run
 * row itself, retrying with backoff while the server is unreachable, so a store that is down
 * never stops the caller. `opts` may be NULL. Messages never contain the password. */
Store *store_open(const char *path, const StoreOptions *opts, char *err, size_t err_len);

/* Creates `path` (mode 0600) or opens it, and brings its schema to STORE_SCHEMA_VERSION
 * without recording a run: the file `pgtally merge` writes into. False with "path: reason"
 * in err for a file of another application or of a newer schema. */
bool store_prepare_file(const char *path, char *err, size_t err_len);

/* Hands a finished request to the writer; takes ownership. Never blocks on SQLite: returns
 * false (record freed, drop counted) when the queue is full. */
bool store_submit_request(Store *store, RequestRecord *record);

/* Hands a fingerprint text to the writer; takes ownership. The store keeps the first record
 * of each fingerprint (and the first non-NULL sample). Same queue and drop rule as above. */
bool store_submit_fingerprint(Store *store, FingerprintRecord *record);

/* Asks the writer to commit everything queued so far, now, without waiting (SIGUSR1). */
void store_request_flush(Store *store, const StoreRunTotals *totals);

/* Requests a flush and waits until every record submitted before the call has been processed
 * (committed, or counted as dropped). Returns false on timeout. For tests and tools. */
bool store_wait_flushed(Store *store, double timeout_s);

/* The store's counters, consistent with each other at one instant. */
StoreStats store_stats(const Store *store);

/* Replaces runs.settings (a JSON object the caller built; SIGHUP changed a setting): copied,
 * and written by the writer with its next heartbeat (within STORE_HEARTBEAT_INTERVAL_S), or
 * at close. A newer call before then wins. False when out of memory. */
bool store_set_settings(Store *store, const char *settings_json);

/* Statements the proxy has seen so far, for the next heartbeat (any thread; cheap). */
void store_note_progress(Store *store, uint64_t statements);

/* Drains the queue completely, stops the writer, writes the run's totals (the proxy's
 * `totals`, may be NULL, plus the store's own drops), checkpoints the WAL and frees `store`.
 * runs.complete = 1 only if totals->complete and nothing was dropped anywhere. A PostgreSQL
 * store that cannot be reached gets one last connection attempt; what is still queued is
 * then dropped. Returns false, with "store: reason" in err (may be NULL), if the run row could
 * not be written; the store is freed either way. */
bool store_close(Store *store, const StoreRunTotals *totals, char *err, size_t err_len);

#endif
