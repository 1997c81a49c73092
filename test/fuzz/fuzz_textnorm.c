/* fuzz_textnorm - normalise and split arbitrary bytes; normalisation must
 * be idempotent and produce valid UTF-8 without the characters it removes. */
#include "smsys/error.h"
#include "smsys/text.h"
#include "smsys/textnorm.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int word_cb(const char *w, size_t len, void *ud)
{
    size_t *total = ud;
    if (len == 0 || w == NULL)
        abort();
    *total += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    /* Split the input at the first 0xFF: separators | text. */
    const uint8_t *cut = memchr(data, 0xFF, size);
    size_t seplen = cut ? (size_t)(cut - data) : 0;
    char *sep = malloc(seplen + 1), *txt = malloc(size + 1);
    if (!sep || !txt)
        goto out;
    memcpy(sep, data, seplen);
    sep[seplen] = '\0';
    size_t tlen = cut ? size - seplen - 1 : size;
    memcpy(txt, cut ? cut + 1 : data, tlen);
    txt[tlen] = '\0';

    struct buf n1 = BUF_INIT, n2 = BUF_INIT, p = BUF_INIT;
    int rc = textnorm_keywords(txt, &n1);
    if (rc == 0) {
        if (text_utf8_validate(n1.data, n1.len, NULL) != 0)
            abort();
        if (strstr(n1.data, "\xE2\x80\x8C") || strstr(n1.data, "\xD9\x80") ||
            strstr(n1.data, "  ") || strstr(n1.data, "\r") ||
            (n1.len && (n1.data[0] == ' ' || n1.data[n1.len - 1] == ' ')))
            abort();
        if (textnorm_keywords(n1.data, &n2) != 0 || strcmp(n1.data, n2.data) != 0)
            abort(); /* idempotent */
        size_t total = 0;
        rc = textnorm_split(n1.data, sep, word_cb, &total);
        if (rc != 0 && rc != -EINVAL && rc != SMSYS_EUTF8)
            abort();
        if (total > n1.len)
            abort();
        if (textnorm_digits_to_persian(n1.data, n1.len, &p) != 0)
            abort();
    } else if (rc != SMSYS_EUTF8) {
        abort();
    }
    buf_free(&n1);
    buf_free(&n2);
    buf_free(&p);
out:
    free(sep);
    free(txt);
    return 0;
}
