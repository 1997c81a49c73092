/* template_batch.c - templates against Dataverse: rendering many
 * recipients with one GET per batch (plus one per {{let}} relation), and
 * validating a template's columns and lookups with probe queries.
 *
 * Cost per batch of B recipients (docs/templates.md, "Query cost"):
 *   GET <set>?$select=<plan>&$expand=<plan>&$filter=key eq A or key eq B ...
 *   GET <rel set>?$select=..&$filter=(_lk_value eq K1 or ...) and (where)
 *       &$orderby=<by>     once per relation, only for keys that exist
 * The CPU work between requests is rendering at most B rows: a bounded
 * slice on the loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/dataverse.h"
#include "smsys/odata.h"
#include "template_int.h"

#define ANNOTATIONS "odata.include-annotations=\"*\""
#define MAX_BATCH   200

int template_table_for(const char *logical, char *set, size_t set_len, char *key, size_t key_len,
                       struct template_table *out)
{
    static const struct {
        const char *logical, *set, *key;
    } known[] = {
        {"contact", "contacts", "contactid"},
        {"account", "accounts", "accountid"},
        {"lead", "leads", "leadid"},
        {"systemuser", "systemusers", "systemuserid"},
        {"smsys_sms", "smsys_smses", "activityid"},
        {"incident", "incidents", "incidentid"},
    };
    if (!logical || !*logical || strlen(logical) > 100)
        return -EINVAL;
    for (const char *p = logical; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return -EINVAL;
    int a = -1, b = -1;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(known[i].logical, logical) == 0) {
            a = snprintf(set, set_len, "%s", known[i].set);
            b = snprintf(key, key_len, "%s", known[i].key);
            break;
        }
    if (a < 0) {
        a = snprintf(set, set_len, "%ss", logical);
        b = snprintf(key, key_len, "%sid", logical);
    }
    if ((size_t)a >= set_len || (size_t)b >= key_len)
        return -EINVAL;
    out->entity_set = set;
    out->key = key;
    out->logical = logical;
    return 0;
}

/* ---- batch rendering ---- */

struct tb {
    struct dv_client *dv;
    const struct template *t;
    const struct template_table *tbl;
    const char *const *ids;
    size_t n, at, chunk; /* ids[at .. at+chunk) is the batch in flight */
    unsigned bs;
    template_row_cb row_cb;
    template_batch_done_cb done_cb;
    void *ud;
    struct template_batch_stats st;
    cJSON *rows;     /* recipients of the batch (copies) */
    cJSON **relrows; /* per relation: related rows of the batch */
    size_t rel_i;    /* relation being read */
    struct smsys_err err;
};

static void tb_finish(struct tb *b, int rc)
{
    b->done_cb(rc, &b->st, &b->err, b->ud);
    cJSON_Delete(b->rows);
    for (size_t i = 0; b->relrows && i < b->t->nrels; i++)
        cJSON_Delete(b->relrows[i]);
    free(b->relrows);
    free(b);
}

static int collect_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    cJSON *into = ud;
    const cJSON *r;
    (void)page;
    cJSON_ArrayForEach(r, rows)
    {
        cJSON *c = cJSON_Duplicate(r, 1);
        if (!c || !cJSON_AddItemToArray(into, c)) {
            cJSON_Delete(c);
            return -ENOMEM;
        }
    }
    return DV_PAGE_CONTINUE;
}

static int tb_start(struct tb *b);
static void tb_relation(struct tb *b);
static int page_cb(const cJSON *rows, const cJSON *page, void *ud);

/* Next batch, from a callback: failures end the whole run. */
static void tb_next(struct tb *b)
{
    if (b->at >= b->n) {
        tb_finish(b, 0);
        return;
    }
    int rc = tb_start(b);
    if (rc < 0)
        tb_finish(b, rc);
}

static const cJSON *find_by(const cJSON *arr, const char *col, const char *id)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, arr)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, col);
        if (cJSON_IsString(v) && strcasecmp(v->valuestring, id) == 0)
            return r;
    }
    return NULL;
}

