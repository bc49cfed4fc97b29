/* proxy/config — the proxy's settings: one table of options, four sources.
 *
 * Owns: the ProxyConfig struct, its defaults, and filling it from (lowest to highest
 * precedence) built-in defaults, a config file (`--config FILE` or PGTALLY_CONFIG; INI, keys
 * named like the long options, in a `[proxy]` section), environment variables (PGTALLY_<NAME>,
 * and DATABASE_URL for the upstream), and the command line. `--help` is generated from the same
 * table, so every option is listed with its default, environment variable and whether SIGHUP
 * reloads it. Errors name their source: `FILE:LINE: problem`, `PGTALLY_X: problem`, `--x: …`.
 * The one process-wide config: filled at start-up (and on SIGHUP, into a fresh struct). */
#ifndef PGTALLY_PROXY_CONFIG_H
#define PGTALLY_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ProxyConfig {
    char *config_path; /* the file the settings came from, or NULL */
    char *listen;      /* HOST:PORT */
    char *upstream;    /* HOST:PORT, socket dir, or postgres:// URL */
    char *log_queries; /* JSON-lines file, or NULL */
    char *db_path;     /* the report store: an SQLite path or a PostgreSQL URL/conninfo */
    char *db_schema;   /* PostgreSQL store: the schema of pgtally's tables */
    char *run_label;   /* runs.label, or NULL */
    char *instance;    /* runs.instance: $DYNO or the host name by default */
    char *metrics;     /* HOST:PORT of the Prometheus endpoint, or NULL */
    char *serve;       /* HOST:PORT of the report's web pages, or NULL */
    char *serve_token; /* the token those pages require, or NULL */
    char *tls_cert;    /* with tls_key: answer clients' SSLRequest with 'S' */
    char *tls_key;
    char *io;               /* the relay's I/O: "auto", "uring" or "epoll" */
    double grace_seconds;   /* SIGTERM: how long open connections may finish */
    double connect_timeout; /* upstream connect and TLS negotiation */
    double startup_timeout; /* a client must finish its startup packet within this */
    double idle_timeout;    /* close clients idle this long (0: never) */
    double request_gap;     /* seconds of idleness that end a request */
    size_t max_client_conn;
    size_t max_sql_bytes;    /* SQL text captured per statement */
    size_t max_track_bytes;  /* kept by every connection's tracker, together */
    bool samples;            /* store one example with literal values per fingerprint */
    bool no_db;              /* relay and log only: no tallies, no report store */
    int log_level;           /* a LogLevel */
    size_t n_plus_one_calls; /* findings thresholds (defaults in docs/operations.md) */
    size_t n_plus_one_distinct;
    size_t duplicate_min;
    size_t overfetch_rows;
    size_t overfetch_bytes;
} ProxyConfig;

typedef enum ConfigParse {
    CONFIG_OK,
    CONFIG_HELP,  /* --help was printed: exit 0 */
    CONFIG_ERROR, /* message in err: exit 2 */
} ConfigParse;

void config_defaults(ProxyConfig *config);
void config_free(ProxyConfig *config);

/* Everything but the command line's own options: defaults, then the config file named by
 * `--config` in argv (or PGTALLY_CONFIG), then the environment, then argv. argv[0] is the
 * subcommand name. */
ConfigParse config_load(ProxyConfig *config, int argc, char **argv, FILE *help_out, char *err,
                        size_t err_len);

/* SIGHUP reloads by calling config_load again with the same argv into a fresh struct: the
 * file and environment are read anew and the command line still wins. */

/* Names the options whose value differs but cannot change without a restart; "" if none. */
void config_restart_needed(const ProxyConfig *a, const ProxyConfig *b, char *out, size_t len);

/* Copies the settings marked reloadable ([R] in --help) from fresh into live. */
void config_apply_reloadable(ProxyConfig *live, const ProxyConfig *fresh);

void config_print_help(FILE *out);

struct TallyOptions;

/* The tally's options for this config: report/tally's defaults, then the request gap,
 * samples and every finding threshold this config sets (carried by the one table config.c
 * keeps next to report/tally's, so a threshold added there is carried here too). The daemon
 * builds its tally from it at start and on SIGHUP. */
void config_tally_options(const ProxyConfig *config, struct TallyOptions *options);

/* The settings stored with each run, as a JSON object (listen, upstream, db, request_gap_s,
 * samples, max_sql_bytes, and every finding threshold in force: n_plus_one_calls,
 * n_plus_one_distinct, duplicate_min, overfetch_rows, overfetch_bytes,
 * request_overfetch_rows, request_overfetch_bytes). `upstream` is the address actually used
 * (config->upstream when NULL). Every string is escaped, and passwords never appear (see
 * pq_redact). Returns a heap string, or NULL when out of memory. */
char *config_settings_json(const ProxyConfig *config, const char *upstream);

/* The same with a "settings_changes" member holding `changes`, a JSON array of
 * config_change_json objects (NULL: no member). */
char *config_settings_json_with_changes(const ProxyConfig *config, const char *upstream,
                                        const char *changes);

/* One SIGHUP's changes as a JSON object {"at_us": T, "changed": {"OPTION": {"from": V,
 * "to": V}, ...}}: the reloadable options whose value differs between `before` and `after`
 * (by their --option name; strings escaped, passwords redacted). NULL when none changed, or
 * out of memory. */
char *config_change_json(const ProxyConfig *before, const ProxyConfig *after, int64_t at_us);

#endif
