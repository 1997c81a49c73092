/* Integration tests for the libuv PostgreSQL pool, against the real test
 * server ($SMSYS_TEST_PG). Backends are killed with pg_terminate_backend()
 * from a separate blocking connection to prove that nothing hangs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/pg.h"
#include "smsys/util.h"
#include "../lib/testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct qres {
    int done;
    int rc;
    int order;
    int isnull;
    int ntuples;
    char val[256];
    char val2[64];
    char detail[512];
};

static int g_order;

static void q_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qres *q = ud;
    q->done++;
    q->rc = rc;
    q->order = ++g_order;
    if (rc != 0) {
        assert_null(res);
        assert_non_null(err);
        assert_int_equal(err->code, rc);
        snprintf(q->detail, sizeof(q->detail), "%s", err->detail);
        return;
    }
    assert_null(err);
    assert_non_null(res);
    q->ntuples = PQntuples(res);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0) {
        q->isnull = PQgetisnull(res, 0, 0);
        snprintf(q->val, sizeof(q->val), "%s", PQgetvalue(res, 0, 0));
        if (PQnfields(res) > 1)
            snprintf(q->val2, sizeof(q->val2), "%s", PQgetvalue(res, 0, 1));
    }
}

struct acq {
    int done;
    int rc;
    struct pg_conn *conn;
};

static void acq_cb(int rc, struct pg_conn *conn, const struct smsys_err *err, void *ud)
{
    struct acq *a = ud;
    a->done++;
    a->rc = rc;
    a->conn = conn;
    if (rc != 0)
        assert_non_null(err);
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

/* Blocking helper connection: the "other client" of the tests. */
static PGconn *side_conn(void)
{
    PGconn *c = PQconnectdb(tu_pg_conninfo());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void side_exec(PGconn *c, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Runs the loop for about ms milliseconds. */
static void spin(uv_loop_t *loop, unsigned ms)
{
    int never = 0;
    tu_run_until(loop, &never, ms);
}

/* Runs the loop until *v >= target or ms pass. */
static int wait_ge(uv_loop_t *loop, const int *v, int target, unsigned ms)
{
    uint64_t end = util_now_ms() + ms;
    while (*v < target && util_now_ms() < end)
        spin(loop, 2);
    return *v >= target ? 0 : -ETIMEDOUT;
}

/* Runs the loop until the pool reports exactly `want` query connections up. */
static void wait_connected(uv_loop_t *loop, struct pg_pool *pool, unsigned want)
{
    uint64_t end = util_now_ms() + 10000;
    struct pg_pool_stats st;
    for (;;) {
        pg_pool_stats(pool, &st);
        if (st.connected == want)
            return;
        assert_true(util_now_ms() < end);
        spin(loop, 1);
    }
}

static void run_q(uv_loop_t *loop, struct pg_pool *pool, const char *sql, int n,
                  const char *const *p, struct qres *q)
{
    memset(q, 0, sizeof(*q));
    assert_int_equal(pg_query(pool, sql, n, p, q_cb, q), 0);
    assert_int_equal(q->done, 0); /* never called inside the call */
    assert_int_equal(tu_run_until(loop, &q->done, 10000), 0);
    assert_int_equal(q->done, 1);
}

static void run_cq(uv_loop_t *loop, struct pg_conn *c, const char *sql, struct qres *q)
{
    memset(q, 0, sizeof(*q));
    assert_int_equal(pg_conn_query(c, sql, 0, NULL, q_cb, q), 0);
    assert_int_equal(tu_run_until(loop, &q->done, 10000), 0);
    assert_int_equal(q->done, 1);
}

static void close_pool(uv_loop_t *loop, struct pg_pool *pool)
{
    int closed = 0;
    pg_pool_close(pool, closed_cb, &closed);
    assert_int_equal(closed, 0);
    assert_int_equal(tu_run_until(loop, &closed, 5000), 0);
    spin(loop, 10);
    assert_int_equal(closed, 1);
    assert_int_equal(tu_loop_handles(loop), 0);
    assert_int_equal(tu_loop_close(loop), 0);
}

/* Waits until a backend runs `sql` (exact text) and returns its pid. */
static int wait_backend(uv_loop_t *loop, PGconn *side, const char *sql)
{
    const char *p[1] = {sql};
    for (int i = 0; i < 500; i++) {
        PGresult *r = PQexecParams(side,
                                   "SELECT pid FROM pg_stat_activity WHERE query = $1 "
                                   "AND pid <> pg_backend_pid() LIMIT 1",
                                   1, NULL, p, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        long long pid = 0;
        if (PQntuples(r) > 0)
            assert_int_equal(util_parse_int(PQgetvalue(r, 0, 0), 1, 1 << 30, &pid), 0);
        PQclear(r);
        if (pid > 0)
            return (int)pid;
        spin(loop, 10);
    }
    fail_msg("no backend runs %s", sql);
    return 0;
}

static void terminate(PGconn *side, int pid)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", pid);
    const char *p[1] = {buf};
    PGresult *r =
        PQexecParams(side, "SELECT pg_terminate_backend($1::int)", 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
}

static void test_query_params(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 2, &pool), 0);
    struct qres q;

    const char *p2[2] = {"2", "40"};
    run_q(&loop, pool, "SELECT $1::int + $2::int", 2, p2, &q);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.val, "42");

    /* Parameters are data, never SQL. */
    const char *inj[1] = {"x'; DROP TABLE nothing; --"};
    run_q(&loop, pool, "SELECT $1::text", 1, inj, &q);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.val, inj[0]);

    const char *pnull[2] = {NULL, "b"};
    run_q(&loop, pool, "SELECT $1::text IS NULL AND $2 = 'b'", 2, pnull, &q);
    assert_string_equal(q.val, "t");
    run_q(&loop, pool, "SELECT $1::text", 1, pnull, &q);
    assert_int_equal(q.rc, 0);
    assert_true(q.isnull);

    run_q(&loop, pool, "SELECT 1/0", 0, NULL, &q);
    assert_int_equal(q.rc, SMSYS_EPG);
    assert_non_null(strstr(q.detail, "SQLSTATE 22012"));
    struct smsys_err e;
    smsys_err_set(&e, SMSYS_EPG, "%s", q.detail);
    char st[6];
    assert_int_equal(pg_err_sqlstate(&e, st), 0);
    assert_string_equal(st, "22012");

    run_q(&loop, pool, "SELEC nonsense", 0, NULL, &q);
    assert_int_equal(q.rc, SMSYS_EPG);
    assert_non_null(strstr(q.detail, "SQLSTATE 42601"));
    /* The connection is still usable after errors. */
    run_q(&loop, pool, "SELECT 'ok'", 0, NULL, &q);
    assert_string_equal(q.val, "ok");

    /* A parameter far bigger than the socket buffer: PQflush returns 1
     * and the rest goes out as the socket turns writable. A big result
     * arrives over many reads. */
    size_t big = 4u << 20;
    char *blob = malloc(big + 1);
    assert_non_null(blob);
    memset(blob, 'a', big);
    blob[big] = '\0';
    const char *pb[1] = {blob};
    run_q(&loop, pool, "SELECT length($1), md5($1) = md5(repeat('a', 4194304))", 1, pb, &q);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.val, "4194304");
    assert_string_equal(q.val2, "t");
    free(blob);
    run_q(&loop, pool, "SELECT length(repeat('xy', 3000000))", 0, NULL, &q);
    assert_string_equal(q.val, "6000000");

    /* Several statements are refused by the extended protocol. */
    run_q(&loop, pool, "SELECT 1; SELECT 2", 0, NULL, &q);
    assert_int_equal(q.rc, SMSYS_EPG);

    /* Prepared statements: reused per connection, checked by name. */
    for (int i = 0; i < 6; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        const char *pp[1] = {v};
        memset(&q, 0, sizeof(q));
        assert_int_equal(pg_query_prepared(pool, "t_double", "SELECT $1::int * 2", 1, pp, q_cb, &q),
                         0);
        assert_int_equal(tu_run_until(&loop, &q.done, 5000), 0);
        assert_int_equal(q.rc, 0);
        char want[8];
        snprintf(want, sizeof(want), "%d", i * 2);
        assert_string_equal(q.val, want);
    }
    assert_int_equal(pg_query_prepared(pool, "t_double", "SELECT 3", 0, NULL, q_cb, &q), -EINVAL);
    memset(&q, 0, sizeof(q));
    assert_int_equal(pg_query_prepared(pool, "t_bad", "SELEC", 0, NULL, q_cb, &q), 0);
    assert_int_equal(tu_run_until(&loop, &q.done, 5000), 0);
    assert_int_equal(q.rc, SMSYS_EPG);
    assert_non_null(strstr(q.detail, "42601"));

    /* Bad arguments are refused at once. */
    assert_int_equal(pg_query(pool, NULL, 0, NULL, q_cb, &q), -EINVAL);
    assert_int_equal(pg_query(pool, "SELECT 1", 0, NULL, NULL, &q), -EINVAL);
    assert_int_equal(pg_query(pool, "SELECT $1", 1, NULL, q_cb, &q), -EINVAL);
    assert_int_equal(pg_query(pool, "SELECT 1", -1, NULL, q_cb, &q), -EINVAL);

    struct pg_pool_stats s;
    pg_pool_stats(pool, &s);
    assert_int_equal(s.size, 2);
    assert_true(s.connected >= 1);
    assert_true(s.queries >= 10);
    close_pool(&loop, pool);
}

