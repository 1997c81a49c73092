/* dvemu.h - internals shared by the Dataverse emulator's files.
 *
 * Model: a store of tables; each table has a fixed column list (schema.c),
 * rows kept as cJSON objects in insertion order plus a GUID hash index.
 * Lookups are stored as "_<col>_value" with a hidden "_<col>_value@lln"
 * (the target's logical name); activity parties live inside their
 * activity's row under the hidden key PARTIES_KEY. Hidden keys never reach
 * a client. Every write bumps a global version used for ETags and change
 * tracking. Everything runs on the one loop thread. */
#ifndef DVEMU_H
#define DVEMU_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/buf.h"

#define PARTIES_KEY "\x01parties"
#define LLN_SUFFIX  "@lln"
#define MAX_PAGE    5000
/* Dataverse accepts URLs up to 32 KiB, and up to 64 KiB for a request
 * inside a $batch body (how long FetchXML / In filters are sent). */
#define DVEMU_URL_MAX       32768
#define DVEMU_URL_MAX_BATCH 65536

enum col_type {
    CT_GUID, /* primary key */
    CT_STRING,
    CT_MEMO,
    CT_INT,
    CT_BIGINT,
    CT_DECIMAL,
    CT_BOOL,
    CT_DATETIME,
    CT_CHOICE,
    CT_LOOKUP,
};

struct column {
    char *name;
    enum col_type type;
    char *targets; /* lookups: comma-separated logical names, "*" = any */
    int readonly;  /* set by the server (createdon, versionnumber, ...) */
};

struct row {
    cJSON *obj;
    uint64_t version;
    size_t slot; /* index in table->rows */
    char id[37];
};

struct tombstone {
    char id[37];
    uint64_t version;
};

struct table {
    char *logical; /* "contact" */
    char *set;     /* "contacts" */
    char *pk;      /* "contactid" */
    char *primary_name;
    int activity;
    int user_owned;
    int custom;
    char metadata_id[37];
    struct column *cols;
    size_t ncols;
    /* rows in insertion order; NULL marks a deleted slot */
    struct row **rows;
    size_t nrows_slots, cap_rows, live;
    /* open-addressing index id -> row */
    struct row **index;
    size_t index_cap, index_used;
    struct tombstone *tomb;
    size_t ntomb, cap_tomb;
};

/* The right ids linked to one left row through one association, in
 * insertion order, with a hash of positions (store.c owns it). */
struct linkset {
    char nav[64];
    char left[37];
    char (*ids)[37];
    size_t n, cap;
    uint32_t *index; /* position + 1, 0 = empty; index_cap is a power of 2 */
    size_t index_cap;
};

/* Association (N:N) between two tables, e.g. list <-> contact. */
struct assoc_def {
    const char *nav;   /* "listcontact_association" */
    const char *left;  /* "list" */
    const char *right; /* "contact" */
};

struct store {
    struct table **tables;
    size_t ntables;
    uint64_t version;
    /* N:N links, one set per (nav, left id); few sets, many ids each */
    struct linkset **linksets;
    size_t nlinksets;
    /* undo log of the current transaction (NULL when none) */
    cJSON *undo;
    int depth;             /* nested begin/commit are no-ops: the outermost decides */
    size_t *tomb_at_begin; /* per table, to drop tombstones of a rollback */
    size_t ntables_at_begin;
    /* write observer (journal); called for each committed change */
    void (*on_change)(void *ud, const char *op, const struct table *t, const char *id,
                      const cJSON *row);
    void *on_change_ud;
};

/* ---- schema.c ---- */
int schema_install_standard(struct store *st, int with_smsys);
const struct assoc_def *schema_assoc(const char *nav);
const struct assoc_def *schema_assoc_at(size_t i);
struct table *schema_table_new(const char *logical, const char *set, const char *pk,
                               const char *primary_name, int activity);
int table_add_column(struct table *t, const char *name, enum col_type type, const char *targets);
const struct column *table_column(const struct table *t, const char *name);
/* "_x_value" -> lookup column x, else NULL */
const struct column *table_lookup_by_value(const struct table *t, const char *name);
void schema_pluralize(const char *logical, char *out, size_t len);
const char *schema_option_label(const char *table, const char *col, long long v);

/* ---- store.c ---- */
void store_init(struct store *st);
void store_free(struct store *st);
int store_add_table(struct store *st, struct table *t);
void store_table_free(struct table *t); /* a table not added to a store */
struct table *store_by_set(const struct store *st, const char *set);
struct table *store_by_logical(const struct store *st, const char *logical);
struct row *store_get(const struct table *t, const char *id);
/* Takes ownership of obj. id must be a lower-case GUID. Bumps version. */
struct row *store_put(struct store *st, struct table *t, const char *id, cJSON *obj);
/* Bumps the version of an existing row after its obj was edited. */
void store_touch(struct store *st, struct table *t, struct row *r);
int store_delete(struct store *st, struct table *t, const char *id);
void store_begin(struct store *st);
void store_commit(struct store *st);
void store_rollback(struct store *st);
/* N:N links */
int store_link(struct store *st, const char *nav, const char *left, const char *right);
int store_unlink(struct store *st, const char *nav, const char *left, const char *right);
/* Adding an existing link is a no-op (0). The set is borrowed; NULL = no links. */
const struct linkset *store_links(const struct store *st, const char *nav, const char *left);
int guid_valid(const char *s, size_t n);
void guid_lower(char *s);

