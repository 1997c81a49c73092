/* test_list.c - include/smsys/list.h: links, order, counts, moves. */
#include "smsys/list.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

struct item {
    int v;
    struct list_node node;
};

/* Checks that l holds exactly the values in want, in order, both ways,
 * and that the count agrees. */
static void check(const struct list *l, const int *want, size_t n)
{
    assert_int_equal(l->n, n);
    assert_int_equal(list_empty(l), n == 0);
    size_t i = 0;
    for (struct list_node *p = list_first(l); p; p = list_next(p), i++) {
        assert_true(i < n);
        assert_int_equal(list_entry(p, struct item, node)->v, want[i]);
    }
    assert_int_equal(i, n);
    for (struct list_node *p = list_last(l); p; p = list_prev(p)) {
        assert_true(i > 0);
        assert_int_equal(list_entry(p, struct item, node)->v, want[--i]);
    }
    assert_int_equal(i, 0);
}

static void test_zeroed_is_empty(void **state)
{
    (void)state;
    struct list l = {0};
    check(&l, NULL, 0);
    assert_null(list_first(&l));
    assert_null(list_pop_front(&l));
    assert_null(list_entry(list_first(&l), struct item, node));
    struct list m;
    m.n = 7;
    list_init(&m);
    check(&m, NULL, 0);
}

static void test_push_back_front(void **state)
{
    (void)state;
    struct item it[4] = {{.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    struct list l;
    list_init(&l);
    list_push_back(&l, &it[1].node);
    list_push_back(&l, &it[2].node);
    list_push_front(&l, &it[0].node);
    list_push_back(&l, &it[3].node);
    check(&l, (int[]){1, 2, 3, 4}, 4);
    assert_ptr_equal(list_entry(list_first(&l), struct item, node), &it[0]);
    assert_ptr_equal(list_entry(list_last(&l), struct item, node), &it[3]);
}

static void test_insert_before_after(void **state)
{
    (void)state;
    struct item it[6] = {{.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}, {.v = 5}, {.v = 6}};
    struct list l = {0};
    list_insert_before(&l, NULL, &it[2].node); /* NULL: append */
    list_insert_before(&l, &it[2].node, &it[0].node);
    list_insert_before(&l, &it[2].node, &it[1].node);
    check(&l, (int[]){1, 2, 3}, 3);
    list_insert_after(&l, &it[2].node, &it[4].node); /* after the tail */
    list_insert_after(&l, &it[2].node, &it[3].node);
    check(&l, (int[]){1, 2, 3, 4, 5}, 5);
    list_insert_after(&l, NULL, &it[5].node); /* NULL: prepend */
    check(&l, (int[]){6, 1, 2, 3, 4, 5}, 6);
}

static void test_remove(void **state)
{
    (void)state;
    struct item it[4] = {{.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    struct list l = {0};
    for (int i = 0; i < 4; i++)
        list_push_back(&l, &it[i].node);
    list_remove(&l, &it[1].node); /* middle */
    assert_null(it[1].node.next);
    assert_null(it[1].node.prev);
    check(&l, (int[]){1, 3, 4}, 3);
    list_remove(&l, &it[0].node); /* head */
    check(&l, (int[]){3, 4}, 2);
    list_remove(&l, &it[3].node); /* tail */
    check(&l, (int[]){3}, 1);
    list_remove(&l, &it[2].node); /* last one */
    check(&l, NULL, 0);
    assert_null(l.head);
    assert_null(l.tail);
    /* A removed node may go straight onto a list again. */
    list_push_front(&l, &it[1].node);
    check(&l, (int[]){2}, 1);
}

static void test_pop_front_fifo(void **state)
{
    (void)state;
    struct item it[3] = {{.v = 10}, {.v = 20}, {.v = 30}};
    struct list l = {0};
    for (int i = 0; i < 3; i++)
        list_push_back(&l, &it[i].node);
    int want = 10;
    struct list_node *n;
    while ((n = list_pop_front(&l)) != NULL) {
        assert_int_equal(list_entry(n, struct item, node)->v, want);
        want += 10;
    }
    assert_int_equal(want, 40);
    check(&l, NULL, 0);
    /* list_entry evaluates its node once: one pop, not two. */
    for (int i = 0; i < 3; i++)
        list_push_back(&l, &it[i].node);
    struct item *x = list_entry(list_pop_front(&l), struct item, node);
    assert_ptr_equal(x, &it[0]);
    check(&l, (int[]){20, 30}, 2);
}

/* The move idiom the SMPP session uses: take every node, reset the old
 * head, and the taken list stays intact and independent. */
static void test_move_by_assignment(void **state)
{
    (void)state;
    struct item it[3] = {{.v = 1}, {.v = 2}, {.v = 3}};
    struct list a = {0};
    for (int i = 0; i < 3; i++)
        list_push_back(&a, &it[i].node);
    struct list b = a;
    list_init(&a);
    check(&a, NULL, 0);
    check(&b, (int[]){1, 2, 3}, 3);
    list_remove(&b, &it[0].node);
    list_push_back(&a, &it[0].node);
    check(&a, (int[]){1}, 1);
    check(&b, (int[]){2, 3}, 2);
}

/* An element may sit on two lists through two nodes; removal from one
 * leaves the other alone. */
struct dual {
    int v;
    struct list_node by_a, by_b;
};

static void test_two_nodes(void **state)
{
    (void)state;
    struct dual d[2] = {{.v = 1}, {.v = 2}};
    struct list a = {0}, b = {0};
    list_push_back(&a, &d[0].by_a);
    list_push_back(&a, &d[1].by_a);
    list_push_front(&b, &d[0].by_b);
    list_push_front(&b, &d[1].by_b);
    assert_int_equal(list_entry(list_first(&a), struct dual, by_a)->v, 1);
    assert_int_equal(list_entry(list_first(&b), struct dual, by_b)->v, 2);
    list_remove(&a, &d[0].by_a);
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 2);
    assert_ptr_equal(list_entry(list_last(&b), struct dual, by_b), &d[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_is_empty),     cmocka_unit_test(test_push_back_front),
        cmocka_unit_test(test_insert_before_after), cmocka_unit_test(test_remove),
        cmocka_unit_test(test_pop_front_fifo),      cmocka_unit_test(test_move_by_assignment),
        cmocka_unit_test(test_two_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
