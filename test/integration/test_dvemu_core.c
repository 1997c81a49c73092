/* test_dvemu_core.c - dvemu over real HTTP: sign-in, WhoAmI, create/read/
 * update/delete, $select/$filter/$orderby/$top/$count, paging, annotations,
 * ETags and If-Match, lookups and activity parties, error shapes; compared
 * with docs dataverse.md sections 1, 2, 4, 5 and 7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../lib/testutil.h"
#include "dvemu_client.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <time.h>
#include <unistd.h>

static void test_token_v2_and_v1(void **state)
{
    struct emuproc d;
    emu_start_args(&d, NULL);
    struct emures r;
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *v2 = "client_id=smsys-demo&client_secret=smsys-demo-secret"
                     "&grant_type=client_credentials&scope=https%3A%2F%2Forg%2F.default";
    emu_req_full(&d, "POST", "/contoso/oauth2/v2.0/token", h, v2, strlen(v2), 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(emu_str(r.json, "token_type"), "Bearer");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(r.json, "expires_in");
    assert_true(cJSON_IsNumber(exp));
    assert_int_equal(exp->valueint, 3599);
    assert_non_null(emu_str(r.json, "access_token"));
    emures_free(&r);
    /* v1: resource= and numbers as strings */
    const char *v1 = "client_id=smsys-demo&client_secret=smsys-demo-secret"
                     "&grant_type=client_credentials&resource=https%3A%2F%2Forg%2F";
    emu_req_full(&d, "POST", "/contoso/oauth2/token", h, v1, strlen(v1), 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(emu_str(r.json, "expires_in"), "3599");
    assert_non_null(emu_str(r.json, "expires_on"));
    snprintf(d.token, sizeof(d.token), "%s", emu_str(r.json, "access_token"));
    emures_free(&r);
    /* a v1 token works on the API */
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    emures_free(&r);
    /* wrong secret: Entra's error shape with AADSTS7000215 */
    const char *bad = "client_id=smsys-demo&client_secret=nope"
                      "&grant_type=client_credentials&scope=x%2F.default";
    emu_req_full(&d, "POST", "/contoso/oauth2/v2.0/token", h, bad, strlen(bad), 0, &r);
    assert_true(r.status == 400 || r.status == 401);
    assert_string_equal(emu_str(r.json, "error"), "invalid_client");
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(r.json, "error_codes");
    assert_int_equal(cJSON_GetArrayItem(codes, 0)->valueint, 7000215);
    assert_non_null(strstr(emu_str(r.json, "error_description"), "AADSTS7000215"));
    assert_non_null(emu_str(r.json, "trace_id"));
    assert_non_null(emu_str(r.json, "correlation_id"));
    emures_free(&r);
    /* unknown client */
    const char *unk =
        "client_id=who&client_secret=x&grant_type=client_credentials&scope=x%2F.default";
    emu_req_full(&d, "POST", "/contoso/oauth2/v2.0/token", h, unk, strlen(unk), 0, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(emu_str(r.json, "error"), "unauthorized_client");
    emures_free(&r);
    emu_stop(&d);
}

static void test_custom_client_and_401(void **state)
{
    struct emuproc d;
    const char *args[] = {"--client", "app1:s3cret", "--token-ttl", "1", NULL};
    emu_start_args(&d, args);
    struct emures r;
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *f = "client_id=app1&client_secret=s3cret&grant_type=client_credentials"
                    "&scope=http%3A%2F%2Fx%2F.default";
    emu_req_full(&d, "POST", "/t/oauth2/v2.0/token", h, f, strlen(f), 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "expires_in")->valueint, 1);
    snprintf(d.token, sizeof(d.token), "%s", emu_str(r.json, "access_token"));
    emures_free(&r);
    /* the default client is replaced by --client */
    const char *f2 = "client_id=smsys-demo&client_secret=smsys-demo-secret"
                     "&grant_type=client_credentials&scope=http%3A%2F%2Fx%2F.default";
    emu_req_full(&d, "POST", "/t/oauth2/v2.0/token", h, f2, strlen(f2), 0, &r);
    assert_int_equal(r.status, 400);
    emures_free(&r);
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    emures_free(&r);
    /* no token, a forged token, then the real one after it expired: 401 */
    assert_int_equal(emu_req_full(&d, "GET", "WhoAmI", NULL, NULL, 0, 0, &r), 401);
    assert_non_null(emu_hdr(&r, "WWW-Authenticate"));
    emures_free(&r);
    char saved[4096];
    snprintf(saved, sizeof(saved), "%s", d.token);
    d.token[strlen(d.token) - 3] ^= 1;
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 401);
    emures_free(&r);
    snprintf(d.token, sizeof(d.token), "%s", saved);
    sleep(2);
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 401);
    emures_free(&r);
    emu_stop(&d);
}

