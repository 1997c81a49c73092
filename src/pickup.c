/* pickup.c - one poll of Pending SMS records into the queue (pickup.h).
 * The decisions live in pickup_rules.c; this file does the I/O in order:
 * read page -> (PostgreSQL: already queued? accounts and lines) -> phone
 * columns per table in batches -> child records -> enqueue. */
#include "pickup_int.h"

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/odata.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/template_default.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids per phone-column GET: keeps the URL near 4 KB. */
#define PK_IDS_PER_GET 100
/* Queue rows per enqueue call (one transaction each). */
#define PK_ENQ_CHUNK 1000

static const char SQL_QUEUED[] =
    "SELECT DISTINCT activity_id::text FROM smsys_message WHERE activity_id = ANY ($1::uuid[])";
static const char SQL_ACCTS[] =
    "SELECT a.id::text, a.enabled, a.is_default, l.number, l.user_id::text, l.is_default "
    "FROM smsys_account a LEFT JOIN smsys_line l ON l.account_id = a.id "
    "ORDER BY a.id, l.is_default DESC NULLS LAST, l.number";

/* Every 'to' party with a record in a configured table, sorted by (table,
 * id): the fetch answers are matched by binary search. */
struct party_index {
    struct pk_party **v;
    size_t n;
};

enum pk_stage { PK_READ, PK_PG, PK_TPL, PK_FETCH, PK_CHILD };

struct pickup {
    uv_loop_t *loop;
    struct queue *q;
    struct pg_pool *pool;
    struct dv_client *dv;
    struct pk_tables tables;
    char *optout_column;
    char *country;
    unsigned max_rows;
    unsigned max_segments;
    struct pickup_stats st;
    struct metric *m_polls, *m_records, *m_msgs, *m_req, *m_batch;
    struct template_defaults *defs; /* default template per table (F8), cached */

    /* the poll in progress */
    int busy;
    pickup_done_cb cb;
    void *ud;
    struct pk_sms *sms;
    size_t nsms;
    struct pk_accts ac;
    struct pickup_result res;
    int pending; /* parallel steps outstanding */
    enum pk_stage stage;
    struct party_index ix;
    int rc;
    struct smsys_err err;
    struct queue_new *items;
    size_t nitems;
    size_t enq_pos;
};

struct fetch_ctx {
    struct pickup *p;
    const struct pk_table *tb;
    size_t first, n; /* its parties: ix.v[first .. first + n) */
};

struct child_ctx {
    struct pickup *p;
    size_t sms;
};

static void step_done(struct pickup *p);
static void tpl_done_cb(int rc, const struct smsys_err *err, void *ud);

/* ---- ids -------------------------------------------------------------- */

void pickup_child_id(const char *parent_id, const char *party_id, char out[37])
{
    /* RFC 4122 URL namespace 6ba7b811-9dad-11d1-80b4-00c04fd430c8. */
    static const unsigned char ns[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                         0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    unsigned char in[16 + 160];
    memcpy(in, ns, sizeof(ns));
    char *name = (char *)in + 16;
    int n = snprintf(name, 160, "smsys:sms:%s:%s", parent_id, party_id);
    if (n < 0)
        n = 0;
    if (n > 159)
        n = 159;
    for (int i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)name[i]);
    unsigned char h[SHA_DIGEST_LENGTH];
    SHA1(in, 16 + (size_t)n, h);
    h[6] = (unsigned char)((h[6] & 0x0F) | 0x50);
    h[8] = (unsigned char)((h[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0],
             h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13],
             h[14], h[15]);
}

/* ---- lifecycle -------------------------------------------------------- */

