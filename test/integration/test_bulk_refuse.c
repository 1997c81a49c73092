/* test_bulk_refuse.c - one recipient Dynamics refuses never stops a bulk
 * send. The world of test_bulk_world.h (dvemu, smsysd as a process,
 * smscsim, PostgreSQL) with a static list of 300 contacts and [bulk]
 * chunk = 100, so a bulk is three CreateMultiple chunks. dvemu's fault
 * rules (/_emu/faults) make Dynamics refuse chosen SMS records the way a
 * plug-in or a blacklist would, and its lookup check refuses a record
 * bound to a contact deleted after the expansion. Each case checks:
 *  - every other member gets exactly one message (smscsim's log), the
 *    refused ones none;
 *  - the bulk ends Completed in Dynamics with smsys_failed counting them;
 *  - the refused member's message is Failed in PostgreSQL with Dynamics'
 *    error text, a note on the bulk record names the recipient and the
 *    reason, and smsysctl bulk preview counts them.
 * A record that already exists under the member's id is not a refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smsys/bulk.h"
#include "test_bulk_world.h"

#define NMEM 300
#define LIST "15000000-0000-4000-8000-0000000000f1"
#define MSG  "Recipient is on the company blacklist (plug-in smsys.Blacklist)."

static void cid(int i, char *out, size_t len)
{
    snprintf(out, len, "c1000000-0000-4000-8000-%012d", i);
}

static void seed(FILE *o, int port)
{
    fputs("{\"smsys_smssettings\":[", o);
    bw_seed_account(o, BW_ACC, "SMSC", 1, 1, port, NULL, NULL);
    fputs("],\"smsys_smsnumbers\":[{\"smsys_number\":\"" BW_LINE "\",\"smsys_isdefault\":true,"
          "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" BW_ACC ")\"}],"
          "\"contacts\":[",
          o);
    for (int i = 0; i < NMEM; i++) {
        char id[40];
        cid(i, id, sizeof(id));
        fprintf(o,
                "%s{\"contactid\":\"%s\",\"firstname\":\"F%d\",\"lastname\":\"L%d\","
                "\"mobilephone\":\"0912000%04d\"}",
                i ? "," : "", id, i, i, i);
    }
    fputs("],\"lists\":[{\"listid\":\"" LIST "\",\"listname\":\"Refuse\",\"type\":false,"
          "\"createdfromcode\":2}],\"_links\":[",
          o);
    for (int i = 0; i < NMEM; i++) {
        char id[40];
        cid(i, id, sizeof(id));
        fprintf(o, "%s{\"nav\":\"listcontact_association\",\"left\":\"" LIST "\",\"right\":\"%s\"}",
                i ? "," : "", id);
    }
    fputs("]}\n", o);
}

/* [bulk] chunk = 100: the world's config has no such setting, but its
 * quiet-hours value ends a line of [sending], so a section may be opened
 * there and [sending] reopened after it (its other keys follow). */
#define CHUNKED_CONF "\n[bulk]\nchunk = 100\n[sending]"

static int setup(void **state)
{
    (void)state;
    bw_open("brefuse", seed, CHUNKED_CONF);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bw_close();
    return 0;
}

/* The fault control API of dvemu (no token). */
static long faults(const char *method, const char *body, cJSON **out)
{
    return world_dv_ctl(&w.f.emu, method, "/_emu/faults", body, out);
}

/* Dynamics refuses the SMS record of member i (by its number). */
static void refuse_member(int i)
{
    char body[400];
    snprintf(body, sizeof(body),
             "{\"entity_set\":\"smsys_smses\",\"match\":{\"smsys_phonenumber\":"
             "\"+98912000%04d\"},\"status\":400,\"code\":\"0x80040265\",\"message\":\"" MSG "\"}",
             i);
    assert_int_equal(faults("POST", body, NULL), 204);
}

/* Total hits of the fault rules now set. */
static int fault_hits(void)
{
    cJSON *l = NULL;
    assert_int_equal(faults("GET", NULL, &l), 200);
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, l)
    {
        n += bw_iget(r, "hits");
    }
    cJSON_Delete(l);
    return n;
}

static void bulk_create(const char *id, const char *name, const char *text)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"smsys_bulksmsid\":\"%s\",\"smsys_name\":\"%s\",\"smsys_status\":2,"
             "\"description\":\"%s\",\"smsys_listid@odata.bind\":\"/lists(" LIST ")\"}",
             id, name, text);
    bw_post("smsys_bulksmses", body);
}

/* The refusal notes on the bulk record, their texts joined (caller frees),
 * and how many there are. */
