/* oauth_int.h - what oauth.c and oauth_jwt.c (certificate credentials)
 * share. */
#ifndef SMSYS_OAUTH_INT_H
#define SMSYS_OAUTH_INT_H

#include <stddef.h>

#include "smsys/buf.h"
#include "smsys/error.h"

struct oauth_cert;

/* Loads the certificate (for its thumbprint) and the RSA private key from
 * PEM files. Returns 0 and *out (oauth_cert_free), or SMSYS_ECONFIG with
 * err->detail naming the file. Blocking file reads: call at start-up. */
int oauth_cert_load(const char *cert_file, const char *key_file, struct oauth_cert **out,
                    struct smsys_err *err);
void oauth_cert_free(struct oauth_cert *c);

/* Appends a signed client assertion (JWT, RS256) for aud (the token URL)
 * and client_id to out. Returns 0 or a negative code. */
int oauth_cert_assertion(const struct oauth_cert *c, const char *aud, const char *client_id,
                         struct buf *out);

/* Appends base64url (no padding) of p[0..n). */
int oauth_b64url(struct buf *b, const unsigned char *p, size_t n);

#endif
