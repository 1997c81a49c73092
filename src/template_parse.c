/* template_parse.c - template text -> compiled template (syntax in
 * docs/templates.md): the placeholders' grammar ({{name | filters}},
 * {{#if}}/{{else}}/{{/if}}, {{let}}, quoted text) and the compile step that
 * resolves aliases into the $select/$expand trees. The tokens inside a
 * placeholder are read by template_lex.c. Every error names the
 * placeholder and the position of the offending token, because the person
 * fixing it is a CRM user looking at a text box, not a developer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/text.h"
#include "template_int.h"

#define MAX_IF_NESTING 16
#define MAX_RELATIONS  8

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
    tpl_path_free(&n->path);
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
        tpl_path_free(&r->of);
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
static int where_text(struct tparser *ps, char **out)
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
                return tpl_perr(ps, TE_RELATION, "')' without '(' in where");
            depth--;
        } else if (!inq && depth == 0 && (c == ' ' || c == '\t') && ps->p + 1 < ps->end) {
            size_t save = ps->p;
            tpl_skip_ws(ps);
            if (tpl_at_word(ps, "latest") || tpl_at_word(ps, "first")) {
                ps->p = save;
                break;
            }
            ps->p = save;
        }
        ps->p++;
    }
    if (inq) {
        ps->p = a;
        return tpl_perr(ps, TE_RELATION, "unclosed ' quote in where");
    }
    if (depth) {
        ps->p = a;
        return tpl_perr(ps, TE_RELATION, "unclosed '(' in where");
    }
    size_t e = ps->p;
    while (e > a && (ps->s[e - 1] == ' ' || ps->s[e - 1] == '\t'))
        e--;
    if (e == a)
        return tpl_perr(ps, TE_RELATION, "where needs a condition");
    *out = strndup(ps->s + a, e - a);
    return *out ? 0 : -ENOMEM;
}

/* let ALIAS = SET(LOOKUP) [of PATH] [where COND] [latest by COL | first by COL] */
static int parse_let(struct tparser *ps)
{
    struct template *t = ps->t;
    int rc = 0;
    if (t->nrels >= MAX_RELATIONS)
        return tpl_perr(ps, TE_LIMIT, "at most %d let relations", MAX_RELATIONS);
    struct trel *nr = realloc(t->rels, (t->nrels + 1) * sizeof(*nr));
    if (!nr)
        return -ENOMEM;
    t->rels = nr;
    struct trel *r = &t->rels[t->nrels++];
    memset(r, 0, sizeof(*r));
    r->pos = ps->pos;
    tpl_skip_ws(ps);
    size_t aat = ps->p;
    if (!(r->alias = tpl_ident(ps, &rc, "a name after let")))
        return rc;
    for (size_t i = 0; i + 1 < t->nrels; i++)
        if (strcmp(t->rels[i].alias, r->alias) == 0) {
            ps->p = aat;
            return tpl_perr(ps, TE_RELATION, "\"%s\" is already defined", r->alias);
        }
    tpl_skip_ws(ps);
    if (ps->p >= ps->end || ps->s[ps->p] != '=')
        return tpl_perr(ps, TE_RELATION, "expected '=' after let %s", r->alias);
    ps->p++;
    tpl_skip_ws(ps);
    if (!(r->set = tpl_ident(ps, &rc, "the related table's entity set name")))
        return rc;
    if (ps->p >= ps->end || ps->s[ps->p] != '(')
        return tpl_perr(ps, TE_RELATION,
                        "expected '(' and the lookup column, e.g. incidents(customerid)");
    ps->p++;
    if (!(r->lookup = tpl_ident(ps, &rc, "the lookup column")))
        return rc;
    if (ps->p >= ps->end || ps->s[ps->p] != ')')
        return tpl_perr(ps, TE_RELATION, "expected ')'");
    ps->p++;
    for (;;) {
        tpl_skip_ws(ps);
        if (ps->p >= ps->end)
            return 0;
        if (tpl_at_word(ps, "of") && !r->of.n && !r->where && !r->by) {
            ps->p += 2;
            tpl_skip_ws(ps);
            if ((rc = tpl_path(ps, &r->of)) < 0)
                return rc;
        } else if (tpl_at_word(ps, "where") && !r->where && !r->by) {
            ps->p += 5;
            tpl_skip_ws(ps);
            if ((rc = where_text(ps, &r->where)) < 0)
                return rc;
        } else if ((tpl_at_word(ps, "latest") || tpl_at_word(ps, "first")) && !r->by) {
            r->desc = tpl_at_word(ps, "latest");
            ps->p += r->desc ? 6 : 5;
            tpl_skip_ws(ps);
            if (!tpl_at_word(ps, "by"))
                return tpl_perr(ps, TE_RELATION, "expected \"by\" and a column");
            ps->p += 2;
            tpl_skip_ws(ps);
            if (!(r->by = tpl_ident(ps, &rc, "a column after by")))
                return rc;
        } else {
            return tpl_perr(ps, TE_RELATION, "expected of, where, latest by or first by");
        }
    }
}