static char *notes_of(const char *bulk, int *n)
{
    char path[300];
    snprintf(path, sizeof(path),
             "annotations?$select=subject,notetext&$filter=_objectid_value eq %s", bulk);
    cJSON *j = bw_get(path);
    struct buf b = BUF_INIT;
    *n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "value"))
    {
        const char *s = jstr(r, "subject"), *t = jstr(r, "notetext");
        if (s && strstr(s, "refused by Dynamics") && t) {
            buf_printf(&b, "%s\n", t);
            (*n)++;
        }
    }
    cJSON_Delete(j);
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

/* Asserts the outcome of a bulk with prefix-texts "<p> F<i>": refused[i]
 * members got nothing and failed with why, everyone else exactly once. */
static void check_bulk(const char *bulk, const char *p, const int *refused, int nref,
                       const char *why)
{
    int ok = NMEM - nref;
    cJSON *row = bw_wait_row(bulk, BULK_COMPLETED, NMEM, ok, ok, 0, 120000);
    assert_int_equal(bw_iget(row, "smsys_failed"), nref);
    cJSON_Delete(row);

    cJSON *seen = bw_seen(p);
    assert_int_equal(cJSON_GetArraySize(seen), ok);
    for (int i = 0; i < NMEM; i++) {
        char key[96];
        snprintf(key, sizeof(key), "98912000%04d|%s F%d", i, p, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        int bad = 0;
        for (int k = 0; k < nref; k++)
            bad |= refused[k] == i;
        if (bad) {
            assert_null(c);
            continue;
        }
        if (c == NULL)
            fail_msg("member %d never received its message", i);
        assert_int_equal(c->valueint, 1);
    }
    cJSON_Delete(seen);

    /* PostgreSQL: the refused members' messages Failed with the reason */
    char sql[600];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_message WHERE bulk_id = '%s' AND state = 6 AND "
             "strpos(last_error, 'Dynamics refused the SMS record: ') = 1 AND "
             "strpos(last_error, '%s') > 0",
             bulk, why);
    assert_int_equal(bw_int(sql), nref);
    for (int k = 0; k < nref; k++) {
        snprintf(sql, sizeof(sql),
                 "SELECT q.state FROM smsys_message q JOIN smsys_bulk_member m ON m.message_id = "
                 "q.id WHERE m.bulk_id = '%s' AND q.recipient = '+98912000%04d'",
                 bulk, refused[k]);
        assert_int_equal(bw_int(sql), 6);
    }
    snprintf(sql, sizeof(sql),
             "SELECT last_error FROM smsys_message WHERE bulk_id = '%s' AND state = 6 LIMIT 1",
             bulk);
    print_message("refused message: %s\n", bw_str(sql));

    /* the bulk record: notes name each refused recipient with the reason */
    int nnotes = 0;
    char *notes = notes_of(bulk, &nnotes);
    print_message("%d refusal note(s):\n%s", nnotes, notes);
    assert_true(nnotes >= 1);
    int named = 0;
    for (int k = 0; k < nref; k++) {
        char num[32];
        snprintf(num, sizeof(num), "+98912000%04d (contact ", refused[k]);
        named += strstr(notes, num) != NULL;
    }
    assert_int_equal(named, nref);
    assert_non_null(strstr(notes, why));
    free(notes);
}

#define BULK_1 "b0000000-0000-4000-8000-0000000000f1"

static void test_one_member_refused(void **state)
{
    (void)state;
    assert_int_equal(faults("DELETE", NULL, NULL), 204);
    refuse_member(123);
    bulk_create(BULK_1, "One", "O {{firstname}}");
    int bad[] = {123};
    check_bulk(BULK_1, "O", bad, 1, MSG);
    int nn = 0;
    char *notes = notes_of(BULK_1, &nn);
    assert_int_equal(nn, 1);
    assert_non_null(strstr(notes, "1 recipient refused by Dynamics: +989120000123 (contact "));
    free(notes);
    /* smsysctl bulk preview says it too */
    char cmd[1400], outp[300];
    snprintf(outp, sizeof(outp), "%s/preview.txt", w.dir);
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s' bulk preview " BULK_1 " > '%s' 2>&1",
             tu_bin("smsysctl"), w.conf, outp);
    assert_int_equal(system(cmd), 0);
    char *out = bw_slurp(outp);
    print_message("smsysctl bulk preview:\n%s", out);
    assert_non_null(strstr(out, "refused by Dynamics: 1 (their messages are Failed), e.g. "
                                "+989120000123: Dynamics refused the SMS record: "));
    assert_non_null(strstr(out, MSG));
    free(out);
    /* the refused row was narrowed down: its chunk of 100 refused whole,
     * then halves; one request more per level, not one per row */
    int hits = fault_hits();
    print_message("fault rule hits (refused requests) for 1 bad row in a chunk of 100: %d\n", hits);
    assert_true(hits >= 7 && hits <= 8);
}

#define BULK_2 "b0000000-0000-4000-8000-0000000000f2"

