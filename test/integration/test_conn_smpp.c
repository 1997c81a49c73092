/* Integration tests of the SMPP connector (connectors/smpp*.c) over real
 * TCP against build/bin/smscsim, checking what the SMSC logged, and of
 * inbound multipart reassembly through mo_parts on a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/connector.h"
#include "smsys/error.h"
#include "smsys/smpp_receipt.h"
#include "smsys/text.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "smpp_fixture.h"
#include "mo_db.h"

#include <errno.h>

#define MAXN  1000
#define MAXEV 64

struct res {
    int got, rc, segments;
    char pid[80], detail[200];
};

struct ev {
    int kind;
    char id[80];
    int status;
    char text[2048], from[32];
    unsigned ref, total, seq;
    int dc;
    uint8_t raw[512];
    size_t raw_len;
    conn_ack_fn ack;
    void *token;
};

enum ack_mode { ACK_NOW = 0, ACK_HOLD, ACK_STORE };

struct world {
    uv_loop_t loop;
    struct simproc sim;
    const struct conn_ops *ops;
    struct conn *c;
    int closed, bound, throttled, down, down_rc;
    int nres, nbatches;
    struct res res[MAXN];
    struct ev ev[MAXEV];
    int nev;
    enum ack_mode ack_mode;
    /* ACK_STORE: parts go through mo_parts_add, acked after commit. */
    struct pg_pool *pool;
    int stored, complete, dups, hold_seq;
    char complete_text[2048];
};

static struct world *W;

static void store_cb(void *ud, int rc, enum mo_parts_outcome oc, const struct mo_parts_msg *m,
                     const struct smsys_err *err)
{
    (void)err;
    struct ev *e = ud;
    if (rc == 0) {
        W->stored++;
        if (oc == MO_PARTS_COMPLETE) {
            W->complete++;
            snprintf(W->complete_text, sizeof(W->complete_text), "%s", m->text);
        }
        W->dups += oc == MO_PARTS_DUPLICATE;
    }
    e->ack(e->token, rc); /* the SMSC hears of it only after the commit */
    e->ack = NULL;
}

static void store_part(struct ev *e)
{
    struct conn_mo part = {.from = e->from,
                           .to = "3000",
                           .part_ref = e->ref,
                           .part_total = e->total,
                           .part_seq = e->seq,
                           .raw = e->raw,
                           .raw_len = e->raw_len,
                           .data_coding = e->dc};
    assert_int_equal(mo_parts_add(W->pool, "acct-1", &part, store_cb, e), 0);
}

static void event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    struct world *w = ud;
    if (w->nev == MAXEV) { /* bulk tests: only count and ack */
        ack(token, 0);
        return;
    }
    struct ev *e = &w->ev[w->nev++];
    memset(e, 0, sizeof(*e));
    e->kind = ev->kind;
    if (ev->kind == CONN_EV_STATE) {
        snprintf(e->id, sizeof(e->id), "%s", ev->u.state.provider_id);
        e->status = ev->u.state.status;
    } else {
        const struct conn_mo *mo = &ev->u.mo;
        snprintf(e->from, sizeof(e->from), "%s", mo->from);
        if (mo->text)
            snprintf(e->text, sizeof(e->text), "%s", mo->text);
        e->ref = mo->part_ref;
        e->total = mo->part_total;
        e->seq = mo->part_seq;
        e->dc = mo->data_coding;
        assert_true(mo->raw_len <= sizeof(e->raw));
        memcpy(e->raw, mo->raw, mo->raw_len);
        e->raw_len = mo->raw_len;
    }
    e->ack = ack;
    e->token = token;
    if (w->ack_mode == ACK_NOW) {
        ack(token, 0);
        e->ack = NULL;
    } else if (w->ack_mode == ACK_STORE && e->kind == CONN_EV_MO && e->total > 0 &&
               (int)e->seq != w->hold_seq) {
        store_part(e);
    }
}

static void health_cb(void *ud, int rc, const char *detail)
{
    (void)detail;
    struct world *w = ud;
    if (rc == 0)
        w->bound++;
    else if (rc == SMSYS_ETHROTTLED)
        w->throttled++;
    else {
        w->down++;
        w->down_rc = rc;
    }
}

