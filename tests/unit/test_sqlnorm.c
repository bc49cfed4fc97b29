/* tests/unit/test_sqlnorm.c — the normalizer against docs/normalization-spec.md: every numbered
 * example (spec_NN_*), the equal-F groups and incomplete flags, own cases per rule
 * (rNN_*), standard_conforming_strings=off, output bounds, and idempotence N(N(q)) == N(q),
 * which every CHECK_NORM checks for each statement it normalizes. */
#include <stdbool.h>
#include <stdlib.h>

#include "protocol/sqlnorm.h"
#include "tests/unit/testlib.h"

static int spec_passed;

typedef struct NormResult {
    char text[8192]; /* statements joined with " | " */
    int statements;
    bool incomplete; /* any statement */
    bool idempotent;
    bool bounded;                 /* N within the bound, spans inside the input */
    bool same_without_shortcuts;  /* the general rules alone give the same statements */
    uint64_t fingerprint, values; /* of the first statement */
    SqlTags tags;
} NormResult;

/* Normalizes every statement of `in` and checks the invariants that hold for all inputs. */
static bool norm_pass(const char *in, size_t len, bool scs_off, bool no_shortcuts, NormResult *r)
{
    SqlnormOptions opt = {.scs_off = scs_off, .no_shortcuts = no_shortcuts};
    SqlnormCursor cur;
    SqlnormStatement st;
    size_t cap = sqlnorm_output_bound(len);
    char *out = malloc(cap);
    char *again = malloc(cap + 64);
    size_t used = 0;
    memset(r, 0, sizeof(*r));
    r->idempotent = r->bounded = true;
    sqltags_init(&r->tags);
    sqlnorm_cursor_init(&cur, in, len, &opt);
    while (sqlnorm_next(&cur, out, cap, &st, &r->tags)) {
        if (st.normalized != out || st.normalized_len >= cap || st.src_offset > len ||
            st.src_len > len - st.src_offset)
            r->bounded = false;
        if (r->statements == 0) {
            r->fingerprint = st.fingerprint;
            r->values = st.values_hash;
        }
        r->incomplete |= st.incomplete;
        if (r->statements++ > 0 && used + 3 < sizeof(r->text)) {
            memcpy(r->text + used, " | ", 3);
            used += 3;
        }
        size_t n = st.normalized_len < sizeof(r->text) - used - 1 ? st.normalized_len
                                                                  : sizeof(r->text) - used - 1;
        memcpy(r->text + used, st.normalized, n);
        used += n;

        /* R3: N(N) == N, as exactly one statement */
        SqlnormCursor c2;
        SqlnormStatement s2;
        size_t nlen = st.normalized_len;
        char *ncopy = malloc(nlen + 1);
        memcpy(ncopy, st.normalized, nlen);
        size_t cap2 = sqlnorm_output_bound(nlen);
        char *out2 = cap2 <= cap + 64 ? again : malloc(cap2);
        sqlnorm_cursor_init(&c2, ncopy, nlen, NULL);
        if (!sqlnorm_next(&c2, out2, cap2, &s2, NULL) || s2.normalized_len != nlen ||
            memcmp(s2.normalized, ncopy, nlen) != 0 || s2.fingerprint != st.fingerprint ||
            sqlnorm_next(&c2, out2, cap2, &s2, NULL)) {
            r->idempotent = false;
            printf("  not idempotent: \"%.*s\"\n", (int)nlen, ncopy);
        }
        if (out2 != again)
            free(out2);
        free(ncopy);
    }
    r->text[used] = '\0';
    free(out);
    free(again);
    return true;
}

/* norm_pass, and again with the fast paths off: both must give the same statements. */
static bool norm_once(const char *in, size_t len, bool scs_off, NormResult *r)
{
    static NormResult general;
    norm_pass(in, len, scs_off, false, r);
    norm_pass(in, len, scs_off, true, &general);
    r->same_without_shortcuts = strcmp(r->text, general.text) == 0 &&
                                r->statements == general.statements &&
                                r->fingerprint == general.fingerprint &&
                                r->values == general.values && r->incomplete == general.incomplete;
    if (!r->same_without_shortcuts)
        printf("  fast path: \"%s\"\n  general:   \"%s\"\n", r->text, general.text);
    return true;
}

static NormResult g_r, g_r2;

#define CHECK_NORM_OPT(in, scs, expected)                                                          \
    do {                                                                                           \
        norm_once((in), strlen(in), (scs), &g_r);                                                  \
        CHECK_EQ_STR(g_r.text, (expected));                                                        \
        CHECK(g_r.idempotent);                                                                     \
        CHECK(g_r.bounded);                                                                        \
        CHECK(g_r.same_without_shortcuts);                                                         \
    } while (0)
#define CHECK_NORM(in, expected) CHECK_NORM_OPT((in), false, (expected))

/* Same fingerprint (and so the same N) for two inputs. */
#define CHECK_SAME_F(a, b)                                                                         \
    do {                                                                                           \
        norm_once((a), strlen(a), false, &g_r);                                                    \
        norm_once((b), strlen(b), false, &g_r2);                                                   \
        CHECK_EQ_STR(g_r.text, g_r2.text);                                                         \
        CHECK(g_r.fingerprint == g_r2.fingerprint);                                                \
    } while (0)

#define CHECK_TAG(k_, v_)                                                                          \
    do {                                                                                           \
        const SqlTag *t_ = sqltags_find(&g_r.tags, (k_));                                          \
        CHECK(t_ != NULL);                                                                         \
        if (t_)                                                                                    \
            CHECK_EQ_MEM(t_->value, t_->value_len, (v_));                                          \
    } while (0)

