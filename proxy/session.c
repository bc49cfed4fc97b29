/* proxy/session — see session.h.
 *
 * Life of a session: STARTUP (untyped packets from the client) -> CONNECTING (non-blocking
 * connect to the upstream, client not read) -> RELAY (typed messages both ways, tracked) or
 * RAW (replication: bytes only) -> closed. CANCEL is a CancelRequest being forwarded on its
 * own upstream connection. CLOSING means an ErrorResponse pgtally wrote is draining to the
 * client before the socket closes.
 *
 * Callbacks that may end the session return false when they did, so no caller touches a
 * freed session. */
#include "proxy/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "protocol/pgstartup.h"
#include "protocol/msgcapture.h"
#include "protocol/pgwire.h"
#include "proxy/log.h"
#include "proxy/tls.h"

#define STARTUP_BUFFER_SIZE (PGW_STARTUP_MAX_LEN + 1024)
#define BACKEND_CAPTURE_LIMIT 8192 /* ErrorResponse, CommandComplete, ParameterStatus... */
#define CLOSING_TIMEOUT 5.0        /* how long a final ErrorResponse may take to drain */
#define ERROR_MESSAGE_MAX 1024
#define AUTH_HOLD_LIMIT 65536 /* server auth messages held while rewriting them */
#define SSL_REQUEST_SIZE 8
#define REFUSAL_TIMEOUT 5.0 /* a refused client's startup packet is not waited for longer */
/* Ring mode: chunks queued towards one destination. The source is received from again only
 * while fewer than RING_QUEUE_MARK are waiting, so one direction holds at most that many
 * ring buffers (the slow peer's backpressure); the rest of the room is for what pgtally
 * writes itself (startup packet, errors). */
#define RING_QUEUE_MAX 16
#define RING_QUEUE_MARK 4
#define RING_DRAIN_TIMEOUT_MS 1000

typedef enum SessionState {
    SS_STARTUP,
    SS_CLIENT_TLS_HANDSHAKE, /* answered 'S' to the client's SSLRequest */
    SS_CONNECTING,
    SS_UPSTREAM_SSL_ANSWER, /* sent SSLRequest upstream, waiting for 'S' or 'N' */
    SS_UPSTREAM_TLS_HANDSHAKE,
    SS_RELAY,
    SS_RAW,
    SS_CANCEL,
    SS_CLOSING,
} SessionState;

/* Bytes queued for a ring send: a received ring buffer (bid >= 0, handed back once sent) or
 * a heap copy (bid < 0) of bytes pgtally wrote itself. */
typedef struct RingChunk {
    uint8_t *base;
    uint32_t off;
    uint32_t len;
    int32_t bid;
} RingChunk;

/* One direction of the relay. */
typedef struct Pipe {
    ev_io read_watcher;  /* the source socket's readability */
    ev_io write_watcher; /* the destination's writability, active only while pending */
    uint8_t *pending;    /* bytes the destination has not taken yet (pool buffer) */
    size_t pending_off;
    size_t pending_len;
    MsgCapture msgs; /* framing, the current message's body as far as the tracker wants it */

    /* Ring mode: one receive from the source and one send to the destination at most in
     * flight (a stream socket's sends must not overtake each other). */
    Session *session;
    UringOp recv_op;
    UringOp send_op;
    bool recv_armed;
    bool send_armed;
    bool starved;       /* the last receive found the buffer ring empty */
    bool send_slow;     /* the last send found the destination full: wait for room */
    bool src_closed;    /* the source ended; the session closes once the queue is sent */
    uint8_t *recv_heap; /* a starved pipe's own receive buffer, while that receive runs */
    RingChunk queue[RING_QUEUE_MAX];
    unsigned queue_head;
    unsigned queue_count;
} Pipe;

struct Session {
    ProxyContext *ctx;
    Session *prev;
    Session *next;
    uint64_t id;
    SessionState state;
    int client_fd;
    int server_fd;
    Pipe c2s;
    Pipe s2c;
    ev_timer timer;   /* startup, connect, or closing deadline */
    uint8_t *startup; /* startup-phase bytes, freed once relaying */
    size_t startup_len;
    uint32_t startup_packet_len;
    bool replication;
    bool refused; /* over the connection limit: answered 53300 after its startup packet */
    int next_addr;
    int last_connect_error;
    Tracker *tracker;
    SSL *client_ssl; /* TLS terminated by pgtally on the client leg */
    SSL *server_ssl; /* TLS to the upstream */
    /* With TLS terminated here, channel binding cannot pass through: SCRAM-SHA-256-PLUS is
     * removed from AuthenticationSASL, so server auth messages are held and rewritten until
     * AuthenticationOk. */
    bool auth_rewrite;
    uint8_t *auth_hold;
    size_t auth_hold_len;

    /* Ring mode (plain sockets, relaying): reads and writes go through ctx->uring. */
    bool ring;
    bool zombie;       /* closed; freed when its last ring operation completes */
    unsigned ring_ops; /* ring operations in flight, plus one while a completion is handled */
    uint8_t *cur_buf;  /* the ring buffer being relayed, which send_to_* may queue as is */
    size_t cur_len;
    int32_t cur_bid;
    bool cur_taken;
};

/* ---- small helpers ------------------------------------------------------------------------ */

int64_t proxy_now_us(const ProxyContext *ctx)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + ctx->clock_offset_us;
}

void proxy_clock_init(ProxyContext *ctx)
{
    struct timespec wall, mono;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    ctx->clock_offset_us =
        ((int64_t)wall.tv_sec - mono.tv_sec) * 1000000 + (wall.tv_nsec - mono.tv_nsec) / 1000;
}

static void *pool_get(ProxyContext *ctx)
{
    if (ctx->n_free_buffers > 0)
        return ctx->free_buffers[--ctx->n_free_buffers];
    return malloc(ctx->pending_cap);
}

static void pool_put(ProxyContext *ctx, void *buf)
{
    if (!buf)
        return;
    if (ctx->n_free_buffers < ctx->max_free_buffers)
        ctx->free_buffers[ctx->n_free_buffers++] = buf;
    else
        free(buf);
}

void proxy_context_release_buffers(ProxyContext *ctx)
{
    while (ctx->n_free_buffers > 0)
        free(ctx->free_buffers[--ctx->n_free_buffers]);
}

uint64_t session_untracked(const Session *s)
{
    return s->tracker ? tracker_stats(s->tracker)->untracked : 0;
}

bool session_has_server(const Session *s)
{
    return s->server_fd >= 0;
}

Session *session_next(Session *s)
{
    return s->next;
}

static void emit_to_context(void *arg, const TrackerEvent *ev)
{
    ProxyContext *ctx = arg;
    ctx->stats.events++;
    if (ctx->emit)
        ctx->emit(ctx->emit_ctx, ev);
}

/* ---- closing -------------------------------------------------------------------------------- */

static void ring_stop_recv(Session *s, Pipe *p);
static void ring_stop_send(Session *s, Pipe *p);

