/* fuzz_conn_replies - arbitrary bytes as provider replies into every HTTP
 * connector's parsers (send, status, inbox / balance / lines) and as
 * webhook bodies. Provider replies are outside input: nothing may crash,
 * leak or leave a message without exactly one result.
 *
 * Byte 0 picks the parser, byte 1 the HTTP status; the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "smsys/connector.h"
#include "smsys/http_server.h"
#include "conn_parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int results;

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    results++;
    if (n != 3)
        abort();
    for (size_t i = 0; i < n; i++)
        if (res[i].rc == 0 && res[i].provider_id == NULL && ud != NULL)
            abort(); /* accepted without an id (only generic may, when configured so) */
}

static void st_cb(void *ud, int rc, const struct conn_state *st, size_t n,
                  const struct smsys_err *err)
{
    results++;
    for (size_t i = 0; i < n; i++)
        if (st[i].provider_id == NULL)
            abort();
}

static void mo_cb(void *ud, int rc, const struct conn_mo *mo, size_t n, const struct smsys_err *e)
{
    results++;
    for (size_t i = 0; i < n; i++)
        if (mo[i].text == NULL || mo[i].from == NULL || mo[i].to == NULL)
            abort();
}

static void bal_cb(void *ud, int rc, const struct conn_balance *b, const struct smsys_err *e)
{
    results++;
    if ((rc == 0) != (b != NULL))
        abort();
}

static void lines_cb(void *ud, int rc, const struct conn_line *l, size_t n,
                     const struct smsys_err *e)
{
    results++;
    for (size_t i = 0; i < n; i++)
        if (l[i].number == NULL)
            abort();
}

static int no_start(struct ch_batch *b, void *ud)
{
    return -ENOMEM;
}

typedef int (*send_parser)(struct ch_batch *, int, const char *, size_t);

static void fuzz_send(struct conn *c, send_parser p, int http, const char *body, size_t len)
{
    struct sms_out m[3] = {{.id = "a", .to = "+989121111111", .text = "x"},
                           {.id = "b", .to = "+989122222222", .text = "x"},
                           {.id = "c", .to = "+989123333333", .text = "x"}};
    struct ch_send *s;
    if (ch_send_new(c, m, 3, PHONE_NATIONAL, sent_cb, c->ops == &conn_generic_ops ? NULL : c, &s) !=
        0)
        abort();
    s->pending = 1;
    s->start = no_start;
    struct ch_batch *b = calloc(1, sizeof *b + 3 * sizeof b->idx[0]);
    b->s = s;
    b->n = 3;
    for (size_t i = 0; i < 3; i++)
        b->idx[i] = i;
    int before = results;
    if (p(b, http, body, len) == 0)
        ch_batch_done(b);
    if (results != before + 1)
        abort();
}

static struct ch_stq *new_q(struct conn *c)
{
    struct ch_stq *q = calloc(1, sizeof *q);
    q->c = c;
    q->cb = st_cb;
    q->pending = 1;
    return q;
}

/* The generic connector needs its settings: one opened once, with pointer
 * and regex extraction; its parsers do no I/O. */
static struct conn *generic_conn(int regex)
{
    static struct conn *g[2];
    static uv_loop_t loop;
    static struct http_client *hc;
    if (g[regex])
        return g[regex];
    if (hc == NULL) {
        uv_loop_init(&loop);
        if (http_client_new(&loop, NULL, &hc) != 0)
            abort();
    }
    static const char *const cfg[2] = {
        "{\"base_url\":\"http://127.0.0.1:1\",\"max_batch\":3,"
        "\"send\":{\"url\":\"{base_url}/s\",\"ok_pointer\":\"/ok\",\"id_pointer\":\"/ids\","
        "\"code_pointer\":\"/code\",\"message_pointer\":\"/msg\"},"
        "\"status\":{\"url\":\"{base_url}/{provider_id}\",\"status_pointer\":\"/s\","
        "\"status_map\":{\"1\":\"delivered\"}},"
        "\"balance\":{\"url\":\"{base_url}/b\",\"balance_pointer\":\"/a/0\"},"
        "\"inbox\":{\"url\":\"{base_url}/i\",\"items_pointer\":\"/items\",\"text_pointer\":\"/t\","
        "\"from_pointer\":\"/f\"},\"error_map\":{\"9\":\"account\"}}",
        "{\"base_url\":\"http://127.0.0.1:1\",\"max_batch\":3,"
        "\"send\":{\"url\":\"{base_url}/s\",\"ok_regex\":\"^OK\",\"id_regex\":\"id=([0-9]*)\","
        "\"code_regex\":\"ERR([0-9]+)\"},"
        "\"status\":{\"url\":\"{base_url}/{provider_id}\",\"status_regex\":\"st:(.)\"},"
        "\"balance\":{\"url\":\"{base_url}/b\",\"balance_regex\":\"[0-9.]+\"}}"};
    cJSON *s = cJSON_Parse(cfg[regex]);
    struct conn_env env = {.loop = &loop, .http = hc, .apikey = "k"};
    struct smsys_err err;
    if (conn_generic_ops.open(&env, s, &g[regex], &err) != 0)
        abort();
    cJSON_Delete(s);
    return g[regex];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const int statuses[] = {200, 201, 400, 401, 402, 403, 404, 418, 422, 429, 500, 503};
    int which = data[0] % 24;
    int http = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
    char *body = malloc(size - 2 + 1);
    memcpy(body, data + 2, size - 2);
    body[size - 2] = '\0';
    size_t len = size - 2;

