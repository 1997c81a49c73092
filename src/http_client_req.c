/* http_client_req.c - the request side of http_client: validation, curl
 * options per transfer, the write/header/debug callbacks, error mapping,
 * and the small public helpers (headers, form encoding). */
#include "http_client_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int http_client_req_result(struct http_call *call, CURLcode res)
{
    if (call->abort_rc)
        return call->abort_rc; /* detail set by abort_easy */
    if (res == CURLE_OK && !call->too_big && !call->oom)
        return 0;
    const char *what = curl_easy_strerror(res);
    const char *more = call->errbuf[0] ? call->errbuf : "";
    const char *sep = call->errbuf[0] ? ": " : "";
    int rc;
    if (call->too_big || res == CURLE_FILESIZE_EXCEEDED) {
        snprintf(call->detail, sizeof call->detail, "response over the size limit (%zu bytes)",
                 call->body.max);
        return SMSYS_ETOOBIG;
    }
    if (call->oom || res == CURLE_OUT_OF_MEMORY) {
        snprintf(call->detail, sizeof call->detail, "out of memory reading the response");
        return -ENOMEM;
    }
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        rc = -ETIMEDOUT;
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    case CURLE_AGAIN:
        rc = SMSYS_ETEMP;
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
        rc = SMSYS_EAUTH;
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        rc = -EINVAL;
        break;
    default: /* TLS handshake, bad framing, redirect loops, ... */
        rc = SMSYS_EPROTO;
        break;
    }
    snprintf(call->detail, sizeof call->detail, "%.200s%s%.300s", what, sep, more);
    return rc;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_call *call = ud;
    size_t len = size * n;
    int rc = buf_append(&call->body, p, len);
    if (rc == -E2BIG)
        call->too_big = 1;
    else if (rc)
        call->oom = 1;
    return rc ? 0 : len; /* 0 aborts the transfer with CURLE_WRITE_ERROR */
}

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Keeps the header lines of the last response as name\0value\0 pairs. A
 * status line starts a new response (100-continue, auth round, redirect,
 * proxy CONNECT), so it drops what came before. */
static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_call *call = ud;
    size_t total = size * n, len = total;
    struct buf *b = &call->hdr_raw;
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        buf_reset(b);
        call->n_hdr = 0;
        return total;
    }
    if (len == 0)
        return total;
    size_t old = b->len;
    int rc = 0;
    if (is_ws(p[0])) {
        /* obs-fold: continues the previous value */
        if (call->n_hdr == 0)
            return total;
        size_t i = 0;
        while (i < len && is_ws(p[i]))
            i++;
        b->len--; /* reopen the value's NUL */
        rc = buf_putc(b, ' ');
        if (!rc)
            rc = buf_append(b, p + i, len - i);
        if (!rc)
            rc = buf_append(b, "", 1);
    } else {
        const char *colon = memchr(p, ':', len);
        if (colon == NULL || colon == p)
            return total; /* not a header line; ignore rather than fail */
        size_t nlen = (size_t)(colon - p);
        while (nlen && is_ws(p[nlen - 1]))
            nlen--;
        const char *v = colon + 1, *end = p + len;
        while (v < end && is_ws(*v))
            v++;
        while (end > v && is_ws(end[-1]))
            end--;
        rc = buf_append(b, p, nlen);
        if (!rc)
            rc = buf_append(b, "", 1);
        if (!rc)
            rc = buf_append(b, v, (size_t)(end - v));
        if (!rc)
            rc = buf_append(b, "", 1);
        if (!rc)
            call->n_hdr++;
    }
    if (rc) {
        b->len = old;
        if (b->data)
            b->data[old] = '\0';
        if (rc == -E2BIG)
            call->too_big = 1;
        else
            call->oom = 1;
        return 0;
    }
    return total;
}

/* curl reports here what it has written to the socket; that is how we
 * know whether the whole request left us (the unknown-outcome flag). */
static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *ud)
{
    struct http_call *call = ud;
    (void)easy;
    (void)data;
    if (type == CURLINFO_HEADER_OUT)
        call->header_out = 1;
    else if (type == CURLINFO_DATA_OUT)
        call->data_out += (curl_off_t)size;
    return 0;
}

static int method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > MAX_METHOD_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("!#$%&'*+-.^_`|~", m[i]) && !(m[i] >= '0' && m[i] <= '9') &&
            !(m[i] >= 'A' && m[i] <= 'Z') && !(m[i] >= 'a' && m[i] <= 'z'))
            return 0;
    return 1;
}

static int url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u == NULL)
        return -ENOMEM;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0))
        rc = 0;
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int auth_ok(enum http_auth a)
{
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    switch (a) {
    case HTTP_AUTH_NONE:
    case HTTP_AUTH_BASIC:
        return 0;
    case HTTP_AUTH_NTLM:
        return (v->features & CURL_VERSION_NTLM) ? 0 : -ENOTSUP;
    case HTTP_AUTH_NEGOTIATE:
        return (v->features & CURL_VERSION_SPNEGO) ? 0 : -ENOTSUP;
    }
    return -EINVAL;
}

