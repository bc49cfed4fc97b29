/* protocol/tracker — see tracker.h.
 *
 * The server answers frontend messages strictly in order, so a FIFO of what the client sent
 * is enough to attribute every reply. Three protocol facts shape the code:
 * - after an ErrorResponse in the extended protocol the server skips messages until Sync;
 * - a Sync that reaches the server while it is in COPY FROM STDIN mode is ignored;
 * - a portal run may be split over several Executes (PortalSuspended), and is one statement.
 * SQL texts and portals are reference-counted because a pipelined client may replace the
 * unnamed statement or portal before the server has answered an Execute that used it. */
#include "protocol/tracker.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "protocol/hashseed.h"
#include "protocol/pgwire.h"
#include "protocol/sqlnorm.h"

/* ---- reference-counted SQL text and its normalization ------------------------------------ */

#define TRK_MAX_STATEMENTS_PER_TEXT 256 /* a longer multi-statement string shares the last */

typedef struct TrkNormStatement {
    uint64_t fingerprint;
    uint64_t values_hash;
    size_t text_offset; /* of N within TrkNorm.text */
    size_t text_len;
    bool incomplete;
} TrkNormStatement;

/* Everything the normalizer said about one SQL string, in one allocation. */
typedef struct TrkNorm {
    size_t size; /* bytes allocated for this block (a spare is reused when big enough) */
    size_t n_statements;
    TrkNormStatement *statements;
    SqlTag *tags;
    size_t n_tags;
    char *text; /* the statements' N, back to back, then the tags' keys and values */
} TrkNorm;

typedef struct TrkSql {
    uint32_t refs;
    bool truncated;
    size_t len;
    size_t cap;
    TrkNorm *norm; /* computed at the first execution, shared by every later one */
    char text[];
} TrkSql;

struct TrackerWorkspace {
    char *out; /* sqlnorm output for one statement */
    size_t out_cap;
    char *texts; /* every statement's N of the current string */
    size_t texts_cap;
    TrkNormStatement statements[TRK_MAX_STATEMENTS_PER_TEXT];
    SqlTags tags;
    uint64_t hash_seed; /* of the name tables of every tracker using this workspace */
};

/* ---- portals ------------------------------------------------------------------------------ */

#define TRK_NAME_INLINE 64

typedef struct TrkPortal {
    uint32_t refs;
    TrkSql *sql;                     /* NULL when the statement was unknown */
    char statement[TRK_NAME_INLINE]; /* statement name, cut to fit */
    size_t statement_len;
    uint64_t values_hash;
    uint64_t born_after_syncs; /* sync points sent before its Bind */
    /* a run split by PortalSuspended accumulates here until CommandComplete */
    uint32_t run_executes;
    uint64_t run_rows;
    uint64_t run_bytes;
    int64_t run_start_us;
} TrkPortal;

/* ---- name -> object tables ------------------------------------------------------------- */

#define NAMEMAP_BUCKETS 256

typedef struct NameNode {
    struct NameNode *next;
    void *value;
    size_t charge; /* bytes charged for this entry (name, value, node) */
    size_t name_len;
    char name[];
} NameNode;

typedef struct NameMap {
    NameNode **buckets; /* allocated on first insert */
    uint64_t seed;      /* the names are the client's choice: a seed it cannot know */
    size_t count;
    size_t bytes; /* charged by the entries */
} NameMap;

/* ---- the FIFO ------------------------------------------------------------------------------ */

typedef enum TrkKind {
    TRK_QUERY,
    TRK_PARSE,
    TRK_BIND,
    TRK_DESCRIBE,
    TRK_EXECUTE,
    TRK_CLOSE,
    TRK_SYNC,
    TRK_FUNCTION,
    TRK_COPY_END, /* marker: the client ended its COPY data here (CopyDone / CopyFail) */
} TrkKind;

typedef struct TrkEntry {
    TrkKind kind;
    uint32_t stmt_index; /* QUERY: statements completed so far */
    bool failed;         /* QUERY: an error ended it; later statements will not run */
    int64_t start_us;
    TrkSql *sql;       /* QUERY: the text; PARSE: the statement parsed */
    TrkPortal *portal; /* EXECUTE */
    size_t charge;     /* SQL bytes charged for this entry */
    bool untracked;    /* its SQL did not fit a byte bound: matched, but never reported */
    uint64_t rows;     /* DataRows seen for the current statement */
    uint64_t bytes;
} TrkEntry;

struct Tracker {
    uint64_t conn_id;
    TrackerLimits limits;
    TrackerBudget *budget; /* shared with the loop's other trackers; NULL: none */
    TrackerEmitFn emit;
    void *emit_ctx;
    TrackerStats stats;

    TrkEntry *fifo;
    size_t fifo_cap;
    size_t fifo_head;
    size_t fifo_len;
    size_t fifo_bytes; /* SQL bytes charged by the entries */

    /* When a bound is hit or replies stop matching, tracking pauses until every sync point
     * (Query, Sync, FunctionCall) sent so far has been answered. Meanwhile (and before
     * authentication) only the kinds of the requests are kept, one byte each, oldest first:
     * enough to follow the server's skip-until-Sync after an error, in which the Queries and
     * FunctionCalls it skips are never answered, so that tracking resumes at the right
     * ReadyForQuery rather than waiting for answers that never come. */
    bool suspended;
    uint8_t *kinds; /* TrkKind ring */
    size_t kinds_cap;
    size_t kinds_head;
    size_t kinds_len;
    size_t kinds_sync_points; /* sync points among them */
    size_t kinds_syncs;       /* Syncs among them (the server ignores some during COPY) */
    size_t kinds_copy_ends;   /* COPY_END markers among them */
    /* Past the ring's bound kinds are no longer kept, only the sync points counted; then an
     * error's skipping cannot be followed and tracking waits for every one of them. */
    bool kinds_lost;
    uint64_t lost_sync_points;

    /* After an extended-protocol error the server skips every message until Sync; set when
     * no Sync was outstanding then, so what the client sends next goes unanswered. */
    bool server_skipping;
    /* Until the first ReadyForQuery (authentication and startup done) nothing is tracked; the
     * requests sent meanwhile (their kinds, in the ring) are answered after it, and are waited
     * for like a suspension. */
    bool authenticating;

    bool client_in_copy; /* server sent CopyInResponse, client has not ended the COPY */
    bool scs_off;
    char application_name[64]; /* the server truncates it to 63 bytes too */
    size_t application_name_len;
    TrackerWorkspace *ws;

    uint64_t syncs_sent;
    uint64_t syncs_answered;

    TrkSql *unnamed_statement;
    TrkPortal *unnamed_portal;
    NameMap statements; /* -> TrkSql* */
    NameMap portals;    /* -> TrkPortal* */

    TrkSql *last_query;  /* most recent Query text, reused when the next one is identical */
    TrkSql *spare;       /* one freed text block kept for reuse: no malloc in steady state */
    TrkNorm *spare_norm; /* likewise for normalization blocks */
};

/* ---- byte accounting ------------------------------------------------------------------------ */

/* Charges n bytes to one of the connection's bounded tables (`used` against `limit`, 0 = no
 * byte bound) and to the shared budget. False, charging nothing, when either would overflow. */
