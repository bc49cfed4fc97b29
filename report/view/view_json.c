/* report/view/view_json — the JSON report: one document, the contract other tools read
 * (a contract: every field is documented in docs/report-format.md). Fields
 * are only ever added; a breaking change bumps "format_version". */
#include <inttypes.h>
#include <string.h>

#include "report/suggest.h"
#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

#define JSON_FORMAT_VERSION 1

static void key(FILE *out, const char *k)
{
    viewfmt_json_str(out, k);
    fputc(':', out);
}

static void u64_field(FILE *out, const char *k, uint64_t v, bool comma)
{
    key(out, k);
    fprintf(out, "%" PRIu64 "%s", v, comma ? "," : "");
}

static void i64_field(FILE *out, const char *k, int64_t v, bool comma)
{
    key(out, k);
    fprintf(out, "%" PRId64 "%s", v, comma ? "," : "");
}

static void str_field(FILE *out, const char *k, const char *v, bool comma)
{
    key(out, k);
    viewfmt_json_str(out, v);
    if (comma)
        fputc(',', out);
}

static void bool_field(FILE *out, const char *k, bool v, bool comma)
{
    key(out, k);
    fprintf(out, "%s%s", v ? "true" : "false", comma ? "," : "");
}

/* A 16-hex fingerprint, or null for request-level findings. */
static void fingerprint_field(FILE *out, const char *k, const char *fp, bool comma)
{
    key(out, k);
    if (fp[0])
        viewfmt_json_str(out, fp);
    else
        fputs("null", out);
    if (comma)
        fputc(',', out);
}

static void suggestion_field(FILE *out, const char *kind, const char *normalized)
{
    char any[4096], in[4096];
    key(out, "suggestion");
    if (strcmp(kind, "n_plus_one") == 0 &&
        suggest_batched(normalized, SUGGEST_ANY, any, sizeof any) &&
        suggest_batched(normalized, SUGGEST_IN, in, sizeof in)) {
        fputc('{', out);
        str_field(out, "any", any, true);
        str_field(out, "in", in, false);
        fputc('}', out);
    } else {
        fputs("null", out);
    }
}

static void write_run(FILE *out, const ViewData *d)
{
    const char *why = d->completeness;
    bool complete = d->complete;
    key(out, "run");
    fputc('{', out);
    i64_field(out, "id", d->run.id, true);
    i64_field(out, "started_us", d->run.started_us, true);
    key(out, "ended_us");
    if (d->run.ended_us)
        fprintf(out, "%" PRId64 ",", d->run.ended_us);
    else
        fputs("null,", out);
    str_field(out, "version", d->run.version, true);
    bool_field(out, "complete", complete, true);
    str_field(out, "completeness", why, true);
    u64_field(out, "statements_seen", d->run.statements, true);
    u64_field(out, "requests_finished", d->run.requests, true);
    u64_field(out, "untracked_statements", d->run.untracked_statements, true);
    key(out, "settings");
    fputs(d->run.settings_json && *d->run.settings_json ? d->run.settings_json : "{}", out);
    fputc('}', out);
}

