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

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "tdb.h"

struct pkf {
    /* dvemu */
    pid_t pid;
    int port;
    char root[64];
    char token[4096];
    char data_dir[128];
    char log[128];
    CURL *curl;
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

static __attribute__((unused)) size_t pkf_write_cb(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* One blocking request to dvemu. path: "/..." from the root, else under
 * /api/data/v9.2/. Returns the status; *out (may be NULL) gets the JSON. */
static __attribute__((unused)) long pkf_req(struct pkf *f, const char *method, const char *path,
                                            const char *body, cJSON **out)
{
    char url[8192];
    if (path[0] == '/')
        snprintf(url, sizeof(url), "%s%s", f->root, path);
    else
        snprintf(url, sizeof(url), "%s/api/data/v9.2/%s", f->root, path);
    struct buf b = BUF_INIT;
    CURL *c = f->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pkf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    struct curl_slist *h = NULL;
    char authz[4200];
    if (f->token[0]) {
        snprintf(authz, sizeof(authz), "Authorization: Bearer %s", f->token);
        h = curl_slist_append(h, authz);
    }
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "OData-Version: 4.0");
    h = curl_slist_append(h, "Prefer: odata.include-annotations=\"*\"");
    if (body) {
        h = curl_slist_append(h, f->token[0] ? "Content-Type: application/json"
                                             : "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    if (out)
        *out = b.data ? cJSON_Parse(b.data) : NULL;
    if (status >= 400)
        print_message("dvemu %s %s -> %ld %s\n", method, path, status, b.data ? b.data : "");
    buf_free(&b);
    return status;
}

/* POST that must succeed (204/201). */
static __attribute__((unused)) void pkf_post(struct pkf *f, const char *set, const char *body)
{
    long st = pkf_req(f, "POST", set, body, NULL);
    if (st != 204 && st != 201 && st != 200)
        fail_msg("POST %s -> %ld: %s", set, st, body);
}

static __attribute__((unused)) cJSON *pkf_get(struct pkf *f, const char *path)
{
    cJSON *j = NULL;
    long st = pkf_req(f, "GET", path, NULL, &j);
    if (st != 200)
        fail_msg("GET %s -> %ld", path, st);
    return j;
}

/* A number from GET /_emu/stats: key, or key.sub. */
static __attribute__((unused)) double pkf_stat(struct pkf *f, const char *key, const char *sub)
{
    char tok[sizeof(f->token)];
    snprintf(tok, sizeof(tok), "%s", f->token);
    f->token[0] = '\0';
    cJSON *j = pkf_get(f, "/_emu/stats");
    snprintf(f->token, sizeof(f->token), "%s", tok);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    cJSON_Delete(j);
    return d;
}

static __attribute__((unused)) void pkf_token(struct pkf *f)
{
    f->token[0] = '\0';
    cJSON *j = NULL;
    long st = pkf_req(f, "POST", "/t/oauth2/v2.0/token",
                      "client_id=smsys-demo&client_secret=smsys-demo-secret"
                      "&grant_type=client_credentials&scope=http%3A%2F%2F127.0.0.1%2F.default",
                      &j);
    assert_int_equal(st, 200);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    assert_true(cJSON_IsString(t));
    snprintf(f->token, sizeof(f->token), "%s", t->valuestring);
    cJSON_Delete(j);
}

/* Starts dvemu on f->port (chosen on first start), with f->data_dir when
 * set, plus extra arguments (NULL-terminated, may be NULL). */
static __attribute__((unused)) void pkf_dv_start(struct pkf *f, const char *const *extra)
{
    if (f->port == 0)
        f->port = tu_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
    static char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("dvemu"));
    const char *argv[32];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    if (f->data_dir[0]) {
        argv[n++] = "--data";
        argv[n++] = f->data_dir;
    }
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    snprintf(f->log, sizeof(f->log), "/tmp/pk-dvemu-%d.log", f->port);
    f->pid = tu_spawn((char *const *)argv, f->log, f->port, 10000);
    assert_true(f->pid > 0);
    snprintf(f->root, sizeof(f->root), "http://127.0.0.1:%d", f->port);
    if (f->curl == NULL)
        f->curl = curl_easy_init();
    pkf_token(f);
}

static __attribute__((unused)) void pkf_dv_stop(struct pkf *f)
{
    if (f->pid > 0) {
        int st = tu_stop(f->pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    f->pid = 0;
}

static __attribute__((unused)) void pkf_exec(struct pkf *f, const char *sql)
{
    PGresult *r = PQexec(f->side, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%.200s: %s", sql, PQerrorMessage(f->side));
    PQclear(r);
}

static __attribute__((unused)) long long pkf_int(struct pkf *f, const char *sql)
{
    PGresult *r = PQexec(f->side, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(f->side));
    long long v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* First column of the first row ("" for NULL, "<none>" for no row), in a
 * static buffer. */
static __attribute__((unused)) const char *pkf_str(struct pkf *f, const char *sql)
{
    static char out[4096];
    PGresult *r = PQexec(f->side, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(f->side));
    snprintf(out, sizeof(out), "%s",
             PQntuples(r) < 1       ? "<none>"
             : PQgetisnull(r, 0, 0) ? ""
                                    : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* dv client options for tests: short backoffs so outages resolve fast. */
static __attribute__((unused)) struct dv_opts pkf_dv_opts(struct pkf *f, char *token_url,
                                                          size_t len)
{
    snprintf(token_url, len, "%s/t/oauth2/v2.0/token", f->root);
    struct dv_opts o = {.url = f->root,
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
    tdb_create(tag, f->dbname, sizeof(f->dbname), f->conninfo, sizeof(f->conninfo));
    struct smsys_err err = {0};
    if (migrate_apply(f->conninfo, tu_src("sql"), 0, &err) < 0)
        fail_msg("migrate: %s", err.detail);
    f->side = PQconnectdb(f->conninfo);
    assert_int_equal(PQstatus(f->side), CONNECTION_OK);
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
    if (f->curl)
        curl_easy_cleanup(f->curl);
    f->curl = NULL;
    tdb_drop(f->dbname);
}

#endif
