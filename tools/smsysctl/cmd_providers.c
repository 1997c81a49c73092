/* cmd_providers.c - smsysctl providers list | balance | lines | default |
 * test: the provider accounts as smsysd sees them (smsys_account in
 * PostgreSQL, read with blocking libpq: a CLI has no loop to keep
 * responsive), live reads through the account's own connector on a
 * private loop and HTTP client, and the default switch written to
 * Dynamics (the accounts sync of smsysd then takes it). */
#include "ctl.h"

#include "smsys/connmgr.h"

#include "smsys/connector.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Longest a live read or a Dynamics write may take. */
#define PROV_DEADLINE_MS 20000

static const char *const acc_sql =
    "SELECT id::text, name, provider, enabled, is_default, "
    " coalesce(paused_until > now(), false), config::text,"
    " COALESCE(to_jsonb(a)->>'apikey', config->>'apikey', ''), coalesce(pause_reason, ''),"
    " failover_order, in_dynamics"
    " FROM smsys_account a WHERE ($1 = '' OR name = $1 OR id::text = $1)"
    " ORDER BY is_default DESC, name";

enum {
    C_ID,
    C_NAME,
    C_PROVIDER,
    C_ENABLED,
    C_DEFAULT,
    C_PAUSED,
    C_CONFIG,
    C_KEY,
    C_REASON,
    C_FO,
    C_INDV
};

/* Accounts matching match (name or id; "" = all). Returns the result or
 * NULL after printing why. Caller PQclear()s; *conn is closed here. */
static PGresult *load_accounts(const struct smsys_config *cfg, const char *match)
{
    PGconn *c = PQconnectdb(cfg->postgres.conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        ctl_fail("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    const char *p[1] = {match ? match : ""};
    PGresult *r = PQexecParams(c, acc_sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ctl_fail("cannot read accounts: %s", PQerrorMessage(c));
        PQclear(r);
        r = NULL;
    }
    PQfinish(c);
    return r;
}

static int is_true(PGresult *r, int i, int col)
{
    return PQgetvalue(r, i, col)[0] == 't';
}

/* --- list ----------------------------------------------------------------- */

int cmd_providers_list(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    PGresult *r = load_accounts(cfg, "");
    config_free(cfg);
    if (r == NULL)
        return CTL_FAIL;
    int n = PQntuples(r);
    if (ctl->json) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; a && i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(a, o);
            cJSON_AddStringToObject(o, "id", PQgetvalue(r, i, C_ID));
            cJSON_AddStringToObject(o, "name", PQgetvalue(r, i, C_NAME));
            cJSON_AddStringToObject(o, "provider", PQgetvalue(r, i, C_PROVIDER));
            cJSON_AddBoolToObject(o, "enabled", is_true(r, i, C_ENABLED));
            cJSON_AddBoolToObject(o, "default", is_true(r, i, C_DEFAULT));
            cJSON_AddBoolToObject(o, "paused", is_true(r, i, C_PAUSED));
            if (PQgetisnull(r, i, C_FO))
                cJSON_AddNullToObject(o, "failover_order");
            else
                cJSON_AddNumberToObject(o, "failover_order", atof(PQgetvalue(r, i, C_FO)));
        }
        char *s = a ? cJSON_PrintUnformatted(a) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(a);
    } else {
        printf("%-24s %-12s %-8s %-8s %-8s %s\n", "NAME", "PROVIDER", "ENABLED", "DEFAULT",
               "PAUSED", "FAILOVER");
        for (int i = 0; i < n; i++)
            printf("%-24s %-12s %-8s %-8s %-8s %s\n", PQgetvalue(r, i, C_NAME),
                   PQgetvalue(r, i, C_PROVIDER), is_true(r, i, C_ENABLED) ? "yes" : "no",
                   is_true(r, i, C_DEFAULT) ? "yes" : "no", is_true(r, i, C_PAUSED) ? "yes" : "no",
                   PQgetisnull(r, i, C_FO) ? "-" : PQgetvalue(r, i, C_FO));
    }
    PQclear(r);
    return CTL_OK;
}

/* --- live reads through the connector --------------------------------------- */

struct live {
    uv_loop_t loop;
    uv_timer_t deadline;
    struct http_client *http;
    struct conn *conn;
    const struct conn_ops *ops;
    int done, closed, rc;
    char err[600];
    cJSON *out; /* result object of one account */
};

static void live_event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    (void)ud;
    (void)ev;
    ack(token, SMSYS_ETEMP); /* the CLI stores nothing: the provider keeps it */
}

static void live_health_cb(void *ud, int rc, const char *detail)
{
    (void)ud;
    (void)rc;
    (void)detail;
}

