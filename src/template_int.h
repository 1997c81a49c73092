/* template_int.h - the compiled form of a template, shared by
 * template_parse.c, template_lex.c, template_render.c, template_plan.c and
 * template_batch.c; and the parser state the first two share. */
#ifndef SMSYS_TEMPLATE_INT_H
#define SMSYS_TEMPLATE_INT_H

#include <stddef.h>
#include "smsys/template.h"

enum tf_kind {
    TF_DEFAULT,
    TF_REQUIRED,
    TF_UPPER,
    TF_LOWER,
    TF_TRUNCATE,
    TF_NUMBER,
    TF_PERSIAN,
    TF_CURRENCY,
    TF_DATE,
    TF_JALALI,
    TF_TZ,
    TF_LABEL,
    TF_RAW,
};

struct tfilter {
    enum tf_kind kind;
    char *arg; /* string argument or NULL */
    long n;    /* numeric argument (truncate, number decimals; currency: 10 for IRT) */
};

/* Where a placeholder is, for error messages. */
struct tpos {
    size_t off, len; /* the whole {{...}} */
};

struct tpath {
    char **seg; /* lookups..., column */
    size_t n;
    int rel; /* -1: the recipient's row, else relation index (seg[0] is the alias) */
};

enum tnode_kind { TN_TEXT, TN_VAR, TN_LIT, TN_IF };

struct tblock {
    struct tnode *v;
    size_t n, cap;
};

struct tnode {
    enum tnode_kind kind;
    struct tpos pos;
    char *text; /* TN_TEXT, TN_LIT */
    size_t text_len;
    struct tpath path; /* TN_VAR, TN_IF */
    struct tfilter *f;
    size_t nf;
    int negate;                   /* TN_IF: {{#if not x}} */
    struct tblock then_b, else_b; /* TN_IF */
};

struct trel {
    char *alias, *set, *lookup, *where, *by;
    int desc;
    struct tpath of; /* n == 0: joined on the recipient's key */
    struct tpos pos;
};

/* $select/$expand tree of one table. */
struct tsel {
    char **cols;
    size_t ncols;
    struct texp *exp;
    size_t nexp;
};
struct texp {
    char *nav;
    struct tsel sel;
};

struct template
{
    char *src;
    size_t len;
    struct tblock body;
    struct trel *rels;
    size_t nrels;
    struct tsel root;
    struct tsel *relsel; /* nrels */
};

/* Fills te/err for the placeholder at pos, the position (line, column)
 * being the byte offset at (the offending token). Returns SMSYS_ETEMPLATE. */
int tpl_error(const struct template *t, const struct tpos *pos, size_t at,
              enum template_errkind kind, struct template_error *te, struct smsys_err *err,
              const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* ---- the parser (template_parse.c, template_lex.c) ---- */

struct tparser {
    struct template *t;
    const char *s; /* t->src */
    size_t p, end; /* cursor inside the current placeholder's content */
    struct tpos pos;
    struct template_error *te;
    struct smsys_err *err;
};

/* template_lex.c: the token readers. Each works inside the placeholder's
 * content; on error it returns tpl_perr's code (or -ENOMEM). */
void tpl_skip_ws(struct tparser *ps);
/* tpl_error at the cursor, for the placeholder in ps->pos. */
int tpl_perr(struct tparser *ps, enum template_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reads an identifier into a new string; NULL with *rc set when none. */
char *tpl_ident(struct tparser *ps, int *rc, const char *what);
/* Keyword match: the word at the cursor equals kw (not a longer word). */
int tpl_at_word(const struct tparser *ps, const char *kw);
/* "text" with \" and \\ escapes -> new string; NULL with *rc set. */
char *tpl_string_lit(struct tparser *ps, int *rc);
/* name(.name)* into pa (segments owned by pa); 0 or an error. */
int tpl_path(struct tparser *ps, struct tpath *pa);
void tpl_path_free(struct tpath *pa);
/* The filters after a name: ("|" filter [argument])*, into n->f. */
int tpl_filters(struct tparser *ps, struct tnode *n);

int tsel_add_path(struct tsel *s, char *const *seg, size_t n);
void tsel_free(struct tsel *s);
/* Appends "a,b" and "nav($select=..;$expand=..)" lists. */
int tsel_write(const struct tsel *s, struct buf *select, struct buf *expand);

#endif
