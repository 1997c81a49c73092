/* Integration tests of the durable multipart MO store (mo_parts.h) on a
 * real PostgreSQL: each test has its own database with sql/ applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/text.h"
#include "../lib/testutil.h"
#include "mo_db.h"

#include <errno.h>

struct fx {
    struct world_pg *db;
    uv_loop_t loop;
    struct pg_pool *pool;
};

static struct fx *fx_open(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->db = *state;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(pg_pool_new(&f->loop, f->db->conninfo, 4, &f->pool), 0);
    return f;
}

static void fx_close(struct fx *f)
{
    if (f->pool)
        pool_close_sync(&f->loop, f->pool);
    assert_int_equal(tu_loop_handles(&f->loop), 0);
    assert_int_equal(tu_loop_close(&f->loop), 0);
    free(f);
}

static void ucs2(const char *s, struct buf *out)
{
    assert_int_equal(text_to_ucs2be(s, strlen(s), out, NULL), 0);
}

/* Parts arrive 3, 1, 2: only the last completes, with the exact text,
 * although the split falls inside a surrogate pair. */
static void test_out_of_order_surrogate(void **state)
{
    struct fx *f = fx_open(state);
    const char *text = "سلام 😀 دنیا";
    struct buf u = {0};
    ucs2(text, &u);
    /* "سلام " is 5 units = 10 bytes; the emoji's high surrogate ends at 12. */
    size_t cut1 = 12, cut2 = 16;
    const uint8_t *b = (const uint8_t *)u.data;
    struct mo_res r;
    assert_int_equal(
        mo_add_sync(&f->loop, f->pool, "98912", 7, 3, 3, 8, b + cut2, u.len - cut2, &r),
        MO_PARTS_STORED);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 7, 3, 1, 8, b, cut1, &r),
                     MO_PARTS_STORED);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 7, 3, 2, 8, b + cut1, cut2 - cut1, &r),
                     MO_PARTS_COMPLETE);
    assert_string_equal(r.text, text);
    assert_string_equal(r.from, "98912");
    assert_string_equal(r.to, "3000");
    assert_int_equal(r.total, 3);
    assert_int_equal(r.present, 3);
    assert_true(r.group_id > 0);
    buf_free(&u);
    fx_close(f);
}

/* A redelivered part is not a second part, before and after completion. */
static void test_redelivery(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 1, 0, "abc", 3, &r),
                     MO_PARTS_STORED);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 1, 0, "abc", 3, &r),
                     MO_PARTS_DUPLICATE);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 2, 0, "def", 3, &r),
                     MO_PARTS_COMPLETE);
    assert_string_equal(r.text, "abcdef");
    int64_t gid = r.group_id;
    /* Redelivered after completion, before done: still a duplicate. */
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 2, 0, "def", 3, &r),
                     MO_PARTS_DUPLICATE);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_done(f->pool, gid, done_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    assert_int_equal(r.rc, 0);
    /* After done, a redelivery of the same bytes is still recognised. */
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 1, 0, "abc", 3, &r),
                     MO_PARTS_DUPLICATE);
    /* The same reference with other bytes is the sender's next message. */
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 9, 2, 1, 0, "xyz", 3, &r),
                     MO_PARTS_STORED);
    char v[32];
    db_value(f->db, "SELECT count(*) FROM smsys_mo_groups", v, sizeof(v));
    assert_string_equal(v, "2");
    fx_close(f);
}

/* A GSM escape (0x1B) at the end of one part and its code at the start of
 * the next join into the euro sign. */
static void test_gsm_escape_split(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    const uint8_t p1[] = {'P', 'r', 'i', 'c', 'e', ' ', 0x1B};
    const uint8_t p2[] = {0x65, '5'};
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "4477", 200, 2, 2, 0, p2, sizeof(p2), &r),
                     MO_PARTS_STORED);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "4477", 200, 2, 1, 0, p1, sizeof(p1), &r),
                     MO_PARTS_COMPLETE);
    assert_string_equal(r.text, "Price €5");
    fx_close(f);
}

/* Two parts, then the pool (the "process") goes away; a new pool gets the
 * third part and completes the message from what was committed. */
static void test_restart(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98935", 1, 3, 1, 0, "one ", 4, &r),
                     MO_PARTS_STORED);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98935", 1, 3, 3, 0, "three", 5, &r),
                     MO_PARTS_STORED);
    pool_close_sync(&f->loop, f->pool);
    assert_int_equal(pg_pool_new(&f->loop, f->db->conninfo, 2, &f->pool), 0);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98935", 1, 3, 2, 0, "two ", 4, &r),
                     MO_PARTS_COMPLETE);
    assert_string_equal(r.text, "one two three");
    fx_close(f);
}