static void b64url(struct buf *b, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        buf_putc(b, t[v >> 18 & 63]);
        buf_putc(b, t[v >> 12 & 63]);
        if (i + 1 < n)
            buf_putc(b, t[v >> 6 & 63]);
        if (i + 2 < n)
            buf_putc(b, t[v & 63]);
    }
}

/* An RS256 client assertion for iss=sub=id, signed with key. */
static char *assertion(EVP_PKEY *key, const char *id, long long exp)
{
    struct buf b = BUF_INIT;
    char claims[400];
    const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"AAAA\"}";
    snprintf(claims, sizeof(claims),
             "{\"aud\":\"https://login.microsoftonline.com/t/oauth2/v2.0/token\",\"iss\":\"%s\","
             "\"sub\":\"%s\",\"jti\":\"1\",\"exp\":%lld}",
             id, id, exp);
    b64url(&b, (const unsigned char *)hdr, strlen(hdr));
    buf_putc(&b, '.');
    b64url(&b, (const unsigned char *)claims, strlen(claims));
    unsigned char sig[512];
    size_t sl = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (const unsigned char *)b.data, b.len), 1);
    EVP_MD_CTX_free(md);
    buf_putc(&b, '.');
    b64url(&b, sig, sl);
    return buf_steal(&b);
}

static long assertion_token(struct emuproc *d, const char *jwt, struct emures *r)
{
    struct buf f = BUF_INIT;
    buf_puts(&f, "grant_type=client_credentials&scope=https%3A%2F%2Forg%2F.default"
                 "&client_id=app2&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                 "client-assertion-type%3Ajwt-bearer&client_assertion=");
    buf_puts(&f, jwt);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    long st = emu_req_full(d, "POST", "/t/oauth2/v2.0/token", h, f.data, f.len, 0, r);
    buf_free(&f);
    return st;
}

static void test_client_assertion(void **state)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"app2", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    char pem[128];
    snprintf(pem, sizeof(pem), "/tmp/dvemu-test-cert-%d.pem", (int)getpid());
    FILE *f = fopen(pem, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
    char arg[200];
    snprintf(arg, sizeof(arg), "app2:%s", pem);
    const char *args[] = {"--client-cert", arg, NULL};
    struct emuproc d;
    emu_start_args(&d, args);
    struct emures r;
    char *jwt = assertion(key, "app2", (long long)time(NULL) + 600);
    assert_int_equal(assertion_token(&d, jwt, &r), 200);
    snprintf(d.token, sizeof(d.token), "%s", emu_str(r.json, "access_token"));
    emures_free(&r);
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    emures_free(&r);
    /* a tampered signature and an expired assertion are refused */
    jwt[strlen(jwt) - 5] = jwt[strlen(jwt) - 5] == 'A' ? 'B' : 'A';
    assertion_token(&d, jwt, &r);
    assert_int_equal(r.status, 401);
    assert_int_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "error_codes"), 0)->valueint,
        700027);
    emures_free(&r);
    free(jwt);
    jwt = assertion(key, "app2", (long long)time(NULL) - 10);
    assertion_token(&d, jwt, &r);
    assert_int_equal(r.status, 401);
    assert_int_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "error_codes"), 0)->valueint,
        700024);
    emures_free(&r);
    free(jwt);
    EVP_PKEY_free(key);
    unlink(pem);
    emu_stop(&d);
}

