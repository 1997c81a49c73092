/* pg_conn.c - one libpq connection driven by libuv: non-blocking connect,
 * send, flush, read, and what happens when the connection is lost.
 *
 * States: DOWN -> CONNECTING -> READY <-> BUSY, back to DOWN when the
 * connection is lost (then a backoff timer reconnects it), CLOSED when the
 * pool closes. The pool logic (queue, pinning, LISTEN) is in pg.c. */
#include "pg_internal.h"

#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_io_cb(uv_poll_t *h, int status, int events);
static void conn_timer_cb(uv_timer_t *t);
static void conn_collect(struct pg_conn *c);

static void poll_close_cb(uv_handle_t *h)
{
    struct pg_poll *p = container_of((uv_poll_t *)h, struct pg_poll, h);
    struct pg_pool *pool = p->pool;
    free(p);
    pgi_handle_closed(pool);
}

static void timer_close_cb(uv_handle_t *h)
{
    struct pg_conn *c = container_of((uv_timer_t *)h, struct pg_conn, timer);
    pgi_handle_closed(c->pool);
}

/* Stops watching the socket. Must happen before PQfinish() closes the fd,
 * so that the fd leaves epoll while it still refers to our socket. */
static void poll_drop(struct pg_conn *c)
{
    if (c->poll == NULL)
        return;
    c->poll->c = NULL;
    uv_close((uv_handle_t *)&c->poll->h, poll_close_cb);
    c->poll = NULL;
    c->fd = -1;
}

/* Watches PQsocket() for events; a new uv_poll_t is made when the socket
 * changed or when `fresh` asks for one. Returns 0 or a negative errno. */
static int poll_watch(struct pg_conn *c, int events, int fresh)
{
    int fd = PQsocket(c->pq);
    if (fd < 0)
        return -EBADF;
    if (c->poll != NULL && (fresh || fd != c->fd))
        poll_drop(c);
    if (c->poll == NULL) {
        struct pg_poll *p = calloc(1, sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        int rc = uv_poll_init(c->pool->loop, &p->h, fd);
        if (rc != 0) {
            free(p);
            return rc;
        }
        p->pool = c->pool;
        p->c = c;
        c->poll = p;
        c->fd = fd;
        c->pool->nhandles++;
    }
    if (c->poll->events != events) {
        int rc = uv_poll_start(&c->poll->h, events, conn_io_cb);
        if (rc != 0)
            return rc;
        c->poll->events = events;
    }
    return 0;
}

/* Copies libpq's message (one line, no trailing newline) into c->last_error. */
static void conn_set_error(struct pg_conn *c, const char *msg)
{
    snprintf(c->last_error, sizeof(c->last_error), "%s", msg && *msg ? msg : "unknown libpq error");
    size_t n = strlen(c->last_error);
    while (n > 0 && (c->last_error[n - 1] == '\n' || c->last_error[n - 1] == ' '))
        c->last_error[--n] = '\0';
    snprintf(c->pool->last_error, sizeof(c->pool->last_error), "%s", c->last_error);
}

static void conn_drop_pq(struct pg_conn *c)
{
    poll_drop(c);
    if (c->pq != NULL) {
        PQfinish(c->pq);
        c->pq = NULL;
    }
    if (c->last != NULL)
        PQclear(c->last);
    if (c->err_res != NULL)
        PQclear(c->err_res);
    c->last = c->err_res = NULL;
    c->prepared = 0;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_timer_stop(&c->timer);
}

static void notice_cb(void *arg, const char *msg)
{
    struct pg_conn *c = arg;
    log_debug("pg notice", "conn=%u msg=\"%s\"", c->idx, log_q(msg));
}

void pgi_conn_init(struct pg_pool *pool, struct pg_conn *c, unsigned idx)
{
    c->pool = pool;
    c->idx = idx;
    c->fd = -1;
    c->state = PG_C_DOWN;
    uv_timer_init(pool->loop, &c->timer);
    pool->nhandles++;
}

static uint64_t pool_rand(struct pg_pool *pool)
{
    /* xorshift64: jitter only needs to differ between connections. */
    uint64_t x = pool->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    pool->rng = x;
    return x;
}

void pgi_conn_schedule_reconnect(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    c->state = PG_C_DOWN;
    if (pool->closing)
        return;
    unsigned shift = c->attempt < 16 ? c->attempt : 16;
    uint64_t d = (uint64_t)pool->opts.backoff_min_ms << shift;
    if (d > pool->opts.backoff_max_ms)
        d = pool->opts.backoff_max_ms;
    /* Random in [d/2, d]: after a server restart all connections of all
     * processes would otherwise knock at the same instant. */
    d = d / 2 + pool_rand(pool) % (d / 2 + 1);
    c->attempt++;
    uv_timer_start(&c->timer, conn_timer_cb, d, 0);
}

static void conn_connect_failed(struct pg_conn *c)
{
    /* While the server stays down, one line per connection now and then is
     * enough: the first failure and every 20th retry. */
    enum log_level lvl = c->attempt % 20 == 0 ? LOG_WARN : LOG_DEBUG;
    if (log_enabled(lvl))
        log_write(lvl, "pg connect failed", "conn=%u attempt=%u error=\"%s\"", c->idx,
                  c->attempt + 1, log_q(c->last_error));
    conn_drop_pq(c);
    pgi_conn_schedule_reconnect(c);
}

static void conn_connected(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pq, 1) != 0) {
        conn_set_error(c, PQerrorMessage(c->pq));
        conn_connect_failed(c);
        return;
    }
    /* Fresh handle: the socket may differ from the one the handshake began on. */
    int rc = poll_watch(c, UV_READABLE, 1);
    if (rc != 0) {
        conn_set_error(c, uv_strerror(rc));
        conn_connect_failed(c);
        return;
    }
    c->state = PG_C_READY;
    c->attempt = 0;
    if (!c->is_listener)
        pool->connected++;
    if (c->ever_up)
        pool->reconnects++;
    c->ever_up = 1;
    log_info("pg connected", "conn=%u backend_pid=%d server_version=%d%s", c->idx,
             PQbackendPID(c->pq), PQserverVersion(c->pq), c->is_listener ? " role=listen" : "");
    if (c->is_listener)
        pgi_listener_up(c);
    else
        pgi_conn_idle(c);
}

