/* report/store/pg — the store's PostgreSQL backend (libpq, loaded at run time).
 *
 * Owns: one connection to the store (made and remade from the writer thread), the schema
 * migration on first connect (report/store/pg_schema), the run row (inserted on first
 * connect), and batches written as one transaction: COPY FROM STDIN into requests and its
 * three child tables, then one multi-row upsert of the batch's fingerprints (first record
 * wins; a later one only fills a missing sample). requests.id values come from the schema's
 * sequence in blocks (STORE_PG_ID_BLOCK per nextval), so they are unique in the whole store and
 * the children can be written before the server has seen their request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/errfmt.h"
#include "report/store.h"
#include "report/store/backend.h"
#include "report/store/pg_schema.h"
#include "report/store/pq.h"

/* Fingerprint rows per INSERT statement: 5 parameters each, far below libpq's 65535. */
#define FP_ROWS_PER_INSERT 1000

typedef struct Buf {
    char *data;
    size_t len, cap;
    bool oom;
} Buf;

typedef struct PgBackend {
    StoreBackend base;
    const PqApi *pq;
    PGconn *conn;
    char *target;
    char schema[64];
    StoreRunInfo run; /* strings owned below */
    char *settings, *label, *instance, *version;
    char uuid[33];
    int64_t run_id; /* 0 until the run row is inserted */

    /* the batch being built */
    int64_t *id_blocks; /* one sequence value per STORE_PG_ID_BLOCK requests */
    size_t n_blocks, cap_blocks;
    size_t next_request; /* index of the next request in the batch */
    Buf requests, request_fingerprints, findings, statements;
    const FingerprintRecord **fps;
    size_t n_fps, cap_fps;
    bool retry;            /* the batch is a retry of one that failed with the connection */
    bool committed_before; /* a retry found its requests already there */
} PgBackend;

static PgBackend *pgb(StoreBackend *b)
{
    return (PgBackend *)b;
}

/* libpq's messages span lines ("connection to server ... failed: FATAL: ..."): one line. */
static void one_line(const char *in, char *out, size_t out_len)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < out_len; i++) {
        char c = in[i];
        if (c == '\n') {
            if (in[i + 1] == 0)
                break;
            if (j + 2 < out_len) {
                out[j++] = ';';
                out[j++] = ' ';
            }
            continue;
        }
        out[j++] = c;
    }
    out[j] = 0;
}

static void conn_error(PgBackend *p, const PGresult *res, const char *what, char *err,
                       size_t err_len)
{
    char msg[400];
    const char *m = res ? p->pq->resultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    one_line(m && *m ? m : (p->conn ? p->pq->errorMessage(p->conn) : "not connected"), msg,
             sizeof msg);
    report_err(err, err_len, "%s: %s: %s", p->base.name, what, msg);
}

/* ---- buffers ----------------------------------------------------------------------------- */

static void buf_reserve(Buf *b, size_t more)
{
    if (b->oom || b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return;
    }
    b->data = d;
    b->cap = cap;
}

static void buf_put(Buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void buf_i64(Buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    buf_put(b, tmp + i, sizeof tmp - i);
}

static void buf_u64(Buf *b, uint64_t v)
{
    /* bigint is signed: figures beyond INT64_MAX cannot occur (they count events) */
    buf_i64(b, (int64_t)v);
}

static void buf_hex16(Buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char out[16];
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 0xf];
        v >>= 4;
    }
    buf_put(b, out, 16);
}

/* ---- text the server must accept: valid UTF-8 ---------------------------------------------- */

/* A client may send any bytes (a Latin-1 literal, a cut multibyte character), and the SQLite
 * store keeps them as they are; the PostgreSQL store's database is UTF-8 and refuses a whole
 * COPY or INSERT for one bad byte, which would lose every record of the batch. So each byte
 * that does not begin a valid UTF-8 character is written as U+FFFD: only that text changes. */
static const char replacement[] = "\xEF\xBF\xBD";
#define REPLACEMENT_LEN 3

