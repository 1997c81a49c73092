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
        expand_free(x[i].sub, x[i].nsub);
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

/* Cuts the next ';'-separated option off *p, ignoring ';' inside
 * parentheses (a nested $expand carries its own options); NULL at the end. */
static char *next_option(char **p)
{
    char *st = *p;
    if (st == NULL || *st == '\0')
        return NULL;
    int depth = 0;
    char *c = st;
    while (*c && (depth > 0 || *c != ';')) {
        if (*c == '(')
            depth++;
        else if (*c == ')')
            depth--;
        c++;
    }
    if (*c == ';')
        *c++ = '\0';
    *p = c;
    return st;
}

static int parse_level(struct emu *e, const struct table *t, const char *s, struct expand **out,
                       size_t *nout, struct api_res *r, int level);

/* The options of one expanded navigation: $select and a nested $expand on
 * the target table sub (NULL when the target is not known, e.g. a
 * polymorphic lookup named without its target). Other options are ignored
 * as before. */
static int parse_options(struct emu *e, struct expand *cur, const struct table *sub, char *opts,
                         struct api_res *r, int level)
{
    char *p = opts;
    for (char *o = next_option(&p); o; o = next_option(&p)) {
        if (strncmp(o, "$select=", 8) == 0) {
            if (sub && parse_select(sub, o + 8, &cur->sel, r))
                return -EINVAL;
        } else if (strncmp(o, "$expand=", 8) == 0) {
            if (level >= EXPAND_MAX_DEPTH) {
                api_error(r, 400, "0x0",
                          "$expand is nested deeper than %d levels, which dvemu does not "
                          "support.",
                          EXPAND_MAX_DEPTH);
                return -EINVAL;
            }
            if (sub == NULL) {
                api_error(r, 400, "0x0",
                          "A nested $expand under '%s' is not supported by dvemu: name the "
                          "target of the polymorphic lookup (e.g. '%s_<table>').",
                          cur->name, cur->name);
                return -EINVAL;
            }
            if (cur->sub) {
                api_error(r, 400, "0x0", "$expand appears twice in the options of '%s'.",
                          cur->name);
                return -EINVAL;
            }
            if (parse_level(e, sub, o + 8, &cur->sub, &cur->nsub, r, level + 1))
                return -EINVAL;
        }
    }
    return 0;
}

int parse_expand(struct emu *e, const struct table *t, const char *s, struct expand **out,
                 size_t *nout, struct api_res *r)
{
    return parse_level(e, t, s, out, nout, r, 1);
}

static int parse_level(struct emu *e, const struct table *t, const char *s, struct expand **out,
                       size_t *nout, struct api_res *r, int level)
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
        if (cur->name == NULL) {
            free(item);
            expand_free(x, n);
            api_error(r, 500, "0x0", "out of memory");
            return -ENOMEM;
        }
        if (opts && parse_options(e, cur, sub, opts, r, level)) {
            free(item);
            expand_free(x, n);
            return -EINVAL;
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
                cJSON *po = render_row(e, pt, &pr, x[i].sel, annotations, 0);
                if (po && x[i].nsub)
                    apply_expand(e, pt, &pr, x[i].sub, x[i].nsub, po, annotations);
                cJSON_AddItemToArray(arr, po);
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
        if (tr) {
            cJSON *to = render_row(e, tt, tr, x[i].sel, annotations, 0);
            /* nested levels read the same in-memory rows: no cycle can
             * loop, the parsed depth bounds the recursion */
            if (to && x[i].nsub)
                apply_expand(e, tt, tr, x[i].sub, x[i].nsub, to, annotations);
            cJSON_AddItemToObject(out, x[i].name, to);
        } else
            cJSON_AddNullToObject(out, x[i].name);
    }
}

/* ---- collections ---- */
