/* proxy/demo/cmd_demo — `pgtally demo`: run the proxy in front of a workload and show the report.
 *
 * The steps run in order and each one that starts something registers what must be undone;
 * the cleanup at the end undoes it in reverse on every path. Ctrl-C only sets a flag: the
 * children run in their own process groups, so the terminal's SIGINT reaches the demo alone
 * and the demo stops them in the right order (proxy first, so it flushes, then the server). */
#include "proxy/demo/cmd_demo.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proxy/address.h"
#include "report/cliargs.h"
#include "proxy/demo/demo_cluster.h"
#include "proxy/demo/demo_workload.h"
#include "report/check/check.h"
#include "report/view/view.h"

#define DEMO_DEFAULT_ROUNDS 5u

/* The built-in budget: the N+1 endpoint breaks it, the fixed one keeps it. */
static const char demo_budget[] = "; pgtally demo's budget (format: docs/budgets.md)\n"
                                  "[defaults]\n"
                                  "max_queries = 20          ; per request\n"
                                  "max_duplicates = 2\n"
                                  "max_n_plus_one = 0        ; no N+1 allowed\n"
                                  "max_db_time_ms = 2000\n";

/* The one piece of state a signal handler may touch; the handler only sets it. */
static volatile sig_atomic_t demo_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    demo_interrupted = 1;
}

