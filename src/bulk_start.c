/* bulk_start.c - what a bulk send needs before its audience is read: the
 * lists to read (a marketing list, or every list of a campaign) and the
 * text per member table (the bulk's template, its own text, or the default
 * template of each member table, F8). Each is resolved once and stored in
 * smsys_bulk (sources, templates), so a restart never resolves again with
 * different answers midway. */
#include "bulk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/phone.h"

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static void stored_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    (void)res;
    if (rc != 0)
        log_warn("bulk resolve not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    j->done(j, rc, rc == 0);
}

/* ---- sources ------------------------------------------------------------ */

static const char *entity_of(int createdfromcode)
{
    switch (createdfromcode) {
    case 1:
        return "account";
    case 2:
        return "contact";
    case 4:
        return "lead";
    default:
        return NULL;
    }
}

/* Adds one list row to arr; returns NULL or the reason the bulk fails. */
static const char *add_source(struct bjob *j, cJSON *arr, const cJSON *row, char *why,
                              size_t whylen)
{
    const char *id = jstr(row, "listid");
    const char *name = jstr(row, "listname") ? jstr(row, "listname") : "";
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(row, "createdfromcode");
    const char *entity = entity_of(cJSON_IsNumber(cf) ? cf->valueint : 0);
    int dynamic = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "type"));
    const char *query = jstr(row, "query");
    if (id == NULL)
        return "a marketing list without an id";
    if (entity == NULL) {
        snprintf(why, whylen, "marketing list %s (%s) has an unknown member type", name, id);
        return why;
    }
    if (bulk_table(j->e, entity) == NULL) {
        snprintf(why, whylen,
                 "marketing list %s has %s members, but [pickup] phone_columns names no phone "
                 "column for %s",
                 name, entity, entity);
        return why;
    }
    if (dynamic && query == NULL) {
        snprintf(why, whylen, "dynamic marketing list %s (%s) has no query", name, id);
        return why;
    }
    cJSON *s = cJSON_CreateObject();
    if (s == NULL || !cJSON_AddItemToArray(arr, s))
        return "out of memory";
    cJSON_AddStringToObject(s, "id", id);
    cJSON_AddStringToObject(s, "name", name);
    cJSON_AddBoolToObject(s, "dynamic", dynamic);
    cJSON_AddStringToObject(s, "member_entity", entity);
    if (dynamic)
        cJSON_AddStringToObject(s, "fetchxml", query);
    return NULL;
}

static void lists_cb(int rc, struct dv_result *res, void *ud)
{
    struct bjob *j = ud;
    j->e->st.dv_requests++;
    char why[600];
    if (rc == SMSYS_ENOTFOUND) {
        snprintf(why, sizeof(why), "the %s %s does not exist in Dynamics",
                 j->list_id[0] ? "marketing list" : "campaign",
                 j->list_id[0] ? j->list_id : j->campaign_id);
        bulk_job_fail(j, why);
        return;
    }
    if (rc != 0 || res->json == NULL) {
        log_warn("bulk audience not read", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, &res->err)));
        j->done(j, rc ? rc : SMSYS_EPROTO, 0);
        return;
    }
    cJSON *arr = cJSON_CreateArray();
    const char *fail = arr ? NULL : "out of memory";
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(res->json, "value");
    if (j->list_id[0]) {
        if (fail == NULL)
            fail = add_source(j, arr, res->json, why, sizeof(why));
    } else {
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            if (fail == NULL)
                fail = add_source(j, arr, row, why, sizeof(why));
        }
        if (fail == NULL && cJSON_GetArraySize(arr) == 0)
            fail = "the campaign has no marketing lists";
    }
    char *json = fail ? NULL : cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    if (fail) {
        bulk_job_fail(j, fail);
        return;
    }
    log_info("bulk audience", "bulk=%s sources=%s", j->id, json ? json : "?");
    if (json == NULL || bulk_db_set_sources(j->e->pg, j->id, json, stored_cb, j) != 0)
        j->done(j, -ENOMEM, 0);
    free(json);
}

#define LIST_SEL "$select=listid,listname,type,createdfromcode,query"

int bulk_unit_sources(struct bjob *j)
{
    if (!j->list_id[0] && !j->campaign_id[0]) {
        bulk_job_fail(j, "no audience: the bulk send names no marketing list (smsys_listid) "
                         "and no campaign (smsys_campaignid)");
        return 0;
    }
    struct buf p = BUF_INIT;
    int rc = buf_puts(&p, j->list_id[0] ? "lists(" : "campaigns(");
    if (rc == 0)
        rc = odata_lit_guid(&p, j->list_id[0] ? j->list_id : j->campaign_id);
    if (rc == 0)
        rc = buf_puts(&p, j->list_id[0] ? ")?" LIST_SEL : ")/campaignlist_association?" LIST_SEL);
    if (rc == 0)
        rc = dv_request_ex(
            j->e->dv,
            &(struct dv_call){.method = "GET", .path = p.data, .prefer = "odata.maxpagesize=5000"},
            lists_cb, j);
    buf_free(&p);
    return rc;
}

