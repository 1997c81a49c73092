/* dataverse.h - the Dynamics 365 / Dataverse Web API client of smsysd.
 *
 * One struct dv_client per organisation, on the service's loop, over the
 * shared http_client. Every request goes through one global throttle:
 *   - at most max_concurrency requests in flight; the rest wait in FIFO;
 *   - a 429 pauses ALL requests until its Retry-After has passed (none is
 *     sent before), then the throttled request is retried first;
 *   - 5xx / timeouts on idempotent requests are retried with exponential
 *     backoff and jitter; unsafe POSTs are not (unknown outcome);
 *   - a 401 invalidates the token, fetches one new token and retries once.
 * The full policy table is in docs/dataverse-client.md.
 *
 * Rules (libuv's):
 *   1. Every async call returns 0 and calls its callback exactly once,
 *      later (never inside the call), or returns < 0 and never calls it.
 *   2. Arguments (strings, bodies, cJSON trees) are borrowed for the call;
 *      the client copies what it keeps.
 *   3. What a callback receives is borrowed for the callback only, except
 *      where a field says the callback may take it.
 *   4. Callbacks run on the loop thread and may call any dv_* function,
 *      including dv_close().
 *
 * Errors (rc): 0, or SMSYS_EPROTO (400: bad request, detail has
 * Dataverse's message), SMSYS_EAUTH (401 after the retry, or the token
 * endpoint refused), SMSYS_EPERM (403), SMSYS_ENOTFOUND (404),
 * SMSYS_ECONFLICT (409, 412), SMSYS_ETHROTTLED (429 budget used up),
 * SMSYS_ETEMP (5xx / network after the retries), SMSYS_EUNKNOWN (an unsafe
 * POST may have been applied), -ETIMEDOUT, SMSYS_ECLOSED, SMSYS_EHTTP
 * (another status). err.detail reads "HTTP 404 0x80040217: <message>". */
#ifndef SMSYS_DATAVERSE_H
#define SMSYS_DATAVERSE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "smsys/error.h"
#include "smsys/http_header.h"

struct http_client;
struct metrics;
struct dv_client; /* opaque */

enum dv_auth {
    DV_AUTH_CLIENT_CREDENTIALS = 0, /* OAuth bearer token (Entra ID, AD FS) */
    DV_AUTH_NTLM,                   /* on-premises Windows authentication */
    DV_AUTH_NEGOTIATE,              /* Kerberos/SPNEGO; empty username: ticket cache */
};

/* Settings; strings are copied by dv_new(). Zero fields take the default. */
struct dv_opts {
    const char *url;         /* organisation root, "https://org.crm4.dynamics.com" */
    const char *api_version; /* NULL: "9.2" */
    enum dv_auth auth;
    /* client_credentials */
    const char *token_url;
    const char *client_id;
    const char *client_secret;
    const char *cert_file; /* instead of client_secret: certificate credentials */
    const char *key_file;  /* (PEM certificate + unencrypted PEM RSA key) */
    const char *scope;     /* v2 endpoint */
    const char *resource;  /* v1 endpoint / AD FS (instead of scope) */
    /* ntlm / negotiate */
    const char *username; /* "DOMAIN\\user" */
    const char *password;

    unsigned max_concurrency;         /* requests in flight; 0: 8 */
    unsigned timeout_ms;              /* per attempt; 0: 60000 */
    unsigned throttle_retries;        /* 429s one request may absorb; 0: 20 */
    unsigned max_retries;             /* 5xx / network retries per request; 0: 4 */
    unsigned backoff_base_ms;         /* first 5xx backoff; doubles; 0: 500 */
    unsigned backoff_max_ms;          /* 0: 30000 */
    unsigned default_retry_after_ms;  /* 429 without Retry-After; 0: 5000 */
    unsigned max_retry_after_s;       /* cap on one Retry-After; 0: 300 */
    int force_batch;                  /* never try CreateMultiple/UpdateMultiple */
    int export_metrics;               /* 1: mirror dv_metrics into Prometheus series */
    struct metrics *metrics_registry; /* with export_metrics; NULL: the default one */
    int insecure;                     /* tests only: skip TLS verification */
};

enum dv_method { DV_GET, DV_POST, DV_PATCH, DV_DELETE, DV_OTHER, DV_NMETHODS };

/* Plain counters, updated as things happen; read them any time through
 * dv_metrics(). With dv_opts.export_metrics they are also mirrored into
 * metrics.h series (smsys_dataverse_*; see docs/dataverse-client.md). */
struct dv_metrics {
    uint64_t requests[DV_NMETHODS]; /* attempts sent, by method (retries count) */
    uint64_t responses[6];          /* by status class: [0] no response, [2] 2xx ... [5] 5xx */
    uint64_t status_401, status_404, status_412, status_429;
    uint64_t retries;           /* attempts after the first, any reason */
    uint64_t throttle_pauses;   /* 429s that (re)started the global pause */
    uint64_t throttle_wait_ms;  /* total time the pause held requests back */
    uint64_t token_refetches;   /* 401 -> new token */
    uint64_t unknown_outcomes;  /* SMSYS_EUNKNOWN returned */
    uint64_t failures;          /* requests completed with rc < 0 */
    uint64_t batch_fallbacks;   /* bulk writes that fell back to $batch */
    unsigned in_flight, queued; /* gauges */
};

