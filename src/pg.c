/* pg.c - the PostgreSQL pool: request queue, pinned connections, LISTEN,
 * and closing. One connection's I/O is in pg_conn.c.
 *
 * Reentrancy rule: functions called by the user (pg_query, pg_acquire,
 * pg_release, ...) never call a user callback; when they need queued work
 * to run they arm the 0 ms `kick` timer, whose callback dispatches from the
 * loop. Completions do call callbacks and then dispatch. */
#include "pg_internal.h"

#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void dispatch(struct pg_pool *pool);
static void maybe_finish(struct pg_pool *pool);
static void unpin(struct pg_conn *c);

void pgi_req_fail(struct pg_req *r, int code, const char *detail)
{
    struct smsys_err err;
    smsys_err_set(&err, code, "%s", detail);
    if (r->kind == PG_REQ_ACQUIRE)
        r->acb(code, NULL, &err, r->ud);
    else
        r->cb(code, NULL, &err, r->ud);
    free(r);
}

/* One allocation: the request, its parameter pointers, then the copied
 * strings. sql may be NULL (prepared: the pool registry holds it). */
static struct pg_req *req_new(enum pg_req_kind kind, const char *sql, int nparams,
                              const char *const *params)
{
    size_t head = sizeof(struct pg_req) + (size_t)nparams * sizeof(char *);
    size_t sz = head + (sql ? strlen(sql) + 1 : 0);
    for (int i = 0; i < nparams; i++)
        if (params[i] != NULL)
            sz += strlen(params[i]) + 1;
    char *mem = malloc(sz);
    if (mem == NULL)
        return NULL;
    struct pg_req *r = (struct pg_req *)mem;
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->stmt = -1;
    r->nparams = nparams;
    const char **pv = (const char **)(mem + sizeof(struct pg_req));
    char *p = mem + head;
    for (int i = 0; i < nparams; i++) {
        if (params[i] == NULL) {
            pv[i] = NULL;
            continue;
        }
        size_t n = strlen(params[i]) + 1;
        memcpy(p, params[i], n);
        pv[i] = p;
        p += n;
    }
    r->params = pv;
    if (sql != NULL) {
        memcpy(p, sql, strlen(sql) + 1);
        r->sql = p;
    }
    return r;
}

static void sweep_close_cb(uv_handle_t *h)
{
    pgi_handle_closed(container_of((uv_timer_t *)h, struct pg_pool, sweep));
}

static void kick_cb(uv_timer_t *t)
{
    struct pg_pool *pool = container_of(t, struct pg_pool, kick);
    if (pool->closing) {
        if (!pool->close_started) {
            /* Close step, from the loop so callbacks never run inside
             * pg_pool_close(). */
            pool->close_started = 1;
            struct pg_reqq fail = pool->queue;
            memset(&pool->queue, 0, sizeof(pool->queue));
            for (unsigned i = 0; i <= pool->opts.size; i++) {
                struct pg_conn *c = &pool->conns[i];
                pgi_conn_shutdown(c, &fail);
                /* Released by its holder while a statement was still
                 * running: nobody will release it again. */
                if (c->pinned && c->releasing)
                    unpin(c);
            }
            uv_close((uv_handle_t *)&pool->sweep, sweep_close_cb);
            struct pg_req *r;
            while ((r = pgi_reqq_pop(&fail)) != NULL)
                pgi_req_fail(r, SMSYS_ECLOSED, "database pool is closing");
            maybe_finish(pool);
        }
        return;
    }
    dispatch(pool);
    pgi_conn_idle(&pool->conns[pool->opts.size]); /* LISTENs queued by pg_listen */
}

void pgi_kick(struct pg_pool *pool)
{
    if (!pool->kick_closing && !uv_is_active((uv_handle_t *)&pool->kick))
        uv_timer_start(&pool->kick, kick_cb, 0, 0);
}

static void pool_free(struct pg_pool *pool)
{
    for (unsigned i = 0; pool->keys != NULL && pool->keys[i] != NULL; i++) {
        free((char *)pool->keys[i]);
        free((char *)pool->vals[i]);
    }
    free(pool->keys);
    free(pool->vals);
    for (unsigned i = 0; i < pool->nsubs; i++) {
        free(pool->subs[i]->channel);
        free(pool->subs[i]);
    }
    free(pool->subs);
    for (unsigned i = 0; i < pool->nstmts; i++) {
        free(pool->stmts[i].name);
        free(pool->stmts[i].sql);
    }
    free(pool->conns);
    free(pool);
}

