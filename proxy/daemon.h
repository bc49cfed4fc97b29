/* proxy/daemon — the proxy's event loop and its owner: the daemon's context and lifecycle.
 *
 * Owns: start-up in order (upstream, TLS, query log, report store target, the listening
 * socket bound through proxy/acceptor, `--metrics`, `--serve`, then the recorder's run), the
 * ProxyContext every session shares (limits, buffers, the io_uring or epoll data path), where
 * completed statements go (query log, latency histogram, recorder), the metrics snapshot,
 * signals (SIGTERM/SIGINT: stop accepting, let connections finish for the grace period,
 * flush, exit 0; SIGUSR1: finish open requests and flush; SIGHUP: reload the config's
 * reloadable settings, note the change in the run's settings, and reopen the query log), the
 * periodic flushes and sweeps, and the orderly shutdown. Accepting clients is
 * proxy/acceptor's. `config` is the process-wide config; argv is kept for SIGHUP reloads. */
#ifndef PGTALLY_PROXY_DAEMON_H
#define PGTALLY_PROXY_DAEMON_H

#include <signal.h>

#include "proxy/config.h"

/* The signals the proxy handles: SIGTERM, SIGINT, SIGHUP, SIGUSR1. main blocks them before
 * anything else, so one that arrives while the proxy starts waits instead of killing it;
 * daemon_run unblocks them once its loop watches them, and handles the waiting one then. */
void daemon_signal_set(sigset_t *set);

/* Runs the proxy until shutdown. Returns the process exit code (0 after a clean shutdown,
 * 1 when start-up failed, 2 when the report store target is unusable; the reason is
 * logged). */
int daemon_run(ProxyConfig *config, int argc, char **argv);

#endif
