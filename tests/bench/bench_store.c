/* tests/bench/bench_store — report store throughput: synthetic finished requests (default
 * 100k requests x 10 statements, a pool of fingerprints reused per route with an N+1 shape)
 * submitted to a real SQLite file (or, with --db URL, a PostgreSQL store). Two modes:
 *   sustained  the submitter backs off while the queue is over half full: measures how many
 *              statements/s the writer thread records into SQLite, with no drops;
 *   burst      submits as fast as it can: measures the submitter's cost per call and shows
 *              that a writer that cannot keep up drops (and counts) instead of blocking.
 * Prints statements/s recorded, records dropped, time per submit (mean, p99, max) and the
 * file size. Asserts nothing. tests/bench/store.sh runs it; figures in docs/benchmarks.md. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report/store.h"

#define ROUTES 40
#define FP_PER_ROUTE 3 /* a lookup, a list, and the N+1 child query */

typedef struct Config {
    long requests;
    int statements;
    const char *dir;
    const char *mode; /* "sustained", "burst" or "both" */
    const char *db;   /* a PostgreSQL store (URL or key=value) instead of a file in dir */
    size_t batch;     /* records per transaction; 0: the store's default */
} Config;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static uint64_t fp_of(int route, int k)
{
    return 0x9e3779b97f4a7c15ULL * (uint64_t)(route * FP_PER_ROUTE + k + 1);
}

/* Request i on route i % ROUTES: a lookup, a list, then statements-2 executions of the
 * child query with distinct values (the N+1 shape the tally reports). */
static RequestRecord *make_request(long i, int statements)
{
    int route = (int)(i % ROUTES);
    RequestRecord *r = calloc(1, sizeof *r);
    r->key = dup_printf("request_id:%016lx", (unsigned long)i * 2654435761UL);
    r->route = dup_printf("GET /api/v1/route%02d/{id}", route);
    r->tags_json = dup_printf("{\"request_id\":\"%016lx\",\"route\":\"GET /api/v1/route%02d/{id}\","
                              "\"controller\":\"Route%02dController\"}",
                              (unsigned long)i * 2654435761UL, route, route);
    r->conn_id = (uint64_t)(i % 64) + 1;
    r->start_us = 1700000000000000LL + i * 250;
    r->end_us = r->start_us + statements * 120;
    r->end_reason = "idle";
    r->statements = (uint32_t)statements;
    r->distinct_fingerprints = FP_PER_ROUTE;
    r->transactions = 1;
    r->db_time_us = (uint64_t)statements * 90;
    r->rows = (uint64_t)statements * 3;
    r->bytes = (uint64_t)statements * 400;

    r->n_fingerprints = FP_PER_ROUTE;
    r->fingerprints = calloc(FP_PER_ROUTE, sizeof *r->fingerprints);
    for (int k = 0; k < FP_PER_ROUTE; k++) {
        RecordFingerprint *f = &r->fingerprints[k];
        f->fingerprint = fp_of(route, k);
        f->calls = k < 2 ? 1 : (uint32_t)(statements - 2);
        f->distinct_values = f->calls;
        f->total_time_us = f->calls * 90;
        f->rows = f->calls * 3;
        f->bytes = f->calls * 400;
    }
    r->n_timeline = (size_t)statements;
    r->timeline = calloc((size_t)statements, sizeof *r->timeline);
    for (int k = 0; k < statements; k++) {
        RecordStatement *t = &r->timeline[k];
        t->fingerprint = fp_of(route, k < 2 ? k : 2);
        t->values_hash = 0xc2b2ae3d27d4eb4fULL * (uint64_t)(i * statements + k + 1);
        t->start_us = r->start_us + k * 120;
        t->duration_us = 90;
        t->rows = 3;
        t->bytes = 400;
        t->conn_id = r->conn_id;
    }
    if (statements >= 7) {
        r->n_findings = 1;
        r->findings = calloc(1, sizeof *r->findings);
        r->findings[0] = (RecordFinding){.kind = FINDING_N_PLUS_ONE,
                                         .fingerprint = fp_of(route, 2),
                                         .count = (uint64_t)statements - 2,
                                         .distinct_values = (uint32_t)statements - 2};
    }
    return r;
}

