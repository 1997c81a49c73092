/* smpp_send.c - send() of the SMPP connector: encode the text (text.h),
 * split it per the long_messages setting, submit every part through the
 * session, and fold the part results into one result per message.
 *
 * Result of a message (docs/smpp.md, "Connector"):
 *  - every part accepted: rc 0, provider_id = the first part's id; the
 *    later parts' ids are remembered (smpp_partmap_put) for receipts;
 *  - a part refused for good (SMSYS_EPERM) makes the message EPERM;
 *  - else a part with an unknown outcome makes it SMSYS_EUNKNOWN;
 *  - else the class of the first failing part (throttled, temporary,
 *    closed, account).
 * provider_id is set whenever the first part was accepted, also on
 * failure, so that a receipt for it can still be matched. */
#include "smpp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/text.h"

#define MAX_PARTS     255u /* the concatenation IE counts parts in one octet */
#define PENDING       1    /* part rc while its submit is outstanding */
#define DEFAULT_QUEUE 100000u

struct smpp_part {
    struct smpp_msg *m;
    int rc;
    uint32_t status;
    char id[SMPP_MAX_ID_LEN + 1];
};

struct smpp_msg {
    struct smpp_batch *b;
    char *id;        /* copy of sms_out.id */
    unsigned nparts; /* submitted (or attempted) parts; 0 = failed before submit */
    unsigned pending;
    int rc; /* for a message failed before submit */
    char detail[160];
    struct smpp_part *parts;
};

struct smpp_batch {
    struct conn *c;
    conn_sent_cb cb;
    void *ud;
    size_t n, pending;
    struct smpp_batch *next;
    struct smpp_msg msgs[];
};

/* Fails m before submit: detail = what followed by arg (may be NULL). */
static void fail_msg(struct smpp_msg *m, int rc, const char *what, const char *arg)
{
    m->rc = rc;
    snprintf(m->detail, sizeof(m->detail), "%.60s%.90s", what, arg ? arg : "");
}

static int session_rc_class(int rc)
{
    switch (rc) {
    case SMSYS_ETOOBIG:
        return SMSYS_EPERM;
    case SMSYS_ECLOSED:
        return SMSYS_ECLOSED;
    default:
        return SMSYS_ETEMP; /* -ENOBUFS, -ENOMEM */
    }
}

/* Builds the result of one finished message into r (strings point into m). */
static void msg_result(struct smpp_msg *m, struct conn_sent *r)
{
    memset(r, 0, sizeof(*r));
    r->id = m->id;
    r->status = CONN_ST_UNKNOWN;
    if (m->nparts == 0) {
        r->rc = m->rc;
        r->detail = m->detail;
        return;
    }
    r->segments = (int)m->nparts;
    if (m->parts[0].rc == 0)
        r->provider_id = m->parts[0].id;
    int first_fail = -1, unknown = 0, perm = 0;
    unsigned accepted = 0;
    for (unsigned i = 0; i < m->nparts; i++) {
        int rc = m->parts[i].rc;
        if (rc == 0) {
            accepted++;
            continue;
        }
        if (first_fail < 0)
            first_fail = (int)i;
        unknown |= rc == SMSYS_EUNKNOWN;
        perm |= rc == SMSYS_EPERM;
    }
    if (first_fail < 0) {
        r->rc = 0;
        r->status = CONN_ST_QUEUED;
        return;
    }
    struct smpp_part *f = &m->parts[first_fail];
    int rc = f->rc;
    if (rc == SMSYS_EAUTH)
        rc = SMSYS_EACCOUNT;
    if (perm)
        rc = SMSYS_EPERM;
    else if (unknown)
        rc = SMSYS_EUNKNOWN;
    r->rc = rc;
    if (f->status)
        snprintf(m->detail, sizeof(m->detail), "part %d/%u: %s (0x%02X); %u of %u parts accepted",
                 first_fail + 1, m->nparts, smpp_status_name(f->status), (unsigned)f->status,
                 accepted, m->nparts);
    else
        snprintf(m->detail, sizeof(m->detail), "part %d/%u: %s; %u of %u parts accepted",
                 first_fail + 1, m->nparts, smsys_strerror(f->rc), accepted, m->nparts);
    r->detail = m->detail;
}

