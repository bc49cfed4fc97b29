/* report/store/sqlite_dl — libsqlite3, loaded when the first database is opened.
 *
 * Owns: the definitions of the sqlite3_* functions pgtally calls (typed by <sqlite3.h>),
 * which load libsqlite3.so.0 on the first sqlite3_open / sqlite3_open_v2 and forward to it.
 * Callers use the SQLite API as usual.
 *
 * Why at run time: `pgtally fingerprint` and the other commands that never open a database
 * should not pay for mapping and relocating SQLite at every start (see report/dynlib.h).
 *
 * When the library cannot be loaded, sqlite3_open* fail with SQLITE_CANTOPEN and a NULL
 * handle, and sqlite3_errmsg(NULL) returns why (which library, which package to install)
 * instead of SQLite's "out of memory"; sqlite3_close(NULL) and sqlite3_free(NULL) do nothing,
 * as in SQLite. Every other function needs a handle, so it is only reached once loaded.
 * Thread-safe: the load runs once. */
#ifndef PGTALLY_REPORT_STORE_SQLITE_DL_H
#define PGTALLY_REPORT_STORE_SQLITE_DL_H

#include <stdbool.h>
#include <stddef.h>

/* Loads libsqlite3 now (once per process). False with the reason. */
bool sqlite_dl_load(char *err, size_t err_len);

#endif
