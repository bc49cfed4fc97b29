/* tests/fuzz/fuzz_budgetfile.c — libFuzzer target for report/budgetfile, the budget file of
 * `pgtally check`: the input is the file's bytes (through fuzz_memfile.h, as the parser opens
 * files by path).
 *
 * Invariants (a violation aborts, so the fuzzer keeps the input):
 *   - no crash, no overread, no leak (budget_free after every success);
 *   - a refused file has an error naming the file, as "PATH:LINE: ..." or "PATH: ...";
 *   - a loaded budget reads back: every limit set is in range and has its line, every route
 *     is found with its own overrides winning over [defaults], every ignored fingerprint is
 *     16 lowercase hex digits and ignored in any case, every ignored route is ignored;
 *   - slow inputs: libFuzzer's -timeout (run_fuzzer.sh). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/check/budgetfile.h"
#include "tests/fuzz/fuzz_memfile.h"

#define FUZZ_REQUIRE(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_budgetfile: invariant failed: %s (%s:%d)\n", what, __FILE__,     \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_check_limits(const BudgetLimits *l)
{
    for (int k = 0; k < BUDGET_N_KEYS; k++) {
        const BudgetLimit *x = &l->limit[k];
        FUZZ_REQUIRE(x->state == BUDGET_UNSET || x->state == BUDGET_OFF || x->state == BUDGET_SET,
                     "limit state");
        FUZZ_REQUIRE((x->state == BUDGET_UNSET) == (x->line == 0), "a limit given has its line");
        FUZZ_REQUIRE(x->state != BUDGET_SET || x->value <= 1000000000000000ULL, "limit in range");
    }
    FUZZ_REQUIRE((l->growth.state == BUDGET_UNSET) == (l->growth.line == 0),
                 "max_growth given has its line");
    FUZZ_REQUIRE(l->growth.state != BUDGET_SET || l->growth.value >= 0, "growth not negative");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_memfile(data, size);
    char err[1024];
    err[0] = '\0';
    Budget *b = budget_load(path, err, sizeof err);
    if (b == NULL) {
        size_t plen = strlen(path);
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL, "error terminated");
        FUZZ_REQUIRE(strncmp(err, path, plen) == 0 && (err[plen] == ':'), "error names the file");
        FUZZ_REQUIRE(strlen(err) > plen + 2, "error says something");
        return 0;
    }
    fuzz_check_limits(&b->defaults);
    for (size_t i = 0; i < b->n_routes; i++) {
        const BudgetRoute *r = &b->routes[i];
        FUZZ_REQUIRE(r->route != NULL && r->line > 0, "route named, with its line");
        fuzz_check_limits(&r->limits);
        FUZZ_REQUIRE(budget_has_route(b, r->route), "route found");
        BudgetLimits eff = budget_limits_for(b, r->route);
        for (int k = 0; k < BUDGET_N_KEYS; k++) {
            const BudgetLimit *want = r->limits.limit[k].state != BUDGET_UNSET
                                          ? &r->limits.limit[k]
                                          : &b->defaults.limit[k];
            FUZZ_REQUIRE(eff.limit[k].state == want->state && eff.limit[k].line == want->line,
                         "route limit over defaults");
        }
        for (size_t j = 0; j < i; j++)
            FUZZ_REQUIRE(strcmp(b->routes[j].route, r->route) != 0, "routes distinct");
    }
    for (size_t i = 0; i < b->n_ignore_fingerprints; i++) {
        char upper[17];
        const char *fp = b->ignore_fingerprints[i];
        FUZZ_REQUIRE(strlen(fp) == 16, "fingerprint length");
        for (int c = 0; c < 16; c++) {
            FUZZ_REQUIRE(strchr("0123456789abcdef", fp[c]) != NULL, "fingerprint lowercase hex");
            upper[c] = (char)toupper((unsigned char)fp[c]);
        }
        upper[16] = '\0';
        FUZZ_REQUIRE(budget_ignores_fingerprint(b, fp) && budget_ignores_fingerprint(b, upper),
                     "fingerprint ignored in any case");
    }
    for (size_t i = 0; i < b->n_ignore_routes; i++)
        FUZZ_REQUIRE(budget_ignores_route(b, b->ignore_routes[i]), "route ignored");
    budget_free(b);
    return 0;
}
