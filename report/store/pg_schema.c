/* report/store/pg_schema — see pg_schema.h. */
#include "report/store/pg_schema.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/errfmt.h"

/* Flags are smallint 0/1 and figures bigint, as in the SQLite file, so one set of queries
 * (max(is_write), sum(truncated), complete = 1 ...) reads both stores. Fingerprints and
 * values hashes are 16 lowercase hex digits (text), as everywhere else.
 *
 * The per-statement tables (statements, request_fingerprints, findings) carry no foreign
 * keys: each referencing row would cost a trigger and an index probe, a third of the write
 * throughput, and the writer inserts a request and its children in one transaction anyway.
 * Deleting a run (pgtally prune) deletes its children explicitly. */
const char *const store_pg_migrations[STORE_PG_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE runs ("
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  uuid text NOT NULL UNIQUE,"
    "  started_us bigint NOT NULL,"
    "  ended_us bigint,"
    "  flushed_us bigint,"
    "  version text NOT NULL,"
    "  settings text NOT NULL,"
    "  label text NOT NULL DEFAULT '',"
    "  instance text NOT NULL DEFAULT '',"
    "  pid bigint,"
    "  heartbeat_us bigint,"
    "  heartbeat_statements bigint,"
    "  statements bigint NOT NULL DEFAULT 0,"
    "  requests bigint NOT NULL DEFAULT 0,"
    "  dropped_requests bigint NOT NULL DEFAULT 0,"
    "  dropped_statements bigint NOT NULL DEFAULT 0,"
    "  dropped_fingerprints bigint NOT NULL DEFAULT 0,"
    "  untracked_statements bigint NOT NULL DEFAULT 0,"
    "  complete smallint NOT NULL DEFAULT 0);"
    "CREATE INDEX runs_label ON runs (label);"
    "CREATE INDEX runs_started_us ON runs (started_us);"
    "CREATE TABLE fingerprints ("
    "  fingerprint text PRIMARY KEY,"
    "  normalized text NOT NULL,"
    "  command text NOT NULL,"
    "  sample text,"
    "  first_seen_us bigint NOT NULL);"
    "CREATE SEQUENCE requests_id_seq INCREMENT BY 1024 MINVALUE 1 START 1;"
    "CREATE TABLE requests ("
    "  id bigint PRIMARY KEY,"
    "  run_id bigint NOT NULL REFERENCES runs (id),"
    "  key text NOT NULL,"
    "  route text NOT NULL,"
    "  tags text NOT NULL,"
    "  conn_id bigint NOT NULL,"
    "  start_us bigint NOT NULL,"
    "  end_us bigint NOT NULL,"
    "  end_reason text NOT NULL,"
    "  statements bigint NOT NULL,"
    "  setup_statements bigint NOT NULL,"
    "  distinct_fingerprints bigint NOT NULL,"
    "  duplicates bigint NOT NULL,"
    "  errors bigint NOT NULL,"
    "  transactions bigint NOT NULL,"
    "  db_time_us bigint NOT NULL,"
    "  rows bigint NOT NULL,"
    "  bytes bigint NOT NULL,"
    "  truncated smallint NOT NULL,"
    "  timeline_dropped bigint NOT NULL);"
    "CREATE INDEX requests_run_id ON requests (run_id);"
    "CREATE INDEX requests_route ON requests (route);"
    "CREATE TABLE request_fingerprints ("
    "  request_id bigint NOT NULL,"
    "  fingerprint text NOT NULL,"
    "  calls bigint NOT NULL,"
    "  distinct_values bigint NOT NULL,"
    "  total_time_us bigint NOT NULL,"
    "  rows bigint NOT NULL,"
    "  bytes bigint NOT NULL,"
    "  errors bigint NOT NULL,"
    "  is_write smallint NOT NULL);"
    "CREATE INDEX request_fingerprints_request_id ON request_fingerprints (request_id);"
    "CREATE TABLE findings ("
    "  request_id bigint NOT NULL,"
    "  kind text NOT NULL,"
    "  fingerprint text,"
    "  count bigint NOT NULL,"
    "  distinct_values bigint NOT NULL,"
    "  is_write smallint NOT NULL,"
    "  by_bytes smallint NOT NULL);"
    "CREATE INDEX findings_request_id ON findings (request_id);"
    "CREATE TABLE statements ("
    "  request_id bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  fingerprint text NOT NULL,"
    "  values_hash text NOT NULL,"
    "  start_us bigint NOT NULL,"
    "  duration_us bigint NOT NULL,"
    "  rows bigint NOT NULL,"
    "  bytes bigint NOT NULL,"
    "  conn_id bigint NOT NULL,"
    "  sqlstate text,"
    "  setup smallint NOT NULL,"
    "  PRIMARY KEY (request_id, seq));",
};

bool store_pg_schema_name_valid(const char *name)
{
    if (!name || !*name || strlen(name) > 63 || isdigit((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

/* The server's primary message, without "ERROR:  " and the trailing newline. */
static const char *result_message(const PqApi *pq, const PGresult *res, PGconn *conn)
{
    const char *m = res ? pq->resultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (m && *m)
        return m;
    m = pq->errorMessage(conn);
    return m && *m ? m : "unknown error";
}

/* Runs `sql` (no parameters, or one text parameter) and checks it succeeded; on failure the
 * message is "<store>: <what>: <server message>" and the result is cleared. */
static PGresult *run(const PqApi *pq, PGconn *conn, const char *sql, const char *param,
                     const char *store, const char *what, char *err, size_t err_len)
{
    PGresult *res =
        param ? pq->execParams(conn, sql, 1, NULL, &param, NULL, NULL, 0) : pq->exec(conn, sql);
    ExecStatusType st = res ? pq->resultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *state = res ? pq->resultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[320];
    snprintf(msg, sizeof msg, "%s", result_message(pq, res, conn));
    msg[strcspn(msg, "\n")] = 0;
    if (state && strcmp(state, "42501") == 0)
        report_err(err, err_len,
                   "%s: %s: %s (the store's role needs the CREATE privilege on the database to "
                   "create the schema once, or an owner creates it and grants the role USAGE, "
                   "CREATE and its tables' privileges)",
                   store, what, msg);
    else
        report_err(err, err_len, "%s: %s: %s", store, what, msg);
    pq->clear(res);
    return NULL;
}

static bool run_ok(const PqApi *pq, PGconn *conn, const char *sql, const char *param,
                   const char *store, const char *what, char *err, size_t err_len)
{
    PGresult *res = run(pq, conn, sql, param, store, what, err, err_len);
    pq->clear(res);
    return res != NULL;
}

/* Version 0 when the schema or its migrations table is absent. */
static bool read_version(const PqApi *pq, PGconn *conn, const char *schema, const char *store,
                         int *version, char *err, size_t err_len)
{
    *version = 0;
    char sql[256];
    PGresult *res = run(pq, conn,
                        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE n.nspname = $1"
                        " AND c.relname = 'schema_migrations'",
                        schema, store, "cannot read the schema version", err, err_len);
    if (!res)
        return false;
    bool present = pq->ntuples(res) > 0;
    pq->clear(res);
    if (!present)
        return true;
    snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM \"%s\".schema_migrations",
             schema);
    res = run(pq, conn, sql, NULL, store, "cannot read the schema version", err, err_len);
    if (!res)
        return false;
    *version = atoi(pq->getvalue(res, 0, 0));
    pq->clear(res);
    return true;
}

bool store_pg_schema_version(const PqApi *pq, PGconn *conn, const char *schema, const char *store,
                             int *version, char *err, size_t err_len)
{
    if (!store_pg_schema_name_valid(schema)) {
        report_err(err, err_len, "%s: invalid schema name \"%s\" (letters, digits, _)", store,
                   schema ? schema : "");
        return false;
    }
    return read_version(pq, conn, schema, store, version, err, err_len);
}

bool store_pg_migrate(const PqApi *pq, PGconn *conn, const char *schema, const char *store,
                      char *err, size_t err_len)
{
    if (!store_pg_schema_name_valid(schema)) {
        report_err(err, err_len, "%s: invalid schema name \"%s\" (letters, digits, _)", store,
                   schema ? schema : "");
        return false;
    }
    char sql[256], what[96];
    int version = 0;
    if (!run_ok(pq, conn, "BEGIN", NULL, store, "cannot begin", err, err_len))
        return false;
    /* Everyone who migrates this schema queues here; the lock ends with the transaction. */
    snprintf(sql, sizeof sql, "SELECT pg_catalog.pg_advisory_xact_lock(%d, hashtext($1))",
             STORE_PG_LOCK_KEY);
    if (!run_ok(pq, conn, sql, schema, store, "cannot take the schema lock", err, err_len) ||
        !read_version(pq, conn, schema, store, &version, err, err_len))
        goto fail;
    if (version > STORE_PG_SCHEMA_VERSION) {
        report_err(err, err_len,
                   "%s: schema \"%s\" is at version %d, newer than this pgtally supports (%d); use "
                   "a newer pgtally or another --db-schema",
                   store, schema, version, STORE_PG_SCHEMA_VERSION);
        goto fail;
    }
    if (version < STORE_PG_SCHEMA_VERSION) {
        /* CREATE SCHEMA IF NOT EXISTS checks the privilege before existence: look first, so
         * a role without CREATE can use a schema an owner made for it. */
        PGresult *res = run(pq, conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                            schema, store, "cannot look up the schema", err, err_len);
        if (!res)
            goto fail;
        bool exists = pq->ntuples(res) > 0;
        pq->clear(res);
        snprintf(what, sizeof what, "cannot create the schema \"%s\"", schema);
        snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\"", schema);
        if (!exists && !run_ok(pq, conn, sql, NULL, store, what, err, err_len))
            goto fail;
        snprintf(sql, sizeof sql,
                 "SET LOCAL search_path TO \"%s\";"
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "  version integer PRIMARY KEY,"
                 "  applied_at timestamptz NOT NULL DEFAULT now())",
                 schema);
        snprintf(what, sizeof what, "cannot create tables in the schema \"%s\"", schema);
        if (!run_ok(pq, conn, sql, NULL, store, what, err, err_len))
            goto fail;
        for (int v = version; v < STORE_PG_SCHEMA_VERSION; v++) {
            snprintf(what, sizeof what, "cannot migrate the schema \"%s\" to version %d", schema,
                     v + 1);
            snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version) VALUES (%d)", v + 1);
            if (!run_ok(pq, conn, store_pg_migrations[v], NULL, store, what, err, err_len) ||
                !run_ok(pq, conn, sql, NULL, store, what, err, err_len))
                goto fail;
        }
    }
    return run_ok(pq, conn, "COMMIT", NULL, store, "cannot commit the schema", err, err_len);
fail:
    pq->clear(pq->exec(conn, "ROLLBACK"));
    return false;
}
