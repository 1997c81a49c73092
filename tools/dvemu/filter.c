/* filter.c - OData $filter: a recursive-descent parser into a small tree
 * and its evaluation against a stored row. Property names are checked
 * against the table so an unknown name is a 400, as on Dataverse.
 * String comparison is case-insensitive like Dataverse's SQL collation. */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dvemu.h"

enum fkind { F_AND, F_OR, F_NOT, F_CMP, F_FUNC, F_IN };
enum fop { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE };

struct fnode {
    enum fkind kind;
    enum fop op;
    int fn; /* 0 contains, 1 startswith, 2 endswith */
    char *prop;
    enum col_type ctype;
    cJSON *lit; /* literal, or array of literals for F_IN */
    struct fnode *a, *b;
};

void filter_free(struct fnode *n)
{
    if (n == NULL)
        return;
    filter_free(n->a);
    filter_free(n->b);
    free(n->prop);
    cJSON_Delete(n->lit);
    free(n);
}

int64_t parse_datetime(const char *s, int *ok)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    *ok = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return 0;
    const char *p = s + 10;
    int64_t off = 0;
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2)
            return 0;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1)
                return 0;
            p += 1 + m;
            if (*p == '.') {
                p++;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
                return 0;
            off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ok = 1;
    return (int64_t)timegm(&tm) - off;
}

void format_datetime(int64_t secs, char *out, size_t len)
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- parser ---- */

struct parser {
    const char *s;
    const struct table *t;
    char *err;
    size_t errlen;
    int failed;
    int depth; /* bounds recursion on "((((" and "not not not" */
};

static void perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
}

static void skip_ws(struct parser *p)
{
    while (*p->s == ' ' || *p->s == '\t')
        p->s++;
}

/* Reads an identifier (letters, digits, _ . /) into a new string. */
static char *read_ident(struct parser *p)
{
    skip_ws(p);
    const char *st = p->s;
    while (isalnum((unsigned char)*p->s) || *p->s == '_' || *p->s == '.' || *p->s == '/')
        p->s++;
    if (p->s == st)
        return NULL;
    return strndup(st, (size_t)(p->s - st));
}

static int accept_word(struct parser *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if (strncmp(p->s, w, n) == 0 && !isalnum((unsigned char)p->s[n]) && p->s[n] != '_') {
        p->s += n;
        return 1;
    }
    return 0;
}

static int accept_ch(struct parser *p, char c)
{
    skip_ws(p);
    if (*p->s == c) {
        p->s++;
        return 1;
    }
    return 0;
}

static cJSON *read_literal(struct parser *p)
{
    skip_ws(p);
    if (*p->s == '\'') {
        struct buf b = BUF_INIT;
        p->s++;
        for (;;) {
            if (*p->s == '\0') {
                buf_free(&b);
                perr(p, "%s", "Syntax error: unterminated string literal.");
                return NULL;
            }
            if (*p->s == '\'') {
                if (p->s[1] == '\'') {
                    buf_putc(&b, '\'');
                    p->s += 2;
                    continue;
                }
                p->s++;
                break;
            }
            buf_putc(&b, *p->s++);
        }
        cJSON *j = cJSON_CreateString(b.data ? b.data : "");
        buf_free(&b);
        return j;
    }
    if (accept_word(p, "null"))
        return cJSON_CreateNull();
    if (accept_word(p, "true"))
        return cJSON_CreateTrue();
    if (accept_word(p, "false"))
        return cJSON_CreateFalse();
    const char *st = p->s;
    while (isalnum((unsigned char)*p->s) || *p->s == '-' || *p->s == ':' || *p->s == '.' ||
           *p->s == '+')
        p->s++;
    size_t n = (size_t)(p->s - st);
    if (n == 0 || n > 64) {
        perr(p, "Syntax error at position %s in the $filter expression.", "?");
        return NULL;
    }
    char tok[65];
    memcpy(tok, st, n);
    tok[n] = '\0';
    if (guid_valid(tok, n)) {
        guid_lower(tok);
        return cJSON_CreateString(tok);
    }
    int ok;
    parse_datetime(tok, &ok);
    if (ok)
        return cJSON_CreateString(tok);
    char *end;
    double v = strtod(tok, &end);
    if (*end != '\0' || !isfinite(v)) {
        perr(p, "Syntax error: '%s' is not a valid literal.", tok);
        return NULL;
    }
    return cJSON_CreateNumber(v);
}

