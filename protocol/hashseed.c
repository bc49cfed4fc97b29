/* protocol/hashseed — see hashseed.h. The one system call in protocol/: it reads no input
 * and its result changes no output, only which bucket a key lands in. */
#include "protocol/hashseed.h"

#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

/* getrandom only fails on kernels without it or when interrupted; then the clock, pid and an
 * address still vary per process, which is weaker but never stops the proxy from starting. */
uint64_t hashseed_random(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t mix[4] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
                       (uint64_t)(uintptr_t)&seed};
    return XXH3_64bits(mix, sizeof mix);
}
