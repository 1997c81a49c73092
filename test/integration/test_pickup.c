/* test_pickup.c - the Dynamics side of the outbound pipeline against the
 * real dvemu and a real PostgreSQL: accounts sync (default choice, change
 * within one sync), pickup of Pending SMS (Persian-digit numbers to E.164,
 * F3 phone columns, F4 account and line choice including dedicated lines,
 * opted out and no number -> Blocked, multi-recipient split with
 * deterministic child ids, idempotent re-pickup before and after the
 * write-back, a crash between child creation and enqueue) and the Queued
 * write-back visible in dvemu. Prints Dynamics requests per message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "pk_fixture.h"
#include "smsys/accounts.h"
#include "smsys/pickup.h"
#include "smsys/writeback.h"

/* Ids of the arranged rows (fixed so expectations can name them). */
#define U1   "51000000-0000-0000-0000-000000000001" /* has a dedicated line on A2 */
#define U2   "52000000-0000-0000-0000-000000000002" /* a recipient too */
#define A1   "a1000000-0000-0000-0000-0000000000a1" /* default account */
#define A2   "a2000000-0000-0000-0000-0000000000a2"
#define L1   "11000000-0000-0000-0000-000000000001" /* A1 default line 3000111 */
#define L2   "12000000-0000-0000-0000-000000000002" /* A2, dedicated to U1 */
#define C1   "c1000000-0000-0000-0000-000000000001" /* Persian digits */
#define C2   "c2000000-0000-0000-0000-000000000002" /* opted out */
#define C3   "c3000000-0000-0000-0000-000000000003" /* no number */
#define C4   "c4000000-0000-0000-0000-000000000004" /* telephone1 only */
#define LD1  "d1000000-0000-0000-0000-000000000001"
#define AC1  "ac000000-0000-0000-0000-000000000001"
#define S(n) "5a000000-0000-0000-0000-00000000000" #n

static void wb_cb(int rc, size_t taken, void *ud)
{
    struct pkf_wait *w = ud;
    w->rc = rc;
    w->taken = taken;
    w->done = 1;
}

static struct pickup_result poll_once(struct pkf *f, struct pickup *p)
{
    return pkf_poll(f, p, 30000);
}

/* Write-back rounds until the outbox is empty. Returns rows written. */
static size_t drain_outbox(struct pkf *f, struct writeback *wb)
{
    size_t total = 0;
    for (int i = 0; i < 100; i++) {
        struct pkf_wait w = {0};
        assert_int_equal(writeback_run(wb, wb_cb, &w), 0);
        assert_int_equal(tu_run_until(&f->loop, &w.done, 30000), 0);
        total += w.taken;
        if (pkf_int(f, "SELECT count(*) FROM smsys_writeback") == 0)
            return total;
        if (w.taken == 0)
            uv_sleep(200);
    }
    fail_msg("outbox did not drain");
    return total;
}

static void arrange_org(struct pkf *f)
{
    pkf_post(f, "systemusers",
             "{\"systemuserid\":\"" U1 "\",\"firstname\":\"Sara\",\"lastname\":\"Ahmadi\"}");
    pkf_post(f, "systemusers",
             "{\"systemuserid\":\"" U2 "\",\"firstname\":\"Reza\",\"lastname\":\"Karimi\","
             "\"mobilephone\":\"09350001122\"}");
    pkf_post(f, "smsys_smssettings",
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"SMPP main\",\"smsys_provider\":"
             "\"smpp\",\"smsys_isdefault\":true,\"smsys_enabled\":true,\"smsys_maxretries\":2,"
             "\"smsys_config\":\"{\\\"host\\\":\\\"127.0.0.1\\\",\\\"port\\\":2775}\","
             "\"smsys_apikey\":\"env:SMPP_PASSWORD\"}");
    pkf_post(f, "smsys_smssettings",
             "{\"smsys_smssettingid\":\"" A2 "\",\"smsys_name\":\"Kavenegar\",\"smsys_provider\":"
             "\"kavenegar\",\"smsys_isdefault\":false,\"smsys_enabled\":true}");
    pkf_post(f, "smsys_smsnumbers",
             "{\"smsys_smsnumberid\":\"" L1 "\",\"smsys_number\":\"3000111\",\"smsys_isdefault\":"
             "true,\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A1 ")\"}");
    pkf_post(f, "smsys_smsnumbers",
             "{\"smsys_smsnumberid\":\"" L2 "\",\"smsys_number\":\"+98 912 000 0001\","
             "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A2 ")\","
             "\"smsys_userid@odata.bind\":\"/systemusers(" U1 ")\"}");
    pkf_post(f, "contacts",
             "{\"contactid\":\"" C1 "\",\"lastname\":\"Rahimi\",\"mobilephone\":"
             "\"\xdb\xb0\xdb\xb9\xdb\xb1\xdb\xb2 \xdb\xb1\xdb\xb2\xdb\xb3 \xdb\xb4\xdb\xb5\xdb\xb6"
             "\xdb\xb7\"}");
    pkf_post(f, "contacts",
             "{\"contactid\":\"" C2 "\",\"lastname\":\"Nouri\",\"mobilephone\":\"09121112233\","
             "\"smsys_donotsms\":true}");
    pkf_post(f, "contacts", "{\"contactid\":\"" C3 "\",\"lastname\":\"Jafari\"}");
    pkf_post(f, "contacts",
             "{\"contactid\":\"" C4 "\",\"lastname\":\"Moradi\",\"telephone1\":\"0912-765-4321\"}");
    pkf_post(f, "leads",
             "{\"leadid\":\"" LD1
             "\",\"lastname\":\"Kazemi\",\"mobilephone\":\"+98 935 111 2233\"}");
    pkf_post(f, "accounts",
             "{\"accountid\":\"" AC1 "\",\"name\":\"Pars Co\",\"telephone1\":\"09131112222\"}");
}

