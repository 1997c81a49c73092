/* metrics.h - a small Prometheus registry: counters, gauges and
 * fixed-bucket histograms, each optionally with a fixed label set,
 * rendered in the text exposition format 0.0.4.
 *
 *   struct metric *sent = metrics_counter(NULL, "smsys_messages_total",
 *       "Messages by final status.", (const char *[]){"status", "sent", NULL});
 *   metrics_inc(sent);
 *   http_server_route(srv, "GET", "/metrics", metrics_http_handler, NULL);
 *
 * Rules:
 *  1. Single-threaded: every call MUST happen on the loop thread (there is
 *     no locking; updates are plain additions so the hot path stays cheap).
 *  2. A registry argument of NULL means the process-wide default registry.
 *  3. Registration is idempotent: asking again for the same name and label
 *     values returns the same series. Series with one name but different
 *     label values form one family (one HELP/TYPE block) and MUST agree on
 *     type, help, label names and buckets; otherwise NULL is returned.
 *  4. Series are owned by their registry and live until metrics_free();
 *     register once at start-up and keep the pointer, rather than looking
 *     up by name per event.
 *  5. Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*; label names
 *     [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", and "le" is reserved
 *     for histogram buckets. Counters should end in "_total", units in the
 *     name ("_seconds", "_bytes"); see docs/http-server.md.
 *  6. Update functions accept NULL (a failed registration) and do nothing,
 *     so callers need not guard every increment. */
#ifndef SMSYS_METRICS_H
#define SMSYS_METRICS_H

#include <stddef.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"

struct metrics; /* a registry */
struct metric;  /* one time series */

/* Creates an empty registry; the caller frees it with metrics_free().
 * Returns 0 or -ENOMEM. */
int metrics_new(struct metrics **out);

/* Frees m and every series in it (their pointers become invalid). With
 * NULL, empties the default registry. */
void metrics_free(struct metrics *m);

/* Register or find a series. labels is NULL or a NULL-terminated list of
 * name, value pairs: (const char *[]){"status", "sent", NULL}; all strings
 * are copied. Returns the series, or NULL on an invalid name/label, a
 * conflict with the family (rule 3) or out of memory. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels);
/* bounds: nbounds strictly increasing finite upper bounds (the +Inf bucket
 * is implicit), copied. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *bounds, size_t nbounds);

/* Counter += 1 / += v (v < 0 or NaN is ignored: counters only go up).
 * On a gauge, both also work (gauges may go up). */
void metrics_inc(struct metric *x);
void metrics_add(struct metric *x, double v);
/* Gauge only: = v, -= 1. */
void metrics_set(struct metric *x, double v);
void metrics_dec(struct metric *x);
/* Histogram only: counts v into its bucket(s), adds to _sum and _count. */
void metrics_observe(struct metric *x, double v);

/* Counter/gauge value, or histogram count (tests, status pages). */
double metrics_value(const struct metric *x);

/* Appends the whole registry in text format 0.0.4 to out. Returns 0 or
 * -ENOMEM (out may then hold a partial rendering). */
int metrics_render(const struct metrics *m, struct buf *out);

/* The content type of metrics_render()'s output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* http_server handler: answers with metrics_render() of the registry
 * given as ud (NULL: the default registry); 500 if rendering fails. */
void metrics_http_handler(struct http_req *req, struct http_resp *resp, void *ud);

#endif
