/* bulk_expand.c - reading a bulk's audience one page at a time and
 * rendering its texts.
 *
 * A page is one request: a static list's members through
 * lists(<id>)/list<type>_association (followed by @odata.nextLink), a
 * dynamic list's FetchXML with page and paging-cookie added. Each page and
 * the checkpoint of the next one go to PostgreSQL in one transaction
 * (smsys_bulk_page), so a crash re-reads at most the page in flight and a
 * replayed page changes nothing.
 *
 * When the text needs only the member's own columns, they are selected on
 * the same page and the text is rendered right there (no extra request);
 * otherwise members are rendered afterwards in chunks with
 * template_render_batch (lookups and relations). */
#include "bulk_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/phone.h"
#include "smsys/text.h"

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* ---- numbers and texts ---------------------------------------------------- */

/* The member's number: the first phone column (in the configured order)
 * that is a mobile number; a foreign number counts as mobile (we cannot
 * tell). Returns the member status; why explains a skip. */
static int member_number(const struct bulk_engine *e, const struct pk_table *tb, const cJSON *row,
                         char out[PHONE_E164_MAX], char *why, size_t whylen)
{
    out[0] = '\0';
    if (tb->optout && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, e->o.optout_column))) {
        snprintf(why, whylen, "%s is set", e->o.optout_column);
        return BULK_M_DO_NOT_SMS;
    }
    int any = 0;
    why[0] = '\0';
    for (size_t i = 0; i < tb->ncols; i++) {
        const char *v = jstr(row, tb->cols[i]);
        if (v == NULL)
            continue;
        any = 1;
        char n[PHONE_E164_MAX];
        struct smsys_err err = {0};
        if (phone_normalize(v, e->o.default_country, n, sizeof(n), &err) != 0) {
            if (!why[0])
                snprintf(why, whylen, "%s '%s': %s", tb->cols[i], v, err.detail);
            continue;
        }
        if (strncmp(n, "+98", 3) == 0 && !phone_is_ir_mobile(n)) {
            if (!why[0])
                snprintf(why, whylen, "%s '%s' is not a mobile number", tb->cols[i], v);
            continue;
        }
        snprintf(out, PHONE_E164_MAX, "%s", n);
        return BULK_M_SEND;
    }
    if (any)
        return BULK_M_INVALID_NUMBER;
    struct buf cols = BUF_INIT;
    for (size_t i = 0; i < tb->ncols; i++)
        buf_printf(&cols, "%s%s", i ? ", " : "", tb->cols[i]);
    snprintf(why, whylen, "no phone number (%s empty)", cols.data ? cols.data : "no column");
    buf_free(&cols);
    return BULK_M_NO_NUMBER;
}

int bulk_measure(const struct bulk_engine *e, const char *text, size_t len, int *segments,
                 int *encoding, char *why, size_t whylen)
{
    struct text_info ti;
    if (template_text_blank(text, len)) {
        snprintf(why, whylen,
                 "the text is empty for this member (every placeholder in it is "
                 "missing or empty)");
        return BULK_M_RENDER_FAIL;
    }
    if (text_analyze(text, len, &ti) != 0) {
        snprintf(why, whylen, "the rendered text is not valid UTF-8");
        return BULK_M_RENDER_FAIL;
    }
    if (ti.segments > e->o.max_segments) {
        snprintf(why, whylen, "the text is %zu SMS parts long; at most %u are allowed", ti.segments,
                 e->o.max_segments);
        return BULK_M_RENDER_FAIL;
    }
    *segments = (int)ti.segments;
    *encoding = ti.encoding == TEXT_UCS2 ? 1 : 0;
    return 0;
}

int bulk_render_row(const struct bulk_engine *e, const struct template *t, const cJSON *row,
                    struct buf *out, int *segments, int *encoding, char *why, size_t whylen)
{
    struct smsys_err err = {0};
    size_t at = out->len;
    int rc = template_render(t, row, NULL, out, NULL, &err);
    if (rc != 0) {
        snprintf(why, whylen, "%s", bulk_errtext(rc, &err));
        return BULK_M_RENDER_FAIL;
    }
    return bulk_measure(e, out->data ? out->data + at : "", out->len - at, segments, encoding, why,
                        whylen);
}

/* ---- FetchXML paging ---------------------------------------------------- */

static int xml_attr_esc(struct buf *b, const char *s)
{
    int rc = 0;
    for (; rc == 0 && *s; s++) {
        switch (*s) {
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '"':
            rc = buf_puts(b, "&quot;");
            break;
        default:
            rc = buf_putc(b, *s);
        }
    }
    return rc;
}