static void tb_render(struct tb *b)
{
    const struct template *t = b->t;
    const cJSON *rel[8] = {0};
    char lk[112];
    struct buf out = BUF_INIT;
    for (size_t i = 0; i < b->chunk; i++) {
        const char *id = b->ids[b->at + i];
        const cJSON *row = find_by(b->rows, b->tbl->key, id);
        struct smsys_err err = {0};
        int rc;
        if (!row) {
            rc = smsys_err_set(&err, SMSYS_ENOTFOUND, "%s %s does not exist",
                               b->tbl->logical ? b->tbl->logical : b->tbl->entity_set, id);
        } else {
            for (size_t k = 0; k < t->nrels && k < 8; k++) {
                const char *key = template_relation_key(t, k, row, b->tbl->key);
                snprintf(lk, sizeof(lk), "_%s_value", t->rels[k].lookup);
                /* rows come in the relation's order: the first match wins */
                rel[k] = key ? find_by(b->relrows[k], lk, key) : NULL;
            }
            buf_reset(&out);
            rc = template_render(t, row, rel, &out, NULL, &err);
        }
        if (rc == 0)
            b->st.rendered++;
        else
            b->st.failed++;
        b->row_cb(id, rc, rc == 0 ? out.data : NULL, rc == 0 ? out.len : 0, &err, b->ud);
    }
    buf_free(&out);
    b->at += b->chunk;
    b->chunk = 0;
    tb_next(b);
}

/* A GET of the batch has answered: counts its requests; on failure keeps
 * the error and finishes the batch. Returns 1 when finished. */
static int tb_answered(struct tb *b, int rc, unsigned pages, const struct smsys_err *err)
{
    b->st.requests += pages ? pages : 1;
    if (rc < 0) {
        if (err)
            b->err = *err;
        tb_finish(b, rc);
        return 1;
    }
    return 0;
}

static void rel_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                        void *ud)
{
    struct tb *b = ud;
    (void)delta;
    if (tb_answered(b, rc, pages, err))
        return;
    b->rel_i++;
    tb_relation(b);
}

/* GET the related rows of relation rel_i for the batch's keys. */
static void tb_relation(struct tb *b)
{
    const struct template *t = b->t;
    while (b->rel_i < t->nrels) {
        struct template_relation_info ri;
        struct buf f = BUF_INIT, q = BUF_INIT;
        int rc = template_relation(t, b->rel_i, &ri);
        size_t nkeys = 0;
        const cJSON *r;
        if (rc == 0)
            rc = buf_putc(&f, '(');
        cJSON_ArrayForEach(r, b->rows)
        {
            const char *key = template_relation_key(t, b->rel_i, r, b->tbl->key);
            if (!key || rc < 0)
                continue;
            /* recipients often share the row the relation hangs off (one
             * account, many contacts): ask for each key once */
            struct buf g = BUF_INIT;
            int gr = odata_lit_guid(&g, key);
            if (gr == 0 && !(f.data && strstr(f.data, g.data))) {
                rc = buf_printf(&f, "%s_%s_value eq %s", nkeys ? " or " : "", ri.lookup, g.data);
                if (rc == 0)
                    nkeys++;
            } else if (gr == -ENOMEM) {
                rc = gr;
            } /* not a GUID: nothing can match it */
            buf_free(&g);
        }
        if (rc == 0)
            rc = buf_putc(&f, ')');
        if (rc == 0 && ri.where)
            rc = buf_printf(&f, " and (%s)", ri.where);
        if (rc == 0)
            rc = buf_puts(&q, ri.entity_set);
        if (rc == 0)
            rc = odata_query_add(&q, "$select", ri.select);
        if (rc == 0 && ri.expand[0])
            rc = odata_query_add(&q, "$expand", ri.expand);
        if (rc == 0)
            rc = odata_query_add(&q, "$filter", f.data);
        if (rc == 0 && ri.orderby[0])
            rc = odata_query_add(&q, "$orderby", ri.orderby);
        if (rc == 0 && nkeys)
            rc = dv_get_all(b->dv, q.data, ANNOTATIONS, 0, page_cb, rel_done_cb, b);
        buf_free(&f);
        buf_free(&q);
        if (rc < 0) {
            smsys_err_set(&b->err, rc, "cannot query %s: %s", ri.entity_set, smsys_strerror(rc));
            tb_finish(b, rc);
            return;
        }
        if (nkeys)
            return; /* rel_done_cb continues */
        b->rel_i++;
    }
    tb_render(b);
}

