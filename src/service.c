/* service.c - smsysd lifecycle: start, drain, close, reload.
 *
 * States go RUNNING -> DRAINING -> CLOSING -> CLOSED and never back. The
 * shutdown timer bounds both DRAINING (the grace period) and CLOSING (a
 * component that never reports closed must not hang the process). */
#include "smsys/service.h"

#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long closing may take once drain is over; handles close in one or
 * two loop turns, so this only fires on a bug. */
#define CLOSE_TIMEOUT_MS 5000

enum svc_state { SVC_NEW, SVC_RUNNING, SVC_DRAINING, SVC_CLOSING, SVC_CLOSED };

struct comp {
    struct service_component c;
    void *ud;
    struct service *svc;
    int started;
    int drained;
    int closed;
};

struct hook {
    const char *name;
    service_reload_cb cb;
    void *ud;
};

struct reload_req {
    uv_work_t work;
    struct service *svc;
    struct smsys_config *cfg; /* result; owned until installed */
    struct smsys_err err;
};

struct service {
    uv_loop_t *loop;
    char *path;
    struct smsys_config *cfg;
    enum svc_state state;
    int exit_code;
    int start_failed;

    struct comp *comps;
    size_t ncomps;
    size_t drain_pending;
    size_t close_next; /* components [0, close_next) remain to close */

    struct hook *hooks;
    size_t nhooks;

    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t timer;
    int handles_open; /* signal and timer handles not yet closed */

    struct reload_req *reload; /* in flight, or NULL */
    int reload_again;          /* another SIGHUP came during the reload */
};

static void begin_close(struct service *svc);

static int apply_log(void *ud, const struct smsys_config *old, const struct smsys_config *cfg,
                     struct smsys_err *err)
{
    log_setup((enum log_level)cfg->log.level, (enum log_format)cfg->log.format, NULL);
    return 0;
}

int service_new(uv_loop_t *loop, const char *config_path, struct smsys_config *cfg,
                struct service **out)
{
    struct service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL || (svc->path = strdup(config_path)) == NULL) {
        free(svc);
        config_free(cfg);
        return -ENOMEM;
    }
    svc->loop = loop;
    svc->cfg = cfg;
    svc->state = SVC_NEW;
    if (service_on_reload(svc, "log", apply_log, NULL) != 0) {
        service_free(svc);
        return -ENOMEM;
    }
    apply_log(NULL, NULL, cfg, NULL);
    *out = svc;
    return 0;
}

int service_add(struct service *svc, const struct service_component *c, void *ud)
{
    if (svc->state != SVC_NEW)
        return -EBUSY;
    struct comp *n = realloc(svc->comps, (svc->ncomps + 1) * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    svc->comps = n;
    svc->comps[svc->ncomps++] = (struct comp){.c = *c, .ud = ud, .svc = svc};
    return 0;
}

int service_on_reload(struct service *svc, const char *name, service_reload_cb cb, void *ud)
{
    struct hook *n = realloc(svc->hooks, (svc->nhooks + 1) * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    svc->hooks = n;
    svc->hooks[svc->nhooks++] = (struct hook){name, cb, ud};
    return 0;
}

const struct smsys_config *service_config(const struct service *svc)
{
    return svc->cfg;
}

uv_loop_t *service_loop(const struct service *svc)
{
    return svc->loop;
}

int service_stopping(const struct service *svc)
{
    return svc->state >= SVC_DRAINING;
}

/* ---- shutdown ---- */

static void handle_closed_cb(uv_handle_t *h)
{
    struct service *svc = h->data;
    svc->handles_open--;
}

static void close_own_handles(struct service *svc)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&svc->sig_term, (uv_handle_t *)&svc->sig_int,
                         (uv_handle_t *)&svc->sig_hup, (uv_handle_t *)&svc->timer};
    for (size_t i = 0; i < ARRAY_LEN(hs); i++)
        if (hs[i]->data && !uv_is_closing(hs[i]))
            uv_close(hs[i], handle_closed_cb);
}

static void close_next(struct service *svc);

static void comp_closed_cb(void *arg)
{
    struct comp *c = arg;
    if (c->closed)
        return; /* a component calling back twice must not skip another */
    c->closed = 1;
    log_debug("component closed", "name=%s", c->c.name);
    /* The callback may come from inside close(); close_next loops only
     * from its own frame, so re-entry just advances the index. */
    if (c->svc->state == SVC_CLOSING)
        close_next(c->svc);
}

