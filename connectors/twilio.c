/* twilio.c - Twilio Programmable Messaging (providers.md "Twilio").
 *
 * {base_url}/2010-04-01/Accounts/{account_sid}/..., HTTP Basic (account
 * SID : auth token from smsys_apikey), form requests, JSON replies. One
 * message per request (the API has no batch send) and no idempotency key.
 * Inbound and delivery receipts are pushed (webhooks, signed with
 * X-Twilio-Signature); there is no read-once inbox to poll. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "smsys/conn_http.h"
#include "smsys/http_server.h"
#include "smsys/util.h"
#include "conn_parsers.h"

struct tw_priv {
    char *sid;
    char *service_sid;     /* MessagingServiceSid instead of From */
    char *status_callback; /* our webhook URL for receipts */
};

static const struct ch_code tw_codes[] = {
    {20003, SMSYS_EACCOUNT, "authentication failed"},
    {20005, SMSYS_EACCOUNT, "account not active"},
    {10001, SMSYS_EACCOUNT, "account not active (balance)"},
    {20429, SMSYS_ETHROTTLED, "too many requests"},
    {14107, SMSYS_ETHROTTLED, "message rate exceeded"},
    {20500, SMSYS_ETEMP, "internal server error"},
    {20503, SMSYS_ETEMP, "service unavailable"},
    {21211, SMSYS_EPERM, "invalid To number"},
    {21212, SMSYS_EPERM, "invalid From number"},
    {21408, SMSYS_EPERM, "region not enabled"},
    {21601, SMSYS_EPERM, "malformed request"},
    {21602, SMSYS_EPERM, "message body required"},
    {21603, SMSYS_EPERM, "From or MessagingServiceSid required"},
    {21604, SMSYS_EPERM, "To required"},
    {21606, SMSYS_EPERM, "From is not a valid message-capable number of this account"},
    {21609, SMSYS_EPERM, "invalid StatusCallback"},
    {21610, SMSYS_EPERM, "recipient opted out (STOP)"},
    {21612, SMSYS_EPERM, "cannot route to this number"},
    {21614, SMSYS_EPERM, "To is not a mobile number"},
    {21617, SMSYS_EPERM, "body too long"},
    {30003, SMSYS_EPERM, "unreachable handset"},
    {30004, SMSYS_EPERM, "message blocked"},
    {30005, SMSYS_EPERM, "unknown destination handset"},
    {30006, SMSYS_EPERM, "landline or unreachable carrier"},
    {30007, SMSYS_EPERM, "carrier filtered"},
    {0, 0, NULL},
};

enum conn_status conn_twilio_status(const char *s)
{
    static const struct {
        const char *name;
        enum conn_status st;
    } map[] = {
        {"accepted", CONN_ST_QUEUED}, {"scheduled", CONN_ST_QUEUED},
        {"queued", CONN_ST_QUEUED},   {"sending", CONN_ST_QUEUED},
        {"sent", CONN_ST_SENT},       {"delivered", CONN_ST_DELIVERED},
        {"read", CONN_ST_DELIVERED},  {"undelivered", CONN_ST_UNDELIVERED},
        {"failed", CONN_ST_FAILED},   {"canceled", CONN_ST_CANCELED},
    };
    for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, s) == 0)
            return map[i].st;
    return CONN_ST_UNKNOWN;
}

int conn_twilio_class(long code, int http, const char **text)
{
    int dflt = ch_http_class(http);
    return ch_code_class(tw_codes, code, dflt ? dflt : SMSYS_EPERM, text);
}

