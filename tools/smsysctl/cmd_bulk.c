/* cmd_bulk.c - smsysctl bulk list|preview|start|pause|resume|cancel
 * (docs/cli.md "bulk"; the design is BULK.md). `watch` is in
 * cmd_bulk_watch.c.
 *
 * The CLI talks to smsysd through PostgreSQL only: pause, resume and
 * cancel call the smsys_bulk_* functions directly, so hand-overs stop at
 * once even while smsysd is down, and in the same transaction queue a
 * smsys_bulk_command row and NOTIFY smsys_bulk, so the service writes the
 * new status to Dynamics. start only queues the command: the service reads
 * the bulk from Dynamics, which PostgreSQL may not have seen yet. */
#include "bulk_ctl.h"

#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGconn *bulk_db_open(const struct ctl *ctl)
{
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return NULL;
    PGconn *c = PQconnectdb(cfg->postgres.conninfo);
    config_free(cfg);
    if (PQstatus(c) != CONNECTION_OK) {
        ctl_fail("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

PGresult *bulk_db_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *msg = PQresultErrorMessage(r);
        if (msg == NULL || *msg == '\0')
            msg = PQerrorMessage(c);
        /* libpq ends its messages with a newline; ctl_fail adds one */
        int len = (int)strcspn(msg, "\n");
        ctl_fail("%.*s%s", len, msg,
                 strstr(msg, "does not exist") ? " (is the schema current? smsysctl db migrate)"
                                               : "");
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The counters are smsys_bulk_progress's, the ones smsysd writes to
 * Dynamics (docs/bulk.md). done (the bar's progress) is counted here:
 * messages no longer waiting or in flight. Columns are read by name. */
const char bulk_row_sql[] =
    "SELECT b.id::text AS id, coalesce(b.name, '') AS name, b.state,"
    " b.expanded, coalesce(b.last_error, '') AS last_error,"
    " to_char(b.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created,"
    " to_char(b.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated,"
    " p.total, p.sent, p.delivered, p.failed, p.skipped, p.canceled, p.queued, p.inflight,"
    " p.awaiting, p.unreleased, p.finished, d.done"
    " FROM smsys_bulk b"
    " CROSS JOIN LATERAL smsys_bulk_progress(b.id) p"
    " CROSS JOIN LATERAL (SELECT count(*) AS done FROM smsys_message q"
    "   WHERE q.bulk_id = b.id AND q.state NOT IN (3, 7, 20)) d";

static long long num(PGresult *r, int i, int k)
{
    long long v = 0;
    if (k < 0 || PQgetisnull(r, i, k) ||
        util_parse_int(PQgetvalue(r, i, k), INT64_MIN, INT64_MAX, &v) != 0)
        v = 0;
    return v;
}

static const char *text(PGresult *r, int i, const char *col)
{
    int k = PQfnumber(r, col);
    return k < 0 || PQgetisnull(r, i, k) ? "" : PQgetvalue(r, i, k);
}

void bulk_row_read(PGresult *r, int i, struct bulk_row *row)
{
    memset(row, 0, sizeof(*row));
    snprintf(row->id, sizeof(row->id), "%s", text(r, i, "id"));
    snprintf(row->name, sizeof(row->name), "%s", text(r, i, "name"));
    snprintf(row->last_error, sizeof(row->last_error), "%s", text(r, i, "last_error"));
    snprintf(row->created, sizeof(row->created), "%s", text(r, i, "created"));
    snprintf(row->updated, sizeof(row->updated), "%s", text(r, i, "updated"));
    row->v.state = (int)num(r, i, PQfnumber(r, "state"));
    row->v.expanded = text(r, i, "expanded")[0] == 't';
    row->v.done = num(r, i, PQfnumber(r, "done"));
    /* only fails for a result without the columns: a bug, shown as zeros */
    (void)bulk_progress_parse(r, i, &row->v.c);
}

int bulk_row_get(PGconn *c, const char *id, struct bulk_row *row)
{
    char sql[2048];
    snprintf(sql, sizeof(sql), "%s WHERE b.id = $1::uuid", bulk_row_sql);
    const char *params[1] = {id};
    PGresult *r = bulk_db_exec(c, sql, 1, params);
    if (r == NULL)
        return -1;
    int found = PQntuples(r) > 0;
    if (found)
        bulk_row_read(r, 0, row);
    PQclear(r);
    return found;
}

int bulk_check_arg(const struct ctl *ctl, const char *arg)
{
    char hex[33];
    int full;
    if (bulkview_id_parse(arg, hex, &full) != 0)
        return ctl_usage_error(ctl,
                               "'%s' is not a bulk id: expected the GUID or its first %d+ hex "
                               "digits (smsysctl bulk list shows them)",
                               arg, BULKVIEW_ID_MIN_HEX);
    return CTL_OK;
}

int bulk_resolve(const struct ctl *ctl, PGconn *c, const char *arg, int allow_unknown, char id[37],
                 int *known)
{
    char hex[33];
    int full = 0;
    *known = 0;
    if (bulkview_id_parse(arg, hex, &full) != 0)
        return bulk_check_arg(ctl, arg);
    const char *params[1] = {hex};
    PGresult *r = NULL;
    if (full) {
        bulkview_id_format(hex, id);
        params[0] = id;
        r = bulk_db_exec(c,
                         "SELECT id::text, coalesce(name, ''), state FROM smsys_bulk"
                         " WHERE id = $1::uuid",
                         1, params);
    } else {
        /* A prefix: at most a few hundred bulks exist, a scan is fine. Eleven
         * rows are enough to say "ambiguous" and show ten. */
        r = bulk_db_exec(c,
                         "SELECT id::text, coalesce(name, ''), state FROM smsys_bulk"
                         " WHERE replace(id::text, '-', '') LIKE $1 || '%'"
                         " ORDER BY created_at DESC LIMIT 11",
                         1, params);
    }
    if (r == NULL)
        return CTL_FAIL;
    int n = PQntuples(r);
    if (n == 1) {
        snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
        *known = 1;
        PQclear(r);
        return CTL_OK;
    }
    if (n == 0) {
        PQclear(r);
        if (full && allow_unknown)
            return CTL_OK;
        return ctl_fail("no bulk send %s '%s' in PostgreSQL (%s)",
                        full ? "with id" : "whose id starts with", arg,
                        allow_unknown ? "a bulk smsysd has not seen yet needs its full GUID"
                        : full        ? "smsysd has not accepted it: a Draft is started with "
                                        "smsysctl bulk start ID; smsysctl bulk list --all shows the others"
                                      : "smsysctl bulk list --all shows them");
    }
    fprintf(stderr, "smsysctl: bulk id '%s' is ambiguous: it starts %s%d bulk sends:\n", arg,
            n > 10 ? "more than " : "", n > 10 ? 10 : n);
    for (int i = 0; i < n && i < 10; i++)
        fprintf(stderr, "  %s  %s  %s\n", PQgetvalue(r, i, 0), bulk_state_name((int)num(r, i, 2)),
                PQgetvalue(r, i, 1));
    fprintf(stderr, "give more digits of the id\n");
    PQclear(r);
    return CTL_FAIL;
}

/* ---- list ---- */

/* Display columns of UTF-8 text (one per code point: Persian and Latin
 * names alike). */
static int utf8_cols(const char *s, size_t n)
{
    int cols = 0;
    for (size_t i = 0; i < n && s[i]; i++)
        cols += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cols;
}

/* Prints s in exactly width columns: cut at a character boundary with "~"
 * when too long, padded with spaces. */
static void put_col(const char *name, int width)
{
    /* a name is free text from Dynamics: a newline or tab would break the table */
    char s[256];
    snprintf(s, sizeof(s), "%s", name);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    size_t len = strlen(s);
    if (utf8_cols(s, len) <= width) {
        fputs(s, stdout);
        for (int k = utf8_cols(s, len); k < width; k++)
            putchar(' ');
        return;
    }
    size_t i = 0;
    int cols = 0;
    while (i < len && cols < width - 1) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cols++;
    }
    fwrite(s, 1, i, stdout);
    putchar('~');
}

static cJSON *row_json(const struct bulk_row *b)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", b->id);
    char shortid[BULKVIEW_ID_MIN_HEX + 1];
    memcpy(shortid, b->id, BULKVIEW_ID_MIN_HEX);
    shortid[BULKVIEW_ID_MIN_HEX] = '\0';
    cJSON_AddStringToObject(o, "short_id", shortid);
    cJSON_AddStringToObject(o, "name", b->name);
    cJSON_AddStringToObject(o, "state", bulk_state_name(b->v.state));
    cJSON_AddNumberToObject(o, "state_code", b->v.state);
    cJSON_AddBoolToObject(o, "expanded", b->v.expanded);
    cJSON_AddNumberToObject(o, "total", (double)b->v.c.total);
    cJSON_AddNumberToObject(o, "sent", (double)b->v.c.sent);
    cJSON_AddNumberToObject(o, "delivered", (double)b->v.c.delivered);
    cJSON_AddNumberToObject(o, "failed", (double)b->v.c.failed);
    cJSON_AddNumberToObject(o, "skipped", (double)b->v.c.skipped);
    cJSON_AddNumberToObject(o, "canceled", (double)b->v.c.canceled);
    cJSON_AddNumberToObject(o, "queued", (double)b->v.c.queued);
    cJSON_AddNumberToObject(o, "inflight", (double)b->v.c.inflight);
    cJSON_AddNumberToObject(o, "awaiting_receipt", (double)b->v.c.awaiting);
    cJSON_AddNumberToObject(o, "unreleased", (double)b->v.c.unreleased);
    cJSON_AddNumberToObject(o, "done", (double)b->v.done);
    cJSON_AddStringToObject(o, "created", b->created);
    cJSON_AddStringToObject(o, "updated", b->updated);
    if (b->last_error[0])
        cJSON_AddStringToObject(o, "last_error", b->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    return o;
}

static void print_json(cJSON *o)
{
    char *s = o ? cJSON_Print(o) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
}

/* "2026-11-28T10:01:02Z" -> "2026-11-28 10:01" */
static void short_time(const char *iso, char *out, size_t len)
{
    snprintf(out, len, "%.16s", iso);
    char *t = strchr(out, 'T');
    if (t)
        *t = ' ';
}

int cmd_bulk_list(struct ctl *ctl, int argc, char **argv)
{
    int all = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    PGconn *c = bulk_db_open(ctl);
    if (c == NULL)
        return CTL_FAIL;
    char sql[2048];
    /* Final bulks drop out of the default view a week after they ended. */
    snprintf(sql, sizeof(sql),
             "%s WHERE $1::boolean OR b.state NOT IN (6, 7, 8)"
             " OR coalesce(b.final_at, b.updated_at) > now() - interval '7 days'"
             " ORDER BY b.created_at DESC, b.id",
             bulk_row_sql);
    const char *params[1] = {all ? "t" : "f"};
    PGresult *r = bulk_db_exec(c, sql, 1, params);
    PQfinish(c);
    if (r == NULL)
        return CTL_FAIL;
    int n = PQntuples(r);
    if (ctl->json) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; a && i < n; i++) {
            struct bulk_row b;
            bulk_row_read(r, i, &b);
            cJSON_AddItemToArray(a, row_json(&b));
        }
        print_json(a);
        cJSON_Delete(a);
        PQclear(r);
        return a ? CTL_OK : ctl_fail("out of memory");
    }
    if (n == 0) {
        printf("no bulk sends%s\n", all ? ""
                                        : " (--all also shows those that ended over 7 days "
                                          "ago)");
        PQclear(r);
        return CTL_OK;
    }
    printf("%-8s  %-24s  %-9s  %8s  %8s  %9s  %7s  %7s  %-16s  %s\n", "ID", "NAME", "STATE",
           "TOTAL", "SENT", "DELIVERED", "FAILED", "SKIPPED", "CREATED", "UPDATED");
    for (int i = 0; i < n; i++) {
        struct bulk_row b;
        bulk_row_read(r, i, &b);
        char created[24], updated[24];
        short_time(b.created, created, sizeof(created));
        short_time(b.updated, updated, sizeof(updated));
        printf("%.8s  ", b.id);
        put_col(b.name, 24);
        printf("  %-9s  %7lld%s  %8lld  %9lld  %7lld  %7lld  %-16s  %s\n",
               bulk_state_name(b.v.state), b.v.c.total, bulkview_growing(&b.v) ? "+" : " ",
               b.v.c.sent, b.v.c.delivered, b.v.c.failed, b.v.c.skipped, created, updated);
    }
    PQclear(r);
    return CTL_OK;
}

/* ---- preview ---- */

/* The order a reader wants the summary in; jsonb keeps its keys sorted
 * by length, which reads badly. Keys not listed follow in stored order. */
static const char *const preview_order[] = {
    "recipients", "total",   "skipped", "segments", "price_per_segment", "cost", "unit", "balance",
    "balance_at", "refused", "reason",  NULL,
};

static int preview_listed(const char *k)
{
    for (size_t i = 0; k && preview_order[i]; i++)
        if (strcmp(preview_order[i], k) == 0)
            return 1;
    return 0;
}

static void print_tree(const cJSON *v, int depth);

static void print_item(const cJSON *it, int depth)
{
    printf("%*s", depth * 2, "");
    if (it->string) {
        /* "no_number" reads "no number" */
        for (const char *k = it->string; *k; k++)
            putchar(*k == '_' ? ' ' : *k);
        putchar(':');
    } else {
        putchar('-');
    }
    if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
        if (it->child == NULL) {
            printf(" (none)\n");
        } else {
            printf("\n");
            print_tree(it, depth + 1);
        }
    } else if (cJSON_IsString(it)) {
        printf(" %s\n", it->valuestring);
    } else if (cJSON_IsNumber(it)) {
        printf(" %.15g\n", it->valuedouble);
    } else if (cJSON_IsBool(it)) {
        printf(" %s\n", cJSON_IsTrue(it) ? "yes" : "no");
    } else {
        printf(" -\n");
    }
}

