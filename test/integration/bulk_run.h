/* bulk_run.h - the world of the bulk tests that run the real smsysd
 * against a tools/bulk-fixture campaign and check the outcome end to end
 * (test_bulk_crash: kill -9 at each phase; test_bulk_outage: Dynamics,
 * provider and PostgreSQL outages while smsysd runs): the fixture, phase
 * predicates read from PostgreSQL, smsysd's config, and the final checks
 * against provsim's log and dvemu's records. One world per test binary
 * (file statics below); include after provsim_client.h and pk_fixture.h. */
#ifndef SMSYS_TEST_BULK_RUN_H
#define SMSYS_TEST_BULK_RUN_H

#include <sys/stat.h>

static struct pkf f;
static char dir[64], expect_path[256];
static struct world_smsysd sd;
static cJSON *fix; /* bulk-fixture's answer; freed by teardown */

static const char *fx_str(const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fix, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static long fx_num(const char *key, const char *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fix, key);
    if (sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static long long q(const char *sql)
{
    return pkf_int(&f, sql);
}

/* Polls fn until it is true (1) or ms pass; returns 1/0. */
static int wait_for(int (*fn)(void), unsigned ms)
{
    for (unsigned t = 0; t <= ms; t += 10) {
        if (fn())
            return 1;
        uv_sleep(10);
    }
    return 0;
}

/* What PostgreSQL and Dynamics say, for a failure message. */
static void dump_state(void)
{
    print_message("# bulk: %s\n",
                  pkf_str(&f, "SELECT state || ' expanded=' || expanded || ' sending=' || sending "
                              "|| ' last_error=' || coalesce(last_error, '-') || ' written=' || "
                              "coalesce(written::text, '-') FROM smsys_bulk"));
    print_message("# members by status/step: %s\n",
                  pkf_str(&f, "SELECT string_agg(k || ':' || n, ' ') FROM (SELECT status || '/' "
                              "|| step k, count(*) n FROM smsys_bulk_member GROUP BY 1 "
                              "ORDER BY 1) s"));
    print_message("# messages by state: %s\n",
                  pkf_str(&f, "SELECT string_agg(k || ':' || n, ' ') FROM (SELECT state::text k, "
                              "count(*) n FROM smsys_message GROUP BY 1 ORDER BY 1) s"));
    print_message("# message errors: %s\n",
                  pkf_str(&f, "SELECT string_agg(DISTINCT left(last_error, 120), ' | ') FROM "
                              "smsys_message WHERE last_error IS NOT NULL"));
}

/* Runs tools/bulk-fixture against dvemu; keeps its JSON answer in fix. */
static void run_fixture_at(struct pkf *at, int contacts, const char *name)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "'%s' --url %s --contacts %d --mode campaign --provider-url %s --expect '%s' "
             "--name '%s' --text 'Salam {{firstname}} {{lastname}}'",
             tu_bin("bulk-fixture"), at->emu.root, contacts, base, expect_path, name);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct buf out = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
        buf_append(&out, tmp, n);
    assert_int_equal(pclose(p), 0);
    buf_putc(&out, '\0');
    fix = cJSON_Parse(out.data);
    buf_free(&out);
    assert_non_null(fix);
    assert_true(fx_num("recipients", NULL) > contacts * 7 / 10);
}

/* A nextLink as pkf_req wants it: "/api/data/..." under the dvemu root. */
static char *rel_link(const struct pkf *at, const char *link)
{
    size_t rl = strlen(at->emu.root);
    return strdup(strncmp(link, at->emu.root, rl) == 0 ? link + rl : link);
}

static int has_table(void)
{
    return q("SELECT count(*) FROM pg_tables WHERE tablename = 'smsys_bulk'") == 1;
}

static int in_record_creation(void)
{
    return has_table() && q("SELECT count(*) FROM smsys_bulk_member WHERE step = 2") > 0 &&
           q("SELECT count(*) FROM smsys_bulk_member WHERE status = 0 AND step < 3") > 0;
}

static long long handed_over(void)
{
    return q("SELECT count(*) FROM smsys_message WHERE bulk_id IS NOT NULL "
             "AND state IN (4, 5, 6, 10, 21)");
}

