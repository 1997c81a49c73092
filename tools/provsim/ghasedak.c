/* ghasedak.c - Ghasedak gateway REST: /rest/api/v1/WebService/<Op>,
 * ApiKey header, JSON bodies, envelope {"isSuccess","statusCode",
 * "message","data"}. clientReferenceId makes sends idempotent: a repeated
 * reference returns the original message(s). Error statusCodes that
 * providers.md does not list are this simulator's choice (docs/provsim.md). */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/util.h"

#define GH_MAX_RECEPTORS 100

static int gh_code(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return 0;
    case STAGE_SENT:
        return 4;
    case STAGE_DELIVERED:
        return 14;
    case STAGE_UNDELIVERED:
        return 13;
    case STAGE_BLOCKED:
        return 8;
    }
    return 0;
}

static void gh_reply(struct sim_ctx *cx, int code, const char *msg, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "isSuccess", code == 200);
    cJSON_AddNumberToObject(root, "statusCode", code);
    cJSON_AddStringToObject(root, "message", msg);
    if (data)
        cJSON_AddItemToObject(root, "data", data);
    else
        cJSON_AddNullToObject(root, "data");
    if (cx->rec && code != 200)
        cJSON_AddNumberToObject(cx->rec, "code", code);
    sim_reply_json(cx, code, root);
}

static void gh_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        gh_reply(cx, 429, "تعداد درخواست ها بیش از حد مجاز است", NULL);
    else if (f == FAULT_BUSY)
        gh_reply(cx, 503, "سرور مشغول است، بعدا تلاش کنید", NULL);
    else
        gh_reply(cx, 402, "اعتبار حساب کافی نیست", NULL);
}

/* "2026-11-28T10:00:00" (optionally with Z) as unix seconds; 0 if absent. */
static int64_t gh_date(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return (int64_t)v->valuedouble;
    if (!cJSON_IsString(v) || !*v->valuestring)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!strptime(v->valuestring, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

static cJSON *gh_item(struct sim *sim, struct sim_msg *m)
{
    char ts[40];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "messageId", m->id);
    if (m->idem)
        cJSON_AddStringToObject(e, "clientReferenceId", m->idem);
    else
        cJSON_AddNullToObject(e, "clientReferenceId");
    cJSON_AddStringToObject(e, "receptor", m->to);
    cJSON_AddStringToObject(e, "lineNumber", m->from ? m->from : "");
    cJSON_AddNumberToObject(e, "status", gh_code(sim_msg_stage(sim, m)));
    cJSON_AddNumberToObject(e, "cost", m->cost);
    sim_time_iso(m->created_us, ts, sizeof(ts));
    cJSON_AddStringToObject(e, "sendDate", ts);
    return e;
}

/* One send of n (receptor, text, line, reference) tuples. group: one
 * reference covers all n (SendBulkSMS). Replies through out(). */
struct gh_batch {
    size_t n;
    const char **to, **text, **line, **ref;
    int64_t *date;
    int group;
};

static int gh_check(struct sim_ctx *cx, const struct gh_batch *b, struct sim_msg **orig,
                    size_t *norig)
{
    *orig = NULL;
    if (b->n == 0) {
        gh_reply(cx, 400, "گیرنده نامعتبر است", NULL);
        return -1;
    }
    if (b->n > GH_MAX_RECEPTORS) {
        gh_reply(cx, 400, "تعداد گیرندگان بیش از حد مجاز است", NULL);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!b->text[i] || !*b->text[i]) {
            gh_reply(cx, 400, "متن پیام خالی است", NULL);
            return -1;
        }
        if (!sim_line_ok(cx, b->line[i])) {
            gh_reply(cx, 412, "شماره خط نامعتبر است", NULL);
            return -1;
        }
    }
    enum sim_fault f = sim_fault(cx, 1);
    if (f) {
        gh_fault(cx, f);
        return -1;
    }
    if (b->group)
        *orig = sim_idem_get(cx->sim, cx->prov, b->ref[0], norig);
    double cost = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->to[i] || sim_bad_number(cx, b->to[i])) {
            gh_reply(cx, 422, "شماره گیرنده نامعتبر است", NULL);
            return -1;
        }
        if (b->group ? !*orig : !sim_idem_get(cx->sim, cx->prov, b->ref[i], NULL))
            cost += sim_cost(cx, b->text[i]);
    }
    if (cost > 0 && !sim_afford(cx, cost)) {
        gh_fault(cx, FAULT_NOCREDIT);
        return -1;
    }
    return 0;
}