static void kick_close_cb(uv_handle_t *h)
{
    struct pg_pool *pool = container_of((uv_timer_t *)h, struct pg_pool, kick);
    pg_closed_cb cb = pool->close_cb;
    void *ud = pool->close_ud;
    pool_free(pool);
    if (cb != NULL)
        cb(ud);
}

static void maybe_finish(struct pg_pool *pool)
{
    if (pool->close_started && pool->nhandles == 0 && pool->npinned == 0 && !pool->kick_closing) {
        pool->kick_closing = 1;
        uv_close((uv_handle_t *)&pool->kick, kick_close_cb);
    }
}

void pgi_handle_closed(struct pg_pool *pool)
{
    pool->nhandles--;
    maybe_finish(pool);
}

static struct pg_conn *free_conn(struct pg_pool *pool)
{
    for (unsigned i = 0; i < pool->opts.size; i++) {
        struct pg_conn *c = &pool->conns[i];
        if (c->state == PG_C_READY && !c->pinned && c->cur == NULL)
            return c;
    }
    return NULL;
}

static void dispatch(struct pg_pool *pool)
{
    while (!list_empty(&pool->queue.l) && !pool->closing) {
        struct pg_conn *c = free_conn(pool);
        if (c == NULL)
            return;
        struct pg_req *r = pgi_reqq_pop(&pool->queue);
        if (r->kind == PG_REQ_ACQUIRE) {
            c->pinned = 1;
            c->releasing = 0;
            c->dead = 0;
            pool->npinned++;
            r->acb(0, c, NULL, r->ud);
            free(r);
        } else if (pgi_conn_send(c, r) != 0) {
            /* Not sent: another connection may take it. */
            pgi_reqq_push_front(&pool->queue, r);
            pgi_conn_lost(c, c->last_error);
        }
    }
}

static void unpin(struct pg_conn *c)
{
    c->pinned = 0;
    c->releasing = 0;
    c->dead = 0;
    c->pool->npinned--;
}

static void rollback_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pg_conn *c = ud;
    struct pg_pool *pool = c->pool;
    unpin(c);
    if (pool->closing) {
        maybe_finish(pool);
        return;
    }
    if (rc != 0) {
        log_warn("pg rollback on release failed", "conn=%u error=\"%s\"", c->idx,
                 log_q(err->detail));
        if (c->state == PG_C_READY)
            pgi_conn_lost(c, "rollback on release failed");
        else if (c->state == PG_C_DOWN)
            pgi_conn_schedule_reconnect(c);
    }
    /* A READY connection is dispatched by conn_complete after this. */
}

/* The caller gave the connection back and nothing is queued on it. */
static void release_finish(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    if (c->state == PG_C_DOWN) {
        unpin(c);
        pgi_conn_schedule_reconnect(c);
        return;
    }
    if (c->state != PG_C_READY) {
        unpin(c);
        maybe_finish(pool);
        return;
    }
    switch (PQtransactionStatus(c->pq)) {
    case PQTRANS_IDLE:
        unpin(c);
        pgi_kick(pool);
        return;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR: {
        /* Roll back before anybody else gets this session. */
        struct pg_req *r = req_new(PG_REQ_QUERY, "ROLLBACK", 0, NULL);
        if (r != NULL) {
            r->cb = rollback_cb;
            r->ud = c;
            c->releasing = 2;
            if (pgi_conn_send(c, r) == 0)
                return;
            free(r);
        }
        unpin(c);
        pgi_conn_lost(c, "could not roll back a released connection");
        return;
    }
    default:
        unpin(c);
        pgi_conn_lost(c, "released in an unknown transaction state");
        return;
    }
}

