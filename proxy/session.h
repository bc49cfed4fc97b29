/* proxy/session — one client <-> server connection pair.
 *
 * Owns: the two sockets, the startup phase (SSLRequest / GSSENCRequest answered 'N', startup
 * packet limits, CancelRequest forwarding, replication pass-through, the 53300 answer to
 * clients over the connection limit), the upstream connect,
 * the relay with bounded buffers and backpressure, message framing in both directions with
 * validation of client messages, and feeding the tracker.
 *
 * Buffers: bytes are read into the context's shared scratch buffer and written straight to
 * the peer. Only what the peer's socket would not take is copied into a per-direction pending
 * buffer (from a small pool), and while it is non-empty the source is not read: that is the
 * backpressure, and it bounds memory per connection to one pending buffer per direction. An
 * idle connection holds no buffers at all. */
#ifndef PGTALLY_PROXY_SESSION_H
#define PGTALLY_PROXY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "proxy/config.h"
#include "proxy/tls.h"
#include "protocol/tracker.h"
#include "proxy/upstream.h"
#include "proxy/uring.h"

typedef struct Session Session;

/* Counters the daemon reports (and, later, exports as metrics). */
typedef struct ProxyStats {
    uint64_t clients_accepted;
    uint64_t clients_rejected;
    uint64_t server_connect_failures;
    uint64_t protocol_errors;
    uint64_t bytes_client_to_server;
    uint64_t bytes_server_to_client;
    uint64_t events;
    uint64_t untracked; /* statements trackers could not attribute (closed connections) */
} ProxyStats;

/* State shared by every session of the loop, owned by the daemon (the loop's owner). */
typedef struct ProxyContext {
    struct ev_loop *loop;
    const ProxyConfig *config;
    Upstream *upstream;
    UpstreamTls *upstream_tls; /* sslmode and context for the upstream leg (made at first use
                                * for sslmode=prefer, see proxy/tls) */
    SSL_CTX *client_tls_ctx;   /* set when pgtally terminates clients' TLS */
    TrackerLimits tracker_limits;
    TrackerWorkspace *workspace; /* normalizer scratch shared by every session's tracker */
    TrackerEmitFn emit;          /* completed-statement events go here */
    void *emit_ctx;

    uint8_t *scratch; /* one read's worth of bytes, reused by every session */
    size_t scratch_size;
    size_t pending_cap; /* scratch_size plus room for one message pgtally writes itself */
    void **free_buffers;
    size_t n_free_buffers;
    size_t max_free_buffers;

    Session *sessions; /* doubly linked list of live sessions, refused ones included */
    size_t n_sessions; /* sessions that count against max_client_conn */
    size_t n_refusing; /* refused clients still being told why (session_start_refused) */
    uint64_t next_conn_id;
    ProxyStats stats;
    void (*on_session_closed)(struct ProxyContext *ctx);
    void *owner;             /* the daemon, for on_session_closed */
    int64_t clock_offset_us; /* wall clock minus monotonic clock at start (proxy_now_us) */
    /* After a tracked connection ended (its last events were emitted). */
    void (*on_connection_closed)(struct ProxyContext *ctx, uint64_t conn_id);

    /* The io_uring data path, or NULL (epoll). Plain-socket sessions relay on it once both
     * legs are connected; TLS sessions stay on libev's watchers. */
    Uring *uring;
    struct Session *zombies; /* closed sessions waiting for their ring operations to end */

    /* What every session's tracker keeps, bounded together; hits are logged once a second. */
    TrackerBudget tracker_budget;
    uint64_t tracker_budget_hits_logged;
    int64_t tracker_budget_logged_us;
} ProxyContext;

/* Event times: wall-clock microseconds that never go backwards (a monotonic clock anchored to
 * the wall clock once, at start), so durations stay right if NTP steps the clock. */
void proxy_clock_init(ProxyContext *ctx);
int64_t proxy_now_us(const ProxyContext *ctx);

/* Takes ownership of an accepted, non-blocking client socket. Returns false (closing the
 * socket) when out of memory. */
bool session_start(ProxyContext *ctx, int client_fd);

/* The message a client over max_client_conn gets (SQLSTATE 53300). */
#define SESSION_TOO_MANY_CLIENTS "sorry, too many clients already (pgtally max_client_conn)"

/* Takes a client that is over the connection limit, as the server does when it is full: its
 * SSLRequest is answered as usual ('S' and a handshake when pgtally serves TLS, else 'N'),
 * then its startup packet gets FATAL 53300 and the socket closes; a CancelRequest is still
 * forwarded. Counted in ctx->n_refusing, not n_sessions; nothing is logged per client.
 * Returns false (closing the socket) when out of memory. */
bool session_start_refused(ProxyContext *ctx, int client_fd);

/* Closes the session at once (shutdown past the grace period). */
void session_close_now(Session *session);

/* Statements this open session's tracker could not attribute so far. */
uint64_t session_untracked(const Session *session);

/* True when the session has a connection to the upstream server. */
bool session_has_server(const Session *session);

/* The next session in ctx's list, for iterating while closing. */
Session *session_next(Session *session);

/* Puts sessions on the io_uring data path from now on (u set up on ctx->loop). */
void proxy_context_use_ring(ProxyContext *ctx, Uring *u);

/* Runs the loop: the ring's (uring_run) when sessions relay on it, else ev_run. Returns after
 * proxy_context_break or when no watcher is left. */
void proxy_context_run(ProxyContext *ctx);

/* Ends proxy_context_run (ev_break alone would not stop the ring's loop). */
void proxy_context_break(ProxyContext *ctx);

/* Ring-side part of the shutdown: cancels what closed sessions still have in flight, waits
 * (bounded) for it, and frees them. Call after every session was closed, before uring_free. */
void proxy_context_drain_ring(ProxyContext *ctx);

/* Releases the context's pooled buffers. */
void proxy_context_release_buffers(ProxyContext *ctx);

#endif
