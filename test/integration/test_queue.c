/* Integration tests for the durable queue (src/queue*.c, src/outbox.c,
 * sql/002_queue.sql) against the real test PostgreSQL. Each test runs in
 * its own fresh database (world_pg_open: smsys_t_q<n>_<pid>, migrated
 * with sql/) dropped afterwards. A blocking side connection
 * plays "another client" to inspect and to tamper (expire leases, kill
 * backends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/smpp_receipt.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "../lib/world.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACC_A "aaaaaaaa-0000-4000-8000-000000000001"
#define ACC_B "bbbbbbbb-0000-4000-8000-000000000002"
#define ACC_C "cccccccc-0000-4000-8000-000000000003"
#define ACC_I "dddddddd-0000-4000-8000-000000000004" /* idempotent provider */

struct env {
    struct world_pg pg; /* fresh per test */
    uv_loop_t loop;
    struct pg_pool *pool;
    struct queue *q;
};

static int g_dbn; /* tests so far: part of the database name and of ids */

#define exec_ok(c, sql) world_sql_exec(c, sql)

static struct queue_opts g_opts = {
    .backoff_base_ms = 1000,
    .backoff_cap_ms = 4000,
    .jitter_pct = 20,
    .pause_ms = 60000,
    .receipt_deadline_s = 3600,
    .leader_heartbeat_ms = 100,
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    char tag[16];
    snprintf(tag, sizeof(tag), "q%d", ++g_dbn);
    world_pg_open(&e->pg, tag);
    exec_ok(e->pg.c, "INSERT INTO smsys_account (id, name, provider, max_retries, failover_order, "
                     "idempotent) VALUES "
                     "('" ACC_A "', 'A', 'smpp', 2, 1, false), "
                     "('" ACC_B "', 'B', 'smpp', 2, 2, false), "
                     "('" ACC_C "', 'C', 'smpp', 2, NULL, false), "
                     "('" ACC_I "', 'I', 'kavenegar', 2, NULL, true)");
    world_queue_open(&e->loop, e->pg.conninfo, 2, &g_opts, &e->pool, &e->q);
    *state = e;
    return 0;
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static void close_pool(uv_loop_t *loop, struct pg_pool *pool)
{
    int closed = 0;
    pg_pool_close(pool, closed_cb, &closed);
    assert_int_equal(tu_run_until(loop, &closed, 10000), 0);
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

/* First column of the first row of a side query, as a long long. */
#define side_int(e, sql) world_sql_int((e)->pg.c, sql)

static char *side_str(struct env *e, const char *sql)
{
    PGresult *r = PQexec(e->pg.c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(e->pg.c));
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long long msg_int(struct env *e, int64_t id, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_message WHERE id = %lld", col, (long long)id);
    return side_int(e, sql);
}

static char *msg_str(struct env *e, int64_t id, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_message WHERE id = %lld", col, (long long)id);
    return side_str(e, sql);
}

struct enq_wait {
    int done, rc;
    size_t n;
    int64_t ids[512];
    int inserted[512];
};

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct enq_wait *w = ud;
    w->rc = rc;
    if (rc != 0)
        print_message("enqueue: %s\n", err ? err->detail : "?");
    for (size_t i = 0; i < n && i < 512; i++) {
        w->ids[i] = res[i].id;
        w->inserted[i] = res[i].inserted;
    }
    w->n = n;
    w->done = 1;
}

static void make_msg(struct queue_new *m, char *key, size_t keylen, char *act, int i,
                     const char *account, const char *tag)
{
    memset(m, 0, sizeof(*m));
    snprintf(key, keylen, "%s-%d", tag, i);
    if (act)
        snprintf(act, 37, "%08x-1111-4111-8111-%012x", (unsigned)i, (unsigned)g_dbn);
    m->idem_key = key;
    m->activity_id = act;
    m->account_id = account;
    m->recipient = "+989121234567";
    m->body = "salam";
    m->segments = 1;
    m->state = QUEUE_QUEUED;
}

/* Enqueues n (<= 512) messages "tag-i" for account; ids into out. */
static void enqueue_n(struct env *e, struct queue *q, const char *account, const char *tag, int n,
                      int with_activity, int64_t *out)
{
    struct queue_new *m = calloc((size_t)n, sizeof(*m));
    char(*keys)[64] = calloc((size_t)n, 64);
    char(*acts)[37] = calloc((size_t)n, 37);
    assert_true(m && keys && acts);
    static int serial;
    for (int i = 0; i < n; i++)
        make_msg(&m[i], keys[i], 64, with_activity ? acts[i] : NULL, ++serial, account, tag);
    struct enq_wait w = {0};
    assert_int_equal(queue_enqueue(q, m, (size_t)n, enq_cb, &w), 0);
    assert_int_equal(w.done, 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 20000), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.n, (size_t)n);
    for (int i = 0; out && i < n; i++)
        out[i] = w.ids[i];
    free(m);
    free(keys);
    free(acts);
}

struct claim_wait {
    int done, rc;
    size_t n;
    int64_t ids[2048];
    int attempts[2048];
};

static void claim_cb(int rc, const struct queue_msg *msgs, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct claim_wait *w = ud;
    w->rc = rc;
    if (rc != 0)
        print_message("claim: %s\n", err ? err->detail : "?");
    for (size_t i = 0; i < n && i < 2048; i++) {
        w->ids[i] = msgs[i].id;
        w->attempts[i] = msgs[i].attempts;
        assert_non_null(msgs[i].body);
        assert_non_null(msgs[i].recipient);
    }
    w->n = n;
    w->done = 1;
}

static size_t claim(struct env *e, const char *account, unsigned limit, unsigned lease_ms,
                    struct claim_wait *w)
{
    memset(w, 0, sizeof(*w));
    const char *acc[1] = {account};
    assert_int_equal(queue_claim(e->q, "test", account ? acc : NULL, account ? 1 : 0, limit,
                                 lease_ms, claim_cb, w),
                     0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
    return w->n;
}

struct rec_wait {
    int done, rc;
    size_t n;
    struct queue_outcome o[512];
};

static void rec_cb(int rc, const struct queue_outcome *o, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct rec_wait *w = ud;
    w->rc = rc;
    if (rc != 0)
        print_message("record: %s\n", err ? err->detail : "?");
    for (size_t i = 0; i < n && i < 512; i++)
        w->o[i] = o[i];
    w->n = n;
    w->done = 1;
}

static void record(struct env *e, const struct queue_result *r, size_t n, struct rec_wait *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(queue_record_results(e->q, r, n, rec_cb, w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
}

static void record1(struct env *e, int64_t id, int rc, const char *pid, const char *detail)
{
    struct queue_result r = {.id = id, .rc = rc, .provider_id = pid, .detail = detail};
    struct rec_wait w;
    record(e, &r, 1, &w);
}

struct count_wait {
    int done, rc;
    int64_t n;
};

static void count_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct count_wait *w = ud;
    w->rc = rc;
    if (rc != 0)
        print_message("count: %s\n", err ? err->detail : "?");
    w->n = n;
    w->done = 1;
}

static int64_t wait_count(struct env *e, struct count_wait *w)
{
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
    return w->n;
}

struct rcpt_wait {
    int done, rc, matched, changed;
};

static void rcpt_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct rcpt_wait *w = ud;
    w->rc = rc;
    if (rc != 0)
        print_message("receipts: %s\n", err ? err->detail : "?");
    w->matched = matched;
    w->changed = changed;
    w->done = 1;
}

static void receipt(struct env *e, const char *account, const char *pid, enum conn_status st,
                    struct rcpt_wait *w)
{
    struct conn_state s = {.provider_id = pid, .status = st, .detail = NULL};
    memset(w, 0, sizeof(*w));
    assert_int_equal(queue_apply_states(e->q, account, &s, 1, rcpt_cb, w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 20000), 0);
    assert_int_equal(w->rc, 0);
}

/* ---- tests ------------------------------------------------------------ */

static void test_enqueue_idempotent(void **state)
{
    struct env *e = *state;
    struct queue_new m[4];
    char keys[4][64], acts[4][37];
    for (int i = 0; i < 3; i++)
        make_msg(&m[i], keys[i], 64, acts[i], 100 + i, ACC_A, "idem");
    /* A row born final: the write-back still carries it to Dynamics. */
    make_msg(&m[3], keys[3], 64, acts[3], 200, NULL, "blocked");
    m[3].state = QUEUE_BLOCKED;
    m[3].recipient = "";
    m[3].last_error = "recipient opted out of SMS";

    struct enq_wait w = {0};
    assert_int_equal(queue_enqueue(e->q, m, 4, enq_cb, &w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 10000), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w.inserted[i], 1);
    int64_t first[4];
    memcpy(first, w.ids, sizeof(first));

    struct enq_wait w2 = {0};
    assert_int_equal(queue_enqueue(e->q, m, 4, enq_cb, &w2), 0);
    assert_int_equal(tu_run_until(&e->loop, &w2.done, 10000), 0);
    assert_int_equal(w2.rc, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w2.inserted[i], 0);
        assert_int_equal(w2.ids[i], first[i]);
    }
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message"), 4);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback"), 4);
    assert_int_equal(side_int(e, "SELECT max(version) FROM smsys_writeback"), 1);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback "
                                 "WHERE fields @> '{\"smsys_status\":3,\"statecode\":0,"
                                 "\"statuscode\":1,\"smsys_attempts\":0}'"),
                     3);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback "
                                 "WHERE fields @> '{\"smsys_status\":10,\"statecode\":2,"
                                 "\"statuscode\":3,\"smsys_lasterror\":\"recipient opted out of "
                                 "SMS\"}'"),
                     1);
    /* A key repeated inside one batch: one row, reported inserted once. */
    make_msg(&m[1], keys[1], 64, NULL, 300, ACC_A, "dup");
    make_msg(&m[2], keys[2], 64, NULL, 300, ACC_A, "dup");
    struct enq_wait w3 = {0};
    assert_int_equal(queue_enqueue(e->q, &m[1], 2, enq_cb, &w3), 0);
    assert_int_equal(tu_run_until(&e->loop, &w3.done, 10000), 0);
    assert_int_equal(w3.inserted[0] + w3.inserted[1], 1);
    assert_int_equal(w3.ids[0], w3.ids[1]);
    /* The user cancels two records: the queued one is canceled, the one
     * already in flight cannot be called back. */
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1); /* the first of the three */
    const char *cancel[2] = {acts[0], acts[1]};
    struct count_wait cc = {0};
    assert_int_equal(queue_cancel(e->q, cancel, 2, count_cb, &cc), 0);
    assert_int_equal(wait_count(e, &cc), 1);
    assert_int_equal(msg_int(e, first[0], "state"), QUEUE_INFLIGHT);
    assert_int_equal(msg_int(e, first[1], "state"), QUEUE_CANCELED);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback WHERE "
                                 "fields @> '{\"smsys_status\":9,\"statecode\":2,"
                                 "\"statuscode\":3}'"),
                     1);
    /* Array-literal escaping: quotes, backslashes, braces, commas, the
     * word NULL and Persian text arrive unchanged; a NULL sender is NULL. */
    static const char tricky[] = "he said \"hi\" \\ {a,b} NULL, سلام دنیا";
    make_msg(&m[0], keys[0], 64, NULL, 400, ACC_A, "esc");
    m[0].body = tricky;
    m[0].sender = "NULL";
    make_msg(&m[1], keys[1], 64, NULL, 401, ACC_A, "esc");
    m[1].body = "";
    struct enq_wait w4 = {0};
    assert_int_equal(queue_enqueue(e->q, m, 2, enq_cb, &w4), 0);
    assert_int_equal(tu_run_until(&e->loop, &w4.done, 10000), 0);
    assert_int_equal(w4.rc, 0);
    char *s = msg_str(e, w4.ids[0], "body");
    assert_string_equal(s, tricky);
    free(s);
    s = msg_str(e, w4.ids[0], "sender");
    assert_string_equal(s, "NULL");
    free(s);
    assert_null(msg_str(e, w4.ids[1], "sender"));
    s = msg_str(e, w4.ids[1], "body");
    assert_string_equal(s, "");
    free(s);
    /* Bad input is refused before anything is sent. */
    m[0].activity_id = "not-a-guid";
    assert_int_equal(queue_enqueue(e->q, m, 1, enq_cb, &w3), -EINVAL);
    make_msg(&m[0], keys[0], 64, NULL, 1, ACC_A, "utf");
    m[0].body = "bad \xff byte";
    assert_int_equal(queue_enqueue(e->q, m, 1, enq_cb, &w3), SMSYS_EUTF8);
}

