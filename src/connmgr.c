/* connmgr.c - one connector and one sender per enabled account (connmgr.h). */
#include "smsys/connmgr.h"

#include "smsys/accounts.h"
#include "smsys/inbound.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/mo_parts.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pushed receipt waiting to be stored; strings owned. */
struct pev {
    struct conn_state st;
    conn_ack_fn ack;
    void *token;
};

struct acct {
    struct connmgr *m;
    struct acct *next;
    char *id, *name, *provider, *config, *keysrc, *apikey;
    unsigned inbound_s;
    const struct conn_ops *ops;
    struct conn *conn;
    struct sender *sender;
    struct conn_env env;
    char error[600]; /* why it could not be opened; "" when open */
    int seen, closing, conn_closing;

    uv_timer_t evtimer;
    struct pev *ev, *applying;
    struct conn_state *apply_st; /* the applying batch as the queue wants it */
    size_t nev, capev, napplying;
    int applying_busy;
    int mo_busy; /* MO parts being stored (acked after commit) */

    int balance_busy, has_balance;
    double balance, low_balance; /* low_balance < 0: no threshold */
    char balance_unit[16];
    int health_rc;
};

/* LISTEN has no unsubscribe (pg.h): the notification callback's ud must
 * live as long as the pool, so it is a static relay slot that a closed
 * manager merely empties. A stale slot reused by a later manager can at
 * worst cause a spurious wake-up, which costs one claim. */
struct relay {
    struct connmgr *m;
    struct pg_pool *pool;
};
static struct relay relays[32];

struct connmgr {
    uv_loop_t *loop;
    struct pg_pool *pg;
    struct queue *q;
    struct http_client *http;
    struct connmgr_opts o;
    char *owner;
    struct relay *relay;
    struct acct *accts;
    uv_timer_t poll_timer, reap_timer, balance_timer;
    int nhandles;
    int busy; /* pg calls out */
    int loading, reload_wanted;
    int draining, closing;
    unsigned ndrain;
    void (*drain_cb)(void *);
    void *drain_ud;
    void (*close_cb)(void *);
    void *close_ud;
};

static void acct_close(struct acct *a);
static void maybe_finish(struct connmgr *m);

static const char *const load_sql =
    "SELECT id::text, name, provider, config::text,"
    " COALESCE(to_jsonb(a)->>'apikey', config->>'apikey', ''), inbound_interval_s"
    " FROM smsys_account a WHERE enabled ORDER BY id";

/* --- API keys ----------------------------------------------------------- */

char *connmgr_resolve_key(const char *src, char *why, size_t why_len)
{
    char *key = NULL;
    if (strncmp(src, "env:", 4) == 0) {
        const char *v = getenv(src + 4);
        if (v == NULL) {
            snprintf(why, why_len, "apikey: environment variable %s is not set", src + 4);
            return NULL;
        }
        key = strdup(v);
    } else if (strncmp(src, "file:", 5) == 0) {
        /* A small read, once per connector (re)open, not per message. */
        FILE *f = fopen(src + 5, "r");
        if (f == NULL) {
            snprintf(why, why_len, "apikey: cannot read %s: %s", src + 5, strerror(errno));
            return NULL;
        }
        char line[4096];
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        key = strdup(line);
        memset(line, 0, sizeof(line));
    } else {
        key = strdup(src);
    }
    if (key == NULL)
        snprintf(why, why_len, "apikey: out of memory");
    return key;
}

/* --- receipts ------------------------------------------------------------ */

static void pev_free(struct pev *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)e[i].st.provider_id);
        free((char *)e[i].st.our_id);
        free((char *)e[i].st.detail);
    }
}

static void flush_events(struct acct *a);
static void acct_continue_close(struct acct *a);

static void applied_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct acct *a = ud;
    struct connmgr *m = a->m;
    m->busy--;
    if (rc < 0)
        log_warn("receipts not stored, refused for redelivery", "account=%s n=%zu error=\"%s\"",
                 a->name, a->napplying,
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (m->o.receipts)
        metrics_add(m->o.receipts, (double)a->napplying);
    /* Durable before acknowledged: acks go out only after the commit. */
    for (size_t i = 0; i < a->napplying; i++)
        a->applying[i].ack(a->applying[i].token, rc < 0 ? rc : 0);
    log_debug("receipts applied", "account=%s n=%zu matched=%d changed=%d", a->name, a->napplying,
              matched, changed);
    pev_free(a->applying, a->napplying);
    free(a->applying);
    free(a->apply_st);
    a->apply_st = NULL;
    a->applying = NULL;
    a->napplying = 0;
    a->applying_busy = 0;
    flush_events(a);
    if (a->closing)
        acct_continue_close(a);
    maybe_finish(m);
}

