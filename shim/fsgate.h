/* fsgate.h — the filesystem I/O semaphore: at most SLUICE_FS_MAX file operations
 * in flight, per process or per (user, key) across processes. A token is held for
 * one call only. */
#ifndef SLUICE_FSGATE_H
#define SLUICE_FSGATE_H

#include <stdint.h>
#include "common.h"

void fsgate_init(void) SLUICE_INTERNAL;
/* 0 with a token held, or -1 with errno (EAGAIN after SLUICE_FS_TIMEOUT). A call
 * nested in one already holding a token (a signal handler) takes none. */
int fsgate_acquire(void) SLUICE_INTERNAL;
void fsgate_release(void) SLUICE_INTERNAL;
void fsgate_atfork_child(void) SLUICE_INTERNAL;
/* Copies the operation count and tokens in use, which the fast path keeps in
 * its one atomic word, into sluice_stats. Called by whoever reads the stats. */
void fsgate_sync_stats(void) SLUICE_INTERNAL;

#endif
