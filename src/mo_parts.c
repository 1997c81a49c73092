/* mo_parts.c - durable reassembly of multipart MO SMS (mo_parts.h).
 *
 * mo_parts_add runs one transaction on a pinned connection:
 *   BEGIN;
 *   A: upsert the open group of the key, unless the part is a redelivery
 *      of a group already done (then no row: DUPLICATE);
 *      ON CONFLICT DO UPDATE locks the group row, so concurrent parts of
 *      one group run one after the other;
 *   B: insert the part, ON CONFLICT DO NOTHING (a redelivery inserts 0);
 *   C: read all parts of the group (a new statement, so it sees parts
 *      committed by the transaction that held the lock before us);
 *   COMMIT.
 * Only after COMMIT succeeds does the callback say STORED/COMPLETE. */
#include "smsys/mo_parts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/pg.h"
#include "smsys/text.h"
#include "smsys/util.h"

#define MISSING "[\xE2\x80\xA6]" /* "[…]" */

static const char SQL_GROUP[] =
    "WITH dup AS (SELECT 1 FROM smsys_mo_groups g JOIN smsys_mo_parts p ON p.group_id = g.id"
    " WHERE g.account_id = $1 AND g.src = $2 AND g.dst = $3 AND g.ref = $4 AND g.total = $5"
    " AND g.done_at IS NOT NULL AND g.done_at > now() - interval '1 hour'"
    " AND p.seq = $6 AND p.payload = $7::bytea)"
    " INSERT INTO smsys_mo_groups (account_id, src, dst, ref, total)"
    " SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM dup)"
    " ON CONFLICT (account_id, src, dst, ref, total) WHERE done_at IS NULL"
    " DO UPDATE SET last_at = now() RETURNING id, extract(epoch FROM created_at)::bigint";
static const char SQL_PART[] =
    "INSERT INTO smsys_mo_parts (group_id, seq, data_coding, payload)"
    " VALUES ($1, $2, $3, $4::bytea) ON CONFLICT DO NOTHING RETURNING seq";
static const char SQL_PARTS[] = "SELECT seq, data_coding, encode(payload, 'hex')"
                                " FROM smsys_mo_parts WHERE group_id = $1 ORDER BY seq";
/* Rows: group id, account, src, dst, total, created (unix), seq, dc, hex. */
#define SQL_LIST_COLS                                                                              \
    "SELECT g.id, g.account_id, g.src, g.dst, g.total,"                                            \
    " extract(epoch FROM g.created_at)::bigint, p.seq, p.data_coding, encode(p.payload, 'hex')"    \
    " FROM smsys_mo_groups g LEFT JOIN smsys_mo_parts p ON p.group_id = g.id"
static const char SQL_SWEEP[] =
    SQL_LIST_COLS " WHERE g.id IN (SELECT g2.id FROM smsys_mo_groups g2"
                  " WHERE g2.done_at IS NULL AND (SELECT count(*) FROM smsys_mo_parts p2"
                  " WHERE p2.group_id = g2.id) = g2.total ORDER BY g2.id LIMIT 1000)"
                  " ORDER BY g.id, p.seq";
static const char SQL_EXPIRE[] =
    SQL_LIST_COLS " WHERE g.id IN (SELECT g2.id FROM smsys_mo_groups g2 WHERE g2.done_at IS NULL"
                  " AND g2.created_at < now() - make_interval(secs => $1::int)"
                  " ORDER BY g2.id LIMIT 1000) ORDER BY g.id, p.seq";
static const char SQL_PURGE[] =
    "DELETE FROM smsys_mo_groups WHERE done_at < now() - interval '1 hour'";
static const char SQL_DONE[] = "UPDATE smsys_mo_groups SET done_at = now() WHERE id = $1"
                               " AND done_at IS NULL";

/* ---- decoding ----------------------------------------------------------- */

