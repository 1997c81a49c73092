/* connmgr_accounts.c - the enabled smsys_account rows, each with its
 * connector and sender: read at start, on NOTIFY, on a timer and on SIGHUP;
 * opened, reopened when the row changed, closed when it went away. */
#include "connmgr_int.h"

#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const load_sql =
    "SELECT id::text, name, provider, config::text,"
    " COALESCE(to_jsonb(a)->>'apikey', config->>'apikey', ''), inbound_interval_s"
    " FROM smsys_account a WHERE enabled ORDER BY id";

/* --- API keys ----------------------------------------------------------- */

char *connmgr_resolve_key(const char *src, char *why, size_t why_len)
{
    char *key = NULL;
    if (strncmp(src, "env:", 4) == 0) {
        const char *v = getenv(src + 4);
        if (v == NULL) {
            snprintf(why, why_len, "apikey: environment variable %s is not set", src + 4);
            return NULL;
        }
        key = strdup(v);
    } else if (strncmp(src, "file:", 5) == 0) {
        /* A small read, once per connector (re)open, not per message. */
        FILE *f = fopen(src + 5, "r");
        if (f == NULL) {
            snprintf(why, why_len, "apikey: cannot read %s: %s", src + 5, strerror(errno));
            return NULL;
        }
        char line[4096];
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        key = strdup(line);
        memset(line, 0, sizeof(line));
    } else {
        key = strdup(src);
    }
    if (key == NULL)
        snprintf(why, why_len, "apikey: out of memory");
    return key;
}

static void health_cb(void *ud, int rc, const char *detail)
{
    struct acct *a = ud;
    a->health_rc = rc;
    if (rc == 0)
        log_info("connector up", "account=%s detail=\"%s\"", a->name, log_q(detail ? detail : ""));
    else if (rc == SMSYS_EACCOUNT || rc == SMSYS_EAUTH)
        log_error("account-wide connector error", "account=%s error=\"%s\"", a->name,
                  log_q(detail ? detail : smsys_strerror(rc)));
    else
        log_warn("connector degraded", "account=%s error=\"%s\"", a->name,
                 log_q(detail ? detail : smsys_strerror(rc)));
}

/* --- accounts ------------------------------------------------------------ */

static void acct_free_cb(uv_handle_t *h)
{
    struct acct *a = container_of((uv_timer_t *)h, struct acct, evtimer);
    struct connmgr *m = a->m;
    for (struct acct **pp = &m->accts; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    free(a->id);
    free(a->name);
    free(a->provider);
    free(a->config);
    free(a->keysrc);
    if (a->apikey) {
        /* Best effort: do not leave the key in freed memory. */
        volatile char *k = a->apikey;
        for (size_t i = 0; k[i]; i++)
            k[i] = 0;
        free(a->apikey);
    }
    free(a);
    cm_maybe_finish(m);
}

static void sender_closed_cb(void *ud)
{
    struct acct *a = ud;
    a->sender = NULL;
    uv_close((uv_handle_t *)&a->evtimer, acct_free_cb);
}

static void acct_conn_closed_cb(void *ud)
{
    struct acct *a = ud;
    a->conn = NULL;
    if (a->sender)
        sender_close(a->sender, sender_closed_cb, a);
    else
        sender_closed_cb(a);
}

void cm_acct_continue_close(struct acct *a)
{
    if (a->applying_busy || a->mo_busy || a->conn_closing)
        return;
    a->conn_closing = 1;
    if (a->conn)
        a->ops->close(a->conn, acct_conn_closed_cb, a);
    else
        acct_conn_closed_cb(a);
}

void cm_acct_close(struct acct *a)
{
    if (a->closing)
        return;
    a->closing = 1;
    log_info("closing account connector", "account=%s", a->name);
    uv_timer_stop(&a->evtimer);
    cm_flush_events(a);
    cm_acct_continue_close(a);
}

static void idem_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    (void)res;
    m->busy--;
    if (rc < 0)
        log_warn("cannot store the account's idempotency flag or failover order", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    cm_maybe_finish(m);
}

static void acct_open(struct acct *a)
{
    struct connmgr *m = a->m;
    a->ops = m->o.find ? m->o.find(a->provider) : connector_find(a->provider);
    if (a->ops == NULL) {
        snprintf(a->error, sizeof(a->error), "no connector for provider \"%s\"", a->provider);
        goto fail;
    }
    a->apikey = connmgr_resolve_key(a->keysrc, a->error, sizeof(a->error));
    if (a->apikey == NULL)
        goto fail;
    cJSON *settings = cJSON_Parse(a->config);
    if (settings == NULL) {
        snprintf(a->error, sizeof(a->error), "config is not valid JSON");
        goto fail;
    }
    /* The key travels in env->apikey, never as a connector setting. */
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "apikey");
    /* Service-level keys: ours, not the connector's (it rejects unknown
     * keys). */
    const cJSON *low = cJSON_GetObjectItemCaseSensitive(settings, "low_balance");
    a->low_balance = -1;
    if (cJSON_IsNumber(low) && low->valuedouble >= 0)
        a->low_balance = low->valuedouble;
    else if (low)
        log_warn("account setting low_balance ignored: not a number >= 0", "account=%s", a->name);
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "low_balance");
    /* failover_order (docs/queue.md "Pause and failover") can be set in
     * Dynamics this way; absent, the column is left as it is. */
    const cJSON *fo = cJSON_GetObjectItemCaseSensitive(settings, "failover_order");
    char fobuf[24] = "";
    int fo_null = cJSON_IsNull(fo);
    if (cJSON_IsNumber(fo) && fo->valuedouble >= 0 && fo->valuedouble <= 1000000)
        snprintf(fobuf, sizeof fobuf, "%d", fo->valueint);
    else if (fo && !fo_null)
        log_warn("account setting failover_order ignored: not an integer 0..1000000", "account=%s",
                 a->name);
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "failover_order");
    /* price_per_segment: the bulk preflight's cost estimate (docs/bulk.md) */
    cJSON_DeleteItemFromObjectCaseSensitive(settings, "price_per_segment");
    a->env = (struct conn_env){
        .loop = m->loop,
        .http = m->http,
        .account_id = a->id,
        .account_name = a->name,
        .apikey = a->apikey,
        .event = cm_event_cb,
        .health = health_cb,
        .ud = a,
    };
    struct smsys_err err = {0};
    int rc = a->ops->open(&a->env, settings, &a->conn, &err);
    cJSON_Delete(settings);
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "%s", err.detail[0] ? err.detail : smsys_strerror(rc));
        a->conn = NULL;
        goto fail;
    }
    struct sender_opts so = {
        .account_id = a->id,
        .account_name = a->name,
        .owner = m->owner,
        .batch = m->o.batch,
        .pipeline = m->o.pipeline,
        .lease_ms = m->o.lease_ms,
        .idle_ms = m->o.idle_ms,
        .metrics = m->o.metrics,
    };
    rc = sender_new(m->loop, m->q, a->ops, a->conn, &so, &a->sender);
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "cannot start the sender: %s", smsys_strerror(rc));
        goto fail;
    }
    const char *params[2] = {a->id, a->ops->supports_idempotency ? "true" : "false"};
    if (pg_query(m->pg,
                 "UPDATE smsys_account SET idempotent = $2::boolean WHERE id = $1::uuid"
                 " AND idempotent IS DISTINCT FROM $2::boolean",
                 2, params, idem_cb, m) == 0)
        m->busy++;
    if (fobuf[0] || fo_null) {
        const char *fp[2] = {a->id, fobuf[0] ? fobuf : NULL};
        if (pg_query(m->pg,
                     "UPDATE smsys_account SET failover_order = $2::integer WHERE id = $1::uuid"
                     " AND failover_order IS DISTINCT FROM $2::integer",
                     2, fp, idem_cb, m) == 0)
            m->busy++;
    }
    log_info("account connector open", "account=%s provider=%s", a->name, a->provider);
    return;
