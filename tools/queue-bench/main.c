/* queue-bench - end-to-end throughput of the PostgreSQL queue.
 *
 *   queue-bench [-n messages] [-b batch] [-w workers] [-c conninfo] [-s sqldir]
 *
 * Creates a scratch database next to the one conninfo names (default
 * $SMSYS_TEST_PG), applies the sql/ files in order, and runs the whole pipeline
 * concurrently on one loop and one pool: an enqueuer (batches), W senders
 * (claim -> record Sent -> receipt Delivered), and the write-back writer
 * (outbox take -> done). It prints messages/s from the first enqueue until
 * every message is Delivered and the outbox is empty, then drops the
 * database. Durability is the server's (synchronous_commit as configured).
 *
 * Built by `make` into build/bin/queue-bench; run by `make bench`. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/util.h"

#define ACC "aaaaaaaa-0000-4000-8000-00000000000b"

struct bench;

struct worker {
    struct bench *b;
    uv_timer_t idle;
    int busy;
    char (*pids)[24];
    struct queue_result *res;
    struct conn_state *st;
    size_t n;
};

struct bench {
    uv_loop_t *loop;
    struct queue *q;
    long total, batch;
    long enqueued, delivered, written;
    int enq_busy, writer_busy, failed, stop;
    uint64_t t0;
    struct worker *w;
    int nworkers;
    uv_timer_t writer_idle;
    char (*keys)[32];
    char (*acts)[37];
    struct queue_new *msgs;
};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "queue-bench: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
}

static int is_sql(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void apply_sql(PGconn *c, const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, is_sql, name_cmp);
    if (n <= 0)
        die("no sql files in", dir);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            die("open", path);
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *sql = malloc((size_t)sz + 1);
        if (sql == NULL || fread(sql, 1, (size_t)sz, f) != (size_t)sz)
            die("read", path);
        sql[sz] = '\0';
        fclose(f);
        exec_ok(c, sql);
        free(sql);
        free(list[i]);
    }
    free(list);
}

/* conninfo with dbname replaced. */
static void conninfo_for(const char *base, const char *db, char *out, size_t len)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (opts == NULL)
        die("bad conninfo", err);
    size_t o = 0;
    out[0] = '\0';
    for (PQconninfoOption *p = opts; p->keyword; p++) {
        const char *v = strcmp(p->keyword, "dbname") == 0 ? db : p->val;
        if (v == NULL || *v == '\0')
            continue;
        int k = snprintf(out + o, len - o, "%s%s='%s'", o ? " " : "", p->keyword, v);
        if (k < 0 || (size_t)k >= len - o)
            die("conninfo too long", NULL);
        o += (size_t)k;
    }
    PQconninfoFree(opts);
}

static void check_done(struct bench *b)
{
    if (b->delivered >= b->total && b->written >= b->total && !b->stop) {
        b->stop = 1;
        uv_stop(b->loop);
    }
}

/* ---- enqueuer ---- */

static void enqueue_next(struct bench *b);

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct bench *b = ud;
    (void)res;
    b->enq_busy = 0;
    if (rc != 0)
        die("enqueue", err ? err->detail : smsys_strerror(rc));
    b->enqueued += (long)n;
    enqueue_next(b);
}

static void enqueue_next(struct bench *b)
{
    if (b->enqueued >= b->total || b->enq_busy)
        return;
    long n = b->total - b->enqueued < b->batch ? b->total - b->enqueued : b->batch;
    struct queue_new *m = b->msgs + b->enqueued;
    b->enq_busy = 1;
    if (queue_enqueue(b->q, m, (size_t)n, enq_cb, b) != 0)
        die("enqueue", "refused");
}

/* ---- senders ---- */

static void worker_next(struct worker *w);

static void rcpt_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct worker *w = ud;
    (void)matched;
    if (rc != 0)
        die("receipts", err ? err->detail : smsys_strerror(rc));
    w->b->delivered += changed;
    w->busy = 0;
    check_done(w->b);
    worker_next(w);
}

static void rec_cb(int rc, const struct queue_outcome *o, size_t n, const struct smsys_err *err,
                   void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct worker *w = ud;
    (void)o;
    if (rc != 0)
        die("record", err ? err->detail : smsys_strerror(rc));
    /* The SMSC's receipts, reported in decimal for hex submit ids. */
    for (size_t i = 0; i < n; i++) {
        unsigned long long v = strtoull(w->pids[i], NULL, 16);
        snprintf(w->pids[i], sizeof(w->pids[i]), "%llu", v);
        w->st[i] = (struct conn_state){.provider_id = w->pids[i], .status = CONN_ST_DELIVERED};
    }
    if (queue_apply_states(w->b->q, ACC, w->st, n, rcpt_cb, w) != 0)
        die("receipts", "refused");
}

