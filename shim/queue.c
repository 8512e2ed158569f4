/* queue.c — the managed waiting queue (see queue.h).
 *
 * The queue is the kernel's own accept queue: a connection that waits for a
 * slot stays there, so the program's accept, its flags, the peer address and
 * every readiness call (epoll in all its modes, poll, select) behave exactly as
 * without sluice, and sluice holds no descriptor for a waiting client (it can
 * never push the program into EMFILE). What sluice adds is a clock: while the
 * listeners are paused, its thread watches each one (edge-triggered, one wake
 * per arrival) and reads the accept queue's length (TCP_INFO on a listener:
 * tcpi_unacked). Connections leave that queue in order (it is FIFO), so with
 * `accepted` counting every connection taken off it (by the program or by
 * sluice) and `arrived` = accepted + the length, arrival number k is stamped
 * in a ring when first seen and connection k is the next one accept returns.
 *
 * Deadline: while every slot is busy, the thread takes connections whose wait
 * reached SLUICE_QUEUE_TIMEOUT, or the oldest beyond SLUICE_QUEUE_MAX, off the
 * queue with a real accept and sheds them (shed.c: the 503/429 answer, a
 * graceful close). The program accepts only with a slot it holds; the thread
 * takes only while the program is in no accept (`accepting`, `expiring`: each
 * side announces itself, then looks at the other), so it never takes a younger
 * connection whose older neighbour the program took at the same moment.
 *
 * Limits (kernel-first): UNIX listeners have no TCP_INFO and are not timed; a
 * listener shared by several processes (one accept queue, several sluices)
 * counts only its own process's accepts; SLUICE_QUEUE_MAX cannot exceed the
 * listen backlog (the kernel refuses the rest), and beyond it the OLDEST is
 * answered (the queue is the kernel's, newcomers join at its tail).
 * SLUICE_QUEUE_ORDER=lifo holds the waiting connections instead
 * (queue_lifo.c); the thread's watching and ticking stay here. */
#include "real.h"

#include "queue.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "queue_lifo.h"
#include "queue_stats.h"
#include "retry_after.h"
#include "shed.h"
#include "slots.h"
#include "sys.h"

#define MAX_QLISTENERS 64
#define RING (1u << 16)          /* stamps per listener (the backlog is smaller) */
#define BATCH 256                /* connections answered per wake at most */
#define STATS_NS 100000000ull    /* the figures' refresh while arrivals come */
#define RETRY_NS 10000000ull     /* answering put off by an accept under way */

struct qlistener {
    _Atomic int fd_plus_one;
    _Atomic uint64_t accepted;   /* connections taken off the kernel's queue */
    _Atomic uint64_t arrived;    /* connections stamped */
    _Atomic uint64_t *_Atomic stamps;   /* arrival time of connection k at k % RING */
    bool watched;                /* the thread's own: armed in its epoll */
    bool untimed;                /* the thread's own: not a TCP listener */
};

static struct qlistener qls[MAX_QLISTENERS];
static _Atomic int accepting;    /* program accepts in progress */
static _Atomic int expiring;     /* the thread is taking connections */
static uint64_t retry_at;        /* the thread's: no look before this (0: none) */
static bool queue_enabled;

bool queue_on(void)
{
    return queue_enabled;
}

static struct qlistener *find(int fd)
{
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        int v = atomic_load_explicit(&qls[i].fd_plus_one, memory_order_relaxed);
        if (v == fd + 1)
            return &qls[i];
        if (v == 0)
            return NULL;
    }
    return NULL;
}

void queue_note_listener(int fd)
{
    lifo_note_listener(fd);
    if (!queue_enabled || find(fd) != NULL)
        return;
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&qls[i].fd_plus_one, &expected, fd + 1))
            return;
        if (expected == fd + 1)
            return;
    }
}

void queue_enter(void)
{
    atomic_fetch_add(&accepting, 1);
    /* The thread's batch is short (BATCH answers at most): wait it out. */
    while (atomic_load(&expiring))
        sched_yield();
}

void queue_leave(int fd, bool accepted)
{
    if (accepted) {
        struct qlistener *q = find(fd);
        if (q != NULL) {
            uint64_t k = atomic_fetch_add(&q->accepted, 1);
            _Atomic uint64_t *st = atomic_load_explicit(&q->stamps, memory_order_acquire);
            uint64_t now = sys_mono_ns(), wait = 0;
            if (st != NULL && k < atomic_load(&q->arrived) && !lifo_on()) {
                uint64_t t = atomic_load_explicit(&st[k % RING], memory_order_relaxed);
                wait = now > t ? now - t : 0;
            }
            queue_stats_served(wait, now);
        }
    }
    atomic_fetch_sub(&accepting, 1);
}

/* The kernel's accept queue length of a TCP listener; -1 if not one. */
static long backlog_of(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != TCP_LISTEN)
        return -1;
    return (long) ti.tcpi_unacked;
}