static void flush_events(struct acct *a)
{
    if (a->applying_busy || a->nev == 0)
        return;
    uv_timer_stop(&a->evtimer);
    a->applying = a->ev;
    a->napplying = a->nev;
    a->ev = NULL;
    a->nev = a->capev = 0;
    a->apply_st = malloc(a->napplying * sizeof(*a->apply_st));
    int rc = -ENOMEM;
    if (a->apply_st) {
        for (size_t i = 0; i < a->napplying; i++)
            a->apply_st[i] = a->applying[i].st;
        /* Through the sender's lane when there is one (see sender.h). */
        rc = a->sender
                 ? sender_apply_states(a->sender, a->apply_st, a->napplying, applied_cb, a)
                 : queue_apply_states(a->m->q, a->id, a->apply_st, a->napplying, applied_cb, a);
    }
    if (rc == 0) {
        a->applying_busy = 1;
        a->m->busy++;
        return;
    }
    log_warn("receipts not stored, refused for redelivery", "account=%s n=%zu error=\"%s\"",
             a->name, a->napplying, smsys_strerror(rc));
    for (size_t i = 0; i < a->napplying; i++)
        a->applying[i].ack(a->applying[i].token, rc);
    pev_free(a->applying, a->napplying);
    free(a->applying);
    free(a->apply_st);
    a->apply_st = NULL;
    a->applying = NULL;
    a->napplying = 0;
}

static void evtimer_cb(uv_timer_t *t)
{
    flush_events(container_of(t, struct acct, evtimer));
}

