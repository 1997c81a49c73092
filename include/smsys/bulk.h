/* bulk.h - bulk SMS to marketing lists and campaigns (issue #9): the
 * PostgreSQL side of a bulk send (sql/007_bulk.sql) and the engine that
 * drives it (src/bulk*.c). Design, states, counters and the crash-safety
 * argument: docs/bulk.md.
 *
 * PostgreSQL level: every bulk_db_* call is ONE statement calling one SQL
 * function of sql/007_bulk.sql, i.e. one short transaction, and safe to
 * repeat after SMSYS_ETEMP (a replayed page or release changes nothing).
 * They follow the libuv contract of pg.h: 0 and exactly one later call of
 * cb, or a negative code and no call. Strings are borrowed for the call;
 * the PGresult handed to cb is borrowed for the callback.
 *
 * Blocking users (smsysctl) call the same SQL functions directly; the
 * BULK_SQL_* strings below are the statements to use (text parameters). */
#ifndef SMSYS_BULK_H
#define SMSYS_BULK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"
#include "smsys/pg.h"

/* smsys_bulksms.smsys_status. Users set READY, PAUSED, CANCELED (and READY
 * again after PAUSED = resume); smsys sets EXPANDING, SENDING, COMPLETED,
 * FAILED. */
enum bulk_state {
    BULK_DRAFT = 1,
    BULK_READY = 2,
    BULK_EXPANDING = 3,
    BULK_SENDING = 4,
    BULK_PAUSED = 5,
    BULK_COMPLETED = 6,
    BULK_CANCELED = 7,
    BULK_FAILED = 8,
};

/* smsys_bulk_member.status: 0 is sent to, the others are skipped. */
enum bulk_member_status {
    BULK_M_SEND = 0,
    BULK_M_NO_NUMBER = 1,
    BULK_M_INVALID_NUMBER = 2,
    BULK_M_OPTED_OUT = 3,   /* smsys_optout (decided in SQL) */
    BULK_M_DO_NOT_SMS = 4,  /* smsys_donotsms on the member row */
    BULK_M_DUPLICATE = 5,   /* another member has the number (decided in SQL) */
    BULK_M_RENDER_FAIL = 6, /* the text could not be rendered for this member */
};

/* smsys_bulk_member.step */
enum bulk_step {
    BULK_STEP_EXPANDED = 0,
    BULK_STEP_RENDERED = 1,
    BULK_STEP_HELD = 2,     /* message enqueued held, record maybe not created */
    BULK_STEP_RELEASED = 3, /* record exists, message released to the queue */
    BULK_STEP_CANCELED = 9, /* canceled before release */
};

/* NOTIFY channel for smsys_bulk_command rows (payload: bulk id). */
#define BULK_CHANNEL "smsys_bulk"

/* Priority of bulk messages in the queue: after single SMS (100), so a
 * transactional message is never stuck behind a campaign. */
#define BULK_PRIORITY 200

/* "Draft", "Ready", ... ("?" for anything else). Static string. */
const char *bulk_state_name(int state);

/* Name of a member status for summaries ("no_number", ...; "?"). */
const char *bulk_member_status_name(int status);

/* The member's smsys_sms activityid: UUIDv5 (SHA-1, RFC 4122 §4.3) of
 * member_key in the namespace bulk_id, so a replayed chunk after a crash
 * names the same record. Writes 36 chars + NUL to out. Returns 0, or
 * -EINVAL when bulk_id is not a GUID. */
int bulk_activity_id(const char *bulk_id, const char *member_key, char out[37]);

/* Counters of one bulk (smsys_bulk_progress; meaning in docs/bulk.md). */
struct bulk_progress {
    long long total;      /* members to send to */
    long long sent;       /* handed over and accepted (incl. failed after hand-over) */
    long long delivered;  /* delivery confirmed */
    long long failed;     /* Failed + Unknown + Blocked */
    long long skipped;    /* members skipped at expansion */
    long long canceled;   /* canceled before hand-over */
    long long queued;     /* released, waiting for hand-over (Queued/Retrying) */
    long long inflight;   /* being handed over */
    long long awaiting;   /* Sent, waiting for a delivery receipt */
    long long unreleased; /* members whose record/message is not released yet */
    int finished;         /* every member is final: the bulk may end Completed */
};

