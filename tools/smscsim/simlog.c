/* simlog.c - smscsim's JSON-lines log, text decoding and MT reassembly.
 *
 * Lines are built in memory and written every 50 ms (and at exit), so
 * logging costs a memcpy per PDU, not a write(2). */
#include "sim.h"

#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GSM 03.38 default alphabet and its extension table, as Unicode. */
static const uint16_t gsm_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, 0x000A, 0x00D8,
    0x00F8, 0x000D, 0x00C5, 0x00E5, 0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
    0x03A3, 0x0398, 0x039E, 0x001B, 0x00C6, 0x00E6, 0x00DF, 0x00C9, 0x0020, 0x0021, 0x0022, 0x0023,
    0x00A4, 0x0025, 0x0026, 0x0027, 0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, 0x0038, 0x0039, 0x003A, 0x003B,
    0x003C, 0x003D, 0x003E, 0x003F, 0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F, 0x0050, 0x0051, 0x0052, 0x0053,
    0x0054, 0x0055, 0x0056, 0x0057, 0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, 0x0068, 0x0069, 0x006A, 0x006B,
    0x006C, 0x006D, 0x006E, 0x006F, 0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0};

static const struct {
    uint8_t code;
    uint16_t uc;
} gsm_ext[] = {{0x0A, 0x000C}, {0x14, 0x005E}, {0x28, 0x007B}, {0x29, 0x007D}, {0x2F, 0x005C},
               {0x3C, 0x005B}, {0x3D, 0x007E}, {0x3E, 0x005D}, {0x40, 0x007C}, {0x65, 0x20AC}};

static void put_utf8(struct buf *b, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18);
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, o, n);
}

/* Decodes to UTF-8 (appended to out). */
static void text_utf8(struct buf *out, uint8_t dcs, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    switch (dcs) {
    case 0x00: /* GSM-7, one septet per octet (how SMPP carries it) */
        for (size_t i = 0; i < n; i++) {
            uint8_t c = p[i] & 0x7F;
            if (c == 0x1B && i + 1 < n) {
                uint8_t e = p[++i] & 0x7F;
                uint32_t cp = 0xFFFD;
                for (size_t k = 0; k < ARRAY_LEN(gsm_ext); k++)
                    if (gsm_ext[k].code == e)
                        cp = gsm_ext[k].uc;
                put_utf8(out, cp);
                continue;
            }
            put_utf8(out, gsm_basic[c]);
        }
        return;
    case 0x01: /* IA5 / ASCII */
    case 0x03: /* Latin-1 */
        for (size_t i = 0; i < n; i++)
            put_utf8(out, dcs == 1 ? (uint32_t)(p[i] & 0x7F) : p[i]);
        return;
    case 0x08: /* UCS-2 big-endian; surrogate pairs are read as UTF-16 */
        for (size_t i = 0; i + 1 < n; i += 2) {
            uint32_t u = (uint32_t)p[i] << 8 | p[i + 1];
            if (u >= 0xD800 && u < 0xDC00 && i + 3 < n) {
                uint32_t lo = (uint32_t)p[i + 2] << 8 | p[i + 3];
                if (lo >= 0xDC00 && lo < 0xE000) {
                    put_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                    i += 2;
                    continue;
                }
            }
            put_utf8(out, (u >= 0xD800 && u < 0xE000) ? 0xFFFD : u);
        }
        return;
    default: /* binary: hex */
        for (size_t i = 0; i < n; i++) {
            buf_putc(out, hex[p[i] >> 4]);
            buf_putc(out, hex[p[i] & 15]);
        }
        return;
    }
}

void sim_text_json(struct buf *out, uint8_t dcs, const uint8_t *p, size_t n)
{
    struct buf t = BUF_INIT;
    text_utf8(&t, dcs, p, n);
    buf_put_jsonstr(out, t.data ? t.data : "");
    buf_free(&t);
}

