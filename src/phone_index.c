/* phone_index.c - the E.164 phone index in PostgreSQL, loaded from
 * Dynamics and kept current with change tracking (phone_index.h). */
#include "smsys/phone_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/phone.h"

static const struct phone_index_table defaults[] = {
    {"contact", "contacts", "contactid", "mobilephone,telephone1,telephone2", 1},
    {"lead", "leads", "leadid", "mobilephone,telephone1", 1},
    {"account", "accounts", "accountid", "telephone1,telephone2,mobilephone", 1},
};

const struct phone_index_table *phone_index_defaults(size_t *n)
{
    *n = sizeof(defaults) / sizeof(defaults[0]);
    return defaults;
}

struct pi_table {
    char *table, *set, *key, *columns;
    int has_donotsms;
};

struct phone_index {
    struct pg_pool *pool;
    struct dv_client *dv;
    struct pi_table *t;
    size_t nt;
    char country[8];

    /* the refresh in progress */
    int busy;
    int stopping;     /* phone_index_rebind: finish after the current table */
    size_t cur;       /* table being refreshed */
    int full;         /* this pass is a full read */
    int retried_full; /* an expired delta already fell back once */
    unsigned pending; /* page applies in flight */
    int dv_done;      /* dv_get_all finished */
    int rc;           /* first error of this table */
    struct smsys_err err;
    char *delta_link;
    unsigned long rows;
    phone_index_done_cb cb;
    void *ud;
};

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int phone_index_new(struct pg_pool *pool, struct dv_client *dv,
                    const struct phone_index_table *tables, size_t ntables,
                    const char *default_country, struct phone_index **out)
{
    if (tables == NULL)
        tables = phone_index_defaults(&ntables);
    if (ntables == 0)
        return -EINVAL;
    struct phone_index *pi = calloc(1, sizeof(*pi));
    if (pi == NULL)
        return -ENOMEM;
    pi->pool = pool;
    pi->dv = dv;
    snprintf(pi->country, sizeof(pi->country), "%s",
             default_country && *default_country ? default_country : "IR");
    pi->t = calloc(ntables, sizeof(*pi->t));
    if (pi->t == NULL) {
        free(pi);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ntables; i++) {
        struct pi_table *t = &pi->t[pi->nt++];
        if (!tables[i].table || !tables[i].set || !tables[i].key || !tables[i].columns) {
            phone_index_free(pi);
            return -EINVAL;
        }
        t->table = xstrdup(tables[i].table);
        t->set = xstrdup(tables[i].set);
        t->key = xstrdup(tables[i].key);
        t->columns = xstrdup(tables[i].columns);
        t->has_donotsms = tables[i].has_donotsms;
        if (!t->table || !t->set || !t->key || !t->columns) {
            phone_index_free(pi);
            return -ENOMEM;
        }
    }
    *out = pi;
    return 0;
}

void phone_index_free(struct phone_index *pi)
{
    if (pi == NULL)
        return;
    for (size_t i = 0; i < pi->nt; i++) {
        free(pi->t[i].table);
        free(pi->t[i].set);
        free(pi->t[i].key);
        free(pi->t[i].columns);
    }
    free(pi->t);
    free(pi->delta_link);
    free(pi);
}

const char *phone_index_set_of(const struct phone_index *pi, const char *table)
{
    for (size_t i = 0; pi && table && i < pi->nt; i++)
        if (strcmp(pi->t[i].table, table) == 0)
            return pi->t[i].set;
    return NULL;
}

static void table_start(struct phone_index *pi);
static void table_finish(struct phone_index *pi);

static void finish(struct phone_index *pi, int rc, const struct smsys_err *err)
{
    pi->busy = 0;
    phone_index_done_cb cb = pi->cb;
    cb(pi->ud, rc, pi->rows, err);
}

static void set_err(struct phone_index *pi, int rc, const struct smsys_err *err, const char *what)
{
    if (pi->rc)
        return;
    pi->rc = rc;
    pi->err.code = rc;
    snprintf(pi->err.detail, sizeof(pi->err.detail), "phone index %s (%s): %.400s", what,
             pi->t[pi->cur].table, err ? err->detail : smsys_strerror(rc));
}

static void next_table(struct phone_index *pi)
{
    if (pi->stopping) { /* shutdown: no new Dynamics read */
        finish(pi, 0, NULL);
        return;
    }
    pi->cur++;
    pi->retried_full = 0;
    if (pi->cur >= pi->nt) {
        finish(pi, 0, NULL);
        return;
    }
    table_start(pi);
}

