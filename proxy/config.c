/* proxy/config — see config.h. */
#include "proxy/config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proxy/address.h"
#include "protocol/jsonout.h"
#include "proxy/log.h"
#include "report/inilines.h"
#include "report/view/serve.h"
#include "report/store/pq.h"
#include "report/tally.h"

typedef enum OptType {
    T_STRING,
    T_SECONDS,
    T_COUNT,
    T_BOOL,
    T_LEVEL,
    T_FLAG, /* a bool that takes no argument on the command line */
} OptType;

typedef struct OptionSpec {
    const char *name; /* long option and config-file key */
    int short_name;
    OptType type;
    size_t offset;
    const char *placeholder;
    const char *help;
    bool reloadable;
    double min;
    double max;
} OptionSpec;

#define FIELD(f) offsetof(ProxyConfig, f)

static const OptionSpec options[] = {
    {"config", 0, T_STRING, FIELD(config_path), "FILE",
     "read settings from this INI file ([proxy] section)", false, 0, 0},
    {"listen", 'l', T_STRING, FIELD(listen), "HOST:PORT",
     "address for clients ([ADDR]:PORT for IPv6)", false, 0, 0},
    {"upstream", 'u', T_STRING, FIELD(upstream), "ADDR",
     "upstream server: HOST:PORT, a Unix-socket directory, or a postgres:// URL (sslmode and "
     "friends in its query string); default $DATABASE_URL",
     false, 0, 0},
    {"db", 0, T_STRING, FIELD(db_path), "FILE|URL",
     "report store (per-request tallies): an SQLite file, or a PostgreSQL postgres:// URL or "
     "libpq 'key=value' string (a shared store for many proxies; never through this proxy)",
     false, 0, 0},
    {"db-schema", 0, T_STRING, FIELD(db_schema), "NAME",
     "PostgreSQL store: the schema holding pgtally's tables", false, 0, 0},
    {"run-label", 0, T_STRING, FIELD(run_label), "LABEL",
     "label this run (a CI build id, a git SHA, 'staging'): report --label combines runs", false, 0,
     0},
    {"instance", 0, T_STRING, FIELD(instance), "NAME",
     "this proxy's name in the runs it writes; default $DYNO, else the host name", false, 0, 0},
    {"no-db", 0, T_FLAG, FIELD(no_db), NULL,
     "no report store: relay (and --log-queries) only, no per-request tallies", false, 0, 0},
    {"samples", 0, T_FLAG, FIELD(samples), NULL,
     "store one example with literal values per fingerprint (staging data only)", false, 0, 0},
    {"request-gap", 0, T_SECONDS, FIELD(request_gap), "SECONDS",
     "a request idle this long has ended", true, 0.001, 3600},
    {"log-queries", 0, T_STRING, FIELD(log_queries), "FILE",
     "append one JSON line per completed statement (reopened on SIGHUP)", false, 0, 0},
    {"metrics", 0, T_STRING, FIELD(metrics), "HOST:PORT",
     "serve Prometheus metrics at http://HOST:PORT/metrics", false, 0, 0},
    {"serve", 0, T_STRING, FIELD(serve), "HOST:PORT",
     "serve the report store's live web pages at http://HOST:PORT/ (own thread; docs/serve.md)",
     false, 0, 0},
    {"serve-token", 0, T_STRING, FIELD(serve_token), "TOKEN",
     "--serve pages require this token (?token=, cookie, or Authorization: Bearer)", false, 0, 0},
    {"tls-cert", 0, T_STRING, FIELD(tls_cert), "FILE",
     "serve TLS to clients with this certificate chain (with --tls-key)", false, 0, 0},
    {"tls-key", 0, T_STRING, FIELD(tls_key), "FILE", "private key for --tls-cert", false, 0, 0},
    {"io", 0, T_STRING, FIELD(io), "auto|uring|epoll",
     "the relay's socket I/O: io_uring, or epoll (libev); auto takes io_uring where the kernel "
     "allows it (TLS connections always use epoll)",
     false, 0, 0},
    {"grace", 0, T_SECONDS, FIELD(grace_seconds), "SECONDS",
     "on SIGTERM/SIGINT, let open connections finish this long", true, 0, 86400},
    {"connect-timeout", 0, T_SECONDS, FIELD(connect_timeout), "SECONDS",
     "upstream connect and TLS negotiation timeout", true, 0.001, 3600},
    {"startup-timeout", 0, T_SECONDS, FIELD(startup_timeout), "SECONDS",
     "a client must send its startup packet within this", true, 0.001, 3600},
    {"idle-timeout", 0, T_SECONDS, FIELD(idle_timeout), "SECONDS",
     "close client connections idle this long (0: never)", true, 0, 86400 * 7},
    {"max-client-conn", 0, T_COUNT, FIELD(max_client_conn), "N", "clients beyond this get an error",
     true, 1, 1000000},
    {"max-sql-bytes", 0, T_COUNT, FIELD(max_sql_bytes), "N", "SQL text kept per statement", false,
     64, 16 << 20},
    {"max-tracked-bytes", 0, T_COUNT, FIELD(max_track_bytes), "N",
     "SQL texts and names kept for tracking, over all connections (beyond: untracked)", false,
     1 << 20, 1e12},
    {"n-plus-one-calls", 0, T_COUNT, FIELD(n_plus_one_calls), "N",
     "n_plus_one: one fingerprint executed at least N times in a request ...", true, 2, 1e9},
    {"n-plus-one-distinct", 0, T_COUNT, FIELD(n_plus_one_distinct), "N",
     "... with at least N distinct value sets", true, 1, 1e9},
    {"duplicate-min", 0, T_COUNT, FIELD(duplicate_min), "N",
     "duplicate: report a fingerprint repeated exactly N or more times (0: off)", true, 0, 1e9},
    {"overfetch-rows", 0, T_COUNT, FIELD(overfetch_rows), "N",
     "overfetch: a statement returning N rows or more", true, 1, 1e15},
    {"overfetch-bytes", 0, T_COUNT, FIELD(overfetch_bytes), "N",
     "overfetch: a statement returning N bytes or more", true, 1, 1e15},
    {"log-level", 0, T_LEVEL, FIELD(log_level), "LEVEL", "debug, info, warn or error", true, 0, 0},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* The finding thresholds a user sets, and where ProxyConfig holds them; the others stay at
 * report/tally's defaults. */
static const struct {
    TallyThresholdId id;
    size_t field;
} config_thresholds[] = {
    {TALLY_N_PLUS_ONE_CALLS, FIELD(n_plus_one_calls)},
    {TALLY_N_PLUS_ONE_DISTINCT, FIELD(n_plus_one_distinct)},
    {TALLY_DUPLICATE_MIN, FIELD(duplicate_min)},
    {TALLY_OVERFETCH_ROWS, FIELD(overfetch_rows)},
    {TALLY_OVERFETCH_BYTES, FIELD(overfetch_bytes)},
};

#define N_CONFIG_THRESHOLDS (sizeof config_thresholds / sizeof config_thresholds[0])

static size_t *config_threshold(ProxyConfig *c, size_t i)
{
    return (size_t *)((char *)c + config_thresholds[i].field);
}

static size_t config_threshold_value(const ProxyConfig *c, size_t i)
{
    return *(const size_t *)((const char *)c + config_thresholds[i].field);
}

/* A run's instance name: Heroku's dyno name when there is one, else the host name. */
static char *default_instance(void)
{
    const char *dyno = getenv("DYNO");
    if (dyno && *dyno)
        return strdup(dyno);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = 0;
    return strdup(host);
}

void config_defaults(ProxyConfig *c)
{
    memset(c, 0, sizeof *c);
    c->listen = strdup("127.0.0.1:6432");
    c->db_path = strdup("pgtally.db");
    c->db_schema = strdup("pgtally");
    c->io = strdup("auto");
    c->grace_seconds = 10;
    c->connect_timeout = 10;
    c->startup_timeout = 30;
    c->idle_timeout = 0;
    c->request_gap = 1;
    c->max_client_conn = 10000;
    c->max_sql_bytes = 65536;
    c->max_track_bytes = 256 << 20;
    c->log_level = LOG_INFO;
    for (size_t i = 0; i < N_CONFIG_THRESHOLDS; i++)
        *config_threshold(c, i) = (size_t)tally_threshold_default(config_thresholds[i].id);
    c->instance = default_instance();
    const char *url = getenv("DATABASE_URL");
    if (url && *url)
        c->upstream = strdup(url);
}

void config_free(ProxyConfig *c)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == T_STRING) {
            char **p = (char **)((char *)c + options[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

/* ---- one value ----------------------------------------------------------------------------- */

static const OptionSpec *find_option(const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *a = options[i].name, *b = name;
        /* config files may spell keys with '_' */
        while (*a && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (!*a && !*b)
            return &options[i];
    }
    return NULL;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* Sets one option from text; on failure writes the problem (without its source). */
static bool set_value(ProxyConfig *c, const OptionSpec *o, const char *value, char *err,
                      size_t err_len)
{
    void *field = (char *)c + o->offset;
    switch (o->type) {
    case T_STRING: {
        char *copy = strdup(value);
        if (!copy) {
            snprintf(err, err_len, "out of memory");
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case T_SECONDS:
    case T_COUNT: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        while (*end == ' ')
            end++;
        if (errno || end == value || *end || v < o->min || v > o->max ||
            (o->type == T_COUNT && v != (double)(unsigned long long)v)) {
            snprintf(err, err_len, "\"%s\" is not a %s between %g and %g", value,
                     o->type == T_COUNT ? "whole number" : "number of seconds", o->min, o->max);
            return false;
        }
        if (o->type == T_SECONDS)
            *(double *)field = v;
        else
            *(size_t *)field = (size_t)v;
        return true;
    }
    case T_BOOL:
    case T_FLAG:
        if (!parse_bool(value, (bool *)field)) {
            snprintf(err, err_len, "\"%s\" is not true or false", value);
            return false;
        }
        return true;
    case T_LEVEL: {
        LogLevel level;
        if (!log_parse_level(value, &level)) {
            snprintf(err, err_len, "\"%s\" is not one of debug, info, warn, error", value);
            return false;
        }
        *(int *)field = (int)level;
        return true;
    }
    }
    return false;
}

/* ---- config file ------------------------------------------------------------------------------
 */

typedef struct FileCtx {
    ProxyConfig *config;
    const char *path;
    IniLines lines; /* lines.line: the line inih is handling (it calls back once it is read) */
    char *err;
    size_t err_len;
    bool failed;
} FileCtx;

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    FileCtx *f = user;
    int lineno = f->lines.line;
    char why[300];
    if (f->failed)
        return 0; /* the first error is the one to fix first */
    if (section[0] && strcmp(section, "proxy") != 0) {
        snprintf(f->err, f->err_len, "%s:%d: unknown section [%s] (settings go in [proxy])",
                 f->path, lineno, section);
        f->failed = true;
        return 0;
    }
    const OptionSpec *o = find_option(name);
    if (!o || strcmp(o->name, "config") == 0) {
        snprintf(f->err, f->err_len, "%s:%d: unknown setting \"%s\" (see pgtally proxy --help)",
                 f->path, lineno, name);
        f->failed = true;
        return 0;
    }
    if (!set_value(f->config, o, value, why, sizeof why)) {
        snprintf(f->err, f->err_len, "%s:%d: %s: %s", f->path, lineno, o->name, why);
        f->failed = true;
        return 0;
    }
    return 1;
}

static bool load_file(ProxyConfig *c, const char *path, char *err, size_t err_len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return false;
    }
    FileCtx f = {.config = c, .path = path, .lines = {.file = fp}, .err = err, .err_len = err_len};
    /* Parsing stops at a line inih cannot take, so every other error is on an earlier line. */
    int rc = ini_parse_stream(inilines_reader, &f.lines, on_ini_value, &f);
    bool read_error = ferror(fp);
    fclose(fp);
    inilines_free(&f.lines);
    if (f.failed)
        return false;
    if (read_error) {
        snprintf(err, err_len, "%s:%d: cannot read", path, f.lines.line + 1);
        return false;
    }
    if (rc > 0) {
        snprintf(err, err_len, "%s:%d: not a valid INI line (expected key = value or [section])",
                 path, rc);
        return false;
    }
    if (rc < 0) {
        snprintf(err, err_len, "%s: cannot read", path);
        return false;
    }
    if (f.lines.problem != INILINE_OK) {
        char why[100];
        inilines_describe(&f.lines, f.lines.problem, why, sizeof why);
        snprintf(err, err_len, "%s:%d: %s", path, f.lines.problem_line, why);
        return false;
    }
    return true;
}

/* ---- environment -------------------------------------------------------------------------------
 */

static void env_name(const char *option, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "PGTALLY_");
    for (const char *p = option; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[n] = 0;
}

static bool load_env(ProxyConfig *c, char *err, size_t err_len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(options[i].name, "config") == 0)
            continue;
        char name[64], why[300];
        env_name(options[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (!v || !*v)
            continue;
        if (!set_value(c, &options[i], v, why, sizeof why)) {
            snprintf(err, err_len, "%s: %s", name, why);
            return false;
        }
    }
    return true;
}

/* ---- command line --------------------------------------------------------------------------- */

/* Prints "  LEFT  text" with the text wrapped at 100 columns under its own column. */
static void print_wrapped(FILE *out, const char *left, const char *text)
{
    enum { INDENT = 33, WIDTH = 100 };
    fprintf(out, "  %-30s ", left);
    size_t col = INDENT;
    const char *p = text;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (col > INDENT && col + 1 + word > WIDTH) {
            fprintf(out, "\n%*s", INDENT, "");
            col = INDENT;
        } else if (col > INDENT) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, word, out);
        col += word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

void config_print_help(FILE *out)
{
    ProxyConfig d;
    config_defaults(&d);
    fprintf(out, "Usage: pgtally proxy [OPTIONS]\n"
                 "\n"
                 "Relays every byte between clients and the upstream PostgreSQL server unchanged,\n"
                 "groups the statements into HTTP requests and records per-request tallies.\n"
                 "\n"
                 "Every option can also be set in the config file (key = value under [proxy]) or\n"
                 "as an environment variable PGTALLY_<NAME> (e.g. PGTALLY_LISTEN). Precedence:\n"
                 "command line > environment > config file > default. [R]: reloaded on SIGHUP.\n"
                 "\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptionSpec *o = &options[i];
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name,
                     o->placeholder ? " " : "", o->placeholder ? o->placeholder : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->placeholder ? " " : "",
                     o->placeholder ? o->placeholder : "");
        char def[96] = "";
        void *field = (char *)&d + o->offset;
        switch (o->type) {
        case T_STRING:
            if (*(char **)field && strcmp(o->name, "upstream") != 0)
                snprintf(def, sizeof def, " [%s]", *(char **)field);
            break;
        case T_SECONDS:
            snprintf(def, sizeof def, " [%g]", *(double *)field);
            break;
        case T_COUNT:
            snprintf(def, sizeof def, " [%zu]", *(size_t *)field);
            break;
        case T_BOOL:
        case T_FLAG:
            snprintf(def, sizeof def, " [%s]", *(bool *)field ? "on" : "off");
            break;
        case T_LEVEL:
            snprintf(def, sizeof def, " [info]");
            break;
        }
        char text[512];
        snprintf(text, sizeof text, "%s%s%s", o->help, def, o->reloadable ? " [R]" : "");
        print_wrapped(out, left, text);
    }
    fprintf(out,
            "  -h, --help                     this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop accepting, let connections finish for --grace,\n"
            "finish every open request and flush, then exit 0. SIGUSR1 finishes open requests\n"
            "and flushes the report store and query log. SIGHUP re-reads the config file and\n"
            "environment (the [R] settings take effect) and reopens the query log.\n");
    config_free(&d);
}

/* getopt_long's table, built from ours. */
static void build_long_options(struct option *out, char *shorts, size_t shorts_cap)
{
    size_t n = 0, s = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        out[n].name = options[i].name;
        out[n].has_arg = options[i].type == T_FLAG ? no_argument : required_argument;
        out[n].flag = NULL;
        out[n].val = 256 + (int)i;
        n++;
        if (options[i].short_name && s + 3 < shorts_cap) {
            shorts[s++] = (char)options[i].short_name;
            shorts[s++] = ':';
        }
    }
    out[n++] = (struct option){"help", no_argument, NULL, 'h'};
    out[n] = (struct option){NULL, 0, NULL, 0};
    shorts[s++] = 'h';
    shorts[s] = 0;
}

static const OptionSpec *option_for_code(int code)
{
    if (code >= 256 && code < 256 + (int)N_OPTIONS)
        return &options[code - 256];
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].short_name == code)
            return &options[i];
    return NULL;
}

