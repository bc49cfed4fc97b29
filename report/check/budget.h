/* report/check/budget — the verdicts of `pgtally check`, the CI gate (docs/budgets.md).
 *
 * Owns: evaluating one run of a report file (read only through report/reader) against a
 * Budget (report/check/budgetfile): per-request limits, the ignore list, completeness of the
 * data, and with a baseline the growth of each route's mean queries per request against
 * another report's run; the verdict as a CheckResult. The outputs (text, JUnit XML, Markdown)
 * are written by report/check/check_output from a CheckResult; the command line and the exit
 * code are report/check/check's. */
#ifndef PGTALLY_REPORT_BUDGET_H
#define PGTALLY_REPORT_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report/check/budgetfile.h"
#include "report/reader.h"

/* The offending statement of an n_plus_one or duplicate violation. */
typedef struct CheckSql {
    char fingerprint[17];
    char *kind;     /* "n_plus_one" or "duplicate" */
    uint64_t count; /* n_plus_one: calls; duplicate: repeated executions */
    uint32_t distinct_values;
    char *normalized; /* "" when the text never reached the report */
} CheckSql;

typedef enum CheckViolationKind {
    CHECK_LIMIT,  /* one request over a per-request limit (`key`) */
    CHECK_GROWTH, /* a route's mean queries per request grew beyond max_growth */
} CheckViolationKind;

typedef struct CheckViolation {
    CheckViolationKind kind;
    size_t route_index; /* into CheckResult.routes */
    /* CHECK_LIMIT */
    BudgetKey key;
    char *request_id;  /* ReaderRequest.id */
    char *request_key; /* ReaderRequest.key */
    int64_t request_row;
    uint64_t figure; /* max_db_time_ms: microseconds (the limit is in ms) */
    uint64_t limit;
    int limit_line; /* budget-file line that set the limit */
    CheckSql *sql;
    size_t n_sql;
    /* CHECK_GROWTH */
    double mean, baseline_mean, allowed;
    BudgetGrowth growth;
} CheckViolation;

typedef struct CheckRoute {
    char *route;      /* "" = unlabelled requests */
    bool ignored;     /* on the [ignore] list: not checked */
    bool has_section; /* the budget has a [route "..."] for it */
    uint64_t requests, queries;
    uint32_t queries_p50, queries_p95, queries_max;
    uint64_t n_plus_one, duplicates, db_time_us;
    bool in_baseline;     /* with --baseline: the route existed there */
    double baseline_mean; /* its mean queries per request in the baseline run */
    size_t violations;    /* how many CheckViolations name this route */
} CheckRoute;

typedef struct CheckResult {
    char *db_path, *budget_path;
    int64_t run_id;  /* the (latest) run checked */
    char scope[240]; /* what was checked: "run 3", or "label \"L\" (3 runs on 2 instances)" */
    size_t runs;     /* runs combined (1 unless --label) */
    uint64_t requests, queries;
    bool complete; /* the run's data can be trusted as a whole */
    char incomplete_why[160];
    bool no_requests; /* the run recorded no request at all: refuses to pass too */
    bool baseline;    /* --baseline given */
    char *baseline_path;
    int64_t baseline_run_id;
    bool baseline_complete;
    char baseline_why[160];
    CheckRoute *routes; /* worst first, as report/reader orders them */
    size_t n_routes;
    CheckViolation *violations; /* by route (in routes order), then request order */
    size_t n_violations;
    uint64_t ignored_findings; /* n_plus_one / duplicate findings skipped by [ignore] */
} CheckResult;

/* Evaluates the runs `scope` names (one run, a label's runs as one, or the latest run) of the
 * report store at `db_path` (an SQLite file or a PostgreSQL target, whose tables are in
 * `db_schema`, NULL: the default) against `budget`,
 * and with `baseline_path` (may be NULL) compares against that report's latest run. Fills
 * `out` (free with check_result_free, also after a failure). Returns false with
 * "path: reason" in err when a report file cannot be used (exit 2). */
bool budget_check(const Budget *budget, const char *db_path, const char *db_schema,
                  const ReaderScope *scope, const char *baseline_path, CheckResult *out, char *err,
                  size_t err_len);

/* True when the check passes: complete data, some requests, no violation. */
bool check_result_passed(const CheckResult *result);

void check_result_free(CheckResult *result);

#endif
