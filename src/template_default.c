/* template_default.c - cached default templates per table
 * (template_default.h). One GET per TTL reads all of them; lookups that
 * arrive while it runs wait for it instead of starting another. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/template.h"
#include "smsys/template_default.h"

struct td_waiter {
    char table[64];
    template_default_cb cb;
    void *ud;
};

struct template_defaults {
    uv_loop_t *loop;
    struct dv_client *dv;
    uint64_t ttl_ms;
    int loaded;                  /* the snapshot below is an answer */
    uint64_t loaded_at;          /* uv_now of the answer */
    struct template_default **v; /* one per table */
    size_t n;
    /* the refresh in flight */
    int busy;
    struct template_default **next;
    size_t nnext, capnext;
    unsigned dup;
    struct td_waiter *w;
    size_t nw, capw;
    struct template_defaults_stats st;
};

void template_default_hold(struct template_default *d)
{
    if (d)
        d->refs++;
}

void template_default_release(struct template_default *d)
{
    if (d == NULL || --d->refs > 0)
        return;
    template_free(d->t);
    free(d->name);
    free(d->body);
    free(d->error);
    free(d);
}

static void release_all(struct template_default **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        template_default_release(v[i]);
    free(v);
}

int template_defaults_new(uv_loop_t *loop, struct dv_client *dv, unsigned ttl_ms,
                          struct template_defaults **out)
{
    if (loop == NULL || dv == NULL || out == NULL)
        return -EINVAL;
    struct template_defaults *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->loop = loop;
    d->dv = dv;
    d->ttl_ms = ttl_ms ? ttl_ms : TEMPLATE_DEFAULT_TTL_MS;
    *out = d;
    return 0;
}

void template_defaults_free(struct template_defaults *d)
{
    if (d == NULL)
        return;
    release_all(d->v, d->n);
    release_all(d->next, d->nnext);
    free(d->w);
    free(d);
}

void template_defaults_invalidate(struct template_defaults *d)
{
    d->loaded = 0;
}

void template_defaults_stats(const struct template_defaults *d, struct template_defaults_stats *out)
{
    *out = d->st;
}

static struct template_default *find(struct template_default **v, size_t n, const char *table)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i]->entity, table) == 0)
            return v[i];
    return NULL;
}

static char *dup_or_empty(const cJSON *s)
{
    return strdup(cJSON_IsString(s) ? s->valuestring : "");
}

/* a newer than b: modifiedon (ISO 8601 UTC strings of one format compare
 * as text), then the lower id so the choice never flips between reads. */
static int newer(const struct template_default *a, const struct template_default *b)
{
    int c = strcmp(a->modifiedon, b->modifiedon);
    return c != 0 ? c > 0 : strcmp(a->id, b->id) < 0;
}

/* Builds an entry from a row; NULL for rows without id/table (ignored)
 * or out of memory (*oom set). */
static struct template_default *entry_from_row(const cJSON *row, int *oom)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "smsys_smstemplateid");
    const cJSON *ent = cJSON_GetObjectItemCaseSensitive(row, "smsys_entity");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(row, "modifiedon");
    if (!cJSON_IsString(id) || strlen(id->valuestring) != 36 || !cJSON_IsString(ent) ||
        ent->valuestring[0] == '\0')
        return NULL;
    struct template_default *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        *oom = 1;
        return NULL;
    }
    e->refs = 1;
    snprintf(e->id, sizeof(e->id), "%s", id->valuestring);
    for (char *c = e->id; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    snprintf(e->entity, sizeof(e->entity), "%s", ent->valuestring);
    template_entity_norm(e->entity);
    snprintf(e->modifiedon, sizeof(e->modifiedon), "%s",
             cJSON_IsString(mod) ? mod->valuestring : "");
    e->name = dup_or_empty(cJSON_GetObjectItemCaseSensitive(row, "smsys_name"));
    e->body = dup_or_empty(cJSON_GetObjectItemCaseSensitive(row, "smsys_body"));
    if (e->name == NULL || e->body == NULL) {
        template_default_release(e);
        *oom = 1;
        return NULL;
    }
    const char *tn = e->name[0] ? e->name : e->id;
    struct buf msg = BUF_INIT;
    int rc = 0;
    if (template_text_blank(e->body, strlen(e->body))) {
        rc = buf_printf(&msg, "default template %s has no text (smsys_body)", tn);
    } else {
        struct smsys_err err = {0};
        int prc = template_parse(e->body, strlen(e->body), &e->t, NULL, &err);
        if (prc == -ENOMEM)
            rc = -ENOMEM;
        else if (prc != 0)
            rc = buf_printf(&msg, "default template %s: %s", tn,
                            err.detail[0] ? err.detail : smsys_strerror(prc));
    }
    if (rc == 0 && msg.data) {
        e->error = strdup(msg.data);
        if (e->error == NULL)
            rc = -ENOMEM;
    }
    buf_free(&msg);
    if (rc != 0) {
        template_default_release(e);
        *oom = 1;
        return NULL;
    }
    return e;
}

