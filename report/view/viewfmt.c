/* report/view/viewfmt — see viewfmt.h. */
#include "report/view/viewfmt.h"

#include <inttypes.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "protocol/jsonout.h"

void viewfmt_duration(char *out, size_t cap, uint64_t us)
{
    if (us < 10000)
        snprintf(out, cap, "%.2f ms", (double)us / 1000.0);
    else if (us < 1000000)
        snprintf(out, cap, "%.1f ms", (double)us / 1000.0);
    else if (us < 60000000)
        snprintf(out, cap, "%.2f s", (double)us / 1e6);
    else
        snprintf(out, cap, "%llum%02llus", (unsigned long long)(us / 60000000),
                 (unsigned long long)(us / 1000000 % 60));
}

void viewfmt_bytes(char *out, size_t cap, uint64_t bytes)
{
    if (bytes < 1000)
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
    else if (bytes < 1000000)
        snprintf(out, cap, "%.1f kB", (double)bytes / 1e3);
    else if (bytes < 1000000000)
        snprintf(out, cap, "%.1f MB", (double)bytes / 1e6);
    else
        snprintf(out, cap, "%.1f GB", (double)bytes / 1e9);
}

void viewfmt_count(char *out, size_t cap, uint64_t n)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char grouped[32];
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            grouped[o++] = ',';
        grouped[o++] = digits[i];
    }
    grouped[o] = '\0';
    snprintf(out, cap, "%s", grouped);
}

const char *viewfmt_route(const char *route)
{
    return route && *route ? route : VIEW_NO_ROUTE;
}

const char *viewfmt_route_arg(const char *arg)
{
    return arg && strcmp(arg, VIEW_NO_ROUTE) == 0 ? "" : arg;
}

void viewfmt_finding_why(char *out, size_t cap, const ReaderTopFinding *f)
{
    char time[16], cost[16], total[32], max[32], rows[32], bytes[16], what[160];
    viewfmt_duration(time, sizeof time, f->total_time_us);
    viewfmt_duration(cost, sizeof cost, f->cost_us);
    viewfmt_count(total, sizeof total, f->total_count);
    viewfmt_count(max, sizeof max, f->max_count);
    viewfmt_count(rows, sizeof rows, f->rows);
    viewfmt_bytes(bytes, sizeof bytes, f->bytes);
    const char *reqs = f->requests == 1 ? "request" : "requests";
    if (strcmp(f->kind, "n_plus_one") == 0) {
        snprintf(what, sizeof what, "%s calls in %" PRIu64 " %s, up to %s in one", total,
                 f->requests, reqs, max);
    } else if (strcmp(f->kind, "duplicate") == 0) {
        snprintf(what, sizeof what, "%s repeats in %" PRIu64 " %s (of %s)", total, f->requests,
                 reqs, time);
    } else if (strcmp(f->kind, "overfetch") == 0) {
        char amount[48];
        if (f->by_bytes)
            viewfmt_bytes(amount, sizeof amount, f->max_count);
        else
            snprintf(amount, sizeof amount, "%s rows", max);
        snprintf(what, sizeof what, "up to %s returned by one %s, in %" PRIu64 " %s", amount,
                 f->fingerprint[0] ? "execution" : "request", f->requests, reqs);
    } else {
        snprintf(what, sizeof what, "%s in %" PRIu64 " %s", total, f->requests, reqs);
    }
    snprintf(out, cap, "%s DB time; %s; %s rows, %s returned", cost, what, rows, bytes);
}

void viewfmt_time(char *out, size_t cap, int64_t us)
{
    if (us <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

size_t viewfmt_safe_char(const unsigned char *s, size_t len, char out[VIEWFMT_SAFE_MAX])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = utf8_char_len(s, len);
    if (n == 0) {
        memcpy(out, "\xEF\xBF\xBD", 4); /* U+FFFD: not UTF-8 */
        return 1;
    }
    unsigned code = s[0];
    if (n == 2 && s[0] == 0xC2 && s[1] < 0xA0)
        code = s[1]; /* U+0080-U+009F: C1 controls (CSI, OSC... in 8-bit terminals) */
    else if (n > 1 || (code >= 0x20 && code != 0x7F)) {
        memcpy(out, s, n);
        out[n] = '\0';
        return n;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[code >> 4];
    out[3] = hex[code & 15];
    out[4] = '\0';
    return n;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* `s` on one line, made safe (viewfmt.h): whitespace runs as one space, none leading or
 * trailing; caller frees. */
static char *squash(const char *s)
{
    size_t len = strlen(s);
    /* one input byte becomes at most 4 output bytes ("\xNN", or 3-byte U+FFFD) */
    char *out = malloc(4 * len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    bool space = false;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (is_space(u[i])) {
            space = n > 0;
            i++;
            continue;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        char safe[VIEWFMT_SAFE_MAX];
        i += viewfmt_safe_char(u + i, len - i, safe);
        size_t k = strlen(safe);
        memcpy(out + n, safe, k);
        n += k;
    }
    out[n] = '\0';
    return out;
}

void viewfmt_text(FILE *out, const char *s)
{
    char *line = squash(s ? s : "");
    if (line)
        fputs(line, out);
    free(line);
}

/* Bytes of `s` that make up at most `width` characters (UTF-8 continuation bytes are free). */
static size_t prefix_for_width(const char *s, size_t len, size_t width)
{
    size_t chars = 0, i = 0;
    while (i < len) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (chars == width)
                break;
            chars++;
        }
        i++;
    }
    return i;
}

static size_t text_width(const char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)s[i] & 0xc0) != 0x80;
    return chars;
}