static void close_next(struct service *svc)
{
    while (svc->close_next > 0) {
        struct comp *c = &svc->comps[svc->close_next - 1];
        if (!c->started || c->closed || c->c.close == NULL) {
            c->closed = 1;
            svc->close_next--;
            continue;
        }
        if (c->started == 2)
            return; /* close() in progress: its callback continues */
        c->started = 2;
        c->c.close(c->ud, comp_closed_cb, c);
        if (!c->closed)
            return;
    }
    if (svc->state != SVC_CLOSING)
        return;
    svc->state = SVC_CLOSED;
    log_info("service stopped", "exit_code=%d", svc->exit_code);
    close_own_handles(svc);
}

static void close_timeout_cb(uv_timer_t *t)
{
    struct service *svc = t->data;
    const char *who = svc->close_next ? svc->comps[svc->close_next - 1].c.name : "?";
    log_error("component did not close in time", "name=%s timeout_ms=%d", who, CLOSE_TIMEOUT_MS);
    svc->exit_code = 1;
    uv_stop(svc->loop);
}

static void begin_close(struct service *svc)
{
    if (svc->state >= SVC_CLOSING)
        return;
    svc->state = SVC_CLOSING;
    if (svc->timer.data) {
        uv_timer_stop(&svc->timer);
        uv_timer_start(&svc->timer, close_timeout_cb, CLOSE_TIMEOUT_MS, 0);
    }
    svc->close_next = svc->ncomps;
    close_next(svc);
}

static void comp_drained_cb(void *arg)
{
    struct comp *c = arg;
    struct service *svc = c->svc;
    if (c->drained)
        return;
    c->drained = 1;
    log_debug("component drained", "name=%s", c->c.name);
    if (--svc->drain_pending == 0 && svc->state == SVC_DRAINING) {
        log_info("in-flight work finished", "components=%zu", svc->ncomps);
        begin_close(svc);
    }
}

static void grace_expired_cb(uv_timer_t *t)
{
    struct service *svc = t->data;
    if (svc->state != SVC_DRAINING)
        return;
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < svc->ncomps; i++)
        if (svc->comps[i].started && !svc->comps[i].drained)
            buf_printf(&b, "%s%s", b.len ? "," : "", svc->comps[i].c.name);
    log_warn("grace period over, closing with work in flight", "grace_period_ms=%lld pending=%s",
             svc->cfg->service.grace_period_ms, b.data ? b.data : "");
    buf_free(&b);
    begin_close(svc);
}

void service_stop(struct service *svc, int force)
{
    if (svc->state == SVC_NEW || svc->state == SVC_RUNNING) {
        if (force) {
            log_info("stopping now", "state=%d", (int)svc->state);
            begin_close(svc);
            return;
        }
        svc->state = SVC_DRAINING;
        log_info("stopping", "grace_period_ms=%lld", svc->cfg->service.grace_period_ms);
        if (svc->timer.data) {
            /* the grace period counts from now: the loop's cached clock may
             * be as old as the callback (or the setup) that stopped us */
            uv_update_time(svc->loop);
            uv_timer_start(&svc->timer, grace_expired_cb,
                           (uint64_t)svc->cfg->service.grace_period_ms, 0);
        }
        /* Count one extra so callbacks made from inside drain() cannot
         * reach zero before every component has been asked. */
        svc->drain_pending = 1;
        for (size_t i = svc->ncomps; i-- > 0;) {
            struct comp *c = &svc->comps[i];
            if (!c->started || c->c.drain == NULL) {
                c->drained = 1;
                continue;
            }
            svc->drain_pending++;
            c->c.drain(c->ud, comp_drained_cb, c);
        }
        if (--svc->drain_pending == 0 && svc->state == SVC_DRAINING)
            begin_close(svc);
    } else if (svc->state == SVC_DRAINING && force) {
        log_warn("second stop signal, closing with work in flight", "pending=%zu",
                 svc->drain_pending);
        begin_close(svc);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct service *svc = h->data;
    if (signum == SIGHUP) {
        service_reload(svc);
        return;
    }
    log_info("signal received", "signal=%s", signum == SIGTERM ? "TERM" : "INT");
    service_stop(svc, svc->state == SVC_DRAINING);
}

/* ---- reload ---- */

static void reload_work_cb(uv_work_t *w)
{
    struct reload_req *r = container_of(w, struct reload_req, work);
    /* Off the loop thread: config_load reads files, and file:PATH may sit
     * on a slow mount. */
    config_load(r->svc->path, &r->cfg, &r->err);
}

/* Logs each key whose effective value changed; returns how many. */
static int log_changes(const struct smsys_config *old, const struct smsys_config *cfg)
{
    size_t n;
    const struct config_key *keys = config_keys(&n);
    struct buf a = BUF_INIT, b = BUF_INIT;
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        buf_reset(&a);
        buf_reset(&b);
        /* Compare real values (a rotated secret is a change) but print
         * masked ones. */
        if (config_value_str(old, k, 0, &a) || config_value_str(cfg, k, 0, &b))
            continue;
        if (strcmp(a.data ? a.data : "", b.data ? b.data : "") == 0)
            continue;
        changed++;
        int secret = k->type == CONFIG_SECRET || (k->flags & CONFIG_MASK_DSN);
        if (!(k->flags & CONFIG_LIVE)) {
            log_warn("config change needs a restart", "key=%s.%s", k->section, k->key);
        } else if (secret) {
            log_info("config changed", "key=%s.%s", k->section, k->key);
        } else {
            log_info("config changed", "key=%s.%s old=\"%s\" new=\"%s\"", k->section, k->key,
                     log_q(a.data ? a.data : ""), log_q(b.data ? b.data : ""));
        }
    }
    buf_free(&a);
    buf_free(&b);
    return changed;
}

