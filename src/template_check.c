/* template_check.c - validation on save (template_check.h): change
 * tracking on smsys_smstemplate, template_parse + template_validate per
 * changed row, a note on each invalid one. Rows are checked one after the
 * other: a poll sees few changes, and Dynamics' limits favour a steady
 * trickle over bursts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/odata.h"
#include "smsys/template.h"
#include "smsys/template_check.h"

#define TC_SELECT "smsys_smstemplateid,smsys_name,smsys_body,smsys_entity"

struct tc_row {
    char id[37];
    char entity[64];
    char *name;
    char *body;
};

struct template_check {
    uv_loop_t *loop;
    struct dv_client *dv;
    char *delta; /* where the next run starts; NULL: from the beginning */
    struct template_check_stats st;
    struct metric *m_runs, *m_invalid, *m_notes, *m_unsupported;

    /* the run in progress */
    int busy;
    char *next_delta;
    struct tc_row *rows;
    size_t nrows, cap, at;
    struct template *t; /* the current row's, while it is validated */
    char set[80], key[80];
    struct template_table tbl;
    char *note; /* the current row's error text */
    int rc;     /* first request error of the run */
    struct smsys_err err;
    struct template_check_result res;
    template_check_done_cb cb;
    void *ud;
};

int template_check_new(uv_loop_t *loop, struct dv_client *dv, const struct template_check_opts *o,
                       struct template_check **out)
{
    if (loop == NULL || dv == NULL || out == NULL)
        return -EINVAL;
    struct template_check *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->dv = dv;
    if (o && o->metrics) {
        struct metrics *m = o->registry;
        c->m_runs =
            metrics_counter(m, "smsys_template_check_runs_total",
                            "Template validation runs (one change-tracking GET each).", NULL);
        c->m_invalid = metrics_counter(m, "smsys_template_check_invalid_total",
                                       "Changed templates found invalid.", NULL);
        c->m_notes = metrics_counter(m, "smsys_template_check_notes_total",
                                     "Notes written on invalid templates.", NULL);
        c->m_unsupported =
            metrics_counter(m, "smsys_template_check_notes_unsupported_total",
                            "Notes not written: the server has no annotation table.", NULL);
    }
    *out = c;
    return 0;
}

static void rows_clear(struct template_check *c)
{
    for (size_t i = 0; i < c->nrows; i++) {
        free(c->rows[i].name);
        free(c->rows[i].body);
    }
    free(c->rows);
    c->rows = NULL;
    c->nrows = c->cap = c->at = 0;
}

void template_check_free(struct template_check *c)
{
    if (c == NULL)
        return;
    rows_clear(c);
    template_free(c->t);
    free(c->note);
    free(c->delta);
    free(c->next_delta);
    free(c);
}

const struct template_check_stats *template_check_stats(const struct template_check *c)
{
    return &c->st;
}

static void fail_req(struct template_check *c, int rc, const struct smsys_err *err,
                     const char *what)
{
    log_warn("template_check_request", "what=%s rc=%d detail=%s", what, rc,
             log_q(err ? err->detail : smsys_strerror(rc)));
    if (c->rc == 0) {
        c->rc = rc;
        smsys_err_set(&c->err, rc, "%s: %s", what, err ? err->detail : smsys_strerror(rc));
    }
}

static void finish(struct template_check *c)
{
    if (c->rc == 0 && c->next_delta) {
        free(c->delta);
        c->delta = c->next_delta;
        c->next_delta = NULL;
    }
    free(c->next_delta);
    c->next_delta = NULL;
    rows_clear(c);
    c->st.runs++;
    c->st.changed += c->res.changed;
    c->st.invalid += c->res.invalid;
    c->st.notes += c->res.notes;
    c->st.notes_unsupported += c->res.notes_unsupported;
    c->st.requests += c->res.requests;
    if (c->m_runs) {
        metrics_inc(c->m_runs);
        metrics_add(c->m_invalid, c->res.invalid);
        metrics_add(c->m_notes, c->res.notes);
        metrics_add(c->m_unsupported, c->res.notes_unsupported);
    }
    if (c->res.invalid)
        log_info("template_check_done", "changed=%u invalid=%u notes=%u kept=%u unsupported=%u",
                 c->res.changed, c->res.invalid, c->res.notes, c->res.notes_kept,
                 c->res.notes_unsupported);
    c->busy = 0;
    int rc = c->rc;
    struct smsys_err err = c->err;
    struct template_check_result res = c->res;
    c->cb(rc, &res, rc ? &err : NULL, c->ud);
}

