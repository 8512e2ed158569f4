/* idle.c — SLUICE_CONN_IDLE=free (see idle.h): busy and idle connections.
 *
 * Busy -> idle, when the program is back waiting for input with nothing unread
 * (FIONREAD) and nothing unsent (SIOCOUTQNSD): a non-blocking read answers
 * EAGAIN; a blocking read is about to block; or, on entry to a readiness wait,
 * a busy connection has been written to since its last input ("answered").
 * Event loops such as asyncio and redis read once per readiness event and never
 * see EAGAIN, so the wait is what frees them; requiring an answer first keeps a
 * connection whose handler is still working (nothing written yet) busy. Only
 * busy connections can be answered, so a wait scans at most SLUICE_CONN_MAX.
 * A new connection stays busy until its first answer (or a read that finds
 * nothing): while it waits in the listen backlog the program's timers do not
 * run, whereas input sluice holds back on a connection the program already
 * has runs against the program's idle timeouts (client_header_timeout,
 * keep-alive timeouts), which close it with the request unread.
 *
 * Idle -> busy, when the program takes input: a slot is taken before the read.
 * With none free, a non-blocking read gets EAGAIN, the connection's EPOLLIN is
 * hidden through the overlay and it joins a FIFO queue; a freed slot goes to
 * the queue's head first (then the unhide wakes the program's loop), and only
 * with the queue empty to the listeners. A blocking read first waits for input
 * without consuming it (recv MSG_PEEK, restartable as the real read), then for
 * a slot (the futex blocking accepts use), then reads.
 *
 * Fairness: refused idle connections are served in the order they were
 * refused, and before new connections in the backlog (whose arrival times
 * sluice cannot see): an idle request is a request the program has already
 * been shown, a new connection may be nothing yet. Idle connections are hidden
 * lazily (when a read is refused), never all at once when the gate fills: a
 * pause costs no system call per idle connection. */
#include "real.h"

#include "idle.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "fdtab.h"
#include "overlay.h"
#include "slots.h"
#include "stats.h"
#include "sys.h"

_Atomic bool idle_free;
_Atomic int idle_answered;

/* The queue of connections refused for want of a slot: a ring of ids + 1,
 * written by any thread at tail, consumed by one dispatcher at head. Entries of
 * connections that stopped waiting (closed, or read again and served) are
 * skipped. Twice the connections, so live entries always fit. */
static _Atomic uint32_t *wq;
static uint64_t wq_cap;
static _Atomic uint64_t wq_head, wq_tail;
static _Atomic unsigned dispatch_requests;

static void idle_forget(uint32_t st);
static void idle_dispatch(void);

int idle_init(uint32_t conns)
{
    wq_cap = 2 * (uint64_t) conns;
    void *m = mmap(NULL, sizeof(uint32_t) * wq_cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    wq = m;
    slots_hook_idle(idle_dispatch, idle_forget);
    atomic_store(&idle_free, true);
    return 0;
}

void idle_atfork_child(void)
{
    if (wq != NULL)
        madvise(wq, sizeof(uint32_t) * wq_cap, MADV_DONTNEED);
    atomic_store(&wq_head, 0);
    atomic_store(&wq_tail, 0);
    atomic_store(&dispatch_requests, 0);
    atomic_store(&idle_answered, 0);
}

/* --- state changes -------------------------------------------------------- */

static int64_t conn_of_entry(struct fdent *e)
{
    uint32_t c = e != NULL ? atomic_load_explicit(&e->conn, memory_order_relaxed) : 0;
    return c != 0 && c - 1 < slots_conns() ? (int64_t) c - 1 : -1;
}

static int64_t conn_of(int fd)
{
    return conn_of_entry(fdtab_peek(fd));
}

static int unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

/* Nothing unsent (UNIX sockets have no such count: nothing to wait for). */
static bool drained(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCOUTQNSD, &n) != 0 || n == 0;
}

/* Whether a read would block. Asked of the kernel: Python sets O_NONBLOCK
 * with ioctl(FIONBIO), which sluice does not see. */
static bool nonblocking_now(struct conn *c, int fd, int msgflags)
{
    if (msgflags & MSG_DONTWAIT)
        return true;
    bool nb = sys_nonblocking(fd);
    atomic_store_explicit(&c->nonblock, nb, memory_order_relaxed);
    return nb;
}

/* The cheap guess: a connection once seen non-blocking is taken to stay so
 * (event loops never switch back); checked again before anything that would
 * hurt a blocking reader (an EAGAIN). */
static bool nonblocking_cached(struct conn *c, int msgflags)
{
    return (msgflags & MSG_DONTWAIT) || atomic_load_explicit(&c->nonblock, memory_order_relaxed);
}

