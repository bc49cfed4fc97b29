/* tests/unit/test_view_html.c — the HTML pages (report/view_html) and the helpers they use:
 * long SELECTs shown without their column list, alternating runs folded as "(A, B) x n", a
 * colour of its own per statement, the first chart marking routes with N+1 queries, a route's
 * charts holding only its statements, and links from findings to requests and from
 * statements to their routes (anchors in a static report, URLs on a served page). On a report
 * file written through report/store (report_fixture.h's helpers). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/view/view_html.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"
#include "report_fixture.h"
#include "testlib.h"

/* Two fingerprints a hash of their first four hex digits (mod 360) would paint alike. */
#define FP_A 0x0000aaaa00000001ULL
#define FP_B 0x0168bbbb00000002ULL
#define FP_WIDE 0x0aaa00000000000cULL

static const char wide_sql[] =
    "select orders.id, orders.user_id, orders.total, orders.currency, orders.status, "
    "orders.created_at, orders.updated_at, orders.shipped_at, orders.note, orders.channel, "
    "orders.coupon, orders.tax, orders.discount, coalesce(orders.ref, 'a, b') from orders "
    "where id = $1";

static char path[128];

static bool write_store(char *err, size_t err_len)
{
    StoreOptions opts = {.version = "9.9.9-test", .started_us = FIXTURE_T0};
    Store *s = store_open(path, &opts, err, err_len);
    if (!s)
        return false;
    store_submit_fingerprint(s, fixture_fp(FP_A, "select * from items where order_id = $1"));
    store_submit_fingerprint(s, fixture_fp(FP_B, "select name from users where id = $1"));
    store_submit_fingerprint(s, fixture_fp(FP_WIDE, wide_sql));
    /* /orders: one wide select, then items, users, items, users ... (11 times each). */
    FixtureCall alt[23] = {{FP_WIDE, 1}};
    for (int i = 0; i < 11; i++) {
        alt[1 + 2 * i] = (FixtureCall){FP_A, 100 + (uint64_t)i};
        alt[2 + 2 * i] = (FixtureCall){FP_B, 200 + (uint64_t)i};
    }
    FixtureCall health[1] = {{FP_WIDE, 9}};
    store_submit_request(s, fixture_request("request_id:alt", "/orders",
                                            "{\"route\":\"/orders\",\"request_id\":\"alt\"}",
                                            FIXTURE_T0 + 1000, alt, 23));
    store_submit_request(s, fixture_request("request_id:h", "/health",
                                            "{\"route\":\"/health\",\"request_id\":\"h\"}",
                                            FIXTURE_T0 + 90000, health, 1));
    StoreRunTotals totals = {.statements = 24, .requests = 2, .complete = true};
    return store_close(s, &totals, err, err_len);
}

typedef enum { RENDER_STATIC, RENDER_SERVED_INDEX, RENDER_SERVED_FINGERPRINT } RenderKind;

static char *render(ViewOptions o, RenderKind kind)
{
    char err[256];
    ReportFile *f = reader_open(path, err, sizeof err);
    if (!f) {
        printf("  %s\n", err);
        return NULL;
    }
    ViewData d;
    if (!view_load(f, &o, &d, err, sizeof err)) {
        printf("  %s\n", err);
        reader_close(f);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (kind == RENDER_STATIC) {
        view_html(out, &d, &o);
    } else {
        HtmlPage page = {.out = out, .served = true, .scope_q = "", .version = "1", .nonce = "n0"};
        view_html_begin(&page, "t");
        if (kind == RENDER_SERVED_FINGERPRINT)
            view_html_fingerprint(&page, &d);
        else
            view_html_index(&page, &d, &o);
        view_html_end(&page);
    }
    fclose(out);
    view_data_free(&d);
    reader_close(f);
    return buf;
}

/* The text between `from` and the next `to` in s (a static buffer), or "". */
static const char *between(const char *s, const char *from, const char *to)
{
    static char buf[65536];
    const char *a = s ? strstr(s, from) : NULL;
    const char *b = a ? strstr(a, to) : NULL;
    size_t n = a && b ? (size_t)(b - a) : 0;
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, a ? a : "", n);
    buf[n] = 0;
    return buf;
}

TEST(long_select_loses_its_column_list_not_its_where)
{
    char out[512];
    viewfmt_sql_abbrev(out, sizeof out, wide_sql, 80);
    CHECK_EQ_STR(out, "select \xe2\x80\xa6 14 columns \xe2\x80\xa6 from orders where id = $1");
    viewfmt_sql_abbrev(out, sizeof out, "select a, b from t where x = $1", 80);
    CHECK_EQ_STR(out, "select a, b from t where x = $1"); /* fits: as it is */
    viewfmt_sql_abbrev(out, sizeof out, "update t set a = $1, b = $2, c = $3 where id = $4", 20);
    CHECK_EQ_STR(out, "update t set a = ..."); /* not a select: cut */
    viewfmt_sql_abbrev(out, sizeof out, "select x from (select a, b from u) s where k = $1", 30);
    CHECK(strncmp(out, "select x from (select a, b", 26) == 0); /* one column: nothing to drop */
}

