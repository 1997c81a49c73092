/* cmd_template.c - smsysctl template check / render: a template as the
 * service would use it, fetched from Dynamics (smsys_smstemplates), checked
 * against the server's columns and lookups, and rendered for one recipient
 * with its encoding and segment count (text_analyze, as billing counts).
 *
 * Uses the service's own client code (http_client + dataverse + template)
 * on a private loop, bounded by a deadline. */
#include "ctl.h"

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/odata.h"
#include "smsys/template.h"
#include "smsys/text.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct trun {
    uv_loop_t loop;
    uv_timer_t deadline;
    struct http_client *http;
    struct dv_client *dv;
    int done, rc, timedout;
    int loop_open; /* the loop and the deadline timer exist */
    struct smsys_err err;
    struct template_error te;
    /* the template row */
    char *name, *body, *entity;
    /* render */
    char *text;
};

/* Marks the step done and ends the loop turn at once: the callback may run
 * from an idle handle, after which uv_run(ONCE) would otherwise block in
 * poll until the deadline. */
static void step_done(struct trun *r)
{
    r->done = 1;
    uv_stop(&r->loop);
}

static void deadline_cb(uv_timer_t *t)
{
    struct trun *r = container_of(t, struct trun, deadline);
    if (!r->done) {
        step_done(r);
        r->timedout = 1;
        r->rc = -ETIMEDOUT;
        smsys_err_set(&r->err, -ETIMEDOUT, "no answer from Dynamics in time");
    }
}

