/* migrate.c - applies sql/NNN_name.sql files with blocking libpq (see
 * migrate.h for why blocking is right here). */
#include "smsys/migrate.h"

#include "smsys/log.h"
#include "smsys/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* pg_advisory_lock key: "smsysMGR" as a big-endian int64. */
#define MIGRATE_LOCK_KEY "8317143236399252818"
#define MIGRATE_MAX_FILE (16u << 20)

struct mig {
    int version;
    char file[256];
};

struct migset {
    struct mig *v;
    size_t n;
};

static int mig_cmp(const void *a, const void *b)
{
    const struct mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* A migration file name is digits, '_', then [A-Za-z0-9_-]+, then ".sql". */
static int parse_name(const char *name, int *version)
{
    size_t len = strlen(name);
    if (len < 7 || len >= 256 || strcmp(name + len - 4, ".sql") != 0)
        return -EINVAL;
    size_t d = 0;
    while (isdigit((unsigned char)name[d]))
        d++;
    if (d == 0 || d > 6 || name[d] != '_' || d + 1 >= len - 4)
        return -EINVAL;
    for (size_t i = d + 1; i < len - 4; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!isalnum(ch) && ch != '_' && ch != '-')
            return -EINVAL;
    }
    char num[8];
    memcpy(num, name, d);
    num[d] = '\0';
    long long v;
    if (util_parse_int(num, 1, 999999, &v) != 0)
        return -EINVAL;
    *version = (int)v;
    return 0;
}

static int scan_dir(const char *sqldir, struct migset *set, struct smsys_err *err)
{
    DIR *d = opendir(sqldir);
    if (d == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "cannot read migrations directory %s: %s", sqldir,
                             strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue; /* README and the like */
        int version;
        if (parse_name(e->d_name, &version) != 0) {
            rc = smsys_err_set(err, SMSYS_ECONFIG,
                               "bad migration file name %s/%s: want NNN_name.sql", sqldir,
                               e->d_name);
            break;
        }
        struct mig *nv = realloc(set->v, (set->n + 1) * sizeof(*nv));
        if (nv == NULL) {
            rc = smsys_err_set(err, -ENOMEM, "out of memory");
            break;
        }
        set->v = nv;
        set->v[set->n].version = version;
        snprintf(set->v[set->n].file, sizeof(set->v[set->n].file), "%s", e->d_name);
        set->n++;
    }
    closedir(d);
    if (rc != 0)
        return rc;
    if (set->n > 1)
        qsort(set->v, set->n, sizeof(*set->v), mig_cmp);
    for (size_t i = 1; i < set->n; i++)
        if (set->v[i].version == set->v[i - 1].version)
            return smsys_err_set(err, SMSYS_ECONFIG, "migrations %s and %s share version %d",
                                 set->v[i - 1].file, set->v[i].file, set->v[i].version);
    return 0;
}

