/* test_dvemu_ops.c - dvemu over real HTTP: service protection (429 with
 * Retry-After and the documented codes), fault and latency injection,
 * /_emu/stats, --data persistence across a clean restart and a crash,
 * fetchXml, marketing-list associations, AddToQueue, custom actions,
 * metadata (schema deploy) and --seed demo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "../lib/testutil.h"
#include "smsys/util.h"
#include "dvemu_client.h"

static int nvalues(const struct emures *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->json, "value"));
}

static void test_request_limit(void **state)
{
    struct emuproc d;
    const char *args[] = {"--limit-requests", "5", "--limit-window", "2", NULL};
    emu_start(&d, args);
    struct emures r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
        emures_free(&r);
    }
    emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r);
    emu_assert_error(&r, 429, "0x80072322");
    const char *ra = emu_hdr(&r, "Retry-After");
    assert_non_null(ra);
    long secs = strtol(ra, NULL, 10);
    assert_true(secs >= 1 && secs <= 2);
    emures_free(&r);
    /* the window slides: after Retry-After the requests go through again */
    sleep((unsigned)secs + 1);
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    emures_free(&r);
    /* served 429s are counted */
    emu_req_full(&d, "GET", "/_emu/stats", NULL, NULL, 0, 0, &r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "throttled_429")->valueint, 1);
    emures_free(&r);
    emu_stop(&d);
}

struct conc {
    struct emuproc *d;
    long status;
    char code[32];
};

static void *conc_thread(void *arg)
{
    struct conc *c = arg;
    struct emuproc mine = *c->d;
    mine.curl = curl_easy_init();
    struct emures r;
    c->status = emu_req(&mine, "GET", "WhoAmI", NULL, NULL, &r);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r.json, "error");
    if (err)
        snprintf(c->code, sizeof(c->code), "%s", emu_str(err, "code"));
    emures_free(&r);
    curl_easy_cleanup(mine.curl);
    return NULL;
}

static void test_concurrency_limit_and_latency(void **state)
{
    struct emuproc d;
    const char *args[] = {"--limit-concurrency", "2", "--latency-ms", "400", NULL};
    emu_start(&d, args);
    struct conc c[5];
    pthread_t th[5];
    uint64_t t0 = util_now_ms();
    for (int i = 0; i < 5; i++) {
        c[i] = (struct conc){.d = &d};
        assert_int_equal(pthread_create(&th[i], NULL, conc_thread, &c[i]), 0);
        usleep(30000); /* arrive in order, well inside the 400 ms latency */
    }
    int ok = 0, limited = 0;
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        if (c[i].status == 200)
            ok++;
        if (c[i].status == 429) {
            assert_string_equal(c[i].code, "0x80072326");
            limited++;
        }
    }
    assert_int_equal(ok, 2);
    assert_int_equal(limited, 3);
    assert_true(util_now_ms() - t0 >= 400); /* the latency was applied */
    emu_stop(&d);
}

static void test_exec_time_limit_and_delta_ttl(void **state)
{
    struct emuproc d;
    const char *args[] = {"--limit-exec-ms",
                          "300",
                          "--limit-window",
                          "3",
                          "--latency-ms",
                          "200",
                          "--delta-ttl",
                          "1",
                          NULL};
    emu_start(&d, args);
    struct emures r;
    const char *tc[] = {"Prefer: odata.track-changes", NULL};
    assert_int_equal(emu_req(&d, "GET", "contacts?$select=firstname", tc, NULL, &r), 200);
    char delta[1024];
    snprintf(delta, sizeof(delta), "%s", emu_str(r.json, "@odata.deltaLink"));
    emures_free(&r);
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    emures_free(&r);
    /* 2 x 200 ms spent: over 300 ms in the window */
    emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r);
    emu_assert_error(&r, 429, "0x80072321");
    long secs = strtol(emu_hdr(&r, "Retry-After"), NULL, 10);
    assert_true(secs >= 1 && secs <= 3);
    emures_free(&r);
    sleep((unsigned)secs + 1);
    /* the time has left the window, and the delta token has expired meanwhile */
    emu_req(&d, "GET", delta, tc, NULL, &r);
    emu_assert_error(&r, 400, NULL);
    assert_non_null(strstr(r.body.data, "expired"));
    emures_free(&r);
    emu_stop(&d);
}

