/* test_qa_templates.c - templates used the way a CRM admin would, with
 * odd but plausible input, against dvemu and PostgreSQL (QA pass).
 *
 * - A template whose text comes out empty or only spaces for a recipient
 *   ("{{jobtitle}}" for a contact without a job title) is not sent: the
 *   SMS is Failed with a last error that names the template and says the
 *   text is empty, and Dynamics' description is not overwritten with "".
 *   A body of spaces only is "no text", like an empty body; so is a
 *   description of spaces, over which the template applies. smsys_entity
 *   typed " Contact" means contact, for a named template as for a default.
 * - smsysctl template check / render say what smsysd will do: a blank
 *   body, a text that renders empty and a text over [pickup] max_segments
 *   exit 1 with the reason; "--for" without its value is a usage error;
 *   a wrong lookup after a {{let}}'s "of" is named as the user wrote it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "pk_fixture.h"
#include "tpl_sms.h"
#include "smsys/accounts.h"
#include "smsys/pickup.h"
#include "smsys/template.h"

#define A1 "a1000000-0000-0000-0000-0000000000a1"
#define L1 "11000000-0000-0000-0000-000000000001"
#define C1 "c1000000-0000-0000-0000-000000000001"

struct wait {
    int done, rc;
    struct pickup_result pr;
    char detail[512];
};

static void acc_cb(int rc, const struct accounts_result *res, const struct smsys_err *err, void *ud)
{
    struct wait *w = ud;
    (void)res;
    w->rc = rc;
    snprintf(w->detail, sizeof(w->detail), "%s", err ? err->detail : "");
    w->done = 1;
}

static void pk_cb(int rc, const struct pickup_result *res, const struct smsys_err *err, void *ud)
{
    struct wait *w = ud;
    w->rc = rc;
    if (res)
        w->pr = *res;
    snprintf(w->detail, sizeof(w->detail), "%s", err ? err->detail : "");
    w->done = 1;
}

static void add_template(struct pkf *f, int i, const char *name, const char *body)
{
    tpl_post(f, (size_t)i, name, body, "contact");
}

static void add_sms(struct pkf *f, int i)
{
    tpl_sms_post(f, (size_t)i, C1, NULL);
}

/* The world: an account with a line, one contact without a job title. */
static void seed_world(struct pkf *f)
{
    pkf_post(f, "smsys_smssettings",
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"main\",\"smsys_provider\":"
             "\"smpp\",\"smsys_isdefault\":true,\"smsys_enabled\":true}");
    pkf_post(f, "smsys_smsnumbers",
             "{\"smsys_smsnumberid\":\"" L1 "\",\"smsys_number\":\"3000111\",\"smsys_isdefault\":"
             "true,\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A1 ")\"}");
    pkf_post(f, "contacts",
             "{\"contactid\":\"" C1 "\",\"firstname\":\"علی\",\"mobilephone\":\"09121234567\"}");
}

/* Templates that render blank, one poll: each SMS Failed with the reason,
 * nothing queued to send, Dynamics' description untouched. */
struct blank_case {
    const char *body;
    const char *error; /* the expected last_error after "template bN" */
};

static const struct blank_case blanks[] = {
    {"{{jobtitle}}", ": the rendered text is empty for this recipient"},
    {" {{jobtitle}}\n", ": the rendered text is empty for this recipient"},
    {"{{#if jobtitle}}{{jobtitle}}{{/if}}\u200c\u00a0", ": the rendered text is empty for this "
                                                        "recipient"},
    {"   \n ", " has no text (smsys_body)"},
};
#define NBLANK ((int)(sizeof(blanks) / sizeof(blanks[0])))

