/* tests/unit/test_report_fleet.c — runs read as one picture (report/reader scopes), merging
 * report files (report/merge) and retention (report/prune), on report files written through
 * report/store (tests/unit/report_fixture.h). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/merge.h"
#include "report/store/sqlite.h"
#include "report/prune.h"
#include "report/reader.h"
#include "report/store.h"
#include "report_fixture.h"
#include "testlib.h"

static char tmpdir[64];

static const char *path_of(const char *name)
{
    static char paths[8][160];
    static size_t next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
    return p;
}

static bool write_run(const char *path, FixtureRun run)
{
    char err[256];
    bool ok = report_fixture_write_run(path, &run, err, sizeof err);
    if (!ok)
        printf("  %s\n", err);
    return ok;
}

static void sql(const char *path, const char *statements)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, statements, NULL, NULL, &msg) != SQLITE_OK)
        printf("  sql on %s: %s\n", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
}

static int64_t sql_int(const char *path, const char *query)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, query, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static const ReaderRoute *find_route(const ReaderRouteList *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].route, name) == 0)
            return &l->items[i];
    return NULL;
}

/* ---- scope ---------------------------------------------------------------------------------- */

/* Two runs labelled "L" (a full one on w1, one of only a1 and a2 on w2) and a run of another
 * label in one file. */
static const char *three_runs(void)
{
    const char *p = path_of("three.db");
    unlink(p);
    write_run(p, (FixtureRun){.label = "L", .instance = "w1"});
    write_run(p, (FixtureRun){
                     .label = "L", .instance = "w2", .requests = 2, .started_us = FIXTURE_T0 + 5});
    write_run(p, (FixtureRun){.label = "other", .instance = "w1", .started_us = FIXTURE_T0 + 9});
    return p;
}

