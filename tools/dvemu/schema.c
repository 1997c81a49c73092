/* schema.c - the tables dvemu knows at start: the standard Dataverse tables
 * smsys touches and the smsys_* tables of docs schema.md, with the columns
 * (names and types) a client can read, filter and write. Columns are
 * declared in a compact text form so the list stays readable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvemu.h"
#include "smsys/util.h"

/* name:type[:targets] separated by spaces. Types: s string, m memo, i int,
 * I bigint, d decimal, b bool, t datetime, c choice, l lookup. */
struct tdef {
    const char *logical, *set, *pk, *primary;
    int activity, user_owned, smsys;
    const char *cols;
};

#define ACT_COLS                                                                                   \
    "subject:s description:m regardingobjectid:l:* scheduledstart:t scheduledend:t "               \
    "actualstart:t actualend:t prioritycode:c activitytypecode:s "

static const struct tdef defs[] = {
    {"contact", "contacts", "contactid", "fullname", 0, 1, 0,
     "firstname:s lastname:s fullname:s mobilephone:s telephone1:s telephone2:s "
     "emailaddress1:s jobtitle:s address1_city:s gendercode:c birthdate:t "
     "parentcustomerid:l:account,contact donotphone:b smsys_donotsms:b"},
    {"account", "accounts", "accountid", "name", 0, 1, 0,
     "name:s accountnumber:s telephone1:s telephone2:s mobilephone:s emailaddress1:s "
     "address1_city:s websiteurl:s primarycontactid:l:contact smsys_donotsms:b"},
    {"lead", "leads", "leadid", "fullname", 0, 1, 0,
     "subject:s firstname:s lastname:s fullname:s companyname:s mobilephone:s telephone1:s "
     "emailaddress1:s address1_city:s leadsourcecode:c smsys_donotsms:b"},
    {"systemuser", "systemusers", "systemuserid", "fullname", 0, 0, 0,
     "fullname:s firstname:s lastname:s domainname:s internalemailaddress:s mobilephone:s "
     "isdisabled:b applicationid:s businessunitid:l:businessunit"},
    {"businessunit", "businessunits", "businessunitid", "name", 0, 0, 0, "name:s"},
    {"team", "teams", "teamid", "name", 0, 0, 0,
     "name:s teamtype:c description:m businessunitid:l:businessunit queueid:l:queue"},
    {"queue", "queues", "queueid", "name", 0, 1, 0,
     "name:s description:m emailaddress:s queueviewtype:c"},
    {"queueitem", "queueitems", "queueitemid", "title", 0, 0, 0,
     "title:s objectid:l:* queueid:l:queue objecttypecode:s workerid:l:systemuser,team "
     "enteredon:t"},
    {"incident", "incidents", "incidentid", "title", 0, 1, 0,
     "title:s description:m ticketnumber:s caseorigincode:c prioritycode:c "
     "customerid:l:contact,account"},
    {"list", "lists", "listid", "listname", 0, 1, 0,
     "listname:s type:b createdfromcode:c query:m membercount:i description:m purpose:s"},
    {"campaign", "campaigns", "campaignid", "name", 0, 1, 0,
     "name:s codename:s description:m actualstart:t actualend:t"},
    {"annotation", "annotations", "annotationid", "subject", 0, 1, 0,
     "subject:s notetext:m objectid:l:* objecttypecode:s isdocument:b filename:s mimetype:s "
     "documentbody:m filesize:i"},
    {"activityparty", "activityparties", "activitypartyid", "", 0, 0, 0,
     "activityid:l:* partyid:l:* participationtypemask:c addressused:s ispartydeleted:b"},
    {"task", "tasks", "activityid", "subject", 1, 1, 0, ACT_COLS},
    {"smsys_sms", "smsys_smses", "activityid", "subject", 1, 1, 1,
     ACT_COLS "smsys_direction:c smsys_status:c smsys_phonenumber:s smsys_sendernumber:s "
              "smsys_settingid:l:smsys_smssetting smsys_templateid:l:smsys_smstemplate "
              "smsys_bulksmsid:l:smsys_bulksms smsys_providermessageid:s smsys_attempts:i "
              "smsys_segments:i smsys_lasterror:s smsys_sentat:t smsys_deliveredat:t"},
    {"smsys_bulksms", "smsys_bulksmses", "smsys_bulksmsid", "smsys_name", 0, 1, 1,
     "smsys_name:s description:m smsys_body:m smsys_templateid:l:smsys_smstemplate "
     "smsys_listid:l:list smsys_campaignid:l:campaign smsys_settingid:l:smsys_smssetting "
     "smsys_sendernumber:s smsys_status:c smsys_scheduledstart:t smsys_total:i smsys_sent:i "
     "smsys_delivered:i smsys_failed:i smsys_skipped:i smsys_lasterror:s"},
    {"smsys_smssetting", "smsys_smssettings", "smsys_smssettingid", "smsys_name", 0, 1, 1,
     "smsys_name:s smsys_provider:s smsys_isdefault:b smsys_enabled:b smsys_config:m "
     "smsys_apikey:s smsys_balance:d smsys_balanceunit:s smsys_balanceupdatedon:t "
     "smsys_inboundinterval:i smsys_maxretries:i smsys_separators:s"},
    {"smsys_smsnumber", "smsys_smsnumbers", "smsys_smsnumberid", "smsys_number", 0, 1, 1,
     "smsys_number:s smsys_settingid:l:smsys_smssetting smsys_userid:l:systemuser "
     "smsys_queueid:l:queue smsys_isdefault:b"},
    {"smsys_smstemplate", "smsys_smstemplates", "smsys_smstemplateid", "smsys_name", 0, 1, 1,
     "smsys_name:s smsys_body:m smsys_entity:s smsys_isdefault:b"},
    {"smsys_keywordrule", "smsys_keywordrules", "smsys_keywordruleid", "smsys_name", 0, 1, 1,
     "smsys_name:s smsys_keywords:m smsys_match:c smsys_action:c "
     "smsys_templateid:l:smsys_smstemplate smsys_queueid:l:queue smsys_actionname:s "
     "smsys_priority:i smsys_stop:b smsys_settingid:l:smsys_smssetting"},
};

