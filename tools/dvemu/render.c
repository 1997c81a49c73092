/* render.c - rows as Dataverse writes them: the $select list (lookups as
 * _x_value), @odata.etag, and with odata.include-annotations the formatted
 * values and lookup annotations; also the Prefer header and query-string
 * helpers every read uses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/util.h"

#define ANN_FMT "@OData.Community.Display.V1.FormattedValue"
#define ANN_LLN "@Microsoft.Dynamics.CRM.lookuplogicalname"
#define ANN_NAV "@Microsoft.Dynamics.CRM.associatednavigationproperty"

void prefer_parse(const char *h, struct prefer *p)
{
    memset(p, 0, sizeof(*p));
    p->maxpagesize = MAX_PAGE;
    if (h == NULL)
        return;
    char *dup = strdup(h);
    if (dup == NULL)
        return;
    char *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strncmp(tok, "return=representation", 21) == 0)
            p->return_repr = 1;
        else if (strncmp(tok, "odata.include-annotations", 25) == 0)
            p->annotations = 1;
        else if (strncmp(tok, "odata.maxpagesize=", 18) == 0) {
            long long v;
            char num[16];
            snprintf(num, sizeof(num), "%.15s", tok + 18);
            num[strcspn(num, " ;")] = '\0';
            if (util_parse_int(num, 1, 1 << 30, &v) == 0) {
                p->maxpagesize = v > MAX_PAGE ? MAX_PAGE : (int)v;
                p->page_asked = 1;
            }
        } else if (strncmp(tok, "odata.track-changes", 19) == 0)
            p->track_changes = 1;
        else if (strncmp(tok, "odata.continue-on-error", 23) == 0)
            p->continue_on_error = 1;
    }
    free(dup);
}

void prefer_applied(const struct prefer *p, struct api_res *r, int with_page, int with_track)
{
    struct buf b = BUF_INIT;
    if (p->return_repr)
        buf_puts(&b, "return=representation");
    if (p->annotations)
        buf_printf(&b, "%sodata.include-annotations=\"*\"", b.len ? "," : "");
    if (with_page)
        buf_printf(&b, "%sodata.maxpagesize=%d", b.len ? "," : "", p->maxpagesize);
    if (with_track)
        buf_printf(&b, "%sodata.track-changes", b.len ? "," : "");
    if (b.len)
        api_hdr(r, "Preference-Applied", "%s", b.data);
    buf_free(&b);
}

/* Returns a decoded copy of query parameter name (caller frees) or NULL. */
char *query_param(const char *query, const char *name)
{
    if (query == NULL)
        return NULL;
    size_t nl = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && p[nl] == '=' && strncmp(p, name, nl) == 0) {
            char *v = strndup(p + nl + 1, len - nl - 1);
            if (v && http_urldecode(v, 1) < 0) {
                free(v);
                return NULL;
            }
            return v;
        }
        if (len == nl && strncmp(p, name, nl) == 0)
            return strdup("");
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

/* Key in the stored object for a $select name, or NULL if unknown. */
const char *select_key(const struct table *t, const char *name, const struct column **out)
{
    const struct column *c = table_column(t, name);
    if (c && c->type != CT_LOOKUP) {
        *out = c;
        return name;
    }
    c = table_lookup_by_value(t, name);
    if (c) {
        *out = c;
        return name;
    }
    return NULL;
}

int parse_select(const struct table *t, const char *s, cJSON **out, struct api_res *r)
{
    *out = NULL;
    if (s == NULL || *s == '\0')
        return 0;
    cJSON *arr = cJSON_CreateArray();
    char *dup = strdup(s);
    char *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        const struct column *c;
        if (select_key(t, tok, &c) == NULL) {
            api_error(r, 400, "0x0",
                      "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.",
                      tok, t->logical);
            free(dup);
            cJSON_Delete(arr);
            return -EINVAL;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    }
    free(dup);
    *out = arr;
    return 0;
}

static void fmt_thousands(long long v, char *out, size_t len)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%lld", v < 0 ? -v : v);
    size_t n = strlen(tmp), o = 0;
    if (v < 0 && o + 1 < len)
        out[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        out[o++] = tmp[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n)
            out[o++] = ',';
    }
    out[o] = '\0';
}

