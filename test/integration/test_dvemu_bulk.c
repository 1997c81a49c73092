/* test_dvemu_bulk.c - what the bulk SMS engine needs from dvemu, at the
 * size the acceptance benchmark uses: 100,000 contacts in a static list
 * (added with AddListMembersList, read back at 5000 per page), a dynamic
 * list's FetchXML paged with its cookie, a campaign's lists, notes
 * (annotations) on a bulk record, CreateMultiple of SMS activities with
 * parties at 1000 per request and the In filter over their ids. One dvemu
 * (with --data, so the membership is also replayed from the journal) is
 * shared by the tests of the group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "dvemu_client.h"
#include "smsys/util.h"

#define N_CONTACTS 100000
#define CHUNK      1000

struct fx {
    struct emuproc d;
    char dir[64];
    char (*ids)[37]; /* contact ids in creation order */
    char list[37];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Member i: a mobile number for most, none for every 10th; "Tehran" for every 4th. */
static void contact_body(struct buf *b, int i)
{
    buf_printf(b, "{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"firstname\":\"c%d\"", i);
    if (i % 10 != 9)
        buf_printf(b, ",\"mobilephone\":\"0912%07d\"", i);
    if (i % 4 == 0)
        buf_puts(b, ",\"address1_city\":\"Tehran\"");
    buf_puts(b, "}");
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/dvemu-bulk-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    const char *args[] = {"--data", f->dir, NULL};
    emu_start(&f->d, args);
    f->ids = calloc(N_CONTACTS, sizeof(*f->ids));
    assert_non_null(f->ids);
    double t0 = now_s();
    for (int base = 0; base < N_CONTACTS; base += CHUNK) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"Targets\":[");
        for (int i = base; i < base + CHUNK; i++) {
            if (i > base)
                buf_puts(&b, ",");
            contact_body(&b, i);
        }
        buf_puts(&b, "]}");
        struct emures r;
        emu_req(&f->d, "POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data, &r);
        buf_free(&b);
        assert_int_equal(r.status, 200);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(r.json, "Ids");
        assert_int_equal(cJSON_GetArraySize(ids), CHUNK);
        int k = base;
        const cJSON *it;
        cJSON_ArrayForEach(it, ids) snprintf(f->ids[k++], 37, "%s", it->valuestring);
        emures_free(&r);
    }
    fprintf(stderr, "# created %d contacts in %.2f s\n", N_CONTACTS, now_s() - t0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    emu_stop(&f->d);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f->ids);
    free(f);
    return 0;
}

/* GET of a URL longer than dvemu_client.h's 8 KiB buffer (an In filter
 * over 1000 ids is ~45 KB, under Dataverse's 64 KiB request-line room). */
static long long_get(struct fx *f, const char *rel, struct emures *r)
{
    memset(r, 0, sizeof(*r));
    struct buf full = BUF_INIT, authz = BUF_INIT;
    buf_printf(&full, "%s%s", f->d.api, rel);
    buf_printf(&authz, "Authorization: Bearer %s", f->d.token);
    CURL *c = f->d.curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, full.data);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, emu_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    struct curl_slist *sl = curl_slist_append(NULL, authz.data);
    sl = curl_slist_append(sl, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(sl);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body.len)
        r->json = cJSON_ParseWithLength(r->body.data, r->body.len);
    buf_free(&full);
    buf_free(&authz);
    return r->status;
}