static void test_fail_rate(void **state)
{
    struct emuproc d;
    const char *args[] = {"--fail-rate", "1.0", NULL};
    emu_start(&d, args);
    struct emures r;
    emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r);
    emu_assert_error(&r, 503, NULL);
    emures_free(&r);
    emu_req_full(&d, "GET", "/_emu/stats", NULL, NULL, 0, 0, &r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "injected_failures")->valueint, 1);
    emures_free(&r);
    emu_stop(&d);
}

static void test_stats(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    emu_create(&d, "contacts", "{\"firstname\":\"A\"}");
    emu_create(&d, "contacts", "{\"firstname\":\"B\"}");
    emu_req(&d, "GET", "contacts", NULL, NULL, &r);
    emures_free(&r);
    emu_req_full(&d, "GET", "/_emu/stats", NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    cJSON *bym = cJSON_GetObjectItemCaseSensitive(r.json, "by_method");
    cJSON *bys = cJSON_GetObjectItemCaseSensitive(r.json, "by_entity_set");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bym, "GET")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bym, "POST")->valueint, 3); /* + token */
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bys, "contacts")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "rows_written")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "batches")->valueint, 0);
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(r.json, "rows");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(rows, "contacts")->valueint, 2);
    emures_free(&r);
    emu_stop(&d);
}

static void rm_rf(const char *dir)
{
    DIR *dd = opendir(dir);
    if (dd == NULL)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(dd)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(dd);
    rmdir(dir);
}

static void test_persistence(void **state)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "/tmp/dvemu-test-data-%d", (int)getpid());
    rm_rf(dir);
    const char *args[] = {"--data", dir, NULL};
    struct emuproc d;
    emu_start(&d, args);
    struct emures r;
    char keep[40], gone[40], list[40];
    snprintf(keep, sizeof(keep), "%s", emu_create(&d, "contacts", "{\"firstname\":\"Keep\"}"));
    snprintf(gone, sizeof(gone), "%s", emu_create(&d, "contacts", "{\"firstname\":\"Gone\"}"));
    snprintf(list, sizeof(list), "%s",
             emu_create(&d, "lists", "{\"listname\":\"L\",\"type\":false,\"createdfromcode\":2}"));
    char url[300], ref[300];
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association/$ref", list);
    snprintf(ref, sizeof(ref), "{\"@odata.id\":\"%scontacts(%s)\"}", d.api, keep);
    assert_int_equal(emu_req(&d, "POST", url, NULL, ref, &r), 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "contacts(%s)", gone);
    assert_int_equal(emu_req(&d, "DELETE", url, NULL, NULL, &r), 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "contacts(%s)?$select=firstname", keep);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", emu_str(r.json, "@odata.etag"));
    emures_free(&r);
    const char *tc[] = {"Prefer: odata.track-changes", NULL};
    emu_req(&d, "GET", "contacts?$select=firstname", tc, NULL, &r);
    char delta[1024];
    snprintf(delta, sizeof(delta), "%s", strstr(emu_str(r.json, "@odata.deltaLink"), "contacts?"));
    emures_free(&r);
    char token[4096];
    snprintf(token, sizeof(token), "%s", d.token);
    emu_stop(&d); /* clean stop: compacts into a snapshot */

    emu_start_args(&d, args);
    snprintf(d.token, sizeof(d.token), "%s", token); /* tokens survive a restart too */
    snprintf(url, sizeof(url), "contacts(%s)?$select=firstname", keep);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "firstname"), "Keep");
    assert_string_equal(emu_str(r.json, "@odata.etag"), etag); /* versions survive */
    emures_free(&r);
    snprintf(url, sizeof(url), "contacts(%s)", gone);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 404);
    emures_free(&r);
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association?$select=firstname", list);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    /* an old delta link still works after the restart */
    assert_int_equal(emu_req(&d, "GET", delta, tc, NULL, &r), 200);
    assert_int_equal(nvalues(&r), 0);
    emures_free(&r);
    /* crash: acknowledged writes are in the journal before the reply */
    snprintf(keep, sizeof(keep), "%s",
             emu_create(&d, "contacts", "{\"firstname\":\"AfterCrash\"}"));
    emu_kill9(&d);
    emu_start_args(&d, args);
    snprintf(d.token, sizeof(d.token), "%s", token);
    snprintf(url, sizeof(url), "contacts(%s)?$select=firstname", keep);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "firstname"), "AfterCrash");
    emures_free(&r);
    emu_req(&d, "GET", "contacts?$select=firstname", NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 2);
    emures_free(&r);
    emu_stop(&d);
    rm_rf(dir);
}

