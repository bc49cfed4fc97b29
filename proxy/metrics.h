/* proxy/metrics — the Prometheus `/metrics` endpoint, served on the proxy's own event loop.
 *
 * Owns: the metric names and the text exposition format (0.0.4), the statement-latency
 * histogram type, and a tiny HTTP/1.x server: a non-blocking listening socket, a bounded
 * number of scrape connections (over the bound, the oldest idle one is closed to make room, so
 * idle peers never keep a scrape out), each with a bounded request buffer, one request, and a
 * short deadline for its request head. It never blocks the loop and never reads proxy state
 * itself: at scrape time it asks the owner's
 * source callback for a MetricsSnapshot, so the counters stay wherever they are kept.
 * Everything runs on the loop's thread; nothing here is thread-safe. */
#ifndef PGTALLY_PROXY_METRICS_H
#define PGTALLY_PROXY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

/* Statement latency buckets, upper bounds in seconds (Prometheus `le`, inclusive):
 * 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10, then +Inf. */
#define METRICS_HISTOGRAM_BUCKETS 14

typedef struct MetricsHistogram {
    uint64_t buckets[METRICS_HISTOGRAM_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t count;
    uint64_t sum_us; /* total observed time, microseconds (negative durations count as 0) */
} MetricsHistogram;

/* Adds one observation. O(1), no allocation, no failure; call once per completed statement
 * with end_us - start_us. A negative duration (clock stepped back) is observed as 0. */
void metrics_histogram_observe(MetricsHistogram *histogram, int64_t duration_us);

typedef enum MetricsFindingKind {
    METRICS_FINDING_N_PLUS_ONE, /* kind="n_plus_one" */
    METRICS_FINDING_DUPLICATE,  /* kind="duplicate" */
    METRICS_FINDING_OVERFETCH,  /* kind="overfetch" */
    METRICS_FINDING_KINDS
} MetricsFindingKind;

typedef enum MetricsDropKind {
    METRICS_DROP_REQUEST,        /* what="request": finished requests never stored */
    METRICS_DROP_STATEMENT,      /* what="statement": statements lost with them */
    METRICS_DROP_FINGERPRINT,    /* what="fingerprint": fingerprint texts never stored */
    METRICS_DROP_QUERY_LOG_LINE, /* what="query_log_line": --log-queries lines not written */
    METRICS_DROP_KINDS
} MetricsDropKind;

/* Everything a scrape reports. Counters are totals since the proxy started; the two
 * connection figures are gauges (open now). */
typedef struct MetricsSnapshot {
    uint64_t client_connections;
    uint64_t client_connections_accepted;
    uint64_t client_connections_rejected;
    uint64_t server_connections;
    uint64_t server_connect_failures;
    uint64_t statements;
    uint64_t requests; /* requests finalized by the tally */
    uint64_t findings[METRICS_FINDING_KINDS];
    uint64_t dropped[METRICS_DROP_KINDS];
    uint64_t bytes_client_to_server;
    uint64_t bytes_server_to_client;
    uint64_t protocol_errors;
    uint64_t untracked_statements;
    bool has_store;            /* a report store is configured: the store_* figures apply */
    bool store_up;             /* its writer is connected */
    uint64_t store_reconnects; /* connections remade after a loss */
    uint64_t store_queued;     /* records waiting for the store */
    MetricsHistogram statement_duration;
    /* The trackers: messages the server skipped until Sync (nothing kept for them), bytes
     * kept now for tracking over all connections, and times that shared bound was hit. */
    uint64_t skipped_messages;
    uint64_t tracker_bytes;
    uint64_t tracker_limit_hits;
} MetricsSnapshot;

/* Fills *out (already zeroed) at scrape time, on the loop's thread. Must not block. */
typedef void (*MetricsSourceFn)(void *ctx, MetricsSnapshot *out);

/* Renders the snapshot in the Prometheus text format 0.0.4, HELP and TYPE lines included.
 * Returns a NUL-terminated heap string (the caller frees it) with its length in *len, or NULL
 * when out of memory. */
char *metrics_render(const MetricsSnapshot *snapshot, size_t *len);

typedef struct Metrics Metrics;

/* Listens on HOST:PORT ("127.0.0.1:9187", "[::1]:9187", "0.0.0.0:9187"; port 0 picks a free
 * one) and serves GET /metrics on `loop` until metrics_stop. Returns NULL with "what: why"
 * in err when the address cannot be used. `source` is called once per scrape. */
Metrics *metrics_start(struct ev_loop *loop, const char *listen_host_port, MetricsSourceFn source,
                       void *source_ctx, char *err, size_t err_len);

/* Closes the listening socket and every scrape connection, and frees everything. NULL is
 * accepted. */
void metrics_stop(Metrics *metrics);

/* The port actually bound (useful with port 0). */
int metrics_port(const Metrics *metrics);

/* Overrides the defaults (a connection must send its request head within 0.5 s; 64 open at a
 * time, the oldest idle one closed for a new one). For tests; values <= 0 keep the current
 * setting. */
void metrics_set_limits(Metrics *metrics, double head_timeout_seconds, int max_connections);

#endif
