/* control.c - the simulator's own API under /_sim/: configuration and
 * error injection, inbox injection, balances, what was received, stats,
 * reset. JSON in, JSON out. */
#include "provsim.h"

#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/util.h"

static const char *stage_name(enum sim_stage st)
{
    static const char *const n[] = {"queued", "sent", "delivered", "undelivered", "blocked"};
    return (unsigned)st < 5 ? n[st] : "?";
}

static void ctl_send(struct http_resp *resp, int status, cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        http_resp_send(resp, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
        return;
    }
    http_resp_send(resp, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

static void ctl_error(struct http_resp *resp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    ctl_send(resp, status, o);
}

static void ctl_ok(struct http_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    ctl_send(resp, 200, o);
}

static cJSON *cfg_json(const struct sim_account *a)
{
    const struct sim_cfg *c = &a->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "receipt_delay_ms", (double)c->receipt_delay_ms);
    cJSON *oc = cJSON_AddObjectToObject(o, "outcome");
    cJSON_AddNumberToObject(oc, "delivered", c->pct_delivered);
    cJSON_AddNumberToObject(oc, "undelivered", c->pct_undelivered);
    cJSON_AddNumberToObject(o, "rate_limit_every", (double)c->rate_every);
    cJSON_AddNumberToObject(o, "rate_limit_rps", c->rate_rps);
    cJSON_AddBoolToObject(o, "busy", c->busy);
    cJSON_AddNumberToObject(o, "busy_every", (double)c->busy_every);
    cJSON_AddBoolToObject(o, "no_credit", c->no_credit);
    cJSON_AddStringToObject(o, "bad_numbers", c->bad_pattern);
    cJSON_AddStringToObject(o, "blacklist", c->block_pattern);
    cJSON_AddNumberToObject(o, "latency_ms", (double)c->latency_ms);
    cJSON_AddNumberToObject(o, "fail_rate", c->fail_rate);
    cJSON_AddNumberToObject(o, "drop_rate", c->drop_rate);
    cJSON_AddNumberToObject(o, "drop_hold_ms", (double)c->drop_hold_ms);
    cJSON_AddNumberToObject(o, "price", c->price);
    cJSON_AddStringToObject(o, "callback_url", c->callback_url);
    cJSON_AddStringToObject(o, "inbound_url", c->inbound_url);
    cJSON_AddNumberToObject(o, "balance", a->balance);
    cJSON *l = cJSON_AddArrayToObject(o, "lines");
    for (size_t i = 0; i < a->nlines; i++)
        cJSON_AddItemToArray(l, cJSON_CreateString(a->lines[i]));
    return o;
}

static void ctl_config(struct sim *sim, struct http_req *req, struct http_resp *resp)
{
    if (strcmp(req->method, "POST") == 0) {
        char err[256] = "";
        cJSON *body = json_body(req);
        if (!body)
            return ctl_error(resp, 400, "body must be JSON");
        int rc = sim_config_apply(sim, body, err, sizeof(err));
        cJSON_Delete(body);
        if (rc)
            return ctl_error(resp, 400, err);
    }
    cJSON *o = cJSON_CreateObject();
    for (int p = 0; p < PROV_COUNT; p++)
        cJSON_AddItemToObject(o, sim_prov_name((enum sim_prov)p), cfg_json(&sim->acct[p]));
    ctl_send(resp, 200, o);
}

static void ctl_inbox(struct sim *sim, struct http_req *req, struct http_resp *resp)
{
    cJSON *b = json_body(req);
    char lb[32], fb[32];
    int p = sim_prov_parse(cJSON_GetStringValue(json_get(b, "provider")));
    const char *line = json_str(json_get(b, "line"), lb, sizeof(lb));
    const char *from = json_str(json_get(b, "from"), fb, sizeof(fb));
    const char *text = cJSON_GetStringValue(json_get(b, "text"));
    if (p < 0 || !from || !*from || !text) {
        cJSON_Delete(b);
        return ctl_error(resp, 400, "need provider, from, text (line optional)");
    }
    if (!line || !*line)
        line = sim->acct[p].nlines ? sim->acct[p].lines[0] : "";
    struct sim_mo *mo = sim_mo_add(sim, (enum sim_prov)p, line, from, text);
    cJSON_Delete(b);
    if (!mo)
        return ctl_error(resp, 500, "out of memory");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", mo->id);
    cJSON_AddStringToObject(o, "line", mo->to);
    ctl_send(resp, 200, o);
}

static void ctl_balance(struct sim *sim, struct http_req *req, struct http_resp *resp)
{
    if (strcmp(req->method, "POST") == 0) {
        cJSON *b = json_body(req);
        const cJSON *prov = json_get(b, "provider"), *bal = json_get(b, "balance");
        int ok = cJSON_IsObject(b);
        if (ok && prov) {
            int p = sim_prov_parse(cJSON_GetStringValue(prov));
            ok = p >= 0 && cJSON_IsNumber(bal);
            if (ok)
                sim->acct[p].balance = bal->valuedouble;
        } else if (ok) {
            const cJSON *it;
            cJSON_ArrayForEach(it, b) ok &= sim_prov_parse(it->string) >= 0 && cJSON_IsNumber(it);
            cJSON_ArrayForEach(it, b) if (ok) sim->acct[sim_prov_parse(it->string)].balance =
                it->valuedouble;
        }
        cJSON_Delete(b);
        if (!ok)
            return ctl_error(resp, 400, "need {\"provider\":NAME,\"balance\":N} or {NAME:N,...}");
    }
    cJSON *o = cJSON_CreateObject();
    for (int p = 0; p < PROV_COUNT; p++)
        cJSON_AddNumberToObject(o, sim_prov_name((enum sim_prov)p), sim->acct[p].balance);
    ctl_send(resp, 200, o);
}

static void ctl_messages(struct sim *sim, struct http_req *req, struct http_resp *resp)
{
    struct sim_form q = {0};
    int want = -1;
    if (form_parse(&q, req->query, strlen(req->query)) == 0 && form_get(&q, "provider")) {
        want = sim_prov_parse(form_get(&q, "provider"));
        if (want < 0) {
            form_free(&q);
            return ctl_error(resp, 400, "unknown provider");
        }
    }
    form_free(&q);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "messages");
    for (size_t i = 0; i < sim->nmsgs; i++) {
        struct sim_msg *m = sim->msgs[i];
        if (want >= 0 && (int)m->prov != want)
            continue;
        char ts[40];
        enum sim_stage st = sim_msg_stage(sim, m);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "provider", sim_prov_name(m->prov));
        cJSON_AddStringToObject(e, "id", m->id);
        cJSON_AddStringToObject(e, "to", m->to);
        cJSON_AddStringToObject(e, "from", m->from ? m->from : "");
        cJSON_AddStringToObject(e, "text", m->text);
        if (m->idem)
            cJSON_AddStringToObject(e, "idempotency_key", m->idem);
        else
            cJSON_AddNullToObject(e, "idempotency_key");
        cJSON_AddNumberToObject(e, "segments", m->segments);
        cJSON_AddStringToObject(e, "encoding", m->ucs2 ? "ucs2" : "gsm7");
        cJSON_AddNumberToObject(e, "cost", m->cost);
        cJSON_AddStringToObject(e, "stage", stage_name(st));
        cJSON_AddNumberToObject(e, "status", sim_providers[m->prov]->status_code(st));
        sim_time_iso(m->created_us, ts, sizeof(ts));
        cJSON_AddStringToObject(e, "created", ts);
        if (m->callback)
            cJSON_AddStringToObject(e, "status_callback", m->callback);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON *reqs = cJSON_AddArrayToObject(o, "requests");
    const cJSON *r;
    cJSON_ArrayForEach(r, sim->requests)
    {
        const char *pn = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "provider"));
        if (want < 0 || sim_prov_parse(pn) == want)
            cJSON_AddItemToArray(reqs, cJSON_Duplicate(r, 1));
    }
    cJSON *inbox = cJSON_AddArrayToObject(o, "inbox");
    for (size_t i = 0; i < sim->nmos; i++) {
        struct sim_mo *mo = sim->mos[i];
        if (want >= 0 && (int)mo->prov != want)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "provider", sim_prov_name(mo->prov));
        cJSON_AddStringToObject(e, "id", mo->id);
        cJSON_AddStringToObject(e, "from", mo->from);
        cJSON_AddStringToObject(e, "line", mo->to);
        cJSON_AddStringToObject(e, "text", mo->text);
        cJSON_AddBoolToObject(e, "read", mo->read);
        cJSON_AddItemToArray(inbox, e);
    }
    ctl_send(resp, 200, o);
}

