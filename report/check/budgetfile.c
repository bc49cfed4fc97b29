/* report/check/budgetfile — parsing and validating `pgtally check` budget files.
 *
 * libinih parses the `key = value` lines; this module feeds it the file line by line through
 * its own reader, which (1) strips leading whitespace, so an indented key is never taken for
 * inih's "continuation of the previous value" (git-config files are indented by habit);
 * (2) parses section headers itself, because inih silently truncates section names to 50
 * bytes and routes are longer than that; (3) reads whole lines and counts them (report/inilines),
 * so a semantic error found in the handler can name its line (inih calls the handler right after
 * reading the line), and a line too long for inih's buffer is an error naming it. */
#include "report/check/budgetfile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "protocol/hashseed.h"
#include "report/inilines.h"

static const char *const key_names[BUDGET_N_KEYS] = {
    [BUDGET_MAX_QUERIES] = "max_queries",
    [BUDGET_MAX_DUPLICATES] = "max_duplicates",
    [BUDGET_MAX_N_PLUS_ONE] = "max_n_plus_one",
    [BUDGET_MAX_DB_TIME_MS] = "max_db_time_ms",
    [BUDGET_MAX_ROWS] = "max_rows",
};

static const char growth_name[] = "max_growth";

/* Larger limits are certainly typos, and keep every figure comparison exact. */
#define BUDGET_VALUE_MAX 1000000000000000ULL

const char *budget_key_name(BudgetKey key)
{
    return key < BUDGET_N_KEYS ? key_names[key] : "?";
}

typedef enum Section {
    SECTION_NONE, /* before the first header */
    SECTION_DEFAULTS,
    SECTION_ROUTE,
    SECTION_IGNORE,
    SECTION_INVALID, /* a header that was reported as bad: its keys are skipped */
} Section;

typedef struct Parser {
    IniLines lines; /* lines.line: number of the line last handed to inih */
    const char *path;
    Budget *budget;
    Section section;
    size_t route_index; /* with SECTION_ROUTE */
    int defaults_line, ignore_line;
    bool oom;
    int err_line; /* first error found here; 0 = none */
    char err[512];
} Parser;

static void parser_error(Parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void parser_error(Parser *p, const char *fmt, ...)
{
    if (p->err_line)
        return; /* the first error is the one to fix first */
    p->err_line = p->lines.line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
}

/* ---- section headers --------------------------------------------------------------------- */

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* After the closing ']': only blanks and an optional comment. */
static bool header_tail_ok(const char *s)
{
    s = skip_space(s);
    return *s == '\0' || *s == '\n' || *s == '\r' || *s == ';' || *s == '#';
}

/* Parses `"..."` at *s (git-config escapes \" and \\) into a new string; advances *s past
 * the closing quote. Returns NULL with an error recorded. */
static char *parse_quoted(Parser *p, const char **s)
{
    const char *c = *s + 1;
    size_t cap = strlen(c) + 1, n = 0;
    char *out = malloc(cap);
    if (!out) {
        p->oom = true;
        return NULL;
    }
    for (;; c++) {
        if (*c == '\0' || *c == '\n' || *c == '\r') {
            parser_error(p, "unterminated quoted route name in section header");
            free(out);
            return NULL;
        }
        if (*c == '"')
            break;
        if (*c == '\\') {
            c++;
            if (*c != '"' && *c != '\\') {
                parser_error(p, "unknown escape \"\\%c\" in route name (only \\\" and \\\\)",
                             *c ? *c : ' ');
                free(out);
                return NULL;
            }
        }
        out[n++] = *c;
    }
    out[n] = '\0';
    *s = c + 1;
    return out;
}

/* What reports call the unlabelled requests; a budget may name them so too, or "". */
#define BUDGET_NO_ROUTE "(no route)"

/* ---- the route index ------------------------------------------------------------------------ */

static uint64_t route_hash(const Budget *b, const char *route)
{
    return XXH3_64bits_withSeed(route, strlen(route), b->route_seed);
}

/* The slot holding `route`, or the empty slot where it would go (the table is never full).
 * Adds the slots it examined to *probes when not NULL. */
static BudgetRouteSlot *route_slot(const Budget *b, const char *route, uint64_t hash,
                                   uint64_t *probes)
{
    size_t mask = b->route_slots_cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        BudgetRouteSlot *slot = &b->route_slots[i];
        if (probes)
            (*probes)++;
        if (slot->index == 0 ||
            (slot->hash == hash && strcmp(b->routes[slot->index - 1].route, route) == 0))
            return slot;
    }
}

