/* tests/fuzz/fuzz_wire.c — libFuzzer target for protocol/pgwire (framing, frontend validation,
 * decoders, the ErrorResponse builder), protocol/msgcapture (the per-message framing, capture and
 * validation step of proxy/session) and protocol/tracker, fed the way proxy/session feeds them.
 *
 * Input format (tests/fuzz/wire_corpus.py writes and records it):
 *   byte 0        limits: bits 0-1 max_sql_bytes {65536, 64, 300, 4096}; bit 2 tiny FIFO (4);
 *                 bit 3 tiny statement/portal tables (2 each); bit 4 the client stream starts
 *                 typed (no startup phase; otherwise nothing is tracked until the server's
 *                 first ReadyForQuery); bit 5 tiny byte bounds per table and shared budget
 *   then segments [hdr][len lo][len hi][len bytes]: hdr bit 0 = direction (0 client -> server,
 *                 1 server -> client), hdr >> 1 = microseconds to advance the clock. A short
 *                 last segment takes what is left. Segments are the read() boundaries, so
 *                 messages split anywhere and client and server bytes interleave as chosen.
 *
 * Invariants (a violation aborts, so the fuzzer keeps the input):
 *   - no crash, no read outside the input or the capture buffers (sanitizers: segments are
 *     exact-size copies, and msgcapture poisons its buffer's unused tail under ASan);
 *   - framer: chunks lie inside the bytes fed, offsets add up, first/last are consistent;
 *   - a frontend body that pgw_frontend_body_problem accepts decodes with its decoder; every
 *     decoder's views lie inside the body it was given, whatever the bytes;
 *   - an ErrorResponse built by pgw_build_error frames as one message and its SQLSTATE reads
 *     back;
 *   - events: conn_id right, seq = previous + 1, end_us >= start_us, SQL within the capture
 *     limit, every view readable (touched byte by byte), command/sqlstate NUL-terminated;
 *   - byte accounting: the tracker's bytes equal the shared budget's, stay within its limit,
 *     and all return to it at tracker_free;
 *   - tracker_free after any stream frees everything (LeakSanitizer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/msgcapture.h"
#include "protocol/pgwire.h"
#include "protocol/tracker.h"

#define FUZZ_REQUIRE(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire: invariant failed: %s (%s:%d)\n", what, __FILE__,           \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define BACKEND_CAPTURE_LIMIT 8192 /* as proxy/session.c sets them */
#define FRONTEND_CAPTURE_EXTRA 1024
#define STARTUP_BUFFER_SIZE (PGW_STARTUP_MAX_LEN + 1024)
#define CONN_ID 7

/* One direction of the connection. */
typedef struct FuzzPipe {
    MsgCapture msgs;  /* the code under test */
    PgwFramer framer; /* a second framer over the same bytes, for its own invariants */
    bool framing_dead;
    uint32_t expect_offset;
    bool dead; /* the session would have closed the connection */
} FuzzPipe;

typedef struct FuzzConn {
    Tracker *tracker;
    TrackerLimits limits;
    TrackerBudget budget;
    uint64_t last_seq;
    uint64_t events;
    int64_t now;
    FuzzPipe c2s;
    FuzzPipe s2c;
    bool startup_done;
    uint8_t startup[STARTUP_BUFFER_SIZE];
    size_t startup_len;
    volatile uint8_t sink; /* touched bytes end here so the reads are not optimised away */
} FuzzConn;

static void touch(FuzzConn *c, const void *p, size_t len)
{
    const volatile uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= b[i];
    c->sink ^= x;
}

static void check_view(FuzzConn *c, PgwStr s, const uint8_t *body, size_t len)
{
    const uint8_t *p = (const uint8_t *)s.ptr;
    FUZZ_REQUIRE(s.len == 0 || (p >= body && s.len <= len && p - body <= (ptrdiff_t)(len - s.len)),
                 "decoded view inside the body");
    if (s.len)
        touch(c, p, s.len);
}

