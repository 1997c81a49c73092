/* smsysctl - the smsys admin CLI: global options, the command table and
 * the dispatcher. Commands live in cmd_*.c. */
#include "ctl.h"

#include "smsys/log.h"
#include "smsys/util.h"
#include "smsys/version.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int cmd_version(struct ctl *ctl, int argc, char **argv);

/* The whole CLI. Commands sharing a name are grouped under it in help. */
static const struct ctl_cmd commands[] = {
    {"config", "check", "[FILE]",
     "Validate a configuration file (default: the --config file). Prints every error as "
     "FILE:LINE: problem, and warnings. Exit 0 when valid, 1 when not.",
     CTL_JSON, cmd_config_check},
    {"config", "keys", "[--markdown]",
     "List every configuration key: type, range or choices, default, whether a change "
     "applies on SIGHUP (live), and what it does. --markdown prints the reference table of "
     "docs/configuration.md.",
     CTL_JSON, cmd_config_keys},
    {"config", "dump", "",
     "Print the effective configuration (file plus defaults, env:/file: resolved) as a config "
     "file. Secrets are shown as ***.",
     CTL_JSON, cmd_config_dump},
    {"doctor", NULL, "",
     "Check the installation: configuration, PostgreSQL and schema version, Dynamics sign-in "
     "(WhoAmI), provider accounts. Prints one line per check: ok|FAIL|skip|warn, what, and how "
     "to fix it. Exit 1 when a check failed.",
     CTL_JSON, cmd_doctor},
    {"db", "migrate", "[--dry-run]",
     "Apply the pending SQL migrations to the [postgres] database, in one transaction each. "
     "--dry-run lists what would be applied and changes nothing.",
     0, cmd_db_migrate},
    {"text", "info", "[--ucs2] [--smsc-default 0|1|3] TEXT|-",
     "Show how TEXT travels as SMS: encoding (GSM-7 or UCS-2), characters, units, segments "
     "and what is left in the last segment, counted exactly as sending and billing count it. "
     "- reads the text from standard input. Exit 1 for invalid UTF-8.",
     CTL_JSON, cmd_text_info},
    {"send", NULL, "--to NUMBER --text TEXT [--account NAME] [--from LINE] [--wait [--timeout S]]",
     "Queue one SMS directly in PostgreSQL (no Dynamics record) and print its message id. "
     "The account is chosen by name or id, else the default (or first) enabled one. --wait "
     "polls until a final state and prints it: exit 0 Delivered (or Sent without a receipt "
     "expected), 1 Failed/Unknown/timeout.",
     CTL_JSON, cmd_send},
    {"queue", "stats", "",
     "Count the messages of the PostgreSQL queue by provider account and state (queued, "
     "inflight, sent, delivered, retrying, failed, unknown, ...), with the age of the oldest "
     "in each.",
     CTL_JSON, cmd_queue_stats},
    {"queue", "retry", "--failed [--since 2h|2026-11-28T08:00:00Z] [--unknown]",
     "Put Failed messages (that ended since TIME; all by default) back in the queue with a "
     "fresh attempt budget. --unknown also resends unknown outcomes: only when the provider "
     "is known not to have them (duplicates otherwise).",
     CTL_JSON, cmd_queue_retry},
    {"inbound", "list", "[--since TIME] [--limit N]",
     "List received SMS, newest first: sender, line, state (stored, matched, recorded,\n"
     "failed) and the record matched.",
     CTL_JSON, cmd_inbound_list},
    {"inbound", "show", "ID",
     "Show one received SMS with its matches, rule results and last error (JSON).", 0,
     cmd_inbound_show},
    {"optout", "list", "[--all]", "List opted-out numbers (--all: also those that opted back in).",
     CTL_JSON, cmd_optout_list},
    {"optout", "add", "NUMBER [--who NAME]",
     "Opt a number out of SMS (recorded in the audit history).", 0, cmd_optout_add},
    {"optout", "remove", "NUMBER [--who NAME]",
     "Opt a number back in (recorded in the audit history).", 0, cmd_optout_remove},
    {"optout", "import", "FILE.csv|-",
     "Import numbers (\"number[,opted_out]\" per line) in one transaction.", 0, cmd_optout_import},
    {"optout", "export", "", "Print the opt-out list as CSV.", 0, cmd_optout_export},
    {"rules", "test", "TEXT [--from NUMBER] [--account NAME|ID]",
     "Dry run of the keyword rules on TEXT: which rules fire, the words they matched,\n"
     "what they would do and the rest of the text. Nothing is changed.",
     CTL_JSON, cmd_rules_test},
    {"template", "check", "NAME|ID",
     "Read the SMS template NAME (or with that id) from Dynamics, parse it and check every "
     "column, lookup and related table it names against the server. Prints the columns and "
     "lookups one recipient costs; exit 1 with the placeholder and its position when it is "
     "not valid.",
     CTL_JSON, cmd_template_check},
    {"template", "render", "NAME|ID --for TABLE:ID",
     "Render the SMS template NAME (or with that id) for one recipient, e.g. --for "
     "contact:<guid>, exactly as sending would, and show the text with its encoding and "
     "segment count. Exit 1 when it cannot be rendered (the error names the placeholder).",
     CTL_JSON, cmd_template_render},
    {"providers", "list", "",
     "List the provider accounts smsysd uses (smsys_account, synced from Dynamics): name, "
     "provider, enabled, default, paused, failover order.",
     CTL_JSON, cmd_providers_list},
    {"providers", "balance", "[ACCOUNT]",
     "Read the credit live from the provider through the account's connector (every enabled "
     "account without ACCOUNT). Exit 1 when a read fails.",
     CTL_JSON, cmd_providers_balance},
    {"providers", "lines", "ACCOUNT",
     "List the account's sender lines as the provider's API reports them. Exit 1 when the "
     "API cannot tell or the read fails.",
     CTL_JSON, cmd_providers_lines},
    {"providers", "default", "ACCOUNT",
     "Make ACCOUNT the default in Dynamics (smsys_isdefault set on it, cleared on the others); "
     "smsysd takes it at its next accounts sync, without a restart.",
     CTL_JSON, cmd_providers_default},
    {"providers", "test", "ACCOUNT --to NUMBER [--text TEXT] [--wait]",
     "Queue one test SMS to NUMBER through ACCOUNT (as smsysctl send --account). --wait waits "
     "for the final state: exit 0 Delivered, 1 otherwise.",
     CTL_JSON, cmd_providers_test},
    {"bulk", "list", "[--all]",
     "List the bulk sends smsysd has accepted, newest first: short id, name, state, "
     "total/sent/delivered/failed/skipped (counted live from PostgreSQL; a total still "
     "growing is marked +), created and updated (UTC). --all also shows those that ended "
     "over 7 days ago.",
     CTL_JSON, cmd_bulk_list},
    {"bulk", "preview", "ID",
     "Show the preflight summary of a bulk send: recipients, skipped by reason, segments by "
     "encoding, estimated cost, the account's balance and the verdict; or say that its "
     "audience has not been read yet. ID: the bulk GUID or its first 8+ hex digits.",
     CTL_JSON, cmd_bulk_preview},
    {"bulk", "start", "ID [--rate N]",
     "Ask smsysd to start a bulk send (Draft in Dynamics, or not yet seen by PostgreSQL: "
     "give the full GUID), at most N messages per second when --rate is given (0: no "
     "per-bulk limit). smsysd reads the bulk from Dynamics and sets it Ready. A paused bulk "
     "is resumed.",
     0, cmd_bulk_start},
    {"bulk", "pause", "ID",
     "Pause a bulk send: hand-overs stop at once (in PostgreSQL, even while smsysd is down); "
     "messages in flight finish; smsysd sets Paused in Dynamics.",
     0, cmd_bulk_pause},
    {"bulk", "resume", "ID",
     "Resume a paused bulk send where it stopped; smsysd sets it Ready, then Sending, in "
     "Dynamics.",
     0, cmd_bulk_resume},
    {"bulk", "cancel", "ID",
     "Cancel a bulk send: its waiting messages are canceled at once, the rest of the audience "
     "is not sent, messages in flight finish; smsysd sets Canceled in Dynamics.",
     0, cmd_bulk_cancel},
    {"bulk", "watch", "ID [--timeout S]",
     "Follow a bulk send: a progress bar with sent/delivered/failed/skipped of total, "
     "messages per second over the last 10 s and the ETA (one log line per second when "
     "stdout is not a terminal; --json: one object per line). Exit 0 when the bulk ends "
     "Completed, 1 when it ends Failed or Canceled. Ctrl-C, or --timeout S seconds without "
     "an end, stops watching only (exit 1); the bulk goes on. A bulk waiting for its "
     "scheduled start, or paused, is said so on stderr.",
     CTL_JSON, cmd_bulk_watch},
    {"version", NULL, "", "Print the version.", CTL_JSON, cmd_version},
};