struct two {
    struct env *e;
    struct queue *q;
    int busy;
    int finished;
    size_t claimed;
    int64_t *ids;
    int err;
};

static void two_claim_cb(int rc, const struct queue_msg *msgs, size_t n,
                         const struct smsys_err *err, void *ud);

static void two_next(struct two *t)
{
    if (queue_claim(t->q, "proc", NULL, 0, 50, 60000, two_claim_cb, t) != 0)
        t->err = 1;
}

static void two_claim_cb(int rc, const struct queue_msg *msgs, size_t n,
                         const struct smsys_err *err, void *ud)
{
    struct two *t = ud;
    (void)err;
    if (rc != 0) {
        t->err = 1;
        t->finished = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        t->ids[t->claimed++] = msgs[i].id;
    if (n == 0)
        t->finished = 1;
    else
        two_next(t);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_claim_two_pools_disjoint(void **state)
{
    struct env *e = *state;
    enum { N = 2000 };
    for (int i = 0; i < N / 500; i++)
        enqueue_n(e, e->q, i % 2 ? ACC_A : ACC_B, "two", 500, 0, NULL);
    struct pg_pool *pool2;
    struct queue *q2;
    assert_int_equal(pg_pool_new(&e->loop, e->pg.conninfo, 2, &pool2), 0);
    assert_int_equal(queue_new(&e->loop, pool2, &g_opts, &q2), 0);
    int64_t *all = calloc(2 * N, sizeof(int64_t));
    assert_non_null(all);
    struct two t1 = {.e = e, .q = e->q, .ids = all};
    struct two t2 = {.e = e, .q = q2, .ids = all + N};
    two_next(&t1);
    two_next(&t2);
    int both = 0;
    uint64_t end = util_now_ms() + 30000;
    while (!both && util_now_ms() < end) {
        uv_run(&e->loop, UV_RUN_ONCE);
        both = t1.finished && t2.finished;
    }
    assert_true(both);
    assert_false(t1.err || t2.err);
    print_message("claimed by pool 1: %zu, by pool 2: %zu\n", t1.claimed, t2.claimed);
    assert_int_equal(t1.claimed + t2.claimed, N);
    assert_true(t1.claimed > 0 && t2.claimed > 0);
    memcpy(all + t1.claimed, all + N, t2.claimed * sizeof(int64_t));
    qsort(all, N, sizeof(int64_t), cmp64);
    for (int i = 1; i < N; i++)
        assert_true(all[i] != all[i - 1]); /* disjoint: nobody claimed a row twice */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message WHERE state = 20 "
                                 "AND attempts = 1"),
                     N);
    free(all);
    close_pool(&e->loop, pool2);
    queue_free(q2);
}

