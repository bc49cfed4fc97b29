/* proxy/demo/demo_workload — an ORM-like API client for `pgtally demo`.
 *
 * Lookups by key go through the extended protocol with parameters (PQexecParams), as ORMs
 * do, so each lookup has one fingerprint and its values differ per call: that is what makes
 * the customer loop an N+1 and the repeated setting read a duplicate in the report. */
#include "proxy/demo/demo_workload.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_PAGE 10 /* orders per page */

/* libpq parameters for `t` (keys/vals hold 8). Later entries override what the expanded
 * conninfo says (libpq's documented rule); hostaddr too, in case the URL carried one. */
static void target_params(const DemoTarget *t, const char *options, const char **keys,
                          const char **vals)
{
    int n = 0;
    keys[n] = "dbname", vals[n++] = t->conninfo;
    if (t->host) {
        keys[n] = "host", vals[n++] = t->host;
        keys[n] = "hostaddr", vals[n++] = t->host;
    }
    if (t->port)
        keys[n] = "port", vals[n++] = t->port;
    if (options)
        keys[n] = "options", vals[n++] = options;
    keys[n] = "application_name", vals[n++] = "pgtally-demo";
    keys[n] = NULL, vals[n] = NULL;
}

bool demo_target_ready(const DemoTarget *t)
{
    const char *keys[8], *vals[8];
    target_params(t, NULL, keys, vals);
    return PQpingParams(keys, vals, 1) == PQPING_OK;
}

/* The server's NOTICEs ("drop cascades to ...") would clutter the demo's output. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_to(const DemoTarget *t, const char *schema, char *err, size_t err_len)
{
    char options[128];
    snprintf(options, sizeof options, "-c search_path=%s", schema);
    const char *keys[8], *vals[8];
    target_params(t, options, keys, vals);
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn)
        PQsetNoticeProcessor(conn, ignore_notice, NULL);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, err_len, "connecting to %s%s%s: %s", t->host ? t->host : "the server",
                 t->port ? ":" : "", t->port ? t->port : "",
                 conn ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs one statement; false with the statement and the server's message in err. */
static bool exec(PGconn *conn, const char *sql, int n_params, const char *const *params,
                 PGresult **keep, char *err, size_t err_len)
{
    PGresult *res = n_params ? PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0)
                             : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        snprintf(err, err_len, "%.80s...: %s", sql, PQerrorMessage(conn));
        PQclear(res);
        return false;
    }
    if (keep)
        *keep = res;
    else
        PQclear(res);
    return true;
}

bool demo_workload_setup(const DemoTarget *direct, const char *schema, char *err, size_t err_len)
{
    PGconn *conn = connect_to(direct, schema, err, err_len);
    if (!conn)
        return false;
    char create[160];
    snprintf(create, sizeof create, "CREATE SCHEMA %s", schema);
    static const char tables[] =
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);"
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,"
        "  total numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());"
        "CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);"
        "INSERT INTO customers SELECT g, 'Customer ' || g, 'customer' || g || '@example.com'"
        "  FROM generate_series(1, 8) g;"
        /* 4 customers among any 10 consecutive orders: the N+1 loop repeats lookups too. */
        "INSERT INTO orders (id, customer_id, total)"
        "  SELECT g, 1 + g % 4, (g * 7 % 100) + 0.99 FROM generate_series(1, 40) g;"
        "INSERT INTO settings VALUES ('currency', 'EUR'), ('tax_rate', '0.20');";
    bool ok = exec(conn, create, 0, NULL, NULL, err, err_len) &&
              exec(conn, tables, 0, NULL, NULL, err, err_len);
    PQfinish(conn);
    return ok;
}

