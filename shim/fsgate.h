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

/* Shared by the two scopes (fsgate.c, fshost.c). */
uint64_t fsgate_now_ns(void) SLUICE_INTERNAL;          /* CLOCK_MONOTONIC */
/* FUTEX_WAIT_BITSET until *word != val or the absolute monotonic deadline (0:
 * none). Returns 0, or ETIMEDOUT / EINTR / EAGAIN. */
int fsgate_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns,
                      int private_futex) SLUICE_INTERNAL;
void fsgate_futex_wake(_Atomic uint32_t *word, int n, int private_futex) SLUICE_INTERNAL;

#endif