static void live_balance_cb(void *ud, int rc, const struct conn_balance *b,
                            const struct smsys_err *err)
{
    struct live *l = ud;
    l->done = 1;
    l->rc = rc;
    if (rc < 0) {
        snprintf(l->err, sizeof l->err, "%s",
                 err && err->detail[0] ? err->detail : smsys_strerror(rc));
        return;
    }
    cJSON_AddNumberToObject(l->out, "balance", b->amount);
    cJSON_AddStringToObject(l->out, "unit", b->unit ? b->unit : "");
}

static void live_lines_cb(void *ud, int rc, const struct conn_line *ln, size_t n,
                          const struct smsys_err *err)
{
    struct live *l = ud;
    l->done = 1;
    l->rc = rc;
    if (rc < 0) {
        snprintf(l->err, sizeof l->err, "%s",
                 err && err->detail[0] ? err->detail : smsys_strerror(rc));
        return;
    }
    cJSON *a = cJSON_AddArrayToObject(l->out, "lines");
    for (size_t i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddStringToObject(o, "number", ln[i].number ? ln[i].number : "");
        if (ln[i].label)
            cJSON_AddStringToObject(o, "label", ln[i].label);
    }
}

static void live_deadline_cb(uv_timer_t *t)
{
    struct live *l = container_of(t, struct live, deadline);
    if (!l->done) {
        l->done = 1;
        l->rc = -ETIMEDOUT;
        snprintf(l->err, sizeof l->err, "no answer within %d s", PROV_DEADLINE_MS / 1000);
    }
}

static void live_closed_cb(void *ud)
{
    ((struct live *)ud)->closed = 1;
}

enum live_op { LIVE_BALANCE, LIVE_LINES };

/* Opens row i's connector, runs op, closes. Fills out with the result or
 * "error". Returns 0, -ENOTSUP (the API cannot) or another error. */
static int live_run(PGresult *r, int i, enum live_op op, cJSON *out)
{
    struct live l = {.out = out};
    const char *name = PQgetvalue(r, i, C_NAME);
    l.ops = connector_find(PQgetvalue(r, i, C_PROVIDER));
    if (l.ops == NULL) {
        snprintf(l.err, sizeof l.err, "no connector for provider \"%s\"",
                 PQgetvalue(r, i, C_PROVIDER));
        cJSON_AddStringToObject(out, "error", l.err);
        return -EINVAL;
    }
    if ((op == LIVE_BALANCE && !l.ops->balance) || (op == LIVE_LINES && !l.ops->lines)) {
        cJSON_AddStringToObject(out, "error", "the provider's API cannot tell");
        return -ENOTSUP;
    }
    char *key = connmgr_resolve_key(PQgetvalue(r, i, C_KEY), l.err, sizeof l.err);
    cJSON *settings = cJSON_Parse(PQgetvalue(r, i, C_CONFIG));
    int rc = key && settings ? 0 : -EINVAL;
    if (settings) {
        cJSON_DeleteItemFromObjectCaseSensitive(settings, "apikey");
        cJSON_DeleteItemFromObjectCaseSensitive(settings, "low_balance");
        cJSON_DeleteItemFromObjectCaseSensitive(settings, "failover_order");
    } else if (key) {
        snprintf(l.err, sizeof l.err, "config is not valid JSON");
    }
    if (!rc)
        rc = uv_loop_init(&l.loop);
    if (rc) {
        cJSON_Delete(settings);
        free(key);
        cJSON_AddStringToObject(out, "error", l.err[0] ? l.err : smsys_strerror(rc));
        return rc;
    }
    struct conn_env env = {
        .loop = &l.loop,
        .account_id = PQgetvalue(r, i, C_ID),
        .account_name = name,
        .apikey = key,
        .event = live_event_cb,
        .health = live_health_cb,
        .ud = &l,
    };
    struct smsys_err err = {0};
    rc = http_client_new(&l.loop, NULL, &l.http);
    env.http = l.http;
    if (!rc) {
        rc = l.ops->open(&env, settings, &l.conn, &err);
        if (rc)
            snprintf(l.err, sizeof l.err, "%s", err.detail[0] ? err.detail : smsys_strerror(rc));
    }
    if (!rc)
        rc = op == LIVE_BALANCE ? l.ops->balance(l.conn, live_balance_cb, &l)
                                : l.ops->lines(l.conn, live_lines_cb, &l);
    if (!rc) {
        uv_timer_init(&l.loop, &l.deadline);
        uv_timer_start(&l.deadline, live_deadline_cb, PROV_DEADLINE_MS, 0);
        while (!l.done && uv_run(&l.loop, UV_RUN_ONCE))
            ;
        uv_close((uv_handle_t *)&l.deadline, NULL);
        rc = l.rc;
    } else if (!l.err[0]) {
        snprintf(l.err, sizeof l.err, "%s", smsys_strerror(rc));
    }
    if (l.conn) {
        l.ops->close(l.conn, live_closed_cb, &l);
        while (!l.closed && uv_run(&l.loop, UV_RUN_ONCE))
            ;
    }
    if (l.http)
        http_client_close(l.http, NULL, NULL);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    uv_loop_close(&l.loop);
    cJSON_Delete(settings);
    if (key) {
        volatile char *k = key;
        for (size_t j = 0; k[j]; j++)
            k[j] = 0;
    }
    free(key);
    if (rc)
        cJSON_AddStringToObject(out, "error", l.err);
    return rc;
}

