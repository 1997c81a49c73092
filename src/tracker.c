/* tracker.c - polling for delivery states and receipt deadlines (tracker.h). */
#include "smsys/tracker.h"

#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Poll bookkeeping per account id (kept while the process runs; a few
 * dozen accounts at most). */
struct slot {
    struct slot *next;
    char id[64];
    uint64_t last_ns;
    int busy;
};

/* One poll round of one account, alive until its statements finish. */
struct pollctx {
    struct tracker *t;
    struct slot *sl;
    const struct conn_ops *ops;
    char **ids;
    size_t n;
};

struct tracker {
    uv_loop_t *loop;
    struct queue *q;
    struct pg_pool *pg;
    struct connmgr *m;
    struct tracker_opts o;
    uv_timer_t timer;
    struct queue_leader *ld;
    int trying, busy, closing, expiring;
    uint64_t last_expire_ns, last_sweep_ns;
    struct slot *slots;
    void (*close_cb)(void *);
    void *close_ud;
};

static void maybe_finish(struct tracker *t);

static const char *errtext(int rc, const struct smsys_err *err)
{
    return err && err->detail[0] ? err->detail : smsys_strerror(rc);
}

static void ctx_free(struct pollctx *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->ids);
    free(c);
}

static void poll_done(struct pollctx *c)
{
    struct tracker *t = c->t;
    c->sl->busy = 0;
    t->busy--;
    ctx_free(c);
    maybe_finish(t);
}

static void applied_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct pollctx *c = ud;
    if (rc < 0)
        log_warn("polled states not stored", "account=%s error=\"%s\"", c->sl->id,
                 log_q(errtext(rc, err)));
    else
        log_debug("polled states applied", "account=%s matched=%d changed=%d", c->sl->id, matched,
                  changed);
    poll_done(c);
}

static void status_cb(void *ud, int rc, const struct conn_state *st, size_t n,
                      const struct smsys_err *err)
{
    struct pollctx *c = ud;
    if (rc < 0 || n == 0) {
        if (rc < 0 && rc != SMSYS_ECLOSED)
            log_warn("status query failed", "account=%s error=\"%s\"", c->sl->id,
                     log_q(errtext(rc, err)));
        poll_done(c);
        return;
    }
    if (c->t->o.polled)
        metrics_add(c->t->o.polled, (double)n);
    /* Same path as pushed receipts: stored first, matched tolerantly,
     * applied forward-only. */
    if (queue_apply_states(c->t->q, c->sl->id, st, n, applied_cb, c) != 0)
        poll_done(c);
}

static void ids_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pollctx *c = ud;
    struct tracker *t = c->t;
    if (rc < 0) {
        log_warn("cannot list messages to poll", "account=%s error=\"%s\"", c->sl->id,
                 log_q(errtext(rc, err)));
        poll_done(c);
        return;
    }
    int n = PQntuples(res);
    if (n == 0 || t->closing) {
        poll_done(c);
        return;
    }
    c->ids = calloc((size_t)n, sizeof(char *));
    if (c->ids == NULL) {
        poll_done(c);
        return;
    }
    for (int i = 0; i < n; i++)
        if ((c->ids[c->n] = strdup(PQgetvalue(res, i, 0))) != NULL)
            c->n++;
    c->sl->last_ns = uv_hrtime();
    /* The connector may have been reopened since the query was issued:
     * ask the account's current one. */
    struct connmgr_account a;
    if (connmgr_lookup(t->m, c->sl->id, &a) != 0 || a.ops->status == NULL) {
        poll_done(c);
        return;
    }
    int src = a.ops->status(a.conn, (const char *const *)c->ids, c->n, status_cb, c);
    if (src < 0) {
        log_warn("status query not issued", "account=%s error=\"%s\"", c->sl->id,
                 smsys_strerror(src));
        poll_done(c);
    }
}

