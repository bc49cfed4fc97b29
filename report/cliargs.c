/* report/cliargs — see cliargs.h. */
#include "report/cliargs.h"

int cli_next(CliArgs *cli, int argc, char **argv)
{
    if (!cli->started) {
        cli->started = true;
        optind = 1; /* getopt keeps its place in globals: start at this argv */
    }
    int c = getopt_long(argc, argv, cli->short_options, cli->options, NULL);
    switch (c) {
    case 'h':
        cli->print_usage(stdout);
        cli->status = 0;
        return CLI_EXIT;
    case '?':
    case ':':
        cli->print_usage(stderr);
        cli->status = 2;
        return CLI_EXIT;
    case -1:
        if (!cli->operands && optind < argc) {
            fprintf(stderr, "pgtally %s: unexpected argument \"%s\"\n", cli->command,
                    argv[optind]);
            cli->status = 2;
            return CLI_EXIT;
        }
        return CLI_DONE;
    default:
        return c;
    }
}
