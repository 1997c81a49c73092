/* smpp_pdu.c - SMPP 3.4 codec: framing, decode (zero-copy), encode. */
#include "smsys/smpp_pdu.h"

#include "smsys/error.h"

#include <errno.h>
#include <string.h>

/* Decode accepts C-strings up to this many characters in every field:
 * real SMSCs exceed the spec's per-field maxima (alphanumeric senders in
 * 21-octet fields, long system ids), and a bounded tolerance costs nothing.
 * Encode keeps to the spec limits below so that strict peers accept us. */
#define DECODE_STR_MAX 65

/* Encode limits (characters, without the NUL), SMPP 3.4 section 4. */
#define LIM_SYSTEM_ID     15
#define LIM_PASSWORD      8
#define LIM_SYSTEM_TYPE   12
#define LIM_ADDRESS_RANGE 40
#define LIM_SERVICE_TYPE  5
#define LIM_ADDR          20
#define LIM_ADDR_DATA_SM  64
#define LIM_TIME          16
#define LIM_MESSAGE_ID    64

/* ---- framing ---------------------------------------------------------- */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int smpp_frame_next(const uint8_t *buf, size_t len, size_t *pdu_len)
{
    if (len < 4)
        return 0;
    uint32_t n = get32(buf);
    if (n < SMPP_HEADER_LEN || n > SMPP_MAX_PDU_LEN)
        return SMSYS_EPROTO;
    if (len < n)
        return 0;
    *pdu_len = n;
    return 1;
}

void smpp_pdu_set_sequence(uint8_t *pdu, uint32_t seq)
{
    pdu[12] = (uint8_t)(seq >> 24);
    pdu[13] = (uint8_t)(seq >> 16);
    pdu[14] = (uint8_t)(seq >> 8);
    pdu[15] = (uint8_t)seq;
}

/* ---- decode ----------------------------------------------------------- */

/* A bounded reader: once `bad` is set every read returns zero/"" and the
 * caller reports SMSYS_EPROTO, so field code needs no per-read checks. */
struct rd {
    const uint8_t *p;
    size_t pos, len;
    int bad;
};

static uint8_t r8(struct rd *r)
{
    if (r->bad || r->pos >= r->len) {
        r->bad = 1;
        return 0;
    }
    return r->p[r->pos++];
}

static uint16_t r16(struct rd *r)
{
    uint16_t hi = r8(r);
    return (uint16_t)(hi << 8 | r8(r));
}

/* A C-octet string: the NUL must lie within the PDU and within max chars. */
static const char *rstr(struct rd *r, size_t max)
{
    if (r->bad)
        return "";
    size_t avail = r->len - r->pos;
    size_t lim = avail < max + 1 ? avail : max + 1;
    const uint8_t *nul = memchr(r->p + r->pos, 0, lim);
    if (nul == NULL) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p + r->pos;
    r->pos = (size_t)(nul - r->p) + 1;
    return s;
}

static const uint8_t *rbytes(struct rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *b = r->p + r->pos;
    r->pos += n;
    return b;
}

