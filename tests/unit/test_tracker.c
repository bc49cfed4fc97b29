/* tests/unit/test_tracker — the request tracker on synthetic message streams: pipelining,
 * errors until Sync (and what the server skips meanwhile), row-limited portals, COPY and its
 * ignored Syncs, count and byte bounds, the shared budget, desync, before authentication. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/sqlnorm.h"
#include "protocol/tracker.h"
#include "testlib.h"

#include <xxhash.h>

#define MAX_EVENTS 32

typedef struct Recorded {
    TrackerEvent ev;
    char sql[256];
    char statement[64];
    char normalized[256];
    char tags[256]; /* "k=v k=v" */
    char app[64];
} Recorded;

typedef struct Sink {
    Recorded events[MAX_EVENTS];
    int count;
} Sink;

static void record(void *ctx, const TrackerEvent *ev)
{
    Sink *sink = ctx;
    if (sink->count >= MAX_EVENTS)
        return;
    Recorded *r = &sink->events[sink->count++];
    r->ev = *ev;
    snprintf(r->sql, sizeof r->sql, "%.*s", ev->sql ? (int)ev->sql_len : 6,
             ev->sql ? ev->sql : "(null)");
    snprintf(r->statement, sizeof r->statement, "%.*s", ev->statement ? (int)ev->statement_len : 6,
             ev->statement ? ev->statement : "(null)");
    snprintf(r->normalized, sizeof r->normalized, "%.*s", (int)ev->normalized_len,
             ev->normalized ? ev->normalized : "");
    size_t n = 0;
    for (size_t i = 0; i < ev->n_tags && n < sizeof r->tags; i++)
        n += (size_t)snprintf(r->tags + n, sizeof r->tags - n, "%s%.*s=%.*s", i ? " " : "",
                              (int)ev->tags[i].key_len, ev->tags[i].key, (int)ev->tags[i].value_len,
                              ev->tags[i].value);
    snprintf(r->app, sizeof r->app, "%.*s", (int)ev->application_name_len,
             ev->application_name ? ev->application_name : "");
    r->ev.sql = NULL;
    r->ev.statement = NULL;
    r->ev.normalized = NULL;
    r->ev.tags = NULL;
    r->ev.application_name = NULL;
}

static const TrackerLimits default_limits = {
    .max_sql_bytes = 4096, .max_outstanding = 1024, .max_statements = 64, .max_portals = 16};

static int64_t clock_us = 1000;

/* Body builders: small fixed buffers are enough for these tests. */
typedef struct Body {
    uint8_t b[512];
    size_t n;
} Body;

static void put_str(Body *m, const char *s)
{
    size_t l = strlen(s) + 1;
    memcpy(m->b + m->n, s, l);
    m->n += l;
}

static void put16(Body *m, int v)
{
    m->b[m->n++] = (uint8_t)(v >> 8);
    m->b[m->n++] = (uint8_t)v;
}

static void put32(Body *m, int32_t v)
{
    for (int i = 3; i >= 0; i--)
        m->b[m->n++] = (uint8_t)((uint32_t)v >> (8 * i));
}

static void fe(Tracker *t, uint8_t type, const Body *m)
{
    clock_us += 10;
    tracker_on_frontend(t, type, m ? m->b : NULL, m ? m->n : 0, m ? m->n : 0, clock_us);
}

static void be(Tracker *t, uint8_t type, const Body *m)
{
    clock_us += 10;
    tracker_on_backend(t, type, m ? m->b : NULL, m ? m->n : 0, m ? m->n : 0, clock_us);
}

static void query(Tracker *t, const char *sql)
{
    Body m = {0};
    put_str(&m, sql);
    fe(t, 'Q', &m);
}

static void parse(Tracker *t, const char *name, const char *sql)
{
    Body m = {0};
    put_str(&m, name);
    put_str(&m, sql);
    put16(&m, 0);
    fe(t, 'P', &m);
}

static void bind(Tracker *t, const char *portal, const char *stmt, const char *value)
{
    Body m = {0};
    put_str(&m, portal);
    put_str(&m, stmt);
    put16(&m, 0);
    put16(&m, 1);
    put32(&m, (int32_t)strlen(value));
    memcpy(m.b + m.n, value, strlen(value));
    m.n += strlen(value);
    put16(&m, 0);
    fe(t, 'B', &m);
}

static void execute(Tracker *t, const char *portal, int32_t max_rows)
{
    Body m = {0};
    put_str(&m, portal);
    put32(&m, max_rows);
    fe(t, 'E', &m);
}

static void describe(Tracker *t, char kind, const char *name)
{
    Body m = {0};
    m.b[m.n++] = (uint8_t)kind;
    put_str(&m, name);
    fe(t, 'D', &m);
}

static void close_target(Tracker *t, char kind, const char *name)
{
    Body m = {0};
    m.b[m.n++] = (uint8_t)kind;
    put_str(&m, name);
    fe(t, 'C', &m);
}

static void sync_(Tracker *t)
{
    fe(t, 'S', NULL);
}

static void complete(Tracker *t, const char *tag)
{
    Body m = {0};
    put_str(&m, tag);
    be(t, 'C', &m);
}

static void error(Tracker *t, const char *sqlstate)
{
    Body m = {0};
    m.b[m.n++] = 'S';
    put_str(&m, "ERROR");
    m.b[m.n++] = 'C';
    put_str(&m, sqlstate);
    m.b[m.n++] = 'M';
    put_str(&m, "boom");
    m.b[m.n++] = 0;
    be(t, 'E', &m);
}

