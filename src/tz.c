/* tz.c - a small reader of TZif zone files and POSIX TZ rules (RFC 8536). */
#include "smsys/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE      (1u << 20) /* real zone files are < 4 KiB */
#define MAX_POSIX_SEC (167 * 3600)

struct rule {
    char kind; /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
    int n, m, w, d;
    int32_t time; /* local seconds after midnight; may be negative or > 24h */
};

struct posix {
    int32_t std_off, dst_off; /* east-positive seconds */
    int has_dst;
    struct rule start, end;
};

struct ttype {
    int32_t off;
    uint8_t dst;
};

struct tz {
    size_t n;
    int64_t *at;
    uint8_t *idx;
    size_t ntypes;
    struct ttype *types;
    int has_posix;
    struct posix px;
};

/* ---- Calendar arithmetic ------------------------------------------------- */

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Counting from 1 March makes the leap day the last day of the counted
 * year, and 400-year eras repeat exactly (146097 days). */
int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_len(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* ---- POSIX TZ strings ---------------------------------------------------- */

static const char *parse_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p + 1, '>');
        if (q == NULL || q == p + 1)
            return NULL;
        return q + 1;
    }
    const char *q = p;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - p >= 3 ? q : NULL;
}

static const char *parse_num(const char *p, int min, int max, int *out)
{
    int v = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 4) {
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || v < min || v > max)
        return NULL;
    *out = v;
    return p;
}

/* [+-]hh[:mm[:ss]] -> seconds (sign as written). */
static const char *parse_hms(const char *p, int32_t *out)
{
    int sign = 1, h, mi = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    p = parse_num(p, 0, 167, &h);
    if (p && *p == ':') {
        p = parse_num(p + 1, 0, 59, &mi);
        if (p && *p == ':')
            p = parse_num(p + 1, 0, 59, &s);
    }
    if (p)
        *out = sign * (h * 3600 + mi * 60 + s);
    return p;
}

static const char *parse_rule(const char *p, struct rule *r)
{
    memset(r, 0, sizeof(*r));
    r->time = 7200;
    if (*p == 'J') {
        r->kind = 'J';
        p = parse_num(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = 'M';
        p = parse_num(p + 1, 1, 12, &r->m);
        if (p && *p == '.')
            p = parse_num(p + 1, 1, 5, &r->w);
        else
            p = NULL;
        if (p && *p == '.')
            p = parse_num(p + 1, 0, 6, &r->d);
        else
            p = NULL;
    } else {
        r->kind = 'N';
        p = parse_num(p, 0, 365, &r->n);
    }
    if (p && *p == '/')
        p = parse_hms(p + 1, &r->time);
    return p;
}

static int parse_posix(const char *s, struct posix *px)
{
    int32_t v;
    memset(px, 0, sizeof(*px));
    const char *p = parse_name(s);
    if (p == NULL || (p = parse_hms(p, &v)) == NULL)
        return -EINVAL;
    px->std_off = -v;
    px->dst_off = px->std_off;
    if (*p == '\0')
        return 0;
    if ((p = parse_name(p)) == NULL)
        return -EINVAL;
    px->has_dst = 1;
    px->dst_off = px->std_off + 3600;
    if (*p && *p != ',') {
        if ((p = parse_hms(p, &v)) == NULL)
            return -EINVAL;
        px->dst_off = -v;
    }
    if (*p == '\0') {
        /* No rule: POSIX leaves it to the implementation; use the US rule
         * that most systems default to. TZif footers always carry one. */
        px->start = (struct rule){'M', 0, 3, 2, 0, 7200};
        px->end = (struct rule){'M', 0, 11, 1, 0, 7200};
        return 0;
    }
    if (*p != ',' || (p = parse_rule(p + 1, &px->start)) == NULL)
        return -EINVAL;
    if (*p != ',' || (p = parse_rule(p + 1, &px->end)) == NULL)
        return -EINVAL;
    return *p == '\0' ? 0 : -EINVAL;
}

/* The UTC instant at which rule r fires in year y while offset off is in
 * force. */
static int64_t rule_utc(int64_t y, const struct rule *r, int32_t off)
{
    int64_t day;
    if (r->kind == 'J') {
        day = tz_days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
    } else if (r->kind == 'N') {
        day = tz_days_from_civil(y, 1, 1) + r->n;
    } else {
        int64_t first = tz_days_from_civil(y, r->m, 1);
        int wd1 = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
        int dom = 1 + (r->d - wd1 + 7) % 7 + (r->w - 1) * 7;
        while (dom > month_len(y, r->m))
            dom -= 7;
        day = first + dom - 1;
    }
    return day * 86400 + r->time - off;
}

static int32_t posix_eval(const struct posix *px, int64_t t, int *is_dst)
{
    *is_dst = 0;
    if (!px->has_dst)
        return px->std_off;
    /* Keep the arithmetic far from int64 overflow (year +-35 million). */
    const int64_t lim = (int64_t)1 << 50;
    if (t > lim)
        t = lim;
    if (t < -lim)
        t = -lim;
    int64_t y;
    int m, d;
    tz_civil_from_days(floordiv(t + px->std_off, 86400), &y, &m, &d);
    int64_t start = rule_utc(y, &px->start, px->std_off);
    int64_t end = rule_utc(y, &px->end, px->dst_off);
    int dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    *is_dst = dst;
    return dst ? px->dst_off : px->std_off;
}

/* ---- TZif ---------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct hdr {
    uint32_t isut, isstd, leap, time, type, chars;
};

static int read_hdr(const uint8_t *p, size_t len, struct hdr *h, char *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *version = (char)p[4];
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    /* Bounds that keep the size arithmetic below far from overflow. */
    if (h->type == 0 || h->type > 256 || h->time > 100000 || h->leap > 100000 ||
        h->chars > 100000 || h->isut > 256 || h->isstd > 256)
        return -1;
    return 0;
}