int mo_parts_decode(int dc, const void *raw, size_t len, struct buf *out)
{
    const uint8_t *p = raw;
    if (dc == 8)
        return text_from_ucs2be(p, len, 0, out, NULL);
    if (dc == 0 || ((dc & 0xF0) == 0xF0 && (dc & 0x04) == 0))
        return text_from_gsm7(p, len, 0, out, NULL);
    for (size_t i = 0; i < len; i++) {
        char u[4];
        size_t n = text_utf8_encode(p[i], u);
        int rc = buf_append(out, u, n);
        if (rc)
            return rc;
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Appends the bytes of a hex string to out. */
static int unhex(const char *h, struct buf *out)
{
    for (; h[0] && h[1]; h += 2) {
        int a = hexval(h[0]), b = hexval(h[1]);
        if (a < 0 || b < 0)
            return -EINVAL;
        char byte = (char)(a << 4 | b);
        int rc = buf_append(out, &byte, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* PostgreSQL bytea input "\x0a0b..." for raw bytes. */
static char *bytea_param(const void *raw, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * len + 3);
    if (s == NULL)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    const uint8_t *p = raw;
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = digits[p[i] >> 4];
        s[3 + 2 * i] = digits[p[i] & 15];
    }
    s[2 + 2 * len] = '\0';
    return s;
}

/* One stored part as read back: seq, data_coding, hex payload (borrowed
 * from a PGresult). */
struct row {
    int seq, dc;
    const char *hex;
};

/* Joins parts 1..total into UTF-8: runs of consecutive present parts with
 * one data_coding are joined as bytes first and decoded together (a
 * surrogate pair or an escape split across parts survives); each run of
 * missing parts becomes MISSING. rows are sorted by seq. */
static int join_text(const struct row *rows, size_t n, unsigned total, struct buf *out)
{
    struct buf raw = {0};
    size_t i = 0;
    int rc = 0;
    for (unsigned seq = 1; seq <= total && rc == 0;) {
        if (i >= n || rows[i].seq != (int)seq) {
            rc = buf_puts(out, MISSING);
            while (seq <= total && (i >= n || rows[i].seq != (int)seq))
                seq++;
            continue;
        }
        int dc = rows[i].dc;
        buf_reset(&raw);
        while (rc == 0 && i < n && rows[i].seq == (int)seq && rows[i].dc == dc) {
            rc = unhex(rows[i].hex, &raw);
            i++;
            seq++;
        }
        if (rc == 0)
            rc = mo_parts_decode(dc, raw.data, raw.len, out);
    }
    buf_free(&raw);
    if (rc == 0)
        rc = buf_append(out, "", 0); /* NUL-terminated even when empty */
    return rc;
}

static int64_t col_int(const PGresult *res, size_t row, int col)
{
    long long v = 0;
    if (util_parse_int(PQgetvalue(res, (int)row, col), INT64_MIN, INT64_MAX, &v) != 0)
        return 0;
    return (int64_t)v;
}

/* ---- add ---------------------------------------------------------------- */

struct add_ctx {
    struct pg_pool *pool;
    struct pg_conn *conn;
    mo_parts_add_cb cb;
    void *ud;
    char *account, *from, *to, *payload;
    char ref[16], total[16], seq[16], dc[16], gid[24];
    unsigned ntotal;
    int64_t group_id, first_at;
    int rc, no_group, inserted;
    int refs;        /* statements queued on conn whose callback is due */
    int finish_idle; /* a query could not be queued: finish when refs is 0 */
    struct smsys_err err;
    struct buf text;
    unsigned present;
};

static void add_free(struct add_ctx *a)
{
    free(a->account);
    free(a->from);
    free(a->to);
    free(a->payload);
    buf_free(&a->text);
    free(a);
}

static void add_note(struct add_ctx *a, int rc, const struct smsys_err *err)
{
    if (rc != 0 && a->rc == 0) {
        a->rc = rc;
        if (err)
            a->err = *err;
        else
            smsys_err_set(&a->err, rc, "mo_parts: %s", smsys_strerror(rc));
    }
}

static void add_finish(struct add_ctx *a)
{
    if (a->conn)
        pg_release(a->conn); /* rolls back when the transaction failed */
    a->conn = NULL;
    if (a->rc != 0) {
        a->cb(a->ud, a->rc, MO_PARTS_STORED, NULL, &a->err);
    } else if (a->no_group || !a->inserted) {
        a->cb(a->ud, 0, MO_PARTS_DUPLICATE, NULL, NULL);
    } else if (a->present == a->ntotal) {
        struct mo_parts_msg m = {.group_id = a->group_id,
                                 .account_id = a->account,
                                 .from = a->from,
                                 .to = a->to,
                                 .text = a->text.data,
                                 .total = a->ntotal,
                                 .present = a->present,
                                 .first_at = a->first_at};
        a->cb(a->ud, 0, MO_PARTS_COMPLETE, &m, NULL);
    } else {
        a->cb(a->ud, 0, MO_PARTS_STORED, NULL, NULL);
    }
    add_free(a);
}

/* Queues a statement on the pinned connection, counting its callback. */
static int add_q(struct add_ctx *a, const char *sql, int n, const char *const *p, pg_result_cb cb)
{
    int rc = pg_conn_query(a->conn, sql, n, p, cb, a);
    if (rc == 0)
        a->refs++;
    return rc;
}

/* A callback of add_q ran; finishes a failed add once nothing is due. */
static void add_unref(struct add_ctx *a)
{
    if (--a->refs == 0 && a->finish_idle)
        add_finish(a);
}

/* Gives up: now when no callback is due, else when the last one ran
 * (pg_release completes queued statements first, with a still alive). */
static void add_fail(struct add_ctx *a, int rc)
{
    add_note(a, rc, NULL);
    if (a->refs == 0)
        add_finish(a);
    else
        a->finish_idle = 1;
}

static void commit_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct add_ctx *a = ud;
    add_note(a, rc, err);
    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    if (rc == 0 && a->rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0)
        add_note(a, SMSYS_EPG, NULL);
    a->refs--;
    add_finish(a);
}

static void note_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    add_note(ud, rc, err);
    add_unref(ud);
}

static void part_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct add_ctx *a = ud;
    add_note(a, rc, err);
    if (rc == 0)
        a->inserted = PQntuples(res) == 1;
    add_unref(a);
}