static int resolve_prop(struct parser *p, const char *name, enum col_type *ct)
{
    const struct column *c = table_column(p->t, name);
    if (c && c->type == CT_LOOKUP)
        c = NULL; /* lookups are filtered through _x_value */
    if (c == NULL)
        c = table_lookup_by_value(p->t, name);
    if (c == NULL) {
        if (!p->failed) {
            p->failed = 1;
            snprintf(p->err, p->errlen,
                     "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.",
                     name, p->t->logical);
        }
        return -1;
    }
    *ct = c->type;
    return 0;
}

static struct fnode *node_new(enum fkind k)
{
    return calloc(1, sizeof(struct fnode));
}

static struct fnode *parse_or(struct parser *p);

/* Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['a','b']) */
static struct fnode *parse_in(struct parser *p, int negate)
{
    struct fnode *n = node_new(F_IN);
    n->kind = F_IN;
    n->lit = cJSON_CreateArray();
    char *prop = NULL;
    if (!accept_ch(p, '(') || !accept_word(p, "PropertyName") || !accept_ch(p, '='))
        goto bad;
    cJSON *pn = read_literal(p);
    if (!cJSON_IsString(pn)) {
        cJSON_Delete(pn);
        goto bad;
    }
    prop = strdup(pn->valuestring);
    cJSON_Delete(pn);
    n->prop = prop;
    if (resolve_prop(p, prop, &n->ctype) || !accept_ch(p, ',') ||
        !accept_word(p, "PropertyValues") || !accept_ch(p, '=') || !accept_ch(p, '['))
        goto bad;
    do {
        cJSON *v = read_literal(p);
        if (v == NULL)
            goto bad;
        /* the values come as strings; compare numbers as numbers */
        if (cJSON_IsString(v) && n->ctype != CT_STRING && n->ctype != CT_MEMO &&
            n->ctype != CT_GUID && n->ctype != CT_LOOKUP && n->ctype != CT_DATETIME) {
            char *end;
            double d = strtod(v->valuestring, &end);
            if (*end == '\0' && end != v->valuestring) {
                cJSON_Delete(v);
                v = cJSON_CreateNumber(d);
            }
        }
        cJSON_AddItemToArray(n->lit, v);
    } while (accept_ch(p, ','));
    if (!accept_ch(p, ']') || !accept_ch(p, ')'))
        goto bad;
    return negate ? filter_not_new(n) : n;
bad:
    perr(p, "%s",
         "Syntax error in Microsoft.Dynamics.CRM.In(PropertyName=...,PropertyValues=[...]).");
    filter_free(n);
    return NULL;
}

