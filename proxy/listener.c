/* proxy/listener — see listener.h. */
#include "proxy/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "protocol/pgwire.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "report/view/serve.h"
#include "proxy/querylog.h"
#include "proxy/recorder.h"
#include "proxy/session.h"
#include "proxy/upstream.h"

#define SCRATCH_SIZE (128 * 1024) /* one read; large results stream in few syscalls */
#define MAX_FREE_BUFFERS 16
/* The io_uring path's receive buffers: 2 MiB in all (each is touched once traffic has cycled
 * through the ring). 128 cover 16 sessions streaming at their bound at once; beyond that
 * receives wait for buffers to come back. */
#define URING_BUFFERS 128
#define URING_BUFFER_SIZE (16 * 1024)
#define ACCEPTS_PER_WAKEUP 64 /* bound work per callback so clients are not starved */
#define LOG_FLUSH_INTERVAL 0.2
#define ACCEPT_RETRY_DELAY 0.1 /* after EMFILE: let connections close before retrying */
#define TICK_INTERVAL 0.1      /* idle-request sweep */
#define MAX_REFUSING 64 /* refused clients held at once to be told why after their SSL answer */
#define REFUSAL_LOG_INTERVAL 1.0 /* refusals are summed into one log line per interval */

typedef struct Listener {
    ProxyContext ctx;
    Upstream upstream;
    UpstreamTls upstream_tls;
    int listen_fd;
    ev_io accept_watcher;
    ev_timer accept_retry;
    ev_signal sigterm;
    ev_signal sigint;
    ev_signal sigusr1;
    ev_signal sighup;
    ProxyConfig *config; /* the process-wide config (SIGHUP updates its reloadable part) */
    int argc;            /* the command line, for reloading */
    char **argv;
    ev_timer grace_timer;
    ev_timer flush_timer;
    ev_timer tick_timer;
    ev_timer refusal_log_timer; /* active while refusals were logged less than a second ago */
    uint64_t refusals_unlogged;
    QueryLog *query_log;
    Recorder *recorder;
    int exit_status; /* set up failed on a usage error: 2 rather than 1 */
    Metrics *metrics;
    Serve *serve; /* --serve: the report's pages, on a thread of their own */
    MetricsHistogram statement_duration;
    bool draining;
    /* Every SIGHUP change so far, a JSON array kept for runs.settings (at most
     * MAX_SETTINGS_CHANGES entries: the earliest are kept; later changes still update the
     * stored values, without an entry). */
    char *settings_changes;
    size_t n_settings_changes;
} Listener;

#define MAX_SETTINGS_CHANGES 64

bool listener_parse_address(const char *spec, struct sockaddr_storage *addr, socklen_t *len,
                            char *err, size_t err_len)
{
    char host[256];
    const char *port;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host) {
            snprintf(err, err_len, "invalid listen address \"%s\" (expected [ADDR]:PORT)", spec);
            return false;
        }
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = 0;
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof host) {
            snprintf(err, err_len, "invalid listen address \"%s\" (expected HOST:PORT)", spec);
            return false;
        }
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        port = colon + 1;
    }
    char *end;
    long port_number = strtol(port, &end, 10);
    if (!*port || *end || port_number < 0 || port_number > 65535) {
        snprintf(err, err_len, "invalid port in listen address \"%s\" (0-65535)", spec);
        return false;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "invalid listen address \"%s\": %s", spec, gai_strerror(rc));
        return false;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

/* Binds, without listening yet: a port in use fails here, before the report store creates a
 * run, while clients are still refused until everything is ready (listen_now, once the
 * signal watchers are in place). */
static int open_listen_socket(const char *spec, char *err, size_t err_len)
{
    struct sockaddr_storage addr;
    socklen_t len;
    if (!listener_parse_address(spec, &addr, &len, err, err_len))
        return -1;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, len) < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool listen_now(int fd, const char *spec, char *err, size_t err_len)
{
    if (listen(fd, 1024) == 0)
        return true;
    snprintf(err, err_len, "cannot listen on %s: %s", spec, strerror(errno));
    return false;
}

