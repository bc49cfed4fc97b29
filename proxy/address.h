/* proxy/address — host:port addresses as people write them, parsed one way everywhere.
 *
 * Owns: splitting `HOST:PORT`, `[IPV6]:PORT`, `:PORT` (every interface) and, where the caller
 * allows them, `HOST` alone, a URL authority's percent escapes and a Unix-socket directory
 * (`/path`); checking ports; and turning a listening address into a socket address. Every
 * socket pgtally listens on (`--listen`, `--metrics`, `--serve`, `pgtally serve --listen`)
 * and the upstream server (`--upstream`, proxy/upstream) go through address_split. An IPv6
 * address always goes in brackets: without them `::1:6432` could be read two ways. */
#ifndef PGTALLY_PROXY_ADDRESS_H
#define PGTALLY_PROXY_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define ADDRESS_HOST_MAX 256 /* with the NUL */
#define ADDRESS_PORT_MAX 6   /* "65535" and the NUL */

typedef struct Address {
    char host[ADDRESS_HOST_MAX]; /* without brackets; "" when none was given */
    char port[ADDRESS_PORT_MAX]; /* decimal digits; "" when none was given */
} Address;

/* What a caller accepts beyond HOST:PORT and [IPV6]:PORT. */
enum {
    ADDRESS_PORT_OPTIONAL = 1 << 0, /* `HOST`, `HOST:` and `[IPV6]` alone (port left "") */
    ADDRESS_PORT_NONZERO = 1 << 1,  /* port 0 is an error (else it means "any free port") */
    ADDRESS_URL = 1 << 2,           /* a URL's authority: host and port are percent-decoded */
    ADDRESS_SOCKET_DIR = 1 << 3,    /* a spec starting with '/' is a socket directory, whole */
};

/* Splits spec[0..len) into *out. False with a message saying what is wrong in err (the spec
 * itself is not repeated: callers name the option and the value). */
bool address_split(const char *spec, size_t len, unsigned flags, Address *out, char *err,
                   size_t err_len);

/* Checks a port's text: decimal digits only, at most 65535, and not 0 with
 * ADDRESS_PORT_NONZERO (the only flag it reads); its value goes to *number (may be NULL).
 * False with a message in err. */
bool address_port_check(const char *port, unsigned flags, int *number, char *err, size_t err_len);

/* Parses HOST:PORT or [IPV6]:PORT to listen on (an empty host: every interface; port 0: a
 * free one) and resolves it (a name takes its first address). False with
 * `invalid address "SPEC": why` in err. */
bool address_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *len, char *err,
                    size_t err_len);

/* The port a bound socket got: the one asked for, or the free one the kernel picked for port
 * 0 (which is why callers log it: `--listen 127.0.0.1:0` is only useful if the port is told).
 * -1 with errno set when getsockname fails. */
int address_bound_port(int fd);

#endif