/* The length of the valid UTF-8 character at s (1 to 4 of the n bytes), or 0: a stray
 * continuation byte, a cut or overlong sequence, a surrogate, beyond U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80                 ? 1
                 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0;
    return len;
}

/* NULL when `s` is valid UTF-8 (use it as is), else a copy with each bad byte replaced, which
 * the caller frees; *oom is set when that copy cannot be made. */
static char *utf8_repaired(const char *s, bool *oom)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (!len)
            break;
        i += len;
    }
    if (i == n)
        return NULL;
    char *out = malloc(n * REPLACEMENT_LEN + 1); /* every byte may be a bad one */
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t o = 0;
    for (i = 0; i < n;) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, replacement, REPLACEMENT_LEN);
            o += REPLACEMENT_LEN;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* A COPY text-format field: backslash, tab, newline and carriage return escaped, and bytes that
 * are not UTF-8 replaced (above). */
static void buf_text(Buf *b, const char *s)
{
    if (!s) {
        buf_put(b, "\\N", 2);
        return;
    }
    size_t n = strlen(s);
    buf_reserve(b, n + 16);
    for (size_t i = 0; i < n;) {
        const unsigned char *c = (const unsigned char *)s + i;
        size_t len = utf8_len(c, n - i);
        const char *esc = NULL;
        switch (*c) {
        case '\\':
            esc = "\\\\";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            break;
        }
        if (esc)
            buf_put(b, esc, 2);
        else if (len)
            buf_put(b, s + i, len);
        else
            buf_put(b, replacement, REPLACEMENT_LEN);
        i += len ? len : 1;
    }
}

static void buf_tab(Buf *b)
{
    buf_put(b, "\t", 1);
}

static void buf_eol(Buf *b)
{
    buf_put(b, "\n", 1);
}

static void buf_free(Buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- connection ---------------------------------------------------------------------------- */

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* the store never prints; NOTICEs from DDL (IF NOT EXISTS) are expected */
}

static bool exec_ok(PgBackend *p, const char *sql, const char *what, char *err, size_t err_len)
{
    PGresult *res = p->pq->exec(p->conn, sql);
    ExecStatusType st = res ? p->pq->resultStatus(res) : PGRES_FATAL_ERROR;
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        conn_error(p, res, what, err, err_len);
    p->pq->clear(res);
    return ok;
}

static bool insert_run(PgBackend *p, char *err, size_t err_len)
{
    char sql[512], started[24], pid[24];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".runs (started_us, version, settings, uuid, label, instance, pid,"
             " heartbeat_us, heartbeat_statements) VALUES ($1, $2, $3::json::text, $4, $5, $6,"
             " $7, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, 0)"
             " ON CONFLICT (uuid) DO UPDATE SET uuid = excluded.uuid RETURNING id",
             p->schema);
    snprintf(started, sizeof started, "%lld", (long long)p->run.started_us);
    snprintf(pid, sizeof pid, "%lld", (long long)p->run.pid);
    const char *values[7] = {started,     p->run.version, p->run.settings_json,
                             p->run.uuid, p->run.label,   p->run.instance,
                             pid};
    PGresult *res = p->pq->execParams(p->conn, sql, 7, NULL, values, NULL, NULL, 0);
    bool ok = res && p->pq->resultStatus(res) == PGRES_TUPLES_OK && p->pq->ntuples(res) == 1;
    if (ok)
        p->run_id = atoll(p->pq->getvalue(res, 0, 0));
    else
        conn_error(p, res, "cannot record the run", err, err_len);
    p->pq->clear(res);
    return ok;
}

static void disconnect(PgBackend *p)
{
    if (p->conn)
        p->pq->finish(p->conn);
    p->conn = NULL;
}

