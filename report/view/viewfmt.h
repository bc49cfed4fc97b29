/* report/view/viewfmt — small formatting helpers shared by the report formats.
 *
 * Owns: how pgtally prints durations, sizes and times to people, one-line SQL, the folding
 * of a request's timeline into runs of one fingerprint, and writing JSON / HTML / Markdown
 * strings safely: the one place that decides how control characters and bytes that are not
 * UTF-8 are shown. Pure except for the FILE * writers. */
#ifndef PGTALLY_REPORT_VIEWFMT_H
#define PGTALLY_REPORT_VIEWFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "report/reader.h"

/* "0.04 ms", "12.3 ms", "1.24 s", "3m05s": ASCII only, at most 9 characters. */
void viewfmt_duration(char *out, size_t cap, uint64_t us);

/* "812 B", "3.2 kB", "14.0 MB". */
void viewfmt_bytes(char *out, size_t cap, uint64_t bytes);

/* "2,500": a count with thousands separators. */
void viewfmt_count(char *out, size_t cap, uint64_t n);

/* What every format calls the requests that carried no route label. The same text is
 * accepted back as `--route` (viewfmt_route_arg), so a name can be copied from any output. */
#define VIEW_NO_ROUTE "(no route)"

/* `route`, or VIEW_NO_ROUTE when it is empty. */
const char *viewfmt_route(const char *route);

/* A route given on the command line: VIEW_NO_ROUTE (or "") selects the unlabelled requests
 * (""), anything else is itself. */
const char *viewfmt_route_arg(const char *arg);

/* Why a top finding ranks where it does, in one line: the DB time it stands for (cost_us,
 * what it is ranked by), what was found ("50 calls in 5 requests, up to 10 in one"; "up to
 * 2,500 rows returned by one execution"), and its rows and bytes returned. */
void viewfmt_finding_why(char *out, size_t cap, const ReaderTopFinding *f);

/* "2024-05-01 12:00:03 UTC" ("-" for 0). */
void viewfmt_time(char *out, size_t cap, int64_t us);

/* Bytes from the report file (SQL, tags, route names, request ids) reach terminals, CI logs
 * and pull-request comments, so every text and Markdown writer below shows them the one way
 * viewfmt_safe_char does:
 *   - a control character (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F: ESC, CR, BEL, CSI
 *     ...) is written as `\xNN`, its code point in two hex digits;
 *   - a byte that is not part of valid UTF-8 is written as U+FFFD;
 *   - everything else (printable ASCII, valid UTF-8 from U+00A0 up) is written as it is.
 * One-line writers first fold whitespace (space, tab, newline, CR, FF, VT) into one space. */

/* Longest output of viewfmt_safe_char: "\xNN" or one UTF-8 character, plus a NUL. */
#define VIEWFMT_SAFE_MAX 5

/* Writes the safe form of the character at s (len > 0 bytes left) into out as a C string;
 * returns how many input bytes it stands for (>= 1). */
size_t viewfmt_safe_char(const unsigned char *s, size_t len, char out[VIEWFMT_SAFE_MAX]);

/* Writes `s` for a terminal or log line: on one line, made safe as above. */
void viewfmt_text(FILE *out, const char *s);

/* Copies `s` into out on one line (whitespace runs become one space, made safe as above) and,
 * when it is longer than `width` characters, cuts it and ends it with "...". */
void viewfmt_one_line(char *out, size_t cap, const char *s, size_t width);

/* Splits `s` (made one line first) into lines of at most `width` characters, breaking at
 * spaces where possible; at most `max_lines`, the last ending in "..." when cut. Calls
 * `emit(line, len, ctx)` per line. */
void viewfmt_wrap(const char *s, size_t width, size_t max_lines,
                  void (*emit)(const char *line, size_t len, void *ctx), void *ctx);

/* A run of consecutive statements of one fingerprint in a timeline. */
typedef struct ViewFold {
    size_t first; /* index of the first statement */
    size_t count; /* statements folded ("x20") */
    uint64_t duration_us, rows, bytes;
    size_t errors;
} ViewFold;

/* Folds consecutive repeats of one fingerprint. Returns a malloc'd array (*n entries), or
 * NULL with *n = 0 when the timeline is empty or memory ran out. */
ViewFold *viewfmt_fold(const ReaderTimeline *t, size_t *n);

/* Writes `s` as a JSON string, quotes included (json_escape does the escaping). */
void viewfmt_json_str(FILE *out, const char *s);

/* Writes s escaped for HTML and XML 1.0 text and attributes: & < > " ' as entities, newline
 * and tab as they are, everything else made safe as above (XML 1.0 cannot hold most control
 * characters, not even escaped). */
void viewfmt_xml(FILE *out, const char *s);

/* Writes `s` for a Markdown table cell: on one line, made safe, `|` and `\` escaped, as
 * inline code when `code` (with a fence longer than any backtick run inside). */
void viewfmt_md_cell(FILE *out, const char *s, bool code);

/* Writes `s` as a fenced Markdown code block with the info string `info` ("sql"): the fence
 * is one backtick longer than the longest run of backticks in `s` (at least three), so
 * nothing inside can end it; lines are kept, every other character made safe. */
void viewfmt_md_code_block(FILE *out, const char *info, const char *s);

/* As viewfmt_one_line, but a SELECT too long for `width` first loses its column list
 * ("select … 14 columns … from orders where id = $1"), so the table and the WHERE
 * clause stay in view; only then is the tail cut. */
void viewfmt_sql_abbrev(char *out, size_t cap, const char *sql, size_t width);

/* Longest repeating pattern viewfmt_fold_cycles looks for: (A, B, C) x n. */
#define VIEWFMT_CYCLE_MAX_PERIOD 3

/* A run of folds that repeats a pattern: folds[first .. first+period) shown once, "x repeats".
 * A fold that is part of no pattern is a cycle of period 1 and 1 repeat. */
typedef struct ViewCycle {
    size_t first;   /* index of the first fold */
    size_t period;  /* folds in the pattern */
    size_t repeats; /* times the pattern runs in a row */
} ViewCycle;

/* Folds alternating runs of folds (A, B, A, B ...: an N+1 over two tables) into patterns of up
 * to VIEWFMT_CYCLE_MAX_PERIOD folds, each fold matching in fingerprint and count. Returns a
 * malloc'd array (*n entries) covering every fold in order, or NULL with *n = 0 when there are
 * no folds or memory ran out. */
ViewCycle *viewfmt_fold_cycles(const ReaderTimeline *t, const ViewFold *folds, size_t n_folds,
                               size_t *n);

/* Writes `s` percent-encoded for a URL's path segment or query value (everything but
 * A-Z a-z 0-9 - _ . ~ encoded), so it is also safe inside an HTML attribute. */
void viewfmt_url(FILE *out, const char *s);

#endif
