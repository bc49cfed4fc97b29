/* report/check/check_output — what `pgtally check` prints and writes.
 *
 * Owns: the text output (violations grouped per route and limit: how many of the route's
 * requests broke it, the figures, the limit, the worst request and the offending normalized
 * SQL; a per-route summary; the verdict), JUnit XML (one testcase per route within budget,
 * one per route and limit it broke, plus one for the completeness of the data; XML-escaped,
 * invalid UTF-8 and control characters replaced) and a Markdown summary for a pull-request
 * comment. Pure formatting of a CheckResult: no file opening, no decisions. */
#ifndef PGTALLY_REPORT_CHECK_OUTPUT_H
#define PGTALLY_REPORT_CHECK_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "report/check/budget.h"

/* Each returns false when writing to `out` failed. */
bool check_output_text(FILE *out, const CheckResult *result);
bool check_output_junit(FILE *out, const CheckResult *result);
bool check_output_markdown(FILE *out, const CheckResult *result);

#endif
