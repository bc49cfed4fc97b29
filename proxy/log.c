/* proxy/log — see log.h. */
#include "proxy/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The process-wide log level: set once from the config (and on SIGHUP), read everywhere. */
static LogLevel current_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(LogLevel level)
{
    current_level = level;
}

bool log_parse_level(const char *name, LogLevel *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (LogLevel)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(LogLevel level)
{
    return level >= current_level;
}

/* Writes the message as a logfmt quoted value: quotes and backslashes escaped, control
 * characters replaced, so one log line is always one line. */
static size_t quote_value(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    out[n++] = '"';
    for (; *msg && n + 3 < cap; msg++) {
        unsigned char c = (unsigned char)*msg;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            out[n++] = ' ';
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = 0;
    return n;
}

void log_line(LogLevel level, uint64_t conn_id, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    char quoted[2100];
    quote_value(quoted, sizeof quoted, msg);
    if (conn_id)
        fprintf(stderr, "ts=%s.%03ldZ level=%s conn=%llu msg=%s\n", when, ts.tv_nsec / 1000000,
                level_names[level], (unsigned long long)conn_id, quoted);
    else
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=%s\n", when, ts.tv_nsec / 1000000,
                level_names[level], quoted);
}
