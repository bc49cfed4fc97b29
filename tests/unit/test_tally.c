/* tests/unit/test_tally — request grouping and findings on synthetic statement streams. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/tally.h"
#include "tally_collide.h"
#include "testlib.h"

#define MAX_RECORDS 64

typedef struct Out {
    RequestRecord *requests[MAX_RECORDS];
    int n_requests;
    uint64_t fingerprints[MAX_RECORDS];
    int n_fingerprints;
} Out;

static void on_request(void *ctx, RequestRecord *r)
{
    Out *o = ctx;
    if (o->n_requests < MAX_RECORDS)
        o->requests[o->n_requests++] = r;
    else
        request_record_free(r);
}

static void on_fingerprint(void *ctx, FingerprintRecord *r)
{
    Out *o = ctx;
    if (o->n_fingerprints < MAX_RECORDS)
        o->fingerprints[o->n_fingerprints++] = r->fingerprint;
    fingerprint_record_free(r);
}

static void out_free(Out *o)
{
    for (int i = 0; i < o->n_requests; i++)
        request_record_free(o->requests[i]);
    memset(o, 0, sizeof *o);
}

static int64_t now = 1000000;

/* A statement builder: tags as "k=v,k=v" (no commas in values), normalized text, values. */
typedef struct Stmt {
    uint64_t conn;
    const char *normalized;
    uint64_t fingerprint;
    uint64_t values;
    const char *tags;
    const char *app;
    const char *command;
    const char *sqlstate;
    uint64_t rows;
    bool written; /* rows affected by a write: none returned to the client */
    uint64_t bytes;
    int64_t duration;
} Stmt;

static void feed(Tally *t, Stmt s)
{
    SqlTag tags[8];
    char storage[512];
    size_t n_tags = 0, used = 0;
    if (s.tags) {
        const char *p = s.tags;
        while (*p && n_tags < 8) {
            const char *eq = strchr(p, '=');
            const char *end = strchr(p, ',');
            if (!end)
                end = p + strlen(p);
            size_t klen = (size_t)(eq - p), vlen = (size_t)(end - eq - 1);
            memcpy(storage + used, p, klen);
            tags[n_tags].key = storage + used;
            tags[n_tags].key_len = klen;
            used += klen;
            memcpy(storage + used, eq + 1, vlen);
            tags[n_tags].value = storage + used;
            tags[n_tags].value_len = vlen;
            used += vlen;
            n_tags++;
            p = *end ? end + 1 : end;
        }
    }
    TallyStatement st = {0};
    st.conn_id = s.conn;
    st.normalized = s.normalized ? s.normalized : "select $1";
    st.normalized_len = strlen(st.normalized);
    st.fingerprint = s.fingerprint ? s.fingerprint : 0xf1;
    st.values_hash = s.values;
    st.tags = tags;
    st.n_tags = n_tags;
    st.application_name = s.app ? s.app : "";
    st.application_name_len = strlen(st.application_name);
    st.command = s.command ? s.command : "SELECT";
    st.sqlstate = s.sqlstate ? s.sqlstate : "";
    st.rows = s.written ? 0 : s.rows; /* what the recorder passes: rows returned */
    st.bytes = s.bytes;
    now += 100;
    st.start_us = now;
    now += s.duration ? s.duration : 50;
    st.end_us = now;
    tally_statement(t, &st);
}

/* The driver's own untagged BEGIN and COMMIT on connection `conn`. */
static void feed_begin(Tally *t, uint64_t conn)
{
    feed(t, (Stmt){.conn = conn, .normalized = "begin", .command = "BEGIN", .fingerprint = 0x10});
}

static void feed_commit(Tally *t, uint64_t conn)
{
    feed(t, (Stmt){.conn = conn, .normalized = "commit", .command = "COMMIT", .fingerprint = 0x12});
}

/* The defaults, but overfetch at 100 rows for a statement and 150 for a request. */
static TallyOptions low_overfetch_options(void)
{
    TallyOptions opts;
    tally_options_default(&opts);
    opts.overfetch_rows = 100;
    opts.request_overfetch_rows = 150;
    return opts;
}

static Tally *new_tally(Out *out, TallyOptions *opts)
{
    TallyOptions defaults;
    if (!opts) {
        tally_options_default(&defaults);
        opts = &defaults;
    }
    memset(out, 0, sizeof *out);
    return tally_new(opts, on_request, on_fingerprint, out);
}

