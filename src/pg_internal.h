/* pg_internal.h - shared between pg.c (pool, queue, API) and pg_conn.c
 * (one connection's state machine and socket I/O). Not a public header. */
#ifndef SMSYS_PG_INTERNAL_H
#define SMSYS_PG_INTERNAL_H

#include "smsys/list.h"
#include "smsys/pg.h"

#include <stdint.h>

enum pg_req_kind {
    PG_REQ_QUERY,   /* a statement, result to cb */
    PG_REQ_ACQUIRE, /* pin a connection, to acb */
};

/* One request, allocated in a single block together with copies of its
 * SQL, statement name and parameters. Owned by whichever list or
 * connection holds it; freed with free() after its callback. */
struct pg_req {
    struct list_node node; /* on a pg_reqq */
    enum pg_req_kind kind;
    const char *sql;
    int stmt; /* index into pool->stmts for a prepared statement, else -1 */
    int nparams;
    const char *const *params;
    pg_result_cb cb;
    pg_acquire_cb acb;
    void *ud;
    uint64_t enq_ms; /* when queued, for queue_timeout_ms */
    int stage;       /* 0 = send, 1 = preparing, 2 = executing */
};

/* FIFO of requests (list.h; zeroed = empty, movable by assignment). */
struct pg_reqq {
    struct list l;
};

enum pg_conn_state {
    PG_C_DOWN,       /* no PGconn; backoff timer may be armed */
    PG_C_CONNECTING, /* PQconnectPoll in progress */
    PG_C_READY,      /* connected, nothing in flight */
    PG_C_BUSY,       /* a request in flight (cur) */
    PG_C_CLOSED,     /* pool closing: never reconnects */
};

/* uv_poll_t lives in its own allocation because it must be recreated
 * whenever PQsocket() changes, and the old one is only freed in its close
 * callback. */
struct pg_poll {
    uv_poll_t h;
    struct pg_pool *pool;
    struct pg_conn *c; /* NULL once detached (closing) */
    int events;
};

/* Prepared statements are registered once per pool (name -> sql) and
 * tracked per connection as a bit mask, so at most 64 names are prepared;
 * later names run unprepared. */
struct pg_stmt {
    char *name;
    char *sql;
};

#define PG_STMT_MAX 64

struct pg_conn {
    struct pg_pool *pool;
    unsigned idx; /* for logs */
    PGconn *pq;
    struct pg_poll *poll;
    int fd;
    uv_timer_t timer; /* connect timeout, reconnect backoff, query watchdog */
    enum pg_conn_state state;
    int is_listener;
    int pinned;       /* held by a caller of pg_acquire */
    int releasing;    /* pg_release called; finish when idle */
    int dead;         /* pinned and lost: refuses statements until released */
    int ever_up;      /* counted as reconnect from the second time */
    unsigned attempt; /* consecutive failed connects, for backoff */
    struct pg_req *cur;
    struct pg_reqq pinq; /* statements waiting for this connection */
    PGresult *last;      /* last good result of cur */
    PGresult *err_res;   /* first error result of cur */
    uint64_t prepared;   /* bit i: pool->stmts[i] is prepared here */
    char last_error[256];
};

struct pg_listen_sub {
    struct pg_pool *pool;
    char *channel;
    pg_notify_cb cb;
    void *ud;
};

struct pg_pool {
    uv_loop_t *loop;
    struct pg_pool_opts opts;
    const char **keys; /* conninfo split into keyword/value arrays, NULL-terminated */
    const char **vals;
    char *kvstore;         /* backing storage for keys/vals */
    struct pg_conn *conns; /* opts.size query connections + 1 listener */
    struct pg_reqq queue;
    uv_timer_t kick;   /* 0 ms: dispatch or close from the loop, not inside a call */
    uv_timer_t sweep;  /* expires queued requests */
    unsigned nhandles; /* open handles except kick */
    unsigned npinned;
    unsigned connected;
    int closing;
    int close_started;
    int kick_closing;
    pg_closed_cb close_cb;
    void *close_ud;
    struct pg_listen_sub **subs;
    unsigned nsubs;
    struct pg_stmt stmts[PG_STMT_MAX];
    unsigned nstmts;
    uint64_t rng;
    uint64_t reconnects;
    uint64_t queries;
    char last_error[256];
};

/* pg_conn.c */
void pgi_conn_init(struct pg_pool *pool, struct pg_conn *c, unsigned idx);
void pgi_conn_start(struct pg_conn *c);
/* Sends req on a READY connection. Returns 0, or SMSYS_ETEMP when libpq
 * refused: req is then still the caller's, c->last_error says why, and the
 * caller must put req back where it belongs and call pgi_conn_lost().
 * Never calls a callback. */
int pgi_conn_send(struct pg_conn *c, struct pg_req *req);
/* Tears down libpq and handles for pool close; requests are moved to out. */
void pgi_conn_shutdown(struct pg_conn *c, struct pg_reqq *out);
void pgi_conn_lost(struct pg_conn *c, const char *why);
void pgi_conn_schedule_reconnect(struct pg_conn *c);

/* pg.c */
static inline void pgi_reqq_push(struct pg_reqq *q, struct pg_req *r)
{
    list_push_back(&q->l, &r->node);
}

static inline void pgi_reqq_push_front(struct pg_reqq *q, struct pg_req *r)
{
    list_push_front(&q->l, &r->node);
}

/* The oldest request, unlinked, or NULL. */
static inline struct pg_req *pgi_reqq_pop(struct pg_reqq *q)
{
    return list_entry(list_pop_front(&q->l), struct pg_req, node);
}

/* The oldest request, still queued, or NULL. */
static inline struct pg_req *pgi_reqq_first(const struct pg_reqq *q)
{
    return list_entry(list_first(&q->l), struct pg_req, node);
}
/* Calls the request's callback with an error and frees it. */
void pgi_req_fail(struct pg_req *r, int code, const char *detail);
/* A query connection became free (or came up): run queued work. */
void pgi_conn_idle(struct pg_conn *c);
/* The listener connection came up: re-issue LISTEN for every channel. */
void pgi_listener_up(struct pg_conn *c);
void pgi_notify(struct pg_pool *pool, const char *channel, const char *payload);
void pgi_kick(struct pg_pool *pool);
void pgi_handle_closed(struct pg_pool *pool);

#endif
