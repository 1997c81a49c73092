/* ghasedak.c - Ghasedak gateway REST (providers.md "Ghasedak").
 *
 * {base_url}/rest/api/v1/WebService/<Op>, header ApiKey, JSON; envelope
 * {"isSuccess":..,"statusCode":..,"message":..,"data":..}. Every message
 * carries our id as clientReferenceId (SendSingleSMS for one, and
 * SendPairToPairSMS for a batch, where each item has its own reference), so
 * Ghasedak deduplicates a resend (supports_idempotency). Keys of `data` are
 * read case-insensitively: providers.md marks them (?). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smsys/conn_http.h"
#include "conn_parsers.h"

#define GH_MAX_SEND   100
#define GH_MAX_STATUS 100
#define GH_PATH       "/rest/api/v1/WebService/"

static const struct ch_code gh_codes[] = {
    {200, 0, "ok"},
    {400, SMSYS_EPERM, "bad request"},
    {401, SMSYS_EACCOUNT, "invalid API key"},
    {402, SMSYS_EACCOUNT, "not enough credit"},
    {403, SMSYS_EACCOUNT, "access denied"},
    {412, SMSYS_EPERM, "invalid line number"},
    {422, SMSYS_EPERM, "invalid recipient"},
    {429, SMSYS_ETHROTTLED, "rate limit"},
    {0, 0, NULL},
};

static const struct ch_status_code gh_states[] = {
    {0, CONN_ST_QUEUED},       {2, CONN_ST_QUEUED},       {3, CONN_ST_QUEUED},
    {10, CONN_ST_QUEUED},      {11, CONN_ST_QUEUED},      {17, CONN_ST_QUEUED},
    {9, CONN_ST_QUEUED},       {1, CONN_ST_FAILED},       {4, CONN_ST_SENT},
    {6, CONN_ST_FAILED},       {16, CONN_ST_FAILED},      {7, CONN_ST_CANCELED},
    {8, CONN_ST_BLACKLISTED},  {12, CONN_ST_BLACKLISTED}, {15, CONN_ST_BLACKLISTED},
    {13, CONN_ST_UNDELIVERED}, {14, CONN_ST_DELIVERED},   {-1, CONN_ST_UNKNOWN},
};

enum conn_status conn_ghasedak_status(long code)
{
    return ch_status_lookup(gh_states, code);
}

int conn_ghasedak_class(long code, const char **text)
{
    int dflt = ch_http_class((int)code);
    return ch_code_class(gh_codes, code, dflt ? dflt : SMSYS_ETEMP, text);
}

static int gh_envelope(const cJSON *root, int http, const cJSON **data, char *d, size_t dl)
{
    long code;
    const cJSON *ok = ch_json_get(root, "isSuccess");
    if (ch_json_long(ch_json_get(root, "statusCode"), &code) != 0) {
        snprintf(d, dl, "ghasedak: reply without statusCode (HTTP %d)", http);
        int hc = ch_http_class(http);
        return hc ? hc : SMSYS_EPROTO;
    }
    *data = ch_json_get(root, "data");
    if (code == 200 && !cJSON_IsFalse(ok))
        return 0;
    const char *known;
    int rc = conn_ghasedak_class(code == 200 ? 400 : code, &known);
    const cJSON *msg = ch_json_get(root, "message");
    snprintf(d, dl, "ghasedak %ld: %s%s%s", code, known ? known : "error",
             cJSON_IsString(msg) ? " - " : "", cJSON_IsString(msg) ? msg->valuestring : "");
    return rc;
}

static int gh_req(struct conn *c, struct ch_req *r, const char *method, const char *op)
{
    char path[300];
    snprintf(path, sizeof path, GH_PATH "%s", op);
    int rc = ch_req_init(c, r, method, path);
    if (!rc)
        rc = ch_req_header(r, "ApiKey", c->env.apikey);
    if (!rc && strcmp(method, "POST") == 0)
        r->content_type = "application/json";
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

int conn_ghasedak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? gh_envelope(root, http, &data, d, sizeof d) : ch_http_class(http);
    if (root == NULL && rc == 0)
        rc = SMSYS_EPROTO;
    if (rc == SMSYS_EPROTO || (root == NULL && rc)) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && strstr(d, "ghasedak 422") == d) {
        cJSON_Delete(root);
        ch_batch_split(b);
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, d);
    } else if (b->n == 1) {
        char id[64];
        if (ch_json_text(ch_json_get(data, "messageId"), id, sizeof id) == 0)
            ch_send_result(b->s, b->idx[0], 0, id, CONN_ST_QUEUED, 0, NULL);
    } else {
        /* items carry our reference back: match on it, else on order */
        const cJSON *items = ch_json_get(data, "items");
        int n = cJSON_GetArraySize(items);
        for (int j = 0; j < n; j++) {
            const cJSON *e = cJSON_GetArrayItem(items, j);
            char id[64], ref[80] = "";
            if (ch_json_text(ch_json_get(e, "messageId"), id, sizeof id) != 0)
                continue;
            ch_json_text(ch_json_get(e, "clientReferenceId"), ref, sizeof ref);
            for (size_t k = 0; k < b->n; k++) {
                const struct ch_msg *m = &b->s->m[b->idx[k]];
                if (ref[0] ? strcmp(ref, m->id) == 0 : (size_t)j == k && n == (int)b->n) {
                    ch_send_result(b->s, b->idx[k], 0, id, CONN_ST_QUEUED, 0, NULL);
                    break;
                }
            }
        }
    }
    cJSON_Delete(root);
    return 0;
}

