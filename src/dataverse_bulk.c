/* dataverse_bulk.c - paging (dv_get_all) and bulk writes
 * (CreateMultiple / UpdateMultiple with the $batch fallback), on top of
 * the request engine in dataverse.c. */
#include "dataverse_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/util.h"

#define BULK_CHUNK 1000 /* Dataverse's limit for *Multiple and for $batch */

/* ---- support cache ---- */

struct dv_ms *dv_ms_get(struct dv_client *c, const char *set)
{
    for (size_t i = 0; i < c->n_ms; i++)
        if (strcmp(c->ms[i].set, set) == 0)
            return &c->ms[i];
    struct dv_ms *n = realloc(c->ms, (c->n_ms + 1) * sizeof *n);
    if (n == NULL)
        return NULL;
    c->ms = n;
    struct dv_ms *e = &c->ms[c->n_ms];
    memset(e, 0, sizeof *e);
    if ((e->set = strdup(set)) == NULL)
        return NULL;
    c->n_ms++;
    return e;
}

void dv_ms_free(struct dv_client *c)
{
    for (size_t i = 0; i < c->n_ms; i++)
        free(c->ms[i].set);
    free(c->ms);
    c->ms = NULL;
    c->n_ms = 0;
}

/* ---- paging ---- */

struct pager {
    struct dv_client *c;
    char *prefer;
    dv_page_cb page_cb;
    dv_pages_done_cb done_cb;
    void *ud;
    unsigned pages;
};

static void pager_done_cb(int rc, struct dv_result *res, void *ud);

static void pager_finish(struct pager *p, int rc, const char *delta, const struct smsys_err *err)
{
    struct smsys_err e;
    if (rc < 0 && err == NULL) {
        smsys_err_set(&e, rc, "%s", smsys_strerror(rc));
        err = &e;
    }
    p->done_cb(rc, delta, p->pages, rc < 0 ? err : NULL, p->ud);
    free(p->prefer);
    free(p);
}

static void pager_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct pager *p = ud;
    if (rc < 0) {
        pager_finish(p, rc, NULL, &res->err);
        return;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(res->json, "value");
    if (!cJSON_IsArray(rows)) {
        smsys_err_set(&res->err, SMSYS_EPROTO, "paged read: answer has no \"value\" array");
        pager_finish(p, SMSYS_EPROTO, NULL, &res->err);
        return;
    }
    p->pages++;
    int pr = p->page_cb(rows, res->json, p->ud);
    if (pr != DV_PAGE_CONTINUE) {
        pager_finish(p, pr < 0 ? pr : 0, NULL, NULL);
        return;
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(res->json, "@odata.nextLink");
    if (cJSON_IsString(next)) {
        /* the link is opaque: followed unchanged, with the same Prefer */
        struct dv_call call = {.method = "GET", .path = next->valuestring, .prefer = p->prefer};
        rc = dv_request_ex(p->c, &call, pager_done_cb, p);
        if (rc < 0) {
            smsys_err_set(&res->err, rc, "paged read: next page not requested: %s",
                          rc == -EINVAL ? "nextLink outside the service root" : smsys_strerror(rc));
            pager_finish(p, rc, NULL, &res->err);
        }
        return;
    }
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(res->json, "@odata.deltaLink");
    pager_finish(p, 0, cJSON_IsString(delta) ? delta->valuestring : NULL, NULL);
}

int dv_get_all(struct dv_client *c, const char *path, const char *prefer_extra,
               unsigned maxpagesize, dv_page_cb page_cb, dv_pages_done_cb done_cb, void *ud)
{
    if (path == NULL || page_cb == NULL || done_cb == NULL || maxpagesize > 5000 ||
        (prefer_extra && strpbrk(prefer_extra, "\r\n")))
        return -EINVAL;
    struct pager *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    struct buf pf = BUF_INIT;
    int rc = buf_printf(&pf, "odata.maxpagesize=%u%s%s", maxpagesize ? maxpagesize : 5000,
                        prefer_extra && *prefer_extra ? "," : "", prefer_extra ? prefer_extra : "");
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->c = c;
    p->prefer = pf.data;
    p->page_cb = page_cb;
    p->done_cb = done_cb;
    p->ud = ud;
    struct dv_call call = {.method = "GET", .path = path, .prefer = p->prefer};
    rc = dv_request_ex(c, &call, pager_done_cb, p);
    if (rc < 0) {
        free(p->prefer);
        free(p);
    }
    return rc;
}

/* ---- bulk writes ---- */

/* Ranges of a chunk waiting to be sent: each refusal narrowed down
 * replaces one range by at most two, so the stack never overflows. */
#define BULK_STACK (DV_BULK_MAX_REFUSALS_MIXED + 2)

struct bulk {
    struct dv_client *c;
    int create;
    int each; /* narrow refused ranges down (the _each variants) */
    char *set, *logical;
    cJSON *rows;   /* our copy of the targets */
    cJSON **items; /* rows by index (cJSON arrays are lists) */
    size_t n;
    struct dv_row_result *res;
    size_t lo, hi;               /* the range in flight: rows [lo, hi) */
    size_t next;                 /* first row of the next chunk not started yet */
    size_t stack[BULK_STACK][2]; /* ranges of the current chunk still to send */
    size_t nstack;
    unsigned refusals; /* refused multi-row ranges of the current chunk */
    int wrote;         /* some range of the current chunk was written */
    unsigned requests;
    int used_batch;
    dv_bulk_cb cb;
    void *ud;
};

static void bulk_next(struct bulk *b);

int dv_rc_refused(int rc)
{
    return rc == SMSYS_EPROTO || rc == SMSYS_ENOTFOUND || rc == SMSYS_EPERM ||
           rc == SMSYS_ECONFLICT;
}

static void bulk_free(struct bulk *b)
{
    cJSON_Delete(b->rows);
    free(b->items);
    free(b->res);
    free(b->set);
    free(b->logical);
    free(b);
}

static void bulk_finish(struct bulk *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++)
        rc = b->res[i].rc;
    struct dv_bulk_result r = {
        .n = b->n, .rows = b->res, .requests = b->requests, .used_batch = b->used_batch};
    b->cb(rc, &r, b->ud);
    bulk_free(b);
}

