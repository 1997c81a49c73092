/* metrics.c - Prometheus registry and text exposition format 0.0.4.
 *
 * A registry is a list of families (one per metric name, in registration
 * order); a family is a list of series (one per label-value set). Each
 * series keeps its labels pre-rendered and escaped, so rendering is plain
 * appends and an update is one addition. Single-threaded by contract (see
 * metrics.h). */
#include "smsys/metrics.h"

#include "smsys/util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mtype { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct family;

struct metric {
    struct family *f;
    struct metric *next;
    char *labels;      /* k="v",k2="v2" escaped; "" when none */
    double value;      /* counter, gauge; histogram: sum */
    uint64_t count;    /* histogram observations */
    uint64_t *buckets; /* histogram: per-bucket counts (not cumulative) */
};

struct family {
    struct family *next;
    char *name;
    char *help;
    char *lnames; /* label names, comma-joined: series must agree */
    enum mtype type;
    double *bounds;
    size_t nbounds;
    struct metric *first, *last;
};

struct metrics {
    struct family *first, *last;
};

static struct metrics default_registry;

static struct metrics *reg(struct metrics *m)
{
    return m ? m : &default_registry;
}

int metrics_new(struct metrics **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static void metric_free(struct metric *x)
{
    free(x->labels);
    free(x->buckets);
    free(x);
}

static void family_free(struct family *f)
{
    for (struct metric *x = f->first, *n; x; x = n) {
        n = x->next;
        metric_free(x);
    }
    free(f->name);
    free(f->help);
    free(f->lnames);
    free(f->bounds);
    free(f);
}

void metrics_free(struct metrics *m)
{
    struct metrics *r = reg(m);
    for (struct family *f = r->first, *n; f; f = n) {
        n = f->next;
        family_free(f);
    }
    r->first = r->last = NULL;
    if (m)
        free(m);
}

/* ---- validation and escaping ---------------------------------------------- */

static int name_ok(const char *s, int colon_ok)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon_ok && c == ':')))
            return 0;
    }
    return 1;
}

/* Label values: backslash, double quote and newline are escaped. */
static int put_label_value(struct buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = buf_append(b, "\\\\", 2);
        else if (*s == '"')
            rc = buf_append(b, "\\\"", 2);
        else if (*s == '\n')
            rc = buf_append(b, "\\n", 2);
        else
            rc = buf_putc(b, *s);
    }
    return rc;
}

/* HELP text: backslash and newline are escaped (quotes are not). */
static int put_help(struct buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = buf_append(b, "\\\\", 2);
        else if (*s == '\n')
            rc = buf_append(b, "\\n", 2);
        else
            rc = buf_putc(b, *s);
    }
    return rc;
}

/* Shortest text that reads back as v; Prometheus spellings of the
 * specials. */
static int put_double(struct buf *b, double v)
{
    char tmp[40];
    if (isnan(v))
        return buf_append(b, "NaN", 3);
    if (isinf(v))
        return buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    return buf_puts(b, tmp);
}

/* Renders labels into *out (escaped) and their names into *names.
 * Returns 0, -EINVAL or -ENOMEM. */
static int render_labels(const char *const *labels, int histogram, char **out, char **names)
{
    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *k = labels[i];
        if (labels[i + 1] == NULL || !name_ok(k, 0) || strncmp(k, "__", 2) == 0 ||
            (histogram && strcmp(k, "le") == 0))
            return -EINVAL;
        /* the same label twice would render an invalid series */
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(labels[j], k) == 0)
                return -EINVAL;
    }
    struct buf b = BUF_INIT, n = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (i)
            rc |= buf_putc(&b, ',') | buf_putc(&n, ',');
        rc |= buf_puts(&b, labels[i]) | buf_append(&b, "=\"", 2) |
              put_label_value(&b, labels[i + 1]) | buf_putc(&b, '"') | buf_puts(&n, labels[i]);
    }
    *out = rc ? NULL : buf_steal(&b);
    *names = rc ? NULL : buf_steal(&n);
    buf_free(&b);
    buf_free(&n);
    if (*out == NULL || *names == NULL) {
        free(*out);
        free(*names);
        return -ENOMEM;
    }
    return 0;
}

/* ---- registration ------------------------------------------------------- */

static struct family *family_get(struct metrics *r, const char *name, const char *help,
                                 enum mtype type, const char *lnames, const double *bounds,
                                 size_t nbounds)
{
    for (struct family *f = r->first; f; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        if (f->type != type || strcmp(f->help, help) != 0 || strcmp(f->lnames, lnames) != 0 ||
            f->nbounds != nbounds ||
            (nbounds && memcmp(f->bounds, bounds, nbounds * sizeof(*bounds)) != 0))
            return NULL;
        return f;
    }
    struct family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help);
    f->lnames = strdup(lnames);
    f->type = type;
    f->nbounds = nbounds;
    if (nbounds) {
        f->bounds = malloc(nbounds * sizeof(*bounds));
        if (f->bounds)
            memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
    }
    if (!f->name || !f->help || !f->lnames || (nbounds && !f->bounds)) {
        family_free(f);
        return NULL;
    }
    if (r->last)
        r->last->next = f;
    else
        r->first = f;
    r->last = f;
    return f;
}

