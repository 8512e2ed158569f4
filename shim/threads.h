/* threads.h — sluice's own threads (the stats writer, the connection gate's
 * helper) must never keep a process alive that would have ended bare. */
#ifndef SLUICE_THREADS_H
#define SLUICE_THREADS_H

#include <stdbool.h>
#include <stddef.h>
#include "common.h"

/* Starts one of sluice's threads: detached, every signal blocked in it (the
 * program's signals must never land there), marked as ours, and running
 * before this returns — so a fork right after (a pre-fork server forks its
 * workers just after listen()) never copies a thread halfway through its own
 * start-up, with a lock of the C runtime's or a sanitizer's held forever in
 * the child. stack_size 0: the default. False if it could not start. */
bool threads_start(void *(*fn)(void *), size_t stack_size) SLUICE_INTERNAL;
/* Marks the calling thread as ours (threads_start does it for its threads). */
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
