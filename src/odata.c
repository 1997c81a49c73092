/* odata.c - OData query building, response helpers and the $batch codec.
 * See include/smsys/odata.h for the two escaping layers. */
#include "smsys/odata.h"

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/util.h"

/* ---- literals ---- */

/* 1 when s is well-formed UTF-8 (no overlongs, no surrogates). */
static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        s++;
        for (size_t i = 0; i < n; i++, s++) {
            if ((*s & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (*s & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
    }
    return 1;
}

int odata_lit_string(struct buf *b, const char *s)
{
    if (s == NULL || !utf8_ok((const unsigned char *)s))
        return -EINVAL;
    size_t old = b->len;
    int rc = buf_putc(b, '\'');
    for (const char *p = s; rc == 0 && *p; p++) {
        rc = buf_putc(b, *p);
        if (rc == 0 && *p == '\'')
            rc = buf_putc(b, '\'');
    }
    if (rc == 0)
        rc = buf_putc(b, '\'');
    if (rc < 0 && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

/* Copies a canonical GUID (lower case, no braces) into out[37], or -EINVAL. */
static int guid_norm(const char *s, size_t len, char out[37])
{
    if (len == 38 && s[0] == '{' && s[37] == '}') {
        s++;
        len = 36;
    }
    if (len != 36)
        return -EINVAL;
    for (size_t i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return -EINVAL;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[36] = '\0';
    return 0;
}

int odata_lit_guid(struct buf *b, const char *guid)
{
    char g[37];
    if (guid == NULL || guid_norm(guid, strlen(guid), g) < 0)
        return -EINVAL;
    return buf_puts(b, g);
}

int odata_lit_datetime(struct buf *b, int64_t unix_s)
{
    /* 0001-01-01 .. 9999-12-31: what Edm.DateTimeOffset can hold */
    if (unix_s < -62135596800LL || unix_s > 253402300799LL)
        return -EINVAL;
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return -EINVAL;
    return buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int odata_query_add(struct buf *b, const char *name, const char *value)
{
    if (name == NULL || *name == '\0')
        return -EINVAL;
    if (value == NULL || *value == '\0')
        return 0;
    size_t old = b->len;
    int rc = buf_putc(b, b->data && strchr(b->data, '?') ? '&' : '?');
    if (rc == 0)
        rc = buf_puts(b, name);
    if (rc == 0)
        rc = buf_putc(b, '=');
    if (rc == 0)
        rc = buf_put_urlenc(b, value);
    if (rc < 0 && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

static int ident_ok(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

int odata_select(struct buf *b, const char *const *cols, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ident_ok(cols[i]))
            return -EINVAL;
    size_t old = b->len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (b->len > 0)
            rc = buf_putc(b, ',');
        if (rc == 0)
            rc = buf_puts(b, cols[i]);
    }
    if (rc < 0 && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

int odata_expand(struct buf *b, const char *nav, const char *select, const char *filter)
{
    if (!ident_ok(nav))
        return -EINVAL;
    if (select) {
        /* a column list only: a stray ';' or ')' would end the options */
        for (const char *p = select; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != ',')
                return -EINVAL;
    }
    size_t old = b->len;
    int rc = b->len > 0 ? buf_putc(b, ',') : 0;
    if (rc == 0)
        rc = buf_puts(b, nav);
    int have_sel = select && *select, have_f = filter && *filter;
    if (rc == 0 && (have_sel || have_f))
        rc = buf_printf(b, "(%s%s%s%s%s)", have_sel ? "$select=" : "", have_sel ? select : "",
                        have_sel && have_f ? ";" : "", have_f ? "$filter=" : "",
                        have_f ? filter : "");
    if (rc < 0 && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}

/* ---- response helpers ---- */

int odata_entity_id(const char *entity_id, char out[37])
{
    if (entity_id == NULL)
        return -EINVAL;
    size_t len = strlen(entity_id);
    while (len > 0 && isspace((unsigned char)entity_id[len - 1]))
        len--;
    if (len < 38 || entity_id[len - 1] != ')' || entity_id[len - 38] != '(')
        return -EINVAL;
    return guid_norm(entity_id + len - 37, 36, out);
}

const char *odata_annotation(const cJSON *row, const char *prop, const char *term)
{
    char key[256];
    if (row == NULL || prop == NULL || term == NULL)
        return NULL;
    int n = snprintf(key, sizeof key, "%s@%s", prop, term);
    if (n < 0 || (size_t)n >= sizeof key)
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *odata_formatted(const cJSON *row, const char *prop)
{
    return odata_annotation(row, prop, "OData.Community.Display.V1.FormattedValue");
}

const char *odata_lookup_table(const cJSON *row, const char *lookup)
{
    char prop[200];
    if (lookup == NULL)
        return NULL;
    size_t l = strlen(lookup);
    int n;
    if (l > 7 && lookup[0] == '_' && strcmp(lookup + l - 6, "_value") == 0)
        n = snprintf(prop, sizeof prop, "%s", lookup);
    else
        n = snprintf(prop, sizeof prop, "_%s_value", lookup);
    if (n < 0 || (size_t)n >= sizeof prop)
        return NULL;
    return odata_annotation(row, prop, "Microsoft.Dynamics.CRM.lookuplogicalname");
}

int odata_error_parse(const char *body, size_t len, char *code, size_t code_len, char *msg,
                      size_t msg_len)
{
    if (code_len)
        code[0] = '\0';
    if (msg_len)
        msg[0] = '\0';
    if (body == NULL || len == 0)
        return 0;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (j == NULL)
        return 0;
    int found = 0;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (cJSON_IsString(c))
            snprintf(code, code_len, "%s", c->valuestring);
        if (cJSON_IsString(m))
            snprintf(msg, msg_len, "%s", m->valuestring);
        found = cJSON_IsString(c) || cJSON_IsString(m);
    } else if (cJSON_IsString(e)) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
        snprintf(code, code_len, "%s", e->valuestring);
        if (cJSON_IsString(d))
            snprintf(msg, msg_len, "%s", d->valuestring);
        found = 1;
    }
    cJSON_Delete(j);
    return found;
}

/* ---- $batch: building ---- */

int odata_batch_build(struct buf *b, const char *boundary, const char *changeset,
                      const struct odata_batch_req *reqs, size_t n)
{
    if (boundary == NULL || *boundary == '\0')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *u = reqs[i].url, *m = reqs[i].method;
        if (m == NULL || u == NULL || strpbrk(u, " \r\n") || strpbrk(m, " \r\n") ||
            (reqs[i].if_match && strpbrk(reqs[i].if_match, "\r\n")) ||
            (reqs[i].content_id && strpbrk(reqs[i].content_id, "\r\n")))
            return -EINVAL;
    }
    int rc = 0;
    const char *pb = boundary;
    if (changeset) {
        rc = buf_printf(b, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", boundary,
                        changeset);
        pb = changeset;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct odata_batch_req *r = &reqs[i];
        rc = buf_printf(b,
                        "--%s\r\nContent-Type: application/http\r\n"
                        "Content-Transfer-Encoding: binary\r\n",
                        pb);
        if (rc == 0 && r->content_id)
            rc = buf_printf(b, "Content-ID: %s\r\n", r->content_id);
        if (rc == 0)
            rc = buf_printf(b, "\r\n%s %s HTTP/1.1\r\n", r->method, r->url);
        if (rc == 0 && r->body)
            rc = buf_puts(b, "Content-Type: application/json; charset=utf-8\r\n");
        if (rc == 0 && r->if_match)
            rc = buf_printf(b, "If-Match: %s\r\n", r->if_match);
        if (rc == 0)
            rc = buf_printf(b, "\r\n%s\r\n", r->body ? r->body : "");
    }
    if (rc == 0 && changeset)
        rc = buf_printf(b, "--%s--\r\n", changeset);
    if (rc == 0)
        rc = buf_printf(b, "--%s--\r\n", boundary);
    return rc;
}

/* ---- $batch: parsing ---- */

#define BATCH_MAX_PARTS   10000
#define BATCH_MAX_HEADERS 100

struct bp {
    struct odata_batch *out;
    struct smsys_err *err;
    int changesets;
};

/* The line starting at p: *eol is where its content ends (before CR LF or
 * LF), the return value where the next line starts (end when none). */
static const char *line_next(const char *p, const char *end, const char **eol)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
        *eol = end;
        return end;
    }
    *eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
    return nl + 1;
}

/* Finds "--bnd" at the start of a line in [p, end); start counts as a line
 * start only when at_start is set. */
static const char *delim_find(const char *p, const char *end, const char *bnd, size_t blen,
                              int at_start)
{
    const char *s = p;
    while (s < end) {
        if ((s == p ? at_start : s[-1] == '\n') && (size_t)(end - s) >= blen + 2 && s[0] == '-' &&
            s[1] == '-' && memcmp(s + 2, bnd, blen) == 0)
            return s;
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL)
            return NULL;
        s = nl + 1;
    }
    return NULL;
}

/* Extracts the boundary parameter of a multipart Content-Type value. */
static int boundary_get(const char *ct, size_t ctlen, char *out, size_t outlen)
{
    const char *end = ct + ctlen;
    while (ct < end && isspace((unsigned char)*ct))
        ct++;
    if ((size_t)(end - ct) < 15 || strncasecmp(ct, "multipart/mixed", 15) != 0)
        return -EINVAL;
    for (const char *p = ct + 15; p < end; p++) {
        if (*p != ';')
            continue;
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if ((size_t)(end - p) < 9 || strncasecmp(p, "boundary=", 9) != 0)
            continue;
        p += 9;
        const char *v = p, *ve;
        if (p < end && *p == '"') {
            v = ++p;
            ve = memchr(p, '"', (size_t)(end - p));
            if (ve == NULL)
                return -EINVAL;
        } else {
            ve = v;
            while (ve < end && *ve != ';' && !isspace((unsigned char)*ve))
                ve++;
        }
        size_t n = (size_t)(ve - v);
        if (n == 0 || n > 70 || n >= outlen)
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
                return -EINVAL;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -EINVAL;
}

/* Value of MIME header name in the block [p, end), trimmed; 0 if absent. */
static int mime_header(const char *p, const char *end, const char *name, const char **v,
                       size_t *vlen)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol, *next = line_next(p, end, &eol);
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *s = p + nl + 1;
            while (s < eol && (*s == ' ' || *s == '\t'))
                s++;
            const char *e = eol;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *v = s;
            *vlen = (size_t)(e - s);
            return 1;
        }
        p = next;
    }
    return 0;
}

static char *memdup0(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static void part_free(struct odata_part *p)
{
    free(p->content_id);
    free(p->headers);
    free(p->body);
    free(p->store_);
}

/* Parses one application/http part body: status line, headers, body. */
static int http_part(struct bp *bp, const char *p, const char *end, const char *cid, size_t cidlen,
                     int changeset)
{
    if (bp->out->n >= BATCH_MAX_PARTS)
        return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: more than %d parts",
                             BATCH_MAX_PARTS);
    /* tolerate blank lines before the status line */
    const char *eol, *next;
    for (;;) {
        if (p >= end)
            return smsys_err_set(bp->err, SMSYS_EPROTO,
                                 "$batch response: part without HTTP "
                                 "status line");
        next = line_next(p, end, &eol);
        if (eol > p)
            break;
        p = next;
    }
    int status = 0;
    if ((size_t)(eol - p) < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) ||
        p[8] != ' ' || !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]) || ((size_t)(eol - p) > 12 && p[12] != ' '))
        return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: bad HTTP status line");
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status < 100 || status > 599)
        return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: bad HTTP status %d", status);
    p = next;
    const char *hstart = p, *hend = p, *body = end;
    size_t nh = 0;
    while (p < end) {
        next = line_next(p, end, &eol);
        if (eol == p) { /* blank line: headers done */
            hend = p;
            body = next;
            break;
        }
        if (memchr(p, ':', (size_t)(eol - p)) == NULL)
            return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: bad header line");
        if (++nh > BATCH_MAX_HEADERS)
            return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: too many headers");
        p = next;
        hend = p;
    }
    struct odata_part part = {.status = status, .changeset = changeset};
    part.body = memdup0(body, (size_t)(end - body));
    part.body_len = (size_t)(end - body);
    part.store_ = memdup0(hstart, (size_t)(hend - hstart));
    part.headers = calloc(nh ? nh : 1, sizeof *part.headers);
    if (cid)
        part.content_id = memdup0(cid, cidlen);
    if (part.body == NULL || part.store_ == NULL || part.headers == NULL ||
        (cid && part.content_id == NULL)) {
        part_free(&part);
        return smsys_err_set(bp->err, -ENOMEM, "$batch response: out of memory");
    }
    /* split the copied header block in place: "Name: value" -> name, value */
    char *s = part.store_, *se = part.store_ + (hend - hstart);
    while (s < se && part.n_headers < nh) {
        char *nl = memchr(s, '\n', (size_t)(se - s));
        char *le = nl ? nl : se;
        char *lend = le > s && le[-1] == '\r' ? le - 1 : le;
        *lend = '\0';
        char *colon = strchr(s, ':');
        if (colon == NULL) { /* a NUL byte inside the line hid the ':' */
            s = nl ? nl + 1 : se;
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        for (char *t = colon - 1; t >= s && (*t == ' ' || *t == '\t'); t--)
            *t = '\0';
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        part.headers[part.n_headers].name = s;
        part.headers[part.n_headers].value = v;
        part.n_headers++;
        s = nl ? nl + 1 : se;
    }
    if (part.content_id == NULL) {
        const char *c = odata_part_header(&part, "Content-ID");
        if (c && (part.content_id = util_strdup0(c)) == NULL) {
            part_free(&part);
            return smsys_err_set(bp->err, -ENOMEM, "$batch response: out of memory");
        }
    }
    struct odata_batch *o = bp->out;
    if (o->n == o->cap_) {
        size_t nc = o->cap_ ? o->cap_ * 2 : 16;
        struct odata_part *np = realloc(o->parts, nc * sizeof *np);
        if (np == NULL) {
            part_free(&part);
            return smsys_err_set(bp->err, -ENOMEM, "$batch response: out of memory");
        }
        o->parts = np;
        o->cap_ = nc;
    }
    o->parts[o->n++] = part;
    return 0;
}

