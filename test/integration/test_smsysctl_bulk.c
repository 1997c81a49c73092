/* Integration tests of smsysctl bulk: the built binary against a private
 * PostgreSQL database migrated with `smsysctl db migrate`. Bulk sends are
 * set up with SQL in the states the engine would leave them in; the tests
 * check what the commands print and what they change in PostgreSQL
 * (paused messages are not claimed, canceled ones are Canceled, commands
 * and NOTIFY reach the service), and that watch ends with the right exit
 * code when the test moves the bulk along. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "../lib/testutil.h"
#include "tdb.h"
#include "../lib/world.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ACC      "acc00000-0000-4000-8000-000000000001"
#define ACC_P    "acc00000-0000-4000-8000-000000000002" /* the pause test's own account */
#define BULK_A   "a1a1a1a1-0000-4000-8000-000000000001"
#define BULK_B1  "b2b2b2b2-0000-4000-8000-000000000001"
#define BULK_B2  "b2b2b2b2-1111-4000-8000-000000000002"
#define BULK_D   "d4d4d4d4-0000-4000-8000-000000000001"
#define BULK_P   "5a5a5a5a-0000-4000-8000-000000000001"
#define BULK_C   "c3c3c3c3-0000-4000-8000-000000000001"
#define BULK_S   "5e5e5e5e-0000-4000-8000-000000000001"
#define BULK_F   "f6f6f6f6-0000-4000-8000-000000000001"
#define BULK_NEW "0e0e0e0e-0000-4000-8000-000000000001"
#define BULK_W   "e7e7e7e7-0000-4000-8000-000000000001"
#define BULK_X   "e8e8e8e8-0000-4000-8000-000000000001"
#define BULK_Y   "e9e9e9e9-0000-4000-8000-000000000001"

static char tmpdir[256];
static char conf[320];
static char db_name[64], db_conninfo[1024];
static PGconn *db;

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(db, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%.400s: %s", q, PQerrorMessage(db));
    PQclear(r);
}

