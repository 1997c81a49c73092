/* Integration tests of inbound SMS (inbound.h, phone_index.h, keyword.h)
 * against the real dvemu and PostgreSQL: dedupe, matching through the
 * phone index, the incoming record's columns, the keyword actions with
 * Persian text (the spec's two examples), opt-out and opt-in. Intake is
 * inbound_accept() with conn_mo values, as the connector manager calls
 * it (the manager itself lives on another branch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>

#include "../lib/testutil.h"
#include "mo_db.h"
#include "dvemu_client.h"

#include "smsys/connector.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/inbound.h"
#include "smsys/keyword.h"
#include "smsys/phone_index.h"
#include "smsys/pickup.h"
#include "smsys/queue.h"
#include "smsys/text.h"
#include "smsys/util.h"

static struct emuproc emu;       /* one dvemu for the whole program */
static struct world_sim provsim; /* and one provsim */
static int sim_port;

struct fx {
    struct world_pg *db;
    uv_loop_t loop;
    struct pg_pool *pool;
    struct http_client *http;
    struct dv_client *dv;
    struct queue *q;
    struct phone_index *pi;
    struct inbound *in;
    char setting[40]; /* smsys_smssetting id = account id */
    char user[40];
};

static void db_exec(const struct world_pg *t, const char *sql)
{
    PGconn *c = PQconnectdb(t->conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static const char *em_create(const char *set, const char *body)
{
    static char id[64];
    snprintf(id, sizeof(id), "%s", emu_create(&emu, set, body));
    return id;
}

static cJSON *em_get(const char *path_in)
{
    char path[1024];
    size_t n = 0;
    for (const char *p = path_in; *p && n + 4 < sizeof(path); p++) {
        if (*p == ' ' || *p == '+') {
            memcpy(path + n, *p == ' ' ? "%20" : "%2B", 3);
            n += 3;
        } else {
            path[n++] = *p;
        }
    }
    path[n] = '\0';
    struct emures r;
    emu_req(&emu, "GET", path, NULL, NULL, &r);
    if (r.status != 200)
        fail_msg("GET %s -> %ld %s", path, r.status, r.body.data ? r.body.data : "");
    cJSON *j = r.json;
    r.json = NULL;
    emures_free(&r);
    return j;
}

static void em_delete_all(const char *set, const char *key)
{
    char path[160];
    snprintf(path, sizeof(path), "%s?$select=%s", set, key);
    cJSON *j = em_get(path);
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(j, "value"))
    {
        char p[200];
        snprintf(p, sizeof(p), "%s(%s)", set, emu_str(row, key));
        struct emures r;
        emu_req(&emu, "DELETE", p, NULL, NULL, &r);
        emures_free(&r);
    }
    cJSON_Delete(j);
}

static int group_setup(void **state)
{
    (void)state;
    const char *args[] = {"--action", "new_SmsKeyword", NULL};
    emu_start(&emu, args);
    char logf[128];
    snprintf(logf, sizeof(logf), "/tmp/inbound-provsim-%d.log", (int)getpid());
    world_provsim_start(&provsim, logf, NULL);
    sim_port = provsim.port;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    emu_stop(&emu);
    world_sim_stop(&provsim);
    return 0;
}

static struct fx *fx_open(void **state, enum inbound_unmatched unmatched)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->db = *state;
    /* rules and other rows of earlier tests must not leak into this one */
    em_delete_all("smsys_keywordrules", "smsys_keywordruleid");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(pg_pool_new(&f->loop, f->db->conninfo, 4, &f->pool), 0);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->http), 0);
    char token_url[128];
    snprintf(token_url, sizeof(token_url), "%s/tenant-1/oauth2/v2.0/token", emu.root);
    struct dv_opts o = {.url = emu.root,
                        .token_url = token_url,
                        .client_id = "smsys-demo",
                        .client_secret = "smsys-demo-secret",
                        .scope = "http://127.0.0.1/.default"};
    assert_int_equal(dv_new(&f->loop, f->http, &o, &f->dv), 0);
    assert_int_equal(queue_new(&f->loop, f->pool, NULL, &f->q), 0);
    assert_int_equal(phone_index_new(f->pool, f->dv, NULL, 0, "IR", &f->pi), 0);
    struct inbound_opts io = {.unmatched = unmatched, .interval_ms = 100};
    assert_int_equal(inbound_new(&f->loop, f->pool, f->dv, f->q, f->pi, &io, &f->in), 0);

    snprintf(
        f->setting, sizeof(f->setting), "%s",
        em_create("smsys_smssettings",
                  "{\"smsys_name\":\"line\",\"smsys_provider\":\"smpp\",\"smsys_enabled\":true,"
                  "\"smsys_separators\":\" ,\xD8\x8C;:\\\\n\"}"));
    snprintf(f->user, sizeof(f->user), "%s",
             em_create("systemusers", "{\"firstname\":\"Sara\",\"lastname\":\"Ahmadi\"}"));
    char sql[600];
    snprintf(sql, sizeof(sql),
             "INSERT INTO smsys_account (id, name, provider) VALUES ('%s', 'line', 'smpp');"
             "INSERT INTO smsys_line (id, account_id, number, user_id) VALUES"
             " (gen_random_uuid(), '%s', '3000123', '%s')",
             f->setting, f->setting, f->user);
    db_exec(f->db, sql);
    return f;
}