static void test_results_each_class(void **state)
{
    struct env *e = *state;
    int64_t id[6];
    enqueue_n(e, e->q, ACC_C, "res", 5, 1, id);
    enqueue_n(e, e->q, ACC_I, "resi", 1, 1, id + 5);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_C, 10, 60000, &cw), 5);
    assert_int_equal(claim(e, ACC_I, 10, 60000, &cw), 1);
    struct queue_result r[6] = {
        {.id = id[0], .rc = 0, .provider_id = "MSG-0001", .segments = 2},
        {.id = id[1], .rc = SMSYS_ETEMP, .detail = "HTTP 503"},
        {.id = id[2], .rc = SMSYS_EPERM, .detail = "invalid number (code 104)"},
        {.id = id[3], .rc = SMSYS_EUNKNOWN, .detail = "timeout after request sent"},
        {.id = id[4], .rc = SMSYS_EACCOUNT, .detail = "no credit (418)"},
        {.id = id[5], .rc = SMSYS_EUNKNOWN, .detail = "connection cut"},
    };
    struct rec_wait w;
    int64_t before = util_wall_us();
    record(e, r, 6, &w);
    int64_t after = util_wall_us();
    assert_int_equal(w.n, 6);
    assert_int_equal(w.o[0].state, QUEUE_SENT);
    assert_int_equal(w.o[1].state, QUEUE_RETRYING);
    assert_int_equal(w.o[2].state, QUEUE_FAILED);
    assert_int_equal(w.o[3].state, QUEUE_UNKNOWN);
    assert_int_equal(w.o[4].state, QUEUE_QUEUED);
    assert_int_equal(w.o[5].state, QUEUE_QUEUED); /* idempotent provider: resend is safe */
    assert_int_equal(w.o[0].attempts, 1);
    assert_int_equal(w.o[4].attempts, 0); /* account-wide does not use up an attempt */
    /* temporary: first delay in [base * 0.8, base]. It was recorded at some
     * time in [before, after], so the delay lies in [next - after, next -
     * before]: bounded that way, however long the record took (the upper
     * bound used to be next - before, which a slow record overstepped). */
    int64_t next1 = w.o[1].next_attempt_us;
    assert_true(next1 - before >= 790000 && next1 - after <= 1010000);

    char *s = msg_str(e, id[0],
                      "provider_id || '/' || provider_id_canon || '/' || segments || "
                      "'/' || (sent_at IS NOT NULL) || '/' || (receipt_deadline > now())");
    assert_string_equal(s, "MSG-0001/msg-0001/2/true/true");
    free(s);
    s = msg_str(e, id[2], "last_error");
    assert_string_equal(s, "invalid number (code 104)");
    free(s);
    s = msg_str(e, id[3], "last_error");
    assert_string_equal(s, "outcome unknown: not resent to avoid a duplicate (timeout after "
                           "request sent)");
    free(s);
    /* account-wide: the account is paused, with the reason */
    s = side_str(e, "SELECT pause_reason || '/' || (paused_until > now() + interval '50 s') "
                    "FROM smsys_account WHERE id = '" ACC_C "'");
    assert_string_equal(s, "no credit (418)/true");
    free(s);
    /* Dynamics sees Unknown as Failed (someone must decide), with the reason */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT fields->>'smsys_status' || '/' || (fields->>'smsys_lasterror' LIKE "
             "'outcome unknown%%') FROM smsys_writeback w JOIN smsys_message m "
             "ON m.activity_id = w.activity_id WHERE m.id = %lld",
             (long long)id[3]);
    s = side_str(e, sql);
    assert_string_equal(s, "6/true");
    free(s);
    /* A late result never moves a message backwards. */
    record1(e, id[0], SMSYS_ETEMP, NULL, "late");
    assert_int_equal(msg_int(e, id[0], "state"), QUEUE_SENT);
}

