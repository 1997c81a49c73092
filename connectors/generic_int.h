/* generic_int.h - what generic.c (requests, replies) and generic_conf.c
 * (settings) share. Internal to the generic connector. */
#ifndef SMSYS_GENERIC_INT_H
#define SMSYS_GENERIC_INT_H

#include <regex.h>
#include <cjson/cJSON.h>

#include "smsys/conn_http.h"

/* Where a value comes from: a JSON pointer into the reply, or the first
 * group of a regex over the raw body (the whole match without a group). */
struct g_ex {
    char *pointer;
    regex_t re;
    int has_re;
};

struct g_op {
    int present;
    char *method;
    char *url;
    char *content_type;
    char *body;
    char *headers[3];
    struct g_ex ok; /* success marker; absent: any 2xx is success */
    char *ok_value; /* NULL: true/1/"ok"-like truthiness */
    struct g_ex code;
    struct g_ex message;
    struct g_ex value; /* id (send), status, balance, items (inbox) */
    /* inbox: pointers inside each item */
    char *from_pointer, *to_pointer, *text_pointer, *mid_pointer;
    cJSON *status_map;
    char *unit;
};

struct g_priv {
    struct g_op send, status, balance, inbox;
    enum phone_fmt fmt;
    long long max_batch;
    char *sep;
    cJSON *error_map;
    int error_default;
};

enum g_esc { ESC_RAW, ESC_URL, ESC_JSON, ESC_FORM };

/* Reads and checks every generic setting into c->priv (freed by
 * c->priv_free). Returns 0 or SMSYS_ECONFIG naming the key. */
int conn_generic_settings(struct conn *c, const cJSON *s, struct smsys_err *err);

/* "delivered" -> CONN_ST_DELIVERED, ...; CONN_ST_UNKNOWN otherwise. */
enum conn_status conn_generic_status_name(const char *s);

#endif
