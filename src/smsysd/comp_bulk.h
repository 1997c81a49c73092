/* comp_bulk.h - the bulk SMS engine as a smsysd component (comp_bulk.c). */
#ifndef SMSYSD_COMP_BULK_H
#define SMSYSD_COMP_BULK_H

#include "smsysd.h"

/* Adds the "bulk" component; returns 0 or -ENOMEM. */
int smsysd_add_bulk(struct smsysd *d);

#endif
