/* dv_peer.h - a scriptable loopback Dataverse peer for test_dataverse.c,
 * built on our http_server (real TCP on 127.0.0.1, in the test's loop).
 *
 * Token endpoints: POST /<tenant>/oauth2/v2.0/token (v2 shape) and
 * /<tenant>/oauth2/token (v1 shape, numbers as strings). Tokens are
 * "tok-<n>"; a token is accepted until ttl seconds after it was issued,
 * except the first `reject_tokens` tokens, which get 401.
 *
 * API under /api/data/v9.2/: each request is recorded (arrival time,
 * concurrency) and answered by `script` (statuses consumed in order, then
 * 200), after hold_ms when set. Special paths: contacts (paging),
 * <set>/Microsoft.Dynamics.CRM.UpdateMultiple / CreateMultiple, $batch.
 * Static functions: include once, after cmocka.h. */
#ifndef SMSYS_TEST_DV_PEER_H
#define SMSYS_TEST_DV_PEER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"
#include "smsys/util.h"

#define PEER_MAX_ARR 4096

struct dvp {
    uv_loop_t *loop;
    struct http_server *srv;
    int port;
    int closed;
    /* token endpoint */
    int token_requests;
    int token_ttl;        /* expires_in given out */
    int reject_tokens;    /* this many first tokens are refused by the API */
    int bad_secret;       /* token endpoint answers 401 invalid_client */
    char last_form[4096]; /* last token form body */
    int token_hang;       /* token endpoint never answers */
    struct http_resp *token_held;
    int ntlm;           /* API demands NTLM (and never completes it) */
    EVP_PKEY *cert_pub; /* verifies client assertions when set */
    char expect_aud[160];
    int assertions_ok;
    char x5t[64];
    char ntlm_seen[128]; /* first Authorization header seen in NTLM mode */
    uint64_t token_issued[64];
    /* api */
    int api_requests;
    int api_401;
    uint64_t arrivals[PEER_MAX_ARR];
    int statuses[PEER_MAX_ARR]; /* what each request got */
    int script[64];
    int n_script, script_at;
    int retry_after;  /* seconds in 429 replies */
    uint64_t t429;    /* when the last 429 was written */
    unsigned hold_ms; /* delay every API reply */
    int inflight, max_inflight;
    int pending; /* held replies not yet sent */
    struct http_resp *hung[16];
    int n_hung;
    /* paging */
    int page_rows; /* total rows of "contacts" */
    char prefer_seen[4][128];
    int pages_served;
    /* bulk */
    int multiple_supported; /* 0: *Multiple answers 404 like an old server */
    int multiple_requests, batch_requests;
    int multiple_rows[16];
    int batch_fail_cid; /* >0: the first $batch fails at this Content-ID with 404 */
    char last_method[16];
    char last_if_match[64];
};

struct held {
    uv_timer_t t;
    struct dvp *p;
    struct http_resp *resp;
    int status;
    char ra[16];
    char *body;
};

static void held_closed_cb(uv_handle_t *h)
{
    struct held *x = container_of((uv_timer_t *)h, struct held, t);
    x->p->pending--;
    free(x->body);
    free(x);
}

static void dvp_send(struct dvp *p, struct http_resp *resp, int status, const char *ra,
                     const char *body)
{
    if (ra && *ra)
        http_resp_header(resp, "Retry-After", ra);
    p->inflight--;
    if (status == 429)
        p->t429 = util_now_ms();
    http_resp_send(resp, status, body && *body ? "application/json; odata.metadata=minimal" : NULL,
                   body ? body : "", body ? strlen(body) : 0);
}

static void held_cb(uv_timer_t *t)
{
    struct held *x = container_of(t, struct held, t);
    dvp_send(x->p, x->resp, x->status, x->ra, x->body);
    uv_close((uv_handle_t *)&x->t, held_closed_cb);
}