static void closed_cb(void *ud)
{
    ((struct world *)ud)->closed = 1;
}

static void spin(struct world *w, unsigned ms)
{
    int f = 0;
    tu_run_until(&w->loop, &f, ms);
}

#define WAIT_FOR(w, cond, ms)                                                                      \
    do {                                                                                           \
        for (unsigned t_ = 0; t_ < (ms) && !(cond); t_ += 10)                                      \
            spin(w, 10);                                                                           \
        assert_true(cond);                                                                         \
    } while (0)

static struct world *world_new(const char *const *simargs)
{
    struct world *w = calloc(1, sizeof(*w));
    W = w;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    sim_start(&w->sim, simargs);
    w->ops = connector_find("smpp");
    assert_non_null(w->ops);
    return w;
}

/* Opens the connector with host/port of the simulator plus extra JSON
 * members (",\"window\":50", ...) and waits for the bind. */
static void world_open(struct world *w, const char *extra)
{
    char js[1024];
    snprintf(js, sizeof(js),
             "{\"host\":\"127.0.0.1\",\"port\":%d,\"system_id\":\"t\",\"password\":\"p\","
             "\"sender\":\"3000\",\"reconnect_min_ms\":50%s}",
             w->sim.port, extra ? extra : "");
    cJSON *j = cJSON_Parse(js);
    assert_non_null(j);
    struct conn_env env = {.loop = &w->loop,
                           .account_id = "acct-1",
                           .account_name = "test",
                           .event = event_cb,
                           .health = health_cb,
                           .ud = w};
    struct smsys_err err;
    int rc = w->ops->open(&env, j, &w->c, &err);
    cJSON_Delete(j);
    if (rc != 0)
        fail_msg("open: %s", err.detail);
    WAIT_FOR(w, w->bound > 0, 5000);
}

static void world_free(struct world *w)
{
    if (w->c) {
        w->ops->close(w->c, closed_cb, w);
        assert_int_equal(tu_run_until(&w->loop, &w->closed, 10000), 0);
    }
    for (int i = 0; i < w->nev; i++)
        assert_null(w->ev[i].ack); /* every event was acked */
    if (w->pool)
        pool_close_sync(&w->loop, w->pool);
    assert_int_equal(tu_loop_handles(&w->loop), 0);
    assert_int_equal(tu_loop_close(&w->loop), 0);
    sim_stop(&w->sim);
    free(w);
    W = NULL;
}

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct world *w = ud;
    w->nbatches++;
    for (size_t i = 0; i < n; i++) {
        long long k;
        assert_int_equal(util_parse_int(res[i].id, 0, MAXN - 1, &k), 0);
        struct res *r = &w->res[k];
        assert_int_equal(r->got, 0); /* one result per message */
        r->got = 1;
        r->rc = res[i].rc;
        r->segments = res[i].segments;
        snprintf(r->pid, sizeof(r->pid), "%s", res[i].provider_id ? res[i].provider_id : "");
        snprintf(r->detail, sizeof(r->detail), "%s", res[i].detail ? res[i].detail : "");
        w->nres++;
    }
}

static char ids[MAXN][8], dsts[MAXN][24];

/* Sends messages first..first+n-1 (id = index, destination
 * +98912000<index>) in batches of 100 with the given text. */
static void send_range(struct world *w, int first, int n, const char *text)
{
    struct sms_out m[100];
    for (int b = first; b < first + n; b += 100) {
        int k = 0;
        for (int i = b; i < first + n && i < b + 100; i++, k++) {
            snprintf(ids[i], sizeof(ids[i]), "%d", i);
            snprintf(dsts[i], sizeof(dsts[i]), "+98912%07d", i);
            m[k] = (struct sms_out){.id = ids[i], .to = dsts[i], .text = text};
        }
        assert_int_equal(w->ops->send(w->c, m, (size_t)k, sent_cb, w), 0);
    }
}

static int dst_index(const cJSON *j)
{
    const char *d = jstr(j, "dst");
    long long k;
    if (d == NULL || strncmp(d, "98912", 5) != 0 || util_parse_int(d + 5, 0, MAXN - 1, &k))
        return -1;
    return (int)k;
}

/* ---- long messages ------------------------------------------------------ */