static char *dupn(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct moctx {
    struct acct *a;
    conn_ack_fn ack;
    void *token;
};

static void mo_added_cb(void *ud, int rc, enum mo_parts_outcome outcome,
                        const struct mo_parts_msg *msg, const struct smsys_err *err)
{
    struct moctx *c = ud;
    struct acct *a = c->a;
    /* Durable before acknowledged. A completed group stays in the parts
     * store (not marked done) until the inbound consumer takes it with
     * mo_parts_sweep(). */
    c->ack(c->token, rc < 0 ? rc : 0);
    if (rc < 0)
        log_warn("inbound part not stored, refused for redelivery", "account=%s error=\"%s\"",
                 a->name, log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (outcome == MO_PARTS_COMPLETE && msg)
        inbound_accept_group(a->m->pg, msg, NULL); /* the sweep retries a failure */
    free(c);
    a->mo_busy--;
    a->m->busy--;
    if (a->closing)
        acct_continue_close(a);
    maybe_finish(a->m);
}

static void mo_stored_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    struct moctx *c = ud;
    struct acct *a = c->a;
    /* Durable before acknowledged. */
    c->ack(c->token, rc < 0 ? rc : 0);
    if (rc < 0)
        log_warn("inbound message not stored, refused for redelivery", "account=%s error=\"%s\"",
                 a->name, log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else
        log_debug("inbound message stored", "account=%s id=%lld new=%d", a->name, (long long)id,
                  inserted);
    free(c);
    a->mo_busy--;
    a->m->busy--;
    if (a->closing)
        acct_continue_close(a);
    maybe_finish(a->m);
}

static void event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    struct acct *a = ud;
    if (ev->kind == CONN_EV_MO && ev->u.mo.part_total > 0 && !a->closing) {
        struct moctx *c = malloc(sizeof(*c));
        if (c)
            *c = (struct moctx){a, ack, token};
        int rc = c ? mo_parts_add(a->m->pg, a->id, &ev->u.mo, mo_added_cb, c) : -ENOMEM;
        if (rc < 0) {
            free(c);
            ack(token, rc);
            return;
        }
        a->mo_busy++;
        a->m->busy++;
        return;
    }
    if (ev->kind == CONN_EV_MO && !a->closing) {
        /* A whole message: stored (deduplicated) in smsys_inbound, then
         * acknowledged; refused when it could not be stored. */
        struct moctx *c = malloc(sizeof(*c));
        if (c)
            *c = (struct moctx){a, ack, token};
        int rc = c ? inbound_accept(a->m->pg, a->id, &ev->u.mo, NULL, mo_stored_cb, c) : -ENOMEM;
        if (rc < 0) {
            free(c);
            ack(token, rc);
            return;
        }
        a->mo_busy++;
        a->m->busy++;
        return;
    }
    if (ev->kind != CONN_EV_STATE || a->closing) {
        ack(token, a->closing ? SMSYS_ECLOSED : -EINVAL);
        return;
    }
    if (a->nev == a->capev) {
        size_t cap = a->capev ? a->capev * 2 : 64;
        struct pev *p = realloc(a->ev, cap * sizeof(*p));
        if (p == NULL) {
            ack(token, -ENOMEM);
            return;
        }
        a->ev = p;
        a->capev = cap;
    }
    struct pev *p = &a->ev[a->nev++];
    p->st = ev->u.state;
    p->st.provider_id = dupn(ev->u.state.provider_id);
    p->st.our_id = dupn(ev->u.state.our_id);
    p->st.detail = dupn(ev->u.state.detail);
    p->ack = ack;
    p->token = token;
    if (a->nev >= a->m->o.event_batch)
        flush_events(a);
    else if (!uv_is_active((uv_handle_t *)&a->evtimer))
        uv_timer_start(&a->evtimer, evtimer_cb, a->m->o.event_delay_ms, 0);
}

static void health_cb(void *ud, int rc, const char *detail)
{
    struct acct *a = ud;
    a->health_rc = rc;
    if (rc == 0)
        log_info("connector up", "account=%s detail=\"%s\"", a->name, log_q(detail ? detail : ""));
    else if (rc == SMSYS_EACCOUNT || rc == SMSYS_EAUTH)
        log_error("account-wide connector error", "account=%s error=\"%s\"", a->name,
                  log_q(detail ? detail : smsys_strerror(rc)));
    else
        log_warn("connector degraded", "account=%s error=\"%s\"", a->name,
                 log_q(detail ? detail : smsys_strerror(rc)));
}

/* --- accounts ------------------------------------------------------------ */

static void acct_free_cb(uv_handle_t *h)
{
    struct acct *a = container_of((uv_timer_t *)h, struct acct, evtimer);
    struct connmgr *m = a->m;
    for (struct acct **pp = &m->accts; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    free(a->id);
    free(a->name);
    free(a->provider);
    free(a->config);
    free(a->keysrc);
    if (a->apikey) {
        /* Best effort: do not leave the key in freed memory. */
        volatile char *k = a->apikey;
        for (size_t i = 0; k[i]; i++)
            k[i] = 0;
        free(a->apikey);
    }
    free(a);
    maybe_finish(m);
}

static void sender_closed_cb(void *ud)
{
    struct acct *a = ud;
    a->sender = NULL;
    uv_close((uv_handle_t *)&a->evtimer, acct_free_cb);
}

static void acct_conn_closed_cb(void *ud)
{
    struct acct *a = ud;
    a->conn = NULL;
    if (a->sender)
        sender_close(a->sender, sender_closed_cb, a);
    else
        sender_closed_cb(a);
}

static void acct_continue_close(struct acct *a)
{
    if (a->applying_busy || a->mo_busy || a->conn_closing)
        return;
    a->conn_closing = 1;
    if (a->conn)
        a->ops->close(a->conn, acct_conn_closed_cb, a);
    else
        acct_conn_closed_cb(a);
}

static void acct_close(struct acct *a)
{
    if (a->closing)
        return;
    a->closing = 1;
    log_info("closing account connector", "account=%s", a->name);
    uv_timer_stop(&a->evtimer);
    flush_events(a);
    acct_continue_close(a);
}

static void idem_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    (void)res;
    m->busy--;
    if (rc < 0)
        log_warn("cannot store the account's idempotency flag or failover order", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    maybe_finish(m);
}

static void acct_open(struct acct *a)
{
    struct connmgr *m = a->m;
    a->ops = m->o.find ? m->o.find(a->provider) : connector_find(a->provider);
    if (a->ops == NULL) {
        snprintf(a->error, sizeof(a->error), "no connector for provider \"%s\"", a->provider);
        goto fail;
    }
    a->apikey = connmgr_resolve_key(a->keysrc, a->error, sizeof(a->error));
    if (a->apikey == NULL)
        goto fail;
    cJSON *settings = cJSON_Parse(a->config);
    if (settings == NULL) {
        snprintf(a->error, sizeof(a->error), "config is not valid JSON");
        goto fail;
    }
    /* The key travels in env->apikey, never as a connector setting. */
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "apikey");
    /* Service-level keys: ours, not the connector's (it rejects unknown
     * keys). */
    const cJSON *low = cJSON_GetObjectItemCaseSensitive(settings, "low_balance");
    a->low_balance = -1;
    if (cJSON_IsNumber(low) && low->valuedouble >= 0)
        a->low_balance = low->valuedouble;
    else if (low)
        log_warn("account setting low_balance ignored: not a number >= 0", "account=%s", a->name);
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "low_balance");
    /* failover_order (docs/queue.md "Pause and failover") can be set in
     * Dynamics this way; absent, the column is left as it is. */
    const cJSON *fo = cJSON_GetObjectItemCaseSensitive(settings, "failover_order");
    char fobuf[24] = "";
    int fo_null = cJSON_IsNull(fo);
    if (cJSON_IsNumber(fo) && fo->valuedouble >= 0 && fo->valuedouble <= 1000000)
        snprintf(fobuf, sizeof fobuf, "%d", fo->valueint);
    else if (fo && !fo_null)
        log_warn("account setting failover_order ignored: not an integer 0..1000000", "account=%s",
                 a->name);
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "failover_order");
    /* price_per_segment: the bulk preflight's cost estimate (docs/bulk.md) */
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "price_per_segment");
    a->env = (struct conn_env){
        .loop = m->loop,
        .http = m->http,
        .account_id = a->id,
        .account_name = a->name,
        .apikey = a->apikey,
        .event = event_cb,
        .health = health_cb,
        .ud = a,
    };
    struct smsys_err err = {0};
    int rc = a->ops->open(&a->env, settings, &a->conn, &err);
    cJSON_Delete(settings);
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "%s", err.detail[0] ? err.detail : smsys_strerror(rc));
        a->conn = NULL;
        goto fail;
    }
    struct sender_opts so = {
        .account_id = a->id,
        .account_name = a->name,
        .owner = m->owner,
        .batch = m->o.batch,
        .pipeline = m->o.pipeline,
        .lease_ms = m->o.lease_ms,
        .idle_ms = m->o.idle_ms,
        .metrics = m->o.metrics,
    };
    rc = sender_new(m->loop, m->q, a->ops, a->conn, &so, &a->sender);
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "cannot start the sender: %s", smsys_strerror(rc));
        goto fail;
    }
    const char *params[2] = {a->id, a->ops->supports_idempotency ? "true" : "false"};
    if (pg_query(m->pg,
                 "UPDATE smsys_account SET idempotent = $2::boolean WHERE id = $1::uuid"
                 " AND idempotent IS DISTINCT FROM $2::boolean",
                 2, params, idem_cb, m) == 0)
        m->busy++;
    if (fobuf[0] || fo_null) {
        const char *fp[2] = {a->id, fobuf[0] ? fobuf : NULL};
        if (pg_query(m->pg,
                     "UPDATE smsys_account SET failover_order = $2::integer WHERE id = $1::uuid"
                     " AND failover_order IS DISTINCT FROM $2::integer",
                     2, fp, idem_cb, m) == 0)
            m->busy++;
    }
    log_info("account connector open", "account=%s provider=%s", a->name, a->provider);
    return;
