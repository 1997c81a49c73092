/* test_queue_handover.c - the hand-over mark (queue_handing,
 * sql/008_handover.sql) against the real test PostgreSQL: what the reaper
 * does with expired leases that were and were not handed over, which rows
 * a mark may touch, "not handed over" results, and a mark racing the
 * reaper. Each test runs in a fresh database with every sql/ file applied;
 * a blocking side connection inspects, expires leases and holds a mark
 * open in its own transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "../lib/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "world.h"

#define ACC_A "aaaaaaaa-0000-4000-8000-00000000000a" /* no idempotency */
#define ACC_I "dddddddd-0000-4000-8000-00000000000d" /* idempotent provider */
#define OWNER "host:1"

struct env {
    struct world_pg pg; /* fresh per test */
    uv_loop_t loop;
    struct pg_pool *pool;
    struct queue *q;
};

#define exec_ok(c, sql)  world_sql_exec(c, sql)
#define side_int(e, sql) world_sql_int((e)->pg.c, sql)

static long long msg_int(struct env *e, int64_t id, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_message WHERE id = %lld", col, (long long)id);
    return side_int(e, sql);
}

/* 1 when the message's last_error contains needle. */
static int msg_error_has(struct env *e, int64_t id, const char *needle)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_message WHERE id = %lld AND strpos(last_error, '%s') > 0",
             (long long)id, needle);
    return side_int(e, sql) == 1;
}

static int setup(void **state)
{
    static int n;
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    char tag[16];
    snprintf(tag, sizeof(tag), "qh%d", ++n);
    world_pg_open(&e->pg, tag);
    exec_ok(e->pg.c, "INSERT INTO smsys_account (id, name, provider, max_retries, idempotent) "
                     "VALUES ('" ACC_A "', 'A', 'smpp', 2, false), "
                     "('" ACC_I "', 'I', 'kavenegar', 2, true)");
    world_queue_open(&e->loop, e->pg.conninfo, 2, NULL, &e->pool, &e->q);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    world_queue_close(&e->loop, e->pool, e->q);
    world_pg_close(&e->pg);
    free(e);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* n Queued messages of account; their ids into out (in id order). */
static void enqueue(struct env *e, const char *account, const char *tag, int n, int64_t *out)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, "
             "max_retries, state) SELECT '%s'||g, '%s', '+98912000'||lpad(g::text, 4, '0'), "
             "'hi', 1, 2, 3 FROM generate_series(1, %d) g",
             tag, account, n);
    exec_ok(e->pg.c, sql);
    snprintf(sql, sizeof(sql),
             "SELECT id FROM smsys_message WHERE idem_key LIKE '%s%%' ORDER BY id", tag);
    PGresult *r = PQexec(e->pg.c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++)
        out[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
}

struct claim_wait {
    int done, rc;
    size_t n;
    int64_t ids[64];
    int attempts[64];
};

static void claim_cb(int rc, const struct queue_msg *msgs, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct claim_wait *w = ud;
    (void)err;
    w->rc = rc;
    for (size_t i = 0; i < n && i < 64; i++) {
        w->ids[i] = msgs[i].id;
        w->attempts[i] = msgs[i].attempts;
    }
    w->n = n;
    w->done = 1;
}

