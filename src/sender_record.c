/* sender_record.c - what became of the messages a sender handled: every
 * result is queued (snd_push_result) and recorded in batches of up to
 * RECORD_MAX by queue_record_results, one call at a time, retried on the
 * timer when the database fails. Receipts pushed by the connector share
 * that one database lane (sender_apply_states): a receipt batch and a
 * results batch never run concurrently (sender.h says why). */
#include "sender_int.h"

#include "smsys/log.h"
#include "smsys/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX 1000 /* results per queue_record_results call */

static void inc(struct metric *x, double v)
{
    if (x && v > 0)
        metrics_add(x, v);
}

void snd_free_pres(struct pres *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].provider_id);
        free(p[i].detail);
    }
}

/* Drops the results of the record call (recorded, or given up). */
static void rec_clear(struct sender *s)
{
    for (size_t i = 0; i < s->nrec; i++)
        if (s->rec[i].marked && s->exposed > 0)
            s->exposed--;
    snd_free_pres(s->rec, s->nrec);
    free(s->rec);
    s->rec = NULL;
    s->nrec = 0;
}

static char *dup_or_null(const char *v)
{
    return v ? strdup(v) : NULL;
}

/* Queues one result for recording. Out of memory loses only the detail
 * text, never the result itself (pend grows before it is needed). */

void snd_push_result(struct sender *s, int64_t id, int rc, const char *provider_id, int segments,
                     const char *detail, unsigned flags)
{
    if (s->npend == s->cappend) {
        size_t cap = s->cappend ? s->cappend * 2 : 256;
        struct pres *p = realloc(s->pend, cap * sizeof(*p));
        if (p == NULL) {
            /* The message stays InFlight; its lease turns it into an
             * unknown outcome, which is safe. */
            log_error("sender result dropped", "account=%s id=%" PRId64 " error=\"%s\"",
                      s->account_name, id, smsys_strerror(-ENOMEM));
            if ((flags & RES_MARKED) && s->exposed > 0)
                s->exposed--;
            return;
        }
        s->pend = p;
        s->cappend = cap;
    }
    struct pres *p = &s->pend[s->npend++];
    p->id = id;
    p->rc = rc;
    p->segments = segments;
    p->not_handed = (flags & RES_NOT_HANDED) != 0;
    p->marked = (flags & RES_MARKED) != 0;
    p->provider_id = dup_or_null(provider_id);
    p->detail = dup_or_null(detail);
    s->st.results++;
}

static void record_cb(int rc, const struct queue_outcome *o, size_t n, const struct smsys_err *err,
                      void *ud)
{
    struct sender *s = ud;
    s->recording = 0;
    if (rc < 0) {
        log_warn("recording send results failed", "account=%s n=%zu error=\"%s\"%s",
                 s->account_name, s->nrec,
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)),
                 s->closing ? " action=dropped" : " action=retry");
        if (s->closing || rc == SMSYS_ECLOSED) {
            rec_clear(s);
        } else {
            s->record_wait = 1;
            snd_arm_timer(s, s->record_retry_ms);
        }
        snd_check_done(s);
        return;
    }
    uint64_t cnt[5] = {0};
    for (size_t i = 0; i < n; i++) {
        switch (o[i].state) {
        case QUEUE_SENT:
        case QUEUE_DELIVERED:
            cnt[0]++;
            break;
        case QUEUE_FAILED:
            cnt[1]++;
            break;
        case QUEUE_RETRYING:
            cnt[2]++;
            break;
        case QUEUE_UNKNOWN:
            cnt[3]++;
            break;
        case QUEUE_QUEUED:
            cnt[4]++;
            break;
        default:
            break;
        }
    }
    s->st.sent += cnt[0];
    s->st.failed += cnt[1];
    s->st.retries += cnt[2];
    s->st.unknown += cnt[3];
    s->st.requeued += cnt[4];
    s->st.recorded += n;
    inc(s->m.sent, (double)cnt[0]);
    inc(s->m.failed, (double)cnt[1]);
    inc(s->m.retries, (double)cnt[2]);
    inc(s->m.unknown, (double)cnt[3]);
    inc(s->m.requeued, (double)cnt[4]);
    if (cnt[4])
        log_warn("messages back to the queue", "account=%s n=%" PRIu64, s->account_name, cnt[4]);
    rec_clear(s);
    snd_pump(s); /* recorded results make room for the next mark */
    snd_flush(s);
    /* Retrying rows are not notified: an idle sender claims on its timer. */
    snd_maybe_claim(s);
    snd_check_done(s);
}

