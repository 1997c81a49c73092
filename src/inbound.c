/* inbound.c - inbound intake with dedupe, processing rounds and the
 * incoming smsys_sms record (inbound.h). Actions: inbound_act.c. */
#include "inbound_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/phone.h"
#include "smsys/text.h"
#include "smsys/util.h"

/* ---- ids ---- */

/* smsys's UUIDv5 namespace (a fixed random UUID). */
static const unsigned char ns_smsys[16] = {0x6b, 0x1e, 0x4c, 0x02, 0x8d, 0x3f, 0x4a, 0x51,
                                           0x9a, 0x77, 0x0c, 0x5e, 0x21, 0xd4, 0x83, 0xf6};

void inbound_uuid(const char *uid, const char *kind, const char *extra, char out[37])
{
    char name[256];
    int n =
        snprintf(name, sizeof(name), "%s:%s%s%s", kind, uid, extra ? ":" : "", extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(name))
        n = (int)strlen(name);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, ns_smsys, sizeof(ns_smsys)) != 1 ||
        EVP_DigestUpdate(ctx, name, (size_t)n) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        /* Never happens with a working libcrypto; a random id would break
         * idempotency silently, so fail loudly instead. */
        EVP_MD_CTX_free(ctx);
        abort();
    }
    EVP_MD_CTX_free(ctx);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
             md[13], md[14], md[15]);
}

static int is_guid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* ---- intake ---- */

struct accept_req {
    inbound_accept_cb cb;
    void *ud;
};

static void accept_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct accept_req *r = ud;
    int64_t id = 0;
    int inserted = 0;
    if (rc == 0 && PQntuples(res) == 1) {
        long long v = 0;
        util_parse_int(PQgetvalue(res, 0, 0), 1, INT64_MAX, &v);
        id = v;
        inserted = PQgetvalue(res, 0, 1)[0] == 't';
    } else if (rc == 0) {
        rc = SMSYS_EPG; /* a conflict with neither key: cannot happen */
    }
    r->cb(r->ud, rc, id, inserted, err);
    free(r);
}

