/* Pickup: render templated SMS (issue 8).
 *
 * An SMS of the page is rendered when its description is empty and it
 *  - names a template (smsys_templateid), or
 *  - names none: then each recipient gets the default template of its own
 *    table (template_default.h, cached), so a page mixing contacts and
 *    accounts renders each with its table's default.
 * Every 'to' recipient is rendered from its own row: with one recipient
 * the text becomes the SMS's body (and description); with several, each
 * recipient keeps its own text (pk_party.body) for its child record.
 *
 * Order of the I/O: one GET of the named templates of the page and the
 * default lookups (at most one GET per TTL), in parallel; then per
 * (template, recipient table) template_render_batch, one group at a time;
 * then, for one-recipient SMS, one dv_update_multiple of description
 * BEFORE the caller queues them: a crash in between re-renders on the next
 * poll, or finds the text in description and queues that, which is the
 * same text. With several recipients the original record's description
 * (its first recipient's text) is written only AFTER the enqueue
 * (pk_tpl_descriptions, called by pickup_enqueue.c): written earlier, a retry
 * would take it for a typed text and send the first recipient's personal
 * text to all of them. */
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
#include "smsys/template_default.h"

struct pt_run;

/* A template used this poll: named by an SMS, or a table's default. */
struct pt_tpl {
    struct pt_run *run;
    int is_default;
    int read_failed; /* default: the lookup failed (SMS stay Pending) */
    char id[37];     /* "" for a table without a default */
    char entity[64]; /* the table it is written for / the default's table */
    char *name;
    const struct template *t;     /* NULL: see fail, or no default */
    struct template *own;         /* a named template parsed here */
    struct template_default *def; /* a held default */
    char *fail;
};

/* One recipient of one SMS to render. */
struct pt_job {
    size_t sms, party;
    struct pt_tpl *tpl;
    int done;
};

struct pt_run {
    struct dv_client *dv;
    struct template_defaults *defs;
    struct pk_sms *sms;
    size_t nsms;
    struct pt_tpl *tpl;
    size_t ntpl, cap;
    int tpl_read_failed;
    int pending;
    struct pt_job *jobs;
    size_t njobs;
    size_t grp; /* first job of the group being rendered */
    char set[80], key[80];
    struct template_table tbl;
    const char **ids; /* the group's recipients, each once */
    size_t nids;
    size_t *idx; /* the group's jobs (several may share a recipient) */
    size_t nidx;
    cJSON *patch;
    pk_tpl_done_cb cb;
    void *ud;
};

static int has_table_party(const struct pk_sms *s)
{
    for (size_t k = 0; k < s->nto; k++)
        if (s->to[k].party_id[0] && s->to[k].table[0])
            return 1;
    return 0;
}

/* A description of spaces and line breaks (a form's multi-line field
 * often keeps one) is no text: the template, named or default, applies,
 * instead of a blank SMS going out with the template ignored. */
static int needs(const struct pk_sms *s)
{
    if (s->skip || s->fail || (s->body != NULL && !template_text_blank(s->body, strlen(s->body))))
        return 0;
    return s->tpl_id[0] ? 1 : has_table_party(s);
}

static const char *tpl_label(const struct pt_tpl *t)
{
    return t->name && t->name[0] ? t->name : t->id;
}

static struct pt_tpl *tpl_find(struct pt_run *r, const char *id)
{
    for (size_t i = 0; i < r->ntpl; i++)
        if (!r->tpl[i].is_default && strcmp(r->tpl[i].id, id) == 0)
            return &r->tpl[i];
    return NULL;
}

static struct pt_tpl *default_find(struct pt_run *r, const char *table)
{
    for (size_t i = 0; i < r->ntpl; i++)
        if (r->tpl[i].is_default && strcmp(r->tpl[i].entity, table) == 0)
            return &r->tpl[i];
    return NULL;
}

static void run_free(struct pt_run *r)
{
    for (size_t i = 0; i < r->ntpl; i++) {
        template_free(r->tpl[i].own);
        template_default_release(r->tpl[i].def);
        free(r->tpl[i].name);
        free(r->tpl[i].fail);
    }
    free(r->tpl);
    free(r->jobs);
    free(r->ids);
    free(r->idx);
    cJSON_Delete(r->patch);
    free(r);
}

static void finish(struct pt_run *r)
{
    pk_tpl_done_cb cb = r->cb;
    void *ud = r->ud;
    run_free(r);
    cb(0, NULL, ud);
}

/* A recipient that cannot get its text: with one recipient the whole SMS
 * fails; with several only this one does (the others are still sent). */