static void persian_300(char *out, size_t cap)
{
    const char *words[] = {"سلام ", "دنیا ", "پیام ", "بلند ", "فارسی "};
    size_t len = 0, chars = 0;
    for (int i = 0; chars < 300; i++) {
        const char *wd = words[i % 5];
        size_t wl = strlen(wd), wc = 0;
        for (size_t j = 0; j < wl; j++)
            wc += ((unsigned char)wd[j] & 0xC0) != 0x80;
        if (chars + wc > 300)
            wd = "x", wl = 1, wc = 1;
        assert_true(len + wl < cap);
        memcpy(out + len, wd, wl);
        len += wl;
        chars += wc;
    }
    out[len] = '\0';
}

static void run_long(const char *settings, int want_parts, int udh_len, int sar, int payload)
{
    struct world *w = world_new(NULL);
    world_open(w, settings);
    static char text[4096];
    persian_300(text, sizeof(text));
    send_range(w, 0, 3, text);
    WAIT_FOR(w, w->nres == 3, 5000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w->res[i].rc, 0);
        assert_int_equal(w->res[i].segments, payload ? 1 : want_parts);
        assert_true(w->res[i].pid[0] != '\0');
    }
    struct simlog lg;
    sim_log_read(&w->sim, &lg);
    int messages = 0, submits = 0;
    for (size_t i = 0; i < lg.n; i++) {
        const cJSON *j = lg.line[i];
        if (is_cmd(j, "submit_sm")) {
            submits++;
            assert_int_equal(jnum(j, "dc", -1), 8);
            if (udh_len) {
                const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "udh");
                assert_true(cJSON_IsObject(u));
                assert_int_equal(jnum(u, "len", 0), udh_len);
                assert_int_equal(jnum(u, "total", 0), want_parts);
            }
            if (sar)
                assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "sar")));
            if (payload) {
                assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "payload")));
                assert_string_equal(jstr(j, "text"), text);
            }
        } else if (is_cmd(j, "message")) {
            messages++;
            assert_int_equal(jnum(j, "parts", 0), want_parts);
            assert_string_equal(jstr(j, "text"), text); /* byte-exact at the SMSC */
            /* provider id = the first part's id */
            const cJSON *pids = cJSON_GetObjectItemCaseSensitive(j, "ids");
            int k = dst_index(j);
            assert_true(k >= 0 && k < 3);
            assert_string_equal(cJSON_GetArrayItem(pids, 0)->valuestring, w->res[k].pid);
        }
    }
    assert_int_equal(submits, payload ? 3 : 3 * want_parts);
    assert_int_equal(messages, payload ? 0 : 3);
    sim_log_free(&lg);
    world_free(w);
}

static void test_persian_udh8(void **state)
{
    (void)state;
    run_long(NULL, 5, 6, 0, 0);
}

static void test_persian_udh16(void **state)
{
    (void)state;
    run_long(",\"udh_ref_bits\":16", 5, 7, 0, 0);
}

static void test_persian_sar(void **state)
{
    (void)state;
    run_long(",\"long_messages\":\"sar\"", 5, 0, 1, 0);
}

static void test_persian_payload(void **state)
{
    (void)state;
    run_long(",\"long_messages\":\"payload\"", 5, 0, 0, 1);
}

/* An extension character at a part boundary moves whole into the next
 * part: part 1 holds 152 septets, not 152 + a lone escape. */
static void test_gsm_extension_not_split(void **state)
{
    (void)state;
    struct world *w = world_new(NULL);
    world_open(w, NULL);
    char text[400];
    memset(text, 'a', 152);
    snprintf(text + 152, sizeof(text) - 152, "€ and {braces} end");
    send_range(w, 0, 1, text);
    WAIT_FOR(w, w->nres == 1, 5000);
    assert_int_equal(w->res[0].rc, 0);
    assert_int_equal(w->res[0].segments, 2);
    struct simlog lg;
    sim_log_read(&w->sim, &lg);
    int seen = 0;
    for (size_t i = 0; i < lg.n; i++) {
        const cJSON *j = lg.line[i];
        if (is_cmd(j, "submit_sm")) {
            assert_int_equal(jnum(j, "dc", -1), 0);
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "udh");
            if (jnum(u, "seq", 0) == 1) {
                assert_int_equal(strlen(jstr(j, "text")), 152);
                assert_true(strspn(jstr(j, "text"), "a") == 152);
            }
        } else if (is_cmd(j, "message")) {
            seen++;
            assert_string_equal(jstr(j, "text"), text);
        }
    }
    assert_int_equal(seen, 1);
    sim_log_free(&lg);
    world_free(w);
}

