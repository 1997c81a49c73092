/* kavenegar.c - Kavenegar REST: /v1/{API_KEY}/{scope}/{method}.json,
 * parameters in the query or a form body (GET or POST), every reply in
 * the {"return":{status,message},"entries":...} envelope with the HTTP
 * status equal to return.status. */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>

#include "smsys/util.h"

#define KV_MAX_RECEPTORS 200
#define KV_MAX_STATUS    500

static int kv_code(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return 1;
    case STAGE_SENT:
        return 4;
    case STAGE_DELIVERED:
        return 10;
    case STAGE_UNDELIVERED:
        return 11;
    case STAGE_BLOCKED:
        return 14;
    }
    return 1;
}

static const char *kv_text(int code)
{
    switch (code) {
    case 1:
        return "در صف ارسال";
    case 2:
        return "زمان بندی شده";
    case 4:
        return "ارسال شده به مخابرات";
    case 10:
        return "رسیده به گیرنده";
    case 11:
        return "نرسیده به گیرنده";
    case 14:
        return "مسدود شده";
    case 100:
        return "شناسه پیامک نامعتبر است";
    }
    return "";
}

/* The code a message shows now (2 while a scheduled date is ahead). */
static int kv_msg_code(struct sim *sim, struct sim_msg *m)
{
    enum sim_stage st = sim_msg_stage(sim, m);
    if (st == STAGE_QUEUED && m->due_us > util_wall_us())
        return 2;
    return kv_code(st);
}

static void kv_reply(struct sim_ctx *cx, int status, const char *message, cJSON *entries)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *ret = cJSON_AddObjectToObject(root, "return");
    cJSON_AddNumberToObject(ret, "status", status);
    cJSON_AddStringToObject(ret, "message", message);
    if (entries)
        cJSON_AddItemToObject(root, "entries", entries);
    else
        cJSON_AddNullToObject(root, "entries");
    if (cx->rec && status != 200)
        cJSON_AddNumberToObject(cx->rec, "code", status);
    sim_reply_json(cx, status, root);
}

static void kv_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        kv_reply(cx, 429, "تعداد درخواست ها بیش از حد مجاز است", NULL);
    else if (f == FAULT_BUSY)
        kv_reply(cx, 409, "سرور قادر به پاسخگوئی نیست بعدا تلاش کنید", NULL);
    else
        kv_reply(cx, 418, "اعتبار حساب شما کافی نیست", NULL);
}

static cJSON *kv_entry(struct sim *sim, struct sim_msg *m)
{
    cJSON *e = cJSON_CreateObject();
    int code = kv_msg_code(sim, m);
    cJSON_AddNumberToObject(e, "messageid", strtod(m->id, NULL));
    cJSON_AddStringToObject(e, "message", m->text);
    cJSON_AddNumberToObject(e, "status", code);
    cJSON_AddStringToObject(e, "statustext", kv_text(code));
    cJSON_AddStringToObject(e, "sender", m->from ? m->from : "");
    cJSON_AddStringToObject(e, "receptor", m->to);
    cJSON_AddNumberToObject(e, "date", (double)(m->created_us / 1000000));
    cJSON_AddNumberToObject(e, "cost", m->cost);
    return e;
}

/* Shared by send.json and sendarray.json: n messages, each with its own
 * receptor/sender/text and optional local id. */
static void kv_send(struct sim_ctx *cx, size_t n, char **to, char **from, char **text,
                    char **localid, long long date)
{
    for (size_t i = 0; i < n; i++) {
        sim_rec_str(cx, "to", to[i]);
        sim_rec_str(cx, "from", from[i]);
        sim_rec_str(cx, "text", text[i]);
        sim_rec_str(cx, "idempotency_keys", localid ? localid[i] : NULL);
    }
    if (n == 0)
        return kv_reply(cx, 411, "گیرنده نامعتبر است", NULL);
    if (n > KV_MAX_RECEPTORS)
        return kv_reply(cx, 414, "تعداد گیرندگان بیش از حد مجاز است", NULL);
    for (size_t i = 0; i < n; i++) {
        if (!text[i] || !*text[i])
            return kv_reply(cx, 413, "متن پیام خالی است", NULL);
        if (!sim_line_ok(cx, from[i]))
            return kv_reply(cx, 412, "ارسال کننده نامعتبر است", NULL);
    }
    enum sim_fault f = sim_fault(cx, 1);
    if (f)
        return kv_fault(cx, f);
    double cost = 0;
    for (size_t i = 0; i < n; i++) {
        if (sim_bad_number(cx, to[i]))
            return kv_reply(cx, 411, "گیرنده نامعتبر است", NULL);
        if (!localid || !sim_idem_get(cx->sim, cx->prov, localid[i], NULL))
            cost += sim_cost(cx, text[i]);
    }
    if (cost > 0 && !sim_afford(cx, cost))
        return kv_fault(cx, FAULT_NOCREDIT);
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        const char *key = localid ? localid[i] : NULL;
        struct sim_msg *m = sim_idem_get(cx->sim, cx->prov, key, NULL);
        if (m) {
            cx->acct->st_dups++;
        } else {
            m = sim_accept(cx, to[i], from[i], text[i], key, NULL, date);
            if (!m || sim_idem_put(cx->sim, cx->prov, key, m->seq, 1)) {
                cJSON_Delete(entries);
                return kv_reply(cx, 500, "out of memory", NULL);
            }
        }
        cJSON_AddItemToArray(entries, kv_entry(cx->sim, m));
    }
    kv_reply(cx, 200, "تایید شد", entries);
}

