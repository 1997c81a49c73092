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

/* Checks RetStatus; 0 with *value (the Value string: inside root, or in
 * num when the panel sent a number) or the class. */
static int mp_envelope(const cJSON *root, int http, const char **value, char num[64], char *d,
                       size_t dl)
{
    long ret;
    const cJSON *v = ch_json_get(root, "Value");
    if (ch_json_long(ch_json_get(root, "RetStatus"), &ret) != 0) {
        int hc = ch_http_class(http);
        snprintf(d, dl, "melipayamak: reply without RetStatus (HTTP %d)", http);
        return hc ? hc : SMSYS_EPROTO;
    }
    *value = cJSON_IsString(v) ? v->valuestring : (ch_json_text(v, num, 64) == 0 ? num : "");
    if (ret == 1)
        return 0;
    long code = ret;
    ch_json_long(v, &code); /* the code is in Value as well */
    const char *known;
    int rc = conn_melipayamak_class(code, &known);
    const cJSON *str = ch_json_get(root, "StrRetStatus");
    snprintf(d, dl, "melipayamak %ld: %s%s%s", code, known ? known : "error",
             cJSON_IsString(str) ? " - " : "", cJSON_IsString(str) ? str->valuestring : "");
    return rc;
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

int conn_melipayamak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const char *value = "";
    char d[400], num[64];
    int rc = root ? mp_envelope(root, http, &value, num, d, sizeof d) : ch_http_class(http);
    if (root == NULL && rc == 0)
        rc = SMSYS_EPROTO;
    if (rc == SMSYS_EPROTO || (root == NULL && rc)) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && strstr(d, "melipayamak 16") == d) {
        cJSON_Delete(root);
        ch_batch_split(b);
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, d);
    } else {
        /* comma separated record ids in recipient order */
        const char *p = value;
        for (size_t k = 0; k < b->n && *p; k++) {
            size_t l = strcspn(p, ",");
            char id[64];
            snprintf(id, sizeof id, "%.*s", (int)(l < 63 ? l : 63), p);
            if (l >= 15) /* a record id; a short number is a per-recipient code */
                ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
            else if (l > 0) {
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
    cJSON_Delete(root);
    return 0;
}

static void mp_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else if (conn_melipayamak_parse_send(b, resp->status, resp->body.data, resp->body.len))
        return;
    ch_batch_done(b);
}

static int mp_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    struct buf to = BUF_INIT;
    struct ch_req r;
    double cost = 0;
    int rc = mp_req(c, &r, "SendSMS");
    for (size_t k = 0; !rc && k < b->n; k++) {
        rc = buf_printf(&to, "%s%s", k ? "," : "", b->s->m[b->idx[k]].to);
        cost += b->s->m[b->idx[k]].segments;
    }
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
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, mp_send_done, b);
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
    cJSON *root = ch_json_parse(body, len);
    const char *value = "";
    char d[400], num[64];
    int rc = root ? mp_envelope(root, http, &value, num, d, sizeof d) : SMSYS_EPROTO;
    long long code;
    if (root == NULL)
        snprintf(d, sizeof d, "melipayamak: unreadable reply (HTTP %d)", http);
    if (rc) {
        ch_stq_result(q, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, d);
    } else if (util_parse_int(value, -1000, 100000, &code) == 0) {
        snprintf(d, sizeof d, "melipayamak delivery %lld", code);
        ch_stq_add(q, pid, NULL, conn_melipayamak_status((long)code), 0, d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "melipayamak: unreadable delivery code");
    }
    cJSON_Delete(root);
}

struct mp_stq {
    struct ch_stq *q;
    char pid[64];
};

static void mp_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct mp_stq *k = ud;
    if (rc < 0 || resp == NULL)
        ch_stq_result(k->q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        conn_melipayamak_parse_status(k->q, k->pid, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(k->q);
    free(k);
}

static int mp_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct mp_stq *k = calloc(1, sizeof *k);
        struct ch_req r;
        int e = k ? mp_req(c, &r, "GetDeliveries2") : -ENOMEM;
        if (!e && (e = http_client_form_add(&r.body, "recId", ids[i])) != 0)
            ch_req_free(&r);
        if (e) {
            free(k);
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        snprintf(k->pid, sizeof k->pid, "%s", ids[i]);
        k->q = q;
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, mp_status_done, k)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
            free(k);
        }
    }
    return 0;
}

/* ---- inbox, balance, lines ------------------------------------------------------- */