static void base_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                         void *ud)
{
    struct tb *b = ud;
    (void)delta;
    if (tb_answered(b, rc, pages, err))
        return;
    b->rel_i = 0;
    tb_relation(b);
}

/* Both queries' pages: rows go to the recipients (rel_i == -1) or to the
 * relation being read. */
static int page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct tb *b = ud;
    return collect_cb(rows, page, b->rel_i == (size_t)-1 ? b->rows : b->relrows[b->rel_i]);
}

/* Sends the GET of the recipients ids[at..at+chunk). Returns 0 or the
 * error (b->err filled), having called nothing. */
static int tb_start(struct tb *b)
{
    b->chunk = b->n - b->at < b->bs ? b->n - b->at : b->bs;
    cJSON_Delete(b->rows);
    b->rows = cJSON_CreateArray();
    int rc = b->rows ? 0 : -ENOMEM;
    for (size_t i = 0; i < b->t->nrels && rc == 0; i++) {
        cJSON_Delete(b->relrows[i]);
        if (!(b->relrows[i] = cJSON_CreateArray()))
            rc = -ENOMEM;
    }
    struct buf sel = BUF_INIT, exp = BUF_INIT, f = BUF_INIT, q = BUF_INIT;
    if (rc == 0)
        rc = template_plan_select(b->t, b->tbl->key, &sel, &exp);
    for (size_t i = 0; i < b->chunk && rc == 0; i++) {
        rc = buf_printf(&f, "%s%s eq ", i ? " or " : "", b->tbl->key);
        if (rc == 0)
            rc = odata_lit_guid(&f, b->ids[b->at + i]);
    }
    if (rc == 0)
        rc = buf_puts(&q, b->tbl->entity_set);
    if (rc == 0)
        rc = odata_query_add(&q, "$select", sel.data);
    if (rc == 0 && exp.len)
        rc = odata_query_add(&q, "$expand", exp.data);
    if (rc == 0)
        rc = odata_query_add(&q, "$filter", f.data);
    b->rel_i = (size_t)-1;
    if (rc == 0)
        rc = dv_get_all(b->dv, q.data, ANNOTATIONS, 0, page_cb, base_done_cb, b);
    buf_free(&sel);
    buf_free(&exp);
    buf_free(&f);
    buf_free(&q);
    if (rc < 0)
        smsys_err_set(&b->err, rc, "cannot query %s: %s", b->tbl->entity_set, smsys_strerror(rc));
    return rc;
}

int template_render_batch(struct dv_client *dv, const struct template *t,
                          const struct template_table *tbl, const char *const *ids, size_t n,
                          const struct template_batch_opts *opts, template_row_cb row_cb,
                          template_batch_done_cb done_cb, void *ud)
{
    if (!dv || !t || !tbl || !tbl->entity_set || !tbl->key || n == 0 || !ids || !row_cb ||
        !done_cb || t->nrels > 8)
        return -EINVAL;
    struct buf chk = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        buf_reset(&chk);
        if (odata_lit_guid(&chk, ids[i]) < 0) {
            buf_free(&chk);
            return -EINVAL;
        }
    }
    buf_free(&chk);
    struct tb *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    if (t->nrels && !(b->relrows = calloc(t->nrels, sizeof(*b->relrows)))) {
        free(b);
        return -ENOMEM;
    }
    b->dv = dv;
    b->t = t;
    b->tbl = tbl;
    b->ids = ids;
    b->n = n;
    b->bs = opts && opts->batch_size ? opts->batch_size : 100;
    if (b->bs > MAX_BATCH)
        b->bs = MAX_BATCH;
    b->row_cb = row_cb;
    b->done_cb = done_cb;
    b->ud = ud;
    int rc = tb_start(b);
    if (rc < 0) {
        b->done_cb = NULL;
        cJSON_Delete(b->rows);
        for (size_t i = 0; b->relrows && i < t->nrels; i++)
            cJSON_Delete(b->relrows[i]);
        free(b->relrows);
        free(b);
    }
    return rc;
}

