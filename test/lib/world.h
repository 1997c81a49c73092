/* world.h - the integration-test harness: the outside world of smsys
 * built from real parts, one call each.
 *
 *   world_db_*      a private PostgreSQL database per test program
 *   world_sql_*     one-value queries and statements on a connection
 *   world_dv_*      dvemu (the Dataverse emulator) as a process, and
 *                   blocking Web API requests to it
 *   world_provsim_* / world_smscsim_*  the provider simulators (HTTP / SMPP)
 *   world_conf_*    an smsysd / smsysctl config file written from parts
 *   world_smsysd_*  smsysd as a process: start (waits for its HTTP port),
 *                   stop (SIGTERM), kill -9, restart, wait until healthy
 *   world_ctl*      smsysctl as a process, stdout/stderr/exit captured
 *
 * Ownership: every process started here, every database created and every
 * directory made is remembered in a registry until it is stopped, dropped
 * or removed. world_cleanup() (or world_teardown() as a cmocka group or
 * test teardown) ends what is left, so a failed assertion, which skips the
 * rest of the test, never leaves a process or a database behind. Ports
 * come from tu_free_port().
 *
 * Functions that can only fail because the environment is broken fail the
 * running test (cmocka fail_msg/assert); call them from a test, setup or
 * teardown. Include after <cmocka.h>. */
#ifndef SMSYS_TEST_WORLD_H
#define SMSYS_TEST_WORLD_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <sys/types.h>

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "testutil.h"

/* ---- registry and processes ---- */

/* tu_spawn, and the pid is remembered for world_cleanup. -1 on failure. */
pid_t world_spawn(const char *const argv[], const char *logfile, int port, unsigned timeout_ms);

/* SIGTERM (SIGKILL after 5 s), reap, forget. Returns the wait status, -1
 * for pid <= 0. */
int world_stop(pid_t pid);

/* SIGKILL, reap, forget (a crash). */
void world_kill9(pid_t pid);

/* Stops every process still registered (in reverse start order). */
void world_stop_all(void);

/* The same for the processes of one program only ("smscsim"). */
void world_stop_all_of(const char *prog);

/* Stops every process, drops every database, removes every directory that
 * the harness still holds. Safe to call more than once. */
void world_cleanup(void);

/* world_cleanup() as a cmocka setup/teardown function; returns 0. */
int world_teardown(void **state);

/* Makes /tmp/smsys-t-<tag>-XXXXXX into out; removed (rm -rf) by
 * world_cleanup or world_rmdir. */
void world_mkdir(const char *tag, char *out, size_t len);
void world_rmdir(const char *dir);

/* The whole file as a NUL-terminated string; "" when it cannot be read.
 * Caller frees. */
char *world_slurp(const char *path);

/* Writes text to path with mode 0600 (configs hold secrets). */
void world_write_file(const char *path, const char *text);

/* ---- PostgreSQL ---- */

/* Creates database smsys_t_<tag>_<pid> (dropped first when left over) on
 * the test server: name and a conninfo for it (the test server's, dbname
 * replaced) are written out. Dropped by world_cleanup or world_db_drop. */
void world_db_create(const char *tag, char *name, size_t nlen, char *conninfo, size_t clen);
void world_db_drop(const char *name);

/* Applies sql/ (migrate_apply) to the database; returns how many
 * migrations it applied, fails the test on an error. */
int world_db_migrate(const char *conninfo);

/* A new connection that must succeed; caller PQfinishes. */
PGconn *world_db_connect(const char *conninfo);

/* A fresh database for one test: created, migrated, connected (notices
 * dropped). world_pg_close (or world_cleanup) ends it. */
struct world_pg {
    char name[64];
    char conninfo[1024];
    PGconn *c;      /* the test's own connection */
    int migrations; /* how many migrations were applied */
};

void world_pg_open(struct world_pg *p, const char *tag);
void world_pg_close(struct world_pg *p);

/* For a cmocka setup: a calloc'd world_pg (migrated unless migrate is 0,
 * then the database stays empty); world_pg_teardown closes and frees
 * *state. */
struct world_pg *world_pg_new(const char *tag, int migrate);
int world_pg_teardown(void **state);

/* One value on a new connection to conninfo ("" when there is no row);
 * fails the test on an SQL error. */
void world_db_value(const char *conninfo, const char *sql, char *out, size_t len);

/* A statement on a new connection; fails the test unless it succeeds. */
void world_db_exec(const char *conninfo, const char *sql);

/* Runs a statement; fails the test unless it succeeds. */
void world_sql_exec(PGconn *c, const char *sql);

/* First column of the first row as a number: -1 for NULL; fails the test
 * on an SQL error or when there is no row. */