static int page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct template_defaults *d = ud;
    (void)page;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        int oom = 0;
        struct template_default *e = entry_from_row(row, &oom);
        if (oom)
            return -ENOMEM;
        if (e == NULL)
            continue;
        struct template_default *old = find(d->next, d->nnext, e->entity);
        if (old) {
            struct template_default *win = newer(e, old) ? e : old;
            struct template_default *lose = win == e ? old : e;
            d->dup++;
            log_warn("template_default_duplicate",
                     "table=%s used=%s used_modifiedon=%s ignored=%s ignored_modifiedon=%s",
                     e->entity, win->id, win->modifiedon, lose->id, lose->modifiedon);
            if (win == e) {
                for (size_t i = 0; i < d->nnext; i++)
                    if (d->next[i] == old)
                        d->next[i] = e;
            }
            template_default_release(lose);
            continue;
        }
        if (d->nnext == d->capnext) {
            size_t cap = d->capnext ? d->capnext * 2 : 8;
            struct template_default **v = realloc(d->next, cap * sizeof(*v));
            if (v == NULL) {
                template_default_release(e);
                return -ENOMEM;
            }
            d->next = v;
            d->capnext = cap;
        }
        d->next[d->nnext++] = e;
    }
    return DV_PAGE_CONTINUE;
}

static void done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                    void *ud)
{
    struct template_defaults *d = ud;
    (void)delta;
    (void)pages;
    if (rc == 0) {
        release_all(d->v, d->n);
        d->v = d->next;
        d->n = d->nnext;
        d->loaded = 1;
        d->loaded_at = uv_now(d->loop);
        d->st.duplicates = d->dup;
    } else {
        log_warn("template_default_read", "rc=%d detail=%s", rc,
                 log_q(err ? err->detail : smsys_strerror(rc)));
        release_all(d->next, d->nnext);
    }
    d->next = NULL;
    d->nnext = d->capnext = 0;
    d->busy = 0;
    /* Callbacks may look up again (answered from the new snapshot) or
     * start a refresh after a failure: hand them a private copy. */
    struct td_waiter *w = d->w;
    size_t nw = d->nw;
    d->w = NULL;
    d->nw = d->capw = 0;
    for (size_t i = 0; i < nw; i++) {
        struct template_default *e = rc == 0 ? find(d->v, d->n, w[i].table) : NULL;
        template_default_hold(e);
        w[i].cb(rc, e, rc == 0 ? NULL : err, w[i].ud);
    }
    free(w);
}

static int refresh(struct template_defaults *d)
{
    struct buf path = BUF_INIT;
    int rc = buf_puts(&path, "smsys_smstemplates");
    if (rc == 0)
        rc = odata_query_add(&path, "$select",
                             "smsys_smstemplateid,smsys_name,smsys_body,smsys_entity,modifiedon");
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", "smsys_isdefault eq true and statecode eq 0");
    if (rc == 0)
        rc = dv_get_all(d->dv, path.data, NULL, 0, page_cb, done_cb, d);
    buf_free(&path);
    if (rc == 0) {
        d->busy = 1;
        d->dup = 0;
        d->st.refreshes++;
    }
    return rc;
}

int template_default_lookup(struct template_defaults *d, const char *table,
                            struct template_default **def, template_default_cb cb, void *ud)
{
    if (d == NULL || table == NULL || def == NULL || cb == NULL || table[0] == '\0' ||
        strlen(table) >= sizeof(((struct td_waiter *)0)->table))
        return -EINVAL;
    *def = NULL;
    if (!d->busy && d->loaded && uv_now(d->loop) - d->loaded_at < d->ttl_ms) {
        d->st.hits++;
        *def = find(d->v, d->n, table);
        template_default_hold(*def);
        return 0;
    }
    if (d->nw == d->capw) {
        size_t cap = d->capw ? d->capw * 2 : 4;
        struct td_waiter *w = realloc(d->w, cap * sizeof(*w));
        if (w == NULL)
            return -ENOMEM;
        d->w = w;
        d->capw = cap;
    }
    if (!d->busy) {
        int rc = refresh(d);
        if (rc != 0)
            return rc;
    }
    struct td_waiter *w = &d->w[d->nw++];
    snprintf(w->table, sizeof(w->table), "%s", table);
    w->cb = cb;
    w->ud = ud;
    return TEMPLATE_DEFAULT_LATER;
}