/* All parts at once on four connections: exactly one completes. */
static void test_concurrent_parts(void **state)
{
    struct fx *f = fx_open(state);
    enum { N = 6 };
    struct mo_res r[N];
    char chunk[N][2];
    memset(r, 0, sizeof(r));
    for (unsigned i = 0; i < N; i++) {
        chunk[i][0] = (char)('a' + i);
        struct conn_mo part = {.from = "98911",
                               .to = "3000",
                               .part_ref = 77,
                               .part_total = N,
                               .part_seq = i + 1,
                               .raw = chunk[i],
                               .raw_len = 1};
        assert_int_equal(mo_parts_add(f->pool, "acct-1", &part, add_done_cb, &r[i]), 0);
    }
    int complete = 0, stored = 0;
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(tu_run_until(&f->loop, &r[i].fired, 10000), 0);
        assert_int_equal(r[i].rc, 0);
        if (r[i].outcome == MO_PARTS_COMPLETE) {
            complete++;
            assert_string_equal(r[i].text, "abcdef");
        } else {
            stored += r[i].outcome == MO_PARTS_STORED;
        }
    }
    assert_int_equal(complete, 1);
    assert_int_equal(stored, N - 1);
    fx_close(f);
}

/* A complete group not marked done (crash before mo_parts_done) comes
 * back from sweep; after done it does not. */
static void test_sweep(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    mo_add_sync(&f->loop, f->pool, "98912", 5, 2, 1, 0, "he", 2, &r);
    assert_int_equal(mo_add_sync(&f->loop, f->pool, "98912", 5, 2, 2, 0, "llo", 3, &r),
                     MO_PARTS_COMPLETE);
    int64_t gid = r.group_id;
    mo_add_sync(&f->loop, f->pool, "98912", 6, 2, 1, 0, "x", 1, &r); /* incomplete */
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_sweep(f->pool, list_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 1);
    assert_true(r.list[0].group_id == gid);
    assert_string_equal(r.list[0].text, "hello");
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_done(f->pool, gid, done_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_sweep(f->pool, list_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    assert_int_equal(r.n, 0);
    fx_close(f);
}

/* An incomplete group older than the timeout comes out with the gap
 * marked; a younger one does not. */
static void test_expire(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    struct buf u = {0};
    ucs2("اول", &u);
    mo_add_sync(&f->loop, f->pool, "98912", 3, 4, 1, 8, u.data, u.len, &r);
    buf_reset(&u);
    ucs2("آخر", &u);
    mo_add_sync(&f->loop, f->pool, "98912", 3, 4, 4, 8, u.data, u.len, &r);
    buf_free(&u);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_expire(f->pool, 3600, list_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    assert_int_equal(r.n, 0);
    char v[32];
    db_value(f->db,
             "UPDATE smsys_mo_groups SET created_at = now() - interval '2 hours'"
             " RETURNING id",
             v, sizeof(v));
    memset(&r, 0, sizeof(r));
    assert_int_equal(mo_parts_expire(f->pool, 3600, list_done_cb, &r), 0);
    assert_int_equal(tu_run_until(&f->loop, &r.fired, 10000), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.list[0].total, 4);
    assert_int_equal(r.list[0].present, 2);
    assert_string_equal(r.list[0].text, "اول[…]آخر");
    fx_close(f);
}

static void test_bad_args(void **state)
{
    struct fx *f = fx_open(state);
    struct mo_res r;
    struct conn_mo part = {.from = "1", .to = "2", .part_total = 3, .part_seq = 4};
    assert_int_equal(mo_parts_add(f->pool, "a", &part, add_done_cb, &r), -EINVAL);
    part.part_seq = 0;
    assert_int_equal(mo_parts_add(f->pool, "a", &part, add_done_cb, &r), -EINVAL);
    part.part_seq = 1;
    part.part_total = 0;
    assert_int_equal(mo_parts_add(f->pool, "a", &part, add_done_cb, &r), -EINVAL);
    assert_int_equal(mo_parts_add(f->pool, "a", NULL, add_done_cb, &r), -EINVAL);
    fx_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_out_of_order_surrogate, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_gsm_escape_split, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_restart, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_parts, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sweep, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_expire, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
