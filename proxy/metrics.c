/* proxy/metrics — see metrics.h.
 *
 * A scrape connection lives through READING (collect the request head into a fixed buffer)
 * -> WRITING (the whole response is rendered at once, then sent as the socket takes it) ->
 * DRAINING (our side shut down; read and discard until the client closes, so unread request
 * bytes do not turn our close into a RST that could cut the response short) -> closed.
 * A short deadline covers READING and a longer one the rest: a slow or silent client is
 * simply closed. Every pending connection is accepted; when all slots are taken, the oldest
 * connection still waiting for its request is closed to make room, so no number of idle
 * peers can keep a scrape out (a bounded slot count that refused or queued new connections
 * could be held by a handful of sockets that never send a byte). */
#include "proxy/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include "proxy/address.h"

#define METRICS_REQUEST_MAX 8192 /* a scrape's request head is a few hundred bytes */
/* A scraper sends its request head with the connection; half a second is generous even over
 * a slow link, and short enough that peers sending nothing free their slot quickly. */
#define METRICS_DEFAULT_HEAD_TIMEOUT 0.5
#define METRICS_RESPONSE_TIMEOUT 5.0 /* to take the response (and close) once it is sent */
#define METRICS_DRAIN_MAX 65536      /* bytes a peer may send after its request was answered */
/* Each connection costs one file descriptor and at most ~12 KiB; evicting the oldest idle one
 * keeps the endpoint open whatever the count, so this only bounds what idle peers cost. */
#define METRICS_DEFAULT_MAX_CONNECTIONS 64
#define METRICS_ACCEPTS_PER_WAKEUP 64
#define METRICS_ACCEPT_RETRY 0.1    /* seconds to pause accepting when out of file descriptors */
#define METRICS_TEXT_MAX (1u << 20) /* the exposition is ~4 KB; a bound, not a goal */
#define METRICS_TEXT_INITIAL 4096
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- histogram ---------------------------------------------------------------------------- */

static const struct {
    uint64_t le_us;
    const char *le;
} histogram_bounds[METRICS_HISTOGRAM_BUCKETS] = {
    {500, "0.0005"},  {1000, "0.001"},  {2500, "0.0025"}, {5000, "0.005"},  {10000, "0.01"},
    {25000, "0.025"}, {50000, "0.05"},  {100000, "0.1"},  {250000, "0.25"}, {500000, "0.5"},
    {1000000, "1"},   {2500000, "2.5"}, {5000000, "5"},   {10000000, "10"},
};

void metrics_histogram_observe(MetricsHistogram *h, int64_t duration_us)
{
    uint64_t d = duration_us > 0 ? (uint64_t)duration_us : 0;
    size_t i = 0;
    /* A fixed 14-step scan: bounded, branch-predictable, and no table to keep in sync. */
    while (i < METRICS_HISTOGRAM_BUCKETS && d > histogram_bounds[i].le_us)
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_us += d;
}

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct TextBuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* out of memory or over METRICS_TEXT_MAX: the render is abandoned */
} TextBuf;