/* The one value of a one-row query, as a number (-1 for NULL). */
static long long val(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long val(const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(db, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%.400s: %s", q, PQerrorMessage(db));
    long long v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* smsysctl --config conf ARGS..., run to its end. */
#define CTL(...) world_ctl(conf, (const char *const[]){__VA_ARGS__, NULL})
#define expect   world_run_expect

/* Waits up to ms for a started run (0: only a look), kills it when it
 * has not ended and reads its output. */
static struct world_run finish(struct world_run r, unsigned ms)
{
    world_ctl_finish(&r, ms ? ms : 1);
    return r;
}

/* A bulk row as the engine leaves it in state st. */
static void add_bulk(const char *id, const char *name, int st, int expanded, const char *acc)
{
    sql("INSERT INTO smsys_bulk (id, name, state, sending, expanded, account_id, final_at)"
        " VALUES ('%s', '%s', %d, %s, %s, '%s', %s)",
        id, name, st, st == 4 ? "true" : "false", expanded ? "true" : "false", acc,
        st >= 6 ? "now()" : "NULL");
}

/* n members of bulk id (keys tagged tag) with member status mst at step
 * step; with a message in state qst (0: none) when step >= 2. Held
 * messages (step 2) wait forever, released ones are due now. */
static void add_members(const char *id, const char *tag, int n, int mst, int step, int qst,
                        const char *acc)
{
    sql("INSERT INTO smsys_bulk_member (bulk_id, member_key, entity, member_id, number, status,"
        " activity_id, step)"
        " SELECT '%s', 'contact:%s' || i, 'contact', md5('%s%s' || i)::uuid,"
        " CASE WHEN %d = 1 THEN NULL ELSE '+98912' || lpad(i::text, 7, '0') END, %d,"
        " md5('act%s%s' || i)::uuid, %d FROM generate_series(1, %d) i",
        id, tag, id, tag, mst, mst, id, tag, step, n);
    if (qst == 0)
        return;
    sql("INSERT INTO smsys_message (idem_key, activity_id, bulk_id, account_id, recipient, body,"
        " state, sent_at, delivered_at, final_at, next_attempt_at, priority)"
        " SELECT 'bulk:' || bulk_id || ':' || member_key, activity_id, bulk_id, '%s', number, 'hi',"
        " %d, CASE WHEN %d IN (4, 5) THEN now() END, CASE WHEN %d = 5 THEN now() END,"
        " CASE WHEN %d IN (5, 6, 9, 10) THEN now() END,"
        " CASE WHEN %d = 2 THEN 'infinity'::timestamptz ELSE now() END, 200"
        " FROM smsys_bulk_member WHERE bulk_id = '%s' AND member_key LIKE 'contact:%s%%'",
        acc, qst, qst, qst, qst, step, id, tag);
    sql("UPDATE smsys_bulk_member m SET message_id = q.id FROM smsys_message q"
        " WHERE m.bulk_id = '%s' AND q.idem_key = 'bulk:' || m.bulk_id || ':' || m.member_key",
        id);
}

static int setup(void **state)
{
    (void)state;
    world_mkdir("ctl-bulk", tmpdir, sizeof(tmpdir));
    world_db_create("ctlbulk", db_name, sizeof(db_name), db_conninfo, sizeof(db_conninfo));
    snprintf(conf, sizeof(conf), "%s/smsys.conf", tmpdir);
    /* Dynamics is never called by these commands: nothing listens there. */
    world_conf_write(conf, &(struct world_conf){.dv_root = "http://127.0.0.1:9",
                                                .scope = "http://127.0.0.1:9/.default",
                                                .conninfo = db_conninfo});
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    setenv("USER", "tester", 1);
    struct world_run r = CTL("db", "migrate");
    int ok = r.code == 0;
    if (!ok)
        fprintf(stderr, "db migrate: %s%s\n", r.out, r.err);
    world_run_free(&r);
    if (!ok)
        return -1;
    db = PQconnectdb(db_conninfo);
    if (PQstatus(db) != CONNECTION_OK)
        return -1;
    PQsetNoticeProcessor(db, tdb_quiet, NULL);
    sql("INSERT INTO smsys_account (id, name, provider) VALUES ('" ACC "', 'main', 'kavenegar'),"
        " ('" ACC_P "', 'other', 'kavenegar')");
    /* A: Sending, 8 to send (2 delivered, 1 sent, 3 waiting, 2 not yet
     * released), 2 skipped (no number, opted out). */
    add_bulk(BULK_A, "Spring promo", 4, 1, ACC);
    add_members(BULK_A, "d", 2, 0, 3, 5, ACC);
    add_members(BULK_A, "s", 1, 0, 3, 4, ACC);
    add_members(BULK_A, "q", 3, 0, 3, 3, ACC);
    add_members(BULK_A, "u", 2, 0, 1, 0, ACC);
    add_members(BULK_A, "n", 1, 1, 0, 0, ACC);
    add_members(BULK_A, "o", 1, 3, 0, 0, ACC);
    /* two bulks sharing an 8-digit prefix; one that ended 10 days ago */
    add_bulk(BULK_B1, "تخفیف پاییز", 3, 0, ACC);
    add_bulk(BULK_B2, "Yalda", 2, 0, ACC);
    add_bulk(BULK_D, "Old news", 6, 1, ACC);
    sql("UPDATE smsys_bulk SET final_at = now() - interval '10 days',"
        " created_at = now() - interval '11 days' WHERE id = '" BULK_D "'");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return world_teardown(state);
}

static void test_usage(void **state)
{
    (void)state;
    expect(CTL("bulk"), 2, NULL, "SUBCOMMAND");
    expect(CTL("bulk", "frob"), 2, NULL, "unknown subcommand 'bulk frob'");
    expect(CTL("bulk", "pause"), 2, NULL, "expected a bulk ID");
    expect(CTL("bulk", "pause", "xyz"), 2, NULL, "'xyz' is not a bulk id");
    expect(CTL("bulk", "cancel", "a1a1a1a"), 2, NULL, "8+ hex digits");
    expect(CTL("bulk", "resume", BULK_A, BULK_B1), 2, NULL, "unexpected argument");
    expect(CTL("bulk", "pause", "--force", BULK_A), 2, NULL, "unknown option '--force'");
    expect(CTL("bulk", "start", BULK_NEW, "--rate", "-1"), 2, NULL, "--rate");
    expect(CTL("bulk", "start", BULK_NEW, "--rate"), 2, NULL, "--rate");
    expect(CTL("bulk", "start", BULK_NEW, "--rate", "fast"), 2, NULL, "--rate");
    expect(CTL("bulk", "list", "--old"), 2, NULL, "unexpected argument '--old'");
    expect(CTL("bulk", "pause", "--json", BULK_A), 2, NULL, "--json is not supported");
    expect(CTL("bulk", "watch", BULK_A, BULK_B1), 2, NULL, "unexpected argument");
    expect(CTL("bulk", "watch"), 2, NULL, "expected a bulk ID");
    expect(CTL("bulk", "preview"), 2, NULL, "expected a bulk ID");
    expect(CTL("bulk", "preview", "not-an-id!"), 2, NULL, "is not a bulk id");
    static const char *const subs[] = {"list",   "preview", "start", "pause",
                                       "resume", "cancel",  "watch"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        expect(CTL("bulk", subs[i], "--help"), 0, "usage: smsysctl [--config FILE] bulk", NULL);
    expect(CTL("bulk", "--help"), 0, "watch", NULL);
    expect(CTL("help", "bulk", "watch"), 0, "Exit 0 when the bulk ends Completed", NULL);
    /* nothing was written by any of them */
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command"), 0);
}

static const cJSON *find_id(const cJSON *arr, const char *id)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            return o;
    }
    return NULL;
}

static double num_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("no number '%s'", k);
    return v->valuedouble;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v))
        fail_msg("no string '%s'", k);
    return v->valuestring;
}

