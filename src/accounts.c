/* accounts.c - mirrors smsys_smssettings / smsys_smsnumbers into
 * PostgreSQL and writes balances back (accounts.h). */
#include "smsys/accounts.h"

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/pg.h"
#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int int_of(const char *s)
{
    long long v = 0;
    return util_parse_int(s, -2147483647LL, 2147483647LL, &v) == 0 ? (int)v : 0;
}

#define SETTINGS_PATH                                                                              \
    "smsys_smssettings?$select=smsys_smssettingid,smsys_name,smsys_provider,smsys_isdefault,"      \
    "smsys_enabled,smsys_config,smsys_apikey,smsys_inboundinterval,smsys_maxretries,"              \
    "smsys_separators,createdon"
#define NUMBERS_PATH                                                                               \
    "smsys_smsnumbers?$select=smsys_smsnumberid,smsys_number,_smsys_settingid_value,"              \
    "_smsys_userid_value,_smsys_queueid_value,smsys_isdefault&$filter=statecode%20eq%200"

/* The NOTIFY rides in the sync's own transaction: it is delivered only
 * once the new rows are visible to whoever reloads on it. */
static const char SQL_SYNC[] =
    "SELECT default_id::text, marked, changed, "
    "CASE WHEN changed > 0 THEN pg_notify('" ACCOUNTS_CHANNEL "', '')::text END "
    "FROM smsys_accounts_sync($1::jsonb, $2::jsonb)";

struct accounts {
    uv_loop_t *loop;
    struct pg_pool *pool;
    struct dv_client *dv;
    int busy;
    accounts_sync_cb cb;
    void *ud;
    cJSON *accts; /* snapshot being built */
    cJSON *lines;
    struct accounts_result res;
    /* last warning state, so a lasting problem is logged once per change */
    int warned_marked;
};

int accounts_new(uv_loop_t *loop, struct pg_pool *pool, struct dv_client *dv, struct accounts **out)
{
    if (loop == NULL || pool == NULL || dv == NULL || out == NULL)
        return -EINVAL;
    struct accounts *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->loop = loop;
    a->pool = pool;
    a->dv = dv;
    a->warned_marked = 1;
    *out = a;
    return 0;
}

void accounts_free(struct accounts *a)
{
    if (a == NULL)
        return;
    cJSON_Delete(a->accts);
    cJSON_Delete(a->lines);
    free(a);
}

int accounts_busy(const struct accounts *a)
{
    return a->busy;
}

static void sync_end(struct accounts *a, int rc, const struct smsys_err *err)
{
    cJSON_Delete(a->accts);
    cJSON_Delete(a->lines);
    a->accts = a->lines = NULL;
    a->busy = 0;
    a->cb(rc, rc == 0 ? &a->res : NULL, err, a->ud);
}

static const char *str_of(const cJSON *row, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void copy_str(cJSON *dst, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(dst, k, v);
    else
        cJSON_AddNullToObject(dst, k);
}

static void copy_num(cJSON *dst, const char *k, const cJSON *v)
{
    if (cJSON_IsNumber(v))
        cJSON_AddNumberToObject(dst, k, v->valuedouble);
    else
        cJSON_AddNullToObject(dst, k);
}

static int settings_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct accounts *a = ud;
    (void)page;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const char *id = str_of(r, "smsys_smssettingid");
        if (id == NULL)
            continue;
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            return -ENOMEM;
        cJSON_AddStringToObject(o, "id", id);
        copy_str(o, "name", str_of(r, "smsys_name"));
        copy_str(o, "provider", str_of(r, "smsys_provider"));
        cJSON_AddBoolToObject(o, "enabled",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "smsys_enabled")));
        cJSON_AddBoolToObject(o, "dv_isdefault",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "smsys_isdefault")));
        const char *conf = str_of(r, "smsys_config");
        cJSON *cj = conf && *conf ? cJSON_Parse(conf) : NULL;
        if (conf && *conf && !cJSON_IsObject(cj)) {
            /* The account stays usable with defaults; the connector
             * manager reports what it misses. */
            log_warn("account_config_invalid",
                     "account=%s name=%s error=\"smsys_config is not a "
                     "JSON object\"",
                     id, log_q(str_of(r, "smsys_name")));
            cJSON_Delete(cj);
            cj = NULL;
        }
        cJSON_AddItemToObject(o, "config", cj ? cj : cJSON_CreateObject());
        copy_num(o, "max_retries", cJSON_GetObjectItemCaseSensitive(r, "smsys_maxretries"));
        copy_num(o, "inbound_interval_s",
                 cJSON_GetObjectItemCaseSensitive(r, "smsys_inboundinterval"));
        copy_str(o, "apikey", str_of(r, "smsys_apikey"));
        copy_str(o, "separators", str_of(r, "smsys_separators"));
        copy_str(o, "createdon", str_of(r, "createdon"));
        cJSON_AddItemToArray(a->accts, o);
        a->res.accounts++;
    }
    return DV_PAGE_CONTINUE;
}

static int numbers_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct accounts *a = ud;
    (void)page;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const char *id = str_of(r, "smsys_smsnumberid");
        const char *acc = str_of(r, "_smsys_settingid_value");
        if (id == NULL || acc == NULL)
            continue; /* a line without an account cannot send */
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            return -ENOMEM;
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "account_id", acc);
        copy_str(o, "number", str_of(r, "smsys_number"));
        copy_str(o, "user_id", str_of(r, "_smsys_userid_value"));
        copy_str(o, "queue_id", str_of(r, "_smsys_queueid_value"));
        cJSON_AddBoolToObject(o, "is_default",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "smsys_isdefault")));
        cJSON_AddItemToArray(a->lines, o);
        a->res.lines++;
    }
    return DV_PAGE_CONTINUE;
}