static void parts_join(struct add_ctx *a, PGresult *res);

static void parts_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct add_ctx *a = ud;
    add_note(a, rc, err);
    if (rc == 0 && a->rc == 0)
        parts_join(a, res);
    add_unref(a);
}

static void parts_join(struct add_ctx *a, PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    a->present = (unsigned)n;
    if (!a->inserted || n != a->ntotal)
        return;
    struct row *rows = calloc(n, sizeof(*rows));
    if (rows == NULL) {
        add_note(a, -ENOMEM, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        rows[i].seq = (int)col_int(res, i, 0);
        rows[i].dc = (int)col_int(res, i, 1);
        rows[i].hex = PQgetvalue(res, (int)i, 2);
    }
    if (join_text(rows, n, a->ntotal, &a->text) != 0)
        add_note(a, -ENOMEM, NULL);
    free(rows);
}

static void group_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct add_ctx *a = ud;
    add_note(a, rc, err);
    int q = a->rc;
    if (q == 0 && PQntuples(res) == 0)
        a->no_group = 1; /* redelivery of a part of a group already done */
    if (q == 0 && !a->no_group) {
        a->group_id = col_int(res, 0, 0);
        a->first_at = col_int(res, 0, 1);
        snprintf(a->gid, sizeof(a->gid), "%" PRId64, a->group_id);
        const char *pp[] = {a->gid, a->seq, a->dc, a->payload};
        const char *gp[] = {a->gid};
        q = add_q(a, SQL_PART, 4, pp, part_cb);
        if (q == 0)
            q = add_q(a, SQL_PARTS, 1, gp, parts_cb);
        add_note(a, q, NULL);
    }
    if (q == 0)
        q = add_q(a, a->rc ? "ROLLBACK" : "COMMIT", 0, NULL, commit_cb);
    if (q != 0) {
        add_note(a, q, NULL);
        a->finish_idle = 1;
    }
    add_unref(a);
}

