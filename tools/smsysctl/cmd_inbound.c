/* cmd_inbound.c - smsysctl inbound list|show, optout list|add|remove|
 * import|export and rules test (docs/inbound.md "CLI").
 *
 * The PostgreSQL commands use plain blocking libpq: a one-shot CLI has no
 * event loop to keep responsive, and every statement is parameterised.
 * `rules test` reads the rules from Dynamics with the service's own
 * client (on a private loop, bounded by a deadline) and evaluates them
 * with the service's own keyword engine, changing nothing. */
#include "ctl.h"

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/keyword.h"
#include "smsys/phone.h"
#include "smsys/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static PGconn *db_open(const struct smsys_config *cfg)
{
    PGconn *c = PQconnectdb(cfg->postgres.conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        ctl_fail("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs sql; prints the error and returns NULL on failure. */
static PGresult *db_run(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        ctl_fail("%s%s", PQresultErrorMessage(r),
                 strstr(PQresultErrorMessage(r), "does not exist")
                     ? " (is the schema current? smsysctl db migrate)"
                     : "");
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Prints a result as JSON rows (column -> text or null) or as a table. */
static void print_rows(const struct ctl *ctl, PGresult *r)
{
    int n = PQntuples(r), nf = PQnfields(r);
    if (ctl->json) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; a && i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            for (int k = 0; o && k < nf; k++) {
                if (PQgetisnull(r, i, k))
                    cJSON_AddNullToObject(o, PQfname(r, k));
                else if (PQftype(r, k) == 3802 || PQftype(r, k) == 114) /* jsonb, json */
                    cJSON_AddItemToObject(o, PQfname(r, k), cJSON_Parse(PQgetvalue(r, i, k)));
                else
                    cJSON_AddStringToObject(o, PQfname(r, k), PQgetvalue(r, i, k));
            }
            cJSON_AddItemToArray(a, o);
        }
        char *s = cJSON_Print(a);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(a);
        return;
    }
    for (int k = 0; k < nf; k++)
        printf("%s%s", k ? "\t" : "", PQfname(r, k));
    printf("\n");
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < nf; k++)
            printf("%s%s", k ? "\t" : "", PQgetisnull(r, i, k) ? "-" : PQgetvalue(r, i, k));
        printf("\n");
    }
}

static int with_db(struct ctl *ctl, const char *sql, int n, const char *const *params, int print)
{
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    PGconn *c = db_open(cfg);
    config_free(cfg);
    if (c == NULL)
        return CTL_FAIL;
    PGresult *r = db_run(c, sql, n, params);
    int rc = r ? CTL_OK : CTL_FAIL;
    if (r && print)
        print_rows(ctl, r);
    PQclear(r);
    PQfinish(c);
    return rc;
}

int cmd_inbound_list(struct ctl *ctl, int argc, char **argv)
{
    const char *since = NULL, *limit = "50";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
            since = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = argv[++i];
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    long long lim;
    if (util_parse_int(limit, 1, 100000, &lim) != 0)
        return ctl_usage_error(ctl, "--limit must be 1-100000");
    const char *params[2] = {since, limit};
    return with_db(
        ctl,
        "SELECT id, to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        " AS received_at, src AS \"from\", dst AS line, state, matched_table,"
        " matched_id, left(body, 40) AS text FROM smsys_inbound"
        " WHERE $1::timestamptz IS NULL OR received_at >= $1::timestamptz"
        " ORDER BY id DESC LIMIT $2::integer",
        2, params, 1);
}

int cmd_inbound_show(struct ctl *ctl, int argc, char **argv)
{
    long long id;
    if (argc != 1 || util_parse_int(argv[0], 1, INT64_MAX, &id) != 0)
        return ctl_usage_error(ctl, "expected one inbound id");
    const char *params[1] = {argv[0]};
    int saved = ctl->json;
    ctl->json = 1; /* one record with JSON columns reads best as JSON */
    int rc = with_db(ctl,
                     "SELECT id, uid, account_id, provider_id, fingerprint, src AS \"from\","
                     " src_raw, dst AS line, body AS text, received_at, stored_at, state,"
                     " matched_table, matched_id, others, reply_to, activity_id, rule_results,"
                     " attempts, next_at, last_error, processed_at FROM smsys_inbound"
                     " WHERE id = $1::bigint",
                     1, params, 1);
    ctl->json = saved;
    return rc;
}

static int norm_number(const char *in, char out[PHONE_E164_MAX])
{
    struct smsys_err err;
    if (phone_normalize(in, "IR", out, PHONE_E164_MAX, &err) != 0) {
        ctl_fail("%s: %s", in, err.detail);
        return -1;
    }
    return 0;
}

