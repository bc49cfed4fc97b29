/* tests/unit/test_sqlkeywords.c — the normalizer's generated keyword table
 * (protocol/sqlkeywords.h, made by protocol/gen_keywords.py): every word is found under its
 * own id and nothing else is, the PostgreSQL categories and the rule flags are the ones
 * docs/normalization-spec.md names. That the checked-in header matches kwlist.h is the
 * `sqlkeywords_drift` test's job. */
#include "protocol/sqlkeywords.h"
#include "tests/unit/testlib.h"

static SqlKeyword lookup(const char *w)
{
    return kw_lookup(w, strlen(w));
}

TEST(every_word_finds_its_own_id)
{
    for (int k = 1; k < KW_COUNT; k++) {
        const char *w = kw_info[k].word;
        size_t n = strlen(w);
        CHECK(n >= KW_MIN_LEN && n <= KW_MAX_LEN);
        if (kw_lookup(w, n) != (SqlKeyword)k)
            printf("  '%s' -> %d, expected %d\n", w, (int)kw_lookup(w, n), k);
        CHECK_EQ_INT(kw_lookup(w, n), k);
        if (k > 1) /* ids follow the words' ASCII order, as kwlist.h does */
            CHECK(strcmp(kw_info[k - 1].word, w) < 0);
    }
}

TEST(near_misses_are_not_keywords)
{
    char buf[KW_MAX_LEN + 2];
    for (int k = 1; k < KW_COUNT; k++) {
        size_t n = strlen(kw_info[k].word);
        memcpy(buf, kw_info[k].word, n);
        buf[n] = 'q'; /* no keyword ends in q */
        CHECK_EQ_INT(kw_lookup(buf, n + 1), KW_NOT_KEYWORD);
        buf[n - 1] ^= 0x20; /* uppercase: the caller lowercases first */
        CHECK_EQ_INT(kw_lookup(buf, n), KW_NOT_KEYWORD);
    }
    CHECK_EQ_INT(lookup("id"), KW_NOT_KEYWORD);
    CHECK_EQ_INT(lookup("created_at"), KW_NOT_KEYWORD);
    CHECK_EQ_INT(lookup("count"), KW_NOT_KEYWORD);
    CHECK_EQ_INT(lookup(""), KW_NOT_KEYWORD);
    /* bytes whose low 5 bits alias a letter's land in that letter's bucket, then fail */
    CHECK_EQ_INT(lookup("\xe1s"), KW_NOT_KEYWORD);                   /* 0xe1 ~ 'a': not `as` */
    CHECK_EQ_INT(lookup("\023elect"), KW_NOT_KEYWORD);               /* 0x13 ~ 's': not `select` */
    CHECK_EQ_INT(lookup("current_timestamp"), KW_CURRENT_TIMESTAMP); /* the longest */
    CHECK_EQ_INT(lookup("current_timestampx"), KW_NOT_KEYWORD);
}

/* kw_find_block: every word of up to 16 bytes at the start of a block whose other bytes are
 * anything (here 'x' and 0xff); one byte shorter it is what kw_lookup finds for that prefix,
 * and with its last byte changed it is no keyword (none ends in q). */
TEST(block_lookup_ignores_the_bytes_past_the_word)
{
    for (int k = 1; k < KW_COUNT; k++) {
        const char *w = kw_info[k].word;
        size_t n = strlen(w);
        for (int fill = 0; fill < 2; fill++) {
            unsigned char block[16];
            memset(block, fill ? 0xff : 'x', sizeof(block));
            memcpy(block, w, n < 16 ? n : 16);
            uint64_t lo = 0, hi = 0;
            for (int i = 0; i < 8; i++) {
                lo |= (uint64_t)block[i] << (8 * i);
                hi |= (uint64_t)block[8 + i] << (8 * i);
            }
            if (n > 16) {
                CHECK_EQ_INT(kw_find_block(lo, hi, n), KW_NOT_KEYWORD); /* the caller's job */
                continue;
            }
            CHECK_EQ_INT(kw_find_block(lo, hi, n), k);
            CHECK_EQ_INT(kw_find_block(lo, hi, n - 1), kw_lookup(w, n - 1)); /* a prefix */
            uint64_t changed = ((uint64_t)'q') << (8 * ((n - 1) % 8));
            uint64_t mask = ~((uint64_t)0xff << (8 * ((n - 1) % 8)));
            if (n <= 8)
                CHECK_EQ_INT(kw_find_block((lo & mask) | changed, hi, n), KW_NOT_KEYWORD);
            else
                CHECK_EQ_INT(kw_find_block(lo, (hi & mask) | changed, n), KW_NOT_KEYWORD);
        }
    }
}

TEST(categories_come_from_postgresql)
{
    CHECK_EQ_INT(kw_info[lookup("select")].category, KWCAT_RESERVED);
    CHECK_EQ_INT(kw_info[lookup("abort")].category, KWCAT_UNRESERVED);
    CHECK_EQ_INT(kw_info[lookup("between")].category, KWCAT_COL_NAME);
    CHECK_EQ_INT(kw_info[lookup("ilike")].category, KWCAT_TYPE_FUNC_NAME);
    CHECK_EQ_INT(kw_info[lookup("elsif")].category, KWCAT_PLPGSQL);
    CHECK(kw_info[lookup("abort")].bare_label);
    CHECK(!kw_info[lookup("day")].bare_label); /* AS_LABEL: `select 1 day` is an interval */
}

TEST(rule_flags_match_the_spec)
{
    CHECK_EQ_INT(kw_flags[KW_NOT_KEYWORD], 0);
    CHECK_EQ_INT(kw_flags[KW_SELECT], KWF_OPERAND | KWF_TSTOP | KWF_SPACED);
    CHECK_EQ_INT(kw_flags[KW_TO], KWF_OPERAND | KWF_SPACED);
    CHECK_EQ_INT(kw_flags[KW_LIMIT],
                 KWF_OPERAND | KWF_TSTOP | KWF_OBEND | KWF_OBFOLLOW | KWF_SPACED);
    CHECK_EQ_INT(kw_flags[KW_ASC], KWF_TSTOP | KWF_OBFOLLOW);
    CHECK_EQ_INT(kw_flags[KW_WITH], KWF_OPERAND | KWF_SPACED);
    CHECK_EQ_INT(kw_flags[KW_CAST], 0);
    CHECK_EQ_INT(kw_flags[KW_ABORT], 0);
    int flagged = 0;
    for (int k = 0; k < KW_COUNT; k++)
        flagged += kw_flags[k] != 0;
    CHECK_EQ_INT(flagged, 79); /* the words R21, R26, R27 and R35 name */
}

int main(void)
{
    RUN(every_word_finds_its_own_id);
    RUN(near_misses_are_not_keywords);
    RUN(block_lookup_ignores_the_bytes_past_the_word);
    RUN(categories_come_from_postgresql);
    RUN(rule_flags_match_the_spec);
    return TESTLIB_FINISH();
}
