/* bulk_view.c - pure helpers of `smsysctl bulk` (see bulk_view.h). */
#include "bulk_view.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int bulkview_final(int state)
{
    return state == BULK_COMPLETED || state == BULK_CANCELED || state == BULK_FAILED;
}

/* Where the hyphens of a canonical GUID fall, counted in hex digits seen
 * before them. */
static int hyphen_allowed(int digits)
{
    return digits == 8 || digits == 12 || digits == 16 || digits == 20;
}

int bulkview_id_parse(const char *arg, char hex[33], int *full)
{
    if (arg == NULL)
        return -EINVAL;
    int n = 0, hyphens = 0;
    for (const char *p = arg; *p; p++) {
        if (*p == '-') {
            /* a hyphen only where the GUID has one, and never two in a row */
            if (!hyphen_allowed(n) || p == arg || p[-1] == '-')
                return -EINVAL;
            hyphens++;
            continue;
        }
        if (!isxdigit((unsigned char)*p) || n >= 32)
            return -EINVAL;
        hex[n++] = (char)tolower((unsigned char)*p);
    }
    hex[n] = '\0';
    if (n < BULKVIEW_ID_MIN_HEX || (n > 0 && arg[strlen(arg) - 1] == '-'))
        return -EINVAL;
    /* A full GUID is written with all four hyphens or none. */
    if (n == 32 && hyphens != 0 && hyphens != 4)
        return -EINVAL;
    *full = n == 32;
    return 0;
}

void bulkview_id_format(const char hex[33], char out[37])
{
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void bulkview_rate_add(struct bulkview_rate *r, uint64_t t_ms, long long done)
{
    if (r->n > 0) {
        unsigned last = (r->head + r->n - 1) % BULKVIEW_RATE_SLOTS;
        if (t_ms < r->t[last])
            return;
    }
    if (r->n == BULKVIEW_RATE_SLOTS) {
        r->head = (r->head + 1) % BULKVIEW_RATE_SLOTS;
        r->n--;
    }
    unsigned at = (r->head + r->n) % BULKVIEW_RATE_SLOTS;
    r->t[at] = t_ms;
    r->v[at] = done;
    r->n++;
    /* Keep one sample at or just beyond the window edge, so the rate spans
     * the full window rather than whatever is strictly inside it. */
    while (r->n > 2) {
        unsigned next = (r->head + 1) % BULKVIEW_RATE_SLOTS;
        if (t_ms - r->t[next] < BULKVIEW_RATE_WINDOW_MS)
            break;
        r->head = next;
        r->n--;
    }
}

double bulkview_rate_get(const struct bulkview_rate *r)
{
    if (r->n < 2)
        return -1;
    unsigned last = (r->head + r->n - 1) % BULKVIEW_RATE_SLOTS;
    uint64_t span = r->t[last] - r->t[r->head];
    if (span < 1000)
        return -1;
    long long d = r->v[last] - r->v[r->head];
    if (d < 0) /* a counter went back (a retry): no rate rather than a negative one */
        d = 0;
    return (double)d * 1000.0 / (double)span;
}

long long bulkview_eta_s(long long remaining, double rate)
{
    if (remaining <= 0)
        return 0;
    if (rate <= 0)
        return -1;
    double s = (double)remaining / rate;
    if (s > 1e9)
        return -1;
    return (long long)(s + 0.999);
}

void bulkview_duration(long long s, char *out, size_t len)
{
    if (s < 0)
        snprintf(out, len, "?");
    else if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

static void fmt_rate(double rate, char *out, size_t len)
{
    if (rate < 0)
        snprintf(out, len, "?/s");
    else if (rate < 100)
        snprintf(out, len, "%.1f/s", rate);
    else
        snprintf(out, len, "%.0f/s", rate);
}

/* The ETA only means something while sending a fully read audience. */
static long long progress_eta(const struct bulkview *p, double rate)
{
    if (bulkview_final(p->state))
        return 0;
    if (p->state != BULK_SENDING || !p->expanded)
        return -1;
    return bulkview_eta_s(p->c.total - p->done, rate);
}

static int progress_permille(const struct bulkview *p)
{
    if (p->c.total <= 0)
        return p->state == BULK_COMPLETED ? 1000 : 0;
    long long done = p->done < p->c.total ? p->done : p->c.total;
    return (int)(done * 1000 / p->c.total);
}

/* Copies at most width columns of s (ASCII) to out. */
static size_t cut(char *out, size_t len, const char *s, int width)
{
    size_t n = strlen(s);
    if (width >= 0 && n > (size_t)width)
        n = (size_t)width;
    if (n >= len)
        n = len - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

int bulkview_growing(const struct bulkview *p)
{
    return !p->expanded && !bulkview_final(p->state);
}

size_t bulkview_line(char *out, size_t len, const struct bulkview *p, double rate, int width,
                     int tty, time_t now)
{
    if (len == 0)
        return 0;
    char r[32], eta[32];
    fmt_rate(rate, r, sizeof(r));
    bulkview_duration(progress_eta(p, rate), eta, sizeof(eta));
    int pm = progress_permille(p);
    const char *state = bulk_state_name(p->state);
    if (!tty) {
        struct tm tm;
        char ts[32] = "";
        if (gmtime_r(&now, &tm))
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        int n = snprintf(out, len,
                         "%s state=%s total=%lld%s done=%lld sent=%lld delivered=%lld failed=%lld "
                         "skipped=%lld progress=%d.%d%% rate=%s eta=%s",
                         ts, state, p->c.total, bulkview_growing(p) ? "+" : "", p->done, p->c.sent,
                         p->c.delivered, p->c.failed, p->c.skipped, pm / 10, pm % 10, r, eta);
        return n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len - 1);
    }
    if (width < 1)
        width = 1;

    /* Everything but the bar; a growing total is marked with "+". */
    char tail[256];
    snprintf(tail, sizeof(tail),
             "%3d.%d%% %lld/%lld%s  sent %lld  delivered %lld  failed %lld  skipped %lld  %s  "
             "ETA %s",
             pm / 10, pm % 10, p->done, p->c.total, bulkview_growing(p) ? "+" : "", p->c.sent,
             p->c.delivered, p->c.failed, p->c.skipped, r, eta);
    int fixed = (int)strlen(state) + 1 + (int)strlen(tail);
    int bar = width - fixed - 3; /* " [" ... "]" */
    if (bar > 40)
        bar = 40;
    char line[512];
    if (bar >= 10) {
        char cells[41];
        int fill = pm * bar / 1000;
        for (int i = 0; i < bar; i++)
            cells[i] = i < fill ? '#' : '-';
        cells[bar] = '\0';
        snprintf(line, sizeof(line), "%s [%s] %s", state, cells, tail);
        return cut(out, len, line, width);
    }
    if (fixed <= width) {
        snprintf(line, sizeof(line), "%s %s", state, tail);
        return cut(out, len, line, width);
    }
    /* Narrow: the essentials, then whatever fits. */
    snprintf(line, sizeof(line), "%s %d%% %lld/%lld%s %s ETA %s", state, pm / 10, p->done,
             p->c.total, bulkview_growing(p) ? "+" : "", r, eta);
    return cut(out, len, line, width);
}
