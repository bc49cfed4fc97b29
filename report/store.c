/* report/store — see store.h. The writer talks to its database through report/store/backend.h
 * (report/store/sqlite.c, report/store/pg.c); the schemas are documented in
 * docs/report-format.md. */
#include "report/store.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "report/errfmt.h"
#include "report/store/backend.h"
#include "report/store/pq.h"

#ifndef PGTALLY_VERSION
#define PGTALLY_VERSION "unknown"
#endif

/* The queue's bounds. Measured (tests/bench/recording.sh): a request record of the soak's
 * shape (2 statements) takes ~520 bytes, so 8192 of them take ~4.2 MiB, and under that load
 * the queue never held more than ~730 records (~380 KiB). The byte bound leaves the count
 * bound in charge for ordinary requests and caps a queue of unusually large ones (long
 * timelines, many fingerprints) while the store is slow or down. */
#define DEFAULT_QUEUE_RECORDS 8192
#define DEFAULT_QUEUE_BYTES ((size_t)16 << 20)
#define DEFAULT_BATCH_RECORDS 512
#define DEFAULT_LINGER_MS 5
#define DEFAULT_BUSY_MS 1000
/* Once the queue has stayed empty this long after a write, the writer hands freed memory
 * back to the kernel (malloc_trim): a burst's records and SQLite's scratch then stop counting
 * against RSS. Only when idle: a trim locks malloc's arenas for milliseconds. */
#define TRIM_IDLE_MS 1000
/* Reconnecting to a store that went away: 0.25 s, doubling, at most 15 s between tries. */
#define RECONNECT_FIRST_MS 250
#define RECONNECT_MAX_MS 15000

typedef enum EntryKind {
    ENTRY_REQUEST,
    ENTRY_FINGERPRINT,
} EntryKind;

typedef struct QueueEntry {
    void *record;
    size_t bytes;
    EntryKind kind;
} QueueEntry;

struct Store {
    StoreBackend *backend; /* used by the writer thread only (and by open/close around it) */
    char run_uuid[33];     /* runs.uuid: 128 random bits in hex, unique across stores */
    size_t batch_max;
    unsigned linger_ms;
    unsigned heartbeat_ms;
    QueueEntry *batch; /* the writer's batch buffer: room for the whole queue (close) */

