/* protocol/hashseed — the seed of hash tables keyed by bytes a client chooses.
 *
 * Owns: drawing a seed no client can know, so that keys picked offline to share one bucket
 * (hash flooding) spread out like any others. Every such table (the tracker's statement and
 * portal names, the tally's request tags and fingerprints) draws its seed here. */
#ifndef PGTALLY_PROTOCOL_HASHSEED_H
#define PGTALLY_PROTOCOL_HASHSEED_H

#include <stdint.h>

/* 64 random bits from the kernel; never fails (see hashseed.c for the fallback). */
uint64_t hashseed_random(void);

#endif
