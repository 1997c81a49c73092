/* Unit tests for metrics (exact exposition text) and health (/healthz
 * answers), the HTTP side through a fake http_server connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http_server_internal.h"
#include "smsys/buf.h"
#include "smsys/health.h"
#include "smsys/metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static void render(struct metrics *m, struct buf *b)
{
    buf_reset(b);
    assert_int_equal(metrics_render(m, b), 0);
}

static void test_counter_gauge(void **state)
{
    struct metrics *m;
    struct buf b = BUF_INIT;
    assert_int_equal(metrics_new(&m), 0);
    render(m, &b);
    assert_int_equal(b.len, 0);

    struct metric *sent = metrics_counter(m, "smsys_messages_total", "Messages by final status.",
                                          (const char *[]){"status", "sent", NULL});
    struct metric *failed = metrics_counter(m, "smsys_messages_total", "Messages by final status.",
                                            (const char *[]){"status", "failed", NULL});
    struct metric *q = metrics_gauge(m, "smsys_queue_depth", "Queued messages.", NULL);
    assert_non_null(sent);
    assert_non_null(failed);
    assert_non_null(q);
    /* same name and labels: the same series */
    assert_ptr_equal(metrics_counter(m, "smsys_messages_total", "Messages by final status.",
                                     (const char *[]){"status", "sent", NULL}),
                     sent);
    metrics_inc(sent);
    metrics_inc(sent);
    metrics_add(sent, 0.5);
    metrics_add(sent, -3); /* counters never go down */
    metrics_add(failed, NAN);
    metrics_set(q, 42);
    metrics_dec(q);
    metrics_add(q, 1e20);
    metrics_set(sent, 99); /* not a gauge: ignored */
    assert_true(metrics_value(sent) == 2.5);
    render(m, &b);
    assert_string_equal(b.data, "# HELP smsys_messages_total Messages by final status.\n"
                                "# TYPE smsys_messages_total counter\n"
                                "smsys_messages_total{status=\"sent\"} 2.5\n"
                                "smsys_messages_total{status=\"failed\"} 0\n"
                                "# HELP smsys_queue_depth Queued messages.\n"
                                "# TYPE smsys_queue_depth gauge\n"
                                "smsys_queue_depth 1e+20\n");
    buf_free(&b);
    metrics_free(m);
}

static void test_escaping(void **state)
{
    struct metrics *m;
    struct buf b = BUF_INIT;
    assert_int_equal(metrics_new(&m), 0);
    struct metric *x = metrics_counter(m, "app:req_total", "Help with \\ and\nnewline \"quoted\".",
                                       (const char *[]){"path", "a\"b\\c\nd", "z_2", "", NULL});
    assert_non_null(x);
    metrics_add(x, 12345678);
    render(m, &b);
    assert_string_equal(b.data, "# HELP app:req_total Help with \\\\ and\\nnewline \"quoted\".\n"
                                "# TYPE app:req_total counter\n"
                                "app:req_total{path=\"a\\\"b\\\\c\\nd\",z_2=\"\"} 12345678\n");
    buf_free(&b);
    metrics_free(m);
}

static void test_histogram(void **state)
{
    struct metrics *m;
    struct buf b = BUF_INIT;
    const double bounds[] = {0.005, 0.1, 1, 2.5};
    assert_int_equal(metrics_new(&m), 0);
    struct metric *h =
        metrics_histogram(m, "smsys_send_seconds", "Provider send latency.",
                          (const char *[]){"provider", "kavenegar", NULL}, bounds, 4);
    struct metric *plain = metrics_histogram(m, "smsys_poll_seconds", "Poll.", NULL, bounds, 1);
    assert_non_null(h);
    assert_non_null(plain);
    metrics_observe(h, 0.001);
    metrics_observe(h, 0.1); /* on a bound: counted in that bucket (le) */
    metrics_observe(h, 0.5);
    metrics_observe(h, 7);
    metrics_observe(h, NAN);
    metrics_inc(h); /* not a counter: ignored */
    assert_true(metrics_value(h) == 4);
    render(m, &b);
    assert_string_equal(b.data, "# HELP smsys_send_seconds Provider send latency.\n"
                                "# TYPE smsys_send_seconds histogram\n"
                                "smsys_send_seconds_bucket{provider=\"kavenegar\",le=\"0.005\"} 1\n"
                                "smsys_send_seconds_bucket{provider=\"kavenegar\",le=\"0.1\"} 2\n"
                                "smsys_send_seconds_bucket{provider=\"kavenegar\",le=\"1\"} 3\n"
                                "smsys_send_seconds_bucket{provider=\"kavenegar\",le=\"2.5\"} 3\n"
                                "smsys_send_seconds_bucket{provider=\"kavenegar\",le=\"+Inf\"} 4\n"
                                "smsys_send_seconds_sum{provider=\"kavenegar\"} 7.601\n"
                                "smsys_send_seconds_count{provider=\"kavenegar\"} 4\n"
                                "# HELP smsys_poll_seconds Poll.\n"
                                "# TYPE smsys_poll_seconds histogram\n"
                                "smsys_poll_seconds_bucket{le=\"0.005\"} 0\n"
                                "smsys_poll_seconds_bucket{le=\"+Inf\"} 0\n"
                                "smsys_poll_seconds_sum 0\n"
                                "smsys_poll_seconds_count 0\n");
    buf_free(&b);
    metrics_free(m);
}