static int read_tlvs(struct rd *r, struct smpp_pdu *out)
{
    struct smpp_sm *sm = &out->sm;
    unsigned sar = 0;
    while (!r->bad && r->pos < r->len) {
        if (r->len - r->pos < 4)
            return SMSYS_EPROTO;
        uint16_t tag = r16(r);
        uint16_t n = r16(r);
        const uint8_t *v = rbytes(r, n);
        if (v == NULL)
            return SMSYS_EPROTO;
        switch (tag) {
        case SMPP_TLV_SAR_MSG_REF_NUM:
            if (n != 2)
                return SMSYS_EPROTO;
            sm->sar_msg_ref_num = (uint16_t)(v[0] << 8 | v[1]);
            sar |= 1;
            break;
        case SMPP_TLV_SAR_TOTAL_SEGMENTS:
            if (n != 1)
                return SMSYS_EPROTO;
            sm->sar_total_segments = v[0];
            sar |= 2;
            break;
        case SMPP_TLV_SAR_SEGMENT_SEQNUM:
            if (n != 1)
                return SMSYS_EPROTO;
            sm->sar_segment_seqnum = v[0];
            sar |= 4;
            break;
        case SMPP_TLV_MESSAGE_PAYLOAD:
            sm->message_payload = v;
            sm->payload_len = n;
            sm->has |= SMPP_HAS_PAYLOAD;
            break;
        case SMPP_TLV_RECEIPTED_MESSAGE_ID: {
            /* Some SMSCs omit the NUL: copy up to it or to the TLV's end. */
            if (n > SMPP_MAX_ID_LEN + 1)
                return SMSYS_EPROTO;
            size_t k = 0;
            while (k < n && k < SMPP_MAX_ID_LEN && v[k] != 0) {
                out->receipted_id[k] = (char)v[k];
                k++;
            }
            out->receipted_id[k] = '\0';
            sm->receipted_message_id = out->receipted_id;
            sm->has |= SMPP_HAS_RECEIPTED_ID;
            break;
        }
        case SMPP_TLV_MESSAGE_STATE:
            if (n != 1)
                return SMSYS_EPROTO;
            sm->message_state = v[0];
            sm->has |= SMPP_HAS_MSG_STATE;
            break;
        case SMPP_TLV_NETWORK_ERROR_CODE:
            if (n != 3)
                return SMSYS_EPROTO;
            memcpy(sm->network_error, v, 3);
            sm->has |= SMPP_HAS_NETWORK_ERROR;
            break;
        case SMPP_TLV_SC_INTERFACE_VERSION:
            if (n != 1)
                return SMSYS_EPROTO;
            out->sc_interface_version = v[0];
            out->has |= SMPP_HAS_SC_VERSION;
            break;
        default:
            break; /* unknown optional parameters are ignored, as the spec asks */
        }
    }
    if (sar == 7)
        sm->has |= SMPP_HAS_SAR;
    else if (sar != 0)
        return SMSYS_EPROTO; /* a partial SAR set cannot be reassembled */
    return r->bad ? SMSYS_EPROTO : 0;
}

static void read_addr(struct rd *r, uint8_t *ton, uint8_t *npi, const char **addr)
{
    *ton = r8(r);
    *npi = r8(r);
    *addr = rstr(r, DECODE_STR_MAX);
}