static void test_retries_then_failed(void **state)
{
    struct env *e = *state;
    int64_t id;
    enqueue_n(e, e->q, ACC_A, "retry", 1, 1, &id); /* max_retries 2: 3 attempts */
    struct claim_wait cw;
    int64_t prev_delay = 0;
    for (int attempt = 1; attempt <= 3; attempt++) {
        exec_ok(e->pg.c, "UPDATE smsys_message SET next_attempt_at = now()");
        assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 1);
        assert_int_equal(cw.attempts[0], attempt);
        int64_t before = util_wall_us();
        struct queue_result r = {.id = id, .rc = SMSYS_ETHROTTLED, .detail = "ESME_RTHROTTLED"};
        struct rec_wait w;
        record(e, &r, 1, &w);
        int64_t after = util_wall_us();
        if (attempt < 3) {
            assert_int_equal(w.o[0].state, QUEUE_RETRYING);
            /* the delay lies in [lo, hi] (recorded between before and after) */
            int64_t hi = w.o[0].next_attempt_us - before, lo = w.o[0].next_attempt_us - after;
            int64_t full = 1000000LL << (attempt - 1); /* base 1 s, doubling */
            assert_true(hi >= full * 8 / 10 - 20000 && lo <= full + 20000);
            assert_true(hi > prev_delay); /* grows: more than the last one's lower bound */
            prev_delay = lo;
        } else {
            assert_int_equal(w.o[0].state, QUEUE_FAILED);
            assert_int_equal(w.o[0].attempts, 3);
        }
    }
    char *s = msg_str(e, id, "last_error");
    assert_string_equal(s, "retries used up: ESME_RTHROTTLED");
    free(s);
    exec_ok(e->pg.c, "UPDATE smsys_message SET next_attempt_at = now()");
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 0);
    /* The cap: attempt 4 would be 8 s but the cap is 4 s. */
    exec_ok(e->pg.c, "UPDATE smsys_message SET state = 20, attempts = 4, max_retries = 9");
    struct queue_result r = {.id = id, .rc = SMSYS_ETEMP};
    struct rec_wait w;
    record(e, &r, 1, &w);
    int64_t after = util_wall_us(); /* recorded before this: the delay is at most next - after */
    assert_true(w.o[0].next_attempt_us - after <= 4010000);
    /* operator retry: Failed -> Queued with a fresh budget */
    exec_ok(e->pg.c, "UPDATE smsys_message SET state = 6, final_at = now()");
    struct count_wait c = {0};
    assert_int_equal(queue_retry_failed(e->q, util_wall_us() - 60000000, 0, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    assert_int_equal(msg_int(e, id, "state"), QUEUE_QUEUED);
    assert_int_equal(msg_int(e, id, "attempts"), 0);
    assert_int_equal(msg_int(e, id, "max_retries"), 2);
}

static void test_pause_and_failover(void **state)
{
    struct env *e = *state;
    int64_t a[5], c[3];
    enqueue_n(e, e->q, ACC_A, "fa", 5, 0, a);
    enqueue_n(e, e->q, ACC_C, "fc", 3, 0, c);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    record1(e, cw.ids[0], SMSYS_EACCOUNT, NULL, "bad credentials");
    /* A is paused; its ready messages moved to B (next in failover order),
     * including the one that hit the error, with its attempt given back. */
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 0);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message WHERE account_id = '" ACC_B
                                 "' AND state = 3 AND attempts = 0"),
                     5);
    assert_int_equal(claim(e, ACC_B, 10, 60000, &cw), 5);

    /* C has no failover: paused, its messages stay and wait. */
    assert_int_equal(claim(e, ACC_C, 1, 60000, &cw), 1);
    record1(e, cw.ids[0], SMSYS_EACCOUNT, "", "account disabled");
    assert_int_equal(claim(e, ACC_C, 10, 60000, &cw), 0);
    assert_int_equal(claim(e, NULL, 10, 60000, &cw), 0); /* "all accounts" skips it too */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message WHERE account_id = '" ACC_C
                                 "' AND state = 3"),
                     3);
    exec_ok(e->pg.c,
            "UPDATE smsys_account SET paused_until = now() - interval '1 s' WHERE id = '" ACC_C
            "'");
    assert_int_equal(claim(e, ACC_C, 10, 60000, &cw), 3);
    (void)a, (void)c;
}

static void test_receipts_forward_only(void **state)
{
    struct env *e = *state;
    int64_t id[4];
    enqueue_n(e, e->q, ACC_A, "rc", 4, 1, id);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 4);
    struct queue_result r[3] = {
        {.id = id[0], .provider_id = "1A2B"}, /* hex from submit_sm_resp */
        {.id = id[1], .provider_id = "000777"},
        {.id = id[2], .provider_id = "AbC-9"},
    };
    struct rec_wait w;
    record(e, r, 3, &w);
    struct rcpt_wait rw;
    /* Delivered, reported in decimal (0x1A2B = 6699) */
    receipt(e, ACC_A, "6699", CONN_ST_DELIVERED, &rw);
    assert_int_equal(rw.matched, 1);
    assert_int_equal(rw.changed, 1);
    assert_int_equal(msg_int(e, id[0], "state"), QUEUE_DELIVERED);
    /* a late Sent never overwrites Delivered; a final state never changes */
    receipt(e, ACC_A, "1a2b", CONN_ST_SENT, &rw);
    assert_int_equal(rw.matched, 1);
    assert_int_equal(rw.changed, 0);
    receipt(e, ACC_A, "6699", CONN_ST_UNDELIVERED, &rw);
    assert_int_equal(rw.changed, 0);
    assert_int_equal(msg_int(e, id[0], "state"), QUEUE_DELIVERED);
    assert_int_equal(msg_int(e, id[0], "delivered_at IS NOT NULL::int"), 1);
    /* leading zeros and case */
    receipt(e, ACC_A, "777", CONN_ST_UNDELIVERED, &rw);
    assert_int_equal(msg_int(e, id[1], "state"), QUEUE_FAILED);
    char *s = msg_str(e, id[1], "last_error");
    assert_string_equal(s, "delivery failed (undelivered)");
    free(s);
    receipt(e, ACC_A, "abc-9", CONN_ST_SENT, &rw);
    assert_int_equal(rw.changed, 0); /* already Sent: equal rank is no change */
    receipt(e, ACC_A, "ABC-9", CONN_ST_DELIVERED, &rw);
    assert_int_equal(msg_int(e, id[2], "state"), QUEUE_DELIVERED);
    /* another account's receipt never matches */
    receipt(e, ACC_B, "777", CONN_ST_DELIVERED, &rw);
    assert_int_equal(rw.matched, 0);

    /* Early receipt: arrives before the submit result is recorded. */
    receipt(e, ACC_A, "4660", CONN_ST_DELIVERED, &rw); /* 0x1234 */
    assert_int_equal(rw.matched, 0);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_receipt WHERE message_id IS NULL"), 2);
    record1(e, id[3], 0, "00001234", NULL);
    assert_int_equal(msg_int(e, id[3], "state"), QUEUE_DELIVERED);
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM smsys_receipt WHERE message_id = %lld",
             (long long)id[3]);
    assert_int_equal(side_int(e, sql), 1);

    /* canonical forms */
    char canon[128], alt[128];
    assert_int_equal(queue_msgid_canon(" 0x", canon, sizeof(canon), alt, sizeof(alt)), 0);
    assert_string_equal(canon, "0x");
    assert_int_equal(queue_msgid_canon("10", canon, sizeof(canon), alt, sizeof(alt)), 0);
    assert_string_equal(canon, "10");
    assert_string_equal(alt, "16");
    assert_int_equal(queue_msgid_canon("ff", canon, sizeof(canon), alt, sizeof(alt)), 0);
    assert_string_equal(canon, "255");
    assert_string_equal(alt, "");
    assert_int_equal(queue_msgid_canon("", canon, sizeof(canon), alt, sizeof(alt)), -EINVAL);
}

