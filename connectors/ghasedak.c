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

/* isSuccess false with statusCode 200 is a refusal too: classed as 400 */
static int gh_classify(long code, int http, const char **text)
{
    return conn_ghasedak_class(code == 200 ? 400 : code, text);
}

static const struct ch_api gh_api = {
    .name = "ghasedak",
    .code = "statusCode",
    .ok = 200,
    .ok_flag = "isSuccess",
    .message = "message",
    .data = "data",
    .classify = gh_classify,
    .split_code = 422, /* invalid recipient */
};

static int gh_req(struct conn *c, struct ch_req *r, const char *method, const char *op)
{
    char path[300];
    snprintf(path, sizeof path, GH_PATH "%s", op);
    int rc = ch_req_init(c, r, method, path);
    if (!rc)
        rc = ch_req_header(r, "ApiKey", c->env.apikey);
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send -------------------------------------------------------------------- */

static void gh_sent(struct ch_batch *b, const struct ch_reply *r)
{
    if (b->n == 1) {
        char id[64];
        if (ch_json_text(ch_json_get(r->data, "messageId"), id, sizeof id) == 0)
            ch_send_result(b->s, b->idx[0], 0, id, CONN_ST_QUEUED, 0, NULL);
        return;
    }
    /* items carry our reference back: match on it, else on order */
    const cJSON *items = ch_json_get(r->data, "items");
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

int conn_ghasedak_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    return ch_send_reply(b, &gh_api, http, body, len, gh_sent);
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
    cJSON *o = cJSON_CreateObject();
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
    struct ch_req r;
    int rc = gh_req(b->s->c, &r, "POST", b->n == 1 ? "SendSingleSMS" : "SendPairToPairSMS");
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    if ((rc = ch_req_json(&r, o)) != 0) {
        ch_req_free(&r);
        return rc;
    }
    return ch_batch_submit(b, &r, conn_ghasedak_parse_send);
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
    struct ch_reply r;
    if (ch_stq_reply(q, &r, &gh_api, http, body, len) == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, r.data)
        {
            char id[64], ref[80] = "", d[64];
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
    ch_reply_free(&r);
}

static void gh_status_parse(struct ch_stq *q, const char *pid, int http, const char *body,
                            size_t len)
{
    conn_ghasedak_parse_status(q, http, body, len);
}

static int gh_status_req(struct conn *c, const char *const *ids, size_t n, struct ch_req *r)
{
    struct buf op = BUF_INIT;
    int rc = buf_puts(&op, "CheckSmsStatus?Type=1");
    for (size_t k = 0; !rc && k < n; k++) {
        rc = buf_puts(&op, "&Ids=");
        if (!rc)
            rc = buf_put_urlenc(&op, ids[k]);
    }
    if (!rc)
        rc = gh_req(c, r, "GET", op.data);
    buf_free(&op);
    return rc;
}

static int gh_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    return ch_status_run(c, ids, n, GH_MAX_STATUS, gh_status_req, gh_status_parse, cb, ud);
}

/* ---- inbox, balance -------------------------------------------------------------- */

static const struct ch_mo_fields gh_mo = {
    .id = "id", .from = "sender", .to = "lineNumber", .text = "message", .date = "receiveDate"};

static void gh_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    struct ch_reply r;
    if (ch_op_reply(op, &r, &gh_api, http, body, len) == 0)
        ch_inbox_list(op, ch_json_get(r.data, "items"), &gh_mo);
    ch_reply_free(&r);
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
    struct ch_reply r;
    if (ch_op_reply(op, &r, &gh_api, http, body, len) == 0)
        ch_balance_value(op, ch_json_get(r.data, "credit"), "IRR",
                         "ghasedak: no credit in the reply");
    ch_reply_free(&r);
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

static const struct ch_op_parsers gh_parsers = {.inbox = gh_parse_inbox,
                                                .balance = gh_parse_balance};

void conn_ghasedak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                             const struct ch_op *cbs)
{
    ch_op_parse(&gh_parsers, c, http, body, len, cbs);
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
    int rc = ch_need_apikey(env, "ghasedak", "the API key", err);
    return rc ? rc
              : ch_open(env, settings, &conn_ghasedak_ops, "https://gateway.ghasedak.me", NULL,
                        NULL, out, err);
}
