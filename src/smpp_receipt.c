/* smpp_receipt.c - delivery receipt parsing and message-id canonical forms. */
#include "smsys/smpp_receipt.h"

#include "smsys/error.h"

#include "msgid_int.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

int smpp_is_receipt(const struct smpp_pdu *p)
{
    return (p->command_id == SMPP_DELIVER_SM || p->command_id == SMPP_DATA_SM) &&
           (p->sm.esm_class & SMPP_ESM_TYPE_MASK) == SMPP_ESM_TYPE_RECEIPT;
}

int smpp_stat_state(const char *stat)
{
    /* Five-letter prefixes tell every spelling we have seen apart
     * (DELIVRD/DELIVERED, UNDELIV/UNDELIVERABLE, REJECTD/REJECTED, ...). */
    static const struct {
        const char *prefix;
        int state;
    } map[] = {
        {"DELIV", SMPP_STATE_DELIVERED}, {"UNDEL", SMPP_STATE_UNDELIVERABLE},
        {"EXPIR", SMPP_STATE_EXPIRED},   {"DELET", SMPP_STATE_DELETED},
        {"ACCEP", SMPP_STATE_ACCEPTED},  {"REJEC", SMPP_STATE_REJECTED},
        {"ENROU", SMPP_STATE_ENROUTE},   {"UNKNO", SMPP_STATE_UNKNOWN},
    };
    if (stat == NULL)
        return SMPP_STATE_NONE;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strncasecmp(stat, map[i].prefix, 5) == 0)
            return map[i].state;
    return SMPP_STATE_NONE;
}

/* Matches key (lower case; ' ' stands for one or more of ' ' or '_') at
 * s[i..n) case-insensitively, then optional spaces and ':'. Returns the
 * index just past the ':' or 0 when there is no match. */
static size_t match_key(const char *s, size_t n, size_t i, const char *key)
{
    for (const char *k = key; *k; k++) {
        if (*k == ' ') {
            if (i >= n || (s[i] != ' ' && s[i] != '_'))
                return 0;
            while (i < n && (s[i] == ' ' || s[i] == '_'))
                i++;
            continue;
        }
        if (i >= n || tolower((unsigned char)s[i]) != *k)
            return 0;
        i++;
    }
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n || s[i] != ':')
        return 0;
    return i + 1;
}

/* Copies the value at s[i..n) up to whitespace (or to the end when
 * rest_of_line) into dst, truncating; skips leading spaces. */
static void copy_value(const char *s, size_t n, size_t i, char *dst, size_t cap, int rest)
{
    while (i < n && s[i] == ' ')
        i++;
    size_t k = 0;
    while (i < n && s[i] != '\0' && (rest || !isspace((unsigned char)s[i]))) {
        if (k + 1 < cap)
            dst[k++] = s[i];
        i++;
    }
    dst[k] = '\0';
}

static int parse_small_int(const char *v)
{
    if (*v == '\0')
        return -1;
    long x = 0;
    for (const char *p = v; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        x = x * 10 + (*p - '0');
        if (x > 1000000)
            return -1;
    }
    return (int)x;
}

/* YYMMDDhhmm[ss] read as UTC (years 00-99 are 2000-2099). 0 if malformed. */
static int64_t date_unix(const char *d)
{
    size_t n = strlen(d);
    if (n != 10 && n != 12)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)d[i]))
            return 0;
#define D2(i) ((d[i] - '0') * 10 + (d[(i) + 1] - '0'))
    struct tm tm = {0};
    tm.tm_year = 100 + D2(0);
    tm.tm_mon = D2(2) - 1;
    tm.tm_mday = D2(4);
    tm.tm_hour = D2(6);
    tm.tm_min = D2(8);
    tm.tm_sec = n == 12 ? D2(10) : 0;
#undef D2
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return 0;
    return (int64_t)timegm(&tm);
}

static void receipt_init(struct smpp_receipt *r)
{
    memset(r, 0, sizeof(*r));
    r->sub = -1;
    r->dlvrd = -1;
}

