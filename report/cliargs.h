/* report/cliargs — the option handling every pgtally subcommand shares.
 *
 * Owns: running getopt_long over a subcommand's arguments with what each command does alike:
 * `-h`/`--help` prints its usage on stdout (exit 0); an unknown option or a missing argument
 * (getopt has named it on stderr) prints the usage on stderr (exit 2); and, for a command that
 * takes no operands, a word left after the options is `pgtally CMD: unexpected argument
 * "WORD"` (exit 2). Everything else comes back to the command's own switch. It lives in
 * report/, the lowest layer with commands, so that report/ and proxy/'s commands both use it. */
#ifndef PGTALLY_REPORT_CLIARGS_H
#define PGTALLY_REPORT_CLIARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* The last entries of every command's getopt_long table: `--help`, which cli_next answers,
 * and the terminator. */
/* clang-format off */
#define CLI_OPTIONS_HELP_AND_END {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}
/* clang-format on */

/* cli_next's answers besides an option's code. */
enum {
    CLI_DONE = -1, /* the options are over: operands (if any) start at optind */
    CLI_EXIT = -2, /* the command ends now with exit status `status` */
};

typedef struct CliArgs {
    const char *command;          /* "report": messages begin "pgtally report: " */
    const char *short_options;    /* getopt's, "h" among them */
    const struct option *options; /* getopt_long's table, ending CLI_OPTIONS_HELP_AND_END */
    void (*print_usage)(FILE *out);
    bool operands; /* words after the options are the command's */
    int status;    /* with CLI_EXIT: the exit status */
    bool started;  /* set by cli_next (getopt is reset on the first call) */
} CliArgs;

/* The next option of argv for the command's switch, CLI_DONE, or CLI_EXIT (help printed, or a
 * usage error reported). */
int cli_next(CliArgs *cli, int argc, char **argv);

#endif
