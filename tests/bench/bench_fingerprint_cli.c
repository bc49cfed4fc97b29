/* tests/bench/bench_fingerprint_cli.c — `pgtally fingerprint` end to end vs libpg_query.
 *
 * Owns: one benchmark program with two jobs.
 *
 *   make-input CORPUS OUT [MB]
 *     Writes OUT: the ORM corpus (tests/corpus/orm_statements.sql) as the server would parse
 *     it (client markers replaced by $n, tests/corpus/corpus.h), one statement per line,
 *     repeated in corpus order until the file holds at least MB megabytes (default 28).
 *     Multi-line statements are put on one line: newlines become spaces and `-- ...`
 *     comments become block comments. Statements pg_query cannot parse after that (string
 *     continuation across a newline needs the newline) are left out, so neither side times
 *     an error path.
 *
 *   run FILE PGTALLY [PGTALLY...] [--rounds N] [--cpu N|--cpu any]
 *     Interleaved rounds of: each `PGTALLY fingerprint FILE > /dev/null` as a child process
 *     (its CPU time, user + sys, from wait4), then, in this process, reading FILE and calling
 *     pg_query_fingerprint on each line, then the same with protocol/sqlnorm (N + F + V +
 *     tags: the library inside the command, its ceiling), and the first PGTALLY on an empty
 *     input (what starting the process costs). Prints medians and the ratios. Time
 *     is CPU time, not wall time: the machine is usually shared. It asserts nothing. Several
 *     PGTALLY binaries (an old and a new build) are timed in the same rounds.
 *     Everything runs on one CPU (--cpu N; by default the one the benchmark starts on; the
 *     children inherit it): the ratio compares two programs, and on a VM the vCPUs may differ
 *     in speed (on the 2-vCPU machine of docs/benchmarks.md one ran both sides about 1.8x
 *     slower than the other), so sides measured on different CPUs would compare the CPUs.
 *     `--cpu any` leaves the scheduler free. */
#include <errno.h>
#include <fcntl.h>
#include <pg_query.h>
#include <sched.h> /* sched_setaffinity, sched_getcpu (_GNU_SOURCE: meson.build) */
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/sqlnorm.h"
#include "protocol/sqltags.h"
#include "tests/corpus/corpus.h"

extern char **environ;

#define MAX_ROUNDS 101
#define MAX_BINARIES 4

/* ---- make-input ---------------------------------------------------------------------- */

/* Appends s[0..n) to `out` on one line: see the header comment. Returns the new length. */
static size_t flatten(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t op = corpus_opaque_len(s, n, i);
        if (op > 0 && i + 1 < n && s[i] == '-' && s[i + 1] == '-') {
            size_t body = op;
            while (body > 2 && (s[i + body - 1] == '\n' || s[i + body - 1] == '\r'))
                body--;
            memcpy(out + o, "/*", 2);
            o += 2;
            for (size_t k = 2; k < body; k++) {
                char c = s[i + k];
                out[o++] = (c == '*' || c == '/') ? ' ' : c;
            }
            memcpy(out + o, " */", 3);
            o += 3;
            i += op;
            continue;
        }
        size_t end = i + (op > 0 ? op : 1);
        for (; i < end; i++)
            out[o++] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    }
    return o;
}

static int make_input(const char *corpus_path, const char *out_path, double mb)
{
    Corpus corpus;
    if (!corpus_load(&corpus, corpus_path) || corpus.count == 0) {
        fprintf(stderr, "bench_fingerprint_cli: cannot read corpus %s\n", corpus_path);
        return 2;
    }
    /* One copy of the kept statements, each followed by '\n'. */
    char *mix = malloc(corpus.data_len * 4 + 16);
    if (!mix)
        abort();
    size_t mix_len = 0, kept = 0, dropped = 0;
    for (size_t i = 0; i < corpus.count; i++) {
        bool had_markers;
        char *server =
            corpus_server_form(corpus.entries[i].sql, corpus.entries[i].len, &had_markers);
        size_t len = strlen(server);
        char *line = malloc(len * 3 + 16);
        if (!line)
            abort();
        size_t n = flatten(server, len, line);
        line[n] = 0;
        PgQueryFingerprintResult r = pg_query_fingerprint(line);
        if (r.error || n == 0) {
            dropped++;
        } else {
            memcpy(mix + mix_len, line, n);
            mix_len += n;
            mix[mix_len++] = '\n';
            kept++;
        }
        pg_query_free_fingerprint_result(r);
        free(line);
        free(server);
    }
    FILE *f = fopen(out_path, "wb");
    if (!f) {
        fprintf(stderr, "bench_fingerprint_cli: cannot create %s: %s\n", out_path, strerror(errno));
        return 2;
    }
    size_t total = 0, copies = 0;
    while ((double)total < mb * 1e6) {
        fwrite(mix, 1, mix_len, f);
        total += mix_len;
        copies++;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_fingerprint_cli: write error on %s\n", out_path);
        return 2;
    }
    printf("input %s: %zu bytes, %zu lines (%zu corpus statements x %zu; %zu left out: "
           "pg_query cannot parse them on one line)\n",
           out_path, total, kept * copies, kept, copies, dropped);
    free(mix);
    corpus_free(&corpus);
    pg_query_exit();
    return 0;
}

