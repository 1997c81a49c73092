/* kavenegar.c - Kavenegar REST (providers.md "Kavenegar").
 *
 * {base_url}/v1/{API_KEY}/{scope}/{method}.json, form POST, envelope
 * {"return":{"status":200,"message":"..."},"entries":...}. Sends carry our
 * message ids as `localid`, so Kavenegar deduplicates a resend after an
 * unknown outcome (supports_idempotency). Webhooks (delivery and inbound
 * callbacks set per line in the panel) are authenticated by the account's
 * webhook_token, given as ?token= in the callback URL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "smsys/http_server.h"
#include "smsys/util.h"
#include "conn_parsers.h"

#define KN_MAX_SEND   200
#define KN_MAX_STATUS 500

/* return.status -> class (providers.md) */
static const struct ch_code kn_codes[] = {
    {200, 0, "ok"},
    {400, SMSYS_EPERM, "bad or missing parameters"},
    {401, SMSYS_EACCOUNT, "account disabled"},
    {403, SMSYS_EACCOUNT, "invalid API key"},
    {406, SMSYS_EPERM, "missing required parameter"},
    {407, SMSYS_EACCOUNT, "access denied (IP or permission)"},
    {409, SMSYS_ETEMP, "server busy"},
    {411, SMSYS_EPERM, "invalid recipient"},
    {412, SMSYS_EPERM, "invalid sender line"},
    {413, SMSYS_EPERM, "empty or too long text"},
    {414, SMSYS_EPERM, "too many recipients in one request"},
    {416, SMSYS_EACCOUNT, "originating IP not allowed"},
    {417, SMSYS_EPERM, "invalid date"},
    {418, SMSYS_EACCOUNT, "not enough credit"},
    {419, SMSYS_EPERM, "array lengths differ"},
    {420, SMSYS_EPERM, "links not allowed in the text"},
    {422, SMSYS_EPERM, "invalid characters in the text"},
    {426, SMSYS_EACCOUNT, "method needs an advanced account"},
    {427, SMSYS_EACCOUNT, "line not allowed for this account"},
    {429, SMSYS_ETHROTTLED, "rate limit"},
    {451, SMSYS_ETHROTTLED, "too many requests from this IP"},
    {501, SMSYS_EACCOUNT, "test account: only the owner's number"},
    {0, 0, NULL},
};

static const struct ch_status_code kn_states[] = {
    {1, CONN_ST_QUEUED},       {2, CONN_ST_QUEUED},    {4, CONN_ST_SENT},
    {5, CONN_ST_SENT},         {6, CONN_ST_FAILED},    {10, CONN_ST_DELIVERED},
    {11, CONN_ST_UNDELIVERED}, {13, CONN_ST_CANCELED}, {14, CONN_ST_BLACKLISTED},
    {100, CONN_ST_UNKNOWN},    {-1, CONN_ST_UNKNOWN},
};

enum conn_status conn_kavenegar_status(long code)
{
    return ch_status_lookup(kn_states, code);
}

int conn_kavenegar_class(long code, const char **text)
{
    return ch_code_class(kn_codes, code, code >= 500 ? SMSYS_ETEMP : SMSYS_EPERM, text);
}

static int kn_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

static int kn_classify(long code, int http, const char **text)
{
    return conn_kavenegar_class(code, text);
}

static const struct ch_api kn_api = {
    .name = "kavenegar",
    .code = "return.status",
    .ok = 200,
    .message = "return.message",
    .data = "entries",
    .classify = kn_classify,
    .split_code = 411, /* invalid recipient */
    .flags = CH_API_STRICT,
};

