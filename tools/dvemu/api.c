/* api.c - routing of one Web API call (after authentication and service
 * protection, which main.c does): WhoAmI, entity sets and rows, N:N
 * association, bound and unbound actions. Also used for each part of a
 * $batch, so it produces a result struct instead of writing to a socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dvemu.h"
#include "smsys/util.h"

void api_res_init(struct api_res *r)
{
    memset(r, 0, sizeof(*r));
}

void api_res_free(struct api_res *r)
{
    buf_free(&r->headers);
    buf_free(&r->body);
}

void api_hdr(struct api_res *r, const char *name, const char *fmt, ...)
{
    va_list ap;
    buf_printf(&r->headers, "%s: ", name);
    va_start(ap, fmt);
    buf_vprintf(&r->headers, fmt, ap);
    va_end(ap);
    buf_puts(&r->headers, "\r\n");
}

/* Dataverse's error shape: {"error":{"code":"0x...","message":"..."}}. */
void api_error(struct api_res *r, int status, const char *code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->status = status;
    r->ctype = "application/json; odata.metadata=minimal";
    buf_reset(&r->body);
    buf_reset(&r->headers);
    buf_printf(&r->body, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    buf_put_jsonstr(&r->body, msg);
    buf_puts(&r->body, "\"}}");
    api_hdr(r, "OData-Version", "4.0");
}

static void json_reply(struct api_res *r, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    r->status = status;
    r->ctype = "application/json; odata.metadata=minimal";
    buf_reset(&r->body);
    if (s)
        buf_puts(&r->body, s);
    free(s);
    api_hdr(r, "OData-Version", "4.0");
}

static const char *hdr(const struct api_req *q, const char *name)
{
    return q->header ? q->header(q->header_ud, name) : NULL;
}

static cJSON *parse_body(const struct api_req *q, struct api_res *r)
{
    cJSON *j = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
    if (j == NULL)
        api_error(r, 400, "0x80048d19",
                  "Error identified in Payload provided by the user: the request body is not "
                  "valid JSON.");
    return j;
}

static void entity_id_hdr(const struct api_req *q, struct api_res *r, const struct table *t,
                          const char *id)
{
    api_hdr(r, "OData-EntityId", "%s%s(%s)", q->base, t->set, id);
}

static void reply_created(struct emu *e, const struct api_req *q, struct api_res *r,
                          struct table *t, struct row *row, const struct prefer *pf, int status)
{
    if (pf->return_repr) {
        struct api_req q2 = *q;
        query_one(e, t, row, &q2, pf, r);
        r->status = status;
        entity_id_hdr(q, r, t, row->id);
        return;
    }
    r->status = 204;
    r->ctype = NULL;
    buf_reset(&r->body);
    api_hdr(r, "OData-Version", "4.0");
    entity_id_hdr(q, r, t, row->id);
}

static void do_patch(struct emu *e, const struct api_req *q, struct api_res *r, struct table *t,
                     const char *id, const struct prefer *pf)
{
    const char *im = hdr(q, "If-Match");
    const char *inm = hdr(q, "If-None-Match");
    struct row *row = store_get(t, id);
    cJSON *body = parse_body(q, r);
    if (body == NULL)
        return;
    if (row == NULL) {
        if (im) {
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", t->logical, id);
            goto out;
        }
        if (write_create(e, t, body, id, r, &row) == 0)
            reply_created(e, q, r, t, row, pf, 201);
        goto out;
    }
    if (inm && strcmp(inm, "*") == 0) {
        api_error(r, 412, "0x80040237", "A record with matching key values already exists.");
        goto out;
    }
    if (im && strcmp(im, "*") != 0) {
        /* W/"7" as sent in @odata.etag; a bare "7" is taken too */
        char etag[48];
        snprintf(etag, sizeof(etag), "\"%llu\"", (unsigned long long)row->version);
        const char *given = strncmp(im, "W/", 2) == 0 ? im + 2 : im;
        if (strcmp(given, etag) != 0) {
            api_error(r, 412, "0x80060882",
                      "The version of the existing record doesn't match the RowVersion property "
                      "provided.");
            goto out;
        }
    }
    cJSON *obj = cJSON_Duplicate(row->obj, 1);
    if (write_apply(e, t, obj, body, 0, r) != 0) {
        cJSON_Delete(obj);
        goto out;
    }
    row = store_put(&e->store, t, id, obj);
    r->rows_written++;
    reply_created(e, q, r, t, row, pf, 200);
out:
    cJSON_Delete(body);
}

/* POST <set>/Microsoft.Dynamics.CRM.CreateMultiple | UpdateMultiple |
 * UpsertMultiple. All or nothing. */
static void do_multiple(struct emu *e, const struct api_req *q, struct api_res *r, struct table *t,
                        int update, int upsert)
{
    cJSON *body = parse_body(q, r);
    if (body == NULL)
        return;
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(body, "Targets");
    int n = cJSON_GetArraySize(targets);
    if (!cJSON_IsArray(targets) || n == 0) {
        api_error(r, 400, "0x80040203", "Required field 'Targets' is missing or empty.");
        goto out;
    }
    if (n > 1000) {
        api_error(r, 400, "0x80040203",
                  "The number of records in the request (%d) exceeds the limit of 1000.", n);
        goto out;
    }
    char want[160];
    snprintf(want, sizeof(want), "Microsoft.Dynamics.CRM.%s", t->logical);
    cJSON *ids = cJSON_CreateArray();
    int ok = 1, written = 0;
    store_begin(&e->store);
    const cJSON *tg;
    cJSON_ArrayForEach(tg, targets)
    {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(tg, "@odata.type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, want) != 0) {
            api_error(r, 400, "0x80040203",
                      "Each target must carry \"@odata.type\": \"%s\" in a %s request.", want,
                      update ? "UpdateMultiple" : "CreateMultiple");
            ok = 0;
            break;
        }
        struct row *row;
        if (!update) {
            if (write_create(e, t, tg, NULL, r, &row) != 0) {
                ok = 0;
                break;
            }
            cJSON_AddItemToArray(ids, cJSON_CreateString(row->id));
            written++;
            continue;
        }
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(tg, t->pk);
        char id[37];
        if (!cJSON_IsString(pk) || !guid_valid(pk->valuestring, strlen(pk->valuestring))) {
            api_error(r, 400, "0x80040203", "Each target of UpdateMultiple needs its %s.", t->pk);
            ok = 0;
            break;
        }
        memcpy(id, pk->valuestring, 37);
        guid_lower(id);
        row = store_get(t, id);
        if (row == NULL && !upsert) {
            /* UpdateMultiple only updates; UpsertMultiple creates */
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", t->logical, id);
            ok = 0;
            break;
        }
        if (row == NULL) {
            if (write_create(e, t, tg, id, r, &row) != 0) {
                ok = 0;
                break;
            }
        } else {
            cJSON *obj = cJSON_Duplicate(row->obj, 1);
            if (write_apply(e, t, obj, tg, 0, r) != 0) {
                cJSON_Delete(obj);
                ok = 0;
                break;
            }
            store_put(&e->store, t, id, obj);
        }
        written++;
    }
    if (!ok) {
        store_rollback(&e->store);
        r->rows_written = 0;
        cJSON_Delete(ids);
        goto out;
    }
    store_commit(&e->store);
    r->rows_written = written;
    buf_reset(&r->headers);
    if (update) {
        r->status = 204;
        r->ctype = NULL;
        buf_reset(&r->body);
        api_hdr(r, "OData-Version", "4.0");
        cJSON_Delete(ids);
    } else {
        cJSON *o = cJSON_CreateObject();
        char ctx[512];
        snprintf(ctx, sizeof(ctx), "%s$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse",
                 q->base);
        cJSON_AddStringToObject(o, "@odata.context", ctx);
        cJSON_AddItemToObject(o, "Ids", ids);
        json_reply(r, 200, o);
        cJSON_Delete(o);
    }
out:
    cJSON_Delete(body);
}

static void do_add_to_queue(struct emu *e, const struct api_req *q, struct api_res *r,
                            const char *queue_id)
{
    struct table *qt = store_by_logical(&e->store, "queue");
    struct table *qit = store_by_logical(&e->store, "queueitem");
    if (store_get(qt, queue_id) == NULL) {
        api_error(r, 404, "0x80040217", "queue With Id = %s Does Not Exist", queue_id);
        return;
    }
    cJSON *body = parse_body(q, r);
    if (body == NULL)
        return;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(body, "Target");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(tg, "@odata.type");
    const char *prefix = "Microsoft.Dynamics.CRM.";
    struct table *tt = NULL;
    if (cJSON_IsString(ty) && strncmp(ty->valuestring, prefix, strlen(prefix)) == 0)
        tt = store_by_logical(&e->store, ty->valuestring + strlen(prefix));
    const cJSON *tid = tt ? cJSON_GetObjectItemCaseSensitive(tg, tt->pk) : NULL;
    struct row *target = NULL;
    if (cJSON_IsString(tid) && guid_valid(tid->valuestring, strlen(tid->valuestring))) {
        char id[37];
        memcpy(id, tid->valuestring, 37);
        guid_lower(id);
        target = store_get(tt, id);
    }
    if (target == NULL) {
        api_error(r, 400, "0x80040203", "Target is missing, of an unknown type or does not exist.");
        cJSON_Delete(body);
        return;
    }
    /* an item already queued moves to the new queue, as AddToQueue does */
    struct row *item = NULL;
    for (size_t i = 0; i < qit->nrows_slots && item == NULL; i++) {
        struct row *qr = qit->rows[i];
        const cJSON *o = qr ? cJSON_GetObjectItemCaseSensitive(qr->obj, "_objectid_value") : NULL;
        if (cJSON_IsString(o) && strcmp(o->valuestring, target->id) == 0)
            item = qr;
    }
    cJSON *obj = item ? cJSON_Duplicate(item->obj, 1) : cJSON_CreateObject();
    char qid[37];
    if (item) {
        memcpy(qid, item->id, 37);
        write_stamp_modified(obj);
    } else {
        util_uuid4(qid);
        write_defaults(e, qit, obj, qid);
        char now[32];
        format_datetime((int64_t)time(NULL), now, sizeof(now));
        cJSON_AddStringToObject(obj, "enteredon", now);
    }
    const char *keys[] = {"_queueid_value",  "_queueid_value" LLN_SUFFIX,
                          "_objectid_value", "_objectid_value" LLN_SUFFIX,
                          "objecttypecode",  "title"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(obj, keys[i]);
    cJSON_AddStringToObject(obj, keys[0], queue_id);
    cJSON_AddStringToObject(obj, keys[1], "queue");
    cJSON_AddStringToObject(obj, keys[2], target->id);
    cJSON_AddStringToObject(obj, keys[3], tt->logical);
    cJSON_AddStringToObject(obj, keys[4], tt->logical);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(target->obj, tt->primary_name);
    if (cJSON_IsString(nm))
        cJSON_AddStringToObject(obj, keys[5], nm->valuestring);
    store_put(&e->store, qit, qid, obj);
    r->rows_written++;
    cJSON *o = cJSON_CreateObject();
    char ctx[512];
    snprintf(ctx, sizeof(ctx), "%s$metadata#Microsoft.Dynamics.CRM.AddToQueueResponse", q->base);
    cJSON_AddStringToObject(o, "@odata.context", ctx);
    cJSON_AddStringToObject(o, "QueueItemId", qid);
    json_reply(r, 200, o);
    cJSON_Delete(o);
    cJSON_Delete(body);
}

static void do_assoc(struct emu *e, const struct api_req *q, struct api_res *r, struct table *t,
                     const char *id, const char *rest, const struct prefer *pf)
{
    char nav[128];
    const char *slash = strchr(rest, '/');
    const char *paren = strchr(rest, '(');
    size_t nl = strcspn(rest, "/(");
    snprintf(nav, sizeof(nav), "%.*s", (int)nl, rest);
    const struct assoc_def *a = schema_assoc(nav);
    if (a == NULL || strcmp(a->left, t->logical) != 0) {
        api_error(r, 400, "0x0",
                  "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", nav,
                  t->logical);
        return;
    }
    if (store_get(t, id) == NULL) {
        api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", t->logical, id);
        return;
    }
    struct table *rt = store_by_logical(&e->store, a->right);
    if (strcmp(q->method, "GET") == 0 && slash == NULL && paren == NULL) {
        query_assoc(e, t, a, id, q, pf, r);
        return;
    }
    int is_ref = slash && strcmp(slash, "/$ref") == 0;
    if (strcmp(q->method, "POST") == 0 && is_ref && paren == NULL) {
        cJSON *body = parse_body(q, r);
        if (body == NULL)
            return;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(body, "@odata.id");
        const char *v = cJSON_IsString(ref) ? ref->valuestring : "";
        const char *op = strrchr(v, '(');
        char rid[37] = "";
        if (op && strlen(op) >= 38 && guid_valid(op + 1, 36)) {
            memcpy(rid, op + 1, 36);
            rid[36] = '\0';
            guid_lower(rid);
        }
        if (!rid[0] || rt == NULL || store_get(rt, rid) == NULL) {
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", a->right,
                      rid[0] ? rid : "?");
        } else {
            store_link(&e->store, a->nav, id, rid);
            lists_sync_count(e, a->nav, id);
            r->status = 204;
            r->rows_written++;
            api_hdr(r, "OData-Version", "4.0");
        }
        cJSON_Delete(body);
        return;
    }
    if (strcmp(q->method, "DELETE") == 0 && paren && slash && strcmp(slash, "/$ref") == 0 &&
        paren < slash && slash - paren == 38) {
        char rid[37];
        memcpy(rid, paren + 1, 36);
        rid[36] = '\0';
        guid_lower(rid);
        if (store_unlink(&e->store, a->nav, id, rid) != 0) {
            api_error(r, 404, "0x80040217", "The association does not exist.");
            return;
        }
        lists_sync_count(e, a->nav, id);
        r->status = 204;
        r->rows_written++;
        api_hdr(r, "OData-Version", "4.0");
        return;
    }
    api_error(r, 405, "0x80060888", "The request is not supported on '%s'.", rest);
}

static void do_action(struct emu *e, const struct api_req *q, struct api_res *r, const char *name,
                      const char *bound)
{
    const char *short_name = name;
    if (strncmp(name, "Microsoft.Dynamics.CRM.", 23) == 0)
        short_name = name + 23;
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(e->actions, short_name);
    if (calls == NULL || strcmp(q->method, "POST") != 0) {
        api_error(r, 404, "0x80060888", "Resource not found for the segment '%s'.", name);
        return;
    }
    cJSON *call = cJSON_CreateObject();
    char now[32];
    format_datetime((int64_t)time(NULL), now, sizeof(now));
    cJSON_AddStringToObject(call, "at", now);
    if (bound)
        cJSON_AddStringToObject(call, "bound", bound);
    cJSON *body = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
    if (body)
        cJSON_AddItemToObject(call, "parameters", body);
    else
        cJSON_AddStringToObject(call, "raw", q->body ? q->body : "");
    cJSON_AddItemToArray(calls, call);
    r->status = 204;
    api_hdr(r, "OData-Version", "4.0");
}

static void whoami(struct emu *e, const struct api_req *q, struct api_res *r)
{
    cJSON *o = cJSON_CreateObject();
    char ctx[512];
    snprintf(ctx, sizeof(ctx), "%s$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", q->base);
    cJSON_AddStringToObject(o, "@odata.context", ctx);
    cJSON_AddStringToObject(o, "BusinessUnitId", e->bu_id);
    cJSON_AddStringToObject(o, "UserId", e->user_id);
    cJSON_AddStringToObject(o, "OrganizationId", e->org_id);
    json_reply(r, 200, o);
    cJSON_Delete(o);
}

static void privileges(struct emu *e, const struct api_req *q, struct api_res *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "RolePrivileges");
    static const char *verbs[] = {"Create", "Read", "Write", "Delete", "Append", "AppendTo"};
    for (size_t i = 0; i < e->store.ntables; i++) {
        for (size_t v = 0; v < ARRAY_LEN(verbs); v++) {
            char name[160], pid[37];
            snprintf(name, sizeof(name), "prv%s%s", verbs[v], e->store.tables[i]->logical);
            util_uuid4(pid);
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "Depth", "Global");
            cJSON_AddStringToObject(p, "PrivilegeId", pid);
            cJSON_AddStringToObject(p, "BusinessUnitId", e->bu_id);
            cJSON_AddStringToObject(p, "PrivilegeName", name);
            cJSON_AddItemToArray(arr, p);
        }
    }
    json_reply(r, 200, o);
    cJSON_Delete(o);
}

