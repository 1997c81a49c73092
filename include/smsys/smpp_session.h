/* smpp_session.h - the ESME side of an SMPP 3.4 session on libuv.
 *
 * One session = one account at one SMSC: a transceiver bind (one TCP
 * connection) or a transmitter + receiver pair (two). The session resolves
 * the host (uv_getaddrinfo, IPv4/IPv6), connects, binds, keeps the link
 * with enquire_link, reconnects with exponential backoff and jitter, and
 * sends submit_sm through a window of N outstanding PDUs matched by
 * sequence_number, at most rate_per_sec segments per second.
 *
 * Contract (libuv style):
 *  1. smpp_session_submit() either returns < 0 and never calls cb, or
 *     returns 0 and calls cb exactly once, later, never inside the call.
 *  2. Submits are sent in the order they were made. A throttle answer
 *     (ESME_RTHROTTLED 0x58, ESME_RMSGQFUL 0x14) fails that submit with
 *     SMSYS_ETHROTTLED and pauses the whole session (everything queued
 *     waits, nothing is reordered) for a growing backoff; with
 *     opts.requeue_throttled the session instead resends that submit
 *     first after the pause, without calling cb.
 *  3. Unknown outcome: a submit whose bytes were handed to the socket and
 *     got no answer (response timeout, connection lost) completes with
 *     SMSYS_EUNKNOWN and is never resent by the session. A submit that
 *     never left the process stays queued across reconnects, and fails
 *     with SMSYS_ECLOSED only when the session is closed.
 *  4. deliver_sm is NOT answered by the session: deliver_cb gets a token
 *     and the caller answers with smpp_session_deliver_ack() once the
 *     receipt or MO is durably stored. Unanswered deliver_sm die with the
 *     connection; the SMSC redelivers them.
 *  5. smpp_session_close() unbinds (waiting up to unbind_timeout_ms for
 *     outstanding answers), closes every handle, fires each pending submit
 *     cb once, then calls its own cb; the session is freed after that.
 * All callbacks run on the loop thread. */
#ifndef SMSYS_SMPP_SESSION_H
#define SMSYS_SMPP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/smpp_pdu.h"

struct smpp_session;

enum smpp_state {
    SMPP_CLOSED = 0, /* no connection (waiting to reconnect, or closed) */
    SMPP_CONNECTING, /* resolving / TCP connect */
    SMPP_BINDING,    /* bind sent */
    SMPP_BOUND,      /* submits flow */
    SMPP_UNBINDING   /* closing gracefully */
};

enum smpp_bind_mode { SMPP_BIND_TRX = 0, SMPP_BIND_TX_RX = 1 };

/* Settings; strings are copied by smpp_session_new. Zero means default. */
struct smpp_session_opts {
    const char *host; /* name or address; required */
    int port;         /* required */
    const char *system_id, *password, *system_type;
    enum smpp_bind_mode bind;
    uint8_t addr_ton, addr_npi;
    const char *address_range;
    unsigned window;             /* outstanding submit_sm; default 10 */
    unsigned resp_timeout_ms;    /* per PDU; default 30000 */
    unsigned enquire_link_s;     /* default 30 */
    unsigned connect_timeout_ms; /* resolve + connect + bind; default 10000 */
    double rate_per_sec;         /* segments (submit_sm) per second; 0 = unlimited */
    unsigned rate_burst;         /* token bucket size; default max(1, rate/20) */
    unsigned reconnect_min_ms;   /* default 500 */
    unsigned reconnect_max_ms;   /* default 30000 */
    unsigned throttle_pause_ms;  /* first pause after a throttle answer; default 1000 */
    unsigned throttle_max_ms;    /* pause doubles per consecutive throttle; default 30000 */
    unsigned unbind_timeout_ms;  /* default 2000 */
    unsigned max_queue;          /* submits waiting for the window; default 100000 */
    int requeue_throttled;       /* see contract rule 2 */
};

/* Completion of one submit. err: 0 = the SMSC accepted it (message_id set);
 * SMSYS_ETHROTTLED, SMSYS_ETEMP, SMSYS_EPERM, SMSYS_EAUTH = the SMSC
 * refused it (command_status says how; smpp_status_class mapping);
 * SMSYS_EUNKNOWN = sent, no answer (command_status 0); SMSYS_ECLOSED =
 * never sent, session closed. message_id is "" unless err == 0; it is
 * borrowed for the duration of the call. */
typedef void (*smpp_submit_cb)(void *ud, int err, uint32_t command_status, const char *message_id);

struct smpp_session_cbs {
    /* Every state change; err says why a link went down (0, SMSYS_EAUTH
     * for a refused bind, SMSYS_EPROTO, -ETIMEDOUT, -ECONNREFUSED, ...).
     * May be NULL. */
    void (*state_cb)(struct smpp_session *s, enum smpp_state st, int err, void *ud);
    /* A deliver_sm (or data_sm) arrived; pdu and its strings are valid only
     * during the call. Answer later with smpp_session_deliver_ack(token).
     * When NULL, the session answers ESME_RX_T_APPN (the SMSC retries). */
    void (*deliver_cb)(struct smpp_session *s, const struct smpp_pdu *pdu, uint64_t token,
                       void *ud);
};

struct smpp_session_stats {
    uint64_t submitted, accepted, refused, throttled, unknown, closed;
    uint64_t delivers, acks, reconnects, binds;
    size_t queued, inflight;
    int paused; /* 1 while a throttle pause holds the queue */
};

/* Creates the session and starts connecting. Returns 0 and the session in
 * *out (release with smpp_session_close), or -EINVAL/-ENOMEM. */
int smpp_session_new(uv_loop_t *loop, const struct smpp_session_opts *opts,
                     const struct smpp_session_cbs *cbs, void *ud, struct smpp_session **out);

/* Queues one submit_sm (fields are copied: sm is borrowed for the call).
 * Returns 0 (cb later, exactly once), SMSYS_ECLOSED when closing,
 * -ENOBUFS when max_queue submits are waiting, SMSYS_ETOOBIG when a field
 * is over its SMPP limit. */
int smpp_session_submit(struct smpp_session *s, const struct smpp_sm *sm, smpp_submit_cb cb,
                        void *ud);

/* Answers the deliver_sm behind token with deliver_sm_resp(command_status).
 * Returns 0, -ENOENT for an unknown or already answered token, or
 * SMSYS_ECLOSED when its connection is gone (the SMSC will redeliver). */
int smpp_session_deliver_ack(struct smpp_session *s, uint64_t token, uint32_t command_status);

enum smpp_state smpp_session_state(const struct smpp_session *s);
void smpp_session_stats(const struct smpp_session *s, struct smpp_session_stats *out);

/* Closes as described in rule 5; cb(ud) once everything is released. */
void smpp_session_close(struct smpp_session *s, void (*cb)(void *ud), void *ud);

#endif