/* One {{...}}: content is s[a..e), pos the whole placeholder. */
static int placeholder(struct tparser *ps, struct tblock **stack, size_t *depth, struct tpos *ifpos)
{
    int rc = 0;
    tpl_skip_ws(ps);
    if (ps->p >= ps->end)
        return tpl_perr(ps, TE_SYNTAX, "empty placeholder");
    struct tblock *cur = stack[*depth];
    if (ps->s[ps->p] == '"') {
        struct tnode *n = block_push(cur);
        if (!n)
            return -ENOMEM;
        n->kind = TN_LIT;
        n->pos = ps->pos;
        if (!(n->text = tpl_string_lit(ps, &rc)))
            return rc;
        n->text_len = strlen(n->text);
        tpl_skip_ws(ps);
        if (ps->p < ps->end)
            return tpl_perr(ps, TE_SYNTAX, "unexpected text after the quoted text");
        return 0;
    }
    if (ps->s[ps->p] == '#') {
        ps->p++;
        if (!tpl_at_word(ps, "if"))
            return tpl_perr(ps, TE_SYNTAX, "unknown block; only {{#if name}} exists");
        ps->p += 2;
        if (*depth >= MAX_IF_NESTING)
            return tpl_perr(ps, TE_LIMIT, "{{#if}} nested too deep");
        struct tnode *n = block_push(cur);
        if (!n)
            return -ENOMEM;
        n->kind = TN_IF;
        n->pos = ps->pos;
        tpl_skip_ws(ps);
        if (tpl_at_word(ps, "not")) {
            n->negate = 1;
            ps->p += 3;
            tpl_skip_ws(ps);
        }
        if ((rc = tpl_path(ps, &n->path)) < 0)
            return rc;
        tpl_skip_ws(ps);
        if (ps->p < ps->end)
            return tpl_perr(ps, TE_SYNTAX, "expected }} after the {{#if}} name");
        ifpos[*depth + 1] = ps->pos;
        stack[++*depth] = &n->then_b;
        return 0;
    }
    if (tpl_at_word(ps, "else") || (ps->s[ps->p] == '/' && ps->p + 1 < ps->end)) {
        int is_else = tpl_at_word(ps, "else");
        if (!is_else) {
            ps->p++;
            if (!tpl_at_word(ps, "if"))
                return tpl_perr(ps, TE_SYNTAX, "unknown block end; only {{/if}} exists");
        }
        if (*depth == 0)
            return tpl_perr(ps, TE_BLOCK, "{{%s}} without {{#if}}", is_else ? "else" : "/if");
        /* the if node is the last node of the enclosing block */
        struct tblock *outer = stack[*depth - 1];
        struct tnode *ifn = &outer->v[outer->n - 1];
        if (is_else && stack[*depth] == &ifn->else_b)
            return tpl_perr(ps, TE_BLOCK, "second {{else}} in one {{#if}}");
        ps->p += is_else ? 4 : 2;
        tpl_skip_ws(ps);
        if (ps->p < ps->end)
            return tpl_perr(ps, TE_SYNTAX, "expected }}");
        if (is_else) {
            stack[*depth] = &ifn->else_b;
        } else {
            --*depth;
        }
        return 0;
    }
    if (tpl_at_word(ps, "let")) {
        ps->p += 3;
        return parse_let(ps);
    }
    struct tnode *n = block_push(cur);
    if (!n)
        return -ENOMEM;
    n->kind = TN_VAR;
    n->pos = ps->pos;
    if ((rc = tpl_path(ps, &n->path)) < 0)
        return rc;
    return tpl_filters(ps, n);
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

static int resolve_path(struct tparser *ps, struct tpath *pa, const struct tpos *pos)
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

static int compile_block(struct tparser *ps, struct tblock *b)
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

static int compile(struct tparser *ps)
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
    struct tparser ps = {.t = t, .s = t->src, .te = te, .err = err};
    if (len > TEMPLATE_MAX_SOURCE) {
        struct tpos whole = {0, 0};
        int rc = tpl_error(t, &whole, 0, TE_LIMIT, te, err, "template longer than %d bytes",
                           TEMPLATE_MAX_SOURCE);
        template_free(t);
        return rc;
    }
    struct tblock *stack[MAX_IF_NESTING + 1]; /* [0] the body, then one per open #if */
    struct tpos ifpos[MAX_IF_NESTING + 1];
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