/* GET activitypointers[(<id>)]: a read-only union of every activity table,
 * with the columns all activities share. The rows are borrowed from the
 * real tables for the duration of the call. */
static void activity_pointers(struct emu *e, const struct api_req *q, const char *after,
                              const struct prefer *pf, struct api_res *r)
{
    if (strcmp(q->method, "GET") != 0) {
        api_error(r, 405, "0x80040227",
                  "activitypointer is read-only in dvemu; write the "
                  "activity's own table.");
        return;
    }
    if (e->pointer == NULL) {
        struct table *vt =
            schema_table_new("activitypointer", "activitypointers", "activityid", "subject", 1);
        if (vt == NULL) {
            api_error(r, 500, "0x0", "out of memory");
            return;
        }
        static const char *cols[] = {"subject",        "description",  "activitytypecode",
                                     "scheduledstart", "scheduledend", "actualstart",
                                     "actualend"};
        static const enum col_type ty[] = {CT_STRING,   CT_MEMO,     CT_STRING,  CT_DATETIME,
                                           CT_DATETIME, CT_DATETIME, CT_DATETIME};
        for (size_t i = 0; i < ARRAY_LEN(cols); i++)
            table_add_column(vt, cols[i], ty[i], NULL);
        table_add_column(vt, "regardingobjectid", CT_LOOKUP, "*");
        table_add_column(vt, "ownerid", CT_LOOKUP, "systemuser,team");
        table_add_column(vt, "prioritycode", CT_CHOICE, NULL);
        vt->user_owned = 1;
        e->pointer = vt;
    }
    struct table *vt = e->pointer;
    size_t n = 0;
    for (size_t i = 0; i < e->store.ntables; i++)
        if (e->store.tables[i]->activity)
            n += e->store.tables[i]->nrows_slots;
    vt->rows = calloc(n ? n : 1, sizeof(*vt->rows));
    if (vt->rows == NULL) {
        api_error(r, 500, "0x0", "out of memory");
        return;
    }
    vt->nrows_slots = 0;
    struct row *one = NULL;
    char id[37] = "";
    if (*after == '(' && strlen(after) >= 38 && guid_valid(after + 1, 36)) {
        memcpy(id, after + 1, 36);
        id[36] = '\0';
        guid_lower(id);
    }
    for (size_t i = 0; i < e->store.ntables; i++) {
        struct table *t = e->store.tables[i];
        if (!t->activity)
            continue;
        if (id[0] && one == NULL)
            one = store_get(t, id);
        for (size_t k = 0; k < t->nrows_slots; k++)
            if (t->rows[k])
                vt->rows[vt->nrows_slots++] = t->rows[k];
    }
    vt->live = vt->nrows_slots;
    if (*after == '\0')
        query_collection(e, vt, q, pf, r);
    else if (one)
        query_one(e, vt, one, q, pf, r);
    else if (id[0])
        api_error(r, 404, "0x80040217", "activitypointer With Id = %s Does Not Exist", id);
    else
        api_error(r, 400, "0x80060888", "Bad Request - Error in query syntax.");
    free(vt->rows);
    vt->rows = NULL;
    vt->nrows_slots = vt->live = 0;
}