void pgi_conn_idle(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    if (pool->closing)
        return;
    if (c->pinned || c->is_listener) {
        if (c->cur != NULL)
            return;
        if (c->state == PG_C_READY && !list_empty(&c->pinq.l)) {
            struct pg_req *r = pgi_reqq_pop(&c->pinq);
            if (pgi_conn_send(c, r) != 0) {
                pgi_reqq_push_front(&c->pinq, r);
                pgi_conn_lost(c, c->last_error);
            }
            return;
        }
        if (c->pinned && c->releasing == 1 && list_empty(&c->pinq.l))
            release_finish(c);
        return;
    }
    if (c->state == PG_C_READY)
        dispatch(pool);
}

static void sweep_cb(uv_timer_t *t)
{
    struct pg_pool *pool = container_of(t, struct pg_pool, sweep);
    uint64_t now = util_now_ms();
    char detail[512];
    while (!list_empty(&pool->queue.l) && !pool->closing &&
           now - pgi_reqq_first(&pool->queue)->enq_ms >= pool->opts.queue_timeout_ms) {
        struct pg_req *r = pgi_reqq_pop(&pool->queue);
        snprintf(detail, sizeof(detail),
                 "no database connection free within %u ms (%u of %u up; last error: %s)",
                 pool->opts.queue_timeout_ms, pool->connected, pool->opts.size,
                 pool->last_error[0] ? pool->last_error : "none");
        pgi_req_fail(r, SMSYS_ETEMP, detail);
    }
    if (list_empty(&pool->queue.l) && !pool->closing)
        uv_timer_stop(&pool->sweep);
}

static void enqueue(struct pg_pool *pool, struct pg_req *r)
{
    r->enq_ms = util_now_ms();
    pgi_reqq_push(&pool->queue, r);
    if (!uv_is_active((uv_handle_t *)&pool->sweep))
        uv_timer_start(&pool->sweep, sweep_cb, 250, 250);
}

/* Appends key=value (both copied) to the connection parameter arrays. */
static int kv_add(struct pg_pool *pool, unsigned *n, const char *k, const char *v)
{
    char *kc = strdup(k), *vc = strdup(v);
    if (kc == NULL || vc == NULL) {
        free(kc);
        free(vc);
        return -ENOMEM;
    }
    pool->keys[*n] = kc;
    pool->vals[*n] = vc;
    (*n)++;
    return 0;
}

/* Splits conninfo into keyword arrays for PQconnectStartParams, adding
 * statement_timeout to "options" and a fallback application_name. */
static int parse_conninfo(struct pg_pool *pool, const char *conninfo)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (opts == NULL) {
        int rc = errmsg != NULL ? -EINVAL : -ENOMEM;
        /* libpq's message may quote part of the string, which may hold a
         * password: say only that it failed. */
        if (errmsg != NULL)
            log_error("pg conninfo invalid", "hint=\"%s\"",
                      "check the syntax and keyword names of [postgres] conninfo");
        PQfreemem(errmsg);
        return rc;
    }
    unsigned count = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        count++;
    int rc = -ENOMEM;
    pool->keys = calloc(count + 3, sizeof(char *));
    pool->vals = calloc(count + 3, sizeof(char *));
    if (pool->keys == NULL || pool->vals == NULL)
        goto out;
    unsigned n = 0;
    const char *options = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (strcmp(o->keyword, "options") == 0) {
            options = o->val;
            continue;
        }
        if (strcmp(o->keyword, "fallback_application_name") == 0)
            continue;
        if (kv_add(pool, &n, o->keyword, o->val) != 0)
            goto out;
    }
    if (kv_add(pool, &n, "fallback_application_name", "smsys") != 0)
        goto out;
    char obuf[1024];
    if (pool->opts.statement_timeout_ms > 0)
        snprintf(obuf, sizeof(obuf), "%s%s-c statement_timeout=%u", options ? options : "",
                 options ? " " : "", pool->opts.statement_timeout_ms);
    else
        snprintf(obuf, sizeof(obuf), "%s", options ? options : "");
    if (obuf[0] != '\0' && kv_add(pool, &n, "options", obuf) != 0)
        goto out;
    rc = 0;
out:
    PQconninfoFree(opts);
    return rc;
}

int pg_pool_new(uv_loop_t *loop, const char *conninfo, unsigned size, struct pg_pool **out)
{
    struct pg_pool_opts o = {.size = size};
    return pg_pool_new_opts(loop, conninfo, &o, out);
}

