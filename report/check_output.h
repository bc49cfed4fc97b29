/* report/check_output — what `pgtally check` prints and writes.
 *
 * Owns: the text output (every violation with route, request id/key, figure, limit and the
 * offending normalized SQL; a per-route summary; the verdict), JUnit XML (one testcase per
 * route plus one for the completeness of the data; XML-escaped, invalid UTF-8 and control
 * characters replaced) and a Markdown summary for a pull-request comment. Pure formatting
 * of a CheckResult: no file opening, no decisions. */
#ifndef PGTALLY_REPORT_CHECK_OUTPUT_H
#define PGTALLY_REPORT_CHECK_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "report/budget.h"

/* Each returns false when writing to `out` failed. */
bool check_output_text(FILE *out, const CheckResult *result);
bool check_output_junit(FILE *out, const CheckResult *result);
bool check_output_markdown(FILE *out, const CheckResult *result);

#endif