/* A Pending outgoing SMS; extra is more JSON members (may be ""). */
static void sms(struct pkf *f, const char *id, const char *text, const char *parties,
                const char *extra)
{
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"activityid\":\"%s\",\"subject\":\"t\",%s%s%s\"smsys_direction\":1,"
             "\"smsys_status\":2%s%s,\"smsys_sms_activity_parties\":[%s]}",
             id, text ? "\"description\":\"" : "", text ? text : "", text ? "\"," : "",
             extra[0] ? "," : "", extra, parties);
    pkf_post(f, "smsys_smses", body);
}

#define TO(kind, set, id)                                                                          \
    "{\"partyid_" kind "@odata.bind\":\"/" set "(" id ")\",\"participationtypemask\":2}"

static const char *msg_col(struct pkf *f, const char *key, const char *col)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_message WHERE idem_key = '%s'", col, key);
    return pkf_str(f, sql);
}

/* Counts NOTIFY ACCOUNTS_CHANNEL; payload NULL = LISTEN in effect. */
struct acc_listen {
    int listening, notified;
};

static void acc_notify_cb(const char *channel, const char *payload, void *ud)
{
    struct acc_listen *l = ud;
    assert_string_equal(channel, ACCOUNTS_CHANNEL);
    if (payload == NULL)
        l->listening = 1;
    else
        l->notified++;
}

/* The world of a pickup test: database, dvemu with the organisation,
 * and the accounts synced once; org_close frees what org_open made. */
static struct accounts *org_open(struct pkf *f, const char *tag)
{
    pkf_open(f, tag, NULL, 0);
    arrange_org(f);
    struct accounts *a;
    assert_int_equal(accounts_new(&f->loop, f->pool, f->dv, &a), 0);
    pkf_sync_accounts(f, a);
    return a;
}

static void org_close(struct pkf *f, struct pickup *p, struct accounts *a)
{
    pickup_free(p);
    accounts_free(a);
    pkf_close(f);
}

