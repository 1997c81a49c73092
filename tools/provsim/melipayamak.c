/* melipayamak.c - the Payamak-panel legacy REST (Melipayamak and its
 * sister brands): POST /api/SendSMS/<Op>, username/password in a form
 * (or JSON) body, reply {"Value":"...","RetStatus":1,"StrRetStatus":"Ok"}
 * always with HTTP 200. On error Value and RetStatus carry the code. */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/util.h"

#define MP_MAX_TO 100

static int mp_code(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return 0; /* sent to the operator */
    case STAGE_SENT:
        return 8; /* reached the operator */
    case STAGE_DELIVERED:
        return 1;
    case STAGE_UNDELIVERED:
        return 2;
    case STAGE_BLOCKED:
        return 35;
    }
    return 100;
}

static void mp_reply(struct sim_ctx *cx, const char *value, int ret, const char *str, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Value", value);
    cJSON_AddNumberToObject(root, "RetStatus", ret);
    cJSON_AddStringToObject(root, "StrRetStatus", str);
    if (data)
        cJSON_AddItemToObject(root, "Data", data);
    if (cx->rec && ret != 1)
        cJSON_AddNumberToObject(cx->rec, "code", ret);
    sim_reply_json(cx, 200, root);
}

static void mp_error(struct sim_ctx *cx, int code, const char *str)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", code);
    mp_reply(cx, v, code, str, NULL);
}

static void mp_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        mp_error(cx, 3, "LimitReached");
    else if (f == FAULT_BUSY)
        mp_error(cx, 6, "SystemUpdating");
    else
        mp_error(cx, 2, "NoCredit");
}

/* Parameters from a form body, the query, or a JSON object body. */
struct mp_params {
    struct sim_form form;
    cJSON *json;
    char tmp[8][32];
    int ntmp;
};

static const char *mp_get(struct mp_params *p, const char *key)
{
    const char *v = form_get(&p->form, key);
    if (v || !p->json)
        return v;
    int i = p->ntmp < 8 ? p->ntmp++ : 7;
    return json_str(json_get(p->json, key), p->tmp[i], sizeof(p->tmp[i]));
}

static void mp_send(struct sim_ctx *cx, struct mp_params *p)
{
    size_t n = 0;
    const char *from = mp_get(p, "from");
    const char *text = mp_get(p, "text");
    char **to = split_list(mp_get(p, "to"), &n);
    struct buf ids = BUF_INIT;
    if (!to)
        return mp_error(cx, 500, "InternalError");
    sim_rec_str(cx, "from", from);
    for (size_t i = 0; i < n; i++) {
        sim_rec_str(cx, "to", to[i]);
        sim_rec_str(cx, "text", text);
    }
    double cost = 0;
    enum sim_fault f;
    if (n == 0 || n > MP_MAX_TO) {
        mp_error(cx, 16, "InvalidRecipient");
    } else if (!text || !*text) {
        mp_error(cx, 17, "EmptyText");
    } else if (!sim_line_ok(cx, from)) {
        mp_error(cx, 5, "InvalidSender");
    } else if ((f = sim_fault(cx, 1))) {
        mp_fault(cx, f);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (sim_bad_number(cx, to[i])) {
                mp_error(cx, 16, "InvalidRecipient");
                goto out;
            }
            cost += sim_cost(cx, text);
        }
        if (!sim_afford(cx, cost)) {
            mp_fault(cx, FAULT_NOCREDIT);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            struct sim_msg *m = sim_accept(cx, to[i], from, text, NULL, NULL, 0);
            if (!m || (i && buf_putc(&ids, ',')) || buf_puts(&ids, m->id)) {
                mp_error(cx, 500, "InternalError");
                goto out;
            }
        }
        mp_reply(cx, ids.data, 1, "Ok", NULL);
    }
out:
    buf_free(&ids);
    free(to);
}

