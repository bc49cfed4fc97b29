/* proxy/cli/cmd_prune — see cmd_prune.h. */
#include "proxy/cli/cmd_prune.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/cliargs.h"
#include "report/pgtool.h"
#include "report/prune.h"
#include "report/store/pq.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally prune --db FILE|URL --older-than AGE [OPTIONS]\n"
            "\n"
            "Deletes the runs whose latest activity (end, heartbeat, snapshot or start) is\n"
            "older than AGE, with their requests, findings and statements, then the\n"
            "fingerprint texts nothing references any more. Deletes %d requests per\n"
            "transaction so a proxy writing to the same store is never blocked for long,\n"
            "and prints what it deleted.\n"
            "\n"
            "Options:\n"
            "      --db FILE|URL       the report store: an SQLite file, or a PostgreSQL\n"
            "                          store (postgres://..., postgresql://..., key=value)\n"
            "      --db-schema NAME    the PostgreSQL store's schema [pgtally]\n"
            "      --older-than AGE    e.g. 30d; units s, m, h, d, w\n"
            "      --keep-labels N     always keep the runs of the N most recently started\n"
            "                          labels (--run-label), however old\n"
            "      --dry-run           print what would be deleted; change nothing\n"
            "      --batch N           requests per transaction [%d]\n"
            "  -h, --help              this text\n"
            "\n"
            "Exit status: 0 ok, 1 the store could not be read or pruned, 2 bad usage.\n",
            PRUNE_DEFAULT_BATCH, PRUNE_DEFAULT_BATCH);
}

enum {
    OPT_DB = 256,
    OPT_OLDER_THAN,
    OPT_KEEP_LABELS,
    OPT_DRY_RUN,
    OPT_BATCH,
    OPT_DB_SCHEMA,
};

static bool parse_count(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int cmd_prune_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"older-than", required_argument, NULL, OPT_OLDER_THAN},
        {"keep-labels", required_argument, NULL, OPT_KEEP_LABELS},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"db-schema", required_argument, NULL, OPT_DB_SCHEMA},
        CLI_OPTIONS_HELP_AND_END,
    };
    const char *db = NULL, *schema = NULL;
    int64_t age_us = -1;
    PruneOptions o = {0};
    long long n;
    CliArgs cli = {
        .command = "prune", .short_options = "h", .options = options, .print_usage = print_usage};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_DB_SCHEMA:
            schema = optarg;
            break;
        case OPT_OLDER_THAN:
            if (!prune_parse_age(optarg, &age_us)) {
                fprintf(stderr,
                        "pgtally prune: --older-than: \"%s\" is not an age such as 30d "
                        "(units s, m, h, d, w)\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_KEEP_LABELS:
            if (!parse_count(optarg, 0, 1000000, &n)) {
                fprintf(stderr, "pgtally prune: --keep-labels: \"%s\" is not a number\n", optarg);
                return 2;
            }
            o.keep_labels = (size_t)n;
            break;
        case OPT_DRY_RUN:
            o.dry_run = true;
            break;
        case OPT_BATCH:
            if (!parse_count(optarg, 1, 1000000, &n)) {
                fprintf(stderr, "pgtally prune: --batch: \"%s\" is not a number in 1-1000000\n",
                        optarg);
                return 2;
            }
            o.batch = (size_t)n;
            break;
        }
    }
    if (!db || age_us < 0) {
        fprintf(stderr, "pgtally prune: give the store with --db and the age with --older-than\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    o.cutoff_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - age_us;
    PruneStats s = {0};
    char err[768];
    bool ok;
    const char *shown = db;
    PgTool store;
    if (pq_is_target(db)) {
        if (!pgtool_open(&store, db, schema, false, err, sizeof err)) {
            fprintf(stderr, "pgtally prune: %s\n", err);
            return 1;
        }
        ok = prune_pg(&store, &o, &s, err, sizeof err);
        shown = store.name;
    } else {
        ok = prune_sqlite(db, &o, &s, err, sizeof err);
    }
    /* After a failure, what was deleted before it stays deleted: say so. */
    if (ok || s.runs + s.requests + s.statements + s.fingerprints > 0)
        printf("%s %s: %" PRIu64 " runs, %" PRIu64 " requests, %" PRIu64 " statements, %" PRIu64
               " fingerprints\n",
               o.dry_run ? "would prune" : "pruned", shown, s.runs, s.requests, s.statements,
               s.fingerprints);
    if (pq_is_target(db))
        pgtool_close(&store);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "pgtally prune: %s\n", err);
        return 1;
    }
    return 0;
}
