/* queue.c - the outbound queue: enqueue, claim, send outcomes, reaping of
 * expired leases, operator retry and statistics. The state machine itself
 * lives in set-based SQL functions (sql/002_queue.sql); this file builds
 * their array parameters and reads their results. See docs/queue.md. */
#include "queue_internal.h"

#include "msgid_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"

/* ---- array literals --------------------------------------------------- */

void qa_init(struct qarr *a)
{
    memset(a, 0, sizeof(*a));
    if (buf_putc(&a->b, '{') != 0)
        a->err = -ENOMEM;
}

static void qa_sep(struct qarr *a)
{
    if (a->n++ > 0 && buf_putc(&a->b, ',') != 0)
        a->err = -ENOMEM;
}

void qa_str(struct qarr *a, const char *s)
{
    qa_sep(a);
    if (s == NULL) {
        if (buf_puts(&a->b, "NULL") != 0)
            a->err = -ENOMEM;
        return;
    }
    int rc = buf_putc(&a->b, '"');
    for (const char *p = s; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = buf_putc(&a->b, '\\');
        if (rc == 0)
            rc = buf_putc(&a->b, *p);
    }
    if (rc == 0)
        rc = buf_putc(&a->b, '"');
    if (rc != 0)
        a->err = -ENOMEM;
}

void qa_text(struct qarr *a, const char *s, size_t max_chars)
{
    if (s == NULL) {
        qa_str(a, NULL);
        return;
    }
    size_t cap = 4 * max_chars + 1;
    size_t len = strlen(s);
    if (cap > 3 * len + 4) /* U+FFFD is 3 bytes per invalid byte at most */
        cap = 3 * len + 4;
    char *tmp = malloc(cap);
    if (tmp == NULL) {
        qa_sep(a);
        a->err = -ENOMEM;
        return;
    }
    queue_text_clean(s, max_chars, tmp, cap);
    qa_str(a, tmp);
    free(tmp);
}

void qa_int(struct qarr *a, long long v)
{
    qa_sep(a);
    if (buf_printf(&a->b, "%lld", v) != 0)
        a->err = -ENOMEM;
}

const char *qa_end(struct qarr *a)
{
    if (a->err == 0 && buf_putc(&a->b, '}') != 0)
        a->err = -ENOMEM;
    return a->err ? NULL : a->b.data;
}

void qa_free(struct qarr *a)
{
    buf_free(&a->b);
}

/* ---- small helpers ---------------------------------------------------- */

