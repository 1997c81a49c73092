/* generic_conf.c - the generic connector's settings: read, validate, and
 * render every template once at open() so that a mistake is reported then,
 * naming the key, and not at the first send. See docs/providers.md. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "conn_parsers.h"
#include "generic_int.h"

/* ---- settings ------------------------------------------------------------------------- */

static void ex_free(struct g_ex *e)
{
    free(e->pointer);
    if (e->has_re)
        regfree(&e->re);
}

static void op_free(struct g_op *op)
{
    free(op->method);
    free(op->url);
    free(op->content_type);
    free(op->body);
    for (size_t i = 0; i < 3; i++)
        free(op->headers[i]);
    ex_free(&op->ok);
    ex_free(&op->code);
    ex_free(&op->message);
    ex_free(&op->value);
    free(op->ok_value);
    free(op->from_pointer);
    free(op->to_pointer);
    free(op->text_pointer);
    free(op->mid_pointer);
    cJSON_Delete(op->status_map);
    free(op->unit);
}

static void g_free(void *p)
{
    struct g_priv *g = p;
    if (g == NULL)
        return;
    op_free(&g->send);
    op_free(&g->status);
    op_free(&g->balance);
    op_free(&g->inbox);
    free(g->sep);
    cJSON_Delete(g->error_map);
    free(g);
}

static int ex_parse(const cJSON *o, const char *opname, const char *base, struct g_ex *e,
                    struct smsys_err *err)
{
    char k1[64], k2[64];
    snprintf(k1, sizeof k1, "%s_pointer", base);
    snprintf(k2, sizeof k2, "%s_regex", base);
    char *re = NULL;
    int rc = ch_set_str(o, k1, NULL, &e->pointer, err);
    if (!rc)
        rc = ch_set_str(o, k2, NULL, &re, err);
    if (rc)
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s.%s / %s: must be a string", opname, k1,
                             k2);
    if (e->pointer && e->pointer[0] && e->pointer[0] != '/')
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting %s.%s: a JSON pointer starts with '/' (RFC 6901)", opname, k1);
    if (!rc && re) {
        int r = regcomp(&e->re, re, REG_EXTENDED);
        if (r != 0) {
            char why[128];
            regerror(r, &e->re, why, sizeof why);
            rc = smsys_err_set(err, SMSYS_ECONFIG, "setting %s.%s: %s", opname, k2, why);
        } else {
            e->has_re = 1;
        }
    }
    free(re);
    return rc;
}

static const char *const op_keys[] = {"method",
                                      "url",
                                      "content_type",
                                      "body",
                                      "headers",
                                      "ok_pointer",
                                      "ok_regex",
                                      "ok_value",
                                      "code_pointer",
                                      "code_regex",
                                      "message_pointer",
                                      "message_regex",
                                      "id_pointer",
                                      "id_regex",
                                      "status_pointer",
                                      "status_regex",
                                      "status_map",
                                      "balance_pointer",
                                      "balance_regex",
                                      "unit",
                                      "items_pointer",
                                      "from_pointer",
                                      "to_pointer",
                                      "text_pointer",
                                      "message_id_pointer",
                                      NULL};

static int op_parse(const cJSON *settings, const char *name, const char *value_base,
                    struct g_op *op, struct smsys_err *err)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(settings, name);
    if (o == NULL)
        return 0;
    if (!cJSON_IsObject(o))
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s: must be an object", name);
    for (const cJSON *it = o->child; it; it = it->next) {
        int ok = 0;
        for (size_t i = 0; op_keys[i]; i++)
            ok |= strcmp(op_keys[i], it->string) == 0;
        if (!ok)
            return smsys_err_set(err, SMSYS_ECONFIG, "setting %s.%s: unknown key", name,
                                 it->string);
    }
    op->present = 1;
    int rc = 0;
#define STR(key, dst, dflt)                                                                        \
    if (!rc && (rc = ch_set_str(o, key, dflt, dst, err)) != 0)                                     \
    rc = smsys_err_set(err, SMSYS_ECONFIG, "setting %s.%s: must be a string", name, key)
    STR("method", &op->method, NULL);
    STR("url", &op->url, NULL);
    STR("content_type", &op->content_type, NULL);
    STR("body", &op->body, NULL);
    STR("ok_value", &op->ok_value, NULL);
    STR("unit", &op->unit, NULL);
    STR("from_pointer", &op->from_pointer, NULL);
    STR("to_pointer", &op->to_pointer, NULL);
    STR("text_pointer", &op->text_pointer, NULL);
    STR("message_id_pointer", &op->mid_pointer, NULL);
