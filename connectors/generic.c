/* generic.c - an HTTP panel described entirely by settings (F17).
 *
 * For panels without a connector of their own (ParsGreen, Rahyab, Mehr
 * Afraz, ...): each operation (send, status, balance, inbox) is a request
 * template plus rules for reading the reply by RFC 6901 JSON pointer or
 * POSIX extended regular expression, and maps from the panel's codes to
 * our statuses and error classes. docs/providers.md has the reference and
 * a worked example. Everything is validated at open(): a template with an
 * unknown placeholder or a regex that does not compile is an error naming
 * the key. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/conn_http.h"
#include "smsys/util.h"
#include "conn_parsers.h"

#include "generic_int.h"

static int put_esc(struct buf *b, const char *v, enum g_esc esc)
{
    switch (esc) {
    case ESC_URL:
    case ESC_FORM:
        return buf_put_urlenc(b, v);
    case ESC_JSON:
        return buf_put_jsonstr(b, v);
    default:
        return buf_puts(b, v);
    }
}

/* Renders tpl into out. A placeholder is {name} with name in [a-z0-9_];
 * any other brace is literal (JSON bodies need no escaping). name_json is
 * the value as a quoted JSON string. Returns 0, or SMSYS_ECONFIG naming
 * the placeholder, or a buffer error. */
int conn_generic_render(struct buf *out, const char *tpl, int esc_i,
                        const struct conn_generic_vars *v, struct smsys_err *err)
{
    enum g_esc esc = (enum g_esc)esc_i;
    const char *p = tpl;
    int rc = 0;
    while (!rc && *p) {
        const char *q = p;
        if (*p == '{') {
            q = p + 1;
            while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_')
                q++;
        }
        if (*p != '{' || q == p + 1 || *q != '}') {
            rc = buf_putc(out, *p++);
            continue;
        }
        char name[40];
        size_t n = (size_t)(q - p - 1);
        if (n >= sizeof name)
            return smsys_err_set(err, SMSYS_ECONFIG, "placeholder {%.*s}: unknown", (int)n, p + 1);
        memcpy(name, p + 1, n);
        name[n] = '\0';
        p = q + 1;
        int json = n > 5 && strcmp(name + n - 5, "_json") == 0;
        if (json)
            name[n - 5] = '\0';
        const char *val = NULL;
        int known = 1, raw = 0;
        if (strcmp(name, "base_url") == 0)
            val = v->base_url, raw = 1;
        else if (strcmp(name, "apikey") == 0)
            val = v->apikey;
        else if (strcmp(name, "to") == 0)
            val = v->to;
        else if (strcmp(name, "from") == 0)
            val = v->from;
        else if (strcmp(name, "text") == 0)
            val = v->text;
        else if (strcmp(name, "id") == 0)
            val = v->id;
        else if (strcmp(name, "provider_id") == 0)
            val = v->provider_id;
        else if (strcmp(name, "to_array") == 0 && json)
            val = v->to_array_json, raw = 2;
        else if (strcmp(name, "id_array") == 0 && json)
            val = v->id_array_json, raw = 2;
        else
            known = 0;
        if (!known)
            return smsys_err_set(err, SMSYS_ECONFIG, "placeholder {%s%s}: unknown", name,
                                 json ? "_json" : "");
        if (val == NULL)
            return smsys_err_set(err, SMSYS_ECONFIG,
                                 "placeholder {%s%s}: not available in this operation", name,
                                 json ? "_json" : "");
        if (raw == 2) {
            rc = buf_puts(out, val); /* already JSON */
        } else if (json) {
            /* a quoted JSON string; inside a form or URL it is escaped again */
            struct buf j = BUF_INIT;
            rc = buf_putc(&j, '"');
            if (!rc)
                rc = buf_put_jsonstr(&j, val);
            if (!rc)
                rc = buf_putc(&j, '"');
            if (!rc)
                rc = esc == ESC_JSON || esc == ESC_RAW ? buf_puts(out, j.data)
                                                       : put_esc(out, j.data, esc);
            buf_free(&j);
        } else {
            rc = raw ? buf_puts(out, val) : put_esc(out, val, esc);
        }
    }
    return rc;
}

static enum g_esc body_esc(const char *content_type)
{
    if (content_type == NULL)
        return ESC_RAW;
    if (strstr(content_type, "json"))
        return ESC_JSON;
    if (strstr(content_type, "x-www-form-urlencoded"))
        return ESC_FORM;
    return ESC_RAW;
}

