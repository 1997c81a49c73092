/* template_render.c - one recipient's row -> the final text, with the
 * filters of docs/templates.md. All or nothing: on any error the output
 * buffer is put back as it was, so a half-rendered SMS can never be sent. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/jalali.h"
#include "smsys/odata.h"
#include "smsys/textnorm.h"
#include "smsys/tz.h"
#include "template_int.h"

#define DEFAULT_TZ "Asia/Tehran"

struct rctx {
    const struct template *t;
    const cJSON *row;
    const cJSON *const *rel;
    struct template_error *te;
    struct smsys_err *err;
};

/* A value on its way through the filters. */
struct val {
    int missing;
    int has_num; /* num is the raw number (not yet formatted) */
    double num;
    struct buf s; /* the text so far */
};

/* The object holding the leaf column of pa, or NULL when a lookup on the
 * way is empty (or the relation found no row). */
static const cJSON *leaf_obj(const struct rctx *c, const struct tpath *pa, const char **leaf)
{
    const cJSON *o = c->row;
    size_t k = 0;
    if (pa->rel >= 0) {
        o = c->rel ? c->rel[pa->rel] : NULL;
        k = 1;
    }
    for (; o && k + 1 < pa->n; k++) {
        o = cJSON_GetObjectItemCaseSensitive(o, pa->seg[k]);
        if (!cJSON_IsObject(o))
            return NULL;
    }
    *leaf = pa->seg[pa->n - 1];
    return cJSON_IsObject(o) ? o : NULL;
}

static int put_number_raw(struct buf *b, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        return buf_printf(b, "%.0f", v);
    return buf_printf(b, "%.15g", v);
}

/* Formats v with `dec` decimals and ',' between groups of three digits. */
static int put_grouped(struct buf *b, double v, long dec)
{
    char tmp[64];
    double r = round(v * pow(10, (double)dec)) / pow(10, (double)dec);
    if (r == 0)
        r = 0; /* no "-0" */
    snprintf(tmp, sizeof(tmp), "%.*f", (int)dec, r);
    const char *p = tmp;
    int rc = 0;
    if (*p == '-') {
        rc = buf_putc(b, '-');
        p++;
    }
    size_t intlen = strcspn(p, ".");
    for (size_t i = 0; i < intlen && rc == 0; i++) {
        if (i && (intlen - i) % 3 == 0)
            rc = buf_putc(b, ',');
        if (rc == 0)
            rc = buf_putc(b, p[i]);
    }
    if (rc == 0)
        rc = buf_puts(b, p + intlen);
    return rc;
}

