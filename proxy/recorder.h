/* proxy/recorder — from completed statements to the report store.
 *
 * Owns: the tally (report/tally) and the store (report/store) of one proxy run: turning each
 * tracker event into a tally statement, forwarding finished requests and fingerprint texts to
 * the store's queue (never waiting on SQLite), the periodic idle sweep, SIGUSR1 flushes, and
 * the final flush and run totals at shutdown. Lives on the event-loop thread. */
#ifndef PGTALLY_PROXY_RECORDER_H
#define PGTALLY_PROXY_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/tracker.h"
#include "report/tally.h"

typedef struct Recorder Recorder;

typedef struct RecorderOptions {
    const char *db_path;       /* SQLite path, or PostgreSQL URL / libpq key=value string */
    const char *db_schema;     /* PostgreSQL store: the schema; NULL for the default */
    const char *settings_json; /* the proxy's effective settings, stored with the run */
    const char *run_label;     /* runs.label, or NULL */
    const char *instance;      /* runs.instance, or NULL */
    TallyOptions tally;
} RecorderOptions;

/* Opens the store (creating or migrating an SQLite file) and starts its writer. NULL with a
 * message in err when the file cannot be used. A PostgreSQL store that is down is not an
 * error: the writer retries, and recorder_tick logs the store's state changes. */
Recorder *recorder_open(const RecorderOptions *options, char *err, size_t err_len);

/* The usage errors of a PostgreSQL store, found before anything starts (the caller exits 2):
 * an invalid `db_schema` (NULL: the default), a connection string libpq cannot parse, and a
 * store reached through this proxy's own --listen address (its writes would be tallied, and
 * relayed to itself). False with a message naming the option (never the password). True for
 * SQLite paths. */
bool recorder_check_store_target(const char *db, const char *db_schema, const char *listen,
                                 char *err, size_t err_len);

void recorder_event(Recorder *recorder, const TrackerEvent *event);
void recorder_connection_closed(Recorder *recorder, uint64_t conn_id);
void recorder_tick(Recorder *recorder, int64_t now_us);
/* New finding thresholds and request gap (SIGHUP). */
void recorder_set_thresholds(Recorder *recorder, const TallyOptions *options);
/* New runs.settings after a SIGHUP (copied; written by the store's writer). */
bool recorder_set_settings(Recorder *recorder, const char *settings_json);

typedef struct RecorderTotals RecorderTotals;

/* Ends every open request and asks the writer to commit what is queued and to record the run's
 * totals as of now, so a reader can judge the run while the proxy goes on (SIGUSR1). */
void recorder_flush(Recorder *recorder, const RecorderTotals *totals);

struct RecorderTotals {
    uint64_t untracked_statements; /* from the trackers */
};

/* Ends every open request, drains the queue, records the run's totals, closes the file.
 * Returns false (message in err) when the final write failed. */
bool recorder_close(Recorder *recorder, const RecorderTotals *totals, char *err, size_t err_len);

typedef struct RecorderStats {
    uint64_t statements;
    uint64_t requests;
    uint64_t findings[3];      /* by FindingKind */
    uint64_t dropped_requests; /* store side: queue full or SQLite failures */
    uint64_t dropped_statements;
    uint64_t dropped_fingerprints;
    bool store_up;             /* the store's writer is connected */
    uint64_t store_reconnects; /* connections remade after a loss */
    size_t store_queued;       /* records waiting for the store */
} RecorderStats;
RecorderStats recorder_stats(const Recorder *recorder);

#endif