/* Accepts (or finds again) the batch; results[i] = message for item i. */
static int gh_accept(struct sim_ctx *cx, const struct gh_batch *b, struct sim_msg **res)
{
    size_t norig = 0;
    struct sim_msg *orig = NULL;
    if (gh_check(cx, b, &orig, &norig))
        return -1;
    if (orig) {
        cx->acct->st_dups++;
        for (size_t i = 0; i < b->n; i++)
            res[i] = sim_msg_seq(cx->sim, orig->seq + (i < norig ? i : norig - 1));
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct sim_msg *m = b->group ? NULL : sim_idem_get(cx->sim, cx->prov, b->ref[i], NULL);
        if (m) {
            cx->acct->st_dups++;
        } else {
            m = sim_accept(cx, b->to[i], b->line[i], b->text[i], b->ref[i], NULL, b->date[i]);
            if (!m || (!b->group && sim_idem_put(cx->sim, cx->prov, b->ref[i], m->seq, 1))) {
                gh_reply(cx, 500, "out of memory", NULL);
                return -1;
            }
        }
        res[i] = m;
    }
    if (b->group && sim_idem_put(cx->sim, cx->prov, b->ref[0], res[0]->seq, b->n)) {
        gh_reply(cx, 500, "out of memory", NULL);
        return -1;
    }
    return 0;
}

enum { GH_SINGLE = 1, GH_BULK, GH_PAIR };

static void gh_send(struct sim_ctx *cx, int kind)
{
    cJSON *body = json_body(cx->req);
    const cJSON *items = kind == GH_PAIR ? json_get(body, "items") : NULL;
    const cJSON *recs = kind == GH_BULK ? json_get(body, "receptors") : NULL;
    size_t n = kind == GH_SINGLE ? 1
               : kind == GH_BULK ? (size_t)cJSON_GetArraySize(recs)
                                 : (size_t)cJSON_GetArraySize(items);
    struct gh_batch b = {.n = n, .group = kind == GH_BULK};
    char(*nb)[4][32] = calloc(n + 1, sizeof(*nb));
    b.to = calloc(n + 1, sizeof(char *));
    b.text = calloc(n + 1, sizeof(char *));
    b.line = calloc(n + 1, sizeof(char *));
    b.ref = calloc(n + 1, sizeof(char *));
    b.date = calloc(n + 1, sizeof(int64_t));
    struct sim_msg **res = calloc(n + 1, sizeof(*res));
    if (!nb || !b.to || !b.text || !b.line || !b.ref || !b.date || !res) {
        gh_reply(cx, 500, "out of memory", NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const cJSON *o = kind == GH_PAIR ? cJSON_GetArrayItem(items, (int)i) : body;
        b.line[i] = json_str(json_get(o, "lineNumber"), nb[i][0], sizeof(nb[i][0]));
        b.text[i] = json_str(json_get(o, "message"), nb[i][1], sizeof(nb[i][1]));
        b.ref[i] = json_str(json_get(o, "clientReferenceId"), nb[i][2], sizeof(nb[i][2]));
        b.date[i] = gh_date(json_get(o, "sendDate"));
        b.to[i] = kind == GH_BULK
                      ? json_str(cJSON_GetArrayItem(recs, (int)i), nb[i][3], sizeof(nb[i][3]))
                      : json_str(json_get(o, "receptor"), nb[i][3], sizeof(nb[i][3]));
        sim_rec_str(cx, "to", b.to[i]);
        sim_rec_str(cx, "from", b.line[i]);
        sim_rec_str(cx, "text", b.text[i]);
        sim_rec_str(cx, "idempotency_keys", b.ref[i]);
    }
    if (!body || (kind == GH_BULK && !cJSON_IsArray(recs)) ||
        (kind == GH_PAIR && !cJSON_IsArray(items))) {
        gh_reply(cx, 400, "درخواست نامعتبر است", NULL);
        goto out;
    }
    if (gh_accept(cx, &b, res))
        goto out;
    cJSON *data = NULL;
    double cost = 0;
    for (size_t i = 0; i < n; i++)
        cost += res[i]->cost;
    if (kind == GH_SINGLE) {
        data = gh_item(cx->sim, res[0]);
        cJSON_AddStringToObject(data, "message", res[0]->text);
    } else {
        data = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(data, kind == GH_BULK ? "receptors" : "items");
        for (size_t i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "receptor", res[i]->to);
            cJSON_AddStringToObject(e, "messageId", res[i]->id);
            if (kind == GH_PAIR && res[i]->idem)
                cJSON_AddStringToObject(e, "clientReferenceId", res[i]->idem);
            cJSON_AddItemToArray(arr, e);
        }
        cJSON_AddNumberToObject(data, "cost", cost);
        if (kind == GH_BULK) {
            cJSON_AddStringToObject(data, "lineNumber", res[0]->from ? res[0]->from : "");
            cJSON_AddStringToObject(data, "message", res[0]->text);
            if (b.ref[0])
                cJSON_AddStringToObject(data, "clientReferenceId", b.ref[0]);
        }
    }
    gh_reply(cx, 200, "عملیات با موفقیت انجام شد", data);
out:
    free(nb);
    free(b.to);
    free(b.text);
    free(b.line);
    free(b.ref);
    free(b.date);
    free(res);
    cJSON_Delete(body);
}

