/* odata.h - OData v4 helpers for the Dataverse Web API: query building with
 * correct escaping, entity ids, annotations, and $batch bodies (building
 * requests, parsing multipart/mixed responses).
 *
 * No I/O here: everything is pure and synchronous, so it is unit-tested and
 * fuzzed directly. Appends to a struct buf return 0 or what buf.h returns
 * (-ENOMEM, -E2BIG); validation failures return -EINVAL and leave the
 * buffer as it was.
 *
 * Escaping has two layers and they must not be mixed up:
 *   1. OData literal syntax inside an expression: a string literal is
 *      'text' with every ' doubled (odata_lit_string); GUIDs and
 *      date-times are unquoted (odata_lit_guid, odata_lit_datetime).
 *   2. URL syntax: the whole option value is percent-encoded once when it
 *      is put into the query (odata_query_add), spaces as %20, UTF-8 bytes
 *      as %XX. So build $filter text raw with (1), then add it with (2). */
#ifndef SMSYS_ODATA_H
#define SMSYS_ODATA_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/http_header.h"

/* ---- literals and query strings ---- */

/* Appends 'text' with each ' doubled: O'Brien -> 'O''Brien'. s must be
 * valid UTF-8 without NUL (-EINVAL otherwise). Not URL-encoded (layer 1). */
int odata_lit_string(struct buf *b, const char *s);

/* Appends a GUID literal in lower case. Accepts 8-4-4-4-12 hex, optionally
 * in braces; anything else is -EINVAL (so user text can't inject syntax). */
int odata_lit_guid(struct buf *b, const char *guid);

/* Appends an ISO-8601 UTC date-time literal, 2026-11-28T07:50:44Z, for
 * unix_s seconds since the epoch (-EINVAL outside years 1..9999). */
int odata_lit_datetime(struct buf *b, int64_t unix_s);

/* Appends "?name=value" (or "&name=value" when b already holds a '?').
 * name is copied as is ("$filter", "$select", "fetchXml"); value is
 * percent-encoded (everything but RFC 3986 unreserved, space -> %20).
 * Empty or NULL value: nothing appended, returns 0. */
int odata_query_add(struct buf *b, const char *name, const char *value);

/* Appends a comma-separated column list for $select: "a,b,c". Every name
 * must be an identifier ([A-Za-z0-9_]+, -EINVAL otherwise). A ',' is put
 * first when b is not empty, so calls can be chained. */
int odata_select(struct buf *b, const char *const *cols, size_t n);

/* Appends one $expand item: nav or nav(opts) where opts is
 * "$select=<select>" and/or "$filter=<filter>" joined by ';'. select and
 * filter may be NULL. A ',' is put first when b is not empty. nav must be
 * an identifier. filter is raw OData (layer 1); encode the whole $expand
 * with odata_query_add. */
int odata_expand(struct buf *b, const char *nav, const char *select, const char *filter);

/* ---- response helpers ---- */

/* Extracts the GUID at the end of an OData-EntityId header value,
 * "https://org/api/data/v9.2/contacts(0f3c...)", into out (lower case,
 * 37 bytes). Returns 0 or -EINVAL (no GUID key, e.g. alternate keys). */
int odata_entity_id(const char *entity_id, char out[37]);

/* The annotation `prop@term` of row as a string, or NULL. Borrowed from
 * row. odata_formatted(row, "statecode") reads
 * "statecode@OData.Community.Display.V1.FormattedValue". */
const char *odata_annotation(const cJSON *row, const char *prop, const char *term);
const char *odata_formatted(const cJSON *row, const char *prop);

/* The table a lookup points at: for column "regardingobjectid" reads
 * "_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname".
 * lookup may also be given as "_x_value". NULL when absent. */
const char *odata_lookup_table(const cJSON *row, const char *lookup);

/* The "{"error":{"code","message"}}" of a Dataverse error body, copied into
 * code/msg (cut to fit; "" when absent). Also understands OAuth's
 * {"error":"x","error_description":"y"}. Returns 1 when found, else 0. */
int odata_error_parse(const char *body, size_t len, char *code, size_t code_len, char *msg,
                      size_t msg_len);

/* ---- $batch ---- */

/* One request of a $batch body. Borrowed. */
struct odata_batch_req {
    const char *method;     /* "PATCH", "POST", "DELETE", "GET" */
    const char *url;        /* absolute, or relative to the service root */
    const char *body;       /* JSON or NULL */
    const char *if_match;   /* NULL: none */
    const char *content_id; /* NULL: none. Inside a changeset, use 1..n */
};

/* Appends a whole $batch body to b: when changeset is not NULL, all n
 * requests go into one changeset with that boundary (atomic), else each is
 * a top-level part. boundary/changeset are the MIME boundaries (caller
 * picks unique ones, e.g. "batch_<uuid>"). CRLF line ends throughout. */
int odata_batch_build(struct buf *b, const char *boundary, const char *changeset,
                      const struct odata_batch_req *reqs, size_t n);

/* One response part of a parsed $batch response. */
struct odata_part {
    int status;                  /* inner HTTP status, 100..599 */
    char *content_id;            /* MIME Content-ID of the part; NULL when none */
    int changeset;               /* 0-based changeset index, -1 top level */
    struct http_header *headers; /* inner response headers */
    size_t n_headers;
    char *body; /* NUL-terminated, body_len bytes; "" when empty */
    size_t body_len;
    char *store_; /* private: storage of the header strings */
};

/* Parsed response: parts in order. Owns everything (odata_batch_free). */
struct odata_batch {
    struct odata_part *parts;
    size_t n;
    size_t cap_; /* private */
};

/* Parses a multipart/mixed $batch response. content_type is the response
 * Content-Type (the boundary comes from it). Tolerates LF or CRLF line
 * ends, quoted boundaries, preamble/epilogue and nested changesets (one
 * level). Rejects (SMSYS_EPROTO with err->detail) a missing boundary, a
 * missing closing delimiter, a part without a valid HTTP status line,
 * nesting deeper than a changeset, or more than 10 000 parts. On success
 * *out owns the parts; on failure *out is empty. err may be NULL. */
int odata_batch_parse(const char *content_type, const char *body, size_t len,
                      struct odata_batch *out, struct smsys_err *err);

void odata_batch_free(struct odata_batch *b);

/* First inner header of part p named name (case-insensitive), or NULL. */
const char *odata_part_header(const struct odata_part *p, const char *name);

#endif
