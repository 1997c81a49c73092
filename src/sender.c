/* sender.c - the claim -> mark -> send -> record loop of one account
 * (sender.h).
 *
 * A claimed batch moves through three stages: waiting (claimed ahead,
 * not yet marked), marked (queue_handing committed: it may now reach the
 * provider) and in the connector. At most `handover` batches are in the
 * connector and one more is marked ahead, and no batch is marked while
 * the messages marked and not yet recorded would exceed (handover + 1)
 * batches: that is all a kill -9 can leave as unknown outcomes; the
 * waiting ones carry no mark and the reaper queues them again. The mark
 * of the next batch runs while the current one is being sent, so its
 * round trip costs no send time. What comes back is recorded by
 * sender_record.c. */
#include "sender_int.h"

#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One claimed batch. The sms_out strings live in `strs`, one block,
 * because the connector only borrows them for the call but our ids must
 * stay valid until every result is back. ids[i] is out[i]'s message id. */
struct sbatch {
    struct sender *s;
    struct sbatch *next; /* while waiting or marked */
    size_t n, left;
    uint64_t t0_ns;
    int64_t *ids;
    struct sms_out *out;
    char *strs;
};

static void bq_push(struct bq *q, struct sbatch *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->n++;
}

static struct sbatch *bq_pop(struct bq *q)
{
    struct sbatch *b = q->head;
    if (b) {
        q->head = b->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n--;
        b->next = NULL;
    }
    return b;
}

/* Batches claimed and not all answered, in every stage. */
static unsigned claimed_batches(const struct sender *s)
{
    return (unsigned)(s->waitq.n + s->markq.n) + (s->marking != NULL) + s->inconn;
}

static void timer_cb(uv_timer_t *t)
{
    struct sender *s = container_of(t, struct sender, timer);
    s->record_wait = 0;
    s->mark_hold = 0;
    snd_flush(s);
    snd_pump(s);
    snd_maybe_claim(s);
    snd_check_done(s);
}

void snd_arm_timer(struct sender *s, unsigned ms)
{
    if (s->closing)
        return;
    /* Keep an earlier deadline: a record retry must not wait for idle. */
    if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= ms)
        return;
    uv_timer_start(&s->timer, timer_cb, ms, 0);
}

static void batch_free(struct sbatch *b)
{
    free(b->ids);
    free(b->out);
    free(b->strs);
    free(b);
}

static int64_t parse_id(const char *v)
{
    if (v == NULL || *v == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end != '\0' || x <= 0)
        return -1;
    return (int64_t)x;
}

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct sbatch *b = ud;
    struct sender *s = b->s;
    double secs = (double)(uv_hrtime() - b->t0_ns) / 1e9;
    for (size_t i = 0; i < n; i++) {
        int64_t id = parse_id(res[i].id);
        if (id < 0) {
            log_warn("connector answered an id it was not given", "account=%s id=\"%s\"",
                     s->account_name, log_q(res[i].id ? res[i].id : ""));
            if (s->exposed > 0)
                s->exposed--; /* nothing of ours will be recorded for it */
            continue;
        }
        snd_push_result(s, id, res[i].rc, res[i].rc == 0 ? res[i].provider_id : NULL,
                        res[i].segments, res[i].detail, RES_MARKED);
        if (s->m.send_latency)
            metrics_observe(s->m.send_latency, secs);
    }
    b->left = n >= b->left ? 0 : b->left - n;
    if (b->left == 0) {
        batch_free(b);
        s->inconn--;
        /* the next marked batch goes to the connector before anything else */
        snd_pump(s);
    }
    snd_flush(s);
    snd_maybe_claim(s);
    snd_check_done(s);
}

