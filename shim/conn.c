/* conn.c — the connection gate (see conn.h).
 *
 * Connections and slots: each accepted connection gets an object (conn_objs;
 * fdtab's `conn` field holds its id+1 for each descriptor of it: dup adds a
 * reference, each close drops one, the last frees it). The limit counts busy
 * slots: SLUICE_CONN_MAX entries naming the connection that holds each, and a
 * count of free ones (also the futex word blocking waiters sleep on). In pause
 * mode accept takes a slot before the real call and keeps it if a connection
 * came (a blocking accept waits for the slot first, then for a connection). With
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
 * Shed: at the limit the connection is taken from the kernel and shed
 * (shed.c) without the program seeing it. Shed mode accepts first and takes a
 * slot after: a slot taken before a blocking accept would let the kernel give
 * the next connection to another thread, which would shed it with a slot free.
 * A blocking accept goes on shedding for as long as it takes (it never answers
 * EAGAIN); a non-blocking one gives the program its turn every SHED_BUDGET.
 *
 * sluice's thread (shed.c) calls conn_thread_tick at least once a second:
 * while paused it re-checks that each descriptor holding a slot is still the
 * socket it was (a close sluice did not see must not pause the program
 * forever), and keeps the paused time current. */
#include "real.h"

#include "conn.h"

#include <linux/futex.h>
#include <netinet/in.h>
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
#include "shed.h"
#include "stats.h"

#define MAX_LISTENERS 64
#define SHED_BUDGET 256          /* sheds per call before a non-blocking accept returns */
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

static _Atomic uint32_t sync_requests;  /* also a futex word: see await_pause_applied */
static _Atomic int pause_appliers_awaited;
static bool paused_now;                 /* written only by the sync combiner */
static _Atomic bool paused_flag;
/* Start of the paused time not yet added to conn_paused_ns (0: none). The
 * sluice thread adds it every second while paused, so the figure is live. */
static _Atomic uint64_t paused_mark;

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

/* --- the thread's periodic work -------------------------------------------------- */

static void conn_recheck(void);
static uint64_t last_recheck;           /* the thread's own */

void conn_thread_tick(uint64_t now)
{
    if (last_recheck == 0)
        last_recheck = now;
    if (atomic_load(&paused_flag) && now - last_recheck >= RECHECK_MS * 1000000ull) {
        last_recheck = now;
        conn_recheck();
        uint64_t mark = atomic_load(&paused_mark);
        if (mark != 0 && now > mark && atomic_compare_exchange_strong(&paused_mark, &mark, now))
            STAT_ADD(conn_paused_ns, (int64_t) (now - mark));
    }
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
                gate_thread_ensure();
                gate_thread_kick();
            }
        }
        unsigned left = atomic_fetch_sub(&sync_requests, mine) - mine;
        if (left == 0)
            break;
        mine = left;
    }
    if (atomic_load(&pause_appliers_awaited) != 0)
        futex(&sync_requests, FUTEX_WAKE_PRIVATE, INT32_MAX);
}

/* A non-blocking accept found every slot taken while another thread is still
 * applying the change (unhiding for a slot that freed, or hiding for the one
 * just taken). Answering EAGAIN now, with the listener still shown, makes a
 * level-triggered loop spin on epoll_wait and accept until that thread is done:
 * memcached's listener thread saw up to 735 EAGAINs for one close on a worker
 * thread. So wait for the applier (bounded) before answering. True: a slot
 * is free now, try again. */
static bool await_pause_applied(void)
{
    for (int round = 0; round < 64; round++) {
        if (atomic_load(&free_slots) != 0)
            return true;
        uint32_t pending = atomic_load(&sync_requests);
        if (pending == 0)
            return false;
        atomic_fetch_add(&pause_appliers_awaited, 1);
        struct timespec most = { 0, 1000000 };
        REAL(syscall)(SYS_futex, (long) &sync_requests, (long) FUTEX_WAIT_PRIVATE, (long) pending,
                      (long) &most, 0L, 0L);
        atomic_fetch_sub(&pause_appliers_awaited, 1);
    }
    return atomic_load(&free_slots) != 0;
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
    gate_thread_ensure();   /* re-checks held slots while we wait */
    gate_thread_kick();
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

/* Whether a blocking accept that has shed `shed` connections since `since`
 * should go on: always, unless the listener has SO_RCVTIMEO and it has passed
 * (a real accept would have timed out with nothing to show). Asked from the
 * second shed on (a non-blocking accept rarely gets there), then on each. */
static bool still_waiting(int fd, uint64_t since, uint64_t *timeout_ns)
{
    if (*timeout_ns == UINT64_MAX) {
        struct timeval tv = { 0, 0 };
        socklen_t tvlen = sizeof tv;
        KEEP_ERRNO(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen));
        *timeout_ns = (uint64_t) tv.tv_sec * 1000000000u + (uint64_t) tv.tv_usec * 1000u;
    }
    return *timeout_ns == 0 || mono_ns() - since < *timeout_ns;
}

/* Shed mode: the connection first, then a slot for it, or it is shed. */
static int accept_or_shed(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    socklen_t len_given = len != NULL ? *len : 0;
    uint64_t since = mono_ns(), timeout_ns = UINT64_MAX;
    int nonblocking = -1;   /* not asked yet */
    for (unsigned shed = 0;;) {
        if (len != NULL)
            *len = len_given;
        int c = accept_for_real(fd, addr, len, flags, is_accept4);
        if (c < 0)
            return -1;   /* EAGAIN: nothing waits; EINTR, EMFILE...: as the real call */
        int64_t id = slot_take();
        if (id >= 0) {
            record(c, (uint32_t) id, flags);
            return c;
        }
        shed_connection(c);
        if (++shed < 2)
            continue;
        if (nonblocking < 0)
            nonblocking = listener_nonblocking(fd);
        /* A non-blocking accept returns now and then: the program's loop has
         * other work. A blocking one never returns EAGAIN for a shed. */
        if (nonblocking ? shed % SHED_BUDGET == 0 : !still_waiting(fd, since, &timeout_ns)) {
            /* More may wait, and no new arrival need come to say so: an
             * edge-triggered loop is owed its event again. */
            overlay_requeue(fd);
            errno = EAGAIN;
            return -1;
        }
    }
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
    if (sluice_cfg.conn_mode == CONN_SHED)
        return accept_or_shed(fd, addr, len, flags, is_accept4);
    for (;;) {
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
        if (listener_nonblocking(fd)) {
            bool slot_freed;
            KEEP_ERRNO(slot_freed = await_pause_applied());
            if (slot_freed)
                continue;
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
    shed_init();
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
    last_recheck = 0;
    shed_atfork_child();
}