/* End of the start tag that begins at p ('>' outside quotes), or NULL. */
static const char *tag_end(const char *p)
{
    char q = 0;
    for (; *p; p++) {
        if (q) {
            if (*p == q)
                q = 0;
        } else if (*p == '"' || *p == '\'') {
            q = *p;
        } else if (*p == '>') {
            return p;
        }
    }
    return NULL;
}

/* The list's FetchXML with our paging and the columns we need: the <fetch>
 * start tag is rebuilt (count, page, paging-cookie; distinct kept; top
 * dropped), <attribute>s are added to the <entity>, and an <order> on the
 * key when the query has none (stable pages). */
int bulk_fetch_build(const char *query, const char *key, const char *const *cols, size_t ncols,
                     unsigned count, long page, const char *cookie, struct buf *out)
{
    const char *f = strstr(query, "<fetch");
    const char *fe = f ? tag_end(f) : NULL;
    const char *en = fe ? strstr(fe, "<entity") : NULL;
    const char *ene = en ? tag_end(en) : NULL;
    if (ene == NULL || ene[-1] == '/')
        return -EINVAL;
    char head[1024];
    size_t hl = (size_t)(fe - f);
    if (hl >= sizeof(head))
        return -EINVAL;
    memcpy(head, f, hl);
    head[hl] = '\0';
    int distinct = strstr(head, "distinct=\"true\"") || strstr(head, "distinct='true'");
    int rc =
        buf_printf(out, "<fetch version=\"1.0\" mapping=\"logical\" count=\"%u\" page=\"%ld\"%s",
                   count, page, distinct ? " distinct=\"true\"" : "");
    if (rc == 0 && cookie && *cookie) {
        rc = buf_puts(out, " paging-cookie=\"");
        if (rc == 0)
            rc = xml_attr_esc(out, cookie);
        if (rc == 0)
            rc = buf_putc(out, '"');
    }
    if (rc == 0)
        rc = buf_putc(out, '>');
    if (rc == 0)
        rc = buf_append(out, fe + 1, (size_t)(ene + 1 - (fe + 1)));
    for (size_t i = 0; rc == 0 && i < ncols; i++)
        rc = buf_printf(out, "<attribute name=\"%s\"/>", cols[i]);
    if (rc == 0 && strstr(ene, "<order") == NULL)
        rc = buf_printf(out, "<order attribute=\"%s\"/>", key);
    if (rc == 0)
        rc = buf_puts(out, ene + 1);
    return rc;
}

