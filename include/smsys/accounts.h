/* accounts.h - the provider accounts (smsys_smssetting) and lines
 * (smsys_smsnumber) of Dynamics, mirrored into smsys_account / smsys_line
 * (sql/002_queue.sql, sql/004_accounts.sql) for the pickup and the
 * connector manager; and the balance written back to the account record.
 *
 * A sync costs two GETs (one per table, $select only, one page) and one
 * PostgreSQL statement that applies the whole snapshot in one transaction
 * (smsys_accounts_sync). Exactly one enabled account ends up with
 * is_default: when Dynamics marks none or several, a warning is logged and
 * the rule of docs/outbound.md picks one deterministically. A sync that
 * changed something issues NOTIFY ACCOUNTS_CHANNEL in its transaction, so
 * the connector manager opens new accounts at once (not a poll later).
 *
 * Rules: calls with a callback return 0 and call it exactly once, later,
 * or return < 0 and never call it. Arguments are borrowed for the call.
 * The queue (for its pool) and the client are borrowed and must outlive
 * the object; free it only when no call is in flight (accounts_busy). */
#ifndef SMSYS_ACCOUNTS_H
#define SMSYS_ACCOUNTS_H

#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"

/* NOTIFY channel of a sync that changed smsys_account or smsys_line; the
 * payload is empty. */
#define ACCOUNTS_CHANNEL "smsys_accounts"

struct pg_pool;
struct dv_client;
struct accounts;

struct accounts_result {
    int accounts; /* rows read from Dynamics */
    int lines;
    int changed;         /* rows that changed in PostgreSQL (0: nothing new) */
    int marked_default;  /* enabled accounts Dynamics marks as default */
    char default_id[37]; /* effective default, "" when no account is enabled */
};

typedef void (*accounts_sync_cb)(int rc, const struct accounts_result *res,
                                 const struct smsys_err *err, void *ud);
typedef void (*accounts_status_cb)(int rc, const struct smsys_err *err, void *ud);

int accounts_new(uv_loop_t *loop, struct pg_pool *pool, struct dv_client *dv,
                 struct accounts **out);
void accounts_free(struct accounts *a);
int accounts_busy(const struct accounts *a);

/* One sync. -EBUSY while one runs. On failure nothing changes in
 * PostgreSQL (the previous snapshot stays in use). */
int accounts_sync(struct accounts *a, accounts_sync_cb cb, void *ud);

/* PATCHes smsys_balance, smsys_balanceunit and smsys_balanceupdatedon
 * (updated_unix_s, 0 = now) on account account_id (If-Match: *, so a
 * deleted account is SMSYS_ENOTFOUND, never re-created). unit may be NULL.
 * One request. */
int accounts_write_balance(struct dv_client *dv, const char *account_id, double balance,
                           const char *unit, int64_t updated_unix_s, accounts_status_cb cb,
                           void *ud);

#endif