/* Prints a JSON object or array as indented "key: value" lines. */
static void print_tree(const cJSON *v, int depth)
{
    if (cJSON_IsObject(v))
        for (size_t i = 0; preview_order[i]; i++) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(v, preview_order[i]);
            if (it)
                print_item(it, depth);
        }
    for (const cJSON *it = v->child; it; it = it->next)
        if (!cJSON_IsObject(v) || !preview_listed(it->string))
            print_item(it, depth);
}

int cmd_bulk_preview(struct ctl *ctl, int argc, char **argv)
{
    if (argc == 0)
        return ctl_usage_error(ctl, "expected a bulk ID");
    if (argc > 1)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[1]);
    int rc = bulk_check_arg(ctl, argv[0]);
    if (rc != CTL_OK)
        return rc;
    PGconn *c = bulk_db_open(ctl);
    if (c == NULL)
        return CTL_FAIL;
    char id[37];
    int known;
    rc = bulk_resolve(ctl, c, argv[0], 0, id, &known);
    if (rc != CTL_OK) {
        PQfinish(c);
        return rc;
    }
    const char *params[1] = {id};
    /* recipients whose SMS record Dynamics refused (bulk_chunk.c): their
     * messages are Failed with that prefix; the count and one of them */
    PGresult *r = bulk_db_exec(
        c,
        "SELECT coalesce(b.name, ''), b.state, b.preflight::text, coalesce(b.last_error, ''),"
        " x.n, coalesce(x.first, ''),"
        " CASE WHEN b.scheduled_start > now() THEN"
        " to_char(b.scheduled_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END"
        " FROM smsys_bulk b CROSS JOIN LATERAL"
        " (SELECT count(*) AS n, min(q.recipient || ': ' || q.last_error) AS first"
        "  FROM smsys_message q WHERE q.bulk_id = b.id AND q.state = 6"
        "  AND q.last_error LIKE 'Dynamics refused the SMS record: %') x"
        " WHERE b.id = $1::uuid",
        1, params);
    PQfinish(c);
    if (r == NULL)
        return CTL_FAIL;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ctl_fail("bulk %s disappeared", id);
    }
    const char *name = PQgetvalue(r, 0, 0);
    int state = (int)num(r, 0, 1);
    cJSON *pre = PQgetisnull(r, 0, 2) ? NULL : cJSON_Parse(PQgetvalue(r, 0, 2));
    const char *err = PQgetvalue(r, 0, 3);
    long long nref = num(r, 0, 4);
    const char *ref1 = PQgetvalue(r, 0, 5);
    if (ctl->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "state", bulk_state_name(state));
        cJSON_AddNumberToObject(o, "state_code", state);
        if (pre)
            cJSON_AddItemToObject(o, "preflight", pre);
        else
            cJSON_AddNullToObject(o, "preflight");
        if (*err)
            cJSON_AddStringToObject(o, "last_error", err);
        else
            cJSON_AddNullToObject(o, "last_error");
        cJSON_AddNumberToObject(o, "refused_by_dynamics", (double)nref);
        if (nref)
            cJSON_AddStringToObject(o, "refused_example", ref1);
        print_json(o);
        cJSON_Delete(o);
        PQclear(r);
        return CTL_OK;
    }
    printf("bulk %s  %s  (%s)\n", id, name, bulk_state_name(state));
    const char *sched = PQgetisnull(r, 0, 6) ? NULL : PQgetvalue(r, 0, 6);
    if (pre == NULL && state == BULK_READY && sched) {
        printf("not expanded yet: the bulk waits for its scheduled start, %s UTC; the "
               "preflight summary is made once smsysd has read the audience then\n",
               sched);
    } else if (pre == NULL) {
        printf("not expanded yet: the preflight summary is made once smsysd has read the "
               "audience%s\n",
               state == BULK_READY || state == BULK_EXPANDING ? " (it is on it)" : "");
    } else if (cJSON_IsString(pre)) {
        printf("%s\n", pre->valuestring); /* the summary as the note on the record shows it */
    } else {
        print_tree(pre, 0);
        /* the engine's verdict: refused (with the reason) or not */
        const cJSON *refused = cJSON_GetObjectItemCaseSensitive(pre, "refused");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(pre, "reason");
        if (cJSON_IsBool(refused))
            printf("verdict: %s%s\n", cJSON_IsTrue(refused) ? "REFUSED: " : "goes ahead",
                   cJSON_IsTrue(refused) && cJSON_IsString(reason) ? reason->valuestring : "");
    }
    if (*err)
        printf("last error: %s\n", err);
    if (nref)
        printf("refused by Dynamics: %lld (their messages are Failed), e.g. %s\n", nref, ref1);
    cJSON_Delete(pre);
    PQclear(r);
    return CTL_OK;
}

