/* test_dvemu_faults.c - dvemu's row fault rules (/_emu/faults) and its
 * check that an @odata.bind names a record that exists: Dataverse refuses
 * the one bad row, and for CreateMultiple / UpdateMultiple and a $batch
 * changeset the whole request, changing nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../lib/testutil.h"
#include "dvemu_client.h"

#define BAD_NUM "+989120000666"
#define MSG     "The phone number is blacklisted by a plug-in."

/* Live rows of an entity set (the control API's count). */
static int rows_of(struct emuproc *d, const char *set)
{
    struct emures r;
    emu_req_full(d, "GET", "/_emu/stats", NULL, NULL, 0, 0, &r);
    const cJSON *n =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "rows"), set);
    int v = cJSON_IsNumber(n) ? n->valueint : -1;
    emures_free(&r);
    return v;
}

/* Control API call (no token); returns the status, *out the JSON body. */
static long ctl(struct emuproc *d, const char *method, const char *body, cJSON **out)
{
    struct emures r;
    emu_req_full(d, method, "/_emu/faults", NULL, body, body ? strlen(body) : 0, 0, &r);
    long st = r.status;
    if (out) {
        *out = r.json;
        r.json = NULL;
    }
    emures_free(&r);
    return st;
}

static void add_rule(struct emuproc *d)
{
    assert_int_equal(
        ctl(d, "POST",
            "{\"entity_set\":\"smsys_smses\",\"match\":{\"smsys_phonenumber\":\"" BAD_NUM
            "\"},\"status\":400,\"code\":\"0x80040265\",\"message\":\"" MSG "\"}",
            NULL),
        204);
}

static double hits(struct emuproc *d)
{
    cJSON *l = NULL;
    assert_int_equal(ctl(d, "GET", NULL, &l), 200);
    assert_int_equal(cJSON_GetArraySize(l), 1);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(l, 0), "hits");
    double v = cJSON_IsNumber(h) ? h->valuedouble : -1;
    cJSON_Delete(l);
    return v;
}

static void sms_body(struct buf *b, const char *num, int typed)
{
    buf_printf(b, "{%s\"subject\":\"s\",\"smsys_phonenumber\":\"%s\"}",
               typed ? "\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\"," : "", num);
}

static void assert_refused(const struct emures *r, long status)
{
    emu_assert_error(r, status, "0x80040265");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    assert_string_equal(emu_str(err, "message"), MSG);
}

