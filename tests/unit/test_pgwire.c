/* tests/unit/test_pgwire — the wire framer, startup classification, decoders and builders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgwire.h"
#include "testlib.h"

static size_t put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* Appends a typed message with the given body to buf; returns the new length. */
static size_t put_msg(uint8_t *buf, size_t len, uint8_t type, const void *body, size_t body_len)
{
    buf[len++] = type;
    len += put_be32(buf + len, (uint32_t)body_len + 4);
    memcpy(buf + len, body, body_len);
    return len + body_len;
}

typedef struct Seen {
    uint8_t types[16];
    uint32_t lens[16];
    uint8_t bodies[16][64];
    size_t body_have[16];
    int count;
    int bad;
} Seen;

/* Feeds `stream` to a framer in pieces of `step` bytes and records whole messages. */
static void frame_in_steps(const uint8_t *stream, size_t len, size_t step, Seen *seen)
{
    PgwFramer f;
    pgw_framer_init(&f);
    memset(seen, 0, sizeof *seen);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        size_t pos = 0;
        while (pos < n) {
            PgwChunk c;
            size_t used;
            PgwFrameStatus st = pgw_framer_feed(&f, stream + off + pos, n - pos, &c, &used);
            pos += used;
            if (st == PGW_FRAME_NEED_MORE)
                break;
            if (st == PGW_FRAME_BAD_LENGTH) {
                seen->bad++;
                return;
            }
            int i = seen->count;
            if (c.first) {
                seen->types[i] = c.type;
                seen->lens[i] = c.body_len;
            }
            if (c.offset + c.len <= sizeof seen->bodies[i]) {
                memcpy(seen->bodies[i] + c.offset, c.data, c.len);
                seen->body_have[i] = c.offset + c.len;
            }
            if (c.last)
                seen->count++;
        }
    }
}

TEST(framer_reports_every_message_whatever_the_split)
{
    uint8_t stream[256];
    size_t len = 0;
    len = put_msg(stream, len, 'Q', "select 1\0", 9);
    len = put_msg(stream, len, 'S', "", 0);
    len = put_msg(stream, len, 'P', "s1\0select $1\0\0\0", 15);
    for (size_t step = 1; step <= len; step++) {
        Seen seen;
        frame_in_steps(stream, len, step, &seen);
        CHECK_EQ_INT(seen.count, 3);
        CHECK_EQ_INT(seen.bad, 0);
        CHECK_EQ_INT(seen.types[0], 'Q');
        CHECK_EQ_INT(seen.lens[0], 9);
        CHECK(memcmp(seen.bodies[0], "select 1", 9) == 0);
        CHECK_EQ_INT(seen.types[1], 'S');
        CHECK_EQ_INT(seen.lens[1], 0);
        CHECK_EQ_INT(seen.types[2], 'P');
        CHECK_EQ_INT(seen.body_have[2], 15);
    }
}

TEST(framer_rejects_length_below_four)
{
    uint8_t stream[8] = {'Q', 0, 0, 0, 3, 'x'};
    Seen seen;
    frame_in_steps(stream, 6, 6, &seen);
    CHECK_EQ_INT(seen.bad, 1);
    CHECK_EQ_INT(seen.count, 0);
}

TEST(framer_is_at_boundary_only_between_messages)
{
    PgwFramer f;
    pgw_framer_init(&f);
    CHECK(pgw_framer_at_boundary(&f));
    uint8_t msg[16];
    size_t len = put_msg(msg, 0, 'Q', "x\0", 2);
    PgwChunk c;
    size_t used;
    CHECK_EQ_INT(pgw_framer_feed(&f, msg, 3, &c, &used), PGW_FRAME_NEED_MORE);
    CHECK(!pgw_framer_at_boundary(&f));
    CHECK_EQ_INT(pgw_framer_feed(&f, msg + 3, len - 3, &c, &used), PGW_FRAME_CHUNK);
    CHECK(c.last);
    CHECK(pgw_framer_at_boundary(&f));
}

