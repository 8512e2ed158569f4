/* queue_stats.h — the waiting queue's figures: length, oldest wait, answered
 * totals, a histogram of the waits of served connections, the Retry-After
 * estimate, and the kernel's listen overflows (at start and now). */
#ifndef SLUICE_QUEUE_STATS_H
#define SLUICE_QUEUE_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* Registers the refresh and the histogram's rendering, and reads the
 * kernel's overflow counters once (with the queue on). */
void queue_stats_init(bool queue_enabled) SLUICE_INTERNAL;
/* The program accepted a connection that waited wait_ns in the queue. */
void queue_stats_served(uint64_t wait_ns, uint64_t now_ns) SLUICE_INTERNAL;
/* sluice answered a waiting connection: it waited too long (late) or the
 * queue was full. */
void queue_stats_answered(bool late) SLUICE_INTERNAL;
/* sluice's thread: `waiting` connections wait now, the oldest for oldest_ns,
 * `ahead` of them will be served (not answered); refreshes the gauges and the
 * Retry-After estimate. */
void queue_stats_now(uint64_t waiting, uint64_t ahead, uint64_t oldest_ns, uint64_t now_ns)
    SLUICE_INTERNAL;

#endif
