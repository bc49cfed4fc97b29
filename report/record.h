/* report/record — what leaves the tally: one finished HTTP request, self-contained.
 *
 * Owns: the RequestRecord and FingerprintRecord shapes handed from the tally (event-loop
 * thread) to the store (writer thread). A record owns all of its memory (one free function),
 * so the two threads share nothing but the queue. */
#ifndef PGTALLY_REPORT_RECORD_H
#define PGTALLY_REPORT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Per fingerprint within one request. */
typedef struct RecordFingerprint {
    uint64_t fingerprint;
    uint32_t calls;
    uint32_t distinct_values; /* distinct values hashes among the calls */
    uint64_t total_time_us;
    uint64_t rows;
    uint64_t bytes;
    uint32_t errors;
    bool is_write; /* INSERT / UPDATE / DELETE / MERGE */
} RecordFingerprint;

/* One executed statement, for the request's timeline (in execution order). */
typedef struct RecordStatement {
    uint64_t fingerprint;
    uint64_t values_hash;
    int64_t start_us;
    int64_t duration_us;
    uint64_t rows;
    uint64_t bytes;
    uint64_t conn_id;
    char sqlstate[6]; /* "" unless it failed */
    bool setup;       /* only sets the request's tag (SET application_name ...) */
} RecordStatement;

typedef enum FindingKind {
    FINDING_N_PLUS_ONE,
    FINDING_DUPLICATE,
    FINDING_OVERFETCH,
} FindingKind;

typedef struct RecordFinding {
    FindingKind kind;
    uint64_t fingerprint; /* 0 for a request-level overfetch */
    uint64_t count;       /* n_plus_one: calls; duplicate: repeated executions;
                             overfetch: rows (or bytes when `by_bytes`) */
    uint32_t distinct_values;
    bool is_write; /* n_plus_one on INSERT/UPDATE/DELETE: "repeated writes" */
    bool by_bytes; /* overfetch measured in bytes rather than rows */
} RecordFinding;

typedef struct RequestRecord {
    char *key;              /* grouping key, e.g. "request_id:abc", "trace:<32hex>", "conn:12#3" */
    char *route;            /* decoded route / controller#action / application_name; may be "" */
    char *tags_json;        /* the request's tags as a JSON object, decoded values */
    uint64_t conn_id;       /* the connection of its first statement */
    int64_t start_us;       /* first statement's start */
    int64_t end_us;         /* last statement's end */
    const char *end_reason; /* static string: "idle", "label_change", "conn_close",
                               "shutdown", "evicted" */
    uint32_t statements;    /* the app's statements (setup statements excluded) */
    uint32_t setup_statements;
    uint32_t distinct_fingerprints;
    uint32_t duplicates; /* statements minus distinct (fingerprint, values) pairs */
    uint32_t errors;
    uint32_t transactions;
    uint64_t db_time_us;
    uint64_t rows;
    uint64_t bytes;
    bool truncated; /* a per-request bound was hit: figures are lower bounds */

    RecordFingerprint *fingerprints;
    size_t n_fingerprints;
    RecordStatement *timeline;
    size_t n_timeline;
    uint64_t timeline_dropped; /* statements beyond the per-request timeline bound */
    RecordFinding *findings;
    size_t n_findings;
} RequestRecord;

/* The text of a fingerprint, sent to the store the first time it is seen (and again if the
 * proxy's bounded "already sent" set forgot it; the store ignores repeats). */
typedef struct FingerprintRecord {
    uint64_t fingerprint;
    char *normalized;
    char *command; /* first word of the normalized text, e.g. "select" */
    char *sample;  /* one example with literal values, only with --samples; else NULL */
    int64_t first_seen_us;
} FingerprintRecord;

void request_record_free(RequestRecord *record);
void fingerprint_record_free(FingerprintRecord *record);
/* Approximate heap bytes held by a record: the store's queue is bounded by this. */
size_t request_record_bytes(const RequestRecord *record);

#endif
