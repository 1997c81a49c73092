/* testutil.h - helpers shared by unit and integration tests.
 *
 * Include after <stdarg.h>, <stddef.h>, <setjmp.h> and <cmocka.h>. */
#ifndef SMSYS_TESTUTIL_H
#define SMSYS_TESTUTIL_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* conninfo of the test PostgreSQL ($SMSYS_TEST_PG); fails the test when
 * unset, because a skipped database test must not count as a pass. */
const char *tu_pg_conninfo(void);

/* Path of a built program ($SMSYS_BIN/name); static buffer. */
const char *tu_bin(const char *name);

/* Path inside the source tree ($SMSYS_SRC/rel, else rel); static buffer. */
const char *tu_src(const char *rel);

/* Runs the loop until *flag != 0 or timeout_ms passes. Returns 0 when the
 * flag was set, -ETIMEDOUT otherwise. */
int tu_run_until(uv_loop_t *loop, const volatile int *flag, unsigned timeout_ms);

/* Closes every remaining handle, runs the loop dry and returns
 * uv_loop_close()'s result: tests assert it is 0 *before* calling this
 * (via tu_loop_handles) so that leaked handles fail the test. */
int tu_loop_close(uv_loop_t *loop);

/* Number of handles still open that are not closing (leak check). */
int tu_loop_handles(uv_loop_t *loop);

/* Starts argv[0] (a path) with argv, stdout+stderr to logfile (may be
 * NULL to inherit), and waits up to timeout_ms until 127.0.0.1:port
 * accepts TCP connections (port 0: do not wait). Returns the pid or -1. */
pid_t tu_spawn(char *const argv[], const char *logfile, int port, unsigned timeout_ms);

/* SIGTERM (then SIGKILL after 5 s) and reap. Returns the exit status as
 * waitpid reports it. */
int tu_stop(pid_t pid);

/* A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
int tu_free_port(void);

#endif