static FingerprintRecord *make_fp(int route, int k)
{
    FingerprintRecord *f = calloc(1, sizeof *f);
    f->fingerprint = fp_of(route, k);
    f->normalized = dup_printf("select t%d.id, t%d.name, t%d.created_at from table_%d t%d where "
                               "t%d.parent_id = $1 order by t%d.id limit $2",
                               k, k, k, route, k, k, k);
    f->command = dup_printf("select");
    f->first_seen_us = 1700000000000000LL;
    return f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run(const Config *c, bool sustained)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bench-store-%s.db", c->dir, sustained ? "sustained" : "burst");
    if (c->db)
        snprintf(path, sizeof path, "%s", c->db);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; !c->db && i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    char err[512];
    StoreOptions o = {.settings_json = "{\"bench\":true}", .batch_max_records = c->batch};
    Store *s = store_open(path, &o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "bench_store: %s\n", err);
        return 1;
    }
    double *lat = malloc((size_t)c->requests * sizeof *lat);
    bool fp_sent[ROUTES] = {0};
    long accepted = 0, refused = 0;
    double submit_total = 0, max_accepted = 0, max_refused = 0;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_THREAD, &ru0);
    double t0 = mono_s();
    for (long i = 0; i < c->requests; i++) {
        int route = (int)(i % ROUTES);
        if (!fp_sent[route]) {
            fp_sent[route] = true;
            for (int k = 0; k < FP_PER_ROUTE; k++)
                store_submit_fingerprint(s, make_fp(route, k));
        }
        if (sustained && i % 64 == 0) {
            /* Back off while the queue is over half full (the default bound is 8192). */
            while (store_stats(s).queued_records > 4096)
                usleep(200);
        }
        RequestRecord *r = make_request(i, c->statements);
        double a = mono_s();
        bool ok = store_submit_request(s, r);
        double d = mono_s() - a;
        lat[i] = d;
        submit_total += d;
        if (ok) {
            accepted++;
            max_accepted = d > max_accepted ? d : max_accepted;
        } else {
            refused++;
            max_refused = d > max_refused ? d : max_refused;
        }
    }
    double t_submitted = mono_s();
    getrusage(RUSAGE_THREAD, &ru1);
    if (!store_wait_flushed(s, 600))
        fprintf(stderr, "bench_store: flush timed out\n");
    double t_drained = mono_s();
    StoreStats st = store_stats(s);
    StoreRunTotals totals = {.statements = (uint64_t)c->requests * (uint64_t)c->statements,
                             .requests = (uint64_t)c->requests,
                             .complete = true};
    if (!store_close(s, &totals, err, sizeof err))
        fprintf(stderr, "bench_store: %s\n", err);
    double t_closed = mono_s();

    qsort(lat, (size_t)c->requests, sizeof *lat, cmp_double);
    struct stat sb = {0};
    stat(path, &sb);
    uint64_t stmts = st.written_requests * (uint64_t)c->statements;
    printf("%-9s requests %ld x %d statements: submitted in %.2f s, drained in %.2f s, closed "
           "in %.2f s\n",
           sustained ? "sustained" : "burst", c->requests, c->statements, t_submitted - t0,
           t_drained - t0, t_closed - t0);
    printf("          recorded %" PRIu64 " statements (%" PRIu64 " requests) = %.0f statements/s"
           " (%.0f requests/s) to the last commit, %.0f statements/s including close\n",
           stmts, st.written_requests, (double)stmts / (t_drained - t0),
           (double)st.written_requests / (t_drained - t0), (double)stmts / (t_closed - t0));
    printf("          dropped %" PRIu64 " requests (%" PRIu64 " statements): queue full %" PRIu64
           ", sqlite %" PRIu64 "; %" PRIu64 " transactions\n",
           st.dropped_requests, st.dropped_statements, st.dropped_queue_full, st.dropped_sqlite,
           st.batches);
    printf("          submit: mean %.0f ns, p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.1f us"
           " (accepted %ld, max %.1f us; refused %ld, max %.1f us)\n",
           submit_total / (double)c->requests * 1e9, lat[c->requests / 2] * 1e9,
           lat[(long)((double)c->requests * 0.99)] * 1e9,
           lat[(long)((double)c->requests * 0.999)] * 1e9, lat[c->requests - 1] * 1e6, accepted,
           max_accepted * 1e6, refused, max_refused * 1e6);
    printf("          submitting thread: %ld voluntary (lock waits, sleeps), %ld involuntary "
           "(preempted) context switches\n",
           ru1.ru_nvcsw - ru0.ru_nvcsw, ru1.ru_nivcsw - ru0.ru_nivcsw);
    if (!c->db)
        printf("          file %.1f MB (%.0f bytes/statement)\n", (double)sb.st_size / 1e6,
               stmts ? (double)sb.st_size / (double)stmts : 0.0);
    free(lat);
    for (int i = 0; !c->db && i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_store [--requests N] [--statements K] [--dir DIR]"
                    " [--mode sustained|burst|both] [--db postgres://...] [--batch N]\n");
}

int main(int argc, char **argv)
{
    Config c = {.requests = 100000, .statements = 10, .dir = NULL, .mode = "both"};
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--requests") == 0)
            c.requests = atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--statements") == 0)
            c.statements = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--dir") == 0)
            c.dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
            c.batch = (size_t)atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--db") == 0)
            c.db = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--mode") == 0)
            c.mode = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (c.requests < 1 || c.statements < 3) {
        usage();
        return 2;
    }
    char tmp[] = "/tmp/pgtally-bench-store-XXXXXX";
    if (!c.dir) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmp;
    }
    int rc = 0;
    if (strcmp(c.mode, "burst") != 0)
        rc |= run(&c, true);
    if (strcmp(c.mode, "sustained") != 0)
        rc |= run(&c, false);
    if (c.dir == tmp)
        rmdir(tmp);
    return rc;
}
