/* config_load.c - reading a configuration file: the INI parser, env:/file:
 * values, the checks across keys, and the load/check entry points.
 *
 * Loading fills a struct smsys_config from the defaults in the table
 * (config.c), then from the file, then checks what only makes sense across
 * keys (auth needs its credentials). Every problem is reported with the
 * file and line; the parser keeps going after an error so `config check`
 * can list them all. */
#include "config_priv.h"

#include "smsys/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- parse context and error reporting ---- */

struct pctx {
    const char *path;
    struct smsys_config *cfg;
    struct buf *report; /* every error and warning, or NULL */
    struct buf warnings;
    int nerr;
    int oom;
    char first[448];
    int seen[]; /* per table row: line that set the key, 0 = not in the file */
};

static void perr(struct pctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct pctx *c, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char full[sizeof(c->first)];
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: %s", c->path, line, msg);
    else
        snprintf(full, sizeof(full), "%s: %s", c->path, msg);
    if (c->nerr++ == 0)
        snprintf(c->first, sizeof(c->first), "%s", full);
    if (c->report && buf_printf(c->report, "%s\n", full) != 0)
        c->oom = 1;
}

static void pwarn(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pwarn(struct pctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (buf_printf(&c->warnings, "%s\n", msg) != 0)
        c->oom = 1;
    if (c->report && buf_printf(c->report, "%s: warning: %s\n", c->path, msg) != 0)
        c->oom = 1;
}

/* Reads file:PATH. Relative paths are relative to the config file's
 * directory, so a config and its secret files can move together. */
static int read_value_file(const char *cfgpath, const char *path, struct buf *out)
{
    char full[4096];
    if (path[0] != '/' && strchr(cfgpath, '/')) {
        const char *slash = strrchr(cfgpath, '/');
        snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - cfgpath), cfgpath, path);
    } else {
        snprintf(full, sizeof(full), "%s", path);
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char tmp[4096];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        /* A value, not a document: 64 KiB is plenty for a key or a PEM. */
        if (out->len + (size_t)n > 65536) {
            rc = -EFBIG;
            break;
        }
        if ((rc = buf_append(out, tmp, (size_t)n)) != 0)
            break;
    }
    close(fd);
    explicit_bzero(tmp, sizeof(tmp));
    if (rc == 0 && out->len && out->data[out->len - 1] == '\n') {
        out->data[--out->len] = '\0';
        if (out->len && out->data[out->len - 1] == '\r')
            out->data[--out->len] = '\0';
    }
    if (rc == 0 && out->data && strlen(out->data) != out->len)
        rc = -EILSEQ; /* a NUL byte would silently cut the value */
    return rc;
}

/* Resolves env:/file: and stores the value; reports errors at line. */
static void assign(struct pctx *c, int line, const struct config_key *k, const char *raw,
                   int quoted)
{
    size_t idx = config_key_index(k);
    struct config_origin *o = &c->cfg->origin[idx];
    struct buf val = BUF_INIT;
    const char *v = raw;
    char *ref = NULL;
    if (!quoted && strncmp(raw, "env:", 4) == 0) {
        const char *name = raw + 4;
        const char *e = *name ? getenv(name) : NULL;
        if (e == NULL) {
            perr(c, line, "%s.%s: environment variable '%s' is not set", k->section, k->key, name);
            return;
        }
        v = e;
        ref = strdup(raw);
    } else if (!quoted && strncmp(raw, "file:", 5) == 0) {
        int rc = raw[5] ? read_value_file(c->path, raw + 5, &val) : -ENOENT;
        if (rc != 0) {
            perr(c, line, "%s.%s: cannot read %s: %s", k->section, k->key, raw,
                 rc == -EFBIG    ? "larger than 64 KiB"
                 : rc == -EILSEQ ? "contains a NUL byte"
                                 : strerror(-rc));
            if (val.data)
                explicit_bzero(val.data, val.len);
            buf_free(&val);
            return;
        }
        v = val.data ? val.data : "";
        ref = strdup(raw);
    }
    char msg[300];
    int rc = config_set_value(c->cfg, k, v, msg, sizeof(msg));
    if (rc == -ENOMEM)
        c->oom = 1;
    else if (rc)
        perr(c, line, "%s.%s: %s", k->section, k->key, msg);
    if (val.data)
        explicit_bzero(val.data, val.len);
    buf_free(&val);
    free(o->ref);
    o->ref = ref;
    o->line = line;
}