static void closed_flag_cb(void *ud)
{
    *(int *)ud = 1;
}

static void fx_close(struct fx *f)
{
    inbound_free(f->in);
    phone_index_free(f->pi);
    int done = 0;
    dv_close(f->dv, closed_flag_cb, &done);
    assert_int_equal(tu_run_until(&f->loop, &done, 10000), 0);
    done = 0;
    http_client_close(f->http, closed_flag_cb, &done);
    assert_int_equal(tu_run_until(&f->loop, &done, 10000), 0);
    pool_close_sync(&f->loop, f->pool);
    queue_free(f->q);
    assert_int_equal(tu_loop_handles(&f->loop), 0);
    assert_int_equal(tu_loop_close(&f->loop), 0);
    free(f);
}

/* ---- synchronous wrappers ---- */

struct acc {
    int done, rc, inserted;
    int64_t id;
};

static void acc_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    struct acc *a = ud;
    if (rc < 0)
        fprintf(stderr, "accept: %d %s\n", rc, err ? err->detail : "");
    a->rc = rc;
    a->id = id;
    a->inserted = inserted;
    a->done = 1;
}

static struct acc accept_sync(struct fx *f, const char *pid, const char *from, const char *text,
                              int64_t at)
{
    struct acc a = {0};
    struct conn_mo mo = {
        .provider_id = pid, .from = from, .to = "3000123", .text = text, .received_at = at};
    assert_int_equal(inbound_accept(f->pool, f->setting, &mo, "IR", acc_cb, &a), 0);
    assert_int_equal(tu_run_until(&f->loop, &a.done, 10000), 0);
    assert_int_equal(a.rc, 0);
    return a;
}

struct rnd {
    int done, rc;
    unsigned n;
};

static void rnd_cb(void *ud, int rc, unsigned n, const struct smsys_err *err)
{
    struct rnd *r = ud;
    if (rc < 0)
        fprintf(stderr, "round: %d %s\n", rc, err ? err->detail : "");
    r->rc = rc;
    r->n = n;
    r->done = 1;
}

static unsigned round_sync(struct fx *f)
{
    struct rnd r = {0};
    assert_int_equal(inbound_run_once(f->in, rnd_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.done, 30000), 0);
    assert_int_equal(r.rc, 0);
    return r.n;
}

struct idx {
    int done, rc;
    unsigned long rows;
};

static void idx_cb(void *ud, int rc, unsigned long rows, const struct smsys_err *err)
{
    struct idx *x = ud;
    if (rc < 0)
        fprintf(stderr, "index: %d %s\n", rc, err ? err->detail : "");
    x->rc = rc;
    x->rows = rows;
    x->done = 1;
}

static unsigned long refresh_sync(struct fx *f)
{
    struct idx x = {0};
    assert_int_equal(phone_index_refresh(f->pi, idx_cb, &x), 0);
    assert_int_equal(tu_run_until(&f->loop, &x.done, 30000), 0);
    assert_int_equal(x.rc, 0);
    return x.rows;
}

static void row_value(struct fx *f, int64_t id, const char *col, char *out, size_t len)
{
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_inbound WHERE id = %" PRId64, col, id);
    db_value(f->db, sql, out, len);
}

static void uid_of(struct fx *f, int64_t id, char out[37])
{
    row_value(f, id, "uid", out, 37);
}

static cJSON *sms_of(struct fx *f, int64_t id)
{
    char aid[37], path[400];
    uid_of(f, id, aid);
    snprintf(path, sizeof(path),
             "smsys_smses(%s)?$expand=smsys_sms_activity_parties($select=participationtypemask,"
             "_partyid_value,addressused)",
             aid);
    return em_get(path);
}

static const cJSON *party(const cJSON *sms, int mask)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(sms, "smsys_sms_activity_parties"))
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "participationtypemask");
        if (cJSON_IsNumber(m) && (int)m->valuedouble == mask)
            return p;
    }
    return NULL;
}

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

struct enq {
    int done, rc;
};

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    (void)res;
    (void)n;
    struct enq *e = ud;
    if (rc < 0)
        fprintf(stderr, "enqueue: %d %s\n", rc, err ? err->detail : "");
    e->rc = rc;
    e->done = 1;
}

/* Enqueues one outbound message as pickup or a bulk send would. */
static void enqueue_sync(struct fx *f, const char *key, const char *to)
{
    char act[37];
    util_uuid4(act);
    struct queue_new m = {.idem_key = key,
                          .activity_id = act,
                          .account_id = f->setting,
                          .recipient = to,
                          .body = "promo",
                          .segments = 1,
                          .state = QUEUE_QUEUED};
    struct enq e = {0};
    assert_int_equal(queue_enqueue(f->q, &m, 1, enq_cb, &e), 0);
    assert_int_equal(tu_run_until(&f->loop, &e.done, 10000), 0);
    assert_int_equal(e.rc, 0);
}

/* ---- tests ---- */

/* The same inbound delivered twice is one row and one record: by provider
 * id, and by fingerprint when the provider gives no id. */