static void kv_send_json(struct sim_ctx *cx, const struct sim_form *f)
{
    size_t n = 0, nl = 0;
    char **to = split_list(form_get(f, "receptor"), &n);
    char **lid = form_get(f, "localid") ? split_list(form_get(f, "localid"), &nl) : NULL;
    const char *sender = form_get(f, "sender");
    const char *message = form_get(f, "message");
    const char *date = form_get(f, "date");
    char **from = calloc(n + 1, sizeof(char *));
    char **text = calloc(n + 1, sizeof(char *));
    long long when = 0;
    if (!to || !from || !text || (form_get(f, "localid") && !lid)) {
        kv_reply(cx, 500, "out of memory", NULL);
        goto out;
    }
    const char *def = cx->acct->nlines ? cx->acct->lines[0] : "";
    for (size_t i = 0; i < n; i++) {
        from[i] = (char *)(sender && *sender ? sender : def);
        text[i] = (char *)(message ? message : "");
    }
    if (lid && nl != n) {
        kv_reply(cx, 400, "تعداد localid با تعداد گیرندگان برابر نیست", NULL);
        goto out;
    }
    if (date && *date && util_parse_int(date, 0, 4102444800LL, &when)) {
        kv_reply(cx, 417, "تاریخ ارسال نامعتبر است", NULL);
        goto out;
    }
    kv_send(cx, n, to, from, text, lid, when);
out:
    free(to);
    free(lid);
    free(from);
    free(text);
}

/* sendarray.json: receptor, sender, message as JSON arrays; the local ids
 * as a JSON array or a comma list. */
static char **kv_json_list(const char *s, size_t *n, int *bad)
{
    *n = 0;
    if (!s)
        return NULL;
    cJSON *a = cJSON_Parse(s);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        *bad = 1;
        return NULL;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(a), total = 0;
    const cJSON *it;
    char tmp[32];
    cJSON_ArrayForEach(it, a)
    {
        const char *v = json_str(it, tmp, sizeof(tmp));
        total += (v ? strlen(v) : 0) + 1;
    }
    char **out = malloc((cnt + 1) * sizeof(char *) + total);
    if (!out) {
        cJSON_Delete(a);
        *bad = 1;
        return NULL;
    }
    char *p = (char *)(out + cnt + 1);
    cJSON_ArrayForEach(it, a)
    {
        const char *v = json_str(it, tmp, sizeof(tmp));
        size_t l = v ? strlen(v) : 0;
        memcpy(p, v ? v : "", l + 1);
        out[(*n)++] = p;
        p += l + 1;
    }
    out[*n] = NULL;
    cJSON_Delete(a);
    return out;
}

static void kv_sendarray(struct sim_ctx *cx, const struct sim_form *f)
{
    int bad = 0;
    size_t nt = 0, ns = 0, nm = 0, nl = 0;
    char **to = kv_json_list(form_get(f, "receptor"), &nt, &bad);
    char **from = kv_json_list(form_get(f, "sender"), &ns, &bad);
    char **text = kv_json_list(form_get(f, "message"), &nm, &bad);
    const char *lids = form_get(f, "localmessageids");
    char **lid = NULL;
    if (lids && lids[0] == '[')
        lid = kv_json_list(lids, &nl, &bad);
    else if (lids)
        lid = split_list(lids, &nl);
    if (bad || !to || !from || !text || nt != ns || nt != nm || (lid && nl != nt))
        kv_reply(cx, 400, "پارامترها ناقص هستند", NULL);
    else
        kv_send(cx, nt, to, from, text, lid, 0);
    free(to);
    free(from);
    free(text);
    free(lid);
}

static void kv_status(struct sim_ctx *cx, const struct sim_form *f, int by_local)
{
    size_t n = 0;
    char **ids = split_list(form_get(f, by_local ? "localid" : "messageid"), &n);
    if (!ids)
        return kv_reply(cx, 500, "out of memory", NULL);
    if (n == 0 || n > KV_MAX_STATUS) {
        free(ids);
        return kv_reply(cx, n ? 414 : 400, "پارامترها ناقص هستند", NULL);
    }
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        struct sim_msg *m = by_local ? sim_idem_get(cx->sim, cx->prov, ids[i], NULL)
                                     : sim_msg_find(cx->sim, cx->prov, ids[i]);
        cJSON *e = cJSON_CreateObject();
        int code = m ? kv_msg_code(cx->sim, m) : 100;
        cJSON_AddNumberToObject(e, "messageid",
                                m ? strtod(m->id, NULL) : (by_local ? 0 : strtod(ids[i], NULL)));
        if (by_local)
            cJSON_AddStringToObject(e, "localid", ids[i]);
        cJSON_AddNumberToObject(e, "status", code);
        cJSON_AddStringToObject(e, "statustext", kv_text(code));
        cJSON_AddItemToArray(entries, e);
    }
    free(ids);
    kv_reply(cx, 200, "تایید شد", entries);
}