static void test_accounts_sync(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "pkacc", NULL, 0);
    arrange_org(&f);
    struct accounts *a;
    assert_int_equal(accounts_new(&f.loop, f.pool, f.dv, &a), 0);
    /* static: a subscription lives as long as the pool (no unlisten) */
    static struct acc_listen l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(pg_listen(f.pool, ACCOUNTS_CHANNEL, acc_notify_cb, &l), 0);
    assert_int_equal(tu_run_until(&f.loop, &l.listening, 10000), 0);

    struct accounts_result r = pkf_sync_accounts(&f, a);
    /* a sync that changed something tells the connector manager at once */
    assert_int_equal(tu_run_until(&f.loop, &l.notified, 5000), 0);
    assert_int_equal(l.notified, 1);
    assert_int_equal(r.accounts, 2);
    assert_int_equal(r.lines, 2);
    assert_int_equal(r.marked_default, 1);
    assert_string_equal(r.default_id, A1);
    assert_true(r.changed > 0);
    assert_string_equal(
        pkf_str(&f, "SELECT config->>'port' FROM smsys_account WHERE id = '" A1 "'"), "2775");
    assert_string_equal(pkf_str(&f, "SELECT apikey FROM smsys_account WHERE id = '" A1 "'"),
                        "env:SMPP_PASSWORD");
    assert_int_equal(pkf_int(&f, "SELECT max_retries FROM smsys_account WHERE id = '" A1 "'"), 2);
    assert_string_equal(pkf_str(&f, "SELECT user_id FROM smsys_line WHERE id = '" L2 "'"), U1);

    /* Nothing changed: a sync writes nothing, and notifies no one. */
    r = pkf_sync_accounts(&f, a);
    assert_int_equal(r.changed, 0);
    int never = 0;
    assert_int_equal(tu_run_until(&f.loop, &never, 300), -ETIMEDOUT);
    assert_int_equal(l.notified, 1);

    /* Both marked default: the oldest (A1, created first) stays; exactly
     * one effective default. */
    assert_int_equal(
        pkf_req(&f, "PATCH", "smsys_smssettings(" A2 ")", "{\"smsys_isdefault\":true}", NULL), 204);
    r = pkf_sync_accounts(&f, a);
    assert_int_equal(r.marked_default, 2);
    assert_string_equal(r.default_id, A1);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_account WHERE is_default"), 1);

    /* The admin moves the default: effective after one sync. */
    assert_int_equal(
        pkf_req(&f, "PATCH", "smsys_smssettings(" A1 ")", "{\"smsys_isdefault\":false}", NULL),
        204);
    r = pkf_sync_accounts(&f, a);
    assert_string_equal(r.default_id, A2);
    assert_string_equal(pkf_str(&f, "SELECT id FROM smsys_account WHERE is_default"), A2);

    /* None marked: the oldest enabled account, with a warning. */
    assert_int_equal(
        pkf_req(&f, "PATCH", "smsys_smssettings(" A2 ")", "{\"smsys_isdefault\":false}", NULL),
        204);
    r = pkf_sync_accounts(&f, a);
    assert_int_equal(r.marked_default, 0);
    assert_string_equal(r.default_id, A1);

    /* A deleted line disappears; a deleted account is disabled, kept. */
    assert_int_equal(pkf_req(&f, "DELETE", "smsys_smsnumbers(" L2 ")", NULL, NULL), 204);
    assert_int_equal(pkf_req(&f, "DELETE", "smsys_smssettings(" A2 ")", NULL, NULL), 204);
    r = pkf_sync_accounts(&f, a);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_line"), 1);
    assert_string_equal(pkf_str(&f, "SELECT enabled FROM smsys_account WHERE id = '" A2 "'"), "f");

    assert_int_equal(accounts_write_balance(f.dv, A1, 1, "IRR", 0, NULL, NULL), -EINVAL);
    accounts_free(a);
    pkf_close(&f);
}

static void bal_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct pkf_wait *w = ud;
    w->rc = rc;
    snprintf(w->detail, sizeof(w->detail), "%s", err ? err->detail : "");
    w->done = 1;
}

static void test_balance(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "pkbal", NULL, 0);
    arrange_org(&f);
    struct pkf_wait w = {0};
    assert_int_equal(accounts_write_balance(f.dv, A1, 125000.5, "IRR", 1795000000, bal_cb, &w), 0);
    assert_int_equal(tu_run_until(&f.loop, &w.done, 10000), 0);
    assert_int_equal(w.rc, 0);
    cJSON *j = pkf_get(&f, "smsys_smssettings(" A1 ")?$select=smsys_balance,smsys_balanceunit,"
                           "smsys_balanceupdatedon");
    assert_true(cJSON_GetObjectItem(j, "smsys_balance")->valuedouble > 125000.4);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_balanceunit")->valuestring, "IRR");
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_balanceupdatedon")->valuestring,
                        "2026-11-18T11:06:40Z");
    cJSON_Delete(j);
    /* A deleted account is not re-created. */
    memset(&w, 0, sizeof(w));
    assert_int_equal(accounts_write_balance(f.dv, "a9000000-0000-0000-0000-000000000000", 1, NULL,
                                            0, bal_cb, &w),
                     0);
    assert_int_equal(tu_run_until(&f.loop, &w.done, 10000), 0);
    assert_int_equal(w.rc, SMSYS_ENOTFOUND);
    pkf_close(&f);
}