static void claim_cb(int rc, const struct queue_msg *m, size_t n, const struct smsys_err *err,
                     void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct worker *w = ud;
    if (rc != 0)
        die("claim", err ? err->detail : smsys_strerror(rc));
    if (n == 0) {
        w->busy = 0; /* the main loop polls again in 2 ms */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(w->pids[i], sizeof(w->pids[i]), "%llX", (unsigned long long)m[i].id + 0x10000);
        w->res[i] = (struct queue_result){.id = m[i].id, .provider_id = w->pids[i], .segments = 1};
    }
    if (queue_record_results(w->b->q, w->res, n, rec_cb, w) != 0)
        die("record", "refused");
}

static void worker_next(struct worker *w)
{
    if (w->busy || w->b->stop)
        return;
    w->busy = 1;
    if (queue_claim(w->b->q, "bench", NULL, 0, (unsigned)w->b->batch, 60000, claim_cb, w) != 0)
        die("claim", "refused");
}

static void idle_cb(uv_timer_t *t)
{
    worker_next(container_of(t, struct worker, idle));
}

/* ---- writer ---- */

static void writer_next(struct bench *b);
static struct queue_wb_ack *g_acks;
static char (*g_ids)[37];

static void done_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct bench *b = ud;
    if (rc != 0)
        die("outbox_done", err ? err->detail : smsys_strerror(rc));
    (void)n;
    b->writer_busy = 0;
    writer_next(b);
}

static void take_cb(int rc, const struct queue_wb *rows, size_t n, const struct smsys_err *err,
                    void *ud)
{
    if (rc == SMSYS_ECLOSED)
        return; /* finished: the pool closed under it */
    struct bench *b = ud;
    if (rc != 0)
        die("outbox_take", err ? err->detail : smsys_strerror(rc));
    if (n == 0) {
        b->writer_busy = 0; /* the main loop polls again in 2 ms */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(g_ids[i], 37, "%s", rows[i].activity_id);
        g_acks[i] = (struct queue_wb_ack){.activity_id = g_ids[i], .version = rows[i].version};
        /* A row is written for good once its Delivered state went out. */
        if (strstr(rows[i].fields, "\"smsys_status\": 5") != NULL)
            b->written++;
    }
    check_done(b);
    if (outbox_done(b->q, g_acks, n, done_cb, b) != 0)
        die("outbox_done", "refused");
}

static void writer_next(struct bench *b)
{
    if (b->writer_busy || b->stop)
        return;
    b->writer_busy = 1;
    if (outbox_take(b->q, 1000, take_cb, b) != 0)
        die("outbox_take", "refused");
}

static void writer_idle_cb(uv_timer_t *t)
{
    writer_next(container_of(t, struct bench, writer_idle));
}

static void closed_cb(void *ud)
{
    *(int *)ud = 1;
}