static void ready(Tracker *t, char status)
{
    Body m = {0};
    m.b[m.n++] = (uint8_t)status;
    be(t, 'Z', &m);
}

static void data_row(Tracker *t)
{
    clock_us += 1;
    tracker_on_backend(t, 'D', NULL, 0, 20, clock_us);
}

static TrackerWorkspace *workspace;

static Tracker *new_tracker(Sink *sink, const TrackerLimits *limits)
{
    memset(sink, 0, sizeof *sink);
    if (!workspace)
        workspace = tracker_workspace_new(default_limits.max_sql_bytes);
    return tracker_new(7, limits ? limits : &default_limits, workspace, NULL, record, sink);
}

TEST(multi_statement_query_gives_one_event_per_statement)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    ready(t, 'I'); /* the unsolicited one after authentication */
    query(t, "select 1; select 2 from generate_series(1,2)");
    be(t, 'T', NULL);
    data_row(t);
    complete(t, "SELECT 1");
    be(t, 'T', NULL);
    data_row(t);
    data_row(t);
    complete(t, "SELECT 2");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_INT(s.events[0].ev.index, 0);
    CHECK_EQ_INT(s.events[0].ev.rows, 1);
    CHECK_EQ_INT(s.events[0].ev.bytes, 25);
    CHECK_EQ_INT(s.events[1].ev.index, 1);
    CHECK_EQ_INT(s.events[1].ev.rows, 2);
    CHECK_EQ_STR(s.events[1].ev.command, "SELECT");
    CHECK_EQ_STR(s.events[1].sql, "select 1; select 2 from generate_series(1,2)");
    CHECK_EQ_INT(s.events[0].ev.protocol, TRACKER_SIMPLE);
    CHECK_EQ_INT(s.events[1].ev.start_us, s.events[0].ev.end_us);
    CHECK_EQ_INT(s.events[0].ev.conn_id, 7);
    CHECK_EQ_INT(s.events[1].ev.seq, 2);
    tracker_free(t, clock_us);
    CHECK_EQ_INT(s.count, 2);
}

TEST(error_in_multi_statement_query_ends_it)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "begin; select x from nothere; commit");
    complete(t, "BEGIN");
    error(t, "42P01");
    ready(t, 'E');
    query(t, "rollback");
    complete(t, "ROLLBACK");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 3);
    CHECK_EQ_STR(s.events[0].ev.command, "BEGIN");
    CHECK_EQ_STR(s.events[1].ev.sqlstate, "42P01");
    CHECK_EQ_INT(s.events[1].ev.index, 1);
    CHECK_EQ_STR(s.events[1].ev.command, "");
    CHECK_EQ_STR(s.events[2].sql, "rollback");
    tracker_free(t, clock_us);
}

TEST(empty_query_gives_no_event)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "");
    be(t, 'I', NULL);
    ready(t, 'I');
    query(t, "select 1");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 1");
    tracker_free(t, clock_us);
}

TEST(pipelined_unnamed_statements_keep_their_own_sql)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    /* Both batches are sent before any reply: the second Parse replaces the unnamed
     * statement while the first Execute is still outstanding. */
    parse(t, "", "select a from t where id = $1");
    bind(t, "", "", "1");
    describe(t, 'P', "");
    execute(t, "", 0);
    sync_(t);
    parse(t, "", "select b from u where id = $1");
    bind(t, "", "", "2");
    describe(t, 'P', "");
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    be(t, 'T', NULL);
    data_row(t);
    complete(t, "SELECT 1");
    ready(t, 'I');
    be(t, '1', NULL);
    be(t, '2', NULL);
    be(t, 'T', NULL);
    data_row(t);
    data_row(t);
    complete(t, "SELECT 2");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].sql, "select a from t where id = $1");
    CHECK_EQ_INT(s.events[0].ev.rows, 1);
    CHECK_EQ_STR(s.events[1].sql, "select b from u where id = $1");
    CHECK_EQ_INT(s.events[1].ev.rows, 2);
    CHECK_EQ_INT(s.events[0].ev.protocol, TRACKER_EXTENDED);
    CHECK_EQ_STR(s.events[0].statement, "");
    CHECK(s.events[0].ev.bind_values_hash != s.events[1].ev.bind_values_hash);
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

TEST(same_bind_values_hash_equal)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    for (int i = 0; i < 2; i++) {
        parse(t, "", "select 1 where $1::int > 0");
        bind(t, "", "", "42");
        execute(t, "", 0);
        sync_(t);
        be(t, '1', NULL);
        be(t, '2', NULL);
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    CHECK_EQ_INT(s.count, 2);
    CHECK(s.events[0].ev.bind_values_hash == s.events[1].ev.bind_values_hash);
    tracker_free(t, clock_us);
}

TEST(error_at_parse_is_reported_on_its_execute_and_skips_to_sync)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "", "select x from nothere");
    bind(t, "", "", "1");
    execute(t, "", 0);
    sync_(t);
    parse(t, "", "select 2");
    bind(t, "", "", "1");
    execute(t, "", 0);
    sync_(t);
    error(t, "42P01"); /* at Parse: Bind and Execute are skipped until Sync */
    ready(t, 'I');
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].ev.sqlstate, "42P01");
    CHECK_EQ_STR(s.events[0].sql, "select x from nothere");
    CHECK_EQ_STR(s.events[1].ev.sqlstate, "");
    CHECK_EQ_STR(s.events[1].sql, "select 2");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