static void pipe_release(ProxyContext *ctx, Pipe *p)
{
    ring_stop_recv(p->session, p);
    ring_stop_send(p->session, p);
    ev_io_stop(ctx->loop, &p->read_watcher);
    ev_io_stop(ctx->loop, &p->write_watcher);
    pool_put(ctx, p->pending);
    p->pending = NULL;
    p->pending_len = 0;
    msgcapture_free(&p->msgs);
}

static void close_server(Session *s)
{
    ProxyContext *ctx = s->ctx;
    ev_io_stop(ctx->loop, &s->s2c.read_watcher);
    ev_io_stop(ctx->loop, &s->c2s.write_watcher);
    ring_stop_recv(s, &s->s2c);
    ring_stop_send(s, &s->c2s);
    if (s->server_ssl) {
        SSL_free(s->server_ssl);
        s->server_ssl = NULL;
    }
    if (s->server_fd >= 0) {
        close(s->server_fd);
        s->server_fd = -1;
    }
}

static void session_close(Session *s, const char *reason)
{
    ProxyContext *ctx = s->ctx;
    LOG_DEBUG_CONN(s->id, "closing: %s", reason);
    if (s->tracker) {
        ctx->stats.untracked += tracker_stats(s->tracker)->untracked;
        tracker_free(s->tracker, proxy_now_us(s->ctx));
        if (ctx->on_connection_closed)
            ctx->on_connection_closed(ctx, s->id);
    }
    ev_timer_stop(ctx->loop, &s->timer);
    pipe_release(ctx, &s->c2s);
    pipe_release(ctx, &s->s2c);
    close_server(s);
    if (s->client_ssl)
        SSL_free(s->client_ssl);
    if (s->client_fd >= 0)
        close(s->client_fd);
    free(s->startup);
    free(s->auth_hold);
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->refused)
        ctx->n_refusing--;
    else
        ctx->n_sessions--;
    if (s->ring_ops > 0) {
        /* Ring operations still hold this session: freed with the last one. */
        s->zombie = true;
        s->prev = NULL;
        s->next = ctx->zombies;
        if (ctx->zombies)
            ctx->zombies->prev = s;
        ctx->zombies = s;
    } else {
        free(s);
    }
    if (ctx->on_session_closed)
        ctx->on_session_closed(ctx);
}

/* ---- ring mode ------------------------------------------------------------------------------
 *
 * A plain-socket session relays through ctx->uring once both legs are up: a receive (the
 * kernel picks a ring buffer when data arrives) on each source socket, and per direction a
 * queue of chunks sent in order, one send in flight. A received buffer is framed, tracked and
 * queued as is towards the peer (no copy) and returns to the kernel once sent. The source is
 * received from again only while its direction queues fewer than RING_QUEUE_MARK chunks: a
 * slow peer stops the reading, as pending bytes do on the epoll path. A closed session stays
 * allocated (ctx->zombies) until its operations in flight have completed. */

static int pipe_src_fd(const Session *s, const Pipe *p)
{
    return p == &s->c2s ? s->client_fd : s->server_fd;
}

static int pipe_dst_fd(const Session *s, const Pipe *p)
{
    return p == &s->c2s ? s->server_fd : s->client_fd;
}

/* Bytes for this pipe's destination not yet written, on either path. */
static bool pipe_busy(const Pipe *p)
{
    return p->pending_len > 0 || p->queue_count > 0;
}

static void ring_chunk_release(ProxyContext *ctx, RingChunk *c)
{
    if (c->bid >= 0)
        uring_buffer_return(ctx->uring, (uint16_t)c->bid);
    else
        free(c->base);
    c->base = NULL;
}

static void ring_pop(ProxyContext *ctx, Pipe *p)
{
    ring_chunk_release(ctx, &p->queue[p->queue_head]);
    p->queue_head = (p->queue_head + 1) % RING_QUEUE_MAX;
    p->queue_count--;
}

/* Drops every queued chunk but the one a send in flight still reads from. */
static void ring_drop_queue(ProxyContext *ctx, Pipe *p)
{
    unsigned keep = p->send_armed ? 1 : 0;
    while (p->queue_count > keep) {
        unsigned i = (p->queue_head + p->queue_count - 1) % RING_QUEUE_MAX;
        ring_chunk_release(ctx, &p->queue[i]);
        p->queue_count--;
    }
}

/* No more reading from this pipe's source: cancels the receive in flight. */
static void ring_stop_recv(Session *s, Pipe *p)
{
    if (!s->ring)
        return;
    if (p->recv_armed)
        uring_cancel(s->ctx->uring, &p->recv_op);
}

/* No more writing to this pipe's destination: cancels the send in flight, drops the rest. */
static void ring_stop_send(Session *s, Pipe *p)
{
    if (!s->ring)
        return;
    if (p->send_armed)
        uring_cancel(s->ctx->uring, &p->send_op);
    ring_drop_queue(s->ctx, p);
}

/* One ring reference less; a closed session is freed with its last one. */
static void ring_release_ref(Session *s)
{
    if (--s->ring_ops > 0 || !s->zombie)
        return;
    ProxyContext *ctx = s->ctx;
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->zombies = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

static void ring_arm_recv(Session *s, Pipe *p)
{
    if (!s->ring || s->zombie || p->recv_armed || p->src_closed ||
        (s->state != SS_RELAY && s->state != SS_RAW) || p->queue_count >= RING_QUEUE_MARK)
        return;
    int fd = pipe_src_fd(s, p);
    if (fd < 0)
        return;
    Uring *u = s->ctx->uring;
    size_t size = uring_buffer_size(u);
    uint8_t *own = NULL;
    if (p->starved) {
        /* The ring ran dry (sessions whose peers stall hold its buffers): this receive uses
         * the pipe's own buffer, so no session waits for another's peer. */
        own = malloc(size);
        if (!own)
            return; /* reading resumes with the next completion of this session */
    }
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_recv(sqe, fd, own, (unsigned)size, 0);
    if (!own) {
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = URING_BUFFER_GROUP;
    }
    p->recv_heap = own;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&p->recv_op);
    p->recv_armed = true;
    s->ring_ops++;
}

static void ring_kick_send(Session *s, Pipe *p)
{
    if (p->send_armed || p->queue_count == 0)
        return;
    int fd = pipe_dst_fd(s, p);
    if (fd < 0)
        return;
    const RingChunk *c = &p->queue[p->queue_head];
    Uring *u = s->ctx->uring;
    struct io_uring_sqe *sqe = uring_sqe(u);
    /* MSG_DONTWAIT: the send completes while it is submitted (the loop then need not wake for
     * it); only after one found the destination full (-EAGAIN) does the next one wait for
     * room in the kernel (an internal poll). */
    io_uring_prep_send(sqe, fd, c->base + c->off, c->len,
                       MSG_NOSIGNAL | (p->send_slow ? 0 : MSG_DONTWAIT));
    if (!p->send_slow)
        uring_expect_inline(u);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&p->send_op);
    p->send_armed = true;
    s->ring_ops++;
}

/* Queues bytes for the pipe's destination: the ring buffer being relayed is queued itself,
 * anything else (bytes pgtally wrote) is copied. */