TEST(startup_classifies_requests_and_limits)
{
    uint8_t p[16];
    uint32_t plen = 0;
    put_be32(p, 8);
    put_be32(p + 4, PGW_SSL_REQUEST);
    CHECK_EQ_INT(pgw_startup_classify(p, 8, &plen), PGW_STARTUP_SSL);
    CHECK_EQ_INT(pgw_startup_classify(p, 7, &plen), PGW_STARTUP_NEED_MORE);
    put_be32(p + 4, PGW_GSSENC_REQUEST);
    CHECK_EQ_INT(pgw_startup_classify(p, 8, &plen), PGW_STARTUP_GSSENC);
    put_be32(p, 16);
    put_be32(p + 4, PGW_CANCEL_REQUEST);
    CHECK_EQ_INT(pgw_startup_classify(p, 16, &plen), PGW_STARTUP_CANCEL);
    put_be32(p, 10001);
    CHECK_EQ_INT(pgw_startup_classify(p, 4, &plen), PGW_STARTUP_TOO_LONG);
    CHECK_EQ_INT(plen, 10001);
    put_be32(p, 7);
    CHECK_EQ_INT(pgw_startup_classify(p, 8, &plen), PGW_STARTUP_BAD);
    put_be32(p, 8);
    put_be32(p + 4, 2u << 16); /* protocol 2.0 */
    CHECK_EQ_INT(pgw_startup_classify(p, 8, &plen), PGW_STARTUP_BAD);
}

TEST(startup_params_iterate_in_order)
{
    uint8_t p[64];
    size_t len = 8;
    memcpy(p + len, "user\0bob\0replication\0database\0\0", 31);
    len += 31;
    put_be32(p, (uint32_t)len);
    put_be32(p + 4, PGW_PROTOCOL_3_0);
    uint32_t plen;
    CHECK_EQ_INT(pgw_startup_classify(p, len, &plen), PGW_STARTUP_STARTUP);
    size_t pos = 0;
    PgwStr k, v;
    CHECK(pgw_startup_next_param(p, len, &pos, &k, &v));
    CHECK_EQ_MEM(k.ptr, k.len, "user");
    CHECK_EQ_MEM(v.ptr, v.len, "bob");
    CHECK(pgw_startup_next_param(p, len, &pos, &k, &v));
    CHECK_EQ_MEM(k.ptr, k.len, "replication");
    CHECK_EQ_MEM(v.ptr, v.len, "database");
    CHECK(!pgw_startup_next_param(p, len, &pos, &k, &v));
}

TEST(frontend_header_rules_follow_the_server)
{
    CHECK(pgw_frontend_header_problem('Q', 100) == NULL);
    CHECK(pgw_frontend_header_problem('S', 0) == NULL);
    CHECK(pgw_frontend_header_problem('S', 1) != NULL);
    CHECK(pgw_frontend_header_problem('E', 9996) == NULL);
    CHECK(pgw_frontend_header_problem('E', 9997) != NULL);
    CHECK(pgw_frontend_header_problem('Q', 0x40000000u) != NULL);
    CHECK(pgw_frontend_header_problem('Z', 4) != NULL); /* a backend type */
    CHECK(pgw_frontend_header_problem(0, 4) != NULL);
}

TEST(frontend_body_rules_catch_truncated_fields)
{
    CHECK(pgw_frontend_body_problem('Q', (const uint8_t *)"select 1", 9) == NULL);
    CHECK(pgw_frontend_body_problem('Q', (const uint8_t *)"select 1", 8) != NULL);
    CHECK(pgw_frontend_body_problem('Q', (const uint8_t *)"a\0b", 4) != NULL); /* trailing */
    CHECK(pgw_frontend_body_problem('P', (const uint8_t *)"s\0select 1\0\0\0", 13) == NULL);
    CHECK(pgw_frontend_body_problem('P', (const uint8_t *)"s\0select 1\0\0\1", 13) != NULL);
    CHECK(pgw_frontend_body_problem('E', (const uint8_t *)"\0\0\0\0\0", 5) == NULL);
    CHECK(pgw_frontend_body_problem('E', (const uint8_t *)"\0\0\0", 3) != NULL);
    CHECK(pgw_frontend_body_problem('D', (const uint8_t *)"Sname", 6) == NULL);
    CHECK(pgw_frontend_body_problem('D', (const uint8_t *)"Xname", 6) != NULL);
}

