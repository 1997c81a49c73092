/* fuzz_odata_batch.c - arbitrary bytes through the $batch response parser
 * (odata_batch_parse), which reads what the network hands us.
 *
 * The input is "<content-type>\n<body>": the first line is the response's
 * Content-Type, so boundary parsing is fuzzed too. Every part the parser
 * accepts is checked against its contract (status range, NUL-terminated
 * body of body_len bytes, headers readable). */
#include "smsys/odata.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ctlen = nl ? (size_t)(nl - data) : size;
    char *ct = malloc(ctlen + 1);
    if (ct == NULL)
        return 0;
    memcpy(ct, data, ctlen);
    ct[ctlen] = '\0';
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t blen = nl ? size - ctlen - 1 : 0;
    /* a copy of exactly blen bytes, so ASan sees any read past the end */
    char *b = malloc(blen ? blen : 1);
    if (b == NULL) {
        free(ct);
        return 0;
    }
    memcpy(b, body, blen);
    struct odata_batch ob;
    struct smsys_err e;
    if (odata_batch_parse(ct, b, blen, &ob, &e) == 0) {
        if (ob.n == 0)
            abort();
        for (size_t i = 0; i < ob.n; i++) {
            const struct odata_part *p = &ob.parts[i];
            if (p->status < 100 || p->status > 599 || p->body[p->body_len] != '\0')
                abort();
            for (size_t h = 0; h < p->n_headers; h++)
                if (strlen(p->headers[h].name) + strlen(p->headers[h].value) > blen)
                    abort();
            (void)odata_part_header(p, "Content-Type");
        }
        odata_batch_free(&ob);
    } else if (e.detail[0] == '\0') {
        abort(); /* every rejection says why */
    }
    free(b);
    free(ct);
    return 0;
}
