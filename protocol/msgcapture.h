/* protocol/msgcapture — the per-message step between the bytes of one direction of a
 * connection and the tracker.
 *
 * Owns: framing the stream of typed messages (pgwire's framer), capturing the body of each
 * message the consumer wants, up to a limit, into one buffer reused from message to message,
 * and, for the client's direction, checking every message against the server's rules (header
 * first, then the body once captured whole). The proxy's relay and the wire fuzzer both run
 * their bytes through this code.
 *
 * Pure: no I/O, no clock, no globals. The only allocation is the capture buffer, which grows
 * to the largest body captured (at most `limit` bytes) and is kept for the next message unless
 * it grew past MSGCAPTURE_RETAIN bytes: the steady state allocates nothing. */
#ifndef PGTALLY_PROTOCOL_MSGCAPTURE_H
#define PGTALLY_PROTOCOL_MSGCAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pgwire.h"

#define MSGCAPTURE_RETAIN 4096 /* a larger buffer is freed once its message is done */

typedef enum MsgDirection {
    MSG_FRONTEND, /* client -> server: validated */
    MSG_BACKEND,  /* server -> client: trusted, only framed */
} MsgDirection;

/* Says whether the consumer wants the body of a message of this type. */
typedef bool (*MsgWantsBodyFn)(uint8_t type);

typedef struct MsgCapture {
    PgwFramer framer;
    MsgDirection direction;
    MsgWantsBodyFn wants_body;
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t limit;
    bool capturing;
} MsgCapture;

/* One complete message. `body` holds its first `have` bytes (have < body_len when the limit
 * cut it, or 0 when the body was not wanted); it is never NULL and stays valid until the next
 * msgcapture_feed or msgcapture_done. */
typedef struct MsgCaptured {
    uint8_t type;
    const uint8_t *body;
    size_t have;
    size_t body_len;
} MsgCaptured;

typedef enum MsgCaptureStatus {
    MSGCAP_NEED_MORE, /* every byte was consumed and no message completed */
    MSGCAP_MESSAGE,   /* *msg filled */
    MSGCAP_INVALID,   /* the stream cannot go on: *problem says why, msg->type names the message */
    MSGCAP_NO_MEMORY, /* the capture buffer could not grow */
} MsgCaptureStatus;

void msgcapture_init(MsgCapture *mc, MsgDirection direction, size_t limit, MsgWantsBodyFn wants);
void msgcapture_free(MsgCapture *mc);

/* True between messages (no message partially framed). */
bool msgcapture_at_boundary(const MsgCapture *mc);

/* Consumes bytes from data[0..len) until one message completes, or all are consumed, or the
 * stream turns out invalid. *used gets the bytes consumed. Call again with the rest. After
 * MSGCAP_INVALID or MSGCAP_NO_MEMORY the stream must not be fed any more. */
MsgCaptureStatus msgcapture_feed(MsgCapture *mc, const uint8_t *data, size_t len, size_t *used,
                                 MsgCaptured *msg, const char **problem);

/* The consumer is done with the last message: a buffer grown past MSGCAPTURE_RETAIN goes back
 * to the allocator, so an idle connection holds at most a small one. */
void msgcapture_done(MsgCapture *mc);

#endif