int smpp_pdu_decode(const uint8_t *buf, size_t len, struct smpp_pdu *out)
{
    memset(out, 0, sizeof(*out));
    if (buf == NULL || len < SMPP_HEADER_LEN || get32(buf) != len)
        return SMSYS_EPROTO;
    out->command_id = get32(buf + 4);
    out->command_status = get32(buf + 8);
    out->sequence = get32(buf + 12);
    struct rd r = {buf, SMPP_HEADER_LEN, len, 0};
    struct smpp_sm *sm = &out->sm;
    switch (out->command_id) {
    case SMPP_BIND_RECEIVER:
    case SMPP_BIND_TRANSMITTER:
    case SMPP_BIND_TRANSCEIVER:
        out->system_id = rstr(&r, DECODE_STR_MAX);
        out->password = rstr(&r, DECODE_STR_MAX);
        out->system_type = rstr(&r, DECODE_STR_MAX);
        out->interface_version = r8(&r);
        out->addr_ton = r8(&r);
        out->addr_npi = r8(&r);
        out->address_range = rstr(&r, DECODE_STR_MAX);
        break;
    case SMPP_BIND_RECEIVER_RESP:
    case SMPP_BIND_TRANSMITTER_RESP:
    case SMPP_BIND_TRANSCEIVER_RESP:
        out->system_id = "";
        if (r.pos < len) {
            out->system_id = rstr(&r, DECODE_STR_MAX);
            if (!r.bad)
                return read_tlvs(&r, out);
        }
        break;
    case SMPP_SUBMIT_SM:
    case SMPP_DELIVER_SM:
        sm->service_type = rstr(&r, DECODE_STR_MAX);
        read_addr(&r, &sm->source_ton, &sm->source_npi, &sm->source_addr);
        read_addr(&r, &sm->dest_ton, &sm->dest_npi, &sm->dest_addr);
        sm->esm_class = r8(&r);
        sm->protocol_id = r8(&r);
        sm->priority = r8(&r);
        sm->schedule_delivery_time = rstr(&r, DECODE_STR_MAX);
        sm->validity_period = rstr(&r, DECODE_STR_MAX);
        sm->registered_delivery = r8(&r);
        sm->replace_if_present = r8(&r);
        sm->data_coding = r8(&r);
        sm->sm_default_msg_id = r8(&r);
        sm->sm_length = r8(&r);
        if (sm->sm_length > 254)
            return SMSYS_EPROTO;
        sm->short_message = rbytes(&r, sm->sm_length);
        if (r.bad)
            return SMSYS_EPROTO;
        return read_tlvs(&r, out);
    case SMPP_DATA_SM:
        sm->service_type = rstr(&r, DECODE_STR_MAX);
        read_addr(&r, &sm->source_ton, &sm->source_npi, &sm->source_addr);
        read_addr(&r, &sm->dest_ton, &sm->dest_npi, &sm->dest_addr);
        sm->esm_class = r8(&r);
        sm->registered_delivery = r8(&r);
        sm->data_coding = r8(&r);
        if (r.bad)
            return SMSYS_EPROTO;
        return read_tlvs(&r, out);
    case SMPP_SUBMIT_SM_RESP:
    case SMPP_DELIVER_SM_RESP:
    case SMPP_DATA_SM_RESP:
        out->message_id = "";
        if (r.pos < len)
            out->message_id = rstr(&r, DECODE_STR_MAX);
        /* data_sm_resp may carry TLVs we do not need; they are skipped. */
        break;
    case SMPP_UNBIND:
    case SMPP_UNBIND_RESP:
    case SMPP_ENQUIRE_LINK:
    case SMPP_ENQUIRE_LINK_RESP:
    case SMPP_GENERIC_NACK:
        break;
    default:
        return -ENOTSUP;
    }
    return r.bad ? SMSYS_EPROTO : 0;
}

/* ---- encode ----------------------------------------------------------- */

/* A bounded writer; with p == NULL it only counts (smpp_pdu_size). */
struct wr {
    uint8_t *p;
    size_t len, cap;
    int toobig;
};

static void w8(struct wr *w, uint8_t v)
{
    if (w->p && w->len < w->cap)
        w->p[w->len] = v;
    w->len++;
}

static void w16(struct wr *w, uint16_t v)
{
    w8(w, (uint8_t)(v >> 8));
    w8(w, (uint8_t)v);
}

static void w32(struct wr *w, uint32_t v)
{
    w16(w, (uint16_t)(v >> 16));
    w16(w, (uint16_t)v);
}

static void wbytes(struct wr *w, const void *b, size_t n)
{
    if (w->p && n && w->len <= w->cap && w->cap - w->len >= n)
        memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void wstr(struct wr *w, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max)
        w->toobig = 1;
    wbytes(w, s ? s : "", n);
    w8(w, 0);
}

static void wtlv_bytes(struct wr *w, uint16_t tag, const void *v, size_t n)
{
    if (n > 65535)
        w->toobig = 1;
    w16(w, tag);
    w16(w, (uint16_t)n);
    wbytes(w, v, n);
}