static void test_dedupe(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    struct acc a1 = accept_sync(f, "mo-1", "09120000001", "سلام", 1700000000);
    struct acc a2 = accept_sync(f, "mo-1", "09120000001", "سلام", 1700000000);
    assert_int_equal(a1.inserted, 1);
    assert_int_equal(a2.inserted, 0);
    assert_true(a1.id == a2.id);
    /* same text, other provider id: a second message */
    struct acc a3 = accept_sync(f, "mo-2", "09120000001", "سلام", 1700000000);
    assert_int_equal(a3.inserted, 1);
    /* no provider id: fingerprint over sender, line, text and 5-minute bucket */
    struct acc b1 = accept_sync(f, NULL, "+989120000001", "hello", 1700000010);
    struct acc b2 = accept_sync(f, NULL, "09120000001", "hello", 1700000020);
    assert_int_equal(b1.inserted, 1);
    assert_int_equal(b2.inserted, 0);
    assert_true(b1.id == b2.id);
    struct acc b3 = accept_sync(f, NULL, "09120000001", "hello", 1700009000);
    assert_int_equal(b3.inserted, 1);

    assert_int_equal(round_sync(f), 4);
    /* processed twice (a retry after a crash): still one record */
    db_exec(f->db, "UPDATE smsys_inbound SET state = 'stored', next_at = now()");
    assert_int_equal(round_sync(f), 4);
    char v[64];
    row_value(f, a1.id, "state", v, sizeof(v));
    assert_string_equal(v, "recorded");
    cJSON *j = em_get("smsys_smses?$select=activityid&$filter=smsys_phonenumber eq "
                      "'+989120000001' and smsys_direction eq 2");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "value")), 4);
    cJSON_Delete(j);
    fx_close(f);
}

/* ۰۹۱۲۱۲۳۴۵۶۷ matches a contact stored as +98 912 123 4567 through the
 * index; the record has the columns of schema.md and the line's owner. */
static void test_match_and_record(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"firstname\":\"Ali\",\"lastname\":\"Rezaei\","
                                   "\"mobilephone\":\"+98 912 123 4567\"}"));
    assert_true(refresh_sync(f) >= 1);
    char v[200];
    db_value(f->db,
             "SELECT tbl || ':' || record_id FROM smsys_phone_index WHERE number = '+989121234567'",
             v, sizeof(v));
    char want[80];
    snprintf(want, sizeof(want), "contact:%s", contact);
    assert_string_equal(v, want);

    struct acc a = accept_sync(f, "m-rec", "۰۹۱۲۱۲۳۴۵۶۷", "سلام، وقت بخیر", 0);
    assert_int_equal(round_sync(f), 1);
    row_value(f, a.id, "state || ' ' || matched_table || ' ' || matched_id", v, sizeof(v));
    snprintf(want, sizeof(want), "recorded contact %s", contact);
    assert_string_equal(v, want);

    cJSON *s = sms_of(f, a.id);
    assert_int_equal(num(s, "smsys_direction"), 2);
    assert_int_equal(num(s, "smsys_status"), 8);
    assert_int_equal(num(s, "statecode"), 1);
    assert_string_equal(emu_str(s, "description"), "سلام، وقت بخیر");
    assert_string_equal(emu_str(s, "smsys_phonenumber"), "+989121234567");
    assert_string_equal(emu_str(s, "smsys_sendernumber"), "3000123");
    assert_string_equal(emu_str(s, "_regardingobjectid_value"), contact);
    assert_string_equal(emu_str(s, "_ownerid_value"), f->user);
    const cJSON *from = party(s, 1), *to = party(s, 2);
    assert_non_null(from);
    assert_non_null(to);
    assert_string_equal(emu_str(from, "_partyid_value"), contact);
    assert_string_equal(emu_str(to, "_partyid_value"), f->user);
    cJSON_Delete(s);
    fx_close(f);
}

/* Several records: the one with the latest conversation, else the most
 * recently modified; the others are named in the description. */
static void test_multiple_matches(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40], lead[40];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Old\",\"mobilephone\":\"09125550001\"}"));
    sleep(1); /* modifiedon has second precision */
    snprintf(lead, sizeof(lead), "%s",
             em_create("leads", "{\"lastname\":\"New\",\"telephone1\":\"+989125550001\"}"));
    refresh_sync(f);
    struct acc a = accept_sync(f, "m-multi-1", "09125550001", "hi", 0);
    round_sync(f);
    char v[200];
    row_value(f, a.id, "matched_table || ':' || matched_id", v, sizeof(v));
    char want[80];
    snprintf(want, sizeof(want), "lead:%s", lead);
    assert_string_equal(v, want);
    cJSON *s = sms_of(f, a.id);
    assert_non_null(strstr(emu_str(s, "description"), contact));
    cJSON_Delete(s);
    row_value(f, a.id, "others->0->>'table'", v, sizeof(v));
    assert_string_equal(v, "contact");

    /* a conversation with the contact makes it the best match */
    char sql[400];
    snprintf(sql, sizeof(sql),
             "UPDATE smsys_inbound SET matched_table = 'contact', matched_id = '%s' WHERE id = "
             "%" PRId64,
             contact, a.id);
    db_exec(f->db, sql);
    struct acc b = accept_sync(f, "m-multi-2", "09125550001", "again", 0);
    round_sync(f);
    row_value(f, b.id, "matched_table", v, sizeof(v));
    assert_string_equal(v, "contact");
    fx_close(f);
}

