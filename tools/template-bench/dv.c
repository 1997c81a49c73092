/* template-bench --url: the whole rendering path against a running dvemu.
 *
 * Arranges (blocking libcurl, before the loop runs): a Money column on
 * account, a custom new_contract table related 1:N to account, one
 * systemuser, 1,000 accounts each with a primary contact and a contract,
 * and N recipient contacts (CreateMultiple, 1,000 per request). Then
 * renders the bench template for all N contacts with template_render_batch
 * over our Dataverse client on one libuv loop, and prints renders per
 * second (wall time, requests included), Web API requests per 1,000
 * recipients as dvemu counted them (GET /_emu/stats), and the peak RSS of
 * this process. Figures only; nothing is asserted. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "bench.h"
#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/template.h"
#include "smsys/util.h"

#define NACC 1000
#define CID  "c0000000-0000-4000-8000-%012lld"
#define PID  "b0000000-0000-4000-8000-%012d"
#define AID  "a0000000-0000-4000-8000-%012d"
#define UID  "5e000000-0000-4000-8000-000000000001"

struct emu {
    const char *root;
    CURL *h;
    char auth[4200];
};

static size_t sink_cb(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* One blocking request; returns the status (-1: transport error) and the
 * body in out (may be NULL). path "/..." is from the root, else under the
 * Web API. */
static long req(struct emu *e, const char *method, const char *path, const char *body,
                struct buf *out)
{
    struct buf url = BUF_INIT, sink = BUF_INIT;
    if (path[0] == '/')
        buf_printf(&url, "%s%s", e->root, path);
    else
        buf_printf(&url, "%s/api/data/v9.2/%s", e->root, path);
    curl_easy_reset(e->h);
    struct curl_slist *hd = NULL;
    if (e->auth[0])
        hd = curl_slist_append(hd, e->auth);
    hd = curl_slist_append(hd, "Accept: application/json");
    hd = curl_slist_append(hd, "Expect:");
    hd = curl_slist_append(hd, e->auth[0] ? "Content-Type: application/json"
                                          : "Content-Type: application/x-www-form-urlencoded");
    curl_easy_setopt(e->h, CURLOPT_URL, url.data);
    curl_easy_setopt(e->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(e->h, CURLOPT_WRITEDATA, out ? out : &sink);
    curl_easy_setopt(e->h, CURLOPT_TIMEOUT, 300L);
    if (body)
        curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, body);
    long st = -1;
    if (curl_easy_perform(e->h) == CURLE_OK)
        curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(hd);
    buf_free(&url);
    buf_free(&sink);
    return st;
}

static int must(struct emu *e, const char *method, const char *path, const char *body)
{
    struct buf out = BUF_INIT;
    long st = req(e, method, path, body, &out);
    if (st < 200 || st > 299) {
        fprintf(stderr, "template-bench: %s %s -> %ld %.300s\n", method, path, st,
                out.data ? out.data : "");
        buf_free(&out);
        return -1;
    }
    buf_free(&out);
    return 0;
}

static int token(struct emu *e, const char *client)
{
    char id[128], secret[128];
    const char *colon = strchr(client, ':');
    if (colon == NULL || (size_t)(colon - client) >= sizeof(id))
        return -1;
    snprintf(id, sizeof(id), "%.*s", (int)(colon - client), client);
    snprintf(secret, sizeof(secret), "%s", colon + 1);
    struct buf body = BUF_INIT, out = BUF_INIT;
    buf_printf(&body,
               "client_id=%s&client_secret=%s&grant_type=client_credentials"
               "&scope=http%%3A%%2F%%2F127.0.0.1%%2F.default",
               id, secret);
    e->auth[0] = '\0';
    long st = req(e, "POST", "/t/oauth2/v2.0/token", body.data, &out);
    cJSON *j = st == 200 && out.data ? cJSON_Parse(out.data) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    int rc = cJSON_IsString(t) ? 0 : -1;
    if (rc == 0)
        snprintf(e->auth, sizeof(e->auth), "Authorization: Bearer %s", t->valuestring);
    else
        fprintf(stderr, "template-bench: no token (%ld)\n", st);
    cJSON_Delete(j);
    buf_free(&body);
    buf_free(&out);
    return rc;
}

static double emu_requests(struct emu *e)
{
    struct buf out = BUF_INIT;
    char keep[sizeof(e->auth)];
    snprintf(keep, sizeof(keep), "%s", e->auth);
    e->auth[0] = '\0';
    long st = req(e, "GET", "/_emu/stats", NULL, &out);
    snprintf(e->auth, sizeof(e->auth), "%s", keep);
    cJSON *j = st == 200 && out.data ? cJSON_Parse(out.data) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "requests");
    double v = cJSON_IsNumber(n) ? n->valuedouble : -1;
    cJSON_Delete(j);
    buf_free(&out);
    return v;
}