    static const struct conn_ops *const ops[] = {&conn_kavenegar_ops, &conn_smsir_ops,
                                                 &conn_ghasedak_ops,  &conn_melipayamak_ops,
                                                 &conn_asanak_ops,    &conn_twilio_ops};
    static const send_parser sends[] = {conn_kavenegar_parse_send, conn_smsir_parse_send,
                                        conn_ghasedak_parse_send,  conn_melipayamak_parse_send,
                                        conn_asanak_parse_send,    conn_twilio_parse_send};
    struct conn c;
    memset(&c, 0, sizeof c);
    struct ch_op all = {.ud = NULL};
    struct ch_op op_in = {.inbox = mo_cb}, op_bal = {.balance = bal_cb},
                 op_lines = {.lines = lines_cb};
    (void)all;
    if (which < 6) {
        c.ops = ops[which];
        if (which == 5) {
            /* Twilio sends one message per request: use a 3-batch anyway */
        }
        fuzz_send(&c, sends[which], http, body, len);
    } else if (which < 12) {
        c.ops = ops[which - 6];
        struct ch_stq *q = new_q(&c);
        switch (which - 6) {
        case 0:
            conn_kavenegar_parse_status(q, http, body, len);
            break;
        case 1:
            conn_smsir_parse_status(q, "1", http, body, len);
            break;
        case 2:
            conn_ghasedak_parse_status(q, http, body, len);
            break;
        case 3:
            conn_melipayamak_parse_status(q, "1", http, body, len);
            break;
        case 4:
            conn_asanak_parse_status(q, http, body, len);
            break;
        default:
            conn_twilio_parse_status(q, "SM1", http, body, len);
            break;
        }
        ch_stq_release(q);
    } else if (which < 18) {
        c.ops = ops[which - 12];
        switch (which - 12) {
        case 0:
            conn_kavenegar_parse_inbox(http, body, len, mo_cb, NULL);
            conn_kavenegar_parse_balance(http, body, len, bal_cb, NULL);
            break;
        case 1:
            conn_smsir_parse_ops(&c, http, body, len, &op_in);
            conn_smsir_parse_ops(&c, http, body, len, &op_bal);
            conn_smsir_parse_ops(&c, http, body, len, &op_lines);
            break;
        case 2:
            conn_ghasedak_parse_ops(&c, http, body, len, &op_in);
            conn_ghasedak_parse_ops(&c, http, body, len, &op_bal);
            break;
        case 3:
            conn_melipayamak_parse_ops(&c, http, body, len, &op_in);
            conn_melipayamak_parse_ops(&c, http, body, len, &op_bal);
            conn_melipayamak_parse_ops(&c, http, body, len, &op_lines);
            break;
        case 4:
            conn_asanak_parse_ops(&c, http, body, len, &op_bal);
            break;
        default:
            conn_twilio_parse_ops(&c, http, body, len, &op_bal);
            conn_twilio_parse_ops(&c, http, body, len, &op_lines);
            break;
        }
    } else if (which < 22) {
        struct conn *g = generic_conn(which & 1);
        if (which < 20) {
            fuzz_send(g, conn_generic_parse_send, http, body, len);
        } else {
            struct ch_stq *q = new_q(g);
            conn_generic_parse_status(g, q, "1", http, body, len);
            ch_stq_release(q);
            conn_generic_parse_balance(g, http, body, len, bal_cb, NULL);
            if (!(which & 1))
                conn_generic_parse_inbox(g, http, body, len, mo_cb, NULL);
        }
    } else {
        /* webhook bodies (and a query) from the outside */
        struct http_header h = {"X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="};
        struct http_req req = {.method = "POST",
                               .target = "/hook?token=0123456789abcdef",
                               .path = "/hook",
                               .query = "token=0123456789abcdef",
                               .headers = &h,
                               .nheaders = 1,
                               .body = body,
                               .body_len = len};
        struct conn_event *ev = NULL;
        size_t n = 0;
        int rc = which == 22 ? conn_kavenegar_webhook_parse("0123456789abcdef", &req, &ev, &n)
                             : conn_twilio_webhook_parse("t", "http://x", &req, &ev, &n);
        if (rc == 0)
            conn_events_free(ev, n);
        else if (ev != NULL)
            abort();
    }
    free(body);
    return 0;
}
