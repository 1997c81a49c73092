/* fuzz_template - parse arbitrary bytes as a template; when it parses,
 * build its query plan and render it over a fixed row (with a related
 * row). Invariants: an error leaves the output untouched, a success gives
 * valid UTF-8, error positions lie inside the source. */
#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/template.h"
#include "smsys/text.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ROW[] =
    "{\"contactid\":\"11111111-1111-1111-1111-111111111111\",\"firstname\":\"علی\","
    "\"description\":\"Hello 123\",\"n\":1234.5,\"z\":0,\"b\":true,\"d\":\"2025-03-20T20:30:00Z\","
    "\"do\":\"1990-03-21\",\"gendercode\":1,\"gendercode@OData.Community.Display.V1."
    "FormattedValue\":\"آقا\",\"_p_value\":\"22222222-2222-2222-2222-222222222222\","
    "\"p\":{\"name\":\"x\",\"q\":{\"name\":\"y\",\"n\":5}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    static cJSON *row, *rel;
    if (!row) {
        row = cJSON_Parse(ROW);
        rel = cJSON_Parse("{\"a\":\"2026-01-01T00:00:00Z\",\"n\":7,\"x\":{\"y\":\"z\"}}");
    }
    struct template *t;
    struct template_error te;
    struct smsys_err err;
    int rc = template_parse((const char *)data, size, &t, &te, &err);
    if (rc == SMSYS_ETEMPLATE) {
        if (te.offset > size || te.line == 0 || te.column == 0 || !err.detail[0])
            abort();
        return 0;
    }
    if (rc < 0)
        return 0;
    struct buf sel = BUF_INIT, exp = BUF_INIT, out = BUF_INIT;
    if (template_plan_select(t, "contactid", &sel, &exp) < 0)
        abort();
    const cJSON *rels[8];
    for (size_t i = 0; i < template_relations(t) && i < 8; i++) {
        struct template_relation_info ri;
        int r = template_relation(t, i, &ri);
        if (r < 0 && r != -E2BIG)
            abort();
        (void)template_relation_key(t, i, row, "contactid");
        rels[i] = (i & 1) ? NULL : rel;
    }
    buf_puts(&out, "pre");
    rc = template_render(t, row, rels, &out, &te, &err);
    if (rc < 0 && (out.len != 3 || memcmp(out.data, "pre", 3) != 0))
        abort();
    if (rc == 0) {
        struct text_utf8_err ue;
        if (text_utf8_validate(out.data, out.len, &ue) < 0)
            abort();
    }
    buf_free(&sel);
    buf_free(&exp);
    buf_free(&out);
    template_free(t);
    return 0;
}
