/* pickup_enqueue.c - steps 4 and 5 of a poll: a child record in Dynamics
 * for each further recipient of an SMS (deterministic id, so a retry after
 * a crash finds it rather than making a second), then the page's queue
 * rows, PK_ENQ_CHUNK per transaction. */
#include "pickup_int.h"

#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue rows per enqueue call (one transaction each). */
#define PK_ENQ_CHUNK 1000

struct child_ctx {
    struct pickup *p;
    size_t sms;
};

/* ---- 5. enqueue ------------------------------------------------------- */

static void enqueue_next(struct pickup *p);

static void enqueue_cb(int rc, const struct queue_enq_res *res, size_t n,
                       const struct smsys_err *err, void *ud)
{
    struct pickup *p = ud;
    if (rc != 0) {
        pk_poll_fail(p, rc, err, "cannot enqueue");
        pk_poll_end(p);
        return;
    }
    for (size_t i = 0; i < n; i++)
        p->res.inserted += res[i].inserted != 0;
    enqueue_next(p);
}

static void desc_cb(int rc, unsigned requests, void *ud)
{
    struct pickup *p = ud;
    (void)rc; /* logged by pickup_tpl.c */
    p->res.requests += requests;
    pk_poll_end(p);
}

static void enqueue_next(struct pickup *p)
{
    if (p->enq_pos >= p->nitems) {
        /* Templated SMS with several recipients: the original's own text,
         * only now that every recipient is queued (pickup_tpl.c says why). */
        if (pk_tpl_descriptions(p->dv, p->sms, p->nsms, desc_cb, p) != 0)
            pk_poll_end(p);
        return;
    }
    size_t n = p->nitems - p->enq_pos;
    if (n > PK_ENQ_CHUNK)
        n = PK_ENQ_CHUNK;
    int rc = queue_enqueue(p->q, p->items + p->enq_pos, n, enqueue_cb, p);
    p->enq_pos += n;
    if (rc != 0) {
        pk_poll_fail(p, rc, NULL, "cannot enqueue");
        pk_poll_end(p);
    }
}

static int add_item(struct pickup *p, const struct pk_sms *s, const struct pk_party *to,
                    const char *activity_id, int multi)
{
    struct queue_new *it = &p->items[p->nitems];
    memset(it, 0, sizeof(*it));
    char *key;
    if (!multi)
        key = pk_strdup(s->id);
    else if (to->party_id[0])
        key = pk_printf("%s:%s", s->id, to->party_id);
    else
        key = pk_printf("%s:addr:%s", s->id, to->addr ? to->addr : "");
    if (key == NULL)
        return -ENOMEM;
    it->idem_key = key;
    it->activity_id = activity_id;
    it->body = s->body ? s->body : "";
    it->segments = s->segments;
    it->encoding = s->encoding;
    if (to && to->body) {
        it->body = to->body;
        it->segments = to->segments;
        it->encoding = to->encoding;
    }
    if (s->fail || (to && to->why)) {
        int blocked = s->fail ? strncmp(s->fail, "no valid mobile number", 22) == 0 : !to->failed;
        it->state = blocked ? QUEUE_BLOCKED : QUEUE_FAILED;
        it->last_error = s->fail ? s->fail : to->why;
        it->recipient = "";
        it->account_id = NULL;
        if (s->fail)
            it->body = ""; /* may be invalid UTF-8 */
        p->res.blocked += blocked;
        p->res.failed += !blocked;
    } else {
        it->state = QUEUE_QUEUED;
        it->account_id = s->account_id;
        it->sender = s->sender[0] ? s->sender : NULL;
        it->recipient = to->number;
    }
    p->nitems++;
    p->res.messages++;
    return 0;
}

void pk_build_items(struct pickup *p)
{
    size_t cap = 0;
    for (size_t i = 0; i < p->nsms; i++)
        if (!p->sms[i].skip)
            cap += p->sms[i].nto ? p->sms[i].nto : 1;
    p->items = calloc(cap ? cap : 1, sizeof(*p->items));
    if (p->items == NULL) {
        pk_poll_fail(p, -ENOMEM, NULL, "out of memory");
        pk_poll_end(p);
        return;
    }
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip)
            continue;
        int rc = 0;
        if (s->nto == 0 && s->fail == NULL)
            s->fail = pk_strdup("no valid mobile number: the SMS has no 'to' recipient");
        if (s->fail)
            rc = add_item(p, s, NULL, s->id, 0);
        for (size_t k = 0; s->fail == NULL && k < s->nto && rc == 0; k++)
            rc = add_item(p, s, &s->to[k], s->to[k].child_id, s->nto > 1);
        if (rc != 0) {
            pk_poll_fail(p, rc, NULL, "out of memory");
            pk_poll_end(p);
            return;
        }
    }
    p->enq_pos = 0;
    enqueue_next(p);
}

