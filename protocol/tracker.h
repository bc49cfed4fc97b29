/* protocol/tracker — matches server replies to what the client asked, per connection.
 *
 * Owns: the FIFO of outstanding requests (Query, Parse, Bind, Describe, Execute, Close, Sync,
 * FunctionCall), the connection's prepared-statement and portal tables (name -> SQL), and
 * turning the server's replies into one completed-statement event per executed statement.
 * Pure: no I/O; the session feeds it complete (or capped) message bodies with a timestamp.
 * All tables are bounded by a count and by bytes, per connection, and every tracker of a loop
 * also charges what it keeps to one shared TrackerBudget; what does not fit is counted, never
 * grown without limit. Nothing is kept for messages the server will never answer: those sent
 * before authentication completed, and those it skips after an extended-protocol error. */
#ifndef PGTALLY_PROTOCOL_TRACKER_H
#define PGTALLY_PROTOCOL_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sqltags.h"

typedef enum TrackerProtocol {
    TRACKER_SIMPLE,
    TRACKER_EXTENDED,
    TRACKER_FUNCTION,
} TrackerProtocol;

/* One executed statement. Pointers are valid only during the callback. */
typedef struct TrackerEvent {
    uint64_t conn_id;
    uint64_t seq; /* per-connection event number, from 1 */
    TrackerProtocol protocol;
    const char *statement; /* prepared statement name ("" unnamed); NULL for simple */
    size_t statement_len;
    uint32_t index;  /* position within a multi-statement simple Query */
    const char *sql; /* whole Query text (simple) or the Parse text; NULL if unknown */
    size_t sql_len;
    bool sql_truncated; /* the client sent more SQL than the capture limit */
    bool scs_off;       /* standard_conforming_strings was off when it ran */
    int64_t start_us;
    int64_t end_us;
    uint64_t rows;             /* CommandComplete's row count (rows written or returned);
                                  the DataRows seen when the tag has none */
    uint64_t rows_returned;    /* rows the server sent the client: its DataRows (the tag's
                                  count for COPY TO STDOUT); rows a write (INSERT ... SELECT
                                  without RETURNING) only wrote are not here */
    uint64_t bytes;            /* DataRow / CopyData bytes the server sent for it */
    uint64_t bind_values_hash; /* hash of the Bind parameters (extended), 0 otherwise */
    char command[16];          /* CommandComplete's command word; "" on error */
    char sqlstate[6];          /* "" unless it failed */
    uint32_t executes;         /* Execute messages in this portal run (1 for simple) */
    bool aborted;              /* the connection ended before the statement completed */

    /* From the normalizer (computed once per SQL text, at its first execution): */
    bool normalized_known;  /* false when the SQL is unknown */
    uint64_t fingerprint;   /* F of this statement */
    uint64_t values_hash;   /* V, with the Bind parameters folded in (extended) */
    const char *normalized; /* N */
    size_t normalized_len;
    bool incomplete;    /* the SQL was cut or ends inside a literal/comment */
    const SqlTag *tags; /* tags from comments anywhere in the SQL string */
    size_t n_tags;
    const char *application_name; /* the session's, from ParameterStatus; "" if none */
    size_t application_name_len;
} TrackerEvent;

typedef void (*TrackerEmitFn)(void *ctx, const TrackerEvent *event);

/* Per-connection bounds. A byte bound of 0 means none (the count bounds still hold). */
typedef struct TrackerLimits {
    size_t max_sql_bytes;         /* SQL text kept per statement (longer is truncated) */
    size_t max_outstanding;       /* FIFO entries before tracking is suspended */
    size_t max_outstanding_bytes; /* SQL bytes held by FIFO entries, likewise */
    size_t max_statements;        /* named prepared statements remembered */
    size_t max_statement_bytes;   /* their names and SQL texts */
    size_t max_portals;           /* named portals remembered */
    size_t max_portal_bytes;      /* their names and bookkeeping */
} TrackerLimits;

