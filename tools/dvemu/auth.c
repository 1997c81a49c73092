/* auth.c - the Entra ID client-credentials token endpoint (v2 and the
 * older v1 / AD FS shape) and bearer-token checks. Tokens are real
 * JWT-shaped strings signed with HMAC-SHA256 under a per-process key (kept
 * in DIR/token.key with --data, so tokens survive a restart). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/util.h"

int auth_init(struct emu *e, const char *dir)
{
    if (dir) {
        char path[4096];
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        snprintf(path, sizeof(path), "%s/token.key", dir);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, e->key, sizeof(e->key));
            close(fd);
            if (n == (ssize_t)sizeof(e->key))
                return 0;
        }
        if (RAND_bytes(e->key, sizeof(e->key)) != 1)
            return -EIO;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            return -errno;
        ssize_t w = write(fd, e->key, sizeof(e->key));
        fsync(fd);
        close(fd);
        return w == (ssize_t)sizeof(e->key) ? 0 : -EIO;
    }
    return RAND_bytes(e->key, sizeof(e->key)) == 1 ? 0 : -EIO;
}

static void b64url(struct buf *b, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_putc(b, tbl[(v >> 18) & 63]);
        buf_putc(b, tbl[(v >> 12) & 63]);
        if (i + 1 < n)
            buf_putc(b, tbl[(v >> 6) & 63]);
        if (i + 2 < n)
            buf_putc(b, tbl[v & 63]);
    }
}

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

static int b64url_dec(const char *s, size_t n, struct buf *out)
{
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int d = b64url_val(s[i]);
        if (d < 0)
            return -EINVAL;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((v >> bits) & 0xff));
        }
    }
    return 0;
}

static void sign(const struct emu *e, const char *data, size_t n, unsigned char mac[32])
{
    unsigned int ml = 32;
    HMAC(EVP_sha256(), e->key, sizeof(e->key), (const unsigned char *)data, n, mac, &ml);
}

static char *form_get(const char *body, const char *name)
{
    return query_param(body, name);
}

static void oauth_error(struct api_res *r, int status, const char *err, long code, const char *desc)
{
    char trace[37], corr[37], ts[32];
    util_uuid4(trace);
    util_uuid4(corr);
    format_datetime((int64_t)time(NULL), ts, sizeof(ts));
    cJSON *o = cJSON_CreateObject();
    char d[600];
    snprintf(d, sizeof(d), "AADSTS%ld: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code,
             desc, trace, corr, ts);
    cJSON_AddStringToObject(o, "error", err);
    cJSON_AddStringToObject(o, "error_description", d);
    cJSON *codes = cJSON_AddArrayToObject(o, "error_codes");
    cJSON_AddItemToArray(codes, cJSON_CreateNumber((double)code));
    cJSON_AddStringToObject(o, "timestamp", ts);
    cJSON_AddStringToObject(o, "trace_id", trace);
    cJSON_AddStringToObject(o, "correlation_id", corr);
    char *s = cJSON_PrintUnformatted(o);
    r->status = status;
    r->ctype = "application/json; charset=utf-8";
    buf_reset(&r->body);
    buf_puts(&r->body, s ? s : "{}");
    free(s);
    cJSON_Delete(o);
}

/* Reads "Basic base64(id:secret)" (RFC 6749 2.3.1) into id/secret copies. */
static void basic_creds(const char *basic, char **id, char **secret)
{
    if (basic == NULL || strncasecmp(basic, "Basic ", 6) != 0)
        return;
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct buf out = BUF_INIT;
    unsigned v = 0;
    int bits = 0;
    for (const char *p = basic + 6; *p && *p != '='; p++) {
        const char *f = strchr(tbl, *p);
        if (f == NULL || *p == '\0')
            break;
        v = (v << 6) | (unsigned)(f - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(&out, (char)((v >> bits) & 0xff));
        }
    }
    char *colon = out.data ? strchr(out.data, ':') : NULL;
    if (colon) {
        *colon = '\0';
        *id = strdup(out.data);
        *secret = strdup(colon + 1);
        http_urldecode(*id, 1);
        http_urldecode(*secret, 1);
    }
    buf_free(&out);
}

int auth_add_cert(struct emu *e, const char *id, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -errno;
    struct buf pem = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&pem, chunk, n);
    fclose(f);
    /* check now that it holds a certificate or a public key */
    BIO *bio = BIO_new_mem_buf(pem.data ? pem.data : "", (int)pem.len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    int ok = x != NULL;
    X509_free(x);
    if (!ok) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem.data ? pem.data : "", (int)pem.len);
        EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        ok = k != NULL;
        EVP_PKEY_free(k);
    }
    BIO_free(bio);
    if (ok) {
        cJSON_DeleteItemFromObjectCaseSensitive(e->client_certs, id);
        cJSON_AddStringToObject(e->client_certs, id, pem.data);
    }
    buf_free(&pem);
    return ok ? 0 : -EINVAL;
}

