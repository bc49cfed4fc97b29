/* proxy/config — the proxy's settings, as parsed from the command line (proxy/main.c).
 *
 * Owns: the ProxyConfig struct and its defaults. The one process-wide config: filled once at
 * start-up, read-only afterwards. */
#ifndef PGTALLY_PROXY_CONFIG_H
#define PGTALLY_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ProxyConfig {
    const char *listen;      /* HOST:PORT */
    const char *upstream;    /* HOST:PORT or postgres:// URL */
    const char *log_queries; /* JSON-lines file, or NULL */
    double grace_seconds;    /* SIGTERM: how long open connections may finish */
    double connect_timeout;  /* upstream connect */
    double startup_timeout;  /* client must finish its startup packet within this */
    size_t max_client_conn;
    size_t max_sql_bytes;    /* SQL text captured per statement */
    const char *db_path;     /* the SQLite report store */
    bool samples;            /* store one example with literal values per fingerprint */
    double request_gap;      /* seconds of idleness that end a request */
    const char *tls_cert;    /* with tls_key: answer clients' SSLRequest with 'S' */
    const char *tls_key;
} ProxyConfig;

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:6432"
#define CONFIG_DEFAULT_GRACE 10.0
#define CONFIG_DEFAULT_CONNECT_TIMEOUT 10.0
#define CONFIG_DEFAULT_STARTUP_TIMEOUT 30.0
#define CONFIG_DEFAULT_MAX_CLIENT_CONN 10000
#define CONFIG_DEFAULT_MAX_SQL_BYTES 65536
#define CONFIG_DEFAULT_DB "pgtally.db"
#define CONFIG_DEFAULT_REQUEST_GAP 1.0

#endif