/* Counts a reload and records whether it succeeded, as Prometheus does
 * for itself, so operators can alert on a bad file left in place. */
static void count_reload(int ok)
{
    metrics_inc(metrics_counter(NULL, "smsys_config_reloads_total",
                                "Configuration reloads (SIGHUP).",
                                (const char *[]){"result", ok ? "ok" : "error", NULL}));
    metrics_set(metrics_gauge(NULL, "smsys_config_last_reload_successful",
                              "1 when the last configuration reload succeeded.", NULL),
                ok);
}

static void reload_after_cb(uv_work_t *w, int status)
{
    struct reload_req *r = container_of(w, struct reload_req, work);
    struct service *svc = r->svc;
    svc->reload = NULL;
    if (status != 0 || svc->state != SVC_RUNNING) {
        config_free(r->cfg);
        free(r);
        return;
    }
    if (r->cfg == NULL) {
        log_error("config reload failed, keeping the running config", "error=\"%s\"",
                  log_q(r->err.detail));
        count_reload(0);
    } else {
        struct smsys_config *old = svc->cfg;
        int changed = log_changes(old, r->cfg);
        const char *w0 = r->cfg->warnings;
        while (w0 && *w0) {
            const char *nl = strchr(w0, '\n');
            size_t len = nl ? (size_t)(nl - w0) : strlen(w0);
            log_warn("config warning", "warning=\"%.*s\"", (int)len, w0);
            w0 += len + (nl ? 1 : 0);
        }
        int failed = 0;
        for (size_t i = 0; i < svc->ncomps; i++) {
            struct comp *c = &svc->comps[i];
            struct smsys_err err = {0};
            if (c->started && c->c.reload && c->c.reload(c->ud, old, r->cfg, &err) != 0) {
                failed++;
                log_error("reload failed", "component=%s error=\"%s\"", c->c.name,
                          log_q(err.detail));
            }
        }
        for (size_t i = 0; i < svc->nhooks; i++) {
            struct smsys_err err = {0};
            if (svc->hooks[i].cb(svc->hooks[i].ud, old, r->cfg, &err) != 0) {
                failed++;
                log_error("reload failed", "component=%s error=\"%s\"", svc->hooks[i].name,
                          log_q(err.detail));
            }
        }
        svc->cfg = r->cfg;
        r->cfg = NULL;
        config_free(old);
        log_info("config reloaded", "file=%s changed=%d failed=%d", svc->path, changed, failed);
        count_reload(failed == 0);
        log_debug("reload hooks ran", "hooks=%zu components=%zu", svc->nhooks, svc->ncomps);
    }
    free(r);
    if (svc->reload_again) {
        svc->reload_again = 0;
        service_reload(svc);
    }
}

void service_reload(struct service *svc)
{
    if (svc->state != SVC_RUNNING)
        return;
    if (svc->reload) {
        svc->reload_again = 1;
        return;
    }
    log_info("reloading config", "file=%s", svc->path);
    struct reload_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        log_error("config reload failed, keeping the running config", "error=\"out of memory\"");
        return;
    }
    r->svc = svc;
    int rc = uv_queue_work(svc->loop, &r->work, reload_work_cb, reload_after_cb);
    if (rc) {
        log_error("config reload failed, keeping the running config", "error=\"%s\"",
                  uv_strerror(rc));
        free(r);
        return;
    }
    svc->reload = r;
}

/* ---- start / run / free ---- */

static int init_signal(struct service *svc, uv_signal_t *h, int signum)
{
    int rc = uv_signal_init(svc->loop, h);
    if (rc)
        return rc;
    h->data = svc;
    svc->handles_open++;
    return uv_signal_start(h, signal_cb, signum);
}

