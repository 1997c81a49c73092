/* write.c - turning a JSON body into a stored row: column type checks,
 * @odata.bind lookups (polymorphic ones name their target in the
 * navigation property), inline activity parties, server-set columns. */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dvemu.h"
#include "smsys/util.h"

static void now_iso(char *out, size_t len)
{
    format_datetime((int64_t)time(NULL), out, len);
}

void write_stamp_modified(cJSON *obj)
{
    char now[32];
    now_iso(now, sizeof(now));
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "modifiedon");
    cJSON_AddStringToObject(obj, "modifiedon", now);
}

static void set_lookup(cJSON *obj, const char *col, const char *id, const char *lln)
{
    char key[200], k2[240];
    snprintf(key, sizeof(key), "_%s_value", col);
    snprintf(k2, sizeof(k2), "%s" LLN_SUFFIX, key);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, k2);
    if (id == NULL)
        return;
    cJSON_AddStringToObject(obj, key, id);
    cJSON_AddStringToObject(obj, k2, lln);
}

void write_defaults(struct emu *e, struct table *t, cJSON *obj, const char *id)
{
    char now[32];
    now_iso(now, sizeof(now));
    cJSON_DeleteItemFromObjectCaseSensitive(obj, t->pk);
    cJSON_AddStringToObject(obj, t->pk, id);
    cJSON_AddStringToObject(obj, "createdon", now);
    cJSON_AddStringToObject(obj, "modifiedon", now);
    set_lookup(obj, "createdby", e->user_id, "systemuser");
    set_lookup(obj, "modifiedby", e->user_id, "systemuser");
    if (t->user_owned)
        set_lookup(obj, "ownerid", e->user_id, "systemuser");
    cJSON_AddNumberToObject(obj, "statecode", 0);
    cJSON_AddNumberToObject(obj, "statuscode", 1);
    if (t->activity && table_column(t, "activitytypecode"))
        cJSON_AddStringToObject(obj, "activitytypecode", t->logical);
    if (strcmp(t->logical, "annotation") == 0)
        cJSON_AddFalseToObject(obj, "isdocument");
    if (strcmp(t->logical, "incident") == 0) {
        char tn[40];
        snprintf(tn, sizeof(tn), "CAS-%05u-%.6s", (unsigned)(e->store.version % 100000), id);
        cJSON_AddStringToObject(obj, "ticketnumber", tn);
    }
}

/* Splits "/contacts(<id>)" (or a full URL ending so) into set and id. */
static int parse_ref(const char *v, char *set, size_t setlen, char *id)
{
    const char *open = strrchr(v, '(');
    if (open == NULL)
        return -EINVAL;
    const char *close = strchr(open, ')');
    if (close == NULL || close - open - 1 != 36 || !guid_valid(open + 1, 36))
        return -EINVAL;
    const char *st = open;
    while (st > v && st[-1] != '/')
        st--;
    size_t n = (size_t)(open - st);
    if (n == 0 || n >= setlen)
        return -EINVAL;
    memcpy(set, st, n);
    set[n] = '\0';
    memcpy(id, open + 1, 36);
    id[36] = '\0';
    guid_lower(id);
    return 0;
}

static const struct column *bind_column(const struct table *t, const char *nav)
{
    const struct column *best = NULL;
    size_t bl = 0;
    for (size_t i = 0; i < t->ncols; i++) {
        const struct column *c = &t->cols[i];
        size_t n = strlen(c->name);
        /* custom lookups are bound by their SchemaName ("smsys_ContactId") */
        if (c->type != CT_LOOKUP || strncasecmp(nav, c->name, n) != 0)
            continue;
        if ((nav[n] == '\0' || nav[n] == '_') && n > bl) {
            best = c;
            bl = n;
        }
    }
    return best;
}