static int live_cmd(struct ctl *ctl, int argc, char **argv, enum live_op op)
{
    const char *match = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' || match)
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        match = argv[i];
    }
    if (op == LIVE_LINES && match == NULL)
        return ctl_usage_error(ctl, "ACCOUNT is required");
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    if (!log_enabled(LOG_DEBUG))
        log_setup(LOG_WARN, LOG_TEXT, stderr);
    PGresult *r = load_accounts(cfg, match);
    config_free(cfg);
    if (r == NULL)
        return CTL_FAIL;
    if (match && PQntuples(r) == 0) {
        PQclear(r);
        return ctl_fail("no account named '%s'", match);
    }
    int failed = 0, n = PQntuples(r);
    cJSON *all = cJSON_CreateArray();
    for (int i = 0; all && i < n; i++) {
        if (!match && !is_true(r, i, C_ENABLED))
            continue; /* all accounts: the enabled ones */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(all, o);
        cJSON_AddStringToObject(o, "name", PQgetvalue(r, i, C_NAME));
        cJSON_AddStringToObject(o, "provider", PQgetvalue(r, i, C_PROVIDER));
        int rc = live_run(r, i, op, o);
        /* "cannot tell" is an answer for the list, a failure when asked */
        if (rc && (rc != -ENOTSUP || match))
            failed++;
        if (ctl->json)
            continue;
        const cJSON *e = cJSON_GetObjectItem(o, "error");
        if (e) {
            printf("%-24s %s\n", PQgetvalue(r, i, C_NAME), e->valuestring);
        } else if (op == LIVE_BALANCE) {
            printf("%-24s %.2f %s\n", PQgetvalue(r, i, C_NAME),
                   cJSON_GetObjectItem(o, "balance")->valuedouble,
                   cJSON_GetObjectItem(o, "unit")->valuestring);
        } else {
            const cJSON *ln;
            cJSON_ArrayForEach(ln, cJSON_GetObjectItem(o, "lines"))
            {
                const cJSON *lb = cJSON_GetObjectItem(ln, "label");
                printf("%s%s%s\n", cJSON_GetObjectItem(ln, "number")->valuestring, lb ? "  " : "",
                       lb ? lb->valuestring : "");
            }
        }
    }
    if (ctl->json) {
        char *s = all ? cJSON_PrintUnformatted(all) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(all);
    PQclear(r);
    return failed ? CTL_FAIL : CTL_OK;
}

int cmd_providers_balance(struct ctl *ctl, int argc, char **argv)
{
    return live_cmd(ctl, argc, argv, LIVE_BALANCE);
}

int cmd_providers_lines(struct ctl *ctl, int argc, char **argv)
{
    return live_cmd(ctl, argc, argv, LIVE_LINES);
}

/* --- default -------------------------------------------------------------- */

struct dvrun {
    uv_loop_t loop;
    uv_timer_t deadline;
    int pending, failed;
    char err[600];
};

static void patched_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct dvrun *d = ud;
    d->pending--;
    if (rc < 0) {
        d->failed++;
        snprintf(d->err, sizeof d->err, "%s",
                 err && err->detail[0] ? err->detail : smsys_strerror(rc));
    }
}

static void dv_deadline_cb(uv_timer_t *t)
{
    struct dvrun *d = container_of(t, struct dvrun, deadline);
    if (d->pending > 0) {
        d->failed++;
        snprintf(d->err, sizeof d->err, "no answer from Dynamics within %d s",
                 PROV_DEADLINE_MS / 1000);
        d->pending = 0;
    }
}

