/* cmd_bulk_watch.c - smsysctl bulk watch ID: a live progress line until
 * the bulk ends.
 *
 * Reads the bulk's counters from PostgreSQL every second, and sooner when
 * NOTIFY smsys_bulk arrives (LISTEN on the same blocking connection: poll()
 * on its socket is the one-second wait). Exits 0 when the bulk ends
 * Completed, 1 when it ends Failed or Canceled. SIGINT or --timeout only
 * end the watching (exit 1, the bulk goes on). A lost database is retried every
 * second: watching a long send must survive a PostgreSQL restart. */
#include "bulk_ctl.h"

#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define WATCH_TICK_MS 1000
/* Fewest ms between two reads when notifications pour in. */
#define WATCH_MIN_GAP_MS 200

static volatile sig_atomic_t watch_stop;

static void watch_sigint(int sig)
{
    (void)sig;
    watch_stop = 1;
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    long long cols;
    const char *env = getenv("COLUMNS");
    if (env && util_parse_int(env, 1, 10000, &cols) == 0)
        return (int)cols;
    return 80;
}

/* LISTEN again after every (re)connection; notifications only make the
 * next read come sooner, so a failure here is not fatal. */
static void watch_listen(PGconn *c)
{
    PGresult *r = PQexec(c, "LISTEN smsys_bulk");
    PQclear(r);
}

/* Reads the bulk quietly: a failed read is reported once per outage by the
 * caller, not once a second. Returns 1 found, 0 not found, -1 error (the
 * message in err). */
static int watch_read(PGconn *c, const char *id, struct bulk_row *row, char *err, size_t elen)
{
    char sql[2048];
    snprintf(sql, sizeof(sql), "%s WHERE b.id = $1::uuid", bulk_row_sql);
    const char *params[1] = {id};
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        if (m == NULL || *m == '\0')
            m = PQerrorMessage(c);
        snprintf(err, elen, "%.*s", (int)strcspn(m, "\n"), m);
        PQclear(r);
        return -1;
    }
    int found = PQntuples(r) > 0;
    if (found)
        bulk_row_read(r, 0, row);
    PQclear(r);
    return found;
}

/* For a bulk PostgreSQL has not seen: 1 while a start command for it
 * waits for the service, 0 when there is none (or it was taken), -1 on
 * error. */