/* Parses row `row` of a smsys_bulk_progress result. Returns 0 or -EINVAL. */
int bulk_progress_parse(const PGresult *res, int row, struct bulk_progress *out);

/* ---- the engine (src/bulk.c and friends) ---------------------------- */

struct dv_client;
struct bulk_engine; /* opaque */

/* Settings; strings are copied. Zero fields take the default in brackets. */
struct bulk_opts {
    const char *phone_columns;   /* as [pickup] phone_columns; NULL: the pickup default */
    const char *optout_tables;   /* NULL: "contact,account,lead" */
    const char *optout_column;   /* NULL: "smsys_donotsms" */
    const char *default_country; /* NULL: "IR" */
    unsigned max_segments;       /* longer rendered texts are skipped [20] */
    unsigned page_size;          /* members per expansion request [5000] */
    unsigned chunk;              /* records per CreateMultiple [1000] */
    double rate_per_s;           /* default per-bulk hand-over rate, 0 = none */
    int refuse_over_balance;     /* fail at preflight when the balance cannot cover it */
    int quiet_set;               /* 1: hand over only inside [quiet_start, quiet_end) */
    int quiet_start, quiet_end;  /* minutes after local midnight (end < start: crosses it) */
    const char *timezone;        /* of the window; NULL: "Asia/Tehran" */
    unsigned poll_ms;            /* smsys_bulksmses poll [2000] */
    unsigned counters_ms;        /* counters / completion [5000] */
};

struct bulk_stats {
    /* started = bulks accepted */
    uint64_t runs, polls, started, pages, members, rendered, records, released, refused_rows,
        patches, failures;
    uint64_t dv_requests; /* Dynamics requests made by the engine */
};

/* Ends a run: rc 0 or the first error (logged); more != 0: work is left
 * that can be done at once (call bulk_run again without waiting). */
typedef void (*bulk_run_cb)(int rc, int more, void *ud);

/* Creates the engine (pool and client borrowed; they must outlive it).
 * Returns 0 and *out, -EINVAL (bad phone_columns, with err), -ENOMEM. */
int bulk_new(uv_loop_t *loop, struct pg_pool *pg, struct dv_client *dv,
             const struct bulk_opts *opts, struct bulk_engine **out, struct smsys_err *err);

/* Frees the engine; only when no run is in flight (bulk_busy == 0). */
void bulk_free(struct bulk_engine *e);
int bulk_busy(const struct bulk_engine *e);
const struct bulk_stats *bulk_stats(const struct bulk_engine *e);

/* One run: applies smsysctl commands, reads smsys_bulksmses when its
 * interval has passed (or after bulk_kick), writes states and counters
 * when theirs has, sets the quiet-hours gate, then does one unit of work
 * for every active bulk (a page of expansion, a chunk of rendering or of
 * records, the preflight). Returns 0 (cb later, once) or -EBUSY. */
int bulk_run(struct bulk_engine *e, bulk_run_cb cb, void *ud);

/* Stops for good: the run in flight (if any) ends at its next step
 * without another Dynamics request; later bulk_run calls return -ECANCELED.
 * Call before the Dataverse client closes. */
void bulk_stop(struct bulk_engine *e);

/* The next run reads Dynamics and syncs counters at once (NOTIFY). */
void bulk_kick(struct bulk_engine *e);

/* Whether local time t (Unix seconds) is inside the sending window of
 * opts (always 1 without quiet hours). */
int bulk_window_open(const struct bulk_opts *o, int64_t t);

/* ---- statements (for blocking callers; $n are text parameters) ------- */

/* $1 bulk id, $2 start|pause|resume|cancel, $3 rate per second or NULL,
 * $4 who. Records the command, applies pause/resume/cancel in PostgreSQL
 * at once, NOTIFYs smsys_bulk. Returns one row: the command id. */
#define BULK_SQL_REQUEST "SELECT smsys_bulk_request($1::uuid, $2, $3::real, $4)"
/* $1 bulk id: one row of smsys_bulk_progress (columns in struct order). */
#define BULK_SQL_PROGRESS                                                                          \
    "SELECT total, sent, delivered, failed, skipped, canceled, queued, inflight, awaiting, "       \
    "unreleased, finished FROM smsys_bulk_progress($1::uuid)"