static long membercount(struct fx *f, const char *list)
{
    char url[128];
    snprintf(url, sizeof(url), "lists(%s)?$select=membercount", list);
    struct emures r;
    emu_req(&f->d, "GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(r.json, "membercount");
    long v = cJSON_IsNumber(n) ? (long)n->valuedouble : -1;
    emures_free(&r);
    return v;
}

/* Pages lists(<id>)/listcontact_association at 5000 per page; returns the
 * members seen and checks that no id repeats and every page but the last
 * carries a nextLink. */
static long page_members(struct fx *f, const char *list, int *pages)
{
    char url[8192];
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association?$select=contactid,mobilephone",
             list);
    const char *h[] = {"Prefer: odata.maxpagesize=5000", NULL};
    char *seen = calloc(N_CONTACTS, 1);
    assert_non_null(seen);
    long n = 0;
    *pages = 0;
    for (;;) {
        struct emures r;
        emu_req(&f->d, "GET", url, h, NULL, &r);
        assert_int_equal(r.status, 200);
        (*pages)++;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
        assert_true(cJSON_GetArraySize(v) <= 5000);
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            const char *id = emu_str(it, "contactid");
            assert_non_null(id);
            /* "c<i>" is not selected; find i from the number or by scan */
            const char *mob = emu_str(it, "mobilephone");
            long idx = -1;
            if (mob) {
                long long x;
                assert_int_equal(util_parse_int(mob + 4, 0, N_CONTACTS, &x), 0);
                idx = (long)x;
            } else {
                for (long k = 9; k < N_CONTACTS; k += 10)
                    if (strcmp(f->ids[k], id) == 0) {
                        idx = k;
                        break;
                    }
            }
            assert_true(idx >= 0);
            assert_string_equal(f->ids[idx], id);
            assert_int_equal(seen[idx], 0);
            seen[idx] = 1;
            n++;
        }
        const char *next = emu_str(r.json, "@odata.nextLink");
        if (next == NULL) {
            emures_free(&r);
            break;
        }
        assert_true(strlen(next) < sizeof(url));
        snprintf(url, sizeof(url), "%s", next);
        emures_free(&r);
    }
    free(seen);
    return n;
}