/* Copies the claimed rows into a batch the connector can borrow. */
static struct sbatch *batch_make(struct sender *s, const struct queue_msg *m, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 24 + strlen(m[i].recipient) + strlen(m[i].body) +
                 (m[i].sender ? strlen(m[i].sender) + 1 : 0) + 2;
    struct sbatch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->ids = calloc(n, sizeof(*b->ids));
    b->out = calloc(n, sizeof(*b->out));
    b->strs = malloc(total ? total : 1);
    if (b->ids == NULL || b->out == NULL || b->strs == NULL) {
        batch_free(b);
        return NULL;
    }
    char *p = b->strs;
    for (size_t i = 0; i < n; i++) {
        struct sms_out *o = &b->out[i];
        b->ids[i] = m[i].id;
        int k = snprintf(p, 24, "%" PRId64, m[i].id);
        o->id = p;
        p += k + 1;
        size_t l = strlen(m[i].recipient) + 1;
        memcpy(p, m[i].recipient, l);
        o->to = p;
        p += l;
        l = strlen(m[i].body) + 1;
        memcpy(p, m[i].body, l);
        o->text = p;
        p += l;
        if (m[i].sender && *m[i].sender) {
            l = strlen(m[i].sender) + 1;
            memcpy(p, m[i].sender, l);
            o->from = p;
            p += l;
        }
    }
    b->s = s;
    b->n = b->left = n;
    b->t0_ns = s->claim_t0;
    return b;
}

/* The batch never reached the connector: its rows go back to Queued with
 * the attempt given back (queue_result.not_handed_over). marked: b was
 * marked (counted in exposed). Frees b. */
static void give_back(struct sender *s, struct sbatch *b, const char *why, int marked)
{
    for (size_t i = 0; i < b->n; i++)
        snd_push_result(s, b->ids[i], SMSYS_ETEMP, NULL, 0, why,
                        RES_NOT_HANDED | (marked ? RES_MARKED : 0));
    batch_free(b);
}

