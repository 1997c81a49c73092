/* smpp_fixture.h - shared helpers of the SMPP integration tests: start
 * smscsim, talk to its control port, read its JSON-lines log. Header-only
 * (static functions) because test/integration/ builds one binary per
 * test_*.c file. */
#ifndef SMPP_FIXTURE_H
#define SMPP_FIXTURE_H

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/world.h"

struct simproc {
    pid_t pid;
    int port, cport;
    char log[256];
};

/* Group teardown: stops the smscsim processes a failed assertion left
 * running (they are in the world harness's registry). */
static __attribute__((unused)) int sim_kill_all(void **state)
{
    (void)state;
    world_stop_all_of("smscsim");
    return 0;
}

/* Starts smscsim on free ports with extra flags (NULL-terminated); with
 * v6 it listens on [::1] and the caller waits for it (tu_spawn probes
 * IPv4 only). */
static void sim_start_on(struct simproc *sp, const char *const *extra, int v6)
{
    struct world_sim s = {0};
    world_smscsim_start(&s, extra, v6);
    sp->pid = s.pid;
    sp->port = s.port;
    sp->cport = s.cport;
    snprintf(sp->log, sizeof(sp->log), "%s", s.log);
}

static void sim_start(struct simproc *sp, const char *const *extra)
{
    sim_start_on(sp, extra, 0);
}

static void sim_stop(struct simproc *sp)
{
    world_stop(sp->pid);
    unlink(sp->log);
}

/* One HTTP request to the control API (Connection: close); returns the
 * response body (static buffer) and asserts a 200 status. */
static const char *sim_http(struct simproc *sp, const char *method, const char *path,
                            const char *body)
{
    static char reply[16384];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sp->cport)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, blen, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        assert_true(got + 1 < sizeof(reply));
    }
    reply[got] = '\0';
    close(fd);
    assert_true(strncmp(reply, "HTTP/1.1 200", 12) == 0);
    const char *b = strstr(reply, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

/* A number from `stats`. */
static long long sim_stat(struct simproc *sp, const char *key)
{
    cJSON *j = cJSON_Parse(sim_http(sp, "GET", "/stats", NULL));
    assert_non_null(j);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsNumber(v));
    long long x = (long long)v->valuedouble;
    cJSON_Delete(j);
    return x;
}

/* Parsed log lines (after a `flush`); caller frees with sim_log_free. */
struct simlog {
    cJSON **line;
    size_t n;
};

static void sim_log_read(struct simproc *sp, struct simlog *lg)
{
    sim_http(sp, "POST", "/flush", NULL);
    lg->line = NULL;
    lg->n = 0;
    FILE *f = fopen(sp->log, "r");
    assert_non_null(f);
    char *l = NULL;
    size_t cap = 0;
    while (getline(&l, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(l);
        assert_non_null(j); /* every line is JSON */
        lg->line = realloc(lg->line, (lg->n + 1) * sizeof(*lg->line));
        lg->line[lg->n++] = j;
    }
    free(l);
    fclose(f);
}

static void sim_log_free(struct simlog *lg)
{
    for (size_t i = 0; i < lg->n; i++)
        cJSON_Delete(lg->line[i]);
    free(lg->line);
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long jnum(const cJSON *j, const char *k, long long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : dflt;
}

static int is_cmd(const cJSON *j, const char *cmd)
{
    const char *c = jstr(j, "cmd");
    return c && strcmp(c, cmd) == 0;
}

/* The most submit_sm one destination received, and in *total all of
 * them; numbered_only: count only lines with a sequence number ("seq"). */
static __attribute__((unused)) int sim_max_per_dst(struct simproc *sp, int *total,
                                                   int numbered_only)
{
    struct simlog lg;
    sim_log_read(sp, &lg);
    cJSON *seen = cJSON_CreateObject();
    int mx = 0;
    *total = 0;
    for (size_t i = 0; i < lg.n; i++) {
        const char *d = jstr(lg.line[i], "dst");
        if (!is_cmd(lg.line[i], "submit_sm") || !d ||
            (numbered_only && jnum(lg.line[i], "seq", -1) < 0))
            continue;
        (*total)++;
        cJSON *v = cJSON_GetObjectItemCaseSensitive(seen, d);
        int c = v ? v->valueint + 1 : 1;
        if (v)
            cJSON_SetNumberValue(v, c);
        else
            cJSON_AddNumberToObject(seen, d, 1);
        if (c > mx)
            mx = c;
    }
    cJSON_Delete(seen);
    sim_log_free(&lg);
    return mx;
}

#endif