static int target_allowed(const struct column *c, const char *logical)
{
    if (c->targets == NULL || strcmp(c->targets, "*") == 0)
        return 1;
    size_t n = strlen(logical);
    for (const char *p = c->targets; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, logical, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int bad_payload(struct api_res *r, const struct table *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_payload(struct api_res *r, const struct table *t, const char *fmt, ...)
{
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    api_error(r, 400, "0x80048d19",
              "Error identified in Payload provided by the user for Entity :'%s', For more "
              "information on this error please follow this help link "
              "https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
              "Microsoft.OData.ODataException: %s",
              t->set, m);
    return -EINVAL;
}

/* Resolves one @odata.bind; sets the lookup in obj. */
static int apply_bind(struct emu *e, struct table *t, cJSON *obj, const char *nav, const cJSON *v,
                      struct api_res *r)
{
    const struct column *c = bind_column(t, nav);
    if (c == NULL)
        return bad_payload(r, t,
                           "An undeclared property '%s' which only has property annotations in "
                           "the payload but no property value was found in the payload. "
                           "(type 'Microsoft.Dynamics.CRM.%s')",
                           nav, t->logical);
    if (cJSON_IsNull(v)) {
        set_lookup(obj, c->name, NULL, NULL);
        return 0;
    }
    char set[128], id[37];
    if (!cJSON_IsString(v) || parse_ref(v->valuestring, set, sizeof(set), id) != 0) {
        api_error(r, 400, "0x80060891",
                  "A URL was provided for the navigation property '%s' that is not valid.", nav);
        return -EINVAL;
    }
    struct table *tt = store_by_set(&e->store, set);
    if (tt == NULL) {
        api_error(r, 400, "0x80060888", "Resource not found for the segment '%s'.", set);
        return -EINVAL;
    }
    if (!target_allowed(c, tt->logical)) {
        api_error(r, 400, "0x80060891",
                  "The navigation property '%s' cannot refer to a '%s' record.", nav, tt->logical);
        return -EINVAL;
    }
    if (store_get(tt, id) == NULL) {
        api_error(r, 404, "0x80040217", "%s With Id = %s Does Not Exist", tt->logical, id);
        return -ENOENT;
    }
    set_lookup(obj, c->name, id, tt->logical);
    /* a note's objecttypecode follows its objectid, as Dataverse sets it */
    if (strcmp(t->logical, "annotation") == 0 && strcmp(c->name, "objectid") == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "objecttypecode");
        cJSON_AddStringToObject(obj, "objecttypecode", tt->logical);
    }
    return 0;
}

static int apply_parties(struct emu *e, struct table *t, cJSON *obj, const cJSON *arr,
                         struct api_res *r)
{
    struct table *pt = store_by_logical(&e->store, "activityparty");
    if (!cJSON_IsArray(arr) || pt == NULL)
        return bad_payload(r, t, "The property '%s_activity_parties' must be a collection.",
                           t->logical);
    cJSON *parties = cJSON_CreateArray();
    const cJSON *p;
    const cJSON *pkv = cJSON_GetObjectItemCaseSensitive(obj, t->pk);
    cJSON_ArrayForEach(p, arr)
    {
        cJSON *po = cJSON_CreateObject();
        char pid[37];
        util_uuid4(pid);
        cJSON_AddStringToObject(po, "activitypartyid", pid);
        if (cJSON_IsString(pkv))
            set_lookup(po, "activityid", pkv->valuestring, t->logical);
        const cJSON *f;
        int rc = 0;
        cJSON_ArrayForEach(f, p)
        {
            size_t kl = strlen(f->string);
            if (kl > 11 && strcmp(f->string + kl - 11, "@odata.bind") == 0) {
                char nav[128];
                snprintf(nav, sizeof(nav), "%.*s", (int)(kl - 11), f->string);
                rc = apply_bind(e, pt, po, nav, f, r);
            } else if (f->string[0] == '@') {
                continue;
            } else if (strcmp(f->string, "participationtypemask") == 0 && cJSON_IsNumber(f)) {
                cJSON_AddNumberToObject(po, f->string, f->valuedouble);
            } else if (strcmp(f->string, "addressused") == 0 && cJSON_IsString(f)) {
                cJSON_AddStringToObject(po, f->string, f->valuestring);
            } else {
                rc = bad_payload(r, pt,
                                 "The property '%s' does not exist on type "
                                 "'Microsoft.Dynamics.CRM.%s'.",
                                 f->string, pt->logical);
            }
            if (rc)
                break;
        }
        if (rc) {
            cJSON_Delete(po);
            cJSON_Delete(parties);
            return rc;
        }
        cJSON_AddItemToArray(parties, po);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, PARTIES_KEY);
    cJSON_AddItemToObject(obj, PARTIES_KEY, parties);
    return 0;
}

static const char *edm_name(enum col_type ty)
{
    switch (ty) {
    case CT_INT:
    case CT_CHOICE:
        return "Edm.Int32";
    case CT_BIGINT:
        return "Edm.Int64";
    case CT_DECIMAL:
        return "Edm.Decimal";
    case CT_BOOL:
        return "Edm.Boolean";
    case CT_DATETIME:
        return "Edm.DateTimeOffset";
    case CT_GUID:
        return "Edm.Guid";
    default:
        return "Edm.String";
    }
}

static int apply_value(struct table *t, cJSON *obj, const struct column *c, const cJSON *v,
                       struct api_res *r)
{
    cJSON *nv = NULL;
    if (cJSON_IsNull(v)) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, c->name);
        return 0;
    }
    switch (c->type) {
    case CT_STRING:
    case CT_MEMO:
        if (cJSON_IsString(v))
            nv = cJSON_CreateString(v->valuestring);
        break;
    case CT_INT:
    case CT_BIGINT:
    case CT_CHOICE:
        if (cJSON_IsNumber(v) && floor(v->valuedouble) == v->valuedouble)
            nv = cJSON_CreateNumber(v->valuedouble);
        break;
    case CT_DECIMAL:
        if (cJSON_IsNumber(v))
            nv = cJSON_CreateNumber(v->valuedouble);
        break;
    case CT_BOOL:
        if (cJSON_IsBool(v))
            nv = cJSON_CreateBool(cJSON_IsTrue(v));
        break;
    case CT_DATETIME:
        if (cJSON_IsString(v)) {
            int ok;
            int64_t s = parse_datetime(v->valuestring, &ok);
            if (ok) {
                char iso[32];
                format_datetime(s, iso, sizeof(iso));
                nv = cJSON_CreateString(iso);
            }
        }
        break;
    case CT_GUID:
    case CT_LOOKUP:
        break;
    }
    if (nv == NULL) {
        char *txt = cJSON_PrintUnformatted(v);
        char msg[300];
        snprintf(msg, sizeof(msg), "Cannot convert the literal '%.100s' to the expected type '%s'.",
                 txt ? txt : "?", edm_name(c->type));
        free(txt);
        api_error(r, 400, "0x80048d19", "%s", msg);
        return -EINVAL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, c->name);
    cJSON_AddItemToObject(obj, c->name, nv);
    return 0;
}

