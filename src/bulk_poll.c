/* bulk_poll.c - the engine's inputs: smsysctl commands (smsys_bulk_command)
 * and user changes in Dynamics (smsys_bulksmses with status Ready, Paused
 * or Canceled), turned into accept / pause / resume / cancel in
 * PostgreSQL. A status equal to what smsys wrote itself is not a user
 * change. */
#include "bulk_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/util.h"

/* The columns of a bulk record the engine reads. */
#define BULK_SEL                                                                                   \
    "$select=smsys_bulksmsid,smsys_name,smsys_status,smsys_scheduledstart,"                        \
    "_smsys_templateid_value,_smsys_listid_value,_smsys_campaignid_value,"                         \
    "_smsys_settingid_value,smsys_sendernumber,description,smsys_body,_ownerid_value"
#define BULK_PREFER "odata.include-annotations=\"Microsoft.Dynamics.CRM.lookuplogicalname\""

static void next_command(struct run *r);
static void next_decide(struct run *r);
static void cmd_start(struct run *r);

/* ---- accept / pause / resume / cancel decisions --------------------------- */

static void decided_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    bulk_note_rc(r, rc, "decide", err);
    if (rc == 0)
        r->do_sync = 1;
    if (r->forced)
        next_command(r);
    else
        next_decide(r);
}

/* A Failed bulk set Ready again: started over when nothing was sent yet,
 * else its Failed status is written back (the user sees why). */
static void restart_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    int again = rc == 0 && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (rc == 0)
        log_info(again ? "bulk restarted" : "bulk not restarted: messages were sent already",
                 "bulk=%s", r->restart);
    if (rc == 0 && !again && bulk_db_set_written(r->e->pg, r->restart, "{}", decided_cb, r) == 0)
        return;
    decided_cb(rc, res, err, ud);
}