static void next_row(struct template_check *c);

static void row_done(struct template_check *c)
{
    template_free(c->t);
    c->t = NULL;
    free(c->note);
    c->note = NULL;
    c->at++;
    next_row(c);
}

static void no_annotations(struct template_check *c)
{
    /* dvemu before it had annotations, or a trimmed-down org */
    c->res.notes_unsupported++;
    log_warn("template_check_note_unsupported", "template=%s error=%s", c->rows[c->at].id,
             log_q(c->note));
}

static void note_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct template_check *c = ud;
    (void)id;
    c->res.requests++;
    if (rc == 0) {
        c->res.notes++;
        log_info("template_check_note", "template=%s error=%s", c->rows[c->at].id, log_q(c->note));
    } else if (rc == SMSYS_ENOTFOUND) {
        no_annotations(c);
    } else {
        fail_req(c, rc, err, "cannot write the note");
    }
    row_done(c);
}

static void write_note(struct template_check *c)
{
    const struct tc_row *r = &c->rows[c->at];
    int rc = dv_note_create(c->dv, "smsys_smstemplate", "smsys_smstemplates", r->id, NULL,
                            TEMPLATE_CHECK_SUBJECT, c->note, note_cb, c);
    if (rc != 0) {
        fail_req(c, rc, NULL, "cannot write the note");
        row_done(c);
    }
}

struct tc_seen {
    struct template_check *c;
    int same;
};

static int notes_page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct tc_seen *s = ud;
    (void)page;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "notetext");
        if (cJSON_IsString(t) && strcmp(t->valuestring, s->c->note) == 0)
            s->same = 1;
    }
    return s->same ? DV_PAGE_STOP : DV_PAGE_CONTINUE;
}

static void notes_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                          void *ud)
{
    struct tc_seen *s = ud;
    struct template_check *c = s->c;
    int same = s->same;
    (void)delta;
    free(s);
    c->res.requests += pages ? pages : 1;
    if (rc == SMSYS_ENOTFOUND) {
        no_annotations(c);
        row_done(c);
    } else if (rc != 0) {
        fail_req(c, rc, err, "cannot read the notes");
        row_done(c);
    } else if (same) {
        c->res.notes_kept++;
        row_done(c);
    } else {
        write_note(c);
    }
}

/* The current row is invalid (c->note says why): note it unless that very
 * note is there already. */
static void invalid(struct template_check *c)
{
    const struct tc_row *r = &c->rows[c->at];
    c->res.invalid++;
    struct buf path = BUF_INIT, flt = BUF_INIT, subj = BUF_INIT;
    int rc = c->note ? 0 : -ENOMEM;
    if (rc == 0)
        rc = odata_lit_string(&subj, TEMPLATE_CHECK_SUBJECT);
    if (rc == 0)
        rc = buf_printf(&flt, "_objectid_value eq %s and subject eq %s", r->id, subj.data);
    if (rc == 0)
        rc = buf_puts(&path, "annotations");
    if (rc == 0)
        rc = odata_query_add(&path, "$select", "notetext");
    if (rc == 0)
        rc = odata_query_add(&path, "$filter", flt.data);
    struct tc_seen *s = rc == 0 ? calloc(1, sizeof(*s)) : NULL;
    if (rc == 0 && s == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        s->c = c;
        rc = dv_get_all(c->dv, path.data, NULL, 0, notes_page_cb, notes_done_cb, s);
        if (rc != 0)
            free(s);
    }
    buf_free(&path);
    buf_free(&flt);
    buf_free(&subj);
    if (rc != 0) {
        fail_req(c, rc, NULL, "cannot read the notes");
        row_done(c);
    }
}

static void set_note(struct template_check *c, const char *text)
{
    c->note = strdup(text); /* NULL: invalid() reports out of memory */
}

static void validate_cb(int rc, const struct template_error *te, const struct smsys_err *err,
                        void *ud)
{
    struct template_check *c = ud;
    (void)te;
    c->res.requests += 1 + (unsigned)template_relations(c->t);
    if (rc == 0) {
        row_done(c);
    } else if (rc == SMSYS_ETEMPLATE) {
        set_note(c, err->detail);
        invalid(c);
    } else {
        fail_req(c, rc, err, "cannot validate");
        row_done(c);
    }
}