static size_t block_len(const struct hdr *h, size_t tsize)
{
    return h->time * tsize + h->time + h->type * 6 + h->chars + h->leap * (tsize + 4) + h->isstd +
           h->isut;
}

void tz_free(struct tz *tz)
{
    if (tz == NULL)
        return;
    free(tz->at);
    free(tz->idx);
    free(tz->types);
    free(tz);
}

static int fail(struct smsys_err *err, int code, const char *name, const char *why)
{
    return smsys_err_set(err, code, "time zone '%s': %s", name ? name : "", why);
}

int tz_load_mem(const char *name, const uint8_t *data, size_t len, struct tz **out,
                struct smsys_err *err)
{
    struct hdr h;
    char ver;
    size_t tsize = 4;
    *out = NULL;
    if (read_hdr(data, len, &h, &ver))
        return fail(err, SMSYS_EPROTO, name, "not a TZif file");
    const uint8_t *p = data + 44;
    size_t left = len - 44;
    if (ver >= '2') {
        /* Skip the 32-bit block; the 64-bit one follows with its own header. */
        size_t skip = block_len(&h, 4);
        if (skip > left || read_hdr(p + skip, left - skip, &h, &ver))
            return fail(err, SMSYS_EPROTO, name, "truncated TZif file");
        p += skip + 44;
        left -= skip + 44;
        tsize = 8;
    }
    size_t need = block_len(&h, tsize);
    if (need > left)
        return fail(err, SMSYS_EPROTO, name, "truncated TZif file");

    struct tz *tz = calloc(1, sizeof(*tz));
    if (tz == NULL)
        return fail(err, -ENOMEM, name, "out of memory");
    tz->n = h.time;
    tz->ntypes = h.type;
    tz->at = calloc(h.time ? h.time : 1, sizeof(*tz->at));
    tz->idx = calloc(h.time ? h.time : 1, 1);
    tz->types = calloc(h.type, sizeof(*tz->types));
    if (!tz->at || !tz->idx || !tz->types) {
        tz_free(tz);
        return fail(err, -ENOMEM, name, "out of memory");
    }
    const uint8_t *q = p;
    for (size_t i = 0; i < h.time; i++, q += tsize) {
        tz->at[i] = tsize == 8 ? be64(q) : (int64_t)(int32_t)be32(q);
        if (i && tz->at[i] <= tz->at[i - 1]) {
            tz_free(tz);
            return fail(err, SMSYS_EPROTO, name, "transitions out of order");
        }
    }
    for (size_t i = 0; i < h.time; i++, q++) {
        if (*q >= h.type) {
            tz_free(tz);
            return fail(err, SMSYS_EPROTO, name, "bad time type index");
        }
        tz->idx[i] = *q;
    }
    for (size_t i = 0; i < h.type; i++, q += 6) {
        int32_t off = (int32_t)be32(q);
        if (off < -25 * 3600 || off > 26 * 3600 || q[4] > 1) {
            tz_free(tz);
            return fail(err, SMSYS_EPROTO, name, "bad time type");
        }
        tz->types[i].off = off;
        tz->types[i].dst = q[4];
    }
    p += need;
    left -= need;
    /* Footer: "\n" TZ-string "\n". Empty means no rule after the last
     * transition (the last type stays in force). */
    if (tsize == 8 && left >= 2 && p[0] == '\n') {
        const uint8_t *nl = memchr(p + 1, '\n', left - 1);
        size_t slen = nl ? (size_t)(nl - p - 1) : 0;
        if (nl && slen > 0 && slen < 128) {
            char spec[128];
            memcpy(spec, p + 1, slen);
            spec[slen] = '\0';
            if (parse_posix(spec, &tz->px) == 0)
                tz->has_posix = 1;
            else {
                tz_free(tz);
                return fail(err, SMSYS_EPROTO, name, "bad POSIX TZ footer");
            }
        }
    }
    *out = tz;
    return 0;
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200 || name[0] == '/' || name[n - 1] == '/')
        return 0;
    for (const char *c = name; *c; c++) {
        int ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                 *c == '_' || *c == '-' || *c == '+' || *c == '/';
        if (!ok)
            return 0;
        if (*c == '/' && c[1] == '/')
            return 0;
    }
    /* Letters only in the components and no "." at all, so ".." can't occur. */
    return 1;
}