static int arrange(struct emu *e, long long rows)
{
    if (must(e, "POST", "EntityDefinitions(LogicalName='account')/Attributes",
             "{\"@odata.type\":\"Microsoft.Dynamics.CRM.MoneyAttributeMetadata\","
             "\"SchemaName\":\"new_Balance\"}") < 0 ||
        must(e, "POST", "EntityDefinitions",
             "{\"@odata.type\":\"Microsoft.Dynamics.CRM.EntityMetadata\",\"SchemaName\":"
             "\"new_contract\",\"OwnershipType\":\"UserOwned\",\"IsActivity\":false,"
             "\"Attributes\":[{\"@odata.type\":\"Microsoft.Dynamics.CRM.StringAttributeMetadata\","
             "\"SchemaName\":\"new_Name\",\"IsPrimaryName\":true,\"MaxLength\":100},"
             "{\"@odata.type\":\"Microsoft.Dynamics.CRM.DateTimeAttributeMetadata\","
             "\"SchemaName\":\"new_EndDate\"}]}") < 0 ||
        must(e, "POST", "RelationshipDefinitions",
             "{\"@odata.type\":\"Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata\","
             "\"SchemaName\":\"new_account_new_contract\",\"ReferencedEntity\":\"account\","
             "\"ReferencingEntity\":\"new_contract\",\"Lookup\":{\"SchemaName\":"
             "\"new_AccountId\"}}") < 0 ||
        must(e, "POST", "systemusers",
             "{\"systemuserid\":\"" UID "\",\"firstname\":\"سارا\",\"lastname\":\"احمدی\"}") < 0)
        return -1;
    struct buf b = BUF_INIT;
    int rc = 0;
    /* primary contacts, accounts, contracts: 1,000 each, one request each */
    const char *kinds[] = {"contacts", "accounts", "new_contracts"};
    const char *types[] = {"contact", "account", "new_contract"};
    for (int k = 0; k < 3 && rc == 0; k++) {
        buf_reset(&b);
        buf_puts(&b, "{\"Targets\":[");
        for (int i = 0; i < NACC; i++) {
            buf_printf(&b, "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.%s\",", i ? "," : "",
                       types[k]);
            if (k == 0)
                buf_printf(&b,
                           "\"contactid\":\"" PID "\",\"firstname\":\"مریم\",\"lastname\":\"%d\"}",
                           i, i);
            else if (k == 1)
                buf_printf(&b,
                           "\"accountid\":\"" AID "\",\"name\":\"شرکت %d\",\"new_balance\":%d,"
                           "\"primarycontactid@odata.bind\":\"/contacts(" PID ")\"}",
                           i, i, (i + 1) * 12345, i);
            else
                buf_printf(&b,
                           "\"new_name\":\"c%d\",\"new_enddate\":\"2026-0%d-1%dT20:30:00Z\","
                           "\"new_accountid@odata.bind\":\"/accounts(" AID ")\"}",
                           i, 1 + i % 9, i % 10, i);
        }
        buf_puts(&b, "]}");
        char path[128];
        snprintf(path, sizeof(path), "%s/Microsoft.Dynamics.CRM.CreateMultiple", kinds[k]);
        rc = must(e, "POST", path, b.data);
    }
    for (long long at = 0; at < rows && rc == 0; at += 1000) {
        buf_reset(&b);
        buf_puts(&b, "{\"Targets\":[");
        for (long long i = at; i < rows && i < at + 1000; i++)
            buf_printf(&b,
                       "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"contactid\":"
                       "\"" CID "\",\"firstname\":\"علی%lld\",\"parentcustomerid_account@odata."
                       "bind\":\"/accounts(" AID ")\",\"ownerid@odata.bind\":\"/systemusers(" UID
                       ")\"}",
                       i > at ? "," : "", i, i, (int)(i % NACC));
        buf_puts(&b, "]}");
        rc = must(e, "POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", b.data);
    }
    buf_free(&b);
    return rc;
}

struct run {
    int done, rc;
    size_t rendered, failed, bytes;
    char first[1024];
    char err[512];
    struct template_batch_stats st;
};

