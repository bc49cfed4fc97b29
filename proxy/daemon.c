/* proxy/daemon — see daemon.h. */
#include "proxy/daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "proxy/acceptor.h"
#include "proxy/address.h"
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
#define LOG_FLUSH_INTERVAL 0.2
#define TICK_INTERVAL 0.1 /* idle-request sweep */

typedef struct Daemon {
    ProxyContext ctx;
    Upstream upstream;
    UpstreamTls upstream_tls;
    Acceptor acceptor;
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
} Daemon;

#define MAX_SETTINGS_CHANGES 64

/* ---- statement events -> query log, histogram, recorder; metrics --------------------------- */

static void emit_event(void *arg, const TrackerEvent *event)
{
    Daemon *d = arg;
    if (d->query_log)
        querylog_write(d->query_log, event);
    metrics_histogram_observe(&d->statement_duration, event->end_us - event->start_us);
    if (d->recorder)
        recorder_event(d->recorder, event);
}

/* Statements no tracker could attribute: closed sessions' plus the open ones' so far. */
static uint64_t total_untracked(Daemon *d)
{
    uint64_t n = d->ctx.stats.untracked;
    for (Session *s = d->ctx.sessions; s; s = session_next(s))
        n += session_untracked(s);
    return n;
}

/* A scrape of --metrics: counters as they are now. */
static void snapshot_metrics(void *arg, MetricsSnapshot *m)
{
    Daemon *d = arg;
    const ProxyStats *st = &d->ctx.stats;
    memset(m, 0, sizeof *m);
    m->client_connections = d->ctx.n_sessions;
    for (Session *s = d->ctx.sessions; s; s = session_next(s))
        m->server_connections += session_has_server(s);
    m->untracked_statements = total_untracked(d);
    m->skipped_messages = d->ctx.tracker_budget.skipped;
    m->tracker_bytes = d->ctx.tracker_budget.used;
    m->tracker_limit_hits = d->ctx.tracker_budget.hits;
    m->client_connections_accepted = st->clients_accepted;
    m->client_connections_rejected = st->clients_rejected;
    m->server_connect_failures = st->server_connect_failures;
    m->statements = st->events;
    m->bytes_client_to_server = st->bytes_client_to_server;
    m->bytes_server_to_client = st->bytes_server_to_client;
    m->protocol_errors = st->protocol_errors;
    if (d->recorder) {
        RecorderStats rs = recorder_stats(d->recorder);
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
    if (d->query_log)
        m->dropped[METRICS_DROP_QUERY_LOG_LINE] = querylog_dropped(d->query_log);
    m->statement_duration = d->statement_duration;
}

static void on_connection_closed(ProxyContext *ctx, uint64_t conn_id)
{
    Daemon *d = ctx->owner;
    if (d->recorder)
        recorder_connection_closed(d->recorder, conn_id);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Daemon *d = w->data;
    if (d->recorder)
        recorder_tick(d->recorder, proxy_now_us(&d->ctx));
}

static void flush_outputs(Daemon *d)
{
    if (d->query_log && !querylog_flush(d->query_log))
        log_line(LOG_ERROR, 0, "writing the query log failed: %s", strerror(errno));
}

static void on_flush_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    flush_outputs(w->data);
}

/* ---- shutdown and signals ---------------------------------------------------------------- */

static void finish_if_idle(ProxyContext *ctx)
{
    Daemon *d = ctx->owner;
    if (d->draining && ctx->n_sessions == 0)
        proxy_context_break(ctx);
}

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Daemon *d = w->data;
    log_line(LOG_INFO, 0, "grace period over: closing %zu connection(s)", d->ctx.n_sessions);
    d->ctx.on_session_closed = NULL;
    while (d->ctx.sessions)
        session_close_now(d->ctx.sessions);
    proxy_context_break(&d->ctx);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    Daemon *d = w->data;
    if (d->draining) {
        log_line(LOG_INFO, 0, "second stop signal: closing now");
        on_grace_over(loop, &d->grace_timer, 0);
        return;
    }
    d->draining = true;
    log_line(LOG_INFO, 0, "signal %d: no longer accepting; %zu connection(s) open, grace %.1f s",
             w->signum, d->ctx.n_sessions, d->ctx.config->grace_seconds);
    acceptor_stop(&d->acceptor);
    flush_outputs(d);
    if (d->ctx.n_sessions == 0) {
        proxy_context_break(&d->ctx);
        return;
    }
    ev_timer_set(&d->grace_timer, d->ctx.config->grace_seconds, 0.);
    ev_timer_start(loop, &d->grace_timer);
}