static bool op_connect(StoreBackend *b, char *err, size_t err_len)
{
    PgBackend *p = pgb(b);
    const PqApi *pq = p->pq;
    if (p->conn && pq->status(p->conn) == CONNECTION_OK)
        return true;
    disconnect(p);
    p->conn = pq_connect(pq, p->target, err, err_len);
    if (!p->conn)
        return false;
    pq->setNoticeProcessor(p->conn, ignore_notice, NULL);
    /* A report, not a ledger: like the SQLite file's synchronous=NORMAL, a commit does not wait
     * for the server's WAL flush; only a server crash can take the last commits back. */
    if (!exec_ok(p, "SET synchronous_commit = off", "cannot configure the session", err, err_len) ||
        !store_pg_migrate(pq, p->conn, p->schema, p->base.name, err, err_len) ||
        (!p->run_id && !insert_run(p, err, err_len))) {
        /* a broken connection is retried; a refusal (privilege, schema) is too, slowly */
        disconnect(p);
        return false;
    }
    return true;
}

static bool op_lost(StoreBackend *b)
{
    PgBackend *p = pgb(b);
    if (!p->conn || p->pq->status(p->conn) != CONNECTION_OK) {
        disconnect(p);
        return true;
    }
    return false;
}

/* ---- batches -------------------------------------------------------------------------------- */

static bool op_begin(StoreBackend *b, size_t n_requests, bool retry, char *err, size_t err_len)
{
    PgBackend *p = pgb(b);
    p->requests.len = p->request_fingerprints.len = p->findings.len = p->statements.len = 0;
    p->requests.oom = p->request_fingerprints.oom = p->findings.oom = p->statements.oom = false;
    p->n_fps = 0;
    p->next_request = 0;
    p->retry = retry;
    p->committed_before = false;
    if (!retry)
        p->n_blocks = 0; /* the ids of the last batch are used: never again */
    if (!exec_ok(p, "BEGIN", "cannot begin a transaction", err, err_len))
        return false;
    /* A retry reuses the ids of the failed attempt: if that one committed after all, the
     * requests' primary key says so. */
    if (retry && p->n_blocks * STORE_PG_ID_BLOCK >= n_requests)
        return true;
    size_t need = (n_requests + STORE_PG_ID_BLOCK - 1) / STORE_PG_ID_BLOCK;
    p->n_blocks = 0;
    p->retry = false; /* fresh ids: a duplicate key cannot mean "committed before" */
    if (!need)
        return true;
    if (need > p->cap_blocks) {
        int64_t *nb = realloc(p->id_blocks, need * sizeof *nb);
        if (!nb) {
            report_err(err, err_len, "%s: out of memory", p->base.name);
            return false;
        }
        p->id_blocks = nb;
        p->cap_blocks = need;
    }
    char sql[160], count[24];
    snprintf(sql, sizeof sql,
             "SELECT nextval('\"%s\".requests_id_seq') FROM generate_series(1, $1::int)",
             p->schema);
    snprintf(count, sizeof count, "%zu", need);
    const char *v[1] = {count};
    PGresult *res = p->pq->execParams(p->conn, sql, 1, NULL, v, NULL, NULL, 0);
    bool ok =
        res && p->pq->resultStatus(res) == PGRES_TUPLES_OK && (size_t)p->pq->ntuples(res) == need;
    if (ok)
        for (size_t i = 0; i < need; i++)
            p->id_blocks[p->n_blocks++] = atoll(p->pq->getvalue(res, (int)i, 0));
    else
        conn_error(p, res, "cannot allocate request ids", err, err_len);
    p->pq->clear(res);
    return ok;
}

static const char *finding_kind_name(FindingKind kind)
{
    switch (kind) {
    case FINDING_N_PLUS_ONE:
        return "n_plus_one";
    case FINDING_DUPLICATE:
        return "duplicate";
    case FINDING_OVERFETCH:
        return "overfetch";
    }
    return "unknown";
}

