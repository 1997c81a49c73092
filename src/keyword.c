/* keyword.c - keyword rules and their pure evaluation (keyword.h). */
#include "smsys/keyword.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/textnorm.h"

/* Most words one keyword phrase may have. */
#define KW_PHRASE_MAX 16

struct rule {
    struct kw_rule_def def; /* strings owned (strdup) */
    char **lines;           /* normalised keyword lines */
    size_t nlines;
};

struct kw_rules {
    struct rule *r;
    size_t n, cap;
};

int keyword_rules_new(struct kw_rules **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static void rule_free(struct rule *r)
{
    free((char *)r->def.id);
    free((char *)r->def.name);
    free((char *)r->def.keywords);
    free((char *)r->def.account_id);
    free((char *)r->def.template_id);
    free((char *)r->def.queue_id);
    free((char *)r->def.action_name);
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
}

void keyword_rules_free(struct kw_rules *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++)
        rule_free(&rs->r[i]);
    free(rs->r);
    free(rs);
}

size_t keyword_rules_count(const struct kw_rules *rs)
{
    return rs ? rs->n : 0;
}

const char *keyword_action_name(int action)
{
    static const char *const names[] = {"?",           "opt out",        "opt in",     "reply",
                                        "create case", "route to queue", "call action"};
    return action >= 1 && action <= 6 ? names[action] : "?";
}

const char *keyword_match_name(int match)
{
    static const char *const names[] = {"?", "any word", "all words", "first word", "exact text"};
    return match >= 1 && match <= 4 ? names[match] : "?";
}

/* strdup that keeps NULL and maps "" to NULL (optional lookups). */
static int dup_opt(const char *s, const char **out)
{
    *out = NULL;
    if (s == NULL || *s == '\0')
        return 0;
    char *d = strdup(s);
    if (d == NULL)
        return -ENOMEM;
    *out = d;
    return 0;
}

static int invalid(struct smsys_err *err, const char *def_name, const char *why)
{
    if (err) {
        err->code = -EINVAL;
        snprintf(err->detail, sizeof(err->detail), "keyword rule %s: %s",
                 def_name ? def_name : "(unnamed)", why);
    }
    return -EINVAL;
}

int keyword_rules_add(struct kw_rules *rs, const struct kw_rule_def *def, struct smsys_err *err)
{
    if (def->match < KW_ANY || def->match > KW_EXACT)
        return invalid(err, def->name, "match must be 1-4");
    if (def->action < KW_OPT_OUT || def->action > KW_CALL)
        return invalid(err, def->name, "action must be 1-6");
    if (def->action == KW_REPLY && (def->template_id == NULL || !*def->template_id))
        return invalid(err, def->name, "reply (action 3) needs a template");
    if (def->action == KW_ROUTE && (def->queue_id == NULL || !*def->queue_id))
        return invalid(err, def->name, "route to queue (action 5) needs a queue");
    if (def->action == KW_CALL && (def->action_name == NULL || !*def->action_name))
        return invalid(err, def->name, "call action (action 6) needs an action name");
    if (def->keywords == NULL)
        return invalid(err, def->name, "no keywords");

    struct buf norm = {0};
    int rc = textnorm_keywords(def->keywords, &norm);
    if (rc < 0) {
        buf_free(&norm);
        if (err) {
            err->code = rc;
            snprintf(err->detail, sizeof(err->detail), "keyword rule %s: keywords are not UTF-8",
                     def->name ? def->name : "(unnamed)");
        }
        return rc;
    }
    if (buf_putc(&norm, '\0') < 0) {
        buf_free(&norm);
        return -ENOMEM;
    }
    struct rule r;
    memset(&r, 0, sizeof(r));
    r.def = *def;
    rc = 0;
    size_t lcap = 0;
    for (char *p = norm.data, *nl; p && *p && rc == 0; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (*p == '\0')
            continue;
        if (r.nlines == lcap) {
            lcap = lcap ? lcap * 2 : 4;
            char **nlns = realloc(r.lines, lcap * sizeof(*nlns));
            if (nlns == NULL) {
                rc = -ENOMEM;
                break;
            }
            r.lines = nlns;
        }
        r.lines[r.nlines] = strdup(p);
        if (r.lines[r.nlines] == NULL)
            rc = -ENOMEM;
        else
            r.nlines++;
    }
    buf_free(&norm);
    r.def.id = r.def.name = r.def.keywords = r.def.account_id = NULL;
    r.def.template_id = r.def.queue_id = r.def.action_name = NULL;
    if (rc == 0 && r.nlines == 0)
        rc = invalid(err, def->name, "no keywords");
    if (rc == 0)
        rc = dup_opt(def->id ? def->id : "", &r.def.id);
    if (rc == 0)
        rc = dup_opt(def->name ? def->name : "", &r.def.name);
    if (rc == 0)
        rc = dup_opt(def->keywords, &r.def.keywords);
    if (rc == 0)
        rc = dup_opt(def->account_id, &r.def.account_id);
    if (rc == 0)
        rc = dup_opt(def->template_id, &r.def.template_id);
    if (rc == 0)
        rc = dup_opt(def->queue_id, &r.def.queue_id);
    if (rc == 0)
        rc = dup_opt(def->action_name, &r.def.action_name);
    if (rc == 0 && rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 8;
        struct rule *nr = realloc(rs->r, ncap * sizeof(*nr));
        if (nr == NULL)
            rc = -ENOMEM;
        else {
            rs->r = nr;
            rs->cap = ncap;
        }
    }
    if (rc < 0) {
        rule_free(&r);
        return rc;
    }
    rs->r[rs->n++] = r;
    return 0;
}

