/* conn.c — the connection gate (see conn.h).
 *
 * Connections and slots: each accepted connection gets an object (conn_objs;
 * fdtab's `conn` field holds its id+1 for each descriptor of it: dup adds a
 * reference, each close drops one, the last frees it). The limit counts busy
 * slots: SLUICE_CONN_MAX entries naming the connection that holds each, and a
 * count of free ones (also the futex word blocking waiters sleep on). accept
 * takes a slot before the real call and keeps it if a connection came. With
 * idle=hold a connection is busy from accept to its last close; with
 * idle=free (idle.c) it gives its slot back while idle, so there are objects
 * for every descriptor the process may hold. A freed slot wakes at once: the
 * futex for blocking waiters, the idle queue, then the overlay for listeners.
 *
 * Pause: while every slot holds a connection, governed listeners are hidden
 * from the program's readiness calls; a non-blocking accept answers EAGAIN
 * (the connection stays in the kernel's backlog); a blocking accept waits on
 * the futex without a timeout, so the kernel gives it exactly the real call's
 * signal behaviour (EINTR, or a restart under SA_RESTART). Waiters are woken
 * one per freed slot, oldest first (the kernel's futex queue is FIFO).
 *
 * One sluice thread (started the first time it is needed, all signals blocked)
 * does what must not cost the program's threads: while paused, it re-checks
 * every second that each descriptor holding a slot is still the socket it was
 * (a close sluice did not see must not pause the program forever); and it
 * finishes shed connections: the answer is written (MSG_DONTWAIT: it fits the
 * socket's buffer) and SHUT_WR sent on the program's thread, then the thread
 * discards the
 * client's input until it closes, for at most SHED_LINGER_MS, holding at most
 * SHED_CAP sockets (past that a shed socket is closed at once). */
#include "real.h"

#include "conn.h"

#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

#include "config.h"
#include "fdtab.h"
#include "gate.h"
#include "idle.h"
#include "log.h"
#include "overlay.h"
#include "stats.h"
#include "threads.h"

#define MAX_LISTENERS 64
#define SHED_CAP 512
#define SHED_LINGER_MS 1000
#define SHED_BUDGET 256          /* connections shed per accept call at most */
#define RECHECK_MS 1000
#define MAX_CONNS (1u << 20)      /* connection objects at most (idle=free) */

struct conn *conn_objs;
uint32_t conn_cap;
static _Atomic uint32_t conn_hint;
_Atomic uint32_t *conn_busy_slot;       /* per busy slot: connection id + 1 */
uint32_t conn_nslots;
static _Atomic uint32_t free_slots;     /* futex word */
static _Atomic uint32_t slot_hint;
static _Atomic uint32_t slots_held;     /* busy slots bound to a connection */
static _Atomic int slot_waiters;

static _Atomic int listeners[MAX_LISTENERS];   /* governed listener fd + 1 */

static _Atomic unsigned sync_requests;
static bool paused_now;                 /* written only by the sync combiner */
static _Atomic bool paused_flag;
/* Start of the paused time not yet added to conn_paused_ns (0: none). The
 * sluice thread adds it every second while paused, so the figure is live. */
static _Atomic uint64_t paused_mark;

static char shed_answer[512];
static size_t shed_answer_len;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val)
{
    return REAL(syscall)(SYS_futex, (long) word, (long) op, (long) val, 0L, 0L, 0L);
}

/* --- the sluice thread: re-checks and shed connections ------------------------ */

static _Atomic int aux_state;           /* 0 none, 1 starting, 2 running */
static _Atomic int aux_epfd = -1, aux_efd = -1;
static _Atomic int handoff[SHED_CAP];   /* shed socket + 1, waiting for the thread */
static _Atomic int shed_held;           /* shed sockets not yet closed */
static _Atomic bool handoff_kicked;     /* a wake for new handoffs is pending */
struct lingering { int fd; uint64_t deadline; };
static struct lingering lingering[SHED_CAP];   /* the thread's own */

static void aux_kick(void)
{
    int efd = atomic_load(&aux_efd);
    uint64_t one = 1;
    if (efd >= 0)
        KEEP_ERRNO((void) !REAL(write)(efd, &one, sizeof one));
}

static void conn_recheck(void);

