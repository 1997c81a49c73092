/* pg.h - PostgreSQL on libuv: a pool of non-blocking libpq connections.
 *
 * Nothing here blocks the loop: connections are opened with
 * PQconnectStart/PQconnectPoll, queries are sent with PQsendQueryParams or
 * PQsendPrepare/PQsendQueryPrepared on a non-blocking socket, and results
 * are read as the socket becomes readable. See docs/postgres.md.
 *
 * Rules every asynchronous call here follows (the libuv contract):
 *  1. A call that takes a callback either returns 0 and calls the callback
 *     exactly once, later, from the loop (never from inside the call), or
 *     returns a negative code and never calls it.
 *  2. Arguments (sql, params, channel names) are borrowed for the duration
 *     of the call only: the pool copies what it keeps.
 *  3. Callbacks may call any function of this header, including
 *     pg_pool_close().
 *
 * SQL is always parameterised: values travel as text parameters ($1, $2,
 * ...), never spliced into the statement. A NULL entry in params is SQL
 * NULL. One statement per call (the extended query protocol refuses more).
 *
 * Errors delivered to callbacks:
 *   SMSYS_EPG     the server answered with an error; err->detail is
 *                 "SQLSTATE xxxxx: message" (see pg_err_sqlstate()).
 *   SMSYS_ETEMP   the connection died, the client watchdog fired, or no
 *                 connection came up within queue_timeout_ms. The statement
 *                 may or may not have run if the connection died after it
 *                 was sent (a COMMIT may have happened): make retried work
 *                 idempotent.
 *   SMSYS_ECLOSED the pool is closing.
 */
#ifndef SMSYS_PG_H
#define SMSYS_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"

struct pg_pool; /* opaque */
struct pg_conn; /* opaque: a connection pinned by pg_acquire() */

/* Result of one statement. rc is 0 or a negative code; res is borrowed and
 * valid only during the callback (NULL when rc != 0); err is NULL when
 * rc == 0, else it carries the code and a detail for the user. */
typedef void (*pg_result_cb)(int rc, PGresult *res, const struct smsys_err *err, void *ud);

/* A pinned connection for several statements (transactions). conn is NULL
 * when rc != 0. The caller MUST hand it back with pg_release(). */
typedef void (*pg_acquire_cb)(int rc, struct pg_conn *conn, const struct smsys_err *err, void *ud);

/* A notification on a channel passed to pg_listen(). payload NULL means
 * "LISTEN is (again) in effect": it is called once after the first LISTEN
 * and again after every reconnect, because notifications sent while the
 * listener was disconnected are lost; the receiver should catch up by
 * querying. Both strings are borrowed for the duration of the call. */
typedef void (*pg_notify_cb)(const char *channel, const char *payload, void *ud);

typedef void (*pg_closed_cb)(void *ud);

/* Tunables; zero fields take the default in brackets. */
struct pg_pool_opts {
    unsigned size;                 /* connections for queries [4] */
    unsigned max_queue;            /* queued requests before -EAGAIN [10000] */
    unsigned queue_timeout_ms;     /* a queued request fails after this [30000] */
    unsigned connect_timeout_ms;   /* one connection attempt [10000] */
    unsigned statement_timeout_ms; /* server-side statement_timeout set at connect; 0 = server
                                      default. Also arms a client watchdog at this + 5000 ms that
                                      drops the connection if the server goes silent. */
    unsigned backoff_min_ms;       /* first reconnect delay [100] */
    unsigned backoff_max_ms;       /* reconnect delay cap [10000] */
};

/* Counters for /healthz and /metrics. */
struct pg_pool_stats {
    unsigned size;        /* configured query connections */
    unsigned connected;   /* query connections currently up */
    unsigned busy;        /* ... running a statement or pinned */
    unsigned queued;      /* requests waiting for a connection */
    int listening;        /* 1 when the LISTEN connection is up (or none is needed) */
    uint64_t reconnects;  /* connections re-established after a loss */
    uint64_t queries;     /* statements completed (ok or error) */
    char last_error[256]; /* last connect or connection error, "" if none; no secrets */
};