static void test_invalid(void **state)
{
    struct metrics *m;
    const double bad[] = {1, 0.5};
    const double inf[] = {INFINITY};
    assert_int_equal(metrics_new(&m), 0);
    assert_null(metrics_counter(m, "1abc", "h", NULL));
    assert_null(metrics_counter(m, "a-b", "h", NULL));
    assert_null(metrics_counter(m, "", "h", NULL));
    assert_null(metrics_counter(m, "ok", "h", (const char *[]){"bad-label", "v", NULL}));
    assert_null(metrics_counter(m, "ok", "h", (const char *[]){"__x", "v", NULL}));
    assert_null(metrics_counter(m, "ok", "h", (const char *[]){"a", "1", "a", "2", NULL}));
    assert_null(metrics_counter(m, "ok", "h", (const char *[]){"a:b", "1", NULL}));
    assert_null(metrics_histogram(m, "h", "h", (const char *[]){"le", "1", NULL}, inf, 0));
    assert_null(metrics_histogram(m, "h", "h", NULL, bad, 2));
    assert_null(metrics_histogram(m, "h", "h", NULL, inf, 1));
    /* family conflicts: type, help, label names */
    assert_non_null(metrics_counter(m, "fam_total", "h", (const char *[]){"a", "1", NULL}));
    assert_null(metrics_gauge(m, "fam_total", "h", (const char *[]){"a", "2", NULL}));
    assert_null(metrics_counter(m, "fam_total", "other", (const char *[]){"a", "2", NULL}));
    assert_null(metrics_counter(m, "fam_total", "h", (const char *[]){"b", "2", NULL}));
    /* NULL series: updates are no-ops */
    metrics_inc(NULL);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    assert_true(metrics_value(NULL) == 0);
    metrics_free(m);
}

static void test_default_registry(void **state)
{
    struct buf b = BUF_INIT;
    struct metric *x = metrics_gauge(NULL, "up", "Whether the process is up.", NULL);
    metrics_set(x, 1);
    render(NULL, &b);
    assert_string_equal(b.data, "# HELP up Whether the process is up.\n# TYPE up gauge\nup 1\n");
    metrics_free(NULL);
    render(NULL, &b);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* One GET through a fake connection of a server routing path to cb. */
static void http_get(const char *path, http_handler_cb cb, void *ud, struct buf *out)
{
    struct http_server *s;
    struct http_server_opts o = {0};
    char req[128];
    assert_int_equal(http_server_new_fake(&o, &s), 0);
    assert_int_equal(http_server_route(s, "GET", path, cb, ud), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    const char *chunks[] = {req};
    size_t lens[] = {strlen(req)};
    buf_reset(out);
    http_server_fake_feed(s, chunks, lens, 1, out);
    http_server_free_fake(s);
    assert_non_null(out->data);
}

static void test_metrics_http(void **state)
{
    struct metrics *m;
    struct buf b = BUF_INIT;
    assert_int_equal(metrics_new(&m), 0);
    metrics_inc(metrics_counter(m, "hits_total", "Hits.", NULL));
    http_get("/metrics", metrics_http_handler, m, &b);
    assert_int_equal(strncmp(b.data, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(
        strstr(b.data, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    const char *body = strstr(b.data, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4,
                        "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 1\n");
    buf_free(&b);
    metrics_free(m);
}

static int pg_state;

static int pg_check_cb(void *ud, char *detail, size_t len)
{
    if (pg_state == 0)
        return 0;
    snprintf(detail, len, "connection \"refused\"");
    return -ECONNREFUSED;
}

static int quiet_fail_cb(void *ud, char *detail, size_t len)
{
    return *(int *)ud;
}

static void test_health(void **state)
{
    struct buf b = BUF_INIT;
    struct health *h;
    int quiet = 0;
    /* no checks: alive */
    http_get("/healthz", health_http_handler, NULL, &b);
    assert_int_equal(strncmp(b.data, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(strstr(b.data, "\r\n\r\n{\"status\":\"ok\"}\n"));

    assert_int_equal(health_new(&h), 0);
    assert_int_equal(health_add(h, "", pg_check_cb, NULL), -EINVAL);
    assert_int_equal(health_add(h, "postgres", pg_check_cb, NULL), 0);
    assert_int_equal(health_add(h, "provider", quiet_fail_cb, &quiet), 0);
    pg_state = 0;
    http_get("/healthz", health_http_handler, h, &b);
    assert_int_equal(strncmp(b.data, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(strstr(b.data, "\r\nCache-Control: no-store\r\n"));
    assert_non_null(strstr(
        b.data, "{\"status\":\"ok\",\"checks\":{\"postgres\":\"ok\",\"provider\":\"ok\"}}\n"));

    pg_state = 1;
    quiet = -1;
    http_get("/healthz", health_http_handler, h, &b);
    assert_int_equal(strncmp(b.data, "HTTP/1.1 503 Service Unavailable\r\n", 34), 0);
    assert_non_null(strstr(b.data, "{\"status\":\"fail\",\"checks\":{\"postgres\":\"connection "
                                   "\\\"refused\\\"\",\"provider\":\"fail\"}}\n"));
    assert_int_equal(health_eval(h, NULL), 0);
    pg_state = 0;
    quiet = 0;
    assert_int_equal(health_eval(h, NULL), 1);
    health_free(h);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),    cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_default_registry), cmocka_unit_test(test_metrics_http),
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