static void acquired_cb(int rc, struct pg_conn *conn, const struct smsys_err *err, void *ud)
{
    struct add_ctx *a = ud;
    if (rc != 0) {
        add_note(a, rc, err);
        add_finish(a);
        return;
    }
    a->conn = conn;
    const char *gp[] = {a->account, a->from, a->to, a->ref, a->total, a->seq, a->payload};
    int q = add_q(a, "BEGIN", 0, NULL, note_cb);
    if (q == 0)
        q = add_q(a, SQL_GROUP, 7, gp, group_cb);
    if (q != 0)
        add_fail(a, q);
}

int mo_parts_add(struct pg_pool *pool, const char *account_id, const struct conn_mo *part,
                 mo_parts_add_cb cb, void *ud)
{
    if (pool == NULL || account_id == NULL || part == NULL || cb == NULL || part->from == NULL ||
        part->to == NULL || part->part_total < 1 || part->part_total > 255 || part->part_seq < 1 ||
        part->part_seq > part->part_total || (part->raw == NULL && part->raw_len > 0) ||
        part->raw_len > 65536)
        return -EINVAL;
    struct add_ctx *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->pool = pool;
    a->cb = cb;
    a->ud = ud;
    a->ntotal = part->part_total;
    a->account = strdup(account_id);
    a->from = strdup(part->from);
    a->to = strdup(part->to);
    a->payload = bytea_param(part->raw, part->raw_len);
    snprintf(a->ref, sizeof(a->ref), "%u", part->part_ref);
    snprintf(a->total, sizeof(a->total), "%u", part->part_total);
    snprintf(a->seq, sizeof(a->seq), "%u", part->part_seq);
    snprintf(a->dc, sizeof(a->dc), "%d", part->data_coding);
    if (!a->account || !a->from || !a->to || !a->payload) {
        add_free(a);
        return -ENOMEM;
    }
    int rc = pg_acquire(pool, acquired_cb, a);
    if (rc != 0)
        add_free(a);
    return rc;
}

/* ---- done, sweep, expire ------------------------------------------------ */

struct op_ctx {
    struct pg_pool *pool;
    mo_parts_done_cb done_cb;
    mo_parts_list_cb list_cb;
    void *ud;
    char arg[24];
};

static void done_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)res;
    struct op_ctx *o = ud;
    o->done_cb(o->ud, rc, err);
    free(o);
}

/* A request context holding arg (NULL: none) for $1, or NULL when out of
 * memory. The query's callback frees it; op_start frees it when the query
 * cannot start. */
static struct op_ctx *op_new(struct pg_pool *pool, void *ud, const char *arg)
{
    struct op_ctx *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->pool = pool;
    o->ud = ud;
    if (arg)
        snprintf(o->arg, sizeof(o->arg), "%s", arg);
    return o;
}

/* Starts sql with o->arg as its only parameter when nparams is 1. Returns
 * 0 (cb later) or a negative code, o freed and no callback. */
static int op_start(struct op_ctx *o, const char *sql, int nparams, pg_result_cb cb)
{
    const char *p[] = {o->arg};
    int rc = pg_query(o->pool, sql, nparams, p, cb, o);
    if (rc != 0)
        free(o);
    return rc;
}

int mo_parts_done(struct pg_pool *pool, int64_t group_id, mo_parts_done_cb cb, void *ud)
{
    if (pool == NULL || cb == NULL)
        return -EINVAL;
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, group_id);
    struct op_ctx *o = op_new(pool, ud, id);
    if (o == NULL)
        return -ENOMEM;
    o->done_cb = cb;
    return op_start(o, SQL_DONE, 1, done_cb);
}

