/* End to end from the SMSC to Dynamics: smscsim delivers MO (whole and
 * multipart, Persian) over a real SMPP bind to the connector manager,
 * which stores them through inbound (acked after commit); the inbound
 * processor then records them on the matching contact in dvemu. The same
 * message delivered twice makes one record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "smsys/connmgr.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/inbound.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/phone_index.h"
#include "smsys/queue.h"
#include "testutil.h"

#include "dvemu_client.h"
/* the fixture serves many tests; this one uses a few of its helpers */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "smpp_fixture.h"
#include "world.h"

#define ACC "6a0d2b6e-1f6c-4a7e-9a55-0d3f2a1b00e2"

struct env {
    struct world_pg pg; /* fresh per test */
    struct simproc sim;
    struct emuproc emu;
    uv_loop_t loop;
    struct pg_pool *pool;
    struct queue *q;
    struct connmgr *m;
    struct http_client *http;
    struct dv_client *dv;
    struct phone_index *pi;
    struct inbound *in;
};

/* One number (-1 for no row or NULL), and waiting for one while the
 * loop runs. */
#define sql_int(e, q)            world_sql_val((e)->pg.c, q)
#define wait_sql(e, q, want, ms) world_loop_wait_sql(&(e)->loop, (e)->pg.c, q, want, ms)

