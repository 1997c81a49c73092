/* conn_http.h - what the HTTP provider connectors share.
 *
 * Every HTTP connector (connectors/kavenegar.c, smsir.c, ...) is a thin set
 * of callbacks over this module, in the manner of Kannel's HTTP SMSC
 * drivers: it states its endpoints, names, envelope (struct ch_api) and
 * code tables, builds requests and reads what is its own in an accepted
 * reply; the skeleton of each operation is here (docs/providers.md
 * "Writing an HTTP connector"). This module owns what is the same for all:
 *
 *   - struct conn, the connector object, with the common settings
 *     (base_url, proxy, timeout_ms, sender, rate_per_sec, webhook_*);
 *   - a rate limiter (GCRA / token bucket) in segments per second shared by
 *     every call of the account; calls wait in FIFO order, never reordered;
 *   - dispatch from a uv timer, so done callbacks never run inside the
 *     call that submitted them (connector.h rule 1);
 *   - close(): queued calls finish with SMSYS_ECLOSED, in-flight ones are
 *     cancelled, then the close callback fires (rule 8);
 *   - send results per message (struct ch_send), with the unknown-outcome
 *     rule of providers.md applied in one place;
 *   - replies read against the provider's envelope, and the send, status,
 *     inbox, balance and lines skeletons (conn_http_ops.c);
 *   - JSON helpers tolerant of numbers-as-strings and key case, RFC 6901
 *     JSON pointers, form decoding, and error-class tables.
 *
 * Ownership is stated per function. Nothing here blocks. */
#ifndef SMSYS_CONN_HTTP_H
#define SMSYS_CONN_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/connector.h"
#include "smsys/error.h"
#include "smsys/http_client.h"
#include "smsys/phone.h"

/* Common settings of every HTTP connector (interfaces.md). Strings owned by
 * the struct conn. */
struct ch_settings {
    char *base_url;         /* without a trailing '/' */
    char *proxy;            /* NULL: the client default */
    unsigned timeout_ms;    /* per request; 0: the client default */
    char *sender;           /* default line, as the provider issued it; may be NULL */
    double rate_per_sec;    /* segments per second; 0: unlimited */
    char *webhook_token;    /* shared secret for token-authenticated webhooks */
    char *webhook_base_url; /* "https://host:port" as the provider calls us */
};

struct ch_call;
struct ch_batch;

/* The connector object. Each connector keeps its own state behind priv
 * (freed with priv_free at close). */
/* Requests in a row the provider did not answer (or answered 5xx) before
 * a failing send counts as an account-wide outage (ch_batch_outage in
 * conn_http_send.c): the account is paused, attempts are given back. */
#define CH_OUTAGE_STREAK 3

struct conn {
    struct conn_env env; /* copy; the strings it points to outlive us */
    const struct conn_ops *ops;
    struct ch_settings set;
    uv_timer_t timer;
    struct ch_call *q_head, *q_tail; /* waiting for their turn (FIFO) */
    struct ch_call *inflight;        /* started, done not yet called */
    double tat_ms;                   /* GCRA theoretical arrival time */
    uint64_t pause_until_ms;         /* provider said slow down */
    unsigned down_streak;            /* requests in a row with no answer or a 5xx */
    int closing;
    int timer_closed;
    conn_closed_cb close_cb;
    void *close_ud;
    void *priv;
    void (*priv_free)(void *priv);
};

/* ---- open / close ----------------------------------------------------- */

/* Validates the common keys of settings (an object or NULL) and allocates
 * the connector. extra_keys is a NULL-terminated list of the connector's
 * own keys; any other key is an error naming it. default_base_url is used
 * when base_url is absent. parse (may be NULL) reads the connector's own
 * keys into c->priv (setting priv_free); when it fails the connector is
 * freed and its error returned. Returns 0 and *out (release with
 * ch_close), or SMSYS_ECONFIG / -ENOMEM with err->detail naming the key. */
int ch_open(const struct conn_env *env, const cJSON *settings, const struct conn_ops *ops,
            const char *default_base_url, const char *const *extra_keys,
            int (*parse)(struct conn *c, const cJSON *settings, struct smsys_err *err),
            struct conn **out, struct smsys_err *err);

/* The close() of every HTTP connector: see connector.h rule 8. */
void ch_close(struct conn *c, conn_closed_cb cb, void *ud);

/* Settings readers for connector-specific keys. Each returns 0 (the value
 * or the default when the key is absent), or SMSYS_ECONFIG naming the key.
 * ch_set_str: *out is a malloc'd copy (or NULL when absent and no dflt). */