static int multipart(struct bp *bp, const char *data, const char *end, const char *bnd, int depth,
                     int changeset);

/* One MIME part [p, end): headers, blank line, content. */
static int mime_part(struct bp *bp, const char *p, const char *end, int depth, int changeset)
{
    const char *hs = p, *he = NULL, *eol;
    while (p < end) {
        const char *next = line_next(p, end, &eol);
        if (eol == p) {
            he = p;
            p = next;
            break;
        }
        p = next;
    }
    if (he == NULL)
        return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: part headers not ended");
    const char *ct = NULL, *cid = NULL;
    size_t ctlen = 0, cidlen = 0;
    mime_header(hs, he, "Content-ID", &cid, &cidlen);
    if (mime_header(hs, he, "Content-Type", &ct, &ctlen) && ctlen >= 10 &&
        strncasecmp(ct, "multipart/", 10) == 0) {
        char inner[80];
        if (depth >= 1)
            return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: nested too deep");
        if (boundary_get(ct, ctlen, inner, sizeof inner) < 0)
            return smsys_err_set(bp->err, SMSYS_EPROTO,
                                 "$batch response: changeset without "
                                 "boundary");
        return multipart(bp, p, end, inner, depth + 1, bp->changesets++);
    }
    return http_part(bp, p, end, cid, cidlen, changeset);
}

