/* checks.c - per-request decisions shared by the providers: injected
 * faults, phone number and line checks, and the GSM-7 / UCS-2 segment
 * count that prices every message. */
#include "provsim.h"

#include <fnmatch.h>
#include <string.h>

#include "smsys/util.h"

enum sim_fault sim_fault(struct sim_ctx *cx, int is_send)
{
    struct sim_account *a = cx->acct;
    const struct sim_cfg *c = &a->cfg;
    uint64_t now = util_now_ms();
    a->nreq++;
    if (now - a->win_start_ms >= 1000) {
        a->win_start_ms = now;
        a->win_count = 0;
    }
    a->win_count++;
    if ((c->rate_every > 0 && a->nreq % c->rate_every == 0) ||
        (c->rate_rps > 0 && (double)a->win_count > c->rate_rps)) {
        a->st_rate++;
        return FAULT_RATE;
    }
    if (c->busy || (c->busy_every > 0 && a->nreq % c->busy_every == 0)) {
        a->st_busy++;
        return FAULT_BUSY;
    }
    if (is_send && c->no_credit) {
        a->st_nocredit++;
        return FAULT_NOCREDIT;
    }
    return FAULT_NONE;
}

int sim_afford(struct sim_ctx *cx, double cost)
{
    if (cx->acct->cfg.no_credit || cx->acct->balance < cost) {
        cx->acct->st_nocredit++;
        return 0;
    }
    return 1;
}

int sim_bad_number(struct sim_ctx *cx, const char *num)
{
    const char *p = num;
    size_t digits = 0;
    if (!p)
        return 1;
    if (*p == '+')
        p++;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        digits++;
    }
    if (digits < 10 || digits > 15)
        goto bad;
    if (cx->acct->cfg.bad_pattern[0] && fnmatch(cx->acct->cfg.bad_pattern, num, 0) == 0)
        goto bad;
    return 0;
bad:
    cx->acct->st_badnum++;
    return 1;
}

int sim_blocked_number(struct sim_ctx *cx, const char *num)
{
    const char *pat = cx->acct->cfg.block_pattern;
    return num && pat[0] && fnmatch(pat, num, 0) == 0;
}

int sim_line_ok(struct sim_ctx *cx, const char *line)
{
    for (size_t i = 0; line && i < cx->acct->nlines; i++)
        if (strcmp(cx->acct->lines[i], line) == 0)
            return 1;
    return 0;
}

/* GSM 03.38 default alphabet, the non-ASCII part (ASCII is tested apart). */
static const uint16_t gsm_basic_nonascii[] = {
    0xA3,  0xA5,  0xE8,  0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  0xD8,  0xF8, 0xC5, 0xE5, 0x394,
    0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9,
    0xA4,  0xA1,  0xC4,  0xD6,  0xD1,  0xDC,  0xA7,  0xBF,  0xE4,  0xF6, 0xF1, 0xFC, 0xE0,
};

/* Septets for c in GSM-7 (1, or 2 via the extension table), 0 if none. */
static int gsm_septets(uint32_t c)
{
    if (c == '\n' || c == '\r')
        return 1;
    if (c == '\f' || c == 0x20AC || (c < 0x80 && strchr("^{}\\[~]|", (int)c) && c))
        return 2;
    if (c >= 0x20 && c < 0x7F)
        return c == '`' ? 0 : 1;
    for (size_t i = 0; i < ARRAY_LEN(gsm_basic_nonascii); i++)
        if (gsm_basic_nonascii[i] == c)
            return 1;
    return 0;
}

/* Decodes one UTF-8 character at s (NUL-terminated); *len = bytes used.
 * Malformed input yields U+FFFD for one byte: counted, never fatal. */
static uint32_t utf8_next(const unsigned char *s, int *len)
{
    if (*s < 0x80) {
        *len = 1;
        return *s;
    }
    if ((*s & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        *len = 2;
        return ((uint32_t)(*s & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if ((*s & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        *len = 3;
        return ((uint32_t)(*s & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if ((*s & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
        (s[3] & 0xC0) == 0x80) {
        *len = 4;
        return ((uint32_t)(*s & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
    *len = 1;
    return 0xFFFD;
}

/* Parts needed when each character costs 1 or 2 units and a 2-unit
 * character (GSM escape pair, UTF-16 surrogate pair) is never split
 * across parts, as a real SMSC splits. */
static int parts(const char *text, int gsm, size_t single, size_t per_part)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t total = 0, cur = 0;
    int n = 1;
    while (*s) {
        int len;
        uint32_t c = utf8_next(s, &len);
        size_t cost = gsm ? (size_t)gsm_septets(c) : (c > 0xFFFF ? 2 : 1);
        total += cost;
        if (cur + cost > per_part) {
            n++;
            cur = 0;
        }
        cur += cost;
        s += len;
    }
    return total <= single ? 1 : n;
}

int sim_segments(const char *text, int *ucs2)
{
    const unsigned char *s = (const unsigned char *)text;
    int gsm = 1;
    while (*s && gsm) {
        int len;
        gsm = gsm_septets(utf8_next(s, &len)) != 0;
        s += len;
    }
    *ucs2 = !gsm;
    return gsm ? parts(text, 1, 160, 153) : parts(text, 0, 70, 67);
}

double sim_cost(struct sim_ctx *cx, const char *text)
{
    int ucs2;
    return sim_segments(text, &ucs2) * cx->acct->cfg.price;
}
