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

/* No envelope: 2xx is success, an error reply is {code, message, status}. */
static const struct ch_api tw_api = {
    .name = "twilio",
    .code = "code",
    .message = "message",
    .classify = conn_twilio_class,
    .flags = CH_API_BY_HTTP | CH_API_HTTP_DETAIL,
};

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

static void tw_sent(struct ch_batch *b, const struct ch_reply *r)
{
    char sid[64], st[32] = "";
    long segs = 0;
    ch_json_text(ch_json_get(r->root, "status"), st, sizeof st);
    ch_json_long(ch_json_get(r->root, "num_segments"), &segs);
    if (ch_json_text(ch_json_get(r->root, "sid"), sid, sizeof sid) != 0)
        return;
    enum conn_status cs = conn_twilio_status(st);
    if (cs == CONN_ST_FAILED)
        ch_send_result(b->s, b->idx[0], SMSYS_EPERM, sid, cs, 0, "twilio: failed");
    else
        ch_send_result(b->s, b->idx[0], 0, sid, cs == CONN_ST_UNKNOWN ? CONN_ST_QUEUED : cs,
                       segs > 0 && segs < 1000 ? (int)segs : 0, NULL);
}

int conn_twilio_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &tw_api, http, body, len, tw_sent);
}

static int tw_send_start(struct ch_batch *b, void *ud)
{
    const struct tw_priv *p = b->s->c->priv;
    const struct ch_msg *m = &b->s->m[b->idx[0]];
    struct ch_req r;
    int rc = tw_req(b->s->c, &r, "POST", "Messages.json");
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
    return ch_batch_submit(b, &r, conn_twilio_parse_send);
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
    struct ch_reply r;
    int rc = ch_reply_read(&r, &tw_api, http, body, len);
    char st[32], d[200];
    if (http == 404) {
        ch_stq_add(q, pid, NULL, CONN_ST_UNKNOWN, 0, r.detail);
        ch_stq_result(q, 0, NULL);
    } else if (rc) {
        ch_stq_result(q, rc, r.detail);
    } else if (ch_json_text(ch_json_get(r.root, "status"), st, sizeof st) == 0) {
        long ec = 0;
        ch_json_long(ch_json_get(r.root, "error_code"), &ec);
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
    ch_reply_free(&r);
}

static int tw_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    struct buf tail = BUF_INIT;
    int rc = buf_puts(&tail, "Messages/");
    if (!rc)
        rc = buf_put_urlenc(&tail, ids[0]);
    if (!rc)
        rc = buf_puts(&tail, ".json");
    if (!rc)
        rc = tw_req(c, r, "GET", tail.data);
    buf_free(&tail);
    return rc;
}

static int tw_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, 1, tw_status_req, conn_twilio_parse_status, cb, ud);
}

/* ---- balance, lines ------------------------------------------------------------------ */

static void tw_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &tw_api, http, body, len) == 0) {
        const cJSON *cur = ch_json_get(r.root, "currency");
        ch_balance_value(op, ch_json_get(r.root, "balance"),
                         cJSON_IsString(cur) && cur->valuestring[0] ? cur->valuestring : "USD",
                         "twilio: no balance in the reply");
    }
    ch_reply_free(&r);
}

static void tw_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &tw_api, http, body, len) == 0) {
        const cJSON *arr = ch_json_get(r.root, "incoming_phone_numbers");
        if (cJSON_IsArray(arr))
            ch_lines_list(op, arr, "phone_number", "friendly_name");
        else
            ch_op_fail(op, SMSYS_EPROTO, "twilio: no incoming_phone_numbers in the reply");
    }
    ch_reply_free(&r);
}

static int tw_get(struct conn *c, const char *tail, const struct ch_op *op)
{
    struct ch_req r;
    int rc = tw_req(c, &r, "GET", tail);
    return rc ? rc : ch_op_submit(c, &r, op);
}

static int tw_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_op o = {.balance = cb, .ud = ud, .parse = tw_parse_balance};
    return tw_get(c, "Balance.json", &o);
}

static int tw_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_op o = {.lines = cb, .ud = ud, .parse = tw_parse_lines};
    return tw_get(c, "IncomingPhoneNumbers.json", &o);
}

static const struct ch_op_parsers tw_parsers = {.balance = tw_parse_balance,
                                                .lines = tw_parse_lines};

void conn_twilio_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs)
{
    ch_op_parse(&tw_parsers, c, http, body, len, cbs);
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
    int rc = ch_need_apikey(env, "twilio", "the auth token", err);
    return rc ? rc
              : ch_open(env, settings, &conn_twilio_ops, "https://api.twilio.com", tw_keys,
                        tw_parse, out, err);
}