int q_is_guid(const char *s)
{
    static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (s == NULL || strlen(s) != sizeof(pat) - 1)
        return 0;
    for (size_t i = 0; pat[i]; i++) {
        int c = (unsigned char)s[i];
        if (pat[i] == '-'
                ? c != '-'
                : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes
 * there are not one (overlong forms and surrogates count as invalid,
 * because PostgreSQL refuses them and would fail the whole batch). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int q_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}

size_t queue_text_clean(const char *s, size_t max_chars, char *out, size_t out_len)
{
    static const char repl[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    size_t chars = 0;
    if (out_len == 0)
        return 0;
    while (*p && chars < max_chars) {
        size_t n = utf8_seq(p);
        const char *src = (const char *)p;
        size_t adv = n;
        if (n == 0) {
            src = repl;
            n = 3;
            adv = 1;
        }
        if (o + n + 1 > out_len)
            break; /* whole characters only */
        memcpy(out + o, src, n);
        o += n;
        p += adv;
        chars++;
    }
    out[o] = '\0';
    return o;
}

int64_t q_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

const char *q_str(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Provider ids longer than this are stored but never matched (HTTP panels
 * may use longer ids than SMPP's 65 characters). */
#define QUEUE_MSGID_MAX 100

int queue_msgid_canon(const char *id, char *canon, size_t canon_len, char *alt, size_t alt_len)
{
    if (canon == NULL || alt == NULL || canon_len < 128 || alt_len < 128)
        return -EINVAL;
    /* Bare forms (no "n:"/"s:" tag): they are what smsys_message and
     * smsys_receipt store, and a number never looks like a non-number. */
    return msgid_canon_forms(id, QUEUE_MSGID_MAX, 0, canon, alt, 128);
}

/* ---- requests --------------------------------------------------------- */

struct qreq *qreq_new(struct queue *q, void *ud)
{
    struct qreq *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->q = q;
        r->ud = ud;
    }
    return r;
}

int qreq_send(struct qreq *req, const char *name, const char *sql, int nparams,
              const char *const *params, pg_result_cb cb)
{
    int rc = pg_query_prepared(req->q->pool, name, sql, nparams, params, cb, req);
    if (rc != 0)
        free(req);
    return rc;
}

void q_count_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    int64_t n = 0;
    if (rc == 0 && PQntuples(res) > 0)
        n = q_int(res, 0, 0);
    r->cb.count(rc, n, err, r->ud);
    free(r);
}

/* ---- lifecycle -------------------------------------------------------- */

int queue_new(uv_loop_t *loop, struct pg_pool *pool, const struct queue_opts *opts,
              struct queue **out)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    q->loop = loop;
    q->pool = pool;
    if (opts)
        q->opts = *opts;
    if (q->opts.backoff_base_ms == 0)
        q->opts.backoff_base_ms = 30000;
    if (q->opts.backoff_cap_ms == 0)
        q->opts.backoff_cap_ms = 3600000;
    if (q->opts.jitter_pct == 0)
        q->opts.jitter_pct = 20;
    if (q->opts.jitter_pct > 100)
        q->opts.jitter_pct = 100;
    if (q->opts.pause_ms == 0)
        q->opts.pause_ms = 300000;
    if (q->opts.receipt_deadline_s == 0)
        q->opts.receipt_deadline_s = 172800;
    if (q->opts.leader_heartbeat_ms == 0)
        q->opts.leader_heartbeat_ms = 2000;
    *out = q;
    return 0;
}

void queue_free(struct queue *q)
{
    free(q);
}

int queue_listen(struct queue *q, pg_notify_cb cb, void *ud)
{
    return pg_listen(q->pool, QUEUE_CHANNEL, cb, ud);
}

/* ---- enqueue ---------------------------------------------------------- */

static const char SQL_ENQUEUE[] =
    "SELECT idem_key, id, inserted FROM smsys_q_enqueue($1::text[], $2::uuid[], $3::uuid[], "
    "$4::uuid[], $5::text[], $6::text[], $7::text[], $8::int4[], $9::int2[], $10::int2[], "
    "$11::int2[], $12::text[], (SELECT array_agg(CASE WHEN u = 0 THEN NULL ELSE "
    "to_timestamp(u / 1e6) END ORDER BY n) FROM unnest($13::int8[]) WITH ORDINALITY AS x(u, n)))";

static void enqueue_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    struct queue_enq_res *out = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        out = calloc(n ? n : 1, sizeof(*out));
        if (out == NULL) {
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading the enqueue result");
            r->cb.enq(-ENOMEM, NULL, 0, &e, r->ud);
            free(r);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            out[i].id = q_int(res, (int)i, 1);
            out[i].inserted = PQgetvalue(res, (int)i, 2)[0] == 't';
        }
    }
    r->cb.enq(rc, out, n, err, r->ud);
    free(out);
    free(r);
}

static int enqueue_check(const struct queue_new *m)
{
    if (m->idem_key == NULL || m->idem_key[0] == '\0')
        return -EINVAL;
    if ((m->activity_id && !q_is_guid(m->activity_id)) || (m->bulk_id && !q_is_guid(m->bulk_id)) ||
        (m->account_id && !q_is_guid(m->account_id)))
        return -EINVAL;
    switch (m->state) {
    case QUEUE_QUEUED:
        if (m->account_id == NULL || m->recipient == NULL || m->recipient[0] == '\0')
            return -EINVAL;
        break;
    case QUEUE_BLOCKED:
    case QUEUE_FAILED:
    case QUEUE_CANCELED:
        break;
    default:
        return -EINVAL;
    }
    if (!q_utf8_valid(m->idem_key) || (m->body && !q_utf8_valid(m->body)) ||
        (m->recipient && !q_utf8_valid(m->recipient)) || (m->sender && !q_utf8_valid(m->sender)))
        return SMSYS_EUTF8;
    return 0;
}

#define ENQ_COLS 13

