/* idle.h — SLUICE_CONN_IDLE=free: a connection holds a busy slot only from the
 * moment the program takes input from it until the program waits for input on
 * it again with nothing unread and nothing unsent. Input on an idle connection
 * waits, unseen by the program, until a slot frees. */
#ifndef SLUICE_IDLE_H
#define SLUICE_IDLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"
#include "fdtab.h"

/* True when SLUICE_CONN_IDLE=free and the connection gate is on. */
extern _Atomic bool idle_free SLUICE_INTERNAL;
/* Busy connections written to since their last input: readiness waits look at
 * them (they may be idle now). Zero most of the time. */
extern _Atomic int idle_answered SLUICE_INTERNAL;

static inline bool idle_on(void)
{
    return atomic_load_explicit(&idle_free, memory_order_relaxed);
}

/* 0 on success; -1 if the queue cannot be made (idle=free stays off). Hears
 * of freed slots and connections from the slot pool (slots.h). */
int idle_init(uint32_t conns) SLUICE_INTERNAL;
void idle_atfork_child(void) SLUICE_INTERNAL;
/* Whether idle connections wait for a slot; serve them with free slots (host
 * scope: a slot freed by another process). */
bool idle_queued(void) SLUICE_INTERNAL;
void idle_serve(void) SLUICE_INTERNAL;

/* Around the program's input and output on a connection (gate.c); e is fd's
 * entry, looked up once for the call. */
int idle_before_read(int fd, struct fdent *e, int msgflags) SLUICE_INTERNAL;
void idle_after_read(int fd, struct fdent *e, long result) SLUICE_INTERNAL;
void idle_after_write(int fd, struct fdent *e, long result) SLUICE_INTERNAL;

/* On entry to a readiness wait: answered connections with nothing unread or
 * unsent go idle. */
void idle_before_wait(void) SLUICE_INTERNAL;
static inline void idle_wait_hook(void)
{
    if (unlikely(atomic_load_explicit(&idle_answered, memory_order_relaxed) != 0))
        idle_before_wait();
}

#endif
