/* report/view/view — see view.h. */
#include "report/view/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/cliargs.h"
#include "report/outfile.h"
#include "report/reader.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

typedef enum ViewFormat {
    FORMAT_TEXT,
    FORMAT_JSON,
    FORMAT_MARKDOWN,
    FORMAT_HTML,
} ViewFormat;

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pgtally report --db FILE|URL [OPTIONS]\n"
            "\n"
            "Shows what a report file recorded: routes ranked by their worst offenders\n"
            "(queries per request, duplicates, N+1 findings, DB time), then the top findings\n"
            "with their normalized SQL and the batched form to use instead.\n"
            "\n"
            "Options:\n"
            "      --db FILE|URL        the report store written by `pgtally proxy --db`: an\n"
            "                           SQLite file, or a PostgreSQL store (postgres://...,\n"
            "                           postgresql://... or a libpq key=value string)\n"
            "      --db-schema NAME     the PostgreSQL store's schema [pgtally]\n"
            "  -f, --format FORMAT      text (default), json, markdown or html\n"
            "  -o, --output FILE        write to FILE (created 0600) instead of standard output\n"
            "      --run N              the run to show (default: the latest)\n"
            "      --label L            every run labelled L (--run-label), across instances,\n"
            "                           as one picture; percentiles over all their requests\n"
            "      --runs               list the runs: label, instance, times, counts and\n"
            "                           completeness (text or json; with --label, its runs)\n"
            "      --route ROUTE        only this route: its requests and findings;\n"
            "                           '" VIEW_NO_ROUTE "' (or '') for unlabelled requests\n"
            "      --request ID         one request's statements in order (text, json);\n"
            "                           ID is its request_id, key, row number (the #\n"
            "                           column), or a unique prefix of the id\n"
            "      --fingerprint F      one statement shape: text, routes, calls (text, json);\n"
            "                           F is 16 hex digits or a unique prefix\n"
            "      --top N              findings and fingerprints listed [%d]\n"
            "  -h, --help               this text\n"
            "\n"
            "Colour is used only when standard output is a terminal and NO_COLOR is unset.\n"
            "Exit status: 0 ok, 1 output could not be written, 2 bad usage or unusable file.\n",
            VIEW_TOP_DEFAULT);
}

static bool parse_format(const char *s, ViewFormat *out)
{
    static const struct {
        const char *name;
        ViewFormat format;
    } formats[] = {
        {"text", FORMAT_TEXT},   {"json", FORMAT_JSON}, {"markdown", FORMAT_MARKDOWN},
        {"md", FORMAT_MARKDOWN}, {"html", FORMAT_HTML},
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (strcmp(s, formats[i].name) == 0) {
            *out = formats[i].format;
            return true;
        }
    }
    return false;
}

static bool parse_positive(const char *s, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_DB = 256,
    OPT_RUN,
    OPT_ROUTE,
    OPT_REQUEST,
    OPT_FINGERPRINT,
    OPT_TOP,
    OPT_LABEL,
    OPT_RUNS,
    OPT_DB_SCHEMA,
};

/* Errors can quote what was asked for (a request id) and what the file holds: made safe like
 * every other line pgtally prints. */
static void print_error(const char *err)
{
    fputs("pgtally report: ", stderr);
    viewfmt_text(stderr, err);
    fputc('\n', stderr);
}