static int texts_start(struct bjob *j);

/* ---- texts -------------------------------------------------------------- */

/* Checks that text parses as a template; NULL or the reason (in why). */
static const char *check_text(const char *what, const char *text, char *why, size_t whylen)
{
    if (template_text_blank(text, strlen(text))) {
        /* spaces only: every member would be skipped, or get a blank SMS */
        snprintf(why, whylen, "no message text: %s is only spaces", what);
        return why;
    }
    struct template *t = NULL;
    struct smsys_err e = {0};
    int rc = template_parse(text, strlen(text), &t, NULL, &e);
    template_free(t);
    if (rc == 0)
        return NULL;
    snprintf(why, whylen, "%s: %s", what, bulk_errtext(rc, &e));
    return why;
}

struct template *bulk_template_for(const struct bjob *j, const char *entity, struct smsys_err *err)
{
    const char *text = jstr(j->templates, entity);
    if (text == NULL)
        text = jstr(j->templates, "*");
    if (text == NULL) {
        smsys_err_set(err, SMSYS_ENOTFOUND, "no message text for %s members", entity);
        return NULL;
    }
    struct template *t = NULL;
    if (template_parse(text, strlen(text), &t, NULL, err) != 0)
        return NULL;
    return t;
}

static void store_templates(struct bjob *j, cJSON *map)
{
    char *json = cJSON_PrintUnformatted(map);
    const char *p[2] = {j->id, json};
    if (json == NULL || pg_query(j->e->pg, "SELECT smsys_bulk_set_templates($1::uuid, $2::jsonb)",
                                 2, p, stored_cb, j) != 0)
        j->done(j, -ENOMEM, 0);
    free(json);
}

static void tpl_cb(int rc, struct dv_result *res, void *ud)
{
    struct bjob *j = ud;
    j->e->st.dv_requests++;
    char why[1200];
    if (rc == SMSYS_ENOTFOUND) {
        snprintf(why, sizeof(why), "template %s does not exist in Dynamics", j->template_id);
        bulk_job_fail(j, why);
        return;
    }
    if (rc != 0 || res->json == NULL) {
        j->done(j, rc ? rc : SMSYS_EPROTO, 0);
        return;
    }
    cJSON *map = cJSON_CreateObject();
    const char *fail = map ? NULL : "out of memory";
    if (j->template_id[0]) {
        const char *body = jstr(res->json, "smsys_body");
        const char *name = jstr(res->json, "smsys_name") ? jstr(res->json, "smsys_name") : "";
        if (fail == NULL && body == NULL) {
            snprintf(why, sizeof(why), "no message text: template %s has no text (smsys_body)",
                     name);
            fail = why;
        }
        char what[300];
        snprintf(what, sizeof(what), "template %s", name);
        if (fail == NULL)
            fail = check_text(what, body, why, sizeof(why));
        /* A template for another table would be refused by the list read
         * itself (its columns do not exist on the member table), with a
         * message about the list; say what is wrong instead. */
        char tent[64];
        snprintf(tent, sizeof(tent), "%s",
                 jstr(res->json, "smsys_entity") ? jstr(res->json, "smsys_entity") : "");
        template_entity_norm(tent);
        const cJSON *src;
        cJSON_ArrayForEach(src, j->sources)
        {
            const char *ent = jstr(src, "member_entity");
            if (fail == NULL && tent[0] && ent && strcasecmp(tent, ent) != 0) {
                snprintf(why, sizeof(why),
                         "template %s is written for table '%s' but the members of the "
                         "audience are '%s': pick a template for %s (or none: the default "
                         "template of each member table is used)",
                         name, tent, ent, ent);
                fail = why;
            }
        }
        if (fail == NULL)
            cJSON_AddStringToObject(map, "*", body);
    } else {
        /* the default template of each member table of the audience */
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(res->json, "value");
        const cJSON *src;
        cJSON_ArrayForEach(src, j->sources)
        {
            const char *ent = jstr(src, "member_entity");
            if (fail || ent == NULL || cJSON_HasObjectItem(map, ent))
                continue;
            const cJSON *row, *hit = NULL;
            cJSON_ArrayForEach(row, rows)
            {
                char re[64];
                snprintf(re, sizeof(re), "%s",
                         jstr(row, "smsys_entity") ? jstr(row, "smsys_entity") : "");
                template_entity_norm(re); /* as pickup's defaults: " Contact" is contact */
                if (hit == NULL && strcasecmp(re, ent) == 0 && jstr(row, "smsys_body"))
                    hit = row;
            }
            if (hit == NULL) {
                snprintf(why, sizeof(why),
                         "no message text: the bulk send has no text and no template, and "
                         "there is no default template for %s (smsys_smstemplate with "
                         "smsys_isdefault = Yes and smsys_entity = %s)",
                         ent, ent);
                fail = why;
                continue;
            }
            char what[300];
            snprintf(what, sizeof(what), "default template %s",
                     jstr(hit, "smsys_name") ? jstr(hit, "smsys_name") : ent);
            fail = check_text(what, jstr(hit, "smsys_body"), why, sizeof(why));
            if (fail == NULL)
                cJSON_AddStringToObject(map, ent, jstr(hit, "smsys_body"));
        }
    }
    if (fail)
        bulk_job_fail(j, fail);
    else
        store_templates(j, map);
    cJSON_Delete(map);
}

