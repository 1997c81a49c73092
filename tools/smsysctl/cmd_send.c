/* cmd_send.c - smsysctl send and queue retry: the operator's hands on
 * the outbound queue (queue stats lives in cmd_queue.c). They run the same queue API as smsysd
 * (queue.h) on a private loop and pool, so the CLI and the service can
 * never disagree about what a state change does. */
#include "ctl.h"

#include "smsys/log.h"
#include "smsys/pg.h"
#include "smsys/phone.h"
#include "smsys/queue.h"
#include "smsys/text.h"
#include "smsys/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

/* A private loop with one pool connection and a queue over it. */
struct cq {
    uv_loop_t loop;
    struct pg_pool *pool;
    struct queue *q;
    int done, rc;
    char err[600];
    PGresult *res; /* last pg result kept by cq_sql (caller PQclear) */
    int64_t count;
};

static int cq_open(struct cq *c, const struct smsys_config *cfg)
{
    memset(c, 0, sizeof(*c));
    /* The pool's connection chatter is for the service log, not for an
     * operator's terminal: warnings and errors only. */
    if (!log_enabled(LOG_DEBUG))
        log_setup(LOG_WARN, LOG_TEXT, stderr);
    if (uv_loop_init(&c->loop) != 0)
        return -1;
    if (pg_pool_new(&c->loop, cfg->postgres.conninfo, 1, &c->pool) != 0 ||
        queue_new(&c->loop, c->pool, NULL, &c->q) != 0) {
        if (c->pool)
            pg_pool_close(c->pool, NULL, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        return -1;
    }
    return 0;
}

static void cq_closed_cb(void *ud)
{
    ((struct cq *)ud)->done = 1;
}

static void cq_close(struct cq *c)
{
    c->done = 0;
    pg_pool_close(c->pool, cq_closed_cb, c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    queue_free(c->q);
    uv_loop_close(&c->loop);
}

/* Runs the loop until the pending call completed; every call fails by
 * itself on timeout (the pool reconnects for PGCONNECT_TIMEOUT at most). */
static int cq_wait(struct cq *c)
{
    while (!c->done && uv_run(&c->loop, UV_RUN_ONCE))
        ;
    c->done = 0;
    return c->rc;
}

static void cq_seterr(struct cq *c, int rc, const struct smsys_err *err)
{
    c->rc = rc;
    if (rc < 0)
        snprintf(c->err, sizeof(c->err), "%s",
                 err && err->detail[0] ? err->detail : smsys_strerror(rc));
    c->done = 1;
}

static void sql_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct cq *c = ud;
    cq_seterr(c, rc, err);
    if (rc == 0 && res) {
        /* Copy out: the pool owns res. */
        c->res = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    }
}

static PGresult *cq_sql(struct cq *c, const char *sql, int n, const char *const *params)
{
    c->res = NULL;
    int rc = pg_query(c->pool, sql, n, params, sql_cb, c);
    if (rc < 0) {
        snprintf(c->err, sizeof(c->err), "%s", smsys_strerror(rc));
        return NULL;
    }
    if (cq_wait(c) < 0)
        return NULL;
    return c->res;
}

/* ---- send --------------------------------------------------------------- */

static void enq_cb(int rc, const struct queue_enq_res *res, size_t n, const struct smsys_err *err,
                   void *ud)
{
    struct cq *c = ud;
    cq_seterr(c, rc, err);
    if (rc == 0 && n == 1)
        c->count = res[0].id;
}

static const char *state_name(int st)
{
    switch (st) {
    case QUEUE_QUEUED:
        return "Queued";
    case QUEUE_SENT:
        return "Sent";
    case QUEUE_DELIVERED:
        return "Delivered";
    case QUEUE_FAILED:
        return "Failed";
    case QUEUE_RETRYING:
        return "Retrying";
    case QUEUE_CANCELED:
        return "Canceled";
    case QUEUE_BLOCKED:
        return "Blocked";
    case QUEUE_INFLIGHT:
        return "InFlight";
    case QUEUE_UNKNOWN:
        return "Unknown";
    default:
        return "?";
    }
}

static void sleep_ms(uv_loop_t *loop, unsigned ms)
{
    (void)loop;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the message until a final state (or Sent with no receipt expected
 * any more); returns the exit code. */
static int wait_final(struct ctl *ctl, struct cq *c, const char *id, long timeout_s)
{
    const char *params[1] = {id};
    uint64_t end = util_now_ms() + (uint64_t)timeout_s * 1000;
    for (;;) {
        PGresult *r = cq_sql(c,
                             "SELECT state, COALESCE(last_error, ''), COALESCE(provider_id, ''),"
                             " attempts, no_receipt FROM smsys_message WHERE id = $1::bigint",
                             1, params);
        if (r == NULL)
            return ctl_fail("send --wait: %s", c->err);
        if (PQntuples(r) != 1) {
            PQclear(r);
            return ctl_fail("send --wait: message %s is gone", id);
        }
        long long stl = 0;
        util_parse_int(PQgetvalue(r, 0, 0), 0, 1000, &stl);
        int st = (int)stl;
        int final = st == QUEUE_DELIVERED || st == QUEUE_FAILED || st == QUEUE_CANCELED ||
                    st == QUEUE_BLOCKED || st == QUEUE_UNKNOWN ||
                    (st == QUEUE_SENT && PQgetvalue(r, 0, 4)[0] == 't');
        if (final || util_now_ms() >= end) {
            if (ctl->json)
                printf("{\"id\":%s,\"state\":\"%s\",\"provider_id\":\"%s\",\"attempts\":%s,"
                       "\"final\":%s}\n",
                       id, state_name(st), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
                       final ? "true" : "false");
            else
                printf("%s %s%s%s\n", id, state_name(st), *PQgetvalue(r, 0, 1) ? ": " : "",
                       PQgetvalue(r, 0, 1));
            PQclear(r);
            if (!final)
                return ctl_fail("send --wait: no final state after %ld s", timeout_s);
            return st == QUEUE_DELIVERED || st == QUEUE_SENT ? CTL_OK : CTL_FAIL;
        }
        PQclear(r);
        sleep_ms(&c->loop, 500);
    }
}

int cmd_send(struct ctl *ctl, int argc, char **argv)
{
    const char *to = NULL, *text = NULL, *account = NULL, *from = NULL;
    int wait = 0;
    long long timeout_s = 300;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--wait") == 0)
            wait = 1;
        else if (i + 1 < argc && strcmp(a, "--to") == 0)
            to = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--text") == 0)
            text = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--account") == 0)
            account = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--from") == 0)
            from = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--timeout") == 0) {
            if (util_parse_int(argv[++i], 1, 86400, &timeout_s) != 0)
                return ctl_usage_error(ctl, "--timeout wants seconds (1..86400)");
        } else
            return ctl_usage_error(ctl, "unexpected or incomplete argument '%s'", a);
    }
    if (to == NULL || text == NULL)
        return ctl_usage_error(ctl, "--to and --text are required");
    char e164[PHONE_E164_MAX + 8];
    struct smsys_err err = {0};
    if (phone_normalize(to, "IR", e164, sizeof(e164), &err) != 0)
        return ctl_usage_error(ctl, "--to: %s", err.detail[0] ? err.detail : "not a phone number");
    struct text_info ti;
    if (text_analyze(text, strlen(text), &ti) != 0)
        return ctl_usage_error(ctl, "--text is not valid UTF-8");
    if (ti.segments == 0)
        return ctl_usage_error(ctl, "--text is empty");

    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    struct cq c;
    if (cq_open(&c, cfg) != 0) {
        config_free(cfg);
        return ctl_fail("cannot set up the PostgreSQL client");
    }
    config_free(cfg);
    int code = CTL_FAIL;
    /* The account: by name, else the default, else the only enabled one. */
    const char *params[1] = {account};
    PGresult *r =
        cq_sql(&c,
               account ? "SELECT id::text, name FROM smsys_account WHERE name = $1 OR id::text = $1"
                       : "SELECT id::text, name FROM smsys_account WHERE enabled"
                         " ORDER BY is_default DESC, name LIMIT 2",
               account ? 1 : 0, account ? params : NULL);
    if (r == NULL) {
        ctl_fail("cannot read accounts: %s", c.err);
        goto out;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        ctl_fail(account ? "no account named '%s'" : "no enabled account%s",
                 account ? account : "");
        goto out;
    }
    char acc[64];
    snprintf(acc, sizeof(acc), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    char key[37];
    util_uuid4(key);
    char idem[80];
    snprintf(idem, sizeof(idem), "cli:%s", key);
    struct queue_new m = {
        .idem_key = idem,
        .account_id = acc,
        .sender = from,
        .recipient = e164,
        .body = text,
        .segments = (int)ti.segments,
        .encoding = (int)ti.encoding,
        .state = QUEUE_QUEUED,
    };
    int rc = queue_enqueue(c.q, &m, 1, enq_cb, &c);
    if (rc == 0)
        rc = cq_wait(&c);
    else
        snprintf(c.err, sizeof(c.err), "%s", smsys_strerror(rc));
    if (rc < 0) {
        ctl_fail("enqueue failed: %s", c.err);
        goto out;
    }
    char id[32];
    snprintf(id, sizeof(id), "%" PRId64, c.count);
    if (!wait) {
        if (ctl->json)
            printf("{\"id\":%s,\"to\":\"%s\",\"segments\":%zu}\n", id, e164, ti.segments);
        else
            printf("%s\n", id);
        code = CTL_OK;
        goto out;
    }
    code = wait_final(ctl, &c, id, (long)timeout_s);
out:
    cq_close(&c);
    return code;
}

/* ---- queue retry -------------------------------------------------------- */

static void count_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct cq *c = ud;
    cq_seterr(c, rc, err);
    c->count = n;
}

