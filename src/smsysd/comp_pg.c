/* comp_pg.c - the PostgreSQL pool as a service component. The pool
 * connects in the background: a database that is down at start is not
 * fatal (health says so and the pool keeps retrying with backoff). */
#include "smsysd.h"

#include "smsys/log.h"
#include "smsys/pg.h"

#include <errno.h>

struct comp_pg {
    struct smsysd *d;
    service_done_cb done;
    void *done_arg;
};

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
    buf_printf(detail, "%s %u/%u connected, %u busy, %u queued",
               st.connected ? "ok" : "connecting:", st.connected, st.size, st.busy, st.queued);
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
    return service_add(d->svc, &pg_component, &c);
}