int queue_enqueue(struct queue *q, const struct queue_new *msgs, size_t n, queue_enqueue_cb cb,
                  void *ud)
{
    if (q == NULL || cb == NULL || (n > 0 && msgs == NULL) || n == 0 || n > 100000)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = enqueue_check(&msgs[i]);
        if (rc != 0) {
            log_warn("queue_enqueue_rejected", "index=%zu error=%s", i, smsys_strerror(rc));
            return rc;
        }
    }
    struct qarr a[ENQ_COLS];
    for (int c = 0; c < ENQ_COLS; c++)
        qa_init(&a[c]);
    for (size_t i = 0; i < n; i++) {
        const struct queue_new *m = &msgs[i];
        qa_str(&a[0], m->idem_key);
        qa_str(&a[1], m->activity_id);
        qa_str(&a[2], m->bulk_id);
        qa_str(&a[3], m->account_id);
        qa_str(&a[4], m->sender);
        qa_str(&a[5], m->recipient);
        qa_str(&a[6], m->body);
        qa_int(&a[7], m->segments);
        qa_int(&a[8], m->encoding);
        qa_int(&a[9], m->priority > 0 ? m->priority : 100);
        qa_int(&a[10], m->state);
        qa_text(&a[11], m->last_error, QUEUE_LASTERROR_MAX);
        qa_int(&a[12], m->not_before_us);
    }
    const char *p[ENQ_COLS];
    int rc = 0;
    for (int c = 0; c < ENQ_COLS; c++)
        if ((p[c] = qa_end(&a[c])) == NULL)
            rc = -ENOMEM;
    struct qreq *r = rc == 0 ? qreq_new(q, ud) : NULL;
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        r->cb.enq = cb;
        rc = qreq_send(r, "smsys_q_enqueue", SQL_ENQUEUE, ENQ_COLS, p, enqueue_cb);
    }
    for (int c = 0; c < ENQ_COLS; c++)
        qa_free(&a[c]);
    return rc;
}

/* ---- claim ------------------------------------------------------------ */

static const char SQL_CLAIM[] =
    "SELECT id, idem_key, activity_id, account_id, sender, recipient, body, segments, encoding, "
    "attempts FROM smsys_q_claim($1, $2::uuid[], $3::int4, $4::int4)";

static void claim_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    struct queue_msg *m = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        m = calloc(n ? n : 1, sizeof(*m));
        if (m == NULL) {
            /* The rows are claimed; their leases expire and the reaper
             * turns them into unknown outcomes: safe, never a double send. */
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading claimed messages");
            r->cb.claim(-ENOMEM, NULL, 0, &e, r->ud);
            free(r);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            int row = (int)i;
            m[i].id = q_int(res, row, 0);
            m[i].idem_key = q_str(res, row, 1);
            m[i].activity_id = q_str(res, row, 2);
            m[i].account_id = q_str(res, row, 3);
            m[i].sender = q_str(res, row, 4);
            m[i].recipient = q_str(res, row, 5);
            m[i].body = q_str(res, row, 6);
            m[i].segments = (int)q_int(res, row, 7);
            m[i].encoding = (int)q_int(res, row, 8);
            m[i].attempts = (int)q_int(res, row, 9);
        }
    }
    r->cb.claim(rc, m, n, err, r->ud);
    free(m);
    free(r);
}

int queue_claim(struct queue *q, const char *owner, const char *const *account_ids,
                size_t naccounts, unsigned limit, unsigned lease_ms, queue_claim_cb cb, void *ud)
{
    if (q == NULL || cb == NULL || owner == NULL || !q_utf8_valid(owner) || limit == 0 ||
        limit > 100000 || lease_ms == 0 || lease_ms > INT32_MAX || (naccounts && !account_ids))
        return -EINVAL;
    struct qarr acc;
    qa_init(&acc);
    for (size_t i = 0; i < naccounts; i++) {
        if (!q_is_guid(account_ids[i])) {
            qa_free(&acc);
            return -EINVAL;
        }
        qa_str(&acc, account_ids[i]);
    }
    char lim[16], lease[16];
    snprintf(lim, sizeof(lim), "%u", limit);
    snprintf(lease, sizeof(lease), "%u", lease_ms);
    const char *accs = qa_end(&acc);
    const char *p[4] = {owner, naccounts ? accs : NULL, lim, lease};
    int rc = accs ? 0 : -ENOMEM;
    struct qreq *r = rc == 0 ? qreq_new(q, ud) : NULL;
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        r->cb.claim = cb;
        rc = qreq_send(r, "smsys_q_claim", SQL_CLAIM, 4, p, claim_cb);
    }
    qa_free(&acc);
    return rc;
}

/* ---- send outcomes ---------------------------------------------------- */