/* The value's number: the raw one, or its text parsed. */
static int as_number(const struct val *v, double *out)
{
    if (v->has_num) {
        *out = v->num;
        return 0;
    }
    if (!v->s.len)
        return -EINVAL;
    char *end;
    errno = 0;
    double d = strtod(v->s.data, &end);
    if (errno || *end || !isfinite(d))
        return -EINVAL;
    *out = d;
    return 0;
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* ISO 8601 as the Web API writes it: "2026-03-20" (date only) or
 * "2026-03-20T20:30:00Z" / with fraction / with an offset. */
static int parse_iso(const char *s, int64_t *utc, int *date_only)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    size_t n = strlen(s);
    if (n < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
        digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -EINVAL;
    *date_only = n == 10;
    int off = 0;
    if (n > 10) {
        if (n < 16 || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || digits(s + 11, 2, &h) ||
            digits(s + 14, 2, &mi) || h > 23 || mi > 59)
            return -EINVAL;
        size_t p = 16;
        if (p < n && s[p] == ':') {
            if (p + 3 > n || digits(s + p + 1, 2, &se) || se > 60)
                return -EINVAL;
            p += 3;
            if (p < n && s[p] == '.') {
                p++;
                while (p < n && s[p] >= '0' && s[p] <= '9')
                    p++;
            }
        }
        if (p < n && s[p] == 'Z')
            p++;
        else if (p < n && (s[p] == '+' || s[p] == '-')) {
            int oh, om;
            if (p + 6 != n || s[p + 3] != ':' || digits(s + p + 1, 2, &oh) ||
                digits(s + p + 4, 2, &om))
                return -EINVAL;
            off = (oh * 3600 + om * 60) * (s[p] == '-' ? -1 : 1);
            p += 6;
        }
        if (p != n)
            return -EINVAL;
    }
    *utc = tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}

static int set_text(struct val *v, const char *s, size_t n)
{
    buf_reset(&v->s);
    v->has_num = 0;
    int rc = buf_append(&v->s, s, n);
    return rc == 0 && !v->s.data ? buf_puts(&v->s, "") : rc;
}

static int verr(const struct rctx *c, const struct tnode *n, enum template_errkind k,
                const char *msg, const struct val *v)
{
    char shown[64];
    snprintf(shown, sizeof(shown), "%s", v && v->s.data ? v->s.data : "");
    return tpl_error(c->t, &n->pos, n->pos.off, k, c->te, c->err, "%s%s%s%s", msg,
                     v ? " (the value is \"" : "", v ? shown : "", v ? "\")" : "");
}

static int apply(const struct rctx *c, const struct tnode *n, const struct tfilter *f,
                 struct val *v, const char **zone)
{
    struct buf tmp = BUF_INIT;
    int rc = 0;
    double d;
    int64_t t;
    int date_only;
    switch (f->kind) {
    case TF_DEFAULT:
        if (v->missing || v->s.len == 0) {
            v->missing = 0;
            rc = set_text(v, f->arg, strlen(f->arg));
        }
        return rc;
    case TF_REQUIRED:
        if (v->missing || v->s.len == 0)
            return verr(c, n, TE_REQUIRED, "required value is missing", NULL);
        return 0;
    case TF_TZ:
        *zone = f->arg;
        return 0;
    case TF_LABEL:
    case TF_RAW:
        return 0;
    default:
        break;
    }
    if (v->missing)
        return 0;
    switch (f->kind) {
    case TF_UPPER:
    case TF_LOWER:
        for (size_t i = 0; i < v->s.len; i++) {
            char ch = v->s.data[i];
            if (f->kind == TF_UPPER && ch >= 'a' && ch <= 'z')
                v->s.data[i] = (char)(ch - 32);
            else if (f->kind == TF_LOWER && ch >= 'A' && ch <= 'Z')
                v->s.data[i] = (char)(ch + 32);
        }
        v->has_num = 0;
        return 0;
    case TF_TRUNCATE: {
        size_t chars = 0, i;
        for (i = 0; i < v->s.len; i++) {
            if (((unsigned char)v->s.data[i] & 0xC0) != 0x80) {
                if (chars == (size_t)f->n)
                    break;
                chars++;
            }
        }
        if (i < v->s.len) {
            v->s.len = i;
            v->s.data[i] = '\0';
            rc = buf_puts(&v->s, "\xE2\x80\xA6"); /* … */
        }
        v->has_num = 0;
        return rc;
    }
    case TF_NUMBER:
    case TF_CURRENCY:
        if (as_number(v, &d) < 0)
            return verr(c, n, TE_VALUE, "not a number", v);
        if (fabs(d) >= 1e18)
            return verr(c, n, TE_VALUE, "number too large", v);
        if (f->kind == TF_CURRENCY)
            d /= (double)f->n;
        rc = put_grouped(&tmp, d, f->kind == TF_NUMBER ? f->n : 0);
        if (rc == 0 && f->kind == TF_CURRENCY)
            rc = buf_puts(&tmp, f->n == 10 ? " تومان" : " ریال");
        break;
    case TF_PERSIAN:
        rc = textnorm_digits_to_persian(v->s.data, v->s.len, &tmp);
        break;
    case TF_DATE:
    case TF_JALALI:
        if (parse_iso(v->s.data, &t, &date_only) < 0)
            return verr(c, n, TE_VALUE, "not a date", v);
        {
            /* a date-only column has no time zone: show it as stored */
            const char *z = date_only ? "UTC" : *zone;
            const char *pat = f->arg ? f->arg : (f->kind == TF_DATE ? "yyyy-MM-dd" : "yyyy/MM/dd");
            rc = f->kind == TF_DATE ? jalali_format_gregorian((time_t)t, z, pat, 0, &tmp)
                                    : jalali_format((time_t)t, z, pat, 0, &tmp);
            if (rc < 0 && rc != -ENOMEM && rc != -E2BIG) {
                buf_free(&tmp);
                return verr(c, n, TE_VALUE,
                            rc == -ERANGE ? "date outside the calendar's range"
                                          : "date cannot be shown in this time zone",
                            v);
            }
        }
        break;
    default:
        return 0;
    }
    if (rc == 0)
        rc = set_text(v, tmp.data ? tmp.data : "", tmp.len);
    buf_free(&tmp);
    return rc;
}

static int uses_raw(const struct tnode *n)
{
    for (size_t i = 0; i < n->nf; i++) {
        switch (n->f[i].kind) {
        case TF_LABEL:
            return 0;
        case TF_RAW:
        case TF_NUMBER:
        case TF_CURRENCY:
        case TF_DATE:
        case TF_JALALI:
            return 1;
        default:
            break;
        }
    }
    return 0;
}

static int render_var(const struct rctx *c, const struct tnode *n, struct buf *out)
{
    struct val v = {.missing = 1, .s = BUF_INIT};
    const char *leaf;
    const cJSON *o = leaf_obj(c, &n->path, &leaf);
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, leaf) : NULL;
    int rc = 0;
    if (j && !cJSON_IsNull(j)) {
        /* Default display: what Dynamics shows (the formatted value: option
         * labels, Yes/No, lookup names), unless a filter needs the raw value. */
        const char *fmt = uses_raw(n) ? NULL : odata_formatted(o, leaf);
        v.missing = 0;
        if (fmt)
            rc = set_text(&v, fmt, strlen(fmt));
        else if (cJSON_IsString(j))
            rc = set_text(&v, j->valuestring, strlen(j->valuestring));
        else if (cJSON_IsNumber(j)) {
            rc = put_number_raw(&v.s, j->valuedouble);
            v.has_num = 1;
            v.num = j->valuedouble;
        } else if (cJSON_IsBool(j))
            rc = set_text(&v, cJSON_IsTrue(j) ? "true" : "false", cJSON_IsTrue(j) ? 4 : 5);
        else
            v.missing = 1; /* objects/arrays have no text */
    }
    const char *zone = DEFAULT_TZ;
    for (size_t i = 0; i < n->nf && rc == 0; i++)
        rc = apply(c, n, &n->f[i], &v, &zone);
    if (rc == 0 && !v.missing && v.s.len)
        rc = buf_append(out, v.s.data, v.s.len);
    buf_free(&v.s);
    return rc;
}