int ch_set_str(const cJSON *settings, const char *key, const char *dflt, char **out,
               struct smsys_err *err);
int ch_set_int(const cJSON *settings, const char *key, long long dflt, long long min, long long max,
               long long *out, struct smsys_err *err);
/* "e164" | "intl" | "national" (the phone_fmt names). */
int ch_set_phone_fmt(const cJSON *settings, const char *key, enum phone_fmt dflt,
                     enum phone_fmt *out, struct smsys_err *err);

/* ---- requests ---------------------------------------------------------- */

/* What a connector fills; ch_submit takes ownership of the buffers and the
 * header strings (also when it fails). */
struct ch_req {
    const char *method;       /* static string */
    struct buf url;           /* full URL */
    struct buf body;          /* may be empty */
    const char *content_type; /* static; NULL: none */
    char *headers[4];         /* "Name: value", malloc'd; NULL-padded */
    enum http_auth auth;
    const char *username; /* borrowed from the conn (lives as long) */
    const char *password;
    double cost; /* segments for sends; 1 for any other call */
};

/* done: rc < 0 and resp (may be NULL) on transport failure, SMSYS_ECLOSED
 * when the connector closed first (resp NULL), or 0 with the response
 * (any HTTP status). A call made with an empty URL (ch_defer) gets rc 0 and
 * resp NULL. resp is valid during the callback only. */
typedef void (*ch_done_fn)(struct conn *c, int rc, struct http_response *resp, void *ud);

/* Queues r behind the rate limiter; done runs exactly once, later. Returns
 * 0, or SMSYS_ECLOSED / -ENOMEM and then never calls done. */
int ch_submit(struct conn *c, struct ch_req *r, ch_done_fn done, void *ud);

/* Runs done(c, 0, NULL, ud) on a later loop iteration (results that need no
 * request, e.g. every message of a send refused locally). */
int ch_defer(struct conn *c, ch_done_fn done, void *ud);

/* Starts r with URL = base_url + path (path already escaped). */
int ch_req_init(struct conn *c, struct ch_req *r, const char *method, const char *path);
/* Adds a header; value is copied. Returns 0 or -ENOMEM / -E2BIG (full). */
int ch_req_header(struct ch_req *r, const char *name, const char *value);
void ch_req_free(struct ch_req *r);

/* Pauses dispatch for ms (rate-limit answer from the provider): the whole
 * connector slows down instead of reordering. */
void ch_throttle(struct conn *c, unsigned ms);

/* ---- sending ----------------------------------------------------------- */

/* One message of a send, copied from struct sms_out. */
struct ch_msg {
    char *id;
    char *text;
    char to[PHONE_E164_MAX + 2]; /* in the provider's format */
    char from[40];               /* provider format; "" when no line at all */
    int64_t not_before;
    int segments; /* counted here (text.h); the provider may bill otherwise */
    int done;     /* result set */
    /* the result (strings owned) */
    int rc;
    char *provider_id;
    enum conn_status status;
    int billed;
    char *detail;
};

/* A send() in progress: one callback for all its messages, whatever the
 * number of provider requests it takes. */
struct ch_send {
    struct conn *c;
    conn_sent_cb cb;
    void *ud;
    size_t n;
    size_t pending; /* requests not finished */
    int idempotent; /* requests carried our id as an idempotency key */
    struct ch_msg *m;
    int (*start)(struct ch_batch *b, void *ud); /* from ch_send_run */
    void *start_ud;
    /* reply reader of ch_batch_submit: 0, or 1 when it passed b on */
    int (*parse)(struct ch_batch *b, int http, const char *body, size_t len);
};

/* A slice of a send carried by one request: indices into s->m. */
struct ch_batch {
    struct ch_send *s;
    size_t n;
    size_t idx[];
};

/* Copies msgs, converts numbers with fmt (a bad number fails that message
 * with SMSYS_EPERM at once) and the line (sms_out.from, else the sender
 * setting). Returns 0 and *out, or -ENOMEM / -EINVAL (n == 0). */
int ch_send_new(struct conn *c, const struct sms_out *msgs, size_t n, enum phone_fmt fmt,
                conn_sent_cb cb, void *ud, struct ch_send **out);

/* Groups the messages not yet done into batches of at most max_batch,
 * consecutive messages with the same text and line when same_text is set.
 * Calls start(s, batch, ud) for each (start owns the batch and must call
 * ch_batch_done exactly once, or return < 0 after which the batch's
 * messages fail with that code). When nothing needs a request the callback
 * is deferred. Returns 0; the send is then owned by this machinery. */