static void write_summary(FILE *out, const ViewData *d)
{
    uint64_t queries = 0, db = 0, dups = 0, kinds[3] = {0, 0, 0};
    for (size_t i = 0; i < d->requests.n; i++) {
        const ReaderRequest *r = &d->requests.items[i];
        queries += r->queries;
        db += r->db_time_us;
        dups += r->duplicates;
        for (size_t k = 0; k < r->n_findings; k++) {
            const char *kind = r->findings[k].kind;
            kinds[strcmp(kind, "n_plus_one") == 0 ? 0 : strcmp(kind, "duplicate") == 0 ? 1 : 2]++;
        }
    }
    key(out, "summary");
    fputc('{', out);
    u64_field(out, "requests", d->requests.n, true);
    u64_field(out, "queries", queries, true);
    u64_field(out, "duplicates", dups, true);
    u64_field(out, "db_time_us", db, true);
    u64_field(out, "routes", d->routes.n, true);
    key(out, "findings");
    fprintf(out,
            "{\"n_plus_one\":%" PRIu64 ",\"duplicate\":%" PRIu64 ",\"overfetch\":%" PRIu64 "},",
            kinds[0], kinds[1], kinds[2]);
    u64_field(out, "dropped", reader_run_dropped(&d->run), true);
    u64_field(out, "dropped_requests", d->run.dropped_requests, true);
    u64_field(out, "dropped_statements", d->run.dropped_statements, true);
    u64_field(out, "dropped_fingerprints", d->run.dropped_fingerprints, true);
    u64_field(out, "runs", d->runs.n, true);
    u64_field(out, "instances", d->instances, true);
    u64_field(out, "complete_runs", d->complete_runs, true);
    bool_field(out, "complete", d->complete, false);
    fputc('}', out);
}

/* Every run the report combines (one unless --label), oldest first. */
static void write_runs(FILE *out, const ViewData *d)
{
    key(out, "runs");
    fputc('[', out);
    for (size_t i = 0; i < d->runs.n; i++) {
        const ReaderRun *r = &d->runs.items[i];
        char why[200];
        bool complete = reader_run_is_complete(r, why, sizeof why);
        fputs(i ? ",{" : "{", out);
        i64_field(out, "id", r->id, true);
        str_field(out, "uuid", r->uuid, true);
        str_field(out, "label", r->label, true);
        str_field(out, "instance", r->instance, true);
        i64_field(out, "started_us", r->started_us, true);
        key(out, "ended_us");
        if (r->ended_us)
            fprintf(out, "%" PRId64 ",", r->ended_us);
        else
            fputs("null,", out);
        u64_field(out, "requests", r->stored_requests, true);
        u64_field(out, "queries", r->stored_statements, true);
        u64_field(out, "dropped", reader_run_dropped(r), true);
        bool_field(out, "complete", complete, true);
        str_field(out, "completeness", why, false);
        fputc('}', out);
    }
    fputc(']', out);
}

static void write_routes(FILE *out, const ViewData *d)
{
    key(out, "routes");
    fputc('[', out);
    for (size_t i = 0; i < d->routes.n; i++) {
        const ReaderRoute *r = &d->routes.items[i];
        fputs(i ? ",{" : "{", out);
        str_field(out, "route", r->route, true);
        u64_field(out, "requests", r->requests, true);
        u64_field(out, "queries", r->queries, true);
        key(out, "queries_per_request");
        fprintf(out, "{\"p50\":%u,\"p95\":%u,\"max\":%u},", r->queries_p50, r->queries_p95,
                r->queries_max);
        u64_field(out, "duplicates", r->duplicates, true);
        u64_field(out, "n_plus_one", r->n_plus_one, true);
        u64_field(out, "requests_with_n_plus_one", r->requests_with_n_plus_one, true);
        u64_field(out, "overfetch", r->overfetch, true);
        u64_field(out, "errors", r->errors, true);
        u64_field(out, "db_time_us", r->db_time_us, true);
        key(out, "db_time_per_request_us");
        fprintf(out, "{\"p50\":%" PRIu64 ",\"p95\":%" PRIu64 ",\"max\":%" PRIu64 "},",
                r->db_time_p50_us, r->db_time_p95_us, r->db_time_max_us);
        u64_field(out, "rows", r->rows, true);
        u64_field(out, "bytes", r->bytes, false);
        fputc('}', out);
    }
    fputc(']', out);
}