/* The thread: stamps connections that arrived since it last looked. */
static void sync_listener(struct qlistener *q, uint64_t now)
{
    int fd = atomic_load(&q->fd_plus_one) - 1;
    long n = backlog_of(fd);
    _Atomic uint64_t *st = atomic_load(&q->stamps);
    if (n < 0 || st == NULL)
        return;
    uint64_t k = atomic_load(&q->accepted), a = atomic_load(&q->arrived);
    uint64_t now_arrived = k + (uint64_t) n;
    if (now_arrived > a) {
        if (now_arrived - a > RING)
            a = now_arrived - RING;
        for (uint64_t i = a; i < now_arrived; i++)
            atomic_store_explicit(&st[i % RING], now, memory_order_relaxed);
        atomic_store(&q->arrived, now_arrived);
    } else if (now_arrived < a && atomic_load(&accepting) == 0) {
        /* Taken by someone sluice does not see (another process): the oldest. */
        atomic_fetch_add(&q->accepted, a - now_arrived);
    }
}

static void on_arrival(int fd)
{
    struct qlistener *q = find(fd);
    if (q != NULL && q->watched)
        sync_listener(q, sys_mono_ns());
}

/* Connections to answer now on q: those that waited the timeout, and the
 * oldest beyond the maximum. */
static uint64_t due_count(struct qlistener *q, uint64_t now)
{
    _Atomic uint64_t *st = atomic_load(&q->stamps);
    uint64_t k = atomic_load(&q->accepted), a = atomic_load(&q->arrived);
    if (st == NULL || a <= k)
        return 0;
    uint64_t over = sluice_cfg.queue_max != 0 && a - k > sluice_cfg.queue_max
                  ? a - k - sluice_cfg.queue_max : 0;
    uint64_t late = 0;
    if (sluice_cfg.queue_timeout_ns != 0)
        while (k + late < a && late < BATCH
               && now - atomic_load_explicit(&st[(k + late) % RING], memory_order_relaxed)
                  >= sluice_cfg.queue_timeout_ns)
            late++;
    return over > late ? over : late;
}

/* Takes up to `count` connections off q's queue and sheds them. */
static void answer(struct qlistener *q, uint64_t count, uint64_t now)
{
    int fd = atomic_load(&q->fd_plus_one) - 1;
    _Atomic uint64_t *st = atomic_load(&q->stamps);
    for (uint64_t i = 0; i < count; i++) {
        /* Never block: the listener may be in blocking mode. */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (REAL(poll)(&p, 1, 0) != 1 || !(p.revents & POLLIN)) {
            /* Nothing there after all (taken by a process sluice does not
             * see): the stamps are stale. No accept of ours is under way
             * (the handshake), so the queue is empty: forget them. */
            uint64_t a = atomic_load(&q->arrived), k = atomic_load(&q->accepted);
            if (a > k)
                atomic_compare_exchange_strong(&q->accepted, &k, a);
            return;
        }
        int c = REAL(accept4)(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        uint64_t k = atomic_fetch_add(&q->accepted, 1);
        uint64_t t = atomic_load_explicit(&st[k % RING], memory_order_relaxed);
        bool late = sluice_cfg.queue_timeout_ns != 0 && now - t >= sluice_cfg.queue_timeout_ns;
        queue_stats_answered(late);
        shed_connection(c);
    }
}

/* What waits now, the oldest wait, and how many of those will be served
 * rather than answered (the queue ahead of a newcomer): skipping `skip[i]`
 * being answered now, the connection at position p is served in about
 * (p + 1) / rate, so it counts only if its wait by then is within the timeout.
 * The walk is bounded (AHEAD_WALK per listener). */
#define AHEAD_WALK 4096
static uint64_t queued_now(uint64_t now, const uint64_t *skip, uint64_t *oldest_ns, uint64_t *ahead)
{
    uint64_t total = 0, oldest = 0, p = 0;
    uint64_t milli = retry_after_rate_milli(), timeout = sluice_cfg.queue_timeout_ns;
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        struct qlistener *q = &qls[i];
        if (atomic_load(&q->fd_plus_one) == 0)
            break;
        _Atomic uint64_t *st = atomic_load(&q->stamps);
        uint64_t k = atomic_load(&q->accepted), a = atomic_load(&q->arrived);
        if (st == NULL || !q->watched || a <= k)
            continue;
        total += a - k;
        uint64_t t = atomic_load_explicit(&st[k % RING], memory_order_relaxed);
        if (now > t && now - t > oldest)
            oldest = now - t;
        k += skip != NULL ? skip[i] : 0;
        if (timeout == 0 || milli == 0) {
            p += a > k ? a - k : 0;
            continue;
        }
        for (uint64_t j = k; j < a && j < k + AHEAD_WALK; j++) {
            uint64_t age = now - atomic_load_explicit(&st[j % RING], memory_order_relaxed);
            uint64_t served_in = (p + 1) * 1000000000000ull / milli;
            if (age + served_in <= timeout)
                p++;
        }
    }
    if (oldest_ns != NULL)
        *oldest_ns = oldest;
    *ahead = p;
    return total;
}