static int hexv(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decodes s in place. */
static void url_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && hexv((unsigned char)s[1]) >= 0 && hexv((unsigned char)s[2]) >= 0) {
            *o++ = (char)(hexv((unsigned char)s[1]) << 4 | hexv((unsigned char)s[2]));
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* The paging cookie of a FetchXML answer (the pagingcookie attribute of
 * @Microsoft.Dynamics.CRM.fetchxmlpagingcookie, percent-decoded twice), or
 * "" when there is none. */
void bulk_paging_cookie(const cJSON *page, char *out, size_t len)
{
    out[0] = '\0';
    const char *c = jstr(page, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie");
    const char *a = c ? strstr(c, "pagingcookie=\"") : NULL;
    if (a == NULL)
        return;
    a += 14;
    const char *z = strchr(a, '"');
    if (z == NULL || (size_t)(z - a) >= len)
        return;
    memcpy(out, a, (size_t)(z - a));
    out[z - a] = '\0';
    url_decode(out);
    url_decode(out);
}

/* ---- one page ----------------------------------------------------------- */

struct page {
    struct bjob *j;
    const cJSON *src;
    const struct pk_table *tb;
    struct template *t; /* NULL: render later */
    char entity[64];
    int dynamic;
    long fpage;
};

static void page_free(struct page *p)
{
    template_free(p->t);
    free(p);
}

static void stored_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct page *p = ud;
    struct bjob *j = p->j;
    int applied = rc == 0 && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (rc != 0)
        log_warn("bulk page not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    else if (!applied)
        log_info("bulk page already stored", "bulk=%s", j->id);
    page_free(p);
    j->done(j, rc, rc == 0);
}

/* One member as page JSON (see smsys_bulk_page). */
static int add_member(struct page *p, const cJSON *row, struct buf *js, struct buf *text)
{
    struct bjob *j = p->j;
    const char *id = jstr(row, p->tb->key);
    if (id == NULL || strlen(id) != 36)
        return 0; /* no key: not a member row */
    char key[128], act[37], num[PHONE_E164_MAX], why[600];
    snprintf(key, sizeof(key), "%s:%s", p->entity, id);
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (bulk_activity_id(j->id, key, act) != 0)
        return 0;
    int st = member_number(j->e, p->tb, row, num, why, sizeof(why));
    int seg = 0, enc = 0;
    buf_reset(text);
    if (st == BULK_M_SEND && p->t)
        st = bulk_render_row(j->e, p->t, row, text, &seg, &enc, why, sizeof(why));
    int rc =
        buf_printf(js, "%s{\"k\":\"%s\",\"e\":\"%s\",\"id\":\"%s\",\"act\":\"%s\",\"st\":%d",
                   js->len > 1 ? "," : "", key, p->entity, key + strlen(p->entity) + 1, act, st);
    if (rc == 0 && num[0])
        rc = buf_printf(js, ",\"n\":\"%s\"", num);
    if (rc == 0 && st != BULK_M_SEND) {
        rc = buf_puts(js, ",\"r\":\"");
        if (rc == 0)
            rc = buf_put_jsonstr(js, why);
        if (rc == 0)
            rc = buf_putc(js, '"');
    }
    if (rc == 0 && st == BULK_M_SEND && p->t) {
        rc = buf_puts(js, ",\"body\":\"");
        if (rc == 0)
            rc = buf_put_jsonstr(js, text->data ? text->data : "");
        if (rc == 0)
            rc = buf_printf(js, "\",\"seg\":%d,\"enc\":%d", seg, enc);
    }
    if (rc == 0)
        rc = buf_putc(js, '}');
    return rc;
}

static void page_cb(int rc, struct dv_result *res, void *ud)
{
    struct page *p = ud;
    struct bjob *j = p->j;
    struct bulk_engine *e = j->e;
    e->st.dv_requests++;
    const cJSON *rows = rc == 0 ? cJSON_GetObjectItemCaseSensitive(res->json, "value") : NULL;
    if (rc == SMSYS_ENOTFOUND || rc == SMSYS_EPROTO) {
        char why[1200];
        snprintf(why, sizeof(why), "marketing list %s cannot be read: %s",
                 jstr(p->src, "name") ? jstr(p->src, "name") : "?", bulk_errtext(rc, &res->err));
        page_free(p);
        bulk_job_fail(j, why);
        return;
    }
    if (rc != 0 || !cJSON_IsArray(rows)) {
        log_warn("bulk page not read", "bulk=%s error=\"%s\"", j->id,
                 log_q(rc ? bulk_errtext(rc, &res->err) : "no value array"));
        page_free(p);
        j->done(j, rc ? rc : SMSYS_EPROTO, 0);
        return;
    }
    /* where the next page starts */
    int next_index = j->src_index;
    char *next_cursor = NULL;
    if (p->dynamic) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res->json,
                                                          "@Microsoft.Dynamics.CRM.morerecords"))) {
            char cookie[8192];
            bulk_paging_cookie(res->json, cookie, sizeof(cookie));
            struct buf c = BUF_INIT;
            if (buf_printf(&c, "%ld\n%s", p->fpage + 1, cookie) == 0)
                next_cursor = buf_steal(&c);
            buf_free(&c);
            if (next_cursor == NULL)
                rc = -ENOMEM;
        }
    } else if (jstr(res->json, "@odata.nextLink")) {
        next_cursor = strdup(jstr(res->json, "@odata.nextLink"));
        if (next_cursor == NULL)
            rc = -ENOMEM;
    }
    if (next_cursor == NULL)
        next_index++;
    int done = next_index >= cJSON_GetArraySize(j->sources);

    struct buf js = BUF_INIT, text = BUF_INIT;
    int n = 0;
    if (rc == 0)
        rc = buf_putc(&js, '[');
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (rc == 0)
            rc = add_member(p, row, &js, &text);
        n++;
    }
    if (rc == 0)
        rc = buf_putc(&js, ']');
    buf_free(&text);
    e->st.pages++;
    e->st.members += (uint64_t)n;
    log_info("bulk page", "bulk=%s source=%d rows=%d last=%d", j->id, j->src_index, n,
             next_cursor == NULL);
    if (rc == 0)
        rc = bulk_db_page(e->pg, j->id, j->src_index, j->cursor, next_index, next_cursor, done,
                          js.data, stored_cb, p);
    buf_free(&js);
    free(next_cursor);
    if (rc != 0) {
        page_free(p);
        j->done(j, rc, 0);
    }
}

/* The columns a page selects: key, phone columns, opt-out column, and the
 * template's own columns when it renders from the row alone. */