/* Text fields only; leaves what is already set by TLVs alone. */
static int parse_text_into(const char *s, size_t n, struct smpp_receipt *r)
{
    int have_id = 0;
    char tmp[32];
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !isspace((unsigned char)s[i - 1]))
            continue; /* keys start a word */
        size_t v;
        if ((v = match_key(s, n, i, "id"))) {
            char id[SMPP_MAX_ID_LEN + 1];
            copy_value(s, n, v, id, sizeof(id), 0);
            if (r->id[0] == '\0')
                memcpy(r->id, id, sizeof(id));
            have_id = id[0] != '\0';
        } else if ((v = match_key(s, n, i, "sub"))) {
            copy_value(s, n, v, tmp, sizeof(tmp), 0);
            r->sub = parse_small_int(tmp);
        } else if ((v = match_key(s, n, i, "dlvrd"))) {
            copy_value(s, n, v, tmp, sizeof(tmp), 0);
            r->dlvrd = parse_small_int(tmp);
        } else if ((v = match_key(s, n, i, "submit date"))) {
            copy_value(s, n, v, r->submit_date, sizeof(r->submit_date), 0);
        } else if ((v = match_key(s, n, i, "done date"))) {
            copy_value(s, n, v, r->done_date, sizeof(r->done_date), 0);
            r->done_unix = date_unix(r->done_date);
        } else if ((v = match_key(s, n, i, "stat"))) {
            copy_value(s, n, v, r->stat, sizeof(r->stat), 0);
        } else if ((v = match_key(s, n, i, "err"))) {
            copy_value(s, n, v, r->err, sizeof(r->err), 0);
        } else if ((v = match_key(s, n, i, "text"))) {
            copy_value(s, n, v, r->text, sizeof(r->text), 1);
            break; /* the text runs to the end and may contain "key:" words */
        }
    }
    if (r->state == SMPP_STATE_NONE)
        r->state = smpp_stat_state(r->stat);
    return have_id || r->id[0] ? 0 : SMSYS_EPROTO;
}

int smpp_receipt_parse_text(const char *text, size_t len, struct smpp_receipt *r)
{
    receipt_init(r);
    return parse_text_into(text, len, r);
}

int smpp_receipt_parse(const struct smpp_pdu *p, struct smpp_receipt *r)
{
    receipt_init(r);
    const struct smpp_sm *sm = &p->sm;
    if ((sm->has & SMPP_HAS_RECEIPTED_ID) && sm->receipted_message_id) {
        size_t n = strlen(sm->receipted_message_id);
        if (n > SMPP_MAX_ID_LEN)
            n = SMPP_MAX_ID_LEN;
        memcpy(r->id, sm->receipted_message_id, n);
        r->id[n] = '\0';
    }
    if (sm->has & SMPP_HAS_MSG_STATE)
        r->state = sm->message_state;
    if (sm->has & SMPP_HAS_NETWORK_ERROR) {
        r->has_network_error = 1;
        memcpy(r->network_error, sm->network_error, 3);
    }
    const char *t = (const char *)sm->short_message;
    size_t n = sm->sm_length;
    if (n == 0 && (sm->has & SMPP_HAS_PAYLOAD)) {
        t = (const char *)sm->message_payload;
        n = sm->payload_len;
    }
    if (t && n)
        parse_text_into(t, n, r);
    return r->id[0] ? 0 : SMSYS_EPROTO;
}

/* ---- message ids ------------------------------------------------------ */

int smpp_msgid_canon(const char *id, struct smpp_msgid_canon *out)
{
    return msgid_canon_forms(id, SMPP_MAX_ID_LEN, 1, out->primary, out->alt, sizeof(out->primary));
}

int smpp_msgid_match(const char *a, const char *b)
{
    struct smpp_msgid_canon ca, cb;
    if (smpp_msgid_canon(a, &ca) || smpp_msgid_canon(b, &cb))
        return 0;
    if (strcmp(ca.primary, cb.primary) == 0)
        return 2;
    if ((ca.alt[0] && strcmp(ca.alt, cb.primary) == 0) ||
        (cb.alt[0] && strcmp(ca.primary, cb.alt) == 0) ||
        (ca.alt[0] && cb.alt[0] && strcmp(ca.alt, cb.alt) == 0))
        return 1;
    return 0;
}
