/* pickup_rules.c - the decisions of the pickup, without I/O: which phone
 * columns to read (F3), what a party's number is, which account and line
 * send an SMS (F4), and whether its text can be sent at all. */
#include "pickup_int.h"

#include "smsys/buf.h"
#include "smsys/odata.h"
#include "smsys/template.h"
#include "smsys/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pk_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *pk_printf(const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc != 0 || b.data == NULL) {
        buf_free(&b);
        return NULL;
    }
    return b.data; /* the buffer's storage is a plain malloc'd string */
}

/* ---- phone columns per table ------------------------------------------ */

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || n > 60)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

static char *dupn(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* Trims blanks off [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* Dataverse's plural for a logical name: smsys_sms -> smsys_smses,
 * company -> companies, contact -> contacts. */
static char *plural(const char *t)
{
    size_t n = strlen(t);
    int es = n && (t[n - 1] == 's' || t[n - 1] == 'x' || t[n - 1] == 'z' ||
                   (n > 1 && t[n - 1] == 'h' && (t[n - 2] == 'c' || t[n - 2] == 's')));
    int ies = n > 1 && t[n - 1] == 'y' && !strchr("aeiou", t[n - 2]);
    if (ies)
        return pk_printf("%.*sies", (int)(n - 1), t);
    return pk_printf("%s%s", t, es ? "es" : "s");
}

static int list_has(const char *list, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        const char *end = e ? e : p + strlen(p);
        const char *s = p;
        trim(&s, &end);
        if ((size_t)(end - s) == wl && strncmp(s, word, wl) == 0)
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

void pk_tables_free(struct pk_tables *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->t[i].table);
        free(t->t[i].set);
        free(t->t[i].key);
        for (size_t k = 0; k < t->t[i].ncols; k++)
            free(t->t[i].cols[k]);
        free(t->t[i].cols);
    }
    free(t->t);
    t->t = NULL;
    t->n = 0;
}

/* Parses one "table[@set[/key]]:col,col" entry into tb. */
static int parse_entry(const char *s, const char *e, struct pk_table *tb, struct smsys_err *err)
{
    const char *colon = memchr(s, ':', (size_t)(e - s));
    if (colon == NULL)
        return smsys_err_set(err, -EINVAL,
                             "[pickup] phone_columns: '%.*s' needs table:column[,column...]",
                             (int)(e - s), s);
    const char *ts = s, *te = colon;
    trim(&ts, &te);
    const char *at = memchr(ts, '@', (size_t)(te - ts));
    const char *name_end = at ? at : te;
    if (!is_ident(ts, (size_t)(name_end - ts)))
        return smsys_err_set(err, -EINVAL, "[pickup] phone_columns: '%.*s' is not a table name",
                             (int)(te - ts), ts);
    tb->table = dupn(ts, (size_t)(name_end - ts));
    if (at) {
        const char *ss = at + 1;
        const char *slash = memchr(ss, '/', (size_t)(te - ss));
        const char *se = slash ? slash : te;
        if (!is_ident(ss, (size_t)(se - ss)) ||
            (slash && !is_ident(slash + 1, (size_t)(te - slash - 1))))
            return smsys_err_set(err, -EINVAL,
                                 "[pickup] phone_columns: '%.*s': write table@entityset/keycolumn",
                                 (int)(te - ts), ts);
        tb->set = dupn(ss, (size_t)(se - ss));
        if (slash)
            tb->key = dupn(slash + 1, (size_t)(te - slash - 1));
    }
    if (tb->table && tb->set == NULL)
        tb->set = plural(tb->table);
    if (tb->table && tb->key == NULL)
        tb->key = pk_printf("%sid", tb->table);
    if (!tb->table || !tb->set || !tb->key)
        return -ENOMEM;
    const char *p = colon + 1;
    while (p < e) {
        const char *c = memchr(p, ',', (size_t)(e - p));
        const char *ce = c ? c : e;
        const char *cs = p;
        trim(&cs, &ce);
        if (!is_ident(cs, (size_t)(ce - cs)))
            return smsys_err_set(err, -EINVAL,
                                 "[pickup] phone_columns: table %s: '%.*s' is not a column name",
                                 tb->table, (int)(ce - cs), cs);
        char **nc = realloc(tb->cols, (tb->ncols + 1) * sizeof(*nc));
        if (nc == NULL)
            return -ENOMEM;
        tb->cols = nc;
        if ((tb->cols[tb->ncols] = dupn(cs, (size_t)(ce - cs))) == NULL)
            return -ENOMEM;
        tb->ncols++;
        p = c ? c + 1 : e;
    }
    if (tb->ncols == 0)
        return smsys_err_set(err, -EINVAL, "[pickup] phone_columns: table %s has no column",
                             tb->table);
    return 0;
}

int pk_tables_parse(const char *spec, const char *optout_tables, struct pk_tables *out,
                    struct smsys_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = spec ? spec : PICKUP_DEFAULT_PHONE_COLUMNS;
    const char *optout = optout_tables ? optout_tables : "contact,account,lead";
    int rc = 0;
    while (*p && rc == 0) {
        const char *semi = strchr(p, ';');
        const char *e = semi ? semi : p + strlen(p);
        const char *s = p;
        trim(&s, &e);
        if (s < e) {
            struct pk_table *nt = realloc(out->t, (out->n + 1) * sizeof(*nt));
            if (nt == NULL) {
                rc = -ENOMEM;
                break;
            }
            out->t = nt;
            memset(&out->t[out->n], 0, sizeof(*nt));
            out->n++;
            rc = parse_entry(s, e, &out->t[out->n - 1], err);
            if (rc == 0) {
                struct pk_table *tb = &out->t[out->n - 1];
                tb->optout = list_has(optout, tb->table);
                for (size_t i = 0; i + 1 < out->n; i++)
                    if (strcmp(out->t[i].table, tb->table) == 0)
                        rc = smsys_err_set(err, -EINVAL,
                                           "[pickup] phone_columns: table %s is listed twice",
                                           tb->table);
            }
        }
        p = semi ? semi + 1 : e;
    }
    if (rc == -ENOMEM)
        smsys_err_set(err, rc, "out of memory");
    if (rc != 0)
        pk_tables_free(out);
    return rc;
}

const struct pk_table *pk_tables_find(const struct pk_tables *t, const char *table)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->t[i].table, table) == 0)
            return &t->t[i];
    return NULL;
}

