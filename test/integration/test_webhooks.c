/* test_webhooks.c - provider webhooks end to end: the real connectors
 * (Twilio, Kavenegar) send through provsim (a separate process), provsim
 * pushes signed StatusCallbacks / token callbacks to our HTTP server on
 * loopback, the webhook module stores them through the connector manager
 * into the real PostgreSQL queue and only then answers. Replays must not
 * change a message twice; bad signatures and tokens get 403 and a log
 * line naming the account but not the token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include <libpq-fe.h>
#include <uv.h>

#include "smsys/connmgr.h"
#include "smsys/http_client.h"
#include "smsys/http_server.h"
#include "smsys/log.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/webhook.h"

#include "world.h"

#define TW_ACC  "7b1e3c7f-2a7d-4b8f-8b66-1e4f3b2c0001"
#define KV_ACC  "7b1e3c7f-2a7d-4b8f-8b66-1e4f3b2c0002"
#define KV_TOK  "kv-hook-secret-0123456789"
#define BAD_ACC "7b1e3c7f-2a7d-4b8f-8b66-1e4f3b2c0003"
#define ACT_TW  "5f8a1d2e-0000-4000-8000-00000000a001"
#define ACT_KV  "5f8a1d2e-0000-4000-8000-00000000a002"

struct env {
    struct world_pg pg; /* pg.c: the test's own connection */
    uv_loop_t loop;
    struct pg_pool *pool;
    struct queue *q;
    struct http_client *http;
    struct http_server *srv;
    struct connmgr *m;
    int port;
    char logfile[256];
    FILE *log;
};

static struct env g;

static PGresult *sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static PGresult *sql(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(g.pg.c, buf);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", buf, PQerrorMessage(g.pg.c));
    return r;
}

#define sql_int(q) world_sql_val(g.pg.c, q)

static void hook_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    (void)ud;
    webhook_handle(g.m, req, resp);
}

/* Runs the loop until query returns want (polled every 50 ms) or ms pass. */
struct waitq {
    const char *q;
    long long want;
    int done;
};

static void wait_timer_cb(uv_timer_t *t)
{
    struct waitq *w = t->data;
    if (sql_int(w->q) == w->want) {
        w->done = 1;
        uv_timer_stop(t);
    }
}

static long long wait_for(const char *q, long long want, unsigned ms)
{
    struct waitq w = {q, want, 0};
    uv_timer_t t;
    uv_timer_init(&g.loop, &t);
    t.data = &w;
    uv_timer_start(&t, wait_timer_cb, 0, 50);
    tu_run_until(&g.loop, &w.done, ms);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&g.loop, UV_RUN_NOWAIT);
    return sql_int(q);
}

/* A blocking curl POST on a thread while the loop serves it. */
struct post {
    char url[512];
    const char *body;
    char hdr[256];
    long status;
    volatile int done;
    int flag;
};

static void *post_main(void *arg)
{
    struct post *p = arg;
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    if (p->hdr[0])
        h = curl_slist_append(h, p->hdr);
    curl_easy_setopt(e, CURLOPT_URL, p->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    struct buf sink = BUF_INIT;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    struct reply r = {0};
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &p->status);
    buf_free(&r.body);
    buf_free(&sink);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    p->done = 1;
    return NULL;
}

static long post_hook(const char *path, const char *body, const char *sighdr)
{
    struct post p = {.body = body, .status = -1};
    snprintf(p.url, sizeof p.url, "http://127.0.0.1:%d%s", g.port, path);
    if (sighdr)
        snprintf(p.hdr, sizeof p.hdr, "%s", sighdr);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_main, &p), 0);
    /* p.done is written by the thread; the loop runs until it is set. */
    while (!p.done)
        uv_run(&g.loop, UV_RUN_NOWAIT), sleep_ms(1);
    pthread_join(th, NULL);
    return p.status;
}

static int log_has(const char *a, const char *b)
{
    fflush(g.log);
    FILE *f = fopen(g.logfile, "r");
    char line[4096];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, a) && (!b || strstr(line, b));
    if (f)
        fclose(f);
    return n;
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

static struct queue_opts g_qopts = {
    .backoff_base_ms = 100,
    .backoff_cap_ms = 200,
    .jitter_pct = 1,
    .pause_ms = 60000,
    .receipt_deadline_s = 3600,
    .leader_heartbeat_ms = 200,
};

