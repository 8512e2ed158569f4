/* queue.h — the managed waiting queue (SLUICE_QUEUE_TIMEOUT, SLUICE_QUEUE_MAX):
 * in pause mode, how long each connection has waited in a governed listener's
 * accept queue; one that waited too long, or one too many, gets the shed answer
 * from sluice's thread and the program never sees it. */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* Whether the queue is on (pause mode with a timeout or a maximum). */
bool queue_on(void) SLUICE_INTERNAL;
void queue_init(void) SLUICE_INTERNAL;
/* A governed listener the program accepts on. */
void queue_note_listener(int fd) SLUICE_INTERNAL;
/* Around the program's real accept on governed listener fd: enter before it
 * (waits while sluice's thread is taking connections off that queue), leave
 * after, with whether a connection came (its wait is counted). */
void queue_enter(void) SLUICE_INTERNAL;
void queue_leave(int fd, bool accepted) SLUICE_INTERNAL;
void queue_atfork_child(void) SLUICE_INTERNAL;

#endif
