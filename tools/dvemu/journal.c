/* journal.c - --data DIR persistence.
 *
 * DIR/snapshot.json holds the whole store (rows with their versions,
 * tombstones, N:N links, tables created through the metadata API);
 * DIR/journal.log gets one JSON line per committed change. Lines are
 * collected during a request; the reply waits (journal_commit_async) until
 * they are written and fdatasync'd on libuv's thread pool, so an
 * acknowledged write survives a crash and the loop never blocks on the
 * disk. Requests that finish while a sync is running share the next one
 * (group commit). At
 * start the snapshot is loaded and the journal replayed (a torn last line
 * from a crash is ignored); a clean stop, or a journal past 64 MiB,
 * compacts everything into a new snapshot (written to a temporary file,
 * fsync'd, renamed) and truncates the journal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dvemu.h"
#include "smsys/log.h"
#include "smsys/util.h"

#define COMPACT_BYTES (64u << 20)

struct waiter {
    void *item;
    journal_done_cb cb;
};

struct journal {
    struct emu *e;
    char *dir;
    int fd;
    struct buf pending;
    size_t size;
    /* asynchronous commits (journal_attach_loop) */
    uv_loop_t *loop;
    uv_fs_t req;
    struct buf wbuf; /* bytes being written */
    size_t woff;     /* written so far */
    struct waiter *waiting, *flushing;
    size_t nwaiting, capwaiting, nflushing, capflushing;
    int busy;
};

static char *path_in(const char *dir, const char *name)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s/%s", dir, name);
    return buf_steal(&b);
}

static const char type_chars[] = "gsmiIdbtcl"; /* by enum col_type */

static cJSON *table_def(const struct table *t)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "logical", t->logical);
    cJSON_AddStringToObject(d, "set", t->set);
    cJSON_AddStringToObject(d, "pk", t->pk);
    cJSON_AddStringToObject(d, "primary", t->primary_name);
    cJSON_AddBoolToObject(d, "activity", t->activity);
    cJSON_AddBoolToObject(d, "user_owned", t->user_owned);
    cJSON_AddStringToObject(d, "metadata_id", t->metadata_id);
    cJSON *cols = cJSON_AddArrayToObject(d, "cols");
    for (size_t i = 0; i < t->ncols; i++) {
        cJSON *c = cJSON_CreateArray();
        char ty[2] = {type_chars[t->cols[i].type], '\0'};
        cJSON_AddItemToArray(c, cJSON_CreateString(t->cols[i].name));
        cJSON_AddItemToArray(c, cJSON_CreateString(ty));
        cJSON_AddItemToArray(c, cJSON_CreateString(t->cols[i].targets ? t->cols[i].targets : ""));
        cJSON_AddItemToArray(cols, c);
    }
    return d;
}

/* Creates or extends a table from a definition (custom tables survive). */
static void table_from_def(struct emu *e, const cJSON *d)
{
    const char *logical = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "logical"));
    const char *set = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "set"));
    const char *pk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "pk"));
    const char *prim = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "primary"));
    const char *mid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "metadata_id"));
    if (!logical || !set || !pk)
        return;
    struct table *t = store_by_logical(&e->store, logical);
    if (t == NULL) {
        t = schema_table_new(logical, set, pk, prim ? prim : "",
                             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "activity")));
        if (t == NULL)
            return;
        t->user_owned = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "user_owned"));
        t->custom = 2;
        if (mid && strlen(mid) == 36)
            memcpy(t->metadata_id, mid, 37);
        if (store_add_table(&e->store, t) != 0)
            return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(d, "cols"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(c, 0));
        const char *ty = cJSON_GetStringValue(cJSON_GetArrayItem(c, 1));
        const char *tg = cJSON_GetStringValue(cJSON_GetArrayItem(c, 2));
        const char *pos = ty ? strchr(type_chars, ty[0]) : NULL;
        if (name && pos && ty[0] && !table_column(t, name))
            table_add_column(t, name, (enum col_type)(pos - type_chars), tg && *tg ? tg : NULL);
    }
}

