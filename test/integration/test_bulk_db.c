/* Integration tests for sql/007_bulk.sql against the real test PostgreSQL:
 * the migration applies on top of the others, and the bulk functions keep
 * their promises (dedupe by number, replayed pages change nothing, held
 * messages are not claimed, pause/resume/cancel, counters). Each test runs
 * in a fresh database migrated with migrate_apply(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/bulk.h"
#include "smsys/error.h"
#include "smsys/migrate.h"
#include "tdb.h"
#include "world.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACC  "aaaaaaaa-0000-4000-8000-000000000001"
#define BULK "b0000000-0000-4000-8000-000000000001"

/* The test's database (fresh per test) and its connection. */
#define exec_ok(c, sql) world_sql_exec(c, sql)
#define num(c, sql)     world_sql_one(c, sql)

static char *str(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%.300s: %s", sql, PQerrorMessage(c));
    char *v = strdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static int setup(void **state)
{
    struct world_pg *e = world_pg_new("bulkdb", 1);
    if (e->migrations < 7)
        fail_msg("migrate_apply: %d", e->migrations);
    exec_ok(e->c, "INSERT INTO smsys_account (id, name, provider, max_retries) "
                  "VALUES ('" ACC "', 'a', 'kavenegar', 2)");
    exec_ok(e->c, "SELECT * FROM smsys_bulk_accept('{\"id\":\"" BULK "\",\"name\":\"Spring\","
                  "\"account_id\":\"" ACC "\",\"body\":\"hi\"}')");
    *state = e;
    return 0;
}

/* One member as page JSON; n may be NULL (no number). */
static void member(char *buf, size_t len, int i, const char *n, int st, int rendered)
{
    char key[64], act[37];
    snprintf(key, sizeof(key), "contact:00000000-0000-4000-8000-%012d", i);
    assert_int_equal(bulk_activity_id(BULK, key, act), 0);
    char nb[64] = "null";
    if (n)
        snprintf(nb, sizeof(nb), "\"%s\"", n);
    size_t o = strlen(buf);
    snprintf(buf + o, len - o,
             "%s{\"k\":\"%s\",\"e\":\"contact\",\"id\":\"%s\",\"act\":\"%s\",\"n\":%s,\"st\":%d%s}",
             o > 1 ? "," : "", key, key + 8, act, nb, st,
             rendered ? ",\"body\":\"hi\",\"seg\":1,\"enc\":0" : "");
}

static void close_arr(char *buf, size_t len)
{
    size_t o = strlen(buf);
    snprintf(buf + o, len - o, "]");
}

/* smsys_bulk_page(...) with the given checkpoint; returns "applied|inserted". */
static char *page(struct world_pg *e, int at, const char *atc, int next, const char *nextc,
                  int done, const char *members)
{
    const char *p[7];
    char a[8], n[8];
    snprintf(a, sizeof(a), "%d", at);
    snprintf(n, sizeof(n), "%d", next);
    p[0] = BULK;
    p[1] = a;
    p[2] = atc;
    p[3] = n;
    p[4] = nextc;
    p[5] = done ? "t" : "f";
    p[6] = members;
    PGresult *r = PQexecParams(e->c,
                               "SELECT applied || '|' || inserted FROM smsys_bulk_page($1::uuid, "
                               "$2::int4, $3, $4::int4, $5, $6::bool, $7::jsonb)",
                               7, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("page: %s", PQerrorMessage(e->c));
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void test_activity_id(void **state)
{
    (void)state;
    char out[37];
    /* RFC 4122 appendix-style vector: DNS namespace, "www.example.com" */
    assert_int_equal(
        bulk_activity_id("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com", out), 0);
    assert_string_equal(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    assert_int_equal(bulk_activity_id("not-a-guid", "x", out), -EINVAL);
    assert_string_equal(bulk_state_name(BULK_CANCELED), "Canceled");
    assert_string_equal(bulk_state_name(99), "?");
}

/* Dedupe by number across pages, opt-out decided in SQL, replay no-op. */
static void test_page_dedupe_replay(void **state)
{
    struct world_pg *e = *state;
    exec_ok(e->c, "SELECT smsys_optout_set('+989120000003', true, 'cli', 't', NULL, NULL)");
    char m1[4096] = "[";
    member(m1, sizeof(m1), 1, "+989120000001", 0, 1);
    member(m1, sizeof(m1), 2, "+989120000001", 0, 1); /* same number as 1 */
    member(m1, sizeof(m1), 3, "+989120000003", 0, 1); /* opted out */
    member(m1, sizeof(m1), 4, NULL, 1, 0);            /* no number */
    member(m1, sizeof(m1), 5, "+989120000005", 4, 0); /* donotsms */
    close_arr(m1, sizeof(m1));
    char *r = page(e, 0, NULL, 0, "cursor-2", 0, m1);
    assert_string_equal(r, "true|5");
    free(r);

    /* the same page again (lost COMMIT answer): nothing changes */
    long long before = num(e->c, "SELECT count(*) FROM smsys_bulk_member");
    r = page(e, 0, NULL, 0, "cursor-2", 0, m1);
    assert_string_equal(r, "false|0");
    free(r);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member"), before);
    char *cur = str(e->c, "SELECT cursor FROM smsys_bulk");
    assert_string_equal(cur, "cursor-2");
    free(cur);

    /* second page from another list: member 1 again (same contact = one
     * member) and member 6 with member 2's number (duplicate) */
    char m2[4096] = "[";
    member(m2, sizeof(m2), 1, "+989120000001", 0, 1);
    member(m2, sizeof(m2), 6, "+989120000001", 0, 1);
    member(m2, sizeof(m2), 7, "+989120000007", 0, 1);
    close_arr(m2, sizeof(m2));
    r = page(e, 0, "cursor-2", 1, NULL, 1, m2);
    assert_string_equal(r, "true|2");
    free(r);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member"), 7);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member WHERE status = 0"), 2);
    assert_int_equal(num(e->c, "SELECT status FROM smsys_bulk_member WHERE member_key LIKE '%1'"),
                     0);
    assert_int_equal(num(e->c, "SELECT status FROM smsys_bulk_member WHERE member_key LIKE '%2'"),
                     5);
    assert_int_equal(num(e->c, "SELECT status FROM smsys_bulk_member WHERE member_key LIKE '%3'"),
                     3);
    assert_int_equal(num(e->c, "SELECT status FROM smsys_bulk_member WHERE member_key LIKE '%6'"),
                     5);
    assert_int_equal(num(e->c, "SELECT expanded::int FROM smsys_bulk"), 1);
    char *sum = str(e->c, "SELECT smsys_bulk_summary('" BULK "')::text");
    assert_non_null(strstr(sum, "\"duplicate\": 2"));
    assert_non_null(strstr(sum, "\"opted_out\": 1"));
    assert_non_null(strstr(sum, "\"recipients\": 2"));
    free(sum);
}

static long long claim(struct world_pg *e)
{
    return num(e->c, "SELECT count(*) FROM smsys_q_claim('t', NULL, 100, 30000)");
}

/* Held messages are never claimed, have no write-back row; released ones
 * are claimed while the bulk is sending and not while paused or outside
 * quiet hours. */
static void test_held_release_pause(void **state)
{
    struct world_pg *e = *state;
    char m[8192] = "[";
    for (int i = 1; i <= 5; i++) {
        char n[20];
        snprintf(n, sizeof(n), "+98912000001%d", i);
        member(m, sizeof(m), i, n, 0, 1);
    }
    close_arr(m, sizeof(m));
    free(page(e, 0, NULL, 1, NULL, 1, m));
    exec_ok(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)");
    assert_int_equal(num(e->c, "SELECT sending::int FROM smsys_bulk"), 1);

    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_next_chunk('" BULK
                               "', 3, 200::int2) WHERE fresh"),
                     3);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE next_attempt_at = "
                               "'infinity' AND bulk_id = '" BULK "'"),
                     3);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_writeback"), 0);
    assert_int_equal(claim(e), 0);
    /* asked again before release (a crash): the same chunk, not fresh */
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_next_chunk('" BULK
                               "', 3, 200::int2) WHERE NOT fresh"),
                     3);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message"), 3);

    /* release two, Dynamics refused the third */
    assert_int_equal(num(e->c, "SELECT smsys_bulk_release('" BULK "', ARRAY(SELECT member_key "
                               "FROM smsys_bulk_member ORDER BY seq LIMIT 2), ARRAY(SELECT "
                               "member_key FROM smsys_bulk_member ORDER BY seq OFFSET 2 LIMIT 1), "
                               "ARRAY['bad party'])"),
                     2);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE state = 6 AND "
                               "last_error LIKE '%bad party%'"),
                     1);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member WHERE step = 3"), 3);
    /* a replayed release changes nothing */
    assert_int_equal(num(e->c, "SELECT smsys_bulk_release('" BULK "', ARRAY(SELECT member_key "
                               "FROM smsys_bulk_member ORDER BY seq LIMIT 2), NULL, NULL)"),
                     0);

    /* paused: not claimed; quiet hours: not claimed */
    assert_int_equal(num(e->c, "SELECT smsys_bulk_request('" BULK "', 'pause', NULL, 't')"), 1);
    assert_int_equal(num(e->c, "SELECT state FROM smsys_bulk"), BULK_PAUSED);
    assert_int_equal(claim(e), 0);
    assert_int_equal(
        num(e->c, "SELECT count(*) FROM smsys_bulk_next_chunk('" BULK "', 3, 200::int2)"), 0);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_resume('" BULK "')"), BULK_SENDING);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_gate_set(false)"), 1);
    assert_int_equal(claim(e), 0);
    exec_ok(e->c, "SELECT smsys_bulk_gate_set(true)");
    assert_int_equal(claim(e), 2);

    /* progress: 5 to send, 2 in flight, 1 failed, 2 unreleased */
    PGresult *r =
        PQexecParams(e->c, BULK_SQL_PROGRESS, 1, NULL, (const char *[]){BULK}, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    struct bulk_progress p;
    assert_int_equal(bulk_progress_parse(r, 0, &p), 0);
    PQclear(r);
    assert_int_equal(p.total, 5);
    assert_int_equal(p.inflight, 2);
    assert_int_equal(p.failed, 1);
    assert_int_equal(p.unreleased, 2);
    assert_false(p.finished);
}

