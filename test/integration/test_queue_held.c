/* Integration tests for sql/009_claim_held.sql against the real test
 * PostgreSQL: smsys_message.held stays exactly right through every change
 * of whether a bulk's messages may go (checked with one SQL query after
 * each step), the claim skips held rows without reading them, and the
 * receipt statements keep an index plan after the receipt table grew.
 * Each test runs in a fresh database migrated with migrate_apply(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/migrate.h"
#include "tdb.h"
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACC "aaaaaaaa-0000-4000-8000-000000000001"
#define B1  "b0000000-0000-4000-8000-000000000001"
#define B2  "b0000000-0000-4000-8000-000000000002"
#define B3  "b0000000-0000-4000-8000-000000000003"

/* The test's database (fresh per test) and its connection. */
#define exec_ok(c, sql) world_sql_exec(c, sql)
#define num(c, sql)     world_sql_one(c, sql)

static int setup(void **state)
{
    struct world_pg *e = world_pg_new("held", 1);
    if (e->migrations < 9)
        fail_msg("migrate_apply: %d", e->migrations);
    /* not idempotent: an unknown outcome becomes Unknown (21) */
    exec_ok(e->c, "INSERT INTO smsys_account (id, name, provider, max_retries) "
                  "VALUES ('" ACC "', 'a', 'kavenegar', 5)");
    *state = e;
    return 0;
}

/* The invariant: every Queued/Retrying message is held exactly when it has
 * a bulk that is not sending, or belongs to a held chunk. Returns the
 * number of rows that break it. */
#define INVARIANT                                                                                  \
    "SELECT count(*) FROM smsys_message q LEFT JOIN smsys_bulk x ON x.id = q.bulk_id "             \
    "WHERE q.state IN (3, 7) AND q.held IS DISTINCT FROM ("                                        \
    "(q.bulk_id IS NOT NULL AND NOT coalesce(x.sending, false)) OR EXISTS ("                       \
    "SELECT 1 FROM smsys_bulk_member mb WHERE mb.bulk_id = q.bulk_id AND mb.message_id = q.id "    \
    "AND mb.step = 2))"

static void check(struct world_pg *e, const char *step)
{
    long long bad = num(e->c, INVARIANT);
    if (bad != 0)
        fail_msg("after %s: %lld Queued/Retrying rows with a wrong held", step, bad);
}

/* Runs sql (a step), then checks the invariant. */
static void step(struct world_pg *e, const char *sql)
{
    exec_ok(e->c, sql);
    check(e, sql);
}

/* Claims up to lim; returns bulk messages claimed * 1000 + others. */
static long long claim(struct world_pg *e, int lim)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FILTER (WHERE c.idem_key LIKE 'b%%') * 1000 "
             "+ count(*) FILTER (WHERE c.idem_key NOT LIKE 'b%%') "
             "FROM smsys_q_claim('t', NULL, %d, 60000) c",
             lim);
    long long n = num(e->c, sql);
    check(e, "claim");
    return n;
}

/* One send result of kind for the message of member key (bulk B1). */
static void record(struct world_pg *e, const char *key, int kind)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_q_record("
             "ARRAY[(SELECT id FROM smsys_message WHERE idem_key = 'bulk:" B1 ":%s')], "
             "ARRAY[%d::smallint], ARRAY[CASE WHEN %d = 0 THEN 'P%s' END], "
             "ARRAY[CASE WHEN %d = 0 THEN 'P%s' END], ARRAY[NULL::text], ARRAY[0], "
             "ARRAY['test']::text[], 0, 0, 0, 1000, 60)",
             key, kind, kind, key, kind, key);
    step(e, sql);
}

static long long state_of(struct world_pg *e, const char *key)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state FROM smsys_message WHERE idem_key = 'bulk:" B1 ":%s'",
             key);
    return num(e->c, sql);
}