#define NQ 200

static void test_concurrent_fifo(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 4, &pool), 0);
    wait_connected(&loop, pool, 4);
    char seq[64], sql[160];
    snprintf(seq, sizeof(seq), "pgtest_seq_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE SEQUENCE %s", seq);
    static struct qres q[NQ];
    run_q(&loop, pool, sql, 0, NULL, &q[0]);
    assert_int_equal(q[0].rc, 0);
    memset(q, 0, sizeof(q));
    /* nextval runs on the server, so its value shows the order in which
     * statements started. */
    snprintf(sql, sizeof(sql), "SELECT nextval('%s'), $1::int, pg_sleep(0.001)", seq);
    for (int i = 0; i < NQ; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *p[1] = {v};
        assert_int_equal(pg_query(pool, sql, 1, p, q_cb, &q[i]), 0);
    }
    struct pg_pool_stats s;
    pg_pool_stats(pool, &s);
    assert_int_equal(s.busy, 4);
    assert_int_equal(s.queued, NQ - 4);
    int all = 0;
    uint64_t end = util_now_ms() + 20000;
    while (!all && util_now_ms() < end) {
        spin(&loop, 1);
        pg_pool_stats(pool, &s);
        assert_true(s.busy <= 4);
        all = 1;
        for (int i = 0; i < NQ; i++)
            all &= q[i].done == 1;
    }
    assert_true(all);
    long long started[NQ];
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(q[i].rc, 0);
        assert_int_equal(util_parse_int(q[i].val, 1, 1000000, &started[i]), 0);
        /* FIFO dispatch: when request i was sent, every earlier one had
         * been sent and at most 3 of them were still running. */
        int later = 0;
        for (int j = 0; j < i; j++)
            later += started[j] > started[i];
        assert_true(later <= 3);
    }
    snprintf(sql, sizeof(sql), "DROP SEQUENCE %s", seq);
    run_q(&loop, pool, sql, 0, NULL, &q[0]);
    assert_int_equal(q[0].rc, 0);
    close_pool(&loop, pool);

    /* One connection: strictly FIFO. A bounded queue refuses the excess. */
    uv_loop_init(&loop);
    struct pg_pool_opts o = {.size = 1, .max_queue = 10};
    assert_int_equal(pg_pool_new_opts(&loop, tu_pg_conninfo(), &o, &pool), 0);
    memset(q, 0, sizeof(q));
    g_order = 0;
    int ok = 0;
    for (int i = 0; i < 12; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *p[1] = {v};
        int rc = pg_query(pool, "SELECT $1::int", 1, p, q_cb, &q[i]);
        if (i < 10)
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, -EAGAIN);
        ok += rc == 0;
    }
    assert_int_equal(tu_run_until(&loop, &q[ok - 1].done, 10000), 0);
    for (int i = 0; i < ok; i++) {
        assert_int_equal(q[i].rc, 0);
        assert_int_equal(q[i].order, i + 1);
    }
    close_pool(&loop, pool);
}

