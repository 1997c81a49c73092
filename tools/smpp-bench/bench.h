/* bench.h - what smpp-bench's drivers share (main.c runs them). */
#ifndef SMPP_BENCH_H
#define SMPP_BENCH_H

#include <uv.h>

struct conn;
struct conn_ops;
struct smpp_session;

/* One measured case. main.c owns it and fills the first block; a driver
 * fills the counters and its own block. */
struct bench {
    uv_loop_t *loop;
    long n;
    int want_receipts;
    unsigned window;
    int port;
    const char *text; /* the message text of this case */

    long done, ok, failed, segments, receipts;
    int bound, closed;

    /* --through session */
    struct smpp_session *s;
    long submitted;
    char textbuf[64], dst[24];
    /* --through connector */
    const struct conn_ops *ops;
    struct conn *c;
    long sent;
    int batches;
};

/* How one layer is driven. open() returns 0 or nonzero (message printed)
 * and sets b->bound once the bind is up; start() queues the first
 * messages (callbacks queue the rest); close() ends with b->closed = 1. */
struct driver {
    const char *name;
    int (*open)(struct bench *b);
    void (*start)(struct bench *b);
    void (*close)(struct bench *b);
};

extern const struct driver bench_session; /* session.c: smpp_session directly */
extern const struct driver bench_conn;    /* connector.c: conn_smpp_ops */

#endif
