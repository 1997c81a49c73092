/* comp_pg.c - the PostgreSQL pool as a service component. The pool
 * connects in the background: a database that is down at start is not
 * fatal (health says so and the pool keeps retrying with backoff). */
#include "smsysd.h"

#include "smsys/metrics.h"
#include "smsys/pg.h"

#include <errno.h>
#include <stdint.h>

struct comp_pg {
    struct smsysd *d;
    service_done_cb done;
    void *done_arg;
    uint64_t seen_reconnects, seen_queries; /* already added to the counters */
};

/* Copies the pool's stats into gauges and counters before a scrape. */
static void pg_scrape_cb(struct smsysd *d, void *ud)
{
    struct comp_pg *c = ud;
    if (d->pg == NULL)
        return;
    struct pg_pool_stats st;
    pg_pool_stats(d->pg, &st);
    static const char *const help = "PostgreSQL pool connections by state.";
    metrics_set(metrics_gauge(NULL, "smsys_pg_connections", help,
                              (const char *[]){"state", "configured", NULL}),
                st.size);
    metrics_set(metrics_gauge(NULL, "smsys_pg_connections", help,
                              (const char *[]){"state", "connected", NULL}),
                st.connected);
    metrics_set(
        metrics_gauge(NULL, "smsys_pg_connections", help, (const char *[]){"state", "busy", NULL}),
        st.busy);
    metrics_set(metrics_gauge(NULL, "smsys_pg_queued_requests",
                              "Requests waiting for a PostgreSQL connection.", NULL),
                st.queued);
    metrics_add(metrics_counter(NULL, "smsys_pg_reconnects_total",
                                "PostgreSQL connections re-established after a loss.", NULL),
                (double)(st.reconnects - c->seen_reconnects));
    metrics_add(metrics_counter(NULL, "smsys_pg_queries_total",
                                "PostgreSQL statements completed (ok or error).", NULL),
                (double)(st.queries - c->seen_queries));
    c->seen_reconnects = st.reconnects;
    c->seen_queries = st.queries;
}

static int pg_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_pg *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    int rc = pg_pool_new(service_loop(svc), cfg->postgres.conninfo,
                         (unsigned)cfg->postgres.pool_size, &c->d->pg);
    if (rc == -EINVAL)
        return smsys_err_set(err, rc, "[postgres] conninfo is not a valid libpq connection string");
    if (rc)
        return smsys_err_set(err, rc, "cannot create the PostgreSQL pool: %s", smsys_strerror(rc));
    return 0;
}

static void comp_pg_closed_cb(void *ud)
{
    struct comp_pg *c = ud;
    c->d->pg = NULL;
    c->done(c->done_arg);
}

static void pg_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_pg *c = ud;
    if (c->d->pg == NULL) {
        done(arg);
        return;
    }
    c->done = done;
    c->done_arg = arg;
    pg_pool_close(c->d->pg, comp_pg_closed_cb, c);
}

static int pg_health(void *ud, struct buf *detail)
{
    struct comp_pg *c = ud;
    if (c->d->pg == NULL) {
        buf_puts(detail, "closed");
        return -1;
    }
    struct pg_pool_stats st;
    pg_pool_stats(c->d->pg, &st);
    /* One live connection is enough to make progress; none is an outage. */
    if (st.connected)
        buf_printf(detail, "ok %u/%u connected, %u busy, %u queued", st.connected, st.size, st.busy,
                   st.queued);
    else
        buf_printf(detail, "connecting: %s",
                   st.last_error[0] ? st.last_error : "no connection yet");
    return st.connected ? 0 : -1;
}

static const struct service_component pg_component = {
    .name = "pg",
    .start = pg_start,
    /* No drain of its own: the components that issue queries drain first
     * (reverse order), and pending queries finish or fail with ECLOSED. */
    .close = pg_close,
    .health = pg_health,
};

int smsysd_add_pg(struct smsysd *d)
{
    static struct comp_pg c;
    c.d = d;
    int rc = smsysd_on_scrape(d, pg_scrape_cb, &c);
    return rc ? rc : service_add(d->svc, &pg_component, &c);
}
