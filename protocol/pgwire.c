/* protocol/pgwire — see pgwire.h. Everything here works on caller-owned bytes. */
#include "protocol/pgwire.h"

#include <string.h>

static uint32_t read_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void write_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- startup phase -------------------------------------------------------------------- */

PgwStartupKind pgw_startup_classify(const uint8_t *buf, size_t len, uint32_t *packet_len)
{
    if (len < 4)
        return PGW_STARTUP_NEED_MORE;
    uint32_t plen = read_be32(buf);
    *packet_len = plen;
    if (plen < 8)
        return PGW_STARTUP_BAD;
    if (plen > PGW_STARTUP_MAX_LEN)
        return PGW_STARTUP_TOO_LONG;
    if (len < plen)
        return PGW_STARTUP_NEED_MORE;
    uint32_t code = read_be32(buf + 4);
    switch (code) {
    case PGW_SSL_REQUEST:
        return plen == 8 ? PGW_STARTUP_SSL : PGW_STARTUP_BAD;
    case PGW_GSSENC_REQUEST:
        return plen == 8 ? PGW_STARTUP_GSSENC : PGW_STARTUP_BAD;
    case PGW_CANCEL_REQUEST:
        /* Protocol 3.2 (PG18) lets the cancel key grow: size it from the length field. */
        return plen >= 16 ? PGW_STARTUP_CANCEL : PGW_STARTUP_BAD;
    default:
        /* Any 3.x minor version is the server's to accept or negotiate down. */
        return (code >> 16) == 3 ? PGW_STARTUP_STARTUP : PGW_STARTUP_BAD;
    }
}

bool pgw_startup_next_param(const uint8_t *packet, size_t len, size_t *pos, PgwStr *key,
                            PgwStr *value)
{
    if (*pos < 8)
        *pos = 8;
    size_t p = *pos;
    if (!pgw_read_cstring(packet, len, &p, key) || key->len == 0)
        return false; /* the terminating empty name, or malformed */
    if (!pgw_read_cstring(packet, len, &p, value))
        return false;
    *pos = p;
    return true;
}

/* ---- framing -------------------------------------------------------------------------- */

void pgw_framer_init(PgwFramer *framer)
{
    memset(framer, 0, sizeof *framer);
}

bool pgw_framer_at_boundary(const PgwFramer *framer)
{
    return framer->header_have == 0;
}

PgwFrameStatus pgw_framer_feed(PgwFramer *framer, const uint8_t *data, size_t len, PgwChunk *chunk,
                               size_t *consumed)
{
    size_t used = 0;
    bool first = false;

    if (framer->header_have < 5) {
        while (framer->header_have < 5 && used < len)
            framer->header[framer->header_have++] = data[used++];
        if (framer->header_have < 5) {
            *consumed = used;
            return PGW_FRAME_NEED_MORE;
        }
        uint32_t length = read_be32(framer->header + 1);
        if (length < 4) {
            *consumed = used;
            return PGW_FRAME_BAD_LENGTH;
        }
        framer->body_len = length - 4;
        framer->body_have = 0;
        first = true;
    }

    size_t take = len - used;
    uint32_t body_left = framer->body_len - framer->body_have;
    if (take > body_left)
        take = body_left;

    chunk->type = framer->header[0];
    chunk->body_len = framer->body_len;
    chunk->offset = framer->body_have;
    chunk->data = data + used;
    chunk->len = take;
    chunk->first = first;
    framer->body_have += (uint32_t)take;
    used += take;
    chunk->last = framer->body_have == framer->body_len;
    if (chunk->last)
        framer->header_have = 0;
    *consumed = used;
    return PGW_FRAME_CHUNK;
}

/* ---- frontend message rules ------------------------------------------------------------ */

const char *pgw_frontend_header_problem(uint8_t type, uint32_t body_len)
{
    uint64_t length = (uint64_t)body_len + 4;
    switch (type) {
    case 'S': /* Sync */
    case 'H': /* Flush */
    case 'X': /* Terminate */
    case 'c': /* CopyDone */
        return body_len == 0 ? NULL : "invalid message length";
    case 'C': /* Close */
    case 'D': /* Describe */
    case 'E': /* Execute */
    case 'f': /* CopyFail */
        return length <= PGW_SMALL_MESSAGE_LIMIT ? NULL : "invalid message length";
    case 'p': /* password, SASL and GSS responses */
        return length <= PGW_AUTH_MESSAGE_LIMIT ? NULL : "invalid message length";
    case 'Q':
    case 'P':
    case 'B':
    case 'F':
    case 'd':
        return length <= PGW_LARGE_MESSAGE_LIMIT ? NULL : "invalid message length";
    default:
        return "invalid frontend message type";
    }
}

