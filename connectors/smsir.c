/* smsir.c - SMS.ir REST v1 (providers.md "SMS.ir").
 *
 * {base_url}/v1/..., header X-API-KEY, JSON; envelope {"status":1,
 * "message":"...","data":...}, success when status == 1 (logical errors
 * come with HTTP 400, the same envelope). No idempotency key: a send whose
 * reply is lost is SMSYS_EUNKNOWN. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "conn_parsers.h"

#define IR_MAX_SEND 100

static const struct ch_code ir_codes[] = {
    {1, 0, "ok"},
    {10, SMSYS_EACCOUNT, "invalid API key"},
    {11, SMSYS_EACCOUNT, "API key disabled"},
    {12, SMSYS_EACCOUNT, "API key not allowed for this method"},
    {13, SMSYS_EACCOUNT, "IP not allowed"},
    {14, SMSYS_EACCOUNT, "account suspended"},
    {20, SMSYS_ETHROTTLED, "rate limit"},
    {101, SMSYS_EPERM, "invalid line number"},
    {102, SMSYS_EACCOUNT, "not enough credit"},
    {103, SMSYS_EPERM, "empty text"},
    {104, SMSYS_EPERM, "invalid mobile number"},
    {105, SMSYS_EPERM, "too many recipients"},
    {106, SMSYS_EPERM, "texts and recipients differ in number"},
    {115, SMSYS_EPERM, "recipient blacklisted"},
    {0, 0, NULL},
};

static const struct ch_status_code ir_states[] = {
    {1, CONN_ST_DELIVERED},   {2, CONN_ST_UNDELIVERED}, {3, CONN_ST_QUEUED},
    {4, CONN_ST_FAILED},      {5, CONN_ST_SENT},        {6, CONN_ST_FAILED},
    {7, CONN_ST_BLACKLISTED}, {-1, CONN_ST_UNKNOWN},
};

enum conn_status conn_smsir_status(long code)
{
    return ch_status_lookup(ir_states, code);
}

/* Code 0 (and unknown codes) are classified by the HTTP status. */
int conn_smsir_class(long code, int http, const char **text)
{
    int dflt = ch_http_class(http);
    return ch_code_class(ir_codes, code, dflt ? dflt : SMSYS_ETEMP, text);
}

static const struct ch_api ir_api = {
    .name = "smsir",
    .code = "status",
    .ok = 1,
    .message = "message",
    .data = "data",
    .classify = conn_smsir_class,
    .split_code = 104, /* invalid mobile number */
    .flags = CH_API_HTTP_DETAIL,
};

static int ir_req(struct conn *c, struct ch_req *r, const char *method, const char *path)
{
    int rc = ch_req_init(c, r, method, path);
    if (!rc)
        rc = ch_req_header(r, "X-API-KEY", c->env.apikey);
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send ----------------------------------------------------------------- */

/* one id per mobile, in order; anything else is unreadable */
static void ir_sent(struct ch_batch *b, const struct ch_reply *r)
{
    const cJSON *ids = ch_json_get(r->data, "messageIds");
    if (cJSON_GetArraySize(ids) != (int)b->n)
        return;
    for (size_t k = 0; k < b->n; k++) {
        char id[64];
        if (ch_json_text(cJSON_GetArrayItem(ids, (int)k), id, sizeof id) == 0)
            ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
    }
}

int conn_smsir_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &ir_api, http, body, len, ir_sent);
}

static int ir_send_start(struct ch_batch *b, void *ud)
{
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    cJSON *o = cJSON_CreateObject(), *mob = cJSON_AddArrayToObject(o, "mobiles");
    /* lineNumber is a number in SMS.ir's API (long) */
    char *end;
    double line = strtod(m0->from, &end);
    if (m0->from[0] && *end == '\0')
        cJSON_AddNumberToObject(o, "lineNumber", line);
    else
        cJSON_AddStringToObject(o, "lineNumber", m0->from);
    cJSON_AddStringToObject(o, "messageText", m0->text);
    for (size_t k = 0; k < b->n; k++)
        cJSON_AddItemToArray(mob, cJSON_CreateString(b->s->m[b->idx[k]].to));
    if (m0->not_before > 0)
        cJSON_AddNumberToObject(o, "sendDateTime", (double)m0->not_before);
    else
        cJSON_AddNullToObject(o, "sendDateTime");
    struct ch_req r;
    int rc = ir_req(b->s->c, &r, "POST", "/v1/send/bulk");
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    if ((rc = ch_req_json(&r, o)) != 0) {
        ch_req_free(&r);
        return rc;
    }
    return ch_batch_submit(b, &r, conn_smsir_parse_send);
}

