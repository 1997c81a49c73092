/* Unit tests for the SMPP codec, framing, UDH, receipts and id matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/smpp_pdu.h"
#include "smsys/smpp_receipt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* bind_transceiver "smppclient1"/"password", version 0x34, built by hand
 * from SMPP 3.4 section 4.1.5. */
static const uint8_t v_bind[] = {0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x01, 's',  'm',  'p',  'p',  'c',  'l',
                                 'i',  'e',  'n',  't',  '1',  0x00, 'p',  'a',  's',  's',  'w',
                                 'o',  'r',  'd',  0x00, 0x00, 0x34, 0x00, 0x00, 0x00};

/* submit_sm 123 -> 456, UDHI, registered_delivery 1, UCS-2 "Hi" with a
 * concatenation UDH (ref 0x2A, part 1 of 2). */
static const uint8_t v_submit_udh[] = {0x00, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00,
                                       0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x01, '1',
                                       '2',  '3',  0x00, 0x01, 0x01, '4',  '5',  '6',  0x00, 0x40,
                                       0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x00, 0x0A, 0x05,
                                       0x00, 0x03, 0x2A, 0x02, 0x01, 0x00, 'H',  0x00, 'i'};

/* submit_sm with SAR TLVs (ref 7, 3 parts, part 1), a message_payload
 * "abc" instead of short_message, and a trailing unknown TLV 0x1403 that
 * decode must skip (the last 6 bytes; encode produces the 58 before). */
static const uint8_t v_submit_tlv[] = {
    0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
    0x00, 0x00, 0x00, 'A',  0x00, 0x01, 0x01, '9',  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x02, 0x0C, 0x00, 0x02, 0x00, 0x07, 0x02, 0x0E, 0x00, 0x01, 0x03, 0x02, 0x0F,
    0x00, 0x01, 0x01, 0x04, 0x24, 0x00, 0x03, 'a',  'b',  'c',  0x14, 0x03, 0x00, 0x02, 0xAA, 0xBB};

/* deliver_sm receipt: esm_class 0x04, text, receipted_message_id "1A2B",
 * message_state 2. */
static const char receipt_text[] = "id:1A2B sub:001 dlvrd:001 submit date:2611280755 done "
                                   "date:2611280756 stat:DELIVRD err:000 text:hello";

