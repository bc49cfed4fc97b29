/* proxy/tls — see tls.h. */
#include "proxy/tls.h"
#include "proxy/openssl_dl.h"
#include "proxy/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static const char *const mode_names[] = {"disable", "allow",     "prefer",
                                         "require", "verify-ca", "verify-full"};

bool tls_parse_sslmode(const char *name, SslMode *out)
{
    for (int i = 0; i < 6; i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (SslMode)i;
            return true;
        }
    }
    return false;
}

const char *tls_sslmode_name(SslMode mode)
{
    return mode_names[mode];
}

/* URL parameter, else environment variable, else "". */
static void setting(const char *spec, const char *key, const char *env, char *out, size_t cap)
{
    bool too_long;
    if (upstream_url_param(spec, key, out, cap, &too_long))
        return;
    if (too_long) { /* never fall back to the environment for a value given but unusable */
        snprintf(out, cap, "(%s too long)", key);
        return;
    }
    const char *v = getenv(env);
    snprintf(out, cap, "%s", v ? v : "");
}

static void openssl_errors(char *out, size_t out_len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(out, out_len, "%s", errno ? strerror(errno) : "unknown TLS error");
        return;
    }
    ERR_error_string_n(e, out, out_len);
    ERR_clear_error();
}

/* Builds tls->ctx for tls->mode: loads OpenSSL, then the root certificate for the verifying
 * modes and the client certificate when one is set. */
static bool upstream_ctx_new(UpstreamTls *tls, const char *root_setting, const char *cert,
                             const char *key, char *err, size_t err_len)
{
    char rootcert[1024];
    snprintf(rootcert, sizeof rootcert, "%s", root_setting);
    if (!openssl_dl_load(err, err_len))
        return false;

    tls->ctx = SSL_CTX_new(TLS_client_method());
    if (!tls->ctx) {
        openssl_errors(err, err_len);
        return false;
    }
    SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls->mode >= SSLMODE_VERIFY_CA) {
        char fallback[1024];
        if (!rootcert[0]) {
            const char *home = getenv("HOME");
            snprintf(fallback, sizeof fallback, "%s/.postgresql/root.crt", home ? home : "");
            snprintf(rootcert, sizeof rootcert, "%s", fallback);
        }
        bool ok = strcmp(rootcert, "system") == 0
                      ? SSL_CTX_set_default_verify_paths(tls->ctx) == 1
                      : SSL_CTX_load_verify_locations(tls->ctx, rootcert, NULL) == 1;
        if (!ok) {
            char why[256];
            openssl_errors(why, sizeof why);
            snprintf(err, err_len,
                     "sslmode=%s needs a root certificate: cannot load \"%s\" (%s); set "
                     "sslrootcert",
                     mode_names[tls->mode], rootcert, why);
            tls_upstream_free(tls);
            return false;
        }
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cert[0]) {
        if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls->ctx, key[0] ? key : cert, SSL_FILETYPE_PEM) != 1) {
            char why[256];
            openssl_errors(why, sizeof why);
            snprintf(err, err_len, "cannot load client certificate \"%s\" / key \"%s\": %s", cert,
                     key, why);
            tls_upstream_free(tls);
            return false;
        }
    }
    return true;
}

bool tls_upstream_init(UpstreamTls *tls, const char *spec, const char *host, char *err,
                       size_t err_len)
{
    memset(tls, 0, sizeof *tls);
    snprintf(tls->host, sizeof tls->host, "%s", host);
    char mode[32], rootcert[1024], cert[1024], key[1024];
    setting(spec, "sslmode", "PGSSLMODE", mode, sizeof mode);
    setting(spec, "sslrootcert", "PGSSLROOTCERT", rootcert, sizeof rootcert);
    setting(spec, "sslcert", "PGSSLCERT", cert, sizeof cert);
    setting(spec, "sslkey", "PGSSLKEY", key, sizeof key);
    tls->mode = SSLMODE_PREFER;
    if (mode[0] && !tls_parse_sslmode(mode, &tls->mode)) {
        snprintf(err, err_len,
                 "invalid sslmode \"%s\" (disable, allow, prefer, require, verify-ca, "
                 "verify-full)",
                 mode);
        return false;
    }
    if (tls->mode <= SSLMODE_ALLOW)
        return true;
    /* prefer (the default) asks for TLS but takes plaintext: most upstreams on a sidecar's
     * loopback or private network answer "no", and then OpenSSL is never needed. Its context
     * is made at the first "yes" instead (it reads no file unless a client certificate is
     * set, so there is little that can fail late). Any stricter mode checks everything now. */
    if (tls->mode == SSLMODE_PREFER && !cert[0])
        return true;
    return upstream_ctx_new(tls, rootcert, cert, key, err, err_len);
}

void tls_upstream_free(UpstreamTls *tls)
{
    if (tls->ctx)
        SSL_CTX_free(tls->ctx);
    tls->ctx = NULL;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *err, size_t err_len)
{
    if (!openssl_dl_load(err, err_len))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_errors(err, err_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        char why[256];
        openssl_errors(why, sizeof why);
        snprintf(err, err_len, "--tls-cert %s: %s", cert_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        openssl_errors(why, sizeof why);
        snprintf(err, err_len, "--tls-key %s: %s", key_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tls_upstream_ssl_new(UpstreamTls *tls, int fd, char *err, size_t err_len)
{
    if (!tls->ctx && !upstream_ctx_new(tls, "", "", "", err, err_len))
        return NULL;
    SSL *ssl = SSL_new(tls->ctx);
    if (!ssl) {
        snprintf(err, err_len, "could not set up TLS: out of memory");
        return NULL;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    bool ip = is_ip_literal(tls->host);
    if (!ip && tls->host[0] != '/')
        SSL_set_tlsext_host_name(ssl, tls->host);
    if (tls->mode == SSLMODE_VERIFY_FULL) {
        bool ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), tls->host) == 1
                     : SSL_set1_host(ssl, tls->host) == 1;
        if (!ok) {
            snprintf(err, err_len, "could not set up TLS: bad host name \"%s\"", tls->host);
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

SSL *tls_client_ssl_new(SSL_CTX *server_ctx, int fd)
{
    SSL *ssl = SSL_new(server_ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_describe_error(SSL *ssl, int ssl_error, char *out, size_t out_len)
{
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        snprintf(out, out_len, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return;
    }
    if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(out, out_len, "%s", errno ? strerror(errno) : "connection closed during TLS");
        return;
    }
    openssl_errors(out, out_len);
}