/* A connection with state st was freed (its last close). */
static void idle_forget(uint32_t st)
{
    if (st & CONN_ANSWERED)
        atomic_fetch_sub(&idle_answered, 1);
}

static void set_answered(struct conn *c)
{
    uint32_t s = atomic_load(&c->st);
    do {
        if (!conn_st_busy(s) || (s & CONN_ANSWERED))
            return;
    } while (!atomic_compare_exchange_weak(&c->st, &s, s | CONN_ANSWERED));
    atomic_fetch_add(&idle_answered, 1);
}

static void clear_answered(struct conn *c)
{
    uint32_t s = atomic_load(&c->st);
    do {
        if (!(s & CONN_ANSWERED))
            return;
    } while (!atomic_compare_exchange_weak(&c->st, &s, s & ~CONN_ANSWERED));
    atomic_fetch_sub(&idle_answered, 1);
}

/* Busy -> idle: the slot goes back (to a waiting idle connection first). */
static void go_idle(struct conn *c)
{
    uint32_t s = atomic_load(&c->st);
    do {
        if (!conn_st_busy(s))
            return;
    } while (!atomic_compare_exchange_weak(&c->st, &s, s & (CONN_WAITING)));
    if (s & CONN_ANSWERED)
        atomic_fetch_sub(&idle_answered, 1);
    STAT_ADD(conn_idle, 1);
    if (s & CONN_ANSWERED)
        slots_release(conn_st_slot(s));
    else
        slots_release_unserved(conn_st_slot(s));
}

/* Unhides the descriptor a served waiter was hidden on, if it is still its. */
static void unhide_waiter(uint32_t cid, struct conn *c)
{
    int fd = atomic_load(&c->wait_fd);
    if (conn_of(fd) == (int64_t) cid)
        overlay_unhide(fd, EPOLLIN);
    STAT_ADD(conn_slot_waits_ns, (int64_t) (sys_mono_ns() - atomic_load(&c->wait_since)));
}

/* Idle -> busy if a slot is free (true also if it is busy already). */
static bool go_busy(uint32_t cid, struct conn *c)
{
    uint32_t s = atomic_load(&c->st);
    if (conn_st_busy(s))
        return true;
    int64_t slot = slots_take(cid);
    if (slot < 0)
        return false;
    uint32_t want;
    do {
        if (conn_st_busy(s) || atomic_load(&c->alloc) == 0) {
            slots_untake((uint32_t) slot);
            return true;
        }
        want = (s & ~CONN_WAITING) | ((uint32_t) (slot + 1) << CONN_SLOT_SHIFT);
    } while (!atomic_compare_exchange_weak(&c->st, &s, want));
    STAT_ADD(conn_idle, -1);
    slots_held((uint32_t) slot);
    if (s & CONN_WAITING)
        unhide_waiter(cid, c);
    return true;
}

/* Serves the queue with free slots, oldest first. A combiner: whoever comes
 * first serves until nobody asks again, so no request is lost and no lock is
 * taken (a close in a signal handler may call this). */
static void idle_dispatch(void)
{
    if (wq == NULL || atomic_load(&wq_head) == atomic_load(&wq_tail))
        return;
    if (atomic_fetch_add(&dispatch_requests, 1) != 0)
        return;
    unsigned mine = 1;
    for (;;) {
        for (;;) {
            uint64_t h = atomic_load(&wq_head);
            if (h == atomic_load(&wq_tail))
                break;
            uint32_t v = atomic_load(&wq[h % wq_cap]);
            if (v == 0)
                break;   /* being written: its writer asks for a dispatch after */
            uint32_t cid = v - 1;
            struct conn *c = slots_conn(cid);
            uint32_t s = atomic_load(&c->st);
            if ((s & CONN_WAITING) && !conn_st_busy(s) && !go_busy(cid, c))
                break;   /* no slot: the head keeps its turn */
            atomic_store(&wq[h % wq_cap], 0);
            atomic_store(&wq_head, h + 1);
        }
        unsigned left = atomic_fetch_sub(&dispatch_requests, mine) - mine;
        if (left == 0)
            break;
        mine = left;
    }
}

bool idle_queued(void)
{
    return wq != NULL && atomic_load(&wq_head) != atomic_load(&wq_tail);
}

void idle_serve(void)
{
    idle_dispatch();
}

