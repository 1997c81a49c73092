/* smsysd.h - the components main.c registers with the service. Each
 * smsysd_add_* adds one component (in start order) and returns 0 or
 * -ENOMEM. The objects they create are reachable through struct smsysd so
 * later components (pollers, connectors) can use the pool. */
#ifndef SMSYSD_H
#define SMSYSD_H

#include "smsys/service.h"

struct pg_pool;
struct http_client;
struct dv_client;
struct queue;
struct ljob;
struct smsysd;

/* Called before each /metrics scrape to copy state a module keeps as plain
 * counters (pool stats, client counters) into the metrics registry. Must
 * not block. */
typedef void (*smsysd_scrape_cb)(struct smsysd *d, void *ud);

#define SMSYSD_MAX_SCRAPE 16

struct queue;
struct http_client;
struct connmgr;

/* Shared state of the process; owned by main.c, lives as long as the loop. */
struct smsysd {
    struct service *svc;
    struct pg_pool *pg; /* NULL until the pg component has started */
    /* Dynamics side (comp_dataverse.c; NULL until it has started) */
    struct http_client *dv_http;
    struct dv_client *dv;
    struct queue *dvq;   /* queue handle of the Dynamics jobs */
    struct ljob *dvjob;  /* the "dynamics" leader lock: accounts, pickup, write-back */
    int accounts_synced; /* the pickup waits for the first accounts sync */
    struct {
        smsysd_scrape_cb cb;
        void *ud;
    } scrape[SMSYSD_MAX_SCRAPE];
    size_t nscrape;
    /* Set by the connectors component (comp_connectors.c) while it runs. */
    struct queue *queue;
    struct http_client *http;
    struct connmgr *connmgr;
};

/* Registers a scrape hook; returns 0 or -ENOSPC. */
int smsysd_on_scrape(struct smsysd *d, smsysd_scrape_cb cb, void *ud);
/* Runs every scrape hook (comp_http does, per /metrics request). */
void smsysd_scrape(struct smsysd *d);

int smsysd_add_pg(struct smsysd *d);
int smsysd_add_http(struct smsysd *d);
int smsysd_add_dataverse(struct smsysd *d);
int smsysd_add_accounts(struct smsysd *d);
int smsysd_add_pickup(struct smsysd *d);
int smsysd_add_writeback(struct smsysd *d);
int smsysd_add_connectors(struct smsysd *d);
int smsysd_add_sender(struct smsysd *d);
int smsysd_add_tracker(struct smsysd *d);
int smsysd_add_inbound(struct smsysd *d);
int smsysd_add_templates(struct smsysd *d); /* comp_templates.c: validation on save */

#endif