/* "2h", "30m", "90s", "1d" ago, or ISO-8601 UTC "2026-11-28T08:00[:00][Z]"
 * or "2026-11-28". Returns wall-clock µs, or -1. */
static int64_t parse_since(const char *s)
{
    size_t len = strlen(s);
    if (len >= 2 && strchr("smhd", s[len - 1]) && strspn(s, "0123456789") == len - 1) {
        long long v = 0;
        char num[32];
        if (len - 1 >= sizeof(num))
            return -1;
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        if (util_parse_int(num, 0, 100000000, &v) != 0)
            return -1;
        long long mult = s[len - 1] == 's'   ? 1
                         : s[len - 1] == 'm' ? 60
                         : s[len - 1] == 'h' ? 3600
                                             : 86400;
        struct timeval tv;
        gettimeofday(&tv, NULL);
        return ((int64_t)tv.tv_sec - v * mult) * 1000000 + tv.tv_usec;
    }
    static const char *const forms[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
                                        "%Y-%m-%d %H:%M", "%Y-%m-%d"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm = {0};
        const char *end = strptime(s, forms[i], &tm);
        if (end && (*end == '\0' || (end[0] == 'Z' && end[1] == '\0')))
            return (int64_t)timegm(&tm) * 1000000;
    }
    return -1;
}

