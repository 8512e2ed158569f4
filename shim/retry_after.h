/* retry_after.h — SLUICE_RETRY_AFTER=auto: the Retry-After of the shed answer,
 * computed from the queue ahead and the recent rate at which slots free. */
#ifndef SLUICE_RETRY_AFTER_H
#define SLUICE_RETRY_AFTER_H

#include <stdint.h>
#include "common.h"

/* A slot went to a new connection (the program accepted one): the rate's input. */
void retry_after_slot_used(uint64_t now_ns) SLUICE_INTERNAL;
/* sluice's thread: `ahead` connections wait that will not be answered now;
 * recomputes the estimate (and the answer, with auto). Returns it in seconds. */
unsigned retry_after_update(uint64_t ahead, uint64_t now_ns) SLUICE_INTERNAL;
/* The estimate last computed (0: never). */
unsigned retry_after_estimate(void) SLUICE_INTERNAL;
/* Slots freed per second recently, in thousandths. */
uint64_t retry_after_rate_milli(void) SLUICE_INTERNAL;

#endif