/* Appends one SIGHUP's changes to the run's settings_changes and hands the store the new
 * settings, so a report shows the thresholds its findings were made with, and when they
 * changed. Bounded: past MAX_SETTINGS_CHANGES, further changes update the values only. */
static void note_settings_change(Daemon *d, const char *change)
{
    if (!d->recorder)
        return;
    d->n_settings_changes++;
    if (d->n_settings_changes <= MAX_SETTINGS_CHANGES) {
        size_t old = d->settings_changes ? strlen(d->settings_changes) : 0;
        char *grown = malloc(old + strlen(change) + 3);
        if (!grown)
            return;
        if (old) /* "[a]" -> "[a,b]" */
            snprintf(grown, old + strlen(change) + 3, "%.*s,%s]", (int)(old - 1),
                     d->settings_changes, change);
        else
            snprintf(grown, strlen(change) + 3, "[%s]", change);
        free(d->settings_changes);
        d->settings_changes = grown;
    }
    char *settings =
        config_settings_json_with_changes(d->config, d->upstream.display, d->settings_changes);
    if (!settings || !recorder_set_settings(d->recorder, settings))
        log_line(LOG_WARN, 0, "SIGHUP: out of memory; the run's stored settings are not updated");
    free(settings);
}

/* SIGHUP: re-read the config file and environment; apply what can change live; reopen the
 * query log (log rotation). A bad file changes nothing. */
static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    Daemon *d = w->data;
    ProxyConfig fresh;
    char err[1024];
    if (config_load(&fresh, d->argc, d->argv, stdout, err, sizeof err) != CONFIG_OK) {
        log_line(LOG_ERROR, 0, "SIGHUP: configuration not reloaded: %s", err);
        config_free(&fresh);
        return;
    }
    char restart[512];
    config_restart_needed(d->config, &fresh, restart, sizeof restart);
    if (restart[0])
        log_line(LOG_WARN, 0, "SIGHUP: %s changed but need a restart to take effect", restart);
    char *change = config_change_json(d->config, &fresh, proxy_now_us(&d->ctx));
    config_apply_reloadable(d->config, &fresh);
    config_free(&fresh);
    if (change)
        note_settings_change(d, change);
    free(change);
    log_set_level((LogLevel)d->config->log_level);
    TallyOptions to;
    config_tally_options(d->config, &to);
    if (d->recorder)
        recorder_set_thresholds(d->recorder, &to);
    if (d->query_log) {
        querylog_flush(d->query_log);
        querylog_close(d->query_log);
        d->query_log = querylog_open(d->config->log_queries, err, sizeof err);
        if (!d->query_log)
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
    Daemon *d = w->data;
    if (d->recorder) {
        RecorderTotals totals = {.untracked_statements = total_untracked(d)};
        recorder_flush(d->recorder, &totals);
    }
    flush_outputs(d);
    log_line(LOG_INFO, 0, "SIGUSR1: open requests finished, report store and query log flushed");
}

/* ---- start-up and run ------------------------------------------------------------------- */

/* --io: the relay's data path on io_uring unless asked for epoll; auto falls back to epoll,
 * with one line, where the kernel or a seccomp filter refuses io_uring. */
static bool setup_io(ProxyContext *ctx, const char *io)
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

