/* dvemu-bench - load figures for dvemu over loopback with libcurl multi:
 * single-row creates and GETs per second (keep-alive, N in flight), bulk
 * CreateMultiple, and paging a 100k-row table at 5000 rows per page.
 *
 *   dvemu-bench [--url http://127.0.0.1:8401] [--requests N] [--parallel N]
 *               [--rows N] [--client ID:SECRET]
 *
 * Start dvemu first (without limits). Prints one line per figure. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/util.h"

struct xfer {
    CURL *h;
    struct buf body;
    struct curl_slist *hdrs;
    int busy;
};

static char g_url[256] = "http://127.0.0.1:8401";
static char g_auth[4200];

static size_t sink_cb(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

static void setup(struct xfer *x, const char *method, const char *url, const char *body,
                  const char *prefer)
{
    curl_easy_reset(x->h);
    buf_reset(&x->body);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->hdrs = curl_slist_append(x->hdrs, g_auth);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    if (prefer)
        x->hdrs = curl_slist_append(x->hdrs, prefer);
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &x->body);
    if (body)
        curl_easy_setopt(x->h, CURLOPT_COPYPOSTFIELDS, body);
}

static long perform(struct xfer *x)
{
    if (curl_easy_perform(x->h) != CURLE_OK)
        return -1;
    long st = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

typedef void (*make_req_fn)(struct xfer *x, int i, void *ud);

/* Runs n requests with `parallel` in flight; returns requests per second. */
static double run_multi(int n, int parallel, make_req_fn make, void *ud, int *errors)
{
    CURLM *m = curl_multi_init();
    struct xfer *xs = calloc((size_t)parallel, sizeof(*xs));
    for (int i = 0; i < parallel; i++)
        xs[i].h = curl_easy_init();
    int next = 0, done = 0;
    *errors = 0;
    uint64_t t0 = util_now_ms();
    for (int i = 0; i < parallel && next < n; i++) {
        make(&xs[i], next++, ud);
        curl_easy_setopt(xs[i].h, CURLOPT_PRIVATE, &xs[i]);
        curl_multi_add_handle(m, xs[i].h);
    }
    while (done < n) {
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            long st = 0;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
            if (msg->data.result != CURLE_OK || st >= 300)
                (*errors)++;
            curl_multi_remove_handle(m, x->h);
            done++;
            if (next < n) {
                make(x, next++, ud);
                curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
                curl_multi_add_handle(m, x->h);
            }
        }
        if (done < n)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    uint64_t ms = util_now_ms() - t0;
    for (int i = 0; i < parallel; i++) {
        curl_easy_cleanup(xs[i].h);
        buf_free(&xs[i].body);
        curl_slist_free_all(xs[i].hdrs);
    }
    free(xs);
    curl_multi_cleanup(m);
    return ms ? n * 1000.0 / (double)ms : 0;
}

static void make_create(struct xfer *x, int i, void *ud)
{
    char url[400], body[200];
    snprintf(url, sizeof(url), "%s/api/data/v9.2/contacts", g_url);
    snprintf(body, sizeof(body),
             "{\"firstname\":\"Bench\",\"lastname\":\"N%d\",\"mobilephone\":"
             "\"0912%07d\"}",
             i, i);
    setup(x, "POST", url, body, NULL);
}

struct ids {
    char (*id)[37];
    int n;
};

static void make_get(struct xfer *x, int i, void *ud)
{
    struct ids *ids = ud;
    char url[400];
    snprintf(url, sizeof(url), "%s/api/data/v9.2/contacts(%s)?$select=fullname,mobilephone", g_url,
             ids->id[i % ids->n]);
    setup(x, "GET", url, NULL, NULL);
}

