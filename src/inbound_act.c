/* inbound_act.c - the keyword actions of one inbound message (F14, F15,
 * F5): opt out / in, reply, create a case, route to a queue, call a
 * Dataverse action. Each action ends with one entry in the row's
 * rule_results; a failing action does not stop the ones after it. Every
 * write is idempotent on retry (deterministic ids, upserts, idempotency
 * keys) except the custom action call, which is at least once. */
#include "inbound_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/template.h"
#include "smsys/text.h"

void ijob_result(struct ijob *j, const struct kw_hit *h, int rc, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddStringToObject(o, "rule", h->rule->id ? h->rule->id : "");
    cJSON_AddStringToObject(o, "name", h->rule->name ? h->rule->name : "");
    cJSON_AddNumberToObject(o, "action", h->rule->action);
    cJSON *w = cJSON_AddArrayToObject(o, "words");
    for (size_t i = 0; w && i < h->nwords; i++)
        cJSON_AddItemToArray(w, cJSON_CreateString(h->words[i]));
    cJSON_AddNumberToObject(o, "rc", rc);
    if (detail && *detail)
        cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddItemToArray(j->results, o);
}

static const struct kw_hit *cur_hit(const struct ijob *j)
{
    return &j->kw.hits[j->hit];
}

/* Ends the current action with its accumulated result. */
static void act_done(struct ijob *j)
{
    ijob_result(j, cur_hit(j), j->act_rc, j->act_err[0] ? j->act_err : NULL);
    if (j->act_rc < 0)
        log_warn("inbound action failed", "id=%" PRId64 " rule=%s action=%s error=%s", j->id,
                 cur_hit(j)->rule->id, keyword_action_name(cur_hit(j)->rule->action),
                 log_q(j->act_err));
    j->hit++;
    j->sub = 0;
    j->act_rc = 0;
    j->act_err[0] = '\0';
    ijob_run(j);
}

static void act_fail(struct ijob *j, int rc, const char *what, const char *detail)
{
    if (j->act_rc < 0)
        return; /* keep the first error */
    j->act_rc = rc;
    snprintf(j->act_err, sizeof(j->act_err), "%s: %.300s", what,
             detail && *detail ? detail : smsys_strerror(rc));
}

static void next_sub(struct ijob *j)
{
    j->sub++;
    ijob_actions(j);
}

static void status_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct ijob *j = ud;
    if (rc < 0)
        act_fail(j, rc, "set smsys_donotsms", err ? err->detail : NULL);
    next_sub(j);
}

static void req_cb(int rc, struct dv_result *res, void *ud)
{
    struct ijob *j = ud;
    if (rc < 0)
        act_fail(j, rc, keyword_action_name(cur_hit(j)->rule->action),
                 res ? res->err.detail : NULL);
    next_sub(j);
}

static void pg_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct ijob *j = ud;
    if (rc < 0)
        act_fail(j, rc, "opt-out list", err ? err->detail : NULL);
    next_sub(j);
}

static void add_to_queue(struct ijob *j, const char *queue, const char *kind, const char *id)
{
    char path[128], body[256];
    snprintf(path, sizeof(path), "queues(%s)/Microsoft.Dynamics.CRM.AddToQueue", queue);
    snprintf(body, sizeof(body),
             "{\"Target\":{\"%s\":\"%s\",\"@odata.type\":\"Microsoft.Dynamics.CRM.%s\"}}",
             strcmp(kind, "incident") == 0 ? "incidentid" : "activityid", id, kind);
    struct dv_call c = {.method = "POST", .path = path, .body = body, .retry = DV_RETRY_SAFE};
    int rc = dv_request_ex(j->in->dv, &c, req_cb, j);
    if (rc < 0) {
        act_fail(j, rc, "AddToQueue", NULL);
        next_sub(j);
    }
}

/* ---- template replies ---- */

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    (void)res;
    (void)n;
    struct ijob *j = ud;
    if (rc < 0)
        act_fail(j, rc, "queue the reply", err ? err->detail : NULL);
    next_sub(j);
}

/* Ends the reply step without queueing anything. */
static void reply_fail(struct ijob *j, int rc, const char *what, const char *detail)
{
    act_fail(j, rc, what, detail);
    j->sub++; /* skip the enqueue */
    next_sub(j);
}