TEST(error_mid_pipeline_drops_only_until_its_sync)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    /* libpq pipeline mode: three queries, one Sync; the second fails at Execute. */
    const char *sqls[] = {"select 1", "select 1/0", "select 3"};
    for (int i = 0; i < 3; i++) {
        parse(t, "", sqls[i]);
        bind(t, "", "", "v");
        execute(t, "", 0);
    }
    sync_(t);
    parse(t, "", "select 4");
    bind(t, "", "", "v");
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    be(t, '1', NULL);
    be(t, '2', NULL);
    error(t, "22012");
    ready(t, 'I');
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 3);
    CHECK_EQ_STR(s.events[0].sql, "select 1");
    CHECK_EQ_STR(s.events[1].sql, "select 1/0");
    CHECK_EQ_STR(s.events[1].ev.sqlstate, "22012");
    CHECK_EQ_STR(s.events[2].sql, "select 4");
    tracker_free(t, clock_us);
}

TEST(row_limited_portal_run_is_one_statement)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "", "select g from generate_series(1,5) g");
    bind(t, "", "", "x");
    execute(t, "", 2);
    execute(t, "", 2);
    execute(t, "", 2);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    data_row(t);
    data_row(t);
    be(t, 's', NULL);
    data_row(t);
    data_row(t);
    be(t, 's', NULL);
    data_row(t);
    complete(t, "SELECT 1"); /* the tag counts only the last Execute's rows */
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_INT(s.events[0].ev.rows, 5);
    CHECK_EQ_INT(s.events[0].ev.rows_returned, 5);
    CHECK_EQ_INT(s.events[0].ev.executes, 3);
    CHECK_EQ_INT(s.events[0].ev.bytes, 5 * 25);
    tracker_free(t, clock_us);
}

TEST(copy_in_extended_ignores_the_sync_sent_before_copy_started)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    /* libpq: P B D E S, then after CopyInResponse: d d c S. The first Sync reaches the
     * server in copy-in mode and is ignored: only one ReadyForQuery comes back. */
    parse(t, "", "copy t from stdin");
    bind(t, "", "", "x");
    describe(t, 'P', "");
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    be(t, 'n', NULL);
    be(t, 'G', NULL);
    fe(t, 'd', NULL);
    fe(t, 'd', NULL);
    fe(t, 'c', NULL);
    sync_(t);
    complete(t, "COPY 2");
    ready(t, 'I');
    query(t, "select 1");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].ev.command, "COPY");
    CHECK_EQ_INT(s.events[0].ev.rows, 2);
    CHECK_EQ_STR(s.events[1].sql, "select 1");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

TEST(copy_failing_half_way_in_simple_query)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "copy t from stdin");
    be(t, 'G', NULL);
    fe(t, 'd', NULL);
    error(t, "22P02"); /* the server fails the COPY while the client still sends */
    fe(t, 'd', NULL);
    fe(t, 'c', NULL);
    ready(t, 'I');
    query(t, "select 1");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].ev.sqlstate, "22P02");
    CHECK_EQ_STR(s.events[1].sql, "select 1");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

/* A write's tag counts the rows it wrote; none of them reach the client. */
TEST(rows_written_are_not_rows_returned)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    ready(t, 'I');
    query(t, "insert into archive select * from orders; select 1");
    complete(t, "INSERT 0 2500");
    be(t, 'T', NULL);
    data_row(t);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_INT(s.events[0].ev.rows, 2500);
    CHECK_EQ_INT(s.events[0].ev.rows_returned, 0);
    CHECK_EQ_INT(s.events[0].ev.bytes, 0);
    CHECK_EQ_INT(s.events[1].ev.rows, 1);
    CHECK_EQ_INT(s.events[1].ev.rows_returned, 1);
    tracker_free(t, clock_us);
}

TEST(copy_out_counts_bytes_and_rows_from_tag)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "copy t to stdout");
    be(t, 'H', NULL);
    tracker_on_backend(t, 'd', NULL, 0, 7, ++clock_us);
    tracker_on_backend(t, 'd', NULL, 0, 7, ++clock_us);
    be(t, 'c', NULL);
    complete(t, "COPY 2");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_INT(s.events[0].ev.rows, 2);
    CHECK_EQ_INT(s.events[0].ev.rows_returned, 2); /* COPY TO STDOUT returns its rows */
    CHECK_EQ_INT(s.events[0].ev.bytes, 24);
    tracker_free(t, clock_us);
}

TEST(named_statements_live_until_close)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "s1", "select * from users where id = $1");
    sync_(t);
    be(t, '1', NULL);
    ready(t, 'I');
    for (int i = 0; i < 2; i++) {
        bind(t, "", "s1", i ? "2" : "1");
        execute(t, "", 0);
        sync_(t);
        be(t, '2', NULL);
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    close_target(t, 'S', "s1");
    sync_(t);
    be(t, '3', NULL);
    ready(t, 'I');
    bind(t, "", "s1", "3");
    execute(t, "", 0);
    sync_(t);
    error(t, "26000");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 3);
    CHECK_EQ_STR(s.events[0].sql, "select * from users where id = $1");
    CHECK_EQ_STR(s.events[1].statement, "s1");
    CHECK_EQ_STR(s.events[2].sql, "(null)"); /* closed: the SQL is no longer known */
    CHECK_EQ_STR(s.events[2].ev.sqlstate, "26000");
    tracker_free(t, clock_us);
}

