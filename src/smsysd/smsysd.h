/* smsysd.h - the components main.c registers with the service. Each
 * smsysd_add_* adds one component (in start order) and returns 0 or
 * -ENOMEM. The objects they create are reachable through struct smsysd so
 * later components (pollers, connectors) can use the pool. */
#ifndef SMSYSD_H
#define SMSYSD_H

#include "smsys/service.h"

struct pg_pool;

/* Shared state of the process; owned by main.c, lives as long as the loop. */
struct smsysd {
    struct service *svc;
    struct pg_pool *pg; /* NULL until the pg component has started */
};

int smsysd_add_pg(struct smsysd *d);
int smsysd_add_http(struct smsysd *d);

#endif