/* Next code point of UTF-8 s at *i; -1 on invalid input. */
static long utf8_next(const unsigned char *s, size_t *i)
{
    unsigned char c = s[*i];
    long cp;
    int n;
    if (c < 0x80) {
        cp = c;
        n = 0;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        n = 1;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        n = 2;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07;
        n = 3;
    } else {
        return -1;
    }
    (*i)++;
    for (int k = 0; k < n; k++) {
        if ((s[*i] & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (s[*i] & 0x3F);
        (*i)++;
    }
    return cp;
}

static int gsm_code(long cp, uint8_t *code, int *ext)
{
    for (int k = 0; k < 128; k++)
        if (gsm_basic[k] == cp && k != 0x1B) {
            *code = (uint8_t)k;
            *ext = 0;
            return 1;
        }
    for (size_t k = 0; k < ARRAY_LEN(gsm_ext); k++)
        if (gsm_ext[k].uc == cp) {
            *code = gsm_ext[k].code;
            *ext = 1;
            return 1;
        }
    return 0;
}

int sim_text_encode(const char *utf8, struct buf *out, size_t *bounds, size_t maxb, size_t *nb)
{
    const unsigned char *s = (const unsigned char *)utf8;
    int gsm = 1;
    for (size_t i = 0; s[i];) {
        long cp = utf8_next(s, &i);
        uint8_t code;
        int ext;
        if (cp < 0)
            return -EILSEQ;
        if (!gsm_code(cp, &code, &ext))
            gsm = 0;
    }
    *nb = 0;
    for (size_t i = 0; s[i];) {
        long cp = utf8_next(s, &i);
        if (*nb >= maxb)
            return -E2BIG;
        bounds[(*nb)++] = out->len;
        if (gsm) {
            uint8_t code;
            int ext;
            gsm_code(cp, &code, &ext);
            if (ext)
                buf_putc(out, 0x1B);
            buf_putc(out, (char)code);
        } else if (cp >= 0x10000) {
            long v = cp - 0x10000;
            uint8_t u[4] = {(uint8_t)(0xD8 | (v >> 18)), (uint8_t)(v >> 10),
                            (uint8_t)(0xDC | ((v >> 8) & 3)), (uint8_t)v};
            buf_append(out, u, 4);
        } else {
            uint8_t u[2] = {(uint8_t)(cp >> 8), (uint8_t)cp};
            buf_append(out, u, 2);
        }
    }
    return gsm ? 0 : 8;
}

/* ---- reassembly ------------------------------------------------------- */

struct part_group {
    struct part_group *next;
    char src[24], dst[24];
    uint16_t ref;
    uint8_t total, have, dcs;
    uint64_t first_ms;
    struct buf part[255];
    char ids[255][24];
    uint8_t got[255];
};

static void log_message(struct sim *sim, struct part_group *g)
{
    struct buf *b = &sim->logbuf;
    char t[32];
    util_iso8601(util_wall_us(), t, sizeof(t));
    buf_printf(b, "{\"t\":\"%s\",\"cmd\":\"message\",\"src\":\"", t);
    buf_put_jsonstr(b, g->src);
    buf_puts(b, "\",\"dst\":\"");
    buf_put_jsonstr(b, g->dst);
    buf_printf(b, "\",\"dc\":%u,\"parts\":%u,\"ref\":%u,\"text\":\"", g->dcs, g->total, g->ref);
    /* Concatenate the raw parts first: a UCS-2 surrogate pair may be split
     * across two parts and only decodes right as a whole. */
    struct buf all = BUF_INIT;
    for (unsigned i = 0; i < g->total; i++)
        buf_append(&all, g->part[i].data ? g->part[i].data : "", g->part[i].len);
    sim_text_json(b, g->dcs, (const uint8_t *)(all.data ? all.data : ""), all.len);
    buf_free(&all);
    buf_puts(b, "\",\"ids\":[");
    for (unsigned i = 0; i < g->total; i++) {
        buf_printf(b, "%s\"", i ? "," : "");
        buf_put_jsonstr(b, g->ids[i]);
        buf_putc(b, '"');
    }
    buf_puts(b, "]}\n");
    sim->st.messages++;
}

static void group_free(struct part_group *g)
{
    for (unsigned i = 0; i < 255; i++)
        buf_free(&g->part[i]);
    free(g);
}

static void reassemble(struct sim *sim, const struct smpp_sm *sm, const struct smpp_concat *cc,
                       const uint8_t *ud, size_t udlen, const char *id)
{
    struct part_group **pp = &sim->groups, *g = NULL;
    uint64_t now = uv_now(sim->loop);
    while (*pp) {
        struct part_group *x = *pp;
        if (x->ref == cc->ref && x->total == cc->total && strcmp(x->src, sm->source_addr) == 0 &&
            strcmp(x->dst, sm->dest_addr) == 0) {
            g = x;
            break;
        }
        if (now - x->first_ms > 600000) { /* abandoned after 10 minutes */
            *pp = x->next;
            sim->ngroups--;
            group_free(x);
            continue;
        }
        pp = &x->next;
    }
    if (g == NULL) {
        if (sim->ngroups >= 4096)
            return;
        g = calloc(1, sizeof(*g));
        if (g == NULL)
            return;
        snprintf(g->src, sizeof(g->src), "%s", sm->source_addr);
        snprintf(g->dst, sizeof(g->dst), "%s", sm->dest_addr);
        g->ref = cc->ref;
        g->total = cc->total;
        g->dcs = sm->data_coding;
        g->first_ms = now;
        g->next = sim->groups;
        sim->groups = g;
        sim->ngroups++;
    }
    unsigned i = cc->seq - 1u;
    if (g->got[i])
        return; /* a resent part: the first copy counts */
    g->got[i] = 1;
    g->have++;
    buf_append(&g->part[i], ud, udlen);
    snprintf(g->ids[i], sizeof(g->ids[i]), "%s", id);
    if (g->have < g->total)
        return;
    log_message(sim, g);
    for (pp = &sim->groups; *pp != g; pp = &(*pp)->next)
        ;
    *pp = g->next;
    sim->ngroups--;
    group_free(g);
}

/* ---- PDU lines -------------------------------------------------------- */

struct part_info {
    struct smpp_concat cc;
    const uint8_t *ud;
    size_t udlen;
};

static void sm_fields(struct buf *b, const struct smpp_sm *sm, const char *msgid,
                      struct part_info *pi)
{
    buf_puts(b, ",\"src\":\"");
    buf_put_jsonstr(b, sm->source_addr);
    buf_puts(b, "\",\"dst\":\"");
    buf_put_jsonstr(b, sm->dest_addr);
    buf_printf(b, "\",\"dc\":%u,\"esm\":%u,\"rd\":%u", sm->data_coding, sm->esm_class,
               sm->registered_delivery);
    const uint8_t *ud = sm->short_message;
    size_t udlen = sm->sm_length;
    if (udlen == 0 && (sm->has & SMPP_HAS_PAYLOAD)) {
        ud = sm->message_payload;
        udlen = sm->payload_len;
    }
    struct smpp_concat cc = {0};
    if ((sm->esm_class & SMPP_ESM_UDHI) && udlen) {
        int h = smpp_udh_parse(ud, udlen, &cc);
        if (h < 0) {
            buf_puts(b, ",\"udh\":\"malformed\"");
        } else {
            buf_printf(b, ",\"udh\":{\"len\":%d,\"ref\":%u,\"total\":%u,\"seq\":%u}", h, cc.ref,
                       cc.total, cc.seq);
            ud += h;
            udlen -= (size_t)h;
        }
    } else if (sm->has & SMPP_HAS_SAR) {
        cc.ref = sm->sar_msg_ref_num;
        cc.total = sm->sar_total_segments;
        cc.seq = sm->sar_segment_seqnum;
        if (cc.seq == 0 || cc.seq > cc.total)
            cc.total = 0;
        buf_printf(b, ",\"sar\":{\"ref\":%u,\"total\":%u,\"seq\":%u}", cc.ref, cc.total, cc.seq);
    }
    if (sm->has & SMPP_HAS_PAYLOAD)
        buf_puts(b, ",\"payload\":true");
    buf_puts(b, ",\"text\":\"");
    sim_text_json(b, sm->data_coding, ud, udlen);
    buf_putc(b, '"');
    if (msgid && *msgid) {
        buf_puts(b, ",\"id\":\"");
        buf_put_jsonstr(b, msgid);
        buf_putc(b, '"');
    }
    pi->cc = cc;
    pi->ud = ud;
    pi->udlen = udlen;
}

void simlog_pdu(struct sim *sim, struct sim_conn *c, const struct smpp_pdu *p, uint32_t status,
                const char *msgid)
{
    int is_sm = p->command_id == SMPP_SUBMIT_SM;
    if (!sim->cfg.log_pdus && !(is_sm && status == 0 &&
                                ((p->sm.esm_class & SMPP_ESM_UDHI) || (p->sm.has & SMPP_HAS_SAR))))
        return;
    struct buf *b = &sim->logbuf;
    size_t mark = b->len;
    char t[32];
    util_iso8601(util_wall_us(), t, sizeof(t));
    buf_printf(b, "{\"t\":\"%s\",\"conn\":%u,\"cmd\":\"%s\",\"seq\":%u", t, c->id,
               smpp_cmd_name(p->command_id), p->sequence);
    if (status == 0xFFFFFFFFu)
        buf_puts(b, ",\"dropped\":true");
    else
        buf_printf(b, ",\"status\":%u", status);
    if (p->command_id == SMPP_BIND_TRANSCEIVER || p->command_id == SMPP_BIND_TRANSMITTER ||
        p->command_id == SMPP_BIND_RECEIVER) {
        buf_puts(b, ",\"system_id\":\"");
        buf_put_jsonstr(b, p->system_id);
        buf_putc(b, '"');
    }
    struct part_info pi = {0};
    if (is_sm)
        sm_fields(b, &p->sm, msgid, &pi);
    buf_puts(b, "}\n");
    if (!sim->cfg.log_pdus) { /* only the message line (if any) is wanted */
        b->len = mark;
        if (b->data)
            b->data[mark] = '\0';
    }
    if (is_sm && status == 0 && pi.cc.total > 1 && msgid && *msgid)
        reassemble(sim, &p->sm, &pi.cc, pi.ud, pi.udlen, msgid);
    if (b->len > (1u << 20))
        simlog_flush(sim);
}

void simlog_event(struct sim *sim, const char *event, const char *kvjson)
{
    char t[32];
    util_iso8601(util_wall_us(), t, sizeof(t));
    buf_printf(&sim->logbuf, "{\"t\":\"%s\",\"event\":\"%s\"%s%s}\n", t, event,
               kvjson && *kvjson ? "," : "", kvjson ? kvjson : "");
}

void simlog_stats(struct sim *sim, struct buf *out)
{
    const struct sim_stats *s = &sim->st;
    unsigned nconn = 0, bound = 0;
    size_t unacked = 0;
    for (struct list_node *n = list_first(&sim->conns); n; n = list_next(n)) {
        const struct sim_conn *c = sim_conn_of(n);
        nconn++;
        bound += c->bound != 0;
        unacked += c->unacked.n;
    }
    buf_printf(out,
               "{\"connections\":%u,\"bound\":%u,\"connections_total\":%llu,\"binds\":%llu,"
               "\"bind_refused\":%llu,\"submit_sm\":%llu,\"accepted\":%llu,\"throttled\":%llu,"
               "\"errors\":%llu,\"deliver_sent\":%llu,\"deliver_acked\":%llu,"
               "\"deliver_unacked\":%zu,\"deliver_queued\":%zu,\"deliver_redelivered\":%llu,"
               "\"enquire_link\":%llu,\"drops\":%llu,\"messages\":%llu,\"mo_injected\":%llu,"
               "\"bad_pdus\":%llu}",
               nconn, bound, (unsigned long long)s->connections, (unsigned long long)s->binds,
               (unsigned long long)s->bind_refused, (unsigned long long)s->submit_sm,
               (unsigned long long)s->accepted, (unsigned long long)s->throttled,
               (unsigned long long)s->errors, (unsigned long long)s->deliver_sent,
               (unsigned long long)s->deliver_acked, unacked, sim->queue.n,
               (unsigned long long)s->deliver_redelivered, (unsigned long long)s->enquire_link,
               (unsigned long long)s->drops, (unsigned long long)s->messages,
               (unsigned long long)s->mo_injected, (unsigned long long)s->bad_pdus);
}

void simlog_flush(struct sim *sim)
{
    if (sim->log && sim->logbuf.len) {
        fwrite(sim->logbuf.data, 1, sim->logbuf.len, sim->log);
        fflush(sim->log);
    }
    buf_reset(&sim->logbuf);
}

void simlog_timer_cb(uv_timer_t *t)
{
    simlog_flush(t->data);
}

void simlog_free(struct sim *sim)
{
    while (sim->groups) {
        struct part_group *g = sim->groups;
        sim->groups = g->next;
        group_free(g);
    }
    buf_free(&sim->logbuf);
}