static void on_event(void *ctx, const TrackerEvent *ev)
{
    FuzzConn *c = ctx;
    FUZZ_REQUIRE(ev->conn_id == CONN_ID, "event conn_id");
    FUZZ_REQUIRE(ev->seq == c->last_seq + 1, "event seq increases by one");
    c->last_seq = ev->seq;
    c->events++;
    FUZZ_REQUIRE(ev->end_us >= ev->start_us, "end_us >= start_us");
    FUZZ_REQUIRE(ev->start_us >= 0 && ev->end_us <= c->now, "times within the stream's clock");
    if (ev->sql) {
        FUZZ_REQUIRE(ev->sql_len <= c->limits.max_sql_bytes, "SQL within max_sql_bytes");
        touch(c, ev->sql, ev->sql_len);
    } else {
        FUZZ_REQUIRE(ev->sql_len == 0, "no SQL, no length");
    }
    if (ev->statement)
        touch(c, ev->statement, ev->statement_len);
    if (ev->normalized)
        touch(c, ev->normalized, ev->normalized_len);
    if (ev->application_name)
        touch(c, ev->application_name, ev->application_name_len);
    FUZZ_REQUIRE(ev->n_tags <= SQLTAGS_MAX, "tag count bound");
    for (size_t i = 0; i < ev->n_tags; i++) {
        touch(c, ev->tags[i].key, ev->tags[i].key_len);
        touch(c, ev->tags[i].value, ev->tags[i].value_len);
    }
    FUZZ_REQUIRE(memchr(ev->command, 0, sizeof ev->command) != NULL, "command terminated");
    FUZZ_REQUIRE(memchr(ev->sqlstate, 0, sizeof ev->sqlstate) != NULL, "sqlstate terminated");
}

/* ---- decoders on arbitrary bodies ------------------------------------------------------------ */

static void fuzz_decoders(FuzzConn *c, const uint8_t *body, size_t len)
{
    PgwParse parse;
    if (pgw_decode_parse(body, len, &parse)) {
        check_view(c, parse.statement, body, len);
        check_view(c, parse.query, body, len);
    }
    PgwBind bind;
    if (pgw_decode_bind(body, len, &bind)) {
        check_view(c, bind.portal, body, len);
        check_view(c, bind.statement, body, len);
        FUZZ_REQUIRE(bind.params_offset <= len, "bind params offset inside the body");
    }
    PgwExecute exec;
    if (pgw_decode_execute(body, len, &exec))
        check_view(c, exec.portal, body, len);
    PgwTarget target;
    if (pgw_decode_target(body, len, &target))
        check_view(c, target.name, body, len);
    PgwCommandComplete cc;
    if (pgw_decode_command_complete(body, len, &cc))
        check_view(c, cc.command, body, len);
    static const uint8_t codes[] = {'C', 'M', 'S', 'V', 'D', 'H'};
    for (size_t i = 0; i < sizeof codes; i++) {
        PgwStr field;
        if (pgw_error_field(body, len, codes[i], &field))
            check_view(c, field, body, len);
    }
    PgwParameterStatus ps;
    if (pgw_decode_parameter_status(body, len, &ps)) {
        check_view(c, ps.name, body, len);
        check_view(c, ps.value, body, len);
    }
    size_t pos = 0;
    PgwStr s;
    int16_t i16;
    int32_t i32;
    while (pos < len && pgw_read_cstring(body, len, &pos, &s))
        check_view(c, s, body, len);
    FUZZ_REQUIRE(pos <= len, "cstring reader stays inside");
    pos = 0;
    while (pgw_read_int16(body, len, &pos, &i16) && pgw_read_int32(body, len, &pos, &i32))
        ;
    FUZZ_REQUIRE(pos <= len, "int readers stay inside");
}

/* The decoder matching a frontend type must accept what the validator accepted. */
static void check_valid_frontend(FuzzConn *c, uint8_t type, const uint8_t *body, size_t len)
{
    PgwParse parse;
    PgwBind bind;
    PgwExecute exec;
    PgwTarget target;
    switch (type) {
    case 'P':
        FUZZ_REQUIRE(pgw_decode_parse(body, len, &parse), "valid Parse decodes");
        break;
    case 'B':
        FUZZ_REQUIRE(pgw_decode_bind(body, len, &bind), "valid Bind decodes");
        break;
    case 'E':
        FUZZ_REQUIRE(pgw_decode_execute(body, len, &exec), "valid Execute decodes");
        break;
    case 'D':
    case 'C':
        FUZZ_REQUIRE(pgw_decode_target(body, len, &target), "valid Describe/Close decodes");
        break;
    default:
        break;
    }
    (void)c;
}

/* The session answers a bad client message with an ErrorResponse naming the problem: build
 * it the same way and read it back. */
static void check_error_roundtrip(FuzzConn *c, const char *problem)
{
    uint8_t packet[512];
    size_t len = pgw_build_error(packet, sizeof packet, "FATAL", "08P01", problem);
    FUZZ_REQUIRE(len >= 5 && len <= sizeof packet, "error packet built");
    PgwFramer f;
    pgw_framer_init(&f);
    PgwChunk chunk;
    size_t used;
    FUZZ_REQUIRE(pgw_framer_feed(&f, packet, len, &chunk, &used) == PGW_FRAME_CHUNK,
                 "error packet frames");
    FUZZ_REQUIRE(chunk.type == 'E' && chunk.first && chunk.last && used == len,
                 "error packet is one whole message");
    PgwStr code;
    FUZZ_REQUIRE(pgw_error_field(chunk.data, chunk.len, 'C', &code) && code.len == 5 &&
                     memcmp(code.ptr, "08P01", 5) == 0,
                 "SQLSTATE reads back");
    touch(c, packet, len);
}

