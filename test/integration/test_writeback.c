/* test_writeback.c - the write-back writer against the real dvemu and a
 * real PostgreSQL: coalescing (three state changes -> one write of the
 * latest), 1000-row batches counted on the emulator, a Dynamics outage
 * (emulator stopped while states change, restarted on its data) with every
 * row written afterwards, the $batch fallback with a deleted record (404
 * dropped, the rest written), 429s from --limit-requests absorbed, and
 * records Dynamics refuses (deleted: dropped; refused by a plug-in, a
 * dvemu fault rule: kept with the error and retried) narrowed down so the
 * rest of the chunk is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "pk_fixture.h"
#include "smsys/writeback.h"

#define ACC "a1000000-0000-0000-0000-0000000000a1"

struct wait {
    int done;
    int rc;
    size_t n;
    int64_t ids[3000];
};

static void wb_cb(int rc, size_t taken, void *ud)
{
    struct wait *w = ud;
    w->rc = rc;
    w->n = taken;
    w->done = 1;
}

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct wait *w = ud;
    if (rc != 0)
        print_message("enqueue: %s\n", err ? err->detail : "?");
    w->rc = rc;
    for (size_t i = 0; i < n && i < 3000; i++)
        w->ids[i] = res[i].id;
    w->n = n;
    w->done = 1;
}

static void claim_cb(int rc, const struct queue_msg *m, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct wait *w = ud;
    (void)err;
    w->rc = rc;
    for (size_t i = 0; i < n && i < 3000; i++)
        w->ids[i] = m[i].id;
    w->n = n;
    w->done = 1;
}

static void rec_cb(int rc, const struct queue_outcome *o, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct wait *w = ud;
    (void)o;
    (void)err;
    w->rc = rc;
    w->n = n;
    w->done = 1;
}

static void rcpt_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct wait *w = ud;
    (void)matched;
    (void)err;
    w->rc = rc;
    w->n = (size_t)changed;
    w->done = 1;
}

static void id_of(int i, char out[37])
{
    snprintf(out, 37, "5b000000-0000-0000-0000-%012d", i);
}

/* n SMS records in Dynamics (CreateMultiple, 1000 per request), the
 * account in PostgreSQL, and n Queued messages for them. */
static void arrange(struct pkf *f, int n)
{
    pkf_exec(f, "INSERT INTO smsys_account (id, name, provider, max_retries) VALUES ('" ACC
                "', 'A', 'smpp', 3)");
    for (int start = 0; start < n; start += 1000) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"Targets\":[");
        for (int i = start; i < n && i < start + 1000; i++) {
            char id[37];
            id_of(i, id);
            buf_printf(&b,
                       "%s{\"@odata.type\":\"Microsoft.Dynamics.CRM.smsys_sms\",\"activityid\":"
                       "\"%s\",\"description\":\"m\",\"smsys_direction\":1,\"smsys_status\":2}",
                       i > start ? "," : "", id);
        }
        buf_puts(&b, "]}");
        pkf_post(f, "smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple", b.data);
        buf_free(&b);
    }
    static char ids[3000][37];
    static struct queue_new m[3000];
    assert_true(n <= 3000);
    for (int i = 0; i < n; i++) {
        id_of(i, ids[i]);
        m[i] = (struct queue_new){.idem_key = ids[i],
                                  .activity_id = ids[i],
                                  .account_id = ACC,
                                  .recipient = "+989121234567",
                                  .body = "m",
                                  .segments = 1,
                                  .state = QUEUE_QUEUED};
    }
    for (int start = 0; start < n; start += 1000) {
        struct wait w = {0};
        assert_int_equal(queue_enqueue(f->q, m + start,
                                       (size_t)(n - start < 1000 ? n - start : 1000), enq_cb, &w),
                         0);
        assert_int_equal(tu_run_until(&f->loop, &w.done, 20000), 0);
        assert_int_equal(w.rc, 0);
    }
}

