/* tests/bench/bench_sqlnorm.c — normalizer throughput: sqlnorm vs libpg_query.
 *
 * Owns: one benchmark program. In one process, on one statement mix (the ORM corpus,
 * tests/corpus/orm_statements.sql), it times protocol/sqlnorm doing everything the proxy
 * asks of it per statement (normalized text N, fingerprint F, values hash V, tag comments
 * T) against pg_query_fingerprint from libpg_query (the PostgreSQL 15 parser). Rounds are
 * interleaved (sqlnorm, pg_query, sqlnorm, pg_query, ...) so frequency scaling and noisy
 * neighbours hit both sides alike; the table reports medians over the rounds. It asserts
 * nothing: `make bench` prints, docs/benchmarks.md records.
 *
 * Both sides get the same bytes: the corpus with client-side markers (`?`, `%s`) replaced
 * by `$n` (tests/corpus/corpus.h), because PostgreSQL cannot parse the markers and an error
 * path is not what we want to time. sqlnorm handles either form at the same cost.
 *
 * Usage: bench_sqlnorm [corpus-file] [--rounds N] [--min-round-seconds S] [--only sqlnorm|pg_query]
 * (--only runs one side, for profiling it with perf or callgrind; no ratio is printed). */
#include <pg_query.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/sqlnorm.h"
#include "protocol/sqltags.h"
#include "tests/corpus/corpus.h"

typedef struct Mix {
    char **sql; /* NUL-terminated server forms */
    size_t *len;
    size_t count;
    size_t bytes;
    size_t max_len;
} Mix;

typedef enum Engine {
    ENGINE_SQLNORM_FULL,
    ENGINE_SQLNORM_NO_TAGS,
    ENGINE_PG_QUERY,
    ENGINES
} Engine;

static const char *const engine_name[ENGINES] = {
    [ENGINE_SQLNORM_FULL] = "sqlnorm (N + F + V + tags)",
    [ENGINE_SQLNORM_NO_TAGS] = "sqlnorm (N + F + V, tags=NULL)",
    [ENGINE_PG_QUERY] = "libpg_query pg_query_fingerprint",
};

/* CPU time of this (single-threaded) process, not wall time: the benchmark usually runs on
 * a shared machine (CI, a developer box running the test suite), where wall time mostly
 * measures how often we were descheduled. On an idle machine the two agree. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The accumulators are returned and printed so the compiler cannot drop the work. */
static uint64_t pass_sqlnorm(const Mix *mix, char *out, size_t out_cap, bool with_tags)
{
    uint64_t acc = 0;
    SqlTags tags;
    for (size_t i = 0; i < mix->count; i++) {
        SqlnormCursor cursor;
        SqlnormStatement st;
        if (with_tags)
            sqltags_init(&tags);
        sqlnorm_cursor_init(&cursor, mix->sql[i], mix->len[i], NULL);
        while (sqlnorm_next(&cursor, out, out_cap, &st, with_tags ? &tags : NULL))
            acc += st.fingerprint ^ st.values_hash ^ st.normalized_len;
        if (with_tags)
            acc += tags.count;
    }
    return acc;
}

static uint64_t pass_pg_query(const Mix *mix, size_t *errors)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < mix->count; i++) {
        PgQueryFingerprintResult r = pg_query_fingerprint(mix->sql[i]);
        if (r.error)
            (*errors)++;
        else
            acc += r.fingerprint;
        pg_query_free_fingerprint_result(r);
    }
    return acc;
}

typedef struct Runner {
    const Mix *mix;
    char *out;
    size_t out_cap;
    uint64_t sink;
    size_t pg_errors;
} Runner;

static void run_pass(Runner *r, Engine e)
{
    switch (e) {
    case ENGINE_SQLNORM_FULL:
        r->sink += pass_sqlnorm(r->mix, r->out, r->out_cap, true);
        break;
    case ENGINE_SQLNORM_NO_TAGS:
        r->sink += pass_sqlnorm(r->mix, r->out, r->out_cap, false);
        break;
    case ENGINE_PG_QUERY:
        r->sink += pass_pg_query(r->mix, &r->pg_errors);
        break;
    default:
        break;
    }
}