bool pgw_read_cstring(const uint8_t *body, size_t len, size_t *pos, PgwStr *out)
{
    if (*pos > len)
        return false;
    const uint8_t *start = body + *pos;
    const uint8_t *nul = memchr(start, 0, len - *pos);
    if (!nul)
        return false;
    out->ptr = (const char *)start;
    out->len = (size_t)(nul - start);
    *pos += out->len + 1;
    return true;
}

bool pgw_read_int16(const uint8_t *body, size_t len, size_t *pos, int16_t *out)
{
    if (len < 2 || *pos > len - 2)
        return false;
    *out = (int16_t)(((uint16_t)body[*pos] << 8) | body[*pos + 1]);
    *pos += 2;
    return true;
}

bool pgw_read_int32(const uint8_t *body, size_t len, size_t *pos, int32_t *out)
{
    if (len < 4 || *pos > len - 4)
        return false;
    *out = (int32_t)read_be32(body + *pos);
    *pos += 4;
    return true;
}

/* Skips `count` int16 values. */
static bool skip_int16s(size_t len, size_t *pos, int16_t count)
{
    if (count < 0 || *pos > len || (size_t)count * 2 > len - *pos)
        return false;
    *pos += (size_t)count * 2;
    return true;
}

bool pgw_decode_parse(const uint8_t *body, size_t len, PgwParse *out)
{
    size_t pos = 0;
    int16_t ntypes;
    if (!pgw_read_cstring(body, len, &pos, &out->statement) ||
        !pgw_read_cstring(body, len, &pos, &out->query) ||
        !pgw_read_int16(body, len, &pos, &ntypes) || ntypes < 0 || (size_t)ntypes * 4 > len - pos)
        return false;
    return pos + (size_t)ntypes * 4 == len;
}

bool pgw_decode_bind(const uint8_t *body, size_t len, PgwBind *out)
{
    size_t pos = 0;
    int16_t nformats, nparams, nresults;
    if (!pgw_read_cstring(body, len, &pos, &out->portal) ||
        !pgw_read_cstring(body, len, &pos, &out->statement))
        return false;
    out->params_offset = pos;
    if (!pgw_read_int16(body, len, &pos, &nformats) || !skip_int16s(len, &pos, nformats) ||
        !pgw_read_int16(body, len, &pos, &nparams) || nparams < 0)
        return false;
    for (int16_t i = 0; i < nparams; i++) {
        int32_t vlen;
        if (!pgw_read_int32(body, len, &pos, &vlen))
            return false;
        if (vlen == -1)
            continue; /* NULL */
        if (vlen < 0 || (size_t)vlen > len - pos)
            return false;
        pos += (size_t)vlen;
    }
    if (!pgw_read_int16(body, len, &pos, &nresults) || !skip_int16s(len, &pos, nresults))
        return false;
    return pos == len;
}

bool pgw_decode_execute(const uint8_t *body, size_t len, PgwExecute *out)
{
    size_t pos = 0;
    return pgw_read_cstring(body, len, &pos, &out->portal) &&
           pgw_read_int32(body, len, &pos, &out->max_rows) && pos == len;
}

bool pgw_decode_target(const uint8_t *body, size_t len, PgwTarget *out)
{
    if (len < 1 || (body[0] != 'S' && body[0] != 'P'))
        return false;
    size_t pos = 1;
    out->kind = body[0];
    return pgw_read_cstring(body, len, &pos, &out->name) && pos == len;
}