/* Cancel: released-but-waiting messages become Canceled with write-back,
 * held ones Canceled without, unreleased members step 9; the bulk
 * finishes. A release after the cancel (records just created) cancels
 * with write-back. */
static void test_cancel(void **state)
{
    struct world_pg *e = *state;
    char m[8192] = "[";
    for (int i = 1; i <= 6; i++) {
        char n[20];
        snprintf(n, sizeof(n), "+98912000002%d", i);
        member(m, sizeof(m), i, n, 0, 1);
    }
    close_arr(m, sizeof(m));
    free(page(e, 0, NULL, 1, NULL, 1, m));
    exec_ok(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)");
    exec_ok(e->c, "SELECT * FROM smsys_bulk_next_chunk('" BULK "', 2, 200::int2)");
    exec_ok(e->c, "SELECT smsys_bulk_release('" BULK "', ARRAY(SELECT member_key FROM "
                  "smsys_bulk_member WHERE step = 2), NULL, NULL)");
    exec_ok(e->c, "SELECT * FROM smsys_bulk_next_chunk('" BULK "', 2, 200::int2)"); /* held */
    char *held = str(e->c, "SELECT array_agg(member_key)::text FROM smsys_bulk_member "
                           "WHERE step = 2");

    assert_int_equal(num(e->c, "SELECT smsys_bulk_cancel('" BULK "')"), BULK_CANCELED);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE state = 9"), 4);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_writeback"), 2);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member WHERE step = 9"), 4);
    assert_int_equal(claim(e), 0);
    /* the engine had created the held records meanwhile and releases them */
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT smsys_bulk_release('" BULK "', '%s'::text[], NULL, NULL)",
             held);
    free(held);
    assert_int_equal(num(e->c, sql), 0);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_writeback"), 4);
    assert_int_equal(num(e->c, "SELECT finished::int FROM smsys_bulk_progress('" BULK "')"), 1);
    assert_int_equal(num(e->c, "SELECT canceled FROM smsys_bulk_progress('" BULK "')"), 6);
    /* final states are never left */
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)"),
                     BULK_CANCELED);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_resume('" BULK "')"), BULK_CANCELED);
}

