/* form.c - request decoding shared by the simulated providers: form and
 * query strings, comma lists, tolerant JSON member lookup. */
#include "provsim.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/util.h"

int form_parse(struct sim_form *f, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(s + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
            size_t vlen = eq ? j - i - klen - 1 : 0;
            char *k = strndup(s + i, klen);
            char *v = strndup(eq ? eq + 1 : "", vlen);
            struct sim_kv *nkv = realloc(f->kv, (f->n + 1) * sizeof(*nkv));
            if (!k || !v || !nkv) {
                free(k);
                free(v);
                if (nkv)
                    f->kv = nkv;
                return -ENOMEM;
            }
            f->kv = nkv;
            if (http_urldecode(k, 1) < 0 || http_urldecode(v, 1) < 0) {
                free(k);
                free(v);
                return -EINVAL;
            }
            f->kv[f->n].k = k;
            f->kv[f->n].v = v;
            f->n++;
        }
        i = j + 1;
    }
    return 0;
}

int form_from_req(struct sim_form *f, const struct http_req *req)
{
    int rc = form_parse(f, req->query, strlen(req->query));
    if (rc)
        return rc;
    const char *ct = http_req_header(req, "Content-Type");
    if (req->body_len && ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        rc = form_parse(f, req->body, req->body_len);
    return rc;
}

const char *form_nth(const struct sim_form *f, const char *key, size_t idx)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcasecmp(f->kv[i].k, key) == 0 && idx-- == 0)
            return f->kv[i].v;
    return NULL;
}

const char *form_get(const struct sim_form *f, const char *key)
{
    return form_nth(f, key, 0);
}

void form_free(struct sim_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->kv[i].k);
        free(f->kv[i].v);
    }
    free(f->kv);
    f->kv = NULL;
    f->n = 0;
}

char **split_list(const char *s, size_t *n)
{
    *n = 0;
    if (!s)
        s = "";
    size_t len = strlen(s), slots = 1;
    for (size_t i = 0; i < len; i++)
        slots += s[i] == ',';
    /* pointers, then a copy of the text the pointers point into */
    char **arr = malloc((slots + 1) * sizeof(char *) + len + 1);
    if (!arr)
        return NULL;
    char *text = (char *)(arr + slots + 1);
    memcpy(text, s, len + 1);
    char *save = NULL;
    for (char *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok)
            arr[(*n)++] = tok;
    }
    arr[*n] = NULL;
    return arr;
}

const cJSON *json_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItem(o, key) : NULL; /* case-insensitive */
}

const char *json_str(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d >= -9e15 && d <= 9e15 && d == (double)(long long)d)
            snprintf(buf, len, "%lld", (long long)d);
        else
            snprintf(buf, len, "%.17g", d);
        return buf;
    }
    return NULL;
}

cJSON *json_body(const struct http_req *req)
{
    if (!req->body_len)
        return NULL;
    return cJSON_ParseWithLength(req->body, req->body_len);
}

const char *path_eat(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncasecmp(path, prefix, n) == 0 ? path + n : NULL;
}