/* ---- pipes ------------------------------------------------------------------------------------
 */

/* The framer alone, on the same bytes, with its chunk invariants checked. */
static void check_framing(FuzzPipe *p, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (!p->framing_dead && pos < len) {
        PgwChunk chunk;
        size_t used;
        PgwFrameStatus st = pgw_framer_feed(&p->framer, data + pos, len - pos, &chunk, &used);
        if (st == PGW_FRAME_NEED_MORE) {
            FUZZ_REQUIRE(used == len - pos, "NEED_MORE consumes everything");
            break;
        }
        if (st == PGW_FRAME_BAD_LENGTH) {
            p->framing_dead = true;
            break;
        }
        FUZZ_REQUIRE(used <= len - pos, "framer consumed within the feed");
        FUZZ_REQUIRE(chunk.len == 0 ||
                         (chunk.data >= data + pos && chunk.data + chunk.len <= data + pos + used),
                     "chunk inside the consumed bytes");
        if (chunk.first)
            p->expect_offset = 0;
        FUZZ_REQUIRE(chunk.offset == p->expect_offset, "chunk offsets are contiguous");
        p->expect_offset += (uint32_t)chunk.len;
        FUZZ_REQUIRE(p->expect_offset <= chunk.body_len, "chunks within the body length");
        FUZZ_REQUIRE(chunk.last == (p->expect_offset == chunk.body_len), "last when complete");
        pos += used;
    }
}

/* The shipped per-message step (protocol/msgcapture), fed as proxy/session feeds it, with
 * every message handed to the tracker. */
static void feed_pipe(FuzzConn *c, FuzzPipe *p, const uint8_t *data, size_t len)
{
    check_framing(p, data, len);
    size_t pos = 0;
    while (!p->dead && pos < len) {
        MsgCaptured msg;
        const char *problem;
        size_t used;
        MsgCaptureStatus st =
            msgcapture_feed(&p->msgs, data + pos, len - pos, &used, &msg, &problem);
        FUZZ_REQUIRE(used <= len - pos, "msgcapture consumed within the feed");
        pos += used;
        if (st == MSGCAP_NEED_MORE) {
            FUZZ_REQUIRE(pos == len, "NEED_MORE consumes everything");
            break;
        }
        if (st != MSGCAP_MESSAGE) {
            FUZZ_REQUIRE(st == MSGCAP_NO_MEMORY || problem, "an invalid stream says why");
            if (problem && p->msgs.direction == MSG_FRONTEND)
                check_error_roundtrip(c, problem);
            p->dead = true;
            break;
        }
        FUZZ_REQUIRE(msg.body && msg.have <= msg.body_len && msg.have <= p->msgs.limit,
                     "captured body within its bounds");
        if (msg.have)
            fuzz_decoders(c, msg.body, msg.have);
        if (p->msgs.direction == MSG_FRONTEND) {
            if (msg.have == msg.body_len && tracker_wants_frontend_body(msg.type))
                check_valid_frontend(c, msg.type, msg.body, msg.have);
            tracker_on_frontend(c->tracker, msg.type, msg.body, msg.have, msg.body_len, c->now);
        } else {
            tracker_on_backend(c->tracker, msg.type, msg.body, msg.have, msg.body_len, c->now);
        }
        msgcapture_done(&p->msgs);
    }
}

/* The untyped startup phase, as proxy/session: SSLRequest / GSSENCRequest are answered by the
 * proxy and another packet follows; a StartupMessage switches to typed messages; anything
 * else ends the connection. Returns the bytes consumed. */
