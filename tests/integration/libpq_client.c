/*
 * libpq_client: the integration tests' C client, for what the Python drivers cannot do well.
 *
 * Owns one subcommand per libpq feature the proxy must carry: pipeline mode with an error in
 * the middle, COPY FROM STDIN / TO STDOUT through PQputCopyData/PQgetCopyData, a COPY the
 * server fails half-way, PQcancel of a running pg_sleep, and LISTEN with the notification
 * delivered to an idle client. It prints one line per observed fact ("key value ...") for the
 * Python test to check; it asserts nothing itself. Exit status: 0 when the run went as far as
 * it should, 1 on an unexpected libpq failure (the message goes to stderr), 2 on usage.
 *
 *   libpq_client pipeline CONNSTR
 *   libpq_client copy-in CONNSTR TABLE NROWS
 *   libpq_client copy-in-fail CONNSTR TABLE NGOOD
 *   libpq_client copy-out CONNSTR SQL
 *   libpq_client cancel CONNSTR SLEEP_SECONDS
 *   libpq_client listen CONNSTR CHANNEL TIMEOUT_SECONDS
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static PGconn *connect_or_die(const char *connstr)
{
    PGconn *conn = PQconnectdb(connstr);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "connect failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        exit(1);
    }
    return conn;
}

static const char *sqlstate_of(const PGresult *res)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s ? s : "-";
}

/* One line per result: status, row count, first value or SQLSTATE. */
static void print_result(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    printf("result %s", PQresStatus(st));
    if (st == PGRES_TUPLES_OK) {
        printf(" rows=%d", PQntuples(res));
        if (PQntuples(res) > 0 && PQnfields(res) > 0)
            printf(" value=%s", PQgetvalue(res, 0, 0));
    } else if (st == PGRES_FATAL_ERROR) {
        printf(" sqlstate=%s", sqlstate_of(res));
    }
    printf("\n");
}