/* ---- accepting --------------------------------------------------------------------------------
 */

/* The fallback when MAX_REFUSING refused clients are already being answered: the error at
 * once. A client that sent an SSLRequest reads it as a failed SSL exchange, not as 53300. */
static void reject_client(int fd, const char *sqlstate, const char *message)
{
    uint8_t packet[512];
    size_t len = pgw_build_error(packet, sizeof packet, "FATAL", sqlstate, message);
    /* Best effort on a fresh socket whose buffer is empty: it fits. */
    if (send(fd, packet, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_line(LOG_DEBUG, 0, "could not send rejection: %s", strerror(errno));
    close(fd);
}

/* One line per second at most, with the count since the last one, so a flood of refused
 * clients is visible without flooding the log. */
static void log_refusals(Listener *l)
{
    if (l->refusals_unlogged == 0)
        return;
    log_line(LOG_WARN, 0,
             "refused %llu client(s) over --max-client-conn %zu (53300 too many clients)",
             (unsigned long long)l->refusals_unlogged, l->ctx.config->max_client_conn);
    l->refusals_unlogged = 0;
}

static void on_refusal_log_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Listener *l = w->data;
    if (l->refusals_unlogged == 0) {
        ev_timer_stop(loop, w); /* a quiet second: the next refusal is logged at once */
        return;
    }
    log_refusals(l);
}

static void note_refusal(Listener *l)
{
    l->refusals_unlogged++;
    if (!ev_is_active(&l->refusal_log_timer)) {
        log_refusals(l);
        ev_timer_again(l->ctx.loop, &l->refusal_log_timer);
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    Listener *l = w->data;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_line(LOG_WARN, 0, "accept: %s; pausing accepts", strerror(errno));
                ev_io_stop(loop, &l->accept_watcher);
                ev_timer_start(loop, &l->accept_retry);
            }
            return;
        }
        if (l->ctx.n_sessions >= l->ctx.config->max_client_conn) {
            l->ctx.stats.clients_rejected++;
            note_refusal(l);
            if (l->ctx.n_refusing < MAX_REFUSING)
                session_start_refused(&l->ctx, fd);
            else
                reject_client(fd, "53300", SESSION_TOO_MANY_CLIENTS);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        l->ctx.stats.clients_accepted++;
        session_start(&l->ctx, fd);
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Listener *l = w->data;
    if (!l->draining)
        ev_io_start(loop, &l->accept_watcher);
}

/* ---- events -> query log ------------------------------------------------------------------- */

static void emit_event(void *arg, const TrackerEvent *event)
{
    Listener *l = arg;
    if (l->query_log)
        querylog_write(l->query_log, event);
    metrics_histogram_observe(&l->statement_duration, event->end_us - event->start_us);
    if (l->recorder)
        recorder_event(l->recorder, event);
}

/* Statements no tracker could attribute: closed sessions' plus the open ones' so far. */
static uint64_t total_untracked(Listener *l)
{
    uint64_t n = l->ctx.stats.untracked;
    for (Session *s = l->ctx.sessions; s; s = session_next(s))
        n += session_untracked(s);
    return n;
}

/* A scrape of --metrics: counters as they are now. */
static void snapshot_metrics(void *arg, MetricsSnapshot *m)
{
    Listener *l = arg;
    const ProxyStats *st = &l->ctx.stats;
    memset(m, 0, sizeof *m);
    m->client_connections = l->ctx.n_sessions;
    for (Session *s = l->ctx.sessions; s; s = session_next(s))
        m->server_connections += session_has_server(s);
    m->untracked_statements = total_untracked(l);
    m->skipped_messages = l->ctx.tracker_budget.skipped;
    m->tracker_bytes = l->ctx.tracker_budget.used;
    m->tracker_limit_hits = l->ctx.tracker_budget.hits;
    m->client_connections_accepted = st->clients_accepted;
    m->client_connections_rejected = st->clients_rejected;
    m->server_connect_failures = st->server_connect_failures;
    m->statements = st->events;
    m->bytes_client_to_server = st->bytes_client_to_server;
    m->bytes_server_to_client = st->bytes_server_to_client;
    m->protocol_errors = st->protocol_errors;
    if (l->recorder) {
        RecorderStats rs = recorder_stats(l->recorder);
        m->requests = rs.requests;
        m->findings[METRICS_FINDING_N_PLUS_ONE] = rs.findings[FINDING_N_PLUS_ONE];
        m->findings[METRICS_FINDING_DUPLICATE] = rs.findings[FINDING_DUPLICATE];
        m->findings[METRICS_FINDING_OVERFETCH] = rs.findings[FINDING_OVERFETCH];
        m->dropped[METRICS_DROP_REQUEST] = rs.dropped_requests;
        m->dropped[METRICS_DROP_STATEMENT] = rs.dropped_statements;
        m->dropped[METRICS_DROP_FINGERPRINT] = rs.dropped_fingerprints;
        m->has_store = true;
        m->store_up = rs.store_up;
        m->store_reconnects = rs.store_reconnects;
        m->store_queued = rs.store_queued;
    }
    if (l->query_log)
        m->dropped[METRICS_DROP_QUERY_LOG_LINE] = querylog_dropped(l->query_log);
    m->statement_duration = l->statement_duration;
}

static void on_connection_closed(ProxyContext *ctx, uint64_t conn_id)
{
    Listener *l = ctx->owner;
    if (l->recorder)
        recorder_connection_closed(l->recorder, conn_id);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Listener *l = w->data;
    if (l->recorder)
        recorder_tick(l->recorder, proxy_now_us(&l->ctx));
}

static void flush_outputs(Listener *l)
{
    if (l->query_log && !querylog_flush(l->query_log))
        log_line(LOG_ERROR, 0, "writing the query log failed: %s", strerror(errno));
}

static void on_flush_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    flush_outputs(w->data);
}