fail:
    /* Kept (without a connector) so health shows it and the next poll
     * does not retry until the row changes. */
    log_error("account connector not opened", "account=%s provider=%s error=\"%s\"", a->name,
              a->provider, log_q(a->error));
}

static struct acct *acct_new(struct connmgr *m, PGresult *res, int row)
{
    struct acct *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->m = m;
    a->id = strdup(PQgetvalue(res, row, 0));
    a->name = strdup(PQgetvalue(res, row, 1));
    a->provider = strdup(PQgetvalue(res, row, 2));
    a->config = strdup(PQgetvalue(res, row, 3));
    a->keysrc = strdup(PQgetvalue(res, row, 4));
    long long v = 0;
    a->inbound_s = util_parse_int(PQgetvalue(res, row, 5), 1, 86400, &v) == 0 ? (unsigned)v : 60;
    if (!a->id || !a->name || !a->provider || !a->config || !a->keysrc) {
        free(a->id);
        free(a->name);
        free(a->provider);
        free(a->config);
        free(a->keysrc);
        free(a);
        return NULL;
    }
    if (a->name[0] == '\0') {
        free(a->name);
        a->name = strdup(a->id);
    }
    uv_timer_init(m->loop, &a->evtimer);
    a->next = m->accts;
    m->accts = a;
    acct_open(a);
    return a;
}

static void load_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    m->busy--;
    m->loading = 0;
    if (rc < 0 || m->closing || m->draining) {
        if (rc < 0)
            log_warn("cannot read accounts", "error=\"%s\"",
                     log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        cm_maybe_finish(m);
        return;
    }
    for (struct acct *a = m->accts; a; a = a->next)
        a->seen = 0;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, i, 0);
        struct acct *found = NULL;
        for (struct acct *a = m->accts; a; a = a->next)
            if (!a->closing && strcmp(a->id, id) == 0) {
                found = a;
                break;
            }
        if (found && strcmp(found->provider, PQgetvalue(res, i, 2)) == 0 &&
            strcmp(found->config, PQgetvalue(res, i, 3)) == 0 &&
            strcmp(found->keysrc, PQgetvalue(res, i, 4)) == 0) {
            found->seen = 1;
            long long v = 0;
            if (util_parse_int(PQgetvalue(res, i, 5), 1, 86400, &v) == 0)
                found->inbound_s = (unsigned)v;
            continue;
        }
        if (found) {
            log_info("account settings changed: reopening", "account=%s", found->name);
            cm_acct_close(found);
        }
        struct acct *a = acct_new(m, res, i);
        if (a)
            a->seen = 1;
    }
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->seen && !a->closing)
            cm_acct_close(a);
    if (m->reload_wanted) {
        m->reload_wanted = 0;
        connmgr_refresh(m);
    }
}

void connmgr_refresh(struct connmgr *m)
{
    if (m->closing || m->draining)
        return;
    if (m->loading) {
        m->reload_wanted = 1;
        return;
    }
    if (pg_query(m->pg, load_sql, 0, NULL, load_cb, m) == 0) {
        m->loading = 1;
        m->busy++;
    }
}
