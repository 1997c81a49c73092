/* conn_parsers.h - the reply parsers of the HTTP connectors, exposed for
 * unit tests and the fuzz target (test/fuzz/fuzz_conn_replies.c). Provider
 * replies are outside input: every parser must survive any bytes.
 * Internal: not part of the public API. */
#ifndef SMSYS_CONN_PARSERS_H
#define SMSYS_CONN_PARSERS_H

#include <stddef.h>

#include "smsys/conn_http.h"
#include "smsys/http_server.h"

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

#endif
