/* protocol/msgcapture — see msgcapture.h.
 *
 * Under AddressSanitizer the unused tail of the capture buffer is poisoned, so a consumer that
 * reads past the captured bytes is caught as surely as with an exact-size buffer, while the
 * shipped code keeps its reused, growing buffer. */
#include "protocol/msgcapture.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define MSGCAPTURE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSGCAPTURE_ASAN 1
#endif
#endif

#ifdef MSGCAPTURE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MSGCAPTURE_FIRST_CAP 128 /* idle clients stay small */

void msgcapture_init(MsgCapture *mc, MsgDirection direction, size_t limit, MsgWantsBodyFn wants)
{
    memset(mc, 0, sizeof *mc);
    pgw_framer_init(&mc->framer);
    mc->direction = direction;
    mc->limit = limit;
    mc->wants_body = wants;
}

static void buf_free(MsgCapture *mc)
{
    UNPOISON(mc->buf, mc->cap);
    free(mc->buf);
    mc->buf = NULL;
    mc->cap = 0;
    mc->len = 0;
}

void msgcapture_free(MsgCapture *mc)
{
    buf_free(mc);
    mc->capturing = false;
}

bool msgcapture_at_boundary(const MsgCapture *mc)
{
    return pgw_framer_at_boundary(&mc->framer);
}

void msgcapture_done(MsgCapture *mc)
{
    mc->capturing = false;
    mc->len = 0;
    if (mc->cap > MSGCAPTURE_RETAIN)
        buf_free(mc);
    else
        POISON(mc->buf, mc->cap);
}

static bool append(MsgCapture *mc, const uint8_t *data, size_t len)
{
    if (len > mc->limit - mc->len)
        len = mc->limit - mc->len;
    if (len == 0)
        return true;
    size_t need = mc->len + len;
    if (need > mc->cap) {
        size_t cap = mc->cap ? mc->cap * 2 : MSGCAPTURE_FIRST_CAP;
        while (cap < need)
            cap *= 2;
        if (cap > mc->limit)
            cap = mc->limit;
        UNPOISON(mc->buf, mc->cap);
        uint8_t *buf = realloc(mc->buf, cap);
        if (!buf) {
            POISON(mc->buf + mc->len, mc->cap - mc->len);
            return false;
        }
        mc->buf = buf;
        mc->cap = cap;
        POISON(mc->buf + mc->len, mc->cap - mc->len);
    }
    UNPOISON(mc->buf + mc->len, len);
    memcpy(mc->buf + mc->len, data, len);
    mc->len += len;
    return true;
}

MsgCaptureStatus msgcapture_feed(MsgCapture *mc, const uint8_t *data, size_t len, size_t *used,
                                 MsgCaptured *msg, const char **problem)
{
    static const uint8_t empty[1];
    size_t pos = 0;
    *problem = NULL;
    while (pos < len) {
        PgwChunk chunk;
        size_t n;
        PgwFrameStatus st = pgw_framer_feed(&mc->framer, data + pos, len - pos, &chunk, &n);
        pos += n;
        if (st == PGW_FRAME_NEED_MORE)
            break;
        if (st == PGW_FRAME_BAD_LENGTH) {
            msg->type = mc->framer.header[0];
            *problem = "invalid message length";
            *used = pos;
            return MSGCAP_INVALID;
        }
        if (chunk.first) {
            if (mc->direction == MSG_FRONTEND) {
                *problem = pgw_frontend_header_problem(chunk.type, chunk.body_len);
                if (*problem) {
                    msg->type = chunk.type;
                    *used = pos;
                    return MSGCAP_INVALID;
                }
            }
            mc->capturing = mc->wants_body(chunk.type);
            mc->len = 0;
        }
        if (mc->capturing && !append(mc, chunk.data, chunk.len)) {
            *used = pos;
            return MSGCAP_NO_MEMORY;
        }
        if (!chunk.last)
            continue;
        msg->type = chunk.type;
        msg->body = mc->len ? mc->buf : empty;
        msg->have = mc->len;
        msg->body_len = chunk.body_len;
        *used = pos;
        /* Only a whole body can be checked; a cut one was long enough to be a Query/Parse. */
        if (mc->direction == MSG_FRONTEND && mc->capturing && mc->len == chunk.body_len) {
            *problem = pgw_frontend_body_problem(chunk.type, msg->body, msg->have);
            if (*problem)
                return MSGCAP_INVALID;
        }
        return MSGCAP_MESSAGE;
    }
    *used = pos;
    return MSGCAP_NEED_MORE;
}