static void test_whoami(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    assert_int_equal(emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r), 200);
    assert_non_null(emu_str(r.json, "UserId"));
    assert_non_null(emu_str(r.json, "BusinessUnitId"));
    assert_non_null(emu_str(r.json, "OrganizationId"));
    char uid[64];
    snprintf(uid, sizeof(uid), "%s", emu_str(r.json, "UserId"));
    emures_free(&r);
    /* the service document lists the entity sets of schema.md */
    assert_int_equal(emu_req(&d, "GET", "", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body.data, "\"name\":\"smsys_smses\""));
    assert_non_null(strstr(r.body.data, "\"name\":\"smsys_keywordrules\""));
    emures_free(&r);
    /* the application user is a real systemuser row; v9.1 answers too */
    char url[200];
    snprintf(url, sizeof(url), "/api/data/v9.1/systemusers(%s)?$select=fullname", uid);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "systemuserid"), uid);
    emures_free(&r);
    /* on-premises form: /<org>/api/data/v9.1/, echoed in OData-EntityId */
    assert_int_equal(emu_req(&d, "POST", "/contoso/api/data/v9.1/contacts", NULL,
                             "{\"firstname\":\"OnPrem\"}", &r),
                     204);
    char want[200];
    snprintf(want, sizeof(want), "%s/contoso/api/data/v9.1/contacts(", d.root);
    assert_memory_equal(emu_hdr(&r, "OData-EntityId"), want, strlen(want));
    emures_free(&r);
    emu_stop(&d);
}

static void test_create_read_update_delete(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    /* 204 + OData-EntityId */
    emu_req(&d, "POST", "contacts", NULL, "{\"firstname\":\"Ali\",\"lastname\":\"Karimi\"}", &r);
    assert_int_equal(r.status, 204);
    const char *eid = emu_hdr(&r, "OData-EntityId");
    assert_non_null(eid);
    char prefix[200];
    snprintf(prefix, sizeof(prefix), "%scontacts(", d.api);
    assert_memory_equal(eid, prefix, strlen(prefix));
    char id[40];
    snprintf(id, sizeof(id), "%.36s", eid + strlen(prefix));
    assert_int_equal(r.body.len, 0);
    emures_free(&r);
    /* 201 with return=representation */
    const char *rep[] = {"Prefer: return=representation", NULL};
    emu_req(&d, "POST", "contacts", rep, "{\"firstname\":\"Sara\",\"mobilephone\":\"0912\"}", &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(emu_str(r.json, "firstname"), "Sara");
    assert_non_null(emu_str(r.json, "contactid"));
    assert_non_null(emu_str(r.json, "@odata.etag"));
    assert_string_equal(emu_hdr(&r, "Preference-Applied"), "return=representation");
    emures_free(&r);
    /* GET one: ETag header equals the row's @odata.etag */
    char url[256];
    snprintf(url, sizeof(url), "contacts(%s)?$select=fullname,firstname", id);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "fullname"), "Ali Karimi");
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", emu_str(r.json, "@odata.etag"));
    assert_string_equal(emu_hdr(&r, "ETag"), etag);
    assert_memory_equal(etag, "W/\"", 3);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "lastname")); /* not selected */
    emures_free(&r);
    /* PATCH with the current ETag: 204; with the old one: 412 */
    snprintf(url, sizeof(url), "contacts(%s)", id);
    char im[100];
    snprintf(im, sizeof(im), "If-Match: %s", etag);
    const char *h1[] = {im, NULL};
    assert_int_equal(emu_req(&d, "PATCH", url, h1, "{\"jobtitle\":\"CTO\"}", &r), 204);
    emures_free(&r);
    emu_req(&d, "PATCH", url, h1, "{\"jobtitle\":\"CEO\"}", &r);
    emu_assert_error(&r, 412, "0x80060882");
    emures_free(&r);
    /* If-Match: * on a missing row: 404; no If-Match: upsert creates it */
    const char *star[] = {"If-Match: *", NULL};
    emu_req(&d, "PATCH", "contacts(00000000-0000-0000-0000-0000000000aa)", star,
            "{\"firstname\":\"X\"}", &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    assert_int_equal(emu_req(&d, "PATCH", "contacts(00000000-0000-0000-0000-0000000000aa)", NULL,
                             "{\"firstname\":\"Upserted\"}", &r),
                     204);
    emures_free(&r);
    assert_int_equal(
        emu_req(&d, "GET", "contacts(00000000-0000-0000-0000-0000000000AA)", NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "firstname"), "Upserted");
    emures_free(&r);
    /* DELETE then 404 with Dataverse's error shape */
    assert_int_equal(emu_req(&d, "DELETE", url, NULL, NULL, &r), 204);
    emures_free(&r);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    emu_assert_error(&r, 404, "0x80040217");
    assert_non_null(strstr(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                           "Does Not Exist"));
    emures_free(&r);
    assert_int_equal(emu_req(&d, "DELETE", url, NULL, NULL, &r), 404);
    emures_free(&r);
    /* unknown column and wrong type on write: 400 */
    emu_req(&d, "POST", "contacts", NULL, "{\"nosuchcolumn\":1}", &r);
    emu_assert_error(&r, 400, "0x80048d19");
    emures_free(&r);
    emu_req(&d, "POST", "smsys_smses", NULL, "{\"smsys_status\":\"two\"}", &r);
    emu_assert_error(&r, 400, NULL);
    emures_free(&r);
    /* unknown entity set */
    emu_req(&d, "GET", "nosuchthings", NULL, NULL, &r);
    emu_assert_error(&r, 404, "0x80060888");
    emures_free(&r);
    emu_stop(&d);
}