/* ---- shutdown
 * ------------------------------------------------------------------------------------ */

static void finish_if_idle(ProxyContext *ctx)
{
    Listener *l = ctx->owner;
    if (l->draining && ctx->n_sessions == 0)
        proxy_context_break(ctx);
}

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Listener *l = w->data;
    log_line(LOG_INFO, 0, "grace period over: closing %zu connection(s)", l->ctx.n_sessions);
    l->ctx.on_session_closed = NULL;
    while (l->ctx.sessions)
        session_close_now(l->ctx.sessions);
    proxy_context_break(&l->ctx);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    Listener *l = w->data;
    if (l->draining) {
        log_line(LOG_INFO, 0, "second stop signal: closing now");
        on_grace_over(loop, &l->grace_timer, 0);
        return;
    }
    l->draining = true;
    log_line(LOG_INFO, 0, "signal %d: no longer accepting; %zu connection(s) open, grace %.1f s",
             w->signum, l->ctx.n_sessions, l->ctx.config->grace_seconds);
    ev_io_stop(loop, &l->accept_watcher);
    ev_timer_stop(loop, &l->accept_retry);
    close(l->listen_fd);
    l->listen_fd = -1;
    flush_outputs(l);
    if (l->ctx.n_sessions == 0) {
        proxy_context_break(&l->ctx);
        return;
    }
    ev_timer_set(&l->grace_timer, l->ctx.config->grace_seconds, 0.);
    ev_timer_start(loop, &l->grace_timer);
}

static void tally_options_from_config(const ProxyConfig *config, TallyOptions *o)
{
    tally_options_default(o);
    o->request_gap_us = (int64_t)(config->request_gap * 1e6);
    o->keep_samples = config->samples;
    o->n_plus_one_min_calls = (uint32_t)config->n_plus_one_calls;
    o->n_plus_one_min_distinct = (uint32_t)config->n_plus_one_distinct;
    o->duplicate_min = (uint32_t)config->duplicate_min;
    o->overfetch_rows = config->overfetch_rows;
    o->overfetch_bytes = config->overfetch_bytes;
}