static int truthy(const struct rctx *c, const struct tnode *n)
{
    const char *leaf;
    const cJSON *o = leaf_obj(c, &n->path, &leaf);
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, leaf) : NULL;
    if (!j || cJSON_IsNull(j) || cJSON_IsFalse(j))
        return 0;
    if (cJSON_IsString(j))
        return j->valuestring[0] != '\0';
    if (cJSON_IsNumber(j))
        return j->valuedouble != 0;
    return 1;
}

static int render_block(const struct rctx *c, const struct tblock *b, struct buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const struct tnode *n = &b->v[i];
        switch (n->kind) {
        case TN_TEXT:
        case TN_LIT:
            rc = buf_append(out, n->text, n->text_len);
            break;
        case TN_VAR:
            rc = render_var(c, n, out);
            break;
        case TN_IF:
            rc = render_block(c, truthy(c, n) != n->negate ? &n->then_b : &n->else_b, out);
            break;
        }
    }
    return rc;
}

int template_render(const struct template *t, const cJSON *row, const cJSON *const *rel,
                    struct buf *out, struct template_error *te, struct smsys_err *err)
{
    if (te)
        memset(te, 0, sizeof(*te));
    struct rctx c = {.t = t, .row = row, .rel = rel, .te = te, .err = err};
    size_t start = out->len;
    int rc = render_block(&c, &t->body, out);
    if (rc == 0 && out->len - start > TEMPLATE_MAX_OUTPUT) {
        struct tpos whole = {0, 0};
        rc = tpl_error(t, &whole, 0, TE_LIMIT, te, err, "rendered text longer than %d bytes",
                       TEMPLATE_MAX_OUTPUT);
    }
    if (rc == 0 && !out->data)
        rc = buf_puts(out, "");
    if (rc < 0) {
        if (rc != SMSYS_ETEMPLATE)
            smsys_err_set(err, rc, "cannot render the template: %s", smsys_strerror(rc));
        if (out->data) {
            out->len = start;
            out->data[start] = '\0';
        }
    }
    return rc;
}

/* The code point at s (len bytes left) when it is one of the invisible
 * characters below; its length in bytes, else 0. */
static size_t blank_cp(const unsigned char *s, size_t len)
{
    if (len >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
        return 2; /* U+00A0 no-break space */
    if (len < 3 || s[0] < 0xE2)
        return 0;
    unsigned cp = ((unsigned)(s[0] & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || s[0] > 0xEF)
        return 0;
    if ((cp >= 0x2000 && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
        cp == 0x205F || cp == 0x2060 || cp == 0x3000 || cp == 0xFEFF)
        return 3;
    return 0;
}

int template_text_blank(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (text && i < len) {
        if (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
            i++;
            continue;
        }
        size_t n = blank_cp(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

void template_entity_norm(char *entity)
{
    if (entity == NULL)
        return;
    size_t n = strlen(entity), a = 0;
    while (a < n && (entity[a] == ' ' || (entity[a] >= '\t' && entity[a] <= '\r')))
        a++;
    while (n > a && (entity[n - 1] == ' ' || (entity[n - 1] >= '\t' && entity[n - 1] <= '\r')))
        n--;
    for (size_t i = a; i < n; i++) {
        char c = entity[i];
        entity[i - a] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    entity[n - a] = '\0';
}
