/* config.c - the directive table, the INI parser and the validator.
 *
 * The table below is the single declaration of every directive. Loading
 * fills a struct smsys_config from the defaults in the table, then from
 * the file, then checks what only makes sense across keys (auth needs its
 * credentials). Every problem is reported with the file and line; the
 * parser keeps going after an error so `config check` can list them all. */
#include "config_priv.h"

#include "smsys/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(field) offsetof(struct smsys_config, field)

static const char *const auth_choices[] = {"client_credentials", "ntlm", "negotiate", NULL};
static const char *const level_choices[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_choices[] = {"text", "json", NULL};
static const char *const unmatched_choices[] = {"leave", "lead", NULL};
static const char *const proxy_schemes[] = {"http",   "https",   "socks4", "socks4a",
                                            "socks5", "socks5h", NULL};

/* Rows are grouped by section in the order the docs and dumps show them.
 * New sections ([queue], [inbound], [bulk], ...) add a struct in config.h
 * and rows here; nothing else changes. */
static const struct config_key keys[] = {
    /* [dataverse] */
    {"dataverse", "url", CONFIG_URL, NULL, OFF(dataverse.url), .flags = CONFIG_REQUIRED,
     .help = "Organisation root of Dynamics 365 / Dataverse, without /api/data "
             "(https://contoso.crm4.dynamics.com, or the on-premises "
             "https://crm.example.local/OrgName)."},
    {"dataverse", "api_version", CONFIG_STRING, "9.2", OFF(dataverse.api_version),
     .flags = CONFIG_REQUIRED,
     .help = "Web API version used in /api/data/vX.Y/ (9.2 online; 9.0 or 9.1 on older "
             "on-premises servers)."},
    {"dataverse", "auth", CONFIG_ENUM, "client_credentials", OFF(dataverse.auth),
     .choices = auth_choices,
     .help = "How to sign in: client_credentials (OAuth 2.0 app registration, online or AD FS), "
             "ntlm or negotiate (Windows authentication, on-premises)."},
    {"dataverse", "token_url", CONFIG_URL, NULL, OFF(dataverse.token_url),
     .help = "OAuth 2.0 token endpoint (https://login.microsoftonline.com/TENANT/oauth2/v2.0/"
             "token, or https://adfs.example.local/adfs/oauth2/token). Required for "
             "client_credentials."},
    {"dataverse", "client_id", CONFIG_STRING, NULL, OFF(dataverse.client_id),
     .help = "Application (client) id. Required for client_credentials."},
    {"dataverse", "client_secret", CONFIG_SECRET, NULL, OFF(dataverse.client_secret),
     .help = "Client secret. Required for client_credentials; write env:NAME or file:PATH "
             "rather than the secret itself."},
    {"dataverse", "scope", CONFIG_STRING, NULL, OFF(dataverse.scope),
     .help = "OAuth scope for v2.0 token endpoints, normally ORG_URL/.default. Set scope or "
             "resource, not both."},
    {"dataverse", "resource", CONFIG_STRING, NULL, OFF(dataverse.resource),
     .help = "OAuth resource for v1 and AD FS token endpoints (resource= instead of scope=), "
             "normally the organisation URL."},
    {"dataverse", "username", CONFIG_STRING, NULL, OFF(dataverse.username),
     .help = "Windows account for ntlm/negotiate, DOMAIN\\user or user@domain. Required for "
             "ntlm; for negotiate, empty uses the Kerberos ticket of the service account."},
    {"dataverse", "password", CONFIG_SECRET, NULL, OFF(dataverse.password),
     .help = "Password of username (ntlm/negotiate)."},
    {"dataverse", "poll_interval_ms", CONFIG_DURATION, "2000", OFF(dataverse.poll_interval_ms), 100,
     3600000, .help = "How often Dynamics is polled for new work."},
    {"dataverse", "max_concurrency", CONFIG_INT, "8", OFF(dataverse.max_concurrency), 1, 64,
     .help = "Most simultaneous requests to Dynamics (the service also obeys 429 throttling)."},
    {"dataverse", "request_timeout_ms", CONFIG_DURATION, "30000", OFF(dataverse.request_timeout_ms),
     1000, 600000, .help = "Time limit of one Web API or token request, connect included."},
    {"dataverse", "ca_file", CONFIG_STRING, NULL, OFF(dataverse.ca_file),
     .help = "PEM file of CA certificates to trust instead of the system store (an internal CA "
             "of an on-premises server)."},
    {"dataverse", "proxy", CONFIG_URL, NULL, OFF(dataverse.proxy), .choices = proxy_schemes,
     .help = "Proxy for Dynamics and token requests (http://host:3128, socks5h://host:1080). "
             "Empty: none, but libcurl's https_proxy/no_proxy environment variables apply."},
    {"dataverse", "insecure_skip_verify", CONFIG_BOOL, "false", OFF(dataverse.insecure_skip_verify),
     .help = "Do not verify the server's TLS certificate. For a first test only: anyone on the "
             "path can then read the credentials. Prefer ca_file."},

    /* [pickup] */
    {"pickup", "enabled", CONFIG_BOOL, "true", OFF(pickup.enabled),
     .help = "Take Pending outgoing SMS records from Dynamics into the queue and write states "
             "back (leader only). false: this process leaves the Dynamics jobs to others."},
    {"pickup", "phone_columns", CONFIG_STRING,
     "contact:mobilephone,telephone1;account:mobilephone,telephone1;lead:mobilephone,telephone1;"
     "systemuser:mobilephone",
     OFF(pickup.phone_columns),
     .help = "Phone columns per recipient table, in order of preference (F3): "
             "table:column,column;... A custom table may name its entity set and key: "
             "new_client@new_clients/new_clientid:new_mobile. Tables not listed can only be "
             "reached through the party's addressused."},
    {"pickup", "optout_tables", CONFIG_STRING, "contact,account,lead", OFF(pickup.optout_tables),
     .help = "Recipient tables that have the opt-out column; a recipient with it set is Blocked."},
    {"pickup", "optout_column", CONFIG_STRING, "smsys_donotsms", OFF(pickup.optout_column),
     .help = "Yes/No column that opts a recipient out of SMS (F14)."},
    {"pickup", "default_country", CONFIG_STRING, "IR", OFF(pickup.default_country),
     .help = "ISO 3166 country of numbers written without a country code (0912...)."},
    {"pickup", "max_segments", CONFIG_INT, "20", OFF(pickup.max_segments), 1, 255,
     .help = "Longest text in SMS parts; a longer SMS fails with a clear error."},
    {"pickup", "page_size", CONFIG_INT, "2000", OFF(pickup.page_size), 1, 5000,
     .help = "Pending SMS records read per poll (one page, handled whole; a full page polls "
             "again at once). Bounds memory: each record brings its parties and phone "
             "lookups."},
    {"pickup", "writeback_batch", CONFIG_INT, "1000", OFF(pickup.writeback_batch), 1, 1000,
     .help = "SMS records written back to Dynamics per request (UpdateMultiple or $batch)."},
    {"pickup", "writeback_idle_ms", CONFIG_DURATION, "500", OFF(pickup.writeback_idle_ms), 20,
     60000,
     .help = "How often the write-back looks at an empty outbox (a queue NOTIFY wakes it "
             "earlier)."},

    /* [service] */
    {"service", "instance_name", CONFIG_STRING, NULL, OFF(service.instance_name),
     .help = "Name of this instance in logs, metrics and queue leases. Empty: the host name."},
    {"service", "grace_period_ms", CONFIG_DURATION, "10000", OFF(service.grace_period_ms), 0,
     600000, .flags = CONFIG_LIVE,
     .help = "On SIGTERM/SIGINT, how long in-flight work may take to finish before the service "
             "closes anyway."},

    /* [postgres] */
    {"postgres", "conninfo", CONFIG_STRING, NULL, OFF(postgres.conninfo),
     .flags = CONFIG_REQUIRED | CONFIG_MASK_DSN,
     .help = "libpq connection string or URI of the queue database (host=/var/run/postgresql "
             "dbname=smsys). A password in it is masked in dumps."},
    {"postgres", "pool_size", CONFIG_INT, "4", OFF(postgres.pool_size), 1, 64,
     .help = "Number of PostgreSQL connections the service keeps open."},
    {"postgres", "migrate_on_start", CONFIG_BOOL, "true", OFF(postgres.migrate_on_start),
     .help = "smsysd applies pending schema migrations (sql/) before it starts. false: it only "
             "checks the schema version and refuses to start when it is not current (for a "
             "database user without DDL rights; run smsysctl db migrate as the owner)."},

    /* [http] */
    {"http", "listen", CONFIG_LISTEN, "127.0.0.1:8480", OFF(http.listen), .flags = CONFIG_REQUIRED,
     .help = "Address of the HTTP endpoint for /healthz, /metrics and provider webhooks, "
             "IP:PORT or [IPv6]:PORT."},
    {"http", "max_body_bytes", CONFIG_INT, "1048576", OFF(http.max_body_bytes), 1024, 67108864,
     .help = "Largest request body accepted (provider webhooks); larger ones get 413."},

    /* [sending] */
    {"sending", "quiet_hours", CONFIG_WINDOW, "08:00-21:00", OFF(sending.quiet_hours),
     .help = "Daily window HH:MM-HH:MM (in timezone) in which bulk sends are handed to the "
             "provider; outside it they wait (expansion and record creation go on). The default "
             "follows the Iranian rules for promotional SMS. 22:00-06:00 crosses midnight. "
             "Empty (quiet_hours =): bulk sends go out at any hour."},
    {"sending", "timezone", CONFIG_TIMEZONE, "Asia/Tehran", OFF(sending.timezone),
     .flags = CONFIG_REQUIRED, .help = "IANA time zone of quiet_hours and of template dates."},

    /* [queue] */
    {"queue", "batch_size", CONFIG_INT, "200", OFF(queue.batch_size), 1, 5000,
     .help = "Messages claimed per batch and account (never more than the connector takes in "
             "one call)."},
    {"queue", "pipeline", CONFIG_INT, "4", OFF(queue.pipeline), 1, 64,
     .help = "Claimed batches in flight per account, so the connector never waits for the "
             "database."},
    {"queue", "lease_ms", CONFIG_DURATION, "60000", OFF(queue.lease_ms), 1000, 3600000,
     .help = "How long a claimed message belongs to this process. Must exceed the connector's "
             "answer timeout; an expired lease becomes an unknown outcome (never resent blindly)."},
    {"queue", "idle_claim_ms", CONFIG_DURATION, "1000", OFF(queue.idle_claim_ms), 10, 60000,
     .help = "An idle sender claims again after this long even without a NOTIFY (retries whose "
             "time has come are not notified)."},
    {"queue", "backoff_base_ms", CONFIG_DURATION, "30000", OFF(queue.backoff_base_ms), 10, 86400000,
     .help = "First retry delay after a temporary error; doubles per attempt."},
    {"queue", "backoff_cap_ms", CONFIG_DURATION, "3600000", OFF(queue.backoff_cap_ms), 10, 86400000,
     .help = "Longest retry delay."},
    {"queue", "account_pause_ms", CONFIG_DURATION, "300000", OFF(queue.account_pause_ms), 1000,
     86400000,
     .help = "How long an account stays paused after an account-wide error (bad credentials, "
             "no credit); its messages wait or fail over."},
    {"queue", "receipt_deadline_s", CONFIG_INT, "172800", OFF(queue.receipt_deadline_s), 60,
     2592000,
     .help = "A sent message without a final receipt after this many seconds is marked \"no "
             "delivery report\" (it stays Sent, never shown as delivered)."},
    {"queue", "expire_interval_ms", CONFIG_DURATION, "60000", OFF(queue.expire_interval_ms), 100,
     3600000, .help = "How often the receipt deadline is checked (one process does it)."},
    {"queue", "accounts_poll_ms", CONFIG_DURATION, "5000", OFF(queue.accounts_poll_ms), 100, 600000,
     .help = "How often smsys_account is re-read to open, reopen (changed settings) or close "
             "connectors. SIGHUP re-reads at once."},
    {"queue", "balance_interval_ms", CONFIG_DURATION, "600000", OFF(queue.balance_interval_ms),
     10000, 86400000,
     .help = "How often each enabled account's credit is read from its provider and written "
             "to Dynamics (smsys_balance); SIGHUP reads it at once."},

    /* [bulk] */
    {"bulk", "enabled", CONFIG_BOOL, "true", OFF(bulk.enabled),
     .help = "Run the bulk SMS engine (marketing lists and campaigns, docs/bulk.md) on the "
             "leader. false: this process leaves bulk sends to others."},
    {"bulk", "poll_interval_ms", CONFIG_DURATION, "2000", OFF(bulk.poll_interval_ms), 100, 3600000,
     .help = "How often smsys_bulksms records are read for Ready, Paused and Canceled; pause and "
             "cancel from Dynamics take effect within this time. smsysctl commands act at once."},
    {"bulk", "page_size", CONFIG_INT, "5000", OFF(bulk.page_size), 10, 5000,
     .help = "List members read per request while expanding; each page is one checkpoint."},
    {"bulk", "chunk", CONFIG_INT, "1000", OFF(bulk.chunk), 1, 1000,
     .help = "SMS records created per CreateMultiple request (and released to the queue "
             "together)."},
    {"bulk", "rate_per_s", CONFIG_INT, "0", OFF(bulk.rate_per_s), 0, 100000,
     .help = "Default hand-over rate per bulk send in messages per second; 0: only the "
             "provider's limits. smsysctl bulk start ID --rate N overrides it per bulk."},
    {"bulk", "refuse_over_balance", CONFIG_BOOL, "true", OFF(bulk.refuse_over_balance),
     .help = "Fail a bulk send at preflight when the account's known balance cannot cover the "
             "estimated cost (segments x price_per_segment of the account's smsys_config)."},
    {"bulk", "counters_interval_ms", CONFIG_DURATION, "5000", OFF(bulk.counters_interval_ms), 500,
     3600000,
     .help = "How often progress counters are computed and, when changed, written to the bulk "
             "record; also when a finished bulk becomes Completed."},

    /* [inbound] */
    {"inbound", "unmatched", CONFIG_ENUM, "leave", OFF(inbound.unmatched),
     .choices = unmatched_choices,
     .help = "An incoming SMS whose sender matches no contact, lead or account: leave keeps "
             "the SMS record unlinked (from = the number; in the line's queue when it has "
             "one), lead creates a lead for the number and links the SMS to it."},

    /* [log] */
    {"log", "level", CONFIG_ENUM, "info", OFF(log.level), .choices = level_choices,
     .flags = CONFIG_LIVE, .help = "Least severe level written: error, warn, info or debug."},
    {"log", "format", CONFIG_ENUM, "text", OFF(log.format), .choices = format_choices,
     .flags = CONFIG_LIVE, .help = "text (one key=value line per event) or json (JSON lines)."},
};

#define NKEYS ARRAY_LEN(keys)

const struct config_key *config_keys(size_t *n)
{
    *n = NKEYS;
    return keys;
}

size_t config_key_index(const struct config_key *k)
{
    return (size_t)(k - keys);
}

const struct config_key *config_key_find(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
            return &keys[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0)
            return 1;
    return 0;
}

const char *config_type_name(enum config_type t)
{
    switch (t) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_SECRET:
        return "secret";
    case CONFIG_INT:
        return "int";
    case CONFIG_BOOL:
        return "bool";
    case CONFIG_ENUM:
        return "enum";
    case CONFIG_DURATION:
        return "duration";
    case CONFIG_URL:
        return "url";
    case CONFIG_LISTEN:
        return "listen";
    case CONFIG_WINDOW:
        return "window";
    case CONFIG_TIMEZONE:
        return "timezone";
    }
    return "?";
}

