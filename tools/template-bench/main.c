/* template-bench - CPU cost of rendering: a template with three lookups
 * (two levels), a related row, Persian digits and a Jalali date, rendered
 * over N synthetic Web API rows (default 100,000). Prints renders per
 * second and the Web API requests the batch renderer makes per 1,000
 * recipients (one GET per batch plus one per {{let}}).
 *
 * With --url, the same template is rendered for N recipients arranged in
 * a running dvemu, through the Dataverse client (dv.c): renders per
 * second including the requests, requests per 1,000 recipients as dvemu
 * counted them, and peak RSS (bench/template.bench.sh).
 *
 *   template-bench [--rows N] [--batch B] [--url URL [--client ID:SECRET]] */
#include "bench.h"
#include "smsys/buf.h"
#include "smsys/template.h"
#include "smsys/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char TPL[] =
    "{{let c = new_contracts(new_accountid) of parentcustomerid latest by new_enddate}}"
    "{{firstname | default \"مشتری\"}} عزیز، مانده {{parentcustomerid_account.name}}: "
    "{{parentcustomerid_account.new_balance | currency \"IRT\" | persian}}؛ مسئول: "
    "{{parentcustomerid_account.primarycontactid.fullname}}؛ مالک: {{ownerid.fullname}}؛ "
    "پایان قرارداد {{c.new_enddate | jalali \"d MMMM yyyy\" | persian}}";

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long long rows = 100000, batch = 100;
    const char *url = NULL, *client = "smsys-demo:smsys-demo-secret";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0 && util_parse_int(argv[i + 1], 1, 100000000, &rows) == 0)
            continue;
        if (strcmp(argv[i], "--batch") == 0 && util_parse_int(argv[i + 1], 1, 200, &batch) == 0)
            continue;
        if (strcmp(argv[i], "--url") == 0) {
            url = argv[i + 1];
            continue;
        }
        if (strcmp(argv[i], "--client") == 0 && strchr(argv[i + 1], ':')) {
            client = argv[i + 1];
            continue;
        }
        fprintf(stderr, "usage: template-bench [--rows N] [--batch 1-200] [--url URL "
                        "[--client ID:SECRET]]\n");
        return 2;
    }
    if (url)
        return bench_dv(url, client, rows, batch, TPL);
    struct template *t;
    struct smsys_err err;
    if (template_parse(TPL, strlen(TPL), &t, NULL, &err) < 0) {
        fprintf(stderr, "template-bench: %s\n", err.detail);
        return 1;
    }
    /* 1,000 distinct rows, reused round-robin (the parse cost of JSON is the
     * Dataverse client's, not the renderer's) */
    enum { DISTINCT = 1000 };
    cJSON *rs[DISTINCT], *cs[DISTINCT];
    for (int i = 0; i < DISTINCT; i++) {
        char js[1024];
        snprintf(js, sizeof(js),
                 "{\"contactid\":\"c0000000-0000-4000-8000-%012d\",\"firstname\":\"علی%d\","
                 "\"_parentcustomerid_value\":\"a0000000-0000-4000-8000-%012d\","
                 "\"parentcustomerid_account\":{\"name\":\"شرکت %d\",\"new_balance\":%d,"
                 "\"primarycontactid\":{\"fullname\":\"مریم %d\"}},"
                 "\"ownerid\":{\"fullname\":\"کاربر %d\"}}",
                 i, i, i % 50, i % 50, (i + 1) * 12345, i % 7, i % 8);
        rs[i] = cJSON_Parse(js);
        snprintf(js, sizeof(js), "{\"new_enddate\":\"2026-0%d-1%dT20:30:00Z\"}", 1 + i % 9, i % 10);
        cs[i] = cJSON_Parse(js);
        if (!rs[i] || !cs[i])
            return 1;
    }
    struct buf out = BUF_INIT;
    size_t bytes = 0, failed = 0;
    double t0 = bench_now_s();
    for (long long i = 0; i < rows; i++) {
        const cJSON *rel[1] = {cs[i % DISTINCT]};
        buf_reset(&out);
        if (template_render(t, rs[i % DISTINCT], rel, &out, NULL, &err) < 0)
            failed++;
        bytes += out.len;
    }
    double dt = bench_now_s() - t0;
    long long batches = (1000 + batch - 1) / batch;
    printf("template: 3 lookups (2 levels) + 1 related row, Persian digits, Jalali date\n");
    printf("rendered %lld rows in %.3f s: %.0f renders/s (%.2f us each, %zu bytes, %zu failed)\n",
           rows, dt, (double)rows / dt, dt * 1e6 / (double)rows, bytes, failed);
    printf("Web API requests per 1,000 recipients (batch %lld): %lld = %lld batches x (1 + %zu "
           "relation)\n",
           batch, batches * (1 + (long long)template_relations(t)), batches, template_relations(t));
    buf_free(&out);
    for (int i = 0; i < DISTINCT; i++) {
        cJSON_Delete(rs[i]);
        cJSON_Delete(cs[i]);
    }
    template_free(t);
    return failed ? 1 : 0;
}
