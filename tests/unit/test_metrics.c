/* tests/unit/test_metrics.c — proxy/metrics: histogram buckets, the exact exposition text,
 * and HTTP exchanges on a real loopback socket served by a real libev loop (the clients are
 * blocking sockets in helper threads; the loop runs in the test's own thread). */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <ev.h>

#include "proxy/metrics.h"
#include "tests/unit/testlib.h"

/* ---- histogram ---------------------------------------------------------------------------- */

TEST(histogram_bounds_are_inclusive)
{
    MetricsHistogram h;
    memset(&h, 0, sizeof h);
    metrics_histogram_observe(&h, 0);
    metrics_histogram_observe(&h, 500);       /* exactly le=0.0005 */
    metrics_histogram_observe(&h, 501);       /* next bucket */
    metrics_histogram_observe(&h, 1000);      /* exactly le=0.001 */
    metrics_histogram_observe(&h, 10000000);  /* exactly le=10 */
    metrics_histogram_observe(&h, 10000001);  /* +Inf */
    metrics_histogram_observe(&h, INT64_MAX); /* +Inf, no overflow of the index */
    CHECK_EQ_INT(h.buckets[0], 2);
    CHECK_EQ_INT(h.buckets[1], 2);
    CHECK_EQ_INT(h.buckets[13], 1);
    CHECK_EQ_INT(h.buckets[14], 2);
    CHECK_EQ_INT(h.count, 7);
}

