/* dynamics.c - the "dynamics: sign in and WhoAmI" check of smsysctl
 * doctor: one real sign-in and one WhoAmI request with the service's own
 * client code (http_client + dataverse) on a private loop, bounded by a
 * deadline so doctor never hangs on an unreachable server. */
#include "ctl.h"

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct whoami_run {
    uv_loop_t loop;
    uv_timer_t deadline;
    struct http_client *http;
    struct dv_client *dv;
    int done;     /* the WhoAmI callback ran, or the deadline passed */
    int rc;       /* its result */
    int timedout; /* the deadline passed first */
    struct dv_whoami who;
    struct smsys_err err;
};

static void whoami_cb(int rc, const struct dv_whoami *who, const struct smsys_err *err, void *ud)
{
    struct whoami_run *r = ud;
    if (r->done)
        return;
    r->done = 1;
    r->rc = rc;
    if (rc == 0 && who)
        r->who = *who;
    if (err)
        r->err = *err;
}

static void deadline_cb(uv_timer_t *t)
{
    struct whoami_run *r = container_of(t, struct whoami_run, deadline);
    if (!r->done) {
        r->done = 1;
        r->timedout = 1;
        r->rc = -ETIMEDOUT;
    }
}

/* What to tell the operator for each kind of failure. */
static const char *fix_for(const struct smsys_config *cfg, int rc, const char *detail)
{
    int oauth = cfg->dataverse.auth == CONFIG_AUTH_CLIENT_CREDENTIALS;
    if (rc == SMSYS_EAUTH)
        return oauth ? "check [dataverse] token_url, client_id, client_secret and scope/resource; "
                       "the app registration must be an application user in Dynamics"
                     : "check [dataverse] username and password (and the domain)";
    if (rc == SMSYS_EPERM)
        return "signed in, but the user has no access: give the application user a security "
               "role in Dynamics";
    if (rc == SMSYS_ENOTFOUND)
        return "check [dataverse] url (organisation root, without /api/data) and api_version";
    if (detail && (strstr(detail, "certificate") || strstr(detail, "SSL") || strstr(detail, "TLS")))
        return "the server's TLS certificate is not trusted: set [dataverse] ca_file to your CA "
               "bundle";
    if (rc == -ETIMEDOUT || rc == SMSYS_ETEMP)
        return "is [dataverse] url reachable from this host? check DNS, firewall and [dataverse] "
               "proxy";
    return "check the [dataverse] section (smsysctl config dump)";
}

int ctl_check_dynamics(const struct smsys_config *cfg, char *what, size_t wlen, char *fix,
                       size_t flen)
{
    struct whoami_run r = {0};
    int rc = uv_loop_init(&r.loop);
    if (rc) {
        snprintf(fix, flen, "cannot create an event loop: %s", uv_strerror(rc));
        return -1;
    }
    struct http_client_opts ho = {
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .proxy = cfg->dataverse.proxy,
        .ca_file = cfg->dataverse.ca_file,
        .user_agent = "smsysctl-doctor",
    };
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
        .max_concurrency = 1,
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        /* One quick answer beats the service's patient retries here. */
        .max_retries = 1,
        .throttle_retries = 1,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    rc = http_client_new(&r.loop, &ho, &r.http);
    if (rc == 0)
        rc = dv_new(&r.loop, r.http, &o, &r.dv);
    if (rc == 0)
        rc = dv_whoami(r.dv, whoami_cb, &r);
    if (rc == 0) {
        uv_timer_init(&r.loop, &r.deadline);
        /* Token request plus WhoAmI, each with a retry, and some slack. */
        uv_timer_start(&r.deadline, deadline_cb,
                       (uint64_t)cfg->dataverse.request_timeout_ms * 4 + 2000, 0);
        while (!r.done && uv_run(&r.loop, UV_RUN_ONCE))
            ;
        uv_close((uv_handle_t *)&r.deadline, NULL);
        rc = r.rc;
    } else {
        smsys_err_set(&r.err, rc, "%s", smsys_strerror(rc));
    }
    if (r.dv)
        dv_close(r.dv, NULL, NULL);
    if (r.http)
        http_client_close(r.http, NULL, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);

    if (rc == 0) {
        snprintf(what, wlen, "dynamics: signed in to %s, WhoAmI user %s (organization %s)",
                 cfg->dataverse.url, r.who.user_id, r.who.organization_id);
        return 0;
    }
    const char *detail = r.timedout        ? "no answer in time"
                         : r.err.detail[0] ? r.err.detail
                                           : smsys_strerror(rc);
    snprintf(what, wlen, "dynamics: sign in to %s and WhoAmI", cfg->dataverse.url);
    snprintf(fix, flen, "%s; %s", detail, fix_for(cfg, rc, detail));
    return -1;
}
