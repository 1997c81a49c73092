/* tdb.h - a private database per test program on the test PostgreSQL, so
 * tests that migrate or write never see each other's schema. Header-only
 * (static functions) because test/lib is shared; include after cmocka. */
#ifndef SMSYS_TEST_TDB_H
#define SMSYS_TEST_TDB_H

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/testutil.h"

/* Appends " key='value'" (libpq quoting) to buf. */
static void tdb_kv(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, n < len ? len - n : 0, "'");
}

static void tdb_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "database ... does not exist, skipping" is expected */
}

static void tdb_admin(const char *sql)
{
    PGconn *c = PQconnectdb(tu_pg_conninfo());
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("test PostgreSQL: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, tdb_quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Creates database smsys_t_<tag>_<pid> and writes its name and a
 * conninfo for it (the test server's, dbname replaced). */
static void tdb_create(const char *tag, char *name, size_t nlen, char *conninfo, size_t clen)
{
    snprintf(name, nlen, "smsys_t_%s_%d", tag, (int)getpid());
    char sql[200];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    tdb_admin(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    tdb_admin(sql);
    PQconninfoOption *opts = PQconninfoParse(tu_pg_conninfo(), NULL);
    if (opts == NULL)
        fail_msg("cannot parse SMSYS_TEST_PG");
    conninfo[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            tdb_kv(conninfo, clen, o->keyword, o->val);
    tdb_kv(conninfo, clen, "dbname", name);
    PQconninfoFree(opts);
}

static void tdb_drop(const char *name)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    tdb_admin(sql);
}

#endif