static void hook(void *ud, const char *op, const struct table *t, const char *id, const cJSON *row)
{
    struct journal *j = ud;
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "op", op);
    if (t) {
        cJSON_AddStringToObject(rec, "set", t->set);
        cJSON_AddStringToObject(rec, "id", id);
        const struct row *r = store_get(t, id);
        cJSON_AddNumberToObject(rec, "v", (double)(r ? r->version : j->e->store.version));
        if (row)
            cJSON_AddItemToObject(rec, "row", cJSON_Duplicate(row, 1));
    } else if (row) {
        cJSON_AddItemToObject(rec, "link", cJSON_Duplicate(row, 1));
    }
    char *s = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (s) {
        buf_puts(&j->pending, s);
        buf_putc(&j->pending, '\n');
        free(s);
    }
}

static void bump(struct store *st, uint64_t v)
{
    if (v > st->version)
        st->version = v;
}

static void apply_record(struct emu *e, const cJSON *rec)
{
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "op"));
    if (op == NULL)
        return;
    if (strcmp(op, "table") == 0) {
        table_from_def(e, cJSON_GetObjectItemCaseSensitive(rec, "def"));
        return;
    }
    if (strcmp(op, "link") == 0 || strcmp(op, "unlink") == 0) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(rec, "link");
        const char *nav = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "nav"));
        const char *left = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "left"));
        const char *right = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "right"));
        if (nav && left && right) {
            if (op[0] == 'l')
                store_link(&e->store, nav, left, right);
            else
                store_unlink(&e->store, nav, left, right);
        }
        return;
    }
    const char *set = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "set"));
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "id"));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "v");
    struct table *t = set ? store_by_set(&e->store, set) : NULL;
    if (t == NULL || id == NULL || strlen(id) != 36 || !cJSON_IsNumber(v))
        return;
    uint64_t ver = (uint64_t)v->valuedouble;
    if (strcmp(op, "put") == 0) {
        const cJSON *row = cJSON_GetObjectItemCaseSensitive(rec, "row");
        struct row *r = row ? store_put(&e->store, t, id, cJSON_Duplicate(row, 1)) : NULL;
        if (r)
            r->version = ver;
    } else if (strcmp(op, "del") == 0) {
        if (store_delete(&e->store, t, id) == 0 && t->ntomb)
            t->tomb[t->ntomb - 1].version = ver;
    } else if (strcmp(op, "tomb") == 0) {
        if (t->ntomb == t->cap_tomb) {
            size_t nc = t->cap_tomb ? t->cap_tomb * 2 : 64;
            struct tombstone *nt = realloc(t->tomb, nc * sizeof(*nt));
            if (nt == NULL)
                return;
            t->tomb = nt;
            t->cap_tomb = nc;
        }
        memcpy(t->tomb[t->ntomb].id, id, 36);
        t->tomb[t->ntomb].id[36] = '\0';
        t->tomb[t->ntomb].version = ver;
        t->ntomb++;
    }
    bump(&e->store, ver);
}

static int load_lines(struct emu *e, const char *path, size_t *good_bytes)
{
    FILE *f = fopen(path, "r");
    *good_bytes = 0;
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* torn write at a crash: the request was never acknowledged */
        cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        if (rec == NULL)
            break;
        apply_record(e, rec);
        cJSON_Delete(rec);
        *good_bytes += (size_t)n;
    }
    free(line);
    fclose(f);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the whole store as journal records into snapshot.json. */
