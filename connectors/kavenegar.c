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

/* Checks the envelope: 0 with *entries, or the class with detail. */
static int kn_envelope(const cJSON *root, int http, const cJSON **entries, char *d, size_t dl)
{
    const cJSON *ret = ch_json_get(root, "return");
    long code;
    if (ret == NULL || ch_json_long(ch_json_get(ret, "status"), &code) != 0) {
        snprintf(d, dl, "kavenegar: reply without return.status (HTTP %d)", http);
        return SMSYS_EPROTO;
    }
    *entries = ch_json_get(root, "entries");
    if (code == 200)
        return 0;
    const char *known;
    int rc = conn_kavenegar_class(code, &known);
    const cJSON *msg = ch_json_get(ret, "message");
    snprintf(d, dl, "kavenegar %ld: %s%s%s", code, known ? known : "error",
             cJSON_IsString(msg) ? " - " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    return rc;
}

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

int conn_kavenegar_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *entries = NULL;
    char d[400];
    int rc = root ? kn_envelope(root, http, &entries, d, sizeof d) : SMSYS_EPROTO;
    if (root == NULL || rc == SMSYS_EPROTO) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && strstr(d, "kavenegar 411") == d) {
        /* one bad number refuses the whole request: find which one */
        cJSON_Delete(root);
        ch_batch_split(b);
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, d);
    } else {
        int n = cJSON_GetArraySize(entries);
        for (size_t k = 0; k < b->n; k++) {
            struct ch_msg *m = &b->s->m[b->idx[k]];
            const cJSON *e = NULL;
            /* entries come in receptor order; match by number to be sure */
            for (int j = 0; j < n && e == NULL; j++) {
                const cJSON *x = cJSON_GetArrayItem(entries, ((int)k + j) % n);
                char rcp[40];
                if (ch_json_text(ch_json_get(x, "receptor"), rcp, sizeof rcp) == 0 &&
                    strcmp(rcp, m->to) == 0)
                    e = x;
            }
            if (e == NULL && n == (int)b->n)
                e = cJSON_GetArrayItem(entries, (int)k);
            char id[64];
            long st = 1;
            if (e == NULL || ch_json_text(ch_json_get(e, "messageid"), id, sizeof id) != 0)
                continue; /* ch_batch_done: unknown outcome */
            ch_json_long(ch_json_get(e, "status"), &st);
            enum conn_status cs = conn_kavenegar_status(st);
            if (cs == CONN_ST_FAILED || cs == CONN_ST_BLACKLISTED) {
                snprintf(d, sizeof d, "kavenegar status %ld", st);
                ch_send_result(b->s, b->idx[k], SMSYS_EPERM, id, cs, 0, d);
            } else {
                ch_send_result(b->s, b->idx[k], 0, id, cs == CONN_ST_UNKNOWN ? CONN_ST_QUEUED : cs,
                               0, NULL);
            }
        }
    }
    cJSON_Delete(root);
    return 0;
}

static void kn_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0) {
        ch_batch_transport(b, rc, resp);
        ch_batch_done(b);
        return;
    }
    if (resp == NULL) {
        ch_batch_done(b);
        return;
    }
    if (conn_kavenegar_parse_send(b, resp->status, resp->body.data, resp->body.len) == 0)
        ch_batch_done(b); /* else it split the batch and passed b on */
}

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
    double cost = 0;
    if (same) {
        for (size_t k = 0; !rc && k < b->n; k++) {
            const struct ch_msg *m = &b->s->m[b->idx[k]];
            rc = buf_printf(&rcp, "%s%s", k ? "," : "", m->to);
            if (!rc)
                rc = buf_printf(&ids, "%s%s", k ? "," : "", m->id);
            cost += m->segments;
        }
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
            rc = rc ? rc : buf_printf(&ids, "%s%s", k ? "," : "", m->id);
            cost += m->segments;
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
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, kn_send_done, b);
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
    cJSON *root = ch_json_parse(body, len);
    const cJSON *entries = NULL;
    char d[400];
    int rc = root ? kn_envelope(root, http, &entries, d, sizeof d) : SMSYS_EPROTO;
    if (root == NULL)
        snprintf(d, sizeof d, "kavenegar: unreadable reply (HTTP %d)", http);
    if (rc) {
        ch_stq_result(q, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, d);
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, entries)
        {
            char id[64], txt[200] = "";
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
    cJSON_Delete(root);
}

static void kn_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_stq *q = ud;
    if (rc < 0)
        ch_stq_result(q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else if (resp)
        conn_kavenegar_parse_status(q, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(q);
}

static int kn_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += KN_MAX_STATUS) {
        struct ch_req r;
        struct buf list = BUF_INIT;
        int e = kn_path(c, &r, "sms/status");
        for (size_t k = i; !e && k < n && k < i + KN_MAX_STATUS; k++)
            e = buf_printf(&list, "%s%s", k > i ? "," : "", ids[k]);
        if (!e)
            e = http_client_form_add(&r.body, "messageid", list.data);
        buf_free(&list);
        if (e) {
            ch_req_free(&r);
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, kn_status_done, q)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
        }
    }
    return 0;
}

/* ---- inbox, balance ---------------------------------------------------------- */

struct kn_cb {
    union {
        conn_inbox_cb inbox;
        conn_balance_cb balance;
    } cb;
    void *ud;
};