void viewfmt_wrap(const char *s, size_t width, size_t max_lines,
                  void (*emit)(const char *line, size_t len, void *ctx), void *ctx)
{
    char *text = squash(s ? s : "");
    if (!text || width < 8)
        goto done;
    size_t len = strlen(text), pos = 0;
    for (size_t line = 0; pos < len && line < max_lines; line++) {
        size_t rest = len - pos;
        bool last = line + 1 == max_lines;
        if (text_width(text + pos, rest) <= width) {
            emit(text + pos, rest, ctx);
            break;
        }
        if (last) {
            char buf[1024];
            size_t keep = prefix_for_width(text + pos, rest, width - 3);
            if (keep > sizeof buf - 4)
                keep = sizeof buf - 4;
            memcpy(buf, text + pos, keep);
            memcpy(buf + keep, "...", 3);
            emit(buf, keep + 3, ctx);
            break;
        }
        size_t cut = prefix_for_width(text + pos, rest, width);
        size_t brk = cut;
        while (brk > cut / 2 && text[pos + brk] != ' ')
            brk--;
        if (text[pos + brk] != ' ')
            brk = cut; /* one long token: cut it */
        emit(text + pos, brk, ctx);
        pos += brk;
        while (pos < len && text[pos] == ' ')
            pos++;
    }
done:
    free(text);
}

ViewFold *viewfmt_fold(const ReaderTimeline *t, size_t *n)
{
    *n = 0;
    if (!t->n)
        return NULL;
    ViewFold *folds = calloc(t->n, sizeof *folds);
    if (!folds)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const ReaderStatement *s = &t->items[i];
        if (k == 0 || strcmp(t->items[folds[k - 1].first].fingerprint, s->fingerprint) != 0)
            folds[k++].first = i;
        ViewFold *f = &folds[k - 1];
        f->count++;
        f->duration_us += s->duration_us > 0 ? (uint64_t)s->duration_us : 0;
        f->rows += s->rows;
        f->bytes += s->bytes;
        f->errors += s->sqlstate[0] != '\0';
    }
    *n = k;
    return folds;
}

void viewfmt_json_str(FILE *out, const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s), cap = JSON_ESCAPED_MAX(len);
    char small[512];
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf) {
        fputs("\"\"", out); /* out of memory: an empty string keeps the document valid */
        return;
    }
    json_escape(buf, cap, s, len);
    fputc('"', out);
    fputs(buf, out);
    fputc('"', out);
    if (buf != small)
        free(buf);
}

void viewfmt_xml(FILE *out, const char *s)
{
    /* Only ASCII reaches the table: other bytes went through viewfmt_safe_char. */
    static const char *const entities[0x80] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;",
    };
    if (!s)
        return;
    size_t len = strlen(s);
    for (const unsigned char *c = (const unsigned char *)s, *end = c + len; c < end;) {
        if (*c >= 0x80 || (*c < 0x20 && *c != '\n' && *c != '\t') || *c == 0x7F) {
            char safe[VIEWFMT_SAFE_MAX];
            c += viewfmt_safe_char(c, (size_t)(end - c), safe);
            fputs(safe, out);
            continue;
        }
        if (entities[*c])
            fputs(entities[*c], out);
        else
            fputc(*c, out);
        c++;
    }
}

static size_t longest_backtick_run(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == '`' ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

static void put_ticks(FILE *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc('`', out);
}

void viewfmt_md_cell(FILE *out, const char *s, bool code)
{
    char *line = squash(s ? s : "");
    if (!line)
        return;
    if (code) {
        /* Inside a code span backslashes are literal, but a table still splits on `|`;
         * GitHub accepts `\|` there and shows a bare pipe. */
        size_t ticks = longest_backtick_run(line) + 1;
        put_ticks(out, ticks);
        if (line[0] == '`' || line[0] == '\0')
            fputc(' ', out);
        for (const char *p = line; *p; p++) {
            if (*p == '|')
                fputc('\\', out);
            fputc(*p, out);
        }
        if (line[0] == '\0' || line[strlen(line) - 1] == '`')
            fputc(' ', out);
        put_ticks(out, ticks);
    } else {
        for (const char *p = line; *p; p++) {
            if (strchr("|\\`*_[]<>#", *p))
                fputc('\\', out);
            fputc(*p, out);
        }
    }
    free(line);
}

void viewfmt_md_code_block(FILE *out, const char *info, const char *s)
{
    if (!s)
        s = "";
    /* No cap on the fence: a capped one is what a long enough run of backticks would end. */
    size_t fence = longest_backtick_run(s) + 1;
    if (fence < 3)
        fence = 3;
    put_ticks(out, fence);
    fprintf(out, "%s\n", info);
    size_t len = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] == '\n' || u[i] == '\t') {
            fputc(u[i++], out);
            continue;
        }
        char safe[VIEWFMT_SAFE_MAX];
        i += viewfmt_safe_char(u + i, len - i, safe);
        fputs(safe, out);
    }
    fputc('\n', out);
    put_ticks(out, fence);
    fputc('\n', out);
}

