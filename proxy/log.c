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

/* The length of the valid UTF-8 character at s (1 to 4), or 0 when the bytes are not one:
 * a stray continuation byte, a cut or overlong sequence, a surrogate, beyond U+10FFFF. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* also stops at the terminating NUL */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* Writes the message as a logfmt quoted value: quotes and backslashes escaped, so one log
 * line is always one line that no terminal acts on. Line breaks and tabs become spaces; every
 * other control (C0, DEL, C1 as the UTF-8 of U+0080-U+009F) and every byte that is not UTF-8
 * (a raw 0x9B is CSI to an 8-bit terminal) is written "\xNN", so it is seen, never obeyed. */
static size_t quote_value(char *out, size_t cap, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *m = (const unsigned char *)msg;
    size_t n = 0;
    out[n++] = '"';
    while (*m && n + 6 < cap) {
        unsigned c = *m;
        size_t len = utf8_len(m);
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            out[n++] = ' ';
        } else if (len == 1 && c >= 0x20 && c != 0x7F) {
            out[n++] = (char)c;
        } else if (len > 1 && !(len == 2 && c == 0xC2 && m[1] < 0xA0)) {
            if (n + len + 2 > cap)
                break;
            memcpy(out + n, m, len);
            n += len;
            m += len;
            continue;
        } else {
            /* a control, or a byte that is not UTF-8: the C1 character's code (its second
             * byte) stands for both of its bytes */
            if (len == 2) {
                c = m[1];
                m++;
            }
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
        m++;
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

    char quoted[4200]; /* each byte of msg takes at most 4 */
    quote_value(quoted, sizeof quoted, msg);
    if (conn_id)
        fprintf(stderr, "ts=%s.%03ldZ level=%s conn=%llu msg=%s\n", when, ts.tv_nsec / 1000000,
                level_names[level], (unsigned long long)conn_id, quoted);
    else
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=%s\n", when, ts.tv_nsec / 1000000,
                level_names[level], quoted);
}