TEST(scope_label_pools_requests_for_percentiles)
{
    char err[256];
    ReportFile *f = reader_open(three_runs(), err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(reader_select(f, &(ReaderScope){.label = "L"}, err, sizeof err));
    ReaderRunList runs;
    CHECK(reader_scope_runs(f, &runs, err, sizeof err));
    CHECK_EQ_INT(runs.n, 2);
    CHECK_EQ_INT(reader_runs_count_instances(&runs), 2);
    CHECK_EQ_INT(reader_runs_count_complete(&runs), 2);
    CHECK(reader_runs_complete(&runs, NULL, 0));
    CHECK_EQ_STR(runs.items[1].instance, "w2");
    CHECK_EQ_INT(strlen(runs.items[0].uuid), 32);
    ReaderRun all;
    CHECK(reader_runs_combine(&runs, &all));
    CHECK_EQ_INT(all.stored_requests, 7);
    CHECK_EQ_INT(all.stored_statements, 24 + 15);
    reader_run_free(&all);
    reader_run_list_free(&runs);
    ReaderRouteList routes;
    CHECK(reader_routes(f, &routes, err, sizeof err));
    const ReaderRoute *orders = find_route(&routes, "/orders");
    CHECK(orders != NULL);
    if (orders) {
        /* 13, 2, 7 and 13, 2 pooled: 2 2 7 13 13. Per-run p50s (7 and 2) would average 4.5. */
        CHECK_EQ_INT(orders->requests, 5);
        CHECK_EQ_INT(orders->queries_p50, 7);
        CHECK_EQ_INT(orders->queries_p95, 13);
        CHECK_EQ_INT(orders->n_plus_one, 3);
    }
    reader_route_list_free(&routes);
    ReaderRequestList reqs;
    /* a1 is in both runs: by id it is ambiguous across the label, by row it is not. */
    CHECK(!reader_find_request(f, "a1", &reqs, err, sizeof err));
    CHECK(strstr(err, "label \"L\"") != NULL);
    reader_close(f);
}

TEST(scope_default_is_latest_and_run_selects_one)
{
    char err[256];
    ReportFile *f = reader_open(three_runs(), err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    ReaderRequestList reqs;
    CHECK(reader_requests(f, NULL, &reqs, err, sizeof err));
    CHECK_EQ_INT(reqs.n, 5); /* the latest run: "other" */
    reader_request_list_free(&reqs);
    CHECK(reader_select(f, &(ReaderScope){.run_id = 2}, err, sizeof err));
    CHECK(reader_requests(f, NULL, &reqs, err, sizeof err));
    CHECK_EQ_INT(reqs.n, 2);
    reader_request_list_free(&reqs);
    CHECK(!reader_select(f, &(ReaderScope){.label = "nope"}, err, sizeof err));
    CHECK(strstr(err, "no runs labelled \"nope\"") != NULL);
    CHECK(reader_requests(f, NULL, &reqs, err, sizeof err));
    CHECK_EQ_INT(reqs.n, 0); /* a failed selection leaves nothing in scope */
    reader_request_list_free(&reqs);
    CHECK(!reader_select(f, &(ReaderScope){.run_id = 9}, err, sizeof err));
    CHECK(strstr(err, "no run 9") != NULL);
    reader_close(f);
}

TEST(scope_incomplete_run_names_itself)
{
    const char *p = path_of("incomplete.db");
    unlink(p);
    write_run(p, (FixtureRun){.label = "L", .instance = "web.1"});
    write_run(p, (FixtureRun){.label = "L", .instance = "web.2", .dropped = 2});
    char err[256], why[320];
    ReportFile *f = reader_open(p, err, sizeof err);
    CHECK(f != NULL);
    if (!f)
        return;
    ReaderRunList runs;
    CHECK(reader_select(f, &(ReaderScope){.label = "L"}, err, sizeof err));
    CHECK(reader_scope_runs(f, &runs, err, sizeof err));
    CHECK(!reader_runs_complete(&runs, why, sizeof why));
    CHECK(strstr(why, "1 of 2 runs incomplete") != NULL);
    CHECK(strstr(why, "web.2") != NULL);
    CHECK(strstr(why, "2 requests") != NULL);
    CHECK_EQ_INT(reader_runs_count_complete(&runs), 1);
    reader_run_list_free(&runs);
    reader_close(f);
}

/* ---- merge ---------------------------------------------------------------------------------- */

static void routes_of(const char *path, const char *label, ReaderRouteList *out)
{
    char err[256];
    memset(out, 0, sizeof *out);
    ReportFile *f = reader_open(path, err, sizeof err);
    if (!f || !reader_select(f, &(ReaderScope){.label = label}, err, sizeof err) ||
        !reader_routes(f, out, err, sizeof err))
        printf("  %s\n", err);
    reader_close(f);
}

TEST(merge_of_shards_equals_one_file_and_is_idempotent)
{
    const char *one = path_of("one.db"), *s1 = path_of("s1.db"), *s2 = path_of("s2.db"),
               *out = path_of("merged.db");
    unlink(one);
    unlink(s1);
    unlink(s2);
    unlink(out);
    FixtureRun a = {.label = "ci", .instance = "shard1"};
    FixtureRun b = {
        .label = "ci", .instance = "shard2", .requests = 3, .started_us = FIXTURE_T0 + 7};
    CHECK(write_run(one, a) && write_run(one, b) && write_run(s1, a) && write_run(s2, b));
    char err[512];
    MergeStats st = {0};
    CHECK(merge_sqlite(out, s1, &st, err, sizeof err));
    CHECK(merge_sqlite(out, s2, &st, err, sizeof err));
    CHECK_EQ_INT(st.runs_added, 2);
    CHECK_EQ_INT(st.requests, 8);
    CHECK_EQ_INT(st.statements, 24 + 22);
    CHECK_EQ_INT(st.fingerprints, 4);
    CHECK_EQ_INT(sql_int(out, "SELECT count(DISTINCT instance) FROM runs WHERE label = 'ci'"), 2);
    ReaderRouteList x, y;
    routes_of(one, "ci", &x);
    routes_of(out, "ci", &y);
    CHECK_EQ_INT(x.n, y.n);
    for (size_t i = 0; i < x.n && i < y.n; i++) {
        CHECK_EQ_STR(x.items[i].route, y.items[i].route);
        CHECK_EQ_INT(x.items[i].requests, y.items[i].requests);
        CHECK_EQ_INT(x.items[i].queries, y.items[i].queries);
        CHECK_EQ_INT(x.items[i].queries_p95, y.items[i].queries_p95);
        CHECK_EQ_INT(x.items[i].n_plus_one, y.items[i].n_plus_one);
        CHECK_EQ_INT(x.items[i].db_time_us, y.items[i].db_time_us);
    }
    reader_route_list_free(&x);
    reader_route_list_free(&y);
    /* Again: nothing added, and the run keeps its uuid. */
    MergeStats again = {0};
    CHECK(merge_sqlite(out, s1, &again, err, sizeof err));
    CHECK(merge_sqlite(out, s2, &again, err, sizeof err));
    CHECK_EQ_INT(again.runs_added, 0);
    CHECK_EQ_INT(again.runs_skipped, 2);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 8);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM statements"), 46);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM runs r WHERE uuid = (SELECT uuid FROM runs"
                              " WHERE instance = 'shard1')"),
                 1);
    /* Merging a merged file into a third one keeps the identities too. */
    const char *third = path_of("third.db");
    unlink(third);
    CHECK(merge_sqlite(third, out, &again, err, sizeof err));
    CHECK(merge_sqlite(third, s1, &again, err, sizeof err));
    CHECK_EQ_INT(sql_int(third, "SELECT count(*) FROM runs"), 2);
}

