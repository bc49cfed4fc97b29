/* proxy/upstream — where the real PostgreSQL server is, and opening connections to it.
 *
 * Owns: reading the --upstream value (`host[:port]`, `[v6addr][:port]`, or a libpq-style
 * `postgres://user@host:port/db?host=...` URL as Heroku's DATABASE_URL has it; a host that
 * starts with `/` is a Unix-socket directory) with its defaults (localhost, 5432), resolving
 * it, and non-blocking connects. The address itself is split by proxy/address, the URL's
 * escapes decoded by protocol/pctdecode. */
#ifndef PGTALLY_PROXY_UPSTREAM_H
#define PGTALLY_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define UPSTREAM_MAX_ADDRS 8

typedef struct Upstream {
    char host[256];
    char port[16];
    char display[300]; /* "host:port" or the socket path, for messages */
    bool is_unix;
    struct sockaddr_storage addrs[UPSTREAM_MAX_ADDRS];
    socklen_t addr_lens[UPSTREAM_MAX_ADDRS];
    int n_addrs; /* 0 until resolved */
} Upstream;

/* Parses spec into up (not resolved yet). On failure writes a message into err. */
bool upstream_parse(const char *spec, Upstream *up, char *err, size_t err_len);

/* Reads `key` from a postgres:// URL's query string, percent-decoded into out. False when
 * absent (or, with *too_long set, when it does not fit). */
bool upstream_url_param(const char *spec, const char *key, char *out, size_t cap, bool *too_long);

/* Resolves the host (blocking getaddrinfo: done at start-up, and again only when it failed).
 * On failure writes a message into err. */
bool upstream_resolve(Upstream *up, char *err, size_t err_len);

/* Starts a non-blocking connect to address `index`. Returns the socket, or -1 with errno set.
 * errno EINPROGRESS is reported as success: wait for writability, then upstream_connect_result. */
int upstream_connect_start(const Upstream *up, int index);

/* After writability: 0 when connected, else the connect error (an errno value). */
int upstream_connect_result(int fd);

#endif
