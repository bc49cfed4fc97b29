/* proxy/demo/cmd_demo — `pgtally demo`: the quick start (`make demo`).
 *
 * Owns: the demo's sequence and its cleanup: a throwaway PostgreSQL (proxy/demo_cluster) or
 * the server given by --upstream, the proxy as a child process (`pgtally proxy`, this same
 * binary), the built-in workload (proxy/demo_workload) through it, then the proxy's clean
 * stop (SIGTERM flushes the report), `pgtally report` and `pgtally check` against a small
 * built-in budget. Everything it started is stopped and removed on every path, Ctrl-C
 * included. Exit: 0 when the demo ran and the check flagged the N+1 endpoint (exit 1 from
 * the check, as intended); 1 when something failed; 2 on a usage error; 130 after Ctrl-C. */
#ifndef PGTALLY_PROXY_CMD_DEMO_H
#define PGTALLY_PROXY_CMD_DEMO_H

/* `pgtally demo ARGS...` (argv[0] is "demo"); returns the exit code. */
int cmd_demo_main(int argc, char **argv);

#endif
