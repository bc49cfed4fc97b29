/* tests/unit/report_fixture.h — a small report file with known figures, written through
 * report/store.h so it always has the real schema. Used by test_report (reader, formatters)
 * and by make_report_fixture (the file test_report_cli.py runs `pgtally report` on).
 *
 * The run: 5 requests, 24 queries.
 *   a1 /orders  13 queries: orders, items x10 (N+1, 10 values), users x2 (same value: 1 dup)
 *   a2 /orders   2 queries: orders, users
 *   a3 /orders   7 queries: orders, items x6 (N+1, 6 values)
 *   h1 /health   1 query
 *   conn:7#1 on a route full of HTML/Markdown specials, 1 query
 * /orders: queries per request 13, 2, 7 -> p50 7, p95 13, max 13; 2 N+1 findings, 1 dup.
 * Every statement takes 100 µs; statements are 150 µs apart. */
#ifndef PGTALLY_TESTS_REPORT_FIXTURE_H
#define PGTALLY_TESTS_REPORT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/record.h"
#include "report/store.h"

#define FIXTURE_FP_ORDERS 0x1111000000000001ULL
#define FIXTURE_FP_ITEMS 0x2222000000000002ULL
#define FIXTURE_FP_USERS 0x3333000000000003ULL
#define FIXTURE_FP_HEALTH 0x4444000000000004ULL
#define FIXTURE_ODD_ROUTE "<b>&\"x|y`</b>"
#define FIXTURE_T0 1700000000000000LL

typedef struct FixtureCall {
    uint64_t fp;
    uint64_t value;
} FixtureCall;

static char *fixture_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    memcpy(p, s, n);
    return p;
}

static RequestRecord *fixture_request(const char *key, const char *route, const char *tags,
                                      int64_t start, const FixtureCall *calls, size_t n)
{
    RequestRecord *r = calloc(1, sizeof *r);
    r->key = fixture_dup(key);
    r->route = fixture_dup(route);
    r->tags_json = fixture_dup(tags);
    r->conn_id = 7;
    r->start_us = start;
    r->end_us = start + (int64_t)(n - 1) * 150 + 100;
    r->end_reason = "idle";
    r->statements = (uint32_t)n;
    r->timeline = calloc(n, sizeof *r->timeline);
    r->fingerprints = calloc(n, sizeof *r->fingerprints);
    r->findings = calloc(2 * n, sizeof *r->findings);
    r->n_timeline = n;
    uint32_t distinct_pairs = 0;
    for (size_t i = 0; i < n; i++) {
        RecordStatement *s = &r->timeline[i];
        s->fingerprint = calls[i].fp;
        s->values_hash = calls[i].value;
        s->start_us = start + (int64_t)i * 150;
        s->duration_us = 100;
        s->rows = 1;
        s->bytes = 40;
        s->conn_id = 7;
        r->db_time_us += 100;
        r->rows += 1;
        r->bytes += 40;
        bool seen_pair = false, seen_value = false;
        for (size_t j = 0; j < i; j++) {
            seen_pair |= calls[j].fp == calls[i].fp && calls[j].value == calls[i].value;
        }
        distinct_pairs += !seen_pair;
        RecordFingerprint *f = NULL;
        for (size_t k = 0; k < r->n_fingerprints; k++)
            if (r->fingerprints[k].fingerprint == calls[i].fp)
                f = &r->fingerprints[k];
        if (!f) {
            f = &r->fingerprints[r->n_fingerprints++];
            f->fingerprint = calls[i].fp;
        }
        for (size_t j = 0; j < i; j++)
            seen_value |= calls[j].fp == calls[i].fp && calls[j].value == calls[i].value;
        f->calls++;
        f->distinct_values += !seen_value;
        f->total_time_us += 100;
        f->rows += 1;
        f->bytes += 40;
    }
    r->distinct_fingerprints = (uint32_t)r->n_fingerprints;
    r->duplicates = (uint32_t)n - distinct_pairs;
    for (size_t k = 0; k < r->n_fingerprints; k++) {
        const RecordFingerprint *f = &r->fingerprints[k];
        if (f->calls >= 5 && f->distinct_values >= 2)
            r->findings[r->n_findings++] = (RecordFinding){
                FINDING_N_PLUS_ONE, f->fingerprint, f->calls, f->distinct_values, false, false};
        if (f->calls > f->distinct_values)
            r->findings[r->n_findings++] =
                (RecordFinding){FINDING_DUPLICATE,  f->fingerprint, f->calls - f->distinct_values,
                                f->distinct_values, false,          false};
    }
    return r;
}