static struct fnode *parse_primary(struct parser *p)
{
    if (accept_ch(p, '(')) {
        struct fnode *n = parse_or(p);
        if (n && !accept_ch(p, ')')) {
            perr(p, "%s", "Syntax error: ')' expected in the $filter expression.");
            filter_free(n);
            return NULL;
        }
        return n;
    }
    char *id = read_ident(p);
    if (id == NULL) {
        perr(p, "%s", "Syntax error: property name expected in the $filter expression.");
        return NULL;
    }
    if (strcmp(id, "Microsoft.Dynamics.CRM.In") == 0 ||
        strcmp(id, "Microsoft.Dynamics.CRM.NotIn") == 0) {
        int negate = id[23] == 'N';
        free(id);
        return parse_in(p, negate);
    }
    int fn = -1;
    if (strcmp(id, "contains") == 0)
        fn = 0;
    else if (strcmp(id, "startswith") == 0)
        fn = 1;
    else if (strcmp(id, "endswith") == 0)
        fn = 2;
    skip_ws(p);
    if (fn >= 0 && *p->s == '(') {
        free(id);
        p->s++;
        struct fnode *n = node_new(F_FUNC);
        n->kind = F_FUNC;
        n->fn = fn;
        n->prop = read_ident(p);
        if (n->prop == NULL || resolve_prop(p, n->prop, &n->ctype) || !accept_ch(p, ',') ||
            (n->lit = read_literal(p)) == NULL || !cJSON_IsString(n->lit) || !accept_ch(p, ')')) {
            perr(p, "%s", "Syntax error in a function call of the $filter expression.");
            filter_free(n);
            return NULL;
        }
        return n;
    }
    struct fnode *n = node_new(F_CMP);
    n->kind = F_CMP;
    n->prop = id;
    if (resolve_prop(p, id, &n->ctype)) {
        filter_free(n);
        return NULL;
    }
    static const char *ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    int found = 0;
    for (int i = 0; i < 6 && !found; i++)
        if (accept_word(p, ops[i])) {
            n->op = (enum fop)i;
            found = 1;
        }
    if (!found) {
        perr(p, "%s", "Syntax error: comparison operator expected in the $filter expression.");
        filter_free(n);
        return NULL;
    }
    n->lit = read_literal(p);
    if (n->lit == NULL) {
        filter_free(n);
        return NULL;
    }
    return n;
}

static struct fnode *parse_unary(struct parser *p)
{
    if (++p->depth > 64) {
        perr(p, "%s", "The $filter expression is nested too deeply.");
        return NULL;
    }
    struct fnode *n;
    if (accept_word(p, "not")) {
        struct fnode *a = parse_unary(p);
        n = a ? filter_not_new(a) : NULL;
    } else {
        n = parse_primary(p);
    }
    p->depth--;
    return n;
}

static struct fnode *parse_and(struct parser *p)
{
    struct fnode *a = parse_unary(p);
    while (a && accept_word(p, "and")) {
        struct fnode *b = parse_unary(p);
        if (b == NULL) {
            filter_free(a);
            return NULL;
        }
        a = filter_bool_new(1, a, b);
    }
    return a;
}

static struct fnode *parse_or(struct parser *p)
{
    struct fnode *a = parse_and(p);
    while (a && accept_word(p, "or")) {
        struct fnode *b = parse_and(p);
        if (b == NULL) {
            filter_free(a);
            return NULL;
        }
        a = filter_bool_new(0, a, b);
    }
    return a;
}

struct fnode *filter_parse(const struct table *t, const char *src, char *err, size_t errlen)
{
    struct parser p = {.s = src, .t = t, .err = err, .errlen = errlen};
    struct fnode *n = parse_or(&p);
    skip_ws(&p);
    if (n && *p.s != '\0') {
        perr(&p, "Syntax error at '%s' in the $filter expression.", p.s);
        filter_free(n);
        return NULL;
    }
    if (n == NULL && !p.failed)
        snprintf(err, errlen, "Invalid $filter expression.");
    return n;
}

struct fnode *filter_cmp_new(const char *op, const char *prop, const cJSON *lit)
{
    static const char *ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    struct fnode *n = node_new(F_CMP);
    n->kind = F_CMP;
    for (int i = 0; i < 6; i++)
        if (strcmp(op, ops[i]) == 0)
            n->op = (enum fop)i;
    n->prop = strdup(prop);
    n->ctype = CT_STRING;
    n->lit = cJSON_Duplicate(lit, 1);
    return n;
}

struct fnode *filter_bool_new(int is_and, struct fnode *a, struct fnode *b)
{
    struct fnode *n = node_new(F_AND);
    n->kind = is_and ? F_AND : F_OR;
    n->a = a;
    n->b = b;
    return n;
}

struct fnode *filter_not_new(struct fnode *a)
{
    struct fnode *n = node_new(F_NOT);
    n->kind = F_NOT;
    n->a = a;
    return n;
}