/* No match: left unlinked (from = the number), or a lead is created. */
static void test_no_match(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    refresh_sync(f);
    struct acc a = accept_sync(f, "m-none-1", "09127770001", "who am i", 0);
    round_sync(f);
    cJSON *s = sms_of(f, a.id);
    assert_null(emu_str(s, "_regardingobjectid_value"));
    assert_string_equal(emu_str(party(s, 1), "addressused"), "+989127770001");
    cJSON_Delete(s);
    fx_close(f);

    f = fx_open(state, INBOUND_UNMATCHED_LEAD);
    refresh_sync(f);
    struct acc b = accept_sync(f, "m-none-2", "09127770002", "new customer", 0);
    round_sync(f);
    char lid[37], path[120];
    char uid[37];
    uid_of(f, b.id, uid);
    inbound_uuid(uid, "lead", NULL, lid);
    snprintf(path, sizeof(path), "leads(%s)?$select=mobilephone", lid);
    cJSON *l = em_get(path);
    assert_string_equal(emu_str(l, "mobilephone"), "+989127770002");
    cJSON_Delete(l);
    s = sms_of(f, b.id);
    assert_string_equal(emu_str(s, "_regardingobjectid_value"), lid);
    cJSON_Delete(s);
    fx_close(f);
}

/* F15's second example, literally: "problem" creates a case for the
 * sender, "critical" routes it to the 24/7 queue, the rest is the
 * description. */
static void test_spec_case_example(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40], queue[40], body[600];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Karimi\",\"mobilephone\":\"09123334444\"}"));
    snprintf(queue, sizeof(queue), "%s", em_create("queues", "{\"name\":\"24/7 support\"}"));
    em_create("smsys_keywordrules",
              "{\"smsys_name\":\"problem\",\"smsys_keywords\":\"problem\\nمشکل\","
              "\"smsys_match\":1,\"smsys_action\":4,\"smsys_priority\":10}");
    snprintf(body, sizeof(body),
             "{\"smsys_name\":\"critical\",\"smsys_keywords\":\"critical\\nحاد\","
             "\"smsys_match\":1,\"smsys_action\":5,\"smsys_priority\":20,"
             "\"smsys_queueid@odata.bind\":\"/queues(%s)\"}",
             queue);
    em_create("smsys_keywordrules", body);
    refresh_sync(f);
    struct acc a = accept_sync(
        f, "m-case", "09123334444",
        "مشکل حاد: فرم‌های برنامه ذخیره نمی‌شوند", 0);
    round_sync(f);

    cJSON *rules = NULL;
    char v[2000];
    row_value(f, a.id, "rule_results::text", v, sizeof(v));
    rules = cJSON_Parse(v);
    assert_int_equal(cJSON_GetArraySize(rules), 2);
    assert_int_equal(num(cJSON_GetArrayItem(rules, 0), "rc"), 0);
    assert_int_equal(num(cJSON_GetArrayItem(rules, 1), "rc"), 0);
    cJSON_Delete(rules);

    char cid[37], path[300];
    /* the case id is UUIDv5 of the row and the rule id */
    cJSON *rl = em_get("smsys_keywordrules?$select=smsys_name&$filter=smsys_name eq 'problem'");
    const char *rid = emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rl, "value"), 0),
                              "smsys_keywordruleid");
    assert_non_null(rid);
    char uid[37];
    uid_of(f, a.id, uid);
    inbound_uuid(uid, "case", rid, cid);
    cJSON_Delete(rl);
    snprintf(path, sizeof(path), "incidents(%s)?$select=title,description,_customerid_value", cid);
    cJSON *c = em_get(path);
    assert_string_equal(emu_str(c, "description"),
                        "فرم‌های برنامه ذخیره نمی‌شوند");
    assert_string_equal(emu_str(c, "_customerid_value"), contact);
    cJSON_Delete(c);
    snprintf(path, sizeof(path), "queueitems?$select=_objectid_value&$filter=_queueid_value eq %s",
             queue);
    cJSON *qi = em_get(path);
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(qi, "value");
    assert_int_equal(cJSON_GetArraySize(vals), 1);
    assert_string_equal(emu_str(cJSON_GetArrayItem(vals, 0), "_objectid_value"), cid);
    cJSON_Delete(qi);
    fx_close(f);
}

static void em_post(const char *path, const char *body)
{
    struct emures r;
    long st = emu_req(&emu, "POST", path, NULL, body, &r);
    if (st / 100 != 2)
        fail_msg("POST %s -> %ld %s", path, st, r.body.data ? r.body.data : "");
    emures_free(&r);
}

static void add_rule(const char *name, const char *words, int match, const char *tpl)
{
    char body[600];
    snprintf(body, sizeof(body),
             "{\"smsys_name\":\"%s\",\"smsys_keywords\":\"%s\",\"smsys_match\":%d,"
             "\"smsys_action\":3,\"smsys_priority\":1,"
             "\"smsys_templateid@odata.bind\":\"/smsys_smstemplates(%s)\"}",
             name, words, match, tpl);
    em_create("smsys_keywordrules", body);
}

