/* testutil.c - helpers shared by tests. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tu_pg_conninfo(void)
{
    const char *c = getenv("SMSYS_TEST_PG");
    if (c == NULL || *c == '\0') {
        fprintf(stderr, "SMSYS_TEST_PG is not set: run through `make check` or tools/run-tests\n");
        exit(1);
    }
    return c;
}

const char *tu_bin(const char *name)
{
    static char path[4096];
    const char *dir = getenv("SMSYS_BIN");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "build/bin", name);
    return path;
}

const char *tu_src(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("SMSYS_SRC");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", rel);
    return path;
}

static void tu_timer_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

struct tu_wait {
    const volatile int *flag;
    const int *expired;
};

/* A callback run from an idle or check handle may set the flag; without
 * this, the same UV_RUN_ONCE iteration would then block in poll until the
 * next timer (seconds later). uv_stop makes the poll timeout 0. */
static void tu_prepare_cb(uv_prepare_t *p)
{
    const struct tu_wait *w = p->data;
    if (*w->flag || *w->expired)
        uv_stop(p->loop);
}

int tu_run_until(uv_loop_t *loop, const volatile int *flag, unsigned timeout_ms)
{
    uv_timer_t timer;
    uv_prepare_t prep;
    int expired = 0;
    struct tu_wait w = {flag, &expired};
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, tu_timer_cb, timeout_ms, 0);
    uv_prepare_init(loop, &prep);
    prep.data = &w;
    uv_prepare_start(&prep, tu_prepare_cb);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag ? 0 : -ETIMEDOUT;
}

static void count_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

int tu_loop_handles(uv_loop_t *loop)
{
    int n = 0;
    uv_walk(loop, count_cb, &n);
    return n;
}

static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int tu_loop_close(uv_loop_t *loop)
{
    uv_walk(loop, close_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

pid_t tu_spawn(char *const argv[], const char *logfile, int port, unsigned timeout_ms)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (logfile) {
            int fd = open(logfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (port <= 0)
        return pid;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (unsigned waited = 0; waited < timeout_ms; waited += 20) {
        if (port_open(port))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "%s exited before listening on %d\n", argv[0], port);
            return -1;
        }
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "%s did not listen on %d within %u ms\n", argv[0], port, timeout_ms);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int tu_stop(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 250; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}
