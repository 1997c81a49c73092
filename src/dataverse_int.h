/* dataverse_int.h - what dataverse.c (request engine, throttle, simple
 * helpers) and dataverse_bulk.c (paging, bulk writes) share. */
#ifndef SMSYS_DATAVERSE_INT_H
#define SMSYS_DATAVERSE_INT_H

#include "smsys/dataverse.h"
#include "smsys/list.h"

#include <stdint.h>
#include <uv.h>

struct oauth;
struct http_call;

enum dv_req_state { DV_RS_QUEUED, DV_RS_DELAYED, DV_RS_INFLIGHT };

/* One request from dv_request_ex() until its callback. */
struct dv_req {
    struct dv_client *c;
    char *method, *url, *prefer, *body, *content_type, *if_match;
    size_t body_len;
    enum dv_method m;
    enum dv_retry retry;
    dv_done_cb cb;
    void *ud;
    unsigned attempts, throttles, retries, auth_retries;
    uint64_t due;     /* DELAYED: monotonic ms when it may go again */
    char *token_used; /* bearer token of the attempt in flight */
    struct http_call *call;
    enum dv_req_state state;
    struct list_node node; /* on queue, delayed or inflight */
};

/* Per entity set: does the server know CreateMultiple / UpdateMultiple?
 * 0 unknown, 1 yes, -1 no (use $batch). */
struct dv_ms {
    char *set;
    int create, update;
};

struct metrics;
struct metric;

/* Prometheus mirrors of struct dv_metrics (dataverse_metrics.c). */
struct dv_prom {
    int on;
    struct metric *req[DV_NMETHODS], *resp[6], *s429, *retries, *wait, *refetch, *unknown,
        *failures, *fallbacks, *inflight, *queued;
    struct dv_metrics last; /* what was pushed so far */
};

struct dv_client {
    uv_loop_t *loop;
    struct http_client *http;
    struct oauth *oauth; /* NULL unless client_credentials */
    uv_timer_t timer;    /* kicks dispatch: pause end, backoff due, new work */
    char *base;          /* ".../api/data/v9.2/" */
    enum dv_auth auth;
    char *username, *password;
    struct dv_opts o; /* numbers with defaults applied; strings not kept */

    struct list queue;   /* of struct dv_req: ready to go, FIFO */
    struct list delayed; /* waiting for a backoff to pass */
    struct list inflight;

    uint64_t paused_until; /* 429: nothing is sent before this (monotonic ms) */
    uint64_t pause_started;
    int probing;         /* after a 429: one request at a time until one is not 429 */
    uint64_t hold_until; /* token endpoint backoff */
    int token_waiting;
    unsigned token_failures;
    uint64_t rng;

    struct dv_ms *ms;
    size_t n_ms;

    int closing, finishing;
    dv_closed_cb close_cb;
    void *close_ud;
    struct dv_metrics m;
    struct dv_prom prom;
};

/* Registers the series in reg (NULL: the default registry). */
void dv_prom_init(struct dv_client *c, struct metrics *reg);
/* Pushes what changed in c->m since the last call. */
void dv_prom_sync(struct dv_client *c);

/* Maps a final HTTP status and body to an smsys code with Dataverse's code
 * and message in err->detail ("HTTP 404 0x80040217: ..."). 2xx -> 0. */
int dv_translate(int status, const char *body, size_t len, struct smsys_err *err);

/* The support cache entry of an entity set (created on first use), or NULL
 * on -ENOMEM. */
struct dv_ms *dv_ms_get(struct dv_client *c, const char *set);

/* Free the cache (dv_close). */
void dv_ms_free(struct dv_client *c);

#endif
