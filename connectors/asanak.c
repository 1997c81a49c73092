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

static int as_envelope(const cJSON *root, int http, const cJSON **data, char *d, size_t dl)
{
    long code;
    const cJSON *meta = ch_json_get(root, "meta");
    if (ch_json_long(ch_json_get(meta, "status"), &code) != 0) {
        snprintf(d, dl, "asanak: reply without meta.status (HTTP %d)", http);
        int hc = ch_http_class(http);
        return hc ? hc : SMSYS_EPROTO;
    }
    *data = ch_json_get(root, "data");
    if (code == 200)
        return 0;
    const char *known;
    int rc = conn_asanak_class(code, &known);
    const cJSON *msg = ch_json_get(meta, "message");
    snprintf(d, dl, "asanak %ld: %s%s%s", code, known ? known : "error",
             cJSON_IsString(msg) ? " - " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    return rc;
}

/* Starts r for op with a JSON body holding the credentials and o's
 * members (o is consumed). */
static int as_req(struct conn *c, struct ch_req *r, const char *op, cJSON *o)
{
    const struct as_priv *p = c->priv;
    char path[128];
    snprintf(path, sizeof path, "/webservice/v2rest/%s", op);
    if (o == NULL)
        o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "username", p->username);
    cJSON_AddStringToObject(o, "password", c->env.apikey);
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = js ? ch_req_init(c, r, "POST", path) : -ENOMEM;
    if (!rc && (rc = buf_puts(&r->body, js)) != 0)
        ch_req_free(r);
    free(js);
    if (!rc)
        r->content_type = "application/json";
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

int conn_asanak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? as_envelope(root, http, &data, d, sizeof d) : ch_http_class(http);
    if (root == NULL && rc == 0)
        rc = SMSYS_EPROTO;
    if (rc == SMSYS_EPROTO || (root == NULL && rc)) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && strstr(d, "asanak 1010") == d) {
        cJSON_Delete(root);
        ch_batch_split(b);
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, d);
    } else {
        /* ids in destination order: an array, or one value for one number */
        int n = cJSON_IsArray(data) ? cJSON_GetArraySize(data) : 1;
        for (size_t k = 0; k < b->n && n == (int)b->n; k++) {
            const cJSON *e = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, (int)k) : data;
            char id[64];
            if (ch_json_text(e, id, sizeof id) == 0)
                ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
        }
    }
    cJSON_Delete(root);
    return 0;
}

static void as_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else if (conn_asanak_parse_send(b, resp->status, resp->body.data, resp->body.len))
        return;
    ch_batch_done(b);
}

static int as_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    struct buf to = BUF_INIT;
    double cost = 0;
    int rc = 0;
    for (size_t k = 0; !rc && k < b->n; k++) {
        rc = buf_printf(&to, "%s%s", k ? "," : "", b->s->m[b->idx[k]].to);
        cost += b->s->m[b->idx[k]].segments;
    }
    cJSON *o = rc ? NULL : cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "source", m0->from);
        cJSON_AddStringToObject(o, "destination", to.data);
        cJSON_AddStringToObject(o, "message", m0->text);
    }
    buf_free(&to);
    struct ch_req r;
    if (!rc)
        rc = o ? as_req(c, &r, "sendsms", o) : -ENOMEM;
    if (rc)
        return rc;
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, as_send_done, b);
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
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? as_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    if (root == NULL)
        snprintf(d, sizeof d, "asanak: unreadable reply (HTTP %d)", http);
    if (rc) {
        ch_stq_result(q, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, d);
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, data)
        {
            char id[64];
            long st;
            if (ch_json_text(ch_json_get(e, "msgid"), id, sizeof id) != 0 ||
                ch_json_long(ch_json_get(e, "status"), &st) != 0)
                continue;
            snprintf(d, sizeof d, "asanak status %ld", st);
            ch_stq_add(q, id, NULL, conn_asanak_status(st), 0, d);
        }
        ch_stq_result(q, 0, NULL);
    }
    cJSON_Delete(root);
}

static void as_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_stq *q = ud;
    if (rc < 0 || resp == NULL)
        ch_stq_result(q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        conn_asanak_parse_status(q, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(q);
}

static int as_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += AS_MAX_STATUS) {
        struct buf list = BUF_INIT;
        int e = 0;
        for (size_t k = i; !e && k < n && k < i + AS_MAX_STATUS; k++)
            e = buf_printf(&list, "%s%s", k > i ? "," : "", ids[k]);
        cJSON *o = e ? NULL : cJSON_CreateObject();
        if (o)
            cJSON_AddStringToObject(o, "msgid", list.data);
        buf_free(&list);
        struct ch_req r;
        e = o ? as_req(c, &r, "msgstatus", o) : -ENOMEM;
        if (e) {
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, as_status_done, q)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
        }
    }
    return 0;
}

/* ---- balance (in IRR: getrialcredit) -------------------------------------------- */

static void as_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? as_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    struct conn_balance b = {.unit = "IRR"};
    if (!rc && ch_json_num(ch_json_get(data, "credit"), &b.amount) != 0 &&
        ch_json_num(data, &b.amount) != 0) {
        rc = SMSYS_EPROTO;
        snprintf(d, sizeof d, "asanak: no credit in the reply");
    }
    if (rc) {
        ch_op_fail(op, rc, "%s", root ? d : "asanak: unreadable reply");
    } else {
        struct smsys_err err = {0};
        op->balance(op->ud, 0, &b, &err);
    }
    cJSON_Delete(root);
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

void conn_asanak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.balance)
        as_parse_balance(c, &op, http, body, len);
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
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "asanak: smsys_apikey (the password) is empty");
    return ch_open(env, settings, &conn_asanak_ops, "https://sms.asanak.ir", as_keys, as_parse, out,
                   err);
}
