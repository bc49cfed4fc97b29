/* tests/unit/test_sqltags.c — tag comments (docs/normalization-spec.md, R39): sqlcommenter,
 * marginalia / QueryLogs, unquoted key=value, `%%`, ordering, first-wins, bounds, and the
 * traceparent helper. Inputs are comment bodies (between the delimiters). */
#include "protocol/sqltags.h"
#include "tests/unit/testlib.h"

static SqlTags g_tags;

static bool parse(const char *body)
{
    sqltags_init(&g_tags);
    return sqltags_parse_comment(body, strlen(body), &g_tags);
}

#define CHECK_TAG(k_, v_)                                                                          \
    do {                                                                                           \
        const SqlTag *t_ = sqltags_find(&g_tags, (k_));                                            \
        CHECK(t_ != NULL);                                                                         \
        if (t_)                                                                                    \
            CHECK_EQ_MEM(t_->value, t_->value_len, (v_));                                          \
    } while (0)

#define CHECK_KEY_AT(i_, k_)                                                                       \
    do {                                                                                           \
        CHECK((size_t)(i_) < g_tags.count);                                                        \
        if ((size_t)(i_) < g_tags.count)                                                           \
            CHECK_EQ_MEM(g_tags.tags[i_].key, g_tags.tags[i_].key_len, (k_));                      \
    } while (0)

TEST(r39_sqlcommenter_url_decoded)
{
    CHECK(parse("framework='django%3A4.2',route='users%2F%3Cint%3Apk%3E'"));
    CHECK_EQ_INT(g_tags.count, 2);
    CHECK_TAG("framework", "django:4.2");
    CHECK_TAG("route", "users/<int:pk>");
}

TEST(r39_sqlcommenter_escaped_quote)
{
    CHECK(parse("note='it\\'s',b='x'"));
    CHECK_TAG("note", "it's");
    CHECK_TAG("b", "x");
}

TEST(r39_sqlcommenter_escaped_backslash_before_quote)
{
    CHECK(parse("path='C:\\\\',next='y'"));
    CHECK_TAG("path", "C:\\");
    CHECK_TAG("next", "y");
}

/* Backslash escapes and percent escapes in one value: both are read (quotes first, then
 * percents), the same as one pass over both would. */
TEST(r39_escapes_and_percents_together)
{
    CHECK(parse("a='it\\'s%20ok',b='C:\\\\%2Fx',c='%\\'41',d='\\\\%%41'"));
    CHECK_EQ_INT(g_tags.count, 4);
    CHECK_TAG("a", "it's ok");
    CHECK_TAG("b", "C:\\/x");
    CHECK_TAG("c", "%'41");
    CHECK_TAG("d", "\\A");
}

TEST(r39_double_percent_before_decoding)
{
    CHECK(parse("route='a%%2Fb',pct='100%%'"));
    CHECK_TAG("route", "a/b");
    CHECK_TAG("pct", "100%");
}

TEST(r39_invalid_percent_kept)
{
    CHECK(parse("a='50%',b='%zz',c='%4'"));
    CHECK_TAG("a", "50%");
    CHECK_TAG("b", "%zz");
    CHECK_TAG("c", "%4");
}

TEST(r39_marginalia_pairs_in_order)
{
    CHECK(parse("application:Shop,controller:products,action:index"));
    CHECK_EQ_INT(g_tags.count, 3);
    CHECK_KEY_AT(0, "application");
    CHECK_KEY_AT(1, "controller");
    CHECK_KEY_AT(2, "action");
    CHECK_TAG("action", "index");
}

TEST(r39_marginalia_value_not_url_decoded)
{
    CHECK(parse("controller:a%2Fb,line:/app/x.rb:12:in `show'"));
    CHECK_TAG("controller", "a%2Fb");
    CHECK_TAG("line", "/app/x.rb:12:in `show'");
}

TEST(r39_unquoted_equals_and_spaces_after_commas)
{
    CHECK(parse(" request_id=abc-123, user = 42 ,  route=%2Fhome "));
    CHECK_EQ_INT(g_tags.count, 3);
    CHECK_TAG("request_id", "abc-123");
    CHECK_TAG("user", "42");
    CHECK_TAG("route", "/home");
}