static FingerprintRecord *fixture_fp(uint64_t fp, const char *normalized)
{
    FingerprintRecord *r = calloc(1, sizeof *r);
    r->fingerprint = fp;
    r->normalized = fixture_dup(normalized);
    r->command = fixture_dup("select");
    r->first_seen_us = FIXTURE_T0;
    return r;
}

/* How a fixture run differs from the default one. */
typedef struct FixtureRun {
    uint64_t dropped;     /* > 0: the run is incomplete with that many dropped requests */
    const char *label;    /* runs.label; NULL: "" */
    const char *instance; /* runs.instance; NULL: "" */
    int64_t started_us;   /* 0: FIXTURE_T0 */
    size_t requests;      /* only the first N of the 5 requests (a1, a2, a3, h1, odd); 0: all */
} FixtureRun;

/* Writes one fixture run into `path` (created or appended to). Returns false with a message
 * in err. */
static inline bool report_fixture_write_run(const char *path, const FixtureRun *run, char *err,
                                            size_t err_len)
{
    StoreOptions opts = {.version = "9.9.9-test",
                         .started_us = run->started_us ? run->started_us : FIXTURE_T0,
                         .label = run->label,
                         .instance = run->instance};
    uint64_t dropped = run->dropped;
    size_t wanted = run->requests ? run->requests : 5;
    Store *s = store_open(path, &opts, err, err_len);
    if (!s)
        return false;
    store_submit_fingerprint(s, fixture_fp(FIXTURE_FP_ORDERS,
                                           "select id, total from orders where user_id = $1 "
                                           "order by id"));
    store_submit_fingerprint(
        s, fixture_fp(FIXTURE_FP_ITEMS, "select * from items where order_id = $1"));
    store_submit_fingerprint(s,
                             fixture_fp(FIXTURE_FP_USERS, "select name from users where id = $1"));
    store_submit_fingerprint(s, fixture_fp(FIXTURE_FP_HEALTH, "select $1"));

    FixtureCall a1[13] = {{FIXTURE_FP_ORDERS, 1}};
    for (int i = 0; i < 10; i++)
        a1[1 + i] = (FixtureCall){FIXTURE_FP_ITEMS, 100 + (uint64_t)i};
    a1[11] = (FixtureCall){FIXTURE_FP_USERS, 5};
    a1[12] = (FixtureCall){FIXTURE_FP_USERS, 5};
    FixtureCall a2[2] = {{FIXTURE_FP_ORDERS, 2}, {FIXTURE_FP_USERS, 6}};
    FixtureCall a3[7] = {{FIXTURE_FP_ORDERS, 3}};
    for (int i = 0; i < 6; i++)
        a3[1 + i] = (FixtureCall){FIXTURE_FP_ITEMS, 200 + (uint64_t)i};
    FixtureCall h1[1] = {{FIXTURE_FP_HEALTH, 1}};

    RequestRecord *all[5] = {
        fixture_request("request_id:a1", "/orders", "{\"route\":\"/orders\",\"request_id\":\"a1\"}",
                        FIXTURE_T0 + 1000, a1, 13),
        fixture_request("request_id:a2", "/orders", "{\"route\":\"/orders\",\"request_id\":\"a2\"}",
                        FIXTURE_T0 + 10000, a2, 2),
        fixture_request("request_id:a3", "/orders", "{\"route\":\"/orders\",\"request_id\":\"a3\"}",
                        FIXTURE_T0 + 20000, a3, 7),
        fixture_request("request_id:h1", "/health", "{\"route\":\"/health\",\"request_id\":\"h1\"}",
                        FIXTURE_T0 + 30000, h1, 1),
        fixture_request("conn:7#1", FIXTURE_ODD_ROUTE, "{\"route\":\"<b>&\\\"x|y`</b>\"}",
                        FIXTURE_T0 + 40000, h1, 1),
    };
    static const uint64_t queries[5] = {13, 2, 7, 1, 1};
    uint64_t statements = 0;
    for (size_t i = 0; i < 5; i++) {
        if (i < wanted) {
            statements += queries[i];
            store_submit_request(s, all[i]);
        } else {
            request_record_free(all[i]);
        }
    }
    StoreRunTotals totals = {.statements = statements,
                             .requests = wanted + dropped,
                             .dropped_requests = dropped,
                             .dropped_statements = dropped,
                             .complete = true};
    return store_close(s, &totals, err, err_len);
}

/* Writes the default fixture run; `dropped` > 0 makes it incomplete. */
static inline bool report_fixture_write(const char *path, uint64_t dropped, char *err,
                                        size_t err_len)
{
    return report_fixture_write_run(path, &(FixtureRun){.dropped = dropped}, err, err_len);
}

#endif
