/* report/merge — `pgtally merge`: copying runs between report stores.
 *
 * Owns: combining SQLite report files (e.g. CI shard artifacts) into one, or pushing them
 * into a PostgreSQL store (`merge --to`). Each input run is
 * copied whole, in one transaction, with its requests, per-request fingerprints, findings,
 * statements and the fingerprint texts they use. Runs keep their identity (runs.uuid), label
 * and instance; request ids are renumbered; fingerprint texts are unified (the text already
 * in the output wins, a missing sample is filled in).
 *
 * Idempotent: a run whose uuid the output already holds is skipped, unless the output's copy
 * is an unfinished snapshot (no end time) and the input's run has ended: then the output's
 * copy is replaced. Inputs of schema version 1 or 2 have no uuid: theirs is derived from the
 * run row (started_us, version, settings, id), so merging them again is idempotent too.
 * Inputs of a schema newer than this pgtally's are refused before anything is written. */
#ifndef PGTALLY_REPORT_MERGE_H
#define PGTALLY_REPORT_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a merge did, summed over its inputs. */
typedef struct MergeStats {
    uint64_t runs_added;
    uint64_t runs_replaced; /* unfinished snapshots replaced by the ended run */
    uint64_t runs_skipped;  /* already there */
    uint64_t requests;      /* copied */
    uint64_t statements;    /* timeline rows copied */
    uint64_t fingerprints;  /* texts new to the output */
} MergeStats;

/* Checks that `in_path` is a pgtally report this binary can read (not newer, not another
 * application's file). False with "path: reason" in err. */
bool merge_check_input(const char *in_path, char *err, size_t err_len);

/* Copies every run of the SQLite report `in_path` into the SQLite report `out_path`
 * (created 0600 with the store's schema when missing). Adds to `stats`. False with
 * "path: reason" in err; runs copied before the failure stay (each is its own transaction). */
bool merge_sqlite(const char *out_path, const char *in_path, MergeStats *stats, char *err,
                  size_t err_len);

typedef struct PgTool PgTool;

/* Copies every run of the SQLite report `in_path` into the PostgreSQL store `t` is connected
 * to (report/pgtool, opened with create), one transaction per run, under the same rules:
 * request ids come from the store's sequence, fingerprint texts are upserted. */
bool merge_to_pg(PgTool *t, const char *in_path, MergeStats *stats, char *err, size_t err_len);


#endif
