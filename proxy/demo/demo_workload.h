/* proxy/demo/demo_workload — the built-in workload of `pgtally demo`: a small libpq client that
 * behaves like an ORM-backed HTTP API tagging its SQL with sqlcommenter comments.
 *
 * Owns: the demo schema (customers, orders, settings in a schema of its own, created and
 * dropped over a direct connection, so it never shows up in the report) and two endpoints
 * run a number of times each through the proxy:
 *   /api/orders        lists 10 orders, then loads each order's customer one by one (N+1)
 *                      and reads the same setting twice (duplicates);
 *   /api/orders/fixed  the same page with the customers batched (`id = ANY($1)`) and the
 *                      setting read once.
 * Each simulated HTTP request carries its own request_id and route tags. Blocking libpq. */
#ifndef PGTALLY_PROXY_DEMO_WORKLOAD_H
#define PGTALLY_PROXY_DEMO_WORKLOAD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#define DEMO_ROUTE_N_PLUS_ONE "/api/orders"
#define DEMO_ROUTE_FIXED "/api/orders/fixed"

/* Where to connect: a libpq connection string or URL, optionally with host and port
 * replaced (to go through the proxy with the same user, password and database). */
typedef struct DemoTarget {
    const char *conninfo;
    const char *host; /* NULL: keep conninfo's */
    const char *port; /* NULL: keep conninfo's */
} DemoTarget;

typedef struct DemoWorkloadStats {
    unsigned requests;   /* simulated HTTP requests completed */
    unsigned statements; /* statements sent */
} DemoWorkloadStats;

/* True when the server at `t` accepts connections (PQping: no authentication needed). */
bool demo_target_ready(const DemoTarget *t);

/* Creates schema `schema` (must not exist) with the demo tables and rows. */
bool demo_workload_setup(const DemoTarget *direct, const char *schema, char *err, size_t err_len);

/* Runs `rounds` requests of each endpoint through `via`; stops early (returning false with
 * "interrupted") when *stop becomes non-zero. */
bool demo_workload_run(const DemoTarget *via, const char *schema, unsigned rounds,
                       volatile sig_atomic_t *stop, DemoWorkloadStats *stats, char *err,
                       size_t err_len);

/* Drops schema `schema` and everything in it. */
bool demo_workload_teardown(const DemoTarget *direct, const char *schema, char *err,
                            size_t err_len);

#endif