TEST(r39_first_occurrence_wins)
{
    CHECK(parse("a='1',b='2',a='3'"));
    CHECK_EQ_INT(g_tags.count, 2);
    CHECK_TAG("a", "1");
}

/* Keys compare decoded: a key spelled with %XX and the same key spelled plainly are one key,
 * in either order (the plain one is looked up before it is copied); marginalia keys are not
 * decoded, so there `a%62` stays its own key. */
TEST(r39_first_wins_between_encoded_and_plain_keys)
{
    CHECK(parse("a%62='1',ab='2',c='%41'"));
    CHECK_EQ_INT(g_tags.count, 2);
    CHECK_TAG("ab", "1");
    CHECK_TAG("c", "A");
    CHECK(parse("ab='1',a%62='2'"));
    CHECK_EQ_INT(g_tags.count, 1);
    CHECK_TAG("ab", "1");
    CHECK(parse("a%62:1,ab:2"));
    CHECK_EQ_INT(g_tags.count, 2);
    CHECK_TAG("a%62", "1");
    CHECK_TAG("ab", "2");
}

TEST(r39_first_wins_across_comments)
{
    sqltags_init(&g_tags);
    CHECK(sqltags_parse_comment("controller:x", 12, &g_tags));
    CHECK(sqltags_parse_comment("controller:y,action:z", 21, &g_tags));
    CHECK_EQ_INT(g_tags.count, 2);
    CHECK_TAG("controller", "x");
    CHECK_TAG("action", "z");
}

TEST(r39_prose_rejected_untouched)
{
    sqltags_init(&g_tags);
    CHECK(sqltags_parse_comment("a:b", 3, &g_tags));
    CHECK(!sqltags_parse_comment(" just a note, really ", 21, &g_tags));
    CHECK(!sqltags_parse_comment("+ IndexScan(t) ", 15, &g_tags));
    CHECK(!sqltags_parse_comment("a='1', and then prose", 21, &g_tags));
    CHECK(!sqltags_parse_comment("", 0, &g_tags));
    CHECK(!sqltags_parse_comment("   ", 3, &g_tags));
    CHECK(!sqltags_parse_comment(", ...", 5, &g_tags)); /* the R36 list marker */
    CHECK(!sqltags_parse_comment("a='unterminated", 15, &g_tags));
    CHECK(!sqltags_parse_comment("a='x' b='y'", 11, &g_tags));
    CHECK(!sqltags_parse_comment("a:b,", 4, &g_tags));
    CHECK_EQ_INT(g_tags.count, 1);
    CHECK_EQ_INT(g_tags.storage_used, 2);
}

TEST(r39_datadog_prepended_style)
{
    CHECK(parse("dddbs='orders-db',dde='prod',ddps='web',ddpv='1.2.3',traceparent='00-"
                "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'"));
    CHECK_EQ_INT(g_tags.count, 5);
    CHECK_TAG("ddps", "web");
}

TEST(r39_traceparent_ids)
{
    const char *trace = NULL, *span = NULL;
    CHECK(parse("traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'"));
    CHECK(sqltags_traceparent_trace_id(&g_tags, &trace, &span));
    if (trace)
        CHECK_EQ_MEM(trace, 32, "5bd66ef5095369c7b0d1f8f4bd33716a");
    if (span)
        CHECK_EQ_MEM(span, 16, "c532cb4098ac3dd2");
}

TEST(r39_traceparent_malformed)
{
    const char *trace = NULL;
    CHECK(parse("traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716-c532cb4098ac3dd2-01'"));
    CHECK(!sqltags_traceparent_trace_id(&g_tags, &trace, NULL));
    CHECK(parse("traceparent='00-00000000000000000000000000000000-c532cb4098ac3dd2-01'"));
    CHECK(!sqltags_traceparent_trace_id(&g_tags, &trace, NULL));
    CHECK(parse("traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716g-c532cb4098ac3dd2-01'"));
    CHECK(!sqltags_traceparent_trace_id(&g_tags, &trace, NULL));
    CHECK(parse("route='x'"));
    CHECK(!sqltags_traceparent_trace_id(&g_tags, &trace, NULL));
}

