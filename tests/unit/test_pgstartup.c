/* tests/unit/test_pgstartup — the server's boolean spellings, the `replication` startup
 * parameter, and the AuthenticationSASL mechanism-list rewrite. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgstartup.h"
#include "testlib.h"

/* Every spelling the server's parse_bool accepts or refuses (src/backend/utils/adt/bool.c):
 * 1 true, 0 false, -1 refused. */
static const struct {
    const char *value;
    int expect;
} bool_cases[] = {
    {"true", 1},      {"TRUE", 1},   {"True", 1},      {"tRuE", 1},   {"t", 1},     {"T", 1},
    {"tr", 1},        {"tru", 1},    {"yes", 1},       {"YES", 1},    {"y", 1},     {"Ye", 1},
    {"on", 1},        {"ON", 1},     {"On", 1},        {"1", 1},      {"false", 0}, {"FALSE", 0},
    {"False", 0},     {"f", 0},      {"F", 0},         {"fa", 0},     {"fals", 0},  {"no", 0},
    {"NO", 0},        {"No", 0},     {"n", 0},         {"N", 0},      {"off", 0},   {"OFF", 0},
    {"Off", 0},       {"of", 0},     {"OF", 0},        {"0", 0},      {"", -1},     {"o", -1},
    {"O", -1},        {"truex", -1}, {"true ", -1},    {" true", -1}, {"yess", -1}, {"nope", -1},
    {"onn", -1},      {"offf", -1},  {"oof", -1},      {"01", -1},    {"10", -1},   {"00", -1},
    {"2", -1},        {"-1", -1},    {"database", -1}, {"maybe", -1}, {"tx", -1},   {"fals3", -1},
    {"\xc3\xbf", -1},
};

TEST(parse_bool_matches_the_server)
{
    for (size_t i = 0; i < sizeof bool_cases / sizeof bool_cases[0]; i++) {
        const char *v = bool_cases[i].value;
        bool out = false;
        bool ok = pgstartup_parse_bool(v, strlen(v), &out);
        int got = ok ? (int)out : -1;
        if (got != bool_cases[i].expect)
            printf("  value \"%s\": got %d, expected %d\n", v, got, bool_cases[i].expect);
        CHECK_EQ_INT(got, bool_cases[i].expect);
    }
}

TEST(parse_bool_reads_only_len_bytes)
{
    bool out = true;
    CHECK(pgstartup_parse_bool("nonsense", 1, &out) && !out); /* "n" */
    CHECK(pgstartup_parse_bool("offset", 3, &out) && !out);   /* "off" */
    CHECK(!pgstartup_parse_bool("offset", 4, &out));
}

/* A StartupMessage with the given NUL-separated "key\0value\0..." pairs. */
static size_t startup(uint8_t *buf, const char *pairs, size_t pairs_len)
{
    size_t len = 8 + pairs_len + 1;
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    buf[4] = 0;
    buf[5] = 3;
    buf[6] = 0;
    buf[7] = 0;
    memcpy(buf + 8, pairs, pairs_len);
    buf[8 + pairs_len] = 0;
    return len;
}

#define STARTUP(buf, lit) startup((buf), (lit), sizeof(lit) - 1)

TEST(replication_parameter)
{
    static const struct {
        const char *value;
        PgstartupReplication expect;
    } cases[] = {
        {"no", PGSTARTUP_REPLICATION_OFF},
        {"False", PGSTARTUP_REPLICATION_OFF},
        {"f", PGSTARTUP_REPLICATION_OFF},
        {"OFF", PGSTARTUP_REPLICATION_OFF},
        {"of", PGSTARTUP_REPLICATION_OFF},
        {"0", PGSTARTUP_REPLICATION_OFF},
        {"n", PGSTARTUP_REPLICATION_OFF},
        {"true", PGSTARTUP_REPLICATION_PHYSICAL},
        {"YES", PGSTARTUP_REPLICATION_PHYSICAL},
        {"on", PGSTARTUP_REPLICATION_PHYSICAL},
        {"1", PGSTARTUP_REPLICATION_PHYSICAL},
        {"t", PGSTARTUP_REPLICATION_PHYSICAL},
        {"database", PGSTARTUP_REPLICATION_DATABASE},
        {"Database", PGSTARTUP_REPLICATION_INVALID}, /* compared exactly by the server */
        {"DATABASE", PGSTARTUP_REPLICATION_INVALID},
        {"", PGSTARTUP_REPLICATION_INVALID},
        {"o", PGSTARTUP_REPLICATION_INVALID},
        {"nope", PGSTARTUP_REPLICATION_INVALID},
        {"physical", PGSTARTUP_REPLICATION_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char pairs[128];
        int n =
            snprintf(pairs, sizeof pairs, "user%cu%creplication%c%s%c", 0, 0, 0, cases[i].value, 0);
        uint8_t buf[256];
        size_t len = startup(buf, pairs, (size_t)n);
        PgwStr bad = {0};
        PgstartupReplication got = pgstartup_replication(buf, len, &bad);
        if (got != cases[i].expect)
            printf("  replication=\"%s\": got %d, expected %d\n", cases[i].value, got,
                   cases[i].expect);
        CHECK_EQ_INT(got, cases[i].expect);
        if (got == PGSTARTUP_REPLICATION_INVALID)
            CHECK_EQ_MEM(bad.ptr, bad.len, cases[i].value);
    }
}

TEST(replication_absent_and_last_wins)
{
    uint8_t buf[256];
    size_t len = STARTUP(buf, "user\0u\0database\0d\0");
    CHECK_EQ_INT(pgstartup_replication(buf, len, NULL), PGSTARTUP_REPLICATION_OFF);
    len = STARTUP(buf, "replication\0true\0user\0u\0replication\0no\0");
    CHECK_EQ_INT(pgstartup_replication(buf, len, NULL), PGSTARTUP_REPLICATION_OFF);
    len = STARTUP(buf, "replication\0no\0replication\0database\0");
    CHECK_EQ_INT(pgstartup_replication(buf, len, NULL), PGSTARTUP_REPLICATION_DATABASE);
    len = STARTUP(buf, "replication\0bad\0replication\0no\0");
    CHECK_EQ_INT(pgstartup_replication(buf, len, NULL), PGSTARTUP_REPLICATION_INVALID);
}

/* An AuthenticationSASL message with the given raw list bytes (names and terminators as
 * given, nothing added). */
static size_t sasl_msg(uint8_t *buf, const void *list, size_t list_len)
{
    size_t field = 4 + 4 + list_len;
    buf[0] = 'R';
    buf[1] = (uint8_t)(field >> 24);
    buf[2] = (uint8_t)(field >> 16);
    buf[3] = (uint8_t)(field >> 8);
    buf[4] = (uint8_t)field;
    buf[5] = buf[6] = buf[7] = 0;
    buf[8] = 10;
    memcpy(buf + 9, list, list_len);
    return 9 + list_len;
}

#define PLUS "SCRAM-SHA-256-PLUS"

TEST(sasl_plus_removed)
{
    uint8_t in[128], out[128], want[128];
    static const char list[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
    size_t len = sasl_msg(in, list, sizeof list); /* sizeof counts the final empty name */
    size_t out_len = 0;
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_REWRITTEN);
    static const char expect[] = "SCRAM-SHA-256\0";
    size_t want_len = sasl_msg(want, expect, sizeof expect);
    CHECK_EQ_INT(out_len, want_len);
    CHECK(memcmp(out, want, want_len) == 0);

    /* In place, and the order of the others kept. */
    static const char list2[] = "A\0SCRAM-SHA-256-PLUS\0B\0";
    len = sasl_msg(in, list2, sizeof list2);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, in, &out_len), PGSTARTUP_SASL_REWRITTEN);
    static const char expect2[] = "A\0B\0";
    want_len = sasl_msg(want, expect2, sizeof expect2);
    CHECK_EQ_INT(out_len, want_len);
    CHECK(memcmp(in, want, want_len) == 0);
}

