/* fshost.h — host scope of the filesystem semaphore: one budget per (user, key)
 * in a small shared file, shared by every process that names the key. */
#ifndef SLUICE_FSHOST_H
#define SLUICE_FSHOST_H

#include <pthread.h>
#include <stdint.h>
#include "common.h"

/* The shared file's layout (tests read in_use from outside). */
#define HOST_MAGIC UINT64_C(0x31736674736c7573)   /* "suls tfs1" */
#define HOST_VERSION 1u
#define NHOLDERS 256
#define NWAITING 256
#define FSHOST_REAP_AFTER_NS UINT64_C(50000000)          /* a full budget this long: check holders */
#define FSHOST_LOCK_BOUND_NS UINT64_C(3000000000)        /* a mutex held this long is broken */

struct holder {
    int32_t pid;          /* 0: free */
    uint32_t held;        /* tokens this process holds now */
    uint64_t start;       /* its start time (clock ticks after boot) */
};

struct waiting {
    int32_t pid;          /* 0: free */
    uint32_t stopped;     /* its process was stopped (SIGSTOP, debugger) at the last check */
    uint64_t start;
    uint64_t ticket;
};

struct host_state {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint32_t uid;
    uint32_t limit;
    pthread_mutex_t lock;
    _Atomic uint32_t wake_seq;   /* bumped under the lock whenever a waiter may proceed */
    uint32_t in_use;
    uint32_t nwaiting;
    uint32_t pad;
    uint64_t next_ticket;
    struct holder holders[NHOLDERS];
    struct waiting waiting[NWAITING];
};

/* Maps (creating if needed) the budget; 0, or -1 after one error line (the
 * program then runs without the gate). */
int fshost_init(uint32_t limit, const char *key) SLUICE_INTERNAL;
/* 0: token held. 1: timeout_ns (0: none) passed first. 2: the state became
 * unusable; the call runs ungated. *waited_ns: time spent asleep (0: none). */
int fshost_acquire(uint64_t timeout_ns, uint64_t *waited_ns) SLUICE_INTERNAL;
void fshost_release(void) SLUICE_INTERNAL;
void fshost_atfork_child(void) SLUICE_INTERNAL;

#endif