TEST(alternating_runs_fold_into_one_pattern)
{
    ReaderStatement st[23] = {{0}};
    snprintf(st[0].fingerprint, 17, "cccc000000000000");
    for (int i = 0; i < 11; i++) {
        snprintf(st[1 + 2 * i].fingerprint, 17, "aaaa000000000000");
        snprintf(st[2 + 2 * i].fingerprint, 17, "bbbb000000000000");
    }
    ReaderTimeline t = {.items = st, .n = 23};
    size_t n_folds, n_cycles;
    ViewFold *folds = viewfmt_fold(&t, &n_folds);
    ViewCycle *cycles = viewfmt_fold_cycles(&t, folds, n_folds, &n_cycles);
    CHECK_EQ_INT(n_folds, 23);
    CHECK_EQ_INT(n_cycles, 2);
    if (n_cycles == 2) {
        CHECK_EQ_INT(cycles[0].period, 1);
        CHECK_EQ_INT(cycles[1].first, 1);
        CHECK_EQ_INT(cycles[1].period, 2);
        CHECK_EQ_INT(cycles[1].repeats, 11);
    }
    free(cycles);
    free(folds);
    /* A, B, A: no pattern repeats twice, nothing is folded. */
    ReaderTimeline three = {.items = st + 1, .n = 3};
    folds = viewfmt_fold(&three, &n_folds);
    cycles = viewfmt_fold_cycles(&three, folds, n_folds, &n_cycles);
    CHECK_EQ_INT(n_cycles, 3);
    free(cycles);
    free(folds);
}

TEST(static_report_folds_and_abbreviates)
{
    char *s = render((ViewOptions){0}, RENDER_STATIC);
    CHECK(s != NULL);
    CHECK(s && strstr(s, "(A, B) &times; 11") != NULL);
    CHECK(s && strstr(s, "select \xe2\x80\xa6 14 columns \xe2\x80\xa6 from orders where id = $1") !=
                   NULL);
    free(s);
}

TEST(each_statement_has_its_own_colour)
{
    char *s = render((ViewOptions){0}, RENDER_STATIC);
    const char *chart = between(s, "<svg id=\"chart-calls\"", "</svg>");
    char fills[8][40];
    size_t n = 0;
    for (const char *p = chart; (p = strstr(p, "fill=\"hsl(")) && n < 8; p++)
        sscanf(p, "fill=\"%39[^\"]", fills[n++]);
    CHECK_EQ_INT(n, 3);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(strcmp(fills[i], fills[j]) != 0);
    free(s);
}

TEST(first_chart_marks_routes_with_n_plus_one)
{
    char *s = render((ViewOptions){0}, RENDER_STATIC);
    const char *chart = between(s, "<svg id=\"chart-routes\"", "</svg>");
    CHECK(strstr(chart, "<g class=\"route n1\"><title>/orders") != NULL);
    CHECK(strstr(chart, "<g class=\"route\"><title>/health") != NULL);
    CHECK(strstr(chart, "N+1 in 1 of 1") != NULL);
    free(s);
}

TEST(route_charts_hold_only_the_routes_statements)
{
    char *s = render((ViewOptions){.route = "/health"}, RENDER_STATIC);
    CHECK(s != NULL);
    const char *chart = between(s, "<svg id=\"chart-calls\"", "</svg>");
    CHECK(strstr(chart, "14 columns") != NULL);
    CHECK(strstr(chart, "items") == NULL);
    CHECK(strstr(chart, "users") == NULL);
    free(s);
}

TEST(static_links_land_on_anchors_in_the_file)
{
    char *s = render((ViewOptions){0}, RENDER_STATIC);
    CHECK(s && strstr(s, "href=\"#request-alt\"") != NULL);
    CHECK(s && strstr(s, "id=\"request-alt\"") != NULL);
    CHECK(s && strstr(s, "href=\"#fp-0000aaaa00000001\"") != NULL);
    CHECK(s && strstr(s, "id=\"fp-0000aaaa00000001\"") != NULL);
    CHECK(s && strstr(s, "<script") == NULL);
    free(s);
}

/* Every in-file link has its anchor, even to a statement outside the top lists (--top 1):
 * the timelines link every statement they show. */
