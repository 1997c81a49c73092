/* template.h - SMS templates: placeholders filled from Dynamics rows, with
 * Persian number and Jalali date formatting (mission F1, F8, F10, F11).
 *
 * The syntax for users is in docs/templates.md. In short:
 *   {{firstname}}                          a column of the recipient's row
 *   {{parentcustomerid_account.name}}      a single-valued lookup, any depth
 *   {{let c = new_contracts(new_accountid) of parentcustomerid
 *          where statecode eq 0 latest by new_enddate}}
 *   {{c.new_enddate | jalali "d MMMM yyyy" | persian}}   a 1:N related row
 *   {{x | default "..."}} {{x | required}} {{#if x}}..{{else}}..{{/if}}
 *
 * Life of a template:
 *   1. template_parse(): text -> compiled template (pure, no I/O except
 *      reading time-zone files named by `tz` filters, cached process-wide).
 *      Errors name the placeholder and its position.
 *   2. The query plan: template_plan_query() gives the $select/$expand of
 *      the recipient's table, template_relation_*() the 1:N lookups. One
 *      GET per batch of recipients plus one per relation per batch.
 *   3. template_render(): one recipient's row (and its related rows) ->
 *      the final text, all or nothing.
 *   4. template_render_batch() (template_batch.c) does 2+3 over the
 *      Dataverse client for many recipients; template_validate() checks the
 *      columns and lookups against the server.
 *
 * Errors are SMSYS_ETEMPLATE with err->detail reading
 *   line 1, column 7 (byte 6), {{jobtitle | shout}}: unknown filter "shout"
 * plus the position fields of struct template_error. */
#ifndef SMSYS_TEMPLATE_H
#define SMSYS_TEMPLATE_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/error.h"

struct template; /* opaque; template_parse creates it, template_free frees it */
struct dv_client;

enum template_errkind {
    TE_NONE = 0,
    TE_SYNTAX,         /* unclosed {{, bad path, stray characters */
    TE_UNKNOWN_FILTER, /* | shout */
    TE_FILTER_ARG,     /* missing/bad argument: truncate "x", currency "EUR" */
    TE_BLOCK,          /* {{else}} / {{/if}} without {{#if}}, unclosed {{#if}} */
    TE_RELATION,       /* bad or duplicate {{let}}, unknown alias */
    TE_TOO_DEEP,       /* lookups nested deeper than TEMPLATE_MAX_DEPTH */
    TE_UNKNOWN_COLUMN, /* server: no such column (template_validate) */
    TE_UNKNOWN_LOOKUP, /* server: no such navigation property */
    TE_REQUIRED,       /* render: a `required` value is missing */
    TE_VALUE,          /* render: value of the wrong kind (jalali on text) */
    TE_LIMIT,          /* template or output too large */
};

/* Where a template error is. line and column are 1-based; column counts
 * characters (code points); offset is the byte offset of the offending
 * token (for render errors: of the placeholder's start). placeholder is
 * the whole {{...}} (cut to fit). */
struct template_error {
    enum template_errkind kind;
    unsigned line, column;
    size_t offset;
    char placeholder[160];
    char message[200];
};

#define TEMPLATE_MAX_DEPTH  6     /* lookups in one path (Dataverse nests $expand) */
#define TEMPLATE_MAX_SOURCE 65536 /* bytes of template text */
#define TEMPLATE_MAX_OUTPUT 16384 /* bytes of rendered text (an SMS is far less) */

/* Parses and compiles src[0..len) (UTF-8). Returns 0 and *out (caller frees
 * with template_free), SMSYS_ETEMPLATE with *te and err filled (te and err
 * may be NULL), SMSYS_EUTF8, or -ENOMEM. */
int template_parse(const char *src, size_t len, struct template **out, struct template_error *te,
                   struct smsys_err *err);

void template_free(struct template *t);

/* ---- the query plan ---- */

/* Appends "$select=a,b&$expand=nav($select=x;$expand=...)" (raw OData,
 * not URL-encoded) for the recipient's table. The recipient's primary key
 * column (key, e.g. "contactid") and the lookups relations hang off are
 * always selected. Returns 0 or a buffer error. */
int template_plan_select(const struct template *t, const char *key, struct buf *select,
                         struct buf *expand);

/* Number of {{let}} relations and, for relation i, its entity set, the
 * lookup column on it pointing back, its own $select list (raw), the user's
 * where (raw OData or NULL) and $orderby (raw or NULL). Borrowed from t. */
