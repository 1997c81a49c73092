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

/* 0 and *data, SMSYS_EPROTO for a reply without an envelope, else the
 * class with the provider code and text in d. */
static int ir_envelope(const cJSON *root, int http, const cJSON **data, char *d, size_t dl)
{
    long code;
    if (ch_json_long(ch_json_get(root, "status"), &code) != 0) {
        snprintf(d, dl, "smsir: reply without status (HTTP %d)", http);
        int hc = ch_http_class(http);
        return hc ? hc : SMSYS_EPROTO;
    }
    *data = ch_json_get(root, "data");
    if (code == 1)
        return 0;
    const char *known;
    int rc = conn_smsir_class(code, http, &known);
    const cJSON *msg = ch_json_get(root, "message");
    snprintf(d, dl, "smsir %ld (HTTP %d): %s%s%s", code, http, known ? known : "error",
             cJSON_IsString(msg) ? " - " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    return rc;
}

static int ir_req(struct conn *c, struct ch_req *r, const char *method, const char *path)
{
    int rc = ch_req_init(c, r, method, path);
    if (!rc)
        rc = ch_req_header(r, "X-API-KEY", c->env.apikey);
    if (!rc && strcmp(method, "POST") == 0)
        r->content_type = "application/json";
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send ----------------------------------------------------------------- */

int conn_smsir_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? ir_envelope(root, http, &data, d, sizeof d) : ch_http_class(http);
    if (root == NULL && rc == 0)
        rc = SMSYS_EPROTO;
    if (rc == SMSYS_EPROTO || (root == NULL && rc)) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && strstr(d, "smsir 104") == d) {
        cJSON_Delete(root);
        ch_batch_split(b); /* one bad number refused the whole request */
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, d);
    } else {
        const cJSON *ids = ch_json_get(data, "messageIds");
        /* one id per mobile, in order; anything else is unreadable */
        if (cJSON_GetArraySize(ids) == (int)b->n) {
            for (size_t k = 0; k < b->n; k++) {
                char id[64];
                if (ch_json_text(cJSON_GetArrayItem(ids, (int)k), id, sizeof id) == 0)
                    ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
            }
        }
    }
    cJSON_Delete(root);
    return 0;
}

static void ir_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else if (conn_smsir_parse_send(b, resp->status, resp->body.data, resp->body.len))
        return; /* split: b was passed on */
    ch_batch_done(b);
}

static int ir_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    cJSON *o = cJSON_CreateObject(), *mob = cJSON_AddArrayToObject(o, "mobiles");
    double cost = 0;
    /* lineNumber is a number in SMS.ir's API (long) */
    char *end;
    double line = strtod(m0->from, &end);
    if (m0->from[0] && *end == '\0')
        cJSON_AddNumberToObject(o, "lineNumber", line);
    else
        cJSON_AddStringToObject(o, "lineNumber", m0->from);
    cJSON_AddStringToObject(o, "messageText", m0->text);
    for (size_t k = 0; k < b->n; k++) {
        cJSON_AddItemToArray(mob, cJSON_CreateString(b->s->m[b->idx[k]].to));
        cost += b->s->m[b->idx[k]].segments;
    }
    if (m0->not_before > 0)
        cJSON_AddNumberToObject(o, "sendDateTime", (double)m0->not_before);
    else
        cJSON_AddNullToObject(o, "sendDateTime");
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct ch_req r;
    int rc = js ? ir_req(c, &r, "POST", "/v1/send/bulk") : -ENOMEM;
    if (!rc)
        rc = buf_puts(&r.body, js);
    free(js);
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, ir_send_done, b);
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
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? ir_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    if (root == NULL)
        snprintf(d, sizeof d, "smsir: unreadable reply (HTTP %d)", http);
    long st;
    if (rc == SMSYS_EPERM || rc == SMSYS_ETEMP) {
        /* "no message with this id" (status 0, HTTP 400) */
        ch_stq_add(q, pid, NULL, CONN_ST_UNKNOWN, 0, d);
        ch_stq_result(q, 0, NULL);
    } else if (rc) {
        ch_stq_result(q, rc, d);
    } else if (ch_json_long(ch_json_get(data, "deliveryState"), &st) == 0) {
        char when[40] = "";
        ch_json_text(ch_json_get(data, "deliveryDateTime"), when, sizeof when);
        snprintf(d, sizeof d, "smsir deliveryState %ld", st);
        enum conn_status cs = conn_smsir_status(st);
        ch_stq_add(q, pid, NULL, cs,
                   cs == CONN_ST_DELIVERED || cs == CONN_ST_UNDELIVERED ? ch_parse_time(when) : 0,
                   d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "smsir: no deliveryState in the reply");
    }
    cJSON_Delete(root);
}

struct ir_stq {
    struct ch_stq *q;
    char pid[64];
};

