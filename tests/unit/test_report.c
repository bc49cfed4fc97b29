/* tests/unit/test_report.c — report/reader, report/suggest and the report formats, on a
 * report file written through report/store (tests/unit/report_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "report/reader.h"
#include "report/suggest.h"
#include "report/view/viewdata.h"
#include "protocol/jsonout.h"
#include "report/view/viewfmt.h"
#include "report_fixture.h"
#include "testlib.h"

static char tmpdir[64];
static char fixture_path[128];

static ReportFile *open_fixture(void)
{
    char err[256];
    ReportFile *f = reader_open(fixture_path, err, sizeof err);
    if (!f)
        printf("  %s\n", err);
    return f;
}

/* ---- suggest ------------------------------------------------------------------------------ */

static void check_suggest(const char *sql, SuggestStyle style, const char *expected)
{
    char out[512];
    bool ok = suggest_batched(sql, style, out, sizeof out);
    if (!expected) {
        CHECK(!ok);
        CHECK_EQ_STR(out, "");
    } else {
        CHECK(ok);
        CHECK_EQ_STR(out, expected);
    }
}

TEST(suggest_simple_equality)
{
    check_suggest("select * from items where order_id = $1", SUGGEST_ANY,
                  "select * from items where order_id = any($1)");
    check_suggest("select * from items where order_id = $1", SUGGEST_IN,
                  "select * from items where order_id in ($1, $2, $3, ...)");
}

TEST(suggest_drops_trailing_limit_and_keeps_quoted_names)
{
    check_suggest("select \"users\".* from \"users\" where \"users\".\"id\" = $1 limit $2",
                  SUGGEST_ANY,
                  "select \"users\".* from \"users\" where \"users\".\"id\" = any($1)");
}

TEST(suggest_keeps_other_predicates_and_order)
{
    check_suggest("select * from t where deleted_at is null and user_id = $1 order by id",
                  SUGGEST_ANY,
                  "select * from t where deleted_at is null and user_id = any($1) order by id");
    check_suggest("delete from sessions where user_id = $1", SUGGEST_ANY,
                  "delete from sessions where user_id = any($1)");
}

TEST(suggest_casts_become_array_casts)
{
    check_suggest("select * from t where id = $1::uuid", SUGGEST_ANY,
                  "select * from t where id = any($1::uuid[])");
    check_suggest("select * from t where id = $1::uuid", SUGGEST_IN,
                  "select * from t where id in ($1::uuid, $2::uuid, $3::uuid, ...)");
}

TEST(suggest_refuses_other_shapes)
{
    check_suggest("select * from t where a = $1 and b = $2", SUGGEST_ANY, NULL);
    check_suggest("insert into t (a) values ($1)", SUGGEST_ANY, NULL);
    check_suggest("update t set a = $1 where id = $2", SUGGEST_ANY, NULL);
    check_suggest("select * from t where id in (select x from u where y = $1)", SUGGEST_ANY, NULL);
    check_suggest("select * from t where a > $1", SUGGEST_ANY, NULL);
    check_suggest("select * from t where a = $1 or b = c", SUGGEST_ANY,
                  "select * from t where a = any($1) or b = c");
    check_suggest("select * from t where id = $1 limit $2 offset $3", SUGGEST_ANY, NULL);
    check_suggest("select $1", SUGGEST_ANY, NULL);
    check_suggest("", SUGGEST_ANY, NULL);
}

TEST(suggest_respects_capacity)
{
    char out[10];
    CHECK(
        !suggest_batched("select * from items where order_id = $1", SUGGEST_ANY, out, sizeof out));
    CHECK_EQ_STR(out, "");
}

/* ---- reader ------------------------------------------------------------------------------- */

TEST(reader_refuses_missing_and_foreign_files)
{
    char err[256], path[160];
    snprintf(path, sizeof path, "%s/missing.db", tmpdir);
    CHECK(!reader_open(path, err, sizeof err));
    CHECK(strstr(err, path) != NULL);
    CHECK(access(path, F_OK) != 0); /* never created */

    snprintf(path, sizeof path, "%s/text.db", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("this is not a database, just some text that is long enough to be a header", f);
    fclose(f);
    CHECK(!reader_open(path, err, sizeof err));
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, "not a pgtally report") != NULL);

    snprintf(path, sizeof path, "%s/other.db", tmpdir);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE t (x); PRAGMA user_version = 1;", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(!reader_open(path, err, sizeof err));
    CHECK(strstr(err, "not a pgtally report") != NULL);
}