static void dvp_reply(struct dvp *p, struct http_resp *resp, int status, const char *body)
{
    char ra[16] = "";
    if (status == 429)
        snprintf(ra, sizeof ra, "%d", p->retry_after);
    if (p->hold_ms == 0) {
        dvp_send(p, resp, status, ra, body);
        return;
    }
    struct held *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->p = p;
    x->resp = resp;
    x->status = status;
    memcpy(x->ra, ra, sizeof ra);
    x->body = body ? strdup(body) : NULL;
    p->pending++;
    uv_timer_init(p->loop, &x->t);
    uv_timer_start(&x->t, held_cb, p->hold_ms, 0);
}

/* base64url -> bytes; returns the length or -1. */
static int b64url_dec(const char *s, size_t n, unsigned char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *q = memchr(tab, s[i], 64);
        if (q == NULL || s[i] == '\0')
            return -1;
        v = (v << 6) | (unsigned)(q - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return (int)o;
}

/* Checks a client_assertion JWT: RS256 signature, aud/iss/sub/exp, x5t. */
static int assertion_ok(struct dvp *p, const char *form)
{
    const char *a = strstr(form, "client_assertion=");
    if (a == NULL || strstr(form, "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
                                  "assertion-type%3Ajwt-bearer") == NULL)
        return 0;
    char jwt[4096];
    a += strlen("client_assertion=");
    size_t jl = strcspn(a, "&");
    if (jl >= sizeof jwt)
        return 0;
    memcpy(jwt, a, jl);
    jwt[jl] = '\0';
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL)
        return 0;
    unsigned char sig[1024], hdr[512], pl[1024];
    int sl = b64url_dec(d2 + 1, strlen(d2 + 1), sig, sizeof sig);
    int hl = b64url_dec(jwt, (size_t)(d1 - jwt), hdr, sizeof hdr - 1);
    int pll = b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), pl, sizeof pl - 1);
    if (sl <= 0 || hl <= 0 || pll <= 0)
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok =
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, p->cert_pub) == 1 &&
        EVP_DigestVerify(ctx, sig, (size_t)sl, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(ctx);
    hdr[hl] = pl[pll] = '\0';
    cJSON *h = cJSON_Parse((char *)hdr), *b = cJSON_Parse((char *)pl);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    const cJSON *x5t = cJSON_GetObjectItemCaseSensitive(h, "x5t");
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(b, "aud");
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(b, "iss");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(b, "sub");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(b, "exp");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(b, "jti");
    ok = ok && cJSON_IsString(alg) && strcmp(alg->valuestring, "RS256") == 0 &&
         cJSON_IsString(x5t) && strcmp(x5t->valuestring, p->x5t) == 0 && cJSON_IsString(aud) &&
         strcmp(aud->valuestring, p->expect_aud) == 0 && cJSON_IsString(iss) &&
         strcmp(iss->valuestring, "smsys-test") == 0 && cJSON_IsString(sub) &&
         strcmp(sub->valuestring, "smsys-test") == 0 && cJSON_IsNumber(exp) &&
         exp->valuedouble > (double)time(NULL) && cJSON_IsString(jti) &&
         strlen(jti->valuestring) == 36;
    cJSON_Delete(h);
    cJSON_Delete(b);
    return ok;
}

