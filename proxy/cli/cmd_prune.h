/* proxy/cli/cmd_prune — `pgtally prune`: retention for a report store (report/prune). */
#ifndef PGTALLY_PROXY_CMD_PRUNE_H
#define PGTALLY_PROXY_CMD_PRUNE_H

/* Runs `pgtally prune`; argv[0] is "prune". Exit: 0 ok, 1 pruning failed, 2 usage error. */
int cmd_prune_main(int argc, char **argv);

#endif