static int compact(struct journal *j)
{
    struct emu *e = j->e;
    char *tmp = path_in(j->dir, "snapshot.json.tmp");
    char *snap = path_in(j->dir, "snapshot.json");
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < e->store.ntables && rc == 0; i++) {
        struct table *t = e->store.tables[i];
        if (t->custom == 2) {
            cJSON *rec = cJSON_CreateObject();
            cJSON_AddStringToObject(rec, "op", "table");
            cJSON_AddItemToObject(rec, "def", table_def(t));
            char *s = cJSON_PrintUnformatted(rec);
            buf_printf(&b, "%s\n", s ? s : "{}");
            free(s);
            cJSON_Delete(rec);
        }
        for (size_t k = 0; k < t->nrows_slots; k++) {
            struct row *r = t->rows[k];
            if (r == NULL)
                continue;
            char *s = cJSON_PrintUnformatted(r->obj);
            buf_printf(&b, "{\"op\":\"put\",\"set\":\"%s\",\"id\":\"%s\",\"v\":%llu,\"row\":%s}\n",
                       t->set, r->id, (unsigned long long)r->version, s ? s : "{}");
            free(s);
            if (b.len > (1u << 20)) {
                rc = write_all(fd, b.data, b.len);
                buf_reset(&b);
            }
        }
        for (size_t k = 0; k < t->ntomb; k++)
            buf_printf(&b, "{\"op\":\"tomb\",\"set\":\"%s\",\"id\":\"%s\",\"v\":%llu}\n", t->set,
                       t->tomb[k].id, (unsigned long long)t->tomb[k].version);
    }
    for (size_t i = 0; rc == 0 && i < e->store.nlinksets; i++) {
        const struct linkset *ls = e->store.linksets[i];
        for (size_t k = 0; k < ls->n; k++) {
            buf_printf(
                &b,
                "{\"op\":\"link\",\"link\":{\"nav\":\"%s\",\"left\":\"%s\",\"right\":\"%s\"}}\n",
                ls->nav, ls->left, ls->ids[k]);
            if (b.len > (1u << 20)) {
                rc = write_all(fd, b.data, b.len);
                buf_reset(&b);
            }
        }
    }
    if (rc == 0)
        rc = write_all(fd, b.data ? b.data : "", b.len);
    buf_free(&b);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, snap) != 0)
        rc = -errno;
    if (rc == 0) {
        int dfd = open(j->dir, O_RDONLY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        if (ftruncate(j->fd, 0) == 0) {
            lseek(j->fd, 0, SEEK_SET);
            fdatasync(j->fd);
            j->size = 0;
        }
    }
out:
    free(tmp);
    free(snap);
    return rc;
}

int journal_open(struct emu *e, const char *dir, struct journal **out)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    struct journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->e = e;
    j->dir = strdup(dir);
    char *snap = path_in(dir, "snapshot.json");
    char *log = path_in(dir, "journal.log");
    size_t good = 0;
    int rc = load_lines(e, snap, &good);
    if (rc == 0)
        rc = load_lines(e, log, &good);
    if (rc == 0) {
        j->fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (j->fd < 0)
            rc = -errno;
        else if (ftruncate(j->fd, (off_t)good) != 0) /* drop a torn tail */
            rc = -errno;
        j->size = good;
    }
    free(snap);
    free(log);
    if (rc != 0) {
        free(j->dir);
        free(j);
        return rc;
    }
    e->store.on_change = hook;
    e->store.on_change_ud = j;
    log_info("dvemu_data_loaded", "dir=%s version=%llu", dir, (unsigned long long)e->store.version);
    *out = j;
    return 0;
}

void journal_table(struct journal *j, const struct table *t)
{
    if (j == NULL)
        return;
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "op", "table");
    cJSON_AddItemToObject(rec, "def", table_def(t));
    char *s = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (s) {
        buf_printf(&j->pending, "%s\n", s);
        free(s);
    }
}

int journal_flush(struct journal *j)
{
    if (j == NULL || j->pending.len == 0)
        return 0;
    int rc = write_all(j->fd, j->pending.data, j->pending.len);
    if (rc == 0 && fdatasync(j->fd) != 0)
        rc = -errno;
    j->size += j->pending.len;
    buf_reset(&j->pending);
    if (rc == 0 && j->size > COMPACT_BYTES)
        rc = compact(j);
    return rc;
}

void journal_attach_loop(struct journal *j, uv_loop_t *loop)
{
    j->loop = loop;
}