TEST(bind_decoding_checks_every_length)
{
    /* portal "", statement "s", 1 format (0), 2 params ("ab", NULL), 0 result formats */
    uint8_t b[64];
    size_t n = 0;
    memcpy(b, "\0s\0", 3);
    n = 3;
    b[n++] = 0, b[n++] = 1, b[n++] = 0, b[n++] = 0;
    b[n++] = 0, b[n++] = 2;
    n += put_be32(b + n, 2);
    b[n++] = 'a', b[n++] = 'b';
    n += put_be32(b + n, 0xffffffffu);
    b[n++] = 0, b[n++] = 0;
    PgwBind bind;
    CHECK(pgw_decode_bind(b, n, &bind));
    CHECK_EQ_MEM(bind.statement.ptr, bind.statement.len, "s");
    CHECK_EQ_INT(bind.params_offset, 3);
    for (size_t cut = 0; cut < n; cut++)
        CHECK(!pgw_decode_bind(b, cut, &bind));
    put_be32(b + 9, 1000); /* a value length past the end */
    CHECK(!pgw_decode_bind(b, n, &bind));
}

TEST(command_complete_row_counts)
{
    PgwCommandComplete cc;
    CHECK(pgw_decode_command_complete((const uint8_t *)"INSERT 0 5", 11, &cc));
    CHECK_EQ_MEM(cc.command.ptr, cc.command.len, "INSERT");
    CHECK(cc.has_rows);
    CHECK_EQ_INT(cc.rows, 5);
    CHECK(pgw_decode_command_complete((const uint8_t *)"SELECT 120", 11, &cc));
    CHECK_EQ_INT(cc.rows, 120);
    CHECK(pgw_decode_command_complete((const uint8_t *)"CREATE TABLE", 13, &cc));
    CHECK_EQ_MEM(cc.command.ptr, cc.command.len, "CREATE");
    CHECK(!cc.has_rows);
    CHECK(pgw_decode_command_complete((const uint8_t *)"BEGIN", 6, &cc));
    CHECK(!cc.has_rows);
    CHECK(!pgw_decode_command_complete((const uint8_t *)"SELECT", 6, &cc)); /* no NUL */
}

TEST(error_builder_round_trips_through_field_lookup)
{
    uint8_t out[256];
    size_t n = pgw_build_error(out, sizeof out, "FATAL", "08006", "no upstream at 1.2.3.4:5");
    CHECK(n > 5);
    CHECK_EQ_INT(out[0], 'E');
    uint32_t len = ((uint32_t)out[1] << 24) | ((uint32_t)out[2] << 16) | (out[3] << 8) | out[4];
    CHECK_EQ_INT(len + 1, n);
    PgwStr v;
    CHECK(pgw_error_field(out + 5, n - 5, 'C', &v));
    CHECK_EQ_MEM(v.ptr, v.len, "08006");
    CHECK(pgw_error_field(out + 5, n - 5, 'M', &v));
    CHECK_EQ_MEM(v.ptr, v.len, "no upstream at 1.2.3.4:5");
    CHECK(!pgw_error_field(out + 5, n - 5, 'D', &v));
    CHECK_EQ_INT(pgw_build_error(out, 10, "FATAL", "08006", "x"), 0);
}

TEST(error_builder_cuts_long_messages_to_fit)
{
    char msg[400];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    uint8_t out[128];
    size_t n = pgw_build_error(out, sizeof out, "ERROR", "XX000", msg);
    CHECK(n > 0 && n <= sizeof out);
    PgwStr v;
    CHECK(pgw_error_field(out + 5, n - 5, 'M', &v));
    CHECK(v.len > 0 && v.len < 128);
}

int main(void)
{
    RUN(framer_reports_every_message_whatever_the_split);
    RUN(framer_rejects_length_below_four);
    RUN(framer_is_at_boundary_only_between_messages);
    RUN(startup_classifies_requests_and_limits);
    RUN(startup_params_iterate_in_order);
    RUN(frontend_header_rules_follow_the_server);
    RUN(frontend_body_rules_catch_truncated_fields);
    RUN(bind_decoding_checks_every_length);
    RUN(command_complete_row_counts);
    RUN(error_builder_round_trips_through_field_lookup);
    RUN(error_builder_cuts_long_messages_to_fit);
    return TESTLIB_FINISH();
}