static RequestRecord *find_request(Out *o, const char *key)
{
    for (int i = 0; i < o->n_requests; i++)
        if (strcmp(o->requests[i]->key, key) == 0)
            return o->requests[i];
    return NULL;
}

static const RecordFinding *find_finding(const RequestRecord *r, FindingKind kind,
                                         uint64_t fingerprint)
{
    for (size_t i = 0; i < r->n_findings; i++)
        if (r->findings[i].kind == kind && r->findings[i].fingerprint == fingerprint)
            return &r->findings[i];
    return NULL;
}

TEST(n_plus_one_and_duplicates_in_one_tagged_request)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    const char *tag = "request_id=r1,route=/api/orders";
    feed(t, (Stmt){.conn = 1,
                   .tags = tag,
                   .fingerprint = 0xa,
                   .values = 1,
                   .rows = 10,
                   .normalized = "select * from orders"});
    for (uint64_t i = 0; i < 10; i++)
        feed(t, (Stmt){.conn = 1,
                       .tags = tag,
                       .fingerprint = 0xb,
                       .values = 100 + i,
                       .rows = 1,
                       .normalized = "select * from customers where id = $1"});
    for (int i = 0; i < 3; i++)
        feed(t, (Stmt){.conn = 1,
                       .tags = tag,
                       .fingerprint = 0xc,
                       .values = 7,
                       .normalized = "select * from settings where k = $1"});
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 1);
    RequestRecord *r = o.requests[0];
    CHECK_EQ_STR(r->key, "request_id:r1");
    CHECK_EQ_STR(r->route, "/api/orders");
    CHECK_EQ_INT(r->statements, 14);
    CHECK_EQ_INT(r->distinct_fingerprints, 3);
    CHECK_EQ_INT(r->duplicates, 2); /* 14 executions, 12 distinct (F, V) pairs */
    CHECK_EQ_INT(r->rows, 20);
    CHECK_EQ_INT(r->n_timeline, 14);
    const RecordFinding *np1 = find_finding(r, FINDING_N_PLUS_ONE, 0xb);
    CHECK(np1 != NULL);
    if (np1) {
        CHECK_EQ_INT(np1->count, 10);
        CHECK_EQ_INT(np1->distinct_values, 10);
        CHECK(!np1->is_write);
    }
    CHECK(find_finding(r, FINDING_N_PLUS_ONE, 0xc) == NULL); /* one value set: not N+1 */
    const RecordFinding *dup = find_finding(r, FINDING_DUPLICATE, 0xc);
    CHECK(dup != NULL);
    if (dup)
        CHECK_EQ_INT(dup->count, 2);
    CHECK(find_finding(r, FINDING_DUPLICATE, 0xb) == NULL);
    CHECK(strstr(r->tags_json, "\"route\":\"/api/orders\"") != NULL);
    CHECK_EQ_INT(o.n_fingerprints, 3); /* each text sent once */
    out_free(&o);
    tally_free(t);
}

TEST(interleaved_requests_on_several_connections_stay_apart)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    for (int i = 0; i < 6; i++) {
        feed(t,
             (Stmt){.conn = 1, .tags = "request_id=a", .fingerprint = 0x1, .values = (uint64_t)i});
        feed(t, (Stmt){.conn = 2, .tags = "request_id=b", .fingerprint = 0x2, .values = 1});
        /* request c is spread over both connections */
        feed(t, (Stmt){.conn = (uint64_t)(1 + i % 2),
                       .tags = "request_id=c",
                       .fingerprint = 0x3,
                       .values = (uint64_t)i});
    }
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 3);
    RequestRecord *a = find_request(&o, "request_id:a");
    RequestRecord *b = find_request(&o, "request_id:b");
    RequestRecord *c = find_request(&o, "request_id:c");
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK_EQ_INT(a->statements, 6);
        CHECK_EQ_INT(a->duplicates, 0);
        CHECK(find_finding(a, FINDING_N_PLUS_ONE, 0x1) != NULL);
        CHECK_EQ_INT(b->statements, 6);
        CHECK_EQ_INT(b->duplicates, 5);
        CHECK(find_finding(b, FINDING_N_PLUS_ONE, 0x2) == NULL);
        CHECK_EQ_INT(c->statements, 6);
    }
    out_free(&o);
    tally_free(t);
}

