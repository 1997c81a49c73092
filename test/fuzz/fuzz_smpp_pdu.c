/* fuzz_smpp_pdu - arbitrary bytes as an SMPP stream: framing, decode, UDH,
 * receipt parsing, message-id canonical forms. Whatever decodes must
 * re-encode to a PDU that decodes again to the same header. */
#include "smsys/smpp_pdu.h"
#include "smsys/smpp_receipt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        size_t n = 0;
        int rc = smpp_frame_next(data + off, size - off, &n);
        if (rc <= 0)
            break;
        /* an exact-size heap copy, so any overread is caught */
        uint8_t *pdu = malloc(n);
        if (pdu == NULL)
            return 0;
        memcpy(pdu, data + off, n);
        struct smpp_pdu p;
        if (smpp_pdu_decode(pdu, n, &p) == 0) {
            if (p.command_id == SMPP_DELIVER_SM || p.command_id == SMPP_SUBMIT_SM ||
                p.command_id == SMPP_DATA_SM) {
                struct smpp_receipt r;
                struct smpp_concat c;
                smpp_receipt_parse(&p, &r);
                if (p.sm.sm_length)
                    smpp_udh_parse(p.sm.short_message, p.sm.sm_length, &c);
                struct smpp_msgid_canon k;
                if (r.id[0])
                    smpp_msgid_canon(r.id, &k);
            }
            uint8_t out[SMPP_MAX_PDU_LEN + 64];
            int m = smpp_pdu_encode(&p, out, sizeof(out));
            if (m > 0) {
                struct smpp_pdu q;
                if (smpp_pdu_decode(out, (size_t)m, &q) != 0 || q.command_id != p.command_id ||
                    q.sequence != p.sequence)
                    abort();
            }
        }
        free(pdu);
        off += n;
    }
    return 0;
}
