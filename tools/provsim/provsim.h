/* provsim.h - internals shared by the provider simulator's files.
 *
 * One process, one loop, one HTTP server; each simulated provider is a
 * struct sim_provider (one file each) mounted under "/<name>/". The core
 * (core.c) owns the message store, status progression, inbox, balances,
 * error injection and the JSONL log; control.c serves /_sim/; hook.c makes
 * the outgoing webhook calls (Twilio StatusCallback and inbound, Kavenegar
 * callback). Everything runs on the loop thread; nothing here is
 * thread-safe, and nothing needs to be. */
#ifndef PROVSIM_H
#define PROVSIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"
#include "smsys/list.h"

enum sim_prov {
    PROV_KAVENEGAR = 0,
    PROV_SMSIR,
    PROV_GHASEDAK,
    PROV_MELIPAYAMAK,
    PROV_ASANAK,
    PROV_TWILIO,
    PROV_COUNT
};

/* Where a message is in its life. Each provider maps these onto its own
 * codes (Kavenegar 1/4/10/11, SMS.ir deliveryState, ...). */
enum sim_stage {
    STAGE_QUEUED = 0,
    STAGE_SENT,
    STAGE_DELIVERED,
    STAGE_UNDELIVERED,
    STAGE_BLOCKED /* recipient on the block list: final at once */
};

/* Injected failures a provider formats in its own words. */
enum sim_fault { FAULT_NONE = 0, FAULT_RATE, FAULT_BUSY, FAULT_NOCREDIT };

/* Behaviour of one simulated account (settable per provider or for all
 * through /_sim/config or --config). */
struct sim_cfg {
    long long receipt_delay_ms; /* accept -> final state; "sent" at half of it */
    int pct_delivered;          /* outcome weights; the rest is undelivered */
    int pct_undelivered;
    long long rate_every;   /* every Nth API request is rate-limited; 0 off */
    double rate_rps;        /* more than this many requests in one second: rate limit; 0 off */
    int busy;               /* every request answers "busy" */
    long long busy_every;   /* every Nth request answers "busy"; 0 off */
    int no_credit;          /* every send answers "no credit" */
    char bad_pattern[64];   /* fnmatch(3) glob: matching numbers are invalid; "" none */
    char block_pattern[64]; /* fnmatch(3) glob: matching numbers are blacklisted; "" none */
    long long latency_ms;   /* delay before every reply */
    double fail_rate;       /* share of requests answered HTTP 500 (0..1) */
    double drop_rate;       /* share of requests processed but never answered in time */
    long long drop_hold_ms; /* how long a "dropped" reply is held back */
    double price;           /* cost of one segment in the account's unit */
    char callback_url[512]; /* Kavenegar: delivery + inbound push; "" none */
    char inbound_url[512];  /* Twilio: inbound webhook; "" none */
};

struct sim_msg {
    uint64_t seq; /* 1-based, global, in acceptance order */
    enum sim_prov prov;
    char id[48]; /* the provider's message id as the API shows it */
    char *to, *from, *text;
    char *idem;     /* idempotency key (localid, clientReferenceId) or NULL */
    char *callback; /* Twilio StatusCallback URL or NULL */
    char *pack;     /* SMS.ir packId or NULL */
    int segments;
    int ucs2;
    double cost;
    int64_t created_us;             /* wall clock */
    int64_t due_us;                 /* schedule (provider-side date) */
    uint64_t t_sent_ms, t_final_ms; /* monotonic stage times */
    int64_t done_us;                /* wall clock of the final state, 0 until then */
    enum sim_stage stage, outcome;  /* now, and the final one drawn at accept */
    enum sim_stage pushed;          /* last stage pushed to a callback */
    int inbound;                    /* Twilio "received" messages (from the inbox) */
};

/* One inbound (MO) message waiting in a provider inbox. */
struct sim_mo {
    uint64_t seq;
    enum sim_prov prov;
    char id[48];
    char *from, *to, *text;
    int64_t at_us;
    int read;
};

struct sim_idem; /* idempotency index, core.c */

struct sim_account {
    struct sim_cfg cfg;
    double balance;
    char **lines;
    size_t nlines;
    struct sim_idem *idem;
    /* fault counters */
    long long nreq;
    uint64_t win_start_ms;
    long long win_count;
    /* stats */
    long long st_requests, st_sends, st_messages, st_dups, st_rate, st_busy, st_nocredit, st_badnum,
        st_blocked, st_auth, st_5xx, st_drop, st_push_ok, st_push_fail;
};

struct sim_creds {
    char kavenegar_key[128];
    char smsir_key[128];
    char ghasedak_key[128];
    char melipayamak_user[64], melipayamak_pass[64];
    char asanak_user[64], asanak_pass[64];
    char twilio_sid[64], twilio_token[128];
};

struct sim_heap_item {
    uint64_t due_ms;
    uint64_t seq;
};

