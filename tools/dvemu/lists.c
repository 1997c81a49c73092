/* lists.c - marketing-list membership actions and the membercount column.
 *
 * Dataverse offers three ways to add members to a static list: the N:N
 * `$ref` (api.c), the bound `lists(<id>)/Microsoft.Dynamics.CRM.
 * AddMemberList {"EntityId":...}` and the unbound `AddListMembersList`
 * (many members in one request). The member table follows the list's
 * createdfromcode (1 account, 2 contact, 4 lead). Adding a member that is
 * already in the list changes nothing, as in Dynamics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvemu.h"
#include "smsys/util.h"

/* Member table of a list row: createdfromcode 1/2/4, contact when unset. */
static const char *member_logical(const struct row *list)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(list->obj, "createdfromcode");
    if (cJSON_IsNumber(c) && c->valueint == 1)
        return "account";
    if (cJSON_IsNumber(c) && c->valueint == 4)
        return "lead";
    return "contact";
}

void lists_sync_count(struct emu *e, const char *nav, const char *list_id)
{
    if (strncmp(nav, "list", 4) != 0 || strcmp(nav, "campaignlist_association") == 0)
        return;
    struct table *lt = store_by_logical(&e->store, "list");
    struct row *row = lt ? store_get(lt, list_id) : NULL;
    if (row == NULL)
        return;
    const struct linkset *ls = store_links(&e->store, nav, list_id);
    double n = ls ? (double)ls->n : 0;
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(row->obj, "membercount");
    if (cJSON_IsNumber(old) && old->valuedouble == n)
        return;
    cJSON *obj = cJSON_Duplicate(row->obj, 1);
    if (obj == NULL)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "membercount");
    cJSON_AddNumberToObject(obj, "membercount", n);
    write_stamp_modified(obj);
    store_put(&e->store, lt, list_id, obj);
}

/* A GUID given as a string, or as {"<pk>":..} / {"@odata.id":"...(<id>)"}.
 * Writes the lower-case id to out; 0 or -EINVAL. */
