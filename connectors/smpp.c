/* smpp.c - the SMPP 3.4 connector (conn_smpp_ops): settings, the session
 * (src/smpp_session.c) with its window, rate and throttling, delivery
 * receipts and inbound messages handed to the core, and close. send() and
 * the text splitting live in smpp_send.c. docs/smpp.md ("Connector")
 * describes settings, long-message modes, receipts of multi-part messages
 * and the unknown-outcome rule. */
#include "smpp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/mo_parts.h"
#include "smsys/smpp_receipt.h"
#include "smsys/util.h"

/* ---- part ids of multi-part messages ------------------------------------ */

#define PM_CAP     32768u /* key entries (two per part id at most) */
#define PM_BUCKETS 65536u

struct pm_ent {
    char key[SMPP_MSGID_CANON_LEN];
    char first[SMPP_MAX_ID_LEN + 1];
    uint32_t next; /* index + 1 in the bucket chain, 0 = end */
    uint32_t bucket;
    int used;
};

struct smpp_partmap {
    uint32_t head[PM_BUCKETS]; /* index + 1 */
    uint32_t pos;              /* next slot to (re)use: the oldest */
    struct pm_ent ent[PM_CAP];
};

static uint32_t pm_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % PM_BUCKETS;
}

static void pm_unlink(struct smpp_partmap *pm, uint32_t idx)
{
    uint32_t *link = &pm->head[pm->ent[idx].bucket];
    while (*link && *link != idx + 1)
        link = &pm->ent[*link - 1].next;
    if (*link)
        *link = pm->ent[idx].next;
    pm->ent[idx].used = 0;
}

static void pm_add(struct smpp_partmap *pm, const char *key, const char *first)
{
    uint32_t idx = pm->pos;
    pm->pos = (pm->pos + 1) % PM_CAP;
    struct pm_ent *e = &pm->ent[idx];
    if (e->used)
        pm_unlink(pm, idx);
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->first, sizeof(e->first), "%s", first);
    e->bucket = pm_hash(key);
    e->next = pm->head[e->bucket];
    e->used = 1;
    pm->head[e->bucket] = idx + 1;
}

static const char *pm_find(const struct smpp_partmap *pm, const char *key)
{
    if (pm == NULL || key[0] == '\0')
        return NULL;
    for (uint32_t i = pm->head[pm_hash(key)]; i; i = pm->ent[i - 1].next)
        if (strcmp(pm->ent[i - 1].key, key) == 0)
            return pm->ent[i - 1].first;
    return NULL;
}

void smpp_partmap_put(struct conn *c, const char *part_id, const char *first_id)
{
    struct smpp_msgid_canon k;
    if (smpp_msgid_canon(part_id, &k) != 0)
        return;
    if (c->pm == NULL) /* ~6 MB: only for accounts that send long messages */
        c->pm = calloc(1, sizeof(*c->pm));
    struct smpp_partmap *pm = c->pm;
    if (pm == NULL)
        return; /* receipts of later parts then pass with their own id */
    pm_add(pm, k.primary, first_id);
    if (k.alt[0])
        pm_add(pm, k.alt, first_id);
}

/* First part's id for a receipt id of a later part, or NULL. */
static const char *pm_lookup(const struct smpp_partmap *pm, const char *id)
{
    struct smpp_msgid_canon k;
    if (pm == NULL || smpp_msgid_canon(id, &k) != 0)
        return NULL;
    const char *f = pm_find(pm, k.primary);
    return f ? f : pm_find(pm, k.alt);
}

/* ---- deliver tokens ----------------------------------------------------- */

struct smpp_tok {
    struct conn *c; /* NULL once the connector is gone: the ack is dropped */
    uint64_t token;
    struct list_node node; /* on c->toks while c is set */
};

static void tok_ack(void *token, int rc)
{
    struct smpp_tok *t = token;
    struct conn *c = t->c;
    if (c) {
        list_remove(&c->toks, &t->node);
        /* A refusal answers "temporary application error": the SMSC
         * redelivers later. An ack on a dead link is fine: the SMSC
         * redelivers anyway and the store is idempotent. */
        smpp_session_deliver_ack(c->sess, t->token, rc == 0 ? SMPP_ESME_ROK : SMPP_ESME_RX_T_APPN);
    }
    free(t);
}