static void enqueue_reply(struct ijob *j, const char *body)
{
    if (!*body) {
        reply_fail(j, SMSYS_ETEMPLATE, "reply template", "the rendered text is empty");
        return;
    }
    struct text_info ti;
    if (text_analyze(body, strlen(body), &ti) < 0) {
        reply_fail(j, SMSYS_EUTF8, "reply template", "invalid UTF-8");
        return;
    }
    char key[200];
    snprintf(key, sizeof(key), "inbound:%" PRId64 ":%s:%d", j->id, cur_hit(j)->rule->id,
             cur_hit(j)->rule->action);
    struct queue_new m = {
        .idem_key = key,
        .account_id = j->account_id,
        .sender = j->dst,
        .recipient = j->src,
        .body = body,
        .segments = (int)ti.segments,
        .encoding = (int)ti.encoding,
        .state = QUEUE_QUEUED,
    };
    j->sub++;
    int qrc = queue_enqueue(j->in->q, &m, 1, enq_cb, j);
    if (qrc < 0) {
        act_fail(j, qrc, "queue the reply", NULL);
        next_sub(j);
    }
}

/* One render of a reply template for the matched record. Owns t; freed in
 * render_done_cb (or by the caller when template_render_batch refuses). */
struct reply_render {
    struct ijob *j;
    struct template *t;
    char set[80], key[80];
    struct template_table tbl;
    const char *ids[1];
    char *text; /* the rendered reply, NULL until row_cb */
    int rc;
    char err[300];
};

static void render_free(struct reply_render *r)
{
    template_free(r->t);
    free(r->text);
    free(r);
}

static void render_row_cb(const char *id, int rc, const char *text, size_t text_len,
                          const struct smsys_err *err, void *ud)
{
    (void)id;
    struct reply_render *r = ud;
    if (rc < 0) {
        r->rc = rc;
        snprintf(r->err, sizeof(r->err), "%.280s",
                 err && err->detail[0] ? err->detail : smsys_strerror(rc));
        return;
    }
    free(r->text);
    r->text = malloc(text_len + 1);
    if (r->text == NULL) {
        r->rc = -ENOMEM;
        return;
    }
    memcpy(r->text, text, text_len);
    r->text[text_len] = '\0';
}

static void render_done_cb(int rc, const struct template_batch_stats *st,
                           const struct smsys_err *err, void *ud)
{
    (void)st;
    struct reply_render *r = ud;
    struct ijob *j = r->j;
    if (rc < 0)
        reply_fail(j, rc, "render the reply template", err ? err->detail : NULL);
    else if (r->rc < 0)
        reply_fail(j, r->rc, "render the reply template", r->err[0] ? r->err : NULL);
    else if (r->text == NULL)
        reply_fail(j, SMSYS_ENOTFOUND, "render the reply template",
                   "the matched record was not returned");
    else
        enqueue_reply(j, r->text); /* queue_enqueue copies the text */
    render_free(r);
}

/* A template with placeholders: rendered for the record the sender
 * matched, which must be of the table the template is written for. */
static void render_reply(struct ijob *j, const char *body, const char *entity)
{
    if (!j->m_id[0]) {
        reply_fail(j, SMSYS_ETEMPLATE, "reply template",
                   "the template has placeholders but the sender matched no record to render "
                   "them for; reply not sent");
        return;
    }
    if (!*entity) {
        reply_fail(j, SMSYS_ETEMPLATE, "reply template",
                   "the template has placeholders but names no table (smsys_entity); reply "
                   "not sent");
        return;
    }
    if (strcmp(entity, j->m_table) != 0) {
        char d[200];
        snprintf(d, sizeof(d),
                 "the template is written for table '%s' but the sender matched a '%s'; "
                 "reply not sent",
                 entity, j->m_table);
        reply_fail(j, SMSYS_ETEMPLATE, "reply template", d);
        return;
    }
    struct reply_render *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        reply_fail(j, -ENOMEM, "render the reply template", NULL);
        return;
    }
    r->j = j;
    struct smsys_err e = {0};
    int rc = template_parse(body, strlen(body), &r->t, NULL, &e);
    if (rc < 0) {
        render_free(r);
        reply_fail(j, rc, "reply template", e.detail[0] ? e.detail : NULL);
        return;
    }
    rc = template_table_for(j->m_table, r->set, sizeof(r->set), r->key, sizeof(r->key), &r->tbl);
    r->ids[0] = j->m_id;
    if (rc == 0)
        rc = template_render_batch(j->in->dv, r->t, &r->tbl, r->ids, 1, NULL, render_row_cb,
                                   render_done_cb, r);
    if (rc < 0) {
        render_free(r);
        reply_fail(j, rc, "render the reply template", NULL);
    }
}

