/* test_dvemu_keyed.c - dvemu answers a $filter that pins the primary key
 * (Microsoft.Dynamics.CRM.In on it, an `or` of `eq` on it, either AND-ed
 * with other conditions) through its id index instead of a scan. The
 * answers must be identical to the scan's: each keyed query is compared
 * with the same query made unkeyable by `or contactid eq null` (matches
 * nothing, but a non-key side of an `or` forces the scan), with and
 * without $orderby, $count and paging through nextLinks. Prints the time
 * of one 100-id lookup with 100 000 contacts both ways (a figure, not an
 * assertion: speed is measured, never asserted, in tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../lib/testutil.h"
#include "smsys/util.h"
#include "dvemu_client.h"

#define NCONTACTS 100000
#define CHUNK     1000
#define NPICK     100

static char g_ids[NCONTACTS][37];

static void create_contacts(struct emuproc *d)
{
    for (int c = 0; c < NCONTACTS / CHUNK; c++) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"Targets\":[");
        for (int i = 0; i < CHUNK; i++) {
            int k = c * CHUNK + i;
            /* firstname cycles so AND-ed conditions keep part of the ids */
            buf_printf(&b,
                       "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\","
                       "\"firstname\":\"F%d\",\"lastname\":\"L%06d\"}",
                       i ? "," : "", k % 7, NCONTACTS - k);
        }
        buf_puts(&b, "]}");
        struct emures r;
        assert_int_equal(
            emu_req(d, "POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", NULL, b.data, &r),
            200);
        cJSON *ids = cJSON_GetObjectItemCaseSensitive(r.json, "Ids");
        assert_int_equal(cJSON_GetArraySize(ids), CHUNK);
        for (int i = 0; i < CHUNK; i++)
            snprintf(g_ids[c * CHUNK + i], 37, "%s", cJSON_GetArrayItem(ids, i)->valuestring);
        emures_free(&r);
        buf_free(&b);
    }
}

/* Every contactid of the answer, following nextLinks, as one
 * comma-separated string (caller frees); *count gets @odata.count or -1. */
static char *fetch_ids(struct emuproc *d, const char *url, const char *prefer, long *count)
{
    struct buf out = BUF_INIT;
    buf_puts(&out, "");
    char next[8192];
    snprintf(next, sizeof(next), "%s", url);
    const char *hdrs[] = {prefer, NULL};
    *count = -1;
    for (int pages = 0; next[0]; pages++) {
        assert_true(pages < 1000);
        struct emures r;
        assert_int_equal(emu_req(d, "GET", next, prefer ? hdrs : NULL, NULL, &r), 200);
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(r.json, "@odata.count");
        if (pages == 0 && cJSON_IsNumber(cnt))
            *count = (long)cnt->valuedouble;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r.json, "value"))
        {
            buf_printf(&out, "%s,", emu_str(v, "contactid"));
        }
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(r.json, "@odata.nextLink");
        if (cJSON_IsString(nl))
            snprintf(next, sizeof(next), "%s", nl->valuestring);
        else
            next[0] = '\0';
        emures_free(&r);
    }
    return out.data;
}

/* The keyed query and its scan twin give the same ids in the same order;
 * returns how many ids the answer had. */
static int same_answer(struct emuproc *d, const char *keyed, const char *rest, const char *prefer)
{
    char u1[8192], u2[8192];
    snprintf(u1, sizeof(u1), "contacts?$select=contactid&$filter=%s%s", keyed, rest);
    snprintf(u2, sizeof(u2), "contacts?$select=contactid&$filter=(%s)+or+contactid+eq+null%s",
             keyed, rest);
    long c1, c2;
    char *a = fetch_ids(d, u1, prefer, &c1);
    char *b = fetch_ids(d, u2, prefer, &c2);
    assert_string_equal(a, b);
    assert_int_equal(c1, c2);
    int n = 0;
    for (const char *p = a; *p; p++)
        n += *p == ',';
    free(a);
    free(b);
    return n;
}

static double now_ms(void)
{
    return (double)util_now_ms();
}

static void test_keyed_equals_scan(void **state)
{
    struct emuproc d;
    emu_start(&d, NULL);
    create_contacts(&d);

    /* 100 ids from all over the table, newest first, some in upper case,
     * one repeated and one that names no row */
    struct buf in = BUF_INIT, ors = BUF_INIT;
    buf_puts(&in, "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=%5B");
    for (int i = 0; i < NPICK; i++) {
        char id[37];
        snprintf(id, sizeof(id), "%s", g_ids[NCONTACTS - 1 - i * (NCONTACTS / NPICK)]);
        if (i % 3 == 0)
            for (char *p = id; *p; p++)
                *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
        buf_printf(&in, "%s'%s'", i ? "," : "", id);
        if (i < 10)
            buf_printf(&ors, "%scontactid+eq+'%s'", i ? "+or+" : "", id);
    }
    buf_printf(&in, ",'%s','00000000-0000-0000-0000-000000000001'%%5D)", g_ids[NCONTACTS - 1]);
    buf_printf(&ors, "+or+contactid+eq+'%s'", g_ids[5]);

    /* natural order, one page */
    assert_int_equal(same_answer(&d, in.data, "", NULL), NPICK);
    /* natural order, paged by 7 through skiptoken cookies */
    assert_int_equal(same_answer(&d, in.data, "", "Prefer: odata.maxpagesize=7"), NPICK);
    /* $top below the page */
    assert_int_equal(same_answer(&d, in.data, "&$top=13", NULL), 13);
    /* $orderby and $count, paged */
    assert_int_equal(
        same_answer(&d, in.data, "&$orderby=lastname&$count=true", "Prefer: odata.maxpagesize=9"),
        NPICK);
    /* AND-ed with another condition, on either side */
    struct buf and1 = BUF_INIT, and2 = BUF_INIT;
    buf_printf(&and1, "firstname+eq+'F3'+and+%s", in.data);
    buf_printf(&and2, "(%s)+and+not+startswith(firstname,'F3')", in.data);
    int n1 = same_answer(&d, and1.data, "", NULL);
    int n2 = same_answer(&d, and2.data, "&$orderby=firstname+desc,lastname", NULL);
    assert_true(n1 > 0 && n2 > 0);
    assert_int_equal(n1 + n2, NPICK);
    /* an `or` of `eq` on the key */
    assert_int_equal(same_answer(&d, ors.data, "", "Prefer: odata.maxpagesize=4"), 11);

    /* the figure: one 100-id lookup with 100 000 contacts */
    char u1[8192], u2[8192];
    snprintf(u1, sizeof(u1), "contacts?$select=contactid,mobilephone&$filter=%s", in.data);
    snprintf(u2, sizeof(u2),
             "contacts?$select=contactid,mobilephone&$filter=(%s)+or+contactid+eq+null", in.data);
    struct emures r;
    double t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(emu_req(&d, "GET", u1, NULL, NULL, &r), 200);
        emures_free(&r);
    }
    double t1 = now_ms();
    assert_int_equal(emu_req(&d, "GET", u2, NULL, NULL, &r), 200);
    emures_free(&r);
    double t2 = now_ms();
    printf("# 100-id lookup with %d contacts: by key %.2f ms, by scan %.2f ms\n", NCONTACTS,
           (t1 - t0) / 20, t2 - t1);

    buf_free(&in);
    buf_free(&ors);
    buf_free(&and1);
    buf_free(&and2);
    emu_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyed_equals_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