/* ---- filter.c ---- */
struct fnode;
/* Parses an OData $filter. On error returns NULL and writes a message. */
struct fnode *filter_parse(const struct table *t, const char *src, char *err, size_t errlen);
int filter_eval(const struct fnode *n, const cJSON *row);
/* Appends every live row of t that n accepts (n NULL: all), in slot
 * order, to the array *m (NULL or from an earlier call; the caller frees
 * it). Returns the new count. Out of memory ends the scan early: the
 * answer is shorter, never wrong. */
size_t filter_rows(const struct table *t, const struct fnode *n, struct row ***m);
/* The same through the primary-key index when n pins the key (In/eq on
 * it, or-ed, or and-ed with anything): replaces *m (freed) with the
 * accepted rows in slot order, sets *nm and returns 0; -1 (nothing
 * changed) when only a scan can answer n. */
int filter_rows_by_key(const struct table *t, const struct fnode *n, struct row ***m, size_t *nm);
void filter_free(struct fnode *n);
/* Builders used by fetchxml.c */
struct fnode *filter_cmp_new(const char *op, const char *prop, const cJSON *lit);
struct fnode *filter_bool_new(int is_and, struct fnode *a, struct fnode *b);
struct fnode *filter_not_new(struct fnode *a);
struct fnode *filter_func_new(const char *fn, const char *prop, const char *arg);
/* Compares two row values of one column for $orderby (NULL first). */
int value_cmp(const cJSON *a, const cJSON *b);
int64_t parse_datetime(const char *s, int *ok);
void format_datetime(int64_t secs, char *out, size_t len);

/* ---- http-ish result of one API call (also used inside $batch) ---- */
struct api_res {
    int status;
    struct buf headers; /* "Name: value\r\n" lines */
    struct buf body;
    const char *ctype; /* static string or NULL */
    int rows_written;
};

struct api_req {
    const char *method;
    char *path; /* decoded, after /api/data/v9.x/ */
    char *query;
    const char *base; /* "http://host:port/api/data/v9.2/" */
    const char *(*header)(void *ud, const char *name);
    void *header_ud;
    const char *body;
    size_t body_len;
    int in_batch;
};

struct stats {
    uint64_t requests, throttled, batches, rows_written, failures_injected, unauthorized;
    cJSON *by_method;      /* "GET" -> n */
    cJSON *by_set;         /* "contacts" -> n */
    cJSON *busy_ms_by_set; /* "contacts" -> ms spent executing (no latency, no fsync) */
};

/* The emulator: one per process (main.c owns it). */
struct emu {
    struct store store;
    char user_id[37], bu_id[37], org_id[37];
    cJSON *actions;      /* registered custom action names -> array of recorded calls */
    cJSON *metadata_log; /* recorded metadata calls (attributes, relationships, publish) */
    struct stats stats;
    struct journal *journal;
    int with_smsys_schema;
    /* auth */
    cJSON *clients;      /* id -> secret */
    cJSON *client_certs; /* id -> PEM certificate or public key (client_assertion) */
    long long token_ttl;
    unsigned char key[32]; /* HMAC key of issued tokens */
    /* service protection and fault injection (0 = off) */
    long long limit_requests, limit_window_s, limit_concurrency, latency_ms, limit_exec_ms;
    long long delta_ttl_s; /* delta tokens older than this are refused */
    double fail_rate;
    cJSON *faults; /* row fault rules (faults.c), with their hit counts */
    unsigned inflight;
    struct table *pointer; /* virtual activitypointer table (columns only) */
};

/* ---- auth.c ---- */
int auth_init(struct emu *e, const char *dir);
/* Registers a certificate client (--client-cert ID:FILE.pem). 0 or <0. */
int auth_add_cert(struct emu *e, const char *id, const char *path);
/* Handles a token request (v2 or v1 form); fills r with the OAuth reply. */
void auth_token(struct emu *e, const char *body, const char *basic, int v1, struct api_res *r);
/* 0 when the bearer token is valid; the client id is copied to who. */
int auth_check(struct emu *e, const char *authorization, char *who, size_t wholen);