size_t template_relations(const struct template *t);
struct template_relation_info {
    const char *alias;
    const char *entity_set;
    const char *lookup; /* column on the related table, e.g. "new_accountid" */
    const char *where;  /* NULL: no filter */
    char select[1024];  /* "_new_accountid_value,new_enddate" */
    char expand[1024];  /* lookups of the related row, "" when none */
    char orderby[128];  /* "new_enddate desc", "" when none */
};
int template_relation(const struct template *t, size_t i, struct template_relation_info *out);

/* The GUID the relation i is joined on for this recipient row (the row's
 * own key when the relation has no `of`, else the lookup's _x_value), or
 * NULL when that lookup is empty. Borrowed from row. */
const char *template_relation_key(const struct template *t, size_t i, const cJSON *row,
                                  const char *key);

/* ---- rendering ---- */

/* Renders one recipient. row: the recipient's row as the Web API returns
 * it (with annotations for labels). rel: template_relations(t) rows, the
 * related row of each relation or NULL when there is none (rel may be
 * NULL when the template has no relations). On success appends the text to
 * out; on any error out is left exactly as it was (never half a message)
 * and SMSYS_ETEMPLATE (te/err filled, te/err may be NULL), -ENOMEM or
 * -E2BIG is returned. */
int template_render(const struct template *t, const cJSON *row, const cJSON *const *rel,
                    struct buf *out, struct template_error *te, struct smsys_err *err);

/* 1 when text holds nothing a reader would see: empty, or only white
 * space (ASCII, no-break, the Unicode spaces, zero-width characters and
 * the byte order mark). A template whose placeholders were all missing
 * renders like that; no one should pay for (or receive) such an SMS, so
 * callers fail it as an empty text. Invalid UTF-8 counts as visible. */
int template_text_blank(const char *text, size_t len);

/* smsys_entity as typed in Dynamics (" Contact") -> the logical name
 * ("contact"): surrounding white space dropped, ASCII letters lowered, in
 * place. Logical names are lower case; a text column takes what the admin
 * types, and the same template must not work as a default and fail when
 * named. NULL is ignored. */
void template_entity_norm(char *entity);

/* ---- against Dataverse (template_batch.c) ---- */

/* The recipient's table as the Web API names it. */
struct template_table {
    const char *entity_set; /* "contacts" */
    const char *key;        /* primary key column, "contactid" */
    const char *logical;    /* "contact" (for messages) */
};

/* Fills entity_set/key for the common recipient tables (contact, account,
 * lead, systemuser; others: "<logical>s" and "<logical>id"), into the
 * given storage. Returns 0 or -EINVAL for a name that is not an identifier. */
int template_table_for(const char *logical, char *set, size_t set_len, char *key, size_t key_len,
                       struct template_table *out);

/* Per recipient: rc 0 with text (text_len bytes, NUL-terminated, borrowed
 * for the call), or rc < 0 with err (SMSYS_ETEMPLATE: the placeholder and
 * position; SMSYS_ENOTFOUND: no such row). */
typedef void (*template_row_cb)(const char *id, int rc, const char *text, size_t text_len,
                                const struct smsys_err *err, void *ud);

struct template_batch_stats {
    unsigned requests; /* Web API requests made (pages count) */
    size_t rendered, failed;
};

/* Called once at the end. rc is 0 when every request succeeded (rows may
 * still have failed individually), else the first request error (rows not
 * reached got no row_cb). */
typedef void (*template_batch_done_cb)(int rc, const struct template_batch_stats *st,
                                       const struct smsys_err *err, void *ud);

struct template_batch_opts {
    unsigned batch_size; /* recipients per GET; 0: 100 (at most 200) */
};

/* Renders t for ids[0..n) of table: per batch one GET of the recipients
 * (with the plan's $select/$expand) plus one GET per relation; then each
 * row is rendered and row_cb called, in id order. t, tbl and ids are
 * borrowed until done_cb. Returns 0 (done_cb later, exactly once) or
 * -EINVAL (n == 0, an id that is not a GUID, more than 8 relations) /
 * -ENOMEM / what dv_get_all returns (no callback then). */
int template_render_batch(struct dv_client *dv, const struct template *t,
                          const struct template_table *tbl, const char *const *ids, size_t n,
                          const struct template_batch_opts *opts, template_row_cb row_cb,
                          template_batch_done_cb done_cb, void *ud);

/* Checks the template's columns, lookups and relation filters against the
 * server with probe queries ($top=1). rc 0: valid; SMSYS_ETEMPLATE with
 * te/err naming the first placeholder the server refused; other codes: the
 * request failed (the template was not checked). */
typedef void (*template_validate_cb)(int rc, const struct template_error *te,
                                     const struct smsys_err *err, void *ud);
int template_validate(struct dv_client *dv, const struct template *t,
                      const struct template_table *tbl, template_validate_cb cb, void *ud);

#endif