int service_start(struct service *svc, struct smsys_err *err)
{
    if (svc->state != SVC_NEW)
        return smsys_err_set(err, -EBUSY, "service already started");
    int rc = uv_timer_init(svc->loop, &svc->timer);
    if (rc == 0) {
        svc->timer.data = svc;
        svc->handles_open++;
        rc = init_signal(svc, &svc->sig_term, SIGTERM);
    }
    if (rc == 0)
        rc = init_signal(svc, &svc->sig_int, SIGINT);
    if (rc == 0)
        rc = init_signal(svc, &svc->sig_hup, SIGHUP);
    if (rc) {
        smsys_err_set(err, rc, "cannot install signal handlers: %s", uv_strerror(rc));
        svc->start_failed = 1;
        svc->state = SVC_CLOSING;
        close_own_handles(svc);
        return rc;
    }
    svc->state = SVC_RUNNING;
    for (size_t i = 0; i < svc->ncomps; i++) {
        struct comp *c = &svc->comps[i];
        if (c->c.start) {
            struct smsys_err e = {0};
            rc = c->c.start(svc, c->ud, &e);
            if (rc) {
                smsys_err_set(err, rc, "%s: %s", c->c.name,
                              e.detail[0] ? e.detail : smsys_strerror(rc));
                log_error("component failed to start", "name=%s error=\"%s\"", c->c.name,
                          log_q(err->detail));
                svc->start_failed = 1;
                svc->exit_code = 1;
                begin_close(svc);
                return rc;
            }
        }
        c->started = 1;
        log_debug("component started", "name=%s", c->c.name);
    }
    const char *w = svc->cfg->warnings;
    while (w && *w) {
        const char *nl = strchr(w, '\n');
        size_t len = nl ? (size_t)(nl - w) : strlen(w);
        log_warn("config warning", "warning=\"%.*s\"", (int)len, w);
        w += len + (nl ? 1 : 0);
    }
    log_info("service started", "instance=%s components=%zu config=%s",
             svc->cfg->service.instance_name, svc->ncomps, svc->path);
    return 0;
}

int service_run(struct service *svc)
{
    /* The signal handles stay referenced until the service has closed,
     * so the loop runs exactly as long as the service. */
    uv_run(svc->loop, UV_RUN_DEFAULT);
    if (svc->state != SVC_CLOSED) {
        /* The close watchdog stopped the loop: a component never reported
         * closed. Exit anyway; the OS reclaims the rest. */
        svc->exit_code = 1;
    }
    return svc->start_failed ? 1 : svc->exit_code;
}

size_t service_ncomponents(const struct service *svc)
{
    return svc->ncomps;
}

const char *service_component_name(const struct service *svc, size_t i, int *has_health)
{
    if (i >= svc->ncomps)
        return NULL;
    if (has_health)
        *has_health = svc->comps[i].c.health != NULL;
    return svc->comps[i].c.name;
}

int service_component_health(struct service *svc, size_t i, const char **name, struct buf *detail)
{
    if (i >= svc->ncomps)
        return -ERANGE;
    struct comp *c = &svc->comps[i];
    *name = c->c.name;
    if (c->c.health == NULL)
        return -ENOENT;
    int rc = c->c.health(c->ud, detail);
    return rc < 0 ? rc : rc > 0 ? -1 : 0;
}

int service_health(struct service *svc, struct buf *out)
{
    int ok = svc->state == SVC_RUNNING;
    struct buf parts = BUF_INIT, d = BUF_INIT;
    for (size_t i = 0; i < svc->ncomps; i++) {
        const char *name;
        buf_reset(&d);
        int rc = service_component_health(svc, i, &name, &d);
        if (rc == -ENOENT)
            continue;
        if (rc != 0)
            ok = 0;
        buf_printf(&parts, "%s\"", parts.len ? "," : "");
        buf_put_jsonstr(&parts, name);
        buf_puts(&parts, "\":\"");
        buf_put_jsonstr(&parts, d.data ? d.data : (rc ? "fail" : "ok"));
        buf_putc(&parts, '"');
    }
    static const char *const states[] = {"starting", "running", "stopping", "stopping", "stopped"};
    buf_printf(out, "{\"status\":\"%s\",\"state\":\"%s\",\"instance\":\"", ok ? "ok" : "fail",
               states[svc->state]);
    buf_put_jsonstr(out, svc->cfg->service.instance_name ? svc->cfg->service.instance_name : "");
    buf_printf(out, "\",\"components\":{%s}}", parts.data ? parts.data : "");
    buf_free(&parts);
    buf_free(&d);
    return ok ? 0 : -1;
}

void service_free(struct service *svc)
{
    if (svc == NULL)
        return;
    config_free(svc->cfg);
    free(svc->comps);
    free(svc->hooks);
    free(svc->path);
    free(svc);
}