/* Hands ev to the core with a token; answers RX_T_APPN when that fails. */
static void hand_over(struct conn *c, const struct conn_event *ev, uint64_t token)
{
    struct smpp_tok *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        smpp_session_deliver_ack(c->sess, token, SMPP_ESME_RX_T_APPN);
        return;
    }
    t->c = c;
    t->token = token;
    list_push_front(&c->toks, &t->node);
    c->env.event(c->env.ud, ev, tok_ack, t);
}

/* ---- receipts and inbound ----------------------------------------------- */

static enum conn_status receipt_status(int state)
{
    switch (state) {
    case SMPP_STATE_DELIVERED:
        return CONN_ST_DELIVERED;
    case SMPP_STATE_ENROUTE:
    case SMPP_STATE_ACCEPTED:
        return CONN_ST_SENT;
    case SMPP_STATE_EXPIRED:
    case SMPP_STATE_UNDELIVERABLE:
        return CONN_ST_UNDELIVERED;
    case SMPP_STATE_DELETED:
        return CONN_ST_CANCELED;
    case SMPP_STATE_REJECTED:
        return CONN_ST_FAILED;
    default:
        return CONN_ST_UNKNOWN;
    }
}

static void on_receipt(struct conn *c, const struct smpp_pdu *pdu, uint64_t token)
{
    struct smpp_receipt r;
    if (smpp_receipt_parse(pdu, &r) != 0) {
        /* Without an id it can never be matched; redelivery would not
         * help, so take it and say so. */
        log_warn("smpp_receipt_no_id", "account=%s", c->env.account_name);
        smpp_session_deliver_ack(c->sess, token, SMPP_ESME_ROK);
        return;
    }
    enum conn_status st = receipt_status(r.state);
    const char *id = r.id;
    const char *first = pm_lookup(c->pm, r.id);
    if (first) {
        /* A later part of a multi-part message: the message's state is
         * its first part's, unless a later part fails for good. */
        if (st != CONN_ST_UNDELIVERED && st != CONN_ST_FAILED && st != CONN_ST_CANCELED) {
            smpp_session_deliver_ack(c->sess, token, SMPP_ESME_ROK);
            return;
        }
        id = first;
    }
    char detail[192];
    snprintf(detail, sizeof(detail), "stat:%.15s err:%.15s%s%.65s", r.stat[0] ? r.stat : "-",
             r.err[0] ? r.err : "-", first ? " part id:" : "", first ? r.id : "");
    struct conn_event ev = {.kind = CONN_EV_STATE};
    ev.u.state.provider_id = id;
    ev.u.state.status = st;
    ev.u.state.done_at = r.done_unix;
    ev.u.state.detail = detail;
    hand_over(c, &ev, token);
}

static void on_mo(struct conn *c, const struct smpp_pdu *pdu, uint64_t token)
{
    const struct smpp_sm *sm = &pdu->sm;
    const uint8_t *ud = sm->short_message;
    size_t len = sm->sm_length;
    if (sm->has & SMPP_HAS_PAYLOAD) {
        ud = sm->message_payload;
        len = sm->payload_len;
    }
    struct smpp_concat cc = {0};
    if (sm->esm_class & SMPP_ESM_UDHI) {
        int h = smpp_udh_parse(ud, len, &cc);
        if (h < 0) {
            log_warn("smpp_mo_bad_udh", "account=%s from=%s", c->env.account_name, sm->source_addr);
            smpp_session_deliver_ack(c->sess, token, SMPP_ESME_RX_P_APPN);
            return;
        }
        ud += h;
        len -= (size_t)h;
    } else if (sm->has & SMPP_HAS_SAR) {
        cc.ref = sm->sar_msg_ref_num;
        cc.total = sm->sar_total_segments;
        cc.seq = sm->sar_segment_seqnum;
    }
    struct conn_event ev = {.kind = CONN_EV_MO};
    struct conn_mo *mo = &ev.u.mo;
    mo->from = sm->source_addr ? sm->source_addr : "";
    mo->to = sm->dest_addr ? sm->dest_addr : "";
    mo->received_at = util_wall_us() / 1000000;
    mo->data_coding = sm->data_coding;
    struct buf text = {0};
    if (cc.total > 1 && cc.seq >= 1 && cc.seq <= cc.total) {
        mo->part_ref = cc.ref;
        mo->part_total = cc.total;
        mo->part_seq = cc.seq;
        mo->raw = ud;
        mo->raw_len = len;
    } else {
        if (mo_parts_decode(sm->data_coding, ud, len, &text) != 0 ||
            buf_append(&text, "", 0) != 0) {
            buf_free(&text);
            smpp_session_deliver_ack(c->sess, token, SMPP_ESME_RX_T_APPN);
            return;
        }
        mo->text = text.data ? text.data : "";
        mo->raw = ud;
        mo->raw_len = len;
    }
    hand_over(c, &ev, token);
    buf_free(&text);
}

