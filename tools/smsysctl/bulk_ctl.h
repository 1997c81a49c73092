/* bulk_ctl.h - what cmd_bulk.c shares with cmd_bulk_watch.c: the
 * PostgreSQL connection, bulk id resolution and the one-bulk snapshot.
 * Blocking libpq, as the other PostgreSQL commands: a one-shot CLI has no
 * event loop to keep responsive. */
#ifndef SMSYSCTL_BULK_CTL_H
#define SMSYSCTL_BULK_CTL_H

#include "bulk_view.h"
#include "ctl.h"

#include <libpq-fe.h>

/* Loads the configuration and connects to [postgres] conninfo. Prints why
 * and returns NULL on failure; the caller PQfinish()es the connection. */
PGconn *bulk_db_open(const struct ctl *ctl);

/* Runs one parameterised statement. Prints the server's error and returns
 * NULL on failure; the caller PQclear()s the result. */
PGresult *bulk_db_exec(PGconn *c, const char *sql, int n, const char *const *params);

/* Checks the form of a bulk id argument before anything is opened:
 * CTL_OK, or CTL_USAGE (printed). */
int bulk_check_arg(const struct ctl *ctl, const char *arg);

/* Resolves a bulk id argument (bulkview_id_parse rules) against smsys_bulk.
 * Returns CTL_OK with the canonical id in id and *known = 1; CTL_USAGE
 * (printed) for a malformed argument; CTL_FAIL (printed) when no bulk or
 * several bulks match (the candidates are listed), or on a database error.
 * With allow_unknown, a full GUID that PostgreSQL has not seen yet is
 * CTL_OK with *known = 0 (start: the service reads it from Dynamics). */
int bulk_resolve(const struct ctl *ctl, PGconn *c, const char *arg, int allow_unknown, char id[37],
                 int *known);

/* One bulk as list and watch show it. */
struct bulk_row {
    char id[37];
    char name[256];
    char last_error[512];
    char created[24], updated[24]; /* ISO 8601 UTC */
    struct bulkview v;
};

/* The SELECT list and FROM clause giving one bulk_row per smsys_bulk row
 * b: counters computed live from members and messages. Append a WHERE. */
extern const char bulk_row_sql[];

/* Fills row from row i of a result of bulk_row_sql. */
void bulk_row_read(PGresult *r, int i, struct bulk_row *row);

/* Reads one bulk by canonical id. Returns 1 found, 0 not found, -1 on a
 * database error (printed). */
int bulk_row_get(PGconn *c, const char *id, struct bulk_row *row);

#endif
