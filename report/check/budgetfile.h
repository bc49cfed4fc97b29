/* report/check/budgetfile — the budget file of `pgtally check` (docs/budgets.md).
 *
 * Owns: parsing a git-config-style INI file (libinih does the line syntax: comments, `key =
 * value`, the line number of a syntax error) into a Budget: default limits, per-route
 * overrides of every limit, and the ignore list; every semantic check (unknown section or
 * key, bad value, a key or section given twice) with the FILE:LINE of the offending line;
 * and resolving the effective limits of one route. Knows nothing about report files. */
#ifndef PGTALLY_REPORT_BUDGETFILE_H
#define PGTALLY_REPORT_BUDGETFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The per-request limits: a request fails when its figure is above the limit. */
typedef enum BudgetKey {
    BUDGET_MAX_QUERIES,    /* the request's statements */
    BUDGET_MAX_N_PLUS_ONE, /* n_plus_one findings (on fingerprints not ignored) */
    BUDGET_MAX_DUPLICATES, /* exact repeats (ignored fingerprints' repeats not counted) */
    BUDGET_MAX_DB_TIME_MS, /* the request's DB time, milliseconds */
    BUDGET_MAX_ROWS,       /* rows returned to the request */
    BUDGET_N_KEYS,
} BudgetKey;

/* Whether a section says anything about a limit. A route override wins over [defaults];
 * `off` lifts a default for one route. */
typedef enum BudgetState {
    BUDGET_UNSET = 0, /* not given here: inherit (from [defaults]; unlimited there) */
    BUDGET_OFF,       /* explicitly unlimited */
    BUDGET_SET,
} BudgetState;

typedef struct BudgetLimit {
    BudgetState state;
    uint64_t value;
    int line; /* where it was set; 0 when unset */
} BudgetLimit;

/* --baseline growth of a route's mean queries per request. */
typedef struct BudgetGrowth {
    BudgetState state;
    bool percent; /* value is a percentage of the baseline, else queries per request */
    double value;
    int line;
} BudgetGrowth;

typedef struct BudgetLimits {
    BudgetLimit limit[BUDGET_N_KEYS];
    BudgetGrowth growth;
} BudgetLimits;

typedef struct BudgetRoute {
    char *route; /* exact match on the request's route ("" = unlabelled requests) */
    int line;    /* of its [route "..."] header */
    BudgetLimits limits;
} BudgetRoute;

/* The most a budget file may hold; beyond, loading fails naming the line. Each bounds the
 * memory and time of loading a file nobody would write by hand. */
#define BUDGET_MAX_LINES 1000000
#define BUDGET_MAX_ROUTES 200000  /* [route "..."] sections */
#define BUDGET_MAX_IGNORES 200000 /* fingerprint and route entries of [ignore] */

typedef struct BudgetRouteSlot {
    uint64_t hash;
    size_t index; /* into routes, plus one; 0 = empty */
} BudgetRouteSlot;

typedef struct Budget {
    char *path;
    BudgetLimits defaults;
    BudgetRoute *routes;
    size_t n_routes;
    size_t routes_cap;
    /* The routes by name (open addressing, at most half full), so that finding one, and the
     * check that each is given once, costs the same with 10 routes or 100000. */
    BudgetRouteSlot *route_slots;
    size_t route_slots_cap; /* a power of two */
    uint64_t route_seed;
    uint64_t load_probes;            /* index slots examined while loading (linear in the routes) */
    char (*ignore_fingerprints)[17]; /* lowercase 16-hex fingerprints */
    size_t n_ignore_fingerprints;
    char **ignore_routes; /* routes skipped entirely */
    size_t n_ignore_routes;
} Budget;

/* Reads and validates the budget file at `path`. On failure returns NULL with
 * "PATH:LINE: problem" (or "PATH: problem" when the file cannot be read) in err. */
Budget *budget_load(const char *path, char *err, size_t err_len);

void budget_free(Budget *budget);

/* The limits in force for `route`: its [route] section over [defaults]. Never fails. */
BudgetLimits budget_limits_for(const Budget *budget, const char *route);

/* True when `route` has its own [route "..."] section. */
bool budget_has_route(const Budget *budget, const char *route);

/* True when the 16-hex `fingerprint` (any case) is on the [ignore] list. */
bool budget_ignores_fingerprint(const Budget *budget, const char *fingerprint);

/* True when `route` is on the [ignore] list (`route = ...`). */
bool budget_ignores_route(const Budget *budget, const char *route);

/* True when the budget sets at least one limit (a max_* key or max_growth with a value, in
 * [defaults] or any [route]): a budget that sets none would pass every run. */
bool budget_sets_limits(const Budget *budget);

/* The key's name in the file, e.g. "max_queries". */
const char *budget_key_name(BudgetKey key);

#endif
