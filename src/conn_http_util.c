/* conn_http_util.c - pure helpers of the HTTP connectors: error classes,
 * tolerant JSON access, RFC 6901 pointers, form decoding, times. */
#include "smsys/conn_http.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smsys/http_server.h"
#include "smsys/util.h"

int ch_code_class(const struct ch_code *tab, long code, int dflt, const char **text)
{
    for (; tab && tab->text; tab++) {
        if (tab->code == code) {
            if (text)
                *text = tab->text;
            return tab->rc;
        }
    }
    if (text)
        *text = NULL;
    return dflt;
}

enum conn_status ch_status_lookup(const struct ch_status_code *tab, long code)
{
    for (; tab && tab->code != -1; tab++)
        if (tab->code == code)
            return tab->st;
    return CONN_ST_UNKNOWN;
}

int ch_http_class(int status)
{
    if (status < 400)
        return 0;
    if (status == 429)
        return SMSYS_ETHROTTLED;
    if (status >= 500)
        return SMSYS_ETEMP;
    if (status == 401 || status == 402 || status == 403)
        return SMSYS_EACCOUNT;
    return SMSYS_EPERM;
}

static const struct {
    const char *name;
    int rc;
} classes[] = {
    {"temporary", SMSYS_ETEMP},  {"throttled", SMSYS_ETHROTTLED}, {"permanent", SMSYS_EPERM},
    {"account", SMSYS_EACCOUNT}, {"unknown", SMSYS_EUNKNOWN},
};

const char *ch_class_name(int rc)
{
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].rc == rc)
            return classes[i].name;
    return rc == 0 ? "ok" : "error";
}

int ch_class_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof classes / sizeof classes[0]; i++)
        if (strcmp(classes[i].name, name) == 0)
            return classes[i].rc;
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

cJSON *ch_json_parse(const char *body, size_t len)
{
    if (body == NULL || len == 0)
        return NULL;
    return cJSON_ParseWithLength(body, len);
}

const cJSON *ch_json_get(const cJSON *o, const char *key)
{
    if (!cJSON_IsObject(o))
        return NULL;
    /* cJSON_GetObjectItem compares keys case-insensitively: that is the
     * tolerance providers.md asks for where a field is marked (?). */
    return cJSON_GetObjectItem(o, key);
}

int ch_json_num(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        errno = 0;
        double d = strtod(v->valuestring, &end);
        while (*end == ' ')
            end++;
        if (errno == 0 && *end == '\0' && isfinite(d)) {
            *out = d;
            return 0;
        }
    }
    return -EINVAL;
}

int ch_json_long(const cJSON *v, long *out)
{
    double d;
    if (ch_json_num(v, &d) != 0 || d != floor(d) || fabs(d) > 9e15)
        return -EINVAL;
    *out = (long)d;
    return 0;
}

int ch_json_text(const cJSON *v, char *out, size_t outlen)
{
    if (outlen == 0)
        return -EINVAL;
    if (cJSON_IsString(v)) {
        snprintf(out, outlen, "%s", v->valuestring);
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9e15)
            snprintf(out, outlen, "%lld", (long long)d);
        else if (isfinite(d))
            snprintf(out, outlen, "%.15g", d);
        else
            return -EINVAL;
        return 0;
    }
    if (cJSON_IsBool(v)) {
        snprintf(out, outlen, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return 0;
    }
    return -EINVAL;
}

const cJSON *ch_json_pointer(const cJSON *root, const char *ptr)
{
    if (root == NULL || ptr == NULL)
        return NULL;
    if (*ptr == '\0')
        return root;
    if (*ptr != '/')
        return NULL;
    const cJSON *node = root;
    char tok[256];
    const char *p = ptr;
    while (*p == '/') {
        p++;
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~') {
                if (p[1] == '0')
                    ch = '~';
                else if (p[1] == '1')
                    ch = '/';
                else
                    return NULL;
                p++;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        if (cJSON_IsObject(node)) {
            const cJSON *next = cJSON_GetObjectItemCaseSensitive(node, tok);
            node = next ? next : cJSON_GetObjectItem(node, tok);
        } else if (cJSON_IsArray(node)) {
            /* RFC 6901: digits, no leading zero ("-" is past the end) */
            if (n == 0 || (n > 1 && tok[0] == '0'))
                return NULL;
            long idx = 0;
            for (size_t i = 0; i < n; i++) {
                if (tok[i] < '0' || tok[i] > '9' || idx > 1000000)
                    return NULL;
                idx = idx * 10 + (tok[i] - '0');
            }
            node = cJSON_GetArrayItem(node, (int)idx);
        } else {
            return NULL;
        }
        if (node == NULL)
            return NULL;
    }
    return node;
}

/* ---- forms ------------------------------------------------------------------ */

void ch_form_free(struct ch_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->key[i]);
        free(f->val[i]);
    }
    free(f->key);
    free(f->val);
    memset(f, 0, sizeof *f);
}

static char *decode_part(const char *s, size_t len)
{
    char *d = strndup(s, len);
    if (d && http_urldecode(d, 1) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

int ch_form_parse(const char *s, size_t len, struct ch_form *f)
{
    memset(f, 0, sizeof *f);
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '&')
            cap++;
    if (cap > 10000)
        return -E2BIG;
    f->key = calloc(cap, sizeof *f->key);
    f->val = calloc(cap, sizeof *f->val);
    if (f->key == NULL || f->val == NULL) {
        ch_form_free(f);
        return -ENOMEM;
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && s[eq] != '=')
                eq++;
            char *k = decode_part(s + i, eq - i);
            char *v = decode_part(s + (eq < j ? eq + 1 : j), eq < j ? j - eq - 1 : 0);
            if (k == NULL || v == NULL || memchr(s + i, '\0', j - i)) {
                free(k);
                free(v);
                ch_form_free(f);
                return -EINVAL;
            }
            f->key[f->n] = k;
            f->val[f->n] = v;
            f->n++;
        }
        i = j + 1;
    }
    return 0;
}

const char *ch_form_get(const struct ch_form *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->key[i], key) == 0)
            return f->val[i];
    return NULL;
}

/* ---- misc --------------------------------------------------------------------- */

char *ch_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int64_t ch_parse_time(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    long long v;
    if (util_parse_int(s, 0, 99999999999LL, &v) == 0)
        return v;
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm);
    const char *p = s + n;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int sh, sm;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &sh, &sm) == 2)
        t -= (*p == '+' ? 1 : -1) * (int64_t)(sh * 3600 + sm * 60);
    return t;
}
