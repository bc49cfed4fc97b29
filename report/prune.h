/* report/prune — `pgtally prune`: retention for a report store.
 *
 * Owns: choosing the runs older than an age (by their latest sign of life: end, heartbeat,
 * snapshot or start), sparing the runs of the N most recently started labels, and deleting
 * each chosen run with everything that hangs off it (statements, per-request fingerprints,
 * findings, requests, then the run) in bounded transactions, so a proxy writing to the same
 * store is never blocked for long. Fingerprint texts are deleted last, and only those no
 * remaining row references that were first seen before the cutoff (a live proxy may have
 * written a text whose first request is still in its queue). */
#ifndef PGTALLY_REPORT_PRUNE_H
#define PGTALLY_REPORT_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Requests deleted per transaction unless PruneOptions says otherwise. */
#define PRUNE_DEFAULT_BATCH 1000

typedef struct PruneOptions {
    int64_t cutoff_us;  /* runs whose latest activity is before this (µs since the epoch) */
    size_t keep_labels; /* keep every run of the N most recently started labels; 0: none */
    bool dry_run;       /* count only */
    size_t batch;       /* requests per transaction; 0: PRUNE_DEFAULT_BATCH */
} PruneOptions;

typedef struct PruneStats {
    uint64_t runs, requests, statements, fingerprints;
} PruneStats;

/* Prunes the SQLite report at `path`. With dry_run, fills `stats` with what would go and
 * changes nothing. False with "path: reason" in err; what was deleted before a failure stays
 * deleted (and is counted in stats). */
bool prune_sqlite(const char *path, const PruneOptions *opts, PruneStats *stats, char *err,
                  size_t err_len);

typedef struct PgTool PgTool;

/* The same for the PostgreSQL store `t` is connected to (report/pgtool). */
bool prune_pg(PgTool *t, const PruneOptions *opts, PruneStats *stats, char *err, size_t err_len);

/* Parses an age such as "30d", "12h", "90m", "45s" or "2w" into microseconds. */
bool prune_parse_age(const char *s, int64_t *out_us);

#endif