int pickup_new(uv_loop_t *loop, struct queue *q, struct pg_pool *pool, struct dv_client *dv,
               const struct pickup_opts *o, struct pickup **out, struct smsys_err *err)
{
    if (loop == NULL || q == NULL || pool == NULL || dv == NULL || out == NULL)
        return -EINVAL;
    struct pickup *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->loop = loop;
    p->q = q;
    p->pool = pool;
    p->dv = dv;
    int rc =
        pk_tables_parse(o ? o->phone_columns : NULL, o ? o->optout_tables : NULL, &p->tables, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    p->optout_column = strdup(o && o->optout_column ? o->optout_column : "smsys_donotsms");
    p->country = strdup(o && o->default_country ? o->default_country : "IR");
    p->max_rows = o && o->max_rows ? o->max_rows : 5000;
    if (p->max_rows > 5000)
        p->max_rows = 5000;
    p->max_segments = o && o->max_segments ? o->max_segments : 20;
    if (p->optout_column == NULL || p->country == NULL ||
        template_defaults_new(loop, dv, 0, &p->defs) != 0) {
        pickup_free(p);
        return -ENOMEM;
    }
    if (o && o->metrics) {
        struct metrics *m = o->registry;
        static const double bounds[] = {1, 10, 100, 1000, 5000};
        p->m_polls = metrics_counter(m, "smsys_pickup_polls_total", "Pickup polls run.", NULL);
        p->m_records = metrics_counter(m, "smsys_pickup_records_total",
                                       "Pending SMS records read from Dynamics.", NULL);
        p->m_msgs = metrics_counter(m, "smsys_pickup_messages_inserted_total",
                                    "Messages the pickup inserted into the queue.", NULL);
        p->m_req = metrics_counter(m, "smsys_pickup_dynamics_requests_total",
                                   "Dynamics requests the pickup made.", NULL);
        p->m_batch = metrics_histogram(m, "smsys_pickup_batch_records",
                                       "Pending records per pickup poll.", NULL, bounds, 5);
    }
    *out = p;
    return 0;
}

static void poll_clear(struct pickup *p)
{
    for (size_t i = 0; i < p->nsms; i++)
        pk_sms_clear(&p->sms[i]);
    free(p->sms);
    p->sms = NULL;
    p->nsms = 0;
    free(p->ac.a);
    free(p->ac.l);
    free(p->ix.v);
    memset(&p->ix, 0, sizeof(p->ix));
    memset(&p->ac, 0, sizeof(p->ac));
    for (size_t i = 0; i < p->nitems; i++)
        free((char *)p->items[i].idem_key);
    free(p->items);
    p->items = NULL;
    p->nitems = 0;
}

void pickup_free(struct pickup *p)
{
    if (p == NULL)
        return;
    poll_clear(p);
    pk_tables_free(&p->tables);
    template_defaults_free(p->defs);
    free(p->optout_column);
    free(p->country);
    free(p);
}

int pickup_busy(const struct pickup *p)
{
    return p->busy;
}

const struct pickup_stats *pickup_stats(const struct pickup *p)
{
    return &p->st;
}

static void poll_end(struct pickup *p)
{
    /* A full page of records that are all queued already (their Queued
     * write-back is still on its way) must not make the caller poll again
     * at once: that would re-read the same page in a tight loop. */
    if (p->res.more && p->res.skipped == p->res.records) {
        p->res.more = 0;
        p->res.backlog = 1;
    }
    p->st.polls++;
    p->st.records += p->res.records;
    p->st.messages += p->res.messages;
    p->st.inserted += p->res.inserted;
    p->st.blocked += p->res.blocked;
    p->st.failed += p->res.failed;
    p->st.children += p->res.children;
    p->st.requests += p->res.requests;
    if (p->m_polls) {
        metrics_inc(p->m_polls);
        metrics_add(p->m_records, p->res.records);
        metrics_add(p->m_msgs, p->res.inserted);
        metrics_add(p->m_req, p->res.requests);
        metrics_observe(p->m_batch, p->res.records);
    }
    if (p->rc != 0)
        log_warn("pickup_failed", "error=\"%s\" records=%u", log_q(p->err.detail), p->res.records);
    else if (p->res.inserted)
        log_info("pickup_done",
                 "records=%u inserted=%u blocked=%u failed=%u children=%u requests=%u",
                 p->res.records, p->res.inserted, p->res.blocked, p->res.failed, p->res.children,
                 p->res.requests);
    poll_clear(p);
    p->busy = 0;
    int rc = p->rc;
    struct smsys_err err = p->err;
    struct pickup_result res = p->res;
    p->cb(rc, &res, rc ? &err : NULL, p->ud);
}

static void poll_fail(struct pickup *p, int rc, const struct smsys_err *err, const char *what)
{
    if (p->rc == 0) {
        p->rc = rc;
        smsys_err_set(&p->err, rc, "%s: %s", what, err ? err->detail : smsys_strerror(rc));
    }
}

/* ---- 5. enqueue ------------------------------------------------------- */

static void enqueue_next(struct pickup *p);

static void enqueue_cb(int rc, const struct queue_enq_res *res, size_t n,
                       const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        poll_fail(p, rc, err, "cannot enqueue");
        poll_end(p);
        return;
    }
    for (size_t i = 0; i < n; i++)
        p->res.inserted += res[i].inserted != 0;
    enqueue_next(p);
}