static void write_top_findings(FILE *out, const ViewData *d)
{
    key(out, "top_findings");
    fputc('[', out);
    for (size_t i = 0; i < d->findings.n; i++) {
        const ReaderTopFinding *f = &d->findings.items[i];
        fputs(i ? ",{" : "{", out);
        str_field(out, "kind", f->kind, true);
        fingerprint_field(out, "fingerprint", f->fingerprint, true);
        str_field(out, "normalized", f->normalized, true);
        u64_field(out, "requests", f->requests, true);
        u64_field(out, "count", f->total_count, true);
        u64_field(out, "max_count", f->max_count, true);
        u64_field(out, "routes", f->routes, true);
        u64_field(out, "db_time_us", f->total_time_us, true);
        str_field(out, "worst_route", f->worst_route, true);
        str_field(out, "worst_request", f->worst_request, true);
        bool_field(out, "is_write", f->is_write, true);
        /* The ranking: one cost for every kind, and why it ranks there. */
        u64_field(out, "rank", i + 1, true);
        u64_field(out, "cost_us", f->cost_us, true);
        u64_field(out, "rows", f->rows, true);
        u64_field(out, "bytes", f->bytes, true);
        bool_field(out, "by_bytes", f->by_bytes, true);
        char why[512];
        viewfmt_finding_why(why, sizeof why, f);
        str_field(out, "why", why, true);
        suggestion_field(out, f->kind, f->normalized);
        fputc('}', out);
    }
    fputc(']', out);
}

static void write_timeline(FILE *out, const ReaderTimeline *t, const ReaderRequest *r)
{
    key(out, "timeline");
    fputc('[', out);
    for (size_t i = 0; i < t->n; i++) {
        const ReaderStatement *s = &t->items[i];
        fputs(i ? ",{" : "{", out);
        u64_field(out, "seq", s->seq, true);
        str_field(out, "fingerprint", s->fingerprint, true);
        str_field(out, "values_hash", s->values_hash, true);
        i64_field(out, "offset_us", s->start_us - r->start_us, true);
        i64_field(out, "start_us", s->start_us, true);
        i64_field(out, "duration_us", s->duration_us, true);
        u64_field(out, "rows", s->rows, true);
        u64_field(out, "bytes", s->bytes, true);
        u64_field(out, "conn_id", s->conn_id, true);
        key(out, "sqlstate");
        if (s->sqlstate[0])
            viewfmt_json_str(out, s->sqlstate);
        else
            fputs("null", out);
        fputc(',', out);
        bool_field(out, "setup", s->setup, true);
        str_field(out, "normalized", s->normalized, false);
        fputc('}', out);
    }
    fputc(']', out);
}

static void write_requests(FILE *out, const ViewData *d, bool with_timeline)
{
    key(out, "requests");
    fputc('[', out);
    for (size_t i = 0; i < d->requests.n; i++) {
        const ReaderRequest *r = &d->requests.items[i];
        fputs(i ? ",{" : "{", out);
        str_field(out, "id", r->id, true);
        str_field(out, "key", r->key, true);
        i64_field(out, "row", r->row, true);
        str_field(out, "route", r->route, true);
        key(out, "tags");
        fputs(r->tags_json, out); /* already a JSON object (the reader checks it) */
        fputc(',', out);
        i64_field(out, "start_us", r->start_us, true);
        i64_field(out, "end_us", r->end_us, true);
        str_field(out, "end_reason", r->end_reason, true);
        u64_field(out, "conn_id", r->conn_id, true);
        u64_field(out, "queries", r->queries, true);
        u64_field(out, "setup_statements", r->setup_statements, true);
        u64_field(out, "distinct_fingerprints", r->distinct_fingerprints, true);
        u64_field(out, "duplicates", r->duplicates, true);
        u64_field(out, "errors", r->errors, true);
        u64_field(out, "transactions", r->transactions, true);
        u64_field(out, "db_time_us", r->db_time_us, true);
        u64_field(out, "rows", r->rows, true);
        u64_field(out, "bytes", r->bytes, true);
        bool_field(out, "truncated", r->truncated, true);
        u64_field(out, "timeline_dropped", r->timeline_dropped, true);
        key(out, "findings");
        fputc('[', out);
        for (size_t k = 0; k < r->n_findings; k++) {
            const ReaderFinding *f = &r->findings[k];
            fputs(k ? ",{" : "{", out);
            str_field(out, "kind", f->kind, true);
            fingerprint_field(out, "fingerprint", f->fingerprint, true);
            u64_field(out, "count", f->count, true);
            u64_field(out, "distinct_values", f->distinct_values, true);
            bool_field(out, "is_write", f->is_write, true);
            bool_field(out, "by_bytes", f->by_bytes, true);
            str_field(out, "normalized", f->normalized, true);
            suggestion_field(out, f->kind, f->normalized);
            fputc('}', out);
        }
        fputc(']', out);
        if (with_timeline) {
            fputc(',', out);
            write_timeline(out, &d->timeline, r);
        }
        fputc('}', out);
    }
    fputc(']', out);
}