/* F15's first example, literally: "confirm registration" gets an automatic
 * reply carrying the person's password field (a custom column, created
 * through the metadata API), rendered for the contact the sender matched.
 * A fixed-text template still works for anyone; a template with
 * placeholders fails clearly for an unmatched sender and for a record of
 * another table, and nothing raw is sent. */
static void test_spec_reply_example(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char pw[40], fixed[40], acc[40];
    em_post("EntityDefinitions(LogicalName='contact')/Attributes",
            "{\"@odata.type\":\"Microsoft.Dynamics.CRM.StringAttributeMetadata\","
            "\"SchemaName\":\"new_Password\",\"MaxLength\":100}");
    em_create("contacts", "{\"lastname\":\"Moradi\",\"mobilephone\":\"09126660001\","
                          "\"new_password\":\"Xy7-4821\"}");
    snprintf(pw, sizeof(pw), "%s",
             em_create("smsys_smstemplates", "{\"smsys_name\":\"pw\",\"smsys_entity\":\"contact\","
                                             "\"smsys_body\":\"رمز عبور شما: {{new_password}}\"}"));
    snprintf(fixed, sizeof(fixed), "%s",
             em_create("smsys_smstemplates", "{\"smsys_name\":\"ok\",\"smsys_body\":"
                                             "\"ثبت نام شما تایید شد\"}"));
    snprintf(acc, sizeof(acc), "%s",
             em_create("smsys_smstemplates", "{\"smsys_name\":\"bal\",\"smsys_entity\":\"account\","
                                             "\"smsys_body\":\"{{name}}\"}"));
    add_rule("confirm", "confirm registration\\nتایید ثبت نام", 1, pw);
    add_rule("status", "status", 3, fixed);
    add_rule("balance", "balance", 3, acc);
    refresh_sync(f);
    struct acc a = accept_sync(f, "m-conf", "09126660001", "Confirm registration please", 0);
    struct acc b = accept_sync(f, "m-stat", "09126660001", "status", 0);
    struct acc c = accept_sync(f, "m-bal", "09126660001", "balance", 0);
    struct acc d = accept_sync(f, "m-unk", "09126660002", "confirm registration", 0);
    accept_sync(f, "m-conf2", "09126660001", "تایید ثبت نام", 0); /* template read once */
    round_sync(f);
    char v[600];
    db_value(f->db,
             "SELECT string_agg(body || ' ' || sender, ',' ORDER BY body) FROM smsys_message"
             " WHERE recipient = '+989126660001' AND state = 3",
             v, sizeof(v));
    assert_string_equal(v, "ثبت نام شما تایید شد 3000123,رمز عبور شما: Xy7-4821 3000123,"
                           "رمز عبور شما: Xy7-4821 3000123");
    row_value(f, a.id, "rule_results->0->>'rc'", v, sizeof(v));
    assert_string_equal(v, "0");
    row_value(f, b.id, "rule_results->0->>'rc'", v, sizeof(v));
    assert_string_equal(v, "0");
    row_value(f, c.id, "rule_results->0->>'detail'", v, sizeof(v));
    assert_non_null(strstr(v, "written for table 'account' but the sender matched a 'contact'"));
    row_value(f, c.id, "state", v, sizeof(v));
    assert_string_equal(v, "recorded");
    row_value(f, d.id, "rule_results->0->>'detail'", v, sizeof(v));
    assert_non_null(strstr(v, "matched no record"));
    db_value(f->db, "SELECT count(*) FROM smsys_message WHERE recipient = '+989126660002'", v,
             sizeof(v));
    assert_string_equal(v, "0");
    fx_close(f);
}

/* Opt-out by a built-in word sets smsys_donotsms, lists the number with
 * its audit trail and blocks outbound; opt-in reverses it. */
