/* queue_handover.c - the hand-over mark (queue_handing, queue.h): the
 * sender's durable "this batch goes to the connector now", which lets the
 * reaper send back to Queued the claimed messages that never left
 * (sql/008_handover.sql, docs/queue.md "Hand-over mark"). */
#include "queue_internal.h"

#include <errno.h>
#include <stdlib.h>

/* One queue_handing call in flight; freed after its callback. */
struct hreq {
    queue_ids_cb cb;
    void *ud;
};

static const char SQL_HANDING[] = "SELECT smsys_q_handing($1::int8[], $2)";

static void handing_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct hreq *h = ud;
    int64_t *ids = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        ids = malloc((n ? n : 1) * sizeof(*ids));
        if (ids == NULL) {
            /* The rows are marked, but we cannot say which: not handing
             * them over is safe (they become unknown outcomes at worst). */
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading the hand-over mark");
            h->cb(-ENOMEM, NULL, 0, &e, h->ud);
            free(h);
            return;
        }
        for (size_t i = 0; i < n; i++)
            ids[i] = q_int(res, (int)i, 0);
    }
    h->cb(rc, ids, n, err, h->ud);
    free(ids);
    free(h);
}

int queue_handing(struct queue *q, const char *owner, const int64_t *ids, size_t n, queue_ids_cb cb,
                  void *ud)
{
    if (q == NULL || cb == NULL || ids == NULL || owner == NULL || !q_utf8_valid(owner) || n == 0 ||
        n > 100000)
        return -EINVAL;
    struct qarr a;
    qa_init(&a);
    for (size_t i = 0; i < n; i++)
        qa_int(&a, ids[i]);
    const char *arr = qa_end(&a);
    struct hreq *h = arr ? calloc(1, sizeof(*h)) : NULL;
    if (h == NULL) {
        qa_free(&a);
        return -ENOMEM;
    }
    h->cb = cb;
    h->ud = ud;
    const char *p[2] = {arr, owner};
    int rc = pg_query_prepared(q->pool, "smsys_q_handing", SQL_HANDING, 2, p, handing_cb, h);
    if (rc != 0)
        free(h);
    qa_free(&a);
    return rc;
}