int ch_send_run(struct ch_send *s, size_t max_batch, int same_text,
                int (*start)(struct ch_batch *b, void *ud), void *ud);

/* A batch of several recipients refused as a whole for a reason that may
 * concern one recipient only (a bad number): starts every message still
 * without a result again as a batch of its own, then finishes b. Safe
 * because the provider refused the request (nothing was accepted). */
void ch_batch_split(struct ch_batch *b);

/* Records the result of message i (strings copied). */
void ch_send_result(struct ch_send *s, size_t i, int rc, const char *provider_id,
                    enum conn_status st, int billed, const char *detail);
/* Fails every message of b still without a result. */
void ch_batch_fail(struct ch_batch *b, int rc, const char *detail);
/* Transport failure or close for b: applies the unknown-outcome rule
 * (SMSYS_EUNKNOWN when the request may have been acted on and the send
 * carried no idempotency key, else SMSYS_ETEMP; ECLOSED when closing). */
/* ch_batch_fail for a send the provider did not really answer (no
 * connection, timeout, 5xx): account-wide (SMSYS_EACCOUNT) once the
 * provider has been down for CH_OUTAGE_STREAK requests in a row. */
void ch_batch_outage(struct ch_batch *b, int rc, const char *detail);
void ch_batch_transport(struct ch_batch *b, int rc, const struct http_response *resp);
/* A reply we cannot read after the request was sent: unknown outcome. */
void ch_batch_unreadable(struct ch_batch *b, int http_status);
/* Finishes b (messages left without a result are treated as unreadable);
 * when it was the last request, calls the send callback and frees s. */
void ch_batch_done(struct ch_batch *b);

/* Error class of a failed transport call for non-send operations. */
int ch_transport_class(int rc);

/* ---- status queries ------------------------------------------------------ */

/* A status() in progress over one or more requests. States are collected
 * (strings copied); the callback gets rc 0 and every state found when at
 * least one request succeeded (ids a failed request asked about are just
 * missing: the core asks again), else the first error. */
struct ch_stq {
    struct conn *c;
    conn_status_cb cb;
    void *ud;
    size_t pending;
    struct conn_state *st;
    size_t n, cap;
    int ok;
    struct smsys_err err;
};

/* Allocates q with one hold, released by a deferred call so the callback
 * never fires inside status(). Returns 0 or SMSYS_ECLOSED / -ENOMEM. */
int ch_stq_new(struct conn *c, conn_status_cb cb, void *ud, struct ch_stq **out);
void ch_stq_hold(struct ch_stq *q);
/* Drops one hold; the last one calls the callback and frees q. */
void ch_stq_release(struct ch_stq *q);
int ch_stq_add(struct ch_stq *q, const char *provider_id, const char *our_id, enum conn_status st,
               int64_t done_at, const char *detail);
/* Records a failed request (the first error is kept), or marks success
 * with rc 0. */
void ch_stq_result(struct ch_stq *q, int rc, const char *detail);

/* ---- one-request operations (inbox, balance, lines) ------------------- */

/* Exactly one of the callbacks is set. parse reads a reply that arrived
 * and must call that callback once; transport failures call it from here
 * with the error class. */
struct ch_op {
    conn_inbox_cb inbox;
    conn_balance_cb balance;
    conn_lines_cb lines;
    void *ud;
    void (*parse)(struct conn *c, struct ch_op *op, int http, const char *body, size_t len);
};

