/* control.c - smscsim commands: live config, MO injection, --script.
 *
 * The HTTP control API (http.c) and --script files run the same
 * commands; a script line is "MS command" with command one of:
 *   stats | flush | drop
 *   mo from=A to=B [parts=N] [order=2,1,3] text=REST OF LINE
 *   config key=value ...   (the long flag names without "--") */
#include "sim.h"

#include "smsys/error.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sim_parse_id_form(const char *s, int *out)
{
    static const char *names[] = {"dec", "hex", "HEX", "dec0", "hex0", "HEX0", "uuid"};
    for (int i = 0; i < (int)ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -EINVAL;
}

/* "DELIVRD:90,UNDELIV:10" */
int sim_parse_outcomes(struct sim_cfg *cfg, const char *spec)
{
    static const struct {
        const char *stat;
        int state;
    } known[] = {{"DELIVRD", 2}, {"EXPIRED", 3}, {"DELETED", 4}, {"UNDELIV", 5},
                 {"ACCEPTD", 6}, {"UNKNOWN", 7}, {"REJECTD", 8}, {"ENROUTE", 1}};
    struct outcome oc[MAX_OUTCOMES];
    int n = 0;
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (colon == NULL || n == MAX_OUTCOMES)
            return -EINVAL;
        *colon = '\0';
        long long w;
        if (util_parse_int(colon + 1, 0, 1000000, &w))
            return -EINVAL;
        int state = -1;
        for (size_t k = 0; k < ARRAY_LEN(known); k++)
            if (strcmp(tok, known[k].stat) == 0)
                state = known[k].state;
        if (state < 0)
            return -EINVAL;
        snprintf(oc[n].stat, sizeof(oc[n].stat), "%s", tok);
        oc[n].state = state;
        oc[n].weight = (unsigned)w;
        n++;
    }
    if (n == 0)
        return -EINVAL;
    memcpy(cfg->outcomes, oc, sizeof(oc));
    cfg->n_outcomes = n;
    return 0;
}

/* "*0000=0x0B" or "*0000=11": glob on destination_addr = command_status. */
int sim_parse_dest_err(struct sim_cfg *cfg, const char *spec)
{
    const char *eq = strrchr(spec, '=');
    if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(cfg->dest_err[0].pattern) ||
        cfg->n_dest_err == MAX_DEST_ERR)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long st = strtoul(eq + 1, &end, 0);
    if (errno || end == eq + 1 || *end || st == 0 || st > 0xFFFFFFFFul)
        return -EINVAL;
    struct dest_err *d = &cfg->dest_err[cfg->n_dest_err++];
    memcpy(d->pattern, spec, (size_t)(eq - spec));
    d->pattern[eq - spec] = '\0';
    d->status = (uint32_t)st;
    return 0;
}

static int parse_uint(const char *v, unsigned *out)
{
    long long x;
    int rc = util_parse_int(v, 0, 0x7FFFFFFF, &x);
    if (rc == 0)
        *out = (unsigned)x;
    return rc;
}

/* One key=value of `config`. Returns 0 or -EINVAL. */
int sim_config_set(struct sim *sim, const char *k, const char *v)
{
    struct sim_cfg *c = &sim->cfg;
    unsigned u = 0;
    if (strcmp(k, "throttle-every") == 0)
        return parse_uint(v, &c->throttle_every);
    if (strcmp(k, "throttle-rate") == 0)
        return parse_uint(v, &c->throttle_rate);
    if (strcmp(k, "receipt-delay-ms") == 0)
        return parse_uint(v, &c->receipt_delay_ms);
    if (strcmp(k, "drop-after") == 0) {
        int rc = parse_uint(v, &u);
        /* Counted from now on, like the flag counts from the start. */
        if (rc == 0)
            c->drop_after = u ? (unsigned)sim->st.submit_sm + u : 0;
        return rc;
    }
    if (strcmp(k, "redeliver-ms") == 0)
        return parse_uint(v, &c->redeliver_ms);
    if (strcmp(k, "ignore-enquire") == 0) {
        int rc = parse_uint(v, &u);
        c->ignore_enquire = u != 0;
        return rc;
    }
    if (strcmp(k, "receipt-outcomes") == 0)
        return sim_parse_outcomes(c, v);
    if (strcmp(k, "dest-error") == 0)
        return sim_parse_dest_err(c, v);
    if (strcmp(k, "dest-error-clear") == 0) {
        c->n_dest_err = 0;
        return 0;
    }
    if (strcmp(k, "id-form") == 0)
        return sim_parse_id_form(v, &c->id_form);
    if (strcmp(k, "receipt-id-form") == 0)
        return sim_parse_id_form(v, &c->receipt_id_form);
    if (strcmp(k, "receipts") == 0) {
        c->receipt_tlv = strcmp(v, "tlv") == 0 || strcmp(v, "both") == 0;
        c->receipt_text = strcmp(v, "text") == 0 || strcmp(v, "both") == 0;
        return c->receipt_tlv || c->receipt_text || strcmp(v, "none") == 0 ? 0 : -EINVAL;
    }
    return -EINVAL;
}

