/* Integration tests for templates against dvemu (a real process over
 * loopback), through our Dataverse client: the spec's debt-and-contract
 * example end to end (a custom contract table related 1:N to account,
 * created through the metadata API), lookups, validation errors reported
 * by the server, and batch rendering of 1,000 recipients with the number
 * of Web API requests counted by dvemu's /_emu/stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "testutil.h"
#include "tpl_fixture.h"
#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/template.h"
#include "smsys/text.h"

#define ACCOUNT_ID "a0000000-0000-4000-8000-000000000001"
#define CONTACT_ID "c0000000-0000-4000-8000-000000000001"
#define LONELY_ID  "c0000000-0000-4000-8000-000000000002" /* no account */
#define MISSING_ID "c0000000-0000-4000-8000-0000000000ff"

static void post(struct fx *fx, const char *path, const char *body, long want)
{
    long st = world_dv_req(&fx->emu, "POST", path, body, NULL);
    if (st != want)
        fail_msg("POST %s -> %ld", path, st);
}

/* account.new_balance (Money) and a new_contract table with an end date and
 * a lookup new_accountid -> account (1:N account -> contracts). */
static void deploy_contracts(struct fx *fx)
{
    post(fx, "EntityDefinitions(LogicalName='account')/Attributes",
         "{\"@odata.type\":\"Microsoft.Dynamics.CRM.MoneyAttributeMetadata\","
         "\"SchemaName\":\"new_Balance\"}",
         204);
    post(fx, "EntityDefinitions",
         "{\"@odata.type\":\"Microsoft.Dynamics.CRM.EntityMetadata\",\"SchemaName\":"
         "\"new_contract\",\"OwnershipType\":\"UserOwned\",\"IsActivity\":false,\"Attributes\":["
         "{\"@odata.type\":\"Microsoft.Dynamics.CRM.StringAttributeMetadata\",\"SchemaName\":"
         "\"new_Name\",\"IsPrimaryName\":true,\"MaxLength\":100},"
         "{\"@odata.type\":\"Microsoft.Dynamics.CRM.DateTimeAttributeMetadata\",\"SchemaName\":"
         "\"new_EndDate\"}]}",
         204);
    post(fx, "RelationshipDefinitions",
         "{\"@odata.type\":\"Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata\","
         "\"SchemaName\":\"new_account_new_contract\",\"ReferencedEntity\":\"account\","
         "\"ReferencingEntity\":\"new_contract\",\"Lookup\":{\"SchemaName\":\"new_AccountId\"}}",
         204);
}

static void seed_example(struct fx *fx)
{
    deploy_contracts(fx);
    post(fx, "accounts",
         "{\"accountid\":\"" ACCOUNT_ID "\",\"name\":\"شرکت نمونه\",\"new_balance\":12500000}",
         204);
    post(fx, "contacts",
         "{\"contactid\":\"" CONTACT_ID "\",\"firstname\":\"علی\",\"lastname\":\"رضایی\","
         "\"parentcustomerid_account@odata.bind\":\"/accounts(" ACCOUNT_ID ")\"}",
         204);
    post(fx, "contacts", "{\"contactid\":\"" LONELY_ID "\",\"firstname\":\"Sara\"}", 204);
    /* an old active contract, the latest active one, and a later inactive one */
    post(fx, "new_contracts",
         "{\"new_name\":\"old\",\"new_enddate\":\"2025-01-01T08:00:00Z\","
         "\"new_accountid@odata.bind\":\"/accounts(" ACCOUNT_ID ")\"}",
         204);
    post(fx, "new_contracts",
         "{\"new_name\":\"support\",\"new_enddate\":\"2026-03-20T20:30:00Z\","
         "\"new_accountid@odata.bind\":\"/accounts(" ACCOUNT_ID ")\"}",
         204);
    post(fx, "new_contracts",
         "{\"new_name\":\"cancelled\",\"new_enddate\":\"2027-01-01T08:00:00Z\",\"statecode\":1,"
         "\"new_accountid@odata.bind\":\"/accounts(" ACCOUNT_ID ")\"}",
         204);
}

static struct template *parse(const char *src)
{
    struct template *t;
    struct smsys_err err;
    if (template_parse(src, strlen(src), &t, NULL, &err) < 0)
        fail_msg("parse: %s", err.detail);
    return t;
}

/* ---- batch collection ---- */

struct got {
    size_t n;
    char *text[1100];
    int rc[1100];
    char id[1100][37];
    char err[1100][200];
    int done, done_rc;
    struct template_batch_stats st;
};