TEST(merge_refuses_newer_schema_naming_the_file)
{
    const char *in = path_of("newer.db"), *out = path_of("out-newer.db");
    unlink(in);
    unlink(out);
    CHECK(write_run(in, (FixtureRun){0}));
    sql(in, "PRAGMA user_version = 99");
    char err[512];
    MergeStats st = {0};
    CHECK(!merge_check_input(in, err, sizeof err));
    CHECK(strstr(err, in) != NULL);
    CHECK(strstr(err, "newer") != NULL);
    CHECK(!merge_sqlite(out, in, &st, err, sizeof err));
    CHECK(access(out, F_OK) != 0); /* nothing written */
    CHECK(!merge_check_input(path_of("missing.db"), err, sizeof err));
}

TEST(merge_old_schema_gets_a_stable_uuid)
{
    const char *in = path_of("v2.db"), *out = path_of("out-v2.db");
    unlink(in);
    unlink(out);
    CHECK(write_run(in, (FixtureRun){0}));
    sql(in, "DROP INDEX runs_uuid; DROP INDEX runs_label;"
            "ALTER TABLE runs DROP COLUMN uuid; ALTER TABLE runs DROP COLUMN label;"
            "ALTER TABLE runs DROP COLUMN instance; ALTER TABLE runs DROP COLUMN pid;"
            "ALTER TABLE runs DROP COLUMN heartbeat_us; ALTER TABLE runs DROP COLUMN"
            " heartbeat_statements; PRAGMA user_version = 2");
    char err[512];
    MergeStats st = {0};
    CHECK(merge_sqlite(out, in, &st, err, sizeof err));
    CHECK(merge_sqlite(out, in, &st, err, sizeof err));
    CHECK_EQ_INT(st.runs_added, 1);
    CHECK_EQ_INT(st.runs_skipped, 1);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 5);
    CHECK_EQ_INT(sql_int(out, "SELECT length(uuid) FROM runs"), 32);
    char a[33], b[33];
    store_sqlite_legacy_uuid(1, 5, "v", "{}", a);
    store_sqlite_legacy_uuid(1, 5, "v", "{ }", b);
    CHECK(strcmp(a, b) != 0);
}

/* An older file merged, then migrated by a proxy opening it, then merged again: the migration
 * gives its run the uuid merge gave it, so the second merge finds the run, not a new one. */
