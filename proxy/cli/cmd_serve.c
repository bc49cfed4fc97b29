/* proxy/cli/cmd_serve — see cmd_serve.h. The pages and the HTTP server are report/view/serve; this
 * file is the command line and the wait for a stop signal. */
#include "proxy/cli/cmd_serve.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "report/cliargs.h"
#include "proxy/address.h"
#include "report/view/serve.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally serve --db FILE|URL [OPTIONS]\n"
            "\n"
            "Serves the report as a small web app that updates live while a proxy writes the\n"
            "store: routes worst first, a route's requests, one request's timeline with its\n"
            "findings and the batched fix, a statement's routes and latency histogram, the runs.\n"
            "Pages: /  /route?name=R  /request/ID  /fingerprint/F  /runs (each takes ?run=N or\n"
            "?label=L). GET only. See docs/serve.md.\n"
            "\n"
            "Options:\n"
            "      --db FILE|URL        the report store: an SQLite file, or a PostgreSQL store\n"
            "                           (postgres://..., postgresql://... or key=value)\n"
            "      --db-schema NAME     the PostgreSQL store's schema [pgtally]\n"
            "      --listen HOST:PORT   where to serve [127.0.0.1:8080]; loopback unless you\n"
            "                           say otherwise (then set --serve-token)\n"
            "      --label L            show the runs labelled L by default (else the latest)\n"
            "      --serve-token T      require T: ?token=T once (a cookie keeps it), or the\n"
            "                           header Authorization: Bearer T\n"
            "  -h, --help               this text\n"
            "\n"
            "Exit status: 0 stopped by SIGINT/SIGTERM, 1 store or address unusable, 2 usage.\n");
}

enum { OPT_DB = 256, OPT_DB_SCHEMA, OPT_LISTEN, OPT_LABEL, OPT_TOKEN };

int cmd_serve_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"db-schema", required_argument, NULL, OPT_DB_SCHEMA},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"label", required_argument, NULL, OPT_LABEL},
        {"serve-token", required_argument, NULL, OPT_TOKEN},
        CLI_OPTIONS_HELP_AND_END,
    };
    ServeOptions so = {0};
    const char *listen = "127.0.0.1:8080";
    CliArgs cli = {
        .command = "serve", .short_options = "h", .options = options, .print_usage = print_usage};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case OPT_DB:
            so.db = optarg;
            break;
        case OPT_DB_SCHEMA:
            so.db_schema = optarg;
            break;
        case OPT_LISTEN:
            listen = optarg;
            break;
        case OPT_LABEL:
            so.label = optarg;
            break;
        case OPT_TOKEN:
            so.token = optarg;
            break;
        }
    }
    if (!so.db) {
        fprintf(stderr, "pgtally serve: give the report store with --db FILE|URL\n");
        return 2;
    }
    if (so.token && !serve_token_valid(so.token)) {
        fprintf(stderr, "pgtally serve: --serve-token: 1 to 256 printable ASCII characters, "
                        "without spaces, quotes, backslashes, ';' or ','\n");
        return 2;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char err[512];
    if (!address_listen(listen, &addr, &addr_len, err, sizeof err)) {
        fprintf(stderr, "pgtally serve: --listen: %s\n", err);
        return 2;
    }
    so.addr = (const struct sockaddr *)&addr;
    so.addr_len = addr_len;
    /* Blocked before the server's thread starts, so that it inherits the mask and the stop
     * signal is taken here by sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    Serve *s = serve_start(&so, err, sizeof err);
    if (!s) {
        fprintf(stderr, "pgtally serve: %s\n", err);
        return 1;
    }
    char host[300];
    const char *colon = strrchr(listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    printf("pgtally serve: http://%s:%d/\n", *host ? host : "127.0.0.1", serve_port(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    serve_stop(s);
    return 0;
}