/* One message-id rule (src/msgid.c) behind smpp_msgid_canon, which the
 * SMPP connector matches with in memory, and queue_msgid_canon, whose
 * bare forms the SQL side stores and compares (smsys_q_receipts). For
 * every pair: the tagged and bare forms agree, PostgreSQL stores exactly
 * the C form, and the receipt matches in SQL exactly when
 * smpp_msgid_match says so. */
static void test_msgid_c_and_sql_agree(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *sent, *reported;
        int match;
    } tab[] = {
        {"1A2B", "6699", 1},     /* hex answered, decimal reported */
        {"1a2b", "1A2B", 1},     /* case */
        {"00001A2B", "6699", 1}, /* leading zeros on hex */
        {"0x1A2B", "6699", 1},   /* 0x prefix */
        {"006699", "6699", 1},   /* leading zeros on decimal */
        {" 6699 ", "6699", 1},   /* blanks */
        {"1234", "4660", 1},     /* letter-free hex: the alt reading */
        {"4660", "1234", 1},
        {"777", "0x777", 1}, /* 0x777 = 1911 = "777" read as hex */
        {"99", "100", 0},
        {"1A2B", "6698", 0},
        {"5", "05", 1},
        {"ffffffffffffffffffffffffffffffff", "340282366920938463463374607431768211455", 1},
        {"0123456789012345678901234", "123456789012345678901234", 1}, /* > 64 bits */
        {"123456789012345678901234", "123456789012345678901235", 0},
        {"0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e", 1},
        {"0f8fad5b-d9cb-469f-a165-70867728950e", "f8fad5b-d9cb-469f-a165-70867728950e", 0},
        {"AbC-9", "abc-9", 1},
        {"0x", "0X", 1}, /* no digits after 0x: a string */
        {"abc-1", "abc-2", 0},
    };
    enum { N = (int)(sizeof(tab) / sizeof(tab[0])) };
    int64_t id[N];
    enqueue_n(e, e->q, ACC_A, "canon", N, 1, id);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 50, 60000, &cw), N);
    for (int i = 0; i < N; i++) {
        const char *ids[2] = {tab[i].sent, tab[i].reported};
        for (int k = 0; k < 2; k++) {
            struct smpp_msgid_canon t;
            char canon[128], alt[128];
            assert_int_equal(smpp_msgid_canon(ids[k], &t), 0);
            assert_int_equal(queue_msgid_canon(ids[k], canon, sizeof(canon), alt, sizeof(alt)), 0);
            assert_string_equal(t.primary + 2, canon);
            assert_string_equal(alt[0] ? t.alt + 2 : t.alt, alt);
        }
        assert_int_equal(smpp_msgid_match(tab[i].sent, tab[i].reported) > 0, tab[i].match);

        record1(e, id[i], 0, tab[i].sent, NULL);
        char canon[128], alt[128];
        queue_msgid_canon(tab[i].sent, canon, sizeof(canon), alt, sizeof(alt));
        char *stored = msg_str(e, id[i], "provider_id_canon");
        assert_string_equal(stored, canon);
        free(stored);
        stored = msg_str(e, id[i], "coalesce(provider_id_alt, '')");
        assert_string_equal(stored, alt);
        free(stored);

        struct rcpt_wait rw;
        receipt(e, ACC_A, tab[i].reported, CONN_ST_DELIVERED, &rw);
        if (rw.matched != tab[i].match)
            print_message("row %d: %s ~ %s\n", i, tab[i].sent, tab[i].reported);
        assert_int_equal(rw.matched, tab[i].match);
        assert_int_equal(msg_int(e, id[i], "state"), tab[i].match ? QUEUE_DELIVERED : QUEUE_SENT);
        /* Out of the way of the next rows: no candidates, no early receipts. */
        exec_ok(e->pg.c, "UPDATE smsys_message SET provider_id_canon = NULL, "
                         "provider_id_alt = NULL");
        exec_ok(e->pg.c, "DELETE FROM smsys_receipt");
    }
    /* The queue takes ids up to 100 characters (HTTP panels); SMPP's
     * limit is 65, the longest id an SMSC may send. */
    char long_id[101], canon[128], alt[128];
    memset(long_id, 'k', 100);
    long_id[100] = '\0';
    assert_int_equal(queue_msgid_canon(long_id, canon, sizeof(canon), alt, sizeof(alt)), 0);
    struct smpp_msgid_canon t;
    assert_int_equal(smpp_msgid_canon(long_id, &t), -EINVAL);
    memset(long_id, 'f', 100); /* 100 hex digits: 121 decimal digits, exact */
    assert_int_equal(queue_msgid_canon(long_id, canon, sizeof(canon), alt, sizeof(alt)), 0);
    assert_int_equal(strlen(canon), 121);
    assert_int_equal(strncmp(canon, "2582249878086908589", 19), 0);
}

