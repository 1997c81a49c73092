/* template_parse.c - template text -> compiled template (syntax in
 * docs/templates.md). Every error names the placeholder and the position
 * of the offending token, because the person fixing it is a CRM user
 * looking at a text box, not a developer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/jalali.h"
#include "smsys/text.h"
#include "smsys/tz.h"
#include "template_int.h"

#define MAX_IF_NESTING 16
#define MAX_RELATIONS  8

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
    return smsys_err_set(err, SMSYS_ETEMPLATE, "line %u, column %u (byte %zu), %s: %s", line, col,
                         at, ph, msg);
}

/* ---- parser state ---- */

struct parser {
    struct template *t;
    const char *s; /* t->src */
    size_t p, end; /* cursor inside the current placeholder's content */
    struct tpos pos;
    struct template_error *te;
    struct smsys_err *err;
};

static int is_ident0(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident(char c)
{
    return is_ident0(c) || (c >= '0' && c <= '9');
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (ps->s[ps->p] == ' ' || ps->s[ps->p] == '\t' ||
                               ps->s[ps->p] == '\n' || ps->s[ps->p] == '\r'))
        ps->p++;
}

static int perr(struct parser *ps, enum template_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(struct parser *ps, enum template_errkind kind, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tpl_error(ps->t, &ps->pos, ps->p, kind, ps->te, ps->err, "%s", msg);
}

/* Reads an identifier into a new string; NULL with *rc set when none. */
static char *ident(struct parser *ps, int *rc, const char *what)
{
    if (ps->p >= ps->end || !is_ident0(ps->s[ps->p])) {
        *rc = perr(ps, TE_SYNTAX, "expected %s", what);
        return NULL;
    }
    size_t a = ps->p;
    while (ps->p < ps->end && is_ident(ps->s[ps->p]))
        ps->p++;
    if (ps->p - a > 100) {
        ps->p = a;
        *rc = perr(ps, TE_SYNTAX, "name too long");
        return NULL;
    }
    char *id = strndup(ps->s + a, ps->p - a);
    if (!id)
        *rc = -ENOMEM;
    return id;
}

/* Keyword match: the word at the cursor equals kw (not a longer word). */
static int at_word(const struct parser *ps, const char *kw)
{
    size_t n = strlen(kw);
    return ps->end - ps->p >= n && memcmp(ps->s + ps->p, kw, n) == 0 &&
           (ps->p + n == ps->end || !is_ident(ps->s[ps->p + n]));
}

/* "text" with \" and \\ escapes -> new string. */
static char *string_lit(struct parser *ps, int *rc)
{
    size_t a = ps->p;
    if (ps->p >= ps->end || ps->s[ps->p] != '"') {
        *rc = perr(ps, TE_SYNTAX, "expected a \"quoted\" text");
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
        r = perr(ps, TE_SYNTAX, "unterminated \"text\"");
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

static void path_free(struct tpath *pa)
{
    for (size_t i = 0; i < pa->n; i++)
        free(pa->seg[i]);
    free(pa->seg);
    pa->seg = NULL;
    pa->n = 0;
}

static int path(struct parser *ps, struct tpath *pa)
{
    int rc = 0;
    pa->rel = -1;
    size_t start = ps->p;
    for (;;) {
        if (pa->n > TEMPLATE_MAX_DEPTH) {
            ps->p = start;
            return perr(ps, TE_TOO_DEEP, "more than %d lookups in one name", TEMPLATE_MAX_DEPTH);
        }
        char *id = ident(ps, &rc, pa->n ? "a column name after '.'" : "a column name");
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

static int int_arg(struct parser *ps, long *v, long lo, long hi, const char *fname)
{
    size_t a = ps->p;
    long x = 0;
    while (ps->p < ps->end && ps->s[ps->p] >= '0' && ps->s[ps->p] <= '9' && x <= hi) {
        x = x * 10 + (ps->s[ps->p] - '0');
        ps->p++;
    }
    if (ps->p == a || x < lo || x > hi || (ps->p < ps->end && is_ident(ps->s[ps->p]))) {
        ps->p = a;
        return perr(ps, TE_FILTER_ARG, "%s needs a whole number from %ld to %ld", fname, lo, hi);
    }
    *v = x;
    return 0;
}

static int has_arg(struct parser *ps)
{
    skip_ws(ps);
    return ps->p < ps->end && ps->s[ps->p] != '|';
}

static int filter_one(struct parser *ps, struct tfilter *f)
{
    int rc = 0;
    size_t at = ps->p;
    char *name = ident(ps, &rc, "a filter name after '|'");
    if (!name)
        return rc;
    size_t i;
    for (i = 0; i < sizeof(fdefs) / sizeof(fdefs[0]); i++)
        if (strcmp(fdefs[i].name, name) == 0)
            break;
    if (i == sizeof(fdefs) / sizeof(fdefs[0])) {
        ps->p = at;
        rc = perr(ps, TE_UNKNOWN_FILTER, "unknown filter \"%s\"", name);
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
        skip_ws(ps);
        argat = ps->p;
        if (ps->p >= ps->end || ps->s[ps->p] != '"')
            return perr(ps, TE_FILTER_ARG, "%s needs a \"quoted\" argument", fn);
        if (!(f->arg = string_lit(ps, &rc)))
            return rc;
        if (f->kind == TF_TZ) {
            int off;
            if (tz_offset(f->arg, 0, &off) < 0) {
                ps->p = argat;
                return perr(ps, TE_FILTER_ARG, "unknown time zone \"%s\"", f->arg);
            }
        }
        return 0;
    case TF_TRUNCATE:
        skip_ws(ps);
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
        if (!(f->arg = string_lit(ps, &rc)))
            return rc;
        if (strcmp(f->arg, "IRR") == 0)
            f->n = 1;
        else if (strcmp(f->arg, "IRT") == 0)
            f->n = 10;
        else {
            ps->p = argat;
            return perr(ps, TE_FILTER_ARG, "currency must be \"IRR\" (rial) or \"IRT\" (toman)");
        }
        return 0;
    case TF_DATE:
    case TF_JALALI:
        if (!has_arg(ps))
            return 0;
        argat = ps->p;
        if (!(f->arg = string_lit(ps, &rc)))
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
                return perr(ps, TE_FILTER_ARG, "bad %s pattern (an unclosed ' quote?)", fn);
            }
        }
        return 0;
    default:
        return 0;
    }
}

static int filters(struct parser *ps, struct tnode *n)
{
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return 0;
        if (ps->s[ps->p] != '|')
            return perr(ps, TE_SYNTAX, "expected '|' or the end of the placeholder");
        ps->p++;
        skip_ws(ps);
        if (n->nf >= 16)
            return perr(ps, TE_LIMIT, "too many filters");
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

void tsel_free(struct tsel *s)
{
    for (size_t i = 0; i < s->ncols; i++)
        free(s->cols[i]);
    free(s->cols);
    for (size_t i = 0; i < s->nexp; i++) {
        free(s->exp[i].nav);
        tsel_free(&s->exp[i].sel);
    }
    free(s->exp);
    memset(s, 0, sizeof(*s));
}

static void node_free(struct tnode *n);
static void block_free(struct tblock *b)
{
    for (size_t i = 0; i < b->n; i++)
        node_free(&b->v[i]);
    free(b->v);
    memset(b, 0, sizeof(*b));
}

static void node_free(struct tnode *n)
{
    free(n->text);
    path_free(&n->path);
    for (size_t i = 0; i < n->nf; i++)
        free(n->f[i].arg);
    free(n->f);
    block_free(&n->then_b);
    block_free(&n->else_b);
}

void template_free(struct template *t)
{
    if (!t)
        return;
    block_free(&t->body);
    for (size_t i = 0; i < t->nrels; i++) {
        struct trel *r = &t->rels[i];
        free(r->alias);
        free(r->set);
        free(r->lookup);
        free(r->where);
        free(r->by);
        path_free(&r->of);
        if (t->relsel)
            tsel_free(&t->relsel[i]);
    }
    free(t->rels);
    free(t->relsel);
    tsel_free(&t->root);
    free(t->src);
    free(t);
}

static struct tnode *block_push(struct tblock *b)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8;
        struct tnode *nv = realloc(b->v, nc * sizeof(*nv));
        if (!nv)
            return NULL;
        b->v = nv;
        b->cap = nc;
    }
    struct tnode *n = &b->v[b->n++];
    memset(n, 0, sizeof(*n));
    return n;
}

/* `where` text: up to " latest by" / " first by" outside quotes; parens
 * balanced and quotes closed, so it stays one group inside "(...) and (...)". */
static int where_text(struct parser *ps, char **out)
{
    size_t a = ps->p, depth = 0;
    int inq = 0;
    while (ps->p < ps->end) {
        char c = ps->s[ps->p];
        if (c == '\'')
            inq = !inq;
        else if (!inq && c == '(')
            depth++;
        else if (!inq && c == ')') {
            if (depth == 0)
                return perr(ps, TE_RELATION, "')' without '(' in where");
            depth--;
        } else if (!inq && depth == 0 && (c == ' ' || c == '\t') && ps->p + 1 < ps->end) {
            size_t save = ps->p;
            skip_ws(ps);
            if (at_word(ps, "latest") || at_word(ps, "first")) {
                ps->p = save;
                break;
            }
            ps->p = save;
        }
        ps->p++;
    }
    if (inq) {
        ps->p = a;
        return perr(ps, TE_RELATION, "unclosed ' quote in where");
    }
    if (depth) {
        ps->p = a;
        return perr(ps, TE_RELATION, "unclosed '(' in where");
    }
    size_t e = ps->p;
    while (e > a && (ps->s[e - 1] == ' ' || ps->s[e - 1] == '\t'))
        e--;
    if (e == a)
        return perr(ps, TE_RELATION, "where needs a condition");
    *out = strndup(ps->s + a, e - a);
    return *out ? 0 : -ENOMEM;
}

/* let ALIAS = SET(LOOKUP) [of PATH] [where COND] [latest by COL | first by COL] */
static int parse_let(struct parser *ps)
{
    struct template *t = ps->t;
    int rc = 0;
    if (t->nrels >= MAX_RELATIONS)
        return perr(ps, TE_LIMIT, "at most %d let relations", MAX_RELATIONS);
    struct trel *nr = realloc(t->rels, (t->nrels + 1) * sizeof(*nr));
    if (!nr)
        return -ENOMEM;
    t->rels = nr;
    struct trel *r = &t->rels[t->nrels++];
    memset(r, 0, sizeof(*r));
    r->pos = ps->pos;
    skip_ws(ps);
    size_t aat = ps->p;
    if (!(r->alias = ident(ps, &rc, "a name after let")))
        return rc;
    for (size_t i = 0; i + 1 < t->nrels; i++)
        if (strcmp(t->rels[i].alias, r->alias) == 0) {
            ps->p = aat;
            return perr(ps, TE_RELATION, "\"%s\" is already defined", r->alias);
        }
    skip_ws(ps);
    if (ps->p >= ps->end || ps->s[ps->p] != '=')
        return perr(ps, TE_RELATION, "expected '=' after let %s", r->alias);
    ps->p++;
    skip_ws(ps);
    if (!(r->set = ident(ps, &rc, "the related table's entity set name")))
        return rc;
    if (ps->p >= ps->end || ps->s[ps->p] != '(')
        return perr(ps, TE_RELATION,
                    "expected '(' and the lookup column, e.g. incidents(customerid)");
    ps->p++;
    if (!(r->lookup = ident(ps, &rc, "the lookup column")))
        return rc;
    if (ps->p >= ps->end || ps->s[ps->p] != ')')
        return perr(ps, TE_RELATION, "expected ')'");
    ps->p++;
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return 0;
        if (at_word(ps, "of") && !r->of.n && !r->where && !r->by) {
            ps->p += 2;
            skip_ws(ps);
            if ((rc = path(ps, &r->of)) < 0)
                return rc;
        } else if (at_word(ps, "where") && !r->where && !r->by) {
            ps->p += 5;
            skip_ws(ps);
            if ((rc = where_text(ps, &r->where)) < 0)
                return rc;
        } else if ((at_word(ps, "latest") || at_word(ps, "first")) && !r->by) {
            r->desc = at_word(ps, "latest");
            ps->p += r->desc ? 6 : 5;
            skip_ws(ps);
            if (!at_word(ps, "by"))
                return perr(ps, TE_RELATION, "expected \"by\" and a column");
            ps->p += 2;
            skip_ws(ps);
            if (!(r->by = ident(ps, &rc, "a column after by")))
                return rc;
        } else {
            return perr(ps, TE_RELATION, "expected of, where, latest by or first by");
        }
    }
}

/* One {{...}}: content is s[a..e), pos the whole placeholder. */
static int placeholder(struct parser *ps, struct tblock **stack, size_t *depth, struct tpos *ifpos)
{
    int rc = 0;
    skip_ws(ps);
    if (ps->p >= ps->end)
        return perr(ps, TE_SYNTAX, "empty placeholder");
    struct tblock *cur = stack[*depth];
    if (ps->s[ps->p] == '"') {
        struct tnode *n = block_push(cur);
        if (!n)
            return -ENOMEM;
        n->kind = TN_LIT;
        n->pos = ps->pos;
        if (!(n->text = string_lit(ps, &rc)))
            return rc;
        n->text_len = strlen(n->text);
        skip_ws(ps);
        if (ps->p < ps->end)
            return perr(ps, TE_SYNTAX, "unexpected text after the quoted text");
        return 0;
    }
    if (ps->s[ps->p] == '#') {
        ps->p++;
        if (!at_word(ps, "if"))
            return perr(ps, TE_SYNTAX, "unknown block; only {{#if name}} exists");
        ps->p += 2;
        if (*depth + 1 >= MAX_IF_NESTING)
            return perr(ps, TE_LIMIT, "{{#if}} nested too deep");
        struct tnode *n = block_push(cur);
        if (!n)
            return -ENOMEM;
        n->kind = TN_IF;
        n->pos = ps->pos;
        skip_ws(ps);
        if (at_word(ps, "not")) {
            n->negate = 1;
            ps->p += 3;
            skip_ws(ps);
        }
        if ((rc = path(ps, &n->path)) < 0)
            return rc;
        skip_ws(ps);
        if (ps->p < ps->end)
            return perr(ps, TE_SYNTAX, "expected }} after the {{#if}} name");
        ifpos[*depth + 1] = ps->pos;
        stack[++*depth] = &n->then_b;
        return 0;
    }
    if (at_word(ps, "else") || (ps->s[ps->p] == '/' && ps->p + 1 < ps->end)) {
        int is_else = at_word(ps, "else");
        if (!is_else) {
            ps->p++;
            if (!at_word(ps, "if"))
                return perr(ps, TE_SYNTAX, "unknown block end; only {{/if}} exists");
        }
        if (*depth == 0)
            return perr(ps, TE_BLOCK, "{{%s}} without {{#if}}", is_else ? "else" : "/if");
        /* the if node is the last node of the enclosing block */
        struct tblock *outer = stack[*depth - 1];
        struct tnode *ifn = &outer->v[outer->n - 1];
        if (is_else && stack[*depth] == &ifn->else_b)
            return perr(ps, TE_BLOCK, "second {{else}} in one {{#if}}");
        ps->p += is_else ? 4 : 2;
        skip_ws(ps);
        if (ps->p < ps->end)
            return perr(ps, TE_SYNTAX, "expected }}");
        if (is_else) {
            stack[*depth] = &ifn->else_b;
        } else {
            --*depth;
        }
        return 0;
    }
    if (at_word(ps, "let")) {
        ps->p += 3;
        return parse_let(ps);
    }
    struct tnode *n = block_push(cur);
    if (!n)
        return -ENOMEM;
    n->kind = TN_VAR;
    n->pos = ps->pos;
    if ((rc = path(ps, &n->path)) < 0)
        return rc;
    return filters(ps, n);
}

static int text_node(struct tblock *b, const char *s, size_t a, size_t e)
{
    if (e == a)
        return 0;
    struct tnode *n = block_push(b);
    if (!n)
        return -ENOMEM;
    n->kind = TN_TEXT;
    n->pos.off = a;
    n->pos.len = e - a;
    n->text = strndup(s + a, e - a);
    n->text_len = e - a;
    return n->text ? 0 : -ENOMEM;
}

/* ---- compile: resolve aliases, build the $select/$expand trees ---- */

static int resolve_path(struct parser *ps, struct tpath *pa, const struct tpos *pos)
{
    struct template *t = ps->t;
    for (size_t i = 0; i < t->nrels; i++) {
        if (strcmp(t->rels[i].alias, pa->seg[0]) != 0)
            continue;
        if (pa->n < 2) {
            ps->pos = *pos;
            return tpl_error(t, pos, pos->off, TE_RELATION, ps->te, ps->err,
                             "\"%s\" is a related row; name one of its columns, e.g. %s.name",
                             pa->seg[0], pa->seg[0]);
        }
        pa->rel = (int)i;
        return tsel_add_path(&t->relsel[i], pa->seg + 1, pa->n - 1);
    }
    return tsel_add_path(&t->root, pa->seg, pa->n);
}

static int compile_block(struct parser *ps, struct tblock *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct tnode *n = &b->v[i];
        int rc = 0;
        if (n->kind == TN_VAR || n->kind == TN_IF)
            rc = resolve_path(ps, &n->path, &n->pos);
        if (rc == 0 && n->kind == TN_IF) {
            rc = compile_block(ps, &n->then_b);
            if (rc == 0)
                rc = compile_block(ps, &n->else_b);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int compile(struct parser *ps)
{
    struct template *t = ps->t;
    if (t->nrels) {
        t->relsel = calloc(t->nrels, sizeof(*t->relsel));
        if (!t->relsel)
            return -ENOMEM;
    }
    for (size_t i = 0; i < t->nrels; i++) {
        struct trel *r = &t->rels[i];
        for (size_t j = 0; j < t->nrels; j++)
            if (r->of.n && strcmp(r->of.seg[0], t->rels[j].alias) == 0)
                return tpl_error(t, &r->pos, r->pos.off, TE_RELATION, ps->te, ps->err,
                                 "of must name a lookup of the recipient, not \"%s\"",
                                 r->of.seg[0]);
        if (r->of.n) {
            /* the join key: lookups..., then "_<last>_value" */
            char *last = r->of.seg[r->of.n - 1];
            size_t ln = strlen(last) + 8;
            char *v = malloc(ln);
            if (!v)
                return -ENOMEM;
            snprintf(v, ln, "_%s_value", last);
            r->of.seg[r->of.n - 1] = v;
            free(last);
            int rc = tsel_add_path(&t->root, r->of.seg, r->of.n);
            if (rc < 0)
                return rc;
        }
    }
    return compile_block(ps, &t->body);
}

int template_parse(const char *src, size_t len, struct template **out, struct template_error *te,
                   struct smsys_err *err)
{
    *out = NULL;
    if (te)
        memset(te, 0, sizeof(*te));
    struct text_utf8_err ue;
    if (text_utf8_validate(src, len, &ue) < 0 || memchr(src, '\0', len)) {
        smsys_err_set(err, SMSYS_EUTF8, "template is not valid UTF-8 text");
        return SMSYS_EUTF8;
    }
    struct template *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->src = malloc(len + 1);
    if (!t->src) {
        free(t);
        return -ENOMEM;
    }
    memcpy(t->src, src, len);
    t->src[len] = '\0';
    t->len = len;
    struct parser ps = {.t = t, .s = t->src, .te = te, .err = err};
    if (len > TEMPLATE_MAX_SOURCE) {
        struct tpos whole = {0, 0};
        int rc = tpl_error(t, &whole, 0, TE_LIMIT, te, err, "template longer than %d bytes",
                           TEMPLATE_MAX_SOURCE);
        template_free(t);
        return rc;
    }
    struct tblock *stack[MAX_IF_NESTING];
    struct tpos ifpos[MAX_IF_NESTING];
    size_t depth = 0;
    stack[0] = &t->body;
    size_t p = 0;
    int rc = 0;
    while (rc == 0 && p < len) {
        const char *o = memmem(t->src + p, len - p, "{{", 2);
        size_t a = o ? (size_t)(o - t->src) : len;
        if ((rc = text_node(stack[depth], t->src, p, a)) < 0 || !o)
            break;
        /* find the closing }} outside "quoted" arguments */
        size_t q = a + 2;
        int inq = 0;
        while (q + 1 < len) {
            char c = t->src[q];
            if (inq && c == '\\' && q + 2 < len) {
                q += 2;
                continue;
            }
            if (c == '"')
                inq = !inq;
            else if (!inq && c == '}' && t->src[q + 1] == '}')
                break;
            q++;
        }
        ps.pos.off = a;
        if (q + 1 >= len) {
            const char *nl = memchr(t->src + a, '\n', len - a);
            ps.pos.len = nl ? (size_t)(nl - t->src) - a : len - a;
            ps.p = a;
            rc = tpl_error(t, &ps.pos, a, TE_SYNTAX, te, err, "placeholder not closed with }}");
            break;
        }
        ps.pos.len = q + 2 - a;
        ps.p = a + 2;
        ps.end = q;
        rc = placeholder(&ps, stack, &depth, ifpos);
        p = q + 2;
    }
    if (rc == 0 && depth > 0)
        rc = tpl_error(t, &ifpos[depth], ifpos[depth].off, TE_BLOCK, te, err,
                       "{{#if}} is not closed with {{/if}}");
    if (rc == 0)
        rc = compile(&ps);
    if (rc < 0) {
        if (rc == -ENOMEM)
            smsys_err_set(err, rc, "out of memory");
        template_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
