/* threads.h — sluice's own threads (the stats writer, the connection gate's
 * helper) must never keep a process alive that would have ended bare. */
#ifndef SLUICE_THREADS_H
#define SLUICE_THREADS_H

#include <stdbool.h>
#include "common.h"

/* Called first thing in each thread sluice starts: marks it as ours. */
void threads_adopt_self(void) SLUICE_INTERNAL;
/* True when every thread of the program's own has ended and only sluice's
 * remain. Cheap while the main thread lives (one read of /proc/self/stat). */
bool threads_only_ours_left(void) SLUICE_INTERNAL;
/* Ends the process as glibc would have when the program's last thread ended
 * (exit(0), atexit handlers and all) if only sluice's threads are left. */
void threads_exit_if_only_ours(void) SLUICE_INTERNAL;
/* A forked child has none of the parent's threads. */
void threads_atfork_child(void) SLUICE_INTERNAL;

#endif
