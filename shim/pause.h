/* pause.h — pause mode's listeners: while every busy slot holds a connection,
 * governed listeners are hidden from the program's readiness calls (and the
 * paused time counted); sluice's thread re-checks, while paused, that each
 * slot's descriptor is still the socket it was. */
#ifndef SLUICE_PAUSE_H
#define SLUICE_PAUSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* Registers with the slot pool and sluice's thread (conn.c's start-up). */
void pause_init(void) SLUICE_INTERNAL;
/* A governed listener the program accepts on (or listens with). */
void pause_note_listener(int fd) SLUICE_INTERNAL;
/* Every slot was taken at a non-blocking accept: if another thread is still
 * applying a pause change, waits for it (bounded, ~64 ms at most). True: a
 * slot is free now, try again. */
bool pause_await_applied(void) SLUICE_INTERNAL;

/* Nonzero while a pause change is being applied by some thread. */
extern _Atomic uint32_t pause_changes_pending SLUICE_INTERNAL;
void pause_settle_before_wait(void) SLUICE_INTERNAL;
/* On entry to a readiness wait (wrap_poll.c): one relaxed load, and a short
 * bounded wait only while another thread is applying a pause change. */
static inline void pause_wait_hook(void)
{
    if (unlikely(atomic_load_explicit(&pause_changes_pending, memory_order_relaxed) != 0))
        pause_settle_before_wait();
}
void pause_atfork_child(void) SLUICE_INTERNAL;

#endif