static void desc_cb(int rc, unsigned requests, void *ud)
{
    struct pickup *p = ud;
    (void)rc; /* logged by pickup_tpl.c */
    p->res.requests += requests;
    poll_end(p);
}

static void enqueue_next(struct pickup *p)
{
    if (p->enq_pos >= p->nitems) {
        /* Templated SMS with several recipients: the original's own text,
         * only now that every recipient is queued (pickup_tpl.c says why). */
        if (pk_tpl_descriptions(p->dv, p->sms, p->nsms, desc_cb, p) != 0)
            poll_end(p);
        return;
    }
    size_t n = p->nitems - p->enq_pos;
    if (n > PK_ENQ_CHUNK)
        n = PK_ENQ_CHUNK;
    int rc = queue_enqueue(p->q, p->items + p->enq_pos, n, enqueue_cb, p);
    p->enq_pos += n;
    if (rc != 0) {
        poll_fail(p, rc, NULL, "cannot enqueue");
        poll_end(p);
    }
}

static int add_item(struct pickup *p, const struct pk_sms *s, const struct pk_party *to,
                    const char *activity_id, int multi)
{
    struct queue_new *it = &p->items[p->nitems];
    memset(it, 0, sizeof(*it));
    char *key;
    if (!multi)
        key = pk_strdup(s->id);
    else if (to->party_id[0])
        key = pk_printf("%s:%s", s->id, to->party_id);
    else
        key = pk_printf("%s:addr:%s", s->id, to->addr ? to->addr : "");
    if (key == NULL)
        return -ENOMEM;
    it->idem_key = key;
    it->activity_id = activity_id;
    it->body = s->body ? s->body : "";
    it->segments = s->segments;
    it->encoding = s->encoding;
    if (to && to->body) {
        it->body = to->body;
        it->segments = to->segments;
        it->encoding = to->encoding;
    }
    if (s->fail || (to && to->why)) {
        int blocked = s->fail ? strncmp(s->fail, "no valid mobile number", 22) == 0 : !to->failed;
        it->state = blocked ? QUEUE_BLOCKED : QUEUE_FAILED;
        it->last_error = s->fail ? s->fail : to->why;
        it->recipient = "";
        it->account_id = NULL;
        if (s->fail)
            it->body = ""; /* may be invalid UTF-8 */
        p->res.blocked += blocked;
        p->res.failed += !blocked;
    } else {
        it->state = QUEUE_QUEUED;
        it->account_id = s->account_id;
        it->sender = s->sender[0] ? s->sender : NULL;
        it->recipient = to->number;
    }
    p->nitems++;
    p->res.messages++;
    return 0;
}

static void build_items(struct pickup *p)
{
    size_t cap = 0;
    for (size_t i = 0; i < p->nsms; i++)
        if (!p->sms[i].skip)
            cap += p->sms[i].nto ? p->sms[i].nto : 1;
    p->items = calloc(cap ? cap : 1, sizeof(*p->items));
    if (p->items == NULL) {
        poll_fail(p, -ENOMEM, NULL, "out of memory");
        poll_end(p);
        return;
    }
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip)
            continue;
        int rc = 0;
        if (s->nto == 0 && s->fail == NULL)
            s->fail = pk_strdup("no valid mobile number: the SMS has no 'to' recipient");
        if (s->fail)
            rc = add_item(p, s, NULL, s->id, 0);
        for (size_t k = 0; s->fail == NULL && k < s->nto && rc == 0; k++)
            rc = add_item(p, s, &s->to[k], s->to[k].child_id, s->nto > 1);
        if (rc != 0) {
            poll_fail(p, rc, NULL, "out of memory");
            poll_end(p);
            return;
        }
    }
    p->enq_pos = 0;
    enqueue_next(p);
}

/* ---- 4. child records ------------------------------------------------- */

