/* overlay.h — the readiness overlay every gate shares. A gate says "hide EPOLLIN
 * (or EPOLLOUT) on fd" and "unhide"; the program's own epoll/poll/select calls
 * then agree, and a waiting loop is woken when something is unhidden or when a
 * socket sluice watches becomes writable. Implemented in overlay.c (epoll
 * bookkeeping, hide/unhide), overlay_poll.c (the rewritten poll and select),
 * overlay_waiters.c (the eventfds that wake them) and wrap_poll.c (the
 * wrappers). */
#ifndef SLUICE_OVERLAY_H
#define SLUICE_OVERLAY_H

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include "common.h"

/* At start-up, with any gate on: has fdtab tell the overlay of forgotten fds. */
void overlay_init(void) SLUICE_INTERNAL;
/* The gate that watches sockets for writability (drain) is called back with
 * fd, once per watch, when one becomes writable. */
void overlay_on_writable(void (*fn)(int fd)) SLUICE_INTERNAL;
/* Hide events (EPOLLIN, EPOLLOUT) of fd from the program's readiness calls. */
void overlay_hide(int fd, uint32_t events) SLUICE_INTERNAL;
/* Show them again, waking any wait in which fd is ready. */
void overlay_unhide(int fd, uint32_t events) SLUICE_INTERNAL;
/* Ask the kernel to wake the overlay when fd becomes writable (a drain); the
 * gate is then called back (overlay_on_writable), once per watch. */
void overlay_watch_writable(int fd) SLUICE_INTERNAL;
void overlay_unwatch(int fd) SLUICE_INTERNAL;
/* fd was answered EAGAIN though the kernel still has something for it (a
 * bounded accept): have its edge-triggered registrations report it again. */
void overlay_requeue(int fd) SLUICE_INTERNAL;
/* Wake every poll/select that waits with something hidden, to look again. */
void overlay_poke(void) SLUICE_INTERNAL;
/* fd is about to be closed (or replaced): forget its registrations. */
void overlay_forget(int fd) SLUICE_INTERNAL;
void overlay_atfork_child(void) SLUICE_INTERNAL;

/* --- for the wrappers (wrap_poll.c) --------------------------------------- */

/* Descriptors with something hidden now; poll/select are rewritten only then. */
extern _Atomic int overlay_hidden_fds SLUICE_INTERNAL;
/* Set once sluice's internal epoll instance is registered in a program's. */
extern _Atomic int overlay_epoll_nested SLUICE_INTERNAL;

static inline bool overlay_poll_active(void)
{
    return atomic_load_explicit(&overlay_hidden_fds, memory_order_relaxed) != 0;
}

int overlay_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) SLUICE_INTERNAL;

enum ep_variant { EP_WAIT, EP_PWAIT, EP_PWAIT2 };
/* epoll_wait family once sluice's own events may come out of it: consumes them
 * and waits again for the rest of the timeout. */
int overlay_epoll_wait(enum ep_variant v, int epfd, struct epoll_event *events, int maxevents,
                       int timeout_ms, const struct timespec *timeout, const sigset_t *sigmask)
    SLUICE_INTERNAL;

/* poll/ppoll with hidden events: timeout is NULL for "forever". Returns -2 if
 * nothing in the request is hidden (the caller forwards). */
int overlay_poll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                 const sigset_t *sigmask) SLUICE_INTERNAL;
/* select/pselect likewise; remaining time is written back to *tv_left if given. */
int overlay_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                   const struct timespec *timeout, const sigset_t *sigmask,
                   struct timespec *left) SLUICE_INTERNAL;

/* --- between overlay.c, overlay_poll.c and overlay_waiters.c --------------- */

/* Writes every registered waiter's eventfd: something was unhidden. */
void overlay_wake_waiters(void) SLUICE_INTERNAL;
/* In a child: the parent's eventfds are not the child's to write or wait on. */
void overlay_waiters_atfork_child(void) SLUICE_INTERNAL;

/* Registers this thread's eventfd (*efd, -1 if none) to be written by every
 * unhide; returns the registration (-1 if none), for overlay_waiter_end. */
int overlay_waiter_begin(int *efd) SLUICE_INTERNAL;
void overlay_waiter_end(int slot) SLUICE_INTERNAL;
/* The program closed the thread's eventfd: a new one, registered anew. */
int overlay_waiter_renew(int slot, int *efd) SLUICE_INTERNAL;
/* The internal epoll instance of writable watches (-1 if none yet), and the
 * call that hands its events to the gate that watches. */
int overlay_writable_epfd(void) SLUICE_INTERNAL;
void overlay_dispatch_writable(void) SLUICE_INTERNAL;

#endif
