/* proxy/upstream — see upstream.h. */
#include "proxy/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol/pctdecode.h"
#include "proxy/address.h"

/* An address, or a URL's authority (percent-decoded), into up; the port may be left out. */
static bool take_address(const char *s, size_t len, unsigned flags, Upstream *up, char *err,
                         size_t err_len)
{
    Address a;
    if (!address_split(s, len, flags | ADDRESS_PORT_OPTIONAL | ADDRESS_PORT_NONZERO, &a, err,
                       err_len))
        return false;
    _Static_assert(sizeof up->host >= sizeof a.host && sizeof up->port >= sizeof a.port,
                   "an Address fits an Upstream");
    memcpy(up->host, a.host, sizeof a.host);
    memcpy(up->port, a.port, sizeof a.port);
    return true;
}

bool upstream_url_param(const char *spec, const char *key, char *out, size_t cap, bool *too_long)
{
    *too_long = false;
    const char *q = strstr(spec, "://") ? strchr(spec, '?') : NULL;
    if (!q)
        return false;
    size_t klen = strlen(key);
    for (q++; *q;) {
        size_t len = strcspn(q, "&");
        if (len > klen && q[klen] == '=' && memcmp(q, key, klen) == 0) {
            *too_long = !pct_decode_str(out, cap, q + klen + 1, len - klen - 1, 0);
            return !*too_long;
        }
        q += len + (q[len] == '&');
    }
    return false;
}

/* host= and port= in a URL's query string override the authority (libpq accepts both). */
static bool parse_query_params(const char *spec, Upstream *up, char *err, size_t err_len)
{
    static const char *const keys[] = {"host", "port"};
    char *const fields[] = {up->host, up->port};
    const size_t caps[] = {sizeof up->host, sizeof up->port};
    for (size_t i = 0; i < 2; i++) {
        bool too_long;
        if (!upstream_url_param(spec, keys[i], fields[i], caps[i], &too_long) && too_long) {
            snprintf(err, err_len, "parameter %s too long", keys[i]);
            return false;
        }
    }
    return true;
}

static bool parse_url(const char *spec, const char *rest, Upstream *up, char *err, size_t err_len)
{
    const char *end = rest + strcspn(rest, "/?");
    const char *at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p; /* the last '@': a password may contain encoded ones only, but be lenient */
    const char *hostport = at ? at + 1 : rest;
    /* An empty authority (postgres:///db) leaves host and port to their defaults. */
    if (end > hostport &&
        !take_address(hostport, (size_t)(end - hostport), ADDRESS_URL, up, err, err_len))
        return false;
    return parse_query_params(spec, up, err, err_len);
}

bool upstream_parse(const char *spec, Upstream *up, char *err, size_t err_len)
{
    memset(up, 0, sizeof *up);
    if (!spec || !*spec) {
        snprintf(err, err_len, "no upstream given (use --upstream or DATABASE_URL)");
        return false;
    }
    bool ok;
    if (strncmp(spec, "postgres://", 11) == 0)
        ok = parse_url(spec, spec + 11, up, err, err_len);
    else if (strncmp(spec, "postgresql://", 13) == 0)
        ok = parse_url(spec, spec + 13, up, err, err_len);
    else if (strstr(spec, "://")) {
        snprintf(err, err_len, "unsupported URL scheme (expected postgres:// or postgresql://)");
        return false;
    } else
        ok = take_address(spec, strlen(spec), ADDRESS_SOCKET_DIR, up, err, err_len);
    if (!ok)
        return false;
    if (!up->host[0])
        snprintf(up->host, sizeof up->host, "localhost");
    if (!up->port[0])
        snprintf(up->port, sizeof up->port, "5432");
    if (!address_port_check(up->port, ADDRESS_PORT_NONZERO, NULL, err, err_len))
        return false;
    up->is_unix = up->host[0] == '/';
    if (up->is_unix)
        snprintf(up->display, sizeof up->display, "%s/.s.PGSQL.%s", up->host, up->port);
    else if (strchr(up->host, ':'))
        snprintf(up->display, sizeof up->display, "[%s]:%s", up->host, up->port);
    else
        snprintf(up->display, sizeof up->display, "%s:%s", up->host, up->port);
    return true;
}

bool upstream_resolve(Upstream *up, char *err, size_t err_len)
{
    up->n_addrs = 0;
    if (up->is_unix) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&up->addrs[0];
        memset(sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        if ((size_t)snprintf(sun->sun_path, sizeof sun->sun_path, "%s", up->display) >=
            sizeof sun->sun_path) {
            snprintf(err, err_len, "socket path too long: %s", up->display);
            return false;
        }
        up->addr_lens[0] = sizeof *sun;
        up->n_addrs = 1;
        return true;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(up->host, up->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve %s: %s", up->display, gai_strerror(rc));
        return false;
    }
    for (struct addrinfo *ai = res; ai && up->n_addrs < UPSTREAM_MAX_ADDRS; ai = ai->ai_next) {
        memcpy(&up->addrs[up->n_addrs], ai->ai_addr, ai->ai_addrlen);
        up->addr_lens[up->n_addrs] = ai->ai_addrlen;
        up->n_addrs++;
    }
    freeaddrinfo(res);
    return up->n_addrs > 0;
}

int upstream_connect_start(const Upstream *up, int index)
{
    const struct sockaddr *sa = (const struct sockaddr *)&up->addrs[index];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (sa->sa_family != AF_UNIX) {
        /* Postgres messages are small and latency-bound: never wait to coalesce them. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, sa, up->addr_lens[index]) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int upstream_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}
