/* bulk_int.h - internals shared by the bulk engine's modules (not a public
 * header):
 *   bulk.c         the engine: one run = commands, Dynamics poll, status
 *                  and counter sync, quiet-hours gate, one unit of work
 *                  per active bulk;
 *   bulk_start.c   audience and text resolution (lists, campaign, templates);
 *   bulk_expand.c  audience paging (static lists, FetchXML), member rows,
 *                  rendering;
 *   bulk_send.c    preflight, record creation and release;
 *   bulk_db.c      the PostgreSQL calls.
 * Every unit of work is one async chain that ends with exactly one call of
 * its done callback (bjob_done). */
#ifndef SMSYS_BULK_INT_H
#define SMSYS_BULK_INT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "pickup_int.h"
#include "smsys/bulk.h"
#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/template.h"

struct bulk_engine;
struct bjob;

/* Ends a unit: rc < 0 = it failed (logged by the caller; retried next run),
 * worked = it made progress (run again at once). */
typedef void (*bjob_done_cb)(struct bjob *j, int rc, int worked);

/* One active bulk as read from smsys_bulk for one unit of work. Owned
 * strings; freed by bjob_free. */
struct bjob {
    struct bulk_engine *e;
    char id[37];
    char *name;
    int state;
    char account_id[37];
    char *sender;
    char template_id[37];
    char *body;
    char list_id[37];
    char campaign_id[37];
    char owner_id[37];
    char owner_type[16];
    cJSON *sources; /* NULL until resolved */
    int src_index;
    char *cursor; /* NULL: first page */
    int expanded;
    cJSON *templates; /* NULL until resolved */
    int has_preflight;
    char created[24]; /* created_at in µs: a restarted bulk is a new row */
    /* the unit in progress */
    bjob_done_cb done;
    struct buf scratch;
    void *work; /* module-private state of the unit */
};

/* Engine settings and shared state (bulk.c owns it). */
struct bulk_engine {
    uv_loop_t *loop;
    struct pg_pool *pg;
    struct dv_client *dv;
    struct bulk_opts o; /* strings owned (copies), defaults filled in */
    struct pk_tables tables;
    struct bulk_stats st;
    uint64_t last_poll_ms, last_sync_ms; /* uv_now of the last poll / sync */
    int kicked;
    int closing; /* bulk_stop: no new Dynamics request, runs end early */
    int gate;    /* -1 unknown, else the value last set in PostgreSQL */
    void *run;   /* the run in progress, NULL when idle */
};

/* ---- the run (bulk.c, bulk_poll.c, bulk_sync.c) ---------------------- */

/* An smsysctl command being applied. */
struct cmd {
    long long id;
    char bulk[37];
    char command[8];
    char rate[32];   /* "" = none */
    int pg, written; /* start: PostgreSQL's state and last written status, -1 none */
};

/* A bulk whose status and counters may need writing to Dynamics. */
struct syncrow {
    char id[37];
    int state;
    char *last_error;
    cJSON *written;
    long long total, sent, delivered, failed, skipped;
    int finished;
};

/* One run of the engine (bulk_run): its phases in order are gate,
 * commands, poll, sync, work. */
struct run {
    struct bulk_engine *e;
    bulk_run_cb cb;
    void *ud;
    int rc, more, do_poll, do_sync;
    struct cmd *cmds;
    size_t ncmd, icmd;
    cJSON *rows;            /* Dynamics rows being decided (owned) */
    cJSON *row;             /* the row being decided */
    const char *force_rate; /* start command: rate override, else NULL */
    int forced;
    char restart[37]; /* the bulk being restarted */
    struct syncrow *sy;
    size_t nsy, isy;
    struct bjob *jobs;
    size_t njobs, ijob;
    char *patch; /* the fields being written for sy[isy] */
};

