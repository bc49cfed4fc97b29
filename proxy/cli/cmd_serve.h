/* proxy/cli/cmd_serve — `pgtally serve`: the report store as live web pages (report/view/serve). */
#ifndef PGTALLY_PROXY_CMD_SERVE_H
#define PGTALLY_PROXY_CMD_SERVE_H

/* Runs `pgtally serve` until SIGINT or SIGTERM; argv[0] is "serve". Exit: 0 stopped by a
 * signal, 1 the store or address cannot be used, 2 usage error. */
int cmd_serve_main(int argc, char **argv);

#endif