/* The accept JSON of a Ready row (smsys_bulk_accept). */
static char *accept_json(struct run *r, const cJSON *row)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    const char *id = bulk_jstr(row, "smsys_bulksmsid");
    cJSON_AddStringToObject(o, "id", id ? id : "");
    cJSON_AddStringToObject(o, "name",
                            bulk_jstr(row, "smsys_name") ? bulk_jstr(row, "smsys_name") : "");
    const char *at = bulk_jstr(row, "smsys_scheduledstart");
    if (at) {
        cJSON_AddStringToObject(o, "scheduled_start", at);
        char now[40];
        util_iso8601(util_wall_us(), now, sizeof(now));
        /* both ISO-8601 UTC: compare as text on the seconds */
        if (strncmp(at, now, 19) > 0)
            cJSON_AddNumberToObject(o, "state", 2);
    }
    static const struct {
        const char *from, *to;
    } map[] = {{"_smsys_settingid_value", "account_id"},   {"smsys_sendernumber", "sender"},
               {"_smsys_templateid_value", "template_id"}, {"_smsys_listid_value", "list_id"},
               {"_smsys_campaignid_value", "campaign_id"}, {"_ownerid_value", "owner_id"}};
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (bulk_jstr(row, map[i].from))
            cJSON_AddStringToObject(o, map[i].to, bulk_jstr(row, map[i].from));
    const char *body =
        bulk_jstr(row, "smsys_body") ? bulk_jstr(row, "smsys_body") : bulk_jstr(row, "description");
    if (body)
        cJSON_AddStringToObject(o, "body", body);
    const char *ot = bulk_jstr(row, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname");
    cJSON_AddStringToObject(o, "owner_type", ot ? ot : "systemuser");
    double rate = r->e->o.rate_per_s;
    long long v;
    if (r->force_rate && util_parse_int(r->force_rate, 0, 1000000, &v) == 0)
        rate = (double)v;
    else if (r->force_rate)
        rate = strtod(r->force_rate, NULL);
    if (isfinite(rate) && rate > 0)
        cJSON_AddNumberToObject(o, "rate_per_s", rate);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Acts on one Dynamics row given what PostgreSQL knows of it (pg: -1 =
 * unknown; written: the status we last wrote, -1 none). A status equal to
 * what we wrote ourselves is not a user change and is ignored, so a pause
 * or resume made with smsysctl is not undone by a stale read. Calls
 * decided_cb once (or the next step directly when nothing is to do). */
static void decide(struct run *r, const cJSON *row, int pg, int written)
{
    struct bulk_engine *e = r->e;
    const char *id = bulk_jstr(row, "smsys_bulksmsid");
    int status = r->forced ? BULK_READY : bulk_jint(row, "smsys_status", 0);
    int rc = 1; /* 1: nothing to do */
    if (id == NULL || (status == written && !r->forced)) {
        rc = 1;
    } else if (status == BULK_READY && pg < 0) {
        char *json = accept_json(r, row);
        rc = json ? bulk_db_accept(e->pg, json, decided_cb, r) : -ENOMEM;
        if (rc == 0) {
            e->st.started++;
            log_info("bulk accepted", "bulk=%s name=\"%s\"", id,
                     log_q(bulk_jstr(row, "smsys_name") ? bulk_jstr(row, "smsys_name") : ""));
        }
        free(json);
    } else if (status == BULK_READY && pg == BULK_PAUSED) {
        log_info("bulk resume", "bulk=%s", id);
        rc = bulk_db_resume(e->pg, id, decided_cb, r);
    } else if (status == BULK_READY && pg == BULK_FAILED) {
        char *json = accept_json(r, row);
        bulk_copy_id(r->restart, id);
        rc = json ? bulk_db_restart(e->pg, json, restart_cb, r) : -ENOMEM;
        free(json);
    } else if (status == BULK_READY && (pg == BULK_COMPLETED || pg == BULK_CANCELED)) {
        /* a finished bulk is not sent again: show its real status */
        rc = bulk_db_set_written(e->pg, id, "{}", decided_cb, r);
    } else if (status == BULK_PAUSED && pg >= BULK_READY && pg <= BULK_SENDING) {
        log_info("bulk pause", "bulk=%s", id);
        rc = bulk_db_pause(e->pg, id, decided_cb, r);
    } else if (status == BULK_CANCELED && pg >= BULK_DRAFT && pg <= BULK_PAUSED) {
        log_info("bulk cancel", "bulk=%s", id);
        rc = bulk_db_cancel(e->pg, id, decided_cb, r);
    }
    if (rc == 0)
        return;
    if (rc < 0)
        bulk_note_rc(r, rc, "decide", NULL);
    if (r->forced)
        next_command(r);
    else
        next_decide(r);
}

/* ---- commands (smsysctl) -------------------------------------------------- */

static void cmd_done_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    bulk_note_rc(r, rc, "command_done", err);
    r->icmd++;
    next_command(r);
}

/* Called when the command's work is over: marks it done, then the next. */
static void next_command(struct run *r)
{
    if (r->forced) {
        r->forced = 0;
        r->force_rate = NULL;
        cJSON_Delete(r->rows);
        r->rows = NULL;
        struct cmd *c = &r->cmds[r->icmd];
        if (bulk_db_command_done(r->e->pg, c->id, "started", cmd_done_cb, r) == 0)
            return;
        r->icmd++;
    }
    while (r->icmd < r->ncmd) {
        struct cmd *c = &r->cmds[r->icmd];
        if (strcmp(c->command, "start") != 0) {
            /* applied in PostgreSQL by smsys_bulk_request already: the
             * sync writes the new status to Dynamics */
            r->do_sync = 1;
            if (bulk_db_command_done(r->e->pg, c->id, "applied", cmd_done_cb, r) == 0)
                return;
            r->icmd++;
            continue;
        }
        break;
    }
    if (r->icmd >= r->ncmd) {
        bulk_phase_poll(r);
        return;
    }
    cmd_start(r);
}

/* start ID: the bulk's record is read (one GET) and treated as Ready, so
 * a Draft starts too; a paused one resumes. */
static void cmd_row_cb(int rc, struct dv_result *res, void *ud)
{
    struct run *r = ud;
    struct cmd *c = &r->cmds[r->icmd];
    r->e->st.dv_requests++;
    if (rc == SMSYS_ENOTFOUND || rc == SMSYS_EPROTO) {
        log_warn("bulk start refused", "bulk=%s error=\"%s\"", c->bulk,
                 log_q(bulk_errtext(rc, &res->err)));
        if (bulk_db_command_done(r->e->pg, c->id, "no such bulk send in Dynamics", cmd_done_cb,
                                 r) != 0) {
            r->icmd++;
            next_command(r);
        }
        return;
    }
    if (rc != 0 || res->json == NULL) {
        bulk_note_rc(r, rc ? rc : SMSYS_EPROTO, "command_start", rc ? &res->err : NULL);
        r->icmd++; /* left pending: tried again next run */
        next_command(r);
        return;
    }
    r->rows = res->json;
    res->json = NULL;
    r->forced = 1;
    r->force_rate = c->rate[0] ? c->rate : NULL;
    decide(r, r->rows, c->pg, c->written);
}