static size_t claim(struct env *e, const char *account, unsigned limit, unsigned lease_ms,
                    struct claim_wait *w)
{
    memset(w, 0, sizeof(*w));
    const char *acc[1] = {account};
    assert_int_equal(queue_claim(e->q, OWNER, acc, 1, limit, lease_ms, claim_cb, w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
    return w->n;
}

struct mark_wait {
    int done, rc;
    size_t n;
    int64_t ids[64];
};

static void mark_cb(int rc, const int64_t *ids, size_t n, const struct smsys_err *err, void *ud)
{
    struct mark_wait *w = ud;
    if (rc != 0)
        print_message("handing: %s\n", err ? err->detail : "?");
    w->rc = rc;
    for (size_t i = 0; i < n && i < 64; i++)
        w->ids[i] = ids[i];
    w->n = n;
    w->done = 1;
}

/* Marks ids as owner; returns how many the mark answered. */
static size_t mark(struct env *e, const char *owner, const int64_t *ids, size_t n,
                   struct mark_wait *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(queue_handing(e->q, owner, ids, n, mark_cb, w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
    return w->n;
}

static int has_id(const struct mark_wait *w, int64_t id)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ids[i] == id)
            return 1;
    return 0;
}

struct count_wait {
    int done, rc;
    int64_t n;
};

static void count_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct count_wait *w = ud;
    if (rc != 0)
        print_message("count: %s\n", err ? err->detail : "?");
    w->rc = rc;
    w->n = n;
    w->done = 1;
}

static int64_t reap(struct env *e)
{
    struct count_wait w = {0};
    assert_int_equal(queue_reap(e->q, 1000, count_cb, &w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 20000), 0);
    assert_int_equal(w.rc, 0);
    return w.n;
}

/* The claimer "died" an hour ago: every lease ran out. Marks move with
 * their claims (a mark names its claim by owner and lease). */
static void expire_all(struct env *e)
{
    exec_ok(e->pg.c, "UPDATE smsys_message SET lease_until = lease_until - interval '1 hour' "
                     "WHERE state = 20");
    exec_ok(e->pg.c, "UPDATE smsys_handover SET lease_until = lease_until - interval '1 hour'");
}

struct rec_wait {
    int done, rc;
    size_t n;
    struct queue_outcome o[16];
};

static void rec_cb(int rc, const struct queue_outcome *o, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct rec_wait *w = ud;
    if (rc != 0)
        print_message("record: %s\n", err ? err->detail : "?");
    w->rc = rc;
    for (size_t i = 0; i < n && i < 16; i++)
        w->o[i] = o[i];
    w->n = n;
    w->done = 1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ------------------------------------------------------------ */

/* A mark touches only rows InFlight under the caller's own live lease. */
static void test_mark_only_own_live_lease(void **state)
{
    struct env *e = *state;
    int64_t a[6];
    enqueue(e, ACC_A, "own", 6, a);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 4, 60000, &cw), 4); /* a[0..3]; a[4], a[5] stay Queued */
    struct mark_wait mw;
    /* another process's owner name: nothing */
    assert_int_equal(mark(e, "other:2", a, 4, &mw), 0);
    /* rows not InFlight (Queued) and unknown ids: nothing */
    int64_t notmine[3] = {a[4], a[5], a[5] + 1000};
    assert_int_equal(mark(e, OWNER, notmine, 3, &mw), 0);
    /* a[3]'s lease has run out: not marked, even by its owner */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE smsys_message SET lease_until = now() - interval '1 s' WHERE id = %lld",
             (long long)a[3]);
    exec_ok(e->pg.c, sql);
    int64_t mixed[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};
    assert_int_equal(mark(e, OWNER, mixed, 6, &mw), 3);
    assert_true(has_id(&mw, a[0]) && has_id(&mw, a[1]) && has_id(&mw, a[2]));
    assert_false(has_id(&mw, a[3]));
    /* asking again answers the same rows (a lost answer can be repeated) */
    assert_int_equal(mark(e, OWNER, a, 3, &mw), 3);
    /* the mark changes no message: still InFlight, attempts as claimed */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message WHERE state = 20 AND "
                                 "attempts = 1"),
                     4);
    assert_int_equal(
        side_int(e, "SELECT count(*) FROM smsys_message WHERE state = 3 AND attempts = 0"), 2);
    /* bad calls are refused before anything is sent */
    assert_int_equal(queue_handing(e->q, OWNER, a, 0, mark_cb, &mw), -EINVAL);
    assert_int_equal(queue_handing(e->q, NULL, a, 1, mark_cb, &mw), -EINVAL);
    assert_int_equal(queue_handing(e->q, "bad\xff", a, 1, mark_cb, &mw), -EINVAL);
}

/* Expired leases: unmarked rows go back to Queued (attempt given back) and
 * are claimed again; marked ones are Unknown (no idempotency) or Queued
 * (idempotent provider), as before. */