static bool charge(Tracker *t, size_t *used, size_t limit, size_t n)
{
    if (limit && n > limit - (*used < limit ? *used : limit))
        return false;
    TrackerBudget *b = t->budget;
    if (b && b->limit && n > b->limit - (b->used < b->limit ? b->used : b->limit)) {
        b->hits++;
        return false;
    }
    *used += n;
    t->stats.bytes += n;
    if (b)
        b->used += n;
    return true;
}

static void uncharge(Tracker *t, size_t *used, size_t n)
{
    *used -= n;
    t->stats.bytes -= n;
    if (t->budget)
        t->budget->used -= n;
}

/* ---- SQL texts ------------------------------------------------------------------------------ */

/* Keeps the larger of a freed normalization block and the current spare. */
static void norm_release(Tracker *t, TrkNorm *norm)
{
    if (!norm)
        return;
    if (!t->spare_norm || t->spare_norm->size < norm->size) {
        free(t->spare_norm);
        t->spare_norm = norm;
    } else {
        free(norm);
    }
}

static void sql_release(Tracker *t, TrkSql *sql)
{
    if (!sql || --sql->refs > 0)
        return;
    if (sql == t->last_query)
        t->last_query = NULL;
    norm_release(t, sql->norm);
    sql->norm = NULL;
    if (!t->spare || t->spare->cap < sql->cap) {
        free(t->spare);
        t->spare = sql;
    } else {
        free(sql);
    }
}

static TrkSql *sql_ref(TrkSql *sql)
{
    if (sql)
        sql->refs++;
    return sql;
}

/* A new text from the first `have` bytes of a NUL-terminated field whose full message
 * body was `body_len` bytes. Returns NULL on allocation failure. */
static TrkSql *sql_new(Tracker *t, const char *text, size_t len, bool truncated)
{
    if (len > t->limits.max_sql_bytes) {
        len = t->limits.max_sql_bytes;
        truncated = true;
    }
    TrkSql *sql;
    if (t->spare && t->spare->cap >= len) {
        sql = t->spare;
        t->spare = NULL;
    } else {
        size_t cap = len < 64 ? 64 : len;
        sql = malloc(sizeof *sql + cap);
        if (!sql)
            return NULL;
        sql->cap = cap;
    }
    sql->refs = 1;
    sql->truncated = truncated;
    sql->len = len;
    sql->norm = NULL;
    memcpy(sql->text, text, len);
    return sql;
}

static bool sql_equals(const TrkSql *sql, const char *text, size_t len, bool truncated)
{
    return sql && sql->len == len && sql->truncated == truncated &&
           memcmp(sql->text, text, len) == 0;
}

/* ---- portals -------------------------------------------------------------------------------- */

static void portal_release(Tracker *t, TrkPortal *portal)
{
    if (!portal || --portal->refs > 0)
        return;
    sql_release(t, portal->sql);
    free(portal);
}

static TrkPortal *portal_ref(TrkPortal *portal)
{
    if (portal)
        portal->refs++;
    return portal;
}

/* ---- name maps ------------------------------------------------------------------------------ */

static size_t namemap_bucket(const NameMap *map, const char *name, size_t len)
{
    return (size_t)(XXH3_64bits_withSeed(name, len, map->seed) % NAMEMAP_BUCKETS);
}

static NameNode **namemap_slot(NameMap *map, const char *name, size_t len)
{
    if (!map->buckets)
        return NULL;
    NameNode **slot = &map->buckets[namemap_bucket(map, name, len)];
    while (*slot && !((*slot)->name_len == len && memcmp((*slot)->name, name, len) == 0))
        slot = &(*slot)->next;
    return slot;
}

static void *namemap_get(NameMap *map, const char *name, size_t len)
{
    NameNode **slot = namemap_slot(map, name, len);
    return slot && *slot ? (*slot)->value : NULL;
}

/* Inserts a new name (the caller checked it is absent), charging `extra` bytes for its value
 * besides the name and node. Returns false when a count or byte bound, or memory, says no. */
static bool namemap_put(Tracker *t, NameMap *map, size_t max_count, size_t max_bytes,
                        const char *name, size_t len, void *value, size_t extra)
{
    size_t cost = sizeof(NameNode) + len + extra;
    if (map->count >= max_count || !charge(t, &map->bytes, max_bytes, cost))
        return false;
    if (!map->buckets) {
        map->buckets = calloc(NAMEMAP_BUCKETS, sizeof *map->buckets);
        if (!map->buckets) {
            uncharge(t, &map->bytes, cost);
            return false;
        }
    }
    NameNode *node = malloc(sizeof *node + len);
    if (!node) {
        uncharge(t, &map->bytes, cost);
        return false;
    }
    node->value = value;
    node->charge = cost;
    node->name_len = len;
    memcpy(node->name, name, len);
    size_t b = namemap_bucket(map, name, len);
    node->next = map->buckets[b];
    map->buckets[b] = node;
    map->count++;
    return true;
}

/* Removes a name; returns its value or NULL. */
static void *namemap_take(Tracker *t, NameMap *map, const char *name, size_t len)
{
    NameNode **slot = namemap_slot(map, name, len);
    if (!slot || !*slot)
        return NULL;
    NameNode *node = *slot;
    void *value = node->value;
    *slot = node->next;
    uncharge(t, &map->bytes, node->charge);
    free(node);
    map->count--;
    return value;
}

typedef bool (*NameMapPredicate)(void *value, void *ctx);
typedef void (*NameMapRelease)(Tracker *t, void *value);

/* Removes every entry whose value satisfies `pred` (NULL: all), releasing the values. */
static void namemap_remove_if(Tracker *t, NameMap *map, NameMapPredicate pred, void *ctx,
                              NameMapRelease release)
{
    if (!map->buckets)
        return;
    for (size_t b = 0; b < NAMEMAP_BUCKETS; b++) {
        NameNode **slot = &map->buckets[b];
        while (*slot) {
            NameNode *node = *slot;
            if (!pred || pred(node->value, ctx)) {
                *slot = node->next;
                uncharge(t, &map->bytes, node->charge);
                release(t, node->value);
                free(node);
                map->count--;
            } else {
                slot = &node->next;
            }
        }
    }
}

static bool value_is(void *value, void *ctx)
{
    return value == ctx;
}

static void release_sql_value(Tracker *t, void *value)
{
    sql_release(t, value);
}

static void release_portal_value(Tracker *t, void *value)
{
    portal_release(t, value);
}

static void namemap_free(Tracker *t, NameMap *map, NameMapRelease release)
{
    namemap_remove_if(t, map, NULL, NULL, release);
    free(map->buckets);
    map->buckets = NULL;
}

/* ---- FIFO ------------------------------------------------------------------------------------ */

static TrkEntry *fifo_at(Tracker *t, size_t i)
{
    return &t->fifo[(t->fifo_head + i) % t->fifo_cap];
}

static void entry_release(Tracker *t, TrkEntry *e)
{
    uncharge(t, &t->fifo_bytes, e->charge);
    e->charge = 0;
    sql_release(t, e->sql);
    portal_release(t, e->portal);
    e->sql = NULL;
    e->portal = NULL;
}