static void apply_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct phone_index *pi = ud;
    pi->pending--;
    if (rc < 0)
        set_err(pi, rc, err, "apply");
    if (pi->pending == 0 && pi->dv_done)
        table_finish(pi);
}

/* Turns one page into the arguments of smsys_pi_apply and sends it. */
static int page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    (void)page;
    struct phone_index *pi = ud;
    struct pi_table *t = &pi->t[pi->cur];
    cJSON *rs = cJSON_CreateArray();
    struct buf gone = {0};
    int rc = rs ? buf_putc(&gone, '{') : -ENOMEM;
    int ngone = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (rc < 0)
            break;
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(row, "@odata.context");
        if (cJSON_IsString(ctx) && strstr(ctx->valuestring, "$deletedEntity")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "id");
            if (cJSON_IsString(id)) {
                rc = buf_printf(&gone, "%s%s", ngone ? "," : "", id->valuestring);
                ngone++;
            }
            continue;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, t->key);
        if (!cJSON_IsString(id))
            continue;
        pi->rows++;
        cJSON *r = cJSON_CreateObject();
        cJSON *ph = cJSON_CreateObject();
        if (r == NULL || ph == NULL) {
            cJSON_Delete(r);
            cJSON_Delete(ph);
            rc = -ENOMEM;
            break;
        }
        cJSON_AddItemToArray(rs, r);
        cJSON_AddStringToObject(r, "id", id->valuestring);
        const cJSON *mod = cJSON_GetObjectItemCaseSensitive(row, "modifiedon");
        if (cJSON_IsString(mod))
            cJSON_AddStringToObject(r, "modified_on", mod->valuestring);
        cJSON_AddBoolToObject(
            r, "donotsms", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "smsys_donotsms")));
        cJSON_AddItemToObject(r, "phones", ph);
        /* a record whose number was cleared still appears: its rows go */
        char cols[512];
        snprintf(cols, sizeof(cols), "%s", t->columns);
        char *save = NULL;
        for (char *c = strtok_r(cols, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, c);
            if (!cJSON_IsString(v) || !*v->valuestring)
                continue;
            char e164[PHONE_E164_MAX];
            struct smsys_err perr;
            if (phone_normalize(v->valuestring, pi->country, e164, sizeof(e164), &perr) == 0)
                cJSON_AddStringToObject(ph, c, e164);
        }
    }
    if (rc == 0)
        rc = buf_putc(&gone, '}');
    if (rc == 0)
        rc = buf_putc(&gone, '\0');
    char *json = rc == 0 ? cJSON_PrintUnformatted(rs) : NULL;
    if (rc == 0 && json == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        const char *params[3] = {t->table, json, gone.data};
        rc = pg_query(pi->pool, "SELECT smsys_pi_apply($1, $2::jsonb, $3::uuid[])", 3, params,
                      apply_cb, pi);
        if (rc == 0)
            pi->pending++;
    }
    free(json);
    cJSON_Delete(rs);
    buf_free(&gone);
    return rc < 0 ? rc : DV_PAGE_CONTINUE;
}

static void saved_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct phone_index *pi = ud;
    if (rc < 0) {
        set_err(pi, rc, err, "save delta link");
        finish(pi, pi->rc, &pi->err);
        return;
    }
    log_info("phone index refreshed", "table=%s full=%d", pi->t[pi->cur].table, pi->full);
    next_table(pi);
}

static void table_finish(struct phone_index *pi)
{
    if (pi->rc < 0) {
        finish(pi, pi->rc, &pi->err);
        return;
    }
    const char *params[3] = {pi->t[pi->cur].table, pi->delta_link, pi->full ? "1" : "0"};
    int rc = pg_query(pi->pool,
                      "INSERT INTO smsys_phone_index_delta (tbl, delta_link, full_at, refreshed_at)"
                      " VALUES ($1, $2, CASE WHEN $3 = '1' THEN now() END, now())"
                      " ON CONFLICT (tbl) DO UPDATE SET delta_link = EXCLUDED.delta_link,"
                      " full_at = coalesce(EXCLUDED.full_at, smsys_phone_index_delta.full_at),"
                      " refreshed_at = now()",
                      3, params, saved_cb, pi);
    if (rc < 0) {
        struct smsys_err e = {.code = rc};
        snprintf(e.detail, sizeof(e.detail), "phone index: %s", smsys_strerror(rc));
        finish(pi, rc, &e);
    }
}

static void read_full(struct phone_index *pi);

