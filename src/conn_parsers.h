/* conn_parsers.h - the reply parsers of the HTTP connectors, exposed for
 * unit tests and the fuzz target (test/fuzz/fuzz_conn_replies.c). Provider
 * replies are outside input: every parser must survive any bytes.
 * Internal: not part of the public API. */
#ifndef SMSYS_CONN_PARSERS_H
#define SMSYS_CONN_PARSERS_H

#include <stddef.h>

#include "smsys/conn_http.h"
#include "smsys/http_server.h"

extern const struct conn_ops conn_kavenegar_ops, conn_smsir_ops, conn_ghasedak_ops,
    conn_melipayamak_ops, conn_asanak_ops, conn_twilio_ops, conn_generic_ops;

/* Each parse_send records results for the messages of b and returns 0 (the
 * caller then calls ch_batch_done), or 1 when it passed b on (split). */

/* kavenegar.c */
enum conn_status conn_kavenegar_status(long code);
int conn_kavenegar_class(long code, const char **text);
int conn_kavenegar_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_kavenegar_parse_status(struct ch_stq *q, int http, const char *body, size_t len);
void conn_kavenegar_parse_inbox(int http, const char *body, size_t len, conn_inbox_cb cb, void *ud);
void conn_kavenegar_parse_balance(int http, const char *body, size_t len, conn_balance_cb cb,
                                  void *ud);
int conn_kavenegar_webhook_parse(const char *token, const struct http_req *req,
                                 struct conn_event **out, size_t *n);

/* Runs the one-request parsers (inbox / balance / lines) whose callback is
 * set in cbs on body; used by tests and the fuzz target. */

/* smsir.c */
enum conn_status conn_smsir_status(long code);
int conn_smsir_class(long code, int http, const char **text);
int conn_smsir_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_smsir_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                             size_t len);
void conn_smsir_parse_ops(struct conn *c, int http, const char *body, size_t len,
                          const struct ch_op *cbs);

/* ghasedak.c */
enum conn_status conn_ghasedak_status(long code);
int conn_ghasedak_class(long code, const char **text);
int conn_ghasedak_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_ghasedak_parse_status(struct ch_stq *q, int http, const char *body, size_t len);
void conn_ghasedak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                             const struct ch_op *cbs);

/* melipayamak.c */
enum conn_status conn_melipayamak_status(long code);
int conn_melipayamak_class(long code, const char **text);
int conn_melipayamak_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_melipayamak_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                                   size_t len);
void conn_melipayamak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                                const struct ch_op *cbs);

/* twilio.c */
enum conn_status conn_twilio_status(const char *s);
int conn_twilio_class(long code, int http, const char **text);
int conn_twilio_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_twilio_parse_status(struct ch_stq *q, const char *pid, int http, const char *body,
                              size_t len);
void conn_twilio_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs);
/* base64(HMAC-SHA1(token, url + sorted key/value pairs)) into out (>= 29). */
int conn_twilio_signature(const char *token, const char *url, const struct ch_form *f, char *out,
                          size_t outlen);
int conn_twilio_webhook_parse(const char *token, const char *base_url, const struct http_req *req,
                              struct conn_event **out, size_t *n);

/* asanak.c */
enum conn_status conn_asanak_status(long code);
int conn_asanak_class(long code, const char **text);
int conn_asanak_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_asanak_parse_status(struct ch_stq *q, int http, const char *body, size_t len);
void conn_asanak_parse_ops(struct conn *c, int http, const char *body, size_t len,
                           const struct ch_op *cbs);

/* generic.c (c must be a generic connector: its settings drive parsing) */
/* Values a template can use; NULL ones are not available in that op. */
struct conn_generic_vars {
    const char *base_url, *apikey, *to, *from, *text, *id, *provider_id;
    const char *to_array_json, *id_array_json; /* batches: JSON arrays */
};
/* esc: 0 raw, 1 URL, 2 JSON, 3 form (see generic.c) */
int conn_generic_render(struct buf *out, const char *tpl, int esc,
                        const struct conn_generic_vars *v, struct smsys_err *err);
int conn_generic_parse_send(struct ch_batch *b, int http, const char *body, size_t len);
void conn_generic_parse_status(struct conn *c, struct ch_stq *q, const char *pid, int http,
                               const char *body, size_t len);
void conn_generic_parse_balance(struct conn *c, int http, const char *body, size_t len,
                                conn_balance_cb cb, void *ud);
void conn_generic_parse_inbox(struct conn *c, int http, const char *body, size_t len,
                              conn_inbox_cb cb, void *ud);

#endif