static int read_file(const char *dir, const char *name, char **out, struct smsys_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return smsys_err_set(err, SMSYS_ECONFIG, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(MIGRATE_MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return smsys_err_set(err, -ENOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, MIGRATE_MAX_FILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MIGRATE_MAX_FILE) {
        free(buf);
        return smsys_err_set(err, SMSYS_ECONFIG, "cannot read %s (error, or over 16 MiB)", path);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static void notice_cb(void *arg, const char *msg)
{
    (void)arg;
    log_debug("pg notice", "msg=\"%s\"", log_q(msg));
}

/* Sets err from a failed result: "<what>: SQLSTATE xxxxx: message". */
static int pg_fail(struct smsys_err *err, const char *what, PGconn *c, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(c);
    return smsys_err_set(err, SMSYS_EPG, "%s: SQLSTATE %s: %s", what, st ? st : "XX000", msg);
}

/* Runs a parameterised statement; returns the result (caller PQclears) or
 * NULL with err set. */
static PGresult *exec_params(PGconn *c, const char *sql, int n, const char *const *p,
                             const char *what, struct smsys_err *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_fail(err, what, c, r);
    PQclear(r);
    return NULL;
}

static int connect_db(const char *conninfo, PGconn **out, struct smsys_err *err)
{
    PGconn *c = PQconnectdb(conninfo);
    if (c == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(c);
        return smsys_err_set(err, SMSYS_EPG, "cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeProcessor(c, notice_cb, NULL);
    *out = c;
    return 0;
}

/* Reads the applied versions, ascending, into *vs (caller frees). */
static int applied_versions(PGconn *c, int **vs, size_t *n, struct smsys_err *err)
{
    *vs = NULL;
    *n = 0;
    const char *p[1] = {"smsys_schema_migrations"};
    PGresult *r = exec_params(c, "SELECT to_regclass($1) IS NOT NULL", 1, p,
                              "checking for smsys_schema_migrations", err);
    if (r == NULL)
        return err->code;
    int exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists)
        return 0;
    r = exec_params(c, "SELECT version FROM smsys_schema_migrations ORDER BY version", 0, NULL,
                    "reading smsys_schema_migrations", err);
    if (r == NULL)
        return err->code;
    int rows = PQntuples(r);
    *vs = calloc((size_t)rows + 1, sizeof(int));
    if (*vs == NULL) {
        PQclear(r);
        return smsys_err_set(err, -ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        long long v = 0;
        util_parse_int(PQgetvalue(r, i, 0), INT_MIN, INT_MAX, &v);
        (*vs)[i] = (int)v;
    }
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

/* Compares what the database has with what sqldir offers. Returns 0 or
 * SMSYS_ESCHEMA. */
static int check_consistent(const struct migset *set, const int *vs, size_t nv, const char *sqldir,
                            struct smsys_err *err)
{
    int newest = set->n ? set->v[set->n - 1].version : 0;
    int dbmax = nv ? vs[nv - 1] : 0;
    if (dbmax > newest)
        return smsys_err_set(err, SMSYS_ESCHEMA,
                             "database schema version %d is newer than the newest migration "
                             "(%d) in %s: this smsys is older than the database; upgrade it",
                             dbmax, newest, sqldir);
    for (size_t j = 0; j < nv; j++) {
        size_t i = 0;
        while (i < set->n && set->v[i].version != vs[j])
            i++;
        if (i == set->n)
            return smsys_err_set(err, SMSYS_ESCHEMA,
                                 "database has migration %d, which is not in %s", vs[j], sqldir);
    }
    for (size_t i = 0; i < set->n && set->v[i].version <= dbmax; i++) {
        size_t j = 0;
        while (j < nv && vs[j] != set->v[i].version)
            j++;
        if (j == nv)
            return smsys_err_set(err, SMSYS_ESCHEMA,
                                 "migration %s was never applied but version %d is: add new "
                                 "migrations above the newest applied one",
                                 set->v[i].file, dbmax);
    }
    return 0;
}

static int apply_one(PGconn *c, const char *sqldir, const struct mig *m, struct smsys_err *err)
{
    char *sql = NULL;
    int rc = read_file(sqldir, m->file, &sql, err);
    if (rc != 0)
        return rc;
    uint64_t t0 = util_now_ms();
    PGresult *r = exec_params(c, "BEGIN", 0, NULL, "BEGIN", err);
    if (r == NULL) {
        free(sql);
        return err->code;
    }
    PQclear(r);
    char what[300];
    snprintf(what, sizeof(what), "migration %s failed", m->file);
    /* The simple protocol: a file holds many statements and is trusted
     * code shipped with smsys, not data. */
    r = PQexec(c, sql);
    free(sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = pg_fail(err, what, c, r);
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return rc;
    }
    PQclear(r);
    if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
        PQclear(PQexec(c, "ROLLBACK"));
        return smsys_err_set(err, SMSYS_ESCHEMA,
                             "migration %s ended the transaction (COMMIT/ROLLBACK inside a "
                             "migration file is not allowed); check the database by hand",
                             m->file);
    }
    char ver[16];
    snprintf(ver, sizeof(ver), "%d", m->version);
    const char *p[2] = {ver, m->file};
    r = exec_params(c, "INSERT INTO smsys_schema_migrations (version, name) VALUES ($1::int, $2)",
                    2, p, what, err);
    if (r == NULL) {
        PQclear(PQexec(c, "ROLLBACK"));
        return err->code;
    }
    PQclear(r);
    r = exec_params(c, "COMMIT", 0, NULL, what, err);
    if (r == NULL)
        return err->code;
    PQclear(r);
    log_info("migration applied", "version=%d file=%s ms=%llu", m->version, m->file,
             (unsigned long long)(util_now_ms() - t0));
    return 0;
}

int migrate_apply(const char *conninfo, const char *sqldir, int dry_run, struct smsys_err *err)
{
    struct smsys_err local;
    if (err == NULL)
        err = &local;
    smsys_err_clear(err);
    if (conninfo == NULL || sqldir == NULL)
        return smsys_err_set(err, -EINVAL, "conninfo and sqldir are required");
    struct migset set = {0};
    int rc = scan_dir(sqldir, &set, err);
    if (rc != 0) {
        free(set.v);
        return rc;
    }
    PGconn *c = NULL;
    rc = connect_db(conninfo, &c, err);
    if (rc != 0) {
        free(set.v);
        return rc;
    }
    int locked = 0;
    int *vs = NULL;
    size_t nv = 0;
    if (!dry_run) {
        const char *p[1] = {MIGRATE_LOCK_KEY};
        PGresult *r = exec_params(c, "SELECT pg_advisory_lock($1::bigint)", 1, p,
                                  "taking the migration lock", err);
        if (r == NULL) {
            rc = err->code;
            goto out;
        }
        PQclear(r);
        locked = 1;
    }
    rc = applied_versions(c, &vs, &nv, err);
    if (rc == 0)
        rc = check_consistent(&set, vs, nv, sqldir, err);
    if (rc != 0)
        goto out;
    int dbmax = nv ? vs[nv - 1] : 0;
    int count = 0;
    for (size_t i = 0; i < set.n; i++) {
        if (set.v[i].version <= dbmax)
            continue;
        if (dry_run) {
            log_info("migration pending", "version=%d file=%s", set.v[i].version, set.v[i].file);
        } else {
            rc = apply_one(c, sqldir, &set.v[i], err);
            if (rc != 0)
                goto out;
        }
        count++;
    }
    rc = count;
out:
    if (locked) {
        const char *p[1] = {MIGRATE_LOCK_KEY};
        PQclear(
            PQexecParams(c, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, p, NULL, NULL, 0));
    }
    PQfinish(c);
    free(vs);
    free(set.v);
    return rc;
}

int migrate_status(const char *conninfo, const char *sqldir, int *db_version, int *newest,
                   struct smsys_err *err)
{
    struct smsys_err local;
    if (err == NULL)
        err = &local;
    smsys_err_clear(err);
    if (conninfo == NULL || sqldir == NULL || db_version == NULL || newest == NULL)
        return smsys_err_set(err, -EINVAL, "missing argument");
    struct migset set = {0};
    int rc = scan_dir(sqldir, &set, err);
    if (rc == 0) {
        *newest = set.n ? set.v[set.n - 1].version : 0;
        PGconn *c = NULL;
        rc = connect_db(conninfo, &c, err);
        if (rc == 0) {
            int *vs = NULL;
            size_t nv = 0;
            rc = applied_versions(c, &vs, &nv, err);
            if (rc == 0)
                *db_version = nv ? vs[nv - 1] : 0;
            free(vs);
            PQfinish(c);
        }
    }
    free(set.v);
    return rc;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int migrate_default_dir(char *buf, size_t len)
{
    const char *env = getenv("SMSYS_SQL_DIR");
    if (env != NULL && *env != '\0') {
        if ((size_t)snprintf(buf, len, "%s", env) >= len)
            return -ENAMETOOLONG;
        return is_dir(buf) ? 0 : -ENOENT;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            if ((size_t)snprintf(buf, len, "%s/../../sql", exe) < len && is_dir(buf))
                return 0;
        }
    }
    if ((size_t)snprintf(buf, len, "%s", "/usr/share/smsys/sql") >= len)
        return -ENAMETOOLONG;
    return is_dir(buf) ? 0 : -ENOENT;
}
