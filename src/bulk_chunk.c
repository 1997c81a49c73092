/* bulk_chunk.c - one chunk of a Sending bulk: enqueue held (PostgreSQL),
 * create the SMS records (CreateMultiple), release (PostgreSQL).
 *
 *   1. smsys_bulk_next_chunk: up to [bulk] chunk members become messages
 *      with next_attempt_at = infinity and no write-back row (step 2), in
 *      one transaction; or the chunk already held is returned again.
 *   2. A chunk returned again (fresh = false: a crash or an error came
 *      between 1 and 3) first asks Dynamics which of its records exist
 *      (GET with Microsoft.Dynamics.CRM.In on activityid, 100 ids per
 *      request); only the missing ones are created.
 *   3. CreateMultiple with the members' deterministic activity ids. A 400
 *      (Dynamics refuses a row) is narrowed down by halving the request,
 *      so one bad row fails only its member. Any other error leaves the
 *      chunk held; the next run goes to 2.
 *   4. smsys_bulk_release: the messages get their hand-over times (the
 *      per-bulk rate), the members step 3. */
#include "bulk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"
#include "smsys/odata.h"

#define EXIST_IDS 100

struct cm {
    char key[128];
    char entity[64];
    char member[37];
    char act[37];
    char number[20];
    char *body;
    int segments;
    int exists;
    char *fail; /* Dynamics refused the record */
};

struct chunk {
    struct bjob *j;
    struct cm *m;
    size_t n;
    int fresh;
    size_t at; /* existence check: next index */
    /* creation: ranges of the to-create list still to send (a stack) */
    size_t *todo; /* indexes of members to create */
    size_t ntodo;
    size_t (*stack)[2];
    size_t nstack, capstack;
    size_t lo, hi; /* the range in flight */
    unsigned refusals;
};

/* Refused requests one chunk may narrow down; a systematic refusal (every
 * row bad, e.g. a lookup to a deleted owner) then fails the remaining rows
 * with the same error instead of costing two requests per row. */
#define MAX_REFUSALS 40

static void chunk_free(struct chunk *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->m[i].body);
        free(c->m[i].fail);
    }
    free(c->m);
    free(c->todo);
    free(c->stack);
    free(c);
}

static void chunk_end(struct chunk *c, int rc, int worked)
{
    struct bjob *j = c->j;
    chunk_free(c);
    j->done(j, rc, worked);
}

/* ---- 4. release ---------------------------------------------------------- */

static void released_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct chunk *c = ud;
    struct bjob *j = c->j;
    if (rc != 0) {
        log_warn("bulk release failed", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    } else {
        long long n = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        j->e->st.released += (uint64_t)(n > 0 ? n : 0);
        log_info("bulk chunk released", "bulk=%s members=%zu released=%lld", j->id, c->n, n);
    }
    chunk_end(c, rc, rc == 0);
}

static void release(struct chunk *c)
{
    struct buf keys = BUF_INIT, fk = BUF_INIT, fe = BUF_INIT;
    int rc = buf_putc(&keys, '{') | buf_putc(&fk, '{') | buf_putc(&fe, '{');
    size_t nf = 0;
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        if (c->m[i].fail) {
            rc |= bulk_arr_add(&fk, c->m[i].key) | bulk_arr_add(&fe, c->m[i].fail);
            nf++;
        } else {
            rc |= bulk_arr_add(&keys, c->m[i].key);
        }
    }
    rc |= buf_putc(&keys, '}') | buf_putc(&fk, '}') | buf_putc(&fe, '}');
    c->j->e->st.refused_rows += nf;
    if (rc == 0)
        rc = bulk_db_release(c->j->e->pg, c->j->id, keys.data, nf ? fk.data : NULL,
                             nf ? fe.data : NULL, released_cb, c);
    buf_free(&keys);
    buf_free(&fk);
    buf_free(&fe);
    if (rc != 0)
        chunk_end(c, rc < 0 ? rc : -ENOMEM, 0);
}

/* ---- 3. create ----------------------------------------------------------- */