/* Claims everything and records it accepted (Sent) with provider ids. */
static void send_all(struct pkf *f, int n)
{
    struct wait w = {0};
    assert_int_equal(queue_claim(f->q, "t", NULL, 0, (unsigned)n, 60000, claim_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, 20000), 0);
    assert_int_equal((int)w.n, n);
    static struct queue_result r[3000];
    static char pids[3000][16];
    for (int i = 0; i < n; i++) {
        snprintf(pids[i], sizeof(pids[i]), "P%d", i);
        r[i] =
            (struct queue_result){.id = w.ids[i], .rc = 0, .provider_id = pids[i], .segments = 1};
    }
    struct wait w2 = {0};
    assert_int_equal(queue_record_results(f->q, r, (size_t)n, rec_cb, &w2), 0);
    assert_int_equal(tu_run_until(&f->loop, &w2.done, 20000), 0);
    assert_int_equal(w2.rc, 0);
}

static void deliver(struct pkf *f, int from, int to)
{
    static struct conn_state st[3000];
    static char pids[3000][16];
    for (int i = from; i < to; i++) {
        snprintf(pids[i], sizeof(pids[i]), "P%d", i);
        st[i - from] = (struct conn_state){
            .provider_id = pids[i], .status = CONN_ST_DELIVERED, .done_at = 1795000000};
    }
    struct wait w = {0};
    assert_int_equal(queue_apply_states(f->q, ACC, st, (size_t)(to - from), rcpt_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, 20000), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal((int)w.n, to - from);
}

static size_t run_round(struct pkf *f, struct writeback *wb)
{
    struct wait w = {0};
    assert_int_equal(writeback_run(wb, wb_cb, &w), 0);
    assert_int_equal(tu_run_until(&f->loop, &w.done, 60000), 0);
    return w.n;
}

static void drain(struct pkf *f, struct writeback *wb, unsigned timeout_ms)
{
    uint64_t end = uv_now(&f->loop) + timeout_ms;
    while (pkf_int(f, "SELECT count(*) FROM smsys_writeback") > 0) {
        if (uv_now(&f->loop) > end)
            fail_msg("outbox not drained: %lld rows left",
                     pkf_int(f, "SELECT count(*) FROM smsys_writeback"));
        if (run_round(f, wb) == 0) {
            uv_sleep(100);
            uv_update_time(&f->loop);
        }
    }
}

static int status_of(struct pkf *f, int i, int *statecode)
{
    char id[37], path[256];
    id_of(i, id);
    snprintf(path, sizeof(path), "smsys_smses(%s)?$select=smsys_status,statecode", id);
    cJSON *j = pkf_get(f, path);
    int st = cJSON_GetObjectItem(j, "smsys_status")->valueint;
    if (statecode)
        *statecode = cJSON_GetObjectItem(j, "statecode")->valueint;
    cJSON_Delete(j);
    return st;
}

/* Count of records with a status, read from Dynamics in one GET. */
static int count_status(struct pkf *f, int status)
{
    char path[256];
    snprintf(path, sizeof(path), "smsys_smses?$select=activityid&$filter=smsys_status%%20eq%%20%d",
             status);
    cJSON *j = pkf_get(f, path);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "value"));
    cJSON_Delete(j);
    return n;
}

static void test_coalescing(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "wbco", NULL, 0);
    arrange(&f, 1);
    send_all(&f, 1);
    deliver(&f, 0, 1);
    /* Queued, Sent, Delivered: one outbox row of version 3. */
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_writeback"), 1);
    assert_int_equal(pkf_int(&f, "SELECT version FROM smsys_writeback"), 3);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    double sms0 = pkf_stat(&f, "by_entity_set", "smsys_smses");
    double patch0 = pkf_stat(&f, "by_method", "PATCH");
    assert_int_equal(run_round(&f, wb), 1);
    /* One request on the SMS table (the client's token fetch aside). */
    assert_int_equal(pkf_stat(&f, "by_entity_set", "smsys_smses") - sms0, 1);
    assert_int_equal(pkf_stat(&f, "by_method", "PATCH") - patch0, 0);
    assert_int_equal(writeback_stats(wb)->requests, 1);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_writeback"), 0);
    cJSON *j = pkf_get(&f, "smsys_smses(5b000000-0000-0000-0000-000000000000)?$select="
                           "smsys_status,statecode,statuscode,smsys_providermessageid,"
                           "smsys_attempts,smsys_segments,smsys_sentat,smsys_deliveredat,"
                           "smsys_lasterror");
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_status")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(j, "statecode")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(j, "statuscode")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_providermessageid")->valuestring, "P0");
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_attempts")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(j, "smsys_segments")->valueint, 1);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "smsys_sentat")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "smsys_deliveredat")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "smsys_lasterror")));
    cJSON_Delete(j);
    /* Nothing left: an idle round costs no Dynamics request. */
    assert_int_equal(run_round(&f, wb), 0);
    assert_int_equal(writeback_stats(wb)->requests, 1);
    writeback_free(wb);
    pkf_close(&f);
}

