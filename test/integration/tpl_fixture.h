/* tpl_fixture.h - what the template integration tests share: dvemu as a
 * process, our Dataverse client on its own loop against it (world.h), and
 * the contact table the templates render for. One dvemu per test: setup
 * starts it, teardown stops it (exit 0 asserted) and frees the fixture.
 * Header-only; include after <cmocka.h>. */
#ifndef TPL_FIXTURE_H
#define TPL_FIXTURE_H

#include <stdlib.h>

#include "smsys/template.h"
#include "world.h"

struct fx {
    struct world_dv emu;
    struct world_dvc c; /* the client under test: c.loop, c.http, c.dv */
    char set[64], key[64];
    struct template_table tbl;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    world_dv_start(&fx->emu, NULL);
    world_dv_signin(&fx->emu);
    world_dvc_open(&fx->c, &fx->emu, NULL);
    assert_int_equal(
        template_table_for("contact", fx->set, sizeof(fx->set), fx->key, sizeof(fx->key), &fx->tbl),
        0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    world_dvc_close(&fx->c);
    world_dv_stop(&fx->emu);
    world_dv_free(&fx->emu);
    free(fx);
    world_cleanup();
    return 0;
}

/* dvemu's count of the requests it has served (this one included). */
static long emu_requests(struct fx *fx)
{
    cJSON *j = world_dv_stats(&fx->emu);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_true(cJSON_IsNumber(n));
    long v = (long)n->valuedouble;
    cJSON_Delete(j);
    return v;
}

#endif