static void test_list(void **state)
{
    (void)state;
    struct world_run r = CTL("bulk", "list");
    assert_int_equal(r.code, 0);
    if (!strstr(r.out, "a1a1a1a1  Spring promo") || !strstr(r.out, "Sending") ||
        !strstr(r.out, "تخفیف پاییز") || !strstr(r.out, "Expanding") || !strstr(r.out, "Yalda"))
        fail_msg("list:\n%s", r.out);
    assert_null(strstr(r.out, "d4d4d4d4")); /* ended over 7 days ago */
    assert_null(strstr(r.out, BULK_A));     /* short ids only */
    /* A's row: 8 to send, 3 sent, 2 delivered, 0 failed, 2 skipped */
    const char *row = strstr(r.out, "a1a1a1a1");
    assert_non_null(row);
    char tail[200];
    snprintf(tail, sizeof(tail), "%.120s", row);
    int total, sent, dlv, failed, skipped;
    if (sscanf(tail, "a1a1a1a1 Spring promo Sending %d %d %d %d %d", &total, &sent, &dlv, &failed,
               &skipped) != 5)
        fail_msg("row: %s", tail);
    assert_int_equal(total, 8);
    assert_int_equal(sent, 3);
    assert_int_equal(dlv, 2);
    assert_int_equal(failed, 0);
    assert_int_equal(skipped, 2);
    /* a growing total is marked */
    assert_non_null(strstr(r.out, "      0+"));
    world_run_free(&r);

    expect(CTL("bulk", "list", "--all"), 0, "d4d4d4d4  Old news", NULL);

    r = CTL("bulk", "list", "--json");
    assert_int_equal(r.code, 0);
    cJSON *a = cJSON_Parse(r.out);
    if (!cJSON_IsArray(a))
        fail_msg("not a JSON array: %s", r.out);
    assert_int_equal(cJSON_GetArraySize(a), 3);
    assert_null(find_id(a, BULK_D));
    const cJSON *o = find_id(a, BULK_A);
    assert_non_null(o);
    assert_string_equal(str_of(o, "short_id"), "a1a1a1a1");
    assert_string_equal(str_of(o, "name"), "Spring promo");
    assert_string_equal(str_of(o, "state"), "Sending");
    assert_int_equal((int)num_of(o, "state_code"), 4);
    assert_int_equal((int)num_of(o, "total"), 8);
    assert_int_equal((int)num_of(o, "sent"), 3);
    assert_int_equal((int)num_of(o, "delivered"), 2);
    assert_int_equal((int)num_of(o, "failed"), 0);
    assert_int_equal((int)num_of(o, "skipped"), 2);
    assert_int_equal((int)num_of(o, "queued"), 3);
    assert_int_equal((int)num_of(o, "unreleased"), 2);
    assert_int_equal((int)num_of(o, "done"), 3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "expanded")));
    assert_int_equal(strlen(str_of(o, "created")), 20); /* 2026-11-28T10:00:00Z */
    o = find_id(a, BULK_B1);
    assert_non_null(o);
    assert_string_equal(str_of(o, "name"), "تخفیف پاییز");
    cJSON_Delete(a);
    world_run_free(&r);

    r = CTL("bulk", "list", "--all", "--json");
    a = cJSON_Parse(r.out);
    assert_int_equal(r.code, 0);
    assert_non_null(find_id(a, BULK_D));
    cJSON_Delete(a);
    world_run_free(&r);
}

