/* proxy/openssl_dl — OpenSSL (libssl, with libcrypto), loaded when TLS is first needed.
 *
 * Owns: the definitions of the OpenSSL functions pgtally calls (typed by OpenSSL's headers),
 * forwarding to libssl.so.3 once openssl_dl_load has succeeded. Callers use the OpenSSL API
 * as usual; proxy/tls calls openssl_dl_load before it makes the first context, which comes
 * before any other OpenSSL call (every other one takes a context, an SSL object or reports
 * on one).
 *
 * Why at run time: libcrypto is the largest library the proxy would map (3.4 MB of it
 * resident once initialised), and relocating libssl and libcrypto is a third of the start-up
 * time of every `pgtally` command. A proxy whose upstream answers "no TLS" to sslmode=prefer
 * and which terminates no client TLS never needs them, nor do the other commands.
 *
 * SSL_free(NULL) and SSL_CTX_free(NULL) do nothing, loaded or not, as in OpenSSL.
 * Thread use: openssl_dl_load may be called from any thread (it runs once). */
#ifndef PGTALLY_PROXY_OPENSSL_DL_H
#define PGTALLY_PROXY_OPENSSL_DL_H

#include <stdbool.h>
#include <stddef.h>

/* Loads libssl.so.3 (once per process). False with the reason: which library, which package
 * provides it. */
bool openssl_dl_load(char *err, size_t err_len);

#endif