/* An error reply {code, message, status}: its class and detail; 0 for 2xx. */
static int tw_error(const cJSON *root, int http, char *d, size_t dl)
{
    if (http >= 200 && http < 300)
        return 0;
    long code = 0;
    ch_json_long(ch_json_get(root, "code"), &code);
    const char *known;
    int rc = conn_twilio_class(code, http, &known);
    const cJSON *msg = ch_json_get(root, "message");
    snprintf(d, dl, "twilio %ld (HTTP %d): %s%s%s", code, http, known ? known : "error",
             cJSON_IsString(msg) ? " - " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    if (rc == 0)
        rc = SMSYS_ETEMP;
    return rc;
}

static int tw_req(struct conn *c, struct ch_req *r, const char *method, const char *tail)
{
    const struct tw_priv *p = c->priv;
    struct buf path = BUF_INIT;
    int rc = buf_puts(&path, "/2010-04-01/Accounts/");
    if (!rc)
        rc = buf_put_urlenc(&path, p->sid);
    if (!rc)
        rc = buf_printf(&path, "/%s", tail);
    if (!rc)
        rc = ch_req_init(c, r, method, path.data);
    buf_free(&path);
    if (rc)
        return rc;
    r->auth = HTTP_AUTH_BASIC;
    r->username = p->sid;
    r->password = c->env.apikey;
    if (strcmp(method, "POST") == 0)
        r->content_type = "application/x-www-form-urlencoded";
    return 0;
}

/* ---- send: one message per request ------------------------------------------- */

int conn_twilio_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = tw_error(root, http, d, sizeof d);
    if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        if (root == NULL && http >= 200 && http < 300)
            ch_batch_unreadable(b, http);
        else
            ch_batch_fail(b, rc, d);
    } else {
        char sid[64], st[32] = "";
        long segs = 0;
        ch_json_text(ch_json_get(root, "status"), st, sizeof st);
        ch_json_long(ch_json_get(root, "num_segments"), &segs);
        if (ch_json_text(ch_json_get(root, "sid"), sid, sizeof sid) == 0) {
            enum conn_status cs = conn_twilio_status(st);
            if (cs == CONN_ST_FAILED)
                ch_send_result(b->s, b->idx[0], SMSYS_EPERM, sid, cs, 0, "twilio: failed");
            else
                ch_send_result(b->s, b->idx[0], 0, sid, cs == CONN_ST_UNKNOWN ? CONN_ST_QUEUED : cs,
                               segs > 0 && segs < 1000 ? (int)segs : 0, NULL);
        }
    }
    cJSON_Delete(root);
    return 0;
}

static void tw_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else
        conn_twilio_parse_send(b, resp->status, resp->body.data, resp->body.len);
    ch_batch_done(b);
}

static int tw_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    const struct tw_priv *p = c->priv;
    const struct ch_msg *m = &b->s->m[b->idx[0]];
    struct ch_req r;
    int rc = tw_req(c, &r, "POST", "Messages.json");
    if (rc)
        return rc;
    rc = http_client_form_add(&r.body, "To", m->to);
    if (!rc && p->service_sid)
        rc = http_client_form_add(&r.body, "MessagingServiceSid", p->service_sid);
    else if (!rc)
        rc = http_client_form_add(&r.body, "From", m->from);
    if (!rc)
        rc = http_client_form_add(&r.body, "Body", m->text);
    if (!rc && p->status_callback)
        rc = http_client_form_add(&r.body, "StatusCallback", p->status_callback);
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    r.cost = m->segments > 0 ? m->segments : 1;
    return ch_submit(c, &r, tw_send_done, b);
}

static int tw_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_E164, cb, ud, &s);
    if (rc)
        return rc;
    return ch_send_run(s, 1, 0, tw_send_start, NULL);
}

/* ---- status -------------------------------------------------------------------- */

void conn_twilio_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                              size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = tw_error(root, http, d, sizeof d);
    char st[32];
    if (http == 404) {
        ch_stq_add(q, pid, NULL, CONN_ST_UNKNOWN, 0, d);
        ch_stq_result(q, 0, NULL);
    } else if (rc) {
        ch_stq_result(q, rc, d);
    } else if (ch_json_text(ch_json_get(root, "status"), st, sizeof st) == 0) {
        long ec = 0;
        ch_json_long(ch_json_get(root, "error_code"), &ec);
        const char *known = NULL;
        if (ec)
            conn_twilio_class(ec, 400, &known);
        snprintf(d, sizeof d, "twilio %s%s%ld%s%s", st, ec ? " error " : "", ec, known ? ": " : "",
                 known ? known : "");
        if (!ec)
            snprintf(d, sizeof d, "twilio %s", st);
        ch_stq_add(q, pid, NULL, conn_twilio_status(st), 0, d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "twilio: no status in the reply");
    }
    cJSON_Delete(root);
}

struct tw_stq {
    struct ch_stq *q;
    char pid[64];
};

static void tw_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct tw_stq *k = ud;
    if (rc < 0 || resp == NULL)
        ch_stq_result(k->q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        conn_twilio_parse_status(k->q, k->pid, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(k->q);
    free(k);
}

static int tw_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct tw_stq *k = calloc(1, sizeof *k);
        struct buf tail = BUF_INIT;
        struct ch_req r;
        int e = k ? buf_puts(&tail, "Messages/") : -ENOMEM;
        if (!e)
            e = buf_put_urlenc(&tail, ids[i]);
        if (!e)
            e = buf_puts(&tail, ".json");
        if (!e)
            e = tw_req(c, &r, "GET", tail.data);
        buf_free(&tail);
        if (e) {
            free(k);
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        snprintf(k->pid, sizeof k->pid, "%s", ids[i]);
        k->q = q;
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, tw_status_done, k)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
            free(k);
        }
    }
    return 0;
}