TEST(reader_refuses_newer_schema)
{
    char err[256], path[160];
    snprintf(path, sizeof path, "%s/newer.db", tmpdir);
    CHECK(report_fixture_write(path, 0, err, sizeof err));
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(!reader_open(path, err, sizeof err));
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, "newer") != NULL);
}

TEST(reader_loads_latest_run_and_completeness)
{
    ReportFile *f = open_fixture();
    CHECK(f != NULL);
    if (!f)
        return;
    char err[256], why[128];
    ReaderRun run;
    CHECK(reader_load_run(f, 0, &run, err, sizeof err));
    CHECK_EQ_INT(run.id, 1);
    CHECK_EQ_STR(run.version, "9.9.9-test");
    CHECK_EQ_INT(run.started_us, FIXTURE_T0);
    CHECK(run.ended_us > 0);
    CHECK_EQ_INT(run.stored_requests, 5);
    CHECK_EQ_INT(run.stored_statements, 24);
    CHECK_EQ_INT(reader_run_dropped(&run), 0);
    CHECK(reader_run_is_complete(&run, why, sizeof why));
    reader_run_free(&run);
    CHECK(!reader_load_run(f, 7, &run, err, sizeof err));
    CHECK(strstr(err, "no run 7") != NULL);
    ReaderRunList runs;
    CHECK(reader_list_runs(f, &runs, err, sizeof err));
    CHECK_EQ_INT(runs.n, 1);
    reader_run_list_free(&runs);
    reader_close(f);
}

