/* metadata.c - the metadata calls a schema deploy makes: create tables
 * (POST EntityDefinitions), columns (POST .../Attributes), lookups (POST
 * RelationshipDefinitions, one-to-many), PublishXml, and reading a table's
 * definition back (EntityDefinitions(LogicalName='x')?$select=EntitySetName).
 * Every call is recorded for GET /_emu/metadata; a created table is usable
 * through its entity set at once. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dvemu.h"
#include "smsys/util.h"

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void record(struct emu *e, const struct api_req *q, const cJSON *body)
{
    cJSON *c = cJSON_CreateObject();
    char now[32];
    format_datetime((int64_t)time(NULL), now, sizeof(now));
    cJSON_AddStringToObject(c, "at", now);
    cJSON_AddStringToObject(c, "method", q->method);
    cJSON_AddStringToObject(c, "path", q->path);
    const char *sol = q->header ? q->header(q->header_ud, "MSCRM.SolutionUniqueName") : NULL;
    if (sol)
        cJSON_AddStringToObject(c, "solution", sol);
    if (body)
        cJSON_AddItemToObject(c, "body", cJSON_Duplicate(body, 1));
    cJSON_AddItemToArray(e->metadata_log, c);
}

static int attr_type(const char *odata_type, enum col_type *out)
{
    static const struct {
        const char *name;
        enum col_type t;
    } map[] = {
        {"StringAttributeMetadata", CT_STRING},     {"MemoAttributeMetadata", CT_MEMO},
        {"IntegerAttributeMetadata", CT_INT},       {"BigIntAttributeMetadata", CT_BIGINT},
        {"DecimalAttributeMetadata", CT_DECIMAL},   {"MoneyAttributeMetadata", CT_DECIMAL},
        {"DoubleAttributeMetadata", CT_DECIMAL},    {"BooleanAttributeMetadata", CT_BOOL},
        {"DateTimeAttributeMetadata", CT_DATETIME}, {"PicklistAttributeMetadata", CT_CHOICE},
        {"StateAttributeMetadata", CT_CHOICE},      {"StatusAttributeMetadata", CT_CHOICE},
        {"LookupAttributeMetadata", CT_LOOKUP},     {"UniqueIdentifierAttributeMetadata", CT_GUID},
    };
    const char *p = odata_type ? strrchr(odata_type, '.') : NULL;
    p = p ? p + 1 : odata_type;
    for (size_t i = 0; p && i < ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, p) == 0) {
            *out = map[i].t;
            return 0;
        }
    return -EINVAL;
}

static int logical_of(const cJSON *md, char *out, size_t len)
{
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "LogicalName"));
    if (n == NULL)
        n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "SchemaName"));
    if (n == NULL || *n == '\0' || strlen(n) >= len)
        return -EINVAL;
    snprintf(out, len, "%s", n);
    lower(out);
    return 0;
}

static int add_attribute(struct table *t, const cJSON *a, struct api_res *r)
{
    char name[128];
    enum col_type ty;
    const char *ot = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "@odata.type"));
    if (logical_of(a, name, sizeof(name)) != 0 || attr_type(ot, &ty) != 0) {
        api_error(r, 400, "0x80044355",
                  "The attribute needs a SchemaName and a supported @odata.type (got '%s').",
                  ot ? ot : "");
        return -EINVAL;
    }
    if (table_column(t, name)) {
        api_error(r, 400, "0x80044355", "An attribute with the name '%s' already exists on '%s'.",
                  name, t->logical);
        return -EEXIST;
    }
    return table_add_column(t, name, ty, ty == CT_LOOKUP ? "*" : NULL);
}

/* "EntityDefinitions(LogicalName='x')" or "EntityDefinitions(<metadataid>)" -> table. */
static struct table *entity_from_key(struct emu *e, const char *key, size_t len)
{
    char k[200];
    snprintf(k, sizeof(k), "%.*s", (int)len, key);
    if (strncmp(k, "LogicalName=", 12) == 0) {
        char *v = k + 12;
        if (*v == '\'')
            v++;
        size_t vl = strlen(v);
        if (vl && v[vl - 1] == '\'')
            v[vl - 1] = '\0';
        return store_by_logical(&e->store, v);
    }
    for (size_t i = 0; i < e->store.ntables; i++)
        if (strcasecmp(e->store.tables[i]->metadata_id, k) == 0)
            return e->store.tables[i];
    return NULL;
}