static const char SQL_RECORD[] =
    "SELECT id, state, attempts, (extract(epoch FROM next_attempt_at) * 1000000)::int8 "
    "FROM smsys_q_record($1::int8[], $2::int2[], $3::text[], $4::text[], $5::text[], "
    "$6::int4[], $7::text[], $8::int4, $9::int4, $10::float4, $11::int4, $12::int4)";

/* Error class of a connector result code (connector.h rule 5). */
static int result_kind(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case SMSYS_EPERM:
        return 2;
    case SMSYS_EACCOUNT:
    case SMSYS_EAUTH:
        return 3;
    case SMSYS_EUNKNOWN:
        return 4;
    default:
        return 1; /* SMSYS_ETEMP, SMSYS_ETHROTTLED, network errors, anything else */
    }
}

static void record_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    struct queue_outcome *o = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        o = calloc(n ? n : 1, sizeof(*o));
        if (o == NULL) {
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading send outcomes");
            r->cb.rec(-ENOMEM, NULL, 0, &e, r->ud);
            free(r);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            o[i].id = q_int(res, (int)i, 0);
            o[i].state = (int)q_int(res, (int)i, 1);
            o[i].attempts = (int)q_int(res, (int)i, 2);
            o[i].next_attempt_us = q_int(res, (int)i, 3);
        }
    }
    r->cb.rec(rc, o, n, err, r->ud);
    free(o);
    free(r);
}

#define REC_COLS 7

int queue_record_results(struct queue *q, const struct queue_result *res, size_t n,
                         queue_record_cb cb, void *ud)
{
    if (q == NULL || cb == NULL || res == NULL || n == 0 || n > 100000)
        return -EINVAL;
    struct qarr a[REC_COLS];
    for (int c = 0; c < REC_COLS; c++)
        qa_init(&a[c]);
    for (size_t i = 0; i < n; i++) {
        const struct queue_result *x = &res[i];
        int kind = x->not_handed_over ? 5 : result_kind(x->rc);
        char canon[128], alt[128];
        const char *pid = NULL;
        canon[0] = alt[0] = '\0';
        if (kind == 0 && x->provider_id && q_utf8_valid(x->provider_id)) {
            pid = x->provider_id;
            /* An id too long to canonicalise is kept, just not matchable. */
            if (queue_msgid_canon(pid, canon, sizeof(canon), alt, sizeof(alt)) != 0)
                canon[0] = alt[0] = '\0';
        }
        qa_int(&a[0], x->id);
        qa_int(&a[1], kind);
        qa_str(&a[2], pid);
        qa_str(&a[3], canon[0] ? canon : NULL);
        qa_str(&a[4], pid && alt[0] ? alt : NULL);
        qa_int(&a[5], x->segments > 0 ? x->segments : 0);
        qa_text(&a[6], x->detail, QUEUE_LASTERROR_MAX);
    }
    const char *p[12];
    int rc = 0;
    for (int c = 0; c < REC_COLS; c++)
        if ((p[c] = qa_end(&a[c])) == NULL)
            rc = -ENOMEM;
    char base[16], cap[16], jit[16], pause[16], rdl[16];
    snprintf(base, sizeof(base), "%u", q->opts.backoff_base_ms);
    snprintf(cap, sizeof(cap), "%u", q->opts.backoff_cap_ms);
    snprintf(jit, sizeof(jit), "%.2f", q->opts.jitter_pct / 100.0);
    snprintf(pause, sizeof(pause), "%u", q->opts.pause_ms);
    snprintf(rdl, sizeof(rdl), "%u", q->opts.receipt_deadline_s);
    p[7] = base;
    p[8] = cap;
    p[9] = jit;
    p[10] = pause;
    p[11] = rdl;
    struct qreq *r = rc == 0 ? qreq_new(q, ud) : NULL;
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        r->cb.rec = cb;
        rc = qreq_send(r, "smsys_q_record", SQL_RECORD, 12, p, record_cb);
    }
    for (int c = 0; c < REC_COLS; c++)
        qa_free(&a[c]);
    return rc;
}

/* ---- reap, retry, stats ----------------------------------------------- */

int q_count_call(struct queue *q, const char *name, const char *sql, int np, const char *const *p,
                 queue_count_cb cb, void *ud)
{
    if (q == NULL || cb == NULL)
        return -EINVAL;
    struct qreq *r = qreq_new(q, ud);
    if (r == NULL)
        return -ENOMEM;
    r->cb.count = cb;
    return qreq_send(r, name, sql, np, p, q_count_cb);
}