/* Refuses input on idle connection cid for want of a slot: hidden and queued. */
static void enqueue(uint32_t cid, struct conn *c, int fd)
{
    uint32_t s = atomic_load(&c->st);
    do {
        if (conn_st_busy(s))
            return;
        if (s & CONN_WAITING) {
            /* Queued already, but shown again by someone else's unhide (the
             * bit is shared, e.g. with held reads): hide it again. */
            overlay_hide(fd, EPOLLIN);
            return;
        }
    } while (!atomic_compare_exchange_weak(&c->st, &s, s | CONN_WAITING));
    if (atomic_load(&wq_tail) - atomic_load(&wq_head) >= wq_cap - 1) {
        /* Full of entries left by connections that stopped waiting while the
         * head waits: not queued, not hidden (the program may try again). */
        atomic_fetch_and(&c->st, ~CONN_WAITING);
        return;
    }
    atomic_store(&c->wait_fd, fd);
    atomic_store(&c->wait_since, sys_mono_ns());
    overlay_hide(fd, EPOLLIN);
    uint64_t t = atomic_fetch_add(&wq_tail, 1);
    atomic_store(&wq[t % wq_cap], cid + 1);
    idle_dispatch();   /* a slot may have freed since we looked */
}

/* --- the program's calls ------------------------------------------------------ */

int idle_before_read(int fd, struct fdent *e, int msgflags)
{
    int64_t id = conn_of_entry(e);
    if (id < 0)
        return 0;
    uint32_t cid = (uint32_t) id;
    struct conn *c = slots_conn(cid);
    atomic_store_explicit(&c->fd, fd, memory_order_relaxed);
    int saved = errno;
    if (conn_st_busy(atomic_load(&c->st))) {
        /* Busy: only a blocking read about to block changes anything. */
        if (nonblocking_cached(c, msgflags) || nonblocking_now(c, fd, msgflags)
            || unread(fd) > 0 || !drained(fd)) {
            errno = saved;
            return 0;
        }
        go_idle(c);
    } else if (nonblocking_cached(c, msgflags) || nonblocking_now(c, fd, msgflags)) {
        /* Idle, non-blocking: take a slot; without one, refuse only if input
         * waits (otherwise the read answers EAGAIN by itself). */
        if (go_busy(cid, c) || unread(fd) == 0 || !nonblocking_now(c, fd, msgflags)) {
            errno = saved;
            return 0;
        }
        enqueue(cid, c, fd);
        errno = EAGAIN;
        return -1;
    }
    /* Blocking and idle: wait for input without taking it, then for a slot. */
    if (unread(fd) == 0) {
        char b;
        ssize_t r = REAL(recv)(fd, &b, 1, MSG_PEEK);
        if (r < 0)
            return -1;   /* EINTR, SO_RCVTIMEO's EAGAIN: as the real read */
        if (r == 0) {
            errno = saved;
            return 0;    /* end of input: the read may see it without a slot */
        }
    }
    uint64_t t0 = sys_mono_ns();
    bool waited = false;
    while (!go_busy(cid, c)) {
        waited = true;
        if (slots_wait(fd) < 0)
            return -1;
    }
    if (waited)
        STAT_ADD(conn_slot_waits_ns, (int64_t) (sys_mono_ns() - t0));
    errno = saved;
    return 0;
}

void idle_after_read(int fd, struct fdent *e, long result)
{
    int64_t id = conn_of_entry(e);
    if (id < 0)
        return;
    struct conn *c = slots_conn((uint32_t) id);
    if (result > 0) {
        /* Input taken: busy (if it arrived after we looked, take a slot now,
         * if one is free) and no longer answered. */
        if (!conn_st_busy(atomic_load(&c->st)))
            go_busy((uint32_t) id, c);
        clear_answered(c);
    } else if (result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
               && conn_st_busy(atomic_load(&c->st)) && drained(fd)) {
        go_idle(c);
    }
}

void idle_after_write(int fd, struct fdent *e, long result)
{
    if (result <= 0)
        return;
    int64_t id = conn_of_entry(e);
    if (id < 0)
        return;
    struct conn *c = slots_conn((uint32_t) id);
    atomic_store_explicit(&c->fd, fd, memory_order_relaxed);
    set_answered(c);
}

void idle_before_wait(void)
{
    int saved = errno;
    uint32_t nslots = slots_count();
    for (uint32_t i = 0; i < nslots; i++) {
        uint32_t v = slots_holder(i);
        if (v == 0)
            continue;
        struct conn *c = slots_conn(v - 1);
        uint32_t s = atomic_load(&c->st);
        if (!(s & CONN_ANSWERED) || !conn_st_busy(s))
            continue;
        int fd = atomic_load_explicit(&c->fd, memory_order_relaxed);
        if (conn_of(fd) != (int64_t) (v - 1) || unread(fd) > 0) {
            clear_answered(c);   /* more input waits (pipelined): still busy */
            continue;
        }
        if (drained(fd))
            go_idle(c);
    }
    errno = saved;
}
