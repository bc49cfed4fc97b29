/* report/inilines — whole, counted lines for libinih, and a clear error for ones it cannot take.
 *
 * Owns: reading an INI file line by line for ini_parse_stream. libinih reads each line into a
 * fixed buffer whose size (INI_MAX_LINE, 200 bytes in Debian's build) is fixed when the library
 * is compiled: an fgets-style reader would hand it a long line in pieces, and the rest would be
 * parsed as a line of its own and numbered wrongly. Here every line is read whole, counted (so
 * errors name it, which Debian's inih cannot do), and one that does not fit in inih's buffer is
 * never handed over: the caller reports "line longer than N bytes". Used by both INI parsers:
 * the proxy's config file and `pgtally check` budget files. */
#ifndef PGTALLY_REPORT_INILINES_H
#define PGTALLY_REPORT_INILINES_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

typedef enum IniLineProblem {
    INILINE_OK,
    INILINE_TOO_LONG, /* longer than inih's buffer takes */
    INILINE_NUL,      /* a NUL byte: inih would silently cut the line there */
} IniLineProblem;

typedef struct IniLines {
    FILE *file;             /* read from; the caller opens and closes it */
    char *buf;              /* the line last read, NUL-terminated, without its line ending */
    size_t cap;             /* of buf (getline's) */
    int line;               /* number of the line last read, from 1 */
    IniLineProblem problem; /* set by inilines_reader at the first line it refused */
    int problem_line;       /* that line's number */
    size_t max_len;         /* the longest line inih takes, known once it asked for one */
} IniLines;

/* Reads the next line whole into lines->buf, drops its "\n" or "\r\n", and counts it. Returns
 * its length, or -1 at the end of the file or on a read error (see ferror). */
ssize_t inilines_read(IniLines *lines);

/* Copies `len` bytes of `text` into inih's line buffer (`str` of `num` bytes, as the reader is
 * given them) and returns INILINE_OK; or copies an empty line and returns why not. Also records
 * the limit in lines->max_len. */
IniLineProblem inilines_give(IniLines *lines, char *str, int num, const char *text, size_t len);

/* An ini_parse_stream reader over an IniLines (the `stream` argument), for parsers with no
 * line handling of their own. It stops (returns NULL, as at the end of the file) at the first
 * line it cannot hand over, and records it in problem and problem_line. */
char *inilines_reader(char *str, int num, void *lines);

/* The problem as words without the file and line: "line longer than 199 bytes". */
void inilines_describe(const IniLines *lines, IniLineProblem problem, char *out, size_t out_len);

/* Frees the line buffer (not the file). */
void inilines_free(IniLines *lines);

#endif
