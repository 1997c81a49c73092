/* melipayamak.c - the Payamak-panel platform (providers.md "Melipayamak"):
 * Melipayamak, Farapayamak and the other white-label brands; base_url
 * picks the host.
 *
 * Legacy REST: POST {base_url}/api/SendSMS/<Op>, form with username and
 * password (username from the settings, password = smsys_apikey); reply
 * {"Value":"...","RetStatus":1,"StrRetStatus":"Ok"}. A send's Value is
 * the record id (15+ digits), comma separated per recipient; a small number
 * is an error code. No idempotency key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "smsys/util.h"
#include "conn_parsers.h"

#define MP_MAX_SEND 100

struct mp_priv {
    char *username;
};

static const struct ch_code mp_codes[] = {
    {0, SMSYS_EACCOUNT, "wrong username or password"},
    {2, SMSYS_EACCOUNT, "not enough credit"},
    {3, SMSYS_ETHROTTLED, "sending limit reached"},
    {4, SMSYS_ETHROTTLED, "sending volume limit reached"},
    {5, SMSYS_EPERM, "invalid sender line"},
    {6, SMSYS_ETEMP, "system busy"},
    {7, SMSYS_EPERM, "text contains a filtered word"},
    {9, SMSYS_EPERM, "public lines cannot send over the web service"},
    {11, SMSYS_EACCOUNT, "account disabled"},
    {14, SMSYS_EPERM, "links not allowed in the text"},
    {15, SMSYS_EPERM, "missing the opt-out line (lghv 11)"},
    {16, SMSYS_EPERM, "invalid recipient"},
    {17, SMSYS_EPERM, "empty text"},
    {35, SMSYS_EPERM, "recipient blacklisted"},
    {0, 0, NULL},
};

/* 0 is "sent to the operator" in the docs, but panels report it before the
 * operator has answered: treat it as still queued (not final either way). */
static const struct ch_status_code mp_states[] = {
    {0, CONN_ST_QUEUED},       {1, CONN_ST_DELIVERED}, {2, CONN_ST_UNDELIVERED},
    {3, CONN_ST_FAILED},       {8, CONN_ST_SENT},      {16, CONN_ST_UNDELIVERED},
    {35, CONN_ST_BLACKLISTED}, {100, CONN_ST_UNKNOWN}, {200, CONN_ST_SENT},
    {300, CONN_ST_FAILED},     {500, CONN_ST_FAILED},  {-1, CONN_ST_UNKNOWN},
};

enum conn_status conn_melipayamak_status(long code)
{
    return ch_status_lookup(mp_states, code);
}

int conn_melipayamak_class(long code, const char **text)
{
    return ch_code_class(mp_codes, code, SMSYS_EPERM, text);
}

static int mp_classify(long code, int http, const char **text)
{
    return conn_melipayamak_class(code, text);
}

/* A refusal's code is in Value as well (RetStatus is only "not 1"). */
static const struct ch_api mp_api = {
    .name = "melipayamak",
    .code = "RetStatus",
    .ok = 1,
    .code_more = "Value",
    .message = "StrRetStatus",
    .data = "Value",
    .classify = mp_classify,
    .split_code = 16, /* invalid recipient */
};

/* Value as text: a string, or a number when the panel sends one. */
static const char *mp_value(const struct ch_reply *r, char num[64])
{
    const cJSON *v = r->data;
    return cJSON_IsString(v) ? v->valuestring : (ch_json_text(v, num, 64) == 0 ? num : "");
}

static int mp_req(struct conn *c, struct ch_req *r, const char *op)
{
    const struct mp_priv *p = c->priv;
    char path[128];
    snprintf(path, sizeof path, "/api/SendSMS/%s", op);
    int rc = ch_req_init(c, r, "POST", path);
    if (!rc)
        rc = http_client_form_add(&r->body, "username", p->username);
    if (!rc)
        rc = http_client_form_add(&r->body, "password", c->env.apikey);
    if (rc)
        ch_req_free(r);
    else
        r->content_type = "application/x-www-form-urlencoded";
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

/* comma separated record ids in recipient order; a short number in place
 * of an id is that recipient's error code */
static void mp_sent(struct ch_batch *b, const struct ch_reply *r)
{
    char num[64];
    const char *p = mp_value(r, num);
    for (size_t k = 0; k < b->n && *p; k++) {
        size_t l = strcspn(p, ",");
        char id[64], d[200];
        snprintf(id, sizeof id, "%.*s", (int)(l < 63 ? l : 63), p);
        if (l >= 15) {
            ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
        } else if (l > 0) {
            long code = strtol(id, NULL, 10);
            const char *known;
            int crc = conn_melipayamak_class(code, &known);
            snprintf(d, sizeof d, "melipayamak %ld: %s", code, known ? known : "error");
            ch_send_result(b->s, b->idx[k], crc, NULL, CONN_ST_FAILED, 0, d);
        }
        p += l;
        if (*p == ',')
            p++;
    }
}

int conn_melipayamak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &mp_api, http, body, len, mp_sent);
}

