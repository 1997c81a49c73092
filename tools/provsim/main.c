/* provsim - one HTTP server simulating the SMS providers' APIs on
 * loopback (docs/provsim.md). Command line, start-up and shutdown. */
#include "provsim.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/util.h"

static const char usage[] =
    "usage: provsim [--listen ADDR:PORT] [--log FILE.jsonl] [--config FILE.json] [--seed N]\n"
    "               [--kavenegar-key K] [--smsir-key K] [--ghasedak-key K]\n"
    "               [--melipayamak-user U] [--melipayamak-pass P]\n"
    "               [--asanak-user U] [--asanak-pass P]\n"
    "               [--twilio-sid SID] [--twilio-token T]\n"
    "Simulates Kavenegar, SMS.ir, Ghasedak, Melipayamak, Asanak and Twilio under\n"
    "/<provider>/... and a control API under /_sim/. Default listen 127.0.0.1:8402.\n"
    "Demo credentials are the defaults (see docs/provsim.md).\n";

struct app {
    uv_loop_t loop;
    struct sim sim;
    uv_signal_t sigterm, sigint;
    int stopping;
};

static void server_closed_cb(void *ud)
{
    (void)ud;
}

static void stop(struct app *app)
{
    if (app->stopping)
        return;
    app->stopping = 1;
    log_info("provsim stopping", "messages=%zu", app->sim.nmsgs);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    if (app->sim.http)
        http_server_close(app->sim.http, server_closed_cb, NULL);
    app->sim.http = NULL;
    sim_close(&app->sim);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    struct app *app = s->data;
    stop(app);
}

static int load_config(struct sim *sim, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_error("config unreadable", "path=%s error=%s", log_q(path), log_q(strerror(errno)));
        return -1;
    }
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n)) {
            fclose(f);
            buf_free(&b);
            return -1;
        }
    fclose(f);
    cJSON *cfg = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    buf_free(&b);
    char err[256] = "not valid JSON";
    if (!cfg || sim_config_apply(sim, cfg, err, sizeof(err))) {
        log_error("config rejected", "path=%s error=%s", log_q(path), log_q(err));
        cJSON_Delete(cfg);
        return -1;
    }
    sim->startup_cfg = cfg;
    return 0;
}

/* The simulator answers on loopback only: it accepts any credentials it
 * was given and would happily "send" for anyone who can reach it. */
static int listen_is_loopback(const char *listen)
{
    return strncmp(listen, "127.0.0.1:", 10) == 0 || strncmp(listen, "[::1]:", 6) == 0;
}

/* Copies a flag value into a fixed field; refuses what does not fit. */
static int set_str(char *dst, size_t len, const char *v)
{
    if (!v || strlen(v) >= len)
        return -1;
    snprintf(dst, len, "%s", v);
    return 0;
}

