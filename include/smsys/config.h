/* config.h - the smsys configuration file (INI).
 *
 * Every directive is declared once, in the table in src/config.c (section,
 * key, type, default, where it is stored, help). The parser, the validator,
 * `smsysctl config check|keys|dump` and docs/configuration.md all come from
 * that table, so adding a directive is: a field here, a row there.
 *
 * File syntax:
 *   [section]
 *   key = value          ; comment      (# works too; a trailing comment
 *   key = "quoted value"                   needs whitespace before it)
 * Any unquoted value may be `env:NAME` (the environment variable; error when
 * unset) or `file:PATH` (the file's content, one trailing newline trimmed;
 * error when unreadable). A quoted value is always literal.
 *
 * Unknown sections and keys, duplicate keys and values of the wrong type
 * are errors reported as "FILE:LINE: what is wrong". */
#ifndef SMSYS_CONFIG_H
#define SMSYS_CONFIG_H

#include <stddef.h>

#include "smsys/buf.h"
#include "smsys/error.h"

/* Choice order matches the strings in the table ("client_credentials", ...). */
enum config_auth { CONFIG_AUTH_CLIENT_CREDENTIALS = 0, CONFIG_AUTH_NTLM, CONFIG_AUTH_NEGOTIATE };

/* A daily window "HH:MM-HH:MM" in minutes after midnight. end may be less
 * than start (the window crosses midnight). set == 0: no window. */
struct config_window {
    int set;
    int start_min; /* 0..1439 */
    int end_min;   /* 0..1440 */
};

/* Strings are owned by the config (NULL when unset and without default);
 * ints and durations are long long (durations in milliseconds); bools are
 * 0/1; enums hold the index of the choice. */
struct smsys_config {
    char *path; /* the file it was loaded from */

    struct {
        char *url;
        char *api_version;
        int auth; /* enum config_auth */
        char *token_url;
        char *client_id;
        char *client_secret;
        char *scope;
        char *resource;
        char *username;
        char *password;
        long long poll_interval_ms;
        long long max_concurrency;
        long long request_timeout_ms;
        char *ca_file;
        char *proxy;
        int insecure_skip_verify;
    } dataverse;

    struct {
        int enabled;
        char *phone_columns;
        char *optout_tables;
        char *optout_column;
        char *default_country;
        long long max_segments;
        long long page_size;
        long long writeback_batch;
        long long writeback_idle_ms;
    } pickup;

    struct {
        char *instance_name; /* never NULL after load: defaults to the host name */
        long long grace_period_ms;
    } service;

    struct {
        char *conninfo;
        long long pool_size;
        int migrate_on_start;
    } postgres;

    struct {
        char *listen;
        long long max_body_bytes;
    } http;

    struct {
        struct config_window quiet_hours;
        char *timezone;
    } sending;

    struct {
        long long batch_size;
        long long pipeline;
        long long lease_ms;
        long long idle_claim_ms;
        long long backoff_base_ms;
        long long backoff_cap_ms;
        long long account_pause_ms;
        long long receipt_deadline_s;
        long long expire_interval_ms;
        long long accounts_poll_ms;
        long long balance_interval_ms;
    } queue;

    struct {
        int enabled;
        long long poll_interval_ms;
        long long page_size;
        long long chunk;
        long long rate_per_s;
        int refuse_over_balance;
        long long counters_interval_ms;
    } bulk;

    struct {
        int unmatched; /* enum inbound_unmatched: 0 leave unlinked, 1 create a lead */
    } inbound;

    struct {
        int level;  /* enum log_level */
        int format; /* enum log_format */
    } log;

    /* Private to src/config*.c: where each key's value came from. */
    struct config_origin *origin;
    /* Human-readable warnings found while loading (e.g. TLS verification
     * off), one per line, "" when none. Owned by the config. */
    char *warnings;
};