/* ---- run -------------------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time (user + sys) of `bin fingerprint file > /dev/null`, or -1 when it failed. */
static double time_child(const char *bin, const char *file)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)bin, "fingerprint", (char *)file, NULL};
    pid_t pid;
    int err = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        fprintf(stderr, "bench_fingerprint_cli: cannot run %s: %s\n", bin, strerror(err));
        return -1;
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_fingerprint_cli: %s fingerprint %s failed\n", bin, file);
        return -1;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Reads the whole file (part of the timed work of the in-process sides). */
static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return NULL;
    }
    char *data = malloc((size_t)sb.st_size + 1);
    if (!data)
        abort();
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, data + got, (size_t)sb.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    data[got] = 0;
    *len = got;
    return data;
}

/* pg_query_fingerprint on every line of `path`; returns CPU seconds, counts errors. */
static double time_pg_query(const char *path, uint64_t *sink, size_t *errors)
{
    double t0 = cpu_seconds();
    size_t len;
    char *data = read_file(path, &len);
    if (!data)
        return -1;
    for (char *p = data, *end = data + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        *nl = 0;
        if (nl > p) {
            PgQueryFingerprintResult r = pg_query_fingerprint(p);
            if (r.error)
                (*errors)++;
            else
                *sink += r.fingerprint;
            pg_query_free_fingerprint_result(r);
        }
        p = nl + 1;
    }
    free(data);
    return cpu_seconds() - t0;
}

/* protocol/sqlnorm (N + F + V + tags) on every line of `path`, no output: the ceiling. */
static double time_sqlnorm(const char *path, uint64_t *sink)
{
    double t0 = cpu_seconds();
    size_t len;
    char *data = read_file(path, &len);
    if (!data)
        return -1;
    size_t cap = 0;
    char *out = NULL;
    for (char *p = data, *end = data + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        size_t n = (size_t)(nl - p);
        size_t need = sqlnorm_output_bound(n);
        if (need > cap) {
            free(out);
            cap = need * 2;
            out = malloc(cap);
            if (!out)
                abort();
        }
        SqlTags tags;
        sqltags_init(&tags);
        SqlnormCursor cur;
        SqlnormStatement st;
        sqlnorm_cursor_init(&cur, p, n, NULL);
        while (sqlnorm_next(&cur, out, cap, &st, &tags))
            *sink += st.fingerprint ^ st.values_hash ^ st.normalized_len;
        *sink += tags.count;
        p = nl + 1;
    }
    free(out);
    free(data);
    return cpu_seconds() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, sizeof(*v) * (size_t)n);
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        if (v[i] < *lo)
            *lo = v[i];
        if (v[i] > *hi)
            *hi = v[i];
    }
}