static bool is_sync_point(TrkKind kind)
{
    return kind == TRK_QUERY || kind == TRK_SYNC || kind == TRK_FUNCTION;
}

static void fifo_clear(Tracker *t)
{
    while (t->fifo_len > 0) {
        entry_release(t, fifo_at(t, 0));
        t->fifo_head = (t->fifo_head + 1) % t->fifo_cap;
        t->fifo_len--;
    }
}

/* ---- the kinds ring: what is outstanding while tracking is suspended ----------------------- */

/* At most this many kinds per FIFO entry allowed: room for the FIFO's whole content when it
 * overflowed, and for a client that keeps pipelining meanwhile. The ring is charged, a byte
 * per kind, to the FIFO's byte bound and the shared budget. */
#define TRK_KINDS_PER_OUTSTANDING 4
#define TRK_KINDS_MIN 64

static uint8_t *kinds_at(Tracker *t, size_t i)
{
    return &t->kinds[(t->kinds_head + i) % t->kinds_cap];
}

static bool kinds_grow(Tracker *t)
{
    size_t max = t->limits.max_outstanding * TRK_KINDS_PER_OUTSTANDING;
    if (max < TRK_KINDS_MIN || t->authenticating) /* little room for who is not known yet */
        max = TRK_KINDS_MIN;
    size_t cap = t->kinds_cap ? t->kinds_cap * 2 : TRK_KINDS_MIN;
    if (cap > max)
        cap = max;
    if (cap <= t->kinds_cap ||
        !charge(t, &t->fifo_bytes, t->limits.max_outstanding_bytes, cap - t->kinds_cap))
        return false;
    uint8_t *ring = malloc(cap);
    if (!ring) {
        uncharge(t, &t->fifo_bytes, cap - t->kinds_cap);
        return false;
    }
    for (size_t i = 0; i < t->kinds_len; i++)
        ring[i] = *kinds_at(t, i);
    free(t->kinds);
    t->kinds = ring;
    t->kinds_cap = cap;
    t->kinds_head = 0;
    return true;
}

static void kinds_push(Tracker *t, TrkKind kind)
{
    if (!t->kinds_lost && t->kinds_len == t->kinds_cap && !kinds_grow(t))
        t->kinds_lost = true;
    if (t->kinds_lost) {
        /* Order matters: once one kind is lost, none after it may be kept. */
        t->lost_sync_points += is_sync_point(kind);
        return;
    }
    *kinds_at(t, t->kinds_len++) = (uint8_t)kind;
    t->kinds_sync_points += is_sync_point(kind);
    t->kinds_syncs += kind == TRK_SYNC;
    t->kinds_copy_ends += kind == TRK_COPY_END;
}

static TrkKind kinds_pop(Tracker *t)
{
    TrkKind kind = (TrkKind)*kinds_at(t, 0);
    t->kinds_head = (t->kinds_head + 1) % t->kinds_cap;
    t->kinds_len--;
    t->kinds_sync_points -= is_sync_point(kind);
    t->kinds_syncs -= kind == TRK_SYNC;
    t->kinds_copy_ends -= kind == TRK_COPY_END;
    return kind;
}

/* The first kind outstanding, past COPY_END markers that have done their job; -1 if none. */
static int kinds_head_kind(Tracker *t)
{
    while (t->kinds_len > 0 && *kinds_at(t, 0) == TRK_COPY_END)
        kinds_pop(t);
    return t->kinds_len > 0 ? *kinds_at(t, 0) : -1;
}

static void kinds_free(Tracker *t)
{
    uncharge(t, &t->fifo_bytes, t->kinds_cap);
    free(t->kinds);
    t->kinds = NULL;
    t->kinds_cap = t->kinds_head = t->kinds_len = 0;
    t->kinds_sync_points = t->kinds_syncs = t->kinds_copy_ends = 0;
    t->kinds_lost = false;
    t->lost_sync_points = 0;
}

/* Nothing the server will still answer with a ReadyForQuery. */
static bool kinds_answered(const Tracker *t)
{
    return t->kinds_sync_points == 0 && t->lost_sync_points == 0;
}

/* Stops matching replies until every sync point sent so far is answered. What is outstanding
 * is kept as kinds only. */
static void tracker_suspend(Tracker *t)
{
    t->stats.untracked += t->fifo_len;
    t->suspended = true;
    for (size_t i = 0; i < t->fifo_len; i++)
        kinds_push(t, fifo_at(t, i)->kind);
    fifo_clear(t);
    t->client_in_copy = false;
}

static bool fifo_grow(Tracker *t)
{
    size_t cap = t->fifo_cap ? t->fifo_cap * 2 : 4; /* grows with pipelining */
    if (cap > t->limits.max_outstanding)
        cap = t->limits.max_outstanding;
    if (cap <= t->fifo_cap)
        return false;
    TrkEntry *fifo = malloc(cap * sizeof *fifo);
    if (!fifo)
        return false;
    for (size_t i = 0; i < t->fifo_len; i++)
        fifo[i] = *fifo_at(t, i);
    free(t->fifo);
    t->fifo = fifo;
    t->fifo_cap = cap;
    t->fifo_head = 0;
    return true;
}

/* Appends an entry, taking ownership of its references. Returns NULL (releasing them) when
 * tracking is suspended or the FIFO is at its bound. */
static TrkEntry *fifo_push(Tracker *t, TrkKind kind, int64_t now_us, TrkSql *sql, TrkPortal *portal)
{
    if (is_sync_point(kind))
        t->syncs_sent++;
    if (t->suspended) {
        kinds_push(t, kind);
        sql_release(t, sql);
        portal_release(t, portal);
        return NULL;
    }
    if (t->fifo_len == t->fifo_cap && !fifo_grow(t)) {
        sql_release(t, sql);
        portal_release(t, portal);
        tracker_suspend(t);
        t->stats.untracked++;
        kinds_push(t, kind);
        return NULL;
    }
    /* Over a byte bound the entry is still queued, without its text, so replies keep
     * matching exactly (suspending would have to guess what the server answers). */
    size_t cost = sql ? sql->len : 0;
    bool untracked = cost > 0 && !charge(t, &t->fifo_bytes, t->limits.max_outstanding_bytes, cost);
    if (untracked) {
        sql_release(t, sql);
        sql = NULL;
        cost = 0;
        t->stats.untracked++;
    }
    TrkEntry *e = fifo_at(t, t->fifo_len++);
    memset(e, 0, sizeof *e);
    e->charge = cost;
    e->untracked = untracked;
    e->kind = kind;
    e->start_us = now_us;
    e->sql = sql;
    e->portal = portal;
    return e;
}

/* The first entry, skipping COPY_END markers that have done their job. */
static TrkEntry *fifo_head(Tracker *t)
{
    while (t->fifo_len > 0 && fifo_at(t, 0)->kind == TRK_COPY_END) {
        t->fifo_head = (t->fifo_head + 1) % t->fifo_cap;
        t->fifo_len--;
    }
    return t->fifo_len > 0 ? fifo_at(t, 0) : NULL;
}