TEST(deallocate_all_forgets_named_statements)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "s1", "select 1");
    sync_(t);
    be(t, '1', NULL);
    ready(t, 'I');
    query(t, "DEALLOCATE ALL");
    complete(t, "DEALLOCATE ALL");
    ready(t, 'I');
    parse(t, "s1", "select 2"); /* allowed again on the server, and now ours */
    bind(t, "", "s1", "x");
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[1].sql, "select 2");
    tracker_free(t, clock_us);
}

TEST(failed_named_parse_is_forgotten)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "s1", "selec 1");
    sync_(t);
    error(t, "42601");
    ready(t, 'I');
    parse(t, "s1", "select 1");
    bind(t, "", "s1", "x");
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 1");
    tracker_free(t, clock_us);
}

TEST(fifo_bound_suspends_tracking_then_resumes)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_outstanding = 4;
    Tracker *t = new_tracker(&s, &small);
    for (int i = 0; i < 6; i++)
        query(t, "select 1");
    for (int i = 0; i < 6; i++) {
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    CHECK(tracker_stats(t)->untracked > 0);
    int before = s.count;
    query(t, "select 2");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, before + 1);
    CHECK_EQ_STR(s.events[s.count - 1].sql, "select 2");
    tracker_free(t, clock_us);
}

TEST(unexpected_reply_desyncs_then_recovers)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "select 1");
    be(t, '1', NULL); /* a ParseComplete nobody asked for */
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 1);
    query(t, "select 2");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 2");
    tracker_free(t, clock_us);
}

TEST(connection_lost_mid_query_reports_aborted)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "select pg_sleep(10)");
    tracker_free(t, clock_us + 500);
    CHECK_EQ_INT(s.count, 1);
    CHECK(s.events[0].ev.aborted);
    CHECK_EQ_STR(s.events[0].ev.sqlstate, "08006");
}

TEST(standard_conforming_strings_followed_from_parameter_status)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    Body m = {0};
    put_str(&m, "standard_conforming_strings");
    put_str(&m, "off");
    be(t, 'S', &m);
    CHECK(tracker_scs_off(t));
    query(t, "select 1");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK(s.events[0].ev.scs_off);
    Body on = {0};
    put_str(&on, "standard_conforming_strings");
    put_str(&on, "on");
    be(t, 'S', &on);
    CHECK(!tracker_scs_off(t));
    tracker_free(t, clock_us);
}

TEST(long_sql_is_truncated_and_flagged)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_sql_bytes = 16;
    Tracker *t = new_tracker(&s, &small);
    query(t, "select 1234567890123456789");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK(s.events[0].ev.sql_truncated);
    CHECK_EQ_STR(s.events[0].sql, "select 123456789");
    CHECK(s.events[0].ev.incomplete);
    tracker_free(t, clock_us);
}

TEST(events_carry_per_statement_fingerprints_and_shared_tags)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "/*route='%2Fapi%2Forders'*/ select * from t where id = 5; "
             "update t set a = 'x' where id = 5");
    complete(t, "SELECT 0");
    complete(t, "UPDATE 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].normalized, "select * from t where id = $1");
    CHECK_EQ_STR(s.events[1].normalized, "update t set a = $1 where id = $2");
    CHECK(s.events[0].ev.fingerprint != s.events[1].ev.fingerprint);
    CHECK_EQ_STR(s.events[0].tags, "route=/api/orders");
    CHECK_EQ_STR(s.events[1].tags, "route=/api/orders"); /* R37: tags apply to all */
    CHECK(s.events[0].ev.normalized_known);
    tracker_free(t, clock_us);
}

TEST(literal_values_share_fingerprint_but_not_values_hash)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    const char *sqls[] = {"select * from t where id = 1", "select * from t where id = 2",
                          "select * from t where id = 1"};
    for (int i = 0; i < 3; i++) {
        query(t, sqls[i]);
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    CHECK_EQ_INT(s.count, 3);
    CHECK(s.events[0].ev.fingerprint == s.events[1].ev.fingerprint);
    CHECK(s.events[0].ev.values_hash != s.events[1].ev.values_hash);
    CHECK(s.events[0].ev.values_hash == s.events[2].ev.values_hash);
    tracker_free(t, clock_us);
}

TEST(bind_values_fold_into_values_hash)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    const char *values[] = {"1", "2", "1"};
    for (int i = 0; i < 3; i++) {
        parse(t, "", "select * from t where id = $1");
        bind(t, "", "", values[i]);
        execute(t, "", 0);
        sync_(t);
        be(t, '1', NULL);
        be(t, '2', NULL);
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    CHECK_EQ_INT(s.count, 3);
    CHECK_EQ_STR(s.events[0].normalized, "select * from t where id = $1");
    CHECK(s.events[0].ev.fingerprint == s.events[1].ev.fingerprint);
    CHECK(s.events[0].ev.values_hash != s.events[1].ev.values_hash);
    CHECK(s.events[0].ev.values_hash == s.events[2].ev.values_hash);
    tracker_free(t, clock_us);
}

TEST(application_name_followed_from_parameter_status)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    Body m = {0};
    put_str(&m, "application_name");
    put_str(&m, "orders#index");
    query(t, "set application_name = 'orders#index'");
    complete(t, "SET");
    be(t, 'S', &m); /* the server reports the change after CommandComplete (PG15) */
    ready(t, 'I');
    query(t, "select 1");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].app, ""); /* the SET itself ran under the old name */
    CHECK_EQ_STR(s.events[1].app, "orders#index");
    tracker_free(t, clock_us);
}