/* $1 bulk id: the preflight summary (jsonb) as the engine stored it. */
#define BULK_SQL_PREFLIGHT "SELECT preflight FROM smsys_bulk WHERE id = $1::uuid"

/* ---- asynchronous PostgreSQL calls (src/bulk_db.c) ------------------- */

/* smsys_bulk_accept(json): inserts the bulk unless known; the row comes
 * back either way (columns of smsys_bulk). */
int bulk_db_accept(struct pg_pool *pool, const char *json, pg_result_cb cb, void *ud);
/* smsys_bulk_restart(json): a Failed bulk with no message starts over. */
int bulk_db_restart(struct pg_pool *pool, const char *json, pg_result_cb cb, void *ud);
/* smsys_bulk_set_sources: the first resolved audience wins; returns it. */
int bulk_db_set_sources(struct pg_pool *pool, const char *bulk_id, const char *sources_json,
                        pg_result_cb cb, void *ud);

/* One expansion page + checkpoint (smsys_bulk_page). at_cursor / next_cursor
 * may be NULL. members_json as documented in sql/007_bulk.sql. One row:
 * applied (t/f: false = the checkpoint had moved on, nothing changed),
 * inserted. */
int bulk_db_page(struct pg_pool *pool, const char *bulk_id, int at_index, const char *at_cursor,
                 int next_index, const char *next_cursor, int done, const char *members_json,
                 pg_result_cb cb, void *ud);

/* Up to lim members still to render: member_key, entity, member_id. */
int bulk_db_to_render(struct pg_pool *pool, const char *bulk_id, int lim, pg_result_cb cb,
                      void *ud);
/* Stores rendered texts; arrays are PostgreSQL array literals (text form)
 * of equal length; a NULL body skips that member (status 6, errs[i]). */
int bulk_db_rendered(struct pg_pool *pool, const char *bulk_id, const char *keys,
                     const char *bodies, const char *segs, const char *encs, const char *errs,
                     pg_result_cb cb, void *ud);
/* smsys_bulk_summary: one row, one jsonb column. */
int bulk_db_summary(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud);
/* Stores the preflight summary (jsonb text) and the bulk's last_error. */
int bulk_db_set_preflight(struct pg_pool *pool, const char *bulk_id, const char *json,
                          pg_result_cb cb, void *ud);

/* The next chunk (smsys_bulk_next_chunk): columns fresh, member_key,
 * entity, member_id, activity_id, message_id, number, body, segments,
 * msg_state. No rows: nothing to do (all released, or not Sending). */
int bulk_db_next_chunk(struct pg_pool *pool, const char *bulk_id, int lim, pg_result_cb cb,
                       void *ud);
/* Releases a chunk whose records exist (keys: text[] literal) and fails
 * the members Dynamics refused (fail_keys/fail_errs, may be NULL). One row:
 * the number released. */
int bulk_db_release(struct pg_pool *pool, const char *bulk_id, const char *keys,
                    const char *fail_keys, const char *fail_errs, pg_result_cb cb, void *ud);

/* State changes; one row: the new state (NULL: unknown bulk). */
int bulk_db_pause(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud);
int bulk_db_resume(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud);
int bulk_db_cancel(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud);
/* Engine transitions (3, 4, 6, 8); err (may be NULL) becomes last_error. */
int bulk_db_set_state(struct pg_pool *pool, const char *bulk_id, int state, const char *err,
                      pg_result_cb cb, void *ud);
/* Quiet hours: opens/closes the gate for every Sending bulk. */
int bulk_db_gate(struct pg_pool *pool, int open, pg_result_cb cb, void *ud);
/* One row of BULK_SQL_PROGRESS (parse with bulk_progress_parse). */
int bulk_db_progress(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud);
/* Records what was last written to Dynamics (jsonb text). */
int bulk_db_set_written(struct pg_pool *pool, const char *bulk_id, const char *json,
                        pg_result_cb cb, void *ud);
/* Commands not done yet: id, bulk_id, command, rate, who (oldest first). */
int bulk_db_commands(struct pg_pool *pool, pg_result_cb cb, void *ud);
/* Marks a command done with a result text. */
int bulk_db_command_done(struct pg_pool *pool, long long id, const char *result, pg_result_cb cb,
                         void *ud);

#endif