long long world_sql_int(PGconn *c, const char *sql);

/* The same, and fails unless there is exactly one row. */
long long world_sql_one(PGconn *c, const char *sql);

/* The same, but -1 also when there is no row (fails on an SQL error). */
long long world_sql_val(PGconn *c, const char *sql);

/* Runs the loop (so the objects under test work) until world_sql_val(c,
 * sql) == want, checked every 50 ms, for at most timeout_ms. Returns 0,
 * or -ETIMEDOUT after printing the last value. */
int world_loop_wait_sql(uv_loop_t *loop, PGconn *c, const char *sql, long long want,
                        unsigned timeout_ms);

/* First column of the first row ("" for NULL, "<none>" for no row) in a
 * static buffer (the next call overwrites it); fails on an SQL error. */
const char *world_sql_str(PGconn *c, const char *sql);

/* ---- dvemu ---- */

struct world_dv {
    pid_t pid;
    int port;           /* chosen on the first start, kept over restarts */
    char root[64];      /* http://127.0.0.1:port */
    char token[4096];   /* bearer for requests; "" sends none */
    char data_dir[128]; /* --data DIR when set (a journal kept over restarts) */
    char log[256];
    CURL *curl; /* owned; freed by world_dv_free */
};

/* Starts dvemu on dv->port (a free port on the first start), --data
 * dv->data_dir when set, plus extra arguments (NULL-terminated, may be
 * NULL), and waits until it listens. Registered for world_cleanup. */
void world_dv_start(struct world_dv *dv, const char *const *extra);

/* Signs in as the demo client (smsys-demo / smsys-demo-secret) and keeps
 * the token in dv->token. */
void world_dv_signin(struct world_dv *dv);

/* SIGTERM; asserts that dvemu exits 0 (it saved its journal). */
void world_dv_stop(struct world_dv *dv);

/* SIGKILL (a crash; its journal stays as it was). */
void world_dv_kill9(struct world_dv *dv);

/* Frees the curl handle (the process is stopped separately). */
void world_dv_free(struct world_dv *dv);

/* One blocking request. path: "/..." from the root, else under
 * /api/data/v9.2/; spaces are sent as %20. body: JSON (form when no token
 * is set) or NULL. Returns the HTTP status (0: no answer); *out (may be
 * NULL) gets the parsed body, caller cJSON_Deletes. */
long world_dv_req(struct world_dv *dv, const char *method, const char *path, const char *body,
                  cJSON **out);

/* A request to dvemu's own control API (/_emu/...), which takes no token:
 * as world_dv_req with the token left out, dv->token untouched. */
long world_dv_ctl(struct world_dv *dv, const char *method, const char *path, const char *body,
                  cJSON **out);

/* POST that must answer 200/201/204. */
void world_dv_post(struct world_dv *dv, const char *set, const char *body);

/* GET that must answer 200 with JSON; caller cJSON_Deletes. */
cJSON *world_dv_get(struct world_dv *dv, const char *path);

/* GET /_emu/stats (sent without a token); caller cJSON_Deletes. */
cJSON *world_dv_stats(struct world_dv *dv);

/* A number of a stats object: s[key] or s[key][sub]; 0 when absent. */
double world_dv_stat_of(const cJSON *s, const char *key, const char *sub);

/* The string o[key], NULL when absent or not a string. */
const char *world_jstr(const cJSON *o, const char *key);

/* ---- the queue under test ---- */

/* Inits *loop, opens a pool of pool_size connections to conninfo and a
 * queue on it (opts may be NULL). world_queue_close frees all three. */
void world_queue_open(uv_loop_t *loop, const char *conninfo, unsigned pool_size,
                      const struct queue_opts *opts, struct pg_pool **pool, struct queue **q);

/* Closes the pool (waits for it), frees the queue, asserts no loop handle
 * is left and closes the loop. */
void world_queue_close(uv_loop_t *loop, struct pg_pool *pool, struct queue *q);

/* ---- our Dataverse client against dvemu ---- */

/* The client under test on its own libuv loop: loop, HTTP client and
 * Dataverse client, all owned here (world_dvc_close frees them). */
struct world_dvc {
    uv_loop_t loop;
    struct http_client *http;
    struct dv_client *dv;
    char token_url[128];
};

/* Opens the loop and both clients for emu; opts (may be NULL) supplies
 * the tuning (timeouts, backoffs, batching); url, token_url and the demo
 * credentials are filled in where opts leaves them NULL (timeout_ms 0:
 * 10 s). */
void world_dvc_open(struct world_dvc *c, const struct world_dv *emu, const struct dv_opts *opts);