/* ---- sender line ----------------------------------------------------------- */

static void sender_set_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    (void)res;
    if (rc == 0)
        rc = texts_start(j);
    if (rc != 0) {
        log_warn("bulk sender not set", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
        j->done(j, rc, 0);
    }
}

/* The line: the bulk's smsys_sendernumber, else the account's default
 * line (else any of its lines; none: the connector's own sender), as the
 * pickup writes it (phone_normalize_line). */
static void sender_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    if (rc != 0) {
        j->done(j, rc, 0);
        (void)err;
        return;
    }
    const char *line = PQntuples(res) && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
    char norm[40] = "";
    if (line) {
        struct smsys_err e = {0};
        if (phone_normalize_line(line, norm, sizeof(norm), &e) != 0) {
            char why[1200];
            snprintf(why, sizeof(why),
                     "sender line '%.100s' is not a phone number or short code: %s", line,
                     e.detail);
            bulk_job_fail(j, why);
            return;
        }
    }
    const char *p[2] = {j->id, norm[0] ? norm : NULL};
    if (pg_query(j->e->pg, "UPDATE smsys_bulk SET sender = $2 WHERE id = $1::uuid", 2, p,
                 sender_set_cb, j) != 0)
        j->done(j, -ENOMEM, 0);
}

int bulk_unit_templates(struct bjob *j)
{
    if (!j->account_id[0]) {
        bulk_job_fail(j, "no provider account: the bulk send names none (smsys_settingid) and "
                         "no account is the default");
        return 0;
    }
    const char *p[1] = {j->id};
    return pg_query(j->e->pg,
                    "SELECT coalesce(nullif(b.sender, ''), (SELECT l.number FROM smsys_line l "
                    "WHERE l.account_id = b.account_id ORDER BY l.is_default DESC, l.number "
                    "LIMIT 1)) FROM smsys_bulk b WHERE b.id = $1::uuid",
                    1, p, sender_cb, j);
}

static int texts_start(struct bjob *j)
{
    char why[1200];
    /* own text of spaces only: no text, as a blank description in pickup
     * (the default templates apply) */
    if (!j->template_id[0] && j->body && !template_text_blank(j->body, strlen(j->body))) {
        /* the bulk's own text: placeholders allowed, like a template */
        const char *fail = check_text("the bulk send's text", j->body, why, sizeof(why));
        if (fail) {
            bulk_job_fail(j, fail);
            return 0;
        }
        cJSON *map = cJSON_CreateObject();
        if (map == NULL || cJSON_AddStringToObject(map, "*", j->body) == NULL) {
            cJSON_Delete(map);
            return -ENOMEM;
        }
        store_templates(j, map);
        cJSON_Delete(map);
        return 0;
    }
    struct buf p = BUF_INIT;
    int rc;
    if (j->template_id[0]) {
        rc = buf_puts(&p, "smsys_smstemplates(");
        if (rc == 0)
            rc = odata_lit_guid(&p, j->template_id);
        if (rc == 0)
            rc = buf_puts(&p, ")?$select=smsys_name,smsys_body,smsys_entity");
    } else {
        rc = buf_puts(&p, "smsys_smstemplates?$select=smsys_name,smsys_body,smsys_entity");
        if (rc == 0)
            rc = odata_query_add(&p, "$filter", "smsys_isdefault eq true");
        if (rc == 0)
            rc = odata_query_add(&p, "$orderby", "createdon asc");
    }
    if (rc == 0)
        rc = dv_request_ex(j->e->dv, &(struct dv_call){.method = "GET", .path = p.data}, tpl_cb, j);
    buf_free(&p);
    return rc;
}
