/* proxy/cmd_merge — see cmd_merge.h. Every input is checked before the first is copied, so a
 * newer-schema file among them writes nothing. */
#include "proxy/cmd_merge.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "report/merge.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally merge -o OUT.db IN.db...\n"
            "\n"
            "Combines report files (e.g. one per CI shard) into OUT.db, created with mode 0600\n"
            "when missing. Runs keep their identity (uuid), label and instance; fingerprint\n"
            "texts are unified. Merging the same input again adds nothing: a run already in\n"
            "OUT.db is skipped, unless OUT.db holds an unfinished snapshot of it and the input\n"
            "has the ended run, which then replaces it. Each run is copied in one transaction.\n"
            "Then `pgtally report --db OUT.db --label L` or `pgtally check --label L` reads\n"
            "the shards as one picture.\n"
            "\n"
            "Options:\n"
            "  -o, --output OUT.db   the file to merge into (may already exist)\n"
            "  -h, --help            this text\n"
            "\n"
            "Exit status: 0 ok, 1 a copy failed, 2 bad usage or an input that cannot be\n"
            "merged (not a pgtally report, or a newer schema): nothing is written then.\n");
}

int cmd_merge_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            output = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return 0;
        default:
            print_usage(stderr);
            return 2;
        }
    }
    if (!output) {
        fprintf(stderr, "pgtally merge: give the output file with -o OUT.db\n");
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
    MergeStats total = {0};
    for (int i = optind; i < argc; i++) {
        MergeStats s = {0};
        bool ok = merge_sqlite(output, argv[i], &s, err, sizeof err);
        printf("%s: %" PRIu64 " runs added, %" PRIu64 " replaced, %" PRIu64
               " already there; %" PRIu64 " requests, %" PRIu64 " statements, %" PRIu64
               " new fingerprints\n",
               argv[i], s.runs_added, s.runs_replaced, s.runs_skipped, s.requests, s.statements,
               s.fingerprints);
        if (!ok) {
            fflush(stdout);
            fprintf(stderr, "pgtally merge: %s\n", err);
            return 1;
        }
        total.runs_added += s.runs_added;
        total.runs_replaced += s.runs_replaced;
        total.runs_skipped += s.runs_skipped;
    }
    printf("merged into %s: %" PRIu64 " runs added, %" PRIu64 " replaced, %" PRIu64
           " already there\n",
           output, total.runs_added, total.runs_replaced, total.runs_skipped);
    return 0;
}