static void test_reap_expired_leases(void **state)
{
    struct env *e = *state;
    int64_t a[3], i[2];
    enqueue_n(e, e->q, ACC_A, "reapa", 3, 1, a);
    enqueue_n(e, e->q, ACC_I, "reapi", 2, 1, i);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 3);
    assert_int_equal(claim(e, ACC_I, 10, 60000, &cw), 2);
    struct count_wait c = {0};
    assert_int_equal(queue_reap(e->q, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0); /* leases still valid */
    /* all were handed to the connector (the hand-over mark, 008) ... */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_q_handing((SELECT array_agg(id) "
                                 "FROM smsys_message WHERE state = 20), 'test')"),
                     5);
    /* ... then the claimer "crashed": its leases run out (marks move along) */
    exec_ok(e->pg.c, "UPDATE smsys_message SET lease_until = lease_until - interval '1 hour' "
                     "WHERE state = 20");
    exec_ok(e->pg.c, "UPDATE smsys_handover SET lease_until = lease_until - interval '1 hour'");
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_reap(e->q, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 5);
    for (int k = 0; k < 3; k++)
        assert_int_equal(msg_int(e, a[k], "state"), QUEUE_UNKNOWN); /* never a blind resend */
    for (int k = 0; k < 2; k++)
        assert_int_equal(msg_int(e, i[k], "state"), QUEUE_QUEUED);
    char *s = msg_str(e, a[0], "last_error");
    assert_non_null(strstr(s, "outcome unknown: not resent to avoid a duplicate"));
    free(s);
    assert_int_equal(claim(e, ACC_A, 10, 60000, &cw), 0);
    assert_int_equal(claim(e, ACC_I, 10, 60000, &cw), 2);
    assert_int_equal(cw.attempts[0], 2);
    /* a late accepted result still resolves an unknown outcome */
    record1(e, a[0], 0, "99", NULL);
    assert_int_equal(msg_int(e, a[0], "state"), QUEUE_SENT);
    /* a receipt carrying our own id resolves another one */
    char our[24];
    snprintf(our, sizeof(our), "%lld", (long long)a[2]);
    struct conn_state st[2] = {
        {.provider_id = "zz-1", .our_id = our, .status = CONN_ST_DELIVERED},
        {.provider_id = NULL, .our_id = NULL, .status = CONN_ST_SENT}, /* unusable: kept */
    };
    struct rcpt_wait rw = {0};
    assert_int_equal(queue_apply_states(e->q, ACC_A, st, 2, rcpt_cb, &rw), 0);
    assert_int_equal(tu_run_until(&e->loop, &rw.done, 10000), 0);
    assert_int_equal(rw.rc, 0);
    assert_int_equal(rw.matched, 1);
    assert_int_equal(rw.changed, 1);
    assert_int_equal(msg_int(e, a[2], "state"), QUEUE_DELIVERED);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_receipt"), 2);
    /* a status lookup proved a[1] never arrived: resend; a[0] is Sent: untouched */
    int64_t both[2] = {a[0], a[1]};
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_resolve_unknown(e->q, both, 2, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    assert_int_equal(msg_int(e, a[1], "state"), QUEUE_QUEUED);
    assert_int_equal(msg_int(e, a[0], "state"), QUEUE_SENT);
    /* nothing Unknown is left for the operator */
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_retry_failed(e->q, 0, 1, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0);
}

struct ob_wait {
    int done, rc;
    size_t n;
    char act[8][37];
    char fields[8][1024];
    int64_t version[8];
};

static void ob_cb(int rc, const struct queue_wb *rows, size_t n, const struct smsys_err *err,
                  void *ud)
{
    struct ob_wait *w = ud;
    (void)err;
    w->rc = rc;
    w->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(w->act[i], 37, "%s", rows[i].activity_id);
        snprintf(w->fields[i], 1024, "%s", rows[i].fields);
        w->version[i] = rows[i].version;
    }
    w->done = 1;
}