/* Appends one SIGHUP's changes to the run's settings_changes and hands the store the new
 * settings, so a report shows the thresholds its findings were made with, and when they
 * changed. Bounded: past MAX_SETTINGS_CHANGES, further changes update the values only. */
static void note_settings_change(Listener *l, const char *change)
{
    if (!l->recorder)
        return;
    l->n_settings_changes++;
    if (l->n_settings_changes <= MAX_SETTINGS_CHANGES) {
        size_t old = l->settings_changes ? strlen(l->settings_changes) : 0;
        char *grown = malloc(old + strlen(change) + 3);
        if (!grown)
            return;
        if (old) /* "[a]" -> "[a,b]" */
            snprintf(grown, old + strlen(change) + 3, "%.*s,%s]", (int)(old - 1),
                     l->settings_changes, change);
        else
            snprintf(grown, strlen(change) + 3, "[%s]", change);
        free(l->settings_changes);
        l->settings_changes = grown;
    }
    char *settings =
        config_settings_json_with_changes(l->config, l->upstream.display, l->settings_changes);
    if (!settings || !recorder_set_settings(l->recorder, settings))
        log_line(LOG_WARN, 0, "SIGHUP: out of memory; the run's stored settings are not updated");
    free(settings);
}

/* SIGHUP: re-read the config file and environment; apply what can change live; reopen the
 * query log (log rotation). A bad file changes nothing. */
static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    Listener *l = w->data;
    ProxyConfig fresh;
    char err[1024];
    if (config_load(&fresh, l->argc, l->argv, stdout, err, sizeof err) != CONFIG_OK) {
        log_line(LOG_ERROR, 0, "SIGHUP: configuration not reloaded: %s", err);
        config_free(&fresh);
        return;
    }
    char restart[512];
    config_restart_needed(l->config, &fresh, restart, sizeof restart);
    if (restart[0])
        log_line(LOG_WARN, 0, "SIGHUP: %s changed but need a restart to take effect", restart);
    char *change = config_change_json(l->config, &fresh, proxy_now_us(&l->ctx));
    config_apply_reloadable(l->config, &fresh);
    config_free(&fresh);
    if (change)
        note_settings_change(l, change);
    free(change);
    log_set_level((LogLevel)l->config->log_level);
    TallyOptions to;
    tally_options_from_config(l->config, &to);
    if (l->recorder)
        recorder_set_thresholds(l->recorder, &to);
    if (l->query_log) {
        querylog_flush(l->query_log);
        querylog_close(l->query_log);
        l->query_log = querylog_open(l->config->log_queries, err, sizeof err);
        if (!l->query_log)
            log_line(LOG_ERROR, 0, "SIGHUP: %s; query log disabled", err);
        else if (err[0])
            log_line(LOG_WARN, 0, "--log-queries: %s", err);
    }
    log_line(LOG_INFO, 0, "SIGHUP: configuration reloaded, query log reopened");
}

static void on_sigusr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    Listener *l = w->data;
    if (l->recorder) {
        RecorderTotals totals = {.untracked_statements = total_untracked(l)};
        recorder_flush(l->recorder, &totals);
    }
    flush_outputs(l);
    log_line(LOG_INFO, 0, "SIGUSR1: open requests finished, report store and query log flushed");
}

/* ---- run ----------------------------------------------------------------------------------------
 */

/* --io: the relay's data path on io_uring unless asked for epoll; auto falls back to epoll,
 * with one line, where the kernel or a seccomp filter refuses io_uring. */
