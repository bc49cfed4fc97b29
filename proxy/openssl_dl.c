/* proxy/openssl_dl — see openssl_dl.h. */
#include "proxy/openssl_dl.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "report/dynlib.h"

/* Functions that return a value: X(return type, name, parameters, arguments). libcrypto's
 * (ERR_*, X509_*) are found through libssl's handle, which loads libcrypto with it. */
#define OPENSSL_FORWARD(X)                                                                         \
    X(const SSL_METHOD *, TLS_client_method, (void), ())                                           \
    X(const SSL_METHOD *, TLS_server_method, (void), ())                                           \
    X(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *m), (m))                                          \
    X(long, SSL_CTX_ctrl, (SSL_CTX * c, int cmd, long l, void *p), (c, cmd, l, p))                 \
    X(int, SSL_CTX_check_private_key, (const SSL_CTX *c), (c))                                     \
    X(int, SSL_CTX_load_verify_locations, (SSL_CTX * c, const char *file, const char *path),       \
      (c, file, path))                                                                             \
    X(int, SSL_CTX_set_default_verify_paths, (SSL_CTX * c), (c))                                   \
    X(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * c, const char *file, int type),                 \
      (c, file, type))                                                                             \
    X(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * c, const char *file), (c, file))         \
    X(SSL *, SSL_new, (SSL_CTX * c), (c))                                                          \
    X(long, SSL_ctrl, (SSL * s, int cmd, long l, void *p), (s, cmd, l, p))                         \
    X(int, SSL_set_fd, (SSL * s, int fd), (s, fd))                                                 \
    X(int, SSL_set1_host, (SSL * s, const char *host), (s, host))                                  \
    X(X509_VERIFY_PARAM *, SSL_get0_param, (SSL * s), (s))                                         \
    X(int, SSL_do_handshake, (SSL * s), (s))                                                       \
    X(int, SSL_read, (SSL * s, void *buf, int n), (s, buf, n))                                     \
    X(int, SSL_write, (SSL * s, const void *buf, int n), (s, buf, n))                              \
    X(int, SSL_pending, (const SSL *s), (s))                                                       \
    X(int, SSL_get_error, (const SSL *s, int ret), (s, ret))                                       \
    X(long, SSL_get_verify_result, (const SSL *s), (s))                                            \
    X(const char *, SSL_get_version, (const SSL *s), (s))                                          \
    X(unsigned long, ERR_get_error, (void), ())                                                    \
    X(unsigned long, ERR_peek_error, (void), ())                                                   \
    X(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM * p, const char *ip), (p, ip))        \
    X(const char *, X509_verify_cert_error_string, (long n), (n))

/* Functions without a value: V(name, parameters, arguments). */
#define OPENSSL_FORWARD_VOID(V)                                                                    \
    V(SSL_CTX_set_verify, (SSL_CTX * c, int mode, SSL_verify_cb cb), (c, mode, cb))                \
    V(SSL_set_connect_state, (SSL * s), (s))                                                       \
    V(SSL_set_accept_state, (SSL * s), (s))                                                        \
    V(ERR_clear_error, (void), ())                                                                 \
    V(ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len))

/* Defined by hand below: safe to call with NULL before the library is loaded. */
#define OPENSSL_OWN(O)                                                                             \
    O(SSL_free)                                                                                    \
    O(SSL_CTX_free)

/* Written once under pthread_once, read-only afterwards: one libssl per process, like the
 * mapping itself. */
#define POINTER(ret, name, params, args) static __typeof__(name) *p_##name;
#define POINTER_VOID(name, params, args) static __typeof__(name) *p_##name;
#define POINTER_OWN(name) static __typeof__(name) *p_##name;
OPENSSL_FORWARD(POINTER)
OPENSSL_FORWARD_VOID(POINTER_VOID)
OPENSSL_OWN(POINTER_OWN)
#undef POINTER
#undef POINTER_VOID
#undef POINTER_OWN

static DynLibOnce state = DYNLIB_ONCE_INIT;

static void load(void)
{
#define NAME(ret, name, params, args) #name,
#define NAME_VOID(name, params, args) #name,
#define NAME_OWN(name) #name,
#define SLOT(ret, name, params, args) (void **)&p_##name,
#define SLOT_VOID(name, params, args) (void **)&p_##name,
#define SLOT_OWN(name) (void **)&p_##name,
    static const char *const names[] = {OPENSSL_FORWARD(NAME) OPENSSL_FORWARD_VOID(NAME_VOID)
                                            OPENSSL_OWN(NAME_OWN)};
    static void **const slots[] = {OPENSSL_FORWARD(SLOT) OPENSSL_FORWARD_VOID(SLOT_VOID)
                                       OPENSSL_OWN(SLOT_OWN)};
#undef NAME
#undef NAME_VOID
#undef NAME_OWN
#undef SLOT
#undef SLOT_VOID
#undef SLOT_OWN
    static const DynLib lib = {
        .soname = "libssl.so.3",
        .package = "libssl3",
        .needed_for = "TLS",
        .names = names,
        .slots = slots,
        .count = sizeof names / sizeof names[0],
    };
    state.loaded = dynlib_load(&lib, state.err, sizeof state.err);
}

bool openssl_dl_load(char *err, size_t err_len)
{
    return dynlib_once(&state, load, err, err_len);
}

#define FORWARD(ret, name, params, args)                                                           \
    DYNLIB_FORWARDER ret name params                                                               \
    {                                                                                              \
        return p_##name args;                                                                      \
    }
#define FORWARD_VOID(name, params, args)                                                           \
    DYNLIB_FORWARDER void name params                                                              \
    {                                                                                              \
        p_##name args;                                                                             \
    }
OPENSSL_FORWARD(FORWARD)
OPENSSL_FORWARD_VOID(FORWARD_VOID)
#undef FORWARD
#undef FORWARD_VOID

DYNLIB_FORWARDER void SSL_free(SSL *s)
{
    if (s)
        p_SSL_free(s);
}

DYNLIB_FORWARDER void SSL_CTX_free(SSL_CTX *c)
{
    if (c)
        p_SSL_CTX_free(c);
}
