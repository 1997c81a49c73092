/* fuzz_dvemu_filter.c - libFuzzer target for dvemu's OData $filter parser
 * and evaluator. The parser lives in tools/dvemu (a program, not the
 * library), so its sources are compiled in here directly. Input: any
 * bytes, treated as a $filter string against the contact table, then
 * evaluated on a sample row. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/dvemu/filter.c"
#include "../../tools/dvemu/schema.c"
#include "../../tools/dvemu/store.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct store st;
    static cJSON *row;
    static int ready;
    if (!ready) {
        store_init(&st);
        schema_install_standard(&st, 1);
        row = cJSON_Parse("{\"firstname\":\"Ali\",\"lastname\":\"O'Brien\",\"mobilephone\":"
                          "\"+989121234567\",\"birthdate\":\"1990-05-01T00:00:00Z\","
                          "\"smsys_donotsms\":true,\"statecode\":0,\"_ownerid_value\":"
                          "\"00000000-0000-0000-0000-000000000001\"}");
        ready = 1;
    }
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char err[300];
    struct fnode *n = filter_parse(store_by_logical(&st, "contact"), s, err, sizeof(err));
    if (n) {
        (void)filter_eval(n, row);
        filter_free(n);
    }
    free(s);
    return 0;
}
