/* tpl_sms.h - templates and templated Pending SMS records in dvemu, by
 * fixed ids (template i, SMS i), for the pickup tests that check what a
 * template does to its SMS (test_pickup_tpl, test_qa_templates). Include
 * after pk_fixture.h. */
#ifndef SMSYS_TEST_TPL_SMS_H
#define SMSYS_TEST_TPL_SMS_H

static inline void tpl_id(size_t i, char out[37])
{
    snprintf(out, 37, "7f000000-0000-0000-0000-%012zu", i);
}

static inline void sms_id(size_t i, char out[37])
{
    snprintf(out, 37, "5b000000-0000-0000-0000-%012zu", i);
}

/* Template i for entity (a table's logical name). */
static inline void tpl_post(struct pkf *f, size_t i, const char *name, const char *body,
                            const char *entity)
{
    char id[37];
    tpl_id(i, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "smsys_smstemplateid", id);
    cJSON_AddStringToObject(o, "smsys_name", name);
    cJSON_AddStringToObject(o, "smsys_entity", entity);
    cJSON_AddStringToObject(o, "smsys_body", body);
    pkf_post_obj(f, "smsys_smstemplates", o);
}

/* Pending SMS i with template i to contact (an id) and, when not NULL, a
 * description. */
static inline void tpl_sms_post(struct pkf *f, size_t i, const char *contact,
                                const char *description)
{
    char id[37], tid[37], bind[128], party[128];
    sms_id(i, id);
    tpl_id(i, tid);
    snprintf(bind, sizeof(bind), "/smsys_smstemplates(%s)", tid);
    snprintf(party, sizeof(party), "/contacts(%s)", contact);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "activityid", id);
    cJSON_AddStringToObject(o, "subject", "t");
    cJSON_AddNumberToObject(o, "smsys_direction", 1);
    cJSON_AddNumberToObject(o, "smsys_status", 2);
    cJSON_AddStringToObject(o, "smsys_templateid@odata.bind", bind);
    if (description)
        cJSON_AddStringToObject(o, "description", description);
    cJSON *parties = cJSON_AddArrayToObject(o, "smsys_sms_activity_parties");
    cJSON *pt = cJSON_CreateObject();
    cJSON_AddStringToObject(pt, "partyid_contact@odata.bind", party);
    cJSON_AddNumberToObject(pt, "participationtypemask", 2);
    cJSON_AddItemToArray(parties, pt);
    pkf_post_obj(f, "smsys_smses", o);
}

/* A column of the queued message of SMS key (its idempotency key). */
static inline const char *msg_col(struct pkf *f, const char *key, const char *col)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM smsys_message WHERE idem_key = '%s'", col, key);
    return pkf_str(f, sql);
}

#endif