int main(int argc, char **argv)
{
    struct app app;
    const char *listen = "127.0.0.1:8402", *logpath = NULL, *cfgpath = NULL;
    long long seed = 1;
    struct sim_creds cr;
    memset(&app, 0, sizeof(app));
    memset(&cr, 0, sizeof(cr));
    snprintf(cr.kavenegar_key, sizeof(cr.kavenegar_key), "demo-kavenegar-key");
    snprintf(cr.smsir_key, sizeof(cr.smsir_key), "demo-smsir-key");
    snprintf(cr.ghasedak_key, sizeof(cr.ghasedak_key), "demo-ghasedak-key");
    snprintf(cr.melipayamak_user, sizeof(cr.melipayamak_user), "demo");
    snprintf(cr.melipayamak_pass, sizeof(cr.melipayamak_pass), "demo");
    snprintf(cr.asanak_user, sizeof(cr.asanak_user), "demo");
    snprintf(cr.asanak_pass, sizeof(cr.asanak_pass), "demo");
    snprintf(cr.twilio_sid, sizeof(cr.twilio_sid), "ACdemo");
    snprintf(cr.twilio_token, sizeof(cr.twilio_token), "demo-twilio-token");

    log_set_component("provsim");
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "provsim: %s needs a value\n%s", a, usage);
            return 2;
        }
        if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--log") == 0)
            logpath = v;
        else if (strcmp(a, "--config") == 0)
            cfgpath = v;
        else if (strcmp(a, "--seed") == 0)
            bad = util_parse_int(v, 0, (long long)9e18, &seed) != 0;
        else if (strcmp(a, "--kavenegar-key") == 0)
            bad = set_str(cr.kavenegar_key, sizeof(cr.kavenegar_key), v);
        else if (strcmp(a, "--smsir-key") == 0)
            bad = set_str(cr.smsir_key, sizeof(cr.smsir_key), v);
        else if (strcmp(a, "--ghasedak-key") == 0)
            bad = set_str(cr.ghasedak_key, sizeof(cr.ghasedak_key), v);
        else if (strcmp(a, "--melipayamak-user") == 0)
            bad = set_str(cr.melipayamak_user, sizeof(cr.melipayamak_user), v);
        else if (strcmp(a, "--melipayamak-pass") == 0)
            bad = set_str(cr.melipayamak_pass, sizeof(cr.melipayamak_pass), v);
        else if (strcmp(a, "--asanak-user") == 0)
            bad = set_str(cr.asanak_user, sizeof(cr.asanak_user), v);
        else if (strcmp(a, "--asanak-pass") == 0)
            bad = set_str(cr.asanak_pass, sizeof(cr.asanak_pass), v);
        else if (strcmp(a, "--twilio-sid") == 0)
            bad = set_str(cr.twilio_sid, sizeof(cr.twilio_sid), v);
        else if (strcmp(a, "--twilio-token") == 0)
            bad = set_str(cr.twilio_token, sizeof(cr.twilio_token), v);
        else {
            fprintf(stderr, "provsim: unknown option %s\n%s", a, usage);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "provsim: bad value for %s\n", a);
            return 2;
        }
    }

    if (!listen_is_loopback(listen)) {
        fprintf(stderr, "provsim: --listen must be 127.0.0.1:PORT or [::1]:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl init failed", "error=\"curl_global_init\"");
        return 1;
    }
    int rc = uv_loop_init(&app.loop);
    if (rc == 0)
        rc = sim_init(&app.sim, &app.loop, (uint64_t)seed);
    if (rc) {
        log_error("start failed", "error=%s", log_q(uv_strerror(rc)));
        return 1;
    }
    app.sim.creds = cr;
    if (logpath && !(app.sim.log = fopen(logpath, "a"))) {
        log_error("log file unwritable", "path=%s error=%s", log_q(logpath),
                  log_q(strerror(errno)));
        rc = 1;
    }
    if (!rc && cfgpath && load_config(&app.sim, cfgpath))
        rc = 1;
    struct http_server_opts opts = {.listen = listen};
    if (!rc && (rc = http_server_new(&app.loop, &opts, &app.sim.http)) != 0) {
        log_error("listen failed", "listen=%s error=%s", log_q(listen), log_q(uv_strerror(rc)));
        app.sim.http = NULL;
        rc = 1;
    }
    for (int p = 0; !rc && p < PROV_COUNT; p++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "/%s/", sim_prov_name((enum sim_prov)p));
        if (http_server_route(app.sim.http, NULL, prefix, sim_route_cb, &app.sim.route[p]))
            rc = 1;
    }
    if (!rc && http_server_route(app.sim.http, NULL, "/_sim/", control_cb, &app.sim))
        rc = 1;
    uv_signal_init(&app.loop, &app.sigterm);
    uv_signal_init(&app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    if (rc) {
        stop(&app);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        curl_global_cleanup();
        return 1;
    }
    uv_signal_start(&app.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&app.sigint, signal_cb, SIGINT);
    log_info("provsim listening", "listen=%s port=%d seed=%lld log=%s", log_q(listen),
             http_server_port(app.sim.http), seed, logpath ? log_q(logpath) : "none");
    uv_run(&app.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&app.loop);
    if (rc)
        log_warn("loop not closed cleanly", "error=%s", log_q(uv_strerror(rc)));
    curl_global_cleanup();
    return 0;
}