static int setup(void **state)
{
    if (group_setup(state) != 0)
        return -1;
    memset(&g, 0, sizeof g);
    snprintf(g.logfile, sizeof g.logfile, "/tmp/test-webhooks-%d.log", (int)getpid());
    g.log = fopen(g.logfile, "w");
    log_setup(LOG_INFO, LOG_TEXT, g.log);
    world_pg_open(&g.pg, "wh");
    world_queue_open(&g.loop, g.pg.conninfo, 3, &g_qopts, &g.pool, &g.q);
    if (http_client_new(&g.loop, NULL, &g.http) != 0)
        return -1;
    struct http_server_opts so = {.listen = "127.0.0.1:0"};
    if (http_server_new(&g.loop, &so, &g.srv) != 0 ||
        http_server_route(g.srv, NULL, WEBHOOK_PREFIX, hook_cb, NULL) != 0)
        return -1;
    g.port = http_server_port(g.srv);
    PQclear(sql("INSERT INTO smsys_account (id, name, provider, config) VALUES "
                "('" TW_ACC "', 'tw', 'twilio', '{\"base_url\":\"%s/twilio\","
                "\"account_sid\":\"" TW_SID "\",\"apikey\":\"" TW_TOKEN "\","
                "\"sender\":\"+15005550006\",\"webhook_base_url\":\"http://127.0.0.1:%d\","
                "\"status_callback\":\"http://127.0.0.1:%d/webhooks/" TW_ACC "/status\"}'),"
                "('" KV_ACC "', 'kv', 'kavenegar', '{\"base_url\":\"%s/kavenegar\","
                "\"apikey\":\"" KV_KEY "\",\"sender\":\"10004346\","
                "\"webhook_token\":\"" KV_TOK "\"}')",
                base, g.port, g.port, base));
    /* enabled, but its settings cannot open a connector */
    PQclear(sql("INSERT INTO smsys_account (id, name, provider, config) VALUES "
                "('" BAD_ACC "', 'bad', 'twilio', '{}')"));
    struct connmgr_opts o = {.batch = 10, .lease_ms = 5000, .idle_ms = 100, .poll_ms = 200};
    if (connmgr_new(&g.loop, g.pool, g.q, g.http, &o, &g.m) != 0)
        return -1;
    *state = &g;
    return 0;
}

static int teardown(void **state)
{
    int done = 0;
    connmgr_close(g.m, flag_cb, &done);
    tu_run_until(&g.loop, &done, 10000);
    done = 0;
    http_server_close(g.srv, flag_cb, &done);
    tu_run_until(&g.loop, &done, 5000);
    done = 0;
    http_client_close(g.http, flag_cb, &done);
    tu_run_until(&g.loop, &done, 5000);
    done = 0;
    pg_pool_close(g.pool, flag_cb, &done);
    tu_run_until(&g.loop, &done, 5000);
    queue_free(g.q);
    int handles = tu_loop_handles(&g.loop);
    int closed = tu_loop_close(&g.loop);
    world_pg_close(&g.pg);
    log_setup(LOG_INFO, LOG_TEXT, stderr);
    fclose(g.log);
    unlink(g.logfile);
    group_teardown(state);
    assert_int_equal(handles, 0);
    assert_int_equal(closed, 0);
    return 0;
}

static void enqueue(const char *acc, const char *key, const char *act)
{
    PQclear(sql("INSERT INTO smsys_message (idem_key, account_id, activity_id, recipient, body, "
                "segments, max_retries, state) VALUES ('%s', '%s', '%s', '+989121234567', "
                "'hello', 1, 3, 3)",
                key, acc, act));
    PQclear(sql("NOTIFY smsys_queue, '%s'", acc));
}

static void wait_open(void)
{
    for (int i = 0; i < 100 && connmgr_count(g.m) < 2; i++)
        wait_for("SELECT 1", 0, 50);
    assert_int_equal(connmgr_count(g.m), 2);
}

