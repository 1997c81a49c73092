/* sim.h - smscsim internals shared by its files (docs/smscsim.md). */
#ifndef SMSCSIM_SIM_H
#define SMSCSIM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/buf.h"
#include "smsys/list.h"
#include "smsys/smpp_pdu.h"

enum id_form { ID_DEC = 0, ID_HEX, ID_HEXU, ID_DEC0, ID_HEX0, ID_HEXU0, ID_UUID };

#define MAX_OUTCOMES 8
#define MAX_DEST_ERR 16

struct outcome {
    char stat[8]; /* DELIVRD, UNDELIV, ... */
    int state;    /* message_state */
    unsigned weight;
};

struct dest_err {
    char pattern[40]; /* fnmatch(3) glob on destination_addr */
    uint32_t status;
};

/* Settings: from flags, changed live by the control interface. */
struct sim_cfg {
    const char *listen, *system_id, *password, *log_path, *control, *script;
    int id_form, receipt_id_form; /* receipt_id_form < 0: same as id_form */
    unsigned receipt_delay_ms;
    struct outcome outcomes[MAX_OUTCOMES];
    int n_outcomes;
    int receipt_tlv, receipt_text;
    unsigned throttle_every;
    unsigned throttle_rate; /* submits per second; above -> ESME_RTHROTTLED; 0 = off */
    struct dest_err dest_err[MAX_DEST_ERR];
    int n_dest_err;
    unsigned drop_after; /* one-shot: cut the connection at the Nth submit_sm */
    int ignore_enquire;  /* do not answer enquire_link (tests the ESME's timeout) */
    unsigned deliver_window;
    unsigned redeliver_ms; /* resend an unanswered deliver_sm after this; 0 = on rebind only */
    int log_pdus;          /* 0: log only messages and stats (benchmarks) */
};

/* A deliver_sm the SMSC wants to send (receipt or MO part), pooled. */
struct dlv {
    struct list_node node; /* on sim->queue, a conn's unacked, or sim->freel */
    uint64_t due;
    uint32_t seq;          /* while sent and unanswered */
    struct sim_conn *conn; /* where it is unanswered, else NULL */
    size_t len;
    uint8_t pdu[480];
};

struct sim_conn {
    uv_tcp_t tcp;
    struct sim *sim;
    struct list_node node; /* on sim->conns */
    unsigned id;
    int bound;  /* 0, or the bind command_id */
    int can_rx; /* receiver or transceiver: deliver_sm may go here */
    int closing;
    uint32_t next_seq;
    uint8_t *rbuf;
    size_t rlen, rcap;
    struct buf out, wbuf;
    uv_write_t wreq;
    int writing;
    struct list unacked; /* of struct dlv: deliver_sm sent here, waiting for deliver_sm_resp */
};

struct sim_stats {
    uint64_t connections, binds, bind_refused, submit_sm, accepted, throttled, errors;
    uint64_t deliver_sent, deliver_acked, deliver_redelivered, enquire_link, drops, messages;
    uint64_t mo_injected, bad_pdus;
};

struct part_group; /* multipart reassembly, simlog.c */

struct sim {
    uv_loop_t *loop;
    struct sim_cfg cfg;
    uv_tcp_t server;
    uv_timer_t t_dlv, t_log;
    struct http_server *http;
    uv_signal_t sig_term, sig_int;
    struct list conns; /* of struct sim_conn, newest first */
    unsigned next_conn_id;
    uint64_t next_msg_id;
    uint64_t rate_window_ms;
    unsigned rate_count;
    struct list queue; /* of struct dlv: deliveries waiting (due time order) */
    struct list freel; /* of struct dlv: pooled, freed at exit */
    struct sim_stats st;
    FILE *log;
    struct buf logbuf;
    struct part_group *groups;
    unsigned ngroups;
    uint16_t mo_ref;
    unsigned seed;
    int stopping;
};

static inline struct dlv *sim_dlv_of(struct list_node *n)
{
    return list_entry(n, struct dlv, node);
}

static inline struct sim_conn *sim_conn_of(struct list_node *n)
{
    return list_entry(n, struct sim_conn, node);
}

/* conn.c */
void sim_on_connection(uv_stream_t *server, int status);
void sim_conn_drop(struct sim_conn *c);
void sim_drop_all(struct sim *sim);
void sim_pump_deliveries(struct sim *sim);
void sim_dlv_timer_cb(uv_timer_t *t);
/* Queues an MO message (split into `parts` with a UDH when > 1, sent in
 * `order`, a list of 1-based part numbers, or in order when NULL).
 * Returns 0 or a negative code. */
int sim_inject_mo(struct sim *sim, const char *from, const char *to, const char *text,
                  unsigned parts, const unsigned *order, size_t norder);
struct dlv *sim_dlv_get(struct sim *sim);
void sim_dlv_put(struct sim *sim, struct dlv *d);

/* simlog.c */
void simlog_pdu(struct sim *sim, struct sim_conn *c, const struct smpp_pdu *p, uint32_t status,
                const char *msgid);
void simlog_event(struct sim *sim, const char *event, const char *kvjson);
void simlog_stats(struct sim *sim, struct buf *out);
void simlog_flush(struct sim *sim);
void simlog_timer_cb(uv_timer_t *t);
void simlog_free(struct sim *sim);
/* Text of a short message in UTF-8 (GSM-7 unpacked, IA5, Latin-1, UCS-2,
 * else hex), appended to out as a JSON string body. */
void sim_text_json(struct buf *out, uint8_t dcs, const uint8_t *p, size_t n);
/* UTF-8 -> bytes for data_coding dcs (0: GSM-7 unpacked, 8: UCS-2).
 * Returns the dcs chosen: 0 when every character is in the GSM-7 basic
 * table, else 8. out gets one entry per character boundary in bounds[]
 * (byte offsets), so the caller can split on characters. */
int sim_text_encode(const char *utf8, struct buf *out, size_t *bounds, size_t maxb, size_t *nb);

/* control.c */
/* Runs one control command line; the reply (JSON) is appended to out.
 * Returns 0 or a negative code (the reply then says why). */
int sim_command(struct sim *sim, const char *line, struct buf *out);
int sim_parse_outcomes(struct sim_cfg *cfg, const char *spec);
int sim_parse_id_form(const char *s, int *out);
int sim_parse_dest_err(struct sim_cfg *cfg, const char *spec);
int sim_config_set(struct sim *sim, const char *key, const char *value);
int sim_script_start(struct sim *sim);
void sim_script_stop(void);

/* http.c: the control API on --control (docs/smscsim.md). */
int sim_control_start(struct sim *sim);
void sim_control_stop(struct sim *sim);

#endif