enum config_type {
    CONFIG_STRING,
    CONFIG_SECRET, /* a string never printed: dumps show *** */
    CONFIG_INT,
    CONFIG_BOOL,
    CONFIG_ENUM,
    CONFIG_DURATION, /* milliseconds; "1500", "1500ms", "2s", "5m", "1h" */
    CONFIG_URL,      /* scheme://host...; allowed schemes in choices */
    CONFIG_LISTEN,   /* "127.0.0.1:8480", "[::1]:8480" */
    CONFIG_WINDOW,   /* "08:00-21:00" or empty */
    CONFIG_TIMEZONE, /* IANA name, "Asia/Tehran" */
};

/* Flags of a directive. */
enum {
    CONFIG_REQUIRED = 1 << 0, /* must be set (after defaults) */
    CONFIG_LIVE = 1 << 1,     /* SIGHUP applies a change without a restart */
    CONFIG_MASK_DSN = 1 << 2, /* a string that may embed a password (conninfo): mask it */
};

/* One directive. The table is static and read-only. */
struct config_key {
    const char *section;
    const char *key;
    enum config_type type;
    const char *def;            /* default as it would be written in the file; NULL: unset */
    size_t offset;              /* of the field in struct smsys_config */
    long long min, max;         /* CONFIG_INT, CONFIG_DURATION */
    const char *const *choices; /* CONFIG_ENUM values; CONFIG_URL schemes; NULL-terminated */
    unsigned flags;             /* CONFIG_REQUIRED | CONFIG_LIVE | ... */
    const char *help;           /* one sentence or two, for keys/docs */
};

/* The directive table; *n receives its length. Static storage. */
const struct config_key *config_keys(size_t *n);

/* Finds a directive by section and key; NULL when unknown. */
const struct config_key *config_key_find(const char *section, const char *key);

/* Returns the type's name as shown to users ("int", "duration", ...). */
const char *config_type_name(enum config_type t);

/* Reads and validates the file at path. On success *out is a new config
 * (free with config_free) and 0 is returned. On failure returns
 * SMSYS_ECONFIG (or -ENOMEM / -errno for an unreadable file), *out is
 * untouched and err->detail holds the first problem as "FILE:LINE: ..."
 * (followed by "(and N more errors)" when there were several). Blocking:
 * reads files; call it off the loop thread (or at startup). */
int config_load(const char *path, struct smsys_config **out, struct smsys_err *err);

/* Like config_load, but reports every problem: each one is appended to
 * report as a line "FILE:LINE: ..." and each warning as "FILE: warning: ...".
 * Returns the number of errors (0: valid), or a negative code when report
 * could not grow. out may be NULL; otherwise on 0 errors *out is the loaded
 * config (caller frees). */
int config_check(const char *path, struct buf *report, struct smsys_config **out);

/* Releases everything the config owns (secrets are wiped first). NULL ok. */
void config_free(struct smsys_config *cfg);

/* Appends the effective configuration as an INI file, every key, secrets
 * written as *** (with "; from env:NAME" notes where applicable). */
int config_dump(const struct smsys_config *cfg, struct buf *out);

/* Same as a JSON object {"section": {"key": value, ...}, ...}; secrets "***". */
int config_dump_json(const struct smsys_config *cfg, struct buf *out);

/* Appends one key's effective value as it would be written in the file.
 * mask != 0 replaces secrets by *** (and passwords inside conninfo). */
int config_value_str(const struct smsys_config *cfg, const struct config_key *k, int mask,
                     struct buf *out);

/* Appends the directive table: as aligned text, as JSON, or as the
 * Markdown reference that docs/configuration.md embeds. */
int config_keys_text(struct buf *out);
int config_keys_json(struct buf *out);
int config_keys_markdown(struct buf *out);

/* Returns 1 when now_min (minutes after local midnight) is inside w; an
 * unset window contains every minute. */
int config_window_contains(const struct config_window *w, int now_min);

#endif