int inbound_accept(struct pg_pool *pool, const char *account_id, const struct conn_mo *mo,
                   const char *default_country, inbound_accept_cb cb, void *ud)
{
    if (account_id == NULL || mo == NULL || mo->text == NULL || mo->from == NULL ||
        mo->to == NULL || !*mo->from || mo->part_total != 0)
        return -EINVAL;
    if (text_utf8_validate(mo->text, strlen(mo->text), NULL) != 0)
        return SMSYS_EUTF8;
    char src[PHONE_E164_MAX], dst[PHONE_E164_MAX];
    struct smsys_err perr;
    const char *s = mo->from, *d = mo->to;
    if (phone_normalize(mo->from, default_country, src, sizeof(src), &perr) == 0)
        s = src;
    if (phone_normalize_line(mo->to, dst, sizeof(dst), &perr) == 0)
        d = dst;
    char at[32];
    snprintf(at, sizeof(at), "%" PRId64,
             mo->received_at > 0 ? mo->received_at : (int64_t)(util_wall_us() / 1000000));
    struct accept_req *r = malloc(sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->cb = cb;
    r->ud = ud;
    const char *params[7] = {account_id, mo->provider_id, s, mo->from, d, mo->text, at};
    int rc = pg_query_prepared(pool, "smsys_inbound_accept",
                               "SELECT id, inserted FROM smsys_inbound_accept($1, $2, $3, $4, $5,"
                               " $6, to_timestamp($7::bigint))",
                               7, params, accept_cb, r);
    if (rc < 0)
        free(r);
    return rc;
}

/* ---- processor ---- */

int inbound_new(uv_loop_t *loop, struct pg_pool *pool, struct dv_client *dv, struct queue *q,
                struct phone_index *pi, const struct inbound_opts *opts, struct inbound **out)
{
    struct inbound *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -ENOMEM;
    in->loop = loop;
    in->pool = pool;
    in->dv = dv;
    in->q = q;
    in->pi = pi;
    if (opts)
        in->o = *opts;
    if (in->o.batch == 0)
        in->o.batch = 50;
    if (in->o.parallel == 0)
        in->o.parallel = 8;
    if (in->o.interval_ms == 0)
        in->o.interval_ms = 5000;
    if (in->o.index_interval_ms == 0)
        in->o.index_interval_ms = 60000;
    snprintf(in->country, sizeof(in->country), "%s",
             in->o.default_country && *in->o.default_country ? in->o.default_country : "IR");
    in->o.default_country = in->country;
    *out = in;
    return 0;
}

static void jobs_free(struct inbound *in)
{
    for (size_t i = 0; i < in->njobs; i++) {
        struct ijob *j = &in->jobs[i];
        free(j->account_id);
        free(j->src);
        free(j->dst);
        free(j->body);
        cJSON_Delete(j->matches);
        cJSON_Delete(j->results);
        if (j->have_kw)
            keyword_result_free(&j->kw);
    }
    free(in->jobs);
    in->jobs = NULL;
    in->njobs = in->running = in->ndone = 0;
    cJSON_Delete(in->tpls);
    in->tpls = NULL;
}

void inbound_free(struct inbound *in)
{
    if (in == NULL)
        return;
    jobs_free(in);
    free(in->due);
    keyword_rules_free(in->rules);
    cJSON_Delete(in->seps);
    free(in);
}

const char *ijob_set_of(const struct inbound *in, const char *table)
{
    const char *s = phone_index_set_of(in->pi, table);
    if (s)
        return s;
    if (strcmp(table, "contact") == 0)
        return "contacts";
    if (strcmp(table, "lead") == 0)
        return "leads";
    if (strcmp(table, "account") == 0)
        return "accounts";
    return NULL;
}

static void round_done(struct inbound *in, int rc, const struct smsys_err *err)
{
    unsigned n = in->processed;
    jobs_free(in);
    in->busy = 0;
    inbound_done_cb cb = in->cb;
    cb(in->ud, rc, n, err);
}

/* Starts due jobs: at most `parallel` at once, and never two of one
 * sender at a time, so one sender's messages (an opt-out, then an opt-in)
 * take effect in the order they arrived. The round ends when all are done. */
static void pump(struct inbound *in)
{
    if (in->ndone == in->njobs || (in->stopping && in->running == 0)) {
        round_done(in, 0, NULL);
        return;
    }
    for (size_t i = 0; i < in->njobs && in->running < in->o.parallel && !in->stopping; i++) {
        struct ijob *j = &in->jobs[i];
        if (j->phase != 0)
            continue;
        int blocked = 0;
        for (size_t k = 0; k < i && !blocked; k++)
            blocked = in->jobs[k].phase != 2 && strcmp(in->jobs[k].src, j->src) == 0;
        if (blocked)
            continue;
        j->phase = 1;
        j->step = 0;
        in->running++;
        ijob_run(j);
    }
}

static void job_done(struct ijob *j)
{
    struct inbound *in = j->in;
    j->phase = 2;
    in->running--;
    in->ndone++;
    in->processed++;
    pump(in);
}

static char *dupv(PGresult *res, int row, int col)
{
    return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static int cmp_job(const void *a, const void *b)
{
    const struct ijob *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void claimed_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct inbound *in = ud;
    if (rc < 0) {
        round_done(in, rc, err);
        return;
    }
    int n = PQntuples(res);
    in->jobs = calloc(n ? (size_t)n : 1, sizeof(*in->jobs));
    if (in->jobs == NULL) {
        struct smsys_err e = {.code = -ENOMEM, .detail = "out of memory"};
        round_done(in, -ENOMEM, &e);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct ijob *j = &in->jobs[in->njobs++];
        j->in = in;
        long long v = 0;
        util_parse_int(PQgetvalue(res, i, 0), 1, INT64_MAX, &v);
        j->id = v;
        j->account_id = dupv(res, i, 1);
        j->src = dupv(res, i, 2);
        j->dst = dupv(res, i, 3);
        j->body = dupv(res, i, 4);
        util_parse_int(PQgetvalue(res, i, 5), 0, 1000000, &v);
        j->attempts = (int)v;
        if (!PQgetisnull(res, i, 6))
            j->matches = cJSON_Parse(PQgetvalue(res, i, 6));
        if (!PQgetisnull(res, i, 7)) {
            cJSON *line = cJSON_Parse(PQgetvalue(res, i, 7));
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(line, "user");
            const cJSON *q = cJSON_GetObjectItemCaseSensitive(line, "queue");
            if (cJSON_IsString(u))
                snprintf(j->user_id, sizeof(j->user_id), "%s", u->valuestring);
            if (cJSON_IsString(q))
                snprintf(j->queue_id, sizeof(j->queue_id), "%s", q->valuestring);
            cJSON_Delete(line);
        }
        if (!PQgetisnull(res, i, 8))
            snprintf(j->reply_to, sizeof(j->reply_to), "%s", PQgetvalue(res, i, 8));
        snprintf(j->activity_id, sizeof(j->activity_id), "%s", PQgetvalue(res, i, 9));
        j->results = cJSON_CreateArray();
        if (!j->account_id || !j->src || !j->dst || !j->body || !j->results) {
            struct smsys_err e = {.code = -ENOMEM, .detail = "out of memory"};
            round_done(in, -ENOMEM, &e);
            return;
        }
    }
    if (in->njobs > 1)
        qsort(in->jobs, in->njobs, sizeof(*in->jobs), cmp_job);
    pump(in);
}

/* Claims due rows for this round (attempt counted and the next try
 * scheduled up front, so a crash mid-row retries it later), with what
 * processing needs from PostgreSQL: the phone index matches best first,
 * the line's user and queue, and the last outgoing SMS to the sender. */
static const char claim_sql[] =
    "UPDATE smsys_inbound i SET attempts = i.attempts + 1,"
    " next_at = now() + make_interval(secs => least(3600, 30 * power(2, i.attempts)))"
    " WHERE i.id IN (SELECT x.id FROM smsys_inbound x WHERE x.state IN ('stored', 'matched')"
    "   AND x.next_at <= now() ORDER BY x.id LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " RETURNING i.id, i.account_id, i.src, i.dst, i.body, i.attempts,"
    " (SELECT json_agg(json_build_object('table', m.tbl, 'id', m.record_id,"
    "   'donotsms', m.donotsms) ORDER BY m.ord)"
    "   FROM smsys_pi_match(i.src) WITH ORDINALITY m(tbl, record_id, modified_on, donotsms, ord)),"
    " (SELECT json_build_object('user', l.user_id, 'queue', l.queue_id) FROM smsys_line l"
    "   WHERE regexp_replace(l.number, '\\D', '', 'g') = regexp_replace(i.dst, '\\D', '', 'g')"
    "   ORDER BY (l.account_id::text = lower(i.account_id)) DESC, l.id LIMIT 1),"
    " (SELECT m.activity_id FROM smsys_message m WHERE m.recipient = i.src"
    "   AND m.activity_id IS NOT NULL ORDER BY m.id DESC LIMIT 1), i.uid";

static void claim(struct inbound *in)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%u", in->o.batch);
    const char *params[1] = {lim};
    int rc = pg_query(in->pool, claim_sql, 1, params, claimed_cb, in);
    if (rc < 0) {
        struct smsys_err e = {.code = rc};
        snprintf(e.detail, sizeof(e.detail), "inbound claim: %s", smsys_strerror(rc));
        round_done(in, rc, &e);
    }
}

static void settings_cb(int rc, struct dv_result *res, void *ud)
{
    struct inbound *in = ud;
    if (rc == 0) {
        cJSON *m = cJSON_CreateObject();
        const cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(res->json, "value"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "smsys_smssettingid");
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(row, "smsys_separators");
            if (m && cJSON_IsString(id) && cJSON_IsString(sp) && *sp->valuestring) {
                char key[64];
                snprintf(key, sizeof(key), "%s", id->valuestring);
                for (char *p = key; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                cJSON_AddStringToObject(m, key, sp->valuestring);
            }
        }
        if (m) {
            cJSON_Delete(in->seps);
            in->seps = m;
        }
    } else {
        log_warn("inbound separators not read, keeping the last ones", "detail=%s",
                 log_q(res ? res->err.detail : ""));
    }
    claim(in);
}

static void rules_cb(int rc, struct dv_result *res, void *ud)
{
    struct inbound *in = ud;
    if (in->stopping) {
        round_done(in, SMSYS_ECLOSED, NULL);
        return;
    }
    if (rc == 0) {
        struct kw_rules *rs = NULL;
        unsigned skipped = 0;
        int r2 = keyword_rules_new(&rs);
        if (r2 == 0)
            r2 = keyword_rules_from_json(rs, cJSON_GetObjectItemCaseSensitive(res->json, "value"),
                                         &skipped);
        if (r2 == 0)
            r2 = keyword_rules_add_defaults(rs);
        if (r2 >= 0) {
            keyword_rules_free(in->rules);
            in->rules = rs;
            in->rules_at_ms = util_now_ms();
        } else {
            keyword_rules_free(rs);
        }
    } else if (in->rules == NULL) {
        /* Without rules an opt-out would be missed: process later. */
        round_done(in, rc, res ? &res->err : NULL);
        return;
    } else {
        log_warn("inbound rules not read, keeping the last ones", "detail=%s",
                 log_q(res ? res->err.detail : ""));
    }
    rc = dv_request(in->dv, "GET", "smsys_smssettings?$select=smsys_smssettingid,smsys_separators",
                    NULL, NULL, settings_cb, in);
    if (rc < 0)
        claim(in);
}

int inbound_run_once(struct inbound *in, inbound_done_cb cb, void *ud)
{
    if (in->busy)
        return -EBUSY;
    in->busy = 1;
    in->cb = cb;
    in->ud = ud;
    in->processed = 0;
    int rc = dv_request(in->dv, "GET",
                        "smsys_keywordrules?$select=smsys_name,smsys_keywords,smsys_match,"
                        "smsys_action,smsys_priority,smsys_stop,smsys_actionname,"
                        "_smsys_settingid_value,_smsys_templateid_value,_smsys_queueid_value,"
                        "statecode",
                        NULL, NULL, rules_cb, in);
    if (rc < 0)
        in->busy = 0;
    return rc;
}

/* ---- one row ---- */

enum { ST_EVAL = 0, ST_LEAD, ST_RECORD, ST_QUEUE, ST_ACTIONS, ST_SAVE, ST_DONE };

static void saved_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct ijob *j = ud;
    if (rc < 0)
        log_error("inbound row not saved", "id=%" PRId64 " detail=%s", j->id,
                  log_q(err ? err->detail : ""));
    job_done(j);
}