TEST(reader_incomplete_run_says_why)
{
    char err[256], path[160], why[128];
    snprintf(path, sizeof path, "%s/incomplete.db", tmpdir);
    CHECK(report_fixture_write(path, 3, err, sizeof err));
    ReportFile *f = reader_open(path, err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    ReaderRun run;
    CHECK(reader_load_run(f, 0, &run, err, sizeof err));
    CHECK(!run.complete);
    CHECK_EQ_INT(run.dropped_requests, 3);
    CHECK_EQ_INT(reader_run_dropped(&run), 6);
    CHECK(!reader_run_is_complete(&run, why, sizeof why));
    CHECK(strstr(why, "3 requests") != NULL);
    reader_run_free(&run);
    reader_close(f);
}

TEST(reader_requests_with_findings)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderRequestList l;
    CHECK(reader_requests(f, NULL, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 5);
    if (l.n == 5) {
        const ReaderRequest *a1 = &l.items[0];
        CHECK_EQ_STR(a1->id, "a1");
        CHECK_EQ_STR(a1->key, "request_id:a1");
        CHECK_EQ_STR(a1->route, "/orders");
        CHECK_EQ_INT(a1->queries, 13);
        CHECK_EQ_INT(a1->distinct_fingerprints, 3);
        CHECK_EQ_INT(a1->duplicates, 1);
        CHECK_EQ_INT(a1->db_time_us, 1300);
        CHECK_EQ_INT(a1->n_plus_one, 1);
        CHECK_EQ_INT(a1->n_findings, 2);
        if (a1->n_findings == 2) {
            CHECK_EQ_STR(a1->findings[0].kind, "n_plus_one");
            CHECK_EQ_STR(a1->findings[0].fingerprint, "2222000000000002");
            CHECK_EQ_INT(a1->findings[0].count, 10);
            CHECK_EQ_STR(a1->findings[0].normalized, "select * from items where order_id = $1");
            CHECK_EQ_STR(a1->findings[1].kind, "duplicate");
            CHECK_EQ_INT(a1->findings[1].count, 1);
        }
        CHECK_EQ_STR(l.items[4].id, "conn:7#1"); /* untagged: the key itself */
        CHECK_EQ_STR(l.items[4].route, FIXTURE_ODD_ROUTE);
        CHECK_EQ_INT(l.items[1].n_findings, 0);
    }
    reader_request_list_free(&l);
    CHECK(reader_requests(f, "/health", &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 1);
    reader_request_list_free(&l);
    reader_close(f);
}

TEST(reader_find_request_by_id_key_and_row)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderRequestList l;
    CHECK(reader_find_request(f, "a3", &l, err, sizeof err));
    CHECK(l.n == 1 && l.items[0].queries == 7);
    reader_request_list_free(&l);
    CHECK(reader_find_request(f, "request_id:a2", &l, err, sizeof err));
    CHECK(l.n == 1 && l.items[0].queries == 2);
    reader_request_list_free(&l);
    CHECK(reader_find_request(f, "4", &l, err, sizeof err));
    CHECK(l.n == 1 && strcmp(l.items[0].id, "h1") == 0);
    reader_request_list_free(&l);
    CHECK(!reader_find_request(f, "nope", &l, err, sizeof err));
    CHECK(strstr(err, "no request \"nope\"") != NULL);
    /* a unique prefix of the id or the key, as for fingerprints */
    CHECK(reader_find_request(f, "conn:7", &l, err, sizeof err));
    CHECK(l.n == 1 && strcmp(l.items[0].key, "conn:7#1") == 0);
    reader_request_list_free(&l);
    CHECK(reader_find_request(f, "h", &l, err, sizeof err));
    CHECK(l.n == 1 && strcmp(l.items[0].id, "h1") == 0);
    reader_request_list_free(&l);
    CHECK(!reader_find_request(f, "a", &l, err, sizeof err)); /* a1, a2, a3 */
    CHECK(strstr(err, "matches 3 requests") != NULL);
    reader_close(f);
}

TEST(viewfmt_counts_routes_and_why)
{
    char out[64];
    viewfmt_count(out, sizeof out, 0);
    CHECK_EQ_STR(out, "0");
    viewfmt_count(out, sizeof out, 2500);
    CHECK_EQ_STR(out, "2,500");
    viewfmt_count(out, sizeof out, 1234567890);
    CHECK_EQ_STR(out, "1,234,567,890");
    CHECK_EQ_STR(viewfmt_route(""), "(no route)");
    CHECK_EQ_STR(viewfmt_route("/a"), "/a");
    CHECK_EQ_STR(viewfmt_route_arg("(no route)"), "");
    CHECK_EQ_STR(viewfmt_route_arg("/a"), "/a");
    ReaderTopFinding f = {.kind = "overfetch",
                          .requests = 1,
                          .total_count = 2500,
                          .max_count = 2500,
                          .rows = 2500,
                          .bytes = 300000,
                          .cost_us = 41000};
    char why[512];
    viewfmt_finding_why(why, sizeof why, &f);
    CHECK_EQ_STR(why, "41.0 ms DB time; up to 2,500 rows returned by one request, in 1 request; "
                      "2,500 rows, 300.0 kB returned");
}

TEST(reader_routes_percentiles_and_order)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderRouteList l;
    CHECK(reader_routes(f, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 3);
    if (l.n == 3) {
        const ReaderRoute *r = &l.items[0]; /* the worst first */
        CHECK_EQ_STR(r->route, "/orders");
        CHECK_EQ_INT(r->requests, 3);
        CHECK_EQ_INT(r->queries, 22);
        CHECK_EQ_INT(r->queries_p50, 7);
        CHECK_EQ_INT(r->queries_p95, 13);
        CHECK_EQ_INT(r->queries_max, 13);
        CHECK_EQ_INT(r->duplicates, 1);
        CHECK_EQ_INT(r->n_plus_one, 2);
        CHECK_EQ_INT(r->requests_with_n_plus_one, 2);
        CHECK_EQ_INT(r->db_time_us, 2200);
        CHECK_EQ_INT(r->db_time_p50_us, 700);
        CHECK_EQ_INT(r->db_time_max_us, 1300);
        CHECK_EQ_INT(l.items[1].requests, 1);
    }
    reader_route_list_free(&l);
    reader_close(f);
}

TEST(reader_top_findings_grouped)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderTopFindingList l;
    CHECK(reader_top_findings(f, NULL, 0, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        const ReaderTopFinding *t = &l.items[0];
        CHECK_EQ_STR(t->kind, "n_plus_one");
        CHECK_EQ_STR(t->fingerprint, "2222000000000002");
        CHECK_EQ_INT(t->requests, 2);
        CHECK_EQ_INT(t->total_count, 16);
        CHECK_EQ_INT(t->max_count, 10);
        CHECK_EQ_STR(t->worst_request, "a1");
        CHECK_EQ_STR(t->worst_route, "/orders");
        CHECK_EQ_INT(t->total_time_us, 1600);
        CHECK_EQ_INT(t->cost_us, 1600); /* an N+1 stands for all its time */
        CHECK_EQ_INT(t->rows, 16);
        CHECK_EQ_STR(l.items[1].kind, "duplicate");
        /* a duplicate only for its repeats' share: 1 repeat of 2 calls of 100 µs */
        CHECK_EQ_INT(l.items[1].total_time_us, 200);
        CHECK_EQ_INT(l.items[1].cost_us, 100);
        char why[512];
        viewfmt_finding_why(why, sizeof why, t);
        CHECK_EQ_STR(why, "1.60 ms DB time; 16 calls in 2 requests, up to 10 in one; 16 rows, "
                          "640 B returned");
    }
    reader_top_finding_list_free(&l);
    CHECK(reader_top_findings(f, "/health", 0, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 0);
    reader_top_finding_list_free(&l);
    reader_close(f);
}

TEST(reader_fingerprints_and_details)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderFingerprintList l;
    CHECK(reader_top_fingerprints(f, READER_BY_CALLS, 2, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_STR(l.items[0].fingerprint, "2222000000000002");
        CHECK_EQ_INT(l.items[0].calls, 16);
        CHECK_EQ_INT(l.items[0].max_calls, 10);
        CHECK_EQ_INT(l.items[0].requests, 2);
    }
    reader_fingerprint_list_free(&l);
    CHECK(reader_fingerprint(f, "3333", &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 1);
    if (l.n == 1) {
        CHECK_EQ_STR(l.items[0].fingerprint, "3333000000000003");
        CHECK_EQ_STR(l.items[0].normalized, "select name from users where id = $1");
        CHECK_EQ_INT(l.items[0].calls, 3);
        CHECK_EQ_INT(l.items[0].n_routes, 1);
    }
    reader_fingerprint_list_free(&l);
    CHECK(!reader_fingerprint(f, "zz", &l, err, sizeof err));
    CHECK(!reader_fingerprint(f, "9999", &l, err, sizeof err));
    CHECK(strstr(err, "no fingerprint") != NULL);
    reader_close(f);
}

TEST(reader_timeline_and_fold)
{
    ReportFile *f = open_fixture();
    if (!f)
        return;
    char err[256];
    ReaderRequestList l;
    CHECK(reader_find_request(f, "a1", &l, err, sizeof err));
    ReaderTimeline t;
    CHECK(l.n == 1 && reader_timeline(f, l.items[0].row, &t, err, sizeof err));
    CHECK_EQ_INT(t.n, 13);
    size_t n;
    ViewFold *folds = viewfmt_fold(&t, &n);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_INT(folds[1].count, 10);
        CHECK_EQ_INT(folds[1].duration_us, 1000);
        CHECK_EQ_INT(folds[2].count, 2);
    }
    if (t.n == 13)
        CHECK_EQ_STR(t.items[1].normalized, "select * from items where order_id = $1");
    free(folds);
    reader_timeline_free(&t);
    reader_request_list_free(&l);
    reader_close(f);
}

/* ---- formats ------------------------------------------------------------------------------ */

typedef void (*Formatter)(FILE *, const ViewData *, const ViewOptions *);

/* Renders one format into a malloc'd string. */
static char *render(Formatter fmt, ViewOptions o)
{
    ReportFile *f = open_fixture();
    if (!f)
        return NULL;
    char err[256];
    ViewData d;
    if (!view_load(f, &o, &d, err, sizeof err)) {
        printf("  %s\n", err);
        reader_close(f);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    fmt(out, &d, &o);
    fclose(out);
    view_data_free(&d);
    reader_close(f);
    return buf;
}

static size_t widest_line(const char *s)
{
    size_t best = 0, cur = 0;
    for (; *s; s++) {
        if (*s == '\n') {
            cur = 0;
            continue;
        }
        if (((unsigned char)*s & 0xc0) != 0x80)
            cur++;
        if (cur > best)
            best = cur;
    }
    return best;
}

TEST(text_fits_width_and_has_no_colour_by_default)
{
    char *s = render(view_text, (ViewOptions){0});
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(widest_line(s) <= VIEW_TEXT_WIDTH);
    CHECK(strchr(s, '\033') == NULL);
    CHECK(strstr(s, "data complete") != NULL);
    CHECK(strstr(s, "/orders") != NULL);
    CHECK(strstr(s, "select * from items where order_id = any($1)") != NULL);
    free(s);
    s = render(view_text, (ViewOptions){.color = true});
    CHECK(s && strchr(s, '\033') != NULL);
    free(s);
}

TEST(text_request_timeline_folds_repeats)
{
    char *s = render(view_text, (ViewOptions){.request = "a1"});
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(widest_line(s) <= VIEW_TEXT_WIDTH);
    CHECK(strstr(s, "x10") != NULL);
    CHECK(strstr(s, "x2") != NULL);
    CHECK(strstr(s, "TIMELINE") != NULL);
    free(s);
}

TEST(text_route_and_fingerprint_drilldowns)
{
    char *s = render(view_text, (ViewOptions){.route = "/orders"});
    CHECK(s && strstr(s, "a3") && !strstr(s, "/health") && widest_line(s) <= VIEW_TEXT_WIDTH);
    free(s);
    s = render(view_text, (ViewOptions){.fingerprint = "2222000000000002"});
    CHECK(s && strstr(s, "16 calls in 2 requests") && widest_line(s) <= VIEW_TEXT_WIDTH);
    free(s);
}

TEST(json_has_contract_fields)
{
    char *s = render(view_json, (ViewOptions){0});
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strstr(s, "\"summary\":{\"requests\":5,\"queries\":24,") != NULL);
    CHECK(strstr(s, "\"dropped\":0") != NULL);
    CHECK(strstr(s, "\"id\":\"a1\"") != NULL);
    CHECK(strstr(s, "\"tags\":{\"route\":\"/orders\",\"request_id\":\"a1\"}") != NULL);
    CHECK(strstr(s, "\"kind\":\"n_plus_one\",\"fingerprint\":\"2222000000000002\",\"count\":10") !=
          NULL);
    CHECK(strstr(s, "\"route\":\"<b>&\\\"x|y`</b>\"") != NULL);
    free(s);
}

TEST(markdown_escapes_table_cells)
{
    char *s = render(view_markdown, (ViewOptions){0});
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strstr(s, "| Route |") != NULL);
    CHECK(strstr(s, "| `/orders` | 3 | 7 | 13 | 13 | 1 | **2** |") != NULL);
    CHECK(strstr(s, "``<b>&\"x\\|y`</b>``") != NULL); /* pipe escaped, fence beats the tick */
    CHECK(strstr(s, "```sql\nselect * from items where order_id = any($1)\n```") != NULL);
    CHECK(strstr(s, "Data complete") != NULL);
    free(s);
}

TEST(html_is_self_contained_and_escaped)
{
    char *s = render(view_html, (ViewOptions){0});
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strstr(s, "<svg id=\"chart-routes\"") != NULL);
    CHECK(strstr(s, "<svg id=\"chart-calls\"") != NULL);
    CHECK(strstr(s, "<svg id=\"chart-time\"") != NULL);
    CHECK(strstr(s, "class=\"timeline\"") != NULL);
    CHECK(strstr(s, "&lt;b&gt;&amp;&quot;x|y`&lt;/b&gt;") != NULL);
    CHECK(strstr(s, "<b>&") == NULL);
    CHECK(strstr(s, "<script") == NULL);
    CHECK(strstr(s, "http://") == NULL || strstr(s, "http://www.w3.org/2000/svg") != NULL);
    CHECK(strstr(s, "https://") == NULL);
    free(s);
}