/* ---- one SMS row ------------------------------------------------------ */

static const char *jstr(const cJSON *row, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Copies a GUID in lower case; anything else becomes "" (ids go into
 * OData filters and SQL arrays, so only the GUID alphabet may pass). */
static void copy_id(char out[37], const char *s)
{
    out[0] = '\0';
    if (s == NULL || strlen(s) != 36)
        return;
    for (int i = 0; i < 36; i++) {
        int c = tolower((unsigned char)s[i]);
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !isxdigit(c))
            return;
    }
    for (int i = 0; i < 36; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[36] = '\0';
}

static int party_cmp(const void *a, const void *b)
{
    const struct pk_party *x = a, *y = b;
    int c = strcmp(x->party_id, y->party_id);
    if (c)
        return c;
    return strcmp(x->addr ? x->addr : "", y->addr ? y->addr : "");
}

int pk_sms_from_row(struct pk_sms *s, const cJSON *row)
{
    memset(s, 0, sizeof(*s));
    const char *id = jstr(row, "activityid");
    copy_id(s->id, id);
    if (s->id[0] == '\0')
        return -EINVAL;
    const char *owner_t = odata_lookup_table(row, "ownerid");
    if (owner_t && strcmp(owner_t, "systemuser") == 0)
        copy_id(s->owner_id, jstr(row, "_ownerid_value"));
    copy_id(s->setting_id, jstr(row, "_smsys_settingid_value"));
    s->has_template = jstr(row, "_smsys_templateid_value") != NULL;
    copy_id(s->tpl_id, jstr(row, "_smsys_templateid_value"));
    s->sender_in = pk_strdup(jstr(row, "smsys_sendernumber"));
    s->subject = pk_strdup(jstr(row, "subject"));
    s->body = pk_strdup(jstr(row, "description"));
    const cJSON *parties = cJSON_GetObjectItemCaseSensitive(row, "smsys_sms_activity_parties");
    size_t n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, parties)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "participationtypemask");
        n += cJSON_IsNumber(m) && m->valueint == 2;
    }
    if (n) {
        s->to = calloc(n, sizeof(*s->to));
        if (s->to == NULL)
            return -ENOMEM;
    }
    cJSON_ArrayForEach(p, parties)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "participationtypemask");
        if (!cJSON_IsNumber(m) || m->valueint != 2)
            continue;
        struct pk_party *t = &s->to[s->nto++];
        copy_id(t->party_id, jstr(p, "_partyid_value"));
        const char *tbl = odata_lookup_table(p, "partyid");
        snprintf(t->table, sizeof(t->table), "%s", tbl ? tbl : "");
        t->addr = pk_strdup(jstr(p, "addressused"));
    }
    /* Deterministic order: the first recipient stays on the original
     * record and the keys of the others must not change between polls. */
    if (s->nto > 1)
        qsort(s->to, s->nto, sizeof(*s->to), party_cmp);
    return 0;
}