static void token_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct dvp *p = ud;
    int v1 = strstr(req->path, "/v2.0/") == NULL;
    snprintf(p->last_form, sizeof p->last_form, "%.*s", (int)req->body_len, req->body);
    if (p->token_hang) {
        p->token_held = resp; /* answered at dvp_stop, to nobody */
        return;
    }
    int cert_ok = p->cert_pub && assertion_ok(p, p->last_form);
    p->assertions_ok += cert_ok;
    if (p->bad_secret || (!cert_ok && strstr(p->last_form, "client_secret=good") == NULL)) {
        const char *e = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                        "Invalid client secret provided. Ensure the secret being sent in the "
                        "request is the client secret value.\",\"error_codes\":[7000215]}";
        http_resp_send(resp, 401, "application/json", e, strlen(e));
        return;
    }
    int n = ++p->token_requests;
    if (n < 64)
        p->token_issued[n] = util_now_ms();
    char body[256];
    if (v1)
        snprintf(body, sizeof body,
                 "{\"token_type\":\"Bearer\",\"expires_in\":\"%d\",\"ext_expires_in\":\"%d\","
                 "\"expires_on\":\"1795855844\",\"resource\":\"http://x/\",\"access_token\":"
                 "\"tok-%d\"}",
                 p->token_ttl, p->token_ttl, n);
    else
        snprintf(body, sizeof body,
                 "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,"
                 "\"access_token\":\"tok-%d\"}",
                 p->token_ttl, p->token_ttl, n);
    http_resp_send(resp, 200, "application/json", body, strlen(body));
}

/* 1 when the request carries a token the peer accepts. */
static int token_ok(struct dvp *p, struct http_req *req)
{
    const char *a = http_req_header(req, "Authorization");
    long long n;
    if (a == NULL || strncmp(a, "Bearer tok-", 11) != 0 || util_parse_int(a + 11, 1, 63, &n) != 0 ||
        n > p->token_requests)
        return 0;
    if (n <= p->reject_tokens)
        return 0;
    return util_now_ms() < p->token_issued[n] + (uint64_t)p->token_ttl * 1000;
}

static void page_reply(struct dvp *p, struct http_req *req, struct http_resp *resp)
{
    const char *pref = http_req_header(req, "Prefer");
    if (p->pages_served < 4)
        snprintf(p->prefer_seen[p->pages_served], sizeof p->prefer_seen[0], "%s", pref ? pref : "");
    p->pages_served++;
    int size = 5000, from = 0;
    const char *ps = pref ? strstr(pref, "odata.maxpagesize=") : NULL;
    if (ps)
        size = (int)strtol(ps + 18, NULL, 10);
    const char *sk = strstr(req->query, "skiptoken=");
    if (sk)
        from = (int)strtol(sk + 10, NULL, 10);
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "{\"@odata.context\":\"x\",\"value\":["), 0);
    int to = from + size < p->page_rows ? from + size : p->page_rows;
    for (int i = from; i < to; i++)
        assert_int_equal(buf_printf(&b, "%s{\"contactid\":\"%08d-0000-0000-0000-000000000000\"}",
                                    i > from ? "," : "", i),
                         0);
    assert_int_equal(buf_puts(&b, "]"), 0);
    if (to < p->page_rows)
        assert_int_equal(buf_printf(&b,
                                    ",\"@odata.nextLink\":\"http://127.0.0.1:%d/api/data/v9.2/"
                                    "contacts?$select=contactid&$skiptoken=%d\"",
                                    p->port, to),
                         0);
    else
        assert_int_equal(buf_puts(&b, ",\"@odata.deltaLink\":\"http://d/delta\""), 0);
    assert_int_equal(buf_puts(&b, "}"), 0);
    dvp_reply(p, resp, 200, b.data);
    buf_free(&b);
}

