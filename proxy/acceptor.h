/* proxy/acceptor — taking clients in.
 *
 * Owns: the listening socket of `--listen` (bound early, so a port in use fails before the
 * report store creates a run, and listening only once the daemon is ready), the accept loop
 * (bounded per wake-up; paused for a moment when the process is out of descriptors or
 * memory), the connection limit (`--max-client-conn`: a client over it is handed to
 * session_start_refused to be told why, or answered 53300 at once when too many are being
 * told already), and the refusal log (one line a second at most, with the count). It runs on
 * the loop of the ProxyContext it is given, whose owner (proxy/daemon) starts and stops it. */
#ifndef PGTALLY_PROXY_ACCEPTOR_H
#define PGTALLY_PROXY_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proxy/session.h"

typedef struct Acceptor {
    ProxyContext *ctx;
    const char *spec; /* the --listen value, for messages */
    int fd;           /* -1 when closed */
    int port;         /* the bound port (the kernel's pick for port 0), for the start-up log */
    bool stopped;     /* no longer accepting, for good */
    ev_io watcher;
    ev_timer retry;       /* after EMFILE and the like */
    ev_timer refusal_log; /* active while refusals were logged less than a second ago */
    uint64_t refusals_unlogged;
} Acceptor;

/* Parses spec (proxy/address) and binds a socket to it, without listening yet. False with
 * "why" in err (the caller names the option). */
bool acceptor_bind(Acceptor *a, ProxyContext *ctx, const char *spec, char *err, size_t err_len);

/* Listens and accepts from now on. False with "why" in err. */
bool acceptor_start(Acceptor *a, char *err, size_t err_len);

/* Stops accepting and closes the socket (a drain, or the end). Safe to call again, and on an
 * Acceptor that was zeroed but never bound. */
void acceptor_stop(Acceptor *a);

/* Logs the refusals not logged yet (at the end, so none go unreported). */
void acceptor_log_refusals(Acceptor *a);

#endif