static void fifo_pop(Tracker *t)
{
    if (t->fifo_len == 0)
        return;
    entry_release(t, fifo_at(t, 0));
    t->fifo_head = (t->fifo_head + 1) % t->fifo_cap;
    t->fifo_len--;
}

/* Removes entry i (0 = head) keeping order; used to drop Syncs the server ignores. */
static void fifo_remove_at(Tracker *t, size_t i)
{
    entry_release(t, fifo_at(t, i));
    for (; i + 1 < t->fifo_len; i++)
        *fifo_at(t, i) = *fifo_at(t, i + 1);
    t->fifo_len--;
}

/* ---- events ---------------------------------------------------------------------------------- */

static void copy_word(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
}

static void emit_event(Tracker *t, TrackerEvent *ev)
{
    ev->conn_id = t->conn_id;
    ev->seq = ++t->stats.events;
    ev->scs_off = t->scs_off;
    t->emit(t->emit_ctx, ev);
}

/* Normalizes a SQL string (all its statements) into one block. NULL when out of memory. */
static TrkNorm *normalize_text(Tracker *t, const TrkSql *sql)
{
    TrackerWorkspace *ws = t->ws;
    SqlnormOptions options = {.scs_off = t->scs_off};
    SqlnormCursor cursor;
    /* Bounded work per message: a longer text is fingerprinted on its prefix. */
    bool cut = sql->len > TRACKER_NORMALIZE_MAX;
    sqlnorm_cursor_init(&cursor, sql->text, cut ? TRACKER_NORMALIZE_MAX : sql->len, &options);
    sqltags_init(&ws->tags);
    size_t n = 0, texts_used = 0;
    SqlnormStatement st;
    while (n < TRK_MAX_STATEMENTS_PER_TEXT &&
           sqlnorm_next(&cursor, ws->out, ws->out_cap, &st, &ws->tags)) {
        size_t len = st.normalized_len;
        if (len > ws->texts_cap - texts_used)
            len = ws->texts_cap - texts_used;
        memcpy(ws->texts + texts_used, st.normalized, len);
        ws->statements[n].fingerprint = st.fingerprint;
        ws->statements[n].values_hash = st.values_hash;
        ws->statements[n].text_offset = texts_used;
        ws->statements[n].text_len = len;
        ws->statements[n].incomplete = st.incomplete || sql->truncated || cut;
        texts_used += len;
        n++;
    }
    if (cursor.pos < cursor.len) /* more statements than we keep: their tags still count */
        sqlnorm_scan_tags(sql->text + cursor.pos, cursor.len - cursor.pos, &options, &ws->tags);

    size_t tag_bytes = 0;
    for (size_t i = 0; i < ws->tags.count; i++)
        tag_bytes += ws->tags.tags[i].key_len + ws->tags.tags[i].value_len;
    size_t size = sizeof(TrkNorm) + n * sizeof(TrkNormStatement) + ws->tags.count * sizeof(SqlTag) +
                  texts_used + tag_bytes;
    TrkNorm *norm;
    if (t->spare_norm && t->spare_norm->size >= size) {
        norm = t->spare_norm;
        size = norm->size;
        t->spare_norm = NULL;
    } else {
        norm = malloc(size);
        if (!norm)
            return NULL;
    }
    norm->size = size;
    norm->n_statements = n;
    norm->statements = (TrkNormStatement *)(norm + 1);
    norm->tags = (SqlTag *)(norm->statements + n);
    norm->n_tags = ws->tags.count;
    norm->text = (char *)(norm->tags + norm->n_tags);
    memcpy(norm->statements, ws->statements, n * sizeof(TrkNormStatement));
    memcpy(norm->text, ws->texts, texts_used);
    char *p = norm->text + texts_used;
    for (size_t i = 0; i < norm->n_tags; i++) {
        const SqlTag *src = &ws->tags.tags[i];
        memcpy(p, src->key, src->key_len);
        norm->tags[i].key = p;
        norm->tags[i].key_len = src->key_len;
        p += src->key_len;
        memcpy(p, src->value, src->value_len);
        norm->tags[i].value = p;
        norm->tags[i].value_len = src->value_len;
        p += src->value_len;
    }
    return norm;
}

/* Fills the event's SQL and normalizer facts for statement `index` of the text. */
static void event_set_sql(Tracker *t, TrackerEvent *ev, TrkSql *sql, uint32_t index, bool fold_bind,
                          uint64_t bind_hash)
{
    ev->application_name = t->application_name;
    ev->application_name_len = t->application_name_len;
    if (!sql)
        return;
    ev->sql = sql->text;
    ev->sql_len = sql->len;
    ev->sql_truncated = sql->truncated;
    if (!sql->norm)
        sql->norm = normalize_text(t, sql);
    const TrkNorm *norm = sql->norm;
    if (!norm || norm->n_statements == 0)
        return;
    /* The server and the normalizer split statements alike; should they ever disagree
     * (e.g. a BEGIN ATOMIC body), the last statement stands in rather than nothing. */
    const TrkNormStatement *st =
        &norm->statements[index < norm->n_statements ? index : norm->n_statements - 1];
    ev->normalized_known = true;
    ev->fingerprint = st->fingerprint;
    ev->values_hash =
        fold_bind ? XXH3_64bits_withSeed(&st->values_hash, sizeof st->values_hash, bind_hash)
                  : st->values_hash;
    ev->normalized = norm->text + st->text_offset;
    ev->normalized_len = st->text_len;
    ev->incomplete = st->incomplete;
    ev->tags = norm->tags;
    ev->n_tags = norm->n_tags;
}

/* Rows the server sent the client: its DataRows, or for a COPY ... TO STDOUT (CopyData
 * sent, no DataRow) the rows its tag counts. A write's tag counts rows it only wrote. */
static uint64_t copy_out_rows(const char *command, size_t command_len, uint64_t bytes,
                              uint64_t data_rows, uint64_t tag_rows)
{
    bool copy = command_len == 4 && memcmp(command, "COPY", 4) == 0;
    return copy && data_rows == 0 && bytes > 0 ? tag_rows : data_rows;
}

/* The statement a QUERY entry is working on completed (CommandComplete) or failed. */
static void emit_query_statement(Tracker *t, TrkEntry *e, int64_t now_us, const char *command,
                                 size_t command_len, uint64_t rows, const char *sqlstate,
                                 bool aborted)
{
    TrackerEvent ev = {0};
    ev.protocol = TRACKER_SIMPLE;
    ev.index = e->stmt_index;
    if (!e->untracked)
        event_set_sql(t, &ev, e->sql, e->stmt_index, false, 0);
    ev.start_us = e->start_us;
    ev.end_us = now_us;
    ev.rows = rows;
    ev.rows_returned = copy_out_rows(command, command_len, e->bytes, e->rows, rows);
    ev.bytes = e->bytes;
    ev.executes = 1;
    ev.aborted = aborted;
    copy_word(ev.command, sizeof ev.command, command, command_len);
    copy_word(ev.sqlstate, sizeof ev.sqlstate, sqlstate, strlen(sqlstate));
    if (!e->untracked)
        emit_event(t, &ev);
    /* the next statement of a multi-statement Query starts where this one ended */
    e->stmt_index++;
    e->start_us = now_us;
    e->rows = 0;
    e->bytes = 0;
}

