/* smpp_session_int.h - internals shared by smpp_session.c (queue, window,
 * I/O, timers) and smpp_session_life.c (connect, create, close). Not a
 * public header. */
#ifndef SMSYS_SMPP_SESSION_INT_H
#define SMSYS_SMPP_SESSION_INT_H

#include "smsys/buf.h"
#include "smsys/list.h"
#include "smsys/smpp_session.h"

#define ENTRY_INLINE 448 /* a submit_sm with 254 octets and SAR TLVs fits */
#define ENTRY_CHUNK  256
#define RBUF_MIN     (64 * 1024)

struct entry {
    struct list_node node; /* on queue, inflight, done or the free list */
    uint64_t order;        /* submit order: requeued entries keep their place */
    uint64_t deadline;
    uint32_t seq;
    smpp_submit_cb cb;
    void *ud;
    int err; /* for completions fired from the defer timer */
    uint8_t *pdu;
    size_t len;
    uint8_t inl[ENTRY_INLINE];
};

struct chunk {
    struct chunk *next;
    struct entry e[ENTRY_CHUNK];
};

enum link_state { L_DOWN = 0, L_CONNECTING, L_BINDING, L_BOUND, L_UNBINDING };

struct pending_dlv {
    uint32_t seq, cmd;
};

struct link {
    struct smpp_session *s;
    int idx;
    enum link_state state;
    uint32_t bind_cmd;
    uv_tcp_t tcp;
    int tcp_open; /* initialised and not yet through its close callback */
    uv_connect_t creq;
    uv_write_t wreq;
    int writing;
    struct buf out, wbuf; /* accumulating / being written */
    size_t unflushed;     /* inflight entries (at the tail) still in `out` */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint32_t bind_seq, enq_seq, unbind_seq;
    uint64_t enq_deadline;
    struct pending_dlv *dlv;
    size_t ndlv, capdlv;
};

struct smpp_session {
    uv_loop_t *loop;
    struct smpp_session_opts o;
    char *host, *system_id, *password, *system_type, *address_range;
    struct smpp_session_cbs cbs;
    void *ud;
    struct link links[2];
    int nlinks;
    enum smpp_state state;
    uint32_t gen; /* bumped per connection attempt: stale callbacks and tokens */
    uv_getaddrinfo_t gai;
    int resolving;
    unsigned addr_rot;
    uv_timer_t t_reconnect, t_conn, t_resp, t_enquire, t_send, t_defer;
    uv_prepare_t prep;
    int handles;                       /* timers + prepare not yet closed */
    struct list queue, inflight, done; /* of struct entry */
    struct list freel;                 /* pooled entries, not owned by the list */
    struct chunk *chunks;
    uint32_t next_seq;
    uint64_t order;
    unsigned attempt;
    uint64_t pause_until;
    unsigned pause_cur;
    double tokens;
    uint64_t tok_ms;
    unsigned seed;
    int closing, close_started, finished;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct smpp_session_stats st;
};

/* Intrusive FIFO lists of entries (queue, inflight, done). */
/* The entry at the front of l, unlinked, or NULL when l is empty. */
static inline struct entry *ss_el_pop(struct list *l)
{
    return list_entry(list_pop_front(l), struct entry, node);
}

static inline struct entry *ss_el_first(const struct list *l)
{
    return list_entry(list_first(l), struct entry, node);
}
/* Calls e's callback exactly once and returns e to the pool. */
void ss_entry_complete(struct smpp_session *s, struct entry *e, int err, uint32_t status,
                       const char *msgid);
/* Next sequence_number, 1 .. 0x7FFFFFFF. */
uint32_t ss_seq_next(struct smpp_session *s);
/* Encodes a small PDU of ours into l's output buffer. 0 or < 0. */
int ss_link_send(struct link *l, uint32_t cmd, uint32_t status, uint32_t seq,
                 const struct smpp_pdu *body);
/* Handle callbacks set up by smpp_session_new / close. */
void ss_prep_cb(uv_prepare_t *h);
void ss_conn_timer_cb(uv_timer_t *t);
void ss_defer_timer_cb(uv_timer_t *t);
void ss_set_state(struct smpp_session *s, enum smpp_state st, int err);
void ss_tcp_close_cb(uv_handle_t *h);
/* Closes l's socket (if open) and forgets its per-connection state. */
void ss_link_reset(struct link *l);
/* Takes every link down: in-flight -> SMSYS_EUNKNOWN or requeued,
 * then reconnects after a backoff, or continues a close. */
void ss_session_down(struct smpp_session *s, int err);
void ss_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);
void ss_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
/* Moves queued submits into the window while rules allow. */
void ss_pump(struct smpp_session *s);
/* Resolves and connects every link (state CONNECTING). */
void ss_session_connect(struct smpp_session *s);
/* Frees the session and calls the close cb once all is closed. */
void ss_maybe_finish(struct smpp_session *s);
/* Drives a close: unbind once idle, then tear down. */
void ss_close_step(struct smpp_session *s);

#endif
