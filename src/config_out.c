/* config_out.c - printing a configuration and the directive table.
 *
 * Dumps are valid config files (secrets aside) so an operator can start
 * from `smsysctl config dump`. The Markdown reference is what
 * docs/configuration.md embeds; a unit test keeps the two identical. */
#include "config_priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends conninfo with the password value replaced by ***: both the
 * keyword form (password=x, password = 'x y') and the URI form
 * (postgresql://user:x@host/db, ?password=x). */
static int put_masked_dsn(struct buf *out, const char *s)
{
    const char *p = s;
    int rc = 0;
    const char *scheme = strstr(s, "://");
    if (scheme && (strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0)) {
        const char *auth = scheme + 3;
        const char *at = strchr(auth, '@');
        const char *slash = strchr(auth, '/');
        const char *colon = strchr(auth, ':');
        if (at && (!slash || at < slash) && colon && colon < at) {
            rc |= buf_append(out, s, (size_t)(colon + 1 - s));
            rc |= buf_puts(out, "***");
            p = at;
        }
    }
    while (*p) {
        const char *hit = strstr(p, "password");
        if (hit == NULL) {
            rc |= buf_puts(out, p);
            break;
        }
        const char *q = hit + 8;
        while (*q == ' ')
            q++;
        int word_start = hit == s || hit[-1] == ' ' || hit[-1] == '?' || hit[-1] == '&';
        if (*q != '=' || !word_start) {
            rc |= buf_append(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        q++;
        while (*q == ' ')
            q++;
        rc |= buf_append(out, p, (size_t)(q - p));
        rc |= buf_puts(out, "***");
        if (*q == '\'') {
            for (q++; *q && *q != '\''; q++)
                if (*q == '\\' && q[1])
                    q++;
            if (*q == '\'')
                q++;
        } else {
            while (*q && *q != ' ' && *q != '&')
                q++;
        }
        p = q;
    }
    return rc ? -ENOMEM : 0;
}

int config_value_str(const struct smsys_config *cfg, const struct config_key *k, int mask,
                     struct buf *out)
{
    if (config_type_is_str(k->type)) {
        const char *s = *config_str_at(cfg, k);
        if (s == NULL)
            return 0;
        if (mask && k->type == CONFIG_SECRET)
            return buf_puts(out, "***");
        if (mask && (k->flags & CONFIG_MASK_DSN))
            return put_masked_dsn(out, s);
        return buf_puts(out, s);
    }
    switch (k->type) {
    case CONFIG_INT:
    case CONFIG_DURATION:
        return buf_printf(out, "%lld", *config_ll_at(cfg, k));
    case CONFIG_BOOL:
        return buf_puts(out, *config_int_at(cfg, k) ? "true" : "false");
    case CONFIG_ENUM:
        return buf_puts(out, k->choices[*config_int_at(cfg, k)]);
    case CONFIG_WINDOW: {
        const struct config_window *w = config_win_at(cfg, k);
        if (!w->set)
            return 0;
        return buf_printf(out, "%02d:%02d-%02d:%02d", w->start_min / 60, w->start_min % 60,
                          w->end_min / 60, w->end_min % 60);
    }
    default:
        return -EINVAL;
    }
}

int config_put_value(struct buf *out, const char *s)
{
    size_t n = strlen(s);
    int needs = n && (s[0] == ' ' || s[0] == '\t' || s[0] == '"' || s[n - 1] == ' ' ||
                      s[n - 1] == '\t' || strncmp(s, "env:", 4) == 0 ||
                      strncmp(s, "file:", 5) == 0 || s[0] == '#' || s[0] == ';');
    for (const char *p = s; *p && !needs; p++)
        needs = *p == '\n' || *p == '\t' ||
                ((*p == '#' || *p == ';') && p > s && (p[-1] == ' ' || p[-1] == '\t'));
    if (!needs)
        return buf_puts(out, s);
    int rc = buf_putc(out, '"');
    for (const char *p = s; *p && rc == 0; p++) {
        if (*p == '"' || *p == '\\')
            rc = buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            rc = buf_puts(out, "\\n");
        else if (*p == '\t')
            rc = buf_puts(out, "\\t");
        else
            rc = buf_putc(out, *p);
    }
    return rc ? rc : buf_putc(out, '"');
}

int config_dump(const struct smsys_config *cfg, struct buf *out)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    const char *section = "";
    int rc = buf_printf(out, "# effective configuration of %s (secrets shown as ***)\n",
                        cfg->path ? cfg->path : "(none)");
    struct buf v = BUF_INIT;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct config_key *k = &keys[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            rc = buf_printf(out, "\n[%s]\n", section);
        }
        buf_reset(&v);
        rc = rc ? rc : config_value_str(cfg, k, 1, &v);
        rc = rc ? rc : buf_printf(out, "%s =%s", k->key, v.len ? " " : "");
        /* "***" is a mask, not a value: written bare so it is never
         * mistaken for the real secret in quotes. */
        if (rc == 0 && v.len && k->type == CONFIG_SECRET)
            rc = buf_puts(out, v.data);
        else if (rc == 0 && v.len)
            rc = config_put_value(out, v.data);
        const struct config_origin *o = cfg->origin ? &cfg->origin[i] : NULL;
        if (rc == 0 && o && o->ref)
            rc = buf_printf(out, "  ; from %s", o->ref);
        rc = rc ? rc : buf_putc(out, '\n');
    }
    buf_free(&v);
    return rc;
}

int config_dump_json(const struct smsys_config *cfg, struct buf *out)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    cJSON *root = cJSON_CreateObject();
    struct buf v = BUF_INIT;
    int rc = root ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct config_key *k = &keys[i];
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, k->section);
        if (sec == NULL && (sec = cJSON_AddObjectToObject(root, k->section)) == NULL) {
            rc = -ENOMEM;
            break;
        }
        cJSON *item;
        if (k->type == CONFIG_INT || k->type == CONFIG_DURATION) {
            item = cJSON_AddNumberToObject(sec, k->key, (double)*config_ll_at(cfg, k));
        } else if (k->type == CONFIG_BOOL) {
            item = cJSON_AddBoolToObject(sec, k->key, *config_int_at(cfg, k));
        } else {
            buf_reset(&v);
            if ((rc = config_value_str(cfg, k, 1, &v)) != 0)
                break;
            int unset =
                v.data == NULL || (config_type_is_str(k->type) && *config_str_at(cfg, k) == NULL);
            item = unset ? cJSON_AddNullToObject(sec, k->key)
                         : cJSON_AddStringToObject(sec, k->key, v.data);
        }
        if (item == NULL)
            rc = -ENOMEM;
    }
    buf_free(&v);
    char *s = rc == 0 ? cJSON_Print(root) : NULL;
    if (rc == 0 && s == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = buf_printf(out, "%s\n", s);
    free(s);
    cJSON_Delete(root);
    return rc;
}