static void test_transactions(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 2, &pool), 0);
    char tbl[64], sql[256];
    snprintf(tbl, sizeof(tbl), "pgtest_tx_%d", (int)getpid());
    struct qres q;
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int)", tbl);
    run_q(&loop, pool, sql, 0, NULL, &q);
    assert_int_equal(q.rc, 0);
    char count_sql[128], ins[128];
    snprintf(count_sql, sizeof(count_sql), "SELECT count(*) FROM %s", tbl);
    snprintf(ins, sizeof(ins), "INSERT INTO %s VALUES ($1::int)", tbl);

    /* Commit. */
    struct acq a = {0};
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    assert_int_equal(a.done, 0);
    assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
    assert_int_equal(a.rc, 0);
    assert_true(pg_conn_backend_pid(a.conn) > 0);
    run_cq(&loop, a.conn, "BEGIN", &q);
    assert_int_equal(q.rc, 0);
    const char *one[1] = {"1"};
    memset(&q, 0, sizeof(q));
    assert_int_equal(pg_conn_query(a.conn, ins, 1, one, q_cb, &q), 0);
    assert_int_equal(tu_run_until(&loop, &q.done, 5000), 0);
    assert_int_equal(q.rc, 0);
    /* Not visible to others before COMMIT. */
    run_q(&loop, pool, count_sql, 0, NULL, &q);
    assert_string_equal(q.val, "0");
    /* Prepared statements work on a pinned connection too. */
    memset(&q, 0, sizeof(q));
    assert_int_equal(pg_conn_query_prepared(a.conn, "t_count", count_sql, 0, NULL, q_cb, &q), 0);
    assert_int_equal(tu_run_until(&loop, &q.done, 5000), 0);
    assert_string_equal(q.val, "1"); /* its own insert, inside the transaction */
    run_cq(&loop, a.conn, "COMMIT", &q);
    assert_int_equal(q.rc, 0);
    pg_release(a.conn);
    run_q(&loop, pool, count_sql, 0, NULL, &q);
    assert_string_equal(q.val, "1");

    /* Explicit rollback. */
    memset(&a, 0, sizeof(a));
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
    run_cq(&loop, a.conn, "BEGIN", &q);
    const char *two[1] = {"2"};
    struct qres qi = {0};
    assert_int_equal(pg_conn_query(a.conn, ins, 1, two, q_cb, &qi), 0);
    run_cq(&loop, a.conn, "ROLLBACK", &q); /* queued behind the insert */
    assert_int_equal(qi.done, 1);
    assert_true(qi.order < q.order);
    pg_release(a.conn);
    run_q(&loop, pool, count_sql, 0, NULL, &q);
    assert_string_equal(q.val, "1");

    /* Released inside an open and inside a failed transaction: rolled back,
     * and the connection is clean for the next user. Statements still queued
     * at release complete first. */
    for (int round = 0; round < 2; round++) {
        memset(&a, 0, sizeof(a));
        assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
        assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
        run_cq(&loop, a.conn, "BEGIN", &q);
        const char *three[1] = {"3"};
        memset(&qi, 0, sizeof(qi));
        assert_int_equal(pg_conn_query(a.conn, ins, 1, three, q_cb, &qi), 0);
        struct qres qe = {0};
        if (round == 1)
            assert_int_equal(pg_conn_query(a.conn, "SELECT 1/0", 0, NULL, q_cb, &qe), 0);
        pg_release(a.conn);
        assert_int_equal(tu_run_until(&loop, &qi.done, 5000), 0);
        assert_int_equal(qi.rc, 0);
        if (round == 1) {
            assert_int_equal(tu_run_until(&loop, &qe.done, 5000), 0);
            assert_int_equal(qe.rc, SMSYS_EPG);
        }
        /* Both connections must now be outside any transaction. */
        for (int k = 0; k < 2; k++) {
            struct acq b = {0};
            assert_int_equal(pg_acquire(pool, acq_cb, &b), 0);
            assert_int_equal(tu_run_until(&loop, &b.done, 5000), 0);
            run_cq(&loop, b.conn, "SELECT now() = statement_timestamp()", &q);
            assert_int_equal(q.rc, 0);
            run_cq(&loop, b.conn, count_sql, &q);
            assert_string_equal(q.val, "1");
            struct acq other = {0};
            if (k == 0) { /* pin both so each gets checked */
                assert_int_equal(pg_acquire(pool, acq_cb, &other), 0);
                assert_int_equal(tu_run_until(&loop, &other.done, 5000), 0);
                run_cq(&loop, other.conn, "SELECT 1", &q);
                assert_int_equal(q.rc, 0);
                pg_release(other.conn);
            }
            pg_release(b.conn);
        }
    }
    snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
    run_q(&loop, pool, sql, 0, NULL, &q);
    assert_int_equal(q.rc, 0);
    close_pool(&loop, pool);
}

