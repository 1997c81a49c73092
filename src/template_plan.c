/* template_plan.c - the query plan of a compiled template: exactly the
 * columns and lookups its placeholders name, as $select/$expand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

void tsel_free(struct tsel *s)
{
    for (size_t i = 0; i < s->ncols; i++)
        free(s->cols[i]);
    free(s->cols);
    for (size_t i = 0; i < s->nexp; i++) {
        free(s->exp[i].nav);
        tsel_free(&s->exp[i].sel);
    }
    free(s->exp);
    memset(s, 0, sizeof(*s));
}

int tsel_add_path(struct tsel *s, char *const *seg, size_t n)
{
    if (n == 1) {
        for (size_t i = 0; i < s->ncols; i++)
            if (strcmp(s->cols[i], seg[0]) == 0)
                return 0;
        char **nc = realloc(s->cols, (s->ncols + 1) * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        s->cols = nc;
        if (!(s->cols[s->ncols] = strdup(seg[0])))
            return -ENOMEM;
        s->ncols++;
        return 0;
    }
    for (size_t i = 0; i < s->nexp; i++)
        if (strcmp(s->exp[i].nav, seg[0]) == 0)
            return tsel_add_path(&s->exp[i].sel, seg + 1, n - 1);
    struct texp *ne = realloc(s->exp, (s->nexp + 1) * sizeof(*ne));
    if (!ne)
        return -ENOMEM;
    s->exp = ne;
    struct texp *x = &s->exp[s->nexp];
    memset(x, 0, sizeof(*x));
    if (!(x->nav = strdup(seg[0])))
        return -ENOMEM;
    s->nexp++;
    return tsel_add_path(&x->sel, seg + 1, n - 1);
}

static int write_expand(const struct tsel *s, struct buf *expand)
{
    int rc = 0;
    for (size_t i = 0; i < s->nexp && rc == 0; i++) {
        const struct texp *x = &s->exp[i];
        if (i)
            rc = buf_putc(expand, ',');
        if (rc == 0)
            rc = buf_printf(expand, "%s($select=", x->nav);
        for (size_t j = 0; j < x->sel.ncols && rc == 0; j++)
            rc = buf_printf(expand, "%s%s", j ? "," : "", x->sel.cols[j]);
        if (rc == 0 && x->sel.ncols == 0)
            rc = buf_puts(expand, "createdon"); /* a lookup only used for deeper lookups */
        if (rc == 0 && x->sel.nexp) {
            rc = buf_puts(expand, ";$expand=");
            if (rc == 0)
                rc = write_expand(&x->sel, expand);
        }
        if (rc == 0)
            rc = buf_putc(expand, ')');
    }
    return rc;
}

int tsel_write(const struct tsel *s, struct buf *select, struct buf *expand)
{
    int rc = 0;
    for (size_t i = 0; i < s->ncols && rc == 0; i++)
        rc = buf_printf(select, "%s%s", select->len ? "," : "", s->cols[i]);
    if (rc == 0)
        rc = write_expand(s, expand);
    return rc;
}

int template_plan_select(const struct template *t, const char *key, struct buf *select,
                         struct buf *expand)
{
    int rc = buf_puts(select, key);
    if (rc == 0)
        rc = tsel_write(&t->root, select, expand);
    if (rc == 0 && !select->data)
        rc = buf_puts(select, "");
    if (rc == 0 && !expand->data)
        rc = buf_puts(expand, "");
    return rc;
}

size_t template_relations(const struct template *t)
{
    return t->nrels;
}

int template_relation(const struct template *t, size_t i, struct template_relation_info *out)
{
    if (i >= t->nrels)
        return -EINVAL;
    const struct trel *r = &t->rels[i];
    memset(out, 0, sizeof(*out));
    out->alias = r->alias;
    out->entity_set = r->set;
    out->lookup = r->lookup;
    out->where = r->where;
    struct buf s = BUF_INIT, e = BUF_INIT;
    int rc = buf_printf(&s, "_%s_value", r->lookup);
    if (rc == 0)
        rc = tsel_write(&t->relsel[i], &s, &e);
    if (rc == 0 && (s.len >= sizeof(out->select) || e.len >= sizeof(out->expand)))
        rc = -E2BIG;
    if (rc == 0) {
        memcpy(out->select, s.data, s.len + 1);
        if (e.len)
            memcpy(out->expand, e.data, e.len + 1);
    }
    buf_free(&s);
    buf_free(&e);
    if (rc == 0 && r->by)
        snprintf(out->orderby, sizeof(out->orderby), "%s %s", r->by, r->desc ? "desc" : "asc");
    return rc;
}

const char *template_relation_key(const struct template *t, size_t i, const cJSON *row,
                                  const char *key)
{
    if (i >= t->nrels || !row)
        return NULL;
    const struct trel *r = &t->rels[i];
    const cJSON *o = row;
    const char *col = key;
    if (r->of.n) {
        for (size_t k = 0; k + 1 < r->of.n; k++) {
            o = cJSON_GetObjectItemCaseSensitive(o, r->of.seg[k]);
            if (!cJSON_IsObject(o))
                return NULL;
        }
        col = r->of.seg[r->of.n - 1];
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, col);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}