static void gh_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else if (conn_ghasedak_parse_send(b, resp->status, resp->body.data, resp->body.len))
        return;
    ch_batch_done(b);
}

static void gh_item(cJSON *o, const struct ch_msg *m)
{
    cJSON_AddStringToObject(o, "lineNumber", m->from);
    cJSON_AddStringToObject(o, "receptor", m->to);
    cJSON_AddStringToObject(o, "message", m->text);
    if (m->not_before > 0) {
        char iso[32];
        time_t t = (time_t)m->not_before;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "sendDate", iso);
    }
    cJSON_AddStringToObject(o, "clientReferenceId", m->id);
}

static int gh_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    cJSON *o = cJSON_CreateObject();
    double cost = 0;
    if (b->n == 1) {
        gh_item(o, &b->s->m[b->idx[0]]);
    } else {
        cJSON *items = cJSON_AddArrayToObject(o, "items");
        for (size_t k = 0; k < b->n; k++) {
            cJSON *it = cJSON_CreateObject();
            gh_item(it, &b->s->m[b->idx[k]]);
            cJSON_AddItemToArray(items, it);
        }
    }
    for (size_t k = 0; k < b->n; k++)
        cost += b->s->m[b->idx[k]].segments;
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct ch_req r;
    int rc =
        js ? gh_req(c, &r, "POST", b->n == 1 ? "SendSingleSMS" : "SendPairToPairSMS") : -ENOMEM;
    if (!rc)
        rc = buf_puts(&r.body, js);
    free(js);
    if (rc) {
        ch_req_free(&r);
        return rc;
    }
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, gh_send_done, b);
}

static int gh_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, PHONE_NATIONAL, cb, ud, &s);
    if (rc)
        return rc;
    s->idempotent = 1; /* clientReferenceId */
    return ch_send_run(s, GH_MAX_SEND, 0, gh_send_start, NULL);
}

/* ---- status ------------------------------------------------------------------- */

void conn_ghasedak_parse_status(struct ch_stq *q, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? gh_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    if (root == NULL)
        snprintf(d, sizeof d, "ghasedak: unreadable reply (HTTP %d)", http);
    if (rc) {
        ch_stq_result(q, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, d);
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, data)
        {
            char id[64], ref[80] = "";
            long st;
            if (ch_json_text(ch_json_get(e, "messageId"), id, sizeof id) != 0 ||
                ch_json_long(ch_json_get(e, "status"), &st) != 0)
                continue;
            ch_json_text(ch_json_get(e, "clientReferenceId"), ref, sizeof ref);
            snprintf(d, sizeof d, "ghasedak status %ld", st);
            ch_stq_add(q, id, ref[0] ? ref : NULL, conn_ghasedak_status(st), 0, d);
        }
        ch_stq_result(q, 0, NULL);
    }
    cJSON_Delete(root);
}

