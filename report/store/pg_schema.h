/* report/store/pg_schema — the report store's tables in PostgreSQL, and their migrations.
 *
 * Owns: the DDL of the PostgreSQL store (the same tables, columns and meanings as the SQLite
 * schema, documented in docs/report-format.md), kept in one schema named by --db-schema
 * (default "pgtally"), and the versioned migrations recorded in <schema>.schema_migrations.
 * Migrating takes a transaction-scoped advisory lock first, so any number of sidecars may start
 * at once against a fresh database: one creates the tables, the others wait and find them.
 *
 * Used by the store's PostgreSQL backend (writer) and by the readers (report, check, merge,
 * prune). Every function takes an open connection and never prints. */
#ifndef PGTALLY_REPORT_STORE_PG_SCHEMA_H
#define PGTALLY_REPORT_STORE_PG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "report/store/pq.h"

/* The newest PostgreSQL schema version this binary writes and reads (its own numbering,
 * recorded in <schema>.schema_migrations; the SQLite file's user_version is separate). */
#define STORE_PG_SCHEMA_VERSION 1

/* The default of --db-schema. */
#define STORE_PG_DEFAULT_SCHEMA "pgtally"

/* requests.id comes from <schema>.requests_id_seq, which steps by this much: one nextval
 * reserves the ids [v, v + STORE_PG_ID_BLOCK - 1] for the caller, so ids are unique in the
 * whole store across every writer, and a writer asks the server once per block. */
#define STORE_PG_ID_BLOCK 1024

/* The advisory lock taken while migrating: pg_advisory_xact_lock(KEY, hashtext(schema)). */
#define STORE_PG_LOCK_KEY 1885828204 /* "pgtl" */

/* migrations[v] takes the schema from version v to v + 1. Each runs with search_path set to
 * the store's schema only (SET LOCAL), so table names in it are unqualified. */
extern const char *const store_pg_migrations[STORE_PG_SCHEMA_VERSION];

/* A schema name pgtally accepts: 1 to 63 bytes of [A-Za-z0-9_], not starting with a digit.
 * It is always used double-quoted, so its case is kept. */
bool store_pg_schema_name_valid(const char *name);

/* Creates the schema if missing and brings it to STORE_PG_SCHEMA_VERSION under the advisory
 * lock, in one transaction. `store` names the store in messages (redacted, e.g. "host:5432/db").
 * Fails with a clear message (a role without CREATE privilege, a newer schema, a non-pgtally
 * table in the way); the connection is left idle (no transaction open) either way. */
bool store_pg_migrate(const PqApi *pq, PGconn *conn, const char *schema, const char *store,
                      char *err, size_t err_len);

/* The schema's recorded version: 0 when the schema or its schema_migrations table is absent.
 * False (message in err) when it cannot be read. Takes no lock and writes nothing. */
bool store_pg_schema_version(const PqApi *pq, PGconn *conn, const char *schema, const char *store,
                             int *version, char *err, size_t err_len);

#endif
