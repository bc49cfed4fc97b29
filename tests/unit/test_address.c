/* tests/unit/test_address.c — the one host:port parser (proxy/address) over good and bad
 * inputs, with the message each bad one gets; listening addresses resolved (numeric hosts
 * only: no network); and `--upstream` (proxy/upstream) read through the same parser:
 * host:port, [v6]:port, socket directories, postgres:// URLs with percent escapes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/address.h"
#include "proxy/upstream.h"
#include "tests/unit/testlib.h"

static Address g_a;
static char g_err[300];

static bool split(const char *spec, unsigned flags)
{
    g_err[0] = 0;
    return address_split(spec, strlen(spec), flags, &g_a, g_err, sizeof g_err);
}

#define CHECK_SPLITS(spec_, flags_, host_, port_)                                                  \
    do {                                                                                           \
        CHECK(split((spec_), (flags_)));                                                           \
        CHECK_EQ_STR(g_a.host, (host_));                                                           \
        CHECK_EQ_STR(g_a.port, (port_));                                                           \
    } while (0)

/* Fails, with err saying what is wrong (checked as a substring). */
#define CHECK_REFUSES(spec_, flags_, why_)                                                         \
    do {                                                                                           \
        CHECK(!split((spec_), (flags_)));                                                          \
        if (!strstr(g_err, (why_)))                                                                \
            CHECK_EQ_STR(g_err, (why_));                                                           \
    } while (0)

TEST(host_and_port)
{
    CHECK_SPLITS("127.0.0.1:6432", 0, "127.0.0.1", "6432");
    CHECK_SPLITS("db.internal:5432", 0, "db.internal", "5432");
    CHECK_SPLITS("localhost:0", 0, "localhost", "0"); /* port 0: any free one */
    CHECK_SPLITS(":8080", 0, "", "8080");             /* every interface */
    CHECK_SPLITS("h:65535", 0, "h", "65535");
    CHECK_SPLITS("h:0080", 0, "h", "80"); /* kept as the number it is */
}

TEST(ipv6_in_brackets)
{
    CHECK_SPLITS("[::1]:6432", 0, "::1", "6432");
    CHECK_SPLITS("[fe80::1%eth0]:5432", 0, "fe80::1%eth0", "5432"); /* zone: not decoded */
    CHECK_SPLITS("[::]:0", 0, "::", "0");
    CHECK_SPLITS("[::1]", ADDRESS_PORT_OPTIONAL, "::1", "");
    CHECK_REFUSES("[::1", 0, "missing ']' in IPv6 address");
    CHECK_REFUSES("[::1]6432", 0, "expected ':' after ']'");
    CHECK_REFUSES("[::1]", 0, "no port (expected HOST:PORT, or [ADDR]:PORT for IPv6)");
    CHECK_REFUSES("::1:6432", 0, "more than one ':' (an IPv6 address goes in brackets");
    CHECK_REFUSES("::1", ADDRESS_PORT_OPTIONAL, "more than one ':'");
}

TEST(bad_ports)
{
    CHECK_REFUSES("localhost", 0, "no port (expected HOST:PORT");
    CHECK_REFUSES("h:", 0, "invalid port \"\" (expected 0-65535)");
    CHECK_REFUSES("h:65536", 0, "invalid port \"65536\" (expected 0-65535)");
    CHECK_REFUSES("h:-1", 0, "invalid port \"-1\"");
    CHECK_REFUSES("h:+80", 0, "invalid port \"+80\"");
    CHECK_REFUSES("h: 80", 0, "invalid port \" 80\"");
    CHECK_REFUSES("h:80x", 0, "invalid port \"80x\"");
    CHECK_REFUSES("h:0", ADDRESS_PORT_NONZERO, "invalid port \"0\" (expected 1-65535)");
    CHECK_REFUSES("h:99999999999999999999999999999999999999", 0,
                  "invalid port \"9999999999999999...\" (expected 0-65535)");
    CHECK_REFUSES("", 0, "empty address");
    int n = -1;
    CHECK(address_port_check("5432", ADDRESS_PORT_NONZERO, &n, g_err, sizeof g_err));
    CHECK_EQ_INT(n, 5432);
    CHECK(!address_port_check("", 0, NULL, g_err, sizeof g_err));
}

TEST(host_bounds)
{
    char spec[400];
    memset(spec, 'h', 255);
    strcpy(spec + 255, ":1");
    CHECK(split(spec, 0)); /* 255 bytes: the most that fits */
    CHECK_EQ_INT(strlen(g_a.host), 255);
    memset(spec, 'h', 256);
    strcpy(spec + 256, ":1");
    CHECK_REFUSES(spec, 0, "host name too long (at most 255 bytes)");
}

TEST(optional_port_and_socket_dirs)
{
    CHECK_SPLITS("db", ADDRESS_PORT_OPTIONAL, "db", "");
    CHECK_SPLITS("db:", ADDRESS_PORT_OPTIONAL, "db", "");
    CHECK_SPLITS("[::1]:", ADDRESS_PORT_OPTIONAL, "::1", "");
    CHECK_SPLITS("/var/run/postgresql", ADDRESS_SOCKET_DIR, "/var/run/postgresql", "");
    /* a directory is taken whole: a path may hold ':' */
    CHECK_SPLITS("/tmp/a:b", ADDRESS_SOCKET_DIR, "/tmp/a:b", "");
    CHECK_REFUSES("/tmp", 0, "no port");
}