static int multipart(struct bp *bp, const char *data, const char *end, const char *bnd, int depth,
                     int changeset)
{
    size_t blen = strlen(bnd);
    const char *d = delim_find(data, end, bnd, blen, 1);
    if (d == NULL)
        return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: boundary not found");
    for (;;) {
        const char *after = d + 2 + blen;
        if ((size_t)(end - after) >= 2 && after[0] == '-' && after[1] == '-')
            return 0; /* closing delimiter; the epilogue is ignored */
        const char *eol, *start = line_next(after, end, &eol);
        for (const char *t = after; t < eol; t++)
            if (*t != ' ' && *t != '\t') /* "--bnd" is a prefix of another boundary */
                return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: bad delimiter");
        if (start >= end)
            return smsys_err_set(bp->err, SMSYS_EPROTO, "$batch response: truncated");
        const char *nd = delim_find(start, end, bnd, blen, 1);
        if (nd == NULL)
            return smsys_err_set(bp->err, SMSYS_EPROTO,
                                 "$batch response: closing delimiter "
                                 "missing (truncated?)");
        /* the line break before a delimiter belongs to the delimiter */
        const char *pe = nd;
        if (pe > start && pe[-1] == '\n')
            pe--;
        if (pe > start && pe[-1] == '\r')
            pe--;
        int rc = mime_part(bp, start, pe, depth, changeset);
        if (rc < 0)
            return rc;
        d = nd;
    }
}