static void row_cb(const char *id, int rc, const char *text, size_t len,
                   const struct smsys_err *err, void *ud)
{
    struct got *g = ud;
    assert_true(g->n < 1100);
    snprintf(g->id[g->n], sizeof(g->id[0]), "%s", id);
    g->rc[g->n] = rc;
    g->text[g->n] = rc == 0 ? strndup(text, len) : NULL;
    snprintf(g->err[g->n], sizeof(g->err[0]), "%.199s", err ? err->detail : "");
    g->n++;
}

static void done_cb(int rc, const struct template_batch_stats *st, const struct smsys_err *err,
                    void *ud)
{
    struct got *g = ud;
    if (rc < 0)
        fprintf(stderr, "batch: %s\n", err ? err->detail : "");
    g->done_rc = rc;
    g->st = *st;
    g->done = 1;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->text[i]);
}

static void run_batch(struct fx *fx, const struct template *t, const char *const *ids, size_t n,
                      unsigned bs, struct got *g)
{
    memset(g, 0, sizeof(*g));
    struct template_batch_opts o = {.batch_size = bs};
    assert_int_equal(template_render_batch(fx->c.dv, t, &fx->tbl, ids, n, &o, row_cb, done_cb, g),
                     0);
    assert_int_equal(tu_run_until(&fx->c.loop, &g->done, 60000), 0);
}

static void test_debt_and_contract(void **state)
{
    struct fx *fx = *state;
    seed_example(fx);
    struct template *t =
        parse("{{let contract = new_contracts(new_accountid) of parentcustomerid "
              "where statecode eq 0 latest by new_enddate}}"
              "{{firstname}} عزیز، بدهی {{parentcustomerid_account.name | default \"شما\"}}: "
              "{{parentcustomerid_account.new_balance | default \"0\" | currency \"IRT\" | "
              "persian}}. "
              "{{#if contract.new_enddate}}پشتیبانی تا {{contract.new_enddate | jalali \"d MMMM "
              "yyyy\" | persian}}{{else}}بدون قرارداد{{/if}}");
    const char *ids[] = {CONTACT_ID, LONELY_ID, MISSING_ID};
    struct got g;
    run_batch(fx, t, ids, 3, 0, &g);
    assert_int_equal(g.done_rc, 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.id[0], CONTACT_ID);
    assert_int_equal(g.rc[0], 0);
    assert_string_equal(g.text[0], "علی عزیز، بدهی شرکت نمونه: ۱,۲۵۰,۰۰۰ تومان. "
                                   "پشتیبانی تا ۱ فروردین ۱۴۰۵");
    assert_int_equal(g.rc[1], 0);
    assert_string_equal(g.text[1], "Sara عزیز، بدهی شما: ۰ تومان. بدون قرارداد");
    assert_int_equal(g.rc[2], SMSYS_ENOTFOUND);
    assert_non_null(strstr(g.err[2], MISSING_ID));
    /* one GET for the contacts, one for the contracts of the accounts found */
    assert_int_equal(g.st.requests, 2);
    assert_int_equal(g.st.rendered, 2);
    assert_int_equal(g.st.failed, 1);
    got_free(&g);

    /* a required value that is missing fails that one message, naming it */
    template_free(t);
    t = parse("سلام {{firstname}}، {{parentcustomerid_account.name | required}}");
    run_batch(fx, t, ids, 2, 0, &g);
    assert_int_equal(g.rc[0], 0);
    assert_string_equal(g.text[0], "سلام علی، شرکت نمونه");
    assert_int_equal(g.rc[1], SMSYS_ETEMPLATE);
    assert_string_equal(g.err[1], "line 1, column 21 (byte 25), "
                                  "{{parentcustomerid_account.name | required}}: required value "
                                  "is missing");
    got_free(&g);
    template_free(t);
}

/* ---- validation ---- */

struct vres {
    int done, rc;
    struct template_error te;
    char detail[512];
};

static void validate_cb(int rc, const struct template_error *te, const struct smsys_err *err,
                        void *ud)
{
    struct vres *v = ud;
    v->rc = rc;
    v->te = *te;
    snprintf(v->detail, sizeof(v->detail), "%s", err->detail);
    v->done = 1;
}

static void validate(struct fx *fx, const char *src, struct vres *v)
{
    struct template *t = parse(src);
    memset(v, 0, sizeof(*v));
    assert_int_equal(template_validate(fx->c.dv, t, &fx->tbl, validate_cb, v), 0);
    assert_int_equal(tu_run_until(&fx->c.loop, &v->done, 10000), 0);
    template_free(t);
}

