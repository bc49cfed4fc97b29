/* proxy/demo/demo_cluster — child processes and a throwaway PostgreSQL for `pgtally demo`.
 *
 * Children are forked and exec'd directly (not through runuser/pg_ctl) so that the demo
 * holds the postmaster's own pid, can signal it, and can arm PR_SET_PDEATHSIG after the
 * privilege drop (a credential change clears it): a killed demo never leaves a server. */
#include "proxy/demo/demo_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The socket is private to the cluster's directory, so the standard port cannot collide. */
#define DEMO_PG_PORT "5432"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], int log_fd, const struct passwd *pw, int death_signal,
                       pid_t parent, int report_fd)
{
    setpgid(0, 0);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
        dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    if (pw) {
        gid_t gid = pw->pw_gid;
        if (setgroups(1, &gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            goto fail;
    }
    if (prctl(PR_SET_PDEATHSIG, death_signal) != 0 || getppid() != parent)
        _exit(126); /* the demo is already gone */
    execv(argv[0], argv);
fail:;
    int e = errno;
    ssize_t w = write(report_fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

pid_t demo_spawn(char *const argv[], const char *log_path, const char *user, int death_signal,
                 char *err, size_t err_len)
{
    struct passwd *pw = NULL;
    if (user && geteuid() == 0) {
        pw = getpwnam(user);
        if (!pw) {
            snprintf(err, err_len,
                     "no \"%s\" user to run %s as (PostgreSQL refuses to run "
                     "as root; install the postgresql package)",
                     user, argv[0]);
            return -1;
        }
    }
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        snprintf(err, err_len, "%s: %s", log_path, strerror(errno));
        return -1;
    }
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        close(log_fd);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(argv, log_fd, pw, death_signal, parent, report[1]);
    int fork_errno = errno;
    close(log_fd);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        snprintf(err, err_len, "fork: %s", strerror(fork_errno));
        return -1;
    }
    /* EOF means the exec succeeded (the pipe closed with it); an int is its errno. */
    int child_errno = 0;
    ssize_t n;
    do
        n = read(report[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        snprintf(err, err_len, "cannot run %s: %s", argv[0], strerror(child_errno));
        return -1;
    }
    return pid;
}

bool demo_child_exited(pid_t pid, int *status)
{
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
        if (status)
            *status = st;
        return true;
    }
    return r < 0 && errno == ECHILD;
}

int demo_stop_child(pid_t pid, int sig, double timeout_s)
{
    int status = -1;
    if (pid <= 0)
        return -1;
    if (demo_child_exited(pid, &status))
        return status;
    kill(pid, sig);
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        if (demo_child_exited(pid, &status))
            return status;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

/* ---- the cluster ------------------------------------------------------------------------- */

/* Newest /usr/lib/postgresql/N/bin (Debian installs one directory per major version). */
static bool find_bindir(char *out, size_t len, char *err, size_t err_len)
{
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0) {
        snprintf(err, err_len,
                 "no PostgreSQL server in /usr/lib/postgresql/*/bin (install "
                 "the postgresql package, or give --upstream URL)");
        return false;
    }
    long best = -1;
    const char *best_path = NULL;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
        if (v > best) {
            best = v;
            best_path = g.gl_pathv[i];
        }
    }
    bool ok = best_path && strlen(best_path) < len;
    if (ok) {
        snprintf(out, len, "%s", best_path);
        *strrchr(out, '/') = '\0';
    } else {
        snprintf(err, err_len, "PostgreSQL binary path too long");
    }
    globfree(&g);
    return ok;
}

/* Appends ": <last lines of the log>" to err, so a failed start explains itself. */
static void append_log_tail(char *err, size_t err_len, const char *log_path)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return;
    char tail[600] = "";
    if (fseek(f, -(long)(sizeof tail - 1), SEEK_END) != 0)
        rewind(f);
    size_t n = fread(tail, 1, sizeof tail - 1, f);
    tail[n] = '\0';
    fclose(f);
    size_t used = strlen(err);
    if (used < err_len)
        snprintf(err + used, err_len - used, " (%s, ends with:\n%s)", log_path, tail);
}

