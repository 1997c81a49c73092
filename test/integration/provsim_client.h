/* provsim_client.h - what the provsim integration tests share: start
 * build/bin/provsim on a free loopback port (group fixture), libcurl
 * requests and JSON path lookups, and a loopback HTTP receiver thread for
 * the simulator's pushes with an independent Twilio signature check.
 *
 * Static functions: include it once per test file, after cmocka.h. */
#ifndef SMSYS_TEST_PROVSIM_CLIENT_H
#define SMSYS_TEST_PROVSIM_CLIENT_H

#include "../lib/testutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smsys/buf.h"
#include "smsys/util.h"

#define PS_UNUSED __attribute__((unused))

#define KV_KEY   "demo-kavenegar-key"
#define TW_SID   "ACdemo"
#define TW_TOKEN "demo-twilio-token"

/* 71 Persian letters: one over the single-part UCS-2 limit -> 2 segments. */
#define FA_71   "سلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلامسلا"
#define FA_TEXT "سلام، پیام آزمایشی ۱۲۳ ✓"

PS_UNUSED static pid_t sim_pid = -1;
PS_UNUSED static int sim_port;
PS_UNUSED static char base[64];
PS_UNUSED static char logpath[256];

/* ---- HTTP client helpers ---- */

struct reply {
    long status;
    struct buf body;
    cJSON *json;
    double secs;
    CURLcode rc;
};

PS_UNUSED static size_t write_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    return buf_append(&r->body, p, sz * n) == 0 ? sz * n : 0;
}

PS_UNUSED static void reply_free(struct reply *r)
{
    buf_free(&r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

/* One request. hdrs: NULL-terminated "Name: value" list. userpwd: Basic
 * auth or NULL. body NULL = GET (unless method says otherwise). */
PS_UNUSED static void http(struct reply *r, const char *method, const char *path, const char *ctype,
                           const char *body, const char *const *hdrs, const char *userpwd,
                           long timeout_ms)
{
    char url[2048], ct[128];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base, path);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    struct curl_slist *hl = NULL;
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, ct);
    }
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        hl = curl_slist_append(hl, hdrs[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (method)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (userpwd) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    }
    uint64_t t0 = util_now_ms();
    r->rc = curl_easy_perform(e);
    r->secs = (double)(util_now_ms() - t0) / 1000.0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    if (r->body.data)
        r->json = cJSON_Parse(r->body.data);
}

/* Dotted path into JSON: "return.status", "entries.0.messageid". */
PS_UNUSED static cJSON *jp(const cJSON *root, const char *path)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", path);
    const cJSON *cur = root;
    char *save = NULL;
    for (char *t = strtok_r(tmp, ".", &save); t && cur; t = strtok_r(NULL, ".", &save)) {
        if (cJSON_IsArray(cur) && t[0] >= '0' && t[0] <= '9')
            cur = cJSON_GetArrayItem(cur, (int)strtol(t, NULL, 10));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, t);
    }
    return (cJSON *)cur;
}

PS_UNUSED static double jnum(const cJSON *root, const char *path)
{
    const cJSON *v = jp(root, path);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", path);
    return v->valuedouble;
}

PS_UNUSED static const char *jstr(const cJSON *root, const char *path)
{
    const cJSON *v = jp(root, path);
    if (!cJSON_IsString(v))
        fail_msg("%s is not a string", path);
    return v->valuestring;
}

PS_UNUSED static void sim_post(const char *path, const char *json)
{
    struct reply r;
    http(&r, NULL, path, "application/json", json, NULL, NULL, 0);
    if (r.status != 200)
        fail_msg("%s -> %ld %s", path, r.status, r.body.data ? r.body.data : "");
    reply_free(&r);
}

PS_UNUSED static void sim_config(const char *json)
{
    sim_post("/_sim/config", json);
}

/* form body builder: k1, v1, k2, v2, ..., NULL (values url-encoded). */
PS_UNUSED static char *form(const char *k, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, k);
    for (const char *key = k; key; key = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (b.len)
            buf_putc(&b, '&');
        buf_put_urlenc(&b, key);
        buf_putc(&b, '=');
        buf_put_urlenc(&b, v);
    }
    va_end(ap);
    return buf_steal(&b);
}

PS_UNUSED static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- loopback receiver for webhooks ---- */

struct hit {
    char path[256];
    char sig[128];
    char *body;
};