/* ---- validation against the server ---- */

struct tv {
    struct dv_client *dv;
    const struct template *t;
    const struct template_table *tbl;
    template_validate_cb cb;
    void *ud;
    size_t step; /* 0: the recipient's table, 1..nrels: relation step-1 */
};

static int tv_probe(struct tv *v);

/* The first placeholder whose path (on the recipient when rel == -1, else
 * on relation rel) names prop; *lookup says whether it is used as a lookup. */
static const struct tnode *find_prop(const struct tblock *b, int rel, const char *prop, int *lookup)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct tnode *n = &b->v[i];
        if ((n->kind == TN_VAR || n->kind == TN_IF) && n->path.rel == rel) {
            for (size_t k = rel >= 0 ? 1 : 0; k < n->path.n; k++)
                if (strcmp(n->path.seg[k], prop) == 0) {
                    *lookup = k + 1 < n->path.n;
                    return n;
                }
        }
        if (n->kind == TN_IF) {
            const struct tnode *r = find_prop(&n->then_b, rel, prop, lookup);
            if (!r)
                r = find_prop(&n->else_b, rel, prop, lookup);
            if (r)
                return r;
        }
    }
    return NULL;
}

/* "... Could not find a property named 'x' on type ..." -> x */
static int refused_prop(const char *detail, char *out, size_t len)
{
    const char *p = strstr(detail, "property named '");
    if (!p)
        return 0;
    p += strlen("property named '");
    const char *e = strchr(p, '\'');
    if (!e || (size_t)(e - p) >= len)
        return 0;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 1;
}

/* "... on type 'Microsoft.Dynamics.CRM.account'." -> account, else dflt */
static void refused_type(const char *detail, const char *dflt, char *out, size_t len)
{
    const char *p = strstr(detail, "on type 'Microsoft.Dynamics.CRM.");
    const char *e = p ? strchr(p + 32, '\'') : NULL;
    if (p && e && (size_t)(e - p - 32) < len) {
        memcpy(out, p + 32, (size_t)(e - p - 32));
        out[e - p - 32] = '\0';
    } else {
        snprintf(out, len, "%s", dflt);
    }
}

static void tv_fail(struct tv *v, int rc, const struct template_error *te,
                    const struct smsys_err *err)
{
    v->cb(rc, te, err, v->ud);
    free(v);
}

static int tv_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    (void)rows;
    (void)page;
    (void)ud;
    return DV_PAGE_STOP; /* one page answers the question */
}