static void text_printf(TextBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(TextBuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        if (cap > METRICS_TEXT_MAX) {
            b->failed = true;
            return;
        }
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->failed = true;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
}

static void text_family(TextBuf *b, const char *name, const char *type, const char *help)
{
    text_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void text_scalar(TextBuf *b, const char *name, const char *type, const char *help,
                        uint64_t value)
{
    text_family(b, name, type, help);
    text_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

static void render_histogram(TextBuf *b, const char *name, const char *help,
                             const MetricsHistogram *h)
{
    text_family(b, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < METRICS_HISTOGRAM_BUCKETS; i++) {
        cumulative += h->buckets[i];
        text_printf(b, "%s_bucket{le=\"%s\"} %llu\n", name, histogram_bounds[i].le,
                    (unsigned long long)cumulative);
    }
    /* +Inf equals _count by definition; printing count keeps them consistent even if a
     * source filled the struct by hand. */
    text_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    /* Microseconds to seconds with integer arithmetic: exact, no float rounding. */
    text_printf(b, "%s_sum %llu.%06llu\n", name, (unsigned long long)(h->sum_us / 1000000),
                (unsigned long long)(h->sum_us % 1000000));
    text_printf(b, "%s_count %llu\n", name, (unsigned long long)h->count);
}

char *metrics_render(const MetricsSnapshot *s, size_t *len)
{
    static const char *const finding_kinds[METRICS_FINDING_KINDS] = {"n_plus_one", "duplicate",
                                                                     "overfetch"};
    static const char *const drop_kinds[METRICS_DROP_KINDS] = {"request", "statement",
                                                               "fingerprint", "query_log_line"};
    TextBuf b = {.data = malloc(METRICS_TEXT_INITIAL), .cap = METRICS_TEXT_INITIAL};
    if (!b.data)
        return NULL;
    b.data[0] = 0;

    text_family(&b, "pgtally_build_info", "gauge", "pgtally version running (always 1).");
    text_printf(&b, "pgtally_build_info{version=\"%s\"} 1\n", PGTALLY_VERSION);
    text_scalar(&b, "pgtally_client_connections", "gauge", "Client connections open now.",
                s->client_connections);
    text_scalar(&b, "pgtally_client_connections_accepted_total", "counter",
                "Client connections accepted.", s->client_connections_accepted);
    text_scalar(&b, "pgtally_client_connections_rejected_total", "counter",
                "Client connections refused (connection limit or shutting down).",
                s->client_connections_rejected);
    text_scalar(&b, "pgtally_server_connections", "gauge",
                "Connections to the upstream server open now.", s->server_connections);
    text_scalar(&b, "pgtally_server_connect_failures_total", "counter",
                "Upstream connection attempts that failed.", s->server_connect_failures);
    text_scalar(&b, "pgtally_statements_total", "counter", "Statements completed and recorded.",
                s->statements);
    text_scalar(&b, "pgtally_requests_total", "counter",
                "Requests finalized (grouped statements handed to the report store).", s->requests);
    text_family(&b, "pgtally_findings_total", "counter",
                "Findings in finalized requests, by kind.");
    for (int k = 0; k < METRICS_FINDING_KINDS; k++)
        text_printf(&b, "pgtally_findings_total{kind=\"%s\"} %llu\n", finding_kinds[k],
                    (unsigned long long)s->findings[k]);
    text_family(&b, "pgtally_dropped_records_total", "counter",
                "Records dropped because a bound was hit or a write failed, by what.");
    for (int k = 0; k < METRICS_DROP_KINDS; k++)
        text_printf(&b, "pgtally_dropped_records_total{what=\"%s\"} %llu\n", drop_kinds[k],
                    (unsigned long long)s->dropped[k]);
    text_family(&b, "pgtally_bytes_total", "counter", "Bytes relayed, by direction.");
    text_printf(&b, "pgtally_bytes_total{direction=\"client_to_server\"} %llu\n",
                (unsigned long long)s->bytes_client_to_server);
    text_printf(&b, "pgtally_bytes_total{direction=\"server_to_client\"} %llu\n",
                (unsigned long long)s->bytes_server_to_client);
    text_scalar(&b, "pgtally_protocol_errors_total", "counter",
                "Connections ended because a peer broke the wire protocol.", s->protocol_errors);
    text_scalar(&b, "pgtally_untracked_statements_total", "counter",
                "Requests the tracker could not attribute because a bound was hit.",
                s->untracked_statements);
    if (s->has_store) {
        text_scalar(&b, "pgtally_store_up", "gauge",
                    "1 while the report store is reachable, 0 while records wait for it.",
                    s->store_up ? 1 : 0);
        text_scalar(&b, "pgtally_store_reconnects_total", "counter",
                    "Connections to the report store made again after it went away.",
                    s->store_reconnects);
        text_scalar(&b, "pgtally_store_queued_records", "gauge",
                    "Records waiting in the report store's bounded queue.", s->store_queued);
    }
    render_histogram(&b, "pgtally_statement_duration_seconds",
                     "Statement latency seen by the proxy (first message to completion).",
                     &s->statement_duration);
    text_scalar(&b, "pgtally_skipped_messages_total", "counter",
                "Client messages the server skipped until Sync after an error (not tracked).",
                s->skipped_messages);
    text_scalar(&b, "pgtally_tracker_bytes", "gauge",
                "Bytes of SQL texts and names kept for tracking, over all connections.",
                s->tracker_bytes);
    text_scalar(&b, "pgtally_tracker_limit_hits_total", "counter",
                "Times --max-tracked-bytes was reached and a statement or name went untracked.",
                s->tracker_limit_hits);

    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* ---- HTTP server -------------------------------------------------------------------------- */

typedef enum ScrapeState {
    SCRAPE_READING,
    SCRAPE_WRITING,
    SCRAPE_DRAINING,
} ScrapeState;

typedef struct Scrape {
    Metrics *owner;
    struct Scrape *prev; /* accept order: m->oldest ... m->newest */
    struct Scrape *next;
    int fd;
    ScrapeState state;
    ev_io io;
    ev_timer deadline;
    char *response; /* whole response, head and body */
    size_t response_len;
    size_t response_sent;
    size_t drained; /* bytes discarded while DRAINING */
    size_t request_len;
    char request[METRICS_REQUEST_MAX];
} Scrape;

struct Metrics {
    struct ev_loop *loop;
    int listen_fd;
    int port;
    ev_io accept_watcher;
    ev_timer accept_retry; /* out of file descriptors: accepting pauses briefly */
    bool stopping;
    MetricsSourceFn source;
    void *source_ctx;
    Scrape *oldest;
    Scrape *newest;
    int n_scrapes;
    int max_scrapes;
    double head_timeout;
};

static void scrape_close(Scrape *c)
{
    Metrics *m = c->owner;
    ev_io_stop(m->loop, &c->io);
    ev_timer_stop(m->loop, &c->deadline);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        m->oldest = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        m->newest = c->prev;
    m->n_scrapes--;
    free(c->response);
    free(c);
}

/* Makes room for a new connection. A connection still waiting for its request head goes
 * first (an idle or trickling peer), then one whose response is out (it only waits for the
 * peer's close), and only then the oldest of all. In accept order, so the victim is the one
 * that has had the most time. A real scrape sends its request with the connection and is
 * answered at once, so it is never the one waiting. */
static void evict_one(Metrics *m)
{
    static const ScrapeState order[] = {SCRAPE_READING, SCRAPE_DRAINING, SCRAPE_WRITING};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        for (Scrape *c = m->oldest; c; c = c->next) {
            if (c->state == order[i]) {
                scrape_close(c);
                return;
            }
        }
    }
}

static void scrape_set_deadline(Scrape *c, double seconds)
{
    Metrics *m = c->owner;
    ev_timer_stop(m->loop, &c->deadline);
    ev_timer_set(&c->deadline, seconds, 0.);
    ev_timer_start(m->loop, &c->deadline);
}

/* Builds the whole response; returns false when out of memory. */
static bool scrape_respond(Scrape *c, int status, const char *reason, const char *content_type,
                           const char *body, size_t body_len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, content_type, body_len);
    if (n < 0 || (size_t)n >= sizeof head)
        return false;
    c->response = malloc((size_t)n + body_len);
    if (!c->response)
        return false;
    memcpy(c->response, head, (size_t)n);
    memcpy(c->response + n, body, body_len);
    c->response_len = (size_t)n + body_len;
    c->response_sent = 0;
    return true;
}

static bool scrape_respond_text(Scrape *c, int status, const char *reason, const char *text)
{
    return scrape_respond(c, status, reason, "text/plain; charset=utf-8", text, strlen(text));
}

/* Decides the response from the request line. Returns false when out of memory. */
static bool scrape_handle(Scrape *c)
{
    const char *line = c->request;
    const char *sp1 = memchr(line, ' ', c->request_len);
    const char *eol = memchr(line, '\n', c->request_len);
    if (!sp1 || !eol || sp1 > eol)
        return scrape_respond_text(c, 400, "Bad Request", "bad request\n");
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return scrape_respond_text(c, 400, "Bad Request", "bad request\n");
    size_t path_len = (size_t)(sp2 - target);
    const char *query = memchr(target, '?', path_len);
    if (query)
        path_len = (size_t)(query - target); /* scrapers may add parameters; none are used */
    bool is_get = sp1 - line == 3 && memcmp(line, "GET", 3) == 0;
    bool is_metrics = path_len == 8 && memcmp(target, "/metrics", 8) == 0;
    if (!is_get || !is_metrics)
        return scrape_respond_text(c, 404, "Not Found", "not found; try GET /metrics\n");

    MetricsSnapshot snapshot;
    memset(&snapshot, 0, sizeof snapshot);
    if (c->owner->source)
        c->owner->source(c->owner->source_ctx, &snapshot);
    size_t len;
    char *text = metrics_render(&snapshot, &len);
    if (!text)
        return scrape_respond_text(c, 500, "Internal Server Error", "out of memory\n");
    bool ok = scrape_respond(c, 200, "OK", METRICS_CONTENT_TYPE, text, len);
    free(text);
    return ok;
}

/* The end of the request head: an empty line (CRLF CRLF, or bare LF LF from hand-typed
 * requests). A GET has no body, so nothing after it matters. Only bytes from `from` on are
 * new, so a client trickling one byte at a time costs linear time, not quadratic. */
static bool request_complete(const Scrape *c, size_t from)
{
    for (size_t i = from > 3 ? from - 3 : 1; i < c->request_len; i++) {
        if (c->request[i] != '\n')
            continue;
        if (c->request[i - 1] == '\n')
            return true;
        if (i >= 3 && c->request[i - 1] == '\r' && c->request[i - 2] == '\n')
            return true;
    }
    return false;
}

static void scrape_switch(Scrape *c, ScrapeState state, int events)
{
    Metrics *m = c->owner;
    c->state = state;
    ev_io_stop(m->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(m->loop, &c->io);
}

/* Sends what the socket takes, never waiting for more room: a peer that does not read is
 * closed at its deadline or evicted. Returns false when the connection was closed. */
static bool scrape_write(Scrape *c)
{
    while (c->response_sent < c->response_len) {
        ssize_t n = send(c->fd, c->response + c->response_sent, c->response_len - c->response_sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            scrape_close(c);
            return false;
        }
        c->response_sent += (size_t)n;
    }
    free(c->response);
    c->response = NULL;
    shutdown(c->fd, SHUT_WR);
    scrape_switch(c, SCRAPE_DRAINING, EV_READ);
    return true;
}

/* Reads what is there. Returns false when the connection was closed. */
static bool scrape_read(Scrape *c)
{
    for (;;) {
        char discard[512];
        bool draining = c->state == SCRAPE_DRAINING;
        char *into = draining ? discard : c->request + c->request_len;
        size_t room = draining ? sizeof discard : METRICS_REQUEST_MAX - c->request_len;
        if (room == 0) { /* head larger than the buffer: not a scrape */
            scrape_close(c);
            return false;
        }
        ssize_t n = recv(c->fd, into, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) { /* EOF or error: either way this connection is over */
            scrape_close(c);
            return false;
        }
        if (draining) {
            /* The request was answered; a peer still sending is not a scraper. */
            c->drained += (size_t)n;
            if (c->drained > METRICS_DRAIN_MAX) {
                scrape_close(c);
                return false;
            }
            continue;
        }
        size_t from = c->request_len;
        c->request_len += (size_t)n;
        if (!request_complete(c, from))
            continue;
        if (!scrape_handle(c)) {
            scrape_close(c);
            return false;
        }
        scrape_set_deadline(c, METRICS_RESPONSE_TIMEOUT);
        scrape_switch(c, SCRAPE_WRITING, EV_WRITE);
        return scrape_write(c);
    }
}

static void on_scrape_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Scrape *c = w->data;
    if (c->state == SCRAPE_WRITING)
        scrape_write(c);
    else
        scrape_read(c);
}

static void on_scrape_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    scrape_close(w->data);
}

static void scrape_add(Metrics *m, int fd)
{
    Scrape *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->owner = m;
    c->fd = fd;
    c->state = SCRAPE_READING;
    ev_io_init(&c->io, on_scrape_io, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->deadline, on_scrape_deadline, m->head_timeout, 0.);
    c->deadline.data = c;
    c->prev = m->newest;
    if (c->prev)
        c->prev->next = c;
    else
        m->oldest = c;
    m->newest = c;
    m->n_scrapes++;
    ev_io_start(m->loop, &c->io);
    ev_timer_start(m->loop, &c->deadline);
    /* A scraper sends its request right after connecting: it is often here already, and
     * answering now means no flood of later connections can evict it first. */
    scrape_read(c);
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Metrics *m = w->data;
    if (!m->stopping)
        ev_io_start(loop, &m->accept_watcher);
}

/* Accepts every pending connection (a batch per wakeup, so clients keep their turn); over the
 * bound, the least useful open one is closed rather than the new one refused: connections
 * that send nothing can never hold the endpoint. */
static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    Metrics *m = w->data;
    for (int i = 0; i < METRICS_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listening socket stays readable: pause rather than spin. */
                ev_io_stop(loop, &m->accept_watcher);
                ev_timer_stop(loop, &m->accept_retry);
                ev_timer_set(&m->accept_retry, METRICS_ACCEPT_RETRY, 0.);
                ev_timer_start(loop, &m->accept_retry);
            }
            break; /* EAGAIN, or a transient error: the watcher fires again if it persists */
        }
        if (m->n_scrapes >= m->max_scrapes)
            evict_one(m);
        scrape_add(m, fd);
    }
}

