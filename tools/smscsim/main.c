/* smscsim - a scriptable SMPP 3.4 SMSC simulator (docs/smscsim.md). */
#include "sim.h"

#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: smscsim --listen HOST:PORT [options]\n"
          "  --system-id ID --password PW   accept only these bind credentials\n"
          "  --log FILE.jsonl               JSON line per PDU received (and events)\n"
          "  --log-pdus 0|1                 0: only reassembled messages + events (default 1)\n"
          "  --control HOST:PORT            control port (line commands, see docs)\n"
          "  --script FILE                  'MS command' lines run MS after start\n"
          "  --id-form dec|hex|HEX|dec0|hex0|HEX0|uuid   submit_sm_resp ids (default dec)\n"
          "  --receipt-id-form FORM         ids in receipts (default: as --id-form)\n"
          "  --receipt-delay-ms N           default 100\n"
          "  --receipt-outcomes S:W,...     e.g. DELIVRD:90,UNDELIV:10 (default DELIVRD:1)\n"
          "  --receipts tlv|text|both|none  how receipts carry id and state (default both)\n"
          "  --throttle-every N             every Nth submit_sm gets ESME_RTHROTTLED\n"
          "  --throttle-rate R              ESME_RTHROTTLED above R submit_sm per second\n"
          "  --dest-error GLOB=STATUS       e.g. '*0000=0x0B' (repeatable)\n"
          "  --drop-after N                 cut the connection at the Nth submit_sm (once)\n"
          "  --ignore-enquire               never answer enquire_link\n"
          "  --deliver-window N             unanswered deliver_sm per connection (default 64)\n"
          "  --redeliver-ms N               resend unanswered deliver_sm after N ms (default 0)\n",
          f);
}

static struct sim g_sim;

