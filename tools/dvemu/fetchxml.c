/* fetchxml.c - GET <set>?fetchXml=<fetch>...</fetch>: the subset dynamic
 * marketing lists need. A small strict XML reader (elements, attributes,
 * text, the five predefined entities; no DTD, no namespaces) builds a tree;
 * the tree becomes the same filter the OData path uses. Supported:
 * fetch(count, page, paging-cookie, top), entity, attribute, all-attributes,
 * order, filter(type and|or, nested), condition with eq ne gt ge lt le like
 * not-like begin-with end-with null not-null in not-in. link-entity and
 * aggregates are refused with a 400 naming them. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dvemu.h"
#include "smsys/util.h"

struct xml {
    const char *p;
    char err[200];
    int depth;
};

static void xerr(struct xml *x, const char *m)
{
    if (!x->err[0])
        snprintf(x->err, sizeof(x->err), "%s", m);
}

static void xml_skip_ws(struct xml *x)
{
    while (isspace((unsigned char)*x->p))
        x->p++;
}

/* Decodes text up to stop into a new cJSON string (entities resolved). */
static char *xml_text(struct xml *x, char stop)
{
    struct buf b = BUF_INIT;
    while (*x->p && *x->p != stop) {
        if (*x->p == '&') {
            static const char *ents[][2] = {
                {"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}, {"&quot;", "\""}, {"&apos;", "'"}};
            int ok = 0;
            for (size_t i = 0; i < 5 && !ok; i++) {
                size_t n = strlen(ents[i][0]);
                if (strncmp(x->p, ents[i][0], n) == 0) {
                    buf_puts(&b, ents[i][1]);
                    x->p += n;
                    ok = 1;
                }
            }
            if (!ok) {
                xerr(x, "unsupported XML entity");
                buf_free(&b);
                return NULL;
            }
            continue;
        }
        if (*x->p == '<' && stop != '<') {
            xerr(x, "'<' in an attribute value");
            buf_free(&b);
            return NULL;
        }
        buf_putc(&b, *x->p++);
    }
    char *s = buf_steal(&b);
    return s;
}

static char *xml_name(struct xml *x)
{
    const char *st = x->p;
    while (isalnum((unsigned char)*x->p) || *x->p == '-' || *x->p == '_' || *x->p == ':' ||
           *x->p == '.')
        x->p++;
    if (x->p == st) {
        xerr(x, "XML name expected");
        return NULL;
    }
    return strndup(st, (size_t)(x->p - st));
}

/* Parses one element at x->p ('<' expected) into {"n","a","c","t"}. */
static cJSON *xml_element(struct xml *x)
{
    if (++x->depth > 32) {
        xerr(x, "XML nested too deeply");
        return NULL;
    }
    if (*x->p != '<') {
        xerr(x, "'<' expected");
        return NULL;
    }
    x->p++;
    char *name = xml_name(x);
    if (name == NULL)
        return NULL;
    cJSON *el = cJSON_CreateObject();
    cJSON_AddStringToObject(el, "n", name);
    cJSON *attrs = cJSON_AddObjectToObject(el, "a");
    cJSON *kids = cJSON_AddArrayToObject(el, "c");
    for (;;) {
        xml_skip_ws(x);
        if (x->p[0] == '/' && x->p[1] == '>') {
            x->p += 2;
            free(name);
            x->depth--;
            return el;
        }
        if (*x->p == '>') {
            x->p++;
            break;
        }
        char *an = xml_name(x);
        if (an == NULL)
            goto fail;
        xml_skip_ws(x);
        char q = x->p[1];
        if (*x->p != '=' || (q != '"' && q != '\'')) {
            free(an);
            xerr(x, "attribute value expected");
            goto fail;
        }
        x->p += 2;
        char *v = xml_text(x, q);
        if (v == NULL || *x->p != q) {
            free(an);
            free(v);
            xerr(x, "unterminated attribute value");
            goto fail;
        }
        x->p++;
        cJSON_AddStringToObject(attrs, an, v);
        free(an);
        free(v);
    }
    struct buf text = BUF_INIT;
    for (;;) {
        if (*x->p == '\0') {
            buf_free(&text);
            xerr(x, "unexpected end of XML");
            goto fail;
        }
        if (strncmp(x->p, "<!--", 4) == 0) {
            const char *e = strstr(x->p, "-->");
            if (e == NULL) {
                buf_free(&text);
                xerr(x, "unterminated comment");
                goto fail;
            }
            x->p = e + 3;
            continue;
        }
        if (x->p[0] == '<' && x->p[1] == '/') {
            x->p += 2;
            char *cn = xml_name(x);
            int same = cn && strcmp(cn, name) == 0;
            free(cn);
            xml_skip_ws(x);
            if (!same || *x->p != '>') {
                buf_free(&text);
                xerr(x, "mismatched closing tag");
                goto fail;
            }
            x->p++;
            break;
        }
        if (*x->p == '<') {
            cJSON *k = xml_element(x);
            if (k == NULL) {
                buf_free(&text);
                goto fail;
            }
            cJSON_AddItemToArray(kids, k);
            continue;
        }
        char *t = xml_text(x, '<');
        if (t == NULL) {
            buf_free(&text);
            goto fail;
        }
        buf_puts(&text, t);
        free(t);
    }
    cJSON_AddStringToObject(el, "t", text.data ? text.data : "");
    buf_free(&text);
    free(name);
    x->depth--;
    return el;
fail:
    free(name);
    cJSON_Delete(el);
    return NULL;
}