static bool run_to_end(char *const argv[], const char *log_path, char *err, size_t err_len)
{
    pid_t pid = demo_spawn(argv, log_path, "postgres", SIGKILL, err, err_len);
    if (pid < 0)
        return false;
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, err_len, "waitpid: %s", strerror(errno));
            return false;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, err_len, "%s failed", argv[0]);
        append_log_tail(err, err_len, log_path);
        return false;
    }
    return true;
}

bool demo_cluster_start(DemoCluster *c, const char *dir, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    char bindir[PATH_MAX - 16];
    if (!find_bindir(bindir, sizeof bindir, err, err_len))
        return false;
    if ((size_t)snprintf(c->dir, sizeof c->dir, "%s", dir) >= sizeof c->dir ||
        (size_t)snprintf(c->datadir, sizeof c->datadir, "%s/data", dir) >= sizeof c->datadir ||
        (size_t)snprintf(c->log_path, sizeof c->log_path, "%s/server.log", dir) >=
            sizeof c->log_path ||
        strlen(dir) > 80 /* sun_path is 108 bytes: "/.s.PGSQL.5432" must fit */) {
        snprintf(err, err_len, "%s: path too long for a socket directory", dir);
        return false;
    }
    if (mkdir(dir, 0700) != 0) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return false;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(err, err_len, "%s: cannot hand it to the postgres user: %s", dir,
                     pw ? strerror(errno) : "no such user (install the postgresql package)");
            return false;
        }
    }
    char initdb[PATH_MAX], postgres[PATH_MAX];
    snprintf(initdb, sizeof initdb, "%s/initdb", bindir);
    snprintf(postgres, sizeof postgres, "%s/postgres", bindir);
    char *initdb_argv[] = {initdb,  "-D", c->datadir, "-U",         "postgres",  "-A",
                           "trust", "-E", "UTF8",     "--locale=C", "--no-sync", NULL};
    if (!run_to_end(initdb_argv, c->log_path, err, err_len))
        return false;
    /* No TCP listener (listen_addresses empty): the socket in `dir` is the only way in. */
    char *pg_argv[] = {postgres,
                       "-D",
                       c->datadir,
                       "-k",
                       c->dir,
                       "-p",
                       DEMO_PG_PORT,
                       "-c",
                       "listen_addresses=",
                       "-c",
                       "fsync=off",
                       "-c",
                       "synchronous_commit=off",
                       "-c",
                       "full_page_writes=off",
                       "-c",
                       "max_connections=20",
                       NULL};
    /* SIGQUIT on the demo's death: immediate shutdown, the children go with it. */
    pid_t pid = demo_spawn(pg_argv, c->log_path, "postgres", SIGQUIT, err, err_len);
    if (pid < 0)
        return false;
    c->postmaster = pid;
    snprintf(c->conninfo, sizeof c->conninfo,
             "host=%s port=" DEMO_PG_PORT " user=postgres dbname=postgres connect_timeout=5",
             c->dir);
    double deadline = now_s() + 60;
    for (;;) {
        if (PQping(c->conninfo) == PQPING_OK)
            return true;
        int status;
        if (demo_child_exited(pid, &status)) {
            c->postmaster = 0;
            snprintf(err, err_len, "postgres exited during startup");
            append_log_tail(err, err_len, c->log_path);
            return false;
        }
        if (now_s() > deadline) {
            snprintf(err, err_len, "postgres did not accept connections within 60 s");
            append_log_tail(err, err_len, c->log_path);
            demo_cluster_stop(c);
            return false;
        }
        sleep_ms(50);
    }
}

void demo_cluster_stop(DemoCluster *c)
{
    if (c->postmaster <= 0)
        return;
    /* SIGINT = fast shutdown (a second or so); SIGQUIT = immediate if that stalls; the
     * SIGKILL of demo_stop_child last (the server's children notice their parent's death). */
    pid_t pid = c->postmaster;
    c->postmaster = 0;
    if (demo_child_exited(pid, NULL))
        return;
    kill(pid, SIGINT);
    double deadline = now_s() + 10;
    while (now_s() < deadline) {
        if (demo_child_exited(pid, NULL))
            return;
        sleep_ms(20);
    }
    demo_stop_child(pid, SIGQUIT, 5);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void demo_remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
