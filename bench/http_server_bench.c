/* http_server_bench.c - a server for bench/http_server_bench.sh: one
 * trivial route ("/ping" -> 200 "pong") and one that echoes the body, on
 * the address given as argv[1]. Runs until SIGINT/SIGTERM. */
#include "smsys/http_server.h"
#include "smsys/log.h"

#include <stdio.h>
#include <string.h>

static struct http_server *srv;
static uv_signal_t sig_int, sig_term;

static void ping_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    http_resp_send(resp, 200, "text/plain", "pong", 4);
}

static void echo_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    http_resp_send(resp, 200, "application/octet-stream", req->body, req->body_len);
}

static void closed_cb(void *ud)
{
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_term);
    http_server_close(srv, closed_cb, NULL);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    struct http_server_opts o = {.listen = argc > 1 ? argv[1] : "127.0.0.1:8481"};
    log_setup(LOG_WARN, LOG_TEXT, stderr);
    int rc = http_server_new(loop, &o, &srv);
    if (rc) {
        fprintf(stderr, "listen %s: %s\n", o.listen, uv_strerror(rc));
        return 1;
    }
    http_server_route(srv, "GET", "/ping", ping_cb, NULL);
    http_server_route(srv, NULL, "/echo", echo_cb, NULL);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, signal_cb, SIGINT);
    uv_signal_start(&sig_term, signal_cb, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