/* Passes over the whole mix needed for one round to last at least `min_seconds`. */
static unsigned calibrate(Runner *r, Engine e, double min_seconds)
{
    unsigned passes = 1;
    for (;;) {
        double t0 = now_seconds();
        for (unsigned p = 0; p < passes; p++)
            run_pass(r, e);
        double dt = now_seconds() - t0;
        if (dt >= min_seconds || passes >= (1u << 20))
            return passes;
        double scale = dt > 0 ? min_seconds / dt * 1.2 : 16;
        passes = (unsigned)((double)passes * (scale > 16 ? 16 : scale < 2 ? 2 : scale));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_ROUNDS 101

int main(int argc, char **argv)
{
    const char *path = "tests/corpus/orm_statements.sql";
    int rounds = 7;
    double min_round = 0.25;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--min-round-seconds") == 0 && i + 1 < argc)
            min_round = atof(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc &&
                 (strcmp(argv[i + 1], "sqlnorm") == 0 || strcmp(argv[i + 1], "pg_query") == 0))
            only = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "usage: %s [corpus-file] [--rounds N] [--min-round-seconds S] "
                    "[--only sqlnorm|pg_query]\n",
                    argv[0]);
            return 2;
        } else
            path = argv[i];
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_sqlnorm: --rounds must be 1..%d\n", MAX_ROUNDS);
        return 2;
    }
    Corpus corpus;
    if (!corpus_load(&corpus, path) || corpus.count == 0) {
        fprintf(stderr, "bench_sqlnorm: cannot read corpus %s\n", path);
        return 2;
    }
    Mix mix = {0};
    mix.sql = calloc(corpus.count, sizeof(*mix.sql));
    mix.len = calloc(corpus.count, sizeof(*mix.len));
    if (!mix.sql || !mix.len)
        abort();
    size_t with_markers = 0;
    for (size_t i = 0; i < corpus.count; i++) {
        bool had = false;
        mix.sql[i] = corpus_server_form(corpus.entries[i].sql, corpus.entries[i].len, &had);
        mix.len[i] = strlen(mix.sql[i]);
        mix.bytes += mix.len[i];
        if (mix.len[i] > mix.max_len)
            mix.max_len = mix.len[i];
        with_markers += had;
    }
    mix.count = corpus.count;

    Runner runner = {.mix = &mix};
    runner.out_cap = sqlnorm_output_bound(mix.max_len);
    runner.out = malloc(runner.out_cap);
    if (!runner.out)
        abort();

    bool enabled[ENGINES];
    for (int e = 0; e < ENGINES; e++)
        enabled[e] = !only || (strcmp(only, "pg_query") == 0) == (e == ENGINE_PG_QUERY);

    /* Warm caches and the allocator on both sides, then size each side's round. */
    unsigned passes[ENGINES] = {0};
    for (int e = 0; e < ENGINES; e++) {
        if (!enabled[e])
            continue;
        run_pass(&runner, (Engine)e);
        passes[e] = calibrate(&runner, (Engine)e, min_round);
    }
    runner.pg_errors = 0;

    static double qps[ENGINES][MAX_ROUNDS], mbps[ENGINES][MAX_ROUNDS], ratio[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        for (int e = 0; e < ENGINES; e++) {
            if (!enabled[e])
                continue;
            double t0 = now_seconds();
            for (unsigned p = 0; p < passes[e]; p++)
                run_pass(&runner, (Engine)e);
            double dt = now_seconds() - t0;
            qps[e][r] = (double)mix.count * passes[e] / dt;
            mbps[e][r] = (double)mix.bytes * passes[e] / dt / 1e6;
        }
        ratio[r] = only ? 0 : qps[ENGINE_SQLNORM_FULL][r] / qps[ENGINE_PG_QUERY][r];
    }

    printf("normalizer benchmark: %zu statements (%zu with client markers, given to both sides "
           "as $n), %zu bytes, average %.0f bytes\n",
           mix.count, with_markers, mix.bytes, (double)mix.bytes / (double)mix.count);
    printf("corpus %s; %d interleaved rounds, each >= %.2f s of CPU time per engine; medians\n\n",
           path, rounds, min_round);
    printf("| %-34s | %12s | %9s | %9s |\n", "engine", "queries/s", "MB/s", "us/query");
    printf("|%.36s|%.14s|%.11s|%.11s|\n", "------------------------------------", "--------------",
           "-----------", "-----------");
    double med_qps[ENGINES], med_mbps[ENGINES];
    for (int e = 0; e < ENGINES; e++) {
        if (!enabled[e])
            continue;
        med_qps[e] = median(qps[e], rounds);
        med_mbps[e] = median(mbps[e], rounds);
        printf("| %-34s | %12.0f | %9.1f | %9.2f |\n", engine_name[e], med_qps[e], med_mbps[e],
               1e6 / med_qps[e]);
    }
    double med_ratio = median(ratio, rounds);
    if (!only)
        printf("\nratio sqlnorm (full) / pg_query: %.1fx (median of per-round ratios; min %.1fx, "
               "max %.1fx)\n",
               med_ratio, ratio[0], ratio[rounds - 1]);
    if (!only)
        printf("target >= 10x and >= 300 MB/s: %s\n",
               med_ratio >= 10 && med_mbps[ENGINE_SQLNORM_FULL] >= 300 ? "met" : "NOT met");
    if (runner.pg_errors)
        printf("note: pg_query rejected %zu statement executions (parse errors)\n",
               runner.pg_errors);
    printf("(checksum %016llx)\n", (unsigned long long)runner.sink);

    for (size_t i = 0; i < mix.count; i++)
        free(mix.sql[i]);
    free(mix.sql);
    free(mix.len);
    free(runner.out);
    corpus_free(&corpus);
    /* libpg_query 15-4.0 crashes in pg_query_exit() when it was never called before. */
    if (enabled[ENGINE_PG_QUERY])
        pg_query_exit();
    return 0;
}
