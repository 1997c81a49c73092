/* test_dvemu_batch.c - dvemu over real HTTP: $batch (changesets,
 * Content-ID references, continue-on-error), CreateMultiple /
 * UpdateMultiple, and change tracking (dataverse.md sections 3 and 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../lib/testutil.h"
#include "dvemu_client.h"

static int count_rows(struct emuproc *d, const char *url)
{
    struct emures r;
    assert_int_equal(emu_req(d, "GET", url, NULL, NULL, &r), 200);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value"));
    emures_free(&r);
    return n;
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void part(struct buf *b, const char *boundary, const char *cid, const char *method,
                 const char *url, const char *body)
{
    buf_printf(b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
               boundary);
    if (cid)
        buf_printf(b, "Content-ID: %s\r\n", cid);
    buf_printf(b, "\r\n%s %s HTTP/1.1\r\n", method, url);
    if (body)
        buf_printf(b, "Content-Type: application/json; type=entry\r\n\r\n%s\r\n", body);
    else
        buf_puts(b, "\r\n\r\n");
}

static long post_batch(struct emuproc *d, const char *body, int continue_on_error, struct emures *r)
{
    const char *h1[] = {"Content-Type: multipart/mixed; boundary=batch_AAA",
                        continue_on_error ? "Prefer: odata.continue-on-error" : NULL, NULL};
    return emu_req(d, "POST", "$batch", h1, body, r);
}

static void test_batch_changeset_and_refs(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct buf b = BUF_INIT;
    char api_path[64];
    snprintf(api_path, sizeof(api_path), "/api/data/v9.2/");
    buf_puts(&b, "--batch_AAA\r\nContent-Type: multipart/mixed; boundary=changeset_BBB\r\n\r\n");
    part(&b, "changeset_BBB", "1", "POST", "/api/data/v9.2/contacts",
         "{\"firstname\":\"Reza\",\"lastname\":\"Nouri\"}");
    part(&b, "changeset_BBB", "2", "PATCH", "$1", "{\"jobtitle\":\"Engineer\"}");
    part(&b, "changeset_BBB", "3", "POST", "smsys_smses",
         "{\"subject\":\"s\",\"regardingobjectid_contact_smsys_sms@odata.bind\":\"$1\"}");
    buf_puts(&b, "--changeset_BBB--\r\n");
    part(&b, "batch_AAA", NULL, "GET", "contacts?$select=jobtitle", NULL);
    buf_puts(&b, "--batch_AAA--\r\n");
    struct emures r;
    assert_int_equal(post_batch(&d, b.data, 0, &r), 200);
    const char *ct = emu_hdr(&r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "multipart/mixed; boundary=batchresponse_"));
    assert_non_null(
        strstr(r.body.data, "Content-Type: multipart/mixed; boundary=changesetresponse_"));
    assert_int_equal(count_str(r.body.data, "HTTP/1.1 204 No Content"), 3);
    assert_int_equal(count_str(r.body.data, "HTTP/1.1 200 OK"), 1);
    assert_non_null(strstr(r.body.data, "\"jobtitle\":\"Engineer\""));
    assert_non_null(strstr(r.body.data, "Content-ID: 1"));
    assert_non_null(strstr(r.body.data, "OData-EntityId: "));
    emures_free(&r);
    assert_int_equal(count_rows(&d, "smsys_smses?$filter=_regardingobjectid_value+ne+null"), 1);
    buf_free(&b);
    /* a failing changeset rolls back as a whole and stops the batch */
    buf_puts(&b, "--batch_AAA\r\nContent-Type: multipart/mixed; boundary=cs2\r\n\r\n");
    part(&b, "cs2", "1", "POST", "contacts", "{\"firstname\":\"Rolled\"}");
    part(&b, "cs2", "2", "POST", "contacts", "{\"nosuchcolumn\":1}");
    buf_puts(&b, "--cs2--\r\n");
    part(&b, "batch_AAA", NULL, "POST", "contacts", "{\"firstname\":\"NeverRuns\"}");
    buf_puts(&b, "--batch_AAA--\r\n");
    assert_int_equal(post_batch(&d, b.data, 0, &r), 200);
    assert_int_equal(count_str(r.body.data, "HTTP/1.1 "), 1); /* only the failure */
    assert_non_null(strstr(r.body.data, "HTTP/1.1 400"));
    assert_non_null(strstr(r.body.data, "\"error\":{\"code\":"));
    emures_free(&r);
    assert_int_equal(count_rows(&d, "contacts?$filter=firstname+eq+'Rolled'"), 0);
    assert_int_equal(count_rows(&d, "contacts?$filter=firstname+eq+'NeverRuns'"), 0);
    /* the same with continue-on-error: the changeset still rolls back, the rest runs */
    assert_int_equal(post_batch(&d, b.data, 1, &r), 200);
    assert_string_equal(emu_hdr(&r, "Preference-Applied"), "odata.continue-on-error");
    assert_non_null(strstr(r.body.data, "HTTP/1.1 400"));
    assert_non_null(strstr(r.body.data, "HTTP/1.1 204"));
    emures_free(&r);
    assert_int_equal(count_rows(&d, "contacts?$filter=firstname+eq+'Rolled'"), 0);
    assert_int_equal(count_rows(&d, "contacts?$filter=firstname+eq+'NeverRuns'"), 1);
    buf_free(&b);
    /* outside a changeset, the first failure stops the batch */
    part(&b, "batch_AAA", NULL, "DELETE", "contacts(00000000-0000-0000-0000-000000000009)", NULL);
    part(&b, "batch_AAA", NULL, "POST", "contacts", "{\"firstname\":\"AfterFail\"}");
    buf_puts(&b, "--batch_AAA--\r\n");
    assert_int_equal(post_batch(&d, b.data, 0, &r), 200);
    assert_non_null(strstr(r.body.data, "HTTP/1.1 404"));
    assert_null(strstr(r.body.data, "HTTP/1.1 204"));
    emures_free(&r);
    assert_int_equal(count_rows(&d, "contacts?$filter=firstname+eq+'AfterFail'"), 0);
    buf_free(&b);
    /* malformed batch: 400 */
    const char *h[] = {"Content-Type: application/json", NULL};
    emu_req(&d, "POST", "$batch", h, "{}", &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    emu_stop(&d);
}

