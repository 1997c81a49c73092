/* Pickup: render templated SMS (issue 8, deliverable 4).
 *
 * For each picked-up SMS with a template and an empty description: one GET
 * of all templates the page names, template_parse each (cached for this
 * poll only), then template_render_batch per (template, recipient table),
 * one group at a time. The rendered texts are PATCHed into description
 * (dv_update_multiple) BEFORE the caller queues them: a crash in between
 * re-renders on the next poll from the same data, or finds the text
 * already in description and queues that. The outbox cannot carry
 * description, hence the separate write. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "pickup_int.h"
#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/template.h"

struct pt_tpl {
    char id[37];
    char *name;
    char entity[64];
    struct template *t; /* NULL: parse failed, see fail */
    char *fail;
};

struct pt_run {
    struct dv_client *dv;
    struct pk_sms *sms;
    size_t nsms;
    struct pt_tpl *tpl;
    size_t ntpl, cap;
    size_t grp_sms; /* first SMS of the group being rendered */
    char set[80], key[80];
    struct template_table tbl;
    const char **ids; /* the group's recipients, each once */
    size_t nids;
    size_t *idx; /* the group's SMS (several may share a recipient) */
    size_t nidx;
    cJSON *patch;
    pk_tpl_done_cb cb;
    void *ud;
};

static int needs(const struct pk_sms *s)
{
    return !s->skip && !s->fail && s->tpl_id[0] && (s->body == NULL || s->body[0] == '\0');
}

static struct pt_tpl *tpl_find(struct pt_run *r, const char *id)
{
    for (size_t i = 0; i < r->ntpl; i++)
        if (strcmp(r->tpl[i].id, id) == 0)
            return &r->tpl[i];
    return NULL;
}

static void run_free(struct pt_run *r)
{
    for (size_t i = 0; i < r->ntpl; i++) {
        template_free(r->tpl[i].t);
        free(r->tpl[i].name);
        free(r->tpl[i].fail);
    }
    free(r->tpl);
    free(r->ids);
    free(r->idx);
    cJSON_Delete(r->patch);
    free(r);
}

static void finish(struct pt_run *r, int rc, const struct smsys_err *err)
{
    pk_tpl_done_cb cb = r->cb;
    void *ud = r->ud;
    run_free(r);
    cb(rc, err, ud);
}

/* A request error is temporary: the SMS not rendered yet stay Pending. */
static void leave_pending(struct pt_run *r)
{
    for (size_t i = 0; i < r->nsms; i++)
        if (needs(&r->sms[i]))
            r->sms[i].skip = 1;
}

static void patch_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct pt_run *r = ud;
    (void)res;
    if (rc != 0) {
        /* Not written back: do not queue a text Dynamics does not show. */
        log_warn("pickup_tpl_patch", "rc=%d", rc);
        for (size_t i = 0; i < r->nsms; i++)
            if (r->sms[i].rendered)
                r->sms[i].skip = 1;
    }
    finish(r, 0, NULL);
}

static void write_back(struct pt_run *r)
{
    if (cJSON_GetArraySize(r->patch) == 0) {
        finish(r, 0, NULL);
        return;
    }
    int rc = dv_update_multiple(r->dv, "smsys_smses", "smsys_sms", r->patch, patch_cb, r);
    if (rc != 0) {
        for (size_t i = 0; i < r->nsms; i++)
            if (r->sms[i].rendered)
                r->sms[i].skip = 1;
        finish(r, 0, NULL);
    }
}

static void next_group(struct pt_run *r);