    pthread_t writer;
    pthread_mutex_t lock;   /* everything below */
    char *pending_settings; /* new runs.settings (SIGHUP), written with the next heartbeat */
    pthread_cond_t wake;    /* the writer waits for work here */
    pthread_cond_t flushed;
    QueueEntry *ring;
    size_t cap, head, count, bytes, max_bytes;
    /* A batch that failed because the database went away: kept (in `batch`) and written again
     * after a reconnect. It still counts against the queue's bounds. */
    size_t held_n, held_bytes;
    bool writer_sleeping;
    size_t wake_at; /* signal the sleeping writer once count reaches this */
    bool closing;
    bool connected;
    bool ever_connected;
    bool close_connect_tried; /* closing while disconnected: one last connect, then give up */
    unsigned backoff_ms;
    int64_t next_connect_ns, next_heartbeat_ns; /* CLOCK_MONOTONIC */
    uint64_t enqueued;                          /* records ever pushed */
    uint64_t processed; /* records ever taken and written or dropped by the writer */
    uint64_t flush_gen, flush_done_gen;
    uint64_t flush_mark;         /* `enqueued` when flush_gen was last raised */
    StoreRunTotals flush_totals; /* the proxy's totals as of the latest flush request */
    bool flush_totals_set;
    StoreRunTotals run_totals; /* the latest totals written (or to write after a reconnect) */
    bool run_totals_set, run_totals_dirty;
    uint64_t progress_statements; /* store_note_progress: statements the proxy has seen */
    bool trim_due;                /* records were freed since the last malloc_trim */
    int64_t last_write_ns;        /* CLOCK_MONOTONIC of the latest processed batch */
    StoreStats stats;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_of_ns(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

static size_t fingerprint_record_bytes(const FingerprintRecord *r)
{
    return sizeof *r + (r->normalized ? strlen(r->normalized) + 1 : 0) +
           (r->command ? strlen(r->command) + 1 : 0) + (r->sample ? strlen(r->sample) + 1 : 0);
}

/* 128 random bits as 32 hex digits: a run's identity in every store it is copied to. */
static bool new_run_uuid(char out[33])
{
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return true;
}

/* ---- the writer thread ------------------------------------------------------------------ */

typedef enum BatchOutcome {
    BATCH_WRITTEN,
    BATCH_DROPPED, /* the database refused it: its records are lost and counted */
    BATCH_HELD,    /* the database went away: keep the records, reconnect, write them again */
} BatchOutcome;

/* Writes `n` entries in one transaction. On any failure the whole transaction is rolled
 * back; the backend then says whether the database is gone (held) or refused it (dropped). */
static BatchOutcome write_batch(Store *s, QueueEntry *batch, size_t n, bool retry, char *error,
                                size_t error_len)
{
    StoreBackend *b = s->backend;
    size_t n_requests = 0;
    for (size_t i = 0; i < n; i++)
        n_requests += batch[i].kind == ENTRY_REQUEST;
    bool ok = b->ops->begin(b, n_requests, retry, error, error_len);
    for (size_t i = 0; ok && i < n; i++) {
        if (batch[i].kind == ENTRY_REQUEST)
            ok = b->ops->write_request(b, batch[i].record, error, error_len);
        else
            ok = b->ops->write_fingerprint(b, batch[i].record, error, error_len);
    }
    if (ok)
        ok = b->ops->commit(b, error, error_len);
    if (ok)
        return BATCH_WRITTEN;
    bool lost = b->ops->lost(b);
    b->ops->rollback(b);
    size_t len = strlen(error);
    snprintf(error + len, error_len - len,
             lost ? " (%zu records kept for a retry)" : " (%zu records dropped)", n);
    return lost ? BATCH_HELD : BATCH_DROPPED;
}

/* Frees a processed batch and counts it as written or dropped. Caller holds the lock. */
static void account_batch(Store *s, QueueEntry *batch, size_t n, bool written)
{
    uint64_t requests = 0, statements = 0, fingerprints = 0;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].kind == ENTRY_REQUEST) {
            RequestRecord *r = batch[i].record;
            requests++;
            statements += r->statements;
            request_record_free(r);
        } else {
            fingerprints++;
            fingerprint_record_free(batch[i].record);
        }
    }
    s->processed += n;
    s->trim_due = true;
    s->last_write_ns = mono_ns();
    if (written) {
        s->stats.batches++;
        s->stats.written_requests += requests;
        s->stats.written_statements += statements;
        s->stats.written_fingerprints += fingerprints;
    } else {
        s->stats.failed_batches++;
        s->stats.dropped_requests += requests;
        s->stats.dropped_statements += statements;
        s->stats.dropped_fingerprints += fingerprints;
        s->stats.dropped_sqlite += n;
    }
}

static void note_error(Store *s, const char *error)
{
    snprintf(s->stats.last_error, sizeof s->stats.last_error, "%s", error);
    s->stats.error_seq++;
}

/* The run row's figures: the proxy's totals plus the store's own drops. Caller holds the
 * lock. */
static StoreRunUpdate run_update(Store *s, const StoreRunTotals *t, bool ended)
{
    StoreRunUpdate u = {0};
    int64_t now = now_us();
    u.totals = true;
    u.ended_us = ended ? now : 0;
    u.flushed_us = now;
    u.statements = t->statements;
    u.requests = t->requests;
    u.dropped_requests = t->dropped_requests + s->stats.dropped_requests;
    u.dropped_statements = t->dropped_statements + s->stats.dropped_statements;
    u.dropped_fingerprints = t->dropped_fingerprints + s->stats.dropped_fingerprints;
    u.untracked_statements = t->untracked_statements;
    u.complete =
        t->complete && !u.dropped_requests && !u.dropped_statements && !u.dropped_fingerprints;
    u.heartbeat_us = now;
    /* the snapshot covers every statement seen so far: a later heartbeat with more means
     * statements arrived after it */
    u.heartbeat_statements =
        t->statements > s->progress_statements ? t->statements : s->progress_statements;
    if (t->statements >= s->progress_statements)
        s->progress_statements = t->statements;
    return u;
}

