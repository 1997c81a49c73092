/* cmd_db.c - smsysctl db migrate. */
#include "ctl.h"

#include "smsys/log.h"
#include "smsys/migrate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cmd_db_migrate(struct ctl *ctl, int argc, char **argv)
{
    int dry_run = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            dry_run = 1;
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    char dir[4096];
    if (migrate_default_dir(dir, sizeof(dir)) != 0) {
        config_free(cfg);
        return ctl_fail("migrations not found (looked in %s); set SMSYS_SQL_DIR", dir);
    }
    struct smsys_err err = {0};
    /* Each applied or pending file is logged to stderr by migrate_apply. */
    if (ctl->verbose == 0)
        log_setup(LOG_INFO, LOG_TEXT, stderr);
    int n = migrate_apply(cfg->postgres.conninfo, dir, dry_run, &err);
    config_free(cfg);
    if (n < 0)
        return ctl_fail("db migrate: %s", err.detail[0] ? err.detail : smsys_strerror(n));
    if (n == 0)
        printf("database schema is up to date\n");
    else
        printf("%d migration%s %s\n", n, n == 1 ? "" : "s",
               dry_run ? "pending (nothing changed: --dry-run)" : "applied");
    return CTL_OK;
}