static void test_rule_single_and_multiple(void **state)
{
    (void)state;
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    /* bad rules are refused with the reason */
    assert_int_equal(ctl(&d, "POST", "{\"entity_set\":\"nosuch\",\"match\":{\"a\":1}}", NULL), 400);
    assert_int_equal(ctl(&d, "POST", "{\"entity_set\":\"smsys_smses\",\"match\":{}}", NULL), 400);
    assert_int_equal(ctl(&d, "POST",
                         "{\"entity_set\":\"smsys_smses\",\"match\":{\"a\":1},\"status\":200}",
                         NULL),
                     400);
    add_rule(&d);
    assert_int_equal(hits(&d), 0);

    /* single POST: the bad row is refused, a good one is created */
    struct buf b = BUF_INIT;
    sms_body(&b, BAD_NUM, 0);
    emu_req(&d, "POST", "smsys_smses", NULL, b.data, &r);
    assert_refused(&r, 400);
    emures_free(&r);
    buf_reset(&b);
    sms_body(&b, "+989120000001", 0);
    const char *good = emu_create(&d, "smsys_smses", b.data);
    char good_id[37];
    snprintf(good_id, sizeof(good_id), "%s", good);
    assert_int_equal(hits(&d), 1);

    /* CreateMultiple of 5 with one bad row: refused whole, nothing made */
    buf_reset(&b);
    buf_puts(&b, "{\"Targets\":[");
    for (int i = 0; i < 5; i++) {
        if (i)
            buf_putc(&b, ',');
        char num[20];
        snprintf(num, sizeof(num), "+98912000010%d", i);
        sms_body(&b, i == 3 ? BAD_NUM : num, 1);
    }
    buf_puts(&b, "]}");
    emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data, &r);
    assert_refused(&r, 400);
    emures_free(&r);
    assert_int_equal(rows_of(&d, "smsys_smses"), 1);
    assert_int_equal(hits(&d), 2);

    /* a PATCH (and an UpdateMultiple) making the row match is refused too:
     * the rule looks at the row as it would be stored */
    char path[128];
    snprintf(path, sizeof(path), "smsys_smses(%s)", good_id);
    emu_req(&d, "PATCH", path, NULL, "{\"smsys_phonenumber\":\"" BAD_NUM "\"}", &r);
    assert_refused(&r, 400);
    emures_free(&r);
    /* updating another column of a matching row is refused as well */
    buf_reset(&b);
    buf_printf(&b,
               "{\"Targets\":[{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\","
               "\"activityid\":\"%s\",\"subject\":\"x\"},{\"@odata.type\":"
               "\"Microsoft.Dynamics.CRM.smsys_sms\",\"activityid\":\"%s\","
               "\"smsys_phonenumber\":\"" BAD_NUM "\"}]}",
               good_id, good_id);
    emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.UpdateMultiple", NULL, b.data, &r);
    assert_refused(&r, 400);
    emures_free(&r);
    emu_req(&d, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(emu_str(r.json, "subject"), "s"); /* the first target rolled back */
    emures_free(&r);
    assert_int_equal(hits(&d), 4);

    /* the status and code are the rule's: a 404-like refusal */
    assert_int_equal(ctl(&d, "DELETE", NULL, NULL), 204);
    assert_int_equal(ctl(&d, "POST",
                         "{\"entity_set\":\"smsys_smses\",\"match\":{\"subject\":\"gone\"},"
                         "\"status\":404,\"code\":\"0x80040217\"}",
                         NULL),
                     204);
    emu_req(&d, "POST", "smsys_smses", NULL, "{\"subject\":\"gone\"}", &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    emu_req(&d, "POST", "smsys_smses", NULL, "{\"subject\":\"fine\"}", &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);

    /* cleared: the bad number goes through */
    assert_int_equal(ctl(&d, "DELETE", NULL, NULL), 204);
    cJSON *l = NULL;
    assert_int_equal(ctl(&d, "GET", NULL, &l), 200);
    assert_int_equal(cJSON_GetArraySize(l), 0);
    cJSON_Delete(l);
    buf_reset(&b);
    sms_body(&b, BAD_NUM, 0);
    emu_create(&d, "smsys_smses", b.data);
    buf_free(&b);
    emu_stop(&d);
}

static void part(struct buf *b, const char *cid, const char *method, const char *url,
                 const char *body)
{
    buf_printf(b,
               "--changeset_F\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: "
               "binary\r\nContent-ID: %s\r\n\r\n%s %s HTTP/1.1\r\n",
               cid, method, url);
    buf_printf(b, "Content-Type: application/json; type=entry\r\n\r\n%s\r\n", body);
}

static void test_rule_batch_changeset(void **state)
{
    (void)state;
    struct emuproc d;
    emu_start(&d, NULL);
    add_rule(&d);
    struct buf b = BUF_INIT, one = BUF_INIT;
    buf_puts(&b, "--batch_F\r\nContent-Type: multipart/mixed; boundary=changeset_F\r\n\r\n");
    for (int i = 0; i < 4; i++) {
        char cid[8], num[20];
        snprintf(cid, sizeof(cid), "%d", i + 1);
        snprintf(num, sizeof(num), "+98912000020%d", i);
        buf_reset(&one);
        sms_body(&one, i == 2 ? BAD_NUM : num, 0);
        part(&b, cid, "POST", "/api/data/v9.2/smsys_smses", one.data);
    }
    buf_puts(&b, "--changeset_F--\r\n--batch_F--\r\n");
    const char *h[] = {"Content-Type: multipart/mixed; boundary=batch_F", NULL};
    struct emures r;
    assert_int_equal(emu_req(&d, "POST", "$batch", h, b.data, &r), 200);
    /* only the failing part is answered, naming its Content-ID */
    assert_non_null(strstr(r.body.data, "HTTP/1.1 400"));
    assert_non_null(strstr(r.body.data, "Content-ID: 3"));
    assert_non_null(strstr(r.body.data, MSG));
    assert_null(strstr(r.body.data, "HTTP/1.1 204"));
    emures_free(&r);
    assert_int_equal(rows_of(&d, "smsys_smses"), 0);
    assert_int_equal(hits(&d), 1);
    buf_free(&b);
    buf_free(&one);
    emu_stop(&d);
}

/* A lookup bound to a record deleted meanwhile: 404 naming the record,
 * for a single create and for the whole CreateMultiple. */
static void test_bind_to_deleted_record(void **state)
{
    (void)state;
    struct emuproc d;
    emu_start(&d, NULL);
    char c1[37], c2[37];
    snprintf(c1, sizeof(c1), "%s", emu_create(&d, "contacts", "{\"lastname\":\"Kept\"}"));
    snprintf(c2, sizeof(c2), "%s", emu_create(&d, "contacts", "{\"lastname\":\"Gone\"}"));
    char path[96];
    snprintf(path, sizeof(path), "contacts(%s)", c2);
    struct emures r;
    assert_int_equal(emu_req(&d, "DELETE", path, NULL, NULL, &r), 204);
    emures_free(&r);
    struct buf b = BUF_INIT;
    buf_printf(&b,
               "{\"subject\":\"s\",\"regardingobjectid_contact_smsys_sms@odata.bind\":"
               "\"/contacts(%s)\"}",
               c2);
    emu_req(&d, "POST", "smsys_smses", NULL, b.data, &r);
    emu_assert_error(&r, 404, "0x80040217");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    assert_non_null(strstr(emu_str(err, "message"), c2));
    emures_free(&r);
    buf_reset(&b);
    buf_puts(&b, "{\"Targets\":[");
    for (int i = 0; i < 3; i++)
        buf_printf(&b,
                   "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\",\"subject\":\"m\","
                   "\"smsys_sms_activity_parties\":[{\"partyid_contact@odata.bind\":"
                   "\"/contacts(%s)\",\"participationtypemask\":2}]}",
                   i ? "," : "", i == 1 ? c2 : c1);
    buf_puts(&b, "]}");
    emu_req(&d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data, &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    assert_int_equal(rows_of(&d, "smsys_smses"), 0);
    buf_free(&b);
    emu_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_single_and_multiple),
        cmocka_unit_test(test_rule_batch_changeset),
        cmocka_unit_test(test_bind_to_deleted_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