struct notes {
    int ready; /* NULL-payload signals */
    int n;
    char channel[64];
    char payload[256];
};

static void note_cb(const char *channel, const char *payload, void *ud)
{
    struct notes *s = ud;
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    if (payload == NULL) {
        s->ready++;
        return;
    }
    s->n++;
    snprintf(s->payload, sizeof(s->payload), "%s", payload);
}

static void notify(PGconn *side, const char *ch, const char *payload)
{
    const char *p[2] = {ch, payload};
    side_exec(side, "SELECT pg_notify($1, $2)", 2, p);
}

static void test_listen_notify(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 1, &pool), 0);
    char ch[64];
    snprintf(ch, sizeof(ch), "smsys_test_%d", (int)getpid());
    struct notes s = {0}, other = {0};
    assert_int_equal(pg_listen(pool, "", note_cb, &s), -EINVAL);
    assert_int_equal(pg_listen(pool, ch, note_cb, &s), 0);
    assert_int_equal(tu_run_until(&loop, &s.ready, 5000), 0);
    struct pg_pool_stats st;
    pg_pool_stats(pool, &st);
    assert_int_equal(st.listening, 1);
    /* A quoted channel name and a second subscription on a live listener. */
    assert_int_equal(pg_listen(pool, "Odd \"Name\"", note_cb, &other), 0);
    assert_int_equal(tu_run_until(&loop, &other.ready, 5000), 0);

    PGconn *side = side_conn();
    notify(side, ch, "hello \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85");
    assert_int_equal(tu_run_until(&loop, &s.n, 5000), 0);
    assert_string_equal(s.channel, ch);
    assert_string_equal(s.payload, "hello \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85");
    assert_int_equal(other.n, 0);
    notify(side, "Odd \"Name\"", "x");
    assert_int_equal(tu_run_until(&loop, &other.n, 5000), 0);
    assert_string_equal(other.payload, "x");

    /* Kill the listener's backend: it reconnects, re-LISTENs (signalled by
     * a second NULL payload), and later notifications still arrive. */
    int pid = wait_backend(&loop, side, "LISTEN \"Odd \"\"Name\"\"\"");
    terminate(side, pid);
    int before = s.ready;
    assert_int_equal(wait_ge(&loop, &s.ready, before + 1, 10000), 0);
    assert_int_equal(s.ready, before + 1);
    int n0 = s.n;
    notify(side, ch, "after");
    assert_int_equal(wait_ge(&loop, &s.n, n0 + 1, 5000), 0);
    assert_int_equal(s.n, n0 + 1);
    assert_string_equal(s.payload, "after");
    pg_pool_stats(pool, &st);
    assert_true(st.reconnects >= 1);
    PQfinish(side);
    close_pool(&loop, pool);
}