static struct slot *slot_get(struct tracker *t, const char *id)
{
    for (struct slot *s = t->slots; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    struct slot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->next = t->slots;
    t->slots = s;
    return s;
}

static const char *const ids_sql =
    "SELECT provider_id FROM smsys_message WHERE account_id = $1::uuid AND state = 4"
    " AND provider_id IS NOT NULL AND NOT no_receipt ORDER BY sent_at LIMIT $2::int";

static void each_cb(void *ud, const struct connmgr_account *a)
{
    struct tracker *t = ud;
    if (a->ops->status == NULL)
        return; /* push only */
    struct slot *sl = slot_get(t, a->id);
    if (sl == NULL || sl->busy)
        return;
    uint64_t now = uv_hrtime();
    if (sl->last_ns && now - sl->last_ns < (uint64_t)a->inbound_interval_s * 1000000000ull)
        return;
    sl->last_ns = now;
    struct pollctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->t = t;
    c->sl = sl;
    c->ops = a->ops;
    char lim[16];
    snprintf(lim, sizeof(lim), "%u", t->o.batch);
    const char *params[2] = {a->id, lim};
    if (pg_query(t->pg, ids_sql, 2, params, ids_cb, c) != 0) {
        free(c);
        return;
    }
    sl->busy = 1;
    t->busy++;
}

/* --- re-matching receipts that raced their submit result ----------------
 * A receipt stored while another process's results transaction for the
 * same message was still open sees no provider id and stays unmatched;
 * that transaction in turn did not see the receipt. The sweep finds such
 * receipts (unmatched, not yet swept, whose id now matches a Sent or
 * Unknown message of the account), applies them again through the queue
 * and marks the old rows swept (applied_at) so they are not taken twice. */

struct sweepctx {
    struct tracker *t;
    char account[64];
    struct conn_state *st;
    char **strs;
    size_t n;
    char *rids; /* "{1,2,3}" */
};

static void sweep_free(struct sweepctx *c)
{
    for (size_t i = 0; i < c->n * 3; i++)
        free(c->strs[i]);
    free(c->strs);
    free(c->st);
    free(c->rids);
    c->t->busy--;
    maybe_finish(c->t);
    free(c);
}

static void swept_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct sweepctx *c = ud;
    (void)res;
    if (rc < 0)
        log_warn("cannot mark swept receipts", "account=%s error=\"%s\"", c->account,
                 log_q(errtext(rc, err)));
    sweep_free(c);
}

static void sweep_applied_cb(int rc, int matched, int changed, const struct smsys_err *err,
                             void *ud)
{
    struct sweepctx *c = ud;
    if (rc < 0) {
        log_warn("re-matching receipts failed", "account=%s error=\"%s\"", c->account,
                 log_q(errtext(rc, err)));
        sweep_free(c);
        return;
    }
    log_info("late-matched receipts applied", "account=%s n=%zu matched=%d changed=%d", c->account,
             c->n, matched, changed);
    const char *params[1] = {c->rids};
    if (pg_query(c->t->pg,
                 "UPDATE smsys_receipt SET applied_at = now() WHERE id = ANY ($1::bigint[])"
                 " AND message_id IS NULL",
                 1, params, swept_cb, c) != 0)
        sweep_free(c);
}

static void sweep_rows_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct sweepctx *c = ud;
    int n = rc == 0 ? PQntuples(res) : 0;
    if (rc < 0)
        log_warn("receipt sweep failed", "account=%s error=\"%s\"", c->account,
                 log_q(errtext(rc, err)));
    if (n == 0 || c->t->closing) {
        sweep_free(c);
        return;
    }
    c->st = calloc((size_t)n, sizeof(*c->st));
    c->strs = calloc((size_t)n * 3, sizeof(char *));
    struct buf ids = BUF_INIT;
    if (c->st == NULL || c->strs == NULL) {
        sweep_free(c);
        return;
    }
    buf_putc(&ids, '{');
    for (int i = 0; i < n; i++) {
        c->strs[3 * i] = strdup(PQgetvalue(res, i, 1));
        c->strs[3 * i + 1] = PQgetisnull(res, i, 4) ? NULL : strdup(PQgetvalue(res, i, 4));
        c->strs[3 * i + 2] = PQgetisnull(res, i, 5) ? NULL : strdup(PQgetvalue(res, i, 5));
        c->n++;
        long long v = 0;
        util_parse_int(PQgetvalue(res, i, 2), 0, 100, &v);
        c->st[i].status = (enum conn_status)v;
        v = 0;
        if (!PQgetisnull(res, i, 3))
            util_parse_int(PQgetvalue(res, i, 3), 0, INT64_MAX, &v);
        c->st[i].done_at = v;
        c->st[i].provider_id = c->strs[3 * i] ? c->strs[3 * i] : "";
        c->st[i].our_id = c->strs[3 * i + 1];
        c->st[i].detail = c->strs[3 * i + 2];
        buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
    }
    buf_putc(&ids, '}');
    c->rids = buf_steal(&ids);
    if (c->rids == NULL ||
        queue_apply_states(c->t->q, c->account, c->st, c->n, sweep_applied_cb, c) != 0)
        sweep_free(c);
}

static const char *const sweep_sql =
    "SELECT r.id, r.provider_id, r.status, extract(epoch FROM r.done_at)::bigint,"
    " r.our_id::text, r.detail FROM smsys_receipt r"
    " WHERE r.account_id = $1::uuid AND r.message_id IS NULL AND r.applied_at IS NULL"
    " AND r.received_at < now() - interval '2 seconds'"
    " AND r.received_at > now() - interval '7 days'"
    " AND EXISTS (SELECT 1 FROM smsys_message m WHERE m.account_id = r.account_id"
    "   AND m.state IN (4, 21) AND (m.provider_id_canon IN (r.canon, r.alt)"
    "   OR m.provider_id_alt = r.canon))"
    " ORDER BY r.id LIMIT 1000";

