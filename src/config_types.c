/* config_types.c - the value types of the configuration: each converter
 * checks one value and, when it is wrong, says why in words an operator
 * can act on (msg), and config_set_value stores a value by its type.
 * Used by config_load.c; no state. */
#include "config_priv.h"

#include "smsys/buf.h"
#include "smsys/tz.h"
#include "smsys/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int config_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

int config_parse_duration(const char *s, long long *out)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (n == 0 || n > 12)
        return -EINVAL;
    char num[16];
    memcpy(num, s, n);
    num[n] = '\0';
    long long v;
    if (util_parse_int(num, 0, 999999999999LL, &v) != 0)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcmp(s + n, units[i].unit) == 0) {
            *out = v * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

int config_check_url(const struct config_key *k, const char *s, char *msg, size_t mlen)
{
    static const char *const web[] = {"http", "https", NULL};
    const char *const *schemes = k->choices ? k->choices : web;
    const char *sep = strstr(s, "://");
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(msg, mlen, "a URL may not contain spaces or control characters");
            return -EINVAL;
        }
    }
    int ok = 0;
    if (sep) {
        for (size_t i = 0; schemes[i]; i++)
            if (strlen(schemes[i]) == (size_t)(sep - s) && strncasecmp(s, schemes[i], sep - s) == 0)
                ok = 1;
    }
    if (!ok) {
        struct buf b = BUF_INIT;
        for (size_t i = 0; schemes[i]; i++)
            buf_printf(&b, "%s%s://", i ? ", " : "", schemes[i]);
        snprintf(msg, mlen, "expected a URL starting with %s", b.data ? b.data : "");
        buf_free(&b);
        return -EINVAL;
    }
    const char *host = sep + 3;
    if (*host == '\0' || *host == '/' || *host == ':' || *host == '?' || *host == '#') {
        snprintf(msg, mlen, "the URL has no host");
        return -EINVAL;
    }
    return 0;
}

int config_check_listen(const char *s, char *msg, size_t mlen)
{
    char host[64];
    const char *port;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            goto bad;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            goto bad;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) != 1)
            goto bad;
    }
    long long p;
    if (util_parse_int(port, 0, 65535, &p) != 0) {
        snprintf(msg, mlen, "port must be a number from 0 to 65535");
        return -EINVAL;
    }
    return 0;
bad:
    snprintf(msg, mlen, "expected IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:8480 or [::1]:8480");
    return -EINVAL;
}

static int two_digits(const char *s, int *out)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
        return -EINVAL;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

int config_parse_window(const char *s, struct config_window *w, char *msg, size_t mlen)
{
    int h1, m1, h2, m2;
    if (strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':' || two_digits(s, &h1) ||
        two_digits(s + 3, &m1) || two_digits(s + 6, &h2) || two_digits(s + 9, &m2)) {
        snprintf(msg, mlen, "expected a window HH:MM-HH:MM, e.g. 08:00-21:00");
        return -EINVAL;
    }
    if (h1 > 23 || m1 > 59 || h2 > 24 || m2 > 59 || (h2 == 24 && m2 != 0)) {
        snprintf(msg, mlen, "not a time of day (00:00 to 24:00)");
        return -EINVAL;
    }
    int a = h1 * 60 + m1, b = h2 * 60 + m2;
    if (a == b || (a == 0 && b == 1440)) {
        snprintf(msg, mlen,
                 "the window is empty or the whole day; leave the value empty for "
                 "no quiet hours");
        return -EINVAL;
    }
    w->set = 1;
    w->start_min = a;
    w->end_min = b;
    return 0;
}

int config_check_timezone(const char *s, char *msg, size_t mlen)
{
    /* The reader that dates and quiet hours use at run time, so a zone
     * accepted here is one the service can load. */
    struct tz *tz = NULL;
    struct smsys_err err = {0};
    int rc = tz_load(s, &tz, &err);
    tz_free(tz);
    if (rc == 0)
        return 0;
    if (rc == -EINVAL)
        snprintf(msg, mlen, "not a time zone name (e.g. Asia/Tehran, UTC)");
    else if (rc == -ENOENT)
        snprintf(msg, mlen, "unknown time zone '%s' (not in the tz database; is tzdata installed?)",
                 s);
    else
        snprintf(msg, mlen, "time zone '%s': %s", s,
                 err.detail[0] ? err.detail : smsys_strerror(rc));
    return -EINVAL;
}