static bool ring_enqueue(Session *s, Pipe *p, const uint8_t *data, size_t len)
{
    if (p->queue_count == RING_QUEUE_MAX || len > UINT32_MAX)
        return false;
    RingChunk c;
    uintptr_t d = (uintptr_t)data, b = (uintptr_t)s->cur_buf;
    if (s->cur_buf && !s->cur_taken && d >= b && d + len <= b + s->cur_len) {
        c.base = s->cur_buf;
        c.off = (uint32_t)(d - b);
        c.bid = s->cur_bid;
        s->cur_taken = true;
    } else {
        c.base = malloc(len);
        if (!c.base)
            return false;
        memcpy(c.base, data, len);
        c.off = 0;
        c.bid = -1;
    }
    c.len = (uint32_t)len;
    p->queue[(p->queue_head + p->queue_count) % RING_QUEUE_MAX] = c;
    p->queue_count++;
    ring_kick_send(s, p);
    return true;
}

static void relay_client_data(Session *s, const uint8_t *data, size_t n);
static void relay_server_data(Session *s, const uint8_t *data, size_t n);

static void on_ring_recv(UringOp *op, int res, unsigned flags)
{
    Pipe *p = (Pipe *)((char *)op - offsetof(Pipe, recv_op));
    Session *s = p->session;
    ProxyContext *ctx = s->ctx;
    p->recv_armed = false;
    bool has_buf = (flags & IORING_CQE_F_BUFFER) != 0;
    int32_t bid = has_buf ? (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    uint8_t *own = p->recv_heap;
    p->recv_heap = NULL;
    p->starved = res == -ENOBUFS;
    if (p->starved)
        LOG_DEBUG_CONN(s->id, "receive buffers exhausted: reading into the session's own");
    if (res <= 0 || has_buf)
        free(own);
    if (s->zombie || (s->state != SS_RELAY && s->state != SS_RAW)) {
        if (has_buf)
            uring_buffer_return(ctx->uring, (uint16_t)bid);
        else if (res > 0)
            free(own);
        ring_release_ref(s);
        return;
    }
    if (res == -ENOBUFS || res == -EINTR || res == -EAGAIN || (res > 0 && !has_buf && !own)) {
        ring_arm_recv(s, p);
        ring_release_ref(s);
        return;
    }
    if (res <= 0) {
        if (has_buf)
            uring_buffer_return(ctx->uring, (uint16_t)bid);
        /* What the source sent before it closed (a server's FATAL error) reaches the peer
         * first, as on the epoll path, which does not read a source while bytes wait. */
        if (p->queue_count > 0)
            p->src_closed = true;
        else
            session_close(s, p == &s->c2s ? "client closed the connection"
                                          : "server closed the connection");
        ring_release_ref(s);
        return;
    }
    /* The completion's reference is held while relaying, so a session closed meanwhile is
     * still there to look at. */
    s->cur_buf = has_buf ? uring_buffer(ctx->uring, (uint16_t)bid) : own;
    s->cur_len = (size_t)res;
    s->cur_bid = bid; /* -1 for the pipe's own buffer: a queued chunk frees it once sent */
    s->cur_taken = false;
    if (p == &s->c2s)
        relay_client_data(s, s->cur_buf, (size_t)res);
    else
        relay_server_data(s, s->cur_buf, (size_t)res);
    if (!s->cur_taken) {
        if (has_buf)
            uring_buffer_return(ctx->uring, (uint16_t)bid);
        else
            free(own);
    }
    s->cur_buf = NULL;
    ring_arm_recv(s, p);
    ring_release_ref(s);
}

static void on_ring_send(UringOp *op, int res, unsigned flags)
{
    (void)flags;
    Pipe *p = (Pipe *)((char *)op - offsetof(Pipe, send_op));
    Session *s = p->session;
    ProxyContext *ctx = s->ctx;
    p->send_armed = false;
    if (s->zombie || pipe_dst_fd(s, p) < 0 || res == -ECANCELED) {
        /* The destination is gone: what was queued for it goes too. */
        if (p->queue_count > 0)
            ring_pop(ctx, p);
        ring_drop_queue(ctx, p);
        ring_release_ref(s);
        return;
    }
    p->send_slow = res == -EAGAIN;
    if (res == -EINTR || res == -EAGAIN) {
        ring_kick_send(s, p);
        ring_release_ref(s);
        return;
    }
    if (res <= 0) {
        session_close(s, p == &s->s2c ? "client write failed" : "server write failed");
        ring_release_ref(s);
        return;
    }
    RingChunk *c = &p->queue[p->queue_head];
    c->off += (uint32_t)res;
    c->len -= (uint32_t)res;
    if (c->len == 0)
        ring_pop(ctx, p);
    if (p->queue_count > 0) {
        ring_kick_send(s, p);
    } else if (p->src_closed || (s->state == SS_CLOSING && p == &s->s2c)) {
        session_close(s, s->state == SS_CLOSING ? "error sent to client"
                         : p == &s->c2s         ? "client closed the connection"
                                                : "server closed the connection");
        ring_release_ref(s);
        return;
    }
    ring_arm_recv(s, p);
    ring_release_ref(s);
}

void proxy_context_use_ring(ProxyContext *ctx, Uring *u)
{
    ctx->uring = u;
}

void proxy_context_run(ProxyContext *ctx)
{
    if (ctx->uring)
        uring_run(ctx->uring);
    else
        ev_run(ctx->loop, 0);
}

void proxy_context_break(ProxyContext *ctx)
{
    ev_break(ctx->loop, EVBREAK_ALL);
    uring_break(ctx->uring);
}

void proxy_context_drain_ring(ProxyContext *ctx)
{
    if (!ctx->uring)
        return;
    int64_t deadline = proxy_now_us(ctx) + RING_DRAIN_TIMEOUT_MS * 1000;
    while (ctx->zombies && proxy_now_us(ctx) < deadline)
        uring_wait(ctx->uring, 100);
    /* Operations that would not end (cannot happen short of a kernel bug): the ring's exit
     * cancels them; their sessions go now. */
    while (ctx->zombies) {
        Session *s = ctx->zombies;
        ctx->zombies = s->next;
        free(s->c2s.recv_heap);
        free(s->s2c.recv_heap);
        free(s);
    }
}

static ssize_t endpoint_send(int fd, SSL *ssl, const uint8_t *data, size_t len);

void session_close_now(Session *s)
{
    /* Like the server's own shutdown: a client between messages is told why (57P01). */
    if ((s->state == SS_RELAY || s->state == SS_STARTUP) && !pipe_busy(&s->s2c) &&
        msgcapture_at_boundary(&s->s2c.msgs) && !s->auth_rewrite) {
        uint8_t packet[256];
        size_t len = pgw_build_error(packet, sizeof packet, "FATAL", "57P01",
                                     "terminating connection: pgtally is shutting down");
        if (endpoint_send(s->client_fd, s->client_ssl, packet, len) < 0)
            LOG_DEBUG_CONN(s->id, "could not send the shutdown error");
    }
    session_close(s, "proxy shutting down");
}

/* ---- socket or TLS I/O -------------------------------------------------------------------------
 */

/* Writes like send(): bytes written, 0 when the socket would block, -1 on a fatal error. */
static ssize_t endpoint_send(int fd, SSL *ssl, const uint8_t *data, size_t len)
{
    if (!ssl) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        return n;
    }
    int n = SSL_write(ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(ssl, n);
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
}

/* Reads like recv() into buf: bytes read, 0 when nothing is there now, -1 when the peer
 * closed or failed. With TLS it keeps reading records until buf is full or the socket is
 * empty, so one wake-up drains what arrived. */
static ssize_t endpoint_recv(int fd, SSL *ssl, uint8_t *buf, size_t cap)
{
    if (!ssl) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n > 0)
            return n;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        return -1;
    }
    size_t total = 0;
    while (total < cap) {
        size_t want = cap - total;
        int n = SSL_read(ssl, buf + total, want > INT32_MAX ? INT32_MAX : (int)want);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        return total > 0 ? (ssize_t)total : -1;
    }
    return (ssize_t)total;
}