Metrics *metrics_start(struct ev_loop *loop, const char *listen_host_port, MetricsSourceFn source,
                       void *source_ctx, char *err, size_t err_len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char why[256];
    if (!address_listen(listen_host_port, &addr, &addr_len, why, sizeof why)) {
        snprintf(err, err_len, "metrics: %s", why);
        return NULL;
    }
    Metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_len, "metrics: out of memory");
        return NULL;
    }
    m->loop = loop;
    m->source = source;
    m->source_ctx = source_ctx;
    m->max_scrapes = METRICS_DEFAULT_MAX_CONNECTIONS;
    m->head_timeout = METRICS_DEFAULT_HEAD_TIMEOUT;
    m->listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->listen_fd < 0) {
        snprintf(err, err_len, "metrics: socket: %s", strerror(errno));
        goto fail;
    }
    int one = 1;
    setsockopt(m->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(m->listen_fd, (struct sockaddr *)&addr, addr_len) < 0 ||
        listen(m->listen_fd, SOMAXCONN) < 0) {
        snprintf(err, err_len, "metrics: cannot listen on %s: %s", listen_host_port,
                 strerror(errno));
        goto fail;
    }
    m->port = address_bound_port(m->listen_fd);
    if (m->port < 0) {
        snprintf(err, err_len, "metrics: getsockname: %s", strerror(errno));
        goto fail;
    }
    ev_io_init(&m->accept_watcher, on_accept, m->listen_fd, EV_READ);
    m->accept_watcher.data = m;
    ev_timer_init(&m->accept_retry, on_accept_retry, METRICS_ACCEPT_RETRY, 0.);
    m->accept_retry.data = m;
    ev_io_start(loop, &m->accept_watcher);
    return m;

fail:
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    free(m);
    return NULL;
}

void metrics_stop(Metrics *m)
{
    if (!m)
        return;
    m->stopping = true;
    while (m->oldest)
        scrape_close(m->oldest);
    ev_io_stop(m->loop, &m->accept_watcher);
    ev_timer_stop(m->loop, &m->accept_retry);
    close(m->listen_fd);
    free(m);
}

int metrics_port(const Metrics *m)
{
    return m->port;
}

void metrics_set_limits(Metrics *m, double head_timeout_seconds, int max_connections)
{
    if (head_timeout_seconds > 0)
        m->head_timeout = head_timeout_seconds;
    if (max_connections > 0)
        m->max_scrapes = max_connections;
}