static int count_values(const struct emures *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->json, "value"));
}

static void test_query_options(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    emu_create(&d, "contacts",
               "{\"firstname\":\"Ali\",\"lastname\":\"O'Brien\",\"mobilephone\":\"09121111111\","
               "\"birthdate\":\"1990-05-01T00:00:00Z\",\"smsys_donotsms\":true}");
    emu_create(&d, "contacts",
               "{\"firstname\":\"Bahar\",\"lastname\":\"Zand\",\"mobilephone\":\"+989351112233\","
               "\"birthdate\":\"2001-01-01T10:00:00Z\"}");
    char cid[40];
    snprintf(cid, sizeof(cid), "%s",
             emu_create(&d, "contacts", "{\"firstname\":\"Cyrus\",\"lastname\":\"Zand\"}"));
    struct {
        const char *q;
        int n;
    } cases[] = {
        {"contacts?$filter=lastname eq 'O''Brien'", 1},
        {"contacts?$filter=lastname eq 'zand'", 2}, /* case-insensitive like SQL */
        {"contacts?$filter=contains(mobilephone,'111')", 2},
        {"contacts?$filter=startswith(mobilephone,'%2B98')", 1},
        {"contacts?$filter=endswith(firstname,'rus')", 1},
        {"contacts?$filter=mobilephone eq null", 1},
        {"contacts?$filter=mobilephone ne null and lastname eq 'Zand'", 1},
        {"contacts?$filter=(firstname eq 'Ali' or firstname eq 'Cyrus') and not (lastname eq "
         "'Zand')",
         1},
        {"contacts?$filter=smsys_donotsms eq true", 1},
        {"contacts?$filter=birthdate gt 2000-01-01T00:00:00Z", 1},
        {"contacts?$filter=birthdate le 1990-05-01", 1},
        {"contacts?$top=2", 2},
        {"contacts?$filter=Microsoft.Dynamics.CRM.In(PropertyName='firstname',PropertyValues=["
         "'Ali','Cyrus'])",
         2},
        {"contacts?$filter=Microsoft.Dynamics.CRM.NotIn(PropertyName='firstname',PropertyValues=["
         "'Ali'])",
         2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char url[1024];
        snprintf(url, sizeof(url), "%s", cases[i].q);
        for (char *p = url; *p; p++)
            if (*p == ' ')
                *p = '+';
        emu_req(&d, "GET", url, NULL, NULL, &r);
        if (r.status != 200 || count_values(&r) != cases[i].n)
            fprintf(stderr, "case %zu %s -> %ld %s\n", i, cases[i].q, r.status, r.body.data);
        assert_int_equal(r.status, 200);
        assert_int_equal(count_values(&r), cases[i].n);
        emures_free(&r);
    }
    /* GUID literal, unquoted */
    char url[300];
    snprintf(url, sizeof(url), "contacts?$filter=contactid+eq+%s&$select=firstname", cid);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(count_values(&r), 1);
    assert_string_equal(
        emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "value"), 0),
                "firstname"),
        "Cyrus");
    emures_free(&r);
    /* $orderby desc and $count */
    emu_req(&d, "GET", "contacts?$select=firstname&$orderby=firstname+desc&$count=true", NULL, NULL,
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "@odata.count")->valueint, 3);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 0), "firstname"), "Cyrus");
    assert_string_equal(emu_str(cJSON_GetArrayItem(v, 2), "firstname"), "Ali");
    assert_non_null(strstr(emu_str(r.json, "@odata.context"), "$metadata#contacts(firstname)"));
    emures_free(&r);
    /* unknown property in $select / $filter / $orderby: 400 code 0x0 */
    const char *bad[] = {"contacts?$select=fullname,nope", "contacts?$filter=nope+eq+1",
                         "contacts?$orderby=nope", "contacts?$filter=firstname+eq",
                         "contacts?$orderby=firstname,nope"};
    for (size_t i = 0; i < 5; i++) {
        emu_req(&d, "GET", bad[i], NULL, NULL, &r);
        emu_assert_error(&r, 400, "0x0");
        emures_free(&r);
    }
    emu_req(&d, "GET", "contacts?$select=nope", NULL, NULL, &r);
    assert_string_equal(
        emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
        "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.contact'.");
    emures_free(&r);
    /* empty results, sorted and counted (found by fuzzing) */
    emu_req(&d, "GET", "contacts?$filter=firstname+eq+'zzz'&$orderby=firstname&$count=true", NULL,
            NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(count_values(&r), 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "@odata.count")->valueint, 0);
    emures_free(&r);
    /* no $skip */
    emu_req(&d, "GET", "contacts?$skip=1", NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x0");
    emures_free(&r);
    /* every row carries an ETag */
    emu_req(&d, "GET", "contacts", NULL, NULL, &r);
    cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(r.json, "value"))
        assert_non_null(emu_str(row, "@odata.etag"));
    emures_free(&r);
    emu_stop(&d);
}

