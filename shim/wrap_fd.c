/* wrap_fd.c — the calls that end, copy or create descriptor numbers: close,
 * close_range, closefrom, dup*, fcntl(F_DUPFD*), pipes, socketpair, and
 * syscall() for the numbers that matter (libuv closes with syscall(SYS_close)).
 * The rule: forget a number before the kernel may hand it out again, release
 * what it held only after the kernel has really let it go. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/syscall.h>

#include "fdtab.h"
#include "gate.h"

static inline void release(uint32_t held)
{
    if (held != 0)
        fdtab_release(held);
}

static __attribute__((noinline)) int gated_close(int fd)
{
    if (gates_on() == 0)
        return REAL(close)(fd);
    /* Only a program that closes descriptors it never opened gets here. */
    if (unlikely(fdtab_is_own(fd)))
        return 0;
    uint32_t held = fdtab_forget(fd);
    int r = REAL(close)(fd);
    release(held);
    return r;
}

SLUICE_PUBLIC int close(int fd)
{
    FAST_PATH(close, fd);
    return gated_close(fd);
}

/* Slots of descriptors closed together are released after the real call, up to
 * this many per call; past it, earlier (a moment before the kernel's close). */
#define RANGE_BATCH 256

static int gated_close_range(unsigned first, unsigned last, int flags,
                             int (*real_call)(unsigned, unsigned, int))
{
    if ((flags & CLOSE_RANGE_CLOEXEC) != 0 || first > last)
        return real_call(first, last, flags);
    uint32_t held[RANGE_BATCH];
    int nheld = 0;
    unsigned extent = (unsigned) fdtab_extent();
    /* sluice's own descriptors are stepped around: the range is closed in the
     * pieces between them. */
    unsigned piece = first;
    int r = 0;
    for (unsigned fd = first; fd <= last && fd < extent; fd++) {
        if (fdtab_is_own((int) fd)) {
            if (fd > piece && real_call(piece, fd - 1, flags) != 0)
                r = -1;
            piece = fd + 1;
            continue;
        }
        uint32_t h = fdtab_forget((int) fd);
        if (h == 0)
            continue;
        if (nheld < RANGE_BATCH)
            held[nheld++] = h;
        else
            release(h);
    }
    if (piece <= last && real_call(piece, last, flags) != 0)
        r = -1;
    for (int i = 0; i < nheld; i++)
        release(held[i]);
    return r;
}

static int real_close_range_call(unsigned first, unsigned last, int flags)
{
    return REAL(close_range)(first, last, flags);
}

SLUICE_PUBLIC int close_range(unsigned int first, unsigned int last, int flags)
{
    if (likely(gates_on() == 0))
        return REAL(close_range)(first, last, flags);
    return gated_close_range(first, last, flags, real_close_range_call);
}

static int closefrom_call(unsigned first, unsigned last, int flags)
{
    (void) flags;
    if (last == ~0U) {
        REAL(closefrom)((int) first);
        return 0;
    }
    /* A piece between two of sluice's own descriptors: short. */
    for (unsigned fd = first; fd <= last; fd++)
        REAL(close)((int) fd);
    return 0;
}

SLUICE_PUBLIC void closefrom(int lowfd)
{
    if (likely(gates_on() == 0) || lowfd < 0) {
        REAL(closefrom)(lowfd);
        return;
    }
    gated_close_range((unsigned) lowfd, ~0U, 0, closefrom_call);
}

SLUICE_PUBLIC int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0 && gates_on() != 0)
        KEEP_ERRNO(fdtab_dup(fd, r));
    return r;
}

/* dup2/dup3 close newfd first, silently: its slot goes unless the call fails. */
static int gated_dup_over(int fd, int newfd, int flags, int use_dup3)
{
    if (fd == newfd)
        return use_dup3 ? REAL(dup3)(fd, newfd, flags) : REAL(dup2)(fd, newfd);
    uint32_t held = fdtab_forget(newfd);
    int r = use_dup3 ? REAL(dup3)(fd, newfd, flags) : REAL(dup2)(fd, newfd);
    if (r < 0) {
        /* Nothing was closed: newfd keeps what it held. */
        if (held != 0)
            KEEP_ERRNO(fdtab_restore(newfd, held));
        return r;
    }
    KEEP_ERRNO(fdtab_dup(fd, newfd));
    release(held);
    return r;
}

SLUICE_PUBLIC int dup2(int fd, int newfd)
{
    if (likely(gates_on() == 0))
        return REAL(dup2)(fd, newfd);
    return gated_dup_over(fd, newfd, 0, 0);
}

SLUICE_PUBLIC int dup3(int fd, int newfd, int flags)
{
    if (likely(gates_on() == 0))
        return REAL(dup3)(fd, newfd, flags);
    return gated_dup_over(fd, newfd, flags, 1);
}

static void after_fcntl(int fd, int cmd, long arg, int r)
{
    if (r < 0)
        return;
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        fdtab_dup(fd, r);
    else if (cmd == F_SETFL)
        fdtab_set_nonblock(fd, (arg & O_NONBLOCK) != 0);
}

/* fcntl's third argument is an int, a pointer or nothing; reading it as a
 * pointer-sized value and passing it on is what glibc itself does. */
SLUICE_PUBLIC int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(fcntl)(fd, cmd, arg);
    if (gates_on() != 0)
        KEEP_ERRNO(after_fcntl(fd, cmd, (long) arg, r));
    return r;
}

SLUICE_PUBLIC int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(fcntl64)(fd, cmd, arg);
    if (gates_on() != 0)
        KEEP_ERRNO(after_fcntl(fd, cmd, (long) arg, r));
    return r;
}

static void reborn_pair(int r, const int *fds)
{
    if (r == 0 && gates_on() != 0) {
        KEEP_ERRNO(fdtab_reborn(fds[0]));
        KEEP_ERRNO(fdtab_reborn(fds[1]));
    }
}

SLUICE_PUBLIC int pipe(int fds[2])
{
    int r = REAL(pipe)(fds);
    reborn_pair(r, fds);
    return r;
}

SLUICE_PUBLIC int pipe2(int fds[2], int flags)
{
    int r = REAL(pipe2)(fds, flags);
    reborn_pair(r, fds);
    return r;
}

SLUICE_PUBLIC int socketpair(int domain, int type, int protocol, int fds[2])
{
    int r = REAL(socketpair)(domain, type, protocol, fds);
    reborn_pair(r, fds);
    return r;
}

/* syscall(): the descriptor calls a program may make without libc's wrappers.
 * Everything else passes through untouched. */
SLUICE_PUBLIC long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    if (likely(gates_on() == 0))
        return REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
    switch (number) {
    case SYS_close:
        return close((int) a1);
    case SYS_close_range:
        return close_range((unsigned) a1, (unsigned) a2, (int) a3);
    case SYS_dup3:
        return dup3((int) a1, (int) a2, (int) a3);
#ifdef SYS_dup2
    case SYS_dup2:
        return dup2((int) a1, (int) a2);
#endif
    case SYS_accept4:
        return accept4((int) a1, (struct sockaddr *) a2, (socklen_t *) a3, (int) a4);
#ifdef SYS_accept
    case SYS_accept:
        return accept((int) a1, (struct sockaddr *) a2, (socklen_t *) a3);
#endif
    default:
        return REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
    }
}
