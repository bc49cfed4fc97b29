/* proxy/acceptor — see acceptor.h. */
#include "proxy/acceptor.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/pgwire.h"
#include "proxy/address.h"
#include "proxy/log.h"

#define ACCEPTS_PER_WAKEUP 64  /* bound work per callback so clients are not starved */
#define ACCEPT_RETRY_DELAY 0.1 /* after EMFILE: let connections close before retrying */
#define MAX_REFUSING 64 /* refused clients held at once to be told why after their SSL answer */
#define REFUSAL_LOG_INTERVAL 1.0 /* refusals are summed into one log line per interval */

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
void acceptor_log_refusals(Acceptor *a)
{
    if (a->refusals_unlogged == 0)
        return;
    log_line(LOG_WARN, 0,
             "refused %llu client(s) over --max-client-conn %zu (53300 too many clients)",
             (unsigned long long)a->refusals_unlogged, a->ctx->config->max_client_conn);
    a->refusals_unlogged = 0;
}

static void on_refusal_log_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Acceptor *a = w->data;
    if (a->refusals_unlogged == 0) {
        ev_timer_stop(loop, w); /* a quiet second: the next refusal is logged at once */
        return;
    }
    acceptor_log_refusals(a);
}

static void note_refusal(Acceptor *a)
{
    a->refusals_unlogged++;
    if (!ev_is_active(&a->refusal_log)) {
        acceptor_log_refusals(a);
        ev_timer_again(a->ctx->loop, &a->refusal_log);
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    Acceptor *a = w->data;
    ProxyContext *ctx = a->ctx;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_line(LOG_WARN, 0, "accept: %s; pausing accepts", strerror(errno));
                ev_io_stop(loop, &a->watcher);
                ev_timer_start(loop, &a->retry);
            }
            return;
        }
        if (ctx->n_sessions >= ctx->config->max_client_conn) {
            ctx->stats.clients_rejected++;
            note_refusal(a);
            if (ctx->n_refusing < MAX_REFUSING)
                session_start_refused(ctx, fd);
            else
                reject_client(fd, "53300", SESSION_TOO_MANY_CLIENTS);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ctx->stats.clients_accepted++;
        session_start(ctx, fd);
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Acceptor *a = w->data;
    if (!a->stopped)
        ev_io_start(loop, &a->watcher);
}

bool acceptor_bind(Acceptor *a, ProxyContext *ctx, const char *spec, char *err, size_t err_len)
{
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->spec = spec;
    a->fd = -1;
    struct sockaddr_storage addr;
    socklen_t len;
    if (!address_listen(spec, &addr, &len, err, err_len))
        return false;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, len) < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        return false;
    }
    a->port = address_bound_port(fd);
    if (a->port < 0) {
        snprintf(err, err_len, "getsockname: %s", strerror(errno));
        close(fd);
        return false;
    }
    a->fd = fd;
    ev_io_init(&a->watcher, on_accept, fd, EV_READ);
    a->watcher.data = a;
    ev_timer_init(&a->retry, on_accept_retry, ACCEPT_RETRY_DELAY, 0.);
    a->retry.data = a;
    ev_timer_init(&a->refusal_log, on_refusal_log_timer, 0., REFUSAL_LOG_INTERVAL);
    a->refusal_log.data = a;
    return true;
}

bool acceptor_start(Acceptor *a, char *err, size_t err_len)
{
    if (listen(a->fd, 1024) < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", a->spec, strerror(errno));
        return false;
    }
    ev_io_start(a->ctx->loop, &a->watcher);
    return true;
}

void acceptor_stop(Acceptor *a)
{
    a->stopped = true;
    if (!a->ctx || a->fd < 0) /* never bound */
        return;
    ev_io_stop(a->ctx->loop, &a->watcher);
    ev_timer_stop(a->ctx->loop, &a->retry);
    close(a->fd);
    a->fd = -1;
}