static void next_row(struct template_check *c)
{
    while (c->at < c->nrows) {
        const struct tc_row *r = &c->rows[c->at];
        c->res.changed++;
        if (r->body == NULL || template_text_blank(r->body, strlen(r->body))) {
            set_note(c, "the template has no text (smsys_body)");
        } else if (r->entity[0] == '\0') {
            set_note(c, "the template names no table (smsys_entity): write the logical name of "
                        "the recipients' table, e.g. contact");
        } else if (template_table_for(r->entity, c->set, sizeof(c->set), c->key, sizeof(c->key),
                                      &c->tbl) != 0) {
            struct buf b = BUF_INIT;
            if (buf_printf(&b, "smsys_entity \"%s\" is not a table's logical name", r->entity) == 0)
                c->note = b.data;
            else
                buf_free(&b);
        } else {
            struct smsys_err err = {0};
            int rc = template_parse(r->body, strlen(r->body), &c->t, NULL, &err);
            if (rc == SMSYS_ETEMPLATE || rc == SMSYS_EUTF8) {
                set_note(c, err.detail[0] ? err.detail : smsys_strerror(rc));
            } else if (rc != 0) {
                fail_req(c, rc, NULL, "cannot parse");
                c->at++;
                continue;
            } else {
                rc = template_validate(c->dv, c->t, &c->tbl, validate_cb, c);
                if (rc == 0)
                    return;
                fail_req(c, rc, NULL, "cannot validate");
                template_free(c->t);
                c->t = NULL;
                c->at++;
                continue;
            }
        }
        invalid(c);
        return;
    }
    finish(c);
}

static int page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct template_check *c = ud;
    (void)page;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "smsys_smstemplateid");
        if (!cJSON_IsString(id) || strlen(id->valuestring) != 36)
            continue; /* a deleted row ($deletedEntity): nothing to check */
        if (c->nrows == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            struct tc_row *v = realloc(c->rows, cap * sizeof(*v));
            if (v == NULL)
                return -ENOMEM;
            c->rows = v;
            c->cap = cap;
        }
        struct tc_row *row = &c->rows[c->nrows];
        memset(row, 0, sizeof(*row));
        snprintf(row->id, sizeof(row->id), "%s", id->valuestring);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "smsys_entity");
        snprintf(row->entity, sizeof(row->entity), "%s", cJSON_IsString(v) ? v->valuestring : "");
        template_entity_norm(row->entity);
        v = cJSON_GetObjectItemCaseSensitive(r, "smsys_name");
        row->name = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
        v = cJSON_GetObjectItemCaseSensitive(r, "smsys_body");
        row->body = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
        if ((cJSON_IsString(v) && row->body == NULL)) {
            free(row->name);
            return -ENOMEM;
        }
        c->nrows++;
    }
    return DV_PAGE_CONTINUE;
}

static void read_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                         void *ud)
{
    struct template_check *c = ud;
    c->res.requests += pages ? pages : 1;
    if (rc == SMSYS_EPROTO && c->delta) {
        /* The delta token expired (or the server forgot it): read every
         * template again next time; notes already there are not repeated. */
        log_warn("template_check_delta_reset", "detail=%s", log_q(err ? err->detail : ""));
        free(c->delta);
        c->delta = NULL;
    }
    if (rc != 0) {
        fail_req(c, rc, err, "cannot read the templates");
        finish(c);
        return;
    }
    if (delta) {
        c->next_delta = strdup(delta);
        if (c->next_delta == NULL) {
            fail_req(c, -ENOMEM, NULL, "out of memory");
            finish(c);
            return;
        }
    }
    next_row(c);
}

int template_check_run(struct template_check *c, template_check_done_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return -EINVAL;
    if (c->busy)
        return -EBUSY;
    struct buf path = BUF_INIT;
    int rc = 0;
    if (c->delta) {
        rc = buf_puts(&path, c->delta);
    } else {
        rc = buf_puts(&path, "smsys_smstemplates");
        if (rc == 0)
            rc = odata_query_add(&path, "$select", TC_SELECT);
    }
    memset(&c->res, 0, sizeof(c->res));
    memset(&c->err, 0, sizeof(c->err));
    c->rc = 0;
    c->cb = cb;
    c->ud = ud;
    if (rc == 0)
        rc = dv_get_all(c->dv, path.data, "odata.track-changes", 0, page_cb, read_done_cb, c);
    buf_free(&path);
    if (rc == 0)
        c->busy = 1;
    return rc;
}