/* smsys_q_enqueue of one message, with or without a bulk. */
static void enqueue(struct world_pg *e, const char *key, const char *bulk)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_q_enqueue(ARRAY['%s'], ARRAY[NULL::uuid], "
             "ARRAY[%s%s%s::uuid], ARRAY['" ACC "'::uuid], ARRAY['s'], ARRAY['+989120000099'], "
             "ARRAY['b'], ARRAY[1], ARRAY[0::smallint], ARRAY[100::smallint], "
             "ARRAY[3::smallint], ARRAY[NULL::text], ARRAY[NULL::timestamptz])",
             key, bulk ? "'" : "", bulk ? bulk : "NULL", bulk ? "'" : "");
    step(e, sql);
}

/* A bulk of account ACC in state Sending with n rendered members k1..kn. */
static void bulk_sending(struct world_pg *e, const char *id, int n)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_bulk_accept('{\"id\":\"%s\",\"account_id\":\"" ACC
             "\",\"body\":\"hi\"}')",
             id);
    step(e, sql);
    snprintf(sql, sizeof(sql), "SELECT smsys_bulk_set_state('%s', 4::smallint, NULL)", id);
    step(e, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO smsys_bulk_member (bulk_id, member_key, entity, member_id, number, "
             "activity_id, body, segments, encoding, step) "
             "SELECT '%s', 'k' || i, 'contact', gen_random_uuid(), "
             "'+98912' || lpad(i::text, 7, '0'), gen_random_uuid(), 'hi', 1, 0, 1 "
             "FROM generate_series(1, %d) i",
             id, n);
    step(e, sql);
}

static long long held_of(struct world_pg *e, const char *key)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT held::int FROM smsys_message WHERE idem_key = 'bulk:" B1 ":%s'", key);
    return num(e->c, sql);
}

/* Every transition that changes whether a bulk's messages may go, with
 * the invariant checked after each one and the claim taking exactly the
 * messages that may go. */
