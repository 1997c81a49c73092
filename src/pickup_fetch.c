/* pickup_fetch.c - step 3 of a poll: the phone columns (and opt-out) of
 * every 'to' party with a row in a configured table, read per table with
 * up to PK_IDS_PER_GET ids per request, matched back by binary search. */
#include "pickup_int.h"

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/odata.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids per phone-column GET: keeps the URL near 4 KB. */
#define PK_IDS_PER_GET 100

struct fetch_ctx {
    struct pickup *p;
    const struct pk_table *tb;
    size_t first, n; /* its parties: ix.v[first .. first + n) */
};

static int party_key_cmp(const void *a, const void *b)
{
    const struct pk_party *x = *(const struct pk_party *const *)a;
    const struct pk_party *y = *(const struct pk_party *const *)b;
    int c = strcmp(x->table, y->table);
    return c ? c : strcmp(x->party_id, y->party_id);
}

static void apply_rows(struct pickup *p, const struct pk_table *tb, const cJSON *rows)
{
    struct party_index *ix = &p->ix;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(r, tb->key);
        if (!cJSON_IsString(idv))
            continue;
        struct pk_party key = {0};
        snprintf(key.table, sizeof(key.table), "%s", tb->table);
        snprintf(key.party_id, sizeof(key.party_id), "%s", idv->valuestring);
        for (char *c = key.party_id; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        struct pk_party *kp = &key;
        struct pk_party **hit = bsearch(&kp, ix->v, ix->n, sizeof(*ix->v), party_key_cmp);
        if (hit == NULL)
            continue;
        /* Several SMS may share a recipient: walk to the first equal. */
        while (hit > ix->v && party_key_cmp(hit - 1, &kp) == 0)
            hit--;
        for (; hit < ix->v + ix->n && party_key_cmp(hit, &kp) == 0; hit++)
            pk_party_resolve(*hit, tb, r, p->optout_column, p->country);
    }
}

static int fetch_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct fetch_ctx *c = ud;
    (void)page;
    apply_rows(c->p, c->tb, rows);
    return DV_PAGE_CONTINUE;
}

static void fetch_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                          void *ud)
{
    struct fetch_ctx *c = ud;
    struct pickup *p = c->p;
    (void)delta;
    p->res.requests += pages ? pages : 1;
    if (rc == SMSYS_EPROTO || rc == SMSYS_EPERM) {
        /* The configuration names a column Dynamics does not have, or the
         * application user may not read the table: a person must act, and
         * the record says so. */
        for (size_t i = c->first; i < c->first + c->n; i++) {
            struct pk_party *t = p->ix.v[i];
            if (t->number[0] || t->why)
                continue;
            t->failed = 1;
            t->why = pk_printf("cannot read the phone columns of table %s: %s", c->tb->table,
                               err ? err->detail : smsys_strerror(rc));
        }
    } else if (rc != 0) {
        pk_poll_fail(p, rc, err, "cannot read recipients");
    }
    free(c);
    pk_step_done(p);
}

static int fetch_chunk(struct pickup *p, const struct pk_table *tb, size_t first, size_t n)
{
    struct buf sel = BUF_INIT, flt = BUF_INIT, path = BUF_INIT;
    int rc = buf_puts(&sel, tb->key);
    for (size_t i = 0; i < tb->ncols && rc == 0; i++)
        rc = buf_printf(&sel, ",%s", tb->cols[i]);
    if (rc == 0 && tb->optout)
        rc = buf_printf(&sel, ",%s", p->optout_column);
    if (rc == 0)
        rc = buf_printf(&flt, "Microsoft.Dynamics.CRM.In(PropertyName='%s',PropertyValues=[",
                        tb->key);
    const char *last = NULL;
    for (size_t i = first; i < first + n && rc == 0; i++) {
        const char *id = p->ix.v[i]->party_id;
        if (last && strcmp(last, id) == 0)
            continue;
        rc = buf_printf(&flt, "%s'%s'", last ? "," : "", id);
        last = id;
    }
    if (rc == 0)
        rc = buf_puts(&flt, "])");
    if (rc == 0)
        rc = buf_puts(&path, tb->set);
    if (rc == 0)
        rc = odata_query_add(&path, "$select", sel.data);
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", flt.data);
    struct fetch_ctx *c = rc == 0 ? malloc(sizeof(*c)) : NULL;
    if (rc == 0 && c == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        *c = (struct fetch_ctx){p, tb, first, n};
        rc = dv_get_all(p->dv, path.data, NULL, 5000, fetch_page_cb, fetch_done_cb, c);
        if (rc != 0)
            free(c);
    }
    buf_free(&sel);
    buf_free(&flt);
    buf_free(&path);
    return rc;
}

void pk_fetch_parties(struct pickup *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nsms; i++)
        if (!p->sms[i].skip && !p->sms[i].fail)
            for (size_t k = 0; k < p->sms[i].nto; k++)
                n++;
    p->ix.v = calloc(n ? n : 1, sizeof(*p->ix.v));
    if (p->ix.v == NULL) {
        pk_poll_fail(p, -ENOMEM, NULL, "out of memory");
        pk_poll_end(p);
        return;
    }
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip || s->fail)
            continue;
        for (size_t k = 0; k < s->nto; k++)
            if (s->to[k].party_id[0] && s->to[k].why == NULL &&
                pk_tables_find(&p->tables, s->to[k].table))
                p->ix.v[p->ix.n++] = &s->to[k];
    }
    if (p->ix.n > 1)
        qsort(p->ix.v, p->ix.n, sizeof(*p->ix.v), party_key_cmp);
    p->stage = PK_FETCH;
    p->pending = 1; /* guard */
    size_t i = 0;
    while (i < p->ix.n && p->rc == 0) {
        const struct pk_table *tb = pk_tables_find(&p->tables, p->ix.v[i]->table);
        size_t j = i, distinct = 0;
        /* Up to PK_IDS_PER_GET distinct ids of one table per request. */
        while (j < p->ix.n && strcmp(p->ix.v[j]->table, tb->table) == 0) {
            if (j == i || strcmp(p->ix.v[j]->party_id, p->ix.v[j - 1]->party_id) != 0) {
                if (distinct == PK_IDS_PER_GET)
                    break;
                distinct++;
            }
            j++;
        }
        int rc = fetch_chunk(p, tb, i, j - i);
        if (rc != 0)
            pk_poll_fail(p, rc, NULL, "cannot read recipients");
        else
            p->pending++;
        i = j;
    }
    pk_step_done(p);
}