int report_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"run", required_argument, NULL, OPT_RUN},
        {"route", required_argument, NULL, OPT_ROUTE},
        {"request", required_argument, NULL, OPT_REQUEST},
        {"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
        {"top", required_argument, NULL, OPT_TOP},
        {"label", required_argument, NULL, OPT_LABEL},
        {"runs", no_argument, NULL, OPT_RUNS},
        {"db-schema", required_argument, NULL, OPT_DB_SCHEMA},
        CLI_OPTIONS_HELP_AND_END,
    };
    const char *db = NULL, *output = NULL, *db_schema = NULL;
    ViewFormat format = FORMAT_TEXT;
    ViewOptions vo = {0};
    bool list_runs = false;
    long long n;
    CliArgs cli = {.command = "report",
                   .short_options = "f:o:h",
                   .options = options,
                   .print_usage = print_usage};
    int c;
    while ((c = cli_next(&cli, argc, argv)) != CLI_DONE) {
        switch (c) {
        case CLI_EXIT:
            return cli.status;
        case OPT_DB:
            db = optarg;
            break;
        case 'f':
            if (!parse_format(optarg, &format)) {
                fprintf(stderr,
                        "pgtally report: --format: \"%s\" is not text, json, "
                        "markdown or html\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            output = optarg;
            break;
        case OPT_RUN:
            if (!parse_positive(optarg, INT64_MAX, &n)) {
                fprintf(stderr, "pgtally report: --run: \"%s\" is not a run number\n", optarg);
                return 2;
            }
            vo.run_id = n;
            break;
        case OPT_ROUTE:
            vo.route = viewfmt_route_arg(optarg);
            break;
        case OPT_LABEL:
            vo.label = optarg;
            break;
        case OPT_RUNS:
            list_runs = true;
            break;
        case OPT_DB_SCHEMA:
            db_schema = optarg;
            break;
        case OPT_REQUEST:
            vo.request = optarg;
            break;
        case OPT_FINGERPRINT:
            vo.fingerprint = optarg;
            break;
        case OPT_TOP:
            if (!parse_positive(optarg, 1000, &n)) {
                fprintf(stderr, "pgtally report: --top: \"%s\" is not a number in 1-1000\n",
                        optarg);
                return 2;
            }
            vo.top = (size_t)n;
            break;
        }
    }
    if (!db) {
        fprintf(stderr, "pgtally report: give the report store with --db FILE|URL\n");
        return 2;
    }
    if (vo.label && vo.run_id) {
        fprintf(stderr, "pgtally report: --run and --label choose the runs two ways; give one\n");
        return 2;
    }
    if (list_runs && (vo.route || vo.request || vo.fingerprint || vo.run_id ||
                      (format != FORMAT_TEXT && format != FORMAT_JSON))) {
        fprintf(stderr, "pgtally report: --runs lists runs (text or json); it takes only --label, "
                        "--format and --output\n");
        return 2;
    }
    if ((vo.route != NULL) + (vo.request != NULL) + (vo.fingerprint != NULL) > 1) {
        fprintf(stderr, "pgtally report: --route, --request and --fingerprint are separate "
                        "views; give one\n");
        return 2;
    }
    if ((vo.request || vo.fingerprint) && (format == FORMAT_MARKDOWN || format == FORMAT_HTML)) {
        fprintf(stderr, "pgtally report: --request and --fingerprint work with --format text "
                        "or json\n");
        return 2;
    }

    char err[512];
    ReaderScope scope = {.run_id = vo.run_id, .label = vo.label};
    ReportFile *file = reader_open_store(db, db_schema, &scope, list_runs, err, sizeof err);
    if (!file) {
        print_error(err);
        return 2;
    }
    ViewData data = {0};
    ReaderRunList runs = {0};
    bool loaded = list_runs ? view_load_runs(file, vo.label, &runs, err, sizeof err)
                            : view_load(file, &vo, &data, err, sizeof err);
    if (!loaded) {
        print_error(err);
        reader_close(file);
        return 2;
    }

    FILE *out = stdout;
    if (output) {
        out = outfile_open(output, false, err, sizeof err); /* SQL inside: owner-only */
        if (!out) {
            fprintf(stderr, "pgtally report: cannot write %s\n", err);
            reader_run_list_free(&runs);
            view_data_free(&data);
            reader_close(file);
            return 1;
        }
        if (err[0])
            fprintf(stderr, "pgtally report: warning: %s\n", err);
    }
    /* Colour is for people at a terminal; pipes, files and NO_COLOR get plain text. */
    vo.color = format == FORMAT_TEXT && !output && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (list_runs)
        view_runs(out, file, &runs, format == FORMAT_JSON);
    else
        switch (format) {
        case FORMAT_TEXT:
            view_text(out, &data, &vo);
            break;
        case FORMAT_JSON:
            view_json(out, &data, &vo);
            break;
        case FORMAT_MARKDOWN:
            view_markdown(out, &data, &vo);
            break;
        case FORMAT_HTML:
            view_html(out, &data, &vo);
            break;
        }
    int rc = 0;
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "pgtally report: %s: write failed: %s\n", output ? output : "stdout",
                strerror(errno));
        rc = 1;
    }
    if (output && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "pgtally report: %s: write failed: %s\n", output, strerror(errno));
        rc = 1;
    }
    reader_run_list_free(&runs);
    view_data_free(&data);
    reader_close(file);
    return rc;
}