static void pg_sync_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct accounts *a = ud;
    if (rc != 0) {
        sync_end(a, rc, err);
        return;
    }
    if (PQntuples(res) == 1) {
        snprintf(a->res.default_id, sizeof(a->res.default_id), "%s",
                 PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
        a->res.marked_default = int_of(PQgetvalue(res, 0, 1));
        a->res.changed = int_of(PQgetvalue(res, 0, 2));
    }
    int marked = a->res.marked_default;
    if (marked != 1 && a->res.default_id[0] && marked != a->warned_marked)
        log_warn("default_account_ambiguous", "marked=%d chosen=%s rule=\"%s\"", marked,
                 a->res.default_id,
                 marked == 0 ? "no enabled account is marked default: the oldest enabled one"
                             : "several enabled accounts are marked default: the oldest of them");
    a->warned_marked = marked;
    if (a->res.changed)
        log_info("accounts_synced", "accounts=%d lines=%d changed=%d default=%s", a->res.accounts,
                 a->res.lines, a->res.changed, a->res.default_id[0] ? a->res.default_id : "none");
    sync_end(a, 0, NULL);
}

static void numbers_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                            void *ud)
{
    struct accounts *a = ud;
    (void)delta;
    (void)pages;
    if (rc != 0) {
        sync_end(a, rc, err);
        return;
    }
    char *j1 = cJSON_PrintUnformatted(a->accts);
    char *j2 = cJSON_PrintUnformatted(a->lines);
    const char *p[2] = {j1, j2};
    rc = (j1 && j2) ? pg_query(a->pool, SQL_SYNC, 2, p, pg_sync_cb, a) : -ENOMEM;
    free(j1);
    free(j2);
    if (rc != 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "cannot store the accounts: %s", smsys_strerror(rc));
        sync_end(a, rc, &e);
    }
}

static void settings_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                             void *ud)
{
    struct accounts *a = ud;
    (void)delta;
    (void)pages;
    if (rc != 0) {
        sync_end(a, rc, err);
        return;
    }
    rc = dv_get_all(a->dv, NUMBERS_PATH, NULL, 5000, numbers_page_cb, numbers_done_cb, a);
    if (rc != 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "cannot read smsys_smsnumbers: %s", smsys_strerror(rc));
        sync_end(a, rc, &e);
    }
}

int accounts_sync(struct accounts *a, accounts_sync_cb cb, void *ud)
{
    if (a == NULL || cb == NULL)
        return -EINVAL;
    if (a->busy)
        return -EBUSY;
    a->accts = cJSON_CreateArray();
    a->lines = cJSON_CreateArray();
    if (a->accts == NULL || a->lines == NULL) {
        cJSON_Delete(a->accts);
        cJSON_Delete(a->lines);
        a->accts = a->lines = NULL;
        return -ENOMEM;
    }
    memset(&a->res, 0, sizeof(a->res));
    a->cb = cb;
    a->ud = ud;
    int rc = dv_get_all(a->dv, SETTINGS_PATH "&$filter=statecode%20eq%200", NULL, 5000,
                        settings_page_cb, settings_done_cb, a);
    if (rc != 0) {
        cJSON_Delete(a->accts);
        cJSON_Delete(a->lines);
        a->accts = a->lines = NULL;
        return rc;
    }
    a->busy = 1;
    return 0;
}

/* ---- balance ---------------------------------------------------------- */

struct bal_ctx {
    accounts_status_cb cb;
    void *ud;
};

static void balance_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct bal_ctx *c = ud;
    c->cb(rc, err, c->ud);
    free(c);
}

int accounts_write_balance(struct dv_client *dv, const char *account_id, double balance,
                           const char *unit, int64_t updated_unix_s, accounts_status_cb cb,
                           void *ud)
{
    if (dv == NULL || account_id == NULL || cb == NULL)
        return -EINVAL;
    struct buf when = BUF_INIT, body = BUF_INIT;
    if (updated_unix_s <= 0)
        updated_unix_s = (int64_t)time(NULL);
    int rc = odata_lit_datetime(&when, updated_unix_s);
    if (rc == 0)
        rc = buf_printf(&body, "{\"smsys_balance\":%.4f,\"smsys_balanceunit\":", balance);
    if (rc == 0)
        rc = unit ? buf_printf(&body, "\"%s", "") : buf_puts(&body, "null");
    if (rc == 0 && unit && (rc = buf_put_jsonstr(&body, unit)) == 0)
        rc = buf_putc(&body, '"');
    if (rc == 0)
        rc = buf_printf(&body, ",\"smsys_balanceupdatedon\":\"%s\"}", when.data);
    struct bal_ctx *c = rc == 0 ? malloc(sizeof(*c)) : NULL;
    if (rc == 0 && c == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        c->cb = cb;
        c->ud = ud;
        rc = dv_patch(dv, "smsys_smssettings", account_id, body.data, "*", balance_cb, c);
        if (rc != 0)
            free(c);
    }
    buf_free(&when);
    buf_free(&body);
    return rc;
}
