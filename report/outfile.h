/* report/outfile — opening the files pgtally writes for people: owner-only.
 *
 * Owns: how the query log, `pgtally report -o` and `pgtally check --junit/--markdown` files
 * are created. They hold SQL (the query log even with its literal values: passwords in
 * `CREATE ROLE ... PASSWORD`), so they are created 0600 whatever the umask, like the report
 * store. A regular file that already exists and that we own is tightened to 0600 too; one
 * that belongs to someone else keeps its mode (we cannot change it), and the caller is told
 * when others can read it. Devices and pipes (`-o /dev/stdout`) are left as they are. */
#ifndef PGTALLY_REPORT_OUTFILE_H
#define PGTALLY_REPORT_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Opens path for writing, truncated, or appended to when `append`, created 0600. On failure
 * returns NULL with the reason in err. On success err holds a warning to print (others can
 * read a file we do not own), or is empty. */
FILE *outfile_open(const char *path, bool append, char *err, size_t err_len);

#endif