TEST(untagged_transaction_statements_join_the_tagged_request)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    feed_begin(t, 1);
    feed(t, (Stmt){.conn = 1, .tags = "request_id=x", .fingerprint = 0x11, .values = 1});
    feed_commit(t, 1);
    feed(t, (Stmt){.conn = 1, .tags = "request_id=x", .fingerprint = 0x11, .values = 2});
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 1);
    RequestRecord *x = find_request(&o, "request_id:x");
    CHECK(x != NULL);
    if (x) {
        CHECK_EQ_INT(x->statements, 4); /* the driver's BEGIN and COMMIT belong to it */
        CHECK_EQ_INT(x->transactions, 1);
        CHECK_EQ_INT(x->timeline[0].fingerprint, 0x10);
    }
    out_free(&o);
    tally_free(t);
}

TEST(driver_begin_joins_the_next_request_not_the_previous_one)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    const char *ids[] = {"request_id=a", "request_id=b"};
    for (int i = 0; i < 2; i++) {
        feed_begin(t, 1);
        feed(t, (Stmt){.conn = 1, .tags = ids[i], .fingerprint = 0x11, .values = 1});
        feed_commit(t, 1);
    }
    tally_connection_closed(t, 1);
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 2);
    for (int i = 0; i < o.n_requests; i++) {
        RequestRecord *r = o.requests[i];
        CHECK_EQ_INT(r->statements, 3);
        CHECK_EQ_INT(r->transactions, 1);
        CHECK_EQ_INT(r->n_timeline, 3);
        if (r->n_timeline == 3) {
            CHECK_EQ_INT(r->timeline[0].fingerprint, 0x10);
            CHECK_EQ_INT(r->timeline[2].fingerprint, 0x12);
        }
    }
    out_free(&o);
    tally_free(t);
}

TEST(untagged_statements_do_not_break_a_route_labelled_run)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    /* route tags only (no request_id): the driver's BEGIN/COMMIT carry no label */
    for (int i = 0; i < 2; i++) {
        const char *route = i ? "route=/b" : "route=/a";
        feed_begin(t, 1);
        feed(t, (Stmt){.conn = 1, .tags = route, .fingerprint = 0x11});
        feed(t, (Stmt){.conn = 1, .tags = route, .fingerprint = 0x13});
        feed_commit(t, 1);
    }
    tally_connection_closed(t, 1);
    CHECK_EQ_INT(o.n_requests, 2);
    for (int i = 0; i < o.n_requests; i++)
        CHECK_EQ_INT(o.requests[i]->statements, 4);
    if (o.n_requests == 2) {
        CHECK_EQ_STR(o.requests[0]->route, "/a");
        CHECK_EQ_STR(o.requests[1]->route, "/b");
    }
    out_free(&o);
    tally_free(t);
}

TEST(lone_begin_before_close_is_still_counted)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    feed_begin(t, 4);
    tally_connection_closed(t, 4);
    CHECK_EQ_INT(o.n_requests, 1);
    CHECK_EQ_INT(o.requests[0]->statements, 1);
    out_free(&o);
    tally_free(t);
}

TEST(traceparent_trace_id_is_the_key)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    const char *tp = "traceparent=00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01";
    feed(t, (Stmt){.conn = 1, .tags = tp});
    feed(t, (Stmt){.conn = 2, .tags = tp});
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 1);
    CHECK_EQ_STR(o.requests[0]->key, "trace:5bd66ef5095369c7b0d1f8f4bd33716a");
    CHECK_EQ_INT(o.requests[0]->statements, 2);
    out_free(&o);
    tally_free(t);
}