static void child_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct child_ctx *c = ud;
    struct pickup *p = c->p;
    (void)id;
    p->res.requests++;
    if (rc == 0 || rc == SMSYS_ECONFLICT) {
        /* ECONFLICT: the record exists already (an earlier poll made it
         * before a crash): exactly what the deterministic id is for. */
        p->res.children++;
    } else {
        /* Nothing of this SMS is queued now; the next poll tries again. */
        struct pk_sms *s = &p->sms[c->sms];
        if (!s->skip)
            log_warn("pickup_child_failed", "activityid=%s error=\"%s\"", s->id,
                     log_q(err ? err->detail : smsys_strerror(rc)));
        s->skip = 1;
    }
    free(c);
    step_done(p);
}

/* The body of a child record: a copy of the original for one recipient,
 * created Queued so the Pending filter never returns it. */
static char *child_body(const struct pk_sms *s, const struct pk_party *to,
                        const struct pk_table *tb)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "activityid", to->child_id);
    if (s->subject)
        cJSON_AddStringToObject(o, "subject", s->subject);
    if (to->body)
        cJSON_AddStringToObject(o, "description", to->body);
    else if (s->body)
        cJSON_AddStringToObject(o, "description", s->body);
    cJSON_AddNumberToObject(o, "smsys_direction", 1);
    cJSON_AddNumberToObject(o, "smsys_status", 3);
    char bind[128];
    snprintf(bind, sizeof(bind), "/smsys_smses(%s)", s->id);
    cJSON_AddStringToObject(o, "regardingobjectid_smsys_sms_smsys_sms@odata.bind", bind);
    if (s->setting_id[0]) {
        snprintf(bind, sizeof(bind), "/smsys_smssettings(%s)", s->setting_id);
        cJSON_AddStringToObject(o, "smsys_settingid@odata.bind", bind);
    }
    cJSON *parties = cJSON_AddArrayToObject(o, "smsys_sms_activity_parties");
    cJSON *pt = cJSON_CreateObject();
    if (parties && pt) {
        cJSON_AddItemToArray(parties, pt);
        if (to->party_id[0] && tb) {
            char nav[128];
            snprintf(nav, sizeof(nav), "partyid_%s@odata.bind", tb->table);
            snprintf(bind, sizeof(bind), "/%s(%s)", tb->set, to->party_id);
            cJSON_AddStringToObject(pt, nav, bind);
        }
        if (to->addr)
            cJSON_AddStringToObject(pt, "addressused", to->addr);
        cJSON_AddNumberToObject(pt, "participationtypemask", 2);
    } else {
        cJSON_Delete(pt);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return json;
}

static void make_children(struct pickup *p)
{
    p->pending = 1; /* guard */
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip)
            continue;
        for (size_t k = 0; k < s->nto; k++) {
            struct pk_party *to = &s->to[k];
            if (k == 0 || s->fail) {
                snprintf(to->child_id, sizeof(to->child_id), "%s", s->id);
                continue;
            }
            pickup_child_id(s->id, to->party_id[0] ? to->party_id : (to->addr ? to->addr : ""),
                            to->child_id);
            char *json = child_body(s, to, pk_tables_find(&p->tables, to->table));
            struct child_ctx *c = json ? malloc(sizeof(*c)) : NULL;
            int rc = -ENOMEM;
            if (c) {
                c->p = p;
                c->sms = i;
                rc = dv_create(p->dv, "smsys_smses", json, 1, child_cb, c);
            }
            free(json);
            if (rc != 0) {
                free(c);
                s->skip = 1;
                continue;
            }
            p->pending++;
        }
    }
    step_done(p);
}

/* ---- 3. phone columns ------------------------------------------------- */

static int party_key_cmp(const void *a, const void *b)
{
    const struct pk_party *x = *(const struct pk_party *const *)a;
    const struct pk_party *y = *(const struct pk_party *const *)b;
    int c = strcmp(x->table, y->table);
    return c ? c : strcmp(x->party_id, y->party_id);
}

static void apply_rows(struct pickup *p, const struct pk_table *tb, const cJSON *rows)
{
    struct party_index *ix = &p->ix;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(r, tb->key);
        if (!cJSON_IsString(idv))
            continue;
        struct pk_party key = {0};
        snprintf(key.table, sizeof(key.table), "%s", tb->table);
        snprintf(key.party_id, sizeof(key.party_id), "%s", idv->valuestring);
        for (char *c = key.party_id; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        struct pk_party *kp = &key;
        struct pk_party **hit = bsearch(&kp, ix->v, ix->n, sizeof(*ix->v), party_key_cmp);
        if (hit == NULL)
            continue;
        /* Several SMS may share a recipient: walk to the first equal. */
        while (hit > ix->v && party_key_cmp(hit - 1, &kp) == 0)
            hit--;
        for (; hit < ix->v + ix->n && party_key_cmp(hit, &kp) == 0; hit++)
            pk_party_resolve(*hit, tb, r, p->optout_column, p->country);
    }
}