static void test_validate(void **state)
{
    struct fx *fx = *state;
    deploy_contracts(fx);
    struct vres v;
    /* valid: columns, lookups at depth 1 and 2, a relation with where/order */
    validate(fx,
             "{{firstname}} {{parentcustomerid_account.new_balance | number}} "
             "{{parentcustomerid_account.primarycontactid.fullname}} {{c.new_enddate | jalali}}"
             "{{let c = new_contracts(new_accountid) of parentcustomerid where statecode "
             "eq 0 latest by new_enddate}}",
             &v);
    if (v.rc != 0)
        fail_msg("valid template refused: %s", v.detail);

    validate(fx, "Hi {{firstname}} {{shoesize | default \"?\"}}", &v);
    assert_int_equal(v.rc, SMSYS_ETEMPLATE);
    assert_int_equal(v.te.kind, TE_UNKNOWN_COLUMN);
    assert_string_equal(v.detail, "line 1, column 18 (byte 17), {{shoesize | default \"?\"}}: "
                                  "column \"shoesize\" does not exist on contact");

    validate(fx, "{{firstname}}\n{{employer.name}}", &v);
    assert_int_equal(v.rc, SMSYS_ETEMPLATE);
    assert_int_equal(v.te.kind, TE_UNKNOWN_LOOKUP);
    assert_string_equal(v.detail, "line 2, column 1 (byte 14), {{employer.name}}: lookup "
                                  "\"employer\" does not exist on contact");

    validate(fx, "{{parentcustomerid_account.shoesize}}", &v);
    assert_int_equal(v.rc, SMSYS_ETEMPLATE);
    assert_int_equal(v.te.kind, TE_UNKNOWN_COLUMN);
    assert_string_equal(v.te.placeholder, "{{parentcustomerid_account.shoesize}}");

    validate(fx, "{{let x = new_widgets(new_accountid)}}{{x.new_name}}", &v);
    assert_int_equal(v.rc, SMSYS_ETEMPLATE);
    assert_int_equal(v.te.kind, TE_RELATION);
    assert_string_equal(v.te.placeholder, "{{let x = new_widgets(new_accountid)}}");

    validate(fx, "{{let x = new_contracts(new_accountid)}}{{x.new_colour}}", &v);
    assert_int_equal(v.rc, SMSYS_ETEMPLATE);
    assert_int_equal(v.te.kind, TE_UNKNOWN_COLUMN);
    assert_string_equal(v.te.placeholder, "{{x.new_colour}}");
    assert_non_null(strstr(v.detail, "does not exist on new_contract"));
}

/* ---- 1,000 recipients ---- */

static void test_batch_1000(void **state)
{
    struct fx *fx = *state;
    deploy_contracts(fx);
    enum { N = 1000, NACC = 20 };
    static char ids[N][37];
    const char *idp[N];
    struct buf b = BUF_INIT;
    /* accounts with a balance and one contract each */
    for (int a = 0; a < NACC; a++) {
        buf_reset(&b);
        buf_printf(&b,
                   "{\"accountid\":\"a0000000-0000-4000-8000-%012d\",\"name\":\"acc%d\","
                   "\"new_balance\":%d}",
                   a, a, (a + 1) * 1000);
        post(fx, "accounts", b.data, 204);
        buf_reset(&b);
        buf_printf(&b,
                   "{\"new_name\":\"c%d\",\"new_enddate\":\"2026-0%d-15T12:00:00Z\","
                   "\"new_accountid@odata.bind\":\"/accounts(a0000000-0000-4000-8000-%012d)\"}",
                   a, 1 + a % 9, a);
        post(fx, "new_contracts", b.data, 204);
    }
    buf_reset(&b);
    buf_puts(&b, "{\"Targets\":[");
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "c0000000-0000-4000-8000-%012d", i);
        idp[i] = ids[i];
        buf_printf(&b,
                   "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"contactid\":\"%s\","
                   "\"firstname\":\"n%d\",\"parentcustomerid_account@odata.bind\":"
                   "\"/accounts(a0000000-0000-4000-8000-%012d)\"}",
                   i ? "," : "", ids[i], i, i % NACC);
    }
    buf_puts(&b, "]}");
    post(fx, "contacts/Microsoft.Dynamics.CRM.CreateMultiple", b.data, 200);
    buf_free(&b);

    struct template *t =
        parse("{{let c = new_contracts(new_accountid) of parentcustomerid "
              "latest by new_enddate}}{{firstname}} {{parentcustomerid_account.name}} "
              "{{parentcustomerid_account.new_balance | number}} "
              "{{c.new_enddate | date \"MM\"}}");
    long before = emu_requests(fx);
    struct got *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    run_batch(fx, t, idp, N, 100, g);
    long after = emu_requests(fx);
    assert_int_equal(g->done_rc, 0);
    assert_int_equal(g->n, N);
    for (int i = 0; i < N; i++) {
        char want[128];
        int a = i % NACC;
        snprintf(want, sizeof(want), "n%d acc%d %d,000 0%d", i, a, a + 1, 1 + a % 9);
        assert_int_equal(g->rc[i], 0);
        assert_string_equal(g->id[i], ids[i]);
        assert_string_equal(g->text[i], want);
    }
    /* 10 batches x (recipients + contracts); the token request is not an API call */
    assert_int_equal(g->st.requests, 20);
    assert_true(after - before >= 20 && after - before <= 21);
    printf("batch of %d recipients: %u Web API requests\n", N, g->st.requests);
    got_free(g);
    free(g);
    template_free(t);
}