int config_type_is_str(enum config_type t)
{
    return t == CONFIG_STRING || t == CONFIG_SECRET || t == CONFIG_URL || t == CONFIG_LISTEN ||
           t == CONFIG_TIMEZONE;
}

char **config_str_at(const struct smsys_config *cfg, const struct config_key *k)
{
    return (char **)((char *)cfg + k->offset);
}

long long *config_ll_at(const struct smsys_config *cfg, const struct config_key *k)
{
    return (long long *)((char *)cfg + k->offset);
}

int *config_int_at(const struct smsys_config *cfg, const struct config_key *k)
{
    return (int *)((char *)cfg + k->offset);
}

struct config_window *config_win_at(const struct smsys_config *cfg, const struct config_key *k)
{
    return (struct config_window *)((char *)cfg + k->offset);
}

int config_window_contains(const struct config_window *w, int now_min)
{
    if (!w->set)
        return 1;
    if (w->start_min < w->end_min)
        return now_min >= w->start_min && now_min < w->end_min;
    return now_min >= w->start_min || now_min < w->end_min;
}

/* ---- parse context and error reporting ---- */

struct pctx {
    const char *path;
    struct smsys_config *cfg;
    struct buf *report; /* every error and warning, or NULL */
    struct buf warnings;
    int nerr;
    int oom;
    char first[448];
    int seen[NKEYS]; /* line that set each key, 0 = not in the file */
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

static int enum_index(const struct config_key *k, const char *s)
{
    for (int i = 0; k->choices[i]; i++)
        if (strcasecmp(s, k->choices[i]) == 0)
            return i;
    return -1;
}

/* Stores text (already resolved) into k's field. Returns 0 or -EINVAL with
 * the reason in msg, or -ENOMEM. */
static int set_value(struct smsys_config *cfg, const struct config_key *k, const char *v, char *msg,
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
    int rc = set_value(c->cfg, k, v, msg, sizeof(msg));
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

static const char *other_section_of(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return keys[i].section;
    return NULL;
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
        *bad_section = !section_known(name);
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
        const char *other = other_section_of(key);
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
    for (size_t i = 0; i < NKEYS; i++) {
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
    const char *auth = auth_choices[cfg->dataverse.auth];
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
        for (size_t i = 0; i < NKEYS; i++) {
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

/* ---- load / free ---- */

void config_free(struct smsys_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (!config_type_is_str(keys[i].type))
            continue;
        char **slot = config_str_at(cfg, &keys[i]);
        if (*slot && (keys[i].type == CONFIG_SECRET || (keys[i].flags & CONFIG_MASK_DSN)))
            explicit_bzero(*slot, strlen(*slot));
        free(*slot);
    }
    if (cfg->origin)
        for (size_t i = 0; i < NKEYS; i++)
            free(cfg->origin[i].ref);
    free(cfg->origin);
    free(cfg->warnings);
    free(cfg->path);
    free(cfg);
}

/* Runs the whole load; fills c->cfg on success (c->nerr == 0). */
static int load(struct pctx *c)
{
    struct smsys_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return -ENOMEM;
    cfg->origin = calloc(NKEYS, sizeof(*cfg->origin));
    cfg->path = strdup(c->path);
    c->cfg = cfg;
    if (cfg->origin == NULL || cfg->path == NULL)
        return -ENOMEM;
    char msg[300];
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].def == NULL)
            continue;
        int rc = set_value(cfg, &keys[i], keys[i].def, msg, sizeof(msg));
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
    struct pctx *c = calloc(1, sizeof(*c));
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
    struct pctx *c = calloc(1, sizeof(*c));
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