static void test_fetchxml(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    for (int i = 0; i < 7; i++) {
        char b[200];
        snprintf(b, sizeof(b), "{\"firstname\":\"F%d\",\"address1_city\":\"%s\"%s}", i,
                 i % 2 ? "Tehran" : "Shiraz", i == 3 ? "" : ",\"mobilephone\":\"0912\"");
        emu_create(&d, "contacts", b);
    }
    const char *xml = "<fetch count=\"2\" page=\"1\"><entity name=\"contact\">"
                      "<attribute name=\"firstname\"/><attribute name=\"mobilephone\"/>"
                      "<filter type=\"and\"><condition attribute=\"address1_city\" "
                      "operator=\"eq\" value=\"Tehran\"/></filter>"
                      "<order attribute=\"firstname\"/></entity></fetch>";
    char *esc = curl_easy_escape(NULL, xml, 0);
    char url[4096];
    snprintf(url, sizeof(url), "contacts?fetchXml=%s", esc);
    curl_free(esc);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_int_equal(nvalues(&r), 2);
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(r.json, "@Microsoft.Dynamics.CRM.morerecords")));
    assert_non_null(strstr(emu_str(r.json, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"),
                           "pagenumber=\"2\""));
    cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 0), "firstname"), "F1");
    /* F3 has no mobile: null columns are left out of FetchXML results */
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 1), "firstname"), "F3");
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 1), "mobilephone"));
    emures_free(&r);
    /* page 2 is the last one */
    const char *xml2 = "<fetch count=\"2\" page=\"2\"><entity name=\"contact\">"
                       "<attribute name=\"firstname\"/><filter><condition "
                       "attribute=\"address1_city\" operator=\"eq\" value=\"Tehran\"/>"
                       "</filter><order attribute=\"firstname\"/></entity></fetch>";
    esc = curl_easy_escape(NULL, xml2, 0);
    snprintf(url, sizeof(url), "contacts?fetchXml=%s", esc);
    curl_free(esc);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    assert_false(cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(r.json, "@Microsoft.Dynamics.CRM.morerecords")));
    emures_free(&r);
    /* like, not-null and in */
    const char *xml3 = "<fetch><entity name=\"contact\"><attribute name=\"firstname\"/>"
                       "<filter type=\"or\"><condition attribute=\"firstname\" operator=\"in\">"
                       "<value>F0</value><value>F2</value></condition><filter>"
                       "<condition attribute=\"firstname\" operator=\"like\" value=\"%6\"/>"
                       "<condition attribute=\"mobilephone\" operator=\"not-null\"/></filter>"
                       "</filter></entity></fetch>";
    esc = curl_easy_escape(NULL, xml3, 0);
    snprintf(url, sizeof(url), "contacts?fetchXml=%s", esc);
    curl_free(esc);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_int_equal(nvalues(&r), 3);
    emures_free(&r);
    /* malformed XML and unknown attribute: 400 */
    esc = curl_easy_escape(NULL, "<fetch><entity name=\"contact\"></fetch>", 0);
    snprintf(url, sizeof(url), "contacts?fetchXml=%s", esc);
    curl_free(esc);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    esc = curl_easy_escape(NULL,
                           "<fetch><entity name=\"contact\"><attribute name=\"zz\"/>"
                           "</entity></fetch>",
                           0);
    snprintf(url, sizeof(url), "contacts?fetchXml=%s", esc);
    curl_free(esc);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x80041103");
    emures_free(&r);
    emu_stop(&d);
}