/* ---- lookups two levels deep ---- */

/* A lookup chain two levels deep (contact -> account -> its primary
 * contact) is fetched with a nested $expand in the recipients' one GET and
 * rendered; a recipient whose chain breaks at either level gets the default. */
static void test_lookup_depth_2(void **state)
{
    struct fx *fx = *state;
#define PRIMARY_ID "c0000000-0000-4000-8000-000000000010"
#define NOPRIM_ACC "a0000000-0000-4000-8000-000000000002"
#define NOPRIM_CON "c0000000-0000-4000-8000-000000000011"
    post(fx, "contacts",
         "{\"contactid\":\"" PRIMARY_ID "\",\"firstname\":\"پریسا\",\"lastname\":\"کریمی\"}", 204);
    post(fx, "accounts",
         "{\"accountid\":\"" ACCOUNT_ID "\",\"name\":\"شرکت نمونه\","
         "\"primarycontactid@odata.bind\":\"/contacts(" PRIMARY_ID ")\"}",
         204);
    post(fx, "accounts", "{\"accountid\":\"" NOPRIM_ACC "\",\"name\":\"بی‌نام\"}", 204);
    post(fx, "contacts",
         "{\"contactid\":\"" CONTACT_ID "\",\"firstname\":\"علی\","
         "\"parentcustomerid_account@odata.bind\":\"/accounts(" ACCOUNT_ID ")\"}",
         204);
    post(fx, "contacts",
         "{\"contactid\":\"" NOPRIM_CON "\",\"firstname\":\"Reza\","
         "\"parentcustomerid_account@odata.bind\":\"/accounts(" NOPRIM_ACC ")\"}",
         204);
    post(fx, "contacts", "{\"contactid\":\"" LONELY_ID "\",\"firstname\":\"Sara\"}", 204);

    struct template *t =
        parse("{{firstname}}: {{parentcustomerid_account.primarycontactid.fullname "
              "| default \"-\"}}");
    const char *ids[] = {CONTACT_ID, NOPRIM_CON, LONELY_ID};
    long before = emu_requests(fx);
    struct got g;
    run_batch(fx, t, ids, 3, 0, &g);
    long after = emu_requests(fx);
    assert_int_equal(g.done_rc, 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.rc[0], 0);
    assert_string_equal(g.text[0], "علی: پریسا کریمی");
    assert_int_equal(g.rc[1], 0);
    assert_string_equal(g.text[1], "Reza: -");
    assert_int_equal(g.rc[2], 0);
    assert_string_equal(g.text[2], "Sara: -");
    /* both levels came with the recipients: one Web API request */
    assert_int_equal(g.st.requests, 1);
    assert_true(after - before >= 1 && after - before <= 2);
    got_free(&g);
    template_free(t);
#undef PRIMARY_ID
#undef NOPRIM_ACC
#undef NOPRIM_CON
}

/* ---- smsysctl template check / render ---- */

struct run {
    int code;
    char out[4096], err[4096];
};

/* Runs smsysctl with args (NULL-terminated) and a config for this dvemu;
 * asserts it exited (no signal) and keeps the first 4 KiB of its output. */
