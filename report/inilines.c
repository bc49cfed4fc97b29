/* report/inilines — see inilines.h. */
#include "report/inilines.h"

#include <stdlib.h>
#include <string.h>

ssize_t inilines_read(IniLines *l)
{
    ssize_t len = getline(&l->buf, &l->cap, l->file);
    if (len < 0)
        return -1;
    l->line++;
    if (len > 0 && l->buf[len - 1] == '\n')
        l->buf[--len] = '\0';
    if (len > 0 && l->buf[len - 1] == '\r')
        l->buf[--len] = '\0';
    return len;
}

IniLineProblem inilines_give(IniLines *l, char *str, int num, const char *text, size_t len)
{
    /* inih needs room for the NUL; it takes a line without its ending as well as with one. */
    l->max_len = num > 1 ? (size_t)num - 1 : 0;
    IniLineProblem problem = INILINE_OK;
    if (memchr(text, '\0', len))
        problem = INILINE_NUL;
    else if (len > l->max_len)
        problem = INILINE_TOO_LONG;
    if (num > 0) {
        size_t n = problem == INILINE_OK ? len : 0;
        memcpy(str, text, n);
        str[n] = '\0';
    }
    return problem;
}

char *inilines_reader(char *str, int num, void *stream)
{
    IniLines *l = stream;
    if (l->problem != INILINE_OK)
        return NULL;
    ssize_t len = inilines_read(l);
    if (len < 0)
        return NULL;
    IniLineProblem problem = inilines_give(l, str, num, l->buf, (size_t)len);
    if (problem != INILINE_OK) {
        l->problem = problem;
        l->problem_line = l->line;
        return NULL;
    }
    return str;
}

void inilines_describe(const IniLines *l, IniLineProblem problem, char *out, size_t out_len)
{
    switch (problem) {
    case INILINE_TOO_LONG:
        snprintf(out, out_len, "line longer than %zu bytes", l->max_len);
        return;
    case INILINE_NUL:
        snprintf(out, out_len, "NUL byte in line");
        return;
    case INILINE_OK:
        break;
    }
    snprintf(out, out_len, "no problem");
}

void inilines_free(IniLines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->cap = 0;
}
