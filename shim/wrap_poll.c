/* wrap_poll.c — the program's readiness calls (epoll, poll, select), where the
 * overlay makes hidden events invisible and wakes waits when they return. */
#include "real.h"

#include "gate.h"
#include "overlay.h"

SLUICE_PUBLIC int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    return REAL(epoll_ctl)(epfd, op, fd, event);
}

SLUICE_PUBLIC int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return REAL(epoll_wait)(epfd, events, maxevents, timeout);
}

SLUICE_PUBLIC int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                              const sigset_t *sigmask)
{
    return REAL(epoll_pwait)(epfd, events, maxevents, timeout, sigmask);
}

SLUICE_PUBLIC int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                               const struct timespec *timeout, const sigset_t *sigmask)
{
    return REAL(epoll_pwait2)(epfd, events, maxevents, timeout, sigmask);
}

SLUICE_PUBLIC int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    return REAL(poll)(fds, nfds, timeout);
}

SLUICE_PUBLIC int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
    return REAL(__poll_chk)(fds, nfds, timeout, fdslen);
}

SLUICE_PUBLIC int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                        const sigset_t *sigmask)
{
    return REAL(ppoll)(fds, nfds, timeout, sigmask);
}

SLUICE_PUBLIC int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                              const sigset_t *sigmask, size_t fdslen)
{
    return REAL(__ppoll_chk)(fds, nfds, timeout, sigmask, fdslen);
}

SLUICE_PUBLIC int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                         struct timeval *timeout)
{
    return REAL(select)(nfds, readfds, writefds, exceptfds, timeout);
}

SLUICE_PUBLIC int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                          const struct timespec *timeout, const sigset_t *sigmask)
{
    return REAL(pselect)(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}