TEST(histogram_every_bucket)
{
    static const int64_t bounds[METRICS_HISTOGRAM_BUCKETS] = {
        500,    1000,   2500,   5000,    10000,   25000,   50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
    MetricsHistogram h;
    memset(&h, 0, sizeof h);
    for (int i = 0; i < METRICS_HISTOGRAM_BUCKETS; i++) {
        metrics_histogram_observe(&h, bounds[i]);     /* on the bound: this bucket */
        metrics_histogram_observe(&h, bounds[i] + 1); /* just over: the next one */
    }
    CHECK_EQ_INT(h.buckets[0], 1);
    for (int i = 1; i <= METRICS_HISTOGRAM_BUCKETS; i++)
        CHECK_EQ_INT(h.buckets[i], i == METRICS_HISTOGRAM_BUCKETS ? 1 : 2);
    CHECK_EQ_INT(h.count, 2 * METRICS_HISTOGRAM_BUCKETS);
}

TEST(histogram_negative_duration_counts_as_zero)
{
    MetricsHistogram h;
    memset(&h, 0, sizeof h);
    metrics_histogram_observe(&h, -5000);
    metrics_histogram_observe(&h, 1500);
    CHECK_EQ_INT(h.buckets[0], 1);
    CHECK_EQ_INT(h.buckets[2], 1);
    CHECK_EQ_INT(h.sum_us, 1500);
    CHECK_EQ_INT(h.count, 2);
}

/* ---- exposition text ------------------------------------------------------------------------ */

static void sample_snapshot(MetricsSnapshot *s)
{
    memset(s, 0, sizeof *s);
    s->client_connections = 3;
    s->client_connections_accepted = 120;
    s->client_connections_rejected = 2;
    s->server_connections = 3;
    s->server_connect_failures = 1;
    s->statements = 4567;
    s->requests = 89;
    s->findings[METRICS_FINDING_N_PLUS_ONE] = 7;
    s->findings[METRICS_FINDING_DUPLICATE] = 5;
    s->findings[METRICS_FINDING_OVERFETCH] = 1;
    s->dropped[METRICS_DROP_REQUEST] = 4;
    s->dropped[METRICS_DROP_STATEMENT] = 40;
    s->dropped[METRICS_DROP_FINGERPRINT] = 2;
    s->dropped[METRICS_DROP_QUERY_LOG_LINE] = 0;
    s->bytes_client_to_server = 123456;
    s->bytes_server_to_client = 18446744073709551615ull; /* no truncation of big counters */
    s->protocol_errors = 6;
    s->untracked_statements = 8;
    s->skipped_messages = 16383;
    s->tracker_bytes = 65536;
    s->tracker_limit_hits = 3;
    metrics_histogram_observe(&s->statement_duration, 300);
    metrics_histogram_observe(&s->statement_duration, 700);
    metrics_histogram_observe(&s->statement_duration, 30000);
    metrics_histogram_observe(&s->statement_duration, 12000000);
}

static const char sample_text[] =
    "# HELP pgtally_build_info pgtally version running (always 1).\n"
    "# TYPE pgtally_build_info gauge\n"
    "pgtally_build_info{version=\"" PGTALLY_VERSION "\"} 1\n"
    "# HELP pgtally_client_connections Client connections open now.\n"
    "# TYPE pgtally_client_connections gauge\n"
    "pgtally_client_connections 3\n"
    "# HELP pgtally_client_connections_accepted_total Client connections accepted.\n"
    "# TYPE pgtally_client_connections_accepted_total counter\n"
    "pgtally_client_connections_accepted_total 120\n"
    "# HELP pgtally_client_connections_rejected_total Client connections refused (connection "
    "limit or shutting down).\n"
    "# TYPE pgtally_client_connections_rejected_total counter\n"
    "pgtally_client_connections_rejected_total 2\n"
    "# HELP pgtally_server_connections Connections to the upstream server open now.\n"
    "# TYPE pgtally_server_connections gauge\n"
    "pgtally_server_connections 3\n"
    "# HELP pgtally_server_connect_failures_total Upstream connection attempts that failed.\n"
    "# TYPE pgtally_server_connect_failures_total counter\n"
    "pgtally_server_connect_failures_total 1\n"
    "# HELP pgtally_statements_total Statements completed and recorded.\n"
    "# TYPE pgtally_statements_total counter\n"
    "pgtally_statements_total 4567\n"
    "# HELP pgtally_requests_total Requests finalized (grouped statements handed to the report "
    "store).\n"
    "# TYPE pgtally_requests_total counter\n"
    "pgtally_requests_total 89\n"
    "# HELP pgtally_findings_total Findings in finalized requests, by kind.\n"
    "# TYPE pgtally_findings_total counter\n"
    "pgtally_findings_total{kind=\"n_plus_one\"} 7\n"
    "pgtally_findings_total{kind=\"duplicate\"} 5\n"
    "pgtally_findings_total{kind=\"overfetch\"} 1\n"
    "# HELP pgtally_dropped_records_total Records dropped because a bound was hit or a write "
    "failed, by what.\n"
    "# TYPE pgtally_dropped_records_total counter\n"
    "pgtally_dropped_records_total{what=\"request\"} 4\n"
    "pgtally_dropped_records_total{what=\"statement\"} 40\n"
    "pgtally_dropped_records_total{what=\"fingerprint\"} 2\n"
    "pgtally_dropped_records_total{what=\"query_log_line\"} 0\n"
    "# HELP pgtally_bytes_total Bytes relayed, by direction.\n"
    "# TYPE pgtally_bytes_total counter\n"
    "pgtally_bytes_total{direction=\"client_to_server\"} 123456\n"
    "pgtally_bytes_total{direction=\"server_to_client\"} 18446744073709551615\n"
    "# HELP pgtally_protocol_errors_total Connections ended because a peer broke the wire "
    "protocol.\n"
    "# TYPE pgtally_protocol_errors_total counter\n"
    "pgtally_protocol_errors_total 6\n"
    "# HELP pgtally_untracked_statements_total Requests the tracker could not attribute "
    "because a bound was hit.\n"
    "# TYPE pgtally_untracked_statements_total counter\n"
    "pgtally_untracked_statements_total 8\n"
    "# HELP pgtally_statement_duration_seconds Statement latency seen by the proxy (first "
    "message to completion).\n"
    "# TYPE pgtally_statement_duration_seconds histogram\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.0005\"} 1\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.001\"} 2\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.0025\"} 2\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.005\"} 2\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.01\"} 2\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.025\"} 2\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.05\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.1\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.25\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"0.5\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"1\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"2.5\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"5\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"10\"} 3\n"
    "pgtally_statement_duration_seconds_bucket{le=\"+Inf\"} 4\n"
    "pgtally_statement_duration_seconds_sum 12.031000\n"
    "pgtally_statement_duration_seconds_count 4\n"
    "# HELP pgtally_skipped_messages_total Client messages the server skipped until Sync after "
    "an error (not tracked).\n"
    "# TYPE pgtally_skipped_messages_total counter\n"
    "pgtally_skipped_messages_total 16383\n"
    "# HELP pgtally_tracker_bytes Bytes of SQL texts and names kept for tracking, over all "
    "connections.\n"
    "# TYPE pgtally_tracker_bytes gauge\n"
    "pgtally_tracker_bytes 65536\n"
    "# HELP pgtally_tracker_limit_hits_total Times --max-tracked-bytes was reached and a "
    "statement or name went untracked.\n"
    "# TYPE pgtally_tracker_limit_hits_total counter\n"
    "pgtally_tracker_limit_hits_total 3\n";

TEST(render_exact_text)
{
    MetricsSnapshot s;
    sample_snapshot(&s);
    size_t len = 0;
    char *text = metrics_render(&s, &len);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK_EQ_INT(len, strlen(text));
    /* Line by line first, so a mismatch names the line. */
    const char *g = text, *e = sample_text;
    while (*g && *e) {
        const char *gn = strchr(g, '\n'), *en = strchr(e, '\n');
        if (!gn || !en)
            break;
        CHECK_EQ_MEM(g, (size_t)(gn - g), strndupa(e, (size_t)(en - e)));
        g = gn + 1;
        e = en + 1;
    }
    CHECK_EQ_STR(text, sample_text);
    free(text);
}

TEST(render_zero_snapshot_has_every_family)
{
    MetricsSnapshot s;
    memset(&s, 0, sizeof s);
    size_t len;
    char *text = metrics_render(&s, &len);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK(strstr(text, "pgtally_statement_duration_seconds_bucket{le=\"+Inf\"} 0\n") != NULL);
    CHECK(strstr(text, "pgtally_statement_duration_seconds_sum 0.000000\n") != NULL);
    CHECK(strstr(text, "pgtally_findings_total{kind=\"n_plus_one\"} 0\n") != NULL);
    CHECK(len > 0 && text[len - 1] == '\n');
    int types = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL; p++)
        types++;
    CHECK_EQ_INT(types, 17);
    free(text);
}