static void fail_party(struct pk_sms *s, size_t k, char *why)
{
    if (s->nto <= 1) {
        if (s->fail == NULL)
            s->fail = why;
        else
            free(why);
        return;
    }
    if (s->to[k].why == NULL) {
        s->to[k].why = why;
        s->to[k].failed = 1;
    } else {
        free(why);
    }
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
    finish(r);
}

static void write_back(struct pt_run *r)
{
    if (cJSON_GetArraySize(r->patch) == 0) {
        finish(r);
        return;
    }
    int rc = dv_update_multiple(r->dv, "smsys_smses", "smsys_sms", r->patch, patch_cb, r);
    if (rc != 0) {
        for (size_t i = 0; i < r->nsms; i++)
            if (r->sms[i].rendered)
                r->sms[i].skip = 1;
        finish(r);
    }
}

static void next_group(struct pt_run *r);

/* One recipient's text into its SMS: the body (one recipient; queued for
 * the description PATCH) or the recipient's own body (several). */
static void take_text(struct pt_run *r, struct pk_sms *s, size_t k, const char *text,
                      size_t text_len)
{
    char *body = malloc(text_len + 1);
    if (body == NULL) {
        s->skip = 1;
        return;
    }
    memcpy(body, text, text_len);
    body[text_len] = '\0';
    if (s->nto > 1) {
        free(s->to[k].body);
        s->to[k].body = body;
        return;
    }
    cJSON *row = cJSON_CreateObject();
    if (row == NULL || !cJSON_AddStringToObject(row, "activityid", s->id) ||
        !cJSON_AddStringToObject(row, "description", body)) {
        free(body);
        cJSON_Delete(row);
        s->skip = 1;
        return;
    }
    cJSON_AddItemToArray(r->patch, row);
    free(s->body);
    s->body = body;
    s->rendered = 1;
}

