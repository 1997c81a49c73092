/* phone_index.h - the phone index: every phone column of the tables smsys
 * matches inbound senders against (contact, lead, account and configured
 * custom tables, F3), normalised to E.164 in PostgreSQL
 * (smsys_phone_index, sql/006_inbound.sql).
 *
 * The first refresh of a table reads it fully with change tracking
 * (Prefer: odata.track-changes, 5000 rows a page) and keeps the delta
 * link; later refreshes read only the delta: changed rows replace their
 * index rows, "$deletedEntity" entries remove them. An expired delta
 * token (400) falls back to a full read. Run it from one process only
 * (the inbound leader). Matching is then one indexed lookup
 * (smsys_pi_match) instead of a Dynamics query per message.
 *
 * Async calls follow pg.h / dataverse.h: 0 and the callback exactly once
 * later, or < 0 and no callback. */
#ifndef SMSYS_PHONE_INDEX_H
#define SMSYS_PHONE_INDEX_H

#include <stddef.h>

#include "smsys/dataverse.h"
#include "smsys/error.h"
#include "smsys/pg.h"

/* One indexed table. Strings borrowed by phone_index_new (copied). */
struct phone_index_table {
    const char *table;   /* logical name: "contact" */
    const char *set;     /* entity set: "contacts" */
    const char *key;     /* primary key column: "contactid" */
    const char *columns; /* phone columns, comma-separated: "mobilephone,telephone1" */
    int has_donotsms;    /* the table has smsys_donotsms */
};

/* The built-in tables: contact (mobilephone, telephone1, telephone2),
 * lead (mobilephone, telephone1), account (telephone1, telephone2,
 * mobilephone). n receives the count. */
const struct phone_index_table *phone_index_defaults(size_t *n);

struct phone_index; /* opaque */

/* Creates an index over pool and dv (both borrowed, must outlive it) for
 * tables (NULL: the defaults). default_country for numbers stored without
 * a country code (NULL: "IR"). Returns 0, -EINVAL or -ENOMEM. */
int phone_index_new(struct pg_pool *pool, struct dv_client *dv,
                    const struct phone_index_table *tables, size_t ntables,
                    const char *default_country, struct phone_index **out);
/* Frees the index; no refresh may be running. */
void phone_index_free(struct phone_index *pi);

/* rows = records read (full or delta) over all tables. */
typedef void (*phone_index_done_cb)(void *ud, int rc, unsigned long rows,
                                    const struct smsys_err *err);

/* Refreshes every table (full read the first time, then deltas). Only one
 * refresh at a time: -EBUSY otherwise. */
int phone_index_refresh(struct phone_index *pi, phone_index_done_cb cb, void *ud);

/* Shutdown: points the callback of the refresh in progress elsewhere and
 * makes it finish after the current table without another Dynamics call.
 * Returns -EINVAL when none runs. */
int phone_index_rebind(struct phone_index *pi, phone_index_done_cb cb, void *ud);

/* The entity set of a table known to the index ("contacts"), or NULL. */
const char *phone_index_set_of(const struct phone_index *pi, const char *table);

#endif
