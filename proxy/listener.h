/* proxy/listener — the proxy's event loop and its owner.
 *
 * Owns: the listening socket, accepting clients (connection limit), the ProxyContext shared
 * by sessions, signals (SIGTERM/SIGINT: stop accepting, let connections finish for the grace
 * period, flush, exit 0; SIGUSR1: finish open requests and flush; SIGHUP: reload the config's
 * reloadable settings and reopen the query log), and the periodic flushes and sweeps.
 * `config` is the process-wide config; argv is kept for SIGHUP reloads. */
#ifndef PGTALLY_PROXY_LISTENER_H
#define PGTALLY_PROXY_LISTENER_H

#include <signal.h>

#include "proxy/config.h"

/* The signals the proxy handles: SIGTERM, SIGINT, SIGHUP, SIGUSR1. main blocks them before
 * anything else, so one that arrives while the proxy starts waits instead of killing it;
 * listener_run unblocks them once its loop watches them, and handles the waiting one then. */
void listener_signal_set(sigset_t *set);

/* Runs the proxy until shutdown. Returns the process exit code (0 after a clean shutdown,
 * 1 when start-up failed; the reason is logged). */
int listener_run(ProxyConfig *config, int argc, char **argv);

/* Parses HOST:PORT (or [v6]:PORT) for listening. Writes a message into err on failure. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
bool listener_parse_address(const char *spec, struct sockaddr_storage *addr, socklen_t *len,
                            char *err, size_t err_len);

#endif