/* The outcome of one request. */
struct dv_result {
    int status; /* final HTTP status, 0 when none */
    const struct http_header *headers;
    size_t n_headers;
    cJSON *json;      /* parsed body or NULL; freed after the callback unless
                         the callback takes it (sets res->json = NULL) */
    const char *body; /* raw body, "" when none; body_len bytes */
    size_t body_len;
    unsigned attempts;    /* 1 + retries */
    struct smsys_err err; /* code == rc; Dataverse's code and message */
};

typedef void (*dv_done_cb)(int rc, struct dv_result *res, void *ud);
typedef void (*dv_closed_cb)(void *ud);

/* Creates a client. http must outlive it. Returns 0 and *out, -EINVAL
 * (missing url / credentials), -ENOMEM. */
int dv_new(uv_loop_t *loop, struct http_client *http, const struct dv_opts *o,
           struct dv_client **out);

/* Completes every pending request with SMSYS_ECLOSED (later, once each),
 * closes the token source and the timer, frees c, then cb(ud). */
void dv_close(struct dv_client *c, dv_closed_cb cb, void *ud);

const struct dv_metrics *dv_metrics(const struct dv_client *c);

/* The service root, "<url>/api/data/v9.2/" (borrowed). */
const char *dv_base_url(const struct dv_client *c);

/* Retry safety of a request (see docs/dataverse-client.md). */
enum dv_retry {
    DV_RETRY_AUTO = 0, /* GET/PATCH/PUT/DELETE: retried; POST: not (unknown outcome) */
    DV_RETRY_SAFE,     /* idempotent POST (client-chosen id, UpdateMultiple) */
    DV_RETRY_NEVER,    /* only 401/429 handling, which never re-applies a write */
};

struct dv_call {
    const char *method;       /* NULL: GET, or POST with a body */
    const char *path;         /* relative to the service root, or an absolute
                                 URL under it (a nextLink) */
    const char *prefer;       /* Prefer header value or NULL */
    const char *body;         /* JSON (Content-Type application/json) or NULL */
    size_t body_len;          /* 0: strlen(body) */
    const char *content_type; /* overrides the JSON Content-Type ($batch) */
    const char *if_match;     /* If-Match value or NULL */
    enum dv_retry retry;
};

/* One request with the full policy. Returns 0 (cb later) or -EINVAL /
 * -ENOMEM / SMSYS_ECLOSED. */
int dv_request_ex(struct dv_client *c, const struct dv_call *call, dv_done_cb cb, void *ud);

/* Shorthand: method, path and query (already encoded; see odata.h), Prefer,
 * JSON body (NULL for none). */
int dv_request(struct dv_client *c, const char *method, const char *path_and_query,
               const char *prefer, const char *body, dv_done_cb cb, void *ud);

/* ---- helpers ---- */

enum { DV_PAGE_CONTINUE = 0, DV_PAGE_STOP = 1 };

/* Called per page with the page's "value" array (borrowed). Return
 * DV_PAGE_CONTINUE, DV_PAGE_STOP (done_cb then gets rc 0), or a negative
 * code (done_cb gets it). */
typedef int (*dv_page_cb)(const cJSON *rows, const cJSON *page, void *ud);

/* rc as above; delta_link is the final page's @odata.deltaLink (change
 * tracking) or NULL; pages = pages read. Borrowed for the callback. */
typedef void (*dv_pages_done_cb)(int rc, const char *delta_link, unsigned pages,
                                 const struct smsys_err *err, void *ud);

/* Reads path page by page: Prefer odata.maxpagesize=<maxpagesize> (0:
 * 5000) plus prefer_extra (e.g. "odata.include-annotations=\"*\"", may be
 * NULL), following @odata.nextLink unchanged with the same Prefer.
 * page_cb runs for each page before the next is requested. */
int dv_get_all(struct dv_client *c, const char *path, const char *prefer_extra,
               unsigned maxpagesize, dv_page_cb page_cb, dv_pages_done_cb done_cb, void *ud);

/* id: the new row's GUID (from OData-EntityId), "" on failure. */
typedef void (*dv_id_cb)(int rc, const char *id, const struct smsys_err *err, void *ud);
typedef void (*dv_status_cb)(int rc, const struct smsys_err *err, void *ud);

/* POST <entity_set>. client_id_in_body: the body sets the primary key
 * (e.g. "activityid"), which makes a retry after a timeout safe; without it
 * a timeout after sending returns SMSYS_EUNKNOWN and nothing is retried. */
int dv_create(struct dv_client *c, const char *entity_set, const char *json, int client_id_in_body,
              dv_id_cb cb, void *ud);

/* POST annotations: a note on the row <entity_set>(<id>) of the table
 * <logical>, the place users see what smsys has to tell them about a
 * record. note_id: the note's own GUID (a deterministic id makes a replay
 * a conflict instead of a second note) or NULL. Strings borrowed. */