static void take_handoffs(int epfd)
{
    atomic_store(&handoff_kicked, false);
    for (int i = 0; i < SHED_CAP; i++) {
        int v = atomic_exchange(&handoff[i], 0);
        if (v == 0)
            continue;
        int fd = v - 1, at = -1;
        for (int j = 0; j < SHED_CAP && at < 0; j++)
            if (lingering[j].fd < 0)
                at = j;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t) at };
        if (at < 0 || REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fdtab_close_own(fd);
            atomic_fetch_sub(&shed_held, 1);
            continue;
        }
        lingering[at] = (struct lingering) { fd, mono_ns() + SHED_LINGER_MS * 1000000ull };
    }
}

static void finish_shed(int at)
{
    fdtab_close_own(lingering[at].fd);   /* closing removes it from the epoll set */
    lingering[at].fd = -1;
    atomic_fetch_sub(&shed_held, 1);
}

static void *aux_main(void *arg)
{
    (void) arg;
    threads_adopt_self();
    int epfd = atomic_load(&aux_epfd), efd = atomic_load(&aux_efd);
    uint64_t last_recheck = mono_ns();
    char sink[16384];
    for (;;) {
        uint64_t now = mono_ns();
        int timeout = -1;
        for (int i = 0; i < SHED_CAP; i++) {
            if (lingering[i].fd < 0)
                continue;
            int ms = lingering[i].deadline > now ? (int) ((lingering[i].deadline - now) / 1000000u) + 1 : 0;
            if (timeout < 0 || ms < timeout)
                timeout = ms;
        }
        /* At least once a second, even idle: this thread must not keep alive a
         * process whose own threads have all ended (see threads.h). */
        if (timeout < 0 || timeout > RECHECK_MS)
            timeout = RECHECK_MS;
        struct epoll_event evs[64];
        int n = REAL(epoll_wait)(epfd, evs, 64, timeout);
        if (n == 0)
            threads_exit_if_only_ours();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) {
                uint64_t junk;
                (void) !REAL(read)(efd, &junk, sizeof junk);
                continue;
            }
            int at = (int) evs[i].data.u64;
            if (lingering[at].fd < 0)
                continue;
            ssize_t got;
            int rounds = 0;
            while ((got = REAL(recv)(lingering[at].fd, sink, sizeof sink, MSG_DONTWAIT)) > 0
                   && ++rounds < 16)
                ;
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
                finish_shed(at);
        }
        take_handoffs(epfd);
        now = mono_ns();
        for (int i = 0; i < SHED_CAP; i++)
            if (lingering[i].fd >= 0 && lingering[i].deadline <= now)
                finish_shed(i);
        if (atomic_load(&paused_flag) && now - last_recheck >= RECHECK_MS * 1000000ull) {
            last_recheck = now;
            conn_recheck();
            uint64_t mark = atomic_load(&paused_mark);
            if (mark != 0 && now > mark && atomic_compare_exchange_strong(&paused_mark, &mark, now))
                STAT_ADD(conn_paused_ns, (int64_t) (now - mark));
        }
    }
    return NULL;
}

static void aux_ensure(void)
{
    if (atomic_load(&aux_state) != 0)
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&aux_state, &expected, 1))
        return;
    int saved = errno;
    for (int i = 0; i < SHED_CAP; i++)
        lingering[i].fd = -1;
    int epfd = REAL(epoll_create1)(EPOLL_CLOEXEC);
    int efd = REAL(eventfd)(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
    if (epfd < 0 || efd < 0 || REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, efd, &ev) != 0) {
        log_warn("cannot start the connection gate's thread: %d", errno);
        errno = saved;
        return;   /* aux_state stays 1: no thread, shed sockets are closed at once */
    }
    fdtab_own(epfd);
    fdtab_own(efd);
    atomic_store(&aux_epfd, epfd);
    atomic_store(&aux_efd, efd);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, &attr, aux_main, NULL) == 0)
        atomic_store(&aux_state, 2);
    else
        log_warn("cannot start the connection gate's thread");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    errno = saved;
}

/* --- pause and unpause ----------------------------------------------------------- */

static bool still_governed_listener(int fd)
{
    if (fdtab_kind(fd) != FD_LISTENER)
        return false;
    struct fdent *e = fdtab_peek(fd);
    return e != NULL && (atomic_load(&e->flags) & FDF_GOVERNED);
}

/* Applies "paused iff every slot holds a connection". A combiner: whoever comes
 * first applies until no request is left, so concurrent changes (or a signal
 * handler's close) never leave the listeners in the wrong state, with no lock. */
