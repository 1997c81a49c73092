/* fuzz_bulk_fetchxml - a dynamic marketing list's FetchXML (written by any
 * CRM user) and the paging cookie of a FetchXML answer (from the server)
 * through the bulk engine's rewriting: nothing may crash or leak, and a
 * rewritten query always starts with our own <fetch> start tag and keeps
 * the user's query after it.
 *
 * Input: the query, then optionally a NUL byte and the cookie annotation. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bulk_int.h"
#include "smsys/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    size_t ql = strlen(in);
    const char *cookie_ann = ql < size ? in + ql + 1 : "";

    /* the answer's cookie, as the expansion reads it */
    char cookie[2048];
    cJSON *page = cJSON_CreateObject();
    if (page) {
        cJSON_AddStringToObject(page, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie", cookie_ann);
        bulk_paging_cookie(page, cookie, sizeof(cookie));
        if (strlen(cookie) >= sizeof(cookie))
            abort();
        cJSON_Delete(page);
    } else {
        cookie[0] = '\0';
    }

    const char *cols[] = {"mobilephone", "telephone1", "smsys_donotsms"};
    struct buf out = BUF_INIT;
    int rc = bulk_fetch_build(in, "contactid", cols, 3, 5000, 2, cookie, &out);
    if (rc == 0) {
        if (out.data == NULL || strncmp(out.data, "<fetch version=\"1.0\"", 20) != 0)
            abort();
        if (strstr(out.data, "<attribute name=\"smsys_donotsms\"/>") == NULL)
            abort();
    } else if (rc != -EINVAL && rc != -ENOMEM) {
        abort();
    }
    buf_free(&out);
    free(in);
    return 0;
}