/* ---- the INI reader ---- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* True when the rest of a line is blank or a comment. */
static int rest_is_blank(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == '#' || *p == ';';
}

/* Parses the value part (after '=') in place. Returns 0 and sets *val and
 * *quoted, or -EINVAL with msg. */
static int parse_value(char *p, char **val, int *quoted, const char **msg)
{
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '"') {
        char *o = p, *i = p + 1;
        for (; *i && *i != '"'; i++) {
            if (*i == '\\') {
                i++;
                switch (*i) {
                case '"':
                case '\\':
                    *o++ = *i;
                    break;
                case 'n':
                    *o++ = '\n';
                    break;
                case 't':
                    *o++ = '\t';
                    break;
                default:
                    *msg = "unknown escape in quoted value (use \\\", \\\\, \\n or \\t)";
                    return -EINVAL;
                }
            } else {
                *o++ = *i;
            }
        }
        if (*i != '"') {
            *msg = "unterminated quoted value";
            return -EINVAL;
        }
        *o = '\0';
        if (!rest_is_blank(i + 1)) {
            *msg = "text after the closing quote";
            return -EINVAL;
        }
        *val = p;
        *quoted = 1;
        return 0;
    }
    /* Unquoted: a comment starts at # or ; at the start or after a blank,
     * so "pass#word" stays whole but "value  # note" loses the note. */
    for (char *q = p; *q; q++) {
        if ((*q == '#' || *q == ';') && (q == p || q[-1] == ' ' || q[-1] == '\t')) {
            *q = '\0';
            break;
        }
    }
    *val = trim(p);
    *quoted = 0;
    return 0;
}

static void parse_line(struct pctx *c, int line, char *s, char *section, size_t seclen,
                       int *bad_section)
{
    s = trim(s);
    if (*s == '\0' || *s == '#' || *s == ';')
        return;
    if (*s == '[') {
        char *end = strchr(s, ']');
        if (end == NULL || !rest_is_blank(end + 1)) {
            perr(c, line, "malformed section header (expected [name])");
            *bad_section = 1;
            return;
        }
        *end = '\0';
        char *name = trim(s + 1);
        snprintf(section, seclen, "%s", name);
        *bad_section = !config_section_known(name);
        if (*bad_section)
            perr(c, line, "unknown section [%s]", name);
        return;
    }
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        perr(c, line, "expected key = value");
        return;
    }
    *eq = '\0';
    char *key = trim(s);
    if (*bad_section)
        return; /* already reported once, at the header */
    if (section[0] == '\0') {
        perr(c, line, "key '%s' outside any section (start with [section])", key);
        return;
    }
    if (*key == '\0') {
        perr(c, line, "missing key before '='");
        return;
    }
    const struct config_key *k = config_key_find(section, key);
    if (k == NULL) {
        const char *other = config_key_section(key);
        if (other)
            perr(c, line, "unknown key '%s' in [%s] (it belongs in [%s])", key, section, other);
        else
            perr(c, line, "unknown key '%s' in [%s]", key, section);
        return;
    }
    size_t idx = config_key_index(k);
    if (c->seen[idx]) {
        perr(c, line, "duplicate key '%s' in [%s] (first set on line %d)", key, section,
             c->seen[idx]);
        return;
    }
    c->seen[idx] = line;
    char *val;
    int quoted;
    const char *why = NULL;
    if (parse_value(eq + 1, &val, &quoted, &why) != 0) {
        perr(c, line, "%s.%s: %s", k->section, k->key, why);
        return;
    }
    assign(c, line, k, val, quoted);
}