static EVP_PKEY *cert_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = NULL;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x) {
        k = X509_get_pubkey(x);
        X509_free(x);
    } else {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, -1);
        k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    }
    BIO_free(bio);
    return k;
}

/* Checks an RS256 client assertion (RFC 7523) against the client's
 * registered certificate. Returns 0 and copies the client id, or fills r. */
static int check_assertion(struct emu *e, const char *jwt, char **id, struct api_res *r)
{
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    struct buf hb = BUF_INIT, pb = BUF_INIT, sb = BUF_INIT;
    cJSON *h = NULL, *p = NULL;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    int rc = -EACCES;
    if (d2 == NULL || b64url_dec(jwt, (size_t)(d1 - jwt), &hb) ||
        b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), &pb) || b64url_dec(d2 + 1, strlen(d2 + 1), &sb) ||
        (h = cJSON_ParseWithLength(hb.data ? hb.data : "", hb.len)) == NULL ||
        (p = cJSON_ParseWithLength(pb.data ? pb.data : "", pb.len)) == NULL) {
        oauth_error(r, 400, "invalid_request", 50027, "Invalid JWT token. Token format not valid.");
        goto out;
    }
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "alg"));
    const char *iss = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "iss"));
    const char *sub = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "sub"));
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "exp");
    if (alg == NULL || strcmp(alg, "RS256") != 0 || iss == NULL || sub == NULL ||
        strcmp(iss, sub) != 0 || (*id && strcmp(*id, iss) != 0)) {
        oauth_error(r, 400, "invalid_client", 700023,
                    "Client assertion audience claim does not match Realm issuer, or iss and "
                    "sub differ from client_id, or alg is not RS256.");
        goto out;
    }
    const char *pem = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e->client_certs, iss));
    if (pem == NULL || (key = cert_key(pem)) == NULL) {
        char m[300];
        snprintf(m, sizeof(m),
                 "Application with identifier '%.100s' has no certificate registered.", iss);
        oauth_error(r, 400, "unauthorized_client", 700016, m);
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestVerify(md, (const unsigned char *)sb.data, sb.len, (const unsigned char *)jwt,
                         (size_t)(d2 - jwt)) != 1) {
        oauth_error(r, 401, "invalid_client", 700027,
                    "Client assertion failed signature validation.");
        goto out;
    }
    if (!cJSON_IsNumber(exp) || exp->valuedouble <= (double)time(NULL)) {
        oauth_error(r, 401, "invalid_client", 700024,
                    "Client assertion is not within its valid time range.");
        goto out;
    }
    if (*id == NULL)
        *id = strdup(iss);
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    cJSON_Delete(h);
    cJSON_Delete(p);
    buf_free(&hb);
    buf_free(&pb);
    buf_free(&sb);
    return rc;
}