/* ---- control characters and fences in text and Markdown ------------------------------- */

typedef void (*WriteFn)(FILE *, const char *);

static char *capture(WriteFn fn, const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fn(f, s);
    fclose(f);
    return buf;
}

static void md_block(FILE *f, const char *s)
{
    viewfmt_md_code_block(f, "sql", s);
}

static void md_code_cell(FILE *f, const char *s)
{
    viewfmt_md_cell(f, s, true);
}

static void md_text_cell(FILE *f, const char *s)
{
    viewfmt_md_cell(f, s, false);
}

/* True when s holds no C0 control but newline, no DEL, no C1 control (as UTF-8 or raw) and
 * is valid UTF-8: what a terminal or a Markdown renderer can be handed. */
static bool is_safe(const char *s, bool newlines)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        if ((u[i] < 0x20 && !(newlines && u[i] == '\n')) || u[i] == 0x7F)
            return false;
        size_t n = utf8_char_len(u + i, len - i);
        if (n == 0 || (n == 2 && u[i] == 0xC2 && u[i + 1] < 0xA0))
            return false;
        i += n;
    }
    return true;
}

TEST(safe_char_escapes_every_control_and_replaces_bad_utf8)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"\x1b", "\\x1b"},
        {"\r", "\\x0d"},
        {"\a", "\\x07"},
        {"\x7f", "\\x7f"},
        {"\xc2\x9b", "\\x9b"},    /* C1 CSI as UTF-8 */
        {"\x9b", "\xef\xbf\xbd"}, /* a lone C1 byte is not UTF-8 */
        {"\xc3\xa9", "\xc3\xa9"},
        {"\xc2\xa0", "\xc2\xa0"}, /* U+00A0 is printable */
        {"a", "a"},
        {"\xe2\x82", "\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[VIEWFMT_SAFE_MAX];
        size_t used =
            viewfmt_safe_char((const unsigned char *)cases[i].in, strlen(cases[i].in), out);
        CHECK(used >= 1);
        CHECK_EQ_STR(out, cases[i].out);
    }
}