int cmd_providers_default(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-')
        return ctl_usage_error(ctl, argc ? "unexpected argument '%s'" : "ACCOUNT is required%s",
                               argc ? argv[argc > 1 ? 1 : 0] : "");
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    if (!log_enabled(LOG_DEBUG))
        log_setup(LOG_WARN, LOG_TEXT, stderr);
    PGresult *r = load_accounts(cfg, "");
    if (r == NULL) {
        config_free(cfg);
        return CTL_FAIL;
    }
    int target = -1, n = PQntuples(r);
    for (int i = 0; i < n; i++)
        if (strcmp(PQgetvalue(r, i, C_NAME), argv[0]) == 0 ||
            strcmp(PQgetvalue(r, i, C_ID), argv[0]) == 0)
            target = i;
    if (target < 0 || !is_true(r, target, C_ENABLED)) {
        PQclear(r);
        config_free(cfg);
        return ctl_fail(target < 0 ? "no account named '%s'" : "account '%s' is disabled", argv[0]);
    }
    struct dvrun d = {0};
    struct http_client *http = NULL;
    struct dv_client *dv = NULL;
    static const enum dv_auth auths[] = {DV_AUTH_CLIENT_CREDENTIALS, DV_AUTH_NTLM,
                                         DV_AUTH_NEGOTIATE};
    struct http_client_opts ho = {
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .proxy = cfg->dataverse.proxy,
        .ca_file = cfg->dataverse.ca_file,
        .user_agent = "smsysctl",
    };
    struct dv_opts o = {
        .url = cfg->dataverse.url,
        .api_version = cfg->dataverse.api_version,
        .auth = auths[cfg->dataverse.auth],
        .token_url = cfg->dataverse.token_url,
        .client_id = cfg->dataverse.client_id,
        .client_secret = cfg->dataverse.client_secret,
        .scope = cfg->dataverse.scope,
        .resource = cfg->dataverse.resource,
        .username = cfg->dataverse.username,
        .password = cfg->dataverse.password,
        .max_concurrency = 2,
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    int rc = uv_loop_init(&d.loop);
    if (!rc)
        rc = http_client_new(&d.loop, &ho, &http);
    if (!rc)
        rc = dv_new(&d.loop, http, &o, &dv);
    /* Set the new one first: if clearing the others then fails, Dynamics
     * marks two and the sync's rule (the oldest marked) still picks one;
     * the command reports the failure. */
    for (int pass = 0; !rc && pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            /* pass 0 sets the new default, pass 1 clears every other
             * account Dynamics has (whatever the last sync saw). */
            if (pass == 0 ? i != target : i == target || !is_true(r, i, C_INDV))
                continue;
            int prc =
                dv_patch(dv, "smsys_smssettings", PQgetvalue(r, i, C_ID),
                         pass == 0 ? "{\"smsys_isdefault\":true}" : "{\"smsys_isdefault\":false}",
                         "*", patched_cb, &d);
            if (prc == 0) {
                d.pending++;
            } else {
                d.failed++;
                snprintf(d.err, sizeof d.err, "%s", smsys_strerror(prc));
            }
        }
        uv_timer_init(&d.loop, &d.deadline);
        uv_timer_start(&d.deadline, dv_deadline_cb, PROV_DEADLINE_MS, 0);
        while (d.pending > 0 && uv_run(&d.loop, UV_RUN_ONCE))
            ;
        uv_close((uv_handle_t *)&d.deadline, NULL);
        uv_run(&d.loop, UV_RUN_NOWAIT);
        if (d.failed)
            break;
    }
    if (dv)
        dv_close(dv, NULL, NULL);
    if (http)
        http_client_close(http, NULL, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    int code = CTL_OK;
    if (rc || d.failed)
        code = ctl_fail("cannot set the default in Dynamics: %s", rc ? smsys_strerror(rc) : d.err);
    else if (ctl->json)
        printf("{\"default\":\"%s\",\"id\":\"%s\"}\n", PQgetvalue(r, target, C_NAME),
               PQgetvalue(r, target, C_ID));
    else
        printf("default account in Dynamics: %s (smsysd takes it at its next accounts sync)\n",
               PQgetvalue(r, target, C_NAME));
    PQclear(r);
    config_free(cfg);
    return code;
}

/* --- test ----------------------------------------------------------------- */

int cmd_providers_test(struct ctl *ctl, int argc, char **argv)
{
    const char *account = NULL, *to = NULL, *text = "smsys test message";
    int wait = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc)
            text = argv[++i];
        else if (strcmp(argv[i], "--wait") == 0)
            wait = 1;
        else if (argv[i][0] != '-' && account == NULL)
            account = argv[i];
        else
            return ctl_usage_error(ctl, "unexpected or incomplete argument '%s'", argv[i]);
    }
    if (account == NULL || to == NULL)
        return ctl_usage_error(ctl, "ACCOUNT and --to NUMBER are required");
    char *args[] = {"--to",      (char *)to,      "--text", (char *)text,
                    "--account", (char *)account, "--wait", NULL};
    /* The send machinery itself: validation, account lookup, queueing and
     * (with --wait) the final state, exit codes included. */
    return cmd_send(ctl, wait ? 7 : 6, args);
}
