/* sys.c — clock, futex, thread id, the non-blocking probe and the epoll
 * fdinfo reader (see sys.h). They
 * sit here, once, because every gate needs them: a copy per gate is a copy
 * that can drift (a futex wait through sluice's own syscall() wrapper, say). */
#include "sys.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>

#include "real.h"

uint64_t sys_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int sys_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns, bool private_futex)
{
    struct timespec ts, *tp = NULL;
    if (deadline_ns != 0) {
        ts.tv_sec = (time_t) (deadline_ns / 1000000000u);
        ts.tv_nsec = (long) (deadline_ns % 1000000000u);
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: a wait
     * that restarts after a signal does not stretch its timeout. */
    int op = FUTEX_WAIT_BITSET | (private_futex ? FUTEX_PRIVATE_FLAG : 0);
    if (REAL(syscall)(SYS_futex, (long) word, (long) op, (long) val, (long) tp, 0L,
                      (long) FUTEX_BITSET_MATCH_ANY) == 0)
        return 0;
    return errno == EAGAIN ? 0 : errno;
}

int sys_futex_wait_cancellable(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns,
                               bool private_futex)
{
    /* glibc's own blocking calls do the same around their system call: with
     * the type asynchronous, a cancellation already pending acts at once, and
     * one that comes while we sleep interrupts the futex and acts there. The
     * window is this function alone, so its callers are always stopped at a
     * call, where their cleanup handlers are found. */
    int type;
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &type);
    int r = sys_futex_wait(word, val, deadline_ns, private_futex);
    int saved = errno;
    pthread_setcanceltype(type, NULL);
    errno = saved;
    return r;
}

void sys_futex_wake(_Atomic uint32_t *word, int n, bool private_futex)
{
    int op = FUTEX_WAKE | (private_futex ? FUTEX_PRIVATE_FLAG : 0);
    KEEP_ERRNO(REAL(syscall)(SYS_futex, (long) word, (long) op, (long) n, 0L, 0L, 0L));
}

pid_t sys_gettid(void)
{
    return (pid_t) REAL(syscall)(SYS_gettid);
}

bool sys_nonblocking(int fd)
{
    int saved = errno;
    int fl = REAL(fcntl)(fd, F_GETFL, 0);
    errno = saved;
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* Whether epfd's registration of fd still has events armed (fdinfo shows the
 * kernel's mask; a fired EPOLLONESHOT keeps only its private bits). */
bool sys_epoll_armed(int epfd, int fd)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfd);
    int f = REAL(open)(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return true;
    bool armed = true;
    size_t have = 0;
    for (;;) {
        ssize_t n = REAL(read)(f, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t) n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            int tfd;
            unsigned ev;
            if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2 && tfd == fd)
                armed = (ev & ~(EPOLLONESHOT | EPOLLET | EPOLLWAKEUP | EPOLLEXCLUSIVE)) != 0;
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1)
            have = 0;
    }
    REAL(close)(f);
    return armed;
}