/* ---- receipts ----------------------------------------------------------- */

static void run_receipts_on(const char *id_form, const char *rcpt_form, const char *how,
                            const char *settings)
{
    const char *args[] = {"--id-form",  id_form, "--receipt-id-form",  rcpt_form,
                          "--receipts", how,     "--receipt-delay-ms", "20",
                          NULL};
    struct world *w = world_new(args);
    world_open(w, settings);
    send_range(w, 0, 4, "hello receipt");
    static char longtext[400];
    memset(longtext, 'b', 200); /* two parts: only one event, for the first */
    longtext[200] = '\0';
    send_range(w, 4, 1, longtext);
    WAIT_FOR(w, w->nres == 5, 5000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w->res[i].rc, 0);
    WAIT_FOR(w, sim_stat(&w->sim, "deliver_acked") == 6, 5000);
    spin(w, 100);
    assert_int_equal(w->nev, 5);
    int matched[5] = {0};
    for (int e = 0; e < w->nev; e++) {
        assert_int_equal(w->ev[e].kind, CONN_EV_STATE);
        assert_int_equal(w->ev[e].status, CONN_ST_DELIVERED);
        /* The store's rule (docs/smpp.md): a primary-form match wins; a
         * match through the other reading counts only when it is the sole
         * candidate (hex ids without letters reported in decimal). */
        int best = 0, hits = 0, who = -1;
        for (int i = 0; i < 5; i++) {
            int m = smpp_msgid_match(w->ev[e].id, w->res[i].pid);
            if (m > best) {
                best = m;
                hits = 0;
            }
            if (m == best && m > 0) {
                hits++;
                who = i;
            }
        }
        if (hits != 1)
            fail_msg("receipt id %s matches %d messages (first %s)", w->ev[e].id, hits,
                     w->res[0].pid);
        matched[who]++;
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(matched[i], 1);
    world_free(w);
}

static void run_receipts(const char *id_form, const char *rcpt_form, const char *how)
{
    run_receipts_on(id_form, rcpt_form, how, NULL);
}

/* Submits on the transmitter, receipts on the receiver link. */
static void test_receipts_tx_rx(void **state)
{
    (void)state;
    run_receipts_on("dec", "hex", "both", ",\"bind\":\"transmitter+receiver\"");
}

static void test_receipts_hex_dec(void **state)
{
    (void)state;
    run_receipts("hex", "dec", "text");
}

static void test_receipts_dec_hex(void **state)
{
    (void)state;
    run_receipts("dec", "HEX", "tlv");
}

static void test_receipts_case_zeros(void **state)
{
    (void)state;
    run_receipts("hex0", "hex", "both");
    run_receipts("dec", "dec0", "text");
    run_receipts("HEX", "hex0", "tlv");
}

/* A later part that fails for good makes the message undelivered: its
 * receipt is reported under the first part's id. */
static void test_receipt_later_part_fails(void **state)
{
    (void)state;
    const char *args[] = {"--receipt-outcomes", "UNDELIV:1", "--receipt-delay-ms", "20", NULL};
    struct world *w = world_new(args);
    world_open(w, NULL);
    char text[400];
    memset(text, 'b', 200);
    text[200] = '\0';
    send_range(w, 0, 1, text);
    WAIT_FOR(w, w->nres == 1, 5000);
    assert_int_equal(w->res[0].rc, 0);
    assert_int_equal(w->res[0].segments, 2);
    WAIT_FOR(w, sim_stat(&w->sim, "deliver_acked") == 2, 5000);
    assert_int_equal(w->nev, 2);
    for (int e = 0; e < 2; e++) {
        assert_int_equal(w->ev[e].status, CONN_ST_UNDELIVERED);
        assert_int_equal(smpp_msgid_match(w->ev[e].id, w->res[0].pid), 2);
    }
    world_free(w);
}

/* deliver_sm_resp leaves only when the core acks; a refusal makes the SMSC
 * redeliver. */
static void test_ack_after_durable(void **state)
{
    (void)state;
    const char *args[] = {"--receipt-delay-ms", "20", NULL};
    struct world *w = world_new(args);
    w->ack_mode = ACK_HOLD;
    world_open(w, NULL);
    send_range(w, 0, 1, "durable");
    WAIT_FOR(w, w->nev == 1, 5000);
    spin(w, 200);
    assert_int_equal(sim_stat(&w->sim, "deliver_sent"), 1);
    assert_int_equal(sim_stat(&w->sim, "deliver_acked"), 0); /* not stored yet: no resp */
    /* "Storing failed": the SMSC must get a temporary error and redeliver. */
    w->ev[0].ack(w->ev[0].token, SMSYS_ETEMP);
    w->ev[0].ack = NULL;
    WAIT_FOR(w, w->nev == 2, 5000);
    assert_true(smpp_msgid_match(w->ev[1].id, w->res[0].pid) == 2);
    assert_int_equal(sim_stat(&w->sim, "deliver_acked"), 0);
    w->ev[1].ack(w->ev[1].token, 0);
    w->ev[1].ack = NULL;
    WAIT_FOR(w, sim_stat(&w->sim, "deliver_acked") == 1, 5000);
    world_free(w);
}

/* ---- throttling, connection cut ----------------------------------------- */

/* Accepted submit_sm per destination index, in acceptance order. */
static int accepted_order(struct world *w, int *cnt, int *order, int n)
{
    struct simlog lg;
    sim_log_read(&w->sim, &lg);
    memset(cnt, 0, sizeof(int) * (size_t)n);
    int k = 0;
    for (size_t i = 0; i < lg.n; i++) {
        const cJSON *j = lg.line[i];
        if (!is_cmd(j, "submit_sm") || jnum(j, "status", -1) != 0)
            continue;
        int d = dst_index(j);
        assert_true(d >= 0 && d < n);
        cnt[d]++;
        if (order)
            order[k] = d;
        k++;
    }
    sim_log_free(&lg);
    return k;
}

static int cnt[MAXN], order[MAXN * 2];

static void test_throttle_order(void **state)
{
    (void)state;
    const char *args[] = {"--throttle-every", "7", NULL};
    struct world *w = world_new(args);
    world_open(w, ",\"window\":1,\"throttle_pause_ms\":20");
    int n = 60;
    send_range(w, 0, n, "throttled but kept");
    WAIT_FOR(w, w->nres == n, 20000);
    for (int i = 0; i < n; i++)
        assert_int_equal(w->res[i].rc, 0); /* nothing lost */
    assert_true(w->throttled > 0);         /* the core heard of it */
    assert_true(sim_stat(&w->sim, "throttled") >= 8);
    assert_int_equal(accepted_order(w, cnt, order, n), n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(cnt[i], 1);
        assert_int_equal(order[i], i); /* order kept */
    }
    world_free(w);
}

static void test_throttle_window(void **state)
{
    (void)state;
    const char *args[] = {"--throttle-every", "25", NULL};
    struct world *w = world_new(args);
    world_open(w, ",\"window\":10,\"throttle_pause_ms\":20");
    int n = 300;
    send_range(w, 0, n, "throttled window");
    WAIT_FOR(w, w->nres == n, 30000);
    for (int i = 0; i < n; i++)
        assert_int_equal(w->res[i].rc, 0);
    assert_int_equal(accepted_order(w, cnt, NULL, n), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(cnt[i], 1);
    world_free(w);
}

static void test_cut_midwindow(void **state)
{
    (void)state;
    const char *args[] = {"--drop-after", "100", NULL};
    struct world *w = world_new(args);
    world_open(w, ",\"window\":10");
    int n = 400;
    send_range(w, 0, n, "cut");
    WAIT_FOR(w, w->nres == n, 20000);
    int unknown = 0, first = -1, last = -1;
    for (int i = 0; i < n; i++) {
        if (w->res[i].rc == SMSYS_EUNKNOWN) {
            unknown++;
            if (first < 0)
                first = i;
            last = i;
        } else {
            assert_int_equal(w->res[i].rc, 0);
        }
    }
    assert_true(unknown >= 1 && unknown <= 10);
    assert_int_equal(last - first + 1, unknown); /* exactly the in-flight ones */
    assert_true(first <= 99 && last >= 99);
    assert_int_equal(accepted_order(w, cnt, NULL, n), n - unknown);
    for (int i = 0; i < n; i++)
        assert_int_equal(cnt[i], w->res[i].rc == 0 ? 1 : 0); /* no duplicate */
    /* What the SMSC received at all: in-flight ones at most once too. */
    struct simlog lg;
    sim_log_read(&w->sim, &lg);
    memset(cnt, 0, sizeof(cnt));
    for (size_t i = 0; i < lg.n; i++)
        if (is_cmd(lg.line[i], "submit_sm"))
            cnt[dst_index(lg.line[i])]++;
    for (int i = 0; i < n; i++)
        assert_true(cnt[i] <= 1);
    sim_log_free(&lg);
    assert_true(w->bound >= 2); /* reconnected */
    world_free(w);
}

/* A 3-part message cut after its first part: unknown, with the first
 * part's id kept. */
static void test_cut_multipart(void **state)
{
    (void)state;
    const char *args[] = {"--drop-after", "2", NULL};
    struct world *w = world_new(args);
    world_open(w, ",\"window\":1");
    char text[500];
    memset(text, 'z', 400);
    text[400] = '\0';
    send_range(w, 0, 1, text);
    WAIT_FOR(w, w->nres == 1, 10000);
    assert_int_equal(w->res[0].rc, SMSYS_EUNKNOWN);
    assert_int_equal(w->res[0].segments, 3);
    assert_true(w->res[0].pid[0] != '\0');
    assert_non_null(strstr(w->res[0].detail, "part 2/3"));
    world_free(w);
}

/* ---- inbound ------------------------------------------------------------ */

static void inject(struct world *w, const char *body)
{
    const char *r = sim_http(&w->sim, "POST", "/mo", body);
    assert_non_null(strstr(r, "\"ok\":true"));
}

static void test_mo_single(void **state)
{
    (void)state;
    struct world *w = world_new(NULL);
    world_open(w, NULL);
    inject(w, "{\"from\":\"989121112222\",\"to\":\"3000\",\"text\":\"سلام، وقت بخیر 😀\"}");
    inject(w, "{\"from\":\"447700900123\",\"to\":\"3000\",\"text\":\"Price {5} €\"}");
    WAIT_FOR(w, w->nev == 2, 5000);
    assert_int_equal(w->ev[0].kind, CONN_EV_MO);
    assert_int_equal(w->ev[0].total, 0);
    assert_string_equal(w->ev[0].text, "سلام، وقت بخیر 😀");
    assert_string_equal(w->ev[0].from, "989121112222");
    assert_string_equal(w->ev[1].text, "Price {5} €");
    assert_int_equal(w->ev[1].dc, 0);
    WAIT_FOR(w, sim_stat(&w->sim, "deliver_acked") == 2, 5000);
    world_free(w);
}

static void store_open(struct world *w, void **state)
{
    struct world_pg *t = *state;
    assert_int_equal(pg_pool_new(&w->loop, t->conninfo, 2, &w->pool), 0);
}

/* clang-format off */
static const char MO_TEXT[] =
    "این یک پیام ورودی بلند است که در چند بخش می‌رسد و باید دقیقاً یک پیام شود؛ "
    "ترتیب رسیدن بخش‌ها مهم نیست 😀 و هیچ نویسه‌ای نباید گم شود.";
/* clang-format on */

static void test_mo_multipart_out_of_order(void **state)
{
    struct world *w = world_new(NULL);
    w->ack_mode = ACK_STORE;
    store_open(w, state);
    world_open(w, NULL);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"from\":\"989121112222\",\"to\":\"3000\",\"text\":\"%s\",\"parts\":3,"
             "\"order\":[3,1,2]}",
             MO_TEXT);
    inject(w, body);
    WAIT_FOR(w, w->complete == 1 && w->stored == 3, 10000);
    assert_string_equal(w->complete_text, MO_TEXT);
    assert_int_equal(w->ev[0].seq, 3);
    assert_int_equal(w->ev[0].total, 3);
    assert_null(w->ev[0].text[0] ? w->ev[0].text : NULL); /* parts carry raw bytes */
    WAIT_FOR(w, sim_stat(&w->sim, "deliver_acked") == 3, 5000);
    world_free(w);
}

/* The process "restarts" (new pool) after two of three parts. */
static void test_mo_restart(void **state)
{
    struct world *w = world_new(NULL);
    w->ack_mode = ACK_STORE;
    w->hold_seq = 2; /* part 2 waits until after the restart */
    store_open(w, state);
    world_open(w, NULL);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"from\":\"989120000001\",\"to\":\"3000\",\"text\":\"%s\",\"parts\":3,"
             "\"order\":[1,3,2]}",
             MO_TEXT);
    inject(w, body);
    WAIT_FOR(w, w->stored == 2 && w->nev == 3, 10000);
    assert_int_equal(w->complete, 0);
    pool_close_sync(&w->loop, w->pool);
    store_open(w, state);
    store_part(&w->ev[2]);
    WAIT_FOR(w, w->complete == 1, 10000);
    assert_string_equal(w->complete_text, MO_TEXT);
    world_free(w);
}

