/* queue_lifo.h — SLUICE_QUEUE_ORDER=lifo: while paused, sluice's thread takes
 * arriving connections off the kernel's accept queue onto a stack of its own,
 * and the program's accept returns the newest first. */
#ifndef SLUICE_QUEUE_LIFO_H
#define SLUICE_QUEUE_LIFO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "common.h"

bool lifo_on(void) SLUICE_INTERNAL;
void lifo_init(bool queue_enabled) SLUICE_INTERNAL;
/* A governed listener the program accepts on. */
void lifo_note_listener(int fd) SLUICE_INTERNAL;
/* The program's accept on listener fd, with a slot reserved: the newest held
 * connection, given the program's flags and peer address (-1: none held). */
int lifo_take(int fd, struct sockaddr *addr, socklen_t *len, int flags) SLUICE_INTERNAL;
/* Whether c, just accepted from listener fd, is sluice's own doorbell (it is
 * then closed here and must not reach the program). */
bool lifo_doorbell(int fd, int c) SLUICE_INTERNAL;
/* sluice's thread: takes arrivals while paused (if may_take: no accept of the
 * program's is under way), answers the late and the excess (oldest first),
 * rings the doorbell when a slot is free. Returns how many are held,
 * *oldest_ns the oldest's wait. */
uint64_t lifo_tick(uint64_t now, uint64_t *oldest_ns, bool may_take) SLUICE_INTERNAL;
/* When the oldest held connection is due (0: none). */
uint64_t lifo_due(void) SLUICE_INTERNAL;
void lifo_atfork_child(void) SLUICE_INTERNAL;

#endif
