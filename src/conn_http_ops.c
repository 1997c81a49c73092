/* conn_http_ops.c - what every HTTP connector does around its provider's
 * facts: reading a reply against the provider's envelope (struct ch_api),
 * and the skeletons of send, status and the one-request operations, so a
 * connector file states only endpoints, names, code tables and quirks
 * (docs/providers.md "Writing an HTTP connector"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"

/* ---- replies ------------------------------------------------------------------- */

const cJSON *ch_json_path(const cJSON *o, const char *path)
{
    char key[64];
    while (o && path && *path) {
        size_t l = strcspn(path, ".");
        if (l >= sizeof key)
            return NULL;
        memcpy(key, path, l);
        key[l] = '\0';
        o = ch_json_get(o, key);
        path += l + (path[l] == '.');
    }
    return o;
}

/* Class and detail of a refusal whose code is in r->code. */
static int reply_refused(struct ch_reply *r, const struct ch_api *api)
{
    const char *known = NULL;
    int rc = api->classify(r->code, r->http, &known);
    const cJSON *msg = api->message ? ch_json_path(r->root, api->message) : NULL;
    char http[24] = "";
    if (api->flags & CH_API_HTTP_DETAIL)
        snprintf(http, sizeof http, " (HTTP %d)", r->http);
    snprintf(r->detail, sizeof r->detail, "%s %ld%s: %s%s%s", api->name, r->code, http,
             known ? known : "error", cJSON_IsString(msg) ? " - " : "",
             cJSON_IsString(msg) ? msg->valuestring : "");
    return rc ? rc : SMSYS_ETEMP;
}

int ch_reply_read(struct ch_reply *r, const struct ch_api *api, int http, const char *body,
                  size_t len)
{
    memset(r, 0, sizeof *r);
    r->http = http;
    r->root = ch_json_parse(body, len);
    if (api->flags & CH_API_BY_HTTP) {
        r->data = api->data ? ch_json_path(r->root, api->data) : r->root;
        if (http >= 200 && http < 300)
            return 0;
        ch_json_long(ch_json_path(r->root, api->code), &r->code);
        return r->rc = reply_refused(r, api);
    }
    if (r->root == NULL) {
        snprintf(r->detail, sizeof r->detail, "%s: unreadable reply (HTTP %d)", api->name, http);
        return r->rc = SMSYS_EPROTO;
    }
    if (ch_json_long(ch_json_path(r->root, api->code), &r->code) != 0) {
        snprintf(r->detail, sizeof r->detail, "%s: reply without %s (HTTP %d)", api->name,
                 api->code, http);
        int hc = api->flags & CH_API_STRICT ? 0 : ch_http_class(http);
        return r->rc = hc ? hc : SMSYS_EPROTO;
    }
    r->data = api->data ? ch_json_path(r->root, api->data) : r->root;
    if (r->code == api->ok && !(api->ok_flag && cJSON_IsFalse(ch_json_path(r->root, api->ok_flag))))
        return 0;
    if (api->code_more)
        ch_json_long(ch_json_path(r->root, api->code_more), &r->code);
    return r->rc = reply_refused(r, api);
}

void ch_reply_free(struct ch_reply *r)
{
    cJSON_Delete(r->root);
    r->root = NULL;
    r->data = NULL;
}

/* ---- requests ---------------------------------------------------------------------- */

int ch_req_json(struct ch_req *r, cJSON *o)
{
    char *js = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    int rc = js ? buf_puts(&r->body, js) : -ENOMEM;
    free(js);
    if (!rc)
        r->content_type = "application/json";
    return rc;
}

int ch_batch_join(const struct ch_batch *b, int ids, const char *sep, struct buf *out)
{
    int rc = 0;
    for (size_t k = 0; !rc && k < b->n; k++) {
        const struct ch_msg *m = &b->s->m[b->idx[k]];
        rc = buf_printf(out, "%s%s", k ? sep : "", ids ? m->id : m->to);
    }
    return rc;
}

/* ---- send ------------------------------------------------------------------------------ */

static void batch_reply_cb(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    (void)c;
    if (rc < 0 || resp == NULL)
        ch_batch_transport(b, rc, resp);
    else if (b->s->parse(b, resp->status, resp->body.data, resp->body.len))
        return; /* split: b was passed on */
    ch_batch_done(b);
}

int ch_batch_submit(struct ch_batch *b, struct ch_req *r,
                    int (*parse)(struct ch_batch *b, int http, const char *body, size_t len))
{
    double cost = 0;
    for (size_t k = 0; k < b->n; k++)
        cost += b->s->m[b->idx[k]].segments;
    r->cost = cost > 0 ? cost : 1;
    b->s->parse = parse;
    return ch_submit(b->s->c, r, batch_reply_cb, b);
}

int ch_send_reply(struct ch_batch *b, const struct ch_api *api, int http, const char *body,
                  size_t len, void (*accepted)(struct ch_batch *b, const struct ch_reply *r))
{
    struct ch_reply r;
    int rc = ch_reply_read(&r, api, http, body, len);
    if (rc == SMSYS_EPROTO) {
        ch_batch_unreadable(b, http);
    } else if (rc == SMSYS_EPERM && b->n > 1 && api->split_code && r.code == api->split_code) {
        /* one bad number refused the whole request: nothing was accepted */
        ch_reply_free(&r);
        ch_batch_split(b);
        return 1;
    } else if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        ch_batch_fail(b, rc, r.detail);
    } else {
        accepted(b, &r);
    }
    ch_reply_free(&r);
    return 0;
}

/* ---- status ------------------------------------------------------------------------------ */

struct stq_req {
    struct ch_stq *q;
    ch_status_parse_fn parse;
    int one; /* one id a request: pid goes to parse */
    char pid[64];
};