int pg_pool_new_opts(uv_loop_t *loop, const char *conninfo, const struct pg_pool_opts *opts,
                     struct pg_pool **out)
{
    if (loop == NULL || conninfo == NULL || opts == NULL || out == NULL || opts->size > 1000)
        return -EINVAL;
    struct pg_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return -ENOMEM;
    pool->loop = loop;
    pool->opts = *opts;
    struct pg_pool_opts *po = &pool->opts;
    if (po->size == 0)
        po->size = 4;
    if (po->max_queue == 0)
        po->max_queue = 10000;
    if (po->queue_timeout_ms == 0)
        po->queue_timeout_ms = 30000;
    if (po->connect_timeout_ms == 0)
        po->connect_timeout_ms = 10000;
    if (po->backoff_min_ms == 0)
        po->backoff_min_ms = 100;
    if (po->backoff_max_ms == 0)
        po->backoff_max_ms = 10000;
    if (po->backoff_max_ms < po->backoff_min_ms)
        po->backoff_max_ms = po->backoff_min_ms;
    pool->rng = (util_now_ms() << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)pool;
    if (pool->rng == 0)
        pool->rng = 0x9e3779b97f4a7c15ULL;
    int rc = parse_conninfo(pool, conninfo);
    if (rc == 0) {
        pool->conns = calloc(po->size + 1, sizeof(struct pg_conn));
        if (pool->conns == NULL)
            rc = -ENOMEM;
    }
    if (rc != 0) {
        pool_free(pool);
        return rc;
    }
    uv_timer_init(loop, &pool->kick);
    uv_timer_init(loop, &pool->sweep);
    pool->nhandles++; /* sweep */
    for (unsigned i = 0; i <= po->size; i++)
        pgi_conn_init(pool, &pool->conns[i], i);
    pool->conns[po->size].is_listener = 1;
    for (unsigned i = 0; i < po->size; i++)
        pgi_conn_start(&pool->conns[i]);
    *out = pool;
    return 0;
}

void pg_pool_close(struct pg_pool *pool, pg_closed_cb cb, void *ud)
{
    if (pool == NULL || pool->closing)
        return;
    pool->closing = 1;
    pool->close_cb = cb;
    pool->close_ud = ud;
    pgi_kick(pool);
}

static int check_args(const char *sql, int nparams, const char *const *params, pg_result_cb cb)
{
    if (sql == NULL || cb == NULL || nparams < 0 || nparams > 65535 ||
        (nparams > 0 && params == NULL))
        return -EINVAL;
    return 0;
}

/* Finds or registers a prepared statement name. Returns its index, -1 when
 * the registry is full (run unprepared), or -EINVAL on a name reused with
 * other SQL. */
static int stmt_lookup(struct pg_pool *pool, const char *name, const char *sql)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 63)
        return -EINVAL;
    for (unsigned i = 0; i < pool->nstmts; i++) {
        if (strcmp(pool->stmts[i].name, name) == 0)
            return strcmp(pool->stmts[i].sql, sql) == 0 ? (int)i : -EINVAL;
    }
    if (pool->nstmts >= PG_STMT_MAX)
        return -1;
    char *n = strdup(name), *s = strdup(sql);
    if (n == NULL || s == NULL) {
        free(n);
        free(s);
        return -1;
    }
    pool->stmts[pool->nstmts].name = n;
    pool->stmts[pool->nstmts].sql = s;
    return (int)pool->nstmts++;
}

static int pool_submit(struct pg_pool *pool, const char *name, const char *sql, int nparams,
                       const char *const *params, pg_result_cb cb, void *ud)
{
    if (pool == NULL)
        return -EINVAL;
    int rc = check_args(sql, nparams, params, cb);
    if (rc != 0)
        return rc;
    if (pool->closing)
        return SMSYS_ECLOSED;
    if (pool->queue.l.n >= pool->opts.max_queue)
        return -EAGAIN;
    int stmt = -1;
    if (name != NULL) {
        stmt = stmt_lookup(pool, name, sql);
        if (stmt < -1)
            return stmt;
    }
    struct pg_req *r = req_new(PG_REQ_QUERY, stmt >= 0 ? NULL : sql, nparams, params);
    if (r == NULL)
        return -ENOMEM;
    if (stmt >= 0) {
        r->stmt = stmt;
        r->sql = pool->stmts[stmt].sql;
    }
    r->cb = cb;
    r->ud = ud;
    if (list_empty(&pool->queue.l)) {
        struct pg_conn *c = free_conn(pool);
        if (c != NULL) {
            if (pgi_conn_send(c, r) == 0)
                return 0;
            pgi_conn_lost(c, c->last_error);
            pgi_kick(pool);
        }
    }
    enqueue(pool, r);
    return 0;
}