static void cmd_state_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    struct cmd *c = &r->cmds[r->icmd];
    if (rc != 0) {
        bulk_note_rc(r, rc, "command_state", err);
        r->icmd++;
        next_command(r);
        return;
    }
    int pg = PQntuples(res) ? bulk_to_int(bulk_val(res, 0, 0), -1) : -1;
    int written = PQntuples(res) ? bulk_to_int(bulk_val(res, 0, 1), -1) : -1;
    struct buf p = BUF_INIT;
    int q = buf_puts(&p, "smsys_bulksmses(");
    if (q == 0)
        q = odata_lit_guid(&p, c->bulk);
    if (q == 0)
        q = buf_puts(&p, ")?" BULK_SEL);
    c->pg = pg;
    c->written = written;
    if (q == 0 && r->e->closing)
        q = SMSYS_ECLOSED;
    if (q == 0)
        q = dv_request_ex(r->e->dv,
                          &(struct dv_call){.method = "GET", .path = p.data, .prefer = BULK_PREFER},
                          cmd_row_cb, r);
    buf_free(&p);
    if (q != 0) {
        bulk_note_rc(r, q, "command_start", NULL);
        r->icmd++;
        next_command(r);
    }
}

static void cmd_start(struct run *r)
{
    struct cmd *c = &r->cmds[r->icmd];
    if (r->e->closing) {
        bulk_run_finish(r);
        return;
    }
    const char *p[1] = {c->bulk};
    if (pg_query(r->e->pg,
                 "SELECT state, written->>'smsys_status' FROM smsys_bulk WHERE id = $1::uuid", 1, p,
                 cmd_state_cb, r) != 0) {
        r->icmd++;
        next_command(r);
    }
}

static void commands_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    bulk_note_rc(r, rc, "commands", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->cmds = calloc((size_t)n, sizeof(*r->cmds))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct cmd *c = &r->cmds[r->ncmd];
        long long id;
        if (util_parse_int(bulk_val(res, i, 0), 1, INT64_MAX, &id) != 0)
            continue;
        c->id = id;
        bulk_copy_id(c->bulk, bulk_val(res, i, 1));
        snprintf(c->command, sizeof(c->command), "%s",
                 bulk_val(res, i, 2) ? bulk_val(res, i, 2) : "");
        snprintf(c->rate, sizeof(c->rate), "%s", bulk_val(res, i, 3) ? bulk_val(res, i, 3) : "");
        r->ncmd++;
        log_info("bulk command", "id=%lld bulk=%s command=%s rate=%s who=\"%s\"", id, c->bulk,
                 c->command, c->rate[0] ? c->rate : "-",
                 log_q(bulk_val(res, i, 4) ? bulk_val(res, i, 4) : ""));
    }
    if (r->ncmd)
        r->do_poll = r->do_sync = 1;
    next_command(r);
}

void bulk_phase_commands(struct run *r)
{
    if (r->e->closing) {
        bulk_run_finish(r);
        return;
    }
    if (bulk_db_commands(r->e->pg, commands_cb, r) != 0)
        bulk_phase_poll(r);
}

/* ---- poll smsys_bulksmses ------------------------------------------------- */

static void next_decide(struct run *r)
{
    const cJSON *row = r->row;
    if (row == NULL) {
        bulk_phase_sync(r);
        return;
    }
    r->row = row->next;
    decide(r, row, bulk_jint(row, "@smsys.state", -1), bulk_jint(row, "@smsys.written", -1));
}

/* PostgreSQL's state and last written status of the rows read, attached
 * to each row as @smsys.state / @smsys.written. */
