/* health.c - /healthz: named, non-blocking component checks. */
#include "smsys/health.h"

#include "smsys/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct check {
    char *name;
    health_check_cb cb;
    void *ud;
};

struct health {
    struct check *checks;
    size_t n, cap;
};

int health_new(struct health **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

int health_add(struct health *h, const char *name, health_check_cb cb, void *ud)
{
    if (name == NULL || *name == '\0' || cb == NULL)
        return -EINVAL;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4;
        struct check *c = realloc(h->checks, cap * sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        h->checks = c;
        h->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return -ENOMEM;
    h->checks[h->n++] = (struct check){copy, cb, ud};
    return 0;
}

void health_free(struct health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->checks[i].name);
    free(h->checks);
    free(h);
}

int health_eval(const struct health *h, struct buf *out)
{
    struct buf checks = BUF_INIT;
    int ok = 1, rc = 0;
    size_t n = h ? h->n : 0;
    for (size_t i = 0; i < n; i++) {
        char detail[256] = "";
        int r = h->checks[i].cb(h->checks[i].ud, detail, sizeof(detail));
        detail[sizeof(detail) - 1] = '\0';
        if (r != 0) {
            ok = 0;
            if (detail[0] == '\0')
                memcpy(detail, "fail", 5);
        }
        rc |= buf_append(&checks, i ? ",\"" : "\"", i ? 2 : 1) |
              buf_put_jsonstr(&checks, h->checks[i].name) | buf_append(&checks, "\":\"", 3) |
              buf_put_jsonstr(&checks, r == 0 ? "ok" : detail) | buf_putc(&checks, '"');
    }
    if (out) {
        rc |= buf_puts(out, ok ? "{\"status\":\"ok\"" : "{\"status\":\"fail\"");
        if (n)
            rc |= buf_append(out, ",\"checks\":{", 11) |
                  buf_append(out, checks.data ? checks.data : "", checks.len) | buf_putc(out, '}');
        rc |= buf_append(out, "}\n", 2);
    }
    buf_free(&checks);
    (void)rc; /* a truncated document still carries the right status code */
    return ok;
}

void health_http_handler(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct buf b = BUF_INIT;
    int ok = health_eval(ud, &b);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_send(resp, ok ? 200 : 503, "application/json", b.data ? b.data : "", b.len);
    buf_free(&b);
}
