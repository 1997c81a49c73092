/* ctl.h - internals of smsysctl, the admin CLI.
 *
 * Every command is one row of the table in main.c: name, optional
 * subcommand, usage, help and a handler. The dispatcher handles --help
 * (on every command) and --json (on commands that output data) before the
 * handler runs, so handlers only parse their own options. */
#ifndef SMSYSCTL_CTL_H
#define SMSYSCTL_CTL_H

#include <stdio.h>

#include "smsys/buf.h"
#include "smsys/config.h"

/* Exit codes, as interfaces.md promises to scripts. */
enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

#define CTL_DEFAULT_CONFIG "/etc/smsys/smsys.conf"

struct ctl {
    const char *config_path; /* --config, else $SMSYS_CONFIG, else the default */
    int json;                /* --json given (only for CTL_JSON commands) */
    int verbose;             /* --verbose count: module logs at info (1) or debug (2+) */
    const struct ctl_cmd *cmd;
};

enum { CTL_JSON = 1 << 0 /* the command prints data and accepts --json */ };

struct ctl_cmd {
    const char *name;
    const char *sub;   /* NULL: no subcommand */
    const char *usage; /* arguments after "smsysctl NAME [SUB]" */
    const char *help;  /* what it does; printed by --help */
    unsigned flags;
    /* argv holds the command's own arguments (--help and --json removed);
     * returns an exit code. */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

/* Prints "smsysctl: MESSAGE" and the command's usage to stderr; returns
 * CTL_USAGE. */
int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "smsysctl: MESSAGE" to stderr; returns CTL_FAIL. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads ctl->config_path; on failure prints the error and returns NULL.
 * The caller frees the config with config_free. */
struct smsys_config *ctl_load_config(const struct ctl *ctl);

/* Writes b to stdout. */
void ctl_out(const struct buf *b);

/* Signs in to Dynamics with cfg's [dataverse] settings and calls WhoAmI
 * (blocking, bounded by a deadline). Returns 0 with what describing the
 * success, or -1 with what naming the check and fix saying why and what
 * to do. */
int ctl_check_dynamics(const struct smsys_config *cfg, char *what, size_t wlen, char *fix,
                       size_t flen);

int cmd_config_check(struct ctl *ctl, int argc, char **argv);
int cmd_config_keys(struct ctl *ctl, int argc, char **argv);
int cmd_config_dump(struct ctl *ctl, int argc, char **argv);
int cmd_doctor(struct ctl *ctl, int argc, char **argv);
int cmd_db_migrate(struct ctl *ctl, int argc, char **argv);
int cmd_text_info(struct ctl *ctl, int argc, char **argv);
int cmd_queue_stats(struct ctl *ctl, int argc, char **argv);
int cmd_inbound_list(struct ctl *ctl, int argc, char **argv);
int cmd_inbound_show(struct ctl *ctl, int argc, char **argv);
int cmd_optout_list(struct ctl *ctl, int argc, char **argv);
int cmd_optout_add(struct ctl *ctl, int argc, char **argv);
int cmd_optout_remove(struct ctl *ctl, int argc, char **argv);
int cmd_optout_import(struct ctl *ctl, int argc, char **argv);
int cmd_optout_export(struct ctl *ctl, int argc, char **argv);
int cmd_rules_test(struct ctl *ctl, int argc, char **argv);
int cmd_send(struct ctl *ctl, int argc, char **argv);
int cmd_queue_retry(struct ctl *ctl, int argc, char **argv);
int cmd_template_check(struct ctl *ctl, int argc, char **argv);
int cmd_template_render(struct ctl *ctl, int argc, char **argv);
int cmd_providers_list(struct ctl *ctl, int argc, char **argv);
int cmd_providers_balance(struct ctl *ctl, int argc, char **argv);
int cmd_providers_lines(struct ctl *ctl, int argc, char **argv);
int cmd_providers_default(struct ctl *ctl, int argc, char **argv);
int cmd_providers_test(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_list(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_preview(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_start(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_pause(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_resume(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_cancel(struct ctl *ctl, int argc, char **argv);
int cmd_bulk_watch(struct ctl *ctl, int argc, char **argv);

#endif