/* ---- extraction ------------------------------------------------------------- */

/* Values found by ex: up to max strings into vals (each vlen). For a
 * pointer that names an array, one per element. Returns the count (0 none). */
static size_t g_extract(const struct g_ex *ex, const cJSON *root, const char *body,
                        char (*vals)[128], size_t max)
{
    size_t n = 0;
    if (ex->pointer && root) {
        const cJSON *node = ch_json_pointer(root, ex->pointer);
        if (cJSON_IsArray(node)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, node)
            {
                if (n == max)
                    break;
                if (ch_json_text(e, vals[n], sizeof vals[n]) == 0)
                    n++;
                else if (cJSON_IsObject(e)) /* caller reads fields itself */
                    snprintf(vals[n++], sizeof vals[0], "%s", "");
            }
        } else if (node && n < max && ch_json_text(node, vals[n], sizeof vals[n]) == 0) {
            n++;
        }
    } else if (ex->has_re && body) {
        const char *p = body;
        regmatch_t m[2];
        while (n < max && regexec(&ex->re, p, 2, m, p == body ? 0 : REG_NOTBOL) == 0) {
            int g = m[1].rm_so >= 0 ? 1 : 0;
            size_t l = (size_t)(m[g].rm_eo - m[g].rm_so);
            snprintf(vals[n++], sizeof vals[0], "%.*s", (int)(l < 127 ? l : 127), p + m[g].rm_so);
            if (m[0].rm_eo == 0)
                break; /* empty match: do not loop forever */
            p += m[0].rm_eo;
        }
    }
    return n;
}

static int truthy(const char *s)
{
    return strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "ok") == 0 ||
           strcasecmp(s, "success") == 0;
}

/* Classifies a reply: 0 success, else the error class with detail. */
static int g_classify(const struct g_priv *g, const struct g_op *op, int http, const cJSON *root,
                      const char *body, char *d, size_t dl)
{
    char v[1][128];
    int has_marker = op->ok.pointer || op->ok.has_re;
    int ok;
    if (has_marker) {
        size_t n = g_extract(&op->ok, root, body, v, 1);
        ok = n == 1 && (op->ok_value ? strcmp(v[0], op->ok_value) == 0 : truthy(v[0]));
        if (n == 0)
            v[0][0] = '\0';
    } else {
        ok = http >= 200 && http < 300;
        v[0][0] = '\0';
    }
    if (ok)
        return 0;
    char code[1][128] = {""}, msg[1][128] = {""};
    if (g_extract(&op->code, root, body, code, 1) == 0)
        snprintf(code[0], sizeof code[0], "%s", v[0]);
    g_extract(&op->message, root, body, msg, 1);
    int rc = 0;
    const cJSON *cls = code[0][0] ? cJSON_GetObjectItemCaseSensitive(g->error_map, code[0]) : NULL;
    if (cJSON_IsString(cls))
        rc = ch_class_parse(cls->valuestring);
    if (rc == 0)
        rc = ch_http_class(http);
    if (rc == 0)
        rc = g->error_default;
    snprintf(d, dl, "generic: HTTP %d code %s%s%s", http, code[0][0] ? code[0] : "-",
             msg[0][0] ? ": " : "", msg[0]);
    return rc;
}

/* ---- requests --------------------------------------------------------------- */

static int g_request(struct conn *c, const struct g_op *op, const struct conn_generic_vars *v,
                     struct ch_req *r, struct smsys_err *err)
{
    memset(r, 0, sizeof *r);
    r->method = op->method;
    r->cost = 1;
    r->content_type = op->content_type;
    int rc = conn_generic_render(&r->url, op->url, ESC_URL, v, err);
    if (!rc && op->body)
        rc = conn_generic_render(&r->body, op->body, body_esc(op->content_type), v, err);
    for (size_t i = 0; !rc && i < 3 && op->headers[i]; i++) {
        struct buf h = BUF_INIT;
        rc = conn_generic_render(&h, op->headers[i], ESC_RAW, v, err);
        if (!rc && (strchr(h.data, '\r') || strchr(h.data, '\n')))
            rc = smsys_err_set(err, -EINVAL, "header with a line break");
        if (!rc)
            r->headers[i] = buf_steal(&h);
        buf_free(&h);
    }
    if (rc)
        ch_req_free(r);
    return rc;
}