static void test_create_update_multiple(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    const char *body =
        "{\"Targets\":[{\"subject\":\"a\",\"smsys_status\":2,\"@odata.type\":"
        "\"Microsoft.Dynamics.CRM.smsys_sms\"},{\"subject\":\"b\",\"smsys_status\":2,"
        "\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\"}]}";
    assert_int_equal(
        emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, body, &r),
        200);
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(r.json, "Ids");
    assert_int_equal(cJSON_GetArraySize(ids), 2);
    char id0[40], id1[40];
    snprintf(id0, sizeof(id0), "%s", cJSON_GetArrayItem(ids, 0)->valuestring);
    snprintf(id1, sizeof(id1), "%s", cJSON_GetArrayItem(ids, 1)->valuestring);
    emures_free(&r);
    char upd[1024];
    snprintf(upd, sizeof(upd),
             "{\"Targets\":[{\"activityid\":\"%s\",\"smsys_status\":3,\"@odata.type\":"
             "\"Microsoft.Dynamics.CRM.smsys_sms\"},{\"activityid\":\"%s\",\"smsys_status\":4,"
             "\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\"}]}",
             id0, id1);
    assert_int_equal(
        emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.UpdateMultiple", NULL, upd, &r),
        204);
    emures_free(&r);
    assert_int_equal(count_rows(&d, "smsys_smses?$filter=smsys_status+ge+3"), 2);
    /* UpdateMultiple never creates: a missing row fails the whole request */
    snprintf(upd, sizeof(upd),
             "{\"Targets\":[{\"activityid\":\"%s\",\"smsys_status\":9,\"@odata.type\":"
             "\"Microsoft.Dynamics.CRM.smsys_sms\"},{\"activityid\":"
             "\"00000000-0000-0000-0000-0000000000ff\",\"smsys_status\":9,\"@odata.type\":"
             "\"Microsoft.Dynamics.CRM.smsys_sms\"}]}",
             id0);
    emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.UpdateMultiple", NULL, upd, &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    assert_int_equal(count_rows(&d, "smsys_smses?$filter=smsys_status+eq+9"), 0);
    /* UpsertMultiple creates it */
    assert_int_equal(
        emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.UpsertMultiple", NULL, upd, &r),
        204);
    emures_free(&r);
    assert_int_equal(count_rows(&d, "smsys_smses?$filter=smsys_status+eq+9"), 2);
    /* all or nothing: one bad target fails the request and creates nothing */
    const char *bad = "{\"Targets\":[{\"subject\":\"c\",\"@odata.type\":"
                      "\"Microsoft.Dynamics.CRM.smsys_sms\"},{\"subject\":\"d\"}]}";
    emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, bad, &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    assert_int_equal(count_rows(&d, "smsys_smses"), 3);
    emu_stop(&d);
}

