/* inbound_mo.c - from a connector's CONN_EV_MO to a stored inbound row,
 * including multipart messages through mo_parts (inbound.h). */
#include "smsys/inbound.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/mo_parts.h"

/* ---- a whole message ---- */

struct whole {
    conn_ack_fn ack;
    void *token;
};

static void whole_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    struct whole *w = ud;
    if (rc < 0)
        log_warn("inbound message not stored, refused for redelivery", "error=%s",
                 log_q(err ? err->detail : ""));
    else if (!inserted)
        log_info("inbound message was a redelivery", "id=%" PRId64, id);
    w->ack(w->token, rc < 0 ? rc : 0);
    free(w);
}

/* ---- a completed group: store it, then mark it done ---- */

struct group {
    struct pg_pool *pool;
    int64_t group_id;
    void (*done)(void *ud, int rc); /* NULL: nobody waits */
    void *ud;
};

static void group_done_cb(void *ud, int rc, const struct smsys_err *err)
{
    struct group *g = ud;
    if (rc < 0)
        log_warn("multipart group not marked done (the sweep stores it again, deduplicated)",
                 "group=%" PRId64 " error=%s", g->group_id, log_q(err ? err->detail : ""));
    if (g->done)
        g->done(g->ud, 0);
    free(g);
}

static void group_stored_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    (void)id;
    (void)inserted;
    struct group *g = ud;
    if (rc == 0)
        rc = mo_parts_done(g->pool, g->group_id, group_done_cb, g);
    if (rc < 0) {
        /* The group stays complete and not done: the next sweep retries. */
        log_warn("multipart message not stored yet", "group=%" PRId64 " error=%s", g->group_id,
                 log_q(err ? err->detail : smsys_strerror(rc)));
        if (g->done)
            g->done(g->ud, rc);
        free(g);
    }
}

static int store_group(struct pg_pool *pool, const struct mo_parts_msg *m, const char *country,
                       void (*done)(void *, int), void *ud)
{
    struct group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    *g = (struct group){pool, m->group_id, done, ud};
    char pid[48];
    snprintf(pid, sizeof(pid), "mo-part-group:%" PRId64, m->group_id);
    struct conn_mo mo = {.provider_id = pid,
                         .from = m->from,
                         .to = m->to,
                         .text = m->text,
                         .received_at = m->first_at};
    int rc = inbound_accept(pool, m->account_id, &mo, country, group_stored_cb, g);
    if (rc < 0)
        free(g);
    return rc;
}

void inbound_accept_group(struct pg_pool *pool, const struct mo_parts_msg *msg,
                          const char *default_country)
{
    int rc = store_group(pool, msg, default_country, NULL, NULL);
    if (rc < 0)
        log_warn("multipart message not stored yet (the sweep retries)", "group=%" PRId64 " rc=%d",
                 msg->group_id, rc);
}

/* ---- a part ---- */

struct part {
    struct pg_pool *pool;
    conn_ack_fn ack;
    void *token;
    char country[8];
};

static void part_cb(void *ud, int rc, enum mo_parts_outcome outcome, const struct mo_parts_msg *msg,
                    const struct smsys_err *err)
{
    struct part *p = ud;
    /* Durable before acknowledged: the part is committed now. */
    p->ack(p->token, rc < 0 ? rc : 0);
    if (rc < 0)
        log_warn("inbound part not stored, refused for redelivery", "error=%s",
                 log_q(err ? err->detail : ""));
    else if (outcome == MO_PARTS_COMPLETE && msg)
        inbound_accept_group(p->pool, msg, p->country);
    free(p);
}