fail:
    /* Kept (without a connector) so health shows it and the next poll
     * does not retry until the row changes. */
    log_error("account connector not opened", "account=%s provider=%s error=\"%s\"", a->name,
              a->provider, log_q(a->error));
}

static struct acct *acct_new(struct connmgr *m, PGresult *res, int row)
{
    struct acct *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->m = m;
    a->id = strdup(PQgetvalue(res, row, 0));
    a->name = strdup(PQgetvalue(res, row, 1));
    a->provider = strdup(PQgetvalue(res, row, 2));
    a->config = strdup(PQgetvalue(res, row, 3));
    a->keysrc = strdup(PQgetvalue(res, row, 4));
    long long v = 0;
    a->inbound_s = util_parse_int(PQgetvalue(res, row, 5), 1, 86400, &v) == 0 ? (unsigned)v : 60;
    if (!a->id || !a->name || !a->provider || !a->config || !a->keysrc) {
        free(a->id);
        free(a->name);
        free(a->provider);
        free(a->config);
        free(a->keysrc);
        free(a);
        return NULL;
    }
    if (a->name[0] == '\0') {
        free(a->name);
        a->name = strdup(a->id);
    }
    uv_timer_init(m->loop, &a->evtimer);
    a->next = m->accts;
    m->accts = a;
    acct_open(a);
    return a;
}

