/* expand.c - $expand: single-valued lookups (by column name or by the
 * polymorphic navigation name "<col>_<target>[_<table>]") and the activity
 * party collection, each with an optional ($select=...). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/util.h"

void expand_free(struct expand *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(x[i].name);
        cJSON_Delete(x[i].sel);
    }
    free(x);
}

/* Finds the lookup column a navigation property name refers to: the column
 * itself, or "<col>_<target>" / "<col>_<target>_<this table>". */
static const struct column *nav_lookup(const struct emu *e, const struct table *t, const char *nav,
                                       char *target, size_t tlen)
{
    target[0] = '\0';
    const struct column *c = table_column(t, nav);
    if (c && c->type == CT_LOOKUP)
        return c;
    for (size_t i = 0; i < t->ncols; i++) {
        c = &t->cols[i];
        size_t n = strlen(c->name);
        if (c->type != CT_LOOKUP || strncmp(nav, c->name, n) != 0 || nav[n] != '_')
            continue;
        char rest[128];
        snprintf(rest, sizeof(rest), "%s", nav + n + 1);
        size_t rl = strlen(rest), ll = strlen(t->logical);
        if (rl > ll + 1 && strcmp(rest + rl - ll, t->logical) == 0 && rest[rl - ll - 1] == '_')
            rest[rl - ll - 1] = '\0';
        if (store_by_logical(&e->store, rest)) {
            snprintf(target, tlen, "%s", rest);
            return c;
        }
    }
    return NULL;
}

int parse_expand(struct emu *e, const struct table *t, const char *s, struct expand **out,
                 size_t *nout, struct api_res *r)
{
    *out = NULL;
    *nout = 0;
    if (s == NULL || *s == '\0')
        return 0;
    size_t items = 1;
    int d0 = 0;
    for (const char *c = s; *c; c++) {
        if (*c == '(')
            d0++;
        else if (*c == ')')
            d0--;
        else if (*c == ',' && d0 == 0)
            items++;
    }
    struct expand *x = calloc(items, sizeof(*x));
    size_t n = 0;
    const char *p = s;
    if (x == NULL) {
        api_error(r, 500, "0x0", "out of memory");
        return -ENOMEM;
    }
    while (*p && n < items) {
        const char *st = p;
        int depth = 0;
        while (*p && (depth > 0 || *p != ',')) {
            if (*p == '(')
                depth++;
            else if (*p == ')')
                depth--;
            p++;
        }
        char *item = strndup(st, (size_t)(p - st));
        if (*p == ',')
            p++;
        if (item == NULL) {
            expand_free(x, n);
            api_error(r, 500, "0x0", "out of memory");
            return -ENOMEM;
        }
        memset(&x[n], 0, sizeof(x[n]));
        char *opts = strchr(item, '(');
        if (opts) {
            *opts++ = '\0';
            size_t ol = strlen(opts);
            if (ol && opts[ol - 1] == ')')
                opts[ol - 1] = '\0';
        }
        x[n].name = strdup(item);
        n++;
        struct expand *cur = &x[n - 1];
        char pname[80];
        snprintf(pname, sizeof(pname), "%s_activity_parties", t->logical);
        const struct table *sub = NULL;
        if (t->activity && strcmp(item, pname) == 0) {
            cur->parties = 1;
            sub = store_by_logical(&e->store, "activityparty");
        } else {
            cur->lookup = nav_lookup(e, t, item, cur->target, sizeof(cur->target));
            if (cur->lookup == NULL) {
                api_error(r, 400, "0x0",
                          "Could not find a property named '%s' on type "
                          "'Microsoft.Dynamics.CRM.%s'.",
                          item, t->logical);
                free(item);
                expand_free(x, n);
                return -EINVAL;
            }
            if (!cur->target[0] && cur->lookup->targets && !strchr(cur->lookup->targets, ',') &&
                strcmp(cur->lookup->targets, "*") != 0)
                snprintf(cur->target, sizeof(cur->target), "%s", cur->lookup->targets);
            sub = cur->target[0] ? store_by_logical(&e->store, cur->target) : NULL;
        }
        if (opts && sub) {
            char *save = NULL;
            for (char *o = strtok_r(opts, ";", &save); o; o = strtok_r(NULL, ";", &save)) {
                if (strncmp(o, "$select=", 8) == 0 && parse_select(sub, o + 8, &cur->sel, r)) {
                    free(item);
                    expand_free(x, n);
                    return -EINVAL;
                }
            }
        }
        free(item);
    }
    *out = x;
    *nout = n;
    return 0;
}

void apply_expand(struct emu *e, const struct table *t, const struct row *row,
                  const struct expand *x, size_t n, cJSON *out, int annotations)
{
    for (size_t i = 0; i < n; i++) {
        if (x[i].parties) {
            const struct table *pt = store_by_logical(&e->store, "activityparty");
            cJSON *arr = cJSON_AddArrayToObject(out, x[i].name);
            const cJSON *parties = cJSON_GetObjectItemCaseSensitive(row->obj, PARTIES_KEY);
            const cJSON *p;
            cJSON_ArrayForEach(p, parties)
            {
                struct row pr;
                memset(&pr, 0, sizeof(pr));
                pr.obj = (cJSON *)p;
                pr.version = row->version;
                const cJSON *pid = cJSON_GetObjectItemCaseSensitive(p, "activitypartyid");
                snprintf(pr.id, sizeof(pr.id), "%s", cJSON_IsString(pid) ? pid->valuestring : "");
                cJSON_AddItemToArray(arr, render_row(e, pt, &pr, x[i].sel, annotations, 0));
            }
            continue;
        }
        char key[200], k2[240];
        snprintf(key, sizeof(key), "_%s_value", x[i].lookup->name);
        snprintf(k2, sizeof(k2), "%s" LLN_SUFFIX, key);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row->obj, key);
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(row->obj, k2);
        const struct table *tt = NULL;
        const struct row *tr = NULL;
        if (cJSON_IsString(v) && cJSON_IsString(l) &&
            (!x[i].target[0] || strcmp(x[i].target, l->valuestring) == 0)) {
            tt = store_by_logical(&e->store, l->valuestring);
            tr = tt ? store_get(tt, v->valuestring) : NULL;
        }
        if (tr)
            cJSON_AddItemToObject(out, x[i].name, render_row(e, tt, tr, x[i].sel, annotations, 0));
        else
            cJSON_AddNullToObject(out, x[i].name);
    }
}

/* ---- collections ---- */
