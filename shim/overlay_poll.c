/* overlay_poll.c — poll, ppoll, select and pselect while the overlay hides
 * something (see overlay.h). The request is rewritten without the hidden
 * events, plus the calling thread's own eventfd, which every unhide writes
 * (overlay.c keeps the registry), and the overlay's internal epoll instance
 * (a watched socket became writable). A waiter registers its eventfd before it
 * resets it and reads what is hidden, so an unhide can never fall between its
 * look and its sleep. Nothing here allocates with malloc: poll may be called
 * from a signal handler. */
#include "real.h"

#include "overlay.h"

#include <sys/mman.h>

#include "fdtab.h"
#include "sys.h"

static uint32_t hidden_of(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    return e != NULL ? atomic_load_explicit(&e->hidden, memory_order_relaxed) : 0;
}

static short poll_mask_of(uint32_t hidden)
{
    short m = 0;
    if (hidden & EPOLLIN)
        m |= POLLIN | POLLRDNORM | POLLRDBAND;
    if (hidden & EPOLLOUT)
        m |= POLLOUT | POLLWRNORM | POLLWRBAND;
    return m;
}

/* The rewritten wait: loops on sluice-only wakes until the program has a result,
 * its timeout passes, or a signal comes. */
static int poll_core(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                     const sigset_t *sigmask)
{
    struct pollfd stackbuf[256];
    struct pollfd *buf = stackbuf;
    size_t bytes = (nfds + 2) * sizeof *buf;
    /* Bigger sets on pages of their own: poll is async-signal-safe, so a
     * handler may be here, and malloc is not. */
    if (nfds + 2 > 256) {
        buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED)
            return REAL(ppoll)(fds, nfds, timeout, sigmask);
    }
    int saved = errno;
    int efd;
    int slot = overlay_waiter_begin(&efd);
    uint64_t deadline = timeout != NULL ? sys_mono_ns() + sys_ts_ns(timeout) : 0;
    int result;
    for (;;) {
        uint64_t junk;
        if (efd >= 0)
            (void) !REAL(read)(efd, &junk, sizeof junk);
        for (nfds_t i = 0; i < nfds; i++) {
            buf[i] = fds[i];
            if (fds[i].fd >= 0)
                buf[i].events &= (short) ~poll_mask_of(hidden_of(fds[i].fd));
        }
        nfds_t n = nfds;
        if (efd >= 0)
            buf[n++] = (struct pollfd) { .fd = efd, .events = POLLIN };
        int ov = overlay_writable_epfd();
        nfds_t ovi = n;
        if (ov >= 0)
            buf[n++] = (struct pollfd) { .fd = ov, .events = POLLIN };
        struct timespec left, *tp = NULL;
        if (timeout != NULL) {
            uint64_t now = sys_mono_ns();
            left = sys_ns_ts(deadline > now ? deadline - now : 0);
            tp = &left;
        }
        struct timespec cap = { 0, 100000000 };
        if (slot < 0 && (tp == NULL || sys_ts_ns(tp) > sys_ts_ns(&cap)))
            tp = &cap;   /* no eventfd to wake us: look again now and then */
        int r = REAL(ppoll)(buf, n, tp, sigmask);
        if (r < 0) {
            result = -1;
            saved = errno;
            break;
        }
        if (ov >= 0 && buf[ovi].revents)
            overlay_dispatch_writable();
        int count = 0;
        for (nfds_t i = 0; i < nfds; i++) {
            fds[i].revents = buf[i].revents;
            count += buf[i].revents != 0;
        }
        if (count > 0 || (timeout != NULL && sys_mono_ns() >= deadline)) {
            result = count;
            break;
        }
        if (efd >= 0 && (buf[nfds].revents & POLLNVAL)) {
            /* The program closed our eventfd (closefrom, say): make another. */
            slot = overlay_waiter_renew(slot, &efd);
        }
    }
    overlay_waiter_end(slot);
    if (buf != stackbuf)
        munmap(buf, bytes);
    errno = saved;
    return result;
}

int overlay_poll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                 const sigset_t *sigmask)
{
    bool any = false;
    for (nfds_t i = 0; i < nfds && !any; i++)
        any = fds[i].fd >= 0 && (fds[i].events & poll_mask_of(hidden_of(fds[i].fd))) != 0;
    if (!any)
        return -2;
    return poll_core(fds, nfds, timeout, sigmask);
}

int overlay_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                   const struct timespec *timeout, const sigset_t *sigmask,
                   struct timespec *left)
{
    if (nfds > FD_SETSIZE)
        nfds = FD_SETSIZE;
    bool any = false;
    for (int fd = 0; fd < nfds; fd++) {
        bool r = readfds && FD_ISSET(fd, readfds), w = writefds && FD_ISSET(fd, writefds);
        uint32_t h = hidden_of(fd);
        if ((r && (h & EPOLLIN)) || (w && (h & EPOLLOUT)))
            any = true;
    }
    if (!any)
        return -2;
    struct pollfd pf[FD_SETSIZE];
    int n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = 0;
        if (readfds && FD_ISSET(fd, readfds))
            ev |= POLLIN;
        if (writefds && FD_ISSET(fd, writefds))
            ev |= POLLOUT;
        if (exceptfds && FD_ISSET(fd, exceptfds))
            ev |= POLLPRI;
        if (ev != 0)
            pf[n++] = (struct pollfd) { .fd = fd, .events = ev };
    }
    uint64_t start = sys_mono_ns();
    int r = poll_core(pf, (nfds_t) n, timeout, sigmask);
    if (left != NULL && timeout != NULL) {
        uint64_t spent = sys_mono_ns() - start, total = sys_ts_ns(timeout);
        *left = sys_ns_ts(spent < total ? total - spent : 0);
    }
    if (r < 0)
        return r;
    for (int i = 0; i < n; i++)
        if (pf[i].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    if (readfds)
        FD_ZERO(readfds);
    if (writefds)
        FD_ZERO(writefds);
    if (exceptfds)
        FD_ZERO(exceptfds);
    int bits = 0;
    for (int i = 0; i < n; i++) {
        short re = pf[i].revents, ev = pf[i].events;
        uint32_t h = hidden_of(pf[i].fd);
        short rd = (h & EPOLLIN) ? (POLLIN | POLLRDNORM) : (POLLIN | POLLRDNORM | POLLHUP | POLLERR);
        if ((ev & POLLIN) && (re & rd)) {
            FD_SET(pf[i].fd, readfds);
            bits++;
        }
        if ((ev & POLLOUT) && (re & (POLLOUT | POLLWRNORM | POLLERR))) {
            FD_SET(pf[i].fd, writefds);
            bits++;
        }
        if ((ev & POLLPRI) && (re & POLLPRI)) {
            FD_SET(pf[i].fd, exceptfds);
            bits++;
        }
    }
    return bits;
}