static void test_lists_queue_actions(void **state)
{
    const char *args[] = {"--action", "smsys_Notify", NULL};
    struct emuproc d;
    emu_start(&d, args);
    struct emures r;
    char list[40], camp[40], c1[40], c2[40], url[400], ref[300];
    snprintf(c1, sizeof(c1), "%s", emu_create(&d, "contacts", "{\"firstname\":\"M1\"}"));
    snprintf(c2, sizeof(c2), "%s", emu_create(&d, "contacts", "{\"firstname\":\"M2\"}"));
    snprintf(
        list, sizeof(list), "%s",
        emu_create(&d, "lists", "{\"listname\":\"VIP\",\"type\":false,\"createdfromcode\":2}"));
    snprintf(camp, sizeof(camp), "%s", emu_create(&d, "campaigns", "{\"name\":\"Yalda\"}"));
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association/$ref", list);
    const char *ids[] = {c1, c2};
    for (int i = 0; i < 2; i++) {
        snprintf(ref, sizeof(ref), "{\"@odata.id\":\"%scontacts(%s)\"}", d.api, ids[i]);
        assert_int_equal(emu_req(&d, "POST", url, NULL, ref, &r), 204);
        emures_free(&r);
    }
    snprintf(url, sizeof(url), "campaigns(%s)/campaignlist_association/$ref", camp);
    snprintf(ref, sizeof(ref), "{\"@odata.id\":\"%slists(%s)\"}", d.api, list);
    assert_int_equal(emu_req(&d, "POST", url, NULL, ref, &r), 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "campaigns(%s)/campaignlist_association?$select=listname", camp);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    /* members, paged by one */
    const char *pf[] = {"Prefer: odata.maxpagesize=1", NULL};
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association?$select=firstname", list);
    emu_req(&d, "GET", url, pf, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    char next[1024];
    snprintf(next, sizeof(next), "%s", emu_str(r.json, "@odata.nextLink"));
    emures_free(&r);
    emu_req(&d, "GET", next, pf, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    assert_null(emu_str(r.json, "@odata.nextLink"));
    emures_free(&r);
    /* remove a member */
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association(%s)/$ref", list, c1);
    assert_int_equal(emu_req(&d, "DELETE", url, NULL, NULL, &r), 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association", list);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    /* AddToQueue */
    char q[40], inc[40], body[300];
    snprintf(q, sizeof(q), "%s", emu_create(&d, "queues", "{\"name\":\"Support 24/7\"}"));
    snprintf(body, sizeof(body),
             "{\"title\":\"help\",\"customerid_contact@odata.bind\":\"/contacts(%s)\"}", c2);
    snprintf(inc, sizeof(inc), "%s", emu_create(&d, "incidents", body));
    snprintf(url, sizeof(url), "queues(%s)/Microsoft.Dynamics.CRM.AddToQueue", q);
    snprintf(
        body, sizeof(body),
        "{\"Target\":{\"incidentid\":\"%s\",\"@odata.type\":\"Microsoft.Dynamics.CRM.incident\"}}",
        inc);
    assert_int_equal(emu_req(&d, "POST", url, NULL, body, &r), 200);
    char qi[40];
    snprintf(qi, sizeof(qi), "%s", emu_str(r.json, "QueueItemId"));
    emures_free(&r);
    snprintf(url, sizeof(url), "queueitems(%s)?$select=_objectid_value,_queueid_value,title", qi);
    const char *ann[] = {"Prefer: odata.include-annotations=\"*\"", NULL};
    assert_int_equal(emu_req(&d, "GET", url, ann, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "_objectid_value"), inc);
    assert_string_equal(emu_str(r.json, "_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"),
                        "incident");
    assert_string_equal(emu_str(r.json, "_queueid_value"), q);
    assert_string_equal(emu_str(r.json, "title"), "help");
    emures_free(&r);
    /* custom actions: registered by flag and at run time; calls are recorded */
    assert_int_equal(emu_req(&d, "POST", "smsys_Notify", NULL, "{\"Text\":\"hi\"}", &r), 204);
    emures_free(&r);
    emu_req(&d, "POST", "smsys_Unknown", NULL, "{}", &r);
    emu_assert_error(&r, 404, "0x80060888");
    emures_free(&r);
    assert_int_equal(
        emu_req_full(&d, "POST", "/_emu/actions", NULL, "{\"name\":\"smsys_Other\"}", 22, 0, &r),
        204);
    emures_free(&r);
    assert_int_equal(emu_req(&d, "POST", "smsys_Other", NULL, "{\"N\":1}", &r), 204);
    emures_free(&r);
    emu_req_full(&d, "GET", "/_emu/actions", NULL, NULL, 0, 0, &r);
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(r.json, "smsys_Notify");
    assert_int_equal(cJSON_GetArraySize(calls), 1);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(calls, 0), "parameters");
    assert_string_equal(emu_str(p, "Text"), "hi");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "smsys_Other")),
                     1);
    emures_free(&r);
    emu_stop(&d);
}