int keyword_rules_add_defaults(struct kw_rules *rs)
{
    static const struct kw_rule_def defs[] = {
        {.id = "builtin:optout",
         .name = "built-in opt-out",
         .keywords = "STOP\nUNSUBSCRIBE\n\xD9\x84\xD8\xBA\xD9\x88\n"
                     "\xD9\x84\xD8\xBA\xD9\x88\xDB\xB1\xDB\xB1\n"
                     "\xD8\xA7\xD9\x86\xD8\xB5\xD8\xB1\xD8\xA7\xD9\x81",
         .match = KW_EXACT,
         .action = KW_OPT_OUT,
         .priority = -1000,
         .stop = 1},
        {.id = "builtin:optin",
         .name = "built-in opt-in",
         .keywords = "START\n\xD8\xB4\xD8\xB1\xD9\x88\xD8\xB9",
         .match = KW_EXACT,
         .action = KW_OPT_IN,
         .priority = -1000,
         .stop = 1},
    };
    int have[7] = {0};
    for (size_t i = 0; i < rs->n; i++)
        have[rs->r[i].def.action] = 1;
    int added = 0;
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        if (have[defs[i].action])
            continue;
        int rc = keyword_rules_add(rs, &defs[i], NULL);
        if (rc < 0)
            return rc;
        added++;
    }
    return added;
}

static const char *jstr(const cJSON *row, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *row, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : def;
}

int keyword_rules_from_json(struct kw_rules *rs, const cJSON *rows, unsigned *skipped)
{
    unsigned skip = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (jint(row, "statecode", 0) != 0)
            continue; /* inactive rule */
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(row, "smsys_stop");
        struct kw_rule_def d = {
            .id = jstr(row, "smsys_keywordruleid"),
            .name = jstr(row, "smsys_name"),
            .keywords = jstr(row, "smsys_keywords"),
            .match = jint(row, "smsys_match", 0),
            .action = jint(row, "smsys_action", 0),
            .priority = jint(row, "smsys_priority", 0),
            .stop = cJSON_IsTrue(stop),
            .account_id = jstr(row, "_smsys_settingid_value"),
            .template_id = jstr(row, "_smsys_templateid_value"),
            .queue_id = jstr(row, "_smsys_queueid_value"),
            .action_name = jstr(row, "smsys_actionname"),
        };
        struct smsys_err err = {0};
        int rc = keyword_rules_add(rs, &d, &err);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {
            skip++;
            log_warn("keyword rule skipped", "id=%s reason=%s", d.id ? d.id : "",
                     log_q(err.detail));
        }
    }
    if (skipped)
        *skipped = skip;
    return 0;
}

/* ---- evaluation ---- */

struct span {
    const char *p;
    size_t len;
};

struct spans {
    struct span *s;
    size_t n, cap;
};