static void test_static_list_100k(void **state)
{
    struct fx *f = *state;
    snprintf(f->list, sizeof(f->list), "%s",
             emu_create(&f->d, "lists",
                        "{\"listname\":\"all\",\"type\":false,"
                        "\"createdfromcode\":2}"));
    char url[256];
    struct emures r;
    /* one by $ref, one by AddMemberList, the rest by AddListMembersList */
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association/$ref", f->list);
    char body[256];
    snprintf(body, sizeof(body), "{\"@odata.id\":\"%scontacts(%s)\"}", f->d.api, f->ids[0]);
    emu_req(&f->d, "POST", url, NULL, body, &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    snprintf(url, sizeof(url), "lists(%s)/Microsoft.Dynamics.CRM.AddMemberList", f->list);
    snprintf(body, sizeof(body), "{\"EntityId\":\"%s\"}", f->ids[1]);
    emu_req(&f->d, "POST", url, NULL, body, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(emu_str(r.json, "Id"));
    emures_free(&r);
    assert_int_equal(membercount(f, f->list), 2);

    /* an unknown member fails the whole request: nothing is added */
    struct buf b = BUF_INIT;
    buf_printf(&b, "{\"ListId\":\"%s\",\"MemberIds\":[\"%s\",\"%s\"]}", f->list, f->ids[2],
               "00000000-0000-4000-8000-000000000001");
    emu_req(&f->d, "POST", "AddListMembersList", NULL, b.data, &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    buf_free(&b);
    assert_int_equal(membercount(f, f->list), 2);
    emu_req(&f->d, "POST", "AddListMembersList", NULL, "{\"ListId\":\"nope\"}", &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);

    /* everyone (0 and 1 again: no duplicates) in 4 requests of 25,000 */
    double t0 = now_s();
    for (int base = 0; base < N_CONTACTS; base += 25000) {
        buf_printf(&b, "{\"ListId\":\"%s\",\"MemberIds\":[", f->list);
        for (int i = base; i < base + 25000; i++)
            buf_printf(&b, "%s\"%s\"", i > base ? "," : "", f->ids[i]);
        buf_puts(&b, "]}");
        emu_req(&f->d, "POST", "Microsoft.Dynamics.CRM.AddListMembersList", NULL, b.data, &r);
        assert_int_equal(r.status, 204);
        emures_free(&r);
        buf_reset(&b);
    }
    buf_free(&b);
    double t1 = now_s();
    assert_int_equal(membercount(f, f->list), N_CONTACTS);
    int pages = 0;
    assert_int_equal(page_members(f, f->list, &pages), N_CONTACTS);
    assert_int_equal(pages, N_CONTACTS / 5000);
    fprintf(stderr, "# AddListMembersList %d: %.2f s; 20 pages of members: %.2f s\n", N_CONTACTS,
            t1 - t0, now_s() - t1);

    /* removing one keeps the order of the others and the count right */
    snprintf(url, sizeof(url), "lists(%s)/listcontact_association(%s)/$ref", f->list, f->ids[500]);
    emu_req(&f->d, "DELETE", url, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    assert_int_equal(membercount(f, f->list), N_CONTACTS - 1);
    snprintf(body, sizeof(body), "{\"EntityId\":\"%s\"}", f->ids[500]);
    snprintf(url, sizeof(url), "lists(%s)/Microsoft.Dynamics.CRM.AddMemberList", f->list);
    emu_req(&f->d, "POST", url, NULL, body, &r);
    assert_int_equal(r.status, 200);
    emures_free(&r);

    /* the membership survives a kill -9 (journal replay) */
    emu_kill9(&f->d);
    const char *args[] = {"--data", f->dir, NULL};
    double t2 = now_s();
    emu_start(&f->d, args);
    fprintf(stderr, "# restart with %d contacts and links: %.2f s\n", N_CONTACTS, now_s() - t2);
    assert_int_equal(membercount(f, f->list), N_CONTACTS);
    assert_int_equal(page_members(f, f->list, &pages), N_CONTACTS);
}

/* The dynamic list's FetchXML, paged the way the bulk engine pages it:
 * count + page + the previous page's paging cookie. */
static void test_dynamic_list_fetchxml_paging(void **state)
{
    struct fx *f = *state;
    int page = 1;
    long total = 0;
    char cookie[2048] = "";
    for (;;) {
        char fetch[4096];
        snprintf(fetch, sizeof(fetch),
                 "<fetch count=\"5000\" page=\"%d\"%s%s%s><entity name=\"contact\">"
                 "<attribute name=\"contactid\"/><attribute name=\"mobilephone\"/>"
                 "<filter><condition attribute=\"address1_city\" operator=\"eq\" "
                 "value=\"Tehran\"/></filter><order attribute=\"contactid\"/>"
                 "</entity></fetch>",
                 page, cookie[0] ? " paging-cookie=\"" : "", cookie, cookie[0] ? "\"" : "");
        struct buf url = BUF_INIT;
        buf_puts(&url, "contacts?fetchXml=");
        buf_put_urlenc(&url, fetch);
        struct emures r;
        emu_req(&f->d, "GET", url.data, NULL, NULL, &r);
        buf_free(&url);
        assert_int_equal(r.status, 200);
        total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value"));
        const cJSON *more =
            cJSON_GetObjectItemCaseSensitive(r.json, "@Microsoft.Dynamics.CRM.morerecords");
        const char *ck = emu_str(r.json, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie");
        assert_non_null(ck);
        /* the cookie is an XML element whose pagingcookie attribute goes,
         * XML-escaped, into the next request */
        const char *pc = strstr(ck, "pagingcookie=\"");
        assert_non_null(pc);
        pc += 14;
        const char *end = strchr(pc, '"');
        assert_non_null(end);
        snprintf(cookie, sizeof(cookie), "%.*s", (int)(end - pc), pc);
        int is_more = cJSON_IsTrue(more);
        emures_free(&r);
        if (!is_more)
            break;
        page++;
        assert_true(page <= 10);
    }
    assert_int_equal(total, N_CONTACTS / 4);
    assert_int_equal(page, 5);
}

static void test_campaign_lists(void **state)
{
    struct fx *f = *state;
    char dyn[37], camp[37], url[256], body[256];
    snprintf(dyn, sizeof(dyn), "%s",
             emu_create(&f->d, "lists",
                        "{\"listname\":\"tehran\",\"type\":true,\"createdfromcode\":2,"
                        "\"query\":\"<fetch><entity name='contact'><filter><condition "
                        "attribute='address1_city' operator='eq' value='Tehran'/></filter>"
                        "</entity></fetch>\"}"));
    snprintf(camp, sizeof(camp), "%s", emu_create(&f->d, "campaigns", "{\"name\":\"spring\"}"));
    const char *lists[] = {f->list[0] ? f->list : dyn, dyn};
    for (int i = 0; i < 2; i++) {
        struct emures r;
        snprintf(url, sizeof(url), "campaigns(%s)/campaignlist_association/$ref", camp);
        snprintf(body, sizeof(body), "{\"@odata.id\":\"%slists(%s)\"}", f->d.api, lists[i]);
        emu_req(&f->d, "POST", url, NULL, body, &r);
        assert_int_equal(r.status, 204);
        emures_free(&r);
    }
    struct emures r;
    snprintf(url, sizeof(url),
             "campaigns(%s)/campaignlist_association?$select=listid,type,createdfromcode,query",
             camp);
    emu_req(&f->d, "GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(v), 2);
    const cJSON *second = cJSON_GetArrayItem(v, 1);
    assert_string_equal(emu_str(second, "listid"), dyn);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(second, "type")));
    assert_non_null(strstr(emu_str(second, "query"), "Tehran"));
    emures_free(&r);
}

/* Account and lead lists: the member table follows createdfromcode. */
static void test_account_and_lead_lists(void **state)
{
    struct fx *f = *state;
    char acc[3][37], lead[37], al[37], ll[37], url[256], body[512];
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"Co %d\",\"telephone1\":\"021%08d\"}", i, i);
        snprintf(acc[i], sizeof(acc[i]), "%s", emu_create(&f->d, "accounts", body));
    }
    snprintf(lead, sizeof(lead), "%s",
             emu_create(&f->d, "leads", "{\"lastname\":\"L\",\"mobilephone\":\"09120000001\"}"));
    snprintf(al, sizeof(al), "%s",
             emu_create(&f->d, "lists", "{\"listname\":\"a\",\"createdfromcode\":1}"));
    snprintf(ll, sizeof(ll), "%s",
             emu_create(&f->d, "lists", "{\"listname\":\"l\",\"createdfromcode\":4}"));
    struct emures r;
    /* a contact is not an account: the whole request fails */
    snprintf(body, sizeof(body), "{\"ListId\":\"%s\",\"MemberIds\":[\"%s\",\"%s\"]}", al, acc[0],
             f->ids[0]);
    emu_req(&f->d, "POST", "AddListMembersList", NULL, body, &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    snprintf(body, sizeof(body),
             "{\"List\":{\"listid\":\"%s\"},\"Members\":[{\"accountid\":\"%s\"},"
             "{\"accountid\":\"%s\"},{\"@odata.id\":\"accounts(%s)\"}]}",
             al, acc[0], acc[1], acc[2]);
    emu_req(&f->d, "POST", "AddListMembersList", NULL, body, &r);
    assert_int_equal(r.status, 204);
    emures_free(&r);
    assert_int_equal(membercount(f, al), 3);
    snprintf(url, sizeof(url), "lists(%s)/listaccount_association?$select=name,telephone1", al);
    emu_req(&f->d, "GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(v), 3);
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 2), "name"), "Co 2");
    emures_free(&r);
    snprintf(url, sizeof(url), "lists(%s)/Microsoft.Dynamics.CRM.AddMemberList", ll);
    snprintf(body, sizeof(body), "{\"EntityId\":\"%s\"}", lead);
    emu_req(&f->d, "POST", url, NULL, body, &r);
    assert_int_equal(r.status, 200);
    emures_free(&r);
    snprintf(url, sizeof(url), "lists(%s)/listlead_association?$select=mobilephone", ll);
    emu_req(&f->d, "GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(v), 1);
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 0), "leadid"), lead);
    emures_free(&r);
}