static void test_pickup_end_to_end(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pk");

    sms(&f, S(1), "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", TO("contact", "contacts", C1), "");
    sms(&f, S(2), "hello", TO("contact", "contacts", C2), "");
    sms(&f, S(3), "hello", TO("contact", "contacts", C3), "");
    sms(&f, S(4), "from my line", TO("lead", "leads", LD1),
        "\"ownerid@odata.bind\":\"/systemusers(" U1 ")\"");
    sms(&f, S(5), "not my line", TO("lead", "leads", LD1),
        "\"ownerid@odata.bind\":\"/systemusers(" U2 ")\",\"smsys_sendernumber\":\"09120000001\"");
    sms(&f, S(6), "to three",
        TO("contact", "contacts", C4) "," TO("account", "accounts", AC1) "," TO("systemuser",
                                                                                "systemusers", U2),
        "");
    sms(&f, S(7), "explicit account", TO("contact", "contacts", C1),
        "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A2 ")\"");
    sms(&f, S(8), NULL, TO("contact", "contacts", C1), "");
    /* A draft is not picked up. */
    pkf_post(&f, "smsys_smses",
             "{\"activityid\":\"5a000000-0000-0000-0000-000000000009\",\"description\":\"x\","
             "\"smsys_direction\":1,\"smsys_status\":1}");

    struct pickup_opts po = {0};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);

    double req0 = pkf_stat(&f, "requests", NULL);
    struct pickup_result r = poll_once(&f, p);
    double req1 = pkf_stat(&f, "requests", NULL);
    assert_int_equal(r.records, 8);
    assert_int_equal(r.messages, 10);
    assert_int_equal(r.inserted, 10);
    assert_int_equal(r.children, 2);
    assert_int_equal(r.blocked, 2);
    assert_int_equal(r.failed, 2);
    /* 1 page + contacts + leads + accounts + systemusers + 2 children;
     * the emulator also counts the two stats GETs around it. */
    assert_int_equal(r.requests, 7);
    print_message("pickup: %u records, %u messages, %u Dynamics requests (%.0f seen by dvemu) = "
                  "%.3f requests/message (small batch; children cost one each)\n",
                  r.records, r.messages, r.requests, req1 - req0 - 1,
                  (double)r.requests / r.messages);

    /* Persian digits -> E.164 on the default account's default line. */
    assert_string_equal(msg_col(&f, S(1), "recipient"), "+989121234567");
    assert_string_equal(msg_col(&f, S(1), "account_id"), A1);
    assert_string_equal(msg_col(&f, S(1), "sender"), "3000111");
    assert_string_equal(msg_col(&f, S(1), "state"), "3");
    assert_string_equal(msg_col(&f, S(1), "segments"), "1");
    assert_string_equal(msg_col(&f, S(1), "max_retries"), "2");
    /* Opted out, no number -> Blocked with the reason. */
    assert_string_equal(msg_col(&f, S(2), "state"), "10");
    assert_string_equal(msg_col(&f, S(2), "last_error"), "recipient opted out");
    assert_string_equal(msg_col(&f, S(3), "state"), "10");
    assert_non_null(strstr(msg_col(&f, S(3), "last_error"),
                           "no valid mobile number: contact " C3 ": mobilephone empty; telephone1 "
                           "empty"));
    /* F4: the owner's dedicated line (and its account). */
    assert_string_equal(msg_col(&f, S(4), "account_id"), A2);
    assert_string_equal(msg_col(&f, S(4), "sender"), "+989120000001");
    assert_string_equal(msg_col(&f, S(4), "recipient"), "+989351112233");
    /* Someone else's line -> Failed. */
    assert_string_equal(msg_col(&f, S(5), "state"), "6");
    assert_non_null(strstr(msg_col(&f, S(5), "last_error"), "dedicated to another user"));
    /* The SMS's own account, which has no shared line: connector default. */
    assert_string_equal(msg_col(&f, S(7), "account_id"), A2);
    assert_string_equal(msg_col(&f, S(7), "sender"), "");
    /* Empty text -> Failed. */
    assert_string_equal(msg_col(&f, S(8), "state"), "6");
    assert_non_null(strstr(msg_col(&f, S(8), "last_error"), "empty"));

    /* Multi-recipient: sorted by party id, the first (U2) stays on the
     * original, the others go on deterministic children. */
    char c_ac1[37], c_c4[37];
    pickup_child_id(S(6), AC1, c_ac1);
    pickup_child_id(S(6), C4, c_c4);
    assert_string_equal(msg_col(&f, S(6) ":" U2, "activity_id"), S(6));
    assert_string_equal(msg_col(&f, S(6) ":" U2, "recipient"), "+989350001122");
    assert_string_equal(msg_col(&f, S(6) ":" AC1, "activity_id"), c_ac1);
    assert_string_equal(msg_col(&f, S(6) ":" AC1, "recipient"), "+989131112222");
    assert_string_equal(msg_col(&f, S(6) ":" C4, "activity_id"), c_c4);
    assert_string_equal(msg_col(&f, S(6) ":" C4, "recipient"), "+989127654321");
    char path[256];
    snprintf(path, sizeof(path),
             "smsys_smses(%s)?$select=smsys_status,description,_regardingobjectid_value"
             "&$expand=smsys_sms_activity_parties($select=_partyid_value)",
             c_c4);
    cJSON *j = pkf_get(&f, path);
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_status")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(j, "description")->valuestring, "to three");
    assert_string_equal(cJSON_GetObjectItem(j, "_regardingobjectid_value")->valuestring, S(6));
    cJSON_Delete(j);

    /* Re-pickup before the write-back: the rows are still Pending in
     * Dynamics, and nothing new is queued. */
    r = poll_once(&f, p);
    assert_int_equal(r.records, 8);
    assert_int_equal(r.skipped, 8);
    assert_int_equal(r.inserted, 0);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 10);

    /* A crash after the children were created but before the enqueue
     * committed: the same ids, no duplicate record, no duplicate message. */
    pkf_exec(&f, "DELETE FROM smsys_writeback WHERE activity_id IN (SELECT activity_id FROM "
                 "smsys_message WHERE idem_key LIKE '" S(6) ":%')");
    pkf_exec(&f, "DELETE FROM smsys_message WHERE idem_key LIKE '" S(6) ":%'");
    r = poll_once(&f, p);
    assert_int_equal(r.inserted, 3);
    assert_int_equal(r.children, 2);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 10);
    j = pkf_get(&f, "smsys_smses?$select=activityid&$filter=_regardingobjectid_value%20eq%20" S(6));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "value")), 2);
    cJSON_Delete(j);

    /* Write-back: Queued / Blocked / Failed reach the records. */
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    assert_int_equal(drain_outbox(&f, wb), 10);
    assert_true(writeback_stats(wb)->requests <= 2);
    j = pkf_get(&f, "smsys_smses(" S(1) ")?$select=smsys_status,statecode,statuscode,"
                                        "smsys_phonenumber,smsys_sendernumber,smsys_segments");
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_status")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(j, "statecode")->valueint, 0);
    assert_int_equal(cJSON_GetObjectItem(j, "statuscode")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_phonenumber")->valuestring, "+989121234567");
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_sendernumber")->valuestring, "3000111");
    cJSON_Delete(j);
    j = pkf_get(&f, "smsys_smses(" S(2) ")?$select=smsys_status,statecode,statuscode,"
                                        "smsys_lasterror");
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_status")->valueint, 10);
    assert_int_equal(cJSON_GetObjectItem(j, "statecode")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(j, "statuscode")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_lasterror")->valuestring,
                        "recipient opted out");
    cJSON_Delete(j);
    j = pkf_get(&f, "smsys_smses(" S(5) ")?$select=smsys_status,smsys_lasterror");
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_status")->valueint, 6);
    cJSON_Delete(j);

    /* Re-pickup after the write-back: nothing is Pending any more. */
    r = poll_once(&f, p);
    assert_int_equal(r.records, 0);
    assert_int_equal(r.requests, 1);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 10);

    writeback_free(wb);
    org_close(&f, p, a);
}

