/* Integration test against an SMPP implementation that is not ours: the
 * npm package "smpp" (test/peers, installed by tools/install-deps) running
 * test/peers/smsc.js. It answers with hex ids and reports receipts with
 * decimal ids, by TLV and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/smpp_receipt.h"
#include "smsys/smpp_session.h"
#include "../lib/testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The node process, stopped by the group teardown if an assertion failed
 * before tu_stop. */
static pid_t node_pid;

static int stop_node(void **state)
{
    (void)state;
    if (node_pid > 0)
        tu_stop(node_pid);
    node_pid = 0;
    return 0;
}

struct peer_world {
    uv_loop_t loop;
    struct smpp_session *s;
    int closed, nok, ncb, nrcpt;
    char ids[8][70];
    char rids[8][70];
    int rstate[8];
};

/* The first executable "node" on PATH, or NULL. */
static const char *find_node(void)
{
    static char path[4096];
    const char *p = getenv("PATH");
    while (p && *p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(path, sizeof(path), "%.*s/node", (int)n, p);
        if (access(path, X_OK) == 0)
            return path;
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

static void peer_submit_cb(void *ud, int err, uint32_t status, const char *msgid)
{
    struct peer_world *w = ud;
    if (err == 0 && w->nok < 8)
        snprintf(w->ids[w->nok++], sizeof(w->ids[0]), "%s", msgid);
    w->ncb++;
}

static void peer_deliver_cb(struct smpp_session *s, const struct smpp_pdu *p, uint64_t token,
                            void *ud)
{
    struct peer_world *w = ud;
    assert_true(smpp_is_receipt(p));
    struct smpp_receipt r;
    assert_int_equal(smpp_receipt_parse(p, &r), 0);
    if (w->nrcpt < 8) {
        snprintf(w->rids[w->nrcpt], sizeof(w->rids[0]), "%s", r.id);
        w->rstate[w->nrcpt++] = r.state;
    }
    /* stored "durably" (here: in w) -> now answer */
    assert_int_equal(smpp_session_deliver_ack(s, token, 0), 0);
}

static void peer_close_cb(void *ud)
{
    ((struct peer_world *)ud)->closed = 1;
}

static void run_against_node(enum smpp_bind_mode mode)
{
    const char *node = find_node();
    assert_non_null(node); /* tools/install-deps installs nodejs */
    char modules[4096];
    snprintf(modules, sizeof(modules), "%s", tu_src("test/peers/node_modules/smpp/package.json"));
    assert_int_equal(access(modules, R_OK), 0); /* run tools/install-deps */
    int port = tu_free_port();
    char portstr[16], logf[128], script[4096];
    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(logf, sizeof(logf), "/tmp/smpp-node-peer-%d.jsonl", (int)getpid());
    snprintf(script, sizeof(script), "%s", tu_src("test/peers/smsc.js"));
    char *argv[] = {(char *)node, script, portstr, NULL};
    pid_t pid = tu_spawn(argv, logf, port, 10000);
    assert_true(pid > 0);
    node_pid = pid;

    struct peer_world *w = calloc(1, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    struct smpp_session_opts o = {.host = "127.0.0.1",
                                  .port = port,
                                  .system_id = "smsys",
                                  .password = "secret",
                                  .bind = mode,
                                  .window = 2};
    struct smpp_session_cbs cbs = {.deliver_cb = peer_deliver_cb};
    assert_int_equal(smpp_session_new(&w->loop, &o, &cbs, w, &w->s), 0);
    /* GSM text, and Persian in UCS-2 */
    static const uint8_t fa[] = {0x06, 0x33, 0x06, 0x44, 0x06, 0x27, 0x06, 0x45};
    const char *dst[3] = {"989121000001", "989121000002", "989121000003"};
    for (int i = 0; i < 3; i++) {
        struct smpp_sm sm = {0};
        sm.source_addr = "3000";
        sm.dest_ton = 1;
        sm.dest_npi = 1;
        sm.dest_addr = dst[i];
        sm.registered_delivery = 1;
        if (i == 2) {
            sm.data_coding = 8;
            sm.short_message = fa;
            sm.sm_length = sizeof(fa);
        } else {
            sm.short_message = (const uint8_t *)"hello node";
            sm.sm_length = 10;
        }
        assert_int_equal(smpp_session_submit(w->s, &sm, peer_submit_cb, w), 0);
    }
    for (int r = 0; r < 250 && (w->ncb < 3 || w->nrcpt < 3); r++) {
        int f = 0;
        tu_run_until(&w->loop, &f, 20);
    }
    assert_int_equal(w->nok, 3);
    assert_int_equal(w->nrcpt, 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(w->rstate[k], SMPP_STATE_DELIVERED);
        int found = 0;
        for (int i = 0; i < 3; i++)
            found += smpp_msgid_match(w->ids[i], w->rids[k]) > 0;
        assert_int_equal(found, 1); /* hex id matched to its decimal receipt */
    }
    smpp_session_close(w->s, peer_close_cb, w);
    assert_int_equal(tu_run_until(&w->loop, &w->closed, 5000), 0);
    assert_int_equal(tu_loop_handles(&w->loop), 0);
    assert_int_equal(tu_loop_close(&w->loop), 0);
    tu_stop(pid);
    node_pid = 0;

    /* What the other implementation saw. */
    FILE *f = fopen(logf, "r");
    assert_non_null(f);
    char line[4096];
    int submits = 0, resp_ok = 0, unbinds = 0, binds = 0, persian = 0;
    while (fgets(line, sizeof(line), f)) {
        cJSON *j = cJSON_Parse(line);
        if (j == NULL)
            continue; /* node may print warnings */
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "event"));
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "text"));
        if (ev && strcmp(ev, "bind") == 0 && cJSON_IsTrue(ok))
            binds++;
        if (ev && strcmp(ev, "submit_sm") == 0) {
            submits++;
            if (text && strcmp(text, "سلام") == 0)
                persian++;
        }
        if (ev && strcmp(ev, "deliver_sm_resp") == 0 && cJSON_IsNumber(st) && st->valuedouble == 0)
            resp_ok++;
        if (ev && strcmp(ev, "unbind") == 0)
            unbinds++;
        cJSON_Delete(j);
    }
    fclose(f);
    unlink(logf);
    assert_int_equal(binds, mode == SMPP_BIND_TX_RX ? 2 : 1);
    assert_int_equal(submits, 3);
    assert_int_equal(persian, 1);
    assert_int_equal(resp_ok, 3);
    assert_int_equal(unbinds, mode == SMPP_BIND_TX_RX ? 2 : 1);
    free(w);
}

static void test_node_transceiver(void **state)
{
    (void)state;
    run_against_node(SMPP_BIND_TRX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_transceiver),
    };
    return cmocka_run_group_tests(tests, NULL, stop_node);
}