static int start_pending(PGconn *c, const char *id)
{
    const char *params[1] = {id};
    PGresult *r = PQexecParams(c,
                               "SELECT 1 FROM smsys_bulk_command WHERE bulk_id = $1::uuid"
                               " AND done_at IS NULL LIMIT 1",
                               1, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) != PGRES_TUPLES_OK ? -1 : PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

/* The answer smsysd recorded for the bulk's last command ("" if none). */
static void command_result(PGconn *c, const char *id, char *out, size_t len)
{
    const char *params[1] = {id};
    PGresult *r = PQexecParams(c,
                               "SELECT coalesce(result, '') FROM smsys_bulk_command WHERE"
                               " bulk_id = $1::uuid ORDER BY id DESC LIMIT 1",
                               1, NULL, params, NULL, NULL, 0);
    out[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Waits until timeout_ms pass, a notification arrives or SIGINT. */
static void watch_wait(PGconn *c, int timeout_ms)
{
    int fd = PQstatus(c) == CONNECTION_OK ? PQsocket(c) : -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, fd >= 0 ? 1 : 0, timeout_ms);
    if (n > 0 && PQconsumeInput(c)) {
        PGnotify *nt;
        while ((nt = PQnotifies(c)) != NULL)
            PQfreemem(nt);
    }
}

static void print_json_tick(const struct bulk_row *b, double rate, long long eta)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    char ts[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "time", ts);
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddStringToObject(o, "state", bulk_state_name(b->v.state));
    cJSON_AddNumberToObject(o, "state_code", b->v.state);
    cJSON_AddBoolToObject(o, "expanded", b->v.expanded);
    cJSON_AddNumberToObject(o, "total", (double)b->v.c.total);
    cJSON_AddNumberToObject(o, "done", (double)b->v.done);
    cJSON_AddNumberToObject(o, "sent", (double)b->v.c.sent);
    cJSON_AddNumberToObject(o, "delivered", (double)b->v.c.delivered);
    cJSON_AddNumberToObject(o, "failed", (double)b->v.c.failed);
    cJSON_AddNumberToObject(o, "skipped", (double)b->v.c.skipped);
    if (rate >= 0)
        cJSON_AddNumberToObject(o, "rate", rate);
    else
        cJSON_AddNullToObject(o, "rate");
    if (eta >= 0)
        cJSON_AddNumberToObject(o, "eta_s", (double)eta);
    else
        cJSON_AddNullToObject(o, "eta_s");
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

/* Why a bulk that is not moving is not moving, said once per state on
 * stderr: a watch of a bulk scheduled for tomorrow, or paused, otherwise
 * looks like a hang. */
static void watch_explain(PGconn *c, const struct bulk_row *b, int *said_state, int tty)
{
    if (b->v.state == *said_state)
        return;
    *said_state = b->v.state;
    if (b->v.state == BULK_PAUSED) {
        fprintf(stderr,
                "%ssmsysctl: bulk %.8s is paused: nothing is sent until it is resumed "
                "(smsysctl bulk resume ID, or Ready in Dynamics)\n",
                tty ? "\n" : "", b->id);
        return;
    }
    if (b->v.state != BULK_READY)
        return;
    const char *params[1] = {b->id};
    PGresult *r = PQexecParams(c,
                               "SELECT to_char(scheduled_start AT TIME ZONE 'UTC',"
                               " 'YYYY-MM-DD HH24:MI:SS') FROM smsys_bulk WHERE id = $1::uuid"
                               " AND scheduled_start > now()",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        fprintf(stderr, "%ssmsysctl: bulk %.8s waits for its scheduled start, %s UTC\n",
                tty ? "\n" : "", b->id, PQgetvalue(r, 0, 0));
    PQclear(r);
}

int cmd_bulk_watch(struct ctl *ctl, int argc, char **argv)
{
    const char *arg = NULL;
    long long timeout_s = 0; /* 0: until the bulk ends */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc || util_parse_int(argv[++i], 1, 31 * 86400, &timeout_s) != 0)
                return ctl_usage_error(ctl, "--timeout wants seconds (1..2678400)");
        } else if (arg == NULL) {
            arg = argv[i];
        } else {
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        }
    }
    if (arg == NULL)
        return ctl_usage_error(ctl, "expected a bulk ID");
    int rc = bulk_check_arg(ctl, arg);
    if (rc != CTL_OK)
        return rc;
    PGconn *c = bulk_db_open(ctl);
    if (c == NULL)
        return CTL_FAIL;
    char id[37];
    int known = 0;
    rc = bulk_resolve(ctl, c, arg, 1, id, &known);
    if (rc == CTL_OK && !known) {
        int p = start_pending(c, id);
        char res[256] = "";
        if (p == 0)
            command_result(c, id, res, sizeof(res));
        if (p < 0)
            rc = ctl_fail("reading smsys_bulk_command: %s", PQerrorMessage(c));
        else if (p == 0 && res[0])
            rc = ctl_fail("bulk %s: smsysd took the start command but did not accept the bulk: "
                          "%s",
                          id, res);
        else if (p == 0)
            rc = ctl_fail("no bulk send with id '%s' in PostgreSQL, and no start command "
                          "waiting for it (smsysctl bulk start ID)",
                          arg);
        else
            fprintf(stderr, "smsysctl: bulk %s: waiting for smsysd to take the start command\n",
                    id);
    }
    if (rc != CTL_OK) {
        PQfinish(c);
        return rc;
    }
    watch_listen(c);

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = watch_sigint; /* no SA_RESTART: poll() returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    watch_stop = 0;

    int tty = !ctl->json && isatty(STDOUT_FILENO);
    struct bulkview_rate rate = {0};
    struct bulk_row b;
    uint64_t last_read = 0, last_print = 0;
    int down = 0; /* PostgreSQL was unreachable at the last read */
    int shown = 0, said_state = 0, timedout = 0;
    uint64_t until = timeout_s ? util_now_ms() + (uint64_t)timeout_s * 1000 : 0;
    rc = -1;
    while (rc < 0 && !watch_stop) {
        uint64_t now = util_now_ms();
        if (until && now >= until) {
            timedout = 1;
            break;
        }
        if (last_read && now - last_read < WATCH_MIN_GAP_MS) {
            watch_wait(c, (int)(WATCH_MIN_GAP_MS - (now - last_read)));
            continue;
        }
        last_read = now;
        char err[512];
        int found = PQstatus(c) == CONNECTION_OK ? watch_read(c, id, &b, err, sizeof(err)) : -1;
        if (found < 0) {
            if (PQstatus(c) != CONNECTION_OK)
                snprintf(err, sizeof(err), "%.*s", (int)strcspn(PQerrorMessage(c), "\n"),
                         PQerrorMessage(c));
            if (!down)
                fprintf(stderr, "%ssmsysctl: PostgreSQL: %s; retrying every second\n",
                        tty && shown ? "\n" : "", err);
            down = 1;
            if (PQstatus(c) != CONNECTION_OK) {
                PQreset(c);
                if (PQstatus(c) == CONNECTION_OK)
                    watch_listen(c);
            }
            watch_wait(c, WATCH_TICK_MS);
            continue;
        }
        if (down)
            fprintf(stderr, "smsysctl: PostgreSQL is back\n");
        down = 0;
        if (found == 0 && shown) {
            rc = ctl_fail("bulk %s is gone from PostgreSQL", id);
            break;
        }
        if (found == 0) {
            int p = start_pending(c, id);
            if (p == 0 && bulk_row_get(c, id, &b) == 0) {
                char res[256];
                command_result(c, id, res, sizeof(res));
                rc = ctl_fail("bulk %s: smsysd took the start command but did not accept the "
                              "bulk: %s",
                              id,
                              res[0] ? res
                                     : "see its log, or the record's last error in "
                                       "Dynamics");
                break;
            }
            watch_wait(c, WATCH_TICK_MS);
            continue;
        }
        bulkview_rate_add(&rate, now, b.v.done);
        double r = bulkview_rate_get(&rate);
        int final = bulkview_final(b.v.state);
        /* Notifications may wake us often; print at most once a second,
         * and always the last line. */
        if (final || !last_print || now - last_print >= WATCH_TICK_MS - 50 || tty) {
            last_print = now;
            if (ctl->json) {
                long long eta = final ? 0
                                      : (b.v.state == BULK_SENDING && b.v.expanded
                                             ? bulkview_eta_s(b.v.c.total - b.v.done, r)
                                             : -1);
                print_json_tick(&b, r, eta);
            } else {
                char line[512];
                int width = tty ? term_width() - 1 : 0; /* the last column would wrap */
                bulkview_line(line, sizeof(line), &b.v, r, width, tty, time(NULL));
                if (tty)
                    printf("\r%s\033[K", line);
                else
                    printf("%s\n", line);
            }
            fflush(stdout);
            shown = 1;
        }
        watch_explain(c, &b, &said_state, tty);
        if (final) {
            if (tty)
                printf("\n");
            if (!ctl->json)
                printf("bulk %.8s (%s) %s: %lld sent, %lld delivered, %lld failed, %lld "
                       "skipped of %lld%s%s\n",
                       b.id, b.name, bulk_state_name(b.v.state), b.v.c.sent, b.v.c.delivered,
                       b.v.c.failed, b.v.c.skipped, b.v.c.total,
                       b.last_error[0] ? "; last error: " : "", b.last_error);
            rc = b.v.state == BULK_COMPLETED ? CTL_OK : CTL_FAIL;
            break;
        }
        watch_wait(c, WATCH_TICK_MS);
    }
    if (rc < 0) {
        /* SIGINT: stop watching, leave the bulk alone. */
        if (tty && shown)
            printf("\n");
        fflush(stdout);
        char why[64] = "";
        if (timedout)
            snprintf(why, sizeof(why), " after %lld s without an end", timeout_s);
        if (shown)
            fprintf(stderr, "smsysctl: stopped watching%s; bulk %s goes on (%s)\n", why, id,
                    bulk_state_name(b.v.state));
        else
            fprintf(stderr, "smsysctl: stopped watching%s; bulk %s goes on\n", why, id);
        rc = CTL_FAIL;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    PQfinish(c);
    return rc;
}
