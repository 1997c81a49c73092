/* textnorm.c - keyword normalisation and word splitting for Persian text. */
#include "smsys/textnorm.h"

#include "smsys/error.h"
#include "smsys/text.h"

#include <errno.h>
#include <string.h>

#define MAX_SEPARATORS 64

enum cls { KEEP, DROP, SPACE, NEWLINE };

static enum cls classify(uint32_t cp)
{
    if (cp == '\n' || cp == '\r' || cp == 0x0085 || cp == 0x2028 || cp == 0x2029)
        return NEWLINE;
    if (cp == ' ' || cp == '\t' || cp == 0x0B || cp == 0x0C || cp == 0x00A0 || cp == 0x1680 ||
        (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return SPACE;
    /* Other controls would glue two words together if dropped. */
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
        return SPACE;
    if (cp == 0x200C || cp == 0x200D || cp == 0x0640 || (cp >= 0x064B && cp <= 0x065F) ||
        cp == 0x0670 || cp == 0x200E || cp == 0x200F || cp == 0x061C ||
        (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF ||
        cp == 0x00AD)
        return DROP;
    return KEEP;
}

static uint32_t fold(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return cp + 0x20;
    if (cp >= 0x00C0 && cp <= 0x00DE && cp != 0x00D7)
        return cp + 0x20;
    switch (cp) {
    case 0x064A: /* Arabic Yeh */
    case 0x0649: /* Alef Maksura */
        return 0x06CC;
    case 0x0643: /* Arabic Kaf */
        return 0x06A9;
    case 0x06BE: /* Heh Doachashmee */
    case 0x06C1: /* Heh Goal */
        return 0x0647;
    default:
        break;
    }
    if (cp >= 0x06F0 && cp <= 0x06F9)
        return '0' + (cp - 0x06F0);
    if (cp >= 0x0660 && cp <= 0x0669)
        return '0' + (cp - 0x0660);
    return cp;
}

static int put_cp(struct buf *out, uint32_t cp)
{
    char u[4];
    size_t n = text_utf8_encode(cp, u);
    return buf_append(out, u, n);
}

int textnorm_keywords(const char *utf8, struct buf *out)
{
    size_t len = strlen(utf8);
    if (text_utf8_validate(utf8, len, NULL))
        return SMSYS_EUTF8;
    size_t start = out->len, pos = 0;
    int pend_space = 0, pend_nl = 0;
    int rc = buf_append(out, "", 0); /* so out->data is a string even for "" */
    while (pos < len && rc == 0) {
        uint32_t cp;
        (void)text_utf8_next(utf8, len, &pos, &cp, NULL);
        switch (classify(cp)) {
        case DROP:
            continue;
        case SPACE:
            pend_space = 1;
            continue;
        case NEWLINE:
            pend_nl = 1;
            continue;
        case KEEP:
            break;
        }
        if (out->len > start && pend_nl)
            rc = buf_putc(out, '\n');
        else if (out->len > start && pend_space)
            rc = buf_putc(out, ' ');
        pend_space = pend_nl = 0;
        if (rc == 0)
            rc = put_cp(out, fold(cp));
    }
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

/* Parses the separator setting into code points. */
static int parse_separators(const char *s, uint32_t *seps, size_t *n)
{
    if (s == NULL || s[0] == '\0')
        s = TEXTNORM_DEFAULT_SEPARATORS;
    size_t len = strlen(s), pos = 0;
    *n = 0;
    if (text_utf8_validate(s, len, NULL))
        return SMSYS_EUTF8;
    while (pos < len) {
        uint32_t cp;
        (void)text_utf8_next(s, len, &pos, &cp, NULL);
        uint32_t extra = 0;
        if (cp == '\\' && pos < len) {
            switch (s[pos]) {
            case 'n':
                cp = '\n';
                pos++;
                break;
            case 'r':
                cp = '\r';
                pos++;
                break;
            case 't':
                cp = '\t';
                pos++;
                break;
            case 's':
                cp = ' ';
                pos++;
                break;
            case '\\':
                pos++;
                break;
            default:
                /* Unknown escape: the backslash and the next character are
                 * both separators, as written. */
                (void)text_utf8_next(s, len, &pos, &extra, NULL);
                break;
            }
        }
        for (int k = 0; k < 2; k++) {
            uint32_t c = k == 0 ? cp : extra;
            if (k == 1 && extra == 0)
                break;
            if (*n == MAX_SEPARATORS)
                return -EINVAL;
            seps[(*n)++] = c;
        }
    }
    return 0;
}

int textnorm_split(const char *normalized, const char *separators, textnorm_word_cb cb, void *ud)
{
    uint32_t seps[MAX_SEPARATORS];
    size_t nsep;
    int rc = parse_separators(separators, seps, &nsep);
    if (rc)
        return rc;
    size_t len = strlen(normalized), pos = 0, word = 0;
    if (text_utf8_validate(normalized, len, NULL))
        return SMSYS_EUTF8;
    while (pos < len) {
        size_t at = pos;
        uint32_t cp;
        (void)text_utf8_next(normalized, len, &pos, &cp, NULL);
        int is_sep = 0;
        for (size_t i = 0; i < nsep && !is_sep; i++)
            is_sep = seps[i] == cp;
        if (!is_sep)
            continue;
        if (at > word) {
            rc = cb(normalized + word, at - word, ud);
            if (rc)
                return rc;
        }
        word = pos;
    }
    if (len > word)
        return cb(normalized + word, len - word, ud);
    return 0;
}

struct collect {
    const char **words;
    size_t *lens;
    size_t max, n;
};

static int collect_cb(const char *word, size_t len, void *ud)
{
    struct collect *c = ud;
    if (c->n < c->max) {
        c->words[c->n] = word;
        c->lens[c->n] = len;
    }
    c->n++;
    return 0;
}

int textnorm_split_array(const char *normalized, const char *separators, const char **words,
                         size_t *lens, size_t max, size_t *n)
{
    struct collect c = {words, lens, max, 0};
    int rc = textnorm_split(normalized, separators, collect_cb, &c);
    *n = c.n;
    return rc;
}

int textnorm_digits_to_persian(const char *utf8, size_t len, struct buf *out)
{
    if (text_utf8_validate(utf8, len, NULL))
        return SMSYS_EUTF8;
    size_t start = out->len, pos = 0;
    int rc = buf_append(out, "", 0);
    while (pos < len && rc == 0) {
        size_t at = pos;
        uint32_t cp;
        (void)text_utf8_next(utf8, len, &pos, &cp, NULL);
        if (cp >= '0' && cp <= '9')
            rc = put_cp(out, 0x06F0 + (cp - '0'));
        else if (cp >= 0x0660 && cp <= 0x0669)
            rc = put_cp(out, 0x06F0 + (cp - 0x0660));
        else
            rc = buf_append(out, utf8 + at, pos - at);
    }
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