static void batch_free(struct smpp_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->msgs[i].id);
        free(b->msgs[i].parts);
    }
    free(b);
}

static void batch_answer(struct smpp_batch *b)
{
    struct conn *c = b->c;
    struct conn_sent *res = calloc(b->n, sizeof(*res));
    if (res == NULL) {
        /* Rule 1 wants the callback; answer one message at a time. */
        for (size_t i = 0; i < b->n; i++) {
            struct conn_sent one;
            msg_result(&b->msgs[i], &one);
            b->cb(b->ud, &one, 1);
        }
    } else {
        for (size_t i = 0; i < b->n; i++)
            msg_result(&b->msgs[i], &res[i]);
        b->cb(b->ud, res, b->n);
        free(res);
    }
    c->batches--;
    batch_free(b);
}

void smpp_send_flush_ready(struct conn *c)
{
    while (c->ready) {
        struct smpp_batch *b = c->ready;
        c->ready = b->next;
        batch_answer(b);
    }
}

static void msg_part_done(struct smpp_msg *m)
{
    if (--m->pending > 0)
        return;
    struct smpp_batch *b = m->b;
    if (--b->pending == 0)
        batch_answer(b);
}

static void part_cb(void *ud, int err, uint32_t command_status, const char *message_id)
{
    struct smpp_part *p = ud;
    struct conn *c = p->m->b->c;
    p->rc = err;
    p->status = command_status;
    if (err == 0)
        snprintf(p->id, sizeof(p->id), "%s", message_id ? message_id : "");
    /* Remember later parts' ids under the first part's id as soon as both
     * are known: a receipt may arrive before the rest of the batch. */
    struct smpp_msg *m = p->m;
    if (err == 0 && m->nparts > 1) {
        if (p == &m->parts[0]) {
            for (unsigned i = 1; i < m->nparts; i++)
                if (m->parts[i].rc == 0)
                    smpp_partmap_put(c, m->parts[i].id, p->id);
        } else if (m->parts[0].rc == 0) {
            smpp_partmap_put(c, p->id, m->parts[0].id);
        }
    }
    smpp_conn_check_throttle(c);
    msg_part_done(p->m);
}

/* "+98912..." -> "98912..." with TON international; else as given. */
static const char *dest_addr(const struct conn *c, const char *to, uint8_t *ton, uint8_t *npi)
{
    int intl = to[0] == '+';
    *ton = (uint8_t)(c->dst_ton >= 0 ? c->dst_ton : intl ? 1 : 0);
    *npi = (uint8_t)(c->dst_npi >= 0 ? c->dst_npi : 1);
    return intl ? to + 1 : to;
}

/* Sender: "+..." international, all digits national/unknown, else
 * alphanumeric (TON 5, NPI 0), unless the settings fix TON/NPI. */
static const char *src_addr(const struct conn *c, const char *from, uint8_t *ton, uint8_t *npi)
{
    int intl = from[0] == '+', digits = 1;
    for (const char *p = from + intl; *p; p++)
        if (*p < '0' || *p > '9')
            digits = 0;
    int t = intl ? 1 : digits ? 0 : 5;
    int n = digits ? 1 : 0;
    *ton = (uint8_t)(c->src_ton >= 0 ? c->src_ton : t);
    *npi = (uint8_t)(c->src_npi >= 0 ? c->src_npi : n);
    return intl ? from + 1 : from;
}