static bool op_write_request(StoreBackend *b, const RequestRecord *r, char *err, size_t err_len)
{
    PgBackend *p = pgb(b);
    size_t i = p->next_request++;
    if (i / STORE_PG_ID_BLOCK >= p->n_blocks) {
        report_err(err, err_len, "%s: more requests than ids reserved", p->base.name);
        return false;
    }
    int64_t id = p->id_blocks[i / STORE_PG_ID_BLOCK] + (int64_t)(i % STORE_PG_ID_BLOCK);
    Buf *q = &p->requests;
    buf_i64(q, id), buf_tab(q);
    buf_i64(q, p->run_id), buf_tab(q);
    buf_text(q, r->key ? r->key : ""), buf_tab(q);
    buf_text(q, r->route ? r->route : ""), buf_tab(q);
    buf_text(q, r->tags_json ? r->tags_json : "{}"), buf_tab(q);
    buf_u64(q, r->conn_id), buf_tab(q);
    buf_i64(q, r->start_us), buf_tab(q);
    buf_i64(q, r->end_us), buf_tab(q);
    buf_text(q, r->end_reason ? r->end_reason : ""), buf_tab(q);
    buf_u64(q, r->statements), buf_tab(q);
    buf_u64(q, r->setup_statements), buf_tab(q);
    buf_u64(q, r->distinct_fingerprints), buf_tab(q);
    buf_u64(q, r->duplicates), buf_tab(q);
    buf_u64(q, r->errors), buf_tab(q);
    buf_u64(q, r->transactions), buf_tab(q);
    buf_u64(q, r->db_time_us), buf_tab(q);
    buf_u64(q, r->rows), buf_tab(q);
    buf_u64(q, r->bytes), buf_tab(q);
    buf_u64(q, r->truncated), buf_tab(q);
    buf_u64(q, r->timeline_dropped), buf_eol(q);

    q = &p->request_fingerprints;
    for (size_t k = 0; k < r->n_fingerprints; k++) {
        const RecordFingerprint *f = &r->fingerprints[k];
        buf_i64(q, id), buf_tab(q);
        buf_hex16(q, f->fingerprint), buf_tab(q);
        buf_u64(q, f->calls), buf_tab(q);
        buf_u64(q, f->distinct_values), buf_tab(q);
        buf_u64(q, f->total_time_us), buf_tab(q);
        buf_u64(q, f->rows), buf_tab(q);
        buf_u64(q, f->bytes), buf_tab(q);
        buf_u64(q, f->errors), buf_tab(q);
        buf_u64(q, f->is_write), buf_eol(q);
    }
    q = &p->findings;
    for (size_t k = 0; k < r->n_findings; k++) {
        const RecordFinding *f = &r->findings[k];
        buf_i64(q, id), buf_tab(q);
        buf_text(q, finding_kind_name(f->kind)), buf_tab(q);
        if (f->fingerprint)
            buf_hex16(q, f->fingerprint);
        else
            buf_text(q, NULL); /* a request-level overfetch */
        buf_tab(q);
        buf_u64(q, f->count), buf_tab(q);
        buf_u64(q, f->distinct_values), buf_tab(q);
        buf_u64(q, f->is_write), buf_tab(q);
        buf_u64(q, f->by_bytes), buf_eol(q);
    }
    q = &p->statements;
    for (size_t k = 0; k < r->n_timeline; k++) {
        const RecordStatement *t = &r->timeline[k];
        buf_i64(q, id), buf_tab(q);
        buf_u64(q, k + 1), buf_tab(q);
        buf_hex16(q, t->fingerprint), buf_tab(q);
        buf_hex16(q, t->values_hash), buf_tab(q);
        buf_i64(q, t->start_us), buf_tab(q);
        buf_i64(q, t->duration_us), buf_tab(q);
        buf_u64(q, t->rows), buf_tab(q);
        buf_u64(q, t->bytes), buf_tab(q);
        buf_u64(q, t->conn_id), buf_tab(q);
        size_t sl = strnlen(t->sqlstate, sizeof t->sqlstate);
        if (sl)
            buf_put(q, t->sqlstate, sl);
        else
            buf_text(q, NULL);
        buf_tab(q);
        buf_u64(q, t->setup), buf_eol(q);
    }
    if (p->requests.oom || p->request_fingerprints.oom || p->findings.oom || p->statements.oom) {
        report_err(err, err_len, "%s: out of memory for a batch", p->base.name);
        return false;
    }
    return true;
}