TEST(named_portal_beyond_the_table_bound_is_reported_as_unknown)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_portals = 1;
    Tracker *t = new_tracker(&s, &small);
    parse(t, "", "select 1");
    bind(t, "p1", "", "x");
    bind(t, "p2", "", "y"); /* no room: dropped */
    execute(t, "p1", 0);
    execute(t, "p2", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    complete(t, "SELECT 1");
    ready(t, 'T');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].sql, "select 1");
    CHECK_EQ_STR(s.events[1].sql, "(null)");
    tracker_free(t, clock_us);
}

/* ---- messages the server never answers; byte bounds --------------------------------------- */

/* An extended-protocol error with no Sync sent yet: the server skips every message until the
 * client's Sync. The tracker keeps nothing for them and counts them. */
TEST(messages_skipped_until_sync_keep_nothing_and_are_counted)
{
    Sink s;
    TrackerBudget budget = {0};
    memset(&s, 0, sizeof s);
    if (!workspace)
        workspace = tracker_workspace_new(default_limits.max_sql_bytes);
    Tracker *t = tracker_new(7, &default_limits, workspace, &budget, record, &s);
    parse(t, "", "selec 1");
    fe(t, 'H', NULL); /* Flush: the error comes back before any Sync */
    error(t, "42601");
    size_t bytes_after_error = tracker_stats(t)->bytes;
    char sql[64];
    for (int i = 0; i < 100; i++) {
        snprintf(sql, sizeof sql, "select %d from pg_class", i);
        query(t, sql);
        snprintf(sql, sizeof sql, "stmt%d", i);
        parse(t, sql, "select 1");
        bind(t, sql, sql, "1");
        execute(t, sql, 0);
    }
    close_target(t, 'S', "whatever");
    CHECK_EQ_INT(tracker_stats(t)->skipped, 401);
    CHECK_EQ_INT(budget.skipped, 401);
    CHECK_EQ_INT(tracker_stats(t)->bytes, bytes_after_error);
    CHECK_EQ_INT(tracker_stats(t)->bytes, 0);
    CHECK(tracker_is_idle(t));
    sync_(t);
    ready(t, 'I');
    /* The skipped Parse made no statement: a Bind naming it knows no SQL. */
    bind(t, "", "stmt1", "1");
    execute(t, "", 0);
    sync_(t);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    query(t, "select 'after'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].sql, "(null)");
    CHECK_EQ_STR(s.events[1].sql, "select 'after'");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    CHECK_EQ_INT(tracker_stats(t)->untracked, 0);
    tracker_free(t, clock_us);
    CHECK_EQ_INT(budget.used, 0);
}

/* Messages already sent when the error arrives are skipped too: dropped up to their Sync. */
TEST(messages_pipelined_before_the_error_are_dropped_up_to_their_sync)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "", "selec 1");
    query(t, "select 'decoy 1'");
    query(t, "select 'decoy 2'");
    sync_(t);
    query(t, "select 'real'");
    error(t, "42601");
    ready(t, 'I');
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'real'");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

/* Decoy Queries the server skipped must never be matched to the replies of later ones. */
TEST(skipped_decoys_are_never_matched_to_later_replies)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "", "selec 1");
    fe(t, 'H', NULL);
    error(t, "42601");
    query(t, "SELECT 'decoy 1'");
    query(t, "SELECT 'decoy 2'");
    sync_(t);
    ready(t, 'I');
    query(t, "SELECT rolname, rolpassword FROM pg_authid");
    be(t, 'T', NULL);
    data_row(t);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "SELECT rolname, rolpassword FROM pg_authid");
    CHECK_EQ_INT(s.events[0].ev.rows, 1);
    tracker_free(t, clock_us);
}

/* A desync found at ReadyForQuery: that ReadyForQuery answers the Sync outstanding, so
 * tracking resumes at once and the connection looks idle. */
TEST(desync_at_ready_for_query_resumes_tracking)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    parse(t, "", "select 1");
    bind(t, "", "", "1");
    execute(t, "", 0);
    sync_(t);
    ready(t, 'I'); /* replies to Parse, Bind, Execute never came: the FIFO is lost */
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 1);
    CHECK(tracker_is_idle(t));
    query(t, "select 'tracked again'");
    CHECK(!tracker_is_idle(t));
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'tracked again'");
    tracker_free(t, clock_us);
}

/* With two sync points outstanding the desync waits for the second one only. */
TEST(desync_at_ready_for_query_waits_for_later_syncs)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    execute(t, "", 0);
    sync_(t);
    query(t, "select 'in flight'");
    ready(t, 'I');
    CHECK(!tracker_is_idle(t));
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    query(t, "select 'next'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'next'");
    tracker_free(t, clock_us);
}

/* Over the FIFO's byte bound a request is queued without its text: not reported, but every
 * reply still finds its request, so what follows is tracked exactly. */
