/* Integration tests for migrations. Each test works in its own temporary
 * database smsys_t_mig<n>_<pid> (world_db_create), created and dropped here, so tests never
 * see each other's schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/migrate.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "../lib/world.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_seq;

/* An empty database (no migrations) per test as *state (a struct
 * world_pg); db_teardown drops it. */
static int db_setup(void **state)
{
    char tag[32];
    snprintf(tag, sizeof(tag), "mig%d", ++g_seq);
    *state = world_pg_new(tag, 0);
    return 0;
}

#define db_teardown world_pg_teardown

/* One value from the test database, or "" when there is no row. */
static void db_value(const struct world_pg *t, const char *sql, char *out, size_t len)
{
    world_db_value(t->conninfo, sql, out, len);
}

static void db_exec(const struct world_pg *t, const char *sql)
{
    world_db_exec(t->conninfo, sql);
}

/* Number of migration files shipped in sql/. */
static int shipped_newest(void)
{
    int newest = -1, dbv = -1;
    struct smsys_err e;
    /* migrate_status needs a database; the admin one is fine for reading. */
    assert_int_equal(migrate_status(tu_pg_conninfo(), tu_src("sql"), &dbv, &newest, &e), 0);
    assert_true(newest >= 1);
    return newest;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void copy_init(const char *dir)
{
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s", tu_src("sql/001_init.sql"));
    FILE *f = fopen(src, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    write_file(dir, "001_init.sql", text);
}

static void rm_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_apply_idempotent(void **state)
{
    struct world_pg *t = *state;
    struct smsys_err e;
    int newest = shipped_newest();
    int dbv = -1, nw = -1;
    assert_int_equal(migrate_status(t->conninfo, tu_src("sql"), &dbv, &nw, &e), 0);
    assert_int_equal(dbv, 0);
    assert_int_equal(nw, newest);

    /* Dry run: reports, changes nothing. */
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 1, &e), newest);
    char v[64];
    db_value(t, "SELECT to_regclass('smsys_schema_migrations') IS NULL", v, sizeof(v));
    assert_string_equal(v, "t");

    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 0, &e), newest);
    assert_int_equal(e.code, 0);
    assert_int_equal(migrate_status(t->conninfo, tu_src("sql"), &dbv, &nw, &e), 0);
    assert_int_equal(dbv, newest);
    db_value(t, "SELECT name FROM smsys_schema_migrations WHERE version = 1", v, sizeof(v));
    assert_string_equal(v, "001_init.sql");
    db_value(t, "SELECT count(*) FROM smsys_schema_migrations WHERE applied_at <= now()", v,
             sizeof(v));
    char want[16];
    snprintf(want, sizeof(want), "%d", newest);
    assert_string_equal(v, want);

    /* Again: nothing to do, nothing changed. */
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 0, &e), 0);
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 1, &e), 0);
    db_value(t, "SELECT count(*) FROM smsys_schema_migrations", v, sizeof(v));
    assert_string_equal(v, want);
}

static void test_newer_db_refused(void **state)
{
    struct world_pg *t = *state;
    struct smsys_err e;
    int newest = shipped_newest();
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 0, &e), newest);
    db_exec(t, "INSERT INTO smsys_schema_migrations (version, name) VALUES (99999, 'future.sql')");
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 0, &e), SMSYS_ESCHEMA);
    assert_int_equal(e.code, SMSYS_ESCHEMA);
    assert_non_null(strstr(e.detail, "99999"));
    assert_int_equal(migrate_apply(t->conninfo, tu_src("sql"), 1, &e), SMSYS_ESCHEMA);
    int dbv = 0, nw = 0;
    assert_int_equal(migrate_status(t->conninfo, tu_src("sql"), &dbv, &nw, &e), 0);
    assert_int_equal(dbv, 99999);
    assert_int_equal(nw, newest);
}