static void row_cb(const char *id, int rc, const char *text, size_t text_len,
                   const struct smsys_err *err, void *ud)
{
    struct pt_run *r = ud;
    for (size_t i = 0; i < r->nidx; i++) {
        struct pt_job *j = &r->jobs[r->idx[i]];
        struct pk_sms *s = &r->sms[j->sms];
        if (j->done || strcmp(s->to[j->party].party_id, id) != 0)
            continue;
        j->done = 1;
        if (s->skip)
            continue;
        if (rc != 0)
            fail_party(s, j->party,
                       pk_printf("%stemplate %s: %s", j->tpl->is_default ? "default " : "",
                                 tpl_label(j->tpl),
                                 err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        else if (template_text_blank(text, text_len))
            /* every placeholder was missing: say so, and leave Dynamics'
             * description as it is rather than writing "" over it */
            fail_party(s, j->party,
                       pk_printf("%stemplate %s: the rendered text is empty for this recipient "
                                 "(every placeholder in it is missing or empty; a | default "
                                 "\"...\" filter gives one a text)",
                                 j->tpl->is_default ? "default " : "", tpl_label(j->tpl)));
        else
            take_text(r, s, j->party, text, text_len);
    }
}

/* The group's jobs not reached: their SMS stays Pending for the next
 * poll, whole, so no recipient is sent twice or skipped. */
static void leave_rest_pending(struct pt_run *r)
{
    for (size_t i = 0; i < r->nidx; i++) {
        struct pt_job *j = &r->jobs[r->idx[i]];
        if (!j->done) {
            j->done = 1;
            r->sms[j->sms].skip = 1;
        }
    }
}

static void validate_cb(int rc, const struct template_error *te, const struct smsys_err *err,
                        void *ud)
{
    struct pt_run *r = ud;
    (void)te;
    if (rc == SMSYS_ETEMPLATE) {
        /* The template names something the table does not have: no retry
         * helps; every recipient of the group fails with the placeholder
         * and its position. */
        for (size_t i = 0; i < r->nidx; i++) {
            struct pt_job *j = &r->jobs[r->idx[i]];
            if (j->done)
                continue;
            j->done = 1;
            fail_party(&r->sms[j->sms], j->party,
                       pk_printf("%stemplate %s: %s", j->tpl->is_default ? "default " : "",
                                 tpl_label(j->tpl), err->detail));
        }
    } else {
        log_warn("pickup_tpl_validate", "rc=%d detail=%s", rc, log_q(err ? err->detail : ""));
    }
    leave_rest_pending(r);
    next_group(r);
}

static void batch_done_cb(int rc, const struct template_batch_stats *st,
                          const struct smsys_err *err, void *ud)
{
    struct pt_run *r = ud;
    (void)st;
    if (rc != 0)
        log_warn("pickup_tpl_render", "rc=%d detail=%s", rc, log_q(err ? err->detail : ""));
    if ((rc == SMSYS_EPROTO || rc == SMSYS_ENOTFOUND) && r->nidx > 0) {
        /* A 400/404 is the server refusing a name of the template (or a
         * real outage of one table): the probe queries of
         * template_validate tell which, and name the placeholder. */
        const struct pt_tpl *t = r->jobs[r->idx[0]].tpl;
        if (template_validate(r->dv, t->t, &r->tbl, validate_cb, r) == 0)
            return;
    }
    leave_rest_pending(r);
    next_group(r);
}

/* The next (template, recipient table) group still to render, or the write. */
static void next_group(struct pt_run *r)
{
    for (; r->grp < r->njobs; r->grp++) {
        struct pt_job *g = &r->jobs[r->grp];
        if (g->done || r->sms[g->sms].skip)
            continue;
        const char *table = r->sms[g->sms].to[g->party].table;
        r->nids = 0;
        r->nidx = 0;
        for (size_t i = r->grp; i < r->njobs; i++) {
            struct pt_job *j = &r->jobs[i];
            struct pk_party *pt = &r->sms[j->sms].to[j->party];
            if (j->done || r->sms[j->sms].skip || j->tpl != g->tpl || strcmp(pt->table, table) != 0)
                continue;
            r->idx[r->nidx++] = i;
            int seen = 0;
            for (size_t k = 0; k < r->nids && !seen; k++)
                seen = strcmp(r->ids[k], pt->party_id) == 0;
            if (!seen)
                r->ids[r->nids++] = pt->party_id;
        }
        int rc = template_table_for(table, r->set, sizeof(r->set), r->key, sizeof(r->key), &r->tbl);
        if (rc == 0)
            rc = template_render_batch(r->dv, g->tpl->t, &r->tbl, r->ids, r->nids, NULL, row_cb,
                                       batch_done_cb, r);
        if (rc == 0)
            return;
        for (size_t i = 0; i < r->nidx; i++) {
            struct pt_job *j = &r->jobs[r->idx[i]];
            struct pk_sms *s = &r->sms[j->sms];
            j->done = 1;
            if (rc == -ENOMEM)
                s->skip = 1;
            else
                fail_party(s, j->party,
                           pk_printf("template %s: cannot render for %s %s: %s", tpl_label(g->tpl),
                                     table, s->to[j->party].party_id, smsys_strerror(rc)));
        }
    }
    write_back(r);
}

/* Which template renders recipient k of s: a job, or the reason it fails.
 * Returns 1 when the whole SMS is decided (failed or left Pending). */
static int plan_party(struct pt_run *r, struct pk_sms *s, size_t k)
{
    struct pk_party *pt = &s->to[k];
    if (pt->why)
        return 0;
    struct pt_tpl *t;
    if (s->tpl_id[0]) {
        t = tpl_find(r, s->tpl_id);
        if (t == NULL) {
            s->fail = pk_printf("template %s does not exist (or is not readable)", s->tpl_id);
            return 1;
        }
        if (t->fail) {
            s->fail = pk_strdup(t->fail);
            return 1;
        }
        if (pt->party_id[0] == '\0') {
            fail_party(s, k,
                       pk_printf("template %s needs a recipient with a Dynamics record; this one "
                                 "is only the address '%s'",
                                 tpl_label(t), pt->addr ? pt->addr : ""));
            return 0;
        }
        if (strcmp(pt->table, t->entity) != 0) {
            fail_party(s, k,
                       pk_printf("template %s is written for table '%s' but the recipient is a "
                                 "'%s'",
                                 tpl_label(t), t->entity, pt->table[0] ? pt->table : "(unknown)"));
            return 0;
        }
    } else {
        t = pt->party_id[0] && pt->table[0] ? default_find(r, pt->table) : NULL;
        if (t && t->read_failed) {
            s->skip = 1; /* the defaults could not be read: next poll */
            return 1;
        }
        if (t == NULL) {
            fail_party(s, k, pk_strdup("the message text (description) is empty"));
            return 0;
        }
        if (t->def == NULL) {
            fail_party(s, k,
                       pk_printf("the message text (description) is empty and table '%s' has "
                                 "no default SMS template (smsys_isdefault)",
                                 pt->table));
            return 0;
        }
        if (t->fail) {
            fail_party(s, k, pk_strdup(t->fail));
            return 0;
        }
    }
    r->jobs[r->njobs++] = (struct pt_job){.sms = (size_t)(s - r->sms), .party = k, .tpl = t};
    return 0;
}

/* Named templates and defaults are known: plan the jobs and render. */
static void start_render(struct pt_run *r)
{
    if (r->tpl_read_failed) {
        for (size_t i = 0; i < r->nsms; i++)
            if (needs(&r->sms[i]) && r->sms[i].tpl_id[0])
                r->sms[i].skip = 1;
    }
    for (size_t i = 0; i < r->nsms; i++) {
        struct pk_sms *s = &r->sms[i];
        if (!needs(s))
            continue;
        size_t first = r->njobs;
        for (size_t k = 0; k < s->nto; k++)
            if (plan_party(r, s, k))
                break;
        if (s->fail || s->skip)
            r->njobs = first; /* decided as a whole: no job of it renders */
        else if (s->nto > 1)
            s->per_party = 1;
    }
    next_group(r);
}

static void step_done(struct pt_run *r)
{
    if (--r->pending == 0)
        start_render(r);
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
        t->run = r;
        snprintf(t->id, sizeof(t->id), "%s", id->valuestring);
        t->name = pk_strdup(cJSON_IsString(name) ? name->valuestring : NULL);
        snprintf(t->entity, sizeof(t->entity), "%s", cJSON_IsString(ent) ? ent->valuestring : "");
        template_entity_norm(t->entity);
        const char *tn = tpl_label(t);
        if (!cJSON_IsString(body) ||
            template_text_blank(body->valuestring, strlen(body->valuestring))) {
            t->fail = pk_printf("template %s has no text (smsys_body)", tn);
            continue;
        }
        if (t->entity[0] == '\0') {
            t->fail = pk_printf("template %s names no table (smsys_entity)", tn);
            continue;
        }
        struct smsys_err e = {0};
        int rc = template_parse(body->valuestring, strlen(body->valuestring), &t->own, NULL, &e);
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0)
            t->fail = pk_printf("template %s: %s", tn, e.detail[0] ? e.detail : smsys_strerror(rc));
        t->t = t->own;
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
        r->tpl_read_failed = 1;
    }
    step_done(r);
}

