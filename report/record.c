/* report/record — see record.h. */
#include "report/record.h"

#include <stdlib.h>
#include <string.h>

void request_record_free(RequestRecord *r)
{
    if (!r)
        return;
    free(r->key);
    free(r->route);
    free(r->tags_json);
    free(r->fingerprints);
    free(r->timeline);
    free(r->findings);
    free(r);
}

void fingerprint_record_free(FingerprintRecord *r)
{
    if (!r)
        return;
    free(r->normalized);
    free(r->command);
    free(r->sample);
    free(r);
}

static size_t str_bytes(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

size_t request_record_bytes(const RequestRecord *r)
{
    return sizeof *r + str_bytes(r->key) + str_bytes(r->route) + str_bytes(r->tags_json) +
           r->n_fingerprints * sizeof *r->fingerprints + r->n_timeline * sizeof *r->timeline +
           r->n_findings * sizeof *r->findings;
}