static int fetch_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct fetch_ctx *c = ud;
    (void)page;
    apply_rows(c->p, c->tb, rows);
    return DV_PAGE_CONTINUE;
}

static void fetch_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                          void *ud)
{
    struct fetch_ctx *c = ud;
    struct pickup *p = c->p;
    (void)delta;
    p->res.requests += pages ? pages : 1;
    if (rc == SMSYS_EPROTO || rc == SMSYS_EPERM) {
        /* The configuration names a column Dynamics does not have, or the
         * application user may not read the table: a person must act, and
         * the record says so. */
        for (size_t i = c->first; i < c->first + c->n; i++) {
            struct pk_party *t = p->ix.v[i];
            if (t->number[0] || t->why)
                continue;
            t->failed = 1;
            t->why = pk_printf("cannot read the phone columns of table %s: %s", c->tb->table,
                               err ? err->detail : smsys_strerror(rc));
        }
    } else if (rc != 0) {
        poll_fail(p, rc, err, "cannot read recipients");
    }
    free(c);
    step_done(p);
}

static int fetch_chunk(struct pickup *p, const struct pk_table *tb, size_t first, size_t n)
{
    struct buf sel = BUF_INIT, flt = BUF_INIT, path = BUF_INIT;
    int rc = buf_puts(&sel, tb->key);
    for (size_t i = 0; i < tb->ncols && rc == 0; i++)
        rc = buf_printf(&sel, ",%s", tb->cols[i]);
    if (rc == 0 && tb->optout)
        rc = buf_printf(&sel, ",%s", p->optout_column);
    if (rc == 0)
        rc = buf_printf(&flt, "Microsoft.Dynamics.CRM.In(PropertyName='%s',PropertyValues=[",
                        tb->key);
    const char *last = NULL;
    for (size_t i = first; i < first + n && rc == 0; i++) {
        const char *id = p->ix.v[i]->party_id;
        if (last && strcmp(last, id) == 0)
            continue;
        rc = buf_printf(&flt, "%s'%s'", last ? "," : "", id);
        last = id;
    }
    if (rc == 0)
        rc = buf_puts(&flt, "])");
    if (rc == 0)
        rc = buf_puts(&path, tb->set);
    if (rc == 0)
        rc = odata_query_add(&path, "$select", sel.data);
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", flt.data);
    struct fetch_ctx *c = rc == 0 ? malloc(sizeof(*c)) : NULL;
    if (rc == 0 && c == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        *c = (struct fetch_ctx){p, tb, first, n};
        rc = dv_get_all(p->dv, path.data, NULL, 5000, fetch_page_cb, fetch_done_cb, c);
        if (rc != 0)
            free(c);
    }
    buf_free(&sel);
    buf_free(&flt);
    buf_free(&path);
    return rc;
}

static void fetch_parties(struct pickup *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nsms; i++)
        if (!p->sms[i].skip && !p->sms[i].fail)
            for (size_t k = 0; k < p->sms[i].nto; k++)
                n++;
    p->ix.v = calloc(n ? n : 1, sizeof(*p->ix.v));
    if (p->ix.v == NULL) {
        poll_fail(p, -ENOMEM, NULL, "out of memory");
        poll_end(p);
        return;
    }
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip || s->fail)
            continue;
        for (size_t k = 0; k < s->nto; k++)
            if (s->to[k].party_id[0] && s->to[k].why == NULL &&
                pk_tables_find(&p->tables, s->to[k].table))
                p->ix.v[p->ix.n++] = &s->to[k];
    }
    if (p->ix.n > 1)
        qsort(p->ix.v, p->ix.n, sizeof(*p->ix.v), party_key_cmp);
    p->stage = PK_FETCH;
    p->pending = 1; /* guard */
    size_t i = 0;
    while (i < p->ix.n && p->rc == 0) {
        const struct pk_table *tb = pk_tables_find(&p->tables, p->ix.v[i]->table);
        size_t j = i, distinct = 0;
        /* Up to PK_IDS_PER_GET distinct ids of one table per request. */
        while (j < p->ix.n && strcmp(p->ix.v[j]->table, tb->table) == 0) {
            if (j == i || strcmp(p->ix.v[j]->party_id, p->ix.v[j - 1]->party_id) != 0) {
                if (distinct == PK_IDS_PER_GET)
                    break;
                distinct++;
            }
            j++;
        }
        int rc = fetch_chunk(p, tb, i, j - i);
        if (rc != 0)
            poll_fail(p, rc, NULL, "cannot read recipients");
        else
            p->pending++;
        i = j;
    }
    step_done(p);
}

