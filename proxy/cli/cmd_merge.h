/* proxy/cli/cmd_merge — `pgtally merge`: combine report files (report/merge). */
#ifndef PGTALLY_PROXY_CMD_MERGE_H
#define PGTALLY_PROXY_CMD_MERGE_H

/* Runs `pgtally merge`; argv[0] is "merge". Exit: 0 ok, 1 a copy failed, 2 usage error or an
 * input that cannot be merged (nothing written then). */
int cmd_merge_main(int argc, char **argv);

#endif
