/* config.c - the simulator's settings: defaults, the JSON accepted by
 * --config and POST /_sim/config (validated whole, then applied), and the
 * accounts' lines. */
#include "provsim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sim_cfg_defaults(struct sim_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->receipt_delay_ms = 2000;
    c->pct_delivered = 90;
    c->pct_undelivered = 10;
    c->drop_hold_ms = 30000;
    c->price = 1;
}

double sim_default_balance(enum sim_prov p)
{
    return p == PROV_TWILIO ? 1000 : 1000000;
}

void sim_lines_free(struct sim_account *a)
{
    for (size_t i = 0; i < a->nlines; i++)
        free(a->lines[i]);
    free(a->lines);
    a->lines = NULL;
    a->nlines = 0;
}

int sim_lines_set(struct sim_account *a, const char *const *v, size_t n)
{
    char **nl = calloc(n ? n : 1, sizeof(char *));
    if (!nl)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        nl[i] = strdup(v[i]);
        if (!nl[i]) {
            while (i--)
                free(nl[i]);
            free(nl);
            return -ENOMEM;
        }
    }
    sim_lines_free(a);
    a->lines = nl;
    a->nlines = n;
    return 0;
}

static int cfg_num(const cJSON *v, double lo, double hi, double *out)
{
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
    } else if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
    } else {
        return -EINVAL;
    }
    return (*out >= lo && *out <= hi) ? 0 : -EINVAL;
}

static int cfg_url(const cJSON *v, char *dst, size_t len)
{
    if (cJSON_IsNull(v)) {
        dst[0] = '\0';
        return 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
        return -EINVAL;
    if (v->valuestring[0] && !hooks_url_is_loopback(v->valuestring))
        return -EPERM; /* the simulator only ever calls loopback */
    snprintf(dst, len, "%s", v->valuestring);
    return 0;
}

/* What one object asks of one account; lines/balance are applied by the
 * caller once the whole request has validated. */
struct cfg_extra {
    int bal_set;
    double balance;
    const cJSON *lines;
};

static int cfg_apply_obj(struct sim_cfg *c, struct cfg_extra *x, const cJSON *obj, int top,
                         char *err, size_t errlen)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        const char *k = it->string;
        double d = 0;
        int rc = 0;
        if (top && sim_prov_parse(k) >= 0)
            continue; /* provider section, handled by the caller */
        if (strcmp(k, "receipt_delay_ms") == 0) {
            rc = cfg_num(it, 0, 86400000, &d);
            c->receipt_delay_ms = (long long)d;
        } else if (strcmp(k, "outcome") == 0) {
            const cJSON *dl = json_get(it, "delivered"), *ud = json_get(it, "undelivered");
            double a = 0, b = 0;
            if (!cJSON_IsObject(it) || (dl && cfg_num(dl, 0, 1e6, &a)) ||
                (ud && cfg_num(ud, 0, 1e6, &b)) || (!dl && !ud)) {
                rc = -EINVAL;
            } else {
                c->pct_delivered = (int)a;
                c->pct_undelivered = (int)b;
            }
        } else if (strcmp(k, "rate_limit_every") == 0) {
            rc = cfg_num(it, 0, 1e12, &d);
            c->rate_every = (long long)d;
        } else if (strcmp(k, "rate_limit_rps") == 0) {
            rc = cfg_num(it, 0, 1e9, &d);
            c->rate_rps = d;
        } else if (strcmp(k, "busy") == 0) {
            rc = cfg_num(it, 0, 1, &d);
            c->busy = d != 0;
        } else if (strcmp(k, "busy_every") == 0) {
            rc = cfg_num(it, 0, 1e12, &d);
            c->busy_every = (long long)d;
        } else if (strcmp(k, "no_credit") == 0) {
            rc = cfg_num(it, 0, 1, &d);
            c->no_credit = d != 0;
        } else if (strcmp(k, "bad_numbers") == 0) {
            if (cJSON_IsNull(it))
                c->bad_pattern[0] = '\0';
            else if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof(c->bad_pattern))
                rc = -EINVAL;
            else
                snprintf(c->bad_pattern, sizeof(c->bad_pattern), "%s", it->valuestring);
        } else if (strcmp(k, "blacklist") == 0) {
            if (cJSON_IsNull(it))
                c->block_pattern[0] = '\0';
            else if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof(c->block_pattern))
                rc = -EINVAL;
            else
                snprintf(c->block_pattern, sizeof(c->block_pattern), "%s", it->valuestring);
        } else if (strcmp(k, "latency_ms") == 0) {
            rc = cfg_num(it, 0, 600000, &d);
            c->latency_ms = (long long)d;
        } else if (strcmp(k, "fail_rate") == 0) {
            rc = cfg_num(it, 0, 1, &d);
            c->fail_rate = d;
        } else if (strcmp(k, "drop_rate") == 0) {
            rc = cfg_num(it, 0, 1, &d);
            c->drop_rate = d;
        } else if (strcmp(k, "drop_hold_ms") == 0) {
            rc = cfg_num(it, 0, 600000, &d);
            c->drop_hold_ms = (long long)d;
        } else if (strcmp(k, "price") == 0) {
            rc = cfg_num(it, 0, 1e12, &d);
            c->price = d;
        } else if (strcmp(k, "callback_url") == 0) {
            rc = cfg_url(it, c->callback_url, sizeof(c->callback_url));
        } else if (strcmp(k, "inbound_url") == 0) {
            rc = cfg_url(it, c->inbound_url, sizeof(c->inbound_url));
        } else if (strcmp(k, "balance") == 0) {
            rc = cfg_num(it, -1e15, 1e15, &d);
            x->bal_set = 1;
            x->balance = d;
        } else if (strcmp(k, "lines") == 0) {
            const cJSON *l;
            if (!cJSON_IsArray(it))
                rc = -EINVAL;
            cJSON_ArrayForEach(l, it) if (!cJSON_IsString(l)) rc = -EINVAL;
            x->lines = it;
        } else {
            snprintf(err, errlen, "unknown key \"%s\"", k);
            return -EINVAL;
        }
        if (rc) {
            snprintf(err, errlen, "bad value for \"%s\"%s", k,
                     rc == -EPERM ? " (only 127.0.0.1 / ::1 URLs)" : "");
            return -EINVAL;
        }
    }
    return 0;
}