static cJSON *record(const struct bjob *j, const struct cm *m)
{
    const struct pk_table *tb = bulk_table(j->e, m->entity);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || tb == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    char bind[200], nav[128];
    cJSON_AddStringToObject(o, "activityid", m->act);
    cJSON_AddStringToObject(o, "subject", j->name && j->name[0] ? j->name : "Bulk SMS");
    cJSON_AddStringToObject(o, "description", m->body ? m->body : "");
    cJSON_AddNumberToObject(o, "smsys_direction", 1);
    cJSON_AddNumberToObject(o, "smsys_status", 3);
    cJSON_AddNumberToObject(o, "smsys_segments", m->segments);
    cJSON_AddStringToObject(o, "smsys_phonenumber", m->number);
    if (j->sender && j->sender[0])
        cJSON_AddStringToObject(o, "smsys_sendernumber", j->sender);
    snprintf(bind, sizeof(bind), "/smsys_bulksmses(%s)", j->id);
    cJSON_AddStringToObject(o, "smsys_bulksmsid@odata.bind", bind);
    snprintf(bind, sizeof(bind), "/smsys_smssettings(%s)", j->account_id);
    cJSON_AddStringToObject(o, "smsys_settingid@odata.bind", bind);
    if (j->owner_id[0]) {
        snprintf(bind, sizeof(bind), "/%s(%s)",
                 strcmp(j->owner_type, "team") == 0 ? "teams" : "systemusers", j->owner_id);
        cJSON_AddStringToObject(o, "ownerid@odata.bind", bind);
    }
    snprintf(bind, sizeof(bind), "/%s(%s)", tb->set, m->member);
    snprintf(nav, sizeof(nav), "regardingobjectid_%s_smsys_sms@odata.bind", m->entity);
    cJSON_AddStringToObject(o, nav, bind);
    cJSON *parties = cJSON_AddArrayToObject(o, "smsys_sms_activity_parties");
    cJSON *pt = cJSON_CreateObject();
    if (parties && pt && cJSON_AddItemToArray(parties, pt)) {
        snprintf(nav, sizeof(nav), "partyid_%s@odata.bind", m->entity);
        cJSON_AddStringToObject(pt, nav, bind);
        cJSON_AddNumberToObject(pt, "participationtypemask", 2);
        cJSON_AddStringToObject(pt, "addressused", m->number);
    } else {
        cJSON_Delete(pt);
    }
    return o;
}

static void create_next(struct chunk *c);

static void created_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct chunk *c = ud;
    struct bjob *j = c->j;
    j->e->st.dv_requests += res ? res->requests : 0;
    size_t lo = c->lo, hi = c->hi;
    if (rc == 0) {
        j->e->st.records += hi - lo;
        create_next(c);
        return;
    }
    const struct smsys_err *err = res && res->n ? &res->rows[0].err : NULL;
    if (rc == SMSYS_EPROTO && hi - lo > 1 && ++c->refusals <= MAX_REFUSALS &&
        c->nstack + 2 <= c->capstack) {
        /* one or more rows refused: split and try the halves */
        size_t mid = lo + (hi - lo) / 2;
        c->stack[c->nstack][0] = mid;
        c->stack[c->nstack][1] = hi;
        c->nstack++;
        c->stack[c->nstack][0] = lo;
        c->stack[c->nstack][1] = mid;
        c->nstack++;
        create_next(c);
        return;
    }
    if (rc == SMSYS_EPROTO) {
        /* a single refused row, or a systematic refusal (every row bad,
         * e.g. a lookup to a deleted owner) past MAX_REFUSALS: every row of
         * the range fails with the error, never released without a record */
        const char *why = bulk_errtext(rc, err);
        for (size_t i = lo; i < hi; i++) {
            struct cm *m = &c->m[c->todo[i]];
            m->fail = strdup(why);
            if (m->fail == NULL) {
                chunk_end(c, -ENOMEM, 0); /* stays held: the next run checks again */
                return;
            }
        }
        log_warn("bulk records refused", "bulk=%s rows=%zu first=%s error=\"%s\"", j->id, hi - lo,
                 c->m[c->todo[lo]].key, log_q(why));
        create_next(c);
        return;
    }
    /* anything else: the records may or may not exist; the chunk stays
     * held and the next run checks before creating */
    log_warn("bulk records not created", "bulk=%s rows=%zu error=\"%s\"", j->id, hi - lo,
             log_q(bulk_errtext(rc, err)));
    chunk_end(c, rc, 0);
}