static void save(struct ijob *j)
{
    const char *state = "recorded";
    if (j->rc < 0)
        state =
            j->attempts >= INBOUND_MAX_ATTEMPTS ? "failed" : (j->m_id[0] ? "matched" : "stored");
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, j->id);
    cJSON *others = NULL;
    if (cJSON_GetArraySize(j->matches) > 1) {
        others = cJSON_Duplicate(j->matches, 1);
        cJSON_DeleteItemFromArray(others, 0);
    }
    char *ojson = others ? cJSON_PrintUnformatted(others) : NULL;
    char *rjson = cJSON_PrintUnformatted(j->results);
    const char *params[9] = {id,
                             state,
                             j->m_table[0] ? j->m_table : NULL,
                             j->m_id[0] ? j->m_id : NULL,
                             ojson,
                             j->reply_to[0] ? j->reply_to : NULL,
                             j->activity_id[0] && j->rc == 0 ? j->activity_id : NULL,
                             rjson,
                             j->error[0] ? j->error : NULL};
    int rc = pg_query(j->in->pool,
                      "UPDATE smsys_inbound SET state = $2, matched_table = $3,"
                      " matched_id = $4::uuid, others = $5::jsonb, reply_to = $6::uuid,"
                      " activity_id = $7::uuid, rule_results = $8::jsonb, last_error = $9,"
                      " processed_at = CASE WHEN $2 = 'recorded' THEN now() END WHERE id = $1",
                      9, params, saved_cb, j);
    free(ojson);
    free(rjson);
    cJSON_Delete(others);
    if (rc < 0) {
        /* The row stays due and is taken again after its backoff. */
        log_error("inbound row not saved", "id=%" PRId64 " rc=%d", j->id, rc);
        job_done(j);
    }
}

