/* migrate.h - numbered SQL migrations (sql/NNN_name.sql).
 *
 * Used by `smsysctl db migrate`, `smsysctl doctor` and once at smsysd
 * startup, before the event loop serves anything. These functions use
 * plain blocking libpq on purpose: they run before (or outside) the loop,
 * a migration must finish before the service may touch the schema, and
 * the simple query protocol is needed to run a file of many statements.
 * Never call them from a loop callback.
 *
 * Each pending file runs in its own transaction together with the INSERT of
 * its row into smsys_schema_migrations, so it is applied fully or not at
 * all. A session advisory lock serialises concurrent migrators: the second
 * one waits, then finds nothing left to do. */
#ifndef SMSYS_MIGRATE_H
#define SMSYS_MIGRATE_H

#include <stddef.h>

#include "smsys/error.h"

/* Applies every migration in sqldir newer than the database's version.
 * Returns the number applied (0: already up to date), or with dry_run the
 * number that would be applied, logging each; or a negative code with
 * err->detail set:
 *   SMSYS_ESCHEMA  the database has a version newer than the newest file
 *                  (this build is too old), or a version in the database
 *                  is missing from sqldir, or a file below the database's
 *                  version was never applied (files must not be inserted
 *                  below applied ones), or a file ended its transaction;
 *   SMSYS_ECONFIG  sqldir unreadable, a *.sql file with a bad name, two
 *                  files with one version;
 *   SMSYS_EPG      cannot connect, or a statement failed (detail names the
 *                  file and the SQLSTATE; that file was rolled back, the
 *                  ones before it stay applied). */
int migrate_apply(const char *conninfo, const char *sqldir, int dry_run, struct smsys_err *err);

/* Reads the database's version (0 when never migrated) and the newest
 * version in sqldir, for `smsysctl doctor`. Returns 0, or SMSYS_ECONFIG /
 * SMSYS_EPG as above; it does not judge the two numbers. */
int migrate_status(const char *conninfo, const char *sqldir, int *db_version, int *newest,
                   struct smsys_err *err);

/* Where the migrations live at run time: $SMSYS_SQL_DIR if set; else
 * <directory of /proc/self/exe>/../../sql (a program run from the build
 * tree, build/bin/X); else /usr/share/smsys/sql. Writes the chosen path to
 * buf and returns 0, or -ENOENT when that directory does not exist (buf
 * still names the last candidate, for the error message), -ENAMETOOLONG. */
int migrate_default_dir(char *buf, size_t len);

#endif