static void sync_pause(void)
{
    if (atomic_fetch_add(&sync_requests, 1) != 0)
        return;
    unsigned mine = 1;
    for (;;) {
        bool want = atomic_load(&slots_held) >= conn_nslots;
        if (want != paused_now) {
            paused_now = want;
            uint64_t now = mono_ns();
            if (want) {
                atomic_store(&paused_mark, now);
                STAT_ADD(conn_pauses, 1);
                STAT_SET(conn_paused, 1);
                atomic_store(&paused_flag, true);
            } else {
                uint64_t mark = atomic_exchange(&paused_mark, 0);
                if (mark != 0)
                    STAT_ADD(conn_paused_ns, (int64_t) (now - mark));
                STAT_SET(conn_paused, 0);
                atomic_store(&paused_flag, false);
            }
            if (sluice_cfg.conn_mode == CONN_PAUSE)
                for (int i = 0; i < MAX_LISTENERS; i++) {
                    int l = atomic_load(&listeners[i]) - 1;
                    if (l < 0)
                        continue;
                    if (!want) {
                        overlay_unhide(l, EPOLLIN);
                    } else if (still_governed_listener(l)) {
                        overlay_hide(l, EPOLLIN);
                    } else {
                        /* Closed since (its number may be a connection now): forget it. */
                        int expected = l + 1;
                        atomic_compare_exchange_strong(&listeners[i], &expected, 0);
                    }
                }
            if (want) {
                aux_ensure();
                aux_kick();
            }
        }
        unsigned left = atomic_fetch_sub(&sync_requests, mine) - mine;
        if (left == 0)
            break;
        mine = left;
    }
}

static void note_listener(int fd)
{
    for (int i = 0; i < MAX_LISTENERS; i++)
        if (atomic_load(&listeners[i]) == fd + 1)
            return;
    for (int i = 0; i < MAX_LISTENERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&listeners[i], &expected, fd + 1)) {
            if (atomic_load(&paused_flag) && sluice_cfg.conn_mode == CONN_PAUSE)
                overlay_hide(fd, EPOLLIN);
            return;
        }
    }
}

/* --- connections and busy slots -------------------------------------------------- */

/* A busy slot's entry during an accept, before it knows its connection. */
#define SLOT_RESERVED UINT32_MAX

static int64_t slot_take(void)
{
    uint32_t f = atomic_load(&free_slots);
    do {
        if (f == 0)
            return -1;
    } while (!atomic_compare_exchange_weak(&free_slots, &f, f - 1));
    /* An empty entry exists: free_slots is counted up only after one empties. */
    for (uint32_t i = atomic_load(&slot_hint);; i++) {
        uint32_t id = i % conn_nslots, zero = 0;
        if (atomic_load_explicit(&conn_busy_slot[id], memory_order_relaxed) == 0
            && atomic_compare_exchange_strong(&conn_busy_slot[id], &zero, SLOT_RESERVED)) {
            atomic_store_explicit(&slot_hint, id + 1, memory_order_relaxed);
            return id;
        }
    }
}

/* Empties busy slot s (its owner's to empty), counts it free, wakes one waiter. */
static void slot_put(uint32_t s)
{
    atomic_store(&conn_busy_slot[s], 0);
    atomic_fetch_add(&free_slots, 1);
    if (atomic_load(&slot_waiters) != 0)
        futex(&free_slots, FUTEX_WAKE_PRIVATE, 1);
}

int64_t conn_slot_take(uint32_t cid)
{
    int64_t s = slot_take();
    if (s >= 0)
        atomic_store(&conn_busy_slot[s], cid + 1);
    return s;
}

void conn_slot_untake(uint32_t slot)
{
    slot_put(slot);
}

void conn_slot_held(void)
{
    STAT_ADD(conn_busy, 1);
    if (atomic_fetch_add(&slots_held, 1) + 1 >= conn_nslots)
        sync_pause();
}

void conn_slot_release(uint32_t slot)
{
    STAT_ADD(conn_busy, -1);
    uint32_t before = atomic_fetch_sub(&slots_held, 1);
    slot_put(slot);
    /* Idle connections that asked first get it before the listeners wake. */
    idle_dispatch();
    if (before >= conn_nslots)
        sync_pause();
}

