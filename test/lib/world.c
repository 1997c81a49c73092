/* world.c - the integration-test harness (see world.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "world.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/migrate.h"

/* ---- registry ---- */

#define WORLD_MAX 64

static pid_t live_pid[WORLD_MAX];
static char live_prog[WORLD_MAX][32]; /* basename of argv[0] */
static char live_db[WORLD_MAX][256];
static char live_dir[WORLD_MAX][256];

static void reg_pid(pid_t pid, const char *path)
{
    const char *slash = strrchr(path, '/');
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (live_pid[i] <= 0) {
            live_pid[i] = pid;
            snprintf(live_prog[i], sizeof(live_prog[i]), "%s", slash ? slash + 1 : path);
            return;
        }
    fail_msg("world: more than %d processes", WORLD_MAX);
}

static void unreg_pid(pid_t pid)
{
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (live_pid[i] == pid)
            live_pid[i] = 0;
}

static void reg_name(char tab[][256], const char *name)
{
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (tab[i][0] == '\0') {
            snprintf(tab[i], sizeof(tab[i]), "%s", name);
            return;
        }
}

pid_t world_spawn(const char *const argv[], const char *logfile, int port, unsigned timeout_ms)
{
    pid_t pid = tu_spawn((char *const *)argv, logfile, port, timeout_ms);
    if (pid > 0)
        reg_pid(pid, argv[0]);
    return pid;
}

int world_stop(pid_t pid)
{
    if (pid <= 0)
        return -1;
    unreg_pid(pid);
    return tu_stop(pid);
}

