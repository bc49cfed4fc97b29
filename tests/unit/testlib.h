/* tests/unit/testlib.h — the smallest test harness that reports clearly.
 *
 * Each unit-test program registers cases with TEST(name) and runs them from main() with
 * RUN(name). CHECK* macros record a failure with file:line and go on; the program exits 1 when
 * any check failed, and prints "N passed, N failed" (cases) at the end. */
#ifndef PGTALLY_TESTS_TESTLIB_H
#define PGTALLY_TESTS_TESTLIB_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int testlib_case_failures;
static int testlib_cases_passed;
static int testlib_cases_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        testlib_case_failures = 0;                                                                 \
        test_##name();                                                                             \
        if (testlib_case_failures) {                                                               \
            testlib_cases_failed++;                                                                \
            printf("FAIL %s\n", #name);                                                            \
        } else {                                                                                   \
            testlib_cases_passed++;                                                                \
            printf("ok   %s\n", #name);                                                            \
        }                                                                                          \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            testlib_case_failures++;                                                               \
            printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                      \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            testlib_case_failures++;                                                               \
            printf("  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, va_, #b,  \
                   vb_);                                                                           \
        }                                                                                          \
    } while (0)

/* Compares a (pointer, length) view with a NUL-terminated expectation. */
#define CHECK_EQ_MEM(ptr, len, expected)                                                           \
    do {                                                                                           \
        const char *e_ = (expected);                                                               \
        size_t el_ = strlen(e_), gl_ = (size_t)(len);                                              \
        if (gl_ != el_ || memcmp((ptr), e_, el_) != 0) {                                           \
            testlib_case_failures++;                                                               \
            printf("  %s:%d: got   \"%.*s\"\n  %*s   expected \"%s\"\n", __FILE__, __LINE__,       \
                   (int)gl_, (const char *)(ptr), (int)strlen(__FILE__) + 6, "", e_);              \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(got, expected) CHECK_EQ_MEM((got), strlen(got), (expected))

#define TESTLIB_FINISH()                                                                           \
    (printf("%d passed, %d failed\n", testlib_cases_passed, testlib_cases_failed),                 \
     testlib_cases_failed ? 1 : 0)

#endif
