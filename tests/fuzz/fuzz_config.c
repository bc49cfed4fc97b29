/* tests/fuzz/fuzz_config.c — libFuzzer target for proxy/config's config file (INI) path: the
 * input is the file given to `--config` (through fuzz_memfile.h, as the proxy opens it by
 * path), loaded the way `pgtally proxy --config FILE` loads it (config_load).
 *
 * Invariants (a violation aborts, so the fuzzer keeps the input):
 *   - no crash, no overread, no leak (config_free after every load);
 *   - a refused file gets one terminated, non-empty error line;
 *   - a loaded config is whole: the strings the proxy needs are set, and loading the same
 *     file again gives the same settings (config_restart_needed names no difference);
 *   - slow inputs: libFuzzer's -timeout (run_fuzzer.sh).
 * The environment is cleared of PGTALLY_* and DATABASE_URL once, so only the file counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "tests/fuzz/fuzz_memfile.h"

#define FUZZ_REQUIRE(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant failed: %s (%s:%d)\n", what, __FILE__,         \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

extern char **environ;

static void fuzz_clear_env(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    for (;;) {
        char **e = environ;
        while (*e != NULL && strncmp(*e, "PGTALLY_", 8) != 0 && strncmp(*e, "DATABASE_URL=", 13))
            e++;
        if (*e == NULL)
            break;
        char name[256];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)n, *e);
        unsetenv(name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_clear_env();
    const char *path = fuzz_memfile(data, size);
    char *argv[] = {"proxy", "--config", (char *)path, NULL};
    char err[1024];
    err[0] = '\0';
    ProxyConfig c;
    ConfigParse rc = config_load(&c, 3, argv, stdout, err, sizeof err);
    FUZZ_REQUIRE(rc == CONFIG_OK || rc == CONFIG_ERROR, "a file never asks for --help");
    if (rc == CONFIG_ERROR) {
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0', "error given");
        FUZZ_REQUIRE(strchr(err, '\n') == NULL, "error on one line");
        config_free(&c);
        return 0;
    }
    FUZZ_REQUIRE(c.listen != NULL && c.db_path != NULL, "listen and db set");
    ProxyConfig again;
    FUZZ_REQUIRE(config_load(&again, 3, argv, stdout, err, sizeof err) == CONFIG_OK,
                 "the same file loads again");
    char diff[1024];
    config_restart_needed(&c, &again, diff, sizeof diff);
    FUZZ_REQUIRE(diff[0] == '\0', "the same settings twice");
    config_free(&again);
    config_free(&c);
    return 0;
}
