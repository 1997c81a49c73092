/* smpp_pdu.h - SMPP 3.4 PDU codec, stream framing and UDH helpers.
 *
 * Our own codec (docs/smpp.md says why not libsmpp34). Decoding is
 * zero-copy: string and octet fields of a decoded struct smpp_pdu point
 * into the caller's input buffer, so the PDU is valid only as long as that
 * buffer is. Decoding never reads past `len`, whatever the bytes say:
 * lengths that lie, C-strings without their NUL and TLVs that overrun the
 * body are errors. Nothing here allocates.
 *
 * Encoding reads the same struct: NULL strings are sent as "", absent
 * optional parameters (flags in `has`) are not sent. */
#ifndef SMSYS_SMPP_PDU_H
#define SMSYS_SMPP_PDU_H

#include <stddef.h>
#include <stdint.h>

/* command_id values; a response is the request's id | SMPP_RESP. */
#define SMPP_RESP                  0x80000000u
#define SMPP_GENERIC_NACK          0x80000000u
#define SMPP_BIND_RECEIVER         0x00000001u
#define SMPP_BIND_TRANSMITTER      0x00000002u
#define SMPP_SUBMIT_SM             0x00000004u
#define SMPP_DELIVER_SM            0x00000005u
#define SMPP_UNBIND                0x00000006u
#define SMPP_BIND_TRANSCEIVER      0x00000009u
#define SMPP_ENQUIRE_LINK          0x00000015u
#define SMPP_DATA_SM               0x00000103u
#define SMPP_BIND_RECEIVER_RESP    (SMPP_BIND_RECEIVER | SMPP_RESP)
#define SMPP_BIND_TRANSMITTER_RESP (SMPP_BIND_TRANSMITTER | SMPP_RESP)
#define SMPP_BIND_TRANSCEIVER_RESP (SMPP_BIND_TRANSCEIVER | SMPP_RESP)
#define SMPP_SUBMIT_SM_RESP        (SMPP_SUBMIT_SM | SMPP_RESP)
#define SMPP_DELIVER_SM_RESP       (SMPP_DELIVER_SM | SMPP_RESP)
#define SMPP_UNBIND_RESP           (SMPP_UNBIND | SMPP_RESP)
#define SMPP_ENQUIRE_LINK_RESP     (SMPP_ENQUIRE_LINK | SMPP_RESP)
#define SMPP_DATA_SM_RESP          (SMPP_DATA_SM | SMPP_RESP)

/* command_status values we act on (the full list is in the spec, 5.1.3). */
#define SMPP_ESME_ROK         0x00u
#define SMPP_ESME_RINVMSGLEN  0x01u
#define SMPP_ESME_RINVCMDLEN  0x02u
#define SMPP_ESME_RINVCMDID   0x03u
#define SMPP_ESME_RINVBNDSTS  0x04u
#define SMPP_ESME_RALYBND     0x05u
#define SMPP_ESME_RSYSERR     0x08u
#define SMPP_ESME_RINVSRCADR  0x0Au
#define SMPP_ESME_RINVDSTADR  0x0Bu
#define SMPP_ESME_RBINDFAIL   0x0Du
#define SMPP_ESME_RINVPASWD   0x0Eu
#define SMPP_ESME_RINVSYSID   0x0Fu
#define SMPP_ESME_RMSGQFUL    0x14u
#define SMPP_ESME_RSUBMITFAIL 0x45u
#define SMPP_ESME_RTHROTTLED  0x58u
#define SMPP_ESME_RX_T_APPN   0x64u
#define SMPP_ESME_RX_P_APPN   0x65u
#define SMPP_ESME_RX_R_APPN   0x66u
#define SMPP_ESME_RUNKNOWNERR 0xFFu

/* message_state (TLV 0x0427) values. */
enum smpp_msg_state {
    SMPP_STATE_NONE = 0, /* not reported */
    SMPP_STATE_ENROUTE = 1,
    SMPP_STATE_DELIVERED = 2,
    SMPP_STATE_EXPIRED = 3,
    SMPP_STATE_DELETED = 4,
    SMPP_STATE_UNDELIVERABLE = 5,
    SMPP_STATE_ACCEPTED = 6,
    SMPP_STATE_UNKNOWN = 7,
    SMPP_STATE_REJECTED = 8
};

/* TLV tags we decode/encode. Other TLVs are skipped (bounds-checked). */
#define SMPP_TLV_RECEIPTED_MESSAGE_ID 0x001Eu
#define SMPP_TLV_SAR_MSG_REF_NUM      0x020Cu
#define SMPP_TLV_SAR_TOTAL_SEGMENTS   0x020Eu
#define SMPP_TLV_SAR_SEGMENT_SEQNUM   0x020Fu
#define SMPP_TLV_SC_INTERFACE_VERSION 0x0210u
#define SMPP_TLV_NETWORK_ERROR_CODE   0x0423u
#define SMPP_TLV_MESSAGE_PAYLOAD      0x0424u
#define SMPP_TLV_MESSAGE_STATE        0x0427u

/* Bits of smpp_sm.has / smpp_pdu.has: which optional parameters are set. */
#define SMPP_HAS_SAR           0x01u /* all three sar_* */
#define SMPP_HAS_PAYLOAD       0x02u
#define SMPP_HAS_RECEIPTED_ID  0x04u
#define SMPP_HAS_MSG_STATE     0x08u
#define SMPP_HAS_NETWORK_ERROR 0x10u
#define SMPP_HAS_SC_VERSION    0x20u

