/* proxy/log — logfmt lines on stderr: `ts=... level=info conn=12 msg="..."`.
 *
 * Owns: the process-wide log level (part of the process-wide config) and the line format.
 * Every line about a client connection names it (conn=N), so one connection's story can be
 * grepped out of a busy log. */
#ifndef PGTALLY_PROXY_LOG_H
#define PGTALLY_PROXY_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum LogLevel {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
} LogLevel;

void log_set_level(LogLevel level);
/* Parses "debug|info|warn|error"; returns false for anything else. */
bool log_parse_level(const char *name, LogLevel *out);
bool log_enabled(LogLevel level);

/* conn_id 0 means the line is not about one connection. */
void log_line(LogLevel level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG_CONN(conn, ...)                                                                  \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_line(LOG_DEBUG, (conn), __VA_ARGS__);                                              \
    } while (0)

#endif