/* TLS may hold decrypted bytes the socket no longer signals: make the loop look again. */
static void poke_if_buffered(Session *s, SSL *ssl, ev_io *read_watcher)
{
    if (ssl && SSL_pending(ssl) > 0 && ev_is_active(read_watcher))
        ev_feed_event(s->ctx->loop, read_watcher, EV_READ);
}

/* ---- sending ----------------------------------------------------------------------------------
 */

/* Sends bytes to the pipe's destination: straight to the socket when nothing is queued, the
 * rest into the pending buffer. While anything is pending the source is not read
 * (backpressure). Returns false on a fatal socket error or when out of memory. */
static bool pipe_send(Session *s, Pipe *p, int dst_fd, SSL *dst_ssl, const uint8_t *data,
                      size_t len)
{
    ProxyContext *ctx = s->ctx;
    if (len == 0)
        return true;
    if (s->ring)
        return ring_enqueue(s, p, data, len);
    if (p->pending_len == 0) {
        ssize_t n = endpoint_send(dst_fd, dst_ssl, data, len);
        if (n < 0)
            return false;
        if ((size_t)n == len)
            return true;
        data += n;
        len -= (size_t)n;
    }
    if (!p->pending) {
        p->pending = pool_get(ctx);
        if (!p->pending)
            return false;
        p->pending_off = 0;
        p->pending_len = 0;
    }
    if (p->pending_off + p->pending_len + len > ctx->pending_cap) {
        memmove(p->pending, p->pending + p->pending_off, p->pending_len);
        p->pending_off = 0;
    }
    if (p->pending_len + len > ctx->pending_cap)
        return false; /* cannot happen: the source is not read while anything is pending */
    memcpy(p->pending + p->pending_off + p->pending_len, data, len);
    p->pending_len += len;
    ev_io_start(ctx->loop, &p->write_watcher);
    ev_io_stop(ctx->loop, &p->read_watcher);
    return true;
}

static bool send_to_client(Session *s, const uint8_t *data, size_t len)
{
    s->ctx->stats.bytes_server_to_client += len;
    return pipe_send(s, &s->s2c, s->client_fd, s->client_ssl, data, len);
}

static bool send_to_server(Session *s, const uint8_t *data, size_t len)
{
    s->ctx->stats.bytes_client_to_server += len;
    return pipe_send(s, &s->c2s, s->server_fd, s->server_ssl, data, len);
}

/* Reports an error to the client as an ErrorResponse, then closes. The message is only
 * written where the client expects a message boundary; mid-message, the socket just closes. */