static void test_blank_text_fails_the_sms(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "qatplblank", NULL, 0);
    seed_world(&f);
    struct accounts *a;
    assert_int_equal(accounts_new(&f.loop, f.pool, f.dv, &a), 0);
    struct wait w = {0};
    assert_int_equal(accounts_sync(a, acc_cb, &w), 0);
    assert_int_equal(tu_run_until(&f.loop, &w.done, 20000), 0);
    assert_int_equal(w.rc, 0);

    for (int i = 0; i < NBLANK; i++) {
        char name[16];
        snprintf(name, sizeof(name), "b%d", i);
        add_template(&f, i, name, blanks[i].body);
        add_sms(&f, i);
    }
    add_template(&f, NBLANK, "good", "{{jobtitle | default \"مشتری\"}} {{firstname}}");
    add_sms(&f, NBLANK);
    /* smsys_entity typed as " Contact": the logical name contact, as for a
     * default template (before: "written for table ' Contact' but the
     * recipient is a 'contact'") */
    tpl_post(&f, NBLANK + 1, "typed", "Hi {{firstname}}", " Contact");
    add_sms(&f, NBLANK + 1);
    /* a description of spaces and a line break (left in the form's field)
     * and a template: the template is sent, not a blank SMS */
    add_template(&f, NBLANK + 2, "over blank", "Dear {{firstname}}");
    tpl_sms_post(&f, NBLANK + 2, C1, "  \n ");
    /* a typed description of spaces to a bare number (no record, so no
     * template applies): not sent as a blank SMS */
    char bare[37];
    sms_id(NBLANK + 3, bare);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"activityid\":\"%s\",\"subject\":\"t\",\"smsys_direction\":1,"
             "\"smsys_status\":2,\"description\":\" \\n \",\"smsys_sms_activity_parties\":"
             "[{\"addressused\":\"09121234568\",\"participationtypemask\":2}]}",
             bare);
    pkf_post(&f, "smsys_smses", body);

    struct pickup_opts po = {0};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    memset(&w, 0, sizeof(w));
    assert_int_equal(pickup_poll(p, pk_cb, &w), 0);
    assert_int_equal(tu_run_until(&f.loop, &w.done, 60000), 0);
    if (w.rc != 0)
        fail_msg("pickup_poll: %s", w.detail);
    assert_int_equal(w.pr.records, NBLANK + 4);
    assert_int_equal(w.pr.failed, NBLANK + 1);

    for (int i = 0; i < NBLANK; i++) {
        char id[37], want[256], path[128];
        sms_id(i, id);
        snprintf(want, sizeof(want), "template b%d%s", i, blanks[i].error);
        const char *got = msg_col(&f, id, "last_error");
        if (strncmp(got, want, strlen(want)) != 0)
            fail_msg("case %d (%s):\n got  %s\n want %s...", i, blanks[i].body, got, want);
        assert_string_equal(msg_col(&f, id, "state"), "6");
        assert_string_equal(msg_col(&f, id, "body"), "");
        /* the description in Dynamics is not replaced by an empty text */
        snprintf(path, sizeof(path), "smsys_smses(%s)?$select=description", id);
        cJSON *row = pkf_get(&f, path);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "description");
        if (!cJSON_IsNull(d))
            fail_msg("case %d: description written: '%s'", i,
                     cJSON_IsString(d) ? d->valuestring : "?");
        cJSON_Delete(row);
    }
    char id[37];
    sms_id(NBLANK, id);
    assert_string_equal(msg_col(&f, id, "state"), "3");
    assert_string_equal(msg_col(&f, id, "body"), "مشتری علی");
    sms_id(NBLANK + 1, id);
    if (strcmp(msg_col(&f, id, "state"), "3") != 0)
        fail_msg("' Contact' template: %s", msg_col(&f, id, "last_error"));
    assert_string_equal(msg_col(&f, id, "body"), "Hi علی");
    sms_id(NBLANK + 2, id);
    assert_string_equal(msg_col(&f, id, "state"), "3");
    assert_string_equal(msg_col(&f, id, "body"), "Dear علی");
    char path[128];
    snprintf(path, sizeof(path), "smsys_smses(%s)?$select=description", id);
    cJSON *row = pkf_get(&f, path);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "description");
    assert_true(cJSON_IsString(d));
    assert_string_equal(d->valuestring, "Dear علی");
    cJSON_Delete(row);
    sms_id(NBLANK + 3, id);
    assert_string_equal(msg_col(&f, id, "state"), "6");
    assert_string_equal(msg_col(&f, id, "last_error"), "the message text (description) is empty");

    pickup_free(p);
    accounts_free(a);
    pkf_close(&f);
}