/* A free connection object (alloc 0 -> 1), or -1. */
static int64_t conn_new(void)
{
    uint32_t hint = atomic_load_explicit(&conn_hint, memory_order_relaxed);
    for (uint32_t n = 0; n < conn_cap; n++) {
        uint32_t id = (hint + n) % conn_cap, zero = 0;
        if (atomic_load_explicit(&conn_objs[id].alloc, memory_order_relaxed) == 0
            && atomic_compare_exchange_strong(&conn_objs[id].alloc, &zero, 1)) {
            atomic_store_explicit(&conn_hint, id + 1, memory_order_relaxed);
            return id;
        }
    }
    return -1;
}

void conn_release(uint32_t id_plus_one)
{
    uint32_t cid = id_plus_one - 1;
    if (cid >= conn_cap)
        return;
    struct conn *c = &conn_objs[cid];
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    int saved = errno;
    uint32_t st = atomic_exchange(&c->st, 0);
    idle_forget(st);
    STAT_ADD(conn_in_flight, -1);
    /* Free the object before the slot: the accept the slot wakes needs one. */
    atomic_store(&c->alloc, 0);
    if (conn_st_busy(st))
        conn_slot_release(conn_st_slot(st));
    else
        STAT_ADD(conn_idle, -1);
    errno = saved;
}

void conn_addref(uint32_t id_plus_one)
{
    if (id_plus_one - 1 < conn_cap)
        atomic_fetch_add(&conn_objs[id_plus_one - 1].refs, 1);
}

/* Slots held by descriptors that are no longer what they were (closed by a raw
 * system call, io_uring, a library sluice cannot see) are released. A slot is
 * released only if its descriptor's entry still holds it and its inode did not
 * change while we looked, so a close and reuse racing with us is left alone. */
static void conn_recheck(void)
{
    int extent = fdtab_extent();
    for (int fd = 0; fd < extent; fd++) {
        struct fdent *e = fdtab_peek(fd);
        if (e == NULL)
            continue;
        uint32_t c = atomic_load(&e->conn);
        if (c == 0)
            continue;
        uint64_t ino = atomic_load(&e->ino);
        struct stat st;
        int r = fstat(fd, &st);
        if (r == 0 && (ino == 0 || (uint64_t) st.st_ino == ino))
            continue;
        if (r != 0 && errno != EBADF)
            continue;
        if (atomic_load(&e->ino) != ino)
            continue;
        if (atomic_compare_exchange_strong(&e->conn, &c, 0)) {
            log_info("descriptor %d was closed unseen: its connection slot is released", fd);
            conn_release(c);
        }
    }
}

/* --- accept, listen ------------------------------------------------------------------ */

static int accept_for_real(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    return is_accept4 ? REAL(accept4)(fd, addr, len, flags) : REAL(accept)(fd, addr, len);
}

static void record(int fd, uint32_t slot, int flags)
{
    int saved = errno;
    gate_accepted(fd, flags);
    struct fdent *e = fdtab_get(fd);
    int64_t cid = e != NULL ? conn_new() : -1;
    if (cid < 0) {
        /* Beyond the table: untrackable, so it must not hold a slot. */
        slot_put(slot);
        errno = saved;
        return;
    }
    struct conn *c = &conn_objs[cid];
    atomic_store(&c->refs, 1);
    atomic_store(&c->fd, fd);
    atomic_store(&c->nonblock, 0);
    atomic_store(&c->st, (slot + 1) << CONN_SLOT_SHIFT);
    atomic_store(&conn_busy_slot[slot], (uint32_t) cid + 1);
    struct stat st;
    if (fstat(fd, &st) == 0)
        atomic_store(&e->ino, (uint64_t) st.st_ino);
    atomic_store(&e->conn, (uint32_t) cid + 1);
    STAT_ADD(conn_accepted, 1);
    STAT_ADD(conn_in_flight, 1);
    conn_slot_held();
    errno = saved;
}