TEST(sasl_without_plus_unchanged)
{
    uint8_t in[128], out[128];
    static const char list[] = "SCRAM-SHA-256\0";
    size_t len = sasl_msg(in, list, sizeof list);
    size_t out_len = 0;
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_REWRITTEN);
    CHECK_EQ_INT(out_len, len);
    CHECK(memcmp(in, out, len) == 0);
    /* An empty list stays empty (the client then reports no usable mechanism). */
    len = sasl_msg(in, "", 1);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_REWRITTEN);
    CHECK_EQ_INT(out_len, 10);
}

TEST(sasl_malformed_lists_refused)
{
    uint8_t in[128], out[128];
    size_t out_len = 0;
    /* names terminated, but no final empty name */
    size_t len = sasl_msg(in, "SCRAM-SHA-256\0", 14);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_MALFORMED);
    /* a name without its NUL */
    len = sasl_msg(in, "SCRAM", 5);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_MALFORMED);
    /* no list at all */
    len = sasl_msg(in, "", 0);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_MALFORMED);
    /* bytes after the terminating empty name */
    len = sasl_msg(in, "SCRAM-SHA-256\0\0junk", 19);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_MALFORMED);
}

/* The message that overflowed the old fixed 1024-byte buffer by one byte: exactly 1024
 * bytes, every name terminated, the final empty name missing. Exact-size heap buffers let
 * the sanitizer see any write past the end. */
TEST(sasl_1024_bytes_without_terminator)
{
    size_t len = 1024;
    uint8_t *in = malloc(len), *out = malloc(len);
    size_t list_len = len - 9;
    uint8_t *list = malloc(list_len);
    memcpy(list, "SCRAM-SHA-256", 14);
    memset(list + 14, 'A', list_len - 15);
    list[list_len - 1] = 0;
    CHECK_EQ_INT(sasl_msg(in, list, list_len), len);
    size_t out_len = 0;
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_MALFORMED);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, in, &out_len), PGSTARTUP_SASL_MALFORMED);

    /* The same size, well formed: a long list is rewritten whatever its size. */
    list[list_len - 2] = 0;
    sasl_msg(in, list, list_len);
    CHECK_EQ_INT(pgstartup_sasl_remove(in, len, PLUS, out, &out_len), PGSTARTUP_SASL_REWRITTEN);
    CHECK_EQ_INT(out_len, len);
    free(list);
    free(in);
    free(out);
}

TEST(sasl_other_messages_untouched)
{
    uint8_t ok[9] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    size_t out_len = 0;
    uint8_t out[16];
    CHECK_EQ_INT(pgstartup_sasl_remove(ok, sizeof ok, PLUS, out, &out_len),
                 PGSTARTUP_SASL_NOT_SASL);
    uint8_t err[6] = {'E', 0, 0, 0, 5, 0};
    CHECK_EQ_INT(pgstartup_sasl_remove(err, sizeof err, PLUS, out, &out_len),
                 PGSTARTUP_SASL_NOT_SASL);
}

int main(void)
{
    RUN(parse_bool_matches_the_server);
    RUN(parse_bool_reads_only_len_bytes);
    RUN(replication_parameter);
    RUN(replication_absent_and_last_wins);
    RUN(sasl_plus_removed);
    RUN(sasl_without_plus_unchanged);
    RUN(sasl_malformed_lists_refused);
    RUN(sasl_1024_bytes_without_terminator);
    RUN(sasl_other_messages_untouched);
    return TESTLIB_FINISH();
}
