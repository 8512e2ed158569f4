/* init.h — the library's start-up: binding every real function, the settings,
 * the gates' set-up, the fork handler, the stats writer. */
#ifndef SLUICE_INIT_H
#define SLUICE_INIT_H

#include "common.h"

/* Everything done once per process, before the first gated call. Safe to call
 * from any wrapper, any number of times; from inside start-up on the same
 * thread (a dependency's malloc calling a wrapper) it returns at once. */
void sluice_init(void) SLUICE_INTERNAL;

#endif