static void test_batches_of_1000(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "wbbig", NULL, 0);
    arrange(&f, 2500);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    double req0 = pkf_stat(&f, "requests", NULL);
    assert_int_equal(run_round(&f, wb), 1000);
    assert_int_equal(run_round(&f, wb), 1000);
    assert_int_equal(run_round(&f, wb), 500);
    assert_int_equal(run_round(&f, wb), 0);
    double used = pkf_stat(&f, "requests", NULL) - req0 - 1; /* minus the first stats GET */
    assert_int_equal(writeback_stats(wb)->requests, 3);
    assert_int_equal(writeback_stats(wb)->rows_written, 2500);
    assert_true(used <= 3 + 3); /* 3 writes (+ the stats GETs themselves) */
    assert_int_equal(count_status(&f, 3), 2500);
    print_message("write-back of 2500 records: %llu requests (%.4f per record)\n",
                  (unsigned long long)writeback_stats(wb)->requests,
                  (double)writeback_stats(wb)->requests / 2500);
    writeback_free(wb);
    pkf_close(&f);
}

static void test_outage(void **state)
{
    (void)state;
    struct pkf f = {0};
    snprintf(f.emu.data_dir, sizeof(f.emu.data_dir), "/tmp/pk-wb-outage-%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", f.emu.data_dir, f.emu.data_dir);
    assert_int_equal(system(cmd), 0);
    pkf_open(&f, "wbout", NULL, 0);
    arrange(&f, 300);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    drain(&f, wb, 20000);
    assert_int_equal(count_status(&f, 3), 300);

    /* Dynamics goes away; states keep changing. */
    pkf_dv_stop(&f);
    send_all(&f, 300);
    deliver(&f, 0, 150);
    assert_int_equal(run_round(&f, wb), 300);
    assert_int_equal(writeback_stats(wb)->rows_failed, 300);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_writeback WHERE last_error IS NOT "
                                 "NULL AND next_attempt_at > now()"),
                     300);
    /* Nothing due while backing off: no request is attempted. */
    assert_int_equal(run_round(&f, wb), 0);

    /* Back: every row is written, with its latest state. */
    pkf_dv_start(&f, NULL);
    drain(&f, wb, 30000);
    assert_int_equal(count_status(&f, 5), 150);
    assert_int_equal(count_status(&f, 4), 150);
    int sc = -1;
    assert_int_equal(status_of(&f, 0, &sc), 5);
    assert_int_equal(sc, 1);
    assert_int_equal(writeback_stats(wb)->rows_dropped, 0);
    writeback_free(wb);
    pkf_close(&f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f.emu.data_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_batch_fallback_404(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "wbfb", NULL, /*force_batch=*/1);
    arrange(&f, 50);
    /* A user deletes one record before its write-back. */
    assert_int_equal(
        pkf_req(&f, "DELETE", "smsys_smses(5b000000-0000-0000-0000-000000000007)", NULL, NULL),
        204);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    double batches0 = pkf_stat(&f, "batches", NULL);
    drain(&f, wb, 20000);
    assert_true(pkf_stat(&f, "batches", NULL) - batches0 >= 1);
    assert_int_equal(writeback_stats(wb)->rows_dropped, 1);
    assert_int_equal(writeback_stats(wb)->rows_written, 49);
    assert_int_equal(count_status(&f, 3), 49);
    /* Not re-created. */
    assert_int_equal(
        pkf_req(&f, "GET", "smsys_smses(5b000000-0000-0000-0000-000000000007)", NULL, NULL), 404);
    writeback_free(wb);
    pkf_close(&f);
}