static struct {
    int fd, port, stop;
    pthread_t th;
    pthread_mutex_t mu;
    struct hit hits[64];
    int n;
} rx;

PS_UNUSED static void rx_handle(int c)
{
    struct buf in = BUF_INIT;
    char chunk[4096];
    size_t need = 0;
    char *hend = NULL;
    for (;;) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            break;
        ssize_t k = read(c, chunk, sizeof(chunk));
        if (k <= 0)
            break;
        buf_append(&in, chunk, (size_t)k);
        if (!hend && (hend = strstr(in.data, "\r\n\r\n"))) {
            const char *cl = strcasestr(in.data, "Content-Length:");
            need = (size_t)(hend - in.data) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        }
        if (hend && in.len >= need)
            break;
    }
    if (hend && in.len >= need) {
        pthread_mutex_lock(&rx.mu);
        if (rx.n < 64) {
            struct hit *h = &rx.hits[rx.n];
            sscanf(in.data, "%*s %255s", h->path);
            const char *s = strcasestr(in.data, "X-Twilio-Signature:");
            if (s && s < hend)
                sscanf(s + 19, " %127[^\r\n]", h->sig);
            h->body = strdup(hend + 4);
            rx.n++;
        }
        pthread_mutex_unlock(&rx.mu);
        const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ssize_t w = write(c, ok, sizeof(ok) - 1);
        (void)w;
    }
    buf_free(&in);
    close(c);
}

PS_UNUSED static void *rx_main(void *arg)
{
    (void)arg;
    while (!rx.stop) {
        struct pollfd p = {rx.fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(rx.fd, NULL, NULL);
        if (c >= 0)
            rx_handle(c);
    }
    return NULL;
}

PS_UNUSED static void rx_start(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rx.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rx.fd >= 0);
    assert_int_equal(bind(rx.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rx.fd, 16), 0);
    getsockname(rx.fd, (struct sockaddr *)&a, &len);
    rx.port = ntohs(a.sin_port);
    pthread_mutex_init(&rx.mu, NULL);
    assert_int_equal(pthread_create(&rx.th, NULL, rx_main, NULL), 0);
}

PS_UNUSED static void rx_clear(void)
{
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++)
        free(rx.hits[i].body);
    rx.n = 0;
    pthread_mutex_unlock(&rx.mu);
}

PS_UNUSED static int rx_count(void)
{
    pthread_mutex_lock(&rx.mu);
    int n = rx.n;
    pthread_mutex_unlock(&rx.mu);
    return n;
}

PS_UNUSED static int rx_wait(int n, unsigned ms)
{
    for (unsigned waited = 0; waited < ms; waited += 20) {
        if (rx_count() >= n)
            return 0;
        sleep_ms(20);
    }
    return rx_count() >= n ? 0 : -1;
}

PS_UNUSED static void rx_stop(void)
{
    rx.stop = 1;
    pthread_join(rx.th, NULL);
    close(rx.fd);
    rx_clear();
    pthread_mutex_destroy(&rx.mu);
}

/* Splits a form body into decoded pairs (k0,v0,k1,v1,...); returns count. */
PS_UNUSED static int form_split(const char *body, char kv[][2][512], int max)
{
    int n = 0;
    char *dup = strdup(body), *save = NULL;
    for (char *t = strtok_r(dup, "&", &save); t && n < max; t = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(t, '=');
        if (eq)
            *eq = '\0';
        for (int side = 0; side < 2; side++) {
            const char *s = side ? (eq ? eq + 1 : "") : t;
            char *o = kv[n][side];
            size_t j = 0;
            for (; *s && j < 511; s++) {
                if (*s == '+') {
                    o[j++] = ' ';
                } else if (*s == '%' && s[1] && s[2]) {
                    char hex[3] = {s[1], s[2], 0};
                    o[j++] = (char)strtol(hex, NULL, 16);
                    s += 2;
                } else {
                    o[j++] = *s;
                }
            }
            o[j] = '\0';
        }
        n++;
    }
    free(dup);
    return n;
}

PS_UNUSED static const char *form_val(char kv[][2][512], int n, const char *k)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i][0], k) == 0)
            return kv[i][1];
    return NULL;
}

PS_UNUSED static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const char(*)[512])a)[0], ((const char(*)[512])b)[0]);
}

/* Twilio's scheme, recomputed here: base64(HMAC-SHA1(token, url + sorted
 * key+value pairs)). */
