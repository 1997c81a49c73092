/* Unit tests for odata.c (escaping, literals, entity ids, annotations,
 * $batch codec) and oauth_parse_response (both token response shapes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/oauth.h"
#include "smsys/odata.h"

static void test_lit_string(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(odata_lit_string(&b, "O'Brien"), 0);
    assert_string_equal(b.data, "'O''Brien'");
    buf_reset(&b);
    assert_int_equal(odata_lit_string(&b, "''"), 0);
    assert_string_equal(b.data, "''''''");
    buf_reset(&b);
    assert_int_equal(odata_lit_string(&b, ""), 0);
    assert_string_equal(b.data, "''");
    buf_reset(&b);
    /* Persian text with an apostrophe passes through as UTF-8 */
    assert_int_equal(odata_lit_string(&b, "سلام 'دنیا'"), 0);
    assert_string_equal(b.data, "'سلام ''دنیا'''");
    buf_reset(&b);
    /* invalid UTF-8 is refused and leaves the buffer untouched */
    assert_int_equal(buf_puts(&b, "x"), 0);
    assert_int_equal(odata_lit_string(&b, "\xff\xfe"), -EINVAL);
    assert_int_equal(odata_lit_string(&b, "\xed\xa0\x80"), -EINVAL); /* surrogate */
    assert_int_equal(odata_lit_string(&b, "\xc0\xaf"), -EINVAL);     /* overlong '/' */
    assert_string_equal(b.data, "x");
    buf_free(&b);
}

static void test_query_encoding(void **state)
{
    (void)state;
    struct buf f = BUF_INIT, u = BUF_INIT;
    assert_int_equal(buf_puts(&f, "fullname eq "), 0);
    assert_int_equal(odata_lit_string(&f, "O'Brien & Co"), 0);
    assert_int_equal(buf_puts(&u, "contacts"), 0);
    assert_int_equal(odata_query_add(&u, "$select", "fullname,mobilephone"), 0);
    assert_int_equal(odata_query_add(&u, "$filter", f.data), 0);
    assert_int_equal(odata_query_add(&u, "$top", ""), 0); /* empty: skipped */
    assert_string_equal(u.data, "contacts?$select=fullname%2Cmobilephone"
                                "&$filter=fullname%20eq%20%27O%27%27Brien%20%26%20Co%27");
    /* Persian: UTF-8 bytes percent-encoded, quote doubled first */
    buf_reset(&f);
    buf_reset(&u);
    assert_int_equal(buf_puts(&f, "lastname eq "), 0);
    assert_int_equal(odata_lit_string(&f, "رضا'ی"), 0);
    assert_int_equal(odata_query_add(&u, "$filter", f.data), 0);
    assert_string_equal(u.data, "?$filter=lastname%20eq%20%27%D8%B1%D8%B6%D8%A7%27%27%DB%8C%27");
    assert_int_equal(odata_query_add(&u, NULL, "x"), -EINVAL);
    buf_free(&f);
    buf_free(&u);
}

