/* e2e-bench - the send path alone: messages already queued in PostgreSQL
 * -> claim -> SMPP (smscsim, receipts on) -> receipt -> Delivered, with the
 * production connector manager, sender and queue on one loop.
 *
 *   e2e-bench [-n messages] [-b batch] [-p pipeline] [-w window] [-c conninfo]
 *
 * Creates a scratch database next to the one conninfo names (default
 * $SMSYS_TEST_PG), applies sql/, inserts one account and n Queued
 * messages, starts build/bin/smscsim (receipts on, PDU log off), then
 * times from the first claim until every message is Delivered. Prints
 * messages/s, CPU µs per message of this process (user + system, which
 * includes the libpq client work smsysd would do) and peak RSS (VmHWM).
 *
 * The connector is the production one (connectors/smpp.c, registry name
 * "smpp"). bench/e2e.bench.sh measures the same path with smsysd as a
 * separate process. */
#include "smsys/connmgr.h"
#include "smsys/log.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define ACC "bbbbbbbb-0000-4000-8000-00000000000e"

static PGconn *must_connect(const char *ci)
{
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "e2e-bench: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void must_exec(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "e2e-bench: %s: %s", q, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

static long long count(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    long long v =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

/* Replaces dbname in conninfo (keyword form or URI) with name. */
static void conninfo_with_db(const char *ci, const char *name, char *out, size_t len)
{
    PQconninfoOption *o = PQconninfoParse(ci, NULL);
    out[0] = '\0';
    size_t n = 0;
    for (PQconninfoOption *p = o; p && p->keyword; p++)
        if (p->val && *p->val && strcmp(p->keyword, "dbname") != 0)
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s='%s' ", p->keyword, p->val);
    snprintf(out + n, n < len ? len - n : 0, "dbname='%s'", name);
    PQconninfoFree(o);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static int wait_port(int port)
{
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return 0;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct watch {
    PGconn *side;
    long long want, got;
    int done;
};

static void watch_cb(uv_timer_t *t)
{
    struct watch *w = t->data;
    w->got = count(w->side, "SELECT count(*) FROM smsys_message WHERE state = 5");
    if (w->got >= w->want) {
        w->done = 1;
        uv_timer_stop(t);
    }
}

static void flag_cb(void *ud)
{
    (*(int *)ud) = 1;
}

static void run_until(uv_loop_t *loop, int *flag)
{
    while (!*flag && uv_run(loop, UV_RUN_ONCE))
        ;
}

int main(int argc, char **argv)
{
    long n = 20000;
    unsigned batch = 200, pipeline = 4, window = 100;
    const char *ci = getenv("SMSYS_TEST_PG");
    int opt;
    while ((opt = getopt(argc, argv, "n:b:p:w:c:h")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'b':
            batch = (unsigned)atoi(optarg);
            break;
        case 'p':
            pipeline = (unsigned)atoi(optarg);
            break;
        case 'w':
            window = (unsigned)atoi(optarg);
            break;
        case 'c':
            ci = optarg;
            break;
        default:
            fprintf(stderr, "usage: e2e-bench [-n messages] [-b batch] [-p pipeline] "
                            "[-w smpp window] [-c conninfo]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (ci == NULL || n <= 0) {
        fprintf(stderr, "e2e-bench: set SMSYS_TEST_PG or -c conninfo\n");
        return 2;
    }
    log_setup(LOG_WARN, LOG_TEXT, stderr);
    signal(SIGPIPE, SIG_IGN);

    char exe[4096], bindir[4096], sqldir[4096], simbin[4200];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[el > 0 ? el : 0] = '\0';
    snprintf(bindir, sizeof(bindir), "%s", dirname(exe));
    snprintf(simbin, sizeof(simbin), "%s/smscsim", bindir);
    if (migrate_default_dir(sqldir, sizeof(sqldir)) != 0) {
        fprintf(stderr, "e2e-bench: sql/ not found (set SMSYS_SQL_DIR)\n");
        return 1;
    }

    char db[64], dbci[2048], q[1024];
    snprintf(db, sizeof(db), "smsys_e2ebench_%d", (int)getpid());
    PGconn *admin = must_connect(ci);
    snprintf(q, sizeof(q), "CREATE DATABASE %s", db);
    must_exec(admin, q);
    conninfo_with_db(ci, db, dbci, sizeof(dbci));
    struct smsys_err err = {0};
    if (migrate_apply(dbci, sqldir, 0, &err) < 0) {
        fprintf(stderr, "e2e-bench: migrate: %s\n", err.detail);
        return 1;
    }

    int port = free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    pid_t sim = fork();
    if (sim == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execl(simbin, simbin, "--listen", listen, "--log-pdus", "0", "--receipt-delay-ms", "10",
              (char *)NULL);
        _exit(127);
    }
    if (wait_port(port) != 0) {
        fprintf(stderr, "e2e-bench: smscsim did not start (%s)\n", simbin);
        kill(sim, SIGTERM);
        return 1;
    }

    PGconn *side = must_connect(dbci);
    must_exec(side, "SET client_min_messages = warning");
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_account (id, name, provider, config) VALUES ('" ACC
             "', 'bench', 'smpp', '{\"host\":\"127.0.0.1\",\"port\":%d,\"window\":%u,"
             "\"sender\":\"1000\"}')",
             port, window);
    must_exec(side, q);
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, "
             "max_retries, state) SELECT 'b'||g, '" ACC "', '+98912'||lpad(g::text, 7, '0'), "
             "'bench message '||g, 1, 3, 3 FROM generate_series(1, %ld) g",
             n);
    must_exec(side, q);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pg_pool *pool;
    struct queue *qu;
    pg_pool_new(&loop, dbci, 4, &pool);
    queue_new(&loop, pool, NULL, &qu);
    struct watch w = {side, n, 0, 0};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &w;
    uv_timer_start(&t, watch_cb, 100, 100);

    double c0 = cpu_s();
    uint64_t t0 = uv_hrtime();
    struct connmgr_opts o = {
        .owner = "bench",
        .batch = batch,
        .pipeline = pipeline,
        .lease_ms = 60000,
    };
    struct connmgr *m;
    connmgr_new(&loop, pool, qu, NULL, &o, &m);
    run_until(&loop, &w.done);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    double cpu = cpu_s() - c0;

    printf("send path: %ld messages queued -> SMPP (smscsim, receipts) -> Delivered in "
           "PostgreSQL\n",
           n);
    printf("  batch %u, pipeline %u, SMPP window %u\n", batch, pipeline, window);
    printf("  %.2f s, %.0f messages/s\n", secs, (double)n / secs);
    printf("  CPU %.1f us/message (this process, user+system)\n", cpu * 1e6 / (double)n);
    printf("  peak RSS %.1f MB\n", (double)peak_rss_kb() / 1024.0);

    int done = 0;
    uv_close((uv_handle_t *)&t, NULL);
    connmgr_close(m, flag_cb, &done);
    run_until(&loop, &done);
    done = 0;
    pg_pool_close(pool, flag_cb, &done);
    run_until(&loop, &done);
    queue_free(qu);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    PQfinish(side);
    kill(sim, SIGTERM);
    waitpid(sim, NULL, 0);
    snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    must_exec(admin, q);
    PQfinish(admin);
    return 0;
}
