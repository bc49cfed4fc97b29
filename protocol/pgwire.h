/* protocol/pgwire — PostgreSQL v3 wire protocol: framing, decoding, and the few messages
 * pgtally builds itself.
 *
 * Owns: the streaming message framer (bytes in any split -> message headers and body chunks,
 * never buffering on its own), bounds-checked decoders that return views into the caller's
 * bytes (no copies), frontend message validation rules, and ErrorResponse / single-byte replies.
 * Pure: no sockets, no allocation, no globals. Every decoder takes (ptr, len) and fails cleanly
 * on short or malformed input. */
#ifndef PGTALLY_PROTOCOL_PGWIRE_H
#define PGTALLY_PROTOCOL_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Startup-phase packet codes (the int32 after the length). */
#define PGW_PROTOCOL_3_0 196608u       /* 3 << 16 */
#define PGW_CANCEL_REQUEST 80877102u   /* 1234 << 16 | 5678 */
#define PGW_SSL_REQUEST 80877103u      /* 1234 << 16 | 5679 */
#define PGW_GSSENC_REQUEST 80877104u   /* 1234 << 16 | 5680 */
#define PGW_STARTUP_MAX_LEN 10000u     /* the server's own limit for startup packets */
#define PGW_SMALL_MESSAGE_LIMIT 10000u /* server limit for small frontend messages */
#define PGW_AUTH_MESSAGE_LIMIT 65535u  /* server limit for password / SASL messages */
#define PGW_LARGE_MESSAGE_LIMIT 0x3ffffffeu

/* A view into bytes the caller owns. */
typedef struct PgwStr {
    const char *ptr;
    size_t len;
} PgwStr;

/* ---- startup phase -------------------------------------------------------------------- */

typedef enum PgwStartupKind {
    PGW_STARTUP_NEED_MORE, /* fewer than 8 bytes, or the packet is not complete yet */
    PGW_STARTUP_SSL,
    PGW_STARTUP_GSSENC,
    PGW_STARTUP_CANCEL,
    PGW_STARTUP_STARTUP, /* a StartupMessage with protocol major version 3 */
    PGW_STARTUP_TOO_LONG,
    PGW_STARTUP_BAD, /* length below 8, unsupported protocol, or malformed request */
} PgwStartupKind;

/* Classifies the untyped packet at the start of buf. *packet_len gets the packet's length
 * as soon as 4 bytes are there. A packet is only classified once it is complete. */
PgwStartupKind pgw_startup_classify(const uint8_t *buf, size_t len, uint32_t *packet_len);

/* Iterates over the key/value pairs of a complete StartupMessage (whole packet, with length
 * and version). *pos starts at 0. Returns false at the end or on malformed input. */
bool pgw_startup_next_param(const uint8_t *packet, size_t len, size_t *pos, PgwStr *key,
                            PgwStr *value);

/* ---- framing -------------------------------------------------------------------------- */

/* Streaming framer for typed messages (1 type byte + int32 length including itself). */
typedef struct PgwFramer {
    uint8_t header[5];
    uint8_t header_have; /* bytes of header collected, 0..5 */
    uint32_t body_len;   /* length field minus 4, valid once header_have == 5 */
    uint32_t body_have;  /* body bytes already reported */
} PgwFramer;

/* One piece of a message: its header facts and the body bytes found in this feed. */
typedef struct PgwChunk {
    uint8_t type;
    uint32_t body_len;   /* whole body length (length field - 4) */
    uint32_t offset;     /* offset of `data` within the body */
    const uint8_t *data; /* body bytes in this feed (may be empty) */
    size_t len;
    bool first; /* the message's header completed in this call */
    bool last;  /* the message's body completed in this call */
} PgwChunk;

typedef enum PgwFrameStatus {
    PGW_FRAME_NEED_MORE, /* every byte was consumed, nothing to report yet */
    PGW_FRAME_CHUNK,     /* *chunk filled */
    PGW_FRAME_BAD_LENGTH /* length field below 4; the stream cannot be framed any more */
} PgwFrameStatus;

