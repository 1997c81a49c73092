/* msgid_int.h - the one implementation of the provider message-id rule
 * (docs/smpp.md, "Message-id matching"). smpp_msgid_canon() and
 * queue_msgid_canon() are thin wrappers over it, so the SMPP connector's
 * in-memory matching and the queue's SQL-side matching can never drift
 * apart. Not a public header. */
#ifndef SMSYS_MSGID_INT_H
#define SMSYS_MSGID_INT_H

#include <stddef.h>

/* Longest output: "n:" + 121 decimal digits (100 hex digits) + NUL. */
#define MSGID_FORM_MIN 124

/* Writes the canonical forms of id into primary and alt (each cap bytes,
 * cap >= MSGID_FORM_MIN for max_len 100; SMPP_MSGID_CANON_LEN suffices
 * for max_len 65). tagged != 0 prefixes numbers with "n:" and strings with
 * "s:"; tagged == 0 writes the bare value (the queue stores that form).
 * alt is "" when the id has one reading. Returns 0, or -EINVAL for a
 * NULL, blank or (trimmed) longer-than-max_len id, with both forms "". */
int msgid_canon_forms(const char *id, size_t max_len, int tagged, char *primary, char *alt,
                      size_t cap);

#endif