static void test_ids(void **state)
{
    (void)state;
    /* ambiguous: both candidates named, exit 1 */
    struct world_run r = CTL("bulk", "preview", "b2b2b2b2");
    if (r.code != 1 || !strstr(r.err, "ambiguous") || !strstr(r.err, BULK_B1) ||
        !strstr(r.err, BULK_B2))
        fail_msg("exit %d\n%s", r.code, r.err);
    world_run_free(&r);
    expect(CTL("bulk", "pause", "B2B2B2B2"), 1, NULL, "ambiguous");
    /* more digits (with the GUID's hyphen) pick one */
    expect(CTL("bulk", "preview", "b2b2b2b2-1111"), 0, "Yalda", NULL);
    expect(CTL("bulk", "preview", "b2b2b2b21111"), 0, "Yalda", NULL);
    /* the full id, in capitals, without hyphens */
    expect(CTL("bulk", "preview", "A1A1A1A1000040008000000000000001"), 0, "Spring promo", NULL);
    /* unknown */
    expect(CTL("bulk", "preview", "cccccccc"), 1, NULL, "no bulk send whose id starts with");
    expect(CTL("bulk", "cancel", "cccccccc-0000-4000-8000-000000000001"), 1, NULL,
           "no bulk send with id");
    expect(CTL("bulk", "watch", "cccccccc"), 1, NULL, "no bulk send");
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command"), 0);
}

static void test_preview(void **state)
{
    (void)state;
    expect(CTL("bulk", "preview", "a1a1a1a1"), 0, "not expanded yet", NULL);
    struct world_run r = CTL("bulk", "preview", "a1a1a1a1", "--json");
    assert_int_equal(r.code, 0);
    cJSON *o = cJSON_Parse(r.out);
    assert_non_null(o);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "preflight")));
    assert_string_equal(str_of(o, "id"), BULK_A);
    cJSON_Delete(o);
    world_run_free(&r);

    /* what the engine stores: the SQL summary plus price, cost, balance, verdict */
    sql("UPDATE smsys_bulk SET preflight = smsys_bulk_summary(id) || '{\"price_per_segment\": 2.5,"
        " \"cost\": 1250.5, \"unit\": \"IRR\", \"balance\": 90000, \"refused\": false,"
        " \"at\": \"2026-11-28T10:00:00Z\"}'::jsonb WHERE id = '" BULK_A "'");
    r = CTL("bulk", "preview", "a1a1a1a1");
    assert_int_equal(r.code, 0);
    if (!strstr(r.out, "recipients: 8") || !strstr(r.out, "  no number: 1") ||
        !strstr(r.out, "  opted out: 1") || !strstr(r.out, "cost: 1250.5") ||
        !strstr(r.out, "price per segment: 2.5") || !strstr(r.out, "balance: 90000") ||
        !strstr(r.out, "verdict: goes ahead") || !strstr(r.out, "Spring promo") ||
        !strstr(r.out, "(Sending)"))
        fail_msg("preview:\n%s", r.out);
    /* in reading order: recipients first, the verdict last */
    assert_true(strstr(r.out, "recipients:") < strstr(r.out, "skipped:"));
    assert_true(strstr(r.out, "cost:") < strstr(r.out, "verdict:"));
    world_run_free(&r);
    /* a refused bulk: the reason, and the last error */
    sql("UPDATE smsys_bulk SET preflight = preflight || '{\"refused\": true, \"reason\":"
        " \"insufficient balance: the estimated cost is 1250.5 IRR\"}'::jsonb,"
        " last_error = 'insufficient balance' WHERE id = '" BULK_A "'");
    expect(CTL("bulk", "preview", "a1a1a1a1"), 0,
           "verdict: REFUSED: insufficient balance: the estimated cost is 1250.5 IRR", NULL);
    expect(CTL("bulk", "preview", "a1a1a1a1"), 0, "last error: insufficient balance", NULL);
    r = CTL("--json", "bulk", "preview", BULK_A); /* global --json */
    assert_int_equal(r.code, 0);
    o = cJSON_Parse(r.out);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(o, "preflight");
    assert_true(cJSON_IsObject(pre));
    assert_int_equal((int)num_of(pre, "recipients"), 8);
    assert_int_equal((int)num_of(cJSON_GetObjectItemCaseSensitive(pre, "skipped"), "opted_out"), 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "refused")));
    assert_string_equal(str_of(o, "last_error"), "insufficient balance");
    cJSON_Delete(o);
    world_run_free(&r);
    sql("UPDATE smsys_bulk SET last_error = NULL WHERE id = '" BULK_A "'");
}

