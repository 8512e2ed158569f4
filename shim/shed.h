/* shed.h — answering connections the gate sheds, and the connection gate's own
 * thread, which finishes them (and does the pause's periodic work). */
#ifndef SLUICE_SHED_H
#define SLUICE_SHED_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* The answer (SLUICE_SHED, SLUICE_RETRY_AFTER) and the descriptor limit. */
void shed_init(void) SLUICE_INTERNAL;
/* Answers connection c, which the program will never see, and lets it go:
 * lingering on the thread while the client finishes its request, or closed at
 * once when sluice's own sockets would eat into the program's descriptors.
 * errno is preserved. */
void shed_connection(int c) SLUICE_INTERNAL;
/* Starts the thread the first time it is needed (all signals blocked). */
void gate_thread_ensure(void) SLUICE_INTERNAL;
/* Wakes it now (pause.c: a pause began or a blocking accept waits). */
void gate_thread_kick(void) SLUICE_INTERNAL;
void shed_atfork_child(void) SLUICE_INTERNAL;

/* fn runs on the thread each time it wakes, at least once a second (pause.c:
 * re-checks held slots while paused and keeps the paused time current); up
 * to four such functions. */
void gate_thread_on_tick(void (*fn)(uint64_t now_ns)) SLUICE_INTERNAL;
/* Host scope: fn runs on the thread before each wait for events; true: it has
 * slept already (on the shared budget), so the thread only looks at events. */
void gate_thread_on_park(bool (*fn)(uint64_t now_ns)) SLUICE_INTERNAL;
/* The next tick is wanted within ms (the thread's next wait is that short). */
void gate_thread_tick_within(int ms) SLUICE_INTERNAL;

/* The waiting queue (queue.c): arrival(fd) runs on the thread when a watched
 * listener has a new connection; tick each time it wakes; due() says when it
 * must wake next (absolute CLOCK_MONOTONIC ns, 0: no need). */
void gate_thread_on_queue(void (*arrival)(int fd), void (*tick)(uint64_t now_ns),
                          uint64_t (*due)(void)) SLUICE_INTERNAL;
/* On the thread: watch listener fd for arrivals (edge-triggered) or stop. 0 or -1. */
int gate_thread_watch(int fd, bool watch) SLUICE_INTERNAL;
/* SLUICE_RETRY_AFTER=auto: the Retry-After the answer says from now on (1..60). */
void shed_retry_after(unsigned seconds) SLUICE_INTERNAL;
/* The thread wakes at least every ms milliseconds (1..1000; autolimit.c
 * samples faster while requests are in service). */
void gate_thread_tick_ms(uint32_t ms) SLUICE_INTERNAL;
/* From the thread itself: fn runs when fd reports one of events, or an
 * error or hang-up (one descriptor at most: autolimit.c's pressure trigger).
 * 0, or -1. unwatch takes it out (before the caller closes it). */
int gate_thread_watch_one(int fd, uint32_t events, void (*fn)(uint64_t now_ns, uint32_t events)) SLUICE_INTERNAL;
void gate_thread_unwatch_one(int fd) SLUICE_INTERNAL;

#endif