static void take_default(struct pt_tpl *t, int rc, struct template_default *def)
{
    if (rc != 0) {
        t->read_failed = 1;
        return;
    }
    t->def = def; /* the reference is ours */
    if (def == NULL)
        return;
    snprintf(t->id, sizeof(t->id), "%s", def->id);
    t->name = pk_strdup(def->name);
    t->t = def->t;
    if (def->t == NULL)
        t->fail = pk_strdup(def->error ? def->error : "default template cannot be parsed");
}

static void default_cb(int rc, struct template_default *def, const struct smsys_err *err, void *ud)
{
    struct pt_tpl *t = ud;
    (void)err; /* logged by template_default.c */
    take_default(t, rc, def);
    step_done(t->run);
}

/* The named templates of the page: one GET (an or-chain: a page holds at
 * most max_rows SMS and far fewer distinct templates). */
static int read_named(struct pt_run *r)
{
    struct buf filter = BUF_INIT, path = BUF_INIT;
    size_t nf = 0;
    int rc = 0;
    for (size_t i = 0; i < r->nsms && rc == 0; i++) {
        struct pk_sms *s = &r->sms[i];
        if (!needs(s) || !s->tpl_id[0])
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = needs(&r->sms[j]) && strcmp(r->sms[j].tpl_id, s->tpl_id) == 0;
        if (!seen)
            rc = buf_printf(&filter, "%ssmsys_smstemplateid eq %s", nf++ ? " or " : "", s->tpl_id);
    }
    if (rc == 0 && nf == 0)
        return 0;
    if (rc == 0)
        rc = buf_puts(&path, "smsys_smstemplates");
    if (rc == 0)
        rc = odata_query_add(&path, "$select",
                             "smsys_smstemplateid,smsys_name,smsys_body,smsys_entity");
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", filter.data);
    if (rc == 0)
        rc = dv_get_all(r->dv, path.data, NULL, 0, tpl_page_cb, tpl_done_cb, r);
    if (rc == 0)
        r->pending++;
    buf_free(&filter);
    buf_free(&path);
    return rc;
}

