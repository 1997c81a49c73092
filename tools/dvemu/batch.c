/* batch.c - OData $batch (multipart/mixed). The MIME framing is parsed
 * here; each part is an embedded HTTP request (request line, headers,
 * body) run through api_exec. Changesets are atomic (store undo log),
 * Content-ID references ($1) resolve to the row a part created, and
 * without Prefer: odata.continue-on-error the first failure ends the
 * batch; the reply then holds only that failure (docs dataverse.md 4). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/util.h"

#define MAX_PARTS 1000

struct part {
    const char *hdr; /* MIME headers of the part */
    size_t hdr_len;
    const char *body;
    size_t body_len;
};

struct sub_hdrs {
    char *names[64];
    char *values[64];
    size_t n;
};

static const char *sub_header_cb(void *ud, const char *name)
{
    struct sub_hdrs *h = ud;
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

/* Finds the value of a MIME header in [h, h+len) into out; 0 if found. */
static int mime_header(const char *h, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *end = h + len;
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(eol - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return 0;
        }
        p = eol + 1;
    }
    return -ENOENT;
}

static int boundary_of(const char *ctype, char *out, size_t len)
{
    const char *b = ctype ? strcasestr(ctype, "boundary=") : NULL;
    if (b == NULL)
        return -EINVAL;
    b += 9;
    int q = *b == '"';
    if (q)
        b++;
    size_t n = strcspn(b, q ? "\"" : "; \t");
    if (n == 0 || n >= len)
        return -EINVAL;
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}

/* Splits a multipart body into parts (RFC 2046: delimiter = CRLF "--"
 * boundary; the first one may start the body). Returns count or -EINVAL. */
static int split_parts(const char *body, size_t len, const char *boundary, struct part *parts,
                       int max)
{
    char delim[200];
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    const char *end = body + len;
    const char *p = memmem(body, len, delim, (size_t)dl);
    int n = 0;
    while (p) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return n; /* close delimiter */
        /* skip transport padding and the line break */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
        const char *next = memmem(p, (size_t)(end - p), delim, (size_t)dl);
        if (next == NULL || n >= max)
            return -EINVAL;
        const char *pe = next;
        if (pe > p && pe[-1] == '\n')
            pe--;
        if (pe > p && pe[-1] == '\r')
            pe--;
        /* part = headers CRLF CRLF body */
        const char *sep = memmem(p, (size_t)(pe - p), "\r\n\r\n", 4);
        size_t sl = 4;
        if (sep == NULL) {
            sep = memmem(p, (size_t)(pe - p), "\n\n", 2);
            sl = 2;
        }
        if (sep == NULL)
            return -EINVAL;
        parts[n].hdr = p;
        parts[n].hdr_len = (size_t)(sep - p);
        parts[n].body = sep + sl;
        parts[n].body_len = (size_t)(pe - sep - sl);
        n++;
        p = next;
    }
    return -EINVAL;
}

struct ctx {
    struct emu *e;
    const struct api_req *outer;
    cJSON *refs; /* Content-ID -> "set(id)" */
    struct buf out;
};

static void free_hdrs(struct sub_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->names[i]);
        free(h->values[i]);
    }
}

/* Replaces "$N" string values (Content-ID references in @odata.bind) in body. */
static char *resolve_body_refs(struct ctx *c, const char *body, size_t len)
{
    struct buf b = BUF_INIT;
    buf_append(&b, body, len);
    cJSON *ref;
    cJSON_ArrayForEach(ref, c->refs)
    {
        char pat[64];
        snprintf(pat, sizeof(pat), "\"$%s\"", ref->string);
        char *hit;
        while (b.data && (hit = strstr(b.data, pat)) != NULL) {
            struct buf nb = BUF_INIT;
            buf_append(&nb, b.data, (size_t)(hit - b.data));
            buf_printf(&nb, "\"/%s\"", ref->valuestring);
            buf_puts(&nb, hit + strlen(pat));
            buf_free(&b);
            b = nb;
        }
    }
    return buf_steal(&b);
}

/* Runs one application/http part; writes its response part to c->out.
 * Returns the HTTP status. */