static cJSON *entity_json(const struct table *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "MetadataId", t->metadata_id);
    cJSON_AddStringToObject(o, "LogicalName", t->logical);
    cJSON_AddStringToObject(o, "SchemaName", t->logical);
    cJSON_AddStringToObject(o, "EntitySetName", t->set);
    cJSON_AddStringToObject(o, "LogicalCollectionName", t->set);
    cJSON_AddStringToObject(o, "PrimaryIdAttribute", t->pk);
    cJSON_AddStringToObject(o, "PrimaryNameAttribute", t->primary_name);
    cJSON_AddBoolToObject(o, "IsActivity", t->activity);
    cJSON_AddBoolToObject(o, "IsCustomEntity", t->custom != 0);
    cJSON_AddBoolToObject(o, "ChangeTrackingEnabled", 1);
    cJSON_AddStringToObject(o, "OwnershipType", t->user_owned ? "UserOwned" : "OrganizationOwned");
    return o;
}

static cJSON *select_fields(cJSON *o, const char *sel)
{
    if (sel == NULL || *sel == '\0')
        return o;
    cJSON *n = cJSON_CreateObject();
    cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        char pat[200];
        snprintf(pat, sizeof(pat), ",%s,", it->string);
        char wrapped[1200];
        snprintf(wrapped, sizeof(wrapped), ",%s,", sel);
        if (strstr(wrapped, pat) || strcmp(it->string, "MetadataId") == 0)
            cJSON_AddItemToObject(n, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_Delete(o);
    return n;
}

static void reply(struct api_res *r, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    r->status = status;
    r->ctype = "application/json; odata.metadata=minimal";
    buf_reset(&r->body);
    buf_puts(&r->body, s ? s : "{}");
    free(s);
    api_hdr(r, "OData-Version", "4.0");
}

static void created(struct api_res *r, const struct api_req *q, const char *what)
{
    r->status = 204;
    api_hdr(r, "OData-Version", "4.0");
    api_hdr(r, "OData-EntityId", "%s%s", q->base, what);
}

static void create_entity(struct emu *e, const struct api_req *q, const cJSON *b, struct api_res *r)
{
    char logical[128];
    if (logical_of(b, logical, sizeof(logical)) != 0) {
        api_error(r, 400, "0x80044355", "EntityMetadata needs a SchemaName.");
        return;
    }
    if (store_by_logical(&e->store, logical)) {
        api_error(r, 400, "0x80044363",
                  "An entity with the specified name already exists: '%s'. Please specify a "
                  "unique name.",
                  logical);
        return;
    }
    int activity = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "IsActivity"));
    char set[140], pk[160], prim[128] = "";
    schema_pluralize(logical, set, sizeof(set));
    const char *own = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "OwnershipType"));
    snprintf(pk, sizeof(pk), "%s", activity ? "activityid" : logical);
    if (!activity)
        snprintf(pk, sizeof(pk), "%sid", logical);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(b, "Attributes"))
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "IsPrimaryName")))
            logical_of(a, prim, sizeof(prim));
    }
    struct table *t = schema_table_new(logical, set, pk, prim, activity);
    if (t == NULL) {
        api_error(r, 500, "0x0", "out of memory");
        return;
    }
    t->custom = 2;
    t->user_owned = own == NULL || strcmp(own, "UserOwned") == 0;
    if (t->user_owned)
        table_add_column(t, "ownerid", CT_LOOKUP, "systemuser,team");
    if (activity) {
        static const char *ac[] = {"subject",      "description", "scheduledstart",
                                   "scheduledend", "actualstart", "actualend"};
        static const enum col_type at[] = {CT_STRING,   CT_MEMO,     CT_DATETIME,
                                           CT_DATETIME, CT_DATETIME, CT_DATETIME};
        for (size_t i = 0; i < ARRAY_LEN(ac); i++)
            table_add_column(t, ac[i], at[i], NULL);
        table_add_column(t, "regardingobjectid", CT_LOOKUP, "*");
        table_add_column(t, "activitytypecode", CT_STRING, NULL);
        table_add_column(t, "prioritycode", CT_CHOICE, NULL);
    }
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(b, "Attributes"))
    {
        char name[128];
        if (logical_of(a, name, sizeof(name)) == 0 && table_column(t, name))
            continue;
        struct api_res tmp;
        api_res_init(&tmp);
        add_attribute(t, a, &tmp);
        api_res_free(&tmp);
    }
    if (store_add_table(&e->store, t) != 0) {
        api_error(r, 500, "0x0", "out of memory");
        return;
    }
    journal_table(e->journal, t);
    char what[200];
    snprintf(what, sizeof(what), "EntityDefinitions(%s)", t->metadata_id);
    created(r, q, what);
    r->rows_written++;
}

