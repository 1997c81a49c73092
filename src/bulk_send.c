/* bulk_send.c - the preflight (summary, cost against the balance, refusal)
 * and the send loop: chunks of members are enqueued HELD, their SMS
 * records created with CreateMultiple, then released to the queue. A held
 * chunk found after a crash first asks Dynamics which of its records exist
 * and creates only the others, so no record is made twice and no message
 * leaves before its record exists. */
#include "bulk_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/util.h"

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* ---- preflight ------------------------------------------------------------ */

struct pre {
    struct bjob *j;
    cJSON *sum; /* smsys_bulk_summary, then the whole preflight */
    char refuse[1200];
    char *note;
};

static void pre_free(struct pre *p)
{
    cJSON_Delete(p->sum);
    free(p->note);
    free(p);
}

static void pre_state_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pre *p = ud;
    struct bjob *j = p->j;
    (void)res;
    if (rc != 0)
        log_warn("bulk state not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    pre_free(p);
    j->done(j, rc, rc == 0);
}

static void pre_next_state(struct pre *p)
{
    struct bjob *j = p->j;
    int rc;
    if (p->refuse[0]) {
        log_warn("bulk refused at preflight", "bulk=%s reason=\"%s\"", j->id, log_q(p->refuse));
        rc = bulk_db_set_state(j->e->pg, j->id, BULK_FAILED, p->refuse, pre_state_cb, p);
    } else {
        log_info("bulk sending", "bulk=%s", j->id);
        rc = bulk_db_set_state(j->e->pg, j->id, BULK_SENDING, NULL, pre_state_cb, p);
    }
    if (rc != 0) {
        pre_free(p);
        j->done(j, rc, 0);
    }
}

static void note_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct pre *p = ud;
    (void)id;
    bulk_note_answered(p->j, "preflight", rc, err);
    pre_next_state(p);
}

static void pre_stored_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pre *p = ud;
    struct bjob *j = p->j;
    (void)res;
    if (rc != 0) {
        log_warn("bulk preflight not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
        pre_free(p);
        j->done(j, rc, 0);
        return;
    }
    /* The note's id is derived from the bulk: a replay is a conflict. A
     * Failed bulk set Ready again is accepted as a new row (a new
     * created_at): its preflight gets a note of its own, or Dynamics
     * would keep showing the refusal of the first try only. */
    char nid[37], key[64];
    snprintf(key, sizeof(key), "preflight-note%s%s", j->created[0] ? ":" : "", j->created);
    bulk_activity_id(j->id, key, nid);
    if (j->e->closing ||
        dv_note_create(j->e->dv, "smsys_bulksms", "smsys_bulksmses", j->id, nid,
                       "Bulk SMS preflight", p->note ? p->note : "", note_cb, p) != 0)
        pre_next_state(p);
}

static void fmt_num(struct buf *b, double v)
{
    if (fabs(v - floor(v)) < 1e-9 && fabs(v) < 1e15)
        buf_printf(b, "%.0f", v);
    else
        buf_printf(b, "%.2f", v);
}

/* The summary as text for the note and the logs. */
static char *note_text(const struct bjob *j, const cJSON *s, const char *refuse)
{
    struct buf b = BUF_INIT;
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(s, "skipped");
    const cJSON *sg = cJSON_GetObjectItemCaseSensitive(s, "segments");
    buf_printf(&b, "Preflight of bulk send \"%s\"\n", j->name ? j->name : "");
    buf_printf(&b, "Recipients: %.0f\n", jnum(s, "recipients", 0));
    buf_printf(&b,
               "Skipped: %.0f (no number %.0f, invalid number %.0f, opted out %.0f, do not SMS "
               "%.0f, duplicate number %.0f, text not renderable %.0f)\n",
               jnum(sk, "total", 0), jnum(sk, "no_number", 0), jnum(sk, "invalid_number", 0),
               jnum(sk, "opted_out", 0), jnum(sk, "do_not_sms", 0), jnum(sk, "duplicate", 0),
               jnum(sk, "render_failed", 0));
    buf_printf(&b,
               "Segments: %.0f (GSM-7: %.0f in %.0f messages; Unicode/UCS-2: %.0f in %.0f "
               "messages)\n",
               jnum(sg, "total", 0), jnum(sg, "gsm7", 0), jnum(sg, "gsm7_messages", 0),
               jnum(sg, "ucs2", 0), jnum(sg, "ucs2_messages", 0));
    const char *unit = jstr(s, "unit") ? jstr(s, "unit") : "";
    buf_puts(&b, "Estimated cost: ");
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "cost"))) {
        fmt_num(&b, jnum(s, "cost", 0));
        buf_printf(&b, " %s", unit);
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "price_per_segment"))) {
            buf_puts(&b, " (");
            fmt_num(&b, jnum(s, "price_per_segment", 0));
            buf_puts(&b, " per segment)");
        }
    } else {
        buf_puts(&b, "unknown (set price_per_segment in the account's settings)");
    }
    buf_puts(&b, "\nBalance: ");
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "balance"))) {
        fmt_num(&b, jnum(s, "balance", 0));
        buf_printf(&b, " %s%s%s%s", unit, jstr(s, "balance_at") ? " (as of " : "",
                   jstr(s, "balance_at") ? jstr(s, "balance_at") : "",
                   jstr(s, "balance_at") ? ")" : "");
    } else {
        buf_puts(&b, "unknown");
    }
    buf_printf(&b, "\nResult: %s%s\n", refuse ? "refused: " : "sending", refuse ? refuse : "");
    return buf_steal(&b);
}