static void sweep_each_cb(void *ud, const struct connmgr_account *a)
{
    struct tracker *t = ud;
    struct sweepctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->t = t;
    snprintf(c->account, sizeof(c->account), "%s", a->id);
    const char *params[1] = {c->account};
    t->busy++;
    if (pg_query(t->pg, sweep_sql, 1, params, sweep_rows_cb, c) != 0)
        sweep_free(c);
}

static void expire_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct tracker *t = ud;
    t->busy--;
    t->expiring = 0;
    if (rc < 0)
        log_warn("receipt deadline check failed", "error=\"%s\"", log_q(errtext(rc, err)));
    else if (n > 0)
        log_warn("messages past their receipt deadline (no delivery report)", "n=%lld",
                 (long long)n);
    maybe_finish(t);
}

static void leader_cb(int rc, struct queue_leader *ld, const struct smsys_err *err, void *ud)
{
    struct tracker *t = ud;
    t->trying = 0;
    t->busy--;
    if (rc < 0)
        log_warn("tracker leader election failed", "error=\"%s\"", log_q(errtext(rc, err)));
    if (ld) {
        if (t->closing) {
            queue_leader_release(ld);
        } else {
            t->ld = ld;
            log_info("tracker: this process tracks deliveries", "job=tracker");
        }
    }
    maybe_finish(t);
}

static void lost_cb(struct queue_leader *ld, void *ud)
{
    struct tracker *t = ud;
    log_warn("tracker: leadership lost", "job=tracker");
    if (t->ld == ld)
        t->ld = NULL;
    queue_leader_release(ld);
}

static void tick_cb(uv_timer_t *h)
{
    struct tracker *t = container_of(h, struct tracker, timer);
    if (t->closing)
        return;
    if (t->ld == NULL) {
        if (!t->trying && queue_leader_try(t->q, "tracker", leader_cb, lost_cb, t) == 0) {
            t->trying = 1;
            t->busy++;
        }
        return;
    }
    uint64_t now = uv_hrtime();
    if (!t->expiring && now - t->last_expire_ns >= (uint64_t)t->o.expire_ms * 1000000ull) {
        t->last_expire_ns = now;
        if (queue_expire_receipts(t->q, 1000, expire_cb, t) == 0) {
            t->expiring = 1;
            t->busy++;
        }
    }
    if (now - t->last_sweep_ns >= (uint64_t)t->o.sweep_ms * 1000000ull) {
        t->last_sweep_ns = now;
        connmgr_each(t->m, sweep_each_cb, t);
    }
    connmgr_each(t->m, each_cb, t);
}

int tracker_new(uv_loop_t *loop, struct queue *q, struct pg_pool *pg, struct connmgr *m,
                const struct tracker_opts *opts, struct tracker **out)
{
    if (!loop || !q || !pg || !m || !out)
        return -EINVAL;
    struct tracker *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    if (opts)
        t->o = *opts;
    if (!t->o.tick_ms)
        t->o.tick_ms = 1000;
    if (!t->o.expire_ms)
        t->o.expire_ms = 60000;
    if (!t->o.batch)
        t->o.batch = 500;
    if (!t->o.sweep_ms)
        t->o.sweep_ms = 10000;
    t->loop = loop;
    t->q = q;
    t->pg = pg;
    t->m = m;
    uv_timer_init(loop, &t->timer);
    uv_timer_start(&t->timer, tick_cb, 0, t->o.tick_ms);
    *out = t;
    return 0;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct tracker *t = container_of((uv_timer_t *)h, struct tracker, timer);
    while (t->slots) {
        struct slot *s = t->slots;
        t->slots = s->next;
        free(s);
    }
    void (*cb)(void *) = t->close_cb;
    void *ud = t->close_ud;
    free(t);
    if (cb)
        cb(ud);
}

static void maybe_finish(struct tracker *t)
{
    if (t->closing != 1 || t->busy)
        return;
    t->closing = 2;
    if (t->ld) {
        queue_leader_release(t->ld);
        t->ld = NULL;
    }
    uv_close((uv_handle_t *)&t->timer, timer_closed_cb);
}

void tracker_close(struct tracker *t, void (*cb)(void *ud), void *ud)
{
    t->closing = 1;
    t->close_cb = cb;
    t->close_ud = ud;
    uv_timer_stop(&t->timer);
    maybe_finish(t);
}

int tracker_is_leader(const struct tracker *t)
{
    return t->ld != NULL;
}