/* Turns rows of SQL_LIST_COLS into messages and calls back. */
static void list_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct op_ctx *o = ud;
    if (rc != 0) {
        o->list_cb(o->ud, rc, NULL, 0, err);
        free(o);
        return;
    }
    size_t nr = (size_t)PQntuples(res);
    struct mo_parts_msg *msgs = calloc(nr ? nr : 1, sizeof(*msgs));
    struct buf *texts = calloc(nr ? nr : 1, sizeof(*texts));
    struct row *rows = calloc(nr ? nr : 1, sizeof(*rows));
    size_t nm = 0;
    int bad = msgs == NULL || texts == NULL || rows == NULL;
    for (size_t i = 0; i < nr && !bad;) {
        size_t j = i, k = 0;
        int64_t gid = col_int(res, i, 0);
        while (j < nr && col_int(res, j, 0) == gid) {
            if (!PQgetisnull(res, (int)j, 6)) {
                rows[k].seq = (int)col_int(res, j, 6);
                rows[k].dc = (int)col_int(res, j, 7);
                rows[k].hex = PQgetvalue(res, (int)j, 8);
                k++;
            }
            j++;
        }
        struct mo_parts_msg *m = &msgs[nm];
        m->group_id = gid;
        m->account_id = PQgetvalue(res, (int)i, 1);
        m->from = PQgetvalue(res, (int)i, 2);
        m->to = PQgetvalue(res, (int)i, 3);
        m->total = (unsigned)col_int(res, i, 4);
        m->first_at = col_int(res, i, 5);
        m->present = (unsigned)k;
        if (join_text(rows, k, m->total, &texts[nm]) != 0)
            bad = 1;
        m->text = texts[nm].data;
        nm++;
        i = j;
    }
    if (bad) {
        struct smsys_err e;
        smsys_err_set(&e, -ENOMEM, "mo_parts: out of memory");
        o->list_cb(o->ud, -ENOMEM, NULL, 0, &e);
    } else {
        o->list_cb(o->ud, 0, msgs, nm, NULL);
    }
    for (size_t i = 0; texts && i < nm; i++)
        buf_free(&texts[i]);
    free(texts);
    free(msgs);
    free(rows);
    free(o);
}

static int list_start(struct pg_pool *pool, const char *sql, const char *arg, mo_parts_list_cb cb,
                      void *ud)
{
    if (pool == NULL || cb == NULL)
        return -EINVAL;
    struct op_ctx *o = op_new(pool, ud, arg);
    if (o == NULL)
        return -ENOMEM;
    o->list_cb = cb;
    return op_start(o, sql, arg ? 1 : 0, list_cb);
}

int mo_parts_sweep(struct pg_pool *pool, mo_parts_list_cb cb, void *ud)
{
    return list_start(pool, SQL_SWEEP, NULL, cb, ud);
}

static void purge_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    (void)rc;
    (void)res;
    (void)err; /* purging is housekeeping: a failure only delays it */
    struct op_ctx *o = ud;
    const char *p[] = {o->arg};
    rc = pg_query(o->pool, SQL_EXPIRE, 1, p, list_cb, o);
    if (rc != 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "mo_parts: %s", smsys_strerror(rc));
        o->list_cb(o->ud, rc, NULL, 0, &e);
        free(o);
    }
}

int mo_parts_expire(struct pg_pool *pool, unsigned older_than_s, mo_parts_list_cb cb, void *ud)
{
    if (pool == NULL || cb == NULL || older_than_s > 0x7FFFFFFFu)
        return -EINVAL;
    char secs[16];
    snprintf(secs, sizeof(secs), "%u", older_than_s);
    struct op_ctx *o = op_new(pool, ud, secs);
    if (o == NULL)
        return -ENOMEM;
    o->list_cb = cb;
    return op_start(o, SQL_PURGE, 0, purge_cb); /* then SQL_EXPIRE with secs */
}