/* Starts a form POST to {base_url}/v1/{API_KEY}/{op}.json. */
static int kn_path(struct conn *c, struct ch_req *r, const char *op)
{
    struct buf p = BUF_INIT;
    int rc = buf_puts(&p, "/v1/");
    if (!rc)
        rc = buf_put_urlenc(&p, c->env.apikey);
    if (!rc)
        rc = buf_printf(&p, "/%s.json", op);
    if (!rc)
        rc = ch_req_init(c, r, "POST", p.data);
    buf_free(&p);
    if (!rc)
        r->content_type = "application/x-www-form-urlencoded";
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

/* entries come in receptor order, each with its messageid and status */
static void kn_sent(struct ch_batch *b, const struct ch_reply *r)
{
    int n = cJSON_GetArraySize(r->data);
    for (size_t k = 0; k < b->n; k++) {
        struct ch_msg *m = &b->s->m[b->idx[k]];
        const cJSON *e = NULL;
        /* match by number to be sure */
        for (int j = 0; j < n && e == NULL; j++) {
            const cJSON *x = cJSON_GetArrayItem(r->data, ((int)k + j) % n);
            char rcp[40];
            if (ch_json_text(ch_json_get(x, "receptor"), rcp, sizeof rcp) == 0 &&
                strcmp(rcp, m->to) == 0)
                e = x;
        }
        if (e == NULL && n == (int)b->n)
            e = cJSON_GetArrayItem(r->data, (int)k);
        char id[64], d[64];
        long st = 1;
        if (e == NULL || ch_json_text(ch_json_get(e, "messageid"), id, sizeof id) != 0)
            continue; /* ch_batch_done: unknown outcome */
        ch_json_long(ch_json_get(e, "status"), &st);
        enum conn_status cs = conn_kavenegar_status(st);
        if (cs == CONN_ST_FAILED || cs == CONN_ST_BLACKLISTED) {
            snprintf(d, sizeof d, "kavenegar status %ld", st);
            ch_send_result(b->s, b->idx[k], SMSYS_EPERM, id, cs, 0, d);
        } else {
            ch_send_result(b->s, b->idx[k], 0, id, cs == CONN_ST_UNKNOWN ? CONN_ST_QUEUED : cs, 0,
                           NULL);
        }
    }
}

int conn_kavenegar_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &kn_api, http, body, len, kn_sent);
}

/* sms/send when every message has the same text and line, else sms/sendarray */
static int kn_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    struct ch_req r;
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    int same = 1;
    for (size_t k = 1; k < b->n; k++) {
        const struct ch_msg *m = &b->s->m[b->idx[k]];
        if (strcmp(m->text, m0->text) != 0 || strcmp(m->from, m0->from) != 0)
            same = 0;
    }
    int rc = kn_path(c, &r, same ? "sms/send" : "sms/sendarray");
    if (rc)
        return rc;
    struct buf rcp = BUF_INIT, ids = BUF_INIT;
    rc = ch_batch_join(b, 1, ",", &ids);
    if (same) {
        if (!rc)
            rc = ch_batch_join(b, 0, ",", &rcp);
        if (!rc)
            rc = http_client_form_add(&r.body, "receptor", rcp.data);
        if (!rc)
            rc = http_client_form_add(&r.body, "message", m0->text);
        if (!rc && m0->from[0])
            rc = http_client_form_add(&r.body, "sender", m0->from);
        if (!rc)
            rc = http_client_form_add(&r.body, "localid", ids.data);
    } else {
        cJSON *ra = cJSON_CreateArray(), *sa = cJSON_CreateArray(), *ma = cJSON_CreateArray();
        for (size_t k = 0; k < b->n; k++) {
            const struct ch_msg *m = &b->s->m[b->idx[k]];
            cJSON_AddItemToArray(ra, cJSON_CreateString(m->to));
            cJSON_AddItemToArray(sa, cJSON_CreateString(m->from));
            cJSON_AddItemToArray(ma, cJSON_CreateString(m->text));
        }
        char *rs = cJSON_PrintUnformatted(ra), *ss = cJSON_PrintUnformatted(sa),
             *ms = cJSON_PrintUnformatted(ma);
        if (rs == NULL || ss == NULL || ms == NULL)
            rc = rc ? rc : -ENOMEM;
        if (!rc)
            rc = http_client_form_add(&r.body, "receptor", rs);
        if (!rc)
            rc = http_client_form_add(&r.body, "sender", ss);
        if (!rc)
            rc = http_client_form_add(&r.body, "message", ms);
        if (!rc)
            rc = http_client_form_add(&r.body, "localmessageids", ids.data);
        free(rs);
        free(ss);
        free(ms);
        cJSON_Delete(ra);
        cJSON_Delete(sa);
        cJSON_Delete(ma);
    }
    if (!rc && m0->not_before > 0)
        rc = buf_printf(&r.body, "&date=%lld", (long long)m0->not_before);
    buf_free(&rcp);
    buf_free(&ids);
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    return ch_batch_submit(b, &r, conn_kavenegar_parse_send);
}