/* Marks rows [from, to) with rc and err. */
static void rows_fail(struct bulk *b, size_t from, size_t to, int rc, const struct smsys_err *err)
{
    for (size_t i = from; i < to && i < b->n; i++) {
        b->res[i].rc = rc;
        if (err)
            b->res[i].err = *err;
        else
            smsys_err_set(&b->res[i].err, rc, "%s", smsys_strerror(rc));
        b->res[i].err.code = rc;
    }
}

/* Fails every row not answered yet (the rest of the write cannot run). */
static void rows_fail_open(struct bulk *b, int rc, const struct smsys_err *err)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->res[i].rc == 1)
            rows_fail(b, i, i + 1, rc, err);
}

/* The primary key of a row: "<logical>id", else "activityid" (activity
 * tables), as a cJSON string item or NULL. */
static const cJSON *row_id(const struct bulk *b, const cJSON *row)
{
    char k[160];
    snprintf(k, sizeof k, "%sid", b->logical);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, k);
    if (!cJSON_IsString(v))
        v = cJSON_GetObjectItemCaseSensitive(row, "activityid");
    return cJSON_IsString(v) ? v : NULL;
}

/* Did the server say it does not know the action (rather than a row
 * error)? 404 / 400 / 501 naming the segment or the action, or a bare 404
 * without a Dataverse error code. A missing row is 404 0x80040217. */
static int unsupported(const struct dv_result *res)
{
    int st = res->status;
    if (st != 404 && st != 400 && st != 501)
        return 0;
    char code[64], msg[400];
    int has = odata_error_parse(res->body, res->body_len, code, sizeof code, msg, sizeof msg);
    if (st == 501 || (st == 404 && !has))
        return 1;
    if (strcmp(code, "0x80040217") == 0)
        return 0;
    return strstr(msg, "Resource not found for the segment") || strstr(msg, "No HTTP resource") ||
           strstr(msg, "CreateMultiple") || strstr(msg, "UpdateMultiple") ||
           strcasestr(msg, "not supported") || strcasestr(msg, "does not support");
}