static void test_change_tracking(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    char a[40], b[40];
    snprintf(a, sizeof(a), "%s", emu_create(&d, "smsys_smses", "{\"subject\":\"one\"}"));
    snprintf(b, sizeof(b), "%s", emu_create(&d, "smsys_smses", "{\"subject\":\"two\"}"));
    const char *tc[] = {"Prefer: odata.track-changes", NULL};
    assert_int_equal(emu_req(&d, "GET", "smsys_smses?$select=subject", tc, NULL, &r), 200);
    assert_string_equal(emu_hdr(&r, "Preference-Applied"), "odata.track-changes");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value")), 2);
    char delta[2048];
    assert_non_null(emu_str(r.json, "@odata.deltaLink"));
    snprintf(delta, sizeof(delta), "%s", emu_str(r.json, "@odata.deltaLink"));
    assert_non_null(strstr(delta, "$deltatoken="));
    emures_free(&r);
    /* nothing changed: empty delta */
    assert_int_equal(emu_req(&d, "GET", delta, tc, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value")), 0);
    emures_free(&r);
    /* change a, delete b, create c */
    char url[200];
    snprintf(url, sizeof(url), "smsys_smses(%s)", a);
    assert_int_equal(emu_req(&d, "PATCH", url, NULL, "{\"subject\":\"one!\"}", &r), 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "smsys_smses(%s)", b);
    assert_int_equal(emu_req(&d, "DELETE", url, NULL, NULL, &r), 204);
    emures_free(&r);
    emu_create(&d, "smsys_smses", "{\"subject\":\"three\"}");
    assert_int_equal(emu_req(&d, "GET", delta, tc, NULL, &r), 200);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(v), 3);
    int changed = 0, deleted = 0, created = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        const char *reason = emu_str(it, "reason");
        if (reason) {
            assert_string_equal(reason, "deleted");
            assert_string_equal(emu_str(it, "id"), b);
            assert_non_null(strstr(emu_str(it, "@odata.context"), "$deletedEntity"));
            deleted++;
        } else if (strcmp(emu_str(it, "subject"), "one!") == 0) {
            changed++;
        } else if (strcmp(emu_str(it, "subject"), "three") == 0) {
            created++;
        }
    }
    assert_int_equal(changed + deleted + created, 3);
    char delta2[2048];
    snprintf(delta2, sizeof(delta2), "%s", emu_str(r.json, "@odata.deltaLink"));
    assert_string_not_equal(delta2, delta);
    emures_free(&r);
    assert_int_equal(emu_req(&d, "GET", delta2, tc, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value")), 0);
    emures_free(&r);
    /* a tracked read pages too: the deltaLink comes with the last page */
    const char *tcp[] = {"Prefer: odata.track-changes,odata.maxpagesize=1", NULL};
    char next[2048];
    snprintf(next, sizeof(next), "smsys_smses?$select=subject");
    int pages = 0, seen = 0;
    for (;;) {
        assert_int_equal(emu_req(&d, "GET", next, tcp, NULL, &r), 200);
        seen += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value"));
        pages++;
        const char *nl = emu_str(r.json, "@odata.nextLink");
        if (nl == NULL) {
            assert_non_null(emu_str(r.json, "@odata.deltaLink"));
            emures_free(&r);
            break;
        }
        assert_null(emu_str(r.json, "@odata.deltaLink"));
        snprintf(next, sizeof(next), "%s", nl);
        emures_free(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(pages, 2);
    assert_int_equal(seen, 2);
    /* $filter, $orderby, $expand and $top are refused with tracking */
    const char *bad[] = {"smsys_smses?$select=subject&$filter=subject+eq+'x'",
                         "smsys_smses?$orderby=subject", "smsys_smses?$top=1",
                         "smsys_smses?$expand=smsys_sms_activity_parties"};
    for (size_t i = 0; i < 4; i++) {
        emu_req(&d, "GET", bad[i], tc, NULL, &r);
        emu_assert_error(&r, 400, NULL);
        emures_free(&r);
    }
    /* a rolled-back changeset leaves no trace in the delta */
    struct buf bb = BUF_INIT;
    char del[200];
    snprintf(del, sizeof(del), "smsys_smses(%s)", a);
    buf_puts(&bb, "--batch_AAA\r\nContent-Type: multipart/mixed; boundary=cs9\r\n\r\n");
    part(&bb, "cs9", "1", "DELETE", del, NULL);
    part(&bb, "cs9", "2", "POST", "smsys_smses", "{\"subject\":\"tmp\"}");
    part(&bb, "cs9", "3", "POST", "smsys_smses", "{\"bogus\":1}");
    buf_puts(&bb, "--cs9--\r\n--batch_AAA--\r\n");
    assert_int_equal(post_batch(&d, bb.data, 0, &r), 200);
    assert_non_null(strstr(r.body.data, "HTTP/1.1 400"));
    emures_free(&r);
    buf_free(&bb);
    assert_int_equal(emu_req(&d, "GET", delta2, tc, NULL, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value")), 0);
    emures_free(&r);
    snprintf(del, sizeof(del), "smsys_smses(%s)", a);
    assert_int_equal(emu_req(&d, "GET", del, NULL, NULL, &r), 200);
    emures_free(&r);
    /* a garbage delta token */
    emu_req(&d, "GET", "smsys_smses?$deltatoken=garbage", tc, NULL, &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    emu_stop(&d);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_changeset_and_refs),
        cmocka_unit_test(test_create_update_multiple),
        cmocka_unit_test(test_change_tracking),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
