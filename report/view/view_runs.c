/* report/view/view_runs — `pgtally report --runs`: the runs a report store holds, one line (or one
 * JSON object) each, with label, instance, times, counts and completeness. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "report/view/viewdata.h"
#include "report/view/viewfmt.h"

bool view_load_runs(ReportFile *file, const char *label, ReaderRunList *out, char *err,
                    size_t err_len)
{
    if (!label)
        return reader_list_runs(file, out, err, err_len);
    return reader_select(file, &(ReaderScope){.label = label}, err, err_len) &&
           reader_scope_runs(file, out, err, err_len);
}

static void runs_json(FILE *out, const ReportFile *file, const ReaderRunList *runs)
{
    fputs("{\"format\":\"pgtally-runs\",\"format_version\":1,\"file\":", out);
    viewfmt_json_str(out, reader_path(file));
    fputs(",\"runs\":[", out);
    for (size_t i = 0; i < runs->n; i++) {
        const ReaderRun *r = &runs->items[i];
        char why[200];
        bool complete = reader_run_is_complete(r, why, sizeof why);
        fprintf(out, "%s{\"id\":%" PRId64 ",\"uuid\":", i ? "," : "", r->id);
        viewfmt_json_str(out, r->uuid);
        fputs(",\"label\":", out);
        viewfmt_json_str(out, r->label);
        fputs(",\"instance\":", out);
        viewfmt_json_str(out, r->instance);
        fputs(",\"version\":", out);
        viewfmt_json_str(out, r->version);
        fprintf(out, ",\"started_us\":%" PRId64 ",\"ended_us\":", r->started_us);
        if (r->ended_us)
            fprintf(out, "%" PRId64, r->ended_us);
        else
            fputs("null", out);
        fprintf(out,
                ",\"requests\":%" PRIu64 ",\"queries\":%" PRIu64 ",\"statements_seen\":%" PRIu64
                ",\"dropped\":%" PRIu64 ",\"complete\":%s,\"completeness\":",
                r->stored_requests, r->stored_statements, r->statements, reader_run_dropped(r),
                complete ? "true" : "false");
        viewfmt_json_str(out, why);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

static void runs_text(FILE *out, const ReportFile *file, const ReaderRunList *runs)
{
    char path[VIEW_TEXT_WIDTH * 4];
    viewfmt_one_line(path, sizeof path, reader_path(file), VIEW_TEXT_WIDTH - 6);
    fprintf(out, "file: %s\n%zu run%s\n", path, runs->n, runs->n == 1 ? "" : "s");
    fprintf(out, "%6s  %-16s %-16s %-23s %-23s %8s %9s  %s\n", "run", "label", "instance",
            "started", "ended", "requests", "queries", "data");
    for (size_t i = 0; i < runs->n; i++) {
        const ReaderRun *r = &runs->items[i];
        char label[16 * 4 + 1], instance[16 * 4 + 1], started[40], ended[40], why[200];
        char reason[VIEW_TEXT_WIDTH * 4];
        viewfmt_one_line(label, sizeof label, *r->label ? r->label : "-", 16);
        viewfmt_one_line(instance, sizeof instance, *r->instance ? r->instance : "-", 16);
        viewfmt_time(started, sizeof started, r->started_us);
        if (r->ended_us)
            viewfmt_time(ended, sizeof ended, r->ended_us);
        else
            snprintf(ended, sizeof ended, "(not ended)");
        bool complete = reader_run_is_complete(r, why, sizeof why);
        viewfmt_one_line(reason, sizeof reason, complete ? "complete" : why, 60);
        fprintf(out, "%6" PRId64 "  %-16s %-16s %-23s %-23s %8" PRIu64 " %9" PRIu64 "  %s\n", r->id,
                label, instance, started, ended, r->stored_requests, r->stored_statements, reason);
    }
}

void view_runs(FILE *out, const ReportFile *file, const ReaderRunList *runs, bool json)
{
    if (json)
        runs_json(out, file, runs);
    else
        runs_text(out, file, runs);
}