/* A bulk's preflight summary is a note on the bulk record; templates get
 * notes too. objectid is polymorphic: the bind names the target. */
static void test_annotations(void **state)
{
    struct fx *f = *state;
    char bulk[37], tpl[37], url[512], body[512];
    snprintf(bulk, sizeof(bulk), "%s",
             emu_create(&f->d, "smsys_bulksmses", "{\"smsys_name\":\"b\",\"smsys_status\":1}"));
    snprintf(
        tpl, sizeof(tpl), "%s",
        emu_create(&f->d, "smsys_smstemplates", "{\"smsys_name\":\"t\",\"smsys_body\":\"x\"}"));
    snprintf(body, sizeof(body),
             "{\"subject\":\"Preflight\",\"notetext\":\"recipients: 3\\nskipped: 1\","
             "\"objectid_smsys_bulksms@odata.bind\":\"/smsys_bulksmses(%s)\"}",
             bulk);
    char note[37];
    snprintf(note, sizeof(note), "%s", emu_create(&f->d, "annotations", body));
    snprintf(body, sizeof(body),
             "{\"subject\":\"about\",\"notetext\":\"t\","
             "\"objectid_smsys_smstemplate@odata.bind\":\"/smsys_smstemplates(%s)\"}",
             tpl);
    emu_create(&f->d, "annotations", body);
    struct emures r;
    snprintf(url, sizeof(url),
             "annotations?$select=subject,notetext,isdocument,objecttypecode,_objectid_value"
             "&$filter=_objectid_value%%20eq%%20%s",
             bulk);
    const char *h[] = {"Prefer: odata.include-annotations=\"*\"", NULL};
    emu_req(&f->d, "GET", url, h, NULL, &r);
    assert_int_equal(r.status, 200);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(v), 1);
    const cJSON *n = cJSON_GetArrayItem(v, 0);
    assert_string_equal(emu_str(n, "annotationid"), note);
    assert_string_equal(emu_str(n, "notetext"), "recipients: 3\nskipped: 1");
    assert_string_equal(emu_str(n, "objecttypecode"), "smsys_bulksms");
    assert_string_equal(emu_str(n, "_objectid_value"), bulk);
    assert_string_equal(emu_str(n, "_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"),
                        "smsys_bulksms");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(n, "isdocument")));
    emures_free(&r);
    /* a note on a row that does not exist */
    snprintf(body, sizeof(body),
             "{\"subject\":\"x\",\"objectid_smsys_bulksms@odata.bind\":"
             "\"/smsys_bulksmses(00000000-0000-4000-8000-00000000abcd)\"}");
    emu_req(&f->d, "POST", "annotations", NULL, body, &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
}