TEST(static_links_to_statements_outside_the_top_lists_land)
{
    char *s = render((ViewOptions){.top = 1}, RENDER_STATIC);
    CHECK(s != NULL);
    size_t links = 0;
    for (const char *p = s; p && (p = strstr(p, "href=\"#")); p++) {
        char target[64], id[80];
        if (sscanf(p, "href=\"#%63[^\"]", target) != 1)
            continue;
        snprintf(id, sizeof id, "id=\"%s\"", target);
        links++;
        if (!strstr(s, id))
            printf("  no anchor for #%s\n", target);
        CHECK(strstr(s, id) != NULL);
    }
    CHECK(links >= 3);
    free(s);
}

TEST(served_links_are_urls)
{
    char *s = render((ViewOptions){0}, RENDER_SERVED_INDEX);
    CHECK(s && strstr(s, "href=\"/request/alt\"") != NULL);
    CHECK(s && strstr(s, "href=\"/fingerprint/0000aaaa00000001\"") != NULL);
    CHECK(s && strstr(s, "href=\"/route?name=%2Forders\"") != NULL);
    CHECK(s && strstr(s, "<script nonce=\"n0\">") != NULL);
    CHECK(s && strstr(s, "/api/version") != NULL);
    free(s);
}

TEST(served_pages_read_only_the_latest_requests)
{
    char err[256];
    ReportFile *f = reader_open(path, err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    ReaderRequestList l;
    CHECK(reader_latest_requests(f, NULL, 1, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 1);
    if (l.n == 1)
        CHECK_EQ_STR(l.items[0].id, "h");
    reader_request_list_free(&l);
    CHECK(reader_latest_requests(f, NULL, 5, &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_STR(l.items[0].id, "alt"); /* in start order, with their findings */
        CHECK_EQ_INT(l.items[0].n_plus_one, 2);
    }
    reader_request_list_free(&l);
    reader_close(f);
    char *s = render((ViewOptions){.latest = 1}, RENDER_SERVED_INDEX);
    CHECK(s && strstr(s, "1 older requests not listed") != NULL);
    CHECK(s && strstr(s, "<br>2 requests, 24 queries") != NULL); /* totals still of all */
    free(s);
}

/* The served page of a statement run on two routes: each route's row has that route's rows
 * and bytes (one call of 1 row, 40 B on each), not the statement's totals (2 rows, 80 B); the
 * reader hands them per route. */
TEST(fingerprint_page_has_rows_and_bytes_per_route)
{
    char err[256];
    ReportFile *f = reader_open(path, err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    ReaderFingerprintList l;
    CHECK(reader_fingerprint(f, "0aaa00000000000c", &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 1);
    if (l.n == 1) {
        CHECK_EQ_INT(l.items[0].rows, 2);
        CHECK_EQ_INT(l.items[0].n_routes, 2);
        for (size_t i = 0; i < l.items[0].n_routes; i++) {
            CHECK_EQ_INT(l.items[0].routes[i].rows, 1);
            CHECK_EQ_INT(l.items[0].routes[i].bytes, 40);
        }
    }
    reader_fingerprint_list_free(&l);
    reader_close(f);
    char *s = render((ViewOptions){.fingerprint = "0aaa00000000000c"}, RENDER_SERVED_FINGERPRINT);
    const char *table = between(s, "<table class=\"fp-routes\">", "</table>");
    CHECK(strstr(table, "<th>DB time</th><th>rows</th><th>bytes</th></tr>") != NULL);
    CHECK(strstr(table, "/health</a></td><td>1</td><td>1</td>") != NULL);
    CHECK(strstr(table, "/orders</a></td><td>1</td><td>1</td>") != NULL);
    size_t rows = 0;
    for (const char *p = table; (p = strstr(p, "</td><td>1</td><td>40 B</td></tr>")); p++)
        rows++;
    CHECK_EQ_INT(rows, 2);
    if (rows != 2)
        printf("  %s\n", table);
    free(s);
}

int main(void)
{
    char tmpdir[] = "/tmp/pgtally-view-html-XXXXXX";
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(path, sizeof path, "%s/r.db", tmpdir);
    char err[256];
    if (!write_store(err, sizeof err)) {
        printf("cannot write the report: %s\n", err);
        return 1;
    }
    RUN(long_select_loses_its_column_list_not_its_where);
    RUN(alternating_runs_fold_into_one_pattern);
    RUN(static_report_folds_and_abbreviates);
    RUN(each_statement_has_its_own_colour);
    RUN(first_chart_marks_routes_with_n_plus_one);
    RUN(route_charts_hold_only_the_routes_statements);
    RUN(static_links_land_on_anchors_in_the_file);
    RUN(static_links_to_statements_outside_the_top_lists_land);
    RUN(served_links_are_urls);
    RUN(served_pages_read_only_the_latest_requests);
    RUN(fingerprint_page_has_rows_and_bytes_per_route);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    return TESTLIB_FINISH();
}
