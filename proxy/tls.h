/* proxy/tls — TLS on both legs, following libpq's conventions.
 *
 * Owns: the upstream TLS settings (sslmode disable/allow/prefer/require/verify-ca/verify-full,
 * sslrootcert, sslcert, sslkey — from the --upstream URL's query string or the PGSSLMODE-style
 * environment variables), the client-side server context (--tls-cert/--tls-key), making SSL
 * objects for sockets, and turning OpenSSL's error state into a message a user can act on.
 * No sockets of its own: the session drives handshakes and I/O. */
#ifndef PGTALLY_PROXY_TLS_H
#define PGTALLY_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

typedef enum SslMode {
    SSLMODE_DISABLE,
    SSLMODE_ALLOW, /* plaintext; pgtally does not retry with TLS (libpq would) */
    SSLMODE_PREFER,
    SSLMODE_REQUIRE,
    SSLMODE_VERIFY_CA,
    SSLMODE_VERIFY_FULL,
} SslMode;

typedef struct UpstreamTls {
    SslMode mode;
    SSL_CTX *ctx;   /* NULL when mode is disable or allow, and for prefer until a server first
                     * accepts TLS */
    char host[256]; /* for verify-full and SNI */
} UpstreamTls;

/* Parses an sslmode name; false for anything else. */
bool tls_parse_sslmode(const char *name, SslMode *out);
const char *tls_sslmode_name(SslMode mode);

/* Reads sslmode / sslrootcert / sslcert / sslkey from a postgres:// URL's query string,
 * falling back to PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, then libpq's defaults
 * (prefer; ~/.postgresql/root.crt for verification). Builds the context (loading OpenSSL,
 * see proxy/openssl_dl) for require and the verifying modes, and for prefer with a client
 * certificate; plain prefer builds it at the first server that accepts TLS, so a proxy whose
 * upstream has no TLS never loads OpenSSL. */
bool tls_upstream_init(UpstreamTls *tls, const char *upstream_spec, const char *host, char *err,
                       size_t err_len);
void tls_upstream_free(UpstreamTls *tls);

/* A server-side context for terminating clients' TLS (loads OpenSSL). NULL with a message on
 * failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *err, size_t err_len);

/* A new SSL object for a non-blocking socket. For the upstream: makes tls->ctx first if it is
 * not made yet (sslmode=prefer), sets SNI and, for verify-full, the host name to check; NULL
 * with a message when OpenSSL cannot be loaded, memory runs out or the host name is bad. */
SSL *tls_upstream_ssl_new(UpstreamTls *tls, int fd, char *err, size_t err_len);
/* For a client (server_ctx from tls_server_ctx_new). NULL when out of memory. */
SSL *tls_client_ssl_new(SSL_CTX *server_ctx, int fd);

/* Describes why a TLS operation failed: the verification result when there is one, else
 * the OpenSSL error queue (which it clears). */
void tls_describe_error(SSL *ssl, int ssl_error, char *out, size_t out_len);

#endif