/* A message to a number opted out after expansion is born Blocked by the
 * guard; its record gets the Blocked status once it exists. */
static void test_optout_after_expansion(void **state)
{
    struct world_pg *e = *state;
    char m[2048] = "[";
    member(m, sizeof(m), 1, "+989120000031", 0, 1);
    close_arr(m, sizeof(m));
    free(page(e, 0, NULL, 1, NULL, 1, m));
    exec_ok(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)");
    exec_ok(e->c, "SELECT smsys_optout_set('+989120000031', true, 'sms', 't', 'stop', NULL)");
    exec_ok(e->c, "SELECT * FROM smsys_bulk_next_chunk('" BULK "', 10, 200::int2)");
    assert_int_equal(num(e->c, "SELECT state FROM smsys_message"), 10);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_writeback"), 0);
    exec_ok(e->c, "SELECT smsys_bulk_release('" BULK "', ARRAY(SELECT member_key FROM "
                  "smsys_bulk_member), NULL, NULL)");
    assert_int_equal(num(e->c, "SELECT (fields->>'smsys_status')::int FROM smsys_writeback"), 10);
    assert_int_equal(num(e->c, "SELECT failed FROM smsys_bulk_progress('" BULK "')"), 1);
    assert_int_equal(num(e->c, "SELECT finished::int FROM smsys_bulk_progress('" BULK "')"), 1);
}