/* esm_class bits. */
#define SMPP_ESM_UDHI         0x40u
#define SMPP_ESM_TYPE_MASK    0x3Cu
#define SMPP_ESM_TYPE_RECEIPT 0x04u

#define SMPP_HEADER_LEN 16u
/* Largest PDU we accept from a stream: a 64 KiB message_payload plus the
 * fixed fields. Anything bigger means the stream is out of sync. */
#define SMPP_MAX_PDU_LEN (65536u + 1024u)
#define SMPP_MAX_ID_LEN  65u /* message_id, receipted_message_id: C-string max */

/* The short-message fields shared by submit_sm, deliver_sm and data_sm
 * (data_sm has no short_message and no timing fields; they are ignored). */
struct smpp_sm {
    const char *service_type;
    uint8_t source_ton, source_npi;
    const char *source_addr;
    uint8_t dest_ton, dest_npi;
    const char *dest_addr;
    uint8_t esm_class, protocol_id, priority;
    const char *schedule_delivery_time, *validity_period;
    uint8_t registered_delivery, replace_if_present, data_coding, sm_default_msg_id;
    const uint8_t *short_message; /* may start with a UDH (esm_class & SMPP_ESM_UDHI) */
    size_t sm_length;             /* <= 254 */
    /* Optional parameters, valid when flagged in `has`. */
    unsigned has;
    uint16_t sar_msg_ref_num;
    uint8_t sar_total_segments, sar_segment_seqnum;
    const uint8_t *message_payload;
    size_t payload_len;               /* <= 65535 */
    const char *receipted_message_id; /* decode: points into pdu->receipted_id */
    uint8_t message_state;
    uint8_t network_error[3]; /* type, code (2 bytes, big-endian) */
};

/* A whole PDU: header plus the fields of its body that our commands use. */
struct smpp_pdu {
    uint32_t command_id;
    uint32_t command_status;
    uint32_t sequence;
    /* bind_*: system_id, password, system_type, interface_version, addr_*;
     * bind_*_resp: system_id (+ sc_interface_version TLV). */
    const char *system_id, *password, *system_type, *address_range;
    uint8_t interface_version, addr_ton, addr_npi;
    uint8_t sc_interface_version;
    unsigned has; /* SMPP_HAS_SC_VERSION for bind_*_resp */
    /* submit_sm_resp, deliver_sm_resp, data_sm_resp. */
    const char *message_id;
    /* submit_sm, deliver_sm, data_sm. */
    struct smpp_sm sm;
    /* Decode storage for receipted_message_id: the TLV may lack its NUL. */
    char receipted_id[SMPP_MAX_ID_LEN + 1];
};

/* Finds the next PDU in a TCP stream. Returns 1 and sets *pdu_len when
 * buf starts with a whole PDU, 0 when more bytes are needed, or
 * SMSYS_EPROTO when command_length is below 16 or above SMPP_MAX_PDU_LEN
 * (the stream cannot be resynchronised: close the connection). */
int smpp_frame_next(const uint8_t *buf, size_t len, size_t *pdu_len);

/* Decodes one whole PDU (len == its command_length). Returns 0; -ENOTSUP
 * for a command we do not decode (header fields are set: answer
 * generic_nack ESME_RINVCMDID); SMSYS_EPROTO for a malformed PDU (header
 * fields are set when the header itself was readable). *out is
 * overwritten; its pointers borrow buf. A response with a non-zero status
 * and an empty body is accepted (many SMSCs omit the body). */
int smpp_pdu_decode(const uint8_t *buf, size_t len, struct smpp_pdu *out);

/* Size of p encoded, or 0 when a field is over its SMPP limit. */
size_t smpp_pdu_size(const struct smpp_pdu *p);

/* Encodes p into out[0..cap). Returns the length written (> 0), -ENOSPC
 * when cap is too small, SMSYS_ETOOBIG when a field is over its SMPP
 * limit, -ENOTSUP for a command we do not encode. */
int smpp_pdu_encode(const struct smpp_pdu *p, uint8_t *out, size_t cap);

/* Overwrites the sequence number of an encoded PDU (the session encodes a
 * submit once and numbers it when it goes on the wire). */
void smpp_pdu_set_sequence(uint8_t *pdu, uint32_t sequence);

/* Static names for logs: "submit_sm", "ESME_RTHROTTLED", ... */
const char *smpp_cmd_name(uint32_t command_id);
const char *smpp_status_name(uint32_t command_status);

/* Error class of a non-zero command_status (providers.md): SMSYS_ETHROTTLED
 * (0x58, 0x14), SMSYS_ETEMP (0x08, 0x45, 0x64, unknown codes), SMSYS_EAUTH
 * (bind failures 0x0D-0x0F), SMSYS_EPERM (invalid addresses, length, data).
 * 0 for ESME_ROK. */
int smpp_status_class(uint32_t command_status);

/* Concatenation info of a user data header. */
struct smpp_concat {
    uint16_t ref;  /* reference number (8 or 16 bit IE) */
    uint8_t total; /* number of parts */
    uint8_t seq;   /* this part, 1-based */
    int ref16;     /* 1 when IEI 0x08 (16-bit reference) */
};

/* Parses the UDH at the start of ud (short_message with UDHI set).
 * Returns the UDH length in bytes including its length octet (> 0) and
 * fills *c (total = 0 when no concatenation IE is present), or
 * SMSYS_EPROTO when the UDH overruns ud or an IE overruns the UDH. */
int smpp_udh_parse(const uint8_t *ud, size_t len, struct smpp_concat *c);

#endif