TEST(application_name_runs_split_on_label_change_and_keep_setup_statements)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    const char *set = "set application_name = $1";
    feed(t, (Stmt){.conn = 1, .normalized = set, .command = "SET", .fingerprint = 0x50});
    for (int i = 0; i < 3; i++)
        feed(t,
             (Stmt){.conn = 1, .app = "orders#index", .fingerprint = 0x51, .values = (uint64_t)i});
    feed(t, (Stmt){.conn = 1,
                   .normalized = set,
                   .command = "SET",
                   .fingerprint = 0x50,
                   .app = "orders#index"});
    for (int i = 0; i < 2; i++)
        feed(t, (Stmt){.conn = 1, .app = "orders#show", .fingerprint = 0x52});
    tally_connection_closed(t, 1);
    CHECK_EQ_INT(o.n_requests, 2);
    RequestRecord *first = o.requests[0], *second = o.requests[1];
    CHECK_EQ_STR(first->route, "orders#index");
    CHECK_EQ_INT(first->statements, 3);
    CHECK_EQ_INT(first->setup_statements, 1);
    CHECK_EQ_INT(first->n_timeline, 4);
    CHECK(first->timeline[0].setup);
    CHECK_EQ_STR(first->end_reason, "label_change");
    CHECK_EQ_STR(second->route, "orders#show");
    CHECK_EQ_INT(second->statements, 2);
    CHECK_EQ_INT(second->setup_statements, 1);
    CHECK_EQ_STR(second->end_reason, "conn_close");
    CHECK_EQ_INT(tally_stats(t)->app_statements, 5);
    CHECK_EQ_INT(tally_stats(t)->statements, 7);
    out_free(&o);
    tally_free(t);
}

TEST(untagged_connection_run_ends_at_close_and_at_idle_gap)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    feed(t, (Stmt){.conn = 3});
    feed(t, (Stmt){.conn = 3});
    tally_tick(t, now + 10); /* not idle yet */
    CHECK_EQ_INT(o.n_requests, 0);
    tally_tick(t, now + 2000000);
    CHECK_EQ_INT(o.n_requests, 1);
    CHECK_EQ_STR(o.requests[0]->end_reason, "idle");
    CHECK_EQ_STR(o.requests[0]->key, "conn:3#1");
    now += 2000000;
    feed(t, (Stmt){.conn = 3});
    tally_connection_closed(t, 3);
    CHECK_EQ_INT(o.n_requests, 2);
    CHECK_EQ_STR(o.requests[1]->key, "conn:3#2");
    CHECK_EQ_STR(o.requests[1]->end_reason, "conn_close");
    out_free(&o);
    tally_free(t);
}

TEST(pipelined_statements_keep_their_order_in_the_timeline)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    for (uint64_t i = 0; i < 5; i++)
        feed(t, (Stmt){.conn = 9, .tags = "request_id=p", .fingerprint = 0x60 + i, .duration = 5});
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 1);
    RequestRecord *r = o.requests[0];
    CHECK_EQ_INT(r->n_timeline, 5);
    for (size_t i = 0; i + 1 < r->n_timeline; i++) {
        CHECK(r->timeline[i].start_us < r->timeline[i + 1].start_us);
        CHECK_EQ_INT(r->timeline[i].fingerprint, 0x60 + i);
    }
    CHECK_EQ_INT(r->db_time_us, 25);
    out_free(&o);
    tally_free(t);
}

TEST(repeated_writes_are_flagged_as_writes)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    for (uint64_t i = 0; i < 6; i++)
        feed(t, (Stmt){.conn = 1,
                       .tags = "request_id=w",
                       .fingerprint = 0x70,
                       .values = i,
                       .command = "UPDATE",
                       .normalized = "update t set a = $1 where id = $2"});
    tally_finish_all(t);
    const RecordFinding *f = find_finding(o.requests[0], FINDING_N_PLUS_ONE, 0x70);
    CHECK(f != NULL);
    if (f)
        CHECK(f->is_write);
    out_free(&o);
    tally_free(t);
}

TEST(overfetch_by_rows_and_by_request)
{
    Out o;
    TallyOptions opts = low_overfetch_options();
    Tally *t = new_tally(&o, &opts);
    feed(t, (Stmt){.conn = 1, .tags = "request_id=o", .fingerprint = 0x80, .rows = 120});
    feed(t, (Stmt){.conn = 1, .tags = "request_id=o", .fingerprint = 0x81, .rows = 40});
    tally_finish_all(t);
    RequestRecord *r = o.requests[0];
    const RecordFinding *f = find_finding(r, FINDING_OVERFETCH, 0x80);
    CHECK(f != NULL);
    if (f)
        CHECK_EQ_INT(f->count, 120);
    CHECK(find_finding(r, FINDING_OVERFETCH, 0x81) == NULL);
    CHECK(find_finding(r, FINDING_OVERFETCH, 0) != NULL); /* 160 rows in the request */
    out_free(&o);
    tally_free(t);
}