static void fail_job(struct ijob *j, int rc, const char *what, const struct smsys_err *err)
{
    j->rc = rc;
    snprintf(j->error, sizeof(j->error), "%s: %.500s", what,
             err && err->detail[0] ? err->detail : smsys_strerror(rc));
    log_warn("inbound row failed", "id=%" PRId64 " attempt=%d error=%s", j->id, j->attempts,
             log_q(j->error));
    j->step = ST_SAVE;
    ijob_run(j);
}

static void lead_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct ijob *j = ud;
    (void)id;
    if (rc < 0 && rc != SMSYS_ECONFLICT) { /* ECONFLICT: created by an earlier attempt */
        fail_job(j, rc, "create lead", err);
        return;
    }
    j->step = ST_RECORD;
    ijob_run(j);
}

static void create_lead(struct ijob *j)
{
    char lid[37];
    inbound_uuid(j->activity_id, "lead", NULL, lid);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "leadid", lid);
    cJSON_AddStringToObject(o, "lastname", j->src);
    cJSON_AddStringToObject(o, "mobilephone", j->src);
    cJSON_AddStringToObject(o, "subject", "SMS from an unknown number");
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    snprintf(j->m_table, sizeof(j->m_table), "lead");
    snprintf(j->m_id, sizeof(j->m_id), "%s", lid);
    int rc = body ? dv_create(j->in->dv, "leads", body, 1, lead_cb, j) : -ENOMEM;
    free(body);
    if (rc < 0)
        fail_job(j, rc, "create lead", NULL);
}