static void test_scattered_across_chunks(void **state)
{
    (void)state;
    assert_int_equal(faults("DELETE", NULL, NULL), 204);
    int bad[] = {0, 7, 8, 150, 299};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        refuse_member(bad[k]);
    bulk_create(BULK_2, "Scattered", "S {{firstname}}");
    check_bulk(BULK_2, "S", bad, 5, MSG);
    int nn = 0;
    char *notes = notes_of(BULK_2, &nn);
    /* one note per chunk that had refusals: 0, 7, 8 | 150 | 299 */
    assert_int_equal(nn, 3);
    assert_non_null(strstr(notes, "3 recipients refused by Dynamics: "));
    free(notes);
}

#define BULK_3 "b0000000-0000-4000-8000-0000000000f3"

/* The contact is deleted after the expansion and before its record is
 * created: Dynamics refuses the lookup (404 "contact With Id = ... Does
 * Not Exist"). To get between the two, a first rule answers 503 to every
 * record of the bulk: the chunk stays held (a temporary error), and once
 * the contact is gone and the rule cleared, the held chunk is resumed. */
static void test_contact_deleted_after_expansion(void **state)
{
    (void)state;
    assert_int_equal(faults("DELETE", NULL, NULL), 204);
    assert_int_equal(faults("POST",
                            "{\"entity_set\":\"smsys_smses\",\"match\":{\"smsys_bulksmsid\":"
                            "\"" BULK_3 "\"},\"status\":503,\"code\":\"0x80040216\","
                            "\"message\":\"Service unavailable (test)\"}",
                            NULL),
                     204);
    bulk_create(BULK_3, "Deleted", "X {{firstname}}");
    int held = 0;
    for (int t = 0; t < 60000 && !held; t += 100) {
        held = fault_hits() >= 1 &&
               bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_3 "'") >= 100;
        if (!held)
            uv_sleep(100);
    }
    assert_true(held);
    assert_int_equal(bw_seen_total("X "), 0); /* held: nothing handed over */
    /* member 42 of the held chunk: its contact is deleted */
    const char *m = bw_str("SELECT member_id FROM smsys_bulk_member WHERE bulk_id = '" BULK_3
                           "' AND step = 2 ORDER BY seq LIMIT 1 OFFSET 42");
    assert_int_equal(strlen(m), 36);
    char member[37], path[80];
    snprintf(member, sizeof(member), "%s", m);
    int idx = (int)strtol(member + 24, NULL, 10); /* c1000000-0000-4000-8000-<i> */
    snprintf(path, sizeof(path), "contacts(%s)", member);
    assert_int_equal(bw_req("DELETE", path, NULL, NULL), 204);
    assert_int_equal(faults("DELETE", NULL, NULL), 204);
    int bad[] = {idx};
    check_bulk(BULK_3, "X", bad, 1, "Does Not Exist");
    int nn = 0;
    char *notes = notes_of(BULK_3, &nn);
    assert_non_null(strstr(notes, member));
    free(notes);
}

#define BULK_4 "b0000000-0000-4000-8000-0000000000f4"

/* Not a refusal: a record that already exists under the member's own
 * deterministic id (an earlier attempt made it and its answer was lost)
 * conflicts (412) and is narrowed down like a refusal, but the member is
 * released: it gets its message and nobody fails. */
static void test_record_exists_is_not_refused(void **state)
{
    (void)state;
    assert_int_equal(faults("DELETE", NULL, NULL), 204);
    char key[80], act[37], body[300], member[40];
    cid(77, member, sizeof(member));
    snprintf(key, sizeof(key), "contact:%s", member);
    assert_int_equal(bulk_activity_id(BULK_4, key, act), 0);
    snprintf(body, sizeof(body), "{\"activityid\":\"%s\",\"subject\":\"made earlier\"}", act);
    bw_post("smsys_smses", body);
    bulk_create(BULK_4, "Exists", "E {{firstname}}");
    /* the list may have lost the contact an earlier test deleted */
    cJSON *row = bw_wait_row(BULK_4, BULK_COMPLETED, -1, -1, -1, 0, 120000);
    int total = bw_iget(row, "smsys_total");
    assert_true(total >= NMEM - 1);
    assert_int_equal(bw_iget(row, "smsys_sent"), total);
    assert_int_equal(bw_iget(row, "smsys_delivered"), total);
    assert_int_equal(bw_iget(row, "smsys_failed"), 0);
    cJSON_Delete(row);
    cJSON *seen = bw_seen("E ");
    assert_int_equal(cJSON_GetArraySize(seen), total);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(seen, "989120000077|E F77"));
    cJSON_Delete(seen);
    int nn = 0;
    free(notes_of(BULK_4, &nn));
    assert_int_equal(nn, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_member_refused),
        cmocka_unit_test(test_scattered_across_chunks),
        cmocka_unit_test(test_contact_deleted_after_expansion),
        cmocka_unit_test(test_record_exists_is_not_refused),
    };
    if (getenv("SMSYS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("SMSYS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