void pk_sms_clear(struct pk_sms *s)
{
    for (size_t i = 0; i < s->nto; i++) {
        free(s->to[i].addr);
        free(s->to[i].why);
        free(s->to[i].body);
    }
    free(s->to);
    free(s->sender_in);
    free(s->subject);
    free(s->body);
    free(s->fail);
    memset(s, 0, sizeof(*s));
}

/* ---- text ------------------------------------------------------------- */

/* NULL when body can be sent (segments/encoding set), else the reason. */
static char *check_body(const char *body, int has_template, unsigned max_segments, int *segments,
                        int *encoding)
{
    /* spaces and line breaks only: nothing to read, not worth a bill */
    if (body == NULL || template_text_blank(body, strlen(body)))
        return pk_strdup(has_template ? "the template could not be rendered"
                                      : "the message text (description) is empty");
    struct text_info ti;
    int rc = text_analyze(body, strlen(body), &ti);
    if (rc == SMSYS_EUTF8)
        return pk_printf("the message text is not valid UTF-8 at byte %zu (%s)", ti.bad_offset,
                         text_utf8_strerror(ti.bad_kind));
    if (rc != 0)
        return pk_printf("the message text cannot be analysed: %s", smsys_strerror(rc));
    if (ti.segments > max_segments)
        return pk_printf("the message text needs %zu SMS parts (%zu characters); the limit is "
                         "%u ([pickup] max_segments)",
                         ti.segments, ti.chars, max_segments);
    *segments = (int)ti.segments;
    *encoding = (int)ti.encoding;
    return NULL;
}

void pk_check_text(struct pk_sms *s, unsigned max_segments)
{
    if (s->fail)
        return;
    s->fail = check_body(s->body, s->has_template, max_segments, &s->segments, &s->encoding);
}

void pk_check_party_text(struct pk_party *p, unsigned max_segments)
{
    if (p->why)
        return;
    p->why = check_body(p->body, 1, max_segments, &p->segments, &p->encoding);
    p->failed = p->why != NULL;
}

/* ---- account and line (F4) -------------------------------------------- */

static const struct pk_account *find_account(const struct pk_accts *ac, const char *id)
{
    for (size_t i = 0; i < ac->na; i++)
        if (strcmp(ac->a[i].id, id) == 0)
            return &ac->a[i];
    return NULL;
}

/* The user's dedicated line, within account (NULL: any enabled account). */
static const struct pk_line *dedicated_line(const struct pk_accts *ac, const char *user,
                                            const char *account)
{
    const struct pk_line *best = NULL;
    if (user[0] == '\0')
        return NULL;
    for (size_t i = 0; i < ac->nl; i++) {
        const struct pk_line *l = &ac->l[i];
        if (strcmp(l->user_id, user) != 0)
            continue;
        if (account
                ? strcmp(l->account_id, account) != 0
                : !(find_account(ac, l->account_id) && find_account(ac, l->account_id)->enabled))
            continue;
        if (best == NULL || (l->is_default && !best->is_default))
            best = l;
    }
    return best;
}

/* The account's default line, else its first line not dedicated to
 * someone else, else NULL (the connector's own default sender). */
static const struct pk_line *account_line(const struct pk_accts *ac, const char *account)
{
    const struct pk_line *any = NULL;
    for (size_t i = 0; i < ac->nl; i++) {
        const struct pk_line *l = &ac->l[i];
        if (strcmp(l->account_id, account) != 0 || l->user_id[0])
            continue;
        if (l->is_default)
            return l;
        if (any == NULL)
            any = l;
    }
    return any;
}

