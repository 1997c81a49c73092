/* mo_db.h - a fresh database per test with the real migrations applied,
 * and synchronous wrappers around mo_parts.h for tests. Header-only
 * (static functions): each test_*.c is its own binary. */
#ifndef MO_DB_H
#define MO_DB_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smsys/migrate.h"
#include "smsys/mo_parts.h"
#include "smsys/pg.h"
#include "../lib/world.h"

/* A database with sql/ applied (001, 003, ...) as *state (a struct
 * world_pg); db_teardown drops it and frees *state. */
static int db_setup(void **state)
{
    static int seq;
    char tag[32];
    snprintf(tag, sizeof(tag), "mo%d", ++seq);
    struct world_pg *t = world_pg_new(tag, 1);
    if (t->migrations < 1)
        fail_msg("migrate: %d", t->migrations);
    *state = t;
    return 0;
}

#define db_teardown world_pg_teardown

/* One value from the database ("" when no row). */
static inline void db_value(const struct world_pg *t, const char *sql, char *out, size_t len)
{
    world_db_value(t->conninfo, sql, out, len);
}

/* ---- synchronous wrappers ----------------------------------------------- */

struct mo_res {
    int fired, rc;
    enum mo_parts_outcome outcome;
    int64_t group_id;
    unsigned total, present;
    char text[4096], from[32], to[32];
    size_t n; /* list results */
    struct {
        int64_t group_id;
        unsigned total, present;
        char text[1024];
    } list[16];
};

static inline void add_done_cb(void *ud, int rc, enum mo_parts_outcome oc,
                               const struct mo_parts_msg *m, const struct smsys_err *err)
{
    (void)err;
    struct mo_res *r = ud;
    r->fired++;
    r->rc = rc;
    r->outcome = oc;
    if (m) {
        r->group_id = m->group_id;
        r->total = m->total;
        r->present = m->present;
        snprintf(r->text, sizeof(r->text), "%s", m->text);
        snprintf(r->from, sizeof(r->from), "%s", m->from);
        snprintf(r->to, sizeof(r->to), "%s", m->to);
    }
}

static inline void list_done_cb(void *ud, int rc, const struct mo_parts_msg *m, size_t n,
                                const struct smsys_err *err)
{
    (void)err;
    struct mo_res *r = ud;
    r->fired++;
    r->rc = rc;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        r->list[i].group_id = m[i].group_id;
        r->list[i].total = m[i].total;
        r->list[i].present = m[i].present;
        snprintf(r->list[i].text, sizeof(r->list[i].text), "%s", m[i].text);
    }
}

static inline void done_done_cb(void *ud, int rc, const struct smsys_err *err)
{
    (void)err;
    struct mo_res *r = ud;
    r->fired++;
    r->rc = rc;
}

/* Adds one part and waits; returns the outcome (asserts success). */
static inline enum mo_parts_outcome mo_add_sync(uv_loop_t *loop, struct pg_pool *pool,
                                                const char *from, unsigned ref, unsigned total,
                                                unsigned seq, int dc, const void *raw, size_t len,
                                                struct mo_res *r)
{
    memset(r, 0, sizeof(*r));
    struct conn_mo part = {.from = from,
                           .to = "3000",
                           .part_ref = ref,
                           .part_total = total,
                           .part_seq = seq,
                           .raw = raw,
                           .raw_len = len,
                           .data_coding = dc};
    assert_int_equal(mo_parts_add(pool, "acct-1", &part, add_done_cb, r), 0);
    assert_int_equal(tu_run_until(loop, &r->fired, 10000), 0);
    assert_int_equal(r->rc, 0);
    return r->outcome;
}

static inline void pool_closed_cb(void *ud)
{
    *(int *)ud = 1;
}

static inline void pool_close_sync(uv_loop_t *loop, struct pg_pool *pool)
{
    int closed = 0;
    pg_pool_close(pool, pool_closed_cb, &closed);
    assert_int_equal(tu_run_until(loop, &closed, 10000), 0);
}

#endif