static void test_outbox_coalescing(void **state)
{
    struct env *e = *state;
    int64_t id;
    enqueue_n(e, e->q, ACC_A, "ob", 1, 1, &id);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    record1(e, id, SMSYS_ETEMP, NULL, "HTTP 502");
    exec_ok(e->pg.c, "UPDATE smsys_message SET next_attempt_at = now()");
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    record1(e, id, 0, "42", NULL);
    struct rcpt_wait rw;
    receipt(e, ACC_A, "42", CONN_ST_DELIVERED, &rw);
    /* Queued, Retrying, Sent, Delivered: one row with the latest state */
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback"), 1);
    struct ob_wait w = {0};
    assert_int_equal(outbox_take(e->q, 10, ob_cb, &w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 10000), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.version[0], 4);
    assert_non_null(strstr(w.fields[0], "\"smsys_status\": 5"));
    assert_non_null(strstr(w.fields[0], "\"statecode\": 1"));
    assert_non_null(strstr(w.fields[0], "\"statuscode\": 2"));
    assert_non_null(strstr(w.fields[0], "\"smsys_attempts\": 2"));
    assert_non_null(strstr(w.fields[0], "\"smsys_providermessageid\": \"42\""));
    assert_non_null(strstr(w.fields[0], "\"smsys_lasterror\": null"));
    assert_non_null(strstr(w.fields[0], "\"smsys_deliveredat\": \"20"));
    assert_non_null(strstr(w.fields[0], "Z\""));

    /* a change lands while the writer is writing: the stale ack keeps it */
    exec_ok(e->pg.c, "SELECT smsys_q_wb(array_agg(id)) FROM smsys_message");
    struct queue_wb_ack ack = {.activity_id = w.act[0], .version = w.version[0]};
    struct count_wait c = {0};
    assert_int_equal(outbox_done(e->q, &ack, 1, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback"), 1);
    /* the writer fails: the row waits with backoff and the error */
    memset(&c, 0, sizeof(c));
    assert_int_equal(outbox_failed(e->q, &ack, 1, "HTTP 503 from Dataverse", count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    char *s = side_str(e, "SELECT last_error || '/' || attempts || '/' || "
                          "(next_attempt_at > now() + interval '0.7 s') FROM smsys_writeback");
    assert_string_equal(s, "HTTP 503 from Dataverse/1/true");
    free(s);
    memset(&w, 0, sizeof(w));
    assert_int_equal(outbox_take(e->q, 10, ob_cb, &w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 10000), 0);
    assert_int_equal(w.n, 0); /* not due yet */
    exec_ok(e->pg.c, "UPDATE smsys_writeback SET next_attempt_at = now()");
    memset(&w, 0, sizeof(w));
    assert_int_equal(outbox_take(e->q, 10, ob_cb, &w), 0);
    assert_int_equal(tu_run_until(&e->loop, &w.done, 10000), 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.version[0], 5);
    ack.activity_id = w.act[0];
    ack.version = w.version[0];
    memset(&c, 0, sizeof(c));
    assert_int_equal(outbox_done(e->q, &ack, 1, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback"), 0);
}

static void test_statecode_mapping(void **state)
{
    struct env *e = *state;
    int64_t id;
    enqueue_n(e, e->q, ACC_A, "map", 1, 1, &id);
    static const struct {
        int state, status, statecode, statuscode;
    } map[] = {
        {3, 3, 0, 1}, {4, 4, 0, 1},   {7, 7, 0, 1},  {5, 5, 1, 2},  {6, 6, 2, 3},
        {9, 9, 2, 3}, {10, 10, 2, 3}, {20, 3, 0, 1}, {21, 6, 2, 3},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        char sql[400];
        snprintf(sql, sizeof(sql),
                 "UPDATE smsys_message SET state = %d WHERE id = %lld; SELECT "
                 "smsys_q_wb(ARRAY[%lld::bigint])",
                 map[i].state, (long long)id, (long long)id);
        exec_ok(e->pg.c, sql);
        long long v = side_int(e, "SELECT (fields->>'smsys_status')::int * 10000 + "
                                  "(fields->>'statecode')::int * 100 + "
                                  "(fields->>'statuscode')::int FROM smsys_writeback");
        assert_int_equal(v, map[i].status * 10000 + map[i].statecode * 100 + map[i].statuscode);
    }
}

static void test_lasterror_persian_cut(void **state)
{
    struct env *e = *state;
    /* 2500 Persian characters (2 bytes each) and a stray invalid byte */
    size_t len = 0;
    char *big = malloc(2500 * 2 + 8);
    assert_non_null(big);
    big[len++] = '\xff';
    for (int i = 0; i < 2500; i++) {
        const char *ch = (i % 2) ? "\xd8\xb3" : "\xd9\x84"; /* س ل */
        memcpy(big + len, ch, 2);
        len += 2;
    }
    big[len] = '\0';
    char out[4 * QUEUE_LASTERROR_MAX + 1];
    size_t n = queue_text_clean(big, QUEUE_LASTERROR_MAX, out, sizeof(out));
    assert_int_equal(n, 3 + 1999 * 2); /* U+FFFD, then 1999 whole characters */
    /* a small buffer cuts at a character boundary, never inside one */
    char small[8];
    assert_int_equal(queue_text_clean(big + 1, 100, small, sizeof(small)), 6);
    assert_int_equal(queue_text_clean(big + 1, 2, small, sizeof(small)), 4);

    int64_t id;
    enqueue_n(e, e->q, ACC_A, "fa", 1, 1, &id);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    record1(e, id, SMSYS_EPERM, NULL, big + 1);
    assert_int_equal(side_int(e, "SELECT char_length(fields->>'smsys_lasterror') FROM "
                                 "smsys_writeback"),
                     QUEUE_LASTERROR_MAX);
    assert_int_equal(side_int(e, "SELECT octet_length(fields->>'smsys_lasterror') FROM "
                                 "smsys_writeback"),
                     2 * QUEUE_LASTERROR_MAX);
    /* retries used up: the prefix pushes it over; the write-back still cuts */
    exec_ok(e->pg.c, "UPDATE smsys_message SET state = 20, attempts = 9");
    record1(e, id, SMSYS_ETEMP, NULL, big);
    char *s = side_str(e, "SELECT char_length(fields->>'smsys_lasterror') || '/' || "
                          "(fields->>'smsys_lasterror' LIKE 'retries used up: ' || chr(65533) || "
                          "'%') FROM smsys_writeback");
    assert_string_equal(s, "2000/true");
    free(s);
    free(big);
}

struct lead_wait {
    int done, rc, lost;
    struct queue_leader *ld;
};

static void lead_cb(int rc, struct queue_leader *ld, const struct smsys_err *err, void *ud)
{
    struct lead_wait *w = ud;
    (void)err;
    w->rc = rc;
    w->ld = ld;
    w->done = 1;
}

static void lost_cb(struct queue_leader *ld, void *ud)
{
    struct lead_wait *w = ud;
    assert_ptr_equal(ld, w->ld);
    w->lost++;
}

static void lead_try(struct env *e, struct queue *q, struct lead_wait *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(queue_leader_try(q, "poller:dataverse", lead_cb, lost_cb, w), 0);
    assert_int_equal(w->done, 0);
    assert_int_equal(tu_run_until(&e->loop, &w->done, 10000), 0);
    assert_int_equal(w->rc, 0);
}

static void test_leader_election(void **state)
{
    struct env *e = *state;
    struct pg_pool *pool2;
    struct queue *q2;
    assert_int_equal(pg_pool_new(&e->loop, e->pg.conninfo, 2, &pool2), 0);
    assert_int_equal(queue_new(&e->loop, pool2, &g_opts, &q2), 0);
    struct lead_wait w1, w2;
    lead_try(e, e->q, &w1);
    assert_non_null(w1.ld);
    lead_try(e, q2, &w2);
    assert_null(w2.ld); /* someone else holds it */
    lead_try(e, e->q, &w2);
    assert_null(w2.ld); /* even from the same pool: a second session */

    /* the holder's session dies: it hears so, and the other one takes over */
    /* this test's database only: another suite's leader is not ours to kill */
    long long pid = side_int(e, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND database = (SELECT oid FROM pg_database WHERE datname = "
                                "current_database())");
    assert_true(pid > 0);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", pid);
    exec_ok(e->pg.c, sql);
    assert_int_equal(tu_run_until(&e->loop, &w1.lost, 10000), 0);
    assert_int_equal(w1.lost, 1);
    queue_leader_release(w1.ld);
    lead_try(e, q2, &w2);
    assert_non_null(w2.ld);
    /* a clean release hands it on at once: once its unlock has run (the
     * loop runs until PostgreSQL shows the job's lock free; a fixed
     * 200 ms could end before the unlock on a loaded machine) */
    queue_leader_release(w2.ld);
    assert_int_equal(world_loop_wait_sql(&e->loop, e->pg.c,
                                         "SELECT count(*) FROM pg_locks WHERE locktype = "
                                         "'advisory' AND database = (SELECT oid FROM "
                                         "pg_database WHERE datname = current_database()) "
                                         "AND objsubid = 1 AND ((classid::bigint << "
                                         "32) | objid::bigint) = hashtextextended('smsys:' || "
                                         "'poller:dataverse', 0)",
                                         0, 10000),
                     0);
    lead_try(e, e->q, &w1);
    assert_non_null(w1.ld);
    queue_leader_release(w1.ld);
    assert_int_equal(w2.lost, 0);
    close_pool(&e->loop, pool2);
    queue_free(q2);
}

struct note {
    int ready;
    int got;
    char payload[64];
};

static void note_cb(const char *channel, const char *payload, void *ud)
{
    struct note *n = ud;
    assert_string_equal(channel, QUEUE_CHANNEL);
    if (payload == NULL) {
        n->ready = 1;
        return;
    }
    snprintf(n->payload, sizeof(n->payload), "%s", payload);
    n->got++;
}

static void test_notify_on_enqueue(void **state)
{
    struct env *e = *state;
    struct note n = {0};
    assert_int_equal(queue_listen(e->q, note_cb, &n), 0);
    assert_int_equal(tu_run_until(&e->loop, &n.ready, 10000), 0);
    enqueue_n(e, e->q, ACC_B, "nt", 20, 0, NULL);
    assert_int_equal(tu_run_until(&e->loop, &n.got, 10000), 0);
    assert_string_equal(n.payload, ACC_B);
    int never = 0;
    tu_run_until(&e->loop, &never, 200);
    assert_int_equal(n.got, 1); /* one per statement and account, not per row */
}

struct stats_wait {
    int done, rc;
    int64_t queued_a, sent_a;
};

static void stats_cb(int rc, const struct queue_stat *s, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct stats_wait *w = ud;
    (void)err;
    w->rc = rc;
    for (size_t i = 0; i < n; i++) {
        if (s[i].account_id && strcmp(s[i].account_id, ACC_A) == 0 && s[i].state == QUEUE_QUEUED)
            w->queued_a = s[i].count;
        if (s[i].account_id && strcmp(s[i].account_id, ACC_A) == 0 && s[i].state == QUEUE_SENT)
            w->sent_a = s[i].count;
    }
    w->done = 1;
}

static void test_stats_and_receipt_deadline(void **state)
{
    struct env *e = *state;
    int64_t id[3];
    enqueue_n(e, e->q, ACC_A, "st", 3, 1, id);
    struct claim_wait cw;
    assert_int_equal(claim(e, ACC_A, 1, 60000, &cw), 1);
    record1(e, cw.ids[0], 0, "5", NULL);
    struct stats_wait sw = {0};
    assert_int_equal(queue_stats(e->q, stats_cb, &sw), 0);
    assert_int_equal(tu_run_until(&e->loop, &sw.done, 10000), 0);
    assert_int_equal(sw.rc, 0);
    assert_int_equal(sw.queued_a, 2);
    assert_int_equal(sw.sent_a, 1);

    struct count_wait c = {0};
    assert_int_equal(queue_expire_receipts(e->q, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0);
    exec_ok(e->pg.c, "UPDATE smsys_message SET receipt_deadline = now() - interval '1 s' "
                     "WHERE state = 4");
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_expire_receipts(e->q, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    assert_int_equal(msg_int(e, cw.ids[0], "state"), QUEUE_SENT);
    char *s = msg_str(e, cw.ids[0], "last_error");
    assert_non_null(strstr(s, "no delivery report by"));
    free(s);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback WHERE "
                                 "fields->>'smsys_status' = '4' AND fields->>'smsys_lasterror' "
                                 "LIKE 'no delivery report%'"),
                     1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_expire_receipts(e->q, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0); /* flagged once */
    /* a receipt after the deadline still counts */
    struct rcpt_wait rw;
    receipt(e, ACC_A, "5", CONN_ST_DELIVERED, &rw);
    assert_int_equal(msg_int(e, cw.ids[0], "state"), QUEUE_DELIVERED);

    /* retention: not while its write-back is pending, then with receipts */
    receipt(e, ACC_A, "never-matched", CONN_ST_DELIVERED, &rw);
    exec_ok(e->pg.c, "UPDATE smsys_message SET final_at = now() - interval '40 days' "
                     "WHERE state = 5");
    exec_ok(e->pg.c, "UPDATE smsys_receipt SET received_at = now() - interval '40 days'");
    int64_t cutoff = util_wall_us() - 30LL * 86400 * 1000000;
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_purge(e->q, cutoff, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 0);
    exec_ok(e->pg.c, "DELETE FROM smsys_writeback");
    memset(&c, 0, sizeof(c));
    assert_int_equal(queue_purge(e->q, cutoff, 100, count_cb, &c), 0);
    assert_int_equal(wait_count(e, &c), 1);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message"), 2);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_receipt"), 0);
}

/* The pool closes under a leader: it hears so and releases cleanly. */
static void test_leader_lost_on_pool_close(void **state)
{
    struct env *e = *state;
    struct lead_wait w;
    lead_try(e, e->q, &w);
    assert_non_null(w.ld);
    int closed = 0;
    pg_pool_close(e->pool, closed_cb, &closed);
    assert_int_equal(tu_run_until(&e->loop, &w.lost, 10000), 0);
    assert_int_equal(closed, 0); /* waits for the pinned connection */
    queue_leader_release(w.ld);
    assert_int_equal(tu_run_until(&e->loop, &closed, 10000), 0);
    /* teardown must not close it twice: a fresh pool for it */
    assert_int_equal(pg_pool_new(&e->loop, e->pg.conninfo, 1, &e->pool), 0);
}

/* Not asserted: a throughput figure for the report. */
static void test_throughput(void **state)
{
    struct env *e = *state;
    enum { N = 20000, B = 500 };
    uint64_t t0 = util_now_ms();
    for (int i = 0; i < N / B; i++)
        enqueue_n(e, e->q, ACC_A, "tp", B, 1, NULL);
    uint64_t t1 = util_now_ms();
    struct queue_result *r = calloc(B, sizeof(*r));
    char(*pids)[16] = calloc(B, 16);
    assert_true(r && pids);
    size_t done = 0;
    struct claim_wait *cw = malloc(sizeof(*cw));
    assert_non_null(cw);
    while (claim(e, ACC_A, B, 60000, cw) > 0) {
        for (size_t i = 0; i < cw->n; i++) {
            snprintf(pids[i], 16, "%llx", (unsigned long long)cw->ids[i] + 0x1000);
            r[i] = (struct queue_result){.id = cw->ids[i], .rc = 0, .provider_id = pids[i]};
        }
        struct rec_wait w;
        record(e, r, cw->n, &w);
        done += cw->n;
    }
    uint64_t t2 = util_now_ms();
    assert_int_equal(done, N);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_message WHERE state = 4"), N);
    assert_int_equal(side_int(e, "SELECT count(*) FROM smsys_writeback"), N);
    double secs = (double)(t2 - t0) / 1000.0;
    print_message("throughput: %d messages enqueued in %.2f s, claimed+recorded in %.2f s: "
                  "%.0f messages/s end to end (batches of %d, sequential, 1 client)\n",
                  N, (double)(t1 - t0) / 1000.0, (double)(t2 - t1) / 1000.0,
                  secs > 0 ? N / secs : 0.0, B);
    free(cw);
    free(r);
    free(pids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_two_pools_disjoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_each_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_then_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipts_forward_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msgid_c_and_sql_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap_expired_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statecode_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lasterror_persian_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_election, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_lost_on_pool_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_on_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_receipt_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
