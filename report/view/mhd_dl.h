/* report/view/mhd_dl — libmicrohttpd, loaded when pages are first served.
 *
 * Owns: the definitions of the MHD_* functions report/view/serve calls (typed by
 * <microhttpd.h>), forwarding to libmicrohttpd.so.12 once mhd_dl_load has succeeded. serve
 * calls mhd_dl_load before it starts a daemon; every other call takes that daemon or one of
 * its connections or responses.
 *
 * Why at run time: libmicrohttpd brings GnuTLS and its dependencies (p11-kit, nettle, gmp,
 * libidn2, libunistring, libtasn1, libffi): mapping and relocating them was the largest part
 * of every `pgtally` command's start (6 ms of CPU, 170 page faults), and only `pgtally serve`
 * and `proxy --serve` use them.
 *
 * MHD_get_daemon_info forwards no variadic arguments: no information type pgtally asks for
 * takes any. Thread use: mhd_dl_load may be called from any thread (it runs once). */
#ifndef PGTALLY_REPORT_VIEW_MHD_DL_H
#define PGTALLY_REPORT_VIEW_MHD_DL_H

#include <stdbool.h>
#include <stddef.h>

/* Loads libmicrohttpd.so.12 (once per process). False with the reason: which library, which
 * package provides it. */
bool mhd_dl_load(char *err, size_t err_len);

#endif
