/* report/outfile — see outfile.h. */
#include "report/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *outfile_open(const char *path, bool append, char *err, size_t err_len)
{
    if (err_len)
        err[0] = '\0';
    /* The mode given to open() is masked by the umask; 0600 has nothing a umask would add,
     * so the file is created owner-only whatever the umask is. */
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    int fd = open(path, flags, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        if (st.st_uid == geteuid()) {
            if (fchmod(fd, 0600) != 0) {
                snprintf(err, err_len, "%s: cannot make it owner-only (%s)", path, strerror(errno));
                close(fd);
                return NULL;
            }
        } else if (st.st_mode & 044) {
            snprintf(err, err_len,
                     "%s belongs to uid %u and others can read it (mode %03o): it will hold "
                     "SQL",
                     path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        }
    }
    FILE *f = fdopen(fd, append ? "a" : "w");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    return f;
}