/* Many Pending records in one poll: requests per message. */
static void test_pickup_cost(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pkcost");
    /* 2000 contacts and 2000 Pending SMS, 1000 per CreateMultiple. */
    enum { N = 2000 };
    for (int part = 0; part < 2; part++) {
        struct buf c = BUF_INIT, s = BUF_INIT;
        buf_puts(&c, "{\"Targets\":[");
        buf_puts(&s, "{\"Targets\":[");
        for (int i = part * 1000; i < (part + 1) * 1000; i++) {
            buf_printf(&c,
                       "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"contactid\":"
                       "\"cc000000-0000-0000-0000-%012d\",\"lastname\":\"n%d\",\"mobilephone\":"
                       "\"0912%07d\"}",
                       i % 1000 ? "," : "", i, i, i);
            buf_printf(
                &s,
                "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\",\"description\":"
                "\"m%d\",\"smsys_direction\":1,\"smsys_status\":2,"
                "\"smsys_sms_activity_parties\":[{\"partyid_contact@odata.bind\":\"/contacts("
                "cc000000-0000-0000-0000-%012d)\",\"participationtypemask\":2}]}",
                i % 1000 ? "," : "", i, i);
        }
        buf_puts(&c, "]}");
        buf_puts(&s, "]}");
        pkf_post(&f, "contacts/Microsoft.Dynamics.CRM.CreateMultiple", c.data);
        pkf_post(&f, "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", s.data);
        buf_free(&c);
        buf_free(&s);
    }
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, NULL, &p, &err), 0);
    struct pickup_result r = poll_once(&f, p);
    assert_int_equal(r.records, N);
    assert_int_equal(r.inserted, N);
    /* 1 page + 20 contact batches of 100. */
    assert_int_equal(r.requests, 21);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    assert_int_equal(drain_outbox(&f, wb), N);
    unsigned wreq = (unsigned)writeback_stats(wb)->requests;
    assert_int_equal(wreq, 2);
    print_message("pickup of %d single-recipient SMS: %u requests (%.4f/message); Queued "
                  "write-back: %u requests (%.4f/message)\n",
                  N, r.requests, (double)r.requests / N, wreq, (double)wreq / N);
    writeback_free(wb);
    org_close(&f, p, a);
}