/* An Execute finished its portal run (CommandComplete, error, or connection loss). */
static void emit_execute(Tracker *t, TrkEntry *e, int64_t now_us, const char *command,
                         size_t command_len, bool has_rows, uint64_t tag_rows, const char *sqlstate,
                         bool aborted)
{
    if (e->untracked)
        return; /* sent while tracking was suspended: matched, never reported */
    TrackerEvent ev = {0};
    TrkPortal *p = e->portal;
    if (!p)
        event_set_sql(t, &ev, NULL, 0, false, 0);
    ev.protocol = TRACKER_EXTENDED;
    ev.start_us = e->start_us;
    ev.end_us = now_us;
    /* The tag counts only the last Execute's rows; earlier suspended ones were counted. */
    ev.rows = has_rows ? tag_rows : e->rows;
    ev.rows_returned = copy_out_rows(command, command_len, e->bytes, e->rows, ev.rows);
    ev.bytes = e->bytes;
    ev.executes = 1;
    if (p) {
        event_set_sql(t, &ev, p->sql, 0, true, p->values_hash);
        ev.statement = p->statement;
        ev.statement_len = p->statement_len;
        ev.bind_values_hash = p->values_hash;
        if (p->run_executes > 0) {
            ev.start_us = p->run_start_us;
            ev.rows += p->run_rows;
            ev.rows_returned += p->run_rows;
            ev.bytes += p->run_bytes;
            ev.executes += p->run_executes;
            p->run_executes = 0;
            p->run_rows = 0;
            p->run_bytes = 0;
        }
    }
    ev.aborted = aborted;
    copy_word(ev.command, sizeof ev.command, command, command_len);
    copy_word(ev.sqlstate, sizeof ev.sqlstate, sqlstate, strlen(sqlstate));
    emit_event(t, &ev);
}

static void emit_function(Tracker *t, TrkEntry *e, int64_t now_us, const char *sqlstate)
{
    TrackerEvent ev = {0};
    event_set_sql(t, &ev, NULL, 0, false, 0);
    ev.protocol = TRACKER_FUNCTION;
    ev.start_us = e->start_us;
    ev.end_us = now_us;
    ev.executes = 1;
    copy_word(ev.sqlstate, sizeof ev.sqlstate, sqlstate, strlen(sqlstate));
    emit_event(t, &ev);
}

/* ---- frontend ------------------------------------------------------------------------------- */

bool tracker_wants_frontend_body(uint8_t type)
{
    switch (type) {
    case 'Q':
    case 'P':
    case 'B':
    case 'E':
    case 'C':
    case 'D':
    case 'f':
        return true;
    default:
        return false;
    }
}

/* Case-insensitive: does the text start (after whitespace) with this keyword? Returns the
 * position after it, or 0. */
static size_t starts_with_keyword(const char *s, size_t len, const char *kw)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    size_t k = strlen(kw);
    if (len - i < k)
        return 0;
    for (size_t j = 0; j < k; j++) {
        char c = s[i + j];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != kw[j])
            return 0;
    }
    i += k;
    if (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_'))
        return 0;
    return i;
}

static bool portal_born_before(void *value, void *ctx)
{
    const TrkPortal *p = value;
    return p->born_after_syncs < *(const uint64_t *)ctx;
}

/* SQL-level statement management: DEALLOCATE name|ALL and DISCARD ALL drop prepared
 * statements the client made with Parse. Only the simple cases; others are left alone. */
static void follow_sql_deallocate(Tracker *t, const char *sql, size_t len)
{
    size_t pos = starts_with_keyword(sql, len, "deallocate");
    if (pos) {
        size_t after = starts_with_keyword(sql + pos, len - pos, "prepare");
        if (after)
            pos += after;
        if (starts_with_keyword(sql + pos, len - pos, "all")) {
            namemap_remove_if(t, &t->statements, NULL, NULL, release_sql_value);
            return;
        }
        while (pos < len && (sql[pos] == ' ' || sql[pos] == '\t' || sql[pos] == '\n'))
            pos++;
        size_t end = pos;
        bool quoted = pos < len && sql[pos] == '"';
        if (quoted) {
            pos++;
            end = pos;
            while (end < len && sql[end] != '"')
                end++;
        } else {
            while (end < len && sql[end] != ';' && sql[end] != ' ' && sql[end] != '\n')
                end++;
        }
        sql_release(t, namemap_take(t, &t->statements, sql + pos, end - pos));
        return;
    }
    pos = starts_with_keyword(sql, len, "discard");
    if (pos && starts_with_keyword(sql + pos, len - pos, "all"))
        namemap_remove_if(t, &t->statements, NULL, NULL, release_sql_value);
}

static void on_query(Tracker *t, const uint8_t *body, size_t have, size_t body_len, int64_t now_us)
{
    /* The text is the body minus its terminating NUL (when captured whole). */
    bool whole = have == body_len;
    size_t len = whole && have > 0 ? have - 1 : have;
    const char *text = (const char *)body;
    bool truncated = !whole;
    TrkSql *sql;
    if (sql_equals(t->last_query, text,
                   len > t->limits.max_sql_bytes ? t->limits.max_sql_bytes : len,
                   truncated || len > t->limits.max_sql_bytes))
        sql = sql_ref(t->last_query);
    else
        sql = sql_new(t, text, len, truncated);
    t->last_query = sql;
    if (whole)
        follow_sql_deallocate(t, text, len);
    fifo_push(t, TRK_QUERY, now_us, sql, NULL);
}

static void on_parse(Tracker *t, const uint8_t *body, size_t have, size_t body_len, int64_t now_us)
{
    PgwParse parse;
    TrkSql *sql = NULL;
    bool have_name = true;
    if (have == body_len && pgw_decode_parse(body, have, &parse)) {
        if (parse.statement.len == 0 &&
            sql_equals(t->unnamed_statement, parse.query.ptr,
                       parse.query.len > t->limits.max_sql_bytes ? t->limits.max_sql_bytes
                                                                 : parse.query.len,
                       parse.query.len > t->limits.max_sql_bytes))
            sql = sql_ref(t->unnamed_statement);
        else
            sql = sql_new(t, parse.query.ptr, parse.query.len, false);
    } else {
        /* Cut by the capture limit: keep the statement name and what we have of the text. */
        size_t pos = 0;
        have_name = pgw_read_cstring(body, have, &pos, &parse.statement);
        if (have_name) {
            const char *q = (const char *)body + pos;
            sql = sql_new(t, q, strnlen(q, have - pos), true);
        }
    }
    TrkEntry *e = fifo_push(t, TRK_PARSE, now_us, sql_ref(sql), NULL);
    /* A text the FIFO could not hold is not remembered by name either: a later Bind then
     * reports unknown SQL, never a stale text (and a failed Parse leaves no name behind). */
    bool keep = sql && !(e && e->untracked);
    if (have_name && parse.statement.len == 0) {
        sql_release(t, t->unnamed_statement);
        t->unnamed_statement = keep ? sql_ref(sql) : NULL;
    } else if (have_name && keep &&
               !namemap_get(&t->statements, parse.statement.ptr, parse.statement.len)) {
        /* An existing name is the server's to reject ("already exists"); keep ours. */
        if (namemap_put(t, &t->statements, t->limits.max_statements, t->limits.max_statement_bytes,
                        parse.statement.ptr, parse.statement.len, sql, sql->len))
            sql_ref(sql);
        else
            t->stats.statements_dropped++;
    }
    sql_release(t, sql);
}