int cmd_queue_retry(struct ctl *ctl, int argc, char **argv)
{
    int failed = 0, unknown = 0;
    int64_t since = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--failed") == 0)
            failed = 1;
        else if (strcmp(argv[i], "--unknown") == 0)
            unknown = 1;
        else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            since = parse_since(argv[++i]);
            if (since < 0)
                return ctl_usage_error(
                    ctl, "--since wants 2h, 30m, 1d or 2026-11-28T08:00:00Z, not '%s'", argv[i]);
        } else
            return ctl_usage_error(ctl, "unexpected or incomplete argument '%s'", argv[i]);
    }
    if (!failed)
        return ctl_usage_error(ctl, "--failed is required (what to retry)");
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    struct cq c;
    int ok = cq_open(&c, cfg);
    config_free(cfg);
    if (ok != 0)
        return ctl_fail("cannot set up the PostgreSQL client");
    int rc = queue_retry_failed(c.q, since, unknown, count_cb, &c);
    if (rc == 0)
        rc = cq_wait(&c);
    else
        snprintf(c.err, sizeof(c.err), "%s", smsys_strerror(rc));
    int code = CTL_OK;
    if (rc < 0)
        code = ctl_fail("queue retry: %s", c.err);
    else if (ctl->json)
        printf("{\"requeued\":%" PRId64 "}\n", c.count);
    else
        printf("%" PRId64 " message%s back in the queue\n", c.count, c.count == 1 ? "" : "s");
    cq_close(&c);
    return code;
}
