/* log.c - text and JSON-lines logging.
 *
 * Text lines are "TIME LEVEL event k=v ...". JSON lines re-read the k=v
 * string the caller formatted, so callers have one API for both formats. */
#include "smsys/log.h"

#include "smsys/buf.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

static enum log_level g_level = LOG_INFO;
static enum log_format g_format = LOG_TEXT;
static FILE *g_out;
static const char *g_component;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, enum log_format format, FILE *out)
{
    g_level = level;
    g_format = format;
    g_out = out;
}

void log_set_component(const char *name)
{
    g_component = name;
}

int log_enabled(enum log_level level)
{
    return level <= g_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcasecmp(s, "text") == 0)
        *out = LOG_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

const char *log_q(const char *s)
{
    static _Thread_local char ring[8][512];
    static _Thread_local unsigned next;
    char *o = ring[next++ % 8];
    size_t n = 0, cap = sizeof(ring[0]);
    if (s == NULL)
        s = "";
    for (; *s; s++) {
        const char *rep = NULL;
        char one[2] = {*s, 0};
        switch (*s) {
        case '"':
            rep = "\\\"";
            break;
        case '\\':
            rep = "\\\\";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\t':
            rep = "\\t";
            break;
        default:
            rep = (unsigned char)*s < 0x20 ? "?" : one;
        }
        size_t l = strlen(rep);
        if (n + l + 4 >= cap) {
            memcpy(o + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(o + n, rep, l);
        n += l;
    }
    o[n] = '\0';
    return o;
}

/* Converts "k=v k2=\"x y\"" into JSON members appended to b. Unparsable
 * text is kept whole under "msg" so nothing the caller wrote is dropped. */
static void kv_to_json(struct buf *b, const char *kv)
{
    const char *p = kv;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        if (*p != '=' || p == k) {
            buf_puts(b, ",\"msg\":\"");
            buf_put_jsonstr(b, k);
            buf_putc(b, '"');
            return;
        }
        buf_puts(b, ",\"");
        buf_append(b, k, (size_t)(p - k));
        buf_puts(b, "\":\"");
        p++;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    /* The text form's escapes are JSON's escapes. */
                    buf_append(b, p, 2);
                    p += 2;
                    continue;
                }
                char c[2] = {*p++, 0};
                buf_put_jsonstr(b, c);
            }
            if (*p == '"')
                p++;
        } else {
            const char *v = p;
            while (*p && *p != ' ')
                p++;
            char tmp[256];
            size_t l = (size_t)(p - v) < sizeof(tmp) - 1 ? (size_t)(p - v) : sizeof(tmp) - 1;
            memcpy(tmp, v, l);
            tmp[l] = '\0';
            buf_put_jsonstr(b, tmp);
        }
        buf_putc(b, '"');
    }
}

void log_write(enum log_level level, const char *event, const char *kvfmt, ...)
{
    if (level > g_level)
        return;
    FILE *out = g_out ? g_out : stderr;
    char ts[32];
    util_iso8601(util_wall_us(), ts, sizeof(ts));

    struct buf kv = BUF_INIT;
    va_list ap;
    va_start(ap, kvfmt);
    buf_vprintf(&kv, kvfmt, ap);
    va_end(ap);

    struct buf line = BUF_INIT;
    if (g_format == LOG_JSON) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts, level_names[level]);
        buf_put_jsonstr(&line, event);
        buf_putc(&line, '"');
        if (g_component) {
            buf_puts(&line, ",\"component\":\"");
            buf_put_jsonstr(&line, g_component);
            buf_putc(&line, '"');
        }
        if (kv.len)
            kv_to_json(&line, kv.data);
        buf_puts(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s %s", ts, level_names[level], event);
        if (g_component)
            buf_printf(&line, " component=%s", g_component);
        if (kv.len)
            buf_printf(&line, " %s", kv.data);
        buf_putc(&line, '\n');
    }
    if (line.data)
        fwrite(line.data, 1, line.len, out);
    fflush(out);
    buf_free(&kv);
    buf_free(&line);
}