/* One pass over argv; with `only_config`, just finds --config. */
static ConfigParse parse_argv(ProxyConfig *c, int argc, char **argv, bool only_config,
                              FILE *help_out, char *err, size_t err_len)
{
    struct option long_options[N_OPTIONS + 2];
    char shorts[32];
    build_long_options(long_options, shorts, sizeof shorts);
    optind = 1;
    opterr = 0;
    int code;
    while ((code = getopt_long(argc, argv, shorts, long_options, NULL)) != -1) {
        if (code == 'h') {
            if (!only_config) {
                config_print_help(help_out);
                return CONFIG_HELP;
            }
            continue;
        }
        const OptionSpec *o = option_for_code(code);
        if (!o) {
            if (only_config)
                continue;
            if (optopt >= 256 || optopt == 0)
                snprintf(err, err_len, "unknown option \"%s\" (see --help)", argv[optind - 1]);
            else
                snprintf(err, err_len, "option -%c needs a value or is unknown (see --help)",
                         optopt);
            return CONFIG_ERROR;
        }
        bool is_config = strcmp(o->name, "config") == 0;
        if (only_config != is_config)
            continue;
        char why[300];
        if (!set_value(c, o, o->type == T_FLAG ? "true" : optarg, why, sizeof why)) {
            snprintf(err, err_len, "--%s: %s", o->name, why);
            return CONFIG_ERROR;
        }
    }
    if (!only_config && optind < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\"", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

static bool validate(const ProxyConfig *c, char *err, size_t err_len)
{
    if (!c->upstream || !*c->upstream) {
        snprintf(err, err_len,
                 "no upstream server: give --upstream HOST:PORT or a postgres:// "
                 "URL, or set DATABASE_URL");
        return false;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char why[300];
    if (!address_listen(c->listen, &addr, &addr_len, why, sizeof why)) {
        snprintf(err, err_len, "listen: %s", why);
        return false;
    }
    if (c->metrics && !address_listen(c->metrics, &addr, &addr_len, why, sizeof why)) {
        snprintf(err, err_len, "metrics: %s", why);
        return false;
    }
    if (c->serve && !address_listen(c->serve, &addr, &addr_len, why, sizeof why)) {
        snprintf(err, err_len, "serve: %s", why);
        return false;
    }
    if (c->serve && c->no_db) {
        snprintf(err, err_len, "--serve shows the report store: it does not go with --no-db");
        return false;
    }
    if (c->serve_token && !serve_token_valid(c->serve_token)) {
        snprintf(err, err_len,
                 "serve-token: 1 to 256 printable ASCII characters, without spaces, quotes, "
                 "backslashes, ';' or ','");
        return false;
    }
    if (!c->tls_cert != !c->tls_key) {
        snprintf(err, err_len, "--tls-cert and --tls-key go together");
        return false;
    }
    if (!c->io || (strcmp(c->io, "auto") != 0 && strcmp(c->io, "uring") != 0 &&
                   strcmp(c->io, "epoll") != 0)) {
        snprintf(err, err_len, "io: expected auto, uring or epoll, got \"%s\"", c->io ? c->io : "");
        return false;
    }
    return true;
}

ConfigParse config_load(ProxyConfig *c, int argc, char **argv, FILE *help_out, char *err,
                        size_t err_len)
{
    config_defaults(c);
    ConfigParse rc = parse_argv(c, argc, argv, true, help_out, err, err_len);
    if (rc != CONFIG_OK)
        return rc;
    if (!c->config_path) {
        const char *env = getenv("PGTALLY_CONFIG");
        if (env && *env)
            c->config_path = strdup(env);
    }
    if (c->config_path && !load_file(c, c->config_path, err, err_len))
        return CONFIG_ERROR;
    if (!load_env(c, err, err_len))
        return CONFIG_ERROR;
    rc = parse_argv(c, argc, argv, false, help_out, err, err_len);
    if (rc != CONFIG_OK)
        return rc;
    return validate(c, err, err_len) ? CONFIG_OK : CONFIG_ERROR;
}

/* ---- the settings stored with each run ------------------------------------------------- */

/* A growable text buffer: every append is bounded by the input, and one failed allocation
 * fails the whole result. */
typedef struct TextOut {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} TextOut;

static void out_append(TextOut *o, const char *s, size_t len)
{
    if (o->failed)
        return;
    if (o->cap - o->len <= len) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len <= len)
            cap *= 2;
        char *bigger = realloc(o->data, cap);
        if (!bigger) {
            o->failed = true;
            return;
        }
        o->data = bigger;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, len);
    o->len += len;
    o->data[o->len] = 0;
}

static void out_str(TextOut *o, const char *s)
{
    out_append(o, s, strlen(s));
}

static char *out_finish(TextOut *o)
{
    if (o->failed || !o->data) {
        free(o->data);
        return NULL;
    }
    return o->data;
}

/* A string value, escaped and with passwords redacted, quotes included; null for NULL. */
static void json_string_value(TextOut *o, const char *value)
{
    if (!value) {
        out_str(o, "null");
        return;
    }
    char *redacted = pq_redact_dup(value);
    size_t len = redacted ? strlen(redacted) : 0;
    char *escaped = redacted ? malloc(JSON_ESCAPED_MAX(len)) : NULL;
    if (!escaped) {
        free(redacted);
        o->failed = true;
        return;
    }
    size_t n = json_escape(escaped, JSON_ESCAPED_MAX(len), redacted, len);
    out_str(o, "\"");
    out_append(o, escaped, n);
    out_str(o, "\"");
    free(escaped);
    free(redacted);
}

/* "key":"value" (or null), the value escaped after its passwords are redacted. */
static void json_string_member(TextOut *o, const char *key, const char *value)
{
    out_str(o, o->len > 1 ? ",\"" : "\"");
    out_str(o, key);
    out_str(o, "\":");
    json_string_value(o, value);
}

static void json_raw_member(TextOut *o, const char *key, const char *raw)
{
    out_str(o, o->len > 1 ? ",\"" : "\"");
    out_str(o, key);
    out_str(o, "\":");
    out_str(o, raw);
}

void config_tally_options(const ProxyConfig *c, TallyOptions *o)
{
    tally_options_default(o);
    o->request_gap_us = (int64_t)(c->request_gap * 1e6);
    o->keep_samples = c->samples;
    for (size_t i = 0; i < N_CONFIG_THRESHOLDS; i++)
        tally_threshold_set(o, config_thresholds[i].id, config_threshold_value(c, i));
}

char *config_settings_json_with_changes(const ProxyConfig *c, const char *upstream,
                                        const char *changes)
{
    TextOut o = {0};
    char number[64];
    /* The thresholds in force: the tally's defaults, then what this config sets. */
    TallyOptions in_force;
    config_tally_options(c, &in_force);
    out_str(&o, "{");
    json_string_member(&o, "listen", c->listen);
    json_string_member(&o, "upstream", upstream ? upstream : c->upstream);
    json_string_member(&o, "db", c->no_db ? NULL : c->db_path);
    snprintf(number, sizeof number, "%.3f", c->request_gap);
    json_raw_member(&o, "request_gap_s", number);
    json_raw_member(&o, "samples", c->samples ? "true" : "false");
    snprintf(number, sizeof number, "%zu", c->max_sql_bytes);
    json_raw_member(&o, "max_sql_bytes", number);
    /* Every finding threshold in force, so a report can say what its findings mean. */
    for (int i = 0; i < TALLY_N_THRESHOLDS; i++) {
        snprintf(number, sizeof number, "%llu",
                 (unsigned long long)tally_threshold_get(&in_force, (TallyThresholdId)i));
        json_raw_member(&o, tally_threshold_key((TallyThresholdId)i), number);
    }
    if (changes)
        json_raw_member(&o, "settings_changes", changes);
    out_str(&o, "}");
    return out_finish(&o);
}

char *config_settings_json(const ProxyConfig *c, const char *upstream)
{
    return config_settings_json_with_changes(c, upstream, NULL);
}

static bool field_equal(const ProxyConfig *a, const ProxyConfig *b, const OptionSpec *o)
{
    const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
    switch (o->type) {
    case T_STRING: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
        return (!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0);
    }
    case T_SECONDS:
        return *(const double *)fa == *(const double *)fb;
    case T_COUNT:
        return *(const size_t *)fa == *(const size_t *)fb;
    case T_BOOL:
    case T_FLAG:
        return *(const bool *)fa == *(const bool *)fb;
    case T_LEVEL:
        return *(const int *)fa == *(const int *)fb;
    }
    return true;
}