int main(int argc, char **argv)
{
    long total = 20000, batch = 500, nworkers = 2;
    const char *base = getenv("SMSYS_TEST_PG");
    const char *sqldir = "sql";
    int opt;
    while ((opt = getopt(argc, argv, "n:b:w:c:s:")) != -1) {
        long long v;
        switch (opt) {
        case 'n':
        case 'b':
        case 'w':
            if (util_parse_int(optarg, 1, 10000000, &v) != 0)
                die("bad number", optarg);
            if (opt == 'n')
                total = (long)v;
            else if (opt == 'b')
                batch = v > 5000 ? 5000 : (long)v;
            else
                nworkers = v > 16 ? 16 : (long)v;
            break;
        case 'c':
            base = optarg;
            break;
        case 's':
            sqldir = optarg;
            break;
        default:
            fprintf(stderr, "usage: queue-bench [-n messages] [-b batch] [-w workers] "
                            "[-c conninfo] [-s sqldir]\n");
            return 2;
        }
    }
    if (base == NULL)
        die("no conninfo", "pass -c or set SMSYS_TEST_PG (tools/pg-local start prints one)");

    char db[64], conninfo[2048];
    snprintf(db, sizeof(db), "smsys_qbench_%d", (int)getpid());
    PGconn *admin = PQconnectdb(base);
    if (PQstatus(admin) != CONNECTION_OK)
        die("connect", PQerrorMessage(admin));
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    exec_ok(admin, sql);
    conninfo_for(base, db, conninfo, sizeof(conninfo));
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect", PQerrorMessage(c));
    exec_ok(c, "SET client_min_messages = warning");
    apply_sql(c, sqldir);
    exec_ok(c,
            "INSERT INTO smsys_account (id, name, provider) VALUES ('" ACC "', 'bench', 'smpp')");
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    printf("synchronous_commit=%s messages=%ld batch=%ld senders=%ld\n",
           PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?", total, batch,
           nworkers);
    PQclear(r);

    struct bench b = {.total = total, .batch = batch, .nworkers = (int)nworkers};
    b.keys = calloc((size_t)total, sizeof(*b.keys));
    b.acts = calloc((size_t)total, sizeof(*b.acts));
    b.msgs = calloc((size_t)total, sizeof(*b.msgs));
    b.w = calloc((size_t)nworkers, sizeof(*b.w));
    g_acks = calloc(1000, sizeof(*g_acks));
    g_ids = calloc(1000, sizeof(*g_ids));
    if (!b.keys || !b.acts || !b.msgs || !b.w || !g_acks || !g_ids)
        die("out of memory", NULL);
    for (long i = 0; i < total; i++) {
        snprintf(b.keys[i], sizeof(b.keys[i]), "bench-%ld", i);
        snprintf(b.acts[i], sizeof(b.acts[i]), "%08x-2222-4222-8222-000000000000",
                 (unsigned)i & 0xffffffffu);
        b.msgs[i] = (struct queue_new){.idem_key = b.keys[i],
                                       .activity_id = b.acts[i],
                                       .account_id = ACC,
                                       .recipient = "+989121234567",
                                       .body = "سلام، این یک پیام آزمایشی است",
                                       .segments = 1,
                                       .encoding = 8,
                                       .state = QUEUE_QUEUED};
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    b.loop = &loop;
    struct pg_pool *pool;
    struct pg_pool_opts po = {.size = (unsigned)nworkers + 2};
    if (pg_pool_new_opts(&loop, conninfo, &po, &pool) != 0 || queue_new(&loop, pool, NULL, &b.q))
        die("pool", NULL);
    /* Idle senders and the writer poll every 2 ms (the daemon would wait
     * for NOTIFY). */
    uv_timer_init(&loop, &b.writer_idle);
    for (long i = 0; i < nworkers; i++) {
        struct worker *w = &b.w[i];
        w->b = &b;
        w->pids = calloc((size_t)batch, sizeof(*w->pids));
        w->res = calloc((size_t)batch, sizeof(*w->res));
        w->st = calloc((size_t)batch, sizeof(*w->st));
        if (!w->pids || !w->res || !w->st)
            die("out of memory", NULL);
        uv_timer_init(&loop, &w->idle);
    }
    b.t0 = util_now_ms();
    enqueue_next(&b);
    for (long i = 0; i < nworkers; i++)
        worker_next(&b.w[i]);
    writer_next(&b);
    while (!b.stop) {
        uv_run(&loop, UV_RUN_ONCE);
        /* idle pollers try again shortly */
        for (long i = 0; i < nworkers; i++)
            if (!b.w[i].busy && !uv_is_active((uv_handle_t *)&b.w[i].idle))
                uv_timer_start(&b.w[i].idle, idle_cb, 2, 0);
        if (!b.writer_busy && !uv_is_active((uv_handle_t *)&b.writer_idle))
            uv_timer_start(&b.writer_idle, writer_idle_cb, 2, 0);
    }
    double secs = (double)(util_now_ms() - b.t0) / 1000.0;
    printf("%ld messages enqueued, sent, delivered and written back in %.2f s: %.0f messages/s\n",
           total, secs, secs > 0 ? (double)total / secs : 0.0);

    int closed = 0;
    uv_close((uv_handle_t *)&b.writer_idle, NULL);
    for (long i = 0; i < nworkers; i++)
        uv_close((uv_handle_t *)&b.w[i].idle, NULL);
    pg_pool_close(pool, closed_cb, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    queue_free(b.q);
    uv_loop_close(&loop);
    PQfinish(c);
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
    exec_ok(admin, sql);
    PQfinish(admin);
    for (long i = 0; i < nworkers; i++) {
        free(b.w[i].pids);
        free(b.w[i].res);
        free(b.w[i].st);
    }
    free(b.w);
    free(b.keys);
    free(b.acts);
    free(b.msgs);
    free(g_acks);
    free(g_ids);
    return 0;
}