/* Acts on what PQconnectPoll asked for. */
static void conn_connect_step(struct pg_conn *c, PostgresPollingStatusType st)
{
    int events;
    switch (st) {
    case PGRES_POLLING_READING:
        events = UV_READABLE;
        break;
    case PGRES_POLLING_WRITING:
        events = UV_WRITABLE;
        break;
    case PGRES_POLLING_OK:
        conn_connected(c);
        return;
    default:
        conn_set_error(c, PQerrorMessage(c->pq));
        conn_connect_failed(c);
        return;
    }
    /* A fresh uv_poll_t at every step: libpq may close its socket and open
     * another (next host, SSL or GSS fallback) that gets the same fd number,
     * which epoll would silently stop reporting on the old registration. */
    int rc = poll_watch(c, events, 1);
    if (rc != 0) {
        conn_set_error(c, uv_strerror(rc));
        conn_connect_failed(c);
    }
}

void pgi_conn_start(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    if (pool->closing)
        return;
    c->pq = PQconnectStartParams(pool->keys, pool->vals, 0);
    if (c->pq == NULL) {
        conn_set_error(c, "out of memory");
        conn_connect_failed(c);
        return;
    }
    if (PQstatus(c->pq) == CONNECTION_BAD) {
        conn_set_error(c, PQerrorMessage(c->pq));
        conn_connect_failed(c);
        return;
    }
    PQsetNoticeProcessor(c->pq, notice_cb, c);
    c->state = PG_C_CONNECTING;
    uv_timer_start(&c->timer, conn_timer_cb, pool->opts.connect_timeout_ms, 0);
    /* libpq's rule: before the first PQconnectPoll, act as if it had
     * returned PGRES_POLLING_WRITING. */
    conn_connect_step(c, PGRES_POLLING_WRITING);
}

/* Flushes what libpq buffered and watches for the rest. 0 or <0 (lost). */
static int conn_flush_watch(struct pg_conn *c)
{
    int r = PQflush(c->pq);
    if (r < 0) {
        conn_set_error(c, PQerrorMessage(c->pq));
        return SMSYS_ETEMP;
    }
    int rc = poll_watch(c, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE, 0);
    if (rc != 0) {
        conn_set_error(c, uv_strerror(rc));
        return SMSYS_ETEMP;
    }
    return 0;
}

