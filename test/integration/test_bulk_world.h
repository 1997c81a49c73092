/* test_bulk_world.h - the world of the bulk SMS integration tests
 * (test_bulk*.c): a private PostgreSQL database, dvemu seeded from a JSON
 * file the test writes, smscsim (SMPP with receipts) and smsysd as a real
 * process. Header-only: each test binary includes it once, after cmocka. */
#ifndef TEST_BULK_WORLD_H
#define TEST_BULK_WORLD_H

#include <time.h>

/* Not every test file uses every helper (here or in the fixtures). */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "../lib/testutil.h"
#include "../lib/world.h"
#include "pk_fixture.h"
#include "smpp_fixture.h"

#define BW_ACC  "b1100000-0000-4000-8000-0000000000a1"
#define BW_LINE "3000222"

struct bw {
    struct pkf f;
    struct simproc sim;
    char tag[16];
    char dir[128], conf[256], log[256], seed[256];
    pid_t smsysd;
    int http_port;
    long my_reqs; /* requests the test itself sent to dvemu */
};

static struct bw w;
/* [bulk] page_size of the world's config (0: the default, 5000) */
static int bw_page_size;

/* The whole file; caller frees ("" when unreadable). */
static char *bw_slurp(const char *path)
{
    return world_slurp(path);
}

/* Blocking request to dvemu, counted; spaces in the path become %20. */
static long bw_req(const char *method, const char *path, const char *body, cJSON **out)
{
    w.my_reqs++;
    return world_dv_req(&w.f.emu, method, path, body, out);
}

static void bw_post(const char *set, const char *body)
{
    long st = bw_req("POST", set, body, NULL);
    if (st != 204 && st != 201)
        fail_msg("POST %s -> %ld: %.300s", set, st, body);
}

static void bw_patch(const char *path, const char *body)
{
    long st = bw_req("PATCH", path, body, NULL);
    if (st != 204 && st != 200)
        fail_msg("PATCH %s -> %ld", path, st);
}

static cJSON *bw_get(const char *path)
{
    cJSON *j = NULL;
    long st = bw_req("GET", path, NULL, &j);
    if (st != 200 || j == NULL)
        fail_msg("GET %s -> %ld", path, st);
    return j;
}

/* GET /_emu/stats (not counted); caller deletes. */
static cJSON *bw_stats(void)
{
    return world_dv_stats(&w.f.emu);
}

static double bw_stat(const cJSON *s, const char *key, const char *sub)
{
    return world_dv_stat_of(s, key, sub);
}

/* First column of the first row as a number; -1 for NULL, no row or an
 * SQL error (printed): callers poll while smsysd creates the schema. */
static long long bw_int(const char *sql)
{
    PGconn *c = world_db_connect(w.f.conninfo);
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_message("SQL %s: %s\n", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* First column of the first row, "" for NULL, no row or an SQL error
 * (static buffer). */
static const char *bw_str(const char *sql)
{
    static char out[8192];
    out[0] = '\0';
    PGconn *c = world_db_connect(w.f.conninfo);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0))
        snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return out;
}

static void bw_exec(const char *sql)
{
    PGconn *c = world_db_connect(w.f.conninfo);
    world_sql_exec(c, sql);
    PQfinish(c);
}

/* quiet: the [sending] quiet_hours value ("" = none). */
static void bw_write_conf(const char *quiet)
{
    char more[1024];
    snprintf(more, sizeof(more),
             "[pickup]\n"
             "writeback_idle_ms = 100\n"
             "[queue]\n"
             "accounts_poll_ms = 600000\n"
             "idle_claim_ms = 100\n"
             "[bulk]\n"
             "poll_interval_ms = 200\n"
             "counters_interval_ms = 500\n"
             "page_size = %d\n"
             "[sending]\n"
             "quiet_hours = %s\n"
             "timezone = Asia/Tehran\n"
             "[service]\n"
             "grace_period_ms = 3000\n"
             "[log]\n"
             "level = info\n",
             bw_page_size ? bw_page_size : 5000, quiet);
    world_conf_write(w.conf, &(struct world_conf){.dv_root = w.f.emu.root,
                                                  .client_secret = "env:SMSYS_T_BULK_SECRET",
                                                  .dv_extra = "poll_interval_ms = 300\n",
                                                  .conninfo = w.f.conninfo,
                                                  .http_port = w.http_port,
                                                  .more = more});
}

/* Keeps smsysd's log for a look after a failure (the test directory is
 * removed) and prints its end. */
