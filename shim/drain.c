/* drain.c — drain-before-write and held reads (see drain.h).
 *
 * The kernel does most of it. TCP_NOTSENT_LOWAT makes TCP's POLLOUT, EAGAIN and
 * blocking waits follow the mark; SO_SNDBUF bounds what a UNIX socket's peer
 * has not read; SO_SNDTIMEO bounds a blocking writer's wait. What is left here:
 * TCP appends a small write to the last unsent segment without looking at the
 * mark (so a stream of small writes piles up ~40 KB past it), hence a write is
 * refused or waits while SIOCOUTQNSD says the mark is reached — asked only once
 * an upper bound kept in the fd table says it could be; a refusal first asks
 * the kernel's poll, so that edge-triggered waiters are owed their EPOLLOUT
 * (kernel_owes_writable). And held reads: no
 * input from a socket while the kernel would not report it writable. */
#include "real.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "drain.h"
#include "fdtab.h"
#include "overlay.h"
#include "stats.h"
#include "sys.h"

static uint32_t mark;             /* SLUICE_WRITE_HIGH in bytes (0: none) */
static uint32_t ub_write_limit;   /* ask the kernel before a write once ub reaches this */
static uint32_t ub_read_limit;    /* ... before a read: POLLOUT needs 2*unsent < mark */

/* Hidden sockets now, and since when that count last changed: held_read_ns
 * integrates the count over time, so no per-socket start time is needed. */
static _Atomic int64_t hiding_now;
static _Atomic uint64_t hiding_since_ns;

/* A write the kernel may make wait (let through near the mark): timed, so that
 * a wait inside the kernel is counted too. One per thread; a signal handler
 * writing meanwhile only blurs the figure. */
static __thread int timed_fd = -1;
static __thread uint64_t timed_t0;

static inline uint32_t ub_of(uint32_t g)
{
    return g >> DRAIN_UB_SHIFT;
}

static void set_ub(struct fdent *e, uint32_t ub)
{
    if (ub > DRAIN_UB_MAX)
        ub = DRAIN_UB_MAX;
    uint32_t g = atomic_load_explicit(&e->gate, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&e->gate, &g,
                                         (g & ((1u << DRAIN_UB_SHIFT) - 1)) | (ub << DRAIN_UB_SHIFT)))
        ;
}

static void add_ub(struct fdent *e, uint64_t n)
{
    uint32_t g = atomic_load_explicit(&e->gate, memory_order_relaxed);
    for (;;) {
        uint64_t ub = ub_of(g) + n;
        if (ub > DRAIN_UB_MAX)
            ub = DRAIN_UB_MAX;
        uint32_t next = (g & ((1u << DRAIN_UB_SHIFT) - 1)) | ((uint32_t) ub << DRAIN_UB_SHIFT);
        if (next == g || atomic_compare_exchange_weak(&e->gate, &g, next))
            return;
    }
}

static void set_over(struct fdent *e)
{
    if ((atomic_fetch_or(&e->gate, DRAIN_OVER) & DRAIN_OVER) == 0)
        STAT_ADD(sockets_over_mark, 1);
}

static void clear_over(struct fdent *e)
{
    if (atomic_load_explicit(&e->gate, memory_order_relaxed) & DRAIN_OVER)
        if (atomic_fetch_and(&e->gate, ~DRAIN_OVER) & DRAIN_OVER)
            STAT_ADD(sockets_over_mark, -1);
}

static void hiding_change(int delta)
{
    uint64_t t = sys_mono_ns();
    uint64_t prev = atomic_exchange(&hiding_since_ns, t);
    int64_t before = atomic_fetch_add(&hiding_now, delta);
    if (before > 0 && prev != 0 && t > prev)
        STAT_ADD(held_read_ns, before * (int64_t) (t - prev));
}

void drain_init(void)
{
    fdtab_hook_drain(drain_adopt, drain_forgotten);
    overlay_on_writable(drain_on_writable);
    uint64_t m = sluice_cfg.write_high;
    mark = m > 0x7fffffff ? 0x7fffffff : (uint32_t) m;
    ub_write_limit = mark < DRAIN_UB_MAX ? mark : DRAIN_UB_MAX;
    uint32_t half = mark - mark / 2;  /* 2*ub >= mark, rounded up */
    ub_read_limit = half < DRAIN_UB_MAX ? half : DRAIN_UB_MAX;
    if (ub_read_limit == 0)
        ub_read_limit = 1;
}

/* Sets the kernel's bounds on fd once. nothing_sent: a fresh connection, so
 * the unsent count is known to be 0. Returns the new gate word. */