/* ---- 2. PostgreSQL: already queued? accounts and lines ----------------- */

static void queued_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        poll_fail(p, rc, err, "cannot read the queue");
    } else {
        for (int r = 0; r < PQntuples(res); r++) {
            const char *id = PQgetvalue(res, r, 0);
            for (size_t i = 0; i < p->nsms; i++)
                if (!p->sms[i].skip && strcmp(p->sms[i].id, id) == 0) {
                    p->sms[i].skip = 1;
                    p->res.skipped++;
                }
        }
    }
    step_done(p);
}

static void accts_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        poll_fail(p, rc, err, "cannot read the provider accounts");
        step_done(p);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    p->ac.a = calloc(n ? n : 1, sizeof(*p->ac.a));
    p->ac.l = calloc(n ? n : 1, sizeof(*p->ac.l));
    if (p->ac.a == NULL || p->ac.l == NULL) {
        poll_fail(p, -ENOMEM, NULL, "out of memory");
        step_done(p);
        return;
    }
    for (int r = 0; r < (int)n; r++) {
        const char *id = PQgetvalue(res, r, 0);
        if (p->ac.na == 0 || strcmp(p->ac.a[p->ac.na - 1].id, id) != 0) {
            struct pk_account *a = &p->ac.a[p->ac.na++];
            snprintf(a->id, sizeof(a->id), "%s", id);
            a->enabled = PQgetvalue(res, r, 1)[0] == 't';
            a->is_default = PQgetvalue(res, r, 2)[0] == 't';
        }
        if (PQgetisnull(res, r, 3))
            continue;
        struct pk_line *l = &p->ac.l[p->ac.nl++];
        snprintf(l->account_id, sizeof(l->account_id), "%s", id);
        snprintf(l->number, sizeof(l->number), "%s", PQgetvalue(res, r, 3));
        snprintf(l->user_id, sizeof(l->user_id), "%s",
                 PQgetisnull(res, r, 4) ? "" : PQgetvalue(res, r, 4));
        l->is_default = PQgetvalue(res, r, 5)[0] == 't';
        struct smsys_err e = {0};
        if (phone_normalize_line(l->number, l->norm, sizeof(l->norm), &e) != 0)
            l->norm[0] = '\0';
    }
    step_done(p);
}

static void query_pg(struct pickup *p)
{
    struct buf ids = BUF_INIT;
    int rc = buf_putc(&ids, '{');
    for (size_t i = 0; i < p->nsms && rc == 0; i++)
        rc = buf_printf(&ids, "%s%s", i ? "," : "", p->sms[i].id);
    if (rc == 0)
        rc = buf_putc(&ids, '}');
    p->stage = PK_PG;
    p->pending = 1;
    if (rc == 0) {
        const char *par[1] = {ids.data};
        rc = pg_query_prepared(p->pool, "smsys_pk_queued", SQL_QUEUED, 1, par, queued_cb, p);
        if (rc == 0)
            p->pending++;
    }
    if (rc == 0) {
        rc = pg_query_prepared(p->pool, "smsys_pk_accts", SQL_ACCTS, 0, NULL, accts_cb, p);
        if (rc == 0)
            p->pending++;
    }
    if (rc != 0)
        poll_fail(p, rc, NULL, "cannot query PostgreSQL");
    buf_free(&ids);
    step_done(p);
}