static int run_request(struct ctx *c, const struct part *pt, struct buf *out, int in_changeset,
                       struct api_res *res)
{
    char cid[64] = "";
    mime_header(pt->hdr, pt->hdr_len, "Content-ID", cid, sizeof(cid));
    const char *p = pt->body, *end = pt->body + pt->body_len;
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    struct sub_hdrs h = {.n = 0};
    char method[16] = "";
    char *url = NULL, *path = NULL;
    int status = 400;
    api_res_init(res);
    /* "METHOD URL HTTP/1.1": the URL may be long (FetchXML, In filters
     * are why clients wrap a GET in $batch), up to DVEMU_URL_MAX_BATCH */
    size_t ml = eol ? strcspn(p, " \r\n") : 0;
    const char *us = p + ml;
    while (eol && us < eol && *us == ' ')
        us++;
    size_t ul = eol ? strcspn(us, " \r\n") : 0;
    if (eol == NULL || ml == 0 || ml >= sizeof(method) || ul == 0) {
        api_error(res, 400, "0x0", "Malformed request line in a $batch part.");
        goto reply;
    }
    if (ul > DVEMU_URL_MAX_BATCH) {
        api_error(res, 414, "0x80060891",
                  "The URL of a $batch part is %zu characters long; the limit is %d.", ul,
                  DVEMU_URL_MAX_BATCH);
        goto reply;
    }
    memcpy(method, p, ml);
    method[ml] = '\0';
    url = strndup(us, ul);
    if (url == NULL) {
        api_error(res, 500, "0x80040216", "Out of memory.");
        goto reply;
    }
    p = eol + 1;
    /* headers */
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll == 0) {
            p = eol < end ? eol + 1 : end;
            break;
        }
        const char *colon = memchr(p, ':', ll);
        if (colon == NULL || h.n == 64) {
            api_error(res, 400, "0x0", "Malformed header in a $batch part.");
            goto reply;
        }
        const char *v = colon + 1;
        while (v < p + ll && *v == ' ')
            v++;
        h.names[h.n] = strndup(p, (size_t)(colon - p));
        h.values[h.n] = strndup(v, (size_t)(p + ll - v));
        h.n++;
        p = eol + 1;
    }
    /* body: the rest of the part */
    size_t blen = p < end ? (size_t)(end - p) : 0;
    /* target: absolute, /api/data/v9.x/..., relative, or $N/... */
    const char *u = url;
    const char *api = strstr(u, "/api/data/v9.");
    if (api)
        u = api + strlen("/api/data/v9.x/");
    struct buf pb = BUF_INIT;
    if (*u == '$' && isdigit((unsigned char)u[1])) {
        size_t dl = strspn(u + 1, "0123456789");
        char num[16];
        snprintf(num, sizeof(num), "%.*s", (int)dl, u + 1);
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(c->refs, num);
        if (!cJSON_IsString(ref)) {
            api_error(res, 400, "0x0", "Content-ID reference $%s is not defined.", num);
            goto reply;
        }
        buf_printf(&pb, "%s%s", ref->valuestring, u + 1 + dl);
    } else {
        buf_puts(&pb, u);
    }
    path = pb.data ? buf_steal(&pb) : strdup("");
    if (path == NULL) {
        api_error(res, 500, "0x80040216", "Out of memory.");
        goto reply;
    }
    char *qm = strchr(path, '?');
    char *body = resolve_body_refs(c, p, blen);
    struct api_req q = {
        .method = method,
        .base = c->outer->base,
        .header = sub_header_cb,
        .header_ud = &h,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .in_batch = 1,
    };
    q.query = strdup(qm ? qm + 1 : "");
    if (qm)
        *qm = '\0';
    q.path = strdup(path);
    if (q.path && http_urldecode(q.path, 0) >= 0)
        api_exec(c->e, &q, res);
    else
        api_error(res, 400, "0x0", "Malformed URL in a $batch part.");
    free(q.path);
    free(q.query);
    free(body);
    if (cid[0] && res->status < 300) {
        char eid[600];
        /* remember "set(id)" from OData-EntityId for $N references */
        const char *hv = res->headers.data ? strstr(res->headers.data, "OData-EntityId: ") : NULL;
        if (hv) {
            hv += 16;
            snprintf(eid, sizeof(eid), "%.*s", (int)strcspn(hv, "\r"), hv);
            const char *tail = strrchr(eid, '/');
            cJSON_DeleteItemFromObjectCaseSensitive(c->refs, cid);
            cJSON_AddStringToObject(c->refs, cid, tail ? tail + 1 : eid);
        }
    }
reply:
    status = res->status;
    buf_puts(out, "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if (cid[0])
        buf_printf(out, "Content-ID: %s\r\n", cid);
    buf_printf(out, "\r\nHTTP/1.1 %d %s\r\n", status,
               status == 200   ? "OK"
               : status == 201 ? "Created"
               : status == 204 ? "No Content"
               : status == 404 ? "Not Found"
               : status == 412 ? "Precondition Failed"
               : status == 414 ? "URI Too Long"
                               : "Error");
    if (res->ctype && status != 204)
        buf_printf(out, "Content-Type: %s\r\n", res->ctype);
    if (res->headers.len)
        buf_append(out, res->headers.data, res->headers.len);
    buf_puts(out, "\r\n");
    if (res->body.len && status != 204)
        buf_append(out, res->body.data, res->body.len);
    buf_puts(out, "\r\n");
    free_hdrs(&h);
    free(url);
    free(path);
    return status;
}

