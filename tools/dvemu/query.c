/* query.c - reads: collections with $filter/$orderby/$top/$count and
 * server-driven paging (Prefer: odata.maxpagesize, opaque $skiptoken),
 * single rows, N:N member lists, and change tracking
 * (Prefer: odata.track-changes, $deltatoken). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/util.h"
#include <time.h>

struct order {
    char *key;
    int desc;
};

static struct order *g_order; /* qsort has no context argument in C11 */
static size_t g_norder;

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = *(struct row *const *)a, *y = *(struct row *const *)b;
    for (size_t i = 0; i < g_norder; i++) {
        int c = value_cmp(cJSON_GetObjectItemCaseSensitive(x->obj, g_order[i].key),
                          cJSON_GetObjectItemCaseSensitive(y->obj, g_order[i].key));
        if (c)
            return g_order[i].desc ? -c : c;
    }
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int parse_orderby(const struct table *t, const char *s, struct order **out, size_t *n,
                         struct api_res *r)
{
    *out = NULL;
    *n = 0;
    if (s == NULL || *s == '\0')
        return 0;
    char *dup = strdup(s), *save = NULL;
    struct order *o = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *sp = strchr(tok, ' ');
        int desc = 0;
        if (sp) {
            *sp++ = '\0';
            while (*sp == ' ')
                sp++;
            desc = strcmp(sp, "desc") == 0;
        }
        const struct column *c;
        if (select_key(t, tok, &c) == NULL) {
            api_error(r, 400, "0x0",
                      "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.",
                      tok, t->logical);
            for (size_t i = 0; i < *n; i++)
                free(o[i].key);
            free(o);
            free(dup);
            *n = 0;
            return -EINVAL;
        }
        struct order *no = realloc(o, (*n + 1) * sizeof(*o));
        if (no == NULL)
            break;
        o = no;
        o[*n].key = strdup(tok);
        o[*n].desc = desc;
        (*n)++;
    }
    free(dup);
    *out = o;
    return 0;
}

/* Rebuilds the query string without the named parameters. */
static void query_without(struct buf *b, const char *query, const char *const *drop, size_t nd)
{
    const char *p = query ? query : "";
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        int skip = 0;
        for (size_t i = 0; i < nd; i++) {
            size_t dl = strlen(drop[i]);
            if (len >= dl && strncmp(p, drop[i], dl) == 0 && (p[dl] == '=' || len == dl))
                skip = 1;
        }
        if (!skip && len) {
            if (b->len)
                buf_putc(b, '&');
            buf_append(b, p, len);
        }
        p += len;
        if (*p == '&')
            p++;
    }
}

static void context_url(struct buf *b, const struct api_req *q, const struct table *t,
                        const char *sel)
{
    buf_printf(b, "%s$metadata#%s", q->base, t->set);
    if (sel && *sel)
        buf_printf(b, "(%s)", sel);
}

static void send_json(struct api_res *r, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    r->status = status;
    r->ctype = "application/json; odata.metadata=minimal";
    buf_reset(&r->body);
    if (s)
        buf_puts(&r->body, s);
    free(s);
    api_hdr(r, "OData-Version", "4.0");
}

static int skiptoken_pos(const char *tok, size_t *pos)
{
    const char *p = strstr(tok, "pos=\"");
    if (p == NULL)
        return -EINVAL;
    char *end;
    unsigned long long v = strtoull(p + 5, &end, 10);
    if (*end != '"')
        return -EINVAL;
    *pos = (size_t)v;
    return 0;
}

/* Tracked reads page like any other (maxpagesize, $skiptoken); the
 * deltaLink comes with the last page and carries the store version of the
 * first one, so changes made while paging are not lost. */