static int run(int argc, char **argv)
{
    const char *file = NULL;
    const char *bins[MAX_BINARIES];
    int nbins = 0, rounds = 7;
    int cpu = sched_getcpu(); /* -1: any */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cpu") == 0 && i + 1 < argc) {
            i++;
            cpu = strcmp(argv[i], "any") == 0 ? -1 : atoi(argv[i]);
        } else if (!file) {
            file = argv[i];
        } else if (nbins < MAX_BINARIES) {
            bins[nbins++] = argv[i];
        } else {
            fprintf(stderr, "bench_fingerprint_cli: at most %d binaries\n", MAX_BINARIES);
            return 2;
        }
    }
    if (!file || nbins == 0 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr,
                "usage: bench_fingerprint_cli run FILE PGTALLY [PGTALLY...] "
                "[--rounds 1..%d] [--cpu N|any]\n",
                MAX_ROUNDS);
        return 2;
    }
    if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) {
            fprintf(stderr, "bench_fingerprint_cli: cannot run on CPU %d: %s\n", cpu,
                    strerror(errno));
            return 2;
        }
    }
    struct stat sb;
    if (stat(file, &sb) != 0) {
        fprintf(stderr, "bench_fingerprint_cli: %s: %s\n", file, strerror(errno));
        return 2;
    }
    double mb = (double)sb.st_size / 1e6;

    static double cli[MAX_BINARIES][MAX_ROUNDS], pgq[MAX_ROUNDS], lib[MAX_ROUNDS];
    static double startup[MAX_ROUNDS]; /* the first binary on an empty input */
    static double ratio[MAX_BINARIES][MAX_ROUNDS];
    uint64_t sink = 0;
    size_t errors = 0;
    double load0[3] = {0};
    getloadavg(load0, 3);
    for (int r = 0; r < rounds; r++) {
        for (int b = 0; b < nbins; b++) {
            cli[b][r] = time_child(bins[b], file);
            if (cli[b][r] < 0)
                return 1;
        }
        startup[r] = time_child(bins[0], "/dev/null");
        if (startup[r] < 0)
            return 1;
        pgq[r] = time_pg_query(file, &sink, &errors);
        lib[r] = time_sqlnorm(file, &sink);
        if (pgq[r] < 0 || lib[r] < 0) {
            fprintf(stderr, "bench_fingerprint_cli: cannot read %s\n", file);
            return 2;
        }
        for (int b = 0; b < nbins; b++)
            ratio[b][r] = pgq[r] / cli[b][r];
    }
    double load1[3] = {0};
    getloadavg(load1, 3);

    printf("fingerprint CLI benchmark: %s, %.1f MB; %d interleaved rounds; CPU time (user + "
           "sys); medians\n",
           file, mb, rounds);
    printf("load average (1 min) %.2f before, %.2f after; ", load0[0], load1[0]);
    if (cpu >= 0)
        printf("every side on CPU %d\n\n", cpu);
    else
        printf("CPUs left to the scheduler\n\n");
    printf("| %-44s | %9s | %8s | %19s |\n", "what", "CPU s", "MB/s", "rounds MB/s");
    printf("|%.46s|%.11s|%.10s|%.21s|\n", "----------------------------------------------",
           "-----------", "----------", "---------------------");
    double lo, hi;
    for (int b = 0; b < nbins; b++) {
        char name[64];
        snprintf(name, sizeof(name), "pgtally fingerprint #%d (whole process)", b + 1);
        double m = median(cli[b], rounds);
        min_max(cli[b], rounds, &lo, &hi);
        printf("| %-44s | %9.3f | %8.1f | %8.1f - %8.1f |\n", name, m, mb / m, mb / hi, mb / lo);
    }
    double m = median(startup, rounds);
    min_max(startup, rounds, &lo, &hi);
    printf("| %-44s | %9.3f | %8s | %8.3f - %8.3f |\n",
           "#1 on an empty input (process start, exit)", m, "", lo, hi);
    m = median(lib, rounds);
    min_max(lib, rounds, &lo, &hi);
    printf("| %-44s | %9.3f | %8.1f | %8.1f - %8.1f |\n", "sqlnorm library (N + F + V + tags)", m,
           mb / m, mb / hi, mb / lo);
    m = median(pgq, rounds);
    min_max(pgq, rounds, &lo, &hi);
    printf("| %-44s | %9.3f | %8.1f | %8.1f - %8.1f |\n", "libpg_query pg_query_fingerprint", m,
           mb / m, mb / hi, mb / lo);
    printf("\n");
    for (int b = 0; b < nbins; b++) {
        min_max(ratio[b], rounds, &lo, &hi);
        printf("ratio #%d (%s) / pg_query: %.2fx (median of per-round ratios; %.2fx - %.2fx)\n",
               b + 1, bins[b], median(ratio[b], rounds), lo, hi);
    }
    if (errors)
        printf("note: pg_query rejected %zu lines\n", errors);
    printf("(checksum %016llx)\n", (unsigned long long)sink);
    pg_query_exit();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "make-input") == 0)
        return make_input(argv[2], argv[3], argc >= 5 ? atof(argv[4]) : 28);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench_fingerprint_cli make-input CORPUS OUT [MB]\n"
                    "       bench_fingerprint_cli run FILE PGTALLY [PGTALLY...] [--rounds N]\n");
    return 2;
}