static bool setup(Daemon *d, const ProxyConfig *config)
{
    char err[512];
    if (!upstream_parse(config->upstream, &d->upstream, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--upstream: %s", err);
        return false;
    }
    if (!upstream_resolve(&d->upstream, err, sizeof err))
        log_line(LOG_WARN, 0, "%s (will retry for each client)", err);
    if (!tls_upstream_init(&d->upstream_tls, config->upstream, d->upstream.host, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--upstream: %s", err);
        return false;
    }
    d->ctx.upstream_tls = &d->upstream_tls;
    if (config->tls_cert) {
        d->ctx.client_tls_ctx =
            tls_server_ctx_new(config->tls_cert, config->tls_key, err, sizeof err);
        if (!d->ctx.client_tls_ctx) {
            log_line(LOG_ERROR, 0, "%s", err);
            return false;
        }
    }
    if (config->log_queries) {
        d->query_log = querylog_open(config->log_queries, err, sizeof err);
        if (!d->query_log) {
            log_line(LOG_ERROR, 0, "--log-queries: %s", err);
            return false;
        }
        if (err[0])
            log_line(LOG_WARN, 0, "--log-queries: %s", err);
    }
    char *settings = config_settings_json(config, d->upstream.display);
    RecorderOptions ro = {.db_path = config->db_path,
                          .db_schema = config->db_schema,
                          .settings_json = settings,
                          .run_label = config->run_label,
                          .instance = config->instance};
    config_tally_options(config, &ro.tally);
    if (!config->no_db && !recorder_check_store_target(config->db_path, config->db_schema,
                                                       config->listen, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "%s", err);
        d->exit_status = 2;
        free(settings);
        return false;
    }
    if (!acceptor_bind(&d->acceptor, &d->ctx, config->listen, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--listen: %s", err);
        free(settings);
        return false;
    }
    if (config->metrics) {
        d->metrics =
            metrics_start(EV_DEFAULT, config->metrics, snapshot_metrics, d, err, sizeof err);
        if (!d->metrics) {
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
        if (!address_listen(config->serve, &addr, &addr_len, err, sizeof err)) {
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
        d->serve = serve_start(&so, err, sizeof err);
        if (!d->serve) {
            log_line(LOG_ERROR, 0, "--serve: %s", err);
            free(settings);
            return false;
        }
        log_line(LOG_INFO, 0, "serving the report at http://%s/ (port %d)", config->serve,
                 serve_port(d->serve));
    }

    /* Only now, with every socket bound: a proxy that cannot start adds no run to the store.
     * (The settings text must live until the store has taken it.) */
    if (!config->no_db) {
        d->recorder = settings ? recorder_open(&ro, err, sizeof err) : NULL;
        if (!d->recorder) {
            log_line(LOG_ERROR, 0, "--db: %s", settings ? err : "out of memory");
            free(settings);
            return false;
        }
    }
    free(settings);
    ProxyContext *ctx = &d->ctx;
    ctx->loop = EV_DEFAULT;
    ctx->owner = d;
    proxy_clock_init(ctx);
    ctx->config = config;
    ctx->upstream = &d->upstream;
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
    ctx->emit_ctx = d;
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
    return setup_io(ctx, config->io);
}

void daemon_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

static void start_watchers(Daemon *d)
{
    struct ev_loop *loop = d->ctx.loop;
    ev_signal_init(&d->sigterm, on_stop_signal, SIGTERM);
    d->sigterm.data = d;
    ev_signal_start(loop, &d->sigterm);
    ev_signal_init(&d->sigint, on_stop_signal, SIGINT);
    d->sigint.data = d;
    ev_signal_start(loop, &d->sigint);
    ev_signal_init(&d->sigusr1, on_sigusr1, SIGUSR1);
    d->sigusr1.data = d;
    ev_signal_start(loop, &d->sigusr1);
    ev_signal_init(&d->sighup, on_sighup, SIGHUP);
    d->sighup.data = d;
    ev_signal_start(loop, &d->sighup);
    ev_timer_init(&d->grace_timer, on_grace_over, 0., 0.);
    d->grace_timer.data = d;
    ev_timer_init(&d->tick_timer, on_tick, TICK_INTERVAL, TICK_INTERVAL);
    d->tick_timer.data = d;
    ev_timer_start(loop, &d->tick_timer);
    if (d->query_log) {
        ev_timer_init(&d->flush_timer, on_flush_timer, LOG_FLUSH_INTERVAL, LOG_FLUSH_INTERVAL);
        d->flush_timer.data = d;
        ev_timer_start(loop, &d->flush_timer);
    }
    /* Blocked since main began (and in the store's writer thread for good, so handlers run
     * here): a signal that came during start-up is delivered now and handled by the loop. */
    sigset_t handled;
    daemon_signal_set(&handled);
    pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
}

static void cleanup(Daemon *d)
{
    serve_stop(d->serve); /* first: its reader must not outlive the store's writer */
    d->serve = NULL;
    free(d->settings_changes);
    d->settings_changes = NULL;
    if (d->metrics) {
        metrics_stop(d->metrics);
        d->metrics = NULL;
    }
    if (d->recorder) {
        char err[512];
        RecorderTotals totals = {.untracked_statements = d->ctx.stats.untracked};
        RecorderStats rs = recorder_stats(d->recorder);
        if (!recorder_close(d->recorder, &totals, err, sizeof err))
            log_line(LOG_ERROR, 0, "report store: %s", err);
        else
            log_line(LOG_INFO, 0, "report store: %llu statement(s) in %llu request(s) recorded",
                     (unsigned long long)rs.statements, (unsigned long long)rs.requests);
        d->recorder = NULL;
    }
    flush_outputs(d);
    if (d->query_log && querylog_dropped(d->query_log))
        log_line(LOG_WARN, 0, "query log: %llu line(s) could not be written",
                 querylog_dropped(d->query_log));
    querylog_close(d->query_log);
    acceptor_stop(&d->acceptor);
    proxy_context_drain_ring(&d->ctx);
    uring_free(d->ctx.uring);
    d->ctx.uring = NULL;
    proxy_context_release_buffers(&d->ctx);
    free(d->ctx.free_buffers);
    free(d->ctx.scratch);
    tracker_workspace_free(d->ctx.workspace);
    tls_upstream_free(&d->upstream_tls);
    if (d->ctx.client_tls_ctx)
        SSL_CTX_free(d->ctx.client_tls_ctx);
}

int daemon_run(ProxyConfig *config, int argc, char **argv)
{
    Daemon *d = calloc(1, sizeof *d);
    if (!d) {
        log_line(LOG_ERROR, 0, "out of memory");
        return 1;
    }
    d->config = config;
    d->argc = argc;
    d->argv = argv;
    signal(SIGPIPE, SIG_IGN);
    if (!setup(d, config)) {
        int status = d->exit_status ? d->exit_status : 1;
        cleanup(d);
        free(d);
        return status;
    }
    start_watchers(d);
    /* Clients are accepted only now: the store is open and the signal watchers are in place,
     * so a SIGTERM right after the port answers is handled (drain, flush, exit 0). */
    char err[256];
    if (!acceptor_start(&d->acceptor, err, sizeof err)) {
        log_line(LOG_ERROR, 0, "--listen: %s", err);
        cleanup(d);
        free(d);
        return 1;
    }
    log_line(LOG_INFO, 0, "pgtally %s listening on %s (port %d)%s, upstream %s (sslmode=%s), io=%s",
             PGTALLY_VERSION, config->listen, d->acceptor.port,
             d->ctx.client_tls_ctx ? " with TLS" : "", d->upstream.display,
             tls_sslmode_name(d->upstream_tls.mode), d->ctx.uring ? "uring" : "epoll");
    if (d->metrics)
        log_line(LOG_INFO, 0, "metrics at http://%s/metrics (port %d)", config->metrics,
                 metrics_port(d->metrics));
    proxy_context_run(&d->ctx);
    /* Refused clients still being answered do not hold up the shutdown. */
    d->ctx.on_session_closed = NULL;
    while (d->ctx.sessions)
        session_close_now(d->ctx.sessions);
    acceptor_log_refusals(&d->acceptor);

    const ProxyStats *st = &d->ctx.stats;
    log_line(LOG_INFO, 0,
             "stopped: clients=%llu rejected=%llu connect_failures=%llu protocol_errors=%llu "
             "statements=%llu bytes_in=%llu bytes_out=%llu",
             (unsigned long long)st->clients_accepted, (unsigned long long)st->clients_rejected,
             (unsigned long long)st->server_connect_failures,
             (unsigned long long)st->protocol_errors, (unsigned long long)st->events,
             (unsigned long long)st->bytes_client_to_server,
             (unsigned long long)st->bytes_server_to_client);
    cleanup(d);
    free(d);
    return 0;
}