static bool op_write_fingerprint(StoreBackend *b, const FingerprintRecord *r, char *err,
                                 size_t err_len)
{
    PgBackend *p = pgb(b);
    if (p->n_fps == p->cap_fps) {
        size_t cap = p->cap_fps ? p->cap_fps * 2 : 256;
        const FingerprintRecord **n = realloc(p->fps, cap * sizeof *n);
        if (!n) {
            report_err(err, err_len, "%s: out of memory for a batch", p->base.name);
            return false;
        }
        p->fps = n;
        p->cap_fps = cap;
    }
    p->fps[p->n_fps++] = r; /* the records live until the batch is done */
    return true;
}

/* Streams one table's rows with COPY FROM STDIN. */
static bool copy_table(PgBackend *p, const char *table, const char *columns, const Buf *rows,
                       char *err, size_t err_len)
{
    if (!rows->len)
        return true;
    const PqApi *pq = p->pq;
    char sql[512], what[96];
    snprintf(sql, sizeof sql, "COPY \"%s\".%s (%s) FROM STDIN", p->schema, table, columns);
    snprintf(what, sizeof what, "cannot write %s", table);
    PGresult *res = pq->exec(p->conn, sql);
    if (!res || pq->resultStatus(res) != PGRES_COPY_IN) {
        conn_error(p, res, what, err, err_len);
        pq->clear(res);
        return false;
    }
    pq->clear(res);
    bool sent = true;
    for (size_t off = 0; sent && off < rows->len;) {
        size_t n = rows->len - off < (1u << 20) ? rows->len - off : (1u << 20);
        sent = pq->putCopyData(p->conn, rows->data + off, (int)n) == 1;
        off += n;
    }
    if (pq->putCopyEnd(p->conn, sent ? NULL : "pgtally: send failed") != 1)
        sent = false;
    bool ok = true;
    while ((res = pq->getResult(p->conn)) != NULL) {
        if (pq->resultStatus(res) != PGRES_COMMAND_OK) {
            if (ok) {
                const char *state = pq->resultErrorField(res, PG_DIAG_SQLSTATE);
                const char *cons = pq->resultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
                /* A retried batch whose first attempt committed after all. */
                if (p->retry && state && strcmp(state, "23505") == 0 && cons &&
                    strcmp(cons, "requests_pkey") == 0)
                    p->committed_before = true;
                conn_error(p, res, what, err, err_len);
            }
            ok = false;
        }
        pq->clear(res);
    }
    if (ok && !sent) {
        conn_error(p, NULL, what, err, err_len);
        ok = false;
    }
    return ok;
}

typedef struct FpSlot {
    const FingerprintRecord *r;
    size_t order;
    const char *sample; /* the first sample among the records of this fingerprint */
} FpSlot;