TEST(fifo_byte_bound_leaves_text_out_and_keeps_matching)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_outstanding_bytes = 100;
    Tracker *t = new_tracker(&s, &small);
    query(t, "select '0123456789012345678901234567890123456789'"); /* 49 bytes */
    query(t, "select '1123456789012345678901234567890123456789'");
    CHECK_EQ_INT(tracker_stats(t)->untracked, 0);
    query(t, "select '2123456789012345678901234567890123456789'"); /* over 100 */
    CHECK_EQ_INT(tracker_stats(t)->untracked, 1);
    CHECK(tracker_stats(t)->bytes <= 100);
    parse(t, "named", "select '3123456789012345678901234567890123456789'"); /* over too */
    bind(t, "", "named", "1");
    execute(t, "", 0);
    sync_(t);
    CHECK_EQ_INT(tracker_stats(t)->untracked, 2);
    for (int i = 0; i < 3; i++) {
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    query(t, "select 'small'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 4);
    CHECK_EQ_STR(s.events[0].sql, "select '0123456789012345678901234567890123456789'");
    CHECK_EQ_STR(s.events[1].sql, "select '1123456789012345678901234567890123456789'");
    CHECK_EQ_STR(s.events[2].sql, "(null)"); /* the statement's text was not kept */
    CHECK_EQ_STR(s.events[3].sql, "select 'small'");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    CHECK_EQ_INT(tracker_stats(t)->bytes, 0);
    tracker_free(t, clock_us);
}

TEST(statement_and_portal_byte_bounds_drop_what_does_not_fit)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_statement_bytes = 300;
    small.max_portal_bytes = 300;
    Tracker *t = new_tracker(&s, &small);
    char name[64];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "statement_number_%d", i);
        parse(t, name, "select 'a statement text of some length'");
        bind(t, name, name, "1");
    }
    sync_(t);
    CHECK(tracker_stats(t)->statements_dropped > 0);
    CHECK(tracker_stats(t)->statements_dropped < 10);
    CHECK(tracker_stats(t)->portals_dropped > 0);
    CHECK(tracker_stats(t)->portals_dropped < 10);
    /* A remembered one still works. */
    for (int i = 0; i < 10; i++) {
        be(t, '1', NULL);
        be(t, '2', NULL);
    }
    ready(t, 'I');
    bind(t, "", "statement_number_0", "1");
    execute(t, "", 0);
    sync_(t);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'a statement text of some length'");
    tracker_free(t, clock_us);
}

/* The shared budget bounds what all trackers keep together; every byte comes back. */
TEST(shared_budget_bounds_all_trackers_together)
{
    Sink s1, s2;
    TrackerBudget budget = {.limit = 2000};
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    if (!workspace)
        workspace = tracker_workspace_new(default_limits.max_sql_bytes);
    Tracker *a = tracker_new(1, &default_limits, workspace, &budget, record, &s1);
    Tracker *b = tracker_new(2, &default_limits, workspace, &budget, record, &s2);
    char name[64];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "a_statement_%d", i);
        parse(a, name, "select 'some statement text, long enough to count for something'");
    }
    CHECK(budget.used <= budget.limit);
    CHECK(budget.hits > 0);
    CHECK_EQ_INT(budget.used, tracker_stats(a)->bytes);
    uint64_t hits = budget.hits;
    parse(b, "b_statement", "select 'another text that will not fit in what is left'");
    CHECK(budget.hits > hits);
    CHECK_EQ_INT(tracker_stats(b)->untracked, 1);
    CHECK_EQ_INT(tracker_stats(b)->bytes, 0);
    tracker_free(a, clock_us);
    CHECK_EQ_INT(budget.used, 0);
    parse(b, "b_statement2", "select 'now it fits'");
    CHECK_EQ_INT(tracker_stats(b)->untracked, 1);
    CHECK_EQ_INT(tracker_stats(b)->statements_dropped, 0);
    CHECK(tracker_stats(b)->bytes > 0);
    CHECK_EQ_INT(budget.used, tracker_stats(b)->bytes);
    tracker_free(b, clock_us);
    CHECK_EQ_INT(budget.used, 0);
}

/* ---- before authentication ------------------------------------------------------------------ */

static void auth_ok(Tracker *t)
{
    Body m = {0};
    put32(&m, 0);
    be(t, 'R', &m);
}

TEST(nothing_sent_before_authentication_is_kept_or_reported)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    tracker_await_authentication(t);
    query(t, "SELECT 1+-+-+-+-+-+-+-+-1");
    parse(t, "early", "select 2");
    CHECK_EQ_INT(tracker_stats(t)->before_auth, 2);
    /* Only their kinds, a byte each in a ring of 64: no SQL, no statement name. */
    CHECK(tracker_stats(t)->bytes <= 64);
    error(t, "28P01"); /* the server refuses the login and closes */
    tracker_free(t, clock_us);
    CHECK_EQ_INT(s.count, 0);
}

TEST(requests_sent_before_authentication_are_waited_out)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    tracker_await_authentication(t);
    query(t, "select 'early'");
    auth_ok(t);
    ready(t, 'I'); /* startup done; the early Query is answered next */
    CHECK(!tracker_is_idle(t));
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    query(t, "select 'late'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'late'");
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 0);
    tracker_free(t, clock_us);
}

/* ---- bounded normalization ------------------------------------------------------------------- */

TEST(normalization_works_on_a_bounded_prefix)
{
    Sink s;
    memset(&s, 0, sizeof s);
    TrackerLimits big = default_limits;
    big.max_sql_bytes = 4 * TRACKER_NORMALIZE_MAX;
    TrackerWorkspace *ws = tracker_workspace_new(big.max_sql_bytes);
    Tracker *t = tracker_new(7, &big, ws, NULL, record, &s);
    size_t len = 3 * TRACKER_NORMALIZE_MAX;
    char *sql = malloc(len + 1);
    memcpy(sql, "select 1", 8);
    for (size_t i = 8; i < len; i += 2)
        memcpy(sql + i, "+1", 2);
    sql[len] = 0;
    clock_us += 10;
    tracker_on_frontend(t, 'Q', (const uint8_t *)sql, len + 1, len + 1, clock_us);
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_INT(s.events[0].ev.sql_len, len); /* kept whole (max_sql_bytes allows it) */
    CHECK(!s.events[0].ev.sql_truncated);
    CHECK(s.events[0].ev.normalized_known);
    CHECK(s.events[0].ev.incomplete); /* but normalized on a prefix only */
    CHECK(s.events[0].ev.normalized_len <= sqlnorm_output_bound(TRACKER_NORMALIZE_MAX));
    tracker_free(t, clock_us);
    tracker_workspace_free(ws);
    free(sql);
}