int tz_load(const char *name, struct tz **out, struct smsys_err *err)
{
    *out = NULL;
    if (name == NULL || !valid_name(name))
        return smsys_err_set(err, -EINVAL, "time zone name '%s' is not valid",
                             name ? name : "(null)");
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/zoneinfo";
    char path[512];
    int w = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= sizeof(path))
        return fail(err, -EINVAL, name, "path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return smsys_err_set(err, -ENOENT,
                                 "time zone '%s' not found (%s missing; install the Debian "
                                 "package tzdata)",
                                 name, path);
        return smsys_err_set(err, -e, "time zone '%s': cannot open %s: %s", name, path,
                             strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE) {
        close(fd);
        return fail(err, SMSYS_EPROTO, name, "not a regular zone file");
    }
    size_t len = (size_t)st.st_size;
    uint8_t *data = malloc(len ? len : 1);
    if (data == NULL) {
        close(fd);
        return fail(err, -ENOMEM, name, "out of memory");
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int rc = tz_load_mem(name, data, got, out, err);
    free(data);
    return rc;
}

int tz_parse_posix(const char *spec, struct tz **out)
{
    *out = NULL;
    struct tz *tz = calloc(1, sizeof(*tz));
    if (tz == NULL)
        return -ENOMEM;
    if (spec == NULL || parse_posix(spec, &tz->px) != 0) {
        free(tz);
        return -EINVAL;
    }
    tz->has_posix = 1;
    *out = tz;
    return 0;
}

int tz_offset_at(const struct tz *tz, int64_t utc, int *offset_s, int *is_dst)
{
    int dst = 0;
    int32_t off;
    if ((tz->n == 0 || utc >= tz->at[tz->n - 1]) && tz->has_posix) {
        off = posix_eval(&tz->px, utc, &dst);
    } else if (tz->n == 0 || utc < tz->at[0]) {
        /* RFC 8536 3.2: before the first transition, time type 0 applies. */
        off = tz->types[0].off;
        dst = tz->types[0].dst;
    } else {
        size_t lo = 0, hi = tz->n; /* find the last transition <= utc */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->at[mid] <= utc)
                lo = mid;
            else
                hi = mid;
        }
        const struct ttype *t = &tz->types[tz->idx[lo]];
        off = t->off;
        dst = t->dst;
    }
    *offset_s = off;
    if (is_dst)
        *is_dst = dst;
    return 0;
}

/* ---- Cache --------------------------------------------------------------- */

#define CACHE_SLOTS 16

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[64];
    struct tz *tz;
} cache[CACHE_SLOTS];

int tz_offset(const char *zone, time_t utc, int *offset_s)
{
    int rc = 0;
    if (zone == NULL)
        return -EINVAL;
    pthread_mutex_lock(&cache_mu);
    struct tz *tz = NULL;
    size_t free_slot = CACHE_SLOTS;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].tz && strcmp(cache[i].name, zone) == 0) {
            tz = cache[i].tz;
            break;
        }
        if (!cache[i].tz && free_slot == CACHE_SLOTS)
            free_slot = i;
    }
    if (tz == NULL) {
        rc = tz_load(zone, &tz, NULL);
        if (rc == 0 && free_slot < CACHE_SLOTS && strlen(zone) < sizeof(cache[0].name)) {
            snprintf(cache[free_slot].name, sizeof(cache[0].name), "%s", zone);
            cache[free_slot].tz = tz;
        } else if (rc == 0) {
            /* Cache full (or name too long): answer and forget. */
            tz_offset_at(tz, (int64_t)utc, offset_s, NULL);
            tz_free(tz);
            pthread_mutex_unlock(&cache_mu);
            return 0;
        }
    }
    if (rc == 0)
        tz_offset_at(tz, (int64_t)utc, offset_s, NULL);
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

void tz_cache_clear(void)
{
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        tz_free(cache[i].tz);
        cache[i].tz = NULL;
        cache[i].name[0] = '\0';
    }
    pthread_mutex_unlock(&cache_mu);
}
