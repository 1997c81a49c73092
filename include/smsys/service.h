/* service.h - the lifecycle of smsysd: components, signals, reload.
 *
 * One service per process, on one libuv loop. Modules (PostgreSQL pool,
 * HTTP server, pollers, connectors) plug in as components; main.c only
 * registers them. Signals:
 *   SIGTERM, SIGINT  graceful stop: every component is asked to drain (stop
 *                    taking new work, finish what is in flight); when all
 *                    have drained, or [service] grace_period_ms has passed,
 *                    or a second signal arrives, components are closed in
 *                    reverse order of start and the loop ends.
 *   SIGHUP           reload: the config file is re-read off the loop thread;
 *                    a bad file is logged and the old config kept; otherwise
 *                    each change is logged, reload hooks run, and the new
 *                    config replaces the old one.
 *
 * Component contract (every callback may be NULL):
 *  1. start MUST NOT block; it returns 0, or an error with err->detail set,
 *     in which case the service does not start (already started components
 *     are closed) and smsysd exits 1.
 *  2. drain MUST stop taking new work at once and call done(arg) exactly
 *     once, now or later, when its in-flight work has finished. It MAY
 *     never finish: the grace period bounds it.
 *  3. close MUST release every handle and call done(arg) exactly once, now
 *     or later, when they are closed. In-flight work is abandoned (the
 *     durable queue makes it safe to pick up after a restart).
 *  4. reload is called with the old and the new config, before the new one
 *     is installed; it applies what it can change live and returns 0, or an
 *     error (logged; the rest of the reload still happens). Pointers into
 *     the old config are invalid after the hooks return.
 *  5. health appends a short state to detail ("ok", "reconnecting: ...")
 *     and returns 0 when healthy, <0 when not (shown by /healthz). */
#ifndef SMSYS_SERVICE_H
#define SMSYS_SERVICE_H

#include <uv.h>

#include "smsys/buf.h"
#include "smsys/config.h"
#include "smsys/error.h"

struct service;

typedef void (*service_done_cb)(void *arg);
typedef int (*service_reload_cb)(void *ud, const struct smsys_config *old,
                                 const struct smsys_config *cfg, struct smsys_err *err);

struct service_component {
    const char *name; /* "pg", "http", "poller", ...; static storage */
    int (*start)(struct service *svc, void *ud, struct smsys_err *err);
    void (*drain)(void *ud, service_done_cb done, void *arg);
    void (*close)(void *ud, service_done_cb done, void *arg);
    service_reload_cb reload;
    int (*health)(void *ud, struct buf *detail);
};

/* Creates the service on loop, taking ownership of cfg (loaded from
 * config_path, which is copied for reloads). Applies cfg's log settings.
 * Returns 0 and *out, or -ENOMEM (cfg is then freed). */
int service_new(uv_loop_t *loop, const char *config_path, struct smsys_config *cfg,
                struct service **out);

/* Registers a component; the struct is copied, ud is borrowed until the
 * component's close completes. Components start in the order added.
 * Returns 0, -ENOMEM, or -EBUSY once the service has started. */
int service_add(struct service *svc, const struct service_component *c, void *ud);

/* Registers a reload hook for a module that is not a component (called
 * after the components' reload callbacks, in the order added). name is
 * borrowed (static). Returns 0 or -ENOMEM. */
int service_on_reload(struct service *svc, const char *name, service_reload_cb cb, void *ud);

/* Installs the signal handlers and starts the components. Returns 0, or
 * an error with err->detail naming the component that failed. */
int service_start(struct service *svc, struct smsys_err *err);

/* Runs the loop until the service has stopped. Returns the process exit
 * code: 0 after a clean stop, 1 when something failed to close. */
int service_run(struct service *svc);

/* Same as SIGTERM (force == 0) or a second SIGTERM (force != 0). */
void service_stop(struct service *svc, int force);

/* Same as SIGHUP. */
void service_reload(struct service *svc);

/* 1 once a stop has begun: components check it before taking new work. */
int service_stopping(const struct service *svc);

/* The current config: valid until the next reload completes. */
const struct smsys_config *service_config(const struct service *svc);
uv_loop_t *service_loop(const struct service *svc);

/* Appends {"status":"ok"|"fail","instance":...,"components":{...}} and
 * returns 0 when every component is healthy, -1 otherwise. */
int service_health(struct service *svc, struct buf *out);

/* Number of registered components, and the health of component i (in
 * registration order): *name is set (static), detail gets the component's
 * text; returns 0 healthy, <0 unhealthy, -ENOENT when it has no health
 * callback, -ERANGE past the end. For /healthz adapters. */
size_t service_ncomponents(const struct service *svc);
/* Name of component i (NULL past the end); *has_health (may be NULL) says
 * whether it has a health callback. Safe before the component started. */
const char *service_component_name(const struct service *svc, size_t i, int *has_health);
int service_component_health(struct service *svc, size_t i, const char **name, struct buf *detail);

/* Releases the service and its config, after service_run returned (or
 * when service_start failed and the loop was run to close the handles). */
void service_free(struct service *svc);

#endif