TEST(url_authority_percent_decoded)
{
    CHECK_SPLITS("%2Fvar%2Frun:5433", ADDRESS_URL, "/var/run", "5433");
    CHECK_SPLITS("db%2Dhost:%35%34%33%32", ADDRESS_URL, "db-host", "5432");
    CHECK_SPLITS("%2Fvar%2Frun:5433", 0, "%2Fvar%2Frun", "5433"); /* not a URL: as written */
}

TEST(listening_addresses_resolve)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK(address_listen("127.0.0.1:6432", &ss, &len, g_err, sizeof g_err));
    CHECK_EQ_INT(ss.ss_family, AF_INET);
    CHECK_EQ_INT(len, sizeof(struct sockaddr_in));
    CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&ss)->sin_port), 6432);
    CHECK(address_listen("[::1]:0", &ss, &len, g_err, sizeof g_err));
    CHECK_EQ_INT(ss.ss_family, AF_INET6);
    CHECK(address_listen(":9187", &ss, &len, g_err, sizeof g_err)); /* wildcard */
    CHECK(!address_listen("127.0.0.1", &ss, &len, g_err, sizeof g_err));
    CHECK_EQ_STR(g_err, "invalid address \"127.0.0.1\": no port (expected HOST:PORT, or "
                        "[ADDR]:PORT for IPv6)");
    CHECK(!address_listen("[::1:80", &ss, &len, g_err, sizeof g_err));
    CHECK_EQ_STR(g_err, "invalid address \"[::1:80\": missing ']' in IPv6 address");
}

static Upstream g_up;

static bool upstream(const char *spec)
{
    g_err[0] = 0;
    return upstream_parse(spec, &g_up, g_err, sizeof g_err);
}

#define CHECK_UPSTREAM(spec_, host_, port_, display_)                                              \
    do {                                                                                           \
        CHECK(upstream(spec_));                                                                    \
        CHECK_EQ_STR(g_up.host, (host_));                                                          \
        CHECK_EQ_STR(g_up.port, (port_));                                                          \
        CHECK_EQ_STR(g_up.display, (display_));                                                    \
    } while (0)

TEST(upstream_through_the_same_parser)
{
    CHECK_UPSTREAM("127.0.0.1:5433", "127.0.0.1", "5433", "127.0.0.1:5433");
    CHECK_UPSTREAM("db", "db", "5432", "db:5432");
    CHECK_UPSTREAM("[::1]", "::1", "5432", "[::1]:5432");
    CHECK_UPSTREAM("[::1]:6000", "::1", "6000", "[::1]:6000");
    CHECK_UPSTREAM("/var/run/postgresql", "/var/run/postgresql", "5432",
                   "/var/run/postgresql/.s.PGSQL.5432");
    CHECK(g_up.is_unix);
    CHECK_UPSTREAM("postgres://u:p%40ss@db.example:6543/app?sslmode=require", "db.example", "6543",
                   "db.example:6543");
    CHECK_UPSTREAM("postgresql://u@%2Ftmp%2Fpg/app", "/tmp/pg", "5432", "/tmp/pg/.s.PGSQL.5432");
    CHECK_UPSTREAM("postgres:///app?host=%2Fsock&port=7000", "/sock", "7000",
                   "/sock/.s.PGSQL.7000");
    CHECK_UPSTREAM("postgres://[2001:db8::5]:5000/x", "2001:db8::5", "5000", "[2001:db8::5]:5000");
    CHECK_UPSTREAM("postgres://", "localhost", "5432", "localhost:5432");
    CHECK_UPSTREAM("postgres://u@db:/app", "db", "5432", "db:5432");

    CHECK(!upstream("db:0"));
    CHECK_EQ_STR(g_err, "invalid port \"0\" (expected 1-65535)");
    CHECK(!upstream("db:x"));
    CHECK_EQ_STR(g_err, "invalid port \"x\" (expected 1-65535)");
    CHECK(!upstream("postgres://db/app?port=70000"));
    CHECK_EQ_STR(g_err, "invalid port \"70000\" (expected 1-65535)");
    CHECK(!upstream("postgres://[::1/app"));
    CHECK_EQ_STR(g_err, "missing ']' in IPv6 address");
    CHECK(!upstream("::1"));
    CHECK(strstr(g_err, "an IPv6 address goes in brackets") != NULL);
    CHECK(!upstream("mysql://db"));
    CHECK(strstr(g_err, "unsupported URL scheme") != NULL);
    CHECK(!upstream(""));
    CHECK(strstr(g_err, "no upstream given") != NULL);
}

int main(void)
{
    RUN(host_and_port);
    RUN(ipv6_in_brackets);
    RUN(bad_ports);
    RUN(host_bounds);
    RUN(optional_port_and_socket_dirs);
    RUN(url_authority_percent_decoded);
    RUN(listening_addresses_resolve);
    RUN(upstream_through_the_same_parser);
    return TESTLIB_FINISH();
}