static void test_broken_rolls_back(void **state)
{
    struct world_pg *t = *state;
    struct smsys_err e;
    char dir[] = "/tmp/smsys_mig_XXXXXX";
    assert_non_null(mkdtemp(dir));
    copy_init(dir);
    write_file(dir, "README", "not a migration\n");
    write_file(dir, "002_good.sql", "CREATE TABLE good (x int);\nINSERT INTO good VALUES (1);\n");
    write_file(dir, "003_broken.sql",
               "CREATE TABLE half (x int);\nINSERT INTO half VALUES (1);\n"
               "SELECT no_such_function();\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_EPG);
    assert_non_null(strstr(e.detail, "003_broken.sql"));
    assert_non_null(strstr(e.detail, "SQLSTATE 42883"));
    char v[64];
    db_value(t, "SELECT max(version) FROM smsys_schema_migrations", v, sizeof(v));
    assert_string_equal(v, "2");
    db_value(t, "SELECT to_regclass('half') IS NULL", v, sizeof(v));
    assert_string_equal(v, "t"); /* the whole file rolled back */
    db_value(t, "SELECT count(*) FROM good", v, sizeof(v));
    assert_string_equal(v, "1");

    /* Fixed file: applies. */
    write_file(dir, "003_broken.sql", "CREATE TABLE half (x int);\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), 1);
    db_value(t, "SELECT max(version) FROM smsys_schema_migrations", v, sizeof(v));
    assert_string_equal(v, "3");

    /* A file that ends the transaction itself is refused. */
    write_file(dir, "004_commits.sql", "CREATE TABLE c4 (x int);\nCOMMIT;\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_ESCHEMA);
    assert_non_null(strstr(e.detail, "004_commits.sql"));
    db_value(t, "SELECT max(version) FROM smsys_schema_migrations", v, sizeof(v));
    assert_string_equal(v, "3");
    rm_dir(dir);
}

static void test_dir_rules(void **state)
{
    struct world_pg *t = *state;
    struct smsys_err e;
    char dir[] = "/tmp/smsys_mig_XXXXXX";
    assert_non_null(mkdtemp(dir));
    copy_init(dir);
    write_file(dir, "003_third.sql", "CREATE TABLE third (x int);\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), 2);

    /* A file added below an applied version is refused. */
    write_file(dir, "002_late.sql", "CREATE TABLE late (x int);\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_ESCHEMA);
    assert_non_null(strstr(e.detail, "002_late.sql"));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/002_late.sql", dir);
    unlink(path);

    /* An applied file that disappeared is refused. */
    snprintf(path, sizeof(path), "%s/003_third.sql", dir);
    unlink(path);
    write_file(dir, "004_next.sql", "CREATE TABLE nxt (x int);\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_ESCHEMA);
    assert_non_null(strstr(e.detail, "database has migration 3,"));
    write_file(dir, "003_third.sql", "CREATE TABLE third (x int);\n");

    /* Bad names and duplicate versions. */
    write_file(dir, "five.sql", "SELECT 1;\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_ECONFIG);
    assert_non_null(strstr(e.detail, "five.sql"));
    snprintf(path, sizeof(path), "%s/five.sql", dir);
    unlink(path);
    write_file(dir, "4_dup.sql", "SELECT 1;\n");
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), SMSYS_ECONFIG);
    assert_non_null(strstr(e.detail, "share version 4"));
    snprintf(path, sizeof(path), "%s/4_dup.sql", dir);
    unlink(path);
    assert_int_equal(migrate_apply(t->conninfo, dir, 0, &e), 1);

    assert_int_equal(migrate_apply(t->conninfo, "/nonexistent/sql", 0, &e), SMSYS_ECONFIG);
    assert_int_equal(migrate_apply("host=/nonexistent/x dbname=x", dir, 0, &e), SMSYS_EPG);
    assert_non_null(strstr(e.detail, "cannot connect"));
    rm_dir(dir);

    /* Where sqldir is found. */
    char buf[PATH_MAX];
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    assert_int_equal(migrate_default_dir(buf, sizeof(buf)), 0);
    assert_string_equal(buf, tu_src("sql"));
    setenv("SMSYS_SQL_DIR", "/nonexistent/sql", 1);
    assert_int_equal(migrate_default_dir(buf, sizeof(buf)), -ENOENT);
    assert_int_equal(migrate_default_dir(buf, 4), -ENAMETOOLONG);
    unsetenv("SMSYS_SQL_DIR");
    int rc = migrate_default_dir(buf, sizeof(buf));
    /* The test binary lives in build/test/integration: no sql/ two levels
     * up, so the packaged path is the answer (present or not). */
    assert_true(rc == 0 || rc == -ENOENT);
    assert_string_equal(buf, "/usr/share/smsys/sql");
}

static void test_concurrent_migrators(void **state)
{
    struct world_pg *t = *state;
    char dir[] = "/tmp/smsys_mig_XXXXXX";
    assert_non_null(mkdtemp(dir));
    copy_init(dir);
    /* Slow enough that two unserialised migrators would both run it and
     * one would fail on the duplicate table. */
    write_file(dir, "002_slow.sql", "SELECT pg_sleep(0.4);\nCREATE TABLE slow (x int);\n");
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            struct smsys_err e;
            int rc = migrate_apply(t->conninfo, dir, 0, &e);
            _exit(rc == 2 ? 10 : rc == 0 ? 11 : 1);
        }
    }
    int codes[2];
    for (int i = 0; i < 2; i++) {
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st));
        codes[i] = WEXITSTATUS(st);
    }
    /* One applied both files, the other waited and found nothing to do. */
    assert_int_equal(codes[0] + codes[1], 21);
    char v[64];
    db_value(t, "SELECT count(*) FROM smsys_schema_migrations", v, sizeof(v));
    assert_string_equal(v, "2");
    rm_dir(dir);
}

int main(void)
{
    tu_pg_conninfo();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_idempotent, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_newer_db_refused, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_broken_rolls_back, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_dir_rules, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_migrators, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
