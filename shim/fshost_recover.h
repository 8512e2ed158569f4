/* fshost_recover.h — the host budget's shared state, who is alive, and the
 * lock with crash recovery (fshost_recover.c), for fshost.c. */
#ifndef SLUICE_FSHOST_RECOVER_H
#define SLUICE_FSHOST_RECOVER_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"
#include "config.h"
#include "fshost.h"

extern struct fshost_state *fshost_st SLUICE_INTERNAL;
extern char fshost_state_path[SLUICE_PATH_MAX] SLUICE_INTERNAL;
extern int32_t fshost_my_pid SLUICE_INTERNAL;       /* 0: not known yet (or a forked child) */
extern uint64_t fshost_my_start SLUICE_INTERNAL;
/* This process's record once claimed. */
extern struct fshost_holder *_Atomic fshost_me SLUICE_INTERNAL;

/* Turns the gate off with one line naming the state file (once). */
void fshost_broken(const char *what) SLUICE_INTERNAL;
/* Notes this process's pid and start time (again after a fork). */
void fshost_know_myself(void) SLUICE_INTERNAL;

/* Whether pid is still the process that started at start (clock ticks after
 * boot, field 22 of /proc/PID/stat; 0: unknown); *stopped: it is stopped now. */
bool fshost_alive(int32_t pid, uint64_t start, bool *stopped) SLUICE_INTERNAL;
/* pid's start time (0 if unreadable); *state gets its state letter. */
uint64_t fshost_start_time(int32_t pid, char *state) SLUICE_INTERNAL;

/* The count word. */
void fshost_count_sub_in_use(uint32_t n) SLUICE_INTERNAL;
void fshost_wake_waiters(void) SLUICE_INTERNAL;

/* The lock: 0, or -1 after fshost_broken (the gate is off). */
int fshost_lock(void) SLUICE_INTERNAL;
void fshost_unlock(void) SLUICE_INTERNAL;
/* Under the lock from here on. */
void fshost_free_record(struct fshost_holder *h) SLUICE_INTERNAL;
void fshost_reap(void) SLUICE_INTERNAL;
struct fshost_holder *fshost_my_holder(void) SLUICE_INTERNAL;
void fshost_update_head_since(void) SLUICE_INTERNAL;

#endif