static void test_optout_optin(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40], path[120], v[300];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Nouri\",\"mobilephone\":\"09128880001\"}"));
    refresh_sync(f);
    db_value(f->db, "SELECT coalesce(smsys_optout_blocked('+989128880001'), 'ok')", v, sizeof(v));
    assert_string_equal(v, "ok");
    enqueue_sync(f, "bulk:waiting", "+989128880001"); /* queued before the opt-out */
    accept_sync(f, "m-out", "09128880001", "لغو۱۱", 0);
    round_sync(f);
    /* no further SMS: the waiting one and any new one (bulk included) are Blocked */
    enqueue_sync(f, "bulk:after", "+989128880001");
    db_value(f->db,
             "SELECT string_agg(state || ' ' || left(last_error, 29), ',' ORDER BY idem_key)"
             " FROM smsys_message WHERE recipient = '+989128880001'",
             v, sizeof(v));
    assert_string_equal(v, "10 recipient opted out by SMS on,10 recipient opted out by SMS on");
    db_value(f->db,
             "SELECT count(*) FROM smsys_writeback w JOIN smsys_message m USING (activity_id)"
             " WHERE m.recipient = '+989128880001' AND w.fields->>'smsys_status' = '10'",
             v, sizeof(v));
    assert_string_equal(v, "2");
    snprintf(path, sizeof(path), "contacts(%s)?$select=smsys_donotsms", contact);
    cJSON *c = em_get(path);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "smsys_donotsms")));
    cJSON_Delete(c);
    db_value(f->db,
             "SELECT opted_out || ' ' || source || ' ' || body FROM smsys_optout"
             " WHERE number = '+989128880001'",
             v, sizeof(v));
    assert_string_equal(v, "true sms لغو۱۱");
    db_value(f->db, "SELECT smsys_optout_blocked('+989128880001')", v, sizeof(v));
    assert_non_null(strstr(v, "recipient opted out by SMS on "));

    accept_sync(f, "m-in", "09128880001", "شروع", 0);
    round_sync(f);
    c = em_get(path);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "smsys_donotsms")));
    cJSON_Delete(c);
    db_value(f->db, "SELECT coalesce(smsys_optout_blocked('+989128880001'), 'ok')", v, sizeof(v));
    assert_string_equal(v, "ok");
    enqueue_sync(f, "bulk:optedin", "+989128880001");
    db_value(f->db, "SELECT state FROM smsys_message WHERE idem_key = 'bulk:optedin'", v,
             sizeof(v));
    assert_string_equal(v, "3");
    db_value(f->db,
             "SELECT string_agg(opted_out::text, ',' ORDER BY id) FROM smsys_optout_history"
             " WHERE number = '+989128880001'",
             v, sizeof(v));
    assert_string_equal(v, "true,false");

    /* opt-out then opt-in in one round: one sender's rows run in order */
    accept_sync(f, "m-out2", "09128880002", "STOP", 0);
    accept_sync(f, "m-x", "09128880003", "x", 0);
    accept_sync(f, "m-in2", "09128880002", "start", 0);
    assert_int_equal(round_sync(f), 3);
    db_value(f->db,
             "SELECT string_agg(opted_out::text, ',' ORDER BY id) FROM smsys_optout_history"
             " WHERE number = '+989128880002'",
             v, sizeof(v));
    assert_string_equal(v, "true,false");
    fx_close(f);
}

/* Action 6 calls the Dataverse action with the documented parameters. */
static void test_call_action(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    em_create("contacts", "{\"lastname\":\"Usage\",\"mobilephone\":\"09129990001\"}");
    em_create("smsys_keywordrules",
              "{\"smsys_name\":\"usage\",\"smsys_keywords\":\"مصرف\\nusage\",\"smsys_match\":3,"
              "\"smsys_action\":6,\"smsys_actionname\":\"new_SmsKeyword\"}");
    refresh_sync(f);
    accept_sync(f, "m-call", "09129990001", "مصرف، آبان", 0);
    round_sync(f);
    cJSON *calls = em_get("/_emu/actions");
    char *txt = cJSON_PrintUnformatted(calls);
    assert_non_null(strstr(txt, "new_SmsKeyword"));
    assert_non_null(strstr(txt, "\"Sender\":\"+989129990001\""));
    assert_non_null(strstr(txt, "\"RegardingType\":\"contact\""));
    assert_non_null(strstr(txt, "\"Tokens\":[\"مصرف\",\"آبان\"]"));
    free(txt);
    cJSON_Delete(calls);
    fx_close(f);
}

/* The index follows Dynamics through change tracking: new, changed and
 * deleted rows. */