PS_UNUSED static void signature_of(const char *url, const char *body, char out[64])
{
    char kv[32][2][512];
    int n = form_split(body, kv, 32);
    qsort(kv, (size_t)n, sizeof(kv[0]), pair_cmp);
    struct buf d = BUF_INIT;
    buf_puts(&d, url);
    for (int i = 0; i < n; i++) {
        buf_puts(&d, kv[i][0]);
        buf_puts(&d, kv[i][1]);
    }
    unsigned char md[20];
    unsigned int mdlen = 0;
    HMAC(EVP_sha1(), TW_TOKEN, (int)strlen(TW_TOKEN), (unsigned char *)d.data, d.len, md, &mdlen);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    buf_free(&d);
}

PS_UNUSED static void expect_signature(const char *url, const char *body, const char *sig)
{
    char b64[64];
    signature_of(url, body, b64);
    assert_true(strlen(sig) == 28);
    assert_string_equal(sig, b64);
}

/* ---- fixtures ---- */

PS_UNUSED static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sim_port = tu_free_port();
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", sim_port);
    snprintf(logpath, sizeof(logpath), "/tmp/provsim-test-%d.jsonl", (int)getpid());
    unlink(logpath);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", sim_port);
    char *argv[] = {
        (char *)tu_bin("provsim"), "--listen", listen, "--log", logpath, "--seed", "7", NULL};
    sim_pid = tu_spawn(argv, NULL, sim_port, 5000);
    if (sim_pid < 0)
        return -1;
    rx_start();
    return 0;
}

PS_UNUSED static int group_teardown(void **state)
{
    (void)state;
    rx_stop();
    int st = tu_stop(sim_pid);
    unlink(logpath);
    curl_global_cleanup();
    /* a clean SIGTERM exit: the simulator closed its loop */
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

PS_UNUSED static int test_setup(void **state)
{
    (void)state;
    sim_post("/_sim/reset", "{}");
    sim_config("{\"receipt_delay_ms\":200,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    rx_clear();
    return 0;
}

/* ---- Kavenegar ---- */

PS_UNUSED static void kv(struct reply *r, const char *method, const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), "/kavenegar/v1/%s/%s", KV_KEY, method);
    http(r, NULL, path, "application/x-www-form-urlencoded", body, NULL, NULL, 0);
}

/* Polls until fn(arg) returns want or timeout. */
PS_UNUSED static long poll_until(long (*fn)(const char *), const char *arg, long want, unsigned ms)
{
    long got = -1;
    for (unsigned w = 0; w <= ms; w += 50) {
        if ((got = fn(arg)) == want)
            return got;
        sleep_ms(50);
    }
    return got;
}

PS_UNUSED static long kv_status_of(const char *id)
{
    struct reply r;
    char *b = form("messageid", id, NULL);
    kv(&r, "sms/status.json", b);
    free(b);
    long s = r.json && jp(r.json, "entries.0.status") ? (long)jnum(r.json, "entries.0.status") : -1;
    reply_free(&r);
    return s;
}

PS_UNUSED static int log_count(const char *needle)
{
    FILE *f = fopen(logpath, "r");
    char line[8192];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* ---- SMS.ir ---- */

PS_UNUSED static const char *const si_hdr[] = {"X-API-KEY: demo-smsir-key", NULL};
PS_UNUSED static const char *const si_bad[] = {"X-API-KEY: wrong", NULL};

/* ---- Ghasedak ---- */

PS_UNUSED static const char *const gh_hdr[] = {"ApiKey: demo-ghasedak-key", NULL};

PS_UNUSED static void gh_post(struct reply *r, const char *op, const char *json)
{
    char path[128];
    snprintf(path, sizeof(path), "/ghasedak/rest/api/v1/WebService/%s", op);
    http(r, NULL, path, "application/json", json, gh_hdr, NULL, 0);
}

/* ---- Melipayamak ---- */

PS_UNUSED static void mp(struct reply *r, const char *op, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/melipayamak/api/SendSMS/%s", op);
    http(r, NULL, path, "application/x-www-form-urlencoded", body, NULL, NULL, 0);
}

/* ---- Asanak ---- */

PS_UNUSED static void as(struct reply *r, const char *op, const char *json)
{
    char path[128];
    snprintf(path, sizeof(path), "/asanak/webservice/v2rest/%s", op);
    http(r, NULL, path, "application/json", json, NULL, NULL, 0);
}

/* ---- Twilio ---- */

#define TW_BASE "/twilio/2010-04-01/Accounts/" TW_SID

#endif
