/* template_lex.c - the token readers of the template parser: names,
 * keywords, "quoted" text, dotted paths and the filter chain with its
 * arguments, each inside one placeholder's content (ps->p .. ps->end), and
 * tpl_error, which turns a byte offset into the line and column a CRM user
 * sees in the text box. The placeholders' grammar is template_parse.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/jalali.h"
#include "smsys/tz.h"
#include "template_int.h"

int tpl_error(const struct template *t, const struct tpos *pos, size_t at,
              enum template_errkind kind, struct template_error *te, struct smsys_err *err,
              const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned line = 1, col = 1;
    if (at > t->len)
        at = t->len;
    for (size_t i = 0; i < at; i++) {
        unsigned char c = (unsigned char)t->src[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    char ph[160];
    size_t plen = pos->len;
    if (pos->off + plen > t->len)
        plen = t->len - pos->off;
    if (plen > sizeof(ph) - 4) {
        /* cut on a character boundary, then mark the cut */
        plen = sizeof(ph) - 4;
        while (plen > 0 && ((unsigned char)t->src[pos->off + plen] & 0xC0) == 0x80)
            plen--;
        memcpy(ph, t->src + pos->off, plen);
        memcpy(ph + plen, "...", 4);
    } else {
        memcpy(ph, t->src + pos->off, plen);
        ph[plen] = '\0';
    }
    if (te) {
        te->kind = kind;
        te->line = line;
        te->column = col;
        te->offset = at;
        snprintf(te->placeholder, sizeof(te->placeholder), "%s", ph);
        snprintf(te->message, sizeof(te->message), "%s", msg);
    }
    if (ph[0] == '\0') /* about the whole template, not a place in it */
        return smsys_err_set(err, SMSYS_ETEMPLATE, "%s", msg);
    return smsys_err_set(err, SMSYS_ETEMPLATE, "line %u, column %u (byte %zu), %s: %s", line, col,
                         at, ph, msg);
}