static void mp_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const char *value;
    char d[400], num[64];
    int rc = root ? mp_envelope(root, http, &value, num, d, sizeof d) : SMSYS_EPROTO;
    if (rc) {
        ch_op_fail(op, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, "%s",
                   root ? d : "melipayamak: unreadable reply");
        cJSON_Delete(root);
        return;
    }
    const cJSON *data = ch_json_get(root, "Data");
    int n = cJSON_GetArraySize(data);
    struct conn_mo *mo = calloc(n > 0 ? (size_t)n : 1, sizeof *mo);
    char(*sv)[3][64] = calloc(n > 0 ? (size_t)n : 1, sizeof *sv);
    size_t k = 0;
    const cJSON *e, *list = mo && sv ? data : NULL;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *txt = ch_json_get(e, "Body");
        if (!cJSON_IsString(txt))
            continue;
        char when[40] = "";
        ch_json_text(ch_json_get(e, "MsgID"), sv[k][0], sizeof sv[k][0]);
        ch_json_text(ch_json_get(e, "Sender"), sv[k][1], sizeof sv[k][1]);
        ch_json_text(ch_json_get(e, "Receiver"), sv[k][2], sizeof sv[k][2]);
        ch_json_text(ch_json_get(e, "SendDate"), when, sizeof when);
        mo[k].provider_id = sv[k][0][0] ? sv[k][0] : NULL;
        mo[k].from = sv[k][1];
        mo[k].to = sv[k][2];
        mo[k].text = txt->valuestring;
        mo[k].received_at = ch_parse_time(when);
        k++;
    }
    struct smsys_err err = {0};
    if (mo && sv)
        op->inbox(op->ud, 0, mo, k, &err);
    else
        ch_op_fail(op, -ENOMEM, "out of memory");
    free(mo);
    free(sv);
    cJSON_Delete(root);
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
    cJSON *root = ch_json_parse(body, len);
    const char *value = "";
    char d[400], num[64];
    int rc = root ? mp_envelope(root, http, &value, num, d, sizeof d) : SMSYS_EPROTO;
    struct conn_balance b = {.unit = "IRR"};
    char *end = NULL;
    if (!rc)
        b.amount = strtod(value, &end);
    if (!rc && (end == value || *end != '\0')) {
        rc = SMSYS_EPROTO;
        snprintf(d, sizeof d, "melipayamak: unreadable credit");
    }
    if (rc) {
        ch_op_fail(op, rc, "%s", root ? d : "melipayamak: unreadable reply");
    } else {
        struct smsys_err err = {0};
        op->balance(op->ud, 0, &b, &err);
    }
    cJSON_Delete(root);
}

static int mp_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = mp_req(c, &r, "GetCredit");
    if (rc)
        return rc;
    struct ch_op o = {.balance = cb, .ud = ud, .parse = mp_parse_balance};
    return ch_op_submit(c, &r, &o);
}

static void mp_parse_lines(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const char *value;
    char d[400], num[64];
    int rc = root ? mp_envelope(root, http, &value, num, d, sizeof d) : SMSYS_EPROTO;
    const cJSON *data = rc ? NULL : ch_json_get(root, "Data");
    int n = cJSON_GetArraySize(data);
    struct conn_line *l = calloc(n > 0 ? (size_t)n : 1, sizeof *l);
    char(*nums)[40] = calloc(n > 0 ? (size_t)n : 1, sizeof *nums);
    if (rc || !l || !nums) {
        ch_op_fail(op, rc ? rc : -ENOMEM, "%s", root ? d : "melipayamak: unreadable reply");
    } else {
        size_t k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, data)
        {
            if (ch_json_text(ch_json_get(e, "Number"), nums[k], sizeof nums[k]) == 0)
                l[k].number = nums[k], k++;
        }
        struct smsys_err err = {0};
        op->lines(op->ud, 0, l, k, &err);
    }
    free(l);
    free(nums);
    cJSON_Delete(root);
}

static int mp_lines(struct conn *c, conn_lines_cb cb, void *ud)
{
    struct ch_req r;
    int rc = mp_req(c, &r, "GetUserNumbers");
    if (rc)
        return rc;
    struct ch_op o = {.lines = cb, .ud = ud, .parse = mp_parse_lines};
    return ch_op_submit(c, &r, &o);
}

void conn_melipayamak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                                const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.inbox)
        mp_parse_inbox(c, &op, http, body, len);
    if (op.balance)
        mp_parse_balance(c, &op, http, body, len);
    if (op.lines)
        mp_parse_lines(c, &op, http, body, len);
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
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG,
                             "melipayamak: smsys_apikey (the panel password) is empty");
    return ch_open(env, settings, &conn_melipayamak_ops, "https://rest.payamak-panel.com", mp_keys,
                   mp_parse, out, err);
}