/* ---- 4. child records ------------------------------------------------- */

static void child_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct child_ctx *c = ud;
    struct pickup *p = c->p;
    (void)id;
    p->res.requests++;
    if (rc == 0 || rc == SMSYS_ECONFLICT) {
        /* ECONFLICT: the record exists already (an earlier poll made it
         * before a crash): exactly what the deterministic id is for. */
        p->res.children++;
    } else {
        /* Nothing of this SMS is queued now; the next poll tries again. */
        struct pk_sms *s = &p->sms[c->sms];
        if (!s->skip)
            log_warn("pickup_child_failed", "activityid=%s error=\"%s\"", s->id,
                     log_q(err ? err->detail : smsys_strerror(rc)));
        s->skip = 1;
    }
    free(c);
    pk_step_done(p);
}

/* The body of a child record: a copy of the original for one recipient,
 * created Queued so the Pending filter never returns it. */
static char *child_body(const struct pk_sms *s, const struct pk_party *to,
                        const struct pk_table *tb)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "activityid", to->child_id);
    if (s->subject)
        cJSON_AddStringToObject(o, "subject", s->subject);
    if (to->body)
        cJSON_AddStringToObject(o, "description", to->body);
    else if (s->body)
        cJSON_AddStringToObject(o, "description", s->body);
    cJSON_AddNumberToObject(o, "smsys_direction", 1);
    cJSON_AddNumberToObject(o, "smsys_status", 3);
    char bind[128];
    snprintf(bind, sizeof(bind), "/smsys_smses(%s)", s->id);
    cJSON_AddStringToObject(o, "regardingobjectid_smsys_sms_smsys_sms@odata.bind", bind);
    if (s->setting_id[0]) {
        snprintf(bind, sizeof(bind), "/smsys_smssettings(%s)", s->setting_id);
        cJSON_AddStringToObject(o, "smsys_settingid@odata.bind", bind);
    }
    cJSON *parties = cJSON_AddArrayToObject(o, "smsys_sms_activity_parties");
    cJSON *pt = cJSON_CreateObject();
    if (parties && pt) {
        cJSON_AddItemToArray(parties, pt);
        if (to->party_id[0] && tb) {
            char nav[128];
            snprintf(nav, sizeof(nav), "partyid_%s@odata.bind", tb->table);
            snprintf(bind, sizeof(bind), "/%s(%s)", tb->set, to->party_id);
            cJSON_AddStringToObject(pt, nav, bind);
        }
        if (to->addr)
            cJSON_AddStringToObject(pt, "addressused", to->addr);
        cJSON_AddNumberToObject(pt, "participationtypemask", 2);
    } else {
        cJSON_Delete(pt);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return json;
}

void pk_make_children(struct pickup *p)
{
    p->pending = 1; /* guard */
    for (size_t i = 0; i < p->nsms; i++) {
        struct pk_sms *s = &p->sms[i];
        if (s->skip)
            continue;
        for (size_t k = 0; k < s->nto; k++) {
            struct pk_party *to = &s->to[k];
            if (k == 0 || s->fail) {
                snprintf(to->child_id, sizeof(to->child_id), "%s", s->id);
                continue;
            }
            pickup_child_id(s->id, to->party_id[0] ? to->party_id : (to->addr ? to->addr : ""),
                            to->child_id);
            char *json = child_body(s, to, pk_tables_find(&p->tables, to->table));
            struct child_ctx *c = json ? malloc(sizeof(*c)) : NULL;
            int rc = -ENOMEM;
            if (c) {
                c->p = p;
                c->sms = i;
                rc = dv_create(p->dv, "smsys_smses", json, 1, child_cb, c);
            }
            free(json);
            if (rc != 0) {
                free(c);
                s->skip = 1;
                continue;
            }
            p->pending++;
        }
    }
    pk_step_done(p);
}