static void stop(struct sim *sim)
{
    if (sim->stopping)
        return;
    sim->stopping = 1;
    sim_drop_all(sim);
    struct buf st = BUF_INIT;
    buf_puts(&st, "\"stats\":");
    simlog_stats(sim, &st);
    simlog_event(sim, "stopping", st.data);
    buf_free(&st);
    simlog_flush(sim);
    sim_control_stop(sim);
    sim_script_stop();
    uv_close((uv_handle_t *)&sim->server, NULL);
    uv_close((uv_handle_t *)&sim->t_dlv, NULL);
    uv_close((uv_handle_t *)&sim->t_log, NULL);
    uv_close((uv_handle_t *)&sim->sig_term, NULL);
    uv_close((uv_handle_t *)&sim->sig_int, NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    stop(h->data);
}

static int parse_hostport(const char *a, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL)
        return -EINVAL;
    char host[64];
    const char *h = a;
    size_t hl = (size_t)(colon - a);
    if (hl >= 2 && a[0] == '[' && a[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    long long port;
    if (util_parse_int(colon + 1, 0, 65535, &port))
        return -EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

int main(int argc, char **argv)
{
    struct sim *sim = &g_sim;
    struct sim_cfg *cfg = &sim->cfg;
    cfg->receipt_id_form = -1;
    cfg->receipt_delay_ms = 100;
    cfg->receipt_tlv = cfg->receipt_text = 1;
    cfg->deliver_window = 64;
    cfg->log_pdus = 1;
    sim_parse_outcomes(cfg, "DELIVRD:1");
    enum {
        O_LISTEN = 256,
        O_SYSID,
        O_PASS,
        O_LOG,
        O_LOGPDUS,
        O_CONTROL,
        O_SCRIPT,
        O_IDFORM,
        O_RIDFORM,
        O_RDELAY,
        O_ROUT,
        O_RECEIPTS,
        O_TEVERY,
        O_TRATE,
        O_DESTERR,
        O_DROP,
        O_IGNENQ,
        O_DWIN,
        O_REDELIVER,
        O_HELP
    };
    static const struct option opts[] = {
        {"listen", 1, 0, O_LISTEN},
        {"system-id", 1, 0, O_SYSID},
        {"password", 1, 0, O_PASS},
        {"log", 1, 0, O_LOG},
        {"log-pdus", 1, 0, O_LOGPDUS},
        {"control", 1, 0, O_CONTROL},
        {"script", 1, 0, O_SCRIPT},
        {"id-form", 1, 0, O_IDFORM},
        {"receipt-id-form", 1, 0, O_RIDFORM},
        {"receipt-delay-ms", 1, 0, O_RDELAY},
        {"receipt-outcomes", 1, 0, O_ROUT},
        {"receipts", 1, 0, O_RECEIPTS},
        {"throttle-every", 1, 0, O_TEVERY},
        {"throttle-rate", 1, 0, O_TRATE},
        {"dest-error", 1, 0, O_DESTERR},
        {"drop-after", 1, 0, O_DROP},
        {"ignore-enquire", 0, 0, O_IGNENQ},
        {"deliver-window", 1, 0, O_DWIN},
        {"redeliver-ms", 1, 0, O_REDELIVER},
        {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    long long v;
#define UINT_ARG(field)                                                                            \
    do {                                                                                           \
        if (util_parse_int(optarg, 0, 0x7FFFFFFF, &v))                                             \
            goto bad;                                                                              \
        field = (unsigned)v;                                                                       \
    } while (0)
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            cfg->listen = optarg;
            break;
        case O_SYSID:
            cfg->system_id = optarg;
            break;
        case O_PASS:
            cfg->password = optarg;
            break;
        case O_LOG:
            cfg->log_path = optarg;
            break;
        case O_LOGPDUS:
            cfg->log_pdus = strcmp(optarg, "0") != 0;
            break;
        case O_CONTROL:
            cfg->control = optarg;
            break;
        case O_SCRIPT:
            cfg->script = optarg;
            break;
        case O_IDFORM:
            if (sim_parse_id_form(optarg, &cfg->id_form))
                goto bad;
            break;
        case O_RIDFORM:
            if (sim_parse_id_form(optarg, &cfg->receipt_id_form))
                goto bad;
            break;
        case O_RDELAY:
            UINT_ARG(cfg->receipt_delay_ms);
            break;
        case O_ROUT:
            if (sim_parse_outcomes(cfg, optarg))
                goto bad;
            break;
        case O_RECEIPTS:
            cfg->receipt_tlv = strcmp(optarg, "tlv") == 0 || strcmp(optarg, "both") == 0;
            cfg->receipt_text = strcmp(optarg, "text") == 0 || strcmp(optarg, "both") == 0;
            if (!cfg->receipt_tlv && !cfg->receipt_text && strcmp(optarg, "none") != 0)
                goto bad;
            if (strcmp(optarg, "none") == 0)
                cfg->n_outcomes = 0;
            break;
        case O_TEVERY:
            UINT_ARG(cfg->throttle_every);
            break;
        case O_TRATE:
            UINT_ARG(cfg->throttle_rate);
            break;
        case O_DESTERR:
            if (sim_parse_dest_err(cfg, optarg))
                goto bad;
            break;
        case O_DROP:
            UINT_ARG(cfg->drop_after);
            break;
        case O_IGNENQ:
            cfg->ignore_enquire = 1;
            break;
        case O_DWIN:
            UINT_ARG(cfg->deliver_window);
            break;
        case O_REDELIVER:
            UINT_ARG(cfg->redeliver_ms);
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
#undef UINT_ARG
    if (cfg->listen == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (cfg->deliver_window == 0)
        cfg->deliver_window = 1;
    struct sockaddr_storage ss;
    if (parse_hostport(cfg->listen, &ss)) {
        fprintf(stderr, "smscsim: bad --listen %s\n", cfg->listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sim->loop = uv_default_loop();
    sim->seed = (unsigned)uv_hrtime();
    sim->next_msg_id = 0x10000000ull + (uv_hrtime() % 1000) * 0x100000ull;
    if (cfg->log_path) {
        sim->log = fopen(cfg->log_path, "a");
        if (sim->log == NULL) {
            fprintf(stderr, "smscsim: cannot open %s: %s\n", cfg->log_path, strerror(errno));
            return 1;
        }
    }
    uv_tcp_init(sim->loop, &sim->server);
    sim->server.data = sim;
    int rc = uv_tcp_bind(&sim->server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&sim->server, 128, sim_on_connection);
    if (rc) {
        fprintf(stderr, "smscsim: cannot listen on %s: %s\n", cfg->listen, uv_strerror(rc));
        return 1;
    }
    if (cfg->control && (rc = sim_control_start(sim)) != 0) {
        fprintf(stderr, "smscsim: cannot listen on control %s: %s\n", cfg->control,
                smsys_strerror(rc));
        return 1;
    }
    uv_timer_init(sim->loop, &sim->t_dlv);
    sim->t_dlv.data = sim;
    uv_timer_init(sim->loop, &sim->t_log);
    sim->t_log.data = sim;
    uv_timer_start(&sim->t_log, simlog_timer_cb, 50, 50);
    uv_signal_init(sim->loop, &sim->sig_term);
    sim->sig_term.data = sim;
    uv_signal_start(&sim->sig_term, signal_cb, SIGTERM);
    uv_signal_init(sim->loop, &sim->sig_int);
    sim->sig_int.data = sim;
    uv_signal_start(&sim->sig_int, signal_cb, SIGINT);
    if (cfg->script && (rc = sim_script_start(sim)) != 0) {
        fprintf(stderr, "smscsim: bad --script %s: %s\n", cfg->script, smsys_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&sim->server, (struct sockaddr *)&bound, &blen);
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    simlog_event(sim, "listening", NULL);
    printf("smscsim listening on %s (port %d)\n", cfg->listen, port);
    fflush(stdout);
    uv_run(sim->loop, UV_RUN_DEFAULT);
    simlog_flush(sim);
    uv_loop_close(sim->loop);
    struct list_node *n;
    while ((n = list_pop_front(&sim->queue)) != NULL)
        free(sim_dlv_of(n));
    while ((n = list_pop_front(&sim->freel)) != NULL)
        free(sim_dlv_of(n));
    simlog_free(sim);
    if (sim->log)
        fclose(sim->log);
    return 0;
bad:
    fprintf(stderr, "smscsim: bad value for an option: %s\n", optarg ? optarg : "");
    return 2;
}