static void batch_reply(struct dvp *p, struct http_req *req, struct http_resp *resp)
{
    p->batch_requests++;
    const char *ct = http_req_header(req, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "multipart/mixed; boundary=batch_"));
    int n = 0;
    for (const char *s = req->body; (s = strstr(s, "Content-ID: ")) != NULL; s++)
        n++;
    assert_true(n > 0 && n <= 1000);
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "--batchresponse_r\r\nContent-Type: multipart/mixed; "
                                  "boundary=changesetresponse_c\r\n\r\n"),
                     0);
    int fail = p->batch_fail_cid;
    if (fail > 0) {
        p->batch_fail_cid = 0;
        assert_int_equal(
            buf_printf(&b,
                       "--changesetresponse_c\r\nContent-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n"
                       "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
                       "{\"error\":{\"code\":\"0x80040217\",\"message\":\"contact With Id = x "
                       "Does Not Exist\"}}\r\n",
                       fail),
            0);
    } else {
        for (int i = 1; i <= n; i++)
            assert_int_equal(buf_printf(&b,
                                        "--changesetresponse_c\r\nContent-Type: application/http"
                                        "\r\nContent-Transfer-Encoding: binary\r\nContent-ID: "
                                        "%d\r\n\r\nHTTP/1.1 204 No Content\r\nOData-EntityId: "
                                        "http://h/api/data/v9.2/contacts(%08d-0000-0000-0000-"
                                        "00000000000b)\r\n\r\n\r\n",
                                        i, i),
                             0);
    }
    assert_int_equal(buf_puts(&b, "--changesetresponse_c--\r\n--batchresponse_r--\r\n"), 0);
    http_resp_header(resp, "Content-Type", "multipart/mixed; boundary=batchresponse_r");
    p->inflight--;
    http_resp_send(resp, 200, NULL, b.data, b.len);
    buf_free(&b);
}

static void multiple_reply(struct dvp *p, struct http_req *req, struct http_resp *resp)
{
    int create = strstr(req->path, "CreateMultiple") != NULL;
    if (!p->multiple_supported) {
        dvp_reply(p, resp, 404,
                  create ? "{\"error\":{\"code\":\"0x0\",\"message\":\"Resource not found for "
                           "the segment 'Microsoft.Dynamics.CRM.CreateMultiple'.\"}}"
                         : "{\"error\":{\"code\":\"0x0\",\"message\":\"Resource not found for "
                           "the segment 'Microsoft.Dynamics.CRM.UpdateMultiple'.\"}}");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "Targets");
    assert_true(cJSON_IsArray(t));
    int n = cJSON_GetArraySize(t);
    assert_true(n > 0 && n <= 1000);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(t, 0), "@odata.type");
    assert_true(cJSON_IsString(ty));
    assert_string_equal(ty->valuestring, "Microsoft.Dynamics.CRM.contact");
    if (p->multiple_requests < 16)
        p->multiple_rows[p->multiple_requests] = n;
    p->multiple_requests++;
    cJSON_Delete(j);
    if (!create) {
        dvp_reply(p, resp, 204, NULL);
        return;
    }
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "{\"Ids\":["), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(buf_printf(&b, "%s\"%08d-0000-0000-0000-00000000000c\"", i ? "," : "", i),
                         0);
    assert_int_equal(buf_puts(&b, "]}"), 0);
    dvp_reply(p, resp, 200, b.data);
    buf_free(&b);
}