static void stq_reply_cb(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct stq_req *k = ud;
    (void)c;
    if (rc < 0 || resp == NULL)
        ch_stq_result(k->q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else
        k->parse(k->q, k->one ? k->pid : NULL, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(k->q);
    free(k);
}

int ch_status_run(struct conn *c, const char *const *ids, size_t n, size_t per_req,
                  ch_status_build_fn build, ch_status_parse_fn parse, conn_status_cb cb, void *ud)
{
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    if (per_req == 0)
        per_req = 1;
    for (size_t i = 0; i < n; i += per_req) {
        size_t pl = strlen(ids[i]) + 1;
        struct stq_req *k = calloc(1, sizeof *k + pl);
        struct ch_req r;
        int e = k ? build(c, ids + i, n - i < per_req ? n - i : per_req, &r) : -ENOMEM;
        if (e) {
            free(k);
            ch_stq_result(q, SMSYS_ETEMP, smsys_strerror(e));
            continue;
        }
        k->q = q;
        k->parse = parse;
        k->one = per_req == 1;
        memcpy(k->pid, ids[i], pl);
        ch_stq_hold(q);
        if ((e = ch_submit(c, &r, stq_reply_cb, k)) != 0) {
            ch_stq_result(q, e, smsys_strerror(e));
            ch_stq_release(q);
            free(k);
        }
    }
    return 0;
}

int ch_stq_reply(struct ch_stq *q, struct ch_reply *r, const struct ch_api *api, int http,
                 const char *body, size_t len)
{
    int rc = ch_reply_read(r, api, http, body, len);
    if (rc)
        ch_stq_result(q, rc == SMSYS_EPROTO ? SMSYS_ETEMP : rc, r->detail);
    return rc;
}

/* ---- one-request operations ------------------------------------------------------------ */

int ch_op_reply(const struct ch_op *op, struct ch_reply *r, const struct ch_api *api, int http,
                const char *body, size_t len)
{
    int rc = ch_reply_read(r, api, http, body, len);
    if (rc)
        ch_op_fail(op, rc == SMSYS_EPROTO && op->inbox ? SMSYS_ETEMP : rc, "%s", r->detail);
    return rc;
}

void ch_op_parse(const struct ch_op_parsers *p, struct conn *c, int http, const char *body,
                 size_t len, const struct ch_op *cbs)
{
    struct ch_op op = *cbs;
    if (op.inbox && p->inbox)
        p->inbox(c, &op, http, body, len);
    if (op.balance && p->balance)
        p->balance(c, &op, http, body, len);
    if (op.lines && p->lines)
        p->lines(c, &op, http, body, len);
}

void ch_inbox_list(const struct ch_op *op, const cJSON *list, const struct ch_mo_fields *f)
{
    int n = cJSON_GetArraySize(list);
    size_t cap = n > 0 ? (size_t)n : 1;
    struct conn_mo *mo = calloc(cap, sizeof *mo);
    char(*sv)[3][64] = calloc(cap, sizeof *sv); /* id, from, to */
    if (mo == NULL || sv == NULL) {
        free(mo);
        free(sv);
        ch_op_fail(op, -ENOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *txt = ch_json_get(e, f->text);
        if (!cJSON_IsString(txt))
            continue;
        char when[40] = "";
        if (f->id)
            ch_json_text(ch_json_get(e, f->id), sv[k][0], sizeof sv[k][0]);
        ch_json_text(ch_json_get(e, f->from), sv[k][1], sizeof sv[k][1]);
        ch_json_text(ch_json_get(e, f->to), sv[k][2], sizeof sv[k][2]);
        if (f->date)
            ch_json_text(ch_json_get(e, f->date), when, sizeof when);
        mo[k].provider_id = sv[k][0][0] ? sv[k][0] : NULL;
        mo[k].from = sv[k][1];
        mo[k].to = sv[k][2];
        mo[k].text = txt->valuestring;
        mo[k].received_at = ch_parse_time(when);
        k++;
    }
    struct smsys_err err = {0};
    op->inbox(op->ud, 0, mo, k, &err);
    free(mo);
    free(sv);
}

void ch_lines_list(const struct ch_op *op, const cJSON *list, const char *number, const char *label)
{
    int n = cJSON_GetArraySize(list);
    size_t cap = n > 0 ? (size_t)n : 1;
    struct conn_line *l = calloc(cap, sizeof *l);
    char(*num)[64] = calloc(cap, sizeof *num);
    if (l == NULL || num == NULL) {
        free(l);
        free(num);
        ch_op_fail(op, -ENOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (ch_json_text(number ? ch_json_get(e, number) : e, num[k], sizeof num[k]) != 0)
            continue;
        const cJSON *lb = label ? ch_json_get(e, label) : NULL;
        l[k].number = num[k];
        l[k].label = cJSON_IsString(lb) ? lb->valuestring : NULL;
        k++;
    }
    struct smsys_err err = {0};
    op->lines(op->ud, 0, l, k, &err);
    free(l);
    free(num);
}

void ch_balance_value(const struct ch_op *op, const cJSON *amount, const char *unit,
                      const char *missing)
{
    struct conn_balance b = {.unit = unit};
    if (ch_json_num(amount, &b.amount) != 0) {
        ch_op_fail(op, SMSYS_EPROTO, "%s", missing);
        return;
    }
    struct smsys_err err = {0};
    op->balance(op->ud, 0, &b, &err);
}

int ch_need_apikey(const struct conn_env *env, const char *name, const char *what,
                   struct smsys_err *err)
{
    if (env == NULL || env->apikey == NULL || env->apikey[0] == '\0')
        return smsys_err_set(err, SMSYS_ECONFIG, "%s: smsys_apikey (%s) is empty", name, what);
    return 0;
}