/* Doubles the index (rehashing every route) so that it stays at most half full. */
static bool route_index_grow(Budget *b)
{
    size_t cap = b->route_slots_cap ? b->route_slots_cap * 2 : 64;
    BudgetRouteSlot *old = b->route_slots;
    size_t old_cap = b->route_slots_cap;
    b->route_slots = calloc(cap, sizeof *b->route_slots);
    if (!b->route_slots) {
        b->route_slots = old;
        return false;
    }
    b->route_slots_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].index)
            *route_slot(b, b->routes[old[i].index - 1].route, old[i].hash, &b->load_probes) =
                old[i];
    free(old);
    return true;
}

static void begin_route(Parser *p, char *route)
{
    Budget *b = p->budget;
    p->section = SECTION_INVALID;
    if (strcmp(route, BUDGET_NO_ROUTE) == 0)
        route[0] = '\0';
    if (b->n_routes >= BUDGET_MAX_ROUTES) {
        parser_error(p, "more than %d [route] sections (the most a budget file may have)",
                     BUDGET_MAX_ROUTES);
        free(route);
        return;
    }
    if ((b->n_routes + 1) * 2 > b->route_slots_cap && !route_index_grow(b)) {
        free(route);
        p->oom = true;
        return;
    }
    uint64_t hash = route_hash(b, route);
    BudgetRouteSlot *slot = route_slot(b, route, hash, &b->load_probes);
    if (slot->index) {
        parser_error(p, "route \"%s\" given twice (first on line %d)", route,
                     b->routes[slot->index - 1].line);
        free(route);
        return;
    }
    if (b->n_routes == b->routes_cap) {
        size_t cap = b->routes_cap ? b->routes_cap * 2 : 16;
        BudgetRoute *grown = realloc(b->routes, cap * sizeof *grown);
        if (!grown) {
            free(route);
            p->oom = true;
            return;
        }
        b->routes = grown;
        b->routes_cap = cap;
    }
    b->routes[b->n_routes] = (BudgetRoute){.route = route, .line = p->lines.line};
    p->route_index = b->n_routes++;
    *slot = (BudgetRouteSlot){.hash = hash, .index = b->n_routes};
    p->section = SECTION_ROUTE;
}

/* `s` starts at '['. Sets p->section (SECTION_INVALID after an error). */
static void parse_header(Parser *p, const char *s)
{
    p->section = SECTION_INVALID;
    s = skip_space(s + 1);
    const char *name = s;
    while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
        s++;
    size_t name_len = (size_t)(s - name);
    s = skip_space(s);
    char *sub = NULL;
    if (*s == '"') {
        sub = parse_quoted(p, &s);
        if (!sub)
            return;
        s = skip_space(s);
    }
    if (*s != ']' || !header_tail_ok(s + 1)) {
        parser_error(p, "malformed section header (expected [defaults], [route \"/path\"] or "
                        "[ignore])");
        free(sub);
        return;
    }
    bool is_defaults = name_len == 8 && strncasecmp(name, "defaults", 8) == 0;
    bool is_ignore = name_len == 6 && strncasecmp(name, "ignore", 6) == 0;
    bool is_route = name_len == 5 && strncasecmp(name, "route", 5) == 0;
    if (is_route) {
        if (!sub) {
            parser_error(p, "[route] needs a quoted route name, e.g. [route \"/api/orders\"]");
            return;
        }
        begin_route(p, sub);
        return;
    }
    if (!is_defaults && !is_ignore) {
        parser_error(p,
                     "unknown section [%.*s] (expected [defaults], [route \"/path\"] or "
                     "[ignore])",
                     (int)name_len, name);
        free(sub);
        return;
    }
    if (sub) {
        parser_error(p, "[%.*s] takes no quoted name", (int)name_len, name);
        free(sub);
        return;
    }
    int *first = is_defaults ? &p->defaults_line : &p->ignore_line;
    if (*first) {
        parser_error(p, "section [%s] given twice (first on line %d)",
                     is_defaults ? "defaults" : "ignore", *first);
        return;
    }
    *first = p->lines.line;
    p->section = is_defaults ? SECTION_DEFAULTS : SECTION_IGNORE;
}