static void use_template(struct ijob *j, const char *body, const char *entity)
{
    if (!*body) {
        reply_fail(j, SMSYS_ETEMPLATE, "reply template", "the template body is empty");
        return;
    }
    if (strstr(body, "{{"))
        render_reply(j, body, entity);
    else
        enqueue_reply(j, body); /* fixed text: any record, or none */
}

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void template_cb(int rc, struct dv_result *res, void *ud)
{
    struct ijob *j = ud;
    if (rc < 0) {
        reply_fail(j, rc, "read the reply template", res ? res->err.detail : NULL);
        return;
    }
    const char *body = str_of(res->json, "smsys_body");
    const char *entity = str_of(res->json, "smsys_entity");
    struct inbound *in = j->in;
    const char *id = cur_hit(j)->rule->template_id;
    if (in->tpls == NULL)
        in->tpls = cJSON_CreateObject();
    cJSON *c = in->tpls ? cJSON_CreateObject() : NULL;
    if (c && cJSON_AddStringToObject(c, "body", body) &&
        cJSON_AddStringToObject(c, "entity", entity) && !cJSON_HasObjectItem(in->tpls, id))
        cJSON_AddItemToObject(in->tpls, id, c);
    else
        cJSON_Delete(c); /* not cached: read again next time */
    use_template(j, body, entity);
}

static void send_template(struct ijob *j, const char *template_id)
{
    const cJSON *c =
        j->in->tpls ? cJSON_GetObjectItemCaseSensitive(j->in->tpls, template_id) : NULL;
    if (c) {
        use_template(j, str_of(c, "body"), str_of(c, "entity"));
        return;
    }
    char path[200];
    snprintf(path, sizeof(path), "smsys_smstemplates(%s)?$select=smsys_body,smsys_entity",
             template_id);
    int rc = dv_request(j->in->dv, "GET", path, NULL, NULL, template_cb, j);
    if (rc < 0)
        reply_fail(j, rc, "read the reply template", NULL);
}

/* ---- the actions ---- */

/* Opt out / in: sub 0..n-1 patch smsys_donotsms on every record with the
 * number, n the opt-out list row, n+1 the confirmation when the rule has a
 * template, n+2 done. */
static void act_opt(struct ijob *j, int out)
{
    const struct kw_rule_def *r = cur_hit(j)->rule;
    size_t n = (size_t)cJSON_GetArraySize(j->matches);
    if (j->sub < n) {
        const cJSON *m = cJSON_GetArrayItem(j->matches, (int)j->sub);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "table");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        const char *set = cJSON_IsString(t) ? ijob_set_of(j->in, t->valuestring) : NULL;
        if (set == NULL || !cJSON_IsString(id)) {
            next_sub(j);
            return;
        }
        int rc = dv_patch(j->in->dv, set, id->valuestring,
                          out ? "{\"smsys_donotsms\":true}" : "{\"smsys_donotsms\":false}", "*",
                          status_cb, j);
        if (rc < 0) {
            act_fail(j, rc, "set smsys_donotsms", NULL);
            next_sub(j);
        }
        return;
    }
    if (j->sub == n) {
        if (j->src[0] != '+') { /* not a phone number: nothing to list */
            next_sub(j);
            return;
        }
        char who[120], inb[24];
        if (j->m_id[0])
            snprintf(who, sizeof(who), "%s:%s", j->m_table, j->m_id);
        else
            snprintf(who, sizeof(who), "%s", j->src);
        snprintf(inb, sizeof(inb), "%" PRId64, j->id);
        const char *params[6] = {j->src, out ? "t" : "f", "sms", who, j->body, inb};
        int rc = pg_query(j->in->pool,
                          "SELECT smsys_optout_set($1, $2::boolean, $3, $4, $5, $6::bigint)", 6,
                          params, pg_cb, j);
        if (rc < 0) {
            act_fail(j, rc, "opt-out list", NULL);
            next_sub(j);
        }
        return;
    }
    if (j->sub == n + 1) {
        if (r->template_id) {
            send_template(j, r->template_id);
            return;
        }
        j->sub++;
        next_sub(j);
        return;
    }
    act_done(j);
}

static void case_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    (void)id;
    struct ijob *j = ud;
    if (rc < 0 && rc != SMSYS_ECONFLICT) {
        act_fail(j, rc, "create case", err ? err->detail : NULL);
        j->case_id[0] = '\0';
        j->sub++; /* no case: nothing to queue */
    }
    next_sub(j);
}