static int in_late_sending(void)
{
    long long h = handed_over();
    return h >= fx_num("recipients", NULL) / 2 && h < fx_num("recipients", NULL);
}

static int completed(void)
{
    return q("SELECT count(*) FROM smsys_bulk WHERE state = 6") == 1;
}

/* The bulk record in dvemu ($select of the counters). */
static cJSON *bulk_record(void)
{
    char path[300];
    snprintf(path, sizeof(path),
             "smsys_bulksmses(%s)?$select=smsys_status,smsys_total,smsys_sent,"
             "smsys_delivered,smsys_failed,smsys_skipped,smsys_lasterror",
             fx_str("bulk"));
    return pkf_get(&f, path);
}

static long rec_num(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int record_final(void)
{
    cJSON *r = bulk_record();
    int ok = rec_num(r, "smsys_status") == 6 &&
             rec_num(r, "smsys_delivered") == fx_num("recipients", NULL);
    cJSON_Delete(r);
    return ok;
}

/* The group's setup: a private directory (tag) with dvemu's journal and
 * smsysd's config and log. */
static int br_setup(void **state, const char *tag)
{
    if (group_setup(state) != 0)
        return -1;
    world_mkdir(tag, dir, sizeof(dir));
    snprintf(f.emu.data_dir, sizeof(f.emu.data_dir), "%s/dv", dir);
    mkdir(f.emu.data_dir, 0700);
    world_smsysd_init(&sd, dir, "a");
    snprintf(expect_path, sizeof(expect_path), "%s/expect.txt", dir);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    return 0;
}

/* smsysd's config: fast polls everywhere; pace is the test's own [queue]
 * retry lines and [bulk] page/rate lines. */
static void br_write_conf(const char *queue, const char *bulk)
{
    char more[1024];
    snprintf(more, sizeof(more),
             "[pickup]\nwriteback_idle_ms = 100\n"
             "[queue]\naccounts_poll_ms = 300\nidle_claim_ms = 100\nlease_ms = 3000\n%s"
             "[sending]\nquiet_hours =\n"
             "[bulk]\npoll_interval_ms = 300\ncounters_interval_ms = 500\n%s"
             "[service]\ngrace_period_ms = 3000\n",
             queue, bulk);
    world_conf_write(sd.conf, &(struct world_conf){.dv_root = f.emu.root,
                                                   .dv_extra = "poll_interval_ms = 300\n",
                                                   .conninfo = f.conninfo,
                                                   .http_port = sd.http_port,
                                                   .more = more});
}

static int teardown(void **state)
{
    world_smsysd_stop(&sd);
    if (f.side)
        PQfinish(f.side);
    if (f.emu.pid > 0)
        pkf_dv_stop(&f);
    world_dv_free(&f.emu);
    cJSON_Delete(fix);
    world_cleanup();
    return group_teardown(state);
}

/* provsim's log: one line per accepted message; per number (the last 10
 * digits, whatever format the connector used) exactly one, nobody else.
 * Resends carrying the same localid are absorbed by the provider as
 * repeats (printed, not asserted). */
static void check_provider_log(void)
{
    char *want = world_slurp(expect_path);
    cJSON *count = cJSON_CreateObject();
    long expected = 0;
    for (char *save = NULL, *l = strtok_r(want, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(l);
        assert_true(n >= 10);
        cJSON_AddNumberToObject(count, l + n - 10, 0);
        expected++;
    }
    free(want);
    assert_int_equal(expected, fx_num("recipients", NULL));
    char *lg = world_slurp(logpath);
    long lines = 0, twice = 0, stranger = 0;
    for (char *save = NULL, *l = strtok_r(lg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        assert_non_null(j);
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(j, "to");
        assert_true(cJSON_IsString(to));
        size_t n = strlen(to->valuestring);
        assert_true(n >= 10);
        cJSON *c = cJSON_GetObjectItemCaseSensitive(count, to->valuestring + n - 10);
        if (c == NULL) {
            if (stranger++ < 5)
                print_message("not a recipient: %s\n", l);
        } else {
            cJSON_SetNumberValue(c, c->valuedouble + 1);
            if (c->valuedouble == 2 && twice++ < 5)
                print_message("sent twice: %s\n", l);
        }
        lines++;
        cJSON_Delete(j);
    }
    free(lg);
    long missed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, count) if (c->valuedouble == 0) missed++;
    cJSON_Delete(count);
    print_message("# provider log: %ld messages, %ld recipients, %ld missed, %ld twice, "
                  "%ld strangers\n",
                  lines, expected, missed, twice, stranger);
    struct reply st;
    http(&st, "GET", "/_sim/stats", NULL, NULL, NULL, NULL, 0);
    if (st.status == 200)
        print_message("# provsim kavenegar: %.0f send requests, %.0f HTTP 5xx, %.0f repeated "
                      "localids\n",
                      jnum(st.json, "providers.kavenegar.send_requests"),
                      jnum(st.json, "providers.kavenegar.http_5xx"),
                      jnum(st.json, "providers.kavenegar.duplicates"));
    reply_free(&st);
    assert_int_equal(stranger, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(missed, 0);
    assert_int_equal(lines, expected);
}

/* Exactly one SMS record per recipient in dvemu, linked to the bulk. */
static void check_records(void)
{
    char path[512];
    snprintf(path, sizeof(path),
             "smsys_smses?$select=activityid,_regardingobjectid_value,smsys_status"
             "&$filter=_smsys_bulksmsid_value%%20eq%%20%s",
             fx_str("bulk"));
    cJSON *seen = cJSON_CreateObject();
    long n = 0, dup = 0, not_delivered = 0;
    char *next = strdup(path);
    while (next) {
        cJSON *j = pkf_get(&f, next);
        free(next);
        next = NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "value"))
        {
            const cJSON *reg = cJSON_GetObjectItemCaseSensitive(it, "_regardingobjectid_value");
            assert_true(cJSON_IsString(reg));
            if (cJSON_GetObjectItemCaseSensitive(seen, reg->valuestring))
                dup++;
            else
                cJSON_AddTrueToObject(seen, reg->valuestring);
            if (rec_num(it, "smsys_status") != 5)
                not_delivered++;
            n++;
        }
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(j, "@odata.nextLink");
        if (cJSON_IsString(nl))
            next = rel_link(&f, nl->valuestring);
        cJSON_Delete(j);
    }
    cJSON_Delete(seen);
    print_message("# dvemu: %ld SMS records, %ld for an already seen member, %ld not Delivered\n",
                  n, dup, not_delivered);
    assert_int_equal(dup, 0);
    assert_int_equal(n, fx_num("recipients", NULL));
    assert_int_equal(not_delivered, 0);
}

/* The end state every bulk run must reach: each reachable member exactly
 * one message (provsim's log), one Delivered record each in Dynamics, one
 * delivered message each in PostgreSQL, the counters on the bulk record
 * right and the bulk Completed. */
static void check_outcome(void)
{
    check_provider_log();
    check_records();

    /* PostgreSQL: one message per recipient, all delivered */
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM smsys_message WHERE bulk_id = '%s'",
             fx_str("bulk"));
    assert_int_equal(q(sql), fx_num("recipients", NULL));
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT recipient) FROM smsys_message WHERE bulk_id = '%s' "
             "AND state = 5",
             fx_str("bulk"));
    assert_int_equal(q(sql), fx_num("recipients", NULL));

    /* the counters in Dynamics */
    cJSON *r = bulk_record();
    print_message("# bulk record: status %ld total %ld sent %ld delivered %ld failed %ld "
                  "skipped %ld\n",
                  rec_num(r, "smsys_status"), rec_num(r, "smsys_total"), rec_num(r, "smsys_sent"),
                  rec_num(r, "smsys_delivered"), rec_num(r, "smsys_failed"),
                  rec_num(r, "smsys_skipped"));
    assert_int_equal(rec_num(r, "smsys_status"), 6);
    assert_int_equal(rec_num(r, "smsys_total"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_sent"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_delivered"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_failed"), 0);
    assert_int_equal(rec_num(r, "smsys_skipped"), fx_num("skipped", "total"));
    cJSON_Delete(r);
}

#endif