/* Where the top-level FROM of `line` (one line, starting with "select ") begins, and how many
 * columns the select list before it has; 0 when there is no such FROM. Quotes and parentheses
 * are skipped so that "count(a, b)" or 'a, b' count as one column. */
static size_t select_list(const char *line, size_t *columns)
{
    size_t depth = 0, commas = 0;
    char quote = 0;
    for (size_t i = 7; line[i]; i++) {
        char c = line[i];
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '\'' || c == '"')
            quote = c;
        else if (c == '(')
            depth++;
        else if (c == ')' && depth)
            depth--;
        else if (c == ',' && !depth)
            commas++;
        else if (c == ' ' && !depth && strncasecmp(line + i, " from ", 6) == 0) {
            *columns = commas + 1;
            return i;
        }
    }
    return 0;
}

/* One line of `s`, cut to `width` characters with "..."; `abbrev_select`: a SELECT too long
 * first loses its column list (viewfmt_sql_abbrev). */
static void fit_line(char *out, size_t cap, const char *s, size_t width, bool abbrev_select)
{
    if (!cap)
        return;
    char *line = squash(s ? s : "");
    if (!line) {
        out[0] = '\0';
        return;
    }
    size_t len = strlen(line), columns = 0, from;
    if (abbrev_select && text_width(line, len) > width && strncasecmp(line, "select ", 7) == 0 &&
        (from = select_list(line, &columns)) > 0 && columns >= 2) {
        size_t n = len + 64;
        char *shorter = malloc(n);
        if (shorter) {
            /* U+2026 stands for the columns left out; the table and WHERE stay readable. */
            snprintf(shorter, n, "%.7s\xe2\x80\xa6 %zu columns \xe2\x80\xa6%s", line, columns,
                     line + from);
            free(line);
            line = shorter;
            len = strlen(line);
        }
    }
    if (text_width(line, len) > width && width > 3) {
        size_t keep = prefix_for_width(line, len, width - 3);
        snprintf(out, cap, "%.*s...", (int)keep, line);
    } else {
        snprintf(out, cap, "%s", line);
    }
    free(line);
}

void viewfmt_one_line(char *out, size_t cap, const char *s, size_t width)
{
    fit_line(out, cap, s, width, false);
}

void viewfmt_sql_abbrev(char *out, size_t cap, const char *sql, size_t width)
{
    fit_line(out, cap, sql, width, true);
}

ViewCycle *viewfmt_fold_cycles(const ReaderTimeline *t, const ViewFold *folds, size_t n_folds,
                               size_t *n)
{
    *n = 0;
    if (!n_folds)
        return NULL;
    ViewCycle *cycles = calloc(n_folds, sizeof *cycles);
    if (!cycles)
        return NULL;
#define SAME_FOLD(a, b)                                                                            \
    (folds[a].count == folds[b].count &&                                                           \
     strcmp(t->items[folds[a].first].fingerprint, t->items[folds[b].first].fingerprint) == 0)
    size_t k = 0;
    for (size_t i = 0; i < n_folds;) {
        size_t best_period = 1, best_repeats = 1;
        for (size_t period = 2; period <= VIEWFMT_CYCLE_MAX_PERIOD && i + 2 * period <= n_folds;
             period++) {
            size_t repeats = 1;
            while (i + (repeats + 1) * period <= n_folds) {
                bool same = true;
                for (size_t j = 0; j < period && same; j++)
                    same = SAME_FOLD(i + j, i + repeats * period + j);
                if (!same)
                    break;
                repeats++;
            }
            /* The shortest period that covers the most statements wins: (A, B) x 4, not
             * (A, B, A, B) x 2. */
            if (repeats >= 2 && repeats * period > best_repeats * best_period) {
                best_period = period;
                best_repeats = repeats;
            }
        }
        cycles[k++] = (ViewCycle){.first = i, .period = best_period, .repeats = best_repeats};
        i += best_period * best_repeats;
    }
#undef SAME_FOLD
    *n = k;
    return cycles;
}

void viewfmt_url(FILE *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            fputc(*p, out);
        else
            fprintf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}