static int run_count(PGconn *conn, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "select count(*) from %s", table);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "count failed: %s", PQerrorMessage(conn));
        PQclear(res);
        return 1;
    }
    printf("count %s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/*
 * Three syncs' worth of work: [param query, 3-row query, named prepared statement] sync,
 * [division by zero, a query the server must skip] sync, [one more query] sync.
 */
static int cmd_pipeline(const char *connstr)
{
    PGconn *conn = connect_or_die(connstr);
    const char *p21[] = {"21"};
    const char *pabc[] = {"abc"};
    int ok =
        PQenterPipelineMode(conn) &&
        PQsendQueryParams(conn, "select $1::int * 2 as pipeline_a", 1, NULL, p21, NULL, NULL, 0) &&
        PQsendQueryParams(conn, "select generate_series(1, 3) as pipeline_b", 0, NULL, NULL, NULL,
                          NULL, 0) &&
        PQsendPrepare(conn, "pipeline_stmt", "select $1::text as pipeline_c", 1, NULL) &&
        PQsendQueryPrepared(conn, "pipeline_stmt", 1, pabc, NULL, NULL, 0) &&
        PQpipelineSync(conn) &&
        PQsendQueryParams(conn, "select 1/0 as pipeline_err", 0, NULL, NULL, NULL, NULL, 0) &&
        PQsendQueryParams(conn, "select 5 as pipeline_skipped", 0, NULL, NULL, NULL, NULL, 0) &&
        PQpipelineSync(conn) &&
        PQsendQueryParams(conn, "select 6 as pipeline_after", 0, NULL, NULL, NULL, NULL, 0) &&
        PQpipelineSync(conn);
    if (!ok) {
        fprintf(stderr, "pipeline send failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    /* NULL separates one query's results from the next; a sync result has no NULL after. */
    int syncs = 0, nulls_in_a_row = 0;
    while (syncs < 3) {
        PGresult *res = PQgetResult(conn);
        if (res == NULL) {
            if (++nulls_in_a_row > 2 || PQstatus(conn) != CONNECTION_OK) {
                fprintf(stderr, "pipeline stalled: %s", PQerrorMessage(conn));
                PQfinish(conn);
                return 1;
            }
            continue;
        }
        nulls_in_a_row = 0;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            printf("sync\n");
            syncs++;
        } else if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            printf("result PGRES_COMMAND_OK\n"); /* the prepare */
        } else {
            print_result(res);
        }
        PQclear(res);
    }
    if (!PQexitPipelineMode(conn)) {
        fprintf(stderr, "exit pipeline failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    return 0;
}

static int copy_in(const char *connstr, const char *table, int ngood, int with_bad_row)
{
    PGconn *conn = connect_or_die(connstr);
    char sql[256];
    snprintf(sql, sizeof sql, "copy %s (id, val) from stdin", table);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fprintf(stderr, "copy start failed: %s", PQerrorMessage(conn));
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    PQclear(res);
    /* With a bad row, as many good rows follow it as precede it: the server fails the COPY
     * while we are still sending, and that CopyData must still be carried (and discarded). */
    int total = with_bad_row ? 2 * ngood + 1 : ngood;
    for (int i = 1; i <= total; i++) {
        char line[128];
        int n;
        if (with_bad_row && i == ngood + 1)
            n = snprintf(line, sizeof line, "not_an_int\tbad row\n");
        else
            n = snprintf(line, sizeof line, "%d\tvalue %d\n", i, i);
        if (PQputCopyData(conn, line, n) != 1) {
            fprintf(stderr, "put copy data failed: %s", PQerrorMessage(conn));
            PQfinish(conn);
            return 1;
        }
    }
    if (PQputCopyEnd(conn, NULL) != 1) {
        fprintf(stderr, "put copy end failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        printf("copy-in ok tuples=%s\n", PQcmdTuples(res));
    else
        printf("copy-in %s sqlstate=%s\n", PQresStatus(PQresultStatus(res)), sqlstate_of(res));
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    int rc = run_count(conn, table);
    PQfinish(conn);
    return rc;
}

static int cmd_copy_out(const char *connstr, const char *sql)
{
    PGconn *conn = connect_or_die(connstr);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        fprintf(stderr, "copy out start failed: %s", PQerrorMessage(conn));
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    PQclear(res);
    long rows = 0, bytes = 0;
    char *buf;
    int n;
    while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
        rows++;
        bytes += n;
        PQfreemem(buf);
    }
    if (n == -2) {
        fprintf(stderr, "copy out failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    res = PQgetResult(conn);
    printf("copy-out %s rows=%ld data_bytes=%ld tuples=%s\n", PQresStatus(PQresultStatus(res)),
           rows, bytes, PQcmdTuples(res));
    PQclear(res);
    PQfinish(conn);
    return 0;
}

static int cmd_cancel(const char *connstr, const char *seconds)
{
    PGconn *conn = connect_or_die(connstr);
    char sql[128];
    snprintf(sql, sizeof sql, "select pg_sleep(%s) as cancel_me", seconds);
    double t0 = now_ms();
    if (!PQsendQuery(conn, sql)) {
        fprintf(stderr, "send failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    /* Give the server time to start sleeping, so the cancel hits a running query. */
    usleep(500 * 1000);
    PGcancel *cancel = PQgetCancel(conn);
    char errbuf[256] = "";
    int sent = cancel && PQcancel(cancel, errbuf, sizeof errbuf);
    printf("cancel-sent %s %s\n", sent ? "ok" : "failed", errbuf);
    PQfreeCancel(cancel);
    PGresult *res = PQgetResult(conn);
    printf("result %s sqlstate=%s elapsed_ms=%.0f\n", PQresStatus(PQresultStatus(res)),
           sqlstate_of(res), now_ms() - t0);
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    res = PQexec(conn, "select 7 as after_cancel");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        printf("after value=%s\n", PQgetvalue(res, 0, 0));
    else
        printf("after failed %s", PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return 0;
}

static int cmd_listen(const char *connstr, const char *channel, const char *timeout_s)
{
    PGconn *conn = connect_or_die(connstr);
    char sql[256];
    snprintf(sql, sizeof sql, "listen %s", channel);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "listen failed: %s", PQerrorMessage(conn));
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    PQclear(res);
    printf("listening\n");
    fflush(stdout);
    /* Idle from here on: the notification must come to us unasked. */
    double deadline = now_ms() + atof(timeout_s) * 1000.0;
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0) {
            printf("timeout\n");
            PQfinish(conn);
            return 1;
        }
        int sock = PQsocket(conn);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(sock, &rd);
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((long)left % 1000) * 1000};
        if (select(sock + 1, &rd, NULL, NULL, &tv) < 0 && errno != EINTR) {
            perror("select");
            PQfinish(conn);
            return 1;
        }
        if (!PQconsumeInput(conn)) {
            fprintf(stderr, "consume input failed: %s", PQerrorMessage(conn));
            PQfinish(conn);
            return 1;
        }
        PGnotify *n = PQnotifies(conn);
        if (n) {
            printf("notify channel=%s payload=%s\n", n->relname, n->extra);
            PQfreemem(n);
            PQfinish(conn);
            return 0;
        }
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: libpq_client pipeline|copy-in|copy-in-fail|copy-out|cancel|listen "
                    "CONNSTR [ARGS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1], *connstr = argv[2];
    if (strcmp(cmd, "pipeline") == 0 && argc == 3)
        return cmd_pipeline(connstr);
    if (strcmp(cmd, "copy-in") == 0 && argc == 5)
        return copy_in(connstr, argv[3], atoi(argv[4]), 0);
    if (strcmp(cmd, "copy-in-fail") == 0 && argc == 5)
        return copy_in(connstr, argv[3], atoi(argv[4]), 1);
    if (strcmp(cmd, "copy-out") == 0 && argc == 4)
        return cmd_copy_out(connstr, argv[3]);
    if (strcmp(cmd, "cancel") == 0 && argc == 4)
        return cmd_cancel(connstr, argv[3]);
    if (strcmp(cmd, "listen") == 0 && argc == 5)
        return cmd_listen(connstr, argv[3], argv[4]);
    return usage();
}