static int cmd_version(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    if (ctl->json)
        printf("{\"program\":\"smsysctl\",\"version\":\"%s\"}\n", SMSYS_VERSION);
    else
        printf("smsysctl %s\n", SMSYS_VERSION);
    return CTL_OK;
}

static void print_cmd_usage(FILE *f, const struct ctl_cmd *c)
{
    fprintf(f, "usage: smsysctl [--config FILE] %s%s%s%s%s%s\n", c->name, c->sub ? " " : "",
            c->sub ? c->sub : "", (c->flags & CTL_JSON) ? " [--json]" : "", *c->usage ? " " : "",
            c->usage);
}

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: smsysctl [--config FILE] [--json] COMMAND [ARGS...]\n"
               "       smsysctl --help | --version\n\n"
               "Commands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
                 commands[i].sub ? commands[i].sub : "");
        fprintf(f, "  %-16s %s\n", name, commands[i].usage);
    }
    fprintf(f,
            "\nOptions:\n"
            "  --config FILE   configuration file (default: $SMSYS_CONFIG, else " CTL_DEFAULT_CONFIG
            ")\n"
            "  --json          machine-readable output, for commands that print data\n"
            "  --help          help; also after any command: smsysctl config check --help\n"
            "\nExit status: 0 ok, 1 failure, 2 usage error.\n");
}