static const char *attr(const cJSON *el, const char *name)
{
    return cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(el, "a"), name));
}

static const char *ename(const cJSON *el)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(el, "n"));
}

struct fx {
    struct table *t;
    char err[300];
};

/* The stored key of a FetchXML attribute name, or NULL. */
static const char *fx_key(struct fx *f, const char *name, char *buf, size_t len)
{
    const struct column *c = name ? table_column(f->t, name) : NULL;
    if (c == NULL) {
        snprintf(f->err, sizeof(f->err), "'%s' entity doesn't contain attribute with Name = '%s'.",
                 f->t->logical, name ? name : "");
        return NULL;
    }
    if (c->type == CT_LOOKUP) {
        snprintf(buf, len, "_%s_value", name);
        return buf;
    }
    return name;
}

static struct fnode *fx_filter(struct fx *f, const cJSON *el);

static struct fnode *fx_condition(struct fx *f, const cJSON *el)
{
    char kb[160];
    const char *key = fx_key(f, attr(el, "attribute"), kb, sizeof(kb));
    const char *op = attr(el, "operator");
    const char *val = attr(el, "value");
    if (key == NULL)
        return NULL;
    if (op == NULL) {
        snprintf(f->err, sizeof(f->err), "condition without operator");
        return NULL;
    }
    cJSON *lit = cJSON_CreateString(val ? val : "");
    struct fnode *n = NULL;
    static const char *cmp[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    for (size_t i = 0; i < 6; i++)
        if (strcmp(op, cmp[i]) == 0) {
            if (val == NULL)
                break;
            n = filter_cmp_new(op, key, lit);
        }
    if (n == NULL && (strcmp(op, "null") == 0 || strcmp(op, "not-null") == 0)) {
        cJSON *nl = cJSON_CreateNull();
        n = filter_cmp_new(op[0] == 'n' && op[1] == 'u' ? "eq" : "ne", key, nl);
        cJSON_Delete(nl);
    }
    if (n == NULL && val &&
        (strcmp(op, "like") == 0 || strcmp(op, "not-like") == 0 || strcmp(op, "begins-with") == 0 ||
         strcmp(op, "ends-with") == 0)) {
        size_t vl = strlen(val);
        int lead = vl && val[0] == '%', trail = vl > 1 && val[vl - 1] == '%';
        char core[512];
        snprintf(core, sizeof(core), "%.*s", (int)(vl - (size_t)lead - (size_t)trail), val + lead);
        if (strcmp(op, "begins-with") == 0)
            n = filter_func_new("startswith", key, core);
        else if (strcmp(op, "ends-with") == 0)
            n = filter_func_new("endswith", key, core);
        else if (lead && trail)
            n = filter_func_new("contains", key, core);
        else if (trail)
            n = filter_func_new("startswith", key, core);
        else if (lead)
            n = filter_func_new("endswith", key, core);
        else {
            cJSON *cl = cJSON_CreateString(core);
            n = filter_cmp_new("eq", key, cl);
            cJSON_Delete(cl);
        }
        if (strcmp(op, "not-like") == 0)
            n = filter_not_new(n);
    }
    if (n == NULL && (strcmp(op, "in") == 0 || strcmp(op, "not-in") == 0)) {
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(el, "c"))
        {
            if (strcmp(ename(k), "value") != 0)
                continue;
            cJSON *vl =
                cJSON_CreateString(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "t")));
            struct fnode *e1 = filter_cmp_new("eq", key, vl);
            cJSON_Delete(vl);
            n = n ? filter_bool_new(0, n, e1) : e1;
        }
        if (n == NULL) {
            snprintf(f->err, sizeof(f->err), "condition operator 'in' needs <value> elements");
            cJSON_Delete(lit);
            return NULL;
        }
        if (op[0] == 'n')
            n = filter_not_new(n);
    }
    cJSON_Delete(lit);
    if (n == NULL)
        snprintf(f->err, sizeof(f->err), "The condition operator '%s' is not supported by dvemu.",
                 op);
    return n;
}

