/* store.c - tables, rows, the GUID index, versions, tombstones, N:N links
 * and an undo log for atomic changesets. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvemu.h"

void store_init(struct store *st)
{
    memset(st, 0, sizeof(*st));
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows_slots; i++) {
        if (t->rows[i]) {
            cJSON_Delete(t->rows[i]->obj);
            free(t->rows[i]);
        }
    }
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].targets);
    }
    free(t->cols);
    free(t->rows);
    free(t->index);
    free(t->tomb);
    free(t->logical);
    free(t->set);
    free(t->pk);
    free(t->primary_name);
    free(t);
}

void store_table_free(struct table *t)
{
    if (t)
        table_free(t);
}

void store_free(struct store *st)
{
    for (size_t i = 0; i < st->ntables; i++)
        table_free(st->tables[i]);
    free(st->tables);
    for (size_t i = 0; i < st->nlinksets; i++) {
        free(st->linksets[i]->ids);
        free(st->linksets[i]->index);
        free(st->linksets[i]);
    }
    free(st->linksets);
    cJSON_Delete(st->undo);
    free(st->tomb_at_begin);
    memset(st, 0, sizeof(*st));
}

int store_add_table(struct store *st, struct table *t)
{
    struct table **n = realloc(st->tables, (st->ntables + 1) * sizeof(*n));
    if (n == NULL) {
        table_free(t);
        return -ENOMEM;
    }
    st->tables = n;
    n[st->ntables++] = t;
    return 0;
}

struct table *store_by_set(const struct store *st, const char *set)
{
    for (size_t i = 0; i < st->ntables; i++)
        if (strcmp(st->tables[i]->set, set) == 0)
            return st->tables[i];
    return NULL;
}

struct table *store_by_logical(const struct store *st, const char *logical)
{
    for (size_t i = 0; i < st->ntables; i++)
        if (strcmp(st->tables[i]->logical, logical) == 0)
            return st->tables[i];
    return NULL;
}

int guid_valid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

void guid_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 36; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int index_grow(struct table *t)
{
    size_t ncap = t->index_cap ? t->index_cap * 2 : 1024;
    struct row **ni = calloc(ncap, sizeof(*ni));
    if (ni == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->nrows_slots; i++) {
        struct row *r = t->rows[i];
        if (r == NULL)
            continue;
        size_t j = hash_id(r->id) & (ncap - 1);
        while (ni[j])
            j = (j + 1) & (ncap - 1);
        ni[j] = r;
    }
    free(t->index);
    t->index = ni;
    t->index_cap = ncap;
    t->index_used = t->live;
    return 0;
}

struct row *store_get(const struct table *t, const char *id)
{
    if (t->index_cap == 0)
        return NULL;
    size_t j = hash_id(id) & (t->index_cap - 1);
    while (t->index[j]) {
        if (memcmp(t->index[j]->id, id, 36) == 0)
            return t->index[j];
        j = (j + 1) & (t->index_cap - 1);
    }
    return NULL;
}

static void undo_record(struct store *st, struct table *t, const char *id)
{
    if (st->undo == NULL)
        return;
    /* only the first state of a row in a transaction matters */
    char key[256];
    snprintf(key, sizeof(key), "%s\x1f%s", t->set, id);
    if (cJSON_GetObjectItemCaseSensitive(st->undo, key))
        return;
    struct row *r = store_get(t, id);
    cJSON *e = cJSON_CreateObject();
    if (r) {
        cJSON_AddItemToObject(e, "row", cJSON_Duplicate(r->obj, 1));
        cJSON_AddNumberToObject(e, "v", (double)r->version);
    }
    cJSON_AddItemToObject(st->undo, key, e);
}

static void notify(struct store *st, const char *op, const struct table *t, const char *id,
                   const cJSON *row)
{
    if (st->on_change && st->undo == NULL)
        st->on_change(st->on_change_ud, op, t, id, row);
}

