/* fuzz_provsim_parse - provsim's request decoding on arbitrary bytes: the
 * form / query decoder, comma lists, tolerant JSON lookups and the segment
 * counter every simulated send goes through. The simulator is a program,
 * so its two self-contained files are compiled in. */
#include "../../tools/provsim/checks.c"
#include "../../tools/provsim/form.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    struct sim_form f = {0};
    if (form_parse(&f, s, size) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            (void)form_get(&f, f.kv[i].k);
            size_t n = 0;
            free(split_list(f.kv[i].v, &n));
        }
    }
    form_free(&f);

    int ucs2 = 0;
    int segs = sim_segments(s, &ucs2);
    if (segs < 1 || (size_t)segs > size + 1)
        abort(); /* never more parts than bytes */

    cJSON *j = cJSON_ParseWithLength(s, size);
    char buf[32];
    (void)json_str(json_get(j, "lineNumber"), buf, sizeof(buf));
    (void)json_str(cJSON_GetArrayItem(j, 0), buf, sizeof(buf));
    cJSON_Delete(j);
    free(s);
    return 0;
}