int cmd_optout_list(struct ctl *ctl, int argc, char **argv)
{
    int all = argc == 1 && strcmp(argv[0], "--all") == 0;
    if (argc > 0 && !all)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    return with_db(ctl,
                   all ? "SELECT number, opted_out, source, who, at, body AS text FROM smsys_optout"
                         " ORDER BY number"
                       : "SELECT number, opted_out, source, who, at, body AS text FROM smsys_optout"
                         " WHERE opted_out ORDER BY number",
                   0, NULL, 1);
}

static int set_one(struct ctl *ctl, int argc, char **argv, int out)
{
    const char *who = getenv("USER");
    if (argc == 3 && strcmp(argv[1], "--who") == 0)
        who = argv[2];
    else if (argc != 1)
        return ctl_usage_error(ctl, "expected NUMBER [--who NAME]");
    char e164[PHONE_E164_MAX];
    if (norm_number(argv[0], e164) != 0)
        return CTL_FAIL;
    const char *params[3] = {e164, out ? "t" : "f", who ? who : ""};
    int rc = with_db(ctl, "SELECT smsys_optout_set($1, $2::boolean, 'cli', $3, NULL, NULL)", 3,
                     params, 0);
    if (rc == CTL_OK)
        printf("%s %s\n", e164, out ? "opted out" : "opted in");
    return rc;
}

int cmd_optout_add(struct ctl *ctl, int argc, char **argv)
{
    return set_one(ctl, argc, argv, 1);
}

int cmd_optout_remove(struct ctl *ctl, int argc, char **argv)
{
    return set_one(ctl, argc, argv, 0);
}

/* CSV: one number per line, optionally "number,opted_out(true/false)";
 * a header line starting with "number" is skipped. One transaction: a bad
 * line rejects the whole file, naming the line. */
int cmd_optout_import(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 1)
        return ctl_usage_error(ctl, "expected FILE.csv");
    FILE *fp = strcmp(argv[0], "-") == 0 ? stdin : fopen(argv[0], "r");
    if (fp == NULL)
        return ctl_fail("%s: %s", argv[0], strerror(errno));
    struct smsys_config *cfg = ctl_load_config(ctl);
    PGconn *c = cfg ? db_open(cfg) : NULL;
    config_free(cfg);
    if (c == NULL) {
        if (fp != stdin)
            fclose(fp);
        return CTL_FAIL;
    }
    PGresult *r = db_run(c, "BEGIN", 0, NULL);
    int rc = r ? CTL_OK : CTL_FAIL;
    PQclear(r);
    char line[512];
    unsigned lineno = 0, n = 0;
    const char *who = getenv("USER");
    while (rc == CTL_OK && fgets(line, sizeof(line), fp)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || (lineno == 1 && strncmp(line, "number", 6) == 0))
            continue;
        char *comma = strchr(line, ',');
        const char *out = "t";
        if (comma) {
            *comma = '\0';
            const char *v = comma + 1;
            if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "f") == 0)
                out = "f";
        }
        char e164[PHONE_E164_MAX];
        struct smsys_err err;
        if (phone_normalize(line, "IR", e164, sizeof(e164), &err) != 0) {
            rc = ctl_fail("%s line %u: %s: %s (nothing imported)", argv[0], lineno, line,
                          err.detail);
            break;
        }
        const char *params[3] = {e164, out, who ? who : ""};
        r = db_run(c, "SELECT smsys_optout_set($1, $2::boolean, 'import', $3, NULL, NULL)", 3,
                   params);
        if (r == NULL)
            rc = CTL_FAIL;
        PQclear(r);
        n++;
    }
    if (fp != stdin)
        fclose(fp);
    r = db_run(c, rc == CTL_OK ? "COMMIT" : "ROLLBACK", 0, NULL);
    PQclear(r);
    PQfinish(c);
    if (rc == CTL_OK)
        printf("imported %u numbers\n", n);
    return rc;
}

int cmd_optout_export(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    struct smsys_config *cfg = ctl_load_config(ctl);
    PGconn *c = cfg ? db_open(cfg) : NULL;
    config_free(cfg);
    if (c == NULL)
        return CTL_FAIL;
    PGresult *r = db_run(c,
                         "SELECT number, opted_out, source, who, at FROM smsys_optout"
                         " ORDER BY number",
                         0, NULL);
    if (r == NULL) {
        PQfinish(c);
        return CTL_FAIL;
    }
    printf("number,opted_out,source,who,at\n");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s,%s,%s,\"%s\",%s\n", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1)[0] == 't' ? "true" : "false", PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    PQclear(r);
    PQfinish(c);
    return CTL_OK;
}

