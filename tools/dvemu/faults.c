/* faults.c - rules that make dvemu refuse chosen rows the way Dataverse
 * refuses a bad one (POST / GET / DELETE /_emu/faults, docs/dvemu.md).
 *
 * A rule names an entity set and column values; any create or update whose
 * resulting row has all of them fails with the rule's status, code and
 * message. The check runs where every write turns a body into a row
 * (write_apply), so single POST / PATCH, *Multiple and $batch changesets
 * all see it, and the callers' own transactions (all or nothing for
 * *Multiple and a changeset) roll the rest back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dvemu.h"

static int value_eq(const cJSON *want, const cJSON *have)
{
    if (cJSON_IsNull(want))
        return have == NULL || cJSON_IsNull(have);
    if (have == NULL)
        return 0;
    if (cJSON_IsString(want) && cJSON_IsString(have))
        return strcasecmp(want->valuestring, have->valuestring) == 0; /* GUIDs in any case */
    if (cJSON_IsNumber(want) && cJSON_IsNumber(have))
        return fabs(want->valuedouble - have->valuedouble) < 1e-9;
    if (cJSON_IsBool(want) && cJSON_IsBool(have))
        return cJSON_IsTrue(want) == cJSON_IsTrue(have);
    return 0;
}

/* The stored value of a match key: the column as stored, or a lookup
 * named by its column ("regardingobjectid" -> "_regardingobjectid_value"). */
static const cJSON *stored(const struct table *t, const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    const struct column *c = table_column(t, key);
    if (v == NULL && c && c->type == CT_LOOKUP) {
        char k[200];
        snprintf(k, sizeof(k), "_%s_value", key);
        v = cJSON_GetObjectItemCaseSensitive(obj, k);
    }
    return v;
}

int faults_check(struct emu *e, const struct table *t, const cJSON *obj, struct api_res *r)
{
    cJSON *rule;
    cJSON_ArrayForEach(rule, e->faults)
    {
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(rule, "entity_set");
        if (!cJSON_IsString(set) || strcmp(set->valuestring, t->set) != 0)
            continue;
        const cJSON *m, *match = cJSON_GetObjectItemCaseSensitive(rule, "match");
        int all = 1;
        cJSON_ArrayForEach(m, match)
        {
            if (!value_eq(m, stored(t, obj, m->string))) {
                all = 0;
                break;
            }
        }
        if (!all)
            continue;
        cJSON *hits = cJSON_GetObjectItemCaseSensitive(rule, "hits");
        cJSON_SetNumberValue(hits, hits->valuedouble + 1);
        e->stats.failures_injected++;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(rule, "status");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(rule, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(rule, "message");
        api_error(r, st->valueint, code->valuestring, "%s", msg->valuestring);
        return -EINVAL;
    }
    return 0;
}

int faults_add(struct emu *e, const char *body, size_t len, char *err, size_t errlen)
{
    cJSON *in = cJSON_ParseWithLength(body ? body : "", len);
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(in, "entity_set");
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(in, "match");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(in, "status");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(in, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(in, "message");
    const char *why = NULL;
    if (!cJSON_IsObject(in))
        why = "the body must be a JSON object";
    else if (!cJSON_IsString(set) || store_by_set(&e->store, set->valuestring) == NULL)
        why = "\"entity_set\" must name an entity set dvemu has";
    else if (!cJSON_IsObject(match) || match->child == NULL)
        why = "\"match\" must be an object of column: value (at least one)";
    else if (st && (!cJSON_IsNumber(st) || st->valueint < 400 || st->valueint > 599))
        why = "\"status\" must be an HTTP error status (400..599)";
    else if ((code && !cJSON_IsString(code)) || (msg && !cJSON_IsString(msg)))
        why = "\"code\" and \"message\" must be strings";
    for (const cJSON *m = why ? NULL : match->child; m; m = m->next)
        if (cJSON_IsObject(m) || cJSON_IsArray(m))
            why = "each \"match\" value must be a string, number, boolean or null";
    if (why) {
        snprintf(err, errlen, "%s", why);
        cJSON_Delete(in);
        return -EINVAL;
    }
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddStringToObject(rule, "entity_set", set->valuestring);
    cJSON_AddItemToObject(rule, "match", cJSON_Duplicate(match, 1));
    cJSON_AddNumberToObject(rule, "status", st ? st->valueint : 400);
    cJSON_AddStringToObject(rule, "code", code ? code->valuestring : "0x80040203");
    cJSON_AddStringToObject(rule, "message",
                            msg ? msg->valuestring : "The record was refused (dvemu fault rule).");
    cJSON_AddNumberToObject(rule, "hits", 0);
    cJSON_AddItemToArray(e->faults, rule);
    cJSON_Delete(in);
    return 0;
}

void faults_clear(struct emu *e)
{
    cJSON *rule;
    while ((rule = cJSON_DetachItemFromArray(e->faults, 0)) != NULL)
        cJSON_Delete(rule);
}