struct fnode *filter_func_new(const char *fn, const char *prop, const char *arg)
{
    struct fnode *n = node_new(F_FUNC);
    n->kind = F_FUNC;
    n->fn = strcmp(fn, "contains") == 0 ? 0 : strcmp(fn, "startswith") == 0 ? 1 : 2;
    n->prop = strdup(prop);
    n->lit = cJSON_CreateString(arg);
    return n;
}

/* ---- evaluation ---- */

static int is_null(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

/* Orders two values of the same column; NULL sorts first. */
int value_cmp(const cJSON *a, const cJSON *b)
{
    if (is_null(a) || is_null(b))
        return is_null(a) ? (is_null(b) ? 0 : -1) : 1;
    if (cJSON_IsString(a) && cJSON_IsString(b)) {
        int oka, okb;
        int64_t ta = parse_datetime(a->valuestring, &oka);
        int64_t tb = parse_datetime(b->valuestring, &okb);
        if (oka && okb)
            return ta < tb ? -1 : ta > tb;
        return strcasecmp(a->valuestring, b->valuestring);
    }
    double x = cJSON_IsBool(a) ? cJSON_IsTrue(a) : a->valuedouble;
    double y = cJSON_IsBool(b) ? cJSON_IsTrue(b) : b->valuedouble;
    return x < y ? -1 : x > y;
}

static int cmp_eval(const struct fnode *n, const cJSON *v)
{
    const cJSON *l = n->lit;
    if (cJSON_IsNull(l) || is_null(v)) {
        int both = cJSON_IsNull(l) && is_null(v);
        if (n->op == OP_EQ)
            return both;
        if (n->op == OP_NE)
            return !both;
        return 0;
    }
    int c;
    if (cJSON_IsString(v) && cJSON_IsString(l)) {
        c = value_cmp(v, l);
    } else if ((cJSON_IsNumber(v) || cJSON_IsBool(v)) && (cJSON_IsNumber(l) || cJSON_IsBool(l))) {
        c = value_cmp(v, l);
    } else if (cJSON_IsNumber(v) && cJSON_IsString(l)) {
        /* fetchxml values arrive as text */
        double d = strtod(l->valuestring, NULL);
        c = v->valuedouble < d ? -1 : v->valuedouble > d;
    } else if (cJSON_IsBool(v) && cJSON_IsString(l)) {
        int lb = strcmp(l->valuestring, "1") == 0 || strcasecmp(l->valuestring, "true") == 0;
        c = cJSON_IsTrue(v) - lb;
    } else {
        return n->op == OP_NE;
    }
    switch (n->op) {
    case OP_EQ:
        return c == 0;
    case OP_NE:
        return c != 0;
    case OP_GT:
        return c > 0;
    case OP_GE:
        return c >= 0;
    case OP_LT:
        return c < 0;
    case OP_LE:
        return c <= 0;
    }
    return 0;
}

static int func_eval(const struct fnode *n, const cJSON *v)
{
    if (!cJSON_IsString(v))
        return 0;
    const char *s = v->valuestring, *a = n->lit->valuestring;
    size_t ls = strlen(s), la = strlen(a);
    if (n->fn == 0)
        return strcasestr(s, a) != NULL;
    if (la > ls)
        return 0;
    if (n->fn == 1)
        return strncasecmp(s, a, la) == 0;
    return strcasecmp(s + ls - la, a) == 0;
}

int filter_eval(const struct fnode *n, const cJSON *row)
{
    switch (n->kind) {
    case F_AND:
        return filter_eval(n->a, row) && filter_eval(n->b, row);
    case F_OR:
        return filter_eval(n->a, row) || filter_eval(n->b, row);
    case F_NOT:
        return !filter_eval(n->a, row);
    case F_CMP:
        return cmp_eval(n, cJSON_GetObjectItemCaseSensitive(row, n->prop));
    case F_FUNC:
        return func_eval(n, cJSON_GetObjectItemCaseSensitive(row, n->prop));
    case F_IN: {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, n->prop);
        const cJSON *l;
        struct fnode probe = {.kind = F_CMP, .op = OP_EQ};
        cJSON_ArrayForEach(l, n->lit)
        {
            probe.lit = (cJSON *)l;
            if (cmp_eval(&probe, v))
                return 1;
        }
        return 0;
    }
    }
    return 0;
}