static int push_waiter(struct waiter **arr, size_t *n, size_t *cap, void *item, journal_done_cb cb)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct waiter *na = realloc(*arr, nc * sizeof(*na));
        if (na == NULL)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[*n].item = item;
    (*arr)[*n].cb = cb;
    (*n)++;
    return 0;
}

static void start_flush(struct journal *j);

static void finish_flush(struct journal *j, int err)
{
    j->size += j->wbuf.len;
    buf_reset(&j->wbuf);
    j->woff = 0;
    j->busy = 0;
    if (err == 0 && j->size > COMPACT_BYTES && compact(j) != 0)
        log_error("dvemu_compact_failed", "dir=%s", j->dir);
    /* the callbacks may commit again: hand them a clean state first */
    struct waiter *done = j->flushing;
    size_t n = j->nflushing;
    j->flushing = NULL;
    j->nflushing = j->capflushing = 0;
    for (size_t i = 0; i < n; i++)
        done[i].cb(done[i].item, err);
    free(done);
    if (j->nwaiting && !j->busy)
        start_flush(j);
}

static void sync_cb(uv_fs_t *req)
{
    struct journal *j = container_of(req, struct journal, req);
    int err = req->result < 0 ? (int)req->result : 0;
    uv_fs_req_cleanup(req);
    if (err)
        log_error("dvemu_journal_sync_failed", "err=%s", uv_strerror(err));
    finish_flush(j, err);
}

static void write_cb(uv_fs_t *req)
{
    struct journal *j = container_of(req, struct journal, req);
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    if (res < 0) {
        log_error("dvemu_journal_write_failed", "err=%s", uv_strerror((int)res));
        finish_flush(j, (int)res);
        return;
    }
    j->woff += (size_t)res;
    int rc;
    if (j->woff < j->wbuf.len) {
        uv_buf_t b = uv_buf_init(j->wbuf.data + j->woff, (unsigned)(j->wbuf.len - j->woff));
        rc = uv_fs_write(j->loop, &j->req, j->fd, &b, 1, -1, write_cb);
    } else {
        rc = uv_fs_fdatasync(j->loop, &j->req, j->fd, sync_cb);
    }
    if (rc != 0)
        finish_flush(j, rc);
}

static void start_flush(struct journal *j)
{
    /* everyone waiting now is covered by what is pending now */
    struct waiter *w = j->waiting;
    j->waiting = j->flushing;
    j->flushing = w;
    size_t n = j->nwaiting, c = j->capwaiting;
    j->nwaiting = j->nflushing;
    j->capwaiting = j->capflushing;
    j->nflushing = n;
    j->capflushing = c;
    struct buf t = j->wbuf;
    j->wbuf = j->pending;
    j->pending = t;
    buf_reset(&j->pending);
    j->woff = 0;
    j->busy = 1;
    if (j->wbuf.len == 0) {
        finish_flush(j, 0);
        return;
    }
    uv_buf_t b = uv_buf_init(j->wbuf.data, (unsigned)j->wbuf.len);
    int rc = uv_fs_write(j->loop, &j->req, j->fd, &b, 1, -1, write_cb);
    if (rc != 0)
        finish_flush(j, rc);
}

void journal_commit_async(struct journal *j, void *item, journal_done_cb cb)
{
    if (j->loop == NULL) {
        cb(item, journal_flush(j));
        return;
    }
    if (push_waiter(&j->waiting, &j->nwaiting, &j->capwaiting, item, cb) != 0) {
        cb(item, -ENOMEM);
        return;
    }
    if (!j->busy)
        start_flush(j);
}

void journal_close(struct journal *j, int do_compact)
{
    if (j == NULL)
        return;
    free(j->waiting);
    free(j->flushing);
    buf_free(&j->wbuf);
    journal_flush(j);
    if (do_compact && compact(j) != 0)
        log_error("dvemu_compact_failed", "dir=%s", j->dir);
    j->e->store.on_change = NULL;
    close(j->fd);
    buf_free(&j->pending);
    free(j->dir);
    free(j);
}