static void track_changes(struct emu *e, struct table *t, const struct api_req *q,
                          const struct prefer *pf, cJSON *sel, const char *selstr, const char *dtok,
                          const char *skip, struct api_res *r)
{
    uint64_t since = 0, snap = e->store.version;
    size_t pos = 0;
    if (skip) {
        const char *vp = strstr(skip, "ver=\"");
        if (skiptoken_pos(skip, &pos) != 0 || vp == NULL) {
            api_error(r, 400, "0x80040203", "Invalid $skiptoken.");
            return;
        }
        snap = strtoull(vp + 5, NULL, 10);
    }
    if (dtok) {
        char *end;
        unsigned long long v = strtoull(dtok, &end, 10);
        if (end == dtok || (*end != '\0' && *end != '!')) {
            api_error(r, 400, "0x80044352", "The delta token is invalid or has expired.");
            return;
        }
        since = v;
        int mo, d, y, h, mi, se;
        if (*end == '!' && sscanf(end + 1, "%d/%d/%d %d:%d:%d", &mo, &d, &y, &h, &mi, &se) == 6) {
            struct tm tm = {.tm_year = y - 1900,
                            .tm_mon = mo - 1,
                            .tm_mday = d,
                            .tm_hour = h,
                            .tm_min = mi,
                            .tm_sec = se};
            if ((long long)(time(NULL) - timegm(&tm)) > e->delta_ttl_s) {
                api_error(r, 400, "0x80044352",
                          "The delta token has expired (older than %lld seconds); read the "
                          "table again without it.",
                          e->delta_ttl_s);
                return;
            }
        }
    }
    cJSON *out = cJSON_CreateObject();
    struct buf ctx = BUF_INIT;
    context_url(&ctx, q, t, selstr);
    if (dtok)
        buf_puts(&ctx, "/$delta");
    cJSON_AddStringToObject(out, "@odata.context", ctx.data);
    cJSON *val = cJSON_AddArrayToObject(out, "value");
    size_t got = 0, i = pos;
    int more = 0;
    for (; i < t->nrows_slots; i++) {
        struct row *row = t->rows[i];
        if (row == NULL || row->version <= since)
            continue;
        if (got == (size_t)pf->maxpagesize) {
            more = 1;
            break;
        }
        cJSON_AddItemToArray(val, render_row(e, t, row, sel, pf->annotations, 0));
        got++;
    }
    if (more) {
        struct buf link = BUF_INIT, rest = BUF_INIT;
        static const char *drop_skip[] = {"$skiptoken"};
        query_without(&rest, q->query, drop_skip, 1);
        buf_printf(&link, "%s%s?%s%s", q->base, t->set, rest.data ? rest.data : "",
                   rest.len ? "&" : "");
        buf_printf(&link,
                   "$skiptoken=%%3Ccookie%%20pos%%3D%%22%zu%%22%%20ver%%3D%%22%llu%%22%%20/%%3E", i,
                   (unsigned long long)snap);
        cJSON_AddStringToObject(out, "@odata.nextLink", link.data);
        buf_free(&link);
        buf_free(&rest);
        buf_free(&ctx);
        send_json(r, 200, out);
        prefer_applied(pf, r, pf->page_asked, 1);
        cJSON_Delete(out);
        return;
    }
    if (dtok) {
        for (size_t k = 0; k < t->ntomb; k++) {
            if (t->tomb[k].version <= since)
                continue;
            cJSON *d = cJSON_CreateObject();
            struct buf dc = BUF_INIT;
            buf_printf(&dc, "%s$metadata#%s/$deletedEntity", q->base, t->set);
            cJSON_AddStringToObject(d, "@odata.context", dc.data);
            buf_free(&dc);
            cJSON_AddStringToObject(d, "id", t->tomb[k].id);
            cJSON_AddStringToObject(d, "reason", "deleted");
            cJSON_AddItemToArray(val, d);
        }
    }
    struct buf link = BUF_INIT;
    static const char *drop[] = {"$deltatoken", "$skiptoken"};
    buf_printf(&link, "%s%s?", q->base, t->set);
    struct buf rest = BUF_INIT;
    query_without(&rest, q->query, drop, 2);
    if (rest.len)
        buf_printf(&link, "%s&", rest.data);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%m%%2f%d%%2f%Y%%20%H%%3a%M%%3a%S", &tm);
    buf_printf(&link, "$deltatoken=%llu%%21%s", (unsigned long long)snap, when);
    cJSON_AddStringToObject(out, "@odata.deltaLink", link.data);
    buf_free(&link);
    buf_free(&rest);
    buf_free(&ctx);
    send_json(r, 200, out);
    prefer_applied(pf, r, pf->page_asked, 1);
    cJSON_Delete(out);
}

