/* health.h - the /healthz endpoint: "is this process able to do its job".
 *
 *   struct health *h;
 *   health_new(&h);
 *   health_add(h, "postgres", pg_health_cb, pg);
 *   http_server_route(srv, "GET", "/healthz", health_http_handler, h);
 *
 * Answers 200 {"status":"ok","checks":{"postgres":"ok"}} when every check
 * passes, else 503 {"status":"fail","checks":{"postgres":"connection
 * refused"}} (each failing check reports its own detail). Without checks
 * the answer is 200 {"status":"ok"}: the process and its loop are alive.
 *
 * Rules:
 *  1. A check MUST NOT block or do I/O: it reports state the component
 *     already knows (last connection result, last successful poll), so a
 *     probe costs nothing and cannot hang on the thing it probes.
 *  2. Loop thread only, like every module here (no locking). */
#ifndef SMSYS_HEALTH_H
#define SMSYS_HEALTH_H

#include <stddef.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"

struct health;

/* Returns 0 when the component is healthy; otherwise a negative code and,
 * in detail (len bytes, NUL-terminated, pre-set to ""), a short reason for
 * operators (no secrets: it is served without authentication). */
typedef int (*health_check_cb)(void *ud, char *detail, size_t len);

/* Creates an empty set of checks; free with health_free(). 0 or -ENOMEM. */
int health_new(struct health **out);

/* Adds a named check (name copied; ud borrowed and must outlive h).
 * Returns 0, -EINVAL (empty name) or -ENOMEM. */
int health_add(struct health *h, const char *name, health_check_cb cb, void *ud);

void health_free(struct health *h);

/* Runs every check; returns 1 when all pass. When out is not NULL the JSON
 * document described above is appended to it. */
int health_eval(const struct health *h, struct buf *out);

/* http_server handler; ud is the struct health (NULL: no checks). */
void health_http_handler(struct http_req *req, struct http_resp *resp, void *ud);

#endif