int odata_batch_parse(const char *content_type, const char *body, size_t len,
                      struct odata_batch *out, struct smsys_err *err)
{
    memset(out, 0, sizeof *out);
    char bnd[80];
    if (content_type == NULL ||
        boundary_get(content_type, strlen(content_type), bnd, sizeof bnd) < 0)
        return smsys_err_set(err, SMSYS_EPROTO,
                             "$batch response: Content-Type is not multipart/mixed with a "
                             "boundary");
    if (body == NULL)
        return smsys_err_set(err, SMSYS_EPROTO, "$batch response: empty");
    struct bp bp = {.out = out, .err = err};
    int rc = multipart(&bp, body, body + len, bnd, 0, -1);
    if (rc == 0 && out->n == 0)
        rc = smsys_err_set(err, SMSYS_EPROTO, "$batch response: no parts");
    if (rc < 0)
        odata_batch_free(out);
    return rc;
}

void odata_batch_free(struct odata_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        part_free(&b->parts[i]);
    free(b->parts);
    memset(b, 0, sizeof *b);
}

const char *odata_part_header(const struct odata_part *p, const char *name)
{
    for (size_t i = 0; i < p->n_headers; i++)
        if (strcasecmp(p->headers[i].name, name) == 0)
            return p->headers[i].value;
    return NULL;
}