static int is_ident0(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident(char c)
{
    return is_ident0(c) || (c >= '0' && c <= '9');
}

void tpl_skip_ws(struct tparser *ps)
{
    while (ps->p < ps->end && (ps->s[ps->p] == ' ' || ps->s[ps->p] == '\t' ||
                               ps->s[ps->p] == '\n' || ps->s[ps->p] == '\r'))
        ps->p++;
}

int tpl_perr(struct tparser *ps, enum template_errkind kind, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tpl_error(ps->t, &ps->pos, ps->p, kind, ps->te, ps->err, "%s", msg);
}

/* Reads an identifier into a new string; NULL with *rc set when none. */
char *tpl_ident(struct tparser *ps, int *rc, const char *what)
{
    if (ps->p >= ps->end || !is_ident0(ps->s[ps->p])) {
        *rc = tpl_perr(ps, TE_SYNTAX, "expected %s", what);
        return NULL;
    }
    size_t a = ps->p;
    while (ps->p < ps->end && is_ident(ps->s[ps->p]))
        ps->p++;
    if (ps->p - a > 100) {
        ps->p = a;
        *rc = tpl_perr(ps, TE_SYNTAX, "name too long");
        return NULL;
    }
    char *id = strndup(ps->s + a, ps->p - a);
    if (!id)
        *rc = -ENOMEM;
    return id;
}

/* Keyword match: the word at the cursor equals kw (not a longer word). */
int tpl_at_word(const struct tparser *ps, const char *kw)
{
    size_t n = strlen(kw);
    return ps->end - ps->p >= n && memcmp(ps->s + ps->p, kw, n) == 0 &&
           (ps->p + n == ps->end || !is_ident(ps->s[ps->p + n]));
}

/* "text" with \" and \\ escapes -> new string. */
char *tpl_string_lit(struct tparser *ps, int *rc)
{
    size_t a = ps->p;
    if (ps->p >= ps->end || ps->s[ps->p] != '"') {
        *rc = tpl_perr(ps, TE_SYNTAX, "expected a \"quoted\" text");
        return NULL;
    }
    ps->p++;
    struct buf b = BUF_INIT;
    int r = 0;
    while (ps->p < ps->end && ps->s[ps->p] != '"') {
        char c = ps->s[ps->p];
        if (c == '\\' && ps->p + 1 < ps->end &&
            (ps->s[ps->p + 1] == '"' || ps->s[ps->p + 1] == '\\')) {
            c = ps->s[ps->p + 1];
            ps->p++;
        }
        if ((r = buf_putc(&b, c)) < 0)
            break;
        ps->p++;
    }
    if (r == 0 && ps->p >= ps->end) {
        ps->p = a;
        r = tpl_perr(ps, TE_SYNTAX, "unterminated \"text\"");
    }
    if (r == 0 && !b.data)
        r = buf_puts(&b, "");
    if (r < 0) {
        buf_free(&b);
        *rc = r;
        return NULL;
    }
    ps->p++;
    return buf_steal(&b);
}

void tpl_path_free(struct tpath *pa)
{
    for (size_t i = 0; i < pa->n; i++)
        free(pa->seg[i]);
    free(pa->seg);
    pa->seg = NULL;
    pa->n = 0;
}

int tpl_path(struct tparser *ps, struct tpath *pa)
{
    int rc = 0;
    pa->rel = -1;
    size_t start = ps->p;
    for (;;) {
        if (pa->n > TEMPLATE_MAX_DEPTH) {
            ps->p = start;
            return tpl_perr(ps, TE_TOO_DEEP, "more than %d lookups in one name",
                            TEMPLATE_MAX_DEPTH);
        }
        char *id = tpl_ident(ps, &rc, pa->n ? "a column name after '.'" : "a column name");
        if (!id)
            return rc;
        char **ns = realloc(pa->seg, (pa->n + 1) * sizeof(*ns));
        if (!ns) {
            free(id);
            return -ENOMEM;
        }
        pa->seg = ns;
        pa->seg[pa->n++] = id;
        if (ps->p < ps->end && ps->s[ps->p] == '.') {
            ps->p++;
            continue;
        }
        return 0;
    }
}

struct fdef {
    const char *name;
    enum tf_kind kind;
};
static const struct fdef fdefs[] = {
    {"default", TF_DEFAULT},
    {"required", TF_REQUIRED},
    {"upper", TF_UPPER},
    {"lower", TF_LOWER},
    {"truncate", TF_TRUNCATE},
    {"number", TF_NUMBER},
    {"persian", TF_PERSIAN},
    {"currency", TF_CURRENCY},
    {"date", TF_DATE},
    {"jalali", TF_JALALI},
    {"tz", TF_TZ},
    {"label", TF_LABEL},
    {"raw", TF_RAW},
};

static int int_arg(struct tparser *ps, long *v, long lo, long hi, const char *fname)
{
    size_t a = ps->p;
    long x = 0;
    while (ps->p < ps->end && ps->s[ps->p] >= '0' && ps->s[ps->p] <= '9' && x <= hi) {
        x = x * 10 + (ps->s[ps->p] - '0');
        ps->p++;
    }
    if (ps->p == a || x < lo || x > hi || (ps->p < ps->end && is_ident(ps->s[ps->p]))) {
        ps->p = a;
        return tpl_perr(ps, TE_FILTER_ARG, "%s needs a whole number from %ld to %ld", fname, lo,
                        hi);
    }
    *v = x;
    return 0;
}

static int has_arg(struct tparser *ps)
{
    tpl_skip_ws(ps);
    return ps->p < ps->end && ps->s[ps->p] != '|';
}

static int filter_one(struct tparser *ps, struct tfilter *f)
{
    int rc = 0;
    size_t at = ps->p;
    char *name = tpl_ident(ps, &rc, "a filter name after '|'");
    if (!name)
        return rc;
    size_t i;
    for (i = 0; i < sizeof(fdefs) / sizeof(fdefs[0]); i++)
        if (strcmp(fdefs[i].name, name) == 0)
            break;
    if (i == sizeof(fdefs) / sizeof(fdefs[0])) {
        ps->p = at;
        rc = tpl_perr(ps, TE_UNKNOWN_FILTER, "unknown filter \"%s\"", name);
        free(name);
        return rc;
    }
    free(name);
    f->kind = fdefs[i].kind;
    const char *fn = fdefs[i].name;
    size_t argat;
    switch (f->kind) {
    case TF_DEFAULT:
    case TF_TZ:
        tpl_skip_ws(ps);
        argat = ps->p;
        if (ps->p >= ps->end || ps->s[ps->p] != '"')
            return tpl_perr(ps, TE_FILTER_ARG, "%s needs a \"quoted\" argument", fn);
        if (!(f->arg = tpl_string_lit(ps, &rc)))
            return rc;
        if (f->kind == TF_TZ) {
            int off;
            if (tz_offset(f->arg, 0, &off) < 0) {
                ps->p = argat;
                return tpl_perr(ps, TE_FILTER_ARG, "unknown time zone \"%s\"", f->arg);
            }
        }
        return 0;
    case TF_TRUNCATE:
        tpl_skip_ws(ps);
        return int_arg(ps, &f->n, 1, 10000, fn);
    case TF_NUMBER:
        if (has_arg(ps))
            return int_arg(ps, &f->n, 0, 6, fn);
        return 0;
    case TF_CURRENCY:
        f->n = 1;
        if (!has_arg(ps))
            return 0;
        argat = ps->p;
        if (!(f->arg = tpl_string_lit(ps, &rc)))
            return rc;
        if (strcmp(f->arg, "IRR") == 0)
            f->n = 1;
        else if (strcmp(f->arg, "IRT") == 0)
            f->n = 10;
        else {
            ps->p = argat;
            return tpl_perr(ps, TE_FILTER_ARG,
                            "currency must be \"IRR\" (rial) or \"IRT\" (toman)");
        }
        return 0;
    case TF_DATE:
    case TF_JALALI:
        if (!has_arg(ps))
            return 0;
        argat = ps->p;
        if (!(f->arg = tpl_string_lit(ps, &rc)))
            return rc;
        {
            /* try the pattern once so a bad one fails at save time */
            struct buf tmp = BUF_INIT;
            int r = f->kind == TF_DATE ? jalali_format_gregorian(0, "UTC", f->arg, 0, &tmp)
                                       : jalali_format(0, "UTC", f->arg, 0, &tmp);
            buf_free(&tmp);
            if (r == -ENOMEM)
                return r;
            if (r < 0) {
                ps->p = argat;
                return tpl_perr(ps, TE_FILTER_ARG,
                                "bad %s pattern (a letter that is no field, or an unclosed ' "
                                "quote; put text in '...')",
                                fn);
            }
        }
        return 0;
    default:
        return 0;
    }
}

int tpl_filters(struct tparser *ps, struct tnode *n)
{
    for (;;) {
        tpl_skip_ws(ps);
        if (ps->p >= ps->end)
            return 0;
        if (ps->s[ps->p] != '|')
            return tpl_perr(ps, TE_SYNTAX, "expected '|' or the end of the placeholder");
        ps->p++;
        tpl_skip_ws(ps);
        if (n->nf >= 16)
            return tpl_perr(ps, TE_LIMIT, "too many filters");
        struct tfilter *nf = realloc(n->f, (n->nf + 1) * sizeof(*nf));
        if (!nf)
            return -ENOMEM;
        n->f = nf;
        memset(&n->f[n->nf], 0, sizeof(n->f[0]));
        n->nf++;
        int rc = filter_one(ps, &n->f[n->nf - 1]);
        if (rc < 0)
            return rc;
    }
}
