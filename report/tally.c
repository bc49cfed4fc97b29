/* report/tally — see tally.h.
 *
 * Open requests live in a hash table by key and in a list ordered by last activity, so the
 * idle sweep and eviction both start from the oldest. Per connection, a small state remembers
 * the current run (for label- and connection-keyed requests) and the last tag-keyed request,
 * so untagged statements between tagged ones (BEGIN/COMMIT issued by a driver) stay with
 * their request. */
#include "report/tally.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "protocol/hashseed.h"
#include "protocol/jsonout.h"

#define REQUEST_BUCKETS_MIN 1024
#define CONN_BUCKETS 4096

typedef struct FpSlot {
    bool used;
    RecordFingerprint stat;
    uint64_t max_rows; /* most rows one execution returned to the client, for overfetch */
    uint64_t max_bytes;
} FpSlot;

typedef struct ConnState ConnState;

typedef struct Request {
    struct Request *hash_next;
    struct Request *older; /* activity list: head is the least recently active */
    struct Request *newer;
    char *key;
    uint64_t key_hash;
    char *route;
    char *tags_json;
    ConnState *run_owner; /* the connection whose run this is, for connection/label runs */
    uint64_t conn_id;
    uint64_t last_conn_id;
    int64_t start_us;
    int64_t end_us;
    int64_t last_activity_us;
    uint32_t statements;
    uint32_t setup_statements;
    uint32_t errors;
    uint32_t transactions;
    uint32_t distinct_pairs;
    uint64_t db_time_us;
    uint64_t rows;
    uint64_t bytes;
    bool truncated;
    FpSlot *fps;
    size_t fps_cap;
    size_t n_fps;
    uint64_t *pairs; /* open addressing; 0 = empty */
    size_t pairs_cap;
    size_t n_pairs;
    RecordStatement *timeline;
    size_t n_timeline;
    size_t timeline_cap;
    uint64_t timeline_dropped;
} Request;

struct ConnState {
    ConnState *next;
    uint64_t conn_id;
    Request *run; /* current run, or NULL */
    char *run_label;
    bool run_label_from_tags; /* route / controller tags, not application_name */
    uint64_t run_seq;
    char *tagged_key; /* key of the last tag-keyed request this connection worked for */
    /* application_name of this connection's last counted statement: a statement with no tags
     * of its own whose application_name differs starts a new request (SET application_name
     * between requests), whatever the request before was keyed by. PostgreSQL keeps at most
     * 63 bytes of it. */
    bool has_last_app;
    char last_app[64];
    bool has_pending_setup;
    RecordStatement pending_setup; /* SET application_name ...: joins the next request */
    /* An untagged BEGIN a driver sends by itself right before a request's first statement
     * belongs to the request that follows, not to the one before it. */
    bool has_pending_begin;
    TallyStatement pending_begin; /* pointers cleared; command is a static string */
    char pending_begin_sqlstate[6];
};

struct Tally {
    TallyOptions options;
    TallyRequestFn on_request;
    TallyFingerprintFn on_fingerprint;
    void *ctx;
    TallyStats stats;

    Request **buckets;
    size_t n_buckets;
    Request *oldest;
    Request *newest;

    ConnState *conns[CONN_BUCKETS];
    size_t n_conns;

    uint64_t seed; /* of every table keyed by client-chosen bytes; see TallyOptions */

    uint64_t *seen; /* fingerprints whose text was sent; open addressing, 0 = empty */
    size_t seen_cap;
    size_t n_seen;
};

/* ---- options ------------------------------------------------------------------------------ */

#define OPTION(f) offsetof(TallyOptions, f), sizeof(((TallyOptions *)0)->f)

static const struct {
    const char *key;
    uint64_t default_value;
    size_t offset, size; /* of its field in TallyOptions: a uint32_t or a uint64_t */
} thresholds[TALLY_N_THRESHOLDS] = {
    [TALLY_N_PLUS_ONE_CALLS] = {"n_plus_one_calls", 5, OPTION(n_plus_one_min_calls)},
    [TALLY_N_PLUS_ONE_DISTINCT] = {"n_plus_one_distinct", 2, OPTION(n_plus_one_min_distinct)},
    [TALLY_DUPLICATE_MIN] = {"duplicate_min", 1, OPTION(duplicate_min)},
    [TALLY_OVERFETCH_ROWS] = {"overfetch_rows", 1000, OPTION(overfetch_rows)},
    [TALLY_OVERFETCH_BYTES] = {"overfetch_bytes", 1 << 20, OPTION(overfetch_bytes)},
    [TALLY_REQUEST_OVERFETCH_ROWS] = {"request_overfetch_rows", 10000,
                                      OPTION(request_overfetch_rows)},
    [TALLY_REQUEST_OVERFETCH_BYTES] = {"request_overfetch_bytes", 10 << 20,
                                       OPTION(request_overfetch_bytes)},
};

