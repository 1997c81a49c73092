/* cmd_queue.c - smsysctl queue stats: message counts by provider account
 * and state, through the queue module on a private loop. */
#include "ctl.h"

#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Longest the command waits for PostgreSQL before giving up. */
#define QUEUE_STATS_DEADLINE_MS 15000

struct stats_run {
    uv_loop_t loop;
    uv_timer_t deadline;
    int done, closed;
    int rc;
    struct smsys_err err;
    cJSON *rows; /* copied out of the callback: [{account, state, count, oldest_s}] */
};

static const char *state_name(int st)
{
    switch (st) {
    case QUEUE_QUEUED:
        return "queued";
    case QUEUE_SENT:
        return "sent";
    case QUEUE_DELIVERED:
        return "delivered";
    case QUEUE_FAILED:
        return "failed";
    case QUEUE_RETRYING:
        return "retrying";
    case QUEUE_CANCELED:
        return "canceled";
    case QUEUE_BLOCKED:
        return "blocked";
    case QUEUE_INFLIGHT:
        return "inflight";
    case QUEUE_UNKNOWN:
        return "unknown";
    }
    return "other";
}

static void stats_cb(int rc, const struct queue_stat *rows, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct stats_run *r = ud;
    r->done = 1;
    r->rc = rc;
    if (rc) {
        if (err)
            r->err = *err;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(r->rows, o)) {
            cJSON_Delete(o);
            r->rc = -ENOMEM;
            return;
        }
        if (rows[i].account_id)
            cJSON_AddStringToObject(o, "account", rows[i].account_id);
        else
            cJSON_AddNullToObject(o, "account");
        cJSON_AddStringToObject(o, "state", state_name(rows[i].state));
        cJSON_AddNumberToObject(o, "count", (double)rows[i].count);
        cJSON_AddNumberToObject(o, "oldest_s", rows[i].oldest_s);
    }
}

static void deadline_cb(uv_timer_t *t)
{
    struct stats_run *r = container_of(t, struct stats_run, deadline);
    if (!r->done) {
        r->done = 1;
        r->rc = -ETIMEDOUT;
        smsys_err_set(&r->err, -ETIMEDOUT, "no answer from PostgreSQL within %d s",
                      QUEUE_STATS_DEADLINE_MS / 1000);
    }
}

static void pool_closed_cb(void *ud)
{
    struct stats_run *r = ud;
    r->closed = 1;
}

static void print_text(const cJSON *rows)
{
    int n = cJSON_GetArraySize(rows);
    if (n == 0) {
        printf("the queue is empty\n");
        return;
    }
    printf("%-36s  %-9s  %10s  %s\n", "ACCOUNT", "STATE", "MESSAGES", "OLDEST");
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(rows, i);
        const cJSON *acc = cJSON_GetObjectItem(o, "account");
        double oldest = cJSON_GetObjectItem(o, "oldest_s")->valuedouble;
        char age[32];
        if (oldest < 120)
            snprintf(age, sizeof(age), "%.0fs", oldest);
        else if (oldest < 7200)
            snprintf(age, sizeof(age), "%.0fm", oldest / 60);
        else if (oldest < 172800)
            snprintf(age, sizeof(age), "%.1fh", oldest / 3600);
        else
            snprintf(age, sizeof(age), "%.1fd", oldest / 86400);
        printf("%-36s  %-9s  %10.0f  %s\n", cJSON_IsString(acc) ? acc->valuestring : "(none)",
               cJSON_GetObjectItem(o, "state")->valuestring,
               cJSON_GetObjectItem(o, "count")->valuedouble, age);
    }
}

int cmd_queue_stats(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    struct stats_run r = {0};
    r.rows = cJSON_CreateArray();
    struct pg_pool *pool = NULL;
    struct queue *q = NULL;
    int rc = r.rows ? uv_loop_init(&r.loop) : -ENOMEM;
    if (rc) {
        cJSON_Delete(r.rows);
        config_free(cfg);
        return ctl_fail("cannot start: %s", smsys_strerror(rc));
    }
    rc = pg_pool_new(&r.loop, cfg->postgres.conninfo, 1, &pool);
    if (rc == 0)
        rc = queue_new(&r.loop, pool, NULL, &q);
    if (rc == 0)
        rc = queue_stats(q, stats_cb, &r);
    if (rc == 0) {
        uv_timer_init(&r.loop, &r.deadline);
        uv_timer_start(&r.deadline, deadline_cb, QUEUE_STATS_DEADLINE_MS, 0);
        while (!r.done && uv_run(&r.loop, UV_RUN_ONCE))
            ;
        uv_close((uv_handle_t *)&r.deadline, NULL);
        rc = r.rc;
    } else {
        smsys_err_set(&r.err, rc, "%s", smsys_strerror(rc));
    }
    /* The queue may be freed only after the pool has fired every callback. */
    if (pool) {
        pg_pool_close(pool, pool_closed_cb, &r);
        while (!r.closed && uv_run(&r.loop, UV_RUN_ONCE))
            ;
    }
    queue_free(q);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    config_free(cfg);

    if (rc) {
        cJSON_Delete(r.rows);
        return ctl_fail("queue stats: %s%s", r.err.detail[0] ? r.err.detail : smsys_strerror(rc),
                        rc == SMSYS_EPG ? " (is the schema current? smsysctl doctor)" : "");
    }
    if (ctl->json) {
        char *s = cJSON_Print(r.rows);
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        print_text(r.rows);
    }
    cJSON_Delete(r.rows);
    return CTL_OK;
}