#undef STR
    if (rc)
        return rc;
    if (op->url == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s.url: required", name);
    if (op->method == NULL && (op->method = strdup(op->body ? "POST" : "GET")) == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "headers");
    if (h && (!cJSON_IsArray(h) || cJSON_GetArraySize(h) > 3))
        return smsys_err_set(err, SMSYS_ECONFIG,
                             "setting %s.headers: an array of at most 3 \"Name: value\" strings",
                             name);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h)
    {
        if (!cJSON_IsString(e) || !strchr(e->valuestring, ':') || strpbrk(e->valuestring, "\r\n"))
            return smsys_err_set(err, SMSYS_ECONFIG,
                                 "setting %s.headers[%d]: must be \"Name: value\"", name, i);
        if ((op->headers[i++] = strdup(e->valuestring)) == NULL)
            return smsys_err_set(err, -ENOMEM, "out of memory");
    }
    if ((rc = ex_parse(o, name, "ok", &op->ok, err)) ||
        (rc = ex_parse(o, name, "code", &op->code, err)) ||
        (rc = ex_parse(o, name, "message", &op->message, err)) ||
        (rc = ex_parse(o, name, value_base, &op->value, err)))
        return rc;
    const cJSON *sm = cJSON_GetObjectItemCaseSensitive(o, "status_map");
    if (sm) {
        for (const cJSON *it = cJSON_IsObject(sm) ? sm->child : NULL; it; it = it->next)
            if (!cJSON_IsString(it) ||
                (conn_generic_status_name(it->valuestring) == CONN_ST_UNKNOWN &&
                 strcmp(it->valuestring, "unknown") != 0))
                return smsys_err_set(err, SMSYS_ECONFIG,
                                     "setting %s.status_map.%s: one of queued, sent, delivered, "
                                     "undelivered, failed, blacklisted, canceled, unknown",
                                     name, it->string);
        if (!cJSON_IsObject(sm))
            return smsys_err_set(err, SMSYS_ECONFIG, "setting %s.status_map: must be an object",
                                 name);
        op->status_map = cJSON_Duplicate(sm, 1);
    }
    return 0;
}

/* Renders every template of op once with sample values, so that a bad
 * placeholder is reported at open() and not at the first send. */
static int op_check(const struct g_op *op, const char *name, const struct conn_generic_vars *v,
                    struct smsys_err *err)
{
    if (!op->present)
        return 0;
    struct buf b = BUF_INIT;
    int rc = conn_generic_render(&b, op->url, ESC_URL, v, err);
    if (!rc && op->body)
        rc = conn_generic_render(&b, op->body, ESC_RAW, v, err);
    for (size_t i = 0; !rc && i < 3 && op->headers[i]; i++)
        rc = conn_generic_render(&b, op->headers[i], ESC_RAW, v, err);
    buf_free(&b);
    if (rc == SMSYS_ECONFIG) {
        char d[sizeof err->detail];
        snprintf(d, sizeof d, "%s", err->detail);
        smsys_err_set(err, rc, "setting %s: %s", name, d);
    }
    return rc;
}

int conn_generic_settings(struct conn *c, const cJSON *s, struct smsys_err *err)
{
    struct g_priv *g = calloc(1, sizeof *g);
    if (g == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    c->priv = g;
    c->priv_free = g_free;
    int rc = ch_set_phone_fmt(s, "phone_format", PHONE_NATIONAL, &g->fmt, err);
    if (!rc)
        rc = ch_set_int(s, "max_batch", 1, 1, 1000, &g->max_batch, err);
    if (!rc)
        rc = ch_set_str(s, "batch_separator", ",", &g->sep, err);
    char *dflt = NULL;
    if (!rc)
        rc = ch_set_str(s, "error_default", "temporary", &dflt, err);
    if (!rc && (g->error_default = ch_class_parse(dflt)) == 0)
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting error_default: temporary, throttled, permanent, account or "
                           "unknown");
    free(dflt);
    const cJSON *em = s ? cJSON_GetObjectItemCaseSensitive(s, "error_map") : NULL;
    for (const cJSON *it = cJSON_IsObject(em) ? em->child : NULL; !rc && it; it = it->next)
        if (!cJSON_IsString(it) || ch_class_parse(it->valuestring) == 0)
            rc = smsys_err_set(err, SMSYS_ECONFIG,
                               "setting error_map.%s: temporary, throttled, permanent, account "
                               "or unknown",
                               it->string);
    if (!rc && em && !cJSON_IsObject(em))
        rc = smsys_err_set(err, SMSYS_ECONFIG, "setting error_map: must be an object");
    if (!rc && em)
        g->error_map = cJSON_Duplicate(em, 1);
    if (!rc)
        rc = op_parse(s, "send", "id", &g->send, err);
    if (!rc)
        rc = op_parse(s, "status", "status", &g->status, err);
    if (!rc)
        rc = op_parse(s, "balance", "balance", &g->balance, err);
    if (!rc)
        rc = op_parse(s, "inbox", "items", &g->inbox, err);
    if (!rc && !g->send.present)
        rc = smsys_err_set(err, SMSYS_ECONFIG, "setting send: required");
    if (!rc && g->status.present && !g->status.value.pointer && !g->status.value.has_re)
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting status: needs status_pointer or status_regex");
    if (!rc && g->balance.present && !g->balance.value.pointer && !g->balance.value.has_re)
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting balance: needs balance_pointer or balance_regex");
    if (!rc && g->inbox.present && (!g->inbox.value.pointer || !g->inbox.text_pointer))
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting inbox: needs items_pointer and text_pointer");
    if (!rc) {
        struct conn_generic_vars sv = {.base_url = "",
                                       .apikey = "",
                                       .to = "",
                                       .from = "",
                                       .text = "",
                                       .id = "",
                                       .to_array_json = "[]",
                                       .id_array_json = "[]"};
        struct conn_generic_vars qv = {.base_url = "", .apikey = "", .provider_id = ""};
        struct conn_generic_vars bv = {.base_url = "", .apikey = "", .from = ""};
        rc = op_check(&g->send, "send", &sv, err);
        if (!rc)
            rc = op_check(&g->status, "status", &qv, err);
        if (!rc)
            rc = op_check(&g->balance, "balance", &bv, err);
        if (!rc)
            rc = op_check(&g->inbox, "inbox", &bv, err);
    }
    return rc;
}