static void print_group_help(FILE *f, const char *name)
{
    fprintf(f, "usage: smsysctl [--config FILE] %s SUBCOMMAND [ARGS...]\n\nSubcommands:\n", name);
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            fprintf(f, "  %-10s %s\n", commands[i].sub, commands[i].usage);
    fprintf(f, "\nRun 'smsysctl %s SUBCOMMAND --help' for details.\n", name);
}

static void print_cmd_help(const struct ctl_cmd *c)
{
    print_cmd_usage(stdout, c);
    printf("\n%s\n", c->help);
    if (c->flags & CTL_JSON)
        printf("\n--json prints the result as JSON.\n");
}

int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("smsysctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (ctl && ctl->cmd)
        print_cmd_usage(stderr, ctl->cmd);
    return CTL_USAGE;
}

int ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("smsysctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CTL_FAIL;
}

struct smsys_config *ctl_load_config(const struct ctl *ctl)
{
    struct smsys_config *cfg = NULL;
    struct smsys_err err = {0};
    if (config_load(ctl->config_path, &cfg, &err) != 0) {
        ctl_fail("%s", err.detail);
        return NULL;
    }
    return cfg;
}

void ctl_out(const struct buf *b)
{
    if (b->data)
        fwrite(b->data, 1, b->len, stdout);
}