/* Queues rows [from, to) of the current chunk to be sent again. Room is
 * checked by may_narrow: each refusal narrowed adds at most two ranges. */
static void range_push(struct bulk *b, size_t from, size_t to)
{
    b->stack[b->nstack][0] = from;
    b->stack[b->nstack][1] = to;
    b->nstack++;
}

/* May the current chunk narrow one more refusal down? Not without _each,
 * and not past its budget: DV_BULK_MAX_REFUSALS while nothing of the chunk
 * has been written (a systematic refusal, every row bad, stops there),
 * DV_BULK_MAX_REFUSALS_MIXED once something has (the refusal is row by
 * row: scattered bad rows are all isolated). Past it the refused rows all
 * get the error. */
static int may_narrow(struct bulk *b, size_t rows, const struct smsys_err *err)
{
    if (!b->each || rows < 2)
        return 0;
    unsigned budget = b->wrote ? DV_BULK_MAX_REFUSALS_MIXED : DV_BULK_MAX_REFUSALS;
    if (b->refusals >= budget || b->nstack + 2 > BULK_STACK) {
        log_warn("dataverse bulk refusals capped", "entity_set=%s rows=%zu error=\"%s\"", b->set,
                 rows, log_q(err->detail));
        return 0;
    }
    b->refusals++;
    return 1;
}

/* Dynamics refused the range [from, to) as a whole with rc / err (a row
 * level error: one bad row fails the transaction). If it may be narrowed
 * down, both halves go again in turn, so the bad rows end up alone; else
 * every row of it gets the error. */
static void range_refused(struct bulk *b, size_t from, size_t to, int rc,
                          const struct smsys_err *err)
{
    if (!may_narrow(b, to - from, err)) {
        rows_fail(b, from, to, rc, err);
        return;
    }
    size_t mid = from + (to - from) / 2;
    range_push(b, mid, to); /* the first half goes first */
    range_push(b, from, mid);
}

static void multiple_done_cb(int rc, struct dv_result *res, void *ud);
static void batch_done_cb(int rc, struct dv_result *res, void *ud);

static int send_multiple(struct bulk *b)
{
    struct buf body = BUF_INIT, path = BUF_INIT;
    char type[200];
    snprintf(type, sizeof type, "Microsoft.Dynamics.CRM.%s", b->logical);
    int rc = buf_puts(&body, "{\"Targets\":[");
    for (size_t i = b->lo; rc == 0 && i < b->hi; i++) {
        cJSON *row = b->items[i];
        if (!cJSON_HasObjectItem(row, "@odata.type") &&
            cJSON_AddStringToObject(row, "@odata.type", type) == NULL)
            rc = -ENOMEM;
        char *s = rc == 0 ? cJSON_PrintUnformatted(row) : NULL;
        if (rc == 0 && s == NULL)
            rc = -ENOMEM;
        if (rc == 0 && i > b->lo)
            rc = buf_putc(&body, ',');
        if (rc == 0)
            rc = buf_puts(&body, s);
        free(s);
    }
    if (rc == 0)
        rc = buf_puts(&body, "]}");
    if (rc == 0)
        rc = buf_printf(&path, "%s/Microsoft.Dynamics.CRM.%s", b->set,
                        b->create ? "CreateMultiple" : "UpdateMultiple");
    if (rc == 0) {
        /* UpdateMultiple re-applies the same values: safe to resend.
         * CreateMultiple is not (unknown outcome on a timeout). */
        struct dv_call call = {.method = "POST",
                               .path = path.data,
                               .body = body.data,
                               .body_len = body.len,
                               .retry = b->create ? DV_RETRY_AUTO : DV_RETRY_SAFE};
        rc = dv_request_ex(b->c, &call, multiple_done_cb, b);
    }
    buf_free(&body);
    buf_free(&path);
    if (rc == 0)
        b->requests++;
    return rc;
}

