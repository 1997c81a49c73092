/* asanak.c - Asanak v2rest (providers.md "Asanak").
 *
 * POST {base_url}/webservice/v2rest/<op>, JSON with username (setting) and
 * password (smsys_apikey) in every body; envelope {"meta":{"status":200,
 * "message":"success"},"data":...}, logical errors with HTTP 200 and the
 * code in meta.status. No idempotency key and no inbox API (pair the
 * account with SMPP or another account for inbound). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "conn_parsers.h"

#define AS_MAX_SEND   100
#define AS_MAX_STATUS 100

struct as_priv {
    char *username;
};

static const struct ch_code as_codes[] = {
    {200, 0, "ok"},
    {400, SMSYS_EPERM, "bad request"},
    {401, SMSYS_EACCOUNT, "wrong username or password"},
    {403, SMSYS_EACCOUNT, "access denied"},
    {429, SMSYS_ETHROTTLED, "rate limit"},
    {1002, SMSYS_EPERM, "line not active"},
    {1005, SMSYS_EACCOUNT, "not enough credit"},
    {1006, SMSYS_EACCOUNT, "not enough credit"},
    {1009, SMSYS_ETHROTTLED, "daily limit reached"},
    {1010, SMSYS_EPERM, "invalid destination"},
    {1011, SMSYS_EPERM, "empty text"},
    {1013, SMSYS_EPERM, "outside the promotional-hours window"},
    {1014, SMSYS_EPERM, "links not allowed in the text"},
    {0, 0, NULL},
};

/* providers.md documents only 6 = delivered; the rest follows the panel's
 * delivery page (and provsim): 1 queued, 2 at the operator, 7 undelivered. */
static const struct ch_status_code as_states[] = {
    {1, CONN_ST_QUEUED},      {2, CONN_ST_SENT},     {6, CONN_ST_DELIVERED},
    {7, CONN_ST_UNDELIVERED}, {-1, CONN_ST_UNKNOWN},
};

enum conn_status conn_asanak_status(long code)
{
    return ch_status_lookup(as_states, code);
}

int conn_asanak_class(long code, const char **text)
{
    int dflt = code >= 400 && code < 600 ? ch_http_class((int)code) : 0;
    return ch_code_class(as_codes, code, dflt ? dflt : SMSYS_ETEMP, text);
}

static int as_classify(long code, int http, const char **text)
{
    return conn_asanak_class(code, text);
}

static const struct ch_api as_api = {
    .name = "asanak",
    .code = "meta.status",
    .ok = 200,
    .message = "meta.message",
    .data = "data",
    .classify = as_classify,
    .split_code = 1010, /* invalid destination */
};

/* Starts r for op with a JSON body holding the credentials and o's
 * members (o is consumed; NULL: credentials only). */
static int as_req(struct conn *c, struct ch_req *r, const char *op, cJSON *o)
{
    const struct as_priv *p = c->priv;
    char path[128];
    snprintf(path, sizeof path, "/webservice/v2rest/%s", op);
    if (o == NULL)
        o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "username", p->username);
    cJSON_AddStringToObject(o, "password", c->env.apikey);
    int rc = ch_req_init(c, r, "POST", path);
    if (!rc)
        rc = ch_req_json(r, o);
    else
        cJSON_Delete(o);
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

/* ids in destination order: an array, or one value for one number */
static void as_sent(struct ch_batch *b, const struct ch_reply *r)
{
    int n = cJSON_IsArray(r->data) ? cJSON_GetArraySize(r->data) : 1;
    for (size_t k = 0; k < b->n && n == (int)b->n; k++) {
        const cJSON *e = cJSON_IsArray(r->data) ? cJSON_GetArrayItem(r->data, (int)k) : r->data;
        char id[64];
        if (ch_json_text(e, id, sizeof id) == 0)
            ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
    }
}

int conn_asanak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &as_api, http, body, len, as_sent);
}

static int as_send_start(struct ch_batch *b, void *ud)
{
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    struct buf to = BUF_INIT;
    int rc = ch_batch_join(b, 0, ",", &to);
    cJSON *o = rc ? NULL : cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "source", m0->from);
        cJSON_AddStringToObject(o, "destination", to.data);
        cJSON_AddStringToObject(o, "message", m0->text);
    }
    buf_free(&to);
    struct ch_req r;
    if (!rc)
        rc = o ? as_req(b->s->c, &r, "sendsms", o) : -ENOMEM;
    return rc ? rc : ch_batch_submit(b, &r, conn_asanak_parse_send);
}

