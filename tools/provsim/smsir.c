/* smsir.c - SMS.ir REST v1: X-API-KEY header, JSON bodies, envelope
 * {"status":1,"message":"...","data":...}; HTTP 400 logical errors, 401
 * auth, 429 rate limit. */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>

#include "smsys/util.h"

#define SI_MAX_MOBILES 100

static int si_code(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return 3; /* processing at the operator */
    case STAGE_SENT:
        return 5; /* reached the operator */
    case STAGE_DELIVERED:
        return 1;
    case STAGE_UNDELIVERED:
        return 2;
    case STAGE_BLOCKED:
        return 7;
    }
    return 3;
}

static void si_reply(struct sim_ctx *cx, int http, int status, const char *msg, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "status", status);
    cJSON_AddStringToObject(root, "message", msg);
    if (data)
        cJSON_AddItemToObject(root, "data", data);
    else
        cJSON_AddNullToObject(root, "data");
    if (cx->rec && status != 1)
        cJSON_AddNumberToObject(cx->rec, "code", status);
    sim_reply_json(cx, http, root);
}

static void si_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        si_reply(cx, 429, 20, "تعداد درخواست ها بیش از حد مجاز است", NULL);
    else if (f == FAULT_BUSY)
        si_reply(cx, 503, 0, "سرویس موقتا در دسترس نیست", NULL);
    else
        si_reply(cx, 400, 102, "اعتبار کافی نیست", NULL);
}

static int64_t si_date(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (int64_t)v->valuedouble : 0;
}

/* bulk (one text) and likeTolike (one text per mobile). */
static void si_send(struct sim_ctx *cx, int like)
{
    cJSON *body = json_body(cx->req);
    char lbuf[32], mbuf[32];
    const char *line = json_str(json_get(body, "lineNumber"), lbuf, sizeof(lbuf));
    const cJSON *mobiles = json_get(body, "mobiles");
    const cJSON *texts = like ? json_get(body, "messageTexts") : NULL;
    const char *text = like ? NULL : json_str(json_get(body, "messageText"), mbuf, sizeof(mbuf));
    int64_t date = si_date(json_get(body, "sendDateTime"));
    size_t n = cJSON_IsArray(mobiles) ? (size_t)cJSON_GetArraySize(mobiles) : 0;
    char **to = calloc(n + 1, sizeof(char *));
    const char **tx = calloc(n + 1, sizeof(char *));
    char(*nb)[32] = calloc(n + 1, sizeof(*nb));
    double cost = 0;
    if (!to || !tx || !nb) {
        si_reply(cx, 500, 0, "out of memory", NULL);
        goto out;
    }
    if (line)
        sim_rec_str(cx, "from", line);
    for (size_t i = 0; i < n; i++) {
        to[i] = (char *)json_str(cJSON_GetArrayItem(mobiles, (int)i), nb[i], sizeof(nb[i]));
        tx[i] = like ? cJSON_GetStringValue(cJSON_GetArrayItem(texts, (int)i)) : text;
        sim_rec_str(cx, "to", to[i]);
        sim_rec_str(cx, "text", tx[i]);
    }
    if (!body) {
        si_reply(cx, 400, 0, "درخواست نامعتبر است", NULL);
        goto out;
    }
    if (n == 0) {
        si_reply(cx, 400, 104, "شماره موبایل نامعتبر است", NULL);
        goto out;
    }
    if (n > SI_MAX_MOBILES) {
        si_reply(cx, 400, 105, "تعداد گیرندگان بیش از حد مجاز است", NULL);
        goto out;
    }
    if (like && (!cJSON_IsArray(texts) || (size_t)cJSON_GetArraySize(texts) != n)) {
        si_reply(cx, 400, 106, "تعداد متن ها با گیرندگان برابر نیست", NULL);
        goto out;
    }
    if (!sim_line_ok(cx, line)) {
        si_reply(cx, 400, 101, "شماره خط نامعتبر است", NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!tx[i] || !*tx[i]) {
            si_reply(cx, 400, 103, "متن پیام خالی است", NULL);
            goto out;
        }
    enum sim_fault f = sim_fault(cx, 1);
    if (f) {
        si_fault(cx, f);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (sim_bad_number(cx, to[i])) {
            si_reply(cx, 400, 104, "شماره موبایل نامعتبر است", NULL);
            goto out;
        }
        cost += sim_cost(cx, tx[i]);
    }
    if (!sim_afford(cx, cost)) {
        si_fault(cx, FAULT_NOCREDIT);
        goto out;
    }
    char pack[37];
    util_uuid4(pack);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "packId", pack);
    cJSON *ids = cJSON_AddArrayToObject(data, "messageIds");
    for (size_t i = 0; i < n; i++) {
        struct sim_msg *m = sim_accept(cx, to[i], line, tx[i], NULL, NULL, date);
        if (!m || !(m->pack = strdup(pack))) {
            cJSON_Delete(data);
            si_reply(cx, 500, 0, "out of memory", NULL);
            goto out;
        }
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(strtod(m->id, NULL)));
    }
    cJSON_AddNumberToObject(data, "cost", cost);
    si_reply(cx, 200, 1, "موفق", data);