static int send_batch(struct bulk *b)
{
    size_t n = b->hi - b->lo;
    struct odata_batch_req *reqs = calloc(n, sizeof *reqs);
    char **bodies = calloc(n, sizeof *bodies);
    char **urls = calloc(n, sizeof *urls);
    char(*cids)[24] = calloc(n, sizeof *cids);
    struct buf body = BUF_INIT;
    int rc = reqs && bodies && urls && cids ? 0 : -ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const cJSON *row = b->items[b->lo + k];
        cJSON *copy = cJSON_Duplicate(row, 1);
        if (copy == NULL) {
            rc = -ENOMEM;
            break;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "@odata.type");
        struct buf u = BUF_INIT;
        const cJSON *id = row_id(b, row);
        if (b->create) {
            rc = buf_printf(&u, "%s%s", dv_base_url(b->c), b->set);
        } else if (id == NULL) {
            rc = -EINVAL; /* checked up front; cannot happen */
        } else {
            rc = buf_printf(&u, "%s%s(", dv_base_url(b->c), b->set);
            if (rc == 0)
                rc = odata_lit_guid(&u, id->valuestring);
            if (rc == 0)
                rc = buf_putc(&u, ')');
            /* the key is in the URL; keep the body to the changed columns */
            cJSON_DeleteItemFromObjectCaseSensitive(copy, id->string);
        }
        urls[k] = u.data;
        bodies[k] = rc == 0 ? cJSON_PrintUnformatted(copy) : NULL;
        cJSON_Delete(copy);
        if (rc == 0 && bodies[k] == NULL)
            rc = -ENOMEM;
        snprintf(cids[k], sizeof cids[k], "%zu", k + 1);
        reqs[k].method = b->create ? "POST" : "PATCH";
        reqs[k].url = urls[k];
        reqs[k].body = bodies[k];
        reqs[k].content_id = cids[k];
        /* UpdateMultiple updates; it never creates: keep that meaning */
        reqs[k].if_match = b->create ? NULL : "*";
    }
    char uuid[37], bnd[64], cs[64], ct[100];
    util_uuid4(uuid);
    snprintf(bnd, sizeof bnd, "batch_%s", uuid);
    snprintf(cs, sizeof cs, "changeset_%s", uuid);
    snprintf(ct, sizeof ct, "multipart/mixed; boundary=%s", bnd);
    if (rc == 0)
        rc = odata_batch_build(&body, bnd, cs, reqs, n);
    if (rc == 0) {
        struct dv_call call = {.method = "POST",
                               .path = "$batch",
                               .body = body.data,
                               .body_len = body.len,
                               .content_type = ct,
                               .retry = b->create ? DV_RETRY_AUTO : DV_RETRY_SAFE};
        rc = dv_request_ex(b->c, &call, batch_done_cb, b);
    }
    for (size_t k = 0; bodies && urls && k < n; k++) {
        free(bodies[k]);
        free(urls[k]);
    }
    free(reqs);
    free(bodies);
    free(urls);
    free(cids);
    buf_free(&body);
    if (rc == 0) {
        b->requests++;
        b->used_batch = 1;
    }
    return rc;
}

static int use_batch(struct bulk *b)
{
    if (b->c->o.force_batch)
        return 1;
    struct dv_ms *ms = dv_ms_get(b->c, b->set);
    return ms && (b->create ? ms->create : ms->update) < 0;
}

/* Sends the next range: one left from a refused range of this chunk
 * first, else the next chunk; or finishes. A start failure fails every row
 * not answered yet. */
static void bulk_next(struct bulk *b)
{
    if (b->nstack > 0) {
        b->nstack--;
        b->lo = b->stack[b->nstack][0];
        b->hi = b->stack[b->nstack][1];
    } else if (b->next < b->n) {
        b->lo = b->next;
        b->hi = b->n - b->lo < BULK_CHUNK ? b->n : b->lo + BULK_CHUNK;
        b->next = b->hi;
        b->refusals = 0;
        b->wrote = 0;
    } else {
        bulk_finish(b);
        return;
    }
    int rc = use_batch(b) ? send_batch(b) : send_multiple(b);
    if (rc < 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "bulk write not started: %s", smsys_strerror(rc));
        rows_fail_open(b, rc, &e);
        bulk_finish(b);
    }
}