static void load_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    m->busy--;
    m->loading = 0;
    if (rc < 0 || m->closing || m->draining) {
        if (rc < 0)
            log_warn("cannot read accounts", "error=\"%s\"",
                     log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        maybe_finish(m);
        return;
    }
    for (struct acct *a = m->accts; a; a = a->next)
        a->seen = 0;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, 0);
        struct acct *found = NULL;
        for (struct acct *a = m->accts; a; a = a->next)
            if (!a->closing && strcmp(a->id, id) == 0) {
                found = a;
                break;
            }
        if (found && strcmp(found->provider, PQgetvalue(res, i, 2)) == 0 &&
            strcmp(found->config, PQgetvalue(res, i, 3)) == 0 &&
            strcmp(found->keysrc, PQgetvalue(res, i, 4)) == 0) {
            found->seen = 1;
            long long v = 0;
            if (util_parse_int(PQgetvalue(res, i, 5), 1, 86400, &v) == 0)
                found->inbound_s = (unsigned)v;
            continue;
        }
        if (found) {
            log_info("account settings changed: reopening", "account=%s", found->name);
            acct_close(found);
        }
        struct acct *a = acct_new(m, res, i);
        if (a)
            a->seen = 1;
    }
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->seen && !a->closing)
            acct_close(a);
    if (m->reload_wanted) {
        m->reload_wanted = 0;
        connmgr_refresh(m);
    }
}

void connmgr_refresh(struct connmgr *m)
{
    if (m->closing || m->draining)
        return;
    if (m->loading) {
        m->reload_wanted = 1;
        return;
    }
    if (pg_query(m->pg, load_sql, 0, NULL, load_cb, m) == 0) {
        m->loading = 1;
        m->busy++;
    }
}

static void poll_timer_cb(uv_timer_t *t)
{
    connmgr_refresh(container_of(t, struct connmgr, poll_timer));
}

/* --- reaping and balance ------------------------------------------------- */

static void reap_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    m->busy--;
    if (rc < 0)
        log_warn("reaping expired leases failed", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (n > 0)
        log_warn("expired leases reaped (outcome unknown or requeued)", "n=%lld", (long long)n);
    maybe_finish(m);
}

static void reap_timer_cb(uv_timer_t *t)
{
    struct connmgr *m = container_of(t, struct connmgr, reap_timer);
    if (m->closing)
        return;
    if (queue_reap(m->q, 5000, reap_cb, m) == 0)
        m->busy++;
}

static void balance_cb(void *ud, int rc, const struct conn_balance *b, const struct smsys_err *err)
{
    struct acct *a = ud;
    a->balance_busy = 0;
    if (rc < 0 || b == NULL) {
        if (rc != SMSYS_ECLOSED)
            log_warn("balance read failed", "account=%s error=\"%s\"", a->name,
                     log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        return;
    }
    a->has_balance = 1;
    a->balance = b->amount;
    snprintf(a->balance_unit, sizeof(a->balance_unit), "%s", b->unit ? b->unit : "");
    int low = a->low_balance >= 0 && b->amount < a->low_balance;
    if (low)
        log_warn("provider balance low", "account=%s amount=%.2f unit=%s threshold=%.2f", a->name,
                 b->amount, a->balance_unit, a->low_balance);
    else
        log_info("account balance", "account=%s amount=%.2f unit=%s", a->name, b->amount,
                 a->balance_unit);
    const char *labels[] = {"account", a->name, NULL};
    metrics_set(metrics_gauge(NULL, "smsys_provider_balance",
                              "Last credit read from the provider, in its unit.", labels),
                b->amount);
    metrics_set(metrics_gauge(NULL, "smsys_provider_balance_low",
                              "1 when the last credit read is below the account's low_balance.",
                              labels),
                low);
    if (a->m->o.on_balance)
        a->m->o.on_balance(a->m->o.balance_ud, a->id, a->name, b, low);
}

int connmgr_balance_refresh(struct connmgr *m, const char *account_id)
{
    int n = 0;
    if (m->closing || m->draining)
        return 0;
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing || !a->conn || !a->ops->balance || a->balance_busy)
            continue;
        if (account_id && strcmp(a->id, account_id) != 0)
            continue;
        if (a->ops->balance(a->conn, balance_cb, a) == 0) {
            a->balance_busy = 1;
            n++;
        }
    }
    return n;
}

