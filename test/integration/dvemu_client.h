/* dvemu_client.h - what the dvemu integration tests share: start the real
 * build/bin/dvemu on a free loopback port, get a token, and make blocking
 * libcurl requests whose status, headers and JSON body the tests assert.
 * Header-only (static inline) because the Makefile builds one binary per
 * test_*.c file. Include after <cmocka.h> and testutil.h. */
#ifndef DVEMU_CLIENT_H
#define DVEMU_CLIENT_H
/* Helpers are prefixed emu_ so they never clash with the dv_ client API. */

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "smsys/buf.h"
#include "../lib/world.h"

struct emuproc {
    pid_t pid;
    int port;
    char root[64]; /* http://127.0.0.1:port */
    char api[96];  /* root + /api/data/v9.2/ */
    char token[4096];
    char log[256];
    CURL *curl;
};

struct emures {
    long status;
    struct buf body;
    struct buf headers;
    cJSON *json; /* parsed body when it is JSON, else NULL */
};

static inline size_t emu_write_cb(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* Starts dvemu with extra arguments (NULL-terminated list, may be NULL)
 * on a free port through the world harness (which stops it at
 * world_cleanup if emu_stop never ran). */
static inline void emu_start_args(struct emuproc *d, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    struct world_dv w = {0};
    world_dv_start(&w, extra);
    d->pid = w.pid;
    d->port = w.port;
    snprintf(d->root, sizeof(d->root), "%s", w.root);
    snprintf(d->log, sizeof(d->log), "%s", w.log);
    snprintf(d->api, sizeof(d->api), "%s/api/data/v9.2/", d->root);
    d->curl = w.curl; /* now d's */
}

/* kill -9 (a crash); the curl handle is freed too, as emu_start begins
 * from a zeroed struct. */
static inline void emu_kill9(struct emuproc *d)
{
    world_kill9(d->pid);
    d->pid = 0;
    if (d->curl)
        curl_easy_cleanup(d->curl);
    d->curl = NULL;
}

static inline void emures_free(struct emures *r)
{
    buf_free(&r->body);
    buf_free(&r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

/* Makes one request. url: absolute ("http..."), root-relative ("/..."), or
 * relative to /api/data/v9.2/. hdrs: NULL-terminated "Name: value" list.
 * The bearer token is added when d->token is set and auth is nonzero. */
static inline long emu_req_full(struct emuproc *d, const char *method, const char *url,
                                const char *const *hdrs, const char *body, size_t blen, int auth,
                                struct emures *r)
{
    memset(r, 0, sizeof(*r));
    char full[8192];
    if (strncmp(url, "http", 4) == 0)
        snprintf(full, sizeof(full), "%s", url);
    else if (url[0] == '/')
        snprintf(full, sizeof(full), "%s%s", d->root, url);
    else
        snprintf(full, sizeof(full), "%s%s", d->api, url);
    CURL *c = d->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, emu_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, emu_write_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    struct curl_slist *sl = NULL;
    char authz[4200];
    if (auth && d->token[0]) {
        snprintf(authz, sizeof(authz), "Authorization: Bearer %s", d->token);
        sl = curl_slist_append(sl, authz);
    }
    sl = curl_slist_append(sl, "Accept: application/json");
    sl = curl_slist_append(sl, "OData-MaxVersion: 4.0");
    sl = curl_slist_append(sl, "OData-Version: 4.0");
    int has_ct = 0;
    for (int i = 0; hdrs && hdrs[i]; i++) {
        sl = curl_slist_append(sl, hdrs[i]);
        if (strncasecmp(hdrs[i], "Content-Type:", 13) == 0)
            has_ct = 1;
    }
    if (body && !has_ct)
        sl = curl_slist_append(sl, "Content-Type: application/json; charset=utf-8");
    sl = curl_slist_append(sl, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(sl);
    assert_int_equal(cc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body.len)
        r->json = cJSON_ParseWithLength(r->body.data, r->body.len);
    return r->status;
}

static inline long emu_req(struct emuproc *d, const char *method, const char *url,
                           const char *const *hdrs, const char *body, struct emures *r)
{
    return emu_req_full(d, method, url, hdrs, body, body ? strlen(body) : 0, 1, r);
}

/* Value of a response header (last occurrence) into a static buffer, or NULL. */
static inline const char *emu_hdr(const struct emures *r, const char *name)
{
    static char val[4096];
    const char *found = NULL;
    size_t nl = strlen(name);
    for (const char *p = r->headers.data; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(val, sizeof(val), "%.*s", (int)(eol - v), v);
            found = val;
        }
        p = eol + 2;
    }
    return found;
}

static inline void emu_token(struct emuproc *d)
{
    struct emures r;
    const char *form = "client_id=smsys-demo&client_secret=smsys-demo-secret"
                       "&grant_type=client_credentials&scope=http%3A%2F%2F127.0.0.1%2F.default";
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    emu_req_full(d, "POST", "/tenant-1/oauth2/v2.0/token", h, form, strlen(form), 0, &r);
    assert_int_equal(r.status, 200);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r.json, "access_token");
    assert_true(cJSON_IsString(t));
    snprintf(d->token, sizeof(d->token), "%s", t->valuestring);
    emures_free(&r);
}

static inline void emu_start(struct emuproc *d, const char *const *extra)
{
    emu_start_args(d, extra);
    emu_token(d);
}

static inline void emu_stop(struct emuproc *d)
{
    if (d->pid > 0) {
        int st = world_stop(d->pid);
        /* a clean SIGTERM stop exits 0; anything else is a bug (crash, leak report) */
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    d->pid = 0;
    if (d->curl)
        curl_easy_cleanup(d->curl);
    d->curl = NULL;
}

static inline const char *emu_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Creates a row, returns its id (static buffer) from OData-EntityId. */
static inline const char *emu_create(struct emuproc *d, const char *set, const char *body)
{
    static char id[64];
    struct emures r;
    emu_req(d, "POST", set, NULL, body, &r);
    if (r.status != 204)
        fprintf(stderr, "create %s -> %ld %s\n", set, r.status, r.body.data ? r.body.data : "");
    assert_int_equal(r.status, 204);
    const char *eid = emu_hdr(&r, "OData-EntityId");
    assert_non_null(eid);
    const char *open = strrchr(eid, '(');
    assert_non_null(open);
    snprintf(id, sizeof(id), "%.36s", open + 1);
    emures_free(&r);
    return id;
}

/* Asserts Dataverse's error shape with the given status and code. */
static inline void emu_assert_error(const struct emures *r, long status, const char *code)
{
    if (r->status != status)
        fprintf(stderr, "expected %ld got %ld: %s\n", status, r->status,
                r->body.data ? r->body.data : "");
    assert_int_equal(r->status, status);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    assert_true(cJSON_IsObject(err));
    assert_non_null(emu_str(err, "message"));
    if (code)
        assert_string_equal(emu_str(err, "code"), code);
}

#endif
