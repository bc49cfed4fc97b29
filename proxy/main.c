/* proxy/main — the `pgtally` command: subcommand dispatch and the proxy's options.
 *
 * Owns: the command line (`pgtally proxy|fingerprint|version|help`), usage text, and
 * turning options into the one process-wide ProxyConfig. Exit codes: 0 ok, 1 runtime
 * failure, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cmd_fingerprint.h"
#include "proxy/config.h"
#include "proxy/listener.h"
#include "proxy/log.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "pgtally %s: finds N+1 queries from the PostgreSQL wire.\n"
            "\n"
            "Usage: pgtally COMMAND [OPTIONS]\n"
            "\n"
            "Commands:\n"
            "  proxy        run the wire-protocol proxy between an app and PostgreSQL\n"
            "  fingerprint  normalize SQL statements and print their fingerprints as JSON\n"
            "  version      print the version\n"
            "  help         this text\n"
            "\n"
            "Run `pgtally COMMAND --help` for a command's options.\n",
            PGTALLY_VERSION);
}

static void print_proxy_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally proxy [OPTIONS]\n"
            "\n"
            "Relays every byte between clients and the upstream PostgreSQL server unchanged,\n"
            "and records each completed statement.\n"
            "\n"
            "Options (default in brackets):\n"
            "  -l, --listen HOST:PORT      address to accept clients on [%s]\n"
            "  -u, --upstream ADDR         upstream server: HOST:PORT, a Unix-socket directory,\n"
            "                              or a postgres:// URL [$DATABASE_URL]\n"
            "      --db FILE               SQLite report store (per-request tallies) [%s]\n"
            "      --samples               store one example with literal values per\n"
            "                              fingerprint (staging data only: values may be\n"
            "                              sensitive); by default only normalized SQL\n"
            "      --request-gap SECONDS   a request idle this long has ended [%.1f]\n"
            "      --log-queries FILE      append one JSON line per completed statement\n"
            "      --tls-cert FILE         serve TLS to clients with this certificate chain\n"
            "      --tls-key FILE          ... and this private key (both or neither)\n"
            "  Upstream TLS follows libpq: sslmode=disable|allow|prefer|require|verify-ca|\n"
            "  verify-full, sslrootcert, sslcert, sslkey in the --upstream URL's query string\n"
            "  (postgres://host/db?sslmode=verify-full&sslrootcert=ca.pem) or PGSSLMODE,\n"
            "  PGSSLROOTCERT, PGSSLCERT, PGSSLKEY [prefer]\n"
            "      --grace SECONDS         on SIGTERM/SIGINT, let open connections finish for\n"
            "                              this long before closing them [%.0f]\n"
            "      --connect-timeout SECONDS  upstream connect timeout [%.0f]\n"
            "      --startup-timeout SECONDS  a client must send its startup packet within\n"
            "                              this time [%.0f]\n"
            "      --max-client-conn N     clients beyond this get an error [%d]\n"
            "      --max-sql-bytes N       SQL text kept per statement [%d]\n"
            "      --log-level LEVEL       debug, info, warn or error [info]\n"
            "  -h, --help                  this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop accepting and exit 0 once connections finish (or the\n"
            "grace period ends), finishing every open request first; SIGUSR1 finishes open\n"
            "requests and flushes the report store and query log without exiting.\n",
            CONFIG_DEFAULT_LISTEN, CONFIG_DEFAULT_DB, CONFIG_DEFAULT_REQUEST_GAP, CONFIG_DEFAULT_GRACE, CONFIG_DEFAULT_CONNECT_TIMEOUT,
            CONFIG_DEFAULT_STARTUP_TIMEOUT, CONFIG_DEFAULT_MAX_CLIENT_CONN,
            CONFIG_DEFAULT_MAX_SQL_BYTES);
}

static bool parse_seconds(const char *opt, const char *value, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || v < 0 || v > 86400) {
        fprintf(stderr, "pgtally proxy: %s: \"%s\" is not a number of seconds (0-86400)\n", opt,
                value);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_count(const char *opt, const char *value, size_t min, size_t max, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v < min || v > max) {
        fprintf(stderr, "pgtally proxy: %s: \"%s\" is not a whole number in %zu-%zu\n", opt,
                value, min, max);
        return false;
    }
    *out = (size_t)v;
    return true;
}

enum {
    OPT_LOG_QUERIES = 256,
    OPT_GRACE,
    OPT_CONNECT_TIMEOUT,
    OPT_STARTUP_TIMEOUT,
    OPT_MAX_CLIENT_CONN,
    OPT_MAX_SQL_BYTES,
    OPT_LOG_LEVEL,
    OPT_DB,
    OPT_SAMPLES,
    OPT_REQUEST_GAP,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
};

static int cmd_proxy(int argc, char **argv)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"upstream", required_argument, NULL, 'u'},
        {"log-queries", required_argument, NULL, OPT_LOG_QUERIES},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"startup-timeout", required_argument, NULL, OPT_STARTUP_TIMEOUT},
        {"max-client-conn", required_argument, NULL, OPT_MAX_CLIENT_CONN},
        {"max-sql-bytes", required_argument, NULL, OPT_MAX_SQL_BYTES},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"db", required_argument, NULL, OPT_DB},
        {"samples", no_argument, NULL, OPT_SAMPLES},
        {"request-gap", required_argument, NULL, OPT_REQUEST_GAP},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ProxyConfig config = {
        .listen = CONFIG_DEFAULT_LISTEN,
        .upstream = getenv("DATABASE_URL"),
        .grace_seconds = CONFIG_DEFAULT_GRACE,
        .connect_timeout = CONFIG_DEFAULT_CONNECT_TIMEOUT,
        .startup_timeout = CONFIG_DEFAULT_STARTUP_TIMEOUT,
        .max_client_conn = CONFIG_DEFAULT_MAX_CLIENT_CONN,
        .max_sql_bytes = CONFIG_DEFAULT_MAX_SQL_BYTES,
        .db_path = CONFIG_DEFAULT_DB,
        .request_gap = CONFIG_DEFAULT_REQUEST_GAP,
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:u:h", options, NULL)) != -1) {
        switch (c) {
        case 'l':
            config.listen = optarg;
            break;
        case 'u':
            config.upstream = optarg;
            break;
        case OPT_LOG_QUERIES:
            config.log_queries = optarg;
            break;
        case OPT_GRACE:
            if (!parse_seconds("--grace", optarg, &config.grace_seconds))
                return 2;
            break;
        case OPT_CONNECT_TIMEOUT:
            if (!parse_seconds("--connect-timeout", optarg, &config.connect_timeout))
                return 2;
            break;
        case OPT_STARTUP_TIMEOUT:
            if (!parse_seconds("--startup-timeout", optarg, &config.startup_timeout))
                return 2;
            break;
        case OPT_MAX_CLIENT_CONN:
            if (!parse_count("--max-client-conn", optarg, 1, 1000000, &config.max_client_conn))
                return 2;
            break;
        case OPT_MAX_SQL_BYTES:
            if (!parse_count("--max-sql-bytes", optarg, 64, 16u << 20, &config.max_sql_bytes))
                return 2;
            break;
        case OPT_LOG_LEVEL: {
            LogLevel level;
            if (!log_parse_level(optarg, &level)) {
                fprintf(stderr, "pgtally proxy: --log-level: \"%s\" is not one of debug, info, "
                                "warn, error\n",
                        optarg);
                return 2;
            }
            log_set_level(level);
            break;
        }
        case OPT_DB:
            config.db_path = optarg;
            break;
        case OPT_TLS_CERT:
            config.tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            config.tls_key = optarg;
            break;
        case OPT_SAMPLES:
            config.samples = true;
            break;
        case OPT_REQUEST_GAP:
            if (!parse_seconds("--request-gap", optarg, &config.request_gap))
                return 2;
            break;
        case 'h':
            print_proxy_usage(stdout);
            return 0;
        default:
            print_proxy_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgtally proxy: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!config.tls_cert != !config.tls_key) {
        fprintf(stderr, "pgtally proxy: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (!config.upstream || !*config.upstream) {
        fprintf(stderr, "pgtally proxy: no upstream server: give --upstream HOST:PORT or a "
                        "postgres:// URL, or set DATABASE_URL\n");
        return 2;
    }
    return listener_run(&config);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "proxy") == 0)
        return cmd_proxy(argc - 1, argv + 1);
    if (strcmp(cmd, "fingerprint") == 0)
        return cmd_fingerprint_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("pgtally %s\n", PGTALLY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    fprintf(stderr, "pgtally: unknown command \"%s\"\n\n", cmd);
    print_usage(stderr);
    return 2;
}