int pg_query(struct pg_pool *pool, const char *sql, int nparams, const char *const *params,
             pg_result_cb cb, void *ud)
{
    return pool_submit(pool, NULL, sql, nparams, params, cb, ud);
}

int pg_query_prepared(struct pg_pool *pool, const char *name, const char *sql, int nparams,
                      const char *const *params, pg_result_cb cb, void *ud)
{
    if (name == NULL)
        return -EINVAL;
    return pool_submit(pool, name, sql, nparams, params, cb, ud);
}

int pg_acquire(struct pg_pool *pool, pg_acquire_cb cb, void *ud)
{
    if (pool == NULL || cb == NULL)
        return -EINVAL;
    if (pool->closing)
        return SMSYS_ECLOSED;
    if (pool->queue.l.n >= pool->opts.max_queue)
        return -EAGAIN;
    struct pg_req *r = req_new(PG_REQ_ACQUIRE, NULL, 0, NULL);
    if (r == NULL)
        return -ENOMEM;
    r->acb = cb;
    r->ud = ud;
    enqueue(pool, r);
    pgi_kick(pool);
    return 0;
}

static int conn_submit(struct pg_conn *c, const char *name, const char *sql, int nparams,
                       const char *const *params, pg_result_cb cb, void *ud)
{
    if (c == NULL || !c->pinned || c->releasing)
        return -EINVAL;
    int rc = check_args(sql, nparams, params, cb);
    if (rc != 0)
        return rc;
    struct pg_pool *pool = c->pool;
    if (pool->closing)
        return SMSYS_ECLOSED;
    if (c->dead || c->state == PG_C_DOWN)
        return SMSYS_ETEMP;
    int stmt = -1;
    if (name != NULL) {
        stmt = stmt_lookup(pool, name, sql);
        if (stmt < -1)
            return stmt;
    }
    struct pg_req *r = req_new(PG_REQ_QUERY, stmt >= 0 ? NULL : sql, nparams, params);
    if (r == NULL)
        return -ENOMEM;
    if (stmt >= 0) {
        r->stmt = stmt;
        r->sql = pool->stmts[stmt].sql;
    }
    r->cb = cb;
    r->ud = ud;
    if (c->state == PG_C_READY && c->cur == NULL && list_empty(&c->pinq.l)) {
        if (pgi_conn_send(c, r) != 0) {
            free(r);
            pgi_conn_lost(c, c->last_error);
            return SMSYS_ETEMP;
        }
        return 0;
    }
    pgi_reqq_push(&c->pinq, r);
    return 0;
}

int pg_conn_query(struct pg_conn *conn, const char *sql, int nparams, const char *const *params,
                  pg_result_cb cb, void *ud)
{
    return conn_submit(conn, NULL, sql, nparams, params, cb, ud);
}

int pg_conn_query_prepared(struct pg_conn *conn, const char *name, const char *sql, int nparams,
                           const char *const *params, pg_result_cb cb, void *ud)
{
    if (name == NULL)
        return -EINVAL;
    return conn_submit(conn, name, sql, nparams, params, cb, ud);
}

void pg_release(struct pg_conn *c)
{
    if (c == NULL || !c->pinned || c->releasing)
        return;
    struct pg_pool *pool = c->pool;
    c->releasing = 1;
    if (pool->closing) {
        unpin(c);
        maybe_finish(pool);
        return;
    }
    if (c->cur == NULL && list_empty(&c->pinq.l))
        release_finish(c);
}

int pg_conn_backend_pid(const struct pg_conn *conn)
{
    if (conn == NULL || conn->pq == NULL || conn->state == PG_C_CONNECTING)
        return 0;
    return PQbackendPID(conn->pq);
}

/* ---- LISTEN / NOTIFY ---- */