static void session_fail(Session *s, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void session_send_fatal(Session *s, const char *sqlstate, const char *message);

static void session_fail(Session *s, const char *sqlstate, const char *fmt, ...)
{
    ProxyContext *ctx = s->ctx;
    char message[ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    log_line(LOG_WARN, s->id, "%s (sqlstate %s)", message, sqlstate);
    if (strcmp(sqlstate, "08P01") == 0)
        ctx->stats.protocol_errors++;
    session_send_fatal(s, sqlstate, message);
}

/* session_fail without the log line (the caller accounts for it). */
static void session_send_fatal(Session *s, const char *sqlstate, const char *message)
{
    ProxyContext *ctx = s->ctx;
    close_server(s);
    ev_io_stop(ctx->loop, &s->c2s.read_watcher);
    ring_stop_recv(s, &s->c2s);
    bool at_boundary = s->state != SS_RAW && msgcapture_at_boundary(&s->s2c.msgs);
    s->state = SS_CLOSING;
    if (!at_boundary) {
        session_close(s, message);
        return;
    }
    uint8_t packet[ERROR_MESSAGE_MAX + 64];
    size_t len = pgw_build_error(packet, sizeof packet, "FATAL", sqlstate, message);
    if (!send_to_client(s, packet, len) || !pipe_busy(&s->s2c)) {
        session_close(s, message);
        return;
    }
    ev_timer_stop(ctx->loop, &s->timer);
    ev_timer_set(&s->timer, CLOSING_TIMEOUT, 0.);
    ev_timer_start(ctx->loop, &s->timer);
}

/* ---- relay: client -> server -------------------------------------------------------------- */

/* The trackers' shared byte bound was reached: say so, at most once a second, with a count.
 * The relay goes on; only tracking gives way. */
static void note_tracker_budget(ProxyContext *ctx, int64_t now)
{
    const TrackerBudget *b = &ctx->tracker_budget;
    if (b->hits == ctx->tracker_budget_hits_logged || now - ctx->tracker_budget_logged_us < 1000000)
        return;
    log_line(LOG_WARN, 0,
             "tracker memory limit of %zu bytes reached over all connections: %" PRIu64
             " statement(s) or name(s) not tracked since the last report (the relay goes on)",
             b->limit, b->hits - ctx->tracker_budget_hits_logged);
    ctx->tracker_budget_hits_logged = b->hits;
    ctx->tracker_budget_logged_us = now;
}

/* Frames client bytes, validates each message and feeds the tracker, then forwards every
 * byte before the first bad message. Returns false when the session ended. */
static bool relay_client_bytes(Session *s, const uint8_t *data, size_t len, int64_t now)
{
    MsgCapture *mc = &s->c2s.msgs;
    size_t pos = 0;
    size_t msg_start = 0; /* where the current message began in this feed (0: earlier) */
    const char *problem = NULL;
    uint8_t bad_type = 0;

    while (pos < len) {
        if (msgcapture_at_boundary(mc))
            msg_start = pos;
        MsgCaptured msg;
        size_t used;
        MsgCaptureStatus st = msgcapture_feed(mc, data + pos, len - pos, &used, &msg, &problem);
        pos += used;
        if (st == MSGCAP_NEED_MORE)
            break;
        if (st == MSGCAP_INVALID) {
            bad_type = msg.type;
            break;
        }
        if (st == MSGCAP_NO_MEMORY) {
            session_fail(s, "53200", "out of memory");
            return false;
        }
        tracker_on_frontend(s->tracker, msg.type, msg.body, msg.have, msg.body_len, now);
        msgcapture_done(mc);
    }
    note_tracker_budget(s->ctx, now);

    size_t forward = problem ? msg_start : len;
    if (!send_to_server(s, data, forward)) {
        session_close(s, "server write failed");
        return false;
    }
    if (problem) {
        if (bad_type >= 0x20 && bad_type < 0x7f)
            session_fail(s, "08P01", "invalid frontend message (type '%c'): %s", bad_type, problem);
        else
            session_fail(s, "08P01", "invalid frontend message (type 0x%02x): %s", bad_type,
                         problem);
        return false;
    }
    return true;
}

/* ---- relay: server -> client -------------------------------------------------------------- */

/* Frames server bytes (already forwarded) and feeds the tracker. */
static bool inspect_server_bytes(Session *s, const uint8_t *data, size_t len, int64_t now)
{
    MsgCapture *mc = &s->s2c.msgs;
    size_t pos = 0;
    while (pos < len) {
        MsgCaptured msg;
        const char *problem;
        size_t used;
        MsgCaptureStatus st = msgcapture_feed(mc, data + pos, len - pos, &used, &msg, &problem);
        pos += used;
        if (st == MSGCAP_NEED_MORE)
            break;
        if (st == MSGCAP_INVALID) {
            log_line(LOG_WARN, s->id, "server sent a message with an invalid length");
            session_close(s, "server protocol error");
            return false;
        }
        if (st == MSGCAP_NO_MEMORY) {
            session_close(s, "out of memory");
            return false;
        }
        tracker_on_backend(s->tracker, msg.type, msg.body, msg.have, msg.body_len, now);
        msgcapture_done(mc);
    }
    return true;
}

/* ---- reading ----------------------------------------------------------------------------------
 */

/* Reads once from fd into the scratch buffer. Returns the byte count, 0 when there is
 * nothing to read now, -1 when the peer closed or failed. */
static ssize_t read_some(Session *s, int fd, SSL *ssl)
{
    return endpoint_recv(fd, ssl, s->ctx->scratch, s->ctx->scratch_size);
}

static void note_activity(Session *s)
{
    if (s->timer.repeat > 0.)
        ev_timer_again(s->ctx->loop, &s->timer);
}

static void relay_from_client(Session *s)
{
    ssize_t n = read_some(s, s->client_fd, s->client_ssl);
    if (n == 0)
        return;
    note_activity(s);
    if (n < 0) {
        session_close(s, "client closed the connection");
        return;
    }
    if (s->state == SS_RAW) {
        if (!send_to_server(s, s->ctx->scratch, (size_t)n))
            session_close(s, "server write failed");
        else
            poke_if_buffered(s, s->client_ssl, &s->c2s.read_watcher);
        return;
    }
    if (relay_client_bytes(s, s->ctx->scratch, (size_t)n, proxy_now_us(s->ctx)))
        poke_if_buffered(s, s->client_ssl, &s->c2s.read_watcher);
}

static bool relay_server_auth(Session *s, const uint8_t *data, size_t len, int64_t now);

/* Ring mode: what relay_from_client and relay_from_server do with bytes received. */
static void relay_client_data(Session *s, const uint8_t *data, size_t n)
{
    note_activity(s);
    if (s->state == SS_RAW) {
        if (!send_to_server(s, data, n))
            session_close(s, "server write failed");
        return;
    }
    relay_client_bytes(s, data, n, proxy_now_us(s->ctx));
}

static void relay_server_data(Session *s, const uint8_t *data, size_t n)
{
    note_activity(s);
    if (s->auth_rewrite) {
        relay_server_auth(s, data, n, proxy_now_us(s->ctx));
        return;
    }
    if (!send_to_client(s, data, n)) {
        session_close(s, "client write failed");
        return;
    }
    if (s->state == SS_RELAY)
        inspect_server_bytes(s, data, n, proxy_now_us(s->ctx));
}

static void relay_from_server(Session *s)
{
    ssize_t n = read_some(s, s->server_fd, s->server_ssl);
    if (n == 0)
        return;
    note_activity(s);
    if (n < 0) {
        session_close(s, "server closed the connection");
        return;
    }
    if (s->auth_rewrite) {
        if (relay_server_auth(s, s->ctx->scratch, (size_t)n, proxy_now_us(s->ctx)))
            poke_if_buffered(s, s->server_ssl, &s->s2c.read_watcher);
        return;
    }
    /* Forward first, inspect second: the client never waits for pgtally to think. */
    if (!send_to_client(s, s->ctx->scratch, (size_t)n)) {
        session_close(s, "client write failed");
        return;
    }
    if (s->state == SS_RELAY &&
        !inspect_server_bytes(s, s->ctx->scratch, (size_t)n, proxy_now_us(s->ctx)))
        return;
    poke_if_buffered(s, s->server_ssl, &s->s2c.read_watcher);
}

/* ---- SCRAM-SHA-256-PLUS removal (TLS terminated on the client leg) ----------------------- */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Forwards one complete server message, rewriting AuthenticationSASL's mechanism list
 * without SCRAM-SHA-256-PLUS (in place: the list only shrinks). Returns false when the
 * session ended. */
static bool forward_auth_message(Session *s, uint8_t *msg, size_t len, int64_t now)
{
    size_t out_len = len;
    PgstartupSasl rc = pgstartup_sasl_remove(msg, len, "SCRAM-SHA-256-PLUS", msg, &out_len);
    if (rc == PGSTARTUP_SASL_MALFORMED) {
        /* The client cannot be handed a list pgtally could not read: it would pick a
         * mechanism from bytes the server never meant as one. */
        session_fail(s, "08P01",
                     "the server sent a malformed AuthenticationSASL message (%zu bytes): "
                     "its mechanism list is not terminated by an empty name",
                     len);
        return false;
    }
    if (!send_to_client(s, msg, out_len)) {
        session_close(s, "client write failed");
        return false;
    }
    return inspect_server_bytes(s, msg, out_len, now);
}

static bool relay_server_auth(Session *s, const uint8_t *data, size_t len, int64_t now)
{
    if (s->auth_hold_len + len > AUTH_HOLD_LIMIT) {
        session_close(s, "server authentication messages too large");
        return false;
    }
    uint8_t *hold = realloc(s->auth_hold, s->auth_hold_len + len);
    if (!hold) {
        session_close(s, "out of memory");
        return false;
    }
    s->auth_hold = hold;
    memcpy(hold + s->auth_hold_len, data, len);
    s->auth_hold_len += len;

    size_t pos = 0;
    while (s->auth_rewrite && s->auth_hold_len - pos >= 5) {
        uint32_t mlen = be32(s->auth_hold + pos + 1);
        if (mlen < 4) {
            session_close(s, "server protocol error");
            return false;
        }
        if (s->auth_hold_len - pos < (size_t)mlen + 1)
            break;
        uint8_t *msg = s->auth_hold + pos;
        /* AuthenticationOk: nothing more to rewrite; the rest is forwarded as is. */
        if (msg[0] == 'R' && mlen >= 8 && be32(msg + 5) == 0)
            s->auth_rewrite = false;
        if (!forward_auth_message(s, msg, (size_t)mlen + 1, now))
            return false;
        pos += (size_t)mlen + 1;
    }
    if (!s->auth_rewrite && pos < s->auth_hold_len) {
        const uint8_t *rest = s->auth_hold + pos;
        size_t rest_len = s->auth_hold_len - pos;
        if (!send_to_client(s, rest, rest_len)) {
            session_close(s, "client write failed");
            return false;
        }
        if (!inspect_server_bytes(s, rest, rest_len, now))
            return false;
        pos = s->auth_hold_len;
    }
    memmove(s->auth_hold, s->auth_hold + pos, s->auth_hold_len - pos);
    s->auth_hold_len -= pos;
    if (!s->auth_rewrite) {
        free(s->auth_hold);
        s->auth_hold = NULL;
    }
    return true;
}

/* ---- connecting --------------------------------------------------------------------------- */

static void start_connect(Session *s);
static void connect_failed(Session *s, const char *why);

/* The upstream leg is ready (TCP, and TLS when negotiated): send the client's startup
 * packet and relay. */
static void start_relay(Session *s)
{
    ProxyContext *ctx = s->ctx;
    ev_timer_stop(ctx->loop, &s->timer);
    ev_io_stop(ctx->loop, &s->c2s.write_watcher);

    s->state = s->replication ? SS_RAW : SS_RELAY;
    if (s->state == SS_RELAY) {
        s->tracker = tracker_new(s->id, &ctx->tracker_limits, ctx->workspace, &ctx->tracker_budget,
                                 emit_to_context, ctx);
        if (!s->tracker) {
            session_fail(s, "53200", "out of memory");
            return;
        }
        tracker_await_authentication(s->tracker);
    }
    /* Legs that differ in TLS: a client on TLS must not pick channel binding the server
     * cannot honour, and the reverse is harmless to rewrite too. (Both legs on TLS: binding
     * to pgtally's certificate can never verify upstream; see docs/tls.md.) */
    s->auth_rewrite = (s->client_ssl != NULL) != (s->server_ssl != NULL) && !s->replication;
    if (ctx->config->idle_timeout > 0) {
        /* Re-armed on every read (ev_timer_again: no syscall), so it fires only after
         * idle_timeout seconds without traffic either way. */
        ev_timer_set(&s->timer, 0., ctx->config->idle_timeout);
        ev_timer_again(ctx->loop, &s->timer);
    }
    /* Plain sockets with nothing pending relay on the ring; TLS stays on the watchers
     * (OpenSSL reads and writes its sockets itself). */
    if (ctx->uring && !s->client_ssl && !s->server_ssl && !pipe_busy(&s->c2s) &&
        !pipe_busy(&s->s2c)) {
        s->ring = true;
        ev_io_stop(ctx->loop, &s->s2c.read_watcher);
        ev_io_stop(ctx->loop, &s->c2s.read_watcher);
        ev_io_stop(ctx->loop, &s->s2c.write_watcher);
        uring_forget_fd(ctx->uring, s->client_fd);
        uring_forget_fd(ctx->uring, s->server_fd);
        ring_arm_recv(s, &s->c2s);
        ring_arm_recv(s, &s->s2c);
    } else {
        ev_io_start(ctx->loop, &s->s2c.read_watcher);
        ev_io_start(ctx->loop, &s->c2s.read_watcher);
    }

    uint8_t *startup = s->startup;
    size_t startup_len = s->startup_len;
    uint32_t packet_len = s->startup_packet_len;
    s->startup = NULL;
    bool ok = send_to_server(s, startup, packet_len);
    if (ok && startup_len > packet_len) {
        /* The client sent more after its startup packet without waiting: relay it too. */
        if (s->state == SS_RAW)
            ok = send_to_server(s, startup + packet_len, startup_len - packet_len);
        else if (!relay_client_bytes(s, startup + packet_len, startup_len - packet_len,
                                     proxy_now_us(s->ctx))) {
            free(startup);
            return;
        }
    }
    free(startup);
    if (!ok) {
        session_close(s, "server write failed");
        return;
    }
    poke_if_buffered(s, s->client_ssl, &s->c2s.read_watcher);
}

/* One step of a non-blocking TLS handshake on one socket: watch whichever direction OpenSSL
 * needs next. Returns 1 when done, 0 to wait, -1 on failure (described in why). */
static int handshake_step(Session *s, SSL *ssl, ev_io *read_watcher, ev_io *write_watcher,
                          char *why, size_t why_len)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        ev_io_stop(s->ctx->loop, write_watcher);
        return 1;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        ev_io_stop(s->ctx->loop, write_watcher);
        ev_io_start(s->ctx->loop, read_watcher);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ev_io_start(s->ctx->loop, write_watcher);
        return 0;
    }
    tls_describe_error(ssl, e, why, why_len);
    return -1;
}