static bool listener_nonblocking(int fd)
{
    int saved = errno;
    int fl = REAL(fcntl)(fd, F_GETFL, 0);
    errno = saved;
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* Waits for a free slot as accept on listener fd would wait for a connection.
 * Without SO_RCVTIMEO the futex wait has no timeout, so a signal makes it fail
 * with EINTR or restart exactly as the kernel decides for accept (SA_RESTART).
 * With SO_RCVTIMEO, accept gives EAGAIN at the timeout and EINTR on any
 * handled signal; a timed futex wait does the same. */
int conn_wait_for_slot(int fd)
{
    struct timeval tv = { 0, 0 };
    socklen_t tvlen = sizeof tv;
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen);
    uint64_t span = (uint64_t) tv.tv_sec * 1000000000u + (uint64_t) tv.tv_usec * 1000u;
    uint64_t deadline = mono_ns() + span;
    atomic_fetch_add(&slot_waiters, 1);
    aux_ensure();   /* re-checks held slots while we wait */
    aux_kick();
    int r = 0;
    while (atomic_load(&free_slots) == 0) {
        long w;
        if (span == 0) {
            w = futex(&free_slots, FUTEX_WAIT_PRIVATE, 0);
        } else {
            uint64_t now = mono_ns();
            if (now >= deadline) {
                errno = EAGAIN;
                r = -1;
                break;
            }
            struct timespec left = { (time_t) ((deadline - now) / 1000000000u),
                                     (long) ((deadline - now) % 1000000000u) };
            w = REAL(syscall)(SYS_futex, (long) &free_slots, (long) FUTEX_WAIT_PRIVATE, 0L,
                              (long) &left, 0L, 0L);
        }
        if (w != 0 && errno == EINTR) {
            r = -1;
            break;
        }
    }
    atomic_fetch_sub(&slot_waiters, 1);
    return r;
}

/* Answers a connection sluice took at the limit, then lets the thread finish it. */
static void shed(int c)
{
    STAT_ADD(conn_shed, 1);
    fdtab_reborn(c);
    if (sluice_cfg.shed == SHED_RESET) {
        struct linger lg = { 1, 0 };
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        REAL(close)(c);
        return;
    }
    if (sluice_cfg.shed != SHED_CLOSE)
        (void) !REAL(send)(c, shed_answer, shed_answer_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(c, SHUT_WR);
    aux_ensure();
    /* From here the socket is sluice's: a program closing every descriptor must
     * not close it, nor may sluice later close a number the program reuses. */
    fdtab_own(c);
    if (atomic_load(&aux_state) != 2 || atomic_fetch_add(&shed_held, 1) >= SHED_CAP) {
        if (atomic_load(&aux_state) == 2)
            atomic_fetch_sub(&shed_held, 1);
        fdtab_close_own(c);
        return;
    }
    for (int i = 0;; i = (i + 1) % SHED_CAP) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&handoff[i], &zero, c + 1))
            break;
    }
    /* One wake at a time: under a flood the thread takes many per wake. */
    if (!atomic_exchange(&handoff_kicked, true))
        aux_kick();
}

int conn_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    struct fdent *l = NULL;
    if (conn_nslots != 0 && fdtab_kind(fd) == FD_LISTENER)
        l = fdtab_peek(fd);
    if (l == NULL || !(atomic_load(&l->flags) & FDF_GOVERNED)) {
        int r = accept_for_real(fd, addr, len, flags, is_accept4);
        if (r >= 0)
            gate_accepted(r, flags);
        return r;
    }
    note_listener(fd);
    for (int budget = SHED_BUDGET;;) {
        int64_t id = slot_take();
        if (id >= 0) {
            int r = accept_for_real(fd, addr, len, flags, is_accept4);
            if (r < 0) {
                KEEP_ERRNO(slot_put((uint32_t) id));
                return r;
            }
            record(r, (uint32_t) id, flags);
            return r;
        }
        if (sluice_cfg.conn_mode == CONN_SHED) {
            if (budget-- == 0) {
                /* More may wait, and no new arrival need come to say so. */
                overlay_requeue(fd);
                errno = EAGAIN;
                return -1;
            }
            int c = accept_for_real(fd, addr, len, flags, is_accept4);
            if (c < 0) {
                if (errno == ECONNABORTED)
                    continue;
                return -1;   /* EAGAIN: nothing waits; EINTR: as the real call */
            }
            /* A blocking accept may have slept while a slot freed: the program's. */
            int64_t late = slot_take();
            if (late >= 0) {
                record(c, (uint32_t) late, flags);
                return c;
            }
            KEEP_ERRNO(shed(c));
            continue;
        }
        if (listener_nonblocking(fd)) {
            errno = EAGAIN;
            return -1;
        }
        if (conn_wait_for_slot(fd) < 0)
            return -1;
    }
}

int conn_listen(int fd, int backlog)
{
    if (sluice_cfg.backlog != 0 && (backlog <= 0 || (uint32_t) backlog > sluice_cfg.backlog))
        backlog = (int) sluice_cfg.backlog;
    int r = REAL(listen)(fd, backlog);
    if (r == 0 && conn_nslots != 0) {
        int saved = errno;
        if (fdtab_kind(fd) != FD_LISTENER) {
            fdtab_reborn(fd);
            (void) fdtab_kind(fd);
        }
        struct fdent *e = fdtab_peek(fd);
        if (e != NULL && (atomic_load(&e->flags) & FDF_GOVERNED))
            note_listener(fd);
        errno = saved;
    }
    return r;
}

