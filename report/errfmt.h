/* report/errfmt — the error text the report modules hand back.
 *
 * Owns: formatting "what: reason" into a caller's buffer (`err`, `err_len`), the convention
 * of every function in report/ that can fail: NULL or a zero length means the caller does
 * not want the text. */
#ifndef PGTALLY_REPORT_ERRFMT_H
#define PGTALLY_REPORT_ERRFMT_H

#include <stddef.h>

void report_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