static bool listener_setup_io(ProxyContext *ctx, const char *io)
{
    if (strcmp(io, "epoll") == 0)
        return true;
    char err[256];
    /* PGTALLY_URING_BUFFERS (a power of two) is for tests: few buffers make receives run
     * out of them, the path taken when many sessions stream at once. */
    unsigned n_buffers = URING_BUFFERS;
    const char *knob = getenv("PGTALLY_URING_BUFFERS");
    if (knob && *knob) {
        unsigned long v = strtoul(knob, NULL, 10);
        if (v >= 1 && v <= 32768 && (v & (v - 1)) == 0)
            n_buffers = (unsigned)v;
    }
    Uring *u = uring_new(ctx->loop, n_buffers, URING_BUFFER_SIZE, err, sizeof err);
    if (!u) {
        if (strcmp(io, "uring") == 0) {
            log_line(LOG_ERROR, 0, "--io=uring: io_uring is not available: %s", err);
            return false;
        }
        log_line(LOG_INFO, 0, "io_uring not available (%s): relaying with epoll", err);
        return true;
    }
    proxy_context_use_ring(ctx, u);
    return true;
}

static bool listener_setup(Listener *l, const ProxyConfig *config)
{
    char err[512];
    if (!upstream_parse(config->upstream, &l->upstream, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--upstream: %s", err);
        return false;
    }
    if (!upstream_resolve(&l->upstream, err, sizeof err))
        log_line(LOG_WARN, 0, "%s (will retry for each client)", err);
    if (!tls_upstream_init(&l->upstream_tls, config->upstream, l->upstream.host, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--upstream: %s", err);
        return false;
    }
    l->ctx.upstream_tls = &l->upstream_tls;
    if (config->tls_cert) {
        l->ctx.client_tls_ctx =
            tls_server_ctx_new(config->tls_cert, config->tls_key, err, sizeof err);
        if (!l->ctx.client_tls_ctx) {
            log_line(LOG_ERROR, 0, "%s", err);
            return false;
        }
    }
    if (config->log_queries) {
        l->query_log = querylog_open(config->log_queries, err, sizeof err);
        if (!l->query_log) {
            log_line(LOG_ERROR, 0, "--log-queries: %s", err);
            return false;
        }
        if (err[0])
            log_line(LOG_WARN, 0, "--log-queries: %s", err);
    }
    char *settings = config_settings_json(config, l->upstream.display);
    RecorderOptions ro = {.db_path = config->db_path,
                          .db_schema = config->db_schema,
                          .settings_json = settings,
                          .run_label = config->run_label,
                          .instance = config->instance};
    tally_options_from_config(config, &ro.tally);
    if (!config->no_db && !recorder_check_store_target(config->db_path, config->db_schema,
                                                       config->listen, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "%s", err);
        l->exit_status = 2;
        free(settings);
        return false;
    }
    l->listen_fd = open_listen_socket(config->listen, err, sizeof err);
    if (l->listen_fd < 0) {
        log_line(LOG_ERROR, 0, "--listen: %s", err);
        free(settings);
        return false;
    }
    if (config->metrics) {
        l->metrics =
            metrics_start(EV_DEFAULT, config->metrics, snapshot_metrics, l, err, sizeof err);
        if (!l->metrics) {
            log_line(LOG_ERROR, 0, "--metrics: %s", err);
            free(settings);
            return false;
        }
    }
    if (config->serve) {
        /* Its own thread and its own read-only connection to the store: a page never runs
         * on this loop. Started after the loop's signals are blocked (main), so the thread
         * never takes them. */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        if (!listener_parse_address(config->serve, &addr, &addr_len, err, sizeof err)) {
            log_line(LOG_ERROR, 0, "--serve: %s", err);
            free(settings);
            return false;
        }
        ServeOptions so = {.addr = (const struct sockaddr *)&addr,
                           .addr_len = addr_len,
                           .db = config->db_path,
                           .db_schema = config->db_schema,
                           .token = config->serve_token,
                           .store_may_wait = true};
        l->serve = serve_start(&so, err, sizeof err);
        if (!l->serve) {
            log_line(LOG_ERROR, 0, "--serve: %s", err);
            free(settings);
            return false;
        }
        log_line(LOG_INFO, 0, "serving the report at http://%s/ (port %d)", config->serve,
                 serve_port(l->serve));
    }

    /* Only now, with every socket bound: a proxy that cannot start adds no run to the store.
     * (The settings text must live until the store has taken it.) */
    if (!config->no_db) {
        l->recorder = settings ? recorder_open(&ro, err, sizeof err) : NULL;
        if (!l->recorder) {
            log_line(LOG_ERROR, 0, "--db: %s", settings ? err : "out of memory");
            free(settings);
            return false;
        }
    }
    free(settings);
    ProxyContext *ctx = &l->ctx;
    ctx->loop = EV_DEFAULT;
    ctx->owner = l;
    proxy_clock_init(ctx);
    ctx->config = config;
    ctx->upstream = &l->upstream;
    /* Every per-connection bound has a count and a byte size; each byte bound leaves room
     * for a few statements of the largest size kept. */
    size_t sql_room = 4 * (config->max_sql_bytes + 1024);
    ctx->tracker_limits.max_sql_bytes = config->max_sql_bytes;
    ctx->tracker_limits.max_outstanding = 16384;
    ctx->tracker_limits.max_outstanding_bytes = sql_room > (8 << 20) ? sql_room : 8 << 20;
    ctx->tracker_limits.max_statements = 4096;
    ctx->tracker_limits.max_statement_bytes = sql_room > (16 << 20) ? sql_room : 16 << 20;
    ctx->tracker_limits.max_portals = 1024;
    ctx->tracker_limits.max_portal_bytes = 1 << 20;
    ctx->tracker_budget.limit = config->max_track_bytes;
    ctx->emit = emit_event;
    ctx->emit_ctx = l;
    ctx->workspace = tracker_workspace_new(config->max_sql_bytes);
    ctx->scratch_size = SCRATCH_SIZE;
    ctx->scratch = malloc(SCRATCH_SIZE);
    ctx->pending_cap = SCRATCH_SIZE + 16384;
    ctx->max_free_buffers = MAX_FREE_BUFFERS;
    ctx->free_buffers = calloc(MAX_FREE_BUFFERS, sizeof(void *));
    ctx->on_session_closed = finish_if_idle;
    ctx->on_connection_closed = on_connection_closed;
    if (!ctx->scratch || !ctx->free_buffers || !ctx->workspace) {
        log_line(LOG_ERROR, 0, "out of memory");
        return false;
    }
    return listener_setup_io(ctx, config->io);
}

void listener_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

static void listener_start_watchers(Listener *l)
{
    struct ev_loop *loop = l->ctx.loop;
    ev_io_init(&l->accept_watcher, on_accept, l->listen_fd, EV_READ);
    l->accept_watcher.data = l;
    ev_io_start(loop, &l->accept_watcher);
    ev_timer_init(&l->accept_retry, on_accept_retry, ACCEPT_RETRY_DELAY, 0.);
    l->accept_retry.data = l;
    ev_signal_init(&l->sigterm, on_stop_signal, SIGTERM);
    l->sigterm.data = l;
    ev_signal_start(loop, &l->sigterm);
    ev_signal_init(&l->sigint, on_stop_signal, SIGINT);
    l->sigint.data = l;
    ev_signal_start(loop, &l->sigint);
    ev_signal_init(&l->sigusr1, on_sigusr1, SIGUSR1);
    l->sigusr1.data = l;
    ev_signal_start(loop, &l->sigusr1);
    ev_signal_init(&l->sighup, on_sighup, SIGHUP);
    l->sighup.data = l;
    ev_signal_start(loop, &l->sighup);
    ev_timer_init(&l->refusal_log_timer, on_refusal_log_timer, 0., REFUSAL_LOG_INTERVAL);
    l->refusal_log_timer.data = l;
    ev_timer_init(&l->grace_timer, on_grace_over, 0., 0.);
    l->grace_timer.data = l;
    ev_timer_init(&l->tick_timer, on_tick, TICK_INTERVAL, TICK_INTERVAL);
    l->tick_timer.data = l;
    ev_timer_start(loop, &l->tick_timer);
    if (l->query_log) {
        ev_timer_init(&l->flush_timer, on_flush_timer, LOG_FLUSH_INTERVAL, LOG_FLUSH_INTERVAL);
        l->flush_timer.data = l;
        ev_timer_start(loop, &l->flush_timer);
    }
    /* Blocked since main began (and in the store's writer thread for good, so handlers run
     * here): a signal that came during start-up is delivered now and handled by the loop. */
    sigset_t handled;
    listener_signal_set(&handled);
    pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
}

static void listener_cleanup(Listener *l)
{
    serve_stop(l->serve); /* first: its reader must not outlive the store's writer */
    l->serve = NULL;
    free(l->settings_changes);
    l->settings_changes = NULL;
    if (l->metrics) {
        metrics_stop(l->metrics);
        l->metrics = NULL;
    }
    if (l->recorder) {
        char err[512];
        RecorderTotals totals = {.untracked_statements = l->ctx.stats.untracked};
        RecorderStats rs = recorder_stats(l->recorder);
        if (!recorder_close(l->recorder, &totals, err, sizeof err))
            log_line(LOG_ERROR, 0, "report store: %s", err);
        else
            log_line(LOG_INFO, 0, "report store: %llu statement(s) in %llu request(s) recorded",
                     (unsigned long long)rs.statements, (unsigned long long)rs.requests);
        l->recorder = NULL;
    }
    flush_outputs(l);
    if (l->query_log && querylog_dropped(l->query_log))
        log_line(LOG_WARN, 0, "query log: %llu line(s) could not be written",
                 querylog_dropped(l->query_log));
    querylog_close(l->query_log);
    if (l->listen_fd >= 0)
        close(l->listen_fd);
    proxy_context_drain_ring(&l->ctx);
    uring_free(l->ctx.uring);
    l->ctx.uring = NULL;
    proxy_context_release_buffers(&l->ctx);
    free(l->ctx.free_buffers);
    free(l->ctx.scratch);
    tracker_workspace_free(l->ctx.workspace);
    tls_upstream_free(&l->upstream_tls);
    if (l->ctx.client_tls_ctx)
        SSL_CTX_free(l->ctx.client_tls_ctx);
}

int listener_run(ProxyConfig *config, int argc, char **argv)
{
    Listener *l = calloc(1, sizeof *l);
    if (!l) {
        log_line(LOG_ERROR, 0, "out of memory");
        return 1;
    }
    l->config = config;
    l->argc = argc;
    l->argv = argv;
    l->listen_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    if (!listener_setup(l, config)) {
        int status = l->exit_status ? l->exit_status : 1;
        listener_cleanup(l);
        free(l);
        return status;
    }
    listener_start_watchers(l);
    /* Clients are accepted only now: the store is open and the signal watchers are in place,
     * so a SIGTERM right after the port answers is handled (drain, flush, exit 0). */
    char err[256];
    if (!listen_now(l->listen_fd, config->listen, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--listen: %s", err);
        listener_cleanup(l);
        free(l);
        return 1;
    }
    log_line(LOG_INFO, 0, "pgtally %s listening on %s%s, upstream %s (sslmode=%s), io=%s",
             PGTALLY_VERSION, config->listen, l->ctx.client_tls_ctx ? " with TLS" : "",
             l->upstream.display, tls_sslmode_name(l->upstream_tls.mode),
             l->ctx.uring ? "uring" : "epoll");
    proxy_context_run(&l->ctx);
    /* Refused clients still being answered do not hold up the shutdown. */
    l->ctx.on_session_closed = NULL;
    while (l->ctx.sessions)
        session_close_now(l->ctx.sessions);
    log_refusals(l);

    const ProxyStats *st = &l->ctx.stats;
    log_line(LOG_INFO, 0,
             "stopped: clients=%llu rejected=%llu connect_failures=%llu protocol_errors=%llu "
             "statements=%llu bytes_in=%llu bytes_out=%llu",
             (unsigned long long)st->clients_accepted, (unsigned long long)st->clients_rejected,
             (unsigned long long)st->server_connect_failures,
             (unsigned long long)st->protocol_errors, (unsigned long long)st->events,
             (unsigned long long)st->bytes_client_to_server,
             (unsigned long long)st->bytes_server_to_client);
    listener_cleanup(l);
    free(l);
    return 0;
}
