/* connector.c - the connector registry.
 *
 * Adding a provider: write connectors/<name>.c exporting conn_<name>_ops
 * and add one line to each list below. Nothing else in the core changes. */
#include "smsys/connector.h"

#include <stdlib.h>
#include <string.h>

/* X(name) per connector; one registry line each */
// clang-format off
#define CONNECTORS(X) \
    X(smpp)           \
    X(kavenegar)      \
    X(smsir)          \
    X(ghasedak)       \
    X(melipayamak)    \
    X(twilio)         \
    X(asanak)         \
    X(generic)
// clang-format on

#define DECLARE(n) extern const struct conn_ops conn_##n##_ops;
CONNECTORS(DECLARE)
#undef DECLARE

#define ENTRY(n) &conn_##n##_ops,
static const struct conn_ops *const registry[] = {CONNECTORS(ENTRY) NULL};
#undef ENTRY

const struct conn_ops *connector_find(const char *name)
{
    for (size_t i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const struct conn_ops *const *connector_all(void)
{
    return registry;
}

const char *conn_status_name(enum conn_status st)
{
    static const char *const names[] = {"unknown",     "queued", "sent",        "delivered",
                                        "undelivered", "failed", "blacklisted", "canceled"};
    if ((unsigned)st >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[st];
}

static void free_event_strings(struct conn_event *e)
{
    if (e->kind == CONN_EV_STATE) {
        free((char *)e->u.state.provider_id);
        free((char *)e->u.state.our_id);
        free((char *)e->u.state.detail);
    } else if (e->kind == CONN_EV_MO) {
        free((char *)e->u.mo.provider_id);
        free((char *)e->u.mo.from);
        free((char *)e->u.mo.to);
        free((char *)e->u.mo.text);
    }
}

void conn_events_free(struct conn_event *ev, size_t n)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free_event_strings(&ev[i]);
    free(ev);
}