static void mp_messages(struct sim_ctx *cx, struct mp_params *p)
{
    long long loc = 1, index = 0, count = 100;
    const char *l = mp_get(p, "location"), *ix = mp_get(p, "index"), *c = mp_get(p, "count");
    const char *line = mp_get(p, "from");
    if ((l && util_parse_int(l, 0, 3, &loc)) || (ix && util_parse_int(ix, 0, 1000000, &index)) ||
        (c && util_parse_int(c, 1, 1000, &count)))
        return mp_error(cx, 11, "InvalidParameter");
    cJSON *data = cJSON_CreateArray();
    size_t n = 0;
    if (loc == 1) {
        struct sim_mo **mo =
            sim_mo_take(cx->sim, cx->prov, line, (size_t)(index + count), 0, 0, &n);
        if (!mo) {
            cJSON_Delete(data);
            return mp_error(cx, 500, "InternalError");
        }
        for (size_t i = (size_t)index; i < n; i++) {
            char ts[40];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "MsgID", strtod(mo[i]->id, NULL));
            cJSON_AddStringToObject(e, "Body", mo[i]->text);
            cJSON_AddStringToObject(e, "Sender", mo[i]->from);
            cJSON_AddStringToObject(e, "Receiver", mo[i]->to);
            sim_time_iso(mo[i]->at_us, ts, sizeof(ts));
            cJSON_AddStringToObject(e, "SendDate", ts);
            cJSON_AddBoolToObject(e, "IsRead", 0);
            cJSON_AddItemToArray(data, e);
            mo[i]->read = 1; /* read-once: only what was returned */
        }
        free(mo);
    }
    char v[24];
    snprintf(v, sizeof(v), "%d", cJSON_GetArraySize(data));
    mp_reply(cx, v, 1, "Ok", data);
}

static void mp_handle(struct sim_ctx *cx)
{
    const char *op = path_eat(cx->sub, "/api/SendSMS/");
    static const char *const ops[] = {"SendSMS", "GetDeliveries2", "GetMessages", "GetCredit",
                                      "GetUserNumbers"};
    int k = 0;
    for (size_t i = 0; op && i < ARRAY_LEN(ops); i++)
        if (strcasecmp(op, ops[i]) == 0)
            k = (int)i + 1;
    if (!k || strcmp(cx->req->method, "POST") != 0) {
        cx->ctype = "text/plain";
        cx->status = 404;
        buf_puts(&cx->body, "not found\n");
        return;
    }
    if (k == 1)
        sim_rec(cx, "SendSMS");
    struct mp_params p;
    memset(&p, 0, sizeof(p));
    const char *ct = http_req_header(cx->req, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) == 0)
        p.json = json_body(cx->req);
    if (form_from_req(&p.form, cx->req)) {
        mp_error(cx, 11, "InvalidParameter");
        goto out;
    }
    const char *u = mp_get(&p, "username"), *pw = mp_get(&p, "password");
    const struct sim_creds *cr = &cx->sim->creds;
    if (!u || !pw || strcmp(u, cr->melipayamak_user) != 0 ||
        strlen(pw) != strlen(cr->melipayamak_pass) ||
        !util_memeq_ct(pw, cr->melipayamak_pass, strlen(pw))) {
        cx->acct->st_auth++;
        mp_error(cx, 0, "InvalidUserPass");
        goto out;
    }
    if (k == 1) {
        mp_send(cx, &p);
        goto out;
    }
    enum sim_fault f = sim_fault(cx, 0);
    if (f) {
        mp_fault(cx, f);
        goto out;
    }
    char v[64];
    if (k == 2) {
        struct sim_msg *m = sim_msg_find(cx->sim, cx->prov, mp_get(&p, "recId"));
        snprintf(v, sizeof(v), "%d", m ? mp_code(sim_msg_stage(cx->sim, m)) : 100);
        mp_reply(cx, v, 1, "Ok", NULL);
    } else if (k == 3) {
        mp_messages(cx, &p);
    } else if (k == 4) {
        snprintf(v, sizeof(v), "%.2f", cx->acct->balance);
        mp_reply(cx, v, 1, "Ok", NULL);
    } else {
        cJSON *d = cJSON_CreateArray();
        for (size_t i = 0; i < cx->acct->nlines; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "ID", (double)(i + 1));
            cJSON_AddStringToObject(e, "Number", cx->acct->lines[i]);
            cJSON_AddItemToArray(d, e);
        }
        snprintf(v, sizeof(v), "%zu", cx->acct->nlines);
        mp_reply(cx, v, 1, "Ok", d);
    }
out:
    form_free(&p.form);
    cJSON_Delete(p.json);
}

const struct sim_provider prov_melipayamak = {
    .name = "melipayamak",
    .unit = "IRR",
    .lines = {"50004001234567", "10008663", NULL},
    .handle = mp_handle,
    .status_code = mp_code,
};
