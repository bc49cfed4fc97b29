/* proxy/cli/cmd_fingerprint — the `pgtally fingerprint` subcommand. */
#ifndef PGTALLY_PROXY_CMD_FINGERPRINT_H
#define PGTALLY_PROXY_CMD_FINGERPRINT_H

/* argv[0] is "fingerprint". Returns the exit code: 0 ok, 2 usage or I/O error. */
int cmd_fingerprint_main(int argc, char **argv);

#endif