/* Gives the connector a marked batch. */
static void hand(struct sender *s, struct sbatch *b)
{
    size_t n = b->n;
    s->inconn++;
    int src = s->ops->send(s->c, b->out, n, sent_cb, b);
    if (src >= 0)
        return;
    s->inconn--;
    /* Marked, so recorded as an attempt with the connector's code: a
     * connector that keeps refusing must not spin through the queue. */
    char why[160];
    snprintf(why, sizeof(why), "connector did not take the batch: %s", smsys_strerror(src));
    log_warn("send refused by the connector", "account=%s n=%zu error=\"%s\"", s->account_name, n,
             smsys_strerror(src));
    for (size_t i = 0; i < n; i++)
        snd_push_result(s, b->ids[i], src == -ENOMEM ? SMSYS_ETEMP : src, NULL, 0, why, RES_MARKED);
    batch_free(b);
    s->more = 0;
    snd_arm_timer(s, s->idle_ms);
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Keeps in b only the ids the mark answered (claims return each id once,
 * so an answer as long as the batch is the whole batch). */
static void batch_keep(struct sbatch *b, const int64_t *ids, size_t n)
{
    if (n >= b->n)
        return;
    int64_t *sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
    if (n && sorted == NULL) {
        b->n = b->left = 0; /* cannot tell which: send none (safe) */
        return;
    }
    if (n) {
        memcpy(sorted, ids, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_id);
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (n && bsearch(&b->ids[i], sorted, n, sizeof(*sorted), cmp_id)) {
            b->ids[k] = b->ids[i];
            b->out[k] = b->out[i];
            k++;
        }
    }
    free(sorted);
    b->n = b->left = k;
}

static void mark_failed(struct sender *s, struct sbatch *b, int rc, const struct smsys_err *err)
{
    const char *e = err && err->detail[0] ? err->detail : smsys_strerror(rc);
    char why[200];
    snprintf(why, sizeof(why), "not handed over: the hand-over mark failed (%.150s)", e);
    log_warn("hand-over mark failed, batch back to the queue", "account=%s n=%zu error=\"%s\"",
             s->account_name, b->n, log_q(e));
    give_back(s, b, why, 0);
    /* the database is in trouble: no new mark (nor claim) before the timer */
    s->mark_hold = 1;
    s->more = 0;
    snd_arm_timer(s, s->idle_ms);
    snd_flush(s);
}

static void marked_cb(int rc, const int64_t *ids, size_t n, const struct smsys_err *err, void *ud)
{
    struct sbatch *b = ud;
    struct sender *s = b->s;
    s->marking = NULL;
    if (rc < 0) {
        mark_failed(s, b, rc, err);
    } else {
        size_t asked = b->n;
        batch_keep(b, ids, n);
        if (b->n < asked)
            /* their leases ran out and the reaper took them: no longer ours */
            log_warn("lease lost before hand-over, not sent", "account=%s n=%zu", s->account_name,
                     asked - b->n);
        s->exposed += b->n;
        if (b->n == 0)
            batch_free(b);
        else if (s->closing)
            give_back(s, b, "not handed over: smsysd stopping", 1);
        else
            bq_push(&s->markq, b);
    }
    snd_pump(s);
    snd_flush(s);
    snd_maybe_claim(s);
    snd_check_done(s);
}

/* Moves batches along: marked ones into the connector while it has room,
 * the next waiting one marked ahead (one at a time, and only one batch
 * beyond what the connector holds). While draining, waiting batches go
 * back to the queue instead. */
void snd_pump(struct sender *s)
{
    if (s->closing)
        return;
    while (s->markq.head && s->inconn < s->handover)
        hand(s, bq_pop(&s->markq));
    if (s->draining) {
        struct sbatch *b;
        while ((b = bq_pop(&s->waitq)) != NULL)
            give_back(s, b, "not handed over: smsysd stopping", 0);
        return;
    }
    /* What a crash would leave Unknown is what is marked and not yet
     * recorded (in the connector, marked ahead, answered but not yet
     * recorded): never more than (handover + 1) batches. */
    if (s->marking || s->mark_hold || s->waitq.head == NULL ||
        s->markq.n + s->inconn > s->handover ||
        s->exposed + s->waitq.head->n > (size_t)(s->handover + 1) * s->batch)
        return;
    struct sbatch *b = bq_pop(&s->waitq);
    s->marking = b;
    int rc = queue_handing(s->q, s->owner, b->ids, b->n, marked_cb, b);
    if (rc < 0) {
        s->marking = NULL;
        mark_failed(s, b, rc, NULL);
    }
}

static void claim_cb(int rc, const struct queue_msg *msgs, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct sender *s = ud;
    s->claiming = 0;
    if (rc < 0) {
        log_warn("claim failed, retrying", "account=%s error=\"%s\"", s->account_name,
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        s->more = 0;
        snd_arm_timer(s, s->idle_ms);
        snd_check_done(s);
        return;
    }
    s->st.claimed += n;
    s->more = n >= s->batch;
    if (n == 0) {
        snd_arm_timer(s, s->idle_ms);
        snd_check_done(s);
        return;
    }
    struct sbatch *b = batch_make(s, msgs, n);
    if (b == NULL || s->draining || s->closing) {
        /* Never marked, so it goes back to Queued at once instead of
         * waiting for its lease. */
        const char *why = b ? "not handed over: smsysd stopping" : "not handed over: out of memory";
        for (size_t i = 0; i < n; i++)
            snd_push_result(s, msgs[i].id, SMSYS_ETEMP, NULL, 0, why, RES_NOT_HANDED);
        if (b)
            batch_free(b);
        else
            snd_arm_timer(s, s->idle_ms);
        s->more = 0;
        snd_flush(s);
        snd_check_done(s);
        return;
    }
    bq_push(&s->waitq, b);
    snd_pump(s);
    if (s->more)
        snd_maybe_claim(s);
    else
        snd_arm_timer(s, s->idle_ms);
}

void snd_maybe_claim(struct sender *s)
{
    if (s->draining || s->closing || s->claiming || s->mark_hold ||
        claimed_batches(s) >= s->pipeline)
        return;
    const char *ids[1] = {s->account_id};
    s->claim_t0 = uv_hrtime();
    int rc = queue_claim(s->q, s->owner, ids, 1, s->batch, s->lease_ms, claim_cb, s);
    if (rc < 0) {
        log_warn("claim not issued", "account=%s error=\"%s\"", s->account_name,
                 smsys_strerror(rc));
        snd_arm_timer(s, s->idle_ms);
        return;
    }
    s->claiming = 1;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct sender *s = container_of((uv_timer_t *)h, struct sender, timer);
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_ud;
    snd_free_pres(s->pend, s->npend);
    snd_free_pres(s->rec, s->nrec);
    free(s->pend);
    free(s->rec);
    free(s->account_id);
    free(s->account_name);
    free(s->owner);
    free(s);
    if (cb)
        cb(ud);
}

void snd_check_done(struct sender *s)
{
    int busy = s->claiming || claimed_batches(s) || s->recording || s->applying || s->ap_cb;
    if (s->draining && s->drain_cb && !busy && s->npend == 0 && s->nrec == 0) {
        void (*cb)(void *) = s->drain_cb;
        s->drain_cb = NULL;
        cb(s->drain_ud);
        return;
    }
    if (s->closing == 1 && !busy) {
        if ((s->npend || s->nrec) && !s->record_wait) {
            snd_flush(s);
            if (s->recording)
                return;
        }
        s->closing = 2;
        uv_close((uv_handle_t *)&s->timer, timer_closed_cb);
    }
}

int sender_new(uv_loop_t *loop, struct queue *q, const struct conn_ops *ops, struct conn *c,
               const struct sender_opts *opts, struct sender **out)
{
    if (!loop || !q || !ops || !ops->send || !opts || !opts->account_id || !out)
        return -EINVAL;
    struct sender *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->q = q;
    s->ops = ops;
    s->c = c;
    s->account_id = strdup(opts->account_id);
    s->account_name = strdup(opts->account_name ? opts->account_name : opts->account_id);
    s->owner = strdup(opts->owner ? opts->owner : "smsysd");
    unsigned maxb = ops->max_batch ? (unsigned)ops->max_batch : 200;
    /* Never more per claim than the connector takes in one call. */
    s->batch = opts->batch ? opts->batch : 200;
    if (s->batch > maxb)
        s->batch = maxb;
    s->pipeline = opts->pipeline ? opts->pipeline : 4;
    s->handover = opts->handover ? opts->handover : 1;
    s->lease_ms = opts->lease_ms ? opts->lease_ms : 60000;
    s->idle_ms = opts->idle_ms ? opts->idle_ms : 1000;
    s->record_retry_ms = opts->record_retry_ms ? opts->record_retry_ms : 1000;
    if (opts->metrics)
        s->m = *opts->metrics;
    if (!s->account_id || !s->account_name || !s->owner) {
        free(s->account_id);
        free(s->account_name);
        free(s->owner);
        free(s);
        return -ENOMEM;
    }
    uv_timer_init(loop, &s->timer);
    *out = s;
    snd_maybe_claim(s);
    return 0;
}

void sender_kick(struct sender *s)
{
    s->more = 1;
    snd_maybe_claim(s);
}

void sender_drain(struct sender *s, void (*cb)(void *ud), void *ud)
{
    s->draining = 1;
    s->drain_cb = cb;
    s->drain_ud = ud;
    uv_timer_stop(&s->timer);
    s->record_wait = 0;
    s->mark_hold = 0;
    snd_pump(s); /* waiting batches go back to the queue; marked ones still go out */
    snd_flush(s);
    snd_check_done(s);
}

void sender_close(struct sender *s, void (*cb)(void *ud), void *ud)
{
    s->draining = 1;
    s->drain_cb = NULL;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    s->record_wait = 0;
    uv_timer_stop(&s->timer);
    /* The connector is gone: whatever it never got goes back to Queued. */
    struct sbatch *b;
    while ((b = bq_pop(&s->waitq)) != NULL)
        give_back(s, b, "not handed over: smsysd stopping", 0);
    while ((b = bq_pop(&s->markq)) != NULL)
        give_back(s, b, "not handed over: smsysd stopping", 1);
    snd_check_done(s);
}

void sender_stats(const struct sender *s, struct sender_stats *out)
{
    *out = s->st;
    out->batches_out = claimed_batches(s);
    out->pending = s->npend + s->nrec;
}