static int ir_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_NATIONAL, cb, ud, &s);
    if (rc)
        return rc;
    return ch_send_run(s, IR_MAX_SEND, 1, ir_send_start, NULL);
}

/* ---- status: one GET per id ------------------------------------------------ */

void conn_smsir_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    int rc = ch_reply_read(&r, &ir_api, http, body, len);
    long st;
    if (rc == SMSYS_EPERM || rc == SMSYS_ETEMP) {
        /* "no message with this id" (status 0, HTTP 400) */
        ch_stq_add(q, pid, NULL, CONN_ST_UNKNOWN, 0, r.detail);
        ch_stq_result(q, 0, NULL);
    } else if (rc) {
        ch_stq_result(q, rc, r.detail);
    } else if (ch_json_long(ch_json_get(r.data, "deliveryState"), &st) == 0) {
        char when[40] = "", d[64];
        ch_json_text(ch_json_get(r.data, "deliveryDateTime"), when, sizeof when);
        snprintf(d, sizeof d, "smsir deliveryState %ld", st);
        enum conn_status cs = conn_smsir_status(st);
        ch_stq_add(q, pid, NULL, cs,
                   cs == CONN_ST_DELIVERED || cs == CONN_ST_UNDELIVERED ? ch_parse_time(when) : 0,
                   d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "smsir: no deliveryState in the reply");
    }
    ch_reply_free(&r);
}

static int ir_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    struct buf p = BUF_INIT;
    int rc = buf_puts(&p, "/v1/send/");
    if (!rc)
        rc = buf_put_urlenc(&p, ids[0]);
    if (!rc)
        rc = ir_req(c, r, "GET", p.data);
    buf_free(&p);
    return rc;
}

static int ir_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, 1, ir_status_req, conn_smsir_parse_status, cb, ud);
}

/* ---- inbox, balance, lines --------------------------------------------------- */

static const struct ch_mo_fields ir_mo = {
    .from = "mobile", .to = "number", .text = "messageText", .date = "receivedDateTime"};

static void ir_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &ir_api, http, body, len) == 0)
        ch_inbox_list(op, r.data, &ir_mo);
    ch_reply_free(&r);
}

static void ir_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    double x;
    if (ch_op_reply(op, &r, &ir_api, http, body, len) == 0)
        ch_balance_value(op, ch_json_num(r.data, &x) == 0 ? r.data : ch_json_get(r.data, "credit"),
                         "IRR", "smsir: no credit in the reply");
    ch_reply_free(&r);
}

static void ir_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &ir_api, http, body, len) == 0)
        ch_lines_list(op, r.data, NULL, NULL);
    ch_reply_free(&r);
}

static int ir_get(struct conn *c, const char *path, struct ch_op *op)
{
    struct ch_req r;
    int rc = ir_req(c, &r, "GET", path);
    return rc ? rc : ch_op_submit(c, &r, op);
}

static int ir_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    struct ch_op op = {.inbox = cb, .ud = ud, .parse = ir_parse_inbox};
    return ir_get(c, "/v1/receive/latest?count=100", &op);
}

static int ir_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_op op = {.balance = cb, .ud = ud, .parse = ir_parse_balance};
    return ir_get(c, "/v1/credit", &op);
}

static int ir_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_op op = {.lines = cb, .ud = ud, .parse = ir_parse_lines};
    return ir_get(c, "/v1/line", &op);
}

static const struct ch_op_parsers ir_parsers = {
    .inbox = ir_parse_inbox, .balance = ir_parse_balance, .lines = ir_parse_lines};

void conn_smsir_parse_ops(struct conn *c, int http, const char *body, size_t len,
                          const struct ch_op *cbs)
{
    ch_op_parse(&ir_parsers, c, http, body, len, cbs);
}

static int ir_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

const struct conn_ops conn_smsir_ops = {
    .name = "smsir",
    .max_batch = IR_MAX_SEND,
    .supports_idempotency = 0,
    .open = ir_open,
    .send = ir_send,
    .status = ir_status,
    .inbox = ir_inbox,
    .balance = ir_balance,
    .lines = ir_lines,
    .webhook = NULL,
    .close = ch_close,
};

static int ir_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    int rc = ch_need_apikey(env, "smsir", "the API key", err);
    return rc ? rc
              : ch_open(env, settings, &conn_smsir_ops, "https://api.sms.ir", NULL, NULL, out, err);
}