int dv_note_create(struct dv_client *c, const char *logical, const char *entity_set, const char *id,
                   const char *note_id, const char *subject, const char *text, dv_id_cb cb,
                   void *ud);

/* PATCH <entity_set>(<id>). if_match: NULL (upsert), "*" (must exist), or
 * an etag (412 -> SMSYS_ECONFLICT when the row changed). */
int dv_patch(struct dv_client *c, const char *entity_set, const char *id, const char *json,
             const char *if_match, dv_status_cb cb, void *ud);

int dv_delete(struct dv_client *c, const char *entity_set, const char *id, dv_status_cb cb,
              void *ud);

struct dv_whoami {
    char user_id[37];
    char business_unit_id[37];
    char organization_id[37];
};
typedef void (*dv_whoami_cb)(int rc, const struct dv_whoami *who, const struct smsys_err *err,
                             void *ud);
int dv_whoami(struct dv_client *c, dv_whoami_cb cb, void *ud);

/* ---- bulk writes (dataverse_bulk.c) ---- */

/* Per-row outcome of a bulk write, in input order. */
struct dv_row_result {
    int rc;               /* 0 or an error code as above */
    char id[37];          /* the row's id ("" when unknown) */
    struct smsys_err err; /* why this row failed */
};

struct dv_bulk_result {
    size_t n;
    struct dv_row_result *rows; /* n entries, borrowed for the callback */
    unsigned requests;          /* HTTP requests the write took */
    int used_batch;             /* 1: went through $batch */
};

/* rc: 0 when every row succeeded, else the first row error (rows say
 * which). Rows of a chunk that was never sent (client closed) get its rc. */
typedef void (*dv_bulk_cb)(int rc, const struct dv_bulk_result *res, void *ud);

/* Writes targets (a cJSON array of row objects, borrowed; each needs its
 * primary key "<logical_name>id" or "activityid" for updates) in chunks of
 * up to 1000 rows: <entity_set>/Microsoft.Dynamics.CRM.UpdateMultiple
 * (CreateMultiple), "@odata.type" added to each row. If the server does not
 * know the action (404, or 400 naming it), that is cached per entity set
 * and the rows go through $batch instead, one changeset per chunk. */
int dv_update_multiple(struct dv_client *c, const char *entity_set, const char *logical_name,
                       const cJSON *targets, dv_bulk_cb cb, void *ud);
int dv_create_multiple(struct dv_client *c, const char *entity_set, const char *logical_name,
                       const cJSON *targets, dv_bulk_cb cb, void *ud);

/* Refused requests one chunk of 1000 rows may narrow down (see below):
 * while nothing of the chunk has been written, and once something has. */
#define DV_BULK_MAX_REFUSALS       64
#define DV_BULK_MAX_REFUSALS_MIXED 256

/* The same, for writes where one bad row must not stop the others.
 * *Multiple is one transaction on standard tables: one bad row (a lookup
 * to a record deleted meanwhile, a deleted record to update, a value a
 * plug-in refuses) refuses the whole request. When Dynamics refuses a
 * range of rows as a whole with a row-level error (dv_rc_refused: 400,
 * 403, 404, 409/412), the range is halved and both halves are sent in
 * turn, until the bad rows stand alone: each bad row gets Dynamics' error,
 * every other row is written. One bad row in 1000 costs about 2 log2(1000)
 * = 20 requests, k scattered ones about 2 k log2(1000 / k). Through $batch
 * the failing part names its row: that row fails and the rest of the
 * changeset is sent again. A chunk narrows down at most
 * DV_BULK_MAX_REFUSALS refusals while none of its rows has been written
 * (a systematic refusal, every row bad, costs at most 1 + 2 x 64 = 129
 * requests, not one per row), DV_BULK_MAX_REFUSALS_MIXED once some have
 * (row-by-row refusals: ~40 scattered bad rows in 1000 are all isolated,
 * at most 513 requests). Past the budget each refused range fails all its
 * rows with the error it got (some of them may have been good). Temporary
 * errors (429 budget, 5xx, timeouts, SMSYS_EUNKNOWN) are never narrowed:
 * the range's rows get that error for the caller's retry, and the other
 * ranges still go; SMSYS_ECLOSED fails every row not answered yet.
 * res->requests counts every request, refused ones included. */
int dv_update_multiple_each(struct dv_client *c, const char *entity_set, const char *logical_name,
                            const cJSON *targets, dv_bulk_cb cb, void *ud);
int dv_create_multiple_each(struct dv_client *c, const char *entity_set, const char *logical_name,
                            const cJSON *targets, dv_bulk_cb cb, void *ud);

/* 1 when rc says Dynamics refused the row itself (it got the request and
 * said no: SMSYS_EPROTO, SMSYS_ENOTFOUND, SMSYS_EPERM, SMSYS_ECONFLICT):
 * sending the same row again gets the same answer. 0 for 0 and for
 * temporary or unknown outcomes. */
int dv_rc_refused(int rc);

#endif