/* ---- rules test ---- */

struct fetch {
    int done, rc;
    cJSON *rows;
    char sep[256];
    struct smsys_err err;
};

static void rules_cb(int rc, struct dv_result *res, void *ud)
{
    struct fetch *f = ud;
    f->rc = rc;
    if (rc == 0 && res->json) {
        f->rows = cJSON_DetachItemFromObjectCaseSensitive(res->json, "value");
    } else if (res) {
        f->err = res->err;
    }
    f->done = 1;
}

static void sep_cb(int rc, struct dv_result *res, void *ud)
{
    struct fetch *f = ud;
    if (rc == 0 && res->json) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(res->json, "smsys_separators");
        if (cJSON_IsString(s))
            snprintf(f->sep, sizeof(f->sep), "%s", s->valuestring);
    }
    f->done = 1;
}

static void run_until(uv_loop_t *loop, int *flag)
{
    uint64_t end = util_now_ms() + 30000;
    while (!*flag && util_now_ms() < end && uv_run(loop, UV_RUN_ONCE))
        ;
}

static int fetch_rules(const struct smsys_config *cfg, const char *account, struct fetch *f)
{
    uv_loop_t loop;
    struct http_client *http = NULL;
    struct dv_client *dv = NULL;
    int rc = uv_loop_init(&loop);
    if (rc)
        return rc;
    static const enum dv_auth auths[] = {DV_AUTH_CLIENT_CREDENTIALS, DV_AUTH_NTLM,
                                         DV_AUTH_NEGOTIATE};
    struct http_client_opts ho = {
        .proxy = cfg->dataverse.proxy, .ca_file = cfg->dataverse.ca_file, .user_agent = "smsysctl"};
    struct dv_opts o = {
        .url = cfg->dataverse.url,
        .api_version = cfg->dataverse.api_version,
        .auth = auths[cfg->dataverse.auth],
        .token_url = cfg->dataverse.token_url,
        .client_id = cfg->dataverse.client_id,
        .client_secret = cfg->dataverse.client_secret,
        .scope = cfg->dataverse.scope,
        .resource = cfg->dataverse.resource,
        .username = cfg->dataverse.username,
        .password = cfg->dataverse.password,
        .max_retries = 1,
        .throttle_retries = 1,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    rc = http_client_new(&loop, &ho, &http);
    if (rc == 0)
        rc = dv_new(&loop, http, &o, &dv);
    if (rc == 0)
        rc = dv_request(dv, "GET",
                        "smsys_keywordrules?$select=smsys_name,smsys_keywords,smsys_match,"
                        "smsys_action,smsys_priority,smsys_stop,smsys_actionname,"
                        "_smsys_settingid_value,_smsys_templateid_value,_smsys_queueid_value,"
                        "statecode",
                        NULL, NULL, rules_cb, f);
    if (rc == 0) {
        run_until(&loop, &f->done);
        rc = f->done ? f->rc : -ETIMEDOUT;
    }
    if (rc == 0 && account) {
        char path[200];
        snprintf(path, sizeof(path), "smsys_smssettings(%s)?$select=smsys_separators", account);
        f->done = 0;
        if (dv_request(dv, "GET", path, NULL, NULL, sep_cb, f) == 0)
            run_until(&loop, &f->done);
    }
    if (dv)
        dv_close(dv, NULL, NULL);
    if (http)
        http_client_close(http, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}

static const char *would_do(const struct kw_rule_def *r)
{
    static char s[200];
    switch (r->action) {
    case KW_OPT_OUT:
        return "set smsys_donotsms on the sender's records and list the number as opted out";
    case KW_OPT_IN:
        return "clear smsys_donotsms and list the number as opted in";
    case KW_REPLY:
        snprintf(s, sizeof(s), "reply with template %s", r->template_id ? r->template_id : "?");
        return s;
    case KW_CASE:
        snprintf(s, sizeof(s), "create a case%s%s", r->queue_id ? " in queue " : "",
                 r->queue_id ? r->queue_id : "");
        return s;
    case KW_ROUTE:
        snprintf(s, sizeof(s), "add the case (or the SMS) to queue %s",
                 r->queue_id ? r->queue_id : "?");
        return s;
    case KW_CALL:
        snprintf(s, sizeof(s), "call the Dataverse action %s",
                 r->action_name ? r->action_name : "?");
        return s;
    }
    return "?";
}

int cmd_rules_test(struct ctl *ctl, int argc, char **argv)
{
    const char *text = NULL, *from = NULL, *account = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--account") == 0 && i + 1 < argc)
            account = argv[++i];
        else if (text == NULL)
            text = argv[i];
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    if (text == NULL)
        return ctl_usage_error(ctl, "expected the message text");
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    char acct_id[64];
    if (account && strlen(account) != 36) {
        /* a name: the accounts sync keeps smsys_account current */
        PGconn *c = db_open(cfg);
        const char *params[1] = {account};
        PGresult *r =
            c ? db_run(c, "SELECT id FROM smsys_account WHERE name = $1", 1, params) : NULL;
        int found = r && PQntuples(r) == 1;
        if (found)
            snprintf(acct_id, sizeof(acct_id), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(c);
        if (!found) {
            config_free(cfg);
            return ctl_fail("no provider account named '%s' (smsysctl queue stats lists them)",
                            account);
        }
        account = acct_id;
    }
    struct fetch f = {0};
    int rc = fetch_rules(cfg, account, &f);
    if (rc < 0) {
        config_free(cfg);
        cJSON_Delete(f.rows);
        return ctl_fail("reading the keyword rules: %s",
                        f.err.detail[0] ? f.err.detail : smsys_strerror(rc));
    }
    struct kw_rules *rs = NULL;
    unsigned skipped = 0;
    rc = keyword_rules_new(&rs);
    if (rc == 0)
        rc = keyword_rules_from_json(rs, f.rows, &skipped);
    if (rc == 0)
        rc = keyword_rules_add_defaults(rs);
    cJSON_Delete(f.rows);
    struct kw_result res;
    if (rc >= 0)
        rc = keyword_eval(rs, text, f.sep[0] ? f.sep : NULL, account, &res);
    if (rc < 0) {
        keyword_rules_free(rs);
        config_free(cfg);
        return ctl_fail("evaluating: %s", smsys_strerror(rc));
    }
    char match[200] = "";
    if (from) {
        char e164[PHONE_E164_MAX];
        if (norm_number(from, e164) == 0) {
            PGconn *c = db_open(cfg);
            const char *params[1] = {e164};
            PGresult *r = c ? db_run(c,
                                     "SELECT tbl || ' ' || record_id FROM smsys_pi_match($1)"
                                     " LIMIT 1",
                                     1, params)
                            : NULL;
            snprintf(match, sizeof(match), "%s",
                     r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "(no record: unmatched)");
            PQclear(r);
            PQfinish(c);
        }
    }
    config_free(cfg);
    if (ctl->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *hits = cJSON_AddArrayToObject(o, "rules");
        for (size_t i = 0; i < res.nhits; i++) {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddStringToObject(h, "id", res.hits[i].rule->id ? res.hits[i].rule->id : "");
            cJSON_AddStringToObject(h, "name",
                                    res.hits[i].rule->name ? res.hits[i].rule->name : "");
            cJSON_AddNumberToObject(h, "action", res.hits[i].rule->action);
            cJSON_AddStringToObject(h, "would", would_do(res.hits[i].rule));
            cJSON *w = cJSON_AddArrayToObject(h, "words");
            for (size_t k = 0; k < res.hits[i].nwords; k++)
                cJSON_AddItemToArray(w, cJSON_CreateString(res.hits[i].words[k]));
            cJSON_AddItemToArray(hits, h);
        }
        cJSON_AddStringToObject(o, "rest", res.rest ? res.rest : "");
        if (from)
            cJSON_AddStringToObject(o, "match", match);
        char *s = cJSON_Print(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("%zu rule(s) loaded%s; %zu word(s)\n", keyword_rules_count(rs),
               skipped ? " (some invalid ones skipped)" : "", res.nwords);
        if (from)
            printf("sender %s matches: %s\n", from, match);
        if (res.nhits == 0)
            printf("no rule fires\n");
        for (size_t i = 0; i < res.nhits; i++) {
            const struct kw_rule_def *r = res.hits[i].rule;
            printf("%zu. %s (%s, priority %d%s): %s; words:", i + 1, r->name ? r->name : r->id,
                   keyword_match_name(r->match), r->priority, r->stop ? ", stop" : "", would_do(r));
            for (size_t k = 0; k < res.hits[i].nwords; k++)
                printf(" %s", res.hits[i].words[k]);
            printf("\n");
        }
        printf("rest (case description): %s\n", res.rest && *res.rest ? res.rest : "(empty)");
        printf("dry run: nothing was changed\n");
    }
    keyword_result_free(&res);
    keyword_rules_free(rs);
    return CTL_OK;
}