void batch_run(struct emu *e, const struct api_req *q, const char *ctype, struct api_res *r)
{
    char boundary[160];
    struct part *parts = calloc(MAX_PARTS, sizeof(*parts));
    struct part *sub = calloc(MAX_PARTS, sizeof(*sub));
    struct prefer pf;
    prefer_parse(q->header ? q->header(q->header_ud, "Prefer") : NULL, &pf);
    struct ctx c = {.e = e, .outer = q, .refs = cJSON_CreateObject(), .out = BUF_INIT};
    if (parts == NULL || sub == NULL) {
        api_error(r, 500, "0x0", "out of memory");
        goto done;
    }
    if (ctype == NULL || strncasecmp(ctype, "multipart/mixed", 15) != 0 ||
        boundary_of(ctype, boundary, sizeof(boundary)) != 0) {
        api_error(r, 400, "0x0",
                  "The batch request must have a \"Content-Type\" header of multipart/mixed with "
                  "a boundary.");
        goto done;
    }
    int n = split_parts(q->body ? q->body : "", q->body_len, boundary, parts, MAX_PARTS);
    if (n < 0) {
        api_error(r, 400, "0x0", "The batch request body is not a valid multipart/mixed body.");
        goto done;
    }
    e->stats.batches++;
    char rb[64], uuid[37];
    util_uuid4(uuid);
    snprintf(rb, sizeof(rb), "batchresponse_%s", uuid);
    struct buf out = BUF_INIT;
    int failed = 0, total = 0;
    for (int i = 0; i < n && !failed; i++) {
        char pct[300] = "";
        mime_header(parts[i].hdr, parts[i].hdr_len, "Content-Type", pct, sizeof(pct));
        if (strncasecmp(pct, "multipart/mixed", 15) == 0) {
            char cb[160];
            int ns = boundary_of(pct, cb, sizeof(cb)) == 0
                         ? split_parts(parts[i].body, parts[i].body_len, cb, sub, MAX_PARTS)
                         : -EINVAL;
            if (ns < 0 || total + ns > MAX_PARTS) {
                api_error(r, 400, "0x0", "Malformed changeset in the batch request.");
                buf_free(&out);
                goto done;
            }
            total += ns;
            char csb[80], cu[37];
            util_uuid4(cu);
            snprintf(csb, sizeof(csb), "changesetresponse_%s", cu);
            struct buf cs = BUF_INIT, fail = BUF_INIT;
            int rows = 0, bad = 0;
            store_begin(&e->store);
            for (int k = 0; k < ns && !bad; k++) {
                struct buf one = BUF_INIT;
                struct api_res res;
                int st = run_request(&c, &sub[k], &one, 1, &res);
                rows += res.rows_written;
                api_res_free(&res);
                if (st >= 400) {
                    bad = 1;
                    buf_printf(&fail, "--%s\r\n", rb);
                    buf_append(&fail, one.data, one.len);
                } else {
                    buf_printf(&cs, "--%s\r\n", csb);
                    buf_append(&cs, one.data, one.len);
                }
                buf_free(&one);
            }
            if (bad) {
                store_rollback(&e->store);
                if (!pf.continue_on_error) {
                    buf_reset(&out);
                    failed = 1;
                }
                buf_append(&out, fail.data, fail.len);
            } else {
                store_commit(&e->store);
                r->rows_written += rows;
                buf_printf(&out, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", rb,
                           csb);
                buf_append(&out, cs.data, cs.len);
                buf_printf(&out, "--%s--\r\n", csb);
            }
            buf_free(&cs);
            buf_free(&fail);
            continue;
        }
        if (++total > MAX_PARTS) {
            api_error(r, 400, "0x0", "The batch request exceeds the limit of 1000 requests.");
            buf_free(&out);
            goto done;
        }
        struct buf one = BUF_INIT;
        struct api_res res;
        int st = run_request(&c, &parts[i], &one, 0, &res);
        r->rows_written += res.rows_written;
        api_res_free(&res);
        if (st >= 400 && !pf.continue_on_error) {
            buf_reset(&out);
            failed = 1;
        }
        buf_printf(&out, "--%s\r\n", rb);
        buf_append(&out, one.data, one.len);
        buf_free(&one);
    }
    buf_printf(&out, "--%s--\r\n", rb);
    r->status = 200;
    r->ctype = NULL;
    buf_reset(&r->headers);
    api_hdr(r, "OData-Version", "4.0");
    api_hdr(r, "Content-Type", "multipart/mixed; boundary=%s", rb);
    if (pf.continue_on_error)
        api_hdr(r, "Preference-Applied", "odata.continue-on-error");
    buf_reset(&r->body);
    buf_append(&r->body, out.data, out.len);
    buf_free(&out);
done:
    cJSON_Delete(c.refs);
    buf_free(&c.out);
    free(parts);
    free(sub);
}