static int page_columns(struct page *p, struct buf *sel, const char **cols, size_t *n, size_t max)
{
    const struct bulk_engine *e = p->j->e;
    struct buf s = BUF_INIT, x = BUF_INIT;
    int rc = 0;
    *n = 0;
    cols[(*n)++] = p->tb->key;
    for (size_t i = 0; i < p->tb->ncols && *n < max; i++)
        cols[(*n)++] = p->tb->cols[i];
    if (p->tb->optout && *n < max)
        cols[(*n)++] = e->o.optout_column;
    if (p->t) {
        rc = template_plan_select(p->t, p->tb->key, &s, &x);
        if (rc == 0 && (x.len > 0 || template_relations(p->t) > 0)) {
            template_free(p->t); /* needs lookups: render in a later step */
            p->t = NULL;
        } else if (rc == 0 && s.data) {
            /* "$select=a,b": keep our copy in sel, point cols into it */
            const char *list = strncmp(s.data, "$select=", 8) == 0 ? s.data + 8 : s.data;
            rc = buf_puts(sel, list);
        }
    }
    buf_free(&s);
    buf_free(&x);
    if (rc != 0 || sel->data == NULL)
        return rc;
    for (char *c = sel->data; c && *c && *n < max;) {
        char *comma = strchr(c, ',');
        if (comma)
            *comma = '\0';
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            dup |= strcmp(cols[i], c) == 0;
        if (!dup && *c)
            cols[(*n)++] = c;
        c = comma ? comma + 1 : NULL;
    }
    return 0;
}

int bulk_unit_page(struct bjob *j)
{
    const cJSON *src = cJSON_GetArrayItem(j->sources, j->src_index);
    const char *entity = jstr(src, "member_entity");
    const struct pk_table *tb = entity ? bulk_table(j->e, entity) : NULL;
    if (tb == NULL) {
        bulk_job_fail(j, "a marketing list's member table has no phone columns configured");
        return 0;
    }
    struct page *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->j = j;
    p->src = src;
    p->tb = tb;
    snprintf(p->entity, sizeof(p->entity), "%s", entity);
    p->dynamic = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(src, "dynamic"));
    struct smsys_err err = {0};
    p->t = bulk_template_for(j, entity, &err);
    if (p->t == NULL) {
        page_free(p);
        bulk_job_fail(j, bulk_errtext(SMSYS_ETEMPLATE, &err));
        return 0;
    }
    const char *cols[64];
    size_t ncols = 0;
    struct buf sel = BUF_INIT, path = BUF_INIT, fx = BUF_INIT;
    int rc = page_columns(p, &sel, cols, &ncols, 64);
    if (rc == 0 && p->dynamic) {
        p->fpage = 1;
        const char *cookie = NULL;
        if (j->cursor) {
            p->fpage = strtol(j->cursor, NULL, 10);
            cookie = strchr(j->cursor, '\n');
            cookie = cookie ? cookie + 1 : NULL;
            if (p->fpage < 1)
                p->fpage = 1;
        }
        rc = bulk_fetch_build(jstr(src, "fetchxml"), tb->key, cols, ncols, j->e->o.page_size,
                              p->fpage, cookie, &fx);
        if (rc == -EINVAL) {
            buf_free(&sel);
            buf_free(&fx);
            page_free(p);
            bulk_job_fail(j, "the dynamic list's query is not FetchXML smsys can page "
                             "(<fetch> with an <entity>)");
            return 0;
        }
        if (rc == 0)
            rc = buf_puts(&path, tb->set);
        if (rc == 0)
            rc = odata_query_add(&path, "fetchXml", fx.data);
    } else if (rc == 0 && j->cursor) {
        rc = buf_puts(&path, j->cursor);
    } else if (rc == 0) {
        rc = buf_puts(&path, "lists(");
        if (rc == 0)
            rc = odata_lit_guid(&path, jstr(src, "id") ? jstr(src, "id") : "");
        if (rc == 0)
            rc = buf_printf(&path, ")/list%s_association?$select=", entity);
        for (size_t i = 0; rc == 0 && i < ncols; i++)
            rc = buf_printf(&path, "%s%s", i ? "," : "", cols[i]);
    }
    char prefer[160];
    snprintf(prefer, sizeof(prefer), "odata.maxpagesize=%u%s", j->e->o.page_size,
             p->t ? ",odata.include-annotations=\"*\"" : "");
    if (rc == 0)
        rc = dv_request_ex(j->e->dv,
                           &(struct dv_call){.method = "GET", .path = path.data, .prefer = prefer},
                           page_cb, p);
    buf_free(&sel);
    buf_free(&path);
    buf_free(&fx);
    if (rc != 0)
        page_free(p);
    return rc;
}
