/* http_server_internal.h - entry points of http_server.c for tests and the
 * fuzzer only; smsysd and the simulators use include/smsys/http_server.h.
 *
 * A "fake" server has no listener and no loop handles. Its connections
 * run the same parsing, limit and routing state machine as real ones, but
 * their bytes come from a buffer and their responses go to a buffer, so
 * the parser can be fuzzed without sockets. Timers do not exist there:
 * the 408/idle paths are covered by the integration test instead. */
#ifndef SMSYS_HTTP_SERVER_INTERNAL_H
#define SMSYS_HTTP_SERVER_INTERNAL_H

#include <stddef.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"

/* Creates a server without a listener (opts->listen is ignored). Routes
 * are added with http_server_route(). Free with http_server_free_fake().
 * Returns 0 or -ENOMEM. */
int http_server_new_fake(const struct http_server_opts *opts, struct http_server **out);

/* Runs one fake connection over the n chunks (each fed as one read), then
 * signals end of input. Every byte the server would have written (100
 * Continue, responses) is appended to out. Handlers SHOULD reply
 * synchronously; a handler that replies later still may (its reply is then
 * discarded and the connection freed at that point). Returns 1 when the
 * server decided to close the connection before the end of input, else 0. */
int http_server_fake_feed(struct http_server *s, const char *const *chunks, const size_t *lens,
                          size_t n, struct buf *out);

/* Frees a fake server and its routes. */
void http_server_free_fake(struct http_server *s);

#endif