/* Shared by every tracker of one loop and owned by the loop's owner: a byte bound over what
 * all of them keep (the same bytes the per-connection byte bounds count), and totals. */
typedef struct TrackerBudget {
    size_t limit;     /* bytes; 0 = no shared bound */
    size_t used;      /* bytes charged now */
    uint64_t hits;    /* times something was not kept because the shared bound was reached */
    uint64_t skipped; /* messages the server skipped until Sync, over all connections */
} TrackerBudget;

typedef struct TrackerStats {
    uint64_t events;
    uint64_t untracked;          /* requests not tracked because a bound was hit */
    uint64_t desyncs;            /* times the FIFO was lost and resynchronised */
    uint64_t statements_dropped; /* named statements not remembered (table full) */
    uint64_t portals_dropped;    /* named portals not remembered (table full) */
    uint64_t skipped;            /* messages the server skipped until Sync (nothing kept) */
    uint64_t before_auth;        /* messages sent before authentication completed */
    size_t bytes;                /* bytes charged now (FIFO SQL, statements, portals) */
} TrackerStats;

typedef struct Tracker Tracker;

/* Scratch memory for normalizing, shared by the trackers of one thread (sized for the
 * largest SQL text kept). Returns NULL on allocation failure. */
typedef struct TrackerWorkspace TrackerWorkspace;
TrackerWorkspace *tracker_workspace_new(size_t max_sql_bytes);
void tracker_workspace_free(TrackerWorkspace *workspace);
/* The name tables (prepared statements, portals) hash names the client chooses, with a seed
 * drawn at random by tracker_workspace_new so that no client can pick names that collide.
 * Tests and benchmarks may fix it; trackers made afterwards use it. */
void tracker_workspace_set_hash_seed(TrackerWorkspace *workspace, uint64_t seed);

/* The longest SQL prefix normalized: a longer text is fingerprinted on this prefix and flagged
 * incomplete, whatever max_sql_bytes keeps, so one message costs the loop a bounded time. */
#define TRACKER_NORMALIZE_MAX 65536

/* Returns NULL on allocation failure. The workspace (and the budget, when not NULL) must
 * outlive the tracker. */
Tracker *tracker_new(uint64_t conn_id, const TrackerLimits *limits, TrackerWorkspace *workspace,
                     TrackerBudget *budget, TrackerEmitFn emit, void *emit_ctx);

/* The connection has not authenticated yet (the proxy starts tracking at the startup packet):
 * until the server's first ReadyForQuery after AuthenticationOk, frontend messages are only
 * counted (stats.before_auth); nothing of them is kept, normalized or reported, and the
 * server's answers to them, should authentication succeed, are not matched. */
void tracker_await_authentication(Tracker *tracker);
/* Emits outstanding executing statements as aborted, then frees everything. */
void tracker_free(Tracker *tracker, int64_t now_us);

/* A frontend message. `body` holds the first `have` bytes of a body of `body_len` bytes
 * (have < body_len when the capture limit cut it). Body must be well-formed when complete
 * (the session checks with pgw_frontend_body_problem first). */
void tracker_on_frontend(Tracker *tracker, uint8_t type, const uint8_t *body, size_t have,
                         size_t body_len, int64_t now_us);

/* A backend message; as above. DataRow / CopyData need no body (pass have = 0). */
void tracker_on_backend(Tracker *tracker, uint8_t type, const uint8_t *body, size_t have,
                        size_t body_len, int64_t now_us);

/* True when the tracker wants the body of this message type (decides what is captured). */
bool tracker_wants_frontend_body(uint8_t type);
bool tracker_wants_backend_body(uint8_t type);

const TrackerStats *tracker_stats(const Tracker *tracker);

/* The longest chain in one bucket of the connection's statement and portal tables. */
size_t tracker_max_name_chain(const Tracker *tracker);

/* True when every request the client sent has been answered (nothing is running). */
bool tracker_is_idle(const Tracker *tracker);

/* Session facts the tracker follows from ParameterStatus. */
bool tracker_scs_off(const Tracker *tracker);

#endif