static void test_terminated_backend(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 2, &pool), 0);
    wait_connected(&loop, pool, 2);
    PGconn *side = side_conn();

    struct qres q = {0};
    const char *sql = "SELECT pg_sleep(5), 'pgtest_terminate'";
    assert_int_equal(pg_query(pool, sql, 0, NULL, q_cb, &q), 0);
    int pid = wait_backend(&loop, side, sql);
    uint64_t t0 = util_now_ms();
    terminate(side, pid);
    assert_int_equal(tu_run_until(&loop, &q.done, 5000), 0);
    uint64_t took = util_now_ms() - t0;
    assert_true(took < 1500);
    assert_int_equal(q.done, 1);
    assert_int_equal(q.rc, SMSYS_ETEMP);
    assert_non_null(strstr(q.detail, "connection lost"));
    print_message("terminated query answered in %llu ms: %s\n", (unsigned long long)took, q.detail);

    /* The next queries succeed, and the lost connection comes back. */
    run_q(&loop, pool, "SELECT 'again'", 0, NULL, &q);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.val, "again");
    wait_connected(&loop, pool, 2);

    /* All connections killed while idle: once the pool has noticed, work
     * waits in the queue for the reconnect and then runs. */
    side_exec(side,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE application_name = 'smsys' AND datname = current_database() AND "
              "pid <> pg_backend_pid()",
              0, NULL);
    wait_connected(&loop, pool, 0);
    run_q(&loop, pool, "SELECT 'back'", 0, NULL, &q);
    assert_int_equal(q.rc, 0);
    assert_string_equal(q.val, "back");

    /* A pinned connection that dies: the statement in flight fails, later
     * ones are refused at once, release brings a fresh connection. */
    wait_connected(&loop, pool, 2);
    struct acq a = {0};
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
    run_cq(&loop, a.conn, "BEGIN", &q);
    memset(&q, 0, sizeof(q));
    struct qres q2 = {0};
    const char *sql2 = "SELECT pg_sleep(5), 'pgtest_pinned'";
    assert_int_equal(pg_conn_query(a.conn, sql2, 0, NULL, q_cb, &q), 0);
    assert_int_equal(pg_conn_query(a.conn, "COMMIT", 0, NULL, q_cb, &q2), 0);
    terminate(side, wait_backend(&loop, side, sql2));
    assert_int_equal(tu_run_until(&loop, &q2.done, 3000), 0);
    assert_int_equal(q.rc, SMSYS_ETEMP);
    assert_int_equal(q2.rc, SMSYS_ETEMP);
    assert_true(q.order < q2.order);
    assert_int_equal(pg_conn_query(a.conn, "SELECT 1", 0, NULL, q_cb, &q), SMSYS_ETEMP);
    pg_release(a.conn);
    wait_connected(&loop, pool, 2);
    run_q(&loop, pool, "SELECT 1", 0, NULL, &q);
    assert_int_equal(q.rc, 0);

    PQfinish(side);
    close_pool(&loop, pool);
}