/* Part 2 never gets stored (refused: the SMSC keeps it); the group
 * expires with the gap marked. */
static void test_mo_expire(void **state)
{
    struct world *w = world_new(NULL);
    w->ack_mode = ACK_STORE;
    w->hold_seq = 2;
    store_open(w, state);
    world_open(w, NULL);
    inject(w, "{\"from\":\"989120000002\",\"to\":\"3000\",\"text\":\"aaaa bbbb cccc\",\"parts\":3,"
              "\"order\":[1,2,3]}");
    WAIT_FOR(w, w->stored == 2 && w->nev == 3, 10000);
    w->ev[1].ack(w->ev[1].token, SMSYS_ETEMP);
    w->ev[1].ack = NULL;
    w->ops->close(w->c, closed_cb, w);
    assert_int_equal(tu_run_until(&w->loop, &w->closed, 10000), 0);
    w->c = NULL;
    char v[32];
    db_value(*state,
             "UPDATE smsys_mo_groups SET created_at = now() - interval '1 hour'"
             " RETURNING id",
             v, sizeof(v));
    struct mo_res r = {0};
    assert_int_equal(mo_parts_expire(w->pool, 600, list_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&w->loop, &r.fired, 10000), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.list[0].present, 2);
    assert_non_null(strstr(r.list[0].text, "[…]"));
    assert_int_equal(strncmp(r.list[0].text, "aaaa", 4), 0);
    world_free(w);
}