int inbound_on_mo(struct pg_pool *pool, const char *account_id, const struct conn_mo *mo,
                  const char *default_country, conn_ack_fn ack, void *token)
{
    if (mo->part_total > 0) {
        struct part *p = calloc(1, sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        p->pool = pool;
        p->ack = ack;
        p->token = token;
        snprintf(p->country, sizeof(p->country), "%s", default_country ? default_country : "");
        int rc = mo_parts_add(pool, account_id, mo, part_cb, p);
        if (rc < 0)
            free(p);
        return rc;
    }
    struct whole *w = malloc(sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->ack = ack;
    w->token = token;
    int rc = inbound_accept(pool, account_id, mo, default_country, whole_cb, w);
    if (rc < 0)
        free(w);
    return rc;
}

/* ---- sweep ---- */

struct sweep {
    struct pg_pool *pool;
    unsigned older_than_s;
    char country[8];
    int phase; /* 0 complete groups, 1 expired groups */
    unsigned pending, stored;
    int listed; /* the list call of this phase returned */
    int rc;
    inbound_sweep_cb cb;
    void *ud;
};

static void sweep_next(struct sweep *s);

static void sweep_item_cb(void *ud, int rc)
{
    struct sweep *s = ud;
    s->pending--;
    if (rc == 0)
        s->stored++;
    if (s->pending == 0 && s->listed)
        sweep_next(s);
}

static void list_cb(void *ud, int rc, const struct mo_parts_msg *msgs, size_t n,
                    const struct smsys_err *err)
{
    struct sweep *s = ud;
    if (rc < 0) {
        s->cb(s->ud, rc, s->stored, err);
        free(s);
        return;
    }
    s->listed = 0;
    for (size_t i = 0; i < n; i++)
        if (store_group(s->pool, &msgs[i], s->country, sweep_item_cb, s) == 0)
            s->pending++;
    s->listed = 1;
    if (s->pending == 0)
        sweep_next(s);
}

static void sweep_next(struct sweep *s)
{
    int rc;
    s->listed = 0;
    if (s->phase == 0) {
        s->phase = 1;
        rc = mo_parts_sweep(s->pool, list_cb, s);
    } else if (s->phase == 1) {
        s->phase = 2;
        rc = mo_parts_expire(s->pool, s->older_than_s, list_cb, s);
    } else {
        s->cb(s->ud, 0, s->stored, NULL);
        free(s);
        return;
    }
    if (rc < 0) {
        struct smsys_err e = {.code = rc};
        snprintf(e.detail, sizeof(e.detail), "multipart sweep: %s", smsys_strerror(rc));
        s->cb(s->ud, rc, s->stored, &e);
        free(s);
    }
}

int inbound_sweep_parts(struct pg_pool *pool, unsigned older_than_s, const char *default_country,
                        inbound_sweep_cb cb, void *ud)
{
    struct sweep *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->pool = pool;
    s->older_than_s = older_than_s;
    snprintf(s->country, sizeof(s->country), "%s", default_country ? default_country : "");
    s->cb = cb;
    s->ud = ud;
    s->phase = 1;
    s->listed = 0;
    int rc = mo_parts_sweep(pool, list_cb, s);
    if (rc < 0)
        free(s);
    return rc;
}

/* ---- inbox polling ---- */

struct poll {
    struct pg_pool *pool;
    char *account_id;
    char country[8];
    unsigned fetched, inserted, pending;
    int rc, listed;
    struct smsys_err err;
    inbound_poll_cb cb;
    void *ud;
};

static void poll_finish(struct poll *p)
{
    if (p->rc < 0)
        log_error("inbox messages fetched but not stored",
                  "account=%s fetched=%u stored=%u "
                  "error=%s",
                  p->account_id, p->fetched, p->inserted, log_q(p->err.detail));
    p->cb(p->ud, p->rc, p->fetched, p->inserted, p->rc < 0 ? &p->err : NULL);
    free(p->account_id);
    free(p);
}

static void poll_acc_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    (void)id;
    struct poll *p = ud;
    p->pending--;
    if (rc < 0 && p->rc == 0) {
        p->rc = rc;
        p->err = err ? *err : (struct smsys_err){.code = rc};
    }
    p->inserted += rc == 0 && inserted;
    if (p->pending == 0 && p->listed)
        poll_finish(p);
}

static void inbox_cb(void *ud, int rc, const struct conn_mo *mo, size_t n,
                     const struct smsys_err *err)
{
    struct poll *p = ud;
    if (rc < 0) {
        p->cb(p->ud, rc, 0, 0, err);
        free(p->account_id);
        free(p);
        return;
    }
    p->fetched = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        int arc = inbound_accept(p->pool, p->account_id, &mo[i], p->country, poll_acc_cb, p);
        if (arc == 0) {
            p->pending++;
        } else if (p->rc == 0) {
            p->rc = arc;
            p->err.code = arc;
            snprintf(p->err.detail, sizeof(p->err.detail), "message %zu: %s", i,
                     smsys_strerror(arc));
        }
    }
    p->listed = 1;
    if (p->pending == 0)
        poll_finish(p);
}

int inbound_poll_inbox(struct pg_pool *pool, const char *account_id, const struct conn_ops *ops,
                       struct conn *conn, const char *default_country, inbound_poll_cb cb, void *ud)
{
    if (ops->inbox == NULL)
        return -ENOTSUP;
    struct poll *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->account_id = strdup(account_id)) == NULL) {
        free(p);
        return -ENOMEM;
    }
    p->pool = pool;
    snprintf(p->country, sizeof(p->country), "%s", default_country ? default_country : "");
    p->cb = cb;
    p->ud = ud;
    int rc = ops->inbox(conn, inbox_cb, p);
    if (rc < 0) {
        free(p->account_id);
        free(p);
    }
    return rc;
}
