/* config_priv.h - shared by the config files. Not a public header.
 *
 *   config.c        the directive table, lookups, field accessors, free
 *   config_load.c   the INI parser, env:/file: values, checks across keys,
 *                   config_load / config_check
 *   config_types.c  value converters; storing a value by its type
 *   config_out.c    dumps and the key reference */
#ifndef SMSYS_CONFIG_PRIV_H
#define SMSYS_CONFIG_PRIV_H

#include "smsys/config.h"

/* Where one key's value came from; one per table row, owned by the config. */
struct config_origin {
    int line;  /* 0: the default */
    char *ref; /* "env:NAME" / "file:PATH" when indirect, else NULL */
};

/* Index of k in the table (k must point into it). */
size_t config_key_index(const struct config_key *k);

/* 1 when the table has a row in section. */
int config_section_known(const char *section);
/* The section of the first row named key (whatever its section), or NULL:
 * says where a misplaced key belongs. */
const char *config_key_section(const char *key);

/* Field accessors by table row. */
char **config_str_at(const struct smsys_config *cfg, const struct config_key *k);
long long *config_ll_at(const struct smsys_config *cfg, const struct config_key *k);
int *config_int_at(const struct smsys_config *cfg, const struct config_key *k);
struct config_window *config_win_at(const struct smsys_config *cfg, const struct config_key *k);

/* 1 for types stored as char *. */
int config_type_is_str(enum config_type t);

/* Value converters (config_types.c). Each returns 0, or -EINVAL with the
 * reason in msg (those that take one). */
int config_parse_bool(const char *s, int *out);
int config_parse_duration(const char *s, long long *out); /* milliseconds */
int config_check_url(const struct config_key *k, const char *s, char *msg, size_t mlen);
int config_check_listen(const char *s, char *msg, size_t mlen);
int config_parse_window(const char *s, struct config_window *w, char *msg, size_t mlen);
int config_check_timezone(const char *s, char *msg, size_t mlen);

/* Stores text (already resolved) into k's field. Returns 0 or -EINVAL with
 * the reason in msg, or -ENOMEM (config_types.c). */
int config_set_value(struct smsys_config *cfg, const struct config_key *k, const char *v, char *msg,
                     size_t mlen);

/* Appends s quoted for the file when it would otherwise be misread. */
int config_put_value(struct buf *out, const char *s);

#endif