static uint32_t adopt(int fd, struct fdent *e, bool nothing_sent)
{
    int domain = 0, proto = 0;
    socklen_t len = sizeof domain;
    uint32_t bits = DRAIN_ADOPTED;
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    len = sizeof proto;
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
    if (mark != 0) {
        if ((domain == AF_INET || domain == AF_INET6) && proto == IPPROTO_TCP) {
            int v = (int) mark;
            if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof v) == 0)
                bits |= DRAIN_TCP;
        } else if (domain == AF_UNIX) {
            /* The kernel doubles SO_SNDBUF and counts the peer's unread skbs
             * (their true size) against it: half the mark bounds them at it.
             * A smaller buffer the program chose stays. */
            int cur = 0;
            len = sizeof cur;
            if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) == 0 && (uint64_t) cur > mark) {
                int v = (int) (mark / 2 > 0 ? mark / 2 : 1);
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
            }
        }
    }
    if (sluice_cfg.write_timeout_ns != 0) {
        /* The kernel ends a blocking send after SO_SNDTIMEO with the count so
         * far or EAGAIN: exactly SLUICE_WRITE_TIMEOUT. One the program set wins. */
        struct timeval tv = { 0, 0 };
        len = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 && tv.tv_sec == 0
            && tv.tv_usec == 0) {
            uint64_t ns = sluice_cfg.write_timeout_ns;
            tv.tv_sec = (time_t) (ns / 1000000000u);
            tv.tv_usec = (suseconds_t) ((ns % 1000000000u) / 1000u);
            if (tv.tv_sec == 0 && tv.tv_usec == 0)
                tv.tv_usec = 1;
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
    }
    uint32_t ub = nothing_sent ? 0 : DRAIN_UB_MAX;
    uint32_t g = atomic_load(&e->gate);
    uint32_t next;
    do {
        next = (g & 0x0Fu) | bits | (ub << DRAIN_UB_SHIFT);
    } while (!atomic_compare_exchange_weak(&e->gate, &g, next));
    return next;
}

void drain_adopt(int fd)
{
    struct fdent *e = fdtab_get(fd);
    if (e != NULL)
        KEEP_ERRNO(adopt(fd, e, true));
}

static inline uint32_t gate_word(int fd, struct fdent *e)
{
    uint32_t g = atomic_load_explicit(&e->gate, memory_order_relaxed);
    if (unlikely((g & DRAIN_ADOPTED) == 0))
        g = adopt(fd, e, false);
    return g;
}

/* Whether the kernel would report fd writable now; records what it learnt. */
static bool writable_now(int fd, struct fdent *e, uint32_t g)
{
    if (g & DRAIN_TCP) {
        int n = 0;
        if (ioctl(fd, SIOCOUTQNSD, &n) == 0 && n >= 0) {
            set_ub(e, (uint32_t) n);
            if (2 * (uint64_t) n < mark)
                return true;
            /* Over by the count; POLLOUT may still be set (shut down, error):
             * then input must flow, or a held read would spin. */
        }
    }
    struct pollfd p = { fd, POLLOUT, 0 };
    int r = REAL(poll)(&p, 1, 0);
    if (r < 0)
        return true;  /* cannot tell: fail open, the real call decides */
    bool writable = r > 0 && (p.revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) != 0;
    if (!(g & DRAIN_TCP))
        set_ub(e, writable ? 0 : DRAIN_UB_MAX);
    else if (!writable)
        set_ub(e, DRAIN_UB_MAX);
    return writable;
}

static bool nonblocking(int fd, int msgflags)
{
    if (msgflags & MSG_DONTWAIT)
        return true;
    /* Asked each time: Python sets O_NONBLOCK with ioctl(FIONBIO), unseen. */
    return sys_nonblocking(fd);
}

/* A wait of ours that a signal interrupted is restarted as the real call would
 * be: with SA_RESTART, unless the socket has a timeout (then the kernel says
 * EINTR). Which signal came is unknown: restart only if every handler that
 * could have interrupted this wait asks for it. That leaves out signals this
 * thread blocks, and the fault signals, which a thread gets from its own
 * instructions, not while it sleeps in poll (crash reporters and sanitizers
 * install handlers for them without SA_RESTART). */
static bool restart_after_signal(bool timed)
{
    if (timed)
        return false;
    sigset_t blocked;
    if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0)
        sigemptyset(&blocked);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE
            || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS)
            continue;
        if (sigismember(&blocked, sig) == 1 || sigaction(sig, NULL, &sa) != 0)
            continue;
        if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
            continue;
        if ((sa.sa_flags & SA_RESTART) == 0)
            return false;
    }
    return true;
}

