/* proxy/recorder — see recorder.h. */
#include "proxy/recorder.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/address.h"
#include "proxy/log.h"
#include "report/store.h"
#include "report/store/pg_schema.h"
#include "report/store/pq.h"

/* How often the loop looks at the store's health (a lock and a copy). */
#define HEALTH_CHECK_US 500000

struct Recorder {
    Tally *tally;
    Store *store;
    uint64_t findings[3];        /* by FindingKind, of requests handed to the store */
    uint64_t dropped_requests;   /* refused by the store's queue */
    uint64_t dropped_statements; /* the statements of those requests */
    uint64_t dropped_fingerprints;
    int64_t next_health_us;
    bool logged_down; /* the store's unavailability has been logged */
    bool health_seen; /* at least one health check ran */
};

static void on_request(void *ctx, RequestRecord *record)
{
    Recorder *r = ctx;
    uint32_t statements = record->statements;
    for (size_t i = 0; i < record->n_findings; i++)
        if ((unsigned)record->findings[i].kind < 3)
            r->findings[record->findings[i].kind]++;
    if (!store_submit_request(r->store, record)) {
        /* The store freed it and counts it too; the run row gets the proxy-side view. */
        r->dropped_requests++;
        r->dropped_statements += statements;
    }
}

static void on_fingerprint(void *ctx, FingerprintRecord *record)
{
    Recorder *r = ctx;
    if (!store_submit_fingerprint(r->store, record))
        r->dropped_fingerprints++;
}