/* Writes the latest snapshot totals if they have not reached the database yet. Called with
 * the lock held; drops it around the write. */
static void write_pending_totals(Store *s)
{
    if (!s->run_totals_dirty || !s->connected)
        return;
    StoreRunUpdate u = run_update(s, &s->run_totals, false);
    s->run_totals_dirty = false;
    pthread_mutex_unlock(&s->lock);
    char err[512];
    bool ok = s->backend->ops->update_run(s->backend, &u, err, sizeof err);
    bool lost = !ok && s->backend->ops->lost(s->backend);
    pthread_mutex_lock(&s->lock);
    if (!ok) {
        note_error(s, err);
        if (lost) {
            s->connected = false;
            s->run_totals_dirty = true;
        }
    }
}

/* A flush reached its mark: record the proxy's totals as of the request, then let the
 * backend tidy up (a WAL checkpoint). Lock held; dropped around the writes. */
static void finish_flush(Store *s)
{
    if (s->flush_totals_set) {
        s->run_totals = s->flush_totals;
        s->run_totals_set = true;
        s->run_totals_dirty = true;
        s->flush_totals_set = false;
    }
    write_pending_totals(s);
    if (s->backend->ops->idle && s->connected) {
        pthread_mutex_unlock(&s->lock);
        s->backend->ops->idle(s->backend);
        pthread_mutex_lock(&s->lock);
    }
}

/* A flush is pending while records submitted before the latest request are unprocessed. */
static bool flush_pending(const Store *s)
{
    return s->flush_done_gen != s->flush_gen;
}

static void complete_flush_if_reached(Store *s)
{
    if (!flush_pending(s) || s->processed < s->flush_mark)
        return;
    uint64_t gen = s->flush_gen;
    finish_flush(s);
    if (s->flush_done_gen < gen)
        s->flush_done_gen = gen;
    pthread_cond_broadcast(&s->flushed);
}

/* Sleeps until woken or until `deadline_ns` (0: no deadline). Lock held. */
static void writer_wait(Store *s, int64_t deadline_ns, size_t wake_at)
{
    s->writer_sleeping = true;
    s->wake_at = wake_at;
    if (deadline_ns) {
        struct timespec ts = ts_of_ns(deadline_ns);
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    } else {
        pthread_cond_wait(&s->wake, &s->lock);
    }
    s->writer_sleeping = false;
}

/* Connects (or reconnects) the backend. Lock held; dropped around the attempt. */
static void try_connect(Store *s)
{
    pthread_mutex_unlock(&s->lock);
    char err[512] = "";
    bool ok = s->backend->ops->connect(s->backend, err, sizeof err);
    pthread_mutex_lock(&s->lock);
    if (s->closing)
        s->close_connect_tried = true;
    if (ok) {
        s->connected = true;
        if (s->ever_connected)
            s->stats.reconnects++;
        s->ever_connected = true;
        s->backoff_ms = 0;
        s->stats.connected = true;
        if (s->run_totals_set)
            s->run_totals_dirty = true; /* the database may have missed the latest totals */
        s->next_heartbeat_ns = 0;       /* show we are alive again at once */
        return;
    }
    s->stats.connect_failures++;
    note_error(s, err);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RECONNECT_FIRST_MS;
    if (s->backoff_ms > RECONNECT_MAX_MS)
        s->backoff_ms = RECONNECT_MAX_MS;
    s->next_connect_ns = mono_ns() + (int64_t)s->backoff_ms * 1000000;
}

/* The database went away: mark it, and retry soon. Lock held. */
static void mark_lost(Store *s)
{
    s->connected = false;
    s->stats.connected = false;
    s->backoff_ms = 0;
    s->next_connect_ns = mono_ns(); /* the first retry at once: a blip often heals */
}