struct sim_pending; /* a reply waiting for its latency, core.c */
struct sim_hooks;   /* outgoing HTTP, hook.c */

struct sim_route {
    struct sim *sim;
    enum sim_prov prov;
};

struct sim {
    uv_loop_t *loop;
    struct sim_route route[PROV_COUNT];
    struct http_server *http;
    int port;
    struct sim_creds creds;
    struct sim_account acct[PROV_COUNT];
    struct sim_cfg base_cfg; /* after --config: what /_sim/reset returns to */
    cJSON *startup_cfg;      /* --config contents, re-applied on reset; may be NULL */

    struct sim_msg **msgs; /* index seq-1 */
    size_t nmsgs, capmsgs;
    struct sim_mo **mos;
    size_t nmos, capmos;
    cJSON *requests; /* array: what each send request carried */
    size_t nrequests;
    long long requests_unlogged;

    struct sim_heap_item *heap;
    size_t nheap, capheap;
    uv_timer_t tick;
    int tick_armed;

    struct list pending; /* of struct sim_pending: replies held for latency/drop */
    struct sim_hooks *hooks;

    FILE *log; /* --log, or NULL */
    uint64_t rng;
    uint64_t seed;
    int closing;
};

/* Per-request context handed to a provider's handler. */
struct sim_ctx {
    struct sim *sim;
    struct http_req *req;
    enum sim_prov prov;
    struct sim_account *acct;
    const char *sub; /* path after "/<provider>", still percent-encoded */
    /* the reply being built */
    int status;
    const char *ctype;
    struct buf body;
    char hname[64], hval[256];
    cJSON *rec; /* request record for /_sim/messages, or NULL */
};

struct sim_provider {
    const char *name;
    const char *unit;     /* balance unit: "IRR", "USD", ... */
    const char *lines[3]; /* default lines, NULL-terminated */
    void (*handle)(struct sim_ctx *cx);
    int (*status_code)(enum sim_stage st);                /* provider's code, for /_sim/messages */
    void (*on_stage)(struct sim *sim, struct sim_msg *m); /* push; may be NULL */
    void (*on_mo)(struct sim *sim, struct sim_mo *mo);    /* push; may be NULL */
};

extern const struct sim_provider prov_kavenegar, prov_smsir, prov_ghasedak, prov_melipayamak,
    prov_asanak, prov_twilio;
extern const struct sim_provider *const sim_providers[PROV_COUNT];

/* ---- core.c, config.c, checks.c ---- */

/* Sets up the store, defaults and the progression timer. 0 or -errno. */
int sim_init(struct sim *sim, uv_loop_t *loop, uint64_t seed);
/* Frees everything sim_init and the run made; closes the timer (the
 * caller runs the loop afterwards so the close completes). Pending replies
 * are sent as 503 first. */
void sim_close(struct sim *sim);
/* Drops messages, inbox, request records and stats; restores balances,
 * lines and configuration to what they were at start-up. */
void sim_reset(struct sim *sim);
/* config.c: defaults and lines (NULL-terminated defaults come from the
 * provider table). sim_lines_set copies the strings; 0 or -ENOMEM. */
void sim_cfg_defaults(struct sim_cfg *c);
double sim_default_balance(enum sim_prov p);
void sim_lines_free(struct sim_account *a);
int sim_lines_set(struct sim_account *a, const char *const *v, size_t n);
/* Applies a config object: top-level keys for all providers, then
 * {"<provider>": {...}} sections. 0, or -EINVAL with err naming the key. */
int sim_config_apply(struct sim *sim, const cJSON *cfg, char *err, size_t errlen);
const char *sim_prov_name(enum sim_prov p);
int sim_prov_parse(const char *name); /* index or -1 */

/* The HTTP route for every provider prefix (ud = provider index cast). */
void sim_route_cb(struct http_req *req, struct http_resp *resp, void *ud);

/* Error injection for this request: rate limit, busy, and (is_send) no
 * credit. Counts the request. */
enum sim_fault sim_fault(struct sim_ctx *cx, int is_send);
/* 1 when num is not a plausible phone number or matches bad_pattern. */
int sim_bad_number(struct sim_ctx *cx, const char *num);
/* 1 when num matches the account's blacklist pattern. */
int sim_blocked_number(struct sim_ctx *cx, const char *num);
/* 1 when line is one of the account's lines. */
int sim_line_ok(struct sim_ctx *cx, const char *line);
/* GSM-7 / UCS-2 segment count of UTF-8 text; *ucs2 set when not GSM-7. */
int sim_segments(const char *text, int *ucs2);
/* Cost of text for this account. */
double sim_cost(struct sim_ctx *cx, const char *text);
/* 1 when the account can pay cost (and no_credit is not injected). */
int sim_afford(struct sim_ctx *cx, double cost);