const char *tally_threshold_key(TallyThresholdId id)
{
    return thresholds[id].key;
}

uint64_t tally_threshold_default(TallyThresholdId id)
{
    return thresholds[id].default_value;
}

uint64_t tally_threshold_get(const TallyOptions *o, TallyThresholdId id)
{
    const char *field = (const char *)o + thresholds[id].offset;
    if (thresholds[id].size == sizeof(uint32_t))
        return *(const uint32_t *)field;
    return *(const uint64_t *)field;
}

void tally_threshold_set(TallyOptions *o, TallyThresholdId id, uint64_t value)
{
    char *field = (char *)o + thresholds[id].offset;
    if (thresholds[id].size == sizeof(uint32_t))
        *(uint32_t *)field = (uint32_t)value;
    else
        *(uint64_t *)field = value;
}

void tally_options_default(TallyOptions *o)
{
    memset(o, 0, sizeof *o);
    o->request_gap_us = 1000000;
    for (int i = 0; i < TALLY_N_THRESHOLDS; i++)
        tally_threshold_set(o, (TallyThresholdId)i, thresholds[i].default_value);
    o->max_open_requests = 10000;
    o->max_fingerprints_per_request = 1024;
    o->max_pairs_per_request = 16384;
    o->max_timeline = 10000;
    o->max_connections = 65536;
    o->max_seen_fingerprints = 65536;
}

void tally_set_thresholds(Tally *t, const TallyOptions *o)
{
    t->options.request_gap_us = o->request_gap_us;
    for (int i = 0; i < TALLY_N_THRESHOLDS; i++)
        tally_threshold_set(&t->options, (TallyThresholdId)i,
                            tally_threshold_get(o, (TallyThresholdId)i));
}

