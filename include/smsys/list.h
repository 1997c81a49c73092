/* list.h - intrusive doubly-linked list.
 *
 * The element embeds a `struct list_node`; the list links those nodes and
 * recovers the element with list_entry() (util.h's container_of, but NULL
 * in gives NULL out). Every operation is O(1); only the walks a caller
 * writes with list_first() / list_next() take longer.
 *
 * Ownership: the list never allocates and never frees. It borrows the
 * nodes it links; whoever allocated an element frees it, after removing
 * it from every list it is on. A node is on at most one list at a time.
 *
 * The list is NULL-terminated at both ends (not circular), so a zeroed
 * `struct list` is a valid empty list, and a list may be moved by plain
 * assignment (`struct list tmp = *l; list_init(l);`) because no node
 * points back at the list head. Not thread-safe: one event loop owns it. */
#ifndef SMSYS_LIST_H
#define SMSYS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *next, *prev;
};

struct list {
    struct list_node *head, *tail;
    size_t n; /* nodes linked, kept so callers need no walk to count */
};

/* The element of type `type` that embeds `node` as `member`; NULL stays
 * NULL, so `list_entry(list_pop_front(l), ...)` is safe on an empty list.
 * `node` is evaluated once and must be a `struct list_node *`. */
#define list_entry(node, type, member) ((type *)list_entry_at_((node), offsetof(type, member)))

static inline void *list_entry_at_(struct list_node *n, size_t off)
{
    return n ? (void *)((char *)n - off) : NULL;
}

/* Makes l empty. Nodes it held are forgotten, not touched. */
static inline void list_init(struct list *l)
{
    l->head = l->tail = NULL;
    l->n = 0;
}

static inline bool list_empty(const struct list *l)
{
    return l->head == NULL;
}

/* The first / last node, or NULL when the list is empty. */
static inline struct list_node *list_first(const struct list *l)
{
    return l->head;
}

static inline struct list_node *list_last(const struct list *l)
{
    return l->tail;
}

/* The node after / before n, or NULL at the end. */
static inline struct list_node *list_next(const struct list_node *n)
{
    return n->next;
}

static inline struct list_node *list_prev(const struct list_node *n)
{
    return n->prev;
}

/* Links n at the end. n must not be on a list. */
static inline void list_push_back(struct list *l, struct list_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    l->n++;
}

/* Links n at the front. n must not be on a list. */
static inline void list_push_front(struct list *l, struct list_node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
    l->n++;
}

/* Links n just before `at`, which is on l; at == NULL appends. */
static inline void list_insert_before(struct list *l, struct list_node *at, struct list_node *n)
{
    if (at == NULL) {
        list_push_back(l, n);
        return;
    }
    n->next = at;
    n->prev = at->prev;
    if (at->prev)
        at->prev->next = n;
    else
        l->head = n;
    at->prev = n;
    l->n++;
}

/* Links n just after `at`, which is on l; at == NULL prepends. */
static inline void list_insert_after(struct list *l, struct list_node *at, struct list_node *n)
{
    if (at == NULL) {
        list_push_front(l, n);
        return;
    }
    list_insert_before(l, at->next, n);
}

/* Unlinks n, which must be on l, and clears its links. The element is
 * the caller's again. */
static inline void list_remove(struct list *l, struct list_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->next = n->prev = NULL;
    l->n--;
}

/* Unlinks and returns the first node, or NULL when l is empty. */
static inline struct list_node *list_pop_front(struct list *l)
{
    struct list_node *n = l->head;
    if (n)
        list_remove(l, n);
    return n;
}

#endif