static void test_held_transitions(void **state)
{
    struct world_pg *e = *state;
    bulk_sending(e, B1, 10);
    enqueue(e, "s1", NULL);
    enqueue(e, "s2", NULL);

    /* held chunk k1..k6: never claimed */
    step(e, "SELECT count(*) FROM smsys_bulk_next_chunk('" B1 "', 6, 100::smallint)");
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE held"), 6);
    assert_int_equal(claim(e, 100), 2);

    /* release k1..k4, k5 refused by Dynamics, k6 stays in the held chunk */
    step(e, "SELECT smsys_bulk_release('" B1 "', ARRAY['k1','k2','k3','k4'], ARRAY['k5'], "
            "ARRAY['no'])");
    assert_int_equal(state_of(e, "k5"), 6);
    assert_int_equal(held_of(e, "k6"), 1);
    assert_int_equal(claim(e, 2), 2000); /* k1, k2 in flight */

    /* pause: waiting and in-flight messages held; results bring the
     * in-flight ones back held */
    step(e, "SELECT smsys_bulk_pause('" B1 "')");
    assert_int_equal(held_of(e, "k1"), 1);
    assert_int_equal(claim(e, 100), 0);
    record(e, "k1", 1); /* temporary error: Retrying */
    record(e, "k2", 5); /* never handed over: Queued */
    assert_int_equal(state_of(e, "k1"), 7);
    assert_int_equal(state_of(e, "k2"), 3);
    assert_int_equal(claim(e, 100), 0);

    /* resume: k1..k4 go, the held chunk does not */
    step(e, "SELECT smsys_bulk_resume('" B1 "')");
    assert_int_equal(held_of(e, "k6"), 1);
    assert_int_equal(claim(e, 100), 4000);

    /* k1 Unknown, k2 Failed, k3's lease runs out, k4 stays in flight */
    record(e, "k1", 4);
    record(e, "k2", 2);
    assert_int_equal(state_of(e, "k1"), 21);
    assert_int_equal(state_of(e, "k2"), 6);
    step(e, "UPDATE smsys_message SET lease_until = now() - interval '1 second' "
            "WHERE idem_key = 'bulk:" B1 ":k3'");

    /* quiet hours: the gate closes; reaper, resolve_unknown and the
     * operator's retry bring them back held */
    step(e, "SELECT smsys_bulk_gate_set(false)");
    step(e, "SELECT smsys_q_reap(100)");
    assert_int_equal(state_of(e, "k3"), 3);
    step(e, "SELECT smsys_q_resolve_unknown(ARRAY(SELECT id FROM smsys_message "
            "WHERE idem_key = 'bulk:" B1 ":k1'))");
    assert_int_equal(state_of(e, "k1"), 3);
    step(e, "SELECT smsys_q_retry(NULL, false)");
    assert_int_equal(state_of(e, "k2"), 3);
    assert_int_equal(state_of(e, "k5"), 3); /* refused record: retried, held */
    assert_int_equal(claim(e, 100), 0);

    /* release and a new chunk outside quiet hours: held */
    step(e, "SELECT smsys_bulk_release('" B1 "', ARRAY['k6'], NULL, NULL)");
    assert_int_equal(held_of(e, "k6"), 1);
    step(e, "SELECT count(*) FROM smsys_bulk_next_chunk('" B1 "', 10, 100::smallint)");
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_bulk_member WHERE step = 2"), 4);
    assert_int_equal(claim(e, 100), 0);

    /* the gate opens: everything released goes, the new chunk does not */
    step(e, "SELECT smsys_bulk_gate_set(true)");
    assert_int_equal(claim(e, 100), 5000); /* k1, k2, k3, k5, k6 */

    /* an enqueue with a bulk id takes held from its bulk */
    enqueue(e, "bx1", B1);
    assert_int_equal(num(e->c, "SELECT held::int FROM smsys_message WHERE idem_key = 'bx1'"), 0);
    step(e, "SELECT smsys_bulk_request('" B1 "', 'pause', NULL, 'test')");
    enqueue(e, "bx2", B1);
    assert_int_equal(num(e->c, "SELECT held::int FROM smsys_message WHERE idem_key = 'bx2'"), 1);
    assert_int_equal(claim(e, 100), 0);
    step(e, "SELECT smsys_bulk_request('" B1 "', 'resume', NULL, 'test')");
    assert_int_equal(claim(e, 100), 2000);

    /* engine transitions: a Sending bulk that fails keeps its messages */
    bulk_sending(e, B2, 0);
    enqueue(e, "by1", B2);
    enqueue(e, "by2", B2);
    step(e, "SELECT smsys_bulk_set_state('" B2 "', 8::smallint, 'broken')");
    assert_int_equal(
        num(e->c, "SELECT count(*) FROM smsys_message WHERE bulk_id = '" B2 "' AND held"), 2);
    assert_int_equal(claim(e, 100), 0);

    /* a failed bulk without messages restarts (no message to change) */
    step(e, "SELECT count(*) FROM smsys_bulk_accept('{\"id\":\"" B3 "\",\"account_id\":\"" ACC
            "\"}')");
    step(e, "SELECT smsys_bulk_set_state('" B3 "', 8::smallint, 'x')");
    step(e, "SELECT smsys_bulk_restart('{\"id\":\"" B3 "\",\"account_id\":\"" ACC "\"}')");
    enqueue(e, "bz1", B3); /* Expanding, not sending: held */
    assert_int_equal(num(e->c, "SELECT held::int FROM smsys_message WHERE idem_key = 'bz1'"), 1);
    step(e, "SELECT smsys_bulk_set_state('" B3 "', 4::smallint, NULL)");
    assert_int_equal(claim(e, 100), 1000);

    /* cancel: waiting ones Canceled, the in-flight ones come back held */
    step(e, "SELECT smsys_bulk_cancel('" B1 "')");
    assert_int_equal(
        num(e->c, "SELECT count(*) FROM smsys_message WHERE bulk_id = '" B1 "' AND state = 9"), 4);
    record(e, "k4", 1);
    assert_int_equal(state_of(e, "k4"), 7);
    assert_int_equal(held_of(e, "k4"), 1);
    assert_int_equal(claim(e, 100), 0);
    /* the singles s1, s2 were taken by the very first claim */
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE state = 20 "
                               "AND bulk_id IS NULL"),
                     2);
}