static void row_cb(const char *id, int rc, const char *text, size_t text_len,
                   const struct smsys_err *err, void *ud)
{
    struct pt_run *r = ud;
    for (size_t i = 0; i < r->nidx; i++) {
        struct pk_sms *s = &r->sms[r->idx[i]];
        if (!needs(s) || strcmp(s->to[0].party_id, id) != 0)
            continue;
        struct pt_tpl *t = tpl_find(r, s->tpl_id);
        if (rc != 0) {
            s->fail = pk_printf("template %s: %s", t && t->name ? t->name : s->tpl_id,
                                err && err->detail[0] ? err->detail : smsys_strerror(rc));
            continue;
        }
        char *body = malloc(text_len + 1);
        cJSON *row = cJSON_CreateObject();
        if (body == NULL || row == NULL || !cJSON_AddStringToObject(row, "activityid", s->id)) {
            free(body);
            cJSON_Delete(row);
            s->skip = 1;
            continue;
        }
        memcpy(body, text, text_len);
        body[text_len] = '\0';
        if (!cJSON_AddStringToObject(row, "description", body)) {
            free(body);
            cJSON_Delete(row);
            s->skip = 1;
            continue;
        }
        cJSON_AddItemToArray(r->patch, row);
        free(s->body);
        s->body = body;
        s->rendered = 1;
    }
}

static void batch_done_cb(int rc, const struct template_batch_stats *st,
                          const struct smsys_err *err, void *ud)
{
    struct pt_run *r = ud;
    (void)st;
    if (rc != 0)
        log_warn("pickup_tpl_render", "rc=%d detail=%s", rc, log_q(err ? err->detail : ""));
    /* Rows not reached (request error) stay Pending for the next poll; the
     * rendered ones are written. Marking them also ends this group, so
     * next_group cannot pick it again. */
    for (size_t i = 0; i < r->nidx; i++)
        if (needs(&r->sms[r->idx[i]]))
            r->sms[r->idx[i]].skip = 1;
    next_group(r);
}

/* The next (template, table) group of SMS still to render, or the write. */
static void next_group(struct pt_run *r)
{
    for (; r->grp_sms < r->nsms; r->grp_sms++) {
        struct pk_sms *g = &r->sms[r->grp_sms];
        if (!needs(g))
            continue;
        struct pt_tpl *t = tpl_find(r, g->tpl_id);
        const char *table = g->to[0].table;
        r->nids = 0;
        r->nidx = 0;
        for (size_t i = r->grp_sms; i < r->nsms; i++) {
            struct pk_sms *s = &r->sms[i];
            if (!needs(s) || strcmp(s->tpl_id, g->tpl_id) != 0 ||
                strcmp(s->to[0].table, table) != 0)
                continue;
            r->idx[r->nidx++] = i;
            int seen = 0;
            for (size_t j = 0; j < r->nids && !seen; j++)
                seen = strcmp(r->ids[j], s->to[0].party_id) == 0;
            if (!seen)
                r->ids[r->nids++] = s->to[0].party_id;
        }
        int rc = template_table_for(table, r->set, sizeof(r->set), r->key, sizeof(r->key), &r->tbl);
        if (rc == 0)
            rc = template_render_batch(r->dv, t->t, &r->tbl, r->ids, r->nids, NULL, row_cb,
                                       batch_done_cb, r);
        if (rc == 0)
            return;
        for (size_t i = 0; i < r->nidx; i++) {
            struct pk_sms *s = &r->sms[r->idx[i]];
            if (rc == -ENOMEM)
                s->skip = 1;
            else
                s->fail =
                    pk_printf("template %s: cannot render for %s %s: %s", t->name ? t->name : t->id,
                              table, s->to[0].party_id, smsys_strerror(rc));
        }
    }
    write_back(r);
}

/* Per SMS: the template must exist, parse, and be written for the
 * recipient's table; one recipient only (each would need its own text). */
static void check_sms(struct pt_run *r)
{
    for (size_t i = 0; i < r->nsms; i++) {
        struct pk_sms *s = &r->sms[i];
        if (!needs(s))
            continue;
        struct pt_tpl *t = tpl_find(r, s->tpl_id);
        if (t == NULL)
            s->fail = pk_printf("template %s does not exist (or is not readable)", s->tpl_id);
        else if (t->fail)
            s->fail = pk_strdup(t->fail);
        else if (s->nto != 1)
            s->fail = pk_printf("template %s: a templated SMS must have exactly one 'to' "
                                "recipient (it has %zu)",
                                t->name ? t->name : t->id, s->nto);
        else if (strcmp(s->to[0].table, t->entity) != 0)
            s->fail = pk_printf("template %s is written for table '%s' but the recipient is "
                                "a '%s'",
                                t->name ? t->name : t->id, t->entity,
                                s->to[0].table[0] ? s->to[0].table : "(unknown)");
    }
}