static void multiple_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct bulk *b = ud;
    struct dv_ms *ms = dv_ms_get(b->c, b->set);
    if (rc < 0 && unsupported(res)) {
        log_info("dataverse bulk fallback", "entity_set=%s action=%s status=%d", b->set,
                 b->create ? "CreateMultiple" : "UpdateMultiple", res->status);
        if (ms)
            *(b->create ? &ms->create : &ms->update) = -1;
        b->c->m.batch_fallbacks++;
        rc = send_batch(b);
        if (rc == 0)
            return;
        smsys_err_set(&res->err, rc, "$batch fallback not started: %s", smsys_strerror(rc));
        rows_fail_open(b, rc, &res->err);
        bulk_finish(b);
        return;
    }
    if (rc == SMSYS_ECLOSED) {
        rows_fail_open(b, rc, &res->err);
        bulk_finish(b);
        return;
    }
    if (rc < 0 && dv_rc_refused(rc)) {
        /* the action is one transaction: one bad row refuses the range */
        range_refused(b, b->lo, b->hi, rc, &res->err);
    } else if (rc < 0) {
        /* temporary (429 budget, 5xx, timeout, unknown outcome): the
         * caller's retry decides; the rest of the write goes on */
        rows_fail(b, b->lo, b->hi, rc, &res->err);
    } else {
        if (ms)
            *(b->create ? &ms->create : &ms->update) = 1;
        b->wrote = 1;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(res->json, "Ids");
        const cJSON *v = cJSON_IsArray(ids) ? ids->child : NULL;
        for (size_t i = b->lo; i < b->hi; i++, v = v ? v->next : NULL) {
            struct dv_row_result *rr = &b->res[i];
            if (b->create && cJSON_IsString(v))
                snprintf(rr->id, sizeof rr->id, "%s", v->valuestring);
            rr->rc = 0;
        }
    }
    bulk_next(b);
}

static void batch_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct bulk *b = ud;
    size_t from = b->lo, to = b->hi, n = to - from;
    struct odata_batch ob = {0};
    if (rc == 0) {
        const char *ct = NULL;
        for (size_t i = 0; i < res->n_headers && !ct; i++)
            if (strcasecmp(res->headers[i].name, "Content-Type") == 0)
                ct = res->headers[i].value;
        rc = odata_batch_parse(ct, res->body, res->body_len, &ob, &res->err);
    }
    if (rc < 0 && res->status >= 200 && res->status < 300 && b->create) {
        /* the server answered 2xx, so it ran the changeset, but we cannot
         * tell which rows it created: unknown, not failed */
        struct smsys_err pe = res->err;
        smsys_err_set(&res->err, SMSYS_EUNKNOWN, "outcome unknown: %s", pe.detail);
        rc = SMSYS_EUNKNOWN;
    }
    if (rc == SMSYS_ECLOSED) {
        rows_fail_open(b, rc, &res->err);
        bulk_finish(b);
        return;
    }
    if (rc < 0) {
        rows_fail(b, from, to, rc, &res->err);
        bulk_next(b);
        return;
    }
    /* a failed changeset answers with only the failing part; find it */
    size_t failed = SIZE_MAX;
    struct smsys_err fe;
    int frc = 0;
    for (size_t i = 0; i < ob.n; i++) {
        struct odata_part *p = &ob.parts[i];
        long long cid = 0;
        size_t k = i;
        if (p->content_id && util_parse_int(p->content_id, 1, (long long)n, &cid) == 0)
            k = (size_t)cid - 1;
        if (p->status >= 400) {
            frc = dv_translate(p->status, p->body, p->body_len, &fe);
            failed = k < n ? k : 0;
            break;
        }
        if (k >= n)
            continue;
        struct dv_row_result *rr = &b->res[from + k];
        rr->rc = 0;
        const char *eid = odata_part_header(p, "OData-EntityId");
        if (b->create && eid)
            odata_entity_id(eid, rr->id);
    }
    if (failed != SIZE_MAX && dv_rc_refused(frc) && may_narrow(b, n, &fe)) {
        /* the part names the bad row: it alone fails; the rows around it
         * were rolled back and go again */
        for (size_t k = 0; k < n; k++)
            b->res[from + k].rc = 1;
        rows_fail(b, from + failed, from + failed + 1, frc, &fe);
        if (failed + 1 < n)
            range_push(b, from + failed + 1, to);
        if (failed > 0)
            range_push(b, from, from + failed);
    } else if (failed != SIZE_MAX && b->each && dv_rc_refused(frc)) {
        rows_fail(b, from, to, frc, &fe); /* past the cap, like a *Multiple refusal */
    } else if (failed != SIZE_MAX) {
        struct smsys_err rb;
        smsys_err_set(&rb, SMSYS_ETEMP,
                      "not applied: the changeset was rolled back because row "
                      "%zu failed (%s)",
                      from + failed, fe.detail);
        rows_fail(b, from, to, SMSYS_ETEMP, &rb);
        rows_fail(b, from + failed, from + failed + 1, frc, &fe);
    } else {
        b->wrote = 1;
        struct smsys_err e;
        smsys_err_set(&e, SMSYS_EPROTO, "$batch response: %zu parts for %zu requests", ob.n, n);
        for (size_t k = 0; k < n; k++)
            if (b->res[from + k].rc == 1) /* not answered */
                rows_fail(b, from + k, from + k + 1, SMSYS_EPROTO, &e);
    }
    odata_batch_free(&ob);
    bulk_next(b);
}