static void views_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    if (rc != 0) {
        bulk_note_rc(r, rc, "poll_states", err);
        bulk_phase_sync(r);
        return;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(r->rows, "value");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = bulk_val(res, i, 0);
        cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            const char *rid = bulk_jstr(row, "smsys_bulksmsid");
            if (rid && id && strcasecmp(rid, id) == 0) {
                cJSON_AddNumberToObject(row, "@smsys.state", bulk_to_int(bulk_val(res, i, 1), -1));
                cJSON_AddNumberToObject(row, "@smsys.written",
                                        bulk_to_int(bulk_val(res, i, 2), -1));
            }
        }
    }
    r->row = rows ? rows->child : NULL;
    next_decide(r);
}

static void poll_cb(int rc, struct dv_result *res, void *ud)
{
    struct run *r = ud;
    r->e->st.dv_requests++;
    r->e->st.polls++;
    const cJSON *rows = rc == 0 ? cJSON_GetObjectItemCaseSensitive(res->json, "value") : NULL;
    if (rc != 0 || !cJSON_IsArray(rows)) {
        bulk_note_rc(r, rc ? rc : SMSYS_EPROTO, "poll", rc ? &res->err : NULL);
        bulk_phase_sync(r);
        return;
    }
    r->rows = res->json;
    res->json = NULL;
    struct buf ids = BUF_INIT;
    int q = buf_putc(&ids, '{');
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (q == 0 && bulk_jstr(row, "smsys_bulksmsid"))
            q = bulk_arr_add(&ids, bulk_jstr(row, "smsys_bulksmsid"));
    }
    if (q == 0)
        q = buf_putc(&ids, '}');
    const char *p[1] = {ids.data};
    if (q == 0)
        q = pg_query(r->e->pg,
                     "SELECT id::text, state, written->>'smsys_status' FROM smsys_bulk "
                     "WHERE id = ANY ($1::uuid[])",
                     1, p, views_cb, r);
    buf_free(&ids);
    if (q != 0) {
        bulk_note_rc(r, q, "poll_states", NULL);
        bulk_phase_sync(r);
    }
}

/* Ready bulks, and Paused/Canceled ones that PostgreSQL still runs (an old
 * canceled bulk costs nothing). */
static void active_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    if (rc != 0) {
        bulk_note_rc(r, rc, "poll_active", err);
        bulk_phase_sync(r);
        return;
    }
    struct buf f = BUF_INIT, path = BUF_INIT;
    int q = buf_puts(&f, "smsys_status eq 2");
    if (q == 0 && PQntuples(res) > 0) {
        q = buf_puts(&f, " or ((smsys_status eq 5 or smsys_status eq 7) and "
                         "Microsoft.Dynamics.CRM.In(PropertyName='smsys_bulksmsid',"
                         "PropertyValues=[");
        for (int i = 0; q == 0 && i < PQntuples(res); i++) {
            if (i)
                q = buf_putc(&f, ',');
            if (q == 0)
                q = buf_printf(&f, "'%s'", PQgetvalue(res, i, 0));
        }
        if (q == 0)
            q = buf_puts(&f, "]))");
    }
    if (q == 0)
        q = buf_puts(&path, "smsys_bulksmses?" BULK_SEL);
    if (q == 0)
        q = odata_query_add(&path, "$filter", f.data);
    if (q == 0)
        q = dv_request_ex(
            r->e->dv, &(struct dv_call){.method = "GET", .path = path.data, .prefer = BULK_PREFER},
            poll_cb, r);
    buf_free(&f);
    buf_free(&path);
    if (q != 0) {
        bulk_note_rc(r, q, "poll", NULL);
        bulk_phase_sync(r);
    }
}

void bulk_phase_poll(struct run *r)
{
    struct bulk_engine *e = r->e;
    uint64_t now = uv_now(e->loop);
    if (e->closing) {
        bulk_phase_sync(r);
        return;
    }
    if (!r->do_poll && now - e->last_poll_ms < e->o.poll_ms) {
        bulk_phase_sync(r);
        return;
    }
    e->last_poll_ms = now;
    if (pg_query(e->pg,
                 "SELECT id::text FROM smsys_bulk WHERE state IN (2, 3, 4, 5) "
                 "ORDER BY created_at LIMIT 200",
                 0, NULL, active_cb, r) != 0)
        bulk_phase_sync(r);
}
