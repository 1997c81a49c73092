/* dataverse_ops.c - the single-row helpers (dv_create, dv_patch,
 * dv_delete, dv_whoami): thin wrappers that build the path, pick the retry
 * safety and turn a struct dv_result into what the caller needs. */
#include "dataverse_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/buf.h"
#include "smsys/odata.h"

/* ---- single-row helpers ---- */

struct op {
    struct dv_client *c;
    void (*fn)(void);
    void *ud;
};

static struct op *op_new(struct dv_client *c, void (*fn)(void), void *ud)
{
    struct op *o = calloc(1, sizeof *o);
    if (o) {
        o->c = c;
        o->fn = fn;
        o->ud = ud;
    }
    return o;
}

static int start(struct dv_client *c, const struct dv_call *call, dv_done_cb done, struct op *o)
{
    if (o == NULL)
        return -ENOMEM;
    int rc = dv_request_ex(c, call, done, o);
    if (rc < 0)
        free(o);
    return rc;
}

static void create_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct op *o = ud;
    dv_id_cb cb = (dv_id_cb)o->fn;
    char id[37] = "";
    if (rc == 0) {
        const char *eid = NULL;
        for (size_t i = 0; i < res->n_headers && !eid; i++)
            if (strcasecmp(res->headers[i].name, "OData-EntityId") == 0)
                eid = res->headers[i].value;
        if (eid == NULL || odata_entity_id(eid, id) < 0) {
            /* return=representation answers 201 with the row instead */
            rc = smsys_err_set(&res->err, SMSYS_EPROTO,
                               "create: no usable OData-EntityId in the answer");
        }
    }
    cb(rc, id, rc < 0 ? &res->err : NULL, o->ud);
    free(o);
}

int dv_create(struct dv_client *c, const char *entity_set, const char *json, int client_id_in_body,
              dv_id_cb cb, void *ud)
{
    if (entity_set == NULL || json == NULL || cb == NULL)
        return -EINVAL;
    struct dv_call call = {.method = "POST",
                           .path = entity_set,
                           .body = json,
                           .retry = client_id_in_body ? DV_RETRY_SAFE : DV_RETRY_AUTO};
    return start(c, &call, create_done_cb, op_new(c, (void (*)(void))cb, ud));
}

static void status_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct op *o = ud;
    ((dv_status_cb)o->fn)(rc, rc < 0 ? &res->err : NULL, o->ud);
    free(o);
}

static int row_path(struct buf *p, const char *set, const char *id)
{
    if (set == NULL || strpbrk(set, "/?#() ") || *set == '\0')
        return -EINVAL;
    int rc = buf_printf(p, "%s(", set);
    if (rc == 0)
        rc = odata_lit_guid(p, id);
    if (rc == 0)
        rc = buf_putc(p, ')');
    return rc;
}

int dv_patch(struct dv_client *c, const char *entity_set, const char *id, const char *json,
             const char *if_match, dv_status_cb cb, void *ud)
{
    struct buf p = BUF_INIT;
    if (json == NULL || cb == NULL)
        return -EINVAL;
    int rc = row_path(&p, entity_set, id);
    if (rc == 0) {
        struct dv_call call = {
            .method = "PATCH", .path = p.data, .body = json, .if_match = if_match};
        rc = start(c, &call, status_done_cb, op_new(c, (void (*)(void))cb, ud));
    }
    buf_free(&p);
    return rc;
}

int dv_delete(struct dv_client *c, const char *entity_set, const char *id, dv_status_cb cb,
              void *ud)
{
    struct buf p = BUF_INIT;
    if (cb == NULL)
        return -EINVAL;
    int rc = row_path(&p, entity_set, id);
    if (rc == 0) {
        struct dv_call call = {.method = "DELETE", .path = p.data};
        rc = start(c, &call, status_done_cb, op_new(c, (void (*)(void))cb, ud));
    }
    buf_free(&p);
    return rc;
}

static void copy_guid(const cJSON *j, const char *name, char out[37])
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    snprintf(out, 37, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static void whoami_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct op *o = ud;
    struct dv_whoami w;
    memset(&w, 0, sizeof w);
    if (rc == 0) {
        copy_guid(res->json, "UserId", w.user_id);
        copy_guid(res->json, "BusinessUnitId", w.business_unit_id);
        copy_guid(res->json, "OrganizationId", w.organization_id);
        if (w.user_id[0] == '\0')
            rc = smsys_err_set(&res->err, SMSYS_EPROTO, "WhoAmI: no UserId in the answer");
    }
    ((dv_whoami_cb)o->fn)(rc, rc == 0 ? &w : NULL, rc < 0 ? &res->err : NULL, o->ud);
    free(o);
}

int dv_whoami(struct dv_client *c, dv_whoami_cb cb, void *ud)
{
    if (cb == NULL)
        return -EINVAL;
    struct dv_call call = {.method = "GET", .path = "WhoAmI"};
    return start(c, &call, whoami_done_cb, op_new(c, (void (*)(void))cb, ud));
}

int dv_note_create(struct dv_client *c, const char *logical, const char *entity_set, const char *id,
                   const char *note_id, const char *subject, const char *text, dv_id_cb cb,
                   void *ud)
{
    if (logical == NULL || entity_set == NULL || id == NULL || subject == NULL || text == NULL)
        return -EINVAL;
    char nav[128], bind[192];
    if ((size_t)snprintf(nav, sizeof(nav), "objectid_%s@odata.bind", logical) >= sizeof(nav) ||
        (size_t)snprintf(bind, sizeof(bind), "/%s(%s)", entity_set, id) >= sizeof(bind))
        return -EINVAL;
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    if (o && (note_id == NULL || cJSON_AddStringToObject(o, "annotationid", note_id)) &&
        cJSON_AddStringToObject(o, "subject", subject) &&
        cJSON_AddStringToObject(o, "notetext", text) && cJSON_AddStringToObject(o, nav, bind))
        json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json == NULL)
        return -ENOMEM;
    int rc = dv_create(c, "annotations", json, note_id != NULL, cb, ud);
    free(json);
    return rc;
}
