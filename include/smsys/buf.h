/* buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Embedded by value; buf_free() releases the storage. Appends return 0 or
 * -ENOMEM (the buffer is left as it was), or -E2BIG past buf->max when a
 * cap is set, so response-size limits need no extra bookkeeping. */
#ifndef SMSYS_BUF_H
#define SMSYS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append; then len bytes + NUL */
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited */
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s with percent-encoding of everything but RFC 3986 unreserved. */
int buf_put_urlenc(struct buf *b, const char *s);
/* Appends s escaped for a JSON string body (no surrounding quotes). */
int buf_put_jsonstr(struct buf *b, const char *s);
void buf_reset(struct buf *b); /* len = 0, keeps storage */
void buf_free(struct buf *b);
/* Hands the storage to the caller (free() it) and resets b. Never NULL on
 * success: an empty buffer yields "". Returns NULL on -ENOMEM. */
char *buf_steal(struct buf *b);

#endif
