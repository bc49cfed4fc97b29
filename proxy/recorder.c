/* proxy/recorder — see recorder.h. */
#include "proxy/recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/store.h"

struct Recorder {
    Tally *tally;
    Store *store;
    uint64_t findings[3];        /* by FindingKind, of requests handed to the store */
    uint64_t dropped_requests;   /* refused by the store's queue */
    uint64_t dropped_statements; /* the statements of those requests */
    uint64_t dropped_fingerprints;
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
    st.rows = ev->rows;
    st.bytes = ev->bytes;
    tally_statement(r->tally, &st);
}

void recorder_connection_closed(Recorder *r, uint64_t conn_id)
{
    tally_connection_closed(r->tally, conn_id);
}

void recorder_tick(Recorder *r, int64_t now_us)
{
    tally_tick(r->tally, now_us);
}

void recorder_set_thresholds(Recorder *r, const TallyOptions *options)
{
    tally_set_thresholds(r->tally, options);
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