/* Waits up to 2 s for NOTIFY smsys_bulk with payload id on db. */
static int got_notify(const char *id)
{
    for (int i = 0; i < 100; i++) {
        PQconsumeInput(db);
        PGnotify *n;
        int hit = 0;
        while ((n = PQnotifies(db)) != NULL) {
            hit |= strcmp(n->relname, "smsys_bulk") == 0 && strcmp(n->extra, id) == 0;
            PQfreemem(n);
        }
        if (hit)
            return 1;
        struct pollfd p = {.fd = PQsocket(db), .events = POLLIN};
        poll(&p, 1, 20);
    }
    return 0;
}

static void test_pause_resume(void **state)
{
    (void)state;
    add_bulk(BULK_P, "Pause me", 4, 1, ACC_P);
    add_members(BULK_P, "q", 3, 0, 3, 3, ACC_P);
    sql("LISTEN smsys_bulk");

    expect(CTL("bulk", "pause", "5a5a5a5a"), 0, "paused: no new hand-overs; 3 waiting", NULL);
    assert_int_equal(val("SELECT state FROM smsys_bulk WHERE id = '" BULK_P "'"), 5);
    assert_int_equal(val("SELECT resume_state FROM smsys_bulk WHERE id = '" BULK_P "'"), 4);
    assert_int_equal(val("SELECT sending::int FROM smsys_bulk WHERE id = '" BULK_P "'"), 0);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_P
                         "' AND command = 'pause' AND who = 'tester' AND done_at IS NULL"),
                     1);
    assert_true(got_notify(BULK_P));
    /* the paused bulk's due messages are not claimable */
    assert_int_equal(
        val("SELECT count(*) FROM smsys_q_claim('t', ARRAY['" ACC_P "']::uuid[], 100, 30000)"), 0);
    assert_int_equal(
        val("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_P "' AND state = 3"), 3);

    expect(CTL("bulk", "pause", BULK_P), 0, "already paused", NULL);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_P "'"),
                     1);

    expect(CTL("bulk", "resume", "5a5a5a5a"), 0, "resumed (Sending): 3 waiting", NULL);
    assert_int_equal(val("SELECT state FROM smsys_bulk WHERE id = '" BULK_P "'"), 4);
    assert_int_equal(val("SELECT sending::int FROM smsys_bulk WHERE id = '" BULK_P "'"), 1);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_P
                         "' AND command = 'resume'"),
                     1);
    assert_true(got_notify(BULK_P));
    assert_int_equal(
        val("SELECT count(*) FROM smsys_q_claim('t', ARRAY['" ACC_P "']::uuid[], 100, 30000)"), 3);
    expect(CTL("bulk", "resume", BULK_P), 0, "not paused: nothing to resume", NULL);
    sql("UNLISTEN smsys_bulk");
}