/* ---- smsysctl template check / render ---------------------------------- */

static char conf[256];

static struct world_run ctl_v(const char *const *args)
{
    struct world_run r = world_ctl_start(conf, args);
    world_ctl_finish(&r, 30000);
    return r;
}

#define CTL(...) ctl_v((const char *const[]){__VA_ARGS__, NULL})

static void test_ctl_says_what_smsysd_does(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "qatplctl", NULL, 0);
    seed_world(&f);
    add_template(&f, 1, "empty", "");
    add_template(&f, 2, "spaces", "  \n\t ");
    add_template(&f, 3, "nojob", "{{jobtitle}}");
    struct buf big = BUF_INIT;
    buf_puts(&big, "{{firstname}} ");
    for (int i = 0; i < 1500; i++) /* 1504 UCS-2 characters: 23 parts of 67 */
        buf_puts(&big, "ب");
    add_template(&f, 4, "long", big.data);
    buf_free(&big);
    add_template(&f, 5, "good", "سلام {{firstname}}");
    add_template(&f, 6, "of",
                 "{{let c = incidents(customerid) of parentcustomerid_account}}{{c.title}}");

    snprintf(conf, sizeof(conf), "/tmp/smsys-t-qatpl-%d.conf", (int)getpid());
    FILE *o = fopen(conf, "w");
    assert_non_null(o);
    fprintf(o,
            "[dataverse]\nurl = %s\ntoken_url = %s/t/oauth2/v2.0/token\nclient_id = smsys-demo\n"
            "client_secret = env:SMSYS_T_QATPL_SECRET\nscope = http://127.0.0.1/.default\n"
            "[postgres]\nconninfo = \"%s\"\n[pickup]\nmax_segments = 20\n",
            f.emu.root, f.emu.root, f.conninfo);
    fclose(o);
    chmod(conf, 0600);
    setenv("SMSYS_T_QATPL_SECRET", "smsys-demo-secret", 1);

    world_run_expect(CTL("template", "check", "good"), 0, "template 'good' for contact: ok", NULL);
    tpl_post(&f, 7, "typed", "Hi {{firstname}}", "Contact ");
    world_run_expect(CTL("template", "check", "typed"), 0, "template 'typed' for contact: ok",
                     NULL);
    world_run_expect(CTL("template", "check", "empty"), 1, NULL, "has no text (smsys_body)");
    world_run_expect(CTL("template", "check", "spaces"), 1, NULL, "has no text (smsys_body)");
    world_run_expect(CTL("template", "render", "spaces", "--for", "contact:" C1), 1, NULL,
                     "has no text (smsys_body)");
    world_run_expect(CTL("template", "render", "nojob", "--for", "contact:" C1), 1, NULL,
                     "the rendered text is empty for this recipient");
    world_run_expect(CTL("template", "render", "long", "--for", "contact:" C1), 1, "23 segments",
                     "needs 23 SMS parts (1504 characters); the limit is 20");
    world_run_expect(CTL("template", "render", "good", "--for"), 2, NULL, "--for needs TABLE:ID");
    /* the name the user wrote, not the Web API's _x_value form */
    world_run_expect(CTL("template", "check", "of"), 1, NULL,
                     "{{let c = incidents(customerid) of parentcustomerid_account}}: lookup "
                     "\"parentcustomerid_account\" does not exist on contact");
    world_run_expect(CTL("template", "render", "good", "--for", "contact:" C1), 0, "سلام علی",
                     NULL);
    unlink(conf);
    pkf_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank_text_fails_the_sms),
        cmocka_unit_test(test_ctl_says_what_smsysd_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