/* Closes both clients, asserts no loop handle is left and closes the loop. */
void world_dvc_close(struct world_dvc *c);

/* ---- provider simulators ---- */

struct world_sim {
    pid_t pid;
    int port;  /* provsim: HTTP; smscsim: SMPP */
    int cport; /* smscsim: control API */
    char log[256];
};

/* provsim on a free port with extra arguments (NULL-terminated, may be
 * NULL); its stdout/stderr go to logfile (NULL: inherited). */
void world_provsim_start(struct world_sim *s, const char *logfile, const char *const *extra);

/* smscsim with SMPP on a free port ([::1] with v6: then not waited for,
 * tu_spawn probes IPv4 only), control API on another, JSON-lines log in
 * s->log; extra arguments NULL-terminated, may be NULL. */
void world_smscsim_start(struct world_sim *s, const char *const *extra, int v6);

/* Stops it (SIGTERM) and returns the wait status. The log file stays. */
int world_sim_stop(struct world_sim *s);

/* ---- config files ---- */

/* The parts of an smsysd/smsysctl config. NULL/0 parts are left out. */
struct world_conf {
    const char *dv_root;       /* [dataverse] url/token_url/scope from this */
    const char *client_id;     /* default smsys-demo */
    const char *client_secret; /* default smsys-demo-secret ("env:NAME" works) */
    const char *scope;         /* default http://127.0.0.1/.default */
    const char *dv_extra;      /* more [dataverse] lines ("k = v\n...") */
    const char *conninfo;      /* [postgres] conninfo */
    int http_port;             /* [http] listen = 127.0.0.1:port */
    const char *more;          /* further sections, verbatim */
};

/* The config text; caller frees. */
char *world_conf_text(const struct world_conf *c);

/* world_conf_text written to path (mode 0600). */
void world_conf_write(const char *path, const struct world_conf *c);

/* ---- smsysd ---- */

struct world_smsysd {
    char conf[256]; /* set by the caller (or world_smsysd_init) */
    char log[256];
    int http_port; /* where start waits for it to listen */
    pid_t pid;     /* 0 when not running */
};

/* conf = dir/<name>.conf, log = dir/<name>.log, http_port = a free port. */
void world_smsysd_init(struct world_smsysd *s, const char *dir, const char *name);

/* Starts smsysd --config conf, output to log, and waits up to timeout_ms
 * until its HTTP port accepts connections; fails the test otherwise. */
void world_smsysd_start(struct world_smsysd *s, unsigned timeout_ms);

/* SIGTERM and reap; returns the wait status (-1 when it was not running). */
int world_smsysd_stop(struct world_smsysd *s);

/* SIGTERM; fails the test unless smsysd exits 0 and its log holds none
 * of the secrets (NULL-terminated, may be NULL). Nothing when it was not
 * running. */
void world_smsysd_stop_clean(struct world_smsysd *s, const char *const *secrets);

/* Prints the last max bytes of the log (after a failure). */
void world_smsysd_print_log(const struct world_smsysd *s, size_t max);

/* kill -9 and reap (a crash: nothing is flushed). */
void world_smsysd_kill9(struct world_smsysd *s);

/* Polls GET /healthz until it answers 200; 0, or -ETIMEDOUT. */
int world_smsysd_healthy(const struct world_smsysd *s, unsigned timeout_ms);

/* ---- smsysctl ---- */

/* What one smsysctl run produced; world_run_free frees out and err. */
struct world_run {
    pid_t pid;
    int fo, fe;    /* temp files holding stdout / stderr until finished */
    int code;      /* exit status; -1 when it did not exit normally */
    int sig;       /* the signal that ended it, else 0 */
    int timed_out; /* killed by world_ctl_finish at the end of the wait */
    char *out, *err;
};

/* Starts smsysctl [--config conf] ARGS... (NULL-terminated) without
 * waiting; conf NULL: no --config. */
struct world_run world_ctl_start(const char *conf, const char *const *args);

/* Waits up to timeout_ms (then SIGKILL, timed_out = 1; 0: as long as it
 * takes) and reads the output into out/err. */
void world_ctl_finish(struct world_run *r, unsigned timeout_ms);

/* For a run the caller reaped itself (waitpid on r->pid): takes its wait
 * status and reads the output. */
void world_ctl_reaped(struct world_run *r, int wait_status);

/* world_ctl_start + world_ctl_finish without a time limit. */
struct world_run world_ctl(const char *conf, const char *const *args);

void world_run_free(struct world_run *r);

/* Fails the test unless the run exited with code and stdout/stderr hold
 * the given texts (NULL: not checked); frees r either way. */
void world_run_expect(struct world_run r, int code, const char *in_out, const char *in_err);

#endif