static int kn_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_NATIONAL, cb, ud, &s);
    if (rc)
        return rc;
    s->idempotent = 1; /* localid */
    return ch_send_run(s, KN_MAX_SEND, 0, kn_send_start, NULL);
}

/* ---- status -------------------------------------------------------------------- */

void conn_kavenegar_parse_status(struct ch_stq *q, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_stq_reply(q, &r, &kn_api, http, body, len) == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, r.data)
        {
            char id[64], txt[200] = "", d[300];
            long st;
            if (ch_json_text(ch_json_get(e, "messageid"), id, sizeof id) != 0 ||
                ch_json_long(ch_json_get(e, "status"), &st) != 0)
                continue;
            ch_json_text(ch_json_get(e, "statustext"), txt, sizeof txt);
            snprintf(d, sizeof d, "kavenegar status %ld%s%s", st, txt[0] ? ": " : "", txt);
            ch_stq_add(q, id, NULL, conn_kavenegar_status(st), 0, d);
        }
        ch_stq_result(q, 0, NULL);
    }
    ch_reply_free(&r);
}

static void kn_status_parse(struct ch_stq *q, const char *pid, int http, const char *body,
                            size_t len)
{
    conn_kavenegar_parse_status(q, http, body, len);
}

static int kn_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    struct buf list = BUF_INIT;
    int rc = kn_path(c, r, "sms/status");
    if (rc)
        return rc;
    for (size_t k = 0; !rc && k < n; k++)
        rc = buf_printf(&list, "%s%s", k ? "," : "", ids[k]);
    if (!rc)
        rc = http_client_form_add(&r->body, "messageid", list.data);
    buf_free(&list);
    if (rc)
        ch_req_free(r);
    return rc;
}

static int kn_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, KN_MAX_STATUS, kn_status_req, kn_status_parse, cb, ud);
}

/* ---- inbox, balance ---------------------------------------------------------- */

static const struct ch_mo_fields kn_mo = {
    .id = "messageid", .from = "sender", .to = "receptor", .text = "message", .date = "date"};

static void kn_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &kn_api, http, body, len) == 0)
        ch_inbox_list(op, r.data, &kn_mo);
    ch_reply_free(&r);
}

void conn_kavenegar_parse_inbox(int http, const char *body, size_t len, conn_inbox_cb cb, void *ud)
{
    struct ch_op op = {.inbox = cb, .ud = ud};
    kn_parse_inbox(NULL, &op, http, body, len);
}

static int kn_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    if (c->set.sender == NULL)
        return SMSYS_ECONFIG; /* receive.json needs the line: setting sender */
    struct ch_req r;
    int rc = kn_path(c, &r, "sms/receive");
    if (rc)
        return rc;
    rc = http_client_form_add(&r.body, "linenumber", c->set.sender);
    if (!rc)
        rc = http_client_form_add(&r.body, "isread", "0");
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    struct ch_op op = {.inbox = cb, .ud = ud, .parse = kn_parse_inbox};
    return ch_op_submit(c, &r, &op);
}

static void kn_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &kn_api, http, body, len) == 0)
        ch_balance_value(op, ch_json_get(r.data, "remaincredit"), "IRR",
                         "kavenegar: no remaincredit in the reply");
    ch_reply_free(&r);
}

void conn_kavenegar_parse_balance(int http, const char *body, size_t len, conn_balance_cb cb,
                                  void *ud)
{
    struct ch_op op = {.balance = cb, .ud = ud};
    kn_parse_balance(NULL, &op, http, body, len);
}

static int kn_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = kn_path(c, &r, "account/info");
    if (rc)
        return rc;
    struct ch_op op = {.balance = cb, .ud = ud, .parse = kn_parse_balance};
    return ch_op_submit(c, &r, &op);
}

