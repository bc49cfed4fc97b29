/* report/check/check — the command `pgtally check` (docs/budgets.md).
 *
 * Owns: its command line, reading the budget file (report/check/budgetfile), having the runs
 * judged (report/check/budget), printing and writing the outputs (report/check/check_output)
 * and the exit code: 0 within budget, 1 over budget or incomplete data, 2 usage /
 * budget-file / database errors. Above budget and check_output, so neither needs the other. */
#ifndef PGTALLY_REPORT_CHECK_CHECK_H
#define PGTALLY_REPORT_CHECK_CHECK_H

/* `pgtally check ARGS...` (argv[0] is "check"); returns the exit code. */
int check_main(int argc, char **argv);

#endif
