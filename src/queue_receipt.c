/* queue_receipt.c - delivery receipts: stored in PostgreSQL first, then
 * matched to messages tolerantly and applied forward-only; and the receipt
 * deadline. The rules live in smsys_q_receipts / smsys_q_expire
 * (sql/002_queue.sql); see docs/queue.md. */
#include "queue_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_RECEIPTS[] =
    "SELECT matched, changed FROM smsys_q_receipts($1::uuid, $2::text[], $3::text[], $4::text[], "
    "$5::int8[], $6::int2[], (SELECT array_agg(CASE WHEN u = 0 THEN NULL ELSE to_timestamp(u) "
    "END ORDER BY n) FROM unnest($7::int8[]) WITH ORDINALITY AS x(u, n)), $8::text[])";

static void receipts_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    int matched = 0, changed = 0;
    if (rc == 0 && PQntuples(res) > 0) {
        matched = (int)q_int(res, 0, 0);
        changed = (int)q_int(res, 0, 1);
    }
    r->cb.rcpt(rc, matched, changed, err, r->ud);
    free(r);
}

/* Our message id as echoed by a provider (sms_out.id is the decimal
 * message id); 0 when absent or not ours. */
static long long our_id(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return 0;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

#define RC_COLS 7

int queue_apply_states(struct queue *q, const char *account_id, const struct conn_state *st,
                       size_t n, queue_receipts_cb cb, void *ud)
{
    if (q == NULL || cb == NULL || st == NULL || n == 0 || n > 100000 || !q_is_guid(account_id))
        return -EINVAL;
    struct qarr a[RC_COLS];
    for (int c = 0; c < RC_COLS; c++)
        qa_init(&a[c]);
    for (size_t i = 0; i < n; i++) {
        char canon[128], alt[128];
        long long oid = our_id(st[i].our_id);
        const char *pid = st[i].provider_id;
        /* A receipt with neither a usable provider id nor our id can
         * never match: it is still stored (and acknowledged), never fails
         * the batch. */
        canon[0] = alt[0] = '\0';
        if (pid == NULL || !q_utf8_valid(pid) ||
            queue_msgid_canon(pid, canon, sizeof(canon), alt, sizeof(alt)) != 0) {
            pid = pid && q_utf8_valid(pid) ? pid : "";
            canon[0] = alt[0] = '\0';
            if (oid)
                snprintf(canon, sizeof(canon), "#%lld", oid);
        }
        qa_str(&a[0], pid);
        qa_str(&a[1], canon);
        qa_str(&a[2], alt[0] ? alt : NULL);
        if (oid)
            qa_int(&a[3], oid);
        else
            qa_str(&a[3], NULL);
        qa_int(&a[4], (int)st[i].status);
        qa_int(&a[5], st[i].done_at > 0 ? st[i].done_at : 0);
        qa_text(&a[6], st[i].detail, QUEUE_LASTERROR_MAX);
    }
    const char *p[RC_COLS + 1];
    int rc = 0;
    p[0] = account_id;
    for (int c = 0; c < RC_COLS; c++)
        if ((p[c + 1] = qa_end(&a[c])) == NULL)
            rc = -ENOMEM;
    struct qreq *r = rc == 0 ? qreq_new(q, ud) : NULL;
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        r->cb.rcpt = cb;
        rc = qreq_send(r, "smsys_q_receipts", SQL_RECEIPTS, RC_COLS + 1, p, receipts_cb);
    }
    for (int c = 0; c < RC_COLS; c++)
        qa_free(&a[c]);
    return rc;
}

int queue_expire_receipts(struct queue *q, unsigned limit, queue_count_cb cb, void *ud)
{
    if (q == NULL || cb == NULL || limit == 0 || limit > 1000000)
        return -EINVAL;
    char lim[16];
    snprintf(lim, sizeof(lim), "%u", limit);
    const char *p[1] = {lim};
    return q_count_call(q, "smsys_q_expire", "SELECT smsys_q_expire($1::int4)", 1, p, cb, ud);
}
