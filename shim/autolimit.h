/* autolimit.h — SLUICE_CONN_MAX=auto: sluice's thread samples memory, service
 * times and pressure, and moves the slot pool's limit (slots_set_limit). */
#ifndef SLUICE_AUTOLIMIT_H
#define SLUICE_AUTOLIMIT_H

#include "common.h"

/* After slots_init (conn.c): the starting limit, the memory mark, request
 * timing, and the thread's tick. Nothing if SLUICE_CONN_MAX is not auto. */
void autolimit_init(void) SLUICE_INTERNAL;
void autolimit_atfork_child(void) SLUICE_INTERNAL;

#endif