static void row_cb(const char *id, int rc, const char *text, size_t len,
                   const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)id;
    if (rc == 0) {
        if (r->rendered++ == 0)
            snprintf(r->first, sizeof(r->first), "%.*s", (int)len, text);
        r->bytes += len;
    } else if (r->failed++ == 0) {
        snprintf(r->err, sizeof(r->err), "%s", err ? err->detail : "");
    }
}

static void done_cb(int rc, const struct template_batch_stats *st, const struct smsys_err *err,
                    void *ud)
{
    struct run *r = ud;
    r->rc = rc;
    r->st = *st;
    if (rc != 0)
        snprintf(r->err, sizeof(r->err), "%s", err ? err->detail : "");
    r->done = 1;
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static void run_until(uv_loop_t *loop, const int *flag)
{
    while (!*flag && uv_run(loop, UV_RUN_ONCE))
        ;
}

int bench_dv(const char *url, const char *client, long long rows, long long batch,
             const char *tpl_src)
{
    struct emu e = {.root = url, .h = curl_easy_init()};
    if (e.h == NULL || token(&e, client) < 0)
        return 1;
    double t0 = bench_now_s();
    if (arrange(&e, rows) < 0)
        return 1;
    printf("arranged %lld contacts, %d accounts and contracts in dvemu in %.1f s\n", rows, NACC,
           bench_now_s() - t0);

    struct template *t;
    struct smsys_err err = {0};
    if (template_parse(tpl_src, strlen(tpl_src), &t, NULL, &err) < 0) {
        fprintf(stderr, "template-bench: %s\n", err.detail);
        return 1;
    }
    char **ids = calloc((size_t)rows, sizeof(*ids));
    enum { SLOT = 48 }; /* 36 + room the compiler cannot prove unused */
    char *idbuf = malloc((size_t)rows * SLOT);
    if (ids == NULL || idbuf == NULL)
        return 1;
    for (long long i = 0; i < rows; i++) {
        ids[i] = idbuf + i * SLOT;
        snprintf(ids[i], SLOT, CID, i);
    }
    uv_loop_t loop;
    struct http_client *http;
    struct dv_client *dv;
    char token_url[300];
    snprintf(token_url, sizeof(token_url), "%s/t/oauth2/v2.0/token", url);
    char cid[128];
    snprintf(cid, sizeof(cid), "%.*s", (int)(strchr(client, ':') - client), client);
    struct dv_opts o = {.url = url,
                        .token_url = token_url,
                        .client_id = cid,
                        .client_secret = strchr(client, ':') + 1,
                        .scope = "http://127.0.0.1/.default",
                        .timeout_ms = 60000};
    if (uv_loop_init(&loop) != 0 || http_client_new(&loop, NULL, &http) != 0 ||
        dv_new(&loop, http, &o, &dv) != 0) {
        fprintf(stderr, "template-bench: cannot create the client\n");
        return 1;
    }
    char set[64], key[64];
    struct template_table tbl;
    template_table_for("contact", set, sizeof(set), key, sizeof(key), &tbl);
    struct template_batch_opts bo = {.batch_size = (unsigned)batch};
    struct run r = {0};
    double before = emu_requests(&e);
    t0 = bench_now_s();
    int rc = template_render_batch(dv, t, &tbl, (const char *const *)ids, (size_t)rows, &bo, row_cb,
                                   done_cb, &r);
    if (rc == 0)
        run_until(&loop, &r.done);
    double dt = bench_now_s() - t0;
    double after = emu_requests(&e);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int dvc = 0, hc = 0;
    dv_close(dv, closed_cb, &dvc);
    run_until(&loop, &dvc);
    http_client_close(http, closed_cb, &hc);
    run_until(&loop, &hc);
    uv_loop_close(&loop);
    if (rc != 0 || r.rc != 0) {
        fprintf(stderr, "template-bench: render_batch failed (%d/%d): %s\n", rc, r.rc, r.err);
        return 1;
    }
    printf("template: %zu {{let}} relation(s); first text: %s\n", template_relations(t), r.first);
    printf("rendered %zu of %lld recipients against dvemu in %.2f s: %.0f renders/s "
           "(batch %lld, %zu failed%s%s)\n",
           r.rendered, rows, dt, (double)r.rendered / dt, batch, r.failed, r.failed ? ": " : "",
           r.err);
    printf("Web API requests: %u by the renderer, %.0f counted by dvemu = %.1f per 1,000 "
           "recipients\n",
           r.st.requests, after - before, (after - before) * 1000.0 / (double)rows);
    printf("peak RSS of the renderer process: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    template_free(t);
    free(ids);
    free(idbuf);
    curl_easy_cleanup(e.h);
    return r.failed ? 1 : 0;
}