/* Drives the upstream TLS handshake; relays once it is done. */
static void drive_upstream_handshake(Session *s)
{
    char why[300], msg[400];
    int rc = handshake_step(s, s->server_ssl, &s->s2c.read_watcher, &s->c2s.write_watcher, why,
                            sizeof why);
    if (rc == 1) {
        LOG_DEBUG_CONN(s->id, "upstream TLS: %s", SSL_get_version(s->server_ssl));
        start_relay(s);
    } else if (rc < 0) {
        snprintf(msg, sizeof msg, "SSL error: %s", why);
        connect_failed(s, msg);
    }
}

/* The server's one-byte answer to our SSLRequest. Exactly one byte is read: anything the
 * server sent after it would not be protected by TLS. */
static void read_upstream_ssl_answer(Session *s)
{
    ProxyContext *ctx = s->ctx;
    uint8_t answer;
    ssize_t n = recv(s->server_fd, &answer, 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        connect_failed(s, "server closed the connection after SSLRequest");
        return;
    }
    UpstreamTls *tls = ctx->upstream_tls;
    if (answer == 'S') {
        char why[400];
        s->server_ssl = tls_upstream_ssl_new(tls, s->server_fd, why, sizeof why);
        if (!s->server_ssl) {
            connect_failed(s, why);
            return;
        }
        s->state = SS_UPSTREAM_TLS_HANDSHAKE;
        drive_upstream_handshake(s);
        return;
    }
    if (answer == 'N' && tls->mode == SSLMODE_PREFER) {
        start_relay(s);
        return;
    }
    char msg[200];
    if (answer == 'N')
        snprintf(msg, sizeof msg, "server does not support SSL, but sslmode=%s requires it",
                 tls_sslmode_name(tls->mode));
    else
        snprintf(msg, sizeof msg, "unexpected answer 0x%02x to SSLRequest", answer);
    connect_failed(s, msg);
}