static void record_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    (void)id;
    struct ijob *j = ud;
    if (rc < 0 && rc != SMSYS_ECONFLICT) { /* ECONFLICT: an earlier attempt created it */
        fail_job(j, rc, "create SMS record", err);
        return;
    }
    j->step = ST_QUEUE;
    ijob_run(j);
}

static void add_bind(cJSON *o, const char *nav, const char *set, const char *id)
{
    char v[128];
    snprintf(v, sizeof(v), "/%s(%s)", set, id);
    cJSON_AddStringToObject(o, nav, v);
}

/* The incoming smsys_sms: see docs/inbound.md "The record". */
static void create_record(struct ijob *j)
{
    struct inbound *in = j->in;
    cJSON *o = cJSON_CreateObject();
    cJSON *parties = cJSON_CreateArray();
    cJSON *from = cJSON_CreateObject();
    struct buf desc = {0};
    char subject[160], nav[160];
    if (!o || !parties || !from) {
        cJSON_Delete(o);
        cJSON_Delete(parties);
        cJSON_Delete(from);
        fail_job(j, -ENOMEM, "create SMS record", NULL);
        return;
    }
    snprintf(subject, sizeof(subject), "SMS from %s", j->src);
    cJSON_AddStringToObject(o, "activityid", j->activity_id);
    cJSON_AddStringToObject(o, "subject", subject);
    buf_puts(&desc, j->body);
    /* Several records share the number: the others are named after the
     * text, so a user sees them without opening the service's database. */
    int nm = cJSON_GetArraySize(j->matches);
    for (int i = 1; i < nm; i++) {
        const cJSON *m = cJSON_GetArrayItem(j->matches, i);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "table");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        buf_printf(&desc, "%s%s %s", i == 1 ? "\n\n[smsys] also matches: " : ", ",
                   cJSON_IsString(t) ? t->valuestring : "?",
                   cJSON_IsString(id) ? id->valuestring : "?");
    }
    buf_putc(&desc, '\0');
    cJSON_AddStringToObject(o, "description", desc.data ? desc.data : "");
    buf_free(&desc);
    cJSON_AddNumberToObject(o, "smsys_direction", 2);
    cJSON_AddNumberToObject(o, "smsys_status", 8);
    cJSON_AddNumberToObject(o, "statecode", 1);
    cJSON_AddNumberToObject(o, "statuscode", 2);
    cJSON_AddStringToObject(o, "smsys_phonenumber", j->src);
    cJSON_AddStringToObject(o, "smsys_sendernumber", j->dst);
    char now[40];
    util_iso8601(util_wall_us(), now, sizeof(now));
    cJSON_AddStringToObject(o, "actualend", now);
    if (is_guid(j->account_id))
        add_bind(o, "smsys_settingid@odata.bind", "smsys_smssettings", j->account_id);
    const char *set = j->m_id[0] ? ijob_set_of(in, j->m_table) : NULL;
    if (set) {
        snprintf(nav, sizeof(nav), "regardingobjectid_%s_smsys_sms@odata.bind", j->m_table);
        add_bind(o, nav, set, j->m_id);
        snprintf(nav, sizeof(nav), "partyid_%s@odata.bind", j->m_table);
        add_bind(from, nav, set, j->m_id);
    } else {
        cJSON_AddStringToObject(from, "addressused", j->src);
    }
    cJSON_AddNumberToObject(from, "participationtypemask", 1);
    cJSON_AddItemToArray(parties, from);
    if (j->user_id[0]) {
        cJSON *to = cJSON_CreateObject();
        if (to) {
            add_bind(to, "partyid_systemuser@odata.bind", "systemusers", j->user_id);
            cJSON_AddNumberToObject(to, "participationtypemask", 2);
            cJSON_AddItemToArray(parties, to);
        }
        add_bind(o, "ownerid@odata.bind", "systemusers", j->user_id);
    }
    cJSON_AddItemToObject(o, "smsys_sms_activity_parties", parties);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = body ? dv_create(in->dv, "smsys_smses", body, 1, record_cb, j) : -ENOMEM;
    free(body);
    if (rc < 0)
        fail_job(j, rc, "create SMS record", NULL);
}