static void deliver_cb(struct smpp_session *s, const struct smpp_pdu *pdu, uint64_t token, void *ud)
{
    struct conn *c = ud;
    if (c->closing || c->env.event == NULL) {
        smpp_session_deliver_ack(s, token, SMPP_ESME_RX_T_APPN);
        return;
    }
    if (smpp_is_receipt(pdu))
        on_receipt(c, pdu, token);
    else
        on_mo(c, pdu, token);
}

/* ---- health ------------------------------------------------------------- */

static void health(struct conn *c, int rc, const char *detail)
{
    if (c->env.health && !c->closing)
        c->env.health(c->env.ud, rc, detail);
}

void smpp_conn_check_throttle(struct conn *c)
{
    struct smpp_session_stats st;
    smpp_session_stats(c->sess, &st);
    if (st.throttled > c->last_throttled) {
        c->last_throttled = st.throttled;
        health(c, SMSYS_ETHROTTLED, "SMSC throttled: connector paused");
    }
}

static void state_cb(struct smpp_session *s, enum smpp_state st, int err, void *ud)
{
    (void)s;
    struct conn *c = ud;
    char d[160];
    if (st == SMPP_BOUND) {
        health(c, 0, "bound");
    } else if (st == SMPP_CLOSED && err != 0) {
        snprintf(d, sizeof(d), "link down: %s", smsys_strerror(err));
        health(c, err == SMSYS_EAUTH ? SMSYS_EACCOUNT : SMSYS_ETEMP, d);
    }
}

/* ---- settings ----------------------------------------------------------- */

struct settings {
    struct smpp_session_opts o;
    char host[256], system_id[17], password[10], system_type[14];
};

static int bad(struct smsys_err *err, const char *key, const char *why)
{
    return smsys_err_set(err, SMSYS_ECONFIG, "smpp settings: %s: %s", key, why);
}

/* Integer from a JSON number or a numeric string (tolerant, as the admin
 * form may store either). */
static int get_int(const cJSON *v, long long min, long long max, long long *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != (double)(long long)d || d < (double)min || d > (double)max)
            return -EINVAL;
        *out = (long long)d;
        return 0;
    }
    if (cJSON_IsString(v))
        return util_parse_int(v->valuestring, min, max, out);
    return -EINVAL;
}

static int get_str(const cJSON *v, char *out, size_t cap)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return -EINVAL;
    snprintf(out, cap, "%s", v->valuestring);
    return 0;
}

static int get_bool(const cJSON *v, int *out)
{
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    long long x;
    if (get_int(v, 0, 1, &x) == 0) {
        *out = (int)x;
        return 0;
    }
    return -EINVAL;
}