static void create_next(struct chunk *c)
{
    if (c->nstack == 0) {
        release(c);
        return;
    }
    if (c->j->e->closing) {
        chunk_end(c, SMSYS_ECLOSED, 0);
        return;
    }
    c->nstack--;
    c->lo = c->stack[c->nstack][0];
    c->hi = c->stack[c->nstack][1];
    cJSON *arr = cJSON_CreateArray();
    int rc = arr ? 0 : -ENOMEM;
    for (size_t i = c->lo; rc == 0 && i < c->hi; i++) {
        cJSON *o = record(c->j, &c->m[c->todo[i]]);
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        rc = dv_create_multiple(c->j->e->dv, "smsys_smses", "smsys_sms", arr, created_cb, c);
    cJSON_Delete(arr);
    if (rc != 0)
        chunk_end(c, rc, 0);
}

static void create(struct chunk *c)
{
    c->todo = calloc(c->n ? c->n : 1, sizeof(*c->todo));
    /* halving a range of k rows pushes at most log2(k) + 1 ranges */
    c->capstack = 2 * 12 + 2;
    c->stack = calloc(c->capstack, sizeof(*c->stack));
    if (c->todo == NULL || c->stack == NULL) {
        chunk_end(c, -ENOMEM, 0);
        return;
    }
    for (size_t i = 0; i < c->n; i++)
        if (!c->m[i].exists)
            c->todo[c->ntodo++] = i;
    if (c->ntodo) {
        c->stack[0][0] = 0;
        c->stack[0][1] = c->ntodo;
        c->nstack = 1;
    }
    create_next(c);
}

/* ---- 2. which records exist ----------------------------------------------- */

static void check_next(struct chunk *c);

static void exist_cb(int rc, struct dv_result *res, void *ud)
{
    struct chunk *c = ud;
    c->j->e->st.dv_requests++;
    const cJSON *rows = rc == 0 ? cJSON_GetObjectItemCaseSensitive(res->json, "value") : NULL;
    if (rc != 0 || !cJSON_IsArray(rows)) {
        log_warn("bulk record check failed", "bulk=%s error=\"%s\"", c->j->id,
                 log_q(rc ? bulk_errtext(rc, &res->err) : "no value array"));
        chunk_end(c, rc ? rc : SMSYS_EPROTO, 0);
        return;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "activityid");
        for (size_t i = 0; cJSON_IsString(id) && i < c->n; i++)
            if (strcasecmp(c->m[i].act, id->valuestring) == 0)
                c->m[i].exists = 1;
    }
    check_next(c);
}

static void check_next(struct chunk *c)
{
    if (c->at >= c->n) {
        size_t have = 0;
        for (size_t i = 0; i < c->n; i++)
            have += (size_t)c->m[i].exists;
        log_info("bulk held chunk resumed", "bulk=%s members=%zu records_found=%zu", c->j->id, c->n,
                 have);
        create(c);
        return;
    }
    if (c->j->e->closing) {
        chunk_end(c, SMSYS_ECLOSED, 0);
        return;
    }
    struct buf f = BUF_INIT, path = BUF_INIT;
    int rc = buf_puts(&f, "Microsoft.Dynamics.CRM.In(PropertyName='activityid',PropertyValues=[");
    size_t end = c->at + EXIST_IDS < c->n ? c->at + EXIST_IDS : c->n;
    for (size_t i = c->at; rc == 0 && i < end; i++)
        rc = buf_printf(&f, "%s'%s'", i > c->at ? "," : "", c->m[i].act);
    if (rc == 0)
        rc = buf_puts(&f, "])");
    c->at = end;
    if (rc == 0)
        rc = buf_puts(&path, "smsys_smses?$select=activityid");
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", f.data);
    if (rc == 0)
        rc = dv_request_ex(c->j->e->dv, &(struct dv_call){.method = "GET", .path = path.data},
                           exist_cb, c);
    buf_free(&f);
    buf_free(&path);
    if (rc != 0)
        chunk_end(c, rc, 0);
}

/* ---- 1. the chunk ---------------------------------------------------------- */

static void chunk_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    if (rc != 0) {
        log_warn("bulk chunk failed", "bulk=%s error=\"%s\"", j->id, log_q(bulk_errtext(rc, err)));
        j->done(j, rc, 0);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        j->done(j, 0, 0); /* all released, or not sending */
        return;
    }
    struct chunk *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->m = calloc((size_t)n, sizeof(*c->m))) == NULL) {
        free(c);
        j->done(j, -ENOMEM, 0);
        return;
    }
    c->j = j;
    c->n = (size_t)n;
    c->fresh = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    for (int i = 0; i < n; i++) {
        struct cm *m = &c->m[i];
        snprintf(m->key, sizeof(m->key), "%s", PQgetvalue(res, i, 1));
        snprintf(m->entity, sizeof(m->entity), "%s", PQgetvalue(res, i, 2));
        snprintf(m->member, sizeof(m->member), "%s", PQgetvalue(res, i, 3));
        snprintf(m->act, sizeof(m->act), "%s", PQgetvalue(res, i, 4));
        snprintf(m->number, sizeof(m->number), "%s", PQgetvalue(res, i, 6));
        m->body = strdup(PQgetvalue(res, i, 7));
        m->segments = (int)strtol(PQgetvalue(res, i, 8), NULL, 10);
        if (m->body == NULL) {
            chunk_end(c, -ENOMEM, 0);
            return;
        }
    }
    if (c->fresh)
        create(c);
    else
        check_next(c);
}

int bulk_unit_chunk(struct bjob *j)
{
    return bulk_db_next_chunk(j->e->pg, j->id, (int)j->e->o.chunk, chunk_cb, j);
}
