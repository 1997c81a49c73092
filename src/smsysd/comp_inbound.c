/* comp_inbound.c - inbound SMS as a component (inbound.h): the phone
 * index, the processing rounds, inbox polling of the connector manager's
 * accounts and the multipart sweep, run by the leader of the job
 * "inbound". Whole and multipart MO pushed by connectors are stored by the
 * connector manager itself (connmgr.c), so they are safe even while this
 * component is on standby. It has its own Dataverse client until the
 * process shares one (the outbound pickup brings it). */
#include "smsysd.h"

#include "smsys/dataverse.h"
#include "smsys/inbound.h"
#include "smsys/log.h"
#include "smsys/phone_index.h"

#include <errno.h>
#include <string.h>

struct comp_inbound {
    struct smsysd *d;
    struct dv_client *dv;
    struct phone_index *pi;
    struct inbound *in;
    service_done_cb done;
    void *done_arg;
    int pending;
};

static int in_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_inbound *c = ud;
    struct smsysd *d = c->d;
    const struct smsys_config *cfg = service_config(svc);
    if (d->pg == NULL || d->queue == NULL || d->http == NULL)
        return smsys_err_set(err, -EINVAL, "the connectors component is not running");
    if (cfg->dataverse.url == NULL || cfg->dataverse.url[0] == '\0') {
        log_warn("inbound disabled", "reason=\"no [dataverse] url\"");
        return 0;
    }
    static const enum dv_auth auths[] = {DV_AUTH_CLIENT_CREDENTIALS, DV_AUTH_NTLM,
                                         DV_AUTH_NEGOTIATE};
    struct dv_opts o = {
        .url = cfg->dataverse.url,
        .api_version = cfg->dataverse.api_version,
        .auth = auths[cfg->dataverse.auth],
        .token_url = cfg->dataverse.token_url,
        .client_id = cfg->dataverse.client_id,
        .client_secret = cfg->dataverse.client_secret,
        .scope = cfg->dataverse.scope,
        .resource = cfg->dataverse.resource,
        .username = cfg->dataverse.username,
        .password = cfg->dataverse.password,
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    int rc = dv_new(service_loop(svc), d->http, &o, &c->dv);
    if (rc == 0)
        rc = phone_index_new(d->pg, c->dv, NULL, 0, NULL, &c->pi);
    struct inbound_opts io = {
        .unmatched = cfg->inbound.unmatched == 1 ? INBOUND_UNMATCHED_LEAD : INBOUND_UNMATCHED_LEAVE,
    };
    if (rc == 0)
        rc = inbound_new(service_loop(svc), d->pg, c->dv, d->queue, c->pi, &io, &c->in);
    if (rc == 0) {
        if (d->connmgr)
            inbound_attach_connmgr(c->in, d->connmgr);
        rc = inbound_start(c->in);
    }
    if (rc)
        return smsys_err_set(err, rc, "cannot start inbound: %s", smsys_strerror(rc));
    return 0;
}

/* Both the processor and the Dataverse client must have finished. */
static void in_part_done(struct comp_inbound *c)
{
    if (--c->pending == 0)
        c->done(c->done_arg);
}

static void in_dv_closed_cb(void *ud)
{
    struct comp_inbound *c = ud;
    c->dv = NULL;
    in_part_done(c);
}

static void in_stopped_cb(void *ud)
{
    struct comp_inbound *c = ud;
    inbound_free(c->in);
    c->in = NULL;
    phone_index_free(c->pi);
    c->pi = NULL;
    in_part_done(c);
}

/* Stop: the processor stops taking work, and the Dataverse client is
 * closed at once, so requests in flight (which may be waiting out a 429
 * or a backoff) complete with SMSYS_ECLOSED instead of holding the stop;
 * their rows are retried after the restart. */
static void in_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_inbound *c = ud;
    c->done = done;
    c->done_arg = arg;
    c->pending = 1; /* this call */
    if (c->in) {
        c->pending++;
        inbound_stop(c->in, in_stopped_cb, c);
    } else {
        phone_index_free(c->pi);
        c->pi = NULL;
    }
    if (c->dv) {
        c->pending++;
        dv_close(c->dv, in_dv_closed_cb, c);
    }
    in_part_done(c);
}

static int in_health(void *ud, struct buf *detail)
{
    struct comp_inbound *c = ud;
    buf_puts(detail, c->in ? "ok" : "disabled (no [dataverse] url)");
    return 0;
}

static const struct service_component inbound_component = {
    .name = "inbound",
    .start = in_start,
    .close = in_close,
    .health = in_health,
};

int smsysd_add_inbound(struct smsysd *d)
{
    static struct comp_inbound c;
    c.d = d;
    return service_add(d->svc, &inbound_component, &c);
}