/* An INSERT ... SELECT of many rows writes them; it returns none to the client, so it is
 * no overfetch, for the statement or for the request, whatever its row count. */
TEST(rows_written_are_not_overfetch)
{
    Out o;
    TallyOptions opts = low_overfetch_options();
    Tally *t = new_tally(&o, &opts);
    feed(t, (Stmt){.conn = 1,
                   .tags = "request_id=w",
                   .normalized = "insert into archive select * from orders",
                   .fingerprint = 0x90,
                   .command = "INSERT",
                   .rows = 2500,
                   .written = true});
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 1);
    RequestRecord *r = o.requests[0];
    CHECK_EQ_INT(r->rows, 0); /* rows returned: none */
    CHECK(find_finding(r, FINDING_OVERFETCH, 0x90) == NULL);
    CHECK(find_finding(r, FINDING_OVERFETCH, 0) == NULL);
    out_free(&o);
    tally_free(t);
}

TEST(open_request_bound_evicts_the_oldest_without_losing_it)
{
    Out o;
    TallyOptions opts;
    tally_options_default(&opts);
    opts.max_open_requests = 2;
    Tally *t = new_tally(&o, &opts);
    feed(t, (Stmt){.conn = 1, .tags = "request_id=1"});
    feed(t, (Stmt){.conn = 2, .tags = "request_id=2"});
    feed(t, (Stmt){.conn = 3, .tags = "request_id=3"});
    CHECK_EQ_INT(o.n_requests, 1);
    CHECK_EQ_STR(o.requests[0]->key, "request_id:1");
    CHECK_EQ_STR(o.requests[0]->end_reason, "evicted");
    CHECK_EQ_INT(tally_stats(t)->evicted, 1);
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 3);
    out_free(&o);
    tally_free(t);
}

TEST(per_request_bounds_truncate_and_say_so)
{
    Out o;
    TallyOptions opts;
    tally_options_default(&opts);
    opts.max_fingerprints_per_request = 4;
    opts.max_timeline = 8;
    Tally *t = new_tally(&o, &opts);
    for (uint64_t i = 0; i < 20; i++)
        feed(t, (Stmt){.conn = 1, .tags = "request_id=big", .fingerprint = 0x100 + i});
    tally_finish_all(t);
    RequestRecord *r = o.requests[0];
    CHECK_EQ_INT(r->statements, 20);
    CHECK(r->truncated);
    CHECK_EQ_INT(r->n_fingerprints, 4);
    CHECK_EQ_INT(r->n_timeline, 8);
    CHECK_EQ_INT(r->timeline_dropped, 12);
    CHECK_EQ_INT(tally_stats(t)->truncated, 1);
    out_free(&o);
    tally_free(t);
}

TEST(setup_statement_detection)
{
    CHECK(tally_is_setup_statement("set application_name = $1", 25));
    CHECK(tally_is_setup_statement("set session application_name to $1", 34));
    CHECK(!tally_is_setup_statement("set search_path = $1", 20));
    CHECK(!tally_is_setup_statement("select application_name", 23));
}

TEST(each_tally_draws_its_own_hash_seed)
{
    Out o1, o2;
    Tally *a = new_tally(&o1, NULL);
    Tally *b = new_tally(&o2, NULL);
    /* 64 random bits: equal seeds mean the seed is not random (1 in 2^64 otherwise). */
    CHECK(tally_hash_seed(a) != tally_hash_seed(b));
    CHECK(tally_hash_seed(a) != 0);
    tally_free(a);
    tally_free(b);
}

/* Request ids picked offline to share one bucket under seed 0 stay spread out under the
 * random seed: a flood costs what ordinary traffic costs. */