/* Waits until fd is writable, at most the socket's own timeout (opt:
 * SO_SNDTIMEO or SO_RCVTIMEO, as the real call would use). 0: writable, or
 * broken (the real call will say how); -1: EAGAIN (timed out) or EINTR. */
static int wait_writable(int fd, int opt)
{
    struct timeval tv = { 0, 0 };
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0)
        tv.tv_sec = tv.tv_usec = 0;
    bool timed = tv.tv_sec != 0 || tv.tv_usec != 0;
    uint64_t deadline = timed ? sys_mono_ns() + (uint64_t) tv.tv_sec * 1000000000u
                                    + (uint64_t) tv.tv_usec * 1000u
                              : 0;
    for (;;) {
        struct timespec left, *lp = NULL;
        if (timed) {
            uint64_t t = sys_mono_ns();
            if (t >= deadline) {
                errno = EAGAIN;
                return -1;
            }
            left.tv_sec = (time_t) ((deadline - t) / 1000000000u);
            left.tv_nsec = (long) ((deadline - t) % 1000000000u);
            lp = &left;
        }
        struct pollfd p = { fd, POLLOUT, 0 };
        int r = REAL(ppoll)(&p, 1, lp, NULL);
        if (r > 0)
            return 0;
        if (r == 0)
            continue;  /* timed out: the deadline check above says so */
        if (errno == EINTR) {
            if (restart_after_signal(timed))
                continue;
            return -1;
        }
        return 0;
    }
}

/* Input from fd is hidden from readiness calls until it drains. */
static void begin_hiding(int fd, struct fdent *e)
{
    if (atomic_fetch_or(&e->gate, DRAIN_HIDING) & DRAIN_HIDING) {
        /* Hidden already, but another gate sharing the bit (idle input held
         * back) may have shown it since: hide it again, or our release would
         * change nothing and wake no edge-triggered loop. */
        overlay_hide(fd, EPOLLIN);
        return;
    }
    /* One hold of a non-blocking socket's input, however many reads it refuses. */
    STAT_ADD(held_reads, 1);
    hiding_change(1);
    overlay_hide(fd, EPOLLIN);
    overlay_watch_writable(fd);
}

static void end_hiding(int fd, struct fdent *e, bool watch_fired)
{
    if ((atomic_fetch_and(&e->gate, ~DRAIN_HIDING) & DRAIN_HIDING) == 0)
        return;
    hiding_change(-1);
    if (!watch_fired)
        overlay_unwatch(fd);
    overlay_unhide(fd, EPOLLIN);
}

/* Before sluice refuses a non-blocking write with its own EAGAIN: an
 * edge-triggered epoll waiter (EPOLLET, exclusive or not) gets its next EPOLLOUT
 * only when TCP calls the socket's write-space callback, and TCP does that only
 * if SOCK_NOSPACE is set, by a sendmsg that found no room or by a poll that
 * found the socket unwritable. sluice's refusal does neither, so the program
 * would wait for an edge that never comes (level-triggered epoll, a one-shot's
 * re-arm, poll and select poll the socket themselves, which sets the bit; an
 * edge-triggered registration is not polled again). A zero-timeout poll asks
 * the kernel the same question (with TCP_NOTSENT_LOWAT at the mark, POLLOUT
 * needs twice the unsent bytes under it) and, answering "no", sets SOCK_NOSPACE:
 * the kernel then owes the program its EPOLLOUT when the socket drains. True if
 * the poll says writable (or broken) after all: the write goes to the kernel,
 * which decides. */
static bool kernel_owes_writable(int fd)
{
    struct pollfd p = { fd, POLLOUT, 0 };
    int r = REAL(poll)(&p, 1, 0);
    if (r < 0)
        return true;   /* cannot tell: fail open, as writable_now does */
    return r > 0 && (p.revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) != 0;
}