static void balance_timer_cb(uv_timer_t *t)
{
    connmgr_balance_refresh(container_of(t, struct connmgr, balance_timer), NULL);
}

/* --- NOTIFY -------------------------------------------------------------- */

static void notify_cb(const char *channel, const char *payload, void *ud)
{
    struct relay *r = ud;
    struct connmgr *m = r->m;
    (void)channel;
    if (m == NULL || m->closing || m->draining)
        return;
    for (struct acct *a = m->accts; a; a = a->next)
        if (a->sender && !a->closing && (payload == NULL || strcmp(payload, a->id) == 0))
            sender_kick(a->sender);
}

/* An accounts sync changed smsys_account: reload now rather than at the
 * next poll. payload NULL (LISTEN back after a reconnect) reloads too, as
 * a notification may have been missed meanwhile. */
static void accounts_notify_cb(const char *channel, const char *payload, void *ud)
{
    struct relay *r = ud;
    (void)channel;
    (void)payload;
    if (r->m)
        connmgr_refresh(r->m);
}

/* --- lifecycle ----------------------------------------------------------- */

int connmgr_new(uv_loop_t *loop, struct pg_pool *pg, struct queue *q, struct http_client *http,
                const struct connmgr_opts *opts, struct connmgr **out)
{
    if (!loop || !pg || !q || !out)
        return -EINVAL;
    struct connmgr *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    if (opts)
        m->o = *opts;
    m->owner = strdup(m->o.owner ? m->o.owner : "smsysd");
    if (m->owner == NULL) {
        free(m);
        return -ENOMEM;
    }
    m->o.owner = m->owner;
    if (!m->o.lease_ms)
        m->o.lease_ms = 60000;
    if (!m->o.poll_ms)
        m->o.poll_ms = 5000;
    if (!m->o.event_batch)
        m->o.event_batch = 500;
    if (!m->o.event_delay_ms)
        m->o.event_delay_ms = 5;
    if (!m->o.balance_ms)
        m->o.balance_ms = 600000;
    m->loop = loop;
    m->pg = pg;
    m->q = q;
    m->http = http;
    for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++)
        if (relays[i].m == NULL && (relays[i].pool == NULL || relays[i].pool == pg)) {
            m->relay = &relays[i];
            break;
        }
    if (m->relay == NULL) /* all slots in use: take any empty one */
        for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++)
            if (relays[i].m == NULL) {
                m->relay = &relays[i];
                break;
            }
    if (m->relay) {
        m->relay->m = m;
        if (m->relay->pool != pg) {
            m->relay->pool = pg;
            if (queue_listen(q, notify_cb, m->relay) != 0)
                log_warn("cannot LISTEN for new messages: claiming on the timer only", "channel=%s",
                         QUEUE_CHANNEL);
            if (pg_listen(pg, ACCOUNTS_CHANNEL, accounts_notify_cb, m->relay) != 0)
                log_warn("cannot LISTEN for account changes: reading them on the timer only",
                         "channel=%s", ACCOUNTS_CHANNEL);
        }
    }
    uv_timer_init(loop, &m->poll_timer);
    uv_timer_init(loop, &m->reap_timer);
    uv_timer_init(loop, &m->balance_timer);
    m->nhandles = 3;
    unsigned reap_ms = m->o.lease_ms / 2 < 1000 ? 1000 : m->o.lease_ms / 2;
    uv_timer_start(&m->poll_timer, poll_timer_cb, m->o.poll_ms, m->o.poll_ms);
    uv_timer_start(&m->reap_timer, reap_timer_cb, 0, reap_ms);
    uv_timer_start(&m->balance_timer, balance_timer_cb, 2000, m->o.balance_ms);
    connmgr_refresh(m);
    *out = m;
    return 0;
}