static void write_sm_tlvs(struct wr *w, const struct smpp_sm *sm)
{
    if (sm->has & SMPP_HAS_SAR) {
        uint8_t ref[2] = {(uint8_t)(sm->sar_msg_ref_num >> 8), (uint8_t)sm->sar_msg_ref_num};
        wtlv_bytes(w, SMPP_TLV_SAR_MSG_REF_NUM, ref, 2);
        wtlv_bytes(w, SMPP_TLV_SAR_TOTAL_SEGMENTS, &sm->sar_total_segments, 1);
        wtlv_bytes(w, SMPP_TLV_SAR_SEGMENT_SEQNUM, &sm->sar_segment_seqnum, 1);
    }
    if (sm->has & SMPP_HAS_PAYLOAD)
        wtlv_bytes(w, SMPP_TLV_MESSAGE_PAYLOAD, sm->message_payload, sm->payload_len);
    if (sm->has & SMPP_HAS_RECEIPTED_ID) {
        const char *id = sm->receipted_message_id ? sm->receipted_message_id : "";
        size_t n = strlen(id);
        if (n > LIM_MESSAGE_ID)
            w->toobig = 1;
        wtlv_bytes(w, SMPP_TLV_RECEIPTED_MESSAGE_ID, id, n + 1);
    }
    if (sm->has & SMPP_HAS_MSG_STATE)
        wtlv_bytes(w, SMPP_TLV_MESSAGE_STATE, &sm->message_state, 1);
    if (sm->has & SMPP_HAS_NETWORK_ERROR)
        wtlv_bytes(w, SMPP_TLV_NETWORK_ERROR_CODE, sm->network_error, 3);
}

static void write_addr(struct wr *w, uint8_t ton, uint8_t npi, const char *a, size_t max)
{
    w8(w, ton);
    w8(w, npi);
    wstr(w, a, max);
}

/* Writes the whole PDU through w. Returns 0 or -ENOTSUP. */
static int write_pdu(struct wr *w, const struct smpp_pdu *p)
{
    const struct smpp_sm *sm = &p->sm;
    w32(w, 0); /* command_length, patched below */
    w32(w, p->command_id);
    w32(w, p->command_status);
    w32(w, p->sequence);
    switch (p->command_id) {
    case SMPP_BIND_RECEIVER:
    case SMPP_BIND_TRANSMITTER:
    case SMPP_BIND_TRANSCEIVER:
        wstr(w, p->system_id, LIM_SYSTEM_ID);
        wstr(w, p->password, LIM_PASSWORD);
        wstr(w, p->system_type, LIM_SYSTEM_TYPE);
        w8(w, p->interface_version ? p->interface_version : 0x34);
        w8(w, p->addr_ton);
        w8(w, p->addr_npi);
        wstr(w, p->address_range, LIM_ADDRESS_RANGE);
        break;
    case SMPP_BIND_RECEIVER_RESP:
    case SMPP_BIND_TRANSMITTER_RESP:
    case SMPP_BIND_TRANSCEIVER_RESP:
        wstr(w, p->system_id, LIM_SYSTEM_ID);
        if (p->has & SMPP_HAS_SC_VERSION)
            wtlv_bytes(w, SMPP_TLV_SC_INTERFACE_VERSION, &p->sc_interface_version, 1);
        break;
    case SMPP_SUBMIT_SM:
    case SMPP_DELIVER_SM:
        wstr(w, sm->service_type, LIM_SERVICE_TYPE);
        write_addr(w, sm->source_ton, sm->source_npi, sm->source_addr, LIM_ADDR);
        write_addr(w, sm->dest_ton, sm->dest_npi, sm->dest_addr, LIM_ADDR);
        w8(w, sm->esm_class);
        w8(w, sm->protocol_id);
        w8(w, sm->priority);
        wstr(w, sm->schedule_delivery_time, LIM_TIME);
        wstr(w, sm->validity_period, LIM_TIME);
        w8(w, sm->registered_delivery);
        w8(w, sm->replace_if_present);
        w8(w, sm->data_coding);
        w8(w, sm->sm_default_msg_id);
        if (sm->sm_length > 254)
            w->toobig = 1;
        w8(w, (uint8_t)sm->sm_length);
        wbytes(w, sm->short_message, sm->sm_length);
        write_sm_tlvs(w, sm);
        break;
    case SMPP_DATA_SM:
        wstr(w, sm->service_type, LIM_SERVICE_TYPE);
        write_addr(w, sm->source_ton, sm->source_npi, sm->source_addr, LIM_ADDR_DATA_SM);
        write_addr(w, sm->dest_ton, sm->dest_npi, sm->dest_addr, LIM_ADDR_DATA_SM);
        w8(w, sm->esm_class);
        w8(w, sm->registered_delivery);
        w8(w, sm->data_coding);
        write_sm_tlvs(w, sm);
        break;
    case SMPP_SUBMIT_SM_RESP:
    case SMPP_DATA_SM_RESP:
    case SMPP_DELIVER_SM_RESP:
        wstr(w, p->message_id, LIM_MESSAGE_ID);
        break;
    case SMPP_UNBIND:
    case SMPP_UNBIND_RESP:
    case SMPP_ENQUIRE_LINK:
    case SMPP_ENQUIRE_LINK_RESP:
    case SMPP_GENERIC_NACK:
        break;
    default:
        return -ENOTSUP;
    }
    if (w->len > SMPP_MAX_PDU_LEN)
        w->toobig = 1;
    if (w->p && w->len <= w->cap) {
        uint32_t n = (uint32_t)w->len;
        w->p[0] = (uint8_t)(n >> 24);
        w->p[1] = (uint8_t)(n >> 16);
        w->p[2] = (uint8_t)(n >> 8);
        w->p[3] = (uint8_t)n;
    }
    return 0;
}

