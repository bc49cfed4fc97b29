/* Unit tests for report/check/budgetfile: the budget file of `pgtally check`. Every error case
 * checks that the message names FILE:LINE of the offending line. Files are written to a
 * temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/check/budgetfile.h"
#include "testlib.h"

static char tmpdir[] = "/tmp/test_budgetfile.XXXXXX";
static char path[256];

static void write_file(const char *text)
{
    snprintf(path, sizeof path, "%s/budget.ini", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static Budget *load(const char *text, char *err, size_t err_len)
{
    write_file(text);
    err[0] = '\0';
    return budget_load(path, err, err_len);
}

/* Loading `text` fails with "PATH:LINE: ..." containing `needle`. */
static void expect_error(const char *text, int line, const char *needle)
{
    char err[600];
    Budget *b = load(text, err, sizeof err);
    CHECK(b == NULL);
    budget_free(b);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, needle)) {
        testlib_case_failures++;
        printf("  expected \"%s...%s\", got \"%s\"\n", prefix, needle, err);
    }
}

TEST(example_from_docs)
{
    char err[600];
    Budget *b = load("# CI budget\n"
                     "[defaults]\n"
                     "max_queries = 50          ; per request\n"
                     "max_duplicates = 10\n"
                     "max_n_plus_one = 0        ; N+1 findings allowed per request\n"
                     "max_db_time_ms = 500\n"
                     "max_rows = 10000\n"
                     "max_growth = 10%          ; with --baseline\n"
                     "[route \"/api/orders\"]\n"
                     "max_queries = 8\n"
                     "[ignore]\n"
                     "fingerprint = 3F2A9C0123456789   ; known and accepted\n",
                     err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_QUERIES].value, 50);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_QUERIES].line, 3);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_N_PLUS_ONE].state, BUDGET_SET);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_N_PLUS_ONE].value, 0);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_ROWS].value, 10000);
    CHECK(b->defaults.growth.state == BUDGET_SET && b->defaults.growth.percent);
    CHECK(b->defaults.growth.value == 10.0);
    CHECK_EQ_INT(b->n_routes, 1);
    BudgetLimits orders = budget_limits_for(b, "/api/orders");
    CHECK_EQ_INT(orders.limit[BUDGET_MAX_QUERIES].value, 8);
    CHECK_EQ_INT(orders.limit[BUDGET_MAX_DUPLICATES].value, 10); /* inherited */
    BudgetLimits other = budget_limits_for(b, "/api/users");
    CHECK_EQ_INT(other.limit[BUDGET_MAX_QUERIES].value, 50);
    CHECK(budget_has_route(b, "/api/orders"));
    CHECK(!budget_has_route(b, "/api/users"));
    CHECK(budget_ignores_fingerprint(b, "3f2a9c0123456789"));
    CHECK(!budget_ignores_fingerprint(b, "3f2a9c0123456788"));
    budget_free(b);
}