static void test_reap_marked_and_unmarked(void **state)
{
    struct env *e = *state;
    int64_t a[4], i[4];
    enqueue(e, ACC_A, "ra", 4, a);
    enqueue(e, ACC_I, "ri", 4, i);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 4);
    assert_int_equal(claim(e, ACC_I, 10, 60000, &cw), 4);
    struct mark_wait mw;
    assert_int_equal(mark(e, OWNER, a, 2, &mw), 2); /* a[0], a[1] handed over */
    assert_int_equal(mark(e, OWNER, i, 2, &mw), 2); /* i[0], i[1] handed over */
    assert_int_equal(reap(e), 0);                   /* leases still valid */
    expire_all(e);
    assert_int_equal(reap(e), 8);
    for (int k = 0; k < 2; k++) {
        /* handed over, no idempotency: may have arrived, never resent */
        assert_int_equal(msg_int(e, a[k], "state"), QUEUE_UNKNOWN);
        assert_int_equal(msg_int(e, a[k], "attempts"), 1);
        assert_true(msg_error_has(e, a[k], "outcome unknown: not resent to avoid a duplicate"));
        /* handed over, idempotent provider: resent, the attempt counts */
        assert_int_equal(msg_int(e, i[k], "state"), QUEUE_QUEUED);
        assert_int_equal(msg_int(e, i[k], "attempts"), 1);
        assert_true(msg_error_has(e, i[k], "resent (provider deduplicates)"));
    }
    for (int k = 2; k < 4; k++) {
        /* never handed over: back in the queue, the attempt given back */
        assert_int_equal(msg_int(e, a[k], "state"), QUEUE_QUEUED);
        assert_int_equal(msg_int(e, a[k], "attempts"), 0);
        assert_true(msg_error_has(e, a[k], "expired before hand-over"));
        assert_int_equal(msg_int(e, a[k], "(final_at IS NULL)::int"), 1);
        assert_int_equal(msg_int(e, i[k], "state"), QUEUE_QUEUED);
        assert_int_equal(msg_int(e, i[k], "attempts"), 0);
    }
    /* the unmarked ones are claimable again, as a first attempt */
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 2);
    assert_true((cw.ids[0] == a[2] && cw.ids[1] == a[3]) ||
                (cw.ids[0] == a[3] && cw.ids[1] == a[2]));
    assert_int_equal(cw.attempts[0], 1);
    assert_int_equal(cw.attempts[1], 1);
    /* and a new claim starts unmarked: reaping it again queues it again */
    expire_all(e);
    assert_int_equal(reap(e), 2);
    assert_int_equal(msg_int(e, a[2], "state"), QUEUE_QUEUED);
    /* marks nobody needs any more are gone */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_handover"), 0);
}

/* A message marked in an earlier claim and claimed again is unmarked in
 * the new claim: the old mark must not make it look handed over. */
static void test_new_claim_starts_unmarked(void **state)
{
    struct env *e = *state;
    int64_t a[1];
    enqueue(e, ACC_A, "nc", 1, a);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    struct mark_wait mw;
    assert_int_equal(mark(e, OWNER, a, 1, &mw), 1);
    /* the provider said: temporary error; retry at once */
    struct queue_result r = {.id = a[0], .rc = SMSYS_ETEMP, .detail = "busy"};
    struct rec_wait rw = {0};
    assert_int_equal(queue_record_results(e->q, &r, 1, rec_cb, &rw), 0);
    assert_int_equal(tu_run_until(&e->loop, &rw.done, 20000), 0);
    assert_int_equal(rw.rc, 0);
    assert_int_equal(rw.o[0].state, QUEUE_RETRYING);
    exec_ok(e->pg.c, "UPDATE smsys_message SET next_attempt_at = now() - interval '1 s'");
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    assert_int_equal(cw.attempts[0], 2);
    /* killed before this claim was handed over */
    expire_all(e);
    assert_int_equal(reap(e), 1);
    assert_int_equal(msg_int(e, a[0], "state"), QUEUE_QUEUED);
    assert_int_equal(msg_int(e, a[0], "attempts"), 1); /* only the real hand-over counts */
}