TEST(text_and_markdown_writers_never_pass_a_control_byte)
{
    const char *nasty = "SEL\x1b]0;owned\aECT \x1b[2J\r\n1 \xc2\x9b"
                        "31m \x9b \xff \x01 x";
    char line[512];
    viewfmt_one_line(line, sizeof line, nasty, 200);
    CHECK(is_safe(line, false));
    CHECK(strstr(line, "SEL\\x1b]0;owned\\x07ECT \\x1b[2J 1 \\x9b31m") != NULL);
    WriteFn fns[] = {viewfmt_text, md_code_cell, md_text_cell, viewfmt_xml};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        char *s = capture(fns[i], nasty);
        CHECK(s && is_safe(s, fns[i] == viewfmt_xml));
        free(s);
    }
    char *block = capture(md_block, nasty);
    CHECK(block && is_safe(block, true));
    free(block);
}

TEST(markdown_code_block_fence_outgrows_any_backtick_run)
{
    char sql[128];
    snprintf(sql, sizeof sql, "select 1 as \"%s\"", "````````````````````"); /* 20 */
    char *s = capture(md_block, sql);
    CHECK(s != NULL);
    if (!s)
        return;
    /* 21 backticks open and close it; nothing inside is that long */
    CHECK(strncmp(s, "`````````````````````sql\n", 25) == 0);
    size_t len = strlen(s);
    CHECK(len > 22 && strcmp(s + len - 22, "`````````````````````\n") == 0);
    CHECK(strstr(s, "\"````````````````````\"") != NULL);
    free(s);
    s = capture(md_block, "select 1");
    CHECK(s && strcmp(s, "```sql\nselect 1\n```\n") == 0);
    free(s);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/pgtally-test-report-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(fixture_path, sizeof fixture_path, "%s/fixture.db", tmpdir);
    char err[256];
    if (!report_fixture_write(fixture_path, 0, err, sizeof err)) {
        printf("cannot write the fixture: %s\n", err);
        return 1;
    }
    RUN(suggest_simple_equality);
    RUN(suggest_drops_trailing_limit_and_keeps_quoted_names);
    RUN(suggest_keeps_other_predicates_and_order);
    RUN(suggest_casts_become_array_casts);
    RUN(suggest_refuses_other_shapes);
    RUN(suggest_respects_capacity);
    RUN(reader_refuses_missing_and_foreign_files);
    RUN(reader_refuses_newer_schema);
    RUN(reader_loads_latest_run_and_completeness);
    RUN(reader_incomplete_run_says_why);
    RUN(reader_requests_with_findings);
    RUN(reader_find_request_by_id_key_and_row);
    RUN(reader_routes_percentiles_and_order);
    RUN(reader_top_findings_grouped);
    RUN(viewfmt_counts_routes_and_why);
    RUN(reader_fingerprints_and_details);
    RUN(reader_timeline_and_fold);
    RUN(text_fits_width_and_has_no_colour_by_default);
    RUN(text_request_timeline_folds_repeats);
    RUN(text_route_and_fingerprint_drilldowns);
    RUN(json_has_contract_fields);
    RUN(markdown_escapes_table_cells);
    RUN(html_is_self_contained_and_escaped);
    RUN(safe_char_escapes_every_control_and_replaces_bad_utf8);
    RUN(text_and_markdown_writers_never_pass_a_control_byte);
    RUN(markdown_code_block_fence_outgrows_any_backtick_run);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    return TESTLIB_FINISH();
}
