/* report/view/view — the `pgtally report` command.
 *
 * Owns: the command line of `pgtally report` (formats, output file, drill-down options), the
 * loading of what one report shows (through report/reader) and the choice of formatter
 * (view_text, view_json, view_markdown, view_html). Exit codes: 0 ok, 2 bad usage or an
 * unusable report file (the message names the file), 1 when the output cannot be written. */
#ifndef PGTALLY_REPORT_VIEW_H
#define PGTALLY_REPORT_VIEW_H

/* Runs `pgtally report`; argv[0] is "report". Prints its own errors; returns the exit code. */
int report_main(int argc, char **argv);

#endif
