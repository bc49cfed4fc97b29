/* report/check/check — see check.h. */
#include "report/check/check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/check/budget.h"
#include "report/check/budgetfile.h"
#include "report/check/check_output.h"
#include "report/cliargs.h"
#include "report/outfile.h"
#include "report/reader.h"

/* The proxy's default --db, so `pgtally proxy` then `pgtally check` need no --db. */
#define CHECK_DEFAULT_DB "pgtally.db"

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: pgtally check [OPTIONS]\n"
                 "\n"
                 "Checks a run recorded by `pgtally proxy --db FILE` against a budget file and\n"
                 "exits 0 when every request is within budget, 1 when any is over budget or the\n"
                 "run's data is incomplete (records dropped, proxy not stopped cleanly, nothing\n"
                 "recorded), 2 on a usage error, a bad budget file or an unusable report file.\n"
                 "\n"
                 "Options:\n"
                 "      --db FILE|URL      report file to check [" CHECK_DEFAULT_DB "], or a\n"
                 "                         PostgreSQL store (postgres://... or key=value)\n"
                 "      --db-schema NAME   the PostgreSQL store's schema [pgtally]\n"
                 "      --budget FILE      budget file (docs/budgets.md); required\n"
                 "      --run N            the run to check [the latest]\n"
                 "      --label L          check every run labelled L (--run-label) as one;\n"
                 "                         incomplete when any of them is\n"
                 "      --baseline FILE    an older report: fail when a route's mean queries per\n"
                 "                         request grew beyond max_growth since its latest run\n"
                 "      --junit FILE       also write JUnit XML (a testcase per route and limit)\n"
                 "      --markdown FILE    also write a Markdown summary (for a PR comment)\n"
                 "  -h, --help             this text\n");
}

enum {
    OPT_DB = 256,
    OPT_BUDGET,
    OPT_RUN,
    OPT_BASELINE,
    OPT_JUNIT,
    OPT_MARKDOWN,
    OPT_LABEL,
    OPT_DB_SCHEMA,
};

typedef struct CheckArgs {
    const char *db, *budget, *baseline, *junit, *markdown, *label, *db_schema;
    int64_t run;
} CheckArgs;

static int parse_args(int argc, char **argv, CheckArgs *a)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"budget", required_argument, NULL, OPT_BUDGET},
        {"run", required_argument, NULL, OPT_RUN},
        {"baseline", required_argument, NULL, OPT_BASELINE},
        {"junit", required_argument, NULL, OPT_JUNIT},
        {"markdown", required_argument, NULL, OPT_MARKDOWN},
        {"label", required_argument, NULL, OPT_LABEL},
        {"db-schema", required_argument, NULL, OPT_DB_SCHEMA},
        CLI_OPTIONS_HELP_AND_END,
    };
    *a = (CheckArgs){.db = CHECK_DEFAULT_DB};
    CliArgs cli = {
        .command = "check", .short_options = "h", .options = options, .print_usage = print_usage};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case OPT_DB:
            a->db = optarg;
            break;
        case OPT_BUDGET:
            a->budget = optarg;
            break;
        case OPT_RUN: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || v <= 0) {
                fprintf(stderr, "pgtally check: --run: \"%s\" is not a run number (1, 2, ...)\n",
                        optarg);
                return 2;
            }
            a->run = v;
            break;
        }
        case OPT_BASELINE:
            a->baseline = optarg;
            break;
        case OPT_JUNIT:
            a->junit = optarg;
            break;
        case OPT_MARKDOWN:
            a->markdown = optarg;
            break;
        case OPT_LABEL:
            a->label = optarg;
            break;
        case OPT_DB_SCHEMA:
            a->db_schema = optarg;
            break;
        }
    }
    if (a->label && a->run) {
        fprintf(stderr, "pgtally check: --run and --label choose the runs two ways; give one\n");
        return 2;
    }
    if (!a->budget) {
        fprintf(stderr, "pgtally check: --budget FILE is required (docs/budgets.md)\n");
        return 2;
    }
    return -1;
}

/* Writes one output file with `write`; false with the reason printed. */
static bool write_output(const char *path, const CheckResult *r,
                         bool (*write)(FILE *, const CheckResult *))
{
    char err[600];
    FILE *f = outfile_open(path, false, err, sizeof err); /* SQL inside: owner-only */
    if (!f) {
        fprintf(stderr, "pgtally check: %s\n", err);
        return false;
    }
    if (err[0])
        fprintf(stderr, "pgtally check: warning: %s\n", err);
    bool ok = write(f, r);
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "pgtally check: %s: write failed: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

int check_main(int argc, char **argv)
{
    CheckArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    char err[768];
    Budget *budget = budget_load(a.budget, err, sizeof err);
    if (!budget) {
        fprintf(stderr, "pgtally check: %s\n", err);
        return 2;
    }
    /* A budget without a single limit would pass every run, silently: an empty or truncated
     * file, or limits under a misspelt section. With --baseline it still forbids growth. */
    if (!a.baseline && !budget_sets_limits(budget)) {
        fprintf(stderr,
                "pgtally check: %s: the budget sets no limit (no max_* key in [defaults] or "
                "any [route]), so every run would pass; see docs/budgets.md\n",
                a.budget);
        budget_free(budget);
        return 2;
    }
    CheckResult result;
    ReaderScope scope = {.run_id = a.run, .label = a.label};
    if (!budget_check(budget, a.db, a.db_schema, &scope, a.baseline, &result, err, sizeof err)) {
        fprintf(stderr, "pgtally check: %s\n", err);
        check_result_free(&result);
        budget_free(budget);
        return 2;
    }
    check_output_text(stdout, &result);
    fflush(stdout);
    if (!result.complete)
        fprintf(stderr, "pgtally check: INCOMPLETE DATA in %s %s: %s; refusing to pass\n",
                result.db_path, result.scope, result.incomplete_why);
    else if (result.no_requests)
        fprintf(stderr, "pgtally check: %s %s recorded no requests; refusing to pass\n",
                result.db_path, result.scope);
    rc = check_result_passed(&result) ? 0 : 1;
    if (a.junit && !write_output(a.junit, &result, check_output_junit))
        rc = 2;
    if (a.markdown && !write_output(a.markdown, &result, check_output_markdown))
        rc = 2;
    check_result_free(&result);
    budget_free(budget);
    return rc;
}