static void api_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct dvp *p = ud;
    int i = p->api_requests++;
    if (i < PEER_MAX_ARR)
        p->arrivals[i] = util_now_ms();
    p->inflight++;
    if (p->inflight > p->max_inflight)
        p->max_inflight = p->inflight;
    snprintf(p->last_method, sizeof p->last_method, "%s", req->method);
    const char *im = http_req_header(req, "If-Match");
    snprintf(p->last_if_match, sizeof p->last_if_match, "%s", im ? im : "");
    /* every request must carry the OData headers */
    assert_string_equal(http_req_header(req, "OData-Version"), "4.0");
    assert_string_equal(http_req_header(req, "OData-MaxVersion"), "4.0");
    assert_string_equal(http_req_header(req, "Accept"), "application/json");
    if (req->body_len && strcmp(req->path, "/api/data/v9.2/$batch") != 0)
        assert_string_equal(http_req_header(req, "Content-Type"),
                            "application/json; charset=utf-8");
    if (p->ntlm) {
        const char *a = http_req_header(req, "Authorization");
        if (a && !p->ntlm_seen[0])
            snprintf(p->ntlm_seen, sizeof p->ntlm_seen, "%s", a);
        p->inflight--;
        http_resp_header(resp, "WWW-Authenticate", "NTLM");
        http_resp_send(resp, 401, NULL, "", 0);
        return;
    }
    if (!token_ok(p, req)) {
        p->api_401++;
        if (i < PEER_MAX_ARR)
            p->statuses[i] = 401;
        dvp_reply(p, resp, 401, NULL);
        return;
    }
    int st = p->script_at < p->n_script ? p->script[p->script_at++] : 200;
    if (i < PEER_MAX_ARR)
        p->statuses[i] = st;
    if (st == 0) { /* "hang": never answer (the client times out) */
        p->inflight--;
        assert_true(p->n_hung < 16);
        p->hung[p->n_hung++] = resp; /* answered at dvp_stop, to nobody */
        return;
    }
    if (st != 200) {
        const char *body = st == 429   ? "{\"error\":{\"code\":\"0x80072322\",\"message\":\"Number "
                                         "of requests exceeded the limit of 6000 over time window "
                                         "of 300 seconds.\"}}"
                           : st == 404 ? "{\"error\":{\"code\":\"0x80040217\",\"message\":\"smsys_"
                                         "sms With Id = x Does Not Exist\"}}"
                           : st == 412 ? "{\"error\":{\"code\":\"0x80060882\",\"message\":\"The "
                                         "version of the existing record doesn't match\"}}"
                           : st >= 500 ? "{\"error\":{\"code\":\"0x80040216\",\"message\":\"An "
                                         "unexpected error occurred.\"}}"
                                       : NULL;
        dvp_reply(p, resp, st, body);
        return;
    }
    const char *path = req->path + strlen("/api/data/v9.2/");
    if (strcmp(path, "WhoAmI") == 0) {
        dvp_reply(p, resp, 200,
                  "{\"@odata.context\":\"x\",\"BusinessUnitId\":\"11111111-1111-1111-1111-"
                  "111111111111\",\"UserId\":\"22222222-2222-2222-2222-222222222222\","
                  "\"OrganizationId\":\"33333333-3333-3333-3333-333333333333\"}");
    } else if (strcmp(path, "contacts") == 0 && strcmp(req->method, "GET") == 0) {
        page_reply(p, req, resp);
    } else if (strcmp(path, "$batch") == 0) {
        batch_reply(p, req, resp);
    } else if (strstr(path, "Multiple")) {
        multiple_reply(p, req, resp);
    } else if (strcmp(req->method, "POST") == 0) {
        http_resp_header(resp, "OData-EntityId",
                         "http://127.0.0.1/api/data/v9.2/smsys_smses(AAAAAAAA-0000-0000-0000-"
                         "000000000001)");
        dvp_reply(p, resp, 204, NULL);
    } else if (strcmp(req->method, "GET") == 0) {
        dvp_reply(p, resp, 200, "{\"value\":[]}");
    } else {
        dvp_reply(p, resp, 204, NULL);
    }
}

static void dvp_start(struct dvp *p, uv_loop_t *loop)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->token_ttl = 3599;
    p->retry_after = 2;
    struct http_server_opts so = {.listen = "127.0.0.1:0", .max_body_bytes = 16 << 20};
    assert_int_equal(http_server_new(loop, &so, &p->srv), 0);
    assert_int_equal(http_server_route(p->srv, "POST", "/tenant/oauth2/", token_cb, p), 0);
    assert_int_equal(http_server_route(p->srv, NULL, "/api/data/v9.2/", api_cb, p), 0);
    p->port = http_server_port(p->srv);
}

static void dvp_closed_cb(void *ud)
{
    ((struct dvp *)ud)->closed = 1;
}

static void dvp_stop(struct dvp *p)
{
    for (int i = 0; i < p->n_hung; i++)
        http_resp_send(p->hung[i], 503, NULL, "", 0);
    p->n_hung = 0;
    if (p->token_held)
        http_resp_send(p->token_held, 503, NULL, "", 0);
    p->token_held = NULL;
    http_server_close(p->srv, dvp_closed_cb, p);
}

#endif