/* The SMSC refuses one destination: that message fails for good, the
 * others go through; a refused bind is an account-wide problem. */
static void test_refusals(void **state)
{
    (void)state;
    const char *args[] = {"--dest-error", "*0003=0x0B", "--system-id", "good", NULL};
    struct world *w = world_new(args);
    char js[256];
    snprintf(js, sizeof(js), "{\"host\":\"127.0.0.1\",\"port\":%d,\"system_id\":\"bad\"}",
             w->sim.port);
    cJSON *j = cJSON_Parse(js);
    struct conn_env env = {.loop = &w->loop, .event = event_cb, .health = health_cb, .ud = w};
    struct smsys_err err;
    assert_int_equal(w->ops->open(&env, j, &w->c, &err), 0);
    cJSON_Delete(j);
    WAIT_FOR(w, w->down > 0, 5000);
    assert_int_equal(w->down_rc, SMSYS_EACCOUNT);
    w->ops->close(w->c, closed_cb, w);
    assert_int_equal(tu_run_until(&w->loop, &w->closed, 10000), 0);
    w->closed = 0;
    w->c = NULL;
    world_open(w, ",\"system_id\":\"good\"");
    send_range(w, 0, 5, "refused or not");
    WAIT_FOR(w, w->nres == 5, 5000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w->res[i].rc, i == 3 ? SMSYS_EPERM : 0);
    assert_non_null(strstr(w->res[3].detail, "ESME_RINVDSTADR"));
    world_free(w);
}