/* inih's line source (an fgets look-alike); see the module comment for why. */
static char *read_line(char *str, int num, void *stream)
{
    Parser *p = stream;
    if (p->lines.line >= BUDGET_MAX_LINES) {
        /* Stop reading: the error names the first line beyond the bound. */
        if (inilines_read(&p->lines) < 0)
            return NULL;
        parser_error(p, "more than %d lines (the most a budget file may have)", BUDGET_MAX_LINES);
        return NULL;
    }
    ssize_t len = inilines_read(&p->lines);
    if (len < 0)
        return NULL;
    const char *s = p->lines.buf;
    if (p->lines.line == 1 && len >= 3 && (unsigned char)s[0] == 0xEF &&
        (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
        s += 3;
    if (memchr(p->lines.buf, '\0', (size_t)len)) {
        parser_error(p, "NUL byte in line");
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    s = skip_space(s);
    if (*s == '[') {
        parse_header(p, s);
        /* inih only needs to see a section; the real one is in p->section. */
        snprintf(str, (size_t)num, "[s]\n");
        return str;
    }
    IniLineProblem problem = inilines_give(&p->lines, str, num, s, strlen(s));
    if (problem != INILINE_OK) {
        char why[100];
        inilines_describe(&p->lines, problem, why, sizeof why);
        parser_error(p, "%s", why);
    }
    return str;
}

/* ---- values ------------------------------------------------------------------------------- */

static bool is_off(const char *v)
{
    return strcasecmp(v, "off") == 0 || strcasecmp(v, "none") == 0 ||
           strcasecmp(v, "unlimited") == 0;
}

static void set_count(Parser *p, BudgetLimit *limit, const char *key, const char *value)
{
    if (limit->state != BUDGET_UNSET) {
        parser_error(p, "%s given twice in this section (first on line %d)", key, limit->line);
        return;
    }
    if (is_off(value)) {
        *limit = (BudgetLimit){.state = BUDGET_OFF, .line = p->lines.line};
        return;
    }
    const char *c = value;
    while (isdigit((unsigned char)*c))
        c++;
    errno = 0;
    unsigned long long v = strtoull(value, NULL, 10);
    if (c == value || *c || errno || v > BUDGET_VALUE_MAX) {
        parser_error(p, "%s: \"%s\" is not a whole number (0-%llu) or \"off\"", key, value,
                     BUDGET_VALUE_MAX);
        return;
    }
    *limit = (BudgetLimit){.state = BUDGET_SET, .value = v, .line = p->lines.line};
}

static void set_growth(Parser *p, BudgetGrowth *growth, const char *value)
{
    if (growth->state != BUDGET_UNSET) {
        parser_error(p, "%s given twice in this section (first on line %d)", growth_name,
                     growth->line);
        return;
    }
    if (is_off(value)) {
        *growth = (BudgetGrowth){.state = BUDGET_OFF, .line = p->lines.line};
        return;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    bool percent = *end == '%';
    if (percent)
        end++;
    /* strtod also takes "inf", "nan", hex and leading blanks: accept plain decimals only. */
    bool plain = isdigit((unsigned char)value[0]);
    if (!plain || end == value || *end || errno || !isfinite(v) || v < 0 || v > 1e9 ||
        strpbrk(value, "xXeE")) {
        parser_error(p,
                     "%s: \"%s\" is not a percentage (\"10%%\"), a number of queries per "
                     "request (\"2\") or \"off\"",
                     growth_name, value);
        return;
    }
    *growth =
        (BudgetGrowth){.state = BUDGET_SET, .percent = percent, .value = v, .line = p->lines.line};
}

static void set_limit(Parser *p, BudgetLimits *limits, const char *section_name, const char *key,
                      const char *value)
{
    if (strcasecmp(key, growth_name) == 0) {
        set_growth(p, &limits->growth, value);
        return;
    }
    for (int k = 0; k < BUDGET_N_KEYS; k++) {
        if (strcasecmp(key, key_names[k]) == 0) {
            set_count(p, &limits->limit[k], key_names[k], value);
            return;
        }
    }
    parser_error(p,
                 "unknown key \"%s\" in %s (expected max_queries, max_duplicates, "
                 "max_n_plus_one, max_db_time_ms, max_rows or max_growth)",
                 key, section_name);
}

static bool is_fingerprint(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++)
        if (!isxdigit((unsigned char)v[n]))
            return false;
    return n == 16;
}

static void add_ignore(Parser *p, const char *key, const char *value)
{
    Budget *b = p->budget;
    if (b->n_ignore_fingerprints + b->n_ignore_routes >= BUDGET_MAX_IGNORES) {
        parser_error(p, "more than %d [ignore] entries (the most a budget file may have)",
                     BUDGET_MAX_IGNORES);
        return;
    }
    if (strcasecmp(key, "fingerprint") == 0) {
        if (!is_fingerprint(value)) {
            parser_error(p,
                         "fingerprint: \"%s\" is not 16 hex digits (as printed by "
                         "`pgtally report`)",
                         value);
            return;
        }
        char(*grown)[17] =
            realloc(b->ignore_fingerprints, (b->n_ignore_fingerprints + 1) * sizeof *grown);
        if (!grown) {
            p->oom = true;
            return;
        }
        b->ignore_fingerprints = grown;
        char *fp = grown[b->n_ignore_fingerprints++];
        for (int i = 0; i < 16; i++)
            fp[i] = (char)tolower((unsigned char)value[i]);
        fp[16] = '\0';
        return;
    }
    if (strcasecmp(key, "route") == 0) {
        /* Quotes allow the empty route (unlabelled requests) and surrounding blanks. */
        size_t n = strlen(value);
        const char *v = value;
        if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
            v = value + 1;
            n -= 2;
        } else if (n == 0) {
            parser_error(p, "route: empty (write route = \"\" for unlabelled requests)");
            return;
        }
        if (n == strlen(BUDGET_NO_ROUTE) && strncmp(v, BUDGET_NO_ROUTE, n) == 0)
            n = 0;
        char **grown = realloc(b->ignore_routes, (b->n_ignore_routes + 1) * sizeof *grown);
        if (!grown) {
            p->oom = true;
            return;
        }
        b->ignore_routes = grown;
        char *copy = strndup(v, n);
        if (!copy) {
            p->oom = true;
            return;
        }
        b->ignore_routes[b->n_ignore_routes++] = copy;
        return;
    }
    parser_error(p, "unknown key \"%s\" in [ignore] (expected fingerprint or route)", key);
}

/* inih's callback: returns 0 on an error so inih records the line too. */
static int on_value(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* p->section holds the real one */
    Parser *p = user;
    int before = p->err_line;
    if (!*value && p->section != SECTION_INVALID && p->section != SECTION_NONE &&
        p->section != SECTION_IGNORE) {
        parser_error(p, "%s: no value", name);
        return 0;
    }
    switch (p->section) {
    case SECTION_NONE:
        parser_error(p, "key \"%s\" before any section (start with [defaults])", name);
        break;
    case SECTION_INVALID:
        return 1; /* its header was reported already */
    case SECTION_DEFAULTS:
        set_limit(p, &p->budget->defaults, "[defaults]", name, value);
        break;
    case SECTION_ROUTE:
        set_limit(p, &p->budget->routes[p->route_index].limits, "[route]", name, value);
        break;
    case SECTION_IGNORE:
        add_ignore(p, name, value);
        break;
    }
    return p->err_line == before && !p->oom;
}

/* ---- the budget -------------------------------------------------------------------------- */

Budget *budget_load(const char *path, char *err, size_t err_len)
{
    Parser p = {.path = path};
    p.lines.file = fopen(path, "r");
    if (!p.lines.file) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    p.budget = calloc(1, sizeof *p.budget);
    if (!p.budget || !(p.budget->path = strdup(path))) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    /* The route names come from a file a pull request may change: keep the index's cost
     * independent of the names chosen. */
    p.budget->route_seed = hashseed_random();
    int rc = ini_parse_stream(read_line, &p, on_value, &p);
    if (ferror(p.lines.file)) {
        snprintf(err, err_len, "%s:%d: %s", path, p.lines.line + 1, strerror(errno ? errno : EIO));
        goto fail;
    }
    if (p.oom || rc == -2) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    if (rc > 0 && (p.err_line == 0 || rc < p.err_line)) {
        snprintf(err, err_len,
                 "%s:%d: expected \"key = value\", a [section] header or a "
                 "comment",
                 path, rc);
        goto fail;
    }
    if (p.err_line) {
        snprintf(err, err_len, "%s:%d: %s", path, p.err_line, p.err);
        goto fail;
    }
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot parse (inih error %d)", path, rc);
        goto fail;
    }
    inilines_free(&p.lines);
    fclose(p.lines.file);
    return p.budget;
fail:
    inilines_free(&p.lines);
    fclose(p.lines.file);
    budget_free(p.budget);
    return NULL;
}

void budget_free(Budget *budget)
{
    if (!budget)
        return;
    for (size_t i = 0; i < budget->n_routes; i++)
        free(budget->routes[i].route);
    free(budget->routes);
    free(budget->route_slots);
    for (size_t i = 0; i < budget->n_ignore_routes; i++)
        free(budget->ignore_routes[i]);
    free(budget->ignore_routes);
    free(budget->ignore_fingerprints);
    free(budget->path);
    free(budget);
}

static const BudgetRoute *find_route(const Budget *budget, const char *route)
{
    if (budget->n_routes == 0)
        return NULL;
    const BudgetRouteSlot *slot = route_slot(budget, route, route_hash(budget, route), NULL);
    return slot->index ? &budget->routes[slot->index - 1] : NULL;
}

BudgetLimits budget_limits_for(const Budget *budget, const char *route)
{
    BudgetLimits out = budget->defaults;
    const BudgetRoute *r = find_route(budget, route);
    if (!r)
        return out;
    for (int k = 0; k < BUDGET_N_KEYS; k++)
        if (r->limits.limit[k].state != BUDGET_UNSET)
            out.limit[k] = r->limits.limit[k];
    if (r->limits.growth.state != BUDGET_UNSET)
        out.growth = r->limits.growth;
    return out;
}

bool budget_has_route(const Budget *budget, const char *route)
{
    return find_route(budget, route) != NULL;
}

bool budget_ignores_fingerprint(const Budget *budget, const char *fingerprint)
{
    if (!fingerprint || strlen(fingerprint) != 16)
        return false;
    for (size_t i = 0; i < budget->n_ignore_fingerprints; i++)
        if (strcasecmp(budget->ignore_fingerprints[i], fingerprint) == 0)
            return true;
    return false;
}

bool budget_ignores_route(const Budget *budget, const char *route)
{
    for (size_t i = 0; i < budget->n_ignore_routes; i++)
        if (strcmp(budget->ignore_routes[i], route) == 0)
            return true;
    return false;
}

static bool limits_set(const BudgetLimits *l)
{
    for (int k = 0; k < BUDGET_N_KEYS; k++)
        if (l->limit[k].state == BUDGET_SET)
            return true;
    return l->growth.state == BUDGET_SET;
}

bool budget_sets_limits(const Budget *budget)
{
    if (limits_set(&budget->defaults))
        return true;
    for (size_t i = 0; i < budget->n_routes; i++)
        if (limits_set(&budget->routes[i].limits))
            return true;
    return false;
}