/* ---- send ----------------------------------------------------------------------- */

int conn_generic_parse_send(struct ch_batch *b, int http, const char *body, size_t len)
{
    const struct g_priv *g = b->s->c->priv;
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = g_classify(g, &g->send, http, root, body, d, sizeof d);
    if (rc) {
        if (rc == SMSYS_ETHROTTLED)
            ch_throttle(b->s->c, 1000);
        if (http >= 500)
            ch_batch_outage(b, rc, d); /* the panel is down, not this message */
        else
            ch_batch_fail(b, rc, d);
    } else {
        char(*ids)[128] = calloc(b->n, sizeof *ids);
        size_t n = ids ? g_extract(&g->send.value, root, body, ids, b->n) : 0;
        if (n == b->n) {
            for (size_t k = 0; k < b->n; k++)
                ch_send_result(b->s, b->idx[k], 0, ids[k][0] ? ids[k] : NULL, CONN_ST_QUEUED, 0,
                               NULL);
        } else if (!g->send.value.pointer && !g->send.value.has_re) {
            /* no id configured: accepted without one (status unsupported) */
            for (size_t k = 0; k < b->n; k++)
                ch_send_result(b->s, b->idx[k], 0, NULL, CONN_ST_QUEUED, 0, NULL);
        } /* else: accepted but ids unreadable -> unknown, by ch_batch_done */
        free(ids);
    }
    cJSON_Delete(root);
    return 0;
}

static void g_send_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_batch *b = ud;
    if (rc < 0)
        ch_batch_transport(b, rc, resp);
    else if (resp)
        conn_generic_parse_send(b, resp->status, resp->body.data, resp->body.len);
    ch_batch_done(b);
}

static int g_send_start(struct ch_batch *b, void *ud)
{
    struct conn *c = b->s->c;
    struct g_priv *g = c->priv;
    const struct ch_msg *m0 = &b->s->m[b->idx[0]];
    struct buf to = BUF_INIT, ids = BUF_INIT;
    cJSON *ta = cJSON_CreateArray(), *ia = cJSON_CreateArray();
    double cost = 0;
    int rc = ta && ia ? 0 : -ENOMEM;
    for (size_t k = 0; !rc && k < b->n; k++) {
        const struct ch_msg *m = &b->s->m[b->idx[k]];
        rc = buf_printf(&to, "%s%s", k ? g->sep : "", m->to);
        if (!rc)
            rc = buf_printf(&ids, "%s%s", k ? g->sep : "", m->id);
        cJSON_AddItemToArray(ta, cJSON_CreateString(m->to));
        cJSON_AddItemToArray(ia, cJSON_CreateString(m->id));
        cost += m->segments;
    }
    char *tj = rc ? NULL : cJSON_PrintUnformatted(ta), *ij = rc ? NULL : cJSON_PrintUnformatted(ia);
    cJSON_Delete(ta);
    cJSON_Delete(ia);
    struct ch_req r;
    struct smsys_err err;
    if (!rc && (tj == NULL || ij == NULL))
        rc = -ENOMEM;
    if (!rc) {
        struct conn_generic_vars v = {.base_url = c->set.base_url,
                                      .apikey = c->env.apikey ? c->env.apikey : "",
                                      .to = to.data,
                                      .from = m0->from,
                                      .text = m0->text,
                                      .id = ids.data,
                                      .to_array_json = tj,
                                      .id_array_json = ij};
        rc = g_request(c, &g->send, &v, &r, &err);
    }
    free(tj);
    free(ij);
    buf_free(&to);
    buf_free(&ids);
    if (rc)
        return rc;
    r.cost = cost > 0 ? cost : 1;
    return ch_submit(c, &r, g_send_done, b);
}

static int g_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    struct g_priv *g = c->priv;
    struct ch_send *s;
    int rc = ch_send_new(c, msgs, n, g->fmt, cb, ud, &s);
    if (rc)
        return rc;
    return ch_send_run(s, (size_t)g->max_batch, 1, g_send_start, NULL);
}

/* ---- status ----------------------------------------------------------------------- */

enum conn_status conn_generic_status_name(const char *s)
{
    static const char *const names[] = {"unknown",     "queued", "sent",        "delivered",
                                        "undelivered", "failed", "blacklisted", "canceled"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i], s) == 0)
            return (enum conn_status)i;
    return CONN_ST_UNKNOWN;
}

struct g_stq {
    struct ch_stq *q;
    char *pid;
};