static int parse_file(struct pctx *c)
{
    FILE *f = fopen(c->path, "re");
    if (f == NULL) {
        int e = errno;
        perr(c, 0, "cannot open: %s", strerror(e));
        return -e;
    }
    char section[64] = "";
    int bad_section = 0;
    char *linebuf = NULL;
    size_t cap = 0;
    ssize_t n;
    int line = 0;
    while ((n = getline(&linebuf, &cap, f)) >= 0) {
        line++;
        while (n > 0 && (linebuf[n - 1] == '\n' || linebuf[n - 1] == '\r'))
            linebuf[--n] = '\0';
        char *s = linebuf;
        if (line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s += 3; /* UTF-8 BOM, as Windows editors write it */
        if (strlen(s) != (size_t)(n - (s - linebuf))) {
            perr(c, line, "NUL byte in line");
            continue;
        }
        parse_line(c, line, s, section, sizeof(section), &bad_section);
    }
    int e = ferror(f) ? errno : 0;
    if (linebuf)
        explicit_bzero(linebuf, cap);
    free(linebuf);
    fclose(f);
    if (e) {
        perr(c, line + 1, "read error: %s", strerror(e));
        return -e;
    }
    return 0;
}

/* ---- checks across keys ---- */

static int is_set(const struct smsys_config *cfg, const char *section, const char *key)
{
    const struct config_key *k = config_key_find(section, key);
    return k && *config_str_at(cfg, k) != NULL;
}

static int line_of(struct pctx *c, const char *section, const char *key)
{
    const struct config_key *k = config_key_find(section, key);
    return k ? c->seen[config_key_index(k)] : 0;
}

static void validate(struct pctx *c)
{
    struct smsys_config *cfg = c->cfg;
    size_t nkeys;
    const struct config_key *keys = config_keys(&nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        const struct config_key *k = &keys[i];
        if ((k->flags & CONFIG_REQUIRED) && config_type_is_str(k->type) &&
            *config_str_at(cfg, k) == NULL)
            perr(c, c->seen[i], "%s.%s is required: %s", k->section, k->key, k->help);
    }
    if (cfg->dataverse.url && strstr(cfg->dataverse.url, "/api/data"))
        perr(c, line_of(c, "dataverse", "url"),
             "dataverse.url: give the organisation root, without /api/data/...");
    if (cfg->dataverse.api_version) {
        const char *v = cfg->dataverse.api_version;
        size_t d1 = strspn(v, "0123456789");
        if (d1 == 0 || v[d1] != '.' || strspn(v + d1 + 1, "0123456789") == 0 ||
            v[d1 + 1 + strspn(v + d1 + 1, "0123456789")] != '\0')
            perr(c, line_of(c, "dataverse", "api_version"),
                 "dataverse.api_version: expected MAJOR.MINOR, e.g. 9.2");
    }
    int auth_line = line_of(c, "dataverse", "auth");
    const char *auth = config_key_find("dataverse", "auth")->choices[cfg->dataverse.auth];
    if (cfg->dataverse.auth == CONFIG_AUTH_CLIENT_CREDENTIALS) {
        static const char *const need[] = {"token_url", "client_id", "client_secret"};
        for (size_t i = 0; i < ARRAY_LEN(need); i++)
            if (!is_set(cfg, "dataverse", need[i]))
                perr(c, auth_line, "dataverse.%s is required when auth = %s", need[i], auth);
        int s = is_set(cfg, "dataverse", "scope"), r = is_set(cfg, "dataverse", "resource");
        if (!s && !r)
            perr(c, auth_line,
                 "dataverse.scope (v2.0 token endpoint) or dataverse.resource (v1 / AD FS) is "
                 "required when auth = %s",
                 auth);
        if (s && r)
            perr(c, line_of(c, "dataverse", "resource"),
                 "dataverse.scope and dataverse.resource are both set; keep the one your token "
                 "endpoint expects");
    } else if (cfg->dataverse.auth == CONFIG_AUTH_NTLM) {
        if (!is_set(cfg, "dataverse", "username") || !is_set(cfg, "dataverse", "password"))
            perr(c, auth_line,
                 "dataverse.username and dataverse.password are required when "
                 "auth = ntlm");
    } else if (is_set(cfg, "dataverse", "password") && !is_set(cfg, "dataverse", "username")) {
        perr(c, line_of(c, "dataverse", "password"),
             "dataverse.password is set without dataverse.username");
    }
    if (cfg->dataverse.ca_file && access(cfg->dataverse.ca_file, R_OK) != 0)
        perr(c, line_of(c, "dataverse", "ca_file"), "dataverse.ca_file: cannot read %s: %s",
             cfg->dataverse.ca_file, strerror(errno));
    if (cfg->dataverse.insecure_skip_verify)
        pwarn(c, "dataverse.insecure_skip_verify = true: TLS certificates are NOT verified; "
                 "credentials can be stolen by anyone on the network path (use ca_file)");

    /* A literal secret in a file everyone can read is worth a warning. */
    struct stat st;
    if (stat(c->path, &st) == 0 && (st.st_mode & S_IROTH)) {
        for (size_t i = 0; i < nkeys; i++) {
            if (keys[i].type == CONFIG_SECRET && c->seen[i] && cfg->origin[i].ref == NULL &&
                *config_str_at(cfg, &keys[i])) {
                pwarn(c,
                      "%s.%s is written in a world-readable file; use env:NAME or "
                      "file:PATH, or chmod o-r %s",
                      keys[i].section, keys[i].key, c->path);
            }
        }
    }
}

/* A zeroed context with a seen[] slot per table row; caller frees. */
static struct pctx *pctx_new(void)
{
    size_t nkeys;
    config_keys(&nkeys);
    struct pctx *c = calloc(1, sizeof(*c) + nkeys * sizeof(c->seen[0]));
    return c;
}

/* Runs the whole load; fills c->cfg on success (c->nerr == 0). */
static int load(struct pctx *c)
{
    size_t nkeys;
    const struct config_key *keys = config_keys(&nkeys);
    struct smsys_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return -ENOMEM;
    cfg->origin = calloc(nkeys, sizeof(*cfg->origin));
    cfg->path = strdup(c->path);
    c->cfg = cfg;
    if (cfg->origin == NULL || cfg->path == NULL)
        return -ENOMEM;
    char msg[300];
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].def == NULL)
            continue;
        int rc = config_set_value(cfg, &keys[i], keys[i].def, msg, sizeof(msg));
        if (rc)
            return rc == -ENOMEM ? rc : smsys_err_set(NULL, SMSYS_ECONFIG, "bad default");
    }
    int rc = parse_file(c);
    if (rc)
        return rc;
    if (c->nerr == 0)
        validate(c);
    if (cfg->service.instance_name == NULL) {
        char host[256] = "smsys";
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "smsys");
        host[sizeof(host) - 1] = '\0';
        cfg->service.instance_name = strdup(host);
        if (cfg->service.instance_name == NULL)
            return -ENOMEM;
    }
    cfg->warnings = buf_steal(&c->warnings);
    if (cfg->warnings == NULL || c->oom)
        return -ENOMEM;
    return 0;
}