/* Closing and the database is out of reach: every record left is a drop. Lock held. */
static void drop_everything(Store *s)
{
    if (s->held_n) {
        account_batch(s, s->batch, s->held_n, false);
        s->held_n = s->held_bytes = 0;
    }
    while (s->count) {
        size_t n = s->count;
        for (size_t i = 0; i < n; i++) {
            s->batch[i] = s->ring[s->head];
            s->bytes -= s->batch[i].bytes;
            s->head = (s->head + 1) % s->cap;
        }
        s->count = 0;
        account_batch(s, s->batch, n, false);
    }
    complete_flush_if_reached(s);
}

static void heartbeat(Store *s)
{
    StoreRunUpdate u = {.heartbeat_us = now_us(), .heartbeat_statements = s->progress_statements};
    char *settings = s->pending_settings;
    s->pending_settings = NULL;
    u.settings_json = settings;
    s->next_heartbeat_ns = mono_ns() + (int64_t)s->heartbeat_ms * 1000000;
    pthread_mutex_unlock(&s->lock);
    char err[512];
    bool ok = s->backend->ops->update_run(s->backend, &u, err, sizeof err);
    bool lost = !ok && s->backend->ops->lost(s->backend);
    pthread_mutex_lock(&s->lock);
    if (!ok && settings && !s->pending_settings) {
        s->pending_settings = settings; /* tried again with the next heartbeat */
        settings = NULL;
    }
    free(settings);
    if (!ok) {
        note_error(s, err);
        if (lost)
            mark_lost(s);
    }
}

static void *writer_main(void *arg)
{
    Store *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (!s->connected) {
            if (s->closing && s->close_connect_tried) {
                drop_everything(s);
                break;
            }
            if (s->closing || mono_ns() >= s->next_connect_ns)
                try_connect(s);
            else
                writer_wait(s, s->next_connect_ns, (size_t)-1);
            continue;
        }
        write_pending_totals(s);
        if (!s->connected)
            continue;
        if (s->held_n) {
            char error[512] = "";
            size_t n = s->held_n;
            pthread_mutex_unlock(&s->lock);
            BatchOutcome out = write_batch(s, s->batch, n, true, error, sizeof error);
            pthread_mutex_lock(&s->lock);
            if (out == BATCH_HELD) {
                note_error(s, error);
                mark_lost(s);
                continue;
            }
            s->held_n = s->held_bytes = 0;
            if (out == BATCH_DROPPED)
                note_error(s, error);
            account_batch(s, s->batch, n, out == BATCH_WRITTEN);
            complete_flush_if_reached(s);
            continue;
        }
        if (s->next_heartbeat_ns && mono_ns() >= s->next_heartbeat_ns && !s->closing) {
            heartbeat(s);
            continue;
        }
        if (s->count == 0) {
            /* An empty queue means every record ever submitted has been processed. */
            if (flush_pending(s)) {
                complete_flush_if_reached(s);
                continue;
            }
            if (s->closing)
                break; /* drained */
            if (!s->next_heartbeat_ns)
                s->next_heartbeat_ns = mono_ns() + (int64_t)s->heartbeat_ms * 1000000;
            int64_t trim_at = s->last_write_ns + (int64_t)TRIM_IDLE_MS * 1000000;
            if (s->trim_due && mono_ns() >= trim_at) {
                s->trim_due = false;
                pthread_mutex_unlock(&s->lock);
                malloc_trim(0);
                pthread_mutex_lock(&s->lock);
                continue;
            }
            int64_t deadline = s->next_heartbeat_ns;
            if (s->trim_due && trim_at < deadline)
                deadline = trim_at;
            if (s->count == 0 && !flush_pending(s))
                writer_wait(s, deadline, 1);
            continue;
        }
        /* Linger briefly so a trickle of records shares one transaction. */
        if (s->count < s->batch_max && !s->closing && !flush_pending(s)) {
            int64_t deadline = mono_ns() + (int64_t)s->linger_ms * 1000000;
            while (s->count < s->batch_max && !s->closing && !flush_pending(s) &&
                   mono_ns() < deadline)
                writer_wait(s, deadline, s->batch_max);
        }
        /* At close everything left goes in one transaction: a file locked by someone else
         * then costs one busy timeout, not one per batch, before the process can exit. */
        size_t limit = s->closing ? s->cap : s->batch_max;
        size_t n = s->count < limit ? s->count : limit;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            s->batch[i] = s->ring[s->head];
            bytes += s->batch[i].bytes;
            s->head = (s->head + 1) % s->cap;
        }
        s->bytes -= bytes;
        s->count -= n;
        pthread_mutex_unlock(&s->lock);

        char error[512] = "";
        BatchOutcome out = write_batch(s, s->batch, n, false, error, sizeof error);

        pthread_mutex_lock(&s->lock);
        if (out == BATCH_HELD) {
            s->held_n = n;
            s->held_bytes = bytes;
            note_error(s, error);
            mark_lost(s);
            continue;
        }
        if (out == BATCH_DROPPED)
            note_error(s, error);
        account_batch(s, s->batch, n, out == BATCH_WRITTEN);
        complete_flush_if_reached(s);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

