/* inbound-bench - inbound SMS from intake to the Dynamics record, with a
 * large phone index.
 *
 *   inbound-bench --url http://127.0.0.1:PORT [-k contacts] [-n messages]
 *                 [-c conninfo] [-s sqldir]
 *
 * Against a running dvemu (client smsys-demo) and PostgreSQL (default
 * $SMSYS_TEST_PG): creates k contacts (CreateMultiple), loads the phone
 * index (full read with change tracking), measures the matching latency
 * (smsys_pi_match, one statement at a time), then accepts n messages from
 * random contacts and runs inbound rounds until every one is recorded in
 * Dynamics, printing messages/s. A scratch database is created next to
 * the one conninfo names and dropped at the end.
 *
 * Built by `make` into build/bin/inbound-bench; run by bench/inbound.bench.sh. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/inbound.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/phone_index.h"
#include "smsys/queue.h"
#include "smsys/util.h"

#define ACC "aaaaaaaa-0000-4000-8000-00000000000b"

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "inbound-bench: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static void admin(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void conninfo_for(const char *base, const char *db, char *out, size_t len)
{
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(base, &err);
    if (o == NULL)
        die("conninfo", err);
    size_t n = 0;
    out[0] = '\0';
    for (PQconninfoOption *p = o; p->keyword; p++) {
        const char *v = strcmp(p->keyword, "dbname") == 0 ? db : p->val;
        if (v && *v && n < len)
            n += (size_t)snprintf(out + n, len - n, "%s='%s' ", p->keyword, v);
    }
    if (strstr(out, "dbname=") == NULL && n < len)
        snprintf(out + n, len - n, "dbname='%s'", db);
    PQconninfoFree(o);
}

static volatile int flag;
static int last_rc;

static void run_until(uv_loop_t *loop)
{
    while (!flag && uv_run(loop, UV_RUN_ONCE))
        ;
    flag = 0;
}

static void bulk_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    (void)res;
    (void)ud;
    last_rc = rc;
    flag = 1;
}

static void idx_cb(void *ud, int rc, unsigned long rows, const struct smsys_err *err)
{
    *(unsigned long *)ud = rows;
    if (rc < 0)
        die("phone index", err ? err->detail : "");
    flag = 1;
}

struct lat {
    unsigned left;
    int64_t started;
    double sum, max;
    struct pg_pool *pool;
    unsigned k;
};

static void match_next(struct lat *l);

static void match_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct lat *l = ud;
    if (rc < 0 || PQntuples(res) != 1)
        die("match", err ? err->detail : "no row");
    double ms = (double)(util_wall_us() - l->started) / 1000.0;
    l->sum += ms;
    if (ms > l->max)
        l->max = ms;
    if (--l->left == 0) {
        flag = 1;
        return;
    }
    match_next(l);
}

static void number_of(unsigned i, char *out, size_t len)
{
    snprintf(out, len, "+98912%07u", i);
}

static void match_next(struct lat *l)
{
    char num[24];
    number_of((unsigned)rand() % l->k, num, sizeof(num));
    const char *p[1] = {num};
    l->started = util_wall_us();
    if (pg_query_prepared(l->pool, "bench_match", "SELECT * FROM smsys_pi_match($1)", 1, p,
                          match_cb, l) < 0)
        die("match", "query");
}

static unsigned accepted;

static void acc_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    (void)ud;
    (void)id;
    (void)inserted;
    if (rc < 0)
        die("accept", err ? err->detail : "");
    accepted++;
}

static unsigned processed;

static void round_cb(void *ud, int rc, unsigned n, const struct smsys_err *err)
{
    (void)ud;
    if (rc < 0)
        die("round", err ? err->detail : "");
    processed += n;
    flag = 1;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *base = getenv("SMSYS_TEST_PG"), *sqldir = "sql";
    unsigned k = 100000, n = 2000;
    int opt;
    while ((opt = getopt(argc, argv, "u:k:n:c:s:")) != -1) {
        long long v;
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'k':
            if (util_parse_int(optarg, 1, 9999999, &v) != 0)
                die("-k", optarg);
            k = (unsigned)v;
            break;
        case 'n':
            if (util_parse_int(optarg, 1, 1000000, &v) != 0)
                die("-n", optarg);
            n = (unsigned)v;
            break;
        case 'c':
            base = optarg;
            break;
        case 's':
            sqldir = optarg;
            break;
        default:
            die("usage", "inbound-bench -u URL [-k contacts] [-n messages] [-c conninfo]");
        }
    }
    if (url == NULL || base == NULL)
        die("usage", "-u URL and -c conninfo (or $SMSYS_TEST_PG) are required");

    char db[64], conninfo[2048], sql[200];
    snprintf(db, sizeof(db), "smsys_inbench_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    admin(base, sql);
    conninfo_for(base, db, conninfo, sizeof(conninfo));
    struct smsys_err e;
    if (migrate_apply(conninfo, sqldir, 0, &e) < 0)
        die("migrate", e.detail);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool = NULL;
    struct http_client *http = NULL;
    struct dv_client *dv = NULL;
    struct queue *q = NULL;
    struct phone_index *pi = NULL;
    struct inbound *in = NULL;
    char token_url[300];
    snprintf(token_url, sizeof(token_url), "%s/t/oauth2/v2.0/token", url);
    struct dv_opts o = {.url = url,
                        .token_url = token_url,
                        .client_id = "smsys-demo",
                        .client_secret = "smsys-demo-secret",
                        .scope = "http://127.0.0.1/.default",
                        .max_concurrency = 16};
    if (pg_pool_new(&loop, conninfo, 8, &pool) || http_client_new(&loop, NULL, &http) ||
        dv_new(&loop, http, &o, &dv) || queue_new(&loop, pool, NULL, &q) ||
        phone_index_new(pool, dv, NULL, 0, "IR", &pi))
        die("setup", "");
    struct inbound_opts io = {.batch = 200};
    if (inbound_new(&loop, pool, dv, q, pi, &io, &in))
        die("setup", "inbound");

    /* 0. the provider account the messages arrive on */
    cJSON *acct = cJSON_CreateArray();
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "smsys_smssettingid", ACC);
    cJSON_AddStringToObject(a, "smsys_name", "bench");
    cJSON_AddItemToArray(acct, a);
    if (dv_create_multiple(dv, "smsys_smssettings", "smsys_smssetting", acct, bulk_cb, NULL) < 0)
        die("create", "setting");
    run_until(&loop);
    cJSON_Delete(acct);
    if (last_rc < 0)
        die("create setting", smsys_strerror(last_rc));

    /* 1. contacts */
    uint64_t t0 = util_now_ms();
    for (unsigned i = 0; i < k; i += 1000) {
        cJSON *rows = cJSON_CreateArray();
        for (unsigned j = i; j < i + 1000 && j < k; j++) {
            cJSON *r = cJSON_CreateObject();
            char id[37], ph[24], name[32];
            util_uuid4(id);
            snprintf(ph, sizeof(ph), "0912 %03u %04u", j / 10000, j % 10000);
            snprintf(name, sizeof(name), "C%u", j);
            cJSON_AddStringToObject(r, "contactid", id);
            cJSON_AddStringToObject(r, "lastname", name);
            cJSON_AddStringToObject(r, "mobilephone", ph);
            cJSON_AddItemToArray(rows, r);
        }
        if (dv_create_multiple(dv, "contacts", "contact", rows, bulk_cb, NULL) < 0)
            die("create", "contacts");
        run_until(&loop);
        cJSON_Delete(rows);
        if (last_rc < 0)
            die("create contacts", smsys_strerror(last_rc));
    }
    printf("contacts created: %u in %.1f s\n", k, (double)(util_now_ms() - t0) / 1000);

    /* 2. index */
    unsigned long rows = 0;
    t0 = util_now_ms();
    if (phone_index_refresh(pi, idx_cb, &rows) < 0)
        die("index", "");
    run_until(&loop);
    double s = (double)(util_now_ms() - t0) / 1000;
    printf("phone index full load: %lu records in %.2f s (%.0f records/s)\n", rows, s,
           rows / (s > 0 ? s : 1e-3));
    t0 = util_now_ms();
    if (phone_index_refresh(pi, idx_cb, &rows) < 0)
        die("index", "");
    run_until(&loop);
    printf("phone index delta refresh (no change): %lu records in %" PRIu64 " ms\n", rows,
           util_now_ms() - t0);

    /* 3. matching latency */
    struct lat l = {.left = 2000, .pool = pool, .k = k};
    srand(42);
    match_next(&l);
    run_until(&loop);
    printf("matching latency (smsys_pi_match, %u contacts indexed): avg %.3f ms, max %.1f ms "
           "over 2000 lookups\n",
           k, l.sum / 2000, l.max);

    /* 4. end to end */
    t0 = util_now_ms();
    for (unsigned i = 0; i < n; i++) {
        char from[24], pid[32];
        number_of((unsigned)rand() % k, from, sizeof(from));
        snprintf(pid, sizeof(pid), "bench-%u", i);
        struct conn_mo mo = {.provider_id = pid, .from = from, .to = "3000123", .text = "سلام"};
        if (inbound_accept(pool, ACC, &mo, "IR", acc_cb, NULL) < 0)
            die("accept", "");
    }
    while (accepted < n && uv_run(&loop, UV_RUN_ONCE))
        ;
    double acc_s = (double)(util_now_ms() - t0) / 1000;
    uint64_t t1 = util_now_ms();
    while (processed < n) {
        if (inbound_run_once(in, round_cb, NULL) < 0)
            die("round", "");
        run_until(&loop);
    }
    double proc_s = (double)(util_now_ms() - t1) / 1000;
    printf("intake (durable, deduplicated): %u messages in %.2f s = %.0f msg/s\n", n, acc_s,
           n / acc_s);
    printf("processing (match + smsys_sms record in Dynamics + save): %u in %.2f s = %.0f msg/s\n",
           n, proc_s, n / proc_s);
    printf("end to end: %.0f msg/s\n", n / (acc_s + proc_s));
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQexec(c, "SELECT count(*) FROM smsys_inbound WHERE state = 'recorded'"
                            " AND matched_id IS NOT NULL");
    printf("recorded and matched: %s of %u\n",
           PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?", n);
    PQclear(r);
    PQfinish(c);

    inbound_free(in);
    phone_index_free(pi);
    dv_close(dv, NULL, NULL);
    http_client_close(http, NULL, NULL);
    int closed = 0;
    pg_pool_close(pool, NULL, NULL);
    (void)closed;
    uv_run(&loop, UV_RUN_DEFAULT);
    queue_free(q);
    uv_loop_close(&loop);
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
    admin(base, sql);
    return 0;
}
