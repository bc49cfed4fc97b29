/* proxy/address — see address.h. */
#include "proxy/address.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "protocol/pctdecode.h"

static const char *port_range(unsigned flags)
{
    return flags & ADDRESS_PORT_NONZERO ? "1-65535" : "0-65535";
}

bool address_port_check(const char *port, unsigned flags, int *number, char *err, size_t err_len)
{
    long v = 0;
    bool ok = *port != 0;
    for (const char *p = port; ok && *p; p++) {
        ok = *p >= '0' && *p <= '9';
        v = v * 10 + (*p - '0');
        ok = ok && v <= 65535;
    }
    if (ok && v == 0 && (flags & ADDRESS_PORT_NONZERO))
        ok = false;
    if (!ok) {
        snprintf(err, err_len, "invalid port \"%s\" (expected %s)", port, port_range(flags));
        return false;
    }
    if (number)
        *number = (int)v;
    return true;
}

/* Copies src[0..len) into dst (cap bytes with the NUL), percent-decoded for a URL. */
static bool copy_part(char *dst, size_t cap, const char *src, size_t len, unsigned flags)
{
    if (flags & ADDRESS_URL)
        return pct_decode_str(dst, cap, src, len, 0);
    if (len >= cap)
        return false;
    memcpy(dst, src, len);
    dst[len] = 0;
    return true;
}

bool address_split(const char *spec, size_t len, unsigned flags, Address *out, char *err,
                   size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (len == 0) {
        snprintf(err, err_len, "empty address (expected HOST:PORT)");
        return false;
    }
    if ((flags & ADDRESS_SOCKET_DIR) && spec[0] == '/') {
        if (!copy_part(out->host, sizeof out->host, spec, len, flags)) {
            snprintf(err, err_len, "socket directory too long (at most %d bytes)",
                     ADDRESS_HOST_MAX - 1);
            return false;
        }
        return true;
    }
    const char *host = spec, *port = NULL, *end = spec + len;
    size_t host_len;
    if (spec[0] == '[') {
        const char *close = memchr(spec, ']', len);
        if (!close) {
            snprintf(err, err_len, "missing ']' in IPv6 address");
            return false;
        }
        host = spec + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < end) {
            if (close[1] != ':') {
                snprintf(err, err_len, "expected ':' after ']'");
                return false;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(spec, ':', len);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
            snprintf(err, err_len,
                     "more than one ':' (an IPv6 address goes in brackets: [ADDR]:PORT)");
            return false;
        }
        host_len = colon ? (size_t)(colon - spec) : len;
        port = colon ? colon + 1 : NULL;
    }
    if (!port && !(flags & ADDRESS_PORT_OPTIONAL)) {
        snprintf(err, err_len, "no port (expected HOST:PORT, or [ADDR]:PORT for IPv6)");
        return false;
    }
    if (!copy_part(out->host, sizeof out->host, host, host_len, flags)) {
        snprintf(err, err_len, "host name too long (at most %d bytes)", ADDRESS_HOST_MAX - 1);
        return false;
    }
    /* Where the port may be left out, `HOST:` leaves it out too, as libpq reads
     * postgres://host:/db. */
    if (!port || (port == end && (flags & ADDRESS_PORT_OPTIONAL)))
        return true;
    /* Checked on the text as given, so a message shows what was written; kept as the number
     * it is ("0080" is 80). */
    char text[32];
    int number;
    if (!copy_part(text, sizeof text, port, (size_t)(end - port), flags)) {
        snprintf(err, err_len, "invalid port \"%.16s...\" (expected %s)", port, port_range(flags));
        return false;
    }
    if (!address_port_check(text, flags, &number, err, err_len))
        return false;
    snprintf(out->port, sizeof out->port, "%d", number);
    return true;
}

bool address_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *len, char *err,
                    size_t err_len)
{
    Address a;
    char why[200];
    if (!address_split(spec, strlen(spec), 0, &a, why, sizeof why)) {
        snprintf(err, err_len, "invalid address \"%s\": %s", spec, why);
        return false;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(a.host[0] ? a.host : NULL, a.port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "invalid address \"%s\": %s", spec, gai_strerror(rc));
        return false;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

int address_bound_port(int fd)
{
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0)
        return -1;
    if (bound.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}