/* ---- suspended tracking and the server's skip until Sync ---------------------------------- */

/* Tracking is suspended (a desync) when the client pipelines a failing Parse, a Query and a
 * Sync: the server skips the Query, so only the Sync is answered. Tracking must resume at
 * that ReadyForQuery, not wait for an answer to the skipped Query that never comes. */
TEST(suspended_tracking_resumes_after_the_server_skips_until_sync)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "select 1");
    be(t, '1', NULL); /* a ParseComplete nobody asked for: suspended */
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 1);
    parse(t, "", "selec 1");
    query(t, "select 'skipped by the server'");
    sync_(t);
    complete(t, "SELECT 1");
    ready(t, 'I');     /* answers "select 1" */
    error(t, "42601"); /* at Parse: the Query is skipped until the Sync */
    ready(t, 'I');     /* answers the Sync */
    CHECK(tracker_is_idle(t));
    query(t, "select 'tracked again'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[s.count > 0 ? s.count - 1 : 0].sql, "select 'tracked again'");
    tracker_free(t, clock_us);
}

/* The same with the error arriving before the client's Sync: what it sends meanwhile is
 * skipped, Queries included, and nothing of it is awaited. */
TEST(suspended_tracking_follows_a_skip_begun_before_the_sync_was_sent)
{
    Sink s;
    TrackerLimits small = default_limits;
    small.max_outstanding = 2;
    Tracker *t = new_tracker(&s, &small);
    query(t, "select 1");
    query(t, "select 2");
    query(t, "select 3"); /* beyond the FIFO's bound: suspended */
    CHECK(tracker_stats(t)->untracked > 0);
    parse(t, "", "selec 1");
    fe(t, 'H', NULL);
    for (int i = 0; i < 3; i++) {
        complete(t, "SELECT 1");
        ready(t, 'I');
    }
    error(t, "42601");
    query(t, "select 'skipped 1'");
    query(t, "select 'skipped 2'");
    sync_(t);
    CHECK_EQ_INT(tracker_stats(t)->skipped, 2);
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    query(t, "select 'tracked again'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'tracked again'");
    tracker_free(t, clock_us);
}

/* Requests pipelined before authentication completed are waited out by kind too: a failing
 * Parse among them makes the server skip the Query behind it. */
TEST(requests_sent_before_authentication_follow_the_skip_until_sync)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    tracker_await_authentication(t);
    parse(t, "", "selec 1");
    query(t, "select 'skipped by the server'");
    sync_(t);
    auth_ok(t);
    ready(t, 'I'); /* startup done */
    error(t, "42601");
    ready(t, 'I'); /* answers the Sync */
    CHECK(tracker_is_idle(t));
    query(t, "select 'late'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[0].sql, "select 'late'");
    tracker_free(t, clock_us);
}

/* Requests the client sent after its last Sync while suspended are still answered after
 * tracking resumes: they are matched (never reported), so no new desync follows. */
TEST(requests_outstanding_when_tracking_resumes_still_match_their_replies)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "select 1");
    be(t, '1', NULL); /* suspended */
    parse(t, "", "select 'sent while suspended'");
    bind(t, "", "", "1");
    complete(t, "SELECT 1");
    ready(t, 'I'); /* resumes; the Parse and Bind are still outstanding */
    execute(t, "", 0);
    sync_(t);
    be(t, '1', NULL);
    be(t, '2', NULL);
    complete(t, "SELECT 1");
    ready(t, 'I');
    query(t, "select 'next'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(tracker_stats(t)->desyncs, 1);
    /* The Execute was sent after tracking resumed: it is reported, with its statement. */
    CHECK_EQ_INT(s.count, 2);
    CHECK_EQ_STR(s.events[0].sql, "select 'sent while suspended'");
    CHECK_EQ_STR(s.events[1].sql, "select 'next'");
    tracker_free(t, clock_us);
}

/* While suspended, a Sync sent before an extended COPY FROM STDIN started is ignored by the
 * server (no ReadyForQuery for it): tracking resumes at the Sync sent after the COPY. */
TEST(suspended_tracking_follows_the_sync_the_server_ignores_during_copy)
{
    Sink s;
    Tracker *t = new_tracker(&s, NULL);
    query(t, "select 1");
    be(t, '1', NULL); /* suspended */
    parse(t, "", "copy t from stdin");
    bind(t, "", "", "1");
    execute(t, "", 0);
    sync_(t);
    complete(t, "SELECT 1");
    ready(t, 'I');
    be(t, '1', NULL);
    be(t, '2', NULL);
    be(t, 'G', NULL); /* CopyInResponse: the Sync already sent is ignored */
    fe(t, 'd', NULL);
    fe(t, 'c', NULL);
    sync_(t);
    complete(t, "COPY 1");
    ready(t, 'I');
    CHECK(tracker_is_idle(t));
    query(t, "select 'after copy'");
    complete(t, "SELECT 1");
    ready(t, 'I');
    CHECK_EQ_INT(s.count, 1);
    CHECK_EQ_STR(s.events[s.count > 0 ? s.count - 1 : 0].sql, "select 'after copy'");
    tracker_free(t, clock_us);
}