static int mp_send_start(struct ch_batch *b, void *ud)
{
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    struct buf to = BUF_INIT;
    struct ch_req r;
    int rc = mp_req(b->s->c, &r, "SendSMS");
    if (rc)
        return rc;
    rc = ch_batch_join(b, 0, ",", &to);
    if (!rc)
        rc = http_client_form_add(&r.body, "to", to.data);
    if (!rc)
        rc = http_client_form_add(&r.body, "from", m0->from);
    if (!rc)
        rc = http_client_form_add(&r.body, "text", m0->text);
    buf_free(&to);
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    return ch_batch_submit(b, &r, conn_melipayamak_parse_send);
}

static int mp_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_NATIONAL, cb, ud, &s);
    if (rc)
        return rc;
    return ch_send_run(s, MP_MAX_SEND, 1, mp_send_start, NULL);
}

/* ---- status: GetDeliveries2 per record id ------------------------------------------ */

void conn_melipayamak_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                                   size_t len)
{
    struct ch_reply r;
    char num[64], d[64];
    long long code;
    if (ch_stq_reply(q, &r, &mp_api, http, body, len) != 0) {
        /* recorded */
    } else if (util_parse_int(mp_value(&r, num), -1000, 100000, &code) == 0) {
        snprintf(d, sizeof d, "melipayamak delivery %lld", code);
        ch_stq_add(q, pid, NULL, conn_melipayamak_status((long)code), 0, d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "melipayamak: unreadable delivery code");
    }
    ch_reply_free(&r);
}

static int mp_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    int rc = mp_req(c, r, "GetDeliveries2");
    if (!rc && (rc = http_client_form_add(&r->body, "recId", ids[0])) != 0)
        ch_req_free(r);
    return rc;
}

static int mp_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, 1, mp_status_req, conn_melipayamak_parse_status, cb, ud);
}

/* ---- inbox, balance, lines ------------------------------------------------------- */

static const struct ch_mo_fields mp_mo = {
    .id = "MsgID", .from = "Sender", .to = "Receiver", .text = "Body", .date = "SendDate"};

static void mp_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &mp_api, http, body, len) == 0)
        ch_inbox_list(op, ch_json_get(r.root, "Data"), &mp_mo);
    ch_reply_free(&r);
}

static int mp_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    struct ch_req r;
    int rc = mp_req(c, &r, "GetMessages");
    if (!rc)
        rc = http_client_form_add(&r.body, "location", "1");
    if (!rc)
        rc = http_client_form_add(&r.body, "index", "0");
    if (!rc)
        rc = http_client_form_add(&r.body, "count", "100");
    if (!rc)
        rc = http_client_form_add(&r.body, "from", c->set.sender ? c->set.sender : "");
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    struct ch_op o = {.inbox = cb, .ud = ud, .parse = mp_parse_inbox};
    return ch_op_submit(c, &r, &o);
}

static void mp_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &mp_api, http, body, len) == 0)
        ch_balance_value(op, r.data, "IRR", "melipayamak: unreadable credit");
    ch_reply_free(&r);
}

static void mp_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &mp_api, http, body, len) == 0)
        ch_lines_list(op, ch_json_get(r.root, "Data"), "Number", NULL);
    ch_reply_free(&r);
}

static int mp_op(struct conn *c, const char *name, const struct ch_op *op)
{
    struct ch_req r;
    int rc = mp_req(c, &r, name);
    return rc ? rc : ch_op_submit(c, &r, op);
}

static int mp_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_op o = {.balance = cb, .ud = ud, .parse = mp_parse_balance};
    return mp_op(c, "GetCredit", &o);
}

static int mp_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_op o = {.lines = cb, .ud = ud, .parse = mp_parse_lines};
    return mp_op(c, "GetUserNumbers", &o);
}

static const struct ch_op_parsers mp_parsers = {
    .inbox = mp_parse_inbox, .balance = mp_parse_balance, .lines = mp_parse_lines};

void conn_melipayamak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                                const struct ch_op *cbs)
{
    ch_op_parse(&mp_parsers, c, http, body, len, cbs);
}

/* ---- open ------------------------------------------------------------------------------ */

static void mp_free(void *p)
{
    struct mp_priv *m = p;
    if (m)
        free(m->username);
    free(m);
}

static int mp_parse(struct conn *c, const cJSON *s, struct smsys_err *err)
{
    struct mp_priv *p = calloc(1, sizeof *p);
    if (p == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    c->priv = p;
    c->priv_free = mp_free;
    int rc = ch_set_str(s, "username", NULL, &p->username, err);
    if (!rc && (p->username == NULL || p->username[0] == '\0'))
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting username: required (the panel user; the password goes in "
                           "smsys_apikey)");
    return rc;
}

static int mp_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

const struct conn_ops conn_melipayamak_ops = {
    .name = "melipayamak",
    .max_batch = MP_MAX_SEND,
    .supports_idempotency = 0,
    .open = mp_open,
    .send = mp_send,
    .status = mp_status,
    .inbox = mp_inbox,
    .balance = mp_balance,
    .lines = mp_lines,
    .webhook = NULL,
    .close = ch_close,
};

static const char *const mp_keys[] = {"username", NULL};

static int mp_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    int rc = ch_need_apikey(env, "melipayamak", "the panel password", err);
    return rc ? rc
              : ch_open(env, settings, &conn_melipayamak_ops, "https://rest.payamak-panel.com",
                        mp_keys, mp_parse, out, err);
}