static void acct_cb(int rc, struct dv_result *res, void *ud)
{
    struct pre *p = ud;
    struct bjob *j = p->j;
    struct bulk_engine *e = j->e;
    e->st.dv_requests++;
    if (rc != 0 && rc != SMSYS_ENOTFOUND) {
        log_warn("bulk balance not read", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, &res->err)));
        pre_free(p);
        j->done(j, rc, 0);
        return;
    }
    const cJSON *a = rc == 0 ? res->json : NULL;
    const cJSON *bal = cJSON_GetObjectItemCaseSensitive(a, "smsys_balance");
    const char *unit = jstr(a, "smsys_balanceunit");
    double price = NAN;
    cJSON *conf = jstr(a, "smsys_config") ? cJSON_Parse(jstr(a, "smsys_config")) : NULL;
    const cJSON *pps = cJSON_GetObjectItemCaseSensitive(conf, "price_per_segment");
    if (cJSON_IsNumber(pps) && pps->valuedouble >= 0)
        price = pps->valuedouble;
    else if (cJSON_IsString(pps))
        price = strtod(pps->valuestring, NULL);
    cJSON_Delete(conf);
    double segs = jnum(cJSON_GetObjectItemCaseSensitive(p->sum, "segments"), "total", 0);
    double cost = NAN;
    if (unit && strcasecmp(unit, "SMS") == 0)
        cost = segs; /* credit counted in messages */
    else if (isfinite(price))
        cost = segs * price;
    if (isfinite(price))
        cJSON_AddNumberToObject(p->sum, "price_per_segment", price);
    if (isfinite(cost))
        cJSON_AddNumberToObject(p->sum, "cost", cost);
    if (unit)
        cJSON_AddStringToObject(p->sum, "unit", unit);
    if (cJSON_IsNumber(bal))
        cJSON_AddNumberToObject(p->sum, "balance", bal->valuedouble);
    if (jstr(a, "smsys_balanceupdatedon"))
        cJSON_AddStringToObject(p->sum, "balance_at", jstr(a, "smsys_balanceupdatedon"));
    double recipients = jnum(p->sum, "recipients", 0);
    double skipped = jnum(cJSON_GetObjectItemCaseSensitive(p->sum, "skipped"), "total", 0);
    if (recipients <= 0) {
        /* Completed with nothing sent would look like success to the user;
         * Failed says why, and Ready again after fixing the list starts
         * over (no message exists). */
        if (skipped > 0)
            snprintf(p->refuse, sizeof(p->refuse),
                     "nothing to send: all %.0f members of the audience were skipped (no "
                     "number, opted out, do not SMS, duplicate or text not renderable; the "
                     "preflight note has the counts)",
                     skipped);
        else
            snprintf(p->refuse, sizeof(p->refuse),
                     "nothing to send: the audience has no members (the marketing list is "
                     "empty, or every list of the campaign is)");
    } else if (e->o.refuse_over_balance && isfinite(cost) && cJSON_IsNumber(bal) &&
               cost > bal->valuedouble + 1e-9) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "insufficient balance: the estimated cost is ");
        fmt_num(&b, cost);
        buf_printf(&b, " %s (%.0f segments", unit ? unit : "", segs);
        if (isfinite(price) && !(unit && strcasecmp(unit, "SMS") == 0)) {
            buf_puts(&b, " x ");
            fmt_num(&b, price);
        }
        buf_puts(&b, ") but the account's balance is ");
        fmt_num(&b, bal->valuedouble);
        buf_printf(&b, " %s; top up the account or set [bulk] refuse_over_balance = false",
                   unit ? unit : "");
        snprintf(p->refuse, sizeof(p->refuse), "%s", b.data ? b.data : "insufficient balance");
        buf_free(&b);
    }
    cJSON_AddBoolToObject(p->sum, "refused", p->refuse[0] != 0);
    if (p->refuse[0])
        cJSON_AddStringToObject(p->sum, "reason", p->refuse);
    char at[40];
    util_iso8601(util_wall_us(), at, sizeof(at));
    cJSON_AddStringToObject(p->sum, "at", at);
    p->note = note_text(j, p->sum, p->refuse[0] ? p->refuse : NULL);
    log_info("bulk preflight", "bulk=%s summary=\"%s\"", j->id, log_q(p->note ? p->note : ""));
    char *json = cJSON_PrintUnformatted(p->sum);
    rc = json ? bulk_db_set_preflight(e->pg, j->id, json, pre_stored_cb, p) : -ENOMEM;
    free(json);
    if (rc != 0) {
        pre_free(p);
        j->done(j, rc, 0);
    }
}

static void summary_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct pre *p = ud;
    struct bjob *j = p->j;
    if (rc == 0 && PQntuples(res) == 1)
        p->sum = cJSON_Parse(PQgetvalue(res, 0, 0));
    if (rc != 0 || p->sum == NULL) {
        log_warn("bulk summary failed", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
        pre_free(p);
        j->done(j, rc ? rc : SMSYS_EPG, 0);
        return;
    }
    struct buf path = BUF_INIT;
    rc = buf_puts(&path, "smsys_smssettings(");
    if (rc == 0)
        rc = odata_lit_guid(&path, j->account_id);
    if (rc == 0)
        rc = buf_puts(&path, ")?$select=smsys_balance,smsys_balanceunit,smsys_balanceupdatedon,"
                             "smsys_config");
    if (rc == 0)
        rc = dv_request_ex(j->e->dv, &(struct dv_call){.method = "GET", .path = path.data}, acct_cb,
                           p);
    buf_free(&path);
    if (rc != 0) {
        pre_free(p);
        j->done(j, rc, 0);
    }
}

int bulk_unit_preflight(struct bjob *j)
{
    struct pre *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->j = j;
    int rc = bulk_db_summary(j->e->pg, j->id, summary_cb, p);
    if (rc != 0)
        free(p);
    return rc;
}