static void ctl_run(struct fx *fx, const char *const *args, struct run *r)
{
    char conf[128];
    snprintf(conf, sizeof(conf), "/tmp/smsys-tmpl-%d.conf", fx->emu.port);
    world_conf_write(conf, &(struct world_conf){.dv_root = fx->emu.root,
                                                .conninfo = "host=/nonexistent dbname=x"});
    struct world_run w = world_ctl(conf, args);
    unlink(conf);
    assert_true(w.code >= 0);
    r->code = w.code;
    snprintf(r->out, sizeof(r->out), "%s", w.out);
    snprintf(r->err, sizeof(r->err), "%s", w.err);
    world_run_free(&w);
}

#define DEBT_TPL_ID "d0000000-0000-4000-8000-000000000001"

static void test_cli(void **state)
{
    struct fx *fx = *state;
    seed_example(fx);
    post(fx, "smsys_smstemplates",
         "{\"smsys_smstemplateid\":\"" DEBT_TPL_ID "\",\"smsys_name\":\"debt\","
         "\"smsys_entity\":\"contact\",\"smsys_isdefault\":true,\"smsys_body\":"
         "\"{{let c = new_contracts(new_accountid) of parentcustomerid where statecode eq 0 "
         "latest by new_enddate}}{{firstname}}: {{parentcustomerid_account.new_balance | currency "
         "\\\"IRT\\\" | persian}} / {{c.new_enddate | jalali}}\"}",
         204);
    post(fx, "smsys_smstemplates",
         "{\"smsys_name\":\"broken\",\"smsys_entity\":\"contact\",\"smsys_body\":"
         "\"Hi {{firstname}}\\n{{parentcustomerid_account.shoesize}}\"}",
         204);
    post(fx, "smsys_smstemplates",
         "{\"smsys_name\":\"bad syntax\",\"smsys_entity\":\"contact\",\"smsys_body\":"
         "\"Hi {{firstname | shout}}\"}",
         204);
    const char *want = "علی: ۱,۲۵۰,۰۰۰ تومان / 1405/01/01";
    struct text_info ti;
    assert_int_equal(text_analyze(want, strlen(want), &ti), 0);

    struct run r;
    const char *render[] = {"template", "render", "debt", "--for", "contact:" CONTACT_ID, NULL};
    ctl_run(fx, render, &r);
    if (r.code != 0)
        fail_msg("render: %s", r.err);
    char line[512];
    snprintf(line, sizeof(line), "%s\n-- UCS-2, %zu characters, 1 segment, %zu left in the last\n",
             want, ti.chars, ti.remaining);
    assert_string_equal(r.out, line);

    const char *render_json[] = {
        "--json", "template", "render", DEBT_TPL_ID, "--for", "contact:" CONTACT_ID, NULL};
    ctl_run(fx, render_json, &r);
    assert_int_equal(r.code, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_string_equal(world_jstr(j, "text"), want);
    assert_string_equal(world_jstr(j, "encoding"), "UCS-2");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "segments")->valueint, 1);
    cJSON_Delete(j);

    const char *check_ok[] = {"template", "check", "debt", NULL};
    ctl_run(fx, check_ok, &r);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "template 'debt' for contact: ok"));
    assert_non_null(strstr(r.out, "$expand=parentcustomerid_account($select=new_balance)"));
    assert_non_null(strstr(r.out, "c: new_contracts by new_accountid where statecode eq 0 "
                                  "order new_enddate desc"));

    const char *check_bad[] = {"template", "check", "broken", NULL};
    ctl_run(fx, check_bad, &r);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, "smsysctl: template 'broken': line 2, column 1 (byte 17), "
                               "{{parentcustomerid_account.shoesize}}: column \"shoesize\" does "
                               "not exist on account\n");

    const char *check_syntax[] = {"template", "check", "bad syntax", NULL};
    ctl_run(fx, check_syntax, &r);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, "smsysctl: template 'bad syntax': line 1, column 18 (byte 17), "
                               "{{firstname | shout}}: unknown filter \"shout\"\n");

    const char *render_missing[] = {"template", "render", "debt", "--for", "contact:" MISSING_ID,
                                    NULL};
    ctl_run(fx, render_missing, &r);
    if (r.code != 1 || strstr(r.err, "does not exist") == NULL)
        fail_msg("render for a missing contact: exit %d, stderr: %s", r.code, r.err);

    const char *usage[] = {"template", "render", "debt", "--for", "contact", NULL};
    ctl_run(fx, usage, &r);
    assert_int_equal(r.code, 2);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_debt_and_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_depth_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