static int conn_send_stage(struct pg_conn *c, struct pg_req *r)
{
    int ok;
    if (r->stmt >= 0 && r->stage != 2 && !(c->prepared & (UINT64_C(1) << r->stmt))) {
        r->stage = 1;
        ok = PQsendPrepare(c->pq, c->pool->stmts[r->stmt].name, r->sql, r->nparams, NULL);
    } else if (r->stmt >= 0) {
        r->stage = 2;
        ok = PQsendQueryPrepared(c->pq, c->pool->stmts[r->stmt].name, r->nparams, r->params, NULL,
                                 NULL, 0);
    } else {
        r->stage = 2;
        ok = PQsendQueryParams(c->pq, r->sql, r->nparams, NULL, r->params, NULL, NULL, 0);
    }
    if (!ok) {
        conn_set_error(c, PQerrorMessage(c->pq));
        return SMSYS_ETEMP;
    }
    return conn_flush_watch(c);
}

int pgi_conn_send(struct pg_conn *c, struct pg_req *r)
{
    if (c->state != PG_C_READY || c->pq == NULL) {
        conn_set_error(c, "connection not ready");
        return SMSYS_ETEMP;
    }
    /* An idle connection whose server went away has its FATAL message and
     * EOF waiting in the socket; reading first turns a doomed send into a
     * requeue instead of an error for the caller. One recv() per statement. */
    if (!PQconsumeInput(c->pq)) {
        conn_set_error(c, PQerrorMessage(c->pq));
        return SMSYS_ETEMP;
    }
    r->stage = 0;
    int rc = conn_send_stage(c, r);
    if (rc != 0)
        return rc;
    c->cur = r;
    c->state = PG_C_BUSY;
    if (c->pool->opts.statement_timeout_ms > 0)
        uv_timer_start(&c->timer, conn_timer_cb,
                       (uint64_t)c->pool->opts.statement_timeout_ms + 5000, 0);
    return 0;
}

static void format_pg_error(char *buf, size_t len, const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *det = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    if (msg == NULL)
        msg = PQresultErrorMessage(r);
    snprintf(buf, len, "SQLSTATE %s: %s%s%s%s", st ? st : "XX000", msg, det ? " (" : "",
             det ? det : "", det ? ")" : "");
}

void pgi_conn_lost(struct pg_conn *c, const char *why)
{
    struct pg_pool *pool = c->pool;
    char detail[512], pgerr[400];
    if (c->err_res != NULL) {
        format_pg_error(pgerr, sizeof(pgerr), c->err_res);
        snprintf(detail, sizeof(detail), "connection lost: %s", pgerr);
    } else {
        snprintf(detail, sizeof(detail), "connection lost: %s", why);
    }
    log_warn("pg connection lost", "conn=%u error=\"%s\"", c->idx, log_q(detail));
    snprintf(pool->last_error, sizeof(pool->last_error), "%.255s", detail);
    if (!c->is_listener && (c->state == PG_C_READY || c->state == PG_C_BUSY))
        pool->connected--;
    struct pg_req *cur = c->cur;
    struct pg_reqq fail = c->pinq;
    c->cur = NULL;
    memset(&c->pinq, 0, sizeof(c->pinq));
    conn_drop_pq(c);
    c->state = PG_C_DOWN;
    if (c->pinned)
        c->dead = 1; /* the caller's transaction is gone; reconnect on release */
    else
        pgi_conn_schedule_reconnect(c);
    if (cur != NULL)
        pgi_req_fail(cur, SMSYS_ETEMP, detail);
    struct pg_req *r;
    while ((r = pgi_reqq_pop(&fail)) != NULL)
        pgi_req_fail(r, SMSYS_ETEMP, detail);
    pgi_conn_idle(c);
}

static void conn_complete(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    if (PQstatus(c->pq) == CONNECTION_BAD) {
        /* A FATAL error (terminated backend, shutdown) ended the session. */
        char why[256];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(c->pq));
        pgi_conn_lost(c, why[0] ? why : "server closed the connection");
        return;
    }
    struct pg_req *r = c->cur;
    PGresult *res = c->last, *er = c->err_res;
    c->cur = NULL;
    c->last = c->err_res = NULL;
    c->state = PG_C_READY;
    uv_timer_stop(&c->timer);
    pool->queries++;
    if (er != NULL) {
        struct smsys_err err;
        err.code = SMSYS_EPG;
        format_pg_error(err.detail, sizeof(err.detail), er);
        r->cb(SMSYS_EPG, NULL, &err, r->ud);
    } else {
        r->cb(0, res, NULL, r->ud);
    }
    if (res != NULL)
        PQclear(res);
    if (er != NULL)
        PQclear(er);
    free(r);
    pgi_conn_idle(c);
}

/* Reads every result that is complete; the last one (or the first error)
 * belongs to the request. */