/* The engine's record creation: 1000 SMS activities per CreateMultiple,
 * each with its own activityid, the member as `to` party and regarding;
 * after a crash it asks which ids exist with one In filter. */
static void test_create_multiple_sms_and_in(void **state)
{
    struct fx *f = *state;
    const char *me = NULL;
    struct emures r;
    emu_req(&f->d, "GET", "WhoAmI", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    char user[37];
    snprintf(user, sizeof(user), "%s", emu_str(r.json, "UserId"));
    emures_free(&r);
    me = user;
    enum { REQS = 10 };
    static char act[REQS * CHUNK][37];
    double t0 = now_s();
    for (int q = 0; q < REQS; q++) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"Targets\":[");
        for (int i = 0; i < CHUNK; i++) {
            int m = q * CHUNK + i;
            snprintf(act[m], 37, "0b0b0b0b-0000-4000-8000-%012d", m);
            buf_printf(&b,
                       "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\","
                       "\"activityid\":\"%s\",\"subject\":\"bulk\",\"description\":\"Salam c%d\","
                       "\"smsys_status\":3,\"smsys_direction\":1,\"smsys_segments\":1,"
                       "\"ownerid@odata.bind\":\"/systemusers(%s)\","
                       "\"regardingobjectid_contact_smsys_sms@odata.bind\":\"/contacts(%s)\","
                       "\"smsys_sms_activity_parties\":["
                       "{\"partyid_systemuser@odata.bind\":\"/systemusers(%s)\","
                       "\"participationtypemask\":1},"
                       "{\"partyid_contact@odata.bind\":\"/contacts(%s)\","
                       "\"participationtypemask\":2}]}",
                       i ? "," : "", act[m], m, me, f->ids[m], me, f->ids[m]);
        }
        buf_puts(&b, "]}");
        emu_req(&f->d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data,
                &r);
        buf_free(&b);
        if (r.status != 200)
            fprintf(stderr, "%s\n", r.body.data);
        assert_int_equal(r.status, 200);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "Ids")),
                         CHUNK);
        emures_free(&r);
    }
    fprintf(stderr, "# %d SMS with parties by CreateMultiple: %.2f s\n", REQS * CHUNK,
            now_s() - t0);

    /* creating an existing id again fails the whole request, nothing changes */
    char one[1024];
    snprintf(one, sizeof(one),
             "{\"Targets\":[{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\","
             "\"activityid\":\"0b0b0b0b-0000-4000-8000-%012d\",\"subject\":\"new\"},"
             "{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\",\"activityid\":\"%s\"}]}",
             REQS * CHUNK + 1, act[7]);
    emu_req(&f->d, "POST", "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", NULL, one, &r);
    assert_int_equal(r.status, 412);
    emures_free(&r);

    /* which of 1000 ids exist: 500 created, 500 never created. That URL
     * (~45 KB) is over Dataverse's 32 KiB: 414 directly, fine in $batch;
     * 500 ids (~22 KB) fit a plain GET. */
    struct buf flt = BUF_INIT, url = BUF_INIT, half = BUF_INIT, hurl = BUF_INIT;
    buf_puts(&flt, "Microsoft.Dynamics.CRM.In(PropertyName='activityid',PropertyValues=[");
    buf_puts(&half, flt.data);
    for (int i = 0; i < 1000; i++) {
        int m = i < 500 ? i * 19 : REQS * CHUNK + i;
        buf_printf(&flt, "%s'0b0b0b0b-0000-4000-8000-%012d'", i ? "," : "", m);
        if (i % 2 == 0)
            buf_printf(&half, "%s'0b0b0b0b-0000-4000-8000-%012d'", i ? "," : "", m);
    }
    buf_puts(&flt, "])");
    buf_puts(&half, "])");
    buf_puts(&url, "smsys_smses?$select=activityid&$filter=");
    buf_put_urlenc(&url, flt.data);
    buf_puts(&hurl, "smsys_smses?$select=activityid&$filter=");
    buf_put_urlenc(&hurl, half.data);
    fprintf(stderr, "# In filter URL of 1000 ids: %zu bytes, of 500: %zu\n", url.len, hurl.len);
    assert_true(url.len > 32768 && hurl.len < 32768);
    long_get(f, url.data, &r);
    emu_assert_error(&r, 414, NULL);
    emures_free(&r);
    t0 = now_s();
    long_get(f, hurl.data, &r);
    if (r.status != 200)
        fprintf(stderr, "%s\n", r.body.data);
    assert_int_equal(r.status, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "value")), 250);
    fprintf(stderr, "# In filter of 500 ids over %d SMS: %.3f s\n", REQS * CHUNK, now_s() - t0);
    emures_free(&r);
    struct buf batch = BUF_INIT;
    buf_printf(&batch,
               "--batch_b1\r\nContent-Type: application/http\r\n"
               "Content-Transfer-Encoding: binary\r\n\r\nGET %s%s HTTP/1.1\r\n"
               "Accept: application/json\r\n\r\n\r\n--batch_b1--\r\n",
               f->d.api, url.data);
    const char *bh[] = {"Content-Type: multipart/mixed; boundary=batch_b1", NULL};
    emu_req_full(&f->d, "POST", "$batch", bh, batch.data, batch.len, 1, &r);
    assert_int_equal(r.status, 200);
    int found_ids = 0;
    for (const char *p = r.body.data; p && (p = strstr(p, "\"activityid\"")); p++)
        found_ids++;
    assert_int_equal(found_ids, 500);
    emures_free(&r);
    buf_free(&batch);
    buf_free(&flt);
    buf_free(&url);
    buf_free(&half);
    buf_free(&hurl);

    /* the parties came through: the `to` party of one record is its contact */
    char q[512];
    snprintf(q, sizeof(q),
             "smsys_smses(%s)?$select=subject&$expand=smsys_sms_activity_parties($select="
             "participationtypemask,_partyid_value)",
             act[4242]);
    emu_req(&f->d, "GET", q, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(r.json, "smsys_sms_activity_parties");
    assert_int_equal(cJSON_GetArraySize(ps), 2);
    int found = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, ps)
    {
        const cJSON *mask = cJSON_GetObjectItemCaseSensitive(p, "participationtypemask");
        if (cJSON_IsNumber(mask) && mask->valueint == 2) {
            assert_string_equal(emu_str(p, "_partyid_value"), f->ids[4242]);
            found = 1;
        }
    }
    assert_true(found);
    emures_free(&r);

    /* /_emu/stats says how long dvemu itself worked on those requests */
    emu_req_full(&f->d, "GET", "/_emu/stats", NULL, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    const cJSON *busy = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r.json, "busy_ms_by_entity_set"), "smsys_smses");
    assert_true(cJSON_IsNumber(busy));
    assert_true(busy->valuedouble > 0);
    fprintf(stderr, "# dvemu busy on smsys_smses: %.1f ms\n", busy->valuedouble);
    emures_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_list_100k),
        cmocka_unit_test(test_dynamic_list_fetchxml_paging),
        cmocka_unit_test(test_campaign_lists),
        cmocka_unit_test(test_account_and_lead_lists),
        cmocka_unit_test(test_annotations),
        cmocka_unit_test(test_create_multiple_sms_and_in),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