TEST(request_ids_colliding_for_seed_zero_spread_under_the_random_seed)
{
    enum { KEYS = 400 };
    static char ids[KEYS][COLLIDE_ID_MAX];
    TallyOptions opts;
    tally_options_default(&opts);
    opts.max_open_requests = 1024; /* 1024 buckets */
    collide_ids(ids, KEYS, 1024);
    for (int seeded = 0; seeded < 2; seeded++) {
        opts.hash_seed_fixed = !seeded;
        opts.hash_seed = 0;
        Out o;
        Tally *t = new_tally(&o, &opts);
        for (size_t i = 0; i < KEYS; i++) {
            char tags[64];
            snprintf(tags, sizeof tags, "request_id=%s", ids[i]);
            feed(t, (Stmt){.conn = 1 + i % 8, .tags = tags});
        }
        if (seeded)
            CHECK(tally_max_request_chain(t) <= 12); /* 400 keys in 1024 buckets: ~4 */
        else
            CHECK_EQ_INT(tally_max_request_chain(t), KEYS); /* the ids do collide at seed 0 */
        tally_finish_all(t);
        CHECK_EQ_INT(o.n_requests, MAX_RECORDS); /* all kept apart (the test keeps 64) */
        out_free(&o);
        tally_free(t);
    }
}

TEST(a_route_run_ends_when_its_connection_turns_to_a_tagged_request)
{
    Out o;
    Tally *t = new_tally(&o, NULL);
    feed(t, (Stmt){.conn = 1, .tags = "route=/a", .fingerprint = 0x1});
    feed(t, (Stmt){.conn = 1, .tags = "request_id=b", .fingerprint = 0x2});
    feed(t, (Stmt){.conn = 1, .tags = "route=/a", .fingerprint = 0x3}); /* a third request */
    tally_connection_closed(t, 1);
    tally_finish_all(t);
    CHECK_EQ_INT(o.n_requests, 3);
    for (int i = 0; i < o.n_requests; i++)
        CHECK_EQ_INT(o.requests[i]->statements, 1);
    out_free(&o);
    tally_free(t);
}

/* ---- every pair of tagging styles, one after the other on one connection ---------------- */

enum {
    STYLE_REQUEST_ID,
    STYLE_CORRELATION_ID,
    STYLE_TRACEPARENT,
    STYLE_ROUTE,
    STYLE_MARGINALIA,
    STYLE_APPLICATION_NAME,
    STYLE_UNTAGGED,
    N_STYLES
};

static const char *const style_names[N_STYLES] = {
    "request_id", "correlation_id",   "traceparent", "route",
    "marginalia", "application_name", "untagged"};

/* Feeds one request of `style` (phase 1 or 2 marks its fingerprints 0x1.. or 0x2..) with
 * `n` statements, wrapped in a driver's untagged BEGIN/COMMIT when `transaction`. The
 * connection's application_name is sticky, as in a session: only SET changes it. */
static void feed_style(Tally *t, int style, int phase, int n, bool transaction, char *app,
                       size_t app_cap)
{
    char tags[128] = "";
    switch (style) {
    case STYLE_REQUEST_ID:
        snprintf(tags, sizeof tags, "request_id=req%d", phase);
        break;
    case STYLE_CORRELATION_ID:
        snprintf(tags, sizeof tags, "correlation_id=corr%d", phase);
        break;
    case STYLE_TRACEPARENT:
        snprintf(tags, sizeof tags, "traceparent=00-%032d-00f067aa0ba902b7-01",
                 phase); /* trace id 000...0N */
        break;
    case STYLE_ROUTE:
        snprintf(tags, sizeof tags, "route=/api/r%d", phase);
        break;
    case STYLE_MARGINALIA:
        snprintf(tags, sizeof tags, "controller=c%d,action=show", phase);
        break;
    case STYLE_APPLICATION_NAME:
        feed(t, (Stmt){.conn = 1,
                       .normalized = "set application_name = $1",
                       .command = "SET",
                       .fingerprint = 0x50,
                       .app = app});
        snprintf(app, app_cap, "app%d", phase);
        break;
    default:
        break;
    }
    uint64_t base = (uint64_t)phase << 8;
    if (transaction)
        feed(t, (Stmt){.conn = 1,
                       .normalized = "begin",
                       .command = "BEGIN",
                       .fingerprint = base | 0x10,
                       .app = app});
    for (int i = 0; i < n; i++)
        feed(t, (Stmt){.conn = 1,
                       .tags = tags[0] ? tags : NULL,
                       .fingerprint = base | (uint64_t)(0x20 + i),
                       .app = app});
    if (transaction)
        feed(t, (Stmt){.conn = 1,
                       .normalized = "commit",
                       .command = "COMMIT",
                       .fingerprint = base | 0x1f,
                       .app = app});
}

