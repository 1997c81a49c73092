/* smpp-bench - pushes N submit_sm through one bind of our session to
 * smscsim and prints throughput and CPU per message, for the client and
 * (measured separately from /proc) the simulator.
 *
 *   smpp-bench [-n N] [--windows 10,50] [--sim-log] [--smscsim PATH]
 *
 * --sim-log makes smscsim write its JSON line per PDU (to
 * /tmp/smpp-bench-sim.jsonl, removed afterwards), as in the tests.
 * Each configuration (window x receipts off/on) gets a fresh smscsim. */
#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/smpp_receipt.h"
#include "smsys/smpp_session.h"
#include "smsys/util.h"

#include <arpa/inet.h>
#include <errno.h>
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

struct bench {
    uv_loop_t *loop;
    struct smpp_session *s;
    long n, submitted, done, ok, failed, receipts;
    int want_receipts, closed;
    char text[64];
    char dst[24];
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
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

static int g_sim_log; /* --sim-log: the simulator logs every PDU, as in tests */

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
        const char *rc = receipts ? "both" : "none";
        if (g_sim_log) {
            unlink("/tmp/smpp-bench-sim.jsonl");
            execl(path, path, "--listen", listen, "--log", "/tmp/smpp-bench-sim.jsonl",
                  "--receipts", rc, "--receipt-delay-ms", "0", "--deliver-window", "256",
                  (char *)NULL);
        } else {
            execl(path, path, "--listen", listen, "--log-pdus", "0", "--receipts", rc,
                  "--receipt-delay-ms", "0", "--deliver-window", "256", (char *)NULL);
        }
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

/* utime + stime of a process in microseconds, from /proc. */
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
    if (p == NULL)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long long)((ut + st) * 1000000ull / (unsigned long long)hz);
}

static long long self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

static void submit_more(struct bench *b);

static void submit_cb(void *ud, int err, uint32_t status, const char *msgid)
{
    struct bench *b = ud;
    b->done++;
    if (err)
        b->failed++;
    else
        b->ok++;
    if (b->submitted < b->n && b->submitted - b->done < 5000)
        submit_more(b);
}

static void submit_more(struct bench *b)
{
    while (b->submitted < b->n && b->submitted - b->done < 10000) {
        struct smpp_sm sm = {0};
        sm.source_addr = "3000";
        sm.dest_ton = 1;
        sm.dest_npi = 1;
        snprintf(b->dst, sizeof(b->dst), "98912%07ld", b->submitted % 10000000);
        sm.dest_addr = b->dst;
        sm.registered_delivery = b->want_receipts ? 1 : 0;
        int n = snprintf(b->text, sizeof(b->text), "benchmark message number %ld", b->submitted);
        sm.short_message = (const uint8_t *)b->text;
        sm.sm_length = (size_t)n;
        if (smpp_session_submit(b->s, &sm, submit_cb, b))
            break;
        b->submitted++;
    }
}

static void deliver_cb(struct smpp_session *s, const struct smpp_pdu *p, uint64_t token, void *ud)
{
    struct bench *b = ud;
    struct smpp_receipt r;
    if (smpp_receipt_parse(p, &r) == 0)
        b->receipts++;
    smpp_session_deliver_ack(s, token, 0);
}

static void close_cb(void *ud)
{
    ((struct bench *)ud)->closed = 1;
}

static void idle_check(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->done >= b->n && (!b->want_receipts || b->receipts >= b->ok))
        uv_stop(b->loop);
}

static int run(const char *sim, long n, unsigned window, int receipts)
{
    int port = free_port();
    pid_t pid = start_sim(sim, port, receipts);
    if (pid < 0) {
        fprintf(stderr, "smpp-bench: cannot start %s\n", sim);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = {.loop = &loop, .n = n, .want_receipts = receipts};
    struct smpp_session_opts o = {.host = "127.0.0.1",
                                  .port = port,
                                  .system_id = "bench",
                                  .password = "bench",
                                  .window = window,
                                  .max_queue = 20000};
    struct smpp_session_cbs cbs = {.deliver_cb = deliver_cb};
    if (smpp_session_new(&loop, &o, &cbs, &b, &b.s)) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    /* Let it bind first, so the figures measure sending only. */
    while (smpp_session_state(b.s) != SMPP_BOUND)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &b;
    uv_timer_start(&t, idle_check, 5, 5);
    long long c0 = self_cpu_us(), s0 = proc_cpu_us(pid);
    uint64_t w0 = uv_hrtime();
    submit_more(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - w0) / 1e9;
    long long c1 = self_cpu_us(), s1 = proc_cpu_us(pid);
    uv_close((uv_handle_t *)&t, NULL);
    smpp_session_close(b.s, close_cb, &b);
    while (!b.closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (g_sim_log)
        unlink("/tmp/smpp-bench-sim.jsonl");
    printf("window=%-3u receipts=%-3s n=%ld ok=%ld failed=%ld receipts_in=%ld time=%.2fs "
           "msgs/s=%.0f segs/s=%.0f client_cpu_us/msg=%.2f sim_cpu_us/msg=%.2f\n",
           window, receipts ? "yes" : "no", n, b.ok, b.failed, b.receipts, secs,
           (double)b.ok / secs, (double)b.ok / secs, (double)(c1 - c0) / (double)n,
           (double)(s1 - s0) / (double)n);
    fflush(stdout);
    return b.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    long n = 200000;
    char windows[64] = "10,50";
    char sim[4096];
    /* default: smscsim next to this binary */
    char self[4096];
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
        } else if (strcmp(argv[i], "--sim-log") == 0) {
            g_sim_log = 1;
        } else if (strcmp(argv[i], "--smscsim") == 0 && i + 1 < argc) {
            snprintf(sim, sizeof(sim), "%s", argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: smpp-bench [-n N] [--windows 10,50] [--sim-log] [--smscsim PATH]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_ERROR, LOG_TEXT, stderr);
    int rc = 0;
    char *save = NULL;
    for (char *w = strtok_r(windows, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        long long win;
        if (util_parse_int(w, 1, 100000, &win))
            return 2;
        for (int receipts = 0; receipts <= 1; receipts++)
            rc |= run(sim, n, (unsigned)win, receipts);
    }
    return rc;
}
