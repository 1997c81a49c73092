/* smsysd - the smsys service: loads the config, registers the components
 * and hands the loop to the service (src/service.c), which owns signals,
 * graceful stop and reload. New modules plug in in register_components(). */
#include "smsys/config.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/migrate.h"
#include "smsys/service.h"
#include "smsys/version.h"
#include "smsysd.h"
#include "comp_bulk.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DEFAULT_CONFIG "/etc/smsys/smsys.conf"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: smsysd [--config FILE] [--check-config]\n"
            "       smsysd --version | --help\n"
            "\n"
            "Runs the smsys service in the foreground, logging to stderr.\n"
            "\n"
            "  --config FILE    configuration file (default: $SMSYS_CONFIG or " DEFAULT_CONFIG ")\n"
            "  --check-config   validate the configuration, print problems, and exit\n"
            "  --version        print the version and exit\n"
            "  --help           print this help and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop gracefully (a second one stops at once),\n"
            "SIGHUP reloads the configuration.\n");
}

static int check_config(const char *path)
{
    struct buf report = BUF_INIT;
    int nerr = config_check(path, &report, NULL);
    if (report.data)
        fputs(report.data, stderr);
    buf_free(&report);
    if (nerr < 0) {
        fprintf(stderr, "smsysd: out of memory checking %s\n", path);
        return 1;
    }
    if (nerr == 0)
        printf("%s: ok\n", path);
    return nerr ? 1 : 0;
}

int smsysd_on_scrape(struct smsysd *d, smsysd_scrape_cb cb, void *ud)
{
    if (d->nscrape >= SMSYSD_MAX_SCRAPE)
        return -ENOSPC;
    d->scrape[d->nscrape].cb = cb;
    d->scrape[d->nscrape].ud = ud;
    d->nscrape++;
    return 0;
}

void smsysd_scrape(struct smsysd *d)
{
    for (size_t i = 0; i < d->nscrape; i++)
        d->scrape[i].cb(d, d->scrape[i].ud);
}

/* Brings the schema to this build's version (or, with migrate_on_start =
 * false, checks that it is there) before anything touches the database.
 * Blocking on purpose: nothing is served yet, and the advisory lock in
 * migrate_apply makes concurrent starts safe. Returns 0 or logs why not. */
static int prepare_schema(const struct smsys_config *cfg)
{
    char dir[4096];
    struct smsys_err err = {0};
    if (migrate_default_dir(dir, sizeof(dir)) != 0) {
        log_error("sql migrations not found, not starting", "dir=%s hint=\"set SMSYS_SQL_DIR\"",
                  dir);
        return -1;
    }
    if (cfg->postgres.migrate_on_start) {
        int n = migrate_apply(cfg->postgres.conninfo, dir, 0, &err);
        if (n < 0) {
            log_error("database migration failed, not starting", "error=\"%s\"", log_q(err.detail));
            return -1;
        }
        log_info("database schema ready", "applied=%d", n);
        return 0;
    }
    int db = 0, newest = 0;
    if (migrate_status(cfg->postgres.conninfo, dir, &db, &newest, &err) != 0) {
        log_error("database schema check failed, not starting", "error=\"%s\"", log_q(err.detail));
        return -1;
    }
    if (db != newest) {
        log_error("database schema is not current, not starting",
                  "db_version=%d build_version=%d hint=\"%s\"", db, newest,
                  db < newest ? "run smsysctl db migrate"
                              : "this smsys is older than the database");
        return -1;
    }
    log_info("database schema ready", "version=%d", db);
    return 0;
}

/* Adds every module of the service. Each module owns its own component
 * struct; the order here is the start order (stop runs in reverse, so
 * the HTTP endpoint goes first and the database last). */
static int register_components(struct smsysd *d)
{
    int rc = smsysd_add_pg(d);
    if (rc == 0)
        rc = smsysd_add_http(d);
    if (rc == 0)
        rc = smsysd_add_dataverse(d);
    if (rc == 0)
        rc = smsysd_add_accounts(d);
    /* Drains run together; the write-back keeps writing while rows are
     * due within the grace period, and the outbox is durable, so states
     * the senders record at the very end are written after a restart. */
    if (rc == 0)
        rc = smsysd_add_writeback(d);
    if (rc == 0)
        rc = smsysd_add_connectors(d);
    if (rc == 0)
        rc = smsysd_add_sender(d);
    if (rc == 0)
        rc = smsysd_add_tracker(d);
    if (rc == 0)
        rc = smsysd_add_pickup(d);
    if (rc == 0)
        rc = smsysd_add_inbound(d);
    if (rc == 0)
        rc = smsysd_add_bulk(d);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = getenv("SMSYS_CONFIG");
    int check_only = 0;
    if (path == NULL || *path == '\0')
        path = DEFAULT_CONFIG;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0) {
            printf("smsysd %s\n", SMSYS_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--check-config") == 0) {
            check_only = 1;
        } else if ((strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else {
            fprintf(stderr, "smsysd: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (check_only)
        return check_config(path);

    /* Writes to a peer that has gone away must fail with EPIPE, not kill
     * the process. */
    signal(SIGPIPE, SIG_IGN);
    /* Until the service installs its handler, a SIGHUP (a reload sent too
     * early) must not kill the process; the config is being read anyway. */
    signal(SIGHUP, SIG_IGN);

    struct smsys_err err = {0};
    struct smsys_config *cfg = NULL;
    if (config_load(path, &cfg, &err) != 0) {
        log_error("config invalid, not starting", "error=\"%s\"", log_q(err.detail));
        return 1;
    }

    /* libpq's default for connections without connect_timeout: an
     * unreachable host must not hang the start for minutes. */
    setenv("PGCONNECT_TIMEOUT", "10", 0);
    if (prepare_schema(cfg) != 0) {
        config_free(cfg);
        return 1;
    }

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc) {
        log_error("cannot create event loop", "error=\"%s\"", uv_strerror(rc));
        config_free(cfg);
        return 1;
    }
    static struct smsysd d;
    struct service *svc = NULL;
    if (service_new(&loop, path, cfg, &svc) == 0)
        d.svc = svc;
    if (svc == NULL || register_components(&d) != 0) {
        log_error("cannot set up the service", "error=\"%s\"", smsys_strerror(-ENOMEM));
        service_free(svc);
        uv_loop_close(&loop);
        return 1;
    }
    if (service_start(svc, &err) != 0)
        log_error("service failed to start", "error=\"%s\"", log_q(err.detail));
    int code = service_run(svc);
    service_free(svc);
    metrics_free(NULL); /* the default registry the components filled */
    if (uv_loop_close(&loop) != 0 && code == 0) {
        log_error("handles left open at exit", "file=%s", path);
        code = 1;
    }
    return code;
}