TEST(indented_keys_are_keys_not_continuations)
{
    char err[600];
    Budget *b = load("[route \"/a\"]\n"
                     "    max_queries = 3\n"
                     "    max_rows = 4\n"
                     "\tmax_duplicates = 5\n",
                     err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    BudgetLimits l = budget_limits_for(b, "/a");
    CHECK_EQ_INT(l.limit[BUDGET_MAX_QUERIES].value, 3);
    CHECK_EQ_INT(l.limit[BUDGET_MAX_ROWS].value, 4);
    CHECK_EQ_INT(l.limit[BUDGET_MAX_DUPLICATES].value, 5);
    budget_free(b);
}

TEST(long_route_names_and_escapes)
{
    char err[600];
    const char *route = "/api/v1/organizations/{org_id}/projects/{project_id}/members/{id}";
    char text[400];
    snprintf(text, sizeof text,
             "[route \"%s\"]\nmax_queries = 1\n[route \"a\\\"b\\\\c#d\"]\n"
             "max_queries = 2\n[route \"\"]\nmax_queries = 3\n",
             route);
    Budget *b = load(text, err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    CHECK_EQ_INT(budget_limits_for(b, route).limit[BUDGET_MAX_QUERIES].value, 1);
    CHECK_EQ_INT(budget_limits_for(b, "a\"b\\c#d").limit[BUDGET_MAX_QUERIES].value, 2);
    CHECK_EQ_INT(budget_limits_for(b, "").limit[BUDGET_MAX_QUERIES].value, 3);
    budget_free(b);
}

TEST(off_lifts_a_default_for_one_route)
{
    char err[600];
    Budget *b = load("[defaults]\nmax_queries = 5\nmax_growth = 2\n"
                     "[route \"/report\"]\nmax_queries = off\nmax_growth = none\n",
                     err, sizeof err);
    CHECK(b != NULL);
    if (!b)
        return;
    BudgetLimits l = budget_limits_for(b, "/report");
    CHECK_EQ_INT(l.limit[BUDGET_MAX_QUERIES].state, BUDGET_OFF);
    CHECK_EQ_INT(l.growth.state, BUDGET_OFF);
    BudgetLimits d = budget_limits_for(b, "/x");
    CHECK(d.growth.state == BUDGET_SET && !d.growth.percent && d.growth.value == 2.0);
    CHECK_EQ_INT(d.limit[BUDGET_MAX_DUPLICATES].state, BUDGET_UNSET);
    budget_free(b);
}

TEST(ignore_routes_and_case_insensitive_names)
{
    char err[600];
    Budget *b = load("[IGNORE]\nroute = /health\nroute = \"\"\nFingerprint = aaaaaaaaaaaaaaaa\n"
                     "[Defaults]\nMAX_QUERIES = 1\n",
                     err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    CHECK(budget_ignores_route(b, "/health"));
    CHECK(budget_ignores_route(b, ""));
    CHECK(!budget_ignores_route(b, "/other"));
    CHECK(budget_ignores_fingerprint(b, "AAAAAAAAAAAAAAAA"));
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_QUERIES].value, 1);
    budget_free(b);
}

TEST(empty_file_is_a_budget_without_limits)
{
    char err[600];
    Budget *b = load("; nothing\n\n# at all\n", err, sizeof err);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_INT(budget_limits_for(b, "/x").limit[BUDGET_MAX_QUERIES].state, BUDGET_UNSET);
        CHECK(!budget_sets_limits(b)); /* pgtally check refuses it */
    }
    budget_free(b);
    b = load("[route \"/a\"]\nmax_queries = off\n[ignore]\nroute = /h\n", err, sizeof err);
    CHECK(b != NULL && !budget_sets_limits(b));
    budget_free(b);
    b = load("[route \"/a\"]\nmax_rows = 5\n", err, sizeof err);
    CHECK(b != NULL && budget_sets_limits(b));
    budget_free(b);
}

/* The unlabelled requests may be named as reports name them. */
TEST(no_route_names_the_unlabelled_requests)
{
    char err[600];
    Budget *b = load("[route \"(no route)\"]\nmax_queries = 3\n[ignore]\nroute = \"(no route)\"\n",
                     err, sizeof err);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_INT(budget_limits_for(b, "").limit[BUDGET_MAX_QUERIES].value, 3);
        CHECK(budget_ignores_route(b, ""));
    }
    budget_free(b);
    expect_error("[route \"\"]\nmax_queries = 1\n[route \"(no route)\"]\nmax_queries = 2\n", 3,
                 "given twice");
}

TEST(error_unknown_section)
{
    expect_error("[defaults]\nmax_queries = 1\n[limits]\n", 3, "unknown section [limits]");
}

TEST(error_unknown_key)
{
    expect_error("[defaults]\nmax_queries = 1\nmax_querys = 2\n", 3, "unknown key \"max_querys\"");
    expect_error("[ignore]\nfingerprint = 0123456789abcdef\nquery = x\n", 3,
                 "unknown key \"query\" in [ignore]");
}

TEST(error_bad_values)
{
    expect_error("[defaults]\nmax_queries = ten\n", 2, "\"ten\" is not a whole number");
    expect_error("[defaults]\n\nmax_rows = -1\n", 3, "\"-1\" is not a whole number");
    expect_error("[defaults]\nmax_rows = 1.5\n", 2, "is not a whole number");
    expect_error("[defaults]\nmax_rows = 99999999999999999999\n", 2, "is not a whole number");
    expect_error("[defaults]\nmax_db_time_ms = 5ms\n", 2, "\"5ms\"");
    expect_error("[defaults]\nmax_queries =\n", 2, "no value");
    expect_error("[defaults]\nmax_growth = ten%\n", 2, "is not a percentage");
    expect_error("[defaults]\nmax_growth = -5%\n", 2, "is not a percentage");
    expect_error("[defaults]\nmax_growth = inf\n", 2, "is not a percentage");
    expect_error("[defaults]\nmax_growth = 10%%\n", 2, "is not a percentage");
    expect_error("[ignore]\nfingerprint = 3f2a9c\n", 2, "not 16 hex digits");
    expect_error("[ignore]\nfingerprint = 3f2a9c012345678g\n", 2, "not 16 hex digits");
}

