/* report/store/sqlite_dl — see sqlite_dl.h. */
#include "report/store/sqlite_dl.h"

#include <sqlite3.h>
#include <stdio.h>

#include "report/dynlib.h"

/* The functions that simply forward: X(return type, name, parameters, arguments). */
#define SQLITE_FORWARD(X)                                                                          \
    X(int, sqlite3_exec,                                                                           \
      (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,         \
       char **errmsg),                                                                             \
      (db, sql, cb, arg, errmsg))                                                                  \
    X(int, sqlite3_prepare_v2,                                                                     \
      (sqlite3 * db, const char *sql, int n, sqlite3_stmt **stmt, const char **tail),              \
      (db, sql, n, stmt, tail))                                                                    \
    X(int, sqlite3_prepare_v3,                                                                     \
      (sqlite3 * db, const char *sql, int n, unsigned int flags, sqlite3_stmt **stmt,              \
       const char **tail),                                                                         \
      (db, sql, n, flags, stmt, tail))                                                             \
    X(int, sqlite3_step, (sqlite3_stmt * s), (s))                                                  \
    X(int, sqlite3_finalize, (sqlite3_stmt * s), (s))                                              \
    X(int, sqlite3_reset, (sqlite3_stmt * s), (s))                                                 \
    X(int, sqlite3_clear_bindings, (sqlite3_stmt * s), (s))                                        \
    X(int, sqlite3_bind_int, (sqlite3_stmt * s, int i, int v), (s, i, v))                          \
    X(int, sqlite3_bind_int64, (sqlite3_stmt * s, int i, sqlite3_int64 v), (s, i, v))              \
    X(int, sqlite3_bind_null, (sqlite3_stmt * s, int i), (s, i))                                   \
    X(int, sqlite3_bind_text, (sqlite3_stmt * s, int i, const char *v, int n, void (*d)(void *)),  \
      (s, i, v, n, d))                                                                             \
    X(int, sqlite3_bind_parameter_count, (sqlite3_stmt * s), (s))                                  \
    X(int, sqlite3_column_count, (sqlite3_stmt * s), (s))                                          \
    X(sqlite3_int64, sqlite3_column_int64, (sqlite3_stmt * s, int i), (s, i))                      \
    X(const unsigned char *, sqlite3_column_text, (sqlite3_stmt * s, int i), (s, i))               \
    X(int, sqlite3_column_type, (sqlite3_stmt * s, int i), (s, i))                                 \
    X(const char *, sqlite3_column_name, (sqlite3_stmt * s, int i), (s, i))                        \
    X(int, sqlite3_busy_timeout, (sqlite3 * db, int ms), (db, ms))                                 \
    X(int, sqlite3_changes, (sqlite3 * db), (db))                                                  \
    X(sqlite3_int64, sqlite3_last_insert_rowid, (sqlite3 * db), (db))                              \
    X(int, sqlite3_get_autocommit, (sqlite3 * db), (db))                                           \
    X(int, sqlite3_create_function,                                                                \
      (sqlite3 * db, const char *name, int n_arg, int text_rep, void *app,                         \
       void (*fn)(sqlite3_context *, int, sqlite3_value **),                                       \
       void (*step)(sqlite3_context *, int, sqlite3_value **), void (*final)(sqlite3_context *)),  \
      (db, name, n_arg, text_rep, app, fn, step, final))                                           \
    X(const unsigned char *, sqlite3_value_text, (sqlite3_value * v), (v))                         \
    X(sqlite3_int64, sqlite3_value_int64, (sqlite3_value * v), (v))                                \
    X(int, sqlite3_wal_checkpoint_v2,                                                              \
      (sqlite3 * db, const char *name, int mode, int *log, int *ckpt),                             \
      (db, name, mode, log, ckpt))

/* Defined by hand below: they open, or must work before a successful open. */
#define SQLITE_OWN(X)                                                                              \
    X(sqlite3_open)                                                                                \
    X(sqlite3_open_v2)                                                                             \
    X(sqlite3_errmsg)                                                                              \
    X(sqlite3_close)                                                                               \
    X(sqlite3_close_v2)                                                                            \
    X(sqlite3_free)                                                                                \
    X(sqlite3_result_text)

/* Written once under pthread_once, read-only afterwards: one libsqlite3 per process, like
 * the mapping itself. */
#define POINTER(ret, name, params, args) static __typeof__(name) *p_##name;
#define OWN_POINTER(name) static __typeof__(name) *p_##name;
SQLITE_FORWARD(POINTER)
SQLITE_OWN(OWN_POINTER)
#undef POINTER
#undef OWN_POINTER

static DynLibOnce state = DYNLIB_ONCE_INIT;

static void load(void)
{
#define NAME(ret, name, params, args) #name,
#define OWN_NAME(name) #name,
#define SLOT(ret, name, params, args) (void **)&p_##name,
#define OWN_SLOT(name) (void **)&p_##name,
    static const char *const names[] = {SQLITE_FORWARD(NAME) SQLITE_OWN(OWN_NAME)};
    static void **const slots[] = {SQLITE_FORWARD(SLOT) SQLITE_OWN(OWN_SLOT)};
#undef NAME
#undef OWN_NAME
#undef SLOT
#undef OWN_SLOT
    static const DynLib lib = {
        .soname = "libsqlite3.so.0",
        .package = "libsqlite3-0",
        .needed_for = "SQLite report files",
        .names = names,
        .slots = slots,
        .count = sizeof names / sizeof names[0],
    };
    state.loaded = dynlib_load(&lib, state.err, sizeof state.err);
}

bool sqlite_dl_load(char *err, size_t err_len)
{
    return dynlib_once(&state, load, err, err_len);
}

#define FORWARD(ret, name, params, args)                                                           \
    DYNLIB_FORWARDER ret name params                                                               \
    {                                                                                              \
        return p_##name args;                                                                      \
    }
SQLITE_FORWARD(FORWARD)
#undef FORWARD

DYNLIB_FORWARDER int sqlite3_open(const char *path, sqlite3 **db)
{
    if (!sqlite_dl_load(NULL, 0)) {
        *db = NULL;
        return SQLITE_CANTOPEN;
    }
    return p_sqlite3_open(path, db);
}

DYNLIB_FORWARDER int sqlite3_open_v2(const char *path, sqlite3 **db, int flags, const char *vfs)
{
    if (!sqlite_dl_load(NULL, 0)) {
        *db = NULL;
        return SQLITE_CANTOPEN;
    }
    return p_sqlite3_open_v2(path, db, flags, vfs);
}

DYNLIB_FORWARDER const char *sqlite3_errmsg(sqlite3 *db)
{
    if (!db && !sqlite_dl_load(NULL, 0))
        return state.err;
    return p_sqlite3_errmsg(db);
}

DYNLIB_FORWARDER int sqlite3_close(sqlite3 *db)
{
    return db ? p_sqlite3_close(db) : SQLITE_OK;
}

DYNLIB_FORWARDER int sqlite3_close_v2(sqlite3 *db)
{
    return db ? p_sqlite3_close_v2(db) : SQLITE_OK;
}

/* Void, so not a FORWARD: called only from inside SQLite (a function the migration
 * registers), so the library is loaded. */
DYNLIB_FORWARDER void sqlite3_result_text(sqlite3_context *ctx, const char *text, int n,
                                          void (*destructor)(void *))
{
    p_sqlite3_result_text(ctx, text, n, destructor);
}

DYNLIB_FORWARDER void sqlite3_free(void *p)
{
    if (p)
        p_sqlite3_free(p);
}
