/* cmd_doctor.c - smsysctl doctor: one line per check, with the fix.
 *
 * Checks run in dependency order; when one fails, the checks that need it
 * are printed as skip with the reason, so the first FAIL is the one to fix. */
#include "ctl.h"

#include "smsys/migrate.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct doctor {
    struct ctl *ctl;
    int fails;
    cJSON *checks; /* --json */
};

static void report(struct doctor *d, const char *status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* status: "ok", "FAIL", "skip" or "warn"; fmt: how to fix, or NULL. */
static void report(struct doctor *d, const char *status, const char *what, const char *fmt, ...)
{
    char fix[600] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fix, sizeof(fix), fmt, ap);
        va_end(ap);
    }
    if (strcmp(status, "FAIL") == 0)
        d->fails++;
    if (d->checks) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddStringToObject(o, "check", what);
        if (*fix)
            cJSON_AddStringToObject(o, "fix", fix);
        cJSON_AddItemToArray(d->checks, o);
    } else {
        printf("%-4s  %s%s%s\n", status, what, *fix ? "  — " : "", fix);
    }
}

static void check_warnings(struct doctor *d, const struct smsys_config *cfg)
{
    const char *w = cfg->warnings;
    while (w && *w) {
        const char *nl = strchr(w, '\n');
        int len = nl ? (int)(nl - w) : (int)strlen(w);
        char what[512];
        snprintf(what, sizeof(what), "config: %.*s", len, w);
        report(d, "warn", what, NULL);
        w += len + (nl ? 1 : 0);
    }
}

/* First line of a libpq message, without the trailing newline. */
static void first_line(const char *msg, char *out, size_t len)
{
    size_t n = strcspn(msg, "\n");
    if (n >= len)
        n = len - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

/* Connects with plain blocking libpq: the CLI has no loop to keep
 * responsive, and a bounded connect_timeout keeps doctor from hanging.
 * Returns 1 when connected. */
static int check_postgres(struct doctor *d, const struct smsys_config *cfg)
{
    /* connect_timeout comes first so a value in the conninfo wins. */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {"5", cfg->postgres.conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL) {
        report(d, "FAIL", "postgresql: connect with [postgres] conninfo", "out of memory");
        return 0;
    }
    int ok = PQstatus(pg) == CONNECTION_OK;
    if (ok) {
        int v = PQserverVersion(pg);
        char what[512];
        snprintf(what, sizeof(what),
                 "postgresql: connected to database %s on %s as %s (server %d.%d)", PQdb(pg),
                 PQhost(pg), PQuser(pg), v / 10000, v % 10000);
        report(d, "ok", what, NULL);
    } else {
        char msg[300];
        first_line(PQerrorMessage(pg), msg, sizeof(msg));
        report(d, "FAIL", "postgresql: connect with [postgres] conninfo",
               "%s; is PostgreSQL running and does [postgres] conninfo name the right host, "
               "database and user (password in ~/.pgpass or env:/file:)?",
               msg);
    }
    PQfinish(pg);
    return ok;
}

static void check_schema(struct doctor *d, const struct smsys_config *cfg)
{
    const char *what = "postgresql: schema version matches this build";
    char dir[4096];
    if (migrate_default_dir(dir, sizeof(dir)) != 0) {
        report(d, "FAIL", what, "migrations not found (looked in %s); set SMSYS_SQL_DIR", dir);
        return;
    }
    int db = 0, newest = 0;
    struct smsys_err err = {0};
    if (migrate_status(cfg->postgres.conninfo, dir, &db, &newest, &err) != 0) {
        report(d, "FAIL", what, "%s", err.detail);
        return;
    }
    char line[128];
    if (db == newest) {
        snprintf(line, sizeof(line), "postgresql: schema version %d is current", db);
        report(d, "ok", line, NULL);
    } else if (db < newest) {
        snprintf(line, sizeof(line), "postgresql: schema version %d, this build needs %d", db,
                 newest);
        report(d, "FAIL", line,
               "run: smsysctl db migrate (smsysd also does it at start "
               "unless [postgres] migrate_on_start = false)");
    } else {
        snprintf(line, sizeof(line), "postgresql: schema version %d is newer than this build (%d)",
                 db, newest);
        report(d, "FAIL", line,
               "this smsys is older than the database: install the newer "
               "release (never downgrade the schema)");
    }
}

int cmd_doctor(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    struct doctor d = {.ctl = ctl};
    cJSON *root = NULL;
    if (ctl->json) {
        root = cJSON_CreateObject();
        d.checks = cJSON_AddArrayToObject(root, "checks");
        if (root == NULL || d.checks == NULL) {
            cJSON_Delete(root);
            return ctl_fail("out of memory");
        }
    }

    struct smsys_config *cfg = NULL;
    struct smsys_err err = {0};
    char what[600];
    snprintf(what, sizeof(what), "config %s", ctl->config_path);
    if (config_load(ctl->config_path, &cfg, &err) != 0) {
        report(&d, "FAIL", what, "%s (run: smsysctl config check %s)", err.detail,
               ctl->config_path);
    } else {
        report(&d, "ok", what, NULL);
        check_warnings(&d, cfg);
    }

    int pg_ok = 0;
    if (cfg)
        pg_ok = check_postgres(&d, cfg);
    else
        report(&d, "skip", "postgresql: connect with [postgres] conninfo", "needs a valid config");

    if (pg_ok)
        check_schema(&d, cfg);
    else
        report(&d, "skip", "postgresql: schema version matches this build", "%s",
               cfg ? "needs PostgreSQL" : "needs a valid config");

    /* The provider check needs the connectors, not in this build yet. */
    const char *why = cfg ? "not in this build yet" : "needs a valid config";
    if (cfg) {
        char dwhat[600], dfix[800] = "";
        if (ctl_check_dynamics(cfg, dwhat, sizeof(dwhat), dfix, sizeof(dfix)) == 0)
            report(&d, "ok", dwhat, NULL);
        else
            report(&d, "FAIL", dwhat, "%s", dfix);
    } else {
        report(&d, "skip", "dynamics: sign in and WhoAmI", "%s", why);
    }
    report(&d, "skip", "providers: credentials and balance of each account", "%s", why);

    if (root) {
        cJSON_AddBoolToObject(root, "ok", d.fails == 0);
        cJSON_AddNumberToObject(root, "failed", d.fails);
        char *s = cJSON_Print(root);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
    config_free(cfg);
    return d.fails ? CTL_FAIL : CTL_OK;
}