static void queue_tick(uint64_t now)
{
    bool full = !slots_any_free();
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        struct qlistener *q = &qls[i];
        int fd = atomic_load(&q->fd_plus_one) - 1;
        if (fd < 0)
            break;
        if (q->untimed)
            continue;
        if (atomic_load(&q->stamps) == NULL) {
            if (backlog_of(fd) < 0) {
                q->untimed = true;
                continue;
            }
            void *m = mmap(NULL, RING * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) {
                q->untimed = true;
                continue;
            }
            atomic_store(&q->stamps, (_Atomic uint64_t *) m);
        }
        if (full != q->watched && gate_thread_watch(fd, full) == 0)
            q->watched = full;
        if (q->watched && !lifo_on())
            sync_listener(q, now);
    }
    if (lifo_on()) {
        /* Newest first: the connections are held on queue_lifo.c's stacks. */
        /* The same handshake as for answering: the thread takes from the
         * kernel's queue only while no accept of the program's is under way
         * (one blocked in a blocking listener's accept must get what comes). */
        atomic_store(&expiring, 1);
        bool may_take = atomic_load(&accepting) == 0;
        uint64_t oldest, held = lifo_tick(now, &oldest, may_take);
        atomic_store(&expiring, 0);
        queue_stats_now(held, 0, oldest, now);
        return;
    }
    uint64_t due[MAX_QLISTENERS], total_due = 0;
    for (int i = 0; i < MAX_QLISTENERS && atomic_load(&qls[i].fd_plus_one) != 0; i++) {
        due[i] = full && qls[i].watched ? due_count(&qls[i], now) : 0;
        total_due += due[i];
    }
    /* The figures (a walk of the queue) at most every STATS_NS, and before
     * answering (the answer carries the estimate): not on every arrival. */
    static uint64_t figured;
    if (total_due != 0 || now - figured >= STATS_NS) {
        figured = now;
        uint64_t oldest, ahead;
        uint64_t waiting = queued_now(now, due, &oldest, &ahead);
        queue_stats_now(waiting, ahead, oldest, now);
    }
    if (total_due == 0)
        return;
    atomic_store(&expiring, 1);
    if (atomic_load(&accepting) == 0 && !slots_any_free()) {
        for (int i = 0; i < MAX_QLISTENERS && atomic_load(&qls[i].fd_plus_one) != 0; i++)
            if (due[i] != 0)
                answer(&qls[i], due[i], now);
    } else {
        /* An accept is under way, or a slot just came free: look again soon,
         * not at once (a past deadline would make the thread spin). */
        retry_at = now + RETRY_NS;
    }
    atomic_store(&expiring, 0);
}

/* When the thread must look next: the oldest connection's deadline. */
static uint64_t queue_due(void)
{
    if (lifo_on())
        return lifo_due();
    if (sluice_cfg.queue_timeout_ns == 0)
        return 0;
    uint64_t floor_at = retry_at;
    uint64_t first = 0;
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        struct qlistener *q = &qls[i];
        if (atomic_load(&q->fd_plus_one) == 0)
            break;
        _Atomic uint64_t *st = atomic_load(&q->stamps);
        uint64_t k = atomic_load(&q->accepted), a = atomic_load(&q->arrived);
        if (st == NULL || !q->watched || a <= k)
            continue;
        uint64_t d = atomic_load_explicit(&st[k % RING], memory_order_relaxed)
                     + sluice_cfg.queue_timeout_ns;
        if (first == 0 || d < first)
            first = d;
    }
    return first != 0 && first < floor_at ? floor_at : first;
}

void queue_init(void)
{
    bool asked = sluice_cfg.queue_timeout_ns != 0 || sluice_cfg.queue_max != 0 || sluice_cfg.queue_lifo;
    queue_enabled = asked && sluice_cfg.conn_max != 0 && sluice_cfg.conn_mode == CONN_PAUSE;
    if (asked && !queue_enabled)
        log_warn("SLUICE_QUEUE_TIMEOUT, SLUICE_QUEUE_MAX and SLUICE_QUEUE_ORDER apply to the pause "
                 "mode with SLUICE_CONN_MAX: ignored");
    lifo_init(queue_enabled);
    queue_stats_init(queue_enabled);
    /* With SLUICE_RETRY_AFTER=auto the tick keeps the estimate current even
     * without a queue (shed mode: a queue of length zero). */
    if (queue_enabled || sluice_cfg.retry_after_auto)
        gate_thread_on_queue(on_arrival, queue_tick, queue_due);
}

void queue_atfork_child(void)
{
    /* The child's accepts are its own; the parent's thread did not come. */
    lifo_atfork_child();
    for (int i = 0; i < MAX_QLISTENERS; i++) {
        atomic_store(&qls[i].accepted, 0);
        atomic_store(&qls[i].arrived, 0);
        qls[i].watched = false;
    }
    atomic_store(&accepting, 0);
    atomic_store(&expiring, 0);
}