/* Engine transitions only from their predecessor: a pause that lands
 * while the preflight runs is not overwritten by "Sending". */
static void test_engine_transitions(void **state)
{
    struct world_pg *e = *state;
    assert_int_equal(num(e->c, "SELECT smsys_bulk_pause('" BULK "')"), BULK_PAUSED);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)"),
                     BULK_PAUSED);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 6::int2, NULL)"),
                     BULK_PAUSED);
    assert_int_equal(num(e->c, "SELECT sending::int FROM smsys_bulk"), 0);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_resume('" BULK "')"), BULK_EXPANDING);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 6::int2, NULL)"),
                     BULK_EXPANDING);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 4::int2, NULL)"),
                     BULK_SENDING);
    assert_int_equal(num(e->c, "SELECT sending::int FROM smsys_bulk"), 1);
    assert_int_equal(num(e->c, "SELECT smsys_bulk_set_state('" BULK "', 8::int2, 'why')"),
                     BULK_FAILED);
    char *err = str(e->c, "SELECT last_error FROM smsys_bulk");
    assert_string_equal(err, "why");
    free(err);
    /* a Failed bulk without messages starts over */
    assert_int_equal(num(e->c, "SELECT smsys_bulk_restart('{\"id\":\"" BULK "\",\"name\":"
                               "\"Again\",\"account_id\":\"" ACC "\"}')::int"),
                     1);
    assert_int_equal(num(e->c, "SELECT state FROM smsys_bulk"), BULK_EXPANDING);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk WHERE last_error IS NULL"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activity_id),
        cmocka_unit_test_setup_teardown(test_page_dedupe_replay, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_held_release_pause, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_optout_after_expansion, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_engine_transitions, setup, world_pg_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