/* ---- balance, lines ------------------------------------------------------------------ */

static void tw_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = tw_error(root, http, d, sizeof d);
    struct conn_balance b = {.unit = "USD"};
    const cJSON *cur = ch_json_get(root, "currency");
    if (cJSON_IsString(cur) && cur->valuestring[0])
        b.unit = cur->valuestring;
    if (!rc && ch_json_num(ch_json_get(root, "balance"), &b.amount) != 0) {
        rc = SMSYS_EPROTO;
        snprintf(d, sizeof d, "twilio: no balance in the reply");
    }
    if (rc) {
        ch_op_fail(op, rc, "%s", d);
    } else {
        struct smsys_err err = {0};
        op->balance(op->ud, 0, &b, &err);
    }
    cJSON_Delete(root);
}

static int tw_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = tw_req(c, &r, "GET", "Balance.json");
    if (rc)
        return rc;
    struct ch_op o = {.balance = cb, .ud = ud, .parse = tw_parse_balance};
    return ch_op_submit(c, &r, &o);
}

static void tw_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = tw_error(root, http, d, sizeof d);
    const cJSON *arr = ch_json_get(root, "incoming_phone_numbers");
    if (!rc && !cJSON_IsArray(arr)) {
        rc = SMSYS_EPROTO;
        snprintf(d, sizeof d, "twilio: no incoming_phone_numbers in the reply");
    }
    int n = cJSON_GetArraySize(arr);
    struct conn_line *l = calloc(n > 0 ? (size_t)n : 1, sizeof *l);
    if (rc || l == NULL) {
        ch_op_fail(op, rc ? rc : -ENOMEM, "%s", d);
    } else {
        size_t k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            const cJSON *num = ch_json_get(e, "phone_number"),
                        *fn = ch_json_get(e, "friendly_name");
            if (!cJSON_IsString(num))
                continue;
            l[k].number = num->valuestring;
            l[k].label = cJSON_IsString(fn) ? fn->valuestring : NULL;
            k++;
        }
        struct smsys_err err = {0};
        op->lines(op->ud, 0, l, k, &err);
    }
    free(l);
    cJSON_Delete(root);
}

static int tw_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_req r;
    int rc = tw_req(c, &r, "GET", "IncomingPhoneNumbers.json");
    if (rc)
        return rc;
    struct ch_op o = {.lines = cb, .ud = ud, .parse = tw_parse_lines};
    return ch_op_submit(c, &r, &o);
}

void conn_twilio_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.balance)
        tw_parse_balance(c, &op, http, body, len);
    if (op.lines)
        tw_parse_lines(c, &op, http, body, len);
}

/* ---- webhooks ------------------------------------------------------------------------- */

static int pair_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    int c = strcmp(x[0], y[0]);
    return c ? c : strcmp(x[1], y[1]);
}

/* base64(HMAC-SHA1(token, url + k1 v1 k2 v2 ... sorted by key)) into out
 * (>= 29 bytes). Returns 0, -ENOMEM or -EINVAL. */
int conn_twilio_signature(const char *token, const char *url, const struct ch_form *f, char *out,
                          size_t outlen)
{
    if (outlen < 29)
        return -EINVAL;
    const char **pairs = calloc(f->n ? f->n * 2 : 2, sizeof *pairs);
    if (pairs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        pairs[2 * i] = f->key[i];
        pairs[2 * i + 1] = f->val[i];
    }
    if (f->n > 1)
        qsort(pairs, f->n, 2 * sizeof *pairs, pair_cmp);
    struct buf data = BUF_INIT;
    int rc = buf_puts(&data, url);
    for (size_t i = 0; !rc && i < 2 * f->n; i++)
        rc = buf_puts(&data, pairs[i]);
    free(pairs);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!rc && HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)data.data,
                    data.len, md, &mdlen) == NULL)
        rc = -ENOMEM;
    buf_free(&data);
    if (rc)
        return rc;
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen); /* 20 bytes -> 28 + NUL */
    return 0;
}

