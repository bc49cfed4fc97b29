/* tests/unit/tally_flood — hash flooding of the tally's request table, measured.
 *
 * Opens `--keys` requests whose request_id tags all share one bucket under an unseeded
 * (seed 0) hash, then feeds `--rounds` more statements to each, and prints one JSON line:
 * the longest bucket chain and the CPU time per statement. `--seed0` runs the tally with the
 * seed fixed at 0 (the table before it was seeded); `--spread` uses ordinary ids instead of
 * colliding ones, for the baseline. integration_adversarial runs it; so can a person:
 *   tally_flood --keys 5000 --seed0 ; tally_flood --keys 5000 ; tally_flood --spread */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/tally.h"
#include "tally_collide.h"

static void drop_request(void *ctx, RequestRecord *r)
{
    (*(uint64_t *)ctx)++;
    request_record_free(r);
}

static void drop_fingerprint(void *ctx, FingerprintRecord *r)
{
    (void)ctx;
    fingerprint_record_free(r);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void feed(Tally *t, const char *id, uint64_t conn, uint64_t values, int64_t at)
{
    SqlTag tag = {.key = "request_id", .key_len = 10, .value = id, .value_len = strlen(id)};
    TallyStatement st = {0};
    st.conn_id = conn;
    st.fingerprint = 0xabc;
    st.values_hash = values;
    st.normalized = "select * from t where id = $1";
    st.normalized_len = strlen(st.normalized);
    st.tags = &tag;
    st.n_tags = 1;
    st.application_name = "";
    st.command = "SELECT";
    st.sqlstate = "";
    st.start_us = at;
    st.end_us = at + 1;
    tally_statement(t, &st);
}

int main(int argc, char **argv)
{
    size_t keys = 2000, rounds = 20;
    bool seed0 = false, spread = false;
    static const struct option longopts[] = {{"keys", required_argument, NULL, 'k'},
                                             {"rounds", required_argument, NULL, 'r'},
                                             {"seed0", no_argument, NULL, '0'},
                                             {"spread", no_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'k':
            keys = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rounds = strtoul(optarg, NULL, 10);
            break;
        case '0':
            seed0 = true;
            break;
        case 's':
            spread = true;
            break;
        default:
            fprintf(stderr, "usage: tally_flood [--keys N] [--rounds N] [--seed0] [--spread]\n");
            return 2;
        }
    }
    TallyOptions o;
    tally_options_default(&o);
    o.hash_seed_fixed = seed0;
    o.hash_seed = 0;
    if (keys == 0 || keys > o.max_open_requests)
        keys = o.max_open_requests;
    /* The request table has pow2(max_open_requests) buckets: 16384 by default. */
    size_t buckets = 1;
    while (buckets < o.max_open_requests)
        buckets <<= 1;
    char(*ids)[COLLIDE_ID_MAX] = calloc(keys, sizeof *ids);
    if (!ids)
        return 1;
    if (spread)
        for (size_t i = 0; i < keys; i++)
            snprintf(ids[i], COLLIDE_ID_MAX, "r%zu", i);
    else
        collide_ids(ids, keys, buckets);

    uint64_t finished = 0;
    Tally *t = tally_new(&o, drop_request, drop_fingerprint, &finished);
    if (!t)
        return 1;
    int64_t at = 1000000;
    double start = cpu_seconds();
    for (size_t r = 0; r <= rounds; r++)
        for (size_t i = 0; i < keys; i++)
            feed(t, ids[i], 1 + i % 64, r, at++);
    double cpu = cpu_seconds() - start;
    size_t chain = tally_max_request_chain(t);
    size_t statements = keys * (rounds + 1);
    printf("{\"keys\":%zu,\"statements\":%zu,\"ids\":\"%s\",\"seed\":\"%s\",\"max_chain\":%zu,"
           "\"cpu_s\":%.4f,\"ns_per_statement\":%.0f}\n",
           keys, statements, spread ? "spread" : "colliding", seed0 ? "0" : "random", chain, cpu,
           cpu * 1e9 / (double)statements);
    tally_free(t);
    free(ids);
    return 0;
}