static void test_index_delta(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char a[40], b[40], v[200], path[120];
    snprintf(a, sizeof(a), "%s",
             em_create("contacts", "{\"lastname\":\"A\",\"mobilephone\":\"09121110001\"}"));
    snprintf(b, sizeof(b), "%s",
             em_create("contacts", "{\"lastname\":\"B\",\"mobilephone\":\"09121110002\"}"));
    refresh_sync(f);
    db_value(f->db, "SELECT count(*) FROM smsys_phone_index WHERE number LIKE '+98912111000_'", v,
             sizeof(v));
    assert_string_equal(v, "2");
    db_value(f->db, "SELECT count(*) FROM smsys_phone_index_delta WHERE delta_link IS NOT NULL", v,
             sizeof(v));
    assert_string_equal(v, "3");

    struct emures r;
    snprintf(path, sizeof(path), "contacts(%s)", a);
    emu_req(&emu, "PATCH", path, NULL, "{\"mobilephone\":\"0912 111 0009\"}", &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    snprintf(path, sizeof(path), "contacts(%s)", b);
    emu_req(&emu, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    char c[40];
    snprintf(c, sizeof(c), "%s",
             em_create("contacts", "{\"lastname\":\"C\",\"telephone2\":\"+98 912 111 0003\"}"));
    unsigned long rows = refresh_sync(f);
    assert_true(rows >= 2 && rows < 50); /* a delta (changed + new), not a full read */
    db_value(f->db,
             "SELECT string_agg(number || '/' || col, ',' ORDER BY number) FROM smsys_phone_index"
             " WHERE number LIKE '+98912111000_'",
             v, sizeof(v));
    assert_string_equal(v, "+989121110003/telephone2,+989121110009/mobilephone");
    fx_close(f);
}

struct ackr {
    int done, rc;
};

static void ack_fn(void *token, int rc)
{
    struct ackr *a = token;
    a->rc = rc;
    a->done = 1;
}

static void mo_sync(struct fx *f, const struct conn_mo *mo)
{
    struct ackr a = {0};
    assert_int_equal(inbound_on_mo(f->pool, f->setting, mo, "IR", ack_fn, &a), 0);
    assert_int_equal(tu_run_until(&f->loop, &a.done, 10000), 0);
    assert_int_equal(a.rc, 0);
}

struct swp {
    int done, rc;
    unsigned n;
};

static void swp_cb(void *ud, int rc, unsigned n, const struct smsys_err *err)
{
    struct swp *w = ud;
    if (rc < 0)
        fprintf(stderr, "sweep: %s\n", err ? err->detail : "");
    w->rc = rc;
    w->n = n;
    w->done = 1;
}

/* The connector manager's path: a whole message (twice: one row) and a
 * two-part UCS-2 message reassembled, stored once and its group done. */
static void test_on_mo(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    struct conn_mo whole = {
        .provider_id = "smpp-77", .from = "989121112233", .to = "3000123", .text = "یک پیام"};
    mo_sync(f, &whole);
    mo_sync(f, &whole);
    char v[300];
    db_value(f->db, "SELECT count(*) FROM smsys_inbound WHERE provider_id = 'smpp-77'", v,
             sizeof(v));
    assert_string_equal(v, "1");

    const char *text = "سلام، این پیام دو قسمتی است";
    struct buf u = {0};
    assert_int_equal(text_to_ucs2be(text, strlen(text), &u, NULL), 0);
    size_t cut = 20;
    struct conn_mo p1 = {.from = "989121112233",
                         .to = "3000123",
                         .part_ref = 9,
                         .part_total = 2,
                         .part_seq = 1,
                         .raw = u.data,
                         .raw_len = cut,
                         .data_coding = 8};
    struct conn_mo p2 = p1;
    p2.part_seq = 2;
    p2.raw = u.data + cut;
    p2.raw_len = u.len - cut;
    mo_sync(f, &p2);
    mo_sync(f, &p1);
    mo_sync(f, &p1); /* a redelivered part */
    buf_free(&u);
    /* the sweep stores what a crash would have left (here: maybe the same
     * group again, which dedupes) and finds nothing else */
    struct swp w = {0};
    assert_int_equal(inbound_sweep_parts(f->pool, 3600, "IR", swp_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, 10000), 0);
    assert_int_equal(w.rc, 0);
    struct swp w2 = {0};
    assert_int_equal(inbound_sweep_parts(f->pool, 3600, "IR", swp_cb, &w2), 0);
    assert_int_equal(tu_run_until(&f->loop, &w2.done, 10000), 0);
    assert_int_equal(w2.n, 0);
    db_value(f->db,
             "SELECT count(*) || ' ' || min(body) FROM smsys_inbound"
             " WHERE provider_id LIKE 'mo-part-group:%'",
             v, sizeof(v));
    char want[200];
    snprintf(want, sizeof(want), "1 %s", text);
    assert_string_equal(v, want);
    db_value(f->db, "SELECT src FROM smsys_inbound WHERE provider_id = 'smpp-77'", v, sizeof(v));
    assert_string_equal(v, "+989121112233");
    fx_close(f);
}

struct pollr {
    int done, rc;
    unsigned fetched, inserted;
};

static void pollr_cb(void *ud, int rc, unsigned fetched, unsigned inserted,
                     const struct smsys_err *err)
{
    struct pollr *p = ud;
    if (rc < 0)
        fprintf(stderr, "poll: %d %s\n", rc, err ? err->detail : "");
    p->rc = rc;
    p->fetched = fetched;
    p->inserted = inserted;
    p->done = 1;
}

static void no_health(void *ud, int rc, const char *detail)
{
    (void)ud;
    (void)rc;
    (void)detail;
}

static void kn_closed_cb(void *ud)
{
    *(int *)ud = 1;
}

/* F20 inbox polling through the real Kavenegar connector against
 * provsim: fetched messages are stored (read once), then recorded on the
 * matching contact by the next round. */
static void test_inbox_poll(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Inbox\",\"mobilephone\":\"09125556677\"}"));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/inbox", sim_port);
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *msgs[] = {
        "{\"provider\":\"kavenegar\",\"from\":\"09125556677\",\"text\":\"پیگیری سفارش\"}",
        "{\"provider\":\"kavenegar\",\"from\":\"09125556677\",\"text\":\"ممنون\"}"};
    for (int i = 0; i < 2; i++) {
        struct emures r;
        emu_req_full(&emu, "POST", url, h, msgs[i], strlen(msgs[i]), 0, &r);
        assert_int_equal(r.status, 200);
        emures_free(&r);
    }
    const struct conn_ops *ops = connector_find("kavenegar");
    assert_non_null(ops);
    struct conn_env env = {.loop = &f->loop,
                           .http = f->http,
                           .account_id = f->setting,
                           .account_name = "kn",
                           .apikey = "demo-kavenegar-key",
                           .health = no_health};
    char settings[200];
    snprintf(settings, sizeof(settings),
             "{\"base_url\":\"http://127.0.0.1:%d/kavenegar\",\"sender\":\"10004346\"}", sim_port);
    cJSON *js = cJSON_Parse(settings);
    struct conn *c = NULL;
    struct smsys_err err = {0};
    assert_int_equal(ops->open(&env, js, &c, &err), 0);
    cJSON_Delete(js);
    struct pollr p = {0};
    assert_int_equal(inbound_poll_inbox(f->pool, f->setting, ops, c, "IR", pollr_cb, &p), 0);
    assert_int_equal(tu_run_until(&f->loop, &p.done, 10000), 0);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.fetched, 2);
    assert_int_equal(p.inserted, 2);
    struct pollr p2 = {0};
    assert_int_equal(inbound_poll_inbox(f->pool, f->setting, ops, c, "IR", pollr_cb, &p2), 0);
    assert_int_equal(tu_run_until(&f->loop, &p2.done, 10000), 0);
    assert_int_equal(p2.fetched, 0); /* read once */
    int closed = 0;
    ops->close(c, kn_closed_cb, &closed);
    assert_int_equal(tu_run_until(&f->loop, &closed, 10000), 0);

    refresh_sync(f);
    assert_int_equal(round_sync(f), 2);
    char v[200];
    db_value(f->db,
             "SELECT count(*) || ' ' || min(dst) || ' ' || min(matched_id::text) FROM smsys_inbound"
             " WHERE state = 'recorded'",
             v, sizeof(v));
    char want[100];
    snprintf(want, sizeof(want), "2 10004346 %s", contact);
    assert_string_equal(v, want);
    fx_close(f);
}

