/* asanak.c - Asanak v2rest: POST /webservice/v2rest/<op>, username and
 * password inside every JSON body, envelope {"meta":{"status":200,
 * "message":"success"},"data":...}. No inbox API (providers.md). Logical
 * errors come back with HTTP 200 and the code in meta.status; auth, rate
 * limit and busy also set the HTTP status. */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/util.h"

#define AS_MAX_DEST 100

static int as_code(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return 1;
    case STAGE_SENT:
        return 2;
    case STAGE_DELIVERED:
        return 6;
    case STAGE_UNDELIVERED:
        return 7;
    case STAGE_BLOCKED:
        return 8;
    }
    return 1;
}

static void as_reply(struct sim_ctx *cx, int http, int status, const char *msg, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "meta");
    cJSON_AddNumberToObject(meta, "status", status);
    cJSON_AddStringToObject(meta, "message", msg);
    if (data)
        cJSON_AddItemToObject(root, "data", data);
    else
        cJSON_AddNullToObject(root, "data");
    if (cx->rec && status != 200)
        cJSON_AddNumberToObject(cx->rec, "code", status);
    sim_reply_json(cx, http, root);
}

static void as_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        as_reply(cx, 429, 429, "too many requests", NULL);
    else if (f == FAULT_BUSY)
        as_reply(cx, 503, 503, "service busy, try again later", NULL);
    else
        as_reply(cx, 200, 1005, "insufficient credit", NULL);
}

static void as_send(struct sim_ctx *cx, const cJSON *body)
{
    char sb[32], db[32], mb[32];
    const char *source = json_str(json_get(body, "source"), sb, sizeof(sb));
    const char *message = json_str(json_get(body, "message"), mb, sizeof(mb));
    size_t n = 0;
    char **to = split_list(json_str(json_get(body, "destination"), db, sizeof(db)), &n);
    if (!to)
        return as_reply(cx, 500, 500, "out of memory", NULL);
    sim_rec_str(cx, "from", source);
    for (size_t i = 0; i < n; i++) {
        sim_rec_str(cx, "to", to[i]);
        sim_rec_str(cx, "text", message);
    }
    double cost = 0;
    enum sim_fault f;
    if (n == 0 || n > AS_MAX_DEST) {
        as_reply(cx, 200, 1010, "invalid destination", NULL);
    } else if (!message || !*message) {
        as_reply(cx, 200, 1011, "empty message", NULL);
    } else if (!sim_line_ok(cx, source)) {
        as_reply(cx, 200, 1002, "line is not active", NULL);
    } else if ((f = sim_fault(cx, 1))) {
        as_fault(cx, f);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (sim_bad_number(cx, to[i])) {
                as_reply(cx, 200, 1010, "invalid destination", NULL);
                goto out;
            }
            cost += sim_cost(cx, message);
        }
        if (!sim_afford(cx, cost)) {
            as_fault(cx, FAULT_NOCREDIT);
            goto out;
        }
        cJSON *ids = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            struct sim_msg *m = sim_accept(cx, to[i], source, message, NULL, NULL, 0);
            if (!m) {
                cJSON_Delete(ids);
                as_reply(cx, 500, 500, "out of memory", NULL);
                goto out;
            }
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(strtod(m->id, NULL)));
        }
        as_reply(cx, 200, 200, "success", ids);
    }
out:
    free(to);
}

static void as_status(struct sim_ctx *cx, const cJSON *body)
{
    char b[32];
    size_t n = 0;
    char **ids = split_list(json_str(json_get(body, "msgid"), b, sizeof(b)), &n);
    if (!ids)
        return as_reply(cx, 500, 500, "out of memory", NULL);
    if (n == 0) {
        free(ids);
        return as_reply(cx, 200, 400, "msgid is required", NULL);
    }
    cJSON *data = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        struct sim_msg *m = sim_msg_find(cx->sim, cx->prov, ids[i]);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "msgid", strtod(ids[i], NULL));
        cJSON_AddNumberToObject(e, "status", m ? as_code(sim_msg_stage(cx->sim, m)) : -1);
        cJSON_AddItemToArray(data, e);
    }
    free(ids);
    as_reply(cx, 200, 200, "success", data);
}

static void as_handle(struct sim_ctx *cx)
{
    const char *op = path_eat(cx->sub, "/webservice/v2rest/");
    static const char *const ops[] = {"sendsms", "msgstatus", "getcredit", "getrialcredit"};
    int k = 0;
    for (size_t i = 0; op && i < ARRAY_LEN(ops); i++)
        if (strcasecmp(op, ops[i]) == 0)
            k = (int)i + 1;
    if (!k || strcmp(cx->req->method, "POST") != 0)
        return as_reply(cx, 404, 404, "not found", NULL);
    if (k == 1)
        sim_rec(cx, "sendsms");
    cJSON *body = json_body(cx->req);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return as_reply(cx, 400, 400, "body must be a JSON object", NULL);
    }
    const struct sim_creds *cr = &cx->sim->creds;
    const char *u = cJSON_GetStringValue(json_get(body, "username"));
    const char *pw = cJSON_GetStringValue(json_get(body, "password"));
    if (!u || !pw || strcmp(u, cr->asanak_user) != 0 || strlen(pw) != strlen(cr->asanak_pass) ||
        !util_memeq_ct(pw, cr->asanak_pass, strlen(pw))) {
        cx->acct->st_auth++;
        as_reply(cx, 401, 401, "invalid username or password", NULL);
    } else if (k == 1) {
        as_send(cx, body);
    } else {
        enum sim_fault f = sim_fault(cx, 0);
        if (f) {
            as_fault(cx, f);
        } else if (k == 2) {
            as_status(cx, body);
        } else {
            double credit = cx->acct->balance;
            /* getcredit: messages left; getrialcredit: the money (IRR). */
            if (k == 3 && cx->acct->cfg.price > 0)
                credit = (double)(long long)(credit / cx->acct->cfg.price);
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNumberToObject(d, "credit", credit);
            as_reply(cx, 200, 200, "success", d);
        }
    }
    cJSON_Delete(body);
}

const struct sim_provider prov_asanak = {
    .name = "asanak",
    .unit = "IRR",
    .lines = {"9821000000", "98200011", NULL},
    .handle = as_handle,
    .status_code = as_code,
};