TEST(error_duplicates)
{
    expect_error("[route \"/a\"]\nmax_queries = 1\n\n[route \"/a\"]\n", 4,
                 "route \"/a\" given twice (first on line 1)");
    expect_error("[defaults]\nmax_queries = 1\nmax_queries = 2\n", 3,
                 "max_queries given twice in this section (first on line 2)");
    expect_error("[defaults]\n[ignore]\n[defaults]\n", 3, "[defaults] given twice");
}

TEST(error_malformed_lines)
{
    expect_error("[defaults]\nmax_queries 5\n", 2, "expected \"key = value\"");
    expect_error("[defaults\nmax_queries = 5\n", 1, "malformed section header");
    expect_error("[route \"/a]\n", 1, "unterminated");
    expect_error("[route /a]\n", 1, "malformed section header");
    expect_error("[route]\n", 1, "[route] needs a quoted route name");
    expect_error("[defaults \"x\"]\n", 1, "takes no quoted name");
    expect_error("[route \"a\\nb\"]\n", 1, "unknown escape");
    expect_error("max_queries = 5\n[defaults]\n", 1, "before any section");
    char longline[400];
    memset(longline, '1', sizeof longline);
    memcpy(longline, "[defaults]\nmax_rows = ", 22);
    strcpy(longline + 390, "\n");
    expect_error(longline, 2, "line longer than 199 bytes");
}

/* Builds "[defaults]\n" + a `max_rows = 7 ; ...` line of exactly `len` bytes + "max_queries = 3\n".
 */
static void rows_line_file(char *out, size_t len)
{
    static const char head[] = "[defaults]\n";
    static const char key[] = "max_rows = 7 ; ";
    size_t n = strlen(head);
    memcpy(out, head, n);
    memcpy(out + n, key, strlen(key));
    memset(out + n + strlen(key), 'c', len - strlen(key));
    n += len;
    strcpy(out + n, "\nmax_queries = 3\n");
}

TEST(line_at_the_limit_is_read_whole)
{
    /* libinih (Debian's build) takes lines of at most 199 bytes: one that long is parsed as it
     * stands, and the next line keeps its number. */
    char text[400];
    rows_line_file(text, 199);
    char err[600];
    Budget *b = load(text, err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_ROWS].value, 7);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_ROWS].line, 2);
    CHECK_EQ_INT(b->defaults.limit[BUDGET_MAX_QUERIES].line, 3);
    budget_free(b);
}

TEST(line_over_the_limit_names_its_line)
{
    char text[400];
    rows_line_file(text, 200);
    expect_error(text, 2, "line longer than 199 bytes");
    /* CRLF endings do not count towards the limit. */
    char crlf[400];
    rows_line_file(crlf, 199);
    char *nl = strchr(crlf + 11, '\n');
    memmove(nl + 1, nl, strlen(nl) + 1);
    *nl = '\r';
    char err[600];
    Budget *b = load(crlf, err, sizeof err);
    CHECK(b != NULL);
    budget_free(b);
}

TEST(first_error_wins)
{
    /* A semantic error on line 2 comes before a syntax error on line 3, and vice versa. */
    expect_error("[defaults]\nmax_queries = x\ngarbage\n", 2, "not a whole number");
    expect_error("[defaults]\ngarbage\nmax_queries = x\n", 2, "expected \"key = value\"");
    /* Keys under a bad header are not reported again. */
    expect_error("[nope]\nfoo = 1\n", 1, "unknown section");
}

TEST(missing_file)
{
    char err[600];
    Budget *b = budget_load("/nonexistent/budget.ini", err, sizeof err);
    CHECK(b == NULL);
    CHECK(strstr(err, "/nonexistent/budget.ini: ") == err);
}

/* Writes a budget file of `routes` [route] sections, each with one limit, plus `extra_lines`
 * comment lines before them. Returns the line number of the last [route] header. */