TEST(bounds_max_tags_overflow)
{
    char body[2048];
    size_t n = 0;
    for (int i = 0; i < SQLTAGS_MAX + 5; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%sk%d:v%d", i ? "," : "", i, i);
    CHECK(parse(body));
    CHECK_EQ_INT(g_tags.count, SQLTAGS_MAX);
    CHECK(g_tags.overflow);
    CHECK_TAG("k0", "v0");
    CHECK(sqltags_find(&g_tags, "k40") == NULL);
}

TEST(bounds_storage_overflow_keeps_earlier)
{
    static char body[SQLTAGS_STORAGE + 64];
    memcpy(body, "a:1,big:", 8);
    memset(body + 8, 'x', SQLTAGS_STORAGE);
    memcpy(body + 8 + SQLTAGS_STORAGE, ",c:3", 5);
    CHECK(parse(body));
    CHECK(g_tags.overflow);
    CHECK_TAG("a", "1");
    CHECK_TAG("c", "3");
    CHECK(sqltags_find(&g_tags, "big") == NULL);
    CHECK(g_tags.storage_used <= SQLTAGS_STORAGE);
}

TEST(find_is_exact)
{
    CHECK(parse("Route:a,route:b"));
    CHECK_TAG("Route", "a");
    CHECK_TAG("route", "b");
    CHECK(sqltags_find(&g_tags, "rout") == NULL);
}

/* Work per byte (SqlTags.work, a count of bytes examined) stays within SQLTAGS_WORK_MAX on
 * the costliest shape: SQLTAGS_MAX - 1 held keys of one length, then pair after pair whose
 * key has that length too, so each is compared with every held key; and on long values with
 * escapes. Checked from 1 KiB to 1 MiB, and that doubling the body at most ~doubles the work. */
static size_t tags_shape(char *buf, size_t n, int shape)
{
    size_t at = 0;
    for (unsigned i = 0; at + 64 < n; i++) {
        if (shape == 0) /* 31 distinct keys, then the last one again and again */
            at += (size_t)sprintf(buf + at, "key_%04u_abcdefghijklmnop='v',",
                                  i < SQLTAGS_MAX - 1 ? i : SQLTAGS_MAX - 2);
        else /* one long escaped value */
            at += (size_t)sprintf(buf + at, "%s", i == 0 ? "k='" : "a\\'%%20\\\\ ");
    }
    at += (size_t)sprintf(buf + at, shape == 0 ? "last='v'" : "'");
    return at;
}

TEST(work_is_linear)
{
    static char buf[(1 << 20) + 128];
    for (int shape = 0; shape < 2; shape++) {
        double prev = 0;
        for (size_t n = 1024; n <= (1 << 20); n *= 2) {
            size_t len = tags_shape(buf, n, shape);
            sqltags_init(&g_tags);
            CHECK(sqltags_parse_comment(buf, len, &g_tags));
            double per_byte = (double)g_tags.work / (double)len;
            CHECK(g_tags.work <= SQLTAGS_WORK_MAX(len));
            /* (below 8 KiB the first 31 keys, which cost less, are a good part of the body) */
            CHECK(n < 8192 || per_byte <= prev * 1.125);
            prev = per_byte;
        }
    }
}

int main(void)
{
    RUN(r39_sqlcommenter_url_decoded);
    RUN(r39_sqlcommenter_escaped_quote);
    RUN(r39_sqlcommenter_escaped_backslash_before_quote);
    RUN(r39_escapes_and_percents_together);
    RUN(r39_double_percent_before_decoding);
    RUN(r39_invalid_percent_kept);
    RUN(r39_marginalia_pairs_in_order);
    RUN(r39_marginalia_value_not_url_decoded);
    RUN(r39_unquoted_equals_and_spaces_after_commas);
    RUN(r39_first_occurrence_wins);
    RUN(r39_first_wins_between_encoded_and_plain_keys);
    RUN(r39_first_wins_across_comments);
    RUN(r39_prose_rejected_untouched);
    RUN(r39_datadog_prepended_style);
    RUN(r39_traceparent_ids);
    RUN(r39_traceparent_malformed);
    RUN(bounds_max_tags_overflow);
    RUN(bounds_storage_overflow_keeps_earlier);
    RUN(find_is_exact);
    RUN(work_is_linear);
    return TESTLIB_FINISH();
}