static const struct assoc_def assocs[] = {
    {"listcontact_association", "list", "contact"},
    {"listaccount_association", "list", "account"},
    {"listlead_association", "list", "lead"},
    {"campaignlist_association", "campaign", "list"},
};

const struct assoc_def *schema_assoc(const char *nav)
{
    for (size_t i = 0; i < sizeof(assocs) / sizeof(assocs[0]); i++)
        if (strcmp(assocs[i].nav, nav) == 0)
            return &assocs[i];
    return NULL;
}

const struct assoc_def *schema_assoc_at(size_t i)
{
    return i < sizeof(assocs) / sizeof(assocs[0]) ? &assocs[i] : NULL;
}

int table_add_column(struct table *t, const char *name, enum col_type type, const char *targets)
{
    if (table_column(t, name))
        return -EEXIST;
    struct column *n = realloc(t->cols, (t->ncols + 1) * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    t->cols = n;
    struct column *c = &n[t->ncols];
    memset(c, 0, sizeof(*c));
    c->name = strdup(name);
    c->type = type;
    c->targets = targets ? strdup(targets) : NULL;
    if (c->name == NULL)
        return -ENOMEM;
    t->ncols++;
    return 0;
}

const struct column *table_column(const struct table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

const struct column *table_lookup_by_value(const struct table *t, const char *name)
{
    size_t n = strlen(name);
    if (n < 8 || name[0] != '_' || strcmp(name + n - 6, "_value") != 0)
        return NULL;
    for (size_t i = 0; i < t->ncols; i++) {
        const struct column *c = &t->cols[i];
        if (c->type == CT_LOOKUP && strlen(c->name) == n - 7 &&
            strncmp(c->name, name + 1, n - 7) == 0)
            return c;
    }
    return NULL;
}

static enum col_type type_of(char ch)
{
    switch (ch) {
    case 'm':
        return CT_MEMO;
    case 'i':
        return CT_INT;
    case 'I':
        return CT_BIGINT;
    case 'd':
        return CT_DECIMAL;
    case 'b':
        return CT_BOOL;
    case 't':
        return CT_DATETIME;
    case 'c':
        return CT_CHOICE;
    case 'l':
        return CT_LOOKUP;
    case 'g':
        return CT_GUID;
    default:
        return CT_STRING;
    }
}

static void mark_readonly(struct table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            t->cols[i].readonly = 1;
}

struct table *schema_table_new(const char *logical, const char *set, const char *pk,
                               const char *primary_name, int activity)
{
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->logical = strdup(logical);
    t->set = strdup(set);
    t->pk = strdup(pk);
    t->primary_name = strdup(primary_name ? primary_name : "");
    t->activity = activity;
    util_uuid4(t->metadata_id);
    table_add_column(t, pk, CT_GUID, NULL);
    table_add_column(t, "createdon", CT_DATETIME, NULL);
    table_add_column(t, "modifiedon", CT_DATETIME, NULL);
    table_add_column(t, "versionnumber", CT_BIGINT, NULL);
    table_add_column(t, "createdby", CT_LOOKUP, "systemuser");
    table_add_column(t, "modifiedby", CT_LOOKUP, "systemuser");
    table_add_column(t, "statecode", CT_CHOICE, NULL);
    table_add_column(t, "statuscode", CT_CHOICE, NULL);
    mark_readonly(t, "createdon");
    mark_readonly(t, "modifiedon");
    mark_readonly(t, "versionnumber");
    mark_readonly(t, "createdby");
    mark_readonly(t, "modifiedby");
    return t;
}

static int install(struct store *st, const struct tdef *d)
{
    struct table *t = schema_table_new(d->logical, d->set, d->pk, d->primary, d->activity);
    if (t == NULL)
        return -ENOMEM;
    t->user_owned = d->user_owned;
    t->custom = d->smsys;
    if (d->user_owned)
        table_add_column(t, "ownerid", CT_LOOKUP, "systemuser,team");
    char *cols = strdup(d->cols);
    char *save = NULL;
    for (char *tok = strtok_r(cols, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *c1 = strchr(tok, ':');
        if (c1 == NULL)
            continue;
        *c1 = '\0';
        char *c2 = strchr(c1 + 1, ':');
        if (c2)
            *c2++ = '\0';
        table_add_column(t, tok, type_of(c1[1]), c2);
    }
    free(cols);
    if (strcmp(d->logical, "incident") == 0)
        mark_readonly(t, "ticketnumber");
    return store_add_table(st, t);
}

int schema_install_standard(struct store *st, int with_smsys)
{
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        if (defs[i].smsys && !with_smsys)
            continue;
        int rc = install(st, &defs[i]);
        if (rc)
            return rc;
    }
    return 0;
}

void schema_pluralize(const char *logical, char *out, size_t len)
{
    size_t n = strlen(logical);
    const char *suf = "s";
    if (n &&
        (logical[n - 1] == 's' || logical[n - 1] == 'x' || logical[n - 1] == 'z' ||
         (n > 1 && (strcmp(logical + n - 2, "ch") == 0 || strcmp(logical + n - 2, "sh") == 0))))
        suf = "es";
    if (n > 1 && logical[n - 1] == 'y' && !strchr("aeiou", logical[n - 2])) {
        snprintf(out, len, "%.*sies", (int)(n - 1), logical);
        return;
    }
    snprintf(out, len, "%s%s", logical, suf);
}

struct optlabel {
    const char *table; /* "*" any, "A" activities */
    const char *col;
    long long v;
    const char *label;
};

static const struct optlabel labels[] = {
    {"A", "statecode", 0, "Open"},
    {"A", "statecode", 1, "Completed"},
    {"A", "statecode", 2, "Canceled"},
    {"A", "statecode", 3, "Scheduled"},
    {"A", "statuscode", 1, "Open"},
    {"A", "statuscode", 2, "Completed"},
    {"A", "statuscode", 3, "Canceled"},
    {"A", "statuscode", 4, "Scheduled"},
    {"A", "prioritycode", 0, "Low"},
    {"A", "prioritycode", 1, "Normal"},
    {"A", "prioritycode", 2, "High"},
    {"contact", "gendercode", 1, "Male"},
    {"contact", "gendercode", 2, "Female"},
    {"*", "statecode", 0, "Active"},
    {"*", "statecode", 1, "Inactive"},
    {"*", "statuscode", 1, "Active"},
    {"*", "statuscode", 2, "Inactive"},
    {"smsys_sms", "smsys_direction", 1, "Outgoing"},
    {"smsys_sms", "smsys_direction", 2, "Incoming"},
    {"smsys_sms", "smsys_status", 1, "Draft"},
    {"smsys_sms", "smsys_status", 2, "Pending"},
    {"smsys_sms", "smsys_status", 3, "Queued"},
    {"smsys_sms", "smsys_status", 4, "Sent"},
    {"smsys_sms", "smsys_status", 5, "Delivered"},
    {"smsys_sms", "smsys_status", 6, "Failed"},
    {"smsys_sms", "smsys_status", 7, "Retrying"},
    {"smsys_sms", "smsys_status", 8, "Received"},
    {"smsys_sms", "smsys_status", 9, "Canceled"},
    {"smsys_sms", "smsys_status", 10, "Blocked"},
    {"smsys_bulksms", "smsys_status", 1, "Draft"},
    {"smsys_bulksms", "smsys_status", 2, "Ready"},
    {"smsys_bulksms", "smsys_status", 3, "Expanding"},
    {"smsys_bulksms", "smsys_status", 4, "Sending"},
    {"smsys_bulksms", "smsys_status", 5, "Paused"},
    {"smsys_bulksms", "smsys_status", 6, "Completed"},
    {"smsys_bulksms", "smsys_status", 7, "Canceled"},
    {"smsys_bulksms", "smsys_status", 8, "Failed"},
    {"smsys_keywordrule", "smsys_match", 1, "Any word"},
    {"smsys_keywordrule", "smsys_match", 2, "All words"},
    {"smsys_keywordrule", "smsys_match", 3, "First word"},
    {"smsys_keywordrule", "smsys_match", 4, "Exact text"},
    {"smsys_keywordrule", "smsys_action", 1, "Opt out"},
    {"smsys_keywordrule", "smsys_action", 2, "Opt in"},
    {"smsys_keywordrule", "smsys_action", 3, "Reply with template"},
    {"smsys_keywordrule", "smsys_action", 4, "Create case"},
    {"smsys_keywordrule", "smsys_action", 5, "Route to queue"},
    {"smsys_keywordrule", "smsys_action", 6, "Call action"},
    {"incident", "prioritycode", 1, "High"},
    {"incident", "prioritycode", 2, "Normal"},
    {"incident", "prioritycode", 3, "Low"},
    {"incident", "caseorigincode", 1, "Phone"},
    {"incident", "caseorigincode", 2, "Email"},
    {"incident", "caseorigincode", 3, "Web"},
    {"list", "createdfromcode", 1, "Account"},
    {"list", "createdfromcode", 2, "Contact"},
    {"list", "createdfromcode", 4, "Lead"},
    {"activityparty", "participationtypemask", 1, "Sender"},
    {"activityparty", "participationtypemask", 2, "To Recipient"},
    {"activityparty", "participationtypemask", 3, "CC Recipient"},
    {"activityparty", "participationtypemask", 4, "BCC Recipient"},
    {"activityparty", "participationtypemask", 7, "Organizer"},
    {"activityparty", "participationtypemask", 8, "Regarding"},
    {"activityparty", "participationtypemask", 9, "Owner"},
};

/* Label of an option value, or NULL when none is declared (the caller then
 * formats the number). table is a logical name; activities share labels. */
const char *schema_option_label(const char *table, const char *col, long long v)
{
    int is_act = strcmp(table, "smsys_sms") == 0 || strcmp(table, "task") == 0;
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        const struct optlabel *l = &labels[i];
        if (l->v != v || strcmp(l->col, col) != 0)
            continue;
        if (strcmp(l->table, table) == 0 || (l->table[0] == 'A' && !l->table[1] && is_act) ||
            (l->table[0] == '*' && !is_act))
            return l->label;
    }
    return NULL;
}