/* 2000 paused bulk messages and 5 ready singles: the claim takes the
 * singles and reads no held row from the ready index. */
static void test_claim_reads_no_held_row(void **state)
{
    struct world_pg *e = *state;
    bulk_sending(e, B1, 2000);
    step(e, "SELECT count(*) FROM smsys_bulk_next_chunk('" B1 "', 2000, 100::smallint)");
    step(e, "SELECT smsys_bulk_release('" B1 "', ARRAY(SELECT 'k' || i FROM "
            "generate_series(1, 2000) i), NULL, NULL)");
    step(e, "SELECT smsys_bulk_pause('" B1 "')");
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof(key), "s%d", i);
        enqueue(e, key, NULL);
    }
    /* the pause left the rows' old versions in the index until vacuum (or
     * the first scan that finds them dead): the steady state is without */
    exec_ok(e->c, "VACUUM smsys_message");
    exec_ok(e->c, "SELECT pg_stat_force_next_flush()");
    exec_ok(e->c, "SELECT pg_stat_clear_snapshot()");
    long long before = num(e->c, "SELECT idx_tup_read FROM pg_stat_user_indexes "
                                 "WHERE indexrelname = 'smsys_message_ready'");
    assert_int_equal(claim(e, 100), 5);
    assert_int_equal(claim(e, 100), 0);
    exec_ok(e->c, "SELECT pg_stat_force_next_flush()");
    exec_ok(e->c, "SELECT pg_stat_clear_snapshot()");
    long long after = num(e->c, "SELECT idx_tup_read FROM pg_stat_user_indexes "
                                "WHERE indexrelname = 'smsys_message_ready'");
    /* 5 rows read (plus none for the empty claim); before 009 each claim
     * walked all 2000 paused rows */
    if (after - before > 10)
        fail_msg("ready index: %lld tuples read by two claims", after - before);
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE held"), 2000);

    step(e, "SELECT smsys_bulk_resume('" B1 "')");
    assert_int_equal(claim(e, 5000), 2000000);
}

/* The two statements that look for every waiting row of a number or an
 * account reach held rows too: the opt-out blocks a held message, and an
 * account-wide error moves held messages to the failover account (held
 * still). */
static void test_optout_and_failover_reach_held(void **state)
{
    struct world_pg *e = *state;
    exec_ok(e->c, "INSERT INTO smsys_account (id, name, provider, failover_order) VALUES "
                  "('cccccccc-0000-4000-8000-000000000003', 'c', 'kavenegar', 2)");
    exec_ok(e->c, "UPDATE smsys_account SET failover_order = 1 WHERE id = '" ACC "'");
    bulk_sending(e, B1, 3);
    step(e, "SELECT count(*) FROM smsys_bulk_next_chunk('" B1 "', 3, 100::smallint)");
    step(e, "SELECT smsys_bulk_release('" B1 "', ARRAY['k1','k2','k3'], NULL, NULL)");
    enqueue(e, "s1", NULL);
    assert_int_equal(claim(e, 1), 1000); /* k1 in flight */
    step(e, "SELECT smsys_bulk_pause('" B1 "')");
    assert_int_equal(held_of(e, "k2"), 1);

    step(e, "SELECT smsys_optout_set('+989120000002', true, 'cli', 't', NULL, NULL)");
    assert_int_equal(state_of(e, "k2"), 10);

    record(e, "k1", 3); /* account-wide: the account pauses, waiting rows move */
    assert_int_equal(num(e->c, "SELECT count(*) FROM smsys_message WHERE account_id = "
                               "'cccccccc-0000-4000-8000-000000000003' AND state IN (3, 7)"),
                     3); /* k1 (back to Queued), k3, s1 */
    assert_int_equal(held_of(e, "k3"), 1);
    assert_int_equal(held_of(e, "k1"), 1);
    assert_int_equal(claim(e, 100), 1); /* s1 only, on the failover account */
}