bool conn_governs(int fd)
{
    if (sluice_cfg.nports == 0)
        return true;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int saved = errno;
    int r = getsockname(fd, (struct sockaddr *) &ss, &len);
    errno = saved;
    if (r != 0)
        return false;
    unsigned port;
    if (ss.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    else
        return false;   /* a port list names TCP ports: UNIX listeners go free */
    for (uint32_t i = 0; i < sluice_cfg.nports; i++)
        if (sluice_cfg.ports[i] == port)
            return true;
    return false;
}

void conn_init(void)
{
    conn_nslots = sluice_cfg.conn_max;
    if (conn_nslots != 0) {
        /* With idle=free a connection outlives its slot: room for every
         * descriptor the process may hold (pages are touched only when used). */
        conn_cap = conn_nslots > MAX_CONNS / 2 ? MAX_CONNS : 2 * conn_nslots;
        struct rlimit rl;
        if (sluice_cfg.conn_idle == CONN_IDLE_FREE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rlim_t most = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MAX_CONNS ? MAX_CONNS : rl.rlim_max;
            if (most > conn_cap)
                conn_cap = (uint32_t) most;
        }
        void *m = mmap(NULL, sizeof(struct conn) * conn_cap, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        void *b = mmap(NULL, sizeof(uint32_t) * conn_nslots, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || b == MAP_FAILED
            || (sluice_cfg.conn_idle == CONN_IDLE_FREE && idle_init(conn_cap) != 0)) {
            log_error("cannot allocate %u connection slots: the connection limit is off", conn_nslots);
            conn_nslots = 0;
            conn_cap = 0;
        } else {
            conn_objs = m;
            conn_busy_slot = b;
            atomic_store(&free_slots, conn_nslots);
        }
    }
    const char *status = sluice_cfg.shed == SHED_HTTP429 ? "429 Too Many Requests"
                                                         : "503 Service Unavailable";
    const char *body = sluice_cfg.shed == SHED_HTTP429 ? "Too many requests, retry later.\n"
                                                       : "Server busy, retry later.\n";
    int n = snprintf(shed_answer, sizeof shed_answer,
                     "HTTP/1.1 %s\r\nRetry-After: %u\r\nConnection: close\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                     status, sluice_cfg.retry_after_s, strlen(body), body);
    shed_answer_len = n > 0 ? (size_t) n : 0;
}

void conn_atfork_child(void)
{
    /* fdtab already dropped the child's references: it holds no slots. */
    if (conn_objs != NULL) {
        /* Zero pages again without touching the untouched ones. */
        madvise(conn_objs, sizeof(struct conn) * conn_cap, MADV_DONTNEED);
        madvise(conn_busy_slot, sizeof(uint32_t) * conn_nslots, MADV_DONTNEED);
    }
    atomic_store(&conn_hint, 0);
    idle_atfork_child();
    STAT_SET(conn_busy, 0);
    STAT_SET(conn_idle, 0);
    atomic_store(&free_slots, conn_nslots);
    atomic_store(&slots_held, 0);
    atomic_store(&slot_waiters, 0);
    atomic_store(&sync_requests, 0);
    paused_now = false;
    atomic_store(&paused_flag, false);
    atomic_store(&paused_mark, 0);
    STAT_SET(conn_in_flight, 0);
    STAT_SET(conn_paused, 0);
    /* The parent's thread did not come along; its shed sockets are the parent's. */
    if (atomic_load(&aux_state) != 0) {
        for (int i = 0; i < SHED_CAP; i++) {
            int v = atomic_exchange(&handoff[i], 0);
            if (v != 0)
                fdtab_close_own(v - 1);
            if (lingering[i].fd >= 0)
                fdtab_close_own(lingering[i].fd);
            lingering[i].fd = -1;
        }
        int epfd = atomic_exchange(&aux_epfd, -1), efd = atomic_exchange(&aux_efd, -1);
        if (epfd >= 0)
            fdtab_close_own(epfd);
        if (efd >= 0)
            fdtab_close_own(efd);
        atomic_store(&shed_held, 0);
        atomic_store(&handoff_kicked, false);
        atomic_store(&aux_state, 0);
    }
}
