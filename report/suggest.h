/* report/suggest — the batched form of an N+1 statement, as a hint for the reader.
 *
 * Owns: recognising a normalized statement of the shape `select|delete ... where col = $n`
 * (one placeholder, compared by equality with a column; an optional `limit $m`, which a
 * batched query cannot keep, is dropped) and rewriting it to fetch every value at once:
 * `col = any($1)` (one array parameter) or `col in ($1, $2, ...)`. Pure text in, text out;
 * no SQL parser: anything it does not recognise gets no suggestion rather than a wrong one. */
#ifndef PGTALLY_REPORT_SUGGEST_H
#define PGTALLY_REPORT_SUGGEST_H

#include <stdbool.h>
#include <stddef.h>

typedef enum SuggestStyle {
    SUGGEST_ANY, /* where col = any($1)            (one array parameter, Postgres) */
    SUGGEST_IN,  /* where col in ($1, $2, ...)     (any SQL database) */
} SuggestStyle;

/* Writes the batched form of `normalized` (pgtally's normalized SQL) into out and returns
 * true; returns false (out = "") when the statement is not of the recognised shape or the
 * result does not fit in `cap`. */
bool suggest_batched(const char *normalized, SuggestStyle style, char *out, size_t cap);

#endif