static void sql_str(struct env *e, const char *q, char *out, size_t len)
{
    PGresult *r = PQexec(e->pg.c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(e->pg.c));
    snprintf(out, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

struct rnd {
    int done, rc;
    unsigned n;
};

static void rnd_cb(void *ud, int rc, unsigned n, const struct smsys_err *err)
{
    struct rnd *r = ud;
    if (rc < 0)
        fprintf(stderr, "round: %s\n", err ? err->detail : "");
    r->rc = rc;
    r->n = n;
    r->done = 1;
}

static void idx_cb(void *ud, int rc, unsigned long rows, const struct smsys_err *err)
{
    (void)rows;
    (void)err;
    *(int *)ud = rc == 0 ? 1 : -1;
}

static void test_smsc_to_dynamics(void **state)
{
    (void)state;
    struct env e = {0};
    world_pg_open(&e.pg, "insmpp");
    sim_start(&e.sim, NULL);
    emu_start(&e.emu, NULL);

    /* Dynamics: the provider account and a contact stored in another format */
    struct emures r;
    emu_req(&e.emu, "POST", "smsys_smssettings", NULL,
            "{\"smsys_smssettingid\":\"" ACC "\",\"smsys_name\":\"smsc\"}", &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    char contact[64];
    snprintf(contact, sizeof(contact), "%s",
             emu_create(&e.emu, "contacts",
                        "{\"lastname\":\"Smpp\",\"mobilephone\":\"+98 912 123 4567\"}"));

    char q[600];
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_account (id, name, provider, config) VALUES ('" ACC
             "', 'smsc', 'smpp', '{\"host\":\"127.0.0.1\",\"port\":%d,\"sender\":\"1000\","
             "\"reconnect_min_ms\":50,\"reconnect_max_ms\":200}')",
             e.sim.port);
    PQclear(PQexec(e.pg.c, q));

    assert_int_equal(uv_loop_init(&e.loop), 0);
    assert_int_equal(pg_pool_new(&e.loop, e.pg.conninfo, 4, &e.pool), 0);
    assert_int_equal(queue_new(&e.loop, e.pool, NULL, &e.q), 0);
    struct connmgr_opts o = {.owner = "inb", .poll_ms = 200, .idle_ms = 100};
    assert_int_equal(connmgr_new(&e.loop, e.pool, e.q, NULL, &o, &e.m), 0);
    for (int i = 0; i < 200 && sim_stat(&e.sim, "bound") < 1; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_true(sim_stat(&e.sim, "bound") >= 1);

    /* a whole message twice (a redelivery without provider id), and a
     * three-part one out of order */
    const char *whole = "{\"from\":\"09121234567\",\"to\":\"1000\",\"text\":\"سلام، پیام من\"}";
    sim_http(&e.sim, "POST", "/mo", whole);
    sim_http(&e.sim, "POST", "/mo", whole);
    sim_http(
        &e.sim, "POST", "/mo",
        "{\"from\":\"989121234567\",\"to\":\"1000\",\"text\":\"مشکل حاد: فرم‌های "
        "برنامه "
        "ذخیره نمی‌شوند و این پیام بلند است تا چند قسمت "
        "شود\",\"parts\":3,"
        "\"order\":[3,1,2]}");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_inbound", 2, 10000), 0);
    for (int i = 0; i < 100 && sim_stat(&e.sim, "deliver_acked") < 5; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_int_equal(sim_stat(&e.sim, "deliver_acked"), 5);

    /* the processor records both on the contact */
    char tok[128];
    snprintf(tok, sizeof(tok), "%s/t/oauth2/v2.0/token", e.emu.root);
    struct dv_opts dvo = {.url = e.emu.root,
                          .token_url = tok,
                          .client_id = "smsys-demo",
                          .client_secret = "smsys-demo-secret",
                          .scope = "http://127.0.0.1/.default"};
    assert_int_equal(http_client_new(&e.loop, NULL, &e.http), 0);
    assert_int_equal(dv_new(&e.loop, e.http, &dvo, &e.dv), 0);
    assert_int_equal(phone_index_new(e.pool, e.dv, NULL, 0, "IR", &e.pi), 0);
    assert_int_equal(inbound_new(&e.loop, e.pool, e.dv, e.q, e.pi, NULL, &e.in), 0);
    int idx = 0;
    assert_int_equal(phone_index_refresh(e.pi, idx_cb, &idx), 0);
    assert_int_equal(tu_run_until(&e.loop, &idx, 10000), 0);
    assert_int_equal(idx, 1);
    struct rnd rr = {0};
    assert_int_equal(inbound_run_once(e.in, rnd_cb, &rr), 0);
    assert_int_equal(tu_run_until(&e.loop, &rr.done, 20000), 0);
    assert_int_equal(rr.rc, 0);
    assert_int_equal(rr.n, 2);
    char v[400];
    sql_str(&e,
            "SELECT count(*) || ' ' || min(matched_id::text) FROM smsys_inbound"
            " WHERE state = 'recorded' AND src = '+989121234567'",
            v, sizeof(v));
    char want[120];
    snprintf(want, sizeof(want), "2 %s", contact);
    assert_string_equal(v, want);
    sql_str(&e, "SELECT uid FROM smsys_inbound WHERE provider_id LIKE 'mo-part-group:%'", v,
            sizeof(v));
    char path[200];
    snprintf(path, sizeof(path), "smsys_smses(%.40s)?$select=description,smsys_direction", v);
    emu_req(&e.emu, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(emu_str(r.json, "description"),
                           "ذخیره نمی‌شوند و این پیام بلند"));
    emures_free(&r);

    int done = 0;
    connmgr_close(e.m, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    inbound_free(e.in);
    phone_index_free(e.pi);
    done = 0;
    dv_close(e.dv, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    done = 0;
    http_client_close(e.http, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    done = 0;
    pg_pool_close(e.pool, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    queue_free(e.q);
    assert_int_equal(tu_loop_handles(&e.loop), 0);
    assert_int_equal(tu_loop_close(&e.loop), 0);
    sim_stop(&e.sim);
    emu_stop(&e.emu);
    world_pg_close(&e.pg);
}

static void stopped_cb(void *ud)
{
    *(int *)ud = 1;
}

/* F20: the leader loop polls the inbox of a Kavenegar account (provsim)
 * at the account's interval, and the message lands on the contact. */
static void test_inbox_polled_by_leader(void **state)
{
    (void)state;
    struct env e = {0};
    world_pg_open(&e.pg, "inpoll");
    emu_start(&e.emu, NULL);
    char logf[128];
    snprintf(logf, sizeof(logf), "/tmp/inpoll-provsim-%d.log", (int)getpid());
    struct world_sim provsim;
    world_provsim_start(&provsim, logf, NULL);
    int sport = provsim.port;

    struct emures r;
    emu_req(&e.emu, "POST", "smsys_smssettings", NULL,
            "{\"smsys_smssettingid\":\"" ACC "\",\"smsys_name\":\"kn\"}", &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    char contact[64];
    snprintf(contact, sizeof(contact), "%s",
             emu_create(&e.emu, "contacts",
                        "{\"lastname\":\"Poll\",\"mobilephone\":\"0912 765 4321\"}"));
    char q[600];
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_account (id, name, provider, inbound_interval_s, config) VALUES"
             " ('" ACC "', 'kn', 'kavenegar', 1, '{\"base_url\":\"http://127.0.0.1:%d/kavenegar\","
             "\"sender\":\"10004346\",\"apikey\":\"demo-kavenegar-key\"}')",
             sport);
    PQclear(PQexec(e.pg.c, q));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/inbox", sport);
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *m = "{\"provider\":\"kavenegar\",\"from\":\"09127654321\",\"text\":\"لغو\"}";
    emu_req_full(&e.emu, "POST", url, h, m, strlen(m), 0, &r);
    assert_int_equal(r.status, 200);
    emures_free(&r);

    assert_int_equal(uv_loop_init(&e.loop), 0);
    assert_int_equal(pg_pool_new(&e.loop, e.pg.conninfo, 4, &e.pool), 0);
    assert_int_equal(queue_new(&e.loop, e.pool, NULL, &e.q), 0);
    assert_int_equal(http_client_new(&e.loop, NULL, &e.http), 0);
    struct connmgr_opts o = {.owner = "inb", .poll_ms = 200, .idle_ms = 100};
    assert_int_equal(connmgr_new(&e.loop, e.pool, e.q, e.http, &o, &e.m), 0);
    char tok[128];
    snprintf(tok, sizeof(tok), "%s/t/oauth2/v2.0/token", e.emu.root);
    struct dv_opts dvo = {.url = e.emu.root,
                          .token_url = tok,
                          .client_id = "smsys-demo",
                          .client_secret = "smsys-demo-secret",
                          .scope = "http://127.0.0.1/.default"};
    assert_int_equal(dv_new(&e.loop, e.http, &dvo, &e.dv), 0);
    assert_int_equal(phone_index_new(e.pool, e.dv, NULL, 0, "IR", &e.pi), 0);
    struct inbound_opts io = {.interval_ms = 200};
    assert_int_equal(inbound_new(&e.loop, e.pool, e.dv, e.q, e.pi, &io, &e.in), 0);
    inbound_attach_connmgr(e.in, e.m);
    assert_int_equal(inbound_start(e.in), 0);
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_inbound WHERE state = 'recorded'"
                              " AND src = '+989127654321' AND dst = '10004346'",
                              1, 20000),
                     0);
    /* the built-in opt-out ran on it */
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_optout WHERE number = '+989127654321'"
                              " AND opted_out",
                              1, 5000),
                     0);
    char v[100];
    sql_str(&e, "SELECT matched_id FROM smsys_inbound", v, sizeof(v));
    assert_string_equal(v, contact);

    int done = 0;
    inbound_stop(e.in, stopped_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    done = 0;
    connmgr_close(e.m, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    inbound_free(e.in);
    phone_index_free(e.pi);
    done = 0;
    dv_close(e.dv, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    done = 0;
    http_client_close(e.http, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    done = 0;
    pg_pool_close(e.pool, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    queue_free(e.q);
    assert_int_equal(tu_loop_handles(&e.loop), 0);
    assert_int_equal(tu_loop_close(&e.loop), 0);
    world_sim_stop(&provsim);
    emu_stop(&e.emu);
    world_pg_close(&e.pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smsc_to_dynamics),
        cmocka_unit_test(test_inbox_polled_by_leader),
    };
    return cmocka_run_group_tests(tests, NULL, world_teardown);
}