out:
    free(to);
    free(tx);
    free(nb);
    cJSON_Delete(body);
}

static void si_report(struct sim_ctx *cx, const char *id)
{
    struct sim_msg *m = sim_msg_find(cx->sim, cx->prov, id);
    if (!m)
        return si_reply(cx, 400, 0, "پیامکی با این شناسه یافت نشد", NULL);
    enum sim_stage st = sim_msg_stage(cx->sim, m);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "messageId", strtod(m->id, NULL));
    cJSON_AddStringToObject(d, "mobile", m->to);
    cJSON_AddStringToObject(d, "messageText", m->text);
    cJSON_AddNumberToObject(d, "sendDateTime", (double)(m->created_us / 1000000));
    cJSON_AddStringToObject(d, "lineNumber", m->from ? m->from : "");
    cJSON_AddNumberToObject(d, "cost", m->cost);
    cJSON_AddNumberToObject(d, "deliveryState", si_code(st));
    if (m->done_us)
        cJSON_AddNumberToObject(d, "deliveryDateTime", (double)(m->done_us / 1000000));
    else
        cJSON_AddNullToObject(d, "deliveryDateTime");
    si_reply(cx, 200, 1, "موفق", d);
}

static void si_receive(struct sim_ctx *cx)
{
    struct sim_form f = {0};
    long long count = 100;
    const char *c = NULL;
    if (form_parse(&f, cx->req->query, strlen(cx->req->query)) == 0)
        c = form_get(&f, "count");
    if (c && util_parse_int(c, 1, 100, &count)) {
        form_free(&f);
        return si_reply(cx, 400, 0, "مقدار count نامعتبر است", NULL);
    }
    form_free(&f);
    size_t n = 0;
    struct sim_mo **mo = sim_mo_take(cx->sim, cx->prov, NULL, (size_t)count, 0, 1, &n);
    if (!mo)
        return si_reply(cx, 500, 0, "out of memory", NULL);
    cJSON *d = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "messageText", mo[i]->text);
        cJSON_AddStringToObject(e, "number", mo[i]->to);
        cJSON_AddStringToObject(e, "mobile", mo[i]->from);
        cJSON_AddNumberToObject(e, "receivedDateTime", (double)(mo[i]->at_us / 1000000));
        cJSON_AddItemToArray(d, e);
    }
    free(mo);
    si_reply(cx, 200, 1, "موفق", d);
}

static void si_handle(struct sim_ctx *cx)
{
    const char *m = cx->req->method;
    const char *rest = path_eat(cx->sub, "/v1/");
    int post = strcmp(m, "POST") == 0, get = strcmp(m, "GET") == 0;
    int bulk = rest && post && strcmp(rest, "send/bulk") == 0;
    int like = rest && post && strcasecmp(rest, "send/likeTolike") == 0;
    const char *id = rest && get ? path_eat(rest, "send/") : NULL;
    int recv = rest && get && strcmp(rest, "receive/latest") == 0;
    int credit = rest && get && strcmp(rest, "credit") == 0;
    int line = rest && get && strcmp(rest, "line") == 0;
    if (!bulk && !like && !(id && *id) && !recv && !credit && !line)
        return si_reply(cx, 404, 0, "not found", NULL);
    if (bulk || like)
        sim_rec(cx, bulk ? "send/bulk" : "send/likeTolike");
    const char *key = http_req_header(cx->req, "X-API-KEY");
    const char *want = cx->sim->creds.smsir_key;
    if (!key || strlen(key) != strlen(want) || !util_memeq_ct(key, want, strlen(want))) {
        cx->acct->st_auth++;
        return si_reply(cx, 401, 10, "کلید وب سرویس نامعتبر است", NULL);
    }
    if (bulk || like)
        return si_send(cx, like);
    enum sim_fault f = sim_fault(cx, 0);
    if (f)
        return si_fault(cx, f);
    if (recv)
        return si_receive(cx);
    if (credit)
        return si_reply(cx, 200, 1, "موفق", cJSON_CreateNumber(cx->acct->balance));
    if (line) {
        cJSON *d = cJSON_CreateArray();
        for (size_t i = 0; i < cx->acct->nlines; i++)
            cJSON_AddItemToArray(d, cJSON_CreateNumber(strtod(cx->acct->lines[i], NULL)));
        return si_reply(cx, 200, 1, "موفق", d);
    }
    si_report(cx, id);
}

const struct sim_provider prov_smsir = {
    .name = "smsir",
    .unit = "IRR",
    .lines = {"30007732000000", "3000505", NULL},
    .handle = si_handle,
    .status_code = si_code,
};