static int tpl_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct pt_run *r = ud;
    (void)page;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "smsys_smstemplateid");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "smsys_name");
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(row, "smsys_body");
        const cJSON *ent = cJSON_GetObjectItemCaseSensitive(row, "smsys_entity");
        if (r->ntpl >= r->cap)
            break;
        if (!cJSON_IsString(id) || strlen(id->valuestring) != 36 || tpl_find(r, id->valuestring))
            continue;
        struct pt_tpl *t = &r->tpl[r->ntpl++];
        snprintf(t->id, sizeof(t->id), "%s", id->valuestring);
        t->name = pk_strdup(cJSON_IsString(name) ? name->valuestring : NULL);
        snprintf(t->entity, sizeof(t->entity), "%s", cJSON_IsString(ent) ? ent->valuestring : "");
        const char *tn = t->name ? t->name : t->id;
        if (!cJSON_IsString(body) || body->valuestring[0] == '\0') {
            t->fail = pk_printf("template %s has no text (smsys_body)", tn);
            continue;
        }
        if (t->entity[0] == '\0') {
            t->fail = pk_printf("template %s names no table (smsys_entity)", tn);
            continue;
        }
        struct template_error te;
        struct smsys_err e = {0};
        int rc = template_parse(body->valuestring, strlen(body->valuestring), &t->t, &te, &e);
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0)
            t->fail = pk_printf("template %s: %s", tn, e.detail[0] ? e.detail : smsys_strerror(rc));
    }
    return 0;
}

static void tpl_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                        void *ud)
{
    struct pt_run *r = ud;
    (void)delta;
    (void)pages;
    if (rc != 0) {
        log_warn("pickup_tpl_read", "rc=%d detail=%s", rc, log_q(err ? err->detail : ""));
        leave_pending(r);
        finish(r, 0, NULL);
        return;
    }
    check_sms(r);
    next_group(r);
}

int pk_tpl_render(struct dv_client *dv, struct pk_sms *sms, size_t nsms, pk_tpl_done_cb cb,
                  void *ud)
{
    size_t want = 0;
    for (size_t i = 0; i < nsms; i++)
        want += needs(&sms[i]);
    if (want == 0)
        return SMSYS_ENOTFOUND;
    struct pt_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->dv = dv;
    r->sms = sms;
    r->nsms = nsms;
    r->cb = cb;
    r->ud = ud;
    r->cap = want;
    r->tpl = calloc(want, sizeof(*r->tpl));
    r->ids = calloc(want, sizeof(*r->ids));
    r->idx = calloc(want, sizeof(*r->idx));
    r->patch = cJSON_CreateArray();
    struct buf filter = BUF_INIT, path = BUF_INIT;
    int rc = (r->tpl && r->ids && r->idx && r->patch) ? 0 : -ENOMEM;
    /* One GET for every distinct template on the page (an or-chain: the
     * page holds at most max_rows SMS, far fewer distinct templates). */
    size_t nf = 0;
    for (size_t i = 0; i < nsms && rc == 0; i++) {
        if (!needs(&sms[i]))
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = needs(&sms[j]) && strcmp(sms[j].tpl_id, sms[i].tpl_id) == 0;
        if (!seen)
            rc = buf_printf(&filter, "%ssmsys_smstemplateid eq %s", nf++ ? " or " : "",
                            sms[i].tpl_id);
    }
    if (rc == 0)
        rc = buf_puts(&path, "smsys_smstemplates");
    if (rc == 0)
        rc = odata_query_add(&path, "$select",
                             "smsys_smstemplateid,smsys_name,smsys_body,"
                             "smsys_entity");
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", filter.data);
    if (rc == 0)
        rc = dv_get_all(dv, path.data, NULL, 0, tpl_page_cb, tpl_done_cb, r);
    buf_free(&filter);
    buf_free(&path);
    if (rc != 0)
        run_free(r);
    return rc;
}