static void test_cancel(void **state)
{
    (void)state;
    add_bulk(BULK_C, "Cancel me", 4, 1, ACC);
    add_members(BULK_C, "q", 2, 0, 3, 3, ACC);  /* released, waiting */
    add_members(BULK_C, "h", 1, 0, 2, 3, ACC);  /* held: record maybe not created */
    add_members(BULK_C, "u", 2, 0, 1, 0, ACC);  /* rendered, not enqueued */
    add_members(BULK_C, "d", 1, 0, 3, 5, ACC);  /* delivered */
    add_members(BULK_C, "i", 1, 0, 3, 20, ACC); /* in flight */

    expect(CTL("bulk", "cancel", "c3c3c3c3"), 0,
           "canceled: 5 recipient(s) will not be sent to, 1 message(s) in flight", NULL);
    assert_int_equal(val("SELECT state FROM smsys_bulk WHERE id = '" BULK_C "'"), 7);
    assert_int_equal(
        val("SELECT (final_at IS NOT NULL)::int FROM smsys_bulk WHERE id = '" BULK_C "'"), 1);
    /* no Queued message left; the delivered and in-flight ones untouched */
    assert_int_equal(
        val("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_C "' AND state IN (3, 7)"),
        0);
    assert_int_equal(
        val("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_C "' AND state = 9"), 3);
    assert_int_equal(
        val("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_C "' AND state = 5"), 1);
    assert_int_equal(
        val("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_C "' AND state = 20"), 1);
    /* held and unreleased members will never be released */
    assert_int_equal(
        val("SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_C "' AND step = 9"), 3);
    /* the released ones (records exist) are written back as Canceled */
    assert_int_equal(val("SELECT count(*) FROM smsys_writeback w JOIN smsys_message q"
                         " ON q.activity_id = w.activity_id WHERE q.bulk_id = '" BULK_C
                         "' AND q.state = 9"),
                     2);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_C
                         "' AND command = 'cancel'"),
                     1);

    expect(CTL("bulk", "cancel", BULK_C), 0, "already canceled", NULL);
    expect(CTL("bulk", "pause", BULK_C), 1, NULL, "is Canceled: a final state");
    expect(CTL("bulk", "resume", BULK_C), 1, NULL, "is Canceled");
    expect(CTL("bulk", "start", BULK_C), 1, NULL, "is Canceled");
    expect(CTL("bulk", "pause", "d4d4d4d4"), 1, NULL, "is Completed");
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_C "'"),
                     1);
}

static void test_start(void **state)
{
    (void)state;
    /* a bulk PostgreSQL has not seen: the full id queues the command */
    expect(CTL("bulk", "start", BULK_NEW, "--rate", "7"), 0, "start requested at 7 messages/s",
           NULL);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_NEW
                         "' AND command = 'start' AND rate = 7 AND done_at IS NULL"),
                     1);
    expect(CTL("bulk", "start", "0e0e0e0e"), 1, NULL, "no bulk send whose id starts with");

    /* running: nothing to do without --rate; with it, the rate changes */
    expect(CTL("bulk", "start", "a1a1a1a1"), 0, "already Sending: nothing to start", NULL);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_A "'"),
                     0);
    expect(CTL("bulk", "start", "a1a1a1a1", "--rate", "25"), 0, "its rate is now at 25", NULL);
    assert_int_equal(val("SELECT rate_per_s FROM smsys_bulk WHERE id = '" BULK_A "'"), 25);

    /* paused: start resumes it, at the new rate */
    add_bulk(BULK_S, "Paused one", 5, 1, ACC);
    sql("UPDATE smsys_bulk SET resume_state = 4 WHERE id = '" BULK_S "'");
    expect(CTL("bulk", "start", "5e5e5e5e", "--rate", "3"), 0, "was paused: resumed at 3", NULL);
    assert_int_equal(val("SELECT state FROM smsys_bulk WHERE id = '" BULK_S "'"), 4);
    assert_int_equal(val("SELECT rate_per_s FROM smsys_bulk WHERE id = '" BULK_S "'"), 3);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_S
                         "' AND command = 'resume' AND rate = 3"),
                     1);

    /* failed: the service may start it over */
    add_bulk(BULK_F, "Too expensive", 8, 1, ACC);
    sql("UPDATE smsys_bulk SET last_error = 'balance 10 IRR cannot cover 99 IRR' WHERE id = "
        "'" BULK_F "'");
    expect(CTL("bulk", "start", "f6f6f6f6"), 0, "balance 10 IRR cannot cover 99 IRR", NULL);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_F
                         "' AND command = 'start'"),
                     1);
    expect(CTL("bulk", "start", "d4d4d4d4"), 1, NULL, "is Completed");
}

