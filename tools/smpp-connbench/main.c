/* smpp-connbench - pushes messages through the SMPP CONNECTOR (send() in
 * batches of 100, text encoding and splitting, part bookkeeping, receipts
 * as events acked at once) over one bind to smscsim, and prints messages
 * and segments per second and CPU per message for us and the simulator.
 *
 *   smpp-connbench [-n N] [--windows 10,50] [--smscsim PATH]
 *
 * Cases per window: short GSM-7 text without and with receipts, and a
 * Persian text of two UCS-2 parts without and with receipts. Each case
 * gets a fresh smscsim (--log-pdus 0). */
#include "smsys/connector.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH       100
#define MAX_BATCHES 100 /* 10,000 messages outstanding at most */

struct bench {
    uv_loop_t *loop;
    const struct conn_ops *ops;
    struct conn *c;
    long n, sent, done, ok, failed, segments, receipts;
    int batches, want_receipts, bound, closed;
    const char *text;
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static pid_t start_sim(const char *path, int port, int receipts)
{
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(path, path, "--listen", listen, "--log-pdus", "0", "--receipts",
              receipts ? "both" : "none", "--receipt-delay-ms", "0", "--deliver-window", "256",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250 && pid > 0; i++) {
        if (port_open(port))
            return pid;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

/* utime + stime of a process in microseconds (/proc/PID/stat). */
static long long proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static long long self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

static void send_more(struct bench *b);

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct bench *b = ud;
    b->batches--;
    for (size_t i = 0; i < n; i++) {
        b->done++;
        if (res[i].rc == 0) {
            b->ok++;
            b->segments += res[i].segments;
        } else {
            b->failed++;
        }
    }
    send_more(b);
}

static void send_more(struct bench *b)
{
    static char ids[BATCH][24], dsts[BATCH][24];
    while (b->sent < b->n && b->batches < MAX_BATCHES) {
        struct sms_out m[BATCH];
        size_t k = 0;
        for (; k < BATCH && b->sent < b->n; k++, b->sent++) {
            snprintf(ids[k], sizeof(ids[k]), "%ld", b->sent);
            snprintf(dsts[k], sizeof(dsts[k]), "+98912%07ld", b->sent % 10000000);
            m[k] = (struct sms_out){.id = ids[k], .to = dsts[k], .text = b->text};
        }
        if (b->ops->send(b->c, m, k, sent_cb, b) != 0) {
            fprintf(stderr, "smpp-connbench: send failed\n");
            b->failed += (long)k;
            b->done += (long)k;
            continue;
        }
        b->batches++;
    }
}

static void event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    struct bench *b = ud;
    if (ev->kind == CONN_EV_STATE)
        b->receipts++;
    ack(token, 0);
}

static void health_cb(void *ud, int rc, const char *detail)
{
    (void)detail;
    if (rc == 0)
        ((struct bench *)ud)->bound = 1;
}

static void closed_cb(void *ud)
{
    ((struct bench *)ud)->closed = 1;
}

static void idle_check(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->done >= b->n && (!b->want_receipts || b->receipts >= b->ok))
        uv_stop(b->loop);
}

static int run(const char *sim, long n, unsigned window, int receipts, const char *label,
               const char *text)
{
    int port = free_port();
    pid_t pid = start_sim(sim, port, receipts);
    if (pid < 0) {
        fprintf(stderr, "smpp-connbench: cannot start %s\n", sim);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = {.loop = &loop, .n = n, .want_receipts = receipts, .text = text};
    b.ops = connector_find("smpp");
    char js[256];
    snprintf(js, sizeof(js),
             "{\"host\":\"127.0.0.1\",\"port\":%d,\"system_id\":\"bench\",\"password\":\"b\","
             "\"sender\":\"3000\",\"window\":%u,\"receipts\":%s}",
             port, window, receipts ? "true" : "false");
    cJSON *settings = cJSON_Parse(js);
    struct conn_env env = {.loop = &loop,
                           .account_id = "bench",
                           .account_name = "bench",
                           .event = event_cb,
                           .health = health_cb,
                           .ud = &b};
    struct smsys_err err;
    int rc = b.ops->open(&env, settings, &b.c, &err);
    cJSON_Delete(settings);
    if (rc != 0) {
        fprintf(stderr, "smpp-connbench: open: %s\n", err.detail);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    while (!b.bound) /* bind first: the figures measure sending only */
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &b;
    uv_timer_start(&t, idle_check, 5, 5);
    long long c0 = self_cpu_us(), s0 = proc_cpu_us(pid);
    uint64_t w0 = uv_hrtime();
    send_more(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - w0) / 1e9;
    long long c1 = self_cpu_us(), s1 = proc_cpu_us(pid);
    uv_close((uv_handle_t *)&t, NULL);
    b.ops->close(b.c, closed_cb, &b);
    while (!b.closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("%-8s window=%-3u receipts=%-3s n=%ld ok=%ld failed=%ld receipts_in=%ld time=%.2fs "
           "msgs/s=%.0f segs/s=%.0f client_cpu_us/msg=%.2f sim_cpu_us/msg=%.2f\n",
           label, window, receipts ? "yes" : "no", n, b.ok, b.failed, b.receipts, secs,
           (double)b.ok / secs, (double)b.segments / secs, (double)(c1 - c0) / (double)n,
           (double)(s1 - s0) / (double)n);
    fflush(stdout);
    return b.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    long n = 100000;
    char windows[64] = "10,50";
    char sim[4096], self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[k > 0 ? k : 0] = '\0';
    snprintf(sim, sizeof(sim), "%s/smscsim", dirname(self));
    for (int i = 1; i < argc; i++) {
        long long v;
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc &&
            util_parse_int(argv[i + 1], 1, 100000000, &v) == 0) {
            n = (long)v;
            i++;
        } else if (strcmp(argv[i], "--windows") == 0 && i + 1 < argc) {
            snprintf(windows, sizeof(windows), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--smscsim") == 0 && i + 1 < argc) {
            snprintf(sim, sizeof(sim), "%s", argv[++i]);
        } else {
            fprintf(stderr, "usage: smpp-connbench [-n N] [--windows 10,50] [--smscsim PATH]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_ERROR, LOG_TEXT, stderr);
    /* 100 Persian characters: two UCS-2 parts of at most 67. */
    static char fa[1024];
    size_t len = 0;
    for (int i = 0; i < 20; i++) {
        memcpy(fa + len, "سلام ", strlen("سلام "));
        len += strlen("سلام ");
    }
    fa[len] = '\0';
    int rc = 0;
    char *save = NULL;
    for (char *w = strtok_r(windows, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        long long win;
        if (util_parse_int(w, 1, 1000, &win))
            return 2;
        for (int receipts = 0; receipts <= 1; receipts++) {
            rc |= run(sim, n, (unsigned)win, receipts, "gsm-1seg", "benchmark message, GSM-7");
            rc |= run(sim, n, (unsigned)win, receipts, "fa-2seg", fa);
        }
    }
    return rc;
}