static int enum_index(const struct config_key *k, const char *s)
{
    for (int i = 0; k->choices[i]; i++)
        if (strcasecmp(s, k->choices[i]) == 0)
            return i;
    return -1;
}

/* Stores text (already resolved) into k's field. Returns 0 or -EINVAL with
 * the reason in msg, or -ENOMEM. */
int config_set_value(struct smsys_config *cfg, const struct config_key *k, const char *v, char *msg,
                     size_t mlen)
{
    msg[0] = '\0';
    if (config_type_is_str(k->type)) {
        if (*v) {
            char why[200];
            if (k->type == CONFIG_URL && config_check_url(k, v, why, sizeof(why)) != 0) {
                snprintf(msg, mlen, "%s", why);
                return -EINVAL;
            }
            if (k->type == CONFIG_LISTEN && config_check_listen(v, why, sizeof(why)) != 0) {
                snprintf(msg, mlen, "%s", why);
                return -EINVAL;
            }
            if (k->type == CONFIG_TIMEZONE && config_check_timezone(v, why, sizeof(why)) != 0) {
                snprintf(msg, mlen, "%s", why);
                return -EINVAL;
            }
        }
        char *copy = NULL;
        if (*v && (copy = strdup(v)) == NULL)
            return -ENOMEM;
        char **slot = config_str_at(cfg, k);
        if (*slot && k->type == CONFIG_SECRET)
            explicit_bzero(*slot, strlen(*slot));
        free(*slot);
        *slot = copy;
        return 0;
    }
    if (*v == '\0' && k->type != CONFIG_WINDOW) {
        snprintf(msg, mlen, "empty value (expected %s)", config_type_name(k->type));
        return -EINVAL;
    }
    switch (k->type) {
    case CONFIG_INT: {
        long long x;
        int rc = util_parse_int(v, k->min, k->max, &x);
        if (rc == -EINVAL)
            snprintf(msg, mlen, "expected an integer, got '%s'", v);
        else if (rc)
            snprintf(msg, mlen, "%s is out of range (%lld to %lld)", v, k->min, k->max);
        if (rc)
            return -EINVAL;
        *config_ll_at(cfg, k) = x;
        return 0;
    }
    case CONFIG_DURATION: {
        long long x;
        if (config_parse_duration(v, &x) != 0) {
            snprintf(msg, mlen,
                     "expected a duration in milliseconds (1500, or 1500ms, 2s, 5m, 1h), "
                     "got '%s'",
                     v);
            return -EINVAL;
        }
        if (x < k->min || x > k->max) {
            snprintf(msg, mlen, "%s is out of range (%lld to %lld ms)", v, k->min, k->max);
            return -EINVAL;
        }
        *config_ll_at(cfg, k) = x;
        return 0;
    }
    case CONFIG_BOOL:
        if (config_parse_bool(v, config_int_at(cfg, k)) != 0) {
            snprintf(msg, mlen, "expected true or false, got '%s'", v);
            return -EINVAL;
        }
        return 0;
    case CONFIG_ENUM: {
        int i = enum_index(k, v);
        if (i < 0) {
            struct buf b = BUF_INIT;
            for (size_t j = 0; k->choices[j]; j++)
                buf_printf(&b, "%s%s", j ? ", " : "", k->choices[j]);
            snprintf(msg, mlen, "'%s' is not one of: %s", v, b.data ? b.data : "");
            buf_free(&b);
            return -EINVAL;
        }
        *config_int_at(cfg, k) = i;
        return 0;
    }
    case CONFIG_WINDOW: {
        struct config_window w = {0};
        if (*v && config_parse_window(v, &w, msg, mlen) != 0)
            return -EINVAL;
        *config_win_at(cfg, k) = w;
        return 0;
    }
    default:
        snprintf(msg, mlen, "internal: unhandled type");
        return -EINVAL;
    }
}