void conn_generic_parse_status(struct conn *c, struct ch_stq *q, const char *pid, int http,
                               const char *body, size_t len)
{
    const struct g_priv *g = c->priv;
    cJSON *root = ch_json_parse(body, len);
    char d[400];
    int rc = g_classify(g, &g->status, http, root, body, d, sizeof d);
    char v[1][128];
    if (rc) {
        ch_stq_result(q, rc, d);
    } else if (g_extract(&g->status.value, root, body, v, 1) == 1) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(g->status.status_map, v[0]);
        snprintf(d, sizeof d, "generic status %s", v[0]);
        ch_stq_add(q, pid, NULL,
                   cJSON_IsString(st) ? conn_generic_status_name(st->valuestring) : CONN_ST_UNKNOWN,
                   0, d);
        ch_stq_result(q, 0, NULL);
    } else {
        ch_stq_result(q, SMSYS_EPROTO, "generic: no status in the reply");
    }
    cJSON_Delete(root);
}

static void g_status_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct g_stq *k = ud;
    if (rc < 0)
        ch_stq_result(k->q, ch_transport_class(rc), resp ? resp->err.detail : smsys_strerror(rc));
    else if (resp)
        conn_generic_parse_status(c, k->q, k->pid, resp->status, resp->body.data, resp->body.len);
    ch_stq_release(k->q);
    free(k->pid);
    free(k);
}

static int g_status(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb, void *ud)
{
    struct g_priv *g = c->priv;
    struct ch_stq *q;
    int rc = ch_stq_new(c, cb, ud, &q);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct conn_generic_vars v = {.base_url = c->set.base_url,
                                      .apikey = c->env.apikey ? c->env.apikey : "",
                                      .provider_id = ids[i]};
        struct ch_req r;
        struct smsys_err err;
        struct g_stq *k = calloc(1, sizeof *k);
        if (k == NULL || (k->pid = strdup(ids[i])) == NULL ||
            g_request(c, &g->status, &v, &r, &err) != 0) {
            if (k)
                free(k->pid);
            free(k);
            ch_stq_result(q, SMSYS_ETEMP, "generic: could not build the status request");
            continue;
        }
        k->q = q;
        ch_stq_hold(q);
        if ((rc = ch_submit(c, &r, g_status_done, k)) != 0) {
            ch_stq_result(q, rc, smsys_strerror(rc));
            ch_stq_release(q);
            free(k->pid);
            free(k);
        }
    }
    return 0;
}

/* ---- balance and inbox -------------------------------------------------------------- */

void conn_generic_parse_balance(struct conn *c, int http, const char *body, size_t len,
                                conn_balance_cb cb, void *ud)
{
    const struct g_priv *g = c->priv;
    struct smsys_err err = {0};
    cJSON *root = ch_json_parse(body, len);
    int rc = g_classify(g, &g->balance, http, root, body, err.detail, sizeof err.detail);
    char v[1][128];
    struct conn_balance b = {.unit = g->balance.unit ? g->balance.unit : "IRR"};
    if (!rc) {
        char *end = NULL;
        if (g_extract(&g->balance.value, root, body, v, 1) == 1)
            b.amount = strtod(v[0], &end);
        if (end == NULL || end == v[0] || *end != '\0') {
            rc = SMSYS_EPROTO;
            snprintf(err.detail, sizeof err.detail, "generic: no balance in the reply");
        }
    }
    err.code = rc;
    cb(ud, rc, rc ? NULL : &b, &err);
    cJSON_Delete(root);
}

/* Submits the request of op (balance, inbox) for the callback in cop. */
static int g_submit_op(struct conn *c, const struct g_op *op, const struct ch_op *cop)
{
    struct conn_generic_vars v = {.base_url = c->set.base_url,
                                  .apikey = c->env.apikey ? c->env.apikey : "",
                                  .from = c->set.sender ? c->set.sender : ""};
    struct ch_req r;
    struct smsys_err err;
    int rc = g_request(c, op, &v, &r, &err);
    return rc ? rc : ch_op_submit(c, &r, cop);
}

static void g_parse_balance(struct conn *c, struct ch_op *op, int http, const char *body,
                            size_t len)
{
    conn_generic_parse_balance(c, http, body, len, op->balance, op->ud);
}