int config_check(const char *path, struct buf *report, struct smsys_config **out)
{
    struct pctx *c = pctx_new();
    if (c == NULL)
        return -ENOMEM;
    c->path = path;
    c->report = report;
    int rc = load(c);
    if (rc == -ENOMEM) {
        config_free(c->cfg);
        buf_free(&c->warnings);
        free(c);
        return -ENOMEM;
    }
    int nerr = c->nerr ? c->nerr : (rc ? 1 : 0);
    if (nerr == 0 && out)
        *out = c->cfg;
    else
        config_free(c->cfg);
    buf_free(&c->warnings);
    free(c);
    return nerr;
}

int config_load(const char *path, struct smsys_config **out, struct smsys_err *err)
{
    struct pctx *c = pctx_new();
    if (c == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory loading %s", path);
    c->path = path;
    int rc = load(c);
    int ret = 0;
    if (rc == -ENOMEM) {
        ret = smsys_err_set(err, -ENOMEM, "out of memory loading %s", path);
    } else if (c->nerr) {
        ret = rc ? rc : SMSYS_ECONFIG;
        if (c->nerr > 1)
            smsys_err_set(err, ret, "%s (and %d more error%s; run smsysctl config check)", c->first,
                          c->nerr - 1, c->nerr > 2 ? "s" : "");
        else
            smsys_err_set(err, ret, "%s", c->first);
    } else if (rc) {
        ret = smsys_err_set(err, rc, "%s: %s", path, smsys_strerror(rc));
    }
    if (ret == 0) {
        *out = c->cfg;
        smsys_err_clear(err);
    } else {
        config_free(c->cfg);
    }
    buf_free(&c->warnings);
    free(c);
    return ret;
}
