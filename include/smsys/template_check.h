/* template_check.h - validation on save: templates created or changed in
 * Dynamics are checked against the server, and an invalid one gets a note
 * (annotation) saying which placeholder is wrong and where, so the author
 * sees it on the template's form before any SMS uses it (issue 8).
 *
 * One run (template_check_run) is one GET:
 *   smsys_smstemplates?$select=... with Prefer: odata.track-changes
 * the first time (every template), then the deltaLink it returned (only
 * the rows changed since: an empty page when nothing changed). Each
 * changed template is parsed and, when it parses, template_validate()d
 * against its table (probe queries, $top=1). An invalid one gets
 *   annotation: subject "smsys: template error",
 *               notetext "<line, column, byte>, <placeholder>: <why>"
 * unless the template already has a note with exactly that text (so a
 * restart, which checks everything again, does not repeat notes). When a
 * request fails the deltaLink is not advanced: the next run sees the same
 * changes again. If the server has no annotation table (404) the error is
 * logged as a warning and counted (notes_unsupported).
 *
 * One run at a time; the callback fires once, later. loop and dv are
 * borrowed; free only when no run is in flight. */
#ifndef SMSYS_TEMPLATE_CHECK_H
#define SMSYS_TEMPLATE_CHECK_H

#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"

struct dv_client;
struct metrics;
struct template_check;

#define TEMPLATE_CHECK_SUBJECT "smsys: template error"

struct template_check_opts {
    int metrics;              /* nonzero: smsys_template_check_* counters */
    struct metrics *registry; /* with metrics: NULL = the default registry */
};

struct template_check_result {
    unsigned changed;           /* template rows the run looked at */
    unsigned invalid;           /* of them, invalid */
    unsigned notes;             /* notes written */
    unsigned notes_kept;        /* invalid, but the same note was there already */
    unsigned notes_unsupported; /* notes not written: no annotation table */
    unsigned requests;          /* Web API requests of the run */
};

struct template_check_stats {
    uint64_t runs, changed, invalid, notes, notes_unsupported, requests;
};

typedef void (*template_check_done_cb)(int rc, const struct template_check_result *res,
                                       const struct smsys_err *err, void *ud);

int template_check_new(uv_loop_t *loop, struct dv_client *dv, const struct template_check_opts *o,
                       struct template_check **out);
void template_check_free(struct template_check *c);

/* One run as above. Returns 0 (cb later), -EBUSY, or a request error. rc
 * in cb is 0 or the first request error (the changes are seen again). */
int template_check_run(struct template_check *c, template_check_done_cb cb, void *ud);

const struct template_check_stats *template_check_stats(const struct template_check *c);

#endif