size_t smpp_pdu_size(const struct smpp_pdu *p)
{
    struct wr w = {NULL, 0, 0, 0};
    if (write_pdu(&w, p) != 0 || w.toobig)
        return 0;
    return w.len;
}

int smpp_pdu_encode(const struct smpp_pdu *p, uint8_t *out, size_t cap)
{
    struct wr w = {out, 0, cap, 0};
    int rc = write_pdu(&w, p);
    if (rc)
        return rc;
    if (w.toobig)
        return SMSYS_ETOOBIG;
    if (w.len > cap)
        return -ENOSPC;
    return (int)w.len;
}

/* ---- names and classes ------------------------------------------------ */

const char *smpp_cmd_name(uint32_t id)
{
    switch (id) {
    case SMPP_GENERIC_NACK:
        return "generic_nack";
    case SMPP_BIND_RECEIVER:
        return "bind_receiver";
    case SMPP_BIND_RECEIVER_RESP:
        return "bind_receiver_resp";
    case SMPP_BIND_TRANSMITTER:
        return "bind_transmitter";
    case SMPP_BIND_TRANSMITTER_RESP:
        return "bind_transmitter_resp";
    case SMPP_BIND_TRANSCEIVER:
        return "bind_transceiver";
    case SMPP_BIND_TRANSCEIVER_RESP:
        return "bind_transceiver_resp";
    case SMPP_SUBMIT_SM:
        return "submit_sm";
    case SMPP_SUBMIT_SM_RESP:
        return "submit_sm_resp";
    case SMPP_DELIVER_SM:
        return "deliver_sm";
    case SMPP_DELIVER_SM_RESP:
        return "deliver_sm_resp";
    case SMPP_UNBIND:
        return "unbind";
    case SMPP_UNBIND_RESP:
        return "unbind_resp";
    case SMPP_ENQUIRE_LINK:
        return "enquire_link";
    case SMPP_ENQUIRE_LINK_RESP:
        return "enquire_link_resp";
    case SMPP_DATA_SM:
        return "data_sm";
    case SMPP_DATA_SM_RESP:
        return "data_sm_resp";
    default:
        return "unknown";
    }
}

