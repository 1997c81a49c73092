/* oauth_jwt.c - the client assertion of certificate credentials: a JWT
 * signed RS256 with the application's private key, with the certificate's
 * SHA-1 thumbprint in "x5t" so Entra ID / AD FS know which key to check.
 * Used by oauth.c for every token fetch (each assertion gets a fresh jti
 * and a 10-minute lifetime). */
#include "oauth_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "smsys/util.h"

struct oauth_cert {
    EVP_PKEY *key;
    char x5t[64]; /* base64url of the SHA-1 of the DER certificate */
};

int oauth_b64url(struct buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int rc = 0;
    size_t i = 0;
    for (; rc == 0 && i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        rc = buf_append(b, q, 4);
    }
    if (rc == 0 && n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        char q[2] = {tab[v >> 18], tab[(v >> 12) & 63]};
        rc = buf_append(b, q, 2);
    } else if (rc == 0 && n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        char q[3] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]};
        rc = buf_append(b, q, 3);
    }
    return rc;
}

int oauth_cert_load(const char *cert_file, const char *key_file, struct oauth_cert **out,
                    struct smsys_err *err)
{
    /* read once at start-up, from local files (not on the loop's hot path) */
    FILE *f = fopen(cert_file, "r");
    if (f == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "certificate %s: cannot open", cert_file);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "certificate %s: not a PEM certificate",
                             cert_file);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int ok = X509_digest(x, EVP_sha1(), md, &mdlen);
    X509_free(x);
    if (!ok)
        return smsys_err_set(err, SMSYS_ECONFIG, "certificate %s: no thumbprint", cert_file);
    f = fopen(key_file, "r");
    if (f == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "private key %s: cannot open", key_file);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL || EVP_PKEY_base_id(k) != EVP_PKEY_RSA) {
        EVP_PKEY_free(k);
        return smsys_err_set(err, SMSYS_ECONFIG, "private key %s: not an unencrypted PEM RSA key",
                             key_file);
    }
    struct oauth_cert *c = calloc(1, sizeof *c);
    struct buf t = BUF_INIT;
    if (c == NULL || oauth_b64url(&t, md, mdlen) < 0 || t.len >= sizeof c->x5t) {
        free(c);
        buf_free(&t);
        EVP_PKEY_free(k);
        return smsys_err_set(err, -ENOMEM, "out of memory");
    }
    memcpy(c->x5t, t.data, t.len + 1);
    buf_free(&t);
    c->key = k;
    *out = c;
    return 0;
}

void oauth_cert_free(struct oauth_cert *c)
{
    if (c) {
        EVP_PKEY_free(c->key);
        free(c);
    }
}

/* Appends b64url(JSON of j). */
static int put_json(struct buf *b, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    int rc = s ? oauth_b64url(b, (const unsigned char *)s, strlen(s)) : -ENOMEM;
    free(s);
    return rc;
}

int oauth_cert_assertion(const struct oauth_cert *c, const char *aud, const char *client_id,
                         struct buf *out)
{
    char jti[37];
    util_uuid4(jti);
    long long now = (long long)time(NULL);
    cJSON *h = cJSON_CreateObject(), *p = cJSON_CreateObject();
    int rc = h && p && cJSON_AddStringToObject(h, "alg", "RS256") &&
                     cJSON_AddStringToObject(h, "typ", "JWT") &&
                     cJSON_AddStringToObject(h, "x5t", c->x5t) &&
                     cJSON_AddStringToObject(p, "aud", aud) &&
                     cJSON_AddStringToObject(p, "iss", client_id) &&
                     cJSON_AddStringToObject(p, "sub", client_id) &&
                     cJSON_AddStringToObject(p, "jti", jti) &&
                     cJSON_AddNumberToObject(p, "nbf", (double)(now - 60)) &&
                     cJSON_AddNumberToObject(p, "iat", (double)now) &&
                     cJSON_AddNumberToObject(p, "exp", (double)(now + 600))
                 ? 0
                 : -ENOMEM;
    size_t start = out->len;
    if (rc == 0)
        rc = put_json(out, h);
    if (rc == 0)
        rc = buf_putc(out, '.');
    if (rc == 0)
        rc = put_json(out, p);
    cJSON_Delete(h);
    cJSON_Delete(p);
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    if (rc == 0) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, c->key) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out->data + start,
                           out->len - start) != 1)
            rc = SMSYS_EAUTH;
        EVP_MD_CTX_free(ctx);
    }
    if (rc == 0)
        rc = buf_putc(out, '.');
    if (rc == 0)
        rc = oauth_b64url(out, sig, siglen);
    return rc;
}