static void bw_print_log(void)
{
    char keep[300], cmd[700];
    snprintf(keep, sizeof(keep), "/tmp/smsys-t-%s-smsysd-%d.log", w.tag, (int)getpid());
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", w.log, keep);
    if (system(cmd) == 0)
        print_message("smsysd log kept in %s\n", keep);
    struct world_smsysd sd = {0};
    snprintf(sd.log, sizeof(sd.log), "%s", w.log);
    world_smsysd_print_log(&sd, 1500);
}

/* Starts smsysd and waits until the account is synced. */
static void bw_smsysd_start(const char *quiet)
{
    bw_write_conf(quiet);
    struct world_smsysd sd = {.http_port = w.http_port};
    snprintf(sd.conf, sizeof(sd.conf), "%s", w.conf);
    snprintf(sd.log, sizeof(sd.log), "%s", w.log);
    world_smsysd_start(&sd, 20000);
    w.smsysd = sd.pid;
    int synced = 0;
    for (int i = 0; i < 400 && !synced; i++) {
        synced = bw_int("SELECT count(*) FROM smsys_account WHERE enabled") >= 1;
        if (!synced)
            uv_sleep(50);
    }
    if (!synced)
        bw_print_log();
    assert_true(synced);
}

/* Stops smsysd: it must exit 0 and its log must not hold the secret. */
static void bw_smsysd_stop(void)
{
    struct world_smsysd sd = {.pid = w.smsysd};
    snprintf(sd.log, sizeof(sd.log), "%s", w.log);
    w.smsysd = 0;
    world_smsysd_stop_clean(&sd, (const char *const[]){"smsys-demo-secret", NULL});
}

/* The world; seed_cb writes the dvemu seed JSON (accounts come from here:
 * BW_ACC is an SMPP account on smscsim, default, with line BW_LINE). */
static void bw_open(const char *tag, void (*seed_cb)(FILE *out, int sim_port), const char *quiet)
{
    memset(&w, 0, sizeof(w));
    snprintf(w.tag, sizeof(w.tag), "%s", tag);
    world_mkdir(tag, w.dir, sizeof(w.dir));
    snprintf(w.conf, sizeof(w.conf), "%s/smsys.conf", w.dir);
    snprintf(w.log, sizeof(w.log), "%s/smsysd.log", w.dir);
    snprintf(w.seed, sizeof(w.seed), "%s/seed.json", w.dir);
    setenv("SMSYS_T_BULK_SECRET", "smsys-demo-secret", 1);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    world_db_create(tag, w.f.dbname, sizeof(w.f.dbname), w.f.conninfo, sizeof(w.f.conninfo));

    const char *flags[] = {
        "--system-id", "smsys",      "--password", "smsyspw", "--receipt-delay-ms",
        "20",          "--log-pdus", "1",          NULL};
    sim_start(&w.sim, flags);
    FILE *o = fopen(w.seed, "w");
    assert_non_null(o);
    seed_cb(o, w.sim.port);
    fclose(o);
    const char *extra[] = {"--seed", w.seed, NULL};
    pkf_dv_start(&w.f, extra);
    w.http_port = tu_free_port();
    bw_smsysd_start(quiet);
}

/* Stops smsysd (cleanly), the simulator and dvemu; drops the database and
 * removes the directory. What an earlier failure left running is ended
 * here too. */
static void bw_close(void)
{
    bw_smsysd_stop();
    sim_stop(&w.sim);
    pkf_dv_stop(&w.f);
    world_dv_free(&w.f.emu);
    world_cleanup();
}

/* The SMPP account row of a seed (JSON object, no trailing comma). */
static void bw_seed_account(FILE *o, const char *id, const char *name, int is_default, int enabled,
                            int port, const char *extra_conf, const char *extra_cols)
{
    fprintf(o,
            "{\"smsys_smssettingid\":\"%s\",\"smsys_name\":\"%s\",\"smsys_provider\":\"smpp\","
            "\"smsys_isdefault\":%s,\"smsys_enabled\":%s,\"smsys_maxretries\":3,"
            "\"smsys_apikey\":\"smsyspw\",\"smsys_config\":\"{\\\"host\\\":\\\"127.0.0.1\\\","
            "\\\"port\\\":%d,\\\"system_id\\\":\\\"smsys\\\",\\\"window\\\":50%s}\"%s}",
            id, name, is_default ? "true" : "false", enabled ? "true" : "false", port,
            extra_conf ? extra_conf : "", extra_cols ? extra_cols : "");
}