static int cmp_slot(const void *a, const void *b)
{
    const FpSlot *x = a, *y = b;
    if (x->r->fingerprint != y->r->fingerprint)
        return x->r->fingerprint < y->r->fingerprint ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One upsert row per distinct fingerprint of the batch (ON CONFLICT may not touch a row twice
 * in one statement): the first record's text, and the first sample any record has. */
static bool upsert_fingerprints(PgBackend *p, char *err, size_t err_len)
{
    if (!p->n_fps)
        return true;
    const PqApi *pq = p->pq;
    FpSlot *slots = malloc(p->n_fps * sizeof *slots);
    const char **values = malloc((size_t)FP_ROWS_PER_INSERT * 5 * sizeof *values);
    char(*fp_hex)[17] = malloc((size_t)FP_ROWS_PER_INSERT * sizeof *fp_hex);
    char(*seen)[24] = malloc((size_t)FP_ROWS_PER_INSERT * sizeof *seen);
    size_t sql_cap = 256 + (size_t)FP_ROWS_PER_INSERT * 48;
    char *sql = malloc(sql_cap);
    /* the texts of one INSERT that had to be repaired (utf8_repaired), freed after it */
    char **repaired = calloc((size_t)FP_ROWS_PER_INSERT * 3, sizeof *repaired);
    bool ok = slots && values && fp_hex && seen && sql && repaired;
    if (!ok)
        report_err(err, err_len, "%s: out of memory for a batch", p->base.name);
    size_t n = 0;
    if (ok) {
        for (size_t i = 0; i < p->n_fps; i++)
            slots[i] = (FpSlot){p->fps[i], i, NULL};
        qsort(slots, p->n_fps, sizeof *slots, cmp_slot);
        /* compact: keep the first of each fingerprint, with the group's first sample */
        for (size_t i = 0; i < p->n_fps;) {
            size_t j = i;
            const char *sample = NULL;
            for (; j < p->n_fps && slots[j].r->fingerprint == slots[i].r->fingerprint; j++)
                if (!sample && slots[j].r->sample)
                    sample = slots[j].r->sample;
            slots[n] = slots[i];
            slots[n].sample = sample;
            n++;
            i = j;
        }
    }
    for (size_t start = 0; ok && start < n; start += FP_ROWS_PER_INSERT) {
        size_t rows = n - start < FP_ROWS_PER_INSERT ? n - start : FP_ROWS_PER_INSERT;
        size_t len = (size_t)snprintf(sql, sql_cap,
                                      "INSERT INTO \"%s\".fingerprints (fingerprint, normalized,"
                                      " command, sample, first_seen_us) VALUES ",
                                      p->schema);
        for (size_t k = 0; k < rows; k++) {
            const FingerprintRecord *r = slots[start + k].r;
            static const char digits[] = "0123456789abcdef";
            uint64_t v = r->fingerprint;
            for (int d = 15; d >= 0; d--, v >>= 4)
                fp_hex[k][d] = digits[v & 0xf];
            fp_hex[k][16] = 0;
            snprintf(seen[k], sizeof seen[k], "%lld", (long long)r->first_seen_us);
            values[k * 5] = fp_hex[k];
            values[k * 5 + 1] = r->normalized ? r->normalized : "";
            values[k * 5 + 2] = r->command ? r->command : "";
            values[k * 5 + 3] = slots[start + k].sample;
            values[k * 5 + 4] = seen[k];
            for (size_t t = 0; t < 3; t++) {
                const char *text = values[k * 5 + 1 + t];
                bool oom = false;
                char *fixed = text ? utf8_repaired(text, &oom) : NULL;
                if (fixed)
                    values[k * 5 + 1 + t] = repaired[k * 3 + t] = fixed;
                ok = ok && !oom;
            }
            size_t b = k * 5 + 1;
            len += (size_t)snprintf(sql + len, sql_cap - len, "%s($%zu,$%zu,$%zu,$%zu,$%zu)",
                                    k ? "," : "", b, b + 1, b + 2, b + 3, b + 4);
        }
        snprintf(sql + len, sql_cap - len,
                 " ON CONFLICT (fingerprint) DO UPDATE SET sample = excluded.sample"
                 " WHERE fingerprints.sample IS NULL AND excluded.sample IS NOT NULL");
        PGresult *res = NULL;
        if (!ok)
            report_err(err, err_len, "%s: out of memory for a batch", p->base.name);
        else
            res = pq->execParams(p->conn, sql, (int)(rows * 5), NULL, values, NULL, NULL, 0);
        for (size_t k = 0; k < rows * 3; k++) {
            free(repaired[k]);
            repaired[k] = NULL;
        }
        if (!res)
            break;
        ok = pq->resultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            conn_error(p, res, "cannot write fingerprints", err, err_len);
        pq->clear(res);
    }
    free(slots);
    free(values);
    free(fp_hex);
    free(seen);
    free(sql);
    free(repaired);
    return ok;
}

static bool op_commit(StoreBackend *b, char *err, size_t err_len)
{
    PgBackend *p = pgb(b);
    bool ok =
        copy_table(p, "requests",
                   "id, run_id, key, route, tags, conn_id, start_us, end_us, end_reason,"
                   " statements, setup_statements, distinct_fingerprints, duplicates, errors,"
                   " transactions, db_time_us, rows, bytes, truncated, timeline_dropped",
                   &p->requests, err, err_len) &&
        copy_table(p, "request_fingerprints",
                   "request_id, fingerprint, calls, distinct_values, total_time_us, rows,"
                   " bytes, errors, is_write",
                   &p->request_fingerprints, err, err_len) &&
        copy_table(p, "findings",
                   "request_id, kind, fingerprint, count, distinct_values, is_write, by_bytes",
                   &p->findings, err, err_len) &&
        copy_table(p, "statements",
                   "request_id, seq, fingerprint, values_hash, start_us, duration_us, rows,"
                   " bytes, conn_id, sqlstate, setup",
                   &p->statements, err, err_len) &&
        upsert_fingerprints(p, err, err_len) && exec_ok(p, "COMMIT", "cannot commit", err, err_len);
    if (!ok && p->committed_before) {
        /* The earlier attempt did commit: its requests are there. Write the fingerprints
         * alone (idempotent) and call the batch done. */
        p->pq->clear(p->pq->exec(p->conn, "ROLLBACK"));
        ok = exec_ok(p, "BEGIN", "cannot begin a transaction", err, err_len) &&
             upsert_fingerprints(p, err, err_len) &&
             exec_ok(p, "COMMIT", "cannot commit", err, err_len);
    }
    return ok;
}

static void op_rollback(StoreBackend *b)
{
    PgBackend *p = pgb(b);
    if (p->conn && p->pq->status(p->conn) == CONNECTION_OK)
        p->pq->clear(p->pq->exec(p->conn, "ROLLBACK"));
}

static bool op_update_run(StoreBackend *b, const StoreRunUpdate *u, char *err, size_t err_len)
{
    PgBackend *p = pgb(b);
    if (!p->conn || !p->run_id) {
        report_err(err, err_len, "%s: cannot record the run's totals: not connected", p->base.name);
        return false;
    }
    char sql[512];
    char v[13][24];
    const char *vals[13];
    int n;
    if (u->totals) {
        snprintf(sql, sizeof sql,
                 "UPDATE \"%s\".runs SET ended_us = $1, statements = $2, requests = $3,"
                 " dropped_requests = $4, dropped_statements = $5, dropped_fingerprints = $6,"
                 " untracked_statements = $7, complete = $8, flushed_us = $10,"
                 " heartbeat_us = $11, heartbeat_statements = $12 WHERE id = $9",
                 p->schema);
        int64_t nums[12] = {u->ended_us,
                            (int64_t)u->statements,
                            (int64_t)u->requests,
                            (int64_t)u->dropped_requests,
                            (int64_t)u->dropped_statements,
                            (int64_t)u->dropped_fingerprints,
                            (int64_t)u->untracked_statements,
                            u->complete,
                            p->run_id,
                            u->flushed_us,
                            u->heartbeat_us,
                            (int64_t)u->heartbeat_statements};
        for (int i = 0; i < 12; i++) {
            snprintf(v[i], sizeof v[i], "%lld", (long long)nums[i]);
            vals[i] = v[i];
        }
        if (!u->ended_us)
            vals[0] = NULL;
        if (!u->flushed_us)
            vals[9] = NULL;
        n = 12;
    } else {
        snprintf(sql, sizeof sql,
                 "UPDATE \"%s\".runs SET heartbeat_us = $1, heartbeat_statements = $2"
                 " WHERE id = $3",
                 p->schema);
        snprintf(v[0], sizeof v[0], "%lld", (long long)u->heartbeat_us);
        snprintf(v[1], sizeof v[1], "%lld", (long long)u->heartbeat_statements);
        snprintf(v[2], sizeof v[2], "%lld", (long long)p->run_id);
        vals[0] = v[0], vals[1] = v[1], vals[2] = v[2];
        n = 3;
    }
    PGresult *res = p->pq->execParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0);
    bool ok = res && p->pq->resultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        conn_error(p, res, "cannot record the run's totals", err, err_len);
    p->pq->clear(res);
    if (!ok || !u->settings_json)
        return ok;
    snprintf(sql, sizeof sql, "UPDATE \"%s\".runs SET settings = $1 WHERE id = $2", p->schema);
    snprintf(v[0], sizeof v[0], "%lld", (long long)p->run_id);
    const char *set_vals[2] = {u->settings_json, v[0]};
    res = p->pq->execParams(p->conn, sql, 2, NULL, set_vals, NULL, NULL, 0);
    ok = res && p->pq->resultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        conn_error(p, res, "cannot record the run's settings", err, err_len);
    p->pq->clear(res);
    return ok;
}