static void test_timeouts_and_unreachable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, "this is = not conninfo'", 1, &pool), -EINVAL);
    assert_int_equal(pg_pool_new(&loop, "bogus_keyword=1", 1, &pool), -EINVAL);

    /* statement_timeout set at connect cancels long statements. */
    struct pg_pool_opts o = {.size = 1, .statement_timeout_ms = 200};
    assert_int_equal(pg_pool_new_opts(&loop, tu_pg_conninfo(), &o, &pool), 0);
    struct qres q;
    run_q(&loop, pool, "SELECT pg_sleep(3)", 0, NULL, &q);
    assert_int_equal(q.rc, SMSYS_EPG);
    assert_non_null(strstr(q.detail, "SQLSTATE 57014"));
    run_q(&loop, pool, "SHOW statement_timeout", 0, NULL, &q);
    assert_string_equal(q.val, "200ms");

    /* A server that goes silent (backend stopped, so not even
     * statement_timeout fires): the client watchdog drops the connection
     * at statement_timeout + 5 s and the caller gets ETEMP, not a hang. */
    struct acq a = {0};
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
    pid_t backend = pg_conn_backend_pid(a.conn);
    assert_true(backend > 0);
    pg_release(a.conn);
    if (kill(backend, SIGSTOP) != 0) {
        /* Only with a foreign SMSYS_TEST_PG owned by another user. */
        assert_int_equal(errno, EPERM);
        print_message("cannot stop backend %d (EPERM): watchdog check not run\n", (int)backend);
        close_pool(&loop, pool);
        goto unreachable;
    }
    uint64_t t0 = util_now_ms();
    memset(&q, 0, sizeof(q));
    assert_int_equal(pg_query(pool, "SELECT 'stopped'", 0, NULL, q_cb, &q), 0);
    int rc = tu_run_until(&loop, &q.done, 8000);
    uint64_t took = util_now_ms() - t0;
    kill(backend, SIGCONT);
    assert_int_equal(rc, 0);
    assert_int_equal(q.rc, SMSYS_ETEMP);
    assert_non_null(strstr(q.detail, "watchdog"));
    assert_true(took >= 5000 && took < 6500);
    run_q(&loop, pool, "SELECT 'alive'", 0, NULL, &q);
    assert_string_equal(q.val, "alive");
    close_pool(&loop, pool);

    /* Nobody listening: the queued query fails after queue_timeout_ms. */