static void tv_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *rerr,
                       void *ud)
{
    struct tv *v = ud;
    (void)delta;
    (void)pages;
    const char *detail = rerr ? rerr->detail : "";
    const struct template *t = v->t;
    struct template_error te = {0};
    struct smsys_err err = {0};
    int rel = (int)v->step - 1;
    if (rc == 0) {
        v->step++;
        if (v->step > t->nrels) {
            v->cb(0, &te, &err, v->ud);
            free(v);
            return;
        }
        rc = tv_probe(v);
        if (rc == 0)
            return;
        smsys_err_set(&err, rc, "cannot query: %s", smsys_strerror(rc));
        v->cb(rc, &te, &err, v->ud);
        free(v);
        return;
    }
    char prop[128];
    const struct tpos whole = {0, 0};
    const struct tpos *relpos = rel >= 0 ? &t->rels[rel].pos : &whole;
    if (rc == SMSYS_EPROTO && refused_prop(detail, prop, sizeof(prop))) {
        char on[128];
        refused_type(detail, rel >= 0 ? t->rels[rel].set : v->tbl->entity_set, on, sizeof(on));
        int lookup = 0;
        const struct tnode *n = find_prop(&t->body, rel, prop, &lookup);
        for (size_t i = 0; !n && rel < 0 && i < t->nrels; i++) {
            const struct tpath *of = &t->rels[i].of;
            for (size_t k = 0; k < of->n; k++)
                if (strcmp(of->seg[k], prop) == 0) {
                    /* the `of` lookup of a {{let}}: named as the user wrote
                     * it, not as the Web API's _x_value column */
                    char shown[128];
                    size_t pl = strlen(prop);
                    if (pl > 7 && prop[0] == '_' && strcmp(prop + pl - 6, "_value") == 0)
                        snprintf(shown, sizeof(shown), "%.*s", (int)(pl - 7), prop + 1);
                    else
                        snprintf(shown, sizeof(shown), "%s", prop);
                    return tv_fail(v,
                                   tpl_error(t, &t->rels[i].pos, t->rels[i].pos.off,
                                             TE_UNKNOWN_LOOKUP, &te, &err,
                                             "lookup \"%s\" does not exist on %s", shown, on),
                                   &te, &err);
                }
        }
        if (n)
            rc = tpl_error(t, &n->pos, n->pos.off, lookup ? TE_UNKNOWN_LOOKUP : TE_UNKNOWN_COLUMN,
                           &te, &err, "%s \"%s\" does not exist on %s",
                           lookup ? "lookup" : "column", prop, on);
        else
            rc = tpl_error(t, relpos, relpos->off, rel >= 0 ? TE_RELATION : TE_UNKNOWN_COLUMN, &te,
                           &err, "\"%s\" does not exist on %s", prop, on);
    } else if (rel >= 0 && (rc == SMSYS_EPROTO || rc == SMSYS_ENOTFOUND)) {
        rc = tpl_error(t, relpos, relpos->off, TE_RELATION, &te, &err,
                       rc == SMSYS_ENOTFOUND ? "no table with the entity set name \"%s\""
                                             : "the server refused the relation %s: %s",
                       t->rels[rel].set, detail);
    } else {
        smsys_err_set(&err, rc, "%s", detail);
    }
    v->cb(rc, &te, &err, v->ud);
    free(v);
}

static int tv_probe(struct tv *v)
{
    const struct template *t = v->t;
    struct buf sel = BUF_INIT, exp = BUF_INIT, q = BUF_INIT;
    int rc;
    if (v->step == 0) {
        rc = template_plan_select(t, v->tbl->key, &sel, &exp);
        if (rc == 0)
            rc = buf_puts(&q, v->tbl->entity_set);
        if (rc == 0)
            rc = odata_query_add(&q, "$select", sel.data);
        if (rc == 0 && exp.len)
            rc = odata_query_add(&q, "$expand", exp.data);
    } else {
        struct template_relation_info ri;
        rc = template_relation(t, v->step - 1, &ri);
        if (rc == 0)
            rc = buf_puts(&q, ri.entity_set);
        if (rc == 0)
            rc = odata_query_add(&q, "$select", ri.select);
        if (rc == 0 && ri.expand[0])
            rc = odata_query_add(&q, "$expand", ri.expand);
        if (rc == 0 && ri.where)
            rc = odata_query_add(&q, "$filter", ri.where);
        if (rc == 0 && ri.orderby[0])
            rc = odata_query_add(&q, "$orderby", ri.orderby);
    }
    if (rc == 0)
        rc = odata_query_add(&q, "$top", "1");
    if (rc == 0)
        rc = dv_get_all(v->dv, q.data, NULL, 1, tv_page_cb, tv_done_cb, v);
    buf_free(&sel);
    buf_free(&exp);
    buf_free(&q);
    return rc;
}

int template_validate(struct dv_client *dv, const struct template *t,
                      const struct template_table *tbl, template_validate_cb cb, void *ud)
{
    if (!dv || !t || !tbl || !tbl->entity_set || !tbl->key || !cb)
        return -EINVAL;
    struct tv *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    *v = (struct tv){.dv = dv, .t = t, .tbl = tbl, .cb = cb, .ud = ud};
    int rc = tv_probe(v);
    if (rc < 0)
        free(v);
    return rc;
}
