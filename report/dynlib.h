/* report/dynlib — a shared library loaded at run time, with the functions pgtally calls in it.
 *
 * Owns: dlopen of one library by its soname, resolving a list of its symbols into a table,
 * and the message when either fails (which library, which Debian package provides it, what
 * it was needed for). Used for libraries that only some commands or settings need (SQLite,
 * OpenSSL, libmicrohttpd): `pgtally fingerprint` and a proxy without TLS then never map them.
 * Linking them would make every start of the one `pgtally` binary map and relocate them all
 * (about 10 ms of CPU and 300 page faults), and keep their touched pages resident in the
 * proxy.
 *
 * The modules that use it (report/store/sqlite_dl, report/view/mhd_dl, proxy/openssl_dl)
 * define each library function pgtally calls under its own name, typed by the library's
 * header (a mismatch is a compile error), forwarding through the table: callers keep calling
 * sqlite3_step() or SSL_read() as if the library were linked.
 *
 * Thread use: call dynlib_load under pthread_once (each user does); the table is written
 * once and only read afterwards. */
#ifndef PGTALLY_REPORT_DYNLIB_H
#define PGTALLY_REPORT_DYNLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* Marks those definitions: hidden, so never exported from the program. Exported, they would
 * stand in for the library's own functions inside other libraries that use it (libpq, loaded
 * for a PostgreSQL store, calls libssl), before the library is loaded. */
#define DYNLIB_FORWARDER __attribute__((visibility("hidden")))

typedef struct DynLib {
    const char *soname;       /* "libsqlite3.so.0" */
    const char *package;      /* the Debian package that ships it: "libsqlite3-0" */
    const char *needed_for;   /* "an SQLite report store" */
    const char *const *names; /* the symbols to resolve, `count` of them */
    void **const *slots;      /* where each one's address goes */
    size_t count;
} DynLib;

/* Opens lib->soname (kept open for the life of the process) and fills every slot. False with
 * a message naming the library, the package and the need when the library or a symbol is
 * missing. */
bool dynlib_load(const DynLib *lib, char *err, size_t err_len);

/* One library's load state: loaded at most once per process, its outcome kept for every
 * later caller. Written under `once`, read-only afterwards. */
typedef struct DynLibOnce {
    pthread_once_t once;
    bool loaded;
    char err[320];
} DynLibOnce;

#define DYNLIB_ONCE_INIT                                                                           \
    {                                                                                              \
        PTHREAD_ONCE_INIT, false, ""                                                               \
    }

/* Runs `load` (which sets state->loaded with dynlib_load into state->err) the first time,
 * then returns whether the library is loaded, copying the message into err when not. */
bool dynlib_once(DynLibOnce *state, void (*load)(void), char *err, size_t err_len);

#endif