static void write_fingerprint_list(FILE *out, const char *name, const ReaderFingerprintList *l,
                                   bool with_routes)
{
    key(out, name);
    fputc('[', out);
    for (size_t i = 0; i < l->n; i++) {
        const ReaderFingerprint *f = &l->items[i];
        fputs(i ? ",{" : "{", out);
        str_field(out, "fingerprint", f->fingerprint, true);
        str_field(out, "normalized", f->normalized, true);
        str_field(out, "command", f->command, true);
        key(out, "sample");
        if (f->sample)
            viewfmt_json_str(out, f->sample);
        else
            fputs("null", out);
        fputc(',', out);
        u64_field(out, "requests", f->requests, true);
        u64_field(out, "calls", f->calls, true);
        u64_field(out, "max_calls_per_request", f->max_calls, true);
        u64_field(out, "db_time_us", f->total_time_us, true);
        u64_field(out, "rows", f->rows, true);
        u64_field(out, "bytes", f->bytes, true);
        u64_field(out, "errors", f->errors, true);
        bool_field(out, "is_write", f->is_write, with_routes);
        if (with_routes) {
            key(out, "routes");
            fputc('[', out);
            for (size_t k = 0; k < f->n_routes; k++) {
                const ReaderFingerprintRoute *r = &f->routes[k];
                fputs(k ? ",{" : "{", out);
                str_field(out, "route", r->route, true);
                u64_field(out, "requests", r->requests, true);
                u64_field(out, "calls", r->calls, true);
                u64_field(out, "db_time_us", r->total_time_us, true);
                u64_field(out, "rows", r->rows, true);
                u64_field(out, "bytes", r->bytes, false);
                fputc('}', out);
            }
            fputc(']', out);
        }
        fputc('}', out);
    }
    fputc(']', out);
}

void view_json(FILE *out, const ViewData *d, const ViewOptions *o)
{
    fputc('{', out);
    str_field(out, "format", "pgtally-report", true);
    u64_field(out, "format_version", JSON_FORMAT_VERSION, true);
    str_field(out, "file", reader_path(d->file), true);
    key(out, "filter");
    fputc('{', out);
    const char *names[] = {"route", "request", "fingerprint", "label"};
    const char *values[] = {o->route, o->request, o->fingerprint, o->label};
    for (size_t i = 0; i < 4; i++) {
        key(out, names[i]);
        if (values[i])
            viewfmt_json_str(out, values[i]);
        else
            fputs("null", out);
        if (i < 3)
            fputc(',', out);
    }
    fputs("},", out);
    write_run(out, d);
    fputc(',', out);
    write_runs(out, d);
    fputc(',', out);
    write_summary(out, d);
    fputc(',', out);
    write_routes(out, d);
    fputc(',', out);
    write_top_findings(out, d);
    fputc(',', out);
    write_fingerprint_list(out, "top_fingerprints_by_calls", &d->by_calls, false);
    fputc(',', out);
    write_fingerprint_list(out, "top_fingerprints_by_time", &d->by_time, false);
    if (o->fingerprint) {
        fputc(',', out);
        write_fingerprint_list(out, "fingerprint_details", &d->fingerprint, true);
    }
    fputc(',', out);
    write_requests(out, d, o->request != NULL);
    fputs("}\n", out);
}