/* ---- start, pause, resume, cancel ---- */

enum bulk_cmd { CMD_START, CMD_PAUSE, CMD_RESUME, CMD_CANCEL };

/* smsys_bulk_request: records the command for the service, applies
 * pause/resume/cancel in PostgreSQL and NOTIFYs smsys_bulk, in one
 * statement (one transaction). */
static int request(PGconn *c, const char *id, const char *command, const char *rate)
{
    const char *who = getenv("USER");
    const char *params[4] = {id, command, rate, who && *who ? who : "smsysctl"};
    PGresult *r = bulk_db_exec(c, BULK_SQL_REQUEST, 4, params);
    int rc = r ? CTL_OK : CTL_FAIL;
    PQclear(r);
    return rc;
}

static const char *const cmd_names[] = {"start", "pause", "resume", "cancel"};

static int control(struct ctl *ctl, int argc, char **argv, enum bulk_cmd cmd)
{
    const char *arg = NULL, *rate = NULL;
    for (int i = 0; i < argc; i++) {
        if (cmd == CMD_START && strcmp(argv[i], "--rate") == 0) {
            long long v;
            if (i + 1 >= argc || util_parse_int(argv[i + 1], 0, 1000000, &v) != 0)
                return ctl_usage_error(ctl, "--rate needs messages per second, 0-1000000 (0: "
                                            "no per-bulk limit)");
            rate = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        } else if (arg == NULL) {
            arg = argv[i];
        } else {
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        }
    }
    if (arg == NULL)
        return ctl_usage_error(ctl, "expected a bulk ID");
    int rc = bulk_check_arg(ctl, arg);
    if (rc != CTL_OK)
        return rc;
    PGconn *c = bulk_db_open(ctl);
    if (c == NULL)
        return CTL_FAIL;
    char id[37];
    int known = 0;
    rc = bulk_resolve(ctl, c, arg, cmd == CMD_START, id, &known);
    struct bulk_row b = {0};
    if (rc == CTL_OK && known && bulk_row_get(c, id, &b) != 1)
        rc = CTL_FAIL;
    if (rc != CTL_OK) {
        PQfinish(c);
        return rc;
    }
    int st = known ? b.v.state : BULK_DRAFT;
    const char *stname = bulk_state_name(st);
    char label[320];
    if (known)
        snprintf(label, sizeof(label), "bulk %.8s (%s)", id, b.name);
    else
        snprintf(label, sizeof(label), "bulk %s", id);

    /* A Failed bulk may start over (smsysd does it only when none of its
     * messages exists yet: it failed at start or preflight). */
    int restart = cmd == CMD_START && st == BULK_FAILED;
    if (bulkview_final(st) && !restart) {
        PQfinish(c);
        if ((cmd == CMD_CANCEL && st == BULK_CANCELED)) {
            printf("%s is already canceled\n", label);
            return CTL_OK;
        }
        return ctl_fail("%s is %s: a final state, there is nothing to %s", label, stname,
                        cmd_names[cmd]);
    }
    const char *command = cmd_names[cmd];
    switch (cmd) {
    case CMD_START:
        if (st == BULK_PAUSED) {
            /* A paused bulk restarts where it stopped: that is resume. */
            command = "resume";
        } else if (known && rate == NULL && !restart) {
            PQfinish(c);
            printf("%s is already %s: nothing to start\n", label, stname);
            return CTL_OK;
        }
        break;
    case CMD_PAUSE:
        if (st == BULK_PAUSED) {
            PQfinish(c);
            printf("%s is already paused\n", label);
            return CTL_OK;
        }
        break;
    case CMD_RESUME:
        if (st != BULK_PAUSED) {
            PQfinish(c);
            printf("%s is %s, not paused: nothing to resume\n", label, stname);
            return CTL_OK;
        }
        break;
    case CMD_CANCEL:
        break;
    }
    rc = request(c, id, command, rate);
    if (rc == CTL_OK && known && bulk_row_get(c, id, &b) != 1)
        rc = CTL_FAIL;
    PQfinish(c);
    if (rc != CTL_OK)
        return rc;
    char rate_txt[80] = "";
    if (rate)
        snprintf(rate_txt, sizeof(rate_txt), " at %s messages/s%s", rate,
                 strcmp(rate, "0") == 0 ? " (no per-bulk limit)" : "");
    const struct bulk_progress *n = &b.v.c;
    switch (cmd) {
    case CMD_START:
        if (st == BULK_PAUSED)
            printf("%s was paused: resumed%s (%s); %lld waiting message(s) are handed over "
                   "again. smsysd sets %s in Dynamics\n",
                   label, rate_txt, bulk_state_name(b.v.state), n->queued,
                   bulk_state_name(b.v.state));
        else if (restart)
            printf("%s failed%s%s: start requested%s. smsysd starts it over, with the settings "
                   "it has in Dynamics now, if none of its messages exists yet (it failed "
                   "before sending); otherwise it stays Failed\n",
                   label, b.last_error[0] ? ": " : "", b.last_error, rate_txt);
        else if (known)
            printf("%s is %s: its rate is now%s, for the messages not yet released\n", label,
                   stname, rate_txt);
        else
            printf("%s: start requested%s. smsysd reads it from Dynamics, sets it Ready, reads "
                   "the audience and checks the cost (smsysctl bulk preview), then sends; "
                   "follow it with smsysctl bulk watch. If smsysd is not running, it starts "
                   "when smsysd does\n",
                   label, rate_txt);
        break;
    case CMD_PAUSE:
        printf("%s paused: no new hand-overs; %lld waiting message(s) stay queued, %lld in "
               "flight finish. smsysd sets Paused in Dynamics\n",
               label, n->queued, n->inflight);
        break;
    case CMD_RESUME:
        printf("%s resumed (%s): %lld waiting message(s) are handed over again. smsysd sets "
               "%s in Dynamics\n",
               label, bulk_state_name(b.v.state), n->queued, bulk_state_name(b.v.state));
        break;
    case CMD_CANCEL:
        printf("%s canceled: %lld recipient(s) will not be sent to, %lld message(s) in flight "
               "finish. smsysd sets Canceled in Dynamics\n",
               label, n->canceled, n->inflight);
        break;
    }
    return CTL_OK;
}

int cmd_bulk_start(struct ctl *ctl, int argc, char **argv)
{
    return control(ctl, argc, argv, CMD_START);
}

int cmd_bulk_pause(struct ctl *ctl, int argc, char **argv)
{
    return control(ctl, argc, argv, CMD_PAUSE);
}

int cmd_bulk_resume(struct ctl *ctl, int argc, char **argv)
{
    return control(ctl, argc, argv, CMD_RESUME);
}

int cmd_bulk_cancel(struct ctl *ctl, int argc, char **argv)
{
    return control(ctl, argc, argv, CMD_CANCEL);
}