/* Reads what a running child has written so far to fd. */
static char *peek_fd(int fd)
{
    struct buf b = BUF_INIT;
    char tmp[4096];
    ssize_t n;
    off_t at = 0;
    while ((n = pread(fd, tmp, sizeof(tmp), at)) > 0) {
        buf_append(&b, tmp, (size_t)n);
        at += n;
    }
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

/* Waits up to ms until the child's output holds needle. */
static int wait_output(int fd, const char *needle, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        char *s = peek_fd(fd);
        int hit = strstr(s, needle) != NULL;
        free(s);
        if (hit)
            return 1;
        usleep(50000);
    }
    return 0;
}

static void test_watch_completes(void **state)
{
    (void)state;
    add_bulk(BULK_W, "Watch me", 4, 1, ACC);
    add_members(BULK_W, "q", 4, 0, 3, 3, ACC);
    add_members(BULK_W, "n", 1, 1, 0, 0, ACC);
    struct world_run w =
        world_ctl_start(conf, (const char *const[]){"bulk", "watch", "e7e7e7e7", NULL});
    if (!wait_output(w.fo, "state=Sending total=4 done=0", 5000)) {
        struct world_run r = finish(w, 0);
        fail_msg("no first line\nstdout: %s\nstderr: %s", r.out, r.err);
    }
    /* two handed over, then all delivered and the bulk completes */
    sql("UPDATE smsys_message SET state = 4, sent_at = now() WHERE id IN (SELECT id FROM"
        " smsys_message WHERE bulk_id = '" BULK_W "' ORDER BY id LIMIT 2)");
    assert_true(wait_output(w.fo, "done=2 sent=2", 5000));
    sql("UPDATE smsys_message SET state = 5, sent_at = now(), delivered_at = now(),"
        " final_at = now() WHERE bulk_id = '" BULK_W "'");
    sql("SELECT smsys_bulk_set_state('" BULK_W "', 6::smallint, NULL)");
    struct world_run r = finish(w, 5000);
    if (r.code != 0 || !strstr(r.out, "state=Completed total=4 done=4 sent=4 delivered=4") ||
        !strstr(r.out, "progress=100.0%") ||
        !strstr(r.out, "bulk e7e7e7e7 (Watch me) Completed: 4 sent, 4 delivered, 0 failed, 1 "
                       "skipped of 4"))
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    /* not a terminal: one plain line per second, no bar, no carriage return */
    assert_null(strchr(r.out, '\r'));
    assert_null(strchr(r.out, '['));
    world_run_free(&r);
    /* an ended bulk: one line and the exit code at once */
    expect(CTL("bulk", "watch", BULK_W), 0, "Completed: 4 sent", NULL);
    expect(CTL("bulk", "watch", "c3c3c3c3"), 1, "Canceled", NULL);
}

static void test_watch_json_canceled(void **state)
{
    (void)state;
    add_bulk(BULK_X, "Watch JSON", 4, 0, ACC);
    add_members(BULK_X, "q", 2, 0, 3, 3, ACC);
    struct world_run w =
        world_ctl_start(conf, (const char *const[]){"bulk", "watch", BULK_X, "--json", NULL});
    assert_true(wait_output(w.fo, "\"state\":\"Sending\"", 5000));
    expect(CTL("bulk", "cancel", BULK_X), 0, "canceled: 2 recipient(s)", NULL);
    struct world_run r = finish(w, 5000);
    if (r.code != 1)
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    /* every line is one JSON object; the last says Canceled */
    int lines = 0;
    cJSON *last = NULL;
    for (char *save = NULL, *l = strtok_r(r.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(l);
        if (!cJSON_IsObject(o))
            fail_msg("not JSON: %s", l);
        assert_string_equal(str_of(o, "id"), BULK_X);
        assert_int_equal((int)num_of(o, "total"), 2);
        assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "expanded")));
        cJSON_Delete(last);
        last = o;
        lines++;
    }
    assert_true(lines >= 2);
    assert_string_equal(str_of(last, "state"), "Canceled");
    assert_int_equal((int)num_of(last, "state_code"), 7);
    assert_int_equal((int)num_of(last, "done"), 2);
    cJSON_Delete(last);
    world_run_free(&r);
}

