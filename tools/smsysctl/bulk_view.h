/* bulk_view.h - the pure parts of `smsysctl bulk`: bulk id arguments,
 * final states, the 10-second rate window and the progress line of
 * `bulk watch`. Nothing here does I/O or reads a clock, so every rule is
 * unit tested (test/unit/test_bulk_progress.c includes bulk_view.c). */
#ifndef SMSYSCTL_BULK_VIEW_H
#define SMSYSCTL_BULK_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smsys/bulk.h"

/* 1 for Completed, Canceled and Failed: nothing changes after them. */
int bulkview_final(int state);

/* Fewest hex digits a prefix must have: 8 = the short id `list` shows. */
#define BULKVIEW_ID_MIN_HEX 8

/* A bulk id argument: the GUID (with or without hyphens, any case) or a
 * prefix of at least BULKVIEW_ID_MIN_HEX hex digits (hyphens allowed where the
 * GUID has them). On success writes the lower-case hex digits without
 * hyphens to hex (NUL-terminated) and sets *full to 1 when all 32 are
 * there, and returns 0; returns -EINVAL for anything else. */
int bulkview_id_parse(const char *arg, char hex[33], int *full);

/* Writes the canonical 8-4-4-4-12 form of 32 hex digits to out. */
void bulkview_id_format(const char hex[33], char out[37]);

/* How far a bulk has got, as watch shows it: the counters of
 * smsys_bulk_progress (meaning in docs/bulk.md) plus done = messages that
 * left the queue (sent, delivered, failed, canceled, ...): the progress of
 * the bar and of the rate. */
struct bulkview {
    int state;    /* enum bulk_state */
    int expanded; /* 0 while the audience is still being read: total grows */
    struct bulk_progress c;
    long long done;
};

/* 1 while the total may still grow (the audience is being read): the "+"
 * after it. A bulk that ended (Failed before its audience was read, say)
 * never grows, whatever expanded says. */
int bulkview_growing(const struct bulkview *p);

/* The samples of the last BULKVIEW_RATE_WINDOW_MS: (time, done) pairs. */
#define BULKVIEW_RATE_WINDOW_MS 10000
#define BULKVIEW_RATE_SLOTS     64
struct bulkview_rate {
    uint64_t t[BULKVIEW_RATE_SLOTS];
    long long v[BULKVIEW_RATE_SLOTS];
    unsigned head, n; /* oldest sample at head; n in use */
};

/* Adds a sample taken at t_ms (monotonic) and forgets samples older than
 * the window. A sample older than the newest one is ignored. */
void bulkview_rate_add(struct bulkview_rate *r, uint64_t t_ms, long long done);

/* Messages per second over the window up to the newest sample, or -1 when
 * fewer than 2 samples or less than one second are known. */
double bulkview_rate_get(const struct bulkview_rate *r);

/* Seconds left at rate for remaining messages: 0 when nothing remains,
 * -1 when it cannot be told (no rate yet, or stalled). */
long long bulkview_eta_s(long long remaining, double rate);

/* "42s", "5m08s", "2h05m", "3d04h"; "?" for a negative value. */
void bulkview_duration(long long s, char *out, size_t len);

/* The one-line view of p at rate (msg/s, <0 unknown).
 * tty: an interactive line of at most width columns (the caller rewrites
 * it in place): a bar with the percentage done, the counters, the rate and
 * the ETA; the bar and then the labels give way on narrow terminals, and
 * below ~20 columns the line is cut. Not tty: a key=value log line stamped
 * with now (UTC), one per second. out is always NUL-terminated; returns the
 * length written. */
size_t bulkview_line(char *out, size_t len, const struct bulkview *p, double rate, int width,
                     int tty, time_t now);

#endif