const TallyStats *tally_stats(const Tally *t)
{
    return &t->stats;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static char *dup_n(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* Copies a bounded span into buf as a C string, cut to fit: the per-statement paths use this
 * rather than snprintf, whose format parsing showed up in profiles. */
static void copy_span(char *buf, size_t cap, const char *s, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(buf, s, len);
    buf[len] = 0;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

bool tally_is_setup_statement(const char *n, size_t len)
{
    if (!n)
        return false;
    return has_prefix(n, len, "set application_name ") ||
           has_prefix(n, len, "set session application_name ") ||
           has_prefix(n, len, "set local application_name ");
}

static bool is_write(const TallyStatement *st)
{
    static const char *const writes[] = {"INSERT", "UPDATE", "DELETE", "MERGE"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(st->command, writes[i]) == 0)
            return true;
    if (!st->normalized)
        return false;
    return has_prefix(st->normalized, st->normalized_len, "insert ") ||
           has_prefix(st->normalized, st->normalized_len, "update ") ||
           has_prefix(st->normalized, st->normalized_len, "delete ") ||
           has_prefix(st->normalized, st->normalized_len, "merge ");
}

static const SqlTag *find_tag(const TallyStatement *st, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < st->n_tags; i++)
        if (st->tags[i].key_len == klen && memcmp(st->tags[i].key, key, klen) == 0)
            return &st->tags[i];
    return NULL;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* The request key of a tagged statement into buf; false when it carries none. */
static bool tagged_key(const TallyStatement *st, char *buf, size_t cap)
{
    const SqlTag *tag = find_tag(st, "request_id");
    const char *kind = "request_id";
    if (!tag) {
        tag = find_tag(st, "correlation_id");
        kind = "correlation_id";
    }
    if (tag && tag->value_len > 0) {
        snprintf(buf, cap, "%s:%.*s", kind, (int)tag->value_len, tag->value);
        return true;
    }
    tag = find_tag(st, "traceparent");
    /* 00-<32 hex trace id>-<16 hex span id>-<2 hex flags> */
    if (tag && tag->value_len >= 55 && tag->value[2] == '-' && tag->value[35] == '-' &&
        is_hex(tag->value + 3, 32)) {
        snprintf(buf, cap, "trace:%.32s", tag->value + 3);
        return true;
    }
    return false;
}

static bool has_label_tag(const TallyStatement *st)
{
    const SqlTag *route = find_tag(st, "route");
    return (route && route->value_len > 0) || find_tag(st, "controller");
}

/* The label of an untagged run: route, else controller#action, else application_name. */
static void run_label(const TallyStatement *st, char *buf, size_t cap)
{
    const SqlTag *route = find_tag(st, "route");
    if (route && route->value_len > 0) {
        copy_span(buf, cap, route->value, route->value_len);
        return;
    }
    const SqlTag *controller = find_tag(st, "controller");
    const SqlTag *action = find_tag(st, "action");
    if (controller && action) {
        snprintf(buf, cap, "%.*s#%.*s", (int)controller->value_len, controller->value,
                 (int)action->value_len, action->value);
        return;
    }
    if (controller) {
        copy_span(buf, cap, controller->value, controller->value_len);
        return;
    }
    copy_span(buf, cap, st->application_name ? st->application_name : "",
              st->application_name ? st->application_name_len : 0);
}

/* The statement's tags (and application_name) as a JSON object. */
static char *tags_json(const TallyStatement *st)
{
    size_t cap = 3;
    for (size_t i = 0; i < st->n_tags; i++)
        cap += JSON_ESCAPED_MAX(st->tags[i].key_len) + JSON_ESCAPED_MAX(st->tags[i].value_len) + 6;
    cap += JSON_ESCAPED_MAX(st->application_name_len) + 24;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = 0;
    out[n++] = '{';
    bool app_tagged = false;
    for (size_t i = 0; i < st->n_tags; i++) {
        const SqlTag *tag = &st->tags[i];
        if (tag->key_len == 16 && memcmp(tag->key, "application_name", 16) == 0)
            app_tagged = true;
        if (i)
            out[n++] = ',';
        out[n++] = '"';
        n += json_escape(out + n, cap - n, tag->key, tag->key_len);
        out[n++] = '"';
        out[n++] = ':';
        out[n++] = '"';
        n += json_escape(out + n, cap - n, tag->value, tag->value_len);
        out[n++] = '"';
    }
    if (!app_tagged && st->application_name_len > 0) {
        if (st->n_tags)
            out[n++] = ',';
        memcpy(out + n, "\"application_name\":\"", 20);
        n += 20;
        n += json_escape(out + n, cap - n, st->application_name, st->application_name_len);
        out[n++] = '"';
    }
    out[n++] = '}';
    out[n] = 0;
    return out;
}

/* ---- fingerprints already sent ---------------------------------------------------------- */

static uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

/* Returns true when the fingerprint is new (and remembers it). Bounded: when the set is half
 * full it starts over, so some texts are sent again, which the store ignores. */
static bool seen_insert(Tally *t, uint64_t fingerprint)
{
    uint64_t key = nonzero(fingerprint);
    if (t->n_seen * 2 >= t->seen_cap) {
        memset(t->seen, 0, t->seen_cap * sizeof *t->seen);
        t->n_seen = 0;
    }
    size_t mask = t->seen_cap - 1;
    for (size_t i = (size_t)XXH3_64bits_withSeed(&key, sizeof key, t->seed) & mask;;
         i = (i + 1) & mask) {
        if (t->seen[i] == key)
            return false;
        if (t->seen[i] == 0) {
            t->seen[i] = key;
            t->n_seen++;
            return true;
        }
    }
}

static void send_fingerprint(Tally *t, const TallyStatement *st)
{
    if (!st->normalized || !seen_insert(t, st->fingerprint))
        return;
    FingerprintRecord *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->fingerprint = st->fingerprint;
    r->normalized = dup_n(st->normalized, st->normalized_len);
    const char *space = memchr(st->normalized, ' ', st->normalized_len);
    r->command =
        dup_n(st->normalized, space ? (size_t)(space - st->normalized) : st->normalized_len);
    if (t->options.keep_samples && st->sample)
        r->sample = dup_n(st->sample, st->sample_len);
    r->first_seen_us = st->start_us;
    if (!r->normalized || !r->command) {
        fingerprint_record_free(r);
        return;
    }
    t->stats.fingerprints_sent++;
    t->on_fingerprint(t->ctx, r);
}

/* ---- per-request tables ------------------------------------------------------------------- */

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* First sizes of a request's tables, doubled as they fill. Small: most requests run a few
 * statements, and every open request holds them (under load, thousands at once: at 16/32/16
 * they were ~2.5 kB of a request's ~3.4 kB). */
#define FPS_FIRST_CAP 4
#define PAIRS_FIRST_CAP 8
#define TIMELINE_FIRST_CAP 4

/* Open-addressing tables below never fill up: an insert is refused while fewer than two
 * slots are free, so every probe meets an empty slot. */

static bool fp_grow(Tally *t, Request *r)
{
    size_t max_cap = pow2_at_least(2 * t->options.max_fingerprints_per_request + 2);
    if (r->fps_cap >= max_cap)
        return false;
    size_t cap = r->fps_cap ? r->fps_cap * 2 : FPS_FIRST_CAP;
    FpSlot *fps = calloc(cap, sizeof *fps);
    if (!fps)
        return false;
    for (size_t i = 0; i < r->fps_cap; i++) {
        if (!r->fps[i].used)
            continue;
        size_t j =
            (size_t)XXH3_64bits_withSeed(&r->fps[i].stat.fingerprint, 8, t->seed) & (cap - 1);
        while (fps[j].used)
            j = (j + 1) & (cap - 1);
        fps[j] = r->fps[i];
    }
    free(r->fps);
    r->fps = fps;
    r->fps_cap = cap;
    return true;
}

/* NULL when the per-request fingerprint bound is reached (the request is then truncated). */
static FpSlot *fp_find_or_add(Tally *t, Request *r, uint64_t fingerprint)
{
    if (r->n_fps * 2 >= r->fps_cap)
        fp_grow(t, r);
    if (r->fps_cap == 0)
        return NULL;
    size_t mask = r->fps_cap - 1;
    for (size_t i = (size_t)XXH3_64bits_withSeed(&fingerprint, 8, t->seed) & mask;;
         i = (i + 1) & mask) {
        if (r->fps[i].used && r->fps[i].stat.fingerprint == fingerprint)
            return &r->fps[i];
        if (!r->fps[i].used) {
            if (r->n_fps >= t->options.max_fingerprints_per_request || r->n_fps + 2 > r->fps_cap)
                return NULL;
            r->fps[i].used = true;
            r->fps[i].stat.fingerprint = fingerprint;
            r->n_fps++;
            return &r->fps[i];
        }
    }
}

static void pairs_grow(Tally *t, Request *r)
{
    size_t max_cap = pow2_at_least(2 * t->options.max_pairs_per_request + 2);
    if (r->pairs_cap >= max_cap)
        return;
    size_t cap = r->pairs_cap ? r->pairs_cap * 2 : PAIRS_FIRST_CAP;
    uint64_t *pairs = calloc(cap, sizeof *pairs);
    if (!pairs)
        return;
    for (size_t i = 0; i < r->pairs_cap; i++) {
        if (!r->pairs[i])
            continue;
        size_t j = (size_t)r->pairs[i] & (cap - 1);
        while (pairs[j])
            j = (j + 1) & (cap - 1);
        pairs[j] = r->pairs[i];
    }
    free(r->pairs);
    r->pairs = pairs;
    r->pairs_cap = cap;
}

/* Returns true when the (fingerprint, values) pair is new in this request. Past the bound a
 * pair counts as new: duplicates are then a lower bound, never invented. */
static bool pair_insert(Tally *t, Request *r, uint64_t fingerprint, uint64_t values)
{
    uint64_t both[2] = {fingerprint, values};
    uint64_t key = nonzero(XXH3_64bits_withSeed(both, sizeof both, t->seed));
    if (r->n_pairs * 2 >= r->pairs_cap)
        pairs_grow(t, r);
    if (r->pairs_cap == 0) {
        r->truncated = true;
        return true;
    }
    size_t mask = r->pairs_cap - 1;
    for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
        if (r->pairs[i] == key)
            return false;
        if (!r->pairs[i]) {
            if (r->n_pairs >= t->options.max_pairs_per_request || r->n_pairs + 2 > r->pairs_cap) {
                r->truncated = true;
                return true;
            }
            r->pairs[i] = key;
            r->n_pairs++;
            return true;
        }
    }
}

static void timeline_append(Tally *t, Request *r, const RecordStatement *s)
{
    if (r->n_timeline == r->timeline_cap) {
        size_t cap = r->timeline_cap ? r->timeline_cap * 2 : TIMELINE_FIRST_CAP;
        if (cap > t->options.max_timeline)
            cap = t->options.max_timeline;
        RecordStatement *tl = cap > r->timeline_cap ? realloc(r->timeline, cap * sizeof *tl) : NULL;
        if (!tl) {
            r->timeline_dropped++;
            return;
        }
        r->timeline = tl;
        r->timeline_cap = cap;
    }
    r->timeline[r->n_timeline++] = *s;
}

/* ---- open requests ------------------------------------------------------------------------ */

static void list_unlink(Tally *t, Request *r)
{
    if (r->older)
        r->older->newer = r->newer;
    else
        t->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        t->newest = r->older;
    r->older = r->newer = NULL;
}

static void list_append(Tally *t, Request *r)
{
    r->older = t->newest;
    r->newer = NULL;
    if (t->newest)
        t->newest->newer = r;
    else
        t->oldest = r;
    t->newest = r;
}

static Request *request_find(Tally *t, const char *key)
{
    uint64_t h = XXH3_64bits_withSeed(key, strlen(key), t->seed);
    for (Request *r = t->buckets[h & (t->n_buckets - 1)]; r; r = r->hash_next)
        if (r->key_hash == h && strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

static void request_unhash(Tally *t, Request *r)
{
    Request **p = &t->buckets[r->key_hash & (t->n_buckets - 1)];
    while (*p != r)
        p = &(*p)->hash_next;
    *p = r->hash_next;
}

static void add_finding(RecordFinding *out, size_t *n, FindingKind kind, uint64_t fingerprint,
                        uint64_t count, uint32_t distinct, bool write, bool by_bytes)
{
    RecordFinding *f = &out[(*n)++];
    f->kind = kind;
    f->fingerprint = fingerprint;
    f->count = count;
    f->distinct_values = distinct;
    f->is_write = write;
    f->by_bytes = by_bytes;
}

/* Moves the request's figures into a record and computes its findings. */
static RequestRecord *request_to_record(Tally *t, Request *r, const char *reason)
{
    RequestRecord *rec = calloc(1, sizeof *rec);
    if (!rec)
        return NULL;
    const TallyOptions *o = &t->options;
    rec->key = r->key;
    rec->route = r->route;
    rec->tags_json = r->tags_json;
    r->key = r->route = r->tags_json = NULL;
    rec->conn_id = r->conn_id;
    rec->start_us = r->start_us;
    rec->end_us = r->end_us;
    rec->end_reason = reason;
    rec->statements = r->statements;
    rec->setup_statements = r->setup_statements;
    rec->distinct_fingerprints = (uint32_t)r->n_fps;
    rec->duplicates =
        r->statements - (r->distinct_pairs < r->statements ? r->distinct_pairs : r->statements);
    rec->errors = r->errors;
    rec->transactions = r->transactions;
    rec->db_time_us = r->db_time_us;
    rec->rows = r->rows;
    rec->bytes = r->bytes;
    rec->truncated = r->truncated;
    rec->timeline = r->timeline;
    rec->n_timeline = r->n_timeline;
    rec->timeline_dropped = r->timeline_dropped;
    r->timeline = NULL;

    rec->fingerprints = malloc((r->n_fps ? r->n_fps : 1) * sizeof *rec->fingerprints);
    /* at most three findings per fingerprint (n+1, duplicate, overfetch), plus two per request */
    rec->findings = malloc((3 * r->n_fps + 2) * sizeof *rec->findings);
    if (!rec->fingerprints || !rec->findings) {
        request_record_free(rec);
        return NULL;
    }
    for (size_t i = 0; i < r->fps_cap; i++) {
        const FpSlot *s = &r->fps[i];
        if (!s->used)
            continue;
        rec->fingerprints[rec->n_fingerprints++] = s->stat;
        const RecordFingerprint *fp = &s->stat;
        if (fp->calls >= o->n_plus_one_min_calls &&
            fp->distinct_values >= o->n_plus_one_min_distinct)
            add_finding(rec->findings, &rec->n_findings, FINDING_N_PLUS_ONE, fp->fingerprint,
                        fp->calls, fp->distinct_values, fp->is_write, false);
        uint32_t repeats =
            fp->calls - (fp->distinct_values < fp->calls ? fp->distinct_values : fp->calls);
        if (o->duplicate_min > 0 && repeats >= o->duplicate_min)
            add_finding(rec->findings, &rec->n_findings, FINDING_DUPLICATE, fp->fingerprint,
                        repeats, fp->distinct_values, fp->is_write, false);
        if (s->max_rows >= o->overfetch_rows)
            add_finding(rec->findings, &rec->n_findings, FINDING_OVERFETCH, fp->fingerprint,
                        s->max_rows, fp->distinct_values, fp->is_write, false);
        else if (s->max_bytes >= o->overfetch_bytes)
            add_finding(rec->findings, &rec->n_findings, FINDING_OVERFETCH, fp->fingerprint,
                        s->max_bytes, fp->distinct_values, fp->is_write, true);
    }
    if (r->rows >= o->request_overfetch_rows)
        add_finding(rec->findings, &rec->n_findings, FINDING_OVERFETCH, 0, r->rows, 0, false,
                    false);
    else if (r->bytes >= o->request_overfetch_bytes)
        add_finding(rec->findings, &rec->n_findings, FINDING_OVERFETCH, 0, r->bytes, 0, false,
                    true);
    return rec;
}

static void request_free(Request *r)
{
    free(r->key);
    free(r->route);
    free(r->tags_json);
    free(r->fps);
    free(r->pairs);
    free(r->timeline);
    free(r);
}

/* Ends a request: hands its record on and forgets it. */
static void request_finish(Tally *t, Request *r, const char *reason)
{
    request_unhash(t, r);
    list_unlink(t, r);
    if (r->run_owner && r->run_owner->run == r)
        r->run_owner->run = NULL;
    t->stats.open_requests--;
    if (r->statements > 0) {
        RequestRecord *rec = request_to_record(t, r, reason);
        if (rec) {
            t->stats.requests++;
            if (rec->truncated)
                t->stats.truncated++;
            t->on_request(t->ctx, rec);
        }
    }
    request_free(r);
}

static Request *request_create(Tally *t, const char *key, const char *route,
                               const TallyStatement *st)
{
    if (t->stats.open_requests >= t->options.max_open_requests && t->oldest) {
        t->stats.evicted++;
        request_finish(t, t->oldest, "evicted");
    }
    Request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->key = strdup(key);
    r->route = strdup(route);
    r->tags_json = tags_json(st);
    if (!r->key || !r->route || !r->tags_json) {
        request_free(r);
        return NULL;
    }
    r->key_hash = XXH3_64bits_withSeed(key, strlen(key), t->seed);
    r->conn_id = st->conn_id;
    r->start_us = st->start_us;
    r->end_us = st->end_us;
    r->last_activity_us = st->end_us;
    size_t b = r->key_hash & (t->n_buckets - 1);
    r->hash_next = t->buckets[b];
    t->buckets[b] = r;
    list_append(t, r);
    t->stats.open_requests++;
    return r;
}

static void request_touch(Tally *t, Request *r, int64_t end_us)
{
    if (end_us > r->end_us)
        r->end_us = end_us;
    if (end_us > r->last_activity_us)
        r->last_activity_us = end_us;
    list_unlink(t, r);
    list_append(t, r);
}

/* ---- connections ----------------------------------------------------------------------------- */

static ConnState **conn_slot(Tally *t, uint64_t conn_id)
{
    ConnState **p = &t->conns[XXH3_64bits_withSeed(&conn_id, 8, t->seed) & (CONN_BUCKETS - 1)];
    while (*p && (*p)->conn_id != conn_id)
        p = &(*p)->next;
    return p;
}

static ConnState *conn_get(Tally *t, uint64_t conn_id)
{
    ConnState **p = conn_slot(t, conn_id);
    if (*p)
        return *p;
    if (t->n_conns >= t->options.max_connections)
        return NULL;
    ConnState *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->conn_id = conn_id;
    *p = c;
    t->n_conns++;
    return c;
}

static void conn_free(ConnState *c)
{
    free(c->run_label);
    free(c->tagged_key);
    free(c);
}

/* ---- statements --------------------------------------------------------------------------------
 */

static RecordStatement to_timeline(const TallyStatement *st, bool setup)
{
    RecordStatement s = {0};
    s.fingerprint = st->fingerprint;
    s.values_hash = st->values_hash;
    s.start_us = st->start_us;
    s.duration_us = st->end_us - st->start_us;
    s.rows = st->rows;
    s.bytes = st->bytes;
    s.conn_id = st->conn_id;
    if (st->sqlstate)
        copy_span(s.sqlstate, sizeof s.sqlstate, st->sqlstate, strnlen(st->sqlstate, 5));
    s.setup = setup;
    return s;
}

static void request_add(Tally *t, Request *r, const TallyStatement *st)
{
    int64_t duration = st->end_us - st->start_us;
    if (duration < 0)
        duration = 0;
    r->statements++;
    r->db_time_us += (uint64_t)duration;
    r->rows += st->rows;
    r->bytes += st->bytes;
    r->last_conn_id = st->conn_id;
    bool failed = st->sqlstate && st->sqlstate[0];
    r->errors += failed;
    if (strcmp(st->command, "BEGIN") == 0 || strcmp(st->command, "START") == 0)
        r->transactions++;
    bool new_pair = pair_insert(t, r, st->fingerprint, st->values_hash);
    r->distinct_pairs += new_pair;
    FpSlot *fp = fp_find_or_add(t, r, st->fingerprint);
    if (fp) {
        fp->stat.calls++;
        fp->stat.distinct_values += new_pair;
        fp->stat.total_time_us += (uint64_t)duration;
        fp->stat.rows += st->rows;
        fp->stat.bytes += st->bytes;
        fp->stat.errors += failed;
        if (fp->stat.calls == 1) /* a shape's kind never changes: classify it once */
            fp->stat.is_write = is_write(st);
        if (st->rows > fp->max_rows)
            fp->max_rows = st->rows;
        if (st->bytes > fp->max_bytes)
            fp->max_bytes = st->bytes;
    } else {
        r->truncated = true;
    }
    RecordStatement s = to_timeline(st, false);
    timeline_append(t, r, &s);
    request_touch(t, r, st->end_us);
}

static bool app_changed(const ConnState *c, const TallyStatement *st)
{
    if (!c->has_last_app)
        return false;
    char app[sizeof c->last_app];
    copy_span(app, sizeof app, st->application_name ? st->application_name : "",
              st->application_name ? st->application_name_len : 0);
    return strcmp(app, c->last_app) != 0;
}

static void remember_app(ConnState *c, const TallyStatement *st)
{
    copy_span(c->last_app, sizeof c->last_app, st->application_name ? st->application_name : "",
              st->application_name ? st->application_name_len : 0);
    c->has_last_app = true;
}

/* A statement with no request tag: the connection's last tagged request while it is active,
 * else the connection's labelled run. Only statements that name nothing else stay with the
 * request before them: a route or controller tag of another label, or another
 * application_name, starts a new request. */
static Request *untagged_request(Tally *t, ConnState *c, const TallyStatement *st)
{
    char label[512];
    run_label(st, label, sizeof label);
    bool from_tags = has_label_tag(st);
    bool new_app = !from_tags && app_changed(c, st);
    if (c->tagged_key) {
        Request *r = request_find(t, c->tagged_key);
        /* A statement whose route or controller is the tagged request's own (an app that puts
         * request_id on some statements only) is part of it too. */
        bool same_labels = from_tags ? r && strcmp(label, r->route) == 0 : !new_app;
        if (r && same_labels && st->start_us - r->last_activity_us <= t->options.request_gap_us)
            return r;
        free(c->tagged_key);
        c->tagged_key = NULL;
    }
    Request *run = c->run;
    /* A statement without label tags inside a tag-labelled run (a driver's COMMIT, a
     * framework's own query) stays in the run: only a different label ends it. */
    if (run && c->run_label_from_tags && !from_tags && !new_app &&
        st->start_us - run->last_activity_us <= t->options.request_gap_us)
        return run;
    if (run && strcmp(c->run_label ? c->run_label : "", label) != 0) {
        request_finish(t, run, "label_change");
        run = NULL;
    } else if (run && st->start_us - run->last_activity_us > t->options.request_gap_us) {
        request_finish(t, run, "idle");
        run = NULL;
    }
    if (run)
        return run;
    char key[64];
    snprintf(key, sizeof key, "conn:%llu#%llu", (unsigned long long)c->conn_id,
             (unsigned long long)++c->run_seq);
    run = request_create(t, key, label, st);
    if (!run)
        return NULL;
    run->run_owner = c;
    c->run = run;
    free(c->run_label);
    c->run_label = strdup(label);
    c->run_label_from_tags = from_tags;
    return run;
}

static bool is_transaction_start(const TallyStatement *st)
{
    return strcmp(st->command, "BEGIN") == 0 || strcmp(st->command, "START") == 0;
}

static bool has_request_tag(const TallyStatement *st)
{
    char key[600];
    return tagged_key(st, key, sizeof key);
}

static void add_pending_begin(Tally *t, ConnState *c, Request *r)
{
    if (!c->has_pending_begin)
        return;
    c->has_pending_begin = false;
    request_add(t, r, &c->pending_begin);
}

void tally_statement(Tally *t, const TallyStatement *st)
{
    t->stats.statements++;
    ConnState *c = conn_get(t, st->conn_id);
    if (c && is_transaction_start(st) && !has_request_tag(st) && !c->has_pending_begin) {
        c->pending_begin = *st;
        c->pending_begin.normalized = NULL;
        c->pending_begin.tags = NULL;
        c->pending_begin.n_tags = 0;
        c->pending_begin.application_name = NULL;
        c->pending_begin.application_name_len = 0;
        c->pending_begin.sample = NULL;
        c->pending_begin.command = strcmp(st->command, "BEGIN") == 0 ? "BEGIN" : "START";
        snprintf(c->pending_begin_sqlstate, sizeof c->pending_begin_sqlstate, "%s",
                 st->sqlstate ? st->sqlstate : "");
        c->pending_begin.sqlstate = c->pending_begin_sqlstate;
        c->has_pending_begin = true;
        t->stats.app_statements++;
        send_fingerprint(t, st);
        return;
    }
    if (tally_is_setup_statement(st->normalized, st->normalized_len)) {
        /* The label it sets shows from the next statement on: it joins that request. */
        if (c) {
            if (c->has_pending_setup && c->run) {
                timeline_append(t, c->run, &c->pending_setup);
                c->run->setup_statements++;
            }
            c->pending_setup = to_timeline(st, true);
            c->has_pending_setup = true;
        }
        send_fingerprint(t, st);
        return;
    }
    t->stats.app_statements++;

    char key[600];
    Request *r = NULL;
    if (tagged_key(st, key, sizeof key)) {
        r = request_find(t, key);
        if (r && st->start_us - r->last_activity_us > t->options.request_gap_us) {
            request_finish(t, r, "idle");
            r = NULL;
        }
        if (!r) {
            char label[512];
            run_label(st, label, sizeof label);
            r = request_create(t, key, label, st);
        }
        if (c && r && (!c->tagged_key || strcmp(c->tagged_key, key) != 0)) {
            free(c->tagged_key);
            c->tagged_key = strdup(key);
        }
        /* The connection now works for a tagged request: its labelled run, if any, is over
         * (a later statement with that run's label is another request). */
        if (c && c->run)
            request_finish(t, c->run, "label_change");
    } else if (c) {
        r = untagged_request(t, c, st);
    } else {
        snprintf(key, sizeof key, "conn:%llu", (unsigned long long)st->conn_id);
        r = request_find(t, key);
        if (!r)
            r = request_create(t, key, "", st);
    }
    if (!r)
        return; /* out of memory: the statement is counted in stats.statements only */
    if (c && c->has_pending_setup) {
        timeline_append(t, r, &c->pending_setup);
        r->setup_statements++;
        c->has_pending_setup = false;
    }
    if (c) {
        add_pending_begin(t, c, r);
        remember_app(c, st);
    }
    request_add(t, r, st);
    send_fingerprint(t, st);
}

void tally_tick(Tally *t, int64_t now_us)
{
    while (t->oldest && now_us - t->oldest->last_activity_us > t->options.request_gap_us)
        request_finish(t, t->oldest, "idle");
}

void tally_connection_closed(Tally *t, uint64_t conn_id)
{
    ConnState **p = conn_slot(t, conn_id);
    ConnState *c = *p;
    if (!c)
        return;
    if (c->has_pending_begin) {
        /* A BEGIN and then nothing: it still happened; it ends the connection's run. */
        TallyStatement begin = c->pending_begin;
        c->has_pending_begin = false;
        Request *r = untagged_request(t, c, &begin);
        if (r)
            request_add(t, r, &begin);
    }
    if (c->run) {
        if (c->has_pending_setup) {
            timeline_append(t, c->run, &c->pending_setup);
            c->run->setup_statements++;
        }
        request_finish(t, c->run, "conn_close");
    }
    if (c->tagged_key) {
        Request *r = request_find(t, c->tagged_key);
        if (r && r->last_conn_id == conn_id)
            request_finish(t, r, "conn_close");
    }
    *p = c->next;
    t->n_conns--;
    conn_free(c);
}

void tally_finish_all(Tally *t)
{
    while (t->oldest)
        request_finish(t, t->oldest, "shutdown");
}

uint64_t tally_hash_seed(const Tally *t)
{
    return t->seed;
}

size_t tally_max_request_chain(const Tally *t)
{
    size_t longest = 0;
    for (size_t b = 0; b < t->n_buckets; b++) {
        size_t n = 0;
        for (const Request *r = t->buckets[b]; r; r = r->hash_next)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}

/* ---- lifecycle
 * ------------------------------------------------------------------------------------ */

Tally *tally_new(const TallyOptions *options, TallyRequestFn on_request,
                 TallyFingerprintFn on_fingerprint, void *ctx)
{
    Tally *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->options = *options;
    if (t->options.max_open_requests == 0)
        t->options.max_open_requests = 1;
    t->seed = options->hash_seed_fixed ? options->hash_seed : hashseed_random();
    t->on_request = on_request;
    t->on_fingerprint = on_fingerprint;
    t->ctx = ctx;
    t->n_buckets =
        pow2_at_least(options->max_open_requests > REQUEST_BUCKETS_MIN ? options->max_open_requests
                                                                       : REQUEST_BUCKETS_MIN);
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    t->seen_cap =
        pow2_at_least(2 * (options->max_seen_fingerprints ? options->max_seen_fingerprints : 1024));
    t->seen = calloc(t->seen_cap, sizeof *t->seen);
    if (!t->buckets || !t->seen) {
        free(t->buckets);
        free(t->seen);
        free(t);
        return NULL;
    }
    return t;
}

void tally_free(Tally *t)
{
    if (!t)
        return;
    tally_finish_all(t);
    for (size_t b = 0; b < CONN_BUCKETS; b++) {
        while (t->conns[b]) {
            ConnState *c = t->conns[b];
            t->conns[b] = c->next;
            conn_free(c);
        }
    }
    free(t->buckets);
    free(t->seen);
    free(t);
}