/* ---- settings, close ---------------------------------------------------- */

static void open_err(const char *js, const char *key)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cJSON *j = cJSON_Parse(js);
    assert_non_null(j);
    struct conn_env env = {.loop = &loop, .account_name = "t"};
    struct conn *c = NULL;
    struct smsys_err err;
    int rc = connector_find("smpp")->open(&env, j, &c, &err);
    cJSON_Delete(j);
    assert_int_equal(rc, SMSYS_ECONFIG);
    assert_null(c);
    if (strstr(err.detail, key) == NULL)
        fail_msg("detail '%s' does not name '%s'", err.detail, key);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
}

static void test_settings_errors(void **state)
{
    (void)state;
    open_err("{\"port\":2775}", "host");
    open_err("{\"host\":\"x\"}", "port");
    open_err("{\"host\":\"x\",\"port\":0}", "port");
    open_err("{\"host\":\"x\",\"port\":1,\"window\":\"many\"}", "window");
    open_err("{\"host\":\"x\",\"port\":1,\"data_coding_default\":2}", "data_coding_default");
    open_err("{\"host\":\"x\",\"port\":1,\"long_messages\":\"split\"}", "long_messages");
    open_err("{\"host\":\"x\",\"port\":1,\"bind\":\"receiver\"}", "bind");
    open_err("{\"host\":\"x\",\"port\":1,\"udh_ref_bits\":12}", "udh_ref_bits");
    open_err("{\"host\":\"x\",\"port\":1,\"system_id\":\"12345678901234567\"}", "system_id");
    open_err("{\"host\":\"x\",\"port\":1,\"colour\":\"blue\"}", "colour");
    open_err("[1]", "settings");
}

