/* hook.c - the simulator's outgoing calls: Twilio StatusCallback and
 * inbound webhooks, Kavenegar's callback URL.
 *
 * libcurl multi, driven by a short uv timer that calls
 * curl_multi_perform while transfers are in flight. That is polling, not
 * the socket-callback integration the service's HTTP client uses; it is
 * enough for a loopback simulator (a few ms of extra latency per
 * callback) and keeps this file small. Only 127.0.0.1 / ::1 URLs are
 * ever called. */
#include "provsim.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/util.h"

#define HOOK_POLL_MS    5
#define HOOK_TIMEOUT_MS 5000

struct hook_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    enum sim_prov prov;
    struct list_node node; /* on sim_hooks.xfers */
};

struct sim_hooks {
    struct sim *sim;
    CURLM *multi;
    uv_timer_t poll;
    struct list xfers; /* of struct hook_xfer, in the multi */
};

int hooks_url_is_loopback(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *scheme = NULL;
    int ok = 0;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
        ok = (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
             (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

static int pair_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    int c = strcmp(x[0], y[0]);
    return c ? c : strcmp(x[1], y[1]);
}

int twilio_signature(const char *key, const char *url, const char *const *pairs, char *out,
                     size_t outlen)
{
    size_t n = 0;
    while (pairs && pairs[2 * n])
        n++;
    const char **sorted = malloc((n ? n : 1) * 2 * sizeof(char *));
    struct buf data = BUF_INIT;
    int rc = -ENOMEM;
    if (!sorted || outlen < 40)
        goto out;
    memcpy(sorted, pairs, n * 2 * sizeof(char *));
    qsort(sorted, n, 2 * sizeof(char *), pair_cmp);
    if (buf_puts(&data, url))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (buf_puts(&data, sorted[2 * i]) || buf_puts(&data, sorted[2 * i + 1]))
            goto out;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)data.data, data.len, md,
              &mdlen)) {
        rc = -EINVAL;
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    rc = 0;
out:
    free(sorted);
    buf_free(&data);
    return rc;
}

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static void xfer_done(struct sim_hooks *h, struct hook_xfer *x, CURLcode res)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    struct sim_account *a = &h->sim->acct[x->prov];
    if (res == CURLE_OK && code >= 200 && code < 300) {
        a->st_push_ok++;
    } else {
        a->st_push_fail++;
        log_warn("callback failed", "provider=%s http_status=%ld error=%s", sim_prov_name(x->prov),
                 code, log_q(curl_easy_strerror(res)));
    }
    list_remove(&h->xfers, &x->node);
    curl_multi_remove_handle(h->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x);
}

static void poll_cb(uv_timer_t *t)
{
    struct sim_hooks *h = container_of(t, struct sim_hooks, poll);
    int running = 0;
    curl_multi_perform(h->multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct hook_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        xfer_done(h, x, msg->data.result);
    }
    if (list_empty(&h->xfers))
        uv_timer_stop(&h->poll);
}

int hooks_post(struct sim *sim, enum sim_prov p, const char *url, const char *const *pairs,
               const char *sign_key)
{
    struct sim_hooks *h = sim->hooks;
    if (!h || sim->closing)
        return -ECANCELED;
    if (!hooks_url_is_loopback(url)) {
        log_warn("callback refused", "provider=%s reason=\"not a loopback URL\"", sim_prov_name(p));
        sim->acct[p].st_push_fail++;
        return -EPERM;
    }
    struct buf body = BUF_INIT;
    for (size_t i = 0; pairs[2 * i]; i++)
        if ((i && buf_putc(&body, '&')) || buf_put_urlenc(&body, pairs[2 * i]) ||
            buf_putc(&body, '=') || buf_put_urlenc(&body, pairs[2 * i + 1])) {
            buf_free(&body);
            return -ENOMEM;
        }
    struct hook_xfer *x = calloc(1, sizeof(*x));
    char hdr[128];
    int rc = -ENOMEM;
    if (!x || !(x->easy = curl_easy_init()))
        goto fail;
    x->prov = p;
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    if (!x->hdrs)
        goto fail;
    if (sign_key) {
        char sig[64];
        struct curl_slist *nh;
        if ((rc = twilio_signature(sign_key, url, pairs, sig, sizeof(sig))))
            goto fail;
        snprintf(hdr, sizeof(hdr), "X-Twilio-Signature: %s", sig);
        if (!(nh = curl_slist_append(x->hdrs, hdr))) {
            rc = -ENOMEM;
            goto fail;
        }
        x->hdrs = nh;
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)HOOK_TIMEOUT_MS);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)body.len);
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body.data ? body.data : "");
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "provsim/1");
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        rc = -ENOMEM;
        goto fail;
    }
    buf_free(&body);
    list_push_front(&h->xfers, &x->node);
    if (!uv_is_active((uv_handle_t *)&h->poll))
        uv_timer_start(&h->poll, poll_cb, 0, HOOK_POLL_MS);
    return 0;
fail:
    buf_free(&body);
    if (x) {
        if (x->easy)
            curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->hdrs);
        free(x);
    }
    sim->acct[p].st_push_fail++;
    return rc;
}

int hooks_new(struct sim *sim)
{
    struct sim_hooks *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->sim = sim;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return -ENOMEM;
    }
    int rc = uv_timer_init(sim->loop, &h->poll);
    if (rc) {
        curl_multi_cleanup(h->multi);
        free(h);
        return rc;
    }
    sim->hooks = h;
    return 0;
}

static void hooks_close_cb(uv_handle_t *hd)
{
    free(container_of((uv_timer_t *)hd, struct sim_hooks, poll));
}

void hooks_free(struct sim *sim)
{
    struct sim_hooks *h = sim->hooks;
    if (!h)
        return;
    struct list_node *n;
    while ((n = list_pop_front(&h->xfers)) != NULL) {
        struct hook_xfer *x = list_entry(n, struct hook_xfer, node);
        curl_multi_remove_handle(h->multi, x->easy);
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->hdrs);
        free(x);
    }
    curl_multi_cleanup(h->multi);
    sim->hooks = NULL;
    uv_close((uv_handle_t *)&h->poll, hooks_close_cb);
}