void world_kill9(pid_t pid)
{
    assert_true(pid > 0);
    unreg_pid(pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

void world_stop_all(void)
{
    world_stop_all_of(NULL);
}

void world_stop_all_of(const char *prog)
{
    for (size_t i = WORLD_MAX; i-- > 0;)
        if (live_pid[i] > 0 && (prog == NULL || strcmp(live_prog[i], prog) == 0)) {
            pid_t p = live_pid[i];
            live_pid[i] = 0;
            tu_stop(p);
        }
}

static void drop_db(const char *name);

void world_cleanup(void)
{
    world_stop_all();
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (live_db[i][0]) {
            drop_db(live_db[i]);
            live_db[i][0] = '\0';
        }
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (live_dir[i][0])
            world_rmdir(live_dir[i]);
}

int world_teardown(void **state)
{
    (void)state;
    world_cleanup();
    return 0;
}

void world_mkdir(const char *tag, char *out, size_t len)
{
    snprintf(out, len, "/tmp/smsys-t-%s-XXXXXX", tag);
    if (mkdtemp(out) == NULL)
        fail_msg("mkdtemp %s: %s", out, strerror(errno));
    reg_name(live_dir, out);
}

void world_rmdir(const char *dir)
{
    char d[256];
    snprintf(d, sizeof(d), "%s", dir);
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (strcmp(live_dir[i], d) == 0)
            live_dir[i][0] = '\0';
    if (d[0] == '\0')
        return;
    const char *argv[] = {"/bin/rm", "-rf", d, NULL};
    pid_t pid = tu_spawn((char *const *)argv, NULL, 0, 0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

char *world_slurp(const char *path)
{
    FILE *in = fopen(path, "rb");
    struct buf b = BUF_INIT;
    char tmp[8192];
    size_t n;
    while (in && (n = fread(tmp, 1, sizeof(tmp), in)) > 0)
        buf_append(&b, tmp, n);
    if (in)
        fclose(in);
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

void world_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

/* ---- PostgreSQL ---- */

/* Appends " key='value'" (libpq quoting) to buf. */
static void conninfo_kv(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, n < len ? len - n : 0, "'");
}

static void quiet_cb(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "database ... does not exist, skipping" is expected */
}

static void admin(const char *sql)
{
    PGconn *c = PQconnectdb(tu_pg_conninfo());
    char msg[512] = "";
    if (PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, quiet_cb, NULL);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            snprintf(msg, sizeof(msg), "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        snprintf(msg, sizeof(msg), "test PostgreSQL: %s", PQerrorMessage(c));
    }
    PQfinish(c); /* before failing: fail_msg does not return */
    if (msg[0])
        fail_msg("%s", msg);
}

static void drop_db(const char *name)
{
    char sql[400];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    admin(sql);
}

void world_db_create(const char *tag, char *name, size_t nlen, char *conninfo, size_t clen)
{
    snprintf(name, nlen, "smsys_t_%s_%d", tag, (int)getpid());
    drop_db(name);
    char sql[400];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    admin(sql);
    reg_name(live_db, name);
    PQconninfoOption *opts = PQconninfoParse(tu_pg_conninfo(), NULL);
    if (opts == NULL)
        fail_msg("cannot parse SMSYS_TEST_PG");
    conninfo[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            conninfo_kv(conninfo, clen, o->keyword, o->val);
    conninfo_kv(conninfo, clen, "dbname", name);
    PQconninfoFree(opts);
}

void world_db_drop(const char *name)
{
    for (size_t i = 0; i < WORLD_MAX; i++)
        if (strcmp(live_db[i], name) == 0)
            live_db[i][0] = '\0';
    drop_db(name);
}

int world_db_migrate(const char *conninfo)
{
    struct smsys_err err = {0};
    int n = migrate_apply(conninfo, tu_src("sql"), 0, &err);
    if (n < 0)
        fail_msg("migrate: %s", err.detail);
    return n;
}

static void quiet_cb(void *arg, const char *msg);

static void pg_init(struct world_pg *p, const char *tag, int migrate)
{
    memset(p, 0, sizeof(*p));
    world_db_create(tag, p->name, sizeof(p->name), p->conninfo, sizeof(p->conninfo));
    if (migrate)
        p->migrations = world_db_migrate(p->conninfo);
    p->c = world_db_connect(p->conninfo);
    PQsetNoticeProcessor(p->c, quiet_cb, NULL);
}

void world_pg_open(struct world_pg *p, const char *tag)
{
    pg_init(p, tag, 1);
}

struct world_pg *world_pg_new(const char *tag, int migrate)
{
    struct world_pg *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    pg_init(p, tag, migrate);
    return p;
}

int world_pg_teardown(void **state)
{
    struct world_pg *p = *state;
    if (p) {
        world_pg_close(p);
        free(p);
    }
    *state = NULL;
    return 0;
}

void world_pg_close(struct world_pg *p)
{
    if (p->c)
        PQfinish(p->c);
    p->c = NULL;
    if (p->name[0])
        world_db_drop(p->name);
    p->name[0] = '\0';
}

PGconn *world_db_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("connect: %s", msg);
    }
    return c;
}

void world_db_value(const char *conninfo, const char *sql, char *out, size_t len)
{
    PGconn *c = world_db_connect(conninfo);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    snprintf(out, len, "%s", st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    assert_int_equal(st, PGRES_TUPLES_OK);
}

void world_db_exec(const char *conninfo, const char *sql)
{
    PGconn *c = world_db_connect(conninfo);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("%.400s: %s", sql, msg);
    }
    PQfinish(c);
}

void world_sql_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%.400s: %s", sql, PQerrorMessage(c));
}

/* rows: 0 any number (none: -1), 1 at least one, 2 exactly one. */
static long long sql_num(PGconn *c, const char *sql, int rows)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || (rows >= 1 && PQntuples(r) < 1) ||
        (rows == 2 && PQntuples(r) != 1)) {
        PQclear(r);
        fail_msg("%.400s: %s", sql, PQerrorMessage(c));
    }
    long long v =
        PQntuples(r) < 1 || PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long long world_sql_int(PGconn *c, const char *sql)
{
    return sql_num(c, sql, 1);
}

long long world_sql_one(PGconn *c, const char *sql)
{
    return sql_num(c, sql, 2);
}

long long world_sql_val(PGconn *c, const char *sql)
{
    return sql_num(c, sql, 0);
}

struct waitq {
    PGconn *c;
    const char *sql;
    long long want;
    int done;
};

static void waitq_cb(uv_timer_t *t)
{
    struct waitq *w = t->data;
    if (world_sql_val(w->c, w->sql) == w->want) {
        w->done = 1;
        uv_timer_stop(t);
    }
}

int world_loop_wait_sql(uv_loop_t *loop, PGconn *c, const char *sql, long long want,
                        unsigned timeout_ms)
{
    struct waitq w = {c, sql, want, 0};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_timer_start(&t, waitq_cb, 20, 50);
    int rc = tu_run_until(loop, &w.done, timeout_ms);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (rc != 0)
        fprintf(stderr, "wait for SQL timed out: %s = %lld, want %lld\n", sql,
                world_sql_val(c, sql), want);
    return rc;
}

const char *world_sql_str(PGconn *c, const char *sql)
{
    static char out[8192];
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        fail_msg("%.400s: %s", sql, PQerrorMessage(c));
    }
    snprintf(out, sizeof(out), "%s",
             PQntuples(r) < 1       ? "<none>"
             : PQgetisnull(r, 0, 0) ? ""
                                    : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* ---- dvemu ---- */

/* Starts tu_bin(prog) --listen listen, then args, then extra (both
 * NULL-terminated, may be NULL), output to logfile, and waits until port
 * listens (0: no wait). Registered; returns the pid or -1. */
static pid_t spawn_prog(const char *prog, const char *listen, const char *const *args,
                        const char *const *extra, const char *logfile, int port,
                        unsigned timeout_ms)
{
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin(prog));
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    for (int i = 0; args && args[i] && n < 40; i++)
        argv[n++] = args[i];
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return world_spawn(argv, logfile, port, timeout_ms);
}

void world_dv_start(struct world_dv *dv, const char *const *extra)
{
    if (dv->port == 0)
        dv->port = tu_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", dv->port);
    const char *data[] = {"--data", dv->data_dir, NULL};
    snprintf(dv->log, sizeof(dv->log), "/tmp/smsys-t-dvemu-%d.log", dv->port);
    dv->pid =
        spawn_prog("dvemu", listen, dv->data_dir[0] ? data : NULL, extra, dv->log, dv->port, 10000);
    if (dv->pid <= 0)
        fail_msg("dvemu did not start (log %s)", dv->log);
    snprintf(dv->root, sizeof(dv->root), "http://127.0.0.1:%d", dv->port);
    if (dv->curl == NULL)
        dv->curl = curl_easy_init();
    assert_non_null(dv->curl);
}

void world_dv_signin(struct world_dv *dv)
{
    dv->token[0] = '\0';
    cJSON *j = NULL;
    long st = world_dv_req(dv, "POST", "/t/oauth2/v2.0/token",
                           "client_id=smsys-demo&client_secret=smsys-demo-secret"
                           "&grant_type=client_credentials&scope=http%3A%2F%2F127.0.0.1%2F.default",
                           &j);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    if (st != 200 || !cJSON_IsString(t)) {
        cJSON_Delete(j);
        fail_msg("dvemu sign-in -> %ld", st);
    }
    snprintf(dv->token, sizeof(dv->token), "%s", t->valuestring);
    cJSON_Delete(j);
}

void world_dv_stop(struct world_dv *dv)
{
    if (dv->pid > 0) {
        int st = world_stop(dv->pid);
        dv->pid = 0;
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    dv->pid = 0;
}

void world_dv_kill9(struct world_dv *dv)
{
    world_kill9(dv->pid);
    dv->pid = 0;
}

void world_dv_free(struct world_dv *dv)
{
    if (dv->curl)
        curl_easy_cleanup(dv->curl);
    dv->curl = NULL;
}

static size_t dv_write_cb(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

long world_dv_req(struct world_dv *dv, const char *method, const char *path, const char *body,
                  cJSON **out)
{
    struct buf url = BUF_INIT;
    buf_printf(&url, "%s%s", dv->root, path[0] == '/' ? "" : "/api/data/v9.2/");
    for (const char *c = path; *c; c++)
        if (*c == ' ')
            buf_append(&url, "%20", 3);
        else
            buf_putc(&url, *c);
    buf_putc(&url, '\0');
    struct buf b = BUF_INIT;
    CURL *c = dv->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dv_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    struct curl_slist *h = NULL;
    char authz[4200];
    if (dv->token[0]) {
        snprintf(authz, sizeof(authz), "Authorization: Bearer %s", dv->token);
        h = curl_slist_append(h, authz);
    }
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "OData-Version: 4.0");
    h = curl_slist_append(h, "Prefer: odata.include-annotations=\"*\"");
    if (body) {
        h = curl_slist_append(h, dv->token[0] ? "Content-Type: application/json"
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
    buf_free(&url);
    return status;
}

long world_dv_ctl(struct world_dv *dv, const char *method, const char *path, const char *body,
                  cJSON **out)
{
    char tok[sizeof(dv->token)];
    snprintf(tok, sizeof(tok), "%s", dv->token);
    dv->token[0] = '\0';
    long st = world_dv_req(dv, method, path, body, out);
    snprintf(dv->token, sizeof(dv->token), "%s", tok);
    return st;
}

void world_dv_post(struct world_dv *dv, const char *set, const char *body)
{
    long st = world_dv_req(dv, "POST", set, body, NULL);
    if (st != 204 && st != 201 && st != 200)
        fail_msg("POST %s -> %ld: %.300s", set, st, body);
}

cJSON *world_dv_get(struct world_dv *dv, const char *path)
{
    cJSON *j = NULL;
    long st = world_dv_req(dv, "GET", path, NULL, &j);
    if (st != 200 || j == NULL) {
        cJSON_Delete(j);
        fail_msg("GET %s -> %ld", path, st);
    }
    return j;
}

cJSON *world_dv_stats(struct world_dv *dv)
{
    char tok[sizeof(dv->token)];
    snprintf(tok, sizeof(tok), "%s", dv->token);
    dv->token[0] = '\0';
    cJSON *j = NULL;
    long st = world_dv_req(dv, "GET", "/_emu/stats", NULL, &j);
    snprintf(dv->token, sizeof(dv->token), "%s", tok);
    if (st != 200 || j == NULL) {
        cJSON_Delete(j);
        fail_msg("GET /_emu/stats -> %ld", st);
    }
    return j;
}

double world_dv_stat_of(const cJSON *s, const char *key, const char *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

const char *world_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- the queue under test ---- */

static void flag_cb(void *ud);

void world_queue_open(uv_loop_t *loop, const char *conninfo, unsigned pool_size,
                      const struct queue_opts *opts, struct pg_pool **pool, struct queue **q)
{
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(pg_pool_new(loop, conninfo, pool_size, pool), 0);
    assert_int_equal(queue_new(loop, *pool, opts, q), 0);
}

void world_queue_close(uv_loop_t *loop, struct pg_pool *pool, struct queue *q)
{
    int closed = 0;
    pg_pool_close(pool, flag_cb, &closed);
    assert_int_equal(tu_run_until(loop, &closed, 10000), 0);
    queue_free(q);
    assert_int_equal(tu_loop_handles(loop), 0);
    assert_int_equal(tu_loop_close(loop), 0);
}

/* ---- our Dataverse client against dvemu ---- */

void world_dvc_open(struct world_dvc *c, const struct world_dv *emu, const struct dv_opts *opts)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(http_client_new(&c->loop, NULL, &c->http), 0);
    snprintf(c->token_url, sizeof(c->token_url), "%s/t/oauth2/v2.0/token", emu->root);
    struct dv_opts o = {0};
    if (opts)
        o = *opts;
    if (o.url == NULL)
        o.url = emu->root;
    if (o.token_url == NULL)
        o.token_url = c->token_url;
    if (o.client_id == NULL)
        o.client_id = "smsys-demo";
    if (o.client_secret == NULL)
        o.client_secret = "smsys-demo-secret";
    if (o.scope == NULL)
        o.scope = "http://127.0.0.1/.default";
    if (o.timeout_ms == 0)
        o.timeout_ms = 10000;
    assert_int_equal(dv_new(&c->loop, c->http, &o, &c->dv), 0);
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

void world_dvc_close(struct world_dvc *c)
{
    int dvc = 0, hc = 0;
    if (c->dv) {
        dv_close(c->dv, flag_cb, &dvc);
        assert_int_equal(tu_run_until(&c->loop, &dvc, 5000), 0);
        c->dv = NULL;
    }
    if (c->http) {
        http_client_close(c->http, flag_cb, &hc);
        assert_int_equal(tu_run_until(&c->loop, &hc, 5000), 0);
        c->http = NULL;
    }
    assert_int_equal(tu_loop_handles(&c->loop), 0);
    assert_int_equal(tu_loop_close(&c->loop), 0);
}

/* ---- provider simulators ---- */

void world_provsim_start(struct world_sim *s, const char *logfile, const char *const *extra)
{
    s->port = tu_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
    s->pid = spawn_prog("provsim", listen, NULL, extra, logfile, s->port, 10000);
    if (s->pid <= 0)
        fail_msg("provsim did not start");
}

void world_smscsim_start(struct world_sim *s, const char *const *extra, int v6)
{
    static unsigned seq;
    s->port = tu_free_port();
    s->cport = tu_free_port();
    snprintf(s->log, sizeof(s->log), "/tmp/smscsim-test-%d-%u.jsonl", (int)getpid(), seq++);
    unlink(s->log);
    char listen[64], control[64];
    snprintf(listen, sizeof(listen), v6 ? "[::1]:%d" : "127.0.0.1:%d", s->port);
    snprintf(control, sizeof(control), "127.0.0.1:%d", s->cport);
    const char *args[] = {"--control", control, "--log", s->log, NULL};
    s->pid = spawn_prog("smscsim", listen, args, extra, NULL, v6 ? 0 : s->port, 5000);
    if (s->pid <= 0)
        fail_msg("smscsim did not start");
}

int world_sim_stop(struct world_sim *s)
{
    int st = world_stop(s->pid);
    s->pid = 0;
    return st;
}

/* ---- config files ---- */

char *world_conf_text(const struct world_conf *c)
{
    struct buf b = BUF_INIT;
    if (c->dv_root) {
        buf_printf(&b,
                   "[dataverse]\nurl = %s\ntoken_url = %s/t/oauth2/v2.0/token\n"
                   "client_id = %s\nclient_secret = %s\nscope = %s\n%s",
                   c->dv_root, c->dv_root, c->client_id ? c->client_id : "smsys-demo",
                   c->client_secret ? c->client_secret : "smsys-demo-secret",
                   c->scope ? c->scope : "http://127.0.0.1/.default",
                   c->dv_extra ? c->dv_extra : "");
    }
    if (c->conninfo)
        buf_printf(&b, "[postgres]\nconninfo = \"%s\"\n", c->conninfo);
    if (c->more)
        buf_printf(&b, "%s", c->more);
    if (c->http_port > 0)
        buf_printf(&b, "[http]\nlisten = 127.0.0.1:%d\n", c->http_port);
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

void world_conf_write(const char *path, const struct world_conf *c)
{
    char *t = world_conf_text(c);
    world_write_file(path, t);
    free(t);
}

/* ---- smsysd ---- */

void world_smsysd_init(struct world_smsysd *s, const char *dir, const char *name)
{
    snprintf(s->conf, sizeof(s->conf), "%s/%s.conf", dir, name);
    snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, name);
    s->http_port = tu_free_port();
    s->pid = 0;
}

void world_smsysd_start(struct world_smsysd *s, unsigned timeout_ms)
{
    static char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("smsysd"));
    const char *argv[] = {bin, "--config", s->conf, NULL};
    s->pid = world_spawn(argv, s->log, s->http_port, timeout_ms);
    if (s->pid <= 0) {
        s->pid = 0;
        world_smsysd_print_log(s, 3000);
        fail_msg("smsysd did not start");
    }
}

int world_smsysd_stop(struct world_smsysd *s)
{
    if (s->pid <= 0)
        return -1;
    int st = world_stop(s->pid);
    s->pid = 0;
    return st;
}

void world_smsysd_stop_clean(struct world_smsysd *s, const char *const *secrets)
{
    if (s->pid <= 0)
        return;
    int st = world_smsysd_stop(s);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char *l = world_slurp(s->log);
    for (int i = 0; secrets && secrets[i]; i++)
        if (strstr(l, secrets[i]) != NULL) {
            free(l);
            fail_msg("smsysd's log holds a secret");
        }
    free(l);
}

void world_smsysd_print_log(const struct world_smsysd *s, size_t max)
{
    char *l = world_slurp(s->log);
    size_t n = strlen(l);
    print_message("smsysd log (end):\n%s\n", n > max ? l + n - max : l);
    free(l);
}

void world_smsysd_kill9(struct world_smsysd *s)
{
    world_kill9(s->pid);
    s->pid = 0;
}

int world_smsysd_healthy(const struct world_smsysd *s, unsigned timeout_ms)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", s->http_port);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    int rc = -ETIMEDOUT;
    struct buf sink = BUF_INIT;
    for (unsigned t = 0; t <= timeout_ms; t += 50) {
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dv_write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        buf_free(&sink);
        if (status == 200) {
            rc = 0;
            break;
        }
        uv_sleep(50);
    }
    curl_easy_cleanup(c);
    return rc;
}

/* ---- smsysctl ---- */

static char *read_fd(int fd)
{
    struct buf b = BUF_INIT;
    char tmp[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        buf_append(&b, tmp, (size_t)n);
    close(fd);
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

struct world_run world_ctl_start(const char *conf, const char *const *args)
{
    static char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("smsysctl"));
    const char *argv[40];
    int argc = 0;
    argv[argc++] = bin;
    if (conf) {
        argv[argc++] = "--config";
        argv[argc++] = conf;
    }
    for (int i = 0; args && args[i] && argc < 39; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    struct world_run r = {.code = -1};
    char p1[] = "/tmp/smsys-t-ctl-out.XXXXXX", p2[] = "/tmp/smsys-t-ctl-err.XXXXXX";
    r.fo = mkstemp(p1);
    r.fe = mkstemp(p2);
    assert_true(r.fo >= 0 && r.fe >= 0);
    unlink(p1);
    unlink(p2);
    r.pid = fork();
    assert_true(r.pid >= 0);
    if (r.pid == 0) {
        dup2(r.fo, 1);
        dup2(r.fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return r;
}

void world_ctl_finish(struct world_run *r, unsigned timeout_ms)
{
    int st = 0;
    pid_t w = 0;
    if (timeout_ms == 0)
        w = waitpid(r->pid, &st, 0);
    /* from 1 ms up to 20 ms: a quick command is not kept waiting */
    for (unsigned t = 0, step = 1; w != r->pid && t <= timeout_ms; t += step) {
        w = waitpid(r->pid, &st, WNOHANG);
        if (w == r->pid)
            break;
        struct timespec ts = {0, (long)step * 1000 * 1000};
        nanosleep(&ts, NULL);
        step = step < 20 ? step * 2 : 20;
    }
    if (w != r->pid) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        r->timed_out = 1;
    }
    world_ctl_reaped(r, st);
}

void world_ctl_reaped(struct world_run *r, int wait_status)
{
    int st = wait_status;
    r->code = WIFEXITED(st) && !r->timed_out ? WEXITSTATUS(st) : -1;
    r->sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    r->out = read_fd(r->fo);
    r->err = read_fd(r->fe);
    r->fo = r->fe = -1;
}

struct world_run world_ctl(const char *conf, const char *const *args)
{
    struct world_run r = world_ctl_start(conf, args);
    world_ctl_finish(&r, 0);
    return r;
}

void world_run_free(struct world_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void world_run_expect(struct world_run r, int code, const char *in_out, const char *in_err)
{
    if (r.code != code || (in_out && strstr(r.out, in_out) == NULL) ||
        (in_err && strstr(r.err, in_err) == NULL)) {
        char msg[8192];
        snprintf(msg, sizeof(msg),
                 "exit %d (want %d)\nstdout: %s\nstderr: %s\nwanted out '%s' err '%s'", r.code,
                 code, r.out, r.err, in_out ? in_out : "", in_err ? in_err : "");
        world_run_free(&r);
        fail_msg("%s", msg);
    }
    world_run_free(&r);
}