static void test_metadata_deploy(void **state)
{
    const char *args[] = {"--no-smsys-schema", NULL};
    struct emuproc d;
    emu_start(&d, args);
    struct emures r;
    emu_req(&d, "GET", "smsys_smses", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    emures_free(&r);
    emu_req(&d, "GET", "EntityDefinitions(LogicalName='smsys_sms')?$select=EntitySetName", NULL,
            NULL, &r);
    assert_int_equal(r.status, 404);
    emures_free(&r);
    const char *sol[] = {"MSCRM.SolutionUniqueName: smsys", NULL};
    const char *ent =
        "{\"@odata.type\":\"Microsoft.Dynamics.CRM.EntityMetadata\",\"SchemaName\":\"smsys_sms\","
        "\"IsActivity\":true,\"HasActivities\":false,\"HasNotes\":true,\"OwnershipType\":"
        "\"UserOwned\",\"ChangeTrackingEnabled\":true,\"Attributes\":[{\"@odata.type\":"
        "\"Microsoft.Dynamics.CRM.StringAttributeMetadata\",\"SchemaName\":\"Subject\","
        "\"IsPrimaryName\":true,\"MaxLength\":200}]}";
    assert_int_equal(emu_req(&d, "POST", "EntityDefinitions", sol, ent, &r), 204);
    assert_non_null(strstr(emu_hdr(&r, "OData-EntityId"), "EntityDefinitions("));
    emures_free(&r);
    const char *attr = "{\"@odata.type\":\"Microsoft.Dynamics.CRM.PicklistAttributeMetadata\","
                       "\"SchemaName\":\"smsys_Status\",\"OptionSet\":{\"Options\":[]}}";
    assert_int_equal(
        emu_req(&d, "POST", "EntityDefinitions(LogicalName='smsys_sms')/Attributes", sol, attr, &r),
        204);
    emures_free(&r);
    const char *rel = "{\"@odata.type\":\"Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata\","
                      "\"SchemaName\":\"smsys_contact_smsys_sms\",\"ReferencedEntity\":\"contact\","
                      "\"ReferencingEntity\":\"smsys_sms\",\"Lookup\":{\"SchemaName\":"
                      "\"smsys_ContactId\"}}";
    assert_int_equal(emu_req(&d, "POST", "RelationshipDefinitions", sol, rel, &r), 204);
    emures_free(&r);
    assert_int_equal(
        emu_req(&d, "POST", "PublishXml", NULL,
                "{\"ParameterXml\":\"<importexportxml><entities><entity>smsys_sms</entity>"
                "</entities></importexportxml>\"}",
                &r),
        204);
    emures_free(&r);
    emu_req(&d, "GET", "EntityDefinitions(LogicalName='smsys_sms')?$select=EntitySetName", NULL,
            NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(emu_str(r.json, "EntitySetName"), "smsys_smses");
    assert_null(emu_str(r.json, "PrimaryIdAttribute"));
    emures_free(&r);
    /* the new table is usable at once, with its new columns */
    char c[40], body[300];
    snprintf(c, sizeof(c), "%s", emu_create(&d, "contacts", "{\"firstname\":\"X\"}"));
    snprintf(
        body, sizeof(body),
        "{\"subject\":\"s\",\"smsys_status\":2,\"smsys_ContactId@odata.bind\":\"/contacts(%s)\"}",
        c);
    /* custom lookups bind through their SchemaName-cased navigation property */
    emu_create(&d, "smsys_smses", body);
    emu_req(&d, "GET", "smsys_smses?$select=subject,smsys_status,_smsys_contactid_value", NULL,
            NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    /* creating it twice is an error; calls are recorded */
    emu_req(&d, "POST", "EntityDefinitions", sol, ent, &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    emu_req_full(&d, "GET", "/_emu/metadata", NULL, NULL, 0, 0, &r);
    assert_int_equal(cJSON_GetArraySize(r.json), 5);
    assert_string_equal(emu_str(cJSON_GetArrayItem(r.json, 0), "solution"), "smsys");
    emures_free(&r);
    emu_stop(&d);
}

static void test_seed_demo(void **state)
{
    const char *args[] = {"--seed", "demo", NULL};
    struct emuproc d;
    emu_start(&d, args);
    struct emures r;
    emu_req(&d, "GET", "contacts?$select=fullname&$count=true&$top=1", NULL, NULL, &r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "@odata.count")->valueint, 3000);
    char first[200];
    snprintf(first, sizeof(first), "%s",
             emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "value"), 0),
                     "fullname"));
    emures_free(&r);
    emu_req(&d, "GET", "smsys_smssettings?$select=smsys_provider,smsys_config,smsys_isdefault",
            NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 2);
    assert_non_null(strstr(r.body.data, "\\\"port\\\":2775"));
    assert_non_null(strstr(r.body.data, "http://127.0.0.1:8402/kavenegar"));
    emures_free(&r);
    emu_req(&d, "GET", "smsys_keywordrules?$filter=smsys_action+eq+1&$select=smsys_keywords", NULL,
            NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    assert_non_null(strstr(r.body.data, "UNSUBSCRIBE"));
    assert_non_null(strstr(r.body.data, "انصراف"));
    emures_free(&r);
    emu_req(&d, "GET", "queues?$select=name", NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    /* mixed mobile formats, Persian digits among them */
    emu_req(&d, "GET", "contacts?$filter=startswith(mobilephone,'%DB%B0%DB%B9')&$top=1", NULL, NULL,
            &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    emu_req(&d, "GET", "contacts?$filter=startswith(mobilephone,'%2B98+')&$top=1", NULL, NULL, &r);
    assert_int_equal(nvalues(&r), 1);
    emures_free(&r);
    emu_stop(&d);
    /* deterministic: a second run builds the same organisation */
    emu_start(&d, args);
    emu_req(&d, "GET", "contacts?$select=fullname&$top=1", NULL, NULL, &r);
    assert_string_equal(
        emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "value"), 0),
                "fullname"),
        first);
    emures_free(&r);
    emu_stop(&d);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_limit),
        cmocka_unit_test(test_concurrency_limit_and_latency),
        cmocka_unit_test(test_exec_time_limit_and_delta_ttl),
        cmocka_unit_test(test_fail_rate),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_fetchxml),
        cmocka_unit_test(test_lists_queue_actions),
        cmocka_unit_test(test_metadata_deploy),
        cmocka_unit_test(test_seed_demo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