struct row *store_put(struct store *st, struct table *t, const char *id, cJSON *obj)
{
    undo_record(st, t, id);
    struct row *r = store_get(t, id);
    if (r) {
        cJSON_Delete(r->obj);
        r->obj = obj;
        r->version = ++st->version;
        notify(st, "put", t, id, obj);
        return r;
    }
    if ((t->index_used + 1) * 2 > t->index_cap && index_grow(t) != 0)
        goto fail;
    if (t->nrows_slots == t->cap_rows) {
        size_t ncap = t->cap_rows ? t->cap_rows * 2 : 256;
        struct row **nr = realloc(t->rows, ncap * sizeof(*nr));
        if (nr == NULL)
            goto fail;
        t->rows = nr;
        t->cap_rows = ncap;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto fail;
    memcpy(r->id, id, 36);
    r->id[36] = '\0';
    r->obj = obj;
    r->version = ++st->version;
    r->slot = t->nrows_slots;
    t->rows[t->nrows_slots++] = r;
    t->live++;
    size_t j = hash_id(r->id) & (t->index_cap - 1);
    while (t->index[j])
        j = (j + 1) & (t->index_cap - 1);
    t->index[j] = r;
    t->index_used++;
    notify(st, "put", t, id, obj);
    return r;
fail:
    cJSON_Delete(obj);
    return NULL;
}

void store_touch(struct store *st, struct table *t, struct row *r)
{
    r->version = ++st->version;
    notify(st, "put", t, r->id, r->obj);
}

/* Removes r from the index by re-inserting the rest of its cluster. */
static void index_remove(struct table *t, struct row *r)
{
    size_t mask = t->index_cap - 1;
    size_t j = hash_id(r->id) & mask;
    while (t->index[j] != r)
        j = (j + 1) & mask;
    t->index[j] = NULL;
    t->index_used--;
    for (size_t k = (j + 1) & mask; t->index[k]; k = (k + 1) & mask) {
        struct row *m = t->index[k];
        t->index[k] = NULL;
        size_t p = hash_id(m->id) & mask;
        while (t->index[p])
            p = (p + 1) & mask;
        t->index[p] = m;
    }
}

int store_delete(struct store *st, struct table *t, const char *id)
{
    struct row *r = store_get(t, id);
    if (r == NULL)
        return -ENOENT;
    undo_record(st, t, id);
    index_remove(t, r);
    t->rows[r->slot] = NULL;
    t->live--;
    if (t->ntomb == t->cap_tomb) {
        size_t ncap = t->cap_tomb ? t->cap_tomb * 2 : 64;
        struct tombstone *nt = realloc(t->tomb, ncap * sizeof(*nt));
        if (nt) {
            t->tomb = nt;
            t->cap_tomb = ncap;
        }
    }
    if (t->ntomb < t->cap_tomb) {
        memcpy(t->tomb[t->ntomb].id, r->id, 37);
        t->tomb[t->ntomb].version = ++st->version;
        t->ntomb++;
    }
    notify(st, "del", t, id, NULL);
    cJSON_Delete(r->obj);
    free(r);
    return 0;
}

void store_begin(struct store *st)
{
    if (st->depth++ > 0)
        return;
    cJSON_Delete(st->undo);
    st->undo = cJSON_CreateObject();
    free(st->tomb_at_begin);
    st->tomb_at_begin = calloc(st->ntables ? st->ntables : 1, sizeof(size_t));
    st->ntables_at_begin = st->tomb_at_begin ? st->ntables : 0;
    for (size_t i = 0; i < st->ntables_at_begin; i++)
        st->tomb_at_begin[i] = st->tables[i]->ntomb;
}

/* Commits: the journal hears about every row touched, in its final state. */
void store_commit(struct store *st)
{
    if (st->depth > 0 && --st->depth > 0)
        return;
    cJSON *u = st->undo;
    st->undo = NULL;
    if (u == NULL)
        return;
    cJSON *e;
    cJSON_ArrayForEach(e, u)
    {
        char *sep = strchr(e->string, '\x1f');
        if (sep == NULL)
            continue;
        *sep = '\0';
        struct table *t = store_by_set(st, e->string);
        if (t == NULL)
            continue;
        struct row *r = store_get(t, sep + 1);
        if (r)
            notify(st, "put", t, r->id, r->obj);
        else
            notify(st, "del", t, sep + 1, NULL);
    }
    cJSON_Delete(u);
}

void store_rollback(struct store *st)
{
    if (st->depth > 0 && --st->depth > 0)
        return;
    cJSON *u = st->undo;
    st->undo = NULL;
    if (u == NULL)
        return;
    /* nothing of a rolled-back transaction reached the journal */
    void (*saved)(void *, const char *, const struct table *, const char *, const cJSON *) =
        st->on_change;
    st->on_change = NULL;
    cJSON *e;
    cJSON_ArrayForEach(e, u)
    {
        char *sep = strchr(e->string, '\x1f');
        if (sep == NULL)
            continue;
        *sep = '\0';
        struct table *t = store_by_set(st, e->string);
        if (t == NULL)
            continue;
        const char *id = sep + 1;
        cJSON *old = cJSON_GetObjectItemCaseSensitive(e, "row");
        if (store_get(t, id))
            store_delete(st, t, id);
        if (old) {
            struct row *r = store_put(st, t, id, cJSON_Duplicate(old, 1));
            if (r)
                r->version = (uint64_t)cJSON_GetObjectItemCaseSensitive(e, "v")->valuedouble;
        }
    }
    /* tables created inside the transaction are not in the array */
    for (size_t i = 0; i < st->ntables_at_begin && i < st->ntables; i++)
        if (st->tomb_at_begin[i] < st->tables[i]->ntomb)
            st->tables[i]->ntomb = st->tomb_at_begin[i];
    st->on_change = saved;
    cJSON_Delete(u);
}

/* N:N links: one linkset per (nav, left) with its right ids in insertion
 * order (so paging by position is stable) and an open-addressing hash of
 * positions (so adding 100,000 members to a list is linear, not
 * quadratic). */
static uint32_t guid_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 36 && id[i]; i++)
        h = (h ^ (unsigned char)id[i]) * 16777619u;
    return h;
}