bool store_set_settings(Store *s, const char *settings_json)
{
    char *copy = strdup(settings_json);
    if (!copy)
        return false;
    pthread_mutex_lock(&s->lock);
    free(s->pending_settings);
    s->pending_settings = copy;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return true;
}

static void store_free(Store *s)
{
    free(s->pending_settings);
    if (s->backend)
        s->backend->ops->free(s->backend);
    free(s->ring);
    free(s->batch);
    free(s);
}

Store *store_open(const char *path, const StoreOptions *opts, char *err, size_t err_len)
{
    static const StoreOptions defaults;
    const StoreOptions *o = opts ? opts : &defaults;
    bool sync_ready = false;
    Store *s = calloc(1, sizeof *s);
    if (!s) {
        report_err(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    s->cap = o->queue_max_records ? o->queue_max_records : DEFAULT_QUEUE_RECORDS;
    s->max_bytes = o->queue_max_bytes ? o->queue_max_bytes : DEFAULT_QUEUE_BYTES;
    s->batch_max = o->batch_max_records ? o->batch_max_records : DEFAULT_BATCH_RECORDS;
    if (s->batch_max > s->cap)
        s->batch_max = s->cap;
    s->linger_ms = o->batch_linger_ms ? o->batch_linger_ms : DEFAULT_LINGER_MS;
    s->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : STORE_HEARTBEAT_INTERVAL_S * 1000;
    s->ring = calloc(s->cap, sizeof *s->ring);
    s->batch = calloc(s->cap, sizeof *s->batch);
    if (!s->ring || !s->batch) {
        report_err(err, err_len, "%s: out of memory for the store queue", path);
        goto fail;
    }
    if (!new_run_uuid(s->run_uuid)) {
        report_err(err, err_len, "%s: cannot draw a run id: %s", path, strerror(errno));
        goto fail;
    }
    StoreRunInfo run = {
        .started_us = o->started_us ? o->started_us : now_us(),
        .version = o->version ? o->version : PGTALLY_VERSION,
        .settings_json = o->settings_json ? o->settings_json : "{}",
        .uuid = s->run_uuid,
        .label = o->label ? o->label : "",
        .instance = o->instance ? o->instance : "",
        .pid = (int64_t)getpid(),
    };
    if (pq_is_target(path)) {
        s->backend = store_pg_open(path, o->db_schema, &run, err, err_len);
    } else {
        s->backend = store_sqlite_open(
            path, &run, o->busy_timeout_ms ? o->busy_timeout_ms : DEFAULT_BUSY_MS, err, err_len);
        s->connected = s->ever_connected = s->stats.connected = s->backend != NULL;
    }
    if (!s->backend)
        goto fail;
    snprintf(s->stats.store, sizeof s->stats.store, "%s", s->backend->name);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->flushed, &ca);
    pthread_condattr_destroy(&ca);
    sync_ready = true;

    /* The writer starts with every signal blocked so SIGTERM/SIGUSR1/SIGHUP always reach
     * the event loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        report_err(err, err_len, "%s: cannot start the writer thread: %s", s->stats.store,
                   strerror(rc));
        goto fail;
    }
    pthread_setname_np(s->writer, "pgtally-store");
    return s;

fail:
    if (s) {
        if (sync_ready) {
            pthread_mutex_destroy(&s->lock);
            pthread_cond_destroy(&s->wake);
            pthread_cond_destroy(&s->flushed);
        }
        store_free(s);
    }
    return NULL;
}

/* Pushes one entry, or counts the drop. The lock is held only for the push. */
static bool submit(Store *s, EntryKind kind, void *record, size_t bytes, uint64_t statements)
{
    pthread_mutex_lock(&s->lock);
    if (s->count + s->held_n >= s->cap || bytes > s->max_bytes - s->bytes - s->held_bytes) {
        s->stats.dropped_queue_full++;
        if (kind == ENTRY_REQUEST) {
            s->stats.dropped_requests++;
            s->stats.dropped_statements += statements;
        } else {
            s->stats.dropped_fingerprints++;
        }
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    s->ring[(s->head + s->count) % s->cap] = (QueueEntry){record, bytes, kind};
    s->count++;
    s->bytes += bytes;
    s->enqueued++;
    if (s->writer_sleeping && s->count >= s->wake_at) {
        s->writer_sleeping = false; /* one signal per sleep */
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return true;
}

bool store_submit_request(Store *s, RequestRecord *r)
{
    if (!r)
        return false;
    if (submit(s, ENTRY_REQUEST, r, request_record_bytes(r), r->statements))
        return true;
    request_record_free(r);
    return false;
}

bool store_submit_fingerprint(Store *s, FingerprintRecord *r)
{
    if (!r)
        return false;
    if (submit(s, ENTRY_FINGERPRINT, r, fingerprint_record_bytes(r), 0))
        return true;
    fingerprint_record_free(r);
    return false;
}

/* Raises the flush generation; returns it. Caller holds the lock. */
static uint64_t request_flush_locked(Store *s)
{
    s->flush_gen++;
    s->flush_mark = s->enqueued;
    s->writer_sleeping = false;
    pthread_cond_signal(&s->wake);
    return s->flush_gen;
}

void store_request_flush(Store *s, const StoreRunTotals *totals)
{
    pthread_mutex_lock(&s->lock);
    if (totals) {
        s->flush_totals = *totals;
        s->flush_totals_set = true;
    }
    request_flush_locked(s);
    pthread_mutex_unlock(&s->lock);
}

bool store_wait_flushed(Store *s, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double whole = (double)(int64_t)timeout_s;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    uint64_t gen = request_flush_locked(s);
    bool done = true;
    while (s->flush_done_gen < gen) {
        if (pthread_cond_timedwait(&s->flushed, &s->lock, &deadline) == ETIMEDOUT) {
            done = s->flush_done_gen >= gen;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return done;
}

StoreStats store_stats(const Store *cs)
{
    /* The lock is part of the store's state, not of its value: reading needs it too. */
    Store *s = (Store *)cs;
    pthread_mutex_lock(&s->lock);
    StoreStats st = s->stats;
    st.queued_records = s->count + s->held_n;
    st.queued_bytes = s->bytes + s->held_bytes;
    pthread_mutex_unlock(&s->lock);
    return st;
}

void store_note_progress(Store *s, uint64_t statements)
{
    pthread_mutex_lock(&s->lock);
    if (statements > s->progress_statements)
        s->progress_statements = statements;
    pthread_mutex_unlock(&s->lock);
}

bool store_close(Store *s, const StoreRunTotals *totals, char *err, size_t err_len)
{
    if (!s)
        return true;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    s->writer_sleeping = false;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer, NULL); /* the writer leaves once the queue is empty (or lost) */

    static const StoreRunTotals none;
    bool ok = false;
    if (s->connected) {
        StoreRunUpdate u = run_update(s, totals ? totals : &none, true);
        u.settings_json = s->pending_settings; /* a SIGHUP just before the end */
        ok = s->backend->ops->update_run(s->backend, &u, err, err_len);
        if (s->backend->ops->finish)
            s->backend->ops->finish(s->backend);
    } else {
        report_err(err, err_len,
                   "%s: cannot record the run's totals: the store is unreachable (%s)",
                   s->stats.store, s->stats.last_error);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->flushed);
    store_free(s);
    return ok;
}