static void create_relationship(struct emu *e, const struct api_req *q, const cJSON *b,
                                struct api_res *r)
{
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "ReferencedEntity"));
    const char *refing =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "ReferencingEntity"));
    const cJSON *lk = cJSON_GetObjectItemCaseSensitive(b, "Lookup");
    char name[128];
    struct table *t = refing ? store_by_logical(&e->store, refing) : NULL;
    if (ref == NULL || t == NULL || logical_of(lk, name, sizeof(name)) != 0) {
        api_error(r, 400, "0x80044355",
                  "OneToManyRelationshipMetadata needs ReferencedEntity, an existing "
                  "ReferencingEntity and Lookup.SchemaName.");
        return;
    }
    if (table_column(t, name) == NULL) {
        table_add_column(t, name, CT_LOOKUP, ref);
        journal_table(e->journal, t);
    }
    char what[200], id[37];
    util_uuid4(id);
    snprintf(what, sizeof(what), "RelationshipDefinitions(%s)", id);
    created(r, q, what);
    r->rows_written++;
}

void metadata_exec(struct emu *e, const struct api_req *q, const char *path, struct api_res *r)
{
    cJSON *body = NULL;
    int post = strcmp(q->method, "POST") == 0;
    if (post || strcmp(q->method, "PUT") == 0) {
        body = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
        if (body == NULL && strncmp(path, "Publish", 7) != 0) {
            api_error(r, 400, "0x80048d19", "The metadata request body is not valid JSON.");
            return;
        }
    }
    if (post)
        record(e, q, body);
    char *sel = query_param(q->query, "$select");
    if (strncmp(path, "Publish", 7) == 0 && post) {
        r->status = 204;
        api_hdr(r, "OData-Version", "4.0");
    } else if (strcmp(path, "EntityDefinitions") == 0) {
        if (post) {
            create_entity(e, q, body, r);
        } else {
            cJSON *o = cJSON_CreateObject();
            char ctx[400];
            snprintf(ctx, sizeof(ctx), "%s$metadata#EntityDefinitions", q->base);
            cJSON_AddStringToObject(o, "@odata.context", ctx);
            cJSON *v = cJSON_AddArrayToObject(o, "value");
            for (size_t i = 0; i < e->store.ntables; i++)
                cJSON_AddItemToArray(v, select_fields(entity_json(e->store.tables[i]), sel));
            reply(r, 200, o);
            cJSON_Delete(o);
        }
    } else if (strcmp(path, "RelationshipDefinitions") == 0 && post) {
        create_relationship(e, q, body, r);
    } else if (strncmp(path, "EntityDefinitions(", 18) == 0) {
        const char *close = strchr(path, ')');
        struct table *t = close ? entity_from_key(e, path + 18, (size_t)(close - path - 18)) : NULL;
        const char *rest = close ? close + 1 : "";
        if (t == NULL) {
            api_error(r, 404, "0x80040217", "Could not find an entity matching '%s'.", path + 17);
        } else if (*rest == '\0' && !post) {
            cJSON *o = select_fields(entity_json(t), sel);
            char ctx[400];
            snprintf(ctx, sizeof(ctx), "%s$metadata#EntityDefinitions(%s)/$entity", q->base,
                     sel ? sel : "");
            cJSON_AddStringToObject(o, "@odata.context", ctx);
            reply(r, 200, o);
            cJSON_Delete(o);
        } else if (strcmp(rest, "/Attributes") == 0 && post) {
            if (add_attribute(t, body, r) == 0) {
                journal_table(e->journal, t);
                char what[200], id[37];
                util_uuid4(id);
                snprintf(what, sizeof(what), "EntityDefinitions(%s)/Attributes(%s)", t->metadata_id,
                         id);
                created(r, q, what);
                r->rows_written++;
            }
        } else if (strncmp(rest, "/Attributes", 11) == 0 && !post) {
            cJSON *o = cJSON_CreateObject();
            cJSON *v = cJSON_AddArrayToObject(o, "value");
            static const char *tn[] = {"Uniqueidentifier", "String",  "Memo",    "Integer",
                                       "BigInt",           "Decimal", "Boolean", "DateTime",
                                       "Picklist",         "Lookup"};
            for (size_t i = 0; i < t->ncols; i++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "LogicalName", t->cols[i].name);
                cJSON_AddStringToObject(c, "AttributeType", tn[t->cols[i].type]);
                cJSON_AddItemToArray(v, c);
            }
            reply(r, 200, o);
            cJSON_Delete(o);
        } else {
            api_error(r, 405, "0x80060888", "The metadata request '%s' is not supported.", path);
        }
    } else {
        api_error(r, 404, "0x80060888", "Resource not found for the segment '%s'.", path);
    }
    free(sel);
    cJSON_Delete(body);
}