void connmgr_each(struct connmgr *m, void (*fn)(void *ud, const struct connmgr_account *a),
                  void *ud)
{
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing || !a->conn)
            continue;
        struct connmgr_account ca = {a->id, a->name, a->ops, a->conn, a->inbound_s};
        fn(ud, &ca);
    }
}

int connmgr_lookup(struct connmgr *m, const char *account_id, struct connmgr_account *out)
{
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn && strcmp(a->id, account_id) == 0) {
            *out = (struct connmgr_account){a->id, a->name, a->ops, a->conn, a->inbound_s};
            return 0;
        }
    return -ENOENT;
}

int connmgr_known(const struct connmgr *m, const char *account_id)
{
    for (const struct acct *a = m->accts; a; a = a->next)
        if (strcmp(a->id, account_id) == 0)
            return 1;
    return 0;
}

int connmgr_push(struct connmgr *m, const char *account_id, const struct conn_event *ev,
                 conn_ack_fn ack, void *token)
{
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn && strcmp(a->id, account_id) == 0) {
            event_cb(a, ev, ack, token);
            return 0;
        }
    return -ENOENT;
}

static void drained_one(struct connmgr *m)
{
    if (m->ndrain > 0 && --m->ndrain == 0 && m->drain_cb) {
        void (*cb)(void *) = m->drain_cb;
        m->drain_cb = NULL;
        cb(m->drain_ud);
    }
}

static void acct_drained_cb(void *ud)
{
    struct acct *a = ud;
    drained_one(a->m);
}

void connmgr_drain(struct connmgr *m, void (*cb)(void *ud), void *ud)
{
    m->draining = 1;
    uv_timer_stop(&m->poll_timer);
    uv_timer_stop(&m->balance_timer);
    m->drain_cb = cb;
    m->drain_ud = ud;
    m->ndrain = 1; /* held until every sender is asked */
    for (struct acct *a = m->accts; a; a = a->next)
        if (a->sender && !a->closing) {
            m->ndrain++;
            sender_drain(a->sender, acct_drained_cb, a);
        }
    drained_one(m);
}

static void mgr_handle_closed_cb(uv_handle_t *h)
{
    struct connmgr *m = h->data;
    m->nhandles--;
    maybe_finish(m);
}

static void maybe_finish(struct connmgr *m)
{
    if (m->closing != 1 || m->accts || m->nhandles || m->busy)
        return;
    m->closing = 2;
    void (*cb)(void *) = m->close_cb;
    void *ud = m->close_ud;
    free(m->owner);
    free(m);
    if (cb)
        cb(ud);
}

void connmgr_close(struct connmgr *m, void (*cb)(void *ud), void *ud)
{
    if (m->closing)
        return;
    m->closing = 1;
    m->draining = 1;
    m->drain_cb = NULL;
    m->close_cb = cb;
    m->close_ud = ud;
    if (m->relay)
        m->relay->m = NULL;
    uv_timer_t *timers[3] = {&m->poll_timer, &m->reap_timer, &m->balance_timer};
    for (int i = 0; i < 3; i++) {
        timers[i]->data = m;
        uv_close((uv_handle_t *)timers[i], mgr_handle_closed_cb);
    }
    for (struct acct *a = m->accts; a; a = a->next)
        acct_close(a);
    maybe_finish(m);
}

int connmgr_health(struct connmgr *m, struct buf *detail)
{
    size_t open = 0, bad = 0;
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing)
            continue;
        if (a->conn)
            open++;
        else
            bad++;
    }
    buf_printf(detail, "%zu account%s open", open, open == 1 ? "" : "s");
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing)
            continue;
        if (!a->conn)
            buf_printf(detail, "; %s: %s", a->name, a->error);
        else if (a->has_balance)
            buf_printf(detail, "; %s balance %.2f %s", a->name, a->balance, a->balance_unit);
    }
    return bad ? -1 : 0;
}

size_t connmgr_count(const struct connmgr *m)
{
    size_t n = 0;
    for (const struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn)
            n++;
    return n;
}