static void test_guid_datetime(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(odata_lit_guid(&b, "0F3C1A2B-0000-4ABC-8DEF-0123456789AB"), 0);
    assert_string_equal(b.data, "0f3c1a2b-0000-4abc-8def-0123456789ab");
    buf_reset(&b);
    assert_int_equal(odata_lit_guid(&b, "{0f3c1a2b-0000-4abc-8def-0123456789ab}"), 0);
    assert_string_equal(b.data, "0f3c1a2b-0000-4abc-8def-0123456789ab");
    buf_reset(&b);
    assert_int_equal(odata_lit_guid(&b, "0f3c1a2b-0000-4abc-8def-0123456789a"), -EINVAL);
    assert_int_equal(odata_lit_guid(&b, "0f3c1a2b-0000-4abc-8def-0123456789ag"), -EINVAL);
    assert_int_equal(odata_lit_guid(&b, "' or 1 eq 1 or 'x' eq '00000000000"), -EINVAL);
    assert_int_equal(odata_lit_guid(&b, NULL), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(odata_lit_datetime(&b, 1795852244), 0);
    assert_string_equal(b.data, "2026-11-28T07:50:44Z");
    buf_reset(&b);
    assert_int_equal(odata_lit_datetime(&b, 0), 0);
    assert_string_equal(b.data, "1970-01-01T00:00:00Z");
    assert_int_equal(odata_lit_datetime(&b, 253402300800LL), -EINVAL);
    buf_free(&b);
}

static void test_select_expand(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    const char *cols[] = {"subject", "_regardingobjectid_value", "smsys_status"};
    assert_int_equal(odata_select(&b, cols, 3), 0);
    assert_string_equal(b.data, "subject,_regardingobjectid_value,smsys_status");
    const char *bad[] = {"subject", "x,y"};
    assert_int_equal(odata_select(&b, bad, 2), -EINVAL);
    assert_string_equal(b.data, "subject,_regardingobjectid_value,smsys_status");
    buf_reset(&b);
    assert_int_equal(odata_expand(&b, "smsys_sms_activity_parties",
                                  "participationtypemask,_partyid_value", NULL),
                     0);
    assert_int_equal(odata_expand(&b, "ownerid", NULL, NULL), 0);
    assert_int_equal(odata_expand(&b, "x", "a", "b eq 1"), 0);
    assert_string_equal(b.data, "smsys_sms_activity_parties($select=participationtypemask,"
                                "_partyid_value),ownerid,x($select=a;$filter=b eq 1)");
    assert_int_equal(odata_expand(&b, "y", "a);$top=1", NULL), -EINVAL);
    assert_int_equal(odata_expand(&b, "y(", NULL, NULL), -EINVAL);
    buf_free(&b);
}

static void test_entity_id(void **state)
{
    (void)state;
    char id[37];
    assert_int_equal(odata_entity_id("https://org.crm.dynamics.com/api/data/v9.2/contacts("
                                     "00000000-0000-0000-0000-00000000000A)",
                                     id),
                     0);
    assert_string_equal(id, "00000000-0000-0000-0000-00000000000a");
    assert_int_equal(odata_entity_id("http://127.0.0.1:1/api/data/v9.2/smsys_smses("
                                     "d3b1e6a4-2f5c-4a8e-9b7d-1c2e3f4a5b6c)  ",
                                     id),
                     0);
    assert_string_equal(id, "d3b1e6a4-2f5c-4a8e-9b7d-1c2e3f4a5b6c");
    assert_int_equal(odata_entity_id("https://x/contacts(emailaddress1='a@b.c')", id), -EINVAL);
    assert_int_equal(odata_entity_id("(", id), -EINVAL);
    assert_int_equal(odata_entity_id("", id), -EINVAL);
    assert_int_equal(odata_entity_id(NULL, id), -EINVAL);
}

static void test_annotations_errors(void **state)
{
    (void)state;
    cJSON *row = cJSON_Parse(
        "{\"statecode\":1,\"statecode@OData.Community.Display.V1.FormattedValue\":\"Completed\","
        "\"_regardingobjectid_value\":\"0f3c1a2b-0000-4abc-8def-0123456789ab\","
        "\"_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname\":\"contact\"}");
    assert_non_null(row);
    assert_string_equal(odata_formatted(row, "statecode"), "Completed");
    assert_null(odata_formatted(row, "statuscode"));
    assert_string_equal(odata_lookup_table(row, "regardingobjectid"), "contact");
    assert_string_equal(odata_lookup_table(row, "_regardingobjectid_value"), "contact");
    assert_null(odata_lookup_table(row, "ownerid"));
    cJSON_Delete(row);

    char code[32], msg[128];
    const char *e = "{\"error\":{\"code\":\"0x80040217\",\"message\":\"contact With Id = x Does "
                    "Not Exist\"}}";
    assert_int_equal(odata_error_parse(e, strlen(e), code, sizeof code, msg, sizeof msg), 1);
    assert_string_equal(code, "0x80040217");
    assert_string_equal(msg, "contact With Id = x Does Not Exist");
    assert_int_equal(odata_error_parse("nope", 4, code, sizeof code, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
}

static void test_batch_build(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    struct odata_batch_req r[2] = {
        {.method = "PATCH",
         .url = "http://h/api/data/v9.2/contacts(1)",
         .body = "{\"a\":1}",
         .if_match = "*",
         .content_id = "1"},
        {.method = "DELETE", .url = "contacts(2)", .content_id = "2"},
    };
    assert_int_equal(odata_batch_build(&b, "batch_B", "changeset_C", r, 2), 0);
    const char *want =
        "--batch_B\r\nContent-Type: multipart/mixed; boundary=changeset_C\r\n\r\n"
        "--changeset_C\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: "
        "binary\r\nContent-ID: 1\r\n\r\nPATCH http://h/api/data/v9.2/contacts(1) HTTP/1.1\r\n"
        "Content-Type: application/json; charset=utf-8\r\nIf-Match: *\r\n\r\n{\"a\":1}\r\n"
        "--changeset_C\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: "
        "binary\r\nContent-ID: 2\r\n\r\nDELETE contacts(2) HTTP/1.1\r\n\r\n\r\n"
        "--changeset_C--\r\n--batch_B--\r\n";
    assert_string_equal(b.data, want);
    struct odata_batch_req bad = {.method = "GET", .url = "a b"};
    assert_int_equal(odata_batch_build(&b, "x", NULL, &bad, 1), -EINVAL);
    buf_free(&b);
}

/* A Dataverse-shaped response: a changeset of two 204s, then a GET. */
static const char *SAMPLE =
    "--batchresponse_1d2\r\n"
    "Content-Type: multipart/mixed; boundary=changesetresponse_9f\r\n\r\n"
    "--changesetresponse_9f\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n"
    "OData-EntityId: http://h/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)\r\n\r\n"
    "\r\n"
    "--changesetresponse_9f\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n"
    "--changesetresponse_9f--\r\n"
    "--batchresponse_1d2\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n"
    "{\"value\":[]}\r\n"
    "--batchresponse_1d2--\r\n";

static void test_batch_parse(void **state)
{
    (void)state;
    struct odata_batch ob;
    struct smsys_err e;
    assert_int_equal(odata_batch_parse("multipart/mixed; boundary=batchresponse_1d2", SAMPLE,
                                       strlen(SAMPLE), &ob, &e),
                     0);
    assert_int_equal(ob.n, 3);
    assert_int_equal(ob.parts[0].status, 204);
    assert_string_equal(ob.parts[0].content_id, "1");
    assert_int_equal(ob.parts[0].changeset, 0);
    assert_string_equal(odata_part_header(&ob.parts[0], "odata-entityid"),
                        "http://h/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)");
    assert_int_equal(ob.parts[0].body_len, 0);
    assert_string_equal(ob.parts[1].content_id, "2");
    assert_int_equal(ob.parts[2].status, 200);
    assert_int_equal(ob.parts[2].changeset, -1);
    assert_null(ob.parts[2].content_id);
    assert_string_equal(ob.parts[2].body, "{\"value\":[]}");
    odata_batch_free(&ob);

    /* the same with LF line ends and a quoted boundary, plus a failure
     * part carrying a Dataverse error body */
    const char *lf = "preamble\n--b\"x\nContent-Type: multipart/mixed;boundary=cs\n\n"
                     "--cs\nContent-Type: application/http\nContent-ID: 7\n\n"
                     "HTTP/1.1 412 Precondition Failed\nContent-Type: application/json\n\n"
                     "{\"error\":{\"code\":\"0x80060882\",\"message\":\"changed\"}}\n"
                     "--cs--\n--b\"x--\nepilogue";
    assert_int_equal(odata_batch_parse("Multipart/Mixed; charset=x; BOUNDARY=\"b\\\"x\"", lf,
                                       strlen(lf), &ob, &e),
                     SMSYS_EPROTO); /* a quote inside a quoted boundary is not supported */
    lf = "preamble\n--bx\nContent-Type: multipart/mixed;boundary=cs\n\n"
         "--cs\nContent-Type: application/http\nContent-ID: 7\n\n"
         "HTTP/1.1 412 Precondition Failed\nContent-Type: application/json\n\n"
         "{\"error\":{\"code\":\"0x80060882\",\"message\":\"changed\"}}\n"
         "--cs--\n--bx--\nepilogue";
    assert_int_equal(
        odata_batch_parse("Multipart/Mixed; charset=x; BOUNDARY=\"bx\"", lf, strlen(lf), &ob, &e),
        0);
    assert_int_equal(ob.n, 1);
    assert_int_equal(ob.parts[0].status, 412);
    assert_string_equal(ob.parts[0].content_id, "7");
    assert_string_equal(ob.parts[0].body,
                        "{\"error\":{\"code\":\"0x80060882\",\"message\":\"changed\"}}");
    odata_batch_free(&ob);
}

static void test_batch_malformed(void **state)
{
    (void)state;
    struct odata_batch ob;
    struct smsys_err e;
    const char *ct = "multipart/mixed; boundary=b";
    const char *cases[] = {
        "",                                                                     /* empty */
        "--b\r\n",                                                              /* truncated */
        "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", /* no close */
        "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 2x0 OK\r\n\r\n--b--",
        "--b\r\nContent-Type: application/http\r\n\r\nHELLO\r\n\r\n--b--",
        "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 099 X\r\n\r\n--b--",
        "--b\r\nContent-Type: application/http\r\nno blank line--b--",
        "--b--\r\n", /* no parts */
        "--bb\r\n\r\nHTTP/1.1 200 OK\r\n\r\n--b--",
        /* nested deeper than a changeset */
        "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: "
        "multipart/mixed; boundary=d\r\n\r\n--d\r\n\r\nHTTP/1.1 200 OK\r\n\r\n--d--\r\n--c--\r\n"
        "--b--",
        "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\nbadheader\r\n\r\n--b--",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        smsys_err_clear(&e);
        int rc = odata_batch_parse(ct, cases[i], strlen(cases[i]), &ob, &e);
        if (rc != SMSYS_EPROTO)
            fail_msg("case %zu: rc %d", i, rc);
        assert_true(strlen(e.detail) > 0);
        assert_int_equal(ob.n, 0);
        assert_null(ob.parts);
    }
    assert_int_equal(odata_batch_parse("application/json", "--b--", 5, &ob, &e), SMSYS_EPROTO);
    assert_int_equal(odata_batch_parse(NULL, "--b--", 5, &ob, &e), SMSYS_EPROTO);
    assert_int_equal(odata_batch_parse("multipart/mixed; boundary=", "--b--", 5, &ob, &e),
                     SMSYS_EPROTO);
}

static void test_token_shapes(void **state)
{
    (void)state;
    char *tok;
    int64_t ttl;
    struct smsys_err e;
    const char *v2 = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                     "\"access_token\":\"eyJ0eXAi.v2\"}";
    assert_int_equal(oauth_parse_response(200, v2, strlen(v2), &tok, &ttl, &e), 0);
    assert_string_equal(tok, "eyJ0eXAi.v2");
    assert_int_equal(ttl, 3599);
    free(tok);
    const char *v1 = "{\"token_type\":\"Bearer\",\"expires_in\":\"3600\",\"ext_expires_in\":"
                     "\"3600\",\"expires_on\":\"1795855844\",\"not_before\":\"1795852244\","
                     "\"resource\":\"https://org.crm.dynamics.com/\",\"access_token\":\"v1tok\"}";
    assert_int_equal(oauth_parse_response(200, v1, strlen(v1), &tok, &ttl, &e), 0);
    assert_string_equal(tok, "v1tok");
    assert_int_equal(ttl, 3600);
    free(tok);
    const char *bad_ei = "{\"access_token\":\"x\",\"expires_in\":\"soon\"}";
    assert_int_equal(oauth_parse_response(200, bad_ei, strlen(bad_ei), &tok, &ttl, &e),
                     SMSYS_EPROTO);
    assert_null(tok);
    const char *mac = "{\"access_token\":\"x\",\"token_type\":\"mac\",\"expires_in\":5}";
    assert_int_equal(oauth_parse_response(200, mac, strlen(mac), &tok, &ttl, &e), SMSYS_EPROTO);
    assert_int_equal(oauth_parse_response(200, "[", 1, &tok, &ttl, &e), SMSYS_EPROTO);
    const char *err = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                      "Invalid client secret provided.\",\"error_codes\":[7000215]}";
    assert_int_equal(oauth_parse_response(401, err, strlen(err), &tok, &ttl, &e), SMSYS_EAUTH);
    assert_non_null(strstr(e.detail, "AADSTS7000215: Invalid client secret provided."));
    assert_non_null(strstr(e.detail, "invalid_client"));
    assert_int_equal(oauth_parse_response(503, "", 0, &tok, &ttl, &e), SMSYS_ETEMP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lit_string),      cmocka_unit_test(test_query_encoding),
        cmocka_unit_test(test_guid_datetime),   cmocka_unit_test(test_select_expand),
        cmocka_unit_test(test_entity_id),       cmocka_unit_test(test_annotations_errors),
        cmocka_unit_test(test_batch_build),     cmocka_unit_test(test_batch_parse),
        cmocka_unit_test(test_batch_malformed), cmocka_unit_test(test_token_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