/* ---- HTTP on a real socket ---------------------------------------------------------------- */

#define RESPONSE_MAX 65536

typedef struct Client {
    int port;
    const char *request; /* NULL: connect and send nothing */
    size_t request_len;  /* 0: strlen(request) */
    int delay_ms;        /* before connecting */
    int patience_ms;     /* how long to wait for the server; 0: 5 s */
    char response[RESPONSE_MAX];
    size_t response_len;
    bool connected;
    bool closed;    /* the server closed (EOF or reset), rather than our own timeout */
    double seconds; /* from connect to close */
    atomic_int *done;
    struct ev_loop *loop;
    ev_async *wake;
} Client;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *client_main(void *arg)
{
    Client *c = arg;
    if (c->delay_ms)
        usleep((useconds_t)c->delay_ms * 1000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int patience_ms = c->patience_ms ? c->patience_ms : 5000;
    struct timeval tv = {.tv_sec = patience_ms / 1000, .tv_usec = (patience_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double start = now_seconds();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        c->connected = true;
        if (c->request) {
            size_t len = c->request_len ? c->request_len : strlen(c->request);
            /* A request the server refuses may be cut off mid-send: that is fine. */
            if (send(fd, c->request, len, MSG_NOSIGNAL) < 0)
                c->closed = true;
        }
        while (!c->closed && c->response_len < RESPONSE_MAX) {
            ssize_t n = recv(fd, c->response + c->response_len, RESPONSE_MAX - c->response_len, 0);
            if (n > 0) {
                c->response_len += (size_t)n;
                continue;
            }
            c->closed = n == 0 || errno == ECONNRESET;
            break;
        }
    }
    c->seconds = now_seconds() - start;
    close(fd);
    atomic_fetch_add(c->done, 1);
    ev_async_send(c->loop, c->wake);
    return NULL;
}

typedef struct Harness {
    atomic_int done;
    int expected;
    int source_calls;
} Harness;

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    Harness *h = w->data;
    if (atomic_load(&h->done) >= h->expected)
        ev_break(loop, EVBREAK_ALL);
}

static void on_safety(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void test_source(void *ctx, MetricsSnapshot *out)
{
    Harness *h = ctx;
    h->source_calls++;
    sample_snapshot(out);
}

/* Serves the clients on a fresh loop until all of them are done; then stops the server. */
static void run_clients(Client *clients, int n, double timeout, int max_connections, Harness *h)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    memset(h, 0, sizeof *h);
    h->expected = n;
    Metrics *m = metrics_start(loop, "127.0.0.1:0", test_source, h, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        printf("  metrics_start: %s\n", err);
        ev_loop_destroy(loop);
        return;
    }
    metrics_set_limits(m, timeout, max_connections);
    ev_async wake;
    ev_async_init(&wake, on_wake);
    wake.data = h;
    ev_async_start(loop, &wake);
    ev_timer safety;
    ev_timer_init(&safety, on_safety, 10., 0.);
    ev_timer_start(loop, &safety);

    pthread_t threads[8];
    for (int i = 0; i < n; i++) {
        clients[i].port = metrics_port(m);
        clients[i].done = &h->done;
        clients[i].loop = loop;
        clients[i].wake = &wake;
        pthread_create(&threads[i], NULL, client_main, &clients[i]);
    }
    ev_run(loop, 0);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    CHECK_EQ_INT(atomic_load(&h->done), n);
    metrics_stop(m);
    ev_timer_stop(loop, &safety);
    ev_async_stop(loop, &wake);
    ev_loop_destroy(loop);
}

static Client *client_new(const char *request)
{
    Client *c = calloc(1, sizeof *c);
    c->request = request;
    return c;
}

/* The response's head (up to the blank line) and body. */
static bool split_response(const Client *c, const char **body, size_t *body_len)
{
    const char *end = memmem(c->response, c->response_len, "\r\n\r\n", 4);
    if (!end)
        return false;
    *body = end + 4;
    *body_len = c->response_len - (size_t)(end + 4 - c->response);
    return true;
}

TEST(http_get_metrics)
{
    Client *c = client_new("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    Harness h;
    run_clients(c, 1, 0, 0, &h);
    CHECK(c->closed);
    CHECK_EQ_INT(h.source_calls, 1);
    const char *body;
    size_t body_len;
    CHECK(split_response(c, &body, &body_len));
    if (!split_response(c, &body, &body_len)) {
        free(c);
        return;
    }
    CHECK(strncmp(c->response, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(memmem(c->response, (size_t)(body - c->response),
                 "\r\nContent-Type: text/plain; version=0.0.4", 41) != NULL);
    CHECK(memmem(c->response, (size_t)(body - c->response), "\r\nConnection: close\r\n", 21) !=
          NULL);
    char length[64];
    snprintf(length, sizeof length, "\r\nContent-Length: %zu\r\n", strlen(sample_text));
    CHECK(memmem(c->response, (size_t)(body - c->response), length, strlen(length)) != NULL);
    CHECK_EQ_MEM(body, body_len, sample_text);
    free(c);
}

TEST(http_query_string_and_bare_newlines)
{
    Client *c = client_new("GET /metrics?format=text HTTP/1.0\n\n");
    Harness h;
    run_clients(c, 1, 0, 0, &h);
    CHECK(strncmp(c->response, "HTTP/1.1 200 OK\r\n", 17) == 0);
    free(c);
}

TEST(http_other_paths_are_404)
{
    static const char *const requests[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET /metricsx HTTP/1.1\r\n\r\n",
        "GET /metrics/ HTTP/1.1\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    };
    Client *all = calloc(4, sizeof *all);
    for (int i = 0; i < 4; i++)
        all[i].request = requests[i];
    Harness h;
    run_clients(all, 4, 0, 0, &h);
    for (int i = 0; i < 4; i++) {
        CHECK(all[i].closed);
        CHECK(all[i].response_len >= 24 &&
              strncmp(all[i].response, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    }
    free(all);
    CHECK_EQ_INT(h.source_calls, 0);
}

TEST(http_garbage_is_400)
{
    Client *c = client_new("hello\r\n\r\n");
    Harness h;
    run_clients(c, 1, 0, 0, &h);
    CHECK(strncmp(c->response, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    free(c);
}

TEST(http_oversized_request_is_closed)
{
    char *big = malloc(9000);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(big + 26, 'a', 9000 - 26);
    Client *c = client_new(big);
    c->request_len = 9000;
    Harness h;
    run_clients(c, 1, 0, 0, &h);
    CHECK(c->closed);
    CHECK_EQ_INT(c->response_len, 0);
    CHECK_EQ_INT(h.source_calls, 0);
    free(c);
    free(big);
}

TEST(http_slow_client_is_closed_at_the_deadline)
{
    Client *c = client_new("GET /metr"); /* never finishes its request */
    Harness h;
    run_clients(c, 1, 0.2, 0, &h);
    CHECK(c->closed);
    CHECK_EQ_INT(c->response_len, 0);
    CHECK(c->seconds >= 0.15 && c->seconds < 3.0);
    free(c);
}

TEST(http_idle_connections_never_keep_a_scrape_out)
{
    /* One slot and a request-head deadline far beyond every client's patience: seven idle
     * clients take the slot in turn, and the scrape behind them must still be answered before
     * it gives up. Each idle client is closed (evicted) by the server, not by its own timeout. */
    enum { IDLE = 7 };
    Client *c = calloc(IDLE + 1, sizeof *c);
    for (int i = 0; i < IDLE; i++)
        c[i].patience_ms = 3000;
    c[IDLE].request = "GET /metrics HTTP/1.1\r\n\r\n";
    c[IDLE].delay_ms = 100;
    c[IDLE].patience_ms = 2000;
    Harness h;
    run_clients(c, IDLE + 1, 30, 1, &h);
    for (int i = 0; i < IDLE; i++) {
        CHECK(c[i].closed);
        CHECK_EQ_INT(c[i].response_len, 0);
    }
    CHECK(c[IDLE].closed);
    CHECK(strncmp(c[IDLE].response, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_EQ_INT(h.source_calls, 1);
    free(c);
}

TEST(start_rejects_bad_address)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    CHECK(metrics_start(loop, "no-port-here", NULL, NULL, err, sizeof err) == NULL);
    CHECK(strncmp(err, "metrics: ", 9) == 0);
    Metrics *first = metrics_start(loop, "127.0.0.1:0", NULL, NULL, err, sizeof err);
    CHECK(first != NULL);
    if (first) {
        char spec[64];
        snprintf(spec, sizeof spec, "127.0.0.1:%d", metrics_port(first));
        err[0] = 0;
        CHECK(metrics_start(loop, spec, NULL, NULL, err, sizeof err) == NULL); /* in use */
        CHECK(strstr(err, "cannot listen on") != NULL);
        metrics_stop(first);
    }
    metrics_stop(NULL);
    ev_loop_destroy(loop);
}

TEST(stop_with_open_connections)
{
    /* The client idles; the loop is stopped from outside while the scrape is open. */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256];
    Metrics *m = metrics_start(loop, "127.0.0.1:0", NULL, NULL, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        ev_loop_destroy(loop);
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)metrics_port(m))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT); /* accept it */
    metrics_stop(m);                /* closes the scrape; ASan checks nothing leaks */
    char byte;
    CHECK(recv(fd, &byte, 1, 0) <= 0);
    close(fd);
    ev_loop_destroy(loop);
}

int main(void)
{
    RUN(histogram_bounds_are_inclusive);
    RUN(histogram_every_bucket);
    RUN(histogram_negative_duration_counts_as_zero);
    RUN(render_exact_text);
    RUN(render_zero_snapshot_has_every_family);
    RUN(http_get_metrics);
    RUN(http_query_string_and_bare_newlines);
    RUN(http_other_paths_are_404);
    RUN(http_garbage_is_400);
    RUN(http_oversized_request_is_closed);
    RUN(http_slow_client_is_closed_at_the_deadline);
    RUN(http_idle_connections_never_keep_a_scrape_out);
    RUN(start_rejects_bad_address);
    RUN(stop_with_open_connections);
    return TESTLIB_FINISH();
}