/* ---- hash flooding of the name tables ------------------------------------------------------ */

/* Names whose unseeded XXH3 has its low 8 bits zero: one bucket of a table of 256 (or fewer)
 * buckets, as an attacker would pick them offline. */
static void colliding_names(char (*names)[16], size_t n)
{
    char name[16];
    size_t found = 0;
    for (unsigned long i = 0; found < n; i++) {
        int len = snprintf(name, sizeof name, "s%lx", i);
        if ((XXH3_64bits(name, (size_t)len) & 255) == 0)
            memcpy(names[found++], name, (size_t)len + 1);
    }
}

#define FLOOD_NAMES 600

TEST(statement_and_portal_names_colliding_unseeded_spread_under_the_random_seed)
{
    static char names[FLOOD_NAMES][16];
    colliding_names(names, FLOOD_NAMES);
    TrackerLimits big = default_limits;
    big.max_statements = FLOOD_NAMES;
    big.max_portals = FLOOD_NAMES;
    for (int seeded = 0; seeded < 2; seeded++) {
        TrackerWorkspace *ws = tracker_workspace_new(big.max_sql_bytes);
        if (!seeded)
            tracker_workspace_set_hash_seed(ws, 0); /* as the tables were: XXH3 unseeded */
        Sink s;
        memset(&s, 0, sizeof s);
        Tracker *t = tracker_new(7, &big, ws, NULL, record, &s);
        for (size_t i = 0; i < FLOOD_NAMES; i++) {
            parse(t, names[i], "select $1");
            be(t, '1', NULL);
            bind(t, names[i], names[i], "1");
            be(t, '2', NULL);
        }
        size_t chain = tracker_max_name_chain(t);
        printf("  %s seed: longest chain %zu for %d names in each table\n",
               seeded ? "random" : "zero", chain, FLOOD_NAMES);
        if (seeded)
            CHECK(chain <= 16); /* 600 names in 256 buckets: 6 to 9 as a rule */
        else
            CHECK_EQ_INT(chain, FLOOD_NAMES); /* the names do collide unseeded */
        CHECK_EQ_INT(tracker_stats(t)->statements_dropped, 0);
        CHECK_EQ_INT(tracker_stats(t)->portals_dropped, 0);
        tracker_free(t, clock_us);
        tracker_workspace_free(ws);
    }
}

int main(void)
{
    RUN(multi_statement_query_gives_one_event_per_statement);
    RUN(error_in_multi_statement_query_ends_it);
    RUN(empty_query_gives_no_event);
    RUN(pipelined_unnamed_statements_keep_their_own_sql);
    RUN(same_bind_values_hash_equal);
    RUN(error_at_parse_is_reported_on_its_execute_and_skips_to_sync);
    RUN(error_mid_pipeline_drops_only_until_its_sync);
    RUN(row_limited_portal_run_is_one_statement);
    RUN(copy_in_extended_ignores_the_sync_sent_before_copy_started);
    RUN(copy_failing_half_way_in_simple_query);
    RUN(rows_written_are_not_rows_returned);
    RUN(copy_out_counts_bytes_and_rows_from_tag);
    RUN(named_statements_live_until_close);
    RUN(deallocate_all_forgets_named_statements);
    RUN(failed_named_parse_is_forgotten);
    RUN(fifo_bound_suspends_tracking_then_resumes);
    RUN(unexpected_reply_desyncs_then_recovers);
    RUN(connection_lost_mid_query_reports_aborted);
    RUN(standard_conforming_strings_followed_from_parameter_status);
    RUN(long_sql_is_truncated_and_flagged);
    RUN(events_carry_per_statement_fingerprints_and_shared_tags);
    RUN(literal_values_share_fingerprint_but_not_values_hash);
    RUN(bind_values_fold_into_values_hash);
    RUN(application_name_followed_from_parameter_status);
    RUN(named_portal_beyond_the_table_bound_is_reported_as_unknown);
    RUN(messages_skipped_until_sync_keep_nothing_and_are_counted);
    RUN(messages_pipelined_before_the_error_are_dropped_up_to_their_sync);
    RUN(skipped_decoys_are_never_matched_to_later_replies);
    RUN(desync_at_ready_for_query_resumes_tracking);
    RUN(desync_at_ready_for_query_waits_for_later_syncs);
    RUN(fifo_byte_bound_leaves_text_out_and_keeps_matching);
    RUN(statement_and_portal_byte_bounds_drop_what_does_not_fit);
    RUN(shared_budget_bounds_all_trackers_together);
    RUN(nothing_sent_before_authentication_is_kept_or_reported);
    RUN(requests_sent_before_authentication_are_waited_out);
    RUN(normalization_works_on_a_bounded_prefix);
    RUN(suspended_tracking_resumes_after_the_server_skips_until_sync);
    RUN(suspended_tracking_follows_a_skip_begun_before_the_sync_was_sent);
    RUN(requests_sent_before_authentication_follow_the_skip_until_sync);
    RUN(requests_outstanding_when_tracking_resumes_still_match_their_replies);
    RUN(suspended_tracking_follows_the_sync_the_server_ignores_during_copy);
    RUN(statement_and_portal_names_colliding_unseeded_spread_under_the_random_seed);
    return TESTLIB_FINISH();
}