void conn_kavenegar_parse_inbox(int http, const char *body, size_t len, conn_inbox_cb cb, void *ud)
{
    struct smsys_err err = {0};
    cJSON *root = ch_json_parse(body, len);
    const cJSON *entries = NULL;
    int rc = root ? kn_envelope(root, http, &entries, err.detail, sizeof err.detail) : SMSYS_EPROTO;
    if (root == NULL)
        snprintf(err.detail, sizeof err.detail, "kavenegar: unreadable reply (HTTP %d)", http);
    if (rc) {
        err.code = rc;
        cb(ud, rc, NULL, 0, &err);
        cJSON_Delete(root);
        return;
    }
    int n = cJSON_GetArraySize(entries);
    struct conn_mo *mo = calloc(n > 0 ? (size_t)n : 1, sizeof *mo);
    char(*ids)[64] = calloc(n > 0 ? (size_t)n : 1, sizeof *ids);
    size_t k = 0;
    const cJSON *e, *list = mo && ids ? entries : NULL;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *txt = ch_json_get(e, "message"), *from = ch_json_get(e, "sender"),
                    *to = ch_json_get(e, "receptor");
        if (!cJSON_IsString(txt))
            continue;
        char date[32] = "";
        ch_json_text(ch_json_get(e, "date"), date, sizeof date);
        ch_json_text(ch_json_get(e, "messageid"), ids[k], sizeof ids[k]);
        mo[k].provider_id = ids[k][0] ? ids[k] : NULL;
        mo[k].text = txt->valuestring;
        mo[k].from = cJSON_IsString(from) ? from->valuestring : "";
        mo[k].to = cJSON_IsString(to) ? to->valuestring : "";
        mo[k].received_at = ch_parse_time(date);
        k++;
    }
    if (mo == NULL || ids == NULL) {
        err.code = -ENOMEM;
        cb(ud, -ENOMEM, NULL, 0, &err);
    } else {
        cb(ud, 0, mo, k, &err);
    }
    free(mo);
    free(ids);
    cJSON_Delete(root);
}

static void kn_inbox_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct kn_cb *k = ud;
    if (rc < 0 || resp == NULL) {
        struct smsys_err err;
        smsys_err_set(&err, ch_transport_class(rc), "kavenegar: %s",
                      resp ? resp->err.detail : smsys_strerror(rc));
        k->cb.inbox(k->ud, err.code, NULL, 0, &err);
    } else {
        conn_kavenegar_parse_inbox(resp->status, resp->body.data, resp->body.len, k->cb.inbox,
                                   k->ud);
    }
    free(k);
}

static int kn_simple(struct conn *c, const char *op, struct buf *form, ch_done_fn done,
                     struct kn_cb *k)
{
    struct ch_req r;
    int rc = kn_path(c, &r, op);
    if (rc) {
        free(k);
        return rc;
    }
    if (form) {
        r.body = *form;
        *form = (struct buf)BUF_INIT;
    }
    rc = ch_submit(c, &r, done, k);
    if (rc)
        free(k);
    return rc;
}

static int kn_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    if (c->set.sender == NULL)
        return SMSYS_ECONFIG; /* receive.json needs the line: setting sender */
    struct kn_cb *k = calloc(1, sizeof *k);
    if (k == NULL)
        return -ENOMEM;
    k->cb.inbox = cb;
    k->ud = ud;
    struct buf f = BUF_INIT;
    int rc = http_client_form_add(&f, "linenumber", c->set.sender);
    if (!rc)
        rc = http_client_form_add(&f, "isread", "0");
    if (rc) {
        buf_free(&f);
        free(k);
        return rc;
    }
    rc = kn_simple(c, "sms/receive", &f, kn_inbox_done, k);
    buf_free(&f);
    return rc;
}

void conn_kavenegar_parse_balance(int http, const char *body, size_t len, conn_balance_cb cb,
                                  void *ud)
{
    struct smsys_err err = {0};
    cJSON *root = ch_json_parse(body, len);
    const cJSON *entries = NULL;
    int rc = root ? kn_envelope(root, http, &entries, err.detail, sizeof err.detail) : SMSYS_EPROTO;
    struct conn_balance b = {.unit = "IRR"};
    if (!rc && ch_json_num(ch_json_get(entries, "remaincredit"), &b.amount) != 0) {
        rc = SMSYS_EPROTO;
        snprintf(err.detail, sizeof err.detail, "kavenegar: no remaincredit in the reply");
    }
    if (root == NULL)
        snprintf(err.detail, sizeof err.detail, "kavenegar: unreadable reply (HTTP %d)", http);
    err.code = rc;
    cb(ud, rc, rc ? NULL : &b, &err);
    cJSON_Delete(root);
}

static void kn_balance_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct kn_cb *k = ud;
    if (rc < 0 || resp == NULL) {
        struct smsys_err err;
        smsys_err_set(&err, ch_transport_class(rc), "kavenegar: %s",
                      resp ? resp->err.detail : smsys_strerror(rc));
        k->cb.balance(k->ud, err.code, NULL, &err);
    } else {
        conn_kavenegar_parse_balance(resp->status, resp->body.data, resp->body.len, k->cb.balance,
                                     k->ud);
    }
    free(k);
}

static int kn_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct kn_cb *k = calloc(1, sizeof *k);
    if (k == NULL)
        return -ENOMEM;
    k->cb.balance = cb;
    k->ud = ud;
    return kn_simple(c, "account/info", NULL, kn_balance_done, k);
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
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "kavenegar: smsys_apikey (the API key) is empty");
    return ch_open(env, settings, &conn_kavenegar_ops, "https://api.kavenegar.com", NULL, NULL, out,
                   err);
}