static void ctl_stats(struct sim *sim, struct http_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "messages", (double)sim->nmsgs);
    cJSON_AddNumberToObject(o, "inbox", (double)sim->nmos);
    cJSON_AddNumberToObject(o, "request_records", (double)sim->nrequests);
    cJSON_AddNumberToObject(o, "request_records_dropped", (double)sim->requests_unlogged);
    cJSON *pv = cJSON_AddObjectToObject(o, "providers");
    for (int p = 0; p < PROV_COUNT; p++) {
        const struct sim_account *a = &sim->acct[p];
        cJSON *e = cJSON_AddObjectToObject(pv, sim_prov_name((enum sim_prov)p));
        cJSON_AddNumberToObject(e, "requests", (double)a->st_requests);
        cJSON_AddNumberToObject(e, "send_requests", (double)a->st_sends);
        cJSON_AddNumberToObject(e, "messages", (double)a->st_messages);
        cJSON_AddNumberToObject(e, "duplicates", (double)a->st_dups);
        cJSON_AddNumberToObject(e, "rate_limited", (double)a->st_rate);
        cJSON_AddNumberToObject(e, "busy", (double)a->st_busy);
        cJSON_AddNumberToObject(e, "no_credit", (double)a->st_nocredit);
        cJSON_AddNumberToObject(e, "bad_number", (double)a->st_badnum);
        cJSON_AddNumberToObject(e, "blocked", (double)a->st_blocked);
        cJSON_AddNumberToObject(e, "bad_auth", (double)a->st_auth);
        cJSON_AddNumberToObject(e, "http_5xx", (double)a->st_5xx);
        cJSON_AddNumberToObject(e, "dropped", (double)a->st_drop);
        cJSON_AddNumberToObject(e, "callbacks_ok", (double)a->st_push_ok);
        cJSON_AddNumberToObject(e, "callbacks_failed", (double)a->st_push_fail);
        cJSON_AddNumberToObject(e, "balance", a->balance);
        cJSON_AddStringToObject(e, "unit", sim_providers[p]->unit);
    }
    ctl_send(resp, 200, o);
}

void control_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct sim *sim = ud;
    const char *op = path_eat(req->path, "/_sim/");
    int post = strcmp(req->method, "POST") == 0, get = strcmp(req->method, "GET") == 0;
    if (!op)
        return ctl_error(resp, 404, "not found");
    if (strcmp(op, "config") == 0 && (post || get))
        return ctl_config(sim, req, resp);
    if (strcmp(op, "inbox") == 0 && post)
        return ctl_inbox(sim, req, resp);
    if (strcmp(op, "balance") == 0 && (post || get))
        return ctl_balance(sim, req, resp);
    if (strcmp(op, "messages") == 0 && get)
        return ctl_messages(sim, req, resp);
    if (strcmp(op, "stats") == 0 && get)
        return ctl_stats(sim, resp);
    if (strcmp(op, "reset") == 0 && post) {
        sim_reset(sim);
        log_debug("simulator reset", "messages=0");
        return ctl_ok(resp);
    }
    if (strcmp(op, "health") == 0 && get)
        return ctl_ok(resp);
    ctl_error(resp, 404, "no such control endpoint");
}