void pk_choose_account(struct pk_sms *s, const struct pk_accts *ac)
{
    if (s->fail)
        return;
    const struct pk_line *line = NULL;
    const char *account = s->setting_id[0] ? s->setting_id : NULL;
    if (s->sender_in) {
        char norm[40];
        struct smsys_err e = {0};
        if (phone_normalize_line(s->sender_in, norm, sizeof(norm), &e) != 0) {
            s->fail = pk_printf("sender number '%s' is not usable: %s", s->sender_in, e.detail);
            return;
        }
        for (size_t i = 0; i < ac->nl && line == NULL; i++)
            if (strcmp(ac->l[i].norm, norm) == 0)
                line = &ac->l[i];
        if (line && line->user_id[0] && strcmp(line->user_id, s->owner_id) != 0) {
            s->fail = pk_printf("line %s is dedicated to another user; the owner of this SMS may "
                                "not send from it",
                                line->number);
            return;
        }
        if (line && account && strcmp(line->account_id, account) != 0) {
            s->fail = pk_printf("line %s does not belong to the provider account chosen on the "
                                "SMS (%s)",
                                line->number, account);
            return;
        }
        if (line)
            account = line->account_id;
        else
            snprintf(s->sender, sizeof(s->sender), "%s", norm);
    } else if (account) {
        line = dedicated_line(ac, s->owner_id, account);
        if (line == NULL)
            line = account_line(ac, account);
    } else if ((line = dedicated_line(ac, s->owner_id, NULL)) != NULL) {
        account = line->account_id;
    }
    if (account == NULL) {
        for (size_t i = 0; i < ac->na && account == NULL; i++)
            if (ac->a[i].is_default && ac->a[i].enabled)
                account = ac->a[i].id;
        if (account == NULL) {
            s->fail = pk_strdup("no enabled provider account (smsys_smssetting) to send with");
            return;
        }
        if (s->sender[0] == '\0')
            line = account_line(ac, account);
    }
    const struct pk_account *a = find_account(ac, account);
    if (a == NULL) {
        s->fail = pk_printf("provider account %s is unknown to smsys (deleted, or not synced yet)",
                            account);
        return;
    }
    if (!a->enabled) {
        s->fail = pk_printf("provider account %s is disabled", account);
        return;
    }
    snprintf(s->account_id, sizeof(s->account_id), "%s", a->id);
    if (line)
        snprintf(s->sender, sizeof(s->sender), "%s", line->norm[0] ? line->norm : line->number);
}

/* ---- recipients (F3) -------------------------------------------------- */

static void set_number(struct pk_party *p, const char *in, const char *country, const char *what)
{
    struct smsys_err e = {0};
    if (phone_normalize(in, country, p->number, sizeof(p->number), &e) != 0) {
        p->number[0] = '\0';
        p->why = pk_printf("no valid mobile number: %s '%s': %s", what, in, e.detail);
    }
}

void pk_party_resolve(struct pk_party *p, const struct pk_table *tb, const cJSON *row,
                      const char *optout_column, const char *country)
{
    p->fetched = 1;
    if (tb->optout && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, optout_column))) {
        p->optout = 1;
        p->why = pk_strdup("recipient opted out");
        return;
    }
    if (p->addr) {
        set_number(p, p->addr, country, "addressused");
        return;
    }
    struct buf notes = BUF_INIT;
    for (size_t i = 0; i < tb->ncols; i++) {
        const char *v = jstr(row, tb->cols[i]);
        if (v == NULL) {
            buf_printf(&notes, "%s%s empty", notes.len ? "; " : "", tb->cols[i]);
            continue;
        }
        struct smsys_err e = {0};
        if (phone_normalize(v, country, p->number, sizeof(p->number), &e) == 0) {
            buf_free(&notes);
            return;
        }
        p->number[0] = '\0';
        buf_printf(&notes, "%s%s '%s': %s", notes.len ? "; " : "", tb->cols[i], v, e.detail);
    }
    p->why = pk_printf("no valid mobile number: %s %s: %s", tb->table, p->party_id,
                       notes.data ? notes.data : "no phone column");
    buf_free(&notes);
}

void pk_party_finish(struct pk_party *p, const struct pk_table *tb, const char *country)
{
    if (p->number[0] || p->why)
        return;
    if (p->party_id[0] && tb && !p->fetched) {
        p->why = pk_printf("no valid mobile number: %s %s does not exist in Dynamics", tb->table,
                           p->party_id);
        return;
    }
    if (p->addr) {
        set_number(p, p->addr, country, "addressused");
        return;
    }
    if (p->table[0])
        p->why = pk_printf("no valid mobile number: table %s has no phone column configured "
                           "([pickup] phone_columns)",
                           p->table);
    else
        p->why = pk_strdup("no valid mobile number: the recipient has no record and no address");
}