/* Slow path of a write on TCP: the bound says the mark may be reached. */
static int check_before_write(int fd, struct fdent *e, int msgflags)
{
    int n = 0;
    if (ioctl(fd, SIOCOUTQNSD, &n) != 0 || n < 0)
        return 0;
    set_ub(e, (uint32_t) n);
    if ((uint32_t) n < mark) {
        if (2 * (uint64_t) n < mark)
            clear_over(e);
        timed_fd = fd;
        timed_t0 = sys_mono_ns();
        return 0;
    }
    set_over(e);
    if (nonblocking(fd, msgflags)) {
        if (kernel_owes_writable(fd)) {
            /* It drained (or broke) since the count: the kernel decides. */
            timed_fd = -1;
            return 0;
        }
        if (sluice_cfg.hold_reads)
            begin_hiding(fd, e);
        errno = EAGAIN;
        return -1;
    }
    STAT_ADD(write_waits, 1);
    uint64_t t0 = sys_mono_ns();
    int r = wait_writable(fd, SO_SNDTIMEO);
    int saved = errno;
    STAT_ADD(write_wait_ns, (int64_t) (sys_mono_ns() - t0));
    if (r < 0 && saved == EAGAIN)
        STAT_ADD(write_timeouts, 1);
    if (r == 0)
        set_ub(e, DRAIN_UB_MAX);  /* re-asked at the next write */
    errno = saved;
    return r;
}

int drain_before_write(int fd, struct fdent *e, int msgflags)
{
    if (unlikely(e == NULL))
        return 0;
    int saved = errno;
    uint32_t g = gate_word(fd, e);
    timed_fd = -1;
    if (!(g & DRAIN_TCP) || ub_of(g) < ub_write_limit) {
        errno = saved;
        return 0;
    }
    int r = check_before_write(fd, e, msgflags);
    if (r == 0)
        errno = saved;
    return r;
}

/* A write let through near the mark took this long: the kernel made it wait. */
#define KERNEL_WAIT_NS 2000000u

void drain_after_write(int fd, struct fdent *e, long result)
{
    if (unlikely(e == NULL))
        return;
    int err = errno;
    if (timed_fd == fd) {
        timed_fd = -1;
        uint64_t dt = sys_mono_ns() - timed_t0;
        if (dt >= KERNEL_WAIT_NS) {
            STAT_ADD(write_waits, 1);
            STAT_ADD(write_wait_ns, (int64_t) dt);
            if (sluice_cfg.write_timeout_ns != 0
                && ((result < 0 && err == EAGAIN) || dt >= sluice_cfg.write_timeout_ns))
                STAT_ADD(write_timeouts, 1);
        }
    }
    if (result > 0) {
        add_ub(e, (uint64_t) result);
    } else if (result < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
        /* Full by the kernel's own rule: not writable until it reports so. */
        set_ub(e, DRAIN_UB_MAX);
        set_over(e);
        if (sluice_cfg.hold_reads)
            begin_hiding(fd, e);
    }
    errno = err;
}

int drain_before_read(int fd, struct fdent *e, int msgflags)
{
    /* The error queue is not input from the peer: never held. */
    if (!sluice_cfg.hold_reads || (msgflags & MSG_ERRQUEUE))
        return 0;
    if (unlikely(e == NULL))
        return 0;
    uint32_t g = atomic_load_explicit(&e->gate, memory_order_relaxed);
    /* Never written through sluice: nothing of ours can be unsent. */
    if (!(g & DRAIN_ADOPTED))
        return 0;
    uint32_t limit = (g & DRAIN_TCP) ? ub_read_limit : 1;
    if (!(g & (DRAIN_OVER | DRAIN_HIDING)) && ub_of(g) < limit)
        return 0;
    int saved = errno;
    if (writable_now(fd, e, g)) {
        clear_over(e);
        if (g & DRAIN_HIDING)
            end_hiding(fd, e, false);
        errno = saved;
        return 0;
    }
    set_over(e);
    if (nonblocking(fd, msgflags)) {
        begin_hiding(fd, e);
        errno = EAGAIN;
        return -1;
    }
    STAT_ADD(held_reads, 1);
    uint64_t t0 = sys_mono_ns();
    int r = wait_writable(fd, SO_RCVTIMEO);
    int err = errno;
    STAT_ADD(held_read_ns, (int64_t) (sys_mono_ns() - t0));
    if (r == 0) {
        clear_over(e);
        set_ub(e, DRAIN_UB_MAX);
        errno = saved;
        return 0;
    }
    errno = err;
    return -1;
}

void drain_on_writable(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return;
    int saved = errno;
    uint32_t g = atomic_load(&e->gate);
    if (g & DRAIN_HIDING) {
        if (writable_now(fd, e, g)) {
            clear_over(e);
            end_hiding(fd, e, true);
        } else {
            overlay_watch_writable(fd);
        }
    }
    errno = saved;
}

void drain_forgotten(uint32_t gate)
{
    if (gate & DRAIN_OVER)
        STAT_ADD(sockets_over_mark, -1);
    if (gate & DRAIN_HIDING)
        hiding_change(-1);
}