static const char *style_route(int style, int phase, char *buf, size_t cap)
{
    if (style == STYLE_ROUTE)
        snprintf(buf, cap, "/api/r%d", phase);
    else if (style == STYLE_MARGINALIA)
        snprintf(buf, cap, "c%d#show", phase);
    else if (style == STYLE_APPLICATION_NAME)
        snprintf(buf, cap, "app%d", phase);
    else
        return NULL;
    return buf;
}

/* A request of one style followed by a request of another (or the same style with other
 * values) on one connection: the second starts a new request whenever its own tags name one
 * (a request id, a trace, a route, a controller) or its application_name changed. Only an
 * untagged one joins the request before it, as a driver's COMMIT or a framework's own query
 * does. 3 statements, then 2, so a merge shows in the counts. */
TEST(every_pair_of_tagging_styles_in_sequence_on_one_connection)
{
    for (int transaction = 0; transaction < 2; transaction++) {
        for (int first = 0; first < N_STYLES; first++) {
            for (int second = 0; second < N_STYLES; second++) {
                Out o;
                Tally *t = new_tally(&o, NULL);
                char app[32] = "";
                feed_style(t, first, 1, 3, transaction, app, sizeof app);
                feed_style(t, second, 2, 2, transaction, app, sizeof app);
                tally_connection_closed(t, 1);
                tally_finish_all(t);
                bool merged = second == STYLE_UNTAGGED;
                int per_txn = transaction ? 2 : 0;
                int failures_before = testlib_case_failures;
                CHECK_EQ_INT(o.n_requests, merged ? 1 : 2);
                for (int i = 0; i < o.n_requests; i++) {
                    const RequestRecord *r = o.requests[i];
                    int phase[3] = {0, 0, 0};
                    for (size_t k = 0; k < r->n_timeline; k++)
                        if (!r->timeline[k].setup)
                            phase[(r->timeline[k].fingerprint >> 8) & 3]++;
                    if (merged) {
                        CHECK_EQ_INT(phase[1], 3 + per_txn);
                        CHECK_EQ_INT(phase[2], 2 + per_txn);
                        continue;
                    }
                    /* never both phases in one request */
                    CHECK(phase[1] == 0 || phase[2] == 0);
                    int p = phase[1] ? 1 : 2;
                    CHECK_EQ_INT(phase[p], (p == 1 ? 3 : 2) + per_txn);
                    CHECK_EQ_INT(r->statements, (uint32_t)((p == 1 ? 3 : 2) + per_txn));
                    char want[32];
                    const char *route = style_route(p == 1 ? first : second, p, want, sizeof want);
                    if (route)
                        CHECK_EQ_STR(r->route, route);
                }
                if (testlib_case_failures != failures_before)
                    printf("  ^ %s then %s%s\n", style_names[first], style_names[second],
                           transaction ? ", in transactions" : "");
                out_free(&o);
                tally_free(t);
            }
        }
    }
}

int main(void)
{
    RUN(n_plus_one_and_duplicates_in_one_tagged_request);
    RUN(interleaved_requests_on_several_connections_stay_apart);
    RUN(untagged_transaction_statements_join_the_tagged_request);
    RUN(driver_begin_joins_the_next_request_not_the_previous_one);
    RUN(untagged_statements_do_not_break_a_route_labelled_run);
    RUN(lone_begin_before_close_is_still_counted);
    RUN(traceparent_trace_id_is_the_key);
    RUN(application_name_runs_split_on_label_change_and_keep_setup_statements);
    RUN(untagged_connection_run_ends_at_close_and_at_idle_gap);
    RUN(pipelined_statements_keep_their_order_in_the_timeline);
    RUN(repeated_writes_are_flagged_as_writes);
    RUN(overfetch_by_rows_and_by_request);
    RUN(rows_written_are_not_overfetch);
    RUN(open_request_bound_evicts_the_oldest_without_losing_it);
    RUN(per_request_bounds_truncate_and_say_so);
    RUN(setup_statement_detection);
    RUN(each_tally_draws_its_own_hash_seed);
    RUN(request_ids_colliding_for_seed_zero_spread_under_the_random_seed);
    RUN(a_route_run_ends_when_its_connection_turns_to_a_tagged_request);
    RUN(every_pair_of_tagging_styles_in_sequence_on_one_connection);
    return TESTLIB_FINISH();
}
