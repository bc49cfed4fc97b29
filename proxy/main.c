/* proxy/main — the `pgtally` command: subcommand dispatch and the proxy's options.
 *
 * Owns: the command line (`pgtally proxy|report|check|merge|prune|fingerprint|demo|version|help`)
 * and the top-level usage text; each subcommand parses its own options (the proxy's in
 * proxy/config). `demo` runs the sibling program pgtally-demo. Exit codes: 0 ok, 1 runtime failure,
 * 2 usage error. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli/cmd_fingerprint.h"
#include "proxy/cli/cmd_merge.h"
#include "proxy/cli/cmd_prune.h"
#include "proxy/cli/cmd_serve.h"
#include "proxy/config.h"
#include "proxy/daemon.h"
#include "proxy/log.h"
#include "report/check/check.h"
#include "report/view/view.h"

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
            "  report       show a report file: routes, N+1 findings, request timelines\n"
            "  check        CI gate: exit 1 when a report is over its budget file\n"
            "  merge        combine report files (e.g. CI shards) into one\n"
            "  prune        delete old runs from a report store\n"
            "  serve        serve the report as live web pages (routes, requests, timelines)\n"
            "  demo         run the proxy and a sample N+1 workload against a throwaway\n"
            "               PostgreSQL, then show the report and the check\n"
            "  version      print the version\n"
            "  help         this text\n"
            "\n"
            "Run `pgtally COMMAND --help` for a command's options.\n",
            PGTALLY_VERSION);
}

static int cmd_proxy(int argc, char **argv)
{
    ProxyConfig config;
    char err[1024];
    ConfigParse rc = config_load(&config, argc, argv, stdout, err, sizeof err);
    if (rc != CONFIG_OK) {
        if (rc == CONFIG_ERROR)
            fprintf(stderr, "pgtally proxy: %s\n", err);
        config_free(&config);
        return rc == CONFIG_HELP ? 0 : 2;
    }
    log_set_level((LogLevel)config.log_level);
    int status = daemon_run(&config, argc, argv);
    config_free(&config);
    return status;
}

/* Runs a program installed next to this one (`pgtally demo` -> pgtally-demo), replacing this
 * process. Returns only on failure, with exit status 1. */
static int exec_sibling(const char *name, char **args)
{
    char self[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "pgtally: cannot find my own path (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    snprintf(path, sizeof path, "%.*s/%s", slash ? (int)(slash - self) : 1, slash ? self : ".",
             name);
    args[0] = path;
    execv(path, args);
    fprintf(stderr, "pgtally: cannot run %s (it is built and installed with pgtally): %s\n", path,
            strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    /* First thing: a supervisor may send SIGTERM as soon as it has started us (or as soon as
     * the port accepts, before the loop watches signals). Held until the proxy's loop takes
     * them; any other command gets the mask it was started with back, and so do the
     * programs it runs. */
    sigset_t handled, started_with;
    daemon_signal_set(&handled);
    sigprocmask(SIG_BLOCK, &handled, &started_with);
    if (argc >= 2 && strcmp(argv[1], "proxy") == 0)
        return cmd_proxy(argc - 1, argv + 1);
    sigprocmask(SIG_SETMASK, &started_with, NULL);

    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "report") == 0)
        return report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return check_main(argc - 1, argv + 1);
    if (strcmp(cmd, "merge") == 0)
        return cmd_merge_main(argc - 1, argv + 1);
    if (strcmp(cmd, "prune") == 0)
        return cmd_prune_main(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve_main(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0)
        return exec_sibling("pgtally-demo", argv + 1);
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