/* The defaults of the recipient tables of SMS without a template. */
static int read_defaults(struct pt_run *r)
{
    for (size_t i = 0; i < r->nsms; i++) {
        struct pk_sms *s = &r->sms[i];
        if (!needs(s) || s->tpl_id[0])
            continue;
        for (size_t k = 0; k < s->nto; k++) {
            const struct pk_party *pt = &s->to[k];
            if (!pt->party_id[0] || !pt->table[0] || default_find(r, pt->table))
                continue;
            if (r->ntpl >= r->cap)
                return -ENOMEM; /* cannot happen: cap counts every party */
            struct pt_tpl *t = &r->tpl[r->ntpl++];
            t->run = r;
            t->is_default = 1;
            snprintf(t->entity, sizeof(t->entity), "%s", pt->table);
            struct template_default *def = NULL;
            int rc = template_default_lookup(r->defs, pt->table, &def, default_cb, t);
            if (rc == TEMPLATE_DEFAULT_LATER)
                r->pending++;
            else if (rc == 0)
                take_default(t, 0, def);
            else if (rc == -ENOMEM)
                return rc;
            else
                t->read_failed = 1; /* its SMS stay Pending */
        }
    }
    return 0;
}

int pk_tpl_render(struct dv_client *dv, struct template_defaults *defs, struct pk_sms *sms,
                  size_t nsms, pk_tpl_done_cb cb, void *ud)
{
    size_t want = 0, parties = 0;
    for (size_t i = 0; i < nsms; i++)
        if (needs(&sms[i])) {
            want++;
            parties += sms[i].nto ? sms[i].nto : 1;
        }
    if (want == 0)
        return SMSYS_ENOTFOUND;
    struct pt_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->dv = dv;
    r->defs = defs;
    r->sms = sms;
    r->nsms = nsms;
    r->cb = cb;
    r->ud = ud;
    /* at most one template per SMS plus one default per recipient */
    r->cap = want + parties;
    r->tpl = calloc(r->cap, sizeof(*r->tpl));
    r->jobs = calloc(parties, sizeof(*r->jobs));
    r->ids = calloc(parties, sizeof(*r->ids));
    r->idx = calloc(parties, sizeof(*r->idx));
    r->patch = cJSON_CreateArray();
    int rc = (r->tpl && r->jobs && r->ids && r->idx && r->patch) ? 0 : -ENOMEM;
    r->pending = 1; /* guard */
    if (rc == 0)
        rc = read_named(r);
    if (rc == 0)
        rc = read_defaults(r);
    if (rc != 0 && r->pending > 1) {
        /* Requests are out and will call back: let them end the run, with
         * the SMS of this page left Pending. */
        for (size_t i = 0; i < nsms; i++)
            if (needs(&sms[i]))
                sms[i].skip = 1;
        rc = 0;
    }
    if (rc != 0) {
        run_free(r);
        return rc;
    }
    step_done(r);
    return 0;
}

/* ---- after the enqueue ---------------------------------------------- */

struct pt_desc {
    cJSON *rows;
    pk_desc_cb cb;
    void *ud;
};

static void desc_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct pt_desc *d = ud;
    if (rc != 0)
        /* The messages are queued and will be sent; only the original
         * record lacks its text. Not retried: the next poll skips the SMS
         * as queued, and must not take a late text for a typed one. */
        log_warn("pickup_tpl_description", "rc=%d records=%d", rc, cJSON_GetArraySize(d->rows));
    pk_desc_cb cb = d->cb;
    void *cud = d->ud;
    unsigned requests = res ? res->requests : 1;
    cJSON_Delete(d->rows);
    free(d);
    cb(rc, requests, cud);
}

int pk_tpl_descriptions(struct dv_client *dv, const struct pk_sms *sms, size_t nsms, pk_desc_cb cb,
                        void *ud)
{
    struct pt_desc *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->cb = cb;
    d->ud = ud;
    d->rows = cJSON_CreateArray();
    int rc = d->rows ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < nsms; i++) {
        const struct pk_sms *s = &sms[i];
        if (s->skip || s->fail || !s->per_party || s->nto == 0 || s->to[0].body == NULL)
            continue;
        cJSON *row = cJSON_CreateObject();
        if (row == NULL || !cJSON_AddStringToObject(row, "activityid", s->id) ||
            !cJSON_AddStringToObject(row, "description", s->to[0].body)) {
            cJSON_Delete(row);
            rc = -ENOMEM;
            break;
        }
        cJSON_AddItemToArray(d->rows, row);
    }
    if (rc == 0 && cJSON_GetArraySize(d->rows) == 0)
        rc = SMSYS_ENOTFOUND;
    if (rc == 0)
        rc = dv_update_multiple(dv, "smsys_smses", "smsys_sms", d->rows, desc_cb, d);
    if (rc != 0) {
        cJSON_Delete(d->rows);
        free(d);
    }
    return rc;
}