unreachable:
    uv_loop_init(&loop);
    struct pg_pool_opts u = {
        .size = 2, .queue_timeout_ms = 300, .backoff_min_ms = 20, .backoff_max_ms = 50};
    assert_int_equal(pg_pool_new_opts(&loop, "host=/nonexistent/smsys dbname=x user=x", &u, &pool),
                     0);
    t0 = util_now_ms();
    run_q(&loop, pool, "SELECT 1", 0, NULL, &q);
    took = util_now_ms() - t0;
    assert_int_equal(q.rc, SMSYS_ETEMP);
    assert_true(took >= 300 && took < 2000);
    assert_non_null(strstr(q.detail, "no database connection"));
    struct pg_pool_stats st;
    pg_pool_stats(pool, &st);
    assert_int_equal(st.connected, 0);
    assert_non_null(strstr(st.last_error, "No such file"));
    close_pool(&loop, pool);
}

struct closer {
    struct pg_pool *pool;
    int calls;
    int rc;
    struct qres after;
};

static void close_in_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct closer *c = ud;
    c->calls++;
    c->rc = rc;
    /* Queries issued from a callback during close are refused. */
    assert_int_equal(pg_query(c->pool, "SELECT 1", 0, NULL, q_cb, &c->after), SMSYS_ECLOSED);
}

struct self_closer {
    struct pg_pool *pool;
    int done;
    int rc;
    int closed;
};

static void close_on_result_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct self_closer *c = ud;
    c->done++;
    c->rc = rc;
    pg_pool_close(c->pool, closed_cb, &c->closed);
    assert_int_equal(c->closed, 0);
}