#define SPEC(num, name, in, expected, want_incomplete)                                             \
    TEST(spec_##num##_##name)                                                                      \
    {                                                                                              \
        CHECK_NORM((in), (expected));                                                              \
        CHECK(g_r.incomplete == (want_incomplete));                                                \
        if (testlib_case_failures == 0)                                                            \
            spec_passed++;                                                                         \
    }

/* ---- the 62 numbered examples of the spec (docs/normalization-spec.md) ---- */
SPEC(01, doubled_quote, "SELECT * FROM t WHERE name = 'O''Brien'",
     "select * from t where name = $1", false)
SPEC(02, backslash_in_plain_string, "SELECT * FROM t WHERE path = 'C:\\' AND id = 1",
     "select * from t where path = $1 and id = $2", false)
SPEC(03, escape_string, "SELECT * FROM t WHERE s = e'a\\\\' AND id = 3",
     "select * from t where s = $1 and id = $2", false)
SPEC(04, unicode_string_uescape, "SELECT U&'d!0061t' UESCAPE '!' FROM t", "select $1 from t", false)
SPEC(05, dollar_quote_opaque, "SELECT $$it's $1 ; -- not a comment$$ AS body, 1",
     "select $1 as body, $2", false)
SPEC(06, dollar_quote_tagged, "SELECT $fn$ SELECT 'x' $inner$ $fn$ FROM t", "select $1 from t",
     false)
SPEC(07, dollar_inside_words, "SELECT col$1, a$tag$b FROM t WHERE x = $tag$v$tag$",
     "select col$1, a$tag$b from t where x = $1", false)
SPEC(08, bit_hex_national_strings, "SELECT B'1010', X'1F', b'0', x'ff', N'nat'",
     "select $1, $2, $3, $4, $5", false)
SPEC(09, string_continuation, "SELECT 'a'\n'b' AS s", "select $1 as s", false)
SPEC(10, strings_same_line_separate, "SELECT 'a' 'b'", "select $1 $2", false)
SPEC(11, number_forms,
     "SELECT 1, 3.5, .5, 5., 1e-5, 1.5E+10, 1_000_000, 0x1F, 0o17, 0b1010, 0xFF_FF",
     "select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11", false)
SPEC(12, sign_folding, "SELECT * FROM t WHERE a=-1 AND b = - 2 AND c = x-1 AND d = x - -1",
     "select * from t where a = $1 and b = $2 and c = x - $3 and d = x - $4", false)
SPEC(13, sign_after_operators, "SELECT * FROM t WHERE a = +1 AND b <-1 AND c @-1",
     "select * from t where a = $1 and b < $2 and c @- $3", false)
SPEC(14, sign_after_keywords,
     "SELECT CASE WHEN a THEN -1 ELSE 1 END FROM t WHERE b BETWEEN -5 AND -1",
     "select case when a then $1 else $2 end from t where b between $3 and $4", false)
SPEC(15, params_renumbered, "SELECT * FROM t WHERE a = $2 AND b = $1",
     "select * from t where a = $1 and b = $2", false)
SPEC(16, question_markers, "select * from t where a = ? and b in (?, ?, ?) and data ? 'key'",
     "select * from t where a = $1 and b in ($2 /*, ... */) and data ? $3", false)
SPEC(17, percent_markers, "SELECT * FROM t WHERE id = %s AND name = %(name)s AND x % 2 = 0",
     "select * from t where id = $1 and name = $2 and x % $3 = $4", false)
SPEC(18, colon_markers, "SELECT * FROM t WHERE id = :id AND arr[1:2] = :v AND ts::date = :d",
     "select * from t where id = $1 and arr[$2:$3] = $4 and ts::date = $5", false)
SPEC(19, typmods_after_cast,
     "SELECT '2024-01-01'::date, 1::int, '{1,2}'::int[], 'x'::varchar(10), "
     "'y'::numeric(10,2), 'z'::timestamp(3) with time zone",
     "select $1::date, $2::int, $3::int[], $4::varchar(10), $5::numeric(10, 2), "
     "$6::timestamp(3) with time zone",
     false)
SPEC(20, in_list_after_cast, "SELECT x::text IN ('a','b') FROM t",
     "select x::text in ($1 /*, ... */) from t", false)
SPEC(21, cast_as_typmod, "SELECT CAST('x' AS varchar(10)), CAST(5 AS numeric(10, 2))",
     "select cast($1 as varchar(10)), cast($2 as numeric(10, 2))", false)
SPEC(22, typed_literals,
     "SELECT * FROM t WHERE ts > now() - interval '5 minutes' AND d = date '2024-01-01'",
     "select * from t where ts > now() - interval $1 and d = date $2", false)
SPEC(23, booleans_and_null,
     "SELECT * FROM t WHERE a = true AND b IS TRUE AND c IS NOT FALSE AND d = NULL AND e IS "
     "NULL AND f IS NOT NULL",
     "select * from t where a = $1 and b is true and c is not false and d = $2 and e is null "
     "and f is not null",
     false)
SPEC(24, values_rows_collapse, "INSERT INTO t (a, b) VALUES (1, NULL), (2, 'x')",
     "insert into t (a, b) values ($1, $2) /*, ... */", false)
SPEC(25, values_rows_differ, "INSERT INTO t (a, b) VALUES (1, DEFAULT), (2, 3)",
     "insert into t (a, b) values ($1, default), ($2, $3)", false)
SPEC(26, values_rows_with_calls, "INSERT INTO t (a, b) VALUES (1, now()), (2, now()) RETURNING id",
     "insert into t (a, b) values ($1, now()) /*, ... */ returning id", false)
SPEC(27, values_one_row, "INSERT INTO t (a) VALUES (1)", "insert into t (a) values ($1) /*, ... */",
     false)
SPEC(28, values_three_rows, "INSERT INTO t (a) VALUES (1), (2), (3)",
     "insert into t (a) values ($1) /*, ... */", false)
SPEC(29, values_in_subquery, "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)",
     "select * from (values ($1, $2) /*, ... */) as v(id, name)", false)
SPEC(30, in_list_of_one, "SELECT * FROM t WHERE id IN (1)",
     "select * from t where id in ($1 /*, ... */)", false)
SPEC(31, in_list_of_casts, "SELECT * FROM t WHERE id IN ('a'::uuid, 'b'::uuid)",
     "select * from t where id in ($1::uuid /*, ... */)", false)
SPEC(32, in_subquery_kept, "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = 1)",
     "select * from t where id in (select id from u where x = $1)", false)
SPEC(33, in_list_of_tuples, "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))",
     "select * from t where (a, b) in (($1, $2) /*, ... */)", false)
SPEC(34, not_in_and_params, "SELECT * FROM t WHERE id NOT IN (1,2) AND k IN ($1, $2, $3)",
     "select * from t where id not in ($1 /*, ... */) and k in ($2 /*, ... */)", false)
SPEC(35, any_array, "SELECT * FROM t WHERE id = ANY(ARRAY[1,2,3]) AND j = ANY('{1,2,3}'::int[])",
     "select * from t where id = any(array[$1 /*, ... */]) and j = any($2::int[])", false)
SPEC(36, nested_arrays, "SELECT ARRAY[ARRAY[1,2],ARRAY[3,4]]",
     "select array[array[$1 /*, ... */], array[$2 /*, ... */]]", false)
SPEC(37, comments_dropped_nested, "/* leading */ SELECT /* mid */ 1 /* nested /* inner */ still */",
     "select $1", false)
SPEC(38, unterminated_comment, "SELECT 1 /* unterminated", "select $1", true)
SPEC(39, comment_ends_operator, "SELECT 1+/*c*/2, 3--4", "select $1 + $2, $3", false)
SPEC(40, sqlcommenter_tags,
     "SELECT * FROM t WHERE id = 7 "
     "/*action='show',controller='users',db_driver='django.db.backends.postgresql',"
     "framework='django%3A4.2',route='users%2F%3Cint%3Apk%3E',traceparent='00-"
     "5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
     "select * from t where id = $1", false)
SPEC(41, marginalia_tags,
     "/*application:Shop,controller:products,action:index*/ SELECT * FROM products WHERE id = 9",
     "select * from products where id = $1", false)
SPEC(42, prose_comment_dropped, "SELECT 1 /* just a note, really */", "select $1", false)
SPEC(43, quoted_identifiers_keep_case, "SELECT \"Id\", ID, id, \"id\" FROM \"Users\" u",
     "select \"Id\", id, id, \"id\" from \"Users\" u", false)
SPEC(44, doubled_double_quotes, "SELECT \"a\"\"b\" FROM \"t\"\"x\" WHERE \"q\" = 'r'",
     "select \"a\"\"b\" from \"t\"\"x\" where \"q\" = $1", false)
SPEC(45, digits_in_identifiers,
     "SELECT * FROM events_2024_01 JOIN t1 ON t1.id = events_2024_01.t1_id",
     "select * from events_2024_01 join t1 on t1.id = events_2024_01.t1_id", false)
SPEC(46, whitespace_and_semicolon, "Select\n\t1;", "select $1", false)
SPEC(47, not_equal_spelled_both_ways, "SELECT a=1,b<>2,c!=3", "select a = $1, b <> $2, c <> $3",
     false)
SPEC(48, order_by_positional, "SELECT * FROM t ORDER BY 1, 2 DESC LIMIT 10",
     "select * from t order by 1, 2 desc limit $1", false)
SPEC(49, group_and_order_positional,
     "SELECT a, count(*) FROM t GROUP BY 1 ORDER BY count(*) DESC, 1 NULLS LAST",
     "select a, count(*) from t group by 1 order by count(*) desc, 1 nulls last", false)
SPEC(50, order_by_call_then_positional, "SELECT * FROM t ORDER BY coalesce(a, 0), 3",
     "select * from t order by coalesce(a, $1), 3", false)
SPEC(51, savepoint_name, "SAVEPOINT \"s140234_x1\"", "savepoint $1", false)
SPEC(52, declare_cursor_name,
     "DECLARE \"_django_curs_140234_sync_1\" NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t "
     "WHERE id > 5",
     "declare $1 no scroll cursor with hold for select * from t where id > $2", false)
SPEC(53, fetch_cursor_name, "FETCH FORWARD 2000 FROM \"_django_curs_140234_sync_1\"",
     "fetch forward $1 from $2", false)
SPEC(54, two_statements, "SELECT 1; SELECT 'a';", "select $1 | select $1", false)
SPEC(55, unterminated_string, "SELECT * FROM t WHERE name = 'abc",
     "select * from t where name = $1", true)
SPEC(56, unterminated_identifier, "SELECT \"orders_ord", "select \"orders_ord", true)
SPEC(57, json_operators,
     "SELECT data->>'a', data #> '{a,b}', data ?| array['a','b'], data @? '$.a' FROM t",
     "select data ->> $1, data #> $2, data ?| array[$3 /*, ... */], data @? $4 from t", false)
SPEC(58, already_normalized, "select * from t where id in ($1 /*, ... */) and x = $2",
     "select * from t where id in ($1 /*, ... */) and x = $2", false)
SPEC(59, non_ascii_words, "SELECT \"Ünïcode\", Naïve FROM t", "select \"Ünïcode\", naïve from t",
     false)
SPEC(60, like_escape_backslash, "SELECT * FROM t WHERE name LIKE 'abc%' ESCAPE '\\'",
     "select * from t where name like $1 escape $2", false)
SPEC(61, set_search_path, "SET search_path = 'tenant_42', public", "set search_path = $1, public",
     false)
SPEC(62, hibernate_fetch_first,
     "select u1_0.id,u1_0.email from users u1_0 where u1_0.id=? fetch first ? rows only",
     "select u1_0.id, u1_0.email from users u1_0 where u1_0.id = $1 fetch first $2 rows only",
     false)

/* ---- the spec's groups ---- */

TEST(spec_group_27_28_same_f)
{
    CHECK_SAME_F("INSERT INTO t (a) VALUES (1)", "INSERT INTO t (a) VALUES (1), (2), (3)");
}

TEST(spec_group_37_42_46_same_f)
{
    CHECK_SAME_F("/* leading */ SELECT /* mid */ 1 /* nested /* inner */ still */",
                 "SELECT 1 /* just a note, really */");
    CHECK_SAME_F("SELECT 1 /* just a note, really */", "Select\n\t1;");
}

TEST(spec_group_30_spaced_list_same_f)
{
    CHECK_SAME_F("SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN ( 1 ,2, 3 )");
}

TEST(spec_group_40_same_f_without_comment)
{
    CHECK_SAME_F("SELECT * FROM t WHERE id = 7 /*action='show',controller='users'*/",
                 "SELECT * FROM t WHERE id = 7");
}

static const char spec_40_query[] =
    "SELECT * FROM t WHERE id = 7 "
    "/*action='show',controller='users',db_driver='django.db.backends.postgresql',"
    "framework='django%3A4.2',route='users%2F%3Cint%3Apk%3E',traceparent='00-"
    "5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/";

TEST(spec_40_tags_decoded)
{
    norm_once(spec_40_query, strlen(spec_40_query), false, &g_r);
    CHECK_EQ_INT(g_r.tags.count, 6);
    CHECK_TAG("action", "show");
    CHECK_TAG("controller", "users");
    CHECK_TAG("db_driver", "django.db.backends.postgresql");
    CHECK_TAG("framework", "django:4.2");
    CHECK_TAG("route", "users/<int:pk>");
    CHECK_TAG("traceparent", "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01");
    if (g_r.tags.count == 6)
        CHECK_EQ_MEM(g_r.tags.tags[0].key, g_r.tags.tags[0].key_len, "action");
}

TEST(spec_41_tags_in_order)
{
    const char *q = "/*application:Shop,controller:products,action:index*/ SELECT * FROM "
                    "products WHERE id = 9";
    norm_once(q, strlen(q), false, &g_r);
    CHECK_EQ_INT(g_r.tags.count, 3);
    if (g_r.tags.count == 3) {
        CHECK_EQ_MEM(g_r.tags.tags[0].key, g_r.tags.tags[0].key_len, "application");
        CHECK_EQ_MEM(g_r.tags.tags[0].value, g_r.tags.tags[0].value_len, "Shop");
        CHECK_EQ_MEM(g_r.tags.tags[2].key, g_r.tags.tags[2].key_len, "action");
        CHECK_EQ_MEM(g_r.tags.tags[2].value, g_r.tags.tags[2].value_len, "index");
    }
}

TEST(spec_42_prose_comment_no_tags)
{
    norm_once("SELECT 1 /* just a note, really */", 34, false, &g_r);
    CHECK_EQ_INT(g_r.tags.count, 0);
}

/* ---- own cases, per rule ---- */

TEST(r01_invalid_bytes_pass_through)
{
    CHECK_NORM("SELECT \xff\xfe x, \"\xc3(\" FROM t", "select \xff\xfe x, \"\xc3(\" from t");
}

TEST(r01_empty_and_blank_inputs_have_no_statement)
{
    CHECK_NORM("", "");
    CHECK_NORM("  \n\t ", "");
    CHECK_NORM("-- only a comment", "");
    CHECK_NORM("/* a */ ; ;; /* b */", "");
}

TEST(r02_scs_off_backslash_escapes_quote)
{
    CHECK_NORM_OPT("SELECT 'a\\'b' AS x, 1", true, "select $1 as x, $2");
    /* standard strings: the literal ends at \', then b' opens an unterminated bit string */
    CHECK_NORM_OPT("SELECT 'a\\'b' AS x, 1", false, "select $1 $2");
    CHECK(g_r.incomplete);
}

TEST(r02_scs_off_national_string_too)
{
    CHECK_NORM_OPT("SELECT N'a\\'b', B'1', X'f'", true, "select $1, $2, $3");
}

TEST(r02_scs_off_same_f_as_standard_when_no_backslash)
{
    const char *q = "SELECT * FROM t WHERE a = 'x''y' AND b = e'\\n'";
    norm_once(q, strlen(q), true, &g_r);
    norm_once(q, strlen(q), false, &g_r2);
    CHECK_EQ_STR(g_r.text, g_r2.text);
    CHECK(g_r.fingerprint == g_r2.fingerprint);
    CHECK(g_r.values == g_r2.values);
}

TEST(r02_scs_off_unterminated_by_escaped_quote)
{
    CHECK_NORM_OPT("SELECT 'C:\\' AND id = 1", true, "select $1");
    CHECK(g_r.incomplete);
}

TEST(r04_fingerprint_is_xxh3_seed_1_of_n)
{
    const char *q = "SELECT 1";
    norm_once(q, strlen(q), false, &g_r);
    /* XXH3_64bits_withSeed("select $1", 9, 1), computed independently */
    SqlnormCursor c;
    SqlnormStatement st;
    char out[128];
    sqlnorm_cursor_init(&c, "select $1", 9, NULL);
    CHECK(sqlnorm_next(&c, out, sizeof(out), &st, NULL));
    CHECK(g_r.fingerprint == st.fingerprint);
    char hex[17];
    sqlnorm_hex64(0x00ab0000000000cdULL, hex);
    CHECK_EQ_STR(hex, "00ab0000000000cd");
}

TEST(r04_tags_do_not_change_f)
{
    CHECK_SAME_F("/* a:b */ SELECT 1", "SELECT 1 /* c:d, e:f */");
}

TEST(r04a_values_hash_distinguishes_values)
{
    norm_once("SELECT * FROM t WHERE id IN (1, 2)", 34, false, &g_r);
    norm_once("SELECT * FROM t WHERE id IN (1, 3)", 34, false, &g_r2);
    CHECK(g_r.fingerprint == g_r2.fingerprint);
    CHECK(g_r.values != g_r2.values);
}

TEST(r04a_values_hash_equal_for_exact_duplicates)
{
    norm_once("SELECT * FROM t WHERE a = 'x' AND b = -2", 40, false, &g_r);
    norm_once("select *  from t where a='x' and b=- 2", 38, false, &g_r2);
    CHECK(g_r.fingerprint == g_r2.fingerprint);
    CHECK(g_r.values == g_r2.values);
}

TEST(r04a_values_hash_is_length_prefixed_and_ordered)
{
    norm_once("SELECT 'ab', 'c'", 16, false, &g_r);
    norm_once("SELECT 'a', 'bc'", 16, false, &g_r2);
    CHECK(g_r.values != g_r2.values);
    norm_once("SELECT 'c', 'ab'", 16, false, &g_r2);
    CHECK(g_r.values != g_r2.values);
}

TEST(r04a_values_hash_long_literals)
{
    static char q[4096];
    memcpy(q, "SELECT '", 8);
    memset(q + 8, 'x', 3000);
    memcpy(q + 3008, "', 1", 5);
    norm_once(q, strlen(q), false, &g_r);
    q[100] = 'y';
    norm_once(q, strlen(q), false, &g_r2);
    CHECK(g_r.fingerprint == g_r2.fingerprint);
    CHECK(g_r.values != g_r2.values);
}

TEST(r05_control_bytes_are_whitespace)
{
    CHECK_NORM("SELECT\x01"
               "1\x7f,\x1f"
               "2\r\n\f\v",
               "select $1, $2");
}

TEST(r06_line_comment_ends_at_cr_and_inside_operators)
{
    CHECK_NORM("SELECT 1 -- c\rFROM t", "select $1 from t");
    CHECK_NORM("SELECT a<--x\n b", "select a < b");
}

TEST(r07_block_comments_nest_and_end_operators)
{
    CHECK_NORM("SELECT /* a /* b */ c */ 1, 2*/**/3", "select $1, $2 * $3");
    CHECK_NORM("SELECT 1 /*/ still a comment */ , 2", "select $1, $2");
}

TEST(r07_unterminated_nested_comment_is_incomplete)
{
    CHECK_NORM("SELECT 1 /* a /* b */", "select $1");
    CHECK(g_r.incomplete);
}

TEST(r09_words_lowercase_ascii_only_with_dollar)
{
    CHECK_NORM("SELECT ÄBC, Foo$Bar, _x9 FROM T", "select Äbc, foo$bar, _x9 from t");
}

TEST(r10_unicode_identifier_with_uescape_kept)
{
    CHECK_NORM("SELECT U&\"d!0061t\" UESCAPE '!' FROM t",
               "select U&\"d!0061t\" uescape '!' from t");
}

TEST(r10_unterminated_identifier_keeps_text)
{
    CHECK_NORM("SELECT a FROM \"my \"\"t", "select a from \"my \"\"t");
    CHECK(g_r.incomplete);
}

TEST(r12_escape_string_prefix_must_touch)
{
    CHECK_NORM("SELECT E'\\'x', e 'y', xe'z'", "select $1, e $2, xe $3");
}

TEST(r13_unicode_string_uescape_across_comment)
{
    CHECK_NORM("SELECT U&'x' /* c */ UESCAPE\n'#', 1", "select $1, $2");
}

TEST(r14_bit_hex_national_any_case)
{
    CHECK_SAME_F("SELECT b'1', X'AB', n'x'", "SELECT 'a', 'b', 'c'");
}

TEST(r15_continuation_with_comment_lines)
{
    CHECK_NORM("SELECT 'a' -- c\n'b', E'x\\'y' 'z', 'q'\n\n  'r'", "select $1, $2 $3, $4");
}

TEST(r16_dollar_quote_forms)
{
    CHECK_NORM("SELECT $a$ x $a$, $_b1$y$_b1$, $$$$", "select $1, $2, $3");
    CHECK_NORM("SELECT $x$ unterminated $y$", "select $1");
    CHECK(g_r.incomplete);
}

TEST(r16_dollar_not_at_token_start_is_word)
{
    CHECK_NORM("SELECT a$$b, c$d$ FROM t", "select a$$b, c$d$ from t");
}

TEST(r17_number_with_underscores)
{
    CHECK_SAME_F("SELECT 1_000_000", "SELECT 7");
}

TEST(r17_number_edges)
{
    CHECK_NORM("SELECT 1..5, 1.x, 1e5e, 0x1e+5, .5e-3, 12abc",
               "select $1.$2, $3, $4, $5 + $6, $7, $8");
}

TEST(r18_parameters_and_stray_dollar)
{
    CHECK_NORM("SELECT $12, $1abc, $", "select $1, $2 abc, $3");
}

TEST(r19_operator_splitting)
{
    CHECK_NORM("SELECT a*-1, b<>-1, c||-1, d@-1, e->>'k', f !~~* g",
               "select a * $1, b <> $2, c ||- $3, d @- $4, e ->> $5, f !~~* g");
}

TEST(r20_punctuation_spacing)
{
    CHECK_NORM("SELECT a . b , t.* , f ( x ) , arr [ 1 ] , x :: int FROM s . t",
               "select a.b, t.*, f (x), arr[$1], x::int from s.t");
}

TEST(r21_operand_position_decides_question_mark)
{
    CHECK_NORM("SELECT * FROM t WHERE data ?| x AND y ? 'k' AND z ?& w AND (?) = ANY(?)",
               "select * from t where data ?| x and y ? $1 and z ?& w and ($2) = any($3)");
}

TEST(r22_sign_folding_only_in_operand_position)
{
    CHECK_NORM("SELECT x-1, x - -1, -1, (- 1), 2 - 1, f(-1), a[-1], - /* c */ 5",
               "select x - $1, x - $2, $3, ($4), $5 - $6, f($7), a[$8], $9");
}

TEST(r23_comparison_marker_runs)
{
    CHECK_NORM("SELECT * FROM t WHERE a=? AND b<? AND c>=? AND d<>? AND e!=? AND f<=?",
               "select * from t where a = $1 and b < $2 and c >= $3 and d <> $4 and e <> $5 and "
               "f <= $6");
}

TEST(r23_markers_only_in_operand_position)
{
    CHECK_NORM("SELECT a FROM t WHERE b % s AND c %(x)s AND d = %(na me)s",
               "select a from t where b % s and c % (x) s and d = % (na me) s");
    CHECK_NORM("SELECT x FROM t WHERE a = :a AND arr[:n] AND b::c",
               "select x from t where a = $1 and arr[$2] and b::c");
}

TEST(r23_colon_in_operand_position_stays_apart)
{
    CHECK_NORM("select: b", "select: b");
    CHECK_NORM("SELECT a: :b, c : : d", "select a: :b, c: :d");
}

TEST(r24_booleans)
{
    CHECK_NORM("SELECT true, FALSE, x IS NOT TRUE, x = NOT true",
               "select $1, $2, x is not true, x = not $3");
}

TEST(r25_null_kept_after_is_and_not)
{
    CHECK_NORM("CREATE TABLE t (a int NOT NULL DEFAULT NULL)",
               "create table t (a int not null default $1)");
}

TEST(r26_positional_items)
{
    CHECK_NORM("SELECT x FROM t ORDER BY 1 ASC, x, 2 + 1, 3 LIMIT 5 OFFSET 1",
               "select x from t order by 1 asc, x, $1 + $2, 3 limit $3 offset $4");
    CHECK_NORM(
        "SELECT x FROM t GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 2 UNION SELECT 1 ORDER BY 1",
        "select x from t group by 1, 2 having count(*) > $1 order by 2 union select $2 order by 1");
    CHECK_NORM("SELECT row_number() OVER (PARTITION BY a ORDER BY 2) FROM t",
               "select row_number() over (partition by a order by 2) from t");
    CHECK_NORM("SELECT 1 FROM t ORDER BY -1, 1.5, (1)", "select $1 from t order by $2, $3, ($4)");
}

TEST(r27_type_modifiers)
{
    CHECK_NORM("SELECT 'a'::character varying(20), x::double precision, y::pg_catalog.varchar(5), "
               "z::int[3], CAST(x AS timestamp(3) with time zone)",
               "select $1::character varying(20), x::double precision, y::pg_catalog.varchar(5), "
               "z::int[3], cast(x as timestamp(3) with time zone)");
}

TEST(r27_typmod_needs_cast_context)
{
    CHECK_NORM("SELECT varchar(10) 'x', f(10)", "select varchar($1) $2, f($3)");
    CHECK_NORM("SELECT x::int IN (1), y::text AS z",
               "select x::int in ($1 /*, ... */), y::text as z");
}

TEST(r28_session_scoped_names)
{
    CHECK_NORM("SAVEPOINT sp1; RELEASE SAVEPOINT sp1; RELEASE sp2; ROLLBACK TO SAVEPOINT sp3; "
               "ROLLBACK WORK TO sp4; ROLLBACK; CLOSE c1; CLOSE ALL; MOVE 5 IN cur; "
               "FETCH ALL FROM \"c\"",
               "savepoint $1 | release savepoint $1 | release $1 | rollback to savepoint $1 | "
               "rollback work to $1 | rollback | close $1 | close all | move $1 in $2 | "
               "fetch all from $1");
}

TEST(r28_same_f_for_django_cursors)
{
    CHECK_SAME_F("FETCH FORWARD 2000 FROM \"_django_curs_1_sync_1\"",
                 "fetch forward 100 from \"_django_curs_99_sync_7\"");
}

TEST(r29_no_semantic_rewrites)
{
    CHECK_NORM("SELECT a AS b FROM t x WHERE b OR a AND c IN (d)",
               "select a as b from t x where b or a and c in (d)");
}

TEST(r30_in_list_mixed_elements_expand)
{
    CHECK_NORM(
        "SELECT a FROM t WHERE x IN(1, 2) AND y IN (1, x) AND z IN (1, 1, 2)",
        "select a from t where x in ($1 /*, ... */) and y in ($2, x) and z in ($3 /*, ... */)");
    CHECK_NORM("SELECT * FROM t WHERE id IN (1, 2, x, 3)",
               "select * from t where id in ($1, $2, x, $3)");
    CHECK_NORM("SELECT * FROM t WHERE id IN ((1, 2), (3))",
               "select * from t where id in (($1, $2), ($3))");
    CHECK_NORM("SELECT * FROM t WHERE id IN ()", "select * from t where id in ()");
}

TEST(r30_in_list_collapse_is_count_independent)
{
    CHECK_SAME_F("SELECT 1 WHERE a IN (?)", "SELECT 1 WHERE a IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    CHECK_SAME_F("SELECT 1 WHERE a IN ($1)", "SELECT 1 WHERE a IN ($5, $6)");
}

TEST(r31_array_lists)
{
    CHECK_NORM("SELECT ARRAY[[1,2],[3,4]], ARRAY[]::int[], ARRAY[1, x]",
               "select array[[$1 /*, ... */],[$2 /*, ... */]], array[]::int[], array[$3, x]");
}

TEST(r32_values_rows)
{
    CHECK_NORM("INSERT INTO t VALUES (1), (2), (x) ON CONFLICT DO NOTHING",
               "insert into t values ($1), ($2), (x) on conflict do nothing");
    CHECK_NORM("INSERT INTO t VALUES (1), (2), (3), (4, 5)",
               "insert into t values ($1), ($2), ($3), ($4, $5)");
    CHECK_NORM("WITH x AS (INSERT INTO t VALUES (1),(2) RETURNING id) SELECT * FROM x",
               "with x as (insert into t values ($1) /*, ... */ returning id) select * from x");
    CHECK_NORM("INSERT INTO t DEFAULT VALUES", "insert into t default values");
}

TEST(r32_values_list_ends_at_stray_comma)
{
    CHECK_NORM("INSERT INTO t VALUES (1), , 2", "insert into t values ($1) /*, ... */,, $2");
}

TEST(r33_re_expansion_after_many_equal_elements)
{
    CHECK_NORM("SELECT 1 WHERE a IN (1, 2, 3, 4, x)", "select $1 where a in ($2, $3, $4, $5, x)");
    CHECK_NORM("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (now(), 'd')",
               "insert into t values ($1, $2), ($3, $4), ($5, $6), (now(), $7)");
}

TEST(r34_numbering_in_output_order_after_collapse)
{
    CHECK_NORM("SELECT $3 WHERE a IN ($9, $8) AND b = $1",
               "select $1 where a in ($2 /*, ... */) and b = $3");
}

TEST(r35_touching_parenthesis)
{
    CHECK_NORM("SELECT count(*), f (x), \"f\"(x), \"f\" (x), any (array[1]), x IN(1), VALUES(1)",
               "select count(*), f (x), \"f\"(x), \"f\" (x), any (array[$1 /*, ... */]), x in ($2 "
               "/*, ... */), values ($3) /*, ... */");
}

TEST(r35_glued_tokens_stay_apart)
{
    CHECK_NORM("SELECT numeric(10 . 5), x::numeric(1 .e)",
               "select numeric($1.$2), x::numeric(1 .e)");
}

TEST(r37_statements_split_and_trimmed)
{
    CHECK_NORM(";; SELECT 1; ; ; SELECT (2; 3);", "select $1 | select ($1; $2)");
}

TEST(r37_tags_anywhere_apply_to_all_statements)
{
    const char *q = "BEGIN; SELECT 1 /* request_id:r1 */; COMMIT; /* route:'x' */";
    SqlnormCursor c;
    SqlnormStatement st;
    SqlTags tags;
    char out[1024];
    sqltags_init(&tags);
    sqlnorm_cursor_init(&c, q, strlen(q), NULL);
    int n = 0;
    while (sqlnorm_next(&c, out, sizeof(out), &st, &tags))
        n++;
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(tags.count, 2);
    /* the same tags without normalizing */
    SqlTags scanned;
    sqltags_init(&scanned);
    sqlnorm_scan_tags(q, strlen(q), NULL, &scanned);
    CHECK_EQ_INT(scanned.count, 2);
    CHECK(sqltags_find(&scanned, "route") != NULL);
}

TEST(r37_last_statement_consumes_trailing_comments)
{
    const char *q = "SELECT 1; /* a:b */ ;\n";
    SqlnormCursor c;
    SqlnormStatement st;
    SqlTags tags;
    char out[256];
    sqltags_init(&tags);
    sqlnorm_cursor_init(&c, q, strlen(q), NULL);
    CHECK(sqlnorm_next(&c, out, sizeof(out), &st, &tags));
    CHECK_EQ_INT(c.pos, c.len);
    CHECK_EQ_INT(tags.count, 1);
    CHECK_EQ_INT(st.src_offset, 0);
    CHECK_EQ_INT(st.src_len, 8);
}

TEST(r37_statement_spans)
{
    const char *q = "  /* x */ SELECT 1 ;  SELECT 'a'  -- c";
    SqlnormCursor c;
    SqlnormStatement st;
    char out[512];
    sqlnorm_cursor_init(&c, q, strlen(q), NULL);
    CHECK(sqlnorm_next(&c, out, sizeof(out), &st, NULL));
    CHECK_EQ_MEM(q + st.src_offset, st.src_len, "SELECT 1");
    CHECK(sqlnorm_next(&c, out, sizeof(out), &st, NULL));
    CHECK_EQ_MEM(q + st.src_offset, st.src_len, "SELECT 'a'");
    CHECK(!sqlnorm_next(&c, out, sizeof(out), &st, NULL));
}

TEST(r38_output_bound_worst_cases)
{
    /* many one-byte literals, collapsed lists, numbering into many digits */
    static char q[200000];
    size_t n = 0;
    while (n + 16 < sizeof(q)) {
        memcpy(q + n, "?+", 2);
        n += 2;
    }
    q[n++] = '1';
    norm_once(q, n, false, &g_r);
    CHECK(g_r.bounded);
    n = 0;
    while (n + 16 < sizeof(q)) {
        memcpy(q + n, "in(1)", 5);
        n += 5;
    }
    norm_once(q, n, false, &g_r);
    CHECK(g_r.bounded);
    CHECK(g_r.idempotent);
}

TEST(r38_small_buffer_normalizes_a_prefix)
{
    const char *q = "SELECT a, b, c, d, e, f, g, h FROM t WHERE x = 1; SELECT 2";
    size_t len = strlen(q);
    size_t cap = sqlnorm_output_bound(20);
    char *out = malloc(cap); /* exact size: ASan catches a write past it */
    SqlnormCursor c;
    SqlnormStatement st;
    sqlnorm_cursor_init(&c, q, len, NULL);
    CHECK(sqlnorm_next(&c, out, cap, &st, NULL));
    CHECK(st.incomplete);
    CHECK(st.normalized_len < cap);
    CHECK_EQ_MEM(st.normalized, st.normalized_len, "select a, b, c, d, e");
    CHECK(!sqlnorm_next(&c, out, cap, &st, NULL));
    /* too small for anything: no statement, never a write */
    sqlnorm_cursor_init(&c, q, len, NULL);
    CHECK(!sqlnorm_next(&c, out, 4, &st, NULL));
    free(out);
}

TEST(r38_bound_is_monotonic_and_linear)
{
    CHECK(sqlnorm_output_bound(0) > 0);
    CHECK(sqlnorm_output_bound(1000) >= 5000);
    CHECK(sqlnorm_output_bound(1000) < sqlnorm_output_bound(1001));
    CHECK(sqlnorm_output_bound(1000000) <= 12 * 1000000 + 64);
}

TEST(r40_truncated_inputs_keep_earlier_text)
{
    CHECK_NORM("SELECT a, b FROM t WHERE c IN (1, 2", "select a, b from t where c in ($1, $2");
    CHECK_NORM("SELECT $$ body", "select $1");
    CHECK(g_r.incomplete);
    CHECK_NORM("SELECT e'abc\\", "select $1");
    CHECK(g_r.incomplete);
    CHECK_NORM("SELECT 1; SELECT 'x", "select $1 | select $1");
    CHECK(g_r.incomplete);
}

TEST(idempotence_on_tricky_outputs)
{
    static const char *const inputs[] = {
        "SELECT \\x {fn now()}",
        "SELECT a.b.c, t.*, x.5",
        "SELECT x FROM t WHERE ((a, b)) IN (((1, 2)), ((3, 4)))",
        "SELECT 'x' UESCAPE 'y'",
        "SELECT U&'x' UESCAPE 5",
        "SELECT U&\"a\" UESCAPE '\\'",
        "SELECT 1::numeric(10,-2)",
        "SELECT a := 1, f(b => 2)",
        ("SELECT (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1 IN "
         "(1,2))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))"),
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        norm_once(inputs[i], strlen(inputs[i]), false, &g_r);
        CHECK(g_r.idempotent);
        norm_once(inputs[i], strlen(inputs[i]), true, &g_r);
        CHECK(g_r.idempotent);
    }
}

/* ---- linear work on adversarial inputs ----
 *
 * The work counter (SqlnormStatement.work, SqlnormCursor.work) counts the bytes the normalizer
 * examines: each consumed once, plus every look-ahead, re-read, list comparison and the
 * numbered text. It is deterministic, so linearity is checked without a clock: for each shape
 * below, at sizes from 1 KiB to 1 MiB (256 KiB unoptimized), work <= LINEAR_K * len and doubling
 * the input at most ~doubles the work (the per-byte work grows by at most LINEAR_GROWTH per
 * doubling). */

#define LINEAR_K 16 /* work per input byte, every shape, every size */
/* ... except tag lists: each key is compared with up to SQLTAGS_MAX - 1 held ones */
#define LINEAR_K_TAGS (SQLTAGS_MAX + 8)
#define LINEAR_GROWTH 1.125 /* per-byte work at 2n over per-byte work at n */
#define LINEAR_MIN (1u << 10)
#ifdef __OPTIMIZE__
#define LINEAR_MAX (1u << 20)
#else
#define LINEAR_MAX (1u << 18) /* -O0 sanitizer builds: the same shapes, a quarter of the time */
#endif

typedef struct Shape {
    const char *name;
    const char *prefix, *open, *middle, *close, *suffix; /* prefix open^k middle close^k suffix */
    size_t (*gen)(char *buf, size_t n);                  /* or a generator for custom shapes */
    size_t k;                                            /* the bound if not LINEAR_K */
} Shape;

static size_t put(char *buf, size_t at, const char *s)
{
    size_t l = strlen(s);
    memcpy(buf + at, s, l);
    return at + l;
}

/* IN list of distinct numbers, 10k elements at 64 KiB. */
static size_t gen_in_list(char *buf, size_t n)
{
    size_t at = put(buf, 0, "SELECT * FROM t WHERE id IN (");
    for (unsigned i = 1; at + 24 < n; i++)
        at += (size_t)sprintf(buf + at, "%u, ", i);
    return put(buf, at, "0)");
}

/* IN list of equal elements, then one that differs: everything cut is put back at the end. */
static size_t gen_in_list_reexpand(char *buf, size_t n)
{
    size_t at = put(buf, 0, "SELECT * FROM t WHERE id IN (");
    while (at + 24 < n)
        at = put(buf, at, "'abcdef'::uuid, ");
    return put(buf, at, "'abcdef'::uuid || x)");
}

/* Near-miss dollar quote closers: `$` + a tag one byte short, many times. */
static size_t gen_dollar_near_miss(char *buf, size_t n)
{
    char tag[202];
    memset(tag, 'a', sizeof(tag));
    tag[0] = tag[sizeof(tag) - 1] = '$';
    size_t at = put(buf, 0, "SELECT ");
    memcpy(buf + at, tag, sizeof(tag));
    at += sizeof(tag);
    while (at + 2 * sizeof(tag) + 8 < n) {
        memcpy(buf + at, tag, sizeof(tag) - 1); /* `$aaa...a` then `b`: no match at the end */
        at += sizeof(tag) - 1;
        buf[at++] = 'b';
    }
    memcpy(buf + at, tag, sizeof(tag));
    return at + sizeof(tag);
}

/* As many tags as fit, key lengths equal, so each new key is compared with every held one. */
static size_t gen_many_tags(char *buf, size_t n)
{
    size_t at = put(buf, 0, "SELECT 1 /*");
    for (unsigned i = 0; at + 64 < n; i++)
        at += (size_t)sprintf(buf + at, "key_%06u_abcdefghijklmnopqrstuvwxyz='v',", i % 40);
    return put(buf, at, "k='v'*/");
}

/* VALUES rows nested in VALUES rows, two equal-length rows per list that differ only at their
 * end: each list compares its rows once, and each level holds the levels below. */
static size_t gen_values_tree_rows(char *buf, size_t at, unsigned depth, bool b)
{
    if (depth == 0)
        return put(buf, at, b ? "(1, b)" : "(1, a)");
    at = put(buf, at, "((values ");
    at = gen_values_tree_rows(buf, at, depth - 1, b);
    at = put(buf, at, ", ");
    at = gen_values_tree_rows(buf, at, depth - 1, !b);
    return put(buf, at, "))");
}

static size_t gen_values_tree(char *buf, size_t n)
{
    unsigned depth = 0;
    size_t rows = 6; /* bytes of one row of `depth` levels: 6, then 2 * rows + 13 */
    while (2 * (2 * rows + 13) + 32 <= n) {
        rows = 2 * rows + 13;
        depth++;
    }
    size_t at = put(buf, 0, "SELECT * FROM (VALUES ");
    at = gen_values_tree_rows(buf, at, depth, false);
    at = put(buf, at, ", ");
    at = gen_values_tree_rows(buf, at, depth, true);
    return put(buf, at, ") v");
}

static const Shape shapes[] = {
    {"operator run", "SELECT 1", "+-", "", "", "", NULL, 0},
    {"operator run after *", "SELECT a *", "-+", "", "", " 1", NULL, 0},
    {"operator run ending special", "SELECT 1", "+-", "~", "", " 2", NULL, 0},
    {"operators and comments", "SELECT 1", "+-/**/", "", "", "", NULL, 0},
    {"nested parentheses", "SELECT ", "(", "1", ")", "", NULL, 0},
    {"unclosed parentheses", "SELECT ", "(", "1", "", "", NULL, 0},
    {"nested brackets", "SELECT ARRAY", "[", "1", "]", "", NULL, 0},
    {"long string", "SELECT '", "a", "", "", "'", NULL, 0},
    {"doubled quotes", "SELECT '", "''", "", "", "'", NULL, 0},
    {"escape string backslashes", "SELECT E'", "\\\\\\'", "", "", "'", NULL, 0},
    {"string continuations", "SELECT 'a'", "\n'a'", "", "", "", NULL, 0},
    {"strings then spaces", "SELECT 'a'", "          'a'", "", "", "", NULL, 0},
    {"strings then comment lines", "SELECT ", "'a' -- c\n", "", "", "1", NULL, 0},
    {"unterminated string", "SELECT '", "a", "", "", "", NULL, 0},
    {"dollar quote", "SELECT $tag$", "x", "", "", "$tag$", NULL, 0},
    {"dollar quote near misses", NULL, NULL, NULL, NULL, NULL, gen_dollar_near_miss, 0},
    {"stray dollar tags", "SELECT ", "$abcdefgh ", "", "", "", NULL, 0},
    {"unterminated dollar quote", "SELECT $a$", "$a", "", "", "", NULL, 0},
    {"nested block comments", "SELECT ", "/*", "", "*/", " 1", NULL, 0},
    {"unterminated nested comment", "SELECT 1 ", "/*", "", "", "", NULL, 0},
    {"line comments", "SELECT 1 ", "--\n", "", "", "", NULL, 0},
    {"IN list, distinct elements", NULL, NULL, NULL, NULL, NULL, gen_in_list, 0},
    {"IN list re-expanded", NULL, NULL, NULL, NULL, NULL, gen_in_list_reexpand, 0},
    {"IN lists nested", "SELECT 1 ", "IN (1, ", "1", ")", "", NULL, 0},
    {"VALUES rows", "INSERT INTO t VALUES ", "(1, 'a'), ", "(2, 'b')", "", "", NULL, 0},
    {"VALUES rows nested in rows", NULL, NULL, NULL, NULL, NULL, gen_values_tree, 0},
    {"long identifier", "SELECT ", "a", "", "", " FROM t", NULL, 0},
    {"long quoted identifier", "SELECT \"", "\"\"", "", "", "\"", NULL, 0},
    {"long number", "SELECT ", "1", "", "", "", NULL, 0},
    {"number exponents", "SELECT 1", "e+1", "", "", "", NULL, 0},
    {"many placeholders", "SELECT ", "1,", "1", "", "", NULL, 0},
    {"many statements", "", "SELECT 1;", "", "", "", NULL, 0},
    {"percent marker misses", "SELECT ", "%(abcdefgh ", "", "", "", NULL, 0},
    {"many tags", NULL, NULL, NULL, NULL, NULL, gen_many_tags, LINEAR_K_TAGS},
    {"tag comments", "SELECT 1 ", "/*a='b'*/", "", "", "", NULL, 0},
};

static size_t shape_build(const Shape *sh, char *buf, size_t n)
{
    if (sh->gen != NULL)
        return sh->gen(buf, n);
    size_t fixed = strlen(sh->prefix) + strlen(sh->middle) + strlen(sh->suffix);
    size_t unit = strlen(sh->open) + strlen(sh->close);
    size_t k = n > fixed ? (n - fixed) / unit : 0;
    size_t at = put(buf, 0, sh->prefix);
    for (size_t i = 0; i < k; i++)
        at = put(buf, at, sh->open);
    at = put(buf, at, sh->middle);
    for (size_t i = 0; i < k; i++)
        at = put(buf, at, sh->close);
    return put(buf, at, sh->suffix);
}

/* The work of every call the proxy and the CLI make on one string: all statements with tags,
 * and the tag scan alone. */
static size_t shape_work(const char *sql, size_t len, char *out, size_t cap)
{
    SqlnormCursor cur;
    SqlnormStatement st;
    SqlTags tags;
    sqltags_init(&tags);
    sqlnorm_cursor_init(&cur, sql, len, NULL);
    while (sqlnorm_next(&cur, out, cap, &st, &tags))
        ;
    sqltags_init(&tags);
    return cur.work + sqlnorm_scan_tags(sql, len, NULL, &tags);
}

TEST(work_is_linear_on_adversarial_inputs)
{
    char *buf = malloc(LINEAR_MAX + 4096);
    size_t cap = sqlnorm_output_bound(LINEAR_MAX + 4096);
    char *out = malloc(cap);
    bool verbose = getenv("SQLNORM_WORK_VERBOSE") != NULL;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const Shape *sh = &shapes[i];
        double prev = 0;
        for (size_t n = LINEAR_MIN; n <= LINEAR_MAX; n *= 2) {
            size_t len = shape_build(sh, buf, n);
            size_t work = shape_work(buf, len, out, cap);
            double per_byte = (double)work / (double)len;
            if (verbose)
                printf("  %-30s %8zu bytes  work %10zu  %6.2f/byte\n", sh->name, len, work,
                       per_byte);
            size_t k = sh->k ? sh->k : LINEAR_K;
            bool ok = work <= k * len && (prev == 0 || per_byte <= prev * LINEAR_GROWTH);
            if (!ok) {
                printf("  %s: %zu bytes cost %zu (%.1f per byte; %.1f at half the size)\n",
                       sh->name, len, work, per_byte, prev);
                CHECK(work <= k * len);
                CHECK(prev == 0 || per_byte <= prev * LINEAR_GROWTH);
                break; /* a superlinear shape only gets slower: the next size proves nothing */
            }
            prev = per_byte;
        }
    }
    free(out);
    free(buf);
}

/* The select-list fast path (norm_name_run) on the shapes around it: plain, `""` inside,
 * spacing and comments that end a run, an unclosed name, IN and ARRAY lists, ORDER BY / GROUP
 * BY positions after a run, VALUES, type contexts, U&"" names, R28 names, statement ends.
 * CHECK_NORM also compares each with the fast paths off. */
TEST(fast_path_select_lists)
{
    CHECK_NORM("SELECT \"a\".\"id\", \"a\".\"b\" FROM \"a\"",
               "select \"a\".\"id\", \"a\".\"b\" from \"a\"");
    CHECK_NORM("SELECT \"a\".\"x\"\"y\", \"b\", \"c\"\"\" FROM t",
               "select \"a\".\"x\"\"y\", \"b\", \"c\"\"\" from t");
    CHECK_NORM("SELECT \"a\" . \"b\" ,\"c\",  \"d\",\t\"e\" FROM t",
               "select \"a\".\"b\", \"c\", \"d\", \"e\" from t");
    CHECK_NORM("SELECT \"a\"./*route='/x'*/\"b\", \"c\" -- tail",
               "select \"a\".\"b\", \"c\"");
    CHECK_NORM("SELECT \"a\".\"b\", \"c",
               "select \"a\".\"b\", \"c");
    CHECK_NORM("SELECT \"a\".\"b\" FROM t WHERE \"a\".\"b\" IN (\"x\", \"y\") AND \"a\".\"c\" IN (1, 2, 3)",
               "select \"a\".\"b\" from t where \"a\".\"b\" in (\"x\", \"y\") and \"a\".\"c\" in ($1 /*, ... */)");
    CHECK_NORM("SELECT \"a\".\"b\" FROM t ORDER BY \"a\".\"b\", 1, \"a\".\"c\", 2",
               "select \"a\".\"b\" from t order by \"a\".\"b\", 1, \"a\".\"c\", 2");
    CHECK_NORM("INSERT INTO \"t\" (\"a\", \"b\") VALUES (1, 2), (3, 4) RETURNING \"t\".\"a\", \"t\".\"b\"",
               "insert into \"t\" (\"a\", \"b\") values ($1, $2) /*, ... */ returning \"t\".\"a\", \"t\".\"b\"");
    CHECK_NORM("SELECT CAST(\"a\".\"b\" AS \"my\".\"type\"), \"c\".\"d\"::\"s\".\"t\", \"e\"",
               "select cast(\"a\".\"b\" as \"my\".\"type\"), \"c\".\"d\"::\"s\".\"t\", \"e\"");
    CHECK_NORM("SELECT U&\"a\".\"b\", U&\"c\" UESCAPE '!', \"d\".\"e\"",
               "select U&\"a\".\"b\", U&\"c\" uescape '!', \"d\".\"e\"");
    CHECK_NORM("SAVEPOINT \"sp\"; RELEASE SAVEPOINT \"sp\"",
               "savepoint $1 | release savepoint $1");
    CHECK_NORM("SELECT \"a\".\"b\"; SELECT \"c\".\"d\", \"e\"",
               "select \"a\".\"b\" | select \"c\".\"d\", \"e\"");
    CHECK_NORM("SELECT \"a\".5, \"b\".\"c\"(1), \"d\".\"e\"",
               "select \"a\" $1, \"b\".\"c\"($2), \"d\".\"e\"");
    CHECK_NORM("SELECT ARRAY[\"a\".\"b\", \"c\"], \"d\".\"e\" FROM t",
               "select array[\"a\".\"b\", \"c\"], \"d\".\"e\" from t");
    CHECK_NORM("SELECT \"a\".\"b\", \"c\".\"d\" FROM t GROUP BY \"a\".\"b\", 2 ORDER BY 1, \"c\".\"d\" DESC",
               "select \"a\".\"b\", \"c\".\"d\" from t group by \"a\".\"b\", 2 order by 1, \"c\".\"d\" desc");
    /* after a name no operand is expected (R21): `:name`, `%s` are not client markers there */
    CHECK_NORM("SELECT \"a\".\"b\", \"c\" :name, \"d\".\"e\" %s FROM t WHERE \"f\".\"g\" = :id",
               "select \"a\".\"b\", \"c\":name, \"d\".\"e\" % s from t where \"f\".\"g\" = $1");
    CHECK_NORM("SELECT \"a\".\"b\", \"c\" %(x)s", "select \"a\".\"b\", \"c\" % (x) s");
}

int main(void)
{
    RUN(spec_01_doubled_quote);
    RUN(spec_02_backslash_in_plain_string);
    RUN(spec_03_escape_string);
    RUN(spec_04_unicode_string_uescape);
    RUN(spec_05_dollar_quote_opaque);
    RUN(spec_06_dollar_quote_tagged);
    RUN(spec_07_dollar_inside_words);
    RUN(spec_08_bit_hex_national_strings);
    RUN(spec_09_string_continuation);
    RUN(spec_10_strings_same_line_separate);
    RUN(spec_11_number_forms);
    RUN(spec_12_sign_folding);
    RUN(spec_13_sign_after_operators);
    RUN(spec_14_sign_after_keywords);
    RUN(spec_15_params_renumbered);
    RUN(spec_16_question_markers);
    RUN(spec_17_percent_markers);
    RUN(spec_18_colon_markers);
    RUN(spec_19_typmods_after_cast);
    RUN(spec_20_in_list_after_cast);
    RUN(spec_21_cast_as_typmod);
    RUN(spec_22_typed_literals);
    RUN(spec_23_booleans_and_null);
    RUN(spec_24_values_rows_collapse);
    RUN(spec_25_values_rows_differ);
    RUN(spec_26_values_rows_with_calls);
    RUN(spec_27_values_one_row);
    RUN(spec_28_values_three_rows);
    RUN(spec_29_values_in_subquery);
    RUN(spec_30_in_list_of_one);
    RUN(spec_31_in_list_of_casts);
    RUN(spec_32_in_subquery_kept);
    RUN(spec_33_in_list_of_tuples);
    RUN(spec_34_not_in_and_params);
    RUN(spec_35_any_array);
    RUN(spec_36_nested_arrays);
    RUN(spec_37_comments_dropped_nested);
    RUN(spec_38_unterminated_comment);
    RUN(spec_39_comment_ends_operator);
    RUN(spec_40_sqlcommenter_tags);
    RUN(spec_41_marginalia_tags);
    RUN(spec_42_prose_comment_dropped);
    RUN(spec_43_quoted_identifiers_keep_case);
    RUN(spec_44_doubled_double_quotes);
    RUN(spec_45_digits_in_identifiers);
    RUN(spec_46_whitespace_and_semicolon);
    RUN(spec_47_not_equal_spelled_both_ways);
    RUN(spec_48_order_by_positional);
    RUN(spec_49_group_and_order_positional);
    RUN(spec_50_order_by_call_then_positional);
    RUN(spec_51_savepoint_name);
    RUN(spec_52_declare_cursor_name);
    RUN(spec_53_fetch_cursor_name);
    RUN(spec_54_two_statements);
    RUN(spec_55_unterminated_string);
    RUN(spec_56_unterminated_identifier);
    RUN(spec_57_json_operators);
    RUN(spec_58_already_normalized);
    RUN(spec_59_non_ascii_words);
    RUN(spec_60_like_escape_backslash);
    RUN(spec_61_set_search_path);
    RUN(spec_62_hibernate_fetch_first);
    RUN(spec_group_27_28_same_f);
    RUN(spec_group_37_42_46_same_f);
    RUN(spec_group_30_spaced_list_same_f);
    RUN(spec_group_40_same_f_without_comment);
    RUN(spec_40_tags_decoded);
    RUN(spec_41_tags_in_order);
    RUN(spec_42_prose_comment_no_tags);
    RUN(r01_invalid_bytes_pass_through);
    RUN(r01_empty_and_blank_inputs_have_no_statement);
    RUN(r02_scs_off_backslash_escapes_quote);
    RUN(r02_scs_off_national_string_too);
    RUN(r02_scs_off_same_f_as_standard_when_no_backslash);
    RUN(r02_scs_off_unterminated_by_escaped_quote);
    RUN(r04_fingerprint_is_xxh3_seed_1_of_n);
    RUN(r04_tags_do_not_change_f);
    RUN(r04a_values_hash_distinguishes_values);
    RUN(r04a_values_hash_equal_for_exact_duplicates);
    RUN(r04a_values_hash_is_length_prefixed_and_ordered);
    RUN(r04a_values_hash_long_literals);
    RUN(r05_control_bytes_are_whitespace);
    RUN(r06_line_comment_ends_at_cr_and_inside_operators);
    RUN(r07_block_comments_nest_and_end_operators);
    RUN(r07_unterminated_nested_comment_is_incomplete);
    RUN(r09_words_lowercase_ascii_only_with_dollar);
    RUN(r10_unicode_identifier_with_uescape_kept);
    RUN(r10_unterminated_identifier_keeps_text);
    RUN(r12_escape_string_prefix_must_touch);
    RUN(r13_unicode_string_uescape_across_comment);
    RUN(r14_bit_hex_national_any_case);
    RUN(r15_continuation_with_comment_lines);
    RUN(r16_dollar_quote_forms);
    RUN(r16_dollar_not_at_token_start_is_word);
    RUN(r17_number_with_underscores);
    RUN(r17_number_edges);
    RUN(r18_parameters_and_stray_dollar);
    RUN(r19_operator_splitting);
    RUN(r20_punctuation_spacing);
    RUN(r21_operand_position_decides_question_mark);
    RUN(r22_sign_folding_only_in_operand_position);
    RUN(r23_comparison_marker_runs);
    RUN(r23_markers_only_in_operand_position);
    RUN(r23_colon_in_operand_position_stays_apart);
    RUN(r24_booleans);
    RUN(r25_null_kept_after_is_and_not);
    RUN(r26_positional_items);
    RUN(r27_type_modifiers);
    RUN(r27_typmod_needs_cast_context);
    RUN(r28_session_scoped_names);
    RUN(r28_same_f_for_django_cursors);
    RUN(r29_no_semantic_rewrites);
    RUN(r30_in_list_mixed_elements_expand);
    RUN(r30_in_list_collapse_is_count_independent);
    RUN(r31_array_lists);
    RUN(r32_values_rows);
    RUN(r32_values_list_ends_at_stray_comma);
    RUN(r33_re_expansion_after_many_equal_elements);
    RUN(r34_numbering_in_output_order_after_collapse);
    RUN(r35_touching_parenthesis);
    RUN(r35_glued_tokens_stay_apart);
    RUN(r37_statements_split_and_trimmed);
    RUN(r37_tags_anywhere_apply_to_all_statements);
    RUN(r37_last_statement_consumes_trailing_comments);
    RUN(r37_statement_spans);
    RUN(r38_output_bound_worst_cases);
    RUN(r38_small_buffer_normalizes_a_prefix);
    RUN(r38_bound_is_monotonic_and_linear);
    RUN(r40_truncated_inputs_keep_earlier_text);
    RUN(idempotence_on_tricky_outputs);
    RUN(work_is_linear_on_adversarial_inputs);
    RUN(fast_path_select_lists);
    printf("spec examples: %d/62 passed\n", spec_passed);
    return TESTLIB_FINISH();
}
