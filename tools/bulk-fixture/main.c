/* bulk-fixture - creates a bulk SMS audience in a running dvemu (or any
 * Dataverse the client may write): N contacts with mobile numbers, a static
 * marketing list, a dynamic list (FetchXML), a campaign over both (they
 * overlap), a Kavenegar account pointing at provsim with its line, and a
 * Ready (or Draft) smsys_bulksms. Used by bench/bulk.bench.sh, the bulk
 * crash test and the demo.
 *
 * Contact i (0-based) by i % 100:
 *   7, 57  no mobile number            -> skipped "no_number"
 *   13     smsys_donotsms = true       -> skipped "do_not_sms"
 *   33     a number too short to send  -> skipped "invalid_number"
 *   21, 71 the number of contact i-1, written "+98 912 ..." -> one of the
 *          two is skipped "duplicate"
 *   else   0912 + 7 digits of i (every 5th written with Persian digits)
 * Static list: contacts i < N*7/10 (all N with --mode list). Dynamic list:
 * address1_city = 'Tehran' (every 3rd contact). --mode campaign sends to
 * the campaign (both lists, overlapping), --mode list to the static list.
 *
 * --sender LINE sets the bulk's smsys_sendernumber (else the account's
 * default line applies).
 * Blocking libcurl; honours Retry-After on 429/503, so it works against
 * dvemu --dataverse-limits. Prints one JSON object with the ids and the
 * exact expected outcome; --expect FILE writes the E.164 numbers that must
 * receive exactly one message, one per line. Exit 0 ok, 1 failure, 2 usage. */
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "smsys/buf.h"
#include "smsys/util.h"

struct fx {
    const char *url;
    char client_id[128], secret[256];
    char token[4096];
    CURL *curl;
    long long requests;
};

static void usage(void)
{
    fprintf(stderr, "usage: bulk-fixture --url URL [--client ID:SECRET] [--contacts N]\n"
                    "       [--mode list|campaign] [--provider-url URL] [--draft] [--name TEXT]\n"
                    "       [--text TEXT] [--expect FILE] [--sender LINE] [--no-account]\n");
}

static size_t write_cb(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

/* Value of a header in a raw header block (case-insensitive), or 0. */
static long header_long(const struct buf *h, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = h->data; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            long long v = 0;
            char tmp[32];
            size_t len = eol ? (size_t)(eol - p - nl - 1) : strlen(p + nl + 1);
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 31 ? len : 31), p + nl + 1);
            char *s = tmp;
            while (*s == ' ')
                s++;
            s[strcspn(s, "\r\n ")] = '\0';
            if (util_parse_int(s, 0, 3600, &v) == 0)
                return (long)v;
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

/* One request; retries 429/503 after Retry-After (at most 50 times). path is
 * under /api/data/v9.2/ unless it starts with '/'. Returns the status (0 on
 * a transport error); *out gets the parsed JSON body (may be NULL), *hdrs
 * the raw headers when hdrs is not NULL. */
static long req(struct fx *f, const char *method, const char *path, const char *body,
                const char *ctype, cJSON **out, struct buf *hdrs)
{
    struct buf url = BUF_INIT;
    if (path[0] == '/')
        buf_printf(&url, "%s%s", f->url, path);
    else
        buf_printf(&url, "%s/api/data/v9.2/%s", f->url, path);
    long status = 0;
    for (int attempt = 0; attempt < 50; attempt++) {
        struct buf b = BUF_INIT, h = BUF_INIT;
        CURL *c = f->curl;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url.data);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
        struct curl_slist *sl = NULL;
        struct buf authz = BUF_INIT;
        if (f->token[0]) {
            buf_printf(&authz, "Authorization: Bearer %s", f->token);
            sl = curl_slist_append(sl, authz.data);
        }
        sl = curl_slist_append(sl, "Accept: application/json");
        sl = curl_slist_append(sl, "OData-Version: 4.0");
        sl = curl_slist_append(sl, "OData-MaxVersion: 4.0");
        sl = curl_slist_append(sl, "Expect:");
        if (body) {
            struct buf ct = BUF_INIT;
            buf_printf(&ct, "Content-Type: %s", ctype ? ctype : "application/json");
            sl = curl_slist_append(sl, ct.data);
            buf_free(&ct);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(sl);
        buf_free(&authz);
        status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        f->requests++;
        if (status == 429 || status == 503) {
            long wait = header_long(&h, "Retry-After");
            buf_free(&b);
            buf_free(&h);
            sleep((unsigned)(wait > 0 ? wait : 1));
            continue;
        }
        if (status >= 400 || status == 0)
            fprintf(stderr, "bulk-fixture: %s %s -> %ld %.400s\n", method, path, status,
                    b.data ? b.data : curl_easy_strerror(cc));
        if (out)
            *out = b.data ? cJSON_Parse(b.data) : NULL;
        if (hdrs)
            *hdrs = h;
        else
            buf_free(&h);
        buf_free(&b);
        break;
    }
    buf_free(&url);
    return status;
}

