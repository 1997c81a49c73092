/* test_http_client_stall.c - latency of http_client on one kept-alive
 * connection: from the moment a peer has written the last byte of a reply
 * to the moment done_cb runs.
 *
 * The peer is a plain blocking-socket server in its own thread (so it
 * answers while the client's loop is busy), not an HTTP implementation of
 * ours. It alternates large replies (300-600 KB, written in uneven pieces
 * with short sleeps between some of them, Content-Length or chunked) with
 * small ones (a 204 to a POST, a short 200), all on the same connection,
 * while a timer-driven workload shares the client's loop. Any reply the
 * client notices only when something else wakes its loop shows up as a
 * latency far above the normal (well under 100 ms even on a loaded
 * machine). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/http_client.h"
#include "smsys/util.h"
#include "../lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS      150          /* large + small pairs */
#define STALL_MS    500          /* a reply this late was not noticed */
#define BIG_MIN     (300 * 1024) /* large reply sizes */
#define BIG_SPREAD  (300 * 1024)
#define PEER_IDLE_S 20   /* the peer gives up on a silent client */
#define SMALL_MORE  1500 /* small requests after the pairs (caller test) */

/* ---- the peer thread ---- */

struct peer {
    int lfd;
    int port;
    pthread_t th;
    atomic_int stop;
    atomic_int accepted;
    /* uv_hrtime() after the last byte of reply n went to the kernel */
    _Atomic uint64_t written_ns[2 * ROUNDS + SMALL_MORE + 8];
    atomic_int replies;
    uint64_t rng;
};

static uint64_t prng(struct peer *p)
{
    uint64_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return p->rng = x;
}