void config_restart_needed(const ProxyConfig *a, const ProxyConfig *b, char *out, size_t len)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < N_OPTIONS && n + 1 < len; i++) {
        if (options[i].reloadable || field_equal(a, b, &options[i]))
            continue;
        n += (size_t)snprintf(out + n, len - n, "%s--%s", n ? ", " : "", options[i].name);
    }
}

void config_apply_reloadable(ProxyConfig *live, const ProxyConfig *fresh)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptionSpec *o = &options[i];
        if (!o->reloadable || o->type == T_STRING)
            continue;
        void *dst = (char *)live + o->offset;
        const void *src = (const char *)fresh + o->offset;
        switch (o->type) {
        case T_SECONDS:
            *(double *)dst = *(const double *)src;
            break;
        case T_COUNT:
            *(size_t *)dst = *(const size_t *)src;
            break;
        case T_BOOL:
        case T_FLAG:
            *(bool *)dst = *(const bool *)src;
            break;
        case T_LEVEL:
            *(int *)dst = *(const int *)src;
            break;
        case T_STRING:
            break;
        }
    }
}

static void option_value_json(TextOut *o, const ProxyConfig *c, const OptionSpec *spec)
{
    const void *f = (const char *)c + spec->offset;
    char number[64];
    switch (spec->type) {
    case T_STRING:
        json_string_value(o, *(char *const *)f);
        return;
    case T_SECONDS:
        snprintf(number, sizeof number, "%.3f", *(const double *)f);
        break;
    case T_COUNT:
        snprintf(number, sizeof number, "%zu", *(const size_t *)f);
        break;
    case T_BOOL:
    case T_FLAG:
        snprintf(number, sizeof number, "%s", *(const bool *)f ? "true" : "false");
        break;
    case T_LEVEL:
        snprintf(number, sizeof number, "%d", *(const int *)f);
        break;
    }
    out_str(o, number);
}

char *config_change_json(const ProxyConfig *before, const ProxyConfig *after, int64_t at_us)
{
    TextOut o = {0};
    char number[32];
    snprintf(number, sizeof number, "%lld", (long long)at_us);
    out_str(&o, "{\"at_us\":");
    out_str(&o, number);
    out_str(&o, ",\"changed\":{");
    size_t n = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptionSpec *spec = &options[i];
        if (!spec->reloadable || field_equal(before, after, spec))
            continue;
        out_str(&o, n++ ? ",\"" : "\"");
        out_str(&o, spec->name);
        out_str(&o, "\":{\"from\":");
        option_value_json(&o, before, spec);
        out_str(&o, ",\"to\":");
        option_value_json(&o, after, spec);
        out_str(&o, "}");
    }
    out_str(&o, "}}");
    char *json = out_finish(&o);
    if (json && n == 0) {
        free(json);
        return NULL;
    }
    return json;
}