static void listen_done_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pg_listen_sub *s = ud;
    if (rc != 0) {
        if (rc != SMSYS_ECLOSED && rc != SMSYS_ETEMP)
            log_error("pg listen failed", "channel=\"%s\" error=\"%s\"", log_q(s->channel),
                      log_q(err->detail));
        return; /* ETEMP: the reconnect re-issues it */
    }
    s->cb(s->channel, NULL, s->ud);
}

/* Queues LISTEN for s on the (connected) listener connection. */
static int listen_enqueue(struct pg_conn *c, struct pg_listen_sub *s)
{
    char *ident = PQescapeIdentifier(c->pq, s->channel, strlen(s->channel));
    if (ident == NULL)
        return -ENOMEM;
    char sql[160];
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    struct pg_req *r = req_new(PG_REQ_QUERY, sql, 0, NULL);
    if (r == NULL)
        return -ENOMEM;
    r->cb = listen_done_cb;
    r->ud = s;
    pgi_reqq_push(&c->pinq, r);
    return 0;
}

void pgi_listener_up(struct pg_conn *c)
{
    for (unsigned i = 0; i < c->pool->nsubs; i++) {
        if (listen_enqueue(c, c->pool->subs[i]) != 0) {
            pgi_conn_lost(c, "out of memory queueing LISTEN");
            return;
        }
    }
    pgi_conn_idle(c);
}

void pgi_notify(struct pg_pool *pool, const char *channel, const char *payload)
{
    /* By index: a callback may subscribe more channels (realloc). */
    for (unsigned i = 0; i < pool->nsubs && !pool->closing; i++) {
        struct pg_listen_sub *s = pool->subs[i];
        if (strcmp(s->channel, channel) == 0)
            s->cb(s->channel, payload ? payload : "", s->ud);
    }
}

int pg_listen(struct pg_pool *pool, const char *channel, pg_notify_cb cb, void *ud)
{
    if (pool == NULL || channel == NULL || cb == NULL || channel[0] == '\0' || strlen(channel) > 63)
        return -EINVAL;
    if (pool->closing)
        return SMSYS_ECLOSED;
    struct pg_listen_sub **subs = realloc(pool->subs, (pool->nsubs + 1) * sizeof(*subs));
    if (subs == NULL)
        return -ENOMEM;
    pool->subs = subs;
    struct pg_listen_sub *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->pool = pool;
    s->cb = cb;
    s->ud = ud;
    pool->subs[pool->nsubs++] = s;
    struct pg_conn *c = &pool->conns[pool->opts.size];
    if (c->state == PG_C_READY || c->state == PG_C_BUSY) {
        if (listen_enqueue(c, s) != 0) {
            pool->nsubs--;
            free(s->channel);
            free(s);
            return -ENOMEM;
        }
        pgi_kick(pool); /* sends it from the loop via conn_idle */
    } else if (c->state == PG_C_DOWN && !uv_is_active((uv_handle_t *)&c->timer)) {
        pgi_conn_start(c); /* first subscription; connected -> LISTEN all */
    }
    return 0;
}

void pg_pool_stats(const struct pg_pool *pool, struct pg_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->size = pool->opts.size;
    out->connected = pool->connected;
    out->queued = pool->queue.l.n;
    for (unsigned i = 0; i < pool->opts.size; i++)
        if (pool->conns[i].pinned || pool->conns[i].cur != NULL)
            out->busy++;
    const struct pg_conn *l = &pool->conns[pool->opts.size];
    out->listening = pool->nsubs == 0 || l->state == PG_C_READY || l->state == PG_C_BUSY;
    out->reconnects = pool->reconnects;
    out->queries = pool->queries;
    snprintf(out->last_error, sizeof(out->last_error), "%s", pool->last_error);
}

int pg_err_sqlstate(const struct smsys_err *err, char out[6])
{
    if (err == NULL)
        return -ENOENT;
    const char *p = strstr(err->detail, "SQLSTATE ");
    if (p == NULL)
        return -ENOENT;
    p += 9;
    for (int i = 0; i < 5; i++) {
        char ch = p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z')))
            return -ENOENT;
        out[i] = ch;
    }
    out[5] = '\0';
    return 0;
}