/* Submits r for op (copied). Returns 0 or what ch_submit returns. */
int ch_op_submit(struct conn *c, struct ch_req *r, const struct ch_op *op);
/* Calls op's callback with an error (err detail formatted). */
void ch_op_fail(const struct ch_op *op, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- classification ------------------------------------------------------ */

/* A provider code and what it means. rc is 0 for success codes. */
struct ch_code {
    long code;
    int rc;
    const char *text;
};

/* Looks code up in tab (terminated by text == NULL). Returns the class, or
 * dflt when absent; *text (may be NULL) gets the table text or NULL. */
int ch_code_class(const struct ch_code *tab, long code, int dflt, const char **text);

struct ch_status_code {
    long code;
    enum conn_status st;
};
/* Status for code, or CONN_ST_UNKNOWN. Table ends with code == -1. */
enum conn_status ch_status_lookup(const struct ch_status_code *tab, long code);

/* Class for an HTTP status a provider answered without a readable
 * envelope: 429 ETHROTTLED, 5xx ETEMP, 401/402/403 EACCOUNT, other 4xx
 * EPERM; 0 for 1xx-3xx. */
int ch_http_class(int status);

/* Name of a class for details ("temporary", "account", ...). */
const char *ch_class_name(int rc);
/* "temporary" | "throttled" | "permanent" | "account" | "unknown" -> rc,
 * or 0 when the name is not one of them. */
int ch_class_parse(const char *name);

/* ---- provider replies and the operation skeletons (conn_http_ops.c) ---- */

/* What a connector states about its JSON envelope; ch_reply_read does the
 * rest. Paths are member names joined by '.' ("meta.status"), each looked
 * up case-insensitively (ch_json_get). */
struct ch_api {
    const char *name;      /* prefix of every detail: the connector's name */
    const char *code;      /* path of the provider's result code */
    long ok;               /* the code of success */
    const char *ok_flag;   /* a boolean that refuses the reply when false; may be NULL */
    const char *code_more; /* a member with a more precise refusal code; may be NULL */
    const char *message;   /* the provider's text, appended to details; may be NULL */
    const char *data;      /* the payload; NULL: the whole reply */
    /* class of a refusal code (0 is read as SMSYS_ETEMP); text gets the
     * table's wording or NULL */
    int (*classify)(long code, int http, const char **text);
    long split_code; /* refusal of a whole batch for one bad recipient; 0: none */
    unsigned flags;  /* CH_API_* */
};
/* Details name the HTTP status after the code: "smsir 104 (HTTP 400): ..". */
#define CH_API_HTTP_DETAIL 1u
/* A reply without the code is SMSYS_EPROTO whatever its HTTP status
 * (else 5xx / 429 / 4xx keep their HTTP class, ch_http_class). */
#define CH_API_STRICT 2u
/* No envelope: a 2xx reply is accepted, any other is refused with the code
 * found (0 when none) classified with the HTTP status. */
#define CH_API_BY_HTTP 4u

/* One reply read against its envelope. */
struct ch_reply {
    int http;
    cJSON *root;       /* the parsed body, NULL when it is not JSON */
    const cJSON *data; /* the payload (ch_api.data), inside root */
    long code;         /* the provider's code of a refusal */
    int rc;            /* 0 accepted, the class of a refusal, SMSYS_EPROTO unreadable */
    char detail[400];  /* for a refusal: "name code: text - provider's message" */
};

/* Parses body into r and checks the envelope. Returns r->rc. Always
 * release with ch_reply_free. */
int ch_reply_read(struct ch_reply *r, const struct ch_api *api, int http, const char *body,
                  size_t len);
void ch_reply_free(struct ch_reply *r);
/* Member of o at path (see struct ch_api); NULL when absent. */
const cJSON *ch_json_path(const cJSON *o, const char *path);

/* Sets r's body to o printed (o is consumed, may be NULL: -ENOMEM) and the
 * JSON content type. Returns 0 or -ENOMEM; r stays the caller's. */
int ch_req_json(struct ch_req *r, cJSON *o);
/* Appends the recipients (ids 0) or our ids (ids 1) of b joined by sep. */
int ch_batch_join(const struct ch_batch *b, int ids, const char *sep, struct buf *out);

/* Send: submits r for b (cost = b's segments, at least 1); the reply goes
 * to parse (which records results and returns 0, or 1 after passing b on),
 * a transport failure to ch_batch_transport; then ch_batch_done. Returns 0
 * or what ch_submit returns (r freed). */
int ch_batch_submit(struct ch_batch *b, struct ch_req *r,
                    int (*parse)(struct ch_batch *b, int http, const char *body, size_t len));
/* The skeleton of a send reply: an unreadable one is ch_batch_unreadable,
 * a refusal fails b (a throttle pauses the connector; split_code starts
 * each message of a batch alone: returns 1), an accepted one goes to
 * accepted(b, r) which records the results it can read (the others are
 * unknown outcome). Returns 0 or 1. */
int ch_send_reply(struct ch_batch *b, const struct ch_api *api, int http, const char *body,
                  size_t len, void (*accepted)(struct ch_batch *b, const struct ch_reply *r));

/* Status: asks for ids in requests of at most per_req ids: build starts r
 * for ids[0..n) (0 or an error: that slice is then missing), parse reads
 * each reply (pid = the id when per_req is 1, else NULL). The callback
 * follows the ch_stq rules. Returns 0 or what ch_stq_new returns. */
typedef int (*ch_status_build_fn)(struct conn *c, const char *const *ids, size_t n,
                                  struct ch_req *r);
typedef void (*ch_status_parse_fn)(struct ch_stq *q, const char *pid, int http, const char *body,
                                   size_t len);
int ch_status_run(struct conn *c, const char *const *ids, size_t n, size_t per_req,
                  ch_status_build_fn build, ch_status_parse_fn parse, conn_status_cb cb, void *ud);
/* Reads a status reply into r; a refusal is recorded in q (an unreadable
 * reply as SMSYS_ETEMP) and returned; 0 when accepted. */
int ch_stq_reply(struct ch_stq *q, struct ch_reply *r, const struct ch_api *api, int http,
                 const char *body, size_t len);

/* One-request operations: reads the reply for op into r; a refusal (an
 * inbox's unreadable reply as SMSYS_ETEMP) fails op and is returned; 0
 * when accepted. */
int ch_op_reply(const struct ch_op *op, struct ch_reply *r, const struct ch_api *api, int http,
                const char *body, size_t len);
/* A connector's reply readers of the one-request operations (NULL when it
 * has no such call). ch_op_parse runs the one of each callback set in cbs
 * on a reply: the conn_<name>_parse_ops of tests and the fuzz target. */
struct ch_op_parsers {
    void (*inbox)(struct conn *c, struct ch_op *op, int http, const char *body, size_t len);
    void (*balance)(struct conn *c, struct ch_op *op, int http, const char *body, size_t len);
    void (*lines)(struct conn *c, struct ch_op *op, int http, const char *body, size_t len);
};
void ch_op_parse(const struct ch_op_parsers *p, struct conn *c, int http, const char *body,
                 size_t len, const struct ch_op *cbs);
/* Members of an inbound message in a provider's inbox items; id and date
 * may be NULL. */
struct ch_mo_fields {
    const char *id, *from, *to, *text, *date;
};
/* Calls op->inbox with the items of list that have a string text. */
void ch_inbox_list(const struct ch_op *op, const cJSON *list, const struct ch_mo_fields *f);
/* Calls op->lines with list's items: member number (NULL: the item is the
 * number) and label (may be NULL). */
void ch_lines_list(const struct ch_op *op, const cJSON *list, const char *number,
                   const char *label);
/* Calls op->balance with amount (number or numeric string) in unit, or
 * fails op with SMSYS_EPROTO and missing as detail. */
void ch_balance_value(const struct ch_op *op, const cJSON *amount, const char *unit,
                      const char *missing);

/* open(): SMSYS_ECONFIG "name: smsys_apikey (what) is empty" when the
 * secret is missing, else 0. */
int ch_need_apikey(const struct conn_env *env, const char *name, const char *what,
                   struct smsys_err *err);

/* ---- JSON ---------------------------------------------------------------- */

/* Parses body; NULL on bad JSON. Caller cJSON_Delete()s. */
cJSON *ch_json_parse(const char *body, size_t len);
/* Member by name, case-insensitively (for fields marked (?) in
 * providers.md); NULL when o is not an object or has no such key. */
const cJSON *ch_json_get(const cJSON *o, const char *key);
/* A number or a numeric string as a double / long. Returns 0 or -EINVAL. */
int ch_json_num(const cJSON *v, double *out);
int ch_json_long(const cJSON *v, long *out);
/* A string, or a number printed as an integer when it is one; writes into
 * out (truncated) and returns 0, or -EINVAL for other types / NULL. */
int ch_json_text(const cJSON *v, char *out, size_t outlen);
/* RFC 6901 pointer ("" is the whole document, "/a/0/b", "~0" '~', "~1"
 * '/'). Returns the node or NULL. */
const cJSON *ch_json_pointer(const cJSON *root, const char *ptr);

/* ---- forms (webhooks) -------------------------------------------------- */

struct ch_form {
    size_t n;
    char **key; /* decoded, malloc'd */
    char **val;
};
/* Parses application/x-www-form-urlencoded s[0..len). Returns 0 or
 * -ENOMEM / -EINVAL (bad escape). Free with ch_form_free. */
int ch_form_parse(const char *s, size_t len, struct ch_form *f);
const char *ch_form_get(const struct ch_form *f, const char *key);
void ch_form_free(struct ch_form *f);

/* ---- misc ---------------------------------------------------------------- */

/* Segments of a text as text.h counts them (0 for invalid UTF-8). */
int ch_segments(const char *text, int force_ucs2);
/* malloc'd printf. NULL on -ENOMEM. */
char *ch_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm]" or unix seconds; 0 when
 * unreadable. */
int64_t ch_parse_time(const char *s);

#endif