const char *pgw_frontend_body_problem(uint8_t type, const uint8_t *body, size_t len)
{
    size_t pos = 0;
    PgwStr s;
    switch (type) {
    case 'Q':
    case 'f':
        if (!pgw_read_cstring(body, len, &pos, &s) || pos != len)
            return type == 'Q' ? "malformed Query message" : "malformed CopyFail message";
        return NULL;
    case 'P': {
        PgwParse p;
        return pgw_decode_parse(body, len, &p) ? NULL : "malformed Parse message";
    }
    case 'B': {
        PgwBind b;
        return pgw_decode_bind(body, len, &b) ? NULL : "malformed Bind message";
    }
    case 'E': {
        PgwExecute e;
        return pgw_decode_execute(body, len, &e) ? NULL : "malformed Execute message";
    }
    case 'C':
    case 'D': {
        PgwTarget t;
        if (pgw_decode_target(body, len, &t))
            return NULL;
        return type == 'C' ? "malformed Close message" : "malformed Describe message";
    }
    default:
        return NULL;
    }
}

/* ---- backend decoders ------------------------------------------------------------------- */

static bool parse_u64(const char *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

static bool tag_has_rows(PgwStr cmd)
{
    static const char *const with_rows[] = {"SELECT", "INSERT", "UPDATE", "DELETE",
                                            "MERGE",  "FETCH",  "MOVE",   "COPY"};
    for (size_t i = 0; i < sizeof with_rows / sizeof with_rows[0]; i++) {
        size_t n = strlen(with_rows[i]);
        if (cmd.len == n && memcmp(cmd.ptr, with_rows[i], n) == 0)
            return true;
    }
    return false;
}

bool pgw_decode_command_complete(const uint8_t *body, size_t len, PgwCommandComplete *out)
{
    size_t pos = 0;
    PgwStr tag;
    if (!pgw_read_cstring(body, len, &pos, &tag))
        return false;
    const char *space = memchr(tag.ptr, ' ', tag.len);
    out->command.ptr = tag.ptr;
    out->command.len = space ? (size_t)(space - tag.ptr) : tag.len;
    out->has_rows = false;
    out->rows = 0;
    if (space && tag_has_rows(out->command)) {
        /* The row count is the tag's last word ("INSERT 0 5" has the oid first). */
        const char *end = tag.ptr + tag.len;
        const char *last = end;
        while (last > space + 1 && last[-1] != ' ')
            last--;
        out->has_rows = parse_u64(last, (size_t)(end - last), &out->rows);
    }
    return true;
}

bool pgw_error_field(const uint8_t *body, size_t len, uint8_t code, PgwStr *out)
{
    size_t pos = 0;
    while (pos < len && body[pos] != 0) {
        uint8_t field = body[pos++];
        PgwStr value;
        if (!pgw_read_cstring(body, len, &pos, &value))
            return false;
        if (field == code) {
            *out = value;
            return true;
        }
    }
    return false;
}

bool pgw_decode_parameter_status(const uint8_t *body, size_t len, PgwParameterStatus *out)
{
    size_t pos = 0;
    return pgw_read_cstring(body, len, &pos, &out->name) &&
           pgw_read_cstring(body, len, &pos, &out->value);
}

/* ---- builders --------------------------------------------------------------------------- */

static size_t put_field(uint8_t *out, size_t pos, uint8_t code, const char *value, size_t vlen)
{
    out[pos++] = code;
    memcpy(out + pos, value, vlen);
    pos += vlen;
    out[pos++] = 0;
    return pos;
}

size_t pgw_build_error(uint8_t *out, size_t out_cap, const char *severity, const char *sqlstate,
                       const char *message)
{
    size_t sev_len = strlen(severity);
    size_t state_len = strlen(sqlstate);
    size_t msg_len = strlen(message);
    size_t fixed = 5 + 2 * (sev_len + 2) + (state_len + 2) + 2 + 1; /* S, V, C, M, end */
    size_t cap = out_cap < PGW_SMALL_MESSAGE_LIMIT ? out_cap : PGW_SMALL_MESSAGE_LIMIT;
    if (cap < fixed)
        return 0;
    if (msg_len > cap - fixed)
        msg_len = cap - fixed;
    size_t pos = 5;
    pos = put_field(out, pos, 'S', severity, sev_len);
    pos = put_field(out, pos, 'V', severity, sev_len);
    pos = put_field(out, pos, 'C', sqlstate, state_len);
    pos = put_field(out, pos, 'M', message, msg_len);
    out[pos++] = 0;
    out[0] = 'E';
    write_be32(out + 1, (uint32_t)(pos - 1));
    return pos;
}