static size_t build_receipt(uint8_t *out, size_t cap)
{
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_DELIVER_SM;
    p.sequence = 9;
    p.sm.source_addr = "456";
    p.sm.dest_addr = "123";
    p.sm.esm_class = SMPP_ESM_TYPE_RECEIPT;
    p.sm.short_message = (const uint8_t *)receipt_text;
    p.sm.sm_length = strlen(receipt_text);
    p.sm.has = SMPP_HAS_RECEIPTED_ID | SMPP_HAS_MSG_STATE;
    p.sm.receipted_message_id = "1A2B";
    p.sm.message_state = SMPP_STATE_DELIVERED;
    int n = smpp_pdu_encode(&p, out, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static void test_bind_vector(void **state)
{
    (void)state;
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_BIND_TRANSCEIVER;
    p.sequence = 1;
    p.system_id = "smppclient1";
    p.password = "password";
    uint8_t out[128];
    int n = smpp_pdu_encode(&p, out, sizeof(out));
    assert_int_equal(n, sizeof(v_bind));
    assert_memory_equal(out, v_bind, sizeof(v_bind));
    assert_int_equal(smpp_pdu_size(&p), sizeof(v_bind));
    /* too small an output buffer is reported, not overrun */
    assert_int_equal(smpp_pdu_encode(&p, out, 20), -ENOSPC);

    struct smpp_pdu d;
    assert_int_equal(smpp_pdu_decode(v_bind, sizeof(v_bind), &d), 0);
    assert_int_equal(d.command_id, SMPP_BIND_TRANSCEIVER);
    assert_int_equal(d.sequence, 1);
    assert_string_equal(d.system_id, "smppclient1");
    assert_string_equal(d.password, "password");
    assert_string_equal(d.system_type, "");
    assert_int_equal(d.interface_version, 0x34);
    /* a password over the 8-character limit is refused on encode */
    p.password = "123456789";
    assert_int_equal(smpp_pdu_encode(&p, out, sizeof(out)), SMSYS_ETOOBIG);
    assert_int_equal(smpp_pdu_size(&p), 0);
}

static void test_submit_udh_vector(void **state)
{
    (void)state;
    static const uint8_t sm[] = {0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, 0x00, 'H', 0x00, 'i'};
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_SUBMIT_SM;
    p.sequence = 7;
    p.sm.source_ton = p.sm.source_npi = p.sm.dest_ton = p.sm.dest_npi = 1;
    p.sm.source_addr = "123";
    p.sm.dest_addr = "456";
    p.sm.esm_class = SMPP_ESM_UDHI;
    p.sm.registered_delivery = 1;
    p.sm.data_coding = 8;
    p.sm.short_message = sm;
    p.sm.sm_length = sizeof(sm);
    uint8_t out[128];
    int n = smpp_pdu_encode(&p, out, sizeof(out));
    assert_int_equal(n, sizeof(v_submit_udh));
    assert_memory_equal(out, v_submit_udh, sizeof(v_submit_udh));

    struct smpp_pdu d;
    assert_int_equal(smpp_pdu_decode(v_submit_udh, sizeof(v_submit_udh), &d), 0);
    assert_int_equal(d.sequence, 7);
    assert_string_equal(d.sm.source_addr, "123");
    assert_string_equal(d.sm.dest_addr, "456");
    assert_int_equal(d.sm.esm_class, 0x40);
    assert_int_equal(d.sm.data_coding, 8);
    assert_int_equal(d.sm.sm_length, 10);
    assert_memory_equal(d.sm.short_message, sm, sizeof(sm));
    struct smpp_concat c;
    assert_int_equal(smpp_udh_parse(d.sm.short_message, d.sm.sm_length, &c), 6);
    assert_int_equal(c.ref, 0x2A);
    assert_int_equal(c.total, 2);
    assert_int_equal(c.seq, 1);
    /* 16-bit reference IE */
    static const uint8_t udh16[] = {0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02, 'x'};
    assert_int_equal(smpp_udh_parse(udh16, sizeof(udh16), &c), 7);
    assert_int_equal(c.ref, 0x1234);
    assert_int_equal(c.seq, 2);
    assert_int_equal(c.ref16, 1);
    /* UDH length past the data, IE past the UDH */
    static const uint8_t bad1[] = {0x09, 0x00, 0x03, 0x01};
    assert_int_equal(smpp_udh_parse(bad1, sizeof(bad1), &c), SMSYS_EPROTO);
    static const uint8_t bad2[] = {0x03, 0x00, 0x05, 0x01, 0x02};
    assert_int_equal(smpp_udh_parse(bad2, sizeof(bad2), &c), SMSYS_EPROTO);

    /* the sequence is patched in place */
    smpp_pdu_set_sequence(out, 0x01020304);
    assert_int_equal(smpp_pdu_decode(out, (size_t)n, &d), 0);
    assert_int_equal(d.sequence, 0x01020304);
}

static void test_submit_tlv_vector(void **state)
{
    (void)state;
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_SUBMIT_SM;
    p.sequence = 8;
    p.sm.source_addr = "A";
    p.sm.dest_ton = p.sm.dest_npi = 1;
    p.sm.dest_addr = "9";
    p.sm.has = SMPP_HAS_SAR | SMPP_HAS_PAYLOAD;
    p.sm.sar_msg_ref_num = 7;
    p.sm.sar_total_segments = 3;
    p.sm.sar_segment_seqnum = 1;
    p.sm.message_payload = (const uint8_t *)"abc";
    p.sm.payload_len = 3;
    uint8_t out[128];
    int n = smpp_pdu_encode(&p, out, sizeof(out));
    assert_int_equal(n, 58);
    assert_int_equal(out[3], 58);
    assert_memory_equal(out + 4, v_submit_tlv + 4, (size_t)n - 4);

    struct smpp_pdu d;
    assert_int_equal(smpp_pdu_decode(v_submit_tlv, sizeof(v_submit_tlv), &d), 0);
    assert_true(d.sm.has & SMPP_HAS_SAR);
    assert_int_equal(d.sm.sar_msg_ref_num, 7);
    assert_int_equal(d.sm.sar_total_segments, 3);
    assert_int_equal(d.sm.sar_segment_seqnum, 1);
    assert_true(d.sm.has & SMPP_HAS_PAYLOAD);
    assert_int_equal(d.sm.payload_len, 3);
    assert_memory_equal(d.sm.message_payload, "abc", 3);
    assert_int_equal(smpp_pdu_decode(out, (size_t)n, &d), 0);
    assert_int_equal(d.sm.sar_total_segments, 3);
}

static void test_receipt_vector(void **state)
{
    (void)state;
    uint8_t out[512];
    size_t n = build_receipt(out, sizeof(out));
    struct smpp_pdu d;
    assert_int_equal(smpp_pdu_decode(out, n, &d), 0);
    assert_int_equal(d.command_id, SMPP_DELIVER_SM);
    assert_true(smpp_is_receipt(&d));
    assert_string_equal(d.sm.receipted_message_id, "1A2B");
    assert_int_equal(d.sm.message_state, 2);
    struct smpp_receipt r;
    assert_int_equal(smpp_receipt_parse(&d, &r), 0);
    assert_string_equal(r.id, "1A2B");
    assert_int_equal(r.state, SMPP_STATE_DELIVERED);
    assert_string_equal(r.stat, "DELIVRD");
    assert_string_equal(r.err, "000");
    assert_int_equal(r.sub, 1);
    assert_int_equal(r.dlvrd, 1);
    assert_string_equal(r.submit_date, "2611280755");
    assert_string_equal(r.done_date, "2611280756");
    assert_int_equal(r.done_unix, 1795852560); /* 2026-11-28 07:56 UTC */
    assert_string_equal(r.text, "hello");

    /* receipted_message_id without its NUL is accepted */
    uint8_t raw[64] = {0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3};
    size_t k = 16;
    raw[k++] = 0;               /* service_type */
    raw[k++] = 0, raw[k++] = 0; /* src ton npi */
    raw[k++] = 0;               /* src */
    raw[k++] = 0, raw[k++] = 0; /* dst ton npi */
    raw[k++] = 0;               /* dst */
    raw[k++] = 4;               /* esm_class: receipt */
    raw[k++] = 0, raw[k++] = 0; /* pid, prio */
    raw[k++] = 0, raw[k++] = 0; /* times */
    raw[k++] = 0, raw[k++] = 0; /* rd, replace */
    raw[k++] = 0, raw[k++] = 0; /* dc, default id */
    raw[k++] = 0;               /* sm_length */
    const uint8_t tlv[] = {0x00, 0x1E, 0x00, 0x03, 'x', 'y', 'z', 0x04, 0x27, 0x00, 0x01, 0x05};
    memcpy(raw + k, tlv, sizeof(tlv));
    k += sizeof(tlv);
    raw[3] = (uint8_t)k;
    assert_int_equal(smpp_pdu_decode(raw, k, &d), 0);
    assert_int_equal(smpp_receipt_parse(&d, &r), 0);
    assert_string_equal(r.id, "xyz");
    assert_int_equal(r.state, SMPP_STATE_UNDELIVERABLE);
}

static void test_malformed(void **state)
{
    (void)state;
    struct smpp_pdu d;
    uint8_t buf[128];
    /* command_length lies (says more or less than we have) */
    assert_int_equal(smpp_pdu_decode(v_bind, sizeof(v_bind) - 1, &d), SMSYS_EPROTO);
    memcpy(buf, v_bind, sizeof(v_bind));
    buf[3] = 0x20;
    assert_int_equal(smpp_pdu_decode(buf, 0x20, &d), SMSYS_EPROTO); /* NUL cut off */
    assert_int_equal(smpp_pdu_decode(buf, 10, &d), SMSYS_EPROTO);
    /* missing NUL in the last C-string */
    memcpy(buf, v_bind, sizeof(v_bind));
    buf[sizeof(v_bind) - 1] = 'x';
    assert_int_equal(smpp_pdu_decode(buf, sizeof(v_bind), &d), SMSYS_EPROTO);
    assert_int_equal(d.command_id, SMPP_BIND_TRANSCEIVER); /* header still readable */
    /* a C-string over 65 characters */
    uint8_t big[200] = {0};
    memcpy(big, v_bind, 16);
    memset(big + 16, 'a', 100);
    big[116] = 0;
    big[3] = 130;
    assert_int_equal(smpp_pdu_decode(big, 130, &d), SMSYS_EPROTO);
    /* sm_length past the end */
    memcpy(buf, v_submit_udh, sizeof(v_submit_udh));
    buf[38] = 0x20;
    assert_int_equal(smpp_pdu_decode(buf, sizeof(v_submit_udh), &d), SMSYS_EPROTO);
    /* TLV length past the end */
    memcpy(buf, v_submit_tlv, sizeof(v_submit_tlv));
    buf[54] = 0x0A; /* message_payload length 3 -> 10: one past the end */
    assert_int_equal(smpp_pdu_decode(buf, sizeof(v_submit_tlv), &d), SMSYS_EPROTO);
    /* a TLV header cut in half */
    memcpy(buf, v_submit_tlv, 58);
    buf[58] = 0x02;
    buf[59] = 0x0C;
    buf[3] = 60;
    assert_int_equal(smpp_pdu_decode(buf, 60, &d), SMSYS_EPROTO);
    /* a known TLV with the wrong length */
    memcpy(buf, v_submit_tlv, sizeof(v_submit_tlv));
    buf[38] = 0x03;
    assert_int_equal(smpp_pdu_decode(buf, sizeof(v_submit_tlv), &d), SMSYS_EPROTO);
    /* unknown command: header decoded, -ENOTSUP */
    memcpy(buf, v_bind, 16);
    buf[3] = 16;
    buf[7] = 0x77;
    assert_int_equal(smpp_pdu_decode(buf, 16, &d), -ENOTSUP);
    assert_int_equal(d.command_id, 0x77);
    /* a response with an error status and no body is fine */
    static const uint8_t resp[] = {0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 5};
    assert_int_equal(smpp_pdu_decode(resp, sizeof(resp), &d), 0);
    assert_int_equal(d.command_status, SMPP_ESME_RTHROTTLED);
    assert_string_equal(d.message_id, "");
    assert_int_equal(smpp_pdu_decode(NULL, 0, &d), SMSYS_EPROTO);
    /* every truncation of a valid PDU is refused without overreading
     * (run under ASan: a copy of exactly that size is decoded) */
    uint8_t rec[512];
    size_t rn = build_receipt(rec, sizeof(rec));
    for (size_t cut = 16; cut < rn; cut++) {
        uint8_t *copy = malloc(cut);
        memcpy(copy, rec, cut);
        copy[0] = copy[1] = 0;
        copy[2] = (uint8_t)(cut >> 8);
        copy[3] = (uint8_t)cut;
        int rc = smpp_pdu_decode(copy, cut, &d);
        assert_true(rc == SMSYS_EPROTO || rc == 0); /* 0 only on a TLV boundary */
        free(copy);
    }
}

static void test_framing(void **state)
{
    (void)state;
    size_t n = 0;
    assert_int_equal(smpp_frame_next(v_bind, 3, &n), 0);
    assert_int_equal(smpp_frame_next(v_bind, 20, &n), 0);
    assert_int_equal(smpp_frame_next(v_bind, sizeof(v_bind), &n), 1);
    assert_int_equal(n, sizeof(v_bind));
    static const uint8_t small[] = {0, 0, 0, 8, 0, 0, 0, 0};
    assert_int_equal(smpp_frame_next(small, sizeof(small), &n), SMSYS_EPROTO);
    static const uint8_t huge[] = {0x7F, 0, 0, 0};
    assert_int_equal(smpp_frame_next(huge, sizeof(huge), &n), SMSYS_EPROTO);
    /* two PDUs back to back */
    uint8_t two[128];
    memcpy(two, v_bind, sizeof(v_bind));
    memcpy(two + sizeof(v_bind), v_bind, sizeof(v_bind));
    assert_int_equal(smpp_frame_next(two, sizeof(two), &n), 1);
    assert_int_equal(smpp_frame_next(two + n, 2 * sizeof(v_bind) - n, &n), 1);
}

static void test_receipt_text_variants(void **state)
{
    (void)state;
    struct smpp_receipt r;
    /* capitalised keys, 12-digit dates, several spaces */
    const char *a = "id:0001234  sub:001 dlvrd:001 Submit Date:261128075501 Done "
                    "Date:261128075609 Stat:UNDELIV Err:012 Text:Hi there: id:999";
    assert_int_equal(smpp_receipt_parse_text(a, strlen(a), &r), 0);
    assert_string_equal(r.id, "0001234");
    assert_string_equal(r.submit_date, "261128075501");
    assert_string_equal(r.done_date, "261128075609");
    assert_int_equal(r.done_unix, 1795852569);
    assert_int_equal(r.state, SMPP_STATE_UNDELIVERABLE);
    assert_string_equal(r.err, "012");
    assert_string_equal(r.text, "Hi there: id:999"); /* text: is last; not re-parsed */
    /* missing fields, underscores, lower-case stat spelled out */
    const char *b = "id:ABCDEF stat:delivered submit_date:2611280755";
    assert_int_equal(smpp_receipt_parse_text(b, strlen(b), &r), 0);
    assert_string_equal(r.id, "ABCDEF");
    assert_int_equal(r.state, SMPP_STATE_DELIVERED);
    assert_int_equal(r.sub, -1);
    assert_int_equal(r.dlvrd, -1);
    assert_string_equal(r.submit_date, "2611280755");
    assert_string_equal(r.done_date, "");
    assert_int_equal(r.done_unix, 0);
    /* other states */
    const char *c = "id: 77 stat:EXPIRED";
    assert_int_equal(smpp_receipt_parse_text(c, strlen(c), &r), 0);
    assert_string_equal(r.id, "77");
    assert_int_equal(r.state, SMPP_STATE_EXPIRED);
    assert_int_equal(smpp_stat_state("REJECTD"), SMPP_STATE_REJECTED);
    assert_int_equal(smpp_stat_state("ACCEPTD"), SMPP_STATE_ACCEPTED);
    assert_int_equal(smpp_stat_state("UNKNOWN"), SMPP_STATE_UNKNOWN);
    assert_int_equal(smpp_stat_state("ENROUTE"), SMPP_STATE_ENROUTE);
    assert_int_equal(smpp_stat_state("DELETED"), SMPP_STATE_DELETED);
    assert_int_equal(smpp_stat_state("bogus"), SMPP_STATE_NONE);
    /* no id at all */
    const char *d = "sub:001 stat:DELIVRD";
    assert_int_equal(smpp_receipt_parse_text(d, strlen(d), &r), SMSYS_EPROTO);
    /* "id" inside another word is not a key; not NUL-terminated input */
    const char e[] = {'x', 'i', 'd', ':', '1', ' ', 'i', 'd', ':', '2'};
    assert_int_equal(smpp_receipt_parse_text(e, sizeof(e), &r), 0);
    assert_string_equal(r.id, "2");
    /* TLV values win over the text */
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_DELIVER_SM;
    p.sm.esm_class = 4;
    p.sm.short_message = (const uint8_t *)a;
    p.sm.sm_length = strlen(a);
    p.sm.has = SMPP_HAS_RECEIPTED_ID | SMPP_HAS_MSG_STATE;
    p.sm.receipted_message_id = "4D2";
    p.sm.message_state = SMPP_STATE_DELIVERED;
    assert_int_equal(smpp_receipt_parse(&p, &r), 0);
    assert_string_equal(r.id, "4D2");
    assert_int_equal(r.state, SMPP_STATE_DELIVERED);
    assert_string_equal(r.stat, "UNDELIV");
}

static void test_msgid_canon(void **state)
{
    (void)state;
    struct smpp_msgid_canon c;
    assert_int_equal(smpp_msgid_canon("1A2B", &c), 0);
    assert_string_equal(c.primary, "n:6699");
    assert_string_equal(c.alt, "");
    assert_int_equal(smpp_msgid_canon("0006699", &c), 0);
    assert_string_equal(c.primary, "n:6699");
    assert_string_equal(c.alt, "n:26265"); /* 0x6699 */
    assert_int_equal(smpp_msgid_canon("Ab-Cd", &c), 0);
    assert_string_equal(c.primary, "s:ab-cd");
    assert_int_equal(smpp_msgid_canon("", &c), -EINVAL);
    assert_int_equal(smpp_msgid_canon("   ", &c), -EINVAL);
    /* a 32-digit hex id converts exactly (beyond 64 bits) */
    assert_int_equal(smpp_msgid_canon("ffffffffffffffffffffffffffffffff", &c), 0);
    assert_string_equal(c.primary, "n:340282366920938463463374607431768211455");

    assert_int_equal(smpp_msgid_match("1A2B", "6699"), 2);     /* hex vs decimal */
    assert_int_equal(smpp_msgid_match("1a2b", "1A2B"), 2);     /* case */
    assert_int_equal(smpp_msgid_match("00001A2B", "6699"), 2); /* leading zeros */
    assert_int_equal(smpp_msgid_match("0x1A2B", "6699"), 2);
    assert_int_equal(smpp_msgid_match("006699", "6699"), 2);
    assert_int_equal(smpp_msgid_match(" 6699 ", "6699"), 2);
    assert_int_equal(smpp_msgid_match("1234", "4660"), 1); /* "1234" was hex: 0x1234 */
    assert_int_equal(smpp_msgid_match("4660", "1234"), 1);
    assert_int_equal(smpp_msgid_match("1A2B", "6698"), 0);
    assert_int_equal(smpp_msgid_match("abc-1", "ABC-1"), 2);
    assert_int_equal(smpp_msgid_match("abc-1", "abc-01"), 0); /* strings: exact but case */
    assert_int_equal(smpp_msgid_match("6f9619ff-8b86-d011-b42d-00c04fc964ff",
                                      "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
                     2);
}

static void test_status_class(void **state)
{
    (void)state;
    assert_int_equal(smpp_status_class(0), 0);
    assert_int_equal(smpp_status_class(SMPP_ESME_RTHROTTLED), SMSYS_ETHROTTLED);
    assert_int_equal(smpp_status_class(SMPP_ESME_RMSGQFUL), SMSYS_ETHROTTLED);
    assert_int_equal(smpp_status_class(SMPP_ESME_RSYSERR), SMSYS_ETEMP);
    assert_int_equal(smpp_status_class(SMPP_ESME_RINVDSTADR), SMSYS_EPERM);
    assert_int_equal(smpp_status_class(SMPP_ESME_RINVPASWD), SMSYS_EAUTH);
    assert_int_equal(smpp_status_class(0x400), SMSYS_ETEMP);
    assert_string_equal(smpp_status_name(0x58), "ESME_RTHROTTLED");
    assert_string_equal(smpp_cmd_name(SMPP_DELIVER_SM_RESP), "deliver_sm_resp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_vector),
        cmocka_unit_test(test_submit_udh_vector),
        cmocka_unit_test(test_submit_tlv_vector),
        cmocka_unit_test(test_receipt_vector),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_receipt_text_variants),
        cmocka_unit_test(test_msgid_canon),
        cmocka_unit_test(test_status_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