static void gh_status(struct sim_ctx *cx, const struct sim_form *q)
{
    const char *type = form_get(q, "Type");
    int by_ref = type && strcmp(type, "2") == 0;
    if (type && !by_ref && strcmp(type, "1") != 0)
        return gh_reply(cx, 400, "نوع نامعتبر است", NULL);
    cJSON *data = cJSON_CreateArray();
    const char *id;
    for (size_t i = 0; (id = form_nth(q, "Ids", i)); i++) {
        if (by_ref) {
            size_t n = 0;
            struct sim_msg *m = sim_idem_get(cx->sim, cx->prov, id, &n);
            for (size_t k = 0; m && k < n; k++)
                cJSON_AddItemToArray(data, gh_item(cx->sim, sim_msg_seq(cx->sim, m->seq + k)));
        } else {
            struct sim_msg *m = sim_msg_find(cx->sim, cx->prov, id);
            if (m)
                cJSON_AddItemToArray(data, gh_item(cx->sim, m));
        }
    }
    gh_reply(cx, 200, "عملیات با موفقیت انجام شد", data);
}

static void gh_received(struct sim_ctx *cx, const struct sim_form *q)
{
    const char *line = form_get(q, "LineNumber");
    const char *isread = form_get(q, "IsRead");
    int read = isread && strcasecmp(isread, "true") == 0;
    size_t n = 0;
    struct sim_mo **mo = sim_mo_take(cx->sim, cx->prov, line, 1000, read, !read, &n);
    if (!mo)
        return gh_reply(cx, 500, "out of memory", NULL);
    cJSON *data = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(data, "items");
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", mo[i]->id);
        cJSON_AddStringToObject(e, "message", mo[i]->text);
        cJSON_AddStringToObject(e, "sender", mo[i]->from);
        cJSON_AddStringToObject(e, "lineNumber", mo[i]->to);
        sim_time_iso(mo[i]->at_us, ts, sizeof(ts));
        cJSON_AddStringToObject(e, "receiveDate", ts);
        cJSON_AddItemToArray(items, e);
    }
    cJSON_AddNumberToObject(data, "totalCount", (double)n);
    free(mo);
    gh_reply(cx, 200, "عملیات با موفقیت انجام شد", data);
}

static void gh_handle(struct sim_ctx *cx)
{
    const char *op = path_eat(cx->sub, "/rest/api/v1/WebService/");
    int post = strcmp(cx->req->method, "POST") == 0, get = strcmp(cx->req->method, "GET") == 0;
    int kind = 0;
    if (op && post && strcasecmp(op, "SendSingleSMS") == 0)
        kind = GH_SINGLE;
    else if (op && post && strcasecmp(op, "SendBulkSMS") == 0)
        kind = GH_BULK;
    else if (op && post && strcasecmp(op, "SendPairToPairSMS") == 0)
        kind = GH_PAIR;
    int status = op && get && strcasecmp(op, "CheckSmsStatus") == 0;
    int recv = op && get && strcasecmp(op, "GetReceivedSmses") == 0;
    int info = op && get && strcasecmp(op, "GetAccountInformation") == 0;
    if (!kind && !status && !recv && !info)
        return gh_reply(cx, 404, "not found", NULL);
    if (kind)
        sim_rec(cx, op);
    const char *key = http_req_header(cx->req, "ApiKey");
    const char *want = cx->sim->creds.ghasedak_key;
    if (!key || strlen(key) != strlen(want) || !util_memeq_ct(key, want, strlen(want))) {
        cx->acct->st_auth++;
        return gh_reply(cx, 401, "کلید API نامعتبر است", NULL);
    }
    if (kind)
        return gh_send(cx, kind);
    enum sim_fault f = sim_fault(cx, 0);
    if (f)
        return gh_fault(cx, f);
    struct sim_form q = {0};
    if (form_parse(&q, cx->req->query, strlen(cx->req->query))) {
        form_free(&q);
        return gh_reply(cx, 400, "درخواست نامعتبر است", NULL);
    }
    if (status) {
        gh_status(cx, &q);
    } else if (recv) {
        gh_received(cx, &q);
    } else {
        char ts[40];
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "credit", cx->acct->balance);
        sim_time_iso(util_wall_us() + 31536000LL * 1000000, ts, sizeof(ts));
        cJSON_AddStringToObject(d, "expireDate", ts);
        cJSON_AddStringToObject(d, "plan", "simulated");
        gh_reply(cx, 200, "عملیات با موفقیت انجام شد", d);
    }
    form_free(&q);
}

const struct sim_provider prov_ghasedak = {
    .name = "ghasedak",
    .unit = "IRR",
    .lines = {"30005088", "210002100", NULL},
    .handle = gh_handle,
    .status_code = gh_code,
};
