/* wrap_poll.c — the program's readiness calls (epoll, poll, select), where the
 * overlay makes hidden events invisible and wakes waits when they return. With
 * nothing hidden (and no internal epoll nested), each is one or two relaxed
 * loads and the real call. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include "gate.h"
#include "idle.h"
#include "overlay.h"
#include "pause.h"

extern void __chk_fail(void) __attribute__((noreturn));

SLUICE_PUBLIC int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (likely(gates_on() == 0))
        return REAL(epoll_ctl)(epfd, op, fd, event);
    return overlay_epoll_ctl(epfd, op, fd, event);
}

/* Gates on: connections answered since their last input may be idle now
 * (SLUICE_CONN_IDLE=free), a pause change another thread is applying is let
 * finish, then whether sluice's own epoll is nested. */
static inline bool epoll_plain(void)
{
    if (likely(gates_on() == 0))
        return true;
    idle_wait_hook();
    pause_wait_hook();
    return atomic_load_explicit(&overlay_epoll_nested, memory_order_relaxed) == 0;
}

SLUICE_PUBLIC int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    if (epoll_plain())
        return REAL(epoll_wait)(epfd, events, maxevents, timeout);
    return overlay_epoll_wait(EP_WAIT, epfd, events, maxevents, timeout, NULL, NULL);
}

SLUICE_PUBLIC int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                              const sigset_t *sigmask)
{
    if (epoll_plain())
        return REAL(epoll_pwait)(epfd, events, maxevents, timeout, sigmask);
    return overlay_epoll_wait(EP_PWAIT, epfd, events, maxevents, timeout, NULL, sigmask);
}

SLUICE_PUBLIC int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                               const struct timespec *timeout, const sigset_t *sigmask)
{
    if (epoll_plain())
        return REAL(epoll_pwait2)(epfd, events, maxevents, timeout, sigmask);
    return overlay_epoll_wait(EP_PWAIT2, epfd, events, maxevents, 0, timeout, sigmask);
}

static inline bool poll_plain(void)
{
    if (likely(gates_on() == 0))
        return true;
    idle_wait_hook();
    pause_wait_hook();
    return !overlay_poll_active();
}

static int poll_ms(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct timespec ts = { timeout / 1000, (long) (timeout % 1000) * 1000000 };
    int r = overlay_poll(fds, nfds, timeout < 0 ? NULL : &ts, NULL);
    return r != -2 ? r : REAL(poll)(fds, nfds, timeout);
}

SLUICE_PUBLIC int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (poll_plain())
        return REAL(poll)(fds, nfds, timeout);
    return poll_ms(fds, nfds, timeout);
}

SLUICE_PUBLIC int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
    if (poll_plain())
        return REAL(__poll_chk)(fds, nfds, timeout, fdslen);
    if (fdslen / sizeof *fds < nfds)
        __chk_fail();
    return poll_ms(fds, nfds, timeout);
}

SLUICE_PUBLIC int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                        const sigset_t *sigmask)
{
    if (poll_plain())
        return REAL(ppoll)(fds, nfds, timeout, sigmask);
    int r = overlay_poll(fds, nfds, timeout, sigmask);
    return r != -2 ? r : REAL(ppoll)(fds, nfds, timeout, sigmask);
}

SLUICE_PUBLIC int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                              const sigset_t *sigmask, size_t fdslen)
{
    if (poll_plain())
        return REAL(__ppoll_chk)(fds, nfds, timeout, sigmask, fdslen);
    if (fdslen / sizeof *fds < nfds)
        __chk_fail();
    int r = overlay_poll(fds, nfds, timeout, sigmask);
    return r != -2 ? r : REAL(ppoll)(fds, nfds, timeout, sigmask);
}

SLUICE_PUBLIC int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                         struct timeval *timeout)
{
    if (poll_plain())
        return REAL(select)(nfds, readfds, writefds, exceptfds, timeout);
    struct timespec ts, left;
    if (timeout != NULL)
        ts = (struct timespec) { timeout->tv_sec, timeout->tv_usec * 1000 };
    int r = overlay_select(nfds, readfds, writefds, exceptfds, timeout ? &ts : NULL, NULL, &left);
    if (r == -2)
        return REAL(select)(nfds, readfds, writefds, exceptfds, timeout);
    if (timeout != NULL)   /* Linux's select leaves the time not slept */
        *timeout = (struct timeval) { left.tv_sec, left.tv_nsec / 1000 };
    return r;
}

SLUICE_PUBLIC int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                          const struct timespec *timeout, const sigset_t *sigmask)
{
    if (poll_plain())
        return REAL(pselect)(nfds, readfds, writefds, exceptfds, timeout, sigmask);
    int r = overlay_select(nfds, readfds, writefds, exceptfds, timeout, sigmask, NULL);
    return r != -2 ? r : REAL(pselect)(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}
