/* proxy/demo/demo_cluster — the child processes of `pgtally demo`: a throwaway PostgreSQL
 * cluster and the proxy under demonstration.
 *
 * Owns: finding Debian's server binaries (/usr/lib/postgresql/N/bin, newest N), initdb into
 * a directory of the caller's, starting `postgres` on a Unix socket only (no TCP port to
 * collide with) with fsync off, spawning children in their own process group (Ctrl-C reaches
 * the demo only, which then stops them in order) with a parent-death signal (if the demo is
 * killed outright, the kernel stops them), and stopping a child with escalating signals.
 * When run as root, PostgreSQL runs as the `postgres` user (it refuses to run as root).
 * Blocking calls; the caller is single-threaded. */
#ifndef PGTALLY_PROXY_DEMO_CLUSTER_H
#define PGTALLY_PROXY_DEMO_CLUSTER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Runs argv as a child: own process group, stdout+stderr appended to `log_path`, signal
 * `death_signal` when the demo dies, privileges dropped to `user` when not NULL (root only).
 * Returns the pid, or -1 with the reason in err. */
pid_t demo_spawn(char *const argv[], const char *log_path, const char *user, int death_signal,
                 char *err, size_t err_len);

/* Sends `sig` to `pid` and waits up to `timeout_s` for it to exit, then SIGKILL. Reaps it.
 * Returns its wait status (or -1 if it could not be reaped). */
int demo_stop_child(pid_t pid, int sig, double timeout_s);

/* True (and reaps it, status in *status) when `pid` has exited. */
bool demo_child_exited(pid_t pid, int *status);

typedef struct DemoCluster {
    char dir[PATH_MAX]; /* ours: data/ and the socket live here */
    char datadir[PATH_MAX];
    char log_path[PATH_MAX];      /* initdb's and postgres's output */
    char conninfo[PATH_MAX + 64]; /* libpq connection string, user postgres, db postgres */
    pid_t postmaster;             /* 0 when not running */
} DemoCluster;

/* Creates `dir` (must not exist; its parent must), runs initdb and starts postgres, waiting
 * until it accepts connections. `dir` doubles as the socket directory, so the upstream for
 * the proxy is `dir` itself. On failure everything started is stopped; err says why (with
 * the end of the server log). */
bool demo_cluster_start(DemoCluster *cluster, const char *dir, char *err, size_t err_len);

/* Stops the server (fast shutdown, then immediate, then SIGKILL). Idempotent. The caller
 * removes the directory. */
void demo_cluster_stop(DemoCluster *cluster);

/* Removes `path` and everything below it; best effort. */
void demo_remove_tree(const char *path);

#endif