static void kv_receive(struct sim_ctx *cx, const struct sim_form *f)
{
    const char *line = form_get(f, "linenumber");
    const char *isread = form_get(f, "isread");
    if (!line || !*line)
        return kv_reply(cx, 400, "پارامترها ناقص هستند", NULL);
    int read = isread && strcmp(isread, "1") == 0;
    size_t n = 0;
    struct sim_mo **mo = sim_mo_take(cx->sim, cx->prov, line, 3000, read, !read, &n);
    if (!mo)
        return kv_reply(cx, 500, "out of memory", NULL);
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "messageid", strtod(mo[i]->id, NULL));
        cJSON_AddStringToObject(e, "message", mo[i]->text);
        cJSON_AddStringToObject(e, "sender", mo[i]->from);
        cJSON_AddStringToObject(e, "receptor", mo[i]->to);
        cJSON_AddNumberToObject(e, "date", (double)(mo[i]->at_us / 1000000));
        cJSON_AddItemToArray(entries, e);
    }
    free(mo);
    kv_reply(cx, 200, "تایید شد", entries);
}

static void kv_handle(struct sim_ctx *cx)
{
    const char *rest = path_eat(cx->sub, "/v1/");
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!slash)
        return kv_reply(cx, 404, "not found", NULL);
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(slash - rest), rest);
    const char *method = slash + 1;
    int op = 0;
    static const char *const ops[] = {
        "sms/send.json",    "sms/sendarray.json",
        "sms/status.json",  "sms/statuslocalmessageid.json",
        "sms/receive.json", "account/info.json",
    };
    for (size_t i = 0; i < ARRAY_LEN(ops); i++)
        if (strcmp(method, ops[i]) == 0)
            op = (int)i + 1;
    if (!op)
        return kv_reply(cx, 404, "متد نامعتبر است", NULL);
    if (op <= 2)
        sim_rec(cx, op == 1 ? "sms/send" : "sms/sendarray");
    const char *want = cx->sim->creds.kavenegar_key;
    if (http_urldecode(key, 0) < 0 || strlen(key) != strlen(want) ||
        !util_memeq_ct(key, want, strlen(want))) {
        cx->acct->st_auth++;
        return kv_reply(cx, 403, "کد شناسائی API-Key معتبر نمی‌باشد", NULL);
    }
    struct sim_form f = {0};
    if (form_from_req(&f, cx->req)) {
        form_free(&f);
        return kv_reply(cx, 400, "پارامترها نامعتبر هستند", NULL);
    }
    if (op > 2) {
        enum sim_fault fl = sim_fault(cx, 0);
        if (fl) {
            form_free(&f);
            return kv_fault(cx, fl);
        }
    }
    switch (op) {
    case 1:
        kv_send_json(cx, &f);
        break;
    case 2:
        kv_sendarray(cx, &f);
        break;
    case 3:
    case 4:
        kv_status(cx, &f, op == 4);
        break;
    case 5:
        kv_receive(cx, &f);
        break;
    default: {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "remaincredit", cx->acct->balance);
        cJSON_AddNumberToObject(e, "expiredate", (double)(util_wall_us() / 1000000 + 31536000));
        cJSON_AddStringToObject(e, "type", "master");
        kv_reply(cx, 200, "تایید شد", e);
    }
    }
    form_free(&f);
}

/* Delivery push to the configured callback URL (Kavenegar's per-line
 * callback; field names per providers.md, marked (?) there). */
static void kv_on_stage(struct sim *sim, struct sim_msg *m)
{
    const char *url = sim->acct[PROV_KAVENEGAR].cfg.callback_url;
    if (!url[0])
        return;
    char code[16];
    int c = kv_code(m->stage);
    snprintf(code, sizeof(code), "%d", c);
    const char *pairs[] = {"messageid", m->id, "status", code, "statustext", kv_text(c), NULL};
    hooks_post(sim, PROV_KAVENEGAR, url, pairs, NULL);
}

static void kv_on_mo(struct sim *sim, struct sim_mo *mo)
{
    const char *url = sim->acct[PROV_KAVENEGAR].cfg.callback_url;
    if (!url[0])
        return;
    char date[24];
    snprintf(date, sizeof(date), "%lld", (long long)(mo->at_us / 1000000));
    const char *pairs[] = {"messageid", mo->id, "message", mo->text, "sender", mo->from,
                           "receptor",  mo->to, "date",    date,     NULL};
    hooks_post(sim, PROV_KAVENEGAR, url, pairs, NULL);
}

const struct sim_provider prov_kavenegar = {
    .name = "kavenegar",
    .unit = "IRR",
    .lines = {"10004346", "2000500666", NULL},
    .handle = kv_handle,
    .status_code = kv_code,
    .on_stage = kv_on_stage,
    .on_mo = kv_on_mo,
};
