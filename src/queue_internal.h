/* queue_internal.h - shared by queue.c, queue_receipt.c, outbox.c and
 * queue_leader.c: the queue object, array-literal building and the
 * per-call request record. Not a public header. */
#ifndef SMSYS_QUEUE_INTERNAL_H
#define SMSYS_QUEUE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "smsys/buf.h"
#include "smsys/queue.h"

struct queue {
    uv_loop_t *loop;
    struct pg_pool *pool;
    struct queue_opts opts;
};

/* A PostgreSQL array literal ('{"a","b",NULL}') built element by
 * element. Every element is quoted, so any text is safe; err sticks at
 * the first failed append and qa_end() then returns NULL. */
struct qarr {
    struct buf b;
    size_t n;
    int err;
};

void qa_init(struct qarr *a);
void qa_str(struct qarr *a, const char *s); /* NULL -> SQL NULL */
/* Like qa_str, but cleaned to valid UTF-8 and cut to max_chars. */
void qa_text(struct qarr *a, const char *s, size_t max_chars);
void qa_int(struct qarr *a, long long v);
/* Closes the literal; returns it (owned by a, freed by qa_free) or NULL
 * after an allocation failure. */
const char *qa_end(struct qarr *a);
void qa_free(struct qarr *a);

/* One call in flight: which callback to call with which ud. */
struct qreq {
    struct queue *q;
    void *ud;
    union {
        queue_enqueue_cb enq;
        queue_claim_cb claim;
        queue_record_cb rec;
        queue_count_cb count;
        queue_outbox_cb outbox;
        queue_stats_cb stats;
        queue_receipts_cb rcpt;
    } cb;
};

struct qreq *qreq_new(struct queue *q, void *ud);

/* Runs a prepared statement for req; on a synchronous failure frees req
 * and returns the code (the caller's callback is then never called). */
int qreq_send(struct qreq *req, const char *name, const char *sql, int nparams,
              const char *const *params, pg_result_cb cb);

/* 1 when s is a GUID in 8-4-4-4-12 form. */
int q_is_guid(const char *s);
/* 1 when s is valid UTF-8. */
int q_utf8_valid(const char *s);
/* Field (row, col) of res as an integer; 0 when NULL or unparsable. */
int64_t q_int(const PGresult *res, int row, int col);
/* Field as a string, NULL for SQL NULL. Borrowed from res. */
const char *q_str(const PGresult *res, int row, int col);

/* count callbacks: the first column of the first row is the count. */
void q_count_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud);

/* Runs a statement whose answer is one count, for cb (queue_count_cb
 * rules: 0 and cb once later, or a negative code and never cb). */
int q_count_call(struct queue *q, const char *name, const char *sql, int np, const char *const *p,
                 queue_count_cb cb, void *ud);

#endif