/* The upstream accepted the TCP connection: negotiate TLS if configured, else relay. */
static void on_connected(Session *s)
{
    ProxyContext *ctx = s->ctx;
    ev_io_stop(ctx->loop, &s->c2s.write_watcher);

    if (s->state == SS_CANCEL) {
        /* The server answers a CancelRequest by closing; nothing flows back. */
        if (send(s->server_fd, s->startup, s->startup_packet_len, MSG_NOSIGNAL) < 0)
            log_line(LOG_WARN, s->id, "forwarding CancelRequest failed: %s", strerror(errno));
        session_close(s, "cancel request forwarded");
        return;
    }
    const UpstreamTls *tls = ctx->upstream_tls;
    if (tls && tls->mode >= SSLMODE_PREFER && !s->ctx->upstream->is_unix) {
        static const uint8_t ssl_request[SSL_REQUEST_SIZE] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
        if (send(s->server_fd, ssl_request, sizeof ssl_request, MSG_NOSIGNAL) !=
            (ssize_t)sizeof ssl_request) {
            connect_failed(s, strerror(errno));
            return;
        }
        s->state = SS_UPSTREAM_SSL_ANSWER;
        ev_io_start(ctx->loop, &s->s2c.read_watcher);
        return;
    }
    start_relay(s);
}

static void connect_failed(Session *s, const char *why)
{
    s->ctx->stats.server_connect_failures++;
    session_fail(s, "08006", "pgtally could not connect to the upstream server %s: %s",
                 s->ctx->upstream->display, why);
}

static void start_connect(Session *s)
{
    ProxyContext *ctx = s->ctx;
    Upstream *up = ctx->upstream;
    if (up->n_addrs == 0) {
        char err[256];
        if (!upstream_resolve(up, err, sizeof err)) {
            connect_failed(s, err);
            return;
        }
    }
    while (s->next_addr < up->n_addrs) {
        int fd = upstream_connect_start(up, s->next_addr++);
        if (fd < 0) {
            s->last_connect_error = errno;
            continue;
        }
        s->server_fd = fd;
        ev_io_set(&s->c2s.write_watcher, fd, EV_WRITE);
        ev_io_set(&s->s2c.read_watcher, fd, EV_READ);
        ev_io_start(ctx->loop, &s->c2s.write_watcher);
        ev_timer_stop(ctx->loop, &s->timer);
        ev_timer_set(&s->timer, ctx->config->connect_timeout, 0.);
        ev_timer_start(ctx->loop, &s->timer);
        return;
    }
    connect_failed(s, strerror(s->last_connect_error ? s->last_connect_error : ECONNREFUSED));
}

/* Writability of the server socket while connecting: the connect finished, one way or the
 * other. */
static void on_connect_ready(Session *s)
{
    int err = upstream_connect_result(s->server_fd);
    if (err == 0) {
        on_connected(s);
        return;
    }
    s->last_connect_error = err;
    close_server(s);
    start_connect(s);
}

/* ---- startup phase ----------------------------------------------------------------------------
 */

/* Drives the client-side TLS handshake; back to reading the startup packet once done. */
static void drive_client_handshake(Session *s)
{
    char why[300];
    int rc = handshake_step(s, s->client_ssl, &s->c2s.read_watcher, &s->s2c.write_watcher, why,
                            sizeof why);
    if (rc == 1) {
        LOG_DEBUG_CONN(s->id, "client TLS: %s", SSL_get_version(s->client_ssl));
        s->state = SS_STARTUP;
        ev_io_start(s->ctx->loop, &s->c2s.read_watcher);
        poke_if_buffered(s, s->client_ssl, &s->c2s.read_watcher);
    } else if (rc < 0) {
        log_line(LOG_WARN, s->id, "client TLS handshake failed: %s", why);
        session_close(s, "client TLS handshake failed");
    }
}

/* The client asked for TLS: 'S' and a handshake when pgtally has a certificate, else 'N'. */
static void answer_ssl_request(Session *s)
{
    SSL_CTX *server_ctx = s->ctx->client_tls_ctx;
    if (!server_ctx || s->client_ssl) {
        if (!send_to_client(s, (const uint8_t *)"N", 1))
            session_close(s, "client write failed");
        return;
    }
    if (send(s->client_fd, "S", 1, MSG_NOSIGNAL) != 1) {
        session_close(s, "client write failed");
        return;
    }
    s->client_ssl = tls_client_ssl_new(server_ctx, s->client_fd);
    if (!s->client_ssl) {
        session_close(s, "out of memory");
        return;
    }
    s->state = SS_CLIENT_TLS_HANDSHAKE;
    drive_client_handshake(s);
}

/* Reads the startup packet's `replication` parameter as the server will: a walsender
 * connection is relayed raw, a normal one is tracked, and a value the server would refuse is
 * refused here with the server's own error. Returns false when the session ended. */
static bool classify_replication(Session *s, uint32_t plen)
{
    PgwStr bad = {0};
    PgstartupReplication r = pgstartup_replication(s->startup, plen, &bad);
    if (r == PGSTARTUP_REPLICATION_INVALID) {
        session_fail(s, "22023", "invalid value for parameter \"replication\": \"%.*s\"",
                     bad.len > 200 ? 200 : (int)bad.len, bad.ptr);
        return false;
    }
    s->replication = r != PGSTARTUP_REPLICATION_OFF;
    return true;
}

/* Handles every complete startup-phase packet in the buffer. */
static void process_startup(Session *s)
{
    for (;;) {
        uint32_t plen = 0;
        PgwStartupKind kind = pgw_startup_classify(s->startup, s->startup_len, &plen);
        switch (kind) {
        case PGW_STARTUP_NEED_MORE:
            return;
        case PGW_STARTUP_TOO_LONG:
            session_fail(s, "08P01", "startup packet too long: %u bytes (the limit is %u)", plen,
                         PGW_STARTUP_MAX_LEN);
            return;
        case PGW_STARTUP_BAD:
            session_fail(s, "08P01", "invalid startup packet (length %u)", plen);
            return;
        case PGW_STARTUP_SSL:
        case PGW_STARTUP_GSSENC:
            if (s->startup_len > plen) {
                /* Bytes sent before our answer would be read as if encrypted: an injection
                 * attempt (CVE-2021-23214), never forwarded. */
                session_fail(s, "08P01", "received unencrypted data after %s",
                             kind == PGW_STARTUP_SSL ? "SSL request" : "GSSAPI encryption request");
                return;
            }
            s->startup_len = 0;
            if (kind == PGW_STARTUP_SSL) {
                answer_ssl_request(s);
                return;
            }
            if (!send_to_client(s, (const uint8_t *)"N", 1)) {
                session_close(s, "client write failed");
                return;
            }
            continue;
        case PGW_STARTUP_CANCEL:
            s->startup_packet_len = plen;
            s->state = SS_CANCEL;
            ev_io_stop(s->ctx->loop, &s->c2s.read_watcher);
            start_connect(s);
            return;
        case PGW_STARTUP_STARTUP:
            if (s->refused) {
                /* Where the server says it is full: after the SSL answer and the startup
                 * packet, so the client reads the error whatever its sslmode. The acceptor
                 * logs refusals (rate-limited), so no line per client here. */
                session_send_fatal(s, "53300", SESSION_TOO_MANY_CLIENTS);
                return;
            }
            s->startup_packet_len = plen;
            if (!classify_replication(s, plen))
                return;
            s->state = SS_CONNECTING;
            ev_io_stop(s->ctx->loop, &s->c2s.read_watcher);
            start_connect(s);
            return;
        }
    }
}