static int write_routes(size_t routes, size_t extra_lines)
{
    snprintf(path, sizeof path, "%s/budget.ini", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    int line = 0;
    for (size_t i = 0; i < extra_lines; i++, line++)
        fputs("#\n", f);
    fputs("[defaults]\nmax_queries = 50\n", f);
    line += 2;
    for (size_t i = 0; i < routes; i++) {
        fprintf(f, "[route \"/api/r%zu\"]\nmax_queries = %zu\n", i, i % 100 + 1);
        line += 2;
    }
    fclose(f);
    return line - 1;
}

/* The duplicate-route check and the lookups are a hash index: loading 100000 routes examines
 * a few index slots per route, not every route before it (5e9 comparisons when quadratic). */
TEST(many_routes_load_in_linear_work)
{
    enum { ROUTES = 100000 };
    write_routes(ROUTES, 0);
    char err[600] = "";
    Budget *b = budget_load(path, err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        printf("  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->n_routes, ROUTES);
    printf("  %d routes: %llu index slots examined while loading (%.2f per route)\n", ROUTES,
           (unsigned long long)b->load_probes, (double)b->load_probes / ROUTES);
    CHECK(b->load_probes <= 8 * (uint64_t)ROUTES); /* about 3.3 */
    CHECK(budget_has_route(b, "/api/r99999"));
    CHECK(!budget_has_route(b, "/api/r100000"));
    CHECK_EQ_INT(budget_limits_for(b, "/api/r12345").limit[BUDGET_MAX_QUERIES].value, 46);
    budget_free(b);
}

TEST(a_duplicate_among_many_routes_names_both_lines)
{
    write_routes(1000, 0);
    FILE *f = fopen(path, "a");
    fputs("[route \"/api/r500\"]\n", f);
    fclose(f);
    char err[600] = "";
    Budget *b = budget_load(path, err, sizeof err);
    CHECK(b == NULL);
    budget_free(b);
    char want[400];
    snprintf(want, sizeof want, "%s:2003: route \"/api/r500\" given twice (first on line 1003)",
             path);
    CHECK_EQ_STR(err, want);
}

TEST(routes_beyond_the_bound_are_an_error_naming_the_line)
{
    int last = write_routes(BUDGET_MAX_ROUTES + 1, 0);
    char err[600] = "";
    Budget *b = budget_load(path, err, sizeof err);
    CHECK(b == NULL);
    budget_free(b);
    char want[400];
    snprintf(want, sizeof want, "%s:%d: more than %d [route] sections", path, last,
             BUDGET_MAX_ROUTES);
    if (strncmp(err, want, strlen(want)) != 0) {
        testlib_case_failures++;
        printf("  expected \"%s...\", got \"%s\"\n", want, err);
    }
}

TEST(lines_beyond_the_bound_are_an_error_naming_the_line)
{
    write_routes(0, BUDGET_MAX_LINES);
    char err[600] = "";
    Budget *b = budget_load(path, err, sizeof err);
    CHECK(b == NULL);
    budget_free(b);
    char want[400];
    snprintf(want, sizeof want, "%s:%d: more than %d lines", path, BUDGET_MAX_LINES + 1,
             BUDGET_MAX_LINES);
    if (strncmp(err, want, strlen(want)) != 0) {
        testlib_case_failures++;
        printf("  expected \"%s...\", got \"%s\"\n", want, err);
    }
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(example_from_docs);
    RUN(indented_keys_are_keys_not_continuations);
    RUN(long_route_names_and_escapes);
    RUN(off_lifts_a_default_for_one_route);
    RUN(ignore_routes_and_case_insensitive_names);
    RUN(empty_file_is_a_budget_without_limits);
    RUN(no_route_names_the_unlabelled_requests);
    RUN(error_unknown_section);
    RUN(error_unknown_key);
    RUN(error_bad_values);
    RUN(error_duplicates);
    RUN(error_malformed_lines);
    RUN(line_at_the_limit_is_read_whole);
    RUN(line_over_the_limit_names_its_line);
    RUN(first_error_wins);
    RUN(missing_file);
    RUN(many_routes_load_in_linear_work);
    RUN(a_duplicate_among_many_routes_names_both_lines);
    RUN(routes_beyond_the_bound_are_an_error_naming_the_line);
    RUN(lines_beyond_the_bound_are_an_error_naming_the_line);
    unlink(path);
    rmdir(tmpdir);
    printf("%d passed, %d failed\n", testlib_cases_passed, testlib_cases_failed);
    return testlib_cases_failed ? 1 : 0;
}
