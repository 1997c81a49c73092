/* http_server_route.c - routing, listen addresses and the request/response
 * helpers of http_server.h (see http_server_p.h for the file split). */
#include "http_server_p.h"
#include "smsys/util.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int method_ok(const struct route *r, const char *method)
{
    return r->method == NULL || strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

static int prefix_ok(const struct route *r, const char *path)
{
    if (strncmp(path, r->prefix, r->plen) == 0)
        return 1;
    /* "/api/" also takes "/api" */
    return r->plen > 1 && r->prefix[r->plen - 1] == '/' && strlen(path) == r->plen - 1 &&
           strncmp(path, r->prefix, r->plen - 1) == 0;
}

static void builtin_404_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    static const char msg[] = "{\"error\":\"not found\"}";
    http_resp_send(resp, 404, "application/json", msg, sizeof(msg) - 1);
}

static void builtin_405_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    static const char msg[] = "{\"error\":\"method not allowed\"}";
    struct http_server *s = resp->c->s;
    char allow[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (r->method == NULL || !prefix_ok(r, req->path) || strstr(allow, r->method))
            continue;
        int n = snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", r->method);
        if (n < 0 || (size_t)n >= sizeof(allow) - used)
            break;
        used += (size_t)n;
    }
    if (used)
        http_resp_header(resp, "Allow", allow);
    http_resp_send(resp, 405, "application/json", msg, sizeof(msg) - 1);
}

static const struct route *route_find(const struct http_server *s, const char *method,
                                      const char *path, int *path_matched)
{
    const struct route *best = NULL;
    *path_matched = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!prefix_ok(r, path))
            continue;
        *path_matched = 1;
        if (method_ok(r, method) && (best == NULL || r->plen > best->plen))
            best = r;
    }
    return best;
}

/* Splits the target into path and query, appending NUL-terminated copies
 * to rb (the target itself stays first in rb). */
int http_target_split(struct conn *c, size_t *path_off, size_t *query_off)
{
    static const char zeros[64];
    const char *t = c->rb.data;
    size_t ps = 0, pl, qs = 0, ql = 0;
    int root = 0;
    if (t[0] == '/' || t[0] == '*') {
        pl = strcspn(t, "?#");
        if (t[pl] == '?') {
            qs = pl + 1;
            ql = strcspn(t + qs, "#");
        }
    } else {
        /* absolute-form (http://host/path?query) or CONNECT's authority */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, strlen(t), c->parser.method == HTTP_CONNECT, &u) != 0)
            return -EINVAL;
        if (u.field_set & (1 << UF_PATH)) {
            ps = u.field_data[UF_PATH].off;
            pl = u.field_data[UF_PATH].len;
        } else {
            root = 1;
            pl = 1;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            qs = u.field_data[UF_QUERY].off;
            ql = u.field_data[UF_QUERY].len;
        }
    }
    /* grow first, then copy within the (possibly moved) buffer */
    size_t base = c->rb.len;
    for (size_t need = pl + ql + 2; need;) {
        size_t k = need < sizeof(zeros) ? need : sizeof(zeros);
        if (buf_append(&c->rb, zeros, k))
            return -ENOMEM;
        need -= k;
    }
    char *d = c->rb.data;
    if (root)
        d[base] = '/';
    else
        memcpy(d + base, d + ps, pl);
    d[base + pl] = '\0';
    memcpy(d + base + pl + 1, d + qs, ql);
    d[base + pl + 1 + ql] = '\0';
    *path_off = base;
    *query_off = base + pl + 1;
    return 0;
}

void http_opts_defaults(struct http_server_opts *o, const struct http_server_opts *in)
{
    *o = *in;
    o->listen = NULL;
    if (!o->max_header_bytes)
        o->max_header_bytes = DEFAULT_HDR_MAX;
    if (!o->max_body_bytes)
        o->max_body_bytes = DEFAULT_BODY;
    if (!o->read_timeout_ms)
        o->read_timeout_ms = 10000;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = 60000;
    if (!o->max_connections)
        o->max_connections = 1024;
}

int http_listen_parse(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *port;
    if (s == NULL)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    long long p;
    if (util_parse_int(port, 0, 65535, &p) != 0)
        return -EINVAL;
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

int http_server_route(struct http_server *s, const char *method, const char *prefix,
                      http_handler_cb cb, void *ud)
{
    if (s->nroutes == s->routes_cap) {
        size_t cap = s->routes_cap ? s->routes_cap * 2 : 8;
        struct route *r = realloc(s->routes, cap * sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        s->routes = r;
        s->routes_cap = cap;
    }
    struct route *r = &s->routes[s->nroutes];
    r->method = util_strdup0(method);
    r->prefix = util_strdup0(prefix);
    if ((method && r->method == NULL) || r->prefix == NULL) {
        free(r->method);
        free(r->prefix);
        return -ENOMEM;
    }
    r->plen = strlen(prefix);
    r->cb = cb;
    r->ud = ud;
    s->nroutes++;
    return 0;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int token_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s == ':' || *s == 0x7f)
            return 0;
    return 1;
}

int http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    if (!token_ok(name) || strpbrk(value, "\r\n"))
        return -EINVAL; /* no header injection */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Connection") == 0 ||
        strcasecmp(name, "Transfer-Encoding") == 0)
        return 0; /* the server owns the framing */
    struct buf *b = &resp->hdrs;
    size_t keep = b->len;
    int rc = buf_puts(b, name);
    rc |= buf_append(b, ": ", 2);
    rc |= buf_puts(b, value);
    rc |= buf_append(b, "\r\n", 2);
    if (rc) {
        b->len = keep;
        if (b->data)
            b->data[keep] = '\0';
        return -ENOMEM;
    }
    return 0;
}

int http_urldecode(char *s, int plus_is_space)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                char h = r[i];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0)
                    return -EINVAL;
                v = v * 16 + d;
            }
            *w++ = (char)v;
            r += 2;
        } else if (*r == '+' && plus_is_space) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (int)(w - s);
}

void http_srv_free(struct http_server *s)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].prefix);
    }
    free(s->routes);
    free(s);
}

http_handler_cb http_route_pick(const struct http_server *s, const char *method, const char *path,
                                void **ud)
{
    int path_matched;
    const struct route *rt = route_find(s, method, path, &path_matched);
    *ud = rt ? rt->ud : NULL;
    return rt ? rt->cb : path_matched ? builtin_405_cb : builtin_404_cb;
}