static void gh_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_stq *q = ud;
    if (rc < 0 || resp == NULL)
        ch_stq_result(q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        conn_ghasedak_parse_status(q, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(q);
}

static int gh_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += GH_MAX_STATUS) {
        struct buf op = BUF_INIT;
        int e = buf_puts(&op, "CheckSmsStatus?Type=1");
        for (size_t k = i; !e && k < n && k < i + GH_MAX_STATUS; k++) {
            e = buf_puts(&op, "&Ids=");
            if (!e)
                e = buf_put_urlenc(&op, ids[k]);
        }
        struct ch_req r;
        if (!e)
            e = gh_req(c, &r, "GET", op.data);
        buf_free(&op);
        if (e) {
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, gh_status_done, q)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
        }
    }
    return 0;
}

/* ---- inbox, balance -------------------------------------------------------------- */

static void gh_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? gh_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    if (rc) {
        ch_op_fail(op, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, "%s",
                   root ? d : "ghasedak: unreadable reply");
        cJSON_Delete(root);
        return;
    }
    const cJSON *items = ch_json_get(data, "items");
    int n = cJSON_GetArraySize(items);
    struct conn_mo *mo = calloc(n > 0 ? (size_t)n : 1, sizeof *mo);
    char(*sv)[3][64] = calloc(n > 0 ? (size_t)n : 1, sizeof *sv);
    size_t k = 0;
    const cJSON *e, *list = mo && sv ? items : NULL;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *txt = ch_json_get(e, "message");
        if (!cJSON_IsString(txt))
            continue;
        char when[40] = "";
        ch_json_text(ch_json_get(e, "id"), sv[k][0], sizeof sv[k][0]);
        ch_json_text(ch_json_get(e, "sender"), sv[k][1], sizeof sv[k][1]);
        ch_json_text(ch_json_get(e, "lineNumber"), sv[k][2], sizeof sv[k][2]);
        ch_json_text(ch_json_get(e, "receiveDate"), when, sizeof when);
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

static int gh_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    if (c->set.sender == NULL)
        return SMSYS_ECONFIG; /* GetReceivedSmses needs the line: setting sender */
    struct buf op = BUF_INIT;
    int rc = buf_puts(&op, "GetReceivedSmses?LineNumber=");
    if (!rc)
        rc = buf_put_urlenc(&op, c->set.sender);
    if (!rc)
        rc = buf_puts(&op, "&IsRead=false");
    struct ch_req r;
    if (!rc)
        rc = gh_req(c, &r, "GET", op.data);
    buf_free(&op);
    if (rc)
        return rc;
    struct ch_op o = {.inbox = cb, .ud = ud, .parse = gh_parse_inbox};
    return ch_op_submit(c, &r, &o);
}

static void gh_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                             size_t len)
{
    cJSON *root = ch_json_parse(body, len);
    const cJSON *data = NULL;
    char d[400];
    int rc = root ? gh_envelope(root, http, &data, d, sizeof d) : SMSYS_EPROTO;
    struct conn_balance b = {.unit = "IRR"};
    if (!rc && ch_json_num(ch_json_get(data, "credit"), &b.amount) != 0) {
        rc = SMSYS_EPROTO;
        snprintf(d, sizeof d, "ghasedak: no credit in the reply");
    }
    if (rc) {
        ch_op_fail(op, rc, "%s", root ? d : "ghasedak: unreadable reply");
    } else {
        struct smsys_err err = {0};
        op->balance(op->ud, 0, &b, &err);
    }
    cJSON_Delete(root);
}

static int gh_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct ch_req r;
    int rc = gh_req(c, &r, "GET", "GetAccountInformation");
    if (rc)
        return rc;
    struct ch_op o = {.balance = cb, .ud = ud, .parse = gh_parse_balance};
    return ch_op_submit(c, &r, &o);
}

void conn_ghasedak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                             const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.inbox)
        gh_parse_inbox(c, &op, http, body, len);
    if (op.balance)
        gh_parse_balance(c, &op, http, body, len);
}

static int gh_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err);

const struct conn_ops conn_ghasedak_ops = {
    .name = "ghasedak",
    .max_batch = GH_MAX_SEND,
    .supports_idempotency = 1,
    .open = gh_open,
    .send = gh_send,
    .status = gh_status,
    .inbox = gh_inbox,
    .balance = gh_balance,
    .lines = NULL, /* no documented call */
    .webhook = NULL,
    .close = ch_close,
};

static int gh_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                   struct smsys_err *err)
{
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "ghasedak: smsys_apikey (the API key) is empty");
    return ch_open(env, settings, &conn_ghasedak_ops, "https://gateway.ghasedak.me", NULL, NULL,
                   out, err);
}