static void test_close_with_work(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 2, &pool), 0);
    wait_connected(&loop, pool, 2);
    struct qres q[8];
    memset(q, 0, sizeof(q));
    for (int i = 0; i < 8; i++)
        assert_int_equal(pg_query(pool, "SELECT pg_sleep(5)", 0, NULL, q_cb, &q[i]), 0);
    struct closer cl = {.pool = pool};
    assert_int_equal(pg_query(pool, "SELECT 2", 0, NULL, close_in_cb, &cl), 0);
    struct acq a = {0};
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    struct notes s = {0};
    assert_int_equal(pg_listen(pool, "smsys_close_test", note_cb, &s), 0);
    spin(&loop, 50);
    struct pg_pool_stats st;
    pg_pool_stats(pool, &st);
    assert_int_equal(st.busy, 2);
    assert_int_equal(st.queued, 8);

    int closed = 0;
    uint64_t t0 = util_now_ms();
    pg_pool_close(pool, closed_cb, &closed);
    for (int i = 0; i < 8; i++)
        assert_int_equal(q[i].done, 0); /* not inside the call */
    assert_int_equal(tu_run_until(&loop, &closed, 3000), 0);
    assert_true(util_now_ms() - t0 < 1000);
    spin(&loop, 20);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(q[i].done, 1);
        assert_int_equal(q[i].rc, SMSYS_ECLOSED);
    }
    assert_int_equal(cl.calls, 1);
    assert_int_equal(cl.rc, SMSYS_ECLOSED);
    assert_int_equal(cl.after.done, 0);
    assert_int_equal(a.done, 1);
    assert_int_equal(a.rc, SMSYS_ECLOSED);
    assert_int_equal(closed, 1);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);

    /* A pinned connection keeps the pool until it is released. */
    uv_loop_init(&loop);
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 1, &pool), 0);
    memset(&a, 0, sizeof(a));
    assert_int_equal(pg_acquire(pool, acq_cb, &a), 0);
    assert_int_equal(tu_run_until(&loop, &a.done, 5000), 0);
    struct qres inflight = {0};
    assert_int_equal(pg_conn_query(a.conn, "SELECT pg_sleep(5)", 0, NULL, q_cb, &inflight), 0);
    closed = 0;
    pg_pool_close(pool, closed_cb, &closed);
    assert_int_equal(tu_run_until(&loop, &inflight.done, 2000), 0);
    assert_int_equal(inflight.rc, SMSYS_ECLOSED);
    spin(&loop, 50);
    assert_int_equal(closed, 0);
    struct qres x = {0};
    assert_int_equal(pg_conn_query(a.conn, "SELECT 1", 0, NULL, q_cb, &x), SMSYS_ECLOSED);
    pg_release(a.conn);
    assert_int_equal(tu_run_until(&loop, &closed, 2000), 0);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);

    /* Closed from inside a result callback, with work queued behind it. */
    uv_loop_init(&loop);
    assert_int_equal(pg_pool_new(&loop, tu_pg_conninfo(), 1, &pool), 0);
    struct self_closer sc = {0};
    sc.pool = pool;
    assert_int_equal(pg_query(pool, "SELECT 1", 0, NULL, close_on_result_cb, &sc), 0);
    memset(q, 0, sizeof(q));
    for (int i = 0; i < 3; i++)
        assert_int_equal(pg_query(pool, "SELECT 2", 0, NULL, q_cb, &q[i]), 0);
    assert_int_equal(tu_run_until(&loop, &sc.closed, 5000), 0);
    assert_int_equal(sc.done, 1);
    assert_int_equal(sc.rc, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(q[i].done, 1);
        assert_int_equal(q[i].rc, SMSYS_ECLOSED);
    }
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
}

int main(void)
{
    tu_pg_conninfo();
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_params),       cmocka_unit_test(test_concurrent_fifo),
        cmocka_unit_test(test_transactions),       cmocka_unit_test(test_listen_notify),
        cmocka_unit_test(test_terminated_backend), cmocka_unit_test(test_timeouts_and_unreachable),
        cmocka_unit_test(test_close_with_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