static void applied_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct sender *s = ud;
    queue_receipts_cb cb = s->ap_cb;
    s->applying = 0;
    s->ap_cb = NULL;
    cb(rc, matched, changed, err, s->ap_ud);
    snd_flush(s);
    snd_check_done(s);
}

/* Issues the waiting receipt batch; 1 when the lane is now taken. */
static int lane_apply(struct sender *s)
{
    if (!s->ap_waiting)
        return 0;
    s->ap_waiting = 0;
    int rc = queue_apply_states(s->q, s->account_id, s->ap_st, s->ap_n, applied_cb, s);
    if (rc < 0) {
        queue_receipts_cb cb = s->ap_cb;
        s->ap_cb = NULL;
        struct smsys_err e = {.code = rc};
        cb(rc, 0, 0, &e, s->ap_ud);
        return 0;
    }
    s->applying = 1;
    return 1;
}

int sender_apply_states(struct sender *s, const struct conn_state *st, size_t n,
                        queue_receipts_cb cb, void *ud)
{
    if (s->ap_cb || s->closing > 1)
        return -EBUSY;
    s->ap_st = st;
    s->ap_n = n;
    s->ap_cb = cb;
    s->ap_ud = ud;
    if (s->recording || s->applying) {
        s->ap_waiting = 1; /* issued by snd_flush() when the record returns */
        return 0;
    }
    int rc = queue_apply_states(s->q, s->account_id, st, n, applied_cb, s);
    if (rc < 0) {
        s->ap_cb = NULL;
        return rc;
    }
    s->applying = 1;
    return 0;
}

void snd_flush(struct sender *s)
{
    if (s->recording || s->applying)
        return;
    /* Receipts first: they only wait for one record call. */
    if (lane_apply(s))
        return;
    if (s->record_wait)
        return;
    if (s->nrec == 0) {
        if (s->npend == 0)
            return;
        size_t k = s->npend < RECORD_MAX ? s->npend : RECORD_MAX;
        s->rec = malloc(k * sizeof(*s->rec));
        if (s->rec == NULL) {
            snd_arm_timer(s, s->record_retry_ms);
            s->record_wait = 1;
            return;
        }
        memcpy(s->rec, s->pend, k * sizeof(*s->rec));
        memmove(s->pend, s->pend + k, (s->npend - k) * sizeof(*s->pend));
        s->npend -= k;
        s->nrec = k;
    }
    struct queue_result *r = calloc(s->nrec, sizeof(*r));
    if (r == NULL) {
        s->record_wait = 1;
        snd_arm_timer(s, s->record_retry_ms);
        return;
    }
    for (size_t i = 0; i < s->nrec; i++) {
        r[i].id = s->rec[i].id;
        r[i].rc = s->rec[i].rc;
        r[i].provider_id = s->rec[i].provider_id;
        r[i].segments = s->rec[i].segments;
        r[i].detail = s->rec[i].detail;
        r[i].not_handed_over = s->rec[i].not_handed;
    }
    int rc = queue_record_results(s->q, r, s->nrec, record_cb, s);
    free(r);
    if (rc < 0) {
        log_warn("recording send results not issued", "account=%s error=\"%s\"", s->account_name,
                 smsys_strerror(rc));
        if (s->closing) {
            rec_clear(s);
        } else {
            s->record_wait = 1;
            snd_arm_timer(s, s->record_retry_ms);
        }
        return;
    }
    s->recording = 1;
}