static void make_bulk(struct xfer *x, int i, void *ud)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"Targets\":[");
    for (int k = 0; k < 1000; k++)
        buf_printf(&b,
                   "%s{\"subject\":\"bulk %d\",\"smsys_status\":2,\"smsys_phonenumber\":"
                   "\"+98912%07d\",\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\"}",
                   k ? "," : "", i * 1000 + k, i * 1000 + k);
    buf_puts(&b, "]}");
    char url[400];
    snprintf(url, sizeof(url), "%s/api/data/v9.2/smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple",
             g_url);
    setup(x, "POST", url, b.data, NULL);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    long long requests = 20000, parallel = 16, rows = 100000;
    const char *client = "smsys-demo:smsys-demo-secret";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            snprintf(g_url, sizeof(g_url), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--requests") == 0)
            util_parse_int(argv[i + 1], 1, 10000000, &requests);
        else if (strcmp(argv[i], "--parallel") == 0)
            util_parse_int(argv[i + 1], 1, 1000, &parallel);
        else if (strcmp(argv[i], "--rows") == 0)
            util_parse_int(argv[i + 1], 1000, 10000000, &rows);
        else if (strcmp(argv[i], "--client") == 0)
            client = argv[i + 1];
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct xfer x = {.h = curl_easy_init()};
    /* token */
    const char *colon = strchr(client, ':');
    if (colon == NULL) {
        fprintf(stderr, "dvemu-bench: --client needs ID:SECRET\n");
        return 2;
    }
    char form[600], url[600];
    snprintf(form, sizeof(form),
             "client_id=%.*s&client_secret=%s&grant_type=client_credentials"
             "&scope=http%%3A%%2F%%2Fbench%%2F.default",
             (int)(colon - client), client, colon + 1);
    snprintf(url, sizeof(url), "%s/bench/oauth2/v2.0/token", g_url);
    snprintf(g_auth, sizeof(g_auth), "X-Bench: 1");
    setup(&x, "POST", url, form, NULL);
    if (perform(&x) != 200) {
        fprintf(stderr, "dvemu-bench: no token from %s (is dvemu running?)\n", url);
        return 1;
    }
    cJSON *tj = cJSON_Parse(x.body.data);
    const char *tok = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tj, "access_token"));
    snprintf(g_auth, sizeof(g_auth), "Authorization: Bearer %s", tok ? tok : "");
    cJSON_Delete(tj);

    int errors;
    double cps = run_multi((int)requests, (int)parallel, make_create, NULL, &errors);
    printf("creates:        %8.0f req/s  (%lld POST contacts, %lld in flight, %d errors)\n", cps,
           requests, parallel, errors);
    /* collect ids for the GETs */
    struct ids ids = {.id = calloc(1000, 37), .n = 0};
    snprintf(url, sizeof(url), "%s/api/data/v9.2/contacts?$select=contactid&$top=1000", g_url);
    setup(&x, "GET", url, NULL, NULL);
    perform(&x);
    cJSON *lj = cJSON_Parse(x.body.data);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(lj, "value"))
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "contactid"));
        if (id && ids.n < 1000)
            snprintf(ids.id[ids.n++], 37, "%s", id);
    }
    cJSON_Delete(lj);
    if (ids.n > 0) {
        double gps = run_multi((int)requests, (int)parallel, make_get, &ids, &errors);
        printf("single GETs:    %8.0f req/s  (%lld GET contacts(id), %lld in flight, %d errors)\n",
               gps, requests, parallel, errors);
    }
    free(ids.id);
    /* bulk: fill smsys_smses with `rows` rows through CreateMultiple */
    int batches = (int)(rows / 1000);
    uint64_t t0 = util_now_ms();
    double bps = run_multi(batches, 4, make_bulk, NULL, &errors);
    uint64_t bulk_ms = util_now_ms() - t0;
    printf("CreateMultiple: %8.0f rows/s (%d x 1000 rows in %llu ms, %d errors)\n", bps * 1000,
           batches, (unsigned long long)bulk_ms, errors);
    /* page through the table at 5000 per page */
    snprintf(url, sizeof(url), "%s/api/data/v9.2/smsys_smses?$select=subject,smsys_status", g_url);
    long total = 0, pages = 0;
    t0 = util_now_ms();
    for (;;) {
        setup(&x, "GET", url, NULL, "Prefer: odata.maxpagesize=5000");
        if (perform(&x) != 200)
            break;
        cJSON *pj = cJSON_Parse(x.body.data);
        total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pj, "value"));
        pages++;
        const char *next =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pj, "@odata.nextLink"));
        if (next)
            snprintf(url, sizeof(url), "%s", next);
        cJSON_Delete(pj);
        if (next == NULL)
            break;
    }
    uint64_t page_ms = util_now_ms() - t0;
    printf("paging:         %8ld rows in %ld pages of 5000 in %llu ms (%.0f rows/s)\n", total,
           pages, (unsigned long long)page_ms, page_ms ? total * 1000.0 / (double)page_ms : 0.0);
    curl_easy_cleanup(x.h);
    buf_free(&x.body);
    curl_slist_free_all(x.hdrs);
    curl_global_cleanup();
    return 0;
}
