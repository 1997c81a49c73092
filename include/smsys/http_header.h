/* http_header.h - one HTTP header, shared by the client and the server. */
#ifndef SMSYS_HTTP_HEADER_H
#define SMSYS_HTTP_HEADER_H

/* name and value point into storage owned by whoever handed the header
 * out (a response or a request); value has no surrounding whitespace. */
struct http_header {
    const char *name;
    const char *value;
};

#endif
