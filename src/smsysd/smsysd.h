/* smsysd.h - the components main.c registers with the service. Each
 * smsysd_add_* adds one component (in start order) and returns 0 or
 * -ENOMEM. The objects they create are reachable through struct smsysd so
 * later components (pollers, connectors) can use the pool. */
#ifndef SMSYSD_H
#define SMSYSD_H

#include "smsys/service.h"

struct pg_pool;
struct queue;
struct http_client;
struct connmgr;

/* Shared state of the process; owned by main.c, lives as long as the loop. */
struct smsysd {
    struct service *svc;
    struct pg_pool *pg; /* NULL until the pg component has started */
    /* Set by the connectors component (comp_connectors.c) while it runs. */
    struct queue *queue;
    struct http_client *http;
    struct connmgr *connmgr;
};

int smsysd_add_pg(struct smsysd *d);
int smsysd_add_http(struct smsysd *d);
int smsysd_add_connectors(struct smsysd *d);
int smsysd_add_sender(struct smsysd *d);
int smsysd_add_tracker(struct smsysd *d);

#endif
