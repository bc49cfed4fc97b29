/* report/store/backend — what the store's writer thread asks of a database.
 *
 * Owns: the small interface between report/store (the queue, the writer thread, drop
 * accounting, the run's totals) and one database engine: report/store/sqlite (the embedded
 * file) and report/store/pg (PostgreSQL through libpq). The writer calls every operation from
 * its own thread, one at a time; open/free run on the thread that opens and closes the store.
 *
 * A batch is begin, then write_request / write_fingerprint per record, then commit; any
 * failure is followed by rollback. After a failed operation, `lost` tells the writer whether
 * the database went away (keep the batch, reconnect and retry it) or refused the data (the
 * batch is dropped and counted). Backends never print. */
#ifndef PGTALLY_REPORT_STORE_BACKEND_H
#define PGTALLY_REPORT_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report/record.h"

/* The run row as this process first writes it. */
typedef struct StoreRunInfo {
    int64_t started_us;
    const char *version;
    const char *settings_json; /* validated JSON object */
    const char *uuid;          /* 32 hex digits */
    const char *label;
    const char *instance;
    int64_t pid;
} StoreRunInfo;

/* One update of the run row. ended_us / flushed_us 0 leave the column as it is, except that
 * an update with `totals` set writes ended_us and flushed_us both (NULL for 0). */
typedef struct StoreRunUpdate {
    bool totals; /* write the figures below (snapshot or end), not only the heartbeat */
    int64_t ended_us;
    int64_t flushed_us;
    uint64_t statements, requests;
    uint64_t dropped_requests, dropped_statements, dropped_fingerprints;
    uint64_t untracked_statements;
    bool complete;
    int64_t heartbeat_us;
    uint64_t heartbeat_statements;
    const char *settings_json; /* non-NULL: new runs.settings (a valid JSON object) */
} StoreRunUpdate;

typedef struct StoreBackend StoreBackend;

typedef struct StoreBackendOps {
    /* Makes the backend usable: connects, migrates the schema and inserts the run row the
     * first time (later calls after a loss only reconnect). True at once when already
     * connected. */
    bool (*connect)(StoreBackend *b, char *err, size_t err_len);
    /* `retry`: the same records as the last batch, which failed because the database went
     * away; a backend that may have committed it after all recognizes it. */
    bool (*begin)(StoreBackend *b, size_t n_requests, bool retry, char *err, size_t err_len);
    bool (*write_request)(StoreBackend *b, const RequestRecord *r, char *err, size_t err_len);
    bool (*write_fingerprint)(StoreBackend *b, const FingerprintRecord *r, char *err,
                              size_t err_len);
    /* Returns true when committed. */
    bool (*commit)(StoreBackend *b, char *err, size_t err_len);
    void (*rollback)(StoreBackend *b);
    /* After a failure: the database is unreachable (retry the batch after a reconnect). */
    bool (*lost)(StoreBackend *b);
    bool (*update_run)(StoreBackend *b, const StoreRunUpdate *u, char *err, size_t err_len);
    /* Idle housekeeping after a flush (SQLite: a passive WAL checkpoint). May be NULL. */
    void (*idle)(StoreBackend *b);
    /* Last act before free (SQLite: truncate the WAL). May be NULL. */
    void (*finish)(StoreBackend *b);
    void (*free)(StoreBackend *b);
} StoreBackendOps;

struct StoreBackend {
    const StoreBackendOps *ops;
    char name[256]; /* the store in messages: the path, or the URL without its password */
};

/* The SQLite file at `path`: created 0600, migrated and given its run row now (failures are
 * reported here, before the proxy starts). */
StoreBackend *store_sqlite_open(const char *path, const StoreRunInfo *run, unsigned busy_ms,
                                char *err, size_t err_len);

/* A PostgreSQL store: checks the target and loads libpq now; connects in `connect`, from the
 * writer thread, so a store that is down never delays the proxy. */
StoreBackend *store_pg_open(const char *target, const char *schema, const StoreRunInfo *run,
                            char *err, size_t err_len);

#endif