static int g_balance(struct conn *c, conn_balance_cb cb, void *ud)
{
    struct g_priv *g = c->priv;
    if (!g->balance.present)
        return -ENOTSUP;
    struct ch_op op = {.balance = cb, .ud = ud, .parse = g_parse_balance};
    return g_submit_op(c, &g->balance, &op);
}

static const char *item_str(const cJSON *item, const char *ptr, char *buf, size_t len)
{
    buf[0] = '\0';
    if (ptr)
        ch_json_text(ch_json_pointer(item, ptr), buf, len);
    return buf;
}

void conn_generic_parse_inbox(struct conn *c, int http, const char *body, size_t len,
                              conn_inbox_cb cb, void *ud)
{
    const struct g_priv *g = c->priv;
    struct smsys_err err = {0};
    cJSON *root = ch_json_parse(body, len);
    int rc = g_classify(g, &g->inbox, http, root, body, err.detail, sizeof err.detail);
    const cJSON *items = rc ? NULL : ch_json_pointer(root, g->inbox.value.pointer);
    if (!rc && !cJSON_IsArray(items)) {
        rc = SMSYS_EPROTO;
        snprintf(err.detail, sizeof err.detail, "generic: no inbox items in the reply");
    }
    if (rc) {
        err.code = rc;
        cb(ud, rc, NULL, 0, &err);
        cJSON_Delete(root);
        return;
    }
    size_t cap = (size_t)cJSON_GetArraySize(items);
    struct conn_mo *mo = calloc(cap ? cap : 1, sizeof *mo);
    char(*sv)[4][400] = calloc(cap ? cap : 1, sizeof *sv);
    size_t n = 0;
    const cJSON *it, *list = mo && sv ? items : NULL;
    cJSON_ArrayForEach(it, list)
    {
        item_str(it, g->inbox.text_pointer, sv[n][0], sizeof sv[n][0]);
        if (sv[n][0][0] == '\0' && !cJSON_IsString(ch_json_pointer(it, g->inbox.text_pointer)))
            continue;
        mo[n].text = sv[n][0];
        mo[n].from = item_str(it, g->inbox.from_pointer, sv[n][1], sizeof sv[n][1]);
        mo[n].to = item_str(it, g->inbox.to_pointer, sv[n][2], sizeof sv[n][2]);
        mo[n].provider_id = item_str(it, g->inbox.mid_pointer, sv[n][3], sizeof sv[n][3]);
        if (!mo[n].provider_id[0])
            mo[n].provider_id = NULL;
        n++;
    }
    if (mo == NULL || sv == NULL) {
        err.code = -ENOMEM;
        cb(ud, -ENOMEM, NULL, 0, &err);
    } else {
        cb(ud, 0, mo, n, &err);
    }
    free(mo);
    free(sv);
    cJSON_Delete(root);
}

static void g_parse_inbox(struct conn *c, struct ch_op *op, int http, const char *body, size_t len)
{
    conn_generic_parse_inbox(c, http, body, len, op->inbox, op->ud);
}

static int g_inbox(struct conn *c, conn_inbox_cb cb, void *ud)
{
    struct g_priv *g = c->priv;
    if (!g->inbox.present)
        return -ENOTSUP;
    struct ch_op op = {.inbox = cb, .ud = ud, .parse = g_parse_inbox};
    return g_submit_op(c, &g->inbox, &op);
}

static int g_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                  struct smsys_err *err);

static int g_status_op(struct conn *c, const char *const *ids, size_t n, conn_status_cb cb,
                       void *ud)
{
    struct g_priv *g = c->priv;
    if (!g->status.present)
        return -ENOTSUP;
    return g_status(c, ids, n, cb, ud);
}

const struct conn_ops conn_generic_ops = {
    .name = "generic",
    .max_batch = 1000,
    .supports_idempotency = 0,
    .open = g_open,
    .send = g_send,
    .status = g_status_op,
    .inbox = g_inbox,
    .balance = g_balance,
    .lines = NULL,
    .webhook = NULL,
    .close = ch_close,
};

static const char *const g_keys[] = {
    "phone_format", "max_batch", "batch_separator", "error_default", "error_map",
    "send",         "status",    "balance",         "inbox",         NULL};

static int g_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                  struct smsys_err *err)
{
    if (settings == NULL || cJSON_GetObjectItemCaseSensitive(settings, "base_url") == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "setting base_url: required for generic");
    return ch_open(env, settings, &conn_generic_ops, NULL, g_keys, conn_generic_settings, out, err);
}
