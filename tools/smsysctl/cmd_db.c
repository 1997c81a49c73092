/* cmd_db.c - smsysctl db migrate. */
#include "ctl.h"

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
    /* The migration runner (src/migrate.c) is not part of this build yet;
     * say so plainly rather than pretend the schema is current. */
    config_free(cfg);
    return ctl_fail("db migrate%s: this build has no migration runner yet (src/migrate.c)",
                    dry_run ? " --dry-run" : "");
}