static void add_formatted(const struct table *t, const struct column *c, const cJSON *v, cJSON *out,
                          const char *key)
{
    char k[256], val[64];
    const char *label = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return;
    switch (c->type) {
    case CT_CHOICE:
        label = schema_option_label(t->logical, c->name, (long long)v->valuedouble);
        if (label == NULL) {
            snprintf(val, sizeof(val), "%lld", (long long)v->valuedouble);
            label = val;
        }
        break;
    case CT_BOOL:
        label = cJSON_IsTrue(v) ? "Yes" : "No";
        break;
    case CT_INT:
    case CT_BIGINT:
        fmt_thousands((long long)v->valuedouble, val, sizeof(val));
        label = val;
        break;
    case CT_DECIMAL:
        snprintf(val, sizeof(val), "%.2f", v->valuedouble);
        label = val;
        break;
    case CT_DATETIME: {
        int ok;
        int64_t s = parse_datetime(v->valuestring, &ok);
        if (!ok)
            return;
        time_t tt = (time_t)s;
        struct tm tm;
        gmtime_r(&tt, &tm);
        int h12 = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
        snprintf(val, sizeof(val), "%d/%d/%d %d:%02d %s", tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_year + 1900, h12, tm.tm_min, tm.tm_hour < 12 ? "AM" : "PM");
        label = val;
        break;
    }
    default:
        return;
    }
    snprintf(k, sizeof(k), "%s" ANN_FMT, key);
    cJSON_AddStringToObject(out, k, label);
}

static void add_lookup(struct emu *e, const struct table *t, const struct column *c,
                       const cJSON *obj, cJSON *out, int annotations, int omit_null)
{
    char key[200], k2[300];
    snprintf(key, sizeof(key), "_%s_value", c->name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!omit_null)
            cJSON_AddNullToObject(out, key);
        return;
    }
    cJSON_AddStringToObject(out, key, v->valuestring);
    if (!annotations)
        return;
    snprintf(k2, sizeof(k2), "%s" LLN_SUFFIX, key);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, k2);
    const char *lln = cJSON_IsString(l) ? l->valuestring : "";
    snprintf(k2, sizeof(k2), "%s" ANN_NAV, key);
    cJSON_AddStringToObject(out, k2, c->name);
    snprintf(k2, sizeof(k2), "%s" ANN_LLN, key);
    cJSON_AddStringToObject(out, k2, lln);
    const struct table *tt = store_by_logical(&e->store, lln);
    if (tt && tt->primary_name[0]) {
        const struct row *tr = store_get(tt, v->valuestring);
        const cJSON *nm = tr ? cJSON_GetObjectItemCaseSensitive(tr->obj, tt->primary_name) : NULL;
        if (cJSON_IsString(nm)) {
            snprintf(k2, sizeof(k2), "%s" ANN_FMT, key);
            cJSON_AddStringToObject(out, k2, nm->valuestring);
        }
    }
}

static void add_column(struct emu *e, const struct table *t, const struct row *row,
                       const struct column *c, cJSON *out, int annotations, int omit_null)
{
    if (c->type == CT_LOOKUP) {
        add_lookup(e, t, c, row->obj, out, annotations, omit_null);
        return;
    }
    if (strcmp(c->name, "versionnumber") == 0) {
        cJSON_AddNumberToObject(out, c->name, (double)row->version);
        return;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row->obj, c->name);
    if (v == NULL || cJSON_IsNull(v)) {
        if (!omit_null)
            cJSON_AddNullToObject(out, c->name);
        return;
    }
    cJSON_AddItemToObject(out, c->name, cJSON_Duplicate(v, 1));
    if (annotations)
        add_formatted(t, c, v, out, c->name);
}

cJSON *render_row(struct emu *e, const struct table *t, const struct row *row, const cJSON *sel,
                  int annotations, int omit_null)
{
    cJSON *out = cJSON_CreateObject();
    char etag[48];
    snprintf(etag, sizeof(etag), "W/\"%llu\"", (unsigned long long)row->version);
    cJSON_AddStringToObject(out, "@odata.etag", etag);
    if (sel == NULL) {
        for (size_t i = 0; i < t->ncols; i++)
            add_column(e, t, row, &t->cols[i], out, annotations, omit_null);
        return out;
    }
    const cJSON *s;
    int has_pk = 0;
    cJSON_ArrayForEach(s, sel)
    {
        const struct column *c;
        if (select_key(t, s->valuestring, &c) == NULL)
            continue;
        if (c->type == CT_GUID)
            has_pk = 1;
        add_column(e, t, row, c, out, annotations, omit_null);
    }
    if (!has_pk)
        cJSON_AddStringToObject(out, t->pk, row->id);
    return out;
}

/* ---- $expand ---- */