/* A portal object for a Bind. The unnamed portal is refilled in place when nothing else
 * holds it (the common case: its Execute has been answered), so the steady state of the
 * extended protocol allocates nothing. */
static TrkPortal *portal_for_bind(Tracker *t, bool unnamed)
{
    TrkPortal *p = t->unnamed_portal;
    if (unnamed && p && p->refs == 1) {
        sql_release(t, p->sql);
        memset(p, 0, sizeof *p);
        p->refs = 1;
        return p;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->refs = 1;
    if (unnamed) {
        portal_release(t, t->unnamed_portal);
        t->unnamed_portal = p;
    }
    return p;
}

static void on_bind(Tracker *t, const uint8_t *body, size_t have, size_t body_len, int64_t now_us)
{
    PgwBind bind;
    size_t pos = 0;
    /* Only the two names are needed whole; the values are hashed as far as captured. */
    if (pgw_read_cstring(body, have, &pos, &bind.portal) &&
        pgw_read_cstring(body, have, &pos, &bind.statement)) {
        bool unnamed = bind.portal.len == 0;
        if (!unnamed)
            portal_release(t, namemap_take(t, &t->portals, bind.portal.ptr, bind.portal.len));
        TrkPortal *portal = portal_for_bind(t, unnamed);
        if (portal) {
            TrkSql *sql = bind.statement.len == 0
                              ? t->unnamed_statement
                              : namemap_get(&t->statements, bind.statement.ptr, bind.statement.len);
            portal->sql = sql_ref(sql);
            copy_word(portal->statement, sizeof portal->statement, bind.statement.ptr,
                      bind.statement.len);
            portal->statement_len = strlen(portal->statement);
            portal->values_hash = XXH3_64bits_withSeed(body + pos, have - pos, body_len);
            portal->born_after_syncs = t->syncs_sent;
            /* A named portal's only reference is the table's; without room it is dropped
             * (its Execute then reports the SQL as unknown). */
            if (!unnamed &&
                !namemap_put(t, &t->portals, t->limits.max_portals, t->limits.max_portal_bytes,
                             bind.portal.ptr, bind.portal.len, portal, sizeof *portal)) {
                portal_release(t, portal);
                t->stats.portals_dropped++;
            }
        }
    }
    fifo_push(t, TRK_BIND, now_us, NULL, NULL);
}

static void on_execute(Tracker *t, const uint8_t *body, size_t have, int64_t now_us)
{
    PgwExecute exec;
    TrkPortal *portal = NULL;
    if (pgw_decode_execute(body, have, &exec))
        portal = exec.portal.len == 0 ? t->unnamed_portal
                                      : namemap_get(&t->portals, exec.portal.ptr, exec.portal.len);
    fifo_push(t, TRK_EXECUTE, now_us, NULL, portal_ref(portal));
}

static void on_close(Tracker *t, const uint8_t *body, size_t have, int64_t now_us)
{
    PgwTarget target;
    if (pgw_decode_target(body, have, &target) && target.name.len > 0) {
        if (target.kind == 'S')
            sql_release(t, namemap_take(t, &t->statements, target.name.ptr, target.name.len));
        else
            portal_release(t, namemap_take(t, &t->portals, target.name.ptr, target.name.len));
    }
    fifo_push(t, TRK_CLOSE, now_us, NULL, NULL);
}

/* The request a frontend message makes the server answer; -1 for none. */
static int request_kind(uint8_t type)
{
    switch (type) {
    case 'Q':
        return TRK_QUERY;
    case 'P':
        return TRK_PARSE;
    case 'B':
        return TRK_BIND;
    case 'E':
        return TRK_EXECUTE;
    case 'D':
        return TRK_DESCRIBE;
    case 'C':
        return TRK_CLOSE;
    case 'S':
        return TRK_SYNC;
    case 'F':
        return TRK_FUNCTION;
    case 'c':
    case 'f':
        return TRK_COPY_END;
    default:
        return -1;
    }
}

void tracker_on_frontend(Tracker *t, uint8_t type, const uint8_t *body, size_t have,
                         size_t body_len, int64_t now_us)
{
    if (t->authenticating) {
        /* Not even looked at: nothing a client sends before it is authenticated is kept or
         * normalized. Its sync points are answered after authentication, if ever. */
        t->stats.before_auth++;
        int kind = request_kind(type);
        if (kind >= 0) {
            t->syncs_sent += is_sync_point((TrkKind)kind);
            kinds_push(t, (TrkKind)kind);
        }
        return;
    }
    if (t->server_skipping) {
        /* The server discards it unanswered: keep nothing, so no later reply can match it. */
        if (type != 'S') {
            t->stats.skipped++;
            if (t->budget)
                t->budget->skipped++;
            return;
        }
        t->server_skipping = false;
    }
    switch (type) {
    case 'Q':
        on_query(t, body, have, body_len, now_us);
        break;
    case 'P':
        on_parse(t, body, have, body_len, now_us);
        break;
    case 'B':
        on_bind(t, body, have, body_len, now_us);
        break;
    case 'E':
        on_execute(t, body, have, now_us);
        break;
    case 'D':
        fifo_push(t, TRK_DESCRIBE, now_us, NULL, NULL);
        break;
    case 'C':
        on_close(t, body, have, now_us);
        break;
    case 'S':
        if (!t->client_in_copy)
            fifo_push(t, TRK_SYNC, now_us, NULL, NULL);
        break;
    case 'F':
        fifo_push(t, TRK_FUNCTION, now_us, NULL, NULL);
        break;
    case 'c':
    case 'f':
        if (t->client_in_copy)
            t->client_in_copy = false;
        else
            fifo_push(t, TRK_COPY_END, now_us, NULL, NULL);
        break;
    default:
        /* Flush, CopyData, Terminate and auth responses ask for nothing to be matched. */
        break;
    }
}

/* ---- backend ------------------------------------------------------------------------------- */

bool tracker_wants_backend_body(uint8_t type)
{
    switch (type) {
    case 'C':
    case 'E':
    case 'Z':
    case 'S':
        return true;
    default:
        return false;
    }
}

/* Replies stopped matching what was asked: stop attributing until things line up again. */
static void tracker_desync(Tracker *t)
{
    t->stats.desyncs++;
    tracker_suspend(t);
}

static void on_command_complete(Tracker *t, TrkEntry *e, const uint8_t *body, size_t have,
                                int64_t now_us)
{
    PgwCommandComplete cc = {0};
    if (!pgw_decode_command_complete(body, have, &cc)) {
        cc.command.ptr = "";
        cc.command.len = 0;
    }
    if (e->kind == TRK_QUERY) {
        emit_query_statement(t, e, now_us, cc.command.ptr, cc.command.len,
                             cc.has_rows ? cc.rows : e->rows, "", false);
    } else if (e->kind == TRK_EXECUTE) {
        emit_execute(t, e, now_us, cc.command.ptr, cc.command.len, cc.has_rows, cc.rows, "", false);
        fifo_pop(t);
    } else {
        tracker_desync(t);
    }
}

/* In the extended protocol an error makes the server skip everything up to Sync. The first
 * Execute among the skipped messages is the statement that failed (e.g. at Parse). */
static void on_extended_error(Tracker *t, TrkEntry *e, const char *sqlstate, int64_t now_us)
{
    bool emitted = false;
    if (e->kind == TRK_EXECUTE) {
        emit_execute(t, e, now_us, "", 0, false, 0, sqlstate, false);
        emitted = true;
    }
    while ((e = fifo_head(t)) != NULL && e->kind != TRK_SYNC) {
        if (e->kind == TRK_PARSE && e->sql) {
            /* The statement was never created on the server: forget its name. */
            namemap_remove_if(t, &t->statements, value_is, e->sql, release_sql_value);
        }
        if (!emitted && e->kind == TRK_EXECUTE) {
            emit_execute(t, e, now_us, "", 0, false, 0, sqlstate, false);
            emitted = true;
        }
        fifo_pop(t);
    }
    /* No Sync sent yet: whatever the client sends until its Sync will be skipped too. */
    if (!e)
        t->server_skipping = true;
}

static void on_error(Tracker *t, TrkEntry *e, const uint8_t *body, size_t have, int64_t now_us)
{
    PgwStr code;
    char sqlstate[6] = "XX000";
    if (pgw_error_field(body, have, 'C', &code))
        copy_word(sqlstate, sizeof sqlstate, code.ptr, code.len);
    t->client_in_copy = false;
    switch (e->kind) {
    case TRK_QUERY:
        if (!e->failed)
            emit_query_statement(t, e, now_us, "", 0, 0, sqlstate, false);
        e->failed = true;
        break;
    case TRK_FUNCTION:
        emit_function(t, e, now_us, sqlstate);
        break;
    case TRK_SYNC:
        /* e.g. a deferred constraint failing at the implicit commit: no statement to blame */
        break;
    default:
        on_extended_error(t, e, sqlstate, now_us);
        break;
    }
}

static void on_backend_suspended(Tracker *t, uint8_t type);

static void on_ready_for_query(Tracker *t, TrkEntry *e, const uint8_t *body, size_t have)
{
    if (!e)
        return; /* the unsolicited one after authentication */
    if (!is_sync_point(e->kind)) {
        tracker_desync(t);
        /* This very message answers the oldest sync point outstanding: it no longer is. */
        on_backend_suspended(t, 'Z');
        return;
    }
    fifo_pop(t);
    t->syncs_answered++;
    if (have >= 1 && body[0] == 'I') {
        /* Outside a transaction no portal survives, except those bound after this point. */
        uint64_t answered = t->syncs_answered;
        namemap_remove_if(t, &t->portals, portal_born_before, &answered, release_portal_value);
    }
}

/* CopyInResponse: the server now ignores Sync until the client ends the COPY. */
static void on_copy_in(Tracker *t)
{
    for (size_t i = 1; i < t->fifo_len;) {
        TrkKind kind = fifo_at(t, i)->kind;
        if (kind == TRK_COPY_END)
            return; /* the client already ended the COPY; later Syncs count */
        if (kind == TRK_SYNC) {
            fifo_remove_at(t, i);
            t->syncs_sent--;
        } else {
            i++;
        }
    }
    t->client_in_copy = true;
}

static void on_parameter_status(Tracker *t, const uint8_t *body, size_t have)
{
    PgwParameterStatus ps;
    if (!pgw_decode_parameter_status(body, have, &ps))
        return;
    static const char scs[] = "standard_conforming_strings";
    static const char app[] = "application_name";
    if (ps.name.len == sizeof scs - 1 && memcmp(ps.name.ptr, scs, sizeof scs - 1) == 0) {
        t->scs_off = ps.value.len == 3 && memcmp(ps.value.ptr, "off", 3) == 0;
    } else if (ps.name.len == sizeof app - 1 && memcmp(ps.name.ptr, app, sizeof app - 1) == 0) {
        size_t len = ps.value.len < sizeof t->application_name - 1 ? ps.value.len
                                                                   : sizeof t->application_name - 1;
        memcpy(t->application_name, ps.value.ptr, len);
        t->application_name[len] = 0;
        t->application_name_len = len;
    }
}

/* Tracking starts again: what is still outstanding (no sync point, or the ring would not have
 * been answered) goes to the FIFO as untracked entries, so that its replies still match. */
static void tracker_resume(Tracker *t)
{
    uint8_t *ring = t->kinds;
    size_t cap = t->kinds_cap, head = t->kinds_head, len = t->kinds_len;
    bool keep = !t->kinds_lost && len <= t->limits.max_outstanding;
    t->kinds = NULL;
    t->kinds_cap = 0;
    kinds_free(t); /* charges nothing now: the detached ring is uncharged below */
    t->suspended = false;
    for (size_t i = 0; keep && i < len; i++) {
        TrkEntry *e = fifo_push(t, (TrkKind)ring[(head + i) % cap], 0, NULL, NULL);
        if (e)
            e->untracked = true;
    }
    if (!keep)
        t->stats.untracked += len;
    uncharge(t, &t->fifo_bytes, cap);
    free(ring);
}

/* CopyInResponse while suspended: as on_copy_in, on the kinds. */
static void kinds_on_copy_in(Tracker *t)
{
    if (kinds_head_kind(t) < 0)
        return;
    if (t->kinds_syncs == 0) {
        /* nothing to drop: only whether the client already ended the COPY matters */
        t->client_in_copy = t->kinds_copy_ends == 0;
        return;
    }
    size_t w = 1, i = 1;
    bool ended = false;
    for (; i < t->kinds_len; i++) {
        uint8_t kind = *kinds_at(t, i);
        if (kind == TRK_COPY_END) {
            ended = true;
            break;
        }
        if (kind == TRK_SYNC) {
            t->kinds_syncs--;
            t->kinds_sync_points--;
            t->syncs_sent--;
            continue;
        }
        *kinds_at(t, w++) = kind;
    }
    for (; i < t->kinds_len; i++)
        *kinds_at(t, w++) = *kinds_at(t, i);
    t->kinds_len = w;
    if (!ended)
        t->client_in_copy = true;
}

/* While suspended, replies are followed by kind only: enough to know which ReadyForQuery
 * answers the last sync point outstanding, including after an error in the extended protocol,
 * when the server skips everything (Queries too) until the next Sync. */
static void on_backend_suspended(Tracker *t, uint8_t type)
{
    int head = kinds_head_kind(t);
    switch (type) {
    case '1':
    case '2':
    case '3':
        if (head == (type == '1' ? TRK_PARSE : type == '2' ? TRK_BIND : TRK_CLOSE))
            kinds_pop(t);
        return;
    case 'T':
    case 'n':
        if (head == TRK_DESCRIBE)
            kinds_pop(t);
        return;
    case 'C':
    case 'I':
    case 's':
        if (head == TRK_EXECUTE)
            kinds_pop(t);
        return;
    case 'E':
        t->client_in_copy = false;
        if (head < 0 || head == TRK_QUERY || head == TRK_FUNCTION || head == TRK_SYNC)
            return; /* answered by a ReadyForQuery of its own, or not ours to follow */
        while ((head = kinds_head_kind(t)) >= 0 && head != TRK_SYNC)
            kinds_pop(t);
        /* No Sync sent yet: what the client sends until its Sync is skipped too. (Past the
         * ring's bound the Sync may be among the kinds lost: nothing can be said then.) */
        if (head < 0 && !t->kinds_lost)
            t->server_skipping = true;
        return;
    case 'G':
        kinds_on_copy_in(t);
        return;
    case 'Z':
        t->syncs_answered++;
        if (t->kinds_sync_points > 0) {
            while (!is_sync_point(kinds_pop(t)))
                ;
        } else if (t->lost_sync_points > 0) {
            while (t->kinds_len > 0) /* all sent before the sync point answered */
                kinds_pop(t);
            t->lost_sync_points--;
        }
        if (kinds_answered(t))
            tracker_resume(t);
        return;
    default:
        return;
    }
}

void tracker_on_backend(Tracker *t, uint8_t type, const uint8_t *body, size_t have, size_t body_len,
                        int64_t now_us)
{
    if (type == 'S') {
        on_parameter_status(t, body, have);
        return;
    }
    if (t->authenticating) {
        if (type == 'Z') {
            /* Startup is over. Requests sent before it are answered next: wait them out. */
            t->authenticating = false;
            if (!kinds_answered(t)) {
                t->stats.untracked += t->kinds_sync_points + t->lost_sync_points;
                t->suspended = true;
            } else if (t->kinds) {
                tracker_resume(t);
            }
        }
        return;
    }
    if (t->suspended) {
        on_backend_suspended(t, type);
        return;
    }
    TrkEntry *e = fifo_head(t);
    switch (type) {
    case 'D': /* DataRow */
    case 'd': /* CopyData */
        if (e) {
            e->rows += type == 'D';
            e->bytes += body_len + 5;
        }
        return;
    case '1': /* ParseComplete */
    case '2': /* BindComplete */
    case '3': /* CloseComplete */
        if (e && e->kind == (type == '1' ? TRK_PARSE : type == '2' ? TRK_BIND : TRK_CLOSE))
            fifo_pop(t);
        else
            tracker_desync(t);
        return;
    case 'T': /* RowDescription: ends a Describe, or heads a Query's result */
    case 'n': /* NoData */
        if (e && e->kind == TRK_DESCRIBE)
            fifo_pop(t);
        return;
    case 'C':
        if (e)
            on_command_complete(t, e, body, have, now_us);
        return;
    case 'I': /* EmptyQueryResponse */
        if (e && e->kind == TRK_EXECUTE)
            fifo_pop(t);
        return;
    case 's': /* PortalSuspended: the run continues with a later Execute */
        if (e && e->kind == TRK_EXECUTE) {
            TrkPortal *p = e->portal;
            if (p) {
                if (p->run_executes == 0)
                    p->run_start_us = e->start_us;
                p->run_executes++;
                p->run_rows += e->rows;
                p->run_bytes += e->bytes;
            }
            fifo_pop(t);
        } else {
            tracker_desync(t);
        }
        return;
    case 'E':
        if (e)
            on_error(t, e, body, have, now_us);
        return;
    case 'V': /* FunctionCallResponse */
        if (e && e->kind == TRK_FUNCTION)
            emit_function(t, e, now_us, "");
        return;
    case 'G': /* CopyInResponse */
        if (e)
            on_copy_in(t);
        return;
    case 'Z':
        on_ready_for_query(t, e, body, have);
        return;
    default:
        /* Notices, notifications, parameter status, auth, key data, CopyOut/CopyBoth
         * responses: asynchronous or informational, never the answer to a request. */
        return;
    }
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

TrackerWorkspace *tracker_workspace_new(size_t max_sql_bytes)
{
    TrackerWorkspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->out_cap = sqlnorm_output_bound(
        max_sql_bytes < TRACKER_NORMALIZE_MAX ? max_sql_bytes : TRACKER_NORMALIZE_MAX);
    ws->texts_cap = ws->out_cap;
    ws->hash_seed = hashseed_random();
    ws->out = malloc(ws->out_cap);
    ws->texts = malloc(ws->texts_cap);
    if (!ws->out || !ws->texts) {
        tracker_workspace_free(ws);
        return NULL;
    }
    return ws;
}

void tracker_workspace_set_hash_seed(TrackerWorkspace *ws, uint64_t seed)
{
    ws->hash_seed = seed;
}

void tracker_workspace_free(TrackerWorkspace *ws)
{
    if (!ws)
        return;
    free(ws->out);
    free(ws->texts);
    free(ws);
}

Tracker *tracker_new(uint64_t conn_id, const TrackerLimits *limits, TrackerWorkspace *workspace,
                     TrackerBudget *budget, TrackerEmitFn emit, void *emit_ctx)
{
    Tracker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ws = workspace;
    t->statements.seed = workspace->hash_seed;
    t->portals.seed = workspace->hash_seed;
    t->budget = budget;
    t->conn_id = conn_id;
    t->limits = *limits;
    t->emit = emit;
    t->emit_ctx = emit_ctx;
    return t;
}

void tracker_free(Tracker *t, int64_t now_us)
{
    if (!t)
        return;
    /* Statements the server was executing when the connection ended are reported, marked
     * aborted, so a client killed mid-query still shows up in the tallies. */
    TrkEntry *e;
    if (!t->suspended && (e = fifo_head(t)) != NULL) {
        if (e->kind == TRK_QUERY && !e->failed)
            emit_query_statement(t, e, now_us, "", 0, e->rows, "08006", true);
        else if (e->kind == TRK_EXECUTE)
            emit_execute(t, e, now_us, "", 0, false, 0, "08006", true);
    }
    fifo_clear(t);
    free(t->fifo);
    kinds_free(t);
    namemap_free(t, &t->statements, release_sql_value);
    namemap_free(t, &t->portals, release_portal_value);
    sql_release(t, t->unnamed_statement);
    portal_release(t, t->unnamed_portal);
    free(t->spare);
    free(t->spare_norm);
    free(t);
}

void tracker_await_authentication(Tracker *t)
{
    t->authenticating = true;
}

const TrackerStats *tracker_stats(const Tracker *t)
{
    return &t->stats;
}

bool tracker_is_idle(const Tracker *t)
{
    return t->suspended ? kinds_answered(t) : t->fifo_len == 0;
}

static size_t namemap_max_chain(const NameMap *map)
{
    size_t longest = 0;
    for (size_t b = 0; map->buckets && b < NAMEMAP_BUCKETS; b++) {
        size_t n = 0;
        for (const NameNode *node = map->buckets[b]; node; node = node->next)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}

size_t tracker_max_name_chain(const Tracker *t)
{
    size_t s = namemap_max_chain(&t->statements), p = namemap_max_chain(&t->portals);
    return s > p ? s : p;
}

bool tracker_scs_off(const Tracker *t)
{
    return t->scs_off;
}