int conn_twilio_webhook_parse(const char *token, const char *base_url, const struct http_req *req,
                              struct conn_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *sig = http_req_header(req, "X-Twilio-Signature");
    if (token == NULL || !*token || base_url == NULL || sig == NULL)
        return SMSYS_EAUTH; /* unsigned calls are refused */
    struct ch_form f;
    int rc = ch_form_parse(req->body ? req->body : "", req->body ? req->body_len : 0, &f);
    if (rc)
        return -EINVAL;
    char url[2048], want[64];
    snprintf(url, sizeof url, "%s%s", base_url, req->target ? req->target : "");
    rc = conn_twilio_signature(token, url, &f, want, sizeof want);
    size_t wl = strlen(want);
    if (!rc && (strlen(sig) != wl || !util_memeq_ct(sig, want, wl)))
        rc = SMSYS_EAUTH;
    struct conn_event *ev = rc ? NULL : calloc(1, sizeof *ev);
    if (!rc && ev == NULL)
        rc = -ENOMEM;
    const char *mst = ch_form_get(&f, "MessageStatus"), *sid = ch_form_get(&f, "MessageSid"),
               *body = ch_form_get(&f, "Body");
    if (!rc && sid == NULL)
        sid = ch_form_get(&f, "SmsSid");
    if (!rc && mst && sid) {
        const char *ec = ch_form_get(&f, "ErrorCode");
        ev->kind = CONN_EV_STATE;
        ev->u.state.provider_id = strdup(sid);
        ev->u.state.status = conn_twilio_status(mst);
        ev->u.state.detail =
            ch_strdupf("twilio %s%s%s", mst, ec && *ec ? " error " : "", ec && *ec ? ec : "");
        if (!ev->u.state.provider_id || !ev->u.state.detail)
            rc = -ENOMEM;
    } else if (!rc && body) {
        const char *from = ch_form_get(&f, "From"), *to = ch_form_get(&f, "To");
        ev->kind = CONN_EV_MO;
        ev->u.mo.provider_id = util_strdup0(sid);
        ev->u.mo.from = strdup(from ? from : "");
        ev->u.mo.to = strdup(to ? to : "");
        ev->u.mo.text = strdup(body);
        if (!ev->u.mo.from || !ev->u.mo.to || !ev->u.mo.text)
            rc = -ENOMEM;
    } else if (!rc) {
        rc = -EINVAL; /* signed, but neither a status callback nor a message */
    }
    ch_form_free(&f);
    if (rc) {
        conn_events_free(ev, ev ? 1 : 0);
        return rc;
    }
    *out = ev;
    *n = 1;
    return 0;
}

static int tw_webhook(struct conn *c, const struct http_req *req, struct conn_event **out,
                      size_t *n)
{
    return conn_twilio_webhook_parse(c->env.apikey, c->set.webhook_base_url, req, out, n);
}

/* ---- open --------------------------------------------------------------------------------- */

static void tw_free(void *p)
{
    struct tw_priv *t = p;
    if (t) {
        free(t->sid);
        free(t->service_sid);
        free(t->status_callback);
    }
    free(t);
}

static int tw_parse(struct conn *c, const cJSON *s, struct smsys_err *err)
{
    struct tw_priv *p = calloc(1, sizeof *p);
    if (p == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    c->priv = p;
    c->priv_free = tw_free;
    int rc = ch_set_str(s, "account_sid", NULL, &p->sid, err);
    if (!rc && (p->sid == NULL || strncmp(p->sid, "AC", 2) != 0))
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting account_sid: required, \"AC...\" (the auth token goes in "
                           "smsys_apikey)");
    if (!rc)
        rc = ch_set_str(s, "messaging_service_sid", NULL, &p->service_sid, err);
    if (!rc)
        rc = ch_set_str(s, "status_callback", NULL, &p->status_callback, err);
    if (!rc && p->status_callback && strncmp(p->status_callback, "http", 4) != 0)
        rc = smsys_err_set(err, SMSYS_ECONFIG, "setting status_callback: must be a URL");
    if (!rc && !c->set.sender && !p->service_sid)
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting sender or messaging_service_sid: one is required");
    return rc;
}

static int tw_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

const struct conn_ops conn_twilio_ops = {
    .name = "twilio",
    .max_batch = 1,
    .supports_idempotency = 0,
    .open = tw_open,
    .send = tw_send,
    .status = tw_status,
    .inbox = NULL, /* inbound is pushed (webhook) */
    .balance = tw_balance,
    .lines = tw_lines,
    .webhook = tw_webhook,
    .close = ch_close,
};

static const char *const tw_keys[] = {"account_sid", "messaging_service_sid", "status_callback",
                                      NULL};

static int tw_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "twilio: smsys_apikey (the auth token) is empty");
    return ch_open(env, settings, &conn_twilio_ops, "https://api.twilio.com", tw_keys, tw_parse,
                   out, err);
}