/* "int 1..64", "duration 100..3600000 ms", "enum text|json", ... */
static int put_type(struct buf *out, const struct config_key *k)
{
    int rc = buf_puts(out, config_type_name(k->type));
    if (k->type == CONFIG_INT)
        rc |= buf_printf(out, " %lld..%lld", k->min, k->max);
    else if (k->type == CONFIG_DURATION)
        rc |= buf_printf(out, " %lld..%lld ms", k->min, k->max);
    else if (k->type == CONFIG_ENUM)
        for (size_t i = 0; k->choices[i]; i++)
            rc |= buf_printf(out, "%s%s", i ? "|" : " ", k->choices[i]);
    return rc ? -ENOMEM : 0;
}

static const char *flag_text(const struct config_key *k)
{
    if (k->flags & CONFIG_REQUIRED)
        return (k->flags & CONFIG_LIVE) ? "required, live" : "required";
    return (k->flags & CONFIG_LIVE) ? "live" : "";
}

int config_keys_text(struct buf *out)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    int rc = 0;
    struct buf t = BUF_INIT;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct config_key *k = &keys[i];
        char name[96];
        snprintf(name, sizeof(name), "%s.%s", k->section, k->key);
        buf_reset(&t);
        rc = put_type(&t, k);
        const char *fl = flag_text(k);
        rc = rc ? rc
                : buf_printf(out, "%-32s %-34s default: %s%s%s%s\n    %s\n", name, t.data,
                             k->def ? k->def : "(none)", *fl ? "  [" : "", fl, *fl ? "]" : "",
                             k->help);
    }
    buf_free(&t);
    return rc;
}

int config_keys_json(struct buf *out)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    cJSON *arr = cJSON_CreateArray();
    int rc = arr ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct config_key *k = &keys[i];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            rc = -ENOMEM;
            break;
        }
        cJSON_AddStringToObject(o, "section", k->section);
        cJSON_AddStringToObject(o, "key", k->key);
        cJSON_AddStringToObject(o, "type", config_type_name(k->type));
        if (k->type == CONFIG_INT || k->type == CONFIG_DURATION) {
            cJSON_AddNumberToObject(o, "min", (double)k->min);
            cJSON_AddNumberToObject(o, "max", (double)k->max);
        }
        if (k->choices) {
            cJSON *c = cJSON_AddArrayToObject(o, "choices");
            for (size_t j = 0; c && k->choices[j]; j++)
                cJSON_AddItemToArray(c, cJSON_CreateString(k->choices[j]));
        }
        if (k->def)
            cJSON_AddStringToObject(o, "default", k->def);
        else
            cJSON_AddNullToObject(o, "default");
        cJSON_AddBoolToObject(o, "required", (k->flags & CONFIG_REQUIRED) != 0);
        cJSON_AddBoolToObject(o, "live", (k->flags & CONFIG_LIVE) != 0);
        cJSON_AddBoolToObject(o, "secret", k->type == CONFIG_SECRET);
        cJSON_AddStringToObject(o, "help", k->help);
    }
    char *s = rc == 0 ? cJSON_Print(arr) : NULL;
    if (rc == 0)
        rc = s ? buf_printf(out, "%s\n", s) : -ENOMEM;
    free(s);
    cJSON_Delete(arr);
    return rc;
}

/* Markdown table cells may not hold '|' unescaped. */
static int put_md(struct buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++)
        rc = *s == '|' ? buf_puts(out, "\\|") : buf_putc(out, *s);
    return rc;
}

int config_keys_markdown(struct buf *out)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    const char *section = "";
    int rc = 0;
    struct buf t = BUF_INIT;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct config_key *k = &keys[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            rc = buf_printf(out,
                            "%s### [%s]\n\n| key | type | default | notes |\n"
                            "|---|---|---|---|\n",
                            i ? "\n" : "", section);
        }
        buf_reset(&t);
        rc = rc ? rc : put_type(&t, k);
        const char *fl = flag_text(k);
        rc = rc ? rc : buf_printf(out, "| `%s` | ", k->key);
        rc = rc ? rc : put_md(out, t.data);
        rc = rc ? rc : buf_puts(out, " | ");
        if (rc == 0 && k->def && *k->def)
            rc = buf_printf(out, "`%s`", k->def);
        rc = rc ? rc : buf_puts(out, " | ");
        if (rc == 0 && *fl)
            rc = buf_printf(out, "**%s.** ", fl);
        rc = rc ? rc : put_md(out, k->help);
        rc = rc ? rc : buf_puts(out, " |\n");
    }
    buf_free(&t);
    return rc;
}