void api_exec(struct emu *e, const struct api_req *q, struct api_res *r)
{
    struct prefer pf;
    prefer_parse(hdr(q, "Prefer"), &pf);
    const char *path = q->path;
    char seg[256];
    size_t sl = strcspn(path, "(/");
    if (sl >= sizeof(seg)) {
        api_error(r, 404, "0x80060888", "Resource not found for the segment '%.64s'.", path);
        return;
    }
    memcpy(seg, path, sl);
    seg[sl] = '\0';
    const char *after = path + sl;
    if (seg[0] == '\0' && *after == '\0' && strcmp(q->method, "GET") == 0) {
        /* the service document: one entry per entity set */
        cJSON *o = cJSON_CreateObject();
        char ctx[400];
        snprintf(ctx, sizeof(ctx), "%s$metadata", q->base);
        cJSON_AddStringToObject(o, "@odata.context", ctx);
        cJSON *v = cJSON_AddArrayToObject(o, "value");
        for (size_t i = 0; i < e->store.ntables; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "name", e->store.tables[i]->set);
            cJSON_AddStringToObject(it, "kind", "EntitySet");
            cJSON_AddStringToObject(it, "url", e->store.tables[i]->set);
            cJSON_AddItemToArray(v, it);
        }
        json_reply(r, 200, o);
        cJSON_Delete(o);
        return;
    }
    if (strcmp(seg, "WhoAmI") == 0 && strcmp(q->method, "GET") == 0) {
        whoami(e, q, r);
        return;
    }
    if (strcmp(seg, "$batch") == 0) {
        if (strcmp(q->method, "POST") != 0 || q->in_batch) {
            api_error(r, 405, "0x0", "$batch must be POSTed, and cannot be nested.");
            return;
        }
        batch_run(e, q, hdr(q, "Content-Type"), r);
        return;
    }
    if (strcmp(seg, "EntityDefinitions") == 0 || strcmp(seg, "RelationshipDefinitions") == 0 ||
        strcmp(seg, "PublishXml") == 0 || strcmp(seg, "PublishAllXml") == 0 ||
        strcmp(seg, "GlobalOptionSetDefinitions") == 0) {
        metadata_exec(e, q, path, r);
        return;
    }
    if (strcmp(seg, "activitypointers") == 0) {
        activity_pointers(e, q, after, &pf, r);
        return;
    }
    if (strcmp(seg, "AddListMembersList") == 0 ||
        strcmp(seg, "Microsoft.Dynamics.CRM.AddListMembersList") == 0) {
        lists_add_members(e, q, r);
        return;
    }
    struct table *t = store_by_set(&e->store, seg);
    if (t == NULL) {
        do_action(e, q, r, seg, NULL);
        return;
    }
    if (*after == '\0') {
        if (strcmp(q->method, "GET") == 0) {
            query_collection(e, t, q, &pf, r);
        } else if (strcmp(q->method, "POST") == 0) {
            cJSON *body = parse_body(q, r);
            struct row *row;
            if (body && write_create(e, t, body, NULL, r, &row) == 0)
                reply_created(e, q, r, t, row, &pf, 201);
            cJSON_Delete(body);
        } else {
            api_error(r, 405, "0x0", "The HTTP method %s is not allowed on a collection.",
                      q->method);
        }
        return;
    }
    if (*after == '/') {
        const char *act = after + 1;
        if (strcmp(act, "Microsoft.Dynamics.CRM.CreateMultiple") == 0 &&
            strcmp(q->method, "POST") == 0)
            do_multiple(e, q, r, t, 0, 0);
        else if (strcmp(act, "Microsoft.Dynamics.CRM.UpdateMultiple") == 0 &&
                 strcmp(q->method, "POST") == 0)
            do_multiple(e, q, r, t, 1, 0);
        else if (strcmp(act, "Microsoft.Dynamics.CRM.UpsertMultiple") == 0 &&
                 strcmp(q->method, "POST") == 0)
            do_multiple(e, q, r, t, 1, 1);
        else
            api_error(r, 404, "0x80060888", "Resource not found for the segment '%s'.", act);
        return;
    }
    /* <set>(<key>)... */
    const char *close = strchr(after, ')');
    if (close == NULL) {
        api_error(r, 400, "0x80060888", "Bad Request - Error in query syntax.");
        return;
    }
    size_t kl = (size_t)(close - after - 1);
    if (!guid_valid(after + 1, kl)) {
        api_error(r, 400, "0x80060888",
                  "Bad Request - Error in query syntax: '%.*s' is not a valid key for '%s'.",
                  (int)kl, after + 1, t->set);
        return;
    }
    char id[37];
    memcpy(id, after + 1, 36);
    id[36] = '\0';
    guid_lower(id);
    const char *rest = close + 1;
    if (*rest == '/') {
        rest++;
        char nav[128];
        snprintf(nav, sizeof(nav), "%.*s", (int)strcspn(rest, "/("), rest);
        if (strcmp(t->logical, "queue") == 0 &&
            strcmp(rest, "Microsoft.Dynamics.CRM.AddToQueue") == 0) {
            do_add_to_queue(e, q, r, id);
        } else if (strcmp(t->logical, "systemuser") == 0 &&
                   strncmp(rest, "Microsoft.Dynamics.CRM.RetrieveUserPrivileges", 45) == 0) {
            privileges(e, q, r);
        } else if (strcmp(t->logical, "list") == 0 && strcmp(q->method, "POST") == 0 &&
                   (strcmp(rest, "Microsoft.Dynamics.CRM.AddMemberList") == 0 ||
                    strcmp(rest, "AddMemberList") == 0)) {
            lists_add_member(e, q, r, id);
        } else if (schema_assoc(nav)) {
            do_assoc(e, q, r, t, id, rest, &pf);
        } else {
            do_action(e, q, r, rest, id);
        }
        return;
    }
    if (*rest != '\0') {
        api_error(r, 400, "0x80060888", "Bad Request - Error in query syntax.");
        return;
    }
    struct row *row = store_get(t, id);
    if (strcmp(q->method, "GET") == 0) {
        if (row == NULL)
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", t->logical, id);
        else
            query_one(e, t, row, q, &pf, r);
    } else if (strcmp(q->method, "PATCH") == 0) {
        do_patch(e, q, r, t, id, &pf);
    } else if (strcmp(q->method, "DELETE") == 0) {
        if (store_delete(&e->store, t, id) != 0) {
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", t->logical, id);
        } else {
            r->status = 204;
            r->rows_written++;
            api_hdr(r, "OData-Version", "4.0");
        }
    } else {
        api_error(r, 405, "0x0", "The HTTP method %s is not allowed on a row.", q->method);
    }
}
