/* tests/unit/test_sqltags.c — tag comments (NORMALIZATION.md rule 39). */
#include "protocol/sqltags.h"
#include "tests/unit/testlib.h"

TEST(stub)
{
    SqlTags t;
    sqltags_init(&t);
    CHECK(sqltags_parse_comment("a:b", 3, &t));
}

int main(void)
{
    RUN(stub);
    return TESTLIB_FINISH();
}
