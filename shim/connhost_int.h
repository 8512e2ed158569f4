/* connhost_int.h — what connhost.c gives connhost_watch.c: the mapping,
 * this process's record, the lock with crash recovery, the count and wakes. */
#ifndef SLUICE_CONNHOST_INT_H
#define SLUICE_CONNHOST_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"
#include "connhost.h"

extern struct connhost_state *connhost_st SLUICE_INTERNAL;
extern int32_t connhost_my_pid SLUICE_INTERNAL;
extern struct connhost_holder *_Atomic connhost_me SLUICE_INTERNAL;

/* Turns the limit off with one line naming the state file (once). */
void connhost_broken(const char *what) SLUICE_INTERNAL;
/* The lock: 0, or -1 after connhost_broken. */
int connhost_lock(void) SLUICE_INTERNAL;
void connhost_unlock(void) SLUICE_INTERNAL;
/* Under the lock: gives back the slots of members that are gone. */
void connhost_reap(bool all) SLUICE_INTERNAL;
/* Wakes n sleepers. */
void connhost_wake(int n) SLUICE_INTERNAL;
/* Takes n slots back from the count, never below zero. */
void connhost_count_sub(uint32_t n) SLUICE_INTERNAL;
/* This process's record, claimed if needed (NULL: the table is full). */
struct connhost_holder *connhost_my_holder(void) SLUICE_INTERNAL;
/* This process made a slot WATCHED since none was (its thread then looks
 * often); connhost_made_watched sets it and tells the thread (the hook). */
extern _Atomic bool connhost_i_made_watched SLUICE_INTERNAL;
void connhost_made_watched(void) SLUICE_INTERNAL;

#endif
