/* inbound_int.h - what inbound.c (intake, rounds, the SMS record) and
 * inbound_act.c (keyword actions) share. Private to src/. */
#ifndef SMSYS_INBOUND_INT_H
#define SMSYS_INBOUND_INT_H

#include <cjson/cJSON.h>

#include "smsys/inbound.h"
#include "smsys/keyword.h"

/* One inbound row being processed. */
struct ijob {
    struct inbound *in;
    int64_t id;
    char *account_id, *src, *dst, *body;
    int attempts;
    cJSON *matches; /* [{"table","id","donotsms"}], best first, or NULL */
    char user_id[37], queue_id[37], reply_to[37];
    char m_table[64], m_id[37]; /* the record the SMS is regarding ("" none) */
    char activity_id[37];
    char case_id[37];
    struct kw_result kw;
    int have_kw;
    cJSON *results; /* rule results, saved on the row */
    int phase;      /* 0 waiting, 1 running, 2 done */
    int step;
    size_t hit, sub; /* action cursor */
    int act_rc;      /* first error of the current action */
    char act_err[400];
    int rc; /* record creation result */
    char error[600];
};

struct inbound {
    uv_loop_t *loop;
    struct pg_pool *pool;
    struct dv_client *dv;
    struct queue *q;
    struct phone_index *pi;
    struct inbound_opts o;
    char country[8];

    struct kw_rules *rules;
    cJSON *seps; /* {"<account id lower case>": "<separators>"} */
    /* reply templates read this round: {"<id>": {"body","entity"}}; freed
     * with the round's jobs so an edited template takes effect next round */
    cJSON *tpls;
    uint64_t rules_at_ms;

    int busy;
    struct ijob *jobs;
    size_t njobs, running, ndone;
    unsigned processed;
    inbound_done_cb cb;
    void *ud;

    /* inbox polling (inbound_attach_connmgr) */
    struct connmgr *cm;
    struct inbox_due {
        char id[40];
        uint64_t next_ms;
    } * due;
    size_t ndue, capdue;
    unsigned polls_busy;
    int sweep_busy;
    uint64_t sweep_at_ms;

    /* inbound_start */
    uv_timer_t timer;
    int started, timer_open, index_busy, stopping;
    uint64_t index_at_ms;
    struct queue_leader *leader;
    int leader_pending;
    void (*stop_cb)(void *ud);
    void *stop_ud;
};

/* Next step of the job (inbound.c). */
void ijob_run(struct ijob *j);
/* Runs action hit j->hit (sub-step j->sub); calls ijob_run when the whole
 * action list is done (inbound_act.c). */
void ijob_actions(struct ijob *j);
/* Appends one rule result. */
void ijob_result(struct ijob *j, const struct kw_hit *h, int rc, const char *detail);
/* Entity set of a table ("contacts"), for binds. */
const char *ijob_set_of(const struct inbound *in, const char *table);

#endif
