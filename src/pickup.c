/* pickup.c - one poll of Pending SMS records into the queue (pickup.h).
 * The decisions live in pickup_rules.c; the I/O runs in order: read page
 * -> (PostgreSQL: already queued? accounts and lines) -> templates -> phone
 * columns per table in batches (pickup_fetch.c) -> child records ->
 * enqueue (pickup_enqueue.c). This file holds the poll's lifecycle, the
 * first two steps and pk_step_done, which moves from one to the next. */
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

static const char SQL_QUEUED[] =
    "SELECT DISTINCT activity_id::text FROM smsys_message WHERE activity_id = ANY ($1::uuid[])";
static const char SQL_ACCTS[] =
    "SELECT a.id::text, a.enabled, a.is_default, l.number, l.user_id::text, l.is_default "
    "FROM smsys_account a LEFT JOIN smsys_line l ON l.account_id = a.id "
    "ORDER BY a.id, l.is_default DESC NULLS LAST, l.number";

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

void pk_poll_end(struct pickup *p)
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

void pk_poll_fail(struct pickup *p, int rc, const struct smsys_err *err, const char *what)
{
    if (p->rc == 0) {
        p->rc = rc;
        smsys_err_set(&p->err, rc, "%s: %s", what, err ? err->detail : smsys_strerror(rc));
    }
}

/* ---- 2. PostgreSQL: already queued? accounts and lines ----------------- */

static void queued_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        pk_poll_fail(p, rc, err, "cannot read the queue");
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
    pk_step_done(p);
}

static void accts_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        pk_poll_fail(p, rc, err, "cannot read the provider accounts");
        pk_step_done(p);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    p->ac.a = calloc(n ? n : 1, sizeof(*p->ac.a));
    p->ac.l = calloc(n ? n : 1, sizeof(*p->ac.l));
    if (p->ac.a == NULL || p->ac.l == NULL) {
        pk_poll_fail(p, -ENOMEM, NULL, "out of memory");
        pk_step_done(p);
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
    pk_step_done(p);
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
        pk_poll_fail(p, rc, NULL, "cannot query PostgreSQL");
    buf_free(&ids);
    pk_step_done(p);
}

void pk_step_done(struct pickup *p)
{
    if (--p->pending > 0)
        return;
    if (p->rc != 0) {
        pk_poll_end(p);
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
        pk_step_done(p);
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
        pk_fetch_parties(p);
        break;
    case PK_FETCH:
        for (size_t i = 0; i < p->nsms; i++) {
            struct pk_sms *s = &p->sms[i];
            for (size_t k = 0; !s->skip && !s->fail && k < s->nto; k++)
                pk_party_finish(&s->to[k], pk_tables_find(&p->tables, s->to[k].table), p->country);
        }
        p->stage = PK_CHILD;
        pk_make_children(p);
        break;
    case PK_CHILD:
        pk_build_items(p);
        break;
    }
}

static void tpl_done_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    (void)rc;
    (void)err;
    pk_step_done(p);
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
        pk_poll_fail(p, rc, err, "cannot read Pending SMS records");
        pk_poll_end(p);
        return;
    }
    if (p->nsms == 0) {
        pk_poll_end(p);
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
