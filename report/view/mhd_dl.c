/* report/view/mhd_dl — see mhd_dl.h. */
#include "report/view/mhd_dl.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>

#include "report/dynlib.h"

/* Written once under pthread_once, read-only afterwards: one libmicrohttpd per process, like
 * the mapping itself. */
static __typeof__(MHD_start_daemon_va) *p_start_daemon_va;
static __typeof__(MHD_stop_daemon) *p_stop_daemon;
static __typeof__(MHD_get_daemon_info) *p_get_daemon_info;
static __typeof__(MHD_lookup_connection_value) *p_lookup_connection_value;
static __typeof__(MHD_create_response_from_buffer) *p_create_response_from_buffer;
static __typeof__(MHD_add_response_header) *p_add_response_header;
static __typeof__(MHD_queue_response) *p_queue_response;
static __typeof__(MHD_destroy_response) *p_destroy_response;

static DynLibOnce state = DYNLIB_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {
        "MHD_start_daemon_va",
        "MHD_stop_daemon",
        "MHD_get_daemon_info",
        "MHD_lookup_connection_value",
        "MHD_create_response_from_buffer",
        "MHD_add_response_header",
        "MHD_queue_response",
        "MHD_destroy_response",
    };
    static void **const slots[] = {
        (void **)&p_start_daemon_va,
        (void **)&p_stop_daemon,
        (void **)&p_get_daemon_info,
        (void **)&p_lookup_connection_value,
        (void **)&p_create_response_from_buffer,
        (void **)&p_add_response_header,
        (void **)&p_queue_response,
        (void **)&p_destroy_response,
    };
    _Static_assert(sizeof names / sizeof names[0] == sizeof slots / sizeof slots[0],
                   "one slot per name");
    static const DynLib lib = {
        .soname = "libmicrohttpd.so.12",
        .package = "libmicrohttpd12",
        .needed_for = "serving the report pages",
        .names = names,
        .slots = slots,
        .count = sizeof names / sizeof names[0],
    };
    state.loaded = dynlib_load(&lib, state.err, sizeof state.err);
}

bool mhd_dl_load(char *err, size_t err_len)
{
    return dynlib_once(&state, load, err, err_len);
}

DYNLIB_FORWARDER struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port,
                                                     MHD_AcceptPolicyCallback apc, void *apc_cls,
                                                     MHD_AccessHandlerCallback dh, void *dh_cls,
                                                     ...)
{
    if (!mhd_dl_load(NULL, 0))
        return NULL;
    va_list ap;
    va_start(ap, dh_cls);
    struct MHD_Daemon *d = p_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

DYNLIB_FORWARDER void MHD_stop_daemon(struct MHD_Daemon *daemon)
{
    p_stop_daemon(daemon);
}

DYNLIB_FORWARDER const union MHD_DaemonInfo *
MHD_get_daemon_info(struct MHD_Daemon *daemon, enum MHD_DaemonInfoType info_type, ...)
{
    return p_get_daemon_info(daemon, info_type);
}

DYNLIB_FORWARDER const char *MHD_lookup_connection_value(struct MHD_Connection *connection,
                                                         enum MHD_ValueKind kind, const char *key)
{
    return p_lookup_connection_value(connection, kind, key);
}

DYNLIB_FORWARDER struct MHD_Response *
MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
    return p_create_response_from_buffer(size, buffer, mode);
}

DYNLIB_FORWARDER enum MHD_Result MHD_add_response_header(struct MHD_Response *response,
                                                         const char *header, const char *content)
{
    return p_add_response_header(response, header, content);
}

DYNLIB_FORWARDER enum MHD_Result MHD_queue_response(struct MHD_Connection *connection,
                                                    unsigned int status_code,
                                                    struct MHD_Response *response)
{
    return p_queue_response(connection, status_code, response);
}

DYNLIB_FORWARDER void MHD_destroy_response(struct MHD_Response *response)
{
    p_destroy_response(response);
}