static int linkset_rehash(struct linkset *ls, size_t cap)
{
    uint32_t *ix = calloc(cap, sizeof(*ix));
    if (ix == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ls->n; i++) {
        size_t h = guid_hash(ls->ids[i]) & (cap - 1);
        while (ix[h])
            h = (h + 1) & (cap - 1);
        ix[h] = (uint32_t)i + 1;
    }
    free(ls->index);
    ls->index = ix;
    ls->index_cap = cap;
    return 0;
}

/* Position of right in ls, or -1. */
static long linkset_find(const struct linkset *ls, const char *right)
{
    if (ls->index_cap == 0)
        return -1;
    size_t h = guid_hash(right) & (ls->index_cap - 1);
    while (ls->index[h]) {
        uint32_t pos = ls->index[h] - 1;
        if (memcmp(ls->ids[pos], right, 36) == 0)
            return (long)pos;
        h = (h + 1) & (ls->index_cap - 1);
    }
    return -1;
}

static struct linkset *linkset_get(const struct store *st, const char *nav, const char *left)
{
    for (size_t i = 0; i < st->nlinksets; i++)
        if (strcmp(st->linksets[i]->left, left) == 0 && strcmp(st->linksets[i]->nav, nav) == 0)
            return st->linksets[i];
    return NULL;
}

static void link_notify(struct store *st, const char *op, const char *nav, const char *left,
                        const char *right)
{
    if (st->on_change == NULL)
        return;
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "nav", nav);
    cJSON_AddStringToObject(l, "left", left);
    cJSON_AddStringToObject(l, "right", right);
    st->on_change(st->on_change_ud, op, NULL, NULL, l);
    cJSON_Delete(l);
}

int store_link(struct store *st, const char *nav, const char *left, const char *right)
{
    if (strlen(right) != 36 || strlen(left) > 36 ||
        strlen(nav) >= sizeof(((struct linkset *)0)->nav))
        return -EINVAL;
    struct linkset *ls = linkset_get(st, nav, left);
    if (ls == NULL) {
        struct linkset **n = realloc(st->linksets, (st->nlinksets + 1) * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        st->linksets = n;
        ls = calloc(1, sizeof(*ls));
        if (ls == NULL)
            return -ENOMEM;
        snprintf(ls->nav, sizeof(ls->nav), "%s", nav);
        snprintf(ls->left, sizeof(ls->left), "%s", left);
        st->linksets[st->nlinksets++] = ls;
    }
    if (linkset_find(ls, right) >= 0)
        return 0;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 16;
        char(*ids)[37] = realloc(ls->ids, cap * sizeof(*ids));
        if (ids == NULL)
            return -ENOMEM;
        ls->ids = ids;
        ls->cap = cap;
    }
    if ((ls->n + 1) * 2 > ls->index_cap &&
        linkset_rehash(ls, ls->index_cap ? ls->index_cap * 2 : 32))
        return -ENOMEM;
    memcpy(ls->ids[ls->n], right, 36);
    ls->ids[ls->n][36] = '\0';
    size_t h = guid_hash(right) & (ls->index_cap - 1);
    while (ls->index[h])
        h = (h + 1) & (ls->index_cap - 1);
    ls->index[h] = (uint32_t)ls->n + 1;
    ls->n++;
    link_notify(st, "link", nav, left, right);
    return 0;
}

int store_unlink(struct store *st, const char *nav, const char *left, const char *right)
{
    struct linkset *ls = linkset_get(st, nav, left);
    long pos = ls ? linkset_find(ls, right) : -1;
    if (pos < 0)
        return -ENOENT;
    /* rare: keep the order, then rebuild the positions */
    memmove(ls->ids[pos], ls->ids[pos + 1], (ls->n - (size_t)pos - 1) * sizeof(ls->ids[0]));
    ls->n--;
    if (linkset_rehash(ls, ls->index_cap) != 0)
        return -ENOMEM;
    link_notify(st, "unlink", nav, left, right);
    return 0;
}

const struct linkset *store_links(const struct store *st, const char *nav, const char *left)
{
    return linkset_get(st, nav, left);
}