/* Adds the rows whose primary key literal l names to *c (a superset
 * check is done later by filter_eval). Returns 0, or -1 when l could name
 * a row the index cannot find (not a GUID string) so the caller scans. */
static int key_add(const struct table *t, const cJSON *l, struct row ***c, size_t *nc, size_t *cap)
{
    if (!cJSON_IsString(l) || strlen(l->valuestring) != 36 || !guid_valid(l->valuestring, 36))
        return -1;
    char id[37];
    memcpy(id, l->valuestring, 37);
    guid_lower(id);
    struct row *row = store_get(t, id);
    if (row == NULL)
        return 0;
    if (*nc == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct row **nv = realloc(*c, ncap * sizeof(**c));
        if (nv == NULL)
            return -1;
        *c = nv;
        *cap = ncap;
    }
    (*c)[(*nc)++] = row;
    return 0;
}

/* Candidate rows for n through the primary-key index, as Dataverse uses
 * its clustered index: `In` or `eq` on the key, an `or` of such, or an
 * `and` with one such side. Returns 0 when n is keyed (candidates in *c,
 * unordered, maybe repeated), -1 when only a scan can answer it. */
static int key_candidates(const struct table *t, const struct fnode *n, struct row ***c, size_t *nc,
                          size_t *cap)
{
    switch (n->kind) {
    case F_IN: {
        if (n->prop == NULL || strcmp(n->prop, t->pk) != 0)
            return -1;
        const cJSON *l;
        cJSON_ArrayForEach(l, n->lit)
        {
            if (key_add(t, l, c, nc, cap))
                return -1;
        }
        return 0;
    }
    case F_CMP:
        if (n->op != OP_EQ || n->prop == NULL || strcmp(n->prop, t->pk) != 0)
            return -1;
        return key_add(t, n->lit, c, nc, cap);
    case F_OR:
        if (key_candidates(t, n->a, c, nc, cap))
            return -1;
        return key_candidates(t, n->b, c, nc, cap);
    case F_AND: {
        size_t keep = *nc;
        if (key_candidates(t, n->a, c, nc, cap) == 0)
            return 0;
        *nc = keep;
        return key_candidates(t, n->b, c, nc, cap);
    }
    default:
        return -1;
    }
}

static int slot_cmp(const void *a, const void *b)
{
    const struct row *x = *(struct row *const *)a, *y = *(struct row *const *)b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

int filter_rows_by_key(const struct table *t, const struct fnode *n, struct row ***m, size_t *nm)
{
    struct row **c = NULL;
    size_t nc = 0, cap = 0;
    *nm = 0;
    if (n == NULL || key_candidates(t, n, &c, &nc, &cap)) {
        free(c);
        return -1;
    }
    /* No candidate leaves c NULL, and qsort's pointer must not be NULL. */
    if (nc > 1)
        qsort(c, nc, sizeof(*c), slot_cmp);
    size_t k = 0;
    for (size_t i = 0; i < nc; i++) {
        if (k > 0 && c[k - 1] == c[i])
            continue;
        if (!filter_eval(n, c[i]->obj))
            continue;
        c[k++] = c[i];
    }
    free(*m);
    *m = c;
    *nm = k;
    return 0;
}

size_t filter_rows(const struct table *t, const struct fnode *n, struct row ***m)
{
    size_t nm = 0, cap = 0;
    if (filter_rows_by_key(t, n, m, &nm) == 0)
        return nm;
    for (size_t i = 0; i < t->nrows_slots; i++) {
        struct row *row = t->rows[i];
        if (row == NULL || (n && !filter_eval(n, row->obj)))
            continue;
        if (nm == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct row **nmv = realloc(*m, ncap * sizeof(**m));
            if (nmv == NULL)
                break;
            *m = nmv;
            cap = ncap;
        }
        (*m)[nm++] = row;
    }
    return nm;
}