static int open_dv(struct trun *r, const struct smsys_config *cfg)
{
    static const enum dv_auth auths[] = {DV_AUTH_CLIENT_CREDENTIALS, DV_AUTH_NTLM,
                                         DV_AUTH_NEGOTIATE};
    struct http_client_opts ho = {
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .proxy = cfg->dataverse.proxy,
        .ca_file = cfg->dataverse.ca_file,
        .user_agent = "smsysctl-template",
    };
    struct dv_opts o = {
        .url = cfg->dataverse.url,
        .api_version = cfg->dataverse.api_version,
        .auth = auths[cfg->dataverse.auth],
        .token_url = cfg->dataverse.token_url,
        .client_id = cfg->dataverse.client_id,
        .client_secret = cfg->dataverse.client_secret,
        .scope = cfg->dataverse.scope,
        .resource = cfg->dataverse.resource,
        .username = cfg->dataverse.username,
        .password = cfg->dataverse.password,
        .max_concurrency = 2,
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .max_retries = 1,
        .throttle_retries = 2,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    int rc = uv_loop_init(&r->loop);
    if (rc)
        return rc;
    uv_timer_init(&r->loop, &r->deadline);
    r->loop_open = 1;
    rc = http_client_new(&r->loop, &ho, &r->http);
    if (rc == 0)
        rc = dv_new(&r->loop, r->http, &o, &r->dv);
    return rc;
}

/* Runs the loop until the current step is done or the deadline passes. */
static int wait_step(struct trun *r, const struct smsys_config *cfg)
{
    r->done = 0;
    uv_timer_start(&r->deadline, deadline_cb,
                   (uint64_t)cfg->dataverse.request_timeout_ms * 4 + 2000, 0);
    while (!r->done && uv_run(&r->loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&r->deadline);
    return r->rc;
}

static void close_dv(struct trun *r)
{
    free(r->name);
    free(r->body);
    free(r->entity);
    free(r->text);
    if (!r->loop_open)
        return;
    if (r->dv)
        dv_close(r->dv, NULL, NULL);
    if (r->http)
        http_client_close(r->http, NULL, NULL);
    uv_close((uv_handle_t *)&r->deadline, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
}

static char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

static void fetched_cb(int rc, struct dv_result *res, void *ud)
{
    struct trun *r = ud;
    if (r->done)
        return;
    step_done(r);
    r->rc = rc;
    if (rc < 0) {
        r->err = res->err;
        return;
    }
    const cJSON *row = res->json;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(res->json, "value");
    if (cJSON_IsArray(value)) {
        if (cJSON_GetArraySize(value) != 1) {
            r->rc = cJSON_GetArraySize(value) ? -EEXIST : SMSYS_ENOTFOUND;
            smsys_err_set(&r->err, r->rc,
                          r->rc == -EEXIST ? "several templates have that name; use the id"
                                           : "no template with that name");
            return;
        }
        row = cJSON_GetArrayItem(value, 0);
    }
    r->name = str_of(row, "smsys_name");
    r->body = str_of(row, "smsys_body");
    r->entity = str_of(row, "smsys_entity");
    if (!r->name || !r->body || !r->entity)
        r->rc = -ENOMEM;
    else
        template_entity_norm(r->entity);
}

/* GET the template by id (a GUID) or by its exact name. */
static int fetch(struct trun *r, const struct smsys_config *cfg, const char *which)
{
    struct buf q = BUF_INIT, f = BUF_INIT;
    int rc;
    if (odata_lit_guid(&f, which) == 0) {
        buf_reset(&q);
        rc = buf_printf(&q, "smsys_smstemplates(%s)", f.data);
    } else {
        buf_reset(&f);
        rc = buf_puts(&f, "smsys_name eq ");
        if (rc == 0)
            rc = odata_lit_string(&f, which);
        if (rc == 0)
            rc = buf_puts(&q, "smsys_smstemplates");
        if (rc == 0)
            rc = odata_query_add(&q, "$filter", f.data);
    }
    if (rc == 0)
        rc = odata_query_add(&q, "$select", "smsys_name,smsys_body,smsys_entity,smsys_isdefault");
    if (rc == 0)
        rc = dv_request(r->dv, "GET", q.data, NULL, NULL, fetched_cb, r);
    buf_free(&q);
    buf_free(&f);
    if (rc < 0) {
        smsys_err_set(&r->err, rc, "%s", smsys_strerror(rc));
        return rc;
    }
    return wait_step(r, cfg);
}

static void validated_cb(int rc, const struct template_error *te, const struct smsys_err *err,
                         void *ud)
{
    struct trun *r = ud;
    if (r->done)
        return;
    step_done(r);
    r->rc = rc;
    r->te = *te;
    r->err = *err;
}

/* Appends "s" as a JSON string. */
static void put_json(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    buf_put_jsonstr(b, s);
    buf_putc(b, '"');
}

static void row_cb(const char *id, int rc, const char *text, size_t len,
                   const struct smsys_err *err, void *ud)
{
    struct trun *r = ud;
    (void)id;
    r->rc = rc;
    if (rc == 0)
        r->text = strndup(text, len);
    else
        r->err = *err;
}

static void batch_done_cb(int rc, const struct template_batch_stats *st,
                          const struct smsys_err *err, void *ud)
{
    struct trun *r = ud;
    (void)st;
    if (r->done)
        return;
    step_done(r);
    if (rc < 0) {
        r->rc = rc;
        r->err = *err;
    }
}

/* Shared start of both commands: config, client, template fetched and
 * parsed. Returns CTL_OK or an exit code (message printed). */
static int prepare(struct ctl *ctl, const char *which, struct smsys_config **cfg, struct trun *r,
                   struct template **t)
{
    *cfg = ctl_load_config(ctl);
    if (!*cfg)
        return CTL_FAIL;
    int rc = open_dv(r, *cfg);
    if (rc == 0)
        rc = fetch(r, *cfg, which);
    if (rc < 0)
        return ctl_fail("cannot read template '%s' from Dynamics: %s", which,
                        r->err.detail[0] ? r->err.detail : smsys_strerror(rc));
    if (template_text_blank(r->body, strlen(r->body)))
        return ctl_fail("template '%s' has no text (smsys_body): smsysd fails every SMS that "
                        "uses it",
                        r->name);
    rc = template_parse(r->body, strlen(r->body), t, &r->te, &r->err);
    if (rc < 0)
        return ctl_fail("template '%s': %s", r->name, r->err.detail);
    return CTL_OK;
}

int cmd_template_check(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 1)
        return ctl_usage_error(ctl, argc ? "expected one template" : "missing NAME|ID");
    struct smsys_config *cfg = NULL;
    struct trun r = {0};
    struct template *t = NULL;
    int code = prepare(ctl, argv[0], &cfg, &r, &t);
    char set[128], key[128];
    struct template_table tbl;
    if (code == CTL_OK && template_table_for(r.entity[0] ? r.entity : "contact", set, sizeof(set),
                                             key, sizeof(key), &tbl) < 0)
        code = ctl_fail("template '%s': smsys_entity '%s' is not a table name", r.name, r.entity);
    if (code == CTL_OK) {
        int rc = template_validate(r.dv, t, &tbl, validated_cb, &r);
        if (rc == 0)
            rc = wait_step(&r, cfg);
        else
            smsys_err_set(&r.err, rc, "%s", smsys_strerror(rc));
        if (rc < 0)
            code = ctl_fail("template '%s': %s", r.name, r.err.detail);
    }
    if (code == CTL_OK) {
        struct buf sel = BUF_INIT, exp = BUF_INIT, out = BUF_INIT;
        template_plan_select(t, tbl.key, &sel, &exp);
        if (ctl->json) {
            buf_puts(&out, "{\"template\":");
            put_json(&out, r.name);
            buf_puts(&out, ",\"table\":");
            put_json(&out, tbl.logical);
            buf_puts(&out, ",\"ok\":true,\"select\":");
            put_json(&out, sel.data);
            buf_puts(&out, ",\"expand\":");
            put_json(&out, exp.data);
            buf_printf(&out, ",\"relations\":%zu}\n", template_relations(t));
        } else {
            buf_printf(&out, "template '%s' for %s: ok\n  $select=%s\n", r.name, tbl.logical,
                       sel.data);
            if (exp.len)
                buf_printf(&out, "  $expand=%s\n", exp.data);
            for (size_t i = 0; i < template_relations(t); i++) {
                struct template_relation_info ri;
                if (template_relation(t, i, &ri) == 0)
                    buf_printf(&out, "  %s: %s by %s%s%s%s%s\n", ri.alias, ri.entity_set, ri.lookup,
                               ri.where ? " where " : "", ri.where ? ri.where : "",
                               ri.orderby[0] ? " order " : "", ri.orderby);
            }
        }
        ctl_out(&out);
        buf_free(&sel);
        buf_free(&exp);
        buf_free(&out);
    }
    template_free(t);
    close_dv(&r);
    config_free(cfg);
    return code;
}

int cmd_template_render(struct ctl *ctl, int argc, char **argv)
{
    const char *which = NULL, *target = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--for") == 0 && i + 1 < argc)
            target = argv[++i];
        else if (strcmp(argv[i], "--for") == 0)
            return ctl_usage_error(ctl, "--for needs TABLE:ID, e.g. contact:<guid>");
        else if (!which && argv[i][0] != '-')
            which = argv[i];
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    if (!which)
        return ctl_usage_error(ctl, "missing NAME|ID");
    if (!target)
        return ctl_usage_error(ctl, "missing --for TABLE:ID");
    const char *colon = strchr(target, ':');
    char logical[101];
    if (!colon || colon == target || (size_t)(colon - target) >= sizeof(logical))
        return ctl_usage_error(ctl, "--for takes TABLE:ID, e.g. contact:<guid>");
    snprintf(logical, sizeof(logical), "%.*s", (int)(colon - target), target);
    const char *id = colon + 1;
    char set[128], key[128];
    struct template_table tbl;
    struct buf g = BUF_INIT;
    int bad = template_table_for(logical, set, sizeof(set), key, sizeof(key), &tbl) < 0 ||
              odata_lit_guid(&g, id) < 0;
    buf_free(&g);
    if (bad)
        return ctl_usage_error(ctl, "--for takes TABLE:ID with a table name and a GUID");

    struct smsys_config *cfg = NULL;
    struct trun r = {0};
    struct template *t = NULL;
    int code = prepare(ctl, which, &cfg, &r, &t);
    if (code == CTL_OK && r.entity[0] && strcmp(r.entity, logical) != 0)
        fprintf(stderr, "smsysctl: note: template '%s' is written for %s, rendering for %s\n",
                r.name, r.entity, logical);
    if (code == CTL_OK) {
        const char *ids[1] = {id};
        r.rc = 0;
        int rc = template_render_batch(r.dv, t, &tbl, ids, 1, NULL, row_cb, batch_done_cb, &r);
        if (rc == 0)
            rc = wait_step(&r, cfg);
        else
            smsys_err_set(&r.err, rc, "%s", smsys_strerror(rc));
        if (rc == 0)
            rc = r.rc;
        if (rc == SMSYS_EPROTO) {
            /* the server refused the query: name the placeholder it refused */
            struct smsys_err keep = r.err;
            if (template_validate(r.dv, t, &tbl, validated_cb, &r) == 0 &&
                wait_step(&r, cfg) != SMSYS_ETEMPLATE)
                r.err = keep;
        }
        if (rc < 0)
            code = ctl_fail("template '%s' for %s: %s", r.name, target, r.err.detail);
        else if (r.text == NULL)
            code = ctl_fail("template '%s' for %s: no text came back for the recipient", r.name,
                            target);
        else if (template_text_blank(r.text, strlen(r.text)))
            code = ctl_fail("template '%s' for %s: the rendered text is empty for this recipient "
                            "(every placeholder in it is missing or empty): smsysd would fail "
                            "the SMS",
                            r.name, target);
    }
    if (code == CTL_OK) {
        struct text_info ti;
        struct buf out = BUF_INIT;
        if (text_analyze(r.text, strlen(r.text), &ti) < 0) {
            code = ctl_fail("rendered text is not valid UTF-8");
        } else if (ctl->json) {
            buf_puts(&out, "{\"template\":");
            put_json(&out, r.name);
            buf_puts(&out, ",\"text\":");
            put_json(&out, r.text);
            buf_printf(&out,
                       ",\"encoding\":\"%s\",\"chars\":%zu,\"units\":%zu,\"segments\":%zu,"
                       "\"remaining\":%zu}\n",
                       ti.encoding == TEXT_UCS2 ? "UCS-2" : "GSM-7", ti.chars, ti.units,
                       ti.segments, ti.remaining);
        } else {
            buf_printf(&out, "%s\n-- %s, %zu characters, %zu segment%s, %zu left in the last\n",
                       r.text, ti.encoding == TEXT_UCS2 ? "UCS-2" : "GSM-7", ti.chars, ti.segments,
                       ti.segments == 1 ? "" : "s", ti.remaining);
        }
        ctl_out(&out);
        buf_free(&out);
        if (code == CTL_OK && cfg->pickup.max_segments > 0 &&
            ti.segments > (size_t)cfg->pickup.max_segments)
            code = ctl_fail("the text needs %zu SMS parts (%zu characters); the limit is %lld "
                            "([pickup] max_segments): smsysd would fail the SMS",
                            ti.segments, ti.chars, cfg->pickup.max_segments);
    }
    template_free(t);
    close_dv(&r);
    config_free(cfg);
    return code;
}
