/* report/dynlib — see dynlib.h. */
#include "report/dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

bool dynlib_load(const DynLib *lib, char *err, size_t err_len)
{
    /* RTLD_LOCAL: the library's symbols stay out of the global scope, so they never stand in
     * for the forwarding functions of the same names in this program (or the reverse).
     * RTLD_NOW: every symbol the library needs is bound here, not in the middle of a
     * request. */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, err_len, "cannot load %s (needed for %s): %s; install the %s package",
                 lib->soname, lib->needed_for, dlerror(), lib->package);
        return false;
    }
    for (size_t i = 0; i < lib->count; i++) {
        void *sym = dlsym(h, lib->names[i]);
        if (!sym) {
            snprintf(err, err_len, "%s lacks %s (needed for %s): the library is too old",
                     lib->soname, lib->names[i], lib->needed_for);
            dlclose(h);
            return false;
        }
        *lib->slots[i] = sym;
    }
    return true;
}

bool dynlib_once(DynLibOnce *state, void (*load)(void), char *err, size_t err_len)
{
    pthread_once(&state->once, load);
    if (!state->loaded && err && err_len)
        snprintf(err, err_len, "%s", state->err);
    return state->loaded;
}
