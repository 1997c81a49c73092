/* template_default.h - the default SMS template of each recipient table
 * (mission F8: smsys_smstemplate.smsys_isdefault), cached.
 *
 * One GET reads every active default template of every table
 *   smsys_smstemplates?$select=...&$filter=smsys_isdefault eq true and statecode eq 0
 * and parses each body; the answer serves every table until the TTL ends
 * (default 60 s), so a caller asking per page or per bulk send costs one
 * request per TTL, and an edited default is used at most one TTL later.
 * Several active defaults for one table: the newest (modifiedon, then the
 * lowest id on a tie) wins and a warning names the others.
 *
 * Independent of pickup: the bulk engine and smsysctl use it the same way.
 * Not thread-safe: one loop. */
#ifndef SMSYS_TEMPLATE_DEFAULT_H
#define SMSYS_TEMPLATE_DEFAULT_H

#include <uv.h>

#include "smsys/error.h"

struct dv_client;
struct template;
struct template_defaults; /* the cache; template_defaults_new creates it */

/* One default template as read. Reference-counted: a lookup hands out a
 * reference the receiver must drop with template_default_release (the
 * cache keeps its own until the next refresh replaces the entry). */
struct template_default {
    char id[37];
    char entity[64];     /* smsys_entity: the recipient table's logical name */
    char modifiedon[40]; /* as Dynamics wrote it (ISO 8601 UTC) */
    char *name;          /* smsys_name, "" when empty */
    char *body;          /* smsys_body */
    struct template *t;  /* parsed body; NULL when it does not parse */
    char *error;         /* with t == NULL: "template <name>: <where and why>" */
    unsigned refs;       /* internal */
};

void template_default_hold(struct template_default *d);
void template_default_release(struct template_default *d);

#define TEMPLATE_DEFAULT_TTL_MS 60000

/* loop (for its clock) and dv are borrowed and must outlive the cache.
 * ttl_ms 0: TEMPLATE_DEFAULT_TTL_MS. Returns 0 and *out, -EINVAL, -ENOMEM. */
int template_defaults_new(uv_loop_t *loop, struct dv_client *dv, unsigned ttl_ms,
                          struct template_defaults **out);

/* Frees the cache; references handed out stay valid until released. Only
 * when no lookup is waiting for its callback. */
void template_defaults_free(struct template_defaults *d);

/* Forget the cached answer: the next lookup reads Dynamics again (after a
 * template was changed through smsys itself, and in tests). */
void template_defaults_invalidate(struct template_defaults *d);

/* rc 0: *def is the table's default (a reference: release it) or NULL
 * when the table has none; rc < 0: the read failed (err says why; the
 * next lookup tries again). */
typedef void (*template_default_cb)(int rc, struct template_default *def,
                                    const struct smsys_err *err, void *ud);

enum { TEMPLATE_DEFAULT_LATER = 1 };

/* The default template of table (a logical name, "contact").
 * Returns 0: answered from the fresh cache, *def set as for the callback
 * (the callback is not called); TEMPLATE_DEFAULT_LATER: the cache is being
 * read, cb runs once later (lookups in the meantime share the one GET);
 * < 0: -EINVAL (bad table name), -ENOMEM, or the request could not be
 * started (no callback). */
int template_default_lookup(struct template_defaults *d, const char *table,
                            struct template_default **def, template_default_cb cb, void *ud);

struct template_defaults_stats {
    unsigned long long refreshes; /* GETs started */
    unsigned long long hits;      /* lookups answered from the cache */
    unsigned duplicates;          /* tables with several defaults at the last refresh */
};
void template_defaults_stats(const struct template_defaults *d,
                             struct template_defaults_stats *out);

#endif
