/* pk_fixture.h - what test_pickup.c and test_writeback.c share: the real
 * dvemu on a free loopback port (blocking libcurl for arranging data and
 * reading it back), a private PostgreSQL database migrated with sql/, and
 * the in-process objects under test on one libuv loop (http client,
 * Dataverse client, pool, queue). Header-only: one binary per test file.
 * Include after <cmocka.h> and testutil.h. */
#ifndef PK_FIXTURE_H
#define PK_FIXTURE_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smsys/accounts.h"
#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/pickup.h"
#include "smsys/queue.h"
#include "tdb.h"
#include "../lib/world.h"

struct pkf {
    struct world_dv emu; /* dvemu: root, port, token, data_dir, curl */
    /* database */
    char dbname[64];
    char conninfo[1024];
    PGconn *side;
    /* under test */
    uv_loop_t loop;
    struct http_client *http;
    struct dv_client *dv;
    struct pg_pool *pool;
    struct queue *q;
};

/* dvemu and SQL helpers of the world harness under their fixture names. */
static inline long pkf_req(struct pkf *f, const char *method, const char *path, const char *body,
                           cJSON **out)
{
    return world_dv_req(&f->emu, method, path, body, out);
}

static inline void pkf_post(struct pkf *f, const char *set, const char *body)
{
    world_dv_post(&f->emu, set, body);
}

/* pkf_post of a cJSON object, which it frees. */
static inline void pkf_post_obj(struct pkf *f, const char *set, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    assert_non_null(s);
    pkf_post(f, set, s);
    free(s);
    cJSON_Delete(o);
}

static inline cJSON *pkf_get(struct pkf *f, const char *path)
{
    return world_dv_get(&f->emu, path);
}

/* A number from GET /_emu/stats: key, or key.sub. */
static inline double pkf_stat(struct pkf *f, const char *key, const char *sub)
{
    cJSON *j = world_dv_stats(&f->emu);
    double d = world_dv_stat_of(j, key, sub);
    cJSON_Delete(j);
    return d;
}

/* Starts (or restarts, same port) dvemu and signs in. */
static inline void pkf_dv_start(struct pkf *f, const char *const *extra)
{
    world_dv_start(&f->emu, extra);
    world_dv_signin(&f->emu);
}

static inline void pkf_dv_stop(struct pkf *f)
{
    world_dv_stop(&f->emu);
}

static inline void pkf_exec(struct pkf *f, const char *sql)
{
    world_sql_exec(f->side, sql);
}

static inline long long pkf_int(struct pkf *f, const char *sql)
{
    return world_sql_int(f->side, sql);
}

static inline const char *pkf_str(struct pkf *f, const char *sql)
{
    return world_sql_str(f->side, sql);
}

/* dv client options for tests: short backoffs so outages resolve fast. */
static __attribute__((unused)) struct dv_opts pkf_dv_opts(struct pkf *f, char *token_url,
                                                          size_t len)
{
    snprintf(token_url, len, "%s/t/oauth2/v2.0/token", f->emu.root);
    struct dv_opts o = {.url = f->emu.root,
                        .token_url = token_url,
                        .client_id = "smsys-demo",
                        .client_secret = "smsys-demo-secret",
                        .scope = "http://127.0.0.1/.default",
                        .backoff_base_ms = 50,
                        .backoff_max_ms = 200,
                        .max_retries = 1,
                        .timeout_ms = 10000};
    return o;
}

/* Database, migrations, dvemu and the loop objects. */
static __attribute__((unused)) void pkf_open(struct pkf *f, const char *tag,
                                             const char *const *dv_extra, int force_batch)
{
    world_db_create(tag, f->dbname, sizeof(f->dbname), f->conninfo, sizeof(f->conninfo));
    world_db_migrate(f->conninfo);
    f->side = world_db_connect(f->conninfo);
    pkf_dv_start(f, dv_extra);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->http), 0);
    char token_url[128];
    struct dv_opts o = pkf_dv_opts(f, token_url, sizeof(token_url));
    o.force_batch = force_batch;
    assert_int_equal(dv_new(&f->loop, f->http, &o, &f->dv), 0);
    assert_int_equal(pg_pool_new(&f->loop, f->conninfo, 3, &f->pool), 0);
    struct queue_opts qo = {.leader_heartbeat_ms = 200};
    assert_int_equal(queue_new(&f->loop, f->pool, &qo, &f->q), 0);
}

static __attribute__((unused)) void pkf_flag_cb(void *ud)
{
    (*(int *)ud)++;
}

/* What one asynchronous call reported. */
struct pkf_wait {
    int done, rc;
    struct pickup_result pr;
    struct accounts_result ar;
    size_t taken;
    char detail[512];
};

static __attribute__((unused)) void pkf_acc_cb(int rc, const struct accounts_result *res,
                                               const struct smsys_err *err, void *ud)
{
    struct pkf_wait *w = ud;
    w->rc = rc;
    if (res)
        w->ar = *res;
    snprintf(w->detail, sizeof(w->detail), "%s", err ? err->detail : "");
    w->done = 1;
}

static __attribute__((unused)) void pkf_pk_cb(int rc, const struct pickup_result *res,
                                              const struct smsys_err *err, void *ud)
{
    struct pkf_wait *w = ud;
    w->rc = rc;
    if (res)
        w->pr = *res;
    snprintf(w->detail, sizeof(w->detail), "%s", err ? err->detail : "");
    w->done = 1;
}

/* One accounts sync run to its end (20 s at most); fails unless it
 * succeeded. */
static __attribute__((unused)) struct accounts_result pkf_sync_accounts(struct pkf *f,
                                                                        struct accounts *a)
{
    struct pkf_wait w = {0};
    assert_int_equal(accounts_sync(a, pkf_acc_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, 20000), 0);
    if (w.rc != 0)
        fail_msg("accounts_sync: %s", w.detail);
    return w.ar;
}

/* One pickup poll run to its end (timeout_ms at most); fails unless it
 * succeeded. */
static __attribute__((unused)) struct pickup_result pkf_poll(struct pkf *f, struct pickup *p,
                                                             unsigned timeout_ms)
{
    struct pkf_wait w = {0};
    assert_int_equal(pickup_poll(p, pkf_pk_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, timeout_ms), 0);
    if (w.rc != 0)
        fail_msg("pickup_poll: %s", w.detail);
    return w.pr;
}

static __attribute__((unused)) void pkf_close(struct pkf *f)
{
    int dvc = 0, hc = 0, pc = 0;
    dv_close(f->dv, pkf_flag_cb, &dvc);
    assert_int_equal(tu_run_until(&f->loop, &dvc, 10000), 0);
    http_client_close(f->http, pkf_flag_cb, &hc);
    assert_int_equal(tu_run_until(&f->loop, &hc, 10000), 0);
    pg_pool_close(f->pool, pkf_flag_cb, &pc);
    assert_int_equal(tu_run_until(&f->loop, &pc, 10000), 0);
    queue_free(f->q);
    assert_int_equal(tu_loop_handles(&f->loop), 0);
    assert_int_equal(tu_loop_close(&f->loop), 0);
    PQfinish(f->side);
    pkf_dv_stop(f);
    world_dv_free(&f->emu);
    world_db_drop(f->dbname);
}

#endif
