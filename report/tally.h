/* report/tally — groups completed statements into HTTP requests and finds what is wrong.
 *
 * Owns: request grouping (docs/architecture.md, "How statements become requests"): a `request_id` /
 * `correlation_id` tag, else a `traceparent` trace id, else a contiguous labelled run on one
 * connection (route, controller#action, application_name), else the connection's own run; the end
 * of a request (idle gap, label change, connection close, shutdown, eviction); per-request and
 * per-fingerprint figures; the findings n_plus_one, duplicate and overfetch; and which
 * fingerprint texts still have to be sent to the store.
 *
 * Pure and single-threaded (the event loop's): no I/O, no clock of its own (times come in
 * with the statements and ticks). Every table is bounded; hitting a bound evicts the oldest
 * request early or marks a request `truncated`, and is counted. Finished requests leave as
 * self-contained RequestRecords through a callback that takes ownership. */
#ifndef PGTALLY_REPORT_TALLY_H
#define PGTALLY_REPORT_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sqltags.h"
#include "report/record.h"

/* One completed statement, as the proxy saw it. Pointers are only read during the call. */
typedef struct TallyStatement {
    uint64_t conn_id;
    uint64_t fingerprint;
    uint64_t values_hash;
    const char *normalized; /* N; NULL when the SQL is unknown */
    size_t normalized_len;
    const SqlTag *tags;
    size_t n_tags;
    const char *application_name;
    size_t application_name_len;
    const char *command;  /* CommandComplete's command word, "" on error */
    const char *sqlstate; /* "" unless it failed */
    const char *sample;   /* the SQL with its values, only kept with `keep_samples` */
    size_t sample_len;
    int64_t start_us;
    int64_t end_us;
    uint64_t rows;  /* rows returned to the client (TrackerEvent.rows_returned): rows a write
                       only wrote are not here, so neither overfetch nor max_rows counts them */
    uint64_t bytes; /* bytes sent to the client */
} TallyStatement;

typedef struct TallyOptions {
    int64_t request_gap_us;           /* a request idle this long has ended */
    uint32_t n_plus_one_min_calls;    /* one fingerprint executed at least this often ... */
    uint32_t n_plus_one_min_distinct; /* ... with at least this many distinct value sets */
    uint32_t duplicate_min;           /* exact repeats of one fingerprint to report */
    uint64_t overfetch_rows;          /* one statement returning at least this many rows */
    uint64_t overfetch_bytes;         /* ... or bytes */
    uint64_t request_overfetch_rows;  /* a whole request returning at least this many rows */
    uint64_t request_overfetch_bytes;
    bool keep_samples; /* send one statement with values per fingerprint */
    /* bounds */
    size_t max_open_requests;
    size_t max_fingerprints_per_request;
    size_t max_pairs_per_request; /* distinct (fingerprint, values) pairs tracked */
    size_t max_timeline;          /* statements kept in a request's timeline */
    size_t max_connections;       /* per-connection run state kept */
    size_t max_seen_fingerprints; /* fingerprint texts remembered as already sent */
    /* The seed of every hash table keyed by what clients send (request tags, fingerprints):
     * drawn from getrandom at tally_new unless `hash_seed_fixed` (tests and benchmarks), so
     * nobody can pick keys offline that all land in one bucket. */
    bool hash_seed_fixed;
    uint64_t hash_seed;
} TallyOptions;

/* The documented defaults (docs/operations.md) (n_plus_one >= 5 calls with >= 2 value sets...). */
void tally_options_default(TallyOptions *options);

/* The finding thresholds of TallyOptions, one table in tally.c: the proxy's defaults, the
 * settings it stores with a run and TallyOptions all take their names and defaults from it. */
typedef enum TallyThresholdId {
    TALLY_N_PLUS_ONE_CALLS,
    TALLY_N_PLUS_ONE_DISTINCT,
    TALLY_DUPLICATE_MIN,
    TALLY_OVERFETCH_ROWS,
    TALLY_OVERFETCH_BYTES,
    TALLY_REQUEST_OVERFETCH_ROWS,
    TALLY_REQUEST_OVERFETCH_BYTES,
    TALLY_N_THRESHOLDS,
} TallyThresholdId;

/* Its name in a run's stored settings, e.g. "n_plus_one_calls". */
const char *tally_threshold_key(TallyThresholdId id);
uint64_t tally_threshold_default(TallyThresholdId id);
uint64_t tally_threshold_get(const TallyOptions *options, TallyThresholdId id);
/* Sets it, cut to the field's width. */
void tally_threshold_set(TallyOptions *options, TallyThresholdId id, uint64_t value);

typedef struct TallyStats {
    uint64_t statements;        /* every statement fed in (setup statements included) */
    uint64_t app_statements;    /* counted as the app's queries */
    uint64_t requests;          /* finished requests handed on */
    uint64_t evicted;           /* requests ended early because the open table was full */
    uint64_t truncated;         /* finished requests marked truncated */
    uint64_t fingerprints_sent; /* fingerprint texts handed on */
    uint64_t open_requests;     /* now */
} TallyStats;

/* Both callbacks take ownership of the record. */
typedef void (*TallyRequestFn)(void *ctx, RequestRecord *record);
typedef void (*TallyFingerprintFn)(void *ctx, FingerprintRecord *record);

typedef struct Tally Tally;

Tally *tally_new(const TallyOptions *options, TallyRequestFn on_request,
                 TallyFingerprintFn on_fingerprint, void *ctx);
/* Finishes every open request (reason "shutdown") and frees the tally. */
void tally_free(Tally *tally);

void tally_statement(Tally *tally, const TallyStatement *statement);
/* Ends requests idle for longer than the gap. Call periodically with the current time. */
void tally_tick(Tally *tally, int64_t now_us);
/* The connection ended: its runs end (reason "conn_close"). */
void tally_connection_closed(Tally *tally, uint64_t conn_id);
/* Ends every open request now (reason "shutdown"): nothing is lost at exit. */
void tally_finish_all(Tally *tally);
/* Replaces the finding thresholds and gap (SIGHUP); bounds stay as they are. */
void tally_set_thresholds(Tally *tally, const TallyOptions *options);

const TallyStats *tally_stats(const Tally *tally);

/* The hash seed in use, and the longest chain of open requests in one bucket of the request
 * table: for tests and benchmarks that check hash flooding stays out of reach. */
uint64_t tally_hash_seed(const Tally *tally);
size_t tally_max_request_chain(const Tally *tally);

/* True for statements that only set the request's label (SET application_name ...). */
bool tally_is_setup_statement(const char *normalized, size_t len);

#endif