/* Creates a pool of `size` connections (0: 4; at most 1000) to conninfo (a
 * libpq keyword string or URI) and starts connecting them in the background. Queries may be
 * issued at once: they wait in the queue until a connection is up.
 * Returns 0 and *out (free with pg_pool_close), -EINVAL for a conninfo libpq
 * cannot parse (logged, without the conninfo, which may hold a password),
 * or -ENOMEM. */
int pg_pool_new(uv_loop_t *loop, const char *conninfo, unsigned size, struct pg_pool **out);
int pg_pool_new_opts(uv_loop_t *loop, const char *conninfo, const struct pg_pool_opts *opts,
                     struct pg_pool **out);

/* Starts closing: every queued request, every statement in flight and every
 * pending pg_acquire gets its callback with SMSYS_ECLOSED (once). Pinned
 * connections held by the caller still have to be pg_release()d; cb(ud)
 * fires after the last one is released and every handle is closed, after
 * which the pool is freed. cb may be NULL. Calling it twice is a bug. */
void pg_pool_close(struct pg_pool *pool, pg_closed_cb cb, void *ud);

/* Runs one parameterised statement on any free connection, FIFO after
 * requests already queued. nparams in [0, 65535]; params[i] NULL is SQL
 * NULL. Returns 0 (cb will be called), -EINVAL, -ENOMEM, -EAGAIN when the
 * queue is full, or SMSYS_ECLOSED. */
int pg_query(struct pg_pool *pool, const char *sql, int nparams, const char *const *params,
             pg_result_cb cb, void *ud);

/* Like pg_query, but the statement is prepared once per connection under
 * `name` (1..63 bytes) and reused afterwards (saves parse/plan on hot
 * paths). A name always stands for the same sql: another sql under a used
 * name returns -EINVAL at once. The first 64 names of a pool are prepared;
 * later ones run unprepared. */
int pg_query_prepared(struct pg_pool *pool, const char *name, const char *sql, int nparams,
                      const char *const *params, pg_result_cb cb, void *ud);

/* Pins a connection for the caller (FIFO with queries). cb gets the
 * connection, used with pg_conn_query* and returned with pg_release().
 * Returns 0, -ENOMEM, -EAGAIN (queue full) or SMSYS_ECLOSED. */
int pg_acquire(struct pg_pool *pool, pg_acquire_cb cb, void *ud);

/* Statements on a pinned connection run in the order issued. If the
 * connection dies, the statements in flight or queued get SMSYS_ETEMP and
 * every later call returns SMSYS_ETEMP at once (the transaction is gone;
 * release the connection and start over). */
int pg_conn_query(struct pg_conn *conn, const char *sql, int nparams, const char *const *params,
                  pg_result_cb cb, void *ud);
int pg_conn_query_prepared(struct pg_conn *conn, const char *name, const char *sql, int nparams,
                           const char *const *params, pg_result_cb cb, void *ud);

/* Hands a pinned connection back; conn is invalid after the call.
 * Statements still queued on it complete normally first. If it is then
 * inside a transaction (open or failed), the pool sends ROLLBACK before
 * reusing it; if that fails, or the connection died, it is closed and
 * reconnected. So a caller that gives up midway never leaks a transaction.
 */
void pg_release(struct pg_conn *conn);

/* Backend process id of a pinned connection, 0 when it is not up. */
int pg_conn_backend_pid(const struct pg_conn *conn);

/* Subscribes cb to a notification channel. All channels share one
 * dedicated connection (not counted in size) that re-issues LISTEN after
 * every reconnect (see pg_notify_cb for the NULL payload signal). The
 * channel name is an identifier of 1..63 bytes. Returns 0, -EINVAL,
 * -ENOMEM or SMSYS_ECLOSED. There is no unlisten: subscriptions live as
 * long as the pool. */
int pg_listen(struct pg_pool *pool, const char *channel, pg_notify_cb cb, void *ud);

void pg_pool_stats(const struct pg_pool *pool, struct pg_pool_stats *out);

/* Copies the SQLSTATE of an SMSYS_EPG error into out (6 bytes) and
 * returns 0, or returns -ENOENT when err carries none. */
int pg_err_sqlstate(const struct smsys_err *err, char out[6]);

#endif