static void test_paging(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    /* 23 rows via CreateMultiple, paged by 5 */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"Targets\":[");
    for (int i = 0; i < 23; i++)
        buf_printf(&b,
                   "%s{\"name\":\"acc%02d\",\"@odata.type\":\"Microsoft.Dynamics.CRM.account\"}",
                   i ? "," : "", i);
    buf_puts(&b, "]}");
    assert_int_equal(
        emu_req(&d, "POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data, &r),
        200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "Ids")), 23);
    emures_free(&r);
    buf_free(&b);
    const char *pf[] = {"Prefer: odata.maxpagesize=5", NULL};
    char url[4096] = "accounts?$select=name";
    int pages = 0, seen = 0;
    char last[32] = "";
    for (;;) {
        assert_int_equal(emu_req(&d, "GET", url, pf, NULL, &r), 200);
        assert_string_equal(emu_hdr(&r, "Preference-Applied"), "odata.maxpagesize=5");
        cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(r.json, "value"))
        {
            /* natural order, no duplicates across pages */
            assert_true(strcmp(emu_str(row, "name"), last) > 0);
            snprintf(last, sizeof(last), "%s", emu_str(row, "name"));
            seen++;
        }
        pages++;
        const char *next = emu_str(r.json, "@odata.nextLink");
        if (next == NULL) {
            emures_free(&r);
            break;
        }
        assert_non_null(strstr(next, "$skiptoken="));
        assert_memory_equal(next, d.api, strlen(d.api));
        snprintf(url, sizeof(url), "%s", next);
        emures_free(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(pages, 5);
    assert_int_equal(seen, 23);
    /* ordered paging keeps the order across pages */
    snprintf(url, sizeof(url), "accounts?$select=name&$orderby=name+desc");
    seen = 0;
    snprintf(last, sizeof(last), "zzz");
    for (;;) {
        assert_int_equal(emu_req(&d, "GET", url, pf, NULL, &r), 200);
        cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(r.json, "value"))
        {
            assert_true(strcmp(emu_str(row, "name"), last) < 0);
            snprintf(last, sizeof(last), "%s", emu_str(row, "name"));
            seen++;
        }
        const char *next = emu_str(r.json, "@odata.nextLink");
        if (next == NULL) {
            emures_free(&r);
            break;
        }
        snprintf(url, sizeof(url), "%s", next);
        emures_free(&r);
    }
    assert_int_equal(seen, 23);
    /* $top below the page size: no nextLink */
    emu_req(&d, "GET", "accounts?$top=3", pf, NULL, &r);
    assert_int_equal(count_values(&r), 3);
    assert_null(emu_str(r.json, "@odata.nextLink"));
    emures_free(&r);
    emu_stop(&d);
}

