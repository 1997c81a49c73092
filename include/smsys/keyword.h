/* keyword.h - inbound keyword rules (F14, F15): smsys_keywordrule rows as
 * a rule set, and their evaluation against one inbound text.
 *
 * Evaluation is a pure function (no I/O, no clock): the inbound processor
 * (inbound.c) runs what it returns, and `smsysctl rules test` prints it.
 * Text and keywords both go through textnorm_keywords() and are split on
 * the account's separators (textnorm_split), so Arabic/Persian letter
 * variants, digits, ZWNJ and case never matter. A keyword line of several
 * words is a phrase: it matches those words consecutively. docs/inbound.md
 * has the match modes with examples. */
#ifndef SMSYS_KEYWORD_H
#define SMSYS_KEYWORD_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "smsys/error.h"

enum kw_match { KW_ANY = 1, KW_ALL = 2, KW_FIRST = 3, KW_EXACT = 4 };

enum kw_action {
    KW_OPT_OUT = 1,
    KW_OPT_IN = 2,
    KW_REPLY = 3,
    KW_CASE = 4,
    KW_ROUTE = 5,
    KW_CALL = 6,
};

/* A rule as configured. Strings borrowed by keyword_rules_add (copied). */
struct kw_rule_def {
    const char *id;          /* smsys_keywordruleid, or "builtin:..." */
    const char *name;        /* for logs and the CLI */
    const char *keywords;    /* one word or phrase per line */
    int match;               /* enum kw_match */
    int action;              /* enum kw_action */
    int priority;            /* lower runs first */
    int stop;                /* stop after this rule fires */
    const char *account_id;  /* NULL/"" = every account */
    const char *template_id; /* action 3 */
    const char *queue_id;    /* actions 4, 5 */
    const char *action_name; /* action 6 */
};

struct kw_rules; /* opaque; keyword_rules_free */

/* One rule that fired. Pointers borrowed from the rule set / result. */
struct kw_hit {
    const struct kw_rule_def *rule;
    size_t nwords;
    const char **words; /* the normalised message words this rule matched */
};

/* The result of an evaluation; free with keyword_result_free. */
struct kw_result {
    size_t nhits;
    struct kw_hit *hits; /* in the order to run them */
    char *rest;          /* the original words not matched by any hit, joined by one
                            space (the case description of action 4) */
    size_t nwords;       /* words in the message */
    /* private */
    char *norm;
    const char **w;
    size_t *wl;
};

/* Creates an empty rule set. Returns 0 or -ENOMEM. */
int keyword_rules_new(struct kw_rules **out);
void keyword_rules_free(struct kw_rules *rs);

/* Adds a rule (copied). Returns 0, -EINVAL with err->detail (no keywords,
 * match or action out of range, action 3 without template, 4/5 queue
 * rules without queue where required, 6 without action name), SMSYS_EUTF8
 * or -ENOMEM. */
int keyword_rules_add(struct kw_rules *rs, const struct kw_rule_def *def, struct smsys_err *err);

/* Adds the built-in rules for every action (1 opt out, 2 opt in) that has
 * no configured rule yet: exact text STOP, UNSUBSCRIBE, لغو, لغو۱۱, انصراف
 * (opt out) and START, شروع (opt in), priority -1000, stop. Call after the
 * configured rules are added. Returns how many were added or < 0. */
int keyword_rules_add_defaults(struct kw_rules *rs);

/* Adds every row of a GET smsys_keywordrules "value" array. Rows that do
 * not validate are skipped and counted in *skipped (logged with the
 * reason). Returns 0 or -ENOMEM. */
int keyword_rules_from_json(struct kw_rules *rs, const cJSON *rows, unsigned *skipped);

size_t keyword_rules_count(const struct kw_rules *rs);

/* Evaluates text (UTF-8) for a message of account_id (NULL: only rules for
 * every account) with the account's separators (NULL/"": the default).
 * Rules run by priority (then name, then id); a rule fires by its match
 * mode; after a firing rule with stop, no more rules are looked at.
 * Returns 0 and fills *out (also when nothing fired), SMSYS_EUTF8 for
 * invalid text, -EINVAL for bad separators, -ENOMEM. */
int keyword_eval(const struct kw_rules *rs, const char *text, const char *separators,
                 const char *account_id, struct kw_result *out);
void keyword_result_free(struct kw_result *r);

/* Names for the CLI and logs: "opt out", "any word", ... ("?" if unknown). */
const char *keyword_action_name(int action);
const char *keyword_match_name(int match);

#endif