static int write_all(int fd, const char *d, size_t n)
{
    while (n) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes d in pieces of 1 byte .. 64 KB, sleeping up to 2 ms after some. */
static int write_uneven(struct peer *p, int fd, const char *d, size_t n)
{
    while (n) {
        size_t k = 1 + (size_t)(prng(p) % (64 * 1024));
        if (k > n)
            k = n;
        if (write_all(fd, d, k))
            return -1;
        d += k;
        n -= k;
        if (prng(p) % 4 == 0) {
            struct timespec ts = {0, (long)(prng(p) % 2000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* Reads one request head plus its Content-Length body into b. Returns the
 * head length, 0 on EOF/idle/stop, -1 on error. */
static ssize_t read_request(struct peer *p, int fd, struct buf *b)
{
    buf_reset(b);
    size_t need = 0, head = 0;
    int idle = 0;
    for (;;) {
        if (head && b->len >= head + need)
            return (ssize_t)head;
        if (!head && b->len >= 4) {
            char *e = strstr(b->data, "\r\n\r\n");
            if (e) {
                head = (size_t)(e - b->data) + 4;
                const char *cl = strcasestr(b->data, "\r\nContent-Length:");
                if (cl && cl < e)
                    need = strtoul(cl + 17, NULL, 10);
                continue;
            }
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, 100);
        if (atomic_load(&p->stop))
            return 0;
        if (r == 0) {
            if (++idle > PEER_IDLE_S * 10)
                return 0;
            continue;
        }
        idle = 0;
        char tmp[65536];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? 0 : -1;
        if (buf_append(b, tmp, (size_t)n))
            return -1;
    }
}

static void mark(struct peer *p, int idx)
{
    if (idx >= 0 && idx < (int)(sizeof p->written_ns / sizeof p->written_ns[0]))
        atomic_store(&p->written_ns[idx], uv_hrtime());
    atomic_fetch_add(&p->replies, 1);
}

/* Request paths: /big/<idx>/<size>[/chunked] or /small/<idx>. */
static int serve_one(struct peer *p, int fd, const char *head)
{
    int idx = -1;
    unsigned long size = 0;
    char hdr[256];
    int chunked = strstr(head, "/chunked ") != NULL;
    if (sscanf(head, "%*s /big/%d/%lu", &idx, &size) == 2) {
        char *body = malloc(size);
        if (body == NULL)
            return -1;
        for (unsigned long i = 0; i < size; i++)
            body[i] = (char)('a' + i % 26);
        int rc;
        if (!chunked) {
            snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %lu\r\n\r\n",
                     size);
            struct buf all = BUF_INIT;
            rc = buf_append(&all, hdr, strlen(hdr));
            if (rc == 0)
                rc = buf_append(&all, body, size);
            if (rc == 0)
                rc = write_uneven(p, fd, all.data, all.len);
            buf_free(&all);
        } else {
            snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
            rc = write_all(fd, hdr, strlen(hdr));
            unsigned long off = 0;
            while (rc == 0 && off < size) {
                unsigned long k = 1 + prng(p) % (48 * 1024);
                if (k > size - off)
                    k = size - off;
                char ch[32];
                snprintf(ch, sizeof ch, "%lx\r\n", k);
                rc = write_all(fd, ch, strlen(ch));
                if (rc == 0)
                    rc = write_uneven(p, fd, body + off, k);
                if (rc == 0)
                    rc = write_all(fd, "\r\n", 2);
                off += k;
            }
            if (rc == 0)
                rc = write_all(fd, "0\r\n\r\n", 5);
        }
        free(body);
        if (rc == 0)
            mark(p, idx);
        return rc;
    }
    if (sscanf(head, "%*s /small/%d", &idx) == 1) {
        const char *r = strncmp(head, "POST", 4) == 0
                            ? "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n"
                            : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        int rc = write_all(fd, r, strlen(r));
        if (rc == 0)
            mark(p, idx);
        return rc;
    }
    return write_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45);
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    struct buf b = BUF_INIT;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {.fd = p->lfd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&p->accepted, 1);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ssize_t h;
        while ((h = read_request(p, fd, &b)) > 0) {
            b.data[h - 1] = '\0'; /* the head as one string */
            if (serve_one(p, fd, b.data))
                break;
        }
        close(fd);
    }
    buf_free(&b);
    return NULL;
}

static void peer_start(struct peer *p)
{
    memset(p, 0, sizeof *p);
    p->rng = uv_hrtime() | 1;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &al), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    close(p->lfd);
}

/* ---- the client side ---- */

struct run {
    uv_loop_t loop;
    struct peer peer;
    struct http_client *c;
    uv_timer_t busy; /* the competing timer workload */
    unsigned busy_ticks;
    int n;    /* replies so far */
    int done; /* all rounds finished or one failed */
    int failed;
    int closed;
    uint64_t worst_ms;
    int worst_idx;
    unsigned late; /* replies later than STALL_MS */
    char url[128];
};

static void next(struct run *r);

static void done_cb(int rc, struct http_response *resp, void *ud)
{
    struct run *r = ud;
    uint64_t now = uv_hrtime();
    int idx = r->n;
    if (rc != 0 || resp->status < 200 || resp->status > 299) {
        fprintf(stderr, "request %d: rc=%d status=%d %s\n", idx, rc, resp->status,
                resp->err.detail);
        r->failed = 1;
        r->done = 1;
        return;
    }
    uint64_t w = atomic_load(&r->peer.written_ns[idx]);
    uint64_t ms = w && now > w ? (now - w) / 1000000 : 0;
    if (ms > r->worst_ms) {
        r->worst_ms = ms;
        r->worst_idx = idx;
    }
    if (ms >= STALL_MS) {
        r->late++;
        fprintf(stderr, "reply %d (%s) reached done_cb %llu ms after the peer wrote it\n", idx,
                idx % 2 ? "small" : "large", (unsigned long long)ms);
    }
    r->n++;
    next(r);
}

static void next(struct run *r)
{
    if (r->n >= 2 * ROUNDS) {
        r->done = 1;
        return;
    }
    int i = r->n;
    struct http_request req = {.timeout_ms = 60000};
    const char *ct = "Content-Type: application/json";
    if (i % 2 == 0) {
        unsigned long size = BIG_MIN + (unsigned long)i * 104729u % BIG_SPREAD;
        snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/big/%d/%lu%s", r->peer.port, i, size,
                 (i / 2) % 3 == 2 ? "/chunked" : "");
    } else {
        snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/small/%d", r->peer.port, i);
        if ((i / 2) % 2 == 0) {
            req.method = "POST";
            req.body = "{\"Targets\":[{\"activityid\":\"x\",\"smsys_status\":4}]}";
            req.body_len = strlen(req.body);
            req.headers = &ct;
            req.n_headers = 1;
        }
    }
    req.url = r->url;
    int rc = http_client_request(r->c, &req, done_cb, r, NULL);
    if (rc) {
        fprintf(stderr, "request %d not started: %d\n", i, rc);
        r->failed = 1;
        r->done = 1;
    }
}

/* Something else on the loop, as in the service: short bursts of work on a
 * 1 ms timer. */
static void busy_cb(uv_timer_t *t)
{
    struct run *r = container_of(t, struct run, busy);
    uint64_t until = uv_hrtime() + 200000; /* 0.2 ms */
    volatile unsigned x = 0;
    while (uv_hrtime() < until)
        x++;
    r->busy_ticks++;
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static void test_no_stall_after_large_replies(void **state)
{
    (void)state;
    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    peer_start(&r->peer);
    assert_int_equal(http_client_new(&r->loop, NULL, &r->c), 0);
    uv_timer_init(&r->loop, &r->busy);
    uv_timer_start(&r->busy, busy_cb, 1, 1);

    uint64_t t0 = util_now_ms();
    next(r);
    /* generous: 150 rounds take about a second when nothing stalls */
    assert_int_equal(tu_run_until(&r->loop, &r->done, 120000), 0);
    uint64_t took = util_now_ms() - t0;
    fprintf(stderr,
            "%d replies in %llu ms, worst %llu ms (reply %d), %u late, %d connection(s), "
            "%u busy ticks\n",
            r->n, (unsigned long long)took, (unsigned long long)r->worst_ms, r->worst_idx, r->late,
            atomic_load(&r->peer.accepted), r->busy_ticks);

    uv_close((uv_handle_t *)&r->busy, NULL);
    http_client_close(r->c, closed_cb, &r->closed);
    assert_int_equal(tu_run_until(&r->loop, &r->closed, 5000), 0);
    peer_stop(&r->peer);
    assert_int_equal(tu_loop_handles(&r->loop), 0);
    assert_int_equal(tu_loop_close(&r->loop), 0);

    assert_false(r->failed);
    assert_int_equal(r->n, 2 * ROUNDS);
    assert_int_equal(atomic_load(&r->peer.accepted), 1); /* one kept-alive connection */
    assert_int_equal(r->late, 0);
    free(r);
}

/* ---- the caller's view: run-until-flag with UV_RUN_ONCE ---- */

struct one {
    int fired, rc, status;
    uint64_t cb_ns; /* when done_cb ran */
};

static void one_cb(int rc, struct http_response *resp, void *ud)
{
    struct one *o = ud;
    o->fired = 1;
    o->rc = rc;
    o->status = resp->status;
    o->cb_ns = uv_hrtime();
}

static void expire_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Waits the way smsysctl does (and tu_run_until did): uv_run(UV_RUN_ONCE)
 * until a flag is set, bounded by a timer of ms. Kept here rather than
 * tu_run_until so the check does not depend on the harness. */
static void wait_once(uv_loop_t *loop, const int *flag, unsigned ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, expire_cb, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* The way smsysctl and the tests wait: uv_run(UV_RUN_ONCE) until a flag
 * is set. A done_cb that runs in a phase before the poll phase (timers,
 * idle) must not leave that uv_run() blocked in the poll afterwards. */
static void test_caller_sees_completion(void **state)
{
    (void)state;
    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    peer_start(&r->peer);
    assert_int_equal(http_client_new(&r->loop, NULL, &r->c), 0);
    uv_timer_t far; /* something for the poll to wait for, as in the tests */
    uv_timer_init(&r->loop, &far);
    uv_timer_start(&far, busy_cb, 60000, 0);
    uint64_t worst = 0;
    unsigned late = 0;
    for (int i = 0; i < 2 * ROUNDS + SMALL_MORE && !r->failed; i++) {
        struct one o = {0};
        struct http_request req = {.timeout_ms = 60000};
        const char *ct = "Content-Type: application/json";
        if (i % 2 == 0 && i < 2 * ROUNDS) {
            snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/big/%d/%lu%s", r->peer.port, i,
                     BIG_MIN + (unsigned long)i * 104729u % BIG_SPREAD,
                     (i / 2) % 3 == 2 ? "/chunked" : "");
        } else {
            snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/small/%d", r->peer.port, i);
            req.method = "POST";
            req.body = "{\"Targets\":[]}";
            req.body_len = strlen(req.body);
            req.headers = &ct;
            req.n_headers = 1;
        }
        req.url = r->url;
        assert_int_equal(http_client_request(r->c, &req, one_cb, &o, NULL), 0);
        wait_once(&r->loop, &o.fired, 2000);
        uint64_t now = uv_hrtime();
        if (!o.fired || o.rc || o.status < 200 || o.status > 299) {
            fprintf(stderr, "request %d: fired=%d rc=%d status=%d\n", i, o.fired, o.rc, o.status);
            r->failed = 1;
            break;
        }
        uint64_t ms = (now - o.cb_ns) / 1000000;
        if (ms > worst)
            worst = ms;
        if (ms >= STALL_MS) {
            late++;
            fprintf(stderr, "request %d: the waiting caller saw done_cb %llu ms after it ran\n", i,
                    (unsigned long long)ms);
            if (late >= 3)
                break; /* enough to fail; each one costs the 2 s slice */
        }
    }
    fprintf(stderr, "caller: worst %llu ms from done_cb to uv_run() returning, %u late\n",
            (unsigned long long)worst, late);
    uv_close((uv_handle_t *)&far, NULL);
    http_client_close(r->c, closed_cb, &r->closed);
    assert_int_equal(tu_run_until(&r->loop, &r->closed, 5000), 0);
    peer_stop(&r->peer);
    assert_int_equal(tu_loop_handles(&r->loop), 0);
    assert_int_equal(tu_loop_close(&r->loop), 0);
    assert_false(r->failed);
    assert_int_equal(late, 0);
    free(r);
}

/* The same wait, for a callback the client fires from its idle handle
 * (before the poll phase): a request cancelled before the loop ran. With
 * nothing else due but the far timer of tu_run_until, a poll that blocks
 * after the callback would hold the caller for the whole 5 s. (libuv
 * 1.44 happens not to block here: this guards the idle-handle path.) */
static void nobody_cb(uv_stream_t *server, int status)
{
    (void)server;
    (void)status; /* nobody connects */
}

static void test_caller_sees_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct http_client *c;
    int closed = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&loop, NULL, &c), 0);
    /* a socket the loop watches, as in the service and the other tests
     * (libuv does not sleep in the poll when it watches no descriptor) */
    uv_tcp_t lsn;
    struct sockaddr_in a;
    uv_tcp_init(&loop, &lsn);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&lsn, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&lsn, 1, nobody_cb), 0);
    for (int i = 0; i < 3; i++) {
        struct one o = {0};
        struct http_call *call = NULL;
        /* never connected: cancelled before the loop runs */
        struct http_request req = {.url = "http://127.0.0.1:9/never"};
        assert_int_equal(http_client_request(c, &req, one_cb, &o, &call), 0);
        assert_int_equal(http_call_cancel(call), 0);
        uint64_t t0 = util_now_ms();
        wait_once(&loop, &o.fired, 5000);
        assert_int_equal(o.fired, 1);
        uint64_t ms = util_now_ms() - t0;
        assert_int_equal(o.rc, -ECANCELED);
        if (ms >= STALL_MS)
            fprintf(stderr, "cancel %d: the waiting caller got control back after %llu ms\n", i,
                    (unsigned long long)ms);
        assert_true(ms < STALL_MS);
    }
    uv_close((uv_handle_t *)&lsn, NULL);
    http_client_close(c, closed_cb, &closed);
    assert_int_equal(tu_run_until(&loop, &closed, 5000), 0);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_stall_after_large_replies),
        cmocka_unit_test(test_caller_sees_completion),
        cmocka_unit_test(test_caller_sees_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
