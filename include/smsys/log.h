/* log.h - one line per event, to stderr, as text or JSON lines.
 *
 *   log_info("pg connected", "host=%s backend_pid=%d", host, pid);
 *
 * The first argument is a short lower-case event saying what happened; the
 * rest is key=value pairs. Quote free text: `error="%s"` — use log_q() to
 * make a value safe for that (it escapes quotes, backslashes, newlines).
 * Never log a secret or a full message body at info level. */
#ifndef SMSYS_LOG_H
#define SMSYS_LOG_H

#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Global settings: the service has one log. Defaults: info, text, stderr. */
void log_setup(enum log_level level, enum log_format format, FILE *out);
int log_level_parse(const char *s, enum log_level *out);   /* 0 or -EINVAL */
int log_format_parse(const char *s, enum log_format *out); /* 0 or -EINVAL */
int log_enabled(enum log_level level);
/* Sets a component name added to every line as component=NAME (e.g. the
 * program name); NULL to clear. Borrowed: must outlive logging. */
void log_set_component(const char *name);

void log_write(enum log_level level, const char *event, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Escapes s for use inside "..." in a kv value; returns a pointer into one
 * of 8 rotating thread-local buffers of 512 bytes (longer text is cut and
 * marked "..."), so a few calls can share one log line. */
const char *log_q(const char *s);

#define log_error(ev, ...) log_write(LOG_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_write(LOG_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_write(LOG_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, ev, __VA_ARGS__);                                                 \
    } while (0)

#endif