static void op_free(StoreBackend *b)
{
    PgBackend *p = pgb(b);
    if (!p)
        return;
    disconnect(p);
    buf_free(&p->requests);
    buf_free(&p->request_fingerprints);
    buf_free(&p->findings);
    buf_free(&p->statements);
    free(p->fps);
    free(p->id_blocks);
    free(p->target);
    free(p->settings);
    free(p->label);
    free(p->instance);
    free(p->version);
    free(p);
}

static const StoreBackendOps pg_ops = {
    .connect = op_connect,
    .begin = op_begin,
    .write_request = op_write_request,
    .write_fingerprint = op_write_fingerprint,
    .commit = op_commit,
    .rollback = op_rollback,
    .lost = op_lost,
    .update_run = op_update_run,
    .idle = NULL,
    .finish = NULL,
    .free = op_free,
};

StoreBackend *store_pg_open(const char *target, const char *schema, const StoreRunInfo *run,
                            char *err, size_t err_len)
{
    char name[256];
    pq_redact(target, name, sizeof name);
    const char *sch = schema && *schema ? schema : STORE_PG_DEFAULT_SCHEMA;
    if (!store_pg_schema_name_valid(sch)) {
        report_err(err, err_len,
                   "--db-schema: invalid schema name \"%s\" (1 to 63 letters, digits or _, not "
                   "starting with a digit)",
                   sch);
        return NULL;
    }
    const PqApi *pq = pq_load(err, err_len);
    if (!pq)
        return NULL;
    /* A malformed target is a usage error now, not a retry loop later. */
    char *perr = NULL;
    PQconninfoOption *opts = pq->conninfoParse(target, &perr);
    if (!opts) {
        char msg[300];
        one_line(perr ? perr : "out of memory", msg, sizeof msg);
        report_err(err, err_len, "%s: not a valid PostgreSQL connection string: %s", name, msg);
        if (perr)
            pq->freemem(perr);
        return NULL;
    }
    pq->conninfoFree(opts);
    PgBackend *p = calloc(1, sizeof *p);
    if (!p) {
        report_err(err, err_len, "%s: out of memory", name);
        return NULL;
    }
    p->base.ops = &pg_ops;
    snprintf(p->base.name, sizeof p->base.name, "%s", name);
    p->pq = pq;
    snprintf(p->schema, sizeof p->schema, "%s", sch);
    p->target = strdup(target);
    p->settings = strdup(run->settings_json);
    p->label = strdup(run->label);
    p->instance = strdup(run->instance);
    p->version = strdup(run->version);
    snprintf(p->uuid, sizeof p->uuid, "%s", run->uuid);
    if (!p->target || !p->settings || !p->label || !p->instance || !p->version) {
        op_free(&p->base);
        report_err(err, err_len, "%s: out of memory", name);
        return NULL;
    }
    p->run = *run;
    p->run.settings_json = p->settings;
    p->run.label = p->label;
    p->run.instance = p->instance;
    p->run.version = p->version;
    p->run.uuid = p->uuid;
    return &p->base;
}