static void test_throttled(void **state)
{
    (void)state;
    struct pkf f = {0};
    const char *lim[] = {"--limit-requests", "4", "--limit-window", "2", NULL};
    pkf_open(&f, "wb429", lim, 0);
    uv_sleep(2100); /* the token request of the setup leaves the window */
    arrange(&f, 9); /* 1 CreateMultiple */
    uv_sleep(2100);
    /* 9 rows, one per request: more than twice the window's budget. */
    struct writeback_opts o = {.batch = 1};
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, &o, &wb), 0);
    drain(&f, wb, 60000);
    assert_true(pkf_stat(&f, "throttled_429", NULL) >= 1);
    assert_int_equal(writeback_stats(wb)->rows_failed, 0);
    assert_int_equal(writeback_stats(wb)->rows_written, 9);
    assert_int_equal(count_status(&f, 3), 9);
    print_message("429s served: %.0f, rows failed: 0\n", pkf_stat(&f, "throttled_429", NULL));
    writeback_free(wb);
    pkf_close(&f);
}

/* UpdateMultiple refuses a whole chunk when one record is gone (as
 * Dataverse does): the writer halves the chunk until the deleted record
 * stands alone, drops it and writes the rest. */
static void test_update_multiple_404(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "wbum", NULL, 0);
    arrange(&f, 20);
    assert_int_equal(
        pkf_req(&f, "DELETE", "smsys_smses(5b000000-0000-0000-0000-000000000003)", NULL, NULL),
        204);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    drain(&f, wb, 20000);
    assert_int_equal(writeback_stats(wb)->rows_dropped, 1);
    assert_int_equal(writeback_stats(wb)->rows_written, 19);
    /* 1 refused + halves 10|10, 5|5, 2|3, 1|2, 1|1 = 11 requests. */
    assert_int_equal(writeback_stats(wb)->requests, 11);
    assert_int_equal(count_status(&f, 3), 19);
    assert_int_equal(
        pkf_req(&f, "GET", "smsys_smses(5b000000-0000-0000-0000-000000000003)", NULL, NULL), 404);
    writeback_free(wb);
    pkf_close(&f);
}

/* A plug-in refuses the update of one record (a dvemu fault rule, 400):
 * the chunk is narrowed down by the client, the 19 others are written in
 * the same round, and the refused row stays in the outbox with Dynamics'
 * error (not dropped: only a missing record is) until Dynamics takes it. */
static void test_refused_row_retried(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "wbref", NULL, 0);
    arrange(&f, 20);
    assert_int_equal(world_dv_ctl(&f.emu, "POST", "/_emu/faults",
                                  "{\"entity_set\":\"smsys_smses\",\"match\":{\"activityid\":"
                                  "\"5b000000-0000-0000-0000-000000000011\"},\"status\":400,"
                                  "\"code\":\"0x80040265\",\"message\":\"Locked by an approval "
                                  "process.\"}",
                                  NULL),
                     204);
    struct writeback *wb;
    assert_int_equal(writeback_new(&f.loop, f.q, f.dv, NULL, &wb), 0);
    assert_int_equal(run_round(&f, wb), 20);
    assert_int_equal(writeback_stats(wb)->rows_written, 19);
    assert_int_equal(writeback_stats(wb)->rows_failed, 1);
    assert_int_equal(writeback_stats(wb)->rows_dropped, 0);
    /* 0-19 refused, then halves 0-9|10-19, 10-14|15-19, 10-11|12-14, 10|11 */
    print_message("1 refused record in 20: %llu requests\n",
                  (unsigned long long)writeback_stats(wb)->requests);
    assert_int_equal(writeback_stats(wb)->requests, 9);
    assert_int_equal(count_status(&f, 3), 19);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_writeback WHERE activity_id = "
                                 "'5b000000-0000-0000-0000-000000000011' AND strpos(last_error, "
                                 "'Locked by an approval process.') > 0"),
                     1);
    /* the approval ends: the row goes through on a later round */
    assert_int_equal(world_dv_ctl(&f.emu, "DELETE", "/_emu/faults", NULL, NULL), 204);
    assert_int_equal(pkf_int(&f, "UPDATE smsys_writeback SET next_attempt_at = now() "
                                 "RETURNING 1"),
                     1);
    drain(&f, wb, 20000);
    assert_int_equal(writeback_stats(wb)->rows_written, 20);
    assert_int_equal(count_status(&f, 3), 20);
    writeback_free(wb);
    pkf_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalescing),
        cmocka_unit_test(test_batches_of_1000),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_batch_fallback_404),
        cmocka_unit_test(test_throttled),
        cmocka_unit_test(test_update_multiple_404),
        cmocka_unit_test(test_refused_row_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