int sim_config_apply(struct sim *sim, const cJSON *cfg, char *err, size_t errlen)
{
    struct sim_cfg next[PROV_COUNT];
    struct cfg_extra ex[PROV_COUNT];
    if (!cJSON_IsObject(cfg)) {
        snprintf(err, errlen, "config must be a JSON object");
        return -EINVAL;
    }
    memset(ex, 0, sizeof(ex));
    for (int p = 0; p < PROV_COUNT; p++) {
        next[p] = sim->acct[p].cfg;
        if (cfg_apply_obj(&next[p], &ex[p], cfg, 1, err, errlen))
            return -EINVAL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, cfg)
    {
        int p = sim_prov_parse(it->string);
        if (p < 0)
            continue;
        if (!cJSON_IsObject(it)) {
            snprintf(err, errlen, "\"%s\" must be an object", it->string);
            return -EINVAL;
        }
        if (cfg_apply_obj(&next[p], &ex[p], it, 0, err, errlen))
            return -EINVAL;
    }
    for (int p = 0; p < PROV_COUNT; p++) {
        struct sim_account *a = &sim->acct[p];
        a->cfg = next[p];
        if (ex[p].bal_set)
            a->balance = ex[p].balance;
        if (ex[p].lines) {
            size_t n = (size_t)cJSON_GetArraySize(ex[p].lines), i = 0;
            const char **v = calloc(n ? n : 1, sizeof(char *));
            if (!v) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            const cJSON *l;
            cJSON_ArrayForEach(l, ex[p].lines) v[i++] = l->valuestring;
            int rc = sim_lines_set(a, v, n);
            free(v);
            if (rc) {
                snprintf(err, errlen, "out of memory");
                return rc;
            }
        }
    }
    return 0;
}