static int parse_settings(struct conn *c, const struct conn_env *env, const cJSON *js,
                          struct settings *s, struct smsys_err *err)
{
    memset(s, 0, sizeof(*s));
    c->src_ton = c->src_npi = c->dst_ton = c->dst_npi = -1;
    c->receipts = 1;
    s->o.requeue_throttled = 1;
    int have_port = 0, have_pw = 0;
    if (!cJSON_IsObject(js))
        return bad(err, "settings", "not a JSON object");
    const cJSON *v;
    cJSON_ArrayForEach(v, js)
    {
        const char *k = v->string;
        long long x = 0;
        double d;
        if (strcmp(k, "host") == 0) {
            if (get_str(v, s->host, sizeof(s->host)) || s->host[0] == '\0')
                return bad(err, k, "expected a host name or address");
        } else if (strcmp(k, "port") == 0) {
            if (get_int(v, 1, 65535, &x))
                return bad(err, k, "expected 1-65535");
            s->o.port = (int)x;
            have_port = 1;
        } else if (strcmp(k, "system_id") == 0) {
            if (get_str(v, s->system_id, sizeof(s->system_id)))
                return bad(err, k, "expected a string of at most 16 characters");
        } else if (strcmp(k, "password") == 0) {
            if (get_str(v, s->password, sizeof(s->password)))
                return bad(err, k, "expected a string of at most 9 characters");
            have_pw = 1;
        } else if (strcmp(k, "system_type") == 0) {
            if (get_str(v, s->system_type, sizeof(s->system_type)))
                return bad(err, k, "expected a string of at most 13 characters");
        } else if (strcmp(k, "bind") == 0) {
            if (!cJSON_IsString(v))
                return bad(err, k, "expected transceiver or transmitter+receiver");
            if (strcmp(v->valuestring, "transceiver") == 0)
                s->o.bind = SMPP_BIND_TRX;
            else if (strcmp(v->valuestring, "transmitter+receiver") == 0)
                s->o.bind = SMPP_BIND_TX_RX;
            else
                return bad(err, k, "expected transceiver or transmitter+receiver");
        } else if (strcmp(k, "window") == 0) {
            if (get_int(v, 1, 1000, &x))
                return bad(err, k, "expected 1-1000");
            s->o.window = (unsigned)x;
        } else if (strcmp(k, "rate_per_sec") == 0) {
            if (cJSON_IsNumber(v))
                d = v->valuedouble;
            else if (get_int(v, 0, 1000000, &x) == 0)
                d = (double)x;
            else
                return bad(err, k, "expected a number of segments per second");
            if (!(d >= 0 && d <= 1e6))
                return bad(err, k, "expected 0-1000000");
            s->o.rate_per_sec = d;
        } else if (strcmp(k, "data_coding_default") == 0) {
            if (get_int(v, 0, 3, &x) || x == 2)
                return bad(err, k, "expected 0 (GSM), 1 (IA5/ASCII) or 3 (Latin-1)");
            c->dc_default = (int)x;
        } else if (strcmp(k, "long_messages") == 0) {
            const char *m = cJSON_IsString(v) ? v->valuestring : "";
            if (strcmp(m, "udh") == 0)
                c->long_mode = SMPP_LONG_UDH;
            else if (strcmp(m, "sar") == 0)
                c->long_mode = SMPP_LONG_SAR;
            else if (strcmp(m, "payload") == 0)
                c->long_mode = SMPP_LONG_PAYLOAD;
            else
                return bad(err, k, "expected udh, sar or payload");
        } else if (strcmp(k, "udh_ref_bits") == 0) {
            if (get_int(v, 8, 16, &x) || (x != 8 && x != 16))
                return bad(err, k, "expected 8 or 16");
            c->udh16 = x == 16;
        } else if (strcmp(k, "enquire_link_s") == 0) {
            if (get_int(v, 1, 3600, &x))
                return bad(err, k, "expected 1-3600");
            s->o.enquire_link_s = (unsigned)x;
        } else if (strcmp(k, "response_timeout_s") == 0) {
            if (get_int(v, 1, 600, &x))
                return bad(err, k, "expected 1-600");
            s->o.resp_timeout_ms = (unsigned)x * 1000u;
        } else if (strcmp(k, "source_ton") == 0 || strcmp(k, "source_npi") == 0 ||
                   strcmp(k, "dest_ton") == 0 || strcmp(k, "dest_npi") == 0) {
            if (get_int(v, 0, 255, &x))
                return bad(err, k, "expected 0-255");
            int *dst = k[0] == 's' ? (k[7] == 't' ? &c->src_ton : &c->src_npi)
                                   : (k[5] == 't' ? &c->dst_ton : &c->dst_npi);
            *dst = (int)x;
        } else if (strcmp(k, "sender") == 0) {
            if (get_str(v, c->sender, sizeof(c->sender)))
                return bad(err, k, "expected a line of at most 20 characters");
        } else if (strcmp(k, "receipts") == 0) {
            if (get_bool(v, &c->receipts))
                return bad(err, k, "expected true or false");
        } else if (strcmp(k, "throttle_requeue") == 0) {
            if (get_bool(v, &s->o.requeue_throttled))
                return bad(err, k, "expected true or false");
        } else if (strcmp(k, "reconnect_min_ms") == 0 || strcmp(k, "reconnect_max_ms") == 0 ||
                   strcmp(k, "throttle_pause_ms") == 0) {
            if (get_int(v, 1, 3600000, &x))
                return bad(err, k, "expected 1-3600000");
            if (k[0] == 't')
                s->o.throttle_pause_ms = (unsigned)x;
            else if (k[10] == 'i')
                s->o.reconnect_min_ms = (unsigned)x;
            else
                s->o.reconnect_max_ms = (unsigned)x;
        } else if (strcmp(k, "tls") == 0) {
            return bad(err, k, "TLS is not supported yet; use a stunnel on loopback");
        } else {
            return bad(err, k, "unknown key");
        }
    }
    if (s->host[0] == '\0')
        return bad(err, "host", "required");
    if (!have_port)
        return bad(err, "port", "required");
    if (!have_pw && env->apikey) {
        if (strlen(env->apikey) >= sizeof(s->password))
            return bad(err, "password", "smsys_apikey longer than 9 characters");
        snprintf(s->password, sizeof(s->password), "%s", env->apikey);
    }
    s->o.host = s->host;
    s->o.system_id = s->system_id;
    s->o.password = s->password;
    s->o.system_type = s->system_type;
    return 0;
}

