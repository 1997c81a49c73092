/* oauth.h - OAuth 2.0 client-credentials token source (Entra ID v2, the
 * v1 endpoint and AD FS) for the Dataverse client.
 *
 * One struct oauth per set of credentials. It POSTs the token form to
 * token_url through the shared http_client, caches the access token and
 * renews it ahead of expiry. Concurrent callers share one fetch
 * (single-flight). Rules (libuv's):
 *   1. oauth_get() returns 0 and calls cb exactly once, later (never inside
 *      the call), or returns < 0 and never calls it.
 *   2. The token string handed to cb is borrowed for the callback only.
 *   3. The client secret is never logged and never appears in an error
 *      detail; Entra's error text (AADSTS...) is kept in the detail.
 *
 * Lifetime: a token of lifetime T (expires_in) is "fresh" until
 * T - max(T/5, min(300 s, T/2)) after it was fetched (so 3599 s -> renewed
 * after ~48 min; 600 s -> after 5 min; 10 s -> after 5 s), and is still
 * handed out (while a renewal runs in the background) until T - min(60 s,
 * T/10): no request waits for a renewal and none is sent with a token about
 * to expire. */
#ifndef SMSYS_OAUTH_H
#define SMSYS_OAUTH_H

#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"

struct http_client;
struct oauth; /* opaque */

struct oauth_opts {
    const char *token_url;     /* .../oauth2/v2.0/token, .../oauth2/token, .../adfs/oauth2/token */
    const char *client_id;     /* required */
    const char *client_secret; /* secret credentials, or: */
    const char *cert_file;     /* certificate credentials: PEM certificate (thumbprint) */
    const char *key_file;      /* and its unencrypted PEM RSA private key */
    const char *scope;         /* v2: "https://org.crm.dynamics.com/.default" */
    const char *resource;      /* v1 / AD FS: "https://org.crm.dynamics.com/"; one of the two */
    unsigned timeout_ms;       /* token request; 0: 20000 */
    int insecure;              /* tests only: skip TLS verification */
};

/* Counters, readable at any time (oauth_stats). */
struct oauth_stats {
    uint64_t fetches;       /* token requests sent */
    uint64_t failures;      /* of which failed */
    uint64_t renewals;      /* background renewals started before expiry */
    uint64_t invalidations; /* oauth_invalidate() that dropped the cached token */
};

/* rc 0: token is the access token (borrowed for the callback); rc < 0:
 * token is NULL and err says why (SMSYS_EAUTH: credentials refused, with
 * the server's error and description; SMSYS_ETEMP / -ETIMEDOUT: try again
 * later; SMSYS_EPROTO: unusable answer; SMSYS_ECLOSED: oauth_close). */
typedef void (*oauth_token_cb)(int rc, const char *token, const struct smsys_err *err, void *ud);

/* Creates a token source on loop using http (shared; must outlive it).
 * Strings are copied. Credentials: client_secret, or cert_file + key_file
 * (a client_assertion JWT signed RS256, x5t = the certificate's SHA-1
 * thumbprint, fresh for every fetch; the files are read here, once).
 * Returns 0 and *out, -EINVAL (missing fields, both or neither of
 * scope/resource, both or neither kind of credential), SMSYS_ECONFIG
 * (certificate or key unreadable; logged), or -ENOMEM. Release with
 * oauth_close(). */
int oauth_new(uv_loop_t *loop, struct http_client *http, const struct oauth_opts *o,
              struct oauth **out);

/* A usable token, or NULL when the caller must wait (oauth_get). Starts a
 * background renewal when the token is past its fresh period. The string
 * stays valid until the next call into this module. */
const char *oauth_peek(struct oauth *t);

/* Hands a token to cb later: the cached one, or the result of a fetch that
 * all concurrent callers share. Returns 0, or SMSYS_ECLOSED / -ENOMEM. */
int oauth_get(struct oauth *t, oauth_token_cb cb, void *ud);

/* The server refused token (401): drop it from the cache if it is still
 * the cached one, so the next oauth_get fetches a new one. A stale token
 * (already replaced) is ignored, so concurrent 401s cause one fetch. */
void oauth_invalidate(struct oauth *t, const char *token);

const struct oauth_stats *oauth_stats(const struct oauth *t);

/* Cancels the fetch in flight, fails waiting callers with SMSYS_ECLOSED
 * (later, each once), closes its timer, frees t, then calls cb(ud) (cb may
 * be NULL). */
void oauth_close(struct oauth *t, void (*cb)(void *ud), void *ud);

/* Parses a token endpoint response (exposed for tests): on status 200 the
 * token and lifetime (expires_in as number or string; token_type must be
 * Bearer when present); otherwise the error. Returns 0 and *token
 * (malloc'd, caller frees) and *expires_in_s, or an error with err set. */
int oauth_parse_response(int status, const char *body, size_t len, char **token,
                         int64_t *expires_in_s, struct smsys_err *err);

#endif