TEST(merge_old_schema_before_and_after_its_migration_is_one_run)
{
    const char *in = path_of("v2m.db"), *out = path_of("out-v2m.db");
    unlink(in);
    unlink(out);
    CHECK(write_run(in, (FixtureRun){0}));
    sql(in, "DROP INDEX runs_uuid; DROP INDEX runs_label;"
            "ALTER TABLE runs DROP COLUMN uuid; ALTER TABLE runs DROP COLUMN label;"
            "ALTER TABLE runs DROP COLUMN instance; ALTER TABLE runs DROP COLUMN pid;"
            "ALTER TABLE runs DROP COLUMN heartbeat_us; ALTER TABLE runs DROP COLUMN"
            " heartbeat_statements; PRAGMA user_version = 2");
    char err[512];
    MergeStats st = {0};
    CHECK(merge_sqlite(out, in, &st, err, sizeof err));
    CHECK(store_prepare_file(in, err, sizeof err)); /* what a proxy does with --db in */
    CHECK_EQ_INT(sql_int(in, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    CHECK(merge_sqlite(out, in, &st, err, sizeof err));
    CHECK_EQ_INT(st.runs_added, 1);
    CHECK_EQ_INT(st.runs_skipped, 1);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM runs"), 1);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 5);
}

TEST(merge_replaces_an_unfinished_snapshot_with_the_ended_run)
{
    const char *ended = path_of("ended.db"), *snap = path_of("snap.db"),
               *out = path_of("out-snap.db");
    unlink(ended);
    unlink(snap);
    unlink(out);
    CHECK(write_run(ended, (FixtureRun){.label = "L"}));
    /* The same run as a running proxy's snapshot: no end yet, fewer requests. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", ended, snap);
    CHECK(system(cmd) == 0);
    sql(snap, "UPDATE runs SET ended_us = NULL;"
              "DELETE FROM statements WHERE request_id > 2;"
              "DELETE FROM request_fingerprints WHERE request_id > 2;"
              "DELETE FROM findings WHERE request_id > 2; DELETE FROM requests WHERE id > 2");
    char err[512];
    MergeStats st = {0};
    CHECK(merge_sqlite(out, snap, &st, err, sizeof err));
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 2);
    CHECK(merge_sqlite(out, ended, &st, err, sizeof err));
    CHECK_EQ_INT(st.runs_replaced, 1);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM runs"), 1);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 5);
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM statements"), 24);
    /* The snapshot never replaces the ended run. */
    CHECK(merge_sqlite(out, snap, &st, err, sizeof err));
    CHECK_EQ_INT(sql_int(out, "SELECT count(*) FROM requests"), 5);
}

/* ---- prune ---------------------------------------------------------------------------------- */

TEST(prune_parses_ages)
{
    int64_t us = 0;
    CHECK(prune_parse_age("30d", &us) && us == 30LL * 86400 * 1000000);
    CHECK(prune_parse_age("2w", &us) && us == 14LL * 86400 * 1000000);
    CHECK(prune_parse_age("90m", &us) && us == 90LL * 60 * 1000000);
    CHECK(prune_parse_age("45s", &us) && us == 45LL * 1000000);
    CHECK(prune_parse_age("12h", &us) && us == 12LL * 3600 * 1000000);
    CHECK(!prune_parse_age("30", &us));
    CHECK(!prune_parse_age("30x", &us));
    CHECK(!prune_parse_age("-1d", &us));
    CHECK(!prune_parse_age("d", &us));
    CHECK(!prune_parse_age("99999999999999w", &us));
}

/* Runs: 1 "old-a" (old), 2 "old-b" (old), 3 "new" (recent). */
static const char *aged_file(void)
{
    const char *p = path_of("aged.db");
    unlink(p);
    write_run(p, (FixtureRun){.label = "old-a", .started_us = 1000});
    write_run(p, (FixtureRun){.label = "old-b", .started_us = 2000});
    write_run(p, (FixtureRun){.label = "new", .requests = 1, .started_us = 3000});
    /* Only run 3 is recent (its end); runs 1 and 2 ended long ago. A text no run uses. */
    sql(p, "UPDATE runs SET ended_us = started_us + 10, flushed_us = started_us + 10,"
           " heartbeat_us = started_us WHERE id < 3;"
           "UPDATE runs SET ended_us = 9000000, flushed_us = 9000000 WHERE id = 3;"
           "UPDATE fingerprints SET first_seen_us = 100;"
           "INSERT INTO fingerprints VALUES ('00000000000000ff', 'select 1', 'select', NULL, 1);"
           /* unused too, but first seen after the cutoff: a live proxy's request may follow */
           "INSERT INTO fingerprints VALUES ('00000000000000fe', 'select 2', 'select', NULL,"
           " 9000000000000000)");
    return p;
}

TEST(prune_dry_run_counts_and_changes_nothing)
{
    const char *p = aged_file();
    PruneStats s;
    char err[256];
    CHECK(prune_sqlite(p, &(PruneOptions){.cutoff_us = 5000000, .dry_run = true}, &s, err,
                       sizeof err));
    CHECK_EQ_INT(s.runs, 2);
    CHECK_EQ_INT(s.requests, 10);
    CHECK_EQ_INT(s.statements, 48);
    /* health and the unused text; run 3's a1 still uses orders, items and users. */
    CHECK_EQ_INT(s.fingerprints, 2);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM runs"), 3);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM requests"), 11);
}