static int reply_err(struct buf *out, const char *what)
{
    buf_puts(out, "{\"ok\":false,\"error\":\"");
    buf_put_jsonstr(out, what);
    buf_puts(out, "\"}");
    return -EINVAL;
}

int sim_command(struct sim *sim, const char *line, struct buf *out)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", line);
    size_t n = strlen(tmp);
    while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r' || tmp[n - 1] == ' '))
        tmp[--n] = '\0';
    char *p = tmp;
    while (*p == ' ')
        p++;
    char *cmd = p;
    while (*p && *p != ' ')
        p++;
    if (*p)
        *p++ = '\0';
    if (strcmp(cmd, "stats") == 0) {
        simlog_stats(sim, out);
        return 0;
    }
    if (strcmp(cmd, "flush") == 0) {
        simlog_flush(sim);
        buf_puts(out, "{\"ok\":true}");
        return 0;
    }
    if (strcmp(cmd, "drop") == 0) {
        simlog_event(sim, "drop-all", NULL);
        sim_drop_all(sim);
        buf_puts(out, "{\"ok\":true}");
        return 0;
    }
    if (strcmp(cmd, "config") != 0 && strcmp(cmd, "mo") != 0)
        return reply_err(out, "unknown command");
    const char *from = NULL, *to = NULL, *text = NULL;
    unsigned parts = 1, order[255];
    size_t norder = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        char *k = p, *eq = strchr(p, '=');
        if (eq == NULL)
            return reply_err(out, "expected key=value");
        *eq = '\0';
        char *v = eq + 1;
        if (strcmp(cmd, "mo") == 0 && strcmp(k, "text") == 0) {
            text = v; /* the rest of the line */
            break;
        }
        p = v;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = '\0';
        if (strcmp(cmd, "config") == 0) {
            if (sim_config_set(sim, k, v))
                return reply_err(out, k);
        } else if (strcmp(k, "from") == 0) {
            from = v;
        } else if (strcmp(k, "to") == 0) {
            to = v;
        } else if (strcmp(k, "parts") == 0) {
            if (parse_uint(v, &parts) || parts == 0 || parts > 255)
                return reply_err(out, "parts");
        } else if (strcmp(k, "order") == 0) {
            char *save = NULL;
            for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (norder == ARRAY_LEN(order) || parse_uint(t, &order[norder]))
                    return reply_err(out, "order");
                norder++;
            }
        } else {
            return reply_err(out, k);
        }
    }
    if (strcmp(cmd, "mo") == 0) {
        if (!from || !to || !text)
            return reply_err(out, "mo needs from, to and text");
        if (norder && norder != parts)
            return reply_err(out, "order must list every part");
        int rc = sim_inject_mo(sim, from, to, text, parts, norder ? order : NULL, norder);
        if (rc)
            return reply_err(out, smsys_strerror(rc));
    }
    buf_puts(out, "{\"ok\":true}");
    return 0;
}

/* ---- --script FILE: "MS command" lines, run MS after start ----------- */

struct script_line {
    uint64_t at;
    char *cmd;
};

static struct script_line *script;
static size_t script_n, script_i;
static uv_timer_t script_timer;
static int script_running;

void sim_script_stop(void)
{
    if (script_running)
        uv_close((uv_handle_t *)&script_timer, NULL);
    script_running = 0;
    for (; script_i < script_n; script_i++)
        free(script[script_i].cmd);
    free(script);
    script = NULL;
    script_n = 0;
}

static void script_timer_cb(uv_timer_t *t)
{
    struct sim *sim = t->data;
    uint64_t now = uv_now(sim->loop);
    while (script_i < script_n && script[script_i].at <= now) {
        struct buf out = BUF_INIT;
        sim_command(sim, script[script_i].cmd, &out);
        simlog_event(sim, "script", NULL);
        buf_free(&out);
        free(script[script_i].cmd);
        script_i++;
    }
    if (script_i < script_n)
        uv_timer_start(t, script_timer_cb, script[script_i].at - now, 0);
    else
        sim_script_stop();
}

int sim_script_start(struct sim *sim)
{
    FILE *f = fopen(sim->cfg.script, "r");
    if (f == NULL)
        return -errno;
    char line[4096];
    uint64_t start = uv_now(sim->loop);
    while (fgets(line, sizeof(line), f)) {
        char *sp = strchr(line, ' ');
        if (line[0] == '#' || sp == NULL)
            continue;
        *sp = '\0';
        long long ms;
        if (util_parse_int(line, 0, 86400000, &ms)) {
            fclose(f);
            return -EINVAL;
        }
        struct script_line *ns = realloc(script, (script_n + 1) * sizeof(*ns));
        if (ns == NULL) {
            fclose(f);
            return -ENOMEM;
        }
        script = ns;
        script[script_n].at = start + (uint64_t)ms;
        script[script_n].cmd = strdup(sp + 1);
        script_n++;
    }
    fclose(f);
    uv_timer_init(sim->loop, &script_timer);
    script_running = 1;
    script_timer.data = sim;
    uv_timer_start(&script_timer, script_timer_cb, 0, 0);
    return 0;
}