/* Accepts one message: stores it (copies every string), debits the
 * balance, logs it, schedules its progression. not_before: unix seconds
 * or 0. Returns the message (owned by the store) or NULL on ENOMEM. */
struct sim_msg *sim_accept(struct sim_ctx *cx, const char *to, const char *from, const char *text,
                           const char *idem, const char *callback, int64_t not_before);
/* Idempotency: the messages first accepted under key (count in *n), or
 * NULL. Registers key -> [first, first+n) with sim_idem_put. */
struct sim_msg *sim_idem_get(struct sim *sim, enum sim_prov p, const char *key, size_t *n);
int sim_idem_put(struct sim *sim, enum sim_prov p, const char *key, uint64_t first, size_t n);
struct sim_msg *sim_msg_seq(struct sim *sim, uint64_t seq);
/* The message with this provider id, or NULL. */
struct sim_msg *sim_msg_find(struct sim *sim, enum sim_prov p, const char *id);
/* Brings m->stage up to date with the clock and returns it. */
enum sim_stage sim_msg_stage(struct sim *sim, struct sim_msg *m);

/* Adds an inbound message; pushes it when the provider has a push. */
struct sim_mo *sim_mo_add(struct sim *sim, enum sim_prov p, const char *line, const char *from,
                          const char *text);
/* Unread inbox messages of p (line NULL = any), oldest first, at most max;
 * marks them read when mark. Returns a malloc'd array (caller frees the
 * array only) and *n. */
struct sim_mo *sim_mo_find(struct sim *sim, enum sim_prov p, const char *id);
struct sim_mo **sim_mo_take(struct sim *sim, enum sim_prov p, const char *line, size_t max,
                            int read, int mark, size_t *n);

/* Reply helpers: the body is JSON (root consumed) / text. */
void sim_reply_json(struct sim_ctx *cx, int status, cJSON *root);
/* A request record for /_sim/messages ("op" = provider operation). */
cJSON *sim_rec(struct sim_ctx *cx, const char *op);
/* Array member name of cx->rec, created on first use (NULL without rec). */
cJSON *sim_rec_list(struct sim_ctx *cx, const char *name);
void sim_rec_str(struct sim_ctx *cx, const char *list, const char *v);

/* ISO-8601 and "yyyy-mm-dd HH:MM:SS" renderings of a wall time (µs). */
void sim_time_iso(int64_t us, char *out, size_t len);
void sim_time_plain(int64_t us, char *out, size_t len);
/* Deterministic PRNG (seeded by --seed). */
uint64_t sim_rand(struct sim *sim);
double sim_rand01(struct sim *sim);

/* ---- control.c ---- */

/* The /_sim/ route (ud = struct sim). */
void control_cb(struct http_req *req, struct http_resp *resp, void *ud);

/* ---- form.c ---- */

/* application/x-www-form-urlencoded (and query strings), decoded. */
struct sim_kv {
    char *k, *v;
};
struct sim_form {
    struct sim_kv *kv;
    size_t n;
};
/* Parses s[0..len) and appends pairs to f. 0, -ENOMEM or -EINVAL. */
int form_parse(struct sim_form *f, const char *s, size_t len);
/* Query string plus, for a form body, the body's pairs. */
int form_from_req(struct sim_form *f, const struct http_req *req);
/* First value of key (case-insensitive), or NULL. idx-th with form_nth. */
const char *form_get(const struct sim_form *f, const char *key);
const char *form_nth(const struct sim_form *f, const char *key, size_t idx);
void form_free(struct sim_form *f);
/* Splits a comma list into a NULL-terminated malloc'd array of trimmed,
 * non-empty strings (one allocation; free() the array). */
char **split_list(const char *s, size_t *n);
/* Case-insensitive JSON member. */
const cJSON *json_get(const cJSON *o, const char *key);
/* String value of a JSON string or number (into buf), else NULL. */
const char *json_str(const cJSON *v, char *buf, size_t len);
/* Parses the request body as JSON (NULL when it is not). */
cJSON *json_body(const struct http_req *req);
/* Case-insensitive "starts with" for paths; returns the rest or NULL. */
const char *path_eat(const char *path, const char *prefix);

/* ---- hook.c ---- */

int hooks_new(struct sim *sim);
void hooks_free(struct sim *sim);
/* POSTs a form (pairs, NULL-terminated k,v,k,v,...) to a loopback URL;
 * signs it with X-Twilio-Signature when sign_key is not NULL. Refuses
 * non-loopback URLs (-EPERM). The result is counted in p's stats. */
int hooks_post(struct sim *sim, enum sim_prov p, const char *url, const char *const *pairs,
               const char *sign_key);
/* base64(HMAC-SHA1(key, url + sorted k+v)). out >= 40 bytes. 0 or -EINVAL. */
int twilio_signature(const char *key, const char *url, const char *const *pairs, char *out,
                     size_t outlen);
int hooks_url_is_loopback(const char *url);

#endif