static int get_token(struct fx *f)
{
    struct buf form = BUF_INIT;
    buf_puts(&form, "grant_type=client_credentials&client_id=");
    buf_put_urlenc(&form, f->client_id);
    buf_puts(&form, "&client_secret=");
    buf_put_urlenc(&form, f->secret);
    buf_puts(&form, "&scope=http%3A%2F%2F127.0.0.1%2F.default");
    cJSON *j = NULL;
    long st = req(f, "POST", "/fixture/oauth2/v2.0/token", form.data,
                  "application/x-www-form-urlencoded", &j, NULL);
    buf_free(&form);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    int rc = -1;
    if (st == 200 && cJSON_IsString(t)) {
        snprintf(f->token, sizeof(f->token), "%s", t->valuestring);
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}

/* POST <set>; the new id (from OData-EntityId) into id. 0 or -1. */
static int create(struct fx *f, const char *set, const char *body, char id[37])
{
    struct buf h = BUF_INIT;
    long st = req(f, "POST", set, body, NULL, NULL, &h);
    int rc = -1;
    const char *e = h.data ? strcasestr(h.data, "OData-EntityId:") : NULL;
    const char *open = e ? strchr(e, '(') : NULL;
    if (st == 204 && open && strlen(open) > 37) {
        snprintf(id, 37, "%.36s", open + 1);
        rc = 0;
    }
    buf_free(&h);
    return rc;
}

enum cat { C_OK, C_NONUM, C_DONOT, C_INVALID, C_DUP };

static enum cat category(long i)
{
    switch (i % 100) {
    case 7:
    case 57:
        return C_NONUM;
    case 13:
        return C_DONOT;
    case 33:
        return C_INVALID;
    case 21:
    case 71:
        return C_DUP;
    default:
        return C_OK;
    }
}

/* The E.164 number of contact i (for C_DUP: of contact i-1). */
static void e164(long i, char *out, size_t len)
{
    snprintf(out, len, "+98912%07ld", category(i) == C_DUP ? i - 1 : i);
}

static void contact_json(struct buf *b, long i)
{
    static const char *fa[] = {"۰", "۱", "۲", "۳", "۴", "۵", "۶", "۷", "۸", "۹"};
    buf_printf(b,
               "{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"firstname\":\"Member\","
               "\"lastname\":\"%ld\"%s",
               i, i % 3 == 0 ? ",\"address1_city\":\"Tehran\"" : ",\"address1_city\":\"Shiraz\"");
    char digits[24];
    snprintf(digits, sizeof(digits), "%07ld", i);
    switch (category(i)) {
    case C_NONUM:
        break;
    case C_DONOT:
        buf_printf(b, ",\"mobilephone\":\"0912%s\",\"smsys_donotsms\":true", digits);
        break;
    case C_INVALID:
        buf_puts(b, ",\"mobilephone\":\"0912123\"");
        break;
    case C_DUP:
        snprintf(digits, sizeof(digits), "%07ld", i - 1);
        buf_printf(b, ",\"mobilephone\":\"+98 912 %.3s %.4s\"", digits, digits + 3);
        break;
    case C_OK:
        if (i % 5 == 0) {
            buf_puts(b, ",\"mobilephone\":\"");
            buf_puts(b, "۰۹۱۲");
            for (int k = 0; digits[k]; k++)
                buf_puts(b, fa[digits[k] - '0']);
            buf_puts(b, "\"");
        } else {
            buf_printf(b, ",\"mobilephone\":\"0912%s\"", digits);
        }
        break;
    }
    buf_puts(b, "}");
}

struct opts {
    long contacts;
    int campaign, draft, account;
    const char *provider_url, *name, *text, *expect, *sender;
};

static int run(struct fx *f, const struct opts *o)
{
    long n = o->contacts;
    char(*ids)[37] = calloc((size_t)n, sizeof(*ids));
    if (ids == NULL)
        return -1;
    int rc = -1;
    /* contacts, 1000 per CreateMultiple */
    for (long base = 0; base < n; base += 1000) {
        long end = base + 1000 < n ? base + 1000 : n;
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"Targets\":[");
        for (long i = base; i < end; i++) {
            if (i > base)
                buf_putc(&b, ',');
            contact_json(&b, i);
        }
        buf_puts(&b, "]}");
        cJSON *j = NULL;
        long st = req(f, "POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", b.data, NULL, &j,
                      NULL);
        buf_free(&b);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "Ids");
        if (st != 200 || cJSON_GetArraySize(arr) != (int)(end - base)) {
            cJSON_Delete(j);
            goto out;
        }
        long k = base;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) snprintf(ids[k++], 37, "%s", it->valuestring);
        cJSON_Delete(j);
    }
    /* static list: the first 70% (everyone in list mode) */
    long nstatic = o->campaign ? n * 7 / 10 : n;
    char list[37], dyn[37] = "", camp[37] = "", acc[37] = "", bulk[37];
    struct buf b = BUF_INIT;
    buf_printf(&b,
               "{\"listname\":\"bulk static %ld\",\"type\":false,\"createdfromcode\":2,"
               "\"purpose\":\"bulk-fixture\"}",
               nstatic);
    if (create(f, "lists", b.data, list) != 0)
        goto out_b;
    for (long base = 0; base < nstatic; base += 10000) {
        long end = base + 10000 < nstatic ? base + 10000 : nstatic;
        buf_reset(&b);
        buf_printf(&b, "{\"ListId\":\"%s\",\"MemberIds\":[", list);
        for (long i = base; i < end; i++)
            buf_printf(&b, "%s\"%s\"", i > base ? "," : "", ids[i]);
        buf_puts(&b, "]}");
        if (req(f, "POST", "AddListMembersList", b.data, NULL, NULL, NULL) != 204)
            goto out_b;
    }
    if (o->campaign) {
        if (create(f, "lists",
                   "{\"listname\":\"bulk dynamic Tehran\",\"type\":true,\"createdfromcode\":2,"
                   "\"query\":\"<fetch><entity name='contact'><attribute name='contactid'/>"
                   "<filter><condition attribute='address1_city' operator='eq' "
                   "value='Tehran'/></filter></entity></fetch>\"}",
                   dyn) != 0 ||
            create(f, "campaigns", "{\"name\":\"bulk campaign\"}", camp) != 0)
            goto out_b;
        const char *both[] = {list, dyn};
        for (int i = 0; i < 2; i++) {
            char path[128];
            snprintf(path, sizeof(path), "campaigns(%s)/campaignlist_association/$ref", camp);
            buf_reset(&b);
            buf_printf(&b, "{\"@odata.id\":\"%s/api/data/v9.2/lists(%s)\"}", f->url, both[i]);
            if (req(f, "POST", path, b.data, NULL, NULL, NULL) != 204)
                goto out_b;
        }
    }
    if (o->account) {
        buf_reset(&b);
        buf_printf(&b,
                   "{\"smsys_name\":\"bulk kavenegar\",\"smsys_provider\":\"kavenegar\","
                   "\"smsys_isdefault\":true,\"smsys_enabled\":true,"
                   "\"smsys_apikey\":\"demo-kavenegar-key\","
                   "\"smsys_config\":\"{\\\"base_url\\\":\\\"%s/kavenegar\\\"}\"}",
                   o->provider_url);
        if (create(f, "smsys_smssettings", b.data, acc) != 0)
            goto out_b;
        buf_reset(&b);
        buf_printf(&b,
                   "{\"smsys_number\":\"10004346\",\"smsys_isdefault\":true,"
                   "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(%s)\"}",
                   acc);
        char line[37];
        if (create(f, "smsys_smsnumbers", b.data, line) != 0)
            goto out_b;
    }
    /* the bulk record last: Ready starts it at once */
    cJSON *bj = cJSON_CreateObject();
    cJSON_AddStringToObject(bj, "smsys_name", o->name);
    cJSON_AddStringToObject(bj, "smsys_body", o->text);
    cJSON_AddNumberToObject(bj, "smsys_status", o->draft ? 1 : 2);
    if (o->sender)
        cJSON_AddStringToObject(bj, "smsys_sendernumber", o->sender);
    char bind[128];
    if (o->campaign) {
        snprintf(bind, sizeof(bind), "/campaigns(%s)", camp);
        cJSON_AddStringToObject(bj, "smsys_campaignid@odata.bind", bind);
    } else {
        snprintf(bind, sizeof(bind), "/lists(%s)", list);
        cJSON_AddStringToObject(bj, "smsys_listid@odata.bind", bind);
    }
    if (acc[0]) {
        snprintf(bind, sizeof(bind), "/smsys_smssettings(%s)", acc);
        cJSON_AddStringToObject(bj, "smsys_settingid@odata.bind", bind);
    }
    char *bs = cJSON_PrintUnformatted(bj);
    cJSON_Delete(bj);
    int brc = bs ? create(f, "smsys_bulksmses", bs, bulk) : -1;
    free(bs);
    if (brc != 0)
        goto out_b;

    /* the exact expected outcome */
    long members = 0, nonum = 0, donot = 0, invalid = 0, dup = 0, recipients = 0;
    FILE *ex = o->expect ? fopen(o->expect, "w") : NULL;
    if (o->expect && ex == NULL) {
        perror(o->expect);
        goto out_b;
    }
    char *sent = calloc((size_t)n, 1); /* by number owner: sent once */
    if (sent == NULL) {
        if (ex)
            fclose(ex);
        goto out_b;
    }
    for (long i = 0; i < n; i++) {
        int in = i < nstatic || (o->campaign && i % 3 == 0);
        if (!in)
            continue;
        members++;
        switch (category(i)) {
        case C_NONUM:
            nonum++;
            continue;
        case C_DONOT:
            donot++;
            continue;
        case C_INVALID:
            invalid++;
            continue;
        default:
            break;
        }
        long owner = category(i) == C_DUP ? i - 1 : i;
        if (sent[owner]) {
            dup++;
            continue;
        }
        sent[owner] = 1;
        recipients++;
        if (ex) {
            char num[32];
            e164(i, num, sizeof(num));
            fprintf(ex, "%s\n", num);
        }
    }
    free(sent);
    if (ex && fclose(ex) != 0)
        goto out_b;
    printf("{\"bulk\":\"%s\",\"list\":\"%s\",\"dynamic_list\":\"%s\",\"campaign\":\"%s\","
           "\"account\":\"%s\",\"contacts\":%ld,\"members\":%ld,\"recipients\":%ld,"
           "\"skipped\":{\"no_number\":%ld,\"do_not_sms\":%ld,\"invalid_number\":%ld,"
           "\"duplicate\":%ld,\"total\":%ld},\"requests\":%lld}\n",
           bulk, list, dyn, camp, acc, n, members, recipients, nonum, donot, invalid, dup,
           nonum + donot + invalid + dup, f->requests);
    rc = 0;