/* Create case: sub 0 the incident, sub 1 its queue (when the rule has one). */
static void act_case(struct ijob *j)
{
    const struct kw_rule_def *r = cur_hit(j)->rule;
    if (j->sub == 0) {
        inbound_uuid(j->activity_id, "case", r->id, j->case_id);
        const char *desc = j->kw.rest && *j->kw.rest ? j->kw.rest : j->body;
        char title[200];
        /* a title of at most ~60 characters, cut on a character boundary */
        size_t cut = 0, chars = 0;
        while (desc[cut] && chars < 60) {
            cut++;
            while ((desc[cut] & 0xC0) == 0x80)
                cut++;
            chars++;
        }
        snprintf(title, sizeof(title), "%.*s%s", (int)cut, desc, desc[cut] ? "\xE2\x80\xA6" : "");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "incidentid", j->case_id);
        cJSON_AddStringToObject(o, "title", title);
        cJSON_AddStringToObject(o, "description", desc);
        if (strcmp(j->m_table, "contact") == 0 || strcmp(j->m_table, "account") == 0) {
            char nav[128], v[160];
            snprintf(nav, sizeof(nav), "customerid_%s@odata.bind", j->m_table);
            snprintf(v, sizeof(v), "/%ss(%s)", j->m_table, j->m_id);
            cJSON_AddStringToObject(o, nav, v);
        }
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        int rc = body ? dv_create(j->in->dv, "incidents", body, 1, case_cb, j) : -ENOMEM;
        free(body);
        if (rc < 0) {
            act_fail(j, rc, "create case", NULL);
            j->case_id[0] = '\0';
            j->sub = 2;
            act_done(j);
        }
        return;
    }
    if (j->sub == 1 && r->queue_id && j->case_id[0]) {
        add_to_queue(j, r->queue_id, "incident", j->case_id);
        return;
    }
    act_done(j);
}

/* Route to queue: the case an earlier rule created for this message,
 * else the SMS record. */
static void act_route(struct ijob *j)
{
    if (j->sub == 0) {
        if (j->case_id[0])
            add_to_queue(j, cur_hit(j)->rule->queue_id, "incident", j->case_id);
        else
            add_to_queue(j, cur_hit(j)->rule->queue_id, "smsys_sms", j->activity_id);
        return;
    }
    act_done(j);
}

/* Call action: unbound POST <name> with the documented parameters. */
static void act_call(struct ijob *j)
{
    if (j->sub > 0) {
        act_done(j);
        return;
    }
    const struct kw_hit *h = cur_hit(j);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Message", j->body);
    cJSON_AddStringToObject(o, "Sender", j->src);
    cJSON_AddStringToObject(o, "Line", j->dst);
    cJSON_AddStringToObject(o, "SmsId", j->activity_id);
    cJSON_AddStringToObject(o, "RegardingId", j->m_id);
    cJSON_AddStringToObject(o, "RegardingType", j->m_table);
    cJSON *t = cJSON_AddArrayToObject(o, "Tokens");
    for (size_t i = 0; t && i < j->kw.nwords; i++)
        cJSON_AddItemToArray(t, cJSON_CreateString(j->kw.w[i]));
    cJSON *mw = cJSON_AddArrayToObject(o, "MatchedWords");
    for (size_t i = 0; mw && i < h->nwords; i++)
        cJSON_AddItemToArray(mw, cJSON_CreateString(h->words[i]));
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc =
        body ? dv_request(j->in->dv, "POST", h->rule->action_name, NULL, body, req_cb, j) : -ENOMEM;
    free(body);
    if (rc < 0) {
        act_fail(j, rc, "call action", NULL);
        next_sub(j);
    }
}

static void act_reply(struct ijob *j)
{
    if (j->sub == 0) {
        send_template(j, cur_hit(j)->rule->template_id);
        return;
    }
    if (j->sub == 1) { /* template_cb moved on without enqueueing */
        next_sub(j);
        return;
    }
    act_done(j);
}

void ijob_actions(struct ijob *j)
{
    if (j->in->stopping) { /* no new Dynamics call: see ijob_run */
        act_fail(j, SMSYS_ECLOSED, "action", "stopped");
        act_done(j);
        return;
    }
    switch (cur_hit(j)->rule->action) {
    case KW_OPT_OUT:
        act_opt(j, 1);
        return;
    case KW_OPT_IN:
        act_opt(j, 0);
        return;
    case KW_REPLY:
        act_reply(j);
        return;
    case KW_CASE:
        act_case(j);
        return;
    case KW_ROUTE:
        act_route(j);
        return;
    case KW_CALL:
        act_call(j);
        return;
    default:
        act_fail(j, -EINVAL, "action", "unknown action");
        act_done(j);
    }
}