bool demo_workload_teardown(const DemoTarget *direct, const char *schema, char *err, size_t err_len)
{
    PGconn *conn = connect_to(direct, schema, err, err_len);
    if (!conn)
        return false;
    char drop[160];
    snprintf(drop, sizeof drop, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    bool ok = exec(conn, drop, 0, NULL, NULL, err, err_len);
    PQfinish(conn);
    return ok;
}

/* One simulated HTTP request: the sqlcommenter tail its ORM middleware appends. */
typedef struct Request {
    PGconn *conn;
    char tail[160];
    DemoWorkloadStats *stats;
} Request;

static bool req_exec(Request *rq, const char *sql, int n_params, const char *const *params,
                     PGresult **keep, char *err, size_t err_len)
{
    char text[1024];
    snprintf(text, sizeof text, "%s %s", sql, rq->tail);
    rq->stats->statements++;
    return exec(rq->conn, text, n_params, params, keep, err, err_len);
}

static const char sql_setting[] = "SELECT value FROM settings WHERE key = $1";
static const char sql_page[] =
    "SELECT id, customer_id, total FROM orders ORDER BY id DESC LIMIT 10";
static const char sql_customer[] = "SELECT id, name, email FROM customers WHERE id = $1";
static const char sql_customers[] =
    "SELECT id, name, email FROM customers WHERE id = ANY($1::int[])";

/* GET /api/orders as a naive ORM serves it. */
static bool orders_n_plus_one(Request *rq, char *err, size_t err_len)
{
    const char *currency[] = {"currency"};
    PGresult *page = NULL;
    if (!req_exec(rq, sql_setting, 1, currency, NULL, err, err_len) ||
        !req_exec(rq, sql_page, 0, NULL, &page, err, err_len))
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(page); i++) {
        const char *customer_id[] = {PQgetvalue(page, i, 1)};
        ok = req_exec(rq, sql_customer, 1, customer_id, NULL, err, err_len);
    }
    PQclear(page);
    /* The serializer reads the currency again: a duplicate. */
    return ok && req_exec(rq, sql_setting, 1, currency, NULL, err, err_len);
}

/* GET /api/orders/fixed: the customers prefetched in one statement, the setting once. */
static bool orders_fixed(Request *rq, char *err, size_t err_len)
{
    const char *currency[] = {"currency"};
    PGresult *page = NULL;
    if (!req_exec(rq, sql_setting, 1, currency, NULL, err, err_len) ||
        !req_exec(rq, sql_page, 0, NULL, &page, err, err_len))
        return false;
    char ids[DEMO_PAGE * 12 + 3] = "{";
    size_t n = 1;
    for (int i = 0; i < PQntuples(page) && i < DEMO_PAGE; i++)
        n +=
            (size_t)snprintf(ids + n, sizeof ids - n, "%s%s", i ? "," : "", PQgetvalue(page, i, 1));
    snprintf(ids + n, sizeof ids - n, "}");
    PQclear(page);
    const char *params[] = {ids};
    return req_exec(rq, sql_customers, 1, params, NULL, err, err_len);
}

bool demo_workload_run(const DemoTarget *via, const char *schema, unsigned rounds,
                       volatile sig_atomic_t *stop, DemoWorkloadStats *stats, char *err,
                       size_t err_len)
{
    *stats = (DemoWorkloadStats){0};
    PGconn *conn = connect_to(via, schema, err, err_len);
    if (!conn)
        return false;
    Request rq = {.conn = conn, .stats = stats};
    bool ok = true;
    for (unsigned i = 1; ok && i <= rounds; i++) {
        /* sqlcommenter: keys sorted, values URL-encoded and single-quoted. */
        snprintf(rq.tail, sizeof rq.tail,
                 "/*framework='pgtally-demo',request_id='orders-%u',route='%%2Fapi%%2Forders'*/",
                 i);
        ok = !*stop && orders_n_plus_one(&rq, err, err_len);
        if (ok)
            stats->requests++;
        snprintf(rq.tail, sizeof rq.tail,
                 "/*framework='pgtally-demo',request_id='orders-fixed-%u',"
                 "route='%%2Fapi%%2Forders%%2Ffixed'*/",
                 i);
        ok = ok && !*stop && orders_fixed(&rq, err, err_len);
        if (ok)
            stats->requests++;
    }
    if (!ok && *stop)
        snprintf(err, err_len, "interrupted");
    PQfinish(conn);
    return ok;
}