typedef struct Demo {
    const char *upstream_url; /* --upstream; NULL = throwaway cluster */
    unsigned rounds;
    bool keep;
    char tmp[80]; /* base (at most 48 bytes) + "/pgtally-demo-XXXXXX" */
    char pg_dir[96];
    char db[128], budget[128], proxy_log[128];
    char exe[4096];
    char listen[32], port[8];
    char schema[48];
    DemoCluster cluster;
    bool cluster_started, tmp_made, schema_made;
    pid_t proxy;
    DemoTarget direct, via_proxy;
} Demo;

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally demo [OPTIONS]\n"
            "\n"
            "Starts a throwaway PostgreSQL (Debian's binaries, a temporary directory, no TCP\n"
            "port) and `pgtally proxy` in front of it, runs a small ORM-like API workload\n"
            "through the proxy (an orders endpoint with an N+1 and duplicate lookups, and its\n"
            "fixed twin), stops the proxy, then prints `pgtally report` and `pgtally check`\n"
            "against a built-in budget. Everything is removed at the end, also on Ctrl-C.\n"
            "\n"
            "Options:\n"
            "      --upstream URL   use this server instead (postgres://...); the demo tables\n"
            "                       live in a schema of their own, dropped at the end\n"
            "      --rounds N       requests per endpoint [%u]\n"
            "      --keep           keep the temporary directory (report file, logs)\n"
            "  -h, --help           this text\n",
            DEMO_DEFAULT_ROUNDS);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A free TCP port on 127.0.0.1 (the kernel's pick; it could be taken again before the proxy
 * binds it, which the proxy's start-up check would report). */
static bool free_port(char *out, size_t len, char *err, size_t err_len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int port = -1;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (port = address_bound_port(fd)) < 0) {
        snprintf(err, err_len, "cannot find a free port: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    snprintf(out, len, "%u", (unsigned)(uint16_t)port); /* a port: at most 5 digits */
    return true;
}

static bool make_tmp(Demo *d, char *err, size_t err_len)
{
    /* $TMPDIR when it is short enough for the server's Unix socket path (about 100 bytes
     * in all), else /tmp. */
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 48)
        base = "/tmp";
    snprintf(d->tmp, sizeof d->tmp, "%s/pgtally-demo-XXXXXX", base);
    if (!mkdtemp(d->tmp)) {
        snprintf(err, err_len, "mkdtemp: %s", strerror(errno));
        return false;
    }
    d->tmp_made = true;
    /* The server (user postgres) must reach its own subdirectory; nothing here is secret
     * but the report, and that file is created 0600. */
    chmod(d->tmp, 0711);
    snprintf(d->pg_dir, sizeof d->pg_dir, "%s/pg", d->tmp);
    snprintf(d->db, sizeof d->db, "%s/report.db", d->tmp);
    snprintf(d->budget, sizeof d->budget, "%s/budget.ini", d->tmp);
    snprintf(d->proxy_log, sizeof d->proxy_log, "%s/proxy.log", d->tmp);
    FILE *f = fopen(d->budget, "w");
    if (!f || fputs(demo_budget, f) < 0 || fclose(f) != 0) {
        snprintf(err, err_len, "%s: %s", d->budget, strerror(errno));
        return false;
    }
    return true;
}

static bool start_proxy(Demo *d, const char *upstream, char *err, size_t err_len)
{
    /* The proxy is the `pgtally` binary installed next to this one (pgtally-demo). */
    char self[sizeof d->exe - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(err, err_len, "/proc/self/exe: %s", strerror(errno));
        return false;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(d->exe, sizeof d->exe, "%s/pgtally", slash ? self : ".");
    if (!free_port(d->port, sizeof d->port, err, err_len))
        return false;
    snprintf(d->listen, sizeof d->listen, "127.0.0.1:%s", d->port);
    char upstream_copy[4096];
    snprintf(upstream_copy, sizeof upstream_copy, "%s", upstream);
    char *argv[] = {d->exe,        "proxy", "--listen", d->listen,     "--upstream",
                    upstream_copy, "--db",  d->db,      "--log-level", "warn",
                    "--grace",     "5",     NULL};
    /* SIGTERM if the demo dies: the proxy's clean shutdown. */
    d->proxy = demo_spawn(argv, d->proxy_log, NULL, SIGTERM, err, err_len);
    if (d->proxy < 0) {
        d->proxy = 0;
        return false;
    }
    d->via_proxy =
        (DemoTarget){.conninfo = d->direct.conninfo, .host = "127.0.0.1", .port = d->port};
    double deadline = now_s() + 15;
    while (!demo_interrupted) {
        if (demo_target_ready(&d->via_proxy))
            return true;
        int status;
        if (demo_child_exited(d->proxy, &status)) {
            d->proxy = 0;
            snprintf(err, err_len, "pgtally proxy exited at start (see %s)", d->proxy_log);
            return false;
        }
        if (now_s() > deadline) {
            snprintf(err, err_len,
                     "pgtally proxy did not accept connections on %s within "
                     "15 s (see %s)",
                     d->listen, d->proxy_log);
            return false;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(err, err_len, "interrupted");
    return false;
}

/* SIGTERM: the proxy finishes every open request, flushes the report and exits 0. */
static bool stop_proxy(Demo *d, char *err, size_t err_len)
{
    if (d->proxy <= 0)
        return true;
    int status = demo_stop_child(d->proxy, SIGTERM, 30);
    d->proxy = 0;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, err_len, "pgtally proxy did not exit cleanly (status %d; see %s)", status,
                 d->proxy_log);
        return false;
    }
    return true;
}

static void cleanup(Demo *d)
{
    char err[1024];
    if (d->proxy > 0) {
        demo_stop_child(d->proxy, SIGTERM, 10);
        d->proxy = 0;
    }
    if (d->schema_made && !demo_workload_teardown(&d->direct, d->schema, err, sizeof err))
        fprintf(stderr, "pgtally demo: dropping schema %s: %s\n", d->schema, err);
    d->schema_made = false;
    if (d->cluster_started) {
        demo_cluster_stop(&d->cluster);
        d->cluster_started = false;
    }
    if (d->tmp_made) {
        if (d->keep)
            fprintf(stderr, "pgtally demo: kept %s (report.db, budget.ini, logs)\n", d->tmp);
        else
            demo_remove_tree(d->tmp);
        d->tmp_made = false;
    }
}

static int parse_args(int argc, char **argv, Demo *d)
{
    static const struct option options[] = {
        {"upstream", required_argument, NULL, 'u'},
        {"rounds", required_argument, NULL, 'r'},
        {"keep", no_argument, NULL, 'k'},
        CLI_OPTIONS_HELP_AND_END,
    };
    CliArgs cli = {
        .command = "demo", .short_options = "h", .options = options, .print_usage = print_usage};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case 'u':
            d->upstream_url = optarg;
            break;
        case 'r': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v < 1 || v > 1000) {
                fprintf(stderr, "pgtally demo: --rounds: \"%s\" is not a number in 1-1000\n",
                        optarg);
                return 2;
            }
            d->rounds = (unsigned)v;
            break;
        }
        case 'k':
            d->keep = true;
            break;
        }
    }
    if (d->upstream_url && strncmp(d->upstream_url, "postgres://", 11) != 0 &&
        strncmp(d->upstream_url, "postgresql://", 13) != 0) {
        fprintf(stderr, "pgtally demo: --upstream: expected a postgres:// URL\n");
        return 2;
    }
    return -1;
}