static void step_done(struct pickup *p)
{
    if (--p->pending > 0)
        return;
    if (p->rc != 0) {
        poll_end(p);
        return;
    }
    switch (p->stage) {
    case PK_READ:
        break;
    case PK_PG: {
        /* Templates render before the text checks: the rendered text is
         * what they check and what is queued. */
        p->stage = PK_TPL;
        p->pending = 1;
        int rc = pk_tpl_render(p->dv, p->defs, p->sms, p->nsms, tpl_done_cb, p);
        if (rc == 0)
            break;
        if (rc != SMSYS_ENOTFOUND) {
            /* Cannot start (out of memory): SMS without text (templated or
             * for a default template) wait for the next poll. */
            log_warn("pickup_tpl_start", "rc=%d", rc);
            for (size_t i = 0; i < p->nsms; i++)
                if (p->sms[i].body == NULL || !p->sms[i].body[0])
                    p->sms[i].skip = 1;
        }
        step_done(p);
        break;
    }
    case PK_TPL:
        for (size_t i = 0; i < p->nsms; i++) {
            struct pk_sms *s = &p->sms[i];
            if (s->skip)
                continue;
            if (s->per_party && !s->fail)
                for (size_t k = 0; k < s->nto; k++)
                    pk_check_party_text(&s->to[k], p->max_segments);
            else
                pk_check_text(s, p->max_segments);
            pk_choose_account(s, &p->ac);
        }
        fetch_parties(p);
        break;
    case PK_FETCH:
        for (size_t i = 0; i < p->nsms; i++) {
            struct pk_sms *s = &p->sms[i];
            for (size_t k = 0; !s->skip && !s->fail && k < s->nto; k++)
                pk_party_finish(&s->to[k], pk_tables_find(&p->tables, s->to[k].table), p->country);
        }
        p->stage = PK_CHILD;
        make_children(p);
        break;
    case PK_CHILD:
        build_items(p);
        break;
    }
}

static void tpl_done_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    (void)rc;
    (void)err;
    step_done(p);
}

/* ---- 1. the Pending records ------------------------------------------- */

#define PK_SELECT                                                                                  \
    "activityid,subject,description,smsys_sendernumber,_ownerid_value,_smsys_settingid_value,"     \
    "_smsys_templateid_value"
#define PK_FILTER "smsys_status eq 2 and smsys_direction eq 1"
#define PK_EXPAND                                                                                  \
    "smsys_sms_activity_parties($select=participationtypemask,_partyid_value,addressused)"

static int read_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct pickup *p = ud;
    (void)page;
    size_t n = (size_t)cJSON_GetArraySize(rows);
    p->sms = calloc(n ? n : 1, sizeof(*p->sms));
    if (p->sms == NULL)
        return -ENOMEM;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        int rc = pk_sms_from_row(&p->sms[p->nsms], r);
        if (rc == -ENOMEM) {
            pk_sms_clear(&p->sms[p->nsms]);
            return rc;
        }
        if (rc == 0)
            p->nsms++;
        else
            pk_sms_clear(&p->sms[p->nsms]);
    }
    p->res.records = (unsigned)p->nsms;
    p->res.more = n >= p->max_rows;
    /* One page per poll: bounded memory and work per step; a full page
     * makes the caller poll again at once. */
    return DV_PAGE_STOP;
}

static void read_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                         void *ud)
{
    struct pickup *p = ud;
    (void)delta;
    p->res.requests += pages ? pages : 1;
    if (rc != 0) {
        poll_fail(p, rc, err, "cannot read Pending SMS records");
        poll_end(p);
        return;
    }
    if (p->nsms == 0) {
        poll_end(p);
        return;
    }
    query_pg(p);
}

int pickup_poll(struct pickup *p, pickup_done_cb cb, void *ud)
{
    if (p == NULL || cb == NULL)
        return -EINVAL;
    if (p->busy)
        return -EBUSY;
    struct buf path = BUF_INIT;
    int rc = buf_puts(&path, "smsys_smses");
    if (rc == 0)
        rc = odata_query_add(&path, "$select", PK_SELECT);
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", PK_FILTER);
    if (rc == 0)
        rc = odata_query_add(&path, "$expand", PK_EXPAND);
    memset(&p->res, 0, sizeof(p->res));
    p->rc = 0;
    memset(&p->err, 0, sizeof(p->err));
    p->cb = cb;
    p->ud = ud;
    p->stage = PK_READ;
    if (rc == 0)
        rc = dv_get_all(p->dv, path.data, "odata.include-annotations=\"*\"", p->max_rows,
                        read_page_cb, read_done_cb, p);
    buf_free(&path);
    if (rc == 0)
        p->busy = 1;
    return rc;
}