/* Collects auto_explain's plans (sent as notices). */
struct notes {
    char text[1 << 17];
    size_t len;
};

static void note_cb(void *arg, const char *msg)
{
    struct notes *n = arg;
    size_t l = strlen(msg);
    if (n->len + l + 1 < sizeof(n->text)) {
        memcpy(n->text + n->len, msg, l + 1);
        n->len += l;
    }
}

#define RECEIPT_CALL(tag)                                                                          \
    "PERFORM * FROM smsys_q_receipts('" ACC "', ARRAY['" tag "' || i], ARRAY['" tag "' || i], "    \
    "ARRAY[NULL::text], ARRAY[NULL::bigint], ARRAY[3::smallint], ARRAY[NULL::timestamptz], "       \
    "ARRAY[NULL::text]);"

/* The receipt statements' plans once the receipt table has grown after
 * it was analyzed empty and they were first planned (before 009 the cached
 * generic plan made then kept scanning all of it: seen with sql/001..008): every access to
 * smsys_receipt is an index scan, after thousands of calls. */
static void test_receipt_plan_uses_index(void **state)
{
    struct world_pg *e = *state;
    exec_ok(e->c, "LOAD 'auto_explain'");
    exec_ok(e->c, "SET auto_explain.log_nested_statements = on");
    exec_ok(e->c, "SET auto_explain.log_level = notice");
    exec_ok(e->c, "SET auto_explain.log_min_duration = -1");
    /* analyzed while empty, then planned on a small table */
    exec_ok(e->c, "ANALYZE smsys_receipt");
    exec_ok(e->c, "DO $$ BEGIN FOR i IN 1..20 LOOP " RECEIPT_CALL("a") " END LOOP; END $$");
    exec_ok(e->c, "INSERT INTO smsys_receipt (account_id, provider_id, canon, status, "
                  "message_id, applied_at) SELECT '" ACC "', 'p' || i, 'p' || i, 3, i, now() "
                  "FROM generate_series(1, 50000) i");
    exec_ok(e->c, "DO $$ BEGIN FOR i IN 1..2000 LOOP " RECEIPT_CALL("b") " END LOOP; END $$");

    struct notes *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    PQsetNoticeProcessor(e->c, note_cb, n);
    exec_ok(e->c, "SET auto_explain.log_min_duration = 0");
    exec_ok(e->c, "DO $$ BEGIN FOR i IN 1..1 LOOP " RECEIPT_CALL("c") " END LOOP; END $$");
    PQsetNoticeProcessor(e->c, tdb_quiet, NULL);
    exec_ok(e->c, "SET auto_explain.log_min_duration = -1");

    if (strstr(n->text, "Seq Scan on smsys_receipt"))
        fail_msg("sequential scan of smsys_receipt in:\n%s", n->text);
    assert_non_null(strstr(n->text, "Index Scan using smsys_receipt_pkey on smsys_receipt"));
    assert_non_null(strstr(n->text, "UPDATE smsys_receipt r"));
    free(n);
    assert_int_equal(num(e->c, "SELECT count(*) FROM pg_proc WHERE proname = "
                               "'smsys_q_receipts_unlocked' AND "
                               "'plan_cache_mode=force_custom_plan' = ANY (proconfig)"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_held_transitions, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_claim_reads_no_held_row, setup, world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_optout_and_failover_reach_held, setup,
                                        world_pg_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_plan_uses_index, setup, world_pg_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
