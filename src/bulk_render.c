/* bulk_render.c - rendering the members whose text follows lookups or
 * relations (so it could not be rendered from the list page): chunks of
 * members through template_render_batch (one GET per 200 members plus one
 * per relation), stored with smsys_bulk_rendered. A member the template
 * cannot be rendered for is skipped with the reason, never the bulk. */
#include "bulk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"

#define RENDER_CHUNK 1000

struct rnd {
    struct bjob *j;
    struct template *t;
    char entity[64];
    struct template_table tbl;
    char **keys; /* member keys, in order */
    char **ids;  /* member ids (GUIDs), same order */
    char **text; /* rendered, NULL when failed */
    char **why;  /* reason when failed */
    size_t n;
    int failed_request;
};

static void rnd_free(struct rnd *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->keys[i]);
        free(r->ids[i]);
        free(r->text[i]);
        free(r->why[i]);
    }
    free(r->keys);
    free(r->ids);
    free(r->text);
    free(r->why);
    template_free(r->t);
    free(r);
}

static void stored_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct rnd *r = ud;
    struct bjob *j = r->j;
    (void)res;
    if (rc != 0)
        log_warn("bulk texts not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    rnd_free(r);
    j->done(j, rc, rc == 0);
}

static void row_cb(const char *id, int rc, const char *text, size_t len,
                   const struct smsys_err *err, void *ud)
{
    struct rnd *r = ud;
    for (size_t i = 0; i < r->n; i++) {
        if (strcasecmp(r->ids[i], id) != 0 || r->text[i] || r->why[i])
            continue;
        if (rc == 0) {
            r->text[i] = malloc(len + 1);
            if (r->text[i]) {
                memcpy(r->text[i], text, len);
                r->text[i][len] = '\0';
            }
        } else {
            struct buf b = BUF_INIT;
            buf_printf(&b, "%s",
                       rc == SMSYS_ENOTFOUND ? "the member no longer exists in Dynamics"
                                             : bulk_errtext(rc, err));
            r->why[i] = buf_steal(&b);
            buf_free(&b);
        }
    }
}

static void batch_done_cb(int rc, const struct template_batch_stats *st,
                          const struct smsys_err *err, void *ud)
{
    struct rnd *r = ud;
    struct bjob *j = r->j;
    struct bulk_engine *e = j->e;
    e->st.dv_requests += st ? st->requests : 0;
    if (rc != 0) {
        /* a request failed: nothing stored, the same chunk next time */
        log_warn("bulk render failed", "bulk=%s error=\"%s\"", j->id, log_q(bulk_errtext(rc, err)));
        rnd_free(r);
        j->done(j, rc, 0);
        return;
    }
    struct buf keys = BUF_INIT, bodies = BUF_INIT, segs = BUF_INIT, encs = BUF_INIT,
               errs = BUF_INIT;
    int q = 0;
    q |= buf_putc(&keys, '{') | buf_putc(&bodies, '{') | buf_putc(&segs, '{') |
         buf_putc(&encs, '{') | buf_putc(&errs, '{');
    for (size_t i = 0; q == 0 && i < r->n; i++) {
        int seg = 0, enc = 0;
        char why[600] = "";
        const char *body = r->text[i];
        if (body && bulk_measure(e, body, strlen(body), &seg, &enc, why, sizeof(why)) != 0)
            body = NULL;
        if (body == NULL && r->why[i] == NULL && why[0] == '\0')
            snprintf(why, sizeof(why), "the text could not be rendered for this member");
        q |= bulk_arr_add(&keys, r->keys[i]);
        q |= bulk_arr_add(&bodies, body);
        q |= buf_printf(&segs, "%s%d", i ? "," : "", seg);
        q |= buf_printf(&encs, "%s%d", i ? "," : "", enc);
        q |= bulk_arr_add(&errs, r->why[i] ? r->why[i] : (body ? NULL : why));
    }
    q |= buf_putc(&keys, '}') | buf_putc(&bodies, '}') | buf_putc(&segs, '}') |
         buf_putc(&encs, '}') | buf_putc(&errs, '}');
    e->st.rendered += r->n;
    if (q == 0)
        q = bulk_db_rendered(e->pg, j->id, keys.data, bodies.data, segs.data, encs.data, errs.data,
                             stored_cb, r);
    buf_free(&keys);
    buf_free(&bodies);
    buf_free(&segs);
    buf_free(&encs);
    buf_free(&errs);
    if (q != 0) {
        rnd_free(r);
        j->done(j, q < 0 ? q : -ENOMEM, 0);
    }
}

/* Members to render: up to RENDER_CHUNK of one member table. */
static void todo_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    if (rc != 0) {
        log_warn("bulk render list failed", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
        j->done(j, rc, 0);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        rc = bulk_unit_preflight(j);
        if (rc != 0)
            j->done(j, rc, 0);
        return;
    }
    struct rnd *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        j->done(j, -ENOMEM, 0);
        return;
    }
    r->j = j;
    snprintf(r->entity, sizeof(r->entity), "%s", PQgetvalue(res, 0, 1));
    r->keys = calloc((size_t)n, sizeof(char *));
    r->ids = calloc((size_t)n, sizeof(char *));
    r->text = calloc((size_t)n, sizeof(char *));
    r->why = calloc((size_t)n, sizeof(char *));
    rc = r->keys && r->ids && r->text && r->why ? 0 : -ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (strcmp(PQgetvalue(res, i, 1), r->entity) != 0)
            continue; /* another table: a later chunk */
        r->keys[r->n] = strdup(PQgetvalue(res, i, 0));
        r->ids[r->n] = strdup(PQgetvalue(res, i, 2));
        r->n++;
        if (!r->keys[r->n - 1] || !r->ids[r->n - 1])
            rc = -ENOMEM;
    }
    const struct pk_table *tb = rc == 0 ? bulk_table(j->e, r->entity) : NULL;
    struct smsys_err e = {0};
    if (rc == 0 && tb == NULL) {
        rnd_free(r);
        bulk_job_fail(j, "a member table has no phone columns configured");
        return;
    }
    if (rc == 0 && (r->t = bulk_template_for(j, r->entity, &e)) == NULL) {
        rnd_free(r);
        bulk_job_fail(j, bulk_errtext(SMSYS_ETEMPLATE, &e));
        return;
    }
    if (rc == 0) {
        r->tbl.entity_set = tb->set;
        r->tbl.key = tb->key;
        r->tbl.logical = tb->table;
        struct template_batch_opts o = {.batch_size = 200};
        rc = template_render_batch(j->e->dv, r->t, &r->tbl, (const char *const *)r->ids, r->n, &o,
                                   row_cb, batch_done_cb, r);
    }
    if (rc != 0) {
        rnd_free(r);
        j->done(j, rc, 0);
    }
}

int bulk_unit_render(struct bjob *j)
{
    return bulk_db_to_render(j->e->pg, j->id, RENDER_CHUNK, todo_cb, j);
}