static void test_lookups_parties_annotations(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    struct emures r;
    char contact[40], user[40], body[2048], url[600];
    snprintf(contact, sizeof(contact), "%s",
             emu_create(&d, "contacts",
                        "{\"firstname\":\"Niloofar\",\"lastname\":\"Sadeghi\",\"gendercode\":2}"));
    emu_req(&d, "GET", "WhoAmI", NULL, NULL, &r);
    snprintf(user, sizeof(user), "%s", emu_str(r.json, "UserId"));
    emures_free(&r);
    snprintf(body, sizeof(body),
             "{\"subject\":\"hello\",\"description\":\"salam\",\"smsys_direction\":1,"
             "\"smsys_status\":2,"
             "\"regardingobjectid_contact_smsys_sms@odata.bind\":\"/contacts(%s)\","
             "\"smsys_sms_activity_parties\":["
             "{\"partyid_systemuser@odata.bind\":\"/systemusers(%s)\",\"participationtypemask\":1},"
             "{\"partyid_contact@odata.bind\":\"/contacts(%s)\",\"participationtypemask\":2,"
             "\"addressused\":\"+989121234567\"}]}",
             contact, user, contact);
    char sms[40];
    snprintf(sms, sizeof(sms), "%s", emu_create(&d, "smsys_smses", body));
    const char *ann[] = {"Prefer: odata.include-annotations=\"*\"", NULL};
    snprintf(url, sizeof(url),
             "smsys_smses(%s)?$select=subject,smsys_status,_regardingobjectid_value,statecode"
             "&$expand=smsys_sms_activity_parties($select=participationtypemask,_partyid_value,"
             "addressused),regardingobjectid_contact_smsys_sms($select=fullname,gendercode)",
             sms);
    assert_int_equal(emu_req(&d, "GET", url, ann, NULL, &r), 200);
    assert_string_equal(emu_hdr(&r, "Preference-Applied"), "odata.include-annotations=\"*\"");
    assert_string_equal(emu_str(r.json, "_regardingobjectid_value"), contact);
    assert_string_equal(
        emu_str(r.json, "_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"),
        "contact");
    assert_string_equal(
        emu_str(r.json, "_regardingobjectid_value@OData.Community.Display.V1.FormattedValue"),
        "Niloofar Sadeghi");
    assert_string_equal(emu_str(r.json, "smsys_status@OData.Community.Display.V1.FormattedValue"),
                        "Pending");
    assert_string_equal(emu_str(r.json, "statecode@OData.Community.Display.V1.FormattedValue"),
                        "Open");
    /* a choice of the expanded contact gets its label too */
    assert_string_equal(
        emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "regardingobjectid_contact_smsys_sms"),
                "gendercode@OData.Community.Display.V1.FormattedValue"),
        "Female");
    cJSON *parties = cJSON_GetObjectItemCaseSensitive(r.json, "smsys_sms_activity_parties");
    assert_int_equal(cJSON_GetArraySize(parties), 2);
    cJSON *p0 = cJSON_GetArrayItem(parties, 0), *p1 = cJSON_GetArrayItem(parties, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p0, "participationtypemask")->valueint, 1);
    assert_string_equal(emu_str(p0, "_partyid_value"), user);
    assert_string_equal(emu_str(p0, "_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname"),
                        "systemuser");
    assert_string_equal(emu_str(p1, "_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname"),
                        "contact");
    assert_string_equal(emu_str(p1, "addressused"), "+989121234567");
    cJSON *reg = cJSON_GetObjectItemCaseSensitive(r.json, "regardingobjectid_contact_smsys_sms");
    assert_string_equal(emu_str(reg, "fullname"), "Niloofar Sadeghi");
    emures_free(&r);
    /* without annotations requested, none are sent */
    snprintf(url, sizeof(url), "smsys_smses(%s)?$select=_regardingobjectid_value", sms);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_null(
        emu_str(r.json, "_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"));
    emures_free(&r);
    /* filter on a lookup value; ownerid defaults to the calling user */
    snprintf(url, sizeof(url),
             "smsys_smses?$filter=_regardingobjectid_value+eq+%s&$select=_ownerid_value", contact);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(count_values(&r), 1);
    assert_string_equal(
        emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "value"), 0),
                "_ownerid_value"),
        user);
    emures_free(&r);
    /* case with customerid_contact; binding to a missing row is a 404 */
    snprintf(body, sizeof(body),
             "{\"title\":\"broken\",\"caseorigincode\":1,\"prioritycode\":2,"
             "\"customerid_contact@odata.bind\":\"/contacts(%s)\"}",
             contact);
    char inc[40];
    snprintf(inc, sizeof(inc), "%s", emu_create(&d, "incidents", body));
    snprintf(url, sizeof(url), "incidents(%s)?$select=_customerid_value,ticketnumber", inc);
    emu_req(&d, "GET", url, ann, NULL, &r);
    assert_string_equal(
        emu_str(r.json, "_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"), "contact");
    assert_non_null(emu_str(r.json, "ticketnumber"));
    emures_free(&r);
    emu_req(&d, "POST", "incidents", NULL,
            "{\"title\":\"x\",\"customerid_contact@odata.bind\":"
            "\"/contacts(00000000-0000-0000-0000-000000000001)\"}",
            &r);
    emu_assert_error(&r, 404, "0x80040217");
    emures_free(&r);
    /* statecode + statuscode change (complete the SMS) */
    snprintf(url, sizeof(url), "smsys_smses(%s)", sms);
    assert_int_equal(emu_req(&d, "PATCH", url, NULL,
                             "{\"statecode\":1,\"statuscode\":2,\"smsys_status\":5}", &r),
                     204);
    emures_free(&r);
    snprintf(url, sizeof(url), "smsys_smses(%s)?$select=statecode,statuscode", sms);
    emu_req(&d, "GET", url, NULL, NULL, &r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "statecode")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r.json, "statuscode")->valueint, 2);
    emures_free(&r);
    /* activitypointers: the read-only union of activities */
    emu_create(&d, "tasks", "{\"subject\":\"call back\"}");
    emu_req(&d, "GET", "activitypointers?$select=subject,activitytypecode&$orderby=subject", NULL,
            NULL, &r);
    assert_int_equal(count_values(&r), 2);
    assert_string_equal(
        emu_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "value"), 0),
                "activitytypecode"),
        "task");
    emures_free(&r);
    snprintf(url, sizeof(url), "activitypointers(%s)?$select=subject", sms);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    assert_string_equal(emu_str(r.json, "subject"), "hello");
    emures_free(&r);
    emu_stop(&d);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_v2_and_v1),
        cmocka_unit_test(test_custom_client_and_401),
        cmocka_unit_test(test_client_assertion),
        cmocka_unit_test(test_whoami),
        cmocka_unit_test(test_create_read_update_delete),
        cmocka_unit_test(test_query_options),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_lookups_parties_annotations),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