int queue_reap(struct queue *q, unsigned limit, queue_count_cb cb, void *ud)
{
    char lim[16];
    if (limit == 0 || limit > 1000000)
        return -EINVAL;
    snprintf(lim, sizeof(lim), "%u", limit);
    const char *p[1] = {lim};
    return q_count_call(q, "smsys_q_reap", "SELECT smsys_q_reap($1::int4)", 1, p, cb, ud);
}

int queue_retry_failed(struct queue *q, int64_t since_us, int include_unknown, queue_count_cb cb,
                       void *ud)
{
    char since[32];
    if (since_us < 0)
        return -EINVAL;
    snprintf(since, sizeof(since), "%lld", (long long)since_us);
    const char *p[2] = {since, include_unknown ? "t" : "f"};
    return q_count_call(q, "smsys_q_retry",
                        "SELECT smsys_q_retry(CASE WHEN $1::int8 = 0 THEN NULL "
                        "ELSE to_timestamp($1::int8 / 1e6) END, $2::bool)",
                        2, p, cb, ud);
}

int queue_resolve_unknown(struct queue *q, const int64_t *ids, size_t n, queue_count_cb cb,
                          void *ud)
{
    if (ids == NULL || n == 0 || n > 100000)
        return -EINVAL;
    struct qarr a;
    qa_init(&a);
    for (size_t i = 0; i < n; i++)
        qa_int(&a, ids[i]);
    const char *p[1] = {qa_end(&a)};
    int rc = p[0] ? q_count_call(q, "smsys_q_resolve", "SELECT smsys_q_resolve_unknown($1::int8[])",
                                 1, p, cb, ud)
                  : -ENOMEM;
    qa_free(&a);
    return rc;
}

int queue_cancel(struct queue *q, const char *const *activity_ids, size_t n, queue_count_cb cb,
                 void *ud)
{
    if (activity_ids == NULL || n == 0 || n > 100000)
        return -EINVAL;
    struct qarr a;
    qa_init(&a);
    for (size_t i = 0; i < n; i++) {
        if (!q_is_guid(activity_ids[i])) {
            qa_free(&a);
            return -EINVAL;
        }
        qa_str(&a, activity_ids[i]);
    }
    const char *p[1] = {qa_end(&a)};
    int rc =
        p[0] ? q_count_call(q, "smsys_q_cancel", "SELECT smsys_q_cancel($1::uuid[])", 1, p, cb, ud)
             : -ENOMEM;
    qa_free(&a);
    return rc;
}

int queue_purge(struct queue *q, int64_t before_us, unsigned limit, queue_count_cb cb, void *ud)
{
    char before[32], lim[16];
    if (before_us <= 0 || limit == 0 || limit > 1000000)
        return -EINVAL;
    snprintf(before, sizeof(before), "%lld", (long long)before_us);
    snprintf(lim, sizeof(lim), "%u", limit);
    const char *p[2] = {before, lim};
    return q_count_call(q, "smsys_q_purge",
                        "SELECT smsys_q_purge(to_timestamp($1::int8 / 1e6), $2::int4)", 2, p, cb,
                        ud);
}

static void stats_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    struct queue_stat *s = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        s = calloc(n ? n : 1, sizeof(*s));
        if (s == NULL) {
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading queue statistics");
            r->cb.stats(-ENOMEM, NULL, 0, &e, r->ud);
            free(r);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            s[i].account_id = q_str(res, (int)i, 0);
            s[i].state = (int)q_int(res, (int)i, 1);
            s[i].count = q_int(res, (int)i, 2);
            s[i].oldest_s = strtod(PQgetvalue(res, (int)i, 3), NULL);
        }
    }
    r->cb.stats(rc, s, n, err, r->ud);
    free(s);
    free(r);
}

int queue_stats(struct queue *q, queue_stats_cb cb, void *ud)
{
    if (q == NULL || cb == NULL)
        return -EINVAL;
    struct qreq *r = qreq_new(q, ud);
    if (r == NULL)
        return -ENOMEM;
    r->cb.stats = cb;
    return qreq_send(r, "smsys_q_stats",
                     "SELECT account_id::text, state, count(*), coalesce(extract(epoch FROM "
                     "now() - min(created_at)), 0)::float8 FROM smsys_message "
                     "GROUP BY account_id, state ORDER BY account_id, state",
                     0, NULL, stats_cb);
}