static void test_phone_columns_config(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pkcol");
    struct pickup *p;
    struct smsys_err err = {0};
    struct pickup_opts bad = {.phone_columns = "contact mobilephone"};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &bad, &p, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "table:column"));
    /* contacts read telephone1 first; leads are not configured. A column
     * Dynamics does not have fails the recipient with the reason. */
    struct pickup_opts po = {.phone_columns = "contact:telephone1,mobilephone;"
                                              "account@accounts/accountid:new_sms"};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    sms(&f, S(1), "a", TO("contact", "contacts", C4), "");
    sms(&f, S(2), "b", TO("lead", "leads", LD1), "");
    sms(&f, S(3), "c", TO("account", "accounts", AC1), "");
    struct pickup_result r = poll_once(&f, p);
    assert_int_equal(r.inserted, 3);
    assert_string_equal(msg_col(&f, S(1), "recipient"), "+989127654321");
    assert_string_equal(msg_col(&f, S(2), "state"), "10");
    assert_non_null(strstr(msg_col(&f, S(2), "last_error"), "table lead has no phone column"));
    assert_string_equal(msg_col(&f, S(3), "state"), "6");
    assert_non_null(strstr(msg_col(&f, S(3), "last_error"), "cannot read the phone columns"));
    org_close(&f, p, a);
}

/* A page at a time: a full page of new records polls again at once; a
 * full page of records already queued waits for the write-back. */
static void test_pickup_paging(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pkpage");
    for (int i = 0; i < 25; i++) {
        char id[40];
        snprintf(id, sizeof(id), "5e000000-0000-0000-0000-%012d", i);
        sms(&f, id, "paged", TO("contact", "contacts", C1), "");
    }
    struct pickup_opts po = {.max_rows = 10};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    struct pickup_result r = poll_once(&f, p);
    assert_int_equal(r.records, 10);
    assert_int_equal(r.inserted, 10);
    assert_true(r.more);
    r = poll_once(&f, p); /* the same page: Queued not written back yet */
    assert_int_equal(r.skipped, 10);
    assert_false(r.more);
    assert_true(r.backlog);
    drain_outbox(&f, wb);
    r = poll_once(&f, p);
    assert_int_equal(r.inserted, 10);
    drain_outbox(&f, wb);
    r = poll_once(&f, p);
    assert_int_equal(r.records, 5);
    assert_int_equal(r.inserted, 5);
    assert_false(r.more);
    assert_false(r.backlog);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 25);
    writeback_free(wb);
    org_close(&f, p, a);
}

/* Templated SMS: rendered at pickup, the text queued and written back to
 * description; a template error fails the SMS naming the position; a
 * template for another table fails with a clear message. */
#define C5      "c5000000-0000-0000-0000-000000000005"
#define T1      "7e000000-0000-0000-0000-000000000001"
#define T2      "7e000000-0000-0000-0000-000000000002"
#define T3      "7e000000-0000-0000-0000-000000000003"
#define TPL(id) "\"smsys_templateid@odata.bind\":\"/smsys_smstemplates(" id ")\""
/* "سلام {{firstname}}، خوش آمدید" and its rendering for Ali */
#define SALAM   "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85 "
#define WELCOME "\xd8\x8c \xd8\xae\xd9\x88\xd8\xb4 \xd8\xa2\xd9\x85\xd8\xaf\xdb\x8c\xd8\xaf"

static void test_pickup_template(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pktpl");
    pkf_post(&f, "contacts",
             "{\"contactid\":\"" C5 "\",\"firstname\":\"Ali\",\"lastname\":\"Rostami\","
             "\"mobilephone\":\"09121234567\"}");
    pkf_post(&f, "smsys_smstemplates",
             "{\"smsys_smstemplateid\":\"" T1 "\",\"smsys_name\":\"welcome\",\"smsys_entity\":"
             "\"contact\",\"smsys_body\":\"" SALAM "{{firstname}}" WELCOME "\"}");
    pkf_post(&f, "smsys_smstemplates",
             "{\"smsys_smstemplateid\":\"" T2 "\",\"smsys_name\":\"loud\",\"smsys_entity\":"
             "\"contact\",\"smsys_body\":\"Hi {{firstname | shout}}\"}");
    pkf_post(&f, "smsys_smstemplates",
             "{\"smsys_smstemplateid\":\"" T3 "\",\"smsys_name\":\"firm\",\"smsys_entity\":"
             "\"account\",\"smsys_body\":\"Dear {{name}}\"}");
    sms(&f, S(1), NULL, TO("contact", "contacts", C5), TPL(T1));
    sms(&f, S(2), NULL, TO("contact", "contacts", C5), TPL(T2));
    sms(&f, S(3), NULL, TO("contact", "contacts", C5), TPL(T3));
    /* A text already in description is sent as written. */
    sms(&f, S(4), "typed", TO("contact", "contacts", C5), TPL(T1));
    /* The same recipient twice in one group: asked for once, both rendered. */
    sms(&f, S(5), NULL, TO("contact", "contacts", C5), TPL(T1));

    struct pickup_opts po = {0};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    struct pickup_result r = poll_once(&f, p);
    assert_int_equal(r.records, 5);
    assert_int_equal(r.inserted, 5);
    assert_int_equal(r.failed, 2);

    assert_string_equal(msg_col(&f, S(1), "body"), SALAM "Ali" WELCOME);
    assert_string_equal(msg_col(&f, S(1), "state"), "3");
    assert_string_equal(msg_col(&f, S(1), "segments"), "1");
    cJSON *row = pkf_get(&f, "smsys_smses(" S(1) ")?$select=description");
    assert_non_null(row);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "description");
    assert_true(cJSON_IsString(d));
    assert_string_equal(d->valuestring, SALAM "Ali" WELCOME);
    cJSON_Delete(row);

    assert_string_equal(msg_col(&f, S(2), "state"), "6");
    const char *e2 = msg_col(&f, S(2), "last_error");
    assert_non_null(strstr(e2, "template loud: "));
    assert_non_null(strstr(e2, "column"));
    assert_non_null(strstr(e2, "shout"));
    assert_string_equal(msg_col(&f, S(3), "state"), "6");
    assert_non_null(
        strstr(msg_col(&f, S(3), "last_error"), "written for table 'account' but the recipient"));
    assert_string_equal(msg_col(&f, S(4), "body"), "typed");
    assert_string_equal(msg_col(&f, S(5), "body"), SALAM "Ali" WELCOME);

    org_close(&f, p, a);
}

