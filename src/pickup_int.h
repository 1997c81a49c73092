/* pickup_int.h - internals shared by the pickup files. Not a public header.
 *
 *   pickup.c          the poll: lifecycle, reading the Pending records,
 *                     PostgreSQL (already queued? accounts and lines) and
 *                     the steps in order (pk_step_done)
 *   pickup_fetch.c    the recipients' phone columns, per table in batches
 *   pickup_enqueue.c  child records for further recipients, then the
 *                     queue rows
 *   pickup_rules.c    the pure decisions: phone columns, recipients,
 *                     account and line choice, text checks
 *   pickup_tpl.c      template rendering at pickup time */
#ifndef SMSYS_PICKUP_INT_H
#define SMSYS_PICKUP_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "smsys/phone.h"
#include "smsys/pickup.h"
#include "smsys/queue.h"

/* One table recipients may come from (F3). Owned strings. */
struct pk_table {
    char *table; /* logical name: "contact" */
    char *set;   /* entity set: "contacts" */
    char *key;   /* primary key column: "contactid" */
    char **cols; /* phone columns, in order of preference */
    size_t ncols;
    int optout; /* has the opt-out column */
};

struct pk_tables {
    struct pk_table *t;
    size_t n;
};

/* A 'to' party of an SMS and what became of it. */
struct pk_party {
    char party_id[37]; /* "" when the party is only an address */
    char table[64];    /* lookuplogicalname of the party, "" when unknown */
    char *addr;        /* addressused, NULL when empty */
    int fetched;       /* the party's row was read */
    int optout;
    char number[PHONE_E164_MAX];
    char *why;         /* Blocked / Failed reason, NULL when the number is good */
    int failed;        /* why is a Failed reason (table unreadable), not Blocked */
    char child_id[37]; /* the record this recipient is sent on (k > 0: a child) */
    char *body;        /* own text (templated SMS with several recipients), else NULL */
    int segments;      /* of body */
    int encoding;
};

struct pk_line {
    char account_id[37];
    char number[40];  /* as configured in Dynamics */
    char norm[40];    /* phone_normalize_line of number ("" when it fails) */
    char user_id[37]; /* "" when not dedicated */
    int is_default;
};

struct pk_account {
    char id[37];
    int enabled;
    int is_default;
};

struct pk_accts {
    struct pk_account *a;
    size_t na;
    struct pk_line *l;
    size_t nl;
};

/* One Pending SMS record. */
struct pk_sms {
    char id[37];
    char owner_id[37]; /* systemuser owner, "" when a team owns it */
    char setting_id[37];
    char *sender_in; /* smsys_sendernumber as typed, NULL when empty */
    char *subject;
    char *body;
    int has_template;
    char tpl_id[37]; /* _smsys_templateid_value, "" without */
    int rendered;    /* body came from the template this poll */
    int per_party;   /* templated with several recipients: each has its own
                        body (pk_party.body) or why; s->body stays empty */
    struct pk_party *to;
    size_t nto;
    int skip; /* already queued, or its child records could not be made */
    /* decisions */
    char *fail; /* the whole SMS fails with this reason */
    char account_id[37];
    char sender[40];
    int segments;
    int encoding;
};

int pk_tables_parse(const char *spec, const char *optout_tables, struct pk_tables *out,
                    struct smsys_err *err);
void pk_tables_free(struct pk_tables *t);
const struct pk_table *pk_tables_find(const struct pk_tables *t, const char *table);

/* Fills an SMS from one row of the pickup query. Returns 0, -EINVAL (no
 * id: skipped) or -ENOMEM. */
int pk_sms_from_row(struct pk_sms *s, const cJSON *row);
void pk_sms_clear(struct pk_sms *s);

/* Text checks: sets s->fail or segments/encoding. */
void pk_check_text(struct pk_sms *s, unsigned max_segments);
/* The same for one recipient's own text (per_party SMS): sets p->why
 * (Failed) or p->segments/encoding. */
void pk_check_party_text(struct pk_party *p, unsigned max_segments);

/* Account and sender line (F4): sets account_id/sender or s->fail. */
void pk_choose_account(struct pk_sms *s, const struct pk_accts *ac);