/* What smscsim accepted whose text starts with prefix: key "dst|text" ->
 * times received. Caller cJSON_Deletes. */
static cJSON *bw_seen(const char *prefix)
{
    cJSON *count = cJSON_CreateObject();
    struct simlog lg;
    sim_log_read(&w.sim, &lg);
    for (size_t i = 0; i < lg.n; i++) {
        const cJSON *l = lg.line[i];
        const char *dst = jstr(l, "dst"), *text = jstr(l, "text");
        if (!is_cmd(l, "submit_sm") || !dst || !text || jnum(l, "status", 0) != 0 ||
            strncmp(text, prefix, strlen(prefix)) != 0)
            continue;
        char key[1024];
        snprintf(key, sizeof(key), "%s|%s", dst[0] == '+' ? dst + 1 : dst, text);
        cJSON *c = cJSON_GetObjectItemCaseSensitive(count, key);
        if (c)
            cJSON_SetNumberValue(c, c->valuedouble + 1);
        else
            cJSON_AddNumberToObject(count, key, 1);
    }
    sim_log_free(&lg);
    return count;
}

/* Submits with that prefix (all times counted). */
static int bw_seen_total(const char *prefix)
{
    cJSON *s = bw_seen(prefix);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, s)
    {
        n += it->valueint;
    }
    cJSON_Delete(s);
    return n;
}

/* Waits until the bulk's PostgreSQL state is one of the states in want
 * (e.g. "6" or "678"); returns the state or -1 after timeout_ms. */
static int bw_wait_state(const char *bulk, const char *want, int timeout_ms)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT state FROM smsys_bulk WHERE id = '%s'", bulk);
    for (int t = 0; t < timeout_ms; t += 50) {
        long long st = bw_int(sql);
        if (st > 0 && strchr(want, (char)('0' + st)))
            return (int)st;
        uv_sleep(50);
    }
    return -1;
}

/* The bulk record as Dynamics has it. */
static cJSON *bw_bulk_row(const char *bulk)
{
    char path[400];
    snprintf(path, sizeof(path),
             "smsys_bulksmses(%s)?$select=smsys_status,smsys_total,smsys_sent,smsys_delivered,"
             "smsys_failed,smsys_skipped,smsys_lasterror",
             bulk);
    return bw_get(path);
}

static int bw_iget(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Waits until Dynamics shows the bulk with status st and the counters
 * given (-1: any); returns the row (caller deletes) or fails. */
static cJSON *bw_wait_row(const char *bulk, int st, int total, int sent, int delivered, int skipped,
                          int timeout_ms)
{
    cJSON *r = NULL;
    for (int t = 0; t < timeout_ms; t += 100) {
        cJSON_Delete(r);
        r = bw_bulk_row(bulk);
        if (bw_iget(r, "smsys_status") == st && (total < 0 || bw_iget(r, "smsys_total") == total) &&
            (sent < 0 || bw_iget(r, "smsys_sent") == sent) &&
            (delivered < 0 || bw_iget(r, "smsys_delivered") == delivered) &&
            (skipped < 0 || bw_iget(r, "smsys_skipped") == skipped))
            return r;
        uv_sleep(100);
    }
    char *s = cJSON_PrintUnformatted(r);
    print_message("bulk %s in Dynamics: %s\n", bulk, s ? s : "?");
    free(s);
    cJSON_Delete(r);
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(state || ' x' || n || ': ' || coalesce(e, '-'), ' | ') FROM "
             "(SELECT state, count(*) AS n, min(last_error) AS e FROM smsys_message "
             "WHERE bulk_id = '%s' GROUP BY state) s",
             bulk);
    print_message("messages by state: %s\n", bw_str(sql));
    bw_print_log();
    fail_msg("bulk %s did not reach status %d with the expected counters", bulk, st);
    return NULL;
}

/* The engine's own count of Dynamics requests since smsysd started, as
 * logged when bulk completed ("engine_dv_requests=N"); -1 unknown. */
static long bw_engine_requests(const char *bulk)
{
    char *l = bw_slurp(w.log);
    char pat[120];
    snprintf(pat, sizeof(pat), "bulk completed bulk=%s ", bulk);
    const char *p = strstr(l, pat);
    const char *q = p ? strstr(p, "engine_dv_requests=") : NULL;
    long n = q ? strtol(q + 19, NULL, 10) : -1;
    free(l);
    return n;
}

#endif
