/* smpp-bench - pushes messages over one bind to smscsim through our SMPP
 * stack and prints messages and segments per second and CPU per message,
 * for us (getrusage) and the simulator (/proc, measured separately).
 *
 *   smpp-bench [--through session|connector|both] [-n N] [--windows 10,50]
 *              [--sim-log] [--smscsim PATH]
 *
 * --through session (the default): submit_sm straight into smpp_session;
 * one case, a short GSM-7 text. --through connector: the SMPP connector's
 * send() (encoding, splitting, part bookkeeping); cases a short GSM-7 text
 * and a Persian text of two UCS-2 parts. Every case runs per window,
 * without and with receipts, each against a fresh smscsim. -n defaults to
 * 200,000 through the session and 100,000 through the connector.
 * --sim-log makes smscsim write its JSON line per PDU (to
 * /tmp/smpp-bench-sim.jsonl, removed afterwards), as in the tests. */
#include "bench.h"

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

#define SIM_LOG "/tmp/smpp-bench-sim.jsonl"

static int g_sim_log; /* --sim-log: the simulator logs every PDU, as in tests */

/* A loopback port free at the time of asking, or -1. */
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

/* Starts smscsim on port and waits (5 s at most) until it listens.
 * Returns its pid, or -1 (nothing left running). */
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
            unlink(SIM_LOG);
            execl(path, path, "--listen", listen, "--log", SIM_LOG, "--receipts", rc,
                  "--receipt-delay-ms", "0", "--deliver-window", "256", (char *)NULL);
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

static void stop_sim(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (g_sim_log)
        unlink(SIM_LOG);
}

/* utime + stime of a process in microseconds (/proc/PID/stat), or -1. */
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
    /* fields after ")": state(3) ... utime(14) stime(15) */
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

static void idle_check(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->done >= b->n && (!b->want_receipts || b->receipts >= b->ok))
        uv_stop(b->loop);
}

/* Runs one case against a fresh smscsim and prints its line. Returns 0,
 * or 1 when anything failed. */
static int run(const struct driver *d, const char *sim, long n, unsigned window, int receipts,
               const char *label, const char *text)
{
    int port = free_port();
    pid_t pid = start_sim(sim, port, receipts);
    if (pid < 0) {
        fprintf(stderr, "smpp-bench: cannot start %s\n", sim);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = {.loop = &loop,
                      .n = n,
                      .want_receipts = receipts,
                      .window = window,
                      .port = port,
                      .text = text};
    if (d->open(&b) != 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        stop_sim(pid);
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
    d->start(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - w0) / 1e9;
    long long c1 = self_cpu_us(), s1 = proc_cpu_us(pid);
    uv_close((uv_handle_t *)&t, NULL);
    d->close(&b);
    while (!b.closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    stop_sim(pid);
    printf("%-9s %-8s window=%-3u receipts=%-3s n=%ld ok=%ld failed=%ld receipts_in=%ld "
           "time=%.2fs msgs/s=%.0f segs/s=%.0f client_cpu_us/msg=%.2f sim_cpu_us/msg=%.2f\n",
           d->name, label, window, receipts ? "yes" : "no", n, b.ok, b.failed, b.receipts, secs,
           (double)b.ok / secs, (double)b.segments / secs, (double)(c1 - c0) / (double)n,
           (double)(s1 - s0) / (double)n);
    fflush(stdout);
    return b.failed ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: smpp-bench [--through session|connector|both] [-n N] "
                    "[--windows 10,50] [--sim-log] [--smscsim PATH]\n");
}

int main(int argc, char **argv)
{
    long n = 0; /* 0: the default of each mode */
    int through_session = 1, through_conn = 0;
    char windows[64] = "10,50";
    char sim[4096], self[4096];
    /* default: smscsim next to this binary */
    ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[k > 0 ? k : 0] = '\0';
    snprintf(sim, sizeof(sim), "%s/smscsim", dirname(self));
    for (int i = 1; i < argc; i++) {
        long long v;
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc &&
            util_parse_int(argv[i + 1], 1, 100000000, &v) == 0) {
            n = (long)v;
            i++;
        } else if (strcmp(argv[i], "--through") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            through_session = strcmp(m, "session") == 0 || strcmp(m, "both") == 0;
            through_conn = strcmp(m, "connector") == 0 || strcmp(m, "both") == 0;
            if (!through_session && !through_conn) {
                usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--windows") == 0 && i + 1 < argc) {
            snprintf(windows, sizeof(windows), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--sim-log") == 0) {
            g_sim_log = 1;
        } else if (strcmp(argv[i], "--smscsim") == 0 && i + 1 < argc) {
            snprintf(sim, sizeof(sim), "%s", argv[++i]);
        } else {
            usage();
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
        /* The connector's settings take windows up to 1000. */
        if (util_parse_int(w, 1, through_conn ? 1000 : 100000, &win)) {
            usage();
            return 2;
        }
        for (int receipts = 0; receipts <= 1; receipts++) {
            if (through_session)
                rc |= run(&bench_session, sim, n ? n : 200000, (unsigned)win, receipts, "gsm-1seg",
                          "benchmark message number");
            if (through_conn) {
                long cn = n ? n : 100000;
                rc |= run(&bench_conn, sim, cn, (unsigned)win, receipts, "gsm-1seg",
                          "benchmark message, GSM-7");
                rc |= run(&bench_conn, sim, cn, (unsigned)win, receipts, "fa-2seg", fa);
            }
        }
    }
    return rc;
}