static void read_startup(Session *s)
{
    if (!s->startup) {
        s->startup = malloc(STARTUP_BUFFER_SIZE);
        if (!s->startup) {
            session_close(s, "out of memory");
            return;
        }
    }
    ssize_t n = endpoint_recv(s->client_fd, s->client_ssl, s->startup + s->startup_len,
                              STARTUP_BUFFER_SIZE - s->startup_len);
    if (n < 0) {
        session_close(s, "client closed during startup");
        return;
    }
    if (n == 0)
        return;
    s->startup_len += (size_t)n;
    process_startup(s);
}

/* ---- watcher callbacks -------------------------------------------------------------------- */

static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Session *s = w->data;
    switch (s->state) {
    case SS_STARTUP:
        read_startup(s);
        break;
    case SS_CLIENT_TLS_HANDSHAKE:
        drive_client_handshake(s);
        break;
    case SS_RELAY:
    case SS_RAW:
        relay_from_client(s);
        break;
    default:
        ev_io_stop(s->ctx->loop, w);
        break;
    }
}

static void on_server_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Session *s = w->data;
    switch (s->state) {
    case SS_RELAY:
    case SS_RAW:
        relay_from_server(s);
        break;
    case SS_UPSTREAM_SSL_ANSWER:
        read_upstream_ssl_answer(s);
        break;
    case SS_UPSTREAM_TLS_HANDSHAKE:
        drive_upstream_handshake(s);
        break;
    default:
        ev_io_stop(s->ctx->loop, w);
        break;
    }
}

/* Drains a pipe's pending bytes; when empty, reading the source resumes. */
static void flush_pending(Session *s, Pipe *p, int dst_fd, SSL *dst_ssl, SSL *src_ssl)
{
    ProxyContext *ctx = s->ctx;
    ssize_t n = endpoint_send(dst_fd, dst_ssl, p->pending + p->pending_off, p->pending_len);
    if (n < 0) {
        session_close(s, p == &s->s2c ? "client write failed" : "server write failed");
        return;
    }
    p->pending_off += (size_t)n;
    p->pending_len -= (size_t)n;
    if (p->pending_len > 0)
        return;
    ev_io_stop(ctx->loop, &p->write_watcher);
    pool_put(ctx, p->pending);
    p->pending = NULL;
    if (s->state == SS_CLOSING) {
        session_close(s, "error sent to client");
        return;
    }
    if (s->state == SS_RELAY || s->state == SS_RAW) {
        ev_io_start(ctx->loop, &p->read_watcher);
        poke_if_buffered(s, src_ssl, &p->read_watcher);
    }
}

static void on_client_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Session *s = w->data;
    if (s->state == SS_CLIENT_TLS_HANDSHAKE)
        drive_client_handshake(s);
    else
        flush_pending(s, &s->s2c, s->client_fd, s->client_ssl, s->server_ssl);
}

static void on_server_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Session *s = w->data;
    if (s->state == SS_CONNECTING || s->state == SS_CANCEL)
        on_connect_ready(s);
    else if (s->state == SS_UPSTREAM_TLS_HANDSHAKE)
        drive_upstream_handshake(s);
    else
        flush_pending(s, &s->c2s, s->server_fd, s->server_ssl, s->client_ssl);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Session *s = w->data;
    switch (s->state) {
    case SS_STARTUP:
    case SS_CLIENT_TLS_HANDSHAKE:
        if (s->refused) {
            /* Refused anyway: it is told why, and the acceptor has counted it already. */
            session_send_fatal(s, "53300", SESSION_TOO_MANY_CLIENTS);
            break;
        }
        session_fail(s, "08006", "startup packet not received within %g s",
                     s->ctx->config->startup_timeout);
        break;
    case SS_CONNECTING:
    case SS_CANCEL:
        s->last_connect_error = ETIMEDOUT;
        close_server(s);
        start_connect(s);
        break;
    case SS_UPSTREAM_SSL_ANSWER:
    case SS_UPSTREAM_TLS_HANDSHAKE:
        connect_failed(s, "TLS negotiation timed out");
        break;
    case SS_RELAY:
    case SS_RAW:
        /* A statement that runs long without sending anything is not idleness. */
        if (s->tracker && !tracker_is_idle(s->tracker)) {
            ev_timer_again(s->ctx->loop, &s->timer);
            break;
        }
        session_fail(s, "57P05", "pgtally: closing the connection after %g s idle",
                     s->ctx->config->idle_timeout);
        break;
    default:
        session_close(s, "timed out");
        break;
    }
}

/* ---- start --------------------------------------------------------------------------------------
 */

static void pipe_init(Pipe *p, Session *s, MsgDirection direction, size_t capture_limit,
                      MsgWantsBodyFn wants_body)
{
    memset(p, 0, sizeof *p);
    msgcapture_init(&p->msgs, direction, capture_limit, wants_body);
    p->session = s;
    p->recv_op.fn = on_ring_recv;
    p->send_op.fn = on_ring_send;
    p->read_watcher.data = s;
    p->write_watcher.data = s;
}

static bool session_new(ProxyContext *ctx, int client_fd, bool refused)
{
    Session *s = calloc(1, sizeof *s);
    if (!s) {
        close(client_fd);
        return false;
    }
    s->ctx = ctx;
    s->refused = refused;
    s->id = ++ctx->next_conn_id;
    s->state = SS_STARTUP;
    s->client_fd = client_fd;
    s->server_fd = -1;
    /* Parse carries the SQL plus names and types; leave room beyond the SQL limit. */
    pipe_init(&s->c2s, s, MSG_FRONTEND, ctx->tracker_limits.max_sql_bytes + 1024,
              tracker_wants_frontend_body);
    pipe_init(&s->s2c, s, MSG_BACKEND, BACKEND_CAPTURE_LIMIT, tracker_wants_backend_body);
    ev_io_init(&s->c2s.read_watcher, on_client_readable, client_fd, EV_READ);
    ev_io_init(&s->s2c.write_watcher, on_client_writable, client_fd, EV_WRITE);
    ev_io_init(&s->s2c.read_watcher, on_server_readable, -1, EV_READ);
    ev_io_init(&s->c2s.write_watcher, on_server_writable, -1, EV_WRITE);
    double startup_timeout = ctx->config->startup_timeout;
    if (refused && startup_timeout > REFUSAL_TIMEOUT)
        startup_timeout = REFUSAL_TIMEOUT;
    ev_timer_init(&s->timer, on_timer, startup_timeout, 0.);
    s->timer.data = s;

    s->next = ctx->sessions;
    if (s->next)
        s->next->prev = s;
    ctx->sessions = s;
    if (refused)
        ctx->n_refusing++;
    else
        ctx->n_sessions++;

    ev_io_start(ctx->loop, &s->c2s.read_watcher);
    ev_timer_start(ctx->loop, &s->timer);
    LOG_DEBUG_CONN(s->id, refused ? "client connected over the limit" : "client connected");
    return true;
}

bool session_start(ProxyContext *ctx, int client_fd)
{
    return session_new(ctx, client_fd, false);
}

bool session_start_refused(ProxyContext *ctx, int client_fd)
{
    return session_new(ctx, client_fd, true);
}