static void compute_fullname(struct table *t, cJSON *obj)
{
    if (!table_column(t, "fullname") || !table_column(t, "firstname"))
        return;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "firstname");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, "lastname");
    struct buf b = BUF_INIT;
    if (cJSON_IsString(f))
        buf_puts(&b, f->valuestring);
    if (cJSON_IsString(l))
        buf_printf(&b, "%s%s", b.len ? " " : "", l->valuestring);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "fullname");
    if (b.len)
        cJSON_AddStringToObject(obj, "fullname", b.data);
    buf_free(&b);
}

int write_apply(struct emu *e, struct table *t, cJSON *obj, const cJSON *body, int create,
                struct api_res *r)
{
    if (!cJSON_IsObject(body)) {
        api_error(r, 400, "0x80048d19", "The request body must be a JSON object.");
        return -EINVAL;
    }
    char parties_key[96];
    snprintf(parties_key, sizeof(parties_key), "%s_activity_parties", t->logical);
    int state_set = 0, status_set = 0, names = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        const char *k = f->string;
        size_t kl = strlen(k);
        int rc = 0;
        if (kl > 11 && strcmp(k + kl - 11, "@odata.bind") == 0) {
            char nav[128];
            snprintf(nav, sizeof(nav), "%.*s", (int)(kl - 11), k);
            rc = apply_bind(e, t, obj, nav, f, r);
        } else if (k[0] == '@' || strchr(k, '@')) {
            continue; /* @odata.type, @odata.etag and other annotations */
        } else if (t->activity && strcmp(k, parties_key) == 0) {
            rc = apply_parties(e, t, obj, f, r);
        } else {
            const struct column *c = table_column(t, k);
            if (c == NULL || c->type == CT_LOOKUP)
                return bad_payload(r, t,
                                   "The property '%s' does not exist on type "
                                   "'Microsoft.Dynamics.CRM.%s'. Make sure to only use property "
                                   "names that are defined by the type or mark the type as open "
                                   "type.",
                                   k, t->logical);
            if (c->type == CT_GUID || c->readonly)
                continue;
            rc = apply_value(t, obj, c, f, r);
            if (strcmp(k, "statecode") == 0)
                state_set = 1;
            if (strcmp(k, "statuscode") == 0)
                status_set = 1;
            if (strcmp(k, "firstname") == 0 || strcmp(k, "lastname") == 0)
                names = 1;
        }
        if (rc)
            return rc;
    }
    if (state_set && !status_set) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(obj, "statecode");
        int s = cJSON_IsNumber(sc) ? sc->valueint : 0;
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "statuscode");
        cJSON_AddNumberToObject(obj, "statuscode", t->activity ? s + 1 : s + 1);
    }
    if (names || create)
        compute_fullname(t, obj);
    set_lookup(obj, "modifiedby", e->user_id, "systemuser");
    if (!create)
        write_stamp_modified(obj);
    /* the row as it would be stored: a fault rule may refuse it */
    return faults_check(e, t, obj, r);
}

/* Creates a row from body. The id comes from the body's primary key, else
 * want_id, else a new GUID. On success *out is the stored row. */
int write_create(struct emu *e, struct table *t, const cJSON *body, const char *want_id,
                 struct api_res *r, struct row **out)
{
    char id[37];
    const cJSON *pk = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, t->pk) : NULL;
    if (cJSON_IsString(pk) && guid_valid(pk->valuestring, strlen(pk->valuestring))) {
        memcpy(id, pk->valuestring, 37);
    } else if (want_id) {
        memcpy(id, want_id, 37);
    } else {
        util_uuid4(id);
    }
    guid_lower(id);
    if (store_get(t, id)) {
        api_error(r, 412, "0x80040237", "A record with matching key values already exists.");
        return -EEXIST;
    }
    cJSON *obj = cJSON_CreateObject();
    write_defaults(e, t, obj, id);
    if (write_apply(e, t, obj, body, 1, r) != 0) {
        cJSON_Delete(obj);
        return -EINVAL;
    }
    struct row *row = store_put(&e->store, t, id, obj);
    if (row == NULL) {
        api_error(r, 500, "0x80040216", "Out of memory.");
        return -ENOMEM;
    }
    r->rows_written++;
    *out = row;
    return 0;
}