static void test_twilio_status_callback(void **state)
{
    (void)state;
    wait_open();
    enqueue(TW_ACC, "tw1", ACT_TW);
    /* provsim: sent, then delivered, each pushed signed to our webhook */
    assert_int_equal(wait_for("SELECT state FROM smsys_message WHERE idem_key='tw1'", 5, 8000), 5);
    long long version =
        sql_int("SELECT version FROM smsys_writeback WHERE activity_id='" ACT_TW "'");
    long long receipts = sql_int("SELECT count(*) FROM smsys_receipt r JOIN smsys_message m ON "
                                 "m.id = r.message_id WHERE m.idem_key='tw1'");
    assert_true(receipts >= 1);
    PGresult *r =
        sql("SELECT provider_id, updated_at::text FROM smsys_message WHERE idem_key='tw1'");
    char sid[64], upd[64];
    snprintf(sid, sizeof sid, "%s", PQgetvalue(r, 0, 0));
    snprintf(upd, sizeof upd, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);

    /* The provider retries the final callback three times: one change. */
    char path[128], url[256], sig[64], hdr[128];
    snprintf(path, sizeof path, "/webhooks/" TW_ACC "/status");
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g.port, path);
    char *body = form("MessageSid", sid, "MessageStatus", "delivered", "AccountSid", TW_SID, NULL);
    signature_of(url, body, sig);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_hook(path, body, hdr), 200);
    /* answered after commit: the receipts are already stored */
    assert_int_equal(sql_int("SELECT count(*) FROM smsys_receipt r JOIN smsys_message m ON "
                             "m.id = r.message_id WHERE m.idem_key='tw1'"),
                     receipts + 3);
    assert_int_equal(sql_int("SELECT state FROM smsys_message WHERE idem_key='tw1'"), 5);
    assert_int_equal(sql_int("SELECT version FROM smsys_writeback WHERE activity_id='" ACT_TW "'"),
                     version);
    r = sql("SELECT updated_at::text FROM smsys_message WHERE idem_key='tw1'");
    assert_string_equal(PQgetvalue(r, 0, 0), upd);
    PQclear(r);

    /* A late "undelivered" cannot move a final state back either. */
    free(body);
    body = form("MessageSid", sid, "MessageStatus", "undelivered", NULL);
    signature_of(url, body, sig);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    assert_int_equal(post_hook(path, body, hdr), 200);
    assert_int_equal(sql_int("SELECT state FROM smsys_message WHERE idem_key='tw1'"), 5);

    /* Bad signature: 403, logged with the account, nothing stored. */
    long long before = sql_int("SELECT count(*) FROM smsys_receipt");
    assert_int_equal(post_hook(path, body, "X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                     403);
    assert_int_equal(post_hook(path, body, NULL), 403);
    assert_int_equal(sql_int("SELECT count(*) FROM smsys_receipt"), before);
    assert_int_equal(log_has("webhook rejected: bad signature or token", "account=tw"), 2);
    free(body);

    /* Unknown account, malformed path, wrong method. */
    assert_int_equal(
        post_hook("/webhooks/7b1e3c7f-0000-0000-0000-000000000000/status", "a=b", NULL), 404);
    assert_int_equal(post_hook("/webhooks/not-a-guid!/status", "a=b", NULL), 404);
    /* known but not open: the provider is asked to retry */
    assert_int_equal(post_hook("/webhooks/" BAD_ACC "/status", "a=b", NULL), 503);
}

/* Inbound through a webhook is stored (deduplicated) in smsys_inbound
 * before the 200: a replay 3 times leaves one row. */
static void test_twilio_inbound_stored(void **state)
{
    (void)state;
    wait_open();
    char path[128], url[256], sig[64], hdr[128];
    snprintf(path, sizeof path, "/webhooks/" TW_ACC "/inbound");
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g.port, path);
    char *body = form("MessageSid", "SMin1", "From", "+989121111111", "To", "+15005550006", "Body",
                      "salam", NULL);
    signature_of(url, body, sig);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_hook(path, body, hdr), 200);
    assert_int_equal(
        sql_int(
            "SELECT count(*) FROM smsys_inbound WHERE body = 'salam' AND provider_id = 'SMin1'"),
        1);
    free(body);
}

static void test_kavenegar_callback(void **state)
{
    (void)state;
    wait_open();
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"kavenegar\":{\"callback_url\":\"http://127.0.0.1:%d/webhooks/" KV_ACC
             "/callback?token=" KV_TOK "\"}}",
             g.port);
    sim_config(cfg);
    enqueue(KV_ACC, "kv1", ACT_KV);
    assert_int_equal(wait_for("SELECT state FROM smsys_message WHERE idem_key='kv1'", 5, 8000), 5);
    long long version =
        sql_int("SELECT version FROM smsys_writeback WHERE activity_id='" ACT_KV "'");
    PGresult *r = sql("SELECT provider_id FROM smsys_message WHERE idem_key='kv1'");
    char mid[64];
    snprintf(mid, sizeof mid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    char *body = form("messageid", mid, "status", "10", NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_hook("/webhooks/" KV_ACC "/callback?token=" KV_TOK, body, NULL), 200);
    assert_int_equal(sql_int("SELECT state FROM smsys_message WHERE idem_key='kv1'"), 5);
    assert_int_equal(sql_int("SELECT version FROM smsys_writeback WHERE activity_id='" ACT_KV "'"),
                     version);
    assert_int_equal(
        post_hook("/webhooks/" KV_ACC "/callback?token=wrong-token-000000000", body, NULL), 403);
    assert_int_equal(post_hook("/webhooks/" KV_ACC "/callback", body, NULL), 403);
    assert_int_equal(log_has("webhook rejected: bad signature or token", "account=kv"), 2);
    /* the token never reaches the log */
    assert_int_equal(log_has(KV_TOK, NULL), 0);
    assert_int_equal(log_has("wrong-token", NULL), 0);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_status_callback),
        cmocka_unit_test(test_twilio_inbound_stored),
        cmocka_unit_test(test_kavenegar_callback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