/* Applies one fetched row of table tb to party p (opt-out, phone columns,
 * addressused). country: default country for phone_normalize. */
void pk_party_resolve(struct pk_party *p, const struct pk_table *tb, const cJSON *row,
                      const char *optout_column, const char *country);
/* Final reason for a party that could not be fetched or has no table. */
void pk_party_finish(struct pk_party *p, const struct pk_table *tb, const char *country);

/* Renders the SMS of the page that need it (description empty, not
 * skipped/failed, and a template set or a recipient with a table whose
 * default template applies): one recipient -> s->body (and s->rendered)
 * after writing it to description; several -> each pk_party.body (the
 * caller writes the original's description after enqueue) and
 * s->per_party; or s->fail / pk_party.why (template error naming the
 * placeholder and position, wrong table, no default), or s->skip (request
 * error: stays Pending for the next poll). sms and defs are borrowed until
 * cb, which runs once with rc 0 (possibly inside the call when nothing
 * needs a request). Returns 0 (cb), SMSYS_ENOTFOUND (nothing to render,
 * no cb), or another error (no cb). */
struct template_defaults;
typedef void (*pk_tpl_done_cb)(int rc, const struct smsys_err *err, void *ud);
int pk_tpl_render(struct dv_client *dv, struct template_defaults *defs, struct pk_sms *sms,
                  size_t nsms, pk_tpl_done_cb cb, void *ud);

/* After the enqueue: PATCHes description of each original record of a
 * per_party SMS (not skipped or failed) with its first recipient's text.
 * cb(rc, requests made, ud) once, later. Returns 0, SMSYS_ENOTFOUND
 * (nothing to write, no cb) or another error (no cb). */
typedef void (*pk_desc_cb)(int rc, unsigned requests, void *ud);
int pk_tpl_descriptions(struct dv_client *dv, const struct pk_sms *sms, size_t nsms, pk_desc_cb cb,
                        void *ud);

/* Every 'to' party with a record in a configured table, sorted by (table,
 * id): the fetch answers are matched by binary search. */
struct party_index {
    struct pk_party **v;
    size_t n;
};

enum pk_stage { PK_READ, PK_PG, PK_TPL, PK_FETCH, PK_CHILD };

struct pickup {
    uv_loop_t *loop;
    struct queue *q;
    struct pg_pool *pool;
    struct dv_client *dv;
    struct pk_tables tables;
    char *optout_column;
    char *country;
    unsigned max_rows;
    unsigned max_segments;
    struct pickup_stats st;
    struct metric *m_polls, *m_records, *m_msgs, *m_req, *m_batch;
    struct template_defaults *defs; /* default template per table (F8), cached */

    /* the poll in progress */
    int busy;
    pickup_done_cb cb;
    void *ud;
    struct pk_sms *sms;
    size_t nsms;
    struct pk_accts ac;
    struct pickup_result res;
    int pending; /* parallel steps outstanding */
    enum pk_stage stage;
    struct party_index ix;
    int rc;
    struct smsys_err err;
    struct queue_new *items;
    size_t nitems;
    size_t enq_pos;
};

/* pickup.c: the next step once the parallel ones of this stage are done
 * (p->pending reaches 0); ends the poll when one failed. */
void pk_step_done(struct pickup *p);
/* Ends the poll: counters, metrics, log, then the caller's callback. */
void pk_poll_end(struct pickup *p);
/* Records the poll's first error (rc, what failed and why). */
void pk_poll_fail(struct pickup *p, int rc, const struct smsys_err *err, const char *what);

/* pickup_fetch.c: step 3, the phone columns of every recipient with a row
 * in a configured table; pk_step_done when all answers are in. */
void pk_fetch_parties(struct pickup *p);
/* pickup_enqueue.c: step 4, a child record per further recipient of each
 * SMS; pk_step_done when all are made. */
void pk_make_children(struct pickup *p);
/* Step 5: the queue rows of the page, enqueued in chunks; ends the poll. */
void pk_build_items(struct pickup *p);

char *pk_strdup(const char *s);
char *pk_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