static struct metric *series_get(struct metrics *m, const char *name, const char *help,
                                 enum mtype type, const char *const *labels, const double *bounds,
                                 size_t nbounds)
{
    struct metrics *r = reg(m);
    char *lab = NULL, *lnames = NULL;
    if (!name_ok(name, 1) || help == NULL)
        return NULL;
    if (type == MT_HISTOGRAM) {
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
                return NULL;
    }
    if (render_labels(labels, type == MT_HISTOGRAM, &lab, &lnames) != 0)
        return NULL;
    struct metric *x = NULL;
    struct family *f = family_get(r, name, help, type, lnames, bounds, nbounds);
    free(lnames);
    if (f == NULL)
        goto out;
    for (x = f->first; x; x = x->next)
        if (strcmp(x->labels, lab) == 0)
            goto out;
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        goto out;
    if (nbounds && (x->buckets = calloc(nbounds, sizeof(*x->buckets))) == NULL) {
        free(x);
        x = NULL;
        goto out;
    }
    x->f = f;
    x->labels = lab;
    lab = NULL;
    if (f->last)
        f->last->next = x;
    else
        f->first = x;
    f->last = x;
out:
    free(lab);
    return x;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels)
{
    return series_get(m, name, help, MT_COUNTER, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels)
{
    return series_get(m, name, help, MT_GAUGE, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *bounds, size_t nbounds)
{
    return series_get(m, name, help, MT_HISTOGRAM, labels, bounds, nbounds);
}

/* ---- updates ------------------------------------------------------------- */

void metrics_inc(struct metric *x)
{
    metrics_add(x, 1);
}

void metrics_add(struct metric *x, double v)
{
    if (x == NULL || x->f->type == MT_HISTOGRAM || isnan(v))
        return;
    if (x->f->type == MT_COUNTER && v < 0)
        return;
    x->value += v;
}

void metrics_set(struct metric *x, double v)
{
    if (x && x->f->type == MT_GAUGE)
        x->value = v;
}

void metrics_dec(struct metric *x)
{
    if (x && x->f->type == MT_GAUGE)
        x->value -= 1;
}

void metrics_observe(struct metric *x, double v)
{
    if (x == NULL || x->f->type != MT_HISTOGRAM || isnan(v))
        return;
    const struct family *f = x->f;
    /* first bucket whose bound is >= v; past the last: only +Inf */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < f->nbounds)
        x->buckets[lo]++;
    x->count++;
    x->value += v;
}

double metrics_value(const struct metric *x)
{
    if (x == NULL)
        return 0;
    return x->f->type == MT_HISTOGRAM ? (double)x->count : x->value;
}

/* ---- rendering ------------------------------------------------------------- */

/* name{labels[,extra]} (braces only when there is something inside) */
static int put_series(struct buf *b, const char *name, const char *suffix, const char *labels,
                      const char *extra_k, double extra_v)
{
    int rc = buf_puts(b, name) | buf_puts(b, suffix);
    if (*labels || extra_k) {
        rc |= buf_putc(b, '{') | buf_puts(b, labels);
        if (extra_k) {
            rc |= (*labels ? buf_putc(b, ',') : 0) | buf_puts(b, extra_k) |
                  buf_append(b, "=\"", 2) | put_double(b, extra_v) | buf_putc(b, '"');
        }
        rc |= buf_putc(b, '}');
    }
    return rc | buf_putc(b, ' ');
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    const struct metrics *r = m ? m : &default_registry;
    int rc = 0;
    for (const struct family *f = r->first; f && rc == 0; f = f->next) {
        if (f->first == NULL)
            continue;
        rc |= buf_append(out, "# HELP ", 7) | buf_puts(out, f->name) | buf_putc(out, ' ') |
              put_help(out, f->help) | buf_append(out, "\n# TYPE ", 8) | buf_puts(out, f->name) |
              buf_putc(out, ' ') | buf_puts(out, type_names[f->type]) | buf_putc(out, '\n');
        for (const struct metric *x = f->first; x && rc == 0; x = x->next) {
            if (f->type != MT_HISTOGRAM) {
                rc |= put_series(out, f->name, "", x->labels, NULL, 0) | put_double(out, x->value) |
                      buf_putc(out, '\n');
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i < f->nbounds; i++) {
                cum += x->buckets[i];
                rc |= put_series(out, f->name, "_bucket", x->labels, "le", f->bounds[i]) |
                      put_double(out, (double)cum) | buf_putc(out, '\n');
            }
            rc |= put_series(out, f->name, "_bucket", x->labels, "le", INFINITY) |
                  put_double(out, (double)x->count) | buf_putc(out, '\n') |
                  put_series(out, f->name, "_sum", x->labels, NULL, 0) | put_double(out, x->value) |
                  buf_putc(out, '\n') | put_series(out, f->name, "_count", x->labels, NULL, 0) |
                  put_double(out, (double)x->count) | buf_putc(out, '\n');
        }
    }
    return rc ? -ENOMEM : 0;
}

void metrics_http_handler(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct buf b = BUF_INIT;
    if (metrics_render(ud, &b) != 0) {
        buf_free(&b);
        http_resp_send(resp, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    http_resp_send(resp, 200, METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
    buf_free(&b);
}