/* Default templates (F8) and templated SMS with several recipients, through
 * pickup against dvemu and PostgreSQL: an SMS without text or template is
 * rendered with its recipient's table default (the newest of two wins; a
 * non-default or inactive template is never used; a table without a
 * default fails clearly); recipients of different tables each get their
 * table's default; several recipients each get their own text on their
 * own record, and one recipient's error fails only that recipient. */
#define D1 "7d000000-0000-0000-0000-000000000001"
#define D2 "7d000000-0000-0000-0000-000000000002"
#define D3 "7d000000-0000-0000-0000-000000000003"
#define D4 "7d000000-0000-0000-0000-000000000004"
#define D5 "7d000000-0000-0000-0000-000000000005"
#define T4 "7e000000-0000-0000-0000-000000000004"
#define T5 "7e000000-0000-0000-0000-000000000005"

static void tpl_row(struct pkf *f, const char *id, const char *name, const char *entity,
                    const char *body, int is_default, int state)
{
    char js[1024];
    snprintf(js, sizeof(js),
             "{\"smsys_smstemplateid\":\"%s\",\"smsys_name\":\"%s\",\"smsys_entity\":\"%s\","
             "\"smsys_body\":\"%s\",\"smsys_isdefault\":%s,\"statecode\":%d}",
             id, name, entity, body, is_default ? "true" : "false", state);
    pkf_post(f, "smsys_smstemplates", js);
}

static const char *description(struct pkf *f, const char *id)
{
    static char out[1024];
    char path[128];
    snprintf(path, sizeof(path), "smsys_smses(%s)?$select=description", id);
    cJSON *row = pkf_get(f, path);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "description");
    snprintf(out, sizeof(out), "%s", cJSON_IsString(d) ? d->valuestring : "<null>");
    cJSON_Delete(row);
    return out;
}