static int param_id(const cJSON *v, const char *pk, char out[37])
{
    const char *s = NULL;
    if (cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (cJSON_IsObject(v)) {
        const cJSON *k = pk ? cJSON_GetObjectItemCaseSensitive(v, pk) : NULL;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(v, "@odata.id");
        if (cJSON_IsString(k)) {
            s = k->valuestring;
        } else if (cJSON_IsString(ref)) {
            const char *op = strrchr(ref->valuestring, '(');
            s = op ? op + 1 : NULL;
        }
    }
    if (s == NULL || !guid_valid(s, 36) || (s[36] != '\0' && s[36] != ')'))
        return -EINVAL;
    memcpy(out, s, 36);
    out[36] = '\0';
    guid_lower(out);
    return 0;
}

static void no_content(struct api_res *r)
{
    r->status = 204;
    r->ctype = NULL;
    buf_reset(&r->body);
    api_hdr(r, "OData-Version", "4.0");
}

static struct row *find_list(struct emu *e, const char *id, struct api_res *r)
{
    struct table *lt = store_by_logical(&e->store, "list");
    struct row *row = lt ? store_get(lt, id) : NULL;
    if (row == NULL)
        api_error(r, 404, "0x80040217", "list With Id = %s Does Not Exist", id);
    return row;
}

/* POST lists(<id>)/Microsoft.Dynamics.CRM.AddMemberList {"EntityId":"<guid>"}
 * -> {"Id":"<list member id>"}. */
void lists_add_member(struct emu *e, const struct api_req *q, struct api_res *r,
                      const char *list_id)
{
    struct row *list = find_list(e, list_id, r);
    if (list == NULL)
        return;
    cJSON *body = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
    char mid[37];
    const char *ml = member_logical(list);
    struct table *mt = store_by_logical(&e->store, ml);
    if (param_id(cJSON_GetObjectItemCaseSensitive(body, "EntityId"), NULL, mid) != 0) {
        api_error(r, 400, "0x80040203", "AddMemberList needs an EntityId (a GUID).");
    } else if (mt == NULL || store_get(mt, mid) == NULL) {
        api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", ml, mid);
    } else {
        char nav[64];
        snprintf(nav, sizeof(nav), "list%s_association", ml);
        if (store_link(&e->store, nav, list_id, mid) != 0) {
            api_error(r, 500, "0x80040216", "Out of memory.");
        } else {
            lists_sync_count(e, nav, list_id);
            r->rows_written++;
            /* the listmember row is not emulated: a stable id derived from
             * the pair is enough for a caller that only logs it */
            char lmid[37];
            memcpy(lmid, mid, 37);
            memcpy(lmid, list_id, 8);
            cJSON *o = cJSON_CreateObject();
            char ctx[512];
            snprintf(ctx, sizeof(ctx), "%s$metadata#Microsoft.Dynamics.CRM.AddMemberListResponse",
                     q->base);
            cJSON_AddStringToObject(o, "@odata.context", ctx);
            cJSON_AddStringToObject(o, "Id", lmid);
            char *s = cJSON_PrintUnformatted(o);
            r->status = 200;
            r->ctype = "application/json; odata.metadata=minimal";
            buf_reset(&r->body);
            buf_puts(&r->body, s ? s : "{}");
            free(s);
            api_hdr(r, "OData-Version", "4.0");
            cJSON_Delete(o);
        }
    }
    cJSON_Delete(body);
}

/* POST AddListMembersList {"ListId":"<guid>","MemberIds":["<guid>",...]}
 * (also the older shape {"List":{"listid":..},"Members":[{"contactid":..,
 * "@odata.type":..},...]}) -> 204. All or nothing: an unknown member
 * fails the request before any link is made. */
void lists_add_members(struct emu *e, const struct api_req *q, struct api_res *r)
{
    if (strcmp(q->method, "POST") != 0) {
        api_error(r, 405, "0x0", "AddListMembersList must be POSTed.");
        return;
    }
    cJSON *body = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
    if (body == NULL) {
        api_error(r, 400, "0x80048d19",
                  "Error identified in Payload provided by the user: the request body is not "
                  "valid JSON.");
        return;
    }
    char lid[37];
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(body, "ListId");
    if (lv == NULL)
        lv = cJSON_GetObjectItemCaseSensitive(body, "List");
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(body, "MemberIds");
    if (mv == NULL)
        mv = cJSON_GetObjectItemCaseSensitive(body, "Members");
    struct row *list = NULL;
    char(*ids)[37] = NULL;
    if (param_id(lv, "listid", lid) != 0 || !cJSON_IsArray(mv)) {
        api_error(r, 400, "0x80040203",
                  "AddListMembersList needs ListId (a GUID) and MemberIds (an array of GUIDs).");
        goto out;
    }
    if ((list = find_list(e, lid, r)) == NULL)
        goto out;
    const char *ml = member_logical(list);
    struct table *mt = store_by_logical(&e->store, ml);
    char pk[64];
    snprintf(pk, sizeof(pk), "%sid", ml);
    int n = cJSON_GetArraySize(mv);
    ids = calloc(n ? (size_t)n : 1, sizeof(*ids));
    if (ids == NULL || mt == NULL) {
        api_error(r, 500, "0x80040216", "Out of memory.");
        goto out;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, mv)
    {
        if (param_id(it, pk, ids[i]) != 0) {
            api_error(r, 400, "0x80040203", "MemberIds[%d] is not a GUID.", i);
            goto out;
        }
        if (store_get(mt, ids[i]) == NULL) {
            api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", ml, ids[i]);
            goto out;
        }
        i++;
    }
    char nav[64];
    snprintf(nav, sizeof(nav), "list%s_association", ml);
    for (i = 0; i < n; i++) {
        if (store_link(&e->store, nav, lid, ids[i]) != 0) {
            api_error(r, 500, "0x80040216", "Out of memory.");
            lists_sync_count(e, nav, lid);
            goto out;
        }
    }
    lists_sync_count(e, nav, lid);
    r->rows_written += n;
    no_content(r);
out:
    free(ids);
    cJSON_Delete(body);
}