/* ---- life cycle --------------------------------------------------------- */

static void defer_cb(uv_timer_t *t)
{
    smpp_send_flush_ready(container_of(t, struct conn, defer));
}

void smpp_conn_defer(struct conn *c)
{
    uv_timer_start(&c->defer, defer_cb, 0, 0);
}

static int smpp_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                     struct smsys_err *err)
{
    smsys_err_clear(err);
    if (env == NULL || env->loop == NULL || out == NULL)
        return smsys_err_set(err, -EINVAL, "smpp: no loop");
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return smsys_err_set(err, -ENOMEM, "smpp: out of memory");
    c->env = *env;
    if (c->env.account_name == NULL)
        c->env.account_name = "-";
    struct settings s;
    int rc = parse_settings(c, env, settings, &s, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->next_ref = (unsigned)(util_wall_us() & 0xFFFF); /* differ across restarts */
    struct smpp_session_cbs cbs = {.state_cb = state_cb, .deliver_cb = deliver_cb};
    rc = smpp_session_new(env->loop, &s.o, &cbs, c, &c->sess);
    if (rc != 0) {
        free(c);
        return smsys_err_set(err, rc, "smpp: cannot start the session: %s", smsys_strerror(rc));
    }
    uv_timer_init(env->loop, &c->defer);
    log_info("smpp_open", "account=%s host=%s port=%d window=%u", c->env.account_name, s.host,
             s.o.port, s.o.window ? s.o.window : 10);
    *out = c;
    return 0;
}

static void defer_closed_cb(uv_handle_t *h)
{
    struct conn *c = container_of((uv_timer_t *)h, struct conn, defer);
    conn_closed_cb cb = c->closed_cb;
    void *ud = c->closed_ud;
    free(c->pm);
    free(c);
    if (cb)
        cb(ud);
}

static void session_closed_cb(void *ud)
{
    struct conn *c = ud;
    c->sess = NULL;
    /* Every submit has answered by now (session rule 5); batches that
     * failed before submitting wait on the timer: answer them too. */
    smpp_send_flush_ready(c);
    /* The core may still ack events it holds: their acks become no-ops. */
    for (struct list_node *n = list_first(&c->toks); n; n = list_next(n))
        list_entry(n, struct smpp_tok, node)->c = NULL;
    list_init(&c->toks);
    uv_close((uv_handle_t *)&c->defer, defer_closed_cb);
}

static void smpp_close(struct conn *c, conn_closed_cb cb, void *ud)
{
    if (c->closing)
        return; /* a second close is a caller bug; keep the first callback */
    c->closing = 1;
    c->closed_cb = cb;
    c->closed_ud = ud;
    smpp_session_close(c->sess, session_closed_cb, c);
}

const struct conn_ops conn_smpp_ops = {
    .name = "smpp",
    .max_batch = 1000,
    .supports_idempotency = 0,
    .open = smpp_open,
    .send = conn_smpp_send,
    .close = smpp_close,
};