static int span_cb(const char *word, size_t len, void *ud)
{
    struct spans *sp = ud;
    if (sp->n == sp->cap) {
        size_t ncap = sp->cap ? sp->cap * 2 : 16;
        struct span *ns = realloc(sp->s, ncap * sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        sp->s = ns;
        sp->cap = ncap;
    }
    sp->s[sp->n].p = word;
    sp->s[sp->n].len = len;
    sp->n++;
    return 0;
}

/* Message words: the original text is split on the separators first, so
 * each normalised word remembers the original word it came from (for the
 * rest text), then each original word is normalised and split again
 * (normalisation may turn a no-break space into a separator space). */
struct words {
    struct buf norm;   /* NUL-terminated normalised words, back to back */
    const char *base;  /* where they are once handed to the result */
    size_t *off, *len; /* into norm */
    size_t *orig;      /* index of the original word */
    size_t n, cap;
};

static int words_push(struct words *w, size_t off, size_t len, size_t orig)
{
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        size_t *a = realloc(w->off, ncap * sizeof(*a));
        if (a == NULL)
            return -ENOMEM;
        w->off = a;
        a = realloc(w->len, ncap * sizeof(*a));
        if (a == NULL)
            return -ENOMEM;
        w->len = a;
        a = realloc(w->orig, ncap * sizeof(*a));
        if (a == NULL)
            return -ENOMEM;
        w->orig = a;
        w->cap = ncap;
    }
    w->off[w->n] = off;
    w->len[w->n] = len;
    w->orig[w->n] = orig;
    w->n++;
    return 0;
}

static int build_words(const char *text, const char *seps, struct spans *orig, struct words *w)
{
    int rc = textnorm_split(text, seps, span_cb, orig);
    if (rc < 0)
        return rc;
    struct buf one = {0}, n1 = {0};
    struct spans sub = {0};
    for (size_t i = 0; i < orig->n && rc == 0; i++) {
        buf_reset(&one);
        buf_reset(&n1);
        sub.n = 0;
        if ((rc = buf_append(&one, orig->s[i].p, orig->s[i].len)) < 0 ||
            (rc = buf_putc(&one, '\0')) < 0)
            break;
        if ((rc = textnorm_keywords(one.data, &n1)) < 0 || (rc = buf_putc(&n1, '\0')) < 0)
            break;
        if ((rc = textnorm_split(n1.data, seps, span_cb, &sub)) < 0)
            break;
        for (size_t k = 0; k < sub.n && rc == 0; k++) {
            size_t off = w->norm.len;
            if ((rc = buf_append(&w->norm, sub.s[k].p, sub.s[k].len)) == 0 &&
                (rc = buf_putc(&w->norm, '\0')) == 0)
                rc = words_push(w, off, sub.s[k].len, i);
        }
    }
    buf_free(&one);
    buf_free(&n1);
    free(sub.s);
    return rc;
}

static int cmp_rule(const void *a, const void *b)
{
    const struct rule *x = *(const struct rule *const *)a, *y = *(const struct rule *const *)b;
    if (x->def.priority != y->def.priority)
        return x->def.priority < y->def.priority ? -1 : 1;
    int c = strcmp(x->def.name ? x->def.name : "", y->def.name ? y->def.name : "");
    if (c)
        return c;
    return strcmp(x->def.id ? x->def.id : "", y->def.id ? y->def.id : "");
}

/* Does phrase pw[0..pn) occur at message word i? */
static int phrase_at(const struct words *w, size_t i, struct span *pw, size_t pn)
{
    if (pn == 0 || i + pn > w->n)
        return 0;
    for (size_t k = 0; k < pn; k++)
        if (w->len[i + k] != pw[k].len || memcmp(w->base + w->off[i + k], pw[k].p, pw[k].len))
            return 0;
    return 1;
}

/* Marks in hit[] the words of rule r's match; returns 1 if it fired. */
static int rule_fires(const struct rule *r, const struct words *w, const char *seps,
                      unsigned char *hit, int *rcp)
{
    int all = 1, any = 0;
    for (size_t l = 0; l < r->nlines; l++) {
        struct span pw[KW_PHRASE_MAX];
        struct spans ps = {0};
        int rc = textnorm_split(r->lines[l], seps, span_cb, &ps);
        if (rc < 0) {
            free(ps.s);
            *rcp = rc;
            return 0;
        }
        size_t pn = ps.n < KW_PHRASE_MAX ? ps.n : KW_PHRASE_MAX;
        if (ps.n > 0)
            memcpy(pw, ps.s, pn * sizeof(pw[0]));
        free(ps.s);
        int found = 0;
        switch (r->def.match) {
        case KW_ANY:
        case KW_ALL:
            for (size_t i = 0; i + pn <= w->n; i++)
                if (phrase_at(w, i, pw, pn)) {
                    found = 1;
                    memset(hit + i, 1, pn);
                }
            break;
        case KW_FIRST:
            if (phrase_at(w, 0, pw, pn)) {
                found = 1;
                memset(hit, 1, pn);
            }
            break;
        case KW_EXACT:
            if (pn == w->n && phrase_at(w, 0, pw, pn)) {
                found = 1;
                memset(hit, 1, pn);
            }
            break;
        }
        any |= found;
        all &= found;
    }
    return r->def.match == KW_ALL ? all && r->nlines > 0 : any;
}