/* Everything up to the proxy's clean stop; false with err on failure or Ctrl-C. */
static bool record(Demo *d, char *err, size_t err_len)
{
    if (!make_tmp(d, err, err_len))
        return false;
    const char *upstream;
    if (d->upstream_url) {
        d->direct = (DemoTarget){.conninfo = d->upstream_url};
        upstream = d->upstream_url;
        printf("pgtally demo: upstream %s\n", d->upstream_url);
    } else {
        printf("pgtally demo: starting a throwaway PostgreSQL in %s\n", d->pg_dir);
        fflush(stdout);
        if (!demo_cluster_start(&d->cluster, d->pg_dir, err, err_len))
            return false;
        d->cluster_started = true;
        d->direct = (DemoTarget){.conninfo = d->cluster.conninfo};
        upstream = d->cluster.dir;
    }
    if (demo_interrupted)
        goto interrupted;
    snprintf(d->schema, sizeof d->schema, "pgtally_demo_%ld", (long)getpid());
    if (!demo_workload_setup(&d->direct, d->schema, err, err_len)) {
        /* It may exist half-made; the teardown is idempotent. */
        d->schema_made = true;
        return false;
    }
    d->schema_made = true;
    if (!start_proxy(d, upstream, err, err_len))
        return false;
    printf("pgtally demo: proxy on %s, report file %s\n", d->listen, d->db);
    printf("pgtally demo: %u requests to each of %s (N+1) and %s (fixed)\n", d->rounds,
           DEMO_ROUTE_N_PLUS_ONE, DEMO_ROUTE_FIXED);
    fflush(stdout);
    DemoWorkloadStats stats;
    if (!demo_workload_run(&d->via_proxy, d->schema, d->rounds, &demo_interrupted, &stats, err,
                           err_len))
        return false;
    printf("pgtally demo: sent %u statements in %u requests; stopping the proxy (SIGTERM "
           "flushes the report)\n",
           stats.statements, stats.requests);
    fflush(stdout);
    if (!stop_proxy(d, err, err_len))
        return false;
    return true;
interrupted:
    snprintf(err, err_len, "interrupted");
    return false;
}

/* Runs a subcommand in-process with a fixed argument list. */
static int run_command(int (*fn)(int, char **), char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    fflush(stdout);
    int rc = fn(argc, argv);
    fflush(stdout);
    return rc;
}

int cmd_demo_main(int argc, char **argv)
{
    Demo d = {.rounds = DEMO_DEFAULT_ROUNDS};
    int rc = parse_args(argc, argv, &d);
    if (rc >= 0)
        return rc;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term, old_hup;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    demo_interrupted = 0;

    char err[2048];
    rc = 1;
    if (!record(&d, err, sizeof err)) {
        fprintf(stderr, "pgtally demo: %s\n", err);
        goto done;
    }
    /* The server is no longer needed: stop it before reading. */
    char dropped_err[1024];
    if (d.schema_made &&
        !demo_workload_teardown(&d.direct, d.schema, dropped_err, sizeof dropped_err))
        fprintf(stderr, "pgtally demo: dropping schema %s: %s\n", d.schema, dropped_err);
    d.schema_made = false;
    if (d.cluster_started) {
        demo_cluster_stop(&d.cluster);
        d.cluster_started = false;
    }

    printf("\n$ pgtally report --db %s\n", d.db);
    char *report_argv[] = {"report", "--db", d.db, NULL};
    int report_rc = run_command(report_main, report_argv);
    printf("\n$ cat %s\n%s", d.budget, demo_budget);
    printf("\n$ pgtally check --db %s --budget %s\n", d.db, d.budget);
    char *check_argv[] = {"check", "--db", d.db, "--budget", d.budget, NULL};
    int check_rc = run_command(check_main, check_argv);
    printf("(pgtally check exited %d: 0 within budget, 1 over budget or incomplete data, "
           "2 error)\n",
           check_rc);
    if (report_rc != 0) {
        fprintf(stderr, "pgtally demo: pgtally report failed (exit %d)\n", report_rc);
    } else if (check_rc != 1) {
        fprintf(stderr,
                "pgtally demo: expected pgtally check to fail the N+1 endpoint "
                "(exit 1), got exit %d\n",
                check_rc);
    } else {
        printf("\npgtally demo: %s fails its budget (N+1, duplicates); %s passes. Done.\n",
               DEMO_ROUTE_N_PLUS_ONE, DEMO_ROUTE_FIXED);
        rc = 0;
    }
done:
    cleanup(&d);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (demo_interrupted) {
        fprintf(stderr, "pgtally demo: interrupted; everything it started was stopped\n");
        return 130;
    }
    return rc;
}
