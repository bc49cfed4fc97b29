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

/* Fills ids[0..n) with NUL-terminated ids of at most COLLIDE_ID_MAX bytes: "f" and the hex
 * digits of 0, 1, 2... that land in bucket 0. The search tries ~n * buckets keys (tens of
 * millions), so the hex counter is stepped in place rather than printed each time. */
static inline void collide_ids(char (*ids)[COLLIDE_ID_MAX], size_t n, size_t buckets)
{
    static const char prefix[] = "request_id:f";
    const size_t pre = sizeof prefix - 1;
    char key[64];
    memcpy(key, prefix, pre);
    key[pre] = '0';
    size_t len = pre + 1; /* key[pre..len) holds the counter in lowercase hex */
    size_t found = 0;
    while (found < n) {
        if ((XXH3_64bits(key, len) & (buckets - 1)) == 0) {
            snprintf(ids[found++], COLLIDE_ID_MAX, "%.*s", (int)(len - pre + 1), key + pre - 1);
        }
        size_t d = len;
        while (d > pre && key[d - 1] == 'f')
            key[--d] = '0';
        if (d == pre) { /* all digits were f: one digit more */
            if (len + 1 >= sizeof key)
                break;
            memmove(key + pre + 1, key + pre, len - pre);
            key[pre] = '1';
            len++;
        } else {
            key[d - 1] = key[d - 1] == '9' ? 'a' : (char)(key[d - 1] + 1);
        }
    }
}

#endif