static const char *const known_params[] = {"$select",    "$filter",     "$orderby",
                                           "$top",       "$expand",     "$count",
                                           "$skiptoken", "$deltatoken", "fetchXml"};

static int check_params(const struct api_req *q, struct api_res *r)
{
    const char *p = q->query ? q->query : "";
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nl = eq ? (size_t)(eq - p) : len;
        if (nl && p[0] == '$') {
            int ok = 0;
            for (size_t i = 0; i < sizeof(known_params) / sizeof(known_params[0]); i++)
                if (strlen(known_params[i]) == nl && strncmp(p, known_params[i], nl) == 0)
                    ok = 1;
            if (!ok) {
                api_error(r, 400, "0x0", "The query parameter %.*s is not supported", (int)nl, p);
                return -EINVAL;
            }
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return 0;
}

void query_collection(struct emu *e, struct table *t, const struct api_req *q,
                      const struct prefer *pf, struct api_res *r)
{
    if (check_params(q, r))
        return;
    char *fx = query_param(q->query, "fetchXml");
    if (fx) {
        fetchxml_run(e, t, fx, q, pf, r);
        free(fx);
        return;
    }
    char *selstr = query_param(q->query, "$select");
    char *filt = query_param(q->query, "$filter");
    char *ord = query_param(q->query, "$orderby");
    char *top = query_param(q->query, "$top");
    char *exp = query_param(q->query, "$expand");
    char *cnt = query_param(q->query, "$count");
    char *skip = query_param(q->query, "$skiptoken");
    char *dtok = query_param(q->query, "$deltatoken");
    cJSON *sel = NULL;
    struct fnode *fn = NULL;
    struct order *o = NULL;
    size_t no = 0;
    struct expand *x = NULL;
    size_t nx = 0;
    struct row **m = NULL;
    cJSON *out = NULL;
    long long topv = -1;

    if (parse_select(t, selstr, &sel, r))
        goto done;
    if (pf->track_changes || dtok) {
        const char *bad = filt  ? "$filter"
                          : ord ? "$orderby"
                          : exp ? "$expand"
                          : top ? "$top"
                                : NULL;
        if (bad) {
            api_error(r, 400, "0x80060888",
                      "The query parameter %s is not supported with change tracking.", bad);
            goto done;
        }
        track_changes(e, t, q, pf, sel, selstr, dtok, skip, r);
        goto done;
    }
    if (filt) {
        char err[300];
        fn = filter_parse(t, filt, err, sizeof(err));
        if (fn == NULL) {
            api_error(r, 400, "0x0", "%s", err);
            goto done;
        }
    }
    if (parse_orderby(t, ord, &o, &no, r))
        goto done;
    if (top && util_parse_int(top, 0, 1000000000, &topv) != 0) {
        api_error(r, 400, "0x0", "Invalid value '%s' for $top query option found.", top);
        goto done;
    }
    if (parse_expand(e, t, exp, &x, &nx, r))
        goto done;
    size_t pos = 0;
    if (skip && skiptoken_pos(skip, &pos)) {
        api_error(r, 400, "0x80040203", "Invalid $skiptoken.");
        goto done;
    }
    int with_count = cnt && strcmp(cnt, "true") == 0;
    size_t page = (size_t)pf->maxpagesize;
    size_t limit = topv >= 0 ? (size_t)topv : (size_t)-1;
    size_t nm = 0, total = 0, next_pos = 0;
    int more = 0;
    if (no > 0 || with_count) {
        /* full scan: sort, then take a window at offset pos */
        nm = filter_rows(t, fn, &m);
        total = nm;
        if (no > 0 && nm > 1) {
            g_order = o;
            g_norder = no;
            qsort(m, nm, sizeof(*m), row_cmp);
        }
        if (nm > limit)
            nm = limit;
        size_t end = pos + page < nm ? pos + page : nm;
        if (pos > nm)
            pos = nm;
        if (end < nm) {
            more = 1;
            next_pos = end;
        }
        if (end > pos && pos > 0)
            memmove(m, m + pos, (end - pos) * sizeof(*m));
        nm = end - pos;
    } else {
        /* natural order: resume scanning at slot pos; O(page) per call */
        size_t want = page < limit ? page : limit;
        struct row **keyed = NULL;
        size_t nkeyed = 0;
        if (filter_rows_by_key(t, fn, &keyed, &nkeyed) == 0) {
            /* the key pins the rows: walk only them, same order and cookie */
            m = malloc((want + 1) * sizeof(*m));
            for (size_t i = 0; m && i < nkeyed; i++) {
                if (keyed[i]->slot < pos)
                    continue;
                if (nm == want) {
                    if (want < limit) {
                        more = 1;
                        next_pos = keyed[i]->slot;
                    }
                    break;
                }
                m[nm++] = keyed[i];
            }
            free(keyed);
        } else {
            m = malloc((want + 1) * sizeof(*m));
            for (size_t i = pos; m && i < t->nrows_slots; i++) {
                struct row *row = t->rows[i];
                if (row == NULL || (fn && !filter_eval(fn, row->obj)))
                    continue;
                if (nm == want) {
                    if (want < limit) {
                        more = 1;
                        next_pos = i;
                    }
                    break;
                }
                m[nm++] = row;
            }
        }
        /* with $top above the page size, the nextLink carries the rest of $top */
    }
    out = cJSON_CreateObject();
    struct buf ctx = BUF_INIT;
    context_url(&ctx, q, t, selstr);
    cJSON_AddStringToObject(out, "@odata.context", ctx.data);
    buf_free(&ctx);
    if (with_count)
        cJSON_AddNumberToObject(out, "@odata.count", (double)(total > 5000 ? 5000 : total));
    cJSON *val = cJSON_AddArrayToObject(out, "value");
    for (size_t i = 0; i < nm; i++) {
        cJSON *ro = render_row(e, t, m[i], sel, pf->annotations, 0);
        apply_expand(e, t, m[i], x, nx, ro, pf->annotations);
        cJSON_AddItemToArray(val, ro);
    }
    if (more) {
        struct buf link = BUF_INIT, rest = BUF_INIT;
        static const char *drop[] = {"$skiptoken"};
        query_without(&rest, q->query, drop, 1);
        buf_printf(&link, "%s%s?%s%s", q->base, t->set, rest.data ? rest.data : "",
                   rest.len ? "&" : "");
        buf_printf(
            &link,
            "$skiptoken=%%3Ccookie%%20pagenumber%%3D%%22%zu%%22%%20pos%%3D%%22%zu%%22%%20/%%3E",
            next_pos / (page ? page : 1) + 2, next_pos);
        cJSON_AddStringToObject(out, "@odata.nextLink", link.data);
        buf_free(&link);
        buf_free(&rest);
    }
    send_json(r, 200, out);
    prefer_applied(pf, r, pf->page_asked, 0);
done:
    cJSON_Delete(out);
    free(m);
    for (size_t i = 0; i < no; i++)
        free(o[i].key);
    free(o);
    expand_free(x, nx);
    filter_free(fn);
    cJSON_Delete(sel);
    free(selstr);
    free(filt);
    free(ord);
    free(top);
    free(exp);
    free(cnt);
    free(skip);
    free(dtok);
}

void query_one(struct emu *e, struct table *t, struct row *row, const struct api_req *q,
               const struct prefer *pf, struct api_res *r)
{
    char *selstr = query_param(q->query, "$select");
    char *exp = query_param(q->query, "$expand");
    cJSON *sel = NULL;
    struct expand *x = NULL;
    size_t nx = 0;
    if (parse_select(t, selstr, &sel, r) == 0 && parse_expand(e, t, exp, &x, &nx, r) == 0) {
        cJSON *out = render_row(e, t, row, sel, pf->annotations, 0);
        apply_expand(e, t, row, x, nx, out, pf->annotations);
        struct buf ctx = BUF_INIT;
        context_url(&ctx, q, t, selstr);
        buf_puts(&ctx, "/$entity");
        /* @odata.context goes first, as Dataverse writes it */
        cJSON *first = cJSON_CreateString(ctx.data);
        cJSON_AddItemToObject(out, "@odata.context", first);
        cJSON_DetachItemViaPointer(out, first);
        first->next = out->child;
        if (out->child) {
            first->prev = out->child->prev;
            out->child->prev = first;
        }
        out->child = first;
        buf_free(&ctx);
        send_json(r, 200, out);
        api_hdr(r, "ETag", "W/\"%llu\"", (unsigned long long)row->version);
        prefer_applied(pf, r, 0, 0);
        cJSON_Delete(out);
    }
    expand_free(x, nx);
    cJSON_Delete(sel);
    free(selstr);
    free(exp);
}

/* GET lists(<id>)/listcontact_association: the members, paged like any
 * collection (by position in the link list). */
void query_assoc(struct emu *e, struct table *lt, const struct assoc_def *a, const char *id,
                 const struct api_req *q, const struct prefer *pf, struct api_res *r)
{
    struct table *rt = store_by_logical(&e->store, a->right);
    if (rt == NULL || store_get(lt, id) == NULL) {
        api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", lt->logical, id);
        return;
    }
    char *selstr = query_param(q->query, "$select");
    char *skip = query_param(q->query, "$skiptoken");
    char *filt = query_param(q->query, "$filter");
    cJSON *sel = NULL;
    struct fnode *fn = NULL;
    size_t pos = 0;
    if (parse_select(rt, selstr, &sel, r))
        goto done;
    if (filt) {
        char err[300];
        fn = filter_parse(rt, filt, err, sizeof(err));
        if (fn == NULL) {
            api_error(r, 400, "0x0", "%s", err);
            goto done;
        }
    }
    if (skip && skiptoken_pos(skip, &pos)) {
        api_error(r, 400, "0x80040203", "Invalid $skiptoken.");
        goto done;
    }
    const struct linkset *ls = store_links(&e->store, a->nav, id);
    size_t n = ls ? ls->n : 0;
    cJSON *out = cJSON_CreateObject();
    struct buf ctx = BUF_INIT;
    context_url(&ctx, q, rt, selstr);
    cJSON_AddStringToObject(out, "@odata.context", ctx.data);
    buf_free(&ctx);
    cJSON *val = cJSON_AddArrayToObject(out, "value");
    size_t got = 0, i = pos;
    int more = 0;
    for (; i < n; i++) {
        struct row *row = store_get(rt, ls->ids[i]);
        if (row == NULL || (fn && !filter_eval(fn, row->obj)))
            continue;
        if (got == (size_t)pf->maxpagesize) {
            more = 1;
            break;
        }
        cJSON_AddItemToArray(val, render_row(e, rt, row, sel, pf->annotations, 0));
        got++;
    }
    if (more) {
        struct buf link = BUF_INIT, rest = BUF_INIT;
        static const char *drop[] = {"$skiptoken"};
        query_without(&rest, q->query, drop, 1);
        buf_printf(&link, "%s%s(%s)/%s?%s%s", q->base, lt->set, id, a->nav,
                   rest.data ? rest.data : "", rest.len ? "&" : "");
        buf_printf(&link, "$skiptoken=%%3Ccookie%%20pos%%3D%%22%zu%%22%%20/%%3E", i);
        cJSON_AddStringToObject(out, "@odata.nextLink", link.data);
        buf_free(&link);
        buf_free(&rest);
    }
    send_json(r, 200, out);
    prefer_applied(pf, r, pf->page_asked, 0);
    cJSON_Delete(out);
done:
    filter_free(fn);
    cJSON_Delete(sel);
    free(selstr);
    free(skip);
    free(filt);
}
