/* report/pgtool — see pgtool.h. */
#include "report/pgtool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/errfmt.h"
#include "report/store/pg_schema.h"

/* libpq's messages span lines: one line, "; " between them. */
static void one_line(const char *in, char *out, size_t out_len)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 3 < out_len; i++) {
        if (in[i] != '\n') {
            out[j++] = in[i];
        } else if (in[i + 1]) {
            out[j++] = ';';
            out[j++] = ' ';
        }
    }
    out[j] = 0;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

bool pgtool_open(PgTool *t, const char *target, const char *schema, bool create, char *err,
                 size_t err_len)
{
    memset(t, 0, sizeof *t);
    pq_redact(target, t->name, sizeof t->name);
    schema = schema ? schema : STORE_PG_DEFAULT_SCHEMA;
    if (!store_pg_schema_name_valid(schema)) {
        report_err(err, err_len,
                   "--db-schema: \"%s\" is not a schema name pgtally uses (1-63 letters, digits "
                   "or _, not starting with a digit)",
                   schema);
        return false;
    }
    snprintf(t->schema, sizeof t->schema, "%s", schema);
    char why[256];
    if (!(t->pq = pq_load(why, sizeof why))) {
        report_err(err, err_len, "%s: %s", t->name, why);
        return false;
    }
    if (!(t->conn = pq_connect(t->pq, target, err, err_len)))
        return false;
    t->pq->setNoticeProcessor(t->conn, ignore_notice, NULL);
    if (create)
        return store_pg_migrate(t->pq, t->conn, t->schema, t->name, err, err_len) ||
               (pgtool_close(t), false);
    int version = 0;
    if (!store_pg_schema_version(t->pq, t->conn, t->schema, t->name, &version, err, err_len)) {
        pgtool_close(t);
        return false;
    }
    if (version == 0 || version > STORE_PG_SCHEMA_VERSION) {
        if (version == 0)
            report_err(err, err_len, "%s: no pgtally store in schema \"%s\" (see --db-schema)",
                       t->name, t->schema);
        else
            report_err(err, err_len,
                       "%s: store schema version %d is newer than this pgtally reads (%d); use a "
                       "newer pgtally",
                       t->name, version, STORE_PG_SCHEMA_VERSION);
        pgtool_close(t);
        return false;
    }
    return true;
}

void pgtool_close(PgTool *t)
{
    if (t->conn)
        t->pq->finish(t->conn);
    t->conn = NULL;
}

PGresult *pgtool_exec(PgTool *t, const char *sql, int n, const char *const *params,
                      const char *what, char *err, size_t err_len)
{
    PGresult *res = t->pq->execParams(t->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? t->pq->resultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    char msg[400];
    const char *m = res ? t->pq->resultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    one_line(m && *m ? m : t->pq->errorMessage(t->conn), msg, sizeof msg);
    report_err(err, err_len, "%s: %s: %s", t->name, what, msg);
    t->pq->clear(res);
    return NULL;
}

bool pgtool_run(PgTool *t, const char *sql, int n, const char *const *params, uint64_t *changed,
                const char *what, char *err, size_t err_len)
{
    PGresult *res = pgtool_exec(t, sql, n, params, what, err, err_len);
    if (!res)
        return false;
    if (changed)
        *changed = strtoull(t->pq->cmdTuples(res), NULL, 10);
    t->pq->clear(res);
    return true;
}

bool pgtool_copy(PgTool *t, const char *table, const char *columns, const char *data, size_t len,
                 char *err, size_t err_len)
{
    if (!len)
        return true;
    char sql[768], what[96];
    snprintf(sql, sizeof sql, "COPY \"%s\".%s (%s) FROM STDIN", t->schema, table, columns);
    snprintf(what, sizeof what, "cannot write %s", table);
    PGresult *res = t->pq->exec(t->conn, sql);
    if (!res || t->pq->resultStatus(res) != PGRES_COPY_IN) {
        t->pq->clear(res);
        report_err(err, err_len, "%s: %s: %s", t->name, what, t->pq->errorMessage(t->conn));
        return false;
    }
    t->pq->clear(res);
    bool sent = true;
    for (size_t off = 0; sent && off < len;) {
        size_t n = len - off < (1u << 20) ? len - off : (1u << 20);
        sent = t->pq->putCopyData(t->conn, data + off, (int)n) == 1;
        off += n;
    }
    bool ok = t->pq->putCopyEnd(t->conn, sent ? NULL : "pgtally: send failed") == 1 && sent;
    if (!ok)
        report_err(err, err_len, "%s: %s: the connection failed", t->name, what);
    while ((res = t->pq->getResult(t->conn)) != NULL) {
        if (t->pq->resultStatus(res) != PGRES_COMMAND_OK) {
            char msg[400];
            const char *m = t->pq->resultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            one_line(m && *m ? m : t->pq->errorMessage(t->conn), msg, sizeof msg);
            report_err(err, err_len, "%s: %s: %s", t->name, what, msg);
            ok = false;
        }
        t->pq->clear(res);
    }
    return ok;
}