static void pages_done_cb(int rc, const char *delta_link, unsigned pages,
                          const struct smsys_err *err, void *ud)
{
    (void)pages;
    struct phone_index *pi = ud;
    free(pi->delta_link);
    pi->delta_link = delta_link ? strdup(delta_link) : NULL;
    if (rc < 0 && !pi->full && !pi->retried_full && pi->pending == 0 && !pi->stopping) {
        /* An expired or unknown delta token: start over with a full read. */
        log_warn("phone index delta refused, full read", "table=%s detail=%s", pi->t[pi->cur].table,
                 log_q(err ? err->detail : ""));
        pi->retried_full = 1;
        read_full(pi);
        return;
    }
    if (rc < 0)
        set_err(pi, rc, err, "read");
    pi->dv_done = 1;
    if (pi->pending == 0)
        table_finish(pi);
}

static void read_path(struct phone_index *pi, const char *path)
{
    pi->dv_done = 0;
    pi->pending = 0;
    int rc = dv_get_all(pi->dv, path, "odata.track-changes", 5000, page_cb, pages_done_cb, pi);
    if (rc < 0) {
        set_err(pi, rc, NULL, "read");
        finish(pi, rc, &pi->err);
    }
}

static void cleared_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct phone_index *pi = ud;
    if (pi->stopping) {
        finish(pi, SMSYS_ECLOSED, NULL);
        return;
    }
    if (rc < 0) {
        set_err(pi, rc, err, "clear");
        finish(pi, rc, &pi->err);
        return;
    }
    struct pi_table *t = &pi->t[pi->cur];
    struct buf path = {0};
    int brc = buf_printf(&path, "%s?$select=%s,%s,modifiedon%s", t->set, t->key, t->columns,
                         t->has_donotsms ? ",smsys_donotsms" : "");
    if (brc == 0)
        brc = buf_putc(&path, '\0');
    if (brc < 0) {
        buf_free(&path);
        set_err(pi, brc, NULL, "read");
        finish(pi, brc, &pi->err);
        return;
    }
    read_path(pi, path.data);
    buf_free(&path);
}

/* A full read replaces the table's rows: matching misses them only for
 * the few seconds of the first load (or of a reload after an expired
 * token), which docs/inbound.md states. */
static void read_full(struct phone_index *pi)
{
    pi->full = 1;
    const char *params[1] = {pi->t[pi->cur].table};
    int rc = pg_query(pi->pool, "DELETE FROM smsys_phone_index WHERE tbl = $1", 1, params,
                      cleared_cb, pi);
    if (rc < 0) {
        set_err(pi, rc, NULL, "clear");
        finish(pi, rc, &pi->err);
    }
}

static void delta_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct phone_index *pi = ud;
    if (pi->stopping) {
        finish(pi, SMSYS_ECLOSED, NULL);
        return;
    }
    if (rc < 0) {
        set_err(pi, rc, err, "read delta link");
        finish(pi, rc, &pi->err);
        return;
    }
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && *PQgetvalue(res, 0, 0)) {
        pi->full = 0;
        read_path(pi, PQgetvalue(res, 0, 0));
        return;
    }
    read_full(pi);
}

static void table_start(struct phone_index *pi)
{
    pi->rc = 0;
    const char *params[1] = {pi->t[pi->cur].table};
    int rc = pg_query(pi->pool, "SELECT delta_link FROM smsys_phone_index_delta WHERE tbl = $1", 1,
                      params, delta_cb, pi);
    if (rc < 0) {
        set_err(pi, rc, NULL, "read delta link");
        finish(pi, rc, &pi->err);
    }
}

int phone_index_refresh(struct phone_index *pi, phone_index_done_cb cb, void *ud)
{
    if (pi->busy)
        return -EBUSY;
    const char *params[1] = {pi->t[0].table};
    pi->busy = 1;
    pi->cb = cb;
    pi->ud = ud;
    pi->cur = 0;
    pi->rows = 0;
    pi->rc = 0;
    pi->retried_full = 0;
    int rc = pg_query(pi->pool, "SELECT delta_link FROM smsys_phone_index_delta WHERE tbl = $1", 1,
                      params, delta_cb, pi);
    if (rc < 0)
        pi->busy = 0;
    return rc;
}

int phone_index_rebind(struct phone_index *pi, phone_index_done_cb cb, void *ud)
{
    if (!pi->busy)
        return -EINVAL;
    pi->stopping = 1;
    pi->cb = cb;
    pi->ud = ud;
    return 0;
}
