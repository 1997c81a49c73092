/* Unit tests of the service lifecycle with test components on a real
 * loop: start/drain/close order, grace period, forced stop, start
 * failure, reload on a real SIGHUP, health. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/service.h"
#include "smsys/util.h"
#include "../lib/testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256], conf[320];
static struct buf trace = BUF_INIT;

enum { NOW = 0, LATER = 1, NEVER = 2 };

/* A component that owns one timer handle and finishes drain/close now,
 * later (after 30 ms) or never, as told. */
struct tcomp {
    const char *name;
    int drain_mode, close_mode, fail_start, unhealthy;
    uv_timer_t timer;
    int timer_open;
    service_done_cb done;
    void *done_arg;
};

static void trace_add(const char *what, const char *name)
{
    buf_printf(&trace, "%s%s:%s", trace.len ? " " : "", what, name);
}

static int tc_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct tcomp *c = ud;
    trace_add("start", c->name);
    if (c->fail_start)
        return smsys_err_set(err, -EADDRINUSE, "port taken");
    uv_timer_init(service_loop(svc), &c->timer);
    c->timer_open = 1;
    return 0;
}

static void tc_timer_done_cb(uv_timer_t *t)
{
    struct tcomp *c = container_of(t, struct tcomp, timer);
    trace_add("drained", c->name);
    c->done(c->done_arg);
}

static void tc_drain(void *ud, service_done_cb done, void *arg)
{
    struct tcomp *c = ud;
    trace_add("drain", c->name);
    if (c->drain_mode == NOW) {
        done(arg);
    } else if (c->drain_mode == LATER) {
        c->done = done;
        c->done_arg = arg;
        uv_timer_start(&c->timer, tc_timer_done_cb, 30, 0);
    } /* NEVER: the grace period has to end it */
}

static void tc_closed_cb(uv_handle_t *h)
{
    struct tcomp *c = container_of((uv_timer_t *)h, struct tcomp, timer);
    c->timer_open = 0;
    trace_add("closed", c->name);
    c->done(c->done_arg);
}

static void tc_close(void *ud, service_done_cb done, void *arg)
{
    struct tcomp *c = ud;
    trace_add("close", c->name);
    c->done = done;
    c->done_arg = arg;
    uv_close((uv_handle_t *)&c->timer, tc_closed_cb);
}

static int tc_health(void *ud, struct buf *detail)
{
    struct tcomp *c = ud;
    buf_puts(detail, c->unhealthy ? "reconnecting: refused" : "ok");
    return c->unhealthy ? -1 : 0;
}

static const struct service_component tc_ops = {
    .name = "t",
    .start = tc_start,
    .drain = tc_drain,
    .close = tc_close,
    .health = tc_health,
};

static void add(struct service *svc, struct tcomp *c)
{
    struct service_component ops = tc_ops;
    ops.name = c->name;
    assert_int_equal(service_add(svc, &ops, c), 0);
}

static void write_conf(const char *level, const char *extra)
{
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataverse]\nurl = https://a.example\nauth = negotiate\n"
            "[postgres]\nconninfo = dbname=x\n"
            "[service]\ngrace_period_ms = 150\n"
            "[log]\nlevel = %s\n%s",
            level, extra ? extra : "");
    fclose(f);
}

static struct service *new_service(uv_loop_t *loop)
{
    struct smsys_config *cfg = NULL;
    struct smsys_err err = {0};
    if (config_load(conf, &cfg, &err) != 0)
        fail_msg("%s", err.detail);
    struct service *svc = NULL;
    assert_int_equal(service_new(loop, conf, cfg, &svc), 0);
    return svc;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/smsys-test-service-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "%s/s.conf", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    buf_free(&trace);
    return system(cmd) == 0 ? 0 : -1;
}

/* Ends a test: the service closed everything it and the components had. */
static void finish(uv_loop_t *loop, struct service *svc)
{
    service_free(svc);
    assert_int_equal(tu_loop_handles(loop), 0);
    assert_int_equal(tu_loop_close(loop), 0);
    /* Back to defaults for the next test's log assertions. */
    log_setup(LOG_INFO, LOG_TEXT, NULL);
}