static void test_watch_sigint(void **state)
{
    (void)state;
    add_bulk(BULK_Y, "Keep going", 4, 1, ACC);
    add_members(BULK_Y, "q", 2, 0, 3, 3, ACC);
    struct world_run w =
        world_ctl_start(conf, (const char *const[]){"bulk", "watch", BULK_Y, NULL});
    assert_true(wait_output(w.fo, "state=Sending", 5000));
    kill(w.pid, SIGINT);
    struct world_run r = finish(w, 3000);
    if (r.code != 1 || !strstr(r.err, "stopped watching; bulk " BULK_Y " goes on (Sending)"))
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    world_run_free(&r);
    /* the bulk itself is untouched */
    assert_int_equal(val("SELECT state FROM smsys_bulk WHERE id = '" BULK_Y "'"), 4);
    assert_int_equal(val("SELECT count(*) FROM smsys_bulk_command WHERE bulk_id = '" BULK_Y "'"),
                     0);
}

static void test_watch_waits_for_start(void **state)
{
    (void)state;
    /* BULK_NEW has a pending start command (test_start): watch waits */
    struct world_run w =
        world_ctl_start(conf, (const char *const[]){"bulk", "watch", BULK_NEW, NULL});
    assert_true(wait_output(w.fe, "waiting for smsysd to take the start command", 5000));
    usleep(1200 * 1000);
    assert_int_equal(waitpid(w.pid, NULL, WNOHANG), 0); /* still waiting */
    /* what the service does: accepts it, marks the command, runs it */
    sql("SELECT * FROM smsys_bulk_accept('{\"id\":\"" BULK_NEW "\",\"name\":\"New\","
        "\"account_id\":\"" ACC "\",\"body\":\"hi\"}')");
    sql("UPDATE smsys_bulk_command SET done_at = now(), result = 'started' WHERE bulk_id = "
        "'" BULK_NEW "'");
    assert_true(wait_output(w.fo, "state=Expanding", 5000));
    sql("UPDATE smsys_bulk SET expanded = true WHERE id = '" BULK_NEW "'");
    /* the engine's transitions: Expanding -> Sending -> Completed */
    sql("SELECT smsys_bulk_set_state('" BULK_NEW "', 4::smallint, NULL)");
    sql("SELECT smsys_bulk_set_state('" BULK_NEW "', 6::smallint, NULL)");
    struct world_run r = finish(w, 5000);
    if (r.code != 0 || !strstr(r.out, "Completed: 0 sent"))
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    world_run_free(&r);

    /* a full id with no start command waiting is simply unknown */
    expect(CTL("bulk", "watch", "0f0f0f0f-0000-4000-8000-000000000001"), 1, NULL,
           "no start command waiting");
    /* taken by the service but not accepted (e.g. not in Dynamics) */
    sql("INSERT INTO smsys_bulk_command (bulk_id, command, who)"
        " VALUES ('0f0f0f0f-0000-4000-8000-000000000002', 'start', 't')");
    w = world_ctl_start(
        conf, (const char *const[]){"bulk", "watch", "0f0f0f0f-0000-4000-8000-000000000002", NULL});
    assert_true(wait_output(w.fe, "waiting for smsysd", 5000));
    sql("UPDATE smsys_bulk_command SET done_at = now(), result = 'not found'"
        " WHERE bulk_id = '0f0f0f0f-0000-4000-8000-000000000002'");
    r = finish(w, 5000);
    if (r.code != 1 || !strstr(r.err, "did not accept the bulk"))
        fail_msg("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    world_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_preview),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_watch_completes),
        cmocka_unit_test(test_watch_json_canceled),
        cmocka_unit_test(test_watch_sigint),
        cmocka_unit_test(test_watch_waits_for_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