static int as_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_NATIONAL, cb, ud, &s);
    if (rc)
        return rc;
    return ch_send_run(s, AS_MAX_SEND, 1, as_send_start, NULL);
}

/* ---- status ------------------------------------------------------------------- */

void conn_asanak_parse_status(struct ch_stq *q, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_stq_reply(q, &r, &as_api, http, body, len) == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, r.data)
        {
            char id[64], d[64];
            long st;
            if (ch_json_text(ch_json_get(e, "msgid"), id, sizeof id) != 0 ||
                ch_json_long(ch_json_get(e, "status"), &st) != 0)
                continue;
            snprintf(d, sizeof d, "asanak status %ld", st);
            ch_stq_add(q, id, NULL, conn_asanak_status(st), 0, d);
        }
        ch_stq_result(q, 0, NULL);
    }
    ch_reply_free(&r);
}

static void as_status_parse(struct ch_stq *q, const char *pid, int http, const char *body,
                            size_t len)
{
    conn_asanak_parse_status(q, http, body, len);
}

static int as_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    struct buf list = BUF_INIT;
    int rc = 0;
    for (size_t k = 0; !rc && k < n; k++)
        rc = buf_printf(&list, "%s%s", k ? "," : "", ids[k]);
    cJSON *o = rc ? NULL : cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "msgid", list.data);
    buf_free(&list);
    return o ? as_req(c, r, "msgstatus", o) : -ENOMEM;
}

static int as_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, AS_MAX_STATUS, as_status_req, as_status_parse, cb, ud);
}

/* ---- balance (in IRR: getrialcredit) -------------------------------------------- */

static void as_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    double x;
    const cJSON *credit;
    if (ch_op_reply(op, &r, &as_api, http, body, len) == 0) {
        credit = ch_json_get(r.data, "credit");
        ch_balance_value(op, ch_json_num(credit, &x) == 0 ? credit : r.data, "IRR",
                         "asanak: no credit in the reply");
    }
    ch_reply_free(&r);
}

static int as_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = as_req(c, &r, "getrialcredit", NULL);
    if (rc)
        return rc;
    struct ch_op o = {.balance = cb, .ud = ud, .parse = as_parse_balance};
    return ch_op_submit(c, &r, &o);
}

static const struct ch_op_parsers as_parsers = {.balance = as_parse_balance};

void conn_asanak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs)
{
    ch_op_parse(&as_parsers, c, http, body, len, cbs);
}

/* ---- open ------------------------------------------------------------------------------ */

static void as_free(void *p)
{
    struct as_priv *a = p;
    if (a)
        free(a->username);
    free(a);
}

static int as_parse(struct conn *c, const cJSON *s, struct smsys_err *err)
{
    struct as_priv *p = calloc(1, sizeof *p);
    if (p == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    c->priv = p;
    c->priv_free = as_free;
    int rc = ch_set_str(s, "username", NULL, &p->username, err);
    if (!rc && (p->username == NULL || p->username[0] == '\0'))
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting username: required (the password goes in smsys_apikey)");
    if (!rc && c->set.sender == NULL)
        rc = smsys_err_set(err, SMSYS_ECONFIG, "setting sender: required (Asanak's source line)");
    return rc;
}

static int as_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

const struct conn_ops conn_asanak_ops = {
    .name = "asanak",
    .max_batch = AS_MAX_SEND,
    .supports_idempotency = 0,
    .open = as_open,
    .send = as_send,
    .status = as_status,
    .inbox = NULL, /* no inbox API */
    .balance = as_balance,
    .lines = NULL,
    .webhook = NULL,
    .close = ch_close,
};

static const char *const as_keys[] = {"username", NULL};

static int as_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    int rc = ch_need_apikey(env, "asanak", "the password", err);
    return rc ? rc
              : ch_open(env, settings, &conn_asanak_ops, "https://sms.asanak.ir", as_keys, as_parse,
                        out, err);
}