static void conn_collect(struct pg_conn *c)
{
    while (c->cur != NULL && c->pq != NULL) {
        if (PQisBusy(c->pq))
            return;
        PGresult *res = PQgetResult(c->pq);
        if (res == NULL) {
            struct pg_req *r = c->cur;
            if (r->stage == 1 && c->err_res == NULL) {
                if (c->last != NULL)
                    PQclear(c->last);
                c->last = NULL;
                c->prepared |= UINT64_C(1) << r->stmt;
                r->stage = 2;
                if (conn_send_stage(c, r) != 0) {
                    pgi_conn_lost(c, c->last_error);
                    return;
                }
                continue;
            }
            conn_complete(c);
            return;
        }
        switch (PQresultStatus(res)) {
        case PGRES_FATAL_ERROR:
        case PGRES_BAD_RESPONSE:
        case PGRES_NONFATAL_ERROR:
            if (c->err_res == NULL)
                c->err_res = res;
            else
                PQclear(res);
            break;
        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            /* COPY needs its own protocol; drop the session rather than
             * leave it half way. */
            PQclear(res);
            pgi_conn_lost(c, "COPY is not supported by pg_query");
            return;
        default:
            if (c->last != NULL)
                PQclear(c->last);
            c->last = res;
            break;
        }
    }
}

static void conn_drain_notifies(struct pg_conn *c)
{
    PGnotify *n;
    while (c->pq != NULL && (n = PQnotifies(c->pq)) != NULL) {
        pgi_notify(c->pool, n->relname, n->extra);
        PQfreemem(n);
    }
}

static void conn_io_cb(uv_poll_t *h, int status, int events)
{
    struct pg_poll *p = container_of(h, struct pg_poll, h);
    struct pg_conn *c = p->c;
    if (c == NULL || c->pq == NULL)
        return;
    if (c->state == PG_C_CONNECTING) {
        conn_connect_step(c, PQconnectPoll(c->pq));
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF; libpq knows the real cause. */
        if (!PQconsumeInput(c->pq))
            conn_set_error(c, PQerrorMessage(c->pq));
        else
            conn_set_error(c, uv_strerror(status));
        pgi_conn_lost(c, c->last_error);
        return;
    }
    if (events & UV_WRITABLE) {
        int r = PQflush(c->pq);
        if (r < 0) {
            conn_set_error(c, PQerrorMessage(c->pq));
            pgi_conn_lost(c, c->last_error);
            return;
        }
        if (r == 0) {
            int rc = poll_watch(c, UV_READABLE, 0);
            if (rc != 0) {
                pgi_conn_lost(c, uv_strerror(rc));
                return;
            }
        }
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pq)) {
            conn_set_error(c, PQerrorMessage(c->pq));
            pgi_conn_lost(c, c->last_error);
            return;
        }
    }
    conn_drain_notifies(c);
    /* Also after a flush: libpq reads input while a write would block, so a
     * complete result may sit in its buffer with nothing left to read. */
    conn_collect(c);
    /* PQgetResult parses past the result; a notification that followed it
     * is now in libpq's list and the socket will not wake us for it. */
    conn_drain_notifies(c);
    if (c->cur == NULL && c->pq != NULL && c->state == PG_C_READY &&
        PQstatus(c->pq) == CONNECTION_BAD)
        pgi_conn_lost(c, "server closed the connection");
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct pg_conn *c = container_of(t, struct pg_conn, timer);
    char why[128];
    switch (c->state) {
    case PG_C_DOWN:
        pgi_conn_start(c);
        break;
    case PG_C_CONNECTING:
        snprintf(why, sizeof(why), "connect timed out after %u ms",
                 c->pool->opts.connect_timeout_ms);
        conn_set_error(c, why);
        conn_connect_failed(c);
        break;
    case PG_C_BUSY:
        snprintf(why, sizeof(why), "no answer within %u ms (client watchdog)",
                 c->pool->opts.statement_timeout_ms + 5000);
        pgi_conn_lost(c, why);
        break;
    default:
        break;
    }
}

void pgi_conn_shutdown(struct pg_conn *c, struct pg_reqq *out)
{
    if (c->cur != NULL)
        pgi_reqq_push(out, c->cur);
    c->cur = NULL;
    struct pg_req *r;
    while ((r = pgi_reqq_pop(&c->pinq)) != NULL)
        pgi_reqq_push(out, r);
    if (!c->is_listener && (c->state == PG_C_READY || c->state == PG_C_BUSY))
        c->pool->connected--;
    conn_drop_pq(c);
    c->state = PG_C_CLOSED;
    uv_close((uv_handle_t *)&c->timer, timer_close_cb);
}
