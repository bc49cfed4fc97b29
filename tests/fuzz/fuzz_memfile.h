/* tests/fuzz/fuzz_memfile.h — hands a fuzz input to a parser that only opens files by path
 * (the budget file, the proxy's config file): the bytes go into an anonymous in-memory file,
 * named by its /proc/self/fd path, rewritten for each input. No disk, no temporary names. */
#ifndef PGTALLY_TESTS_FUZZ_MEMFILE_H
#define PGTALLY_TESTS_FUZZ_MEMFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data into the process's one memory file and returns its path (static storage).
 * Aborts when the kernel refuses: the target cannot run at all then. */
static const char *fuzz_memfile(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    size_t done = 0;
    if (ftruncate(fd, 0) != 0)
        abort();
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    return path;
}

#endif