void api_res_init(struct api_res *r);
void api_res_free(struct api_res *r);
void api_error(struct api_res *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void api_hdr(struct api_res *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_exec(struct emu *e, const struct api_req *q, struct api_res *r);

/* ---- render.c / query.c ---- */
struct prefer {
    int return_repr;
    int annotations;
    int maxpagesize;
    int page_asked; /* odata.maxpagesize was sent (echoed in Preference-Applied) */
    int track_changes;
    int continue_on_error;
};
void prefer_parse(const char *h, struct prefer *p);
void prefer_applied(const struct prefer *p, struct api_res *r, int with_page, int with_track);
void query_collection(struct emu *e, struct table *t, const struct api_req *q,
                      const struct prefer *pf, struct api_res *r);
void query_one(struct emu *e, struct table *t, struct row *row, const struct api_req *q,
               const struct prefer *pf, struct api_res *r);
void query_assoc(struct emu *e, struct table *lt, const struct assoc_def *a, const char *id,
                 const struct api_req *q, const struct prefer *pf, struct api_res *r);
/* Renders a row (all columns, or the $select list) into a new cJSON. */
cJSON *render_row(struct emu *e, const struct table *t, const struct row *row, const cJSON *sel,
                  int annotations, int omit_null);
/* Parses "a,b,c" into a cJSON string array, checking each name exists.
 * Returns NULL (and a 400 in r) on an unknown property; *out NULL = all. */
int parse_select(const struct table *t, const char *s, cJSON **out, struct api_res *r);
char *query_param(const char *query, const char *name); /* decoded copy or NULL */

/* Stored key for a $select name (a non-lookup column or _x_value), or NULL. */
const char *select_key(const struct table *t, const char *name, const struct column **out);

/* ---- expand.c ---- */
struct expand {
    char *name;
    cJSON *sel;
    const struct column *lookup; /* single-valued */
    char target[64];             /* logical name required by a polymorphic nav, or "" */
    int parties;
    struct expand *sub; /* nested $expand inside the options, owned */
    size_t nsub;
};
/* Nested $expand levels accepted (the top level is 1); deeper -> 400. */
#define EXPAND_MAX_DEPTH 10
/* Parses $expand into a new array (*out, *nout; free with expand_free),
 * nested "($select=...;$expand=...)" options recursively. On an unknown
 * navigation property at any level, a nesting deeper than EXPAND_MAX_DEPTH
 * or a nested expand dvemu cannot resolve returns <0 with a 400 in r. */
int parse_expand(struct emu *e, const struct table *t, const char *s, struct expand **out,
                 size_t *nout, struct api_res *r);
void apply_expand(struct emu *e, const struct table *t, const struct row *row,
                  const struct expand *x, size_t n, cJSON *out, int annotations);
void expand_free(struct expand *x, size_t n);

/* ---- write.c ---- */
/* Applies a JSON body to obj (create: fresh obj with defaults). */
int write_apply(struct emu *e, struct table *t, cJSON *obj, const cJSON *body, int create,
                struct api_res *r);
void write_defaults(struct emu *e, struct table *t, cJSON *obj, const char *id);
void write_stamp_modified(cJSON *obj);
int write_create(struct emu *e, struct table *t, const cJSON *body, const char *want_id,
                 struct api_res *r, struct row **out);

/* ---- faults.c ---- */
/* 0, or -EINVAL with the first matching rule's error in r (its hit
 * counted): obj is the row a create / update would store in t. */
int faults_check(struct emu *e, const struct table *t, const cJSON *obj, struct api_res *r);
/* Adds a rule from a POST /_emu/faults body; -EINVAL with why in err. */
int faults_add(struct emu *e, const char *body, size_t len, char *err, size_t errlen);
void faults_clear(struct emu *e);

/* ---- fetchxml.c ---- */
void fetchxml_run(struct emu *e, struct table *t, const char *xml, const struct api_req *q,
                  const struct prefer *pf, struct api_res *r);

/* ---- lists.c ---- */
/* Sets list.membercount after a change to a list's members (other navs: no-op). */
void lists_sync_count(struct emu *e, const char *nav, const char *list_id);
/* POST lists(<id>)/Microsoft.Dynamics.CRM.AddMemberList */
void lists_add_member(struct emu *e, const struct api_req *q, struct api_res *r,
                      const char *list_id);
/* POST AddListMembersList (unbound) */
void lists_add_members(struct emu *e, const struct api_req *q, struct api_res *r);

/* ---- batch.c ---- */
void batch_run(struct emu *e, const struct api_req *q, const char *ctype, struct api_res *r);

/* ---- metadata.c ---- */
void metadata_exec(struct emu *e, const struct api_req *q, const char *rest, struct api_res *r);

/* ---- journal.c ---- */
struct journal;
int journal_open(struct emu *e, const char *dir, struct journal **out);
/* Appends the pending records and fsyncs (end of request / batch). */
int journal_flush(struct journal *j);
typedef void (*journal_done_cb)(void *item, int err);
/* From now on commits are asynchronous on this loop. */
void journal_attach_loop(struct journal *j, uv_loop_t *loop);
/* Calls cb(item, err) once the records pending now are durable (later, on
 * the loop; at once when no loop is attached). */
void journal_commit_async(struct journal *j, void *item, journal_done_cb cb);
void journal_close(struct journal *j, int compact);
/* Records a table definition created or changed through the metadata API. */
void journal_table(struct journal *j, const struct table *t);

/* ---- seed.c ---- */
int seed_demo(struct emu *e);
int seed_file(struct emu *e, const char *path);

#endif
