/* report/errfmt — see errfmt.h. */
#include "report/errfmt.h"

#include <stdarg.h>
#include <stdio.h>

void report_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}