static size_t feed_startup(FuzzConn *c, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (!c->startup_done && !c->c2s.dead && pos < len) {
        size_t take = len - pos;
        if (take > sizeof c->startup - c->startup_len)
            take = sizeof c->startup - c->startup_len;
        memcpy(c->startup + c->startup_len, data + pos, take);
        /* Classify on an exact-size copy so an overread is caught. */
        size_t have = c->startup_len + take;
        uint8_t *exact = malloc(have);
        memcpy(exact, c->startup, have);
        uint32_t plen = 0;
        PgwStartupKind kind = pgw_startup_classify(exact, have, &plen);
        if (kind == PGW_STARTUP_NEED_MORE) {
            free(exact);
            c->startup_len = have;
            pos += take;
            if (have == sizeof c->startup)
                c->c2s.dead = true; /* cannot happen with a 10000-byte limit; be safe */
            continue;
        }
        FUZZ_REQUIRE(plen >= 8 || kind == PGW_STARTUP_BAD, "classified packet has a length");
        if (kind == PGW_STARTUP_STARTUP) {
            FUZZ_REQUIRE(plen <= have, "startup packet complete when classified");
            size_t ppos = 0;
            PgwStr key, value;
            while (pgw_startup_next_param(exact, plen, &ppos, &key, &value)) {
                check_view(c, key, exact, plen);
                check_view(c, value, exact, plen);
            }
        }
        free(exact);
        if (kind == PGW_STARTUP_SSL || kind == PGW_STARTUP_GSSENC || kind == PGW_STARTUP_STARTUP) {
            FUZZ_REQUIRE(plen <= have && plen > c->startup_len, "packet ends in this feed");
            pos += plen - c->startup_len;
            c->startup_len = 0;
            if (kind == PGW_STARTUP_STARTUP)
                c->startup_done = true;
            continue;
        }
        c->c2s.dead = true; /* cancel, too long, bad: the connection is not relayed */
    }
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t sql_limits[4] = {65536, 64, 300, 4096};
    FuzzConn *c = calloc(1, sizeof *c);
    uint8_t flags = data[0];
    c->limits.max_sql_bytes = sql_limits[flags & 3];
    c->limits.max_outstanding = flags & 4 ? 4 : 16384;
    c->limits.max_statements = flags & 8 ? 2 : 4096;
    c->limits.max_portals = flags & 8 ? 2 : 1024;
    c->startup_done = flags & 16;
    c->now = 1000000;
    pgw_framer_init(&c->c2s.framer);
    pgw_framer_init(&c->s2c.framer);
    msgcapture_init(&c->c2s.msgs, MSG_FRONTEND, c->limits.max_sql_bytes + FRONTEND_CAPTURE_EXTRA,
                    tracker_wants_frontend_body);
    msgcapture_init(&c->s2c.msgs, MSG_BACKEND, BACKEND_CAPTURE_LIMIT, tracker_wants_backend_body);
    /* Workspaces are large (5x the SQL limit, twice) and, like the proxy's, shared by every
     * tracker: one per limit for the whole run keeps the fuzzer fast. */
    static TrackerWorkspace *workspaces[4];
    if (!workspaces[flags & 3])
        workspaces[flags & 3] = tracker_workspace_new(c->limits.max_sql_bytes);
    TrackerWorkspace *ws = workspaces[flags & 3];
    if (flags & 32) {
        c->limits.max_outstanding_bytes = 256;
        c->limits.max_statement_bytes = 512;
        c->limits.max_portal_bytes = 256;
        c->budget.limit = 1024;
    }
    c->tracker = tracker_new(CONN_ID, &c->limits, ws, &c->budget, on_event, c);
    if (!c->startup_done)
        tracker_await_authentication(c->tracker);
    FUZZ_REQUIRE(ws && c->tracker, "allocation");

    size_t pos = 1;
    while (pos < size && !(c->c2s.dead && c->s2c.dead)) {
        uint8_t hdr = data[pos++];
        size_t len = 0;
        if (pos + 2 <= size)
            len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += pos + 2 <= size ? 2 : size - pos;
        if (len > size - pos)
            len = size - pos;
        /* An exact-size copy of the segment, like one recv() into a buffer. */
        uint8_t *seg = malloc(len ? len : 1);
        memcpy(seg, data + pos, len);
        pos += len;
        c->now += hdr >> 1;
        if (hdr & 1) {
            feed_pipe(c, &c->s2c, seg, len);
        } else {
            size_t used = c->startup_done ? 0 : feed_startup(c, seg, len);
            if (c->startup_done)
                feed_pipe(c, &c->c2s, seg + used, len - used);
        }
        free(seg);
    }

    c->now += 1;
    FUZZ_REQUIRE(tracker_stats(c->tracker)->bytes == c->budget.used, "budget charged as tracked");
    FUZZ_REQUIRE(!c->budget.limit || c->budget.used <= c->budget.limit, "budget bound holds");
    tracker_free(c->tracker, c->now);
    FUZZ_REQUIRE(c->events == c->last_seq, "every event counted once");
    FUZZ_REQUIRE(c->budget.used == 0, "every charged byte returned");
    msgcapture_free(&c->c2s.msgs);
    msgcapture_free(&c->s2c.msgs);
    free(c);
    return 0;
}