/* ---- webhook ------------------------------------------------------------------- */

/* The token travels as ?token=... in the callback URL configured in the
 * Kavenegar panel (or an X-Webhook-Token header from a relay). */
int conn_kavenegar_webhook_parse(const char *token, const struct http_req *req,
                                 struct conn_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (token == NULL || *token == '\0')
        return SMSYS_EAUTH; /* no token configured: refuse every call */
    struct ch_form q = {0}, f = {0};
    int rc = ch_form_parse(req->query ? req->query : "", req->query ? strlen(req->query) : 0, &q);
    if (!rc)
        rc = ch_form_parse(req->body ? req->body : "", req->body ? req->body_len : 0, &f);
    if (rc) {
        ch_form_free(&q);
        return -EINVAL;
    }
    const char *got = ch_form_get(&q, "token");
    if (got == NULL)
        got = http_req_header(req, "X-Webhook-Token");
    size_t tl = strlen(token);
    if (got == NULL || strlen(got) != tl || !util_memeq_ct(got, token, tl)) {
        ch_form_free(&q);
        ch_form_free(&f);
        return SMSYS_EAUTH;
    }
    /* fields in the form body, or in the query for GET callbacks */
    const struct ch_form *src = f.n ? &f : &q;
    const char *mid = ch_form_get(src, "messageid"), *msg = ch_form_get(src, "message"),
               *st = ch_form_get(src, "status");
    struct conn_event *ev = calloc(1, sizeof *ev);
    rc = ev ? 0 : -ENOMEM;
    if (!rc && msg) {
        ev->kind = CONN_EV_MO;
        ev->u.mo.provider_id = util_strdup0(mid);
        ev->u.mo.from = strdup(ch_form_get(src, "sender") ? ch_form_get(src, "sender") : "");
        ev->u.mo.to = strdup(ch_form_get(src, "receptor") ? ch_form_get(src, "receptor") : "");
        ev->u.mo.text = strdup(msg);
        ev->u.mo.received_at = ch_parse_time(ch_form_get(src, "date"));
        if (!ev->u.mo.from || !ev->u.mo.to || !ev->u.mo.text)
            rc = -ENOMEM;
    } else if (!rc && mid && st) {
        long long code;
        ev->kind = CONN_EV_STATE;
        if (util_parse_int(st, 0, 1000000, &code) != 0)
            rc = -EINVAL;
        ev->u.state.provider_id = strdup(mid);
        ev->u.state.status = rc ? CONN_ST_UNKNOWN : conn_kavenegar_status((long)code);
        const char *t = ch_form_get(src, "statustext");
        ev->u.state.detail = ch_strdupf("kavenegar status %s%s%s", st, t ? ": " : "", t ? t : "");
        if (!rc && (!ev->u.state.provider_id || !ev->u.state.detail))
            rc = -ENOMEM;
    } else if (!rc) {
        rc = -EINVAL; /* neither a receipt nor an inbound message */
    }
    ch_form_free(&q);
    ch_form_free(&f);
    if (rc) {
        conn_events_free(ev, ev ? 1 : 0);
        return rc;
    }
    *out = ev;
    *n = 1;
    return 0;
}

static int kn_webhook(struct conn *c, const struct http_req *req, struct conn_event **out,
                      size_t *n)
{
    return conn_kavenegar_webhook_parse(c->set.webhook_token, req, out, n);
}

/* ---- open / ops --------------------------------------------------------------- */

const struct conn_ops conn_kavenegar_ops = {
    .name = "kavenegar",
    .max_batch = KN_MAX_SEND,
    .supports_idempotency = 1,
    .open = kn_open,
    .send = kn_send,
    .status = kn_status,
    .inbox = kn_inbox,
    .balance = kn_balance,
    .lines = NULL, /* no documented lines call: lines are the panel's */
    .webhook = kn_webhook,
    .close = ch_close,
};

static int kn_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    int rc = ch_need_apikey(env, "kavenegar", "the API key", err);
    return rc ? rc
              : ch_open(env, settings, &conn_kavenegar_ops, "https://api.kavenegar.com", NULL, NULL,
                        out, err);
}