int http_client_req_check(const struct http_request *req)
{
    if (req->url == NULL || (req->body == NULL && req->body_len))
        return -EINVAL;
    if (req->method && !method_ok(req->method))
        return -EINVAL;
    if (req->n_headers && req->headers == NULL)
        return -EINVAL;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];
        /* CR/LF would let a value smuggle in extra headers. */
        if (h == NULL || strpbrk(h, "\r\n") || !strpbrk(h, ":;") || is_ws(h[0]) || h[0] == ':')
            return -EINVAL;
    }
    if (req->auth != HTTP_AUTH_NONE && req->username == NULL)
        return -EINVAL;
    int rc = auth_ok(req->auth);
    if (rc)
        return rc;
    return url_ok(req->url);
}

static int has_header(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], name, n) == 0 &&
            (req->headers[i][n] == ':' || req->headers[i][n] == ';'))
            return 1;
    return 0;
}

int http_client_req_setup(struct http_client *c, struct http_call *call,
                          const struct http_request *req)
{
    CURL *e = call->easy;
    CURLcode r = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (r == CURLE_OK)                                                                         \
            r = curl_easy_setopt(e, opt, val);                                                     \
    } while (0)
    SET(CURLOPT_PRIVATE, (void *)call);
    SET(CURLOPT_ERRORBUFFER, call->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    SET(CURLOPT_TCP_KEEPALIVE, 1L);

    const char *m = call->method;
    int bodyless = req->body_len == 0 && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
                                          strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0);
    if (strcmp(m, "HEAD") == 0 && bodyless) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (bodyless) {
        SET(CURLOPT_HTTPGET, 1L);
        if (strcmp(m, "GET") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
    } else {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body_len ? (const char *)req->body : "");
        if (strcmp(m, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
    }

    for (size_t i = 0; i < req->n_headers && r == CURLE_OK; i++) {
        struct curl_slist *l = curl_slist_append(call->hdrs, req->headers[i]);
        if (l == NULL)
            r = CURLE_OUT_OF_MEMORY;
        else
            call->hdrs = l;
    }
    /* curl would otherwise wait up to a second for "100 Continue" on big
     * bodies; the APIs we call do not need it. */
    if (r == CURLE_OK && !has_header(req, "Expect")) {
        struct curl_slist *l = curl_slist_append(call->hdrs, "Expect:");
        if (l == NULL)
            r = CURLE_OUT_OF_MEMORY;
        else
            call->hdrs = l;
    }
    SET(CURLOPT_HTTPHEADER, call->hdrs);

    SET(CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : c->timeout_ms));
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        (long)(req->connect_timeout_ms ? req->connect_timeout_ms : c->connect_timeout_ms));
    size_t cap = req->max_response_bytes ? req->max_response_bytes : c->max_response;
    call->body.max = cap;
    call->hdr_raw.max = MAX_HEADER_BYTES;
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);

    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, (void *)call);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, (void *)call);
    SET(CURLOPT_DEBUGFUNCTION, debug_cb);
    SET(CURLOPT_DEBUGDATA, (void *)call);
    SET(CURLOPT_VERBOSE, 1L); /* feeds debug_cb only; nothing is printed */

    /* Only configured proxies: "" also stops curl reading http_proxy &c.
     * from the environment, so a stray variable cannot reroute traffic. */
    const char *proxy = req->proxy ? req->proxy : c->proxy;
    if (proxy && *proxy) {
        SET(CURLOPT_PROXY, proxy);
        SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_ANY);
        SET(CURLOPT_NOPROXY, c->no_proxy ? c->no_proxy : "");
    } else {
        SET(CURLOPT_PROXY, "");
    }

    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);

    if (req->max_redirects) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)req->max_redirects);
    } else {
        SET(CURLOPT_FOLLOWLOCATION, 0L);
    }

    if (req->auth != HTTP_AUTH_NONE) {
        static const unsigned long modes[] = {
            [HTTP_AUTH_BASIC] = CURLAUTH_BASIC,
            [HTTP_AUTH_NTLM] = CURLAUTH_NTLM,
            [HTTP_AUTH_NEGOTIATE] = CURLAUTH_NEGOTIATE,
        };
        SET(CURLOPT_HTTPAUTH, modes[req->auth]);
        if (req->auth == HTTP_AUTH_NEGOTIATE && req->username[0] == '\0') {
            SET(CURLOPT_USERPWD, ":"); /* use the Kerberos ticket cache */
        } else {
            SET(CURLOPT_USERNAME, req->username);
            SET(CURLOPT_PASSWORD, req->password ? req->password : "");
        }
    }
#undef SET
    if (r == CURLE_OUT_OF_MEMORY)
        return -ENOMEM;
    return r == CURLE_OK ? 0 : -EINVAL;
}

const char *http_client_header_nth(const struct http_response *resp, const char *name, size_t n)
{
    if (resp == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0 && n-- == 0)
            return resp->headers[i].value;
    return NULL;
}

const char *http_client_header_get(const struct http_response *resp, const char *name)
{
    return http_client_header_nth(resp, name, 0);
}

int http_client_outcome_unknown(int rc, const struct http_response *resp)
{
    return rc < 0 && resp != NULL && resp->request_sent;
}

int http_client_form_add(struct buf *b, const char *name, const char *value)
{
    if (b == NULL || name == NULL || value == NULL)
        return -EINVAL;
    size_t old = b->len;
    int rc = b->len ? buf_putc(b, '&') : 0;
    if (!rc)
        rc = buf_put_urlenc(b, name);
    if (!rc)
        rc = buf_putc(b, '=');
    if (!rc)
        rc = buf_put_urlenc(b, value);
    if (rc && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}