static int is_group(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0 && commands[i].sub)
            return 1;
    return 0;
}

static const struct ctl_cmd *find_cmd(const char *name, const char *sub)
{
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        const struct ctl_cmd *c = &commands[i];
        if (strcmp(c->name, name) != 0)
            continue;
        if (c->sub == NULL || (sub && strcmp(c->sub, sub) == 0))
            return c;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    /* Library modules log their events; a CLI shows only problems unless
     * asked (db migrate raises this itself: each file applied matters). */
    log_setup(LOG_WARN, LOG_TEXT, stderr);
    ctl.config_path = getenv("SMSYS_CONFIG");
    if (ctl.config_path == NULL || *ctl.config_path == '\0')
        ctl.config_path = CTL_DEFAULT_CONFIG;

    /* Global options, up to the command name. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_main_usage(stdout);
            return CTL_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("smsysctl %s\n", SMSYS_VERSION);
            return CTL_OK;
        } else if (strcmp(a, "--json") == 0) {
            ctl.json = 1;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            ctl.verbose++;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc)
                return ctl_usage_error(NULL, "--config needs a FILE");
            ctl.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctl.config_path = a + 9;
        } else {
            ctl_usage_error(NULL, "unknown option '%s'", a);
            print_main_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (i >= argc) {
        print_main_usage(stderr);
        return CTL_USAGE;
    }
    const char *name = argv[i++];
    if (strcmp(name, "help") == 0) {
        if (i >= argc) {
            print_main_usage(stdout);
            return CTL_OK;
        }
        name = argv[i];
        const struct ctl_cmd *c = find_cmd(name, i + 1 < argc ? argv[i + 1] : NULL);
        if (c && (c->sub == NULL || i + 1 < argc)) {
            print_cmd_help(c);
            return CTL_OK;
        }
        if (is_group(name)) {
            print_group_help(stdout, name);
            return CTL_OK;
        }
        return ctl_usage_error(NULL, "unknown command '%s'", name);
    }
    const struct ctl_cmd *cmd = NULL;
    if (is_group(name)) {
        if (i >= argc || argv[i][0] == '-') {
            int help = i < argc && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0);
            print_group_help(help ? stdout : stderr, name);
            return help ? CTL_OK : CTL_USAGE;
        }
        cmd = find_cmd(name, argv[i]);
        if (cmd == NULL) {
            fprintf(stderr, "smsysctl: unknown subcommand '%s %s'\n", name, argv[i]);
            print_group_help(stderr, name);
            return CTL_USAGE;
        }
        i++;
    } else {
        cmd = find_cmd(name, NULL);
        if (cmd == NULL) {
            fprintf(stderr, "smsysctl: unknown command '%s'\n", name);
            print_main_usage(stderr);
            return CTL_USAGE;
        }
    }
    ctl.cmd = cmd;
    if (ctl.verbose)
        log_setup(ctl.verbose > 1 ? LOG_DEBUG : LOG_INFO, LOG_TEXT, stderr);

    /* --help anywhere wins; --json is taken out here so handlers never
     * see it. Everything after "--" is passed through untouched. */
    char **rest = calloc((size_t)(argc - i) + 1, sizeof(*rest));
    if (rest == NULL)
        return ctl_fail("out of memory");
    int n = 0, dashdash = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            free(rest);
            print_cmd_help(cmd);
            return CTL_OK;
        }
        if (!dashdash && strcmp(a, "--json") == 0) {
            ctl.json = 1;
            continue;
        }
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = 1;
            continue;
        }
        rest[n++] = argv[i];
    }
    if (ctl.json && !(cmd->flags & CTL_JSON)) {
        free(rest);
        return ctl_usage_error(&ctl, "--json is not supported here: this command prints no data");
    }
    int rc = cmd->run(&ctl, n, rest);
    free(rest);
    fflush(stdout);
    return rc;
}