static void test_order(void **state)
{
    (void)state;
    write_conf("warn", NULL);
    buf_reset(&trace);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct tcomp a = {.name = "a", .drain_mode = NOW}, b = {.name = "b", .drain_mode = LATER};
    add(svc, &a);
    add(svc, &b);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), 0);
    assert_false(service_stopping(svc));
    service_stop(svc, 0);
    assert_true(service_stopping(svc));
    assert_int_equal(service_run(svc), 0);
    /* Drain and close in reverse order of start; close only after b has
     * finished its in-flight work. */
    assert_string_equal(trace.data, "start:a start:b drain:b drain:a drained:b close:b closed:b "
                                    "close:a closed:a");
    assert_int_equal(a.timer_open + b.timer_open, 0);
    /* Adding after start is refused. */
    assert_int_equal(service_add(svc, &tc_ops, &a), -EBUSY);
    finish(&loop, svc);
}

static void test_grace_period(void **state)
{
    (void)state;
    write_conf("error", NULL);
    buf_reset(&trace);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct tcomp a = {.name = "a", .drain_mode = NEVER};
    add(svc, &a);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), 0);
    uint64_t t0 = util_now_ms();
    service_stop(svc, 0);
    assert_int_equal(service_run(svc), 0);
    uint64_t took = util_now_ms() - t0;
    /* grace_period_ms = 150 in the file. */
    assert_true(took >= 140);
    assert_true(took < 2000);
    assert_string_equal(trace.data, "start:a drain:a close:a closed:a");
    finish(&loop, svc);
}

static void force_cb(uv_timer_t *t)
{
    service_stop(t->data, 1);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_second_stop_forces(void **state)
{
    (void)state;
    FILE *f = fopen(conf, "w");
    fputs("[dataverse]\nurl = https://a.example\nauth = negotiate\n[postgres]\nconninfo = x\n"
          "[service]\ngrace_period_ms = 60000\n[log]\nlevel = error\n",
          f);
    fclose(f);
    buf_reset(&trace);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct tcomp a = {.name = "a", .drain_mode = NEVER};
    add(svc, &a);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), 0);
    uv_timer_t force;
    uv_timer_init(&loop, &force);
    force.data = svc;
    uv_timer_start(&force, force_cb, 50, 0);
    uint64_t t0 = util_now_ms();
    service_stop(svc, 0);
    assert_int_equal(service_run(svc), 0);
    assert_true(util_now_ms() - t0 < 5000);
    assert_string_equal(trace.data, "start:a drain:a close:a closed:a");
    finish(&loop, svc);
}

static void test_start_failure(void **state)
{
    (void)state;
    write_conf("error", NULL);
    buf_reset(&trace);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct tcomp a = {.name = "a"}, b = {.name = "b", .fail_start = 1}, c = {.name = "c"};
    add(svc, &a);
    add(svc, &b);
    add(svc, &c);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), -EADDRINUSE);
    assert_string_equal(err.detail, "b: port taken");
    assert_int_equal(service_run(svc), 1);
    /* c never started; only a, which did, is closed. */
    assert_string_equal(trace.data, "start:a start:b close:a closed:a");
    finish(&loop, svc);
}

struct reload_probe {
    int calls;
    int old_level, new_level;
    int done;
};

static int probe_reload_cb(void *ud, const struct smsys_config *old, const struct smsys_config *cfg,
                           struct smsys_err *err)
{
    struct reload_probe *p = ud;
    p->calls++;
    p->old_level = old->log.level;
    p->new_level = cfg->log.level;
    p->done = 1;
    return 0;
}