struct pk {
    int done, rc;
    struct pickup_result res;
};

static void pk_cb(int rc, const struct pickup_result *res, const struct smsys_err *err, void *ud)
{
    struct pk *p = ud;
    if (rc < 0)
        fprintf(stderr, "pickup: %d %s\n", rc, err ? err->detail : "");
    p->rc = rc;
    if (res)
        p->res = *res;
    p->done = 1;
}

/* A number on the opt-out list (not marked on its record: it opted out
 * before the record existed) gets no SMS from pickup: Blocked, with the
 * reason. */
static void test_optout_blocks_pickup(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    db_exec(f->db, "UPDATE smsys_account SET is_default = true;"
                   "SELECT smsys_optout_set('+989121119999', true, 'sms', '+989121119999',"
                   " 'انصراف', NULL)");
    char contact[40], body[800];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Later\",\"mobilephone\":\"09121119999\"}"));
    snprintf(body, sizeof(body),
             "{\"subject\":\"promo\",\"description\":\"تخفیف ویژه\",\"smsys_direction\":1,"
             "\"smsys_status\":2,\"smsys_settingid@odata.bind\":\"/smsys_smssettings(%s)\","
             "\"smsys_sms_activity_parties\":[{\"partyid_contact@odata.bind\":\"/contacts(%s)\","
             "\"participationtypemask\":2}]}",
             f->setting, contact);
    em_create("smsys_smses", body);
    struct pickup *p = NULL;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f->loop, f->q, f->pool, f->dv, NULL, &p, &err), 0);
    struct pk r = {0};
    assert_int_equal(pickup_poll(p, pk_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.done, 20000), 0);
    assert_int_equal(r.rc, 0);
    char v[300];
    db_value(f->db,
             "SELECT state || ' ' || last_error FROM smsys_message"
             " WHERE recipient = '+989121119999'",
             v, sizeof(v));
    assert_non_null(strstr(v, "10 recipient opted out by SMS on 20"));
    pickup_free(p);
    fx_close(f);
}

struct poll {
    uv_timer_t t;
    struct fx *f;
    int64_t id;
    int done;
};

static void poll_cb(uv_timer_t *t)
{
    struct poll *p = container_of(t, struct poll, t);
    char v[32];
    row_value(p->f, p->id, "state", v, sizeof(v));
    if (strcmp(v, "recorded") == 0) {
        p->done = 1;
        uv_timer_stop(t);
    }
}

static void stopped_cb(void *ud)
{
    *(int *)ud = 1;
}

/* inbound_start: the leader loop picks a new message up by itself (and
 * refreshes the index first), and stops leaving no handle behind. */
static void test_leader_loop(void **state)
{
    struct fx *f = fx_open(state, INBOUND_UNMATCHED_LEAVE);
    char contact[40];
    snprintf(contact, sizeof(contact), "%s",
             em_create("contacts", "{\"lastname\":\"Loop\",\"mobilephone\":\"09124440001\"}"));
    struct acc a = accept_sync(f, "m-loop", "09124440001", "درود", 0);
    assert_int_equal(inbound_start(f->in), 0);
    struct poll p = {.f = f, .id = a.id};
    uv_timer_init(&f->loop, &p.t);
    uv_timer_start(&p.t, poll_cb, 100, 100);
    assert_int_equal(tu_run_until(&f->loop, &p.done, 15000), 0);
    uv_close((uv_handle_t *)&p.t, NULL);
    char v[100];
    row_value(f, a.id, "matched_id::text", v, sizeof(v));
    assert_string_equal(v, contact);
    int stopped = 0;
    inbound_stop(f->in, stopped_cb, &stopped);
    assert_int_equal(tu_run_until(&f->loop, &stopped, 10000), 0);
    fx_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dedupe, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_match_and_record, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_multiple_matches, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_no_match, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_spec_case_example, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_spec_reply_example, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_optout_optin, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_call_action, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_index_delta, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_leader_loop, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_on_mo, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_inbox_poll, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_optout_blocks_pickup, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