static void ir_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ir_stq *k = ud;
    if (rc < 0 || resp == NULL)
        ch_stq_result(k->q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        conn_smsir_parse_status(k->q, k->pid, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(k->q);
    free(k);
}

static int ir_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct ir_stq *k = calloc(1, sizeof *k);
        struct buf p = BUF_INIT;
        struct ch_req r;
        int e = k ? buf_puts(&p, "/v1/send/") : -ENOMEM;
        if (!e)
            e = buf_put_urlenc(&p, ids[i]);
        if (!e)
            e = ir_req(c, &r, "GET", p.data);
        buf_free(&p);
        if (e) {
            free(k);
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        snprintf(k->pid, sizeof k->pid, "%s", ids[i]);
        k->q = q;
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, ir_status_done, k)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
            free(k);
        }
    }
    return 0;
}

/* ---- inbox, balance, lines --------------------------------------------------- */

static void ir_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? ir_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    if (rc) {
        ch_op_fail(op, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, "%s",
                   root ? d : "smsir: unreadable reply");
        cJSON_Delete(root);
        return;
    }
    int n = cJSON_GetArraySize(data);
    struct conn_mo *mo = calloc(n > 0 ? (size_t)n : 1, sizeof *mo);
    char(*num)[2][40] = calloc(n > 0 ? (size_t)n : 1, sizeof *num);
    size_t k = 0;
    const cJSON *e, *list = mo && num ? data : NULL;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *txt = ch_json_get(e, "messageText");
        if (!cJSON_IsString(txt))
            continue;
        char when[40] = "";
        ch_json_text(ch_json_get(e, "mobile"), num[k][0], sizeof num[k][0]);
        ch_json_text(ch_json_get(e, "number"), num[k][1], sizeof num[k][1]);
        ch_json_text(ch_json_get(e, "receivedDateTime"), when, sizeof when);
        mo[k].text = txt->valuestring;
        mo[k].from = num[k][0];
        mo[k].to = num[k][1];
        mo[k].received_at = ch_parse_time(when);
        k++;
    }
    struct smsys_err err = {0};
    if (mo && num)
        op->inbox(op->ud, 0, mo, k, &err);
    else
        ch_op_fail(op, -ENOMEM, "out of memory");
    free(mo);
    free(num);
    cJSON_Delete(root);
}

static int ir_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    struct ch_req r;
    int rc = ir_req(c, &r, "GET", "/v1/receive/latest?count=100");
    if (rc)
        return rc;
    struct ch_op op = {.inbox = cb, .ud = ud, .parse = ir_parse_inbox};
    return ch_op_submit(c, &r, &op);
}

static void ir_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? ir_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    struct conn_balance b = {.unit = "IRR"};
    if (!rc && ch_json_num(data, &b.amount) != 0 &&
        ch_json_num(ch_json_get(data, "credit"), &b.amount) != 0)
        rc = SMSYS_EPROTO;
    if (rc) {
        ch_op_fail(op, rc, "%s", root ? d : "smsir: unreadable reply");
    } else {
        struct smsys_err err = {0};
        op->balance(op->ud, 0, &b, &err);
    }
    cJSON_Delete(root);
}

static int ir_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = ir_req(c, &r, "GET", "/v1/credit");
    if (rc)
        return rc;
    struct ch_op op = {.balance = cb, .ud = ud, .parse = ir_parse_balance};
    return ch_op_submit(c, &r, &op);
}

static void ir_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? ir_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    int n = cJSON_GetArraySize(data);
    struct conn_line *l = calloc(n > 0 ? (size_t)n : 1, sizeof *l);
    char(*num)[40] = calloc(n > 0 ? (size_t)n : 1, sizeof *num);
    if (rc || !l || !num) {
        ch_op_fail(op, rc ? rc : -ENOMEM, "%s", root ? d : "smsir: unreadable reply");
    } else {
        size_t k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, data)
        {
            if (ch_json_text(e, num[k], sizeof num[k]) == 0)
                l[k].number = num[k], k++;
        }
        struct smsys_err err = {0};
        op->lines(op->ud, 0, l, k, &err);
    }
    free(l);
    free(num);
    cJSON_Delete(root);
}

static int ir_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_req r;
    int rc = ir_req(c, &r, "GET", "/v1/line");
    if (rc)
        return rc;
    struct ch_op op = {.lines = cb, .ud = ud, .parse = ir_parse_lines};
    return ch_op_submit(c, &r, &op);
}

void conn_smsir_parse_ops(struct conn *c, int http, const char *body, size_t len,
                          const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.inbox)
        ir_parse_inbox(c, &op, http, body, len);
    if (op.balance)
        ir_parse_balance(c, &op, http, body, len);
    if (op.lines)
        ir_parse_lines(c, &op, http, body, len);
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
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "smsir: smsys_apikey (the API key) is empty");
    return ch_open(env, settings, &conn_smsir_ops, "https://api.sms.ir", NULL, NULL, out, err);
}