TEST(prune_deletes_old_runs_in_batches_and_keeps_labels)
{
    const char *p = aged_file();
    PruneStats s;
    char err[256];
    CHECK(prune_sqlite(p, &(PruneOptions){.cutoff_us = 5000000, .keep_labels = 2, .batch = 2}, &s,
                       err, sizeof err));
    /* The 2 most recently started labels are "new" and "old-b": only "old-a" goes. */
    CHECK_EQ_INT(s.runs, 1);
    CHECK_EQ_INT(s.requests, 5);
    CHECK_EQ_INT(s.statements, 24);
    CHECK_EQ_INT(s.fingerprints, 1); /* only the unused text: old-b still uses the rest */
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM runs WHERE label = 'old-a'"), 0);
    CHECK(prune_sqlite(p, &(PruneOptions){.cutoff_us = 5000000, .batch = 2}, &s, err, sizeof err));
    CHECK_EQ_INT(s.runs, 1);
    CHECK_EQ_INT(s.requests, 5);
    CHECK_EQ_INT(s.fingerprints, 1); /* health: run 3's a1 uses the other three */
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM runs"), 1);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM requests"), 1);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM request_fingerprints WHERE request_id NOT IN"
                            " (SELECT id FROM requests)"),
                 0);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM findings WHERE request_id NOT IN"
                            " (SELECT id FROM requests)"),
                 0);
    CHECK_EQ_INT(sql_int(p, "SELECT count(*) FROM fingerprints WHERE fingerprint ="
                            " '00000000000000fe'"),
                 1);
    /* Nothing left to prune: a second pass deletes nothing. */
    CHECK(prune_sqlite(p, &(PruneOptions){.cutoff_us = 5000000}, &s, err, sizeof err));
    CHECK_EQ_INT(s.runs + s.requests + s.statements + s.fingerprints, 0);
    CHECK(
        !prune_sqlite(path_of("missing.db"), &(PruneOptions){.cutoff_us = 1}, &s, err, sizeof err));
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/pgtally-test-fleet-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(scope_label_pools_requests_for_percentiles);
    RUN(scope_default_is_latest_and_run_selects_one);
    RUN(scope_incomplete_run_names_itself);
    RUN(merge_of_shards_equals_one_file_and_is_idempotent);
    RUN(merge_refuses_newer_schema_naming_the_file);
    RUN(merge_old_schema_gets_a_stable_uuid);
    RUN(merge_old_schema_before_and_after_its_migration_is_one_run);
    RUN(merge_replaces_an_unfinished_snapshot_with_the_ended_run);
    RUN(prune_parses_ages);
    RUN(prune_dry_run_counts_and_changes_nothing);
    RUN(prune_deletes_old_runs_in_batches_and_keeps_labels);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    return TESTLIB_FINISH();
}