int keyword_eval(const struct kw_rules *rs, const char *text, const char *separators,
                 const char *account_id, struct kw_result *out)
{
    memset(out, 0, sizeof(*out));
    struct spans orig = {0};
    struct words w = {0};
    const struct rule **order = NULL;
    unsigned char *hit = NULL, *any = NULL;
    int rc = build_words(text ? text : "", separators, &orig, &w);
    if (rc < 0)
        goto done;
    size_t nr = rs ? rs->n : 0;
    order = calloc(nr ? nr : 1, sizeof(*order));
    hit = calloc(w.n ? w.n : 1, 1);
    any = calloc(w.n ? w.n : 1, 1);
    out->hits = calloc(nr ? nr : 1, sizeof(*out->hits));
    out->w = calloc(w.n ? w.n : 1, sizeof(*out->w));
    if (!order || !hit || !any || !out->hits || !out->w) {
        rc = -ENOMEM;
        goto done;
    }
    /* Hand the normalised words to the result (hits point into them). */
    out->norm = w.norm.data ? buf_steal(&w.norm) : strdup("");
    if (out->norm == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    w.base = out->norm;
    for (size_t i = 0; i < w.n; i++)
        out->w[i] = out->norm + w.off[i];
    out->nwords = w.n;
    for (size_t i = 0; i < nr; i++)
        order[i] = &rs->r[i];
    if (nr > 1)
        qsort(order, nr, sizeof(*order), cmp_rule);

    for (size_t i = 0; i < nr; i++) {
        const struct rule *r = order[i];
        if (r->def.account_id &&
            (account_id == NULL || strcasecmp(r->def.account_id, account_id) != 0))
            continue;
        memset(hit, 0, w.n ? w.n : 1);
        if (!rule_fires(r, &w, separators, hit, &rc)) {
            if (rc < 0)
                goto done;
            continue;
        }
        struct kw_hit *h = &out->hits[out->nhits++];
        h->rule = &r->def;
        size_t k = 0;
        for (size_t j = 0; j < w.n; j++)
            k += hit[j];
        h->words = calloc(k ? k : 1, sizeof(*h->words));
        if (h->words == NULL) {
            rc = -ENOMEM;
            goto done;
        }
        for (size_t j = 0; j < w.n; j++)
            if (hit[j]) {
                h->words[h->nwords++] = out->w[j];
                any[j] = 1;
            }
        if (r->def.stop)
            break;
    }

    /* Rest: the original words none of whose normalised parts matched. */
    struct buf rest = {0};
    unsigned char *drop = calloc(orig.n ? orig.n : 1, 1);
    if (drop == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t j = 0; j < w.n; j++)
        if (any[j])
            drop[w.orig[j]] = 1;
    for (size_t i = 0; i < orig.n && rc == 0; i++) {
        if (drop[i])
            continue;
        if (rest.len)
            rc = buf_putc(&rest, ' ');
        if (rc == 0)
            rc = buf_append(&rest, orig.s[i].p, orig.s[i].len);
    }
    free(drop);
    if (rc == 0)
        rc = buf_putc(&rest, '\0');
    if (rc == 0)
        out->rest = buf_steal(&rest);
    buf_free(&rest);

done:
    free(orig.s);
    buf_free(&w.norm);
    free(w.off);
    free(w.len);
    free(w.orig);
    free(order);
    free(hit);
    free(any);
    if (rc < 0)
        keyword_result_free(out);
    return rc;
}

void keyword_result_free(struct kw_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nhits; i++)
        free(r->hits[i].words);
    free(r->hits);
    free(r->rest);
    free(r->norm);
    free(r->w);
    memset(r, 0, sizeof(*r));
}
