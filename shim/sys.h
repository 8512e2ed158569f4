/* sys.h — the few system services every room needs, each in one place: the
 * monotonic clock, futex waits and wakes (through the real syscall(), never
 * sluice's own wrapper), the thread id, and whether a descriptor is in
 * non-blocking mode. /proc stat files are read by procstat.h, beside it. */
#ifndef SLUICE_SYS_H
#define SLUICE_SYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "common.h"

/* A timespec in nanoseconds, and back. */
static inline uint64_t sys_ts_ns(const struct timespec *t)
{
    return (uint64_t) t->tv_sec * 1000000000u + (uint64_t) t->tv_nsec;
}

static inline struct timespec sys_ns_ts(uint64_t ns)
{
    return (struct timespec) { .tv_sec = (time_t) (ns / 1000000000u), .tv_nsec = (long) (ns % 1000000000u) };
}

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sys_mono_ns(void) SLUICE_INTERNAL;

/* Sleeps while *word == val, until woken, until deadline_ns (CLOCK_MONOTONIC,
 * absolute; 0: no deadline) or a signal. Returns 0 (woken, or *word changed
 * before the sleep: EAGAIN is folded in), ETIMEDOUT or EINTR. errno is left as
 * the kernel set it. private_futex: the word is not shared between processes. */
int sys_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns,
                   bool private_futex) SLUICE_INTERNAL;
/* The same wait, as a cancellation point: a pthread_cancel pending or sent
 * while it sleeps ends the thread there, as a blocking call the program made
 * would (the caller's pthread_cleanup_push handlers undo what it holds). Only
 * for waits that stand in for a call that is a cancellation point itself. */
int sys_futex_wait_cancellable(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns,
                               bool private_futex) SLUICE_INTERNAL;
/* Wakes up to n sleepers on word. errno is preserved. */
void sys_futex_wake(_Atomic uint32_t *word, int n, bool private_futex) SLUICE_INTERNAL;

/* The calling thread's id. */
pid_t sys_gettid(void) SLUICE_INTERNAL;

/* Whether O_NONBLOCK is set on fd now (one fcntl; false if fd is not open).
 * errno is preserved. */
bool sys_nonblocking(int fd) SLUICE_INTERNAL;

/* Whether epfd's registration of fd still has events armed, from
 * /proc/self/fdinfo (a fired EPOLLONESHOT keeps only its flag bits); true if
 * it cannot be told. */
bool sys_epoll_armed(int epfd, int fd) SLUICE_INTERNAL;

#endif