static struct fnode *fx_filter(struct fx *f, const cJSON *el)
{
    const char *ty = attr(el, "type");
    int is_and = ty == NULL || strcmp(ty, "or") != 0;
    struct fnode *acc = NULL;
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(el, "c"))
    {
        struct fnode *n = NULL;
        if (strcmp(ename(k), "condition") == 0)
            n = fx_condition(f, k);
        else if (strcmp(ename(k), "filter") == 0)
            n = fx_filter(f, k);
        else
            continue;
        if (n == NULL) {
            filter_free(acc);
            return NULL;
        }
        acc = acc ? filter_bool_new(is_and, acc, n) : n;
    }
    if (acc == NULL) {
        /* an empty filter matches everything: "not (x eq null and x ne null)" is
         * overkill; an always-true comparison on the primary key will do */
        cJSON *nl = cJSON_CreateNull();
        acc = filter_cmp_new("ne", f->t->pk, nl);
        cJSON_Delete(nl);
    }
    return acc;
}

struct fx_order {
    char key[160];
    int desc;
};
static struct fx_order *g_ord;
static size_t g_nord;

static int fx_cmp(const void *a, const void *b)
{
    const struct row *x = *(struct row *const *)a, *y = *(struct row *const *)b;
    for (size_t i = 0; i < g_nord; i++) {
        int c = value_cmp(cJSON_GetObjectItemCaseSensitive(x->obj, g_ord[i].key),
                          cJSON_GetObjectItemCaseSensitive(y->obj, g_ord[i].key));
        if (c)
            return g_ord[i].desc ? -c : c;
    }
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

void fetchxml_run(struct emu *e, struct table *t, const char *xmltext, const struct api_req *q,
                  const struct prefer *pf, struct api_res *r)
{
    struct xml x = {.p = xmltext};
    xml_skip_ws(&x);
    if (strncmp(x.p, "<?xml", 5) == 0) {
        const char *end = strstr(x.p, "?>");
        x.p = end ? end + 2 : x.p;
        xml_skip_ws(&x);
    }
    cJSON *root = xml_element(&x);
    struct fx f = {.t = t};
    struct fnode *fn = NULL;
    cJSON *sel = NULL;
    struct fx_order ord[16];
    size_t nord = 0;
    struct row **m = NULL;
    if (root == NULL) {
        api_error(r, 400, "0x80041103", "Invalid XML in fetchXml: %s.", x.err);
        goto done;
    }
    xml_skip_ws(&x);
    if (*x.p || strcmp(ename(root), "fetch") != 0) {
        api_error(r, 400, "0x80041103", "The fetchXml root element must be <fetch>.");
        goto done;
    }
    const cJSON *ent = NULL, *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(
                              root, "c")) if (strcmp(ename(k), "entity") == 0) ent = k;
    if (ent == NULL || attr(ent, "name") == NULL || strcmp(attr(ent, "name"), t->logical) != 0) {
        api_error(r, 400, "0x80041103",
                  "The entity name specified in FetchXml does not match the entity name in the "
                  "URL (%s).",
                  t->logical);
        goto done;
    }
    if (attr(root, "aggregate")) {
        api_error(r, 400, "0x80041103", "FetchXML aggregates are not supported by dvemu.");
        goto done;
    }
    int all = 0;
    sel = cJSON_CreateArray();
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(ent, "c"))
    {
        const char *n = ename(k);
        char kb[160];
        if (strcmp(n, "attribute") == 0) {
            const char *key = fx_key(&f, attr(k, "name"), kb, sizeof(kb));
            if (key == NULL) {
                api_error(r, 400, "0x80041103", "%s", f.err);
                goto done;
            }
            cJSON_AddItemToArray(sel, cJSON_CreateString(key));
        } else if (strcmp(n, "all-attributes") == 0) {
            all = 1;
        } else if (strcmp(n, "filter") == 0) {
            struct fnode *ff = fx_filter(&f, k);
            if (ff == NULL) {
                api_error(r, 400, "0x80041103", "%s", f.err);
                goto done;
            }
            fn = fn ? filter_bool_new(1, fn, ff) : ff;
        } else if (strcmp(n, "order") == 0 && nord < 16) {
            const char *key = fx_key(&f, attr(k, "attribute"), kb, sizeof(kb));
            if (key == NULL) {
                api_error(r, 400, "0x80041103", "%s", f.err);
                goto done;
            }
            snprintf(ord[nord].key, sizeof(ord[nord].key), "%s", key);
            const char *d = attr(k, "descending");
            ord[nord++].desc = d && strcmp(d, "true") == 0;
        } else if (strcmp(n, "link-entity") == 0) {
            api_error(r, 400, "0x80041103",
                      "link-entity is not supported by dvemu (conditions must be on columns of "
                      "the queried table).");
            goto done;
        }
    }
    if (all || cJSON_GetArraySize(sel) == 0) {
        cJSON_Delete(sel);
        sel = NULL;
    }
    long long count = 0, page = 1, top = 0;
    const char *cs = attr(root, "count"), *ps = attr(root, "page"), *ts = attr(root, "top");
    if ((cs && util_parse_int(cs, 1, 5000, &count)) ||
        (ps && util_parse_int(ps, 1, 1 << 30, &page)) ||
        (ts && util_parse_int(ts, 1, 5000, &top))) {
        api_error(r, 400, "0x80041103", "Invalid count, page or top attribute in fetchXml.");
        goto done;
    }
    size_t nm = filter_rows(t, fn, &m);
    if (nord && nm > 1) {
        g_ord = ord;
        g_nord = nord;
        qsort(m, nm, sizeof(*m), fx_cmp);
    }
    if (top && (size_t)top < nm)
        nm = (size_t)top;
    size_t psize = count ? (size_t)count : (size_t)pf->maxpagesize;
    size_t start = (size_t)(page - 1) * psize;
    if (start > nm)
        start = nm;
    size_t end = start + psize < nm ? start + psize : nm;
    int more = end < nm;
    cJSON *out = cJSON_CreateObject();
    char ctx[512];
    snprintf(ctx, sizeof(ctx), "%s$metadata#%s", q->base, t->set);
    cJSON_AddStringToObject(out, "@odata.context", ctx);
    if (count || page > 1 || more) {
        char cookie[600];
        const char *first = end > start ? m[start]->id : "";
        const char *last = end > start ? m[end - 1]->id : "";
        snprintf(cookie, sizeof(cookie),
                 "<cookie pagenumber=\"%lld\" pagingcookie=\"%%253ccookie%%2520page%%253d%%2522%lld"
                 "%%2522%%253e%%253c%s%%253e%%253cfirst%%253e%%257b%s%%257d%%253c%%252f"
                 "first%%253e%%253clast%%253e%%257b%s%%257d%%253c%%252flast%%253e%%253c%%252f"
                 "%s%%253e%%253c%%252fcookie%%253e\" istracking=\"False\" />",
                 page + 1, page, t->pk, first, last, t->pk);
        cJSON_AddStringToObject(out, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie", cookie);
        cJSON_AddBoolToObject(out, "@Microsoft.Dynamics.CRM.morerecords", more);
    }
    cJSON *val = cJSON_AddArrayToObject(out, "value");
    for (size_t i = start; i < end; i++)
        cJSON_AddItemToArray(val, render_row(e, t, m[i], sel, pf->annotations, 1));
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    r->status = 200;
    r->ctype = "application/json; odata.metadata=minimal";
    buf_reset(&r->body);
    buf_puts(&r->body, s ? s : "{}");
    free(s);
    api_hdr(r, "OData-Version", "4.0");
    prefer_applied(pf, r, 0, 0);
done:
    free(m);
    filter_free(fn);
    cJSON_Delete(sel);
    cJSON_Delete(root);
}