void auth_token(struct emu *e, const char *body, const char *basic, int v1, struct api_res *r)
{
    char *grant = form_get(body, "grant_type");
    char *id = form_get(body, "client_id");
    char *secret = form_get(body, "client_secret");
    char *scope = form_get(body, v1 ? "resource" : "scope");
    char *assertion = form_get(body, "client_assertion");
    char *atype = form_get(body, "client_assertion_type");
    if (id == NULL && secret == NULL)
        basic_creds(basic, &id, &secret);
    if (grant == NULL || strcmp(grant, "client_credentials") != 0) {
        oauth_error(r, 400, "unsupported_grant_type", 70003,
                    "The app requested an unsupported grant type 'client_credentials' only.");
        goto out;
    }
    if (assertion) {
        if (atype == NULL ||
            strcmp(atype, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0) {
            oauth_error(r, 400, "invalid_request", 50027,
                        "client_assertion_type must be "
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.");
            goto out;
        }
        if (check_assertion(e, assertion, &id, r) != 0)
            goto out;
        goto scope_check;
    }
    if (id == NULL || *id == '\0') {
        oauth_error(r, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'client_id'.");
        goto out;
    }
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(e->clients, id);
    if (!cJSON_IsString(want)) {
        char d[300];
        snprintf(d, sizeof(d),
                 "Application with identifier '%.100s' was not found in the directory.", id);
        oauth_error(r, 400, "unauthorized_client", 700016, d);
        goto out;
    }
    size_t wl = strlen(want->valuestring);
    if (secret == NULL || strlen(secret) != wl || !util_memeq_ct(secret, want->valuestring, wl)) {
        oauth_error(r, 401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID.");
        goto out;
    }
scope_check:
    if (scope == NULL || *scope == '\0') {
        oauth_error(r, 400, "invalid_request", 900144,
                    v1 ? "The request body must contain the following parameter: 'resource'."
                       : "The request body must contain the following parameter: 'scope'.");
        goto out;
    }
    if (!v1 && (strlen(scope) < 9 || strcmp(scope + strlen(scope) - 9, "/.default") != 0)) {
        oauth_error(r, 400, "invalid_scope", 1002012,
                    "The provided value for scope is not valid. Client credential flows must "
                    "have a scope value with /.default suffixed to the resource identifier.");
        goto out;
    }
    /* The token lives exactly expires_in seconds from now. exp carries
     * milliseconds (RFC 7519 allows a non-integer NumericDate): whole
     * seconds took up to a second off the announced life, so a client that
     * trusts expires_in was refused at random when the tokens are short. */
    int64_t issued_ms = util_wall_us() / 1000;
    time_t now = (time_t)(issued_ms / 1000);
    long long exp = (long long)now + e->token_ttl;
    cJSON *claims = cJSON_CreateObject();
    cJSON_AddStringToObject(claims, "aud", scope);
    cJSON_AddStringToObject(claims, "appid", id);
    cJSON_AddNumberToObject(claims, "iat", (double)now);
    cJSON_AddNumberToObject(claims, "exp", (double)(issued_ms + e->token_ttl * 1000) / 1000.0);
    cJSON_AddStringToObject(claims, "oid", e->user_id);
    char *cl = cJSON_PrintUnformatted(claims);
    cJSON_Delete(claims);
    struct buf tok = BUF_INIT;
    const char *hdr = "{\"typ\":\"JWT\",\"alg\":\"HS256\"}";
    b64url(&tok, (const unsigned char *)hdr, strlen(hdr));
    buf_putc(&tok, '.');
    b64url(&tok, (const unsigned char *)cl, strlen(cl));
    free(cl);
    unsigned char mac[32];
    sign(e, tok.data, tok.len, mac);
    buf_putc(&tok, '.');
    b64url(&tok, mac, sizeof(mac));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    if (v1) {
        char n[32];
        snprintf(n, sizeof(n), "%lld", e->token_ttl);
        cJSON_AddStringToObject(o, "expires_in", n);
        cJSON_AddStringToObject(o, "ext_expires_in", n);
        snprintf(n, sizeof(n), "%lld", exp);
        cJSON_AddStringToObject(o, "expires_on", n);
        snprintf(n, sizeof(n), "%lld", (long long)now);
        cJSON_AddStringToObject(o, "not_before", n);
        cJSON_AddStringToObject(o, "resource", scope);
    } else {
        cJSON_AddNumberToObject(o, "expires_in", (double)e->token_ttl);
        cJSON_AddNumberToObject(o, "ext_expires_in", (double)e->token_ttl);
    }
    cJSON_AddStringToObject(o, "access_token", tok.data);
    buf_free(&tok);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    r->status = 200;
    r->ctype = "application/json; charset=utf-8";
    buf_puts(&r->body, s ? s : "{}");
    free(s);
    api_hdr(r, "Cache-Control", "no-store, no-cache");
out:
    free(grant);
    free(id);
    free(secret);
    free(scope);
    free(assertion);
    free(atype);
}

int auth_check(struct emu *e, const char *authorization, char *who, size_t wholen)
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -EACCES;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    const char *d1 = strchr(t, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL)
        return -EACCES;
    unsigned char mac[32];
    sign(e, t, (size_t)(d2 - t), mac);
    struct buf sig = BUF_INIT, pl = BUF_INIT;
    int rc = -EACCES;
    if (b64url_dec(d2 + 1, strlen(d2 + 1), &sig) != 0 || sig.len != 32 ||
        !util_memeq_ct(sig.data, mac, 32))
        goto out;
    if (b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), &pl) != 0 || pl.data == NULL)
        goto out;
    cJSON *c = cJSON_Parse(pl.data);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
    const cJSON *app = cJSON_GetObjectItemCaseSensitive(c, "appid");
    if (cJSON_IsNumber(exp) && cJSON_IsString(app) &&
        exp->valuedouble * 1000.0 > (double)(util_wall_us() / 1000) &&
        (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e->clients, app->valuestring)) ||
         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e->client_certs, app->valuestring)))) {
        snprintf(who, wholen, "%s", app->valuestring);
        rc = 0;
    }
    cJSON_Delete(c);
out:
    buf_free(&sig);
    buf_free(&pl);
    return rc;
}