static void test_reload_on_sighup(void **state)
{
    (void)state;
    write_conf("error", NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct reload_probe p = {0};
    assert_int_equal(service_on_reload(svc, "probe", probe_reload_cb, &p), 0);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), 0);
    assert_false(log_enabled(LOG_WARN));

    write_conf("warn", NULL);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    assert_int_equal(tu_run_until(&loop, &p.done, 5000), 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.old_level, LOG_ERROR);
    assert_int_equal(p.new_level, LOG_WARN);
    assert_int_equal(service_config(svc)->log.level, LOG_WARN);
    /* The built-in log hook applied the level. */
    assert_true(log_enabled(LOG_WARN));

    /* A broken file: no hook runs, the running config stays. Reload
     * through the API and wait for the work to be done. */
    write_conf("debug", "bogus = 1\n");
    p.done = 0;
    service_reload(svc);
    /* The file is read on the thread pool: run until the failed reload is
     * counted (a fixed 300 ms was not always enough on a loaded machine). */
    struct buf m = BUF_INIT;
    int counted = 0;
    for (int i = 0; i < 500 && !counted; i++) {
        int never = 0;
        tu_run_until(&loop, &never, 10);
        buf_reset(&m);
        assert_int_equal(metrics_render(NULL, &m), 0);
        counted = strstr(m.data, "smsys_config_reloads_total{result=\"error\"} 1\n") != NULL;
    }
    assert_true(counted);
    assert_int_equal(p.calls, 1);
    assert_int_equal(service_config(svc)->log.level, LOG_WARN);
    assert_false(log_enabled(LOG_DEBUG));
    /* Both reloads are counted, and the last one is marked failed. */
    assert_non_null(strstr(m.data, "smsys_config_reloads_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(m.data, "smsys_config_reloads_total{result=\"error\"} 1\n"));
    assert_non_null(strstr(m.data, "smsys_config_last_reload_successful 0\n"));
    buf_free(&m);
    metrics_free(NULL);

    service_stop(svc, 0);
    assert_int_equal(service_run(svc), 0);
    finish(&loop, svc);
}

static void test_health(void **state)
{
    (void)state;
    FILE *f = fopen(conf, "w");
    fputs("[dataverse]\nurl = https://a.example\nauth = negotiate\n[postgres]\nconninfo = x\n"
          "[service]\ninstance_name = n1\n[log]\nlevel = error\n",
          f);
    fclose(f);
    buf_reset(&trace);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct service *svc = new_service(&loop);
    struct tcomp a = {.name = "pg", .unhealthy = 1}, b = {.name = "http"};
    add(svc, &a);
    add(svc, &b);
    struct smsys_err err = {0};
    assert_int_equal(service_start(svc, &err), 0);
    struct buf h = BUF_INIT;
    assert_int_equal(service_health(svc, &h), -1);
    assert_string_equal(h.data,
                        "{\"status\":\"fail\",\"state\":\"running\",\"instance\":\"n1\","
                        "\"components\":{\"pg\":\"reconnecting: refused\",\"http\":\"ok\"}}");
    assert_int_equal(service_ncomponents(svc), 2);
    int has = 0;
    assert_string_equal(service_component_name(svc, 1, &has), "http");
    assert_true(has);
    assert_null(service_component_name(svc, 2, NULL));
    const char *name = NULL;
    buf_reset(&h);
    assert_int_equal(service_component_health(svc, 0, &name, &h), -1);
    assert_string_equal(name, "pg");
    assert_string_equal(h.data, "reconnecting: refused");
    assert_int_equal(service_component_health(svc, 2, &name, &h), -ERANGE);
    a.unhealthy = 0;
    buf_reset(&h);
    assert_int_equal(service_health(svc, &h), 0);
    assert_non_null(strstr(h.data, "\"status\":\"ok\""));
    /* Stopping is not healthy: load balancers must drain us. */
    service_stop(svc, 0);
    buf_reset(&h);
    assert_int_equal(service_health(svc, &h), -1);
    buf_free(&h);
    assert_int_equal(service_run(svc), 0);
    finish(&loop, svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_grace_period),
        cmocka_unit_test(test_second_stop_forces),
        cmocka_unit_test(test_start_failure),
        cmocka_unit_test(test_reload_on_sighup),
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
