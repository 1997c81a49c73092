/* fuzz_phone - normalise arbitrary bytes as a phone number and a line;
 * whatever is accepted must be well-formed and stable. */
#include "smsys/phone.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_e164(const char *e)
{
    if (e[0] != '+')
        abort();
    size_t n = strlen(e + 1);
    if (n < 7 || n > 15)
        abort();
    for (size_t i = 1; e[i]; i++) {
        if (e[i] < '0' || e[i] > '9')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    static const char *const countries[] = {"IR", "US", "GB", "DE", "AE", NULL};
    char out[PHONE_E164_MAX], again[PHONE_E164_MAX], f[32];
    struct smsys_err err;
    for (size_t c = 0; c < 6; c++) {
        int rc = phone_normalize(s, countries[c], out, sizeof(out), &err);
        if (rc == 0) {
            check_e164(out);
            /* Normalising the result again is the identity. */
            if (phone_normalize(out, "IR", again, sizeof(again), &err) != 0 ||
                strcmp(out, again) != 0)
                abort();
            if (phone_format(out, PHONE_INTL_NOPLUS, f, sizeof(f)) != 0 || strcmp(f, out + 1) != 0)
                abort();
            int nat = phone_format(out, PHONE_NATIONAL, f, sizeof(f));
            if ((nat == 0) != (strncmp(out, "+98", 3) == 0))
                abort();
            (void)phone_is_ir_mobile(out);
        } else if (rc != SMSYS_EPHONE || err.detail[0] == '\0') {
            abort();
        }
    }
    if (phone_normalize_line(s, out, sizeof(out), &err) == 0) {
        if (out[0] == '+')
            check_e164(out);
        else if (strlen(out) < 3 || strlen(out) > 15 || strspn(out, "0123456789") != strlen(out))
            abort();
    }
    (void)phone_format(s, (enum phone_fmt)(size % 4), f, sizeof(f));
    free(s);
    return 0;
}