out_b:
    buf_free(&b);
out:
    free(ids);
    return rc;
}

int main(int argc, char **argv)
{
    struct fx f = {0};
    struct opts o = {.contacts = 1000,
                     .account = 1,
                     .provider_url = "http://127.0.0.1:8402",
                     .name = "bulk-fixture",
                     .text = "Salam {{firstname}} {{lastname}}, this is a bulk test."};
    snprintf(f.client_id, sizeof(f.client_id), "smsys-demo");
    snprintf(f.secret, sizeof(f.secret), "smsys-demo-secret");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (strcmp(a, "--url") == 0 && v) {
            f.url = v;
        } else if (strcmp(a, "--client") == 0 && v && strchr(v, ':')) {
            snprintf(f.client_id, sizeof(f.client_id), "%.*s", (int)(strchr(v, ':') - v), v);
            snprintf(f.secret, sizeof(f.secret), "%s", strchr(v, ':') + 1);
        } else if (strcmp(a, "--contacts") == 0 && v && util_parse_int(v, 1, 9999999, &x) == 0) {
            o.contacts = (long)x;
        } else if (strcmp(a, "--mode") == 0 && v &&
                   (strcmp(v, "list") == 0 || strcmp(v, "campaign") == 0)) {
            o.campaign = strcmp(v, "campaign") == 0;
        } else if (strcmp(a, "--provider-url") == 0 && v) {
            o.provider_url = v;
        } else if (strcmp(a, "--name") == 0 && v) {
            o.name = v;
        } else if (strcmp(a, "--text") == 0 && v) {
            o.text = v;
        } else if (strcmp(a, "--expect") == 0 && v) {
            o.expect = v;
        } else if (strcmp(a, "--sender") == 0 && v) {
            o.sender = v;
        } else if (strcmp(a, "--draft") == 0) {
            o.draft = 1;
            continue;
        } else if (strcmp(a, "--no-account") == 0) {
            o.account = 0;
            continue;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (f.url == NULL) {
        usage();
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    f.curl = curl_easy_init();
    int rc = f.curl && get_token(&f) == 0 ? run(&f, &o) : -1;
    if (f.curl)
        curl_easy_cleanup(f.curl);
    curl_global_cleanup();
    if (rc != 0)
        fprintf(stderr, "bulk-fixture: failed\n");
    return rc == 0 ? 0 : 1;
}