static void queued_cb(int rc, struct dv_result *res, void *ud)
{
    struct ijob *j = ud;
    if (rc < 0) {
        fail_job(j, rc, "add the SMS to the line's queue", res ? &res->err : NULL);
        return;
    }
    j->step = ST_ACTIONS;
    ijob_run(j);
}

static void add_line_queue(struct ijob *j)
{
    char path[128], body[256];
    snprintf(path, sizeof(path), "queues(%s)/Microsoft.Dynamics.CRM.AddToQueue", j->queue_id);
    snprintf(body, sizeof(body),
             "{\"Target\":{\"activityid\":\"%s\",\"@odata.type\":"
             "\"Microsoft.Dynamics.CRM.smsys_sms\"}}",
             j->activity_id);
    struct dv_call c = {.method = "POST", .path = path, .body = body, .retry = DV_RETRY_SAFE};
    int rc = dv_request_ex(j->in->dv, &c, queued_cb, j);
    if (rc < 0)
        fail_job(j, rc, "add the SMS to the line's queue", NULL);
}

static const char *seps_of(const struct inbound *in, const char *account_id)
{
    char key[64];
    snprintf(key, sizeof(key), "%s", account_id);
    for (char *p = key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(in->seps, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static void evaluate(struct ijob *j)
{
    struct inbound *in = j->in;
    const cJSON *best = cJSON_GetArrayItem(j->matches, 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(best, "table");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(best, "id");
    if (cJSON_IsString(t) && cJSON_IsString(id)) {
        snprintf(j->m_table, sizeof(j->m_table), "%s", t->valuestring);
        snprintf(j->m_id, sizeof(j->m_id), "%s", id->valuestring);
    }
    int rc = keyword_eval(in->rules, j->body, seps_of(in, j->account_id), j->account_id, &j->kw);
    if (rc == 0)
        j->have_kw = 1;
    else
        log_warn("inbound keyword evaluation failed", "id=%" PRId64 " rc=%d", j->id, rc);
}

void ijob_run(struct ijob *j)
{
    /* Stopping: no new Dynamics call (the client may be closing); the row
     * stays due and is taken again after the restart. */
    if (j->in->stopping && j->step < ST_SAVE) {
        j->rc = SMSYS_ECLOSED;
        snprintf(j->error, sizeof(j->error), "stopped before the row was recorded");
        j->step = ST_SAVE;
    }
    switch (j->step) {
    case ST_EVAL:
        evaluate(j);
        j->step = ST_LEAD;
        /* fall through */
    case ST_LEAD:
        if (!j->m_id[0] && j->in->o.unmatched == INBOUND_UNMATCHED_LEAD && j->src[0] == '+') {
            create_lead(j);
            return;
        }
        j->step = ST_RECORD;
        /* fall through */
    case ST_RECORD:
        create_record(j);
        return;
    case ST_QUEUE:
        if (j->queue_id[0]) {
            add_line_queue(j);
            return;
        }
        j->step = ST_ACTIONS;
        /* fall through */
    case ST_ACTIONS:
        if (j->have_kw && j->hit < j->kw.nhits) {
            ijob_actions(j);
            return;
        }
        j->step = ST_SAVE;
        /* fall through */
    case ST_SAVE:
        j->step = ST_DONE;
        save(j);
        return;
    default:
        return;
    }
}