/* SMPP absolute time "YYMMDDhhmmss000+" in UTC. */
static void smpp_time(int64_t unix_s, char out[17])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char full[24]; /* strftime %Y: four digits; SMPP wants two */
    strftime(full, sizeof(full), "%Y%m%d%H%M%S", &tm);
    snprintf(out, 17, "%.12s000+", full + 2);
}

/* Encodes, splits and submits one message. On a failure before the first
 * submit, m->nparts stays 0 and m->rc/detail say why. */
static void msg_submit(struct conn *c, struct smpp_msg *m, const struct sms_out *o)
{
    const char *from = o->from && o->from[0] ? o->from : c->sender;
    if (from[0] == '\0') {
        fail_msg(m, SMSYS_EPERM, "no sender: set settings.sender or the message's line", NULL);
        return;
    }
    if (o->to == NULL || o->to[0] == '\0' || strlen(o->to) > 21) {
        fail_msg(m, SMSYS_EPERM, "bad destination ", o->to ? o->to : "(none)");
        return;
    }
    if (strlen(from) > 21) {
        fail_msg(m, SMSYS_EPERM, "sender longer than 21 characters: ", from);
        return;
    }
    size_t len = o->text ? strlen(o->text) : 0;
    if (len == 0) {
        fail_msg(m, SMSYS_EPERM, "empty text", NULL);
        return;
    }
    int udh_mode = c->long_mode == SMPP_LONG_UDH;
    struct text_opts opts = {.force_ucs2 = o->force_ucs2,
                             .smsc_default = c->dc_default,
                             .udh_octets = udh_mode && c->udh16 ? 7 : 6};
    struct buf enc = {0};
    struct smsys_err err;
    struct text_segment segs[MAX_PARTS];
    size_t nseg = 0;
    struct text_info info;
    int rc = text_split(o->text, len, &opts, segs, MAX_PARTS, &nseg, &info, &err);
    if (rc == -E2BIG && c->long_mode == SMPP_LONG_PAYLOAD)
        rc = 0; /* one submit carries it all; the SMSC splits */
    if (rc == 0)
        rc = text_encode(o->text, len, &opts, &enc, NULL, &err);
    if (rc != 0) {
        buf_free(&enc);
        if (rc == -E2BIG)
            fail_msg(m, SMSYS_EPERM, "text too long: more than 255 parts", NULL);
        else
            fail_msg(m, SMSYS_EPERM, "text: ", rc == SMSYS_EUTF8 ? err.detail : smsys_strerror(rc));
        return;
    }
    size_t nparts = nseg;
    if (c->long_mode == SMPP_LONG_PAYLOAD || nseg <= 1)
        nparts = 1;
    if (c->long_mode == SMPP_LONG_PAYLOAD && enc.len > 65535) {
        buf_free(&enc);
        fail_msg(m, SMSYS_EPERM, "text too long for message_payload (64 KiB)", NULL);
        return;
    }
    struct smpp_session_stats st;
    smpp_session_stats(c->sess, &st);
    if (st.queued + nparts > DEFAULT_QUEUE) {
        buf_free(&enc);
        fail_msg(m, SMSYS_ETEMP, "connector queue full", NULL);
        return;
    }
    m->parts = calloc(nparts, sizeof(*m->parts));
    if (m->parts == NULL) {
        buf_free(&enc);
        fail_msg(m, SMSYS_ETEMP, "out of memory", NULL);
        return;
    }
    unsigned ref = c->next_ref++;
    char sched[17];
    uint8_t sm_buf[256];
    struct smpp_sm sm = {0};
    sm.source_addr = src_addr(c, from, &sm.source_ton, &sm.source_npi);
    sm.dest_addr = dest_addr(c, o->to, &sm.dest_ton, &sm.dest_npi);
    sm.registered_delivery = (uint8_t)(c->receipts ? 1 : 0);
    sm.data_coding = (uint8_t)info.data_coding;
    if (o->not_before > 0) {
        smpp_time(o->not_before, sched);
        sm.schedule_delivery_time = sched;
    }
    m->nparts = (unsigned)nparts;
    m->pending = (unsigned)nparts;
    for (size_t i = 0; i < nparts; i++) {
        struct smpp_part *p = &m->parts[i];
        p->m = m;
        p->rc = PENDING;
        const uint8_t *data = (const uint8_t *)enc.data;
        size_t dlen = enc.len;
        if (nparts > 1) {
            data += segs[i].enc_off;
            dlen = segs[i].enc_len;
        }
        sm.has = 0;
        sm.esm_class = 0;
        sm.short_message = data;
        sm.sm_length = dlen;
        if (c->long_mode == SMPP_LONG_PAYLOAD) {
            sm.has = SMPP_HAS_PAYLOAD;
            sm.message_payload = data;
            sm.payload_len = dlen;
            sm.short_message = NULL;
            sm.sm_length = 0;
        } else if (nparts > 1 && c->long_mode == SMPP_LONG_SAR) {
            sm.has = SMPP_HAS_SAR;
            sm.sar_msg_ref_num = (uint16_t)ref;
            sm.sar_total_segments = (uint8_t)nparts;
            sm.sar_segment_seqnum = (uint8_t)(i + 1);
        } else if (nparts > 1) {
            size_t h = 0;
            if (c->udh16) {
                sm_buf[h++] = 6, sm_buf[h++] = 0x08, sm_buf[h++] = 4;
                sm_buf[h++] = (uint8_t)(ref >> 8 & 0xFF);
            } else {
                sm_buf[h++] = 5, sm_buf[h++] = 0x00, sm_buf[h++] = 3;
            }
            sm_buf[h++] = (uint8_t)(ref & 0xFF);
            sm_buf[h++] = (uint8_t)nparts;
            sm_buf[h++] = (uint8_t)(i + 1);
            memcpy(sm_buf + h, data, dlen); /* a part is at most 140 - udh octets */
            sm.short_message = sm_buf;
            sm.sm_length = h + dlen;
            sm.esm_class = SMPP_ESM_UDHI;
        }
        rc = smpp_session_submit(c->sess, &sm, part_cb, p);
        if (rc != 0) {
            /* This part and the rest never leave; earlier parts are queued
             * and still answer (m->pending counts them). */
            for (size_t k = i; k < nparts; k++) {
                m->parts[k].m = m;
                m->parts[k].rc = session_rc_class(rc);
            }
            m->pending = (unsigned)i;
            if (i == 0) {
                m->nparts = 0;
                fail_msg(m, session_rc_class(rc), "submit: ", smsys_strerror(rc));
            }
            break;
        }
    }
    buf_free(&enc);
}

int conn_smpp_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud)
{
    if (c->closing)
        return SMSYS_ECLOSED;
    if (n == 0 || msgs == NULL || cb == NULL)
        return -EINVAL;
    struct smpp_batch *b = calloc(1, sizeof(*b) + n * sizeof(b->msgs[0]));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->msgs[i].id = strdup(msgs[i].id ? msgs[i].id : "");
        if (b->msgs[i].id == NULL) {
            batch_free(b);
            return -ENOMEM;
        }
    }
    b->c = c;
    b->cb = cb;
    b->ud = ud;
    b->n = n;
    /* Counting from n down keeps a part callback from answering the batch
     * before every message was submitted (callbacks never run inside
     * submit, but be explicit). */
    b->pending = n + 1;
    c->batches++;
    for (size_t i = 0; i < n; i++) {
        struct smpp_msg *m = &b->msgs[i];
        m->b = b;
        msg_submit(c, m, &msgs[i]);
        if (m->pending == 0)
            b->pending--;
    }
    if (--b->pending == 0) {
        /* Nothing was submitted: answer from the loop, never inside send(). */
        b->next = c->ready;
        c->ready = b;
        smpp_conn_defer(c);
    }
    return 0;
}
