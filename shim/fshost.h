/* fshost.h — host scope of the filesystem semaphore: one budget per (user, key)
 * in a small shared file, shared by every process that names the key. */
#ifndef SLUICE_FSHOST_H
#define SLUICE_FSHOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* The shared file's layout (tests read it from outside). */
#define HOST_MAGIC UINT64_C(0x31736674736c7573)   /* "suls tfs1" */
#define HOST_VERSION 2u
#define FSHOST_NHOLDERS 256
#define FSHOST_NWAITING 256
#define FSHOST_REAP_AFTER_NS UINT64_C(50000000)          /* a waiter this long: check holders */
#define FSHOST_LOCK_BOUND_NS UINT64_C(3000000000)        /* a mutex held this long is broken */
#define FSHOST_QUIESCE_NS UINT64_C(100000000)            /* a recount waits this long for members */
#define FSHOST_OVERTAKE_NS UINT64_C(2000000)             /* newcomers may pass a waiter this long */

/* holder.word and host_state.count pack two 32-bit counts. */
#define HOST_LOW(w) ((uint32_t) ((w) & 0xffffffffu))
#define HOST_HIGH(w) ((uint32_t) ((w) >> 32))
#define HOST_HIGH_ONE (UINT64_C(1) << 32)

/* One per member process, on a cache line of its own: the process updates it
 * on every operation, nobody else does while it lives. */
struct fshost_holder {
    _Atomic int32_t pid;       /* 0: free (claimed and freed under the lock) */
    uint32_t pad0;
    uint64_t start;            /* its start time (clock ticks after boot; 0: unknown) */
    _Atomic uint64_t word;     /* tokens held (low) | its threads between the two updates (high) */
    char pad[40];
} __attribute__((aligned(64)));

struct fshost_waiting {
    int32_t pid;          /* 0: free */
    uint32_t stopped;     /* its process was stopped (SIGSTOP, debugger) at the last check */
    uint64_t start;
    uint64_t ticket;
    uint64_t since;       /* when it began to wait (CLOCK_MONOTONIC ns) */
};

struct fshost_state {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint32_t uid;
    uint32_t limit;
    _Atomic uint32_t recount;  /* a recount is in progress: operations take the lock */
    uint32_t pad;
    uint64_t next_ticket;      /* under the lock */
    pthread_mutex_t lock __attribute__((aligned(64)));
    _Atomic uint64_t count __attribute__((aligned(64)));      /* in use (low) | waiting (high) */
    _Atomic uint64_t head_since;   /* since when the longest running waiter waits; 0: none */
    _Atomic uint32_t wake_seq __attribute__((aligned(64)));   /* bumped when a waiter may proceed */
    struct fshost_holder holders[FSHOST_NHOLDERS];
    struct fshost_waiting waiting[FSHOST_NWAITING];
};

/* Where the state lives: one directory per user, mode 0700. */
#define FSHOST_DIR_FMT "/dev/shm/sluice-%u"
#define FSHOST_FILE_FMT "fs-%s"

/* Maps (creating if needed) the budget; 0, or -1 after one error line (the
 * program then runs without the gate). */
int fshost_init(uint32_t limit, const char *key) SLUICE_INTERNAL;
/* 0: token held. 1: timeout_ns (0: none) passed first. 2: the state became
 * unusable; the call runs ungated. *waited_ns: time spent asleep (0: none). */
int fshost_acquire(uint64_t timeout_ns, uint64_t *waited_ns) SLUICE_INTERNAL;
void fshost_release(void) SLUICE_INTERNAL;
/* The fast path: a token without a lock or a system call, when one is free and
 * nobody waits; false: take the slow way (fshost_acquire). */
bool fshost_try(void) SLUICE_INTERNAL;
void fshost_atfork_child(void) SLUICE_INTERNAL;

#endif