/* "Not handed over" results: InFlight rows back to Queued at once with
 * the attempt given back; other results of the same call as before; rows
 * no longer InFlight are left alone. */
static void test_not_handed_over_results(void **state)
{
    struct env *e = *state;
    int64_t a[4];
    enqueue(e, ACC_A, "nh", 4, a);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 4, 60000, &cw), 4);
    struct queue_result r[4] = {
        {.id = a[0],
         .rc = SMSYS_ETEMP,
         .detail = "not handed over: smsysd stopping",
         .not_handed_over = 1},
        {.id = a[1], .rc = 0, .provider_id = "P1"},
        {.id = a[2], .rc = SMSYS_EUNKNOWN, .not_handed_over = 1},
        {.id = a[3], .rc = SMSYS_EPERM, .detail = "bad number"},
    };
    struct rec_wait rw = {0};
    assert_int_equal(queue_record_results(e->q, r, 4, rec_cb, &rw), 0);
    assert_int_equal(tu_run_until(&e->loop, &rw.done, 20000), 0);
    assert_int_equal(rw.rc, 0);
    assert_int_equal(rw.n, 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(rw.o[k].id, a[k]); /* answers in the order asked */
    assert_int_equal(rw.o[0].state, QUEUE_QUEUED);
    assert_int_equal(rw.o[0].attempts, 0);
    assert_int_equal(rw.o[1].state, QUEUE_SENT);
    assert_int_equal(rw.o[2].state, QUEUE_QUEUED); /* never left: no unknown outcome */
    assert_int_equal(rw.o[3].state, QUEUE_FAILED);
    assert_true(msg_error_has(e, a[0], "smsysd stopping"));
    assert_true(msg_error_has(e, a[2], "not handed over"));
    /* a late "not handed over" for a row that is no longer InFlight: no change */
    struct queue_result late = {.id = a[1], .rc = SMSYS_ETEMP, .not_handed_over = 1};
    memset(&rw, 0, sizeof(rw));
    assert_int_equal(queue_record_results(e->q, &late, 1, rec_cb, &rw), 0);
    assert_int_equal(tu_run_until(&e->loop, &rw.done, 20000), 0);
    assert_int_equal(rw.o[0].state, QUEUE_SENT);
    assert_int_equal(msg_int(e, a[1], "attempts"), 1);
    /* the two given back are claimable at once */
    assert_int_equal(claim(e, ACC_A, 4, 60000, &cw), 2);
}

/* A mark still being written while the lease runs out: the reaper skips
 * those rows (they are locked), and once the mark commits it sees it. */
static void test_mark_racing_the_reaper(void **state)
{
    struct env *e = *state;
    int64_t a[3];
    enqueue(e, ACC_A, "race", 3, a);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 3, 1500, &cw), 3);
    char sql[256];
    exec_ok(e->pg.c, "BEGIN");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM smsys_q_handing('{%lld,%lld}', '" OWNER "')",
             (long long)a[0], (long long)a[1]);
    assert_int_equal(side_int(e, sql), 2);
    sleep_ms(1700);               /* the lease runs out while the mark is not committed */
    assert_int_equal(reap(e), 1); /* a[2] only: a[0], a[1] are held by the mark */
    assert_int_equal(msg_int(e, a[2], "state"), QUEUE_QUEUED);
    exec_ok(e->pg.c, "COMMIT");
    assert_int_equal(reap(e), 2);
    assert_int_equal(msg_int(e, a[0], "state"), QUEUE_UNKNOWN);
    assert_int_equal(msg_int(e, a[1], "state"), QUEUE_UNKNOWN);
    /* a mark that comes after the reaper finds nothing of its own left */
    struct mark_wait mw;
    assert_int_equal(mark(e, OWNER, a, 3, &mw), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mark_only_own_live_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap_marked_and_unmarked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_claim_starts_unmarked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_handed_over_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_racing_the_reaper, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
