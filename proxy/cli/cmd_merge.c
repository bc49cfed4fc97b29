/* proxy/cli/cmd_merge — see cmd_merge.h. Every input is checked before the first is copied, so a
 * newer-schema file among them writes nothing. */
#include "proxy/cli/cmd_merge.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "report/cliargs.h"
#include "report/merge.h"
#include "report/pgtool.h"
#include "report/store/pq.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally merge -o OUT.db IN.db...\n"
            "       pgtally merge --to postgres://... [--db-schema NAME] IN.db...\n"
            "\n"
            "Combines report files (e.g. one per CI shard) into OUT.db, created with mode 0600\n"
            "when missing, or pushes them into a PostgreSQL report store (e.g. a Heroku\n"
            "dyno's file, from a release or one-off task). Runs keep their identity (uuid),\n"
            "label and instance; fingerprint texts are unified. Merging the same input again\n"
            "adds nothing: a run already in OUT.db is skipped, unless OUT.db holds an\n"
            "unfinished snapshot of it and the input has the ended run, which then replaces\n"
            "it. Each run is copied in one transaction.\n"
            "Then `pgtally report --db OUT.db --label L` or `pgtally check --label L` reads\n"
            "the shards as one picture.\n"
            "\n"
            "Options:\n"
            "  -o, --output OUT.db   the file to merge into (may already exist)\n"
            "      --to URL          a PostgreSQL store instead (postgres://, postgresql:// or\n"
            "                        a libpq key=value string); its schema is created or\n"
            "                        migrated as the proxy would\n"
            "      --db-schema NAME  the PostgreSQL store's schema [pgtally]\n"
            "  -h, --help            this text\n"
            "\n"
            "Exit status: 0 ok, 1 a copy failed, 2 bad usage or an input that cannot be\n"
            "merged (not a pgtally report, or a newer schema): nothing is written then.\n");
}

int cmd_merge_main(int argc, char **argv)
{
    enum { OPT_TO = 256, OPT_DB_SCHEMA };
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"to", required_argument, NULL, OPT_TO},
        {"db-schema", required_argument, NULL, OPT_DB_SCHEMA},
        CLI_OPTIONS_HELP_AND_END,
    };
    const char *output = NULL, *to = NULL, *schema = NULL;
    CliArgs cli = {.command = "merge",
                   .short_options = "o:h",
                   .options = options,
                   .print_usage = print_usage,
                   .operands = true};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case 'o':
            output = optarg;
            break;
        case OPT_TO:
            to = optarg;
            break;
        case OPT_DB_SCHEMA:
            schema = optarg;
            break;
        }
    }
    if ((output != NULL) == (to != NULL)) {
        fprintf(stderr, "pgtally merge: give the output file with -o OUT.db, or a PostgreSQL "
                        "store with --to URL\n");
        return 2;
    }
    if (to && !pq_is_target(to)) {
        fprintf(stderr, "pgtally merge: --to takes a PostgreSQL store (postgres://... or "
                        "key=value); for a file use -o\n");
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "pgtally merge: give at least one input file\n");
        return 2;
    }
    char err[768];
    for (int i = optind; i < argc; i++) {
        if (!merge_check_input(argv[i], err, sizeof err)) {
            fprintf(stderr, "pgtally merge: %s\n", err);
            return 2;
        }
    }
    PgTool store;
    if (to && !pgtool_open(&store, to, schema, true, err, sizeof err)) {
        fprintf(stderr, "pgtally merge: %s\n", err);
        return 1;
    }
    const char *into = to ? store.name : output;
    MergeStats total = {0};
    for (int i = optind; i < argc; i++) {
        MergeStats s = {0};
        bool ok = to ? merge_to_pg(&store, argv[i], &s, err, sizeof err)
                     : merge_sqlite(output, argv[i], &s, err, sizeof err);
        printf("%s: %" PRIu64 " runs added, %" PRIu64 " replaced, %" PRIu64
               " already there; %" PRIu64 " requests, %" PRIu64 " statements, %" PRIu64
               " new fingerprints\n",
               argv[i], s.runs_added, s.runs_replaced, s.runs_skipped, s.requests, s.statements,
               s.fingerprints);
        if (!ok) {
            fflush(stdout);
            fprintf(stderr, "pgtally merge: %s\n", err);
            if (to)
                pgtool_close(&store);
            return 1;
        }
        total.runs_added += s.runs_added;
        total.runs_replaced += s.runs_replaced;
        total.runs_skipped += s.runs_skipped;
    }
    printf("merged into %s: %" PRIu64 " runs added, %" PRIu64 " replaced, %" PRIu64
           " already there\n",
           into, total.runs_added, total.runs_replaced, total.runs_skipped);
    if (to)
        pgtool_close(&store);
    return 0;
}