static int bulk_start(struct dv_client *c, int create, int each, const char *set,
                      const char *logical, const cJSON *targets, dv_bulk_cb cb, void *ud)
{
    if (c->closing)
        return SMSYS_ECLOSED;
    if (set == NULL || logical == NULL || !cJSON_IsArray(targets) || cb == NULL ||
        strpbrk(set, "/?#() ") || strpbrk(logical, "/?#() \"") || strlen(logical) > 100)
        return -EINVAL;
    struct bulk *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->c = c;
    b->create = create;
    b->each = each;
    b->cb = cb;
    b->ud = ud;
    b->set = strdup(set);
    b->logical = strdup(logical);
    b->rows = cJSON_Duplicate(targets, 1);
    b->n = (size_t)cJSON_GetArraySize(targets);
    b->res = calloc(b->n ? b->n : 1, sizeof *b->res);
    b->items = calloc(b->n ? b->n : 1, sizeof *b->items);
    if (!b->set || !b->logical || !b->rows || !b->res || !b->items) {
        bulk_free(b);
        return -ENOMEM;
    }
    cJSON *row = b->rows->child;
    for (size_t i = 0; i < b->n; i++, row = row->next) {
        const cJSON *id = cJSON_IsObject(row) ? row_id(b, row) : NULL;
        if (!cJSON_IsObject(row) || (!create && id == NULL)) {
            bulk_free(b);
            return -EINVAL; /* updates need the key of every row */
        }
        if (id)
            snprintf(b->res[i].id, sizeof b->res[i].id, "%s", id->valuestring);
        b->res[i].rc = 1; /* "not answered yet" until a response says */
        b->items[i] = row;
    }
    if (b->n == 0) {
        bulk_free(b);
        return -EINVAL;
    }
    b->lo = 0;
    b->hi = b->next = b->n < BULK_CHUNK ? b->n : BULK_CHUNK;
    int rc = use_batch(b) ? send_batch(b) : send_multiple(b);
    if (rc < 0)
        bulk_free(b);
    return rc;
}

int dv_update_multiple(struct dv_client *c, const char *entity_set, const char *logical_name,
                       const cJSON *targets, dv_bulk_cb cb, void *ud)
{
    return bulk_start(c, 0, 0, entity_set, logical_name, targets, cb, ud);
}

int dv_create_multiple(struct dv_client *c, const char *entity_set, const char *logical_name,
                       const cJSON *targets, dv_bulk_cb cb, void *ud)
{
    return bulk_start(c, 1, 0, entity_set, logical_name, targets, cb, ud);
}

int dv_update_multiple_each(struct dv_client *c, const char *entity_set, const char *logical_name,
                            const cJSON *targets, dv_bulk_cb cb, void *ud)
{
    return bulk_start(c, 0, 1, entity_set, logical_name, targets, cb, ud);
}

int dv_create_multiple_each(struct dv_client *c, const char *entity_set, const char *logical_name,
                            const cJSON *targets, dv_bulk_cb cb, void *ud)
{
    return bulk_start(c, 1, 1, entity_set, logical_name, targets, cb, ud);
}