void pgw_framer_init(PgwFramer *framer);

/* Consumes bytes from data[0..len) and reports at most one chunk. *consumed gets the number
 * of bytes consumed (all of them on NEED_MORE). Call again with the rest until NEED_MORE. */
PgwFrameStatus pgw_framer_feed(PgwFramer *framer, const uint8_t *data, size_t len, PgwChunk *chunk,
                               size_t *consumed);

/* True when no message is partially framed (between messages). */
bool pgw_framer_at_boundary(const PgwFramer *framer);

/* ---- frontend message rules ------------------------------------------------------------ */

/* Checks a frontend message header against the server's own rules (known type, length bounds
 * per type). Returns NULL when acceptable, else a short description of the problem. */
const char *pgw_frontend_header_problem(uint8_t type, uint32_t body_len);

/* Checks the structure of a complete frontend message body (Query, Parse, Bind, Execute,
 * Describe, Close, CopyFail): every field present, terminated, nothing left over. Returns
 * NULL when well-formed or for types not checked, else a description of the problem. */
const char *pgw_frontend_body_problem(uint8_t type, const uint8_t *body, size_t len);

/* ---- decoders (complete bodies) ----------------------------------------------------------- */

/* Reads a NUL-terminated string at *pos; advances past the NUL. */
bool pgw_read_cstring(const uint8_t *body, size_t len, size_t *pos, PgwStr *out);
bool pgw_read_int16(const uint8_t *body, size_t len, size_t *pos, int16_t *out);
bool pgw_read_int32(const uint8_t *body, size_t len, size_t *pos, int32_t *out);

typedef struct PgwParse {
    PgwStr statement; /* "" for the unnamed statement */
    PgwStr query;
} PgwParse;
bool pgw_decode_parse(const uint8_t *body, size_t len, PgwParse *out);

typedef struct PgwBind {
    PgwStr portal;
    PgwStr statement;
    size_t params_offset; /* offset of the parameter-format count: formats, values, result
                             formats follow; what pgtally hashes as the values */
} PgwBind;
bool pgw_decode_bind(const uint8_t *body, size_t len, PgwBind *out);

typedef struct PgwExecute {
    PgwStr portal;
    int32_t max_rows; /* 0 = no limit */
} PgwExecute;
bool pgw_decode_execute(const uint8_t *body, size_t len, PgwExecute *out);

/* Close and Describe share a shape: 'S' (statement) or 'P' (portal), then a name. */
typedef struct PgwTarget {
    uint8_t kind;
    PgwStr name;
} PgwTarget;
bool pgw_decode_target(const uint8_t *body, size_t len, PgwTarget *out);

/* CommandComplete: the tag's command word and its row count when the tag has one
 * (SELECT n, INSERT oid n, UPDATE n, DELETE n, MERGE n, FETCH n, MOVE n, COPY n). */
typedef struct PgwCommandComplete {
    PgwStr command; /* first word of the tag */
    bool has_rows;
    uint64_t rows;
} PgwCommandComplete;
bool pgw_decode_command_complete(const uint8_t *body, size_t len, PgwCommandComplete *out);

/* Finds field `code` (e.g. 'C' for SQLSTATE, 'M' for message) of an ErrorResponse or
 * NoticeResponse body. */
bool pgw_error_field(const uint8_t *body, size_t len, uint8_t code, PgwStr *out);

typedef struct PgwParameterStatus {
    PgwStr name;
    PgwStr value;
} PgwParameterStatus;
bool pgw_decode_parameter_status(const uint8_t *body, size_t len, PgwParameterStatus *out);

/* ---- builders --------------------------------------------------------------------------- */

/* Writes a complete ErrorResponse (severity, SQLSTATE, message) into out. Returns the bytes
 * written, or 0 when out_cap is too small. The message is cut to fit PGW_SMALL_MESSAGE_LIMIT. */
size_t pgw_build_error(uint8_t *out, size_t out_cap, const char *severity, const char *sqlstate,
                       const char *message);

#endif