static void test_pickup_default_and_multi(void **state)
{
    (void)state;
    struct pkf f = {0};
    struct accounts *a = org_open(&f, "pkdef");
    pkf_post(&f, "contacts",
             "{\"contactid\":\"" C5 "\",\"firstname\":\"Ali\",\"lastname\":\"Rostami\","
             "\"mobilephone\":\"09121234567\"}");
    /* Two defaults for contact a second apart: the newer (higher id, so not
     * the tie-break) wins. A newer non-default and an inactive default are
     * never used. */
    tpl_row(&f, D1, "old default", "contact", "old {{firstname}}", 1, 0);
    uv_sleep(1100);
    tpl_row(&f, D2, "contact default", "contact", SALAM "{{firstname}}", 1, 0);
    tpl_row(&f, D4, "account default", "account", "Dear {{name}}", 1, 0);
    uv_sleep(1100);
    tpl_row(&f, D3, "not default", "contact", "nope {{firstname}}", 0, 0);
    tpl_row(&f, D5, "inactive", "account", "inactive {{name}}", 1, 1);
    tpl_row(&f, T4, "lastname", "contact", "Hi {{lastname}}", 0, 0);
    tpl_row(&f, T5, "strict", "contact", "Hi {{firstname | required}}", 0, 0);

    sms(&f, S(1), NULL, TO("contact", "contacts", C5), "");
    sms(&f, S(2), NULL, TO("lead", "leads", LD1), "");
    /* a contact and an account: each with its table's default */
    sms(&f, S(3), NULL, TO("contact", "contacts", C5) "," TO("account", "accounts", AC1), "");
    /* one template, three contacts and an account: own text each; the
     * account is the wrong table for this template and fails alone */
    sms(&f, S(4), NULL,
        TO("contact", "contacts", C5) "," TO("contact", "contacts", C1) "," TO(
            "contact", "contacts", C4) "," TO("account", "accounts", AC1),
        TPL(T4));
    /* a required value missing for one recipient fails only that one */
    sms(&f, S(5), NULL, TO("contact", "contacts", C5) "," TO("contact", "contacts", C4), TPL(T5));
    /* text typed by the user: no default applies */
    sms(&f, S(6), "typed", TO("contact", "contacts", C5), "");

    struct pickup_opts po = {0};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    double tpl0 = pkf_stat(&f, "by_entity_set", "smsys_smstemplates"); /* our POSTs */
    struct pickup_result r = poll_once(&f, p);
    assert_int_equal(r.records, 6);
    /* 1 + 1 + 2 + 4 + 2 + 1 queue rows */
    assert_int_equal(r.inserted, 11);

    assert_string_equal(msg_col(&f, S(1), "body"), SALAM "Ali");
    assert_string_equal(msg_col(&f, S(1), "state"), "3");
    assert_string_equal(description(&f, S(1)), SALAM "Ali");

    assert_string_equal(msg_col(&f, S(2), "state"), "6");
    assert_string_equal(msg_col(&f, S(2), "last_error"),
                        "the message text (description) is empty and table 'lead' has no "
                        "default SMS template (smsys_isdefault)");

    assert_string_equal(msg_col(&f, S(3) ":" C5, "body"), SALAM "Ali");
    assert_string_equal(msg_col(&f, S(3) ":" C5, "state"), "3");
    assert_string_equal(msg_col(&f, S(3) ":" AC1, "body"), "Dear Pars Co");
    assert_string_equal(msg_col(&f, S(3) ":" AC1, "state"), "3");
    /* the original keeps its first recipient (the account: ids sort it
     * first) and that one's text; the contact's child record has its own */
    assert_string_equal(description(&f, S(3)), "Dear Pars Co");
    char child[37];
    pickup_child_id(S(3), C5, child);
    assert_string_equal(description(&f, child), SALAM "Ali");

    assert_string_equal(msg_col(&f, S(4) ":" C5, "body"), "Hi Rostami");
    assert_string_equal(msg_col(&f, S(4) ":" C1, "body"), "Hi Rahimi");
    assert_string_equal(msg_col(&f, S(4) ":" C4, "body"), "Hi Moradi");
    assert_string_equal(msg_col(&f, S(4) ":" C4, "state"), "3");
    assert_string_equal(msg_col(&f, S(4) ":" AC1, "state"), "6");
    assert_string_equal(msg_col(&f, S(4) ":" AC1, "last_error"),
                        "template lastname is written for table 'contact' but the recipient is "
                        "a 'account'");
    pickup_child_id(S(4), C1, child);
    assert_string_equal(description(&f, child), "Hi Rahimi");
    /* the original's recipient (AC1) failed: its description stays empty */
    assert_string_equal(description(&f, S(4)), "<null>");

    assert_string_equal(msg_col(&f, S(5) ":" C5, "body"), "Hi Ali");
    assert_string_equal(msg_col(&f, S(5) ":" C5, "state"), "3");
    assert_string_equal(msg_col(&f, S(5) ":" C4, "state"), "6");
    const char *e5 = msg_col(&f, S(5) ":" C4, "last_error");
    assert_non_null(strstr(e5, "template strict: line 1, column 4 (byte 3)"));
    assert_non_null(strstr(e5, "required value is missing"));
    /* C4 sorts first: the original record is the failed one */
    assert_string_equal(description(&f, S(5)), "<null>");

    assert_string_equal(msg_col(&f, S(6), "body"), "typed");

    /* The first poll read the templates twice: the named ones of the page
     * and every table's default in one GET. */
    double tpl_gets = pkf_stat(&f, "by_entity_set", "smsys_smstemplates");
    assert_true(tpl_gets - tpl0 == 2);
    /* Again, with one new SMS for the contact default: the defaults come
     * from the cache (no template request); nothing else is queued twice. */
    sms(&f, S(7), NULL, TO("contact", "contacts", C5), "");
    r = poll_once(&f, p);
    assert_int_equal(r.inserted, 1);
    assert_string_equal(msg_col(&f, S(7), "body"), SALAM "Ali");
    assert_true(pkf_stat(&f, "by_entity_set", "smsys_smstemplates") == tpl_gets);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 12);

    org_close(&f, p, a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts_sync),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_pickup_end_to_end),
        cmocka_unit_test(test_pickup_cost),
        cmocka_unit_test(test_phone_columns_config),
        cmocka_unit_test(test_pickup_paging),
        cmocka_unit_test(test_pickup_template),
        cmocka_unit_test(test_pickup_default_and_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
