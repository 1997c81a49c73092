/* config.c - the directive table: every key's section, type, default,
 * bounds and help, the lookups over it, and freeing a loaded config.
 *
 * The table below is the single declaration of every directive. Reading a
 * file (parser, checks across keys) is config_load.c; the value types are
 * config_types.c; dumps and the key reference are config_out.c. */
#include "config_priv.h"

#include "smsys/util.h"

#include <stdlib.h>
#include <string.h>

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

int config_section_known(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0)
            return 1;
    return 0;
}

const char *config_key_section(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return keys[i].section;
    return NULL;
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