/* Phases: each ends by starting the next (or bulk_run_finish). */
void bulk_phase_commands(struct run *r); /* bulk_poll.c */
void bulk_phase_poll(struct run *r);     /* bulk_poll.c */
void bulk_phase_sync(struct run *r);     /* bulk_sync.c */
void bulk_phase_work(struct run *r);     /* bulk.c */
void bulk_run_finish(struct run *r);     /* bulk.c */

/* Logs a failed step and keeps the run's first error. */
void bulk_note_rc(struct run *r, int rc, const char *what, const struct smsys_err *err);

/* Helpers for PostgreSQL and JSON values (bulk.c). */
const char *bulk_val(const PGresult *res, int row, int col); /* NULL for SQL NULL */
int bulk_to_int(const char *s, int def);
const char *bulk_jstr(const cJSON *o, const char *k); /* non-empty string or NULL */
int bulk_jint(const cJSON *o, const char *k, int def);
void bulk_copy_id(char dst[37], const char *src);

/* A member table: phone columns, entity set and key (from [pickup]
 * phone_columns), NULL when the table is not configured. */
const struct pk_table *bulk_table(const struct bulk_engine *e, const char *entity);

/* Quotes s as an element of a PostgreSQL array literal ("..." or NULL),
 * with a ',' first unless b ends in '{'. */
int bulk_arr_add(struct buf *b, const char *s);

/* Parses the template text of a member table for j ("*" or the entity);
 * NULL with err set when there is none or it does not parse. */
struct template *bulk_template_for(const struct bjob *j, const char *entity, struct smsys_err *err);

/* Renders t for one row and measures it: 0 with the text in out and
 * segments/encoding set; else a status (BULK_M_RENDER_FAIL) and reason. */
int bulk_render_row(const struct bulk_engine *e, const struct template *t, const cJSON *row,
                    struct buf *out, int *segments, int *encoding, char *why, size_t whylen);

/* Measures a rendered text (segments, encoding, the length limit): 0, or
 * BULK_M_RENDER_FAIL with why. */
int bulk_measure(const struct bulk_engine *e, const char *text, size_t len, int *segments,
                 int *encoding, char *why, size_t whylen);

/* Units (each calls j->done exactly once, later, when it returns 0). */
/* bulk_expand.c, exported for test/fuzz (a list's FetchXML and the paging
 * cookie are outside input): the list's query rewritten with our paging and
 * columns (-EINVAL when it has no <fetch> with an <entity>); the cookie of
 * a FetchXML answer, "" when none (out has len bytes). */
int bulk_fetch_build(const char *query, const char *key, const char *const *cols, size_t ncols,
                     unsigned count, long page, const char *cookie, struct buf *out);
void bulk_paging_cookie(const cJSON *page, char *out, size_t len);

int bulk_unit_sources(struct bjob *j);   /* bulk_start.c: resolve lists */
int bulk_unit_templates(struct bjob *j); /* bulk_start.c: resolve texts */
int bulk_unit_page(struct bjob *j);      /* bulk_expand.c: one page */
int bulk_unit_render(struct bjob *j);    /* bulk_expand.c: render a chunk */
int bulk_unit_preflight(struct bjob *j); /* bulk_send.c */
int bulk_unit_chunk(struct bjob *j);     /* bulk_send.c: create + release */

/* Sets the bulk Failed in PostgreSQL with why (the sync writes it to
 * Dynamics), then ends the unit as worked. */
void bulk_job_fail(struct bjob *j, const char *why);

/* One error text from a Dataverse/PG error for logs and last_error. */
const char *bulk_errtext(int rc, const struct smsys_err *err);
/* The answer to a note on the bulk record (dv_note_create): counts the
 * request and logs a failure. A note is for people: a Dynamics without
 * notes on bulk sends, or a replay that finds its note made (conflict: the
 * ids are derived), never stops the bulk. what: "preflight", "refusal". */
void bulk_note_answered(struct bjob *j, const char *what, int rc, const struct smsys_err *err);

#endif
