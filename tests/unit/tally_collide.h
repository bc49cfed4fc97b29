/* tests/unit/tally_collide.h — request ids chosen offline to share one bucket of the tally's
 * request table when its hash is unseeded (seed 0), as an attacker would pick them.
 *
 * The tally keys a request_id-tagged request "request_id:<value>" and picks its bucket from
 * the low bits of XXH3 of that key; with `buckets` buckets (a power of two), every id below
 * lands in bucket 0 under seed 0. Shared by test_tally and tally_flood. */
#ifndef PGTALLY_TESTS_TALLY_COLLIDE_H
#define PGTALLY_TESTS_TALLY_COLLIDE_H

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#define COLLIDE_ID_MAX 24

/* Fills ids[0..n) with NUL-terminated ids of at most COLLIDE_ID_MAX bytes. */
static inline void collide_ids(char (*ids)[COLLIDE_ID_MAX], size_t n, size_t buckets)
{
    char key[64];
    size_t found = 0;
    for (unsigned long long i = 0; found < n; i++) {
        int len = snprintf(key, sizeof key, "request_id:f%llx", i);
        if ((XXH3_64bits(key, (size_t)len) & (buckets - 1)) == 0)
            snprintf(ids[found++], COLLIDE_ID_MAX, "f%llx", i);
    }
}

#endif