const char *smpp_status_name(uint32_t st)
{
    switch (st) {
    case SMPP_ESME_ROK:
        return "ESME_ROK";
    case SMPP_ESME_RINVMSGLEN:
        return "ESME_RINVMSGLEN";
    case SMPP_ESME_RINVCMDLEN:
        return "ESME_RINVCMDLEN";
    case SMPP_ESME_RINVCMDID:
        return "ESME_RINVCMDID";
    case SMPP_ESME_RINVBNDSTS:
        return "ESME_RINVBNDSTS";
    case SMPP_ESME_RALYBND:
        return "ESME_RALYBND";
    case SMPP_ESME_RSYSERR:
        return "ESME_RSYSERR";
    case SMPP_ESME_RINVSRCADR:
        return "ESME_RINVSRCADR";
    case SMPP_ESME_RINVDSTADR:
        return "ESME_RINVDSTADR";
    case SMPP_ESME_RBINDFAIL:
        return "ESME_RBINDFAIL";
    case SMPP_ESME_RINVPASWD:
        return "ESME_RINVPASWD";
    case SMPP_ESME_RINVSYSID:
        return "ESME_RINVSYSID";
    case SMPP_ESME_RMSGQFUL:
        return "ESME_RMSGQFUL";
    case SMPP_ESME_RSUBMITFAIL:
        return "ESME_RSUBMITFAIL";
    case SMPP_ESME_RTHROTTLED:
        return "ESME_RTHROTTLED";
    case SMPP_ESME_RX_T_APPN:
        return "ESME_RX_T_APPN";
    case SMPP_ESME_RX_P_APPN:
        return "ESME_RX_P_APPN";
    case SMPP_ESME_RX_R_APPN:
        return "ESME_RX_R_APPN";
    case SMPP_ESME_RUNKNOWNERR:
        return "ESME_RUNKNOWNERR";
    default:
        return "ESME_UNKNOWN_CODE";
    }
}

int smpp_status_class(uint32_t st)
{
    switch (st) {
    case SMPP_ESME_ROK:
        return 0;
    case SMPP_ESME_RTHROTTLED:
    case SMPP_ESME_RMSGQFUL:
        return SMSYS_ETHROTTLED;
    case SMPP_ESME_RBINDFAIL:
    case SMPP_ESME_RINVPASWD:
    case SMPP_ESME_RINVSYSID:
        return SMSYS_EAUTH;
    case SMPP_ESME_RINVMSGLEN:
    case SMPP_ESME_RINVSRCADR:
    case SMPP_ESME_RINVDSTADR:
    case 0x0C: /* ESME_RINVMSGID */
    case 0x33: /* ESME_RINVNUMDESTS */
    case 0x40: /* ESME_RINVDESTFLAG */
    case 0x42: /* ESME_RINVSUBREP */
    case 0x43: /* ESME_RINVESMCLASS */
    case 0x48: /* ESME_RINVSRCTON */
    case 0x49: /* ESME_RINVSRCNPI */
    case 0x50: /* ESME_RINVDSTTON */
    case 0x51: /* ESME_RINVDSTNPI */
    case 0x61: /* ESME_RINVSCHED */
    case 0x62: /* ESME_RINVEXPIRY */
    case SMPP_ESME_RX_P_APPN:
    case SMPP_ESME_RX_R_APPN:
        return SMSYS_EPERM;
    default:
        /* RSYSERR, RSUBMITFAIL, RX_T_APPN and codes we do not know:
         * retrying later is the safe reading. */
        return SMSYS_ETEMP;
    }
}

/* ---- UDH -------------------------------------------------------------- */

int smpp_udh_parse(const uint8_t *ud, size_t len, struct smpp_concat *c)
{
    memset(c, 0, sizeof(*c));
    if (len < 1 || (size_t)ud[0] + 1 > len)
        return SMSYS_EPROTO;
    size_t end = (size_t)ud[0] + 1;
    size_t i = 1;
    while (i < end) {
        if (end - i < 2)
            return SMSYS_EPROTO;
        uint8_t iei = ud[i], iel = ud[i + 1];
        i += 2;
        if (iel > end - i)
            return SMSYS_EPROTO;
        if (iei == 0x00 && iel == 3) {
            c->ref = ud[i];
            c->total = ud[i + 1];
            c->seq = ud[i + 2];
            c->ref16 = 0;
        } else if (iei == 0x08 && iel == 4) {
            c->ref = (uint16_t)(ud[i] << 8 | ud[i + 1]);
            c->total = ud[i + 2];
            c->seq = ud[i + 3];
            c->ref16 = 1;
        }
        i += iel;
    }
    if (c->total && (c->seq == 0 || c->seq > c->total))
        c->total = 0; /* not a usable concatenation header: treat as single */
    return (int)end;
}