/* Bad messages fail at once (later, from the loop) without a submit; a
 * close with messages queued answers them before its own callback. */
static void test_bad_messages_and_close(void **state)
{
    (void)state;
    struct world *w = world_new(NULL);
    world_open(w, ",\"rate_per_sec\":5");
    struct sms_out m[3] = {
        {.id = "0", .to = "+989120000000", .text = ""},
        {.id = "1", .to = "+989120000001", .text = "bad \xC3\x28 utf8"},
        {.id = "2", .to = "", .text = "x"},
    };
    assert_int_equal(w->ops->send(w->c, m, 3, sent_cb, w), 0);
    assert_int_equal(w->nres, 0); /* never inside the call */
    WAIT_FOR(w, w->nres == 3, 2000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w->res[i].rc, SMSYS_EPERM);
    /* 50 messages at 5 per second: most are still queued at close. */
    send_range(w, 10, 50, "queued at close");
    spin(w, 100);
    w->ops->close(w->c, closed_cb, w);
    int batches = w->nbatches;
    assert_int_equal(tu_run_until(&w->loop, &w->closed, 10000), 0);
    assert_int_equal(w->nbatches, batches + 1); /* answered before closed_cb */
    int closed = 0;
    for (int i = 10; i < 60; i++) {
        assert_int_equal(w->res[i].got, 1);
        closed += w->res[i].rc == SMSYS_ECLOSED;
    }
    assert_true(closed >= 40);
    w->c = NULL;
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_persian_udh8),
        cmocka_unit_test(test_persian_udh16),
        cmocka_unit_test(test_persian_sar),
        cmocka_unit_test(test_persian_payload),
        cmocka_unit_test(test_gsm_extension_not_split),
        cmocka_unit_test(test_receipts_hex_dec),
        cmocka_unit_test(test_receipts_dec_hex),
        cmocka_unit_test(test_receipts_case_zeros),
        cmocka_unit_test(test_receipts_tx_rx),
        cmocka_unit_test(test_receipt_later_part_fails),
        cmocka_unit_test(test_ack_after_durable),
        cmocka_unit_test(test_throttle_order),
        cmocka_unit_test(test_throttle_window),
        cmocka_unit_test(test_cut_midwindow),
        cmocka_unit_test(test_cut_multipart),
        cmocka_unit_test(test_mo_single),
        cmocka_unit_test_setup_teardown(test_mo_multipart_out_of_order, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_mo_restart, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_mo_expire, db_setup, db_teardown),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_settings_errors),
        cmocka_unit_test(test_bad_messages_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, sim_kill_all);
}