Recorder *recorder_open(const RecorderOptions *options, char *err, size_t err_len)
{
    Recorder *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    StoreOptions so = {0};
    so.settings_json = options->settings_json;
    so.label = options->run_label;
    so.instance = options->instance;
    so.db_schema = options->db_schema;
    r->store = store_open(options->db_path, &so, err, err_len);
    if (!r->store) {
        free(r);
        return NULL;
    }
    r->tally = tally_new(&options->tally, on_request, on_fingerprint, r);
    if (!r->tally) {
        store_close(r->store, NULL, NULL, 0);
        free(r);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    return r;
}

void recorder_event(Recorder *r, const TrackerEvent *ev)
{
    TallyStatement st = {0};
    st.conn_id = ev->conn_id;
    if (ev->normalized_known) {
        st.fingerprint = ev->fingerprint;
        st.values_hash = ev->values_hash;
        st.normalized = ev->normalized;
        st.normalized_len = ev->normalized_len;
    }
    st.tags = ev->tags;
    st.n_tags = ev->n_tags;
    st.application_name = ev->application_name;
    st.application_name_len = ev->application_name_len;
    st.command = ev->command;
    st.sqlstate = ev->sqlstate;
    st.sample = ev->sql;
    st.sample_len = ev->sql_len;
    st.start_us = ev->start_us;
    st.end_us = ev->end_us;
    /* Rows returned to the client, not those a write affected: what overfetch, the budget's
     * max_rows and every rows column of the report mean. */
    st.rows = ev->rows_returned;
    st.bytes = ev->bytes;
    tally_statement(r->tally, &st);
}

void recorder_connection_closed(Recorder *r, uint64_t conn_id)
{
    tally_connection_closed(r->tally, conn_id);
}

/* One line when the store becomes unreachable (at start or mid-run) and one when it is back:
 * the writer retries on its own; the relay is never affected. */
static void check_store_health(Recorder *r)
{
    StoreStats st = store_stats(r->store);
    if (!st.connected && st.error_seq && !r->logged_down) {
        /* the error already starts with the store's name: say it once */
        const char *why = st.last_error;
        size_t n = strlen(st.store);
        if (strncmp(why, st.store, n) == 0 && strncmp(why + n, ": ", 2) == 0)
            why += n + 2;
        log_line(LOG_WARN, 0,
                 "report store %s unavailable: %s; relaying continues, records wait in the "
                 "queue (%zu now) and the store is retried with backoff",
                 st.store, why, st.queued_records);
        r->logged_down = true;
    } else if (st.connected && r->logged_down) {
        log_line(LOG_INFO, 0, "report store %s connected again; %zu queued record(s) to write",
                 st.store, st.queued_records);
        r->logged_down = false;
    }
}

void recorder_tick(Recorder *r, int64_t now_us)
{
    tally_tick(r->tally, now_us);
    if (now_us >= r->next_health_us) {
        r->next_health_us = now_us + HEALTH_CHECK_US;
        store_note_progress(r->store, tally_stats(r->tally)->statements);
        check_store_health(r);
    }
}

/* Whether `a` is an address this host's `listen` socket accepts on. */
static bool same_endpoint(const struct sockaddr_storage *listen, const struct sockaddr *a)
{
    if (listen->ss_family == AF_INET && a->sa_family == AF_INET) {
        const struct sockaddr_in *l = (const void *)listen, *x = (const void *)a;
        if (l->sin_port != x->sin_port)
            return false;
        uint32_t la = ntohl(l->sin_addr.s_addr), xa = ntohl(x->sin_addr.s_addr);
        /* a wildcard listener accepts on every local address; loopback is always local */
        return la == xa || (la == INADDR_ANY && (xa >> 24) == 127);
    }
    if (listen->ss_family == AF_INET6 && a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *l = (const void *)listen, *x = (const void *)a;
        if (l->sin6_port != x->sin6_port)
            return false;
        return memcmp(&l->sin6_addr, &x->sin6_addr, sizeof x->sin6_addr) == 0 ||
               (IN6_IS_ADDR_UNSPECIFIED(&l->sin6_addr) && IN6_IS_ADDR_LOOPBACK(&x->sin6_addr));
    }
    return false;
}

bool recorder_check_store_target(const char *db, const char *db_schema, const char *listen,
                                 char *err, size_t err_len)
{
    if (!db || !pq_is_target(db))
        return true;
    char name[256];
    pq_redact(db, name, sizeof name);
    if (db_schema && !store_pg_schema_name_valid(db_schema)) {
        snprintf(err, err_len,
                 "--db-schema: invalid schema name \"%s\" (1 to 63 letters, digits or _, not "
                 "starting with a digit)",
                 db_schema);
        return false;
    }
    const PqApi *pq = pq_load(err, err_len);
    if (!pq)
        return false;
    char *perr = NULL;
    PQconninfoOption *opts = pq->conninfoParse(db, &perr);
    if (!opts) {
        /* libpq's reason on one line: it names the bad part, never the password's value */
        char msg[300];
        size_t j = 0;
        for (const char *m = perr ? perr : "out of memory"; *m && j + 1 < sizeof msg; m++)
            if (*m != '\n' || m[1])
                msg[j++] = *m == '\n' ? ' ' : *m;
        msg[j] = 0;
        if (perr)
            pq->freemem(perr);
        snprintf(err, err_len, "--db %s: not a valid PostgreSQL connection string: %s", name, msg);
        return false;
    }
    struct sockaddr_storage laddr;
    socklen_t llen;
    char lerr[128];
    if (!listen || !address_listen(listen, &laddr, &llen, lerr, sizeof lerr)) {
        pq->conninfoFree(opts);
        return true; /* --listen reports its own error */
    }
    const char *host = getenv("PGHOST"), *hostaddr = getenv("PGHOSTADDR");
    const char *port = getenv("PGPORT");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    const char *node = hostaddr && *hostaddr ? hostaddr : host;
    /* No host means libpq's Unix socket, as does a path: a TCP listener cannot be it. */
    bool unix_socket = !node || !*node || node[0] == '/' || node[0] == '@';
    bool ok = true;
    /* A list of hosts/ports (failover) is checked entry by entry. */
    char hosts[512], ports[256];
    snprintf(hosts, sizeof hosts, "%s", node ? node : "");
    snprintf(ports, sizeof ports, "%s", port && *port ? port : "5432");
    char *hsave = NULL, *psave = NULL;
    char *p1 = strtok_r(ports, ",", &psave);
    for (char *h = strtok_r(hosts, ",", &hsave); ok && h && !unix_socket;
         h = strtok_r(NULL, ",", &hsave)) {
        const char *pp = p1 ? p1 : "5432";
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        if (getaddrinfo(h, pp, &hints, &res) == 0) {
            for (struct addrinfo *ai = res; ok && ai; ai = ai->ai_next)
                if (same_endpoint(&laddr, ai->ai_addr))
                    ok = false;
            freeaddrinfo(res);
        }
        if (!ok) {
            snprintf(err, err_len,
                     "--db %s: the report store %s:%s is this proxy's own --listen address "
                     "(%s): the store must be reached directly, not through the proxy (use the "
                     "server's own host and port, e.g. the --upstream address)",
                     name, h, pp, listen);
        }
        char *next = strtok_r(NULL, ",", &psave);
        if (next)
            p1 = next;
    }
    pq->conninfoFree(opts);
    return ok;
}

void recorder_set_thresholds(Recorder *r, const TallyOptions *options)
{
    tally_set_thresholds(r->tally, options);
}

bool recorder_set_settings(Recorder *r, const char *settings_json)
{
    return store_set_settings(r->store, settings_json);
}

static StoreRunTotals run_totals(const Recorder *r, const RecorderTotals *totals)
{
    const TallyStats *ts = tally_stats(r->tally);
    StoreRunTotals run = {0};
    run.statements = ts->statements;
    run.requests = ts->requests;
    /* Requests refused by a full queue are the store's own drops (it adds them to the run);
     * the tally never loses a request (evicted ones are written early, not dropped). */
    run.untracked_statements = totals ? totals->untracked_statements : 0;
    run.complete = true; /* every open request has just been finished */
    return run;
}

void recorder_flush(Recorder *r, const RecorderTotals *totals)
{
    tally_finish_all(r->tally);
    StoreRunTotals run = run_totals(r, totals);
    store_note_progress(r->store, run.statements);
    store_request_flush(r->store, &run);
}

RecorderStats recorder_stats(const Recorder *r)
{
    const TallyStats *ts = tally_stats(r->tally);
    StoreStats ss = store_stats(r->store);
    RecorderStats s = {0};
    s.statements = ts->statements;
    s.requests = ts->requests;
    memcpy(s.findings, r->findings, sizeof s.findings);
    s.dropped_requests = ss.dropped_requests;
    s.dropped_statements = ss.dropped_statements;
    s.dropped_fingerprints = ss.dropped_fingerprints;
    s.store_up = ss.connected;
    s.store_reconnects = ss.reconnects;
    s.store_queued = ss.queued_records;
    return s;
}

bool recorder_close(Recorder *r, const RecorderTotals *totals, char *err, size_t err_len)
{
    tally_finish_all(r->tally);
    StoreRunTotals run = run_totals(r, totals);
    bool ok = store_close(r->store, &run, err, err_len);
    tally_free(r->tally);
    free(r);
    return ok;
}
