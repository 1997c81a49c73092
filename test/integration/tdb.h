/* tdb.h - a private database per test program on the test PostgreSQL:
 * the older names of world_db_create / world_db_drop (test/lib/world.h),
 * kept for the tests that use them. Include after cmocka. */
#ifndef SMSYS_TEST_TDB_H
#define SMSYS_TEST_TDB_H

#include <libpq-fe.h>

#include "../lib/world.h"

/* A notice processor that drops notices ("... does not exist, skipping"). */
static inline void tdb_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Creates database smsys_t_<tag>_<pid> (dropped by world_cleanup unless
 * tdb_drop came first); see world_db_create. */
static inline void tdb_create(const char *tag, char *name, size_t nlen, char *conninfo, size_t clen)
{
    world_db_create(tag, name, nlen, conninfo, clen);
}

static inline void tdb_drop(const char *name)
{
    world_db_drop(name);
}

#endif
