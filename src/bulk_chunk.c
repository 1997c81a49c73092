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
 *   3. CreateMultiple with the members' deterministic activity ids, through
 *      dv_create_multiple_each: a row Dynamics refuses (a contact deleted
 *      since expansion, ...) fails only its member, named in a note on the
 *      bulk record. Any temporary error leaves the chunk held; the next
 *      run goes to 2.
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
    size_t at;    /* existence check: next index */
    size_t *todo; /* creation: indexes of the members to create */
    size_t ntodo;
};

static void chunk_free(struct chunk *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->m[i].body);
        free(c->m[i].fail);
    }
    free(c->m);
    free(c->todo);
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

/* Recipients named in the note on the bulk record; the count is whole. */
#define NOTE_NAMES 10

static void note_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct chunk *c = ud;
    (void)id;
    bulk_note_answered(c->j, "refusal", rc, err); /* the messages say why anyway */
    release(c);
}

/* Puts the refused recipients of the chunk on the bulk record as a note,
 * where the user looks first, then releases. */
static void refusal_note(struct chunk *c, size_t nf)
{
    struct buf t = BUF_INIT;
    const struct cm *first = NULL;
    size_t named = 0;
    int rc = buf_printf(&t, "%zu recipient%s refused by Dynamics: ", nf, nf == 1 ? "" : "s");
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        const struct cm *m = &c->m[i];
        if (m->fail == NULL)
            continue;
        if (first == NULL)
            first = m;
        if (named++ < NOTE_NAMES)
            rc = buf_printf(&t, "%s%s (%s %s): %s", named > 1 ? "; " : "", m->number, m->entity,
                            m->member, m->fail);
    }
    if (rc == 0 && named > NOTE_NAMES)
        rc = buf_printf(&t, "; and %zu more (each one's message is Failed with the reason)",
                        named - NOTE_NAMES);
    char nid[37], key[160];
    snprintf(key, sizeof(key), "refused:%s", first ? first->key : "");
    if (rc == 0 && first && !c->j->e->closing && bulk_activity_id(c->j->id, key, nid) == 0 &&
        dv_note_create(c->j->e->dv, "smsys_bulksms", "smsys_bulksmses", c->j->id, nid,
                       "Bulk SMS: recipients refused by Dynamics", t.data, note_cb, c) == 0) {
        buf_free(&t);
        return;
    }
    buf_free(&t);
    release(c);
}

static void created_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct chunk *c = ud;
    struct bjob *j = c->j;
    j->e->st.dv_requests += res->requests;
    size_t nf = 0, made = 0;
    int temp = 0;
    const struct smsys_err *terr = NULL;
    for (size_t k = 0; k < res->n && k < c->ntodo; k++) {
        const struct dv_row_result *r = &res->rows[k];
        struct cm *m = &c->m[c->todo[k]];
        if (r->rc == 0 || r->rc == SMSYS_ECONFLICT) {
            /* a conflict on our own deterministic id: the record exists
             * (made by an earlier attempt whose answer was lost) */
            made++;
        } else if (dv_rc_refused(r->rc)) {
            free(m->fail);
            m->fail = strdup(bulk_errtext(r->rc, &r->err));
            if (m->fail == NULL) {
                chunk_end(c, -ENOMEM, 0); /* stays held: the next run checks again */
                return;
            }
            log_warn("bulk record refused", "bulk=%s member=%s error=\"%s\"", j->id, m->key,
                     log_q(m->fail));
            nf++;
        } else if (temp == 0) {
            temp = r->rc;
            terr = &r->err;
        }
    }
    j->e->st.records += made;
    if (temp != 0) {
        /* those records may or may not exist; the chunk stays held and the
         * next run checks before creating */
        log_warn("bulk records not created", "bulk=%s rows=%zu created=%zu error=\"%s\"", j->id,
                 c->ntodo, made, log_q(bulk_errtext(temp, terr)));
        chunk_end(c, temp, 0);
        return;
    }
    if (nf)
        refusal_note(c, nf);
    else
        release(c);
}

/* Creates the missing records in one dv_create_multiple_each: a row
 * Dynamics refuses fails only its member. */
static void create(struct chunk *c)
{
    c->todo = calloc(c->n ? c->n : 1, sizeof(*c->todo));
    cJSON *arr = cJSON_CreateArray();
    int rc = c->todo && arr ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        if (c->m[i].exists)
            continue;
        cJSON *o = record(c->j, &c->m[i]);
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            rc = -ENOMEM;
        }
        c->todo[c->ntodo++] = i;
    }
    if (rc == 0 && c->ntodo == 0) {
        cJSON_Delete(arr);
        release(c);
        return;
    }
    if (rc == 0 && c->j->e->closing)
        rc = SMSYS_ECLOSED;
    if (rc == 0)
        rc = dv_create_multiple_each(c->j->e->dv, "smsys_smses", "smsys_sms", arr, created_cb, c);
    cJSON_Delete(arr);
    if (rc != 0)
        chunk_end(c, rc, 0);
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
